"""``adv/xnor_xor-v0`` and its exact tools (``adv_envs.xnor_xor_exact``).

Three layers: the exact tools reproduce He et al. (TMLR 2023), App. B-C (gamma = 0.99) and
Li et al. (ICLR 2024)'s 100-step Byzantine numbers, and agree with independent computations (value iteration,
brute-force enumeration, random perturbations); the env agrees with the tools exactly for
deterministic policies and by Monte Carlo for stochastic ones, clean, under the worst-case
perturbation applied through ``state_perturbation_v0`` and under the worst-case ally
applied through ``byzantine_v0``.

Statistical tolerance of the Monte Carlo tests: a sample mean of n episode returns is
compared with the exact expectation within ``Z = 4`` standard errors (sample standard
deviation / sqrt(n)). Seeds are fixed, so the outcome is deterministic; with another seed a
correct env would fail one comparison with probability about 6e-5 (normal approximation).
Each such test also asserts that 4 standard errors are smaller than the gap to the value a
plausible bug would produce (e.g. the unattacked value), so the check can fail.
"""

from __future__ import annotations

import itertools

import numpy as np
import pettingzoo
import pytest

from adv_envs import xnor_xor
from adv_envs import xnor_xor_exact as X
from adv_wrappers import byzantine_v0, state_perturbation_v0
from adv_wrappers.errors import InvalidActionError, InvalidArgumentError, MissingActionError

GAMMA = 0.99
Z = 4.0
EYE = np.eye(2)
ONE_HOT = np.eye(2, dtype=np.float32)
DETERMINISTIC = [EYE[list(m)] for m in itertools.product(range(2), repeat=2)]  # 4 tables
MIXED = (np.array([[0.7, 0.3], [0.2, 0.8]]), np.array([[0.6, 0.4], [0.9, 0.1]]))


def random_policy(rng: np.random.Generator) -> np.ndarray:
    p = rng.random(2)
    return np.stack([p, 1 - p], axis=1)


def random_chi(rng: np.random.Generator) -> np.ndarray:
    return np.stack([random_policy(rng), random_policy(rng)])


# ---------------------------------------------------------------------- helpers for rollouts
class Tabular:
    """A tabular policy acting on the one-hot observation (state = argmax)."""

    def __init__(self, table: np.ndarray, rng: np.random.Generator):
        self.table = np.asarray(table)
        self.rng = rng

    def __call__(self, obs: np.ndarray) -> int:
        return int(self.rng.random() >= self.table[int(np.argmax(obs)), 0])


class StepTable:
    """An embedded Byzantine ally that follows a step-indexed table (counts its calls)."""

    def __init__(self, table_by_step: np.ndarray):
        self.table = np.asarray(table_by_step)
        self.t = 0

    def reset(self) -> None:
        self.t = 0

    def __call__(self, obs: np.ndarray) -> int:
        action = int(np.argmax(self.table[self.t, int(np.argmax(obs))]))
        self.t += 1
        return action


class ChiAttack:
    """An embedded observation attack realizing chi_i(o | s) on the one-hot observation.

    Returns ``u = onehot(o) - obs`` in [-1, 1]^2; with ``epsilon = 1`` in l-inf the
    wrapper's perturbed observation ``clip(obs + u, 0, 1)`` is exactly ``onehot(o)``.
    """

    def __init__(self, chi_i: np.ndarray, rng: np.random.Generator):
        self.chi_i = np.asarray(chi_i)
        self.rng = rng

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        s = int(np.argmax(obs))
        o = 0 if self.rng.random() < self.chi_i[s, 0] else 1
        return ONE_HOT[o] - obs


def perturbed_env(chi: np.ndarray, seed: int = 0, **kwargs):
    """The env under one state_perturbation_v0 per agent (epsilon = 1, l-inf), applying chi."""
    rng = np.random.default_rng(seed + 1000)
    env = xnor_xor.parallel_env(**kwargs)
    env = state_perturbation_v0(env, 1.0, agents=["agent_0"], attack=ChiAttack(chi[0], rng))
    return state_perturbation_v0(env, 1.0, agents=["agent_1"], attack=ChiAttack(chi[1], rng))


