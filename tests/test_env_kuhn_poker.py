"""Kuhn poker (`adv/kuhn_poker-v0`) and its exact tools (`adv_envs.kuhn_poker_exact`).

Exact values: the game value -1/18 and exploitability 0 along Kuhn's equilibrium family,
uniform play's 11/24; cross-checks against OpenSpiel's `kuhn_poker`; best responses against
brute force over all 64 pure policies; the env's transitions against the rules for every
deal and betting sequence; Monte Carlo play through the env (and the partial-control
wrapper) against the exact expected payoffs.
"""

from __future__ import annotations

import itertools

import numpy as np
import pettingzoo
import pytest

from adv_envs import kuhn_poker
from adv_envs.kuhn_poker_exact import (
    GAME_VALUE,
    INFO_STATES,
    TabularAgent,
    TabularPolicy,
    all_deterministic_policies,
    best_response,
    decode_observation,
    expected_payoff,
    exploitability,
    mix,
    nash_conv,
    nash_equilibrium,
    one_sided_exploitability,
    openspiel_key,
)
from adv_wrappers import partial_control_aec_v0
from adv_wrappers.errors import InvalidActionError, InvalidArgumentError, MissingActionError

AGENTS = ("player_0", "player_1")
DEALS = [(c0, c1) for c0 in range(3) for c1 in range(3) if c0 != c1]
# The rules, written out independently of the env: terminal history -> how it is scored.
FOLDS = {"bp": +1.0, "pbp": -1.0}  # player_0's payoff when somebody folds
SHOWDOWNS = {"pp": 1.0, "bb": 2.0, "pbb": 2.0}  # stake won by the higher card
TERMINALS = sorted([*FOLDS, *SHOWDOWNS])


def rules_payoff(cards, history):
    if history in FOLDS:
        return FOLDS[history]
    return SHOWDOWNS[history] if cards[0] > cards[1] else -SHOWDOWNS[history]


def random_policy(player, rng, sparse=False):
    probs = rng.dirichlet([1.0, 1.0], size=6)
    if sparse:  # some rows pure, so zero-reach information states appear
        pure = rng.random(6) < 0.5
        probs[pure] = np.eye(2)[rng.integers(0, 2, size=pure.sum())]
    return TabularPolicy(player, probs)


def history_vector(history):
    out = np.zeros(6, np.float32)
    for r, char in enumerate(history):
        out[2 * r + "pb".index(char)] = 1
    return out


# ------------------------------------------------------------------ the env and the rules
def test_every_deal_and_betting_sequence_follows_the_rules():
    env = pettingzoo.make("aec", "adv/kuhn_poker-v0")
    hands = steps = 0
    for cards in DEALS:
        for terminal in TERMINALS:
            env.reset(seed=0, options={"cards": cards})
            assert env.unwrapped.cards == cards
            history = ""
            for char in terminal:
                actor = AGENTS[len(history) % 2]
                assert env.agent_selection == actor and env.agents == list(AGENTS)
                for seat, agent in enumerate(AGENTS):
                    obs = env.observe(agent)
                    want = np.zeros(11, np.float32)
                    want[seat], want[2 + cards[seat]] = 1, 1
                    want[5:] = history_vector(history)
                    np.testing.assert_array_equal(obs["observation"], want)
                    assert obs["action_mask"].tolist() == ([1, 1] if agent == actor else [0, 0])
                    assert obs["action_mask"].dtype == np.int8
                    assert env.unwrapped.info_state(agent) == (cards[seat], history)
                state = np.zeros(12, np.float32)
                state[cards[0]], state[3 + cards[1]] = 1, 1
                state[6:] = history_vector(history)
                np.testing.assert_array_equal(env.state(), state)
                assert not any(env.terminations.values()) and not any(env.truncations.values())
                env.step("pb".index(char))
                history += char
                steps += 1
                assert env.unwrapped.history == history
                if history != terminal:
                    assert env.rewards == {"player_0": 0.0, "player_1": 0.0}
            value = rules_payoff(cards, terminal)
            assert env.rewards == {"player_0": value, "player_1": -value}
            assert env.terminations == {"player_0": True, "player_1": True}
            assert env.truncations == {"player_0": False, "player_1": False}
            for agent in AGENTS:
                assert env.observe(agent)["action_mask"].tolist() == [0, 0]
            dead = []
            while env.agents:
                obs, reward, term, trunc, _ = env.last()
                assert term and not trunc
                assert reward == (value if env.agent_selection == "player_0" else -value)
                dead.append(env.agent_selection)
                env.step(None)
            assert sorted(dead) == list(AGENTS)
            hands += 1
    assert hands == 30 and steps == 6 * (2 + 2 + 2 + 3 + 3)  # 72 transitions compared


