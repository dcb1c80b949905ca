"""What the three RoboSumo environments share: the scene (tatami and robot bodies, written here
as MJCF), the two-player parallel env built on the ``mujoco`` bindings, and the docs page.

``adv_envs.robosumo_ant``, ``robosumo_bug`` and ``robosumo_spider`` are thin modules around
:class:`RoboSumoParallelEnv`; their docstrings (the docs pages) are :func:`docs_page` filled in
with the body's numbers, so the rules are written once. Facts and numbers come from the
original RoboSumo (Al-Shedivat et al. (ICLR 2018), code at github.com/openai/robosumo, MuJoCo
1.5): the files named in the comments below are that repository's; the MJCF and the code here
are written anew for MuJoCo 3.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from string import Template
from typing import Any

import gymnasium
import mujoco
import numpy as np
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv
from pettingzoo.utils import parallel_to_aec, wrappers

from adv_envs._checks import check_bool, check_choice, check_float, check_int, check_render_mode
from adv_envs._errors import InvalidArgumentError

AGENTS = ("agent_0", "agent_1")
RENDER_MODES = (None, "rgb_array")
TATAMI_SHAPES = ("square", "round")

# The arena (tatami.xml and SumoEnv(tatami_size=2.0) in sumo.py, utils.construct_scene).
TATAMI_HALF_SIZE = 2.3  # the raised tatami: a 4.6 m square (here also: a disc of radius 2.3 m)
TATAMI_TOP = 0.5  # its surface is 0.5 m above the floor
RING = 2.0  # the painted border (the original's "tatami_size")
OUT_LIMIT = 2.1  # a torso centre at this horizontal distance (or farther) is out: RING + 0.1
DOWN_Z = 0.29  # a torso centre below this height has fallen off the tatami
# Start (SumoEnv.reset_model): torsos 1.15 m from the centre, opposite each other at a random
# angle, dropped from 1.25 m; noise U(-0.1, 0.1) on every qpos entry, N(0, 0.1^2) on qvel.
START_RADIUS = 1.15
START_Z = 1.25
POS_NOISE = 0.1
VEL_NOISE = 0.1
# Physics (tatami.xml, SumoEnv(frame_skip=5)): RK4 at 0.01 s, 5 substeps per env step.
TIMESTEP = 0.01
FRAME_SKIP = 5
# Rewards (SumoEnv and agents.Agent in sumo.py/agents.py).
WIN_REWARD = 2000.0
DRAW_REWARD = -1000.0
MOVE_TO_OPP_COEF = 0.1
PUSH_OUT_COEF = 10.0
CTRL_COST_COEF = 0.1
CONTACT_FORCE_CLIP = 100.0  # agents.Agent.CFRC_CLIP
MAX_CYCLES = 500  # the registered envs' timestep_limit


@dataclass(frozen=True)
class Leg:
    """One leg: its direction (degrees from +x) and three capsules, each a horizontal length
    and a rise (m): from the torso to the hip, hip to ankle (thigh), ankle to foot (shin)."""

    azimuth: float
    aux: tuple[float, float]
    thigh: tuple[float, float]
    shin: tuple[float, float]


@dataclass(frozen=True)
class Body:
    """A robot: a sphere torso of radius 0.25 m with legs, two hinges per leg (hip about the
    vertical, ankle about the horizontal axis across the leg), a motor of gear 150 on each."""

    name: str
    legs: tuple[Leg, ...]
    radius: float  # of the leg capsules
    hip_range: tuple[float, float]  # degrees
    ankle_range: tuple[float, float]  # degrees; a larger angle lowers the foot
    torso_density: float
    leg_density: float


_S2 = math.sqrt(2.0)
# ant.xml: four diagonal legs, 0.2*sqrt(2) + 0.2*sqrt(2) + 0.4*sqrt(2) m, capsules 0.08 m;
# density 13 (the RoboSumo-Ant-vs-Ant-v0 registration's agent_densities).
ANT = Body(
    "ant",
    tuple(
        Leg(a, (0.2 * _S2, 0.0), (0.2 * _S2, 0.0), (0.4 * _S2, 0.0)) for a in (135, 45, 225, 315)
    ),
    radius=0.08,
    hip_range=(-30.0, 30.0),
    ankle_range=(30.0, 70.0),
    torso_density=13.0,
    leg_density=13.0,
)
# bug.xml: four legs at about +-50 degrees from the x axis (0.28 + 0.28 + 0.505 m) and two
# along it (0.2 + 0.275 + 0.55 m), capsules 0.08 m; density 10.
_DIAG = ((0.2804, 0.0), (0.2804, 0.0), (0.5047, 0.0))
_MID = ((0.2, 0.0), (0.275, 0.0), (0.55, 0.0))
BUG = Body(
    "bug",
    tuple(Leg(a, *(_MID if a in (0, 180) else _DIAG)) for a in (50, 130, 180, 0, 230, 310)),
    radius=0.08,
    hip_range=(-30.0, 30.0),
    ankle_range=(30.0, 70.0),
    torso_density=10.0,
    leg_density=10.0,
)
# spider.xml: eight thin legs (capsules 0.04 m) that rise from the torso and reach down 0.6 m;
# torso density 39 (registration), legs density 5 (set on each leg geom in spider.xml).
SPIDER = Body(
    "spider",
    tuple(
        Leg(a, (0.216, 0.125), (0.195, 0.113), (0.433, -0.6))
        for a in (105, 75, 150, 30, 195, 345, 240, 300)
    ),
    radius=0.04,
    hip_range=(-20.0, 20.0),
    ankle_range=(-45.0, 35.0),
    torso_density=39.0,
    leg_density=5.0,
)
BODIES = {b.name: b for b in (ANT, BUG, SPIDER)}
COLORS = ("0.72 0.25 0.2 1", "0.2 0.42 0.72 1")  # agent_0 red, agent_1 blue


def _v(*xs: float) -> str:
    return " ".join(f"{x:.6g}" for x in xs)


def _robot_xml(body: Body, index: int) -> tuple[str, str]:
    """One robot's MJCF body (names prefixed ``agent_<index>/``) and its motors."""
    p = f"agent_{index}/"
    x0 = START_RADIUS * (1 if index == 0 else -1)
    legs, motors = [], []
    for k, leg in enumerate(body.legs, start=1):
        ux, uy = math.cos(math.radians(leg.azimuth)), math.sin(math.radians(leg.azimuth))
        (ah, az), (th, tz), (sh, sz) = leg.aux, leg.thigh, leg.shin
        a, t, s = _v(ah * ux, ah * uy, az), _v(th * ux, th * uy, tz), _v(sh * ux, sh * uy, sz)
        legs.append(
            f'<body name="{p}leg_{k}"><geom name="{p}aux_{k}" fromto="0 0 0 {a}"/>'
            f'<body name="{p}thigh_{k}" pos="{a}">'
            f'<joint name="{p}hip_{k}" axis="0 0 1" range="{_v(*body.hip_range)}"/>'
            f'<geom name="{p}thigh_{k}" fromto="0 0 0 {t}"/>'
            f'<body name="{p}shin_{k}" pos="{t}">'
            f'<joint name="{p}ankle_{k}" axis="{_v(-uy, ux, 0)}" range="{_v(*body.ankle_range)}"/>'
            f'<geom name="{p}shin_{k}" fromto="0 0 0 {s}"/></body></body></body>'
        )
        motors += [
            f'<motor name="{p}{j}_{k}" joint="{p}{j}_{k}" gear="150" ctrlrange="-1 1"/>'
            for j in ("hip", "ankle")
        ]
    robot = (
        f'<body name="{p}torso" pos="{_v(x0, 0, START_Z)}" childclass="agent_{index}">'
        f'<freejoint name="{p}root"/>'
        f'<geom name="{p}torso" type="sphere" size="0.25" density="{body.torso_density:g}"/>'
        + "".join(legs)
        + "</body>"
    )
    return robot, "".join(motors)


