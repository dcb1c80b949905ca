"""``adv/smax_4m_vs_3m-v0``: SMAX's 4 marines vs 3 marines (``adv_envs.smax_4m_vs_3m``).

PettingZoo's API and seed tests, the documented spaces, directions, masks, rewards (SMAX's and
SMAC's, exact for a won and a lost battle), episode ends, the threat wrappers on it, rendering
and errors. The tests that run the simulator need the ``smax`` extra (JAX, jaxmarl) and are
skipped without it; the check that importing the package imports no JAX, and the argument
checks, run everywhere. Every env in a process shares one compiled simulator, so the tests
pay JAX's import and compilation (about 8 s) once per process.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, seed_test

from adv_envs import smax_4m_vs_3m as smax
from adv_wrappers import byzantine_v0, k_corruption_v0
from adv_wrappers.errors import InvalidActionError, InvalidArgumentError, MissingActionError

ALLIES = [f"ally_{i}" for i in range(4)]
NORTH, EAST, SOUTH, WEST, STOP = range(5)
ONLY_STOP = [0, 0, 0, 0, 1, 0, 0, 0]
# SMAC's normalizer for 3 enemy marines: max_reward / reward_scale_rate
SMAC_UNIT = (3 * (45 + 10) + 200) / 20


@pytest.fixture
def make():
    """``smax_4m_vs_3m.parallel_env``, or a skip without the smax extra."""
    pytest.importorskip("jax", reason="adv/smax_4m_vs_3m-v0 needs the smax extra")
    if importlib.util.find_spec("jaxmarl") is None:
        pytest.skip("adv/smax_4m_vs_3m-v0 needs the smax extra (jaxmarl)")
    return smax.parallel_env


def focus_fire(infos: dict, agents: list[str]) -> dict[str, int]:
    """Attack the lowest-index enemy in range, else move east (towards the enemy)."""
    actions = {}
    for agent in agents:
        mask = infos[agent]["action_mask"]
        targets = np.flatnonzero(mask[5:])
        actions[agent] = 5 + int(targets[0]) if len(targets) else (EAST if mask[EAST] else STOP)
    return actions


def health(state: np.ndarray) -> np.ndarray:
    """Health fractions of the seven units from ``state()`` (0 for the dead)."""
    return state[0:70:10]


def test_importing_the_package_imports_no_jax():
    code = (
        "import sys, pettingzoo, adv_wrappers, adv_envs, adv_envs.smax_4m_vs_3m\n"
        "assert 'adv/smax_4m_vs_3m-v0' in pettingzoo.parallel_registry\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('jax', 'jaxlib', 'jaxmarl', 'flax')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


IMPORT_SCRIPT = """
import io, sys
from adv_envs import smax_4m_vs_3m
out, err = sys.stdout, sys.stderr = io.StringIO(), io.StringIO()
env = smax_4m_vs_3m.parallel_env()
kept = sys.stdout is out and sys.stderr is err and out.getvalue() == ""
sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
print("kept", kept)
print("jaxmarl left", sorted(m for m in sys.modules if m.split(".")[0] == "jaxmarl"))
import jaxmarl  # the real package, imported afresh
from jaxmarl.environments.smax import HeuristicEnemySMAX
print("real", callable(jaxmarl.make), HeuristicEnemySMAX is not type(env.game))
"""


def test_building_an_env_imports_only_smax_from_jaxmarl(make):
    """No output, streams untouched, and no jaxmarl module left behind for the user's
    ``import jaxmarl`` (see ``_import_smax_alone``); the user's import is the real package."""
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    # the real jaxmarl prints lines of its own when the script imports it
    ours = ("kept", "jaxmarl", "real")
    lines = [line for line in result.stdout.splitlines() if line.startswith(ours)]
    assert lines == ["kept True", "jaxmarl left []", "real True True"], result.stdout


def test_spaces_and_agents(make):
    env = make()
    assert env.possible_agents == ALLIES and env.max_cycles == 100 and env.reward == "smax"
    space = env.observation_space("ally_0")
    assert space is env.observation_space("ally_0") and space.shape == (88,)
    assert space.dtype == np.float32 and (space.low == -1).all() and (space.high == 1).all()
    assert env.action_space("ally_3").n == 8 and env.state_space.shape == (84,)
    obs, infos = env.reset(seed=0)
    assert set(obs) == set(infos) == set(ALLIES) == set(env.agents)
    state = env.state()
    assert env.state_space.contains(state) and state.dtype == np.float32
    assert health(state).tolist() == [1.0] * 7
    positions = state[:70].reshape(7, 10)[:, 1:3]
    assert np.abs(positions[:4] - [8, 16]).max() < 2.5  # +-2, and pushed apart
    assert np.abs(positions[4:] - [24, 16]).max() < 2.5
    assert state[70:77].tolist() == [0, 0, 0, 0, 1, 1, 1] and state[77:].tolist() == [0] * 7
    for agent in ALLIES:
        assert space.contains(obs[agent])
        assert infos[agent] == {
            "action_mask": infos[agent]["action_mask"],
            "alive": True,
            "battle_won": False,
        }
        assert infos[agent]["action_mask"].tolist() == [1, 1, 1, 1, 1, 0, 0, 0]
        assert infos[agent]["action_mask"].dtype == np.int8
        assert obs[agent][78] == 1.0  # own health, after 6 x 13 features of the other units


