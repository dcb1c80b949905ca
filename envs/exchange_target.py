"""Exchange Target: two agents must each reach a landmark that only the other agent knows.

MPE's Reference scenario (Lowe et al., 2017) as used by He et al. (TMLR 2023), "Robust Multi-Agent
RL with State Uncertainty", App. E.1.2: 2 agents, 3 landmarks, 25-step episodes (its
Table 3). Each agent's target landmark is known only to the other agent, so both have to speak
(10 symbols) and listen while they move; both are "generous": an agent is paid more for the
other agent's progress than for its own (with mpe2's rewards; the original code pays both
equally, see below). This module is a thin wrapper around mpe2's
`simple_reference_v3` that fixes the paper's configuration and validates its arguments; the
dynamics and observations are mpe2's, the rewards mpe2's (default) or, with
`rewards="original"`, those of the original MPE code that the paper ran.

| | |
|---|---|
| Agents | `agent_0`, `agent_1` |
| Actions | `Discrete(50)`: action `a` moves by `a % 5` (0 no-op, 1 left, 2 right, 3 down, 4 up) and says symbol `a // 5` (0-9); with `continuous_actions=True` `Box(0, 1, (15,), float32)`: 5 movement entries then 10 communication entries |
| Observations | `Box(-inf, inf, (21,), float32)`: `[v_i (2), l_k - p_i for the 3 landmarks (6), colour of the landmark the *other* agent must reach (3), the other agent's last message (10)]` |
| State | `Box(-inf, inf, (42,), float32)`: mpe2's state, both observations concatenated |
| Rewards | `D_i = ‖p_j - g_i‖`, where `j` is the other agent and `g_i` the landmark that agent `i` knows (agent `j`'s target). `rewards="mpe2"` (default), agent `i`: `(1 - local_ratio) * (L_0 + L_1) / 2 + local_ratio * L_i` with `L_i = -D_i`; with the default `local_ratio = 0.5`: `r_i = 0.75 L_i + 0.25 L_j`, i.e. 0.75 for the other's progress, 0.25 for one's own. `rewards="original"`, both agents: `-(D_0² + D_1²)`, the sum of the original per-agent rewards `-D_i²` |
| Episode | `max_cycles` steps (default 25), then both agents are truncated |
| Kind | cooperative |

At reset each agent's known landmark `g_i` is drawn uniformly from the 3 landmarks,
independently (both may point to the same one); the landmarks are red, green and blue, and the
agent that must reach `g_i` is drawn in `g_i`'s colour.

## Arguments

| argument | default | allowed values |
|---|---|---|
| `local_ratio` | `0.5` | float in `[0, 1]`: weight of the agent's own term `L_i` (mpe2's default); with `rewards="original"` only `0.5` (it has no effect there) |
| `max_cycles` | `25` | int >= 1: episode length in steps |
| `continuous_actions` | `False` | bool |
| `render_mode` | `None` | `None`, `"rgb_array"` or `"human"` |
| `rewards` | `"mpe2"` | `"mpe2"` or `"original"`: mpe2's rewards or those of the original MPE code (Lowe et al., 2017), see Rewards |

Bad values raise `adv_wrappers.errors.InvalidArgumentError`.

## Differences from the paper

The paper describes the task only in words and ran the original MPE code (Lowe et al., 2017),
whose `simple_reference` scenario this is (2 agents, 3 landmarks, 10 symbols).

- Rewards. In the original code agent `i`'s own reward is `-D_i²`, the other agent's
  *squared* distance to the landmark `i` knows, and the world is collaborative: both agents
  receive the sum `-(D_0² + D_1²)`, which weighs the two agents' progress equally.
  `rewards="original"` gives exactly this. mpe2 (the default, `rewards="mpe2"`) uses the
  unsquared distance and mixes the agent's own term with the agents' mean by `local_ratio`,
  which is what makes the agents "generous" (paid more for the other's progress) as the paper
  describes them.
- Reported numbers. The paper's Table 4 gives a "mean episode reward"; MADDPG's training
  script (Lowe et al., 2017), which the paper says it follows, records an episode's reward as
  the sum of all agents' rewards, here twice the shared original reward per step. Compare that
  table with the sum over both agents of the episode returns of `rewards="original"`.
- Dynamics (both reward scales). mpe2 moves each body with the velocity it had before the step
  and then applies the step's forces; the original code first updates the velocity and then
  moves with the new one. An action therefore moves its agent one step later than in the
  original code (the first step after a reset leaves every position unchanged).
- Actions. A discrete action here is a movement and one of 10 symbols (a one-hot message), as
  in the original code's discrete-input mode; MADDPG fed the original code real-valued
  (relaxed one-hot) vectors, which `continuous_actions=True` gives (5 movement and 10 message
  entries; movement entries 1/2 and 3/4 are swapped with respect to the original code, where
  entry 1 pushes right: a relabelling only).

## Version History

- v0: initial release; later the `rewards` argument added (default `"mpe2"`: the rewards
  are unchanged).
"""

from __future__ import annotations

import numpy as np
from gymnasium.utils import EzPickle
from mpe2._mpe_utils.core import World
from mpe2.simple_reference import simple_reference

from adv_envs._checks import check_bool, check_float, check_int, check_render_mode
from adv_envs._errors import InvalidArgumentError
from adv_envs._mpe import PygameLocked, check_rewards, entry_points

NAME = "exchange_target_v0"


def original_rewards(world: World) -> dict[str, float]:
    """The rewards of Lowe et al. (2017)'s ``simple_reference`` in ``world``'s current state.

    Agent ``i``'s own reward is ``-D_i²``: the squared distance from the other agent
    (``goal_a``) to the landmark that ``i`` knows (``goal_b``); the world is collaborative, so
    both agents receive the sum over agents.
    """
    own = [
        -float(np.sum(np.square(agent.goal_a.state.p_pos - agent.goal_b.state.p_pos)))
        for agent in world.agents
    ]
    shared = float(np.sum(own))
    return {agent.name: shared for agent in world.agents}


class raw_env(PygameLocked, simple_reference.raw_env):
    """mpe2's ``simple_reference`` with validated arguments, this env's name and, with
    ``rewards="original"`` (kept as ``reward_scale``), the original MPE rewards."""

    def __init__(
        self,
        local_ratio: float = 0.5,
        max_cycles: int = 25,
        continuous_actions: bool = False,
        render_mode: str | None = None,
        rewards: str = "mpe2",
    ) -> None:
        kwargs = {
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
