"""The MPE envs: adv/independent_spread-v0 (Nika et al. (TMLR 2024), App. C.1, this project's
scenario) and the thin mpe2 wrappers of He et al. (TMLR 2023), App. E.1 (cooperative navigation, exchange target, keep-away,
physical deception): configurations, exact rewards (mpe2's and, with `rewards="original"`, those
of the original MPE code of Lowe et al. (2017)) and observations of hand-placed worlds.

Hand placing: after reset, positions are set and velocities zeroed; a no-op step then leaves
every position unchanged (MPE integrates the position with the old velocity, zero, before it
applies forces), so the rewards of that step are functions of the placed positions only."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pettingzoo
import pytest
from gymnasium import spaces

from adv_envs import (
    cooperative_navigation,
    exchange_target,
    independent_spread,
    keep_away,
    physical_deception,
)
from adv_wrappers.errors import InvalidArgumentError

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

NOOP, LEFT, RIGHT, DOWN, UP = range(5)
TOL = 1e-9  # MPE's soft contact force between far-apart bodies is ~1e-40, not exactly 0
MODULES = {
    "independent_spread": independent_spread,
    "cooperative_navigation": cooperative_navigation,
    "exchange_target": exchange_target,
    "keep_away": keep_away,
    "physical_deception": physical_deception,
}
HE_ET_AL = [name for name in MODULES if name != "independent_spread"]  # have `rewards`


def place(env, agents, landmarks=(), velocities=None):
    world = env.unwrapped.world
    for i, (agent, pos) in enumerate(zip(world.agents, agents, strict=True)):
        agent.state.p_pos = np.array(pos, dtype=float)
        agent.state.p_vel = np.array(velocities[i] if velocities else (0.0, 0.0), dtype=float)
    for landmark, pos in zip(world.landmarks, landmarks, strict=False):
        landmark.state.p_pos = np.array(pos, dtype=float)
    return world


def noop_step(env):
    def noop(agent):
        space = env.action_space(agent)
        return np.zeros(space.shape, space.dtype) if isinstance(space, spaces.Box) else NOOP

    return env.step({agent: noop(agent) for agent in env.agents})


def dist(a, b):
    return float(np.hypot(a[0] - b[0], a[1] - b[1]))


def count_steps(env, seed=0):
    """Steps of one no-op episode; asserts truncation comes on the last step only."""
    env.reset(seed=seed)
    steps = 0
    while env.agents:
        obs, rewards, terms, truncs, infos = noop_step(env)
        steps += 1
        assert not any(terms.values())
        assert set(truncs) == set(env.possible_agents)
        if env.agents:
            assert not any(truncs.values())
    assert all(truncs.values())
    return steps


# ------------------------------------------------------------------ independent spread


def test_independent_spread_configuration():
    env = pettingzoo.make("parallel", "adv/independent_spread-v0")
    assert env.possible_agents == ["agent_0", "agent_1", "agent_2"]
    assert env.metadata["name"] == "independent_spread_v0"
    for agent in env.possible_agents:
        assert env.action_space(agent) == spaces.Discrete(5)
        assert env.observation_space(agent).shape == (10,)
        assert env.action_space(agent) is env.action_space(agent)
    assert env.state_space.shape == (18,)
    assert count_steps(env) == 25
    six = independent_spread.parallel_env(N=6, max_cycles=4)
    assert len(six.possible_agents) == 6 and len(six.unwrapped.world.landmarks) == 6
    assert six.observation_space("agent_5").shape == (16,) and six.state_space.shape == (36,)
    assert count_steps(six) == 4
    cont = independent_spread.parallel_env(continuous_actions=True)
    assert cont.action_space("agent_0") == spaces.Box(0.0, 1.0, (5,), np.float32)


def test_independent_spread_rewards_hand_placed():
    env = independent_spread.parallel_env()
    env.reset(seed=0)
    # agents 0 and 1 overlap (0.2 apart < 2 * 0.15), agent 2 is alone
    place(env, [(0.0, 0.0), (0.2, 0.0), (0.9, 0.9)], [(0.3, 0.4), (0.2, 0.0), (0.9, 0.1)])
    obs, rewards, *_ = noop_step(env)
    assert rewards["agent_0"] == pytest.approx(-0.5 - 10.0, abs=TOL)
    assert rewards["agent_1"] == pytest.approx(0.0 - 10.0, abs=TOL)
    assert rewards["agent_2"] == pytest.approx(-0.8, abs=TOL)
    # one agent touching two others pays twice; the two others once each
    env.reset(seed=1)
    place(env, [(0.0, 0.0), (0.25, 0.0), (-0.25, 0.0)], [(0.0, 1.0), (1.0, 0.0), (-1.0, -1.0)])
    obs, rewards, *_ = noop_step(env)
    assert rewards["agent_0"] == pytest.approx(-1.0 - 20.0, abs=TOL)
    assert rewards["agent_1"] == pytest.approx(-0.75 - 10.0, abs=TOL)
    assert rewards["agent_2"] == pytest.approx(-dist((-0.25, 0.0), (-1.0, -1.0)) - 10.0, abs=TOL)
    # bodies exactly 0.3 apart are not in contact (strict <, as mpe2)
    env.reset(seed=2)
    place(env, [(0.0, 0.0), (0.3, 0.0), (0.9, 0.9)], [(0.0, 0.0), (0.3, 0.0), (0.9, 0.9)])
    obs, rewards, *_ = noop_step(env)
    assert all(r == pytest.approx(0.0, abs=TOL) for r in rewards.values())


def test_independent_spread_collision_penalty_argument():
    env = independent_spread.parallel_env(N=2, collision_penalty=2.5)
    env.reset(seed=0)
    place(env, [(0.0, 0.0), (0.1, 0.0)], [(0.0, 0.5), (0.1, 0.0)])
    obs, rewards, *_ = noop_step(env)
    assert rewards == {
        "agent_0": pytest.approx(-0.5 - 2.5, abs=TOL),
        "agent_1": pytest.approx(-2.5, abs=TOL),
    }
    free = independent_spread.parallel_env(N=2, collision_penalty=0)
    free.reset(seed=0)
    place(free, [(0.0, 0.0), (0.1, 0.0)], [(0.0, 0.5), (0.1, 0.0)])
    assert noop_step(free)[1]["agent_0"] == pytest.approx(-0.5, abs=TOL)


def test_independent_spread_collision_count_argument():
    """``collision_count="per_step"``: the penalty once per step in contact with anyone; the
    hand-placed scenes of the default's test, rewards computed by hand."""
    env = independent_spread.parallel_env(collision_count="per_step")
    assert env.unwrapped.collision_count == "per_step"
    env.reset(seed=1)  # agent_0 touches agents 1 and 2: it pays 10 once (per_agent: 20)
    place(env, [(0.0, 0.0), (0.25, 0.0), (-0.25, 0.0)], [(0.0, 1.0), (1.0, 0.0), (-1.0, -1.0)])
    obs, rewards, *_ = noop_step(env)
    assert rewards["agent_0"] == pytest.approx(-1.0 - 10.0, abs=TOL)
    assert rewards["agent_1"] == pytest.approx(-0.75 - 10.0, abs=TOL)
    assert rewards["agent_2"] == pytest.approx(-dist((-0.25, 0.0), (-1.0, -1.0)) - 10.0, abs=TOL)
    env.reset(seed=0)  # one pair: the same as per_agent
    place(env, [(0.0, 0.0), (0.2, 0.0), (0.9, 0.9)], [(0.3, 0.4), (0.2, 0.0), (0.9, 0.1)])
    obs, rewards, *_ = noop_step(env)
    assert [rewards[a] for a in env.agents] == pytest.approx([-10.5, -10.0, -0.8], abs=TOL)
    for bad in ("per_contact", 1, None):
        with pytest.raises(InvalidArgumentError, match="collision_count must be one of"):
            independent_spread.parallel_env(collision_count=bad)


