"""adv_envs.batched: the batched torch envs equal their PettingZoo versions step for step.

The equivalence test loads ``B`` PettingZoo envs (reset with different seeds) into the rows
of a batched env and steps both with the same random actions for whole episodes; it compares
observations, rewards, terminations, truncations and the float64 world (positions and
velocities) at every step and asserts how many (copy, step) pairs it compared. Cases are
generated from ``adv_envs.batched.ENVS`` and ``ARGUMENTS``: every env, Discrete and Box
actions where the env has ``continuous_actions``, both reward scales where it has ``rewards``.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("mpe2")

from adv_envs import batched  # noqa: E402 - after the importorskips
from adv_wrappers.errors import (  # noqa: E402
    InvalidActionError,
    InvalidArgumentError,
    MissingActionError,
)

ROOT = Path(__file__).resolve().parent.parent
BENCHMARK = ROOT / "baselines" / "benchmark_batched.py"

B = 4  # copies per batch
EPISODES = 2  # whole episodes per case
# float32 observations and rewards: the batched value equals the PettingZoo value rounded to
# float32 (measured: exactly, on CPU); the tolerance allows last-bit differences of other
# torch builds and devices (sqrt, logaddexp). The float64 world: measured exactly equal.
ATOL_32 = 1e-6
ATOL_64 = 1e-9


def _cases() -> list[tuple[str, dict]]:
    cases = []
    for env_id, arguments in batched.ARGUMENTS.items():
        variants: list[dict] = [{}]
        if "continuous_actions" in arguments:
            variants += [{"continuous_actions": True}]
        if "rewards" in arguments:
            variants += [{**v, "rewards": "original"} for v in variants]
        if "observe_history" in arguments:
            variants = [{"max_cycles": 20}, {"max_cycles": 20, "observe_history": True}]
        cases += [(env_id, v) for v in variants]
    # non-default sizes and weights
    cases += [
        ("adv/independent_spread-v0", {"N": 5, "collision_penalty": 2.5}),
        # the heap of episode 1 puts 3+ agents in contact: where the two counts differ
        ("adv/independent_spread-v0", {"N": 5, "collision_count": "per_step"}),
        ("adv/cooperative_navigation-v0", {"N": 6, "local_ratio": 0.3}),
        ("adv/exchange_target-v0", {"local_ratio": 0.2, "max_cycles": 10}),
        ("adv/physical_deception-v0", {"N": 4, "continuous_actions": True}),
    ]
    return cases


CASES = _cases()


def _pettingzoo(env_id: str, **kwargs):
    module = importlib.import_module(f"adv_envs.{env_id.split('/')[1].rsplit('-', 1)[0]}")
    return module.parallel_env(**kwargs)


def _random_actions(env, rng: np.random.Generator) -> np.ndarray:
    if env.action_discrete:
        return np.stack([rng.integers(0, env.action_nvec) for _ in range(env.num_envs)])
    return rng.random((env.num_envs, env.num_agents, env.action_dim), dtype=np.float32)


def _world(raw) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """An MPE env's agent positions, velocities and whether two colliding agents touch."""
    world = getattr(raw, "world", None)
    if world is None:
        return None
    pos = np.array([a.state.p_pos for a in world.agents])
    size = np.array([a.size for a in world.agents])
    collide = np.array([a.collide for a in world.agents])
    dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    touching = (dist < size[:, None] + size[None]) & collide[:, None] & collide[None]
    touching &= ~np.eye(len(pos), dtype=bool)
    return pos, np.array([a.state.p_vel for a in world.agents]), bool(touching.any())


