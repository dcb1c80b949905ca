"""Trained policies for the wrappers: what users call on a checkpoint.

:func:`load_policy` turns one policy of a checkpoint (written by a trainer in ``baselines/``
through :mod:`adv_wrappers.train.checkpoint`) into an :class:`adv_wrappers.policies.Policy`:
call it on one observation to get one action (greedy by default), so the wrappers' embedded
slots and ``freeze_v0`` accept it directly. :func:`read_record` returns a checkpoint's JSON
record (what was trained, on which env and threat, with which arguments and code; see
``docs/training.md``) without loading any tensor; from a shell::

    python -m adv_wrappers.train.policy runs/<run_name>/checkpoints/final.safetensors

Loading never unpickles anything and checks the file before building anything: the record's
architecture against its spaces and against the stored tensors' names, shapes and dtypes
(read from the header), then the tensors against the SHA-256 in the record. An edited or
hostile file raises :class:`~adv_wrappers.errors.CheckpointError` naming what disagrees, and
costs no more memory than its own tensors. Loading does not draw from torch's global random
number generator.

Both names are also importable from :mod:`adv_wrappers.train`. Torch and safetensors are
imported by this module (``import adv_wrappers`` does not).

Example:
    >>> import tempfile, torch
    >>> from gymnasium import spaces
    >>> from adv_wrappers.train import load_policy
    >>> from adv_wrappers.train.checkpoint import export_policies, save_policies
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
    * v0.2.0 - Split from ``adv_wrappers.checkpoint``; the record is checked against the
      tensors before anything is built.
    * v0.1.0 - Initially added.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium import spaces

from adv_wrappers.errors import CheckpointError, InvalidArgumentError, UnsupportedSpaceError
from adv_wrappers.train._format import (
    check_policy_tensors,
    open_checkpoint,
    policy_from_record,
    read_tensors,
    space_to_json,
)
from adv_wrappers.train.networks import ActorSpec, MLPActor

__all__ = ["CheckpointPolicy", "load_actor_members", "load_policy", "read_record"]


def read_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON record of a checkpoint (reads the header only).

    Raises:
        CheckpointError: missing file, not a safetensors file, truncated header, no or
            corrupt record, unknown ``format_version``.
    """
    return open_checkpoint(path)[0]


