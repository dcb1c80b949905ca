"""``adv/robosumo_{ant,bug,spider}-v0``: RoboSumo (Al-Shedivat et al. (ICLR 2018)) on MuJoCo 3.

Scripted physics decides the rules: a robot sent sliding over the edge loses (each body), a
robot lying on its back loses only under ``torso_contact_loses``; the rule thresholds are
pinned on constructed states; every reward term is recomputed by hand from the torso
positions before and after each step; the observation layout, the agent -> motor split,
seeding, rendering and argument errors are checked. (The generated API, seed, state and
threat-wrapper tests of ``test_envs.py`` cover these envs through ``adv_envs.ENVS``.)
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import math  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from adv_envs import robosumo_ant, robosumo_bug, robosumo_spider  # noqa: E402
from adv_wrappers.errors import InvalidArgumentError  # noqa: E402

MODULES = {"ant": robosumo_ant, "bug": robosumo_bug, "spider": robosumo_spider}
LEGS = {"ant": 4, "bug": 6, "spider": 8}
AGENTS = ["agent_0", "agent_1"]
DT = 0.05


def still(env) -> dict[str, np.ndarray]:
    return {a: np.zeros(env.action_space(a).shape, np.float32) for a in env.possible_agents}


def settled(body: str, steps: int = 12, **kwargs):
    """An env after ``steps`` motionless steps: both robots have landed on the tatami."""
    env = MODULES[body].parallel_env(**kwargs)
    env.reset(seed=0)
    for _ in range(steps):
        env.step(still(env))
    assert env.agents == AGENTS
    return env


def place(env, agent: str, xy, qvel_lin=(0.0, 0.0, 0.0), z=None, quat=None) -> None:
    """Move ``agent``'s torso to ``xy`` (and ``z``/``quat``), its root velocity to ``qvel_lin``."""
    qpos, qvel = env.data.qpos.copy(), env.data.qvel.copy()
    q, v = env.qpos_slice[agent].start, env.qvel_slice[agent].start
    qpos[q : q + 2] = xy
    if z is not None:
        qpos[q + 2] = z
    if quat is not None:
        qpos[q + 3 : q + 7] = quat
    qvel[env.qvel_slice[agent]] = 0.0
    qvel[v : v + 3] = qvel_lin
    env.set_state(qpos, qvel)


@pytest.mark.parametrize("body", list(MODULES))
@pytest.mark.parametrize("loser", AGENTS)
def test_robot_sent_over_the_edge_loses(body, loser):
    env = settled(body)
    winner = AGENTS[1 - AGENTS.index(loser)]
    sign = 1.0 if loser == "agent_1" else -1.0
    place(env, winner, (-sign * 0.8, 0.0))
    place(env, loser, (sign * 1.5, 0.0), qvel_lin=(sign * 5.0, 0.0, 0.0))
    steps, infos, terms, truncs, rewards = 0, {}, {}, {}, {}
    while env.agents and steps < 40:
        _, rewards, terms, truncs, infos = env.step(still(env))
        steps += 1
    assert steps >= 2  # the robot was inside the ring and got out by moving
    assert infos[winner]["winner"] == winner and infos[loser]["loser"] == loser
    assert infos[winner]["outcome"] == "win" and infos[loser]["outcome"] == "loss"
    assert infos[loser]["out_of_ring"] and not infos[loser]["torso_down"]
    assert abs(env.torso_position(loser)[0]) >= 2.1 > abs(env.torso_position(winner)[0])
    assert not infos[winner]["lost"] and not infos[winner]["draw"]
    assert terms == {"agent_0": True, "agent_1": True}
    assert truncs == {"agent_0": False, "agent_1": False} and env.agents == []
    assert infos[winner]["outcome_reward"] == 2000.0 and infos[loser]["outcome_reward"] == -2000.0
    for a in AGENTS:
        assert rewards[a] == pytest.approx(
            infos[a]["outcome_reward"] + infos[a]["shaping_reward"], abs=1e-12
        )


@pytest.mark.parametrize("body", ["ant", "bug"])
def test_torso_touching_the_ground_loses_under_the_sumo_rule(body):
    """A robot lying on its back on the tatami: its torso touches it. It loses with
    ``torso_contact_loses=True`` and not under the original's rules (a spider on its back
    rests on its raised upper legs, so the ant and the bug show the rule)."""
    outcomes = {}
    for rule in (True, False):
        env = settled(body, torso_contact_loses=rule)
        place(env, "agent_0", (-1.0, 0.0))
        place(env, "agent_1", (1.0, 0.0), z=0.9, quat=(0.0, 1.0, 0.0, 0.0))  # upside down
        steps, infos = 0, {}
        while env.agents and steps < 30:
            _, _, _, _, infos = env.step(still(env))
            steps += 1
        outcomes[rule] = (steps, infos)
        assert env.torso_position("agent_1")[2] > 0.5  # on the tatami, not fallen off
    steps, infos = outcomes[True]
    assert 1 < steps < 30 and infos["agent_1"]["torso_contact"] and infos["agent_1"]["lost"]
    assert infos["agent_0"]["winner"] == "agent_0" and not infos["agent_1"]["out_of_ring"]
    steps, infos = outcomes[False]
    assert steps == 30 and infos["agent_1"]["outcome"] is None
    assert not infos["agent_1"]["torso_contact"]  # the flag is only raised under the rule


