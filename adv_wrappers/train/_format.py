"""The checkpoint file format, shared by :mod:`adv_wrappers.train.checkpoint` (writing, resuming)
and :mod:`adv_wrappers.train.policy` (loading policies). Private: nothing here is public API.

A checkpoint is one ``.safetensors`` file: tensors plus a JSON record in the header metadata
under :data:`RECORD_KEY` (the layout is documented in :mod:`adv_wrappers.train.checkpoint`
and ``docs/training.md``). This module writes it atomically, opens it, checks it (format
version, SHA-256 of the tensors, the record of a policy against its tensors' shapes and
dtypes, read from the header before any tensor is loaded), and turns gymnasium spaces into
JSON and back.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from safetensors import safe_open
from safetensors.torch import save as safetensors_save

from adv_wrappers.errors import CheckpointError, InvalidArgumentError, UnsupportedSpaceError
from adv_wrappers.train.networks import ActorSpec, MLPActor, box_heads

FORMAT_VERSION = 1
"""Version of the checkpoint layout; bumped when a reader must change."""

RECORD_KEY = "adv_wrappers.checkpoint"
"""Key of the JSON record in the safetensors header metadata (kept when the module that
writes it moved: it is in every saved file)."""

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


def spaces_record(
    spaces_of: Mapping[str, tuple[gymnasium.Space, gymnasium.Space]],
) -> dict[str, dict[str, Any]]:
    """The record's ``spaces``: agent -> ``{"observation", "action"}`` as JSON."""
    return {
        str(a): {"observation": space_to_json(o), "action": space_to_json(s)}
        for a, (o, s) in spaces_of.items()
    }


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


