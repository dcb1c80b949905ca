"""Checkpoints of the trainers: safetensors weights plus a JSON record, never pickles.

A checkpoint is **one** ``.safetensors`` file. Its tensors are the exported policies (and,
for resuming, the whole training state); its header metadata holds the JSON record under
the key :data:`RECORD_KEY`. One file means one atomic write: it is written to a temporary
file in the same folder and moved into place with ``os.replace``, so a run killed while
saving leaves the previous checkpoint intact. Loading reads the header with ``json`` and the
tensors with ``safetensors``: no code is ever unpickled, and a truncated or edited file is
detected (safetensors checks the layout, a SHA-256 of all tensors checks the contents).

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

The record (``python -m adv_wrappers.train.checkpoint FILE`` prints it) has ``format_version``,
``algorithm``, ``env_id``, ``env_kwargs``, ``threat`` (a dict, ``None`` for naive training),
``agents`` and ``spaces`` (each agent's observation and action space as JSON, see
:func:`space_to_json`), ``policies`` (name -> ``{"agent", "actor"}``: the agent whose spaces
it acts in and its :class:`~adv_wrappers.train.networks.ActorSpec`), ``args`` (the trainer's
``Args`` as a dict), ``seed``, ``global_step``, ``iteration``, ``complete`` (``True`` for the
end-of-training checkpoint), ``run`` (run name, W&B run ID), ``created``, ``git_commit``
(read from ``.git``, ``None`` outside a repository), ``versions`` (Python and packages),
``extra`` (anything a trainer adds), ``tensors_sha256`` and ``training`` (the non-tensor part
of the training state: optimizer hyperparameters, RNG states; ``None`` in a policy-only
checkpoint).

A policy loaded with :func:`load_policy` is an :class:`adv_wrappers.policies.Policy`: call it
on one observation to get one action (greedy by default), so the wrappers' embedded slots and
``freeze_v0`` accept it directly.

Torch and safetensors are imported by this module (``import adv_wrappers`` does not).

Example:
    >>> import tempfile, torch
    >>> from gymnasium import spaces
    >>> from adv_wrappers.train.checkpoint import export_policies, load_policy, save_policies
    >>> from adv_wrappers.train.networks import ActorSpec, MLPActor
    >>> _ = torch.manual_seed(0)
    >>> obs_space, act_space = spaces.Box(0.0, 1.0, (2,)), spaces.Discrete(2)
    >>> actor = MLPActor(ActorSpec(input_dim=2, action_dim=2, head="categorical"), members=2)
    >>> path = tempfile.mkdtemp() + "/policies.safetensors"
    >>> _ = save_policies(
    ...     path, export_policies(actor, ["agent_0", "agent_1"]), env_id="adv/xnor_xor-v0",
    ...     spaces={a: (obs_space, act_space) for a in ["agent_0", "agent_1"]},
    ... )
    >>> policy = load_policy(path, agent="agent_1")
    >>> policy([1.0, 0.0]) in act_space
    True

Change logs:
    * v0.1.0 - Initially added.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import random
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from safetensors import safe_open
from safetensors.torch import save as safetensors_save

from adv_wrappers.errors import CheckpointError, InvalidArgumentError, UnsupportedSpaceError
from adv_wrappers.train.networks import ActorSpec, MLPActor

__all__ = [
    "FORMAT_VERSION",
    "RECORD_KEY",
    "CheckpointPolicy",
    "Checkpointer",
    "ExportedPolicy",
    "ResumeState",
    "capture_rng_state",
    "export_policies",
    "git_commit",
    "load_policy",
    "load_training_state",
    "package_versions",
    "read_record",
    "restore_rng_state",
    "save_policies",
    "space_from_json",
    "space_to_json",
    "write_checkpoint",
]

FORMAT_VERSION = 1
"""Version of the checkpoint layout; bumped when a reader must change."""

RECORD_KEY = "adv_wrappers.checkpoint"
"""Key of the JSON record in the safetensors header metadata."""

_VERSIONED_PACKAGES = (
    "adv-wrappers",
    "torch",
    "numpy",
    "gymnasium",
    "pettingzoo",
    "safetensors",
    "mpe2",
    "lbforaging",
    "mujoco",
)


# --------------------------------------------------------------------------- spaces as JSON


def _floats_to_json(values: np.ndarray) -> Any:
    """An array as a scalar (all equal) or nested list; non-finite values as strings."""

    def one(v: float) -> Any:
        if np.isfinite(v):
            return v.item() if isinstance(v, np.generic) else v
        return "nan" if np.isnan(v) else ("inf" if v > 0 else "-inf")

    flat = values.reshape(-1)
    if flat.size and (flat == flat[0]).all():
        return one(flat[0])
    return np.vectorize(one, otypes=[object])(values).tolist()


def _floats_from_json(value: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    array = np.asarray(value, dtype=object)
    converted = np.vectorize(float, otypes=[np.float64])(array) if array.size else array
    return np.broadcast_to(np.asarray(converted, dtype=np.float64), shape).astype(dtype)


def space_to_json(space: gymnasium.Space) -> dict[str, Any]:
    """A gymnasium space as a JSON-serializable dict (type, shape, dtype, bounds or sizes).

    ``Box``: ``low``/``high`` as one number when constant, else nested lists; infinities as
    ``"inf"``/``"-inf"``. ``Discrete``: ``n``, ``start``. ``MultiDiscrete``: ``nvec``,
    ``start``. ``MultiBinary``: ``n``. ``Dict`` and ``Tuple`` recursively.

    Raises:
        UnsupportedSpaceError: any other space.
    """
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": str(space.dtype),
            "low": _floats_to_json(space.low),
            "high": _floats_to_json(space.high),
        }
    if isinstance(space, spaces.Discrete):
        return {
            "type": "Discrete",
            "n": int(space.n),
            "start": int(space.start),
            "dtype": str(space.dtype),
        }
    if isinstance(space, spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "nvec": np.asarray(space.nvec).tolist(),
            "start": np.asarray(space.start).tolist(),
            "dtype": str(space.dtype),
        }
    if isinstance(space, spaces.MultiBinary):
        n = space.n
        return {"type": "MultiBinary", "n": n if isinstance(n, int) else list(n)}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_to_json(s) for k, s in space.spaces.items()}}
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_json(s) for s in space.spaces]}
    raise UnsupportedSpaceError(f"cannot serialize space {space!r} to JSON")


def space_from_json(data: Mapping[str, Any]) -> gymnasium.Space:
    """Inverse of :func:`space_to_json`.

    Raises:
        CheckpointError: a dict that does not describe a supported space.
    """
    try:
        kind = data["type"]
        if kind == "Box":
            shape = tuple(int(s) for s in data["shape"])
            dtype = np.dtype(data["dtype"])
            low = _floats_from_json(data["low"], shape, dtype)
            high = _floats_from_json(data["high"], shape, dtype)
            return spaces.Box(low, high, shape, dtype)
        if kind == "Discrete":
            return spaces.Discrete(
                int(data["n"]), start=int(data["start"]), dtype=np.dtype(data.get("dtype", "int64"))
            )
        if kind == "MultiDiscrete":
            return spaces.MultiDiscrete(
                np.asarray(data["nvec"]), dtype=np.dtype(data["dtype"]), start=data["start"]
            )
        if kind == "MultiBinary":
            return spaces.MultiBinary(data["n"])
        if kind == "Dict":
            return spaces.Dict({k: space_from_json(s) for k, s in data["spaces"].items()})
        if kind == "Tuple":
            return spaces.Tuple([space_from_json(s) for s in data["spaces"]])
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"not a valid space description: {data!r} ({exc})") from None
    raise CheckpointError(f"unknown space type {kind!r} in {data!r}")


# --------------------------------------------------------------------------- provenance


def git_commit(start: str | os.PathLike[str] | None = None) -> str | None:
    """The commit checked out in the git repository containing ``start`` (default: the
    current directory, then this package), read from the ``.git`` folder without running
    git; ``None`` outside a repository or if it cannot be read."""
    candidates = [Path(start)] if start is not None else [Path.cwd(), Path(__file__).parent]
    for begin in candidates:
        for folder in [begin.resolve(), *begin.resolve().parents]:
            git = folder / ".git"
            if git.is_file():  # a worktree or submodule: "gitdir: <path>"
                text = git.read_text().strip()
                if text.startswith("gitdir:"):
                    git = (folder / text.split(":", 1)[1].strip()).resolve()
            if git.is_dir():
                return _read_head(git)
    return None


def _read_head(git: Path) -> str | None:
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head or None
        ref = head.split(":", 1)[1].strip()
        common = git
        if (git / "commondir").is_file():
            common = (git / (git / "commondir").read_text().strip()).resolve()
        for base in (git, common):
            if (base / ref).is_file():
                return (base / ref).read_text().strip()
            packed = base / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    parts = line.split()
                    if len(parts) == 2 and parts[1] == ref:
                        return parts[0]
    except OSError:
        return None
    return None


def package_versions() -> dict[str, str]:
    """Python's version and those of the installed packages a result depends on."""
    versions = {"python": sys.version.split()[0]}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


