"""Every registered bundled env (list from ``adv_envs.ENVS``): the registry, PettingZoo's API
tests, a seed test that counts what it compared, state(), rendering, every applicable threat
wrapper. (That the env docs pages match the docstrings is checked in ``test_docs.py``.)"""

from __future__ import annotations

import importlib.util
import os
import warnings

import numpy as np
import pettingzoo
import pytest
from gymnasium.utils.env_checker import data_equivalence
from pettingzoo.test import api_test, parallel_api_test

import adv_envs
from adv_envs import ENVS
from adv_wrappers.policies import sample_random_action
from adv_wrappers.registry import SLOTS, THREAT_MODELS
from tests.envs_under_test import assert_same_trace, rollout

os.environ.setdefault("MUJOCO_GL", "egl")

IDS = [info.id for info in ENVS]
PARALLEL_IDS = [info.id for info in ENVS if not info.turn_based]
INFO = {info.id: info for info in ENVS}
SHORT = {"max_cycles": 30}  # keeps the slow simulators fast; every non-turn-based env takes it


def make(env_id: str, api: str = "parallel", **kwargs):
    if INFO[env_id].extra == "smax" and importlib.util.find_spec("jaxmarl") is None:
        pytest.skip("needs the smax extra (jaxmarl, Python >= 3.11)")
    if not INFO[env_id].turn_based:
        kwargs = {**SHORT, **kwargs}
    return pettingzoo.make(api, env_id, **kwargs)


def aec_rollout(env, seed: int, action_seed: int = 0, episodes: int = 2):
    """Seeded random play of an AEC env (masks respected); returns (trace, steps)."""
    rng = np.random.default_rng(action_seed)
    trace, steps = [], 0
    for episode in range(episodes):
        env.reset(seed=seed if episode == 0 else None)
        for agent in env.agent_iter():
            obs, reward, term, trunc, info = env.last()
            trace.append((agent, obs, reward, term, trunc, info))
            if term or trunc:
                action = None
            else:
                mask = obs.get("action_mask") if isinstance(obs, dict) else info.get("action_mask")
                action = sample_random_action(env.action_space(agent), rng, mask)
            trace.append(action)
            env.step(action)
            steps += 1
    return trace, steps


def test_registry_lists_every_env():
    assert len(ENVS) == 14 and len(set(IDS)) == 14
    for info in ENVS:
        assert info.id.startswith("adv/") and info.id.endswith("-v0")
        assert info.id in pettingzoo.aec_registry
        assert (info.id in pettingzoo.parallel_registry) != info.turn_based


def test_unknown_id_raises():
    from pettingzoo.env_registry.exceptions import NameNotFound

    with pytest.raises(NameNotFound):
        pettingzoo.make("parallel", "adv/no_such_env-v0")


@pytest.mark.parametrize("env_id", PARALLEL_IDS)
def test_parallel_api(env_id):
    parallel_api_test(make(env_id), num_cycles=40)


@pytest.mark.parametrize("env_id", IDS)
def test_aec_api(env_id):
    api_test(make(env_id, "aec"), num_cycles=40)


@pytest.mark.parametrize("env_id", PARALLEL_IDS)
def test_parallel_seed(env_id):
    trace1, steps1 = rollout(make(env_id), seed=42)
    trace2, steps2 = rollout(make(env_id), seed=42)
    assert steps1 == steps2 >= 2
    assert assert_same_trace(trace1, trace2) == steps1 + 2


@pytest.mark.parametrize("env_id", IDS)
def test_aec_seed(env_id):
    trace1, steps1 = aec_rollout(make(env_id, "aec"), seed=42)
    trace2, steps2 = aec_rollout(make(env_id, "aec"), seed=42)
    assert steps1 == steps2 >= 4
    assert len(trace1) == len(trace2) == 2 * steps1
    for i, (a, b) in enumerate(zip(trace1, trace2, strict=True)):
        assert data_equivalence(a, b), f"{env_id}: entry {i} differs"


@pytest.mark.parametrize("env_id", IDS)
def test_state(env_id):
    info = INFO[env_id]
    env = make(env_id, "aec" if info.turn_based else "parallel")
    env.reset(seed=0)
    assert env.state_space.contains(env.state()), env.state()


@pytest.mark.parametrize("env_id", IDS)
def test_rgb_array_render(env_id):
    info = INFO[env_id]
    env = make(env_id, "aec" if info.turn_based else "parallel", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3
    assert frame.dtype == np.uint8 and frame.size > 0
    env.close()


THREAT_CASES = [(env_id, tm, slot) for env_id in IDS for tm in THREAT_MODELS for slot in SLOTS]


@pytest.mark.parametrize("env_id,tm_name,slot", THREAT_CASES)
def test_runs_under_every_applicable_threat_model(env_id, tm_name, slot):
    tm = THREAT_MODELS[tm_name]
    info = INFO[env_id]
    if info.turn_based:
        if tm.aec_factory_name is None:
            pytest.skip(f"{tm_name} has no AEC version (turn-based {env_id})")
        env = tm.make(make(env_id, "aec"), slot)
        api_test(env, num_cycles=20)
        return
    env = make(env_id)
    if not tm.applies_to(env):
        pytest.skip(f"{tm_name} does not apply to {env_id}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No agents present but not all")
        parallel_api_test(tm.make(env, slot), num_cycles=20)


def test_adv_wrappers_import_registers_the_envs():
    assert adv_envs.ENVS[0].id in pettingzoo.parallel_registry
