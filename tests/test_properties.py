"""Property tests (hypothesis) of the threat models' invariants."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mpe2 import simple_spread_v3
from scipy import stats

from adv_envs import echo_v0
from adv_wrappers import (
    byzantine_v0,
    default_prior,
    k_corruption_v0,
    partial_control_v0,
    state_perturbation_v0,
)
from tests.envs_under_test import PARALLEL_ENVS, rollout

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    n=st.integers(2, 6),
    data=st.data(),
    mode=st.sampled_from(["uniform", "exact", "victim", "callable"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_k_corruption_attacks_at_most_k_real_agents(n, data, mode, seed):
    k = data.draw(st.integers(0, n - 1))
    kwargs = {}
    if mode == "victim":
        kwargs["victim"] = f"agent_{data.draw(st.integers(0, n - 1))}"
    if mode == "callable":
        kwargs["subset"] = lambda rng, cands, victim: list(
            rng.permutation(cands)[: rng.integers(0, k + 1)]
        )
    elif mode == "exact":
        kwargs["subset"] = "exact"
    env = k_corruption_v0(echo_v0.parallel_env(n_agents=n, max_cycles=2), k, **kwargs)
    env.reset(seed=seed)
    for _ in range(10):
        obs, infos = env.reset()
        gt = next(iter(infos.values()))["k_corruption"]
        attacked = gt["attacked"]
        assert len(attacked) <= k and len(set(attacked)) == len(attacked)
        assert set(attacked) <= set(env.unwrapped.possible_agents)
        if mode == "exact":
            assert len(attacked) == k
        if mode in ("uniform",) and k > 0:
            assert len(attacked) >= 1
        if "victim" in kwargs:
            assert kwargs["victim"] not in attacked and gt["victims"] == (kwargs["victim"],)
        # the outside agents: every unattacked agent and one adversary per attacked agent
        expected = [
            a if a not in attacked else f"{a}_adversary" for a in env.unwrapped.possible_agents
        ]
        assert env.agents == expected


def test_byzantine_theta_frequencies_match_the_prior():
    prior = {(0, 0, 0): 0.4, (1, 0, 0): 0.1, (0, 1, 0): 0.2, (0, 0, 1): 0.05, (1, 1, 0): 0.25}
    env = byzantine_v0(echo_v0.parallel_env(n_agents=3, max_cycles=1), prior=prior)
    env.reset(seed=2024)
    episodes = 5000
    counts = dict.fromkeys(prior, 0)
    for _ in range(episodes):
        _, infos = env.reset()
        theta = tuple(int(t) for t in next(iter(infos.values()))["byzantine"]["theta"])
        counts[theta] += 1
    observed = np.array([counts[t] for t in prior])
    expected = np.array(list(prior.values())) * episodes
    assert observed.sum() == episodes
    _, p_value = stats.chisquare(observed, expected)
    assert p_value > 0.01, (counts, p_value)


def test_byzantine_default_prior_is_the_papers():
    prior = default_prior(4)
    assert prior[(0, 0, 0, 0)] == 0.5 and len(prior) == 5
    assert all(prior[tuple(int(j == i) for j in range(4))] == 0.125 for i in range(4))


@pytest.mark.parametrize("env_name", ["simple_spread", "multiwalker", "pursuit"])
@pytest.mark.parametrize("slot", ["exposed", "embedded"])
def test_partial_control_epsilon_zero_is_the_clean_episode(env_name, slot):
    """With eps = 0 the wrapped episode equals the unwrapped one (same seed, same actions)."""
    clean, clean_steps = rollout(PARALLEL_ENVS[env_name](), seed=7, episodes=1)
    base = PARALLEL_ENVS[env_name]()
    agent = base.possible_agents[0]
    env = partial_control_v0(base, agent, 0.0, adversary=None if slot == "exposed" else "random")
    rng = np.random.default_rng(0)
    from adv_wrappers.policies import sample_random_action

    obs, _ = env.reset(seed=7)
    assert data_equivalence(obs[agent], clean[0][1][agent])
    compared = 0
    for entry in clean[1:]:
        actions = entry[1]
        wrapped_actions = dict(actions)
        if slot == "exposed":
            wrapped_actions[f"{agent}_adversary"] = sample_random_action(
                env.action_space(agent), rng
            )
        obs, rewards, terms, truncs, _ = env.step(wrapped_actions)
        for a in actions:
            assert data_equivalence(obs[a], entry[2][a]) and rewards[a] == entry[3][a]
            assert terms[a] == entry[4][a] and truncs[a] == entry[5][a]
        compared += 1
    assert compared == clean_steps > 0 and not env.agents


@SETTINGS
@given(
    epsilon=st.floats(0.0, 3.0),
    norm=st.sampled_from(["linf", "l2"]),
    attack=st.sampled_from([None, "uniform", "gaussian", "policy"]),
    seed=st.integers(0, 1000),
)
def test_perturbed_observations_are_in_the_ball_and_the_bounds(epsilon, norm, attack, seed):
    rng = np.random.default_rng(seed)
    policy = (
        (lambda obs: rng.uniform(-1, 1, obs.shape).astype(np.float32))
        if attack == "policy"
        else attack
    )
    base = simple_spread_v3.parallel_env(N=3, max_cycles=10)
    env = state_perturbation_v0(base, epsilon, norm=norm, attack=policy)
    obs, infos = env.reset(seed=seed)
    checked = 0
    while env.agents:
        actions = {}
        for a in env.agents:
            space = env.action_space(a)
            actions[a] = (
                rng.uniform(-1, 1, space.shape).astype(np.float32)
                if a.endswith("_obs_adversary")
                else space.sample()
            )
        obs, rewards, terms, truncs, infos = env.step(actions)
        gt = next(iter(infos.values()))["state_perturbation"]
        for a, true in gt["true_obs"].items():
            diff = obs[a].astype(np.float64) - true.astype(np.float64)
            dist = np.abs(diff).max() if norm == "linf" else np.linalg.norm(diff)
            assert dist <= epsilon * (1 + 1e-6) + 1e-6
            assert gt["perturbation_norm"][a] == pytest.approx(dist)
            space = base.observation_space(a)
            assert np.all(obs[a] >= space.low) and np.all(obs[a] <= space.high)
            checked += 1
    assert checked == 3 * 10


@SETTINGS
@given(seed=st.integers(0, 10_000), wrapper=st.sampled_from(["k", "byz", "pc", "sp"]))
def test_attacker_reward_is_minus_victim_reward(seed, wrapper):
    base = simple_spread_v3.parallel_env(N=3, max_cycles=8, local_ratio=0.5)
    if wrapper == "k":
        env = k_corruption_v0(base, 1, victim="agent_0")
    elif wrapper == "byz":
        env = byzantine_v0(base, prior={(0, 1, 0): 1.0})
    elif wrapper == "pc":
        env = partial_control_v0(base, "agent_2", 0.5, victim="agent_1")
    else:
        env = state_perturbation_v0(base, 0.2, agents=["agent_1"])
    trace, steps = rollout(env, seed=seed, episodes=1)
    compared = 0
    for entry in trace[1:]:
        rewards, infos = entry[3], entry[6]
        for a, r in rewards.items():
            if not a.endswith("adversary"):
                continue
            if wrapper == "sp":
                victims = ["agent_1"]
            else:
                gt = next(iter(infos.values()))
                gt = gt.get("k_corruption") or gt.get("byzantine") or gt.get("partial_control")
                victims = gt["victims"]
            expected = -np.mean([rewards[v] for v in victims])
            assert r == pytest.approx(expected)
            compared += 1
    assert compared == steps == 8


@pytest.mark.parametrize(
    "make",
    [
        lambda env: state_perturbation_v0(env, 0.0, attack="uniform"),
        lambda env: state_perturbation_v0(env, 0.0, attack="gaussian", norm="l2"),
        lambda env: k_corruption_v0(env, 0, adversary="random"),
        lambda env: byzantine_v0(env, prior={(0, 0, 0): 1.0}, adversary="random"),
    ],
    ids=["sp_uniform", "sp_gaussian_l2", "k0", "theta0"],
)
def test_attack_off_is_the_clean_episode(make):
    clean, clean_steps = rollout(simple_spread_v3.parallel_env(N=3, max_cycles=25), seed=9)
    wrapped, steps = rollout(make(simple_spread_v3.parallel_env(N=3, max_cycles=25)), seed=9)
    assert steps == clean_steps == 50 and len(wrapped) == len(clean) == 52
    for c, w in zip(clean, wrapped, strict=True):
        if c[0] == "reset":
            assert data_equivalence(c[1], w[1]) and c[3] == w[3]
        else:  # actions, obs, rewards, terminations, truncations (infos gain ground truth)
            # (the raw env returns a defaultdict of rewards, the wrappers a dict)
            assert all(data_equivalence(dict(c[i]), dict(w[i])) for i in range(1, 6))