def test_independent_spread_observation_and_state_layout():
    env = independent_spread.parallel_env()
    env.reset(seed=0)
    place(
        env,
        [(0.1, 0.2), (-0.5, 0.5), (0.7, -0.3)],
        [(0.4, 0.6), (-0.9, -0.9), (0.0, 1.0)],
        velocities=[(0.05, -0.05), (0.0, 0.1), (-0.2, 0.0)],
    )
    raw = env.unwrapped
    np.testing.assert_allclose(
        raw.observe("agent_0"),
        [0.05, -0.05, 0.1, 0.2, 0.3, 0.4, -0.6, 0.3, 0.6, -0.5],
        atol=1e-7,
    )
    np.testing.assert_allclose(
        raw.observe("agent_2"),
        [-0.2, 0.0, 0.7, -0.3, -0.7, 1.3, -0.6, 0.5, -1.2, 0.8],
        atol=1e-7,
    )
    state = env.state()
    assert state.dtype == np.float32 and env.state_space.contains(state)
    np.testing.assert_allclose(
        state,
        [0.1, 0.2, -0.5, 0.5, 0.7, -0.3]  # positions
        + [0.05, -0.05, 0.0, 0.1, -0.2, 0.0]  # velocities
        + [0.4, 0.6, -0.9, -0.9, 0.0, 1.0],  # landmarks
        atol=1e-7,
    )
    # one no-op step: p += 0.1 v with the old velocity, then v *= 0.75 (damping)
    obs, *_ = noop_step(env)
    p0 = np.array([0.1 + 0.005, 0.2 - 0.005])
    np.testing.assert_allclose(obs["agent_0"][:4], [0.0375, -0.0375, *p0], atol=TOL)
    np.testing.assert_allclose(obs["agent_0"][4:6], np.array([0.4, 0.6]) - p0, atol=TOL)