class CheckpointPolicy:
    """A policy loaded from a checkpoint: ``action = policy(observation)``.

    The observation is flattened, zero-padded and (with parameter sharing) given the agent's
    one-hot as in training; the action is the most likely one (``deterministic=True``) or a
    sample drawn with the policy's own ``numpy`` generator. Discrete actions come back as
    ``np.int64`` (with the space's ``start``), Box actions clipped to the space's bounds in
    its shape and dtype: the Gaussian mean or sample, ``tanh`` of a deterministic actor's
    output (sampling changes nothing), or for a ``relaxed_categorical`` head the one-hot of
    the largest logit or a Gumbel-softmax sample softmax(logits + g) (temperature 1). A
    recurrent policy (``spec.belief``: a belief network over the
    episode's observations, EIR-MAPPO's actor) carries its state from call to call;
    ``reset()`` clears it, and the wrappers call it at the start of every episode. For a
    feed-forward policy ``reset()`` does nothing.

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
        self._obs_size = int(np.prod(observation_space.shape, dtype=np.int64))
        pad_to = max(spec.pad_to, self._obs_size)
        self._input = np.zeros(
            pad_to + (spec.agent_one_hot[1] if spec.agent_one_hot else 0), np.float32
        )
        if self._input.size != spec.input_dim:
            raise CheckpointError(
                f"policy {name!r}: its observation space {observation_space} (padded to "
                f"{pad_to}) does not fit its network's input size {spec.input_dim}"
            )
        if spec.agent_one_hot is not None:
            self._input[pad_to + spec.agent_one_hot[0]] = 1.0
        # Built on the meta device (no memory, no initialization, no draw from torch's global
        # generator), then the weights are assigned: nothing is initialized to be overwritten.
        with torch.device("meta"):
            self.actor = MLPActor(spec, members=1)
        # fresh, aligned copies: tensors read from a file sit at its offsets, and a BLAS
        # kernel's rounding can depend on the alignment (the same weights loaded from two
        # files then differed in the last bit)
        weights = {
            k: torch.as_tensor(v).to(torch.float32).clone(memory_format=torch.contiguous_format)
            for k, v in state_dict.items()
        }
        self.actor.load_state_dict(weights, assign=True)
        self.actor.to(self.device).eval()
        self._rng = np.random.default_rng(seed)
        self._state: torch.Tensor | None = None
        self.reset()

    @property
    def recurrent(self) -> bool:
        """Whether the policy keeps a state across an episode's steps (see :meth:`reset`)."""
        return self.spec.recurrent

    def reset(self) -> None:
        """Start a new episode: clear a recurrent policy's state (called by the wrappers at
        every reset); nothing to do for a feed-forward one."""
        if self.spec.recurrent:
            self._state = self.actor.belief.gru.initial_state(1, 1, device=self.device)

    def action_probabilities(self, observation: Any) -> np.ndarray:
        """The probabilities of every Discrete action on ``observation`` (float64, summing to
        1). Like a call, this advances a recurrent policy's state by one step.

        Raises:
            UnsupportedSpaceError: a Box action space (no finite set of actions).
            InvalidArgumentError: an observation of the wrong size.
        """
        if not isinstance(self.action_space, spaces.Discrete):
            raise UnsupportedSpaceError(
                f"policy {self.name!r} has Box actions ({self.action_space}); action "
                "probabilities exist for Discrete actions only"
            )
        out = self._outputs(observation)
        probs = np.exp(out - out.max())
        return probs / probs.sum()

    def torch_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The network's output on a batch of observations ``[B, *obs_shape]`` as a
        differentiable torch function of ``x``, at the policy's current recurrent state,
        which it does not advance (for gradient attacks such as
        :class:`~adv_wrappers.attacks.TargetedPGD`; the policy's next call then acts on the
        perturbed observation from the same state)."""
        flat = x.reshape(x.shape[0], -1).to(self.device, torch.float32)
        if flat.shape[1] != self._obs_size:
            raise InvalidArgumentError(
                f"policy {self.name!r} expects observations of {self._obs_size} values; got "
                f"a batch of shape {tuple(x.shape)}"
            )
        rest = torch.as_tensor(self._input[self._obs_size :], device=self.device)
        inputs = torch.cat([flat, rest.expand(flat.shape[0], -1)], dim=1)[None]
        if self._state is not None:
            state = self._state.clone().expand(1, flat.shape[0], -1)  # (made in inference mode)
            logits, _ = self.actor.belief(inputs, state)
            inputs = self.actor.with_belief(inputs, logits)
        return self.actor.net(inputs)[0]

    def _outputs(self, observation: Any) -> np.ndarray:
        """The network's output (logits or Gaussian mean) on one observation."""
        obs = np.asarray(observation, dtype=np.float32).reshape(-1)
        if obs.size != self._obs_size:
            raise InvalidArgumentError(
                f"policy {self.name!r} expects an observation of {self._obs_size} values "
                f"(space {self.observation_space}); got shape {np.shape(observation)}"
            )
        self._input[: self._obs_size] = obs
        x = torch.as_tensor(self._input, device=self.device).reshape(1, 1, -1)
        with torch.inference_mode():
            if self._state is not None:  # recurrent: the belief over this episode so far
                logits, self._state = self.actor.belief(x, self._state)
                x = self.actor.with_belief(x, logits)
            return self.actor.net(x)[0, 0].cpu().numpy().astype(np.float64)

    def __call__(self, observation: Any) -> Any:
        return self._actions(self._outputs(observation)[None])[0]

    def act_batch(self, observations: Any) -> np.ndarray:
        """The actions on a batch of observations ``[B, *obs_shape]``, as :meth:`__call__`
        would give them one by one (sampled ones drawn from the same generator): ``[B]``
        int64 for Discrete actions, ``[B, *action_shape]`` for Box ones. For the batched path
        (:class:`adv_wrappers.vector.BatchedVectorEnv`'s frozen agents).

        Raises:
            UnsupportedSpaceError: a recurrent policy (its state is one episode's).
            InvalidArgumentError: observations of the wrong size.
        """
        if self.spec.recurrent:
            raise UnsupportedSpaceError(
                f"policy {self.name!r} is recurrent: its state is one episode's, so it acts on "
                "one observation at a time"
            )
        obs = np.asarray(observations, dtype=np.float32)
        flat = obs.reshape(obs.shape[0], -1) if obs.ndim else obs.reshape(1, -1)
        if flat.shape[1] != self._obs_size:
            raise InvalidArgumentError(
                f"policy {self.name!r} expects observations of {self._obs_size} values; got a "
                f"batch of shape {obs.shape}"
            )
        inputs = np.broadcast_to(self._input, (flat.shape[0], self._input.size)).copy()
        inputs[:, : self._obs_size] = flat
        x = torch.as_tensor(inputs, device=self.device)[None]
        with torch.inference_mode():
            out = self.actor.net(x)[0].cpu().numpy().astype(np.float64)
        return self._actions(out)

    def _actions(self, out: np.ndarray) -> np.ndarray:
        """Actions ``[B, ...]`` from the network's outputs ``[B, k]`` (class docstring)."""
        b = out.shape[0]
        if isinstance(self.action_space, spaces.Discrete):
            if self.deterministic:
                index = out.argmax(axis=1)
            else:
                probs = np.exp(out - out.max(axis=1, keepdims=True))
                probs /= probs.sum(axis=1, keepdims=True)
                index = np.array([self._rng.choice(out.shape[1], p=p) for p in probs])
            return (int(self.action_space.start) + index).astype(np.int64)
        box = self.action_space
        assert isinstance(box, spaces.Box)  # checked by load_policy
        action = out
        head = self.spec.head
        if head == "tanh":  # a deterministic actor: sampling changes nothing
            action = np.tanh(out)
        elif head == "relaxed_categorical":  # one-hot of the largest logit, or a Gumbel sample
            if self.deterministic:
                action = np.eye(out.shape[1])[out.argmax(axis=1)]
            else:
                z = out + self._rng.gumbel(size=out.shape)
                action = np.exp(z - z.max(axis=1, keepdims=True))
                action = action / action.sum(axis=1, keepdims=True)
        elif not self.deterministic:
            std = self.actor.log_std.detach()[0, 0].cpu().numpy().astype(np.float64)
            action = out + np.exp(std) * self._rng.standard_normal(out.shape)
        shaped = action.reshape(b, *box.shape)
        return np.clip(shaped, box.low, box.high).astype(box.dtype)

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
            no policy named ``name``/``agent``; a record that disagrees with itself or with
            the stored tensors (architecture vs spaces, missing or extra tensors, shapes,
            dtypes: checked from the header before anything is built or loaded); ``env``
            given and ``agent`` is not one of its agents or has different spaces (the
            message names the agent and both spaces).
    """
    record, handle = open_checkpoint(path)
    key = agent if name is None else name
    _, spec, observation_space, action_space = policy_from_record(path, record, key)
    if env is not None:
        _check_env_spaces(path, agent, env, observation_space, action_space)
    check_policy_tensors(path, handle, key, spec)
    tensors = read_tensors(path, record, handle)
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


def load_actor_members(
    actor: MLPActor, agents: Sequence[str], refs: Mapping[str, Any], env: Any = None
) -> None:
    """Start members of a trainer's stacked actor from checkpoint policies.

    Member ``m`` is ``agents[m]`` (one member per agent); ``refs`` maps some of those agents to
    a policy reference ``{"checkpoint": PATH, "agent": ID}`` (optional ``"name"``: the
    policy's name in the checkpoint, default ``ID``), whose weights overwrite the member. The
    rest of the actor is unchanged. With ``env`` the policy must fit the agent's spaces
    there, as :func:`load_policy` checks.

    Raises:
        InvalidArgumentError: ``refs`` not such a dict, an agent not in ``agents``, a shared
            actor (one member for several agents), or a policy whose architecture is not the
            actor's.
        CheckpointError: as :func:`load_policy`.
    """
    if not isinstance(refs, Mapping):
        raise InvalidArgumentError(f"init policies must be a dict agent -> reference; got {refs!r}")
    if refs and actor.members != len(agents):
        raise InvalidArgumentError(
            f"init policies need one actor member per agent ({len(agents)}); this actor has "
            f"{actor.members} (parameter sharing)"
        )
    for agent, ref in refs.items():
        if agent not in agents:
            raise InvalidArgumentError(
                f"init policies: {agent!r} is not a trained agent; they are {list(agents)}"
            )
        if not (
            isinstance(ref, Mapping)
            and isinstance(ref.get("checkpoint"), str)
            and isinstance(ref.get("agent"), str)
            and set(ref) <= {"checkpoint", "agent", "name"}
        ):
            raise InvalidArgumentError(
                f"init policies[{agent!r}]: a policy reference is {{'checkpoint': PATH, "
                f"'agent': ID}} with an optional 'name'; got {ref!r}"
            )
        policy = load_policy(
            ref["checkpoint"], agent=agent, name=ref.get("name", ref["agent"]), env=env
        )
        actor.load_member_(list(agents).index(agent), policy.spec, policy.actor.state_dict())


def _main(argv: Sequence[str] | None = None) -> int:
    """``python -m adv_wrappers.train.policy FILE``: print a checkpoint's record as JSON."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 1:
        print("usage: python -m adv_wrappers.train.policy FILE", file=sys.stderr)
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
