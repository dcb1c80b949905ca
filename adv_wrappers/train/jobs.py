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
* :func:`say` - one line to stdout from any of a report's threads, never interleaved.
* :func:`mean_se` and :func:`mean_ci95` - summaries over seeds (and agents).
* :func:`iqm_ci` - the interquartile mean and its stratified bootstrap 95 % CI (rliable), and
  :func:`plot_intervals`, point estimates with their intervals (rliable's style).
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
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from adv_wrappers.errors import InvalidArgumentError
from adv_wrappers.train.policy import read_record

__all__ = [
    "Monitor",
    "attack_or_resume",
    "attack_results",
    "final_checkpoint",
    "iqm_ci",
    "logged_scalars",
    "mean_ci95",
    "mean_se",
    "plot_intervals",
    "run_logged",
    "run_seconds",
    "say",
    "steps_done",
    "train_or_resume",
]


_SAY_LOCK = threading.Lock()


def say(line: str) -> None:
    """Print ``line`` and flush, as one write under a lock: ``print`` writes the text and its
    newline separately, so lines printed by two job threads at once can run together."""
    with _SAY_LOCK:
        sys.stdout.write(f"{line}\n")
        sys.stdout.flush()


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


def attack_results(cwd: Path, folder: str = "attack") -> dict[str, Any] | None:
    """``attack.py``'s summary in ``cwd/folder`` (``None`` before it exists)."""
    found = sorted((cwd / folder).glob("runs/*/attack_results.json"))
    return json.loads(found[-1].read_text()) if found else None


def attack_or_resume(
    script: Path, cwd: Path, flags: Sequence[str], folder: str = "attack"
) -> dict[str, Any]:
    """Run ``script`` (``baselines/attack.py``) in ``cwd/folder`` unless it finished; an
    attack that was stopped keeps its finished scenarios (``--resume``). Returns its
    summary."""
    if attack_results(cwd, folder) is None:
        started = sorted((cwd / folder).glob("runs/*/attack_args.json"))
        if started:
            flags = ["--resume", str(started[-1].parent.resolve())]
        run_logged([sys.executable, script, *flags], cwd / folder, "attack.log")
    results = attack_results(cwd, folder)
    assert results is not None, f"attack.py ended without results in {cwd / folder}"
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
        window: the ETA extrapolates the steps/s of the last ``window`` seconds (of the whole
            run until then), so that a pause or a spell of other work on the machine stops
            counting once it is that far back.
    """

    def __init__(self, workdir: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                 total: int, jobs: Sequence[str], every: float = 30.0,
                 window: float = 1200.0) -> None:  # fmt: skip
        self.workdir, self.total, self.every, self.window = workdir, total, every, window
        self.stage: dict[str, str] = {job: "waiting" for job in jobs}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> dict[str, str]:
        self._thread.start()
        return self.stage

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    @staticmethod
    def recent_rate(samples: deque[tuple[float, int]], window: float) -> float:
        """Steps/s between the oldest of ``samples`` (``(time, steps done)``, in time order)
        that is at least ``window`` seconds before the newest, or the first, and the newest;
        the older samples are dropped."""
        now, done = samples[-1]
        while len(samples) > 2 and samples[1][0] <= now - window:
            samples.popleft()
        then, before = samples[0]
        return (done - before) / (now - then) if now > then else 0.0

    def _loop(self) -> None:
        start = time.time()
        samples = deque([(start, steps_done(self.workdir))])
        while not self._stop.wait(self.every):
            done = steps_done(self.workdir)
            samples.append((time.time(), done))
            elapsed = samples[-1][0] - start
            rate = self.recent_rate(samples, self.window)
            eta = f"ETA {(self.total - done) / rate / 60:.1f} min" if rate > 0 else "ETA -"
            jobs = ", ".join(f"{name}: {what}" for name, what in self.stage.items())
            say(
                f"[{elapsed / 60:5.1f} min] {100 * done / self.total:3.0f}% of "
                f"{self.total / 1e3:,.0f}K steps | {jobs} | {eta}"
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


IQM_REPS = 2000
"""Bootstrap replications of :func:`iqm_ci` unless told otherwise."""

# rliable's StratifiedBootstrap draws its resamples from NumPy's global generator (its
# `random_state` argument does not reach them), so iqm_ci seeds that generator for the call,
# restores its state afterwards, and holds a lock meanwhile (the reports run jobs in threads)
_GLOBAL_RNG = threading.Lock()


def iqm_ci(
    scores: Sequence[float] | Sequence[Sequence[float]] | np.ndarray,
    reps: int = IQM_REPS,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Interquartile mean and its stratified bootstrap 95 % confidence interval (rliable).

    Agarwal et al. (NeurIPS 2021), "Deep Reinforcement Learning at the Edge of the Statistical
    Precipice": the IQM is the mean of the middle 50 % of all scores (25 % trimmed from each
    end, ``rliable.metrics.aggregate_iqm``); its CI is the percentile interval of the IQMs of
    ``reps`` bootstrap resamples (``rliable.library.get_interval_estimates``).

    ``scores`` is a vector of runs (seeds) or a ``runs x tasks`` matrix (e.g. seeds x
    victims or scenarios). The bootstrap is stratified over tasks: each resample draws, for
    every task separately, as many runs as there are with replacement from that task's
    column, so every task keeps its weight; the tasks themselves are not resampled. A vector
    is one task. With one run a resample equals the data, so the interval is NaN (as
    :func:`mean_se`'s standard error is with one value); with fewer than 4 scores nothing is
    trimmed and the IQM is the mean.

    Deterministic: the resamples are drawn from ``seed`` (NumPy's global generator is seeded
    for the call and restored afterwards).

    Example:
        >>> iqm_ci([-100.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 100.0], seed=0)  # IQM: mean of 2..5
        (3.5, -23.5, 28.5)
        >>> iqm_ci([[0.0, 10.0], [0.0, 10.0], [0.0, 10.0]])  # 3 seeds x 2 tasks: stratified
        (5.0, 5.0, 5.0)

    Args:
        scores: a vector of runs or a ``runs x tasks`` matrix of finite numbers.
        reps: bootstrap replications (2000 unless told; rliable's own default is 50,000).
        seed: seed of the resamples.

    Returns:
        ``(iqm, low, high)``: the IQM and the bounds of its 95 % CI (NaN with one run).

    Raises:
        InvalidArgumentError: ``scores`` is empty, not 1- or 2-dimensional, or holds a NaN or
            infinite value; ``reps`` is below 1.
    """
    try:
        arr = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidArgumentError(
            f"scores must be a vector of runs or a runs x tasks matrix of numbers: {e}"
        ) from e
    if arr.ndim not in (1, 2):
        raise InvalidArgumentError(
            f"scores must be a vector of runs or a runs x tasks matrix, got shape {arr.shape}"
        )
    if arr.size == 0:
        raise InvalidArgumentError(f"scores is empty (shape {arr.shape}); need at least one run")
    if not np.all(np.isfinite(arr)):
        raise InvalidArgumentError(
            f"scores holds {int(np.sum(~np.isfinite(arr)))} NaN or infinite value(s)"
        )
    if isinstance(reps, bool) or not isinstance(reps, int | np.integer) or reps < 1:
        raise InvalidArgumentError(f"reps must be an integer >= 1, got {reps!r}")
    from rliable import library, metrics  # type: ignore[import-untyped]

    matrix = arr.reshape(len(arr), -1)  # a vector is one task

    def iqm(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x)])

    point = float(iqm(matrix)[0])
    if len(matrix) < 2:
        return point, float("nan"), float("nan")
    with _GLOBAL_RNG:
        # rliable resamples from the legacy global generator (see _GLOBAL_RNG)
        state = np.random.get_state()  # noqa: NPY002
        np.random.seed(seed)  # noqa: NPY002
        try:
            _, intervals = library.get_interval_estimates(
                {"scores": matrix}, iqm, reps=int(reps), confidence_interval_size=0.95
            )
        finally:
            np.random.set_state(state)  # noqa: NPY002
    low, high = intervals["scores"][:, 0]
    return point, float(low), float(high)


