"""Smoke tests of the report scripts in ``baselines/``: the robustness report (the README's
main job and the Table 1 reproduction) and the trainer-throughput benchmark, with tiny
budgets. Their numbers are not checked here (they are measured in docs/); what is checked is
that every step runs, that finished steps are skipped on a rerun, and what the outputs hold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from adv_wrappers.train import read_record
from adv_wrappers.train.jobs import logged_scalars

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "baselines" / "robustness_report.py"
BENCHMARK = ROOT / "baselines" / "benchmark_sps.py"
TINY = "--num-envs 2 --num-steps 50 --minibatch-size 50 --update-epochs 1"


def run(script: Path, *flags: str, cwd: Path, timeout: float = 300) -> str:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    result = subprocess.run(
        [sys.executable, str(script), *flags], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


def test_robustness_report_trains_attacks_tabulates_and_resumes(tmp_path):
    flags = [
        "--preset", "none", "--workdir", str(tmp_path / "report"), "--methods", "naive",
        "fixed_k1", "--train-timesteps", "200", "--attack-timesteps", "100",
        "--eval-episodes", "2", f"--train-flags={TINY} --eval-episodes 1",
        f"--attack-flags={TINY}",
    ]  # fmt: skip
    out = run(REPORT, *flags, cwd=tmp_path)
    assert "estimate: 1,600 environment steps" in out  # 2 x (200 + 6 x 100)
    assert "| Naive |" in out and "| Fixed-K(k=1) |" in out and "-493.2 ± 11.2" in out
    assert "attackers 100 steps x 6 (k=1) per defender" in out
    assert "| under attack: IQM [95 % CI] |" in out  # one seed: the IQM without an interval
    report = tmp_path / "report"
    results = json.loads((report / "results.json").read_text())
    for run_name in ("naive/seed1", "fixed_k1/seed1"):
        summary = results["runs"][run_name]
        assert len(summary["scenarios_k1"]) == 6  # 3 victims x 2 attacked agents
        assert summary["attacked_min_k1"] == min(summary["scenarios_k1"].values())
        assert summary["compute_seconds"] > 0  # the TensorBoard spans of its runs
    assert "from the TensorBoard spans of the runs of 2 of the 2 (method, seed) jobs" in out
    assert (report / "robustness.png").stat().st_size > 0
    assert (report / "robustness_iqm.png").stat().st_size > 0
    for row in results["rows"].values():  # one seed: the IQM is the value, no interval
        iqm, low, high = row["attacked_min_k1_iqm"]
        assert iqm == row["attacked_min_k1"][0] and low != low and high != high
    assert (report / "report.md").read_text().startswith("| method |")
    # a rerun skips every finished step and re-tabulates the same numbers
    attack_json = next(report.glob("naive/seed1/attack/runs/*/attack_results.json"))
    before = attack_json.stat().st_mtime_ns
    run(REPORT, *flags, cwd=tmp_path)
    assert attack_json.stat().st_mtime_ns == before
    assert json.loads((report / "results.json").read_text())["rows"] == results["rows"]

    # a report stopped during the naive defender's attack (4 of its 6 scenarios done, the 5th
    # killed before its first checkpoint) and Fixed-K's training stopped between its two
    # saves continues: the same attack folder, only the missing steps redone, the same table
    attack_json.unlink()
    folder = attack_json.parent
    scenarios = sorted(p.parent for p in folder.glob("*/result.json"))
    assert len(scenarios) == 6
    kept = {p: p.stat().st_mtime_ns for s in scenarios[:4] for p in s.glob("runs/*/checkpoints/*")}
    for s in scenarios[4:]:
        (s / "result.json").unlink()
    (next(scenarios[4].glob("runs/*/checkpoints/final.safetensors"))).unlink()
    for p in scenarios[4].glob("runs/*/checkpoints/last.safetensors"):
        p.unlink()  # no checkpoint left: the scenario starts again
    fixed_final = next(report.glob("fixed_k1/seed1/runs/*/checkpoints/final.safetensors"))
    fixed_final.unlink()
    (report / "fixed_k1" / "seed1" / "attack").rename(tmp_path / "old_attack")
    run(REPORT, *flags, cwd=tmp_path)
    assert [p.parent for p in report.glob("naive/seed1/attack/runs/*/attack_args.json")] == [folder]
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # finished scenarios untouched
    assert fixed_final.exists()
    rerun = json.loads((report / "results.json").read_text())
    assert rerun["rows"] == results["rows"]
    for run_name, summary in rerun["runs"].items():  # the same, but for the redone runs' time
        summary.pop("compute_seconds")
        assert summary == {k: v for k, v in results["runs"][run_name].items()
                           if k != "compute_seconds"}  # fmt: skip


def test_full_protocol_attacks_at_every_k_checks_and_resumes_from_committed_results(tmp_path):
    """Table 1's full protocol on a tiny grid: attacks with 1 and 2 adversaries, the plateau
    check, the long attack and Fig. 5's convergence check; every (method, seed)'s summary is
    written to --results, and a report in a new workdir (another machine) reuses them without
    training anything and prints the same tables."""
    results = tmp_path / "committed"
    flags = [
        "--preset",
        "none",
        "--methods",
        "naive",
        "art_k1",
        "--k",
        "1",
        "2",
        "--train-timesteps",
        "200",
        "--attack-timesteps",
        "500",  # 5 rollouts: the plateau check's two windows hold one each
        "--eval-episodes",
        "2",
        "--long-attack-timesteps",
        "200",
        "--convergence-check",
        "--results",
        str(results),
        f"--train-flags={TINY} --eval-episodes 1 --vector-backend batched",
        f"--attack-flags={TINY} --stack-scenarios --vector-backend batched",
        "--no-plot",
        "--env-kwargs",
        '{"max_cycles": 10}',
    ]  # fmt: skip  (the paper preset's fast path: batched, attackers stacked)
    out = run(REPORT, "--workdir", str(tmp_path / "a"), *flags, cwd=tmp_path)
    # 2 defenders x (200 + (6 + 3) x 500) + 2 long attacks x 200 + 5 % of 200 for ART
    assert "estimate: 9,810 environment steps" in out
    assert "| paper: 1 adversary | paper: 2 adversaries |" in out
    assert "| under attack (worst victim, k=2) |" in out
    assert "-480.8 ± 16.1" in out and "-242.0 ± 33.4" in out  # Table 1's 2-adversary column
    assert sorted(p.name for p in results.iterdir()) == ["art_k1_seed1.json", "naive_seed1.json"]
    for method in ("naive", "art_k1"):
        record = json.loads((results / f"{method}_seed1.json").read_text())
        assert record["setup"]["env_kwargs"] == {"max_cycles": 10}
        summary = record["summary"]
        assert len(summary["scenarios_k1"]) == 6 and len(summary["scenarios_k2"]) == 3
        assert summary["attacked_min_k2"] == min(summary["scenarios_k2"].values())
        assert set(summary["plateau_k1"]) == set(summary["scenarios_k1"])
        long = summary["long_attack"]
        assert long["scenario"] == summary["worst_scenario_k1"] and long["timesteps"] == 200
        assert long["short"] == summary["attacked_min_k1"]
    check = json.loads((results / "art_k1_seed1.json").read_text())["summary"]["convergence"]
    assert check["victim"] == "agent_0" and check["steps"] == 100 and check["warmup_steps"] == 200
    assert check["gain"][0] == pytest.approx(check["after"][0] - check["before"][0])
    assert "convergence" not in json.loads((results / "naive_seed1.json").read_text())["summary"]
    # ART's own adversaries beside the fresh attackers, on the scenarios it trained against:
    # k = 1 only (omega ranges over single agents), the victim's return under each as logged
    summary = json.loads((results / "art_k1_seed1.json").read_text())["summary"]
    own = summary["own_adversaries"]
    assert own and set(own) <= set(summary["scenarios_k1"]), own
    (art_run,) = (tmp_path / "a").glob("art_k1/seed1/runs/*/checkpoints/final.safetensors")
    for scenario, pair in own.items():
        assert pair["fresh"] == -summary["plateau_k1"][scenario]["last"]
        victim, attacked = (part.split("=")[1] for part in scenario.split(","))
        steps, values = logged_scalars(
            art_run.parent.parent, f"adversary/victim_return/{victim}/{attacked}"
        )
        assert pair["own"] == pytest.approx(values[steps > 0.8 * steps[-1]].mean())
    assert (
        "own_adversaries" not in json.loads((results / "naive_seed1.json").read_text())["summary"]
    )
    assert "| ART(k=1) | " + str(len(own)) + " | " in out  # the own-adversaries table
    assert "| ART(k=1) | " in out and "| ≈ 0 |" in out  # the Fig. 5 table
    defender = next((tmp_path / "a").glob("naive/seed1/runs/*/checkpoints/final.safetensors"))
    assert read_record(defender)["env_kwargs"] == {"max_cycles": 10}

    # another machine: a fresh workdir, the committed summaries; nothing is trained
    again = run(REPORT, "--workdir", str(tmp_path / "b"), *flags, cwd=tmp_path)
    assert not list((tmp_path / "b").glob("*/seed1/runs"))
    table = (tmp_path / "a" / "report.md").read_text().split("\n\nBudget")[0]
    assert (tmp_path / "b" / "report.md").read_text().split("\n\nBudget")[0] == table
    assert table.count("\n|") >= 10 and "skipped: naive seed 1" in again
    # a different set-up is refused rather than mixed in
    env = {**os.environ, "WANDB_MODE": "offline"}
    other = [f if f != "500" else "300" for f in flags]  # another attack budget
    result = subprocess.run(
        [sys.executable, str(REPORT), "--workdir", str(tmp_path / "c"), *other], cwd=tmp_path,
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0 and "was made with another set-up" in result.stderr


@pytest.mark.parametrize(
    ("env_id", "methods", "k", "subsets"),
    [
        # Pursuit: the first and the last k pursuers; Fixed-K(k=2) trained against the first 2
        ("adv/pursuit-v0", ["fixed_k2"], ["1", "2"],
         {1: [("pursuer_0",), ("pursuer_7",)],
          2: [("pursuer_0", "pursuer_1"), ("pursuer_6", "pursuer_7")]}),
        ("adv/multi_ant-v0", ["art_k1"], ["1"],  # Ant: every leg
         {1: [("agent_0",), ("agent_1",), ("agent_2",), ("agent_3",)]}),
    ],
)  # fmt: skip
def test_robustness_report_attacks_the_team_in_pursuit_and_ant(
    tmp_path, env_id, methods, k, subsets
):
    """Table 1's Pursuit and Ant rows: the benign team is the victim, attacked by the
    subsets its env prescribes; the report's worst case is over those, with the paper's
    numbers beside it."""
    flags = [
        "--preset", "none", "--env-id", env_id, "--workdir", str(tmp_path / "r"), "--methods",
        *methods, "--k", *k, "--train-timesteps", "200", "--attack-timesteps", "100",
        "--eval-episodes", "2", "--env-kwargs", '{"max_cycles": 10}', "--no-plot",
        f"--train-flags={TINY} --eval-episodes 1", f"--attack-flags={TINY}",
    ]  # fmt: skip
    out = run(REPORT, *flags, cwd=tmp_path)
    attackers = sum(len(s) for s in subsets.values())
    assert f"estimate: {len(methods) * (200 + attackers * 100):,} environment steps" in out
    assert "| clean (team, worst K) |" in out and "(team, worst K, k=1)" in out
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    paper = {"adv/pursuit-v0": ("29.2 ± 10.5", "26.3 ± 10.3", "25.7 ± 9.8"),
             "adv/multi_ant-v0": ("181.9 ± 25.4", "58.2 ± 6.7")}[env_id]  # fmt: skip
    assert all(cell in out for cell in paper)  # Table 1's row: clean, k = 1 (and 2)
    for method in methods:
        summary = results["runs"][f"{method}/seed1"]
        for kk, expected in subsets.items():
            scenarios = summary[f"scenarios_k{kk}"]
            assert sorted(scenarios) == sorted(
                f"victim=team,attacked={'+'.join(s)}" for s in expected
            )
            assert summary[f"attacked_min_k{kk}"] == min(scenarios.values())
    (method,) = methods
    clean = []  # the clean return of the team outside each K, at the first k of --k
    for kk, expected in subsets.items():  # every subset was attacked by its own fresh attacker
        for subset in expected:
            (result,) = (tmp_path / "r").glob(
                f"{method}/seed1/attack*/runs/*/victim=team,attacked={'+'.join(subset)}/result.json"
            )
            record = json.loads(result.read_text())
            assert record["victims"] is None and record["threat"]["kwargs"] == {
                "k": kk, "victim": None, "subset": list(subset)}  # fmt: skip
            clean += [record["clean"][0]] if kk == int(k[0]) else []
    summary = results["runs"][f"{method}/seed1"]
    assert len(clean) == len(subsets[int(k[0])])
    assert summary["clean_min"] == min(clean) and summary["clean_mean"] == np.mean(clean)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--env-id", "adv/multi_ant-v0", "--methods", "fixed_k4"],
         "unknown methods ['fixed_k4'] for adv/multi_ant-v0; known: ['naive', 'fixed_k1', 'art_k1']"),
        (["--env-id", "adv/pursuit-v0", "--k", "8"],
         "--k must be distinct numbers of adversaries in [1, 7]; got (8,)"),
        (["--env-id", "adv/pursuit-v0", "--convergence-check"],
         "--convergence-check runs on adv/independent_spread-v0 (a per-agent victim); not on "
         "adv/pursuit-v0"),
    ],
)  # fmt: skip
def test_robustness_report_refuses_what_an_env_does_not_have(tmp_path, flags, message):
    env = {**os.environ, "WANDB_MODE": "offline"}
    result = subprocess.run(
        [sys.executable, str(REPORT), "--preset", "none", "--workdir", str(tmp_path), *flags],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0 and message in result.stderr
    assert not list(tmp_path.iterdir())  # refused before anything ran


def test_robustness_report_retabulates_committed_results_with_iqm(tmp_path):
    """`--from-results` rebuilds the docs' table from docs/robustness_report.json (3 seeds)
    without running anything: mean ± SE as committed, and the IQM with its stratified
    bootstrap CI (3 seeds: nothing trimmed, the IQM is the mean)."""
    committed = ROOT / "docs" / "robustness_report.json"
    out = run(REPORT, "--from-results", str(committed), "--workdir", str(tmp_path / "r"),
              cwd=tmp_path, timeout=120)  # fmt: skip
    assert "estimate:" not in out  # nothing trained or attacked
    assert (
        "| Naive | -26.2 ± 1.0 | -26.2 [-28.3, -25.1] | -62.4 ± 0.6 | -62.4 [-63.6, -61.4] | "
        "-34.0 ± 1.9 | -493.2 ± 11.2 |"
    ) in out
    rows = json.loads((tmp_path / "r" / "results.json").read_text())["rows"]
    assert (
        rows["art_k1"]["attacked_min_k1"]
        == json.loads(committed.read_text())["rows"]["art_k1"]["attacked_min"]
    )
    assert (tmp_path / "r" / "robustness_iqm.png").stat().st_size > 0
    table = (tmp_path / "r" / "report.md").read_text().split("\n\nBudget")[0]
    assert table in (ROOT / "docs" / "robustness_report.md").read_text()  # the docs' table


def test_trainer_throughput_benchmark(tmp_path):
    out = run(
        BENCHMARK, "--timesteps", "1200", "--throughput-timesteps", "1200", "--raw-steps", "20",
        "--rounds", "1", "--no-compile", "--attack-timesteps", "1200",
        "--trainer-flags=--num-envs 8 --num-steps 50 --minibatch-size 50",
        "--output", str(tmp_path / "sps.md"), cwd=tmp_path, timeout=600,
    )  # fmt: skip
    table = (tmp_path / "sps.md").read_text()
    assert table in out
    rows = [line for line in table.splitlines() if line.startswith("| ") and "÷" not in line]
    assert [r.split(" | ")[0] for r in rows] == [
        "| raw vector env, random actions",
        "| ippo.py (30 epochs)",
        "| ippo.py (30 epochs, --vector-backend batched)",
        "| ippo.py throughput preset (batched, not the paper's)",
        "| ippo.py (1 epoch)",
        "| art.py k=1 (30 epochs)",
        "| art.py k=1 (1 epoch)",
        "| art.py k=1 (30 epochs, --vector-backend batched)",
        "| art.py k=1 throughput preset (batched, not the paper's)",
        "| attack.py k=1, 1 scenario per run",
        "| attack.py k=1, 1 scenario per run, --vector-backend batched",
        "| attack.py k=1, 6 scenarios stacked",
        "| attack.py k=1, 6 scenarios stacked, --vector-backend batched",
    ]
    assert rows[0].endswith("| 1.00 |") and rows[9].endswith("| 1.00 |")


def test_trainer_throughput_benchmark_measures_only_the_rows_asked_for(tmp_path):
    out = run(
        BENCHMARK, "--timesteps", "1200", "--raw-steps", "20", "--rounds", "1", "--no-compile",
        "--no-attack", "--rows", "ippo.py (1 epoch)", "art.py k=1 (1",
        "--trainer-flags=--num-envs 8 --num-steps 50 --minibatch-size 50", cwd=tmp_path,
    )  # fmt: skip
    rows = [line.split(" | ")[0] for line in out.splitlines() if line.startswith("| ")]
    assert rows[1:] == ["| raw vector env, random actions", "| ippo.py (1 epoch)",
                        "| art.py k=1 (1 epoch)"]  # fmt: skip


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_trainer_throughput_benchmark_refuses_cuda_rows_without_cuda(tmp_path):
    # a trainer's --cuda falls back to the CPU, so rows marked [CUDA] would be CPU figures
    result = subprocess.run([sys.executable, str(BENCHMARK), "--cuda"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 1
    assert "--cuda: torch sees no CUDA device here" in result.stderr


BYZANTINE = ROOT / "baselines" / "byzantine_report.py"


def test_byzantine_report_runs_every_attack_and_skips_finished_steps(tmp_path):
    """Li et al.'s protocol on XNOR/XOR with tiny budgets: three methods (a plain, a recurrent
    and a theta-reading team), every attack on each of the 2 agents, the transfer matrix."""
    tiny = "--num-envs 2 --num-steps 100 --minibatch-size 200 --update-epochs 1"
    flags = [
        "--preset", "none", "--workdir", str(tmp_path / "report"), "--methods", "mappo",
        "eir_mappo", "true_type", "--train-timesteps", "400", "--attack-timesteps", "200",
        "--eval-episodes", "2", "--epsilons", "0.5", f"--train-flags={tiny}",
        f"--attack-flags={tiny}", "--jobs", "2",
    ]  # fmt: skip
    out = run(BYZANTINE, *flags, cwd=tmp_path, timeout=600)
    for label in ("| MAPPO |", "| EIR-MAPPO |", "| True Type |", "obs. noise eps=0.5"):
        assert label in out
    report = tmp_path / "report"
    results = json.loads((report / "results.json").read_text())
    expected = {"clean"} | {
        f"{kind}/{i}" for kind in ("ppo", "random", "eps=0.5", "myopic") for i in (0, 1)
    }
    for method in ("mappo", "eir_mappo", "true_type"):
        others = {m for m in ("mappo", "eir_mappo", "true_type") if m != method}
        keys = set(results["runs"][method]["1"])
        assert keys == expected | {f"transfer/{m}/{i}" for m in others for i in (0, 1)}
        for value in results["runs"][method]["1"].values():
            assert 0.0 <= value <= 100.0
        attack = json.loads(
            next(report.glob(f"{method}/seed1/attack/runs/*/attack_results.json")).read_text()
        )
        assert [s["scenario"] for s in attack["scenarios"]] == [
            "theta=e_0,byzantine=agent_0", "theta=e_1,byzantine=agent_1"
        ]  # fmt: skip
        assert attack["args"]["stochastic_defenders"] is True
    assert set(results["transfer"]) == {"mappo", "eir_mappo", "true_type"}
    assert (report / "byzantine.png").stat().st_size > 0
    assert (report / "byzantine_iqm.png").stat().st_size > 0
    assert "IQM [95 % CI] (stratified bootstrap" in out and "Transfer, IQM [95 % CI]:" in out
    for method, row in results["rows_iqm"].items():  # one seed: the IQM of its 2 agents
        agents = [results["runs"][method]["1"][f"ppo/{i}"] for i in (0, 1)]
        iqm, low, high = row["ppo"]
        assert iqm == sum(agents) / 2 and low != low and high != high
    assert (report / "transfer.png").stat().st_size > 0
    cache = report / "eir_mappo" / "seed1" / "eval.json"
    before = cache.stat().st_mtime_ns
    run(BYZANTINE, *flags, cwd=tmp_path, timeout=300)  # everything finished: re-tabulated
    assert cache.stat().st_mtime_ns == before
    assert json.loads((report / "results.json").read_text())["rows"] == results["rows"]


def test_byzantine_report_retabulates_committed_results_with_iqm(tmp_path):
    """`--from-results` on docs/byzantine_toy.json (3 seeds x 2 agents; EIR-MAPPO only, to
    stay fast): the committed mean ± 95 % CI, and the IQM with its stratified bootstrap CI
    as docs/byzantine_report.md lists them."""
    committed = json.loads((ROOT / "docs" / "byzantine_toy.json").read_text())
    committed["args"].update(methods=["eir_mappo"], transfer=False)
    (tmp_path / "toy.json").write_text(json.dumps(committed))
    out = run(BYZANTINE, "--from-results", str(tmp_path / "toy.json"), "--workdir",
              str(tmp_path / "r"), cwd=tmp_path, timeout=120)  # fmt: skip
    assert "| EIR-MAPPO | 74.6 ± 25.7 | 35.3 ± 13.8 | 49.0 ± 1.6 |" in out
    row = "| EIR-MAPPO | 74.6 [63.2, 83.3] | 39.8 [25.5, 41.4] | 49.0 [47.8, 49.9] |"
    assert row in out and row in (ROOT / "docs" / "byzantine_report.md").read_text()
    assert (tmp_path / "r" / "byzantine_iqm.png").stat().st_size > 0
