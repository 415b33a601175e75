"""Does an MLR-SNet meta-trained over a family of tasks transfer better than one meta-trained on one task? (issue 34,
items 2-4)

    python experiments/family.py --plan                          # what every part costs; runs nothing
    python experiments/family.py --part bundle                   # the family bundle (+family=cpu4)
    python experiments/family.py --part queries --seeds 0,1,2,3,4 [--only family,fmnist,untuned,tuned] [--queries ...]
    python experiments/family.py --tables                        # README tables and results.csv from what has finished
    python experiments/family.py --tiny                          # smoke test of the whole pipeline at a tiny scale

**Bundles.** The family bundle is meta-trained by ``python -m mlrsnet.train +family=cpu4 seed=0 threads=1``
(conf/family/cpu4.yaml: the noisy Fashion-MNIST CNN, the digits MLP, the CPython character LM and synthetic NMF,
each to its own budget). It is compared with the single-task Fashion-MNIST bundle of
experiments/paper_claims_fmnist.py (``fmnist_cnn`` with 40% symmetric noise, ``runs/bundle/fmnist_cnn_sym40``;
made there by ``--part bundle`` if missing).

**Held-out queries** (``QUERIES``): none shares an architecture and a data set with a family member: the
Fashion-MNIST ResNet on 25% of the study's 5,000 images, the tiny-GPT fine-tune on standard-library source
(AdamW; the frozen net's scale is the AdamW LR, as the task file sets it), the spiking network on digits, and the
digits ResNet. Each query runs five ways per seed: both bundles under ``schedule=mlrsnet_frozen`` (the transfer
protocol's defaults: nets swapped at 1/3 and 2/3, gamma recomputed from the training loss; on the GPT query the
task's own fixed scale), its untuned baselines (``UNTUNED``, at the query's LR), and the same baselines tuned on the
meta split (experiments/paper_claims_fmnist.py's protocol: a grid of LR multipliers widened while the choice sits
at an end, seed 0, the meta-split metric; the test split is never read for a choice). The family bundle is compared
with every baseline row, untuned and tuned, rather than with a "best" one: picking the best by the test metric
would choose on the test split, and the seed runs evaluate no meta split to pick by.

**Tests.** The family bundle against each of the other three, paired over seeds: the mean difference of the final
test metric with a 95% t-interval (positive: the family bundle is better; for perplexity the sign is flipped),
**win** when the interval lies above 0, **loss** below, **tie** otherwise (no correction for the number of rows).

Every run is a run directory under ``experiments/family/runs/`` (``--tiny``: ``experiments/family/tiny/``), reused
when finished with the same fingerprint and resumed when cut short, so the same command continues and extends a
part. Every run uses one thread. The full study ran on 2026-12-06 in about 40 minutes of one core (``--plan``);
``--tiny`` runs the same code at a tiny scale (the tiny family, one epoch of small queries, two seeds,
a two-point tuning grid) in a few minutes, to check the pipeline, not the claim.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "experiments"))
from _results import collect, write_results  # noqa: E402
from paper_claims_fmnist import BASELINES, BUNDLE_DIR, bench_config, paired, run, tune, tune_once  # noqa: E402

from mlrsnet.engine.cli import compose  # noqa: E402
from mlrsnet.engine.resume import StopSignals  # noqa: E402
from mlrsnet.engine.runner import RunRecord, read_record  # noqa: E402
from mlrsnet.io import atomic_write_text  # noqa: E402

OUT = Path("experiments/family")
SEEDS = [0, 1, 2, 3, 4]
FAMILY = "cpu4"
FAMILY_COMMAND = [f"+family={FAMILY}", "seed=0", "threads=1", "progress=false"]
# query -> (why it is held out, overrides)
QUERIES = {
    "fmnist_resnet_data25": ("architecture (ResNet) and data size (25%)",
                             ["+task=fmnist_resnet", "task.train_size=5000", "epochs=15", "task.train_fraction=0.25"]),
    "gpt_finetune_stdlib": ("modality and optimiser: LLM fine-tuning with AdamW", ["+task=gpt_finetune_stdlib"]),
    "snn_digits": ("model class: a spiking network", ["+task=snn_digits"]),
    "digits_resnet": ("architecture: ResNet on digits", ["+task=digits_resnet"]),
}
# query -> baselines (bench schedule names, or BASELINES' names): the GPT query's are its task's warm-up schedules
UNTUNED = {q: ["multistep", "cosine", "adam"] for q in QUERIES}
UNTUNED["gpt_finetune_stdlib"] = ["warmup_constant", "warmup_linear", "warmup_cosine"]
# the tiny smoke test: the same pipeline on one-epoch queries, two seeds, a two-point tuning grid
TINY_QUERIES = {
    "fmnist_resnet_data25": ("tiny", ["+task=fmnist_resnet", "task.train_size=2000", "epochs=1", "batch_size=64",
                                      "task.train_fraction=0.25", "task.meta_size=100"]),
    "gpt_finetune_stdlib": ("tiny", ["+task=gpt_finetune_stdlib", "epochs=1", "task.train_chars=2000",
                                     "task.eval_chars=1000"]),
    "snn_digits": ("tiny", ["+task=snn_digits", "epochs=1", "task.train_fraction=0.3"]),
    "digits_resnet": ("tiny", ["+task=digits_resnet", "epochs=1", "task.train_fraction=0.3"]),
}
TINY_UNTUNED = {q: ["cosine", "adam"] for q in QUERIES}
TINY_UNTUNED["gpt_finetune_stdlib"] = ["warmup_constant", "warmup_cosine"]


class Study:
    """Where the study's runs live and at what scale (the full study, or ``--tiny``)."""

    def __init__(self, tiny: bool, root: Path | None = None) -> None:
        self.tiny = tiny
        self.root = root or (OUT / "tiny" if tiny else OUT)
        self.runs = self.root / "runs"
        self.queries = TINY_QUERIES if tiny else QUERIES
        self.untuned = TINY_UNTUNED if tiny else UNTUNED
        self.seeds = [0, 1] if tiny else SEEDS
        self.family_dir = self.runs / "bundle" / ("tiny" if tiny else FAMILY)
        self.family_command = (["+family=tiny", "seed=0", "threads=1", "progress=false"] if tiny else FAMILY_COMMAND)
        # the single-task bundle: the tiny smoke test makes its own from the tiny family's Fashion-MNIST-less
        # members' stand-in (digits_mlp alone), so it never needs the study's 15-minute bundle
        self.single_dir = self.runs / "bundle" / "digits_mlp_single" if tiny else BUNDLE_DIR
        self.single_command = ["+task=digits_mlp", "epochs=2", "batch_size=32", "task.train_fraction=0.3", "seed=0",
                               "threads=1", "progress=false"]
        self.bundles = {"family": self.family_dir / "mlrsnet_bundle.pt",
                        "fmnist": self.single_dir / "mlrsnet_bundle.pt"}

    def baseline(self, name: str) -> tuple[str, list[str]]:
        """A baseline's bench schedule and its extra overrides."""
        return BASELINES.get(name, (name, []))

    def tuned(self, cfg, schedule: str, out_dir: Path, stop: StopSignals) -> float:
        if self.tiny:
            return tune_once(cfg, schedule, [0.3, 1.0], out_dir, stop)["chosen"]
        return tune(cfg, schedule, out_dir, stop)["chosen"]


