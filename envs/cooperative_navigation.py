"""Cooperative Navigation: N agents must cover N landmarks together without colliding.

MPE's Spread (Lowe et al., 2017) as used by He et al. (TMLR 2023), "Robust Multi-Agent RL with
State Uncertainty", App. E.1.1 (3 agents, 3 landmarks) and App. E.6 (the same task with
6 agents, `N=6`), with the 25-step episodes of its Table 3. This module is a thin wrapper
around mpe2's `simple_spread_v3` that fixes the paper's configuration and validates its
arguments; the dynamics and observations are mpe2's, the rewards mpe2's (default) or, with
`rewards="original"`, those of the original MPE code that the paper ran.

| | |
|---|---|
| Agents | `agent_0` ... `agent_{N-1}` (default `N=3`; the paper's App. E.6: `N=6`) |
| Actions | `Discrete(5)`: 0 no-op, 1 left, 2 right, 3 down, 4 up; with `continuous_actions=True` `Box(0, 1, (5,), float32)` |
| Observations | `Box(-inf, inf, (6N,), float32)`: `[v_i (2), p_i (2), l_k - p_i for every landmark k (2N), p_j - p_i for every other agent j (2(N-1)), the other agents' communication (2(N-1), always 0: agents are silent)]` |
| State | `Box(-inf, inf, (6N^2,), float32)`: mpe2's state, the concatenated observations of all agents in agent order |
| Rewards | `G = -Σ_k min_j ‖p_j - l_k‖` (each landmark's distance to its closest agent), `C_i = #{j ≠ i : ‖p_i - p_j‖ < 0.3}` (the agents in contact with agent `i`), `P = Σ_i C_i / 2` (the pairs in contact). `rewards="mpe2"` (default), agent `i`: `(1 - local_ratio) * G - local_ratio * C_i`. `rewards="original"`, every agent: `N * G - N - 2P`, the sum over agents of the original per-agent reward `G - 1 - C_i` (the original code counts each agent as colliding with itself) |
| Episode | `max_cycles` steps (default 25), then every agent is truncated |
| Kind | cooperative: all agents share `G` and want to cover every landmark |

## Arguments

| argument | default | allowed values |
|---|---|---|
| `N` | `3` | int >= 1: number of agents and landmarks (3 in E.1.1, 6 in E.6) |
| `local_ratio` | `0.5` | float in `[0, 1]`: weight of the local collision term (mpe2's default); with `rewards="original"` only `0.5` (it has no effect there) |
| `rewards` | `"mpe2"` | `"mpe2"` or `"original"`: mpe2's rewards or those of the original MPE code (Lowe et al., 2017), see Rewards |
| `max_cycles` | `25` | int >= 1: episode length in steps |
| `continuous_actions` | `False` | bool |
| `render_mode` | `None` | `None`, `"rgb_array"` or `"human"` |

Bad values raise `adv_wrappers.errors.InvalidArgumentError`.

## Differences from the paper

The paper describes the task only in words ("agents want to occupy all the landmarks ... they
will be penalized when collisions happen") and ran the original MPE code (Lowe et al., 2017),
whose `simple_spread` has 3 agents (`N=6` extends it as the paper's App. E.6 does).

- Rewards. mpe2 (the default, `rewards="mpe2"`) mixes the shared distance term `G` with the
  agent's own collision count `C_i` by `local_ratio`, and does not count an agent as colliding
  with itself. The original code pays each agent `G - 1 - C_i` (its collision loop includes
  the agent itself, so every agent pays 1 at every step) and, the world being collaborative,
  gives every agent the sum of these over all agents: `N * G - N - 2P` (each colliding pair
  pays 2, once through each of its agents). `rewards="original"` gives exactly this; for
  comparison, with the default `local_ratio = 0.5` the mpe2 reward is `G / 2 - C_i / 2`.
- Reported numbers. The paper's Tables 4-5 give a "mean episode reward"; MADDPG's training
  script (Lowe et al., 2017), which the paper says it follows, records an episode's reward as
  the sum of all agents' rewards, here `N` times the shared original reward per step. Compare
  those tables with the sum over agents of the episode returns of `rewards="original"`.
- Dynamics (both reward scales). mpe2 moves each body with the velocity it had before the step
  and then applies the step's forces; the original code first updates the velocity and then
  moves with the new one. An action therefore moves its agent one step later than in the
  original code (the first step after a reset leaves every position unchanged).
- Action labels. Discrete actions follow the original code's discrete-input mode (1 left,
  2 right, 3 down, 4 up); with `continuous_actions=True`, entries 1/2 and 3/4 are swapped with
  respect to the original code's vector input (entry 1 pushes left here, right there), a
  relabelling that changes nothing a policy can learn.

## Version History

- v0: initial release; later the `rewards` argument added (default `"mpe2"`: the rewards
  are unchanged).
"""