def test_observations_are_openspiel_information_state_tensors():
    pyspiel = pytest.importorskip("pyspiel")
    game = pyspiel.load_game("kuhn_poker")
    env = kuhn_poker.raw_env()
    compared = 0
    for cards in DEALS:
        for history in ["", "p", "b", "pb", *TERMINALS]:
            env.reset(options={"cards": cards})
            state = game.new_initial_state()
            state.apply_action(cards[0])
            state.apply_action(cards[1])
            for char in history:
                env.step("pb".index(char))
                state.apply_action("pb".index(char))
            assert state.is_terminal() == kuhn_poker.is_terminal(history)
            for seat, agent in enumerate(AGENTS):
                obs = env.observe(agent)["observation"]
                np.testing.assert_array_equal(obs, state.information_state_tensor(seat))
                assert decode_observation(obs) == (seat, cards[seat], history)
                compared += 1
            if state.is_terminal():
                assert env.rewards["player_0"] == state.returns()[0] == rules_payoff(cards, history)
    assert compared == 6 * 9 * 2


def test_seeded_deals_are_reproducible_and_cover_all_six():
    def deals(seed, n=300):
        env = kuhn_poker.env()
        out = []
        for i in range(n):
            env.reset(seed=seed if i == 0 else None)
            out.append(env.unwrapped.cards)
        return out

    first, again, other = deals(7), deals(7), deals(8)
    assert first == again and first != other and len(first) == 300
    assert set(first) == set(DEALS)


def test_render_rgb_array():
    env = kuhn_poker.env(render_mode="rgb_array")
    env.reset(seed=0, options={"cards": (0, 2)})
    start = env.render()
    assert start.shape == (240, 360, 3) and start.dtype == np.uint8
    env.step(1)
    env.step(1)
    end = env.render()
    assert end.shape == (240, 360, 3) and not np.array_equal(start, end)
    plain = kuhn_poker.env()
    plain.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert plain.render() is None  # no render_mode: nothing drawn


@pytest.mark.parametrize(
    "cards", [(0, 0), (0, 3), (-1, 1), (0,), (0, 1, 2), "01", None, (True, False), (0.0, 1.0)]
)
def test_bad_cards_option_raises(cards):
    env = kuhn_poker.env()
    with pytest.raises(InvalidArgumentError, match="cards"):
        env.reset(options={"cards": cards})


def test_env_errors():
    with pytest.raises(InvalidArgumentError, match="render_mode"):
        kuhn_poker.env(render_mode="human")
    env = kuhn_poker.raw_env()
    with pytest.raises(InvalidArgumentError, match="reset"):
        env.info_state("player_0")
    with pytest.raises(InvalidArgumentError, match="options"):
        env.reset(options=[("cards", (0, 1))])
    env.reset(seed=0)
    with pytest.raises(InvalidArgumentError, match="agent"):
        env.info_state("player_2")
    for bad in (2, -1, 0.5, "1"):
        with pytest.raises(InvalidActionError, match="allowed"):
            env.step(bad)
    with pytest.raises(MissingActionError, match="must act"):
        env.step(None)
    env.step(1)
    env.step(0)  # player_1 folds: the hand is over
    with pytest.raises(MissingActionError, match="None"):
        env.step(1)
    assert env.history == "bp"  # none of the bad steps changed anything
    with pytest.raises(InvalidArgumentError, match="finished"):
        kuhn_poker.payoff((0, 1), "pb")


# ------------------------------------------------------------------ exact values
@pytest.mark.parametrize("alpha", [0.0, 1 / 12, 1 / 6, 0.25, 1 / 3])
def test_nash_family_has_value_minus_one_eighteenth_and_zero_exploitability(alpha):
    pi0, pi1 = nash_equilibrium(alpha)
    assert expected_payoff(pi0, pi1) == pytest.approx(-1 / 18, abs=1e-12) == GAME_VALUE
    assert exploitability(pi0, pi1) == pytest.approx(0.0, abs=1e-12)
    assert nash_conv(pi0, pi1) == pytest.approx(0.0, abs=1e-12)
    # Def. 4.1 at eps = 1: each side's worst case is exactly the game value
    assert one_sided_exploitability(pi0) == pytest.approx(1 / 18, abs=1e-12)
    assert one_sided_exploitability(pi1) == pytest.approx(-1 / 18, abs=1e-12)
    assert pi0.action_probs(2, "").tolist() == pytest.approx([1 - 3 * alpha, 3 * alpha])
    assert pi0.action_probs(1, "pb")[1] == pytest.approx(alpha + 1 / 3)