def part_bundle(study: Study) -> None:
    """The family bundle (and, for ``--tiny``, its single-task stand-in) by the train command."""
    from mlrsnet.train import meta_train

    if not (study.family_dir / "mlrsnet_bundle.pt").is_file():
        meta_train(compose("train", study.family_command), study.family_dir)
    if not (study.single_dir / "mlrsnet_bundle.pt").is_file():
        if not study.tiny:
            raise SystemExit("the single-task Fashion-MNIST bundle is missing: run `python "
                             "experiments/paper_claims_fmnist.py --part bundle` first")
        meta_train(compose("train", study.single_command), study.single_dir)


def part_queries(study: Study, seeds: list[int], only: list[str] | None, queries: list[str]) -> None:
    """``only``: ``family``, ``fmnist`` (the two bundles), ``untuned``, ``tuned`` (the baselines); all by default."""
    groups = only or ["family", "fmnist", "untuned", "tuned"]
    for b in ("family", "fmnist"):
        if b in groups and not study.bundles[b].is_file():
            raise SystemExit(f"the {b} bundle is missing: run `python experiments/family.py --part bundle"
                             f"{' --tiny' if study.tiny else ''}` first")
    with StopSignals() as stop:
        for query in queries:
            overrides = study.queries[query][1]
            root = study.runs / "queries" / query
            for b in ("family", "fmnist"):
                if b in groups:
                    cfg = bench_config([*overrides, f"+schedule_params.mlrsnet_frozen.checkpoint={study.bundles[b]}"])
                    for seed in seeds:
                        run(cfg, "mlrsnet_frozen", seed, 1.0, root / f"mlrsnet_{b}" / f"seed{seed}", stop, ("test",))
            for name in study.untuned[query]:
                schedule, extra = study.baseline(name)
                cfg = bench_config([*overrides, *extra])
                for group in ("untuned", "tuned"):
                    if group not in groups:
                        continue
                    m = 1.0 if group == "untuned" else study.tuned(cfg, schedule, root / f"{name}_tuned", stop)
                    sub = name if group == "untuned" else f"{name}_tuned"
                    for seed in seeds:
                        run(cfg, schedule, seed, m, root / sub / f"seed{seed}", stop, ("test",))


