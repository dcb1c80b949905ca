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
        # every observation [2 agents, D] by a code of the state (and history), looked up in one op
        eye = self._eye
        if not self.observe_history:
            self._table = eye[:, None, :].expand(2, 2, 2).contiguous()  # [state, agent, 2]
        else:
            rows = []
            for code in range(54):
                state, prev, a0, a1 = code % 2, code // 2 % 3 - 1, code // 6 % 3 - 1, code // 18 - 1
                history = (
                    torch.zeros(6, device=self.device)
                    if prev < 0 or a0 < 0 or a1 < 0
                    else torch.cat([eye[prev], eye[a0], eye[a1]])
                )
                rows.append(torch.cat([eye[state], history]).expand(2, 8))
            self._table = torch.stack(rows)  # [code, agent, 8]

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
        s["last_actions"][:, index] = torch.tensor(
            [-1, -1] if last is None else list(last), device=self.device
        )
        s["t"][index] = int(raw._t)

    def _advance(self, actions: torch.Tensor) -> torch.Tensor:
        s = self.s
        state = s["state"]
        flip = actions[:, 0] == actions[:, 1]  # equal actions switch the state
        paid = state ^ flip  # s1 (0) pays equal actions, s2 (1) different ones
        s["previous_state"] = state
        s["state"] = paid  # the new state is s2 exactly when the step paid 1
        s["last_actions"] = actions.T.contiguous()
        s["t"] = s["t"] + 1
        return paid[:, None].expand(-1, 2).to(torch.float32, memory_format=torch.contiguous_format)

    def _terminated(self) -> torch.Tensor | None:
        if self.discount is None:
            return None
        u = torch.rand(self.num_envs, dtype=torch.float64, device=self.device, generator=self._rng)
        return u >= self.discount

    def _observe(self) -> torch.Tensor:
        s = self.s
        if not self.observe_history:
            return self._table[s["state"]]
        # the row of (state, previous state, both previous actions), each -1 before a step
        code = s["state"] + 2 * (s["previous_state"] + 1)
        code = code + 6 * (s["last_actions"][0] + 1) + 18 * (s["last_actions"][1] + 1)
        return self._table[code]

    def _state_vector(self) -> torch.Tensor:
        return self._eye[self.s["state"]]
