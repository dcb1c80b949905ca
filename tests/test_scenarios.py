"""Stacked scenarios (``adv_wrappers.vector.ScenarioStack``, ``make_vector_env(scenarios=...)``):
several scenarios of one threat model side by side in one vector env, each with its own,
renamed agents, equal step for step to one vector env per scenario."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import adv_wrappers  # noqa: F401  (registers the adv/ envs)
from adv_envs import echo_v0
from adv_wrappers import adversary_id
from adv_wrappers.errors import InvalidArgumentError, UnknownAgentError
from adv_wrappers.train.envs import make_env, make_vector_env
from adv_wrappers.vector import ScenarioStack, SyncParallelVectorEnv
from tests.test_batched_threats import _checkpoint, _policy, _same

CN = "adv/cooperative_navigation-v0"
AGENTS = ["agent_0", "agent_1", "agent_2"]
MASKS = ("alive", "has_obs", "acted", "has_reward", "final_alive")


def _k1_scenarios():
    """Nika et al.'s Table 1 plan for k = 1: every victim with every other agent corrupted."""
    out = []
    for v in AGENTS:
        for j in AGENTS:
            if j != v:
                outside = [a for a in AGENTS if a != j] + [adversary_id(j)]
                out.append({"name": f"victim={v},attacked={j}", "agents": outside,
                            "options": {"victim": v, "attacked": [j]}})  # fmt: skip
    return out


def test_stacked_scenarios_equal_one_vector_env_per_scenario():
    """6 k-corruption scenarios (victim, K) x 2 copies, stacked, against 6 vector envs each
    built with its scenario's victim and subset fixed in the wrapper, seeded as the stack seeds
    its sub-copies. Under a fixed deterministic policy, 60 steps (two episodes and a half):
    observations, rewards, flags, masks and the infos (ground truth included) are exactly
    equal, entry by entry under the renamed agents."""
    plan = _k1_scenarios()
    copies, seed, steps = 2, 11, 60
    stack = make_vector_env(
        make_env(CN, {}, {"name": "k_corruption_v0", "kwargs": {"k": 1}}), copies,
        scenarios=plan,
    )  # fmt: skip
    assert stack.num_envs == copies and stack.envs.num_envs == copies * len(plan)
    assert stack.agents[:3] == (
        "victim=agent_0,attacked=agent_1/agent_0",
        "victim=agent_0,attacked=agent_1/agent_2",
        "victim=agent_0,attacked=agent_1/agent_1_adversary",
    )
    alone = []
    for s, spec in enumerate(plan):
        kwargs = {
            "k": 1,
            "victim": spec["options"]["victim"],
            "subset": spec["options"]["attacked"],
        }
        envs = make_vector_env(
            make_env(CN, {}, {"name": "k_corruption_v0", "kwargs": kwargs}), copies
        )
        alone.append((envs, [seed + c * len(plan) + s for c in range(copies)]))
    obs, infos = stack.reset(seed=seed)
    outs = [envs.reset(seed=seeds) for envs, seeds in alone]
    compared = 0
    rew = term = trunc = None
    step_s: list = []
    for t in range(steps + 1):
        actions = np.zeros((copies, stack.num_agents), dtype=np.int64)
        for s, ((envs, _), (obs_s, infos_s)) in enumerate(zip(alone, outs, strict=True)):
            renamed = stack.scenario_agents[s]
            # the scenario's agents; the corrupted agent's own slot is never alive alone
            mine = [i for i, a in enumerate(envs.agents) if a in renamed]
            assert not np.delete(infos_s["alive"], mine, axis=1).any()
            cols = [stack.agents.index(renamed[envs.agents[i]]) for i in mine]
            obs_s = obs_s[:, mine]
            infos_s = {
                k: v[:, mine] if k in MASKS + ("final_obs",) else v for k, v in infos_s.items()
            }
            np.testing.assert_array_equal(obs[:, cols], obs_s, err_msg=f"t={t}")
            for key in ("alive", "has_obs") + (("acted", "has_reward", "final_alive") if t else ()):
                np.testing.assert_array_equal(infos[key][:, cols], infos_s[key], err_msg=key)
            if t:
                np.testing.assert_array_equal(infos["final_obs"][:, cols], infos_s["final_obs"])
                np.testing.assert_array_equal(infos["reset"], infos_s["reset"])
                for got, want in zip((rew, term, trunc), step_s[s], strict=True):
                    np.testing.assert_array_equal(got[:, cols], want[:, mine], err_msg=f"t={t}")
            keys = ("agent_infos", "reset_infos") if t else ("agent_infos",)
            for key in keys:
                for c in range(copies):
                    want = infos_s[key][c]
                    if want is None:
                        continue
                    got = {a: infos[key][c][renamed[a]] for a in want}
                    _same(got, want, f"{key}[{c}] t={t}")
                    compared += 1
            actions[:, cols] = _policy(obs_s, infos_s["alive"], envs, discrete=True)
        if t == steps:
            break
        obs, rew, term, trunc, infos = stack.step(actions)
        step_s = []
        outs = []
        for s, (envs, _) in enumerate(alone):
            renamed = stack.scenario_agents[s]
            below = np.full((copies, envs.num_agents), -1, dtype=np.int64)
            for i, a in enumerate(envs.agents):
                if a in renamed:
                    below[:, i] = actions[:, stack.agents.index(renamed[a])]
            o, r, te, tr, i = envs.step(below)
            step_s.append((r, te, tr))
            outs.append((o, i))
    assert infos["reset"].sum() == 0 and compared >= steps * len(plan) * copies
    # every copy and scenario carries its own victim and K in the ground truth
    for s, spec in enumerate(plan):
        info = infos["agent_infos"][0][
            stack.scenario_agents[s][adversary_id(spec["options"]["attacked"][0])]
        ]
        assert info["k_corruption"]["victim"] == spec["options"]["victim"]
        assert list(info["k_corruption"]["attacked"]) == spec["options"]["attacked"]


