"""Echo: a tiny environment whose observations are the actions just executed.

It exists so that tests and doctests can see exactly what a threat-model wrapper did: every
agent observes the joint action that was *executed* at the previous step, and is paid its
own executed action. No physics, no randomness.

| | |
|---|---|
| Agents | ``agent_0`` ... ``agent_{n_agents-1}`` |
| Actions | ``Discrete(n_actions)``, or with ``continuous=True`` ``Box(-1, 1, (1,), float32)`` |
| Observations | ``Box(-1, n_actions - 1, (n_agents,), float32)`` (continuous: ``Box(-1, 1, ...)``): the executed action of every agent at the previous step, ``-1`` at reset (continuous: ``0``) |
| State | the same vector (``state_space`` equals an observation space) |
| Rewards | agent ``i`` gets ``float(executed action of i)`` |
| Episode | ``max_cycles`` steps (default 5), then every agent is truncated |

Optional ``deaths={agent: t}``: that agent is terminated at step ``t`` (it gets its reward
of step ``t`` and leaves ``agents``), to test wrappers on agents that die.

Arguments:
    n_agents (int): number of agents, >= 1 (default 3).
    n_actions (int): size of the Discrete action space, >= 1 (default 5).
    continuous (bool): Box actions in [-1, 1] instead (default False).
    max_cycles (int): episode length, >= 1 (default 5).
    deaths (dict | None): agent -> step at which it terminates.

Example:
    >>> from adv_envs import echo_v0
    >>> env = echo_v0.parallel_env(n_agents=2, max_cycles=2)
    >>> obs, infos = env.reset(seed=0)
    >>> obs["agent_0"]
    array([-1., -1.], dtype=float32)
    >>> obs, rewards, terms, truncs, infos = env.step({"agent_0": 3, "agent_1": 1})
    >>> obs["agent_1"], rewards
    (array([3., 1.], dtype=float32), {'agent_0': 3.0, 'agent_1': 1.0})

Version History:
    v0: initial release.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium
import numpy as np
from pettingzoo import ParallelEnv
from pettingzoo.utils import parallel_to_aec, wrappers


class EchoParallelEnv(ParallelEnv):
    metadata = {"name": "echo_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(
        self,
        n_agents: int = 3,
        n_actions: int = 5,
        continuous: bool = False,
        max_cycles: int = 5,
        deaths: dict[str, int] | None = None,
        render_mode: str | None = None,
    ):
        for name, value in (
            ("n_agents", n_agents),
            ("n_actions", n_actions),
            ("max_cycles", max_cycles),
        ):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.n_actions = int(n_actions)
        self.continuous = bool(continuous)
        self.max_cycles = int(max_cycles)
        self.possible_agents = [f"agent_{i}" for i in range(n_agents)]
        self.deaths = dict(deaths or {})
        unknown = [a for a in self.deaths if a not in self.possible_agents]
        if unknown:
            raise ValueError(
                f"deaths has unknown agents {unknown}; allowed: {self.possible_agents}"
            )
        self.render_mode = render_mode
        if self.continuous:
            self._obs_space = gymnasium.spaces.Box(-1.0, 1.0, (n_agents,), np.float32)
        else:
            self._obs_space = gymnasium.spaces.Box(
                -1.0, self.n_actions - 1.0, (n_agents,), np.float32
            )
        self.state_space = self._obs_space
        self.agents: list[str] = []
        self._last = np.zeros(n_agents, np.float32)

    @functools.cache  # noqa: B019 - spaces must be the same object per agent
    def observation_space(self, agent: str) -> gymnasium.spaces.Space:
        return self._obs_space

    @functools.cache  # noqa: B019
    def action_space(self, agent: str) -> gymnasium.spaces.Space:
        if self.continuous:
            return gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float32)
        return gymnasium.spaces.Discrete(self.n_actions)

    def state(self) -> np.ndarray:
        return self._last.copy()

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        self.agents = list(self.possible_agents)
        self.t = 0
        self._last = np.full(
            len(self.possible_agents), 0.0 if self.continuous else -1.0, np.float32
        )
        return {a: self._last.copy() for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        self.t += 1
        for a in self.agents:
            value = actions[a]
            self._last[self.possible_agents.index(a)] = (
                float(np.asarray(value).reshape(-1)[0]) if self.continuous else float(value)
            )
        obs = {a: self._last.copy() for a in self.agents}
        rewards = {a: float(self._last[self.possible_agents.index(a)]) for a in self.agents}
        terminations = {a: self.deaths.get(a) == self.t for a in self.agents}
        truncations = {a: self.t >= self.max_cycles for a in self.agents}
        infos = {a: {} for a in self.agents}
        self.agents = [a for a in self.agents if not (terminations[a] or truncations[a])]
        return obs, rewards, terminations, truncations, infos

    def render(self) -> None:
        return None

    def close(self) -> None:
        pass


def parallel_env(**kwargs: Any) -> EchoParallelEnv:
    return EchoParallelEnv(**kwargs)


def raw_env(**kwargs: Any):
    return parallel_to_aec(parallel_env(**kwargs))


def env(**kwargs: Any):
    return wrappers.OrderEnforcingWrapper(raw_env(**kwargs))