def test_off_family_policy_is_exploitable():
    pi0, pi1 = nash_equilibrium(0.0)
    bets = pi0.bet_probabilities()
    bets[INFO_STATES[0].index((0, ""))] = 0.5  # bluffing J too often: outside alpha <= 1/3
    assert exploitability(TabularPolicy.from_bet_probabilities(0, bets), pi1) > 0.01


def test_uniform_play_exact_values():
    u0, u1 = TabularPolicy.uniform(0), TabularPolicy.uniform(1)
    assert expected_payoff(u0, u1) == pytest.approx(1 / 8, abs=1e-15)
    assert best_response(u1).value == pytest.approx(1 / 2, abs=1e-15)  # player_0's BR
    assert best_response(u0).value == pytest.approx(5 / 12, abs=1e-15)  # player_1's BR
    assert exploitability(u0, u1) == pytest.approx(11 / 24, abs=1e-15)  # 0.458333...
    assert nash_conv(u0, u1) == pytest.approx(11 / 12, abs=1e-15)


def _openspiel_policy(game, *policies):
    from open_spiel.python import policy as os_policy

    table = os_policy.TabularPolicy(game)
    filled = 0
    for pol in policies:
        for (card, history), probs in pol.to_dict().items():
            table.action_probability_array[table.state_lookup[openspiel_key(card, history)]] = probs
            filled += 1
    assert filled == len(table.state_lookup) == 12  # every information state mapped
    return table


def test_cross_check_with_openspiel():
    pyspiel = pytest.importorskip("pyspiel")
    from open_spiel.python.algorithms import best_response as os_br
    from open_spiel.python.algorithms import expected_game_score
    from open_spiel.python.algorithms import exploitability as os_expl

    game = pyspiel.load_game("kuhn_poker")
    rng = np.random.default_rng(2024)
    profiles = [(TabularPolicy.uniform(0), TabularPolicy.uniform(1)), nash_equilibrium(0.2)]
    profiles += [
        (random_policy(0, rng, i % 2), random_policy(1, rng, i % 3 == 0)) for i in range(8)
    ]
    for pi0, pi1 in profiles:
        table = _openspiel_policy(game, pi0, pi1)
        root = game.new_initial_state()
        values = expected_game_score.policy_value(root, [table, table])
        assert expected_payoff(pi0, pi1) == pytest.approx(values[0], abs=1e-12)
        br0 = os_br.BestResponsePolicy(game, 0, table).value(game.new_initial_state())
        br1 = os_br.BestResponsePolicy(game, 1, table).value(game.new_initial_state())
        assert best_response(pi1).value == pytest.approx(br0, abs=1e-12)
        assert best_response(pi0).value == pytest.approx(br1, abs=1e-12)
        assert exploitability(pi0, pi1) == pytest.approx(
            os_expl.exploitability(game, table), abs=1e-12
        )
        assert nash_conv(pi0, pi1) == pytest.approx(os_expl.nash_conv(game, table), abs=1e-12)
    assert len(profiles) == 10


def _value_for(responder, opponent, executed):
    v0 = (
        expected_payoff(executed, opponent)
        if responder == 0
        else expected_payoff(opponent, executed)
    )
    return v0 if responder == 0 else -v0


@pytest.mark.parametrize("responder", [0, 1])
def test_best_response_beats_every_pure_policy(responder):
    rng = np.random.default_rng(responder)
    compared = 0
    for trial in range(4):
        opponent = random_policy(1 - responder, rng, sparse=trial % 2 == 1)
        benign = random_policy(responder, rng)
        for eps in (1.0, 0.7, 0.3):
            br = best_response(opponent, epsilon=eps, benign=benign)
            assert br.policy.is_deterministic() and br.epsilon == eps
            assert br.executed.probs == pytest.approx(
                (1 - eps) * benign.probs + eps * br.policy.probs
            )
            assert _value_for(responder, opponent, br.executed) == pytest.approx(
                br.value, abs=1e-12
            )
            brute = [
                _value_for(responder, opponent, mix(benign, pure, eps))
                for pure in all_deterministic_policies(responder)
            ]
            assert len(brute) == 64
            assert br.value >= max(brute) - 1e-12
            assert br.value == pytest.approx(max(brute), abs=1e-12)  # a pure attacker is optimal
            compared += len(brute)
    assert compared == 4 * 3 * 64