@pytest.mark.parametrize(("env_id", "kwargs"), CASES, ids=[f"{e}-{k}" for e, k in CASES])
def test_equals_pettingzoo(env_id, kwargs):
    envs = [_pettingzoo(env_id, **kwargs) for _ in range(B)]
    env = batched.make(env_id, B, seed=0, **kwargs)
    agents = env.possible_agents
    assert agents == envs[0].possible_agents
    for a in agents:
        assert env.observation_space(a) == envs[0].observation_space(a)
        assert env.action_space(a) == envs[0].action_space(a)
    rng = np.random.default_rng(1)
    compared = contacts = 0
    max_obs = max_reward = max_world = 0.0
    for episode in range(EPISODES):
        pz_obs = [p.reset(seed=1000 * episode + i)[0] for i, p in enumerate(envs)]
        if episode == 1 and hasattr(envs[0].unwrapped, "world"):
            # start the agents of every other copy in a heap: the contact forces must act
            for p in envs[::2]:
                agents_ = p.unwrapped.world.agents
                centre = agents_[0].state.p_pos.copy()
                for k, agent in enumerate(agents_):  # in a line, running into each other
                    offset = 0.03 * (k - (len(agents_) - 1) / 2) * np.array([1.0, 0.5])
                    agent.state.p_pos = centre + offset
                    agent.state.p_vel = -20 * offset
            pz_obs = [{a: p.unwrapped.observe(a) for a in agents} for p in envs]
        for i, p in enumerate(envs):
            env.load_from_pettingzoo(i, p)
        obs = env._observe()  # the loaded rows' observations, as reset would return them
        for i in range(B):
            for k, a in enumerate(agents):
                got = obs[i, k].numpy()
                n = env.obs_sizes[k]
                max_obs = max(max_obs, float(np.abs(got[:n] - pz_obs[i][a]).max()))
                assert not got[n:].any(), "padding must be zeros"
        if hasattr(envs[0].unwrapped, "state"):
            want = np.stack([p.unwrapped.state() for p in envs])
            np.testing.assert_allclose(env.state().numpy(), want, rtol=0, atol=ATOL_32)
        done = False
        while not done:
            actions = _random_actions(env, rng)
            obs, rewards, terms, truncs, infos = env.step(torch.as_tensor(actions))
            last = torch.where(infos["reset"][:, None, None], infos["final_obs"], obs)
            state = env.get_state()
            pz_obs = []
            for i, p in enumerate(envs):
                step = {
                    a: int(actions[i, k]) if env.action_discrete else actions[i, k]
                    for k, a in enumerate(agents)
                }
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    o, r, te, tr, _ = p.step(step)
                pz_obs.append(o)
                for k, a in enumerate(agents):
                    n = env.obs_sizes[k]
                    assert np.isfinite(o[a]).all() and np.isfinite(r[a])  # NaN would compare as 0
                    max_obs = max(max_obs, float(np.abs(last[i, k, :n].numpy() - o[a]).max()))
                    want = float(np.float32(r[a]))  # the batched reward is float32
                    reward = abs(float(rewards[i, k]) - want) / max(1.0, abs(want))
                    max_reward = max(max_reward, reward)
                    assert bool(terms[i, k]) == te[a] and bool(truncs[i, k]) == tr[a], (i, a)
                world = _world(p.unwrapped)
                if world is not None and not bool(infos["reset"][i]):
                    pos = np.abs(state["p_pos"][i].numpy() - world[0]).max()
                    vel = np.abs(state["p_vel"][i].numpy() - world[1]).max()
                    max_world = max(max_world, float(pos), float(vel))
                    contacts += world[2]
                compared += 1
                done = done or all(te.values()) or all(tr.values())
            assert torch.equal(infos["reset"], torch.full((B,), done))
            for k, n in enumerate(env.obs_sizes):
                assert not obs[:, k, n:].any() and not last[:, k, n:].any(), "padding: zeros"
            assert bool(obs.isfinite().all() and last.isfinite().all() and rewards.isfinite().all())
    print(
        f"{env_id} {kwargs}: {compared} (copy, step) pairs ({contacts} in contact), "
        f"max |obs diff| {max_obs:.1e}, "
        f"max |reward diff| / max(1, |reward|) {max_reward:.1e}, max |world diff| {max_world:.1e}"
    )
    max_cycles = envs[0].unwrapped.max_cycles
    assert compared == EPISODES * B * max_cycles
    assert max_obs <= ATOL_32 and max_reward <= ATOL_32
    assert max_world <= ATOL_64
    if getattr(env, "collide", False):
        assert contacts > 0, "the contact forces were never exercised"


