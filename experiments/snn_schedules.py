"""LR policies on spiking networks (FastSpiker's question at CPU scale), and FastSpiker's selection.

    OMP_NUM_THREADS=1 python experiments/snn_schedules.py --epochs 10 --tune-epochs 3 \
        --out experiments/snn_schedules

For each of ``snn_digits`` and ``snn_events``: ``mlrsnet.bench`` over the LR policies below with seeds
0, 1, 2 (same split, spike trains, data order and initialisation for every policy), each policy's base LR
tuned over ``--grid`` on the meta split, then ``select=fastest`` (:mod:`mlrsnet.engine.selection`). Writes
``experiments/snn_schedules.md``: per task the bench table (final accuracy, epochs and seconds to the
target), the speed-up of each policy over the fixed LR in epochs to the target on the meta split, the
selection with its p-value, and the command; the bench outputs stay in ``--out/<task>/``.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
from pathlib import Path

from mlrsnet.bench import bench
from mlrsnet.engine.cli import compose
from mlrsnet.engine.log import environment

POLICIES = ["fixed", "step", "multistep", "exponential", "cosine", "sgdr", "onecycle", "greedy", "mlrsnet_frozen",
            "mlrsnet"]


def speedups(results: dict, target: float) -> list[str]:
    """Markdown rows: mean epochs to ``target`` on the meta split, and the speed-up over the fixed LR."""
    sel = results["selection"]
    fixed = statistics.fmean(sel["policies"]["fixed"]["times"])
    lines = ["", f"Speed-up over the fixed LR: mean epochs for the meta accuracy to reach {target:g} (a run that "
             "never does counts as epochs + 1), fixed / policy.", "",
             "| policy | epochs to target (per seed) | speed-up vs fixed |", "|---|---|---|"]
    for name, row in sel["policies"].items():
        mean = statistics.fmean(row["times"])
        lines.append(f"| {name} | {', '.join(f'{t:g}' for t in row['times'])} | {fixed / mean:.2f}x |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["snn_digits", "snn_events"])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--tune-epochs", type=int, default=3)
    ap.add_argument("--grid", default="[0.3,1,3]")
    ap.add_argument("--targets", type=float, nargs="+", default=[0.85, 0.6], help="meta-accuracy target per task")
    ap.add_argument("--out", type=Path, default=Path("experiments/snn_schedules"))
    args = ap.parse_args()
    command = "OMP_NUM_THREADS=1 python " + " ".join(shlex.quote(a) for a in sys.argv)
    env = environment()
    parts = [
        "# LR policies on spiking networks (FastSpiker at CPU scale)", "",
        "Produced by (this file is the script's output, verbatim):", "", "```bash", command, "```", "",
        f"Commit {env.get('git_commit')}; torch {env['versions'].get('torch')}; snnTorch LIF networks with "
        "fast-sigmoid surrogate gradients. Every policy runs under its own optimiser (the table's optimizer "
        "column: SGD momentum 0.9 for the hand-designed policies, momentum 0 under MLR-SNet, as the reference "
        "code; weight decay 5e-4), and its base LR (MLR-SNet: its gamma) was tuned over the multipliers "
        + args.grid + f" by the meta-split accuracy after "
        f"{args.tune_epochs} epochs (seed 0); the test split was never used for a choice. `mlrsnet` is MLR-SNet "
        "meta-trained in place on the SNN; `mlrsnet_frozen` is the shipped MLR-SNet, meta-trained on digits "
        "with a CNN and transferred frozen (a new modality for it).", "",
    ]
    for task, target in zip(args.tasks, args.targets, strict=False):
        cfg = compose("bench", [
            f"+task={task}", f"epochs={args.epochs}", "seeds=[0,1,2]", f"schedules=[{','.join(POLICIES)}]",
            f"lr_grid={args.grid}", f"tune_epochs={args.tune_epochs}", f"target_metric={target}",
            "select=fastest", "progress=false",
        ])
        results = bench(cfg, args.out / task)
        print(results["table"], flush=True)
        parts += [f"## {task}", "", f"Test metrics after {args.epochs} epochs; time-to-target columns use the "
                  f"test accuracy reaching {target:g}.", "", results["table"]]
        parts += speedups(results, target)
        sel = results["selection"]
        best_name = max(sel["policies"], key=lambda n: sel["policies"][n]["final_meta"])
        best = sel["policies"][best_name]["final_meta"]
        for name, label in (("mlrsnet", "MLR-SNet meta-trained in place"), ("mlrsnet_frozen", "The frozen MLR-SNet")):
            mine = sel["policies"].get(name, {}).get("final_meta")
            if mine is not None:
                verdict = (f"below {best_name}'s {best:.4f}: it loses here" if mine < best
                           else "the best of all policies")
                parts += ["", f"{label} ends at a mean final meta accuracy of {mine:.4f}, {verdict}."]
        parts.append("")
    (Path("experiments") / "snn_schedules.md").write_text("\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
