"""PPO for stacked per-member networks: the clipped loss, and the update loop.

Every network here is a stack of *members* (one per agent, adversary, ...; see
:mod:`adv_wrappers.train.networks`) updated by one optimizer. A member learns only from its
own samples: its loss is a masked mean over the rows where it acted, and the losses of
independent members are summed, so each member's parameters get exactly the gradient of its
own PPO loss (Schulman et al. 2017, CleanRL's ``ppo.py`` conventions).

* :func:`ppo_loss` - the clipped surrogate, value and entropy losses per member, with
  per-member advantage normalization and value clipping; any layout, the sample axis given.
* :func:`ppo_update` - CleanRL's update epochs over shuffled minibatches of ``(step, env)``
  samples with the agent axis kept (independent and centralized-critic PPO), with
  per-member gradient clipping, the divergence guard and ``target_kl``.
* :func:`member_minibatches`, :func:`hold_idle_members_` - minibatches of rows grouped by
  member, for trainers whose members see different rows (e.g. ART's adversaries per victim).
* :func:`explained_variance`, :func:`summarize` - logging.

Change logs:
    * v0.2.0 - Initially added (the update was copied in every trainer before).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from adv_wrappers.train.networks import clip_grad_norm_per_member_

__all__ = [
    "LOSS_FIELDS",
    "explained_variance",
    "hold_idle_members_",
    "masked_mean",
    "member_minibatches",
    "ppo_loss",
    "ppo_update",
    "summarize",
    "value_error",
]


LOSS_FIELDS = ("logprobs", "advantages", "returns", "values")
"""What :func:`ppo_loss` reads of the rollout, per sample (besides the networks' outputs)."""


def masked_mean(x: torch.Tensor, mask: torch.Tensor, count: torch.Tensor, dim: int = 0):
    """Per-member mean of ``x`` over the samples (axis ``dim``) where ``mask`` is set."""
    return torch.where(mask, x, 0.0).sum(dim) / count


def value_error(value: torch.Tensor, target: torch.Tensor, huber_delta: float | None = None):
    """``0.5 * (value - target) ** 2``, or the Huber loss (the same below ``huber_delta``)."""
    if huber_delta is None:
        return 0.5 * (value - target) ** 2
    return F.huber_loss(value, target, reduction="none", delta=huber_delta)


def ppo_loss(
    newlogprob: torch.Tensor,
    entropy: torch.Tensor,
    newvalue: torch.Tensor,
    mb: Mapping[str, torch.Tensor],
    mask: torch.Tensor,
    args: Any,
    dim: int = 0,
    policy_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's loss of every member on its minibatch samples.

    Args:
        newlogprob, entropy, newvalue: the current networks on the minibatch, each shaped
            like ``mask`` (samples along ``dim``, members along the other axis).
        mb: the rollout's :data:`LOSS_FIELDS` (``logprobs``, ``advantages``, ``returns``,
            ``values``) of the same samples.
        mask: bool, the member acted at that sample (its loss averages over those only).
        args: ``clip_coef``, ``norm_adv``, ``clip_vloss``, ``ent_coef``, ``vf_coef`` and,
            optionally, ``huber_delta`` (Huber value loss, as in MAPPO's code).
        dim: the sample axis: 0 for ``[samples, members]``, 1 for ``[members, samples]``.
        policy_mask: the samples of the policy terms (clipped surrogate, entropy, advantage
            normalization, KL and clip fraction), a subset of ``mask``; ``None``: ``mask``.
            The value loss always uses ``mask``.

    Returns:
        ``(loss, stats)``: the per-member loss ``[M]`` and per-member ``value_loss``,
        ``policy_loss``, ``entropy``, ``old_approx_kl``, ``approx_kl`` and ``clipfrac``.
    """
    count = mask.sum(dim).clamp(min=1)
    pmask = mask if policy_mask is None else policy_mask
    pcount = count if policy_mask is None else pmask.sum(dim).clamp(min=1)
    logratio = newlogprob - mb["logprobs"]
    ratio = logratio.exp()
    with torch.no_grad():
        # calculate approx_kl http://joschu.net/blog/kl-approx.html
        old_approx_kl = masked_mean(-logratio, pmask, pcount, dim)
        approx_kl = masked_mean((ratio - 1) - logratio, pmask, pcount, dim)
        clipfrac = masked_mean(((ratio - 1.0).abs() > args.clip_coef).float(), pmask, pcount, dim)

    mb_advantages = mb["advantages"]
    if args.norm_adv:  # per member, over its own samples
        adv_mean = masked_mean(mb_advantages, pmask, pcount, dim).unsqueeze(dim)
        centered = (mb_advantages - adv_mean) ** 2
        adv_var = masked_mean(centered, pmask, (pcount - 1).clamp(min=1), dim).unsqueeze(dim)
        mb_advantages = (mb_advantages - adv_mean) / (adv_var.sqrt() + 1e-8)

    # Policy loss
    pg_loss1 = -mb_advantages * ratio
    pg_loss2 = -mb_advantages * torch.clamp(ratio, 1 - args.clip_coef, 1 + args.clip_coef)
    pg_loss = masked_mean(torch.max(pg_loss1, pg_loss2), pmask, pcount, dim)

    # Value loss
    huber_delta = getattr(args, "huber_delta", None)
    v_loss_unclipped = value_error(newvalue, mb["returns"], huber_delta)
    if args.clip_vloss:
        v_clipped = mb["values"] + torch.clamp(
            newvalue - mb["values"], -args.clip_coef, args.clip_coef
        )
        v_loss_clipped = value_error(v_clipped, mb["returns"], huber_delta)
        v_loss = masked_mean(torch.max(v_loss_unclipped, v_loss_clipped), mask, count, dim)
    else:
        v_loss = masked_mean(v_loss_unclipped, mask, count, dim)

    entropy_loss = masked_mean(entropy, pmask, pcount, dim)
    loss = pg_loss - args.ent_coef * entropy_loss + v_loss * args.vf_coef
    stats = {
        "value_loss": v_loss,
        "policy_loss": pg_loss,
        "entropy": entropy_loss,
        "old_approx_kl": old_approx_kl,
        "approx_kl": approx_kl,
        "clipfrac": clipfrac,
    }
    return loss, stats


def minibatch_loss(
    evaluate_actions: Callable[
        [dict[str, torch.Tensor]], tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    ],
    mb: dict[str, torch.Tensor],
    args: Any,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The networks on a minibatch, then :func:`ppo_loss` (what :func:`ppo_update` compiles
    with ``args.compile``)."""
    newlogprob, entropy, newvalue = evaluate_actions(mb)
    return ppo_loss(
        newlogprob, entropy, newvalue, mb, mb["masks"], args, policy_mask=mb.get("policy_masks")
    )


@functools.cache
def _compiled_minibatch_loss() -> Callable[..., Any]:
    # one compiled function per process: dynamo keys its cache on the code of the trainer's
    # evaluate_actions and guards on the networks it closes over, so the lambda a trainer
    # builds every iteration reuses the compiled graph (a minibatch of another size, e.g. the
    # last one of an epoch, compiles once more)
    return torch.compile(minibatch_loss, dynamic=False)


def ppo_update(
    args: Any,
    batch: Mapping[str, torch.Tensor],
    evaluate_actions: Callable[
        [dict[str, torch.Tensor]], tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    ],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    members: int,
    shared: bool,
    run: Any,
    iteration: int,
    global_step: int,
) -> dict[str, float]:
    """CleanRL's PPO update epochs, with the agent axis kept: every member learns from its own
    samples.

    Each epoch shuffles the ``batch_size`` ``(step, env)`` samples with the global NumPy RNG
    (seeded and checkpointed by the trainers) and cuts them into minibatches of
    ``minibatch_size``; every minibatch is one optimizer step on the sum of the members'
    losses (their mean with one shared network), after per-member gradient clipping.

    Args:
        args: the trainer's ``Args`` (``batch_size``, ``minibatch_size``, ``update_epochs``,
            ``max_grad_norm``, ``target_kl``, ``debug_nan_at_iteration``, what
            :func:`ppo_loss` reads and, optionally, ``compile``: run the networks and the
            loss as one ``torch.compile`` graph, forward and backward; it costs a compile
            of tens of seconds at the first minibatch of each size).
        batch: :meth:`~adv_wrappers.train.rollout.Rollout.flatten`'s batch.
        evaluate_actions: a minibatch (``batch`` indexed by the minibatch's samples) ->
            ``(newlogprob, entropy, newvalue)`` of its stored actions under the current
            networks, each ``[mb, A]``.
        model: the module whose parameters the optimizer updates.
        optimizer: its optimizer.
        members: the number of stacked members (for per-member gradient clipping).
        shared: one network for every agent (the loss is the mean over agents).
        run: the :class:`~adv_wrappers.train.tracking.Run` (divergence guard).
        iteration, global_step: where the run is (for messages).

    Returns:
        ``losses/*`` scalars for logging: the last minibatch's losses and KL (mean over
        members), the clip fraction over all minibatches and the explained variance.
    """
    losses = _compiled_minibatch_loss() if getattr(args, "compile", False) else minibatch_loss
    b_inds = np.arange(args.batch_size)
    clipfracs = []
    device = next(iter(batch.values())).device
    for _epoch in range(args.update_epochs):
        np.random.shuffle(b_inds)  # noqa: NPY002 (global RNG: seeded, checkpointed)
        epoch_inds = torch.as_tensor(b_inds, device=device)  # (one conversion per epoch)
        for start in range(0, args.batch_size, args.minibatch_size):
            mb_inds = epoch_inds[start : start + args.minibatch_size]
            mb = {k: v[mb_inds] for k, v in batch.items()}  # LOSS_FIELDS, masks, inputs
            member_loss, stats = losses(evaluate_actions, mb, args)
            clipfracs.append(stats["clipfrac"].mean())  # (one sync at the end, not per step)
            # independent networks: the sum gives each exactly the gradient of its own loss
            loss = member_loss.mean() if shared else member_loss.sum()
            if iteration == args.debug_nan_at_iteration:
                loss = loss * float("nan")
            run.check_finite({"losses/loss": loss}, iteration=iteration, global_step=global_step)

            optimizer.zero_grad()
            loss.backward()
            clip_grad_norm_per_member_(model.parameters(), args.max_grad_norm, members)
            optimizer.step()

        if args.target_kl is not None and stats["approx_kl"].max() > args.target_kl:
            break
    run.check_finite(model.named_parameters(), iteration=iteration, global_step=global_step)

    scalars = {f"losses/{k}": v.mean().item() for k, v in stats.items() if k != "clipfrac"}
    scalars["losses/clipfrac"] = float(torch.stack(clipfracs).mean())
    masks = batch["masks"]
    scalars["losses/explained_variance"] = explained_variance(
        batch["values"][masks], batch["returns"][masks]
    )
    return scalars


def explained_variance(y_pred: torch.Tensor, y_true: torch.Tensor) -> float:
    """``1 - Var(y_true - y_pred) / Var(y_true)`` (NaN when ``y_true`` is constant or empty)."""
    y_pred_np, y_true_np = y_pred.cpu().numpy(), y_true.cpu().numpy()
    var_y = np.var(y_true_np) if len(y_true_np) else 0.0
    return float("nan") if var_y == 0 else float(1 - np.var(y_true_np - y_pred_np) / var_y)


def member_minibatches(member: torch.Tensor, members: int, minibatch_size: int) -> torch.Tensor:
    """Rows grouped by the member that learns from them, shuffled, cut into minibatches.

    Args:
        member: ``[R]`` the member of each row.
        members: the number of members.
        minibatch_size: rows per member per minibatch.

    Returns:
        ``[steps, members, minibatch_size]`` row indices, ``-1`` where a member has run out
        of rows. The shuffle uses torch's global RNG.
    """
    if len(member) == 0:
        return torch.empty((0, members, minibatch_size), dtype=torch.long, device=member.device)
    rows = torch.randperm(len(member), device=member.device)
    rows = rows[torch.argsort(member[rows], stable=True)]
    counts = torch.bincount(member, minlength=members)
    first = torch.cumsum(counts, 0) - counts
    position = torch.arange(len(rows), device=member.device) - first[member[rows]]
    steps = int(np.ceil(int(counts.max()) / minibatch_size))
    out = torch.full((steps, members, minibatch_size), -1, dtype=torch.long, device=member.device)
    out[position // minibatch_size, member[rows], position % minibatch_size] = rows
    return out


def hold_idle_members_(
    optimizer: torch.optim.Optimizer, module: torch.nn.Module, active: torch.Tensor
) -> None:
    """Zero Adam's first moment of the members without rows in this minibatch: their gradient
    is zero, so ``optimizer.step()`` then leaves them exactly where they are."""
    for p in module.parameters():
        state = optimizer.state.get(p)
        if state and p.dim() > 0 and p.shape[0] == active.numel():
            state["exp_avg"].mul_(active.reshape(-1, *([1] * (p.dim() - 1))))


def summarize(stats: Mapping[str, torch.Tensor], active: torch.Tensor) -> dict[str, float]:
    """Per-member statistics of a minibatch -> their mean over the members that had rows (max
    for ``approx_kl``); empty if none had."""
    if not active.any():
        return {}
    return {
        k: (v[active].max() if k == "approx_kl" else v[active].mean()).item()
        for k, v in stats.items()
    }