def jsonable(value: Any) -> Any:
    """``value`` with tuples as lists, numpy scalars as Python numbers, paths as strings."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
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
        **jsonable(record),
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


def open_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Any], Any]:
    """Open a checkpoint and read its record (the header only, no tensor is loaded).

    Returns:
        ``(record, handle)``: the JSON record and the ``safe_open`` handle.

    Raises:
        CheckpointError: missing file, not a safetensors file, truncated header, no or
            corrupt record, unknown ``format_version``.
    """
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
    if not isinstance(record, dict):
        raise CheckpointError(
            f"checkpoint {str(path)!r} has a corrupt record: a JSON {type(record).__name__}, "
            "not an object"
        )
    version = record.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format_version {version!r}; this version of "
            f"adv_wrappers reads {FORMAT_VERSION}"
        )
    return record, handle


def read_tensors(
    path: str | os.PathLike[str], record: Mapping[str, Any], handle: Any
) -> dict[str, torch.Tensor]:
    """Every tensor of an opened checkpoint, checked against the record's SHA-256.

    Raises:
        CheckpointError: truncated or corrupt tensor data; a SHA-256 mismatch.
    """
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


# --------------------------------------------------------------------------- validation


def tensor_layout(path: str | os.PathLike[str], handle: Any) -> dict[str, tuple[str, tuple]]:
    """Name -> ``(dtype, shape)`` of every tensor, from the safetensors header alone.

    safetensors has already checked that the header's offsets fit the file, so the shapes
    bound what loading the tensors costs: at most the file's own size.

    Raises:
        CheckpointError: an unreadable header entry.
    """
    try:
        layout = {}
        for key in handle.keys():  # noqa: SIM118 (a safe_open handle, not a dict)
            view = handle.get_slice(key)
            layout[key] = (str(view.get_dtype()), tuple(int(d) for d in view.get_shape()))
    except Exception as exc:  # safetensors raises SafetensorError
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated or corrupt: {exc}") from None
    return layout


def policy_from_record(
    path: str | os.PathLike[str], record: Mapping[str, Any], name: str
) -> tuple[str, ActorSpec, spaces.Box, spaces.Discrete | spaces.Box]:
    """The policy ``name`` of a record, checked for consistency (no tensor is read).

    Checks that the policy exists, that its architecture parses, that its agent's spaces
    parse and are ones a policy can act in (a Box observation; a Discrete action with a
    categorical head of ``n`` logits, or a Box action with a Gaussian head of one output per
    action dimension), and that the network's input size is the agent's flattened
    observation, padded to ``pad_to``, plus the one-hot of parameter sharing.

    Returns:
        ``(agent, spec, observation_space, action_space)``.

    Raises:
        CheckpointError: no policy ``name``; anything above that does not hold (the message
            names the field and both values).
    """
    where = f"checkpoint {str(path)!r}"
    policies = record.get("policies") or {}
    if not isinstance(policies, Mapping) or name not in policies:
        names = sorted(policies) if isinstance(policies, Mapping) else policies
        raise CheckpointError(f"{where} has no policy {name!r}; it has {names}")
    try:
        entry = policies[name]
        agent = str(entry["agent"])
        spec = ActorSpec.from_json(entry["actor"])
        recorded = record["spaces"][agent]
        observation_space = space_from_json(recorded["observation"])
        action_space = space_from_json(recorded["action"])
    except (KeyError, TypeError, InvalidArgumentError) as exc:
        raise CheckpointError(f"{where} has a corrupt record: {exc}") from None
    if not isinstance(observation_space, spaces.Box):
        raise CheckpointError(
            f"{where}: policy {name!r} needs a Box observation space; its record has "
            f"{observation_space}"
        )
    if isinstance(action_space, spaces.Discrete):
        heads: tuple[str, ...] = ("categorical",)
        action_dim = int(action_space.n)
    elif isinstance(action_space, spaces.Box):
        heads, action_dim = (
            box_heads(action_space),
            int(np.prod(action_space.shape, dtype=np.int64)),
        )
    else:
        raise CheckpointError(
            f"{where}: policy {name!r} has an unsupported action space {action_space}"
        )
    if spec.head not in heads or spec.action_dim != action_dim:
        raise CheckpointError(
            f"{where}: policy {name!r} has head={spec.head!r}, action_dim={spec.action_dim} "
            f"but its action space {action_space} needs a head in {heads} and "
            f"action_dim={action_dim}"
        )
    obs_size = int(np.prod(observation_space.shape, dtype=np.int64))
    one_hot = 0
    if spec.agent_one_hot is not None:
        index, one_hot = spec.agent_one_hot
        if not 0 <= index < one_hot:
            raise CheckpointError(
                f"{where}: policy {name!r} has agent_one_hot={list(spec.agent_one_hot)}; "
                "the index must be in [0, count)"
            )
    input_dim = max(spec.pad_to, obs_size) + one_hot
    if spec.input_dim != input_dim:
        raise CheckpointError(
            f"{where}: policy {name!r}: its observation space {observation_space} (padded to "
            f"{max(spec.pad_to, obs_size)}, plus a one-hot of {one_hot}) does not fit its "
            f"network's input_dim {spec.input_dim}"
        )
    return agent, spec, observation_space, action_space


def check_policy_tensors(
    path: str | os.PathLike[str], handle: Any, name: str, spec: ActorSpec
) -> None:
    """Check the stored tensors of policy ``name`` against its architecture ``spec``.

    Reads only the safetensors header: the names, shapes and dtypes of the tensors under
    ``policies/<name>/`` must be exactly those of a one-member ``MLPActor(spec)`` in
    float32. The expected shapes come from a network built on the ``meta`` device (no
    memory, no initialization, no random numbers), after checking that the file has at
    least one tensor per layer, so an edited record cannot make this cost more than the
    file's own size.

    Raises:
        CheckpointError: missing or extra tensors, a shape or dtype that differs (the message
            names the tensor, what the record implies and what the file has).
    """
    where = f"checkpoint {str(path)!r}: policy {name!r}"
    prefix = f"policies/{name}/"
    stored = {
        k[len(prefix) :]: v for k, v in tensor_layout(path, handle).items() if k.startswith(prefix)
    }
    layers = len(spec.hidden_sizes) + 1
    if len(stored) < layers:
        raise CheckpointError(
            f"{where}: its record has {layers} layers (hidden_sizes={list(spec.hidden_sizes)}) "
            f"but the file has {len(stored)} tensors for it"
        )
    try:
        with torch.device("meta"):
            expected = {
                k: tuple(v.shape) for k, v in MLPActor(spec, members=1).state_dict().items()
            }
    except (RuntimeError, ValueError, OverflowError) as exc:
        raise CheckpointError(f"{where}: its architecture cannot be built: {exc}") from None
    problems = []
    for key in sorted(set(expected) & set(stored)):
        dtype, stored_shape = stored[key]
        if stored_shape != expected[key]:
            problems.append(
                f"tensor {key!r} has shape {list(stored_shape)} but needs {list(expected[key])}"
            )
        if dtype != "F32":
            problems.append(f"tensor {key!r} is {dtype}; policies are float32 (F32)")
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    if missing or extra:
        problems.append(f"missing {missing}, unexpected {extra}")
    if problems:
        shown = "; ".join(problems[:4]) + (
            f"; and {len(problems) - 4} more" if len(problems) > 4 else ""
        )
        raise CheckpointError(
            f"{where}: its tensors do not match its architecture {spec.to_json()}: {shown}"
        )
