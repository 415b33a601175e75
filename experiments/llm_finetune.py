"""LRBench++ at CPU scale: LR policies x LR grid x seeds on gpt_finetune_stdlib -> experiments/llm_finetune.md.

    OMP_NUM_THREADS=1 python experiments/llm_finetune.py                      # every run, then the report
    python experiments/llm_finetune.py --policies warmup_linear,greedy_eval   # a subset (parallel shards)
    python experiments/llm_finetune.py --report                               # only the report, from the records
    python experiments/llm_finetune.py --results      # only experiments/llm_finetune_results.csv, from the records

Every (policy, LR multiplier, seed) trains the shipped tiny GPT-2 with mlrsnet.bench.train_run (the
bench's run: same split, data order and initialisation per seed) for `epochs` epochs, evaluating the test
split (perplexity, next-token accuracy, held-out documentation perplexity) and the meta split after every
epoch. Each run is a run directory, runs/llm_finetune/<policy>/x<m>/seed<k>/ (summary.json, metrics.jsonl;
a finished one is reused, an interrupted one resumed). The tuned LR of
each policy is chosen, as in the bench, by seed 0's final meta-validation perplexity; the test split is
only reported.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch
from _results import collect, write_results

from mlrsnet.bench import train_run
from mlrsnet.engine.build import build_run
from mlrsnet.engine.cli import compose
from mlrsnet.engine.config import BenchConfig, parse_config
from mlrsnet.engine.resume import StopSignals
from mlrsnet.engine.runner import RunRecord, read_record
from mlrsnet.io import atomic_write_text

POLICIES = ["warmup_constant", "warmup_linear", "warmup_cosine", "mlrsnet_frozen", "greedy_eval",
            "adamw_schedulefree"]
GRID = [0.01, 0.03, 0.1, 0.3]
SEEDS = [0, 1, 2]
EPOCHS = 2
# Smaller than the task's defaults (12,000 / 6,000 bytes, 3 epochs) so that 72 runs fit the shared 2-core machine.
TRAIN_CHARS, EVAL_CHARS = 8000, 4000
OUT = Path("runs/llm_finetune")
DOC = Path("experiments/llm_finetune.md")
FIG = Path("experiments/llm_finetune_curves.png")
RESULTS = Path("experiments/llm_finetune_results.csv")  # one row per run (experiments/_results.py)
COMMAND = "OMP_NUM_THREADS=1 python experiments/llm_finetune.py"


def _config() -> BenchConfig:
    cfg = parse_config(compose("bench", ["+task=gpt_finetune_stdlib", f"task.train_chars={TRAIN_CHARS}",
                                         f"task.eval_chars={EVAL_CHARS}", f"epochs={EPOCHS}"]), "bench")
    assert isinstance(cfg, BenchConfig)
    return cfg


def _path(policy: str, m: float, seed: int) -> Path:
    return OUT / policy / f"x{m:g}" / f"seed{seed}"


def _record(policy: str, m: float, seed: int) -> RunRecord | None:
    """The finished (complete or diverged) run of (policy, multiplier, seed), or None."""
    rec = read_record(_path(policy, m, seed))
    return rec if rec is not None and rec.status in ("complete", "diverged") else None


def run_all(policies: list[str]) -> None:
    cfg = _config()
    with StopSignals() as stop:
        for policy in policies:
            for m in GRID:
                for seed in SEEDS:
                    if _record(policy, m, seed) is not None:
                        continue
                    rec = train_run(cfg, policy, seed, m, _path(policy, m, seed), stop, epochs=EPOCHS,
                                    eval_splits=("test", "meta"))
                    last = rec.history[-1] if rec.history else {}
                    print(f"[{policy} x{m:g} seed {seed}] {rec.status} test ppl "
                          f"{last.get('test_perplexity', math.nan):.3f} in {rec.wall_time_s:.0f} s", flush=True)


def results_csv() -> Path | None:
    """``RESULTS``: a row per finished run in ``OUT`` (None, and nothing written, where ``OUT`` holds none)."""
    rows = collect(({"policy": p, "multiplier": m, "seed": s}, _path(p, m, s))
                   for p in POLICIES for m in GRID for s in SEEDS)
    if not rows:
        print(f"no finished runs in {OUT}: {RESULTS} left as it is")
        return None
    return write_results(RESULTS, rows, ("policy", "multiplier", "seed"))


def _base_scores() -> dict:
    """The pretrained base before fine-tuning (epoch 0)."""
    run = build_run(_config(), schedule="fixed", seed=0)
    return {**{f"test_{k}": v for k, v in run.task.evaluate(run.model, "test").items()},
            **{f"meta_{k}": v for k, v in run.task.evaluate(run.model, "meta").items()}}


def _fmt(values: list[float], digits: int = 3) -> str:
    ok = [v for v in values if v is not None and math.isfinite(v)]
    if not ok:
        return "diverged"
    std = statistics.stdev(ok) if len(ok) > 1 else 0.0
    text = f"{statistics.fmean(ok):.{digits}f} ± {std:.{digits}f}"
    return text if len(ok) == len(values) else f"{text} ({len(ok)}/{len(values)})"


def _value(rec: RunRecord, key: str, pick: str = "final") -> float:
    if rec.status != "complete" or not rec.history:
        return math.nan
    values = [h[key] for h in rec.history]
    return values[-1] if pick == "final" else min(values)


def report() -> None:
    cfg = _config()
    recs = {(p, m, s): rec for p in POLICIES for m in GRID for s in SEEDS
            if (rec := _record(p, m, s)) is not None}
    lr0 = cfg.optimizer.lr
    base = _base_scores()
    lines = [
        "# LLM fine-tuning: LR policies at CPU scale (LRBench++ setting)", "",
        f"Produced by `{COMMAND}` (records in `runs/llm_finetune/`, not committed); "
        f"torch {torch.__version__}, Python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d')}.", "",
        "Setting: task `gpt_finetune_stdlib` (conf/task/gpt_finetune_stdlib.yaml): the shipped tiny GPT-2 "
        "(byte vocabulary, 2 layers, width 128, 446k parameters), pretrained on CPython's documentation with "
        f"AdamW at LR {lr0:g} (experiments/llm_pretrain_base.py), fully fine-tuned with AdamW (weight decay 0, "
        f"gradient norm clipped at 1, batch {cfg.batch_size} x {cfg.task.block_size} bytes) on "
        f"{cfg.task.train_chars} bytes of standard-library source for {EPOCHS} epochs "
        f"({_steps(cfg)} steps; meta, test and held-out documentation texts of {cfg.task.eval_chars} bytes "
        f"each). LR = multiplier x the pretraining LR {lr0:g}; seeds {SEEDS} (seed = data order "
        "and, for LoRA, the adapter init; the split is fixed). Perplexity is per byte. "
        "`mlrsnet_frozen` is the shipped MLR-SNet (meta-trained on digits with SGD) transferred frozen to "
        "AdamW on a transformer: a new axis for it, its output scaled so that the LR multiplier x 2e-3 "
        "is the largest LR it can emit. `greedy_eval` steps GreedyLR on the meta-validation loss 4 times per "
        "epoch; `adamw_schedulefree` replaces AdamW (no schedule).", "",
        f"Before fine-tuning, the base scores test perplexity {base['test_perplexity']:.3f} (accuracy "
        f"{base['test_accuracy']:.3f}) on stdlib source and {base['test_pretrain_perplexity']:.3f} on held-out "
        "documentation (the pretraining domain).", "",
        "## Policy x LR: final and best test perplexity (mean ± std over 3 seeds)", "",
        "| policy | " + " | ".join(f"×{m:g} ({m * lr0:.0e}) final / best" for m in GRID) + " |",
        "|---|" + "---|" * len(GRID),
    ]
    for p in POLICIES:
        cells = []
        for m in GRID:
            rs = [recs[(p, m, s)] for s in SEEDS if (p, m, s) in recs]
            if not rs:
                cells.append("—")
                continue
            cells.append(f"{_fmt([_value(r, 'test_perplexity') for r in rs])} / "
                         f"{_fmt([_value(r, 'test_perplexity', 'best') for r in rs])}")
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    lines += ["", "## Forgetting: final perplexity on held-out documentation (pretraining domain), mean ± std", "",
              f"Base model before fine-tuning: {base['test_pretrain_perplexity']:.3f}.", "",
              "| policy | " + " | ".join(f"×{m:g}" for m in GRID) + " |", "|---|" + "---|" * len(GRID)]
    for p in POLICIES:
        cells = [_fmt([_value(recs[(p, m, s)], "test_pretrain_perplexity") for s in SEEDS if (p, m, s) in recs])
                 if any((p, m, s) in recs for s in SEEDS) else "—" for m in GRID]
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    # Tuned on the meta split (seed 0's final meta perplexity), as the bench does.
    tuned = {}
    for p in POLICIES:
        scores = {m: _value(recs[(p, m, 0)], "meta_perplexity") for m in GRID if (p, m, 0) in recs}
        finite = {m: v for m, v in scores.items() if math.isfinite(v)}
        if finite:
            tuned[p] = min(finite, key=lambda m: (finite[m], abs(math.log(m))))
    lines += ["", "## Tuned on the meta split (bench protocol)", "",
              "Each policy's multiplier is the one with the lowest final meta-validation perplexity of seed 0; "
              "test numbers are mean ± std over the 3 seeds at that multiplier. (edge): chosen at an end of the "
              "grid.", "",
              "| policy | LR × | final test ppl | best test ppl | final test accuracy | final doc ppl (forgetting) |",
              "|---|---|---|---|---|---|"]
    rows = []
    for p, m in tuned.items():
        rs = [recs[(p, m, s)] for s in SEEDS if (p, m, s) in recs]
        final = [_value(r, "test_perplexity") for r in rs]
        rows.append((statistics.fmean([v for v in final if math.isfinite(v)] or [math.inf]), p))
        edge = " (edge)" if m in (GRID[0], GRID[-1]) else ""
        best = _fmt([_value(r, "test_perplexity", "best") for r in rs])
        lines.append(f"| {p} | {m:g}{edge} | {_fmt(final)} | {best} "
                     f"| {_fmt([_value(r, 'test_accuracy') for r in rs], 4)} "
                     f"| {_fmt([_value(r, 'test_pretrain_perplexity') for r in rs])} |")
    ranked = [p for _, p in sorted(rows)]
    if "mlrsnet_frozen" in ranked:
        pos = ranked.index("mlrsnet_frozen") + 1
        best = ranked[0]
        verdict = ("MLR-SNet (frozen, transferred) has the lowest tuned final test perplexity." if pos == 1 else
                   f"MLR-SNet (frozen, transferred) ranks {pos} of {len(ranked)} by tuned final test perplexity: "
                   f"it loses to {', '.join(ranked[:pos - 1])} (best: {best}).")
        lines += ["", f"**{verdict}**"]
    lines += ["", "## Per-epoch curves (tuned multiplier, mean over seeds)", "", f"![curves]({FIG.name})", "",
              "| policy | " + " | ".join(f"epoch {e} test ppl / doc ppl / acc" for e in range(1, EPOCHS + 1)) + " |",
              "|---|" + "---|" * EPOCHS]
    curves = {}
    for p, m in tuned.items():
        rs = [recs[(p, m, s)] for s in SEEDS if (p, m, s) in recs and recs[(p, m, s)].status == "complete"]
        if not rs:
            continue
        per_epoch = [[statistics.fmean(r.history[e][k] for r in rs)
                      for k in ("test_perplexity", "test_pretrain_perplexity", "test_accuracy")]
                     for e in range(EPOCHS)]
        curves[p] = per_epoch
        lines.append(f"| {p} (×{m:g}) | " + " | ".join(f"{a:.3f} / {b:.3f} / {c:.3f}" for a, b, c in per_epoch) + " |")
    _plot(curves, base)
    lines += ["", "## LR actually used (seed 0, tuned multiplier)", "",
              "| policy | min in epoch 1 | max | last |", "|---|---|---|---|"]
    for p, m in tuned.items():
        h = recs[(p, m, 0)].history
        if h:
            lines.append(f"| {p} | {h[0]['lr_min']:.2e} | "
                         f"{max(x['lr_max'] for x in h):.2e} | {h[-1]['lr_last']:.2e} |")
    atomic_write_text(DOC, "\n".join(lines) + "\n")
    results_csv()
    print("\n".join(lines))


def _steps(cfg: BenchConfig) -> int:
    return EPOCHS * build_run(cfg, schedule="fixed", seed=0).task.steps_per_epoch


def _plot(curves: dict, base: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    keys = ["test perplexity (stdlib source)", "held-out doc perplexity (forgetting)", "test next-token accuracy"]
    base_vals = [base["test_perplexity"], base["test_pretrain_perplexity"], base["test_accuracy"]]
    for p, per_epoch in curves.items():
        for i, ax in enumerate(axes):
            ax.plot(range(EPOCHS + 1), [base_vals[i]] + [row[i] for row in per_epoch], marker="o", label=p)
    for ax, k in zip(axes, keys, strict=True):
        ax.set_xlabel("epoch")
        ax.set_title(k)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(FIG, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--report", action="store_true", help="only write the report from existing records")
    parser.add_argument("--results", action="store_true", help=f"only write {RESULTS} from existing records")
    args = parser.parse_args()
    if args.results:
        results_csv()
        return
    torch.set_num_threads(1)
    if not args.report:
        run_all(args.policies.split(","))
    if args.report or args.policies == ",".join(POLICIES):
        report()


if __name__ == "__main__":
    main()
