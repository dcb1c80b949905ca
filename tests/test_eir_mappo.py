"""``baselines/eir_mappo.py``: its three modes (EIR-MAPPO, EAR-MAPPO, True Type), what their
checkpoints hold, the evaluation with theta = e_i, and an exact resume after SIGKILL."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import adv_wrappers  # noqa: F401  (registers the adv/ envs)
from adv_wrappers.train import load_policy, read_record
from adv_wrappers.train.envs import make_env
from tests.test_trainers import (
    _tensorboard_steps,
    kill_and_resume,
    only,
    train,
)

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


def test_eir_mappo_runs_on_the_batched_backend(tmp_path):
    """``--vector-backend batched``: Byzantine types drawn per copy on the batched XNOR/XOR env,
    their labels read from the per-copy infos by the belief network's training."""
    result = train("eir_mappo", tmp_path, *TINY, "--vector-backend", "batched", timeout=180)
    assert "theta=e_0" in result.stdout and "theta=e_1" in result.stdout
    record = read_record(only("runs/*/checkpoints/final.safetensors", tmp_path))
    assert (record["complete"], record["global_step"]) == (True, 400)
    assert record["args"]["vector_backend"] == "batched"
    assert _tensorboard_steps(only("runs/*", tmp_path), "losses/belief_bce") == [400]


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
    tensors, _ = kill_and_resume(
        "eir_mappo", flags, tmp_path, tag="adversary/policy_loss", checkpoint=600, total=2400
    )
    assert any("belief" in k for k in tensors)


# The CI-sized learning test: 25-step toy episodes, 8 x 50-step rollouts in 4 minibatches, 10
# epochs, clip 0.2, learning rates 1e-3 (team) and 3e-3 (adversaries, belief), robust update
# every 2nd rollout, entropy 0.05 (the "fast" hyperparameters of docs/byzantine_report.md).
LEARN = [
    "--env-kwargs", '{"observe_history": true, "max_cycles": 25}', "--num-envs", "8",
    "--num-steps", "50", "--minibatch-size", "100", "--update-epochs", "10", "--clip-coef",
    "0.2", "--learning-rate", "1e-3", "--ent-coef", "0.05", "--eval-episodes", "0",
]  # fmt: skip


def _against_the_worst_ally(checkpoint, episodes=20):
    """(clean team return, [team return with agent i Byzantine, played by the myopic
    worst-case ally that runs a twin of the other agent's policy]); every policy samples."""
    from adv_envs.xnor_xor_exact import MyopicByzantineAlly
    from adv_wrappers import byzantine_v0
    from adv_wrappers.train.envs import evaluate, victims_return

    record = read_record(checkpoint)
    agents = ["agent_0", "agent_1"]

    def team():
        return {a: load_policy(checkpoint, agent=a, deterministic=False, seed=7 + k)
                for k, a in enumerate(agents)}  # fmt: skip

    base = make_env("adv/xnor_xor-v0", record["env_kwargs"])
    clean = np.mean(victims_return(evaluate(base, team(), episodes, 0), None, agents))
    attacked = []
    for i, agent in enumerate(agents):
        other = agents[1 - i]
        twin = load_policy(checkpoint, agent=other)
        ally = MyopicByzantineAlly(twin.action_probabilities, twin.reset)
        theta = "10" if i == 0 else "01"

        def env(theta=theta, agent=agent, ally=ally):
            return byzantine_v0(base(), prior={theta: 1.0}, adversary={agent: ally})

        returns = evaluate(env, team(), episodes, 0)
        attacked.append(float(np.mean(victims_return(returns, [other], agents))))
    return float(clean), attacked


@pytest.mark.parametrize("method", ["eir_mappo", "mappo"])  # (two tests: two CI workers)
def test_eir_mappo_mixes_against_its_worst_case_ally_where_mappo_is_exploited(method, tmp_path):
    """25-step episodes: the clean optimum is 25, the best any defender can guarantee against
    a worst-case ally 12.5, and a uniformly random team scores 12.7 clean (200 episodes).
    Measured with these budgets (20 episodes each), after the learner's float-level changes of
    2026-12-02 (fused clipping; the distributions unvalidated): EIR-MAPPO (120K steps), seeds
    1-6, clean 18.8, 24.9, 24.3, 23.1, 24.8, 18.0 and against the myopic worst-case ally (mean
    over agents) 8.8, 7.2, 9.6, 6.3, 6.4, 9.8: the seeds that mix more give up clean return
    for a better worst case. The code before those changes gave clean 23.2-23.4 on seeds 1-3
    but 24.3, 22.5, 20.9, 19.0 on seeds 4-7: the spread is the method's, not the change's.
    MAPPO (60K steps) clean 25.0 and exactly 0.0 against the ally (a deterministic
    coordination the ally predicts). On another machine (an AMD EPYC, 2026-12-02; the same
    code gives other floats there) seeds 1-5 gave clean 14.05, 23.85, 22.85, 22.1, 15.85 and
    against the ally 8.3, 6.75, 6.75, 9.15, 9.3: the seeds that mix most stay just above a
    random team's clean 12.7 and have the best worst case. Thresholds: EIR-MAPPO >= 4.0 on
    average against the ally (every measurement >= 6.3) and clean >= 13.5 (above a random
    team); MAPPO <= 1.0 and clean >= 24."""
    if method == "eir_mappo":
        train("eir_mappo", tmp_path, *LEARN, "--total-timesteps", "120000", "--adversary-lr",
              "3e-3", "--belief-lr", "3e-3", "--adversary-interval", "2", timeout=900)  # fmt: skip
        clean, attacked = _against_the_worst_ally(
            only("runs/*/checkpoints/final.safetensors", tmp_path)
        )
        assert clean >= 13.5 and np.mean(attacked) >= 4.0, (clean, attacked)
    else:
        train("mappo", tmp_path, "--env-id", "adv/xnor_xor-v0", *LEARN, "--total-timesteps",
              "60000", timeout=600)  # fmt: skip
        clean, attacked = _against_the_worst_ally(
            only("runs/*/checkpoints/final.safetensors", tmp_path)
        )
        assert clean >= 24.0 and np.mean(attacked) <= 1.0, (clean, attacked)
