"""Exact values on the echo env: executed actions come back as observations, so each test
sees exactly which agents were attacked, what was executed, what each agent saw and was paid."""

from __future__ import annotations

import numpy as np
import pytest

from adv_envs import echo_v0
from adv_wrappers import (
    byzantine_v0,
    freeze_v0,
    k_corruption_v0,
    partial_control_v0,
    state_perturbation_v0,
    to_single_agent,
)
from adv_wrappers.errors import InvalidActionError, InvalidArgumentError, MissingActionError


def echo(**kwargs):
    return echo_v0.parallel_env(**kwargs)


class Constant:
    """A stateful scripted policy: counts its calls and resets; returns a fixed action."""

    def __init__(self, action):
        self.action, self.calls, self.resets, self.seen = action, 0, 0, []

    def __call__(self, obs):
        self.calls += 1
        self.seen.append(np.array(obs))
        return self.action

    def reset(self):
        self.resets += 1


def test_k_corruption_exposed_exact():
    env = k_corruption_v0(echo(n_agents=3, max_cycles=3), k=2, victim="agent_0")
    obs, infos = env.reset(seed=1, options={"attacked": ["agent_2", "agent_1"]})
    assert env.agents == ["agent_0", "agent_1_adversary", "agent_2_adversary"]
    gt = infos["agent_0"]["k_corruption"]
    assert gt["attacked"] == ("agent_1", "agent_2") and gt["victims"] == ("agent_0",)
    assert gt["victim"] == "agent_0" and gt["k"] == 2
    # the adversary sees what its agent would have seen
    np.testing.assert_array_equal(obs["agent_1_adversary"], [-1, -1, -1])
    obs, rewards, terms, truncs, infos = env.step(
        {"agent_0": 1, "agent_1_adversary": 3, "agent_2_adversary": 4}
    )
    np.testing.assert_array_equal(obs["agent_0"], [1, 3, 4])  # executed: the adversaries' actions
    assert rewards == {"agent_0": 1.0, "agent_1_adversary": -1.0, "agent_2_adversary": -1.0}
    assert infos["agent_0"]["k_corruption"]["executed_actions"] == {"agent_1": 3, "agent_2": 4}
    assert infos["agent_0"]["k_corruption"]["adversary_acted"] == {"agent_1": True, "agent_2": True}
    assert set(terms) == set(env.agents) == {"agent_0", "agent_1_adversary", "agent_2_adversary"}
    steps = 1
    while env.agents:
        obs, rewards, terms, truncs, infos = env.step(dict.fromkeys(env.agents, 2))
        steps += 1
    assert steps == 3 and all(truncs.values()) and len(truncs) == 3


def test_k_corruption_team_victim_reward_is_minus_team_mean():
    env = k_corruption_v0(echo(n_agents=3), k=1, subset=["agent_0"])
    env.reset(seed=0)
    assert env.agents == ["agent_0_adversary", "agent_1", "agent_2"]
    _, rewards, *_ = env.step({"agent_0_adversary": 0, "agent_1": 1, "agent_2": 4})
    assert rewards["agent_0_adversary"] == -2.5  # -(1 + 4) / 2


def test_k_corruption_embedded_policy_exact():
    policy = Constant(4)
    env = k_corruption_v0(echo(n_agents=3, max_cycles=2), k=1, subset=["agent_1"], adversary=policy)
    obs, _ = env.reset(seed=0)
    assert env.agents == ["agent_0", "agent_2"] and env.possible_agents == [
        "agent_0",
        "agent_1",
        "agent_2",
    ]
    obs, rewards, *_ = env.step({"agent_0": 0, "agent_2": 2})
    np.testing.assert_array_equal(obs["agent_0"], [0, 4, 2])
    assert rewards == {"agent_0": 0.0, "agent_2": 2.0}
    env.step({"agent_0": 1, "agent_2": 1})
    assert policy.resets == 1 and policy.calls == 2
    np.testing.assert_array_equal(policy.seen[1], [0, 4, 2])  # it saw agent_1's observation


