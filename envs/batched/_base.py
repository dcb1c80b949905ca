"""The batched env base class: argument and action checks, reset, same-step auto-reset and
state access, shared by every batched env (see the package docstring for the contract)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces

from adv_envs._errors import (
    AdvWrappersError,
    InvalidActionError,
    InvalidArgumentError,
    MissingActionError,
)


class BatchedEnvStateError(AdvWrappersError, RuntimeError):
    """A batched env was stepped (or its state read) before its first ``reset()``/``set_state``."""


def check_device(device: Any) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise InvalidArgumentError(
            f"device must be a torch device or its name ('cpu', 'cuda', 'cuda:0', ...), "
            f"got {device!r}"
        ) from err


def check_seed(seed: Any, argument: str = "seed") -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidArgumentError(f"{argument} must be None or an int >= 0, got {seed!r}")
    return int(seed)


class BatchedEnv:
    """``num_envs`` copies of one env as tensors (see the package docstring).

    Subclasses set :attr:`module` (the ``adv_envs`` module of the PettingZoo version, whose
    ``parallel_env`` validates the arguments and provides the spaces) and implement the hooks
    ``_sample`` (a fresh state for every copy, each tensor with the copies in its last
    dimension), ``_advance`` (one step in place, returning the
    float64 rewards ``[B, A]``), ``_observe`` (``[B, A, D]`` float32, zero-padded),
    ``_terminated`` (``[B]`` bool), ``_load`` (one row from a PettingZoo env) and optionally
    ``_state_vector``.
    """

    module: ClassVar[str]
    state_keys: ClassVar[tuple[str, ...]]

    def __init__(self, num_envs: int, device: Any = "cpu", seed: int | None = None, **kwargs):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)):
            raise InvalidArgumentError(f"num_envs must be an int >= 1, got {num_envs!r}")
        if num_envs < 1:
            raise InvalidArgumentError(f"num_envs must be an int >= 1, got {num_envs!r}")
        if kwargs.get("render_mode") is not None:
            raise InvalidArgumentError(
                f"render_mode must be None for a batched env (nothing is drawn), got "
                f"{kwargs['render_mode']!r}"
            )
        self.num_envs = int(num_envs)
        self.device = check_device(device)
        self.env_kwargs = dict(kwargs)
        # the PettingZoo env validates the arguments and defines the spaces
        reference = importlib.import_module(f"adv_envs.{self.module}").parallel_env(**kwargs)
        self.possible_agents: list[str] = list(reference.possible_agents)
        self._observation_spaces = {a: reference.observation_space(a) for a in self.possible_agents}
        self._action_spaces = {a: reference.action_space(a) for a in self.possible_agents}
        self.state_space: spaces.Box | None = getattr(reference, "state_space", None)
        self._reference = reference
        self.num_agents = len(self.possible_agents)
        self.obs_sizes = tuple(
            int(np.prod(self._observation_spaces[a].shape)) for a in self.possible_agents
        )
        self.obs_dim = max(self.obs_sizes)
        first = self._action_spaces[self.possible_agents[0]]
        self.action_discrete = isinstance(first, spaces.Discrete)
        if self.action_discrete:
            self.action_nvec = tuple(int(self._action_spaces[a].n) for a in self.possible_agents)
            self.action_dim = 1
            self._nvec = torch.tensor(self.action_nvec, device=self.device)
            self._n_min = min(self.action_nvec)
        else:
            self.action_nvec = None
            self.action_dim = max(
                int(self._action_spaces[a].shape[0]) for a in self.possible_agents
            )
        self._rng = torch.Generator(device=self.device)
        seed = check_seed(seed)
        if seed is None:
            self._rng.seed()
        else:
            self._rng.manual_seed(seed)
        self._s: dict[str, torch.Tensor] | None = None
        self._false = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        self._false2 = torch.zeros(
            (self.num_envs, self.num_agents), dtype=torch.bool, device=self.device
        )
        self._zero32 = torch.zeros((), dtype=torch.float32, device=self.device)
        self._options: dict[str, Any] | None = None
        self.report_final_state = False
        """Set True to get ``infos["final_state"]`` from :meth:`step` (``[B, state_dim]``:
        the finished episodes' last ``state()`` where ``reset``, zeros elsewhere)."""

    # ----------------------------------------------------------------- spaces

    def observation_space(self, agent: str) -> spaces.Space:
        """The PettingZoo env's observation space of ``agent`` (the same object each call)."""
        return self._observation_spaces[self._agent(agent)]

    def action_space(self, agent: str) -> spaces.Space:
        """The PettingZoo env's action space of ``agent`` (the same object each call)."""
        return self._action_spaces[self._agent(agent)]

    def _agent(self, agent: str) -> str:
        if agent not in self._observation_spaces:
            raise InvalidArgumentError(
                f"agent must be one of possible_agents {self.possible_agents}, got {agent!r}"
            )
        return agent

    @property
    def generator(self) -> torch.Generator:
        """The env's own ``torch.Generator`` (on ``device``): all reset randomness comes from it."""
        return self._rng

    # ----------------------------------------------------------------- hooks

    def _sample(self) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _advance(self, actions: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _observe(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _terminated(self) -> torch.Tensor | None:
        """``[B]`` bool, or ``None``: this env never terminates."""
        return None

    def _truncated(self) -> torch.Tensor | None:
        """``[B]`` bool, or ``None``: no time limit."""
        max_cycles = self.max_cycles
        return None if max_cycles is None else self.s["t"] >= max_cycles

    def _load(self, index: int, raw: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _state_vector(self) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no state()")

    @property
    def max_cycles(self) -> int | None:
        return self._reference.unwrapped.max_cycles

    # ----------------------------------------------------------------- state

    @property
    def s(self) -> dict[str, torch.Tensor]:
        if self._s is None:
            raise BatchedEnvStateError(
                f"{type(self).__name__}: call reset() (or set_state()) before stepping or "
                "reading the state"
            )
        return self._s

    def get_state(self) -> dict[str, torch.Tensor]:
        """A copy of the whole batch's state: a dict of tensors with first dimension ``B``
        (``"t"``: steps taken in the current episode). The generator's state is not in it
        (use :attr:`generator`).

        Inside, every tensor keeps the copies in its *last* dimension (so that the tensor ops
        run along contiguous rows of ``B`` values); this method and :meth:`set_state` move
        that dimension to the front and back.
        """
        return {
            k: v.movedim(-1, 0).clone(memory_format=torch.contiguous_format)
            for k, v in self.s.items()
        }

    def set_state(self, state: Mapping[str, torch.Tensor]) -> None:
        """Set the batch's state to ``state`` (as :meth:`get_state` returns it, copied).

        Raises:
            InvalidArgumentError: keys, shapes or dtypes differ from :meth:`get_state`'s.
        """
        template = self._sample()
        if not isinstance(state, Mapping) or set(state) != set(template):
            got = sorted(state) if isinstance(state, Mapping) else type(state).__name__
            raise InvalidArgumentError(f"state must have the keys {sorted(template)}, got {got}")
        new = {}
        for key, like in template.items():
            like = like.movedim(-1, 0)
            value = state[key]
            if not isinstance(value, torch.Tensor) or value.shape != like.shape:
                raise InvalidArgumentError(
                    f"state[{key!r}] must be a tensor of shape {tuple(like.shape)}, got "
                    f"{getattr(value, 'shape', type(value).__name__)}"
                )
            if value.dtype != like.dtype:
                raise InvalidArgumentError(
                    f"state[{key!r}] must have dtype {like.dtype}, got {value.dtype}"
                )
            new[key] = value.to(self.device).movedim(0, -1).contiguous()
        self._s = new

    def load_from_pettingzoo(self, index: int, env: Any) -> None:
        """Copy the current world of a PettingZoo env of this kind into row ``index`` of the
        batch, step counter included; the other rows are unchanged. A batch never reset is
        reset first. Only the world is copied (positions, velocities, messages, goals; XNOR/XOR's
        state and history): rewards keep this batched env's arguments (``rewards``,
        ``local_ratio``, ...), so build both with the same arguments.

        Raises:
            InvalidArgumentError: ``index`` out of range, or ``env`` is not this env with the
                same agents and spaces.
        """
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise InvalidArgumentError(
                f"index must be an int in [0, {self.num_envs}), got {index!r}"
            )
        if not 0 <= index < self.num_envs:
            raise InvalidArgumentError(
                f"index must be an int in [0, {self.num_envs}), got {index!r}"
            )
        raw = getattr(env, "unwrapped", env)
        expected = type(self._reference.unwrapped)
        if type(raw) is not expected or list(getattr(env, "possible_agents", [])) != (
            self.possible_agents
        ):
            raise InvalidArgumentError(
                f"env must be a {expected.__module__}.{expected.__name__} with possible_agents "
                f"{self.possible_agents}, got {type(raw).__name__}"
            )
        for a in self.possible_agents:
            if (
                env.observation_space(a) != self._observation_spaces[a]
                or env.action_space(a) != self._action_spaces[a]
            ):
                raise InvalidArgumentError(
                    f"env gives agent {a!r} other spaces than this batched env; build both with "
                    "the same arguments"
                )
        if raw.max_cycles != self.max_cycles:
            raise InvalidArgumentError(
                f"env has max_cycles={raw.max_cycles}, this batched env {self.max_cycles}"
            )
        if self._s is None:
            self.reset()
        self._load(int(index), raw)

    def state(self) -> torch.Tensor:
        """The PettingZoo env's ``state()`` of every copy, ``[B, state_dim]`` float32."""
        self.s  # noqa: B018 - raises before the first reset
        return self._state_vector()

    # ----------------------------------------------------------------- reset / step

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Reset every copy; ``seed`` (an int) reseeds the env's generator first, ``None``
        continues it. ``options`` is remembered for the auto-resets (see the env).

        Returns:
            ``(obs [B, A, D] float32, {})``.
        """
        seed = check_seed(seed)
        if seed is not None:
            self._rng.manual_seed(seed)
        self._options = self._check_options(options)
        self._s = self._sample()
        return self._observe(), {}

    def _check_options(self, options: Any) -> dict[str, Any] | None:
        if options is not None:
            raise InvalidArgumentError(
                f"options must be None for {type(self).__name__}, got {options!r}"
            )
        return None

    def step(
        self, actions: Any
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Step every copy with ``actions`` (``[B, A]`` int for Discrete agents, ``[B, A, d]``
        float for Box agents); copies whose episode ends are reset in the same call.

        Returns:
            ``(obs, rewards, terminations, truncations, infos)``; ``infos["reset"]`` ``[B]``
            bool, ``infos["final_obs"]`` ``[B, A, D]`` (the last observations where ``reset``,
            zeros elsewhere). Rewards, terminations and truncations of a reset copy are those
            of its terminal step; its observation is the new episode's first.

        Raises:
            InvalidArgumentError: ``actions`` of the wrong shape or dtype.
            InvalidActionError: a Discrete action out of range, or a Box action outside the
                space's bounds (the PettingZoo env would clip it with a warning).
            MissingActionError: a NaN Box action.
            BatchedEnvStateError: before the first ``reset()``.
        """
        self.s  # noqa: B018 - raises before the first reset
        actions = self._check_actions(actions)
        rewards = self._advance(actions)
        if rewards.dtype != torch.float32 or not rewards.is_contiguous():
            rewards = rewards.to(torch.float32, memory_format=torch.contiguous_format)
        obs = self._observe()
        terminated = self._terminated()
        truncated = self._truncated()
        if terminated is None and truncated is None:
            terminated = truncated = done = self._false
        elif terminated is None:
            terminated, done = self._false, truncated
        elif truncated is None:
            truncated, done = self._false, terminated
        else:
            done = terminated | truncated
        shape = (self.num_envs, self.num_agents)
        terminations = (
            self._false2.clone()
            if terminated is self._false
            else terminated[:, None].expand(shape).clone()
        )
        truncations = (
            self._false2.clone()
            if truncated is self._false
            else truncated[:, None].expand(shape).clone()
        )
        final_state = None
        if bool(done.any()):
            final_obs = torch.where(done[:, None, None], obs, self._zero32)
            if self.report_final_state:
                final_state = torch.where(done[:, None], self._state_vector(), self._zero32)
            fresh = self._sample()
            for key, value in self.s.items():  # the copies are the last dimension
                self.s[key] = torch.where(done, fresh[key], value)
            obs = torch.where(done[:, None, None], self._observe(), obs)
        else:
            final_obs = torch.zeros_like(obs)
        infos = {"reset": done.clone() if done is self._false else done, "final_obs": final_obs}
        if self.report_final_state:
            if final_state is None:
                final_state = torch.zeros(
                    (self.num_envs, *self.state_space.shape), device=self.device
                )
            infos["final_state"] = final_state
        return obs, rewards, terminations, truncations, infos

    def _check_actions(self, actions: Any) -> torch.Tensor:
        if not isinstance(actions, torch.Tensor):
            try:
                actions = torch.as_tensor(np.asarray(actions))
            except (TypeError, ValueError, RuntimeError) as err:
                raise InvalidArgumentError(
                    f"actions must be a tensor or array, got {type(actions).__name__}"
                ) from err
        actions = actions.to(self.device)
        B, A = self.num_envs, self.num_agents
        if self.action_discrete:
            if actions.shape != (B, A):
                raise InvalidArgumentError(
                    f"actions must have shape [num_envs, num_agents] = {(B, A)}; got "
                    f"{tuple(actions.shape)}"
                )
            if (
                actions.dtype.is_floating_point
                or actions.dtype.is_complex
                or (actions.dtype == torch.bool)
            ):
                raise InvalidArgumentError(
                    "actions must be an integer tensor for Discrete action spaces; got dtype "
                    f"{actions.dtype}"
                )
            actions = actions.long()
            low, high = (int(x) for x in torch.aminmax(actions))  # one pass when all is well
            if low < 0 or high >= self._n_min:
                bad = (actions < 0) | (actions >= self._nvec)
                if bool(bad.any()):
                    e, i = (int(k) for k in bad.nonzero()[0])
                    raise InvalidActionError(
                        f"actions[{e}, {i}] = {int(actions[e, i])} for agent "
                        f"{self.possible_agents[i]!r} is outside its Discrete range "
                        f"[0, {self.action_nvec[i]})"  # type: ignore[index]
                    )
            return actions
        d = self.action_dim
        if actions.shape != (B, A, d):
            raise InvalidArgumentError(
                f"actions must have shape [num_envs, num_agents, action_dim] = {(B, A, d)}; got "
                f"{tuple(actions.shape)}"
            )
        if actions.dtype.is_complex or actions.dtype == torch.bool:
            raise InvalidArgumentError(
                f"actions must be a real-valued tensor for Box action spaces; got dtype "
                f"{actions.dtype}"
            )
        # the Box's dtype, as the vector env casts (mpe2 computes the movement in float32)
        actions = actions.to(torch.float32)
        low, high = (float(x) for x in torch.aminmax(actions))  # NaN propagates
        if not (0.0 <= low and high <= 1.0):
            nan = actions.isnan().any(dim=2)
            if bool(nan.any()):
                e, i = (int(k) for k in nan.nonzero()[0])
                raise MissingActionError(
                    f"actions[{e}, {i}] (agent {self.possible_agents[i]!r}) contains NaN"
                )
            bad = ((actions < 0) | (actions > 1)).any(dim=2)
            e, i = (int(k) for k in bad.nonzero()[0])
            raise InvalidActionError(
                f"actions[{e}, {i}] = {actions[e, i].tolist()} for agent "
                f"{self.possible_agents[i]!r} is outside its Box bounds [0, 1] (the PettingZoo "
                "env clips with a warning; the batched env raises)"
            )
        return actions

    def close(self) -> None:
        """Release the state (nothing else is held)."""
        self._s = None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.env_kwargs.items())
        return (
            f"{type(self).__name__}(num_envs={self.num_envs}, device={str(self.device)!r}"
            f"{', ' + args if args else ''})"
        )