def plot_intervals(
    path: str | os.PathLike[str],
    estimates: Mapping[str, Sequence[tuple[float, float, float]]],
    metric_names: Sequence[str],
    xlabel: str,
    sharex: Sequence[int] | None = None,
    ncols: int = 4,
) -> None:
    """Save an interval plot in the style of rliable's ``plot_interval_estimates`` to ``path``.

    One panel per metric (``ncols`` panels a row), one row per entry of ``estimates`` (e.g. a
    method): a bar from the interval's low to its high end and a tick at the point estimate.
    Each entry holds one ``(point, low, high)`` per metric, e.g. ``(mean, mean - SE, mean +
    SE)`` and the ``(iqm, low, high)`` of :func:`iqm_ci`; a NaN interval (one seed) is drawn
    as the point alone. ``sharex`` gives each metric a group number: the panels of one group
    share their x-axis limits (e.g. a quantity's mean ± SE beside its IQM). Headless
    (matplotlib's ``Agg`` backend).

    Raises:
        InvalidArgumentError: an entry of ``estimates`` or ``sharex`` does not have one item
            per metric.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if sharex is not None and len(sharex) != len(metric_names):
        raise InvalidArgumentError(
            f"sharex has {len(sharex)} groups for {len(metric_names)} metric_names"
        )
    names = list(estimates)
    table = {}
    for name, triples in estimates.items():
        if len(triples) != len(metric_names):
            raise InvalidArgumentError(
                f"estimates[{name!r}] has {len(triples)} (point, low, high) triples for "
                f"{len(metric_names)} metric_names"
            )
        table[name] = np.array(triples, dtype=np.float64).reshape(-1, 3)
    ncols = max(1, min(ncols, len(metric_names)))
    nrows = -(-len(metric_names) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, squeeze=False,
        figsize=(3.2 * ncols, nrows * (0.4 * len(names) + 1.0) + 0.4),
    )  # fmt: skip
    colors = plt.get_cmap("tab10")
    for k, metric in enumerate(metric_names):
        ax = axes.flat[k]
        for row, name in enumerate(names):
            point, low, high = table[name][k]
            if np.isnan(low) or np.isnan(high):
                low = high = point
            ax.barh(row, high - low, left=low, height=0.6, color=colors(row % 10), alpha=0.75)
            ax.vlines(point, row - 0.35, row + 0.35, color="k", alpha=0.6)
        ax.set_yticks(range(len(names)), names if k % ncols == 0 else [])
        ax.set_title(metric, fontsize=10)
        ax.grid(True, axis="x", alpha=0.25)
        for side in ("left", "top", "right"):
            ax.spines[side].set_visible(False)
    for ax in axes.flat[len(metric_names) :]:
        ax.set_visible(False)
    for group in set(sharex or ()):
        members = [axes.flat[k] for k, g in enumerate(sharex or ()) if g == group]
        lows, highs = zip(*(ax.get_xlim() for ax in members), strict=True)
        for ax in members:
            ax.set_xlim(min(lows), max(highs))
    fig.supxlabel(xlabel, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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


def run_seconds(folder: str | os.PathLike[str], exclude: Sequence[str] = ()) -> float:
    """The seconds that the trainer runs under ``folder`` ran: for every TensorBoard event file
    below it, from its first event (written when the run's logger starts) to its last, summed.

    A resumed run writes a new event file, so the time between a kill and its resume is not
    counted; nor are each process's start-up before its logger and its last steps after the
    last event (a final evaluation). Runs side by side on several cores add up: the result is
    compute time, not wall time. ``exclude``: skip the files with one of these folder names in
    their path below ``folder``.
    """
    from tensorboard.backend.event_processing.event_file_loader import (  # type: ignore[import-untyped]
        EventFileLoader,
    )

    total = 0.0
    root = Path(folder)
    for path in sorted(root.rglob("events.out.tfevents.*")):
        if set(path.relative_to(root).parts[:-1]) & set(exclude):
            continue
        times = [event.wall_time for event in EventFileLoader(str(path)).Load()]
        if times:
            total += max(times) - min(times)
    return total