def test_k_corruption_uniform_subset_distribution_is_uniform_over_subsets():
    # n=4, k=2, victim excluded: 3 candidates -> subsets {3 singletons, 3 pairs}, each 1/6
    env = k_corruption_v0(echo(n_agents=4), k=2, victim="agent_3")
    env.reset(seed=123)
    counts: dict[tuple, int] = {}
    episodes = 6000
    for _ in range(episodes):
        _, infos = env.reset()
        key = infos["agent_3"]["k_corruption"]["attacked"]
        counts[key] = counts.get(key, 0) + 1
    assert len(counts) == 6 and all(len(k) in (1, 2) and "agent_3" not in k for k in counts)
    freq = np.array(list(counts.values())) / episodes
    assert np.all(np.abs(freq - 1 / 6) < 0.02), counts


def test_byzantine_exact_with_forced_theta_and_reveal_types():
    env = byzantine_v0(echo(n_agents=3), adversary=Constant(2), reveal_types=True)
    obs, infos = env.reset(seed=0, options={"theta": (0, 1, 0)})
    assert env.agents == ["agent_0", "agent_2"]
    np.testing.assert_array_equal(obs["agent_0"], [-1, -1, -1, 0, 1, 0])  # obs + theta
    assert env.observation_space("agent_0").shape == (6,)
    obs, rewards, *_, infos = env.step({"agent_0": 1, "agent_2": 3})
    np.testing.assert_array_equal(obs["agent_2"], [1, 2, 3, 0, 1, 0])
    np.testing.assert_array_equal(infos["agent_0"]["byzantine"]["theta"], [0, 1, 0])
    assert infos["agent_2"]["byzantine"]["victims"] == ("agent_0", "agent_2")


def test_byzantine_exposed_adversary_reward():
    env = byzantine_v0(echo(n_agents=3))
    env.reset(seed=0, options={"theta": (1, 0, 0)})
    assert env.agents == ["agent_0_adversary", "agent_1", "agent_2"]
    _, rewards, *_ = env.step({"agent_0_adversary": 4, "agent_1": 1, "agent_2": 2})
    assert rewards == {"agent_0_adversary": -1.5, "agent_1": 1.0, "agent_2": 2.0}


@pytest.mark.parametrize("epsilon,expected_adv_steps", [(0.0, 0), (1.0, 20)])
def test_partial_control_extremes(epsilon, expected_adv_steps):
    env = partial_control_v0(echo(n_agents=2, max_cycles=20), "agent_1", epsilon)
    env.reset(seed=5)
    adv_steps = 0
    steps = 0
    while env.agents:
        obs, rewards, *_, infos = env.step({"agent_0": 0, "agent_1": 1, "agent_1_adversary": 3})
        executed = obs["agent_0"][1]
        acted = infos["agent_1"]["partial_control"]["adversary_acted"]["agent_1"]
        assert executed == (3 if acted else 1)
        assert rewards["agent_1_adversary"] == -0.0  # minus agent_0's reward (it played 0)
        adv_steps += acted
        steps += 1
    assert steps == 20 and adv_steps == expected_adv_steps


def test_partial_control_mixture_frequency_and_embedded_benign():
    benign, adversary = Constant(1), Constant(4)
    env = partial_control_v0(
        echo(n_agents=2, max_cycles=1000), "agent_1", 0.3, benign_policy=benign, adversary=adversary
    )
    env.reset(seed=0)
    assert env.agents == ["agent_0"]
    executed = []
    while env.agents:
        obs, *_ = env.step({"agent_0": 0})
        executed.append(obs["agent_0"][1])
    executed = np.array(executed)
    assert len(executed) == 1000 and set(np.unique(executed)) == {1.0, 4.0}
    assert abs((executed == 4).mean() - 0.3) < 0.05  # 1000 Bernoulli(0.3): sd 0.0145
    assert adversary.calls == 1000  # the adversary observes and acts every step
    assert benign.calls == (executed == 1).sum()


