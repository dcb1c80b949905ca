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
    assert "| Naive |" in out and "| Fixed-K(k=1) |" in out and "-493.2 ± 11.2" in out
    assert "attackers 100 steps x 6 per defender" in out
    report = tmp_path / "report"
    results = json.loads((report / "results.json").read_text())
    for run_name in ("naive/seed1", "fixed_k1/seed1"):
        summary = results["runs"][run_name]
        assert len(summary["scenarios"]) == 6  # 3 victims x 2 attacked agents
        assert summary["attacked_min"] == min(summary["scenarios"].values())
    assert (report / "robustness.png").stat().st_size > 0
    assert (report / "report.md").read_text().startswith("| method |")
    # a rerun skips every finished step and re-tabulates the same numbers
    attack_json = next(report.glob("naive/seed1/attack/runs/*/attack_results.json"))
    before = attack_json.stat().st_mtime_ns
    run(REPORT, *flags, cwd=tmp_path)
    assert attack_json.stat().st_mtime_ns == before
    assert json.loads((report / "results.json").read_text())["rows"] == results["rows"]


def test_trainer_throughput_benchmark(tmp_path):
    out = run(
        BENCHMARK, "--timesteps", "400", "--raw-steps", "20", "--rounds", "1",
        "--trainer-flags=--num-envs 8 --num-steps 50 --minibatch-size 50",
        "--output", str(tmp_path / "sps.md"), cwd=tmp_path,
    )  # fmt: skip
    table = (tmp_path / "sps.md").read_text()
    assert table in out
    rows = [line for line in table.splitlines() if line.startswith("| ") and "÷" not in line]
    assert [r.split(" | ")[0] for r in rows] == [
        "| raw vector env, random actions",
        "| ippo.py (30 epochs)",
        "| ippo.py (1 epoch)",
        "| art.py k=1 (30 epochs)",
        "| art.py k=1 (1 epoch)",
    ]
    assert rows[0].endswith("| 1.00 |")
