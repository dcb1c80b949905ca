"""The action threat models on the batched path (``BatchedVectorEnv(threat=...)``, reached with
``make_vector_env(..., "batched")``) against the same wrappers on the sync backend.

Both paths run the wrapper's own episode code (the batched path through a per-copy shadow of
the wrapper, seeded as the sync backend seeds its copies), so with the same seeds they must
draw the same attacked agents, victims, types and coins; with the batched env's worlds loaded
from the sync copies (``load_from_pettingzoo``) the observations, rewards, flags, masks and
ground truth must then agree step for step under fixed deterministic policies.
"""

from __future__ import annotations

import numpy as np
import pytest

import adv_wrappers  # noqa: F401  (registers the adv/ envs)
from adv_wrappers.errors import InvalidArgumentError
from adv_wrappers.train.envs import make_env, make_vector_env
from tests.test_trainers import only, train

CN = "adv/cooperative_navigation-v0"
CASES = {
    "k1_uniform": ({}, "k_corruption_v0", {"k": 1}),
    "k2_exact": ({}, "k_corruption_v0", {"k": 2, "subset": "exact"}),
    "k2_victim": ({}, "k_corruption_v0", {"k": 2, "victim": "agent_0"}),
    "k1_state": ({}, "k_corruption_v0", {"k": 1, "adversary_observes": "state"}),
    "partial": ({}, "partial_control_v0", {"agent": "agent_1", "epsilon": 0.3}),
    "partial_box": (
        {"continuous_actions": True},
        "partial_control_v0",
        {"agent": "agent_2", "epsilon": 0.6, "victim": "agent_0"},
    ),
    "byzantine": ({}, "byzantine_v0", {}),
    "byzantine_two": (
        {"continuous_actions": True},
        "byzantine_v0",
        {"prior": {"000": 0.2, "110": 0.3, "001": 0.5}},
    ),
}


def _policy(obs: np.ndarray, alive: np.ndarray, envs) -> np.ndarray:
    """A fixed deterministic policy of the observations; padding where an agent is not listed
    (-1 or NaN, which neither path may read)."""
    e, a = alive.shape
    w = np.sin(np.arange(obs.shape[-1] * 5, dtype=np.float64)).reshape(obs.shape[-1], 5)
    scores = obs.reshape(e, a, -1) @ w + np.arange(a)[None, :, None]
    if envs.action_nvec is not None:
        return np.where(alive, scores.argmax(-1), -1)
    actions = np.clip(np.tanh(scores), 0.0, 1.0).astype(np.float32)
    actions[~alive] = np.nan
    return actions