def test_state_perturbation_exposed_exact():
    env = state_perturbation_v0(echo(n_agents=2), 0.5, agents=["agent_1"])
    obs, infos = env.reset(seed=0)
    assert env.agents == ["agent_0", "agent_1", "agent_1_obs_adversary"]
    np.testing.assert_array_equal(obs["agent_1"], [-1, -1])  # first observation unperturbed
    u = np.array([1.0, -0.5], np.float32)
    obs, rewards, *_, infos = env.step({"agent_0": 2, "agent_1": 3, "agent_1_obs_adversary": u})
    np.testing.assert_allclose(obs["agent_1"], [2.5, 2.75])  # o + 0.5 u
    np.testing.assert_array_equal(obs["agent_0"], [2, 3])
    np.testing.assert_array_equal(obs["agent_1_obs_adversary"], [2, 3])  # true observation
    assert rewards["agent_1_obs_adversary"] == -3.0
    gt = infos["agent_0"]["state_perturbation"]
    np.testing.assert_array_equal(gt["true_obs"]["agent_1"], [2, 3])
    assert gt["perturbation_norm"]["agent_1"] == pytest.approx(0.5)
    # clipped to the observation bounds: high is n_actions - 1 = 4
    obs, *_ = env.step(
        {"agent_0": 4, "agent_1": 4, "agent_1_obs_adversary": np.ones(2, np.float32)}
    )
    np.testing.assert_array_equal(obs["agent_1"], [4, 4])


def test_state_perturbation_l2_mapping():
    env = state_perturbation_v0(echo(n_agents=2), 1.0, agents=["agent_0"], norm="l2")
    env.reset(seed=0)
    obs, *_ = env.step(
        {"agent_0": 2, "agent_1": 2, "agent_0_obs_adversary": np.array([1.0, 1.0], np.float32)}
    )
    np.testing.assert_allclose(obs["agent_0"], 2 + np.array([1, 1]) / np.sqrt(2), rtol=1e-6)


def test_freeze_and_single_agent_exact():
    frozen = Constant(2)
    env = k_corruption_v0(echo(n_agents=2, max_cycles=3), k=1, subset=["agent_1"])
    env = to_single_agent(freeze_v0(env, {"agent_0": frozen}))
    obs, info = env.reset(seed=0)
    assert info["agent"] == "agent_1_adversary"
    total, steps = 0.0, 0
    done = False
    while not done:
        obs, reward, term, trunc, info = env.step(4)
        np.testing.assert_array_equal(obs, [2, 4])
        assert info["freeze"]["rewards"] == {"agent_0": 2.0}
        total += reward
        steps += 1
        done = term or trunc
    assert steps == 3 and total == -6.0 and frozen.resets == 1


def test_freeze_plays_out_the_episode_for_frozen_agents():
    env = freeze_v0(echo(n_agents=2, max_cycles=6, deaths={"agent_0": 2}), {"agent_1": Constant(3)})
    env.reset(seed=0)
    env.step({"agent_0": 1})
    _, rewards, terms, _, infos = env.step({"agent_0": 1})
    assert terms == {"agent_0": True} and env.agents == []
    # agent_1 played steps 2..6 inside: 5 rewards of 3 in this step's ground truth
    assert infos["agent_0"]["freeze"]["played_out_steps"] == 4
    assert infos["agent_0"]["freeze"]["rewards"] == {"agent_1": 15.0}


def test_state_perturbation_with_embedded_victims_has_the_papers_timing():
    """chi(. | o_t): the adversary's action at a step perturbs the observation it was shown."""
    seen = []

    def victim(obs):  # plays round(first entry of what it sees) + 1, clipped to the space
        seen.append(np.array(obs))
        return int(np.clip(np.rint(obs[0]) + 1, 0, 4))

    env = state_perturbation_v0(
        echo(n_agents=2, max_cycles=3), 1.0, agents=["agent_0"], victim_policies=victim
    )
    obs, infos = env.reset(seed=0)
    assert env.agents == ["agent_1", "agent_0_obs_adversary"]
    assert env.possible_agents == ["agent_1", "agent_0_obs_adversary"]
    np.testing.assert_array_equal(obs["agent_0_obs_adversary"], [-1, -1])  # true o_0
    u = np.array([1.0, 0.0], np.float32)
    obs, rewards, terms, truncs, infos = env.step({"agent_1": 2, "agent_0_obs_adversary": u})
    np.testing.assert_array_equal(seen[0], [0, -1])  # o_0 + 1.0 * u, in the same step
    np.testing.assert_array_equal(obs["agent_0_obs_adversary"], [1, 2])  # victim played 0 + 1
    assert rewards == {"agent_1": 2.0, "agent_0_obs_adversary": -1.0}
    gt = infos["agent_1"]["state_perturbation"]
    assert gt["victim_perturbation_norm"] == {"agent_0": 1.0} and gt["victim_rewards"] == {
        "agent_0": 1.0
    }
    np.testing.assert_array_equal(gt["victim_obs"]["agent_0"], [0, -1])
    obs, *_ = env.step({"agent_1": 0, "agent_0_obs_adversary": -u})
    np.testing.assert_array_equal(seen[1], [0, 2])  # o_1 = [1, 2] minus 1.0 on entry 0
    steps = 2
    while env.agents:
        env.step({"agent_1": 0, "agent_0_obs_adversary": u})
        steps += 1
    assert steps == 3 and len(seen) == 3


