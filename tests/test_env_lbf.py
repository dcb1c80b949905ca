"""``adv/lbf-v0``: the Level-Based Foraging of Li et al. (ICLR 2024) (collisions off, forced cooperation).

Exact values on hand-placed layouts (``set_layout``): movement with and without collisions,
loading, lbforaging's normalized reward and the team reward, observation and state vectors,
episode length; then spawning statistics, agreement with plain ``lbforaging`` and argument
errors.
"""

from __future__ import annotations

import numpy as np
import pytest
from lbforaging.foraging.environment import ForagingEnv

from adv_envs import lbf
from adv_wrappers.errors import InvalidActionError, InvalidArgumentError

NONE, NORTH, SOUTH, WEST, EAST, LOAD = range(6)
AGENTS = ["agent_0", "agent_1", "agent_2", "agent_3"]


def positions(env) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in p.position) for p in env.game.players]


def acts(**kwargs: int) -> dict[str, int]:
    """Actions for all four agents, NONE unless given (``acts(agent_0=EAST)``)."""
    return {a: kwargs.get(a, NONE) for a in AGENTS}


def placed(**kwargs):
    env = lbf.parallel_env(**kwargs)
    env.reset(seed=0)
    return env


# -- movement ----------------------------------------------------------------------------------


@pytest.mark.parametrize("collisions", [False, True])
def test_two_agents_moving_into_the_same_cell(collisions):
    env = placed(collisions=collisions)
    layout = {
        "agent_0": (3, 3, 1),
        "agent_1": (3, 5, 1),
        "agent_2": (0, 0, 1),
        "agent_3": (11, 11, 1),
    }
    env.set_layout(layout, {(8, 8): 3})
    env.step(acts(agent_0=EAST, agent_1=WEST))
    if collisions:  # lbforaging: both moves fail
        assert positions(env) == [(3, 3), (3, 5), (0, 0), (11, 11)]
    else:  # Li et al.: both arrive and share the cell
        assert positions(env) == [(3, 4), (3, 4), (0, 0), (11, 11)]
    obs = env.state()
    assert obs[:6].tolist() == ([3, 3, 1, 3, 5, 1] if collisions else [3, 4, 1, 3, 4, 1])


@pytest.mark.parametrize("collisions", [False, True])
def test_moving_into_an_agent_that_stays(collisions):
    env = placed(collisions=collisions)
    layout = {
        "agent_0": (3, 3, 1),
        "agent_1": (3, 4, 1),
        "agent_2": (0, 0, 1),
        "agent_3": (11, 11, 1),
    }
    env.set_layout(layout, {(8, 8): 3})
    env.step(acts(agent_0=EAST, agent_1=LOAD))  # agent_1's LOAD is illegal (no food): stays
    expected = (3, 3) if collisions else (3, 4)
    assert positions(env)[:2] == [expected, (3, 4)]
    # agents that share a cell can leave it in different directions
    env.step(acts(agent_0=NORTH, agent_1=SOUTH))
    assert positions(env)[:2] == [(expected[0] - 1, expected[1]), (4, 4)]


@pytest.mark.parametrize("collisions", [False, True])
def test_swap_and_chain(collisions):
    """lbforaging resolves moves once: agents swap, and one can enter a cell whose occupant's
    own move failed (pinned as documented); without collisions everyone simply moves."""
    env = placed(collisions=collisions)
    layout = {
        "agent_0": (3, 3, 1),
        "agent_1": (3, 4, 1),
        "agent_2": (3, 6, 1),
        "agent_3": (6, 6, 1),
    }
    env.set_layout(layout, {(9, 9): 3})
    env.step(acts(agent_0=EAST, agent_1=EAST, agent_2=WEST))
    if collisions:
        assert positions(env) == [(3, 4), (3, 4), (3, 6), (6, 6)]
    else:
        assert positions(env) == [(3, 4), (3, 5), (3, 5), (6, 6)]
    env.set_layout(layout, {(9, 9): 3})
    env.step(acts(agent_0=EAST, agent_1=WEST))
    assert positions(env)[:2] == [(3, 4), (3, 3)]