def _same_infos(mine, theirs) -> None:
    assert len(mine) == len(theirs)
    for m, t in zip(mine, theirs, strict=True):
        if t is None:
            assert m is None
            continue
        assert m.keys() == t.keys()
        for agent in t:
            (name,) = t[agent]
            gm, gt = m[agent][name], t[agent][name]
            assert gm.keys() == gt.keys()
            for key in gt:
                if key == "theta":
                    np.testing.assert_array_equal(gm[key], gt[key])
                elif key == "executed_actions":
                    assert gm[key].keys() == gt[key].keys()
                    for who in gt[key]:
                        np.testing.assert_array_equal(gm[key][who], gt[key][who])
                else:
                    assert gm[key] == gt[key], (agent, key)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_batched_path_agrees_with_the_wrapper_step_for_step(case):
    """4 copies, 3 episodes of 25 steps (75 steps; every copy auto-resets three times): every
    output of the batched path equals the sync backend's, with the batched worlds reloaded
    from the sync copies after each reset (the two envs draw new worlds with different
    generators). Observations and flags exactly, rewards to float32 rounding (the adversary's
    is a mean the sync path takes in float64 and the batched one in float64 of float32
    rewards). Counted: 75 steps x 4 copies, and the attacks actually vary."""
    env_kwargs, name, kwargs = CASES[case]
    env_fn = make_env(CN, env_kwargs, {"name": name, "kwargs": kwargs})
    sync = make_vector_env(env_fn, 4, "sync")
    bat = make_vector_env(env_fn, 4, "batched")
    assert bat.agents == sync.agents and bat.single_observation_space == (
        sync.single_observation_space
    )
    obs_s, inf_s = sync.reset(seed=11)
    obs_b, inf_b = bat.reset(seed=11)

    def reload(copies):
        for i in copies:
            bat.env.load_from_pettingzoo(int(i), sync.envs[i].env)

    reload(range(4))
    for key in ("alive", "has_obs"):
        np.testing.assert_array_equal(inf_b[key], inf_s[key])
    _same_infos(inf_b["agent_infos"], inf_s["agent_infos"])
    returns_s = np.zeros((4, sync.num_agents))
    returns_b = np.zeros((4, sync.num_agents))
    steps = attacked_sets = 0
    seen = set()
    coins = []
    for t in range(75):
        actions = _policy(obs_s, inf_s["alive"], sync)
        obs_s, rew_s, term_s, trunc_s, inf_s = sync.step(actions)
        obs_b, rew_b, term_b, trunc_b, inf_b = bat.step(actions)
        reset = inf_s["reset"]
        np.testing.assert_array_equal(inf_b["reset"], reset)
        np.testing.assert_allclose(rew_b, rew_s, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(term_b, term_s)
        np.testing.assert_array_equal(trunc_b, trunc_s)
        for key in ("alive", "acted", "has_obs", "has_reward", "final_alive"):
            np.testing.assert_array_equal(inf_b[key], inf_s[key], err_msg=f"{key} at step {t}")
        np.testing.assert_array_equal(inf_b["final_obs"], inf_s["final_obs"])
        np.testing.assert_array_equal(obs_b[~reset], obs_s[~reset])
        _same_infos(inf_b["agent_infos"], inf_s["agent_infos"])
        _same_infos(inf_b["reset_infos"], inf_s["reset_infos"])
        returns_s += rew_s
        returns_b += rew_b
        for info in inf_s["agent_infos"]:
            gt = next(iter(next(iter(info.values())).values()))
            seen.add(gt["attacked"])
            coins += list(gt["adversary_acted"].values())
        reload(np.flatnonzero(reset))
        steps += 1
        attacked_sets += int(reset.sum())
    assert steps == 75 and attacked_sets == 12  # resets at steps 25, 50 and 75
    np.testing.assert_allclose(returns_b, returns_s, rtol=1e-5, atol=1e-4)
    assert len(seen) >= 2 or case.startswith("partial")
    if name == "partial_control_v0":
        assert 0 < np.mean(coins) < 1  # the coin came up both ways


def test_the_batched_draws_follow_the_configured_distributions():
    """1024 copies, two resets each (2048 episodes): the Byzantine types follow the prior and
    partial control's coins come up with probability epsilon over 30 steps, within 4
    standard errors. (The draws are the wrapper's own code; this checks that the batch gives
    each copy its own stream rather than one repeated stream.)"""
    prior = {"000": 0.5, "100": 0.1, "010": 0.25, "001": 0.15}
    envs = make_vector_env(
        make_env(CN, {}, {"name": "byzantine_v0", "kwargs": {"prior": prior}}), 1024, "batched"
    )
    thetas = []
    for seed in (1, 5000):  # copy i is seeded with seed + i: no seed repeats
        _, infos = envs.reset(seed=seed)
        for info in infos["agent_infos"]:
            gt = next(iter(info.values()))["byzantine"]
            thetas.append("".join(str(int(x)) for x in gt["theta"]))
    assert len(thetas) == 2048
    for key, p in prior.items():
        freq = thetas.count(key) / len(thetas)
        assert abs(freq - p) < 4 * np.sqrt(p * (1 - p) / len(thetas)), (key, freq)
    eps = 0.3
    envs = make_vector_env(
        make_env(CN, {}, {"name": "partial_control_v0", "kwargs": {"agent": "agent_0",
                                                                    "epsilon": eps}}),
        1024,
        "batched",
    )  # fmt: skip
    envs.reset(seed=3)
    acted = []
    for _ in range(30):
        *_, infos = envs.step(np.zeros((1024, 4), dtype=np.int64))
        acted.append(
            [info["agent_0"]["partial_control"]["adversary_acted"]["agent_0"]
             for info in infos["agent_infos"]]
        )  # fmt: skip
    acted = np.array(acted)
    assert acted.size == 30 * 1024
    assert abs(acted.mean() - eps) < 4 * np.sqrt(eps * (1 - eps) / acted.size)
    # copies draw different coins at the same step (not one stream repeated)
    assert 0 < acted[0].mean() < 1


def test_the_batched_path_refuses_the_threats_it_does_not_run():
    def build(name, kwargs, **extra):
        return make_vector_env(make_env(CN, {}, {"name": name, "kwargs": kwargs}, **extra), 2,
                               "batched")  # fmt: skip

    with pytest.raises(InvalidArgumentError, match="embedded adversary"):
        build("k_corruption_v0", {"k": 1, "adversary": "random"})
    with pytest.raises(InvalidArgumentError, match="benign_policy"):
        build("partial_control_v0", {"agent": "agent_0", "epsilon": 0.5,
                                     "benign_policy": "random"})  # fmt: skip
    with pytest.raises(InvalidArgumentError, match="reveal_types"):
        build("byzantine_v0", {"reveal_types": True})
    with pytest.raises(InvalidArgumentError, match="state_perturbation_v0"):
        build("state_perturbation_v0", {"epsilon": 0.1, "attack": "uniform"})
    with pytest.raises(InvalidArgumentError, match="frozen agents"):
        build("k_corruption_v0", {"k": 1}, frozen={"agent_0": "random"})


def test_ippo_trains_under_a_threat_on_the_batched_backend(tmp_path):
    """The one flag: ippo.py with k-corruption's exposed adversaries on the batched env."""
    train("ippo", tmp_path, "--env-id", CN, "--vector-backend", "batched", "--num-envs", "8",
          "--num-steps", "50", "--total-timesteps", "800", "--eval-episodes", "1",
          "--threat", "k_corruption_v0", "--threat-kwargs", '{"k": 1}')  # fmt: skip
    assert only("runs/*/checkpoints/final.safetensors", tmp_path).exists()