def test_independent_spread_actions_accelerate():
    for continuous, action in ((False, RIGHT), (True, np.array([0, 0, 1, 0, 0], np.float32))):
        env = independent_spread.parallel_env(N=1, continuous_actions=continuous)
        env.reset(seed=0)
        place(env, [(0.0, 0.0)], [(0.5, 0.0)])
        obs, *_ = env.step({"agent_0": action})
        # the acceleration of 5 for dt = 0.1 gives velocity 0.5; the position moves next step
        np.testing.assert_allclose(obs["agent_0"][:4], [0.5, 0.0, 0.0, 0.0], atol=TOL)
        obs, rewards, *_ = noop_step(env)
        np.testing.assert_allclose(obs["agent_0"][:4], [0.375, 0.0, 0.05, 0.0], atol=TOL)
        assert rewards["agent_0"] == pytest.approx(-0.45, abs=TOL)
    env = independent_spread.parallel_env(N=1)
    env.reset(seed=0)
    place(env, [(0.0, 0.0)])
    for action, velocity in ((LEFT, (-0.5, 0)), (DOWN, (-0.375, -0.5)), (UP, (-0.28125, 0.125))):
        obs, *_ = env.step({"agent_0": action})
        np.testing.assert_allclose(obs["agent_0"][:2], velocity, atol=TOL)


def test_independent_spread_seeded_resets():
    a, b = independent_spread.parallel_env(), independent_spread.parallel_env()
    obs_a, _ = a.reset(seed=7)
    obs_b, _ = b.reset(seed=7)
    np.testing.assert_array_equal(a.state(), b.state())
    a.reset(seed=8)
    assert not np.array_equal(a.state(), b.state())
    positions = a.state()
    assert ((positions[:6] >= -1) & (positions[:6] <= 1)).all()
    assert (positions[6:12] == 0).all()  # agents start at rest


def test_independent_spread_aec_matches_parallel():
    par = independent_spread.parallel_env()
    aec = independent_spread.env()
    par.reset(seed=3)
    aec.reset(seed=3)
    np.testing.assert_array_equal(par.state(), aec.state())
    actions = {"agent_0": RIGHT, "agent_1": UP, "agent_2": NOOP}
    _, rewards, *_ = par.step(actions)
    for agent in aec.agent_iter(3):
        aec.step(actions[agent])
    np.testing.assert_array_equal(par.state(), aec.state())
    assert aec.rewards == pytest.approx(dict(rewards))


# ------------------------------------------------------------------ cooperative navigation


@pytest.mark.parametrize("N,obs_dim", [(3, 18), (6, 36)])
def test_cooperative_navigation_configuration(N, obs_dim):
    env = pettingzoo.make("parallel", "adv/cooperative_navigation-v0", N=N)
    assert env.possible_agents == [f"agent_{i}" for i in range(N)]
    assert len(env.unwrapped.world.landmarks) == N
    assert env.metadata["name"] == "cooperative_navigation_v0"
    assert env.observation_space("agent_0").shape == (obs_dim,)
    assert env.state_space.shape == (N * obs_dim,)
    assert env.action_space("agent_0") == spaces.Discrete(5)
    assert env.unwrapped.local_ratio == 0.5
    assert count_steps(env) == 25