def test_illegal_moves_are_no_ops_and_masked():
    env = placed()
    layout = {
        "agent_0": (0, 0, 1),
        "agent_1": (5, 4, 1),
        "agent_2": (11, 11, 1),
        "agent_3": (7, 7, 1),
    }
    obs = env.set_layout(layout, {(5, 5): 3})
    assert len(obs) == 4
    _, _, _, _, infos = env.step(acts(agent_0=NORTH, agent_1=EAST, agent_2=SOUTH))
    assert positions(env)[:3] == [(0, 0), (5, 4), (11, 11)]
    assert infos["agent_0"]["action_mask"].tolist() == [1, 0, 1, 0, 1, 0]
    assert infos["agent_1"]["action_mask"].tolist() == [1, 1, 1, 1, 0, 1]  # east is food
    assert infos["agent_2"]["action_mask"].tolist() == [1, 1, 0, 1, 0, 0]
    assert infos["agent_0"]["action_mask"].dtype == np.int8


# -- loading and rewards -----------------------------------------------------------------------

LOAD_LAYOUT = {
    "agent_0": (5, 4, 1),
    "agent_1": (4, 5, 2),
    "agent_2": (0, 0, 1),
    "agent_3": (11, 11, 1),
}


def test_forced_cooperation_per_agent_reward():
    """Food of level 3 next to agents of levels 1 and 2; F_total = 3 + 3 = 6."""
    env = placed(shared_reward=False)
    env.set_layout(LOAD_LAYOUT, {(5, 5): 3, (9, 9): 3})
    # level 2 alone cannot load level 3
    _, rewards, terms, _, _ = env.step(acts(agent_1=LOAD))
    assert rewards == dict.fromkeys(AGENTS, 0.0)
    assert env.game.field[5, 5] == 3 and not any(terms.values())
    # levels 1 + 2 can: agent i earns level_i * 3 / (3 * 6)
    _, rewards, terms, truncs, _ = env.step(acts(agent_0=LOAD, agent_1=LOAD))
    assert rewards == {"agent_0": 1 / 6, "agent_1": 1 / 3, "agent_2": 0.0, "agent_3": 0.0}
    assert rewards["agent_0"] == 0.16666666666666666 and rewards["agent_1"] == 0.3333333333333333
    assert env.game.field[5, 5] == 0 and env.game.field[9, 9] == 3
    assert not any(terms.values()) and not any(truncs.values())
    # a loading agent adjacent to no food loads nothing; the food is gone
    _, rewards, _, _, _ = env.step(acts(agent_0=LOAD, agent_1=LOAD))
    assert rewards == dict.fromkeys(AGENTS, 0.0)


def test_force_coop_is_a_level_rule():
    """Levels 1, 1, 1, 3 make food of level 3, which the level-3 agent loads alone."""
    env = lbf.parallel_env(shared_reward=False)
    solo = 0
    for seed in range(200):
        env.reset(seed=seed)
        levels = sorted(p.level for p in env.game.players)
        solo += levels == [1, 1, 1, 3]
    assert 0 < solo < 30  # about 4/81 of resets
    env.reset(seed=0)
    layout = {
        "agent_0": (5, 4, 3),
        "agent_1": (0, 0, 1),
        "agent_2": (0, 2, 1),
        "agent_3": (0, 4, 1),
    }
    env.set_layout(layout, {(5, 5): 3, (9, 9): 3})
    _, rewards, _, _, _ = env.step(acts(agent_0=LOAD))
    assert rewards == {"agent_0": 0.5, "agent_1": 0.0, "agent_2": 0.0, "agent_3": 0.0}


def test_team_reward_and_termination_when_cleared():
    env = placed()  # shared_reward=True
    env.set_layout(LOAD_LAYOUT, {(5, 5): 3})  # F_total = 3
    _, rewards, terms, truncs, infos = env.step(acts(agent_0=LOAD, agent_1=LOAD))
    assert rewards == dict.fromkeys(AGENTS, 1.0)  # 1/3 + 2/3: the whole episode's worth
    assert terms == dict.fromkeys(AGENTS, True) and truncs == dict.fromkeys(AGENTS, False)
    assert env.agents == [] and set(infos) == set(AGENTS)
    assert env.state()[12:].tolist() == [-1, -1, 0] * 4


