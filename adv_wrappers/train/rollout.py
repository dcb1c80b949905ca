"""Rollouts of a vector env: storage, actions into the env, trajectory ends, GAE, episodes.

Every on-policy trainer collects ``num_steps`` vector steps of ``num_envs`` copies, each with
an agent axis of ``num_agents`` slots (:mod:`adv_wrappers.vector`); these are the pieces of
that loop that do not depend on the algorithm:

* :class:`Rollout` - the storage, shaped ``(num_steps, num_envs, num_agents, ...)`` with
  CleanRL's names, and its flattened batch.
* :func:`env_action` - sampled actions -> what ``envs.step`` takes.
* :func:`trajectory_ends` - where each slot's trajectory stops after a step and, for a
  truncation, the value to bootstrap from.
* :func:`gae` - generalized advantage estimation with those ends and per-slot masks.
* :class:`EpisodeStats` - per-agent episodic returns for logging.

Change logs:
    * v0.2.0 - Moved here from ``adv_wrappers.training``; :class:`Rollout`,
      :func:`env_action` and :func:`trajectory_ends` added (they were copied in every trainer).
    * v0.1.0 - Initially added.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium
import numpy as np
import torch

__all__ = ["EpisodeStats", "Rollout", "env_action", "gae", "trajectory_ends"]


class Rollout:
    """Rollout storage of ``num_steps`` vector steps, CleanRL's names and shapes.

    Args:
        num_steps: steps per rollout.
        num_envs: copies of the vector env.
        num_agents: slots of the agent axis.
        obs_shape: one slot's observation shape (the vector env's
            ``single_observation_space.shape``).
        action_space: the common action space (Discrete or Box) of the slots.
        device: where the tensors live.
        state_shape: with a global state (a centralized critic), its shape; ``states`` is
            then ``[num_steps, num_envs, *state_shape]``.

    Attributes:
        obs: ``[T, E, A, *obs_shape]`` observations.
        states: ``[T, E, *state_shape]`` or ``None``.
        actions: ``[T, E, A]`` (long, Discrete) or ``[T, E, A, action_dim]`` (float, Box).
        logprobs, rewards, values: ``[T, E, A]``.
        masks: ``[T, E, A]`` bool, the slot acted at this step.
        policy_masks: ``[T, E, A]`` bool, all True unless a trainer clears entries: a step
            whose action had no effect on the env (e.g. a partially controlled agent's
            adversary whose action the wrapper did not execute) stays in the value loss
            and the advantages but leaves the policy loss (``flatten`` ANDs it with
            ``masks``).
        ends: ``[T, E, A]`` 1.0 where the slot's trajectory stops after this step.
        end_values: ``[T, E, A]`` the value to bootstrap from there (truncations).
        action_shape: ``()`` or ``(action_dim,)``.
    """

    def __init__(
        self,
        num_steps: int,
        num_envs: int,
        num_agents: int,
        obs_shape: tuple[int, ...],
        action_space: gymnasium.Space,
        device: torch.device | str = "cpu",
        state_shape: tuple[int, ...] | None = None,
    ) -> None:
        shape = (num_steps, num_envs, num_agents)
        discrete = isinstance(action_space, gymnasium.spaces.Discrete)
        self.obs_shape = tuple(obs_shape)
        self.state_shape = None if state_shape is None else tuple(state_shape)
        self.action_shape: tuple[int, ...] = (
            () if discrete else (int(np.prod(action_space.shape)),)  # type: ignore[arg-type]
        )
        self.obs = torch.zeros(shape + self.obs_shape, device=device)
        self.states = (
            None
            if self.state_shape is None
            else torch.zeros(shape[:2] + self.state_shape, device=device)
        )
        dtype = torch.long if discrete else torch.float
        self.actions = torch.zeros(shape + self.action_shape, dtype=dtype, device=device)
        self.logprobs = torch.zeros(shape, device=device)
        self.rewards = torch.zeros(shape, device=device)
        self.values = torch.zeros(shape, device=device)
        self.masks = torch.zeros(shape, dtype=torch.bool, device=device)
        self.policy_masks = torch.ones(shape, dtype=torch.bool, device=device)
        self.ends = torch.zeros(shape, device=device)
        self.end_values = torch.zeros(shape, device=device)

    def flatten(self, advantages: torch.Tensor, returns: torch.Tensor) -> dict[str, torch.Tensor]:
        """The batch: ``(step, env)`` flattened to one axis, the agent axis kept.

        Returns:
            ``obs`` ``[T*E, A, *obs_shape]``, ``actions``, ``logprobs``, ``advantages``,
            ``returns``, ``values``, ``masks``, ``policy_masks`` (``masks`` and
            :attr:`policy_masks`) (``[T*E, A, ...]``) and, with a state,
            ``states`` ``[T*E, *state_shape]``.
        """
        num_agents = self.obs.shape[2]
        batch = {
            "obs": self.obs.reshape((-1, num_agents) + self.obs_shape),
            "actions": self.actions.reshape((-1, num_agents) + self.action_shape),
            "logprobs": self.logprobs.reshape(-1, num_agents),
            "advantages": advantages.reshape(-1, num_agents),
            "returns": returns.reshape(-1, num_agents),
            "values": self.values.reshape(-1, num_agents),
            "masks": self.masks.reshape(-1, num_agents),
            "policy_masks": (self.masks & self.policy_masks).reshape(-1, num_agents),
        }
        if self.states is not None and self.state_shape is not None:
            batch["states"] = self.states.reshape((-1,) + self.state_shape)
        return batch


def env_action(action: torch.Tensor, action_space: gymnasium.Space) -> np.ndarray:
    """Sampled actions ``[E, A, ...]`` -> the array ``envs.step`` takes.

    Discrete: the category index shifted by the space's ``start``. Box: the Gaussian sample
    clipped to the bounds (CleanRL's continuous PPO; the sample itself is what is stored and
    trained on).
    """
    if isinstance(action_space, gymnasium.spaces.Discrete):
        return action.cpu().numpy() + int(action_space.start)
    low, high = action_space.low.ravel(), action_space.high.ravel()  # type: ignore[attr-defined]
    return np.clip(action.cpu().numpy(), low, high)


def trajectory_ends(
    terminations: np.ndarray,
    truncations: np.ndarray,
    infos: Mapping[str, Any],
    next_obs: np.ndarray,
    get_value: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device | str = "cpu",
    *,
    bootstrap_from: str = "obs",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each slot's trajectory stops after a vector step, and what it bootstraps from.

    A slot's trajectory ends when it terminated or was truncated, left the episode (no longer
    ``alive``) or its copy was reset. A truncated slot that still has a last observation
    bootstraps from ``V(last observation)``: the copy's ``final_obs`` when it was reset,
    otherwise ``next_obs`` (or the global state with ``bootstrap_from="state"``, for a
    centralized critic). A termination bootstraps from 0.

    Args:
        terminations, truncations: ``[E, A]`` bool, from ``envs.step``.
        infos: the vector env's infos of that step (``reset``, ``alive``, ``has_obs``,
            ``final_alive``, ``final_obs``; ``state`` and ``final_state`` for the state).
        next_obs: ``[E, A, ...]`` the observations ``envs.step`` returned.
        get_value: batched value function, ``[E, A, ...]`` (or ``[E, *state_shape]``) ->
            ``[E, A]``; called under ``torch.no_grad`` and only if some slot was truncated.
        device: where the returned tensors live.
        bootstrap_from: ``"obs"`` or ``"state"``.

    Returns:
        ``(ends, end_values)``, ``[E, A]`` float tensors: 1.0 where the trajectory ends, and
        the bootstrap value (0 except at truncations).
    """
    reset = infos["reset"][:, None]
    ends = torch.Tensor(terminations | truncations | reset | ~infos["alive"]).to(device)
    has_last_obs = np.where(reset, infos["final_alive"], infos["has_obs"])
    truncated = truncations & ~terminations & has_last_obs
    end_values = torch.zeros(ends.shape, device=device)
    if truncated.any():
        if bootstrap_from == "state":
            current, final = infos["state"], infos["final_state"]
        else:
            current, final = next_obs, infos["final_obs"]
        reset_e = infos["reset"].reshape((-1,) + (1,) * (current.ndim - 1))
        last = torch.Tensor(np.where(reset_e, final, current)).to(device)
        with torch.no_grad():
            end_values = get_value(last) * torch.Tensor(truncated).to(device)
    return ends, end_values


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_value: torch.Tensor,
    ends: torch.Tensor,
    end_values: torch.Tensor,
    masks: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation (Schulman et al. 2016) over a rollout.

    All inputs are ``[T, ...]`` (e.g. ``[num_steps, num_envs, num_agents]``) except
    ``next_value`` (``[...]``)::

        delta_t = r_t + gamma * ((1 - end_t) * V_{t+1} + end_t * end_value_t) - V_t
        A_t     = mask_t * (delta_t + gamma * lambda * (1 - end_t) * A_{t+1})

    with ``V_T = next_value``. ``end_t`` = 1 when the slot's trajectory stops after step
    ``t`` (terminated, truncated, the agent left, or the copy was reset); ``end_value_t`` is
    the value to bootstrap from there: 0 after a termination, ``V(final observation)``
    after a truncation. A slot with ``mask_t = 0`` (the agent did not act) gets advantage 0
    and passes nothing back; a slot that does not end at ``t`` must act at ``t + 1``.

    Args:
        rewards: ``r_t``.
        values: ``V(o_t)``.
        next_value: the value of the observation after the last step.
        ends: 1.0 where the trajectory ends after step ``t``.
        end_values: bootstrap values at the ends (ignored elsewhere).
        masks: 1.0 where the agent acted at step ``t``.
        gamma: discount.
        gae_lambda: the GAE lambda.

    Returns:
        ``(advantages, returns)`` with ``returns = advantages + values``.
    """

    steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    lastgaelam = torch.zeros_like(next_value)
    for t in reversed(range(steps)):
        nextvalues = next_value if t == steps - 1 else values[t + 1]
        cont = 1.0 - ends[t]
        delta = rewards[t] + gamma * (cont * nextvalues + ends[t] * end_values[t]) - values[t]
        lastgaelam = (delta + gamma * gae_lambda * cont * lastgaelam) * masks[t]
        advantages[t] = lastgaelam
    return advantages, advantages + values


# --------------------------------------------------------------------------- episodes


class EpisodeStats:
    """Per-agent returns and lengths of the episodes of a vector env's copies.

    Args:
        num_envs: the number of copies.
        num_agents: the agent axis size.

    An agent's return is the sum of its rewards over the episode; agents that never acted
    in an episode get ``NaN`` for it. Finished episodes are kept until :meth:`scalars`
    summarizes them for logging.
    """

    def __init__(self, num_envs: int, num_agents: int) -> None:
        self.returns = np.zeros((num_envs, num_agents), dtype=np.float64)
        self.present = np.zeros((num_envs, num_agents), dtype=bool)
        self.lengths = np.zeros(num_envs, dtype=np.int64)
        self._finished: list[tuple[np.ndarray, np.ndarray]] = []
        self.recent_return = float("nan")
        """Mean over agents of the mean return of the episodes last summarized."""

    def step(
        self, rewards: np.ndarray, acted: np.ndarray, reset: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Add one vector step; return the episodes that finished in it.

        Args:
            rewards: ``[E, A]`` rewards of the step.
            acted: ``[E, A]`` agents that acted (``infos["acted"]``).
            reset: ``[E]`` copies whose episode ended (``infos["reset"]``).

        Returns:
            ``(returns, lengths)``: ``[F, A]`` (NaN for absent agents) and ``[F]`` for the
            ``F`` finished episodes.
        """
        self.returns += rewards
        self.present |= acted
        self.lengths += 1
        done = np.flatnonzero(reset)
        returns = np.where(self.present[done], self.returns[done], np.nan)
        lengths = self.lengths[done].copy()
        self.returns[done] = 0.0
        self.present[done] = False
        self.lengths[done] = 0
        if done.size:
            self._finished.append((returns, lengths))
        return returns, lengths

    def scalars(self, agents: Sequence[str], prefix: str = "charts") -> dict[str, float]:
        """Summarize (and forget) the episodes finished since the last call, for logging.

        Args:
            agents: the names of the agent axis.
            prefix: the TensorBoard section.

        Returns:
            ``{prefix}/episodic_return`` (mean over agents of each agent's mean return),
            ``{prefix}/episodic_return/<agent>`` and ``{prefix}/episodic_length``; empty if
            no episode finished.
        """
        if not self._finished:
            return {}
        returns = np.concatenate([r for r, _ in self._finished])
        lengths = np.concatenate([n for _, n in self._finished])
        self._finished.clear()
        with warnings.catch_warnings():  # an agent absent from every episode: NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            per_agent = np.nanmean(returns, axis=0)
        self.recent_return = float(np.nanmean(per_agent))
        scalars = {
            f"{prefix}/episodic_return": self.recent_return,
            f"{prefix}/episodic_length": float(lengths.mean()),
        }
        for agent, value in zip(agents, per_agent, strict=True):
            scalars[f"{prefix}/episodic_return/{agent}"] = float(value)
        return scalars

    def clear(self) -> None:
        """Forget the episodes in progress (after ``envs.reset``)."""
        self.returns.fill(0.0)
        self.present.fill(False)
        self.lengths.fill(0)
