"""A training run's folder, TensorBoard, Weights & Biases, progress bar and NaN guard.

:class:`Run` is what a trainer in ``baselines/`` opens once (through
:func:`adv_wrappers.train.config.start_run`): it names the run (:func:`run_name`), creates
``runs/<run_name>/`` (TensorBoard event files, ``progress.json``, ``checkpoints/``,
``videos/``), starts W&B with ``--track`` and shows a ``tqdm`` progress bar with the global
step, steps per second and the recent episodic return; :meth:`Run.update_progress` also
keeps ``progress.json`` (global step, total steps, steps per second) current for scripts
that run trainers as subprocesses. :meth:`Run.final_evaluation` plays the final checkpoint.
:meth:`Run.check_finite` stops the run, with a message naming the last good checkpoint, when
a loss or a weight becomes NaN or infinite. Resumed runs
(:class:`~adv_wrappers.train.checkpoint.ResumeState`) continue in the same folder: TensorBoard
drops the events that the killed run logged after its checkpoint (``purge_step``) and W&B
continues the same run ID.

W&B mode: ``WANDB_MODE`` if set; otherwise online when an API key is configured
(``WANDB_API_KEY`` or a ``~/.netrc`` entry for ``api.wandb.ai``), else offline (the run is
kept under ``wandb/`` and can be uploaded later with ``wandb sync``).

Torch's TensorBoard writer, ``tqdm`` and ``wandb`` are imported when a :class:`Run` starts.

Change logs:
    * v0.2.0 - Moved here from ``adv_wrappers.tracking``; ``progress.json``.
    * v0.1.0 - Initially added.
"""

from __future__ import annotations

import dataclasses
import json
import math
import netrc
import os
import secrets
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from adv_wrappers.errors import CheckpointError

__all__ = ["Run", "run_name", "wandb_mode"]


def run_name(env_id: str, exp_name: str, seed: int, timestamp: int | None = None) -> str:
    """CleanRL's run name ``f"{env_id}__{exp_name}__{seed}__{int(time.time())}"``, with the
    ``/`` of registry IDs replaced by ``-`` so that it is one folder name.

    >>> run_name("adv/xnor_xor-v0", "ippo", 1, timestamp=1700000000)
    'adv-xnor_xor-v0__ippo__1__1700000000'
    """
    stamp = int(time.time()) if timestamp is None else int(timestamp)
    return f"{env_id}__{exp_name}__{seed}__{stamp}".replace("/", "-").replace(os.sep, "-")


def wandb_mode() -> str:
    """``WANDB_MODE`` if set, else ``"online"`` with an API key configured, else ``"offline"``."""
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return mode
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        if netrc.netrc().authenticators("api.wandb.ai"):
            return "online"
    except (OSError, netrc.NetrcParseError):
        pass
    return "offline"