def test_pettingzoo_api_and_seed_tests(make):
    parallel_api_test(make(max_cycles=30), num_cycles=40)
    api_test(smax.env(max_cycles=30, reward="smac_signed"), num_cycles=40)
    parallel_seed_test(lambda: make(max_cycles=30), num_cycles=30)
    seed_test(lambda: smax.env(max_cycles=30, reward="smac"), num_cycles=30)


def test_seeded_battles_are_reproducible(make):
    a, b = make(), make()
    rng = np.random.default_rng(0)
    compared = 0
    for episode in range(2):  # the second reset continues the key sequence
        seed = 5 if episode == 0 else None
        (obs_a, infos_a), (obs_b, _) = a.reset(seed=seed), b.reset(seed=seed)
        while True:
            assert all(np.array_equal(obs_a[x], obs_b[x]) for x in ALLIES)
            assert np.array_equal(a.state(), b.state())
            compared += 1
            if not a.agents:
                break
            actions = {
                x: int(rng.choice(np.flatnonzero(infos_a[x]["action_mask"]))) for x in a.agents
            }
            obs_a, r_a, _, _, infos_a = a.step(actions)
            obs_b, r_b, *_ = b.step(actions)
            assert r_a == r_b
    assert compared >= 10, compared
    starts = {tuple(a.reset(seed=s)[0]["ally_0"][78:81]) for s in range(5)}
    assert len(starts) == 5


@pytest.mark.parametrize(
    "action,direction", [(NORTH, (0, 1)), (EAST, (1, 0)), (SOUTH, (0, -1)), (WEST, (-1, 0))]
)
def test_movement_directions(make, action, direction):
    env = make()
    env.reset(seed=1)
    before = env.state()[:70].reshape(7, 10)[:4, 1:3]
    env.step(dict.fromkeys(ALLIES, action))
    moved = env.state()[:70].reshape(7, 10)[:4, 1:3] - before
    along = moved @ np.array(direction, float)
    assert np.allclose(along, 1.575, atol=0.3), moved  # 8 x 1/16 s at speed 3.15


def test_dead_units_stay_with_only_stop(make):
    """Allies that never attack lose: SMAX's reward is 0, SMAC's signed one exactly -23."""
    envs = [make(reward=r) for r in ("smax", "smac", "smac_signed")]
    for env in envs:
        env.reset(seed=0)
    returns = np.zeros(3)
    dead_seen = steps = 0
    while envs[0].agents:
        results = [env.step(dict.fromkeys(env.agents, STOP)) for env in envs]
        returns += [r[1]["ally_0"] for r in results]
        obs, _, terms, truncs, infos = results[0]
        steps += 1
        for agent in ALLIES:
            if not infos[agent]["alive"]:
                assert infos[agent]["action_mask"].tolist() == ONLY_STOP
                assert not obs[agent].any()  # a dead agent observes nothing
                if envs[0].agents:
                    assert agent in envs[0].agents  # and stays until the episode ends
                    dead_seen += 1
        assert envs[0].state_space.contains(envs[0].state())  # cooldowns clipped at 0
    assert dead_seen > 0 and steps < 100
    assert all(terms.values()) and not any(truncs.values())
    assert not any(infos[a]["alive"] or infos[a]["battle_won"] for a in ALLIES)
    assert returns[0] == returns[1] == 0.0
    assert returns[2] == pytest.approx(-(4 * 45 + 4 * 10 + 200) / SMAC_UNIT)


def test_won_battle_rewards(make):
    """A won battle earns 2.0 (SMAX) and 20.0 (SMAC), whatever it cost; SMAC's signed reward
    subtracts the allies' losses. SMAX's step reward is the enemies' health lost / 3 + win."""
    envs = [make(reward=r) for r in ("smax", "smac", "smac_signed")]
    infos = [env.reset(seed=2)[1] for env in envs][0]
    returns = np.zeros(3)
    steps = 0
    while envs[0].agents:
        before = health(envs[0].state())
        results = [env.step(focus_fire(infos, env.agents)) for env in envs]
        rewards = [r[1]["ally_0"] for r in results]
        infos = results[0][4]
        after = health(envs[0].state())
        won = infos["ally_0"]["battle_won"]
        assert rewards[0] == pytest.approx((before - after)[4:].sum() / 3 + won, abs=1e-6)
        assert all(set(r[1].values()) == {r[1]["ally_0"]} for r in results)  # shared
        returns += rewards
        steps += 1
    assert won and all(results[0][2].values()) and steps < 100
    lost_health = 45 * (1 - after[:4]).sum()
    allies_killed = int((after[:4] == 0).sum())
    assert returns[0] == pytest.approx(2.0, abs=1e-5)
    assert returns[1] == pytest.approx(20.0)
    assert returns[2] == pytest.approx(20.0 - (lost_health + 10 * allies_killed) / SMAC_UNIT)
    assert lost_health > 0  # the signed reward's penalty was exercised


