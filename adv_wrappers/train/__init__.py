"""The training kit: what every trainer in ``baselines/`` shares, except its algorithm.

Needs the ``train`` extra (``pip install "adv-wrappers[train]"``: torch, safetensors, tyro,
TensorBoard, W&B, tqdm, matplotlib). The threat-model library (``import adv_wrappers``) never
imports this package.

Modules, in the order data flows through a trainer:

* :mod:`adv_wrappers.train.envs` - the env of a run (registry ID + threat + frozen policies),
  the spaces a trainer handles, evaluation of trained policies.
* :mod:`adv_wrappers.train.config` - ``tyro`` parsing with per-env presets and ``--resume``,
  seeding, the PPO presets of Nika et al. (TMLR 2024), App. D.
* :mod:`adv_wrappers.train.rollout` - rollout storage, env-action conversion, where
  trajectories end and what truncated ones bootstrap from, GAE, episode statistics.
* :mod:`adv_wrappers.train.ppo` - PPO's clipped loss for stacked per-member networks and the
  minibatch update loop.
* :mod:`adv_wrappers.train.networks` - stacked per-agent MLP actors and critics, stacked GRUs
  and belief networks (a policy may carry a recurrent belief).
* :mod:`adv_wrappers.train.recurrent` - episode starts, minibatches of whole sequences, the
  belief's cross-entropy update.
* :mod:`adv_wrappers.train.replay` - an off-policy replay buffer saved in checkpoints.
* :mod:`adv_wrappers.train.tracking` - the run: folder, TensorBoard, W&B, progress, NaN guard.
* :mod:`adv_wrappers.train.checkpoint` - what trainers call: :class:`Checkpointer`, resume.
* :mod:`adv_wrappers.train.policy` - what users call: :func:`load_policy` (a trained policy as
  a plain callable for the wrappers), :func:`read_record`.
* :mod:`adv_wrappers.train.jobs` - resumable report steps (trainers and attacks as
  subprocesses), progress, confidence intervals and IQMs.
* :mod:`adv_wrappers.train.fanout` - a report's jobs on a thread pool or as Ray tasks (a
  local instance or a cluster).

``load_policy`` and ``read_record`` are also importable from ``adv_wrappers.train`` itself.
"""

from __future__ import annotations

import importlib.util
from typing import Any

_MISSING = [m for m in ("torch", "safetensors") if importlib.util.find_spec(m) is None]
if _MISSING:
    raise ImportError(
        f"adv_wrappers.train needs the `train` extra ({', '.join(_MISSING)} not installed): "
        "pip install 'adv-wrappers[train]'"
    )

__all__ = ["load_policy", "read_record"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from adv_wrappers.train import policy

        return getattr(policy, name)
    raise AttributeError(f"module 'adv_wrappers.train' has no attribute {name!r}")