def test_rule_thresholds():
    env = settled("ant")
    z = env.torso_position("agent_1")[2]
    for xy, out in [
        ((2.09, 0.0), False),
        ((2.1, 0.0), True),
        ((0.0, -2.1), True),
        ((1.6, 1.6), False),
    ]:
        place(env, "agent_1", xy)
        assert env.rule_flags("agent_1")["out_of_ring"] is out, xy
    place(env, "agent_1", (0.5, 0.0), z=0.28)  # a torso below the tatami's surface is down
    assert env.rule_flags("agent_1") == {
        "out_of_ring": False,
        "torso_down": True,
        "torso_contact": False,
        "unstable": False,
        "lost": True,
    }
    place(env, "agent_1", (0.5, 0.0), z=0.3)
    assert env.rule_flags("agent_1")["lost"] is False
    round_env = settled("ant", tatami="round")
    place(round_env, "agent_1", (1.6, 1.6), z=z)  # 2.26 m from the centre
    assert round_env.rule_flags("agent_1")["out_of_ring"] is True
    place(round_env, "agent_1", (1.48, 1.48), z=z)  # 2.09 m
    assert round_env.rule_flags("agent_1")["out_of_ring"] is False


def test_both_out_at_once_is_a_draw():
    env = settled("bug")
    place(env, "agent_0", (-2.2, 0.0))
    place(env, "agent_1", (2.2, 0.0))
    _, rewards, terms, truncs, infos = env.step(still(env))
    assert all(terms.values()) and not any(truncs.values())
    for a in AGENTS:
        assert infos[a]["draw"] and infos[a]["outcome"] == "draw" and infos[a]["winner"] is None
        assert infos[a]["outcome_reward"] == 0.0  # +2000 - 2000, as in the original


@pytest.mark.parametrize("shaping", [True, False])
def test_timeout_is_a_draw(shaping):
    env = robosumo_spider.parallel_env(max_cycles=3, shaping=shaping, draw_reward=-7.0)
    env.reset(seed=1)
    steps = 0
    while env.agents:
        _, rewards, terms, truncs, infos = env.step(still(env))
        steps += 1
        assert not any(terms.values()) and all(truncs.values()) == (steps == 3)
    assert steps == 3
    for a in AGENTS:
        assert infos[a]["outcome"] == "draw" and infos[a]["outcome_reward"] == -7.0
        expected = -7.0 + (infos[a]["shaping_reward"] if shaping else 0.0)
        assert rewards[a] == expected
        assert (infos[a]["shaping_reward"] == 0.0) is not shaping


def test_reward_terms_by_hand():
    env = robosumo_ant.parallel_env()
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    moved_towards, steps = 0, 0
    for t in range(12):
        # some entries out of [-1, 1]: the control cost is of the clipped action
        actions = {a: rng.uniform(-1.5, 1.5, 8).astype(np.float32) for a in AGENTS}
        before = {a: env.torso_position(a)[:2] for a in AGENTS}
        _, rewards, terms, _, infos = env.step(actions)
        after = {a: env.torso_position(a)[:2] for a in AGENTS}
        assert not any(terms.values()), t
        for i, a in enumerate(AGENTS):
            opp = AGENTS[1 - i]
            v = (after[a] - before[a]) / DT
            d = after[opp] - before[a]
            move = 0.1 * max(0.0, float(v @ d) / math.hypot(*d))
            push = -10.0 * math.exp(-math.hypot(*after[opp]))
            ctrl = -0.1 * float(np.sum(np.clip(actions[a].astype(np.float64), -1, 1) ** 2))
            assert infos[a]["move_to_opp_reward"] == pytest.approx(move, rel=1e-9, abs=1e-12)
            assert infos[a]["push_opp_reward"] == pytest.approx(push, rel=1e-12)
            assert infos[a]["ctrl_reward"] == pytest.approx(ctrl, rel=1e-12)
            assert infos[a]["outcome_reward"] == 0.0
            assert rewards[a] == pytest.approx(move + push + ctrl, rel=1e-9, abs=1e-12)
            moved_towards += move > 0
        steps += 1
    assert steps == 12 and moved_towards >= 3  # the move term was exercised, not only 0


def test_sparse_rewards_are_zero_sum():
    env = settled("ant", shaping=False, draw_reward=0.0)
    _, rewards, *_ = env.step({a: np.ones(8, np.float32) for a in AGENTS})
    assert rewards == {"agent_0": 0.0, "agent_1": 0.0}
    place(env, "agent_0", (0.0, 2.3))
    _, rewards, terms, _, infos = env.step(still(env))
    assert rewards == {"agent_0": -2000.0, "agent_1": 2000.0} and all(terms.values())
    assert infos["agent_1"]["shaping_reward"] == 0.0 and infos["agent_1"]["push_opp_reward"] < 0


