"""Private: :class:`BatchedVectorEnv`, the vector-env interface over an
:mod:`adv_envs.batched` env (``B`` copies stepped as tensor operations).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adv_wrappers.errors import InvalidArgumentError, VectorEnvStateError
from adv_wrappers.vector._layout import Layout, describe


class BatchedVectorEnv:
    """A batched env (:func:`adv_envs.batched.make`) behind the interface of
    :class:`~adv_wrappers.vector.SyncParallelVectorEnv`, so a trainer's rollout code runs on
    it unchanged.

    Outputs are numpy arrays of the same shapes, dtypes and heterogeneity rule as the vector
    env's (the batched env already pads observations the same way), computed on the batched
    env's device and copied to the CPU. The infos have every key the sync backend's have.
    In the batched envs every agent acts at every step and has an observation and a reward,
    so ``alive``, ``acted``, ``has_obs`` and ``has_reward`` are all True; ``final_alive`` is
    ``reset`` per agent; ``agent_infos`` is one empty dict per copy and ``reset_infos`` one
    empty dict per reset copy (``None`` elsewhere): there is no threat model on this path yet,
    so there is no ground truth to report.

    Differences from the PettingZoo backends:

    * ``reset(seed=s)`` reseeds the batched env's one generator with ``s`` (the whole batch;
      a list of per-copy seeds is refused): the same seed gives the same batch, not the same
      episodes as the PettingZoo env (numpy's and torch's generators differ).
    * :meth:`perturb` is not supported (no threat models on this path yet).

    With ``state=True`` the infos of :meth:`reset` and :meth:`step` gain ``"state"``
    (``[E, state_dim]``, after an auto-reset the new episode's first state) and those of
    :meth:`step` ``"final_state"`` (the finished episode's last state where ``reset``), as
    the sync backend's do.

    Args:
        env: a batched env.
        state: add the copies' global state to the infos.

    Raises:
        InvalidArgumentError: ``env`` is not a batched env; ``state=True`` for an env without
            a state.
    """

    def __init__(self, env: Any, state: bool = False) -> None:
        if not all(hasattr(env, k) for k in ("num_envs", "possible_agents", "step", "reset")):
            raise InvalidArgumentError(f"env must be an adv_envs.batched env; got {env!r}")
        self.env = env
        self.num_envs = int(env.num_envs)
        agents, self.observation_spaces, self.action_spaces = describe(env, "the batched env")
        layout = Layout(agents, self.observation_spaces, self.action_spaces)
        self.agents = layout.agents
        self.num_agents = layout.num_agents
        self.single_observation_space = layout.single_observation_space
        self.single_action_space = layout.single_action_space
        self.obs_sizes = layout.obs_sizes
        self.action_sizes = layout.action_sizes
        self.action_nvec = layout.action_nvec
        self.state_space = None
        if state:
            if getattr(env, "state_space", None) is None:
                raise InvalidArgumentError(
                    f"state=True needs an env with a state; {type(env).__name__} has none"
                )
            self.state_space = env.state_space
            env.report_final_state = True
        shape = (self.num_envs, self.num_agents)
        self._true = np.ones(shape, dtype=np.bool_)
        self._needs_reset = True
        self._closed = False

    @property
    def alive(self) -> np.ndarray:
        """``[E, A]`` bool: every agent acts at every step."""
        return self._true.copy()

    def _empty_infos(self) -> list[dict[str, Any]]:
        return [{} for _ in range(self.num_envs)]

    def _check_open(self, method: str) -> None:
        if self._closed:
            raise VectorEnvStateError(f"{type(self).__name__}.{method}() called after close()")

    def reset(
        self, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every copy (``seed``: an int reseeds the batched env's generator)."""
        self._check_open("reset")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)):
            raise InvalidArgumentError(
                f"seed must be an int or None on the batched path (one generator for the "
                f"whole batch); got {seed!r}"
            )
        obs, _ = self.env.reset(seed=None if seed is None else int(seed), options=options)
        self._needs_reset = False
        infos = {
            "alive": self._true.copy(),
            "has_obs": self._true.copy(),
            "agent_infos": self._empty_infos(),
        }
        if self.state_space is not None:
            infos["state"] = self.env.state().cpu().numpy()
        return obs.cpu().numpy(), infos

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every copy; the outputs and infos of the sync backend (see the class)."""
        self._check_open("step")
        if self._needs_reset:
            raise VectorEnvStateError("BatchedVectorEnv.step() called before reset()")
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        reset = infos["reset"].cpu().numpy()
        out = {
            "alive": self._true.copy(),
            "acted": self._true.copy(),
            "has_obs": self._true.copy(),
            "has_reward": self._true.copy(),
            "reset": reset,
            "final_obs": infos["final_obs"].cpu().numpy(),
            "final_alive": np.repeat(reset[:, None], self.num_agents, axis=1),
            "agent_infos": self._empty_infos(),
            "reset_infos": [{} if r else None for r in reset],
        }
        if self.state_space is not None:
            out["state"] = self.env.state().cpu().numpy()
            out["final_state"] = infos["final_state"].cpu().numpy()
        return (
            obs.cpu().numpy(),
            rewards.cpu().numpy(),
            terminations.cpu().numpy(),
            truncations.cpu().numpy(),
            out,
        )

    def close(self) -> None:
        """Close the batched env (idempotent)."""
        if not self._closed:
            self._closed = True
            self.env.close()

    def __enter__(self) -> BatchedVectorEnv:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"BatchedVectorEnv({type(self.env).__name__}, num_envs={self.num_envs}, "
            f"device={getattr(self.env, 'device', None)})"
        )