@pytest.mark.parametrize(("count", "paid"), [("per_agent", 20.0), ("per_step", 10.0)])
def test_independent_spread_collision_count_hand_placed(count, paid):
    """agent_0 touches agents 1 and 2 (the scene of test_env_mpe's hand-placed rewards): it
    pays the penalty twice per_agent and once per_step; the batched env as the PettingZoo one."""
    from tests.test_env_mpe import noop_step, place

    pz = _pettingzoo("adv/independent_spread-v0", collision_count=count)
    pz.reset(seed=1)
    place(pz, [(0.0, 0.0), (0.25, 0.0), (-0.25, 0.0)], [(0.0, 1.0), (1.0, 0.0), (-1.0, -1.0)])
    env = batched.make("adv/independent_spread-v0", 1, seed=0, collision_count=count)
    env.load_from_pettingzoo(0, pz)
    rewards = env.step(torch.zeros((1, 3), dtype=torch.int64))[1][0]
    want = noop_step(pz)[1]
    assert want["agent_0"] == pytest.approx(-1.0 - paid, abs=1e-6)
    assert rewards.tolist() == pytest.approx([want[a] for a in pz.possible_agents], abs=1e-6)


def test_equivalence_can_fail():
    """A batched env one step ahead differs from its PettingZoo env (the test can fail)."""
    p = _pettingzoo("adv/cooperative_navigation-v0")
    p.reset(seed=3)
    env = batched.make("adv/cooperative_navigation-v0", 1, seed=0)
    env.load_from_pettingzoo(0, p)
    actions = np.array([[2, 4, 1]])
    env.step(torch.as_tensor(actions))
    obs, *_ = env.step(torch.as_tensor(actions))
    o, *_ = p.step({a: int(actions[0, k]) for k, a in enumerate(p.agents)})
    assert np.abs(obs[0, 0].numpy() - o["agent_0"]).max() > 1e-3


# --------------------------------------------------------------------------- reset


@pytest.mark.parametrize("env_id", [e for e in batched.ENVS if "xnor" not in e])
def test_mpe_reset_distribution(env_id):
    """Positions uniform in [-1, 1]^2 (mean 0, variance 1/3), zero velocities and messages,
    goals uniform over the landmarks, step counters 0."""
    n = 4096
    env = batched.make(env_id, n, seed=5)
    env.reset()
    s = env.get_state()
    for key in ("p_pos", "l_pos"):
        x = s[key]
        assert x.dtype == torch.float64
        assert float(x.min()) >= -1 and float(x.max()) <= 1
        assert abs(float(x.mean())) < 0.03
        assert abs(float(x.var()) - 1 / 3) < 0.02
    assert not s["p_vel"].any() and not s["c"].any() and not s["t"].any()
    if s["goal"].numel():
        counts = torch.bincount(s["goal"].flatten(), minlength=env.n_landmarks).double()
        expected = s["goal"].numel() / env.n_landmarks
        assert counts.numel() == env.n_landmarks
        assert float((counts - expected).abs().max()) < 5 * expected**0.5


def test_reset_seeds_and_generator():
    env = batched.make("cooperative_navigation", 8, seed=0)
    a, _ = env.reset(seed=7)
    b, _ = env.reset()
    c, _ = env.reset(seed=7)
    assert torch.equal(a, c) and not torch.equal(a, b)
    other = batched.make("adv/cooperative_navigation-v0", 8, seed=7)
    assert torch.equal(other.reset()[0], a)


