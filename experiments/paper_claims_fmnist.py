"""The MLR-SNet paper's claims on Fashion-MNIST (issue 29): meta-train stage (6a), transfer (6b), verdicts (6c).

    python experiments/paper_claims_fmnist.py --plan                     # what every part costs; runs nothing
    python experiments/paper_claims_fmnist.py --part 6a-sym --seeds 0,1,2
    python experiments/paper_claims_fmnist.py --part bundle              # the Fashion-MNIST bundle of 6b
    python experiments/paper_claims_fmnist.py --part 6b --seeds 0,1,2 --only standard
    python experiments/paper_claims_fmnist.py --tables                   # README.md from what has finished

Needs Fashion-MNIST (``apt-get install dataset-fashion-mnist``). Every run is a run directory under
``experiments/paper_claims_fmnist/runs/`` made by :func:`mlrsnet.bench.train_run` (or :func:`mlrsnet.train.meta_train`
for the bundle): a finished run with the same fingerprint is reused, a run cut short (SIGTERM, Ctrl-C, SIGKILL)
resumes from its last save, so the same command continues a part and extends it to more seeds. Parts may run in
parallel processes (``--part`` / ``--seeds`` / ``--only`` split the work); a directory in use by another process is
refused, never shared. Every run uses one torch thread (``threads=1``: the numbers do not depend on the thread
count, and two runs share the 2 cores).

**Scale.** The study trains ``fmnist_cnn`` on a 5,000-image class-balanced subset for 15 epochs (``SCALE``), a
quarter of the task's own CPU-scale default (10,000 images, 30 epochs), so that 5 seeds of every row fit a 2-core
machine; the meta set (1,000 images) and the test set (10,000) are the task's. The 6b bundle is meta-trained by the
task's own command at its defaults.

**6a** (the paper's Fig. 3 analogue). Clean, 40% symmetric and 40% pair-flip label noise. MLR-SNet meta-trained in
place (the train command's defaults: SGD momentum 0, gamma from the formula, a meta step every iteration; untuned)
against SGDM (momentum 0.9) with Fixed, MultiStep, Exponential, Cosine and SGDR, SGD-HD (momentum 0.9) and Adam (a
fixed LR). Every baseline's LR multiplier is tuned on the meta split (seed 0, full-length runs, the meta-split
accuracy at the end; the test split is never read for a choice) over ``GRID``, widened along ``LADDER`` while the
choice sits at an end (at most ``MAX_WIDEN`` steps per end; a choice still at an end is marked).

**6b** (transfer, the Figs. 8-10 analogue). Frozen bundles under ``schedule=mlrsnet_frozen`` (the reference
meta-test: nets swapped at 1/3 and 2/3, gamma recomputed from the full training loss, SGD momentum 0): the
Fashion-MNIST bundle (``bundle`` part), the shipped ``digits_cnn_sym40`` and the authors' ``paper_cifar10_resnet18``
(read with their meta-test cell, ``reading=auto``). Queries (``QUERIES``): epochs (a third and 3x), architecture
(MLP, ResNet), data size (25%, 50%), modality (the text LM) and dataset shift (digits). Baselines at their standard
settings (the query's LR; SGDM 0.9 unless the task sets the momentum) and tuned on the meta split as in 6a. The
query ``fmnist_cnn`` is 6a's clean setting, so its tuned baselines are 6a clean's runs (``SAME_AS_6A``).

**6c**. Every MLR-SNet row against every baseline of its setting: paired over seeds, the mean difference with a
95% t-interval, **win** when the interval lies above 0, **loss** when below, **tie** otherwise (no correction for
the number of rows).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.chdir(ROOT)  # run directories and checkpoint paths are relative to the repository, in every fingerprint

from mlrsnet.bench import train_run  # noqa: E402
from mlrsnet.engine.cli import compose  # noqa: E402
from mlrsnet.engine.config import BenchConfig, parse_config  # noqa: E402
from mlrsnet.engine.resume import StopSignals  # noqa: E402
from mlrsnet.engine.runner import RunRecord, read_record  # noqa: E402
from mlrsnet.errors import RunInterrupted  # noqa: E402
from mlrsnet.io import atomic_write_json, atomic_write_text  # noqa: E402

sys.path.insert(0, str(ROOT / "experiments"))
from _results import collect, write_results  # noqa: E402

OUT = Path("experiments/paper_claims_fmnist")
RUNS = OUT / "runs"
SEEDS = [0, 1, 2, 3, 4]
COMMON = ["threads=1", "progress=false", "target_metric=null"]
SCALE = ["task.train_size=5000", "epochs=15"]
GRID = [0.1, 0.3, 1.0, 3.0]
LADDER = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0]
MAX_WIDEN = 3

SETTINGS_6A = {
    "sym": ["+task=fmnist_cnn", "task.noise.kind=sym", "task.noise.rate=0.4"],
    "pair": ["+task=fmnist_cnn", "task.noise.kind=pair", "task.noise.rate=0.4"],
    "clean": ["+task=fmnist_cnn"],
}
# name -> (schedule, overrides): every baseline of the issue; Adam is SGDM's "fixed" schedule on Adam at lr 1e-3
BASELINES = {
    "fixed": ("fixed", []), "multistep": ("multistep", []), "exponential": ("exponential", []),
    "cosine": ("cosine", []), "sgdr": ("sgdr", []), "sgd_hd": ("sgd_hd", []),
    "adam": ("fixed", ["optimizer.name=adam", "optimizer.lr=0.001"]),
}
SCHEDULE_LABELS = {"fixed": "Fixed", "multistep": "MultiStep", "exponential": "Exponential", "cosine": "Cosine",
                   "sgdr": "SGDR"}

BUNDLE_COMMAND = ["+task=fmnist_cnn", "task.noise.kind=sym", "task.noise.rate=0.4", "seed=0", "threads=1",
                  "progress=false"]
BUNDLE_DIR = RUNS / "bundle" / "fmnist_cnn_sym40"
BUNDLES = {  # name -> (label, checkpoint)
    "fmnist": ("MLR-SNet (Fashion-MNIST bundle)", f"{BUNDLE_DIR}/mlrsnet_bundle.pt"),
    "digits": ("MLR-SNet (digits_cnn_sym40, the shipped default)", "digits_cnn_sym40"),
    "paper": ("MLR-SNet (authors' CIFAR-10 bundle)", "paper_cifar10_resnet18"),
}
FM = ["+task=fmnist_cnn", "task.train_size=5000"]
# query -> (axis, overrides): the study's fmnist_cnn (5,000 images, 15 epochs) changed along one axis
QUERIES = {
    "fmnist_cnn": ("none (the study's task, clean)", [*FM, "epochs=15"]),
    "fmnist_cnn_epochs5": ("epochs: a third", [*FM, "epochs=5"]),
    "fmnist_cnn_epochs45": ("epochs: 3x", [*FM, "epochs=45"]),
    "fmnist_mlp": ("architecture: MLP", ["+task=fmnist_mlp", "task.train_size=5000", "epochs=15"]),
    "fmnist_resnet": ("architecture: ResNet", ["+task=fmnist_resnet", "task.train_size=5000", "epochs=15"]),
    "fmnist_cnn_data25": ("data size: 25%", [*FM, "epochs=15", "task.train_fraction=0.25"]),
    "fmnist_cnn_data50": ("data size: 50%", [*FM, "epochs=15", "task.train_fraction=0.5"]),
    "text_lstm": ("modality: text LM", ["+task=text_lstm_cpython"]),
    "digits_cnn": ("dataset shift: digits", ["+task=digits_cnn"]),
}
STANDARD_6B = ["multistep", "cosine", "exponential", "adam"]
TUNED_6B = ["multistep", "cosine", "exponential", "adam"]
# a query that is a 6a setting (the same overrides, the same tuning protocol): its tuned baselines are that setting's
# runs, tuned once and shared, not a second copy of the same runs (the standard multistep and adam runs of 6b's
# fmnist_cnn and 6a clean's have the same final test accuracy on every seed)
SAME_AS_6A = {"fmnist_cnn": "clean"}


def folder(query: str, kind: str) -> Path:
    """The run folder of a 6b row: ``runs/6b/<query>/<kind>``, or the 6a setting's for a tuned baseline of a query
    in ``SAME_AS_6A``."""
    if kind.endswith("_tuned") and query in SAME_AS_6A:
        return RUNS / "6a" / SAME_AS_6A[query] / kind.removesuffix("_tuned")
    return RUNS / "6b" / query / kind


def bench_config(overrides: list[str], log_steps: bool = False) -> BenchConfig:
    """The bench command's typed config; the per-step lines of metrics.jsonl only where the LR curve is the point
    (MLR-SNet meta-trained in place): ``log_steps`` is neutral, it changes no number and no fingerprint."""
    cfg = parse_config(compose("bench", [*overrides, *COMMON, f"log_steps={str(log_steps).lower()}"]), "bench")
    assert isinstance(cfg, BenchConfig)
    return cfg


def _slim(rec: RunRecord) -> RunRecord:
    """The per-example probabilities (``probs.npz``, ~0.2 MB a run on the 10,000 test images) are not used by the
    study and would make the committed runs ~100 MB: removed once the run has finished."""
    Path(rec.run_dir, "probs.npz").unlink(missing_ok=True)
    return rec


def run(cfg: BenchConfig, schedule: str, seed: int, m: float, run_dir: Path, stop: StopSignals,
        eval_splits: tuple[str, ...] = ("test", "meta")) -> RunRecord:
    rec = _slim(train_run(cfg, schedule, seed, m, run_dir, stop, epochs=cfg.epochs, eval_splits=eval_splits))
    shown = rec.history[-1].get(f"test_{rec.metric}", math.nan) if rec.history else math.nan
    print(f"[{run_dir}] {rec.status}: test {rec.metric} {shown:.4f}, {rec.wall_time_s:.0f} s", flush=True)
    return rec


def tune_once(cfg: BenchConfig, schedule: str, grid: list[float], out_dir: Path, stop: StopSignals) -> dict:
    """The bench's tuning protocol (:mod:`mlrsnet.bench`: a run of seed ``tune_seed`` per multiplier, scored by the
    meta-split metric at its end; the best wins, ties to the multiplier closest to 1, a diverged run scores worst),
    on the bench's own run directories (``out_dir/tuning/<schedule>/x<m>``), one run at a time."""
    candidates, sign = [], 1.0
    for m in grid:
        rec = _slim(train_run(cfg, schedule, cfg.tune_seed, m, out_dir / "tuning" / schedule / f"x{m:g}", stop,
                              epochs=cfg.tune_epochs or cfg.epochs, eval_splits=("meta",)))
        score = rec.final_meta if rec.status == "complete" else None
        sign = 1.0 if rec.higher_is_better else -1.0
        candidates.append({"lr_multiplier": m, "status": rec.status,
                           "score": score if score is not None and math.isfinite(score) else None})
    finite = [c for c in candidates if c["score"] is not None]
    chosen = (max(finite, key=lambda c: (sign * c["score"], -abs(math.log(c["lr_multiplier"]))))["lr_multiplier"]
              if finite else grid[0])
    print(f"[tune {out_dir}] " + ", ".join(f"x{c['lr_multiplier']:g}: {c['score']}" for c in candidates)
          + f" -> x{chosen:g}", flush=True)
    return {"schedule": schedule, "chosen": chosen, "candidates": candidates}


