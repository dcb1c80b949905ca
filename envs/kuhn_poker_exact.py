"""Exact tools for Kuhn poker: tabular policies, expected payoffs, best responses, exploitability.

Pure Python/numpy companions of `adv_envs.kuhn_poker` for Liu et al. (ICLR 2024),
"Rethinking Adversarial Policies": Algorithm 1's min oracle for Kuhn poker is
"achieved through game tree search" (Sec. 7), i.e. the attacker's exact best response
under partial control, and Fig. 2 reports the victim's exploitability (Def. 4.1).

## Game and notation

A deal `d = (c0, c1)` is one of the 6 ordered pairs of distinct cards (0 = J, 1 = Q,
2 = K), each with probability 1/6. A betting history `h` is a string of `p` (action 0,
pass/check/fold) and `b` (action 1, bet/call); player `i = len(h) % 2` acts at a
non-terminal `h`. Player 0 acts at `h in {"", "pb"}`, player 1 at `h in {"p", "b"}`. The
information state of the acting player is `I = (own card, h)`; each player has 6 of them
(:data:`INFO_STATES`) and 2 actions at each. `u0(d, z)` is player 0's payoff at terminal
history `z` (:func:`adv_envs.kuhn_poker.payoff`), `u1 = -u0`.

## Tabular policies

A :class:`TabularPolicy` of player `i` is a `(6, 2)` array `pi[k, a]`: the probability of
action `a` at information state `INFO_STATES[i][k]` (rows are probability vectors). It
converts to and from a dict `{(card, history): [p_pass, p_bet]}` and the compact `(6,)`
array of bet probabilities. :class:`TabularAgent` samples it in the env (it is a policy
in the sense of `adv_wrappers.policies`, usable as a benign policy or an embedded
adversary of `partial_control_aec_v0`).

## Expected payoff

    V(pi0, pi1) = 1/6 * sum_d sum_z u0(d, z) * prod_{(h, a) prefix of z} pi_{P(h)}(a | c_{P(h)}, h)

computed by enumerating the 6 deals and the 9-node betting tree (:func:`expected_payoff`,
player 0's payoff; player 1's is its negative).

## Best response and the partial-control min oracle

The responder `r` plays against a fixed opponent policy `pi_o`. When an attacker controls
`r` only with probability `eps` (Liu et al., Eq. 3.2), `r` executes

    sigma_r = (1 - eps) * benign_r + eps * attacker_r

and the attacker maximises `r`'s expected payoff, i.e. minimises the victim's value
(Eq. 3.1; Algorithm 1, line 3: `argmin_{pi_alpha} V(pi_nu, (1 - eps) pi_hat_alpha +
eps pi_alpha)`). :func:`best_response` solves this by game-tree search over information
states. For `I = (c, h)` of `r` and action `a`, the counterfactual action value is

    q(I, a) = 1/6 * sum_{c' != c} reach_o(c', h) * v_r(d(c, c'), h + a)

where `reach_o(c', h)` is the product of the opponent's probabilities of its own actions
in `h` when it holds `c'`, and `v_r` is `r`'s expected payoff of the subtree with `r`
playing `sigma_r` at its later information states. Kuhn poker has perfect recall, so `r`'s
own probability of reaching `I` does not depend on `c'` and factors out; `r`'s value is
linear in `attacker_r(. | I)` with coefficient `eps * q(I, .)`. Processing `r`'s
information states deepest first (player 0: `"pb"` before `""`; player 1's `"p"` and
`"b"` are independent) and setting `attacker_r(I) = argmax_a q(I, a)` therefore gives an
optimal attacker, which is deterministic; ties go to pass (action 0). It is optimal at
every information state, including those `sigma_r` never reaches. `eps = 1` (no benign
policy needed) is the ordinary best response; at `eps = 0` the attacker is irrelevant
and the value is that of `benign_r`.

:class:`BestResponse` holds the attacker policy, the executed mixture `sigma_r`, the
action values `q` and `value`, the responder's expected payoff under `sigma_r`; the min
oracle's victim value is `-value`.

## Exploitability: two conventions

* OpenSpiel's (:func:`nash_conv`, :func:`exploitability`), for a policy profile
  `(pi0, pi1)`: `NashConv = sum_i [max_{pi_i'} u_i(pi_i', pi_-i) - u_i(pi0, pi1)]`, which
  in a zero-sum game is `BR_0(pi1) + BR_1(pi0)` (the two best-response values);
  `exploitability = NashConv / 2`, the *average* over the two players of the
  best-response gains. It is 0 exactly at a Nash equilibrium; uniform random play has
  exploitability 11/24.
* Liu et al.'s one-sided exploitability (Def. 4.1, :func:`one_sided_exploitability`) of
  one victim policy `pi_nu`: `Expl(pi_nu) = -min_{pi_alpha} V_nu(pi_nu, (1 - eps)
  pi_hat_alpha + eps pi_alpha)`, with `V_nu` the victim's expected payoff. It is the
  attacker's best-response value and is not centred: at `eps = 1` it is at least the
  victim's loss at equilibrium, `1/18` for player 0 and `-1/18` for player 1, with
  equality exactly for equilibrium strategies, and `exploitability(pi0, pi1) =
  (Expl(pi0) + Expl(pi1)) / 2`.

The game value for player 0 is :data:`GAME_VALUE` `= -1/18`; :func:`nash_equilibrium`
builds Kuhn's equilibrium family.

## The most robust victim and average policies

:func:`robust_optimum` solves ``min_{pi_nu} Expl(pi_nu)`` under eps-partial control exactly,
by one linear program in sequence form (the target of Liu et al.'s adversarial training,
Theorem 5.3). :class:`AveragePolicy` averages a player's policies in sequence form: the
behavioural policy that plays like drawing one of them per game (the output of fictitious
play and of Liu et al.'s Algorithms 1-2).

## OpenSpiel mapping

The same cards (0, 1, 2 = J, Q, K) and actions (0 = Pass, 1 = Bet) as OpenSpiel's
`kuhn_poker`; information state `(card, history)` is OpenSpiel's information-state string
`f"{card}{history}"` (:func:`openspiel_key`), e.g. player 1 holding K facing a bet is
`"2b"`. The tests cross-check payoffs, best-response values and exploitability against
`pyspiel`.

All inputs are validated: bad players, shapes, probabilities, epsilons or policies of the
wrong seat raise :class:`adv_wrappers.errors.InvalidArgumentError`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from adv_envs._checks import check_float
from adv_envs._errors import InvalidArgumentError
from adv_envs.kuhn_poker import ACTION_CHARS, DEALS, OBS_SIZE, is_terminal, payoff

PLAYER_HISTORIES: tuple[tuple[str, ...], tuple[str, ...]] = (("", "pb"), ("p", "b"))
"""The betting histories at which player 0 and player 1 act."""

INFO_STATES: tuple[tuple[tuple[int, str], ...], ...] = tuple(
    tuple((card, h) for card in range(3) for h in PLAYER_HISTORIES[player]) for player in (0, 1)
)
"""Per player, its 6 information states ``(card, history)``: the row order of policy arrays."""

_INDEX = tuple({info: k for k, info in enumerate(INFO_STATES[p])} for p in (0, 1))

GAME_VALUE = -1.0 / 18.0
"""Player 0's expected payoff at every Nash equilibrium of Kuhn poker."""