def returns(env, policies, episodes, seed, *, gamma=1.0, options=None):
    """Play ``episodes`` episodes with per-agent policies; return (returns, steps).

    ``returns[k] = sum_t gamma^t r_t`` of the shared reward in episode k.
    """
    out = np.empty(episodes)
    steps = 0
    for k in range(episodes):
        obs, _ = env.reset(seed=seed if k == 0 else None, options=options)
        total, discount = 0.0, 1.0
        while env.agents:
            obs, rewards, _, _, _ = env.step({a: policies[a](obs[a]) for a in env.agents})
            total += discount * next(iter(rewards.values()))  # shared by every agent
            discount *= gamma
            steps += 1
        out[k] = total
    return out, steps


def assert_mc(samples: np.ndarray, exact: float, must_differ_from: float | None = None):
    mean, se = samples.mean(), samples.std(ddof=1) / np.sqrt(len(samples))
    assert abs(mean - exact) <= Z * se + 1e-9, f"MC mean {mean} vs exact {exact} (SE {se})"
    if must_differ_from is not None:  # the tolerance is tight enough to see a wrong answer
        assert abs(must_differ_from - exact) > 2 * Z * se, (must_differ_from, exact, se)
    return mean, se


# ---------------------------------------------------------------------- the game
def test_tables_are_paper_004_eqs_12_13():
    for s, a0, a1 in itertools.product(range(2), repeat=3):
        equal = a0 == a1
        assert X.REWARD[s, a0, a1] == (1.0 if (s == X.S1) == equal else 0.0)
        assert X.NEXT_STATE[s, a0, a1] == ((1 - s) if equal else s)


@pytest.mark.parametrize("s,a0,a1", list(itertools.product(range(2), repeat=3)))
def test_env_step_is_the_game(s, a0, a1):
    env = xnor_xor.parallel_env()
    obs, infos = env.reset(seed=0, options={"initial_state": s})
    assert all((o == ONE_HOT[s]).all() for o in obs.values()) and (env.state() == ONE_HOT[s]).all()
    assert infos["agent_0"]["state"] == s
    obs, rewards, terms, truncs, infos = env.step({"agent_0": a0, "agent_1": a1})
    nxt = X.NEXT_STATE[s, a0, a1]
    assert rewards == {"agent_0": X.REWARD[s, a0, a1], "agent_1": X.REWARD[s, a0, a1]}
    assert all((o == ONE_HOT[nxt]).all() for o in obs.values())
    assert infos["agent_0"]["state"] == s and not any(terms.values()) and not any(truncs.values())


# ----------------------------------------------------------- He et al. (TMLR 2023), gamma = 0.99
def test_cooperative_policy_100_clean_0_against_worst_case():
    """He et al., App. A.2 / B.1."""
    np.testing.assert_allclose(X.evaluate(*X.COOPERATIVE, GAMMA), [100, 100], atol=1e-9)
    chi, values = X.worst_case_perturbation(*X.COOPERATIVE, GAMMA)
    np.testing.assert_allclose(values, [0, 0], atol=1e-9)
    np.testing.assert_allclose(X.evaluate(*X.COOPERATIVE, GAMMA, chi=chi), values, atol=1e-12)
    # the paper's adversary flips both agents: chi^i(s1|s2) = chi^i(s2|s1) = 1
    flip = EYE[[1, 0]]
    np.testing.assert_allclose(
        X.evaluate(*X.COOPERATIVE, GAMMA, chi=(flip, flip)), [0, 0], atol=1e-9
    )
    # agent 0 always plays a1 (its adversary is powerless): the tie-break leaves it alone
    np.testing.assert_array_equal(chi, np.stack([EYE, flip]))


def test_uniform_policy_is_50_whatever_the_adversary():
    """He et al., App. B.2 (pi_2 of Thm. 4.3)."""
    rng = np.random.default_rng(0)
    np.testing.assert_allclose(X.evaluate(*X.UNIFORM, GAMMA), [50, 50], atol=1e-9)
    np.testing.assert_allclose(X.worst_case_perturbation(*X.UNIFORM, GAMMA)[1], [50, 50], atol=1e-9)
    for _ in range(50):
        np.testing.assert_allclose(
            X.evaluate(*X.UNIFORM, GAMMA, chi=random_chi(rng)), [50, 50], atol=1e-9
        )