def test_xnor_xor_reset_and_discount():
    n = 20000
    env = batched.make("adv/xnor_xor-v0", n, seed=1, initial_state_probs=(0.3, 0.7))
    obs, _ = env.reset()
    share_s1 = float(obs[:, 0, 0].mean())
    assert abs(share_s1 - 0.3) < 5 * (0.3 * 0.7 / n) ** 0.5
    obs, _ = env.reset(options={"initial_state": "s2"})
    assert torch.equal(obs[:, :, 1], torch.ones(n, 2))
    # discount 0.9: each step terminates with probability 0.1
    env = batched.make("adv/xnor_xor-v0", n, seed=2, discount=0.9, max_cycles=None)
    env.reset()
    _, _, terms, truncs, infos = env.step(torch.zeros((n, 2), dtype=torch.long))
    assert abs(float(terms[:, 0].double().mean()) - 0.1) < 5 * (0.09 / n) ** 0.5
    assert not truncs.any() and torch.equal(infos["reset"], terms[:, 0])


# --------------------------------------------------------------------------- auto-reset


def test_same_step_auto_reset():
    """A copy that ends an episode is reset in the same step; final_obs holds its last
    observations (equal to stepping a copy without the time limit), zeros elsewhere."""
    env = batched.make("adv/independent_spread-v0", 4, seed=0, max_cycles=5)
    endless = batched.make("adv/independent_spread-v0", 4, seed=0, max_cycles=100)
    env.reset()
    state = env.get_state()
    state["t"] = torch.tensor([4, 0, 4, 2])  # copies 0 and 2 are at their last step
    env.set_state(state)
    endless.set_state(state)
    actions = torch.tensor([[1, 2, 3], [4, 0, 1], [2, 2, 2], [0, 3, 4]])
    obs, rewards, terms, truncs, infos = env.step(actions)
    want_obs, want_rewards, *_ = endless.step(actions)
    done = torch.tensor([True, False, True, False])
    assert torch.equal(infos["reset"], done)
    assert torch.equal(truncs, done[:, None].expand(4, 3)) and not terms.any()
    assert torch.equal(rewards, want_rewards)
    assert torch.equal(infos["final_obs"][done], want_obs[done])
    assert not infos["final_obs"][~done].any()
    assert torch.equal(obs[~done], want_obs[~done])
    new = env.get_state()
    assert new["t"].tolist() == [0, 1, 0, 3]
    assert not new["p_vel"][done].any()  # a new episode starts at rest
    assert torch.equal(obs[done][:, :, :2], torch.zeros(2, 3, 2))  # observed velocities


def test_get_set_state_round_trip():
    env = batched.make("adv/exchange_target-v0", 3, seed=0)
    env.reset()
    saved = env.get_state()
    actions = torch.tensor([[7, 49], [0, 12], [33, 5]])
    first = env.step(actions)
    env.set_state(saved)
    second = env.step(actions)
    for x, y in zip(first[:4], second[:4], strict=True):
        assert torch.equal(x, y)


# --------------------------------------------------------------------------- device


def test_device_argument():
    env = batched.make("adv/keep_away-v0", 2, device=torch.device("cpu"), seed=0)
    obs, _ = env.reset()
    assert env.device == torch.device("cpu") and obs.device.type == "cpu"
    assert all(v.device.type == "cpu" for v in env.get_state().values())
    with pytest.raises(InvalidArgumentError, match="device"):
        batched.make("adv/keep_away-v0", 2, device="no-such-device")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_cpu():
    cpu = batched.make("adv/cooperative_navigation-v0", 64, seed=0)
    gpu = batched.make("adv/cooperative_navigation-v0", 64, device="cuda", seed=0)
    cpu.reset()
    gpu.set_state(cpu.get_state())
    rng = np.random.default_rng(0)
    for _ in range(24):
        actions = torch.as_tensor(_random_actions(cpu, rng))
        a = cpu.step(actions)
        b = gpu.step(actions.cuda())
        assert b[0].device.type == "cuda"
        for x, y in zip(a[:2], b[:2], strict=True):
            torch.testing.assert_close(x, y.cpu(), rtol=0, atol=ATOL_32)


# --------------------------------------------------------------------------- errors