def tune(cfg: BenchConfig, schedule: str, out_dir: Path, stop: StopSignals) -> dict:
    """``schedule``'s LR multiplier, chosen on the meta split over ``GRID`` widened along ``LADDER`` while the choice
    sits at an end of the grid (up to ``MAX_WIDEN`` steps each way). Writes ``out_dir/tuning.json``."""
    grid = list(GRID)
    widened = {"low": 0, "high": 0}
    while True:
        result = tune_once(cfg, schedule, grid, out_dir, stop)
        chosen = result["chosen"]
        i = LADDER.index(chosen)
        if chosen == grid[0] and widened["low"] < MAX_WIDEN and i > 0:
            grid.insert(0, LADDER[i - 1])
            widened["low"] += 1
        elif chosen == grid[-1] and widened["high"] < MAX_WIDEN and i + 1 < len(LADDER):
            grid.append(LADDER[i + 1])
            widened["high"] += 1
        else:
            break
    result.update(grid=grid, edge=chosen in (grid[0], grid[-1]))
    atomic_write_json(out_dir / "tuning.json", result)
    return result


# ---------------------------------------------------------------- 6a
def part_6a(setting: str, seeds: list[int], only: list[str] | None) -> None:
    root = RUNS / "6a" / setting
    with StopSignals() as stop:
        if only is None or "mlrsnet" in only:
            cfg = bench_config([*SETTINGS_6A[setting], *SCALE], log_steps=True)
            for seed in seeds:
                run(cfg, "mlrsnet", seed, 1.0, root / "mlrsnet" / f"seed{seed}", stop)
        for name, (schedule, extra) in BASELINES.items():
            if only is not None and name not in only:
                continue
            cfg = bench_config([*SETTINGS_6A[setting], *SCALE, *extra])
            m = tune(cfg, schedule, root / name, stop)["chosen"]
            for seed in seeds:
                run(cfg, schedule, seed, m, root / name / f"seed{seed}", stop)