def scene_xml(body: Body, tatami: str = "square") -> str:
    """The MJCF of two ``body`` robots on the raised tatami (``"square"`` or ``"round"``)."""
    robots = [_robot_xml(body, i) for i in range(2)]
    classes = "".join(
        f'<default class="agent_{i}">'
        f'<geom type="capsule" size="{body.radius:g}" density="{body.leg_density:g}"'
        f' rgba="{COLORS[i]}" friction="1 0.5 0.5" margin="0.01" condim="3"/>'
        '<joint type="hinge" armature="1" damping="1"/></default>'
        for i in range(2)
    )
    if tatami == "square":
        mat = f'type="box" size="{_v(TATAMI_HALF_SIZE, TATAMI_HALF_SIZE, TATAMI_TOP / 2)}"'
        c = RING
        corners = [(-c, c, c, c), (c, -c, c, c), (-c, -c, c, -c), (-c, -c, -c, c)]
        border = "".join(
            f'<geom type="capsule" size="0.03" fromto="{_v(x0, y0, TATAMI_TOP, x1, y1, TATAMI_TOP)}"'
            ' rgba="0.18 0.23 0.38 1" contype="0" conaffinity="0"/>'
            for x0, y0, x1, y1 in corners
        )
    else:
        mat = f'type="cylinder" size="{_v(TATAMI_HALF_SIZE, TATAMI_TOP / 2)}"'
        border = (
            f'<geom type="cylinder" size="{_v(RING + 0.03, 0.002)}" pos="0 0 {TATAMI_TOP}"'
            ' rgba="0.18 0.23 0.38 1" contype="0" conaffinity="0"/>'
            f'<geom type="cylinder" size="{_v(RING - 0.03, 0.003)}" pos="0 0 {TATAMI_TOP}"'
            ' rgba="0.65 0.57 0.31 1" contype="0" conaffinity="0"/>'
        )
    return f"""<mujoco model="robosumo_{body.name}">
  <compiler angle="degree" autolimits="true"/>
  <option timestep="{TIMESTEP}" integrator="RK4"/>
  <visual><global offwidth="480" offheight="480"/></visual>
  <default>{classes}</default>
  <asset>
    <texture name="sky" type="skybox" builtin="gradient" rgb1="0.8 0.8 1" rgb2="0 0 0" width="64" height="64"/>
    <texture name="floor" type="2d" builtin="checker" rgb1="0.22 0.22 0.22" rgb2="0.16 0.16 0.16" width="64" height="64"/>
    <material name="floor" texture="floor" texrepeat="20 20" reflectance="0.1"/>
  </asset>
  <worldbody>
    <light directional="true" pos="0 0 4" dir="0 0 -1" diffuse="0.9 0.9 0.9"/>
    <geom name="floor" type="plane" size="20 20 0.1" material="floor" friction="1 0.1 0.1"/>
    <geom name="tatami" {mat} pos="0 0 {TATAMI_TOP / 2}" rgba="0.65 0.57 0.31 1" friction="1 0.1 0.1"/>
    {border}
    {robots[0][0]}
    {robots[1][0]}
  </worldbody>
  <actuator>{robots[0][1]}{robots[1][1]}</actuator>
</mujoco>
"""


