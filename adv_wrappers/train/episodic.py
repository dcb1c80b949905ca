"""Episodic policy gradient for turn-based (AEC) games: batch A2C, QPG and RPG learners.

The learners of Srinivasan et al. (NeurIPS 2018), "Actor-Critic Policy Optimization in
Partially Observable Multiagent Environments", as OpenSpiel's ``policy_gradient`` agent runs
them and as Liu et al. (ICLR 2024) use them on Kuhn poker (App. E.3: an MLP with one hidden
layer of 128 units, batches of 16 episodes, SGD). Each learner has a policy (a kit
:class:`~adv_wrappers.train.networks.MLPActor`, so it is exported and loaded like every other
trained policy) and a critic: ``V(s)`` for A2C, ``Q(s, .)`` for QPG and RPG. The critic is
fit to Monte-Carlo returns (mean squared error on the taken action); the policy losses per
decision, with ``pi`` the masked softmax policy and the critic's outputs held fixed, are

* ``a2c``: ``-(G - V(s)) log pi(a|s)``;
* ``qpg``: ``-sum_a pi(a|s) (Q(s, a) - sum_b pi(b|s) Q(s, b))`` (the gradient flows through
  the leading ``pi`` only; "mean actor-critic");
* ``rpg``: ``sum_a relu(Q(s, a) - sum_b pi(b|s) Q(s, b))``, the thresholded regret (the
  gradient flows through the baseline's ``pi``);

each minus ``entropy_coef`` times the policy's entropy, averaged over the batch's decisions.

Episodes are played by :func:`play_aec_episodes` in any PettingZoo ``AECEnv`` (with or
without a threat wrapper). Observations may be arrays or PettingZoo's classic
``{"observation", "action_mask"}`` dicts; illegal actions get probability 0.

Example:
    >>> import torch
    >>> from adv_wrappers.train.episodic import PGLearner
    >>> _ = torch.manual_seed(0)
    >>> learner = PGLearner(obs_dim=4, num_actions=2, hidden_sizes=(8,), loss="rpg")
    >>> probs = learner.probs(torch.zeros(3, 4), torch.ones(3, 2, dtype=torch.bool))
    >>> tuple(probs.shape), bool(torch.allclose(probs.sum(-1), torch.ones(3, dtype=torch.float64)))
    ((3, 2), True)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from adv_wrappers.errors import InvalidArgumentError
from adv_wrappers.train.networks import ActorSpec, MLPActor, stacked_mlp

__all__ = [
    "PG_LOSSES",
    "Batch",
    "Decisions",
    "PGLearner",
    "masked_logits",
    "play_aec_episodes",
    "sample_action",
    "split_observation",
]

PG_LOSSES = ("a2c", "qpg", "rpg")
"""The policy-gradient losses a :class:`PGLearner` implements."""


def split_observation(observation: Any, num_actions: int) -> tuple[np.ndarray, np.ndarray]:
    """``(flat float32 observation, boolean legal-action mask)`` of one AEC observation.

    A ``{"observation", "action_mask"}`` dict (PettingZoo's classic games) gives its two
    parts; anything else is the observation itself with every action legal.
    """
    if isinstance(observation, Mapping) and "observation" in observation:
        obs = np.asarray(observation["observation"], np.float32).ravel()
        mask = np.asarray(observation.get("action_mask", np.ones(num_actions)), bool)
        return obs, mask
    return np.asarray(observation, np.float32).ravel(), np.ones(num_actions, bool)


def masked_logits(actor: MLPActor, obs: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """A one-member categorical actor's logits ``[B, A]`` for ``obs [B, D]``, illegal
    actions (``masks`` False) at the dtype's lowest value."""
    out = actor.net(obs.unsqueeze(0)).squeeze(0)
    return out.masked_fill(~masks, torch.finfo(out.dtype).min)


@torch.no_grad()
def sample_action(actor: MLPActor, obs: np.ndarray, mask: np.ndarray) -> int:
    """Sample one action of a one-member categorical actor (``torch``'s global RNG)."""
    logits = masked_logits(actor, torch.as_tensor(obs)[None], torch.as_tensor(mask)[None])
    return int(torch.distributions.Categorical(logits=logits).sample()[0])


@dataclass
class Decisions:
    """One learner's decisions in a batch of episodes: what it saw, did and got afterwards.

    Attributes:
        obs: the flat observations.
        masks: the legal-action masks.
        actions: the actions taken.
        returns: the discounted sums of the rewards the agent received after each decision.
    """

    obs: list[np.ndarray] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.actions)

    def extend(self, other: Decisions) -> None:
        """Append another batch's decisions."""
        self.obs += other.obs
        self.masks += other.masks
        self.actions += other.actions
        self.returns += other.returns

    def batch(self, device: torch.device | str = "cpu") -> Batch:
        """The decisions as tensors.

        Raises:
            InvalidArgumentError: no decisions.
        """
        if not self.actions:
            raise InvalidArgumentError("a batch needs at least one decision")
        return Batch(
            obs=torch.as_tensor(np.stack(self.obs), device=device),
            masks=torch.as_tensor(np.stack(self.masks), device=device),
            actions=torch.as_tensor(self.actions, dtype=torch.long, device=device),
            returns=torch.as_tensor(self.returns, dtype=torch.float32, device=device),
        )