# ---------------------------------------------------------------- 6b
def part_bundle() -> None:
    """The Fashion-MNIST bundle, by the train command at the task's defaults (10,000 images, 30 epochs):
    ``python -m mlrsnet.train +task=fmnist_cnn task.noise.kind=sym task.noise.rate=0.4 seed=0 threads=1``."""
    from mlrsnet.train import meta_train

    rec = read_record(BUNDLE_DIR)
    if rec is not None and rec.status == "complete" and (BUNDLE_DIR / "mlrsnet_bundle.pt").is_file():
        return
    meta_train(compose("train", BUNDLE_COMMAND), BUNDLE_DIR)


def part_6b(seeds: list[int], only: list[str] | None, queries: list[str]) -> None:
    """``only``: ``standard`` (the Fashion-MNIST and digits bundles, SGDM+MultiStep and SGDM+Cosine at the query's
    LR), ``more`` (the authors' bundle, SGDM+Exponential and Adam at their standard LRs), ``tuned`` (the baselines
    tuned on the meta split); all three by default, in that order."""
    groups = only or ["standard", "more", "tuned"]
    if not (BUNDLE_DIR / "mlrsnet_bundle.pt").is_file():
        raise SystemExit("6b needs the Fashion-MNIST bundle: run `python experiments/paper_claims_fmnist.py "
                         "--part bundle` first")
    with StopSignals() as stop:
        for group in groups:
            for query in queries:
                overrides = QUERIES[query][1]
                root = RUNS / "6b" / query
                bundles = {"standard": ["fmnist", "digits"], "more": ["paper"]}.get(group, [])
                for b in bundles:
                    cfg = bench_config([*overrides, f"+schedule_params.mlrsnet_frozen.checkpoint={BUNDLES[b][1]}"])
                    for seed in seeds:
                        run(cfg, "mlrsnet_frozen", seed, 1.0, root / f"mlrsnet_{b}" / f"seed{seed}", stop,
                            ("test",))
                names = {"standard": STANDARD_6B[:2], "more": STANDARD_6B[2:], "tuned": TUNED_6B}[group]
                if group == "tuned" and query in SAME_AS_6A:
                    part_6a(SAME_AS_6A[query], seeds, names)
                    continue
                for name in names:
                    schedule, extra = BASELINES[name]
                    cfg = bench_config([*overrides, *extra])
                    sub = name if group != "tuned" else f"{name}_tuned"
                    m = 1.0 if group != "tuned" else tune(cfg, schedule, folder(query, sub), stop)["chosen"]
                    for seed in seeds:
                        run(cfg, schedule, seed, m, folder(query, sub) / f"seed{seed}", stop, ("test",))