def test_team_reward_is_the_sum_of_shares():
    shares, team = placed(shared_reward=False), placed()
    for env in (shares, team):
        env.set_layout(LOAD_LAYOUT, {(5, 5): 3, (9, 9): 3})
    _, r_shares, _, _, _ = shares.step(acts(agent_0=LOAD, agent_1=LOAD))
    _, r_team, _, _, _ = team.step(acts(agent_0=LOAD, agent_1=LOAD))
    assert r_team == dict.fromkeys(AGENTS, 0.5) == dict.fromkeys(AGENTS, sum(r_shares.values()))


def test_agents_sharing_a_cell_load_together():
    env = placed(shared_reward=False)
    layout = {
        "agent_0": (5, 4, 1),
        "agent_1": (5, 4, 2),
        "agent_2": (0, 0, 1),
        "agent_3": (11, 11, 1),
    }
    env.set_layout(layout, {(5, 5): 3, (9, 9): 1})  # F_total = 4
    _, rewards, _, _, _ = env.step(acts(agent_0=LOAD, agent_1=LOAD))
    assert rewards == {"agent_0": 3 / 12, "agent_1": 6 / 12, "agent_2": 0.0, "agent_3": 0.0}


# -- observations, state, episode --------------------------------------------------------------


def test_observation_and_state_vectors():
    env = placed()
    obs = env.set_layout(LOAD_LAYOUT, {(9, 9): 3, (5, 5): 3})
    foods = [5, 5, 3, 9, 9, 3, -1, -1, 0, -1, -1, 0]  # row-major, padded
    assert obs["agent_1"].tolist() == foods + [4, 5, 2, 5, 4, 1, 0, 0, 1, 11, 11, 1]
    assert obs["agent_3"].tolist() == foods + [11, 11, 1, 5, 4, 1, 4, 5, 2, 0, 0, 1]
    assert obs["agent_1"].dtype == np.float32
    assert env.state().tolist() == [5, 4, 1, 4, 5, 2, 0, 0, 1, 11, 11, 1] + foods
    assert env.state_space.contains(env.state())
    for agent in AGENTS:
        assert env.observation_space(agent).contains(obs[agent])


def test_partial_sight_uses_window_coordinates():
    env = placed(sight=2)
    obs = env.set_layout(LOAD_LAYOUT, {(5, 5): 3, (9, 9): 3})
    # agent_1 at (4, 5) sees rows 2..6, cols 3..7: food (5, 5) -> (3, 2); agent_0 -> (3, 1)
    assert (
        obs["agent_1"].tolist()
        == [3, 2, 3] + [-1, -1, 0] * 3 + [2, 2, 2, 3, 1, 1] + [-1, -1, 0] * 2
    )


@pytest.mark.parametrize("max_cycles", [50, 7])
def test_episode_length(max_cycles):
    env = lbf.parallel_env() if max_cycles == 50 else lbf.parallel_env(max_cycles=max_cycles)
    assert env.max_cycles == max_cycles
    env.reset(seed=1)
    steps = 0
    while env.agents:
        _, _, terms, truncs, _ = env.step(dict.fromkeys(env.agents, NONE))
        steps += 1
        assert not any(terms.values())
        assert all(truncs.values()) == (steps == max_cycles)
    assert steps == max_cycles


# -- spawning, seeding, agreement with lbforaging ----------------------------------------------


@pytest.mark.parametrize("n_food", [4, 3])
def test_spawn_force_coop(n_food):
    env = lbf.parallel_env(n_food=n_food)
    assert env.observation_space("agent_0").shape == (3 * n_food + 12,)
    assert env.state_space.shape == (12 + 3 * n_food,)
    checked = 0
    for seed in range(30):
        env.reset(seed=seed)
        levels = sorted(p.level for p in env.game.players)
        assert all(1 <= v <= 3 for v in levels)
        food = env.game.field[env.game.field > 0]
        assert len(food) == n_food
        assert (food == sum(levels[:3])).all()  # every food needs the three weakest together
        assert env.game.field[0].sum() == env.game.field[-1].sum() == 0  # never on the border
        checked += 1
    assert checked == 30


