"""Cooperative Navigation: N agents must cover N landmarks together without colliding.

MPE's Spread (Lowe et al., 2017) as used by He et al. (TMLR 2023), "Robust Multi-Agent RL with
State Uncertainty", App. E.1.1 (3 agents, 3 landmarks) and App. E.6 (the same task with
6 agents, `N=6`), with the 25-step episodes of its Table 3. This module is a thin wrapper
around mpe2's `simple_spread_v3` that fixes the paper's configuration and validates its
arguments; the dynamics, observations and rewards are mpe2's.

| | |
|---|---|
| Agents | `agent_0` ... `agent_{N-1}` (default `N=3`; the paper's App. E.6: `N=6`) |
| Actions | `Discrete(5)`: 0 no-op, 1 left, 2 right, 3 down, 4 up; with `continuous_actions=True` `Box(0, 1, (5,), float32)` |
| Observations | `Box(-inf, inf, (6N,), float32)`: `[v_i (2), p_i (2), l_k - p_i for every landmark k (2N), p_j - p_i for every other agent j (2(N-1)), the other agents' communication (2(N-1), always 0: agents are silent)]` |
| State | `Box(-inf, inf, (6N^2,), float32)`: mpe2's state, the concatenated observations of all agents in agent order |
| Rewards | agent `i`: `(1 - local_ratio) * G + local_ratio * L_i` with the shared `G = -Σ_k min_j ‖p_j - l_k‖` (each landmark's distance to its closest agent) and the local `L_i = -#{j ≠ i : ‖p_i - p_j‖ < 0.3}` (collisions) |
| Episode | `max_cycles` steps (default 25), then every agent is truncated |
| Kind | cooperative: all agents share `G` and want to cover every landmark |

## Arguments

| argument | default | allowed values |
|---|---|---|
| `N` | `3` | int >= 1: number of agents and landmarks (3 in E.1.1, 6 in E.6) |
| `local_ratio` | `0.5` | float in `[0, 1]`: weight of the local collision term (mpe2's default) |
| `max_cycles` | `25` | int >= 1: episode length in steps |
| `continuous_actions` | `False` | bool |
| `render_mode` | `None` | `None`, `"rgb_array"` or `"human"` |

Bad values raise `adv_wrappers.errors.InvalidArgumentError`.

## Differences from the paper

The paper describes the task only in words ("agents want to occupy all the landmarks ... they
will be penalized when collisions happen") and ran the original MPE code; mpe2's rewards are
scaled differently from it. In the original code every agent receives the *sum* over agents of
`-Σ_k min_j ‖p_j - l_k‖ - (collisions, counting the agent itself)`; mpe2 (and this env) mixes
the shared distance term and the agent's own collision count with `local_ratio`. Episode
returns are therefore not comparable with the numbers of the paper's Tables 4-5.

## Version History

- v0: initial release.
"""

from __future__ import annotations

from gymnasium.utils import EzPickle
from mpe2.simple_spread import simple_spread

from adv_envs._checks import check_bool, check_float, check_int, check_render_mode
from adv_envs._mpe import entry_points

NAME = "cooperative_navigation_v0"


class raw_env(simple_spread.raw_env):
    """mpe2's ``simple_spread`` with validated arguments and this env's name."""

    def __init__(
        self,
        N: int = 3,
        local_ratio: float = 0.5,
        max_cycles: int = 25,
        continuous_actions: bool = False,
        render_mode: str | None = None,
    ) -> None:
        kwargs = {
            "N": check_int(N, "N"),
            "local_ratio": check_float(local_ratio, "local_ratio", 0.0, 1.0),
            "max_cycles": check_int(max_cycles, "max_cycles"),
            "continuous_actions": check_bool(continuous_actions, "continuous_actions"),
            "render_mode": check_render_mode(render_mode),
        }
        super().__init__(**kwargs)
        EzPickle.__init__(self, **kwargs)  # so that unpickling calls this class's __init__
        self.metadata = {**self.metadata, "name": NAME}  # mpe2 writes into the shared class dict


env, parallel_env = entry_points(raw_env)