def test_make_errors():
    with pytest.raises(InvalidArgumentError, match="env_id"):
        batched.make("adv/pursuit-v0", 2)
    with pytest.raises(InvalidArgumentError, match="'collision_penalty'"):
        batched.make("adv/cooperative_navigation-v0", 2, collision_penalty=1.0)
    with pytest.raises(InvalidArgumentError, match="render_mode"):
        batched.make("adv/keep_away-v0", 2, render_mode="rgb_array")
    with pytest.raises(InvalidArgumentError, match="num_envs"):
        batched.make("adv/keep_away-v0", 0)
    with pytest.raises(InvalidArgumentError, match="N must be"):
        batched.make("adv/physical_deception-v0", 2, N=0)
    with pytest.raises(InvalidArgumentError, match="rewards"):
        batched.make("adv/exchange_target-v0", 2, rewards="mine")
    with pytest.raises(InvalidArgumentError, match="seed"):
        batched.make("adv/keep_away-v0", 2, seed=-1)


def test_step_errors():
    env = batched.make("adv/cooperative_navigation-v0", 2, seed=0)
    with pytest.raises(batched.BatchedEnvStateError):
        env.step(torch.zeros((2, 3), dtype=torch.long))
    env.reset()
    with pytest.raises(InvalidArgumentError, match=r"shape \[num_envs, num_agents\]"):
        env.step(torch.zeros((2, 2), dtype=torch.long))
    with pytest.raises(InvalidArgumentError, match="integer"):
        env.step(torch.zeros((2, 3)))
    with pytest.raises(InvalidActionError, match=r"actions\[1, 2\] = 5 .*'agent_2'"):
        env.step(torch.tensor([[0, 0, 0], [0, 0, 5]]))
    with pytest.raises(InvalidActionError, match=r"actions\[0, 0\] = -1"):
        env.step(np.array([[-1, 0, 0], [0, 0, 0]]))
    box = batched.make("adv/cooperative_navigation-v0", 2, seed=0, continuous_actions=True)
    box.reset()
    ok = torch.full((2, 3, 5), 0.5)
    box.step(ok)
    bad = ok.clone()
    bad[1, 0, 3] = float("nan")
    with pytest.raises(MissingActionError, match=r"actions\[1, 0\].*NaN"):
        box.step(bad)
    bad = ok.clone()
    bad[0, 2, 1] = 1.5
    with pytest.raises(InvalidActionError, match=r"actions\[0, 2\].*\[0, 1\]"):
        box.step(bad)
    with pytest.raises(InvalidArgumentError, match="action_dim"):
        box.step(torch.full((2, 3, 4), 0.5))


def test_state_and_load_errors():
    env = batched.make("adv/keep_away-v0", 2, seed=0)
    env.reset()
    with pytest.raises(InvalidArgumentError, match="keys"):
        env.set_state({"p_pos": torch.zeros(2, 2, 2)})
    state = env.get_state()
    state["p_pos"] = state["p_pos"].float()
    with pytest.raises(InvalidArgumentError, match=r"state\['p_pos'\].*dtype"):
        env.set_state(state)
    p = _pettingzoo("adv/keep_away-v0")
    p.reset(seed=0)
    with pytest.raises(InvalidArgumentError, match="index"):
        env.load_from_pettingzoo(2, p)
    other = _pettingzoo("adv/physical_deception-v0")
    other.reset(seed=0)
    with pytest.raises(InvalidArgumentError, match="env must be"):
        env.load_from_pettingzoo(0, other)
    longer = _pettingzoo("adv/keep_away-v0", max_cycles=30)
    longer.reset(seed=0)
    with pytest.raises(InvalidArgumentError, match="max_cycles"):
        env.load_from_pettingzoo(0, longer)


# --------------------------------------------------------------------------- benchmark


def test_benchmark_script_runs(tmp_path):
    """``baselines/benchmark_batched.py`` at a tiny size, so that it cannot rot."""
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable,
            str(BENCHMARK),
            "--envs",
            "adv/keep_away-v0",
            "--copies",
            "1",
            "4",
            "--steps",
            "20",
            "--seconds",
            "0.05",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "keep_away" in result.stdout and "x PettingZoo" in result.stdout
    assert out.exists()
