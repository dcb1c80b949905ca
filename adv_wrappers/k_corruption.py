"""k-of-n agent corruption (Nika et al. (TMLR 2024), Sec. 2.2 "Attack Model")."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from math import comb
from typing import Any

import numpy as np
from pettingzoo.utils.env import AgentID, ParallelEnv

from adv_wrappers.core import ActionThreatWrapper, check_agent, check_agents, check_env_kind
from adv_wrappers.errors import InvalidArgumentError

SUBSET_MODES = ("uniform", "exact")

_SIZE_CDF: dict[tuple[int, int], np.ndarray] = {}  # (candidates, k) -> CDF of |K| under "uniform"

SubsetSampler = Callable[[np.random.Generator, list[AgentID], "AgentID | None"], Sequence[AgentID]]


def check_k(k: Any, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise InvalidArgumentError(f"k must be an int in [0, n-1] = [0, {n - 1}], got {k!r}")
    if not 0 <= k < n:
        raise InvalidArgumentError(
            f"k={k} is not allowed: the attacker corrupts at most k < n agents, so k must be in "
            f"[0, {n - 1}] for this env with n={n} agents"
        )
    return int(k)


class KCorruptionEpisodes:
    """The episode-level logic of k-corruption, shared by the parallel and AEC wrappers.

    Validates ``k``, ``subset`` and ``victim`` (:meth:`_init_k_corruption`) and draws each
    episode's K and victims (:meth:`_begin_episode`). The host class provides ``env``
    (with ``agents`` after reset), ``np_random``, ``_base_possible`` and ``_attackable``.
    """

    threat_name = "k_corruption"
    # provided by the host class
    env: Any
    np_random: np.random.Generator
    _base_possible: list[AgentID]
    _attackable: list[AgentID]

    def _init_k_corruption(
        self,
        possible: list[AgentID],
        k: Any,
        subset: str | Sequence[AgentID] | SubsetSampler,
        victim: AgentID | None,
    ) -> list[AgentID]:
        """Validate and store ``k``, ``victim`` and ``subset``; return the attackable agents."""
        self.k = check_k(k, len(possible))
        self.victim = None if victim is None else check_agent(victim, "victim", possible)
        if isinstance(subset, str):
            if subset not in SUBSET_MODES:
                raise InvalidArgumentError(
                    f"subset={subset!r} is not allowed; use one of {SUBSET_MODES}, a list of "
                    "agent IDs or a callable sampler"
                )
        elif not callable(subset):
            subset = tuple(self._check_subset(subset, "subset", possible, self.victim))
        self.subset = subset
        if isinstance(subset, tuple):  # a fixed K: only its agents ever have adversaries
            return list(subset)
        return [a for a in possible if a != self.victim]

    def _check_subset(
        self, subset: Any, argument: str, possible: list[AgentID], victim: AgentID | None
    ) -> list[AgentID]:
        agents = check_agents(subset, argument, possible)
        if len(agents) > self.k:
            raise InvalidArgumentError(
                f"{argument}={agents} has {len(agents)} agents but at most k={self.k} may be "
                "corrupted"
            )
        if victim is not None and victim in agents:
            raise InvalidArgumentError(f"{argument}={agents} contains the victim {victim!r}")
        return agents

    def _option_keys(self) -> tuple[str, ...]:
        return ("attacked", "victim")

    def _begin_episode(
        self, options: dict[str, Any]
    ) -> tuple[tuple[AgentID, ...], tuple[AgentID, ...]]:
        possible = self._base_possible
        if "victim" in options:
            victim = options["victim"]
            victim = None if victim is None else check_agent(victim, "options['victim']", possible)
        else:
            victim = self.victim
        self._episode_victim = victim
        candidates = [a for a in self.env.agents if a != victim and a in self._attackable]
        attacked: Sequence[AgentID]
        if "attacked" in options:
            attacked = self._check_subset(
                options["attacked"], "options['attacked']", possible, victim
            )
        elif self.subset == "uniform":
            attacked = self._sample_uniform(candidates)
        elif self.subset == "exact":
            if len(candidates) < self.k:
                raise InvalidArgumentError(
                    f"subset='exact' needs k={self.k} candidates, but only {candidates} are present"
                )
            idx = self.np_random.permutation(len(candidates))[: self.k]
            attacked = [candidates[i] for i in idx]
        elif callable(self.subset):
            attacked = self._check_subset(
                self.subset(self.np_random, list(candidates), victim),
                "the subset sampler's output",
                possible,
                victim,
            )
        else:
            attacked = self._check_subset(self.subset, "subset", possible, victim)
        outside = [a for a in attacked if a not in self._attackable]
        if outside:
            raise InvalidArgumentError(
                f"the subset {list(attacked)} contains {outside}, which this wrapper cannot attack "
                f"(attackable agents: {self._attackable}, fixed by subset/victim at construction)"
            )
        order = {a: i for i, a in enumerate(possible)}
        attacked = tuple(sorted(attacked, key=order.__getitem__))
        if victim is not None:
            victims: tuple[AgentID, ...] = (victim,)
        else:
            victims = tuple(a for a in self.env.agents if a not in attacked)
        return attacked, victims

    def _sample_uniform(self, candidates: list[AgentID]) -> list[AgentID]:
        """A uniform draw among the non-empty subsets of size <= k of ``candidates``: the size
        m with probability C(c, m) / sum_j C(c, j), then a uniform subset of that size."""
        c = len(candidates)
        cumulative = _SIZE_CDF.get((c, self.k))
        if cumulative is None:
            counts = np.array([comb(c, m) for m in range(1, min(self.k, c) + 1)], np.float64)
            cumulative = _SIZE_CDF[(c, self.k)] = np.cumsum(counts) / counts.sum()
        if cumulative.size == 0:
            return []
        m = 1 + int(np.searchsorted(cumulative, self.np_random.random(), side="right"))
        idx = self.np_random.permutation(c)[:m]
        return [candidates[i] for i in idx]

    def _ground_truth_extra(self) -> dict[str, Any]:
        return {"victim": self._episode_victim, "k": self.k}


class KCorruptionWrapper(KCorruptionEpisodes, ActionThreatWrapper):
    """At most ``k`` of the ``n`` agents are taken over by an attacker in every episode.

    Nika et al. (TMLR 2024), "Defending Against Unknown Corrupted Agents", Sec. 2.2: at test
    time an attacker picks any subset K of at most k < n agents and plays them arbitrarily;
    for general-sum games it minimizes the return of a chosen victim i (K is a subset of
    N \\ {i}, the set N_i of ART's subset-selection distribution omega_i), for cooperative
    games the return of the benign team.

    Each episode K is drawn (with the wrapper's own RNG, seeded by ``reset(seed)``) by
    ``subset``; ``reset(options={"attacked": [...], "victim": ...})`` sets K and/or the
    victim for the episode that reset starts (a learned subset selector, like ART's omega,
    uses this), overriding ``subset``. The actions of the agents in K are those of their
    adversaries for the whole episode.

    Args:
        env: any PettingZoo ParallelEnv.
        k: the attacker's budget, an int with ``0 <= k < n`` (``n = len(possible_agents)``).
        subset: how K is drawn each episode. ``"uniform"``: every non-empty subset of size
            at most k of the candidates is equally likely (so the *sizes* are not uniform:
            P(|K| = m) is proportional to C(c, m) for c candidates); ``"exact"``: a uniform
            subset of size exactly k; a list of agent IDs: that fixed K every episode (the
            paper's Fixed-K baseline); or a callable ``subset(rng, candidates, victim)``
            returning agent IDs (validated every episode). Candidates are the agents
            present at reset other than the victim.
        victim: the agent whose return the adversaries minimize (general-sum), never
            corrupted; ``None``: the benign team, i.e. every agent not in K.
        adversary: ``None`` (exposed: adversary ``f"{j}_adversary"`` per corrupted agent
            ``j``), ``"random"``, a policy, or a dict agent ID -> policy (embedded).
        adversary_observes: ``"agent"`` (the corrupted agent's own observation, default) or
            ``"state"`` (the env's global ``state()``).

    Slots and what agents see: a corrupted agent's benign action is never executed, so it
    leaves ``agents`` for the episode; with the exposed slot its observation, flags and
    info go to its adversary, whose reward is minus the victim's reward (minus the mean
    reward of the benign team when ``victim=None``); with an embedded slot the policy
    receives the observation inside the wrapper.

    Infos: every outside agent's info has ``info["k_corruption"]`` with ``"attacked"``
    (tuple K), ``"victims"`` (tuple of agents whose reward the adversaries negate),
    ``"victim"`` (the victim argument in force: an ID or None), ``"k"``,
    ``"adversary_acted"`` (dict agent -> True for corrupted agents, empty at reset) and
    ``"executed_actions"`` (dict corrupted agent -> executed action).

    Raises:
        EnvKindError: ``env`` is not a ParallelEnv (for an AECEnv the message names
            :func:`~adv_wrappers.aec.k_corruption_aec_v0` and ``aec_to_parallel``).
        InvalidArgumentError: k not an int in [0, n-1]; unknown ``subset`` mode; a fixed
            subset larger than k or containing the victim; a sampler returning more than k
            agents, duplicates or the victim; ``reset`` options doing the same; fewer
            candidates than k for ``subset="exact"``; bad ``adversary`` or
            ``adversary_observes``.
        UnknownAgentError: agent IDs in ``subset``, ``victim``, options or a sampler's
            output that are not in ``possible_agents``.
        AgentIDCollisionError: an exposed adversary ID already exists in the env.
        MissingActionError: ``step`` without an action for a listed agent, or with one for
            an agent that is not listed.
        InvalidActionError: an embedded adversary returned an action outside the corrupted
            agent's action space (raised at that step).

    Example:
        >>> from adv_envs import echo_v0
        >>> from adv_wrappers import k_corruption_v0
        >>> env = k_corruption_v0(echo_v0.parallel_env(), k=1, victim="agent_0")
        >>> obs, infos = env.reset(seed=2)
        >>> infos["agent_0"]["k_corruption"]["attacked"], env.agents
        (('agent_1',), ['agent_0', 'agent_1_adversary', 'agent_2'])
        >>> obs, rewards, _, _, infos = env.step({"agent_0": 1, "agent_1_adversary": 2, "agent_2": 4})
        >>> obs["agent_0"], rewards
        (array([1., 2., 4.], dtype=float32), {'agent_0': 1.0, 'agent_2': 4.0, 'agent_1_adversary': -1.0})

    Change logs:
        v0: initial release.
    """

    def __init__(
        self,
        env: ParallelEnv,
        k: int,
        *,
        subset: str | Sequence[AgentID] | SubsetSampler = "uniform",
        victim: AgentID | None = None,
        adversary: Any = None,
        adversary_observes: str = "agent",
    ):
        check_env_kind(env, "k_corruption_v0", twin="k_corruption_aec_v0")
        attackable = self._init_k_corruption(list(env.possible_agents), k, subset, victim)
        super().__init__(
            env, attackable=attackable, adversary=adversary, adversary_observes=adversary_observes
        )


k_corruption_v0 = KCorruptionWrapper
"""The versioned public name of :class:`KCorruptionWrapper` (bump the suffix when results move)."""


def all_subsets(agents: Sequence[AgentID], k: int) -> list[tuple[AgentID, ...]]:
    """Every non-empty subset of size <= k of ``agents`` (the support of ``subset="uniform"``,
    and of ART's omega_i when ``agents`` excludes victim i), in a fixed order."""
    return [c for m in range(1, k + 1) for c in itertools.combinations(agents, m)]
