"""Run a report's jobs on a local thread pool or as Ray tasks, with one call.

A report in ``baselines/`` (``robustness_report.py``) is a grid of jobs, one per (method, seed):
train a defender, then attack it. Each job's steps are subprocesses that write into the
job's own folder and are skipped when their result exists (:mod:`adv_wrappers.train.jobs`).
:func:`run_jobs` runs ``fn(job)`` for every job, either

* on a local thread pool, ``workers`` at a time (each thread waits on its subprocesses), or
* with ``ray=True``, as one Ray task per job (``num_cpus=1`` each): on a new local Ray instance
  with ``workers`` CPUs by default, or on an existing cluster with ``ray_address`` (``"auto"``
  for the cluster this machine belongs to, ``"ray://<head>:10001"`` for a remote one). A Ray
  instance that is already running in this process (``ray.init`` called before) is used as it
  is and left running; one that :func:`run_jobs` starts, it shuts down.

Ray is the optional ``ray`` extra (``pip install "adv-wrappers[ray]"``) and is imported only
with ``ray=True``; without it, :class:`RayNotInstalledError` says what to install.

**Failures and resuming.** Every job runs to its end, also when another fails; a failed job
is then re-raised as :class:`JobError` naming it. Ray does not retry a job that raised; it
reruns (up to 3 times, its default) a task whose worker or node died. Ctrl-C stops the
driver; a local instance that :func:`run_jobs` started goes down with its tasks and their
subprocesses. A grid run again skips what finished, because the jobs themselves skip the
steps whose results exist in their folders, not because the scheduler remembers anything. On a cluster this holds only when the jobs' folders are on a
filesystem that every node mounts at the same path (NFS, a cloud file share), and when every
node has this checkout and its environment at the same path: a task runs ``baselines/``
scripts and writes its results on whatever node Ray places it.

**Progress.** Tasks cannot write to the driver's memory, so the jobs' own stage updates (the
``stage`` dict of :class:`~adv_wrappers.train.jobs.Monitor`) stay in the worker. Pass that dict
as ``stage``: :func:`run_jobs` writes ``"ray task"`` when a job is submitted and ``"done"`` or
``"failed"`` when it ends, while the Monitor's percent of steps and ETA, read from every run's
``progress.json``, stay live in the terminal. That works for a local instance and for a shared
filesystem (the driver reads the same folders the tasks write).

Change logs:
    * v0.2.0 - Initially added.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, MutableMapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from adv_wrappers.errors import AdvWrappersError, InvalidArgumentError

__all__ = ["JobError", "RayNotInstalledError", "run_jobs"]

J = TypeVar("J")
R = TypeVar("R")


class JobError(AdvWrappersError, RuntimeError):
    """A job of :func:`run_jobs` raised. The message names the job (and any other job that
    failed in the same call); ``job`` is its name, ``failed`` every failed job's name, and the
    job's own exception is ``__cause__`` (on Ray, the original exception, not Ray's wrapper)."""

    def __init__(self, message: str, job: str, failed: Sequence[str]) -> None:
        super().__init__(message)
        self.job, self.failed = job, list(failed)


class RayNotInstalledError(AdvWrappersError, ImportError):
    """``run_jobs(..., ray=True)`` (a report's ``--ray``) without Ray installed: the message
    names the extra to install."""


def _import_ray() -> Any:
    try:
        return importlib.import_module("ray")
    except ImportError as e:
        raise RayNotInstalledError(
            "ray=True (--ray, --ray-address) needs Ray, the `ray` extra: "
            "pip install -c constraints.txt -e '.[ray]' (or pip install 'adv-wrappers[ray]')"
        ) from e


def _raise_first(names: Sequence[str], errors: dict[int, BaseException]) -> None:
    if not errors:
        return
    first = min(errors)
    failed = [names[i] for i in sorted(errors)]
    others = (
        f" ({len(failed) - 1} other job(s) failed too: {failed[1:]})" if len(failed) > 1 else ""
    )
    cause = errors[first]
    raise JobError(
        f"job {names[first]!r} failed: {type(cause).__name__}: {cause}{others}",
        names[first],
        failed,
    ) from cause


def run_jobs(
    fn: Callable[[J], R],
    jobs: Sequence[J],
    *,
    workers: int,
    ray: bool = False,
    ray_address: str | None = None,
    names: Sequence[str] | None = None,
    stage: MutableMapping[str, str] | None = None,
) -> list[R]:
    """Run ``fn(job)`` for every job and return the results in the order of ``jobs``.

    Args:
        fn: one job's work. With ``ray=True`` it is pickled (``cloudpickle``) into a task, with
            whatever it refers to, and its writes to driver-side objects are lost.
        jobs: the jobs, each passed to ``fn`` as it is.
        workers: jobs at a time on the thread pool, and the CPUs of the local Ray instance that
            ``ray=True`` starts (a cluster's own CPUs decide there).
        ray: one Ray task per job (``num_cpus=1``) instead of threads.
        ray_address: join this Ray cluster (``ray.init(address=...)``: ``"auto"``,
            ``"<head>:6379"``, ``"ray://<head>:10001"``) instead of starting a local instance;
            needs ``ray=True``.
        names: the jobs' names in error messages and ``stage`` (default ``str(job)``).
        stage: a ``{name: what it is doing}`` dict to update from the driver (a Ray task
            cannot): ``"ray task"`` once submitted, then ``"done"`` or ``"failed"``.

    Returns:
        ``[fn(job) for job in jobs]``, computed concurrently.

    Raises:
        JobError: a job raised; raised after every job has ended, for the first failed job in
            the order of ``jobs``, naming it (and the others that failed).
        RayNotInstalledError: ``ray=True`` without the ``ray`` extra.
        InvalidArgumentError: ``workers`` is not an integer >= 1, ``names`` does not have one
            name per job, or ``ray_address`` is given without ``ray=True``.

    Example:
        >>> from adv_wrappers.train.fanout import run_jobs
        >>> run_jobs(lambda x: x * x, [3, 1, 2], workers=2)
        [9, 1, 4]
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidArgumentError(f"workers must be an integer >= 1, got {workers!r}")
    labels = [str(job) for job in jobs] if names is None else [str(n) for n in names]
    if len(labels) != len(jobs):
        raise InvalidArgumentError(
            f"names must have one name per job: {len(labels)} names for {len(jobs)} jobs"
        )
    if ray_address and not ray:
        raise InvalidArgumentError(f"ray_address={ray_address!r} needs ray=True")
    if ray:
        return _run_ray(fn, jobs, workers, ray_address or None, labels, stage)

    errors: dict[int, BaseException] = {}
    results: list[Any] = [None] * len(jobs)
    with ThreadPoolExecutor(workers) as pool:
        futures: list[Future[R]] = [pool.submit(fn, job) for job in jobs]
        for i, future in enumerate(futures):  # every job ends before anything is raised
            try:
                results[i] = future.result()
            except Exception as e:
                errors[i] = e
            if stage is not None:
                stage[labels[i]] = "failed" if i in errors else "done"
    _raise_first(labels, errors)
    return results


def _run_ray(
    fn: Callable[[J], R],
    jobs: Sequence[J],
    workers: int,
    address: str | None,
    labels: list[str],
    stage: MutableMapping[str, str] | None,
) -> list[R]:
    ray = _import_ray()
    started = not ray.is_initialized()
    if started and address is None:  # "local": a new instance, even if one runs on this machine
        ray.init(address="local", num_cpus=workers, include_dashboard=False)
    elif started:
        ray.init(address=address)
    try:
        # an exception is reported, not retried; a task whose worker or node died is rerun
        # (Ray's default, up to 3 times), and resumes from its files
        task = ray.remote(num_cpus=1)(fn)
        pending = {}
        for i, job in enumerate(jobs):
            pending[task.remote(job)] = i
            if stage is not None:
                stage[labels[i]] = "ray task"
        errors: dict[int, BaseException] = {}
        results: list[Any] = [None] * len(jobs)
        while pending:  # as they finish, so that `stage` follows them; the timeout lets
            # Ctrl-C through (a blocked ray.wait does not see it)
            finished, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in finished:
                i = pending.pop(ref)
                try:
                    results[i] = ray.get(ref)
                except ray.exceptions.RayTaskError as e:  # the job's own exception
                    errors[i] = e.cause if isinstance(e.cause, BaseException) else e
                except ray.exceptions.RayError as e:  # its worker or node died
                    errors[i] = e
                if stage is not None:
                    stage[labels[i]] = "failed" if i in errors else "done"
    finally:
        if started:
            ray.shutdown()
    _raise_first(labels, errors)
    return results
