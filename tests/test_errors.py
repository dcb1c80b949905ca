"""Every documented bad input raises its typed error, naming the argument."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pettingzoo.sisl import pursuit_v5

from adv_envs import echo_v0
from adv_wrappers import (
    AgentIDCollisionError,
    InvalidActionError,
    InvalidArgumentError,
    InvalidPriorError,
    MissingActionError,
    UnknownAgentError,
    UnsupportedSpaceError,
    byzantine_v0,
    freeze_v0,
    k_corruption_v0,
    partial_control_v0,
    state_perturbation_v0,
    to_single_agent,
)
from adv_wrappers.registry import THREAT_MODELS


def echo(**kw):
    return echo_v0.parallel_env(**kw)


class DiscreteObsEnv(echo_v0.EchoParallelEnv):
    """Echo with a Discrete observation space, for the non-Box error."""

    def observation_space(self, agent):
        import gymnasium

        return gymnasium.spaces.Discrete(3)


CONSTRUCTION_ERRORS = [
    # (id, callable, error type, substring of the message)
    ("k>=n", lambda: k_corruption_v0(echo(n_agents=3), 3), InvalidArgumentError, "k=3"),
    ("k<0", lambda: k_corruption_v0(echo(), -1), InvalidArgumentError, "k=-1"),
    ("k float", lambda: k_corruption_v0(echo(), 1.0), InvalidArgumentError, "k must be an int"),
    ("k bool", lambda: k_corruption_v0(echo(), True), InvalidArgumentError, "k must be an int"),
    (
        "subset mode",
        lambda: k_corruption_v0(echo(), 1, subset="all"),
        InvalidArgumentError,
        "subset='all'",
    ),
    (
        "subset unknown",
        lambda: k_corruption_v0(echo(), 1, subset=["bob"]),
        UnknownAgentError,
        "bob",
    ),
    (
        "subset too big",
        lambda: k_corruption_v0(echo(), 1, subset=["agent_0", "agent_1"]),
        InvalidArgumentError,
        "at most k=1",
    ),
    (
        "subset victim",
        lambda: k_corruption_v0(echo(), 1, subset=["agent_0"], victim="agent_0"),
        InvalidArgumentError,
        "victim",
    ),
    ("subset str", lambda: k_corruption_v0(echo(), 1, subset=("agent_0",)), None, None),
    (
        "victim unknown",
        lambda: k_corruption_v0(echo(), 1, victim="bob"),
        UnknownAgentError,
        "victim='bob'",
    ),
    (
        "adversary bad str",
        lambda: k_corruption_v0(echo(), 1, adversary="smart"),
        InvalidArgumentError,
        "adversary='smart'",
    ),
    (
        "adversary not callable",
        lambda: k_corruption_v0(echo(), 1, adversary=3),
        InvalidArgumentError,
        "adversary must be",
    ),
    (
        "adversary dict unknown",
        lambda: k_corruption_v0(echo(), 1, adversary={"bob": "random"}),
        UnknownAgentError,
        "bob",
    ),
    (
        "adversary dict missing",
        lambda: k_corruption_v0(echo(), 1, adversary={"agent_0": "random"}),
        InvalidArgumentError,
        "agent_1",
    ),
    (
        "observes",
        lambda: k_corruption_v0(echo(), 1, adversary_observes="world"),
        InvalidArgumentError,
        "adversary_observes",
    ),
    (
        "twice",
        lambda: k_corruption_v0(k_corruption_v0(echo(), 1), 1),
        AgentIDCollisionError,
        "already exist",
    ),
    (
        "eps>1",
        lambda: partial_control_v0(echo(), "agent_0", 1.5),
        InvalidArgumentError,
        "epsilon=1.5",
    ),
    (
        "eps<0",
        lambda: partial_control_v0(echo(), "agent_0", -0.1),
        InvalidArgumentError,
        "epsilon=-0.1",
    ),
    (
        "eps nan",
        lambda: partial_control_v0(echo(), "agent_0", math.nan),
        InvalidArgumentError,
        "epsilon=nan",
    ),
    (
        "eps inf",
        lambda: partial_control_v0(echo(), "agent_0", math.inf),
        InvalidArgumentError,
        "epsilon=inf",
    ),
    (
        "eps str",
        lambda: partial_control_v0(echo(), "agent_0", "0.5x"),
        InvalidArgumentError,
        "epsilon must be a real",
    ),
    ("pc agent", lambda: partial_control_v0(echo(), "bob", 0.5), UnknownAgentError, "agent='bob'"),
    (
        "pc victim self",
        lambda: partial_control_v0(echo(), "agent_0", 0.5, victim="agent_0"),
        InvalidArgumentError,
        "victim",
    ),
    (
        "pc benign",
        lambda: partial_control_v0(echo(), "agent_0", 0.5, benign_policy="greedy"),
        InvalidArgumentError,
        "benign_policy='greedy'",
    ),
    (
        "prior sum",
        lambda: byzantine_v0(echo(n_agents=2), prior={(0, 0): 0.5, (1, 0): 0.4}),
        InvalidPriorError,
        "sum to",
    ),
    (
        "prior length",
        lambda: byzantine_v0(echo(n_agents=2), prior={(0, 0, 0): 1.0}),
        InvalidPriorError,
        "exactly n=2",
    ),
    (
        "prior all agents",
        lambda: byzantine_v0(echo(n_agents=2), prior={(1, 1): 1.0}),
        InvalidPriorError,
        "all n=2",
    ),
    (
        "prior values",
        lambda: byzantine_v0(echo(n_agents=2), prior={(0, 2): 1.0}),
        InvalidPriorError,
        "0 (benign) or 1",
    ),
    (
        "prior negative",
        lambda: byzantine_v0(echo(n_agents=2), prior={(0, 0): 1.5, (1, 0): -0.5}),
        InvalidPriorError,
        ">= 0",
    ),
    (
        "prior empty",
        lambda: byzantine_v0(echo(n_agents=2), prior={}),
        InvalidPriorError,
        "non-empty",
    ),
    (
        "reveal images",
        lambda: byzantine_v0(pursuit_v5.parallel_env(max_cycles=5), reveal_types=True),
        UnsupportedSpaceError,
        "1-D Box",
    ),
    ("sp eps", lambda: state_perturbation_v0(echo(), -1.0), InvalidArgumentError, "epsilon=-1.0"),
    (
        "sp eps nan",
        lambda: state_perturbation_v0(echo(), math.nan),
        InvalidArgumentError,
        "epsilon=nan",
    ),
    (
        "sp norm",
        lambda: state_perturbation_v0(echo(), 0.1, norm="l1"),
        InvalidArgumentError,
        "norm='l1'",
    ),
    (
        "sp attack str",
        lambda: state_perturbation_v0(echo(), 0.1, attack="fgsm"),
        InvalidArgumentError,
        "attack='fgsm'",
    ),
    (
        "sp attack obj",
        lambda: state_perturbation_v0(echo(), 0.1, attack=3),
        InvalidArgumentError,
        "attack must be",
    ),
    (
        "sp agents",
        lambda: state_perturbation_v0(echo(), 0.1, agents=["bob"]),
        UnknownAgentError,
        "bob",
    ),
    (
        "sp single id",
        lambda: state_perturbation_v0(echo(), 0.1, agents="agent_0"),
        InvalidArgumentError,
        "list of agent IDs",
    ),
    (
        "sp discrete",
        lambda: state_perturbation_v0(DiscreteObsEnv(), 0.1),
        UnsupportedSpaceError,
        "Box",
    ),
    ("freeze unknown", lambda: freeze_v0(echo(), {"bob": "random"}), UnknownAgentError, "bob"),
    (
        "freeze all",
        lambda: freeze_v0(echo(n_agents=1), {"agent_0": "random"}),
        InvalidArgumentError,
        "every agent",
    ),
    ("freeze empty", lambda: freeze_v0(echo(), {}), InvalidArgumentError, "non-empty"),
    (
        "single spaces",
        lambda: to_single_agent(state_perturbation_v0(echo(), 0.1, agents=["agent_0"])),
        InvalidArgumentError,
        "share its spaces",
    ),
]


@pytest.mark.parametrize(
    "make,error,text", [c[1:] for c in CONSTRUCTION_ERRORS], ids=[c[0] for c in CONSTRUCTION_ERRORS]
)
def test_construction_errors(make, error, text):
    if error is None:  # a tuple is an accepted list-like subset
        make()
        return
    with pytest.raises(error, match=None) as info:
        make()
    assert text in str(info.value), str(info.value)


def test_errors_are_value_or_type_errors():
    """Typed errors also subclass the builtin a user would catch."""
    assert issubclass(InvalidArgumentError, ValueError)
    assert issubclass(UnsupportedSpaceError, TypeError)
    assert issubclass(UnknownAgentError, KeyError)


RESET_ERRORS = [
    (
        "options too big",
        lambda: k_corruption_v0(echo(), 1).reset(
            seed=0, options={"attacked": ["agent_0", "agent_1"]}
        ),
        InvalidArgumentError,
        "at most k=1",
    ),
    (
        "options unknown",
        lambda: k_corruption_v0(echo(), 1).reset(seed=0, options={"attacked": ["bob"]}),
        UnknownAgentError,
        "bob",
    ),
    (
        "options victim in K",
        lambda: k_corruption_v0(echo(), 1).reset(
            seed=0, options={"attacked": ["agent_0"], "victim": "agent_0"}
        ),
        InvalidArgumentError,
        "victim",
    ),
    (
        "options victim unknown",
        lambda: k_corruption_v0(echo(), 1).reset(seed=0, options={"victim": "bob"}),
        UnknownAgentError,
        "bob",
    ),
    (
        "sampler too big",
        lambda: k_corruption_v0(echo(), 1, subset=lambda rng, c, v: c).reset(seed=0),
        InvalidArgumentError,
        "sampler",
    ),
    (
        "sampler victim",
        lambda: k_corruption_v0(
            echo(), 1, victim="agent_0", subset=lambda rng, c, v: ["agent_0"]
        ).reset(seed=0),
        InvalidArgumentError,
        "victim",
    ),
    (
        "theta support",
        lambda: byzantine_v0(echo(n_agents=2)).reset(seed=0, options={"theta": (1, 1)}),
        InvalidArgumentError,
        "support",
    ),
    (
        "options not a dict",
        lambda: k_corruption_v0(echo(), 1).reset(seed=0, options=["agent_0"]),
        InvalidArgumentError,
        "options must be a dict",
    ),
    (
        "seed negative",
        lambda: k_corruption_v0(echo(), 1).reset(seed=-1),
        InvalidArgumentError,
        "seed",
    ),
    (
        "single none",
        lambda: to_single_agent(k_corruption_v0(echo(n_agents=3), 1, adversary="random")).reset(
            seed=0
        ),
        InvalidArgumentError,
        "exactly one agent",
    ),
]


@pytest.mark.parametrize(
    "call,error,text", [c[1:] for c in RESET_ERRORS], ids=[c[0] for c in RESET_ERRORS]
)
def test_reset_errors(call, error, text):
    with pytest.raises(error) as info:
        call()
    assert text in str(info.value), str(info.value)


@pytest.mark.parametrize("tm_name", list(THREAT_MODELS))
def test_step_with_missing_or_extra_actions_raises(tm_name):
    env = THREAT_MODELS[tm_name].make(echo(), "exposed")
    env.reset(seed=0)
    actions = dict.fromkeys(env.agents, 0)
    missing = dict(actions)
    missing.pop(env.agents[0])
    with pytest.raises(MissingActionError, match=env.agents[0]):
        env.step(missing)
    with pytest.raises(MissingActionError, match="ghost"):
        env.step({**actions, "ghost": 0})


@pytest.mark.parametrize(
    "make",
    [
        lambda p: k_corruption_v0(echo(), 1, subset=["agent_1"], adversary=p),
        lambda p: byzantine_v0(echo(), prior={(0, 1, 0): 1.0}, adversary=p),
        lambda p: partial_control_v0(echo(), "agent_1", 1.0, adversary=p),
        lambda p: partial_control_v0(echo(), "agent_1", 0.0, benign_policy=p),
        lambda p: freeze_v0(echo(), {"agent_1": p}),
    ],
    ids=[
        "k_corruption",
        "byzantine",
        "partial_control_adversary",
        "partial_control_benign",
        "freeze",
    ],
)
def test_policy_returning_action_outside_space_raises_at_that_step(make):
    calls = []

    def policy(obs):
        calls.append(1)
        return 7 if len(calls) == 2 else 1  # Discrete(5): 7 is outside, at the second step

    env = make(policy)
    env.reset(seed=0)
    actions = {a: (0 if not a.endswith("_adversary") else 0) for a in env.agents}
    env.step(actions)
    with pytest.raises(InvalidActionError, match=r"agent_1.*7"):
        env.step(actions)
    assert len(calls) == 2


def test_state_perturbation_policy_and_exposed_out_of_range_raise():
    env = state_perturbation_v0(echo(), 0.1, agents=["agent_0"], attack=lambda obs: np.full(3, 2.0))
    with pytest.raises(InvalidActionError, match="agent_0"):
        env.reset(seed=0)
    env = state_perturbation_v0(echo(), 0.1, agents=["agent_0"])
    env.reset(seed=0)
    actions = {a: 0 for a in env.agents}
    actions["agent_0_obs_adversary"] = np.full(3, 1.5, np.float32)
    with pytest.raises(InvalidActionError, match="agent_0"):
        env.step(actions)

    class Cheat:
        def perturb(self, agent, obs, epsilon, norm, low, high, rng):
            return obs + 10 * epsilon

    env = state_perturbation_v0(echo(), 0.1, attack=Cheat())
    with pytest.raises(InvalidActionError, match="admissible"):
        env.reset(seed=0)


def test_review_findings_raise_typed_errors():
    with pytest.raises(InvalidPriorError, match="non-empty dict"):
        byzantine_v0(echo(n_agents=2), prior=[((0, 0), 1.0)])
    with pytest.raises(InvalidArgumentError, match="0/1"):
        byzantine_v0(echo(n_agents=2)).reset(seed=0, options={"theta": (0.9, 0)})
    env = state_perturbation_v0(echo(), 0.0, agents=["agent_0"])
    env.reset(seed=0)
    actions = {a: 0 for a in env.agents}
    actions["agent_0_obs_adversary"] = np.array([np.nan, 0, 0], np.float32)
    with pytest.raises(InvalidActionError, match="agent_0"):
        env.step(actions)  # epsilon = 0 does not excuse an invalid action
    with pytest.raises(InvalidArgumentError, match="'random' or a callable policy;"):
        freeze_v0(echo(), {"agent_0": 3})


def test_freeze_play_out_limit(monkeypatch):
    import adv_wrappers.freeze as freeze_module
    from adv_wrappers import PlayOutLimitError

    monkeypatch.setattr(freeze_module, "MAX_PLAY_OUT_STEPS", 2)
    env = freeze_v0(echo(n_agents=2, max_cycles=10, deaths={"agent_0": 1}), {"agent_1": "random"})
    env.reset(seed=0)
    with pytest.raises(PlayOutLimitError, match="played out 2 steps"):
        env.step({"agent_0": 0})
