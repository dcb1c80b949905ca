"""Private: how the agents' spaces map onto batched arrays (the heterogeneity rules of
:mod:`adv_wrappers.vector`), the shared buffers the copies write into, and the description of
one copy's agents and spaces that every copy must share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv

from adv_wrappers.errors import InvalidArgumentError, UnsupportedSpaceError

# --------------------------------------------------------------------------- layout


def flat_size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _padded_bounds(
    boxes: Sequence[spaces.Box], size: int, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """Min of lows and max of highs over ``boxes``, each flattened and padded with 0."""
    lows = np.zeros((len(boxes), size), dtype=dtype)
    highs = np.zeros((len(boxes), size), dtype=dtype)
    for k, box in enumerate(boxes):
        n = flat_size(box.shape)
        lows[k, :n] = box.low.reshape(-1)
        highs[k, :n] = box.high.reshape(-1)
    return lows.min(axis=0), highs.max(axis=0)


def _space_kinds(
    agents: Sequence[Any], space_of: dict[Any, spaces.Space], what: str, allow_mix: bool = False
) -> tuple[list[Any], list[Any]]:
    """Split agents into Box and Discrete ones; raise on any other space or (unless
    ``allow_mix``) on a mix."""
    others = [a for a in agents if not isinstance(space_of[a], (spaces.Box, spaces.Discrete))]
    if others:
        details = []
        for a in others:
            space = space_of[a]
            if isinstance(space, spaces.Dict) and "action_mask" in space.spaces:
                details.append(
                    f"{a!r}: {space} (a Dict with an 'action_mask' key, as in classic games; "
                    "masked turn-based observations are not supported)"
                )
            else:
                details.append(f"{a!r}: {space}")
        raise UnsupportedSpaceError(
            f"vector envs support Box or Discrete {what} spaces only; unsupported {what} "
            f"space for agent(s) " + "; ".join(details)
        )
    boxes = [a for a in agents if isinstance(space_of[a], spaces.Box)]
    discretes = [a for a in agents if isinstance(space_of[a], spaces.Discrete)]
    if boxes and discretes and not allow_mix:
        raise UnsupportedSpaceError(
            f"{what} spaces mix Box (agents {boxes}) and Discrete (agents {discretes}); "
            f"vector envs need all {what} spaces Box or all Discrete"
        )
    return boxes, discretes


def _discrete_cover(items: Sequence[spaces.Discrete]) -> spaces.Discrete:
    first = items[0]
    if all(s == first for s in items):
        return first
    lo = min(int(s.start) for s in items)
    hi = max(int(s.start) + int(s.n) for s in items)
    return spaces.Discrete(hi - lo, start=lo)


class Layout:
    """How one env's per-agent spaces map onto the batched agent axis (picklable)."""

    def __init__(
        self,
        agents: Sequence[Any],
        observation_spaces: dict[Any, spaces.Space],
        action_spaces: dict[Any, spaces.Space],
        state_space: spaces.Box | None = None,
    ) -> None:
        self.agents = tuple(agents)
        self.num_agents = len(self.agents)
        self.index = {a: i for i, a in enumerate(self.agents)}
        self._init_observations(observation_spaces)
        self._init_actions(action_spaces)
        # without state=True the state buffers have no bytes
        self.state_space = state_space
        self.state_shape: tuple[int, ...] = (0,) if state_space is None else state_space.shape
        self.state_dtype = np.dtype(np.float32 if state_space is None else state_space.dtype)

    def _init_observations(self, space_of: dict[Any, spaces.Space]) -> None:
        boxes, discretes = _space_kinds(self.agents, space_of, "observation")
        items = [space_of[a] for a in self.agents]
        if discretes:  # then every space is Discrete (_space_kinds)
            self.obs_mode = "discrete"
            self.obs_shape: tuple[int, ...] = ()
            self.obs_dtype: np.dtype = np.dtype(np.int64)
            self.obs_sizes = np.ones(self.num_agents, dtype=np.int64)
            self.single_observation_space: spaces.Space = _discrete_cover(
                cast("list[spaces.Discrete]", items)
            )
            return
        box_items = cast("list[spaces.Box]", items)  # every space is a Box (_space_kinds)
        first = box_items[0]
        if all(s.shape == first.shape and s.dtype == first.dtype for s in box_items):
            self.obs_mode = "stack"
            self.obs_shape = tuple(first.shape)
            self.obs_dtype = np.dtype(first.dtype)
            self.obs_sizes = np.full(self.num_agents, flat_size(first.shape), dtype=np.int64)
            if all(s == first for s in box_items):
                self.single_observation_space = first
            else:
                low = np.min(np.stack([s.low for s in box_items]), axis=0)
                high = np.max(np.stack([s.high for s in box_items]), axis=0)
                self.single_observation_space = spaces.Box(low, high, dtype=self.obs_dtype)
            return
        self.obs_mode = "pad"
        self.obs_sizes = np.array([flat_size(s.shape) for s in box_items], dtype=np.int64)
        size = int(self.obs_sizes.max())
        self.obs_shape = (size,)
        self.obs_dtype = np.dtype(np.result_type(*[s.dtype for s in box_items]))
        low, high = _padded_bounds(box_items, size, self.obs_dtype)
        self.single_observation_space = spaces.Box(low, high, dtype=self.obs_dtype)

    def _init_actions(self, space_of: dict[Any, spaces.Space]) -> None:
        boxes, discretes = _space_kinds(self.agents, space_of, "action", allow_mix=True)
        items = [space_of[a] for a in self.agents]
        self.action_discrete = not boxes
        # a mix: Discrete agent i reads column 0 of its row (an integral value, start
        # included), e.g. Discrete agents beside the Box observation adversaries of
        # state_perturbation_v0; slot -> (start, n)
        self.discrete_slots: dict[int, tuple[int, int]] = {}
        if self.action_discrete:  # every space is Discrete
            discrete_items = cast("list[spaces.Discrete]", items)
            self.action_nvec: np.ndarray | None = np.array(
                [s.n for s in discrete_items], dtype=np.int64
            )
            self.action_start = np.array([s.start for s in discrete_items], dtype=np.int64)
            self.action_sizes = np.ones(self.num_agents, dtype=np.int64)
            self.action_shape: tuple[int, ...] = ()
            self.single_action_space: spaces.Space = _discrete_cover(discrete_items)
            self.box_actions: list[tuple[int, tuple[int, ...], np.dtype]] = []
            return
        box_dtypes = [space_of[a].dtype for a in boxes]
        dtype = np.dtype(np.result_type(*box_dtypes))
        if discretes and dtype.kind != "f":
            dtype = np.dtype(np.float64)
        box_items = []  # a Discrete agent as the Box [start, start + n - 1] of one value
        for i, space in enumerate(items):
            if isinstance(space, spaces.Discrete):
                start, n = int(space.start), int(space.n)
                self.discrete_slots[i] = (start, n)
                space = spaces.Box(start, start + n - 1, (1,), dtype=dtype)
            box_items.append(cast(spaces.Box, space))
        self.action_nvec = None
        self.action_sizes = np.array([flat_size(s.shape) for s in box_items], dtype=np.int64)
        dim = int(self.action_sizes.max())
        self.action_shape = (dim,)
        low, high = _padded_bounds(box_items, dim, dtype)
        self.single_action_space = spaces.Box(low, high, dtype=dtype)
        self.box_actions = [
            (int(n), tuple(s.shape), np.dtype(s.dtype))
            for n, s in zip(self.action_sizes, box_items, strict=True)
        ]
        # valid_columns[i, j]: column j of the padded action is agent i's data
        self.action_valid_columns = np.arange(dim)[None, :] < self.action_sizes[:, None]