def test_masked_actions_are_executed_as_stop(make):
    """An attack on an enemy out of range does what stop does; only the attempted target shows
    up in the other units' observations ("last target": attack 7 / 7 actions)."""
    a, b = make(), make()
    _, infos = a.reset(seed=3)
    b.reset(seed=3)
    assert infos["ally_0"]["action_mask"][7] == 0  # the teams start out of range
    obs_a, r_a, *_ = a.step({**dict.fromkeys(ALLIES, STOP), "ally_0": 7})
    obs_b, r_b, *_ = b.step(dict.fromkeys(ALLIES, STOP))
    assert r_a == r_b and np.array_equal(a.state(), b.state())
    diff = np.flatnonzero(obs_a["ally_1"] != obs_b["ally_1"])
    assert diff.tolist() == [5] and obs_a["ally_1"][5] == 1.0  # ally_0's block comes first
    assert np.array_equal(obs_a["ally_0"], obs_b["ally_0"])


def test_episode_is_truncated_at_max_cycles(make):
    env = make(max_cycles=3)
    env.reset(seed=0)
    for step in range(1, 4):
        _, _, terms, truncs, _ = env.step(dict.fromkeys(env.agents, STOP))
        assert not any(terms.values())
        assert all(truncs.values()) == (step == 3)
    assert env.agents == []


@pytest.mark.parametrize("wrapper", [byzantine_v0, k_corruption_v0])
def test_threat_wrappers_run_on_it(make, wrapper):
    kwargs = {"k": 1} if wrapper is k_corruption_v0 else {}
    env = wrapper(make(max_cycles=10), adversary="random", **kwargs)
    obs, infos = env.reset(seed=0)
    assert len(env.agents) == 3  # one of the four allies is the adversary's
    steps = 0
    while env.agents:
        actions = {a: int(np.flatnonzero(infos[a]["action_mask"])[0]) for a in env.agents}
        obs, rewards, terms, truncs, infos = env.step(actions)
        assert len(set(rewards.values())) == 1  # the team reward
        steps += 1
    assert 0 < steps <= 10


def test_rgb_array_frame(make):
    env = make(render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (512, 512, 3) and frame.dtype == np.uint8
    units = env.state()[:70].reshape(7, 10)[:, 1:3]
    for u, colour in ((0, [31, 119, 180]), (4, [214, 39, 40])):
        x, y = units[u]
        assert frame[int((32 - y) * 16), int(x * 16)].tolist() == colour  # north up
    assert frame[5, 250].tolist() == [245, 245, 245]


def test_render_without_mode_returns_none(make):
    env = make()
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode=None"):
        assert env.render() is None


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"max_cycles": 0}, "max_cycles"),
        ({"max_cycles": 60.0}, "max_cycles"),
        ({"reward": "sparse"}, "reward"),
        ({"reward": None}, "reward"),
        ({"walls_cause_death": 1}, "walls_cause_death"),
        ({"render_mode": "human"}, "render_mode"),
    ],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(InvalidArgumentError, match=name):  # checked before JAX is imported
        smax.parallel_env(**kwargs)


def test_bad_actions(make):
    env = make()
    with pytest.raises(MissingActionError, match="env.agents"):
        env.step(dict.fromkeys(ALLIES, STOP))  # before reset
    env.reset(seed=0)
    for bad in (8, -1, 1.5, "stop"):
        with pytest.raises(InvalidActionError, match="ally_2"):
            env.step({**dict.fromkeys(ALLIES, STOP), "ally_2": bad})
    with pytest.raises(MissingActionError, match="ally_3"):
        env.step(dict.fromkeys(ALLIES[:3], STOP))
    with pytest.raises(MissingActionError, match="enemy_0"):
        env.step({**dict.fromkeys(ALLIES, STOP), "enemy_0": STOP})
    assert env.t == 0  # nothing was executed


def test_benchmark_measures_one_env_and_keeps_the_others(make, tmp_path):
    """``baselines/benchmark_envs.py --env ID`` merges one env's rate into an existing file."""
    path = Path(__file__).resolve().parent.parent / "baselines" / "benchmark_envs.py"
    spec = importlib.util.spec_from_file_location("benchmark_envs", path)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    output = tmp_path / "rates.json"
    output.write_text(json.dumps({"adv/lbf-v0": 5.0, "_measured": {"date": "2000-01-01"}}))
    script.main(["--env", "adv/smax_4m_vs_3m-v0", "--seconds", "0.05", "--output", str(output)])
    rates = json.loads(output.read_text())
    assert rates["adv/lbf-v0"] == 5.0 and rates["adv/smax_4m_vs_3m-v0"] > 0
    assert rates["_measured"]["date"] == "2000-01-01"
    assert set(rates["_measured"]["separately"]) == {"adv/smax_4m_vs_3m-v0"}
