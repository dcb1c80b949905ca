"""AEC versions of the action threat models, for turn-based games (Kuhn/Leduc poker, tic-tac-toe).

Turn-based games are AEC envs and cannot go through ``aec_to_parallel``.
:func:`k_corruption_aec_v0` and :func:`partial_control_aec_v0` wrap them directly, with the
same arguments, errors, RNG, adversary IDs, rewards and info keys as
:func:`~adv_wrappers.k_corruption.k_corruption_v0` and
:func:`~adv_wrappers.partial_control.partial_control_v0` (they share those wrappers'
episode-level code: :class:`~adv_wrappers.k_corruption.KCorruptionEpisodes` and
:class:`~adv_wrappers.partial_control.PartialControlEpisodes`). What is AEC-specific is who
is selected when:

* **k-corruption, exposed slot**: for the episode, every corrupted agent ``j`` in K is
  *renamed* ``f"{j}_adversary"``. At j's turns ``agent_selection`` is ``"j_adversary"``;
  ``observe("j_adversary")`` is ``env.observe(j)`` (or ``env.state()`` with
  ``adversary_observes="state"``); its action is executed as j's; its reward is minus the
  victims' mean reward of the same underlying step; its termination, truncation and info
  are j's. ``j`` itself is not in ``agents``.
* **k-corruption, embedded slot**: the wrapper plays j's turns itself, inside the ``step``
  (or ``reset``) that precedes them, until an outside agent is to move or the game is over;
  ``j`` is not in ``agents``. When j is done, the wrapper steps it with ``None`` as AEC
  requires.
* **partial control**: at alpha's turn, first ``alpha`` is selected and acts (its action is
  stored, nothing executes), then ``"alpha_adversary"`` is selected and acts, then one
  uniform draw ``u`` of the wrapper's RNG decides (adversary iff ``u < epsilon``) which of
  the two actions is executed. Embedded benign policies and adversaries are called by the
  wrapper instead of being selected (an embedded adversary is called at every turn, the
  coin is drawn after it and an embedded benign policy is called only when the coin says
  benign, as in the parallel wrapper). ``epsilon=0`` reproduces the unwrapped game exactly
  (the stored benign action is the one executed); ``epsilon=1`` is a full takeover.
* **done agents**: every outside ID of a done agent is selected once and must be stepped
  with ``None`` (for partial control: ``alpha``, then ``alpha_adversary``; the underlying
  dead step happens after the last one). Internal agents are stepped with ``None`` by the
  wrapper.
* **rewards**: ``rewards`` holds what the last ``step`` produced (the sum over the
  underlying steps it executed, zero when it only stored an action);
  ``_cumulative_rewards`` follows the AEC convention (an agent's entry is reset when it
  acts and accumulates ``rewards`` otherwise), so ``last()`` of an unattacked agent equals
  the unwrapped env's.
* **ground truth**: ``infos[a][threat_name]`` of every outside agent has the parallel
  wrapper's keys; ``"adversary_acted"`` and ``"executed_actions"`` describe, for each
  attacked agent, its latest executed turn of the episode (empty at reset and until its
  first turn), so an agent that reads its info at its next turn still sees what happened at
  its previous one.

Actions returned by embedded policies are checked against the action space and, where the
agent's observation (or info) has an ``action_mask``, against the mask: an illegal action
raises :class:`~adv_wrappers.errors.InvalidActionError` at that step. Outside actions go to
the wrapped env unchanged (e.g. PettingZoo's ``TerminateIllegalWrapper`` handles them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium
import numpy as np
from pettingzoo.utils.env import ActionType, AECEnv, AgentID, ObsType
from pettingzoo.utils.env_logger import EnvLogger
from pettingzoo.utils.wrappers import BaseWrapper
from typing_extensions import override

from adv_wrappers.core import ActionThreatBase, check_env_kind
from adv_wrappers.errors import (
    InvalidActionError,
    MissingActionError,
)
from adv_wrappers.k_corruption import KCorruptionEpisodes, SubsetSampler
from adv_wrappers.partial_control import PartialControlEpisodes
from adv_wrappers.policies import PolicySlot, _action_mask

MAX_PLAY_OUT_STEPS = 1_000_000
"""How many internal turns in a row the wrapper plays before it gives up (RuntimeError)."""


class AECThreatWrapper(ActionThreatBase, BaseWrapper[AgentID, ObsType, ActionType]):
    """Base class of the AEC action threat models (the AEC twin of ``ActionThreatWrapper``).

    Subclasses implement the same hooks as the parallel base class: :meth:`_begin_episode`
    (attacked agents and victims, drawn with ``self.np_random``), and optionally
    :meth:`_option_keys`, :meth:`_adversary_acts`, :meth:`_benign_outside` and
    :meth:`_ground_truth_extra`; they set ``threat_name``.
    """

    threat_name: str = "action_threat"

    def __init__(
        self,
        env: AECEnv[AgentID, ObsType, ActionType],
        *,
        attackable: list[AgentID],
        adversary: Any,
        adversary_observes: str = "agent",
        benign_policies: dict[AgentID, Any] | None = None,
    ):
        super().__init__(env)
        self._init_slots(env, attackable, adversary, adversary_observes, benign_policies)
        self._pending: dict[AgentID, Any] = {}  # outside ID -> action stored this turn
        self._retired: set[AgentID] = set()  # outside IDs stepped with None while done
        self._step_rewards: dict[AgentID, Any] = {}
        self._acted: dict[AgentID, bool] = {}
        self._executed: dict[AgentID, Any] = {}
        self.rewards: dict[AgentID, Any] = {}
        self._cumulative_rewards: dict[AgentID, Any] = {}
        self.terminations: dict[AgentID, bool] = {}
        self.truncations: dict[AgentID, bool] = {}
        self.infos: dict[AgentID, dict[str, Any]] = {}
        self.agent_selection: AgentID | None = None

    # ------------------------------------------------------------------ spaces
    # observation_space / action_space: ActionThreatBase's (first in the MRO)
    @property
    def observation_spaces(self) -> dict[AgentID, gymnasium.spaces.Space]:
        return {a: self.observation_space(a) for a in self.possible_agents}

    @property
    def action_spaces(self) -> dict[AgentID, gymnasium.spaces.Space]:
        return {a: self.action_space(a) for a in self.possible_agents}

    # ------------------------------------------------------------------ ID mapping
    def _base_agent(self, agent: AgentID) -> AgentID:
        """The agent of the wrapped env that outside ID ``agent`` stands for."""
        return self._adv_to_agent.get(agent, agent)

    def _outside_ids(self, agent: AgentID) -> tuple[AgentID, ...]:
        """The outside IDs acting for base agent ``agent`` at its turns, in order."""
        return self._compute_outside_ids(agent)

    def _to_act(self, agent: AgentID) -> list[AgentID]:
        """The outside IDs that still have to act (or be stepped with None) at this turn."""
        return [
            o for o in self._outside_ids(agent) if o not in self._retired and o not in self._pending
        ]

    # ------------------------------------------------------------------ internals
    def _adversary_observation(self, agent: AgentID) -> Any:
        if self.adversary_observes == "state":
            return self.env.state()
        return self.env.observe(agent)

    def _policy_action(self, slot: PolicySlot, agent: AgentID, observation: Any) -> Any:
        """Call an embedded policy at ``agent``'s turn; check its action against the mask."""
        info = self.env.infos.get(agent) or {}
        legal = _action_mask(self.env.observe(agent), info)
        if legal is not None:  # "random" finds the mask even when it observes state()
            info = {**info, "action_mask": legal}
        action = slot.act(observation, self.np_random, info)
        space = slot.action_space
        if (
            legal is not None
            and legal.any()
            and isinstance(space, gymnasium.spaces.Discrete)
            and not legal[int(action) - int(space.start)]
        ):
            raise InvalidActionError(
                f"the {slot.role} of agent {agent!r} returned action {action!r}, which is "
                f"illegal at this turn (legal actions: {np.flatnonzero(legal).tolist()})"
            )
        return action

    def _env_step(self, action: Any) -> None:
        """Step the wrapped env once and add its rewards to this step's outside rewards."""
        self.env.step(action)
        self._pending = {}
        rewards = self.env.rewards
        adv_reward = self._victim_reward(rewards)
        for agent, reward in rewards.items():
            for oid in self._outside_ids(agent):
                if oid not in self._retired:
                    value = reward if oid == agent else adv_reward
                    self._step_rewards[oid] = self._step_rewards.get(oid, 0) + value

    def _execute_turn(self, agent: AgentID) -> None:
        """Execute the turn of live ``agent`` with the actions collected (or computed) for it."""
        if agent not in self._attacked_set:
            self._env_step(self._pending[agent])
            return
        if self.exposed:
            adv_action = self._pending[self._adv_ids[agent]]
        else:
            adv_action = self._policy_action(
                self._adv_slots[agent], agent, self._adversary_observation(agent)
            )
        acted = self._adversary_acts(agent)
        if acted:
            action = adv_action
        elif agent in self._benign_slots:
            action = self._policy_action(self._benign_slots[agent], agent, self.env.observe(agent))
        else:
            action = self._pending[agent]
        self._acted[agent] = acted
        self._executed[agent] = action
        self._env_step(action)

    def _play_internal_turns(self) -> None:
        """Play the turns no outside ID acts at, until one does or the game is over."""
        played = 0
        while self.env.agents and not self._to_act(self.env.agent_selection):
            if played >= MAX_PLAY_OUT_STEPS:
                raise RuntimeError(
                    f"{type(self).__name__} played {played} internal turns in a row without an "
                    "outside agent being selected or the game ending"
                )
            agent = self.env.agent_selection
            if self.env.terminations[agent] or self.env.truncations[agent]:
                self._env_step(None)
            else:
                self._execute_turn(agent)
            played += 1

    def _sync(self) -> None:
        """Rebuild the outside AEC bookkeeping from the wrapped env after a reset or step."""
        env = self.env
        self.agents = [
            oid for a in env.agents for oid in self._outside_ids(a) if oid not in self._retired
        ]
        self.rewards = {oid: self._step_rewards.get(oid, 0) for oid in self.agents}
        self._cumulative_rewards = {
            oid: self._cumulative_rewards.get(oid, 0) + self.rewards[oid] for oid in self.agents
        }
        self.terminations = {oid: env.terminations[self._base_agent(oid)] for oid in self.agents}
        self.truncations = {oid: env.truncations[self._base_agent(oid)] for oid in self.agents}
        gt = {
            "attacked": self._attacked,
            "victims": self._victims,
            "adversary_acted": dict(self._acted),
            "executed_actions": dict(self._executed),
            **self._ground_truth_extra(),
        }
        self.infos = {
            oid: {**env.infos[self._base_agent(oid)], self.threat_name: gt} for oid in self.agents
        }
        if env.agents:
            self.agent_selection = self._to_act(env.agent_selection)[0]

    # ------------------------------------------------------------------ API
    @override
    def observe(self, agent: AgentID) -> ObsType | None:
        base = self._base_agent(agent)
        if base != agent:
            return self._adversary_observation(base)
        return self.env.observe(agent)

    @override
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        self._new_episode(seed, options)
        self._pending, self._retired = {}, set()
        self._acted, self._executed = {}, {}
        self._step_rewards, self._cumulative_rewards = {}, {}
        self._play_internal_turns()
        self._sync()

    @override
    def step(self, action: ActionType) -> None:
        if not self.agents:
            EnvLogger.warn_step_after_terminated_truncated()
            return
        oid = self.agent_selection
        agent = self._base_agent(oid)
        done = self.terminations[oid] or self.truncations[oid]
        if done and action is not None:
            raise MissingActionError(
                f"agent {oid!r} is terminated or truncated: step it with None, got {action!r}"
            )
        self._step_rewards = {}
        self._cumulative_rewards[oid] = 0
        if done:
            self._retired.add(oid)
        else:
            self._pending[oid] = action
        if not self._to_act(agent):  # every outside ID of this turn has acted
            if done:
                self._env_step(None)
            else:
                self._execute_turn(agent)
            self._play_internal_turns()
        self._sync()