# ---------------------------------------------------------------- plan
def plan() -> None:
    """The cost of every part at the rates measured here (benchmarks/RESULTS.md, Fashion-MNIST section): one run
    per process at threads=1 under a load of 2-3."""
    plain, meta = 6.3 / 2, 13.6 / 2  # s per epoch at 5,000 images (half the 10,000-image default's)
    runs_6a = {"mlrsnet": len(SEEDS) * 15 * meta}
    tuning = len(BASELINES) * (len(GRID) + 1) * 15 * plain * 0.85  # + one widening; meta split only
    runs_6a["baselines"] = len(BASELINES) * len(SEEDS) * 15 * plain
    per_setting = runs_6a["mlrsnet"] + tuning + runs_6a["baselines"]
    print(f"6a, one setting, {len(SEEDS)} seeds: MLR-SNet {runs_6a['mlrsnet'] / 60:.0f} min, tuning "
          f"{tuning / 60:.0f} min, baselines {runs_6a['baselines'] / 60:.0f} min: {per_setting / 3600:.1f} h; "
          f"3 settings {3 * per_setting / 3600:.1f} h (3 seeds: about 65%)")
    print(f"bundle: 30 epochs x {2 * meta:.0f} s = {30 * 2 * meta / 60:.0f} min")
    epochs = {"fmnist_cnn": 15, "fmnist_cnn_epochs5": 5, "fmnist_cnn_epochs45": 45, "fmnist_mlp": 15 * 0.05,
              "fmnist_resnet": 15 * 1.3, "fmnist_cnn_data25": 15 * 0.35, "fmnist_cnn_data50": 15 * 0.6,
              "text_lstm": 4 * 3.5 / plain, "digits_cnn": 30 * 0.23 / plain}
    per_seed = sum(epochs.values()) * plain
    print(f"6b, per seed and run kind (all {len(QUERIES)} queries): {per_seed / 60:.0f} min; standard (4 kinds) "
          f"x {len(SEEDS)} seeds {4 * per_seed * len(SEEDS) / 3600:.1f} h; more (3 kinds) "
          f"{3 * per_seed * len(SEEDS) / 3600:.1f} h; tuned (4 baselines: ~5 tuning runs + {len(SEEDS)} seeds) "
          f"{4 * (5 + len(SEEDS)) * per_seed / 3600:.1f} h")


# ---------------------------------------------------------------- tables
def _final(rec: RunRecord | None) -> float | None:
    if rec is None or rec.status != "complete" or not rec.history:
        return None
    return rec.history[-1].get(f"test_{rec.metric}")


