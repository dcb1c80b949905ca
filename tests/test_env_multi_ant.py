"""``adv/multi_ant-v0``: the MaMuJoCo Ant 4x2 of Nika et al. (TMLR 2024), with its shared reward.

The reward is pinned against the torso's x read from the MuJoCo data before and after every
step of a scripted rollout, a constructed unhealthy step checks termination and the missing
healthy bonus, and the agent -> actuator split, spaces, episode length, seeding, rendering and
argument errors are checked. Few steps: MuJoCo is the slow part.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from adv_envs import multi_ant  # noqa: E402
from adv_wrappers.errors import InvalidArgumentError  # noqa: E402

AGENTS = ["agent_0", "agent_1", "agent_2", "agent_3"]
DT = 0.05


def scripted(t: int) -> dict[str, np.ndarray]:
    """A fixed gait-like action sequence (not random: the test must not depend on RNGs)."""
    return {
        a: np.array([np.sin(0.6 * t + i), np.cos(0.9 * t - i)], np.float32)
        for i, a in enumerate(AGENTS)
    }


def test_reward_is_forward_velocity_plus_healthy_bonus():
    env = multi_ant.parallel_env()
    env.reset(seed=0)
    x_start = float(env.data.qpos[0])
    steps, total = 0, 0.0
    for t in range(20):
        x_before = float(env.data.qpos[0])
        _, rewards, terms, truncs, infos = env.step(scripted(t))
        x_after = float(env.data.qpos[0])
        z = float(env.data.qpos[2])
        assert 0.2 <= z <= 1.0  # healthy throughout
        expected = (x_after - x_before) / DT + 0.1
        assert set(rewards) == set(AGENTS) and len(set(rewards.values())) == 1  # shared
        assert abs(rewards["agent_0"] - expected) <= 1e-9, (t, rewards["agent_0"], expected)
        assert infos["agent_2"]["x_before"] == x_before and infos["agent_2"]["x_after"] == x_after
        assert infos["agent_2"]["healthy"] is True
        assert not any(terms.values()) and not any(truncs.values())
        total += rewards["agent_0"]
        steps += 1
    assert steps == 20
    displacement = float(env.data.qpos[0]) - x_start
    assert abs(displacement) > 1e-3  # the scripted gait does move the torso
    assert abs(total - (displacement / DT + 20 * 0.1)) <= 1e-9  # telescoping sum


def test_unhealthy_step_terminates_without_bonus():
    env = multi_ant.parallel_env()
    env.reset(seed=0)
    qpos, qvel = env.data.qpos.copy(), env.data.qvel.copy()
    qpos[2] = 1.5  # torso lifted above the healthy range [0.2, 1.0]
    env.set_state(qpos, qvel)
    x_before = float(env.data.qpos[0])
    _, rewards, terms, truncs, infos = env.step({a: np.zeros(2, np.float32) for a in AGENTS})
    assert env.data.qpos[2] > 1.0
    expected = (float(env.data.qpos[0]) - x_before) / DT  # no +0.1
    assert all(abs(r - expected) <= 1e-9 for r in rewards.values())
    assert terms == dict.fromkeys(AGENTS, True) and truncs == dict.fromkeys(AGENTS, False)
    assert infos["agent_0"]["healthy"] is False and env.agents == []


def test_fallen_ant_is_unhealthy():
    env = multi_ant.parallel_env()
    env.reset(seed=0)
    assert env.is_healthy()
    qpos = env.data.qpos.copy()
    for z, healthy in [(0.19, False), (0.2, True), (1.0, True), (1.01, False)]:
        qpos[2] = z
        env.set_state(qpos, env.data.qvel.copy())
        assert env.is_healthy() is healthy, z
    qpos[2], qvel = 0.5, env.data.qvel.copy()
    qvel[0] = np.nan
    env.set_state(qpos, qvel)
    assert env.is_healthy() is False


def test_each_agent_drives_one_leg():
    env = multi_ant.parallel_env()
    env.reset(seed=0)
    # MuJoCo Ant actuators: 0-1 drive hip_4/ankle_4 (back right), 2-3 leg 1 (front left),
    # 4-5 leg 2 (front right), 6-7 leg 3 (back left)
    expected = {"agent_0": (2, 3), "agent_1": (4, 5), "agent_2": (6, 7), "agent_3": (0, 1)}
    for agent, ids in expected.items():
        actions = {a: np.zeros(2, np.float32) for a in AGENTS}
        actions[agent] = np.array([0.25, -0.75], np.float32)
        env.step(actions)
        ctrl = np.zeros(8)
        ctrl[list(ids)] = [0.25, -0.75]
        assert np.array_equal(env.data.ctrl, ctrl), agent
        model = env.data.model
        joints = [model.joint(model.actuator_trnid[i, 0]).name for i in ids]
        leg = int(agent[-1]) + 1
        assert joints == [f"hip_{leg}", f"ankle_{leg}"], joints


def test_spaces_and_state():
    env = multi_ant.parallel_env()
    assert env.possible_agents == AGENTS
    for agent in AGENTS:
        assert env.action_space(agent) is env.action_space(agent)
        assert env.observation_space(agent) is env.observation_space(agent)
        space = env.action_space(agent)
        assert space.shape == (2,) and (space.low == -1).all() and (space.high == 1).all()
        assert env.observation_space(agent).shape == (45,)
    obs, _ = env.reset(seed=0)
    assert env.state().shape == (105,) and env.state_space.contains(env.state())
    # the torso's height and orientation are part of every agent's observation
    assert all(np.array_equal(obs[a][-11:-6], env.data.qpos[2:7]) for a in AGENTS)
    assert multi_ant.parallel_env(agent_obsk=1).observation_space("agent_0").shape == (42,)
    assert multi_ant.parallel_env(agent_obsk=0).observation_space("agent_0").shape == (39,)


@pytest.mark.parametrize("max_cycles", [1000, 5])
def test_episode_length(max_cycles):
    kwargs = {} if max_cycles == 1000 else {"max_cycles": max_cycles}
    env = multi_ant.parallel_env(**kwargs)
    assert env.max_cycles == max_cycles
    if max_cycles == 1000:
        return  # default checked; stepping 1000 MuJoCo steps is left to the short case
    env.reset(seed=0)
    steps = 0
    while env.agents:
        _, _, terms, truncs, _ = env.step({a: np.zeros(2, np.float32) for a in env.agents})
        steps += 1
        assert not any(terms.values())
        assert all(truncs.values()) == (steps == max_cycles)
    assert steps == max_cycles


def test_seeded_reset_is_reproducible():
    a, b = multi_ant.parallel_env(), multi_ant.parallel_env()
    obs_a, _ = a.reset(seed=5)
    obs_b, _ = b.reset(seed=5)
    compared = 0
    for t in range(10):
        assert all(np.array_equal(obs_a[x], obs_b[x]) for x in AGENTS)
        obs_a, r_a, *_ = a.step(scripted(t))
        obs_b, r_b, *_ = b.step(scripted(t))
        assert r_a == r_b
        compared += 1
    assert compared == 10
    first = a.reset(seed=6)[0]["agent_0"]
    assert not np.array_equal(first, a.reset(seed=7)[0]["agent_0"])


def test_rgb_array_frame():
    env = multi_ant.parallel_env(render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (480, 480, 3) and frame.dtype == np.uint8 and frame.std() > 0
    env.close()


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"agent_obsk": -1}, "agent_obsk"),
        ({"agent_obsk": "2"}, "agent_obsk"),
        ({"max_cycles": 0}, "max_cycles"),
        ({"max_cycles": 1.5}, "max_cycles"),
        ({"render_mode": "depth_array"}, "render_mode"),
    ],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(InvalidArgumentError, match=name):
        multi_ant.parallel_env(**kwargs)
