"""epsilon_pi partial control of one agent (Liu et al. (ICLR 2024), Sec. 3, Eq. 3.1-3.2)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pettingzoo.utils.env import AgentID, ParallelEnv

from adv_wrappers.core import ActionThreatWrapper, check_agent, check_env_kind, check_epsilon
from adv_wrappers.errors import InvalidArgumentError
from adv_wrappers.policies import check_policy


class PartialControlEpisodes:
    """The episode-level logic of partial control, shared by the parallel and AEC wrappers.

    Validates the arguments (:meth:`_init_partial_control`), names the attacked agent and
    the victims of each episode (:meth:`_begin_episode`) and flips the per-step (per-turn)
    coin (:meth:`_adversary_acts`). The host class provides ``env`` and ``np_random``.
    """

    threat_name = "partial_control"
    # provided by the host class
    env: Any
    np_random: np.random.Generator

    def _init_partial_control(
        self,
        possible: list[AgentID],
        agent: AgentID,
        epsilon: float,
        victim: AgentID | None,
        benign_policy: Any,
    ) -> dict[AgentID, Any] | None:
        """Validate and store the arguments; return the embedded benign policies (or None)."""
        self.agent = check_agent(agent, "agent", possible)
        self.epsilon = check_epsilon(epsilon, "epsilon")
        self.victim = None if victim is None else check_agent(victim, "victim", possible)
        if self.victim == self.agent:
            raise InvalidArgumentError(
                f"victim={victim!r} is the partially controlled agent itself"
            )
        self.benign_policy = (
            None if benign_policy is None else check_policy(benign_policy, "benign_policy")
        )
        return None if self.benign_policy is None else {self.agent: self.benign_policy}

    def _benign_outside(self, agent: AgentID) -> bool:
        return self.benign_policy is None

    def _begin_episode(
        self, options: dict[str, Any]
    ) -> tuple[tuple[AgentID, ...], tuple[AgentID, ...]]:
        attacked: tuple[AgentID, ...] = (self.agent,) if self.agent in self.env.agents else ()
        if self.victim is not None:
            victims: tuple[AgentID, ...] = (self.victim,)
        else:
            victims = tuple(a for a in self.env.agents if a != self.agent)
        return attacked, victims

    def _adversary_acts(self, agent: AgentID) -> bool:
        return bool(self.np_random.random() < self.epsilon)

    def _ground_truth_extra(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon}


class PartialControlWrapper(PartialControlEpisodes, ActionThreatWrapper):
    """Each step, agent ``agent`` executes the adversary's action with probability epsilon.

    Liu et al. (ICLR 2024), "Rethinking Adversarial Policies", Sec. 3: an attacker controls
    agent alpha only partially; the policy actually deployed for alpha is the mixture
    pi_alpha = (1 - eps) * pi_hat_alpha + eps * pi_tilde_alpha of its benign policy
    pi_hat_alpha and the adversarial policy pi_tilde_alpha (Eq. 3.2); the attacker
    minimizes the victim's value (Eq. 3.1). eps = 0 is no attack, eps = 1 full takeover
    (Gleave et al.'s adversarial policies). The per-step coin is drawn with the wrapper's own
    RNG, one uniform draw per step whatever eps, so runs at different eps with the same
    seed share their coins (common random numbers; a ``"random"`` benign policy, called
    only on steps where it is executed, draws from the same RNG and breaks this); eps = 0
    reproduces the unwrapped episode exactly.

    Args:
        env: any PettingZoo ParallelEnv.
        agent: the partially controlled agent alpha.
        epsilon: the attack budget eps_pi, finite, in [0, 1].
        benign_policy: alpha's benign policy pi_hat_alpha, a policy or ``"random"``
            (embedded); ``None``: the benign action comes from outside and alpha stays in
            ``agents`` next to its adversary.
        adversary: ``None`` (exposed: agent ``f"{agent}_adversary"``, acting every step
            with alpha's action space and observation, rewarded minus the victims' mean
            reward), ``"random"`` or a policy (embedded).
        victim: the agent whose value the attacker minimizes; ``None``: every other agent
            (their mean reward).
        adversary_observes: ``"agent"`` (alpha's observation, default) or ``"state"``.

    What agents see: alpha (when its benign action comes from outside) gets its usual
    observation, reward and flags and is not told before acting whether its action will be
    executed; the ground truth of each step is in the infos. With both ``benign_policy``
    and ``adversary`` embedded, alpha leaves ``agents`` entirely.

    Infos: ``info["partial_control"]`` in every outside agent's info, with ``"attacked"``
    (``(agent,)``), ``"victims"``, ``"epsilon"``, ``"adversary_acted"`` (``{agent: bool}``
    for this step; empty at reset) and ``"executed_actions"`` (``{agent: action}``).

    Raises:
        EnvKindError: ``env`` is not a ParallelEnv (for an AECEnv the message names
            :func:`~adv_wrappers.aec.partial_control_aec_v0` and ``aec_to_parallel``).
        InvalidArgumentError: epsilon not a finite number in [0, 1]; victim equal to
            ``agent``; bad ``benign_policy``, ``adversary`` or ``adversary_observes``.
        UnknownAgentError: ``agent`` or ``victim`` not in ``possible_agents``.
        AgentIDCollisionError, MissingActionError: as for every action threat.
        InvalidActionError: the benign policy or embedded adversary returned an action
            outside alpha's action space (raised at that step, naming agent and action).

    Example:
        >>> from adv_envs import echo_v0
        >>> from adv_wrappers import partial_control_v0
        >>> env = partial_control_v0(echo_v0.parallel_env(n_agents=2), "agent_1", 0.5)
        >>> obs, infos = env.reset(seed=0)
        >>> env.agents
        ['agent_0', 'agent_1', 'agent_1_adversary']
        >>> for t in range(3):
        ...     obs, rewards, *_, infos = env.step({"agent_0": 0, "agent_1": 1, "agent_1_adversary": 4})
        ...     print(obs["agent_0"], rewards["agent_1_adversary"])
        [0. 1.] -0.0
        [0. 4.] -0.0
        [0. 4.] -0.0

    Change logs:
        v0: initial release.
    """

    def __init__(
        self,
        env: ParallelEnv,
        agent: AgentID,
        epsilon: float,
        *,
        benign_policy: Any = None,
        adversary: Any = None,
        victim: AgentID | None = None,
        adversary_observes: str = "agent",
    ):
        check_env_kind(env, "partial_control_v0", twin="partial_control_aec_v0")
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


partial_control_v0 = PartialControlWrapper
"""The versioned public name of :class:`PartialControlWrapper` (bump the suffix when results move)."""