# ---------------------------------------------------------------- tables
def finals(folder: Path, seeds: list[int]) -> tuple[dict[int, float], RunRecord | None]:
    """Final test metric per finished seed under ``folder``, and one of its records (for the metric)."""
    out, any_rec = {}, None
    for seed in seeds:
        rec = read_record(folder / f"seed{seed}")
        if rec is None or rec.status != "complete" or not rec.history:
            continue
        value = rec.history[-1].get(f"test_{rec.metric}")
        if value is not None and math.isfinite(value):
            out[seed], any_rec = value, rec
    return out, any_rec


def tables(study: Study) -> list[str]:
    """README.md's tables, from the finished runs only (they say what has not run)."""
    lines = [f"# Family bundle vs single-task bundle on held-out queries{' (tiny smoke test)' if study.tiny else ''}",
             "", f"Command: `python experiments/family.py{' --tiny' if study.tiny else ''}` (module docstring: parts, "
             "protocol, tests).", ""]
    if study.tiny:
        lines += ["**Tiny scale: these numbers check the pipeline, not the claim** (the tiny family, one-epoch "
                  "queries, two seeds; the single-task bundle is a digits_mlp stand-in).", ""]
    lines += ["| query | held out by | row | final test (mean ± sd, n) |", "|---|---|---|---|"]
    verdicts = ["", "| query | family bundle vs | difference [95% CI] | p | n | verdict |", "|---|---|---|---|---|---|"]
    for query, (why, _) in study.queries.items():
        root = study.runs / "queries" / query
        rows: dict[str, dict[int, float]] = {}
        metric, higher = "accuracy", True
        for kind in ["mlrsnet_family", "mlrsnet_fmnist", *study.untuned[query],
                     *(f"{n}_tuned" for n in study.untuned[query])]:
            values, rec = finals(root / kind, study.seeds)
            if values:
                rows[kind] = values
                metric, higher = rec.metric, rec.higher_is_better
        for kind, values in rows.items():
            sd = statistics.stdev(values.values()) if len(values) > 1 else 0.0
            lines.append(f"| {query} | {why} | {kind} | {statistics.fmean(values.values()):.4f} ± {sd:.4f} "
                         f"({metric}, n={len(values)}) |")
        if not rows:
            lines.append(f"| {query} | {why} | not run | |")
        ours = rows.get("mlrsnet_family")
        others = {"single-task bundle": rows.get("mlrsnet_fmnist"),
                  **{n: rows.get(n) for n in [*study.untuned[query], *(f"{n}_tuned" for n in study.untuned[query])]}}
        for label, theirs in others.items():
            v = paired(ours, theirs) if ours and theirs else None
            if v is None:
                verdicts.append(f"| {query} | {label} | not enough paired seeds | | | |")
                continue
            sign = 1 if higher else -1
            low, high = sorted((sign * v["low"], sign * v["high"]))
            verdict = "win" if low > 0 else "LOSS" if high < 0 else "tie"
            verdicts.append(f"| {query} | {label} | {sign * v['mean']:+.4f} [{low:+.4f}, {high:+.4f}] | {v['p']:.3f} | "
                            f"{v['n']} | **{verdict}** |")
    lines += verdicts
    lines += ["", "Positive differences favour the family bundle (for perplexity, lower is better and the sign is "
              "flipped). Every number above is computed from `results.csv`'s run directories."]
    return lines