# --------------------------------------------------------------------------- file format


def _jsonable(value: Any) -> Any:
    """``value`` with tuples as lists, numpy scalars as Python numbers, paths as strings."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def _tensors_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(tensors):
        tensor = tensors[key].detach().cpu().contiguous()
        digest.update(key.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_checkpoint(
    path: str | os.PathLike[str], record: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]
) -> Path:
    """Write ``tensors`` and the JSON ``record`` to ``path`` atomically.

    The record gets ``format_version`` and ``tensors_sha256``. The file is written to a
    temporary file in the same folder, flushed to disk, then moved onto ``path`` with
    ``os.replace``: readers see the old file or the new one, never a partial one.

    Args:
        path: the ``.safetensors`` file to write (its folder is created).
        record: JSON-serializable metadata (tuples become lists).
        tensors: name -> tensor (moved to CPU and made contiguous).

    Returns:
        ``path`` as a ``Path``.

    Raises:
        CheckpointError: the record is not JSON-serializable.
        OSError: the file cannot be written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    full = {
        **_jsonable(record),
        "format_version": FORMAT_VERSION,
        "tensors_sha256": _tensors_sha256(cpu),
    }
    try:
        header = json.dumps(full, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint record is not JSON-serializable: {exc}") from None
    data = safetensors_save(cpu, metadata={RECORD_KEY: header})
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 -> what open() would have given
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def _open(path: str | os.PathLike[str]) -> tuple[dict[str, Any], Any]:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} is not a file")
    try:
        handle = safe_open(str(path), framework="pt", device="cpu")
        meta = handle.metadata() or {}
    except Exception as exc:  # safetensors raises SafetensorError, OSError, ...
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated or corrupt (not a readable safetensors "
            f"file: {exc})"
        ) from None
    if RECORD_KEY not in meta:
        raise CheckpointError(
            f"{str(path)!r} is a safetensors file but not an adv_wrappers checkpoint (no "
            f"{RECORD_KEY!r} record in its header)"
        )
    try:
        record = json.loads(meta[RECORD_KEY])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} has a corrupt record: {exc}") from None
    version = record.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format_version {version!r}; this version of "
            f"adv_wrappers reads {FORMAT_VERSION}"
        )
    return record, handle