def test_stacked_scenarios_run_on_the_batched_path_with_frozen_defenders(tmp_path):
    """attack.py's training env, stacked: every defender frozen (a checkpoint), the adversaries
    outside. On the batched backend every slot is alive in every copy (dense), and each
    scenario's adversary is the one its options name (ground truth), over 30 steps."""
    path = _checkpoint(tmp_path / "defenders.safetensors", {}, AGENTS)
    frozen = {a: {"checkpoint": path} for a in AGENTS}
    plan = [{"name": s["name"], "agents": [adversary_id(s["options"]["attacked"][0])],
             "options": s["options"]} for s in _k1_scenarios()]  # fmt: skip
    env_fn = make_env(CN, {}, {"name": "k_corruption_v0", "kwargs": {"k": 1}}, frozen=frozen)
    stack = make_vector_env(env_fn, 4, "batched", scenarios=plan)
    assert stack.num_envs == 4 and stack.num_agents == 6
    obs, infos = stack.reset(seed=3)
    assert infos["alive"].all() and obs.shape == (4, 6, 18)
    resets = 0
    for _ in range(30):
        obs, rew, term, trunc, infos = stack.step(np.ones((4, 6), dtype=np.int64))
        assert infos["alive"].all() and infos["acted"].all()
        resets += int(infos["reset"].sum())
        for c in range(4):
            for s, spec in enumerate(plan):
                (name,) = stack.scenario_agents[s].values()
                gt = infos["agent_infos"][c][name]["k_corruption"]
                assert gt["victim"] == spec["options"]["victim"]
                assert list(gt["attacked"]) == spec["options"]["attacked"]
    assert resets == 4  # the 4 copies' episodes ended together at step 25


def _echo_vector(lengths):
    fns = [functools.partial(echo_v0.parallel_env, max_cycles=n) for n in lengths]
    return SyncParallelVectorEnv(fns)


def test_stacked_scenarios_refuse_episodes_that_do_not_end_together():
    plan = [{"name": "short", "agents": AGENTS}, {"name": "long", "agents": AGENTS}]
    stack = ScenarioStack(_echo_vector([2, 3]), plan)
    stack.reset(seed=0)
    stack.step(np.zeros((1, 6), dtype=np.int64))
    with pytest.raises(InvalidArgumentError, match=r"scenarios \['short'\] ended"):
        stack.step(np.zeros((1, 6), dtype=np.int64))
    # the same lengths: episodes end together, 3 resets in 6 steps
    stack = ScenarioStack(_echo_vector([2, 2]), plan)
    stack.reset(seed=0)
    resets = sum(int(stack.step(np.zeros((1, 6), dtype=np.int64))[4]["reset"][0]) for _ in range(6))
    assert resets == 3


