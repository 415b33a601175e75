"""The targets of a suite's workloads, set as AlgoPerf sets them: what a reference configuration reaches in the
workload's budget. Reference: SGDM + cosine at the task's own LR (the schedule's defaults), seeds 0, 1, 2; target:
the median over seeds of its best metric on the meta split (so the reference itself reaches it on about half of
its seeds), rounded to 3 significant digits.

    python experiments/suite_targets.py --suite quick      # writes experiments/suite/targets_quick.md

The suite file (conf/suite/<suite>.yaml) holds the targets this printed; rerun after changing a workload.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from mlrsnet.engine.cli import compose
from mlrsnet.io import atomic_write_text
from mlrsnet.suite import suite

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="quick")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args()
    out_dir = HERE / "suite" / f"targets_{args.suite}"
    out = suite(compose("suite", [f"suite={args.suite}", "schedules=[cosine]", f"seeds=[{args.seeds}]",
                                  f"jobs={args.jobs}"]), out_dir)
    lines = [f"# Targets of the {args.suite} suite", "",
             f"Command: `python experiments/suite_targets.py --suite {args.suite} --seeds {args.seeds}`. Reference: "
             "SGDM + cosine at the schedule's defaults; target: the median over seeds of its best meta metric, 3 "
             "significant digits.", "", "| workload | metric | best meta per seed | median | target |",
             "|---|---|---|---|---|"]
    for name in dict.fromkeys(r["workload"] for r in out["rows"]):
        mine = [r for r in out["rows"] if r["workload"] == name]
        best = [r["best_meta"] for r in mine]
        median = statistics.median(best)
        lines.append(f"| {name} | {mine[0]['metric']} | {', '.join(f'{b:.4g}' for b in best)} | {median:.4g} | "
                     f"{float(f'{median:.3g}'):g} |")
    atomic_write_text(HERE / "suite" / f"targets_{args.suite}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