def test_spawn_without_force_coop():
    env = lbf.parallel_env(force_coop=False)
    seen = set()
    for seed in range(30):
        env.reset(seed=seed)
        levels = sorted(p.level for p in env.game.players)
        food = env.game.field[env.game.field > 0]
        assert len(food) == 4 and (food >= 1).all() and (food <= sum(levels[:3])).all()
        seen.update(food.tolist())
    assert len(seen) > 3  # levels vary


def test_seeded_reset_is_reproducible():
    a, b = lbf.parallel_env(), lbf.parallel_env()
    rng = np.random.default_rng(0)
    obs_a, _ = a.reset(seed=11)
    obs_b, _ = b.reset(seed=11)
    compared = 0
    for _ in range(40):
        assert all(np.array_equal(obs_a[x], obs_b[x]) for x in obs_a)
        assert np.array_equal(a.state(), b.state())
        compared += 1
        if not a.agents:
            break
        actions = {x: int(rng.integers(6)) for x in a.agents}
        obs_a, r_a, *_ = a.step(actions)
        obs_b, r_b, *_ = b.step(actions)
        assert r_a == r_b
    assert compared == 40
    layouts = {tuple(a.reset(seed=s)[0]["agent_0"]) for s in range(5)}
    assert len(layouts) == 5


def test_collisions_on_is_plain_lbforaging():
    """With collisions=True and shared_reward=False the env is lbforaging's ForagingEnv."""
    env = lbf.parallel_env(collisions=True, shared_reward=False, max_cycles=50)
    ref = ForagingEnv(
        players=4,
        min_player_level=1,
        max_player_level=3,
        min_food_level=1,
        max_food_level=None,
        field_size=(12, 12),
        max_num_food=4,
        sight=12,
        max_episode_steps=50,
        force_coop=True,
    )
    rng = np.random.default_rng(1)
    steps = 0
    for seed in (3, 4):
        obs, _ = env.reset(seed=seed)
        ref_obs, _ = ref.reset(seed=seed)
        while env.agents:
            assert all(np.array_equal(obs[a], ref_obs[i]) for i, a in enumerate(AGENTS))
            actions = [int(v) for v in rng.integers(0, 6, 4)]
            obs, rewards, *_ = env.step(dict(zip(AGENTS, actions, strict=True)))
            ref_obs, ref_rewards, *_ = ref.step(actions)
            assert list(rewards.values()) == ref_rewards
            steps += 1
    assert steps == 100


def test_collisions_off_differs_only_on_conflicts():
    """Run both modes in lockstep on joint actions where no two agents target the same cell
    (an agent that does not move targets its own): the two must stay identical, loads included."""
    kwargs = {"shared_reward": False, "force_coop": False, "max_cycles": 100}
    on = lbf.parallel_env(collisions=True, **kwargs)
    off = lbf.parallel_env(collisions=False, **kwargs)
    moves = {NORTH: (-1, 0), SOUTH: (1, 0), WEST: (0, -1), EAST: (0, 1)}
    rng = np.random.default_rng(2)
    compared = loads = 0
    for seed in range(4):
        on.reset(seed=seed)
        _, infos = off.reset(seed=seed)
        while off.agents:
            for _ in range(10):  # legal actions only, LOAD whenever possible, no conflicts
                actions = {}
                for agent in AGENTS:
                    legal = np.flatnonzero(infos[agent]["action_mask"])
                    actions[agent] = LOAD if LOAD in legal else int(rng.choice(legal))
                targets = set()
                for player, agent in zip(off.game.players, AGENTS, strict=True):
                    d_row, d_col = moves.get(actions[agent], (0, 0))
                    targets.add((player.position[0] + d_row, player.position[1] + d_col))
                if len(targets) == 4:
                    break
            else:
                actions = dict.fromkeys(AGENTS, NONE)
            r_on = on.step(actions)[1]
            _, r_off, _, _, infos = off.step(actions)
            assert r_on == r_off and np.array_equal(on.state(), off.state())
            assert on.agents == off.agents
            loads += any(r_off.values())
            compared += 1
    assert compared >= 100 and loads >= 1, (compared, loads)


