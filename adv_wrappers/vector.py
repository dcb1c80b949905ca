"""Vectorized rollouts of PettingZoo ``ParallelEnv``\\ s as batched numpy arrays.

``num_envs`` copies of a (possibly wrapped) :class:`pettingzoo.ParallelEnv` are stepped
together; every output is a numpy array shaped ``[num_envs, num_agents, ...]`` whose agent
axis follows ``possible_agents`` of the first copy. This is the rollout shape CleanRL-style
trainers store (``obs[step] = next_obs``).

Backends:

* :class:`SyncParallelVectorEnv` steps the copies one after the other in this process.
* :class:`SubprocParallelVectorEnv` runs one worker process per copy (``multiprocessing``
  pipes; the ``env_fns`` are pickled with ``cloudpickle``). Each step sends one message to
  and receives one message from every worker; a worker ships its whole result as one packed
  byte row. An exception raised inside a worker is re-raised in the parent with the original
  type and message; the worker's traceback text is attached as ``__cause__``.
* :func:`make_vector_env` builds either from one ``env_fn``.

Shapes (``E = num_envs``, ``A = num_agents``):

====================  ======================  ===============================================
output                shape                   dtype
====================  ======================  ===============================================
observations          ``[E, A, *obs_shape]``  see the heterogeneity rule below
actions (input)       ``[E, A]``              integer (all Discrete action spaces)
actions (input)       ``[E, A, max_dim]``     float/int (all Box action spaces)
rewards               ``[E, A]``              ``float32``
terminations          ``[E, A]``              ``bool``
truncations           ``[E, A]``              ``bool``
====================  ======================  ===============================================

Heterogeneity rule (observations):

* Every agent's space is a ``Box`` with the same shape and dtype: the batch keeps that shape
  (images stay ``[E, A, H, W, C]``); ``single_observation_space`` is a ``Box`` of that shape
  whose bounds are the element-wise min of the lows and max of the highs (the space itself
  when all agents share one).
* All ``Box`` but shapes or dtypes differ: each observation is flattened and zero-padded to
  the largest flat size, dtype ``np.result_type`` of all dtypes. ``single_observation_space``
  is a 1-D ``Box`` of the padded size whose bounds are the min of lows / max of highs over
  agents, each agent's bounds padded with 0 (so the padding itself is in bounds).
  ``obs_sizes[i]`` is agent ``i``'s true flat size: ``obs[e, i, :obs_sizes[i]]`` is its data.
* All ``Discrete``: int64 scalars, batch ``[E, A]``; ``single_observation_space`` is a
  ``Discrete`` covering every agent's values.
* Anything else (``Dict`` -- including classic games' ``{"observation", "action_mask"}`` --
  ``Tuple``, ``MultiDiscrete``, a mix of ``Box`` and ``Discrete``) raises
  :class:`~adv_wrappers.errors.UnsupportedSpaceError` naming the agents.

Heterogeneity rule (actions):

* All ``Discrete``: integer array ``[E, A]``; ``action_nvec[i]`` is agent ``i``'s ``n``
  (heterogeneous ``n`` is allowed; an out-of-range value for an agent that must act raises).
  Values are the space's own values (``start`` included) and reach the env as Python ints.
* All ``Box``: array ``[E, A, max_dim]`` where ``max_dim`` is the largest flat action size;
  agent ``i`` receives ``actions[e, i, :action_sizes[i]]`` reshaped to its space's shape and
  cast to its space's dtype (a fresh array each step). The padding columns are not read.
* Anything else, or a mix, raises :class:`~adv_wrappers.errors.UnsupportedSpaceError`.

Masks. An agent slot is *alive* when the agent is in ``env.agents``, i.e. it must act next.
:meth:`step` sends ``actions[e, i]`` to copy ``e`` only where ``alive[e, i]`` was True after
the previous :meth:`reset`/:meth:`step` (the ``alive`` attribute); every other entry is
padding and is never read, so any value (``-1``, ``NaN``) may sit there. Agents missing from a
step's dicts get reward 0, ``False`` flags and an all-zero observation; the masks in ``infos``
say which entries are real. Agents of ``possible_agents`` that never appear stay masked, and
agents that vanish (die, are removed by a wrapper) or appear mid-episode (an adversary agent
added by a wrapper) just flip their slot's mask.

``reset(seed, options) -> (obs, infos)``. An ``int`` seed ``s`` seeds copy ``i`` with
``s + i``; a list gives one seed (or ``None``) per copy; ``None`` leaves every copy's RNG as
it is. ``options`` goes to every copy and is remembered for auto-resets. ``infos`` holds
``"alive"`` ``[E, A]``, ``"has_obs"`` ``[E, A]`` (agents whose observation the env returned)
and ``"agent_infos"`` (list of the ``E`` per-agent info dicts the copies returned).

``step(actions) -> (obs, rewards, terminations, truncations, infos)``; ``infos`` keys:

================  ==========  ==========================================================
key               shape       meaning
================  ==========  ==========================================================
``alive``         ``[E, A]``  agents in ``env.agents`` after this step: the ones that must
                              act next (after an auto-reset: the new episode's agents)
``acted``         ``[E, A]``  agents whose actions were sent this step (previous ``alive``)
``has_obs``       ``[E, A]``  agents with an observation in ``obs`` (after an auto-reset:
                              the new episode's first observations)
``has_reward``    ``[E, A]``  agents that had an entry in the env's reward dict this step
``reset``         ``[E]``     this copy finished an episode this step and was auto-reset
``final_obs``     like obs    the finished episode's last observations where ``reset``
                              (zeros elsewhere)
``final_alive``   ``[E, A]``  agents with a row in ``final_obs`` (the terminal step's
                              ``has_obs``); False where not ``reset``
``agent_infos``   list ``E``  the per-agent info dicts each copy returned at this step (for
                              a reset copy: the terminal step's infos)
``reset_infos``   list ``E``  the infos of the auto-reset, ``None`` for other copies
================  ==========  ==========================================================

Rewards, terminations and truncations of a reset copy are those of its terminal step.

Global state (``state=True``, e.g. for a centralized critic): every copy must have a ``Box``
``state_space`` and ``state()``; the vector env's ``state_space`` is that space, and the infos
of ``reset`` and ``step`` gain ``"state"`` ``[E, *state_shape]`` (``env.state()`` after the
call; after an auto-reset, the new episode's first state), and those of ``step`` gain
``"final_state"`` (the finished episode's last state where ``reset``, zeros elsewhere).

Auto-reset ("same step", as CleanRL expects): when a copy has no agents left after a step
(``not env.agents``) it is reset at once with ``env.reset(seed=None, options=<options of the
last reset() call>)``, continuing its RNG; the returned observations of that copy are the new
episode's first ones and the true last observations are in ``infos["final_obs"]``.

Outputs are fresh arrays by default. With ``copy=False`` they are views of internal buffers
that the next :meth:`reset`/:meth:`step` overwrites (and are not C-contiguous).

Errors:
    InvalidArgumentError: bad ``env_fns``/``num_envs``/``backend``/``context``/``seed``; copies
        whose ``possible_agents`` or spaces (state spaces with ``state=True``) differ; an
        ``actions`` array with the wrong shape or dtype; ``state=True`` for an env without
        ``state_space``.
    UnsupportedSpaceError: an observation or action space outside the rules above; a
        ``state_space`` that is not a ``Box`` (``state=True``).
    InvalidActionError: a Discrete action out of its agent's range where the agent must act.
    MissingActionError: a ``NaN`` Box action where the agent must act (padding where a real
        action was due).
    UnknownAgentError: an env reports an agent that is not in its ``possible_agents``.
    VectorEnvStateError: ``step`` before ``reset`` or after a step that raised, use after
        ``close``, or a worker process that died.
    Any exception raised by an env (in a subprocess worker: same type and message, with the
    worker's traceback text as ``__cause__``).

Example:
    >>> from functools import partial
    >>> import numpy as np
    >>> from mpe2 import simple_tag_v3
    >>> from adv_wrappers.vector import make_vector_env
    >>> env_fn = partial(simple_tag_v3.parallel_env, max_cycles=25)
    >>> with make_vector_env(env_fn, num_envs=2) as envs:
    ...     obs, infos = envs.reset(seed=0)
    ...     print(envs.agents)
    ...     print(obs.shape, envs.obs_sizes.tolist(), envs.action_nvec.tolist())
    ...     rng = np.random.default_rng(0)
    ...     resets = 0
    ...     for _ in range(30):
    ...         actions = rng.integers(0, envs.action_nvec, size=(2, envs.num_agents))
    ...         obs, rewards, terms, truncs, infos = envs.step(actions)
    ...         resets += int(infos["reset"].sum())
    ...     print(rewards.dtype, rewards.shape, infos["final_obs"].shape, resets)
    ('adversary_0', 'adversary_1', 'adversary_2', 'agent_0')
    (2, 4, 16) [16, 16, 16, 14] [5, 5, 5, 5]
    float32 (2, 4) (2, 4, 16) 2

Change logs:
    * v0.1.0 - Initially added.
    * v0.1.0 - ``state=True``: the global state in the infos (for centralized critics).
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import signal
import traceback
from collections.abc import Callable, Sequence
from typing import Any, cast

import cloudpickle
import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv, ParallelEnv

from adv_wrappers.errors import (
    InvalidActionError,
    InvalidArgumentError,
    MissingActionError,
    UnknownAgentError,
    UnsupportedSpaceError,
    VectorEnvStateError,
)

__all__ = [
    "BACKENDS",
    "SubprocParallelVectorEnv",
    "SyncParallelVectorEnv",
    "VectorEnvStateError",
    "make_vector_env",
]

BACKENDS = ("sync", "subproc")
"""Values accepted by ``make_vector_env(backend=...)``."""

_CLOSE_TIMEOUT_S = 10.0


# --------------------------------------------------------------------------- layout


def _flat_size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _padded_bounds(
    boxes: Sequence[spaces.Box], size: int, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """Min of lows and max of highs over ``boxes``, each flattened and padded with 0."""
    lows = np.zeros((len(boxes), size), dtype=dtype)
    highs = np.zeros((len(boxes), size), dtype=dtype)
    for k, box in enumerate(boxes):
        n = _flat_size(box.shape)
        lows[k, :n] = box.low.reshape(-1)
        highs[k, :n] = box.high.reshape(-1)
    return lows.min(axis=0), highs.max(axis=0)


def _space_kinds(
    agents: Sequence[Any], space_of: dict[Any, spaces.Space], what: str
) -> tuple[list[Any], list[Any]]:
    """Split agents into Box and Discrete ones; raise on any other space or on a mix."""
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
    if boxes and discretes:
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


class _Layout:
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
            self.obs_sizes = np.full(self.num_agents, _flat_size(first.shape), dtype=np.int64)
            if all(s == first for s in box_items):
                self.single_observation_space = first
            else:
                low = np.min(np.stack([s.low for s in box_items]), axis=0)
                high = np.max(np.stack([s.high for s in box_items]), axis=0)
                self.single_observation_space = spaces.Box(low, high, dtype=self.obs_dtype)
            return
        self.obs_mode = "pad"
        self.obs_sizes = np.array([_flat_size(s.shape) for s in box_items], dtype=np.int64)
        size = int(self.obs_sizes.max())
        self.obs_shape = (size,)
        self.obs_dtype = np.dtype(np.result_type(*[s.dtype for s in box_items]))
        low, high = _padded_bounds(box_items, size, self.obs_dtype)
        self.single_observation_space = spaces.Box(low, high, dtype=self.obs_dtype)

    def _init_actions(self, space_of: dict[Any, spaces.Space]) -> None:
        boxes, discretes = _space_kinds(self.agents, space_of, "action")
        items = [space_of[a] for a in self.agents]
        self.action_discrete = bool(discretes)
        if self.action_discrete:  # then every space is Discrete (_space_kinds)
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
        box_items = cast("list[spaces.Box]", items)  # every space is a Box (_space_kinds)
        self.action_nvec = None
        self.action_sizes = np.array([_flat_size(s.shape) for s in box_items], dtype=np.int64)
        dim = int(self.action_sizes.max())
        self.action_shape = (dim,)
        dtype = np.dtype(np.result_type(*[s.dtype for s in box_items]))
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


class _Row:
    """Per-copy views of every output buffer (what one :class:`_EnvRunner` writes)."""

    __slots__ = _BUFFER_FIELDS
    # one attribute per name in _BUFFER_FIELDS, set by _Buffers.row
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


class _Buffers:
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

    def __init__(self, layout: _Layout, n: int) -> None:
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
            offset += _flat_size(shape) * dtype.itemsize
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

    def row(self, e: int) -> _Row:
        row = _Row()
        for name in _BUFFER_FIELDS:
            setattr(row, name, getattr(self, name)[e])
        return row


# --------------------------------------------------------------------------- one copy


def _describe(env: Any, where: str) -> tuple[tuple[Any, ...], dict, dict]:
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


def _state_space(env: Any, where: str) -> spaces.Box:
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


def _check_same_state(state_spaces: Sequence[spaces.Box], arg: str) -> None:
    for i, space in enumerate(state_spaces[1:], start=1):
        if space != state_spaces[0]:
            raise InvalidArgumentError(
                f"{arg}[{i}] has the state space {space} but {arg}[0] has {state_spaces[0]}; "
                "all copies must have identical spaces"
            )


def _check_same(descriptions: Sequence[tuple[tuple, dict, dict]], arg: str) -> None:
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


class _EnvRunner:
    """Steps one copy and writes its results into one :class:`_Row` of buffers.

    Used directly by :class:`SyncParallelVectorEnv` (rows are views of the batch) and inside
    each worker of :class:`SubprocParallelVectorEnv` (rows of a one-copy buffer).
    """

    def __init__(self, env: ParallelEnv, layout: _Layout, row: _Row) -> None:
        self.env = env
        self.row = row
        self._index = layout.index
        self._num_agents = layout.num_agents
        self._obs_mode = layout.obs_mode
        self._obs_sizes = layout.obs_sizes.tolist()
        self._discrete = layout.action_discrete
        self._box_actions = layout.box_actions
        self._with_state = layout.state_space is not None
        self._acting: list[tuple[Any, int]] = []
        self._final_dirty = False
        self._options: dict | None = None

    def _unknown(self, agent: Any, what: str) -> UnknownAgentError:
        return UnknownAgentError(
            f"{type(self.env).__name__} returned {what} for agent {agent!r}, which is not in "
            f"its possible_agents {list(self._index)}"
        )

    def _write_obs(self, observations: dict, out: np.ndarray, has: np.ndarray) -> None:
        index = self._index
        if len(observations) != self._num_agents:
            out.fill(0)
        has.fill(False)
        try:
            if self._obs_mode == "pad":
                sizes = self._obs_sizes
                for agent, o in observations.items():
                    i = index[agent]
                    out[i, : sizes[i]] = np.ravel(o)
                    has[i] = True
            else:
                for agent, o in observations.items():
                    i = index[agent]
                    out[i] = o
                    has[i] = True
        except KeyError as exc:
            raise self._unknown(exc.args[0], "an observation") from None

    def _write_step(self, rewards: dict, terminations: dict, truncations: dict) -> None:
        row, index = self.row, self._index
        rew, has, term, trunc = row.rewards, row.has_reward, row.terminations, row.truncations
        rew.fill(0.0)
        has.fill(False)
        term.fill(False)
        trunc.fill(False)
        try:
            for agent, r in rewards.items():
                i = index[agent]
                rew[i] = r
                has[i] = True
            for agent, t in terminations.items():
                term[index[agent]] = t
            for agent, t in truncations.items():
                trunc[index[agent]] = t
        except KeyError as exc:
            raise self._unknown(exc.args[0], "a reward or flag") from None

    def _update_alive(self) -> None:
        alive, index = self.row.alive, self._index
        alive.fill(False)
        acting = []
        try:
            for agent in self.env.agents:
                i = index[agent]
                alive[i] = True
                acting.append((agent, i))
        except KeyError as exc:
            raise self._unknown(exc.args[0], "env.agents membership") from None
        self._acting = acting

    def reset(self, seed: int | None, options: dict | None) -> dict:
        row = self.row
        self._options = options
        observations, infos = self.env.reset(seed=seed, options=options)
        self._write_obs(observations, row.obs, row.has_obs)
        self._update_alive()
        if self._with_state:
            row.state[...] = self.env.state()
        row.rewards.fill(0.0)
        row.has_reward.fill(False)
        row.terminations.fill(False)
        row.truncations.fill(False)
        row.final_obs.fill(0)
        row.final_alive.fill(False)
        row.final_state.fill(0)
        self._final_dirty = False
        return infos

    def step(self, action_row: np.ndarray) -> tuple[bool, dict, dict | None]:
        row, env = self.row, self.env
        if self._discrete:
            values = action_row.tolist()
            actions = {agent: values[i] for agent, i in self._acting}
        else:
            actions = {}
            for agent, i in self._acting:
                size, shape, dtype = self._box_actions[i]
                a = action_row[i, :size]
                actions[agent] = a.reshape(shape).astype(dtype)  # astype copies
        observations, rewards, terminations, truncations, infos = env.step(actions)
        self._write_step(rewards, terminations, truncations)
        if env.agents:
            if self._final_dirty:
                row.final_obs.fill(0)
                row.final_alive.fill(False)
                row.final_state.fill(0)
                self._final_dirty = False
            self._write_obs(observations, row.obs, row.has_obs)
            self._update_alive()
            if self._with_state:
                row.state[...] = env.state()
            return False, infos, None
        self._write_obs(observations, row.final_obs, row.final_alive)
        if self._with_state:
            row.final_state[...] = env.state()
        self._final_dirty = True
        observations, reset_infos = env.reset(seed=None, options=self._options)
        self._write_obs(observations, row.obs, row.has_obs)
        self._update_alive()
        if self._with_state:
            row.state[...] = env.state()
        return True, infos, reset_infos


# --------------------------------------------------------------------------- base class


def _check_num_envs(num_envs: Any) -> int:
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)):
        raise InvalidArgumentError(
            f"num_envs must be an int >= 1; got {num_envs!r} ({type(num_envs).__name__})"
        )
    if num_envs < 1:
        raise InvalidArgumentError(f"num_envs must be an int >= 1; got {num_envs}")
    return int(num_envs)


def _check_env_fns(env_fns: Any) -> list[Callable[[], ParallelEnv]]:
    if isinstance(env_fns, (str, bytes)) or not isinstance(env_fns, Sequence):
        raise InvalidArgumentError(
            "env_fns must be a non-empty sequence of callables returning a ParallelEnv; "
            f"got {type(env_fns).__name__}"
        )
    env_fns = list(env_fns)
    if not env_fns:
        raise InvalidArgumentError(
            "env_fns must be a non-empty sequence of callables returning a ParallelEnv; got []"
        )
    for i, fn in enumerate(env_fns):
        if not callable(fn):
            raise InvalidArgumentError(
                f"env_fns[{i}] must be a callable returning a ParallelEnv; got {fn!r}"
            )
    return env_fns


class _ParallelVectorEnv:
    """Shared batching, validation and bookkeeping of both backends."""

    num_envs: int
    """Number of copies (the leading axis of every output)."""
    agents: tuple[Any, ...]
    """Agent axis order: ``possible_agents`` of the first copy."""
    num_agents: int
    """``len(agents)``."""
    observation_spaces: dict[Any, spaces.Space]
    """Each agent's original observation space."""
    action_spaces: dict[Any, spaces.Space]
    """Each agent's original action space."""
    single_observation_space: spaces.Space
    """Space of one ``obs[e, i]`` entry after the heterogeneity rule."""
    single_action_space: spaces.Space
    """Space of one ``actions[e, i]`` entry after the heterogeneity rule."""
    obs_sizes: np.ndarray
    """``[A]`` int64: each agent's true flat observation size (1 for Discrete)."""
    action_sizes: np.ndarray
    """``[A]`` int64: each agent's flat action size (1 for Discrete)."""
    action_nvec: np.ndarray | None
    """``[A]`` int64: each agent's Discrete ``n``; ``None`` for Box actions."""
    state_space: spaces.Box | None
    """The copies' ``state_space`` with ``state=True``; ``None`` otherwise."""

    def _setup(
        self,
        num_envs: int,
        layout: _Layout,
        description: tuple[tuple, dict, dict],
        copy: bool,
    ) -> None:
        self.num_envs = num_envs
        self._layout = layout
        self.agents = layout.agents
        self.num_agents = layout.num_agents
        _, self.observation_spaces, self.action_spaces = description
        self.single_observation_space = layout.single_observation_space
        self.single_action_space = layout.single_action_space
        self.obs_sizes = _readonly(layout.obs_sizes)
        self.action_sizes = _readonly(layout.action_sizes)
        self.action_nvec = None if layout.action_nvec is None else _readonly(layout.action_nvec)
        self.state_space = layout.state_space
        self._copy = bool(copy)
        self._buffers = _Buffers(layout, num_envs)
        self._acted = np.zeros((num_envs, layout.num_agents), dtype=np.bool_)
        self._actions_shape = (num_envs, layout.num_agents, *layout.action_shape)
        if layout.action_nvec is not None:  # Discrete actions (layout.action_discrete)
            self._action_low = layout.action_start
            self._action_high = layout.action_start + layout.action_nvec
        self._needs_reset = True

    # -- subclass hooks
    def _reset_copies(self, seeds: list[int | None], options: dict | None) -> list[dict]:
        raise NotImplementedError

    def _step_copies(self, actions: np.ndarray) -> tuple[list[bool], list[dict], list]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _check_open(self, method: str) -> None:
        if getattr(self, "_closed", True):
            raise VectorEnvStateError(f"{type(self).__name__}.{method}() called after close()")

    # -- public API
    @property
    def alive(self) -> np.ndarray:
        """``[E, A]`` bool: agents that must act at the next :meth:`step` (a copy)."""
        return self._buffers.alive.copy()

    def _out(self, array: np.ndarray) -> np.ndarray:
        return array.copy() if self._copy else array

    def _seeds(self, seed: Any) -> list[int | None]:
        n = self.num_envs
        if seed is None:
            return [None] * n
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            return [int(seed) + i for i in range(n)]
        if isinstance(seed, Sequence) and not isinstance(seed, (str, bytes)):
            seeds = list(seed)
            if len(seeds) != n:
                raise InvalidArgumentError(
                    f"seed as a list must give one seed per copy ({n}); got {len(seeds)}"
                )
            for i, s in enumerate(seeds):
                if s is not None and (isinstance(s, bool) or not isinstance(s, (int, np.integer))):
                    raise InvalidArgumentError(f"seed[{i}] must be an int or None; got {s!r}")
            return [None if s is None else int(s) for s in seeds]
        raise InvalidArgumentError(
            f"seed must be an int, a list of {n} ints (one per copy) or None; got {seed!r}"
        )

    def reset(
        self, seed: int | Sequence[int | None] | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every copy.

        Args:
            seed: ``int`` ``s`` seeds copy ``i`` with ``s + i``; a list gives one seed (or
                ``None``) per copy; ``None`` continues every copy's RNG.
            options: passed to every copy's ``reset`` and reused by later auto-resets.

        Returns:
            ``(obs, infos)``: obs ``[E, A, *obs_shape]``; infos with ``"alive"``,
            ``"has_obs"``, ``"agent_infos"`` and, with ``state=True``, ``"state"`` (see the
            module docstring).

        Raises:
            InvalidArgumentError: a malformed ``seed``.
            VectorEnvStateError: called after ``close()``.
        """
        self._check_open("reset")
        seeds = self._seeds(seed)
        self._needs_reset = True
        agent_infos = self._reset_copies(seeds, options)
        self._needs_reset = False
        buf = self._buffers
        infos = {
            "alive": self._out(buf.alive),
            "has_obs": self._out(buf.has_obs),
            "agent_infos": agent_infos,
        }
        if self.state_space is not None:
            infos["state"] = self._out(buf.state)
        return self._out(buf.obs), infos

    def _check_actions(self, actions: Any) -> np.ndarray:
        actions = np.asarray(actions)
        layout = self._layout
        if actions.shape != self._actions_shape:
            what = (
                "[num_envs, num_agents]"
                if layout.action_discrete
                else ("[num_envs, num_agents, max_action_dim]")
            )
            raise InvalidArgumentError(
                f"actions must have shape {what} = {self._actions_shape}; got {actions.shape}"
            )
        alive = self._buffers.alive
        if layout.action_discrete:
            if actions.dtype.kind not in "iu":
                raise InvalidArgumentError(
                    "actions must be an integer array for Discrete action spaces; got dtype "
                    f"{actions.dtype}"
                )
            bad = alive & ((actions < self._action_low) | (actions >= self._action_high))
            if bad.any():
                e, i = (int(k) for k in np.argwhere(bad)[0])
                lo, hi = int(self._action_low[i]), int(self._action_high[i])
                raise InvalidActionError(
                    f"actions[{e}, {i}] = {actions[e, i]} for agent {self.agents[i]!r}, which "
                    f"must act, is outside its Discrete range [{lo}, {hi})"
                )
        else:
            if actions.dtype.kind not in "fiu":
                raise InvalidArgumentError(
                    f"actions must be a real-valued array for Box action spaces; got dtype "
                    f"{actions.dtype}"
                )
            if actions.dtype.kind == "f":
                nan = (np.isnan(actions) & layout.action_valid_columns).any(axis=2) & alive
                if nan.any():
                    e, i = (int(k) for k in np.argwhere(nan)[0])
                    raise MissingActionError(
                        f"actions[{e}, {i}] (agent {self.agents[i]!r}, which must act) contains "
                        "NaN in its first "
                        f"{int(layout.action_sizes[i])} entries: padding where an action is due"
                    )
        return actions

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every copy, auto-resetting the ones whose episode ended.

        Args:
            actions: ``[E, A]`` integers (Discrete) or ``[E, A, max_dim]`` (Box); only entries
                where :attr:`alive` is True are read.

        Returns:
            ``(obs, rewards, terminations, truncations, infos)`` as in the module docstring.

        Raises:
            InvalidArgumentError: ``actions`` has the wrong shape or dtype.
            InvalidActionError: a Discrete action out of range where the agent must act.
            MissingActionError: a NaN Box action where the agent must act.
            VectorEnvStateError: called before ``reset()``, after a step that raised, or after
                ``close()``.
        """
        self._check_open("step")
        if self._needs_reset:
            raise VectorEnvStateError(
                f"{type(self).__name__}.step() called before reset() (or after a step that "
                "raised, which leaves the copies out of step); call reset() first"
            )
        actions = self._check_actions(actions)
        buf = self._buffers
        np.copyto(self._acted, buf.alive)
        self._needs_reset = True
        reset, agent_infos, reset_infos = self._step_copies(actions)
        self._needs_reset = False
        infos = {
            "alive": self._out(buf.alive),
            "acted": self._acted.copy() if self._copy else self._acted,
            "has_obs": self._out(buf.has_obs),
            "has_reward": self._out(buf.has_reward),
            "reset": np.array(reset, dtype=np.bool_),
            "final_obs": self._out(buf.final_obs),
            "final_alive": self._out(buf.final_alive),
            "agent_infos": agent_infos,
            "reset_infos": reset_infos,
        }
        if self.state_space is not None:
            infos["state"] = self._out(buf.state)
            infos["final_state"] = self._out(buf.final_state)
        return (
            self._out(buf.obs),
            self._out(buf.rewards),
            self._out(buf.terminations),
            self._out(buf.truncations),
            infos,
        )

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # never raise from a finalizer
            pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_envs={self.num_envs}, agents={self.agents})"


