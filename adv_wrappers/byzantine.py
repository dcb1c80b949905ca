"""Byzantine agent types (Li et al. (ICLR 2024), BARDec-POMDP, Sec. 2.2-2.3)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium
import numpy as np
from pettingzoo.utils.env import AgentID, ParallelEnv

from adv_wrappers.core import ActionThreatWrapper, check_env_kind
from adv_wrappers.errors import InvalidArgumentError, InvalidPriorError, UnsupportedSpaceError


def default_prior(n: int) -> dict[tuple[int, ...], float]:
    """Li et al. (ICLR 2024), App. C.2: p(theta = 0) = 0.5, p(theta = e_i) = 0.5 / n per agent i."""
    prior = {(0,) * n: 0.5}
    for i in range(n):
        prior[tuple(int(j == i) for j in range(n))] = 0.5 / n
    return prior


def check_prior(prior: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate a prior; return ``(types [m, n] int8, probs [m])``."""
    if not isinstance(prior, Mapping) or not prior:
        raise InvalidPriorError(
            "prior must be a non-empty dict mapping type vectors (tuples of n 0/1 entries, in "
            f"possible_agents order) to probabilities; got {prior!r}"
        )
    types, probs = [], []
    for theta, p in prior.items():
        # a string of 0/1 characters ("010") is the same vector, for JSON configurations
        vec = (
            np.array([int(c) if c in "01" else -1 for c in theta])
            if isinstance(theta, str)
            else np.asarray(theta)
        )
        if vec.shape != (n,) or not np.isin(vec, (0, 1)).all():
            raise InvalidPriorError(
                f"prior key {theta!r} is not a type vector: it must have exactly n={n} entries, "
                "each 0 (benign) or 1 (Byzantine)"
            )
        if vec.sum() == n:
            raise InvalidPriorError(
                f"prior key {theta!r} puts all n={n} agents under attack; at least one agent "
                "must stay benign (there would be nobody to defend)"
            )
        try:
            p = float(p)
        except (TypeError, ValueError):
            raise InvalidPriorError(f"prior[{theta!r}]={p!r} is not a number") from None
        if not np.isfinite(p) or p < 0:
            raise InvalidPriorError(f"prior[{theta!r}]={p!r} must be a finite probability >= 0")
        types.append(vec.astype(np.int8))
        probs.append(p)
    types_arr = np.stack(types)
    if len({t.tobytes() for t in types_arr}) != len(types_arr):
        raise InvalidPriorError("prior lists the same type vector twice")
    total = float(np.sum(probs))
    if abs(total - 1.0) > 1e-9:
        raise InvalidPriorError(f"prior probabilities sum to {total!r}, not 1")
    return types_arr, np.asarray(probs, dtype=np.float64)