# -- rendering and errors ----------------------------------------------------------------------


def test_rgb_array_frame():
    env = lbf.parallel_env(render_mode="rgb_array")
    env.reset(seed=0)
    env.set_layout(LOAD_LAYOUT, {(5, 5): 3})
    frame = env.render()
    assert frame.shape == (12 * 32 + 1, 12 * 32 + 1, 3) and frame.dtype == np.uint8
    assert frame[5 * 32 + 4, 5 * 32 + 4].tolist() == [44, 160, 44]  # food
    assert frame[5 * 32 + 16, 4 * 32 + 5].tolist() == [31, 119, 180]  # agent_0's disc
    assert frame[4 * 32 + 16, 5 * 32 + 5].tolist() == [255, 127, 14]  # agent_1's disc
    assert frame[8 * 32 + 16, 8 * 32 + 16].tolist() == [245, 245, 245]  # empty cell


def test_render_without_mode_returns_none():
    env = lbf.parallel_env()
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode=None"):
        assert env.render() is None


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"field_size": 4}, "field_size"),
        ({"field_size": 12.0}, "field_size"),
        ({"n_agents": 0}, "n_agents"),
        ({"n_agents": True}, "n_agents"),
        ({"n_food": 0}, "n_food"),
        ({"n_food": 8}, "n_food"),
        ({"max_agent_level": 0}, "max_agent_level"),
        ({"sight": 0}, "sight"),
        ({"sight": 13}, "sight"),
        ({"force_coop": "yes"}, "force_coop"),
        ({"collisions": 1}, "collisions"),
        ({"shared_reward": None}, "shared_reward"),
        ({"max_cycles": 0}, "max_cycles"),
        ({"render_mode": "ansi"}, "render_mode"),
    ],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(InvalidArgumentError, match=name):
        lbf.parallel_env(**kwargs)


def test_largest_n_food_that_fits():
    env = lbf.parallel_env(n_food=7)
    for seed in range(5):
        env.reset(seed=seed)
        assert np.count_nonzero(env.game.field) == 7


def test_bad_actions_and_layouts():
    env = placed()
    with pytest.raises(InvalidActionError, match="agent_0"):
        env.step(acts(agent_0=6))
    with pytest.raises(KeyError, match="agent_3"):
        env.step({a: NONE for a in AGENTS[:3]})
    bad_layouts = [
        ({k: v for k, v in LOAD_LAYOUT.items() if k != "agent_3"}, {(5, 5): 3}, "every agent"),
        (LOAD_LAYOUT, {}, "at least one"),
        (LOAD_LAYOUT, {(5, 12): 3}, "food cell"),
        (LOAD_LAYOUT, {(5, 5): 0}, "food level"),
        (LOAD_LAYOUT, {(5, 4): 3}, "agent_0 is placed on food"),
        ({**LOAD_LAYOUT, "agent_2": (0, -1, 1)}, {(5, 5): 3}, "position of agent_2"),
        ({**LOAD_LAYOUT, "agent_2": (0, 0, 0)}, {(5, 5): 3}, "level of agent_2"),
        ({**LOAD_LAYOUT, "agent_2": (0, 0)}, {(5, 5): 3}, "agent_2 must map"),
        ({**LOAD_LAYOUT, "agent_3": (1, 1, 4)}, {(5, 5): 3}, "level of agent_3"),
        (LOAD_LAYOUT, {(5, 5): 10}, "food level"),
    ]
    before = env.state()
    for agents, food, message in bad_layouts:
        with pytest.raises(InvalidArgumentError, match=message):
            env.set_layout(agents, food)
        assert np.array_equal(env.state(), before)  # nothing half-applied
    with pytest.raises(InvalidArgumentError, match="reset"):
        lbf.parallel_env().set_layout(LOAD_LAYOUT, {(5, 5): 3})