def _readonly(array: np.ndarray) -> np.ndarray:
    array = array.copy()
    array.flags.writeable = False
    return array


# --------------------------------------------------------------------------- sync


class SyncParallelVectorEnv(_ParallelVectorEnv):
    """``num_envs`` copies of a ParallelEnv stepped one after the other in this process.

    Args:
        env_fns: one callable per copy, each returning a ``pettingzoo.ParallelEnv`` with the
            same ``possible_agents`` and spaces.
        copy: return fresh arrays (default) or views of internal buffers that the next
            call overwrites.
        state: add the copies' global ``state()`` to the infos (module docstring).

    Raises:
        InvalidArgumentError: ``env_fns`` empty or not callables; a callable returned no
            ParallelEnv; copies differ in ``possible_agents`` or spaces; ``state=True`` for
            an env without ``state_space``.
        UnsupportedSpaceError: a space outside the heterogeneity rule (module docstring); a
            ``state_space`` that is not a ``Box``.
    """

    def __init__(
        self,
        env_fns: Sequence[Callable[[], ParallelEnv]],
        *,
        copy: bool = True,
        state: bool = False,
    ) -> None:
        self._closed = True  # until construction succeeds: close()/__del__ are no-ops
        env_fns = _check_env_fns(env_fns)
        self.envs: list[ParallelEnv] = []
        try:
            for fn in env_fns:
                self.envs.append(fn())
            descriptions = [_describe(env, f"env_fns[{i}]()") for i, env in enumerate(self.envs)]
            _check_same(descriptions, "env_fns")
            state_space = None
            if state:
                state_spaces = [_state_space(e, f"env_fns[{i}]()") for i, e in enumerate(self.envs)]
                _check_same_state(state_spaces, "env_fns")
                state_space = state_spaces[0]
            layout = _Layout(*descriptions[0], state_space=state_space)
        except BaseException:
            for env in self.envs:
                try:
                    env.close()
                except Exception:  # the construction error is the one to report
                    pass
            raise
        self._setup(len(self.envs), layout, descriptions[0], copy)
        self._runners = [
            _EnvRunner(env, layout, self._buffers.row(e)) for e, env in enumerate(self.envs)
        ]
        self._closed = False

    def _reset_copies(self, seeds: list[int | None], options: dict | None) -> list[dict]:
        return [
            runner.reset(seed, options) for runner, seed in zip(self._runners, seeds, strict=True)
        ]

    def _step_copies(self, actions: np.ndarray) -> tuple[list[bool], list[dict], list]:
        reset, agent_infos, reset_infos = [], [], []
        for runner, action_row in zip(self._runners, actions, strict=True):
            done, infos, r_infos = runner.step(action_row)
            reset.append(done)
            agent_infos.append(infos)
            reset_infos.append(r_infos)
        return reset, agent_infos, reset_infos

    def close(self) -> None:
        """Close every copy (idempotent); re-raises the first error of an ``env.close()``."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        first_error: BaseException | None = None
        for env in self.envs:
            try:
                env.close()
            except Exception as exc:
                first_error = first_error or exc
        if first_error is not None:
            raise first_error


# --------------------------------------------------------------------------- subproc


class _RemoteTraceback(Exception):
    """Carries a worker's formatted traceback as the ``__cause__`` of a re-raised error."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text}"""'