def test_state_perturbation_same_step_co_training_timing_exact():
    """timing="same_step": the adversary sees o_t, perturbs it, the agent acts on it, one step."""
    from adv_wrappers.errors import CallOrderError

    env = state_perturbation_v0(
        echo(n_agents=2, max_cycles=3), 1.0, agents=["agent_0"], timing="same_step"
    )
    obs, infos = env.reset(seed=0)
    assert env.agents == ["agent_0", "agent_1", "agent_0_obs_adversary"]
    assert np.isnan(obs["agent_0"]).all() and obs["agent_0"].shape == (2,)  # withheld
    np.testing.assert_array_equal(obs["agent_0_obs_adversary"], [-1, -1])  # true o_0
    np.testing.assert_array_equal(obs["agent_1"], [-1, -1])
    gt = infos["agent_1"]["state_perturbation"]
    assert gt["awaiting"] == ("agent_0",) and gt["perturbation_norm"] == {}
    with pytest.raises(CallOrderError, match="perturb"):
        env.step({"agent_0": 0, "agent_1": 0, "agent_0_obs_adversary": np.zeros(2, np.float32)})

    u = np.array([1.0, 0.5], np.float32)
    obs, infos = env.perturb({"agent_0_obs_adversary": u})
    np.testing.assert_array_equal(obs["agent_0"], [0, -0.5])  # o_0 + 1.0 * u, bounds [-1, 4]
    np.testing.assert_array_equal(obs["agent_0_obs_adversary"], [-1, -1])
    gt = infos["agent_0"]["state_perturbation"]
    assert gt["perturbation_norm"] == {"agent_0": 1.0}
    np.testing.assert_array_equal(gt["adversary_actions"]["agent_0"], u)
    np.testing.assert_array_equal(gt["true_obs"]["agent_0"], [-1, -1])
    with pytest.raises(CallOrderError, match="already"):
        env.perturb({"agent_0_obs_adversary": u})
    with pytest.raises(InvalidActionError, match="perturb"):  # a different adversary action
        env.step({"agent_0": 1, "agent_1": 2, "agent_0_obs_adversary": -u})

    obs, rewards, terms, truncs, infos = env.step(
        {"agent_0": 1, "agent_1": 2, "agent_0_obs_adversary": u}
    )
    assert rewards == {"agent_0": 1.0, "agent_1": 2.0, "agent_0_obs_adversary": -1.0}
    np.testing.assert_array_equal(obs["agent_0_obs_adversary"], [1, 2])  # true o_1
    assert np.isnan(obs["agent_0"]).all()
    gt = infos["agent_1"]["state_perturbation"]
    np.testing.assert_array_equal(gt["applied"]["obs"]["agent_0"], [0, -0.5])
    assert gt["applied"]["perturbation_norm"] == {"agent_0": 1.0}
    np.testing.assert_array_equal(gt["true_obs"]["agent_0"], [1, 2])

    # clipped to the bounds: o_1 = [1, 2] + (4, -4) clipped to [-1, 4]
    obs, _ = env.perturb({"agent_0_obs_adversary": np.array([1.0, -1.0], np.float32)})
    env2 = state_perturbation_v0(
        echo(n_agents=2, max_cycles=3), 4.0, agents=["agent_0"], timing="same_step"
    )
    env2.reset(seed=0)
    np.testing.assert_array_equal(
        env2.perturb({"agent_0_obs_adversary": np.array([1.0, -1.0], np.float32)})[0]["agent_0"],
        [3, -1],
    )
    np.testing.assert_array_equal(obs["agent_0"], [2, 1])
    steps = 1
    while env.agents:
        if steps > 1:
            env.perturb({"agent_0_obs_adversary": np.zeros(2, np.float32)})
        adv = np.array([1.0, -1.0] if steps == 1 else [0.0, 0.0], np.float32)
        obs, rewards, terms, truncs, infos = env.step(
            {"agent_0": 3, "agent_1": 0, "agent_0_obs_adversary": adv}
        )
        steps += 1
    assert steps == 3 and all(truncs.values())
    np.testing.assert_array_equal(obs["agent_0"], [3, 0])  # the last observation is true
    assert infos["agent_0"]["state_perturbation"]["awaiting"] == ()
    with pytest.raises(CallOrderError, match="awaits"):
        env.perturb({})


