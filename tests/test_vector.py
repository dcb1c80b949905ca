"""Tests of ``adv_wrappers.vector``: vector envs equal independent copies stepped one by one.

The core check (``test_matches_independent_copies``) steps a vector env and ``num_envs``
reference copies with the same seeded random actions and compares every output exactly,
across auto-resets; it asserts how many copy-steps it compared and how many resets it saw.
"""

from __future__ import annotations

import doctest
import multiprocessing as mp
import sys
from functools import partial
from typing import Any

import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import data_equivalence
from mpe2 import simple_spread_v3, simple_tag_v3
from pettingzoo import ParallelEnv
from pettingzoo.sisl import multiwalker_v9, pursuit_v5

from adv_wrappers import vector
from adv_wrappers.errors import (
    InvalidActionError,
    InvalidArgumentError,
    MissingActionError,
    UnknownAgentError,
    UnsupportedSpaceError,
)
from adv_wrappers.registry import SLOTS, THREAT_MODELS
from adv_wrappers.vector import (
    SubprocParallelVectorEnv,
    SyncParallelVectorEnv,
    VectorEnvStateError,
    make_vector_env,
)

BACKENDS = ["sync", "subproc"]

# ----------------------------------------------------------------------------- tiny envs

AGENTS = ("a", "b", "c", "never")
# env.agents after reset (entry 0) and after each step; the episode ends at the empty entry:
# "b" dies at step 2, "c" appears at step 3, "never" is never present.
SCHEDULE = (("a", "b"), ("a", "b"), ("a",), ("a", "c"), ())


class ScheduledEnv(ParallelEnv):
    """Echo env whose live agents follow ``schedule``.

    Agent ``k``'s observation is ``[t, k, draw, *last action it received]`` (cut or
    zero-padded to its obs size), where ``draw`` is drawn from the env's RNG at each reset, so
    a test sees which action reached which agent and which seed a copy got. Agents leaving
    the schedule are terminated; at the empty entry every acting agent is truncated. Its
    reward is ``10 * k + sum(action)``. Actions for agents not in ``env.agents`` or outside
    the space raise ``ValueError``.
    """

    metadata = {"name": "scheduled_v0"}

    def __init__(
        self,
        schedule: tuple[tuple[str, ...], ...] = SCHEDULE,
        possible_agents: tuple[str, ...] = AGENTS,
        action_spaces: dict[str, spaces.Space] | None = None,
        obs_dims: dict[str, int] | None = None,
        discrete_obs: bool = False,
        fail_at_step: int | None = None,
    ) -> None:
        self.schedule = schedule
        self.possible_agents = list(possible_agents)
        self.agents = []
        self.action_spaces = action_spaces or {a: spaces.Discrete(4) for a in possible_agents}
        dims = obs_dims or {a: 4 for a in possible_agents}
        if discrete_obs:
            self.observation_spaces = {a: spaces.Discrete(100) for a in possible_agents}
        else:
            self.observation_spaces = {
                a: spaces.Box(-1000.0, 1000.0, (dims[a],), np.float32) for a in possible_agents
            }
        self.discrete_obs = discrete_obs
        self.fail_at_step = fail_at_step
        self.np_random = np.random.default_rng()
        self.t = 0

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def _obs(self, agent: str) -> Any:
        k = self.possible_agents.index(agent) if agent in self.possible_agents else 99
        if self.discrete_obs:
            return (self.t * 7 + k + self.draw) % 100
        values = [self.t, k, self.draw, *np.ravel(self.last.get(agent, -1)).tolist()]
        space = self.observation_spaces.get(agent, spaces.Box(0, 1, (4,)))
        out = np.zeros(space.shape, np.float32)
        n = min(out.size, len(values))
        out[:n] = values[:n]
        return out

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.np_random = np.random.default_rng(seed)
        self.draw = int(self.np_random.integers(0, 100))
        self.t = 0
        self.last: dict[str, Any] = {}
        self.agents = list(self.schedule[0])
        infos = {a: {"draw": self.draw, "options": options} for a in self.agents}
        return {a: self._obs(a) for a in self.agents}, infos

    def step(self, actions: dict[str, Any]):
        if set(actions) != set(self.agents):
            raise ValueError(f"expected actions for {self.agents}, got {sorted(actions)}")
        for agent, action in actions.items():
            space = self.action_spaces[agent]
            ok = (
                isinstance(action, int) and space.contains(action)
                if isinstance(space, spaces.Discrete)
                else isinstance(action, np.ndarray) and space.contains(action)
            )
            if not ok:
                raise ValueError(f"bad action {action!r} for {agent} ({space})")
        self.t += 1
        if self.t == self.fail_at_step:
            raise ValueError(f"scheduled failure at step {self.t}")
        acting = self.agents
        self.last.update(actions)
        nxt = list(self.schedule[self.t])
        rewards = {
            a: 10.0 * self.possible_agents.index(a) + float(np.sum(actions[a])) for a in acting
        }
        if nxt:
            terminations = {a: a not in nxt for a in acting}
            truncations = {a: False for a in acting}
        else:
            terminations = {a: False for a in acting}
            truncations = {a: True for a in acting}
        shown = acting + [a for a in nxt if a not in acting]
        observations = {a: self._obs(a) for a in shown}
        infos = {a: {"t": self.t} for a in shown}
        self.agents = nxt
        return observations, rewards, terminations, truncations, infos


class StaticEnv(ParallelEnv):
    """Only spaces, for construction-time checks."""

    metadata = {"name": "static_v0"}

    def __init__(self, observation_spaces: dict, action_spaces: dict) -> None:
        self.possible_agents = list(observation_spaces)
        self.agents = list(self.possible_agents)
        self.observation_spaces = observation_spaces
        self.action_spaces = action_spaces

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]