def _error_message(exc: BaseException) -> tuple:
    """``("error", exc or None, type name, message, traceback text)``; ``exc`` only if it
    survives a pickle round trip."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        portable: BaseException | None = pickle.loads(pickle.dumps(exc))
    except Exception:
        portable = None
    return ("error", portable, type(exc).__qualname__, str(exc), text)


def _worker(index: int, payload: bytes, conn: Any, parent_conn: Any, state: bool = False) -> None:
    """Body of one worker process: build the copy, then serve reset/step/close."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and closes us
    if parent_conn is not None:
        parent_conn.close()
    env = None
    try:
        env = pickle.loads(payload)()
        description = _describe(env, f"env_fns[{index}]()")
        state_space = _state_space(env, f"env_fns[{index}]()") if state else None
        layout = _Layout(*description, state_space=state_space)
        buffers = _Buffers(layout, 1)
        runner = _EnvRunner(env, layout, buffers.row(0))
        conn.send(("ok", description, state_space))
    except Exception as exc:
        conn.send(_error_message(exc))
        if env is not None:
            try:
                env.close()
            except Exception:  # the construction error is the one to report
                pass
        conn.close()
        return
    raw = buffers.raw[0]
    try:
        while True:
            try:
                command, arg = conn.recv()
            except EOFError:  # the parent went away without close()
                break
            if command == "close":
                try:
                    env.close()
                    conn.send(("closed", None))
                except Exception as exc:
                    conn.send(("closed", _error_message(exc)))
                break
            try:
                if command == "step":
                    conn.send(("ok", runner.step(arg), raw))
                elif command == "reset":
                    conn.send(("ok", runner.reset(*arg), raw))
                else:
                    raise InvalidArgumentError(f"unknown worker command {command!r}")
            except Exception as exc:
                conn.send(_error_message(exc))
    finally:
        conn.close()