class ByzantineWrapper(ActionThreatWrapper):
    """Nature draws a type vector theta in {0,1}^n each episode; Byzantine agents are attacked.

    Li et al. (ICLR 2024), "Byzantine Robust Cooperative MARL as a Bayesian Game", Sec. 2.2:
    at the start of an episode a type theta is drawn from a prior p(theta); if
    theta_i = 1 the action of agent i is replaced by the action of an adversary
    pi_hat_i(. | H_i, theta) for the whole episode; the shared reward is computed on the
    perturbed joint action and the adversary minimizes the benign agents' return. The
    defenders never see theta at test time; during training it is available as a label
    (EIR-MAPPO's belief network) and, for the "True Type" oracle, as an input.

    Args:
        env: any PettingZoo ParallelEnv (cooperative in the paper; general-sum works too).
        prior: dict mapping type vectors (tuples of n entries in 0/1, ordered like
            ``env.possible_agents``, or strings of n 0/1 characters such as ``"010"``, as
            JSON configurations write them) to probabilities summing to 1; any distribution,
            multi-adversary vectors included, as long as some agent stays benign.
            ``None``: the paper's p(theta = 0) = 0.5, p(theta = e_i) = 0.5 / n.
        adversary: ``None`` (exposed, ``f"{j}_adversary"``), ``"random"`` (the paper's
            "random agent" attack), a policy or a dict agent -> policy (embedded).
        reveal_types: append theta (float, n entries) to every observation (the "True
            Type" oracle); needs 1-D Box observations.
        adversary_observes: ``"agent"`` (default) or ``"state"``.
        reset options: ``reset(options={"theta": vector})`` forces theta for that episode
            (it must be in the prior's support).

    Slots and what agents see: a Byzantine agent's own action is never executed, so it
    leaves ``agents`` for the episode; its adversary (exposed) gets its observation (with
    theta appended if ``reveal_types``) and reward minus the mean reward of the benign
    agents (those with theta_i = 0).

    Infos: every outside agent's info has ``info["byzantine"]`` with ``"theta"`` (int8 array
    of n entries, possible_agents order, every step: the belief network's labels),
    ``"attacked"``, ``"victims"`` (the benign agents), ``"adversary_acted"`` and
    ``"executed_actions"``.

    Raises:
        EnvKindError: ``env`` is not a ParallelEnv (an AECEnv: convert it with
            ``pettingzoo.utils.conversions.aec_to_parallel``).
        InvalidPriorError: a prior that is not a dict, has a key that is not an n-vector
            of 0/1, puts all n agents under attack, has a negative/non-finite probability,
            repeats a vector, or does not sum to 1 (tolerance 1e-9).
        InvalidArgumentError: ``options["theta"]`` outside the prior's support; bad
            ``adversary`` or ``adversary_observes``.
        UnsupportedSpaceError: ``reveal_types=True`` with a non-Box or multi-dimensional
            observation space.
        AgentIDCollisionError, MissingActionError, InvalidActionError: as for every action
            threat (see :mod:`adv_wrappers.core`).

    Example:
        >>> from adv_envs import echo_v0
        >>> from adv_wrappers import byzantine_v0
        >>> env = byzantine_v0(echo_v0.parallel_env(n_agents=2), adversary="random")
        >>> obs, infos = env.reset(seed=0)
        >>> infos["agent_0"]["byzantine"]["theta"], env.agents
        (array([0, 1], dtype=int8), ['agent_0'])
        >>> obs, rewards, _, _, infos = env.step({"agent_0": 2})
        >>> obs["agent_0"], infos["agent_0"]["byzantine"]["executed_actions"]
        (array([2., 4.], dtype=float32), {'agent_1': np.int64(4)})

    Change logs:
        v0: initial release.
    """

    threat_name = "byzantine"

    def __init__(
        self,
        env: ParallelEnv,
        *,
        prior: Mapping[tuple[int, ...], float] | None = None,
        adversary: Any = None,
        reveal_types: bool = False,
        adversary_observes: str = "agent",
    ):
        check_env_kind(env, "byzantine_v0")
        possible = list(env.possible_agents)
        n = len(possible)
        self._types, self._probs = check_prior(default_prior(n) if prior is None else prior, n)
        self.prior = {
            tuple(int(x) for x in t): float(p)
            for t, p in zip(self._types, self._probs, strict=True)
        }
        self._cdf = np.cumsum(self._probs)  # inverse-CDF sampling of theta (fast at every reset)
        self.reveal_types = bool(reveal_types)
        self._theta = np.zeros(n, np.int8)
        if self.reveal_types:
            for a in possible:
                space = env.observation_space(a)
                if not isinstance(space, gymnasium.spaces.Box) or len(space.shape) != 1:
                    raise UnsupportedSpaceError(
                        f"reveal_types=True appends theta to observations and needs 1-D Box "
                        f"observation spaces; agent {a!r} has {space}"
                    )
        attackable = [a for i, a in enumerate(possible) if self._types[:, i].any()]
        super().__init__(
            env, attackable=attackable, adversary=adversary, adversary_observes=adversary_observes
        )
        self._transforms_obs = self.reveal_types

    def _agent_observation_space(self, agent: AgentID) -> gymnasium.spaces.Space:
        space = self.env.observation_space(agent)
        if not self.reveal_types:
            return space
        n = len(self._base_possible)
        return gymnasium.spaces.Box(
            np.concatenate([space.low, np.zeros(n, space.dtype)]),
            np.concatenate([space.high, np.ones(n, space.dtype)]),
            dtype=space.dtype,
        )

    def _transform_obs(self, agent: AgentID, obs: Any) -> Any:
        if not self.reveal_types:
            return obs
        return np.concatenate([obs, self._theta.astype(obs.dtype)])

    def _option_keys(self) -> tuple[str, ...]:
        return ("theta",)

    def _begin_episode(self, options: dict[str, Any]):
        if "theta" in options:
            raw = np.asarray(options["theta"])
            if raw.dtype.kind not in "biuf" or not np.isin(raw, (0, 1)).all():
                raise InvalidArgumentError(
                    f"options['theta']={options['theta']!r} must be a vector of 0/1 entries"
                )
            theta = raw.astype(np.int8)
            match: np.ndarray | list[int] = (
                np.flatnonzero((self._types == theta).all(axis=1))
                if theta.shape == self._types.shape[1:]
                else []
            )
            if len(match) == 0:
                raise InvalidArgumentError(
                    f"options['theta']={options['theta']!r} is not in the prior's support "
                    f"{[tuple(int(x) for x in t) for t in self._types]}"
                )
            self._theta = self._types[match[0]].copy()
        else:
            i = int(np.searchsorted(self._cdf, self.np_random.random(), side="right"))
            self._theta = self._types[min(i, len(self._types) - 1)].copy()
        attacked = tuple(
            a
            for a, t in zip(self._base_possible, self._theta, strict=True)
            if t and a in self.env.agents
        )
        victims = tuple(a for a in self.env.agents if a not in attacked)
        return attacked, victims

    def _ground_truth_extra(self) -> dict[str, Any]:
        return {"theta": self._theta.copy()}


byzantine_v0 = ByzantineWrapper
"""The versioned public name of :class:`ByzantineWrapper` (bump the suffix when results move)."""