class KCorruptionAECWrapper(KCorruptionEpisodes, AECThreatWrapper):
    """At most ``k`` of the ``n`` players of a turn-based game are taken over each episode.

    The AEC version of :class:`~adv_wrappers.k_corruption.KCorruptionWrapper` (Nika et
    al. (TMLR 2024), Sec. 2.2), with the same arguments, subset draw, ``reset`` options, RNG,
    rewards, info keys and errors; see that class for the threat model. AEC-specific: with
    the exposed slot a corrupted agent ``j`` is renamed ``f"{j}_adversary"`` for the episode
    (selected at j's turns, observing ``env.observe(j)``, rewarded minus the victims' mean
    reward, done when j is); with an embedded slot the wrapper plays j's turns itself and
    ``j`` is not in ``agents``. ``info["k_corruption"]["adversary_acted"]`` and
    ``["executed_actions"]`` hold each corrupted agent's latest executed turn.

    Args:
        env: any PettingZoo AECEnv (e.g. ``tictactoe_v3.env()``).
        k: the attacker's budget, an int with ``0 <= k < n``.
        subset: ``"uniform"``, ``"exact"``, a fixed list of agent IDs or a callable
            ``subset(rng, candidates, victim)``, as for ``k_corruption_v0``.
        victim: the agent whose return the adversaries minimize, never corrupted; ``None``:
            every agent not in K (their mean reward).
        adversary: ``None`` (exposed), ``"random"`` (uniform over the legal actions), a
            policy or a dict agent ID -> policy (embedded; a policy gets
            ``env.observe(j)``, for classic games a dict with ``"action_mask"``).
        adversary_observes: ``"agent"`` (default) or ``"state"`` (``env.state()``).

    Raises:
        EnvKindError: ``env`` is not an AECEnv (for a ParallelEnv the message names
            :func:`~adv_wrappers.k_corruption.k_corruption_v0` and ``parallel_to_aec``).
        InvalidArgumentError: k not an int in [0, n-1]; unknown
            ``subset`` mode; a subset (fixed, sampled or from ``reset`` options) larger than
            k, with duplicates or containing the victim; ``options`` not a dict; fewer
            candidates than k for ``subset="exact"``; bad ``adversary`` or
            ``adversary_observes``.
        UnknownAgentError: agent IDs in ``subset``, ``victim``, ``adversary``, options or a
            sampler's output that are not in the env's ``possible_agents``.
        AgentIDCollisionError: an exposed adversary ID already exists in the env.
        MissingActionError: ``step`` with an action other than None for a done agent.
        InvalidActionError: an embedded adversary returned an action outside the agent's
            action space or masked out by its ``action_mask`` (raised at that step).

    Example:
        >>> from pettingzoo.classic import tictactoe_v3
        >>> from adv_wrappers.aec import k_corruption_aec_v0
        >>> env = k_corruption_aec_v0(tictactoe_v3.env(), k=1, subset=["player_1"])
        >>> env.reset(seed=0)
        >>> env.agents, env.agent_selection
        (['player_1_adversary', 'player_2'], 'player_1_adversary')
        >>> for square in [0, 1, 3, 2]:
        ...     env.step(square)
        >>> env.step(6)  # the adversary completes the left column for player_1
        >>> env.agent_selection, env.rewards
        ('player_2', {'player_1_adversary': 1.0, 'player_2': -1})

    Change logs:
        v0: initial release.
    """

    def __init__(
        self,
        env: AECEnv,
        k: int,
        *,
        subset: str | Sequence[AgentID] | SubsetSampler = "uniform",
        victim: AgentID | None = None,
        adversary: Any = None,
        adversary_observes: str = "agent",
    ):
        check_env_kind(env, "k_corruption_aec_v0", "aec", twin="k_corruption_v0")
        attackable = self._init_k_corruption(list(env.possible_agents), k, subset, victim)
        super().__init__(
            env, attackable=attackable, adversary=adversary, adversary_observes=adversary_observes
        )


