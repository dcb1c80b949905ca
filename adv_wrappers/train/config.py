"""A trainer's configuration: ``tyro`` parsing with per-env presets and ``--resume``, seeding,
the derived batch sizes, and the PPO presets of Nika et al. (TMLR 2024), App. D.

* :func:`parse_args` - ``tyro`` parsing with per-env presets, or the arguments of a checkpoint.
* :func:`start_run` - CleanRL's preamble in one call: batch sizes, resume state, run folder,
  seeding and device.
* :func:`seed_everything`, :func:`env_seed` - seeding (and re-seeding after a checkpoint).
* :data:`PAPER_000_PRESETS` - the PPO hyperparameters that Naive, Fixed-K and ART share.

Change logs:
    * v0.2.0 - Moved here from ``adv_wrappers.training``; :func:`start_run` added.
    * v0.1.0 - Initially added.
"""

from __future__ import annotations

import dataclasses
import os
import random
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from adv_wrappers.errors import InvalidArgumentError

if TYPE_CHECKING:
    import torch

    from adv_wrappers.train.checkpoint import ResumeState
    from adv_wrappers.train.tracking import Run

__all__ = [
    "PAPER_000_PRESETS",
    "THROUGHPUT_PRESETS",
    "args_from_dict",
    "cli_flags",
    "env_seed",
    "parse_args",
    "seed_everything",
    "start_run",
]

ArgsT = TypeVar("ArgsT")


def args_from_dict(args_cls: type[ArgsT], saved: Mapping[str, Any], resume: str) -> ArgsT:
    """A trainer's saved arguments (JSON: tuples came back as lists) with ``resume`` set.

    Unknown names (a flag removed since the run was saved) are ignored with a warning.
    """
    defaults = args_cls()
    names = {f.name for f in dataclasses.fields(args_cls)}  # type: ignore[arg-type]
    values = {}
    for name, value in saved.items():
        if name not in names:
            warnings.warn(f"--resume: ignoring unknown saved argument {name!r}", stacklevel=3)
            continue
        if isinstance(getattr(defaults, name), tuple) and isinstance(value, list):
            value = tuple(value)
        values[name] = value
    values["resume"] = resume
    return args_cls(**values)


# Nika et al. (TMLR 2024), App. D, Table 7 (RLlib PPO), per env: what Naive (ippo.py), Fixed-K
# and ART (art.py) all train with, so that they share their hyperparameters (Sec. 5.1).
# Batch size = num_envs * num_steps environment steps; num_steps is a multiple of the episode
# length (25, 500, 1000), so ant uses 16 x 4000 = 64000 steps per batch instead of 65536. RLlib
# clips the value loss at an absolute 10, not at clip_coef, and does not anneal the learning rate.
PAPER_000_PRESETS: dict[str, dict[str, Any]] = {
    "adv/independent_spread-v0": dict(
        total_timesteps=800_000, num_envs=8, num_steps=500, minibatch_size=128,
        update_epochs=30, learning_rate=3e-4, gamma=0.99, clip_coef=0.3, gae_lambda=1.0,
        ent_coef=0.0, vf_coef=1.0, clip_vloss=False, anneal_lr=False,
    ),
    "adv/multi_ant-v0": dict(
        total_timesteps=13_000_000, num_envs=16, num_steps=4000, minibatch_size=4096,
        update_epochs=30, learning_rate=5e-5, gamma=0.99, clip_coef=0.2, gae_lambda=0.95,
        ent_coef=0.0, vf_coef=0.5, clip_vloss=False, anneal_lr=False,
    ),
    "adv/pursuit-v0": dict(
        total_timesteps=10_000_000, num_envs=10, num_steps=500, minibatch_size=500,
        update_epochs=30, learning_rate=5e-5, gamma=0.99, clip_coef=0.3, gae_lambda=0.95,
        ent_coef=0.01, vf_coef=1.0, clip_vloss=False, anneal_lr=False,
    ),
}  # fmt: skip
"""The PPO hyperparameters of Nika et al. (TMLR 2024), App. D (Table 7), per registry ID
(Independent Spread, multi-agent Ant, Pursuit): field name -> value of a trainer's ``Args``.

``ippo.py`` (Naive) and ``art.py`` (Fixed-K, ART; plus its ``omega_episodes``) use them as
their presets, so the three methods share their hyperparameters (Sec. 5.1); ``attack.py``
uses them at twice the learning rate (ART's adversaries). The name keeps the project's
internal number of that paper."""


THROUGHPUT_PRESETS: dict[str, dict[str, Any]] = {
    "adv/independent_spread-v0": dict(
        vector_backend="batched", num_envs=1024, num_steps=25, minibatch_size=6400, torch_threads=0,
        update_epochs=4, learning_rate=1e-3, gamma=0.99, clip_coef=0.3, gae_lambda=1.0,
        ent_coef=0.0, vf_coef=1.0, clip_vloss=False, anneal_lr=False,
    ),
}  # fmt: skip
"""**Not a paper's hyperparameters**: a throughput preset for ``ippo.py`` on the batched path,
per registry ID, for users who want many steps per second rather than a reproduction. 1024
batched copies x 25 steps (one episode) per batch, 4 minibatches x 4 epochs (16 gradient
steps per 25,600 environment steps, against the paper preset's 930 per 4000), learning rate
1e-3, one torch thread per CPU core (its minibatches are large enough to use them); the other
PPO settings are :data:`PAPER_000_PRESETS`'. Pass it as flags
(``cli_flags(THROUGHPUT_PRESETS[env_id])``); ``docs/performance.md`` has its steps/s and
``tests/test_batched_vector.py`` shows it learning."""