@pytest.mark.parametrize("local_ratio", [0.5, 0.0, 1.0])
def test_cooperative_navigation_rewards_hand_placed(local_ratio):
    env = cooperative_navigation.parallel_env(local_ratio=local_ratio)
    env.reset(seed=0)
    place(env, [(0.0, 0.0), (0.2, 0.0), (0.9, 0.9)], [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)])
    obs, rewards, *_ = noop_step(env)
    # each landmark's closest agent: 0 (agent 0), 0.8 (agent 1), sqrt(0.82) (agent 2)
    shared = -(0.0 + 0.8 + np.sqrt(0.82))
    collisions = {"agent_0": 1, "agent_1": 1, "agent_2": 0}
    for agent, n in collisions.items():
        expected = (1 - local_ratio) * shared - local_ratio * n
        assert rewards[agent] == pytest.approx(expected, abs=TOL), agent
    if local_ratio == 0.5:
        assert rewards["agent_0"] == pytest.approx(-1.3527692569068708, abs=TOL)


CN_ORIGINAL_CASES = {
    # agents 0 and 1 in contact (0.2 apart < 0.3): 1 pair; landmark distances 0, 0.8, sqrt(0.82)
    "one pair": (
        [(0.0, 0.0), (0.2, 0.0), (0.9, 0.9)],
        [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)],
        -(0.0 + 0.8 + np.sqrt(0.82)),
        1,
        -10.116615541441226,
    ),
    # agent 0 touches agents 1 and 2 (0.25 apart), which are 0.5 apart: 2 pairs;
    # landmark distances 1 (agent 0), 0.75 (agent 1), 1.25 (agent 2)
    "two pairs": (
        [(0.0, 0.0), (0.25, 0.0), (-0.25, 0.0)],
        [(0.0, 1.0), (1.0, 0.0), (-1.0, -1.0)],
        -3.0,
        2,
        -16.0,
    ),
    # exactly 0.3 apart is no contact (strict <), landmarks covered: only the self-collisions
    "no contact": (
        [(0.0, 0.0), (0.3, 0.0), (0.9, 0.9)],
        [(0.0, 0.0), (0.3, 0.0), (0.9, 0.9)],
        0.0,
        0,
        -3.0,
    ),
    # N=6: pairs 0-1, 0-2 (0.25 apart) and 3-4 (0.2 apart); 1-2 are 0.5 apart;
    # landmark distances 0 (agent 0), 0.4 (agent 1), 0 (agent 3), 0.3 (agent 4), 0.4 and 0
    # (agent 5)
    "six agents": (
        [(0.0, 0.0), (0.25, 0.0), (-0.25, 0.0), (0.9, 0.9), (0.9, 0.7), (-0.9, -0.9)],
        [(0.0, 0.0), (0.25, 0.4), (0.9, 0.9), (0.9, 0.4), (-0.9, -0.5), (-0.9, -0.9)],
        -1.1,
        3,
        -18.6,
    ),
}


@pytest.mark.parametrize("case", list(CN_ORIGINAL_CASES))
def test_cooperative_navigation_original_rewards_hand_placed(case):
    agents, landmarks, coverage, pairs, total = CN_ORIGINAL_CASES[case]
    N = len(agents)
    env = cooperative_navigation.parallel_env(N=N, rewards="original")
    assert env.unwrapped.reward_scale == "original"
    env.reset(seed=0)
    place(env, agents, landmarks)
    obs, rewards, *_ = noop_step(env)
    # Lowe et al. (2017): agent i's own reward G - 1 - C_i (its collision loop meets the agent
    # itself), summed over the N agents and given to every agent: N * G - N - 2 * pairs
    assert N * coverage - N - 2 * pairs == pytest.approx(total, abs=TOL)
    assert set(rewards) == set(env.possible_agents)
    for agent in env.possible_agents:
        assert rewards[agent] == pytest.approx(total, abs=TOL), agent


