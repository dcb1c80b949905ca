"""Independent Spread: every agent walks to its own landmark and must not bump into the others.

A general-sum variant of the multi-agent particle environment's Spread (Lowe et al., 2017),
following Nika et al. (TMLR 2024), "Defending Against Unknown Corrupted Agents", App. C.1 and
the Independent Spread rows of Table 1. Each of the `N` agents is assigned its own landmark
(agent `i` gets landmark `i`) and is paid for its own progress only: the negative L2 distance
to its landmark minus a large penalty (10) for every other agent it collides with. Because the
rewards are individual, an attacker that corrupts some agents can single out one victim, which
is why the paper reports the worst case over victims. The physics are MPE's (mpe2's particle
world: a point mass with damping, soft collision forces), the scenario is this module's own.

| | |
|---|---|
| Agents | `agent_0` ... `agent_{N-1}` (default `N=3`) |
| Actions | `Discrete(5)`: 0 no-op, 1 left (-x), 2 right (+x), 3 down (-y), 4 up (+y); each adds an acceleration of 5 in that direction for one step. With `continuous_actions=True`: `Box(0, 1, (5,), float32)`, the acceleration is `5 * (a[2] - a[1], a[4] - a[3])` (mpe2's convention) |
| Observations | `Box(-inf, inf, (2N + 4,), float32)`, see the layout below |
| State | `Box(-inf, inf, (6N,), float32)`: the positions of all agents (`2N`), their velocities (`2N`), then the positions of the landmarks (`2N`, landmark `i` is agent `i`'s), all absolute and in agent order |
| Rewards | agent `i`: `-‖p_i - l_i‖ - collision_penalty * C_i`, where `C_i = #{j ≠ i : ‖p_i - p_j‖ < 0.3}` (agents are discs of radius 0.15) with `collision_count="per_agent"` (default), or `C_i = 1` if that set is not empty (else 0) with `collision_count="per_step"` |
| Episode | `max_cycles` steps (default 25), then every agent is truncated; no early termination |
| Kind | general-sum: each agent has its own reward |

Observation of agent `i` (all positions in world coordinates, in `[-1, 1]` at reset):

| slice | content |
|---|---|
| `[0:2]` | own velocity `v_i` |
| `[2:4]` | own position `p_i` |
| `[4:6]` | own landmark relative to the agent, `l_i - p_i` |
| `[6:2N+4]` | every other agent `j` in index order, relative: `p_j - p_i` |

An agent never sees the other agents' landmarks; the others can only guess its landmark from
how it moves, which is what a corrupted agent exploits to block it (Nika et al. (TMLR 2024), Fig. 2).

At reset the agents and landmarks are placed uniformly at random in `[-1, 1]^2` with zero
velocity. Collisions are counted after the physics step, from the new positions; two agents in
contact also push each other apart (MPE's soft contact force), which the penalty does not
replace.

## Arguments

| argument | default | allowed values |
|---|---|---|
| `N` | `3` | int >= 1: number of agents (and of landmarks) |
| `collision_penalty` | `10.0` | finite float >= 0: the penalty of a collision |
| `collision_count` | `"per_agent"` | `"per_agent"`: the penalty is paid once per other agent in contact, per step; `"per_step"`: once per step in contact with any other agent |
| `max_cycles` | `25` | int >= 1: episode length in steps |
| `continuous_actions` | `False` | bool: `Box(0, 1, (5,))` actions instead of `Discrete(5)` |
| `render_mode` | `None` | `None`, `"rgb_array"` (a `(700, 700, 3)` uint8 frame) or `"human"` |

Bad values raise `adv_wrappers.errors.InvalidArgumentError`.

Example:

```python
>>> import numpy as np
>>> from adv_envs import independent_spread
>>> env = independent_spread.parallel_env()
>>> obs, infos = env.reset(seed=0)
>>> obs["agent_0"].shape, env.state().shape
((10,), (18,))
>>> w = env.unwrapped.world
>>> for a, pos in zip(w.agents, [(0.0, 0.0), (0.2, 0.0), (0.9, 0.9)]):
...     a.state.p_pos, a.state.p_vel = np.array(pos), np.zeros(2)
>>> for lm, pos in zip(w.landmarks, [(0.3, 0.4), (0.2, 0.0), (0.9, 0.1)]):
...     lm.state.p_pos = np.array(pos)
>>> obs, rewards, terms, truncs, infos = env.step(dict.fromkeys(env.agents, 0))
>>> {a: round(r, 6) for a, r in rewards.items()}
{'agent_0': -10.5, 'agent_1': -10.0, 'agent_2': -0.8}

```

## Differences from the paper

- The paper lists the observation as the agent's position and the relative positions of its
  landmark and of the other agents; the agent's velocity is added here (as in every MPE
  scenario), because actions change the velocity and without it the observation is not Markov.
- The paper gives neither the number of agents nor the episode length; the defaults (3 agents,
  25 steps) are those of MPE's Spread, which the paper modifies.
- The paper does not say how often the collision penalty is paid. By default it is per other
  agent in contact, per step (two overlapping agents each pay 10 at every step they overlap);
  `collision_count="per_step"` pays it once per step however many agents touch. The two
  differ only when three or more agents are in contact.
- Landmark assignment is fixed (agent `i` to landmark `i`); since landmarks are placed
  independently and uniformly, a random assignment would give the same distribution of
  episodes.

## Version History

- v0: initial release; later the `collision_count` argument added (default `"per_agent"`:
  the rewards of the initial release).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from gymnasium.utils import EzPickle
from mpe2._mpe_utils.core import Agent, Landmark, World
from mpe2._mpe_utils.scenario import BaseScenario
from mpe2._mpe_utils.simple_env import SimpleEnv

from adv_envs._checks import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_render_mode,
)
from adv_envs._mpe import PYGAME_LOCK, PygameLocked, entry_points

NAME = "independent_spread_v0"
RENDER_MODES = (None, "rgb_array", "human")
AGENT_SIZE = 0.15
COLLISION_COUNTS = ("per_agent", "per_step")

# ------------------------------------------------------------------ scenario

# one hue per agent, its landmark drawn in the same hue (mpe2 multiplies colours by 200)
_PALETTE = np.array(
    [
        [0.35, 0.35, 0.85],
        [0.85, 0.35, 0.35],
        [0.35, 0.75, 0.35],
        [0.80, 0.60, 0.20],
        [0.60, 0.35, 0.80],
        [0.25, 0.70, 0.75],
    ]
)


class Scenario(BaseScenario):
    """Independent Spread on mpe2's particle world: agent ``i`` goes to landmark ``i``."""

    def __init__(self, collision_penalty: float = 10.0, collision_count: str = "per_agent"):
        self.collision_penalty = collision_penalty
        self.collision_count = collision_count

    def make_world(self, N: int = 3) -> World:
        world = World()
        world.dim_c = 2
        world.agents = [Agent() for _ in range(N)]
        for i, agent in enumerate(world.agents):
            agent.name = f"agent_{i}"
            agent.collide = True
            agent.silent = True
            agent.size = AGENT_SIZE
            agent.color = _PALETTE[i % len(_PALETTE)]
        world.landmarks = [Landmark() for _ in range(N)]
        for i, landmark in enumerate(world.landmarks):
            landmark.name = f"landmark_{i}"
            landmark.collide = False
            landmark.movable = False
            landmark.color = _PALETTE[i % len(_PALETTE)] * 0.6
        return world

    def reset_world(self, world: World, np_random: np.random.Generator) -> None:
        for agent in world.agents:
            agent.state.p_pos = np_random.uniform(-1, +1, world.dim_p)
            agent.state.p_vel = np.zeros(world.dim_p)
            agent.state.c = np.zeros(world.dim_c)
        for landmark in world.landmarks:
            landmark.state.p_pos = np_random.uniform(-1, +1, world.dim_p)
            landmark.state.p_vel = np.zeros(world.dim_p)

    @staticmethod
    def is_collision(a: Agent, b: Agent) -> bool:
        return bool(np.linalg.norm(a.state.p_pos - b.state.p_pos) < a.size + b.size)

    def collisions(self, agent: Agent, world: World) -> int:
        """How many collisions ``agent`` pays for: the other agents it is in contact with
        (``collision_count="per_agent"``), or 1 if there is any (``"per_step"``)."""
        contacts = sum(
            1 for other in world.agents if other is not agent and self.is_collision(agent, other)
        )
        return min(contacts, 1) if self.collision_count == "per_step" else contacts

    def landmark_of(self, agent: Agent, world: World) -> Landmark:
        return world.landmarks[world.agents.index(agent)]

    def reward(self, agent: Agent, world: World) -> float:
        distance = np.linalg.norm(agent.state.p_pos - self.landmark_of(agent, world).state.p_pos)
        return float(-distance - self.collision_penalty * self.collisions(agent, world))

    def observation(self, agent: Agent, world: World) -> np.ndarray:
        landmark = self.landmark_of(agent, world).state.p_pos - agent.state.p_pos
        others = [o.state.p_pos - agent.state.p_pos for o in world.agents if o is not agent]
        return np.concatenate([agent.state.p_vel, agent.state.p_pos, landmark, *others])

    def state(self, world: World) -> np.ndarray:
        return np.concatenate(
            [a.state.p_pos for a in world.agents]
            + [a.state.p_vel for a in world.agents]
            + [lm.state.p_pos for lm in world.landmarks]
        )


