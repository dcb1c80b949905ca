"""Private: :class:`BatchedStatePerturbation`, ``state_perturbation_v0`` over the arrays of a
batched env, for :class:`BatchedVectorEnv`.

The perturbation itself is the wrapper's: the same admissible set and maps
(:func:`~adv_wrappers.state_perturbation.to_ball`, ``noise``, ``distance``, the clip to the
observation bounds), applied to a whole batch at once; the exposed adversary's timing is the
wrapper's default (``timing="next_step"``: its action at a step perturbs the observation that
step returns; the first observation of an episode is true) or, with ``victim_policies``, the
paper's: the adversary's action perturbs the true observation it was shown and the victim
policy acts on the result inside the same step (how ``attack.py`` trains a fresh chi against
frozen defenders); a policy attack (chi_j, e.g. a trained adversary) sees each true
observation and perturbs it. Random noise is drawn for
the whole batch from one generator (seeded by ``reset(seed)``), so it has the wrapper's
distribution but not the sync backend's per-copy streams.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from adv_wrappers.core import seeded_rng
from adv_wrappers.errors import InvalidActionError, InvalidArgumentError
from adv_wrappers.state_perturbation import (
    StatePerturbationWrapper,
    distance,
    noise,
    to_ball,
)
from adv_wrappers.vector._batched_threat import LazyCopies


class BatchedStatePerturbation:
    """``state_perturbation_v0`` over a batch (module docstring).

    Args:
        template: the PettingZoo wrapper (built on one PettingZoo copy of the env), whose
            configuration and spaces the batch uses.
        num_envs: the number of copies.
        agents: the outside agent axis (the template's ``possible_agents``).

    Raises:
        InvalidArgumentError: a configuration that runs only on the PettingZoo backends:
            ``timing="same_step"``, a gradient attack, or a policy attack or victim policies
            that do not act on batches (no ``act_batch``, or recurrent).
    """

    threat_name = StatePerturbationWrapper.threat_name

    def __init__(self, template: StatePerturbationWrapper, num_envs: int, agents: Sequence[Any]):
        self.victim_policies: dict[Any, Any] = {
            a: slot.policy for a, slot in template._victim_slots.items()
        }
        for a, policy in self.victim_policies.items():
            if not callable(getattr(policy, "act_batch", None)) or getattr(
                policy, "recurrent", False
            ):
                raise InvalidArgumentError(
                    f"victim_policies[{a!r}] = {policy!r}: the batched path runs feed-forward "
                    "checkpoint policies (load_policy: act_batch) as victims; run other "
                    "policies on the sync or subproc backend"
                )
        if template.same_step:
            raise InvalidArgumentError(
                'state_perturbation_v0(timing="same_step") is not on the batched path; run it '
                "on the sync or subproc backend"
            )
        attack = template.attack
        self.kind = attack if isinstance(attack, str) else None
        self.policies: list[Any] = []
        if template._is_policy:
            self.policies = [template._attack_policies[a] for a in template.attacked]
            if not all(callable(getattr(p, "act_batch", None)) for p in self.policies):
                raise InvalidArgumentError(
                    "state_perturbation_v0's policy attack runs on the batched path with "
                    "checkpoint policies (load_policy: act_batch); run other policies on the "
                    "sync or subproc backend"
                )
        elif attack is not None and self.kind is None:
            raise InvalidArgumentError(
                "state_perturbation_v0 with a gradient attack is not on the batched path; run "
                "it on the sync or subproc backend"
            )
        self.epsilon, self.norm = template.epsilon, template.norm
        self.exposed = template.exposed
        self.adversary_observes = template.adversary_observes
        self.base = list(template._base_possible)
        self.n = len(self.base)
        index = {a: i for i, a in enumerate(agents)}
        # the env's agents that are outside (not victims acting inside), and their columns
        self.shown = np.array([i for i, a in enumerate(self.base) if a in index], np.int64)
        self.shown_cols = np.array([index[self.base[i]] for i in self.shown], np.int64)
        self.num_agents = len(agents)
        self.num_envs = num_envs
        self.attacked = list(template.attacked)
        self.cols = np.array([self.base.index(a) for a in self.attacked], dtype=np.int64)
        self.sizes = [int(template._bounds[a][2]) for a in self.attacked]
        self.shapes = [template.env.observation_space(a).shape for a in self.attacked]
        self.bounds = [
            (template._bounds[a][0].reshape(-1), template._bounds[a][1].reshape(-1))
            if template._bounded[a]
            else None
            for a in self.attacked
        ]
        # attacked agents with a victim policy: perturbed with the adversary's action of the
        # step and acting inside on the result (the paper's chi(. | s) timing)
        self.victim_k = [k for k, a in enumerate(self.attacked) if a in self.victim_policies]
        self.perturbed_k = [k for k in range(len(self.attacked)) if k not in self.victim_k]
        self._last_true: np.ndarray | None = None
        self._victim_record: dict[str, dict[int, np.ndarray]] = {"obs": {}, "norms": {}}
        self.adv_cols = (
            np.array([index[template._adv_ids[a]] for a in self.attacked], dtype=np.int64)
            if self.exposed
            else np.zeros(0, dtype=np.int64)
        )
        self.names = list(agents)
        self._rng = seeded_rng(None, type(self).__name__)

    # ------------------------------------------------------------------ episodes

    def split_options(
        self, seeds: Sequence[int | None], options: Sequence[Any]
    ) -> tuple[None, dict[str, Any] | None]:
        """Seed the noise generator (from copy 0's seed: the reset's ``seed``); every option
        goes to the env (the wrapper has none of its own)."""
        if seeds and seeds[0] is not None:
            self._rng = seeded_rng(int(seeds[0]), type(self).__name__)
        return None, options[0]

    def begin(self, copies: Sequence[int], own: Any = None) -> None:
        """A new episode for ``copies``: the policy attacks' ``reset()`` (a no-op for the
        feed-forward checkpoint policies the batched path runs)."""

    def alive(self) -> np.ndarray:
        """``[E, A]``: every agent and adversary acts at every step of a batched env."""
        return np.ones((self.num_envs, self.num_agents), dtype=np.bool_)

    # ------------------------------------------------------------------ steps

    def route_actions(
        self, actions: np.ndarray, discrete: bool, action_dim: int
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The env's actions and the exposed adversaries' ``u`` ``[E, m, max d]`` (``None``
        without exposed adversaries), checked as the wrapper checks them."""
        if not self.exposed:
            return actions, None
        shape = (actions.shape[0], self.n) if discrete else (actions.shape[0], self.n, action_dim)
        base = np.zeros(shape, dtype=np.int64 if discrete else np.float32)
        if discrete:
            base[:, self.shown] = np.rint(actions[:, self.shown_cols, 0]).astype(np.int64)
        else:
            base[:, self.shown] = actions[:, self.shown_cols, :action_dim]
        # in the adversaries' action dtype (float32), as the wrapper receives them
        u = np.asarray(actions[:, self.adv_cols]).astype(np.float32)
        for k, (a, d) in enumerate(zip(self.attacked, self.sizes, strict=True)):
            bad = ~(np.abs(u[:, k, :d]) <= 1.0).all(axis=1)  # also NaN
            if bad.any():
                e = int(np.flatnonzero(bad)[0])
                raise InvalidActionError(
                    f"the observation adversary of agent {a!r} gave action {u[e, k, :d]!r} in "
                    f"copy {e}; it must be {d} finite numbers in [-1, 1]"
                )
        self._victims_act(base, u, discrete)
        return base, u

    def remember(self, obs: np.ndarray) -> None:
        """The env's (true) observations ``[E, n, D]`` the victims act on at the next step."""
        self._last_true = obs.copy() if self.victim_k else None

    def _victims_act(self, base: np.ndarray, u: np.ndarray, discrete: bool) -> None:
        """Each victim's observation, perturbed with this step's adversary action, and its
        policy's action on it, written into ``base``; what the infos report is kept."""
        self._victim_record = {"obs": {}, "norms": {}}
        if not self.victim_k:
            return
        assert self._last_true is not None
        for k in self.victim_k:
            col, d = self.cols[k], self.sizes[k]
            true = self._last_true[:, col, :d]
            perturbed = true + to_ball(u[:, k, :d], self.epsilon, self.norm).astype(true.dtype)
            bound = self.bounds[k]
            if bound is not None:
                np.clip(perturbed, bound[0], bound[1], out=perturbed)
            act = np.asarray(self.victim_policies[self.attacked[k]].act_batch(perturbed))
            if discrete:
                base[:, col] = act.reshape(-1)
            else:
                act = act.reshape(act.shape[0], -1)
                base[:, col, : act.shape[1]] = act
            self._victim_record["obs"][k] = perturbed
            self._victim_record["norms"][k] = distance(perturbed, true, self.norm)

    def perturb(
        self,
        obs: np.ndarray,
        state: np.ndarray | None,
        u: np.ndarray | None,
        rows: np.ndarray,
    ) -> dict[str, Any]:
        """Perturb the attacked agents' rows ``rows`` of ``obs`` ``[E, n, D]`` in place (``u``:
        the exposed adversaries' actions, ``None`` for an episode's first observation);
        return what the infos report: true observations, distances and adversary actions."""
        true = obs[:, self.cols].copy()
        norms = np.zeros((self.num_envs, len(self.cols)), dtype=np.float64)
        used = None
        if self.policies or u is not None:
            used = np.zeros((self.num_envs, len(self.cols), max(self.sizes)), dtype=np.float32)
        count = int(rows.sum())
        for k in self.perturbed_k:  # a victim's observation is perturbed when it acts
            col, d = self.cols[k], self.sizes[k]
            if count == 0:
                break
            o = obs[rows, col, :d]
            if self.kind is not None:
                delta = noise(self.kind, self._rng, self.epsilon, self.norm, (count, d))
            elif self.policies:
                if self.adversary_observes == "state":
                    assert state is not None
                    seen = state[rows]
                else:
                    seen = o
                act = np.asarray(self.policies[k].act_batch(seen)).reshape(count, -1)
                if act.shape[1] != d or not (np.abs(act) <= 1.0).all():
                    raise InvalidActionError(
                        f"the observation adversary of agent {self.attacked[k]!r} gave actions "
                        f"outside [-1, 1]^{d}"
                    )
                assert used is not None
                used[rows, k, :d] = act
                delta = to_ball(act, self.epsilon, self.norm)
            elif u is not None:
                assert used is not None
                used[rows, k, :d] = u[rows, k, :d]
                delta = to_ball(u[rows, k, :d], self.epsilon, self.norm)
            else:  # exposed, an episode's first observation: true
                continue
            perturbed = o + delta.astype(o.dtype, copy=False)
            bound = self.bounds[k]
            if bound is not None:
                np.clip(perturbed, bound[0], bound[1], out=perturbed)
            norms[rows, k] = distance(perturbed, o, self.norm)
            obs[rows, col, :d] = perturbed
        return {"true": true, "norms": norms, "u": used, "rows": rows.copy()}

    def observations(
        self,
        obs: np.ndarray,
        true: np.ndarray,
        state: np.ndarray | None,
        obs_shape: tuple[int, ...],
        obs_dtype: np.dtype,
    ) -> np.ndarray:
        """``[E, A, *obs_shape]``: the (perturbed) observations, and each exposed adversary's
        its agent's true one (or the state)."""
        e = obs.shape[0]
        out = np.zeros((e, self.num_agents, *obs_shape), dtype=obs_dtype)
        out[:, self.shown_cols, : obs.shape[2]] = obs[:, self.shown]
        if self.exposed:
            if self.adversary_observes == "state":
                assert state is not None
                out[:, self.adv_cols, : state.shape[1]] = state[:, None, :]
            else:
                out[:, self.adv_cols, : true.shape[2]] = true
        return out

    def flags(
        self, rewards: np.ndarray, terminations: np.ndarray, truncations: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Outside rewards and flags: an exposed adversary is paid minus its agent's reward
        and ends with it."""
        e = rewards.shape[0]
        rew = np.zeros((e, self.num_agents), dtype=np.float32)
        rew[:, self.shown_cols] = rewards[:, self.shown]
        if self.exposed:
            rew[:, self.adv_cols] = -rewards[:, self.cols]
        flags = []
        for flag in (terminations, truncations):
            f = np.zeros((e, self.num_agents), dtype=np.bool_)
            f[:, self.shown_cols] = flag[:, self.shown]
            if self.exposed:
                f[:, self.adv_cols] = flag[:, self.cols]
            flags.append(f)
        return rew, flags[0], flags[1]

    # ------------------------------------------------------------------ infos

    def snapshot(
        self,
        alive: np.ndarray,
        record: dict[str, Any],
        copies=None,
        rewards: np.ndarray | None = None,
    ) -> LazyCopies:
        """The per-copy infos (``record``: what :meth:`perturb` returned; ``copies``: the
        copies the infos exist for, ``None`` elsewhere; ``rewards``: the env's rewards of a
        step, whose victims' entries the infos report)."""
        rows = {
            "alive": alive.copy(),
            "record": record,
            "copies": None if copies is None else set(np.flatnonzero(copies).tolist()),
            "victims": None if rewards is None else (dict(self._victim_record), rewards.copy()),
        }
        return LazyCopies(self.num_envs, lambda e: self._infos_of(e, rows))

    def _infos_of(self, e: int, rows: dict[str, Any]) -> dict[Any, Any] | None:
        if rows["copies"] is not None and e not in rows["copies"]:
            return None
        record = rows["record"]
        true_obs, norms, actions = {}, {}, {}
        for k, (a, d, shape) in enumerate(zip(self.attacked, self.sizes, self.shapes, strict=True)):
            true_obs[a] = record["true"][e, k, :d].reshape(shape)
            if k in self.victim_k:
                continue
            norms[a] = float(record["norms"][e, k])
            if record["u"] is not None and record["rows"][e]:
                actions[a] = record["u"][e, k, :d].copy()
        gt: dict[str, Any] = {
            "attacked": tuple(self.attacked),
            "epsilon": self.epsilon,
            "norm": self.norm,
            "true_obs": true_obs,
            "perturbation_norm": norms,
            "adversary_actions": actions,
        }
        if self.victim_k:
            seen: dict[Any, Any] = {}
            seen_norms: dict[Any, float] = {}
            paid: dict[Any, float] = {}
            if rows["victims"] is not None:
                victim_record, rewards = rows["victims"]
                for k in self.victim_k:
                    a = self.attacked[k]
                    seen[a] = victim_record["obs"][k][e].reshape(self.shapes[k])
                    seen_norms[a] = float(victim_record["norms"][k][e])
                    paid[a] = float(rewards[e, self.cols[k]])
            gt.update(victim_obs=seen, victim_perturbation_norm=seen_norms, victim_rewards=paid)
        return {
            self.names[i]: {self.threat_name: gt} for i in np.flatnonzero(rows["alive"][e]).tolist()
        }
