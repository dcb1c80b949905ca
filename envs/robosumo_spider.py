# The docstring (the docs page, docs/envs/robosumo_spider.md) is written once for the three
# RoboSumo bodies, in adv_envs._robosumo, and filled in with this body's numbers here.
from __future__ import annotations

from adv_envs._robosumo import RoboSumoParallelEnv, docs_page, entry_points

__doc__ = docs_page("spider")

parallel_env, raw_env, env = entry_points("spider")

__all__ = ["RoboSumoParallelEnv", "env", "parallel_env", "raw_env"]
