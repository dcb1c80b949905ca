"""Every registered threat model x slot x environment passes PettingZoo's API tests and a
seed test that counts the steps it compared. The lists come from the registries, so a new
threat model or environment is tested without anyone adding it here."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test
from pettingzoo.utils import parallel_to_aec

from adv_wrappers.policies import sample_random_action
from adv_wrappers.registry import SLOTS, THREAT_MODELS
from tests.envs_under_test import PARALLEL_ENVS, assert_same_trace, rollout

CASES = [
    (tm_name, slot, env_name)
    for tm_name in THREAT_MODELS
    for slot in SLOTS
    for env_name in PARALLEL_ENVS
]


def make(tm_name: str, slot: str, env_name: str):
    env = PARALLEL_ENVS[env_name]()
    tm = THREAT_MODELS[tm_name]
    if not tm.applies_to(env):
        pytest.skip(f"{tm_name} does not apply to {env_name}")
    return tm.make(env, slot)


@pytest.mark.parametrize("tm_name,slot,env_name", CASES)
def test_parallel_api(tm_name, slot, env_name):
    with warnings.catch_warnings():
        # possible_agents includes one adversary per attackable agent; those whose agent is
        # not attacked this episode never appear, which parallel_api_test warns about.
        warnings.filterwarnings("ignore", message="No agents present but not all")
        parallel_api_test(make(tm_name, slot, env_name), num_cycles=60)


@pytest.mark.parametrize("tm_name,slot,env_name", CASES)
def test_aec_api_through_parallel_to_aec(tm_name, slot, env_name):
    api_test(parallel_to_aec(make(tm_name, slot, env_name)), num_cycles=30)


@pytest.mark.parametrize("tm_name,slot,env_name", CASES)
def test_seed(tm_name, slot, env_name):
    trace1, steps1 = rollout(make(tm_name, slot, env_name), seed=42)
    trace2, steps2 = rollout(make(tm_name, slot, env_name), seed=42)
    assert steps1 == steps2
    compared = assert_same_trace(trace1, trace2)
    # two episodes: two resets plus every step of both episodes were compared
    assert compared == steps1 + 2
    assert steps1 >= 2 * (3 if env_name != "multiwalker" else 1)


@pytest.mark.parametrize("tm_name,slot,env_name", CASES)
def test_state_passes_through(tm_name, slot, env_name):
    env = make(tm_name, slot, env_name)
    if not hasattr(env.unwrapped, "state_space"):
        pytest.skip(f"{env_name} has no state()")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    checked = 0
    while env.agents and checked < 20:
        state = env.state()
        assert env.state_space.contains(state) and np.array_equal(state, env.unwrapped.state())
        env.step({a: sample_random_action(env.action_space(a), rng) for a in env.agents})
        checked += 1
    assert checked == 20 or (env_name == "echo" and checked == 8)
