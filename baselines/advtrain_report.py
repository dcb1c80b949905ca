# docs and experiment results can be found at docs/advtrain_report.md
"""Liu et al. (ICLR 2024) on Kuhn poker and Rock-Paper-Scissors, exactly: Fig. 2, Table 4, App. C.

Three parts (`--parts`), each resumable (a finished run is skipped, a stopped one resumed):

* `fig2`: `advtrain.py` on Kuhn poker at eps = 1 with every method of `--rows` (the min
  oracle, two timescales at the ratios of `--ratios`, a single timescale, self-play and
  fictitious play), `--seeds` each; the victim's exact exploitability (Def. 4.1) at every
  iteration, plotted as mean and standard error over seeds (`fig2.png`) and summarized in a
  table: the last iteration (also as the interquartile mean with its bootstrap 95 % CI over
  seeds, Agarwal et al., NeurIPS 2021, plotted beside mean ± SE in `fig2_iqm.png`), the mean
  of the last 10 %, the spread over the last half (how much a run oscillates) and the first
  iteration within 0.05 of the optimum (1/18).
* `budgets`: the attack/defense budget matrix of Table 4. Victims trained by two timescales
  at the defense budgets 0.3, 0.7 and 1.0, and without defense (eps = 0: only the benign
  opponent), each attacked exactly (the min oracle's value, i.e. Expl) at the attack
  budgets 0.3, 0.7 and 1.0. The benign opponent is uniform play, so the budget matters (with
  Kuhn's equilibrium as the benign policy the most robust victim is the same at every
  budget). Mean ± SE over seeds, then the same matrix as IQM [95 % CI].
* `rps`: App. C, exactly: SGDA, AGDA, SIBR, AIBR and GAMin on Rock-Paper-Scissors, the
  exploitability of the x player per iteration (`rps.png`).
* `stealth`: Fig. 3's ordering on an env of ours. Fresh partial-control attackers
  (`attack.py`) against the defender `--stealth-defender` at the budgets
  `--stealth-budgets`, each trained at its budget; the victims' returns and the shift of
  their observation distribution (squared W2, KL, Hellinger; adv_wrappers.stealth).

The runs go `--jobs` at a time on threads, or with `--ray` as Ray tasks on a local instance
(`--ray-address` on an existing cluster; `adv_wrappers.train.fanout`, the `ray` extra).
Writes `advtrain_report.md`, `advtrain_report.json` and the figures into `--workdir`.
"""

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

from adv_wrappers.train.fanout import run_jobs
from adv_wrappers.train.jobs import (
    Monitor,
    attack_or_resume,
    iqm_ci,
    logged_scalars,
    mean_se,
    plot_intervals,
    train_or_resume,
)
from adv_wrappers.train.policy import read_record

BASELINES = Path(__file__).resolve().parent
OPTIMUM = 1.0 / 18.0  # the most robust victim's exploitability at eps = 1 (Kuhn's game value)


@dataclass
class Args:
    parts: tuple[str, ...] = ("fig2", "budgets", "rps")
    """which parts to run: `fig2`, `budgets`, `rps`"""
    rows: tuple[str, ...] = (
        "min_oracle",
        "two_timescale",
        "single_timescale",
        "self_play",
        "fictitious_play",
    )
    """fig2's methods (advtrain.py's `--method`)"""
    ratios: tuple[float, ...] = (10.0, 30.0)
    """fig2: the timescale ratios eta_alpha / eta_nu of the two-timescale rows"""
    seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    """seeds of every advtrain.py run (the paper: 5)"""
    iterations: int = 1000
    """victim policy updates per run (each 8 batches of 16 hands)"""
    learning_rate: float = 0.03
    """eta_nu, the victim's policy learning rate (SGD) in every run"""
    defense_budgets: tuple[float, ...] = (0.3, 0.7, 1.0, 0.0)
    """budgets: the victims' training budgets (0: no defense)"""
    attack_budgets: tuple[float, ...] = (0.3, 0.7, 1.0)
    """budgets: the attack budgets every victim is evaluated at (exactly)"""
    rps_iterations: int = 2000
    """rps: iterations of each method"""
    rps_learning_rate: float = 0.1
    """rps: the gradient step eta_t = rps_learning_rate / sqrt(t + 1)"""
    stealth_defender: str = ""
    """stealth: the defenders' checkpoint (any trainer's `final.safetensors`)"""
    stealth_budgets: tuple[float, ...] = (0.3, 0.7, 1.0)
    """stealth: the attack budgets (the paper's Local_2, Local_1 and Global)"""
    stealth_attacked: str = "agent_0"
    """stealth: alpha, the partially controlled agent"""
    stealth_timesteps: int = 100_000
    """stealth: environment steps of each attacker"""
    stealth_seed: int = 1
    """stealth: the attackers' seed"""
    stealth_attack_flags: str = ""
    """stealth: more `attack.py` flags for every attacker (e.g. its PPO settings), one string"""
    workdir: str = "runs/advtrain_report"
    """where the runs and the report go"""
    jobs: int = 2
    """advtrain.py runs at a time"""
    ray: bool = False
    """run every job as a Ray task (the `ray` extra), on a new local instance with `--jobs` CPUs"""
    ray_address: str = ""
    """join this Ray cluster instead (`auto`, `<head>:6379`, `ray://<head>:10001`; implies
    `--ray`); `--workdir` must then be on a filesystem every node sees, at the same path"""
    report_only: bool = False
    """summarize the finished runs only (start nothing)"""


