"""Loading checkpoints that were edited: the record is checked against the stored tensors
(from the safetensors header) before any network is built or any tensor is loaded, so a
tampered or hostile file fails at once, costs no more memory than its own tensors, and
loading never draws from torch's global random number generator.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from gymnasium import spaces  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from adv_wrappers import CheckpointError  # noqa: E402
from adv_wrappers.train import load_policy, read_record  # noqa: E402
from adv_wrappers.train._format import RECORD_KEY, _tensors_sha256  # noqa: E402
from adv_wrappers.train.checkpoint import export_policies, save_policies  # noqa: E402
from adv_wrappers.train.networks import ActorSpec, MLPActor  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
AGENTS = ("agent_0", "agent_1")
OBS = spaces.Box(-1.0, 1.0, (3,), np.float32)


def _save(path: Path, head: str = "categorical") -> Path:
    torch.manual_seed(0)
    action = spaces.Discrete(4) if head == "categorical" else spaces.Box(-1, 1, (4,), np.float32)
    spec = ActorSpec(3, 4, head, (8, 8), pad_to=3)
    return save_policies(
        path,
        export_policies(MLPActor(spec, members=2), AGENTS),
        env_id=None,
        spaces={a: (OBS, action) for a in AGENTS},
    )


def _tamper(src: Path, dst: Path, edit_record=None, edit_tensors=None) -> Path:
    """A copy of ``src`` with its record and/or tensors edited, re-hashed so the SHA-256 in
    the record matches (an edit made with care, not a corrupted file)."""
    with safe_open(str(src), framework="pt") as handle:
        record = json.loads(handle.metadata()[RECORD_KEY])
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    if edit_tensors is not None:
        edit_tensors(tensors)
    if edit_record is not None:
        edit_record(record)
    record["tensors_sha256"] = _tensors_sha256(tensors)
    save_file(tensors, str(dst), metadata={RECORD_KEY: json.dumps(record)})
    return dst


def _actor(record, name="agent_0"):
    return record["policies"][name]["actor"]


def test_a_record_with_a_huge_architecture_fails_fast_and_small(tmp_path):
    """Three hidden layers of 30,000 would be ~14 GB of float32 and minutes of orthogonal
    initialization; the shapes in the header disagree, so loading fails before any of it."""
    good = _save(tmp_path / "good.safetensors")

    def huge(record):
        _actor(record)["hidden_sizes"] = [30_000] * 3

    bad = _tamper(good, tmp_path / "bad.safetensors", huge)
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as info:
        load_policy(bad, agent="agent_0")
    assert time.perf_counter() - start < 5.0
    message = str(info.value)
    assert "'agent_0'" in message and "net.0.weight" in message
    assert "[1, 8, 3]" in message and "[1, 30000, 3]" in message  # what the file has / needs
    load_policy(bad, agent="agent_1")  # the untouched policy of the same file still loads

    # measured in a fresh process: peak resident memory grows by far less than one layer
    script = textwrap.dedent(
        f"""
        import resource, sys
        from adv_wrappers import CheckpointError
        from adv_wrappers.train import load_policy
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            load_policy({str(bad)!r}, agent="agent_0")
        except CheckpointError:
            pass
        else:
            sys.exit("loaded")
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    grown_kib = int(result.stdout.strip())
    assert grown_kib < 100 * 1024  # one 30,000 x 30,000 float32 layer alone is 3.6 GB


def test_a_record_with_more_layers_than_the_file_has_tensors_fails_before_building(tmp_path):
    good = _save(tmp_path / "good.safetensors")

    def deep(record):
        _actor(record)["hidden_sizes"] = [1] * 200_000

    bad = _tamper(good, tmp_path / "bad.safetensors", deep)
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"200001 layers .* 6 tensors"):
        load_policy(bad, agent="agent_0")
    assert time.perf_counter() - start < 5.0


