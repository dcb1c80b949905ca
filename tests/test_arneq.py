"""The ARNEQ tools (``adv_wrappers.arneq``): an exact check of Definition 2 and Adversarially
Robust Nash Q-learning (Nika et al. (TMLR 2024), Sec. 3), on games whose values are known in
closed form."""

from __future__ import annotations

import numpy as np
import pytest

from adv_wrappers.arneq import (
    TabularMarkovGame,
    arneq_gains,
    robust_nash_q,
    robust_values,
    stage_arneq,
)
from adv_wrappers.errors import InvalidArgumentError

GAMMA = 0.9


def stag_hunt(gamma=GAMMA):
    """Two hunters. In state 0 (hunting), both on the stag (action 0) pay 6 each and lead to
    state 1 (feasting: 1 each, whatever they do, then back to 0); the hare (action 1) pays 3
    whatever the partner does; a lone stag hunter gets 0. Every other joint action stays in 0.

    Naively, (stag, stag) is a Nash equilibrium: (6 + 0.9) / (1 - 0.81) = 36.32 from state 0
    against 35.68 for one hare, then back to the stag. Against a partner that may be
    corrupted (k = 1) the stag is worth 0 (the adversary hunts the hare forever), and the
    hare 3 / (1 - 0.9) = 30."""
    r = np.array([[6.0, 0.0], [3.0, 3.0]])
    feast = np.ones((2, 2))
    rewards = np.stack([np.stack([r, feast]), np.stack([r.T, feast])])
    p = np.zeros((2, 2, 2, 2))
    p[0, :, :, 0] = 1.0
    p[0, 0, 0] = [0.0, 1.0]
    p[1, :, :, 0] = 1.0
    return TabularMarkovGame(rewards, p, gamma=gamma, initial=[1.0, 0.0])


STAG = [np.array([[1.0, 0.0], [1.0, 0.0]])] * 2
HARE = [np.array([[0.0, 1.0], [1.0, 0.0]])] * 2


def test_the_naive_equilibrium_of_the_stag_hunt_is_not_robust():
    game = stag_hunt()
    naive = arneq_gains(game, STAG, k=0)
    v0 = (6 + GAMMA) / (1 - GAMMA**2)
    np.testing.assert_allclose(naive["robust_values"], [[v0, 1 + GAMMA * v0]] * 2, atol=1e-9)
    np.testing.assert_allclose(naive["gain"], [0.0, 0.0], atol=1e-9)  # a Nash equilibrium
    robust = arneq_gains(game, STAG, k=1)
    # the stag against the worst partner: 0 forever from state 0, 1 then 0 from state 1;
    # the best robust response: the hare, 30 from state 0 and 1 + 0.9 * 30 from state 1
    np.testing.assert_allclose(robust["robust_values"], [[0.0, 1.0]] * 2, atol=1e-9)
    np.testing.assert_allclose(robust["best_values"], [[30.0, 28.0]] * 2, atol=1e-9)
    np.testing.assert_allclose(robust["state_gains"], [[30.0, 27.0]] * 2, atol=1e-9)
    np.testing.assert_allclose(robust["gain"], [30.0, 30.0], atol=1e-9)
    np.testing.assert_allclose(robust["best_policies"][0][0], [0.0, 1.0], atol=1e-9)


def test_robust_nash_q_finds_the_robust_equilibrium_and_it_passes_the_check():
    game = stag_hunt()
    result = robust_nash_q(game, k=1)
    for i in range(2):
        np.testing.assert_allclose(result["policy"][i][0], [0.0, 1.0], atol=1e-9)  # the hare
    np.testing.assert_allclose(result["values"], [[30.0, 28.0]] * 2, atol=1e-8)
    check = arneq_gains(game, result["policy"], k=1)
    assert np.abs(check["state_gains"]).max() < 1e-8, check["state_gains"]
    np.testing.assert_allclose(check["robust_values"], result["values"], atol=1e-8)
    # naive Nash-Q (k = 0) picks (stag, stag): a Nash equilibrium, not an ARNEQ
    naive = robust_nash_q(game, k=0)
    np.testing.assert_allclose(naive["policy"][0][0], [1.0, 0.0])
    assert np.abs(arneq_gains(game, naive["policy"], k=0)["gain"]).max() < 1e-8
    np.testing.assert_allclose(arneq_gains(game, naive["policy"], k=1)["gain"], [30.0, 30.0])


def xnor_xor(gamma=0.9):
    """``adv/xnor_xor-v0`` as a tabular game (adv_envs.xnor_xor_exact): in s1 equal actions
    pay 1 and switch to s2; in s2 different actions pay 1, and equal ones switch to s1."""
    equal = np.eye(2)
    r = np.stack([equal, 1 - equal])
    p = np.zeros((2, 2, 2, 2))
    p[0, ..., 1], p[0, ..., 0] = equal, 1 - equal
    p[1, ..., 0], p[1, ..., 1] = equal, 1 - equal
    return TabularMarkovGame(np.stack([r, r]), p, gamma=gamma)