def _reraise(index: int, message: tuple) -> None:
    _, exc, type_name, text, tb = message
    if exc is None:  # the original could not be pickled: keep its type name and message
        exc = RuntimeError(f"{type_name}: {text}")
    if hasattr(exc, "add_note"):
        exc.add_note(f"(raised in worker {index} of SubprocParallelVectorEnv)")
    raise exc from _RemoteTraceback(tb)


class SubprocParallelVectorEnv(_ParallelVectorEnv):
    """``num_envs`` copies of a ParallelEnv, one worker process each, talking over pipes.

    Each ``env_fn`` is pickled with ``cloudpickle`` and called in its worker. Every
    ``reset``/``step`` sends one message to each worker and gets one back (the packed
    results). An exception inside a worker is re-raised here with its original type and
    message and the worker's traceback text as ``__cause__``; the copies are then out of step,
    so the next call must be ``reset()``. Workers ignore SIGINT, exit when told to by
    :meth:`close` (or when this process goes away) and are terminated if they do not within
    10 s.

    Args:
        env_fns: one callable per copy, each returning a ``pettingzoo.ParallelEnv`` with the
            same ``possible_agents`` and spaces.
        context: ``multiprocessing`` start method (``"fork"``, ``"spawn"``,
            ``"forkserver"``); ``None`` uses the platform default.
        copy: return fresh arrays (default) or views of internal buffers that the next
            call overwrites.
        state: add the copies' global ``state()`` to the infos (module docstring).

    Raises:
        InvalidArgumentError: ``env_fns`` empty, not callables or not picklable; unknown
            ``context``; a callable returned no ParallelEnv; copies differ in
            ``possible_agents`` or spaces; ``state=True`` for an env without ``state_space``.
        UnsupportedSpaceError: a space outside the heterogeneity rule (module docstring); a
            ``state_space`` that is not a ``Box``.
        Any exception an ``env_fn`` raises in its worker (same type and message).
    """

    def __init__(
        self,
        env_fns: Sequence[Callable[[], ParallelEnv]],
        *,
        context: str | None = None,
        copy: bool = True,
        state: bool = False,
    ) -> None:
        self._closed = True  # until construction succeeds: close()/__del__ are no-ops
        env_fns = _check_env_fns(env_fns)
        methods = mp.get_all_start_methods()
        if context is not None and context not in methods:
            raise InvalidArgumentError(f"context must be None or one of {methods}; got {context!r}")
        payloads = []
        for i, fn in enumerate(env_fns):
            try:
                payloads.append(cloudpickle.dumps(fn))
            except Exception as exc:
                raise InvalidArgumentError(
                    f"env_fns[{i}] could not be pickled with cloudpickle: {exc}"
                ) from exc
        # Any: typeshed types get_context(str) as BaseContext, which lacks the Process
        # attribute that every concrete context (fork, spawn, forkserver) has
        ctx: Any = mp.get_context(context)
        self._conns: list[Any] = []
        self._processes: list[Any] = []
        self._closed = False
        try:
            for i, payload in enumerate(payloads):
                parent_conn, child_conn = ctx.Pipe()
                process = ctx.Process(
                    target=_worker,
                    args=(i, payload, child_conn, parent_conn, bool(state)),
                    name=f"SubprocParallelVectorEnv-worker-{i}",
                    daemon=True,
                )
                process.start()
                child_conn.close()
                self._conns.append(parent_conn)
                self._processes.append(process)
            replies = self._receive_all()
            descriptions = [message[1] for message in replies]
            _check_same(descriptions, "env_fns")
            if state:
                _check_same_state([message[2] for message in replies], "env_fns")
            agents, obs_spaces, act_spaces = descriptions[0]
            layout = _Layout(agents, obs_spaces, act_spaces, state_space=replies[0][2])
            self._setup(len(env_fns), layout, descriptions[0], copy)
        except BaseException:
            self._shutdown(raise_errors=False)
            raise

    def _receive(self, e: int) -> tuple:
        try:
            return self._conns[e].recv()
        except (EOFError, OSError) as exc:
            self._broken = True
            code = self._processes[e].exitcode
            raise VectorEnvStateError(
                f"worker {e} of {type(self).__name__} died (exit code {code})"
            ) from exc

    def _receive_all(self) -> list[tuple]:
        """One reply per worker; re-raise the first worker error after reading them all."""
        self._broken = True  # until every reply is read, the pipes may hold stale replies
        replies = [self._receive(e) for e in range(len(self._conns))]
        self._broken = False
        for e, message in enumerate(replies):
            if message[0] == "error":
                _reraise(e, message)
        return replies

    def _exchange(self, commands: Sequence[tuple]) -> list[tuple]:
        """Send one command to every worker, then collect (and store) every reply."""
        if getattr(self, "_broken", False):
            raise VectorEnvStateError(
                f"{type(self).__name__} was interrupted while waiting for its workers; "
                "close() it and build a new one"
            )
        for e, (conn, command) in enumerate(zip(self._conns, commands, strict=True)):
            try:
                conn.send(command)
            except (BrokenPipeError, OSError) as exc:
                self._broken = True
                code = self._processes[e].exitcode
                raise VectorEnvStateError(
                    f"worker {e} of {type(self).__name__} died (exit code {code})"
                ) from exc
        replies = self._receive_all()
        raw = self._buffers.raw
        for e, message in enumerate(replies):
            raw[e] = message[2]
        return replies

    def _reset_copies(self, seeds: list[int | None], options: dict | None) -> list[dict]:
        replies = self._exchange([("reset", (seed, options)) for seed in seeds])
        return [message[1] for message in replies]

    def _step_copies(self, actions: np.ndarray) -> tuple[list[bool], list[dict], list]:
        replies = self._exchange([("step", action_row) for action_row in actions])
        results = [message[1] for message in replies]
        reset = [r[0] for r in results]
        return reset, [r[1] for r in results], [r[2] for r in results]

    def close(self) -> None:
        """Tell every worker to close its copy and exit; join them (idempotent).

        Raises:
            The first exception an ``env.close()`` raised in a worker (same type).
        """
        self._shutdown(raise_errors=True)

    def _shutdown(self, raise_errors: bool) -> None:
        if getattr(self, "_closed", True):
            return
        self._closed = True
        errors: list[tuple[int, tuple]] = []
        for conn, process in zip(self._conns, self._processes, strict=True):
            if process.is_alive():
                try:
                    conn.send(("close", None))
                except (BrokenPipeError, OSError):
                    pass
        for e, (conn, process) in enumerate(zip(self._conns, self._processes, strict=True)):
            try:
                # skip replies left over from an interrupted call until the close ack
                while process.is_alive() or conn.poll(0):
                    if not conn.poll(_CLOSE_TIMEOUT_S):
                        break
                    message = conn.recv()
                    if message[0] == "closed":
                        if message[1] is not None:
                            errors.append((e, message[1]))
                        break
            except (EOFError, OSError):
                pass
        for process in self._processes:
            process.join(_CLOSE_TIMEOUT_S)
            if process.is_alive():
                process.terminate()
                process.join(1.0)
        for conn in self._conns:
            conn.close()
        if raise_errors and errors:
            _reraise(*errors[0])


