"""Private: :class:`BatchedActionThreat`, an action threat model (k-corruption, Byzantine,
partial control) over the arrays of a batched env, for :class:`BatchedVectorEnv`.

The threat's semantics are not written a second time here. Each copy has a *shadow*: a
shallow copy of the PettingZoo wrapper that the user configured, whose env is replaced by the
list of agents (every agent of a batched env is present at every step). At every reset of a
copy its shadow runs the wrapper's own episode code (``_split_options`` and
``_draw_episode``: the RNG seeded as the PettingZoo copy's is, the options, the draw of the
attacked agents and victims); at every step it flips the wrapper's own per-step coin
(``_adversary_acts``) where the wrapper has one. With the same seeds a copy therefore draws
exactly the attacked agents, types and coins that the PettingZoo wrapper of the sync backend
draws. What is vectorized is only the routing that follows from them, the same for every
action threat (:mod:`adv_wrappers.core`): which outside agents are listed, whose action is
executed, the adversaries' observations, flags and reward (minus the victims' mean reward).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from adv_wrappers.core import ActionThreatBase, ActionThreatWrapper
from adv_wrappers.errors import InvalidArgumentError
from adv_wrappers.vector._layout import episode_options


class _AgentsView:
    """What a copy's episode draw reads of the wrapped env: its agents."""

    def __init__(self, agents: list[Any]) -> None:
        self.agents = list(agents)
        self.possible_agents = list(agents)


class LazyCopies(Sequence):
    """Per-copy infos built when a copy's entry is read: entry ``e`` is ``build(e)`` (computed
    once), ``None`` for a copy the infos do not concern (the ``reset_infos`` of copies that
    did not reset). The batched path's ``agent_infos`` and ``reset_infos``: building every
    copy's dicts at every step would cost more than the step."""

    def __init__(self, length: int, build: Callable[[int], Any]) -> None:
        self._length = length
        self._build = build
        self._cache: dict[int, Any] = {}

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        e = int(index)
        if e < 0:
            e += len(self)
        if not 0 <= e < len(self):
            raise IndexError(f"copy {index} out of range for {len(self)} copies")
        if e not in self._cache:
            self._cache[e] = self._build(e)
        return self._cache[e]

    def __iter__(self) -> Iterator[Any]:
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        return f"[{', '.join(repr(self[i]) for i in range(min(len(self), 3)))}, ...]"


