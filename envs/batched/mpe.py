"""The MPE family as tensors: mpe2's particle physics and the five scenarios of ``adv_envs``.

Every quantity is float64, as mpe2's numpy arrays are, and each operation follows mpe2's
order (``_mpe_utils/core.py`` ``World.step`` and ``SimpleEnv._execute_world_step``):

1. action -> force. Discrete ``a``: movement ``a % 5`` (0 none, 1 -x, 2 +x, 3 -y, 4 +y) and,
   for speaking agents, the one-hot symbol ``a // 5``; Box ``a``: ``u = (a[2] - a[1],
   a[4] - a[3])`` computed in float32 (the action's dtype) and then widened, the message
   ``a[5:]``. The force is ``5 u`` (mpe2's sensitivity; no agent here sets ``accel`` or
   ``u_noise``).
2. contact forces between colliding agents (landmarks never collide in these scenarios): for
   each pair, ``100 (p_i - p_j) / d * k log(1 + exp(-(d - d_min) / k))`` with ``k = 1e-3``,
   ``d_min`` the sum of the radii, added to agent ``i``'s force in mpe2's pair order
   (``j`` ascending).
3. integration: ``p += v dt``, then ``v = 0.75 v + f dt`` (``dt = 0.1``, damping 0.25,
   mass 1; no ``max_speed``).
4. messages: speaking agents' state is the message just sent, silent agents' zeros.
5. rewards and observations of the scenario, from the new positions.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from adv_envs.batched._base import BatchedEnv

F64 = torch.float64
DT = 0.1
DAMPING = 0.25
CONTACT_FORCE = 1e2
CONTACT_MARGIN = 1e-3
SENSITIVITY = 5.0
# mpe2's discrete movement: 0 none, 1 -x, 2 +x, 3 -y, 4 +y (times the sensitivity)
_MOVES = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], np.float64) * SENSITIVITY


def _norm(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(sum(square(x)))`` over the coordinate axis (``-2``, of size 2; the copies are the
    last axis), as mpe2 writes it."""
    return torch.sqrt(x[..., 0, :] * x[..., 0, :] + x[..., 1, :] * x[..., 1, :])


