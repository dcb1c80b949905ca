"""Tests of ``baselines/convergence_check.py`` (Nika et al. (TMLR 2024), Fig. 5) and of the two
``ippo.py`` flags it relies on, ``--init-policies`` and ``--critic-warmup-iterations``.

A naive IPPO defender of XNOR/XOR (the budget of test_attack.py's, 100/100 clean) is attacked
by a fresh attacker of agent_0 (8,000 steps, which leaves it near 0). A naive defender is no
ARNEQ: continuing agent_0's training against that fixed attacker must gain a lot, which is
the learning test. The exact tests: the check's "before" is the attack's own evaluation, and
actors held by the critic warm-up are bit for bit those they started from.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from adv_wrappers.train import load_policy, read_record
from tests.test_trainers import XNOR_FLAGS, only, train

CHECK = ["--critic-warmup-iterations", "1", "--eval-episodes", "20"]


@pytest.fixture(scope="module")
def defender(tmp_path_factory) -> Path:
    """A naive IPPO defender of XNOR/XOR (100/100 clean, greedy); 20 iterations of 400."""
    cwd = tmp_path_factory.mktemp("defender")
    train("ippo", cwd, *XNOR_FLAGS, "--total-timesteps", "8000", "--seed", "1")
    return only("runs/*/checkpoints/final.safetensors", cwd)


@pytest.fixture(scope="module")
def attack_run(defender, tmp_path_factory) -> Path:
    """A fresh attacker of agent_0 (agent_1 corrupted), evaluated on 20 episodes of seed 1."""
    cwd = tmp_path_factory.mktemp("attack")
    train(
        "attack", cwd, "--defender", str(defender), *XNOR_FLAGS[2:-2], "--total-timesteps",
        "8000", "--seed", "1", "--victim", "agent_0", "--attacked", "agent_1",
        "--eval-episodes", "20", timeout=180,
    )  # fmt: skip
    return only("runs/*/attack_results.json", cwd).parent


def copy_of(attack_run: Path, cwd: Path) -> Path:
    """The attack's summary alone in a folder of ``cwd``: a check there writes its results
    there (``<folder>/convergence``), leaving the shared attack run untouched."""
    folder = cwd / "attack"
    folder.mkdir()
    (folder / "attack_results.json").write_text((attack_run / "attack_results.json").read_text())
    return folder


def check(cwd: Path, *flags: str, ok: bool = True):
    return train("convergence_check", cwd, *flags, timeout=240, check=ok)


# Measured (fraction 0.5 = 4,000 steps after one warm-up iteration, 20 episodes): seed 1
# gains +99.50 +- 0.15 (0.05 before, 99.55 after), seed 2 +99.40 +- 0.17. A naive defender is
# far from an ARNEQ against a fixed attacker, so 50, half the game's range, is the threshold.
@pytest.mark.parametrize("seed", [1, 2])
def test_continued_training_gains_against_the_fixed_attacker(seed, attack_run, defender, tmp_path):
    folder = copy_of(attack_run, tmp_path)
    result = check(tmp_path, "--attack", str(folder), "--fraction", "0.5", "--seed", str(seed),
                   *CHECK)  # fmt: skip
    done = folder / "convergence" / "agent_0" / "result.json"
    r = json.loads(done.read_text())
    assert (r["victim"], r["scenario"]) == ("agent_0", "victim=agent_0,attacked=agent_1")
    assert (r["defender_steps"], r["steps"], r["warmup_steps"]) == (8000, 4000, 400)
    assert r["defender"] == str(defender) and r["episodes"] == 20
    # the continued run: ippo.py, the victim alone trained, its actor from the defender's
    continued = json.loads(
        load_policy(r["continued"], agent="agent_0").record["args"]["init_policies"]
    )
    assert continued == {"agent_0": {"checkpoint": str(defender), "agent": "agent_0"}}
    assert r["gain"][0] == pytest.approx(r["after"][0] - r["before"][0])
    assert r["before"][0] <= 5.0 and r["gain"][0] > 50.0, r
    if seed == 1:  # the same seed and episodes as the attack's evaluation: the same figure
        (scenario,) = json.loads((attack_run / "attack_results.json").read_text())["scenarios"]
        assert r["before"] == scenario["attacked"]
    assert f"gain {r['gain'][0]:+.2f}" in result.stdout
    # a finished check is not run again
    again = check(tmp_path, "--attack", str(folder / "attack_results.json"), *CHECK)
    assert json.loads(again.stdout) == r and json.loads(done.read_text()) == r


def test_reattack_trains_a_fresh_attacker_against_the_continued_policy(
    attack_run, defender, tmp_path
):
    """A finished check, run again with --reattack: only the re-attack runs. Its defender is
    the original one with the victim's continued policy, bit for bit; its attacker, and one
    trained the same way against the original defender, get the attack run's budget (8,000
    steps) on the same scenario."""
    folder = copy_of(attack_run, tmp_path)
    flags = ["--attack", str(folder), "--fraction", "0.5", *CHECK]
    check(tmp_path, *flags)
    done = folder / "convergence" / "agent_0" / "result.json"
    first = json.loads(done.read_text())
    result = check(tmp_path, *flags, "--reattack", f"--attack-flags={' '.join(XNOR_FLAGS[2:-2])}")
    r = json.loads(done.read_text())
    same = [k for k in first if k != "args"]
    assert {k: r[k] for k in same} == {k: first[k] for k in same}  # (not redone: the same)
    assert r["args"]["reattack"] and r["reattack"]["timesteps"] == 8000
    combined = folder / "convergence" / "agent_0" / "defender_continued.safetensors"
    for agent, source in (("agent_0", r["continued"]), ("agent_1", str(defender))):
        got, want = actor(combined, agent), actor(Path(source), agent)
        assert sorted(got) == sorted(want) and all(torch.equal(got[k], want[k]) for k in want)
    out = folder / "convergence" / "agent_0"
    for where, defended in (("reattack", combined), ("reattack_original", defender)):
        results = json.loads(only(f"{where}/runs/*/attack_results.json", out).read_text())
        assert results["defender"] == str(defended.resolve())
        (fresh,) = results["scenarios"]
        assert fresh["scenario"] == "victim=agent_0,attacked=agent_1" and fresh["episodes"] == 20
        assert read_record(fresh["attacker"])["global_step"] == 8000
        key = "continued" if where == "reattack" else "original"
        assert r["reattack"][key] == {k: fresh[k] for k in ("attacker", "attacked", "clean")}
    assert (
        f"fresh attackers of 8,000 steps: {r['reattack']['continued']['attacked'][0]:.2f} "
        f"against the continued policy, {r['reattack']['original']['attacked'][0]:.2f} "
        "against the original" in result.stdout
    )


def actor(path: Path, agent: str) -> dict[str, torch.Tensor]:
    return load_policy(path, agent=agent).actor.state_dict()


def test_critic_warmup_holds_the_actors_exactly(defender, tmp_path):
    """Two iterations of 400 steps, both warm-up: agent_0's actor is the defender's and
    agent_1's is its fresh initialization (that of a run with the same seed), bit for bit.
    Without warm-up, both move."""
    flags = [*XNOR_FLAGS, "--total-timesteps", "800", "--seed", "3", "--init-policies",
             json.dumps({"agent_0": {"checkpoint": str(defender), "agent": "agent_0"}})]  # fmt: skip
    runs = {}
    for warmup in ("2", "0"):
        cwd = tmp_path / warmup
        cwd.mkdir()
        train("ippo", cwd, *flags, "--critic-warmup-iterations", warmup, "--checkpoint-every",
              "1")  # fmt: skip
        runs[warmup] = only("runs/*/checkpoints/final.safetensors", cwd)
    fresh = tmp_path / "fresh"  # agent_1's initialization: the same seed, no iteration run
    fresh.mkdir()
    train("ippo", fresh, *XNOR_FLAGS, "--total-timesteps", "400", "--seed", "3",
          "--critic-warmup-iterations", "1")  # fmt: skip
    init_1 = actor(only("runs/*/checkpoints/final.safetensors", fresh), "agent_1")

    held_0, held_1 = actor(runs["2"], "agent_0"), actor(runs["2"], "agent_1")
    start_0 = actor(defender, "agent_0")
    assert len(start_0) >= 4 and sorted(held_0) == sorted(start_0)
    assert [k for k in start_0 if not torch.equal(held_0[k], start_0[k])] == []
    assert [k for k in init_1 if not torch.equal(held_1[k], init_1[k])] == []
    assert any(not torch.equal(init_1[k], start_0[k]) for k in start_0)  # (not vacuous)
    moved_0, moved_1 = actor(runs["0"], "agent_0"), actor(runs["0"], "agent_1")
    assert any(not torch.equal(moved_0[k], start_0[k]) for k in start_0)
    assert any(not torch.equal(moved_1[k], init_1[k]) for k in init_1)


def test_a_defender_and_attacker_of_the_batched_path(tmp_path):
    """Table 1's preset trains and attacks on the batched path (stacked scenarios), whose
    vector env refuses an embedded attacker: the continued run goes to the sync backend and
    finds the stacked attacker's renamed policy. Tiny budgets: it runs, it records."""
    tiny = ["--num-envs", "2", "--num-steps", "100", "--update-epochs", "1",
            "--vector-backend", "batched"]  # fmt: skip
    train("ippo", tmp_path, "--env-id", "adv/xnor_xor-v0", *tiny, "--total-timesteps", "400",
          "--eval-episodes", "0")  # fmt: skip
    defender = only("runs/*/checkpoints/final.safetensors", tmp_path)
    train("attack", tmp_path, "--defender", str(defender), *tiny, "--total-timesteps", "400",
          "--stack-scenarios", "--eval-episodes", "2", timeout=180)  # fmt: skip
    folder = only("runs/*/attack_results.json", tmp_path).parent
    check(tmp_path, "--attack", str(folder), "--fraction", "0.5", "--critic-warmup-iterations",
          "1", "--eval-episodes", "2")  # fmt: skip
    r = json.loads((folder / "convergence" / "agent_0" / "result.json").read_text())
    assert (r["defender_steps"], r["steps"], r["warmup_steps"]) == (400, 200, 200)
    record = load_policy(r["continued"], agent="agent_0").record
    assert record["args"]["vector_backend"] == "sync" and record["global_step"] == 400
    assert r["episodes"] == 2 and len(r["gain"]) == 2


