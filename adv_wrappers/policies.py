"""Policies that act *inside* a wrapper: embedded adversaries, benign policies, frozen agents.

A policy is anything callable on one agent's observation that returns one action::

    action = policy(observation)

It may be stateful (a recurrent network, a scripted attacker with memory). If it has a
``reset()`` method, the wrapper calls it at the start of every episode, before the first
call. A trained network loaded from a checkpoint is a policy once it is callable this way.

The string ``"random"`` stands for a uniformly random policy that samples from the agent's
action space (respecting an ``action_mask`` found in a dict observation or in the agent's
info) with the wrapper's own seeded RNG, so random attackers are reproducible.

Every action a policy returns is checked against the agent's action space at the step it is
returned; an action outside the space raises :class:`~adv_wrappers.errors.InvalidActionError`
naming the agent and the action. Nothing is clipped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

import gymnasium
import numpy as np

from adv_wrappers.errors import InvalidActionError, InvalidArgumentError, UnknownAgentError

Policy = Callable[[Any], Any]
"""Type alias: a callable mapping one observation to one action (optionally with ``reset()``)."""

RANDOM = "random"


def _action_mask(observation: Any, info: Mapping[str, Any] | None) -> np.ndarray | None:
    if isinstance(observation, Mapping) and "action_mask" in observation:
        return np.asarray(observation["action_mask"], dtype=np.int8)
    if info is not None and "action_mask" in info:
        return np.asarray(info["action_mask"], dtype=np.int8)
    return None


def sample_random_action(
    space: gymnasium.spaces.Space, rng: np.random.Generator, mask: np.ndarray | None = None
) -> Any:
    """Sample uniformly from ``space`` with ``rng`` (not the space's own RNG)."""
    if isinstance(space, gymnasium.spaces.Discrete):
        if mask is not None:
            legal = np.flatnonzero(mask)
            if legal.size == 0:
                return space.start  # no legal action (e.g. a finished turn): any value
            return np.int64(space.start + rng.choice(legal))
        return np.int64(space.start + int(rng.random() * space.n))  # faster than integers()
    if isinstance(space, gymnasium.spaces.Box):
        # Unbounded dimensions are sampled in [-1, 1] (a uniform law needs finite bounds).
        low = np.where(np.isfinite(space.low), space.low, -1.0)
        high = np.where(np.isfinite(space.high), space.high, 1.0)
        if space.dtype.kind in "iu":
            return rng.integers(low, high, endpoint=True).astype(space.dtype)
        return rng.uniform(low, high).astype(space.dtype)
    if isinstance(space, gymnasium.spaces.MultiDiscrete):
        return (space.start + np.floor(rng.random(space.shape) * space.nvec)).astype(space.dtype)
    if isinstance(space, gymnasium.spaces.MultiBinary):
        return rng.integers(0, 2, size=space.shape).astype(space.dtype)
    raise InvalidArgumentError(
        f"policy='random' supports Discrete, Box, MultiDiscrete and MultiBinary action spaces, "
        f"not {space!r}; pass a policy object instead"
    )


class PolicySlot:
    """One policy acting inside a wrapper for one agent (internal helper, documented API).

    Args:
        agent: the agent whose action space the policy's actions must belong to.
        policy: ``"random"`` or a callable policy.
        action_space: that agent's action space.
        role: a word for error messages ("adversary", "benign policy", "frozen policy").
    """

    def __init__(
        self, agent: str, policy: Policy | str, action_space: gymnasium.spaces.Space, role: str
    ):
        self.agent = agent
        self.policy = policy
        self.action_space = action_space
        self.role = role

    def reset(self) -> None:
        reset = None if self.policy == RANDOM else getattr(self.policy, "reset", None)
        if callable(reset):
            reset()

    def act(
        self, observation: Any, rng: np.random.Generator, info: Mapping[str, Any] | None = None
    ) -> Any:
        if self.policy == RANDOM:
            return sample_random_action(self.action_space, rng, _action_mask(observation, info))
        # not "random": a callable policy (what check_policy lets through)
        action = cast(Policy, self.policy)(observation)
        if not self.action_space.contains(action):
            raise InvalidActionError(
                f"the {self.role} of agent {self.agent!r} returned action {action!r}, which is "
                f"outside the agent's action space {self.action_space}"
            )
        return action


def check_policy(value: Any, argument: str, also: str = "") -> Policy | str:
    """Validate one policy argument: ``"random"`` or a callable (``also`` names other options)."""
    if isinstance(value, str):
        if value != RANDOM:
            raise InvalidArgumentError(
                f"{argument}={value!r} is not allowed: use 'random' or a callable policy{also}"
            )
        return value
    if not callable(value):
        raise InvalidArgumentError(
            f"{argument} must be 'random' or a callable policy{also}; got {type(value).__name__}"
        )
    return value


def resolve_policies(
    value: Any, argument: str, agents: list[str], possible_agents: list[str]
) -> dict[str, Policy | str] | None:
    """Turn a policy argument (None, 'random', a policy or a dict) into one policy per agent.

    Returns None for ``value=None`` (the exposed slot). A dict must cover every agent in
    ``agents``; keys outside ``possible_agents`` raise :class:`UnknownAgentError`.
    """
    if value is None:
        return None
    if isinstance(value, Mapping):
        unknown = [a for a in value if a not in possible_agents]
        if unknown:
            raise UnknownAgentError(
                f"{argument} has unknown agent IDs {unknown}; allowed: {possible_agents}"
            )
        missing = [a for a in agents if a not in value]
        if missing:
            raise InvalidArgumentError(
                f"{argument} is a dict without a policy for agents {missing} that can be "
                "attacked; give one per attackable agent, or a single policy for all"
            )
        return {a: check_policy(value[a], f"{argument}[{a!r}]") for a in agents}
    policy = check_policy(
        value, argument, " (or None for the exposed slot, or a dict mapping agent IDs to policies)"
    )
    return dict.fromkeys(agents, policy)
