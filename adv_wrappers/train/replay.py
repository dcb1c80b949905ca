"""An off-policy replay buffer that is part of a trainer's checkpointed model.

:class:`ReplayBuffer` is an ``nn.Module`` whose storage is saved with the model's state dict,
so :class:`~adv_wrappers.train.checkpoint.Checkpointer` writes it into ``last.safetensors``
and ``--resume`` restores it: a resumed off-policy run continues with exactly the transitions
it had. Only the filled rows are saved (a checkpoint of a buffer that holds ``n`` rows costs
``n`` rows, whatever the capacity), and a loaded buffer is validated (row counts, shapes,
dtypes, the write position) before anything is copied into the preallocated storage.

Sampling draws indices uniformly with torch's global generator, whose state the checkpoints
capture, so a resumed run samples the same minibatches.

Example:
    >>> import torch
    >>> from adv_wrappers.train.replay import ReplayBuffer
    >>> buffer = ReplayBuffer(4, {"obs": ((2,), torch.float32), "reward": ((), torch.float32)})
    >>> buffer.add(obs=torch.ones(3, 2), reward=torch.arange(3.0))
    >>> buffer.add(obs=torch.zeros(2, 2), reward=torch.tensor([3.0, 4.0]))  # wraps around
    >>> len(buffer), buffer.storage["reward"].tolist()
    (4, [4.0, 1.0, 2.0, 3.0])
    >>> _ = torch.manual_seed(0)
    >>> tuple(buffer.sample(5)["obs"].shape)
    (5, 2)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from adv_wrappers.errors import CheckpointError, InvalidArgumentError

__all__ = ["ReplayBuffer"]


class ReplayBuffer(nn.Module):
    """A circular buffer of transitions with named fields, saved in checkpoints.

    Args:
        capacity: the number of rows kept (the oldest are overwritten), ``>= 1``.
        fields: field name -> ``(shape of one row, dtype)``.
        device: where the storage lives (default CPU; :meth:`sample` moves a minibatch).

    Attributes:
        storage: field name -> ``[capacity, *shape]`` tensor.
        capacity: as given.
    """

    def __init__(
        self,
        capacity: int,
        fields: Mapping[str, tuple[tuple[int, ...], torch.dtype]],
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise InvalidArgumentError(f"capacity must be an int >= 1; got {capacity!r}")
        if not fields:
            raise InvalidArgumentError("fields must name at least one field")
        self.capacity = capacity
        self.storage = {
            name: torch.zeros((capacity, *shape), dtype=dtype, device=device)
            for name, (shape, dtype) in fields.items()
        }
        self.pos = 0  # the next row written
        self.size = 0  # rows filled

    def __len__(self) -> int:
        return self.size

    def add(self, **rows: torch.Tensor) -> None:
        """Append ``N`` rows (every field, each ``[N, *shape]``), overwriting the oldest.

        Raises:
            InvalidArgumentError: missing or unknown fields, shapes that differ, or more
                rows than the capacity.
        """
        if set(rows) != set(self.storage):
            raise InvalidArgumentError(
                f"add() needs exactly the fields {sorted(self.storage)}; got {sorted(rows)}"
            )
        n = None
        for name, value in rows.items():
            want = self.storage[name].shape[1:]
            if value.shape[1:] != want or (n is not None and value.shape[0] != n):
                raise InvalidArgumentError(
                    f"field {name!r}: rows of shape [N, {', '.join(map(str, want))}] with the "
                    f"same N as the other fields; got {tuple(value.shape)}"
                )
            n = value.shape[0]
        assert n is not None
        if n > self.capacity:
            raise InvalidArgumentError(
                f"add() got {n} rows, more than the capacity {self.capacity}"
            )
        index = (torch.arange(n) + self.pos) % self.capacity
        for name, value in rows.items():
            store = self.storage[name]
            store[index.to(store.device)] = value.to(store.device, store.dtype)
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, device: str | torch.device | None = None) -> dict[str, Any]:
        """``batch_size`` rows drawn uniformly with replacement (torch's global generator).

        Raises:
            InvalidArgumentError: an empty buffer or ``batch_size < 1``.
        """
        if self.size == 0 or batch_size < 1:
            raise InvalidArgumentError(
                f"sample() needs a non-empty buffer and batch_size >= 1; size {self.size}, "
                f"batch_size {batch_size}"
            )
        index = torch.randint(0, self.size, (batch_size,))
        return {
            name: store[index.to(store.device)].to(device or store.device)
            for name, store in self.storage.items()
        }

    # ------------------------------------------------------------------ checkpoints
    def _save_to_state_dict(self, destination: Any, prefix: str, keep_vars: bool) -> None:
        destination[prefix + "pos"] = torch.tensor(self.pos, dtype=torch.int64)
        destination[prefix + "size"] = torch.tensor(self.size, dtype=torch.int64)
        for name, store in self.storage.items():
            destination[prefix + "rows." + name] = store[: self.size].detach().clone()

    def _load_from_state_dict(
        self,
        state_dict: Any,
        prefix: str,
        local_metadata: Any,
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        keys = [prefix + "pos", prefix + "size", *(prefix + "rows." + n for n in self.storage)]
        missing = [k for k in keys if k not in state_dict]
        if missing:
            missing_keys.extend(missing)
            return
        try:
            pos, size = int(state_dict[prefix + "pos"]), int(state_dict[prefix + "size"])
        except (TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"replay buffer {prefix!r}: bad pos/size ({exc})") from None
        if not (0 <= size <= self.capacity and 0 <= pos < self.capacity):
            raise CheckpointError(
                f"replay buffer {prefix!r}: size {size} and position {pos} do not fit the "
                f"capacity {self.capacity}"
            )
        if size < self.capacity and pos != size:
            raise CheckpointError(
                f"replay buffer {prefix!r}: a buffer that is not full writes at its end; got "
                f"size {size}, position {pos}"
            )
        for name, store in self.storage.items():
            rows = state_dict[prefix + "rows." + name]
            if tuple(rows.shape) != (size, *store.shape[1:]) or rows.dtype != store.dtype:
                raise CheckpointError(
                    f"replay buffer {prefix!r}: field {name!r} holds {tuple(rows.shape)} "
                    f"{rows.dtype}; expected ({size}, {', '.join(map(str, store.shape[1:]))}) "
                    f"{store.dtype}"
                )
        for name, store in self.storage.items():
            store.zero_()
            store[:size] = state_dict[prefix + "rows." + name].to(store.device)
        self.pos, self.size = pos, size