# ------------------------------------------------------------------ Kuhn poker runs
def runs(args: Args) -> list[tuple[str, str, int, list[str]]]:
    """(part, row, seed, advtrain.py flags) of every run."""
    common = ["--learning-rate", str(args.learning_rate), "--num-iterations", str(args.iterations),
              "--checkpoint-every", "100"]  # fmt: skip
    out = []
    for seed in args.seeds:
        if "fig2" in args.parts:
            for row in args.rows:
                if row == "two_timescale":
                    for r in args.ratios:
                        flags = ["--method", row, "--timescale-ratio", str(r)]
                        out.append(("fig2", f"two_timescale_{r:g}", seed, flags))
                else:
                    out.append(("fig2", row, seed, ["--method", row]))
        if "budgets" in args.parts:
            for e in args.defense_budgets:
                flags = ["--method", "two_timescale", "--epsilon", str(e),
                         "--eval-epsilons", *map(str, args.attack_budgets)]  # fmt: skip
                out.append(("budgets", f"defense_{e:g}", seed, flags))
    return [(part, row, seed, [*flags, *common, "--seed", str(seed)])
            for part, row, seed, flags in out]  # fmt: skip


def folder(args: Args, part: str, row: str, seed: int) -> Path:
    return Path(args.workdir) / part / row / f"seed{seed}"


def run_one(args: Args, part: str, row: str, seed: int, flags: list[str], stage: dict) -> dict:
    name = f"{part}/{row}/seed{seed}"
    stage[name] = "training"
    final = train_or_resume(BASELINES / "advtrain.py", folder(args, part, row, seed), flags)
    stage[name] = "done"
    run_dir = final.parent.parent
    _, curve = logged_scalars(run_dir, "exact/exploitability")
    _, grad_norm = logged_scalars(run_dir, "losses/victim_grad_norm")
    _, score = logged_scalars(run_dir, "exact/score")
    _, average = logged_scalars(run_dir, "exact/exploitability_average")
    return {"part": part, "row": row, "seed": seed, "curve": curve.tolist(),
            "grad_norm": grad_norm.tolist(), "score": score.tolist(),
            "average_curve": average.tolist(),
            "exact": read_record(final)["extra"]["exact"]}  # fmt: skip


def fmt_iqm(iqm: float, low: float, high: float) -> str:
    """An IQM and its 95 % CI (the IQM alone with one seed)."""
    return f"{iqm:.3f}" if np.isnan(low) else f"{iqm:.3f} [{low:.3f}, {high:.3f}]"


