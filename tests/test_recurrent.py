"""The recurrent pieces of the training kit: the stacked GRU, belief networks and their
sequence training, recurrent policies in checkpoints, and the toy game's myopic worst-case ally.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

import adv_wrappers  # noqa: F401  (registers the adv/ envs)
from adv_envs import xnor_xor
from adv_envs.xnor_xor_exact import COOPERATIVE, MyopicByzantineAlly, byzantine_best_response
from adv_wrappers import CheckpointError, byzantine_v0
from adv_wrappers.train import load_policy
from adv_wrappers.train.checkpoint import export_policies, save_policies
from adv_wrappers.train.networks import ActorSpec, BeliefNet, MLPActor, StackedGRU
from adv_wrappers.train.recurrent import belief_metrics, belief_update, episode_starts


def test_stacked_gru_is_one_gru_cell_per_member():
    torch.manual_seed(0)
    gru = StackedGRU(members=3, input_size=4, hidden_size=5)
    x, h = torch.randn(3, 7, 4), torch.randn(3, 7, 5)
    out = gru(x, h)
    for m in range(3):
        cell = torch.nn.GRUCell(4, 5)
        with torch.no_grad():
            cell.weight_ih.copy_(gru.ih.weight[m])
            cell.weight_hh.copy_(gru.hh.weight[m])
            cell.bias_ih.copy_(gru.ih.bias[m, 0])
            cell.bias_hh.copy_(gru.hh.bias[m, 0])
        torch.testing.assert_close(out[m], cell(x[m], h[m]), rtol=0, atol=1e-6)


def test_sequences_reset_the_state_where_an_episode_starts():
    """Stepping through a sequence equals the step-by-step loop with the state zeroed at
    every start, at all 6 x 3 (step, copy) entries; a start makes the state forget."""
    torch.manual_seed(1)
    gru = StackedGRU(members=2, input_size=3, hidden_size=4)
    x, h0 = torch.randn(2, 6, 3, 3), torch.randn(2, 3, 4)
    starts = torch.tensor([[0, 1, 0], [0, 0, 0], [1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 0, 0]])
    out, last = gru.sequence(x, h0, starts)
    h = h0
    for t in range(6):
        h = gru(x[:, t], h * (1 - starts[t].float())[None, :, None])
        torch.testing.assert_close(out[:, t], h, rtol=0, atol=1e-6)
    torch.testing.assert_close(last, h, rtol=0, atol=1e-6)
    fresh, _ = gru.sequence(x[:, 2:], torch.zeros(2, 3, 4), starts[2:])
    torch.testing.assert_close(out[:, 2:, 0], fresh[:, :, 0], rtol=0, atol=1e-6)  # copy 0
    assert episode_starts({"alive": np.ones((3, 2), bool)}).tolist() == [1.0, 1.0, 1.0]
    assert episode_starts({"alive": None, "reset": np.array([False, True])}).tolist() == [0, 1]


def _ally_sequences(rng, envs, episodes=4, length=10):
    """A game where the ally's type is identifiable from history only: a benign ally always
    plays 0, a Byzantine one plays 0 or 1 uniformly; the input is the one-hot of the ally's
    previous action (zeros at an episode's first step), the label whether it is Byzantine."""
    steps = episodes * length
    byzantine = rng.random((episodes, envs)) < 0.5
    actions = np.where(byzantine[:, None], rng.integers(0, 2, (episodes, length, envs)), 0)
    x = np.zeros((steps, envs, 2), np.float32)
    labels = np.repeat(byzantine, length, axis=0)[:, :, None].astype(np.float32)
    starts = np.zeros((steps, envs), np.float32)
    starts[::length] = 1.0
    for k in range(episodes):
        for t in range(1, length):
            x[k * length + t, np.arange(envs), actions[k, t - 1]] = 1.0
    return torch.tensor(x)[None], torch.tensor(starts), torch.tensor(labels)[None]


@pytest.mark.parametrize("seed", [0, 1])
def test_belief_learns_a_type_that_only_history_reveals(seed):
    """The Bayes-optimal accuracy is 1 - mean_t 0.5^(t+1) = 0.900 (after t benign-looking
    steps a Byzantine ally is still hidden with probability 0.5^t); a belief without memory
    (the last action only) reaches at most 0.725, and one that leaks the previous episode's
    evidence across a start does worse. Measured with this budget (60 updates of 16 sequences
    of 4 episodes): 0.895-0.904 over seeds 0-5; the threshold 0.85 sits between."""
    torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (sequence_minibatches shuffles with the global RNG)
    rng = np.random.default_rng(seed)
    net = BeliefNet(members=1, input_size=2, hidden_size=16, num_types=1)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        x, starts, labels = _ally_sequences(rng, 16)
        losses = belief_update(
            net, optimizer, x, torch.zeros(1, 16, 16), starts, labels, torch.ones(1, 40, 16),
            epochs=1, envs_per_minibatch=8, max_grad_norm=10.0,
        )  # fmt: skip
        first = losses["losses/belief_bce"] if first is None else first
    assert losses["losses/belief_bce"] < 0.6 * first  # the cross-entropy fell
    x, starts, labels = _ally_sequences(np.random.default_rng(10_000 + seed), 256)
    with torch.no_grad():
        logits, _ = net.sequence(x, torch.zeros(1, 256, 16), starts)
    metrics = belief_metrics(torch.sigmoid(logits), labels, torch.ones(1, 40, 256))
    assert metrics["belief/accuracy"] > 0.85, metrics
    assert metrics["belief/accuracy"] <= 0.93  # cannot beat Bayes (0.900) by much on 10240


def test_belief_metrics_by_hand():
    probs = torch.tensor([[0.9, 0.2], [0.4, 0.6], [0.1, 0.1]])
    labels = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    metrics = belief_metrics(probs, labels, torch.tensor([True, True, False]))
    expected_bce = -(np.log(0.9) + np.log(0.8) + np.log(0.6) + np.log(0.4)) / 4
    assert metrics["belief/bce"] == pytest.approx(expected_bce, rel=1e-6)
    assert metrics["belief/accuracy"] == 0.5  # row 0 right, row 1 wrong (0.6 > 0.5)
    assert metrics["belief/attacked_accuracy"] == 1.0
    nan = belief_metrics(probs, labels, torch.zeros(3, dtype=torch.bool))
    assert all(np.isnan(v) for v in nan.values())


def _belief_actor(members=1):
    spec = ActorSpec(input_dim=4 + 2, action_dim=2, head="categorical", hidden_sizes=(8,),
                     pad_to=4, agent_one_hot=(0, 2), belief=(6, 2))  # fmt: skip
    return MLPActor(spec, members=members)


def _saved(actor, tmp_path):
    agents = ["agent_0", "agent_1"]
    obs_space, act_space = spaces.Box(0.0, 1.0, (4,), np.float32), spaces.Discrete(2)
    return save_policies(
        tmp_path / "p.safetensors", export_policies(actor, agents), env_id=None,
        spaces={a: (obs_space, act_space) for a in agents},
    )  # fmt: skip


def test_recurrent_policy_round_trips_through_a_checkpoint(tmp_path):
    """The loaded policy carries the belief's state from call to call exactly as the
    training network does over a sequence (12 steps compared), and reset() restarts it."""
    torch.manual_seed(0)
    actor = _belief_actor()
    path = _saved(actor, tmp_path)
    policy = load_policy(path, agent="agent_1")
    assert policy.recurrent and policy.spec.belief == (6, 2)
    obs = torch.rand(12, 4)
    x = torch.cat([obs, torch.tensor([0.0, 1.0]).expand(12, 2)], dim=1)  # agent_1's one-hot
    with torch.no_grad():
        logits, _ = actor.belief.sequence(
            x[None, :, None], torch.zeros(1, 1, 6), torch.zeros(12, 1)
        )
        net_probs = actor.distribution(actor.with_belief(x[None, :, None], logits)).probs[0, :, 0]
    for reset_round in range(2):
        policy.reset()
        probs = np.stack([policy.action_probabilities(o.numpy()) for o in obs])
        np.testing.assert_allclose(
            probs, net_probs.numpy(), rtol=0, atol=1e-6, err_msg=str(reset_round)
        )
    policy.reset()  # greedy actions: the argmax of the same probabilities, step by step
    assert [int(policy(o.numpy())) for o in obs] == net_probs.argmax(-1).tolist()


def test_recurrent_checkpoint_with_wrong_belief_tensors_is_rejected(tmp_path):
    from safetensors.torch import load_file, save_file

    path = _saved(_belief_actor(), tmp_path)
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
    tensors = load_file(str(path))
    tensors["policies/agent_0/belief.gru.hh.weight"] = torch.zeros(1, 18, 7)
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=metadata)
    with pytest.raises(CheckpointError, match="belief.gru.hh.weight"):
        load_policy(tmp_path / "bad.safetensors", agent="agent_0")


