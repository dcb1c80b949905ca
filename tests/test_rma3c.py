"""``baselines/rma3c.py`` (He et al. (TMLR 2023), Algorithm 1) and ``samg_report.py``: the
trained perturbation is the wrapper's, the checkpoint's adversaries plug into the wrapper,
an exact resume after SIGKILL, and a learned adversary that hurts a frozen policy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import adv_wrappers  # noqa: F401  (registers the adv/ envs)
from adv_envs import echo_v0
from adv_wrappers import state_perturbation_v0
from adv_wrappers.train import load_policy, read_record
from adv_wrappers.train.envs import evaluate, make_env
from adv_wrappers.train.offpolicy import perturbed_observation
from tests.test_trainers import kill_and_resume, only, train

ROOT = Path(__file__).resolve().parent.parent
RMA3C = ROOT / "baselines" / "rma3c.py"
REPORT = ROOT / "baselines" / "samg_report.py"
CN = "adv/cooperative_navigation-v0"
TINY = [
    "--learning-starts", "300", "--minibatch-size", "64", "--train-every", "10",
    "--buffer-size", "5000", "--gda-steps", "3",
]  # fmt: skip


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("epsilon", [0.3, 2.5])
def test_perturbed_observation_is_the_wrappers(norm, epsilon):
    """The differentiable map RMA3C trains through gives the observation the wrapper gives for
    the same adversary action: 40 resets and steps of the bounded echo env (the clip binds at
    epsilon 2.5), to float32 rounding (the wrapper adds in float64 before casting)."""
    rng = np.random.default_rng(0)
    u_now = {}

    def chi(obs):
        return u_now["u"]

    env = state_perturbation_v0(
        echo_v0.parallel_env(n_agents=3, continuous=True, max_cycles=4), epsilon, norm=norm,
        agents=["agent_1"], attack={"agent_1": chi},
    )  # fmt: skip
    low = torch.as_tensor(env.unwrapped.observation_space("agent_1").low)
    high = torch.as_tensor(env.unwrapped.observation_space("agent_1").high)
    compared = 0
    u_now["u"] = rng.uniform(-1, 1, 3).astype(np.float32)
    obs, infos = env.reset(seed=0)
    for _ in range(40):
        true = infos["agent_1"]["state_perturbation"]["true_obs"]["agent_1"]
        expected = perturbed_observation(
            torch.as_tensor(true), torch.as_tensor(u_now["u"]), epsilon, norm, low, high
        )
        torch.testing.assert_close(torch.as_tensor(obs["agent_1"]), expected, rtol=0, atol=1e-6)
        compared += 1
        u_now["u"] = rng.uniform(-1, 1, 3).astype(np.float32)
        actions = {a: rng.uniform(-1, 1, 1).astype(np.float32) for a in env.agents}
        obs, _, _, truncs, infos = env.step(actions)
        if any(truncs.values()):
            obs, infos = env.reset()
    assert compared == 40


def test_run_exports_actors_and_adversaries_that_plug_into_the_wrapper(tmp_path):
    train("rma3c", tmp_path, "--env-kwargs", '{"N": 2, "continuous_actions": true}', *TINY,
          "--total-timesteps", "600", "--eval-episodes", "2", timeout=180)  # fmt: skip
    final = only("runs/*/checkpoints/final.safetensors", tmp_path)
    record = read_record(final)
    assert record["algorithm"] == "rma3c" and record["global_step"] == 600
    assert sorted(record["agents"]) == sorted(
        ["agent_0", "agent_1", "agent_0_obs_adversary", "agent_1_obs_adversary"]
    )
    chi = load_policy(final, agent="agent_0_obs_adversary")
    assert chi.spec.head == "tanh"
    u = chi(np.zeros(chi.observation_space.shape, np.float32))
    assert u.shape == (12,) and np.abs(u).max() <= 1.0
    threat = {"name": "state_perturbation_v0", "kwargs": {"epsilon": 1.0, "attack": {
        a: {"checkpoint": str(final), "agent": f"{a}_obs_adversary"} for a in ["agent_0", "agent_1"]
    }}}  # fmt: skip
    env_fn = make_env(CN, {"N": 2, "continuous_actions": True}, threat)
    policies = {a: load_policy(final, agent=a) for a in ["agent_0", "agent_1"]}
    returns = evaluate(env_fn, policies, 2, 0)
    assert all(np.isfinite(r).all() for r in returns.values())
    # the replay buffer stores the true observations (the adversaries' rows), not the perturbed
    from safetensors.torch import load_file

    tensors = load_file(str(final))
    assert tensors["training/model/replay.rows.obs"].shape == (600, 2, 12)


@pytest.mark.parametrize("gda", ["simultaneous", "alternating"])
def test_killed_run_resumes_exactly(tmp_path, gda):
    flags = ["--env-kwargs", '{"N": 2, "continuous_actions": true}', *TINY, "--gda", gda,
             "--total-timesteps", "900", "--checkpoint-every", "400", "--eval-episodes", "0"]  # fmt: skip
    tensors, _ = kill_and_resume(
        "rma3c", flags, tmp_path, tag="charts/SPS", checkpoint=400, total=900
    )
    assert int(tensors["training/model/replay.size"]) == 900


def test_bad_flags(tmp_path):
    result = train("rma3c", tmp_path, "--gda-steps", "0", check=False, timeout=60)
    assert result.returncode != 0 and "gda_steps" in result.stderr
    result = train("rma3c", tmp_path, "--gda", "sequential", check=False, timeout=60)
    assert result.returncode != 0 and "alternating" in result.stderr
    result = train("rma3c", tmp_path, "--env-id", "adv/multi_ant-v0", "--total-timesteps", "10",
                   check=False, timeout=120)  # fmt: skip
    assert result.returncode != 0 and "relaxed one-hots" in result.stderr


def test_rma3c_adversary_hurts_a_frozen_policy(tmp_path):
    """MADDPG learns one-agent navigation (N=1, relaxed actions, 10K steps); rma3c.py then
    trains only its critic and adversary against the frozen actor (`--init-actors`, actor
    learning rate 0; 5K steps, 5 GDA steps). Greedy, 20 episodes: measured over seeds 1-5,
    clean -4.10 to -4.42, under the trained adversary -11.1 to -16.1 (a drop of 6.9 to 11.6);
    with the untrained adversary (no update) the return is the clean one (-4.16, seed 1).
    Thresholds: the clean policy above -8, the drop at least 3.5."""
    kwargs = '{"N": 1, "continuous_actions": true}'
    (tmp_path / "maddpg").mkdir()
    train("maddpg", tmp_path / "maddpg", "--env-kwargs", kwargs, "--total-timesteps", "10000",
          "--learning-starts", "1000", "--minibatch-size", "256", "--train-every", "25",
          "--eval-episodes", "0", timeout=400)  # fmt: skip
    actors = only("maddpg/runs/*/checkpoints/final.safetensors", tmp_path)
    (tmp_path / "rma3c").mkdir()
    train("rma3c", tmp_path / "rma3c", "--env-kwargs", kwargs, "--init-actors", str(actors),
          "--actor-learning-rate", "0", "--total-timesteps", "5000", "--learning-starts", "500",
          "--minibatch-size", "256", "--train-every", "25", "--gda-steps", "5",
          "--eval-episodes", "0", timeout=400)  # fmt: skip
    final = only("rma3c/runs/*/checkpoints/final.safetensors", tmp_path)
    # the actor stayed frozen: rma3c's exported actor is MADDPG's
    frozen, exported = load_policy(actors, agent="agent_0"), load_policy(final, agent="agent_0")
    for k, v in frozen.actor.state_dict().items():
        assert torch.equal(v, exported.actor.state_dict()[k]), k
    policy = {"agent_0": frozen}
    clean = evaluate(make_env(CN, json.loads(kwargs)), policy, 20, 1)["agent_0"].mean()
    threat = {"name": "state_perturbation_v0", "kwargs": {"epsilon": 1.0, "attack": {
        "agent_0": {"checkpoint": str(final), "agent": "agent_0_obs_adversary"}}}}  # fmt: skip
    attacked = evaluate(make_env(CN, json.loads(kwargs), threat), policy, 20, 1)["agent_0"].mean()
    assert clean > -8.0, clean
    assert attacked < clean - 3.5, (clean, attacked)


def test_samg_report_end_to_end(tmp_path):
    """Tiny budgets, one seed, three rows (RMA3C, MADDPG w/ chi*, MAPPO w/ N): the chi* row
    trains against the RMA3C run's adversaries, every row is attacked by a fresh chi, and the
    table has the paper's numbers beside ours. The kept files alone (the workdir deleted)
    give the same table without training anything; other settings are refused."""
    import shutil
    import subprocess
    import sys

    common = [
        sys.executable, str(REPORT), "--workdir", "rep", "--results", "kept", "--rows", "rma3c",
        "maddpg_chi", "mappo_n", "--train-timesteps", "1500", "--last-episodes", "20",
        "--attack-timesteps", "512", "--gradient-attack-timesteps", "700", "--eval-episodes", "2",
        "--train-flags=--learning-starts 500 --minibatch-size 64 --train-every 50",
        "--mappo-flags=--num-envs 2 --num-steps 50 --minibatch-size 100",
        "--attack-flags=--num-envs 2 --num-steps 64",
    ]  # fmt: skip

    def report(*extra, timeout=600):
        return subprocess.run(
            [*common, *extra], cwd=tmp_path, capture_output=True, text=True, timeout=timeout,
            env={**__import__("os").environ, "WANDB_MODE": "offline"},
        )  # fmt: skip

    result = report("--seeds", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads((tmp_path / "rep" / "samg_report.json").read_text())
    assert sorted(r["row"] for r in rows) == ["maddpg_chi", "mappo_n", "rma3c"]
    assert all(np.isfinite([r["train_last"], r["clean"], r["fresh_chi"]]).all() for r in rows)
    off_policy = [r for r in rows if r["row"] != "mappo_n"]
    assert all(np.isfinite(r["gradient_chi"]) for r in off_policy)  # (not for MAPPO)
    assert "gradient_chi" not in [r for r in rows if r["row"] == "mappo_n"][0]
    gradient = only("rep/cn/rma3c/seed1/gradient_attack/runs/*/checkpoints/final.safetensors",
                    tmp_path)  # fmt: skip
    assert read_record(gradient)["args"]["actor_learning_rate"] == 0.0
    chi_run = only("rep/cn/maddpg_chi/seed1/runs/*/checkpoints/final.safetensors", tmp_path)
    attack = read_record(chi_run)["threat"]["kwargs"]["attack"]
    rma3c = tmp_path / "kept" / "cn_rma3c_seed1.safetensors"
    assert attack["agent_0"] == {"checkpoint": str(rma3c), "agent": "agent_0_obs_adversary"}
    # the kept RMA3C policies: no training state, the same actors as the run's final checkpoint
    full = only("rep/cn/rma3c/seed1/runs/*/checkpoints/final.safetensors", tmp_path)
    assert read_record(rma3c)["training"] is None and rma3c.stat().st_size < full.stat().st_size
    obs = np.random.default_rng(0).uniform(-1, 1, 18).astype(np.float32)
    for name in ("agent_0", "agent_0_obs_adversary"):
        np.testing.assert_array_equal(
            load_policy(rma3c, agent=name)(obs), load_policy(full, agent=name)(obs)
        )
    table = (tmp_path / "rep" / "samg_report.md").read_text()
    assert "| RMA3C | -401.7 |" in table and "| MAPPO w/ N | -569.07 |" in table
    # --report-only: the same table from the finished rows, nothing started
    again = report("--seeds", "1", "2", "--report-only", timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (tmp_path / "rep" / "samg_report.md").read_text() == table  # seed 2: not run
    assert not (tmp_path / "rep" / "cn" / "rma3c" / "seed2").exists()
    # a clean clone: only the kept files; the same table, nothing trained or evaluated
    shutil.rmtree(tmp_path / "rep")
    again = report("--seeds", "1", timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (tmp_path / "rep" / "samg_report.md").read_text() == table
    assert not (tmp_path / "rep" / "cn").exists()
    # kept files made with other settings are an error naming --results, not reused
    other = report("--seeds", "1", "--eval-episodes", "3", timeout=300)
    assert other.returncode != 0 and "--results" in other.stderr, other.stderr[-3000:]


def test_samg_report_table5_tests_against_chi_star_and_fresh_adversaries(tmp_path):
    """`--table 5` (cooperative navigation with 6 agents), tiny budgets: RMA3C and MADDPG w/
    chi*, each tested against the RMA3C run's chi* and attacked by fresh adversaries. A kept
    row without fresh adversaries (made before they were part of Table 5) gets them on the
    next run without being trained again; `--report-only` leaves it as it is."""
    import subprocess
    import sys

    command = [
        sys.executable, str(REPORT), "--table", "5", "--workdir", "rep", "--results", "kept",
        "--seeds", "1", "--rows", "rma3c", "maddpg_chi", "--train-timesteps", "1000",
        "--last-episodes", "10", "--attack-timesteps", "256", "--gradient-attack-timesteps",
        "300", "--eval-episodes", "2",
        "--train-flags=--learning-starts 500 --minibatch-size 64 --train-every 50",
        "--attack-flags=--num-envs 2 --num-steps 64",
    ]  # fmt: skip

    def report(*extra):
        result = subprocess.run(
            [*command, *extra], cwd=tmp_path, capture_output=True, text=True, timeout=900,
            env={**__import__("os").environ, "WANDB_MODE": "offline"},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    report()
    keys = ("chi_star", "train_last", "clean", "fresh_chi", "gradient_chi")
    for row in ("rma3c", "maddpg_chi"):
        kept = json.loads((tmp_path / "kept" / f"cn6_{row}_seed1.json").read_text())
        assert kept["agents"] == 6 and np.isfinite([kept[k] for k in keys]).all(), kept
    table = (tmp_path / "rep" / "samg_report.md").read_text()
    assert "| RMA3C | -3079.37 ± 16.16 |" in table and "fresh gradient chi" in table
    # a row kept without its fresh adversaries: --report-only shows it as it is ...
    path = tmp_path / "kept" / "cn6_maddpg_chi_seed1.json"
    old = json.loads(path.read_text())
    path.write_text(json.dumps({k: v for k, v in old.items()
                                if k not in ("clean", "fresh_chi", "gradient_chi")}))  # fmt: skip
    report("--report-only")
    assert "clean" not in json.loads(path.read_text())
    # ... and a run fills them in from the finished attacks, training nothing again
    trained = only("rep/cn6/maddpg_chi/seed1/runs/*/checkpoints/final.safetensors", tmp_path)
    mtime = trained.stat().st_mtime_ns
    report()
    assert json.loads(path.read_text()) == old and trained.stat().st_mtime_ns == mtime


def test_discrete_agents_and_observations_of_different_sizes(tmp_path):
    """Keep-away: Discrete agents (beside Box adversaries in one vector env) whose
    observations differ in size (8 and 19, padded to 19). Each exported adversary outputs
    its own agent's size and equals the trained network's first outputs on the padded
    observation; both plug into the wrapper."""
    from gymnasium import spaces
    from safetensors.torch import load_file

    train("rma3c", tmp_path, "--env-id", "adv/keep_away-v0", *TINY, "--total-timesteps", "600",
          "--eval-episodes", "2", timeout=180)  # fmt: skip
    final = only("runs/*/checkpoints/final.safetensors", tmp_path)
    tensors = load_file(str(final))
    rng = np.random.default_rng(0)
    for member, (agent, size) in enumerate([("adversary_0", 8), ("agent_0", 19)]):
        chi = load_policy(final, agent=f"{agent}_obs_adversary")
        assert chi.spec.action_dim == size and chi.action_space.shape == (size,)
        obs = rng.normal(size=size).astype(np.float32)
        padded = torch.zeros(19)
        padded[:size] = torch.as_tensor(obs)
        prefix = "training/model/adversaries."
        net = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
        h = padded
        for layer in range(3):
            w, b = net[f"net.{2 * layer}.weight"][member], net[f"net.{2 * layer}.bias"][member, 0]
            h = w @ h + b
            h = torch.relu(h) if layer < 2 else torch.tanh(h)
        np.testing.assert_allclose(chi(obs), h[:size].numpy(), rtol=0, atol=1e-6)
    assert isinstance(load_policy(final, agent="agent_0").action_space, spaces.Discrete)


def test_samg_report_two_state_game_is_exact(tmp_path):
    """`--table game`: the learned tables' values are xnor_xor_exact's (recomputed here from
    the reported tables), and the grid optimum of the worst-case expected value is the
    paper's 50 (uniform initial state) and 100 (from s2)."""
    import subprocess
    import sys

    from adv_envs import xnor_xor_exact as exact

    result = subprocess.run(
        [sys.executable, str(REPORT), "--table", "game", "--workdir", "rep", "--seeds", "1",
         "--rows", "rma3c", "--train-timesteps", "800",
         "--train-flags=--learning-starts 300 --minibatch-size 64 --gda-steps 2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**__import__("os").environ, "WANDB_MODE": "offline"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = json.loads((tmp_path / "rep" / "samg_report.json").read_text())
    for mode in ("sampled", "greedy"):
        t = row["game"][mode]
        pis = [np.array(p) for p in t["pi"]]
        np.testing.assert_allclose(t["clean"], exact.evaluate(*pis, gamma=0.99), atol=1e-2)
        _, worst = exact.worst_case_perturbation(*pis, gamma=0.99)
        np.testing.assert_allclose(t["worst"], worst, atol=1e-2)  # (tables rounded to 1e-4)
    assert set(np.unique(row["game"]["greedy"]["pi"])) <= {0.0, 1.0}
    assert "50.00 (uniform s0), 100.00 (s0 = s2)" in result.stdout
