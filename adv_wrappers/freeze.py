"""Fixed policies inside the env (``freeze_v0``) and the one-agent view (``to_single_agent``).

Together they turn any threat-wrapped env into a single-agent problem: freeze the defenders,
keep the exposed adversary outside, and any single-agent trainer (or ``attack.py``) can
train a fresh attacker against them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium
from pettingzoo.utils.env import AgentID, ParallelEnv
from pettingzoo.utils.wrappers import BaseParallelWrapper
from typing_extensions import override

from adv_wrappers.core import OwnRNG, check_action_keys, check_env_kind
from adv_wrappers.errors import (
    InvalidArgumentError,
    PlayOutLimitError,
    UnknownAgentError,
)
from adv_wrappers.policies import PolicySlot, check_policy

MAX_PLAY_OUT_STEPS = 1_000_000


class FreezeWrapper(OwnRNG, BaseParallelWrapper):
    """Chosen agents act inside the env with fixed policies and leave the outside agent list.

    Used for frozen victims while training an attacker and frozen defenders while
    evaluating. Frozen agents keep acting whenever they are in the wrapped env's
    ``agents`` (IDs created by a threat wrapper, e.g. ``"agent_1_adversary"``, can be frozen
    too). When the last outside agent is done but frozen agents are still alive, the wrapper
    plays the rest of the episode out with the frozen policies inside that ``step``, so the
    episode ends for everyone and the frozen agents' returns are complete.

    Args:
        env: any PettingZoo ParallelEnv (typically threat-wrapped).
        policies: dict agent ID -> policy (a callable on the agent's observation, optional
            ``reset()`` called every episode, or ``"random"`` sampled with the wrapper's
            seeded RNG). At least one possible agent must stay outside.

    Infos: every outside agent's info has ``info["freeze"]`` with ``"rewards"`` (dict frozen
    agent -> its reward this step, summed over played-out steps) and ``"played_out_steps"``
    (how many steps were played inside after the outside agents finished; 0 otherwise).
    Frozen agents' own infos are merged under ``"infos"`` (dict frozen agent -> info).

    Raises:
        EnvKindError: ``env`` is not a ParallelEnv (an AECEnv: convert it with
            ``pettingzoo.utils.conversions.aec_to_parallel``).
        UnknownAgentError: a key of ``policies`` that is not in ``possible_agents``.
        InvalidArgumentError: ``policies`` not a non-empty dict, freezing every agent, or a
            value that is not ``"random"`` or callable.
        MissingActionError: ``step`` without an action for an outside agent, or with one
            for a frozen/absent agent.
        InvalidActionError: a frozen policy returned an action outside its action space
            (raised at that step, naming agent and action).
        PlayOutLimitError: the play-out after the outside agents finished exceeded
            ``MAX_PLAY_OUT_STEPS`` (1,000,000) steps.

    Example:
        >>> from adv_envs import echo_v0
        >>> from adv_wrappers import freeze_v0
        >>> env = freeze_v0(echo_v0.parallel_env(n_agents=2), {"agent_1": lambda obs: 3})
        >>> obs, infos = env.reset(seed=0)
        >>> env.agents
        ['agent_0']
        >>> obs, rewards, _, _, infos = env.step({"agent_0": 1})
        >>> obs["agent_0"], infos["agent_0"]["freeze"]["rewards"]
        (array([1., 3.], dtype=float32), {'agent_1': 3.0})

    Change logs:
        v0: initial release.
    """

    def __init__(self, env: ParallelEnv, policies: Mapping[AgentID, Any]):
        check_env_kind(env, "freeze_v0")
        super().__init__(env)
        if not isinstance(policies, Mapping) or not policies:
            raise InvalidArgumentError(
                f"policies must be a non-empty dict agent ID -> policy, got {policies!r}"
            )
        possible = list(env.possible_agents)
        unknown = [a for a in policies if a not in possible]
        if unknown:
            raise UnknownAgentError(
                f"policies has unknown agent IDs {unknown}; allowed: {possible}"
            )
        self.possible_agents = [a for a in possible if a not in policies]
        if not self.possible_agents:
            raise InvalidArgumentError(
                "freeze_v0 cannot freeze every agent: at least one must stay outside to act"
            )
        self._slots = {
            a: PolicySlot(
                a, check_policy(p, f"policies[{a!r}]"), env.action_space(a), "frozen policy"
            )
            for a, p in policies.items()
        }
        self._np_random = None
        self._obs: dict[AgentID, Any] = {}
        self._infos: dict[AgentID, Any] = {}
        self.agents: list[AgentID] = []

    def _split(self, data: Mapping[AgentID, Any]) -> dict[AgentID, Any]:
        return {a: v for a, v in data.items() if a not in self._slots}

    def _frozen_actions(self) -> dict[AgentID, Any]:
        return {
            a: self._slots[a].act(self._obs[a], self.np_random, self._infos.get(a))
            for a in self.env.agents
            if a in self._slots
        }

    def _annotate(self, infos: Mapping[AgentID, Any], gt: dict[str, Any]) -> dict[AgentID, Any]:
        return {a: {**info, "freeze": gt} for a, info in self._split(infos).items()}

    @override
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        self._seed_rng(seed)
        obs, infos = self.env.reset(seed=seed, options=options)
        for slot in self._slots.values():
            slot.reset()
        self._obs, self._infos = obs, infos
        self.agents = [a for a in self.env.agents if a not in self._slots]
        gt = {
            "rewards": {},
            "played_out_steps": 0,
            "infos": {a: i for a, i in infos.items() if a in self._slots},
        }
        return self._split(obs), self._annotate(infos, gt)

    @override
    def step(self, actions: dict[AgentID, Any]):
        check_action_keys(actions, self.agents, set(self.agents))
        obs, rewards, terminations, truncations, infos = self.env.step(
            {**actions, **self._frozen_actions()}
        )
        self._obs, self._infos = obs, infos
        frozen_rewards = {a: float(r) for a, r in rewards.items() if a in self._slots}
        played = 0
        outside_left = [a for a in self.env.agents if a not in self._slots]
        while not outside_left and self.env.agents:
            if played >= MAX_PLAY_OUT_STEPS:
                raise PlayOutLimitError(
                    f"freeze_v0 played out {played} steps for the frozen agents after the outside "
                    "agents finished, and the episode has not ended (does the env truncate?)"
                )
            o, r, *_, i = self.env.step(self._frozen_actions())
            self._obs, self._infos = o, i
            for a, value in r.items():
                frozen_rewards[a] = frozen_rewards.get(a, 0.0) + float(value)
            played += 1
        gt = {
            "rewards": frozen_rewards,
            "played_out_steps": played,
            "infos": {a: i for a, i in infos.items() if a in self._slots},
        }
        self.agents = [a for a in self.env.agents if a not in self._slots]
        return (
            self._split(obs),
            self._split(rewards),
            self._split(terminations),
            self._split(truncations),
            self._annotate(infos, gt),
        )


freeze_v0 = FreezeWrapper
"""The versioned public name of :class:`FreezeWrapper` (bump the suffix when results move)."""


class SingleAgentEnv(gymnasium.Env):
    """A ParallelEnv with exactly one agent acting per episode, as a ``gymnasium.Env``.

    Every possible agent must have the same observation and action spaces (they become the
    Gymnasium spaces), and every episode must have exactly one agent in ``agents`` at
    reset (e.g. the exposed adversary of a k_corruption env with k=1 and frozen defenders,
    whichever agent it controls this episode). ``info["agent"]`` names it.

    Raises:
        EnvKindError: ``env`` is not a ParallelEnv (an AECEnv: convert it with
            ``pettingzoo.utils.conversions.aec_to_parallel``).
        InvalidArgumentError: possible agents with different spaces (at construction); an
            episode that starts with zero or several agents (at ``reset``).

    Example:
        >>> from adv_envs import echo_v0
        >>> from adv_wrappers import freeze_v0, k_corruption_v0, to_single_agent
        >>> env = k_corruption_v0(echo_v0.parallel_env(n_agents=2), k=1, subset=["agent_1"])
        >>> env = to_single_agent(freeze_v0(env, {"agent_0": lambda obs: 2}))
        >>> obs, info = env.reset(seed=0)
        >>> env.step(4)[:3]
        (array([2., 4.], dtype=float32), -2.0, False)
    """

    metadata = {"render_modes": ["rgb_array", "human"]}

    def __init__(self, env: ParallelEnv):
        check_env_kind(env, "to_single_agent")
        self.env = env
        agents = list(env.possible_agents)
        first = agents[0]
        for a in agents[1:]:
            if env.observation_space(a) != env.observation_space(first) or env.action_space(
                a
            ) != env.action_space(first):
                raise InvalidArgumentError(
                    f"to_single_agent needs every possible agent to share its spaces; {a!r} and "
                    f"{first!r} differ (possible agents: {agents}); freeze the others first"
                )
        self.observation_space = env.observation_space(first)
        self.action_space = env.action_space(first)
        self.render_mode = getattr(env, "render_mode", None)
        self.agent: AgentID | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        obs, infos = self.env.reset(seed=seed, options=options)
        if len(self.env.agents) != 1:
            raise InvalidArgumentError(
                f"to_single_agent needs exactly one agent per episode; this episode has "
                f"{self.env.agents} (freeze the others with freeze_v0)"
            )
        self.agent = self.env.agents[0]
        return obs[self.agent], {**infos[self.agent], "agent": self.agent}

    def step(self, action: Any):
        obs, rewards, terms, truncs, infos = self.env.step({self.agent: action})
        a = self.agent
        return obs[a], float(rewards[a]), bool(terms[a]), bool(truncs[a]), {**infos[a], "agent": a}

    def render(self):
        return self.env.render()

    def close(self):
        self.env.close()


def to_single_agent(env: ParallelEnv) -> SingleAgentEnv:
    """Turn a ParallelEnv with one agent left per episode into a ``gymnasium.Env``.

    See :class:`SingleAgentEnv`.

    Raises:
        EnvKindError: ``env`` is not a ParallelEnv.
        InvalidArgumentError: possible agents with different spaces; at ``reset``, an
            episode that starts with zero or several agents.
    """
    return SingleAgentEnv(env)