def test_myopic_ally_is_the_exact_worst_case_against_a_tabular_defender():
    """Against a defender of the state alone the myopic ally plays byzantine_best_response's
    table at every step (100 steps x 20 episodes compared) and leaves the cooperative
    (deterministic) defender exactly 0."""
    defender = np.array([[0.7, 0.3], [0.2, 0.8]])
    table, _ = byzantine_best_response(defender, adversary_agent=0, horizon=100)
    ally = MyopicByzantineAlly(lambda obs: defender[int(np.argmax(obs[:2]))])
    compared = 0
    for state in (0, 1):
        for _ in range(10):
            obs = np.eye(2, dtype=np.float32)[state]
            assert int(ally(obs)) == int(np.argmax(table[0, state]))
            compared += 1
    assert compared == 20 and (table == table[0]).all()

    env = byzantine_v0(
        xnor_xor.parallel_env(), prior={"10": 1.0},
        adversary={"agent_0": MyopicByzantineAlly(lambda obs: COOPERATIVE[1][int(np.argmax(obs[:2]))])},
    )  # fmt: skip
    rng = np.random.default_rng(0)
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        total = 0.0
        while env.agents:
            state = int(np.argmax(obs["agent_1"][:2]))
            action = rng.choice(2, p=COOPERATIVE[1][state])
            obs, rewards, *_ = env.step({"agent_1": action})
            total += rewards.get("agent_1", 0.0)
        assert total == 0.0