def test_always_equal_and_always_different_constant_policies():
    """He et al., App. B.3 cases (3) and (2): 1/(1-g^2) ~ 50.25 from s1, g/(1-g^2) ~ 49.75
    from s2 (s1 pays, then s2 does not, and so on); always different: 0 from s1, 100 from s2."""
    equal = [1 / (1 - GAMMA**2), GAMMA / (1 - GAMMA**2)]
    assert round(equal[0], 2) == 50.25 and round(equal[1], 2) == 49.75
    rng = np.random.default_rng(1)
    for a in range(2):
        always_equal = (EYE[[a, a]], EYE[[a, a]])
        always_different = (EYE[[a, a]], EYE[[1 - a, 1 - a]])
        for chi in [None, *(random_chi(rng) for _ in range(10))]:
            np.testing.assert_allclose(X.evaluate(*always_equal, GAMMA, chi=chi), equal, atol=1e-9)
            np.testing.assert_allclose(
                X.evaluate(*always_different, GAMMA, chi=chi), [0, 100], atol=1e-9
            )
        np.testing.assert_allclose(X.worst_case_perturbation(*always_equal, GAMMA)[1], equal)
    np.testing.assert_array_equal(X.ALWAYS_EQUAL[0], EYE[[0, 0]])


def test_all_16_deterministic_policies_against_the_worst_case():
    """He et al., App. B.3 classifies the 16 deterministic policies in three cases. Case (1)
    (equal actions in one state, different in the other) is worth 0: checked for all 8.
    Cases (2) and (3) hold for the 4 policies whose actions ignore the observation; the 4
    others that are equal (or different) in both states change their joint action when only
    one agent's observation is flipped, so their worst case is 0, not what B.3 says."""
    equal = [1 / (1 - GAMMA**2), GAMMA / (1 - GAMMA**2)]
    seen = {"case1": 0, "constant": 0, "observation-dependent": 0}
    for p0, p1 in itertools.product(DETERMINISTIC, repeat=2):
        _, worst = X.worst_case_perturbation(p0, p1, GAMMA)
        same = [int(np.argmax(p0[s])) == int(np.argmax(p1[s])) for s in range(2)]
        constant = (p0[0] == p0[1]).all() and (p1[0] == p1[1]).all()
        if same[0] != same[1]:
            seen["case1"] += 1
            np.testing.assert_allclose(worst, [0, 0], atol=1e-9)
        elif constant:
            seen["constant"] += 1
            np.testing.assert_allclose(worst, equal if same[0] else [0, 100], atol=1e-9)
        else:
            seen["observation-dependent"] += 1
            np.testing.assert_allclose(worst, [0, 0], atol=1e-9)
            clean = X.evaluate(p0, p1, GAMMA)
            np.testing.assert_allclose(clean, equal if same[0] else [0, 100], atol=1e-9)
    assert seen == {"case1": 8, "constant": 4, "observation-dependent": 4}


def test_robust_policy_pi1_is_worth_100_from_s2():
    """He et al., App. B.5 (Thm. 4.3) and C.4: pi_1 gets 0 from s1 and 100 from s2 under the
    worst case; 100 is the largest possible value (rewards <= 1), so with s_0 = s2 pi_1 is a
    robust agent policy; from s1 the uniform policy (50) does better: no policy dominates."""
    _, worst = X.worst_case_perturbation(*X.ROBUST_PI1, GAMMA)
    np.testing.assert_allclose(worst, [0, 100], atol=1e-9)
    assert worst[1] >= 1 / (1 - GAMMA) - 1e-9
    uniform = X.worst_case_perturbation(*X.UNIFORM, GAMMA)[1]
    assert uniform[0] > worst[0] and uniform[1] < worst[1]


def value_iteration(pi0, pi1, gamma, attacked=(0, 1), iterations=500):
    """He et al.'s Prop. 4.1 adversary MDP solved by value iteration, independently of the
    module: actions = pairs of perturbed states (rho0, rho1), the agents' value is
    min over rho of sum_a pi0(a0|rho0) pi1(a1|rho1) [r(s, a) + gamma V(s')]."""
    reward = np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]])  # Eq. 13
    nxt = np.array([[[1, 0], [0, 1]], [[0, 1], [1, 0]]])  # Eq. 12: equal actions switch
    V = np.zeros(2)
    for _ in range(iterations):
        Q = np.full(2, np.inf)
        for rho0, rho1, s in itertools.product(range(2), repeat=3):
            o0 = rho0 if 0 in attacked else s
            o1 = rho1 if 1 in attacked else s
            joint = np.outer(pi0[o0], pi1[o1])  # joint[a0, a1]
            Q[s] = min(Q[s], float((joint * (reward[s] + gamma * V[nxt[s]])).sum()))
        V = Q
    return V