class PartialControlAECWrapper(PartialControlEpisodes, AECThreatWrapper):
    """At each turn of player ``agent``, the adversary's action is executed with prob. epsilon.

    The AEC version of :class:`~adv_wrappers.partial_control.PartialControlWrapper` (Liu et
    al. (ICLR 2024), Sec. 3, Eq. 3.1-3.2), with the same arguments, per-turn coin (one
    uniform draw of the wrapper's RNG per turn of alpha, adversary iff ``u < epsilon``),
    rewards, info keys and errors. AEC-specific: at alpha's turn, ``agent`` (benign, when
    ``benign_policy=None``) is selected first and then ``f"{agent}_adversary"`` (when
    ``adversary=None``); each acts without knowing the coin; then the chosen action is
    executed. Embedded policies are called by the wrapper instead of being selected.
    ``epsilon=0`` reproduces the unwrapped game exactly, ``epsilon=1`` is full takeover.
    ``info["partial_control"]["adversary_acted"]`` and ``["executed_actions"]`` hold alpha's
    latest executed turn.

    Args:
        env: any PettingZoo AECEnv.
        agent: the partially controlled agent alpha.
        epsilon: the attack budget eps_pi, finite, in [0, 1].
        benign_policy: ``None`` (alpha acts from outside), ``"random"`` or a policy.
        adversary: ``None`` (exposed), ``"random"`` or a policy (embedded).
        victim: the agent whose value the attacker minimizes; ``None``: every other agent.
        adversary_observes: ``"agent"`` (default) or ``"state"``.

    Raises:
        EnvKindError: ``env`` is not an AECEnv (for a ParallelEnv the message names
            :func:`~adv_wrappers.partial_control.partial_control_v0` and ``parallel_to_aec``).
        InvalidArgumentError: epsilon not a finite number in [0, 1];
            victim equal to ``agent``; ``options`` not a dict; bad ``benign_policy``,
            ``adversary`` or ``adversary_observes``.
        UnknownAgentError: ``agent``, ``victim`` or a key of ``adversary`` not in the env's
            ``possible_agents``.
        AgentIDCollisionError: the exposed adversary ID already exists in the env.
        MissingActionError: ``step`` with an action other than None for a done agent.
        InvalidActionError: the benign policy or embedded adversary returned an action
            outside alpha's action space or masked out by its ``action_mask`` (raised at
            that step, naming the agent).

    Example:
        >>> from pettingzoo.classic import tictactoe_v3
        >>> from adv_wrappers.aec import partial_control_aec_v0
        >>> env = partial_control_aec_v0(tictactoe_v3.env(), "player_1", 1.0)
        >>> env.reset(seed=0)
        >>> env.agent_selection
        'player_1'
        >>> env.step(0)  # the benign action is stored...
        >>> env.agent_selection
        'player_1_adversary'
        >>> env.step(4)  # ...and the adversary's is executed (epsilon=1)
        >>> env.agent_selection, env.observe("player_2")["observation"][1, 1].tolist()
        ('player_2', [0, 1])
        >>> env.infos["player_2"]["partial_control"]["executed_actions"]
        {'player_1': 4}

    Change logs:
        v0: initial release.
    """

    def __init__(
        self,
        env: AECEnv,
        agent: AgentID,
        epsilon: float,
        *,
        benign_policy: Any = None,
        adversary: Any = None,
        victim: AgentID | None = None,
        adversary_observes: str = "agent",
    ):
        check_env_kind(env, "partial_control_aec_v0", "aec", twin="partial_control_v0")
        benign_policies = self._init_partial_control(
            list(env.possible_agents), agent, epsilon, victim, benign_policy
        )
        super().__init__(
            env,
            attackable=[self.agent],
            adversary=adversary,
            adversary_observes=adversary_observes,
            benign_policies=benign_policies,
        )


k_corruption_aec_v0 = KCorruptionAECWrapper
"""The versioned public name of :class:`KCorruptionAECWrapper`."""

partial_control_aec_v0 = PartialControlAECWrapper
"""The versioned public name of :class:`PartialControlAECWrapper`."""