def test_partial_control_limits_and_monotone_in_epsilon():
    rng = np.random.default_rng(5)
    for _ in range(5):
        victim, benign = random_policy(0, rng), random_policy(1, rng)
        zero = best_response(victim, epsilon=0.0, benign=benign)
        assert zero.value == pytest.approx(-expected_payoff(victim, benign), abs=1e-15)
        assert zero.executed.probs.tolist() == benign.probs.tolist()
        full, full_with_benign = (
            best_response(victim),
            best_response(victim, epsilon=1, benign=benign),
        )
        assert full_with_benign.value == pytest.approx(full.value, abs=1e-15)
        assert full_with_benign.policy.probs.tolist() == full.policy.probs.tolist()
        values = [
            one_sided_exploitability(victim, epsilon=e, benign=benign)
            for e in np.linspace(0, 1, 11)
        ]
        assert values[0] == pytest.approx(zero.value) and values[-1] == pytest.approx(full.value)
        assert all(b >= a - 1e-12 for a, b in itertools.pairwise(values))  # more budget never hurts


def test_min_oracle_value_is_minus_the_victim_value():
    rng = np.random.default_rng(9)
    victim, benign = random_policy(1, rng), random_policy(0, rng)
    br = best_response(victim, epsilon=0.4, benign=benign)
    assert expected_payoff(br.executed, victim) == pytest.approx(br.value, abs=1e-15)
    assert one_sided_exploitability(victim, epsilon=0.4, benign=benign) == br.value
    # the action values pick the attacker's actions
    assert (
        np.argmax(br.action_values, axis=1).tolist() == np.argmax(br.policy.probs, axis=1).tolist()
    )


# ------------------------------------------------------------------ the env agrees with the tools
def _play(env, agents, hands, seed=0):
    """Play ``hands`` hands through an AEC env; return player_0's payoffs and steps taken."""
    payoffs, steps = [], 0
    for hand in range(hands):
        env.reset(seed=seed if hand == 0 else None)
        for agent in env.agent_iter():
            obs, reward, term, trunc, _ = env.last()
            if term or trunc:
                if agent == "player_0":
                    payoffs.append(reward)
                env.step(None)
            else:
                env.step(agents[agent](obs))
            steps += 1
    return np.array(payoffs), steps


def test_monte_carlo_play_matches_exact_expected_payoff():
    rng = np.random.default_rng(11)
    pi0, pi1 = random_policy(0, rng), random_policy(1, rng)
    agents = {"player_0": TabularAgent(pi0, seed=1), "player_1": TabularAgent(pi1, seed=2)}
    payoffs, steps = _play(kuhn_poker.env(), agents, 20_000)
    assert len(payoffs) == 20_000 and steps >= 20_000 * 4  # >= 2 actions + 2 dead steps a hand
    assert set(np.unique(payoffs)) <= {-2.0, -1.0, 1.0, 2.0}
    exact = expected_payoff(pi0, pi1)
    stderr = payoffs.std(ddof=1) / np.sqrt(len(payoffs))
    assert 0.005 < stderr < 0.015
    assert abs(payoffs.mean() - exact) < 4 * stderr  # fails by chance with prob. ~6e-5


def test_partial_control_wrapper_matches_the_exact_mixture():
    """Liu et al. (ICLR 2024)'s attack through ``partial_control_aec_v0``: benign player_1 and the exact
    min-oracle attacker embedded, eps = 0.5; the victim player_0 plays from outside."""
    rng = np.random.default_rng(12)
    victim, benign = random_policy(0, rng), random_policy(1, rng)
    br = best_response(victim, epsilon=0.5, benign=benign)
    env = partial_control_aec_v0(
        kuhn_poker.env(),
        "player_1",
        0.5,
        benign_policy=TabularAgent(benign, seed=3),
        adversary=TabularAgent(br.policy, seed=4),
    )
    payoffs, _ = _play(env, {"player_0": TabularAgent(victim, seed=5)}, 8_000)
    assert len(payoffs) == 8_000
    stderr = payoffs.std(ddof=1) / np.sqrt(len(payoffs))
    assert abs(payoffs.mean() - (-br.value)) < 4 * stderr