# --------------------------------------------------------------------------- buffers


_BUFFER_FIELDS = (
    "obs",
    "has_obs",
    "rewards",
    "has_reward",
    "terminations",
    "truncations",
    "alive",
    "final_obs",
    "final_alive",
    "state",
    "final_state",
)


class Row:
    """Per-copy views of every output buffer (what one :class:`EnvRunner` writes)."""

    __slots__ = _BUFFER_FIELDS
    # one attribute per name in _BUFFER_FIELDS, set by Buffers.row
    obs: np.ndarray
    has_obs: np.ndarray
    rewards: np.ndarray
    has_reward: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    alive: np.ndarray
    final_obs: np.ndarray
    final_alive: np.ndarray
    state: np.ndarray
    final_state: np.ndarray


class Buffers:
    """Every per-copy output of a step, packed in one ``uint8`` row per copy.

    Each field is a typed view into ``raw`` (shape ``[n, row_bytes]``), so a worker process
    ships all of its results as one contiguous row and the parent stores them with one copy.
    """

    raw: np.ndarray
    # one ``[n, ...]`` view per name in _BUFFER_FIELDS, set by __init__
    obs: np.ndarray
    has_obs: np.ndarray
    rewards: np.ndarray
    has_reward: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    alive: np.ndarray
    final_obs: np.ndarray
    final_alive: np.ndarray
    state: np.ndarray
    final_state: np.ndarray

    def __init__(self, layout: Layout, n: int) -> None:
        a = layout.num_agents
        obs = (layout.obs_dtype, (a, *layout.obs_shape))
        specs = {
            "obs": obs,
            "has_obs": (np.dtype(np.bool_), (a,)),
            "rewards": (np.dtype(np.float32), (a,)),
            "has_reward": (np.dtype(np.bool_), (a,)),
            "terminations": (np.dtype(np.bool_), (a,)),
            "truncations": (np.dtype(np.bool_), (a,)),
            "alive": (np.dtype(np.bool_), (a,)),
            "final_obs": obs,
            "final_alive": (np.dtype(np.bool_), (a,)),
            "state": (layout.state_dtype, layout.state_shape),
            "final_state": (layout.state_dtype, layout.state_shape),
        }
        offsets = {}
        offset = 0
        for name in _BUFFER_FIELDS:
            dtype, shape = specs[name]
            offset = -(-offset // 16) * 16  # align every field to 16 bytes
            offsets[name] = offset
            offset += flat_size(shape) * dtype.itemsize
        row_bytes = max(16, -(-offset // 16) * 16)
        self.raw = np.zeros((n, row_bytes), dtype=np.uint8)
        for name in _BUFFER_FIELDS:
            dtype, shape = specs[name]
            inner = np.empty(shape, dtype=dtype).strides  # C-contiguous strides of one row
            view = np.ndarray(
                shape=(n, *shape),
                dtype=dtype,
                buffer=self.raw,
                offset=offsets[name],
                strides=(row_bytes, *inner),
            )
            setattr(self, name, view)

    def row(self, e: int) -> Row:
        row = Row()
        for name in _BUFFER_FIELDS:
            setattr(row, name, getattr(self, name)[e])
        return row


# --------------------------------------------------------------------------- one copy


class LayoutAttributes:
    """The public layout attributes of a batched vector env (a base class):
    :meth:`_expose` sets them from a :class:`Layout` and keeps it as ``_layout``."""

    agents: tuple[Any, ...]
    num_agents: int
    single_observation_space: spaces.Space
    single_action_space: spaces.Space
    obs_sizes: np.ndarray
    action_sizes: np.ndarray
    action_nvec: np.ndarray | None
    _layout: Layout

    def _expose(self, layout: Layout) -> None:
        self._layout = layout
        self.agents = layout.agents
        self.num_agents = layout.num_agents
        self.single_observation_space = layout.single_observation_space
        self.single_action_space = layout.single_action_space
        self.obs_sizes = layout.obs_sizes
        self.action_sizes = layout.action_sizes
        self.action_nvec = layout.action_nvec


def check_action_shape(actions: Any, num_envs: int, layout: Layout) -> np.ndarray:
    """``actions`` as an array of shape ``[num_envs, num_agents, *action_shape]`` (typed error
    naming the expected shape otherwise)."""
    actions = np.asarray(actions)
    shape = (num_envs, layout.num_agents, *layout.action_shape)
    if actions.shape != shape:
        raise InvalidArgumentError(
            f"actions must have shape [num_envs, num_agents, ...] = {shape}; got {actions.shape}"
        )
    return actions


def actions_below(envs: Any, actions: np.ndarray, index: tuple) -> np.ndarray:
    """The action array of the vector env ``envs`` under a layer: zeros (padding, never
    read where no agent acts), with the layer's ``actions`` at ``index`` (an index of its
    ``[E, A]`` axes); Box actions fill each row's first columns."""
    layout = envs._layout
    shape = (envs.num_envs, envs.num_agents, *layout.action_shape)
    boxes = len(shape) == 3
    below = np.zeros(shape, dtype=np.result_type(actions.dtype, np.float32) if boxes else np.int64)
    if boxes:
        below[tuple(index) + (slice(None, actions.shape[2]),)] = actions
    else:
        below[index] = actions
    return below


def describe(env: Any, where: str) -> tuple[tuple[Any, ...], dict, dict]:
    """``(possible_agents, observation spaces, action spaces)`` of one copy."""
    if isinstance(env, AECEnv):
        raise InvalidArgumentError(
            f"{where} returned an AECEnv ({type(env).__name__}); vector envs need a "
            "pettingzoo.ParallelEnv (use the environment's parallel_env())"
        )
    agents = getattr(env, "possible_agents", None)
    if not agents:
        raise InvalidArgumentError(
            f"{where} returned {type(env).__name__} without a non-empty possible_agents; "
            "vector envs need a pettingzoo.ParallelEnv"
        )
    agents = tuple(agents)
    if len(set(agents)) != len(agents):
        raise InvalidArgumentError(f"{where}: possible_agents has duplicates: {agents}")
    obs_spaces = {a: env.observation_space(a) for a in agents}
    act_spaces = {a: env.action_space(a) for a in agents}
    return agents, obs_spaces, act_spaces


def env_state_space(env: Any, where: str) -> spaces.Box:
    """The ``state_space`` of one copy (``state=True``)."""
    space = getattr(env, "state_space", None)
    if space is None or not callable(getattr(env, "state", None)):
        raise InvalidArgumentError(
            f"state=True needs envs with state() and state_space; {where} returned "
            f"{type(env).__name__}, which has no state_space"
        )
    if not isinstance(space, spaces.Box):
        raise UnsupportedSpaceError(
            f"state=True supports a Box state_space only; {where} has {space}"
        )
    return space


def check_same_state(state_spaces: Sequence[spaces.Box], arg: str) -> None:
    for i, space in enumerate(state_spaces[1:], start=1):
        if space != state_spaces[0]:
            raise InvalidArgumentError(
                f"{arg}[{i}] has the state space {space} but {arg}[0] has {state_spaces[0]}; "
                "all copies must have identical spaces"
            )


def check_same(descriptions: Sequence[tuple[tuple, dict, dict]], arg: str) -> None:
    agents, obs_spaces, act_spaces = descriptions[0]
    for i, (other_agents, other_obs, other_act) in enumerate(descriptions[1:], start=1):
        if other_agents != agents:
            raise InvalidArgumentError(
                f"{arg}[{i}] has possible_agents {list(other_agents)} but {arg}[0] has "
                f"{list(agents)}; all copies must have identical possible_agents"
            )
        for a in agents:
            if other_obs[a] != obs_spaces[a]:
                raise InvalidArgumentError(
                    f"{arg}[{i}] gives agent {a!r} the observation space {other_obs[a]} but "
                    f"{arg}[0] gives {obs_spaces[a]}; all copies must have identical spaces"
                )
            if other_act[a] != act_spaces[a]:
                raise InvalidArgumentError(
                    f"{arg}[{i}] gives agent {a!r} the action space {other_act[a]} but "
                    f"{arg}[0] gives {act_spaces[a]}; all copies must have identical spaces"
                )


# --------------------------------------------------------------------------- episode schedules

SCHEDULE_KEY = "episode_schedule"
"""The ``reset`` option that gives each copy's episodes their own options (see
:func:`per_copy_options`)."""


def per_copy_options(options: Any, num_envs: int) -> list[Any]:
    """One ``options`` per copy: ``options`` itself, or, when it has
    ``{"episode_schedule": {key: table}}``, copy ``e``'s share of every table.

    A table is a sequence of ``num_envs`` non-empty sequences: ``table[e][l]`` is the value of
    ``key`` in the options of copy ``e``'s ``l``-th episode since this ``reset`` (the reset's
    own episode is ``l = 0``, auto-resets count on), repeating with the row's length; the
    other keys go to every episode (see :func:`episode_options`). ART plans its episodes'
    victims and subsets this way.

    Raises:
        InvalidArgumentError: a schedule that is not a dict of such tables.
    """
    if not isinstance(options, Mapping) or SCHEDULE_KEY not in options:
        return [options] * num_envs
    schedule = options[SCHEDULE_KEY]
    if not isinstance(schedule, Mapping) or not schedule:
        raise InvalidArgumentError(
            f"options[{SCHEDULE_KEY!r}] must be a non-empty dict option name -> table "
            f"([num_envs][episodes]); got {schedule!r}"
        )
    for key, table in schedule.items():
        if isinstance(table, (str, bytes)) or not isinstance(table, Sequence | np.ndarray):
            raise InvalidArgumentError(
                f"options[{SCHEDULE_KEY!r}][{key!r}] must be a table [num_envs][episodes]; "
                f"got {type(table).__name__}"
            )
        if len(table) != num_envs or any(len(row) < 1 for row in table):
            raise InvalidArgumentError(
                f"options[{SCHEDULE_KEY!r}][{key!r}] must have {num_envs} non-empty rows "
                f"(one per copy); got {len(table)}"
            )
    rest = {k: v for k, v in options.items() if k != SCHEDULE_KEY}
    return [
        {**rest, SCHEDULE_KEY: {key: table[e] for key, table in schedule.items()}}
        for e in range(num_envs)
    ]


def episode_options(options: Any, episode: int) -> Any:
    """The options of a copy's ``episode``-th episode since its ``reset``, from its share
    (:func:`per_copy_options`): the scheduled keys take their values for that episode."""
    if not isinstance(options, Mapping) or SCHEDULE_KEY not in options:
        return options
    out = {k: v for k, v in options.items() if k != SCHEDULE_KEY}
    for key, row in options[SCHEDULE_KEY].items():
        out[key] = row[episode % len(row)]
    return out
