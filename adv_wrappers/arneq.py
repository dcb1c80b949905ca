"""The adversarially robust Nash equilibrium (ARNEQ) of small tabular Markov games: an exact
check of a joint policy, and Adversarially Robust Nash Q-learning.

Nika et al. (TMLR 2024), Sec. 3. In a Markov game with n players, at most k < n of them may
be corrupted at test time. Player i does not know which: Definition 2 asks that every
player's policy be a best response to the *worst case* over the subsets K of at most k other
players (``omega_i``) and over the corrupted players' policies (``pi_hat^i``), the others
playing the joint policy itself. With k = 0 this is the Nash equilibrium.

**What is computed, and how exactly.** Fix the joint policy and a player i. In every state
the adversary's choice, a subset K and the corrupted players' policies, enters the
objective linearly in omega_i and multilinearly in the corrupted players' (independent)
policies, so the worst case is attained by one subset and one pure joint action of it:
the adversary of player i has finitely many "columns" ``c = (K, a_K)`` per state, and
``K = {}`` (no corruption) is one of them.

* :func:`robust_values`: player i's value of the joint policy against its worst-case
  adversary (who may pick a different K and a_K in every state, as in Definition 2): a
  finite MDP for the adversary, solved *exactly* by policy iteration (linear solves).
* :func:`robust_best_values`: the value of player i's best robust policy, the others
  fixed: a zero-sum stochastic game between player i and its adversary, solved by policy
  iteration for player i (Hoffman and Karp: a linear program per state picks the greedy
  maximin policy, which is then evaluated exactly against its worst adversary) until no
  state improves by more than ``tol``.
* :func:`arneq_gains`: how much each player gains by deviating, per state and from the
  initial distribution: ``robust_best_values - robust_values`` (>= 0 up to rounding).
  The joint policy is an ARNEQ (Definition 2) iff every gain is 0: a policy is a best
  response iff it attains the optimal value in every state.
* :func:`robust_nash_q`: Adversarially Robust Nash Q-learning (Sec. 3.2, Eq. 2), with
  model-based (expected, synchronous) backups: every player keeps Q-values over joint
  actions, the stage ARNEQ of the Q-values at the next state gives its value, and the
  backups repeat until they change by less than ``tol``. The sampled form of Eq. 2 (one
  visited state-action per step, rates alpha_t) converges to the same fixed point under
  the paper's Assumptions 1-3 (Theorem 2); the expected form makes the run exact and
  reproducible.

**The stage-game solver** (:func:`stage_arneq`). Computing a general-sum equilibrium is hard
(the paper says so, citing Daskalakis et al.). The solver is exact for two classes:

* ``k = n - 1`` (e.g. 2 players, k = 1): the worst case of every player is that *all* the
  others are corrupted (the largest subset lets the adversary choose every other action
  jointly, which is never better for i than leaving some of them benign), so player i's
  stage policy is its maximin strategy against the others' joint pure actions, a linear
  program, whatever the others' benign policies. The stage ARNEQ is the profile of these.
* otherwise, *pure* stage ARNEQs: the pure joint actions are enumerated in lexicographic
  order and the first one at which every player's action attains its robust stage value
  (its maximin linear program against the columns above, the others' benign actions
  fixed at the profile) is returned. A stage game without a pure ARNEQ raises
  :class:`~adv_wrappers.errors.InvalidArgumentError`.

Games are :class:`TabularMarkovGame` arrays; policies are lists of ``(S, A_i)``
row-stochastic arrays. NumPy for everything, SciPy (``linprog``, HiGHS) for the linear
programs, imported when one is solved.

Example (the stag hunt of ``tests/test_arneq.py``: hunting the stag together pays more,
but the hare is safe from a corrupted partner):

    >>> import numpy as np
    >>> from adv_wrappers.arneq import TabularMarkovGame, arneq_gains, robust_nash_q
    >>> r = np.array([[6.0, 0.0], [3.0, 3.0]])  # player 0's stage payoff, stag = 0, hare = 1
    >>> rewards = np.stack([np.stack([r, np.ones((2, 2))]), np.stack([r.T, np.ones((2, 2))])])
    >>> p = np.zeros((2, 2, 2, 2)); p[0, :, :, 0] = 1; p[0, 0, 0] = [0, 1]; p[1, :, :, 0] = 1
    >>> game = TabularMarkovGame(rewards, p, gamma=0.9, initial=[1.0, 0.0])
    >>> stag = [np.array([[1.0, 0.0], [1.0, 0.0]])] * 2  # the naive Nash equilibrium
    >>> gains = arneq_gains(game, stag, k=0)["gain"]  # no corruption: a Nash equilibrium
    >>> [round(float(g), 9) for g in gains]
    [0.0, 0.0]
    >>> [round(float(g), 9) for g in arneq_gains(game, stag, k=1)["gain"]]  # not robust
    [30.0, 30.0]
    >>> result = robust_nash_q(game, k=1)
    >>> result["policy"][0][0].round(6).tolist()  # the hare, in the hunting state
    [0.0, 1.0]
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from adv_wrappers.errors import InvalidArgumentError

__all__ = [
    "TabularMarkovGame",
    "arneq_gains",
    "robust_best_values",
    "robust_nash_q",
    "robust_values",
    "stage_arneq",
]

_ATOL = 1e-9


@dataclass(frozen=True)
class TabularMarkovGame:
    """A finite discounted Markov game (Nika et al. (TMLR 2024), Sec. 2.1).

    Args:
        rewards: ``(n, S, A_1, ..., A_n)``: ``rewards[i, s, a]`` is player i's reward.
        transitions: ``(S, A_1, ..., A_n, S)``: ``transitions[s, a, s']`` = P(s' | s, a).
        gamma: the discount factor, in [0, 1).
        initial: the initial state distribution ``(S,)`` (default: uniform).

    Raises:
        InvalidArgumentError: shapes that do not fit, non-finite entries, transition rows
            that are not probability vectors, a gamma outside [0, 1), a bad ``initial``.
    """

    rewards: np.ndarray
    transitions: np.ndarray
    gamma: float
    initial: np.ndarray | None = None

    def __post_init__(self) -> None:
        rewards = np.asarray(self.rewards, dtype=np.float64)
        transitions = np.asarray(self.transitions, dtype=np.float64)
        if rewards.ndim < 3 or rewards.shape[0] != rewards.ndim - 2:
            raise InvalidArgumentError(
                f"rewards must have shape (n, S, A_1, ..., A_n); got {rewards.shape}"
            )
        n, num_states = rewards.shape[0], rewards.shape[1]
        if transitions.shape != (*rewards.shape[1:], num_states):
            raise InvalidArgumentError(
                f"transitions must have shape (S, A_1, ..., A_n, S) = "
                f"{(*rewards.shape[1:], num_states)}; got {transitions.shape}"
            )
        if not (np.isfinite(rewards).all() and np.isfinite(transitions).all()):
            raise InvalidArgumentError("rewards and transitions must be finite")
        if (transitions < 0).any() or not np.allclose(transitions.sum(-1), 1.0, atol=_ATOL):
            raise InvalidArgumentError(
                "transitions[s, a] must be probability vectors (entries >= 0, sum 1)"
            )
        gamma = self.gamma
        if isinstance(gamma, bool) or not isinstance(gamma, int | float) or not 0 <= gamma < 1:
            raise InvalidArgumentError(f"gamma must be a number in [0, 1); got {gamma!r}")
        if self.initial is None:
            initial = np.full(num_states, 1.0 / num_states)
        else:
            initial = np.asarray(self.initial, dtype=np.float64)
            if (
                initial.shape != (num_states,)
                or (initial < 0).any()
                or not np.isclose(initial.sum(), 1.0, atol=_ATOL)
            ):
                raise InvalidArgumentError(
                    f"initial must be a probability vector over the {num_states} states; "
                    f"got {self.initial!r}"
                )
        if n < 1:
            raise InvalidArgumentError("a game needs at least one player")
        object.__setattr__(self, "rewards", rewards)
        object.__setattr__(self, "transitions", transitions)
        object.__setattr__(self, "gamma", float(gamma))
        object.__setattr__(self, "initial", initial)

    @property
    def num_players(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def num_states(self) -> int:
        return int(self.rewards.shape[1])

    @property
    def num_actions(self) -> tuple[int, ...]:
        return tuple(int(a) for a in self.rewards.shape[2:])


def _check_k(game: TabularMarkovGame, k: Any) -> int:
    n = game.num_players
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 <= k < n:
        raise InvalidArgumentError(f"k must be an int in [0, {n - 1}] (k < n = {n}); got {k!r}")
    return int(k)


def _check_policy(game: TabularMarkovGame, policy: Any) -> list[np.ndarray]:
    n, num_states = game.num_players, game.num_states
    if not isinstance(policy, Sequence) or len(policy) != n:
        raise InvalidArgumentError(
            f"policy must be a list of {n} arrays (S, A_i), one per player; got {policy!r}"
        )
    out = []
    for i, (pi, a) in enumerate(zip(policy, game.num_actions, strict=True)):
        pi = np.asarray(pi, dtype=np.float64)
        if pi.shape != (num_states, a):
            raise InvalidArgumentError(
                f"policy[{i}] must have shape (S, A_{i}) = {(num_states, a)}; got {pi.shape}"
            )
        if (
            not np.isfinite(pi).all()
            or (pi < -_ATOL).any()
            or not np.allclose(pi.sum(-1), 1.0, atol=_ATOL)
        ):
            raise InvalidArgumentError(f"policy[{i}]'s rows must be probability vectors")
        out.append(pi)
    return out


def _subsets(n: int, i: int, k: int) -> list[tuple[int, ...]]:
    """N_i: the subsets of the other players with at most k members (the empty one first)."""
    others = [j for j in range(n) if j != i]
    return [K for m in range(k + 1) for K in itertools.combinations(others, m)]


def _columns(
    game: TabularMarkovGame, policy: list[np.ndarray], i: int, k: int, s: int, table: np.ndarray
) -> tuple[np.ndarray, list[tuple[tuple[int, ...], tuple[int, ...]]]]:
    """``table`` ``(A_1, ..., A_n, *rest)`` at state s -> ``(A_i, C, *rest)``: for every
    adversary column ``(K, a_K)``, the expectation over the benign others' actions (their
    ``policy`` at s) with player i's action and a_K fixed; and the columns' labels."""
    n = game.num_players
    blocks, labels = [], []
    for K in _subsets(n, i, k):
        x = table
        # average out the benign others, last axis first so the indices stay valid
        for j in sorted((j for j in range(n) if j != i and j not in K), reverse=True):
            x = np.tensordot(x, policy[j][s], axes=([j], [0]))
        # remaining player axes: i and K, in increasing order; bring i to the front
        kept = sorted([i, *K])
        x = np.moveaxis(x, kept.index(i), 0)
        rest = x.shape[len(kept) :]
        x = x.reshape(x.shape[0], -1, *rest)
        blocks.append(x)
        sizes = [game.num_actions[j] for j in K]
        labels += [(K, a_K) for a_K in itertools.product(*[range(m) for m in sizes])]
    return np.concatenate(blocks, axis=1), labels


def _column_model(
    game: TabularMarkovGame, policy: list[np.ndarray], i: int, k: int
) -> tuple[list[np.ndarray], list[np.ndarray], list[list]]:
    """Per state: rewards ``(A_i, C)``, transitions ``(A_i, C, S)`` and column labels."""
    rewards, transitions, labels = [], [], []
    for s in range(game.num_states):
        r, lab = _columns(game, policy, i, k, s, game.rewards[i, s])
        p, _ = _columns(game, policy, i, k, s, game.transitions[s])
        rewards.append(r)
        transitions.append(p)
        labels.append(lab)
    return rewards, transitions, labels


def _evaluate_against_worst(
    own: np.ndarray, rewards: list[np.ndarray], transitions: list[np.ndarray], gamma: float
) -> tuple[np.ndarray, list[int]]:
    """Exact values of player i's policy ``own`` ``(S, A_i)`` against its worst adversary
    (policy iteration of the adversary's MDP) and the adversary's column per state."""
    num_states = len(rewards)
    r = [own[s] @ rewards[s] for s in range(num_states)]  # (C,)
    p = [np.tensordot(own[s], transitions[s], axes=([0], [0])) for s in range(num_states)]
    choice = [int(np.argmin(r[s])) for s in range(num_states)]
    for _ in range(10_000):
        rc = np.array([r[s][choice[s]] for s in range(num_states)])
        pc = np.stack([p[s][choice[s]] for s in range(num_states)])
        values = np.linalg.solve(np.eye(num_states) - gamma * pc, rc)
        better = []
        for s in range(num_states):
            q = r[s] + gamma * p[s] @ values
            best = int(np.argmin(q))
            # switch only on a strict improvement (ties keep the column: no cycling)
            better.append(best if q[best] < q[choice[s]] - 1e-12 else choice[s])
        if better == choice:
            return values, choice
        choice = better
    raise RuntimeError("policy iteration did not converge")  # pragma: no cover


def robust_values(game: TabularMarkovGame, policy: Any, k: int, player: int) -> np.ndarray:
    """``(S,)``: ``player``'s values of ``policy`` against its worst-case adversary (at most
    ``k`` corrupted others, chosen per state with their joint action), exactly."""
    k = _check_k(game, k)
    policy = _check_policy(game, policy)
    i = _check_player(game, player)
    rewards, transitions, _ = _column_model(game, policy, i, k)
    return _evaluate_against_worst(policy[i], rewards, transitions, game.gamma)[0]


def _check_player(game: TabularMarkovGame, player: Any) -> int:
    n = game.num_players
    if isinstance(player, bool) or not isinstance(player, int | np.integer) or not 0 <= player < n:
        raise InvalidArgumentError(f"player must be an int in [0, {n - 1}]; got {player!r}")
    return int(player)


def _maximin(matrix: np.ndarray) -> tuple[float, np.ndarray]:
    """``max_x min_c x @ matrix[:, c]`` over the simplex: its value and an optimal x."""
    from scipy.optimize import linprog  # type: ignore[import-untyped]

    rows, cols = matrix.shape
    if rows == 1:
        return float(matrix[0].min()), np.ones(1)
    # variables (x_1..x_rows, v): maximize v s.t. v - x @ matrix[:, c] <= 0, sum x = 1
    cost = np.zeros(rows + 1)
    cost[-1] = -1.0
    a_ub = np.hstack([-matrix.T, np.ones((cols, 1))])
    a_eq = np.hstack([np.ones((1, rows)), np.zeros((1, 1))])
    bounds = [(0.0, None)] * rows + [(None, None)]
    result = linprog(cost, A_ub=a_ub, b_ub=np.zeros(cols), A_eq=a_eq, b_eq=[1.0],
                     bounds=bounds, method="highs")  # fmt: skip
    if not result.success:  # pragma: no cover (a bounded, feasible LP)
        raise RuntimeError(f"the maximin linear program failed: {result.message}")
    x = np.clip(result.x[:rows], 0.0, None)
    x /= x.sum()
    return float((x @ matrix).min()), x


def robust_best_values(
    game: TabularMarkovGame, policy: Any, k: int, player: int, tol: float = 1e-12
) -> tuple[np.ndarray, np.ndarray]:
    """``player``'s best robust response to the others' ``policy``: ``(values (S,), its
    policy (S, A_i))``. Policy iteration for the maximizer of the zero-sum game against the
    worst-case adversary (Hoffman and Karp): the greedy maximin policy of the current values
    (a linear program per state), evaluated exactly against its worst adversary, until no
    state's maximin value exceeds the values by more than ``tol``. The values returned are
    the final policy's exact ones."""
    k = _check_k(game, k)
    policy = _check_policy(game, policy)
    i = _check_player(game, player)
    rewards, transitions, _ = _column_model(game, policy, i, k)
    num_states, gamma = game.num_states, game.gamma

    def greedy(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = [_maximin(rewards[s] + gamma * transitions[s] @ values) for s in range(num_states)]
        return np.array([v for v, _ in out]), np.stack([x for _, x in out])

    best = greedy(np.zeros(num_states))[1]
    for _ in range(10_000):
        values = _evaluate_against_worst(best, rewards, transitions, gamma)[0]
        improved, candidate = greedy(values)
        if (improved - values).max() <= tol:
            return values, best
        best = candidate
    raise RuntimeError("policy iteration did not converge")  # pragma: no cover


def arneq_gains(game: TabularMarkovGame, policy: Any, k: int, tol: float = 1e-12) -> dict:
    """How far ``policy`` is from an ARNEQ with at most ``k`` corrupted players.

    Returns:
        ``{"gain": (n,), "state_gains": (n, S), "robust_values": (n, S),
        "best_values": (n, S), "best_policies": [n x (S, A_i)]}``: per player, the values
        of its policy against its worst-case adversary, the values of its best robust
        response (the others fixed), and their difference per state and from
        ``game.initial``. ``policy`` is an ARNEQ (Definition 2; with ``k = 0`` a Nash
        equilibrium) iff every state gain is 0 (up to ``tol``'s rounding).
    """
    k = _check_k(game, k)
    policy = _check_policy(game, policy)
    robust = np.stack([robust_values(game, policy, k, i) for i in range(game.num_players)])
    bests = [robust_best_values(game, policy, k, i, tol) for i in range(game.num_players)]
    best = np.stack([b[0] for b in bests])
    state_gains = best - robust
    return {
        "gain": state_gains @ game.initial,
        "state_gains": state_gains,
        "robust_values": robust,
        "best_values": best,
        "best_policies": [b[1] for b in bests],
    }


def stage_arneq(q: np.ndarray, k: int) -> tuple[list[np.ndarray], np.ndarray]:
    """A stage ARNEQ (Definition 3) of the Q-values ``q`` ``(n, A_1, ..., A_n)`` of one
    state: the players' stage policies and each one's robust stage value (the module's
    solver classes: exact for ``k = n - 1``, pure equilibria otherwise)."""
    q = np.asarray(q, dtype=np.float64)
    n = q.shape[0]
    if q.ndim != n + 1:
        raise InvalidArgumentError(f"q must have shape (n, A_1, ..., A_n); got {q.shape}")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 <= k < n:
        raise InvalidArgumentError(f"k must be an int in [0, {n - 1}]; got {k!r}")
    actions = q.shape[1:]
    if k == n - 1:
        policies, values = [], np.empty(n)
        for i in range(n):
            matrix = np.moveaxis(q[i], i, 0).reshape(actions[i], -1)  # others jointly
            values[i], x = _maximin(matrix)
            policies.append(x)
        return policies, values
    game = TabularMarkovGame(q[:, None], np.ones((1, *actions, 1)), gamma=0.0)
    for profile in itertools.product(*[range(a) for a in actions]):
        pure = [np.eye(a)[[b]] for a, b in zip(actions, profile, strict=True)]
        values = np.empty(n)
        for i in range(n):
            rewards, _, _ = _column_model(game, pure, i, k)
            values[i] = (pure[i][0] @ rewards[0]).min()
            if values[i] < _maximin(rewards[0])[0] - 1e-9:
                break
        else:
            return [p[0] for p in pure], values
    raise InvalidArgumentError(
        f"this stage game has no pure ARNEQ with k={k} < n-1={n - 1}; the solver handles "
        "k = n - 1 exactly and pure stage equilibria otherwise"
    )


def robust_nash_q(
    game: TabularMarkovGame, k: int, tol: float = 1e-10, max_iterations: int = 100_000
) -> dict:
    """Adversarially Robust Nash Q-learning (Eq. 2) with expected, synchronous backups.

    Returns:
        ``{"q": (n, S, A_1, ..., A_n), "values": (n, S), "policy": [n x (S, A_i)],
        "iterations": int}``: the Q-values, each player's robust stage value and the stage
        ARNEQ policies of the last backup.
    """
    k = _check_k(game, k)
    q = np.zeros_like(game.rewards)
    for iteration in range(1, max_iterations + 1):
        policy, values = _stage_all(game, q, k)
        # Q_i(s, a) = R_i(s, a) + gamma sum_s' P(s' | s, a) ARNEQ(Q_i(s'))
        new = game.rewards + game.gamma * np.einsum("...t,it->i...", game.transitions, values)
        change = np.abs(new - q).max()
        q = new
        if change < tol:
            policy, values = _stage_all(game, q, k)
            return {"q": q, "values": values, "policy": policy, "iterations": iteration}
    raise RuntimeError(f"robust Nash-Q did not converge in {max_iterations} iterations")


def _stage_all(
    game: TabularMarkovGame, q: np.ndarray, k: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """The stage ARNEQ of every state: policies ``[n x (S, A_i)]`` and values ``(n, S)``."""
    n, num_states = game.num_players, game.num_states
    values = np.zeros((n, num_states))
    policy = [np.zeros((num_states, a)) for a in game.num_actions]
    for s in range(num_states):
        stage, values[:, s] = stage_arneq(q[:, s], k)
        for i in range(n):
            policy[i][s] = stage[i]
    return policy, values