def test_state_perturbation_same_step_needs_the_exposed_slot_and_float_observations():
    from adv_wrappers import InvalidArgumentError
    from adv_wrappers.errors import CallOrderError

    with pytest.raises(InvalidArgumentError, match="timing"):
        state_perturbation_v0(echo(), 0.1, timing="now")
    with pytest.raises(InvalidArgumentError, match="same_step"):
        state_perturbation_v0(echo(), 0.1, attack="uniform", timing="same_step")
    with pytest.raises(InvalidArgumentError, match="same_step"):
        state_perturbation_v0(echo(), 0.1, victim_policies="random", timing="same_step")
    env = state_perturbation_v0(echo(n_agents=2), 0.1, agents=["agent_0"])
    env.reset(seed=0)
    with pytest.raises(CallOrderError, match="next_step"):
        env.perturb({"agent_0_obs_adversary": np.zeros(2, np.float32)})
    env = state_perturbation_v0(echo(n_agents=2), 0.1, agents=["agent_0"], timing="same_step")
    env.reset(seed=0)
    with pytest.raises(MissingActionError):
        env.perturb({})
    with pytest.raises(InvalidActionError):
        env.perturb({"agent_0_obs_adversary": np.full(2, 2.0, np.float32)})


def test_victim_policies_need_the_exposed_slot():
    from adv_wrappers import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="victim_policies"):
        state_perturbation_v0(echo(), 0.1, attack="uniform", victim_policies="random")


def test_adversary_observes_the_global_state():
    env = k_corruption_v0(echo(n_agents=3), k=1, subset=["agent_2"], adversary_observes="state")
    obs, _ = env.reset(seed=0)
    assert env.observation_space("agent_2_adversary") is env.unwrapped.state_space
    obs, *_ = env.step({"agent_0": 1, "agent_1": 2, "agent_2_adversary": 3})
    np.testing.assert_array_equal(obs["agent_2_adversary"], env.unwrapped.state())
    np.testing.assert_array_equal(obs["agent_2_adversary"], [1, 2, 3])


def test_truncated_normal_noise_is_redrawn_not_clipped():
    """attack="truncated_normal", epsilon 1 (He et al.'s "w/ N": lambda 0.5 in [-1, 1]): the
    echo env observes 0 at reset, so each observation is delta itself. 20,000 coordinates
    (5,000 seeded resets x 4 agents): all inside [-1, 1], none exactly at the boundary (a
    clip would put 4.6 % there), and the empirical CDF within a 5-sigma binomial band of
    N(0, 0.5^2) truncated to [-1, 1] at 9 points."""
    import math

    env = state_perturbation_v0(
        echo_v0.parallel_env(n_agents=4, continuous=True), 1.0, attack="truncated_normal"
    )
    env.reset(seed=0)
    draws = np.concatenate([np.concatenate(list(env.reset()[0].values())) for _ in range(5000)])
    assert draws.shape == (80_000,)  # 4 agents observe 4 coordinates each: 16 per reset
    draws = draws.reshape(5000, 4, 4)[:, :, 0].ravel()  # one coordinate per agent: 20,000
    assert np.abs(draws).max() <= 1.0 and (np.abs(draws) == 1.0).sum() == 0

    def phi(x):  # the standard normal CDF
        return 0.5 * (1 + math.erf(x / math.sqrt(2)))

    def cdf(x):  # N(0, 0.5^2) truncated to [-1, 1]
        return (phi(x / 0.5) - phi(-2.0)) / (phi(2.0) - phi(-2.0))

    for x in np.linspace(-0.8, 0.8, 9):
        p = cdf(x)
        band = 5 * math.sqrt(p * (1 - p) / draws.size)
        assert abs((draws <= x).mean() - p) <= band, (x, (draws <= x).mean(), p)
    with pytest.raises(InvalidArgumentError, match="truncated_normal"):
        state_perturbation_v0(echo_v0.parallel_env(), 1.0, attack="truncated_normal", norm="l2")
