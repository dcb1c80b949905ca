"""Adversarial threat models for multi-agent RL, as PettingZoo wrappers.

Four threat models, each a versioned factory returning a ``BaseParallelWrapper``:

* :func:`k_corruption_v0` - at most k of n agents corrupted each episode (Nika et al.
  (TMLR 2024), ART).
* :func:`byzantine_v0` - Byzantine agent types theta drawn from a prior (Li et al.
  (ICLR 2024)).
* :func:`partial_control_v0` - an adversary acts for one agent with probability epsilon
  (Liu et al. (ICLR 2024)).
* :func:`state_perturbation_v0` - observations perturbed inside an epsilon-ball (He et al.
  (TMLR 2023)).

Plus :func:`freeze_v0` (fixed policies inside), :func:`to_single_agent` (Gymnasium view),
AEC versions for turn-based games (:func:`k_corruption_aec_v0`, :func:`partial_control_aec_v0`)
and :mod:`adv_wrappers.vector` for batched rollouts. ``import adv_wrappers`` does not import
torch; the gradient attacks in :mod:`adv_wrappers.attacks` import it when used.
"""

import importlib.abc
import sys

import adv_envs  # noqa: F401  (registers the bundled envs in PettingZoo's registry)
from adv_wrappers.aec import k_corruption_aec_v0, partial_control_aec_v0
from adv_wrappers.byzantine import byzantine_v0, default_prior
from adv_wrappers.core import adversary_id
from adv_wrappers.errors import (
    AdvWrappersError,
    AgentIDCollisionError,
    CallOrderError,
    CheckpointError,
    EnvKindError,
    InvalidActionError,
    InvalidArgumentError,
    InvalidPriorError,
    MissingActionError,
    PlayOutLimitError,
    UnknownAgentError,
    UnsupportedSpaceError,
    VectorEnvStateError,
)
from adv_wrappers.freeze import freeze_v0, to_single_agent
from adv_wrappers.k_corruption import all_subsets, k_corruption_v0
from adv_wrappers.partial_control import partial_control_v0
from adv_wrappers.state_perturbation import perturber_id, state_perturbation_v0

__version__ = "0.2.0"

# Modules that moved (CHANGELOG.md): importing the old name raises an error naming the new one.
_MOVED = {
    "adv_wrappers.checkpoint": "adv_wrappers.train (load_policy, read_record) and "
    "adv_wrappers.train.checkpoint (Checkpointer, load_training_state, export_policies)",
    "adv_wrappers.networks": "adv_wrappers.train.networks",
    "adv_wrappers.tracking": "adv_wrappers.train.tracking",
    "adv_wrappers.training": "adv_wrappers.train.envs (make_env, check_trainable, evaluate, "
    "record_video), adv_wrappers.train.config (parse_args, seed_everything, env_seed, "
    "PAPER_000_PRESETS) and "
    "adv_wrappers.train.rollout (gae, EpisodeStats)",
    # developer tools, now scripts outside the installed packages (run from a checkout)
    "adv_wrappers.demo": "the script baselines/demo.py (python baselines/demo.py)",
    "adv_wrappers.benchmark": "the script baselines/benchmark_wrappers.py "
    "(python baselines/benchmark_wrappers.py)",
    # found only once adv_wrappers is imported (adv_envs never imports it): a bare
    # `python -m adv_envs.benchmark` gets Python's plain "No module named" error
    "adv_envs.benchmark": "the script baselines/benchmark_envs.py "
    "(python baselines/benchmark_envs.py)",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Turns ``import adv_wrappers.<old>`` into a ``ModuleNotFoundError`` naming the new place."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in _MOVED:
            raise ModuleNotFoundError(
                f"{fullname} moved in adv-wrappers 0.2.0: use {_MOVED[fullname]} "
                "(see CHANGELOG.md)",
                name=fullname,
            )
        return None


if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _MovedModuleFinder())

__all__ = [
    "AdvWrappersError",
    "AgentIDCollisionError",
    "CallOrderError",
    "CheckpointError",
    "EnvKindError",
    "InvalidActionError",
    "InvalidArgumentError",
    "InvalidPriorError",
    "MissingActionError",
    "PlayOutLimitError",
    "UnknownAgentError",
    "UnsupportedSpaceError",
    "VectorEnvStateError",
    "adversary_id",
    "all_subsets",
    "byzantine_v0",
    "default_prior",
    "freeze_v0",
    "k_corruption_aec_v0",
    "k_corruption_v0",
    "partial_control_aec_v0",
    "partial_control_v0",
    "perturber_id",
    "state_perturbation_v0",
    "to_single_agent",
]