class Run:
    """One training run: folder, TensorBoard writer, optional W&B run, progress bar.

    Args:
        args: the trainer's ``Args`` dataclass; reads ``env_id``, ``exp_name``, ``seed``,
            ``track``, ``wandb_project_name``, ``wandb_entity`` and ``total_timesteps``.
        resume: the state of the checkpoint being resumed (same name, folder and W&B run;
            TensorBoard purges events after its global step), or ``None``.
        runs_dir: the parent folder of new runs.

    Attributes:
        name: the run's name.
        dir: its folder.
        checkpoint_dir: ``dir / "checkpoints"``.
        writer: the ``SummaryWriter`` (``None`` after :meth:`close`).
        wandb_id: the W&B run ID (``None`` without ``track``).

    Raises:
        ImportError: ``track`` without ``wandb`` installed.
    """

    def __init__(self, args: Any, resume: Any = None, runs_dir: str | os.PathLike[str] = "runs"):
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm  # type: ignore[import-untyped]

        self.name = resume.run_name if resume else run_name(args.env_id, args.exp_name, args.seed)
        self.dir = Path(resume.run_dir) if resume else Path(runs_dir) / self.name
        self.checkpoint_dir = self.dir / "checkpoints"
        self.wandb_id: str | None = None
        self._wandb = None
        start_step = resume.global_step if resume else 0
        if args.track:
            import wandb

            # a fresh ID from `secrets` (the global RNGs that seeding controls stay untouched)
            self.wandb_id = (resume.wandb_id if resume else None) or secrets.token_hex(4)
            self._wandb = wandb.init(
                project=args.wandb_project_name,
                entity=args.wandb_entity,
                sync_tensorboard=True,
                config=dataclasses.asdict(args),
                name=self.name,
                id=self.wandb_id,
                resume="allow",
                mode=wandb_mode(),  # type: ignore[arg-type]
                save_code=True,
            )
        self.writer: Any = SummaryWriter(
            str(self.dir), purge_step=start_step + 1 if resume else None
        )
        if not resume:
            rows = "\n".join(f"|{k}|{v}|" for k, v in dataclasses.asdict(args).items())
            self.writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{rows}")
        self._start_time = time.time()
        self._start_step = start_step
        self.progress = tqdm(
            total=args.total_timesteps,
            initial=start_step,
            unit="step",
            unit_scale=True,
            dynamic_ncols=True,
            mininterval=1.0,
            desc=args.exp_name,
            file=sys.stderr,
        )

    def sps(self, global_step: int) -> int:
        """Environment steps per second since this process started the run (or resumed it)."""
        elapsed = max(time.time() - self._start_time, 1e-9)
        return int((global_step - self._start_step) / elapsed)

    def log(self, scalars: Mapping[str, float | None], global_step: int) -> None:
        """Write scalars to TensorBoard (and through it to W&B); skips ``None`` and NaN.

        The events are flushed to disk at every call, so a run killed later keeps them.
        """
        for tag, value in scalars.items():
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                self.writer.add_scalar(tag, value, global_step)
        self.writer.flush()

    def update_progress(
        self, global_step: int, episodic_return: float | None = None, *, scenarios: int = 1
    ) -> None:
        """Move the progress bar to ``global_step``; show SPS and the recent return.

        Also writes ``progress.json`` in the run folder (``global_step``, ``total_timesteps``,
        ``sps``), which a script running trainers as subprocesses (``robustness_report.py``)
        reads to show overall progress. A run of ``scenarios`` stacked scenarios
        (``ippo.py --scenarios``) counts ``global_step`` per scenario; the file counts the
        environment steps of all of them (``global_step * scenarios``).
        """
        sps = self.sps(global_step)
        postfix = {"SPS": sps}
        if episodic_return is not None and not math.isnan(episodic_return):
            postfix["return"] = round(float(episodic_return), 2)  # type: ignore[assignment]
        self.progress.set_postfix(postfix, refresh=False)
        self.progress.update(global_step - self.progress.n)
        progress = {
            "global_step": global_step * scenarios,
            "total_timesteps": self.progress.total * scenarios,
            "sps": sps * scenarios,
        }
        tmp = self.dir / "progress.json.tmp"
        tmp.write_text(json.dumps(progress))
        tmp.replace(self.dir / "progress.json")

    def check_finite(
        self, tensors: Mapping[str, Any] | Iterable[tuple[str, Any]], **where: Any
    ) -> None:
        """Stop the run if any tensor has a NaN or infinite entry.

        The check runs before anything is saved, so the last checkpoint on disk is the last
        good one; the message names it. The writer and W&B are closed, then the process
        exits with status 1 (``SystemExit``).

        Args:
            tensors: name -> tensor (or ``(name, tensor)`` pairs, e.g.
                ``model.named_parameters()``).
            **where: context for the message, e.g. ``iteration=3, global_step=1536``.

        Raises:
            SystemExit: (status 1) a non-finite value was found.
        """
        import torch

        items = tensors.items() if isinstance(tensors, Mapping) else tensors
        for name, value in items:
            value = torch.as_tensor(value)
            if bool(torch.isfinite(value).all()):
                continue
            context = ", ".join(f"{k}={v}" for k, v in where.items())
            last = self.checkpoint_dir / "last.safetensors"
            try:
                from adv_wrappers.train.policy import read_record

                record = read_record(last)
                saved = (
                    f"The last good checkpoint is {last} (iteration {record['iteration']}, "
                    f"global step {record['global_step']}); continue from it with --resume {last}."
                )
            except CheckpointError:
                saved = "No checkpoint was written before this point."
            message = f"{name} is not finite ({context}): training diverged, stopping. {saved}"
            self.progress.write(message, file=sys.stderr)
            self.close(exit_code=1)
            raise SystemExit(1)

    def final_evaluation(
        self,
        checkpoint: str | os.PathLike[str],
        env_fn: Any,
        agents: Iterable[str],
        *,
        episodes: int,
        seed: int,
        global_step: int,
        video_env_fn: Any = None,
    ) -> dict[str, float]:
        """Evaluate a checkpoint's greedy policies in a fresh env; log, print, record a video.

        Every agent's policy is loaded with :func:`~adv_wrappers.train.load_policy`
        (exactly as the wrappers would use it) and played for ``episodes`` episodes
        (:func:`~adv_wrappers.train.envs.evaluate`, episode ``i`` seeded ``seed + i``). Logs
        ``eval/episodic_return`` (mean over agents) and ``eval/episodic_return/<agent>``.

        Args:
            checkpoint: the checkpoint file.
            env_fn: builds the evaluation env (as for training).
            agents: the agents to load (every agent that acts in the env).
            episodes: evaluation episodes (0: none).
            seed: seed of the first episode.
            global_step: the step to log at.
            video_env_fn: if given, builds an ``rgb_array`` env in which one more episode is
                recorded to ``videos/eval_<global_step>.mp4`` (or ``.gif``) in the run folder.

        Returns:
            agent -> mean return (empty without episodes).

        Raises:
            CheckpointError: the checkpoint cannot be loaded.
        """
        import numpy as np

        from adv_wrappers.train.envs import evaluate, record_video
        from adv_wrappers.train.policy import load_policy

        print(f"final checkpoint: {checkpoint}")
        policies = {a: load_policy(checkpoint, agent=a) for a in agents}
        per_agent: dict[str, float] = {}
        if episodes > 0:
            results = evaluate(env_fn, policies, episodes, seed=seed)
            per_agent = {
                a: float(np.nanmean(r)) for a, r in results.items() if not np.isnan(r).all()
            }
            # (NaN, and not logged, if no agent ever got a reward)
            mean = sum(per_agent.values()) / len(per_agent) if per_agent else float("nan")
            self.log({"eval/episodic_return": mean}, global_step)
            self.log({f"eval/episodic_return/{a}": r for a, r in per_agent.items()}, global_step)
            details = ", ".join(f"{a}: {r:.2f}" for a, r in per_agent.items())
            print(f"eval: mean return {mean:.2f} over {episodes} greedy episodes; {details}")
        if video_env_fn is not None:
            path = self.dir / "videos" / f"eval_{global_step}.mp4"
            print(f"video: {record_video(video_env_fn, policies, path, seed=seed)}")
        return per_agent

    def close(self, exit_code: int = 0) -> None:
        """Close the progress bar, flush TensorBoard and finish W&B (idempotent)."""
        if self.writer is None:
            return
        self.progress.close()
        self.writer.close()
        self.writer = None
        if self._wandb is not None:
            self._wandb.finish(exit_code=exit_code)
            self._wandb = None