def fig2_report(args: Args, results: list[dict]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(dict.fromkeys(r["row"] for r in results if r["part"] == "fig2"))
    lines = [
        "| method | last iteration | last iteration: IQM [95 % CI] | mean of the last 10 % | "
        "spread over the last half | first iteration within 0.05 of 1/18 | average policy, "
        "last iteration | victim's gradient norm, last half | seeds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    estimates = {}  # per row: last iteration's (mean, mean - SE, mean + SE) and (IQM, CI)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for row in rows:
        curves = [np.array(r["curve"]) for r in results if r["part"] == "fig2" and r["row"] == row]
        n = min(len(c) for c in curves)
        stack = np.stack([c[:n] for c in curves])
        tail = max(1, n // 10)
        last = mean_se(stack[:, -1])
        last_iqm = iqm_ci(stack[:, -1])
        estimates[row] = [(last[0], last[0] - last[1], last[0] + last[1]), last_iqm]
        tail_mean = mean_se(stack[:, -tail:].mean(axis=1))
        spread = mean_se(stack[:, n // 2 :].std(axis=1))
        hits = [int(np.argmax(c - OPTIMUM < 0.05)) + 1 if np.any(c - OPTIMUM < 0.05) else None
                for c in stack]  # fmt: skip
        reached = [h for h in hits if h is not None]
        first = (f"{np.median(reached):.0f} (median, {len(reached)}/{len(hits)} runs)"
                 if reached else f"never (0/{len(hits)})")  # fmt: skip
        norms = [np.array(r["grad_norm"]) for r in results
                 if r["part"] == "fig2" and r["row"] == row and r.get("grad_norm")]  # fmt: skip
        norm = mean_se([g[len(g) // 2 :].mean() for g in norms]) if norms else (np.nan, np.nan)
        averages = [r["average_curve"][-1] for r in results
                    if r["part"] == "fig2" and r["row"] == row and r.get("average_curve")]  # fmt: skip
        avg = mean_se(averages) if averages else (np.nan, np.nan)
        lines.append(
            f"| {row} | {last[0]:.3f} ± {last[1]:.3f} | {fmt_iqm(*last_iqm)} "
            f"| {tail_mean[0]:.3f} ± {tail_mean[1]:.3f} "
            f"| {spread[0]:.3f} ± {spread[1]:.3f} | {first} | {avg[0]:.3f} ± {avg[1]:.3f} "
            f"| {norm[0]:.3f} ± {norm[1]:.3f} | {len(curves)} |"
        )
        mean, se = stack.mean(axis=0), stack.std(axis=0, ddof=1) / np.sqrt(len(stack))
        x = np.arange(1, n + 1)
        ax.plot(x, mean, label=row, lw=1.2)
        ax.fill_between(x, mean - se, mean + se, alpha=0.2)
    ax.axhline(OPTIMUM, color="k", ls=":", lw=1, label="optimum 1/18")
    ax.set_xlabel("iteration (victim policy updates)")
    ax.set_ylabel("exploitability (Def. 4.1, eps = 1)")
    ax.set_ylim(0, 0.5)
    ax.legend(fontsize=8)
    ax.set_title("Kuhn poker: victim exploitability (mean ± SE over seeds)")
    fig.tight_layout()
    fig.savefig(Path(args.workdir) / "fig2.png", dpi=120)
    plt.close(fig)
    plot_intervals(
        Path(args.workdir) / "fig2_iqm.png", estimates,
        ["last iteration: mean ± SE", "last iteration: IQM, 95 % CI"],
        xlabel="exploitability (Def. 4.1, eps = 1) at the last iteration", sharex=[0, 0],
    )  # fmt: skip
    return "\n".join(["### Fig. 2: Kuhn poker, eps = 1", "", *lines, "", "![fig2](fig2.png)",
                      "", "![fig2: mean ± SE and IQM](fig2_iqm.png)"])  # fmt: skip


def budgets_report(args: Args, results: list[dict]) -> str:
    from adv_envs import kuhn_poker_exact as kx

    benign = kx.TabularPolicy.uniform(1)
    optimum = [kx.robust_optimum(0, epsilon=a, benign=benign).exploitability
               for a in args.attack_budgets]  # fmt: skip
    head = " | ".join(f"attack {a:g}" for a in args.attack_budgets)
    lines = [f"| victim | {head} |", "|---|" + "---|" * len(args.attack_budgets)]
    iqm_lines = list(lines)
    for d in args.defense_budgets:
        row = f"defense_{d:g}"
        cells, iqm_cells = [], []
        for a in args.attack_budgets:
            key = "exact/exploitability" if a == d else f"exact/exploitability_eps_{a:g}"
            values = [
                r["exact"][key] for r in results if r["part"] == "budgets" and r["row"] == row
            ]
            if not values:
                cells.append("-")
                iqm_cells.append("-")
                continue
            m, se = mean_se(values)
            cells.append(f"{m:.3f} ± {se:.3f}")
            iqm_cells.append(fmt_iqm(*iqm_ci(values)))
        name = f"defense budget {d:g}" if d > 0 else "no defense"
        lines.append(f"| {name} | {' | '.join(cells)} |")
        iqm_lines.append(f"| {name} | {' | '.join(iqm_cells)} |")
    lines.append(f"| most robust victim (LP) | {' | '.join(f'{o:.3f}' for o in optimum)} |")
    return "\n".join(
        ["### Table 4: attack and defense budgets, Kuhn poker (exact Expl)", "", *lines, "",
         "IQM [95 % CI] over seeds (bootstrap of the seeds):", "", *iqm_lines]
    )  # fmt: skip


# ------------------------------------------------------------------ stealth
def stealth_part(args: Args) -> tuple[str, list[dict]]:
    """Fresh partial-control attackers at each budget; their return and state shift."""
    if not args.stealth_defender:
        raise SystemExit("--parts stealth needs --stealth-defender CHECKPOINT")
    defender = str(Path(args.stealth_defender).resolve())
    rows = []
    for e in args.stealth_budgets:
        flags = ["--defender", defender, "--threat", "partial_control_v0", "--epsilon", str(e),
                 "--attacked", args.stealth_attacked, "--total-timesteps",
                 str(args.stealth_timesteps), "--seed", str(args.stealth_seed),
                 *shlex.split(args.stealth_attack_flags)]  # fmt: skip
        cwd = Path(args.workdir) / "stealth" / f"epsilon_{e:g}"
        (scenario,) = attack_or_resume(BASELINES / "attack.py", cwd, flags)["scenarios"]
        rows.append({"epsilon": e, **scenario})
    lines = [
        "| attack | eps | victims' return, clean | under attack | W2^2 (Gaussian) | "
        "W2^2 (marginals) | KL | Hellinger |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        name = "Global" if r["epsilon"] == 1.0 else "Local"
        s = r["stealth"] or {}
        cells = [f"{s[k]:.4g}" if k in s else "-" for k in ("w2", "w2_marginal", "kl", "hellinger")]
        lines.append(
            f"| {name} | {r['epsilon']:g} | {r['clean'][0]:.2f} ± {r['clean'][1]:.2f} | "
            f"{r['attacked'][0]:.2f} ± {r['attacked'][1]:.2f} | {' | '.join(cells)} |"
        )
    head = (f"### Fig. 3: state-distribution shift of partial-control attacks "
            f"(defender {Path(defender).parent.parent.name}, alpha = {args.stealth_attacked})")  # fmt: skip
    return "\n".join([head, "", *lines]), rows


# ------------------------------------------------------------------ Rock-Paper-Scissors
RPS = np.array([[0.0, 1.0, -1.0], [-1.0, 0.0, 1.0], [1.0, -1.0, 0.0]])
RPS_METHODS = ("SGDA", "AGDA", "SIBR", "AIBR", "GAMin")


def simplex_projection(v: np.ndarray) -> np.ndarray:
    """The Euclidean projection of ``v`` onto the probability simplex."""
    u = np.sort(v)[::-1]
    css = np.cumsum(u)
    k = np.arange(1, v.size + 1)
    rho = np.nonzero(u - (css - 1.0) / k > 0)[0][-1]
    return np.maximum(v - (css[rho] - 1.0) / (rho + 1), 0.0)


def rps_dynamics(method: str, iterations: int, eta: float, x0=None, y0=None) -> np.ndarray:
    """App. C: the x player's exploitability ``-min_y x^T P y`` after each iteration.

    x maximizes ``x^T P y``, y minimizes it; ``eta_t = eta / sqrt(t + 1)``; best responses
    are pure (the lowest index on ties). SIBR and AIBR take x's best response with argmax
    (the paper's "argmin" for x is a typo: x maximizes).
    """
    x = np.array([0.6, 0.3, 0.1]) if x0 is None else np.asarray(x0, float)
    y = np.array([0.2, 0.5, 0.3]) if y0 is None else np.asarray(y0, float)

    def br_x(y):
        return np.eye(3)[np.argmax(RPS @ y)]

    def br_y(x):
        return np.eye(3)[np.argmin(x @ RPS)]

    out = np.empty(iterations)
    for t in range(iterations):
        step = eta / np.sqrt(t + 1)
        if method == "SGDA":
            x, y = simplex_projection(x + step * RPS @ y), simplex_projection(y - step * RPS.T @ x)
        elif method == "AGDA":
            y = simplex_projection(y - step * RPS.T @ x)
            x = simplex_projection(x + step * RPS @ y)
        elif method == "SIBR":
            x, y = br_x(y), br_y(x)
        elif method == "AIBR":
            y = br_y(x)
            x = br_x(y)
        elif method == "GAMin":
            y = br_y(x)
            x = simplex_projection(x + step * RPS @ y)
        else:
            raise ValueError(f"unknown method {method!r}; allowed: {RPS_METHODS}")
        out[t] = -float(np.min(x @ RPS))
    return out


def rps_report(args: Args) -> tuple[str, dict]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {m: rps_dynamics(m, args.rps_iterations, args.rps_learning_rate) for m in RPS_METHODS}
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for m, c in curves.items():
        ax.plot(np.arange(1, c.size + 1), c, label=m, lw=1.2)
    ax.set_xscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("exploitability of x")
    ax.legend(fontsize=8)
    ax.set_title("Rock-Paper-Scissors (App. C)")
    fig.tight_layout()
    fig.savefig(Path(args.workdir) / "rps.png", dpi=120)
    plt.close(fig)
    lines = ["| method | last iteration | max over the last 10 % |", "|---|---|---|"]
    tail = max(1, args.rps_iterations // 10)
    for m, c in curves.items():
        lines.append(f"| {m} | {c[-1]:.4f} | {c[-tail:].max():.4f} |")
    text = "\n".join([f"### App. C: Rock-Paper-Scissors ({args.rps_iterations} iterations, "
                      f"eta_t = {args.rps_learning_rate:g}/sqrt(t+1))", "", *lines, "",
                      "![rps](rps.png)"])  # fmt: skip
    return text, {m: c.tolist() for m, c in curves.items()}


if __name__ == "__main__":
    args = tyro.cli(Args)
    unknown = [p for p in args.parts if p not in ("fig2", "budgets", "rps", "stealth")]
    if unknown:
        raise SystemExit(f"unknown parts {unknown}; allowed: fig2, budgets, rps, stealth")
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    plan = runs(args)
    if args.report_only:
        plan = [
            p
            for p in plan
            if (folder(args, *p[:3]) / "runs").exists()
            and any(folder(args, *p[:3]).glob("runs/*/checkpoints/final.safetensors"))
        ]
    names = [f"{part}/{row}/seed{seed}" for part, row, seed, _ in plan]
    total = sum(int(flags[flags.index("--num-iterations") + 1]) * 128
                * (2 if "fictitious_play" in flags else 1) for *_, flags in plan)  # fmt: skip
    results: list[dict] = []
    if plan:
        folders = [folder(args, *p[:3]) for p in plan]
        with Monitor(folders, total, names) as stage:  # threads, or one Ray task per run
            results = run_jobs(lambda p: run_one(args, *p, stage), plan, workers=args.jobs,
                               ray=args.ray or bool(args.ray_address),
                               ray_address=args.ray_address or None, names=names, stage=stage)  # fmt: skip
    sections, extra = [], {}
    if "fig2" in args.parts and any(r["part"] == "fig2" for r in results):
        sections.append(fig2_report(args, results))
    if "budgets" in args.parts and any(r["part"] == "budgets" for r in results):
        sections.append(budgets_report(args, results))
    if "rps" in args.parts:
        text, extra["rps"] = rps_report(args)
        sections.append(text)
    if "stealth" in args.parts:
        text, extra["stealth"] = stealth_part(args)
        sections.append(text)
    text = "\n\n".join(sections)
    print(text)
    Path(args.workdir, "advtrain_report.md").write_text(text + "\n")
    Path(args.workdir, "advtrain_report.json").write_text(json.dumps({"runs": results, **extra}))
