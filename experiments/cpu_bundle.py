"""Meta-train the shipped CPU bundle ``digits_cnn_sym40`` with the faithful defaults, and check it.

    python experiments/cpu_bundle.py            # seeds 0 1 2, 30 epochs; writes experiments/cpu_bundle/
                                                # and mlrsnet/checkpoints/digits_cnn_sym40.pt
    python experiments/cpu_bundle.py --results  # only results.csv, from the run directories present

For each seed: ``python -m mlrsnet.train +task=digits_cnn task.noise.kind=sym task.noise.rate=0.4 seed=S``
with every other key at its default (SGD momentum 0 under MLR-SNet, the reference cell, gamma from the
formula, one exact meta step per step on the clean 100-image meta set). A training loss that keeps
falling for the whole run (40% of the labels are wrong, so the net keeps fitting them) is what the
three nets of a bundle need to differ.

The shipped bundle is the ``mlrsnet_bundle.pt`` (nets after epochs 1, N/2, N) of the seed with the best
final accuracy on the meta split; ties go to the lower meta loss, then the lower seed. The test split
is reported and never used for the choice. ``results.md`` also checks issue 11's first "done when":
the last epoch's mean LR at most a tenth of the first epoch's, on every seed. ``results.csv``: one row per
seed's run (``experiments/_results.py``); ``runs/`` is not committed (the command remakes it, reusing the
finished runs).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

from _results import collect, write_results

from mlrsnet.checkpoint import BUNDLE_FILE, shipped_dir
from mlrsnet.engine.cli import compose
from mlrsnet.engine.figures import plot_lr_curves
from mlrsnet.engine.log import read_metrics
from mlrsnet.io import atomic_write_text, file_sha256
from mlrsnet.train import meta_train

NAME = "digits_cnn_sym40"
OVERRIDES = ["+task=digits_cnn", "task.noise.kind=sym", "task.noise.rate=0.4", "progress=false"]


def run_seed(out: Path, seed: int, epochs: int | None) -> dict:
    run_dir = out / "runs" / f"seed{seed}"
    summary_path = run_dir / "summary.json"
    extra = [] if epochs is None else [f"epochs={epochs}"]
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        if summary.get("status") == "complete" and (epochs is None or summary["epochs"] == epochs):
            return summary
    return meta_train(compose("train", [*OVERRIDES, *extra, f"seed={seed}"]), run_dir)


def results_csv(out: Path) -> Path:
    """``results.csv``: a row per finished seed under ``out/runs``; ``chosen`` marks the seed whose bundle ships
    (the best final meta-split accuracy, then meta loss, then the lower seed: ``main``'s rule)."""
    dirs = sorted((out / "runs").glob("seed*"), key=lambda d: int(d.name[4:]))
    rows = collect(({"seed": int(d.name[4:])}, d) for d in dirs)
    for row in rows:
        epochs = [r for r in read_metrics(Path(row["run_dir"]) / "metrics.jsonl") if r.get("type") == "epoch"]
        row["first_lr_mean"] = epochs[0]["lr_mean"] if epochs else None
        row["meta_loss"] = epochs[-1].get("meta_loss") if epochs else None
        row["gamma"] = json.loads((Path(row["run_dir"]) / "summary.json").read_text()).get("gamma")
    if rows:
        best = max(rows, key=lambda r: (r["final_meta"], -r["meta_loss"], -r["seed"]))
        for row in rows:
            row["chosen"] = row is best
    return write_results(out / "results.csv", rows, ("seed", "chosen", "gamma", "first_lr_mean", "meta_loss"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=None, help="default: the task's 30")
    ap.add_argument("--out", type=Path, default=Path("experiments/cpu_bundle"))
    ap.add_argument("--no-ship", action="store_true", help="do not copy the chosen bundle into the package")
    ap.add_argument("--results", action="store_true", help="only write results.csv from the runs present")
    args = ap.parse_args()
    if args.results:
        print(results_csv(args.out))
        return
    rows = []
    curves = {}
    for seed in args.seeds:
        summary = run_seed(args.out, seed, args.epochs)
        run_dir = args.out / "runs" / f"seed{seed}"
        records = read_metrics(run_dir / "metrics.jsonl")
        epochs = [r for r in records if r.get("type") == "epoch"]
        curves[f"seed {seed}"] = [(r["step"], r["lr"]) for r in records if r.get("type") == "step"]
        first, last = epochs[0]["lr_mean"], epochs[-1]["lr_mean"]
        rows.append({"seed": seed, "meta_acc": epochs[-1]["meta_accuracy"], "meta_loss": epochs[-1]["meta_loss"],
                     "test_acc": summary["final_test_accuracy"], "lr_first": first, "lr_last": last,
                     "annealed": last <= first / 10, "gamma": summary["gamma"], "optimizer": summary["optimizer"],
                     "epochs": summary["epochs"]})
    best = max(rows, key=lambda r: (r["meta_acc"], -r["meta_loss"], -r["seed"]))
    bundle = args.out / "runs" / f"seed{best['seed']}" / BUNDLE_FILE
    lines = [
        f"# The shipped CPU bundle `{NAME}`", "",
        f"Command: `python experiments/cpu_bundle.py --seeds {' '.join(map(str, args.seeds))}"
        + (f" --epochs {args.epochs}" if args.epochs else "") + "`", "",
        f"Each seed: `python -m mlrsnet.train {' '.join(OVERRIDES[:3])} seed=S` (defaults otherwise: "
        f"{rows[0]['optimizer']} under MLR-SNet, {rows[0]['epochs']} epochs). Chosen by the final meta-split "
        "accuracy (then meta loss); the test split is shown, never used.", "",
        "| seed | final meta acc | final meta loss | final clean test acc | gamma | epoch-1 mean LR | "
        "last-epoch mean LR | last <= first/10 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mark = " **(chosen)**" if r is best else ""
        lines.append(f"| {r['seed']}{mark} | {100 * r['meta_acc']:.2f} | {r['meta_loss']:.4f} | "
                     f"{100 * r['test_acc']:.2f} | {r['gamma']:.4f} | {r['lr_first']:.4f} | {r['lr_last']:.5f} | "
                     f"{'yes' if r['annealed'] else 'NO'} |")
    tests = [r["test_acc"] for r in rows]
    sd = statistics.stdev(tests) if len(tests) > 1 else 0.0
    lines += ["", f"Mean final clean test accuracy over seeds {args.seeds}: {100 * statistics.fmean(tests):.2f} "
              f"± {100 * sd:.2f}. Annealed (last-epoch mean LR <= first/10) on "
              f"{sum(r['annealed'] for r in rows)} of {len(rows)} seeds.", ""]
    if not args.no_ship:
        dest = shipped_dir() / f"{NAME}.pt"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bundle, dest)
        lines.append(f"Shipped: `mlrsnet/checkpoints/{NAME}.pt` = seed {best['seed']}'s `{BUNDLE_FILE}`, "
                     f"sha256 `{file_sha256(dest)}`.")
    atomic_write_text(args.out / "results.md", "\n".join(lines) + "\n")
    plot_lr_curves(curves, args.out / "lr_curves.png", f"{NAME}: learned LR while meta-training, by seed")
    results_csv(args.out)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
