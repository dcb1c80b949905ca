"""Bundled environments, installed and imported as ``adv_envs`` (the folder is ``envs/``).

Importing ``adv_envs`` (``import adv_wrappers`` does it too) registers the environments of the
four papers in PettingZoo's registry under the ``adv`` namespace::

    import adv_envs, pettingzoo
    env = pettingzoo.make("parallel", "adv/independent_spread-v0")
    game = pettingzoo.make("aec", "adv/kuhn_poker-v0")

:data:`ENVS` lists them with their paper, kind and optional dependency; the tests, the docs
generator and the benchmark iterate over it. Registration is by entry-point string, so
importing ``adv_envs`` imports no simulator. ``echo_v0`` is a test fixture (observations echo
executed actions), not registered.

Layers: ``adv_envs`` is the lower layer and never imports ``adv_wrappers``, so an env can be
used and tested without the threat models. ``adv_wrappers`` imports ``adv_envs`` only to
register these envs (``import adv_wrappers`` does it) and re-exports the error classes they
raise, which are defined in the private ``adv_envs._errors``: ``adv_wrappers.errors`` names
the very same classes, so every ``except`` written against it keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass

import pettingzoo

from adv_envs import echo as echo_v0


@dataclass(frozen=True)
class EnvInfo:
    """One bundled environment.

    Attributes:
        id: the registry ID, ``"adv/<name>-v<version>"`` (a contract: users type it).
        module: the module under ``adv_envs`` with ``parallel_env``/``env`` entry points; its
            docstring is the env's docs page (``docs/envs/<module>.md``).
        paper: the paper and section it follows, as a citation key of ``docs/references.md``
            (e.g. ``"Nika et al. (TMLR 2024), App. C.1"``).
        kind: ``"cooperative"``, ``"general-sum"`` or ``"zero-sum"``.
        turn_based: AEC only (no ``parallel_env``).
        extra: the pyproject extra its dependencies come from.
    """

    id: str
    module: str
    paper: str
    kind: str
    turn_based: bool = False
    extra: str | None = None


ENVS: tuple[EnvInfo, ...] = (
    EnvInfo(
        "adv/independent_spread-v0",
        "independent_spread",
        "Nika et al. (TMLR 2024), App. C.1",
        "general-sum",
        extra="mpe",
    ),
    EnvInfo(
        "adv/xnor_xor-v0",
        "xnor_xor",
        "Li et al. (ICLR 2024), App. C.1; He et al. (TMLR 2023), App. A-B",
        "cooperative",
    ),
    EnvInfo(
        "adv/lbf-v0", "lbf", "Li et al. (ICLR 2024), Sec. 4, App. C.1", "cooperative", extra="lbf"
    ),
    EnvInfo(
        "adv/multi_ant-v0",
        "multi_ant",
        "Nika et al. (TMLR 2024), App. C.2",
        "cooperative",
        extra="mujoco",
    ),
    EnvInfo(
        "adv/pursuit-v0",
        "pursuit",
        "Nika et al. (TMLR 2024), App. C.3",
        "cooperative",
        extra="sisl",
    ),
    EnvInfo(
        "adv/kuhn_poker-v0",
        "kuhn_poker",
        "Liu et al. (ICLR 2024), Sec. 7, App. E",
        "zero-sum",
        turn_based=True,
    ),
    EnvInfo(
        "adv/cooperative_navigation-v0",
        "cooperative_navigation",
        "He et al. (TMLR 2023), App. E.1.1, E.6",
        "cooperative",
        extra="mpe",
    ),
    EnvInfo(
        "adv/exchange_target-v0",
        "exchange_target",
        "He et al. (TMLR 2023), App. E.1.2",
        "cooperative",
        extra="mpe",
    ),
    EnvInfo(
        "adv/keep_away-v0",
        "keep_away",
        "He et al. (TMLR 2023), App. E.1.3",
        "general-sum",
        extra="mpe",
    ),
    EnvInfo(
        "adv/physical_deception-v0",
        "physical_deception",
        "He et al. (TMLR 2023), App. E.1.4",
        "general-sum",
        extra="mpe",
    ),
    EnvInfo(
        "adv/smax_4m_vs_3m-v0",
        "smax_4m_vs_3m",
        "Li et al. (ICLR 2024), Sec. 4, App. C.1",
        "cooperative",
        extra="smax",
    ),
    *(
        EnvInfo(
            f"adv/robosumo_{body}-v0",
            f"robosumo_{body}",
            "Liu et al. (ICLR 2024), Sec. 7",
            "zero-sum",
            extra="mujoco",
        )
        for body in ("ant", "bug", "spider")
    ),
)


def _register() -> None:
    for info in ENVS:
        module = f"adv_envs.{info.module}"
        pettingzoo.register("aec", info.id, entry_point=f"{module}:env")
        if not info.turn_based:
            pettingzoo.register("parallel", info.id, entry_point=f"{module}:parallel_env")


_register()

__all__ = ["ENVS", "EnvInfo", "echo_v0"]
