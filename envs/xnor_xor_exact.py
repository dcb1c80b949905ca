"""Exact reference values of the XNOR/XOR game (``adv/xnor_xor-v0``): the yardsticks trainers
are judged by. NumPy only; every number is computed by a linear solve, an enumeration or
backward induction, never by sampling.

The game (He et al. (TMLR 2023), App. A-B, Eqs. 12-13; the iterated XNOR/XOR toy of Li et al.
(ICLR 2024), App. C.1).
Two agents, two states s1, s2 (indices 0, 1), two actions a1, a2 (indices 0, 1); the paper's
agents 1, 2 are ``agent_0``, ``agent_1`` of the env, and index 0 / 1 below. The shared
reward and the deterministic transition are::

    r(s1, a) = 1[a^1 == a^2]     s1 -> s2 if a^1 == a^2, else stay in s1
    r(s2, a) = 1[a^1 != a^2]     s2 -> s1 if a^1 == a^2, else stay in s2

Equal actions switch the state, different actions keep it.

Policies. A tabular policy of one agent is a 2x2 array ``pi[o, a] = pi(a | o)``: row = the
state the agent *observes* (s1, s2), columns = the probabilities of a1, a2. Rows must be
probability vectors (entries >= 0, sum 1 within 1e-9). :data:`COOPERATIVE`,
:data:`UNIFORM`, :data:`ALWAYS_EQUAL` and :data:`ROBUST_PI1` are the paper's policies.

State perturbation (He et al., SAMG). An adversary per agent i sees the true state s and
chooses the state the agent observes: ``chi[i][s, o] = chi_i(o | s)`` (a 2x2 row-stochastic
array; ``None`` for an agent means "no perturbation", the identity). The admissible set is
P_s = {s1, s2} (Eq. 14: any state may be perturbed to any state). Agent i then acts with the
*effective* policy::

    pi_eff_i(a | s) = sum_o chi_i(o | s) pi_i(a | o)

and, the agents' draws being independent given s, the probability of equal actions in s is
``q(s) = sum_a pi_eff_1(a | s) pi_eff_2(a | s)``. The true state is a Markov chain with
expected reward ``r(s1) = q(s1)``, ``r(s2) = 1 - q(s2)`` and transition matrix
``P = [[1 - q(s1), q(s1)], [q(s2), 1 - q(s2)]]``.

Functions:

* :func:`evaluate` - discounted infinite-horizon values ``V(s) = E[sum_t gamma^t r_t | s_0 = s]``
  with or without perturbation: the Bellman equation (He et al., Eq. 20)
  ``V = r + gamma P V``, solved exactly, ``V = (I - gamma P)^{-1} r``.
* :func:`worst_case_perturbation` - the optimal adversary of He et al., Prop. 4.1. With the
  agents' policies fixed, the joint adversary is an MDP on the true state whose actions are
  the pairs of perturbed states (rho^1, rho^2), with reward
  ``r_hat(s, rho) = -sum_a pi(a | rho) r(s, a)`` (Eq. 15) and transitions
  ``p_hat(s' | s, rho) = sum_a pi(a | rho) p(s' | s, a)`` (Eq. 16). A finite discounted MDP
  has an optimal policy that is deterministic, stationary and optimal from every state
  simultaneously (Puterman 2014, Ch. 6), so enumerating the 4^m deterministic
  stationary joint adversaries (m = number of attacked agents, at most 16) and solving each
  exactly is exact. A deterministic joint adversary is a product of one deterministic map
  per agent, so the optimum over joint (possibly correlated) adversaries is attained by
  independent per-agent adversaries chi_i, as in the SAMG.
* :func:`episodic_value` - finite-horizon values ``V_H(s) = E[sum_{t<H} gamma^t r_t | s_0 = s]``
  (default ``gamma = 1``: the undiscounted return of an ``H``-step episode), by backward
  induction ``V_0 = 0``, ``V_k = r_{H-k} + gamma P_{H-k} V_{k-1}``; policies may depend on the
  step (``(H, 2, 2)`` tables: row ``t`` is used at step ``t``, t = 0 is the first step).
* :func:`byzantine_best_response` - Li et al.'s threat on this game: one agent is taken over
  by a worst-case "ally" that sees the true state (and the step count) and knows the
  defender's policy; the defender plays its table. The adversary's problem is a
  finite-horizon MDP, solved by backward induction::

      W_0(s) = 0
      W_k(s) = min_b sum_a pi_d(a | s) [r(s, a, b) + gamma W_{k-1}(next(s, a, b))]

  (a = the defender's action, b = the adversary's). In this game the best response is
  the same at every step (proved in its docstring): a stationary ally is a worst case.

What the values say (gamma = 0.99, He et al., App. B): :data:`COOPERATIVE` is worth 100 in
both states clean and 0 against its worst-case perturbation; :data:`UNIFORM` is worth 50
whatever the adversary does; :data:`ALWAYS_EQUAL` is worth 1/(1-gamma^2) ~ 50.25 from s1 and
gamma/(1-gamma^2) ~ 49.75 from s2 under any perturbation; :data:`ROBUST_PI1` (App. C.4) is
worth 0 from s1 and 100 from s2 under any perturbation. App. B.3's three cases of
deterministic policies are exact for case (1) (equal actions in one state, different in the
other: worth 0 against the worst case) and, for cases (3) and (2), for the four policies
whose actions ignore the observation (:data:`ALWAYS_EQUAL`, :data:`ROBUST_PI1` and their
a1 <-> a2 mirrors). The four other deterministic policies that are equal (or different) in
both states, e.g. both agents "a1 in s1, a2 in s2", change their joint action when one
agent alone is shown the other state, so their worst case is 0 in both states, not what
B.3 says (the tests check all 16). Episodic, 100 steps (Li et al.):
the cooperative policy gets 100 clean; against a Byzantine worst-case ally every
deterministic defender gets 0 and the uniform defender gets 50 (no defender can get more:
the ally can always hold the expected reward of a step to at most 1/2).

Every function validates its inputs and raises
:class:`~adv_wrappers.errors.InvalidArgumentError` (a ``ValueError``) naming the argument.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from adv_envs._errors import InvalidArgumentError

S1, S2 = 0, 1
"""State indices (the one-hot observation of s1 is ``[1, 0]``, of s2 ``[0, 1]``)."""
A1, A2 = 0, 1
"""Action indices (the env's ``Discrete(2)`` actions)."""
N_STATES = N_ACTIONS = N_AGENTS = 2

PROB_TOL = 1e-9
"""Tolerance of the probability checks (negative entries and row sums)."""
TIE_TOL = 1e-9
"""Values closer than this are ties (broken as documented by each function)."""

# REWARD[s, a0, a1] and NEXT_STATE[s, a0, a1] (He et al., Eqs. 12-13)
_EQUAL = np.eye(2, dtype=bool)
REWARD = np.stack([_EQUAL, ~_EQUAL]).astype(np.float64)
REWARD.flags.writeable = False
NEXT_STATE = np.stack([np.where(_EQUAL, S2, S1), np.where(_EQUAL, S1, S2)]).astype(np.int64)
NEXT_STATE.flags.writeable = False


def _frozen(a: Any) -> np.ndarray:
    arr = np.array(a, dtype=np.float64)
    arr.flags.writeable = False
    return arr


COOPERATIVE = (_frozen([[1, 0], [1, 0]]), _frozen([[1, 0], [0, 1]]))
"""He et al., App. B.1: pi^1(a1|s1) = pi^1(a1|s2) = pi^2(a1|s1) = pi^2(a2|s2) = 1 (equal in s1,
different in s2): optimal without adversary (100 in both states at gamma = 0.99)."""
UNIFORM = (_frozen([[0.5, 0.5], [0.5, 0.5]]), _frozen([[0.5, 0.5], [0.5, 0.5]]))
"""He et al., App. B.2 (pi_2 of Thm. 4.3): every probability 0.5; 50 against any adversary."""
ALWAYS_EQUAL = (_frozen([[1, 0], [1, 0]]), _frozen([[1, 0], [1, 0]]))
"""He et al., App. B.3 case (3), both agents always a1: the state cycles s1, s2, s1, ... and
no perturbation changes that (the actions ignore the observation)."""
ROBUST_PI1 = (_frozen([[1, 0], [1, 0]]), _frozen([[0, 1], [0, 1]]))
"""He et al., App. B.5 / C.4, pi_1: pi^1(a1|s1) = pi^1(a1|s2) = pi^2(a2|s1) = pi^2(a2|s2) = 1
(always different): 0 from s1, 100 from s2, whatever the adversary does; the robust agent
policy when the episode always starts in s2."""


# ---------------------------------------------------------------------- validation
def check_policy(pi: Any, name: str = "pi", *, horizon: int | None = None) -> np.ndarray:
    """Validate a tabular policy; return it as a float64 array.

    ``pi[o, a]`` (shape ``(2, 2)``), or with ``horizon`` also a step-dependent table
    ``pi[t, o, a]`` (shape ``(horizon, 2, 2)``). Every row must be a probability vector.
    """
    try:
        arr = np.array(pi, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            f"{name} must be a 2x2 array of probabilities (row = observed state s1, s2; "
            f"columns = actions a1, a2), got {pi!r}"
        ) from None
    shapes = [(N_STATES, N_ACTIONS)]
    if horizon is not None:
        shapes.append((horizon, N_STATES, N_ACTIONS))
    if arr.shape not in shapes:
        allowed = " or ".join(str(s) for s in shapes)
        raise InvalidArgumentError(
            f"{name} has shape {arr.shape}; it must be {allowed} (row = observed state s1, s2; "
            "columns = probabilities of actions a1, a2)"
        )
    _check_rows(arr, name)
    return arr


def _check_rows(arr: np.ndarray, name: str) -> None:
    if not np.isfinite(arr).all():
        raise InvalidArgumentError(f"{name} has non-finite entries: {arr.tolist()}")
    if (arr < -PROB_TOL).any() or (arr > 1 + PROB_TOL).any():
        raise InvalidArgumentError(f"{name} has entries outside [0, 1]: {arr.tolist()}")
    sums = arr.sum(axis=-1)
    if (np.abs(sums - 1.0) > PROB_TOL).any():
        raise InvalidArgumentError(
            f"{name} has rows that do not sum to 1 (sums {sums.tolist()}): {arr.tolist()}"
        )


def check_chi(chi: Any) -> np.ndarray:
    """Validate a perturbation; return ``chi[i, s, o] = chi_i(o | s)`` (shape ``(2, 2, 2)``).

    Accepts ``None`` (no perturbation), an array of shape ``(2, 2, 2)``, or a pair with one
    entry per agent, each ``None`` (identity: that agent observes the true state) or a 2x2
    row-stochastic array ``chi_i[s, o]`` (row = true state, columns = observed state).
    """
    if chi is None:
        return np.stack([np.eye(2), np.eye(2)])
    if isinstance(chi, np.ndarray) and chi.ndim == 3:
        parts: Sequence[Any] = list(chi)
    elif isinstance(chi, (list, tuple)) and len(chi) == N_AGENTS:
        parts = chi
    else:
        raise InvalidArgumentError(
            "chi must be None, an array of shape (2, 2, 2) or a pair (chi_0, chi_1) of 2x2 "
            f"arrays chi_i[true state, observed state] (or None); got {chi!r}"
        )
    if len(parts) != N_AGENTS:
        raise InvalidArgumentError(f"chi has {len(parts)} agents; the game has 2: {chi!r}")
    out = []
    for i, part in enumerate(parts):
        if part is None:
            out.append(np.eye(2))
            continue
        try:
            arr = np.array(part, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"chi[{i}] is not a 2x2 array: {part!r}") from None
        if arr.shape != (N_STATES, N_STATES):
            raise InvalidArgumentError(
                f"chi[{i}] has shape {arr.shape}; it must be (2, 2): chi_{i}[true state, "
                "observed state]"
            )
        _check_rows(arr, f"chi[{i}]")
        out.append(arr)
    return np.stack(out)


def check_gamma(gamma: Any, *, allow_one: bool) -> float:
    """``0 <= gamma < 1`` (infinite horizon) or ``0 <= gamma <= 1`` (finite horizon)."""
    number = isinstance(gamma, (int, float, np.integer, np.floating)) and not isinstance(
        gamma, bool
    )
    g = float(gamma) if number else float("nan")
    if not (0.0 <= g <= 1.0 if allow_one else 0.0 <= g < 1.0):  # NaN fails both
        allowed = "[0, 1]" if allow_one else "[0, 1) (the infinite-horizon value needs gamma < 1)"
        raise InvalidArgumentError(
            f"gamma={gamma!r} is not allowed: it must be a number in {allowed}"
        )
    return g


def check_horizon(horizon: Any) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise InvalidArgumentError(f"horizon must be an int >= 1, got {horizon!r}")
    return int(horizon)


def check_agent_index(agent: Any, name: str) -> int:
    if isinstance(agent, bool) or not isinstance(agent, (int, np.integer)) or agent not in (0, 1):
        raise InvalidArgumentError(f"{name} must be 0 or 1 (agent_0 or agent_1), got {agent!r}")
    return int(agent)


# ---------------------------------------------------------------------- the Markov chain
def effective_policy(pi: Any, chi_i: Any = None) -> np.ndarray:
    """``pi_eff[s, a] = sum_o chi_i(o | s) pi(a | o)``: what an agent plays in true state s."""
    pi = check_policy(pi)
    chi = check_chi([chi_i, None])[0]
    return chi @ pi


def _chain(pi0: np.ndarray, pi1: np.ndarray, chi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expected reward ``r[s]`` and transition matrix ``P[s, s']`` of the true state."""
    eff0, eff1 = chi[0] @ pi0, chi[1] @ pi1
    q = (eff0 * eff1).sum(axis=1)  # q[s] = Pr(a^1 == a^2 | s)
    r = np.array([q[S1], 1.0 - q[S2]])
    P = np.array([[1.0 - q[S1], q[S1]], [q[S2], 1.0 - q[S2]]])
    return r, P


def markov_chain(pi0: Any, pi1: Any, chi: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The true state's Markov chain under a joint policy (and perturbation).

    Returns ``(r, P)``: ``r[s]`` the expected reward of a step in state s, ``P[s, s']`` the
    transition probabilities (see the module docstring for the formulas).
    """
    return _chain(check_policy(pi0, "pi0"), check_policy(pi1, "pi1"), check_chi(chi))


def evaluate(pi0: Any, pi1: Any, gamma: float = 0.99, chi: Any = None) -> np.ndarray:
    """Exact discounted values ``(V(s1), V(s2))`` of a joint tabular policy.

    ``V(s) = E[sum_{t>=0} gamma^t r_t | s_0 = s]`` where agent i acts on the state its
    adversary shows it, ``o ~ chi_i(. | s)``. Solves the Bellman equation of He et
    al., Eq. (20), ``V = r + gamma P V``, as ``V = (I - gamma P)^{-1} r``.

    Args:
        pi0, pi1: the agents' 2x2 policy tables ``pi_i[o, a]``.
        gamma: discount factor in [0, 1) (He et al.: 0.99).
        chi: ``None`` (no adversary) or a perturbation (see :func:`check_chi`).

    Returns:
        float64 array ``[V(s1), V(s2)]`` (unpacks as ``v1, v2 = evaluate(...)``).

    Raises:
        InvalidArgumentError: a policy or chi that is not row-stochastic of the right shape;
            gamma outside [0, 1).
    """
    g = check_gamma(gamma, allow_one=False)
    r, P = markov_chain(pi0, pi1, chi)
    return np.linalg.solve(np.eye(N_STATES) - g * P, r) + 0.0  # + 0.0: no -0.0


def _deterministic_chi(maps: dict[int, tuple[int, int]]) -> np.ndarray:
    """chi from per-agent deterministic maps ``agent -> (observed in s1, observed in s2)``."""
    chi = np.stack([np.eye(2), np.eye(2)])
    for i, (o1, o2) in maps.items():
        chi[i] = np.eye(2)[[o1, o2]]
    return chi


def worst_case_perturbation(
    pi0: Any, pi1: Any, gamma: float = 0.99, *, attacked: Sequence[int] = (0, 1)
) -> tuple[np.ndarray, np.ndarray]:
    """The optimal state-perturbation adversary against a fixed joint policy (He et al., Prop. 4.1).

    The joint adversary is the MDP of Prop. 4.1 (actions: the pairs of perturbed states;
    reward minus the agents' expected reward, Eq. 15; transitions Eq. 16). It has an
    optimal deterministic stationary policy that minimizes the agents' value in every state
    at once, so this enumerates the 4^m deterministic stationary joint adversaries (m =
    ``len(attacked)``; unattacked agents observe the true state), evaluates each exactly with
    :func:`evaluate`, and returns one that attains the state-wise minimum in both states.

    Ties (several optimal adversaries, e.g. an agent whose policy ignores its observation)
    are broken towards perturbing as few (agent, state) pairs as possible, then in
    enumeration order (agent 0 before 1, s1 before s2, keep before flip); so an adversary
    that cannot hurt leaves the observation alone.

    Args:
        pi0, pi1: the agents' 2x2 policy tables ``pi_i[o, a]``.
        gamma: discount factor in [0, 1).
        attacked: the agents that have an adversary (default both, as in He et al.).

    Returns:
        ``(chi, values)``: ``chi[i, s, o] = chi_i(o | s)`` (shape ``(2, 2, 2)``, 0/1 entries;
        the identity for unattacked agents) and ``values = [V(s1), V(s2)]`` under it, which is
        ``min over all chi`` of :func:`evaluate` in each state (stochastic chi included).

    Raises:
        InvalidArgumentError: bad policies or gamma; ``attacked`` not a collection of
            distinct agent indices in {0, 1}.
    """
    pi0, pi1 = check_policy(pi0, "pi0"), check_policy(pi1, "pi1")
    g = check_gamma(gamma, allow_one=False)
    if isinstance(attacked, (str, bytes)) or not hasattr(attacked, "__iter__"):
        raise InvalidArgumentError(f"attacked must be a collection of 0/1, got {attacked!r}")
    agents = [check_agent_index(a, "attacked entries") for a in attacked]
    if len(set(agents)) != len(agents):
        raise InvalidArgumentError(f"attacked lists an agent twice: {attacked!r}")
    agents.sort()
    candidates, values, costs = [], [], []
    per_agent = list(itertools.product(range(N_STATES), repeat=N_STATES))  # (o|s1, o|s2)
    for combo in itertools.product(per_agent, repeat=len(agents)):
        chi = _deterministic_chi(dict(zip(agents, combo, strict=True)))
        r, P = _chain(pi0, pi1, chi)
        candidates.append(chi)
        values.append(np.linalg.solve(np.eye(N_STATES) - g * P, r) + 0.0)
        costs.append(sum(int(o != s) for maps in combo for s, o in enumerate(maps)))
    V = np.array(values)
    v_min = V.min(axis=0)
    tol = 1e-9 * max(1.0, 1.0 / (1.0 - g))
    optimal = [k for k in range(len(V)) if (V[k] <= v_min + tol).all()]
    if not optimal:  # impossible for a finite MDP (kept as an internal consistency check)
        raise RuntimeError(f"no adversary attains the state-wise minimum {v_min} (values {V})")
    best = min(optimal, key=lambda k: (costs[k], k))
    return candidates[best], V[best]


# ---------------------------------------------------------------------- finite horizon
def _table_at(pi: np.ndarray, t: int) -> np.ndarray:
    return pi[t] if pi.ndim == 3 else pi


def episodic_value(
    pi0: Any, pi1: Any, horizon: int = 100, *, chi: Any = None, gamma: float = 1.0
) -> np.ndarray:
    """Exact expected return of an ``horizon``-step episode, from each start state.

    ``V_H(s) = E[sum_{t=0}^{H-1} gamma^t r_t | s_0 = s]`` (default gamma = 1: the
    undiscounted episode return, Li et al.'s 100-step toy). Backward induction:
    ``V_0 = 0``, ``V_k = r_{H-k} + gamma P_{H-k} V_{k-1}`` with ``(r_t, P_t)`` the chain of the
    policies used at step t. With the env's ``discount`` argument set to gamma, this is also
    the expected *undiscounted* return of an env episode truncated at ``max_cycles = H``.

    Args:
        pi0, pi1: 2x2 tables ``pi_i[o, a]``, or step-dependent ``(horizon, 2, 2)`` tables
            (row t used at step t; e.g. a Byzantine ally from :func:`byzantine_best_response`).
        horizon: number of steps H >= 1 (the env's ``max_cycles``, default 100).
        chi: ``None`` or a stationary perturbation (see :func:`check_chi`).
        gamma: discount in [0, 1].

    Returns:
        float64 array ``[V_H(s1), V_H(s2)]``; the env's default start (uniform) gets the mean.

    Raises:
        InvalidArgumentError: bad policies, chi, horizon or gamma.
    """
    H = check_horizon(horizon)
    p0 = check_policy(pi0, "pi0", horizon=H)
    p1 = check_policy(pi1, "pi1", horizon=H)
    c = check_chi(chi)
    g = check_gamma(gamma, allow_one=True)
    V = np.zeros(N_STATES)
    for t in reversed(range(H)):
        r, P = _chain(_table_at(p0, t), _table_at(p1, t), c)
        V = r + g * (P @ V)
    return V


def byzantine_best_response(
    defender_policy: Any, adversary_agent: int, horizon: int = 100, *, gamma: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Exact worst-case Byzantine ally against a tabular defender, over a finite horizon.

    Li et al.'s threat on the toy game: agent ``adversary_agent`` is taken over by an
    adversary that sees the true state and the step count, knows the defender's policy
    (not its sampled action: moves are simultaneous) and minimizes the shared return; the
    other agent plays ``defender_policy`` on the true state. Backward induction
    (see the module docstring) gives ``W_H`` and a deterministic optimal action per
    (step, state); ties go to the lowest action index (a1).

    Is the best response stationary? Yes, in this game, for every defender, horizon and
    gamma: the myopic rule "in s1 play the action the defender is less likely to play, in
    s2 the one it is more likely to play" is optimal at every step. Proof: every
    reward-0 outcome leads to s1 (different actions in s1 stay, equal actions in s2
    leave) and every reward-1 outcome leads to s2, so in both states the ally only chooses
    the probability of "reward 0, then s1" against "reward 1, then s2"; myopic play
    maximizes the former in both states, which is optimal as long as
    ``D_k = 1 + gamma (W_k(s2) - W_k(s1)) >= 0``. With x = min(p1, 1 - p1) <= 1/2 and
    y = max(p2, 1 - p2) >= 1/2 (p_s = pi_d(a1 | s)), ``D_k = 1 + gamma (1 - x - y) D_{k-1}``,
    ``D_0 = 1`` and ``|gamma (1 - x - y)| <= 1/2``, so by induction 0 < D_k < 2. Hence a
    deterministic defender d gets 0 (the ally plays "not d(s1)" in s1 and d(s2) in s2:
    reward 0 at every step) and the uniform defender gets H / 2 (every action is optimal;
    ties go to a1). The step-dependent table is returned anyway (a stationary ally needs
    no step count; the tests check that every row is the same).

    Args:
        defender_policy: 2x2 table ``pi_d[s, a]`` of the agent that is not taken over.
        adversary_agent: 0 or 1, the agent the adversary controls.
        horizon: episode length H >= 1 (Li et al.: 100).
        gamma: discount in [0, 1] (default 1, undiscounted episode return).

    Returns:
        ``(policy_by_step, values)``: ``policy_by_step[t, s, b]`` (shape ``(horizon, 2, 2)``,
        one-hot rows) is the adversary's action at step t (t = 0 first) in state s;
        ``values = [W_H(s1), W_H(s2)]`` is the defender's (shared) expected return against it.
        ``episodic_value`` with the adversary's table in its slot gives the same values.

    Raises:
        InvalidArgumentError: bad defender policy, adversary_agent, horizon or gamma.
    """
    pi_d = check_policy(defender_policy, "defender_policy")
    k = check_agent_index(adversary_agent, "adversary_agent")
    H = check_horizon(horizon)
    g = check_gamma(gamma, allow_one=True)
    # joint[a, b] -> (a0, a1): a = defender's action, b = adversary's
    R = REWARD if k == 1 else REWARD.transpose(0, 2, 1)  # R[s, a, b]
    N = NEXT_STATE if k == 1 else NEXT_STATE.transpose(0, 2, 1)
    policy = np.zeros((H, N_STATES, N_ACTIONS))
    W = np.zeros(N_STATES)
    for t in reversed(range(H)):
        Q = np.einsum("sa,sab->sb", pi_d, R + g * W[N])  # Q[s, b]
        b = np.where(Q[:, A1] <= Q[:, A2] + TIE_TOL, A1, A2)  # ties -> a1
        policy[t, np.arange(N_STATES), b] = 1.0
        W = Q[np.arange(N_STATES), b]
    return policy, W


class MyopicByzantineAlly:
    """The myopic worst-case Byzantine ally against *any* defender, history-dependent ones
    included: a policy for the adversary slot of ``byzantine_v0`` on ``adv/xnor_xor-v0``.

    At every step it asks the defender's action probabilities on the current observation
    (``defender_probabilities(observation) -> [p(a1), p(a2)]``: a copy of the defender's
    policy fed the same observations, e.g. ``CheckpointPolicy.action_probabilities`` of a
    second :func:`adv_wrappers.train.load_policy` of the defender) and plays the rule of
    :func:`byzantine_best_response`: in s1 the action the defender is less likely to play,
    in s2 the one it is more likely to play (ties: a1). Both agents observe the same
    thing in this env, so the copy sees what the defender sees, step for step.

    Against a defender that acts on the state alone this is the exact worst case (proved in
    :func:`byzantine_best_response`). Against a history-dependent defender (a belief over
    the ally's type) it minimizes the expected reward of every step but may not be the worst
    case, which could trade reward now for a belief that is easier to exploit later: the
    return it leaves is an upper bound on the defender's worst-case return. A deterministic
    defender gets 0 from it; one that mixes 50/50 whenever it is attacked gets H / 2.

    Args:
        defender_probabilities: observation -> the defender's probabilities of a1 and a2.
        reset: called at every episode start (e.g. the defender copy's ``reset``).
    """

    def __init__(self, defender_probabilities: Any, reset: Any = None) -> None:
        self._probabilities = defender_probabilities
        self._reset = reset

    def reset(self) -> None:
        if self._reset is not None:
            self._reset()

    def __call__(self, observation: Any) -> np.int64:
        p = np.asarray(self._probabilities(observation), dtype=np.float64).reshape(-1)
        state = int(np.argmax(np.asarray(observation, dtype=np.float64).reshape(-1)[:2]))
        likely = int(p[1] > p[0])  # the defender's more likely action (ties: a1)
        if state == S1:  # equal actions pay: play the other one
            return np.int64(1 - likely if p[0] != p[1] else 0)
        return np.int64(likely)  # s2: different actions pay: copy the likely one