@pytest.mark.parametrize("attacked", [(0, 1), (0,), (1,), ()])
def test_worst_case_matches_value_iteration_and_beats_random_perturbations(attacked):
    rng = np.random.default_rng(2)
    gamma = 0.9  # value iteration converges fast (error <= 10 * 0.9^500 ~ 1e-22)
    for _ in range(8):
        pi0, pi1 = random_policy(rng), random_policy(rng)
        chi, worst = X.worst_case_perturbation(pi0, pi1, gamma, attacked=attacked)
        np.testing.assert_allclose(worst, value_iteration(pi0, pi1, gamma, attacked), atol=1e-9)
        assert set(np.unique(chi)) <= {0.0, 1.0}
        for i in set(range(2)) - set(attacked):
            np.testing.assert_array_equal(chi[i], EYE)
        for _ in range(20):
            other = random_chi(rng)
            for i in set(range(2)) - set(attacked):
                other[i] = EYE
            assert (X.evaluate(pi0, pi1, gamma, chi=other) >= worst - 1e-9).all()
    np.testing.assert_allclose(
        X.worst_case_perturbation(*X.COOPERATIVE, GAMMA, attacked=attacked)[1],
        [0, 0] if 1 in attacked else [100, 100],  # agent 0 ignores its observation
        atol=1e-9,
    )


# ------------------------------------------------------------- episodic (Li et al. (ICLR 2024))
def test_episodic_values():
    np.testing.assert_allclose(X.episodic_value(*X.COOPERATIVE, 100), [100, 100])
    np.testing.assert_allclose(X.episodic_value(*X.UNIFORM, 100), [50, 50])
    np.testing.assert_allclose(X.episodic_value(*X.ALWAYS_EQUAL, 100), [50, 50])  # 1,0,1,0...
    np.testing.assert_allclose(X.episodic_value(*X.ALWAYS_EQUAL, 101), [51, 50])
    np.testing.assert_allclose(X.episodic_value(*X.ROBUST_PI1, 100), [0, 100])
    chi = X.worst_case_perturbation(*X.COOPERATIVE, GAMMA)[0]
    np.testing.assert_allclose(X.episodic_value(*X.COOPERATIVE, 100, chi=chi), [0, 0])
    # a long discounted horizon converges to the infinite-horizon value (tail <= 100 g^H)
    np.testing.assert_allclose(
        X.episodic_value(*MIXED, 5000, gamma=GAMMA), X.evaluate(*MIXED, GAMMA), atol=1e-12
    )
    # a step-dependent table with equal rows is the stationary table
    stacked = np.repeat(MIXED[0][None], 7, axis=0)
    np.testing.assert_allclose(
        X.episodic_value(stacked, MIXED[1], 7), X.episodic_value(*MIXED, 7), atol=1e-12
    )


@pytest.mark.parametrize("adversary_agent", [0, 1])
def test_byzantine_deterministic_defender_gets_0(adversary_agent):
    for d in DETERMINISTIC:
        policy, value = X.byzantine_best_response(d, adversary_agent, 100)
        np.testing.assert_array_equal(value, [0, 0])
        d_s1, d_s2 = int(np.argmax(d[0])), int(np.argmax(d[1]))
        expected = EYE[[1 - d_s1, d_s2]]  # s1: the other action; s2: the same action
        assert policy.shape == (100, 2, 2) and (policy == expected).all()


@pytest.mark.parametrize("adversary_agent", [0, 1])
def test_byzantine_uniform_defender_gets_50_and_nobody_gets_more(adversary_agent):
    policy, value = X.byzantine_best_response(X.UNIFORM[0], adversary_agent, 100)
    np.testing.assert_allclose(value, [50, 50])
    assert (policy == EYE[[0, 0]]).all()  # every action ties; ties go to a1
    rng = np.random.default_rng(3)
    for _ in range(50):
        assert (
            X.byzantine_best_response(random_policy(rng), adversary_agent)[1] <= 50 + 1e-9
        ).all()


