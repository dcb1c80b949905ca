"""``adv_wrappers.train.fanout.run_jobs``: the thread pool and Ray (a local instance) give the
same results in the same order, a failed job is re-raised naming it after every job ended,
``ray=True`` without Ray names the extra; and ``robustness_report.py --ray`` on a tiny grid
gives the thread path's table and, rerun with ``--ray-address`` (joining this test's
instance), skips every finished step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adv_wrappers.errors import InvalidArgumentError
from adv_wrappers.train.fanout import JobError, RayNotInstalledError, run_jobs

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "baselines" / "robustness_report.py"
TINY = "--num-envs 2 --num-steps 50 --minibatch-size 50 --update-epochs 1"
PATHS = ["threads", "ray"]


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (2 CPUs, no dashboard) for this module, shut down after."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


@pytest.mark.parametrize("path", PATHS)
def test_results_come_in_job_order(path, request):
    ray = request.getfixturevalue("local_ray") if path == "ray" else None
    jobs = [0, 1, 2, 3]
    stage = {f"j{x}": "waiting" for x in jobs}

    def square_late_first(x):  # (nested, so that Ray pickles it by value)
        time.sleep(0.4 - 0.1 * x)  # later jobs finish first: job order is not completion order
        return x, x * x, os.getpid()

    results = run_jobs(
        square_late_first, jobs, workers=2, ray=path == "ray", names=[f"j{x}" for x in jobs],
        stage=stage,
    )  # fmt: skip
    assert [(x, sq) for x, sq, _ in results] == [(0, 0), (1, 1), (2, 4), (3, 9)]
    assert stage == {f"j{x}": "done" for x in jobs}
    pids = {pid for *_, pid in results}
    if path == "ray":  # in Ray's worker processes, and the instance is left running
        assert os.getpid() not in pids and ray.is_initialized()
    else:
        assert pids == {os.getpid()}


@pytest.mark.parametrize("path", PATHS)
def test_a_failed_job_is_raised_by_name_after_every_job_ended(path, request, tmp_path):
    if path == "ray":
        request.getfixturevalue("local_ray")

    def job(x):
        time.sleep(0.05 * x)
        (tmp_path / f"ended{x}").touch()
        if x in (1, 3):
            raise ValueError(f"bad input {x}")
        return x

    stage: dict[str, str] = {}
    with pytest.raises(JobError) as info:
        run_jobs(job, [0, 1, 2, 3], workers=2, ray=path == "ray",
                 names=["naive/seed1", "naive/seed2", "art/seed1", "art/seed2"], stage=stage)  # fmt: skip
    err = info.value
    assert "job 'naive/seed2' failed: ValueError: bad input 1" in str(err)
    assert "1 other job(s) failed too: ['art/seed2']" in str(err)
    assert err.job == "naive/seed2" and err.failed == ["naive/seed2", "art/seed2"]
    assert type(err.__cause__) is ValueError and str(err.__cause__) == "bad input 1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ended0", "ended1", "ended2", "ended3"]
    assert stage == {"naive/seed1": "done", "naive/seed2": "failed", "art/seed1": "done",
                     "art/seed2": "failed"}  # fmt: skip


def test_ray_without_the_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(RayNotInstalledError, match=r"the `ray` extra: pip install .*\[ray\]"):
        run_jobs(str, [1], workers=1, ray=True)
    assert issubclass(RayNotInstalledError, ImportError)
    assert run_jobs(str, [1], workers=1) == ["1"]  # the thread path does not need Ray


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(workers=0), "workers must be an integer >= 1, got 0"),
        (dict(workers=True), "workers must be an integer >= 1, got True"),
        (dict(workers=1, names=["a"]), "names must have one name per job: 1 names for 2 jobs"),
        (dict(workers=1, ray_address="auto"), "ray_address='auto' needs ray=True"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(InvalidArgumentError, match=match):
        run_jobs(str, [1, 2], **kwargs)


def report(workdir: Path, *flags: str) -> str:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    result = subprocess.run(
        [sys.executable, str(REPORT), "--preset", "none", "--workdir", str(workdir),
         "--methods", "naive", "--k", "2", "--train-timesteps", "100", "--attack-timesteps",
         "100", "--eval-episodes", "1", f"--train-flags={TINY} --eval-episodes 1",
         f"--attack-flags={TINY} --victim agent_0", "--no-plot", *flags],
        cwd=workdir.parent, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout + result.stderr  # (Ray logs to stderr)


def test_robustness_report_on_ray_matches_threads_and_resumes(tmp_path, local_ray):
    on_ray = report(tmp_path / "ray", "--ray")  # a local instance of its own
    threads = report(tmp_path / "threads")
    # the same report, but for how long its runs took (the last sentence, "Compute: ...")
    table, ray_table = ((tmp_path / d / "report.md").read_text().split(" Compute: ")[0]
                        for d in ("threads", "ray"))  # fmt: skip
    assert "| Naive |" in table
    assert ray_table == table
    assert "Started a local Ray instance" in on_ray and "Ray" not in threads
    ray_results = json.loads((tmp_path / "ray" / "results.json").read_text())
    thread_results = json.loads((tmp_path / "threads" / "results.json").read_text())
    for results in (ray_results, thread_results):  # the same but for how long the runs took
        assert all(run.pop("compute_seconds") > 0 for run in results["runs"].values())
    assert ray_results["runs"] == thread_results["runs"]
    assert len(ray_results["runs"]["naive/seed1"]["scenarios_k2"]) == 1  # agent_0, K of 2

    # rerun on this test's instance (joined by address): nothing is trained or attacked again
    files = sorted((tmp_path / "ray").glob("naive/seed1/**/*.safetensors"))
    files += sorted((tmp_path / "ray").glob("naive/seed1/**/attack_results.json"))
    assert len(files) >= 3  # the defender's checkpoints, the attacker's, the summary
    before = {p: p.stat().st_mtime_ns for p in files}
    address = local_ray.get_runtime_context().gcs_address
    rerun = report(tmp_path / "ray", "--ray-address", address)
    assert {p: p.stat().st_mtime_ns for p in files} == before
    assert (tmp_path / "ray" / "report.md").read_text().split(" Compute: ")[0] == table
    # (the tasks' own log lines reach the driver asynchronously, so they are not asserted)
    assert "Connected to Ray cluster" in rerun
    assert rerun.count("| Naive |") == 1