def results_csv(study: Study) -> Path:
    """``results.csv``: one row per finished run (``experiments/_results.py``): the part, the query, the kind (a
    bundle or a baseline), the role (``seed``, ``tuning`` or ``bundle``), then the run's columns."""
    found = []
    for d in sorted(study.runs.glob("queries/*/*/seed*")):
        found.append(({"part": "queries", "query": d.parts[-3], "kind": d.parts[-2], "role": "seed"}, d))
    for d in sorted(study.runs.glob("queries/*/*/tuning/*/x*")):
        found.append(({"part": "queries", "query": d.parts[-5], "kind": d.parts[-4], "role": "tuning"}, d))
    for name in sorted(study.family_dir.glob("members/*")):
        found.append(({"part": "bundle", "query": "", "kind": f"family:{name.name}", "role": "bundle"}, name))
    found.append(({"part": "bundle", "query": "", "kind": "single", "role": "bundle"}, study.single_dir))
    return write_results(study.root / "results.csv", collect(found), ("part", "query", "kind", "role"))


def plan() -> None:
    """The cost of each part, at the rates the study measured here (results.csv's wall_time_s medians, one thread,
    the other core busy with another study, 2026-12-06)."""
    family = 125.0  # s: the family run (summary.json wall_time_s)
    per_seed = {"fmnist_resnet_data25": 38.0, "gpt_finetune_stdlib": 2.0, "snn_digits": 1.2, "digits_resnet": 5.0}
    kinds = 2 + 3  # two bundles and three untuned baselines per seed
    tuned = 3 * (5 + len(SEEDS))  # three baselines, ~5 tuning runs each, then the seeds
    total = sum(per_seed.values())
    print(f"bundle: ~{family / 60:.0f} min (+ the Fashion-MNIST bundle of paper_claims_fmnist.py if missing, ~17 min)")
    print(f"queries, one seed of one row: {total:.0f} s; bundles + untuned x {len(SEEDS)} seeds "
          f"{kinds * len(SEEDS) * total / 60:.0f} min; tuned {tuned * total / 60:.0f} min")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["bundle", "queries"], action="append")
    ap.add_argument("--seeds", default=None, help="comma-separated seeds (default: 0-4; --tiny: 0,1)")
    ap.add_argument("--only", help="queries: only these groups (family, fmnist, untuned, tuned)")
    ap.add_argument("--queries", help=f"only these comma-separated queries ({', '.join(QUERIES)})")
    ap.add_argument("--plan", action="store_true", help="print the cost of each part and exit")
    ap.add_argument("--tables", action="store_true", help="only write README.md and results.csv from finished runs")
    ap.add_argument("--tiny", action="store_true", help="the whole pipeline at a tiny scale (experiments/family/tiny)")
    ap.add_argument("--root", type=Path, help="write the runs, README.md and results.csv here (absolute)")
    args = ap.parse_args()
    if args.plan:
        plan()
        return
    study = Study(args.tiny, args.root)
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else study.seeds
    parts = [] if args.tables else args.part or (["bundle", "queries"] if args.tiny else [])
    for part in parts:
        if part == "bundle":
            part_bundle(study)
        else:
            part_queries(study, seeds, args.only.split(",") if args.only else None,
                         args.queries.split(",") if args.queries else list(study.queries))
    results_csv(study)
    readme = study.root / "README.md"
    text = "\n".join(tables(study)) + "\n"
    if not study.tiny:  # the full study's README keeps its prose above the generated tables
        head = readme.read_text().split("<!-- tables -->")[0] if readme.is_file() else ""
        text = f"{head}<!-- tables -->\n\n{text}" if head else text
    atomic_write_text(readme, text)
    print(f"wrote {readme} and {study.root / 'results.csv'}")


if __name__ == "__main__":
    sys.exit(main())
