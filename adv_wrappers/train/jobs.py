"""Resumable experiment steps for the report scripts in ``baselines/``.

A report (``robustness_report.py``, ``byzantine_report.py``) is many subprocesses: trainers,
then ``attack.py`` on each trained defender. Each writes into its own folder and is skipped
when its result exists, so an interrupted report continues where it stopped:

* :func:`run_logged` - one subprocess, its output appended to a log file in its folder.
* :func:`train_or_resume` - a trainer: skipped when ``final.safetensors`` exists, continued
  from ``last.safetensors`` when it was stopped, started otherwise.
* :func:`attack_or_resume` - ``attack.py`` in ``<folder>/attack``, the same way.
* :func:`steps_done` and :class:`Monitor` - overall progress from every run's
  ``progress.json``, printed every 30 s with an ETA.
* :func:`mean_se` and :func:`mean_ci95` - summaries over seeds (and agents).
* :func:`logged_scalars` - a scalar a trainer logged to TensorBoard (training curves).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from adv_wrappers.train.policy import read_record

__all__ = [
    "Monitor",
    "attack_or_resume",
    "attack_results",
    "final_checkpoint",
    "logged_scalars",
    "mean_ci95",
    "mean_se",
    "run_logged",
    "steps_done",
    "train_or_resume",
]


def run_logged(cmd: Sequence[Any], cwd: Path, log: str) -> None:
    """Run one step in ``cwd``; its output is appended to ``cwd / log`` (W&B offline unless
    ``WANDB_MODE`` says otherwise).

    Raises:
        RuntimeError: the step failed; the message has the command and the log's tail.
    """
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "WANDB_MODE": os.environ.get("WANDB_MODE", "offline")}
    with open(cwd / log, "a") as out:  # (a resumed step appends)
        code = subprocess.run(
            [str(c) for c in cmd], cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env
        ).returncode
    if code != 0:
        tail = (cwd / log).read_text()[-3000:]
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({code}) in {cwd}:\n{tail}")


def final_checkpoint(cwd: Path) -> Path | None:
    """The ``final.safetensors`` of the run in ``cwd/runs/`` (``None`` before it exists)."""
    found = sorted(cwd.glob("runs/*/checkpoints/final.safetensors"))
    return found[-1] if found else None


def train_or_resume(script: Path, cwd: Path, flags: Sequence[str], log: str = "train.log") -> Path:
    """Run a trainer in ``cwd`` unless it finished; continue it if it was stopped.

    Args:
        script: the trainer (e.g. ``baselines/ippo.py``).
        cwd: its folder (the run goes to ``cwd/runs/<run_name>/``).
        flags: its flags for a fresh start (a stopped run resumes from its own record).
        log: the log file in ``cwd``.

    Returns:
        The final checkpoint.
    """
    if final_checkpoint(cwd) is None:
        started = sorted(cwd.glob("runs/*/checkpoints/last.safetensors"))
        if started and read_record(started[-1])["complete"]:  # stopped between its two saves
            shutil.copyfile(started[-1], started[-1].with_name("final.safetensors"))
        elif started:  # a training that was stopped continues from its last checkpoint
            run_logged([sys.executable, script, "--resume", started[-1].resolve()], cwd, log)
        else:
            run_logged([sys.executable, script, *flags], cwd, log)
    final = final_checkpoint(cwd)
    assert final is not None, f"{script} ended without a final checkpoint in {cwd}"
    return final


def attack_results(cwd: Path) -> dict[str, Any] | None:
    """``attack.py``'s summary in ``cwd/attack`` (``None`` before it exists)."""
    found = sorted((cwd / "attack").glob("runs/*/attack_results.json"))
    return json.loads(found[-1].read_text()) if found else None