def _set(field, value):
    def edit(record):
        _actor(record)[field] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (
            _set("hidden_sizes", [8, 9]),
            r"'net.2.weight' has shape \[1, 8, 8\] but needs \[1, 9, 8\]",
        ),
        (_set("hidden_sizes", [8]), r"missing \[\], unexpected \['net.4.bias', 'net.4.weight'\]"),
        (_set("hidden_sizes", [8, 8, 8]), r"missing \['net.6.bias', 'net.6.weight'\]"),
        (_set("action_dim", 5), r"action_dim=5 .* Discrete\(4\) needs .*action_dim=4"),
        (_set("head", "gaussian"), r"head='gaussian', .* needs a head in \('categorical',\)"),
        (_set("input_dim", 4), r"does not fit its network's input_dim 4"),
        (_set("pad_to", 5), r"padded to 5.* input_dim 3"),
        (_set("agent_one_hot", [2, 2]), r"agent_one_hot=\[2, 2\]"),
        (_set("activation", "gelu"), r"corrupt record: .*activation='gelu'"),
        (_set("hidden_sizes", [8, -1]), r"corrupt record: .*positive ints"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_record_that_disagrees_with_itself_or_its_tensors(tmp_path, edit, match):
    bad = _tamper(_save(tmp_path / "good.safetensors"), tmp_path / "bad.safetensors", edit)
    with pytest.raises(CheckpointError, match=match):
        load_policy(bad, agent="agent_0")


def test_tensors_that_disagree_with_the_record(tmp_path):
    good = _save(tmp_path / "good.safetensors", head="gaussian")

    def as_float64(tensors):
        tensors["policies/agent_0/net.2.weight"] = tensors["policies/agent_0/net.2.weight"].double()

    def drop_log_std(tensors):
        del tensors["policies/agent_0/log_std"]

    def add_one(tensors):
        tensors["policies/agent_0/net.9.weight"] = torch.zeros(1)

    for edit, match in [
        (as_float64, r"'net.2.weight' is F64; policies are float32"),
        (drop_log_std, r"missing \['log_std'\], unexpected \[\]"),
        (add_one, r"missing \[\], unexpected \['net.9.weight'\]"),
    ]:
        bad = _tamper(good, tmp_path / "bad.safetensors", edit_tensors=edit)
        with pytest.raises(CheckpointError, match=match):
            load_policy(bad, agent="agent_0")
        assert load_policy(bad, agent="agent_1").agent == "agent_1"


def test_a_record_whose_policy_acts_in_an_unusable_space(tmp_path):
    def dict_obs(record):
        record["spaces"]["agent_0"]["observation"] = {"type": "Dict", "spaces": {}}

    def multi_discrete(record):
        record["spaces"]["agent_0"]["action"] = {
            "type": "MultiDiscrete", "nvec": [2], "start": [0], "dtype": "int64"
        }  # fmt: skip

    good = _save(tmp_path / "good.safetensors")
    for edit, match in [(dict_obs, "needs a Box observation"), (multi_discrete, "unsupported")]:
        bad = _tamper(good, tmp_path / "bad.safetensors", edit)
        with pytest.raises(CheckpointError, match=match):
            load_policy(bad, agent="agent_0")


def test_a_record_that_is_not_an_object(tmp_path):
    save_file({"w": torch.zeros(1)}, str(tmp_path / "c.safetensors"), metadata={RECORD_KEY: "[]"})
    with pytest.raises(CheckpointError, match="not an object"):
        read_record(tmp_path / "c.safetensors")


@pytest.mark.parametrize("head", ["categorical", "gaussian"])
def test_loading_does_not_draw_from_torchs_global_generator(tmp_path, head):
    path = _save(tmp_path / "c.safetensors", head=head)
    torch.manual_seed(123)
    before = torch.random.get_rng_state().clone()
    policy = load_policy(path, agent="agent_1", deterministic=False, seed=0)
    policy(np.zeros(3, np.float32))
    assert torch.equal(torch.random.get_rng_state(), before)
    # and the loaded weights are the stored ones (nothing left on the meta device)
    with safe_open(str(path), framework="pt") as handle:
        stored = handle.get_tensor("policies/agent_1/net.0.weight")
    assert all(p.device.type == "cpu" for p in policy.actor.parameters())
    assert torch.equal(policy.actor.state_dict()["net.0.weight"], stored)


def test_the_record_from_the_command_line(tmp_path):
    path = _save(tmp_path / "c.safetensors")
    run = [sys.executable, "-m", "adv_wrappers.train.policy"]
    ok = subprocess.run([*run, str(path)], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["policies"].keys() == set(AGENTS)
    missing = subprocess.run([*run, str(tmp_path / "x")], capture_output=True, text=True)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    usage = subprocess.run(run, capture_output=True, text=True)
    assert usage.returncode == 2 and "usage" in usage.stderr


def test_a_training_record_without_counters_or_with_a_path_as_run_name(tmp_path):
    from adv_wrappers.train.checkpoint import Checkpointer, load_training_state

    torch.manual_seed(0)
    actor = MLPActor(ActorSpec(3, 4, "categorical", (8,), pad_to=3), members=2)
    checkpointer = Checkpointer(
        tmp_path / "checkpoints",
        algorithm="test",
        args={"seed": 0},
        env_id=None,
        env_kwargs=None,
        threat=None,
        spaces={a: (OBS, spaces.Discrete(4)) for a in AGENTS},
        run_name="run",
    )
    optimizer = torch.optim.Adam(actor.parameters())
    good = checkpointer.save(
        global_step=8, iteration=1, policies=export_policies(actor, AGENTS), model=actor,
        optimizer=optimizer,
    )  # fmt: skip
    resume = load_training_state(good)
    assert (resume.global_step, resume.iteration, resume.run_dir) == (8, 1, tmp_path)

    def no_step(record):
        del record["global_step"]

    def escape(record):
        record["run"]["name"] = "../../elsewhere"

    for edit, match in [(no_step, "corrupt record: KeyError"), (escape, "not a plain folder")]:
        bad = _tamper(good, tmp_path / "bad.safetensors", edit)
        with pytest.raises(CheckpointError, match=match):
            load_training_state(bad)


def test_strip_training_keeps_the_policies_and_drops_the_training_state(tmp_path):
    from adv_wrappers.train.checkpoint import Checkpointer, load_training_state, strip_training

    torch.manual_seed(0)
    actor = MLPActor(ActorSpec(3, 4, "categorical", (8,), pad_to=3), members=2)
    checkpointer = Checkpointer(
        tmp_path / "checkpoints", algorithm="test", args={"seed": 0}, env_id=None,
        env_kwargs=None, threat=None, spaces={a: (OBS, spaces.Discrete(4)) for a in AGENTS},
        run_name="run",
    )  # fmt: skip
    big = torch.nn.Linear(100, 100)  # training state only: a stand-in for a replay buffer
    model = torch.nn.ModuleDict({"actor": actor, "big": big})
    full = checkpointer.save(
        global_step=8, iteration=1, policies=export_policies(actor, AGENTS), model=model,
        optimizer=torch.optim.Adam(model.parameters()), extra={"kept": 1},
    )  # fmt: skip
    small = strip_training(full, tmp_path / "small.safetensors", extra={"added": [2, 3]})
    record = read_record(small)
    assert record["training"] is None and record["global_step"] == 8
    assert record["extra"] == {"kept": 1, "added": [2, 3]}
    assert small.stat().st_size * 10 < full.stat().st_size  # (the Linear and its Adam moments)
    obs = np.random.default_rng(0).uniform(0, 1, (5, 3)).astype(np.float32)
    for agent in AGENTS:
        a = load_policy(small, agent=agent, deterministic=False, seed=1)
        b = load_policy(full, agent=agent, deterministic=False, seed=1)
        assert [a(o) for o in obs] == [b(o) for o in obs]
    with pytest.raises(CheckpointError, match="no training state"):
        load_training_state(small)
    with pytest.raises(CheckpointError, match="does not exist"):
        strip_training(tmp_path / "missing.safetensors", tmp_path / "x.safetensors")