def test_stacked_scenarios_refuse_bad_input():
    envs = _echo_vector([2, 2])
    one = {"name": "a", "agents": ["agent_0"]}
    cases = [
        ([], InvalidArgumentError, "must not be empty"),
        ({"name": "a"}, InvalidArgumentError, "must be a list"),
        ([{"name": "a/b", "agents": ["agent_0"]}], InvalidArgumentError, "without '/'"),
        ([one, one], InvalidArgumentError, "unique"),
        ([{"name": "a", "agents": ["nobody"]}], UnknownAgentError, "unknown agent IDs"),
        ([{"name": "a", "agents": []}], InvalidArgumentError, "non-empty list"),
        ([{"name": "a", "agents": ["agent_0", "agent_0"]}], InvalidArgumentError, "duplicates"),
        ([{"name": "a", "agents": ["agent_0"], "extra": 1}], InvalidArgumentError, "keys"),
        ([one, {"name": "b", "agents": ["agent_0"], "options": {"x": 1}}], InvalidArgumentError,
         "same reset options"),
        ([one, {**one, "name": "b"}, {**one, "name": "c"}], InvalidArgumentError, "multiple"),
    ]  # fmt: skip
    for scenarios, error, match in cases:
        with pytest.raises(error, match=match):
            ScenarioStack(envs, scenarios)
    # an agent alive in a copy whose scenario does not list it
    stack = ScenarioStack(envs, [one, {**one, "name": "b"}])
    with pytest.raises(InvalidArgumentError, match="'agent_1' is alive in a copy of scenario 'a'"):
        stack.reset(seed=0)
    # options the scenarios set; a global state
    plan = _k1_scenarios()[:2]
    stack = make_vector_env(make_env(CN, {}, {"name": "k_corruption_v0", "kwargs": {"k": 1}}), 1,
                            scenarios=plan)  # fmt: skip
    with pytest.raises(InvalidArgumentError, match=r"\['victim'\] are set by the stacked"):
        stack.reset(seed=0, options={"victim": "agent_0"})
    with pytest.raises(InvalidArgumentError, match="seed must be an int"):
        stack.reset(seed=[0, 1])
    with pytest.raises(InvalidArgumentError, match="global state"):
        make_vector_env(make_env(CN, {}, {"name": "k_corruption_v0", "kwargs": {"k": 1}}), 1,
                        state=True, scenarios=plan)  # fmt: skip


def test_stacked_agents_with_smaller_observations_drop_the_padding():
    """Keep-away's agents observe 8 and 19 values; the vector env below pads every row to 19.
    A stack of the scenario whose only adversary observes 8 values gives rows of 8: the first
    8 columns of that agent's padded row, over 30 steps of the real env."""
    plan = [{"name": "victim=agent_0,attacked=adversary_0", "agents": ["adversary_0_adversary"],
             "options": {"victim": "agent_0", "attacked": ["adversary_0"]}}]  # fmt: skip
    frozen = {"adversary_0": "random", "agent_0": "random"}
    env_fn = make_env("adv/keep_away-v0", {}, {"name": "k_corruption_v0", "kwargs": {"k": 1}},
                      frozen=frozen)  # fmt: skip
    stack = make_vector_env(env_fn, 2, "batched", scenarios=plan)
    below = make_vector_env(env_fn, 2, "batched")
    assert below.single_observation_space.shape == (19,)
    col = below.agents.index("adversary_0_adversary")
    obs, infos = stack.reset(seed=4)
    obs_below, _ = below.reset(seed=4, options={"episode_schedule": {
        "victim": [["agent_0"]] * 2, "attacked": [[["adversary_0"]]] * 2}})  # fmt: skip
    assert obs.shape == (2, 1, 8) and stack.single_observation_space.shape == (8,)
    assert stack.action_nvec.tolist() == [5]
    for t in range(30):
        np.testing.assert_array_equal(obs[:, 0], obs_below[:, col, :8], err_msg=f"t={t}")
        assert not obs_below[:, col, 8:].any()  # only padding was dropped
        actions = np.full((2, 1), t % 5, dtype=np.int64)  # Discrete(5) actions
        full = np.zeros((2, below.num_agents), dtype=np.int64)
        full[:, col] = actions[:, 0]
        obs = stack.step(actions)[0]
        obs_below = below.step(full)[0]