def _records(folder: Path) -> dict[int, RunRecord]:
    out = {}
    for seed in SEEDS:
        rec = read_record(folder / f"seed{seed}")
        if rec is not None and rec.status in ("complete", "diverged"):
            out[seed] = rec
    return out


def label(name: str, rec: RunRecord | None) -> str:
    """An honest label from what the run recorded: ``SGDM+X`` only where the optimiser had momentum."""
    schedule, extra = BASELINES.get(name.removesuffix("_tuned"), (name, []))
    optimizer = (rec.info.get("optimizer", "") if rec else "") or ""
    if extra:
        base = "Adam"
    elif schedule == "sgd_hd":
        base = "SGD-HD" + (" (momentum 0.9)" if "momentum=0.9" in optimizer else "")
    else:
        sgd = "SGDM" if "momentum=0.9" in optimizer else "SGD" if optimizer else "SGD(M)"
        base = f"{sgd}+{SCHEDULE_LABELS.get(schedule, schedule)}"
    return base + (", tuned" if name.endswith("_tuned") else "")


def paired(ours: dict[int, float], theirs: dict[int, float]) -> dict | None:
    """Paired over the seeds both have: mean difference, 95% t-interval, two-sided p, verdict (rule: module doc)."""
    from scipy import stats

    seeds = sorted(set(ours) & set(theirs))
    if len(seeds) < 2:
        return None
    d = [ours[s] - theirs[s] for s in seeds]
    mean = statistics.fmean(d)
    sd = statistics.stdev(d)
    if sd == 0:
        low = high = mean
        p = 1.0 if mean == 0 else 0.0
    else:
        half = stats.t.ppf(0.975, len(d) - 1) * sd / math.sqrt(len(d))
        low, high = mean - half, mean + half
        p = float(stats.ttest_rel([ours[s] for s in seeds], [theirs[s] for s in seeds]).pvalue)
    verdict = "win" if low > 0 else "LOSS" if high < 0 else "tie"
    return {"n": len(seeds), "mean": mean, "low": low, "high": high, "p": p, "verdict": verdict}


def _ms(values: list[float], scale: float) -> str:
    if not values:
        return "—"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{scale * statistics.fmean(values):.2f} ± {scale * sd:.2f} (n={len(values)})"


def _verdict(row: dict) -> str:
    """win / tie / LOSS from MLR-SNet's side (for perplexity, lower is better)."""
    v = row["v"]["verdict"]
    return v if row["higher"] else {"win": "LOSS", "LOSS": "win"}.get(v, "tie")


def _row(row: dict) -> str:
    v, scale, sign = row["v"], row["scale"], 1 if row["higher"] else -1  # perplexity: positive = MLR-SNet better
    low, high = sorted((sign * scale * v["low"], sign * scale * v["high"]))
    return (f"| {row['where']} | {row['ours']} | {row['baseline']} | {sign * scale * v['mean']:+.2f} [{low:+.2f}, "
            f"{high:+.2f}] | {v['p']:.3f} | {v['n']} | **{_verdict(row)}** |")


def table_6a() -> tuple[list[str], list[dict]]:
    lines = ["## 6a. Meta-train stage: MLR-SNet meta-trained in place against tuned baselines", "",
             f"`fmnist_cnn` at the study's scale ({' '.join(SCALE)}), meta set 1,000 images, test set 10,000. "
             "Final test accuracy, mean ± std over the seeds finished (n). Each baseline's LR multiplier was tuned on "
             "the meta split (seed 0); the grid and the scores are in each baseline's `tuning.json`; **(edge)**: the "
             "choice stayed at an end of the widened grid.", ""]
    verdicts = []
    for setting in SETTINGS_6A:
        root = RUNS / "6a" / setting
        ml = _records(root / "mlrsnet")
        if not ml:
            lines += [f"### {setting}: not run", ""]
            continue
        lines += [f"### {setting} (`{' '.join(SETTINGS_6A[setting])}`)", "",
                  "| schedule | optimizer | LR multiplier (grid) | final test accuracy | final meta accuracy | "
                  "last-epoch mean LR |", "|---|---|---|---|---|---|"]
        ours = {s: _final(r) for s, r in ml.items() if _final(r) is not None}
        rows = [("MLR-SNet (meta-trained in place)", ml, "— (untuned)")]
        for name in BASELINES:
            recs = _records(root / name)
            tuning = root / name / "tuning.json"
            if tuning.is_file():
                t = json.loads(tuning.read_text())
                grid = ", ".join(f"{m:g}" for m in t["grid"])
                tuned = f"x{t['chosen']:g}{' **(edge)**' if t['edge'] else ''} ({grid})"
            else:
                tuned = "not tuned yet"
            if recs or tuning.is_file():
                rows.append((label(name, next(iter(recs.values()), None)), recs, tuned))
        for text, recs, tuned in rows:
            finals = [f for f in (_final(r) for r in recs.values()) if f is not None]
            metas = [r.history[-1]["meta_accuracy"] for r in recs.values() if r.history]
            lrs = [r.history[-1]["lr_mean"] for r in recs.values() if r.history]
            optimizer = next(iter(recs.values())).info.get("optimizer", "") if recs else ""
            lines.append(f"| {text} | {optimizer} | {tuned} | {_ms(finals, 100)} | {_ms(metas, 100)} | "
                         f"{statistics.fmean(lrs) if lrs else math.nan:.3g} |")
            if text.startswith("MLR-SNet") or not recs:
                continue
            v = paired(ours, {s: _final(r) for s, r in recs.items() if _final(r) is not None})
            if v:
                verdicts.append({"where": f"6a {setting}", "group": f"6a {setting}", "ours": "MLR-SNet (in place)",
                                 "baseline": text, "v": v, "scale": 100.0, "higher": True})
        lines += ["", f"![6a {setting}](fig_6a_{setting}.png)", ""]
        figure_6a(setting, rows)
    return lines, verdicts