def test_cooperative_navigation_local_ratio_is_only_for_mpe2_rewards():
    assert cooperative_navigation.raw_env(rewards="original", local_ratio=0.5).local_ratio == 0.5
    with pytest.raises(InvalidArgumentError, match=r"local_ratio.*rewards='mpe2'"):
        cooperative_navigation.parallel_env(rewards="original", local_ratio=0.0)


# ------------------------------------------------------------------ exchange target


def test_exchange_target_configuration_and_goal_assignment():
    env = pettingzoo.make("parallel", "adv/exchange_target-v0")
    assert env.possible_agents == ["agent_0", "agent_1"]
    assert env.metadata["name"] == "exchange_target_v0"
    assert env.action_space("agent_0") == spaces.Discrete(50)
    assert env.observation_space("agent_1").shape == (21,)
    assert env.state_space.shape == (42,)
    assert count_steps(env) == 25
    seen = set()
    for seed in range(30):
        env.reset(seed=seed)
        world = env.unwrapped.world
        assert len(world.landmarks) == 3
        a0, a1 = world.agents
        assert a0.goal_a is a1 and a1.goal_a is a0
        seen.add((world.landmarks.index(a0.goal_b), world.landmarks.index(a1.goal_b)))
        # each agent sees the colour of the landmark the *other* agent must reach
        np.testing.assert_allclose(env.unwrapped.observe("agent_0")[8:11], a0.goal_b.color)
        np.testing.assert_allclose(env.unwrapped.observe("agent_1")[8:11], a1.goal_b.color)
        np.testing.assert_allclose(a1.color, a0.goal_b.color)
    assert len(seen) >= 7  # the two targets are drawn independently from 3 landmarks


@pytest.mark.parametrize("rewards", ["mpe2", "original"])
def test_exchange_target_rewards_hand_placed(rewards):
    env = exchange_target.parallel_env(rewards=rewards)
    env.reset(seed=0)
    world = env.unwrapped.world
    g0, g1 = world.agents[0].goal_b, world.agents[1].goal_b  # landmarks 2 and 1 for seed 0
    assert (world.landmarks.index(g0), world.landmarks.index(g1)) == (2, 1)
    place(env, [(0.0, 0.0), (0.5, 0.5)], [(-1.0, 0.0), (0.0, 0.6), (0.5, 0.9)])
    obs, got, *_ = noop_step(env)
    own_0 = -0.4  # agent_0's term: agent_1 to g0 = landmark 2
    own_1 = -0.6  # agent_1's term: agent_0 to g1 = landmark 1
    if rewards == "mpe2":  # generous: 0.75 of its own term, 0.25 of the other's
        assert got["agent_0"] == pytest.approx(0.75 * own_0 + 0.25 * own_1, abs=TOL)
        assert got["agent_1"] == pytest.approx(0.75 * own_1 + 0.25 * own_0, abs=TOL)
    else:
        # Lowe et al. (2017): agent i's own reward is minus the other agent's *squared*
        # distance to the landmark i knows, and both receive the sum
        assert got["agent_0"] == pytest.approx(-(own_0**2 + own_1**2), abs=TOL)
        assert got["agent_1"] == got["agent_0"] == pytest.approx(-0.52, abs=TOL)
        # distances above 1 grow when squared: agent_1 2.0 from g0, agent_0 1.5 from g1
        env.reset(seed=0)
        place(env, [(0.0, -0.9), (0.5, -1.1)], [(-1.0, 0.0), (0.0, 0.6), (0.5, 0.9)])
        obs, got, *_ = noop_step(env)
        assert got == {
            "agent_0": pytest.approx(-(4.0 + 2.25), abs=TOL),
            "agent_1": pytest.approx(-6.25, abs=TOL),
        }


def test_exchange_target_local_ratio_is_only_for_mpe2_rewards():
    assert exchange_target.raw_env(rewards="original", local_ratio=0.5).local_ratio == 0.5
    with pytest.raises(InvalidArgumentError, match=r"local_ratio.*rewards='mpe2'"):
        exchange_target.parallel_env(rewards="original", local_ratio=1.0)