def test_byzantine_best_response_is_stationary_and_myopic():
    """The docstring's proof, checked: for any defender, horizon and gamma, the backward
    induction picks in s1 the defender's less likely action, in s2 its more likely one."""
    rng = np.random.default_rng(4)
    for _ in range(200):
        d = random_policy(rng)
        k, H, gamma = int(rng.integers(2)), int(rng.integers(1, 150)), float(rng.random())
        for g in (gamma, 1.0):
            policy, _ = X.byzantine_best_response(d, k, H, gamma=g)
            myopic = EYE[[int(d[0, 0] >= 0.5), int(d[1, 0] < 0.5)]]
            assert (policy == myopic).all(), (d, k, H, g)


@pytest.mark.parametrize("adversary_agent", [0, 1])
def test_byzantine_backward_induction_matches_brute_force(adversary_agent):
    """H = 4: all 2^8 deterministic step-dependent allies, evaluated with episodic_value."""
    rng = np.random.default_rng(5)
    H = 4
    for d in [*DETERMINISTIC, X.UNIFORM[0], random_policy(rng), random_policy(rng)]:
        policy, value = X.byzantine_best_response(d, adversary_agent, H)
        brute = np.full(2, np.inf)
        for bits in itertools.product(range(2), repeat=2 * H):
            table = EYE[list(bits)].reshape(H, 2, 2)
            joint = (table, d) if adversary_agent == 0 else (d, table)
            brute = np.minimum(brute, X.episodic_value(*joint, H))
        np.testing.assert_allclose(value, brute, atol=1e-12)
        joint = (policy, d) if adversary_agent == 0 else (d, policy)
        np.testing.assert_allclose(X.episodic_value(*joint, H), value, atol=1e-12)


# ---------------------------------------------------------------------- input validation
BAD_POLICIES = [
    [[0.5, 0.5]],  # shape
    [[0.5, 0.6], [0.5, 0.5]],  # row sum
    [[1.5, -0.5], [0.5, 0.5]],  # negative
    [[np.nan, 0.5], [0.5, 0.5]],  # NaN
    "uniform",
]


@pytest.mark.parametrize("bad", BAD_POLICIES)
def test_bad_policies_raise(bad):
    with pytest.raises(InvalidArgumentError):
        X.evaluate(bad, X.UNIFORM[1])
    with pytest.raises(InvalidArgumentError):
        X.worst_case_perturbation(X.UNIFORM[0], bad)
    with pytest.raises(InvalidArgumentError):
        X.episodic_value(bad, X.UNIFORM[1])
    with pytest.raises(InvalidArgumentError):
        X.byzantine_best_response(bad, 0)


@pytest.mark.parametrize(
    "call",
    [
        lambda: X.evaluate(*X.UNIFORM, gamma=1.0),
        lambda: X.evaluate(*X.UNIFORM, gamma=-0.1),
        lambda: X.evaluate(*X.UNIFORM, gamma="x"),
        lambda: X.evaluate(*X.UNIFORM, chi=EYE),  # one 2x2 table: whose?
        lambda: X.evaluate(*X.UNIFORM, chi=(EYE, [[0.5, 0.6], [0, 1]])),
        lambda: X.evaluate(*X.UNIFORM, chi=(EYE, EYE, EYE)),
        lambda: X.worst_case_perturbation(*X.UNIFORM, attacked=(2,)),
        lambda: X.worst_case_perturbation(*X.UNIFORM, attacked=(0, 0)),
        lambda: X.worst_case_perturbation(*X.UNIFORM, attacked=0),
        lambda: X.episodic_value(*X.UNIFORM, 0),
        lambda: X.episodic_value(*X.UNIFORM, 10, gamma=1.5),
        lambda: X.episodic_value(np.full((9, 2, 2), 0.5), X.UNIFORM[1], 10),  # wrong H
        lambda: X.byzantine_best_response(X.UNIFORM[0], 2),
        lambda: X.byzantine_best_response(X.UNIFORM[0], True),
        lambda: X.byzantine_best_response(X.UNIFORM[0], 0, horizon=2.5),
    ],
)
def test_bad_arguments_raise(call):
    with pytest.raises(InvalidArgumentError):
        call()


