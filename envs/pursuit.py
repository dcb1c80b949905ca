"""Pursuit: eight pursuers on a grid must surround and capture thirty randomly moving evaders.

SISL's Pursuit (Gupta et al., 2017) in the configuration of Nika et al. (TMLR 2024), "Defending
Against Unknown Corrupted Agents", App. C.3: 8 pursuers, 30 evaders, a 7x7 view, a reward
of 5 for every capture and an urgency reward of -0.1 per step. An evader is captured when it
is enclosed on all four sides by pursuers or walls. This module is a thin wrapper around
PettingZoo's `pursuit_v5` that fixes the paper's configuration and validates its arguments;
the dynamics, observations, state and rewards are PettingZoo's.

| | |
|---|---|
| Agents | `pursuer_0` ... `pursuer_{n_pursuers-1}` (default 8) |
| Actions | `Discrete(5)`: 0 x-1, 1 x+1, 2 y+1, 3 y-1, 4 stay (a move into a wall or off the map is a stay) |
| Observations | `Box(0, 30, (7, 7, 3), float32)` (`obs_range` cells, high `max(n_pursuers, n_evaders)`): the `obs[y, x, c]` window centred on the pursuer; channel 0 is 1 on walls and outside the map, channel 1 counts pursuers, channel 2 counts evaders per cell |
| State | `Box(0, 30, (16, 16, 3), float32)` (`(y_size, x_size, 3)`): PettingZoo's `state()`, the same three channels over the whole map |
| Rewards | shared (see below): per step `urgency_reward` (-0.1), plus `catch_reward` (5) for each pursuer taking part in a capture, plus a small `tag_reward` (0.01) for touching evaders, averaged over the pursuers |
| Episode | ends (terminated) when every evader is caught, else truncated after `max_cycles` steps (default 500) |
| Kind | cooperative (one shared reward with the default `shared_reward=True`) |

The map is 16x16 with a rectangular building (walls) in the middle. Pursuers and evaders start
at random free cells, no two pursuers (and no two evaders) on the same or neighbouring cells;
each evader takes a uniformly random action after the pursuers have moved, and any number of
agents may then share a cell.

**Reward accounting** (PettingZoo's, parallel API). In one step the pursuers move one after the
other. After each move, every pursuer `i` has a tag term `t_i = tag_reward * (evaders on the 4
cells next to it) / n` (at the map's edge the missing neighbour is replaced by the pursuer's own
cell). After the last move the captured evaders are removed and each pursuer
`i` gets `catch_reward * c_i + urgency_reward`, where `c_i` is 1 if it is next to an evader
captured this step, else 0 (a pursuer that encloses two evaders at once still gets one
`catch_reward`). With `shared_reward=True` every pursuer is paid the mean over pursuers, so
a step pays every pursuer

    urgency_reward + catch_reward * (number of capturing pursuers) / n + Σ_moves mean_i t_i.

Example: 4 of the 8 pursuers enclose an evader: each of the 8 receives `5 * 4 / 8 = 2.5`, plus
`-0.1`, plus the tag terms. With `shared_reward=False` each pursuer keeps its own terms instead.

## Arguments

| argument | default | allowed values |
|---|---|---|
| `n_pursuers` | `8` | int >= 1 |
| `n_evaders` | `30` | int >= 1 |
| `obs_range` | `7` | odd int >= 1: side of the square view |
| `catch_reward` | `5.0` | finite float: paid to each pursuer taking part in a capture |
| `urgency_reward` | `-0.1` | finite float: paid every step |
| `tag_reward` | `0.01` | finite float: paid per evader next to a pursuer (see above) |
| `surround` | `True` | bool: capture by enclosing (`True`) or by `n_catch` pursuers on the evader's cell |
| `n_catch` | `2` | int >= 1: pursuers needed on the cell when `surround=False` (unused otherwise) |
| `shared_reward` | `True` | bool: every pursuer gets the mean reward |
| `freeze_evaders` | `False` | bool: evaders do not move |
| `x_size`, `y_size` | `16`, `16` | int >= 1: map size; the map must have more than `5 * (max(n_pursuers, n_evaders) - 1)` free cells, so that the random start positions always exist |
| `max_cycles` | `500` | int >= 1: episode length in steps |
| `render_mode` | `None` | `None`, `"rgb_array"` (a `(480, 480, 3)` uint8 frame) or `"human"` |

Bad values raise `adv_wrappers.errors.InvalidArgumentError`.

## Differences from the paper

The paper gives the numbers above (8 pursuers, 30 evaders, 7x7 view, capture 5, urgency
-0.1) and the surround rule, all PettingZoo's defaults; it says nothing about the map size,
episode length, the small tag reward or how the capture reward is shared, so PettingZoo's
defaults are kept (16x16, 500 steps, `tag_reward=0.01`, shared reward). PettingZoo's
`constraint_window` (spawn in a sub-window of the map) is fixed at its default 1.0, the whole
map: smaller windows can make PettingZoo's start-position search loop forever. "Cooperative" and
"a common reward function" in the paper (Sec. 6) match `shared_reward=True`.

## Version History

- v0: initial release.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.utils import EzPickle
from pettingzoo.sisl.pursuit import pursuit as _pursuit
from pettingzoo.sisl.pursuit.utils.two_d_maps import rectangle_map
from pettingzoo.utils import aec_to_parallel, wrappers

from adv_envs._checks import check_bool, check_float, check_int, check_render_mode
from adv_envs._errors import InvalidArgumentError

NAME = "pursuit_v0"
RENDER_MODES = (None, "rgb_array", "human")


class raw_env(_pursuit.raw_env):
    """PettingZoo's ``pursuit_v5`` raw env with the paper's defaults and validated arguments."""

    def __init__(
        self,
        n_pursuers: int = 8,
        n_evaders: int = 30,
        obs_range: int = 7,
        catch_reward: float = 5.0,
        urgency_reward: float = -0.1,
        tag_reward: float = 0.01,
        surround: bool = True,
        n_catch: int = 2,
        shared_reward: bool = True,
        freeze_evaders: bool = False,
        x_size: int = 16,
        y_size: int = 16,
        max_cycles: int = 500,
        render_mode: str | None = None,
    ) -> None:
        obs_range = check_int(obs_range, "obs_range", 1)
        if obs_range % 2 == 0:
            raise InvalidArgumentError(f"obs_range must be an odd int >= 1, got {obs_range}")
        check_render_mode(render_mode, RENDER_MODES)
        kwargs = {
            "n_pursuers": check_int(n_pursuers, "n_pursuers", 1),
            "n_evaders": check_int(n_evaders, "n_evaders", 1),
            "obs_range": obs_range,
            "catch_reward": check_float(catch_reward, "catch_reward"),
            "urgency_reward": check_float(urgency_reward, "urgency_reward"),
            "tag_reward": check_float(tag_reward, "tag_reward"),
            "surround": check_bool(surround, "surround"),
            "n_catch": check_int(n_catch, "n_catch", 1),
            "shared_reward": check_bool(shared_reward, "shared_reward"),
            "freeze_evaders": check_bool(freeze_evaders, "freeze_evaders"),
            "x_size": check_int(x_size, "x_size", 1),
            "y_size": check_int(y_size, "y_size", 1),
            "max_cycles": check_int(max_cycles, "max_cycles", 1),
            "render_mode": render_mode,
        }
        # PettingZoo places the agents of a kind one by one on free cells not next to an earlier
        # one (each blocks at most 5 cells) and retries forever: make sure a cell always remains
        free = int(np.sum(rectangle_map(kwargs["x_size"], kwargs["y_size"]) != -1))
        most = max(kwargs["n_pursuers"], kwargs["n_evaders"])
        if free <= 5 * (most - 1):
            raise InvalidArgumentError(
                f"x_size={x_size}, y_size={y_size} leave {free} free cells, too few to place "
                f"{most} agents of a kind; allowed: more than 5 * ({most} - 1) = {5 * (most - 1)}"
            )
        super().__init__(**kwargs)
        EzPickle.__init__(self, **kwargs)
        self.metadata = {**self.metadata, "name": NAME}


def env(**kwargs: Any):
    """The AEC env: ``OrderEnforcingWrapper`` around :class:`raw_env` (actions bounds-checked
    as in PettingZoo's ``pursuit_v5.env``)."""
    return wrappers.OrderEnforcingWrapper(wrappers.AssertOutOfBoundsWrapper(raw_env(**kwargs)))


def parallel_env(**kwargs: Any):
    """The parallel env; keyword arguments as in the module docs."""
    return aec_to_parallel(env(**kwargs))