class RoboSumoParallelEnv(ParallelEnv):
    """Two robots of one body on a raised tatami, each trying to push the other off; see the
    docs page of ``adv_envs.robosumo_<body>``."""

    metadata = {
        "name": "robosumo_v0",
        "render_modes": [m for m in RENDER_MODES if m is not None],
        "is_parallelizable": True,
        "render_fps": 20,
    }

    def __init__(
        self,
        body: str = "ant",
        max_cycles: int = MAX_CYCLES,
        shaping: bool = True,
        win_reward: float = WIN_REWARD,
        draw_reward: float = DRAW_REWARD,
        tatami: str = "square",
        torso_contact_loses: bool = False,
        render_mode: str | None = None,
    ):
        self.body = BODIES[check_choice(body, "body", tuple(BODIES))]
        self.max_cycles = check_int(max_cycles, "max_cycles", 1)
        self.shaping = check_bool(shaping, "shaping")
        self.win_reward = check_float(win_reward, "win_reward", 0.0)
        self.draw_reward = check_float(draw_reward, "draw_reward")
        self.tatami = check_choice(tatami, "tatami", TATAMI_SHAPES)
        self.torso_contact_loses = check_bool(torso_contact_loses, "torso_contact_loses")
        self.render_mode = check_render_mode(render_mode, RENDER_MODES)
        self.metadata = {**self.metadata, "name": f"robosumo_{self.body.name}_v0"}

        self.model = mujoco.MjModel.from_xml_string(scene_xml(self.body, self.tatami))
        self.data = mujoco.MjData(self.model)
        self.dt = TIMESTEP * FRAME_SKIP
        self.possible_agents = list(AGENTS)
        self.agents: list[str] = []
        m = self.model
        n_joints = 2 * len(self.body.legs)
        # each robot's entries of qpos (free joint 7, then hip_1, ankle_1, hip_2, ...), of qvel
        # (free joint 6, then the same joints) and of ctrl (hip_1, ankle_1, ...)
        self.qpos_slice: dict[str, slice] = {}
        self.qvel_slice: dict[str, slice] = {}
        self.ctrl_slice: dict[str, slice] = {}
        self._bodies: dict[str, np.ndarray] = {}
        self._torso_geom: dict[str, int] = {}
        for i, a in enumerate(AGENTS):
            root = m.joint(f"{a}/root").id
            qadr, vadr = int(m.jnt_qposadr[root]), int(m.jnt_dofadr[root])
            self.qpos_slice[a] = slice(qadr, qadr + 7 + n_joints)
            self.qvel_slice[a] = slice(vadr, vadr + 6 + n_joints)
            self.ctrl_slice[a] = slice(i * n_joints, (i + 1) * n_joints)
            self._bodies[a] = np.array(
                [b for b in range(m.nbody) if m.body(b).name.startswith(f"{a}/")]
            )
            self._torso_geom[a] = m.geom(f"{a}/torso").id
        self._ground = {m.geom("floor").id, m.geom("tatami").id}
        n_obs = (7 + n_joints) + (6 + n_joints) + 6 * len(self._bodies["agent_0"]) + 7 + 6
        self._obs_space = gymnasium.spaces.Box(-np.inf, np.inf, (n_obs,), np.float64)
        self._act_space = gymnasium.spaces.Box(-1.0, 1.0, (n_joints,), np.float32)
        self.state_space = gymnasium.spaces.Box(-np.inf, np.inf, (m.nq + m.nv,), np.float64)
        self.np_random, _ = seeding.np_random(None)
        self.t = 0
        self._renderer: Any = None

    @functools.cache  # noqa: B019 - spaces must be the same object per agent
    def observation_space(self, agent: str) -> gymnasium.spaces.Space:
        return self._obs_space

    @functools.cache  # noqa: B019
    def action_space(self, agent: str) -> gymnasium.spaces.Space:
        return self._act_space

    # -- reading the simulation ---------------------------------------------------------------

    def torso_position(self, agent: str) -> np.ndarray:
        """The (x, y, z) of ``agent``'s torso centre (its free joint's position), a copy."""
        return self.data.qpos[self.qpos_slice[agent]][:3].copy()

    def _contact_forces(self, agent: str, bodies: np.ndarray) -> np.ndarray:
        return np.abs(np.clip(self.data.cfrc_ext[bodies], -CONTACT_FORCE_CLIP, CONTACT_FORCE_CLIP))

    def _obs(self, agent: str) -> np.ndarray:
        opponent = AGENTS[1 - AGENTS.index(agent)]
        return np.concatenate(
            [
                self.data.qpos[self.qpos_slice[agent]],
                self.data.qvel[self.qvel_slice[agent]],
                self._contact_forces(agent, self._bodies[agent]).ravel(),
                self.data.qpos[self.qpos_slice[opponent]][:7],
                self._contact_forces(opponent, self._bodies[opponent][:1]).ravel(),
            ]
        )

    def _observations(self) -> dict[str, np.ndarray]:
        # cfrc_ext is computed by mj_rnePostConstraint, which mj_step runs only for some sensors
        mujoco.mj_rnePostConstraint(self.model, self.data)
        return {a: self._obs(a) for a in self.possible_agents}

    def state(self) -> np.ndarray:
        return np.concatenate([self.data.qpos, self.data.qvel])

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray) -> dict[str, np.ndarray]:
        """Set the simulator's positions and velocities (for scripted situations); return obs."""
        self.data.qpos[:] = np.asarray(qpos, np.float64)
        self.data.qvel[:] = np.asarray(qvel, np.float64)
        mujoco.mj_forward(self.model, self.data)
        return self._observations()

    def _torso_touches_ground(self, agent: str) -> bool:
        torso = self._torso_geom[agent]
        for c in self.data.contact[: self.data.ncon]:
            pair = {int(c.geom1), int(c.geom2)}
            if torso in pair and pair & self._ground and c.dist <= 0:
                return True
        return False

    def rule_flags(self, agent: str) -> dict[str, bool]:
        """Which losing conditions hold for ``agent`` now (``lost`` is their disjunction)."""
        x, y, z = self.torso_position(agent)
        if self.tatami == "square":
            out = max(abs(x), abs(y)) >= OUT_LIMIT
        else:
            out = math.hypot(x, y) >= OUT_LIMIT
        down = bool(z < DOWN_Z)
        contact = self.torso_contact_loses and self._torso_touches_ground(agent)
        finite = bool(
            np.isfinite(self.data.qpos[self.qpos_slice[agent]]).all()
            and np.isfinite(self.data.qvel[self.qvel_slice[agent]]).all()
        )
        flags = {
            "out_of_ring": bool(out),
            "torso_down": down,
            "torso_contact": bool(contact),
            "unstable": not finite,
        }
        return {**flags, "lost": any(flags.values())}

    # -- the game ---------------------------------------------------------------------------------

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self.np_random, _ = seeding.np_random(seed)
        mujoco.mj_resetData(self.model, self.data)
        qpos = self.model.qpos0.copy()
        phi = self.np_random.uniform(0.0, 2.0 * np.pi)
        for i, a in enumerate(AGENTS):
            start = self.qpos_slice[a].start
            angle = phi + i * np.pi
            qpos[start : start + 3] = (
                START_RADIUS * np.cos(angle),
                START_RADIUS * np.sin(angle),
                START_Z,
            )
        qpos += self.np_random.uniform(-POS_NOISE, POS_NOISE, self.model.nq)
        qvel = VEL_NOISE * self.np_random.standard_normal(self.model.nv)
        for a in AGENTS:  # unit quaternions (the original left MuJoCo to normalize them)
            quat = slice(self.qpos_slice[a].start + 3, self.qpos_slice[a].start + 7)
            qpos[quat] /= np.linalg.norm(qpos[quat])
        obs = self.set_state(qpos, qvel)
        self.agents = list(self.possible_agents)
        self.t = 0
        return obs, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise KeyError(f"no action for {missing}; every agent in env.agents must act")
        executed = {
            a: np.clip(np.asarray(actions[a], np.float64).ravel(), -1.0, 1.0) for a in AGENTS
        }
        for a in AGENTS:
            self.data.ctrl[self.ctrl_slice[a]] = executed[a]
        before = {a: self.torso_position(a)[:2] for a in AGENTS}
        mujoco.mj_step(self.model, self.data, nstep=FRAME_SKIP)
        obs = self._observations()
        after = {a: self.torso_position(a)[:2] for a in AGENTS}
        self.t += 1

        flags = {a: self.rule_flags(a) for a in AGENTS}
        lost = {a: flags[a]["lost"] for a in AGENTS}
        decided = any(lost.values())
        timeout = self.t >= self.max_cycles and not decided
        if lost["agent_0"] != lost["agent_1"]:
            loser = "agent_0" if lost["agent_0"] else "agent_1"
            winner: str | None = AGENTS[1 - AGENTS.index(loser)]
        else:
            winner = loser = None
        draw = decided and winner is None or timeout

        rewards, infos = {}, {}
        for i, a in enumerate(AGENTS):
            opp = AGENTS[1 - i]
            # the original pays +win for the opponent's loss and -win for one's own, so a
            # double loss pays 0; a timeout pays the draw reward
            outcome = self.win_reward * (lost[opp] - lost[a]) + (
                self.draw_reward if timeout else 0.0
            )
            velocity = (after[a] - before[a]) / self.dt
            to_opp = after[opp] - before[a]
            norm = float(np.linalg.norm(to_opp))
            toward = float(velocity @ to_opp) / norm if norm > 0 else 0.0
            terms = {
                "move_to_opp_reward": MOVE_TO_OPP_COEF * max(toward, 0.0),
                "push_opp_reward": -PUSH_OUT_COEF * math.exp(-float(np.linalg.norm(after[opp]))),
                "ctrl_reward": -CTRL_COST_COEF * float(np.square(executed[a]).sum()),
            }
            shaping = sum(terms.values()) if self.shaping else 0.0
            rewards[a] = float(outcome + shaping)
            infos[a] = {
                "outcome": "win"
                if winner == a
                else "loss"
                if loser == a
                else "draw"
                if draw
                else None,
                "winner": winner,
                "loser": loser,
                "draw": bool(draw),
                **flags[a],
                "outcome_reward": float(outcome),
                **terms,
                "shaping_reward": float(shaping),
            }
        terminations = dict.fromkeys(AGENTS, decided)
        truncations = dict.fromkeys(AGENTS, timeout)
        if decided or timeout:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gymnasium.logger.warn("render() called with render_mode=None; nothing to draw")
            return None
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, 480, 480)
            self._camera = mujoco.MjvCamera()
            self._camera.lookat[:] = (0.0, 0.0, TATAMI_TOP)
            self._camera.distance, self._camera.elevation, self._camera.azimuth = 8.0, -35.0, 90.0
        self._renderer.update_scene(self.data, self._camera)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def entry_points(body: str):
    """``(parallel_env, raw_env, env)`` of the RoboSumo env with ``body``."""

    def parallel_env(**kwargs: Any) -> RoboSumoParallelEnv:
        """The parallel env; keyword arguments as in the module docs."""
        if "body" in kwargs:
            raise InvalidArgumentError(
                f"body is fixed by the env ID (adv/robosumo_{body}-v0); got body={kwargs['body']!r}"
            )
        return RoboSumoParallelEnv(body=body, **kwargs)

    def raw_env(**kwargs: Any):
        """The AEC env (PettingZoo's ``parallel_to_aec``)."""
        return parallel_to_aec(parallel_env(**kwargs))

    def env(**kwargs: Any):
        """The AEC env with PettingZoo's call-order checks."""
        return wrappers.OrderEnforcingWrapper(raw_env(**kwargs))

    return parallel_env, raw_env, env