def test_paper_policies_are_read_only():
    with pytest.raises(ValueError):
        X.COOPERATIVE[0][0, 0] = 0.0


# ---------------------------------------------------------------------- the env
def test_registered_and_default_configuration():
    env = pettingzoo.make("parallel", "adv/xnor_xor-v0")
    assert env.possible_agents == ["agent_0", "agent_1"]
    assert env.max_cycles == 100 and env.discount is None and env.initial_state_probs == (0.5, 0.5)
    _, steps = returns(env, {a: (lambda obs: 0) for a in env.possible_agents}, 3, seed=0)
    assert steps == 300


def test_initial_state_distribution():
    env = xnor_xor.parallel_env()
    n = 4000
    starts = [int(np.argmax(env.reset(seed=7 if k == 0 else None)[0]["agent_0"])) for k in range(n)]
    assert_mc(np.asarray(starts, float), 0.5)  # Pr(s2) = 1/2, within 4 standard errors
    env = xnor_xor.parallel_env(initial_state_probs=(0, 1))
    assert all(env.reset(seed=k)[1]["agent_0"]["state"] == 1 for k in range(20))
    assert env.reset(options={"initial_state": "s1"})[1]["agent_1"]["state"] == 0
    env = xnor_xor.parallel_env(initial_state_probs=(1, 0))
    assert all(env.reset(seed=k)[1]["agent_0"]["state"] == 0 for k in range(20))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_cycles": 0},
        {"max_cycles": 2.5},
        {"max_cycles": None},
        {"max_cycles": None, "discount": 1.0},
        {"discount": 1.5},
        {"discount": "x"},
        {"initial_state_probs": (0.5, 0.6)},
        {"initial_state_probs": (1.0,)},
        {"initial_state_probs": (-0.5, 1.5)},
        {"render_mode": "human"},
    ],
)
def test_bad_env_arguments_raise(kwargs):
    with pytest.raises(InvalidArgumentError):
        xnor_xor.parallel_env(**kwargs)


def test_bad_steps_and_options_raise():
    env = xnor_xor.parallel_env(max_cycles=1)
    with pytest.raises(InvalidArgumentError):
        env.reset(options={"initial_state": 2})
    with pytest.raises(InvalidArgumentError):
        env.reset(options={"initial_state": True})
    env.reset(seed=0)
    with pytest.raises(MissingActionError):
        env.step({"agent_0": 0})
    with pytest.raises(InvalidActionError):
        env.step({"agent_0": 0, "agent_1": 2})
    env.step({"agent_0": 0, "agent_1": 1})
    assert env.agents == []
    with pytest.raises(MissingActionError):  # the episode is over
        env.step({})


def test_render_is_deterministic_and_shows_state_and_actions():
    env = xnor_xor.parallel_env(render_mode="rgb_array")
    env.reset(seed=0, options={"initial_state": 0})
    first = env.render()
    assert first.shape == (60, 180, 3) and first.dtype == np.uint8
    env.step({"agent_0": 0, "agent_1": 1})  # s1, different: reward 0, stay in s1
    after = env.render()
    assert (after[:, :60] == first[:, :60]).all() and not (after[:, 60:] == first[:, 60:]).all()
    assert not (after[10, 90] == after[10, 150]).all()  # a1 and a2 look different
    env.step({"agent_0": 0, "agent_1": 0})  # s1, equal: go to s2
    assert not (env.render()[:, :60] == first[:, :60]).all()
    other = xnor_xor.parallel_env(render_mode="rgb_array")
    other.reset(seed=5, options={"initial_state": 0})
    other.step({"agent_0": 0, "agent_1": 1})
    np.testing.assert_array_equal(other.render(), after)
    with pytest.warns(UserWarning, match="render_mode"):
        assert xnor_xor.parallel_env().render() is None


def test_discount_terminates_geometrically():
    """discount=gamma: termination (not truncation) with probability 1 - gamma per step."""
    env = xnor_xor.parallel_env(discount=0.9, max_cycles=None)
    coop = {"agent_0": lambda obs: 0, "agent_1": lambda obs: int(np.argmax(obs))}
    lengths, _ = returns(env, coop, 3000, seed=1)  # cooperative: reward 1 at every step
    assert_mc(lengths, 1 / (1 - 0.9), must_differ_from=1 / (1 - 0.88))
    env = xnor_xor.parallel_env(discount=0.0)
    env.reset(seed=0)
    _, _, terms, truncs, _ = env.step({"agent_0": 0, "agent_1": 0})
    assert terms == {"agent_0": True, "agent_1": True} and not any(truncs.values())
    assert env.agents == []


