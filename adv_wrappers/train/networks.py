"""Network building blocks of the trainers in ``baselines/``, rebuilt from JSON by checkpoints.

A multi-agent trainer keeps one network per agent (independent learners) or one network for
all of them (parameter sharing, the agent's one-hot appended to its input). Both are the same
module here: a *stacked* network with ``members`` copies of every layer, applied to all
agents in one batched matrix product. Its input is ``[M, B, D]`` (``M`` agents, ``B``
samples); with ``members == M`` member ``m`` is agent ``m``'s network, with ``members == 1``
the one network is applied to every agent. Adam is element-wise, so one optimizer over the
stacked parameters is exactly one optimizer per agent, as long as gradient clipping is done
per member (:func:`clip_grad_norm_per_member_`).

What a checkpoint stores of a policy is an :class:`ActorSpec` (a small JSON dict) and the
weights of one member; :class:`MLPActor` rebuilds it without importing the trainer.

Input convention (shared by training and :func:`adv_wrappers.train.load_policy`): an
agent's observation is flattened to a float32 vector, zero-padded to ``ActorSpec.pad_to``
(the vector env pads heterogeneous observations the same way) and, with parameter sharing,
followed by the agent's one-hot over the trained agents (:func:`stack_agents`).

Torch is imported by this module (``import adv_wrappers`` does not import it).

Example:
    >>> import torch
    >>> from adv_wrappers.train.networks import ActorSpec, MLPActor, stack_agents
    >>> _ = torch.manual_seed(0)
    >>> spec = ActorSpec(input_dim=4, action_dim=3, head="categorical", hidden_sizes=(8,))
    >>> actor = MLPActor(spec, members=2)           # one network per agent, 2 agents
    >>> obs = torch.zeros(5, 2, 4)                  # [B, A, D] as stored by a rollout
    >>> dist = actor.distribution(stack_agents(obs))
    >>> tuple(dist.sample().shape)                  # [A, B]
    (2, 5)
    >>> sorted(actor.member_state_dict(1))
    ['net.0.bias', 'net.0.weight', 'net.2.bias', 'net.2.weight']

Change logs:
    * Unreleased - The ``tanh`` activation is :class:`Tanh` (faster on the CPU).
    * v0.2.0 - Moved here from ``adv_wrappers.networks``.
    * v0.1.0 - Initially added.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Independent, Normal

from adv_wrappers.errors import InvalidArgumentError

__all__ = [
    "box_heads",
    "ACTIVATIONS",
    "HEADS",
    "ActorSpec",
    "BeliefNet",
    "MLPActor",
    "StackedGRU",
    "StackedLinear",
    "Tanh",
    "clip_grad_norm_per_member_",
    "layer_init",
    "stack_agents",
    "stacked_mlp",
]


def _tanh_from_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(x * 2).mul_(2).sub_(1)


class _TanhFromSigmoid(torch.autograd.Function):
    """``tanh(x)`` computed as ``2 sigmoid(2x) - 1``, with tanh's own backward from the output."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = _tanh_from_sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)  # grad * (1 - y^2), one kernel