_PAGE = Template("""RoboSumo $Title vs $Title: two $legs-legged robots on a raised tatami, each pushing to get the other off.

RoboSumo of Al-Shedivat et al. (ICLR 2018), "Continuous Adaptation via Meta-Learning in
Nonstationary and Competitive Environments", the competitive MuJoCo testbed of Liu et al.
(ICLR 2024), "Rethinking Adversarial Policies", Sec. 7, with the $name body ($legs legs; the
other bodies: $others). It is built on the `mujoco` Python bindings from an MJCF scene
written for this package (`adv_envs._robosumo.scene_xml`); the sizes, masses, joint ranges,
motors, physics settings, start, rules and reward coefficients are those of the original code
(github.com/openai/robosumo, `robosumo/envs/`: the arena from `tatami.xml` and `sumo.py`, the
robot from `$name.xml` and the `RoboSumo-$Title-vs-$Title-v0` registration, the observation
and control cost from `agents.py`, the rules and the other rewards from `SumoEnv` in `sumo.py`).

| | |
|---|---|
| Agents | `agent_0` (red) and `agent_1` (blue), two $name robots |
| Body | a sphere torso of radius 0.25 m and $legs legs of three capsules each (radius $radius m), with a hip (about the vertical, range $hip degrees) and an ankle (about the horizontal axis across the leg, range $ankle degrees, a larger angle lowers the foot), both with armature 1 and damping 1; density $density; $mass kg per robot |
| Arena | the tatami, a 4.6 m square block with its surface 0.5 m above the floor, a border painted at 2 m from the centre (`tatami="round"`: a disc of radius 2.3 m, the border a circle of radius 2 m). RK4 integration at 0.01 s, 5 physics steps per env step (`env.dt = 0.05` s) |
| Start | torsos 1.15 m from the centre on opposite sides, at a uniformly random angle, 1.25 m high (the robots drop onto the tatami); noise U(-0.1, 0.1) on every entry of `qpos` (quaternions then normalized) and N(0, 0.1²) on every entry of `qvel` |
| Actions | `Box(-1, 1, ($nu,), float32)`: torques of the agent's own $nu motors (gear 150), in the order hip_1, ankle_1, hip_2, ..., ankle_$legs; values outside [-1, 1] are clipped |
| Observations | `Box(-inf, inf, ($nobs,), float64)`, the original's: `[0:3]` own torso position (x, y, z; world frame, tatami centre at x = y = 0, its surface at z = 0.5), `[3:7]` own torso orientation (unit quaternion w, x, y, z), `[7:$o1]` own joint angles (rad; hip_1, ankle_1, ...), `[$o1:$o2]` own torso velocity (linear in the world frame, angular in the torso frame), `[$o2:$o3]` own joint velocities, `[$o3:$o4]` external contact forces on the own $nbodies bodies (torso, then each leg's three segments; MuJoCo's `cfrc_ext`, torque then force, 6 each) clipped to [-100, 100] and taken in absolute value, `[$o4:$o5]` the opponent's torso position (3) and orientation (4), `[$o5:$nobs]` the opponent torso's contact forces (6, clipped and absolute as above) |
| State | `Box(-inf, inf, ($nstate,), float64)`: MuJoCo's `qpos` (agent_0's $nq entries, then agent_1's) and `qvel` ($nv each) |
| Rules | after every step, a robot has lost if its torso centre is out of the ring, `max(abs(x), abs(y)) >= 2.1` (0.1 m beyond the border; `tatami="round"`: `hypot(x, y) >= 2.1`), or below the tatami's surface, `z < 0.29` (fallen to the ground), or, with `torso_contact_loses=True`, its torso touches the tatami or the floor (or its state is not finite). One robot lost: the other wins; both at once: a draw |
| Rewards | agent `i`, opponent `j`, `p` and `p'` the torsos' (x, y) before and after the step: outcome `2000 * (lost_j - lost_i)` (win +2000, loss -2000, double loss 0; `win_reward`), plus `-1000` to both at a timeout (`draw_reward`). Shaping (on by default, `shaping=False` turns it off): moving towards the opponent `0.1 * max(0, v_i · (p'_j - p_i) / norm(p'_j - p_i))` with `v_i = (p'_i - p_i) / dt`, pushing the opponent from the centre `-10 * exp(-norm(p'_j))`, control cost `-0.1 * sum(a_i²)` (`a_i` the clipped action) |
| Episode | terminates for both agents as soon as a robot has lost; truncated for both after `max_cycles` steps (default 500, the original's `timestep_limit`) without a decision: a draw |
| Kind | zero-sum: one robot's win is the other's loss. The rewards are exactly zero-sum with `shaping=False, draw_reward=0` |

## Arguments

| argument | default | allowed values |
|---|---|---|
| `max_cycles` | `500` | int >= 1: episode length in steps |
| `shaping` | `True` | bool: add the shaping terms to the rewards (False: win, loss and draw rewards only) |
| `win_reward` | `2000.0` | finite float >= 0: the winner's reward; the loser gets its negative |
| `draw_reward` | `-1000.0` | finite float: both agents' reward at a timeout |
| `tatami` | `"square"` | `"square"` (the original's) or `"round"` |
| `torso_contact_loses` | `False` | bool: a robot whose torso touches the tatami or the floor also loses (the sumo rule; not in the original) |
| `render_mode` | `None` | `None` or `"rgb_array"` (480x480 frames; headless with `MUJOCO_GL=egl`) |

Any other value raises `adv_wrappers.errors.InvalidArgumentError` naming the argument.
`reset(seed=...)` seeds the start (angle and noise); `reset(options=...)` is accepted for API
compatibility, no options are defined. `infos[agent]` holds, after every step: `outcome`
(`"win"`, `"loss"`, `"draw"`, or `None` while undecided), `winner` and `loser` (agent names or
`None`), `draw`, the agent's own rule flags `out_of_ring`, `torso_down`, `torso_contact`,
`unstable` and `lost`, and the reward terms `outcome_reward`, `move_to_opp_reward`,
`push_opp_reward`, `ctrl_reward` and `shaping_reward` (the sum of the three, 0 with
`shaping=False`; the terms are reported either way). The MuJoCo `MjModel` and `MjData` are
`env.model` and `env.data` (read them; write through `env.set_state(qpos, qvel)` to script a
situation); `env.torso_position(agent)` is a torso's (x, y, z), `env.qpos_slice[agent]`,
`env.qvel_slice[agent]` and `env.ctrl_slice[agent]` a robot's entries.

## Example

```python
>>> import numpy as np
>>> from adv_envs import robosumo_$name
>>> env = robosumo_$name.parallel_env()
>>> obs, _ = env.reset(seed=0)
>>> obs["agent_0"].shape, env.action_space("agent_0")
(($nobs,), Box(-1.0, 1.0, ($nu,), float32))
>>> still = {a: np.zeros($nu, np.float32) for a in env.agents}
>>> _, rewards, terminations, _, infos = env.step(still)
>>> push = -10 * np.exp(-np.linalg.norm(env.torso_position("agent_1")[:2]))
>>> bool(np.isclose(infos["agent_0"]["push_opp_reward"], push)), infos["agent_0"]["outcome"]
(True, None)
>>> qpos = env.data.qpos.copy()
>>> qpos[env.qpos_slice["agent_1"].start] = 2.2  # agent_1's torso beyond x = 2.1
>>> _ = env.set_state(qpos, env.data.qvel)
>>> _, rewards, terminations, _, infos = env.step(still)
>>> infos["agent_0"]["winner"], infos["agent_1"]["out_of_ring"], terminations
('agent_0', True, {'agent_0': True, 'agent_1': True})
>>> infos["agent_0"]["outcome_reward"], infos["agent_1"]["outcome_reward"]
(2000.0, -2000.0)

```

## Differences from the original

- The scene is written anew for MuJoCo 3 (the original needs mujoco-py and MuJoCo 1.5), with
  the original's numbers. MuJoCo 3's contact solver differs from 1.5's, so trajectories are
  not the original's to the digit.
- Each ankle's axis is exactly across its leg and oriented so that a larger angle lowers the
  foot; the original flips the sign on half of the legs (and the bug's diagonal ankles are
  5 degrees off the perpendicular). Joint angles and torques of those legs have the opposite
  sign to the original's: its trained policies do not transfer.
- The painted border is a marking; in the original it is four collidable cylinders of
  radius 3 cm lying on the tatami. The floor is at z = 0 (the original's at -0.025).
- Both robots have the same body; the original also pits different bodies against each other
  (e.g. `RoboSumo-Ant-vs-Spider-v0`).
- The original ends an episode when its step count exceeds `timestep_limit`, after 501
  steps, and adds the draw penalty at that step even if a robot lost then; here the episode
  has `max_cycles` steps and a loss on the last step is a decision, not a draw.
- The control cost squares the clipped action, the torque that is applied; the original
  squares the policy's raw output.
- The start noise on the torso quaternions is normalized away here (the original leaves it to
  MuJoCo); a robot whose state is no longer finite loses (`unstable`).
- `tatami="round"` and `torso_contact_loses=True` are options the original does not have.

## Version History

- v0: initial release.
""")