@pytest.mark.parametrize("body", list(MODULES))
def test_spaces_and_observation_layout(body):
    env = MODULES[body].parallel_env()
    legs = LEGS[body]
    nj, nbodies = 2 * legs, 1 + 3 * legs
    n_obs = (7 + nj) + (6 + nj) + 6 * nbodies + 7 + 6
    assert env.possible_agents == AGENTS
    for a in AGENTS:
        assert env.action_space(a) is env.action_space(a)
        assert env.observation_space(a) is env.observation_space(a)
        assert env.observation_space(a).shape == (n_obs,)
        space = env.action_space(a)
        assert space.shape == (nj,) and (space.low == -1).all() and (space.high == 1).all()
    env.reset(seed=0)
    for _ in range(8):
        obs, *_ = env.step(still(env))
    for i, a in enumerate(AGENTS):
        opp = AGENTS[1 - i]
        o = obs[a]
        assert np.array_equal(o[: 7 + nj], env.data.qpos[env.qpos_slice[a]])
        assert np.array_equal(o[7 + nj : 13 + 2 * nj], env.data.qvel[env.qvel_slice[a]])
        forces = o[13 + 2 * nj : 13 + 2 * nj + 6 * nbodies]
        assert (forces >= 0).all() and (forces <= 100).all() and forces.any()  # it stands
        assert np.array_equal(o[-13:-6], env.data.qpos[env.qpos_slice[opp]][:7])
        assert np.array_equal(
            o[-6:], np.abs(np.clip(env.data.cfrc_ext[env._bodies[opp][0]], -100, 100))
        )
    state = env.state()
    assert env.state_space.contains(state) and state.shape == (2 * (13 + 2 * nj),)
    assert np.array_equal(state, np.concatenate([env.data.qpos, env.data.qvel]))


def test_each_agent_drives_its_own_motors():
    env = robosumo_bug.parallel_env()
    env.reset(seed=0)
    model = env.model
    for i, a in enumerate(AGENTS):
        actions = still(env)
        actions[a] = np.linspace(-0.9, 0.9, 12, dtype=np.float32)
        env.step(actions)
        ctrl = np.zeros(24)
        ctrl[12 * i : 12 * (i + 1)] = np.linspace(-0.9, 0.9, 12, dtype=np.float32)
        assert np.array_equal(env.data.ctrl, ctrl), a
    names = [model.joint(model.actuator_trnid[k, 0]).name for k in range(model.nu)]
    expected = [
        f"agent_{i}/{j}_{k}" for i in range(2) for k in range(1, 7) for j in ("hip", "ankle")
    ]
    assert names == expected


def test_start_and_seeding():
    env = robosumo_ant.parallel_env()
    angles = []
    for seed in (0, 1, 0):
        obs, _ = env.reset(seed=seed)
        p0, p1 = env.torso_position("agent_0"), env.torso_position("agent_1")
        assert abs(np.linalg.norm(p0[:2]) - 1.15) < 0.15 and abs(p0[2] - 1.25) <= 0.1
        assert np.linalg.norm(p0[:2] + p1[:2]) < 0.3  # on opposite sides of the centre
        angles.append(math.atan2(p0[1], p0[0]))
        assert all(
            np.isclose(np.linalg.norm(env.data.qpos[s][3:7]), 1) for s in env.qpos_slice.values()
        )
    assert angles[0] == angles[2] and angles[0] != angles[1]
    other = robosumo_ant.parallel_env()
    a_obs, _ = env.reset(seed=5)
    b_obs, _ = other.reset(seed=5)
    compared = 0
    for t in range(5):
        actions = {a: np.full(8, math.sin(t + i), np.float32) for i, a in enumerate(AGENTS)}
        assert all(np.array_equal(a_obs[x], b_obs[x]) for x in AGENTS)
        a_obs, ra, *_ = env.step(actions)
        b_obs, rb, *_ = other.step(actions)
        assert ra == rb
        compared += 1
    assert compared == 5


def test_rgb_array_frame():
    env = robosumo_spider.parallel_env(render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (480, 480, 3) and frame.dtype == np.uint8 and frame.std() > 0
    place(env, "agent_1", (-1.5, 1.5))
    assert not np.array_equal(env.render(), frame)  # the frame shows the robots
    env.close()
    assert robosumo_spider.parallel_env().render() is None


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"max_cycles": 0}, "max_cycles"),
        ({"max_cycles": 2.5}, "max_cycles"),
        ({"shaping": 1}, "shaping"),
        ({"win_reward": -1.0}, "win_reward"),
        ({"win_reward": float("inf")}, "win_reward"),
        ({"draw_reward": "0"}, "draw_reward"),
        ({"tatami": "hexagon"}, "tatami"),
        ({"torso_contact_loses": "yes"}, "torso_contact_loses"),
        ({"render_mode": "human"}, "render_mode"),
        ({"body": "spider"}, "body"),
    ],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(InvalidArgumentError, match=name):
        robosumo_ant.parallel_env(**kwargs)