# ---------------------------------------------------------------------- env vs exact tools
@pytest.mark.parametrize("start", [0, 1])
def test_env_clean_episodic_return_matches_exact(start):
    env = xnor_xor.parallel_env()  # 100 steps, undiscounted: Li et al.'s episode
    rng = np.random.default_rng(10 + start)
    policies = {"agent_0": Tabular(MIXED[0], rng), "agent_1": Tabular(MIXED[1], rng)}
    samples, _ = returns(env, policies, 400, seed=start, options={"initial_state": start})
    exact = X.episodic_value(*MIXED, 100)[start]
    assert_mc(samples, exact, must_differ_from=X.episodic_value(*X.UNIFORM, 100)[start])


@pytest.mark.parametrize("max_cycles", [None, 5])
def test_env_discount_matches_discounted_values(max_cycles):
    """With discount=gamma the undiscounted return estimates He et al.'s discounted value
    (gamma = 0.9 keeps episodes short: the mechanism does not depend on gamma)."""
    gamma = 0.9
    env = xnor_xor.parallel_env(discount=gamma, max_cycles=max_cycles)
    rng = np.random.default_rng(20)
    policies = {"agent_0": Tabular(MIXED[0], rng), "agent_1": Tabular(MIXED[1], rng)}
    for start in range(2):
        samples, _ = returns(env, policies, 2000, seed=start, options={"initial_state": start})
        if max_cycles is None:
            exact = X.evaluate(*MIXED, gamma)[start]
            wrong = X.evaluate(*MIXED, 0.8)[start]  # episodes ending twice as often
        else:
            exact = X.episodic_value(*MIXED, max_cycles, gamma=gamma)[start]
            wrong = X.episodic_value(*MIXED, max_cycles)[start]  # discount ignored
        assert_mc(samples, exact, must_differ_from=wrong)


def test_epsilon_1_linf_ball_admits_the_flip():
    """The one-hot observation of the other state is in the l-inf ball of radius 1; an agent
    reading the state by argmax is already fooled by epsilon > 1/2, not by epsilon < 1/2."""
    flip = np.stack([EYE[[1, 0]], EYE[[1, 0]]])
    env = perturbed_env(flip)
    obs, infos = env.reset(seed=0, options={"initial_state": 0})
    np.testing.assert_array_equal(obs["agent_0"], ONE_HOT[1])
    np.testing.assert_array_equal(obs["agent_1"], ONE_HOT[1])
    assert infos["agent_0"]["state_perturbation"]["perturbation_norm"] == {"agent_1": 1.0}
    rng = np.random.default_rng(0)
    for epsilon, fooled in [(0.4, False), (0.6, True)]:
        small = state_perturbation_v0(
            xnor_xor.parallel_env(), epsilon, agents=["agent_0"], attack=ChiAttack(flip[0], rng)
        )
        for s in range(2):
            obs, _ = small.reset(seed=0, options={"initial_state": s})
            assert not (obs["agent_0"] == ONE_HOT[1 - s]).all()  # not the other one-hot
            assert (int(np.argmax(obs["agent_0"])) != s) == fooled


@pytest.mark.parametrize("p0,p1", list(itertools.product(DETERMINISTIC, repeat=2)))
def test_env_matches_exact_for_deterministic_policies(p0, p1):
    """Deterministic policies and adversaries: every episode's return is the exact value
    (100 steps, undiscounted and discounted with gamma = 0.99), clean and under the
    worst-case perturbation applied through state_perturbation_v0."""
    chi, _ = X.worst_case_perturbation(p0, p1, GAMMA)
    rng = np.random.default_rng(0)
    policies = {"agent_0": Tabular(p0, rng), "agent_1": Tabular(p1, rng)}
    for env, c in [(xnor_xor.parallel_env(), None), (perturbed_env(chi), chi)]:
        for start in range(2):
            opts = {"initial_state": start}
            undiscounted, steps = returns(env, policies, 1, seed=0, options=opts)
            discounted, _ = returns(env, policies, 1, seed=0, gamma=GAMMA, options=opts)
            assert steps == 100
            assert undiscounted[0] == X.episodic_value(p0, p1, 100, chi=c)[start]
            exact = X.episodic_value(p0, p1, 100, chi=c, gamma=GAMMA)[start]
            assert abs(discounted[0] - exact) < 1e-9