def docs_page(name: str) -> str:
    """The docs page (module docstring) of ``adv_envs.robosumo_<name>``."""
    body = BODIES[name]
    legs = len(body.legs)
    nj = 2 * legs
    nbodies = 1 + 3 * legs
    o1 = 7 + nj
    o2 = o1 + 6
    o3 = o2 + nj
    o4 = o3 + 6 * nbodies
    model = mujoco.MjModel.from_xml_string(scene_xml(body))
    mass = model.body_subtreemass[model.body("agent_0/torso").id]
    if body.torso_density == body.leg_density:
        density = f"{body.torso_density:g}"
    else:
        density = f"{body.torso_density:g} (torso), {body.leg_density:g} (legs)"
    return _PAGE.substitute(
        name=name,
        Title=name.capitalize(),
        others=", ".join(f"`adv/robosumo_{b}-v0`" for b in BODIES if b != name),
        legs=legs,
        radius=f"{body.radius:g}",
        hip=f"{body.hip_range[0]:g} to {body.hip_range[1]:g}",
        ankle=f"{body.ankle_range[0]:g} to {body.ankle_range[1]:g}",
        density=density,
        mass=f"{mass:.2f}",
        nu=nj,
        nobs=o4 + 13,
        o1=o1,
        o2=o2,
        o3=o3,
        o4=o4,
        o5=o4 + 7,
        nbodies=nbodies,
        nstate=model.nq + model.nv,
        nq=7 + nj,
        nv=6 + nj,
    )
