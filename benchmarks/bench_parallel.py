"""Wall time of the default benchmark, ``python -m mlrsnet.bench +task=digits_cnn`` (5 schedules, 3 tuning runs
and 3 seeds each, 30 epochs: 30 runs), against a baseline version run in the same script, one after the other.

    python benchmarks/bench_parallel.py --baseline e7787cb                 # the full default bench, both versions
    python benchmarks/bench_parallel.py --baseline e7787cb --epochs 3 --rounds 2   # a quick check

The baseline is a git revision: the script checks it out in a temporary worktree and installs it in its own
virtual environment (cached under --cache; the first call takes a few minutes), so each version runs its own code
and configs. Each round runs both versions in a shuffled order, each into a fresh output directory, and the
figure is the median over rounds of the ratio baseline / current (a shared machine slows a round's two runs
alike). Extra overrides (after ``--``) go to both commands, e.g. ``-- jobs=1`` for the current version's
sequential mode.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def baseline_python(revision: str, cache: Path) -> Path:
    """A python with ``revision`` of this repository installed (editable, from its own worktree)."""
    sha = subprocess.run(["git", "rev-parse", revision], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    home = cache / sha[:12]
    python = home / "venv" / "bin" / "python"
    if python.is_file():
        return python
    home.mkdir(parents=True, exist_ok=True)
    tree = home / "tree"
    if not tree.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), sha], cwd=ROOT, check=True)
    subprocess.run([sys.executable, "-m", "venv", str(home / "venv")], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    subprocess.run([*pip, "-e", str(tree)], check=True)
    return python


def run(python: Path, out: Path, overrides: list[str], cwd: Path) -> float:
    """Seconds of one ``mlrsnet.bench`` command (it must succeed)."""
    env = {**os.environ, "MPLBACKEND": "Agg", "WANDB_MODE": "offline", "MLRSNET_OFFLINE": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run([str(python), "-m", "mlrsnet.bench", "+task=digits_cnn", f"out_dir={out}", "progress=false",
                           *overrides], cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{python} -m mlrsnet.bench failed:\n{proc.stderr[-3000:]}")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", default="e7787cb", help="the git revision to compare against")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--epochs", type=int, default=None, help="default: the task's 30")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "mlrsnet_bench_baselines")
    p.add_argument("overrides", nargs="*", help="extra overrides for both commands (after --)")
    args = p.parse_args()
    extra = [*([] if args.epochs is None else [f"epochs={args.epochs}"]), *args.overrides]
    versions = {"baseline": baseline_python(args.baseline, args.cache), "current": Path(sys.executable)}
    ratios, times = [], {name: [] for name in versions}
    for r in range(args.rounds):
        order = list(versions)
        random.Random(r).shuffle(order)
        seconds = {}
        for name in order:
            with tempfile.TemporaryDirectory() as tmp:
                seconds[name] = run(versions[name], Path(tmp) / "out", extra, Path(tmp))
            times[name].append(seconds[name])
        ratios.append(seconds["baseline"] / seconds["current"])
        print(f"round {r + 1}: baseline {seconds['baseline']:.1f} s, current {seconds['current']:.1f} s, "
              f"speedup {ratios[-1]:.2f}x", flush=True)
    print(f"\nbench +task=digits_cnn {' '.join(extra)}: baseline {args.baseline} median "
          f"{statistics.median(times['baseline']):.1f} s, current median {statistics.median(times['current']):.1f} s; "
          f"speedup (median over {args.rounds} round(s) of baseline / current): {statistics.median(ratios):.2f}x; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