def test_exchange_target_messages_reach_the_other_agent():
    env = exchange_target.parallel_env()
    env.reset(seed=0)
    obs, *_ = env.step({"agent_0": 5 * 7 + NOOP, "agent_1": 5 * 2 + RIGHT})
    np.testing.assert_array_equal(obs["agent_1"][11:21], np.eye(10)[7])
    np.testing.assert_array_equal(obs["agent_0"][11:21], np.eye(10)[2])
    assert obs["agent_1"][0] == pytest.approx(0.5, abs=TOL) and obs["agent_0"][0] == 0.0


# ------------------------------------------------------------------ keep-away


def test_keep_away_configuration():
    env = pettingzoo.make("parallel", "adv/keep_away-v0")
    assert env.possible_agents == ["adversary_0", "agent_0"]
    assert env.metadata["name"] == "keep_away_v0"
    assert env.observation_space("adversary_0").shape == (8,)
    assert env.observation_space("agent_0").shape == (19,)
    assert env.state_space.shape == (27,)
    assert len(env.unwrapped.world.landmarks) == 2  # the code's 2, not the paper's 1
    assert count_steps(env) == 25


def test_keep_away_rewards_hand_placed_and_the_adversary_cannot_see_the_target():
    env = keep_away.parallel_env()
    env.reset(seed=0)
    world = env.unwrapped.world
    goal = world.agents[1].goal_a
    assert world.agents[0].goal_a is goal and world.landmarks.index(goal) == 1
    place(env, [(0.0, 0.0), (0.8, 0.6)], [(-1.0, -1.0), (0.0, 0.3)])
    raw = env.unwrapped
    adversary_view, agent_view = raw.observe("adversary_0"), raw.observe("agent_0")
    obs, rewards, *_ = noop_step(env)
    assert rewards["agent_0"] == pytest.approx(-dist((0.8, 0.6), (0.0, 0.3)), abs=TOL)
    assert rewards["adversary_0"] == pytest.approx(dist((0.8, 0.6), (0.0, 0.3)) - 0.3, abs=TOL)
    # switching the target changes what the agent sees, not what the adversary sees
    other = world.landmarks[0]
    place(env, [(0.0, 0.0), (0.8, 0.6)])
    for agent in world.agents:
        agent.goal_a = other
    np.testing.assert_array_equal(raw.observe("adversary_0"), adversary_view)
    np.testing.assert_allclose(raw.observe("agent_0")[2:4], [-1.8, -1.6], atol=1e-7)
    assert not np.array_equal(raw.observe("agent_0")[2:4], agent_view[2:4])


def test_keep_away_original_rewards_hand_placed():
    env = keep_away.parallel_env(rewards="original")
    env.reset(seed=0)
    world = env.unwrapped.world
    assert world.landmarks.index(world.agents[1].goal_a) == 1
    place(env, [(0.0, 0.0), (0.8, 0.6)], [(-1.0, -1.0), (0.0, 0.3)])
    obs, rewards, *_ = noop_step(env)
    # Lowe et al. (2017)'s simple_push, unchanged in mpe2: the agent pays its distance to the
    # target (0.8, 0.3 away), the adversary gains it and pays its own (0.3); nothing is shared
    assert rewards["agent_0"] == pytest.approx(-np.sqrt(0.73), abs=TOL)
    assert rewards["adversary_0"] == pytest.approx(np.sqrt(0.73) - 0.3, abs=TOL)


# ------------------------------------------------------------------ physical deception


def test_physical_deception_configuration():
    env = pettingzoo.make("parallel", "adv/physical_deception-v0")
    assert env.possible_agents == ["adversary_0", "agent_0", "agent_1"]
    assert env.metadata["name"] == "physical_deception_v0"
    assert env.observation_space("adversary_0").shape == (8,)
    assert env.observation_space("agent_0").shape == (10,)
    assert env.state_space.shape == (28,)
    assert len(env.unwrapped.world.landmarks) == 2
    assert count_steps(env) == 25