# ------------------------------------------------------------------ representation and errors
def test_policy_conversions_round_trip():
    rng = np.random.default_rng(3)
    for player in (0, 1):
        pol = random_policy(player, rng)
        assert TabularPolicy(player, pol.to_array()).probs.tolist() == pol.probs.tolist()
        assert TabularPolicy.from_dict(player, pol.to_dict()).probs.tolist() == pol.probs.tolist()
        again = TabularPolicy.from_bet_probabilities(player, pol.bet_probabilities())
        assert again.probs == pytest.approx(pol.probs, abs=1e-15)
        for k, (card, history) in enumerate(INFO_STATES[player]):
            assert pol.action_probs(card, history).tolist() == pol.probs[k].tolist()
            assert openspiel_key(card, history) == f"{card}{history}"
        with pytest.raises(ValueError):
            pol.probs[0, 0] = 0.3  # read-only
        assert TabularPolicy.uniform(player).probs.tolist() == [[0.5, 0.5]] * 6
    assert INFO_STATES[0] == ((0, ""), (0, "pb"), (1, ""), (1, "pb"), (2, ""), (2, "pb"))
    assert INFO_STATES[1] == ((0, "p"), (0, "b"), (1, "p"), (1, "b"), (2, "p"), (2, "b"))
    assert len({p.bet_probabilities().tobytes() for p in all_deterministic_policies(1)}) == 64


def test_tabular_agent_samples_its_policy():
    pol = TabularPolicy.from_bet_probabilities(1, [0.0, 1.0, 0.25, 0.5, 1.0, 0.0])
    agent = TabularAgent(pol, seed=0)
    env = kuhn_poker.raw_env()
    env.reset(options={"cards": (2, 1)})
    env.step(0)  # player_1 holds Q after a check: bets with probability 0.25
    draws = [agent(env.observe("player_1")) for _ in range(4000)]
    assert set(draws) == {0, 1} and abs(np.mean(draws) - 0.25) < 0.03
    with pytest.raises(InvalidArgumentError, match="player 0"):
        agent(env.observe("player_0"))


BAD_PROBS = [
    np.full((6, 2), 0.5)[:5],
    np.full((12,), 0.5),
    np.array([[1.5, -0.5]] * 6),
    np.array([[0.6, 0.6]] * 6),
    np.array([[np.nan, 1.0]] * 6),
    "uniform",
]


@pytest.mark.parametrize("probs", BAD_PROBS)
def test_bad_probs_raise(probs):
    with pytest.raises(InvalidArgumentError, match="probs"):
        TabularPolicy(0, probs)


def test_exact_tool_errors():
    u0, u1 = TabularPolicy.uniform(0), TabularPolicy.uniform(1)
    for player in (2, -1, True, "0", 0.0):
        with pytest.raises(InvalidArgumentError, match="player"):
            TabularPolicy.uniform(player)
    with pytest.raises(InvalidArgumentError, match="bets"):
        TabularPolicy.from_bet_probabilities(0, [0.5] * 5)
    with pytest.raises(InvalidArgumentError, match="bets"):
        TabularPolicy.from_bet_probabilities(0, [1.5] * 6)
    with pytest.raises(InvalidArgumentError, match="actions"):
        TabularPolicy.deterministic(0, [0, 1, 2, 0, 0, 0])
    with pytest.raises(InvalidArgumentError, match="information states"):
        TabularPolicy.from_dict(1, u0.to_dict())  # player 0's keys for player 1
    with pytest.raises(InvalidArgumentError, match="information state"):
        u0.action_probs(0, "p")  # player_1's history
    with pytest.raises(InvalidArgumentError, match="information state"):
        openspiel_key(3, "")
    with pytest.raises(InvalidArgumentError, match="policy_0"):
        expected_payoff(u1, u0)
    with pytest.raises(InvalidArgumentError, match="policy_1"):
        exploitability(u0, "uniform")
    with pytest.raises(InvalidArgumentError, match="benign"):
        best_response(u0, epsilon=0.5)  # eps < 1 needs the benign policy
    with pytest.raises(InvalidArgumentError, match="benign"):
        best_response(u0, epsilon=0.5, benign=u0)  # the victim's seat, not the attacker's
    for eps in (-0.1, 1.1, float("nan"), "half"):
        with pytest.raises(InvalidArgumentError, match="epsilon"):
            best_response(u0, epsilon=eps, benign=u1)
        with pytest.raises(InvalidArgumentError, match="epsilon"):
            mix(u1, u1, eps)
    with pytest.raises(InvalidArgumentError, match="player"):
        mix(u0, u1, 0.5)
    for alpha in (-0.01, 0.34):
        with pytest.raises(InvalidArgumentError, match="alpha"):
            nash_equilibrium(alpha)
    with pytest.raises(InvalidArgumentError, match="observation"):
        decode_observation(np.zeros(11))
    with pytest.raises(InvalidArgumentError, match="policy"):
        TabularAgent(np.full((6, 2), 0.5))