def test_env_under_worst_case_perturbation_matches_exact():
    """A stochastic joint policy whose worst case flips different states for the two agents,
    applied through state_perturbation_v0 (one wrapper per agent, epsilon = 1, l-inf)."""
    gamma = 0.9
    chi, worst = X.worst_case_perturbation(*MIXED, gamma)
    assert not (chi[0] == chi[1]).all()  # the two adversaries really differ
    clean = X.evaluate(*MIXED, gamma)
    env = perturbed_env(chi, discount=gamma, max_cycles=None)
    rng = np.random.default_rng(30)
    policies = {"agent_0": Tabular(MIXED[0], rng), "agent_1": Tabular(MIXED[1], rng)}
    for start in range(2):
        samples, _ = returns(env, policies, 2000, seed=start, options={"initial_state": start})
        assert_mc(samples, worst[start], must_differ_from=clean[start])


def test_env_under_stochastic_perturbation_matches_exact():
    gamma = 0.9
    chi = np.array([[[0.2, 0.8], [0.7, 0.3]], [[0.3, 0.7], [0.1, 0.9]]])
    env = perturbed_env(chi, discount=gamma, max_cycles=None)
    rng = np.random.default_rng(40)
    policies = {"agent_0": Tabular(MIXED[0], rng), "agent_1": Tabular(MIXED[1], rng)}
    samples, _ = returns(env, policies, 2000, seed=0, options={"initial_state": 0})
    exact, clean = X.evaluate(*MIXED, gamma, chi=chi)[0], X.evaluate(*MIXED, gamma)[0]
    assert_mc(samples, exact, must_differ_from=clean)


def byzantine_env(adversary_agent: int, ally, **kwargs):
    theta = (1, 0) if adversary_agent == 0 else (0, 1)
    return byzantine_v0(xnor_xor.parallel_env(**kwargs), prior={theta: 1.0}, adversary=ally)


@pytest.mark.parametrize("adversary_agent", [0, 1])
def test_env_byzantine_deterministic_defender_gets_0(adversary_agent):
    defender = f"agent_{1 - adversary_agent}"
    rng = np.random.default_rng(0)
    for d in DETERMINISTIC:
        policy, _ = X.byzantine_best_response(d, adversary_agent, 100)
        env = byzantine_env(adversary_agent, StepTable(policy))
        samples, steps = returns(env, {defender: Tabular(d, rng)}, 4, seed=1)
        assert steps == 400 and (samples == 0).all()


@pytest.mark.parametrize("adversary_agent", [0, 1])
def test_env_byzantine_uniform_and_mixed_defenders_match_exact(adversary_agent):
    """The ally is stationary (every row of the best response is the same), so it is
    embedded as a policy of the observation alone; a step-counting ally gives the same."""
    defender = f"agent_{1 - adversary_agent}"
    rng = np.random.default_rng(50 + adversary_agent)
    for d, n in [(X.UNIFORM[0], 300), (np.array([[0.3, 0.7], [0.8, 0.2]]), 300)]:
        policy, value = X.byzantine_best_response(d, adversary_agent, 100)
        assert (policy == policy[0]).all()  # stationary
        stationary = Tabular(policy[0], rng)  # deterministic table: rng unused
        env = byzantine_env(adversary_agent, stationary)
        samples, _ = returns(env, {defender: Tabular(d, rng)}, n, seed=2)
        # the default start is uniform: the exact expectation is the mean over s1, s2;
        # a random ally (Li et al.'s "random agent") would leave any defender 50
        random_ally = X.episodic_value(d, X.UNIFORM[1], 100).mean()
        assert random_ally == pytest.approx(50)
        assert_mc(samples, value.mean(), must_differ_from=None if d is X.UNIFORM[0] else 50)
        step_env = byzantine_env(adversary_agent, StepTable(policy))
        again, _ = returns(step_env, {defender: Tabular(d, np.random.default_rng(9))}, 50, seed=3)
        assert_mc(again, value.mean())
