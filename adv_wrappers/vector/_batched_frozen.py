"""Private: :class:`BatchedFreeze`, frozen agents (``freeze_v0``) on the batched path.

The frozen agents act inside with their fixed policies, evaluated on the whole batch at once
(:meth:`adv_wrappers.train.policy.CheckpointPolicy.act_batch`), and leave the agent axis;
the outputs and infos are those of ``freeze_v0`` copies on the sync backend. What
``freeze_v0`` adds besides the routing is the play-out of an episode whose outside agents
are all done while frozen agents still act; in a batched env every agent acts until its
copy's episode ends, so this only arises in a copy with no outside agent at all, which the
batched path refuses (module :class:`BatchedFreeze`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from adv_wrappers.core import seeded_rng
from adv_wrappers.errors import InvalidArgumentError, UnknownAgentError
from adv_wrappers.vector._batched_threat import LazyCopies
from adv_wrappers.vector._layout import (
    Layout,
    LayoutAttributes,
    actions_below,
    check_action_shape,
)


def _frozen_infos(below: Sequence, rows: dict[str, Any], e: int) -> dict[Any, Any] | None:
    """Copy ``e``'s infos with ``freeze_v0``'s ground truth (``below``: the infos under it)."""
    inner = below[e]
    if inner is None:
        return None
    rewards: dict[Any, float] = {}
    if rows["rewards"] is not None:
        for name, col in rows["frozen"]:
            if rows["has_reward"][e, col]:
                rewards[name] = float(rows["rewards"][e, col])
    gt = {
        "rewards": rewards,
        "played_out_steps": 0,
        "infos": {name: inner[name] for name, _ in rows["frozen"] if name in inner},
    }
    return {
        name: {**inner.get(name, {}), "freeze": gt}
        for name, col in rows["outside"]
        if rows["listed"][e, col]
    }


class BatchedFreeze(LayoutAttributes):
    """Frozen agents over a :class:`~adv_wrappers.vector.BatchedVectorEnv` (the vector-env
    interface of ``freeze_v0`` copies on the sync backend).

    Args:
        envs: the batched vector env (with or without a threat model).
        policies: agent (of ``envs.agents``) -> a policy with ``act_batch`` (a
            :class:`~adv_wrappers.train.policy.CheckpointPolicy`, as ``load_policy`` and the
            trainers' policy references give) or ``"random"`` (uniform actions drawn with
            this layer's RNG, seeded by ``reset(seed)``).

    Raises:
        InvalidArgumentError: ``policies`` empty, freezing every agent, a policy without
            ``act_batch`` (a plain callable acts on one observation: run it on the sync
            backend) or a recurrent one; at a reset, a copy whose episode leaves no outside
            agent to act (``freeze_v0`` plays such an episode out inside one step, which a
            batch cannot do).
        UnknownAgentError: a key of ``policies`` not in ``envs.agents``.
    """

    def __init__(self, envs: Any, policies: Mapping[Any, Any]) -> None:
        if not isinstance(policies, Mapping) or not policies:
            raise InvalidArgumentError(
                f"policies must be a non-empty dict agent ID -> policy, got {policies!r}"
            )
        unknown = [a for a in policies if a not in envs.agents]
        if unknown:
            raise UnknownAgentError(
                f"policies has unknown agent IDs {unknown}; allowed: {list(envs.agents)}"
            )
        for agent, policy in policies.items():
            if isinstance(policy, str) and policy == "random":
                continue
            if not callable(getattr(policy, "act_batch", None)):
                raise InvalidArgumentError(
                    f"policies[{agent!r}] = {policy!r} has no act_batch: the batched path "
                    "runs checkpoint policies (load_policy) and 'random'; run other policies "
                    "on the sync or subproc backend"
                )
            if getattr(policy, "recurrent", False):
                raise InvalidArgumentError(
                    f"policies[{agent!r}] is recurrent (its state is one episode's); run it on "
                    "the sync or subproc backend"
                )
        self.envs = envs
        self.num_envs = envs.num_envs
        self._policies = dict(policies)
        index = {a: i for i, a in enumerate(envs.agents)}
        self._frozen = [(a, index[a]) for a in envs.agents if a in policies]
        self._out_cols = np.array([i for i, a in enumerate(envs.agents) if a not in policies])
        if self._out_cols.size == 0:
            raise InvalidArgumentError(
                "cannot freeze every agent: at least one must stay outside to act"
            )
        agents = [envs.agents[i] for i in self._out_cols]
        self.observation_spaces = {a: envs.observation_spaces[a] for a in agents}
        self.action_spaces = {a: envs.action_spaces[a] for a in agents}
        self._expose(Layout(agents, self.observation_spaces, self.action_spaces))
        self.state_space = envs.state_space
        self._outside = [(a, int(i)) for a, i in zip(agents, self._out_cols, strict=True)]
        self._inner_sizes = [int(envs.obs_sizes[c]) for _, c in self._frozen]
        self._rng = seeded_rng(None, type(self).__name__)
        self._obs: np.ndarray | None = None
        self._inner_alive = np.zeros((self.num_envs, len(envs.agents)), dtype=np.bool_)

    @property
    def alive(self) -> np.ndarray:
        """``[E, A]`` bool: agents that must act at the next :meth:`step` (a copy)."""
        return self._inner_alive[:, self._out_cols].copy()

    def _check_outside(self, alive: np.ndarray) -> None:
        empty = ~alive[:, self._out_cols].any(axis=1)
        if empty.any():
            e = int(np.flatnonzero(empty)[0])
            raise InvalidArgumentError(
                f"copy {e}'s episode leaves no outside agent to act (the frozen agents "
                f"{[a for a, _ in self._frozen]} would play it alone); freeze_v0 plays such an "
                "episode out inside one step, which the batched path cannot: use the sync or "
                "subproc backend, or a threat configuration that always leaves an agent outside"
            )

    def _obs_out(self, obs: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(obs[:, self._out_cols, ..., : self._layout.obs_shape[-1]])

    def reset(
        self, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every copy (``seed`` also seeds the ``"random"`` frozen agents' RNG)."""
        obs, infos = self.envs.reset(seed=seed, options=options)
        if seed is not None:
            self._rng = seeded_rng(int(seed), type(self).__name__)
        self._obs, self._inner_alive = obs, infos["alive"]
        self._check_outside(self._inner_alive)
        out = {
            "alive": infos["alive"][:, self._out_cols],
            "has_obs": infos["has_obs"][:, self._out_cols],
            "agent_infos": self._infos(infos["agent_infos"], infos["alive"], None, None),
        }
        if "state" in infos:
            out["state"] = infos["state"]
        return self._obs_out(obs), out

    def _infos(
        self,
        inner: Sequence,
        listed: np.ndarray,
        rewards: np.ndarray | None,
        has_reward: np.ndarray | None,
    ) -> LazyCopies:
        rows = {
            "frozen": self._frozen,
            "outside": self._outside,
            "listed": listed,
            "rewards": rewards,
            "has_reward": has_reward,
        }
        return LazyCopies(len(inner), lambda e: _frozen_infos(inner, rows, e))

    def _act(self, agent: Any, col: int, size: int, rows: np.ndarray) -> np.ndarray:
        assert self._obs is not None
        policy = self._policies[agent]
        space = self.envs.action_spaces[agent]
        if isinstance(policy, str):  # "random"
            n = int(rows.sum())
            if isinstance(space, spaces.Discrete):
                return self._rng.integers(space.start, space.start + space.n, size=n)
            return self._rng.uniform(space.low, space.high, size=(n, *space.shape)).astype(
                space.dtype
            )
        return policy.act_batch(self._obs[rows, col, :size])

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every copy: the outside agents' ``actions`` (this layer's agent axis) and the
        frozen agents' own; the outputs of the sync backend over ``freeze_v0`` copies."""
        actions = check_action_shape(actions, self.num_envs, self._layout)
        envs = self.envs
        inner = actions_below(envs, actions, (slice(None), self._out_cols))
        boxes = inner.ndim == 3
        for (agent, col), size in zip(self._frozen, self._inner_sizes, strict=True):
            rows = self._inner_alive[:, col]
            if rows.any():
                act = self._act(agent, col, size, rows)
                if boxes:
                    act = np.asarray(act).reshape(int(rows.sum()), -1)
                    inner[rows, col, : act.shape[1]] = act
                else:
                    inner[rows, col] = act
        obs, rewards, terms, truncs, infos = envs.step(inner)
        self._obs, self._inner_alive = obs, infos["alive"]
        self._check_outside(self._inner_alive)
        cols = self._out_cols
        out = {
            key: infos[key][:, cols]
            for key in ("alive", "acted", "has_obs", "has_reward", "final_alive")
        }
        out["reset"] = infos["reset"]
        out["final_obs"] = self._obs_out(infos["final_obs"])
        out["agent_infos"] = self._infos(
            infos["agent_infos"], infos["has_reward"], rewards, infos["has_reward"]
        )
        out["reset_infos"] = self._infos(infos["reset_infos"], infos["alive"], None, None)
        for key in ("state", "final_state"):
            if key in infos:
                out[key] = infos[key]
        return (
            self._obs_out(obs),
            rewards[:, cols],
            terms[:, cols],
            truncs[:, cols],
            out,
        )

    def close(self) -> None:
        """Close the batched env (idempotent)."""
        self.envs.close()

    def __enter__(self) -> BatchedFreeze:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"BatchedFreeze({self.envs!r}, frozen={[a for a, _ in self._frozen]})"
