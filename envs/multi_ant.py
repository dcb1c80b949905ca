"""Multi-agent Ant 4x2: four agents, one leg each, paid for moving the ant forward together.

The cooperative multi-agent MuJoCo Ant of Nika et al. (TMLR 2024), "Defending Against Unknown
Corrupted Agents", App. C.2, after Peng et al. (2021): the Ant's eight hinge joints are split
into four legs (MaMuJoCo's `"4x2"` factorization, `gymnasium_robotics.mamujoco_v1`), each
controlled by one agent that applies torque to its hip (torso to upper leg) and ankle (upper to
lower leg) joints. Every agent receives the same reward: the ant's forward progress since the
previous frame plus 0.1 for not having fallen over. The control and contact costs of
Gymnasium's Ant are removed, as in the paper, because a corrupted leg could exploit them without
affecting the task. The reward and the termination are computed here from the MuJoCo data,
not taken from Gymnasium's Ant.

| | |
|---|---|
| Agents | `agent_0` front left leg (`hip1`, `ankle1`), `agent_1` front right (`hip2`, `ankle2`), `agent_2` back left (`hip3`, `ankle3`), `agent_3` back right (`hip4`, `ankle4`) |
| Actions | `Box(-1, 1, (2,), float32)`: torques of the agent's hip and ankle (MuJoCo clamps controls to the actuators' range `[-1, 1]`) |
| Observations | MaMuJoCo's local observation, `Box(-inf, inf, (45,), float64)` with the default `agent_obsk=2`: the own joints' positions and velocities and the external contact forces (clipped to [-1, 1]) of the torso and the leg's bodies, the positions of all other joints (hips at distance 1, the other ankles at distance 2), and the torso's height, orientation quaternion and 6-d velocity. `agent_obsk=1`: 42 entries (other ankles not seen); `0`: 39 |
| State | MaMuJoCo's `state()`, Gymnasium Ant-v5's observation: `Box(-inf, inf, (105,), float64)` = `qpos[2:]` (13), `qvel` (14), clipped `cfrc_ext` of the 13 bodies (78) |
| Rewards | shared: `r = (x_after - x_before) / dt + 0.1 * healthy`, with `x` the torso's x coordinate (`data.qpos[0]`, the free joint's position) before and after the step, `dt = 0.05` s (5 physics steps of 0.01 s), and `healthy` evaluated after the step |
| Healthy | every entry of `qpos` and `qvel` finite and the torso height `qpos[2]` in `[0.2, 1.0]` (Gymnasium Ant's healthy range) |
| Episode | terminates at the first unhealthy state (that step pays no healthy bonus); truncated after `max_cycles` steps (default 1000) |
| Kind | cooperative |

## Arguments

| argument | default | allowed values |
|---|---|---|
| `agent_obsk` | `2` | int >= 0: MaMuJoCo's observation depth (how many joints away an agent sees joint positions); 2 shows every joint |
| `max_cycles` | `1000` | int >= 1: episode length in steps |
| `render_mode` | `None` | `None`, `"rgb_array"` (480x480 frames; headless with `MUJOCO_GL=egl`) or `"human"` (a MuJoCo viewer window) |

Any other value raises `adv_wrappers.errors.InvalidArgumentError` naming the argument.
`reset(seed=...)` seeds Gymnasium Ant's initial-state noise (uniform in ±0.1 on positions,
normal with scale 0.1 on velocities); `reset(options=...)` is accepted for API compatibility,
no options are defined. `env.dt` is the step duration (0.05 s). `infos[agent]` holds `x_before`, `x_after`, `forward_reward` and
`healthy` for every step. The MuJoCo `MjData` is `env.data` (read it; write through
`env.set_state(qpos, qvel)` to script a situation).

## Example

```python
>>> import numpy as np
>>> from adv_envs import multi_ant
>>> env = multi_ant.parallel_env()
>>> _ = env.reset(seed=0)
>>> x_before = env.data.qpos[0]
>>> _, rewards, *_ = env.step({a: np.full(2, 0.5, np.float32) for a in env.agents})
>>> bool(rewards["agent_3"] == (env.data.qpos[0] - x_before) / env.dt + 0.1)
True

```

## Differences from the paper

- "Forward momentum compared to the preceding frame" is read as the torso's mean forward
  velocity over the step, `(x_after - x_before) / dt`, the forward term of Gymnasium's Ant and
  of Peng et al.'s MaMuJoCo. Multiply by `dt` to get the displacement in metres.
- The paper does not state what "falling over" is or the episode length; both follow
  Gymnasium's Ant (healthy height range `[0.2, 1.0]`, termination when unhealthy, 1000 steps).
- "Agents observe the position and orientation of all joints" is met by `agent_obsk=2`
  (MaMuJoCo's default is 1). Observations also contain the leg's contact forces, as in
  Gymnasium Ant-v5.
- Gymnasium's Ant reads x from the torso body's `xpos`, which MuJoCo computes at the start of
  the last physics substep, so it lags the state by 0.01 s (its forward reward differs from
  the one here by up to a few hundredths per step). Here x is `qpos[0]`, the state after the
  step, so the forward terms of an episode add up to the distance travelled divided by `dt`.

## Version History

- v0: initial release.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium
import numpy as np
from gymnasium.envs.mujoco.ant_v5 import AntEnv
from gymnasium_robotics import mamujoco_v1
from pettingzoo import ParallelEnv
from pettingzoo.utils import parallel_to_aec, wrappers

from adv_envs._checks import check_int, check_render_mode

RENDER_MODES = (None, "rgb_array", "human")
HEALTHY_REWARD = 0.1
HEALTHY_Z_RANGE = (0.2, 1.0)


class MultiAntParallelEnv(ParallelEnv):
    """MaMuJoCo Ant 4x2 with the shared reward of Nika et al. (TMLR 2024); see the module docstring."""

    metadata = {
        "name": "multi_ant_v0",
        "render_modes": [m for m in RENDER_MODES if m is not None],
        "is_parallelizable": True,
        "render_fps": 20,
    }

    def __init__(
        self,
        agent_obsk: int = 2,
        max_cycles: int = 1000,
        render_mode: str | None = None,
    ):
        self.agent_obsk = check_int(agent_obsk, "agent_obsk", 0)
        self.max_cycles = check_int(max_cycles, "max_cycles", 1)
        check_render_mode(render_mode, RENDER_MODES)
        self.render_mode = render_mode
        # The single-agent Ant without a TimeLimit: episode length and termination are ours.
        # Its own reward terms are set to the paper's so that its info is not misleading,
        # but the reward returned by step() is computed below from the MuJoCo data.
        self._ant = AntEnv(
            ctrl_cost_weight=0.0,
            contact_cost_weight=0.0,
            healthy_reward=HEALTHY_REWARD,
            healthy_z_range=HEALTHY_Z_RANGE,
            terminate_when_unhealthy=False,
            render_mode=render_mode,
        )
        self.mamujoco = mamujoco_v1.parallel_env(
            "Ant", "4x2", agent_obsk=self.agent_obsk, gym_env=self._ant
        )
        self.possible_agents = list(self.mamujoco.possible_agents)
        self.agents: list[str] = []
        self.state_space = self._ant.observation_space
        self.dt = float(self._ant.dt)
        self.t = 0

    @functools.cache  # noqa: B019 - spaces must be the same object per agent
    def observation_space(self, agent: str) -> gymnasium.spaces.Space:
        return self.mamujoco.observation_space(agent)

    @functools.cache  # noqa: B019
    def action_space(self, agent: str) -> gymnasium.spaces.Space:
        return self.mamujoco.action_space(agent)

    @property
    def data(self):
        """The MuJoCo ``MjData`` of the simulation."""
        return self._ant.data

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray) -> dict[str, np.ndarray]:
        """Set the simulator's positions and velocities (for scripted situations); return obs."""
        self._ant.set_state(np.asarray(qpos, np.float64), np.asarray(qvel, np.float64))
        return self.mamujoco._get_obs()

    def is_healthy(self) -> bool:
        """Finite state and torso height ``qpos[2]`` within ``HEALTHY_Z_RANGE``."""
        qpos, qvel = self.data.qpos, self.data.qvel
        low, high = HEALTHY_Z_RANGE
        finite = bool(np.isfinite(qpos).all() and np.isfinite(qvel).all())
        return finite and bool(low <= qpos[2] <= high)

    def state(self) -> np.ndarray:
        return self.mamujoco.state()

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, _ = self.mamujoco.reset(seed=seed)
        self.agents = list(self.possible_agents)
        self.t = 0
        return obs, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise KeyError(f"no action for {missing}; every agent in env.agents must act")
        x_before = float(self.data.qpos[0])
        obs, _, _, _, _ = self.mamujoco.step({a: actions[a] for a in self.possible_agents})
        x_after = float(self.data.qpos[0])
        self.t += 1
        healthy = self.is_healthy()
        forward = (x_after - x_before) / self.dt
        reward = forward + (HEALTHY_REWARD if healthy else 0.0)
        rewards = {a: reward for a in self.agents}
        terminations = {a: not healthy for a in self.agents}
        truncations = {a: self.t >= self.max_cycles for a in self.agents}
        infos = {
            a: {
                "x_before": x_before,
                "x_after": x_after,
                "forward_reward": forward,
                "healthy": healthy,
            }
            for a in self.agents
        }
        if not healthy or self.t >= self.max_cycles:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gymnasium.logger.warn("render() called with render_mode=None; nothing to draw")
            return None
        return self.mamujoco.render()

    def close(self) -> None:
        self.mamujoco.close()


def parallel_env(**kwargs: Any) -> MultiAntParallelEnv:
    return MultiAntParallelEnv(**kwargs)


def raw_env(**kwargs: Any):
    return parallel_to_aec(parallel_env(**kwargs))


def env(**kwargs: Any):
    return wrappers.OrderEnforcingWrapper(raw_env(**kwargs))
