"""Transfer table: the shipped MLR-SNet against hand-designed schedules on several queries and seeds.

    nice python experiments/transfer_table.py --out runs/transfer_table \
        --queries text_lstm digits_mlp digits_cnn_epochs10 digits_cnn_epochs90 --seeds 0 1 2

Each (query, seed) is one ``mlrsnet.transfer`` run with ``compare=[multistep,cosine]`` (the same seed, model
initialisation and data order for the three schedules), written to ``<out>/<query>/seed<k>/``; a run whose
``summary.json`` already holds the comparison is reused, so an interrupted table resumes, and several
invocations over different queries can run side by side. Hydra overrides for every run go after ``--``
(e.g. ``-- device=cuda``). The table (mean and standard deviation of the final test metric over seeds, and
for each baseline the number of seeds on which MLR-SNet ends strictly better) is printed and written to
``<out>/table.md``; ``<out>/lr_schedules.png`` plots the LR of every schedule against iteration on the
first seed of each query, and ``<out>/results.csv`` one row per run (each schedule of each (query, seed):
``experiments/_results.py``); ``--results`` writes only that CSV, from the runs in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from _results import collect, write_results

from mlrsnet.engine.cli import compose
from mlrsnet.transfer import transfer


def run(query: str, seed: int, compare: list[str], out: Path, overrides: list[str]) -> dict:
    run_dir = out / query / f"seed{seed}"
    done = run_dir / "summary.json"
    if done.is_file():
        summary = json.loads(done.read_text())
        if set(summary.get("comparison", {})) == {"mlrsnet", *compare}:
            return summary
    cfg = compose("transfer", [f"+query={query}", f"seed={seed}", f"compare=[{','.join(compare)}]", "progress=false",
                               *overrides])
    return transfer(cfg, run_dir)


def results_csv(out: Path) -> Path:
    """``<out>/results.csv``: a row per schedule of every finished ``<out>/<query>/seed<k>`` transfer (the
    comparison schedules' runs are its ``compare/<name>``)."""
    runs = []
    for run_dir in sorted(out.glob("*/seed*")):
        keys = {"query": run_dir.parent.name, "seed": int(run_dir.name[4:])}
        runs.append(({**keys, "schedule": "mlrsnet"}, run_dir))
        runs += [({**keys, "schedule": c.name}, c) for c in sorted((run_dir / "compare").glob("*"))]
    return write_results(out / "results.csv", collect(runs), ("query", "schedule", "seed"))


def table(results: dict[str, list[dict]], compare: list[str]) -> str:
    schedules = ["mlrsnet", *compare]
    lines = [
        "| query | axis | metric | " + " | ".join(schedules) + " | seeds where MLR-SNet is better than |",
        "|---|---|---|" + "---|" * len(schedules) + "---|",
    ]
    for query, summaries in results.items():
        s0 = summaries[0]
        sign = 1 if s0["higher_is_better"] else -1
        cells = []
        means = {}
        for name in schedules:
            values = [s["comparison"][name] for s in summaries]
            means[name] = statistics.fmean(values)
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{means[name]:.4f} ± {sd:.4f}")
        best = max(schedules, key=lambda n: sign * means[n])
        cells = [f"**{c}**" if n == best else c for n, c in zip(schedules, cells, strict=True)]
        wins = ", ".join(
            f"{b} {sum(sign * s['comparison']['mlrsnet'] > sign * s['comparison'][b] for s in summaries)}"
            f"/{len(summaries)}"
            for b in compare
        )
        arrow = "higher" if sign > 0 else "lower"
        lines.append(f"| {query} | {s0['axis']} | test {s0['metric']} ({arrow} is better) | "
                     + " | ".join(cells) + f" | {wins} |")
    return "\n".join(lines) + "\n"


def plot_lrs(results: dict[str, list[dict]], compare: list[str], path: Path) -> None:
    """One panel per query: the LR of every schedule against iteration, first seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 3.2), squeeze=False)
    for ax, (query, summaries) in zip(axes[0], results.items(), strict=True):
        run_dir = Path(summaries[0]["run_dir"])
        for name in ["mlrsnet", *compare]:
            csv = run_dir / ("lr_schedule.csv" if name == "mlrsnet" else f"compare/{name}/lr_schedule.csv")
            rows = [line.split(",") for line in csv.read_text().splitlines()[1:]]
            ax.plot([int(r[0]) for r in rows], [float(r[1]) for r in rows], lw=1.2, label=name)
        ax.set_title(f"{query} (seed {summaries[0]['seed']})", fontsize=9)
        ax.set_xlabel("iteration")
    axes[0][0].set_ylabel("learning rate")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/transfer_table"))
    parser.add_argument("--queries", nargs="+",
                        default=["text_lstm", "digits_mlp", "digits_cnn_epochs10", "digits_cnn_epochs90"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--compare", nargs="+", default=["multistep", "cosine"])
    parser.add_argument("--results", action="store_true", help="only write <out>/results.csv from the runs there")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run, e.g. device=cuda")
    args = parser.parse_args()
    if args.results:
        print(results_csv(args.out))
        return
    results = {}
    for query in args.queries:
        results[query] = []
        for seed in args.seeds:
            summary = run(query, seed, args.compare, args.out, args.overrides)
            results[query].append(summary)
            print(f"{query} seed {seed}: " + ", ".join(f"{k} {v:.4f}" for k, v in summary["comparison"].items()),
                  flush=True)
    text = table(results, args.compare)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(text)
    plot_lrs(results, args.compare, args.out / "lr_schedules.png")
    results_csv(args.out)
    print(text)


if __name__ == "__main__":
    main()