def figure_6a(setting: str, rows: list[tuple[str, dict[int, RunRecord], str]]) -> None:
    """Test accuracy and the epoch's mean LR against the epoch, mean over the finished seeds of each row."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 3.8))
    axes = fig.subplots(1, 2)
    for text, recs, _ in rows:
        hs = [r.history for r in recs.values() if r.status == "complete" and r.history]
        if not hs:
            continue
        n = min(len(h) for h in hs)
        xs = range(1, n + 1)
        bold = 2.2 if text.startswith("MLR-SNet") else 1.2
        for ax, key in zip(axes, ("test_accuracy", "lr_mean"), strict=True):
            ax.plot(xs, [statistics.fmean(h[i][key] for h in hs) for i in range(n)], label=text, lw=bold)
    for ax, title in zip(axes, ("test accuracy", "LR (epoch mean)"), strict=True):
        ax.set_xlabel("epoch")
        ax.set_title(title)
    axes[0].set_ylabel("test accuracy")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("learning rate (log scale)")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))  # outside the axes: it covers no data
    fig.suptitle(f"6a {setting}: {' '.join(SETTINGS_6A[setting][1:]) or 'clean'} {' '.join(SCALE)}; mean over the "
                 "finished seeds", fontsize=9)
    fig.tight_layout()
    fig.savefig(OUT / f"fig_6a_{setting}.png", dpi=100)


def table_6b() -> tuple[list[str], list[dict]]:
    lines = ["## 6b. Transfer: frozen bundles on queries they never saw", "",
             "Queries (the study's `fmnist_cnn`: 5,000 images, 15 epochs, clean, changed along one axis): "
             + "; ".join(f"`{q}`: {a} (`{' '.join(o)}`)" for q, (a, o) in QUERIES.items()) + ". The bundle "
             f"meta-trained here: `python -m mlrsnet.train {' '.join(BUNDLE_COMMAND)}` (the task's defaults: 10,000 "
             "images, 30 epochs; nets after epochs 1, 15, 30). Final test metric, mean ± std (n seeds).", ""]
    kinds = [*(f"mlrsnet_{b}" for b in BUNDLES), *STANDARD_6B, *(f"{n}_tuned" for n in TUNED_6B)]
    verdicts = []
    header = ["query", "axis"]
    table = []
    for query, (axis, _) in QUERIES.items():
        recs = {k: _records(folder(query, k)) for k in kinds}
        if not any(recs.values()):
            continue
        higher = not query.startswith("text")
        scale = 100.0 if higher else 1.0
        finals = {k: {s: f for s, r in v.items() if (f := _final(r)) is not None} for k, v in recs.items()}
        table.append((query, axis, finals, scale, recs))
        for b in BUNDLES:
            ours = finals[f"mlrsnet_{b}"]
            if not ours:
                continue
            for k in [*STANDARD_6B, *(f"{n}_tuned" for n in TUNED_6B)]:
                v = paired(ours, finals[k])
                if v:
                    kind = "tuned" if k.endswith("_tuned") else "standard"
                    verdicts.append({"where": f"6b {query}", "group": f"6b {BUNDLES[b][0]} vs {kind} baselines",
                                     "ours": BUNDLES[b][0], "baseline": label(k, next(iter(recs[k].values()), None)),
                                     "v": v, "scale": scale, "higher": higher})
    if not table:
        return [*lines, "Not run yet.", ""], verdicts
    names = {k: BUNDLES[k.removeprefix("mlrsnet_")][0] if k.startswith("mlrsnet_") else label(k, None)
             for k in kinds}
    # the optimiser a baseline ran with, from its runs on every query: one label when they agree; "SGD(M)" and a
    # note naming the queries without momentum when they do not (the text LM's task sets momentum 0)
    plain: dict[str, list[str]] = {}
    for k in kinds:
        if k.startswith("mlrsnet_"):
            continue
        seen = {q: label(k, next(iter(recs[k].values()))) for q, _, _, _, recs in table if recs[k]}
        if len(set(seen.values())) == 1:
            names[k] = next(iter(seen.values()))
        elif seen:
            plain[names[k]] = [q for q, lab in seen.items() if lab.startswith("SGD+")]
    header += [names[k] for k in kinds]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for query, axis, finals, scale, _ in table:
        lines.append(f"| {query} | {axis} | " + " | ".join(_ms(list(finals[k].values()), scale) for k in kinds) + " |")
    lines += ["", "Accuracy in %, the text LM's test perplexity as is (lower is better)."
              + "".join(f" {n}: SGD without momentum on {', '.join(qs)} (the task's setting), SGDM (0.9) elsewhere."
                        for n, qs in plain.items() if qs), ""]
    tuned = []
    for query in QUERIES:
        for n in TUNED_6B:
            f = folder(query, f"{n}_tuned") / "tuning.json"
            if f.is_file():
                t = json.loads(f.read_text())
                tuned.append(f"{query}/{n}: x{t['chosen']:g}{' (edge)' if t['edge'] else ''}")
    if tuned:
        lines += ["Tuned multipliers (meta split, seed 0): " + "; ".join(tuned) + ".", ""]
    lines += bundle_against_bundle(table)
    return lines, verdicts


def bundle_against_bundle(table: list) -> list[str]:
    """Which bundle transfers better: each pair of bundles (the Fashion-MNIST bundle against the others, and the
    authors' against the shipped default), paired over seeds, per query (the question of whether one should replace
    the default, ``digits_cnn_sym40``)."""
    rows = []
    for ours, other in (("fmnist", "digits"), ("fmnist", "paper"), ("paper", "digits")):
        for query, _, finals, scale, _ in table:
            higher = not query.startswith("text")
            v = paired(finals[f"mlrsnet_{ours}"], finals[f"mlrsnet_{other}"])
            if v:
                rows.append(_row({"where": query, "ours": BUNDLES[ours][0], "baseline": BUNDLES[other][0], "v": v,
                                  "scale": scale, "higher": higher}))
    if not rows:
        return []
    return ["### The bundles against each other", "",
            "The same test as 6c, with the other bundle in the baseline's place (positive: the first bundle is "
            "better). The Fashion-MNIST bundle would become the default bundle only if it won against "
            "digits_cnn_sym40 on most queries and lost on none.", "",
            "| query | bundle | against | difference [95% interval] | p | n | verdict |",
            "|---|---|---|---|---|---|---|", *rows, ""]


def tables() -> None:
    a, va = table_6a()
    b, vb = table_6b()
    c = ["## 6c. Verdicts", "",
         "MLR-SNet minus the baseline, paired over the seeds both finished: the mean difference with its 95% "
         "t-interval (accuracy in points; for the text LM, the baseline's perplexity minus MLR-SNet's, so that "
         "positive is MLR-SNet's advantage everywhere), the two-sided paired t-test's p, the seeds. **win**: the "
         "interval lies above 0; **LOSS**: below 0; **tie**: it contains 0. No correction for the number of rows.",
         "", *summary(va + vb), "| where | MLR-SNet | baseline | difference [95% interval] | p | n | verdict |",
         "|---|---|---|---|---|---|---|", *map(_row, va + vb), ""]
    head = ["# The paper's claims on Fashion-MNIST", "",
            "Regenerate: `python experiments/paper_claims_fmnist.py --part NAME --seeds ...` per part (see the "
            "script's docstring and `--plan`), then `python experiments/paper_claims_fmnist.py --tables`. Data: "
            "Debian's `dataset-fashion-mnist`. CPU: the 2-core machine shared with other work, one torch thread "
            "per run. Scale: the study's `fmnist_cnn` trains on 5,000 of the 59,000 training images for 15 epochs "
            "(`SCALE`), so its accuracies are well below full-data Fashion-MNIST numbers (~91-93% for small CNNs).",
            "", *status_lines(), "", "## Summary: wins, ties and losses of MLR-SNet (rule and rows: 6c)", "",
            *summary(va + vb)]
    atomic_write_text(OUT / "README.md", "\n".join(head + a + b + c))
    print("\n".join(c))


def summary(rows: list[dict]) -> list[str]:
    """Per group (a 6a setting; a 6b bundle against the standard or the tuned baselines): wins, ties, losses."""
    groups: dict[str, list[str]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(_verdict(row))
    if not groups:
        return ["No verdict yet: no baseline has finished seeds paired with an MLR-SNet row.", ""]
    lines = ["| group | rows | win | tie | loss |", "|---|---|---|---|---|"]
    for group, verdicts in groups.items():
        lines.append(f"| {group} | {len(verdicts)} | {verdicts.count('win')} | {verdicts.count('tie')} | "
                     f"{verdicts.count('LOSS')} |")
    return [*lines, ""]


def status_lines() -> list[str]:
    """What has run, from the run directories: the README states exactly this."""
    lines = ["What ran (finished runs in `runs/`):", ""]
    for setting in SETTINGS_6A:
        root = RUNS / "6a" / setting
        parts = [f"{k} {len(_records(root / k))}" for k in ["mlrsnet", *BASELINES] if _records(root / k)]
        lines.append(f"- 6a {setting}: " + (", ".join(parts) + " seeds" if parts else "not run"))
    lines.append(f"- bundle: {'done' if (BUNDLE_DIR / 'mlrsnet_bundle.pt').is_file() else 'not run'}")
    for query in QUERIES:
        root = RUNS / "6b" / query
        kinds = sorted(d.name for d in root.iterdir() if d.is_dir()) if root.is_dir() else []
        parts = [f"{k} {len(_records(root / k))}" for k in kinds if _records(root / k)]
        shared = (f"; tuned baselines: 6a {SAME_AS_6A[query]}'s (the same runs)" if query in SAME_AS_6A else "")
        lines.append(f"- 6b {query}: " + (", ".join(parts) + " seeds" if parts else "not run") + shared)
    return lines


def results_csv() -> Path:
    """``results.csv``: one row per finished run under ``runs/`` (``experiments/_results.py``): the part (6a,
    bundle, 6b), the setting or query, the kind (a schedule of 6a, a bundle or baseline of 6b), the role (``seed``
    or ``tuning``: a tuning run's seed is ``tune_seed`` and its LR multiplier the candidate), and the run's
    columns. The tables of README.md are computed from the same run directories."""
    found = []
    for d in sorted(RUNS.glob("6a/*/*/seed*")):
        found.append(({"part": "6a", "setting": d.parts[-3], "kind": d.parts[-2], "role": "seed"}, d))
    for d in sorted(RUNS.glob("6a/*/*/tuning/*/x*")):
        found.append(({"part": "6a", "setting": d.parts[-5], "kind": d.parts[-4], "role": "tuning"}, d))
    found.append(({"part": "bundle", "setting": "fmnist_cnn_sym40", "kind": "mlrsnet", "role": "bundle"},
                  BUNDLE_DIR))
    for d in sorted(RUNS.glob("6b/*/*/seed*")):
        found.append(({"part": "6b", "setting": d.parts[-3], "kind": d.parts[-2], "role": "seed"}, d))
    for d in sorted(RUNS.glob("6b/*/*/tuning/*/x*")):
        found.append(({"part": "6b", "setting": d.parts[-5], "kind": d.parts[-4], "role": "tuning"}, d))
    return write_results(OUT / "results.csv", collect(found), ("part", "setting", "kind", "role"))


def main() -> int | None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parts = [f"6a-{s}" for s in SETTINGS_6A] + ["bundle", "6b"]
    ap.add_argument("--part", choices=parts, action="append")
    ap.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds (default: all five)")
    ap.add_argument("--only", help="6a: only these comma-separated names (mlrsnet and the baselines: "
                    f"{', '.join(BASELINES)}); 6b: standard, more, tuned")
    ap.add_argument("--queries", help=f"6b: only these comma-separated queries ({', '.join(QUERIES)})")
    ap.add_argument("--plan", action="store_true", help="print the cost of each part and exit")
    ap.add_argument("--tables", action="store_true", help="only write README.md and results.csv from the finished runs")
    args = ap.parse_args()
    if args.plan:
        plan()
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    only = args.only.split(",") if args.only else None
    try:
        for part in [] if args.tables else args.part or []:
            if part.startswith("6a-"):
                part_6a(part[3:], seeds, only)
            elif part == "bundle":
                part_bundle()
            else:
                part_6b(seeds, only, args.queries.split(",") if args.queries else list(QUERIES))
    except RunInterrupted as e:  # SIGTERM / Ctrl-C: the run in flight saved its state; the same command resumes
        print(f"error: {e}", file=sys.stderr)
        tables()
        results_csv()
        return e.exit_code
    tables()
    results_csv()


if __name__ == "__main__":
    sys.exit(main())
