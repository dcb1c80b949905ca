"""adv/pursuit-v0: the configuration of Nika et al. (TMLR 2024), App. C.3, and exact reward accounting on
hand-placed pursuers and evaders (capture 5 shared over 8 pursuers, urgency -0.1 per step)."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pettingzoo
import pytest
from gymnasium import spaces

from adv_envs import pursuit
from adv_wrappers.errors import InvalidArgumentError

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

STAY, X_MINUS, X_PLUS, Y_PLUS, Y_MINUS = 4, 0, 1, 2, 3
FAR_EVADERS = (14, 1)  # the other evaders wait here, next to no pursuer


def place(env, pursuers, evaders):
    """Put pursuer i at pursuers[i] and evader i at evaders[i] (the rest at FAR_EVADERS)."""
    game = env.unwrapped.env
    for i, xy in enumerate(pursuers):
        game.pursuer_layer.set_position(i, *xy)
    for i in range(game.evader_layer.n_agents()):
        game.evader_layer.set_position(i, *(evaders[i] if i < len(evaders) else FAR_EVADERS))
    game.model_state[1] = game.pursuer_layer.get_state_matrix()
    game.model_state[2] = game.evader_layer.get_state_matrix()
    return game


def test_configuration_is_the_papers():
    env = pettingzoo.make("parallel", "adv/pursuit-v0")
    game = env.unwrapped.env
    assert env.possible_agents == [f"pursuer_{i}" for i in range(8)]
    assert (game.n_pursuers, game.n_evaders, game.obs_range) == (8, 30, 7)
    assert (game.catch_reward, game.urgency_reward, game.tag_reward) == (5.0, -0.1, 0.01)
    assert game.surround is True and game.shared_reward is True and game.local_ratio == 0.0
    assert (game.x_size, game.y_size, game.max_cycles) == (16, 16, 500)
    assert env.action_space("pursuer_0") == spaces.Discrete(5)
    assert env.observation_space("pursuer_0").shape == (7, 7, 3)
    assert env.state_space.shape == (16, 16, 3)
    assert env.metadata["name"] == "pursuit_v0"
    env.reset(seed=0)
    assert game.evader_layer.n_agents() == 30
    assert env.action_space("pursuer_3") is env.action_space("pursuer_3")


def test_a_capture_by_four_pays_each_pursuer_five_times_four_eighths():
    env = pursuit.parallel_env()
    env.reset(seed=0)
    # evader 0 at (2, 2): pursuers 0-2 on three sides, pursuer 3 steps onto the fourth side
    game = place(
        env,
        [(1, 2), (3, 2), (2, 1), (2, 4), (1, 14), (3, 14), (1, 12), (3, 12)],
        [(2, 2)],
    )
    actions = dict.fromkeys(env.agents, STAY)
    actions["pursuer_3"] = Y_MINUS
    obs, rewards, terms, truncs, infos = env.step(actions)
    assert tuple(game.pursuer_layer.get_position(3)) == (2, 3)
    assert game.evader_layer.n_agents() == 29
    # tag terms: 3 pursuers touch the evader after moves 0-2, 4 after moves 3-7, 0.01 each,
    # divided by 8 (per move) and averaged over 8 pursuers
    tags = (3 * 0.03 + 5 * 0.04) / 64
    expected = 5.0 * 4 / 8 - 0.1 + tags
    assert expected == pytest.approx(2.40453125, abs=1e-12)
    assert set(rewards) == set(env.possible_agents)
    for agent in env.possible_agents:
        assert rewards[agent] == pytest.approx(expected, abs=1e-12), agent
    assert not any(terms.values()) and not any(truncs.values())


def test_walls_enclose_too_a_corner_capture_by_two():
    env = pursuit.parallel_env()
    env.reset(seed=1)
    pursuers = [(1, 0), (0, 1), (1, 14), (3, 14), (1, 12), (3, 12), (14, 14), (14, 12)]
    game = place(env, pursuers, [(0, 0)])
    obs, rewards, *_ = env.step(dict.fromkeys(env.agents, STAY))
    assert game.evader_layer.n_agents() == 29
    expected = 5.0 * 2 / 8 - 0.1 + 8 * 0.02 / 64
    for agent in env.possible_agents:
        assert rewards[agent] == pytest.approx(expected, abs=1e-12)


def test_a_pursuer_in_two_captures_is_paid_once():
    env = pursuit.parallel_env()
    env.reset(seed=2)
    # evaders at (2, 2) and (4, 2) share the enclosing pursuer at (3, 2): 7 pursuers, 2 captures
    pursuers = [(1, 2), (2, 1), (2, 3), (3, 2), (5, 2), (4, 1), (4, 3), (14, 14)]
    game = place(env, pursuers, [(2, 2), (4, 2)])
    obs, rewards, *_ = env.step(dict.fromkeys(env.agents, STAY))
    assert game.evader_layer.n_agents() == 28
    # per move the 8 touches (the shared pursuer touches both evaders) pay 0.08 / 64
    expected = 5.0 * 7 / 8 - 0.1 + 8 * 0.08 / 64
    assert expected == pytest.approx(4.285, abs=1e-12)
    for agent in env.possible_agents:
        assert rewards[agent] == pytest.approx(expected, abs=1e-12)


def test_urgency_is_minus_a_tenth_per_step_while_nothing_is_touched():
    env = pursuit.parallel_env()
    env.reset(seed=3)
    place(env, [(0, 15), (2, 15), (4, 15), (0, 13), (2, 13), (4, 13), (0, 11), (2, 11)], [])
    steps = 0
    for _ in range(5):  # the evaders start 12+ cells away and move one cell per step at most
        obs, rewards, terms, truncs, infos = env.step(dict.fromkeys(env.agents, STAY))
        assert set(rewards) == set(env.possible_agents)
        for agent in env.possible_agents:
            assert rewards[agent] == pytest.approx(-0.1, abs=1e-12)
        steps += 1
    assert steps == 5 and env.unwrapped.env.evader_layer.n_agents() == 30


def test_unshared_rewards_go_to_the_capturing_pursuers():
    env = pursuit.parallel_env(shared_reward=False, tag_reward=0.0)
    env.reset(seed=0)
    place(env, [(1, 2), (3, 2), (2, 1), (2, 3), (1, 14), (3, 14), (1, 12), (3, 12)], [(2, 2)])
    obs, rewards, *_ = env.step(dict.fromkeys(env.agents, STAY))
    for i in range(8):
        assert rewards[f"pursuer_{i}"] == pytest.approx(5.0 - 0.1 if i < 4 else -0.1, abs=1e-12)


def test_observation_and_state_of_hand_placed_agents():
    env = pursuit.parallel_env()
    env.reset(seed=0)
    pursuers = [(1, 2), (3, 2), (2, 1), (2, 4), (1, 14), (3, 14), (1, 12), (3, 12)]
    place(env, pursuers, [(2, 2), (2, 2)])  # two evaders stacked on one cell
    state = env.state()
    assert env.state_space.contains(state)
    assert state[2, 2, 2] == 30 - 28 and state[1, 14, 2] == 28  # state[y, x, channel]
    assert state[2, 1, 1] == 1 and state[14, 1, 1] == 1 and state[2, 2, 1] == 0
    assert state[4, 5, 0] == 1 and state[3, 5, 0] == 0  # the building starts at x=5, y=4
    assert state[:, :, 1].sum() == 8 and state[:, :, 2].sum() == 30
    obs = env.unwrapped.observe("pursuer_0")  # pursuer_0 at (1, 2): window x -2..4, y -1..5
    assert obs.shape == (7, 7, 3)
    assert obs[3, 3, 1] == 1  # itself at the centre
    assert obs[3, 4, 2] == 2  # the two evaders one cell to its right (x + 1)
    assert (obs[:, 0, 0] == 1).all() and (obs[:, 1, 0] == 1).all()  # x = -2, -1: off the map
    assert (obs[0, :, 0] == 1).all()  # y = -1: off the map
    assert obs[1:, 2:, 0].sum() == 0  # no walls on the map in x 0..4, y 0..5


def test_episode_is_truncated_after_max_cycles():
    env = pursuit.parallel_env(max_cycles=7)
    env.reset(seed=0)
    steps = 0
    while env.agents:
        obs, rewards, terms, truncs, infos = env.step(dict.fromkeys(env.agents, STAY))
        steps += 1
        assert all(truncs.values()) == (steps == 7)
    assert steps == 7


def test_reset_with_a_seed_is_reproducible():
    a, b = pursuit.parallel_env(), pursuit.parallel_env()
    a.reset(seed=5)
    b.reset(seed=5)
    np.testing.assert_array_equal(a.state(), b.state())
    a.reset(seed=6)
    assert not np.array_equal(a.state(), b.state())


def test_render_rgb_array():
    env = pursuit.parallel_env(render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (480, 480, 3) and frame.dtype == np.uint8
    env.close()


def test_pickles_with_its_arguments():
    raw = pursuit.raw_env(n_evaders=5, max_cycles=9)
    copy = pickle.loads(pickle.dumps(raw))
    assert isinstance(copy, pursuit.raw_env)
    assert (copy.env.n_evaders, copy.env.max_cycles, copy.env.n_pursuers) == (5, 9, 8)


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        ({"n_pursuers": 0}, "n_pursuers"),
        ({"n_pursuers": 2.0}, "n_pursuers"),
        ({"n_evaders": True}, "n_evaders"),
        ({"obs_range": 6}, "obs_range"),
        ({"obs_range": 0}, "obs_range"),
        ({"catch_reward": float("nan")}, "catch_reward"),
        ({"urgency_reward": "-0.1"}, "urgency_reward"),
        ({"tag_reward": float("inf")}, "tag_reward"),
        ({"surround": 1}, "surround"),
        ({"n_catch": 0}, "n_catch"),
        ({"shared_reward": "yes"}, "shared_reward"),
        ({"freeze_evaders": None}, "freeze_evaders"),
        ({"x_size": 0}, "x_size"),
        ({"y_size": 3.5}, "y_size"),
        ({"x_size": 4, "y_size": 4}, "x_size=4, y_size=4"),  # 16 cells for 30 evaders
        ({"max_cycles": 0}, "max_cycles"),
        ({"render_mode": "rgb"}, "render_mode"),
    ],
)
def test_bad_arguments_raise(kwargs, argument):
    with pytest.raises(InvalidArgumentError, match=argument):
        pursuit.parallel_env(**kwargs)
    with pytest.raises(ValueError):  # InvalidArgumentError is a ValueError
        pursuit.env(**kwargs)


def test_small_maps_that_fit_work():
    env = pursuit.parallel_env(x_size=4, y_size=4, n_pursuers=2, n_evaders=3, max_cycles=3)
    env.reset(seed=0)
    assert env.state().shape == (4, 4, 3)
    while env.agents:
        env.step(dict.fromkeys(env.agents, STAY))
