"""MLR-SNet vs a fixed LR started at the same value, on digits with symmetric label noise.

    python experiments/noisy_digits.py --seeds 0 1 2 --rate 0.4 --epochs 30 --out experiments/noisy_digits
    python experiments/noisy_digits.py --results   # only results.csv, from the run directories in --out

For each seed: meta-train MLR-SNet (``schedule=mlrsnet``) on ``digits_cnn`` with noisy training
labels (the meta and test splits stay clean), read the LR it used at the first step, then train the
same task, seed, data order and initialisation under ``schedule=fixed`` at exactly that LR and with MLR-SNet's
optimiser (SGD without momentum, the reference's; ``schedule=fixed`` alone would take SGDM 0.9).
Writes ``results.md`` (the table, with the command) and ``results.csv`` (one row per run:
``experiments/_results.py``; ``final_test`` is a fraction) in ``--out``. The run directories (``--out/runs/``,
not committed) are reused where a finished run of the same epochs is there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from _results import collect, write_results

from mlrsnet.engine.cli import compose
from mlrsnet.engine.log import read_metrics
from mlrsnet.train import meta_train


def _train(overrides: list[str], run_dir: Path, epochs: int) -> dict:
    """The summary of the finished run of ``epochs`` in ``run_dir``, else of the run trained there now."""
    try:
        s = json.loads((run_dir / "summary.json").read_text())
        if s.get("status") == "complete" and s.get("epochs") == epochs:
            return s
    except (OSError, ValueError):
        pass
    return meta_train(compose("train", overrides), run_dir)


def _first_lr(run_dir: Path) -> float:
    return next(r["lr"] for r in read_metrics(run_dir / "metrics.jsonl") if r["type"] == "step")


def results_csv(out: Path) -> Path:
    """``results.csv``: a row per finished run under ``out/runs/seed<k>/{mlrsnet,fixed}`` (``lr0``: MLR-SNet's
    first-step LR, the fixed run's LR)."""
    runs = []
    for seed_dir in sorted((out / "runs").glob("seed*"), key=lambda d: int(d.name[4:])):
        if not (seed_dir / "mlrsnet" / "metrics.jsonl").is_file():
            continue
        lr0 = _first_lr(seed_dir / "mlrsnet")
        runs += [({"seed": int(seed_dir.name[4:]), "schedule": name, "lr0": lr0}, seed_dir / name)
                 for name in ("mlrsnet", "fixed")]
    return write_results(out / "results.csv", collect(runs), ("seed", "schedule", "lr0"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--rate", type=float, default=0.4)
    ap.add_argument("--kind", default="sym")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--task", default="digits_cnn")
    ap.add_argument("--out", type=Path, default=Path("experiments/noisy_digits"))
    ap.add_argument("--results", action="store_true", help="only write results.csv from the runs in --out")
    args = ap.parse_args()
    if args.results:
        print(results_csv(args.out))
        return
    base = [f"+task={args.task}", f"epochs={args.epochs}", f"task.noise.kind={args.kind}",
            f"task.noise.rate={args.rate}", "progress=false"]
    rows = []
    for seed in args.seeds:
        run = args.out / "runs" / f"seed{seed}"
        s_ml = _train([*base, f"seed={seed}"], run / "mlrsnet", args.epochs)
        first_lr = _first_lr(run / "mlrsnet")
        s_fx = _train([*base, f"seed={seed}", "schedule=fixed", f"optimizer.lr={first_lr}", "optimizer.momentum=0"],
                      run / "fixed", args.epochs)
        for name, s in (("mlrsnet", s_ml), ("fixed", s_fx)):
            rows.append({"seed": seed, "schedule": name, "lr0": first_lr,
                         "final": s["final_test_accuracy"], "best": s["best_test_accuracy"],
                         "meta": s["final_meta_accuracy"]})
            print(rows[-1], flush=True)

    def agg(name: str, key: str) -> str:
        vals = [r[key] for r in rows if r["schedule"] == name]
        sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
        return f"{100 * statistics.mean(vals):.2f} ± {100 * sd:.2f}"

    args.out.mkdir(parents=True, exist_ok=True)
    results_csv(args.out)
    wins = sum(
        1 for s in args.seeds
        if next(r["final"] for r in rows if r["seed"] == s and r["schedule"] == "mlrsnet")
        > next(r["final"] for r in rows if r["seed"] == s and r["schedule"] == "fixed")
    )
    cmd = "python " + " ".join(sys.argv)
    lines = [
        f"# {args.task}, {int(args.rate * 100)}% {args.kind} label noise: MLR-SNet vs fixed LR at the same start",
        "",
        f"Command: `{cmd}`",
        "",
        f"Clean test accuracy (%) after {args.epochs} epochs, mean ± std over seeds {args.seeds}. "
        "'best' is the best epoch's test accuracy, shown for information only (it peeks at the test split; "
        "nothing was selected with it). 'meta' is the clean meta-validation split. Both run SGD without "
        "momentum (weight decay 5e-4): MLR-SNet's optimiser, the reference's.",
        "",
        "| schedule | final test acc | best test acc | final meta acc |",
        "|---|---|---|---|",
    ]
    for name in ("mlrsnet", "fixed"):
        lines.append(f"| {name} | {agg(name, 'final')} | {agg(name, 'best')} | {agg(name, 'meta')} |")
    lines += ["", f"MLR-SNet has the higher final clean test accuracy on {wins} of {len(args.seeds)} seeds.", "",
              "Per seed (fixed LR = MLR-SNet's first-step LR):", "",
              "| seed | lr0 | MLR-SNet final | fixed final |", "|---|---|---|---|"]
    for s in args.seeds:
        m = next(r for r in rows if r["seed"] == s and r["schedule"] == "mlrsnet")
        x = next(r for r in rows if r["seed"] == s and r["schedule"] == "fixed")
        lines.append(f"| {s} | {m['lr0']:.4f} | {100 * m['final']:.2f} | {100 * x['final']:.2f} |")
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
