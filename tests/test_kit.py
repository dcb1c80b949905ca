"""Exact-value tests of the training kit's pieces (``adv_wrappers.train``): PPO's loss per
member, where trajectories end and what they bootstrap from, rollout storage, and the flags
one script hands to another. The trainers that use them are tested in test_trainers.py."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import tyro
from gymnasium import spaces

from adv_wrappers.train.config import cli_flags
from adv_wrappers.train.ppo import member_minibatches, ppo_loss
from adv_wrappers.train.rollout import Rollout, env_action, trajectory_ends


@dataclasses.dataclass
class PPOArgs:
    clip_coef: float = 0.2
    norm_adv: bool = False
    clip_vloss: bool = True
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    huber_delta: float | None = None


def one_member_minibatch():
    """Samples 0 and 1 count; sample 2 is masked out and holds values that would change every
    result if it were used."""
    t = lambda *x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
    newlogprob = t(math.log(1.5), math.log(0.5), 5.0)[:, None]
    entropy = t(0.3, 0.5, 100.0)[:, None]
    newvalue = t(1.0, 2.0, -50.0)[:, None]
    mb = {
        "logprobs": t(0.0, 0.0, 0.0)[:, None],
        "advantages": t(1.0, -1.0, 1e3)[:, None],
        "returns": t(0.0, 0.0, 9.0)[:, None],
        "values": t(0.5, 2.0, 3.0)[:, None],
    }
    mask = torch.tensor([True, True, False])[:, None]
    return newlogprob, entropy, newvalue, mb, mask


def test_ppo_loss_by_hand():
    loss, stats = ppo_loss(*one_member_minibatch(), PPOArgs())
    # ratio [1.5, 0.5]; surrogate max(-A r, -A clip(r, 0.8, 1.2)) = [-1.2, 0.8] -> -0.2
    assert stats["policy_loss"].item() == pytest.approx(-0.2, abs=1e-12)
    # value clipped to [0.7, 2.0]: max(0.5 [1, 4], 0.5 [0.49, 4]) = [0.5, 2] -> 1.25
    assert stats["value_loss"].item() == pytest.approx(1.25, abs=1e-12)
    assert stats["entropy"].item() == pytest.approx(0.4, abs=1e-12)
    assert stats["clipfrac"].item() == 1.0
    kl = ((0.5 - math.log(1.5)) + (-0.5 - math.log(0.5))) / 2
    assert stats["approx_kl"].item() == pytest.approx(kl, abs=1e-12)
    assert loss.shape == (1,) and loss.item() == pytest.approx(-0.2 - 0.004 + 0.625, abs=1e-12)

    # no value clipping: 0.5 * mean([1, 4]); Huber with delta 1: [0.5, 1.5] -> 1.0
    _, stats = ppo_loss(*one_member_minibatch(), PPOArgs(clip_vloss=False))
    assert stats["value_loss"].item() == pytest.approx(1.25, abs=1e-12)
    _, stats = ppo_loss(*one_member_minibatch(), PPOArgs(clip_vloss=False, huber_delta=1.0))
    assert stats["value_loss"].item() == pytest.approx(1.0, abs=1e-12)

    # advantage normalization over the member's own samples: [1, -1] -> [1, -1] / (sqrt(2) +
    # 1e-8) (unbiased variance 2); the surrogate is then max(-a r, -a clip r) with a = 1/sqrt 2
    _, stats = ppo_loss(*one_member_minibatch(), PPOArgs(norm_adv=True))
    a = 1 / (math.sqrt(2) + 1e-8)
    assert stats["policy_loss"].item() == pytest.approx((-1.2 * a + 0.8 * a) / 2, abs=1e-12)


def test_ppo_loss_members_on_either_axis():
    """Two members, samples along dim 0 or dim 1: the same per-member losses, each member's
    from its own samples only."""
    g = torch.Generator().manual_seed(0)
    fields = [torch.randn(6, 2, generator=g, dtype=torch.float64) for _ in range(3)]
    mb = {k: torch.randn(6, 2, generator=g, dtype=torch.float64)
          for k in ("logprobs", "advantages", "returns", "values")}  # fmt: skip
    mask = torch.rand(6, 2, generator=g) > 0.3
    args = PPOArgs(norm_adv=True)
    loss0, stats0 = ppo_loss(*fields, mb, mask, args, dim=0)
    loss1, stats1 = ppo_loss(*(f.T for f in fields), {k: v.T for k, v in mb.items()}, mask.T,
                             args, dim=1)  # fmt: skip
    torch.testing.assert_close(loss0, loss1, rtol=0, atol=1e-12)
    for m in range(2):  # member m alone, with only its own unmasked samples
        rows = mask[:, m]
        alone, _ = ppo_loss(*(f[rows, m : m + 1] for f in fields),
                            {k: v[rows, m : m + 1] for k, v in mb.items()},
                            torch.ones(int(rows.sum()), 1, dtype=torch.bool), args)  # fmt: skip
        assert loss0[m].item() == pytest.approx(alone.item(), abs=1e-12)


def test_ppo_loss_policy_mask_drops_samples_from_the_policy_terms_only():
    """A policy mask (the executed steps of a partial-control adversary): the policy terms
    equal those of the kept samples alone, the value loss still uses every acting sample."""
    newlogprob, entropy, newvalue, mb, mask = one_member_minibatch()
    policy_mask = torch.tensor([True, False, False])[:, None]
    args = PPOArgs(norm_adv=False)
    _, stats = ppo_loss(newlogprob, entropy, newvalue, mb, mask, args, policy_mask=policy_mask)
    _, full = ppo_loss(newlogprob, entropy, newvalue, mb, mask, args)
    # sample 0 alone: ratio 1.5, advantage 1 -> surrogate -1.2; entropy 0.3; clipped
    assert stats["policy_loss"].item() == pytest.approx(-1.2, abs=1e-12)
    assert stats["entropy"].item() == pytest.approx(0.3, abs=1e-12)
    assert stats["clipfrac"].item() == 1.0
    assert stats["approx_kl"].item() == pytest.approx(0.5 - math.log(1.5), abs=1e-12)
    assert stats["value_loss"].item() == full["value_loss"].item() == pytest.approx(1.25)


def test_rollout_policy_masks_default_to_the_masks():
    rollout = Rollout(2, 1, 2, (3,), spaces.Discrete(2))
    rollout.masks[:] = torch.tensor([[[True, False]], [[True, True]]])
    zeros = torch.zeros(2, 1, 2)
    batch = rollout.flatten(zeros, zeros)
    assert torch.equal(batch["policy_masks"], batch["masks"])
    rollout.policy_masks[1, 0, 1] = False
    batch = rollout.flatten(zeros, zeros)
    assert batch["policy_masks"].tolist() == [[True, False], [True, False]]


def test_executed_actions_reads_the_partial_control_ground_truth():
    """A vector env of echo copies under partial control of agent_1 (eps = 0.5): the mask is
    False exactly where the wrapper's info says the adversary's action was not executed
    (40 steps x 3 copies compared), True for every other slot."""
    from adv_envs import echo_v0
    from adv_wrappers import partial_control_v0
    from adv_wrappers.train.envs import executed_actions
    from adv_wrappers.vector import make_vector_env

    envs = make_vector_env(
        lambda: partial_control_v0(echo_v0.parallel_env(n_agents=2), "agent_1", 0.5), 3
    )
    envs.reset(seed=0)
    slot = envs.agents.index("agent_1_adversary")
    compared, executed_count = 0, 0
    for _ in range(40):
        actions = np.zeros((3, envs.num_agents), np.int64)
        _, _, _, _, infos = envs.step(actions)
        mask = executed_actions(infos["agent_infos"], envs.agents)
        for e in range(3):
            truth = infos["agent_infos"][e]["agent_0"]["partial_control"]["adversary_acted"]
            assert mask[e, slot] == truth["agent_1"]
            assert mask[e, [i for i in range(envs.num_agents) if i != slot]].all()
            compared += 1
            executed_count += int(truth["agent_1"])
    envs.close()
    assert compared == 120 and 30 < executed_count < 90


def test_member_minibatches_cover_each_members_rows_once():
    torch.manual_seed(0)
    member = torch.tensor([0, 1, 1, 0, 2, 1, 1, 0, 1])
    batches = member_minibatches(member, members=4, minibatch_size=2)
    assert batches.shape == (3, 4, 2)  # member 1 has 5 rows: 3 minibatches of 2
    for m in range(4):
        rows = batches[:, m].flatten()
        rows = sorted(rows[rows >= 0].tolist())
        assert rows == torch.nonzero(member == m).flatten().tolist()


def test_trajectory_ends_and_bootstrap_values():
    """Two copies, two agents, step by hand. Copy 0 goes on: agent 0 is truncated (bootstraps
    from next_obs), agent 1 terminated (0). Copy 1 was reset: agent 0 truncated with a final
    observation (bootstraps from final_obs), agent 1 had left (no last observation: 0)."""
    next_obs = np.array([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]], np.float32)
    final_obs = np.array([[[0.0, 0.0], [0.0, 0.0]], [[10.0, 20.0], [30.0, 40.0]]], np.float32)
    infos = {
        "reset": np.array([False, True]),
        "alive": np.array([[True, True], [True, True]]),
        "has_obs": np.array([[True, True], [True, True]]),
        "final_alive": np.array([[False, False], [True, False]]),
        "final_obs": final_obs,
    }
    terminations = np.array([[False, True], [False, False]])
    truncations = np.array([[True, False], [True, True]])
    calls = []

    def get_value(obs):  # V(o) = sum of the observation
        calls.append(obs.clone())
        return obs.sum(-1)

    ends, end_values = trajectory_ends(terminations, truncations, infos, next_obs, get_value)
    assert ends.tolist() == [[1.0, 1.0], [1.0, 1.0]]
    assert end_values.tolist() == [[3.0, 0.0], [30.0, 0.0]]
    assert len(calls) == 1  # one batched call
    # nothing truncated: no value computed at all; the copy that goes on does not end
    calls.clear()
    ends, end_values = trajectory_ends(
        np.zeros((2, 2), bool), np.zeros((2, 2), bool), infos, next_obs, get_value
    )
    assert ends.tolist() == [[0.0, 0.0], [1.0, 1.0]] and end_values.tolist() == [[0.0] * 2] * 2
    assert calls == []

    # a centralized critic bootstraps from the state (final_state where the copy was reset)
    state_infos = infos | {
        "state": np.array([[1.0], [2.0]]),
        "final_state": np.array([[9.0], [7.0]]),
    }
    ends, end_values = trajectory_ends(terminations, truncations, state_infos, next_obs,
                                       lambda s: s.repeat(1, 2), bootstrap_from="state")  # fmt: skip
    assert end_values.tolist() == [[1.0, 0.0], [7.0, 0.0]]


def test_rollout_storage_and_env_actions():
    rollout = Rollout(3, 2, 4, (5,), spaces.Discrete(6, start=-1), state_shape=(7,))
    assert rollout.obs.shape == (3, 2, 4, 5) and rollout.states.shape == (3, 2, 7)
    assert rollout.actions.shape == (3, 2, 4) and rollout.actions.dtype == torch.long
    rollout.obs[1, 0, 2] = 1.0
    rollout.masks[1, 0, 2] = True
    b = rollout.flatten(torch.zeros(3, 2, 4), torch.ones(3, 2, 4))
    assert b["obs"].shape == (6, 4, 5) and b["states"].shape == (6, 7)
    assert b["obs"][2, 2].tolist() == [1.0] * 5 and b["masks"].sum().item() == 1
    assert b["returns"].shape == (6, 4)
    assert env_action(torch.tensor([[0, 5]]), spaces.Discrete(6, start=-1)).tolist() == [[-1, 4]]
    box = spaces.Box(-1.0, 1.0, (2,))
    cont = Rollout(1, 1, 1, (3,), box)
    assert cont.actions.shape == (1, 1, 1, 2) and cont.actions.dtype == torch.float
    assert env_action(torch.tensor([[[2.0, -0.5]]]), box).tolist() == [[[1.0, -0.5]]]


def test_cli_flags_round_trip_through_tyro():
    @dataclasses.dataclass
    class Args:
        learning_rate: float = 1.0
        anneal_lr: bool = True
        track: bool = False
        hidden_sizes: tuple[int, ...] = (1,)
        target_kl: float | None = 0.5
        env_kwargs: str = "{}"

    values = Args(6e-4, False, True, (64, 64), None, '{"max_cycles": 25}')
    parsed = tyro.cli(Args, args=cli_flags(dataclasses.asdict(values)))
    assert parsed == values


def test_steps_done_counts_the_given_folders_only(tmp_path):
    """A report's progress counts its own runs: three runs in one workdir (100, 20 and 3
    steps, one progress.json being rewritten), two of them named."""
    import json

    from adv_wrappers.train.jobs import steps_done

    for name, steps in (("a", 100), ("b", 20), ("c", 3)):
        run = tmp_path / name / "runs" / "r"
        run.mkdir(parents=True)
        (run / "progress.json").write_text(json.dumps({"global_step": steps}))
    (tmp_path / "c" / "runs" / "r2").mkdir()
    (tmp_path / "c" / "runs" / "r2" / "progress.json").write_text("{")  # half written
    assert steps_done(tmp_path) == 123
    assert steps_done([tmp_path / "a", tmp_path / "c"]) == 103
    assert steps_done(str(tmp_path / "b")) == 20


def test_run_seconds_sums_the_span_of_every_event_file(tmp_path):
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    from adv_wrappers.train.jobs import run_seconds

    def write(path, times):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            writer = RecordWriter(f)
            for t in times:
                writer.write(Event(wall_time=t, step=0).SerializeToString())
            writer.flush()

    # a run killed and resumed (two files: the 900 s between them are not counted), a second
    # run, and a file of one event (a run killed at once: 0 s)
    write(tmp_path / "runs/a/events.out.tfevents.1.host.1.0", [1000.0, 1010.0, 1012.5])
    write(tmp_path / "runs/a/events.out.tfevents.2.host.2.0", [1912.5, 1920.0])
    write(tmp_path / "attack/runs/b/events.out.tfevents.3.host.3.0", [50.0, 80.25])
    write(tmp_path / "attack/convergence/c/events.out.tfevents.4.host.4.0", [0.0, 100.0])
    write(tmp_path / "runs/d/events.out.tfevents.5.host.5.0", [7.0])
    assert run_seconds(tmp_path) == 12.5 + 7.5 + 30.25 + 100.0
    assert run_seconds(tmp_path, exclude=["convergence"]) == 12.5 + 7.5 + 30.25
    assert run_seconds(tmp_path / "missing") == 0.0


def test_the_monitor_eta_forgets_a_pause_once_it_is_a_window_back():
    from collections import deque

    from adv_wrappers.train.jobs import Monitor

    # 10 steps/s for 1000 s, a pause of 1000 s, then 10 steps/s again; a 1200 s window
    samples = deque([(0.0, 0), (500.0, 5000), (1000.0, 10000)])
    assert Monitor.recent_rate(samples, 1200.0) == 10.0  # the whole run so far
    samples.append((2000.0, 10000))  # the pause: the window reaches back to t = 500
    assert Monitor.recent_rate(samples, 1200.0) == 5000 / 1500
    assert [t for t, _ in samples] == [500.0, 1000.0, 2000.0]
    samples.extend([(2500.0, 15000), (3000.0, 20000)])
    assert Monitor.recent_rate(samples, 1200.0) == 10000 / 2000  # the pause still inside
    samples.append((3300.0, 23000))  # now a window back from the end of the pause
    assert Monitor.recent_rate(samples, 1200.0) == 10.0
    assert Monitor.recent_rate(deque([(5.0, 7)]), 1200.0) == 0.0  # one sample: no rate yet


SAY_THREADS = """
import sys, threading
from adv_wrappers.train.jobs import say
sys.setswitchinterval(1e-6)  # switch threads as often as possible: a race shows at once

