"""Bundled environments, installed and imported as ``adv_envs`` (the folder is ``envs/``).

Importing ``adv_envs`` registers the bundled environments in PettingZoo's registry under the
``adv`` namespace. ``echo_v0`` is a test fixture (observations echo executed actions).
"""

from adv_envs import echo as echo_v0

__all__ = ["echo_v0"]