def attack_or_resume(script: Path, cwd: Path, flags: Sequence[str]) -> dict[str, Any]:
    """Run ``script`` (``baselines/attack.py``) in ``cwd/attack`` unless it finished; an
    attack that was stopped keeps its finished scenarios (``--resume``). Returns its
    summary."""
    if attack_results(cwd) is None:
        started = sorted((cwd / "attack").glob("runs/*/attack_args.json"))
        if started:
            flags = ["--resume", str(started[-1].parent.resolve())]
        run_logged([sys.executable, script, *flags], cwd / "attack", "attack.log")
    results = attack_results(cwd)
    assert results is not None, f"attack.py ended without results in {cwd / 'attack'}"
    return results


def steps_done(workdir: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> int:
    """Environment steps finished so far by every run under ``workdir`` (their
    ``progress.json``); a sequence of folders sums the runs under each."""
    folders = [workdir] if isinstance(workdir, (str, os.PathLike)) else list(workdir)
    paths = [p for folder in folders for p in Path(folder).glob("**/progress.json")]
    total = 0
    for path in paths:
        try:
            total += json.loads(path.read_text())["global_step"]
        except (OSError, ValueError, KeyError):  # being replaced right now
            pass
    return total


class Monitor:
    """Print overall progress, what each job is doing and an ETA every ``every`` seconds (a
    daemon thread; ``with Monitor(...) as stage:`` gives the dict jobs write their stage to).

    Args:
        workdir: where the runs write their ``progress.json``; or the list of this report's
            run folders, so that other runs in the same workdir (an earlier report with
            other envs or seeds) do not count.
        total: the environment steps of the whole report.
        jobs: the jobs' names (shown as ``name: stage``).
        every: seconds between lines.
    """

    def __init__(self, workdir: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                 total: int, jobs: Sequence[str], every: float = 30.0) -> None:  # fmt: skip
        self.workdir, self.total, self.every = workdir, total, every
        self.stage: dict[str, str] = {job: "waiting" for job in jobs}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> dict[str, str]:
        self._thread.start()
        return self.stage

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def _loop(self) -> None:
        start, first = time.time(), steps_done(self.workdir)
        while not self._stop.wait(self.every):
            done = steps_done(self.workdir)
            elapsed = time.time() - start
            rate = (done - first) / elapsed
            eta = f"ETA {(self.total - done) / rate / 60:.1f} min" if rate > 0 else "ETA -"
            jobs = ", ".join(f"{name}: {what}" for name, what in self.stage.items())
            print(
                f"[{elapsed / 60:5.1f} min] {100 * done / self.total:3.0f}% of "
                f"{self.total / 1e3:,.0f}K steps | {jobs} | {eta}",
                flush=True,
            )


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error (NaN with one value)."""
    arr = np.asarray(values, dtype=np.float64)
    se = arr.std(ddof=1) / np.sqrt(len(arr)) if len(arr) > 1 else float("nan")
    return float(arr.mean()), float(se)


# two-sided 95 % quantiles of Student's t with 1..30 degrees of freedom
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95 % confidence interval (Student's t; NaN with one
    value), as Li et al. (ICLR 2024) plot their 5 x N attacks."""
    mean, se = mean_se(values)
    df = len(values) - 1
    if df < 1:
        return mean, float("nan")
    return mean, se * (_T95[df - 1] if df <= len(_T95) else 1.96)


def logged_scalars(run_dir: str | os.PathLike[str], tag: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of one scalar a trainer logged to TensorBoard in ``run_dir``
    (every event file in it, in step order; empty arrays if the tag was never logged)."""
    from tensorboard.backend.event_processing.event_accumulator import (  # type: ignore[import-untyped]
        EventAccumulator,
    )

    # keep every event; a resumed run's events past its checkpoint are dropped (purged), as
    # the run itself replaced them; the purge's log line is noise here
    logger = logging.getLogger("tensorboard")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
        accumulator.Reload()
    finally:
        logger.setLevel(level)
    if tag not in accumulator.Tags()["scalars"]:
        return np.zeros(0, np.int64), np.zeros(0)
    events = sorted(accumulator.Scalars(tag), key=lambda e: e.step)
    return np.array([e.step for e in events]), np.array([e.value for e in events])
