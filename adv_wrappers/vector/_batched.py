"""Private: :class:`BatchedVectorEnv`, the vector-env interface over an
:mod:`adv_envs.batched` env (``B`` copies stepped as tensor operations).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adv_wrappers.core import ActionThreatWrapper
from adv_wrappers.errors import InvalidArgumentError, VectorEnvStateError
from adv_wrappers.state_perturbation import StatePerturbationWrapper
from adv_wrappers.vector._batched_perturbation import BatchedStatePerturbation
from adv_wrappers.vector._batched_threat import BatchedActionThreat
from adv_wrappers.vector._layout import (
    Layout,
    LayoutAttributes,
    check_action_shape,
    describe,
    per_copy_options,
)


class BatchedVectorEnv(LayoutAttributes):
    """A batched env (:func:`adv_envs.batched.make`) behind the interface of
    :class:`~adv_wrappers.vector.SyncParallelVectorEnv`, so a trainer's rollout code runs on
    it unchanged.

    Outputs are numpy arrays of the same shapes, dtypes and heterogeneity rule as the vector
    env's, computed on the batched env's device and copied to the CPU. The infos have every
    key the sync backend's have. Without a threat model every agent acts at every step and
    has an observation and a reward, so ``alive``, ``acted``, ``has_obs`` and ``has_reward``
    are all True, ``final_alive`` is ``reset`` per agent, and ``agent_infos`` is one empty
    dict per copy (``reset_infos`` one per reset copy, ``None`` elsewhere).

    With ``threat`` (an action threat wrapper -- ``k_corruption_v0``, ``byzantine_v0`` or
    ``partial_control_v0`` with exposed adversaries -- built on one PettingZoo copy of the
    env), the batch runs that threat model: the agent axis is the wrapper's
    ``possible_agents`` (the env's agents, then the adversaries), and the masks,
    observations, rewards, flags and per-copy infos (the ground truth under the wrapper's
    ``threat_name``) are those the sync backend gives for copies of that wrapper. Each copy's
    episode (who is attacked, the victims, Byzantine types) and per-step coin (partial
    control) are drawn by the wrapper's own code with the RNG the sync backend's copy would
    have (``reset(seed=s)`` seeds copy ``i``'s with ``s + i``), so both paths draw the same
    attacks; see ``adv_wrappers/vector/_batched_threat.py``. ``agent_infos`` and
    ``reset_infos`` are then sequences that build a copy's dict when it is read.

    With a ``state_perturbation_v0`` wrapper as ``threat`` (random noise, checkpoint policies
    as chi, or exposed adversaries with the default ``timing="next_step"``), the batch is
    perturbed with the wrapper's maps over arrays; random noise then has the wrapper's
    distribution but is drawn from one generator for the batch (see
    ``adv_wrappers/vector/_batched_perturbation.py``).

    Differences from the PettingZoo backends:

    * ``reset(seed=s)`` reseeds the batched env's one generator with ``s`` (the whole batch;
      a list of per-copy seeds is refused): the same seed gives the same batch, not the same
      episodes as the PettingZoo env (numpy's and torch's generators differ).
    * :meth:`perturb` is not supported (``state_perturbation_v0(timing="same_step")`` runs
      on the PettingZoo backends).

    With ``state=True`` the infos of :meth:`reset` and :meth:`step` gain ``"state"``
    (``[E, state_dim]``, after an auto-reset the new episode's first state) and those of
    :meth:`step` ``"final_state"`` (the finished episode's last state where ``reset``), as
    the sync backend's do.

    Args:
        env: a batched env.
        state: add the copies' global state to the infos.
        threat: ``None``, or the action threat wrapper to run on the batch (see above).

    Raises:
        InvalidArgumentError: ``env`` is not a batched env; ``state=True`` for an env without
            a state; a ``threat`` that is not a threat wrapper of this env, or a configuration
            that runs on the sync and subproc backends only: an embedded action adversary or
            benign policy, Byzantine ``reveal_types``, ``timing="same_step"``, a gradient
            attack, policies that do not act on batches.
    """

    def __init__(self, env: Any, state: bool = False, threat: Any = None) -> None:
        if not all(hasattr(env, k) for k in ("num_envs", "possible_agents", "step", "reset")):
            raise InvalidArgumentError(f"env must be an adv_envs.batched env; got {env!r}")
        self.env = env
        self.num_envs = int(env.num_envs)
        self.threat: BatchedActionThreat | BatchedStatePerturbation | None = None
        if threat is None:
            described = describe(env, "the batched env")
        else:
            if not isinstance(threat, ActionThreatWrapper | StatePerturbationWrapper):
                raise InvalidArgumentError(
                    "threat must be a threat wrapper (k_corruption_v0, byzantine_v0, "
                    "partial_control_v0, state_perturbation_v0) built on a PettingZoo copy of "
                    f"the env; got {threat!r}"
                )
            if list(threat._base_possible) != list(env.possible_agents):
                raise InvalidArgumentError(
                    f"threat wraps an env with agents {threat._base_possible}, the batched env "
                    f"has {list(env.possible_agents)}"
                )
            described = describe(threat, "threat")
        agents, self.observation_spaces, self.action_spaces = described
        self._expose(Layout(agents, self.observation_spaces, self.action_spaces))
        self.state_space = None
        if state:
            if getattr(env, "state_space", None) is None:
                raise InvalidArgumentError(
                    f"state=True needs an env with a state; {type(env).__name__} has none"
                )
            self.state_space = env.state_space
            env.report_final_state = True
        if isinstance(threat, StatePerturbationWrapper):
            self.threat = BatchedStatePerturbation(threat, self.num_envs, self.agents)
        elif threat is not None:
            self.threat = BatchedActionThreat(threat, self.num_envs, self.agents)
        if self.threat is not None:
            if self.threat.adversary_observes == "state":
                env.report_final_state = True
        shape = (self.num_envs, self.num_agents)
        self._true = np.ones(shape, dtype=np.bool_)
        self._alive = self._true
        self._needs_reset = True
        self._closed = False

    @property
    def alive(self) -> np.ndarray:
        """``[E, A]`` bool: agents that must act at the next :meth:`step` (a copy)."""
        return self._alive.copy()

    def _empty_infos(self) -> list[dict[str, Any]]:
        return [{} for _ in range(self.num_envs)]

    def _check_open(self, method: str) -> None:
        if self._closed:
            raise VectorEnvStateError(f"{type(self).__name__}.{method}() called after close()")

    def reset(
        self, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every copy (``seed``: an int reseeds the batched env's generator and, with a
        threat model, seeds copy ``i``'s threat RNG with ``seed + i``; ``options``: the threat
        wrapper's reset options, given to every copy and repeated at auto-resets)."""
        self._check_open("reset")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)):
            raise InvalidArgumentError(
                f"seed must be an int or None on the batched path (one generator for the "
                f"whole batch); got {seed!r}"
            )
        self._needs_reset = True
        threat = self.threat
        own = None
        if threat is not None:
            seeds = [None if seed is None else int(seed) + i for i in range(self.num_envs)]
            own, options = threat.split_options(seeds, per_copy_options(options, self.num_envs))
        obs, _ = self.env.reset(seed=None if seed is None else int(seed), options=options)
        state = self._state()
        if threat is None:
            obs_out = obs.cpu().numpy()
            agent_infos: Any = self._empty_infos()
        elif isinstance(threat, BatchedStatePerturbation):
            self._alive = threat.alive()
            obs_np = obs.cpu().numpy().copy()
            threat.remember(obs_np)
            record = threat.perturb(obs_np, state, None, np.ones(self.num_envs, np.bool_))
            obs_out = self._observations(obs_np, state, record["true"])
            agent_infos = threat.snapshot(self._alive, record)
        else:
            threat.begin(range(self.num_envs), own)
            self._alive = threat.alive()
            obs_out = self._observations(obs.cpu().numpy(), state)
            agent_infos = threat.snapshot(self._alive)
        self._needs_reset = False
        infos = {
            "alive": self._alive.copy(),
            "has_obs": self._alive.copy(),
            "agent_infos": agent_infos,
        }
        if self.state_space is not None:
            infos["state"] = state
        return obs_out, infos

    def _state(self) -> np.ndarray | None:
        if self.state_space is None and (
            self.threat is None or self.threat.adversary_observes != "state"
        ):
            return None
        return self.env.state().cpu().numpy()

    def _observations(
        self, obs: np.ndarray, state: np.ndarray | None, true: np.ndarray | None = None
    ) -> np.ndarray:
        layout = self._layout
        threat = self.threat
        if isinstance(threat, BatchedStatePerturbation):
            assert true is not None
            return threat.observations(obs, true, state, layout.obs_shape, layout.obs_dtype)
        assert threat is not None
        return threat.observations(obs, state, layout.obs_shape, layout.obs_dtype)

    def _check_actions(self, actions: Any) -> np.ndarray:
        return check_action_shape(actions, self.num_envs, self._layout)

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every copy; the outputs and infos of the sync backend (see the class)."""
        self._check_open("step")
        if self._needs_reset:
            raise VectorEnvStateError("BatchedVectorEnv.step() called before reset()")
        threat = self.threat
        if threat is None:
            return self._step_plain(actions)
        if isinstance(threat, BatchedStatePerturbation):
            return self._step_perturbation(threat, actions)
        actions = self._check_actions(actions)
        base_actions, acted = threat.route_actions(actions)
        self._needs_reset = True  # a step that raises leaves the batch out of step
        obs, rewards, terminations, truncations, infos = self.env.step(base_actions)
        reset = infos["reset"].cpu().numpy()
        before = self._alive
        rew, term, trunc = threat.flags(
            rewards.cpu().numpy(), terminations.cpu().numpy(), truncations.cpu().numpy()
        )
        final_state = infos["final_state"].cpu().numpy() if "final_state" in infos else None
        final_obs = self._observations(infos["final_obs"].cpu().numpy(), final_state)
        final_alive = before & reset[:, None]
        final_obs[~reset] = 0
        layout = self._layout
        agent_infos = threat.snapshot(
            before,
            acted,
            base_actions,
            discrete=layout.action_discrete,
            action_sizes=layout.action_sizes.tolist(),
        )
        copies = np.flatnonzero(reset)
        if copies.size:
            threat.begin(copies.tolist())
            self._alive = threat.alive()
        state = self._state()
        obs_out = self._observations(obs.cpu().numpy(), state)
        self._needs_reset = False
        out = {
            "alive": self._alive.copy(),
            "acted": before.copy(),
            "has_obs": self._alive.copy(),
            "has_reward": before.copy(),
            "reset": reset,
            "final_obs": final_obs,
            "final_alive": final_alive,
            "agent_infos": agent_infos,
            "reset_infos": threat.snapshot(self._alive, copies=reset),
        }
        if self.state_space is not None:
            out["state"] = state
            out["final_state"] = final_state
        return obs_out, rew, term, trunc, out

    def _step_perturbation(
        self, threat: BatchedStatePerturbation, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = self._check_actions(actions)
        base, u = threat.route_actions(actions, self.env.action_discrete, self.env.action_dim)
        self._needs_reset = True  # a step that raises leaves the batch out of step
        obs_t, rewards, terminations, truncations, infos = self.env.step(base)
        reset = infos["reset"].cpu().numpy()
        obs = obs_t.cpu().numpy().copy()
        threat.remember(obs)
        state = self._state()
        final_obs = infos["final_obs"].cpu().numpy().copy()
        final_state = infos["final_state"].cpu().numpy() if "final_state" in infos else None
        # a copy that went on: its new observation perturbed with this step's actions; one that
        # reset: its last observation so, and its new episode's first as at a reset
        went_on = threat.perturb(obs, state, u, ~reset)
        fresh = threat.perturb(obs, state, None, reset)
        final = threat.perturb(final_obs, final_state, u, reset)
        env_rewards = rewards.cpu().numpy()
        rew, term, trunc = threat.flags(
            env_rewards, terminations.cpu().numpy(), truncations.cpu().numpy()
        )
        stepped = {
            key: None
            if went_on[key] is None
            else np.where(
                reset.reshape(-1, *[1] * (went_on[key].ndim - 1)), final[key], went_on[key]
            )
            for key in ("true", "norms", "u")
        }
        stepped["rows"] = np.ones(self.num_envs, dtype=np.bool_)
        out_final = self._observations(final_obs, final_state, final["true"])
        out_final[~reset] = 0
        self._needs_reset = False
        all_alive = self._alive
        out = {
            "alive": all_alive.copy(),
            "acted": all_alive.copy(),
            "has_obs": all_alive.copy(),
            "has_reward": all_alive.copy(),
            "reset": reset,
            "final_obs": out_final,
            "final_alive": np.repeat(reset[:, None], self.num_agents, axis=1),
            "agent_infos": threat.snapshot(all_alive, stepped, rewards=env_rewards),
            "reset_infos": threat.snapshot(all_alive, fresh, copies=reset),
        }
        if self.state_space is not None:
            out["state"] = state
            out["final_state"] = final_state
        return self._observations(obs, state, went_on["true"]), rew, term, trunc, out

    def _step_plain(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
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
