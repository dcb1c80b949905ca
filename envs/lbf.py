"""Level-Based Foraging 12x12, 4 agents, 4 food, forced cooperation, collisions off.

The Level-Based Foraging task (Papoudakis et al., 2020) as configured by Li et al.
(ICLR 2024), "Byzantine Robust Cooperative MARL as a Bayesian Game", Sec. 4 and App. C.1: agents
with levels walk on a grid and load food; a food is loaded when the agents adjacent to it that
choose LOAD have a total level at least the food's level. The paper uses the *cooperative*
(forced-cooperation) map `12x12-4p-4f` and turns agent collisions **off**, so that an adversarial
agent cannot win by physically blocking its allies. The game rules, spawning, observations and
reward values are those of the `lbforaging` package (2.0); this module adds the collision-off
movement, the parallel PettingZoo API, the team reward, a global state and a headless renderer.

| | |
|---|---|
| Agents | `agent_0` ... `agent_{n_agents-1}` (default 4), levels drawn uniformly from 1..`max_agent_level` at reset |
| Actions | `Discrete(6)`: 0 none, 1 north (row - 1), 2 south (row + 1), 3 west (col - 1), 4 east (col + 1), 5 load. An action that is not legal (moving off the grid or onto food, loading with no adjacent food) is executed as 0 (lbforaging's rule); `infos[agent]["action_mask"]` (`int8`, 6 entries) marks the legal ones |
| Observations | lbforaging's vector observation, `Box(float32, (3 * n_food + 3 * n_agents,))`: for each food seen, in row-major order, `(row, col, level)`, then `(row, col, level)` of every agent seen, the observer first; unseen or eaten slots are `(-1, -1, 0)`. Coordinates are in the observer's `(2 sight + 1)`-square window clipped at the grid border, which for the default `sight = field_size` are the absolute grid coordinates |
| State | `Box(float32, (3 * n_agents + 3 * n_food,))`: `(row, col, level)` of every agent in `possible_agents` order, then `(row, col, level)` of every food left, in row-major order, padded with `(-1, -1, 0)` |
| Rewards | when a food of level `F` is loaded by a group `G` of adjacent loading agents, agent `i` in `G` earns `level_i * F / (sum_{j in G} level_j * F_total)`, with `F_total` the sum of the levels of all food spawned this episode (lbforaging's normalized reward), so all agents together earn 1.0 in an episode that clears the grid. With `shared_reward=True` (default) every agent is paid the team's sum of these terms (the cooperative setting of Li et al. (ICLR 2024)); with `False`, its own term |
| Episode | terminates when every food is loaded; truncated after `max_cycles` steps (default 50) |
| Kind | cooperative (`shared_reward=True`); general-sum with `shared_reward=False` |

## Rules

- **Spawning** (lbforaging): agents are placed on distinct random cells; food is placed
  away from the border and from each other (no two foods within a 3x3 block or two cells apart
  in a row or column). With `force_coop=True` every food has level equal to the sum of the three
  lowest agent levels (all agent levels if fewer than three agents); otherwise each food level
  is uniform in 1..that sum.
- **Movement with `collisions=False`** (default, as in the paper): every agent whose move is legal
  moves, whatever the others do; several agents may end up in, or pass through, the same cell.
  Food cells and the grid border still block movement.
- **Movement with `collisions=True`** (lbforaging's rule): agents that target the same cell
  all stay put, and an agent that does not move (none, load, or an illegal action) claims its
  own cell, so a move into it fails. Moves are resolved simultaneously and once, so two
  agents can swap cells, and an agent can still enter a cell whose occupant's move failed.
- **Loading**: each loading agent is adjacent (north, south, west, east) to at most one food
  (spawning guarantees it). The food is loaded if the summed level of the loading agents
  adjacent to it is at least the food's level; then it is removed and they are paid as above.
  A failed load pays nothing.

## Arguments

| argument | default | allowed values |
|---|---|---|
| `field_size` | `12` | int >= 5: the grid is `field_size` x `field_size` |
| `n_agents` | `4` | int >= 1 |
| `n_food` | `4` | int >= 1 with `13 * (n_food - 1) + n_agents <= 0.9 * (field_size - 2) ** 2`, so that spawning always finds room (`12x12` with 4 agents: up to 7); `3` gives the `12x12-4p-3f` map of the paper's Sec. 4 |
| `max_agent_level` | `3` | int >= 1: agent levels are uniform in `1..max_agent_level` |
| `sight` | `None` | `None` (= `field_size`, full observability) or an int in `1..field_size`: the half-width of each agent's observation window |
| `force_coop` | `True` | bool: every food needs the three lowest agent levels together (see Rules) |
| `collisions` | `False` | bool: `True` restores lbforaging's blocking movement |
| `shared_reward` | `True` | bool: every agent gets the team's summed reward (`False`: its own share) |
| `max_cycles` | `50` | int >= 1: episode length in steps |
| `render_mode` | `None` | `None`, `"rgb_array"` (a numpy drawing: 32 pixels per cell, food green with one white pip per level, agents coloured discs with one dark pip per level, agents sharing a cell drawn side by side) or `"human"` (lbforaging's pyglet window; needs a display) |

Any other value raises `adv_wrappers.errors.InvalidArgumentError` naming the argument.
`reset(options=...)` is accepted for API compatibility; no options are defined.

`set_layout(agents, food)` replaces the positions and levels after `reset()`, for scripted
scenarios and tests: `agents` maps every agent to `(row, col, level)` (levels in
`1..max_agent_level`, shared cells allowed), `food` maps cells to levels in
`1..min(3, n_agents) * max_agent_level` (at least one food, not on an agent; `F_total` becomes
the sum of the given levels). It returns the new observations.

## Example

Agents of levels 1 and 2 load a level-3 food together (two foods of level 3 on the grid, so
`F_total = 6`), each paid its share:

```python
>>> from adv_envs import lbf
>>> env = lbf.parallel_env(shared_reward=False)
>>> _ = env.reset(seed=0)
>>> agents = {"agent_0": (5, 4, 1), "agent_1": (4, 5, 2), "agent_2": (0, 0, 1), "agent_3": (11, 11, 1)}
>>> _ = env.set_layout(agents, food={(5, 5): 3, (9, 9): 3})
>>> env.step({"agent_0": 5, "agent_1": 5, "agent_2": 0, "agent_3": 0})[1]
{'agent_0': 0.16666666666666666, 'agent_1': 0.3333333333333333, 'agent_2': 0.0, 'agent_3': 0.0}

```

## Differences from the paper and lbforaging

- The paper names the map `12x12-4p-3f-c` in Sec. 4 and `12x12-4p-4f` in App. C.1 (the
  authors' released configuration uses 3 food); the default here is 4 food, `n_food=3` the
  other variant. Both are the forced-cooperation (`-c`) version.
- The paper does not state the agent levels, sight or episode length. The defaults follow
  the authors' released LBF code: levels 1..3, sight = grid size, 50 steps.
  (lbforaging 2.0's own registered IDs use levels 1..2. "max episode len 200" in the paper's
  Table 7 is the trainer's rollout length, which is 200 in every environment's table.)
- The paper's reward is the team reward of c-MARL; lbforaging pays each loader its share.
  `shared_reward` picks one; per-agent entries are always returned.
- Collisions off: the authors' code lets one agent per target cell move; here every agent with
  a legal move moves (see Rules), which is what "no physical interference" means.
- With `force_coop` and `max_agent_level >= 3` (the default), an agent whose level alone
  reaches the sum of the three lowest levels can load alone (levels 1, 1, 1, 3 give food of
  level 3; with four agents about 5% of resets): forced cooperation is lbforaging's level rule,
  not a guarantee. With `max_agent_level=2` and at least three agents no agent can.

## Version History

- v0: initial release.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium
import numpy as np
from lbforaging.foraging.environment import Action, ForagingEnv
from pettingzoo import ParallelEnv
from pettingzoo.utils import parallel_to_aec, wrappers

from adv_envs._checks import check_bool, check_int, check_render_mode
from adv_envs._errors import InvalidActionError, InvalidArgumentError

RENDER_MODES = (None, "rgb_array", "human")
_MOVES = {
    Action.NORTH: (-1, 0),
    Action.SOUTH: (1, 0),
    Action.WEST: (0, -1),
    Action.EAST: (0, 1),
}
_CELL = 32  # pixels per grid cell in rgb_array frames
_AGENT_COLOURS = np.array(
    [
        [31, 119, 180],
        [255, 127, 14],
        [214, 39, 40],
        [148, 103, 189],
        [140, 86, 75],
        [227, 119, 194],
        [127, 127, 127],
        [23, 190, 207],
        [188, 189, 34],
    ],
    np.uint8,
)


class LBFParallelEnv(ParallelEnv):
    """Level-Based Foraging (Li et al. (ICLR 2024)'s configuration) as a PettingZoo parallel env.

    The game itself is an ``lbforaging.ForagingEnv`` in :attr:`game`; see the module
    docstring for the rules, spaces and arguments.
    """

    metadata = {
        "name": "lbf_v0",
        "render_modes": [m for m in RENDER_MODES if m is not None],
        "is_parallelizable": True,
        "render_fps": 5,
    }

    def __init__(
        self,
        field_size: int = 12,
        n_agents: int = 4,
        n_food: int = 4,
        max_agent_level: int = 3,
        sight: int | None = None,
        force_coop: bool = True,
        collisions: bool = False,
        shared_reward: bool = True,
        max_cycles: int = 50,
        render_mode: str | None = None,
    ):
        self.field_size = check_int(field_size, "field_size", 5)
        self.n_agents = check_int(n_agents, "n_agents", 1)
        self.n_food = check_int(n_food, "n_food", 1)
        if 13 * (self.n_food - 1) + self.n_agents > 0.9 * (self.field_size - 2) ** 2:
            raise InvalidArgumentError(
                f"n_food={n_food} with n_agents={n_agents} does not fit a {field_size}x{field_size} "
                f"grid: need 13 * (n_food - 1) + n_agents <= 0.9 * (field_size - 2) ** 2"
            )
        self.max_agent_level = check_int(max_agent_level, "max_agent_level", 1)
        if sight is None:
            sight = self.field_size
        self.sight = check_int(sight, "sight", 1, self.field_size)
        self.force_coop = check_bool(force_coop, "force_coop")
        self.collisions = check_bool(collisions, "collisions")
        self.shared_reward = check_bool(shared_reward, "shared_reward")
        self.max_cycles = check_int(max_cycles, "max_cycles", 1)
        check_render_mode(render_mode, RENDER_MODES)
        self.render_mode = render_mode

        self.game = ForagingEnv(
            players=self.n_agents,
            min_player_level=1,
            max_player_level=self.max_agent_level,
            min_food_level=1,
            max_food_level=None,  # lbforaging: the sum of the three lowest agent levels
            field_size=(self.field_size, self.field_size),
            max_num_food=self.n_food,
            sight=self.sight,
            max_episode_steps=self.max_cycles,
            force_coop=self.force_coop,
            normalize_reward=True,
            grid_observation=False,
            observe_agent_levels=True,
            penalty=0.0,
            render_mode="human" if render_mode == "human" else None,
        )
        self.possible_agents = [f"agent_{i}" for i in range(self.n_agents)]
        self.agents: list[str] = []
        self._obs_space = self.game.observation_space[0]
        max_food_level = float(self._obs_space.high[2])
        last = self.field_size - 1
        low = [0, 0, 1] * self.n_agents + [-1, -1, 0] * self.n_food
        high = [last, last, self.max_agent_level] * self.n_agents + [
            last,
            last,
            max_food_level,
        ] * self.n_food
        self.state_space = gymnasium.spaces.Box(
            np.array(low, np.float32), np.array(high, np.float32), dtype=np.float32
        )
        self.t = 0

    @functools.cache  # noqa: B019 - spaces must be the same object per agent
    def observation_space(self, agent: str) -> gymnasium.spaces.Space:
        return self._obs_space

    @functools.cache  # noqa: B019
    def action_space(self, agent: str) -> gymnasium.spaces.Space:
        return gymnasium.spaces.Discrete(len(Action))

    # -- game state -------------------------------------------------------------------------

    def state(self) -> np.ndarray:
        game = self.game
        values: list[float] = []
        for player in game.players:
            values += [player.position[0], player.position[1], player.level]
        rows, cols = np.nonzero(game.field)
        for r, c in zip(rows, cols, strict=True):
            values += [r, c, game.field[r, c]]
        values += [-1, -1, 0] * (self.n_food - len(rows))
        return np.array(values, np.float32)

    def _action_masks(self) -> dict[str, np.ndarray]:
        masks = {}
        for agent, player in zip(self.possible_agents, self.game.players, strict=True):
            mask = np.zeros(len(Action), np.int8)
            for action in self.game._valid_actions[player]:
                mask[action.value] = 1
            masks[agent] = mask
        return masks

    def _observations(self) -> dict[str, np.ndarray]:
        obs = self.game._make_gym_obs()
        return {a: obs[i] for i, a in enumerate(self.possible_agents) if a in self.agents}

    def set_layout(
        self,
        agents: dict[str, tuple[int, int, int]],
        food: dict[tuple[int, int], int],
    ) -> dict[str, np.ndarray]:
        """Replace agent positions/levels and the food after ``reset()``; return the new obs.

        Args:
            agents: every agent of ``possible_agents`` -> ``(row, col, level)``, level in
                ``1..max_agent_level``; agents may share cells.
            food: ``(row, col)`` -> level in 1..the observation space's food-level bound
                (``min(3, n_agents) * max_agent_level``), at least one, on cells no agent occupies. The
                episode's total food level (the reward's normaliser) becomes their sum.

        Raises:
            InvalidArgumentError: before ``reset()``, for a missing or unknown agent, a cell
                off the grid, a level out of range, no food, or food on an agent's cell; the
                layout is then left unchanged.
        """
        if not self.agents:
            raise InvalidArgumentError("set_layout needs a running episode: call reset() first")
        if set(agents) != set(self.possible_agents):
            raise InvalidArgumentError(
                f"agents must map every agent of {self.possible_agents} to (row, col, level), "
                f"got {sorted(agents)}"
            )
        if not food:
            raise InvalidArgumentError("food must hold at least one (row, col) -> level entry")

        def cell(name: str, value: Any) -> tuple[int, int]:
            if not isinstance(value, (tuple, list)) or len(value) != 2:
                raise InvalidArgumentError(f"{name} must be a (row, col) pair, got {value!r}")
            for v in value:
                check_int(v, name, 0, self.field_size - 1)
            return int(value[0]), int(value[1])

        max_food_level = int(self._obs_space.high[2])
        field = np.zeros_like(self.game.field)
        for position, level in food.items():
            row, col = cell(f"food cell {position!r}", position)
            field[row, col] = check_int(level, f"food level at {position!r}", 1, max_food_level)
        layout = []
        for agent in self.possible_agents:
            spec = agents[agent]
            if not isinstance(spec, (tuple, list)) or len(spec) != 3:
                raise InvalidArgumentError(f"{agent} must map to (row, col, level), got {spec!r}")
            row, col = cell(f"position of {agent}", spec[:2])
            if field[row, col]:
                raise InvalidArgumentError(f"{agent} is placed on food at {(row, col)}")
            level = check_int(spec[2], f"level of {agent}", 1, self.max_agent_level)
            layout.append(((row, col), level))
        for player, (position, level) in zip(self.game.players, layout, strict=True):
            player.position, player.level = position, level
        self.game.field = field
        self.game._food_spawned = field.sum()
        self.game._gen_valid_moves()
        return self._observations()

    # -- PettingZoo API ---------------------------------------------------------------------

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        self.game.reset(seed=seed)
        spawned = int(np.count_nonzero(self.game.field))
        if spawned != self.n_food:  # unreachable within the n_food bound checked in __init__
            raise RuntimeError(f"lbforaging placed {spawned} of {self.n_food} food; reset again")
        self.agents = list(self.possible_agents)
        self.t = 0
        masks = self._action_masks()
        return self._observations(), {a: {"action_mask": masks[a]} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        game = self.game
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise KeyError(f"no action for {missing}; every agent in env.agents must act")
        chosen = []
        for agent in self.possible_agents:
            action = actions[agent]
            if not self.action_space(agent).contains(action):
                raise InvalidActionError(
                    f"action of {agent} must be an int in 0..{len(Action) - 1}, got {action!r}"
                )
            chosen.append(Action(int(action)))
        if not self.collisions:
            # Move every agent with a legal move first, then let lbforaging process the step
            # with those moves replaced by NONE: staying agents never block each other in
            # lbforaging, and loading only looks at positions after movement.
            for i, (player, action) in enumerate(zip(game.players, chosen, strict=True)):
                if action in _MOVES and action in game._valid_actions[player]:
                    d_row, d_col = _MOVES[action]
                    player.position = (player.position[0] + d_row, player.position[1] + d_col)
                    chosen[i] = Action.NONE
        new_obs, rewards, _, _, _ = game.step([a.value for a in chosen])
        self.t += 1

        if self.shared_reward:
            team = float(sum(rewards))
            reward = {a: team for a in self.agents}
        else:
            reward = {a: float(rewards[i]) for i, a in enumerate(self.possible_agents)}
        cleared = bool(game.field.sum() == 0)
        terminations = {a: cleared for a in self.agents}
        truncations = {a: self.t >= self.max_cycles for a in self.agents}
        obs = {a: new_obs[i] for i, a in enumerate(self.possible_agents)}
        masks = self._action_masks()
        infos = {a: {"action_mask": masks[a]} for a in self.agents}
        if cleared or self.t >= self.max_cycles:
            self.agents = []
        return obs, reward, terminations, truncations, infos

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gymnasium.logger.warn("render() called with render_mode=None; nothing to draw")
            return None
        if self.render_mode == "human":
            return self.game.render()
        return self._draw()

    def _draw(self) -> np.ndarray:
        game, n = self.game, self.field_size
        frame = np.full((n * _CELL + 1, n * _CELL + 1, 3), 245, np.uint8)
        frame[::_CELL, :] = 200  # grid lines
        frame[:, ::_CELL] = 200

        def pips(top: int, left: int, size: int, count: int, colour: int) -> None:
            """Draw ``count`` 2x2 dots (at most 9), three per row, centred in the square."""
            count = min(count, 9)
            step = max(size // 4, 3)
            first_row = top + size // 2 - step * ((count - 1) // 3) // 2 - 1
            for k in range(count):
                r = first_row + step * (k // 3)
                c = left + size // 2 + step * (k % 3 - 1) - 1
                frame[r : r + 2, c : c + 2] = colour

        for r, c in zip(*np.nonzero(game.field), strict=True):
            top, left = r * _CELL + 3, c * _CELL + 3
            frame[top : top + _CELL - 5, left : left + _CELL - 5] = (44, 160, 44)
            pips(top, left, _CELL - 5, int(game.field[r, c]), 255)

        cells: dict[tuple[int, int], list[int]] = {}
        for i, player in enumerate(game.players):
            cells.setdefault(tuple(player.position), []).append(i)
        for (r, c), group in cells.items():
            per_row = int(np.ceil(np.sqrt(len(group))))
            size = (_CELL - 2) // per_row
            yy, xx = np.mgrid[0:size, 0:size]
            disc = (yy - (size - 1) / 2) ** 2 + (xx - (size - 1) / 2) ** 2 <= (size / 2 - 1) ** 2
            for k, i in enumerate(group):
                top = r * _CELL + 1 + (k // per_row) * size
                left = c * _CELL + 1 + (k % per_row) * size
                patch = frame[top : top + size, left : left + size]
                patch[disc] = _AGENT_COLOURS[i % len(_AGENT_COLOURS)]
                pips(top, left, size, int(game.players[i].level), 30)
        return frame

    def close(self) -> None:
        self.game.close()


def parallel_env(**kwargs: Any) -> LBFParallelEnv:
    return LBFParallelEnv(**kwargs)


def raw_env(**kwargs: Any):
    return parallel_to_aec(parallel_env(**kwargs))


def env(**kwargs: Any):
    return wrappers.OrderEnforcingWrapper(raw_env(**kwargs))