class BatchedActionThreat:
    """One action threat wrapper's per-copy episodes over a batched env (module docstring).

    Args:
        template: the PettingZoo wrapper (built on one PettingZoo copy of the env), whose
            configuration, spaces and episode code the batch uses.
        num_envs: the number of copies.
        agents: the outside agent axis (the template's ``possible_agents``).

    Raises:
        InvalidArgumentError: an embedded adversary or benign policy, or observations that
            the wrapper changes (Byzantine ``reveal_types``): these run only on the
            PettingZoo backends.
    """

    def __init__(self, template: ActionThreatWrapper, num_envs: int, agents: Sequence[Any]):
        name = type(template).__name__
        if not template.exposed:
            raise InvalidArgumentError(
                f"{name} with an embedded adversary is not on the batched path: the batched "
                "path plays exposed adversaries (adversary=None), trained as agents; run "
                "embedded ones on the sync or subproc backend"
            )
        if template._benign_policies:
            raise InvalidArgumentError(
                f"{name} with an embedded benign_policy is not on the batched path; run it on "
                "the sync or subproc backend"
            )
        if template._transforms_obs:
            raise InvalidArgumentError(
                f"{name} changes the observations (reveal_types=True), which the batched path "
                "does not do; run it on the sync or subproc backend"
            )
        self.threat_name = template.threat_name
        self.base = list(template._base_possible)
        self.n = len(self.base)
        index = {a: i for i, a in enumerate(agents)}
        if list(agents[: self.n]) != self.base:
            raise InvalidArgumentError(
                f"the outside agents {list(agents)} must start with the env's {self.base}"
            )
        self.num_agents = len(agents)
        attackable = list(template._attackable)
        self.attackable = np.array([self.base.index(a) for a in attackable], dtype=np.int64)
        self.adv_cols = np.array([index[template._adv_ids[a]] for a in attackable], np.int64)
        self.names = list(agents)
        self.adversary_observes = template.adversary_observes
        self._benign_outside = np.array(
            [a in attackable and template._benign_outside(a) for a in self.base], dtype=np.bool_
        )
        # a wrapper that keeps the default hook executes the adversary's action at every step
        self.has_coin = type(template)._adversary_acts is not ActionThreatBase._adversary_acts
        view = _AgentsView(self.base)
        self._shadows = []
        for _ in range(num_envs):
            shadow = copy.copy(template)
            shadow.env = view
            shadow._np_random = None
            self._shadows.append(shadow)
        shape = (num_envs, self.n)
        self.attacked = np.zeros(shape, dtype=np.bool_)
        self.victims = np.zeros(shape, dtype=np.bool_)
        self.hidden = np.zeros(shape, dtype=np.bool_)
        self._episodes: list[tuple[tuple, tuple, dict[str, Any]]] = [((), (), {})] * num_envs
        self._options: list[Any] = [None] * num_envs
        self._episode = [0] * num_envs
        self.option_keys = template._option_keys()

    # ------------------------------------------------------------------ episodes

    def split_options(
        self, seeds: Sequence[int | None], options: Sequence[Any]
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Seed every copy's RNG (copy ``e`` with ``seeds[e]``, as the sync backend seeds its
        wrappers) and split each copy's options (:func:`per_copy_options`: one per copy) into
        this wrapper's keys and the rest, for the env (the same for every copy)."""
        own, rests = [], []
        for shadow, seed, opts in zip(self._shadows, seeds, options, strict=True):
            mine, rest = shadow._split_options(seed, episode_options(opts, 0))
            own.append(mine)
            rests.append(rest)
        if any(rest != rests[0] for rest in rests):
            raise InvalidArgumentError(
                "the batched env takes one set of options for every copy; an episode schedule "
                f"may only set the threat wrapper's options {list(self.option_keys)}"
            )
        self._options = list(options)
        self._episode = [0] * len(self._shadows)
        return own, rests[0]

    def begin(self, copies: Sequence[int], own: Sequence[dict[str, Any]] | None = None) -> None:
        """Draw a new episode for ``copies`` (after :meth:`split_options`, or at an auto-reset
        with the options of the last reset, or the schedule's next entry, and the copies' RNGs
        continued)."""
        for k, e in enumerate(copies):
            shadow = self._shadows[e]
            if own is None:
                self._episode[e] += 1
                opts = episode_options(self._options[e], self._episode[e])
                mine, _ = shadow._split_options(None, opts)
            else:
                mine = own[k]
            shadow._draw_episode(mine)
            attacked, victims = shadow._attacked, shadow._victims
            self.attacked[e] = [a in attacked for a in self.base]
            self.victims[e] = [a in victims for a in self.base]
            self._episodes[e] = (attacked, victims, shadow._ground_truth_extra())
        rows = np.asarray(copies, dtype=np.int64)
        self.hidden[rows] = self.attacked[rows] & ~self._benign_outside

    def alive(self) -> np.ndarray:
        """``[E, A]``: the outside agents listed now."""
        out = np.zeros((len(self._shadows), self.num_agents), dtype=np.bool_)
        out[:, : self.n] = ~self.hidden
        out[:, self.adv_cols] = self.attacked[:, self.attackable]
        return out

    # ------------------------------------------------------------------ steps

    def route_actions(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The env's actions ``[E, n, ...]`` from the outside ones, and ``acted`` ``[E, n]``
        (the adversary's action executed: every attacked agent, or where its coin came up)."""
        if self.has_coin:
            acted = np.zeros_like(self.attacked)
            for e, j in np.argwhere(self.attacked):  # per copy, in the wrapper's agent order
                acted[e, j] = self._shadows[e]._adversary_acts(self.base[j])
        else:
            acted = self.attacked.copy()
        base = np.array(actions[:, : self.n])  # adversaries have their agent's action space
        for j, col in zip(self.attackable, self.adv_cols, strict=True):
            rows = acted[:, j]
            if rows.any():
                base[rows, j] = actions[rows, col]
        return base, acted

    def observations(
        self,
        obs: np.ndarray,
        state: np.ndarray | None,
        obs_shape: tuple[int, ...],
        obs_dtype: np.dtype,
    ) -> np.ndarray:
        """``[E, A, *obs_shape]``: the env's observations of listed agents, each exposed
        adversary's the attacked agent's (or the state), zeros for agents not listed."""
        e = obs.shape[0]
        out = np.zeros((e, self.num_agents, *obs_shape), dtype=obs_dtype)
        d = obs.shape[2]
        out[:, : self.n, :d] = obs
        out[:, : self.n][self.hidden] = 0
        if self.adversary_observes == "state":
            assert state is not None
            src = np.broadcast_to(state[:, None, :], (e, len(self.attackable), state.shape[1]))
        else:
            src = obs[:, self.attackable]
        on = self.attacked[:, self.attackable]
        out[:, self.adv_cols, : src.shape[2]] = np.where(on[..., None], src, 0)
        return out

    def flags(
        self, rewards: np.ndarray, terminations: np.ndarray, truncations: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Outside rewards and flags ``[E, A]``: an exposed adversary is paid minus the mean
        reward of its copy's victims and ends with the agent it controls."""
        e = rewards.shape[0]
        shown = ~self.hidden
        on = self.attacked[:, self.attackable]
        rew = np.zeros((e, self.num_agents), dtype=np.float32)
        rew[:, : self.n] = np.where(shown, rewards, 0)
        count = self.victims.sum(axis=1)
        total = np.where(self.victims, rewards.astype(np.float64), 0.0).sum(axis=1)
        adv = np.where(count > 0, -total / np.maximum(count, 1), 0.0)
        rew[:, self.adv_cols] = np.where(on, adv[:, None], 0)
        flags = []
        for flag in (terminations, truncations):
            f = np.zeros((e, self.num_agents), dtype=np.bool_)
            f[:, : self.n] = flag & shown
            f[:, self.adv_cols] = flag[:, self.attackable] & on
            flags.append(f)
        return rew, flags[0], flags[1]

    # ------------------------------------------------------------------ infos

    def snapshot(
        self,
        alive: np.ndarray,
        acted: np.ndarray | None = None,
        executed: np.ndarray | None = None,
        copies: np.ndarray | None = None,
        discrete: bool = True,
        action_sizes: Sequence[int] = (),
    ) -> LazyCopies:
        """The per-copy infos of the episodes in force now (``acted``/``executed``: this
        step's; ``copies``: the copies the infos exist for, ``None`` elsewhere)."""
        rows = {
            "episodes": list(self._episodes),
            "alive": alive.copy(),
            "acted": None if acted is None else acted.copy(),
            "executed": None if executed is None else executed.copy(),
            "copies": None if copies is None else set(np.flatnonzero(copies).tolist()),
            "discrete": discrete,
            "action_sizes": list(action_sizes),
        }
        return LazyCopies(len(self._shadows), lambda e: self._infos_of(e, rows))

    def _infos_of(self, e: int, rows: dict[str, Any]) -> dict[Any, Any] | None:
        if rows["copies"] is not None and e not in rows["copies"]:
            return None
        attacked, victims, extra = rows["episodes"][e]
        acted_flags: dict[Any, bool] = {}
        executed: dict[Any, Any] = {}
        if rows["acted"] is not None:
            for a in attacked:
                j = self.base.index(a)
                acted_flags[a] = bool(rows["acted"][e, j])
                value = rows["executed"][e, j]
                if rows["discrete"]:
                    executed[a] = int(value)
                else:
                    executed[a] = np.array(value[: rows["action_sizes"][j]])
        gt = {
            "attacked": attacked,
            "victims": victims,
            "adversary_acted": acted_flags,
            "executed_actions": executed,
        }
        gt.update(extra)
        listed = np.flatnonzero(rows["alive"][e]).tolist()
        return {self.names[i]: {self.threat_name: gt} for i in listed}