def _failing_env_fn() -> ParallelEnv:
    raise KeyError("env construction failed on purpose")


# ----------------------------------------------------------------------------- reference


def pack_obs(observations: dict, agents: tuple, space_of: dict) -> np.ndarray:
    """The documented heterogeneity rule, written out independently of the module."""
    items = [space_of[a] for a in agents]
    if all(isinstance(s, spaces.Discrete) for s in items):
        out = np.zeros(len(agents), np.int64)
        for i, a in enumerate(agents):
            if a in observations:
                out[i] = observations[a]
        return out
    if all(s.shape == items[0].shape and s.dtype == items[0].dtype for s in items):
        out = np.zeros((len(agents), *items[0].shape), items[0].dtype)
        for i, a in enumerate(agents):
            if a in observations:
                out[i] = observations[a]
        return out
    size = max(int(np.prod(s.shape)) for s in items)
    out = np.zeros((len(agents), size), np.result_type(*[s.dtype for s in items]))
    for i, a in enumerate(agents):
        if a in observations:
            flat = np.asarray(observations[a]).reshape(-1)
            out[i, : flat.size] = flat
    return out


def mask(present, agents: tuple) -> np.ndarray:
    return np.array([a in present for a in agents])


def random_actions(rng: np.random.Generator, venv, alive: np.ndarray) -> np.ndarray:
    """Valid actions where alive; padding that must never be read everywhere else."""
    num_envs, num_agents = alive.shape
    if venv.action_nvec is not None:
        actions = rng.integers(0, venv.action_nvec, size=(num_envs, num_agents))
        actions[~alive] = -1  # out of range: the env would reject it
        return actions
    dim = venv.single_action_space.shape[0]
    actions = rng.uniform(-1, 1, size=(num_envs, num_agents, dim)).astype(np.float32)
    actions[~alive] = np.nan
    actions[:, np.arange(dim)[None, :] >= venv.action_sizes[:, None]] = np.nan
    return actions


def reference_action(venv, actions: np.ndarray, e: int, i: int) -> Any:
    space = venv.action_spaces[venv.agents[i]]
    if isinstance(space, spaces.Discrete):
        return int(actions[e, i])
    n = int(np.prod(space.shape))
    return actions[e, i, :n].reshape(space.shape).astype(space.dtype)


def run_against_copies(env_fn, num_envs: int, backend: str, steps: int, seed: int) -> dict:
    """Step a vector env and independent copies side by side; compare everything exactly.

    Returns counts: compared copy-steps, auto-resets, and copy-steps during which some but
    not all slots were alive (masks doing real work).
    """
    refs = [env_fn() for _ in range(num_envs)]
    stats = {"compared": 0, "resets": 0, "partial_alive": 0}
    with make_vector_env(env_fn, num_envs, backend=backend) as venv:
        agents, space_of = venv.agents, venv.observation_spaces
        assert agents == tuple(refs[0].possible_agents)
        obs, infos = venv.reset(seed=seed)
        for e, ref in enumerate(refs):
            ref_obs, ref_infos = ref.reset(seed=seed + e)
            np.testing.assert_array_equal(obs[e], pack_obs(ref_obs, agents, space_of))
            np.testing.assert_array_equal(infos["alive"][e], mask(ref.agents, agents))
            np.testing.assert_array_equal(infos["has_obs"][e], mask(ref_obs, agents))
            assert data_equivalence(infos["agent_infos"][e], ref_infos)
        rng = np.random.default_rng(seed)
        for _ in range(steps):
            alive = venv.alive
            actions = random_actions(rng, venv, alive)
            obs, rewards, terms, truncs, infos = venv.step(actions)
            assert rewards.dtype == np.float32 and terms.dtype == truncs.dtype == np.bool_
            for e, ref in enumerate(refs):
                np.testing.assert_array_equal(alive[e], mask(ref.agents, agents))
                ref_actions = {
                    a: reference_action(venv, actions, e, agents.index(a)) for a in ref.agents
                }
                ref_obs, ref_rew, ref_term, ref_trunc, ref_info = ref.step(ref_actions)
                expected_rew = np.zeros(len(agents), np.float32)
                for a, r in ref_rew.items():
                    expected_rew[agents.index(a)] = r
                np.testing.assert_array_equal(rewards[e], expected_rew)
                np.testing.assert_array_equal(terms[e], [bool(ref_term.get(a)) for a in agents])
                np.testing.assert_array_equal(truncs[e], [bool(ref_trunc.get(a)) for a in agents])
                np.testing.assert_array_equal(infos["acted"][e], alive[e])
                np.testing.assert_array_equal(infos["has_reward"][e], mask(ref_rew, agents))
                assert data_equivalence(infos["agent_infos"][e], ref_info)
                if ref.agents:
                    assert not infos["reset"][e]
                    assert infos["reset_infos"][e] is None
                    assert not infos["final_alive"][e].any()
                    assert not infos["final_obs"][e].any()
                else:
                    stats["resets"] += 1
                    assert infos["reset"][e]
                    np.testing.assert_array_equal(
                        infos["final_obs"][e], pack_obs(ref_obs, agents, space_of)
                    )
                    np.testing.assert_array_equal(infos["final_alive"][e], mask(ref_obs, agents))
                    ref_obs, reset_info = ref.reset()
                    assert data_equivalence(infos["reset_infos"][e], reset_info)
                np.testing.assert_array_equal(obs[e], pack_obs(ref_obs, agents, space_of))
                np.testing.assert_array_equal(infos["has_obs"][e], mask(ref_obs, agents))
                np.testing.assert_array_equal(infos["alive"][e], mask(ref.agents, agents))
                n_alive = int(infos["alive"][e].sum())
                stats["partial_alive"] += 0 < n_alive < len(agents)
                stats["compared"] += 1
    for ref in refs:
        ref.close()
    return stats