def parse_args(
    args_cls: type[ArgsT],
    presets: Mapping[str, Mapping[str, Any]] | None = None,
    argv: Sequence[str] | None = None,
) -> ArgsT:
    """Parse a trainer's ``Args`` dataclass with ``tyro``, apply its env preset, or resume.

    ``presets[env_id]`` replaces the dataclass defaults for that env (the flags given on the
    command line still win). With ``--resume PATH`` the arguments are those saved in the
    checkpoint (with ``resume=PATH``); other flags are ignored.

    Args:
        args_cls: the ``Args`` dataclass; it must have ``env_id`` and ``resume`` fields.
        presets: env ID -> field values.
        argv: the command line (default ``sys.argv[1:]``).

    Raises:
        CheckpointError: ``--resume`` names a missing or unreadable checkpoint.
        SystemExit: bad flags (tyro prints the usage).
    """
    import tyro

    args = tyro.cli(args_cls, args=argv)
    resume = getattr(args, "resume", None)
    if resume:
        from adv_wrappers.train import read_record

        return args_from_dict(args_cls, read_record(resume).get("args") or {}, resume)
    env_id = getattr(args, "env_id")  # noqa: B009 (ArgsT is any dataclass with env_id)
    preset = (presets or {}).get(env_id)
    if preset:
        default = dataclasses.replace(args_cls(), env_id=env_id, **preset)  # type: ignore[type-var]
        args = tyro.cli(args_cls, args=argv, default=default)
    return args


def cli_flags(values: Mapping[str, Any]) -> list[str]:
    """Field values -> the command-line flags ``tyro`` parses back to them.

    ``{"learning_rate": 3e-4, "anneal_lr": False, "hidden_sizes": (64, 64)}`` gives
    ``["--learning-rate", "0.0003", "--no-anneal-lr", "--hidden-sizes", "64", "64"]``;
    ``None`` is written ``None``. For a script that runs another trainer (``attack.py`` runs
    ``ippo.py``), so that every value is explicit and no preset of the other script applies.
    """
    flags: list[str] = []
    for name, value in values.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, tuple | list):
            flags += [flag, *map(str, value)]
        else:
            flags += [flag, str(value)]
    return flags


# --------------------------------------------------------------------------- seeding


def seed_everything(seed: int, torch_deterministic: bool = True) -> None:
    """Seed ``random``, ``numpy.random`` and ``torch`` (CleanRL's preamble).

    Args:
        seed: the run's seed.
        torch_deterministic: set ``torch.backends.cudnn.deterministic``.
    """
    import torch

    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (the legacy global generator, as in CleanRL)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = torch_deterministic


def env_seed(seed: int, iteration: int) -> int:
    """The seed for ``envs.reset`` before ``iteration + 1``: ``seed`` at the start, then one
    derived from ``(seed, iteration)`` after each checkpoint.

    Trainers reset the vector env with it right after writing a periodic checkpoint, so a run
    resumed from that checkpoint sees exactly the episodes the uninterrupted run saw.
    """
    if iteration == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(iteration)]).generate_state(1)[0])


def start_run(args: Any) -> tuple[Run, ResumeState | None, torch.device]:
    """CleanRL's preamble: batch sizes, resume state, run folder, seeding and device.

    Sets ``args.batch_size = num_envs * num_steps`` and ``args.num_iterations =
    total_timesteps // batch_size``; loads the ``--resume`` checkpoint's training state;
    opens the :class:`~adv_wrappers.train.tracking.Run`; seeds ``random``, ``numpy`` and
    ``torch`` with ``args.seed``; sets torch's CPU threads; picks CUDA when available and
    ``args.cuda``.

    Args:
        args: a trainer's ``Args`` (``num_envs``, ``num_steps``, ``total_timesteps``,
            ``resume``, ``seed``, ``torch_deterministic``, ``torch_threads``, ``cuda`` and
            what :class:`~adv_wrappers.train.tracking.Run` reads); ``torch_threads`` 0 means
            one per CPU core.

    Returns:
        ``(run, resume, device)``; ``resume`` is ``None`` for a new run.

    Raises:
        SystemExit: ``total_timesteps`` below one batch.
        InvalidArgumentError: ``torch_threads`` below 0.
        CheckpointError: ``--resume`` names a missing or unreadable checkpoint.
    """
    import torch

    from adv_wrappers.train.checkpoint import load_training_state
    from adv_wrappers.train.tracking import Run

    args.batch_size = int(args.num_envs * args.num_steps)
    args.num_iterations = args.total_timesteps // args.batch_size
    if args.num_iterations < 1:
        raise SystemExit(f"total_timesteps must be >= num_envs * num_steps = {args.batch_size}")
    threads = args.torch_threads
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise InvalidArgumentError(
            f"--torch-threads must be an int >= 0 (0: one per CPU core); got {threads!r}"
        )
    resume = load_training_state(args.resume) if args.resume else None
    run = Run(args, resume)
    seed_everything(args.seed, args.torch_deterministic)
    torch.set_num_threads(threads or os.cpu_count() or 1)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")
    return run, resume, device