@dataclass
class Batch:
    """:class:`Decisions` as tensors: ``obs [B, D]``, ``masks [B, A]`` (bool),
    ``actions [B]`` (long), ``returns [B]``."""

    obs: torch.Tensor
    masks: torch.Tensor
    actions: torch.Tensor
    returns: torch.Tensor


class PGLearner(nn.Module):
    """A policy and its critic, with the losses of :data:`PG_LOSSES`.

    Args:
        obs_dim: size of the flat observation.
        num_actions: number of discrete actions.
        hidden_sizes: hidden layers of both networks.
        loss: one of :data:`PG_LOSSES`.
        activation: ``"relu"`` (OpenSpiel's) or ``"tanh"``.

    Attributes:
        actor: the policy (:class:`MLPActor`, categorical head).
        critic: ``V`` (one output, ``a2c``) or ``Q`` (``num_actions`` outputs).

    Raises:
        InvalidArgumentError: an unknown loss.
    """

    def __init__(
        self,
        obs_dim: int,
        num_actions: int,
        hidden_sizes: tuple[int, ...] = (128,),
        loss: str = "rpg",
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if loss not in PG_LOSSES:
            raise InvalidArgumentError(f"loss={loss!r} is not one of {PG_LOSSES}")
        self.loss = loss
        self.num_actions = num_actions
        spec = ActorSpec(obs_dim, num_actions, "categorical", tuple(hidden_sizes), activation)
        self.actor = MLPActor(spec)
        outputs = 1 if loss == "a2c" else num_actions
        self.critic = stacked_mlp(1, (obs_dim, *hidden_sizes, outputs), 1.0, activation)

    def logits(self, obs: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Masked logits ``[B, A]`` (:func:`masked_logits`)."""
        return masked_logits(self.actor, obs, masks)

    def probs(self, obs: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """The policy's action probabilities ``[B, A]`` in float64 (0 on illegal actions)."""
        return torch.softmax(self.logits(obs, masks).double(), dim=-1)

    def act(self, obs: np.ndarray, mask: np.ndarray) -> int:
        """Sample one action (``torch``'s global RNG) for one flat observation."""
        return sample_action(self.actor, obs, mask)

    def critic_loss(self, batch: Batch) -> torch.Tensor:
        """Mean squared error of ``V(s)`` (``a2c``) or ``Q(s, a)`` against the returns."""
        out = self.critic(batch.obs.unsqueeze(0)).squeeze(0)
        if self.loss == "a2c":
            pred = out[:, 0]
        else:
            pred = out.gather(1, batch.actions[:, None])[:, 0]
        return F.mse_loss(pred, batch.returns)

    def policy_loss(self, batch: Batch, entropy_coef: float = 0.0) -> torch.Tensor:
        """The policy loss of :attr:`loss` (module docstring) minus the entropy bonus."""
        log_probs = torch.log_softmax(self.logits(batch.obs, batch.masks), dim=-1)
        probs = log_probs.exp()
        with torch.no_grad():
            critic = self.critic(batch.obs.unsqueeze(0)).squeeze(0)
        if self.loss == "a2c":
            advantage = batch.returns - critic[:, 0]
            taken = log_probs.gather(1, batch.actions[:, None])[:, 0]
            per_decision = -advantage * taken
        else:
            q = critic.masked_fill(~batch.masks, 0.0)
            if self.loss == "qpg":
                baseline = (probs.detach() * q).sum(-1, keepdim=True)
                per_decision = -(probs * (q - baseline)).sum(-1)
            else:
                baseline = (probs * q).sum(-1, keepdim=True)
                per_decision = (F.relu(q - baseline) * batch.masks).sum(-1)
        entropy = -(probs * log_probs.masked_fill(~batch.masks, 0.0)).sum(-1)
        return (per_decision - entropy_coef * entropy).mean()


def play_aec_episodes(
    env: Any,
    episodes: int,
    act: Callable[[str, np.ndarray, np.ndarray], int],
    num_actions: Mapping[str, int],
    *,
    gamma: float = 1.0,
    seed: int | None = None,
    keep: Callable[[str, Any], bool] | None = None,
) -> tuple[dict[str, Decisions], dict[str, list[float]], int]:
    """Play ``episodes`` episodes of an ``AECEnv`` and collect every agent's decisions.

    At each turn ``act(agent, flat_obs, legal_mask)`` gives the agent's action; every live
    agent acts. A reward the agent receives between two of its turns (``env.last()``'s
    accumulated reward) belongs to its earlier decision; returns are discounted by
    ``gamma`` per own decision.

    Args:
        env: a PettingZoo ``AECEnv`` (raw or wrapped).
        episodes: number of episodes (>= 1).
        act: the policy of every agent.
        num_actions: agent -> size of its Discrete action space (for observations without
            an action mask).
        gamma: discount per decision in [0, 1].
        seed: passed to the first ``reset`` (later episodes continue the env's RNG).
        keep: ``keep(agent, env)`` is called right after each ``env.step(action)``; a
            decision for which it returns False is left out of the returned decisions
            (its reward still counts towards earlier decisions' returns). E.g. a partially
            controlled agent's adversary keeps only the turns its action was executed.

    Returns:
        ``(decisions, episode_returns, steps)``: agent -> :class:`Decisions`; agent -> the
        undiscounted return of each episode the agent took part in; the number of
        ``env.step`` calls with an action.

    Raises:
        InvalidArgumentError: ``episodes < 1`` or ``gamma`` outside [0, 1].
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise InvalidArgumentError(f"episodes must be an int >= 1; got {episodes!r}")
    if not 0.0 <= gamma <= 1.0:
        raise InvalidArgumentError(f"gamma must be in [0, 1]; got {gamma!r}")
    out: dict[str, Decisions] = {}
    totals: dict[str, list[float]] = {}
    steps = 0
    for e in range(episodes):
        env.reset(seed=seed if e == 0 else None)
        taken: dict[str, list[tuple[np.ndarray, np.ndarray, int, bool]]] = {}
        rewards: dict[str, list[float]] = {}  # rewards[agent][k]: after decision k
        total: dict[str, float] = {}
        for agent in env.agent_iter():
            observation, reward, termination, truncation, _ = env.last()
            total[agent] = total.get(agent, 0.0) + float(reward)
            if rewards.get(agent):
                rewards[agent][-1] += float(reward)
            if termination or truncation:
                env.step(None)
                continue
            obs, mask = split_observation(observation, num_actions[agent])
            action = act(agent, obs, mask)
            env.step(action)
            steps += 1
            kept = True if keep is None else bool(keep(agent, env))
            taken.setdefault(agent, []).append((obs, mask, int(action), kept))
            rewards.setdefault(agent, []).append(0.0)
        for agent, value in total.items():
            totals.setdefault(agent, []).append(value)
        for agent, decisions in taken.items():
            g, returns = 0.0, []
            for r in reversed(rewards[agent]):
                g = r + gamma * g
                returns.append(g)
            returns.reverse()
            d = out.setdefault(agent, Decisions())
            for (obs, mask, action, kept), ret in zip(decisions, returns, strict=True):
                if kept:
                    d.obs.append(obs)
                    d.masks.append(mask)
                    d.actions.append(action)
                    d.returns.append(ret)
    return out, totals, steps
