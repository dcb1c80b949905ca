"""The AEC threat wrappers on turn-based games.

Layers: PettingZoo's ``api_test`` and a seed test for every AEC threat model x slot x
variant x game (generated from the registry); identity with the unwrapped game at
epsilon=0 and exact takeover at epsilon=1; exact values (who is renamed, what the adversary
observed, what it was paid); every documented error. Loops assert how much they compared.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter

import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from pettingzoo.classic import leduc_holdem_v4, rps_v2, texas_holdem_v4, tictactoe_v3
from pettingzoo.test import api_test

from adv_envs import echo_v0
from adv_wrappers import aec
from adv_wrappers.aec import k_corruption_aec_v0, partial_control_aec_v0
from adv_wrappers.core import adversary_id, seeded_rng
from adv_wrappers.errors import (
    AgentIDCollisionError,
    InvalidActionError,
    InvalidArgumentError,
    MissingActionError,
    UnknownAgentError,
)
from adv_wrappers.k_corruption import all_subsets
from adv_wrappers.policies import sample_random_action
from adv_wrappers.registry import SLOTS, THREAT_MODELS


def lowest_legal(obs):
    """A deterministic embedded policy: the lowest legal action (call/check, never a fold)."""
    return int(np.flatnonzero(obs["action_mask"])[0])


# game -> (factory, the policy used for embedded slots). Poker uses a policy that never
# folds: a random first mover may fold, which ends the game inside reset (documented
# behaviour, tested below) and breaks api_test's assumption that nobody is done at reset.
GAMES = {
    "tictactoe": (tictactoe_v3.env, "random"),
    "leduc": (leduc_holdem_v4.env, lowest_legal),
    "rps": (lambda: rps_v2.env(max_cycles=4), "random"),
    "texas3": (lambda: texas_holdem_v4.env(num_players=3), lowest_legal),
}


def variants(factory_name: str, possible: list[str]) -> list[dict]:
    """The argument variants tested for each AEC factory (k < n is filtered per game)."""
    alpha = possible[0]
    if factory_name == "k_corruption_aec_v0":
        out = [{"k": 0}, {"k": 1}, {"k": 1, "subset": "exact"}, {"k": 1, "victim": possible[-1]}]
        out += [{"k": 2}, {"k": 2, "subset": "exact"}, {"k": 2, "subset": possible[1:3]}]
        return [v for v in out if v["k"] < len(possible)]
    if factory_name == "partial_control_aec_v0":
        return [
            {"agent": alpha, "epsilon": eps, "benign_policy": benign}
            for eps in (0.0, 0.5, 1.0)
            for benign in (None, "embedded")
        ]
    raise AssertionError(f"no test variants for {factory_name}: add them here")


AEC_MODELS = {tm.name: tm for tm in THREAT_MODELS.values() if tm.aec_factory_name}
CASES = [
    pytest.param(tm_name, slot, game, i, id=f"{tm_name}-{slot}-{game}-{i}")
    for tm_name, tm in AEC_MODELS.items()
    for slot in SLOTS
    for game in GAMES
    for i in range(len(variants(tm.aec_factory_name, GAMES[game][0]().possible_agents)))
]


def make(tm_name: str, slot: str, game: str, i: int):
    tm = AEC_MODELS[tm_name]
    factory, policy = GAMES[game]
    env = factory()
    kwargs = dict(variants(tm.aec_factory_name, env.possible_agents)[i])
    if kwargs.get("benign_policy") == "embedded":
        kwargs["benign_policy"] = policy
    kwargs[tm.slot_argument] = None if slot == "exposed" else policy
    return getattr(aec, tm.aec_factory_name)(env, **kwargs)


def mask_of(obs):
    return obs["action_mask"] if isinstance(obs, dict) else None


def random_action(env, agent, obs, rng):
    return sample_random_action(env.action_space(agent), rng, mask_of(obs))


def test_registry_aec_entries_resolve_to_this_module():
    assert set(AEC_MODELS) == {"k_corruption_v0", "partial_control_v0"}
    for tm in AEC_MODELS.values():
        assert callable(getattr(aec, tm.aec_factory_name))
    assert len(CASES) >= 60


# ---------------------------------------------------------------------- API and seeds
@pytest.mark.parametrize("tm_name,slot,game,i", CASES)
def test_api(tm_name, slot, game, i):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # api_test's style hints about the games themselves
        api_test(make(tm_name, slot, game, i), num_cycles=50)


def rollout(env, seed: int, episodes: int = 3, action_seed: int = 0):
    """Seeded random legal actions; one trace entry per ``agent_iter`` step."""
    rng = np.random.default_rng(action_seed)
    trace, resets = [], 0
    for episode in range(episodes):
        env.reset(seed=seed if episode == 0 else None)
        resets += 1
        for agent in env.agent_iter(10_000):
            obs, reward, term, trunc, info = env.last()
            trace.append(
                (agent, env.agent_selection, obs, reward, term, trunc, info, list(env.agents))
            )
            env.step(None if term or trunc else random_action(env, agent, obs, rng))
    return trace, resets


def compare(trace1, trace2) -> int:
    assert len(trace1) == len(trace2)
    for step, (a, b) in enumerate(zip(trace1, trace2, strict=False)):
        assert data_equivalence(a, b, exact=True), f"step {step}: {a!r} != {b!r}"
    return len(trace1)


@pytest.mark.parametrize("tm_name,slot,game,i", CASES)
def test_seed(tm_name, slot, game, i):
    trace1, resets = rollout(make(tm_name, slot, game, i), seed=42)
    trace2, _ = rollout(make(tm_name, slot, game, i), seed=42)
    compared = compare(trace1, trace2)
    assert resets == 3
    assert compared == len(trace1) >= 3 * 2  # every game lasts >= 2 selections per episode


def test_seed_matters_and_reset_with_the_same_seed_restarts_the_stream():
    def attacked_sequence(env, seed, n=12):
        env.reset(seed=seed)
        seq = [env.infos[env.agents[0]]["k_corruption"]["attacked"]]
        for _ in range(n - 1):
            env.reset()
            seq.append(env.infos[env.agents[0]]["k_corruption"]["attacked"])
        return seq

    env = k_corruption_aec_v0(texas_holdem_v4.env(num_players=3), k=2)
    first = attacked_sequence(env, 0)
    assert attacked_sequence(env, 0) == first  # re-seeded by reset(seed=0)
    assert attacked_sequence(env, 1) != first
    assert len(set(first)) > 1


def test_uniform_subset_draw_is_uniform_over_subsets():
    env = k_corruption_aec_v0(texas_holdem_v4.env(num_players=3), k=2)
    env.reset(seed=0)
    counts = Counter()
    n = 1200
    for _ in range(n):
        env.reset()
        counts[env.infos[env.agents[0]]["k_corruption"]["attacked"]] += 1
    support = all_subsets(env.env.possible_agents, 2)
    assert set(counts) == set(support) and len(support) == 6
    for subset in support:  # 200 expected each; 5 sigma is about 65
        assert abs(counts[subset] - n / 6) < 65, counts


# ---------------------------------------------------------------------- partial control
def play_turns(env, alpha, seed, episodes, benign_rng, adv_rng, on_adversary=None):
    """Drive ``env`` (wrapped or not); return the trace of every non-adversary selection.

    Base agents draw from ``benign_rng``; the adversary sub-turn (wrapped env only) from
    ``adv_rng``, through ``on_adversary(benign_action, adv_action)`` when given.
    """
    adv, trace, last_benign = adversary_id(alpha), [], None
    for episode in range(episodes):
        env.reset(seed=seed if episode == 0 else None)
        for agent in env.agent_iter(10_000):
            obs, reward, term, trunc, info = env.last()
            done = term or trunc
            if agent == adv:
                action = None if done else random_action(env, agent, obs, adv_rng)
                if on_adversary is not None and not done:
                    on_adversary(last_benign, action)
            else:
                info = {k: v for k, v in info.items() if k != "partial_control"}
                trace.append((agent, obs, reward, term, trunc, info))
                action = None if done else random_action(env, agent, obs, benign_rng)
                last_benign = action
            env.step(action)
    return trace


@pytest.mark.parametrize("game", list(GAMES))
@pytest.mark.parametrize("adversary", [None, "random"])
def test_epsilon_zero_reproduces_the_unwrapped_game(game, adversary):
    factory = GAMES[game][0]
    alpha = factory().possible_agents[0]
    clean = play_turns(factory(), alpha, 3, 4, np.random.default_rng(1), None)
    env = partial_control_aec_v0(factory(), alpha, 0.0, adversary=adversary)
    differing = []
    wrapped = play_turns(
        env,
        alpha,
        3,
        4,
        np.random.default_rng(1),
        np.random.default_rng(2),
        lambda benign, adv: differing.append(benign != adv),
    )
    assert compare(clean, wrapped) == len(clean) >= 4 * 2
    if adversary is None:  # the check could fail: the adversary proposed other actions
        assert sum(differing) >= 1 and len(differing) >= 4


def test_epsilon_one_is_full_takeover_on_the_tictactoe_board():
    env = partial_control_aec_v0(tictactoe_v3.env(), "player_1", 1.0)
    rng = np.random.default_rng(0)
    turns = 0
    for episode in range(5):
        env.reset(seed=episode)
        for agent in env.agent_iter():
            obs, _, term, trunc, _ = env.last()
            if term or trunc:
                env.step(None)
                continue
            if agent != "player_1_adversary":
                benign = random_action(env, agent, obs, rng)
                env.step(benign)
                continue
            legal = np.flatnonzero(obs["action_mask"])
            adv = int(legal[-1]) if int(legal[-1]) != benign else int(legal[0])
            env.step(adv)
            board = env.unwrapped.board.squares
            assert board[adv] == 1  # player_1's mark where the adversary played
            if adv != benign:
                assert board[benign] == 0
            gt = env.infos[env.agents[0]]["partial_control"]
            assert gt["adversary_acted"] == {"player_1": True}
            assert gt["executed_actions"] == {"player_1": adv}
            turns += 1
    assert turns >= 5 * 3


def test_epsilon_one_never_calls_the_benign_policy():
    def benign(obs):
        raise AssertionError("the benign policy must not be called at epsilon=1")

    env = partial_control_aec_v0(
        tictactoe_v3.env(), "player_2", 1.0, benign_policy=benign, adversary=lowest_legal
    )
    env.reset(seed=0)
    assert env.agents == ["player_1"]
    rng, steps = np.random.default_rng(0), 0
    for agent in env.agent_iter():
        obs, _, term, trunc, _ = env.last()
        env.step(None if term or trunc else random_action(env, agent, obs, rng))
        steps += 1
    assert steps >= 4


def test_coin_is_one_uniform_draw_per_turn_of_the_wrapper_rng():
    eps, seed = 0.3, 11
    env = partial_control_aec_v0(rps_v2.env(max_cycles=200), "player_0", eps)
    env.reset(seed=seed)
    acted = []
    for agent in env.agent_iter():
        obs, _, term, trunc, info = env.last()
        if term or trunc:
            env.step(None)
            continue
        env.step(1 if agent == "player_0" else 2)
        if agent == "player_0_adversary":
            gt = env.infos["player_1"]["partial_control"]
            acted.append(gt["adversary_acted"]["player_0"])
            assert gt["executed_actions"]["player_0"] == (2 if acted[-1] else 1)
    expected = seeded_rng(seed, "PartialControlAECWrapper").random(len(acted)) < eps
    assert len(acted) == 200
    assert acted == expected.tolist()
    assert 0 < sum(acted) < 200


def test_partial_control_turn_order_rewards_and_dead_steps():
    env = partial_control_aec_v0(tictactoe_v3.env(), "player_1", 0.0, victim="player_2")
    env.reset(seed=0)
    assert env.agents == ["player_1", "player_1_adversary", "player_2"]
    order, final = [], []
    moves = iter([0, 8, 3, 1, 8, 4, 2, 8])  # benign, adversary (ignored), player_2, ...
    for agent in env.agent_iter():
        order.append(agent)
        _, _, term, trunc, _ = env.last()
        env.step(None if term or trunc else next(moves))
        if not (term or trunc) and env.terminations.get("player_1"):  # the winning turn
            final.append(dict(env.rewards))
    assert final == [{"player_1": 1, "player_1_adversary": 1.0, "player_2": -1}]
    assert order == [
        "player_1", "player_1_adversary", "player_2",
        "player_1", "player_1_adversary", "player_2",
        "player_1", "player_1_adversary",
        "player_2", "player_1", "player_1_adversary",  # dead steps, alpha's IDs in order
    ]  # fmt: skip
    assert env.agents == []


# ---------------------------------------------------------------------- k-corruption
def test_k_corruption_exposed_renames_the_agent_exactly():
    env = k_corruption_aec_v0(tictactoe_v3.env(), k=1)
    env.reset(seed=0, options={"attacked": ["player_2"]})
    clean = tictactoe_v3.env()
    clean.reset(seed=0)
    assert env.possible_agents == [
        "player_1", "player_2", "player_1_adversary", "player_2_adversary"
    ]  # fmt: skip
    assert env.agents == ["player_1", "player_2_adversary"]
    gt = env.infos["player_1"]["k_corruption"]
    assert gt == {
        "attacked": ("player_2",), "victims": ("player_1",), "adversary_acted": {},
        "executed_actions": {}, "victim": None, "k": 1,
    }  # fmt: skip
    selections = []
    for move in [4, 0, 8, 1]:  # player_1, adversary, player_1, adversary
        selections.append(env.agent_selection)
        if env.agent_selection == "player_2_adversary":
            seen = env.observe("player_2_adversary")
            expected = clean.observe("player_2")
            assert data_equivalence(seen, expected, exact=True)
            assert seen["observation"][:, :, 1].sum() == clean.unwrapped.board.squares.count(1)
        env.step(move)
        clean.step(move)
    assert selections == ["player_1", "player_2_adversary"] * 2
    assert env.infos["player_1"]["k_corruption"]["executed_actions"] == {"player_2": 1}
    env.step(2)  # player_1
    assert env.agent_selection == "player_2_adversary"
    env.step(5)
    env.step(6)  # player_1 wins the diagonal 2-4-6
    assert env.rewards == {"player_1": 1, "player_2_adversary": -1.0}
    assert env._cumulative_rewards == {"player_1": 1, "player_2_adversary": -1.0}
    assert env.terminations == {"player_1": True, "player_2_adversary": True}
    dead_order = []
    for agent in env.agent_iter():
        dead_order.append(agent)
        with pytest.raises(MissingActionError, match=agent):
            env.step(0)
        env.step(None)
    assert dead_order == ["player_2_adversary", "player_1"] and env.agents == []


def test_k_corruption_adversary_reward_is_minus_the_victims_mean():
    checked = 0
    for victim in (None, "player_2"):
        env = k_corruption_aec_v0(texas_holdem_v4.env(num_players=3), k=1, victim=victim)
        rng = np.random.default_rng(0)
        for episode in range(6):
            env.reset(seed=episode, options={"attacked": ["player_1"]})
            victims = ("player_0", "player_2") if victim is None else ("player_2",)
            assert env.infos[env.agents[0]]["k_corruption"]["victims"] == victims
            assert "player_1" not in env.agents and "player_1_adversary" in env.agents
            for agent in env.agent_iter():
                obs, _, term, trunc, _ = env.last()
                env.step(None if term or trunc else random_action(env, agent, obs, rng))
                inner = env.env.rewards
                if any(inner[v] != 0 for v in victims if v in inner):
                    expected = -np.mean([inner[v] for v in victims])
                    assert env.rewards["player_1_adversary"] == pytest.approx(expected)
                    assert env.rewards["player_0"] == inner["player_0"]
                    checked += 1
    assert checked >= 10


def test_k_corruption_embedded_plays_the_corrupted_turns_and_its_dead_step():
    seen = []

    def adversary(obs):
        seen.append(obs["action_mask"].copy())
        return [0, 3, 6][len(seen) - 1]

    env = k_corruption_aec_v0(tictactoe_v3.env(), k=1, subset=["player_1"], adversary=adversary)
    env.reset(seed=0)
    assert env.possible_agents == ["player_1", "player_2"]
    assert env.agents == ["player_2"] and env.agent_selection == "player_2"
    assert env.observe("player_2")["observation"][0, 0].tolist() == [0, 1]  # X played at reset
    assert seen[0].tolist() == [1] * 9
    env.step(1)
    assert seen[1].tolist() == [0, 0, 1, 1, 1, 1, 1, 1, 1]  # the policy saw the legal squares
    assert env.infos["player_2"]["k_corruption"]["executed_actions"] == {"player_1": 3}
    env.step(2)  # player_1 (embedded) completes the left column 0-3-6
    assert env.rewards == {"player_2": -1} and env.terminations == {"player_2": True}
    gt = env.infos["player_2"]["k_corruption"]
    assert gt["adversary_acted"] == {"player_1": True} and gt["executed_actions"] == {"player_1": 6}
    env.step(None)  # the wrapper also steps the dead player_1 with None
    assert env.agents == [] and env.env.agents == [] and len(seen) == 3


def test_game_ending_inside_reset_is_reported_to_the_outside_agent():
    clean = leduc_holdem_v4.env()
    clean.reset(seed=5)
    first = clean.agent_selection
    other = "player_1" if first == "player_0" else "player_0"
    fold = 2
    env = k_corruption_aec_v0(leduc_holdem_v4.env(), k=1, adversary=lambda obs: fold)
    env.reset(seed=5, options={"attacked": [first]})
    clean.step(fold)
    assert env.agents == [other] and env.agent_selection == other
    _, reward, term, trunc, info = env.last(observe=False)
    assert term and not trunc and reward == clean.rewards[other] > 0
    assert info["k_corruption"]["executed_actions"] == {first: fold}
    env.step(None)
    assert env.agents == []


def test_reset_options_override_subset_and_victim():
    env = k_corruption_aec_v0(texas_holdem_v4.env(num_players=3), k=2, victim="player_0")
    env.reset(seed=0, options={"attacked": ["player_2"], "victim": "player_1"})
    gt = env.infos[env.agents[0]]["k_corruption"]
    assert gt["attacked"] == ("player_2",) and gt["victim"] == "player_1"
    assert gt["victims"] == ("player_1",)
    assert sorted(env.agents) == ["player_0", "player_1", "player_2_adversary"]
    env.reset()  # options hold for one episode only
    assert env.infos[env.agents[0]]["k_corruption"]["victim"] == "player_0"


def test_spaces_are_cached_and_mirror_the_agent():
    env = partial_control_aec_v0(tictactoe_v3.env(), "player_1", 0.5)
    for agent in env.possible_agents:
        assert env.action_space(agent) is env.action_space(agent)
        assert env.observation_space(agent) is env.observation_space(agent)
    assert env.action_space("player_1_adversary") == env.action_space("player_1")
    assert env.observation_space("player_1_adversary") == env.observation_space("player_1")
    assert set(env.observation_spaces) == set(env.possible_agents)


# ---------------------------------------------------------------------- errors
def ttt():
    return tictactoe_v3.env()


BAD_ARGUMENTS = [
    (lambda: k_corruption_aec_v0(ttt(), k=2), InvalidArgumentError, "k=2"),
    (lambda: k_corruption_aec_v0(ttt(), k=-1), InvalidArgumentError, "k=-1"),
    (lambda: k_corruption_aec_v0(ttt(), k=1.0), InvalidArgumentError, "k must be an int"),
    (lambda: k_corruption_aec_v0(ttt(), k=True), InvalidArgumentError, "k must be an int"),
    (lambda: k_corruption_aec_v0(ttt(), k=1, subset="all"), InvalidArgumentError, "subset"),
    (lambda: k_corruption_aec_v0(ttt(), k=1, subset=["bob"]), UnknownAgentError, "bob"),
    (
        lambda: k_corruption_aec_v0(ttt(), k=1, subset=["player_1", "player_2"]),
        InvalidArgumentError,
        "at most k=1",
    ),
    (
        lambda: k_corruption_aec_v0(ttt(), k=1, subset=["player_1"], victim="player_1"),
        InvalidArgumentError,
        "victim",
    ),
    (lambda: k_corruption_aec_v0(ttt(), k=1, victim="bob"), UnknownAgentError, "bob"),
    (
        lambda: k_corruption_aec_v0(ttt(), k=1, adversary={"bob": "random"}),
        UnknownAgentError,
        "bob",
    ),
    (lambda: k_corruption_aec_v0(ttt(), k=1, adversary="smart"), InvalidArgumentError, "smart"),
    (
        lambda: k_corruption_aec_v0(ttt(), k=1, adversary_observes="all"),
        InvalidArgumentError,
        "adversary_observes",
    ),
    (
        lambda: k_corruption_aec_v0(ttt(), k=1, adversary_observes="state"),
        InvalidArgumentError,
        "state_space",
    ),
    (
        lambda: k_corruption_aec_v0(echo_v0.parallel_env(), k=1),
        InvalidArgumentError,
        "k_corruption_v0",
    ),
    (
        lambda: k_corruption_aec_v0(partial_control_aec_v0(ttt(), "player_1", 0.5), k=1),
        AgentIDCollisionError,
        "player_1_adversary",
    ),
    (lambda: partial_control_aec_v0(ttt(), "player_1", -0.1), InvalidArgumentError, "epsilon"),
    (lambda: partial_control_aec_v0(ttt(), "player_1", 1.01), InvalidArgumentError, "epsilon"),
    (lambda: partial_control_aec_v0(ttt(), "player_1", math.nan), InvalidArgumentError, "nan"),
    (lambda: partial_control_aec_v0(ttt(), "player_1", math.inf), InvalidArgumentError, "inf"),
    (lambda: partial_control_aec_v0(ttt(), "player_1", "x"), InvalidArgumentError, "epsilon"),
    (lambda: partial_control_aec_v0(ttt(), "bob", 0.5), UnknownAgentError, "bob"),
    (
        lambda: partial_control_aec_v0(ttt(), "player_1", 0.5, victim="bob"),
        UnknownAgentError,
        "bob",
    ),
    (
        lambda: partial_control_aec_v0(ttt(), "player_1", 0.5, victim="player_1"),
        InvalidArgumentError,
        "victim",
    ),
    (
        lambda: partial_control_aec_v0(ttt(), "player_1", 0.5, benign_policy=3),
        InvalidArgumentError,
        "benign_policy",
    ),
    (
        lambda: partial_control_aec_v0(echo_v0.parallel_env(), "agent_0", 0.5),
        InvalidArgumentError,
        "partial_control_v0",
    ),
]


@pytest.mark.parametrize("build,error,match", BAD_ARGUMENTS)
def test_bad_arguments_raise_typed_errors(build, error, match):
    with pytest.raises(error, match=match):
        build()


def texas_k2_victim0():
    return k_corruption_aec_v0(texas_holdem_v4.env(num_players=3), k=2, victim="player_0")


BAD_OPTIONS = [
    ({"attacked": ["bob"]}, UnknownAgentError, "bob"),
    ({"attacked": "player_1"}, InvalidArgumentError, "list of agent IDs"),
    ({"attacked": ["player_1", "player_1"]}, InvalidArgumentError, "more than once"),
    ({"attacked": ["player_0"]}, InvalidArgumentError, "victim"),
    ({"attacked": ["player_1", "player_2"], "victim": "player_1"}, InvalidArgumentError, "victim"),
    ({"victim": "bob"}, UnknownAgentError, "bob"),
    ({"attacked": ["player_0"], "victim": None}, InvalidArgumentError, "cannot attack"),
]


@pytest.mark.parametrize("options,error,match", BAD_OPTIONS)
def test_bad_reset_options_raise_typed_errors(options, error, match):
    with pytest.raises(error, match=match):
        texas_k2_victim0().reset(seed=0, options=options)


def test_more_bad_episode_inputs():
    with pytest.raises(InvalidArgumentError, match="options must be a dict"):
        texas_k2_victim0().reset(options=["attacked"])
    exact = k_corruption_aec_v0(
        texas_holdem_v4.env(num_players=3), k=2, subset="exact", victim="player_0"
    )
    with pytest.raises(InvalidArgumentError, match="needs k=2 candidates"):
        exact.reset(seed=0, options={"victim": "player_1"})
    sampler = k_corruption_aec_v0(ttt(), k=1, subset=lambda rng, candidates, victim: ["bob"])
    with pytest.raises(UnknownAgentError, match="bob"):
        sampler.reset(seed=0)
    with pytest.raises(InvalidArgumentError, match="seed"):
        k_corruption_aec_v0(ttt(), k=1).reset(seed=-1)


def test_stepping_a_done_agent_with_an_action_raises():
    env = partial_control_aec_v0(tictactoe_v3.env(), "player_1", 0.0)
    env.reset(seed=0)
    for move in [0, 0, 1, 3, 3, 2, 6, 6]:  # benign, adversary, player_2, ...: column 0-3-6
        env.step(move)
    assert env.agent_selection == "player_2" and env.terminations["player_2"]
    with pytest.raises(MissingActionError, match="player_2"):
        env.step(1)


BAD_POLICIES = [
    ("adversary", lambda obs: 9, "outside the agent's action space"),  # not in Discrete(9)
    ("adversary", lambda obs: 0, "illegal at this turn"),  # square 0 is taken
    ("benign_policy", lambda obs: -1, "outside the agent's action space"),
    ("benign_policy", lambda obs: 0, "illegal at this turn"),
]


@pytest.mark.parametrize("slot,policy,match", BAD_POLICIES)
def test_partial_control_policy_returning_an_illegal_action_raises_at_that_step(
    slot, policy, match
):
    other = {"adversary": "benign_policy", "benign_policy": "adversary"}[slot]
    eps = 1.0 if slot == "adversary" else 0.0  # the bad policy's action would be executed
    env = partial_control_aec_v0(
        tictactoe_v3.env(), "player_2", eps, **{slot: policy, other: lowest_legal}
    )
    env.reset(seed=0)
    assert env.agents == ["player_1"]
    with pytest.raises(InvalidActionError, match=f"'player_2'.*{match}"):
        env.step(0)  # player_1 takes square 0; then player_2's policy is called


@pytest.mark.parametrize(
    "policy,match", [(lambda obs: 9, "action space"), (lambda obs: 4, "illegal")]
)
def test_k_corruption_embedded_illegal_action_raises_naming_the_agent(policy, match):
    env = k_corruption_aec_v0(ttt(), k=1, subset=["player_2"], adversary=policy)
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match=f"'player_2'.*{match}"):
        env.step(4)


def test_adversary_observes_state_and_team_victims_on_a_simultaneous_game_as_aec():
    env = k_corruption_aec_v0(
        echo_v0.raw_env(n_agents=3, max_cycles=2),
        k=1,
        subset=["agent_1"],
        adversary_observes="state",
    )
    assert env.observation_space("agent_1_adversary") is env.state_space
    env.reset(seed=0)
    assert env.agents == ["agent_0", "agent_1_adversary", "agent_2"]
    actions = {"agent_0": 1, "agent_1_adversary": 4, "agent_2": 2}
    for agent in ["agent_0", "agent_1_adversary", "agent_2"]:
        assert env.agent_selection == agent
        env.step(actions[agent])
    # the cycle was executed: echo observes the executed actions and pays each its own
    assert env.observe("agent_1_adversary").tolist() == env.state().tolist() == [1.0, 4.0, 2.0]
    assert env.rewards == {"agent_0": 1.0, "agent_1_adversary": -1.5, "agent_2": 2.0}
    assert env.infos["agent_0"]["k_corruption"]["executed_actions"] == {"agent_1": 4}
