"""Private: one copy's runner, the base class both backends share (batching, validation,
bookkeeping) and the in-process backend :class:`SyncParallelVectorEnv`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from adv_wrappers.errors import (
    InvalidActionError,
    InvalidArgumentError,
    MissingActionError,
    UnknownAgentError,
    VectorEnvStateError,
)
from adv_wrappers.state_perturbation import perturber_id
from adv_wrappers.vector._layout import (
    Buffers,
    Layout,
    Row,
    check_same,
    check_same_state,
    describe,
    env_state_space,
    episode_options,
    per_copy_options,
)


class EnvRunner:
    """Steps one copy and writes its results into one :class:`Row` of buffers.

    Used directly by :class:`SyncParallelVectorEnv` (rows are views of the batch) and inside
    each worker of :class:`SubprocParallelVectorEnv` (rows of a one-copy buffer).
    """

    def __init__(self, env: ParallelEnv, layout: Layout, row: Row) -> None:
        self.env = env
        self.row = row
        self._index = layout.index
        self._num_agents = layout.num_agents
        self._obs_mode = layout.obs_mode
        self._obs_sizes = layout.obs_sizes.tolist()
        self._discrete = layout.action_discrete
        self._box_actions = layout.box_actions
        self._discrete_slots = layout.discrete_slots
        self._with_state = layout.state_space is not None
        self._acting: list[tuple[Any, int]] = []
        self._final_dirty = False
        self._options: dict | None = None
        self._episode = 0  # episodes since the last reset (for an episode schedule)

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
        self._options, self._episode = options, 0
        observations, infos = self.env.reset(seed=seed, options=episode_options(options, 0))
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

    def _actions(self, action_row: np.ndarray, acting: list[tuple[Any, int]]) -> dict:
        if self._discrete:
            values = action_row.tolist()
            return {agent: values[i] for agent, i in acting}
        actions: dict[Any, Any] = {}
        for agent, i in acting:
            if i in self._discrete_slots:  # a Discrete agent among Box ones: column 0
                actions[agent] = int(action_row[i, 0])
                continue
            size, shape, dtype = self._box_actions[i]
            a = action_row[i, :size]
            actions[agent] = a.reshape(shape).astype(dtype)  # astype copies
        return actions

    def perturb(self, action_row: np.ndarray) -> dict | None:
        """``state_perturbation_v0(timing="same_step")``'s first phase: the awaiting
        adversaries' actions go to ``env.perturb``, whose observations replace the row's
        (None, and nothing changes, where no observation awaits a perturbation)."""
        ids = set(self.env.awaiting_adversaries)
        if not ids:
            return None
        acting = [(agent, i) for agent, i in self._acting if agent in ids]
        observations, infos = self.env.perturb(self._actions(action_row, acting))
        self._write_obs(observations, self.row.obs, self.row.has_obs)
        return infos

    def step(self, action_row: np.ndarray) -> tuple[bool, dict, dict | None]:
        row, env = self.row, self.env
        actions = self._actions(action_row, self._acting)
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
        self._episode += 1
        observations, reset_infos = env.reset(
            seed=None, options=episode_options(self._options, self._episode)
        )
        self._write_obs(observations, row.obs, row.has_obs)
        self._update_alive()
        if self._with_state:
            row.state[...] = env.state()
        return True, infos, reset_infos


# --------------------------------------------------------------------------- base class


def check_num_envs(num_envs: Any) -> int:
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)):
        raise InvalidArgumentError(
            f"num_envs must be an int >= 1; got {num_envs!r} ({type(num_envs).__name__})"
        )
    if num_envs < 1:
        raise InvalidArgumentError(f"num_envs must be an int >= 1; got {num_envs}")
    return int(num_envs)


def check_env_fns(env_fns: Any) -> list[Callable[[], ParallelEnv]]:
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


class ParallelVectorEnv:
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
        layout: Layout,
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
        self._buffers = Buffers(layout, num_envs)
        self._acted = np.zeros((num_envs, layout.num_agents), dtype=np.bool_)
        self._actions_shape = (num_envs, layout.num_agents, *layout.action_shape)
        if layout.action_nvec is not None:  # Discrete actions (layout.action_discrete)
            self._action_low = layout.action_start
            self._action_high = layout.action_start + layout.action_nvec
        self._needs_reset = True
        # [A]: the exposed observation adversaries of state_perturbation_v0 (what perturb reads)
        names = {perturber_id(a) for a in self.agents}
        self._perturber_slots = np.array([a in names for a in self.agents], dtype=np.bool_)

    # -- subclass hooks
    def _perturb_copies(self, actions: np.ndarray) -> list[dict | None]:
        raise NotImplementedError

    def _reset_copies(self, seeds: list[int | None], options: list[Any]) -> list[dict]:
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
            options: passed to every copy's ``reset`` and reused by later auto-resets;
                ``options["episode_schedule"]`` (``{key: table}``, ``table[e][l]``) gives
                copy ``e``'s ``l``-th episode since this reset its own value of ``key``
                (repeating with the row's length), e.g. ART's planned victims and subsets.

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
        per_copy = per_copy_options(options, self.num_envs)
        self._needs_reset = True
        agent_infos = self._reset_copies(seeds, per_copy)
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

    def _check_actions(self, actions: Any, read: np.ndarray | None = None) -> np.ndarray:
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
        alive = self._buffers.alive if read is None else self._buffers.alive & read
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
            for i, (start, n) in layout.discrete_slots.items():
                values = actions[:, i, 0]
                bad = alive[:, i] & ~(
                    (values == np.round(values)) & (values >= start) & (values < start + n)
                )
                if bad.any():
                    e = int(np.argwhere(bad)[0, 0])
                    raise InvalidActionError(
                        f"actions[{e}, {i}, 0] = {values[e]} for agent {self.agents[i]!r} "
                        f"(Discrete({n}, start={start}), which must act) is not an integer "
                        f"in [{start}, {start + n})"
                    )
        return actions

    def _check_ready(self, method: str, actions: Any, read: np.ndarray | None = None) -> np.ndarray:
        """Open, reset and in step (not after a step or perturb that raised); the actions."""
        self._check_open(method)
        if self._needs_reset:
            raise VectorEnvStateError(
                f"{type(self).__name__}.{method}() called before reset() (or after a step or "
                "perturb that raised, which leaves the copies out of step); call reset() first"
            )
        return self._check_actions(actions, read)

    def perturb(self, actions: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """The first phase of a step of ``state_perturbation_v0(timing="same_step")`` copies.

        Every copy whose attacked agents await their perturbation gets the actions of their
        exposed adversaries (the other entries of ``actions`` are not read here; pass the same
        array, with every agent's action, to :meth:`step` next).

        Args:
            actions: as in :meth:`step`.

        Returns:
            ``(obs, infos)``: the observations of the last :meth:`reset`/:meth:`step` with the
            attacked agents' rows perturbed; ``infos["perturbed"]`` ``[E]`` (copies that
            perturbed) and ``infos["agent_infos"]`` (what each copy's ``perturb`` returned,
            ``None`` for the others).

        Raises:
            InvalidArgumentError, InvalidActionError, MissingActionError: as in :meth:`step`.
            CallOrderError: a copy's ``perturb`` called twice for one observation.
            AttributeError: copies without ``state_perturbation_v0(timing="same_step")``.
            VectorEnvStateError: called before ``reset()`` or after ``close()``.
        """
        # only the observation adversaries' entries are read (and checked) in this phase
        actions = self._check_ready("perturb", actions, self._perturber_slots)
        self._needs_reset = True  # a copy that raised leaves the batch out of step
        agent_infos = self._perturb_copies(actions)
        self._needs_reset = False
        infos = {
            "perturbed": np.array([i is not None for i in agent_infos], dtype=np.bool_),
            "agent_infos": agent_infos,
        }
        return self._out(self._buffers.obs), infos

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
        actions = self._check_ready("step", actions)
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


class SyncParallelVectorEnv(ParallelVectorEnv):
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
        env_fns = check_env_fns(env_fns)
        self.envs: list[ParallelEnv] = []
        try:
            for fn in env_fns:
                self.envs.append(fn())
            descriptions = [describe(env, f"env_fns[{i}]()") for i, env in enumerate(self.envs)]
            check_same(descriptions, "env_fns")
            state_space = None
            if state:
                state_spaces = [
                    env_state_space(e, f"env_fns[{i}]()") for i, e in enumerate(self.envs)
                ]
                check_same_state(state_spaces, "env_fns")
                state_space = state_spaces[0]
            layout = Layout(*descriptions[0], state_space=state_space)
        except BaseException:
            for env in self.envs:
                try:
                    env.close()
                except Exception:  # the construction error is the one to report
                    pass
            raise
        self._setup(len(self.envs), layout, descriptions[0], copy)
        self._runners = [
            EnvRunner(env, layout, self._buffers.row(e)) for e, env in enumerate(self.envs)
        ]
        self._closed = False

    def _reset_copies(self, seeds: list[int | None], options: list[Any]) -> list[dict]:
        return [
            runner.reset(seed, opts)
            for runner, seed, opts in zip(self._runners, seeds, options, strict=True)
        ]

    def _perturb_copies(self, actions: np.ndarray) -> list[dict | None]:
        return [
            runner.perturb(action_row)
            for runner, action_row in zip(self._runners, actions, strict=True)
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