# (id, env_fn, num_envs, steps, exact resets or None, minimum resets, needs partial masks)
CASES = [
    (
        "simple_spread",
        partial(simple_spread_v3.parallel_env, N=3, max_cycles=25),
        3,
        60,
        6,
        6,
        False,
    ),
    ("simple_tag", partial(simple_tag_v3.parallel_env, max_cycles=25), 2, 60, 4, 4, False),
    (
        "pursuit",
        partial(pursuit_v5.parallel_env, max_cycles=50, n_pursuers=4, n_evaders=3),
        2,
        110,
        None,
        4,
        False,
    ),
    ("multiwalker", partial(multiwalker_v9.parallel_env, max_cycles=100), 2, 150, None, 2, False),
    (
        "multiwalker_remove_on_fall",
        partial(
            multiwalker_v9.parallel_env,
            max_cycles=100,
            terminate_on_fall=False,
            remove_on_fall=True,
        ),
        2,
        200,
        None,
        2,
        True,
    ),
    ("scheduled", ScheduledEnv, 3, 22, 15, 15, True),
    (
        "scheduled_box_actions_padded_obs",
        partial(
            ScheduledEnv,
            action_spaces={
                "a": spaces.Box(-1, 1, (3,), np.float32),
                "b": spaces.Box(-1, 1, (2, 2), np.float32),
                "c": spaces.Box(-1, 1, (1,), np.float64),
                "never": spaces.Box(-1, 1, (2,), np.float32),
            },
            obs_dims={"a": 6, "b": 7, "c": 4, "never": 2},
        ),
        2,
        13,
        6,
        6,
        True,
    ),
    (
        "scheduled_heterogeneous_discrete",
        partial(
            ScheduledEnv,
            action_spaces={
                "a": spaces.Discrete(2),
                "b": spaces.Discrete(7),
                "c": spaces.Discrete(3),
                "never": spaces.Discrete(1),
            },
            discrete_obs=True,
        ),
        2,
        9,
        4,
        4,
        True,
    ),
]


def threat_wrapped_spread(tm_name: str, slot: str) -> ParallelEnv:
    return THREAT_MODELS[tm_name].make(simple_spread_v3.parallel_env(N=3, max_cycles=10), slot)


# Every registered threat model in both slots, where the spaces can be batched (an exposed
# observation adversary has Box actions next to Discrete ones: see the test below).
# Attacked agents vanish and adversaries appear from episode to episode: 12 resets each.
CASES += [
    (
        f"{tm}_{slot}",
        partial(threat_wrapped_spread, tm, slot),
        3,
        40,
        12,
        12,
        tm in ("k_corruption_v0", "byzantine_v0"),  # attacked agents leave the list
    )
    for tm in THREAT_MODELS
    for slot in SLOTS
    if not (tm == "state_perturbation_v0" and slot == "exposed")
]


