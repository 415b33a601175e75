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

Given a sweep directory (no ``metrics.jsonl`` of its own), every run below it is plotted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlrsnet.engine.figures import plot_run
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
    except MLRSNetError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