# ------------------------------------------------------------------ env


class raw_env(PygameLocked, SimpleEnv, EzPickle):
    """The AEC Independent Spread env without the order/bounds wrappers (see the module docs)."""

    def __init__(
        self,
        N: int = 3,
        collision_penalty: float = 10.0,
        max_cycles: int = 25,
        continuous_actions: bool = False,
        render_mode: str | None = None,
        collision_count: str = "per_agent",
    ) -> None:
        N = check_int(N, "N")
        collision_penalty = check_float(collision_penalty, "collision_penalty", low=0.0)
        collision_count = check_choice(collision_count, "collision_count", COLLISION_COUNTS)
        max_cycles = check_int(max_cycles, "max_cycles")
        continuous_actions = check_bool(continuous_actions, "continuous_actions")
        render_mode = check_render_mode(render_mode)
        EzPickle.__init__(
            self,
            N=N,
            collision_penalty=collision_penalty,
            max_cycles=max_cycles,
            continuous_actions=continuous_actions,
            render_mode=render_mode,
            collision_count=collision_count,
        )
        scenario = Scenario(collision_penalty=collision_penalty, collision_count=collision_count)
        with PYGAME_LOCK:  # mpe2 sets up pygame here (not thread-safe)
            SimpleEnv.__init__(
                self,
                scenario=scenario,
                world=scenario.make_world(N),
                render_mode=render_mode,
                max_cycles=max_cycles,
                continuous_actions=continuous_actions,
            )
        # an instance dict: mpe2 writes its names into the class-level SimpleEnv.metadata
        self.metadata = {
            "name": NAME,
            "render_modes": ["human", "rgb_array"],
            "is_parallelizable": True,
            "render_fps": 10,
        }
        self.N = N
        self.collision_penalty = collision_penalty
        self.collision_count = collision_count
        self.state_space = spaces.Box(-np.inf, np.inf, (6 * N,), np.float32)

    def state(self) -> np.ndarray:
        return self.scenario.state(self.world).astype(np.float32)


env, parallel_env = entry_points(raw_env)
