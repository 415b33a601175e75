"""Figures of a run directory.

Command line::

    python -m mlrsnet.plot RUN_DIR [--out DIR]

writes PNGs into ``RUN_DIR/plots`` (or ``--out``):

- ``lr.png``: the learning rate against iteration (per-epoch mean / min / max when the run was made
  with ``log_steps=false``);
- ``curves.png``: training loss and the test metric against epoch;
- ``mlrsnet_response.png`` (meta-training runs): MLR-SNet's output as a function of its input loss,
  lr = MLR-SNet(loss | h, c), at the snapshots saved during training (``snapshots/``), each from the
  LSTM state (h, c) it had at that point; the dot marks that epoch's mean training loss.

- ``comparison/overlay.png`` (a transfer run with ``compare=[...]``): the frozen MLR-SNet's and every compared
  schedule's LR (log scale, the bundle's net swaps marked on ``lr.png``) and test metric.

Given a sweep directory (no ``metrics.jsonl`` of its own), every run below it is plotted, and
``plots/overlay.png`` overlays the LR and test-metric curves of all of them (its legend names each run's task,
schedule and seed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlrsnet.engine.figures import plot_overlay, plot_run, run_label
from mlrsnet.errors import MLRSNetError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlrsnet.plot", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a run directory (or a sweep directory: every run below it)")
    parser.add_argument("--out", default=None, help="output directory (default: RUN_DIR/plots)")
    args = parser.parse_args(argv)
    root = Path(args.run_dir)
    try:
        if not root.is_dir():
            raise MLRSNetError(f"{root} is not a directory; pass a run directory of python -m mlrsnet.train")
        if (root / "metrics.jsonl").is_file():
            runs = [root]
        else:
            runs = sorted(p.parent for p in root.rglob("metrics.jsonl"))
        if not runs:
            raise MLRSNetError(f"no runs (metrics.jsonl) under {root}; pass a run or sweep directory")
        for run in runs:
            out = Path(args.out) / run.relative_to(root) if args.out else None
            for path in plot_run(run, out):
                print(path)
        if len(runs) > 1:
            labels = {}
            for run in runs:
                label = run_label(run)
                labels[label if label not in labels else f"{label} ({run.relative_to(root)})"] = run
            for path in plot_overlay(labels, Path(args.out) if args.out else root / "plots", f"{root.name}: every run"):
                print(path)
    except MLRSNetError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