class Tanh(nn.Module):
    """``nn.Tanh``, computed on the CPU as ``2 sigmoid(2x) - 1`` (the same function; float32
    results within 2e-7 of ``torch.tanh``'s) and elsewhere with ``torch.tanh``.

    Why: torch's CPU ``tanh`` kernel is slow. On a hidden layer's activations (``[3, 128, 64]``,
    one thread, AVX512) ``torch.tanh`` takes about 72 µs, five times ``torch.sigmoid`` and
    more than the layer's matrix product; the sigmoid form, forward and backward together,
    takes 15 % (that shape) to 55 % (``[3, 1024, 64]``) less than ``tanh``'s
    (``docs/performance.md``).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            return torch.tanh(x)
        if x.requires_grad:
            return _TanhFromSigmoid.apply(x)
        return _tanh_from_sigmoid(x)


ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": Tanh, "relu": nn.ReLU}
"""Hidden-layer activations an :class:`ActorSpec` may name (``tanh`` is :class:`Tanh`)."""

HEADS = ("categorical", "gaussian", "tanh", "relaxed_categorical")
"""Policy heads: ``categorical`` (Discrete: logits), ``gaussian`` (Box: mean and a
state-independent ``log_std``), ``tanh`` (Box in [-1, 1]: a deterministic actor whose action
is ``tanh(out)``, e.g. a learned state adversary), ``relaxed_categorical`` (a Box(0, 1, (n,))
action read as a relaxed one-hot, as the multi-agent particle envs read it: logits whose greedy
action is the one-hot of the largest, and whose sample is softmax(logits + Gumbel noise)).
The Gaussian head's log standard deviation is CleanRL's (``ppo_continuous_action.py``)."""


class StackedLinear(nn.Module):
    """``members`` independent linear layers, applied to ``members`` inputs in one ``bmm``.

    Args:
        members: number of independent copies (agents), ``>= 1``.
        in_features: input size of each copy.
        out_features: output size of each copy.

    ``weight`` is ``[members, out_features, in_features]`` (each ``weight[m]`` laid out like
    ``nn.Linear.weight``), ``bias`` is ``[members, 1, out_features]``. The input is
    ``[members, B, in_features]`` (or ``[members, ..., in_features]``: the middle axes are
    one batch axis); a layer with ``members == 1`` also accepts ``[M, ..., in]`` for any
    ``M`` (one shared layer applied to every agent).

    Raises:
        InvalidArgumentError: a size that is not a positive int.
    """

    def __init__(self, members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        for name, value in (
            ("members", members),
            ("in_features", in_features),
            ("out_features", out_features),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(f"{name} must be a positive int; got {value!r}")
        self.members = members
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(members, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(members, 1, out_features))
        bound = 1.0 / math.sqrt(in_features)  # nn.Linear's default, until layer_init
        with torch.no_grad():
            for m in range(members):
                nn.init.kaiming_uniform_(self.weight[m], a=math.sqrt(5))
            self.bias.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.members == 1 and x.shape[0] != 1:
            flat = x.reshape(1, -1, self.in_features)
            out = torch.baddbmm(self.bias, flat, self.weight.transpose(1, 2))
            return out.reshape(*x.shape[:-1], self.out_features)
        if x.dim() != 3:  # [M, ..., in]: the middle axes are one batch axis
            flat = x.reshape(x.shape[0], -1, self.in_features)
            out = torch.baddbmm(self.bias, flat, self.weight.transpose(1, 2))
            return out.reshape(*x.shape[:-1], self.out_features)
        return torch.baddbmm(self.bias, x, self.weight.transpose(1, 2))

    def extra_repr(self) -> str:
        return f"members={self.members}, in_features={self.in_features}, out_features={self.out_features}"


def layer_init(layer: nn.Module, std: float = math.sqrt(2), bias_const: float = 0.0) -> Any:
    """CleanRL's initialization: orthogonal weights with gain ``std``, constant bias.

    Works on ``nn.Linear`` and on :class:`StackedLinear` (each member initialized on its own,
    so member ``m`` is initialized exactly like an ``nn.Linear`` would be).

    Args:
        layer: the layer to initialize in place.
        std: the orthogonal gain (``sqrt(2)`` for hidden layers, ``0.01`` for a policy's
            output, ``1.0`` for a value output).
        bias_const: the bias value.

    Returns:
        ``layer`` itself.

    Raises:
        InvalidArgumentError: ``layer`` is neither ``nn.Linear`` nor ``StackedLinear``.
    """
    if isinstance(layer, StackedLinear):
        with torch.no_grad():
            for m in range(layer.members):
                nn.init.orthogonal_(layer.weight[m], std)
            layer.bias.fill_(bias_const)
    elif isinstance(layer, nn.Linear):
        nn.init.orthogonal_(layer.weight, std)
        if layer.bias is not None:
            nn.init.constant_(layer.bias, bias_const)
    else:
        raise InvalidArgumentError(
            f"layer_init needs an nn.Linear or a StackedLinear; got {type(layer).__name__}"
        )
    return layer


def stacked_mlp(
    members: int, sizes: tuple[int, ...] | list[int], out_std: float, activation: str = "tanh"
) -> nn.Sequential:
    """An MLP of :class:`StackedLinear` layers, initialized as in CleanRL.

    Args:
        members: number of stacked copies (agents).
        sizes: ``(input, hidden..., output)`` widths.
        out_std: orthogonal gain of the output layer (``1.0`` for a critic, ``0.01`` for a
            policy); hidden layers use ``sqrt(2)``.
        activation: one of :data:`ACTIVATIONS`, after every hidden layer.

    Raises:
        InvalidArgumentError: fewer than two sizes; an unknown activation.
    """
    if len(sizes) < 2:
        raise InvalidArgumentError(f"sizes needs an input and an output width; got {sizes}")
    if activation not in ACTIVATIONS:
        raise InvalidArgumentError(f"activation={activation!r} is not one of {sorted(ACTIVATIONS)}")
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers += [layer_init(StackedLinear(members, n_in, n_out)), ACTIVATIONS[activation]()]
    layers.append(layer_init(StackedLinear(members, sizes[-2], sizes[-1]), std=out_std))
    return nn.Sequential(*layers)


def stack_agents(obs: torch.Tensor, one_hot: bool = False) -> torch.Tensor:
    """Rollout observations ``[B, A, *obs_shape]`` to network input ``[A, B, D]``.

    Each observation is flattened (``D = prod(obs_shape)``), cast to float32 and, with
    ``one_hot=True`` (parameter sharing), followed by its agent's one-hot over the ``A``
    agents (``D + A`` columns).

    Args:
        obs: ``[B, A, *obs_shape]`` observations (numeric dtype).
        one_hot: append the agents' one-hot vectors.

    Returns:
        A float32 tensor ``[A, B, D]`` (or ``[A, B, D + A]``).
    """
    batch, agents = obs.shape[0], obs.shape[1]
    x = obs.reshape(batch, agents, -1).to(torch.float32).transpose(0, 1)
    if one_hot:
        eye = torch.eye(agents, dtype=x.dtype, device=x.device)
        x = torch.cat([x, eye[:, None, :].expand(agents, batch, agents)], dim=-1)
    return x


class StackedGRU(nn.Module):
    """``members`` independent GRU cells, stepped together in one ``bmm`` per gate group.

    The equations are those of ``torch.nn.GRUCell`` (gates ordered reset, update, new;
    ``h' = (1 - z) * n + z * h``), so member ``m`` computes exactly what an ``nn.GRUCell``
    with its weights would. Weights are initialized orthogonally per gate, biases at 0
    (MAPPO's recurrent layers).

    Args:
        members: number of independent copies (agents), ``>= 1``.
        input_size: input size of each copy.
        hidden_size: hidden-state size of each copy.

    Shapes: inputs ``[M, B, input_size]``, hidden states ``[M, B, hidden_size]``; a GRU
    with ``members == 1`` also accepts any ``M`` (one shared cell applied to every agent).

    Raises:
        InvalidArgumentError: a size that is not a positive int.
    """

    def __init__(self, members: int, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.ih = StackedLinear(members, input_size, 3 * hidden_size)
        self.hh = StackedLinear(members, hidden_size, 3 * hidden_size)
        self.members = members
        self.input_size = input_size
        self.hidden_size = hidden_size
        with torch.no_grad():
            for layer in (self.ih, self.hh):
                for m in range(members):
                    for g in range(3):
                        rows = slice(g * hidden_size, (g + 1) * hidden_size)
                        nn.init.orthogonal_(layer.weight[m, rows])
                layer.bias.zero_()

    def initial_state(self, *batch: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Zeros ``[*batch, hidden_size]`` (the state at the start of an episode)."""
        return torch.zeros(*batch, self.hidden_size, device=device)

    def _cell(self, gi: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        gh = self.hh(h)
        i_r, i_z, i_n = gi.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return (1 - z) * n + z * h

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One step: ``x`` ``[M, B, input_size]``, ``h`` ``[M, B, hidden_size]`` -> next ``h``."""
        return self._cell(self.ih(x), h)

    def sequence(
        self, x: torch.Tensor, h: torch.Tensor, starts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run over a sequence, resetting the state to zero where an episode starts.

        Args:
            x: ``[M, L, B, input_size]`` inputs, time on axis 1.
            h: ``[M, B, hidden_size]`` the state before ``x[:, 0]``.
            starts: ``[L, B]`` (or ``[M, L, B]``) bool/float, 1 where ``x[:, t]`` is the first
                step of an episode (the state is zeroed before that step).

        Returns:
            ``(outputs [M, L, B, hidden_size], last state [M, B, hidden_size])``; the output
            at ``t`` is the state after step ``t``.
        """
        gi = self.ih(x.reshape(x.shape[0], -1, x.shape[-1])).reshape(*x.shape[:-1], -1)
        keep = 1.0 - starts.to(x.dtype)
        keep = keep[None] if keep.dim() == 2 else keep
        outputs = []
        for t in range(x.shape[1]):
            h = self._cell(gi[:, t], h * keep[:, t, :, None])
            outputs.append(h)
        return torch.stack(outputs, dim=1), h


class BeliefNet(nn.Module):
    """A recurrent belief p_xi(theta | H): a :class:`StackedGRU` over the agent's inputs, then a
    linear layer to one logit per type entry (independent Bernoullis, trained by binary cross
    entropy on the true types; Li et al. (ICLR 2024), Eq. 11 and App. B).

    Args:
        members: number of stacked copies (agents).
        input_size: size of each step's input.
        hidden_size: the GRU's state size.
        num_types: entries of the type vector (one logit each).
    """

    def __init__(self, members: int, input_size: int, hidden_size: int, num_types: int) -> None:
        super().__init__()
        self.gru = StackedGRU(members, input_size, hidden_size)
        self.out = layer_init(StackedLinear(members, hidden_size, num_types), std=1.0)
        self.num_types = num_types

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: ``(logits [M, B, num_types], next state [M, B, hidden])``."""
        h = self.gru(x, h)
        return self.out(h), h

    def sequence(
        self, x: torch.Tensor, h: torch.Tensor, starts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Over a sequence (see :meth:`StackedGRU.sequence`): ``(logits [M, L, B,
        num_types], last state)``."""
        states, h = self.gru.sequence(x, h, starts)
        return self.out(states), h


def box_heads(space: Any) -> tuple[str, ...]:
    """The heads that can drive a Box action space: ``gaussian`` always, ``tanh`` where every
    bound is [-1, 1], ``relaxed_categorical`` for a 1-D space with every bound [0, 1]."""
    low, high = np.asarray(space.low), np.asarray(space.high)
    heads = ["gaussian"]
    if (low == -1).all() and (high == 1).all():
        heads.append("tanh")
    if len(space.shape) == 1 and (low == 0).all() and (high == 1).all():
        heads.append("relaxed_categorical")
    return tuple(heads)


@dataclass(frozen=True)
class ActorSpec:
    """Everything needed to rebuild a policy network (stored as JSON in checkpoints).

    Attributes:
        input_dim: size of the network input (``pad_to``, plus the number of agents with a
            one-hot).
        action_dim: number of logits (Discrete ``n``) or of action dimensions (Box).
        head: one of :data:`HEADS`.
        hidden_sizes: widths of the hidden layers.
        activation: one of :data:`ACTIVATIONS`.
        pad_to: the flattened observation is zero-padded to this size (the vector env's
            padded size; equal to the agent's own size when nothing is padded).
        agent_one_hot: ``(index, count)``: append the one-hot of ``index`` among ``count``
            agents (parameter sharing); ``None`` otherwise. A trainer leaves the index at
            0 (the stack supplies it per agent); each exported policy carries its own.
        belief: ``(gru_hidden, num_types)``: a recurrent policy. A :class:`BeliefNet` reads
            the input at every step and its belief (``num_types`` sigmoid probabilities)
            is appended to the input of the MLP (EIR-MAPPO's actor, Li et al. (ICLR
            2024)); ``None`` (default): a feed-forward policy.
    """

    input_dim: int
    action_dim: int
    head: str
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    pad_to: int = 0
    agent_one_hot: tuple[int, int] | None = field(default=None)
    belief: tuple[int, int] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise InvalidArgumentError(f"head={self.head!r} is not one of {HEADS}")
        if self.activation not in ACTIVATIONS:
            raise InvalidArgumentError(
                f"activation={self.activation!r} is not one of {sorted(ACTIVATIONS)}"
            )
        sizes = (self.input_dim, self.action_dim, *self.hidden_sizes, *(self.belief or ()))
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
            raise InvalidArgumentError(
                f"input_dim, action_dim, hidden_sizes and belief must be positive ints; got {sizes}"
            )
        if self.belief is not None and len(self.belief) != 2:
            raise InvalidArgumentError(
                f"belief must be (gru_hidden, num_types); got {self.belief!r}"
            )

    @property
    def recurrent(self) -> bool:
        """Whether the policy keeps a state across the steps of an episode."""
        return self.belief is not None

    def to_json(self) -> dict[str, Any]:
        """A JSON-serializable dict (tuples become lists)."""
        d = asdict(self)
        d["hidden_sizes"] = list(self.hidden_sizes)
        d["agent_one_hot"] = None if self.agent_one_hot is None else list(self.agent_one_hot)
        d["belief"] = None if self.belief is None else list(self.belief)
        return d

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ActorSpec:
        """Inverse of :meth:`to_json`.

        Raises:
            InvalidArgumentError: missing or invalid keys.
        """
        try:
            one_hot = data.get("agent_one_hot")
            belief = data.get("belief")
            if belief is not None and len(belief) != 2:
                raise ValueError(f"belief must have 2 entries; got {belief!r}")
            return cls(
                input_dim=int(data["input_dim"]),
                action_dim=int(data["action_dim"]),
                head=str(data["head"]),
                hidden_sizes=tuple(int(h) for h in data["hidden_sizes"]),
                activation=str(data["activation"]),
                pad_to=int(data.get("pad_to", 0)),
                agent_one_hot=None if one_hot is None else (int(one_hot[0]), int(one_hot[1])),
                belief=None if belief is None else (int(belief[0]), int(belief[1])),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise InvalidArgumentError(f"not a valid ActorSpec: {data!r} ({exc})") from None


class MLPActor(nn.Module):
    """A policy network: MLP of :class:`StackedLinear` layers plus a distribution head.

    CleanRL's actor: hidden layers initialized with gain ``sqrt(2)``, the output layer with
    gain ``0.01``; a Gaussian head has a state-independent ``log_std`` initialized to 0.

    Args:
        spec: the architecture.
        members: number of stacked copies (agents; 1 for parameter sharing or one policy).

    Input ``[M, B, spec.input_dim]`` (see :class:`StackedLinear`), distributions with batch
    shape ``[M, B]``. With ``spec.belief`` the actor also has ``belief``, a
    :class:`BeliefNet` over the same input, and the MLP's input is the input followed by the
    belief's probabilities (``[M, B, input_dim + num_types]``): the trainer runs ``belief``
    through the episode and hands its output in (:meth:`with_belief`).
    """

    def __init__(self, spec: ActorSpec, members: int = 1) -> None:
        super().__init__()
        self.spec = spec
        self.members = members
        extra = 0
        if spec.belief is not None:
            hidden, extra = spec.belief
            self.belief = BeliefNet(members, spec.input_dim, hidden, extra)
        sizes = (spec.input_dim + extra, *spec.hidden_sizes, spec.action_dim)
        self.net = stacked_mlp(members, sizes, out_std=0.01, activation=spec.activation)
        if spec.head == "gaussian":
            self.log_std = nn.Parameter(torch.zeros(members, 1, spec.action_dim))

    @staticmethod
    def with_belief(x: torch.Tensor, belief_logits: torch.Tensor) -> torch.Tensor:
        """The MLP's input of a belief actor: ``x`` followed by ``sigmoid(belief_logits)``."""
        return torch.cat([x, torch.sigmoid(belief_logits)], dim=-1)

    def distribution(self, x: torch.Tensor) -> Distribution:
        """The action distribution for inputs ``x`` (``[M, B, input_dim]``).

        Returns:
            ``Categorical(logits)`` (also for ``relaxed_categorical``) or
            ``Independent(Normal(mean, std), 1)``; in both ``log_prob`` and ``entropy`` are
            ``[M, B]``.

        Raises:
            InvalidArgumentError: a ``tanh`` head (deterministic).
        """
        out = self.net(x)
        if self.spec.head in ("categorical", "relaxed_categorical"):
            return Categorical(logits=out, validate_args=False)  # (logits need no check)
        if self.spec.head == "tanh":
            raise InvalidArgumentError("a tanh head is deterministic: it has no distribution")
        normal = Normal(out, self.log_std.expand_as(out).exp(), validate_args=False)
        return Independent(normal, 1, validate_args=False)

    @torch.no_grad()
    def mode(self, x: torch.Tensor) -> torch.Tensor:
        """The greedy action (no gradient): the largest logit (its one-hot for
        ``relaxed_categorical``), ``tanh(out)``, or the Gaussian mean (unclipped)."""
        out = self.net(x)
        if self.spec.head == "categorical":
            return out.argmax(dim=-1)
        if self.spec.head == "relaxed_categorical":
            return torch.nn.functional.one_hot(out.argmax(dim=-1), out.shape[-1]).to(out.dtype)
        return torch.tanh(out) if self.spec.head == "tanh" else out

    def member_state_dict(self, member: int) -> dict[str, torch.Tensor]:
        """Member ``member``'s weights as the state dict of a one-member ``MLPActor``.

        Raises:
            InvalidArgumentError: ``member`` out of range.
        """
        if not 0 <= member < self.members:
            raise InvalidArgumentError(f"member must be in [0, {self.members}); got {member}")
        return {
            k: v[member : member + 1].detach().clone().contiguous()
            for k, v in self.state_dict().items()
        }

    @torch.no_grad()
    def load_member_(
        self, member: int, spec: ActorSpec, state_dict: Mapping[str, torch.Tensor]
    ) -> None:
        """Overwrite member ``member`` with a one-member actor's weights (the inverse of
        :meth:`member_state_dict`), e.g. an exported policy to continue training from.

        Raises:
            InvalidArgumentError: ``member`` out of range; ``spec`` differs from this actor's
                (the agent one-hot aside), or ``state_dict`` does not fit it.
        """
        if not 0 <= member < self.members:
            raise InvalidArgumentError(f"member must be in [0, {self.members}); got {member}")
        mine = dataclasses.replace(self.spec, agent_one_hot=None)
        if dataclasses.replace(spec, agent_one_hot=None) != mine:
            raise InvalidArgumentError(
                f"the policy's architecture {spec} differs from the actor's {self.spec}"
            )
        own = self.state_dict()
        if set(state_dict) != set(own):
            raise InvalidArgumentError(
                f"the policy's tensors {sorted(state_dict)} are not the actor's {sorted(own)}"
            )
        for key, value in state_dict.items():
            if tuple(value.shape) != (1, *own[key].shape[1:]):
                raise InvalidArgumentError(
                    f"tensor {key!r} has shape {tuple(value.shape)}; a member's is "
                    f"{(1, *own[key].shape[1:])}"
                )
        for key, value in state_dict.items():
            own[key][member].copy_(value[0])


def clip_grad_norm_per_member_(
    parameters: Iterable[torch.Tensor], max_norm: float, members: int
) -> torch.Tensor:
    """Clip the gradient norm of every member separately (independent learners stay independent).

    The norm of member ``m`` is taken over ``p.grad[m]`` of every parameter ``p`` (the leading
    axis of a stacked parameter is the member axis; a parameter whose leading axis is not
    ``members`` counts toward every member, e.g. a shared layer). With ``members == 1`` this
    is ``torch.nn.utils.clip_grad_norm_``.

    Args:
        parameters: the parameters whose ``.grad`` is clipped in place.
        max_norm: the largest allowed norm per member.
        members: the number of members.

    Returns:
        The per-member norms before clipping, ``[members]``.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(members)
    # few large ops instead of several per tensor: these networks are small, and per-op
    # overhead, not arithmetic, is what a gradient step costs on a CPU
    stacked = [g for g in grads if g.dim() > 0 and g.shape[0] == members]
    shared = [g for g in grads if not (g.dim() > 0 and g.shape[0] == members)]
    squares = torch.zeros(members, dtype=grads[0].dtype, device=grads[0].device)
    if stacked:
        squares = torch.cat([g.reshape(members, -1) for g in stacked], dim=1).pow(2).sum(dim=1)
    if shared:
        squares = squares + torch.stack(torch._foreach_norm(shared)).pow(2).sum()
    norms = squares.sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    if stacked:
        torch._foreach_mul_(
            stacked, [scale.reshape(members, *([1] * (g.dim() - 1))) for g in stacked]
        )
    if shared:
        torch._foreach_mul_(shared, scale.min())
    return norms