def job(t):
    for i in range(2000):
        say(f"thread {t} line {i} " + "x" * 40)

threads = [threading.Thread(target=job, args=(t,)) for t in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
"""


def test_lines_said_from_several_threads_never_run_together():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", SAY_THREADS], capture_output=True, text=True, check=True
    ).stdout
    lines = out.splitlines()
    expected = {f"thread {t} line {i} " + "x" * 40 for t in range(4) for i in range(2000)}
    assert len(lines) == 8000 and set(lines) == expected  # every line whole, none merged


def test_the_cpu_tanh_is_tanh_forward_and_backward():
    from adv_wrappers.train.networks import Tanh

    x = torch.cat([torch.linspace(-20.0, 20.0, 40_001), torch.tensor([-1e-8, 0.0, 1e-8])])
    x = x.requires_grad_()
    reference = x.detach().clone().requires_grad_()
    y, expected = Tanh()(x), torch.tanh(reference)
    # float32: within 2 ulp-scale of torch.tanh, exactly +-1 where tanh saturates
    assert torch.allclose(y, expected, rtol=0, atol=2.5e-7)
    assert y[0] == -1.0 and y[40_000] == 1.0 and y[40_002] == 0.0
    weights = torch.randn_like(x)
    (y * weights).sum().backward()
    (expected * weights).sum().backward()
    assert torch.allclose(x.grad, reference.grad, rtol=0, atol=1e-6 * weights.abs().max().item())
    with torch.no_grad():  # the inference path (no autograd node) gives the same values
        assert torch.equal(Tanh()(x.detach()), y.detach())
    x64 = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(Tanh(), (x64,))  # and its backward is tanh's derivative
    assert torch.autograd.gradgradcheck(Tanh(), (x64,))
