"""The environments every wrapper is tested on (imported by the tests, not a test module).

Small episode lengths keep the suite fast; each entry covers a property the wrappers must
handle: homogeneous agents, heterogeneous spaces, image observations, continuous actions
with deaths, and an echo env for exact values.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pettingzoo
from gymnasium.utils.env_checker import data_equivalence
from mpe2 import simple_spread_v3, simple_tag_v3

from adv_envs import echo_v0
from adv_wrappers.policies import sample_random_action

PARALLEL_ENVS: dict[str, Callable[[], object]] = {
    "echo": lambda: echo_v0.parallel_env(max_cycles=8, deaths={"agent_1": 3}),
    "simple_spread": lambda: simple_spread_v3.parallel_env(N=3, max_cycles=25),
    "simple_tag": lambda: simple_tag_v3.parallel_env(max_cycles=25),
    "pursuit": lambda: pettingzoo.make("parallel", "sisl/pursuit_v5", max_cycles=20, n_evaders=10),
    "multiwalker": lambda: pettingzoo.make("parallel", "sisl/multiwalker_v9", max_cycles=60),
}


def rollout(env, seed: int, episodes: int = 2, action_seed: int = 0, max_steps: int = 10_000):
    """Run ``episodes`` episodes with seeded random actions; return (trace, steps).

    The first reset uses ``seed``, later ones continue the env's RNG (``reset()``), so a
    seed test also covers the wrapper's unseeded resets.
    """
    rng = np.random.default_rng(action_seed)
    trace, steps = [], 0
    for episode in range(episodes):
        obs, infos = env.reset(seed=seed if episode == 0 else None)
        trace.append(("reset", obs, infos, list(env.agents)))
        while env.agents and steps < max_steps:
            actions = {
                a: sample_random_action(env.action_space(a), rng, _mask(obs.get(a), infos.get(a)))
                for a in env.agents
            }
            out = env.step(actions)
            obs, infos = out[0], out[4]
            trace.append(("step", actions, *out, list(env.agents)))
            steps += 1
    return trace, steps


def _mask(obs, info):
    if isinstance(obs, dict) and "action_mask" in obs:
        return obs["action_mask"]
    if isinstance(info, dict) and "action_mask" in info:
        return info["action_mask"]
    return None


def assert_same_trace(trace1, trace2) -> int:
    """Assert two traces are identical item by item; return how many entries were compared."""
    assert len(trace1) == len(trace2), (len(trace1), len(trace2))
    for i, (a, b) in enumerate(zip(trace1, trace2, strict=False)):
        assert data_equivalence(a, b), f"traces differ at entry {i}: {a!r} != {b!r}"
    return len(trace1)
