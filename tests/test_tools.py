"""Smoke runs of the developer tools in ``baselines/`` (scripts, not installed): the demo and
the two benchmarks run with tiny budgets and print or write what they claim. Their old module
names raise an error naming the script.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import adv_envs
import adv_wrappers  # noqa: F401  (installs the finder that names moved modules)

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "baselines" / "demo.py"
BENCHMARK_WRAPPERS = ROOT / "baselines" / "benchmark_wrappers.py"
BENCHMARK_ENVS = ROOT / "baselines" / "benchmark_envs.py"


def run(script: Path, *args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, "MUJOCO_GL": "egl"},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def test_demo(tmp_path):
    result = run(DEMO, "--episodes", "2", "--seed", "0", cwd=tmp_path)
    for name in ("k_corruption_v0", "byzantine_v0", "partial_control_v0", "state_perturbation_v0"):
        assert name in result.stdout


def test_benchmark_wrappers(tmp_path):
    out = tmp_path / "benchmarks.md"
    flags = ["--quick", "--seconds", "0.02", "--rounds", "1", "--output", str(out)]
    run(BENCHMARK_WRAPPERS, *flags, cwd=tmp_path, timeout=600)
    text = out.read_text()
    assert text.startswith("# Benchmarks")
    assert "python baselines/benchmark_wrappers.py --quick" in text
    assert "## Vector envs" in text and "Failed" not in text


def test_benchmark_envs(tmp_path):
    out = tmp_path / "sps.json"
    run(BENCHMARK_ENVS, "--seconds", "0.01", "--output", str(out), cwd=tmp_path, timeout=600)
    results = json.loads(out.read_text())
    assert {info.id for info in adv_envs.ENVS} <= set(results)
    assert all(results[info.id] > 0 for info in adv_envs.ENVS)
    assert results["_measured"]["command"] == "python baselines/benchmark_envs.py"


@pytest.mark.parametrize(
    ("old", "script"),
    [
        ("adv_wrappers.demo", "baselines/demo.py"),
        ("adv_wrappers.benchmark", "baselines/benchmark_wrappers.py"),
        ("adv_envs.benchmark", "baselines/benchmark_envs.py"),
    ],
)
def test_old_module_names_name_the_script(old, script):
    with pytest.raises(ModuleNotFoundError, match=f"{old} moved .*{script}"):
        __import__(old)


def test_every_package_folder_is_installed():
    """pyproject.toml lists the packages explicitly (envs/ installs as adv_envs): every
    folder with an __init__.py must be in the list, or a non-editable install lacks it."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {"adv_wrappers": root / "adv_wrappers", "adv_envs": root / "envs"}
    found = {
        ".".join([name, *init.parent.relative_to(folder).parts])
        for name, folder in folders.items()
        for init in folder.rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert len(found) >= 5  # adv_wrappers, .train, .vector, adv_envs, adv_envs.batched
    assert found == set(config["packages"])
    assert config["package-dir"] == {"adv_wrappers": "adv_wrappers", "adv_envs": "envs"}