def test_physical_deception_rewards_hand_placed():
    env = physical_deception.parallel_env()
    env.reset(seed=0)
    world = env.unwrapped.world
    goal = world.agents[0].goal_a
    assert all(a.goal_a is goal for a in world.agents) and world.landmarks.index(goal) == 1
    place(env, [(0.0, 0.5), (0.6, 0.8), (-0.9, 0.0)], [(-1.0, 0.0), (0.0, 0.0)])
    obs, rewards, *_ = noop_step(env)
    closest_good = min(dist((0.6, 0.8), (0, 0)), dist((-0.9, 0.0), (0, 0)))  # 0.9
    assert rewards["adversary_0"] == pytest.approx(-0.5, abs=TOL)
    assert rewards["agent_0"] == pytest.approx(-closest_good + 0.5, abs=TOL)
    assert rewards["agent_1"] == rewards["agent_0"] == pytest.approx(-0.4, abs=TOL)
    # a good agent observes the target first; the adversary sees only landmarks and agents
    np.testing.assert_allclose(obs["agent_0"][:2], [-0.6, -0.8], atol=1e-7)
    np.testing.assert_allclose(
        obs["adversary_0"], [-1, -0.5, 0, -0.5, 0.6, 0.3, -0.9, -0.5], atol=1e-7
    )


@pytest.mark.parametrize(
    "adversary,adversary_distance", [((0.0, 0.5), 0.5), ((1.2, 1.6), 2.0), ((0.0, 0.0), 0.0)]
)
def test_physical_deception_original_rewards_hand_placed(adversary, adversary_distance):
    env = physical_deception.parallel_env(rewards="original")
    env.reset(seed=0)
    world = env.unwrapped.world
    assert world.landmarks.index(world.agents[0].goal_a) == 1  # the target is at (0, 0)
    place(env, [adversary, (0.6, 0.8), (-0.9, 0.0)], [(-1.0, 0.0), (0.0, 0.0)])
    obs, rewards, *_ = noop_step(env)
    # Lowe et al. (2017): the adversary pays its *squared* distance to the target; each
    # cooperating agent gets minus the closest cooperating agent's distance (0.9) plus the
    # adversary's distance, as in mpe2
    assert rewards["adversary_0"] == pytest.approx(-(adversary_distance**2), abs=TOL)
    for agent in ("agent_0", "agent_1"):
        assert rewards[agent] == pytest.approx(-0.9 + adversary_distance, abs=TOL)
    if adversary == (1.2, 1.6):
        assert rewards["adversary_0"] == pytest.approx(-4.0, abs=TOL)
        assert rewards["agent_0"] == pytest.approx(1.1, abs=TOL)


# ------------------------------------------------------------------ all MPE envs


def random_rewards(env, seed, steps=6):
    """The rewards of ``steps`` steps of random actions (the spaces seeded by ``seed``)."""
    env.reset(seed=seed)
    for i, agent in enumerate(env.possible_agents):
        env.action_space(agent).seed(seed + i)
    history = []
    for _ in range(steps):
        actions = {agent: env.action_space(agent).sample() for agent in env.agents}
        history.append(dict(env.step(actions)[1]))
    return history


@pytest.mark.parametrize("name", HE_ET_AL)
def test_mpe2_rewards_are_the_default(name):
    module = MODULES[name]
    assert module.raw_env().reward_scale == "mpe2"
    default = random_rewards(module.parallel_env(), seed=5)
    explicit = random_rewards(module.parallel_env(rewards="mpe2"), seed=5)
    original = random_rewards(module.parallel_env(rewards="original"), seed=5)
    assert len(default) == 6 and default == explicit
    # the original rewards differ except in keep-away, whose mpe2 rewards are the original's
    assert (original == default) == (name == "keep_away")


@pytest.mark.parametrize("name", HE_ET_AL)
def test_original_rewards_survive_pickling(name):
    raw = MODULES[name].raw_env(rewards="original")
    copy = pickle.loads(pickle.dumps(raw))
    assert type(copy) is type(raw) and copy.reward_scale == "original"


