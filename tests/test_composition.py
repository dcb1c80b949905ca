"""Threat models compose with each other and with SuperSuit (where its assumptions hold)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import supersuit as ss
from mpe2 import simple_spread_v3, simple_tag_v3
from pettingzoo.test import parallel_api_test

from adv_wrappers import (
    byzantine_v0,
    freeze_v0,
    k_corruption_v0,
    partial_control_v0,
    state_perturbation_v0,
)
from tests.envs_under_test import assert_same_trace, rollout


def stacked():
    env = simple_spread_v3.parallel_env(N=3, max_cycles=15)
    env = k_corruption_v0(env, 1, adversary="random")
    return state_perturbation_v0(env, 0.2, attack="uniform")


COMPOSITIONS = {
    "k_corruption+state_perturbation": stacked,
    "byzantine+partial_control(exposed)": lambda: partial_control_v0(
        byzantine_v0(simple_spread_v3.parallel_env(N=3, max_cycles=15), adversary="random"),
        "agent_0",
        0.5,
    ),
    "supersuit_pad_obs(k_corruption(simple_tag))": lambda: ss.pad_observations_v0(
        k_corruption_v0(simple_tag_v3.parallel_env(max_cycles=15), 1)
    ),
    "k_corruption(supersuit_pad_obs(simple_tag))": lambda: k_corruption_v0(
        ss.pad_observations_v0(simple_tag_v3.parallel_env(max_cycles=15)), 2
    ),
    "state_perturbation(frame_stack(simple_spread))": lambda: state_perturbation_v0(
        ss.frame_stack_v1(simple_spread_v3.parallel_env(N=3, max_cycles=15), 2), 0.1
    ),
    "supersuit_dtype(state_perturbation(simple_spread))": lambda: ss.dtype_v0(
        state_perturbation_v0(
            simple_spread_v3.parallel_env(N=3, max_cycles=15), 0.1, attack="gaussian"
        ),
        np.float64,
    ),
    "state_perturbation(victim_policies)": lambda: state_perturbation_v0(
        simple_spread_v3.parallel_env(N=3, max_cycles=15),
        0.3,
        agents=["agent_0", "agent_2"],
        victim_policies={"agent_0": "random", "agent_2": "random"},
    ),
    "freeze(partial_control(simple_spread))": lambda: freeze_v0(
        partial_control_v0(simple_spread_v3.parallel_env(N=3, max_cycles=15), "agent_1", 0.5),
        {"agent_0": "random"},
    ),
}


@pytest.mark.parametrize("name", list(COMPOSITIONS))
def test_compositions_pass_the_api_and_seed_tests(name):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No agents present but not all")
        parallel_api_test(COMPOSITIONS[name](), num_cycles=40)
    trace1, steps1 = rollout(COMPOSITIONS[name](), seed=3)
    trace2, steps2 = rollout(COMPOSITIONS[name](), seed=3)
    assert steps1 == steps2 == 30  # two 15-step episodes
    assert assert_same_trace(trace1, trace2) == 32


def test_stacked_threats_report_both_ground_truths():
    env = stacked()
    obs, infos = env.reset(seed=0)
    attacked = infos[env.agents[0]]["k_corruption"]["attacked"]
    assert len(attacked) == 1 and attacked[0] not in env.agents
    obs, rewards, terms, truncs, infos = env.step({a: 1 for a in env.agents})
    info = infos[env.agents[0]]
    # the observation threat sees only the agents still outside the corruption wrapper
    assert set(info["state_perturbation"]["attacked"]) == set(env.agents)
    assert info["k_corruption"]["executed_actions"].keys() == {attacked[0]}


def test_single_attacker_against_frozen_defenders_with_exact_observation_timing():
    """The attack.py set-up for a learned chi: one exposed observation adversary, every
    defender frozen, as a gymnasium.Env."""
    from adv_wrappers import to_single_agent

    env = state_perturbation_v0(
        simple_spread_v3.parallel_env(N=3, max_cycles=15),
        0.5,
        agents=["agent_1"],
        victim_policies=lambda obs: 1,
    )
    env = to_single_agent(freeze_v0(env, {"agent_0": lambda obs: 2, "agent_2": lambda obs: 3}))
    obs, info = env.reset(seed=0)
    assert info["agent"] == "agent_1_obs_adversary" and env.action_space.shape == (18,)
    steps, done = 0, False
    while not done:
        obs, reward, term, trunc, info = env.step(np.full(18, 0.5, np.float32))
        gt = info["state_perturbation"]
        assert gt["victim_perturbation_norm"]["agent_1"] == pytest.approx(0.25)
        assert reward == -gt["victim_rewards"]["agent_1"]
        steps += 1
        done = term or trunc
    assert steps == 15
