"""Keep-away: an agent wants to reach its target landmark, an adversary pushes it away.

MPE's Push scenario (Lowe et al., 2017) as used by He et al. (TMLR 2023), "Robust Multi-Agent RL with
State Uncertainty", App. E.1.3: 1 agent, 1 adversary, 25-step episodes (its Table 3).
The agent knows which landmark is the target; the adversary does not, and must keep the agent
away from it by pushing it (the two bodies collide) or by sitting on the landmark. This module
is a thin wrapper around mpe2's `simple_push_v3` that fixes the paper's configuration and
validates its arguments; the dynamics, observations and rewards are mpe2's, whose rewards here
are those of the original MPE code that the paper ran (`rewards="original"` changes nothing).

| | |
|---|---|
| Agents | `adversary_0`, `agent_0` (in this order) |
| Actions | `Discrete(5)`: 0 no-op, 1 left, 2 right, 3 down, 4 up; with `continuous_actions=True` `Box(0, 1, (5,), float32)` |
| Observations | `agent_0`: `Box(-inf, inf, (19,), float32)` = `[v (2), g - p (2), own colour (3, encodes the target), l_k - p for both landmarks (4), both landmark colours (6), p_adv - p (2)]`; `adversary_0`: `Box(-inf, inf, (8,), float32)` = `[v (2), l_k - p for both landmarks (4), p_agent - p (2)]`, with no hint of which landmark is the target |
| State | `Box(-inf, inf, (27,), float32)`: mpe2's state, the two observations concatenated (adversary first) |
| Rewards | `agent_0`: `-‖p_agent - g‖`; `adversary_0`: `‖p_agent - g‖ - ‖p_adv - g‖` (`g`: the target landmark); the same for `rewards="mpe2"` and `rewards="original"` |
| Episode | `max_cycles` steps (default 25), then both agents are truncated |
| Kind | general-sum (competitive: the adversary gains what the agent loses, plus its own distance term) |

Both bodies are discs of radius 0.05 that push each other apart when they overlap (MPE's soft
contact force); landmarks do not collide. At reset the target is one of the two landmarks,
drawn uniformly.

## Arguments

| argument | default | allowed values |
|---|---|---|
| `max_cycles` | `25` | int >= 1: episode length in steps |
| `continuous_actions` | `False` | bool |
| `render_mode` | `None` | `None`, `"rgb_array"` or `"human"` |
| `rewards` | `"mpe2"` | `"mpe2"` or `"original"`: mpe2's rewards or those of the original MPE code (Lowe et al., 2017); they are the same in this scenario, the argument exists for symmetry with the other MPE envs |

Bad values raise `adv_wrappers.errors.InvalidArgumentError`.

## Differences from the paper

- Landmarks. The paper (like MPE's README) speaks of 1 landmark; the MPE code it ran
  (Lowe et al., 2017), and mpe2, place 2 landmarks of which one, drawn at random each episode,
  is the target: the agent knows which, the adversary has to infer it. This env keeps the
  code's 2 landmarks.
- Rewards. mpe2's `simple_push` kept the original reward functions (unsquared distances, no
  sharing: the world is not collaborative), so both values of `rewards` give the same
  rewards. The paper's Table 4 gives a "mean episode reward"; MADDPG's training script
  (Lowe et al., 2017), which the paper says it follows, records an episode's reward as the
  sum of all agents' rewards, here `-Σ_t ‖p_adv - g‖`. Compare that table with the sum of
  both players' episode returns.
- Dynamics. mpe2 moves each body with the velocity it had before the step and then applies the
  step's forces; the original code first updates the velocity and then moves with the new
  one. An action therefore moves its body one step later than in the original code (the first
  step after a reset leaves every position unchanged).
- Action labels. Discrete actions follow the original code's discrete-input mode (1 left,
  2 right, 3 down, 4 up); with `continuous_actions=True`, entries 1/2 and 3/4 are swapped with
  respect to the original code's vector input (entry 1 pushes left here, right there), a
  relabelling that changes nothing a policy can learn.
- The "adversary" here is a player of the game, not an attacker of `adv_wrappers`; a threat
  model can still corrupt either player.

## Version History

- v0: initial release; later the `rewards` argument added (both values give the rewards of
  before).
"""

from __future__ import annotations

from gymnasium.utils import EzPickle
from mpe2.simple_push import simple_push

from adv_envs._checks import check_bool, check_int, check_render_mode
from adv_envs._mpe import PygameLocked, check_rewards, entry_points

NAME = "keep_away_v0"


class raw_env(PygameLocked, simple_push.raw_env):
    """mpe2's ``simple_push`` with validated arguments and this env's name.

    ``rewards`` is kept as ``reward_scale``; mpe2's rewards are the original MPE code's here,
    so it changes nothing.
    """

    def __init__(
        self,
        max_cycles: int = 25,
        continuous_actions: bool = False,
        render_mode: str | None = None,
        rewards: str = "mpe2",
    ) -> None:
        kwargs = {
            "max_cycles": check_int(max_cycles, "max_cycles"),
            "continuous_actions": check_bool(continuous_actions, "continuous_actions"),
            "render_mode": check_render_mode(render_mode),
        }
        self.reward_scale = check_rewards(rewards)
        super().__init__(**kwargs)
        # so that unpickling calls this class's __init__
        EzPickle.__init__(self, **kwargs, rewards=self.reward_scale)
        self.metadata = {**self.metadata, "name": NAME}  # mpe2 writes into the shared class dict


env, parallel_env = entry_points(raw_env)