_ATOL = 1e-9  # tolerance of the row sums of a policy


def _check_player(player: Any) -> int:
    if (
        isinstance(player, bool)
        or not isinstance(player, (int, np.integer))
        or player not in (0, 1)
    ):
        raise InvalidArgumentError(f"player={player!r} is not allowed; use 0 or 1")
    return int(player)


def _check_info_state(player: int, card: Any, history: Any) -> int:
    key = (card, history)
    if not isinstance(history, str) or key not in _INDEX[player]:
        raise InvalidArgumentError(
            f"(card, history)={key!r} is not an information state of player {player}; "
            f"allowed: {list(INFO_STATES[player])}"
        )
    return _INDEX[player][key]


def openspiel_key(card: int, history: str) -> str:
    """OpenSpiel's ``kuhn_poker`` information-state string of ``(card, history)``."""
    player = len(history) % 2 if isinstance(history, str) else 0
    _check_info_state(player, card, history)
    return f"{card}{history}"


class TabularPolicy:
    """One player's policy: action probabilities at each of its 6 information states.

    Args:
        player: 0 or 1.
        probs: array-like of shape ``(6, 2)``; row ``k`` is ``[p_pass, p_bet]`` at
            ``INFO_STATES[player][k]``; entries finite and ``>= 0``, rows summing to 1
            (within 1e-9; stored as given, not renormalised).

    Raises:
        InvalidArgumentError: bad player, shape or probabilities.
    """

    __slots__ = ("_probs", "player")

    def __init__(self, player: int, probs: Any):
        self.player = _check_player(player)
        try:
            array = np.array(probs, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidArgumentError(
                f"probs must be a (6, 2) array of probabilities, got {probs!r}"
            ) from None
        if array.shape != (6, 2):
            raise InvalidArgumentError(f"probs must have shape (6, 2), got {array.shape}")
        if not np.all(np.isfinite(array)) or np.any(array < 0):
            raise InvalidArgumentError(f"probs must be finite and >= 0, got {array.tolist()}")
        sums = array.sum(axis=1)
        if np.any(np.abs(sums - 1.0) > _ATOL):
            raise InvalidArgumentError(
                f"each row of probs must sum to 1 (within {_ATOL}), got row sums {sums.tolist()}"
            )
        array.setflags(write=False)
        self._probs = array

    # ------------------------------------------------------------------ constructors
    @classmethod
    def uniform(cls, player: int) -> TabularPolicy:
        """Pass and bet with probability 1/2 each at every information state."""
        return cls(player, np.full((6, 2), 0.5))

    @classmethod
    def from_bet_probabilities(cls, player: int, bets: Any) -> TabularPolicy:
        """From the compact form: a ``(6,)`` array of bet probabilities in [0, 1]."""
        try:
            array = np.array(bets, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"bets must be a (6,) array, got {bets!r}") from None
        if array.shape != (6,) or not np.all(np.isfinite(array)):
            raise InvalidArgumentError(f"bets must be a finite (6,) array, got {bets!r}")
        if np.any((array < 0) | (array > 1)):
            raise InvalidArgumentError(f"bets must lie in [0, 1], got {array.tolist()}")
        return cls(player, np.stack([1.0 - array, array], axis=1))

    @classmethod
    def from_dict(cls, player: int, table: Mapping[tuple[int, str], Any]) -> TabularPolicy:
        """From ``{(card, history): [p_pass, p_bet]}`` with exactly the player's 6 keys."""
        player = _check_player(player)
        if not isinstance(table, Mapping) or set(table) != set(INFO_STATES[player]):
            got = sorted(table) if isinstance(table, Mapping) else table
            raise InvalidArgumentError(
                f"table must map exactly the information states {list(INFO_STATES[player])} "
                f"of player {player}; got {got!r}"
            )
        return cls(player, [table[info] for info in INFO_STATES[player]])

    @classmethod
    def deterministic(cls, player: int, actions: Any) -> TabularPolicy:
        """The pure policy playing ``actions[k]`` (0 or 1) at ``INFO_STATES[player][k]``."""
        array = np.asarray(actions)
        if array.shape != (6,) or not np.all(np.isin(array, (0, 1))):
            raise InvalidArgumentError(f"actions must be six 0/1 values, got {actions!r}")
        return cls.from_bet_probabilities(player, array.astype(np.float64))

    # ------------------------------------------------------------------ views
    @property
    def probs(self) -> np.ndarray:
        """The ``(6, 2)`` probabilities (read-only)."""
        return self._probs

    def to_array(self) -> np.ndarray:
        """A writable copy of the ``(6, 2)`` probabilities."""
        return self._probs.copy()

    def bet_probabilities(self) -> np.ndarray:
        """The compact form: the ``(6,)`` bet probabilities."""
        return self._probs[:, 1].copy()

    def to_dict(self) -> dict[tuple[int, str], np.ndarray]:
        """``{(card, history): array([p_pass, p_bet])}``."""
        return {info: self._probs[k].copy() for k, info in enumerate(INFO_STATES[self.player])}

    def action_probs(self, card: int, history: str) -> np.ndarray:
        """``[p_pass, p_bet]`` at information state ``(card, history)`` (read-only)."""
        return self._probs[_check_info_state(self.player, card, history)]

    def is_deterministic(self) -> bool:
        return bool(np.all((self._probs == 0) | (self._probs == 1)))

    def __repr__(self) -> str:
        return f"TabularPolicy(player={self.player}, bets={self._probs[:, 1].tolist()})"


def all_deterministic_policies(player: int) -> Iterator[TabularPolicy]:
    """The 2**6 = 64 pure policies of ``player``."""
    player = _check_player(player)
    for actions in itertools.product((0, 1), repeat=6):
        yield TabularPolicy.deterministic(player, actions)


def mix(benign: TabularPolicy, attacker: TabularPolicy, epsilon: float) -> TabularPolicy:
    """The executed policy ``(1 - epsilon) * benign + epsilon * attacker`` (Liu et al., Eq. 3.2)."""
    _check_policy(benign, "benign")
    _check_policy(attacker, "attacker")
    if benign.player != attacker.player:
        raise InvalidArgumentError(
            f"benign is player {benign.player}'s policy and attacker player {attacker.player}'s"
        )
    eps = check_float(epsilon, "epsilon", 0.0, 1.0)
    return TabularPolicy(benign.player, (1.0 - eps) * benign.probs + eps * attacker.probs)


def nash_equilibrium(alpha: float = 0.0) -> tuple[TabularPolicy, TabularPolicy]:
    """Kuhn's equilibrium family, ``alpha`` in [0, 1/3]: ``(player 0's, player 1's)``.

    Player 0 bets J with probability alpha, K with 3 alpha, never Q; after check-bet it
    folds J, calls with Q with probability alpha + 1/3 and always calls with K. Player 1
    (the same for every alpha) bets J after a check with probability 1/3, never Q, always
    K; facing a bet it folds J, calls with Q with probability 1/3, always calls with K.
    """
    a = check_float(alpha, "alpha", 0.0, 1.0 / 3.0)
    bets_0 = {(0, ""): a, (0, "pb"): 0.0, (1, ""): 0.0, (1, "pb"): a + 1 / 3, (2, ""): 3 * a}
    bets_0[(2, "pb")] = 1.0
    bets_1 = {(0, "p"): 1 / 3, (0, "b"): 0.0, (1, "p"): 0.0, (1, "b"): 1 / 3}
    bets_1.update({(2, "p"): 1.0, (2, "b"): 1.0})
    return (
        TabularPolicy.from_bet_probabilities(0, [bets_0[i] for i in INFO_STATES[0]]),
        TabularPolicy.from_bet_probabilities(1, [bets_1[i] for i in INFO_STATES[1]]),
    )


# ------------------------------------------------------------------ evaluation
def _check_policy(policy: Any, name: str, player: int | None = None) -> TabularPolicy:
    if not isinstance(policy, TabularPolicy):
        raise InvalidArgumentError(f"{name} must be a TabularPolicy, got {type(policy).__name__}")
    if player is not None and policy.player != player:
        raise InvalidArgumentError(
            f"{name} must be player {player}'s policy, got player {policy.player}'s"
        )
    return policy


def _budget_and_benign(
    epsilon: Any, benign: Any, player: int, who: str
) -> tuple[float, np.ndarray]:
    """The checked budget and the partially controlled ``player``'s benign probabilities
    (zeros when ``benign`` is None, allowed only at epsilon = 1, where it has weight 0)."""
    eps = check_float(epsilon, "epsilon", 0.0, 1.0)
    if benign is None:
        if eps < 1.0:
            raise InvalidArgumentError(
                f"epsilon={epsilon!r} < 1 needs {who}'s benign policy (benign=...)"
            )
        return eps, np.zeros((6, 2))
    return eps, _check_policy(benign, "benign", player).probs


def _subtree_value(cards: tuple[int, int], history: str, probs: tuple[np.ndarray, ...]) -> float:
    """Player 0's expected payoff from ``history`` on (``probs[i]``: player i's (6, 2) array)."""
    if is_terminal(history):
        return payoff(cards, history)
    player = len(history) % 2
    row = probs[player][_INDEX[player][(cards[player], history)]]
    return sum(
        float(row[a]) * _subtree_value(cards, history + ACTION_CHARS[a], probs)
        for a in (0, 1)
        if row[a] != 0  # skips impossible actions; a NaN row (a bug) would show in the result
    )


def _value_0(probs_0: np.ndarray, probs_1: np.ndarray) -> float:
    return sum(_subtree_value(d, "", (probs_0, probs_1)) for d in DEALS) / len(DEALS)


def expected_payoff(policy_0: TabularPolicy, policy_1: TabularPolicy) -> float:
    """Player 0's exact expected payoff ``V(pi0, pi1)`` (player 1's is its negative)."""
    _check_policy(policy_0, "policy_0", 0)
    _check_policy(policy_1, "policy_1", 1)
    return _value_0(policy_0.probs, policy_1.probs)


def _reach(policy: np.ndarray, player: int, card: int, history: str) -> float:
    """Probability that ``player`` holding ``card`` takes its own actions in ``history``."""
    out = 1.0
    for r in range(player, len(history), 2):
        out *= policy[_INDEX[player][(card, history[:r])], ACTION_CHARS.index(history[r])]
    return out


@dataclass(frozen=True)
class BestResponse:
    """The result of :func:`best_response` (see the module docstring for the math).

    Attributes:
        policy: the attacker's deterministic policy (the min oracle's ``pi_alpha``).
        executed: ``(1 - epsilon) * benign + epsilon * policy``, what the responder plays.
        value: the responder's exact expected payoff under ``executed`` against the
            opponent; the victim's value is ``-value``.
        action_values: ``(6, 2)`` counterfactual action values ``q(I, a)`` of the
            responder's information states (rows in ``INFO_STATES`` order; read-only).
        epsilon: the attack budget used.
    """

    policy: TabularPolicy
    executed: TabularPolicy
    value: float
    action_values: np.ndarray
    epsilon: float


def best_response(
    opponent: TabularPolicy, *, epsilon: float = 1.0, benign: TabularPolicy | None = None
) -> BestResponse:
    """Exact (partial-control) best response of the other player to ``opponent``.

    The responder is ``1 - opponent.player``. It executes ``(1 - epsilon) * benign +
    epsilon * pi`` and ``pi`` maximises its expected payoff (minimises the opponent's):
    Algorithm 1's min oracle of Liu et al. with the victim ``opponent``.

    Args:
        opponent: the fixed policy of the other player (the victim ``pi_nu``).
        epsilon: the attack budget eps_pi in [0, 1] (default 1: full control).
        benign: the responder's benign policy ``pi_hat_alpha``; required when
            ``epsilon < 1``, optional at ``epsilon = 1`` (where it has weight 0).

    Raises:
        InvalidArgumentError: ``opponent``/``benign`` not TabularPolicy, ``benign`` of the
            wrong player, epsilon not in [0, 1], or ``benign`` missing with epsilon < 1.
    """
    _check_policy(opponent, "opponent")
    responder = 1 - opponent.player
    eps, benign_probs = _budget_and_benign(epsilon, benign, responder, "the responder")
    sign = 1.0 if responder == 0 else -1.0
    attacker = np.zeros((6, 2))
    executed = np.full((6, 2), np.nan)  # filled deepest information state first
    q = np.zeros((6, 2))
    for history in sorted(PLAYER_HISTORIES[responder], key=len, reverse=True):
        for card in range(3):
            k = _INDEX[responder][(card, history)]
            for a in (0, 1):
                child = history + ACTION_CHARS[a]
                for opp_card in range(3):
                    if opp_card == card:
                        continue
                    weight = _reach(opponent.probs, opponent.player, opp_card, history)
                    if weight == 0:
                        continue
                    cards = (card, opp_card) if responder == 0 else (opp_card, card)
                    probs = (
                        (executed, opponent.probs) if responder == 0 else (opponent.probs, executed)
                    )
                    q[k, a] += weight * sign * _subtree_value(cards, child, probs) / len(DEALS)
            attacker[k, int(np.argmax(q[k]))] = 1.0  # ties: the first, pass
            executed[k] = (1.0 - eps) * benign_probs[k] + eps * attacker[k]
    policy = TabularPolicy(responder, attacker)
    executed_policy = TabularPolicy(responder, executed)
    pair = (executed, opponent.probs) if responder == 0 else (opponent.probs, executed)
    q.setflags(write=False)
    return BestResponse(policy, executed_policy, sign * _value_0(*pair), q, eps)


def nash_conv(policy_0: TabularPolicy, policy_1: TabularPolicy) -> float:
    """OpenSpiel's NashConv: the sum of the two players' best-response gains (>= 0)."""
    _check_policy(policy_0, "policy_0", 0)
    _check_policy(policy_1, "policy_1", 1)
    return best_response(policy_1).value + best_response(policy_0).value


def exploitability(policy_0: TabularPolicy, policy_1: TabularPolicy) -> float:
    """OpenSpiel's exploitability: ``nash_conv / 2``, 0 exactly at a Nash equilibrium."""
    return nash_conv(policy_0, policy_1) / 2.0


def one_sided_exploitability(
    victim: TabularPolicy, *, epsilon: float = 1.0, benign: TabularPolicy | None = None
) -> float:
    """Liu et al.'s Def. 4.1: ``-min_{pi_alpha} V_victim(victim, (1 - eps) benign + eps pi_alpha)``.

    ``benign`` is the attacked player's benign policy (required when epsilon < 1).
    """
    return best_response(victim, epsilon=epsilon, benign=benign).value


# ------------------------------------------------------------------ average policies
class AveragePolicy:
    """The running average of one player's policies, in sequence form.

    Playing ``pi_t`` for a uniformly drawn ``t`` of ``pi_1 .. pi_T`` (the mixture that
    fictitious play and the algorithms of Liu et al., Theorem 5.3, output) is the same, for
    every opponent, as the behavioural policy

        avg(a | I) = sum_t reach_t(I) pi_t(a | I) / sum_t reach_t(I)

    with ``reach_t(I)`` the player's own probability of reaching ``I`` under ``pi_t`` (Kuhn
    poker has perfect recall, so realization plans average linearly). Where no ``pi_t``
    reaches ``I``, the average is uniform. Its expected payoff against any opponent is the
    mean of the ``pi_t``'s.

    Args:
        player: 0 or 1.

    Attributes:
        count: policies added so far.
    """

    def __init__(self, player: int) -> None:
        self.player = _check_player(player)
        self.count = 0
        self._reach = np.zeros(6)
        self._weighted = np.zeros((6, 2))

    def add(self, policy: TabularPolicy) -> None:
        """Add one policy of the player (weight 1)."""
        probs = _check_policy(policy, "policy", self.player).probs
        reach = np.array([_reach(probs, self.player, c, h) for c, h in INFO_STATES[self.player]])
        self._reach += reach
        self._weighted += reach[:, None] * probs
        self.count += 1

    def policy(self) -> TabularPolicy:
        """The average so far.

        Raises:
            InvalidArgumentError: no policy added yet.
        """
        if self.count == 0:
            raise InvalidArgumentError("the average of no policies is undefined: add() one first")
        out = np.full((6, 2), 0.5)
        seen = self._reach > 0
        out[seen] = self._weighted[seen] / self._reach[seen, None]
        out[seen] /= out[seen].sum(axis=1, keepdims=True)  # rounding
        return TabularPolicy(self.player, out)

    def state_dict(self) -> dict[str, Any]:
        """A JSON-serializable state (floats round-trip exactly through ``json``)."""
        return {
            "player": self.player,
            "count": self.count,
            "reach": self._reach.tolist(),
            "weighted": self._weighted.tolist(),
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> AveragePolicy:
        """Inverse of :meth:`state_dict`.

        Raises:
            InvalidArgumentError: a malformed state.
        """
        try:
            out = cls(state["player"])
            reach = np.array(state["reach"], dtype=np.float64)
            weighted = np.array(state["weighted"], dtype=np.float64)
            count = state["count"]
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"not an AveragePolicy state: {exc!r}") from None
        ok = (
            reach.shape == (6,) and weighted.shape == (6, 2) and isinstance(count, int)
            and count >= 0 and np.all(np.isfinite(reach)) and np.all(reach >= 0)
            and np.all(np.isfinite(weighted)) and np.all(weighted >= 0)
        )  # fmt: skip
        if not ok:
            raise InvalidArgumentError("not an AveragePolicy state: bad shapes or values")
        out._reach, out._weighted, out.count = reach, weighted, count
        return out


# ------------------------------------------------------------------ the most robust victim
def _sequences(player: int) -> tuple[list[tuple[int, str, int]], dict[tuple[int, str], int]]:
    """``player``'s sequences ``(card, history, action)`` (index 0 is the empty sequence,
    stored as ``(-1, "", -1)``) and, per information state, the index of its parent."""
    seqs: list[tuple[int, str, int]] = [(-1, "", -1)]
    parent: dict[tuple[int, str], int] = {}
    for history in sorted(PLAYER_HISTORIES[player], key=len):
        for card in range(3):
            own = [history[r] for r in range(player, len(history), 2)]
            if own:  # the sequence of the player's previous action on this path
                prev = history[: len(history) - 2]
                parent[(card, history)] = seqs.index((card, prev, ACTION_CHARS.index(own[-1])))
            else:
                parent[(card, history)] = 0
            seqs.extend((card, history, a) for a in (0, 1))
    return seqs, parent


def _last_sequence(seqs: list[tuple[int, str, int]], player: int, card: int, z: str) -> int:
    acts = list(range(player, len(z), 2))
    if not acts:
        return 0
    r = acts[-1]
    return seqs.index((card, z[:r], ACTION_CHARS.index(z[r])))


@dataclass(frozen=True)
class RobustOptimum:
    """The result of :func:`robust_optimum`.

    Attributes:
        exploitability: ``min_{pi_nu} Expl(pi_nu)`` (Def. 4.1): the lowest exploitability
            any victim policy reaches under the given partial control.
        policy: a victim policy attaining it (behavioural form of the LP's realization
            plan; uniform at information states the policy never reaches).
        epsilon: the attack budget.
    """

    exploitability: float
    policy: TabularPolicy
    epsilon: float


def robust_optimum(
    victim: int, *, epsilon: float = 1.0, benign: TabularPolicy | None = None
) -> RobustOptimum:
    """The most robust victim policy under eps-partial control, by one linear program.

    Liu et al.'s target ``argmin_{pi_nu} Expl(pi_nu)`` (Def. 4.1, Theorem 5.3). In sequence
    form (Koller, Megiddo and von Stengel 1996) the victim's realization plan ``x`` and the
    attacked player's *executed* plan ``y`` enter the victim's expected payoff bilinearly,
    ``x^T M y``. Partial control restricts ``y`` to a polytope: at each information state
    ``I`` of the attacked player with parent sequence ``p(I)``,
    ``(1 - eps) b(I, a) y(p(I)) <= y(I, a) <= ((1 - eps) b(I, a) + eps) y(p(I))`` and
    ``sum_a y(I, a) = y(p(I))``, with ``b`` the benign policy. The attacker's minimum over
    this polytope is replaced by its LP dual, and the victim maximises the dual objective
    over its own plans: one LP (``scipy.optimize.linprog``, HiGHS), solved to ~1e-9.

    Args:
        victim: the victim's seat (0 or 1); the other player is partially controlled.
        epsilon: the attack budget in [0, 1].
        benign: the attacked player's benign policy (required when epsilon < 1).

    Returns:
        A :class:`RobustOptimum`. At ``epsilon = 1`` the exploitability is the game's
        value for the attacker: ``1/18`` for victim 0, ``-1/18`` for victim 1.

    Raises:
        InvalidArgumentError: bad victim, epsilon or benign policy (as :func:`best_response`).
        ImportError: scipy is not installed.
    """
    from scipy.optimize import linprog

    v = _check_player(victim)
    r = 1 - v
    eps, b = _budget_and_benign(epsilon, benign, r, "the attacked player")
    xs, x_parent = _sequences(v)
    ys, y_parent = _sequences(r)
    nx, ny = len(xs), len(ys)
    m = np.zeros((nx, ny))  # the victim's expected payoff is x^T m y
    sign = 1.0 if v == 0 else -1.0
    for cards in DEALS:
        for z in ("pp", "pbp", "pbb", "bp", "bb"):
            i = _last_sequence(xs, v, cards[v], z)
            j = _last_sequence(ys, r, cards[r], z)
            m[i, j] += sign * payoff(cards, z) / len(DEALS)
    # the attacker's polytope: a_eq y = e_0 (y_0 = 1 and the flow constraints), g y <= 0
    a_eq = np.zeros((1 + len(y_parent), ny))
    a_eq[0, 0] = 1.0
    g = []
    for k, (info, par) in enumerate(y_parent.items(), start=1):
        card, history = info
        row = _INDEX[r][info]
        a_eq[k, par] = -1.0
        for a in (0, 1):
            j = ys.index((card, history, a))
            a_eq[k, j] = 1.0
            lo, hi = (1.0 - eps) * b[row, a], (1.0 - eps) * b[row, a] + eps
            low = np.zeros(ny)
            low[par], low[j] = lo, -1.0  # lo * y(p) - y(I, a) <= 0
            high = np.zeros(ny)
            high[par], high[j] = -hi, 1.0  # y(I, a) - hi * y(p) <= 0
            g.extend((low, high))
    g_arr = np.array(g)
    n_eq, n_in = a_eq.shape[0], g_arr.shape[0]
    # min_y (m^T x) . y  =  max_{lam, mu >= 0} lam_0  s.t.  a_eq^T lam - g^T mu = m^T x
    # variables [x (nx), lam (n_eq), mu (n_in)]; maximise lam_0
    cost = np.zeros(nx + n_eq + n_in)
    cost[nx] = -1.0
    eq_rows = [np.hstack([-m.T, a_eq.T, -g_arr.T])]
    eq_rhs = [np.zeros(ny)]
    x_eq = np.zeros((1 + len(x_parent), nx + n_eq + n_in))
    x_eq[0, 0] = 1.0
    for k, (info, par) in enumerate(x_parent.items(), start=1):
        x_eq[k, par] = -1.0
        for a in (0, 1):
            x_eq[k, xs.index((*info, a))] = 1.0
    eq_rows.append(x_eq)
    eq_rhs.append(np.eye(1, 1 + len(x_parent)).ravel())
    bounds = [(0, None)] * nx + [(None, None)] * n_eq + [(0, None)] * n_in
    res = linprog(
        cost, A_eq=np.vstack(eq_rows), b_eq=np.concatenate(eq_rhs), bounds=bounds,
        method="highs", options={"primal_feasibility_tolerance": 1e-10,
                                 "dual_feasibility_tolerance": 1e-10},
    )  # fmt: skip
    if res.status != 0:  # pragma: no cover - the LP is always feasible and bounded
        raise RuntimeError(f"the robust-optimum LP failed: {res.message}")
    x = res.x[:nx]
    probs = np.full((6, 2), 0.5)
    for info, par in x_parent.items():
        if x[par] > 1e-12:
            row = [max(x[xs.index((*info, a))], 0.0) for a in (0, 1)]
            total = sum(row)
            probs[_INDEX[v][info]] = [row[0] / total, row[1] / total]
    return RobustOptimum(float(-res.x[nx]), TabularPolicy(v, probs), eps)


# ------------------------------------------------------------------ playing in the env
def observation_vector(player: int, card: int, history: str) -> np.ndarray:
    """The ``kuhn_poker`` observation vector (``obs["observation"]``, float32 ``(11,)``) of
    ``player`` holding ``card`` at ``history``: the inverse of :func:`decode_observation`.

    Raises:
        InvalidArgumentError: ``(card, history)`` is not an information state of ``player``.
    """
    p = _check_player(player)
    _check_info_state(p, card, history)
    out = np.zeros(OBS_SIZE, np.float32)
    out[p] = 1.0
    out[2 + card] = 1.0
    for r, char in enumerate(history):
        out[5 + 2 * r + ACTION_CHARS.index(char)] = 1.0
    return out


def decode_observation(observation: Any) -> tuple[int, int, str]:
    """``(seat, card, history)`` from a ``kuhn_poker`` observation (dict or its vector)."""
    vector = observation["observation"] if isinstance(observation, Mapping) else observation
    v = np.asarray(vector)
    bad = InvalidArgumentError(f"not a kuhn_poker observation vector: {vector!r}")
    if v.shape != (11,) or not np.all((v == 0) | (v == 1)):
        raise bad
    if v[0:2].sum() != 1 or v[2:5].sum() != 1:
        raise bad
    history = ""
    for r in range(3):
        pair = v[5 + 2 * r : 7 + 2 * r]
        if pair.sum() == 0:
            if v[7 + 2 * r :].any():
                raise bad
            break
        if pair.sum() != 1:
            raise bad
        history += ACTION_CHARS[int(pair[1])]
    return int(np.argmax(v[0:2])), int(np.argmax(v[2:5])), history


class TabularAgent:
    """A :class:`TabularPolicy` acting in the env: ``action = agent(observation)``.

    Samples with its own RNG (one uniform draw per decision: bet iff ``u < p_bet``), so
    play is reproducible from ``seed``. ``reset()`` does nothing (the RNG continues), so
    the wrappers' per-episode reset keeps hands independent.

    Raises:
        InvalidArgumentError: an observation of the other seat, or at a history where
            this player does not act.
    """

    def __init__(self, policy: TabularPolicy, seed: int | None = None):
        self.policy = _check_policy(policy, "policy")
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        pass

    def __call__(self, observation: Any) -> int:
        seat, card, history = decode_observation(observation)
        if seat != self.policy.player:
            raise InvalidArgumentError(
                f"player {self.policy.player}'s policy got an observation of player {seat}"
            )
        p_bet = self.policy.action_probs(card, history)[1]
        return int(self.rng.random() < p_bet)


__all__ = [
    "GAME_VALUE",
    "INFO_STATES",
    "PLAYER_HISTORIES",
    "AveragePolicy",
    "BestResponse",
    "RobustOptimum",
    "TabularAgent",
    "TabularPolicy",
    "all_deterministic_policies",
    "best_response",
    "decode_observation",
    "expected_payoff",
    "exploitability",
    "mix",
    "nash_conv",
    "nash_equilibrium",
    "observation_vector",
    "one_sided_exploitability",
    "openspiel_key",
    "robust_optimum",
]