@pytest.mark.parametrize("name", list(MODULES))
def test_render_rgb_array(name):
    env = MODULES[name].parallel_env(render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (700, 700, 3) and frame.dtype == np.uint8
    assert frame.min() < 255  # something was drawn
    env.close()


@pytest.mark.parametrize("name", list(MODULES))
def test_pickles_with_its_arguments(name):
    raw = MODULES[name].raw_env(max_cycles=7)
    copy = pickle.loads(pickle.dumps(raw))
    assert type(copy) is type(raw) and copy.max_cycles == 7
    assert copy.metadata["name"] == f"{name}_v0"


COMMON_BAD = [
    ({"max_cycles": 0}, "max_cycles"),
    ({"max_cycles": 2.5}, "max_cycles"),
    ({"max_cycles": True}, "max_cycles"),
    ({"continuous_actions": 1}, "continuous_actions"),
    ({"continuous_actions": "False"}, "continuous_actions"),
    ({"render_mode": "rgb"}, "render_mode"),
    ({"render_mode": "ansi"}, "render_mode"),
]
SPECIFIC_BAD = {
    "independent_spread": [
        ({"N": 0}, "N"),
        ({"N": 3.0}, "N"),
        ({"collision_penalty": -1.0}, "collision_penalty"),
        ({"collision_penalty": float("nan")}, "collision_penalty"),
        ({"collision_penalty": "10"}, "collision_penalty"),
    ],
    "cooperative_navigation": [
        ({"N": 0}, "N"),
        ({"N": "6"}, "N"),
        ({"local_ratio": 1.5}, "local_ratio"),
        ({"local_ratio": -0.1}, "local_ratio"),
        ({"local_ratio": None}, "local_ratio"),
    ],
    "exchange_target": [
        ({"local_ratio": 2}, "local_ratio"),
        ({"local_ratio": float("inf")}, "local_ratio"),
    ],
    "keep_away": [],
    "physical_deception": [({"N": 0}, "N"), ({"N": None}, "N")],
}
REWARDS_BAD = [
    ({"rewards": "Original"}, "rewards"),
    ({"rewards": "paper"}, "rewards"),
    ({"rewards": None}, "rewards"),
    ({"rewards": 1}, "rewards"),
]
for _name in HE_ET_AL:
    SPECIFIC_BAD[_name] += REWARDS_BAD
SPECIFIC_BAD["cooperative_navigation"].append(
    ({"rewards": "original", "local_ratio": 0.0}, "local_ratio")
)
SPECIFIC_BAD["exchange_target"].append(({"rewards": "original", "local_ratio": 1.0}, "local_ratio"))
BAD_CASES = [
    (name, kwargs, argument)
    for name in MODULES
    for kwargs, argument in COMMON_BAD + SPECIFIC_BAD[name]
]


@pytest.mark.parametrize("name,kwargs,argument", BAD_CASES)
def test_bad_arguments_raise(name, kwargs, argument):
    with pytest.raises(InvalidArgumentError, match=rf"\b{argument}\b"):
        MODULES[name].parallel_env(**kwargs)
    with pytest.raises(ValueError):
        MODULES[name].env(**kwargs)


@pytest.mark.parametrize("name", HE_ET_AL)
def test_bad_rewards_name_the_allowed_values(name):
    with pytest.raises(InvalidArgumentError) as error:
        MODULES[name].parallel_env(rewards="paper")
    assert str(error.value) == "rewards must be one of ('mpe2', 'original'), got 'paper'"


@pytest.mark.parametrize("name", list(MODULES))
def test_unknown_arguments_raise(name):
    with pytest.raises(TypeError, match="dynamic_rescaling"):
        MODULES[name].parallel_env(dynamic_rescaling=False)


THREADS_SCRIPT = """
from concurrent.futures import ThreadPoolExecutor
from adv_envs import cooperative_navigation, exchange_target, independent_spread, keep_away
from adv_envs import physical_deception
MODULES = [independent_spread, cooperative_navigation, exchange_target, keep_away,
           physical_deception]

def build_and_close(i):
    built = 0
    for _ in range(ROUNDS):
        for module in MODULES:
            env = module.parallel_env()
            env.reset(seed=i)
            env.close()
            built += 1
    return built

with ThreadPoolExecutor(4) as pool:
    print(sum(pool.map(build_and_close, range(4))))
"""


def test_mpe_envs_can_be_built_and_closed_on_several_threads():
    # mpe2 sets up pygame's fonts in its constructor and quits pygame in close(); without
    # adv_envs._mpe.PYGAME_LOCK, 4 threads doing that crashed the process (SIGABRT, "malloc():
    # unsorted double linked list corrupted", or pygame's segfault handler) in
    # 5 of 5 runs tried (about 1.5 s each). A crash kills the interpreter, so it runs apart.
    import subprocess
    import sys

    script = THREADS_SCRIPT.replace("ROUNDS", "40")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "800"  # 4 threads x 40 rounds x 5 envs, every one built