class BatchedMPE(BatchedEnv):
    """The particle world shared by the MPE scenarios.

    State (``get_state()``, copies first): ``p_pos``, ``p_vel`` ``[B, A, 2]``, ``c``
    ``[B, A, dim_c]`` (messages), ``l_pos`` ``[B, L, 2]`` (landmarks), ``goal`` ``[B, G]``
    long (the scenario's goal landmarks; ``G = 0`` where there are none) and ``t`` ``[B]``
    long. Inside, the copies are the last dimension (``p_pos`` is ``[A, 2, B]``).
    """

    n_goals: ClassVar[int] = 0  # goal landmarks per copy

    def __init__(self, num_envs: int, device: Any = "cpu", seed: int | None = None, **kwargs):
        super().__init__(num_envs, device, seed, **kwargs)
        raw = self._reference.unwrapped
        world = raw.world  # sizes, colliders and speakers as the PettingZoo env builds them
        if any(lm.collide for lm in world.landmarks) or any(
            a.accel is not None or a.max_speed is not None or a.u_noise or a.c_noise
            for a in world.agents
        ):  # pragma: no cover - none of the scenarios here
            raise NotImplementedError("colliding landmarks, accel, max_speed or noise")
        self.continuous_actions = bool(raw.continuous_actions)
        self.n_landmarks = len(world.landmarks)
        self.dim_c = int(world.dim_c)
        self.silent = all(a.silent for a in world.agents)
        A = self.num_agents
        dev = self.device
        self._moves_t = torch.tensor(_MOVES.T, dtype=F64, device=dev).contiguous()  # [2, 5]
        size = torch.tensor([a.size for a in world.agents], dtype=F64, device=dev)
        collide = torch.tensor([a.collide for a in world.agents], device=dev)
        self.collide = bool(collide.any())
        self._dist_min = (size[:, None] + size[None, :])[:, :, None]  # [A, A, 1]
        # pairs (i, j), i != j, that push each other
        pair = ~torch.eye(A, dtype=torch.bool, device=dev)
        self._pair = (pair & collide[:, None] & collide[None, :])[:, :, None]  # [A, A, 1]
        # others[i]: the other agents' indices in order
        self._others = torch.tensor(
            [[j for j in range(A) if j != i] for i in range(A)], dtype=torch.long, device=dev
        ).reshape(A, A - 1)
        self._zero = torch.zeros((), dtype=F64, device=dev)

    # ----------------------------------------------------------------- reset

    def _sample(self) -> dict[str, torch.Tensor]:
        B, A, L = self.num_envs, self.num_agents, self.n_landmarks
        dev = self.device
        kw = {"dtype": F64, "device": dev, "generator": self._rng}
        goal = torch.randint(0, max(L, 1), (self.n_goals, B), device=dev, generator=self._rng)
        return {
            "p_pos": torch.rand((A, 2, B), **kw) * 2 - 1,
            "p_vel": torch.zeros((A, 2, B), dtype=F64, device=dev),
            "c": torch.zeros((A, self.dim_c, B), dtype=F64, device=dev),
            "l_pos": torch.rand((L, 2, B), **kw) * 2 - 1,
            "goal": goal,
            "t": torch.zeros(B, dtype=torch.long, device=dev),
        }

    def _load(self, index: int, raw: Any) -> None:
        world = raw.world
        s = self.s

        def put(key: str, rows: list) -> None:
            s[key][..., index] = torch.tensor(np.array(rows, np.float64), device=self.device)

        put("p_pos", [a.state.p_pos for a in world.agents])
        put("p_vel", [a.state.p_vel for a in world.agents])
        put("c", [a.state.c for a in world.agents])
        put("l_pos", [lm.state.p_pos for lm in world.landmarks])
        goals = self._goals_of(world)
        s["goal"][:, index] = torch.tensor(goals, dtype=torch.long, device=self.device)
        s["t"][index] = int(raw.steps)

    def _goals_of(self, world: Any) -> list[int]:
        return []

    @staticmethod
    def _landmark_index(world: Any, landmark: Any) -> int:
        return next(k for k, lm in enumerate(world.landmarks) if lm is landmark)

    # ----------------------------------------------------------------- step

    def _advance(self, actions: torch.Tensor) -> torch.Tensor:
        s = self.s
        if self.continuous_actions:
            a = actions.permute(1, 2, 0)  # [A, d, B], float32
            u32 = torch.stack([a[:, 2] - a[:, 1], a[:, 4] - a[:, 3]], dim=1)
            force = u32.to(F64) * SENSITIVITY
            message = a[:, 5:].to(F64)
        else:
            a = actions.T  # [A, B]
            move = a if self.silent else a % 5  # a silent agent's actions are the movements
            force = self._moves_t[:, move].transpose(0, 1)  # [A, 2, B]
            if not self.silent:
                message = torch.nn.functional.one_hot(a // 5, self.dim_c).to(F64).permute(0, 2, 1)
        if self.collide:
            force = self._contact(s["p_pos"], force)
        s["p_pos"] = s["p_pos"] + s["p_vel"] * DT
        s["p_vel"] = s["p_vel"] * (1 - DAMPING) + force * DT
        if self.silent:  # mpe2 sets a silent agent's message state to zeros
            s["c"].zero_()
        else:
            s["c"] = message.contiguous()
        s["t"] = s["t"] + 1
        return self._rewards().T

    def _contact(self, p: torch.Tensor, force: torch.Tensor) -> torch.Tensor:
        delta = p[:, None] - p[None, :]  # [i, j, 2, B] = p_i - p_j
        dist = _norm(delta)  # [i, j, B]
        penetration = (
            torch.logaddexp(self._zero, -(dist - self._dist_min) / CONTACT_MARGIN) * CONTACT_MARGIN
        )
        pair_force = CONTACT_FORCE * delta / dist[:, :, None] * penetration[:, :, None]
        pair_force = torch.where(self._pair[:, :, :, None], pair_force, self._zero)
        for j in range(self.num_agents):  # mpe2's order: j ascending
            force = force + pair_force[:, j]
        return force

    # ----------------------------------------------------------------- helpers

    def _rel(self, points: torch.Tensor) -> torch.Tensor:
        """``points[k] - p_pos[i]`` as ``[A, K, 2, B]``."""
        return points[None] - self.s["p_pos"][:, None]

    def _others_rel(self) -> torch.Tensor:
        """``p_j - p_i`` for the other agents ``j`` in index order, ``[A, A-1, 2, B]``."""
        p = self.s["p_pos"]
        return p[self._others] - p[:, None]

    def _goal_pos(self, column: int = 0) -> torch.Tensor:
        """The position of landmark ``goal[column]`` of every copy, ``[2, B]``."""
        goal = self.s["goal"][column]  # [B]
        l_pos = self.s["l_pos"]  # [L, 2, B]
        return l_pos.gather(0, goal[None, None].expand(1, 2, -1))[0]

    def _out(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """Per-agent observations ``[k_i, B]`` (float64) as ``[B, A, D]`` float32, padded."""
        B = self.num_envs
        shape = (B, self.num_agents, self.obs_dim)
        out = torch.zeros(shape, dtype=torch.float32, device=self.device)
        for i, part in enumerate(parts):
            out[:, i, : part.shape[0]].copy_(part.T)  # casts to float32
        return out

    def _batch_first(self, obs: torch.Tensor) -> torch.Tensor:
        """``[A, D, B]`` float64 as ``[B, A, D]`` float32 (one copy: cast and transpose)."""
        shape = (self.num_envs, self.num_agents, obs.shape[1])
        out = torch.empty(shape, dtype=torch.float32, device=self.device)
        out.permute(1, 2, 0).copy_(obs)
        return out

    def _state_vector(self) -> torch.Tensor:
        """mpe2's ``state()``: every agent's observation (float32) concatenated."""
        obs = self._observe()
        return torch.cat([obs[:, i, :n] for i, n in enumerate(self.obs_sizes)], dim=1)

    def _rewards(self) -> torch.Tensor:  # pragma: no cover - abstract
        """The rewards ``[A, B]`` float64 after the physics step."""
        raise NotImplementedError


class IndependentSpread(BatchedMPE):
    """``adv/independent_spread-v0`` (``adv_envs.independent_spread``)."""

    module = "independent_spread"

    def __init__(
        self,
        num_envs: int,
        device: Any = "cpu",
        seed: int | None = None,
        N: int = 3,
        collision_penalty: float = 10.0,
        max_cycles: int = 25,
        continuous_actions: bool = False,
        render_mode: str | None = None,
        collision_count: str = "per_agent",
    ) -> None:
        super().__init__(
            num_envs,
            device,
            seed,
            N=N,
            collision_penalty=collision_penalty,
            max_cycles=max_cycles,
            continuous_actions=continuous_actions,
            render_mode=render_mode,
            collision_count=collision_count,
        )
        self.collision_penalty = float(self._reference.unwrapped.collision_penalty)
        self.per_step = self._reference.unwrapped.collision_count == "per_step"

    def _rewards(self) -> torch.Tensor:
        p = self.s["p_pos"]
        distance = _norm(self.s["l_pos"] - p)  # landmark i is agent i's
        touching = (_norm(p[:, None] - p[None, :]) < self._dist_min) & self._pair
        contacts = touching.sum(dim=1).to(F64)  # [A, B]
        if self.per_step:  # once per step in contact with anyone
            contacts = contacts.clamp(max=1.0)
        return -distance - self.collision_penalty * contacts

    def _observe(self) -> torch.Tensor:
        s = self.s
        A, B = self.num_agents, self.num_envs
        obs = torch.cat(
            [
                s["p_vel"],
                s["p_pos"],
                s["l_pos"] - s["p_pos"],
                self._others_rel().reshape(A, 2 * (A - 1), B),
            ],
            dim=1,
        )
        return self._batch_first(obs)

    def _state_vector(self) -> torch.Tensor:
        s = self.s
        parts = [s["p_pos"], s["p_vel"], s["l_pos"]]  # [A, 2, B] each
        state = torch.cat([x.reshape(-1, self.num_envs) for x in parts]).T
        return state.to(torch.float32, memory_format=torch.contiguous_format)


class CooperativeNavigation(BatchedMPE):
    """``adv/cooperative_navigation-v0`` (mpe2's ``simple_spread``)."""

    module = "cooperative_navigation"

    def __init__(
        self,
        num_envs: int,
        device: Any = "cpu",
        seed: int | None = None,
        N: int = 3,
        local_ratio: float = 0.5,
        max_cycles: int = 25,
        continuous_actions: bool = False,
        render_mode: str | None = None,
        rewards: str = "mpe2",
    ) -> None:
        super().__init__(
            num_envs,
            device,
            seed,
            N=N,
            local_ratio=local_ratio,
            max_cycles=max_cycles,
            continuous_actions=continuous_actions,
            render_mode=render_mode,
            rewards=rewards,
        )
        raw = self._reference.unwrapped
        self.local_ratio = float(raw.local_ratio)
        self.reward_scale = raw.reward_scale

    def _rewards(self) -> torch.Tensor:
        s = self.s
        p = s["p_pos"]
        to_landmarks = _norm(self._rel(s["l_pos"]))  # [agent, landmark, B]
        closest = to_landmarks.min(dim=0).values  # [landmark, B]
        coverage = torch.zeros_like(closest[0])
        for k in range(self.n_landmarks):  # mpe2: rew -= min(dists), landmark by landmark
            coverage = coverage - closest[k]
        touching = _norm(p[:, None] - p[None, :]) < self._dist_min  # [A, A, B]
        A = self.num_agents
        if self.reward_scale == "original":
            contacts = touching.sum(dim=1).to(F64)  # the diagonal included (1 + C_i)
            shared = torch.zeros_like(coverage)
            for i in range(A):
                shared = shared + (coverage - contacts[i])
            return shared[None].expand(A, -1)
        own = -(touching & self._pair).sum(dim=1).to(F64)
        lr = self.local_ratio
        return coverage[None] * (1 - lr) + own * lr

    def _observe(self) -> torch.Tensor:
        s = self.s
        A, B = self.num_agents, self.num_envs
        obs = torch.cat(
            [
                s["p_vel"],
                s["p_pos"],
                self._rel(s["l_pos"]).reshape(A, 2 * self.n_landmarks, B),
                self._others_rel().reshape(A, 2 * (A - 1), B),
                s["c"][self._others].reshape(A, 2 * (A - 1), B),
            ],
            dim=1,
        )
        return self._batch_first(obs)


# landmark colours of simple_reference (red, green, blue)
_REFERENCE_COLOURS = np.array([[0.75, 0.25, 0.25], [0.25, 0.75, 0.25], [0.25, 0.25, 0.75]])


class ExchangeTarget(BatchedMPE):
    """``adv/exchange_target-v0`` (mpe2's ``simple_reference``); ``goal[:, i]`` is the
    landmark agent ``i`` knows (the other agent's target)."""

    module = "exchange_target"
    n_goals = 2

    def __init__(
        self,
        num_envs: int,
        device: Any = "cpu",
        seed: int | None = None,
        local_ratio: float = 0.5,
        max_cycles: int = 25,
        continuous_actions: bool = False,
        render_mode: str | None = None,
        rewards: str = "mpe2",
    ) -> None:
        super().__init__(
            num_envs,
            device,
            seed,
            local_ratio=local_ratio,
            max_cycles=max_cycles,
            continuous_actions=continuous_actions,
            render_mode=render_mode,
            rewards=rewards,
        )
        raw = self._reference.unwrapped
        self.local_ratio = float(raw.local_ratio)
        self.reward_scale = raw.reward_scale
        self._colours = torch.tensor(_REFERENCE_COLOURS, dtype=F64, device=self.device)

    def _goals_of(self, world: Any) -> list[int]:
        return [self._landmark_index(world, agent.goal_b) for agent in world.agents]

    def _rewards(self) -> torch.Tensor:
        p = self.s["p_pos"]
        offsets = [p[1] - self._goal_pos(0), p[0] - self._goal_pos(1)]  # goal_a - goal_b
        if self.reward_scale == "original":
            own = [-(o[0] * o[0] + o[1] * o[1]) for o in offsets]
            return (own[0] + own[1])[None].expand(2, -1)
        own = [-_norm(o) for o in offsets]
        shared = (own[0] + own[1]) / 2
        lr = self.local_ratio
        return torch.stack([shared * (1 - lr) + own[i] * lr for i in range(2)])

    def _observe(self) -> torch.Tensor:
        s = self.s
        B = self.num_envs
        colour = self._colours[s["goal"]].permute(0, 2, 1)  # [2, 3, B]
        other_comm = s["c"][[1, 0]]
        landmarks = self._rel(s["l_pos"]).reshape(2, 6, B)
        obs = torch.cat([s["p_vel"], landmarks, colour, other_comm], dim=1)
        return self._batch_first(obs)


def _push_colours() -> tuple[np.ndarray, np.ndarray]:
    """simple_push's landmark colours and the agent's colour per goal, computed as mpe2 does."""
    landmarks = []
    for i in range(2):
        colour = np.array([0.1, 0.1, 0.1])
        colour[i + 1] += 0.8
        landmarks.append(colour)
    agents = []
    for j in range(2):
        colour = np.array([0.25, 0.25, 0.25])
        colour[j + 1] += 0.5
        agents.append(colour)
    return np.concatenate(landmarks), np.array(agents)


class KeepAway(BatchedMPE):
    """``adv/keep_away-v0`` (mpe2's ``simple_push``): ``adversary_0`` (index 0), ``agent_0``."""

    module = "keep_away"
    n_goals = 1

    def __init__(
        self,
        num_envs: int,
        device: Any = "cpu",
        seed: int | None = None,
        max_cycles: int = 25,
        continuous_actions: bool = False,
        render_mode: str | None = None,
        rewards: str = "mpe2",
    ) -> None:
        super().__init__(
            num_envs,
            device,
            seed,
            max_cycles=max_cycles,
            continuous_actions=continuous_actions,
            render_mode=render_mode,
            rewards=rewards,
        )
        landmark_colours, agent_colours = _push_colours()
        self._landmark_colours = torch.tensor(landmark_colours, dtype=F64, device=self.device)
        self._agent_colours = torch.tensor(agent_colours, dtype=F64, device=self.device)

    def _goals_of(self, world: Any) -> list[int]:
        return [self._landmark_index(world, world.agents[0].goal_a)]

    def _rewards(self) -> torch.Tensor:
        p = self.s["p_pos"]
        g = self._goal_pos()
        agent_distance = _norm(p[1] - g)
        adversary = agent_distance - _norm(g - p[0])
        return torch.stack([adversary, -agent_distance])

    def _observe(self) -> torch.Tensor:
        s = self.s
        B = self.num_envs
        p, v = s["p_pos"], s["p_vel"]
        landmarks = self._rel(s["l_pos"]).reshape(2, 4, B)
        adversary = torch.cat([v[0], landmarks[0], p[1] - p[0]])
        agent = torch.cat(
            [
                v[1],
                self._goal_pos() - p[1],
                self._agent_colours[s["goal"][0]].T,
                landmarks[1],
                self._landmark_colours[:, None].expand(-1, B),
                p[0] - p[1],
            ]
        )
        return self._out([adversary, agent])


class PhysicalDeception(BatchedMPE):
    """``adv/physical_deception-v0`` (mpe2's ``simple_adversary``): ``adversary_0`` (index 0),
    ``agent_0`` ... ``agent_{N-1}``."""

    module = "physical_deception"
    n_goals = 1

    def __init__(
        self,
        num_envs: int,
        device: Any = "cpu",
        seed: int | None = None,
        N: int = 2,
        max_cycles: int = 25,
        continuous_actions: bool = False,
        render_mode: str | None = None,
        rewards: str = "mpe2",
    ) -> None:
        super().__init__(
            num_envs,
            device,
            seed,
            N=N,
            max_cycles=max_cycles,
            continuous_actions=continuous_actions,
            render_mode=render_mode,
            rewards=rewards,
        )
        self.reward_scale = self._reference.unwrapped.reward_scale

    def _goals_of(self, world: Any) -> list[int]:
        return [self._landmark_index(world, world.agents[0].goal_a)]

    def _rewards(self) -> torch.Tensor:
        to_goal = self.s["p_pos"] - self._goal_pos()  # [A, 2, B]
        distance = _norm(to_goal)  # [A, B]
        good = -distance[1:].min(dim=0).values + distance[0]
        if self.reward_scale == "original":
            adversary = -(to_goal[0, 0] * to_goal[0, 0] + to_goal[0, 1] * to_goal[0, 1])
        else:
            adversary = -distance[0]
        return torch.cat([adversary[None], good[None].expand(self.n_landmarks, -1)])

    def _observe(self) -> torch.Tensor:
        s = self.s
        A, B = self.num_agents, self.num_envs
        landmarks = self._rel(s["l_pos"]).reshape(A, 2 * self.n_landmarks, B)
        others = self._others_rel().reshape(A, 2 * (A - 1), B)
        goal = self._goal_pos() - s["p_pos"]  # [A, 2, B]
        adversary = torch.cat([landmarks[0], others[0]])
        good = torch.cat([goal[1:], landmarks[1:], others[1:]], dim=1)  # [N, 4N + 2, B]
        return self._out([adversary, *good.unbind(0)])
