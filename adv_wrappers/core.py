"""Machinery shared by the action threat models (k-corruption, Byzantine, partial control).

An *action threat* decides, once per episode, a set K of attacked agents and, every step,
whether the adversary's action replaces the benign one for each attacked agent. Who plays
the adversary is the *adversary slot*:

* exposed (``adversary=None``): the adversary of attacked agent ``j`` is an agent of the
  wrapped env with ID ``f"{j}_adversary"``, the same action space as ``j``, ``j``'s
  observation (or the global ``state()`` with ``adversary_observes="state"``), and reward
  minus the victims' reward (zero-sum). It is in ``agents`` only in episodes where ``j`` is
  attacked, and terminates/truncates when ``j`` does.
* embedded (``"random"``, a policy, or a dict agent -> policy): the adversary acts inside
  the wrapper and never appears outside.

An agent is in the outside ``agents`` list exactly when an outside action for it can be
executed: an attacked agent whose benign action never executes (k-corruption, Byzantine)
leaves the list for that episode, and what it would have seen goes to its adversary.

Ground truth for trainers and evaluation goes into every outside agent's info under the
wrapper's ``threat_name`` key (see each wrapper's docstring); nobody needs to reach into
wrapper internals.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import gymnasium
import numpy as np
from pettingzoo.utils.env import ActionType, AECEnv, AgentID, ObsType, ParallelEnv
from pettingzoo.utils.wrappers import BaseParallelWrapper
from typing_extensions import override

from adv_wrappers.errors import (
    AgentIDCollisionError,
    EnvKindError,
    InvalidArgumentError,
    MissingActionError,
    UnknownAgentError,
)
from adv_wrappers.policies import PolicySlot, resolve_policies

ADVERSARY_OBSERVES = ("agent", "state")


def adversary_id(agent: AgentID) -> str:
    """The stable ID of the exposed adversary that controls ``agent``: ``f"{agent}_adversary"``."""
    return f"{agent}_adversary"


def check_epsilon(value: Any, argument: str = "epsilon", *, upper: float | None = 1.0) -> float:
    """A finite float in ``[0, upper]`` (``upper=None``: ``[0, inf)``), else InvalidArgumentError."""
    try:
        eps = float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            f"{argument} must be a real number, got {type(value).__name__} {value!r}"
        ) from None
    if (
        isinstance(value, bool)
        or not np.isfinite(eps)
        or eps < 0
        or (upper is not None and eps > upper)
    ):
        allowed = f"[0, {upper}]" if upper is not None else "[0, inf)"
        raise InvalidArgumentError(
            f"{argument}={value!r} is not allowed: it must be finite and in {allowed}"
        )
    return eps


def check_agents(agents: Any, argument: str, possible_agents: list[AgentID]) -> list[AgentID]:
    """A list of distinct known agent IDs (a single ID is not accepted: wrap it in a list)."""
    if isinstance(agents, (str, bytes)) or not hasattr(agents, "__iter__"):
        raise InvalidArgumentError(
            f"{argument} must be a list of agent IDs from {possible_agents}, got {agents!r}"
        )
    agents = list(agents)
    unknown = [a for a in agents if a not in possible_agents]
    if unknown:
        raise UnknownAgentError(
            f"{argument} has unknown agent IDs {unknown}; allowed: {possible_agents}"
        )
    if len(set(agents)) != len(agents):
        raise InvalidArgumentError(f"{argument} lists an agent more than once: {agents}")
    return agents


def check_agent(agent: Any, argument: str, possible_agents: list[AgentID]) -> AgentID:
    if agent not in possible_agents:
        raise UnknownAgentError(
            f"{argument}={agent!r} is not an agent of the env; allowed: {possible_agents}"
        )
    return agent


def check_action_keys(
    actions: Mapping[AgentID, Any], agents: list[AgentID], agent_set: set
) -> None:
    """``step`` needs exactly one action per listed agent (cheap when it has them)."""
    if actions.keys() != agent_set:
        missing = [a for a in agents if a not in actions]
        extra = [a for a in actions if a not in agent_set]
        raise MissingActionError(
            f"step() needs exactly one action per agent in env.agents={agents}; "
            f"missing: {missing}, not acting: {extra}"
        )


def seeded_rng(seed: int | None, salt: str) -> np.random.Generator:
    """The wrapper's own RNG: seeded from ``(seed, crc32(salt))`` so that two wrappers reset with
    the same seed draw independent streams, and unseeded from OS entropy."""
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidArgumentError(f"seed must be a non-negative int or None, got {seed!r}")
    return np.random.default_rng([int(seed), zlib.crc32(salt.encode())])


def check_adversary_observes(value: Any, env: Any) -> str:
    """``"agent"`` or ``"state"`` (the latter only for envs with ``state()``/``state_space``)."""
    if value not in ADVERSARY_OBSERVES:
        raise InvalidArgumentError(
            f"adversary_observes={value!r} is not allowed; use one of {ADVERSARY_OBSERVES}"
        )
    if value == "state" and not hasattr(env, "state_space"):
        raise InvalidArgumentError(
            f"adversary_observes='state' needs an env with state() and state_space; {env} has none"
        )
    return value


def _is_aec(env: Any) -> bool:
    return isinstance(env, AECEnv) or (hasattr(env, "agent_selection") and hasattr(env, "last"))


def _is_parallel(env: Any) -> bool:
    """A ``ParallelEnv``, or an object with its interface that is not an AEC env."""
    if isinstance(env, ParallelEnv):
        return True
    return (
        not _is_aec(env)
        and hasattr(env, "possible_agents")
        and all(callable(getattr(env, m, None)) for m in ("reset", "step", "action_space"))
    )


def check_env_kind(env: Any, factory: str, kind: str = "parallel", twin: str | None = None) -> None:
    """Check, at construction, that ``factory`` was given the kind of env it wraps.

    Args:
        env: what the factory was given.
        factory: the factory's public name (``"k_corruption_v0"``), for the message.
        kind: ``"parallel"`` (the factory takes a ``ParallelEnv``) or ``"aec"`` (an
            ``AECEnv``).
        twin: the factory for the other kind (``"k_corruption_aec_v0"``), if there is one.

    Raises:
        EnvKindError: ``env`` is an AEC env where a parallel one is needed or the reverse
            (the message names ``twin`` and PettingZoo's conversion), or not a PettingZoo
            env at all (a single-agent ``gymnasium.Env``, an env constructor that was not
            called, ...).
    """
    if (kind == "parallel" and _is_parallel(env)) or (kind == "aec" and _is_aec(env)):
        return
    takes = "a ParallelEnv" if kind == "parallel" else "an AECEnv"
    got = type(env).__name__
    if kind == "parallel" and _is_aec(env):
        use = f"use {twin}, or convert it with " if twin else "convert it with "
        raise EnvKindError(
            f"{factory} takes a ParallelEnv; got the AECEnv {got}. For an AECEnv {use}"
            "pettingzoo.utils.conversions.aec_to_parallel(env)"
        )
    if kind == "aec" and _is_parallel(env):
        use = f"use {twin}, or convert it with " if twin else "convert it with "
        raise EnvKindError(
            f"{factory} takes an AECEnv; got the ParallelEnv {got}. For a ParallelEnv {use}"
            "pettingzoo.utils.conversions.parallel_to_aec(env)"
        )
    if isinstance(env, gymnasium.Env):
        hint = "a single-agent gymnasium.Env"
    elif isinstance(env, type) or callable(env):
        hint = f"{getattr(env, '__name__', got)!r}, which builds an env: call it first"
    else:
        hint = f"a {got}"
    raise EnvKindError(f"{factory} takes {takes} (a PettingZoo env); got {hint}")


class OwnRNG:
    """A wrapper's own RNG, ``np_random`` (a mixin placed before the PettingZoo base class).

    :meth:`_seed_rng`, called at every ``reset``, re-seeds it with :func:`seeded_rng` when
    given a seed; the first ``reset()`` without a seed draws it from OS entropy and later
    ones continue it. Read before any reset, it is drawn from OS entropy then (like
    Gymnasium's ``Env.np_random``).
    """

    _np_random: np.random.Generator | None = None

    @property
    def np_random(self) -> np.random.Generator:
        if self._np_random is None:
            self._np_random = np.random.default_rng()
        return self._np_random

    @np_random.setter
    def np_random(self, value: np.random.Generator) -> None:
        self._np_random = value

    def _seed_rng(self, seed: int | None) -> None:
        """Re-seed from ``seed`` (salted with the class name); without one, keep the stream."""
        if seed is not None or self._np_random is None:
            self._np_random = seeded_rng(seed, type(self).__name__)


class ActionThreatBase(OwnRNG):
    """What the parallel and the AEC action threats share (a mixin placed before the
    PettingZoo base class): the adversary slots, the spaces, the subclass hooks, the map from
    a base agent to the outside IDs that stand for it, and the adversary's reward.

    ``_init_slots`` sets ``adversary_observes``, ``exposed``, the embedded policies, the
    exposed adversary IDs (``_adv_ids``: agent -> ID, ``_adv_to_agent``: ID -> agent),
    ``possible_agents`` and the per-episode state.
    """

    threat_name: str = "action_threat"
    env: Any
    """The wrapped env (set by the PettingZoo base class's ``__init__``)."""

    def _init_slots(
        self,
        env: Any,
        attackable: list[AgentID],
        adversary: Any,
        adversary_observes: str,
        benign_policies: dict[AgentID, Any] | None,
    ) -> None:
        self._base_possible = list(env.possible_agents)
        self.adversary_observes = check_adversary_observes(adversary_observes, env)
        self._attackable = list(attackable)
        self._adversary_policies = resolve_policies(
            adversary, "adversary", self._attackable, self._base_possible
        )
        self.exposed = self._adversary_policies is None
        self._benign_policies = dict(benign_policies or {})
        self._adv_ids = {a: adversary_id(a) for a in self._attackable}
        self._adv_to_agent: dict[AgentID, AgentID] = {}
        self.possible_agents = list(self._base_possible)
        if self.exposed:
            clash = [i for i in self._adv_ids.values() if i in self._base_possible]
            if clash:
                raise AgentIDCollisionError(
                    f"the exposed adversary IDs {clash} already exist in the wrapped env "
                    "(is the same threat model applied twice?)"
                )
            self._adv_to_agent = {v: k for k, v in self._adv_ids.items()}
            self.possible_agents += list(self._adv_ids.values())
        self._obs_spaces: dict[AgentID, gymnasium.spaces.Space] = {}
        self._act_spaces: dict[AgentID, gymnasium.spaces.Space] = {}
        self._np_random = None
        self._attacked: tuple[AgentID, ...] = ()
        self._attacked_set: frozenset[AgentID] = frozenset()
        self._victims: tuple[AgentID, ...] = ()
        self._adv_slots: dict[AgentID, PolicySlot] = {}
        self._benign_slots: dict[AgentID, PolicySlot] = {}
        self.agents: list[AgentID] = []

    # ------------------------------------------------------------------ spaces
    def observation_space(self, agent: AgentID) -> gymnasium.spaces.Space:
        if agent not in self._obs_spaces:
            base = self._adv_to_agent.get(agent)
            if base is None:
                space = self._agent_observation_space(agent)
            elif self.adversary_observes == "state":
                space = self.env.state_space
            else:
                space = self.observation_space(base)
            self._obs_spaces[agent] = space
        return self._obs_spaces[agent]

    def _agent_observation_space(self, agent: AgentID) -> gymnasium.spaces.Space:
        return self.env.observation_space(agent)

    def action_space(self, agent: AgentID) -> gymnasium.spaces.Space:
        if agent not in self._act_spaces:
            self._act_spaces[agent] = self.env.action_space(self._adv_to_agent.get(agent, agent))
        return self._act_spaces[agent]

    # ------------------------------------------------------------------ hooks
    def _begin_episode(
        self, options: dict[str, Any]
    ) -> tuple[tuple[AgentID, ...], tuple[AgentID, ...]]:
        """Return ``(attacked, victims)`` for the new episode; may read keys of ``options``."""
        raise NotImplementedError

    def _option_keys(self) -> tuple[str, ...]:
        """The ``reset`` option keys this wrapper consumes (the rest go to the wrapped env)."""
        return ()

    def _adversary_acts(self, agent: AgentID) -> bool:
        """Whether the adversary's action is executed for attacked ``agent`` this step/turn."""
        return True

    def _benign_outside(self, agent: AgentID) -> bool:
        """Whether an attacked agent's benign action comes from outside (it stays listed)."""
        return False

    def _ground_truth_extra(self) -> dict[str, Any]:
        return {}

    # ------------------------------------------------------------------ shared logic
    def _new_episode(self, seed: int | None, options: Any) -> Any:
        """Seed the RNG (re-seeded only by a seed), pass the options this wrapper does not
        consume on to the wrapped env's ``reset``, draw the episode's attacked agents and
        victims, and set up the embedded policies. Returns what the env's reset returned."""
        own, rest = self._split_options(seed, options)
        result = self.env.reset(seed=seed, options=rest)
        self._draw_episode(own)
        return result

    def _split_options(
        self, seed: int | None, options: Any
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The first half of :meth:`_new_episode`: seed the RNG and split ``options`` into
        this wrapper's keys and the rest (``None`` when empty), for the wrapped env."""
        if options is not None and not isinstance(options, Mapping):
            raise InvalidArgumentError(f"options must be a dict or None, got {options!r}")
        options = dict(options) if options else {}
        self._seed_rng(seed)
        own = {k: options.pop(k) for k in self._option_keys() if k in options}
        return own, options or None

    def _draw_episode(self, own: dict[str, Any]) -> None:
        """The second half of :meth:`_new_episode`, after the wrapped env's reset: draw the
        episode's attacked agents and victims (reading ``own``) and set up the embedded
        policies. The batched path (:class:`adv_wrappers.vector.BatchedVectorEnv`) calls both
        halves for each copy, so an episode is drawn by this code on either path."""
        self._attacked, self._victims = self._begin_episode(own)
        self._attacked_set = frozenset(self._attacked)
        self._adv_slots, self._benign_slots = {}, {}
        for a in self._attacked:
            if self._adversary_policies is not None:  # embedded (not self.exposed)
                self._adv_slots[a] = PolicySlot(
                    a, self._adversary_policies[a], self.env.action_space(a), "adversary"
                )
            if a in self._benign_policies:
                self._benign_slots[a] = PolicySlot(
                    a, self._benign_policies[a], self.env.action_space(a), "benign policy"
                )
        for slot in (*self._adv_slots.values(), *self._benign_slots.values()):
            slot.reset()

    def _compute_outside_ids(self, agent: AgentID) -> tuple[AgentID, ...]:
        """The outside IDs standing for base agent ``agent`` this episode, in acting order."""
        if agent not in self._attacked_set:
            return (agent,)
        ids: tuple[AgentID, ...] = ()
        if self._benign_outside(agent):
            ids += (agent,)
        if self.exposed:
            ids += (self._adv_ids[agent],)
        return ids

    def _victim_reward(self, rewards: Mapping[AgentID, Any]) -> float:
        """The exposed adversaries' reward: minus the mean reward of the victims present."""
        present = [float(rewards[v]) for v in self._victims if v in rewards]
        return -sum(present) / len(present) if present else 0.0


class ActionThreatWrapper(ActionThreatBase, BaseParallelWrapper[AgentID, ObsType, ActionType]):
    """Base class of the parallel action threat models; subclasses define who is attacked
    and when (see the hooks of :class:`ActionThreatBase`) and set ``threat_name``.
    """

    def __init__(
        self,
        env: ParallelEnv[AgentID, ObsType, ActionType],
        *,
        attackable: list[AgentID],
        adversary: Any,
        adversary_observes: str = "agent",
        benign_policies: dict[AgentID, Any] | None = None,
    ):
        super().__init__(env)
        self._init_slots(env, attackable, adversary, adversary_observes, benign_policies)
        self._id_map: dict[AgentID, tuple[AgentID, ...]] = {}
        self._hidden: frozenset[AgentID] = frozenset()  # attacked agents out of the list
        self._agent_set: set[AgentID] = set()
        # subclasses that change observations (Byzantine reveal_types) set this to True
        self._transforms_obs = type(self)._transform_obs is not ActionThreatWrapper._transform_obs
        self._last_obs: dict[AgentID, Any] = {}
        self._last_infos: dict[AgentID, Any] = {}

    # ------------------------------------------------------------------ hooks
    def _transform_obs(self, agent: AgentID, obs: Any) -> Any:
        return obs

    # ------------------------------------------------------------------ internals
    def _outside_ids(self, agent: AgentID) -> tuple[AgentID, ...]:
        """The outside IDs standing for base agent ``agent`` this episode (cached per episode)."""
        ids = self._id_map.get(agent)
        if ids is None:
            ids = self._id_map[agent] = self._compute_outside_ids(agent)
        return ids

    def _adversary_observation(self, agent: AgentID) -> Any:
        if self.adversary_observes == "state":
            return self.env.state()
        return self._transform_obs(agent, self._last_obs[agent])

    def _ground_truth(
        self, acted: dict[AgentID, bool], executed: dict[AgentID, Any]
    ) -> dict[str, Any]:
        gt = {
            "attacked": self._attacked,
            "victims": self._victims,
            "adversary_acted": acted,
            "executed_actions": executed,
        }
        gt.update(self._ground_truth_extra())
        return gt

    def _outside(
        self, data: Mapping[AgentID, Any], kind: str, adv_reward: float = 0.0
    ) -> dict[AgentID, Any]:
        """Map a per-agent dict of the base env onto outside IDs.

        Unattacked agents pass through (a C-level dict copy: this runs five times a step);
        only the attacked agents' entries are moved to, or copied for, their adversaries.
        """
        if kind == "obs" and self._transforms_obs:
            out = {a: self._transform_obs(a, v) for a, v in data.items()}
        else:
            out = dict(data)
        for agent in self._attacked:
            if agent not in data:
                continue
            if agent in self._hidden:
                del out[agent]
            if self.exposed:
                if kind == "obs":
                    value = self._adversary_observation(agent)
                elif kind == "reward":
                    value = adv_reward
                else:
                    value = data[agent]
                out[self._adv_ids[agent]] = value
        return out

    def _with_ground_truth(
        self, infos: Mapping[AgentID, Any], gt: dict[str, Any]
    ) -> dict[AgentID, Any]:
        out = self._outside(infos, "info")
        return {a: {**info, self.threat_name: gt} for a, info in out.items()}

    def _sync_agents(self) -> None:
        self.agents = [oid for a in self.env.agents for oid in self._outside_ids(a)]
        self._agent_set = set(self.agents)

    # ------------------------------------------------------------------ API
    @override
    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[AgentID, ObsType], dict[AgentID, dict[str, Any]]]:
        obs, infos = self._new_episode(seed, options)
        self._hidden = frozenset(a for a in self._attacked if not self._benign_outside(a))
        self._id_map = {}
        self._last_obs, self._last_infos = obs, infos
        self._sync_agents()
        gt = self._ground_truth({}, {})
        return self._outside(obs, "obs"), self._with_ground_truth(infos, gt)

    @override
    def step(self, actions: dict[AgentID, ActionType]):
        check_action_keys(actions, self.agents, self._agent_set)
        executed_attacked: dict[AgentID, Any] = {}
        acted: dict[AgentID, bool] = {}
        base_actions: dict[AgentID, Any] = {}
        for agent in self.env.agents:
            if agent not in self._attacked_set:
                base_actions[agent] = actions[agent]
                continue
            if self.exposed:
                adv_action = actions[self._adv_ids[agent]]
            else:
                adv_action = self._adv_slots[agent].act(
                    self._adversary_observation(agent), self.np_random, self._last_infos.get(agent)
                )
            acted[agent] = self._adversary_acts(agent)
            if acted[agent]:
                action = adv_action
            elif agent in self._benign_slots:
                action = self._benign_slots[agent].act(
                    self._transform_obs(agent, self._last_obs[agent]),
                    self.np_random,
                    self._last_infos.get(agent),
                )
            else:
                action = actions[agent]
            base_actions[agent] = executed_attacked[agent] = action
        obs, rewards, terminations, truncations, infos = self.env.step(base_actions)
        self._last_obs, self._last_infos = obs, infos
        gt = self._ground_truth(acted, executed_attacked)
        out = (
            self._outside(obs, "obs"),
            self._outside(rewards, "reward", self._victim_reward(rewards)),
            self._outside(terminations, "flag"),
            self._outside(truncations, "flag"),
            self._with_ground_truth(infos, gt),
        )
        self._sync_agents()
        return out