def test_robust_nash_q_on_xnor_xor_with_one_corrupted_agent():
    """With the partner possibly corrupted, each agent can only secure a coin flip: the
    uniform policy, worth 0.5 per step, 0.5 / (1 - 0.9) = 5 in both states (an adversary
    facing any other policy picks its more likely action's loser)."""
    game = xnor_xor()
    result = robust_nash_q(game, k=1)
    np.testing.assert_allclose(result["values"], np.full((2, 2), 5.0), atol=1e-8)
    for pi in result["policy"]:
        np.testing.assert_allclose(pi, np.full((2, 2), 0.5), atol=1e-9)
    check = arneq_gains(game, result["policy"], k=1)
    assert np.abs(check["state_gains"]).max() < 1e-8
    # the cooperative policy (equal in s1, different in s2) is worth 1 / (1 - 0.9) = 10
    # without corruption and 0 against a corrupted partner: its gain is the robust value, 5
    coop = [np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 1.0]])]
    np.testing.assert_allclose(robust_values(game, coop, 0, 0), [10.0, 10.0], atol=1e-9)
    np.testing.assert_allclose(robust_values(game, coop, 1, 0), [0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(arneq_gains(game, coop, k=1)["gain"], [5.0, 5.0], atol=1e-9)


def test_three_players_with_one_corrupted_use_pure_stage_equilibria():
    """One state, three players, k = 1 < n - 1: action 0 pays 2 when all three play it and 0
    otherwise, action 1 pays 1 always. Naively all-0 (the first pure profile) is an
    equilibrium; with one possibly corrupted partner only all-1 is."""
    a = np.arange(2)
    all0 = (a[:, None, None] == 0) & (a[None, :, None] == 0) & (a[None, None, :] == 0)
    rewards = np.stack([np.where(np.moveaxis(np.broadcast_to(a, (2, 2, 2)), -1, i) == 1, 1.0,
                                 2.0 * all0) for i in range(3)])[:, None]  # fmt: skip
    game = TabularMarkovGame(rewards, np.ones((1, 2, 2, 2, 1)), gamma=0.5)
    naive = robust_nash_q(game, k=0)
    assert [pi[0].tolist() for pi in naive["policy"]] == [[1.0, 0.0]] * 3
    np.testing.assert_allclose(naive["values"], [[4.0]] * 3)  # 2 / (1 - 0.5)
    robust = robust_nash_q(game, k=1)
    assert [pi[0].tolist() for pi in robust["policy"]] == [[0.0, 1.0]] * 3
    np.testing.assert_allclose(robust["values"], [[2.0]] * 3)
    assert np.abs(arneq_gains(game, robust["policy"], k=1)["gain"]).max() < 1e-9
    np.testing.assert_allclose(arneq_gains(game, naive["policy"], k=1)["gain"], [2.0] * 3)
    # matching pennies between players 0 and 1 (player 2 indifferent): no pure stage ARNEQ
    pennies = np.array([[1.0, 0.0], [0.0, 1.0]])
    q = np.stack([np.broadcast_to(pennies[:, :, None], (2, 2, 2)),
                  np.broadcast_to(1 - pennies[:, :, None], (2, 2, 2)), np.zeros((2, 2, 2))])  # fmt: skip
    with pytest.raises(InvalidArgumentError, match="no pure ARNEQ with k=1"):
        stage_arneq(q, 1)


def test_bad_games_policies_and_k_are_refused():
    game = stag_hunt()
    good_p = game.transitions
    cases = [
        (lambda: TabularMarkovGame(np.zeros((2, 2, 2)), good_p, 0.9), "rewards must have shape"),
        (lambda: TabularMarkovGame(game.rewards, good_p[..., :1], 0.9), "transitions must have"),
        (lambda: TabularMarkovGame(game.rewards, good_p * 2, 0.9), "probability vectors"),
        (lambda: TabularMarkovGame(game.rewards, good_p, 1.0), "gamma must be"),
        (lambda: TabularMarkovGame(game.rewards, good_p, 0.9, [1.0]), "initial must be"),
        (lambda: arneq_gains(game, STAG, k=2), r"k must be an int in \[0, 1\]"),
        (lambda: arneq_gains(game, STAG[:1], k=1), "policy must be a list of 2"),
        (lambda: arneq_gains(game, [np.ones((2, 2))] * 2, k=1), "probability vectors"),
        (lambda: robust_values(game, STAG, 1, 2), r"player must be an int in \[0, 1\]"),
    ]
    for build, match in cases:
        with pytest.raises(InvalidArgumentError, match=match):
            build()
    # HARE is a valid joint policy (and in state 1 any action is as good)
    assert np.abs(arneq_gains(game, HARE, k=1)["state_gains"]).max() < 1e-9
