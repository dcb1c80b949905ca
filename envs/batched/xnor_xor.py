"""XNOR/XOR (``adv/xnor_xor-v0``) as tensors: the two-state game of ``adv_envs.xnor_xor``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from adv_envs._errors import InvalidArgumentError
from adv_envs.batched._base import BatchedEnv
from adv_envs.xnor_xor import _check_state


class XnorXor(BatchedEnv):
    """``B`` copies of XNOR/XOR (same arguments as ``adv_envs.xnor_xor.parallel_env``).

    State (``get_state()``): ``state`` ``[B]`` long (0 = s1, 1 = s2), ``previous_state``
    ``[B]``, ``last_actions`` ``[B, 2]`` long (both ``-1`` at an episode's first step) and
    ``t`` ``[B]``. With ``discount`` each step terminates a copy with probability
    ``1 - discount``, drawn from the env's generator (so the coins differ from the PettingZoo
    env's). ``reset(options={"initial_state": s})`` starts every copy, and every later
    auto-reset, in state ``s``.
    """

    module = "xnor_xor"

    def __init__(
        self,
        num_envs: int,
        device: Any = "cpu",
        seed: int | None = None,
        max_cycles: int | None = 100,
        discount: float | None = None,
        initial_state_probs: Sequence[float] = (0.5, 0.5),
        observe_history: bool = False,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(
            num_envs,
            device,
            seed,
            max_cycles=max_cycles,
            discount=discount,
            initial_state_probs=initial_state_probs,
            observe_history=observe_history,
            render_mode=render_mode,
        )
        raw = self._reference
        self.discount: float | None = raw.discount
        self.initial_state_probs: tuple[float, float] = raw.initial_state_probs
        self.observe_history: bool = raw.observe_history
        self._eye = torch.eye(2, dtype=torch.float32, device=self.device)

    def _check_options(self, options: Any) -> dict[str, Any] | None:
        if options is None:
            return None
        if not isinstance(options, dict):
            raise InvalidArgumentError(f"options must be a dict or None, got {options!r}")
        if "initial_state" in options:
            return {"initial_state": _check_state(options["initial_state"])}
        return None

    def _sample(self) -> dict[str, torch.Tensor]:
        B = self.num_envs
        u = torch.rand(B, dtype=torch.float64, device=self.device, generator=self._rng)
        state = (u >= self.initial_state_probs[0]).long()  # Pr(s1) = probs[0], as the env
        if self._options is not None:
            state = torch.full_like(state, self._options["initial_state"])
        minus = torch.full((B,), -1, dtype=torch.long, device=self.device)
        return {
            "state": state,
            "previous_state": minus.clone(),
            "last_actions": torch.full((2, B), -1, dtype=torch.long, device=self.device),
            "t": torch.zeros(B, dtype=torch.long, device=self.device),
        }

    def _load(self, index: int, raw: Any) -> None:
        s = self.s
        s["state"][index] = int(raw._state)
        last = raw._last_actions
        s["previous_state"][index] = -1 if last is None else int(raw._previous_state)
        s["last_actions"][:, index] = torch.tensor([-1, -1] if last is None else list(last))
        s["t"][index] = int(raw._t)

    def _advance(self, actions: torch.Tensor) -> torch.Tensor:
        s = self.s
        state = s["state"]
        equal = actions[:, 0] == actions[:, 1]
        paid = torch.where(state == 0, equal, ~equal)
        s["previous_state"] = state
        s["state"] = torch.where(equal, 1 - state, state)
        s["last_actions"] = actions.T.contiguous()
        s["t"] = s["t"] + 1
        return paid.to(torch.float64)[:, None].expand(-1, 2)

    def _terminated(self) -> torch.Tensor:
        if self.discount is None:
            return super()._terminated()
        u = torch.rand(self.num_envs, dtype=torch.float64, device=self.device, generator=self._rng)
        return u >= self.discount

    def _observe(self) -> torch.Tensor:
        s = self.s
        obs = self._eye[s["state"]]
        if self.observe_history:
            started = (s["previous_state"] >= 0)[:, None]
            hist = [
                self._eye[s["previous_state"].clamp(min=0)],
                self._eye[s["last_actions"][0].clamp(min=0)],
                self._eye[s["last_actions"][1].clamp(min=0)],
            ]
            obs = torch.cat([obs, *(torch.where(started, h, 0.0) for h in hist)], dim=1)
        return obs[:, None, :].expand(-1, 2, -1).clone()

    def _state_vector(self) -> torch.Tensor:
        return self._eye[self.s["state"]]