# --------------------------------------------------------------------------- factory


def make_vector_env(
    env_fn: Callable[[], ParallelEnv],
    num_envs: int,
    *,
    backend: str = "sync",
    context: str | None = None,
    copy: bool = True,
    state: bool = False,
) -> SyncParallelVectorEnv | SubprocParallelVectorEnv:
    """Build ``num_envs`` copies of ``env_fn()`` as one vector env.

    Args:
        env_fn: callable returning a ``pettingzoo.ParallelEnv`` (called once per copy, in its
            worker for ``backend="subproc"``).
        num_envs: number of copies, ``>= 1``.
        backend: ``"sync"`` (:class:`SyncParallelVectorEnv`) or ``"subproc"``
            (:class:`SubprocParallelVectorEnv`).
        context: ``multiprocessing`` start method, ``"subproc"`` only.
        copy: see :class:`SyncParallelVectorEnv`.
        state: add the copies' global ``state()`` to the infos (module docstring).

    Raises:
        InvalidArgumentError: ``env_fn`` not callable, ``num_envs < 1``, unknown ``backend``,
            ``context`` given with ``backend="sync"``, and everything the backend raises.
        UnsupportedSpaceError: see the module docstring.
    """
    if not callable(env_fn):
        raise InvalidArgumentError(
            f"env_fn must be a callable returning a ParallelEnv; got {env_fn!r}"
        )
    num_envs = _check_num_envs(num_envs)
    if backend not in BACKENDS:
        raise InvalidArgumentError(f"backend must be one of {BACKENDS}; got {backend!r}")
    env_fns = [env_fn] * num_envs
    if backend == "sync":
        if context is not None:
            raise InvalidArgumentError(
                f"context is only used by backend='subproc'; got context={context!r} with "
                "backend='sync'"
            )
        return SyncParallelVectorEnv(env_fns, copy=copy, state=state)
    return SubprocParallelVectorEnv(env_fns, context=context, copy=copy, state=state)
