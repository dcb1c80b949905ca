"""Physical Deception: two agents cover the target landmark while hiding it from an adversary.

MPE's Adversary scenario (Lowe et al., 2017) as used by He et al. (TMLR 2023), "Robust Multi-Agent
RL with State Uncertainty", App. E.1.4: 2 cooperating agents, 1 adversary, 2 landmarks of
which one is the target, 25-step episodes (its Table 3). Everybody wants to be at the target,
but only the cooperating agents know which landmark it is; they are paid when one of them is
close to it and when the adversary is far from it, so their best play is to cover every
landmark and leave the adversary guessing. This module is a thin wrapper around mpe2's
`simple_adversary_v3` that fixes the paper's configuration and validates its arguments; the
dynamics and observations are mpe2's, the rewards mpe2's (default) or, with
`rewards="original"`, those of the original MPE code that the paper ran.

| | |
|---|---|
| Agents | `adversary_0`, `agent_0` ... `agent_{N-1}` (in this order; default `N=2`) |
| Actions | `Discrete(5)`: 0 no-op, 1 left, 2 right, 3 down, 4 up; with `continuous_actions=True` `Box(0, 1, (5,), float32)` |
| Observations | `agent_i`: `Box(-inf, inf, (4N + 2,), float32)` = `[g - p (2), l_k - p for every landmark (2N), p_o - p for every other agent, adversary first (2N)]`; `adversary_0`: `Box(-inf, inf, (4N,), float32)` = the same without the target. No velocities are observed |
| State | `Box(-inf, inf, (N(4N + 2) + 4N,), float32)` (28 for `N=2`): mpe2's state, all observations concatenated in agent order |
| Rewards | every `agent_i` (the same value for all): `-min_j ‖p_j - g‖ + ‖p_adv - g‖` (the closest cooperating agent, minus the adversary's distance), for both values of `rewards`; `adversary_0`: `-‖p_adv - g‖` with `rewards="mpe2"` (default), `-‖p_adv - g‖²` with `rewards="original"` |
| Episode | `max_cycles` steps (default 25), then every agent is truncated |
| Kind | general-sum (the cooperating agents share a reward, the adversary competes with them) |

The bodies (radius 0.15) do not collide. At reset the target is one of the `N` landmarks,
drawn uniformly, and drawn in green.

## Arguments

| argument | default | allowed values |
|---|---|---|
| `N` | `2` | int >= 1: number of cooperating agents and of landmarks (2 in the paper) |
| `max_cycles` | `25` | int >= 1: episode length in steps |
| `continuous_actions` | `False` | bool |
| `render_mode` | `None` | `None`, `"rgb_array"` or `"human"` |
| `rewards` | `"mpe2"` | `"mpe2"` or `"original"`: mpe2's rewards or those of the original MPE code (Lowe et al., 2017), see Rewards |

Bad values raise `adv_wrappers.errors.InvalidArgumentError`.

## Differences from the paper

The configuration is the paper's: mpe2's `simple_adversary_v3` with `N=2` has the paper's 2
cooperating agents, 1 adversary and 2 landmarks, as the original MPE code (Lowe et al., 2017)
that the paper ran.

- Rewards. The cooperating agents' reward is the same in mpe2 and in the original code (each
  computes the same value; the world is not collaborative, so nothing is summed). The
  adversary's differs: the original code pays it the *squared* distance `-‖p_adv - g‖²`, mpe2
  (the default, `rewards="mpe2"`) the distance `-‖p_adv - g‖`. `rewards="original"` gives the
  original code's rewards exactly.
- Reported numbers. MADDPG's training script (Lowe et al., 2017), which the paper says it
  follows, records an episode's reward as the sum of all agents' rewards (here the adversary's
  plus `N` times the cooperating agents'), not one agent's return.
- Dynamics (both reward scales). mpe2 moves each body with the velocity it had before the step
  and then applies the step's forces; the original code first updates the velocity and then
  moves with the new one. An action therefore moves its body one step later than in the
  original code (the first step after a reset leaves every position unchanged).
- Action labels. Discrete actions follow the original code's discrete-input mode (1 left,
  2 right, 3 down, 4 up); with `continuous_actions=True`, entries 1/2 and 3/4 are swapped with
  respect to the original code's vector input (entry 1 pushes left here, right there), a
  relabelling that changes nothing a policy can learn.
- The "adversary" here is a player of the game, not an attacker of `adv_wrappers`; a threat
  model can still corrupt any player.

## Version History

- v0: initial release; later the `rewards` argument added (default `"mpe2"`: the rewards
  are unchanged).
"""

from __future__ import annotations

import numpy as np
from gymnasium.utils import EzPickle
from mpe2.simple_adversary import simple_adversary

from adv_envs._checks import check_bool, check_int, check_render_mode
from adv_envs._mpe import PygameLocked, check_rewards, entry_points

NAME = "physical_deception_v0"


class raw_env(PygameLocked, simple_adversary.raw_env):
    """mpe2's ``simple_adversary`` with validated arguments, this env's name and, with
    ``rewards="original"`` (kept as ``reward_scale``), the original MPE rewards."""

    def __init__(
        self,
        N: int = 2,
        max_cycles: int = 25,
        continuous_actions: bool = False,
        render_mode: str | None = None,
        rewards: str = "mpe2",
    ) -> None:
        kwargs = {
            "N": check_int(N, "N"),
            "max_cycles": check_int(max_cycles, "max_cycles"),
            "continuous_actions": check_bool(continuous_actions, "continuous_actions"),
            "render_mode": check_render_mode(render_mode),
        }
        self.reward_scale = check_rewards(rewards)
        super().__init__(**kwargs)
        # so that unpickling calls this class's __init__
        EzPickle.__init__(self, **kwargs, rewards=self.reward_scale)
        self.metadata = {**self.metadata, "name": NAME}  # mpe2 writes into the shared class dict

    def _execute_world_step(self) -> None:
        super()._execute_world_step()
        if self.reward_scale == "original":
            # Lowe et al. (2017): the adversary pays its squared distance to the target; the
            # cooperating agents' rewards are mpe2's, which equal the original code's
            for agent in self.world.agents:
                if agent.adversary:
                    offset = agent.state.p_pos - agent.goal_a.state.p_pos
                    self.rewards[agent.name] = -float(np.sum(np.square(offset)))


env, parallel_env = entry_points(raw_env)
