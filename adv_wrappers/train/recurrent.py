"""Recurrent pieces of the trainers: episode starts, minibatches of sequences, belief updates.

A recurrent network (:class:`~adv_wrappers.train.networks.StackedGRU`,
:class:`~adv_wrappers.train.networks.BeliefNet`) carries a hidden state through an episode,
so its training data cannot be shuffled step by step: a minibatch is a set of whole
*sequences*, one per env copy, each the copy's ``num_steps`` steps of the rollout in time
order, started from the hidden state the copy had when the rollout began and reset to zero
where an episode starts inside it (CleanRL's ``ppo_atari_lstm.py`` does the same).

* :func:`episode_starts` - which copies begin an episode at the next step.
* :func:`sequence_minibatches` - shuffled env indices, cut into minibatches of sequences.
* :func:`belief_update` - epochs of binary cross-entropy on the true types (Li et al. (ICLR
  2024), Eq. 11), truncated back-propagation through each whole sequence.
* :func:`belief_metrics` - the cross-entropy and accuracy of stored beliefs, for logging.

Example:
    >>> import torch
    >>> from adv_wrappers.train.networks import StackedGRU
    >>> gru = StackedGRU(members=1, input_size=3, hidden_size=4)
    >>> x = torch.ones(1, 5, 2, 3)                   # [M, T, E, D]
    >>> starts = torch.tensor([[1, 1], [0, 0], [0, 1], [0, 0], [0, 0]])  # [T, E]
    >>> out, h = gru.sequence(x, gru.initial_state(1, 2), starts)
    >>> bool(torch.equal(out[0, 2, 1], out[0, 0, 1]))    # copy 1 restarted at t = 2
    True
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from adv_wrappers.train.networks import BeliefNet, clip_grad_norm_per_member_

__all__ = ["belief_metrics", "belief_update", "episode_starts", "sequence_minibatches"]


def episode_starts(infos: Mapping[str, Any], device: torch.device | str = "cpu") -> torch.Tensor:
    """``[E]`` float: 1.0 where the copy's next observation is the first of an episode.

    After ``envs.reset`` (infos without ``"reset"``) every copy starts; after ``envs.step``
    the copies that were auto-reset (``infos["reset"]``) do.
    """
    if "reset" not in infos:
        return torch.ones(len(infos["alive"]), device=device)
    return torch.tensor(infos["reset"], dtype=torch.float32, device=device)


def sequence_minibatches(num_envs: int, envs_per_minibatch: int) -> Iterator[np.ndarray]:
    """Env indices in a random order (NumPy's global RNG, seeded and checkpointed by the
    trainers), cut into minibatches of ``envs_per_minibatch`` sequences (the last may be
    smaller)."""
    order = np.random.permutation(num_envs)  # noqa: NPY002 (global RNG: seeded, checkpointed)
    for start in range(0, num_envs, envs_per_minibatch):
        yield order[start : start + envs_per_minibatch]


def _masked_bce(logits: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean over the type entries, then over the masked samples, per member: ``[M]``."""
    bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(-1)
    m = masks.to(bce.dtype)
    return (bce * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp(min=1.0)


def belief_update(
    net: BeliefNet,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,
    initial_state: torch.Tensor,
    starts: torch.Tensor,
    labels: torch.Tensor,
    masks: torch.Tensor,
    *,
    epochs: int,
    envs_per_minibatch: int,
    max_grad_norm: float,
) -> dict[str, float]:
    """Train a belief network by binary cross-entropy on the true types, over sequences.

    Each epoch runs the GRU over every minibatch of env sequences
    (:func:`sequence_minibatches`) from the rollout's initial hidden state, resetting it at
    episode starts, and takes one optimizer step on the masked mean cross-entropy of each of
    the ``M`` input rows (agents), summed over the rows, after per-member gradient clipping.

    Args:
        net: the belief network (``members`` stacked copies, or one shared).
        optimizer: an optimizer over (at least) ``net``'s parameters; parameters without a
            gradient are left alone by Adam, so it may be the trainer's only optimizer.
        inputs: ``[M, T, E, D]`` the network's input at every step of the rollout (``M``
            rows: the members, or the agents that share one network).
        initial_state: ``[M, E, H]`` the hidden state before the rollout's first step.
        starts: ``[T, E]`` 1.0 where a copy's step is the first of an episode.
        labels: ``[M, T, E, K]`` the true types (0/1 floats).
        masks: ``[M, T, E]`` which samples count (e.g. the agent acted).
        epochs: passes over the rollout.
        envs_per_minibatch: sequences per minibatch.
        max_grad_norm: per-member gradient-norm clip.

    Returns:
        ``losses/belief_bce``: the last minibatch's cross-entropy (mean over the rows).
    """
    num_envs, rows = inputs.shape[2], inputs.shape[0]
    members = net.gru.members
    loss = torch.zeros(())
    for _epoch in range(epochs):
        for mb in sequence_minibatches(num_envs, envs_per_minibatch):
            logits, _ = net.sequence(inputs[:, :, mb], initial_state[:, mb], starts[:, mb])
            member_loss = _masked_bce(logits, labels[:, :, mb], masks[:, :, mb])
            loss = member_loss.sum()
            optimizer.zero_grad()
            loss.backward()
            clip_grad_norm_per_member_(net.parameters(), max_grad_norm, members)
            optimizer.step()
    return {"losses/belief_bce": float(loss.item()) / rows}


def belief_metrics(
    probabilities: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor
) -> dict[str, float]:
    """How good stored beliefs were: cross-entropy and accuracy against the true types.

    Args:
        probabilities: ``[..., K]`` the beliefs (sigmoid outputs) the agents acted on.
        labels: ``[..., K]`` the true types.
        masks: ``[...]`` which samples count.

    Returns:
        ``belief/bce`` (mean over samples and entries), ``belief/accuracy`` (fraction of
        samples whose every entry, thresholded at 0.5, is right) and
        ``belief/attacked_accuracy`` (the same over the samples where some entry is 1,
        i.e. an ally is Byzantine; NaN if none). NaN when no sample counts.
    """
    m = masks.bool()
    if not m.any():
        nan = float("nan")
        return {"belief/bce": nan, "belief/accuracy": nan, "belief/attacked_accuracy": nan}
    p, y = probabilities[m], labels[m]
    bce = F.binary_cross_entropy(p.clamp(1e-7, 1 - 1e-7), y).item()
    correct = ((p > 0.5) == (y > 0.5)).all(-1)
    attacked = (y > 0.5).any(-1)
    return {
        "belief/bce": float(bce),
        "belief/accuracy": float(correct.float().mean().item()),
        "belief/attacked_accuracy": float(correct[attacked].float().mean().item())
        if attacked.any()
        else float("nan"),
    }