def _read_tensors(path: str | os.PathLike[str], record: dict[str, Any], handle: Any) -> dict:
    try:
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    except Exception as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated or corrupt: {exc}") from None
    if _tensors_sha256(tensors) != record.get("tensors_sha256"):
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt: its tensors do not match the SHA-256 in "
            "its record"
        )
    return tensors


def read_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON record of a checkpoint (reads the header only).

    Raises:
        CheckpointError: missing file, not a safetensors file, truncated header, no or
            corrupt record, unknown ``format_version``.
    """
    return _open(path)[0]


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


def export_policies(actor: MLPActor, agents: Sequence[str]) -> dict[str, ExportedPolicy]:
    """One :class:`ExportedPolicy` per agent from a stacked actor, named by agent.

    With ``actor.members == len(agents)`` member ``m`` is ``agents[m]``'s network. With one
    member and ``spec.agent_one_hot`` set (parameter sharing), every agent gets the shared
    weights and its own one-hot index.

    Args:
        actor: the trained actor.
        agents: the agents of the stack, in the order of its agent axis.

    Raises:
        InvalidArgumentError: the number of members matches neither ``len(agents)`` nor 1.
    """
    agents = list(agents)
    spec = actor.spec
    if actor.members == len(agents):
        return {
            a: ExportedPolicy(str(a), spec, actor.member_state_dict(m))
            for m, a in enumerate(agents)
        }
    if actor.members == 1:
        return {
            a: ExportedPolicy(
                str(a),
                ActorSpec(**{**spec.__dict__, "agent_one_hot": (i, len(agents))})
                if spec.agent_one_hot is not None
                else spec,
                actor.member_state_dict(0),  # a copy per agent: the file stores each one
            )
            for i, a in enumerate(agents)
        }
    raise InvalidArgumentError(
        f"actor has {actor.members} members, which matches neither the {len(agents)} agents "
        "nor parameter sharing (1 member)"
    )


def _policy_record(policies: Mapping[str, ExportedPolicy]) -> tuple[dict, dict]:
    record, tensors = {}, {}
    for name, policy in policies.items():
        record[name] = {"agent": policy.agent, "actor": policy.spec.to_json()}
        for key, value in policy.state_dict.items():
            tensors[f"policies/{name}/{key}"] = value
    return record, tensors


def _spaces_record(
    spaces_of: Mapping[str, tuple[gymnasium.Space, gymnasium.Space]],
) -> dict[str, dict[str, Any]]:
    return {
        str(a): {"observation": space_to_json(o), "action": space_to_json(s)}
        for a, (o, s) in spaces_of.items()
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
        "algorithm": algorithm,
        "env_id": env_id,
        "env_kwargs": dict(env_kwargs or {}),
        "threat": None if threat is None else dict(threat),
        "agents": list(spaces),
        "spaces": _spaces_record(spaces),
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


class CheckpointPolicy:
    """A policy loaded from a checkpoint: ``action = policy(observation)``.

    The observation is flattened, zero-padded and (with parameter sharing) given the agent's
    one-hot as in training; the action is the most likely one (``deterministic=True``) or a
    sample drawn with the policy's own ``numpy`` generator. Discrete actions come back as
    ``np.int64`` (with the space's ``start``), Box actions clipped to the space's bounds in
    its shape and dtype. ``reset()`` does nothing (the network has no memory).

    Attributes:
        agent: the agent the policy acts for.
        name: its name in the checkpoint.
        observation_space, action_space: the spaces it was trained on.
        spec: its :class:`~adv_wrappers.train.networks.ActorSpec`.
        actor: the ``torch`` module (one member).
        record: the checkpoint's record.
        deterministic: greedy (``True``) or sampled actions.
        device: the torch device it runs on.
    """

    def __init__(
        self,
        *,
        name: str,
        agent: str,
        spec: ActorSpec,
        state_dict: Mapping[str, torch.Tensor],
        observation_space: gymnasium.Space,
        action_space: gymnasium.Space,
        record: dict[str, Any],
        deterministic: bool = True,
        device: str | torch.device = "cpu",
        seed: int | None = None,
    ) -> None:
        if not isinstance(observation_space, spaces.Box):
            raise UnsupportedSpaceError(
                f"policy {name!r} needs a Box observation space; got {observation_space}"
            )
        self.name = name
        self.agent = agent
        self.spec = spec
        self.observation_space = observation_space
        self.action_space = action_space
        self.record = record
        self.deterministic = bool(deterministic)
        self.device = torch.device(device)
        self.actor = MLPActor(spec, members=1)
        self.actor.load_state_dict(dict(state_dict))
        self.actor.to(self.device).eval()
        self._obs_size = int(np.prod(observation_space.shape, dtype=np.int64))
        pad_to = max(spec.pad_to, self._obs_size)
        self._input = np.zeros(
            pad_to + (spec.agent_one_hot[1] if spec.agent_one_hot else 0), np.float32
        )
        if spec.agent_one_hot is not None:
            self._input[pad_to + spec.agent_one_hot[0]] = 1.0
        if self._input.size != spec.input_dim:
            raise CheckpointError(
                f"policy {name!r}: its observation space {observation_space} (padded to "
                f"{pad_to}) does not fit its network's input size {spec.input_dim}"
            )
        self._rng = np.random.default_rng(seed)

    def reset(self) -> None:
        """Nothing to reset (called by the wrappers at every episode)."""

    def __call__(self, observation: Any) -> Any:
        obs = np.asarray(observation, dtype=np.float32).reshape(-1)
        if obs.size != self._obs_size:
            raise InvalidArgumentError(
                f"policy {self.name!r} expects an observation of {self._obs_size} values "
                f"(space {self.observation_space}); got shape {np.shape(observation)}"
            )
        self._input[: self._obs_size] = obs
        x = torch.as_tensor(self._input, device=self.device).reshape(1, 1, -1)
        with torch.inference_mode():
            out = self.actor.net(x)[0, 0].cpu().numpy().astype(np.float64)
        if isinstance(self.action_space, spaces.Discrete):
            if self.deterministic:
                index = int(out.argmax())
            else:
                probs = np.exp(out - out.max())
                index = int(self._rng.choice(out.size, p=probs / probs.sum()))
            return np.int64(int(self.action_space.start) + index)
        box = self.action_space
        assert isinstance(box, spaces.Box)  # checked by load_policy
        action = out
        if not self.deterministic:
            std = self.actor.log_std.detach()[0, 0].cpu().numpy().astype(np.float64)
            action = out + np.exp(std) * self._rng.standard_normal(out.shape)
        return np.clip(action.reshape(box.shape), box.low, box.high).astype(box.dtype)

    def __repr__(self) -> str:
        mode = "greedy" if self.deterministic else "sampled"
        return f"CheckpointPolicy(name={self.name!r}, agent={self.agent!r}, {mode})"


def _check_env_spaces(
    path: str | os.PathLike[str],
    agent: str,
    env: Any,
    observation_space: gymnasium.Space,
    action_space: gymnasium.Space,
) -> None:
    possible = list(getattr(env, "possible_agents", []))
    if agent not in possible:
        raise CheckpointError(
            f"agent {agent!r} of checkpoint {str(path)!r} is not an agent of {env} "
            f"(possible agents: {possible})"
        )
    for what, mine in (("observation", observation_space), ("action", action_space)):
        theirs = env.observation_space(agent) if what == "observation" else env.action_space(agent)
        if space_to_json(theirs) != space_to_json(mine):
            raise CheckpointError(
                f"agent {agent!r}: the checkpoint {str(path)!r} was trained with {what} space "
                f"{mine}, but the env gives it {theirs}"
            )


def load_policy(
    path: str | os.PathLike[str],
    *,
    agent: str,
    env: Any = None,
    deterministic: bool = True,
    device: str | torch.device = "cpu",
    name: str | None = None,
    seed: int | None = None,
) -> CheckpointPolicy:
    """Load one policy of a checkpoint as a callable ``policy(observation) -> action``.

    Args:
        path: the checkpoint file.
        agent: the agent the policy is for; also the policy's name unless ``name`` is given.
        env: if given, a PettingZoo env the policy will act in: ``agent`` must be one of its
            ``possible_agents`` with exactly the observation and action spaces recorded in
            the checkpoint.
        deterministic: greedy actions (default) or actions sampled from the policy.
        device: the torch device to run on.
        name: the policy's name in the checkpoint (default: ``agent``); ``record["policies"]``
            lists them.
        seed: seed of the generator used when ``deterministic=False``.

    Returns:
        A :class:`CheckpointPolicy`.

    Raises:
        CheckpointError: missing, truncated or corrupt file; not an adv_wrappers checkpoint;
            no policy named ``name``/``agent``; ``env`` given and ``agent`` is not one of its
            agents or has different spaces (the message names the agent and both spaces).
    """
    record, handle = _open(path)
    key = agent if name is None else name
    policies = record.get("policies") or {}
    if key not in policies:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has no policy {key!r}; it has {sorted(policies)}"
        )
    entry = policies[key]
    try:
        spec = ActorSpec.from_json(entry["actor"])
        recorded = record["spaces"][entry["agent"]]
    except (KeyError, TypeError, InvalidArgumentError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} has a corrupt record: {exc}") from None
    observation_space = space_from_json(recorded["observation"])
    action_space = space_from_json(recorded["action"])
    if not isinstance(action_space, (spaces.Discrete, spaces.Box)):
        raise CheckpointError(f"policy {key!r} has an unsupported action space {action_space}")
    if env is not None:
        _check_env_spaces(path, agent, env, observation_space, action_space)
    tensors = _read_tensors(path, record, handle)
    prefix = f"policies/{key}/"
    state_dict = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    try:
        return CheckpointPolicy(
            name=key,
            agent=agent,
            spec=spec,
            state_dict=state_dict,
            observation_space=observation_space,
            action_space=action_space,
            record=record,
            deterministic=deterministic,
            device=device,
            seed=seed,
        )
    except RuntimeError as exc:  # load_state_dict: missing keys or wrong shapes
        raise CheckpointError(
            f"checkpoint {str(path)!r}: the weights of policy {key!r} do not fit its "
            f"architecture: {exc}"
        ) from None


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
    return {"param_groups": _jsonable(state_dict["param_groups"]), "scalars": other}, tensors


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
            training state).
    """
    record, handle = _open(path)
    if not record.get("training"):
        raise CheckpointError(
            f"checkpoint {str(path)!r} has no training state (a policy-only checkpoint); "
            "it cannot be resumed"
        )
    tensors = _read_tensors(path, record, handle)
    path = Path(path)
    run = record.get("run") or {}
    run_name = str(run.get("name"))
    parent = path.resolve().parent
    run_dir = parent.parent if parent.name == "checkpoints" else Path("runs") / run_name
    return ResumeState(
        path=path,
        record=record,
        args=dict(record.get("args") or {}),
        global_step=int(record["global_step"]),
        iteration=int(record["iteration"]),
        run_name=run_name,
        run_dir=run_dir,
        wandb_id=run.get("wandb_id"),
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
        import dataclasses

        self.directory = Path(directory)
        self.last: Path | None = None
        self._static = {
            "algorithm": algorithm,
            "env_id": env_id,
            "env_kwargs": dict(env_kwargs or {}),
            "threat": None if threat is None else dict(threat),
            "agents": list(spaces),
            "spaces": _spaces_record(spaces),
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
        final_name: str = "final.safetensors",
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
            final_name: the file name of the complete checkpoint (a trainer that finishes
                several trainings in one run, like ``attack.py``, names one per training).

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
            write_checkpoint(self.directory / final_name, record, tensors)
        return self.last


def _main(argv: Sequence[str] | None = None) -> int:
    """``python -m adv_wrappers.train.checkpoint FILE``: print a checkpoint's record as JSON."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 1:
        print("usage: python -m adv_wrappers.train.checkpoint FILE", file=sys.stderr)
        return 2
    try:
        record = read_record(argv[0])
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
