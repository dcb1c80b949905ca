"""Checkpoints, from the trainer's side: writing them and resuming from them.

What the trainers in ``baselines/`` call: a :class:`Checkpointer` writes a run's
``last.safetensors`` periodically and ``final.safetensors`` at the end, with the policies
(:func:`export_policies`) and the whole training state (model, optimizer, RNG states);
:func:`load_training_state` reads one back for ``--resume`` (:class:`ResumeState`).
:func:`save_policies` writes a policy-only checkpoint; :func:`strip_training` makes one from
a training checkpoint (a small file to keep or share, without the replay buffer or Adam). Users load the policies with
:func:`adv_wrappers.train.load_policy` (:mod:`adv_wrappers.train.policy`).

A checkpoint is **one** ``.safetensors`` file, never a pickle. Its tensors are the exported
policies (and, for resuming, the whole training state); its header metadata holds the JSON
record under the key ``"adv_wrappers.checkpoint"``. One file means one atomic write: it is
written to a temporary file in the same folder and moved into place with ``os.replace``, so
a run killed while saving leaves the previous checkpoint intact. A truncated or edited file
is detected when read (safetensors checks the layout, the record is checked against the
tensors' shapes, a SHA-256 of all tensors checks the contents).

Tensors:

==============================  ===============================================================
key                             what
==============================  ===============================================================
``policies/<name>/<param>``     the policy ``<name>``: weights of a one-member
                                :class:`~adv_wrappers.train.networks.MLPActor`
``training/model/<param>``      the trainer's whole model (actors and critics), for ``--resume``
``training/optimizer/<i>/<k>``  optimizer state tensor ``k`` of parameter ``i``
``training/rng/<name>``         RNG states: ``torch``, ``numpy`` (MT19937 keys), ``python``
                                (Mersenne Twister words), ``cuda/<device>``
==============================  ===============================================================

The record (``python -m adv_wrappers.train.policy FILE`` prints it) has ``format_version``,
``algorithm``, ``env_id``, ``env_kwargs``, ``threat`` (a dict, ``None`` for naive training),
``agents`` and ``spaces`` (each agent's observation and action space as JSON, see
``docs/training.md``), ``policies`` (name -> ``{"agent", "actor"}``: the agent whose spaces
it acts in and its :class:`~adv_wrappers.train.networks.ActorSpec`), ``args`` (the trainer's
``Args`` as a dict), ``seed``, ``global_step``, ``iteration``, ``complete`` (``True`` for the
end-of-training checkpoint), ``run`` (run name, W&B run ID), ``created``, ``git_commit``
(read from ``.git``, ``None`` outside a repository), ``versions`` (Python and packages),
``extra`` (anything a trainer adds), ``tensors_sha256`` and ``training`` (the non-tensor part
of the training state: optimizer hyperparameters, RNG states; ``None`` in a policy-only
checkpoint).

Torch and safetensors are imported by this module (``import adv_wrappers`` does not).

Example:
    >>> import tempfile, torch
    >>> from gymnasium import spaces
    >>> from adv_wrappers.train import read_record
    >>> from adv_wrappers.train.checkpoint import export_policies, save_policies
    >>> from adv_wrappers.train.networks import ActorSpec, MLPActor
    >>> _ = torch.manual_seed(0)
    >>> obs_space, act_space = spaces.Box(0.0, 1.0, (2,)), spaces.Discrete(2)
    >>> actor = MLPActor(ActorSpec(input_dim=2, action_dim=2, head="categorical"), members=2)
    >>> path = save_policies(
    ...     tempfile.mkdtemp() + "/policies.safetensors",
    ...     export_policies(actor, ["agent_0", "agent_1"]), env_id="adv/xnor_xor-v0",
    ...     spaces={a: (obs_space, act_space) for a in ["agent_0", "agent_1"]},
    ... )
    >>> sorted(read_record(path)["policies"])
    ['agent_0', 'agent_1']

Change logs:
    * v0.2.0 - Loading policies moved to :mod:`adv_wrappers.train.policy`, the file format
      to a private module.
    * v0.1.0 - Initially added.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium
import numpy as np
import torch

from adv_wrappers.errors import CheckpointError, InvalidArgumentError
from adv_wrappers.train._format import (
    check_policy_tensors,
    git_commit,
    jsonable,
    open_checkpoint,
    package_versions,
    policy_from_record,
    read_tensors,
    spaces_record,
    write_checkpoint,
)
from adv_wrappers.train.networks import ActorSpec, MLPActor

__all__ = [
    "Checkpointer",
    "ExportedPolicy",
    "ResumeState",
    "capture_rng_state",
    "export_policies",
    "load_training_state",
    "read_policies",
    "restore_rng_state",
    "save_policies",
    "strip_training",
]


# --------------------------------------------------------------------------- policies


class ExportedPolicy(NamedTuple):
    """One policy as stored in a checkpoint.

    Attributes:
        agent: the agent whose observation and action spaces the policy uses.
        spec: its architecture (with its own ``agent_one_hot``).
        state_dict: the weights of a one-member ``MLPActor(spec)``.
    """

    agent: str
    spec: ActorSpec
    state_dict: dict[str, torch.Tensor]


def export_policies(
    actor: MLPActor, agents: Sequence[str], action_sizes: Sequence[int] | None = None
) -> dict[str, ExportedPolicy]:
    """One :class:`ExportedPolicy` per agent from a stacked actor, named by agent.

    With ``actor.members == len(agents)`` member ``m`` is ``agents[m]``'s network. With one
    member and ``spec.agent_one_hot`` set (parameter sharing), every agent gets the shared
    weights and its own one-hot index.

    Args:
        actor: the trained actor.
        agents: the agents of the stack, in the order of its agent axis.
        action_sizes: each agent's own action size when the actor acts in a padded space
            (Box actions of different sizes): each policy keeps only its agent's outputs
            (the output layer's first rows, and the Gaussian ``log_std``), so it acts in
            the agent's own space. ``None``: every agent uses all ``spec.action_dim``.

    Raises:
        InvalidArgumentError: the number of members matches neither ``len(agents)`` nor 1;
            ``action_sizes`` not one size in ``1..spec.action_dim`` per agent.
    """
    agents = list(agents)
    spec = actor.spec
    if actor.members == len(agents):
        policies = {
            a: ExportedPolicy(str(a), spec, actor.member_state_dict(m))
            for m, a in enumerate(agents)
        }
    elif actor.members == 1:
        policies = {
            a: ExportedPolicy(
                str(a),
                ActorSpec(**{**spec.__dict__, "agent_one_hot": (i, len(agents))})
                if spec.agent_one_hot is not None
                else spec,
                actor.member_state_dict(0),  # a copy per agent: the file stores each one
            )
            for i, a in enumerate(agents)
        }
    else:
        raise InvalidArgumentError(
            f"actor has {actor.members} members, which matches neither the {len(agents)} "
            "agents nor parameter sharing (1 member)"
        )
    if action_sizes is None:
        return policies
    sizes = [int(n) for n in action_sizes]
    if len(sizes) != len(agents) or not all(1 <= n <= spec.action_dim for n in sizes):
        raise InvalidArgumentError(
            f"action_sizes must be one size in 1..{spec.action_dim} per agent ({len(agents)}); "
            f"got {list(action_sizes)}"
        )
    last = f"net.{2 * len(spec.hidden_sizes)}"  # the output layer (Linear, activation, ...)
    for a, size in zip(agents, sizes, strict=True):
        if size == spec.action_dim:
            continue
        state = dict(policies[a].state_dict)
        state[f"{last}.weight"] = state[f"{last}.weight"][:, :size].contiguous()
        state[f"{last}.bias"] = state[f"{last}.bias"][..., :size].contiguous()
        if "log_std" in state:
            state["log_std"] = state["log_std"][..., :size].contiguous()
        policies[a] = ExportedPolicy(
            a, dataclasses.replace(policies[a].spec, action_dim=size), state
        )
    return policies


def _policy_record(policies: Mapping[str, ExportedPolicy]) -> tuple[dict, dict]:
    record, tensors = {}, {}
    for name, policy in policies.items():
        record[name] = {"agent": policy.agent, "actor": policy.spec.to_json()}
        for key, value in policy.state_dict.items():
            tensors[f"policies/{name}/{key}"] = value
    return record, tensors


def _env_record(
    algorithm: str | None,
    env_id: str | None,
    env_kwargs: Mapping[str, Any] | None,
    threat: Mapping[str, Any] | None,
    spaces: Mapping[str, tuple[gymnasium.Space, gymnasium.Space]],
) -> dict[str, Any]:
    """The part of a record that says what produced the policies and where they act."""
    return {
        "algorithm": algorithm,
        "env_id": env_id,
        "env_kwargs": dict(env_kwargs or {}),
        "threat": None if threat is None else dict(threat),
        "agents": list(spaces),
        "spaces": spaces_record(spaces),
    }


def save_policies(
    path: str | os.PathLike[str],
    policies: Mapping[str, ExportedPolicy],
    *,
    env_id: str | None,
    spaces: Mapping[str, tuple[gymnasium.Space, gymnasium.Space]],
    env_kwargs: Mapping[str, Any] | None = None,
    threat: Mapping[str, Any] | None = None,
    algorithm: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a policy-only checkpoint (no training state), e.g. a hand-built or converted one.

    Args:
        path: the ``.safetensors`` file to write.
        policies: name -> :class:`ExportedPolicy` (see :func:`export_policies`).
        env_id: the registry ID of the env the policies act in (``None`` if unregistered).
        spaces: agent -> ``(observation_space, action_space)``; must cover every policy's
            agent.
        env_kwargs: the env's keyword arguments.
        threat: the threat-model configuration (``None``: none).
        algorithm: what produced the policies.
        extra: any JSON-serializable additions (kept under ``"extra"``).

    Returns:
        ``path`` as a ``Path``.

    Raises:
        CheckpointError: a policy's agent is missing from ``spaces``; a record that is not
            JSON-serializable.
    """
    missing = sorted({p.agent for p in policies.values()} - set(spaces))
    if missing:
        raise CheckpointError(f"spaces has no entry for the policies' agents {missing}")
    policy_record, tensors = _policy_record(policies)
    record = {
        **_env_record(algorithm, env_id, env_kwargs, threat, spaces),
        "policies": policy_record,
        "args": None,
        "seed": None,
        "global_step": None,
        "iteration": None,
        "complete": True,
        "run": None,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "versions": package_versions(),
        "extra": dict(extra or {}),
        "training": None,
    }
    return write_checkpoint(path, record, tensors)


def read_policies(
    path: str | os.PathLike[str], names: Sequence[str] | None = None
) -> tuple[dict[str, ExportedPolicy], dict[str, tuple[gymnasium.Space, gymnasium.Space]]]:
    """A checkpoint's policies as :class:`ExportedPolicy`, what :func:`save_policies` takes,
    and their agents' ``(observation_space, action_space)``: e.g. to combine the policies of
    several checkpoints into one (``convergence_check.py --reattack-timesteps``).

    Args:
        path: the checkpoint.
        names: the policies to read (``record["policies"]`` lists them; default: all).

    Raises:
        CheckpointError: missing, truncated or corrupt file; no policy of one of ``names``;
            a policy whose record and tensors disagree (checked before anything is read).
    """
    record, handle = open_checkpoint(path)
    names = list(record.get("policies") or {}) if names is None else list(names)
    specs = {name: policy_from_record(path, record, name) for name in names}
    for name, (_, spec, _, _) in specs.items():
        check_policy_tensors(path, handle, name, spec)
    tensors = read_tensors(path, record, handle)
    policies: dict[str, ExportedPolicy] = {}
    spaces: dict[str, tuple[gymnasium.Space, gymnasium.Space]] = {}
    for name, (agent, spec, observation_space, action_space) in specs.items():
        prefix = f"policies/{name}/"
        state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        policies[name] = ExportedPolicy(agent, spec, state)
        spaces[agent] = (observation_space, action_space)
    return policies, spaces


def strip_training(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Copy a checkpoint without its training state: the policies and the record only.

    The copy loads with :func:`~adv_wrappers.train.load_policy` exactly as ``src`` does, but
    cannot ``--resume``: its ``training`` is ``None`` and it has no ``training/`` tensors
    (model, optimizer, replay buffer, RNG states), so it is a fraction of the size. Its
    record keeps ``src``'s (``args``, ``seed``, ``global_step``, ``git_commit``, ...).

    Args:
        src: a checkpoint (its tensors are checked against its SHA-256 first).
        dst: the ``.safetensors`` file to write.
        extra: JSON-serializable additions, merged into the record's ``"extra"``.

    Returns:
        ``dst`` as a ``Path``.

    Raises:
        CheckpointError: ``extra`` is not JSON-serializable; ``src`` is missing, not a checkpoint, truncated or corrupt.
    """
    record, handle = open_checkpoint(src)
    tensors = read_tensors(src, record, handle)
    policies = {k: v for k, v in tensors.items() if not k.startswith("training/")}
    kept = {k: v for k, v in record.items() if k not in ("format_version", "tensors_sha256")}
    kept["extra"] = {**(kept.get("extra") or {}), **(extra or {})}
    return write_checkpoint(dst, {**kept, "training": None}, policies)


# --------------------------------------------------------------------------- training state


def capture_rng_state() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The global RNG states of ``random``, ``numpy.random`` and ``torch`` (CPU and CUDA).

    Returns:
        ``(json_part, tensors)``: what :func:`restore_rng_state` needs, split so that no
        pickle is involved.
    """
    version, words, gauss = random.getstate()
    # the legacy global generator is what CleanRL-style trainers seed and shuffle with
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # noqa: NPY002
    tensors = {
        "python": torch.tensor(list(words), dtype=torch.int64),
        "numpy": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "torch": torch.get_rng_state(),
    }
    cuda = 0
    if torch.cuda.is_available():
        for i, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda/{i}"] = cuda_state
            cuda += 1
    state = {
        "python": {"version": version, "gauss_next": gauss},
        "numpy": {
            "kind": kind,
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "cuda_devices": cuda,
    }
    return state, tensors


def restore_rng_state(state: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> None:
    """Restore what :func:`capture_rng_state` returned (CUDA states only where CUDA exists)."""
    py = state["python"]
    random.setstate(
        (py["version"], tuple(int(w) for w in tensors["python"].tolist()), py["gauss_next"])
    )
    npy = state["numpy"]
    np.random.set_state(  # noqa: NPY002 (the legacy global generator, see above)
        (
            npy["kind"],
            tensors["numpy"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached_gaussian"],
        )
    )
    torch.set_rng_state(tensors["torch"])
    if torch.cuda.is_available():
        states = [tensors[f"cuda/{i}"] for i in range(int(state.get("cuda_devices", 0)))]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


def _optimizer_to_json(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    state_dict = optimizer.state_dict()
    tensors, other = {}, {}
    for pid, entries in state_dict["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{pid}/{key}"] = value
            else:
                other[f"{pid}/{key}"] = value
    return {"param_groups": jsonable(state_dict["param_groups"]), "scalars": other}, tensors


def _optimizer_from_json(
    optimizer: torch.optim.Optimizer, data: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in list(tensors.items()) + list(data["scalars"].items()):
        pid, name = key.split("/", 1)
        state.setdefault(int(pid), {})[name] = value
    groups = []
    for saved, live in zip(data["param_groups"], optimizer.param_groups, strict=True):
        group = dict(saved)
        for k, v in live.items():  # JSON turned tuples (Adam's betas) into lists
            if isinstance(v, tuple) and isinstance(group.get(k), list):
                group[k] = tuple(group[k])
        groups.append(group)
    optimizer.load_state_dict({"state": state, "param_groups": groups})


@dataclass
class ResumeState:
    """A checkpoint's training state, read by :func:`load_training_state`.

    Attributes:
        path: the checkpoint file.
        record: its record.
        args: the trainer's ``Args`` as saved (a dict).
        global_step: environment steps done when it was saved.
        iteration: PPO iterations done when it was saved.
        run_name: the run's name.
        run_dir: the run's folder (the checkpoint's grandparent when it lies in a
            ``checkpoints`` folder, else ``runs/<run_name>``).
        wandb_id: the W&B run ID to continue (or ``None``).
        tensors: every tensor of the file.
    """

    path: Path
    record: dict[str, Any]
    args: dict[str, Any]
    global_step: int
    iteration: int
    run_name: str
    run_dir: Path
    wandb_id: str | None
    tensors: dict[str, torch.Tensor]

    def restore(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> None:
        """Load the model's weights and the optimizer's state, then the global RNG states.

        Call it after building (and seeding) the model and optimizer, right before training
        continues: the RNG states are those at the moment the checkpoint was saved.

        Raises:
            CheckpointError: the model's or the optimizer's parameters do not match.
        """
        training = self.record["training"]
        model_state = {
            k.removeprefix("training/model/"): v
            for k, v in self.tensors.items()
            if k.startswith("training/model/")
        }
        try:
            model.load_state_dict(model_state)
            if optimizer is not None:
                opt = {
                    k.removeprefix("training/optimizer/"): v
                    for k, v in self.tensors.items()
                    if k.startswith("training/optimizer/")
                }
                _optimizer_from_json(optimizer, training["optimizer"], opt)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(
                f"the training state in {str(self.path)!r} does not fit this model or "
                f"optimizer: {exc}"
            ) from None
        rng = {
            k.removeprefix("training/rng/"): v
            for k, v in self.tensors.items()
            if k.startswith("training/rng/")
        }
        restore_rng_state(training["rng"], rng)


def load_training_state(path: str | os.PathLike[str]) -> ResumeState:
    """Read a checkpoint written by :class:`Checkpointer` to resume its run.

    Raises:
        CheckpointError: missing, truncated or corrupt file; a policy-only checkpoint (no
            training state); a record without its run name and counters, or whose run name
            is a path.
    """
    record, handle = open_checkpoint(path)
    if not record.get("training"):
        raise CheckpointError(
            f"checkpoint {str(path)!r} has no training state (a policy-only checkpoint); "
            "it cannot be resumed"
        )
    try:
        run = record.get("run") or {}
        run_name = str(run["name"])
        counters = {
            "global_step": int(record["global_step"]),
            "iteration": int(record["iteration"]),
        }
        args = dict(record.get("args") or {})
        wandb_id = run.get("wandb_id")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} has a corrupt record: {exc!r}") from None
    if Path(run_name).name != run_name or run_name in ("", ".", ".."):
        raise CheckpointError(
            f"checkpoint {str(path)!r} has a corrupt record: run name {run_name!r} is not a "
            "plain folder name"
        )
    tensors = read_tensors(path, record, handle)
    path = Path(path)
    parent = path.resolve().parent
    run_dir = parent.parent if parent.name == "checkpoints" else Path("runs") / run_name
    return ResumeState(
        path=path,
        record=record,
        args=args,
        global_step=counters["global_step"],
        iteration=counters["iteration"],
        run_name=run_name,
        run_dir=run_dir,
        wandb_id=wandb_id,
        tensors=tensors,
    )


class Checkpointer:
    """Writes a run's checkpoints: ``last.safetensors`` periodically, ``final.safetensors`` at
    the end (both in ``directory``).

    Args:
        directory: where the files go (``runs/<run_name>/checkpoints``).
        algorithm: the trainer's name (``"ippo"``).
        args: the trainer's ``Args`` dataclass (stored with ``dataclasses.asdict``).
        env_id: the registry ID.
        env_kwargs: the env's keyword arguments.
        threat: the threat-model configuration, or ``None``.
        spaces: agent -> ``(observation_space, action_space)`` of the (wrapped) env.
        run_name: the run's name.
        wandb_id: the W&B run ID (``None`` without ``--track``).

    Attributes:
        last: the path of the last checkpoint written (``None`` before the first).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        algorithm: str,
        args: Any,
        env_id: str,
        env_kwargs: Mapping[str, Any] | None,
        threat: Mapping[str, Any] | None,
        spaces: Mapping[str, tuple[gymnasium.Space, gymnasium.Space]],
        run_name: str,
        wandb_id: str | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.last: Path | None = None
        self._static = {
            **_env_record(algorithm, env_id, env_kwargs, threat, spaces),
            "args": (
                dataclasses.asdict(args)
                if dataclasses.is_dataclass(args) and not isinstance(args, type)
                else dict(args)
            ),
            "seed": getattr(args, "seed", None),
            "run": {"name": run_name, "wandb_id": wandb_id},
            "git_commit": git_commit(),
            "versions": package_versions(),
        }

    def save(
        self,
        *,
        global_step: int,
        iteration: int,
        policies: Mapping[str, ExportedPolicy],
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer | None,
        complete: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write ``last.safetensors`` (and, with ``complete=True``, ``final.safetensors``).

        Captures the model, the optimizer and the global RNG states as they are now, so
        :meth:`ResumeState.restore` continues from exactly here.

        Args:
            global_step: environment steps done.
            iteration: iterations done.
            policies: name -> :class:`ExportedPolicy` (see :func:`export_policies`).
            model: the trainer's whole model.
            optimizer: its optimizer (``None`` if it has none).
            complete: the end-of-training checkpoint.
            extra: JSON-serializable additions (kept under ``"extra"``).

        Returns:
            The path of ``last.safetensors``.

        Raises:
            CheckpointError: a record that is not JSON-serializable.
            OSError: the file cannot be written.
        """
        policy_record, tensors = _policy_record(policies)
        for k, v in model.state_dict().items():
            tensors[f"training/model/{k}"] = v
        optimizer_json: dict[str, Any] | None = None
        if optimizer is not None:
            optimizer_json, opt_tensors = _optimizer_to_json(optimizer)
            tensors.update({f"training/optimizer/{k}": v for k, v in opt_tensors.items()})
        rng_json, rng_tensors = capture_rng_state()
        tensors.update({f"training/rng/{k}": v for k, v in rng_tensors.items()})
        record = {
            **self._static,
            "policies": policy_record,
            "global_step": int(global_step),
            "iteration": int(iteration),
            "complete": bool(complete),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "extra": dict(extra or {}),
            "training": {"optimizer": optimizer_json, "rng": rng_json},
        }
        self.last = write_checkpoint(self.directory / "last.safetensors", record, tensors)
        if complete:
            write_checkpoint(self.directory / "final.safetensors", record, tensors)
        return self.last