def test_bad_input_is_refused_before_training(attack_run, defender, tmp_path):
    attack_run = copy_of(attack_run, tmp_path)
    result = check(tmp_path, ok=False)
    assert result.returncode == 1 and "--attack ATTACK_RUN is required" in result.stderr
    for flags, message in [
        (["--fraction", "0"], "--fraction must be in (0, 1]; got 0.0"),
        (["--critic-warmup-iterations", "-1"], "--critic-warmup-iterations must be >= 0"),
        (["--victim", "agent_7"], "--victim 'agent_7': the defender's agents are ['agent_0', "
                                  "'agent_1']"),
        (["--victim", "agent_1"], "no k_corruption_v0 scenario with victim 'agent_1'"),
        (["--scenario", "victim=agent_0,attacked=agent_0"], "named 'victim=agent_0,attacked"),
    ]:  # fmt: skip
        result = check(tmp_path, "--attack", str(attack_run), *flags, ok=False)
        assert result.returncode == 1 and "InvalidArgumentError" in result.stderr, flags
        assert message in result.stderr, (flags, result.stderr[-500:])
    result = check(tmp_path, "--attack", str(tmp_path / "elsewhere"), ok=False)
    assert "no attack_results.json in it or above it" in result.stderr

    base = [*XNOR_FLAGS, "--total-timesteps", "800"]
    ref = {"checkpoint": str(defender), "agent": "agent_0"}
    for flags, message in [
        (["--critic-warmup-iterations", "3"], "--critic-warmup-iterations must be in [0, 2]"),
        (["--init-policies", json.dumps({"agent_9": ref})], "'agent_9' is not a trained agent"),
        (["--init-policies", json.dumps({"agent_0": {"path": "x"}})], "a policy reference is"),
        (["--init-policies", json.dumps({"agent_0": ref}), "--share-parameters"],
         "one actor member per agent (2); this actor has 1"),
        (["--init-policies", json.dumps({"agent_0": ref}), "--hidden-sizes", "32"],
         "architecture"),
    ]:  # fmt: skip
        result = train("ippo", tmp_path, *base, *flags, check=False)
        assert result.returncode == 1 and "InvalidArgumentError" in result.stderr, flags
        assert message in result.stderr, (flags, result.stderr[-500:])
    assert not list(tmp_path.glob("runs/*/checkpoints/*.safetensors"))
    assert not (attack_run / "convergence").exists()