def test_exposed_observation_adversary_with_discrete_agents_mixes_actions():
    """Discrete spread agents beside their Box observation adversaries: one float action
    array (test_mixed_discrete_and_box_actions checks the values exactly)."""
    fn = partial(threat_wrapped_spread, "state_perturbation_v0", "exposed")
    with make_vector_env(fn, 2) as envs:
        n = len(envs.agents) // 2
        assert envs.action_sizes.tolist() == [1] * n + [int(envs.obs_sizes[0])] * n
        envs.reset(seed=0)
        actions = np.zeros((2, 2 * n, int(envs.action_sizes.max())), np.float32)
        actions[:, :n, 0] = 4
        _, rewards, *_ = envs.step(actions)
        assert rewards.shape == (2, 2 * n)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("env_fn", "num_envs", "steps", "exact_resets", "min_resets", "needs_partial"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_matches_independent_copies(
    backend, env_fn, num_envs, steps, exact_resets, min_resets, needs_partial
):
    stats = run_against_copies(env_fn, num_envs, backend, steps, seed=11)
    assert stats["compared"] == num_envs * steps
    if exact_resets is not None:
        assert stats["resets"] == exact_resets
    assert stats["resets"] >= min_resets > 0
    if needs_partial:
        assert stats["partial_alive"] > 0


def test_obs_layouts_of_real_envs():
    with make_vector_env(partial(simple_tag_v3.parallel_env, max_cycles=25), 2) as venv:
        obs, _ = venv.reset(seed=0)
        assert obs.shape == (2, 4, 16) and obs.dtype == np.float32
        assert venv.obs_sizes.tolist() == [16, 16, 16, 14]
        assert venv.single_observation_space.shape == (16,)
        assert not obs[:, 3, 14:].any()  # agent_0's padding
        assert venv.action_nvec.tolist() == [5, 5, 5, 5]
    pursuit = partial(pursuit_v5.parallel_env, max_cycles=50, n_pursuers=4, n_evaders=3)
    with make_vector_env(pursuit, 2) as venv:
        obs, _ = venv.reset(seed=0)
        assert obs.shape == (2, 4, 7, 7, 3)
        assert venv.single_observation_space == pursuit().observation_space("pursuer_0")
    with make_vector_env(partial(multiwalker_v9.parallel_env), 2) as venv:
        assert venv.single_action_space.shape == (4,)
        assert venv.action_nvec is None and venv.action_sizes.tolist() == [4, 4, 4]


# ----------------------------------------------------------------------------- masks


@pytest.mark.parametrize("backend", BACKENDS)
def test_masks_of_vanishing_appearing_and_absent_agents(backend):
    with make_vector_env(ScheduledEnv, 2, backend=backend) as venv:
        assert venv.agents == AGENTS and venv.num_agents == 4 and venv.num_envs == 2
        obs, infos = venv.reset(seed=[5, 9])
        draws = obs[:, 0, 2].copy()
        expected_draws = [np.random.default_rng(s).integers(0, 100) for s in (5, 9)]
        np.testing.assert_array_equal(draws, expected_draws)
        np.testing.assert_array_equal(infos["alive"], [[1, 1, 0, 0]] * 2)
        np.testing.assert_array_equal(obs[:, 1], [[0, 1, d, -1] for d in draws])
        assert not obs[:, 2:].any()
        steps = 0

        # step 1: both present agents act; c and never get padding that must not be read
        obs, rew, term, trunc, infos = venv.step([[1, 2, -9, -9], [0, 3, -9, -9]])
        steps += 1
        np.testing.assert_array_equal(obs[:, 0], [[1, 0, draws[0], 1], [1, 0, draws[1], 0]])
        np.testing.assert_array_equal(obs[:, 1], [[1, 1, draws[0], 2], [1, 1, draws[1], 3]])
        np.testing.assert_array_equal(rew, [[1, 12, 0, 0], [0, 13, 0, 0]])
        np.testing.assert_array_equal(infos["acted"], [[1, 1, 0, 0]] * 2)
        np.testing.assert_array_equal(infos["alive"], [[1, 1, 0, 0]] * 2)
        assert not term.any() and not trunc.any() and not infos["reset"].any()

        # step 2: b terminates; its last observation is still returned
        obs, rew, term, trunc, infos = venv.step([[3, 1, -9, -9], [2, 0, -9, -9]])
        steps += 1
        np.testing.assert_array_equal(term, [[0, 1, 0, 0]] * 2)
        np.testing.assert_array_equal(infos["alive"], [[1, 0, 0, 0]] * 2)
        np.testing.assert_array_equal(infos["has_obs"], [[1, 1, 0, 0]] * 2)
        np.testing.assert_array_equal(obs[:, 1], [[2, 1, draws[0], 1], [2, 1, draws[1], 0]])
        np.testing.assert_array_equal(venv.alive, [[1, 0, 0, 0]] * 2)

        # step 3: b is gone (padding), c appears with an observation but no reward
        obs, rew, term, trunc, infos = venv.step([[2, -9, -9, -9], [1, 99, 99, 99]])
        steps += 1
        np.testing.assert_array_equal(infos["acted"], [[1, 0, 0, 0]] * 2)
        np.testing.assert_array_equal(infos["alive"], [[1, 0, 1, 0]] * 2)
        np.testing.assert_array_equal(infos["has_obs"], [[1, 0, 1, 0]] * 2)
        np.testing.assert_array_equal(infos["has_reward"], [[1, 0, 0, 0]] * 2)
        np.testing.assert_array_equal(rew, [[2, 0, 0, 0], [1, 0, 0, 0]])
        assert not obs[:, 1].any() and not obs[:, 3].any()
        np.testing.assert_array_equal(obs[:, 2], [[3, 2, draws[0], -1], [3, 2, draws[1], -1]])

        # step 4: everyone truncates -> same-step auto-reset with the final obs kept
        obs, rew, term, trunc, infos = venv.step([[0, -9, 3, -9], [1, -9, 2, -9]])
        steps += 1
        np.testing.assert_array_equal(infos["reset"], [True, True])
        np.testing.assert_array_equal(trunc, [[1, 0, 1, 0]] * 2)
        np.testing.assert_array_equal(rew, [[0, 0, 23, 0], [1, 0, 22, 0]])
        np.testing.assert_array_equal(infos["final_alive"], [[1, 0, 1, 0]] * 2)
        final = infos["final_obs"]
        np.testing.assert_array_equal(final[:, 0], [[4, 0, draws[0], 0], [4, 0, draws[1], 1]])
        np.testing.assert_array_equal(final[:, 2], [[4, 2, draws[0], 3], [4, 2, draws[1], 2]])
        assert not final[:, 1].any() and not final[:, 3].any()
        assert infos["agent_infos"][0] == {"a": {"t": 4}, "c": {"t": 4}}
        # the new episode: first observations, new draws from the continuing RNG
        np.testing.assert_array_equal(infos["alive"], [[1, 1, 0, 0]] * 2)
        new_draws = obs[:, 0, 2]
        assert [r["a"]["draw"] for r in infos["reset_infos"]] == new_draws.tolist()
        np.testing.assert_array_equal(obs[:, 0], [[0, 0, d, -1] for d in new_draws])
        assert not obs[:, 2:].any()

        # step 5: no reset, final obs are zero again
        obs, rew, term, trunc, infos = venv.step([[0, 0, -9, -9], [0, 0, -9, -9]])
        steps += 1
        assert not infos["reset"].any() and not infos["final_obs"].any()
        assert infos["reset_infos"] == [None, None]
    assert steps == 5


def test_never_present_agent_stays_masked():
    schedule = (("a",), ("a",), ("a", "b"), ())
    with make_vector_env(partial(ScheduledEnv, schedule=schedule), 3) as venv:
        obs, infos = venv.reset(seed=0)
        seen = infos["alive"].copy()
        compared = 0
        rng = np.random.default_rng(0)
        for _ in range(10):
            obs, rew, term, trunc, infos = venv.step(random_actions(rng, venv, venv.alive))
            for key in ("alive", "acted", "has_obs", "has_reward", "final_alive"):
                seen |= infos[key]
            for array in (obs, rew, term, trunc, infos["final_obs"]):
                assert not array[:, 2:].any()  # "c" and "never" slots stay zero
            compared += 1
        np.testing.assert_array_equal(seen, [[1, 1, 0, 0]] * 3)
    assert compared == 10


# ----------------------------------------------------------------------------- spaces


def test_padding_rule_spaces():
    env_fn = partial(
        StaticEnv,
        {
            "x": spaces.Box(-1.0, 1.0, (2,), np.float32),
            "y": spaces.Box(0, 5, (2, 2), np.uint8),
        },
        {"x": spaces.Discrete(3), "y": spaces.Discrete(5, start=1)},
    )
    venv = SyncParallelVectorEnv([env_fn, env_fn])
    box = venv.single_observation_space
    assert box.shape == (4,) and box.dtype == np.float32
    np.testing.assert_array_equal(box.low, [-1, -1, 0, 0])
    np.testing.assert_array_equal(box.high, [5, 5, 5, 5])
    assert venv.obs_sizes.tolist() == [2, 4]
    assert venv.single_action_space == spaces.Discrete(6)
    assert venv.action_nvec.tolist() == [3, 5]
    assert venv.observation_spaces["y"] == env_fn().observation_space("y")
    venv.close()


def test_equal_shapes_keep_shape_and_widen_bounds():
    obs = {
        "x": spaces.Box(-1.0, 1.0, (2, 3), np.float32),
        "y": spaces.Box(-2.0, 0.5, (2, 3), np.float32),
    }
    act = {"x": spaces.Box(-1, 1, (2,), np.float32), "y": spaces.Box(-3, 2, (3,), np.float32)}
    with SyncParallelVectorEnv([partial(StaticEnv, obs, act)]) as venv:
        assert venv.single_observation_space.shape == (2, 3)
        assert (venv.single_observation_space.low == -2).all()
        assert (venv.single_observation_space.high == 1).all()
        np.testing.assert_array_equal(venv.single_action_space.low, [-3, -3, -3])
        np.testing.assert_array_equal(venv.single_action_space.high, [2, 2, 2])
        assert venv.action_sizes.tolist() == [2, 3]
    same = {"x": obs["x"], "y": obs["x"]}
    with SyncParallelVectorEnv([partial(StaticEnv, same, act)]) as venv:
        assert venv.single_observation_space is obs["x"]


@pytest.mark.parametrize(
    ("obs_spaces", "act_spaces", "match"),
    [
        (
            {
                "x": spaces.Dict(
                    {
                        "observation": spaces.Box(0, 1, (3,)),
                        "action_mask": spaces.Box(0, 1, (2,), np.int8),
                    }
                )
            },
            {"x": spaces.Discrete(2)},
            r"'x'.*action_mask",
        ),
        ({"x": spaces.Tuple([spaces.Discrete(2)])}, {"x": spaces.Discrete(2)}, r"'x'.*Tuple"),
        (
            {"x": spaces.Box(0, 1, (3,)), "y": spaces.Discrete(3)},
            {"x": spaces.Discrete(2), "y": spaces.Discrete(2)},
            r"mix Box \(agents \['x'\]\) and Discrete \(agents \['y'\]\)",
        ),
        (
            {"x": spaces.Box(0, 1, (3,))},
            {"x": spaces.MultiDiscrete([2, 2])},
            r"'x'.*MultiDiscrete",
        ),
    ],
    ids=["action_mask_dict", "tuple", "mixed_obs", "multidiscrete"],
)
def test_unsupported_spaces(obs_spaces, act_spaces, match):
    with pytest.raises(UnsupportedSpaceError, match=match):
        SyncParallelVectorEnv([partial(StaticEnv, obs_spaces, act_spaces)])


# ----------------------------------------------------------------------------- errors


def test_bad_arguments():
    with pytest.raises(InvalidArgumentError, match=r"backend must be one of \('sync', 'subproc'\)"):
        make_vector_env(ScheduledEnv, 2, backend="threads")
    for bad in (0, -1):
        with pytest.raises(InvalidArgumentError, match=r"num_envs must be an int >= 1; got"):
            make_vector_env(ScheduledEnv, bad)
    for bad in (1.5, True, "2"):
        with pytest.raises(InvalidArgumentError, match=r"num_envs must be an int >= 1"):
            make_vector_env(ScheduledEnv, bad)
    with pytest.raises(InvalidArgumentError, match="env_fn must be a callable"):
        make_vector_env(ScheduledEnv(), 2)
    with pytest.raises(InvalidArgumentError, match="non-empty sequence"):
        SyncParallelVectorEnv([])
    with pytest.raises(InvalidArgumentError, match=r"env_fns\[1\] must be a callable"):
        SyncParallelVectorEnv([ScheduledEnv, 3])
    with pytest.raises(InvalidArgumentError, match="context must be None or one of"):
        SubprocParallelVectorEnv([ScheduledEnv], context="threads")
    with pytest.raises(InvalidArgumentError, match="context is only used by backend='subproc'"):
        make_vector_env(ScheduledEnv, 2, context="spawn")
    with pytest.raises(InvalidArgumentError, match="AECEnv"):
        make_vector_env(simple_spread_v3.env, 2)
    with make_vector_env(ScheduledEnv, 2) as venv:
        with pytest.raises(InvalidArgumentError, match=r"one seed per copy \(2\); got 3"):
            venv.reset(seed=[1, 2, 3])
        with pytest.raises(InvalidArgumentError, match="seed must be an int"):
            venv.reset(seed="7")


def test_bad_action_arrays():
    with make_vector_env(ScheduledEnv, 2) as venv:
        venv.reset(seed=0)
        with pytest.raises(InvalidArgumentError, match=r"shape .*\(2, 4\); got \(2, 4, 1\)"):
            venv.step(np.zeros((2, 4, 1), np.int64))
        with pytest.raises(InvalidArgumentError, match=r"shape .*\(2, 4\); got \(3, 4\)"):
            venv.step(np.zeros((3, 4), np.int64))
        with pytest.raises(InvalidArgumentError, match="integer array"):
            venv.step(np.zeros((2, 4), np.float32))
        with pytest.raises(InvalidActionError, match=r"actions\[1, 1\] = 4 for agent 'b'"):
            venv.step([[0, 0, 0, 0], [0, 4, 0, 0]])
        # out-of-range values where agents are not alive are padding: accepted
        venv.step([[0, 0, 50, -50], [0, 0, 7, 7]])
    box_env = partial(
        ScheduledEnv,
        action_spaces={a: spaces.Box(-1, 1, (2,) if a == "a" else (3,)) for a in AGENTS},
        obs_dims={a: 6 for a in AGENTS},
    )
    with make_vector_env(box_env, 2) as venv:
        venv.reset(seed=0)
        actions = np.zeros((2, 4, 3), np.float32)
        actions[:, 0, 2] = np.nan  # agent a has 2 dims: its third column is padding
        actions[:, 2:] = np.nan  # c and never are not alive
        venv.step(actions)
        actions[1, 1, 0] = np.nan
        with pytest.raises(MissingActionError, match=r"actions\[1, 1\] \(agent 'b'"):
            venv.step(actions)
        with pytest.raises(InvalidArgumentError, match=r"max_action_dim\] = \(2, 4, 3\)"):
            venv.step(np.zeros((2, 4), np.float32))
        with pytest.raises(InvalidArgumentError, match="real-valued"):
            venv.step(np.zeros((2, 4, 3), np.complex64))


@pytest.mark.parametrize("backend", BACKENDS)
def test_mismatched_copies(backend):
    cls = SyncParallelVectorEnv if backend == "sync" else SubprocParallelVectorEnv
    other_agents = partial(ScheduledEnv, possible_agents=("a", "b", "c", "d"))
    with pytest.raises(InvalidArgumentError, match=r"env_fns\[1\] has possible_agents"):
        cls([ScheduledEnv, other_agents])
    other_action = partial(ScheduledEnv, action_spaces={a: spaces.Discrete(5) for a in AGENTS})
    with pytest.raises(InvalidArgumentError, match=r"env_fns\[2\] gives agent 'a' the action"):
        cls([ScheduledEnv, ScheduledEnv, other_action])
    other_obs = partial(ScheduledEnv, obs_dims={a: 5 for a in AGENTS})
    with pytest.raises(InvalidArgumentError, match=r"env_fns\[1\] gives agent 'a' the observ"):
        cls([ScheduledEnv, other_obs])


def test_unknown_agent_from_env():
    bad = partial(ScheduledEnv, schedule=(("a",), ("a", "intruder"), ()))
    with make_vector_env(bad, 1) as venv:
        venv.reset(seed=0)
        with pytest.raises(UnknownAgentError, match="'intruder', which is not in"):
            venv.step([[0, 0, 0, 0]])
        with pytest.raises(VectorEnvStateError, match="reset"):
            venv.step([[0, 0, 0, 0]])


@pytest.mark.parametrize("backend", BACKENDS)
def test_call_order_errors(backend):
    venv = make_vector_env(ScheduledEnv, 2, backend=backend)
    with pytest.raises(VectorEnvStateError, match=r"step\(\) called before reset\(\)"):
        venv.step(np.zeros((2, 4), np.int64))
    venv.reset()
    venv.close()
    venv.close()  # idempotent
    with pytest.raises(VectorEnvStateError, match="after close"):
        venv.reset()
    with pytest.raises(VectorEnvStateError, match="after close"):
        venv.step(np.zeros((2, 4), np.int64))


# ----------------------------------------------------------------------------- seeding


@pytest.mark.parametrize("backend", BACKENDS)
def test_seeding_and_options(backend):
    with make_vector_env(ScheduledEnv, 3, backend=backend) as venv:
        obs_int, _ = venv.reset(seed=40)
        obs_list, _ = venv.reset(seed=[40, 41, 42])
        np.testing.assert_array_equal(obs_int, obs_list)
        expected = [np.random.default_rng(40 + i).integers(0, 100) for i in range(3)]
        np.testing.assert_array_equal(obs_int[:, 0, 2], expected)
        obs_mixed, _ = venv.reset(seed=[None, 41, 40])
        np.testing.assert_array_equal(obs_mixed[1:, 0, 2], expected[1::-1])
        _, infos = venv.reset(seed=1, options={"level": 3})
        assert all(i["a"]["options"] == {"level": 3} for i in infos["agent_infos"])
        steps = 0
        while True:  # auto-resets reuse the last reset's options
            _, _, _, _, infos = venv.step(np.zeros((3, 4), np.int64))
            steps += 1
            if infos["reset"].all():
                break
        assert steps == len(SCHEDULE) - 1
        assert all(r["a"]["options"] == {"level": 3} for r in infos["reset_infos"])


def test_copy_flag():
    with make_vector_env(ScheduledEnv, 2) as venv:
        first, _ = venv.reset(seed=0)
        venv.step(np.zeros((2, 4), np.int64))
        assert first[0, 0, 0] == 0  # a fresh array, not overwritten by the step
    with make_vector_env(ScheduledEnv, 2, copy=False) as venv:
        first, _ = venv.reset(seed=0)
        second, *_ = venv.step(np.zeros((2, 4), np.int64))
        assert first[0, 0, 0] == 1 and np.shares_memory(first, second)


# ----------------------------------------------------------------------------- subproc


def test_worker_exception_reaches_parent():
    venv = make_vector_env(partial(ScheduledEnv, fail_at_step=2), 2, backend="subproc")
    venv.reset(seed=0)
    venv.step(np.zeros((2, 4), np.int64))
    with pytest.raises(ValueError) as caught:
        venv.step(np.zeros((2, 4), np.int64))
    assert type(caught.value) is ValueError
    assert str(caught.value) == "scheduled failure at step 2"
    if sys.version_info >= (3, 11):
        assert "raised in worker 0" in caught.value.__notes__[0]
    cause = str(caught.value.__cause__)
    assert "Traceback (most recent call last)" in cause
    assert "in step" in cause and "raise ValueError" in cause
    with pytest.raises(VectorEnvStateError, match="reset"):
        venv.step(np.zeros((2, 4), np.int64))
    obs, _ = venv.reset(seed=0)  # the workers survived and are usable again
    assert obs.shape == (2, 4, 4)
    processes = list(venv._processes)
    venv.close()
    assert [p.exitcode for p in processes] == [0, 0]


def test_worker_construction_error_reaches_parent():
    with pytest.raises(KeyError, match="env construction failed on purpose"):
        SubprocParallelVectorEnv([ScheduledEnv, _failing_env_fn])


def test_workers_exit_cleanly_and_spawn_context():
    env_fn = partial(simple_spread_v3.parallel_env, N=3, max_cycles=25)
    with SubprocParallelVectorEnv([env_fn, env_fn], context="spawn") as venv:
        processes = list(venv._processes)
        assert all(p.is_alive() for p in processes)
        obs, _ = venv.reset(seed=3)
        with SyncParallelVectorEnv([env_fn, env_fn]) as sync:
            sync_obs, _ = sync.reset(seed=3)
            np.testing.assert_array_equal(obs, sync_obs)
            actions = np.ones((2, 3), np.int64)
            compared = 0
            for _ in range(30):
                got, expected = venv.step(actions), sync.step(actions)
                for a, b in zip(got[:4], expected[:4], strict=True):
                    np.testing.assert_array_equal(a, b)
                np.testing.assert_array_equal(got[4]["final_obs"], expected[4]["final_obs"])
                compared += 1
    assert compared == 30
    assert [p.exitcode for p in processes] == [0, 0]


def test_module_docstring_example():
    result = doctest.testmod(vector, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# ----------------------------------------------------------------------------- global state


@pytest.mark.parametrize("backend", BACKENDS)
def test_state_matches_independent_copies(backend):
    env_fn = partial(simple_spread_v3.parallel_env, N=3, max_cycles=5)
    references = [env_fn() for _ in range(2)]
    with make_vector_env(env_fn, 2, backend=backend, state=True) as venv:
        assert venv.state_space == references[0].state_space
        _, infos = venv.reset(seed=7)
        for i, ref in enumerate(references):
            ref.reset(seed=7 + i)
            np.testing.assert_array_equal(infos["state"][i], ref.state())
        rng = np.random.default_rng(0)
        compared = resets = 0
        for _ in range(12):
            actions = rng.integers(0, 5, size=(2, 3))
            _, _, _, _, infos = venv.step(actions)
            for i, ref in enumerate(references):
                ref.step({a: int(actions[i, k]) for k, a in enumerate(ref.possible_agents)})
                if not ref.agents:
                    assert infos["reset"][i]
                    np.testing.assert_array_equal(infos["final_state"][i], ref.state())
                    ref.reset()
                    resets += 1
                else:
                    assert not infos["final_state"][i].any()
                np.testing.assert_array_equal(infos["state"][i], ref.state())
                compared += 1
    assert compared == 24 and resets == 4


def test_state_errors_and_default():
    with make_vector_env(ScheduledEnv, 2) as venv:
        _, infos = venv.reset(seed=0)
        assert venv.state_space is None and "state" not in infos
        _, _, _, _, infos = venv.step(np.zeros((2, 4), np.int64))
        assert "state" not in infos and "final_state" not in infos
    with pytest.raises(InvalidArgumentError, match="state_space"):
        make_vector_env(ScheduledEnv, 2, state=True)

    class DiscreteState(ScheduledEnv):
        state_space = spaces.Discrete(3)

        def state(self):
            return 0

    with pytest.raises(UnsupportedSpaceError, match="Box state_space"):
        make_vector_env(DiscreteState, 1, state=True)
    with pytest.raises(UnsupportedSpaceError, match="Box state_space"):
        make_vector_env(DiscreteState, 1, backend="subproc", state=True)


def test_subproc_spawns_instead_of_forking_once_jax_is_imported(monkeypatch):
    """Forking a process in which JAX's threads run can deadlock the child (SMAX envs): the
    default start method is then "spawn"; an explicit context is kept."""
    import types

    from adv_envs import echo_v0

    monkeypatch.setitem(sys.modules, "jax", types.ModuleType("jax"))
    fns = [lambda: echo_v0.parallel_env(n_agents=2)] * 2
    envs = SubprocParallelVectorEnv(fns)
    try:
        assert [type(p).__name__ for p in envs._processes] == ["SpawnProcess"] * 2
        obs, _ = envs.reset(seed=0)
        assert obs.shape == (2, 2, 2)
    finally:
        envs.close()
    if "fork" in mp.get_all_start_methods():
        envs = SubprocParallelVectorEnv(fns, context="fork")
        try:
            assert [type(p).__name__ for p in envs._processes] == ["ForkProcess"] * 2
        finally:
            envs.close()


def _same_step_env(max_cycles=3):
    from adv_envs import echo_v0
    from adv_wrappers import state_perturbation_v0

    return state_perturbation_v0(
        echo_v0.parallel_env(n_agents=2, continuous=True, max_cycles=max_cycles),
        0.5,
        agents=["agent_0"],
        timing="same_step",
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_step_perturbation_through_the_vector_env(backend):
    """perturb() then step(), on 2 copies, against a reference copy driven by hand: exact."""
    from adv_wrappers.errors import CallOrderError

    envs = make_vector_env(partial(_same_step_env), 2, backend=backend)
    ref = _same_step_env()
    agents = list(envs.agents)
    assert agents == ["agent_0", "agent_1", "agent_0_obs_adversary"]
    rng = np.random.default_rng(0)
    obs, _ = envs.reset(seed=0)
    ref_obs, _ = ref.reset(seed=0)
    assert np.isnan(obs[:, 0]).all()  # withheld until perturb()
    compared = resets = 0
    for _ in range(7):
        actions = rng.uniform(-1, 1, (2, 3, 2)).astype(np.float32)
        obs, infos = envs.perturb(actions)
        assert infos["perturbed"].all()
        u = actions[0, 2]
        ref_obs, _ = ref.perturb({"agent_0_obs_adversary": u})
        np.testing.assert_array_equal(obs[0, 0], ref_obs["agent_0"])  # exact, copy 0
        np.testing.assert_array_equal(obs[0, 2], ref_obs["agent_0_obs_adversary"])
        gt = infos["agent_infos"][1]["agent_1"]["state_perturbation"]
        np.testing.assert_allclose(
            obs[1, 0], np.clip(gt["true_obs"]["agent_0"] + 0.5 * actions[1, 2], -1, 1)
        )
        compared += 1
        obs, rewards, _, truncs, infos = envs.step(actions)
        ref_actions = {
            "agent_0": actions[0, 0, :1], "agent_1": actions[0, 1, :1],
            "agent_0_obs_adversary": u,
        }  # fmt: skip
        ref_obs, ref_rewards, _, _, _ = ref.step(ref_actions)
        np.testing.assert_array_equal(rewards[0], [ref_rewards[a] for a in agents])
        if infos["reset"][0]:
            resets += 1
            ref_obs, _ = ref.reset()
        else:
            np.testing.assert_array_equal(obs[0, 2], ref_obs["agent_0_obs_adversary"])
    assert compared == 7 and resets == 2  # episodes of 3 steps: resets after steps 3 and 6
    envs.perturb(actions)
    with pytest.raises(CallOrderError):  # twice for one observation
        envs.perturb(actions)
    envs.close()


@pytest.mark.parametrize("backend", ["sync", "subproc"])
def test_mixed_discrete_and_box_actions(backend):
    """Discrete agents beside a Box adversary (state_perturbation_v0's exposed slot): one
    float array, each Discrete agent's integral value in column 0; 6 steps of 2 copies
    compared with a copy driven by hand (its rewards: the executed actions, exact)."""
    envs = make_vector_env(partial(_mixed_env), 2, backend=backend)
    ref = _mixed_env()
    assert envs.agents == ("agent_0", "agent_1", "agent_0_obs_adversary")
    assert envs.action_nvec is None and envs.action_sizes.tolist() == [1, 1, 2]
    assert envs.single_action_space.shape == (2,)
    rng = np.random.default_rng(1)
    envs.reset(seed=0)
    ref.reset(seed=0)
    compared = 0
    for _ in range(6):
        actions = np.zeros((2, 3, 2), np.float32)
        actions[:, :2, 0] = rng.integers(0, 5, (2, 2))
        actions[:, 2] = rng.uniform(-1, 1, (2, 2))
        _, rewards, _, _, infos = envs.step(actions)
        ref_actions = {"agent_0": int(actions[0, 0, 0]), "agent_1": int(actions[0, 1, 0]),
                       "agent_0_obs_adversary": actions[0, 2]}  # fmt: skip
        _, ref_rewards, _, truncs, _ = ref.step(ref_actions)
        np.testing.assert_array_equal(rewards[0], [ref_rewards[a] for a in envs.agents])
        assert rewards[0, 0] == actions[0, 0, 0] and rewards[1, 1] == actions[1, 1, 0]
        compared += 1
        if any(truncs.values()):
            ref.reset()
    assert compared == 6
    for bad, match in ((1.5, "not an integer"), (5.0, r"in \[0, 5\)"), (np.nan, "NaN")):
        actions[1, 1, 0] = bad
        with pytest.raises((InvalidActionError, MissingActionError), match=match):
            envs.step(actions)
        envs.reset(seed=0)
        actions[1, 1, 0] = 0
    envs.close()


def _mixed_env():
    from adv_envs import echo_v0
    from adv_wrappers import state_perturbation_v0

    return state_perturbation_v0(
        echo_v0.parallel_env(n_agents=2, max_cycles=4), 0.5, agents=["agent_0"]
    )


def test_perturb_reads_only_the_adversaries_entries():
    """perturb() checks and sends only the observation adversaries' actions: NaN (or an
    out-of-range Discrete value) in the agents' entries, not chosen yet, is fine."""
    envs = make_vector_env(partial(_same_step_mixed_env), 2)
    envs.reset(seed=0)
    actions = np.full((2, 3, 2), np.nan, np.float32)
    actions[:, 2] = 0.25
    obs, infos = envs.perturb(actions)
    assert infos["perturbed"].all()
    np.testing.assert_allclose(obs[:, 0], -1 + 0.5 * 0.25)  # echo observes -1 at reset
    actions[:, :2, 0] = 9  # out of Discrete(5): step() reads it
    with pytest.raises(InvalidActionError, match="not an integer in"):
        envs.step(actions)
    envs.close()


def _same_step_mixed_env():
    from adv_envs import echo_v0
    from adv_wrappers import state_perturbation_v0

    return state_perturbation_v0(
        echo_v0.parallel_env(n_agents=2, max_cycles=4), 0.5, agents=["agent_0"],
        timing="same_step",
    )  # fmt: skip
