"""Exchange Target: two agents must each reach a landmark that only the other agent knows.

MPE's Reference scenario (Lowe et al., 2017) as used by He et al. (TMLR 2023), "Robust Multi-Agent
RL with State Uncertainty", App. E.1.2: 2 agents, 3 landmarks, 25-step episodes (its
Table 3). Each agent's target landmark is known only to the other agent, so both have to speak
(10 symbols) and listen while they move; both are "generous": an agent is paid more for the
other agent's progress than for its own. This module is a thin wrapper around mpe2's
`simple_reference_v3` that fixes the paper's configuration and validates its arguments; the
dynamics, observations and rewards are mpe2's.

| | |
|---|---|
| Agents | `agent_0`, `agent_1` |
| Actions | `Discrete(50)`: action `a` moves by `a % 5` (0 no-op, 1 left, 2 right, 3 down, 4 up) and says symbol `a // 5` (0-9); with `continuous_actions=True` `Box(0, 1, (15,), float32)`: 5 movement entries then 10 communication entries |
| Observations | `Box(-inf, inf, (21,), float32)`: `[v_i (2), l_k - p_i for the 3 landmarks (6), colour of the landmark the *other* agent must reach (3), the other agent's last message (10)]` |
| State | `Box(-inf, inf, (42,), float32)`: mpe2's state, both observations concatenated |
| Rewards | agent `i`: `(1 - local_ratio) * (L_0 + L_1) / 2 + local_ratio * L_i` with `L_i = -‖p_j - g_i‖`, where `j` is the other agent and `g_i` the landmark that agent `i` knows (agent `j`'s target). With the default `local_ratio = 0.5`: `r_i = 0.75 L_i + 0.25 L_j`, i.e. 0.75 for the other's progress, 0.25 for one's own |
| Episode | `max_cycles` steps (default 25), then both agents are truncated |
| Kind | cooperative |

At reset each agent's known landmark `g_i` is drawn uniformly from the 3 landmarks,
independently (both may point to the same one); the landmarks are red, green and blue, and the
agent that must reach `g_i` is drawn in `g_i`'s colour.

## Arguments

| argument | default | allowed values |
|---|---|---|
| `local_ratio` | `0.5` | float in `[0, 1]`: weight of the agent's own term `L_i` (mpe2's default) |
| `max_cycles` | `25` | int >= 1: episode length in steps |
| `continuous_actions` | `False` | bool |
| `render_mode` | `None` | `None`, `"rgb_array"` or `"human"` |

Bad values raise `adv_wrappers.errors.InvalidArgumentError`.

## Differences from the paper

The paper describes the task only in words and ran the original MPE code, where each agent's
reward is the negative *squared* distance `-‖p_j - g_i‖²` with no mixing between agents. mpe2
(and this env) uses the unsquared distance mixed with the agents' mean by `local_ratio`, which
is what makes the agents "generous" as the paper describes. Episode returns are therefore not
comparable with the paper's Table 4.

## Version History

- v0: initial release.
"""

from __future__ import annotations

from gymnasium.utils import EzPickle
from mpe2.simple_reference import simple_reference

from adv_envs._checks import check_bool, check_float, check_int, check_render_mode
from adv_envs._mpe import entry_points

NAME = "exchange_target_v0"


class raw_env(simple_reference.raw_env):
    """mpe2's ``simple_reference`` with validated arguments and this env's name."""

    def __init__(
        self,
        local_ratio: float = 0.5,
        max_cycles: int = 25,
        continuous_actions: bool = False,
        render_mode: str | None = None,
    ) -> None:
        kwargs = {
            "local_ratio": check_float(local_ratio, "local_ratio", 0.0, 1.0),
            "max_cycles": check_int(max_cycles, "max_cycles"),
            "continuous_actions": check_bool(continuous_actions, "continuous_actions"),
            "render_mode": check_render_mode(render_mode),
        }
        super().__init__(**kwargs)
        EzPickle.__init__(self, **kwargs)  # so that unpickling calls this class's __init__
        self.metadata = {**self.metadata, "name": NAME}  # mpe2 writes into the shared class dict


env, parallel_env = entry_points(raw_env)
