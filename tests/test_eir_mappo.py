"""``baselines/eir_mappo.py``: its three modes (EIR-MAPPO, EAR-MAPPO, True Type), what their
checkpoints hold, the evaluation with theta = e_i, and an exact resume after SIGKILL."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import adv_wrappers  # noqa: F401  (registers the adv/ envs)
from adv_wrappers.train import load_policy, read_record
from adv_wrappers.train.envs import make_env
from tests.test_trainers import _event_steps, _tensorboard_steps, kill_when, only, train

EIR = Path(__file__).resolve().parent.parent / "baselines" / "eir_mappo.py"
# two iterations of 2 x 100 steps (two 50-step episodes per copy), the robust agents updated
# at the second; one epoch, a checkpoint after each iteration
TINY = [
    "--env-kwargs", '{"max_cycles": 50, "observe_history": true}', "--num-envs", "2",
    "--num-steps", "100", "--minibatch-size", "200", "--total-timesteps", "400",
    "--adversary-interval", "2", "--update-epochs", "1", "--checkpoint-every", "1",
    "--eval-episodes", "2",
]  # fmt: skip
MODES = {
    "eir_mappo": [],
    "ear_mappo": ["--belief", "none"],
    "true_type": ["--belief", "none", "--true-type"],
}


@pytest.mark.parametrize("mode", list(MODES))
def test_modes(mode, tmp_path):
    result = train("eir_mappo", tmp_path, *TINY, *MODES[mode], timeout=180)
    assert "theta=e_0" in result.stdout and "theta=e_1" in result.stdout
    final = only("runs/*/checkpoints/final.safetensors", tmp_path)
    record = read_record(final)
    assert (record["algorithm"], record["complete"], record["global_step"]) == (mode, True, 400)
    reveal = mode == "true_type"
    assert record["threat"] == {
        "name": "byzantine_v0", "kwargs": {"reveal_types": True} if reveal else {}
    }  # fmt: skip
    agents = ["agent_0", "agent_1", "agent_0_adversary", "agent_1_adversary"]
    assert sorted(record["policies"]) == sorted(agents)
    for a in agents[:2]:  # the robust agents: shared, one-hot, belief only in EIR-MAPPO
        spec = record["policies"][a]["actor"]
        assert spec["agent_one_hot"] == [agents.index(a), 2]
        assert spec["belief"] == ([64, 2] if mode == "eir_mappo" else None)
        size = 8 + (2 if reveal else 0)  # observe_history (8), then theta with --true-type
        assert record["spaces"][a]["observation"]["shape"] == [size]
    env = make_env("adv/xnor_xor-v0", record["env_kwargs"], record["threat"])()
    for a in agents:
        policy = load_policy(final, agent=a, env=env)
        assert policy.recurrent == (mode == "eir_mappo" and not a.endswith("adversary"))
    evaluation = json.loads(only("runs/*/eval.json", tmp_path).read_text())
    assert sorted(evaluation) == ["clean", "theta=e_0", "theta=e_1"]
    assert 0 <= evaluation["clean"] <= 50 and all(np.isfinite(list(evaluation.values())))
    run_dir = final.parent.parent
    assert _tensorboard_steps(run_dir, "adversary/policy_loss") == [200, 400]  # every rollout
    assert _tensorboard_steps(run_dir, "losses/policy_loss") == [400]  # every 2nd (interval)
    if mode == "eir_mappo":
        assert _tensorboard_steps(run_dir, "losses/belief_bce") == [400]
        assert len(_tensorboard_steps(run_dir, "belief/accuracy")) == 2


def test_bad_flags(tmp_path):
    result = train("eir_mappo", tmp_path, *TINY, "--true-type", check=False)
    assert result.returncode == 1 and "pass --belief none with it" in result.stderr
    result = train("eir_mappo", tmp_path, *TINY, "--minibatch-size", "150", check=False)
    assert "must be a multiple of --num-steps" in result.stderr


def test_killed_run_resumes_exactly(tmp_path):
    """SIGKILL after the first checkpoint, --resume: the final checkpoint (weights, belief,
    Adam moments, RNG states) is bit for bit the uninterrupted run's."""
    flags = [*TINY[:8], "--total-timesteps", "2400", "--adversary-interval", "2",
             "--update-epochs", "1", "--checkpoint-every", "3", "--eval-episodes", "0"]  # fmt: skip
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    straight.mkdir()
    killed.mkdir()
    train("eir_mappo", straight, *flags, timeout=180)

    def logged_past_checkpoint():
        runs = list((killed / "runs").glob("*/checkpoints/last.safetensors"))
        return (
            bool(runs)
            and max(_event_steps(runs[0].parent.parent, "adversary/policy_loss"), default=0) > 600
        )

    kill_when([sys.executable, str(EIR), *flags], killed, logged_past_checkpoint, "a checkpoint",
              timeout=180)  # fmt: skip
    last = only("runs/*/checkpoints/last.safetensors", killed)
    assert not (last.parent / "final.safetensors").exists()
    assert read_record(last)["global_step"] == 600
    train("eir_mappo", killed, "--resume", str(last), timeout=180)
    a = only("runs/*/checkpoints/final.safetensors", straight)
    b = only("runs/*/checkpoints/final.safetensors", killed)
    assert read_record(a)["global_step"] == read_record(b)["global_step"] == 2400
    tensors_a, tensors_b = load_file(str(a)), load_file(str(b))
    assert sorted(tensors_a) == sorted(tensors_b)
    assert any("belief" in k for k in tensors_a)
    assert [k for k in tensors_a if not torch.equal(tensors_a[k], tensors_b[k])] == []