from __future__ import annotations

import numpy as np
from gymnasium.utils import EzPickle
from mpe2._mpe_utils.core import World
from mpe2.simple_spread import simple_spread

from adv_envs._checks import check_bool, check_float, check_int, check_render_mode
from adv_envs._errors import InvalidArgumentError
from adv_envs._mpe import PygameLocked, check_rewards, entry_points

NAME = "cooperative_navigation_v0"


def original_rewards(world: World) -> dict[str, float]:
    """The rewards of Lowe et al. (2017)'s ``simple_spread`` in ``world``'s current state.

    Agent ``i``'s own reward is ``G - 1 - C_i`` (the original collision loop also meets the
    agent itself); the world is collaborative, so every agent receives the sum over agents.
    """
    agents = np.array([agent.state.p_pos for agent in world.agents])
    landmarks = np.array([landmark.state.p_pos for landmark in world.landmarks])
    sizes = np.array([agent.size for agent in world.agents])
    to_landmarks = np.linalg.norm(agents[:, None] - landmarks[None], axis=-1)  # (agent, landmark)
    coverage = -to_landmarks.min(axis=0).sum()  # G
    between = np.linalg.norm(agents[:, None] - agents[None], axis=-1)
    contacts = (between < sizes[:, None] + sizes[None]).sum(axis=1)  # 1 + C_i: diagonal included
    shared = float(np.sum(coverage - contacts))
    return {agent.name: shared for agent in world.agents}


class raw_env(PygameLocked, simple_spread.raw_env):
    """mpe2's ``simple_spread`` with validated arguments, this env's name and, with
    ``rewards="original"`` (kept as ``reward_scale``), the original MPE rewards."""

    def __init__(
        self,
        N: int = 3,
        local_ratio: float = 0.5,
        max_cycles: int = 25,
        continuous_actions: bool = False,
        render_mode: str | None = None,
        rewards: str = "mpe2",
    ) -> None:
        kwargs = {
            "N": check_int(N, "N"),
            "local_ratio": check_float(local_ratio, "local_ratio", 0.0, 1.0),
            "max_cycles": check_int(max_cycles, "max_cycles"),
            "continuous_actions": check_bool(continuous_actions, "continuous_actions"),
            "render_mode": check_render_mode(render_mode),
        }
        self.reward_scale = check_rewards(rewards)
        if self.reward_scale == "original" and kwargs["local_ratio"] != 0.5:
            raise InvalidArgumentError(
                "local_ratio only applies to rewards='mpe2' (the original rewards do not mix); "
                f"leave it at 0.5 with rewards='original', got {local_ratio!r}"
            )
        super().__init__(**kwargs)
        # so that unpickling calls this class's __init__
        EzPickle.__init__(self, **kwargs, rewards=self.reward_scale)
        self.metadata = {**self.metadata, "name": NAME}  # mpe2 writes into the shared class dict

    def _execute_world_step(self) -> None:
        super()._execute_world_step()
        if self.reward_scale == "original":
            self.rewards.update(original_rewards(self.world))


env, parallel_env = entry_points(raw_env)
