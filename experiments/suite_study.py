"""The benchmark suite's results (issue 32): a suite under both tuning rulesets, every schedule family, and a
README that says where MLR-SNet ranks.

    python experiments/suite_study.py                     # the quick suite: both rulesets, then README.md
    python experiments/suite_study.py --tables            # only README.md, from the two suite directories
    python experiments/suite_study.py --default --bundles # also the default suite (both rulesets), and the bundles

Each ruleset is one command of ``python -m mlrsnet.suite`` (printed in the README) into
``experiments/suite/<suite>_<ruleset>/``; a suite reuses every finished run there (run directories, fingerprinted,
under ``runs/``, not committed), so the same command resumes a killed suite and rebuilds the tables. Committed:
each directory's ``scores.md``, ``results.csv`` (one row per seed run), ``trials.csv``, ``profiles.png``,
``suite.json``, ``config.yaml`` and ``environment.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from mlrsnet.io import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "experiments" / "suite"
# Every schedule family that runs on every workload of the quick and default suites without a setting of its own:
# constant, step, exponential, cosine, restarts, one-cycle, warmup-stable-decay, loss-driven (GreedyLR),
# hypergradient (SGD-HD), line search (SLS), L4, and MLR-SNet meta-trained in place and frozen (the shipped bundle).
# Left out: sgd_schedulefree (schedule-free SGD's beta must be in (0, 1), and nmf_synthetic sets momentum 0: one
# line, exit 2), the LR-free optimisers, rl (needs a trained policy), marthe and rtho (their cost is a study of
# its own: experiments/marthe_beta_digits_mlp).
SCHEDULES = ["fixed", "multistep", "exponential", "cosine", "sgdr", "onecycle", "wsd", "greedy", "sgd_hd", "sls",
             "l4", "mlrsnet", "mlrsnet_frozen"]
RULESETS = {"self": [], "external": ["trials=4"]}
# The default suite (one workload per modality) with every schedule family of SCHEDULES, two runs at a time (one
# torch thread each). Both rulesets run the whole suite (its two Fashion-MNIST workloads run 1-2 minutes a run,
# MLR-SNet in place longer; under ruleset external, 4 trials, their 182 runs took 80 minutes of two cores here).
# The external ruleset first ran without the Fashion-MNIST workloads (`only=`), then whole, reusing those runs;
# ruleset self's 8 default schedules' runs were made first, one at a time, and reused by fingerprint.
FMNIST_WORKLOADS = ["fmnist_cnn", "fmnist_cnn_sym40"]
NOT_FMNIST = ["digits_resnet", "text_lstm", "nmf_synthetic", "gpt_finetune", "snn_digits"]
_DEFAULT = ["python", "-m", "mlrsnet.suite", "suite=default"]
_ALL = [f"schedules=[{','.join(SCHEDULES)}]", "jobs=2", "overrides=['threads=1']"]
# the part the bundles' comparison starts from (its 8 default schedules without Fashion-MNIST, one run at a time)
DEFAULT_RUN = [*_DEFAULT, "ruleset=self", f"only=[{','.join(NOT_FMNIST)}]", "jobs=1", "overrides=['threads=1']",
               "out_dir=experiments/suite/default_self"]
DEFAULT_RUNS = {
    "self": [*_DEFAULT, "ruleset=self", *_ALL, "out_dir=experiments/suite/default_self"],
    "external": [*_DEFAULT, "ruleset=external", "trials=4", *_ALL,
                 "out_dir=experiments/suite/default_external"],
}

# MLR-SNet in place on the tiny-GPT fine-tune (AdamW) with net.gamma=optimizer (gamma twice the optimizer's LR)
# instead of the paper's SGD-scale formula, which diverges there; every schedule reruns so that the directory's
# paired tests are complete (net.gamma changes no other schedule: gamma_section checks that their rows are equal).
GAMMA_RUNS = {r: [*_DEFAULT, f"ruleset={r}", *RULESETS[r], "only=[gpt_finetune]", f"schedules=[{','.join(SCHEDULES)}]",
                  "jobs=1", "overrides=['threads=1','net.gamma=optimizer']",
                  f"out_dir=experiments/suite/gpt_gamma_optimizer_{r}"] for r in RULESETS}

# The same part of the default suite with the three frozen bundles side by side (issue 34): the default bundle
# (mlrsnet_frozen: digits_cnn_sym40), the Fashion-MNIST bundle (shipped, fmnist_cnn_sym40) and the family bundle
# (experiments/family.py --part bundle), as suite variants of mlrsnet_frozen. Its directory starts from a copy of
# default_self's runs (fingerprinted: a run is reused only where its configuration is identical), so only the
# variants' runs are new. digits_resnet, gpt_finetune and snn_digits are held out from the family; text_lstm and
# nmf_synthetic are family members (the family bundle has seen them).
FAMILY_BUNDLE = "experiments/family/runs/bundle/cpu4/mlrsnet_bundle.pt"
BUNDLE_VARIANTS = {"mlrsnet_fmnist": "fmnist_cnn_sym40", "mlrsnet_family": FAMILY_BUNDLE}
DEFAULT_SCHEDULES = ["fixed", "multistep", "cosine", "sgdr", "wsd", "sgd_hd", "mlrsnet", "mlrsnet_frozen"]
BUNDLES_RUN = [*DEFAULT_RUN[:-1], f"schedules=[{','.join([*DEFAULT_SCHEDULES, *BUNDLE_VARIANTS])}]",
               "+variants={" + ", ".join(f"{k}: {{schedule: mlrsnet_frozen, params: {{checkpoint: {v}}}}}"
                                         for k, v in BUNDLE_VARIANTS.items()) + "}",
               "out_dir=experiments/suite/default_self_bundles"]
HELD_OUT = ("digits_resnet", "gpt_finetune", "snn_digits")


# Written from the default suite's tables above (regenerate them and check before changing a run).
DEFAULT_WORDS = (
    "In plain words (the default suite, whole, both rulesets): meta-trained in place, MLR-SNet is the slowest of "
    "the 13 schedules to the targets in seconds under both rulesets (its meta steps cost time, and it reaches "
    "neither Fashion-MNIST target, untuned or tuned); by steps it ranks 6th untuned and 12th tuned. The frozen "
    "default bundle ranks 7th of 13 untuned and 11th tuned. Untuned, one-cycle ranks first; tuned, SGDR. Against "
    "the other 12 schedules MLR-SNet in place wins 20, ties 24 and loses 40 comparisons untuned, and wins 11, ties "
    "38 and loses 35 tuned. It loses to 7 of 12 on each Fashion-MNIST workload under both rulesets (74.0% and 71.7% "
    "test accuracy untuned, 75.2% and 72.8% tuned, where warmup-stable-decay, cosine and one-cycle reach 78-85%), "
    "and to 9 of 12 on the SNN untuned; it beats 10 of 12 on the CPython text LM under both rulesets (the task's "
    "SGD without momentum; it loses to one-cycle and L4) and 8 of 12 on NMF untuned. On the tiny-GPT fine-tune "
    "(AdamW) the paper's SGD-scale gamma makes it diverge on every untuned seed (test perplexity 9e7 to 1e18; "
    "failed seeds count at chance, so it loses to all 12) and, tuned, its best trial (the smallest LR multiplier, "
    "at the edge of the search space) ends near 30, still last. With `net.gamma=optimizer` (gamma twice AdamW's "
    "LR) no seed diverges: 13.9 perplexity untuned and 9.3 tuned, beating 2 and 3 of the 12 and losing to 7."
)


def run_bundles() -> None:
    """BUNDLES_RUN, its directory seeded with default_self's finished runs."""
    runs, src = OUT / "default_self_bundles" / "runs", OUT / "default_self" / "runs"
    if not runs.exists() and src.is_dir():
        shutil.copytree(src, runs, ignore=shutil.ignore_patterns(".lock"))
    subprocess.run([sys.executable, *BUNDLES_RUN[1:]], cwd=ROOT, check=True)


def bundles_section(directory: Path) -> list[str]:
    """The family bundle against the other two frozen bundles, per workload: final test metric paired over seeds."""
    from mlrsnet.engine.stats import at_chance, compare

    rows = list(csv.DictReader((directory / "results.csv").open()))
    lines = ["### The three frozen bundles, untuned, on the default suite without Fashion-MNIST", "",
             f"`python experiments/suite_study.py --default --bundles` ({directory.name}/): `mlrsnet_frozen` is the "
             "default bundle (digits_cnn_sym40), `mlrsnet_fmnist` the Fashion-MNIST bundle, `mlrsnet_family` the "
             "family bundle (conf/family/cpu4.yaml). The family bundle minus each other bundle, final test metric "
             "paired over seeds (t-test, 95% interval; for perplexity and relative error lower is better; a seed "
             "worse than chance counts at chance): **win** / **loss** where p < 0.05, **tie** otherwise. Held out "
             "from the family: " + ", ".join(HELD_OUT) + ".",
             "The means count each failed seed at chance, as the test does; failed: the seeds of each that ended worse "
             "than chance.", "", "| workload | against | n | family | other | failed | difference [95% CI] | p | "
             "verdict |", "|---|---|---:|---:|---:|---|---|---:|---|"]
    for w in dict.fromkeys(r["workload"] for r in rows):
        mine = {r["seed"]: r for r in rows if r["workload"] == w and r["schedule"] == "mlrsnet_family"}
        for other in ("mlrsnet_frozen", "mlrsnet_fmnist"):
            theirs = {r["seed"]: r for r in rows if r["workload"] == w and r["schedule"] == other}
            seeds = sorted(set(mine) & set(theirs))
            if not seeds:
                continue
            a = [float(mine[k]["final_test"] or "nan") for k in seeds]
            b = [float(theirs[k]["final_test"] or "nan") for k in seeds]
            higher = mine[seeds[0]]["higher_is_better"] == "True"
            chance = float(mine[seeds[0]]["chance"]) if mine[seeds[0]]["chance"] else None
            c = compare(a, b, higher, chance)
            v = c["verdict"]
            a, b = at_chance(a, chance, higher), at_chance(b, chance, higher)
            lines.append(f"| {w}{' (held out)' if w in HELD_OUT else ''} | {other} | {c['n']} | "
                         f"{sum(a) / len(a):.4g} | {sum(b) / len(b):.4g} | {c['failed_a']}/{c['failed_b']} | "
                         f"{c['mean_diff']:+.4g} "
                         f"[{c['ci_low']:+.4g}, {c['ci_high']:+.4g}] | {c['p']:.3f} | **{v}** |")
    return lines


def shell(args: list[str]) -> str:
    """``args`` as a command line to paste into a POSIX shell: an argument with quotes, brackets, braces or spaces
    in double quotes (none of them holds a double quote, $, ` or a backslash; shlex quotes one that does)."""
    def quote(a: str) -> str:
        if not set(a) & set("'[]{} *?"):
            return a
        return f'"{a}"' if not set(a) & set('"$`\\!') else shlex.quote(a)

    return " ".join(quote(a) for a in args)


def gamma_section() -> list[str]:
    """MLR-SNet in place on gpt_finetune: the paper's gamma (the default suite's rows) against net.gamma=optimizer
    (GAMMA_RUNS), per ruleset: its mean final test perplexity, its failed seeds, its verdicts against the others."""
    lines = ["## MLR-SNet in place on the GPT fine-tune with `net.gamma=optimizer`", "",
             "The paper's gamma formula gives an SGD-scale LR (the first LR about gamma / 2); under the fine-tune's "
             "AdamW it diverges. `net.gamma=optimizer` sets gamma to twice `optimizer.lr`, so a fresh MLR-SNet starts "
             "at the task's AdamW LR. Commands (`python experiments/suite_study.py --gamma`):", "",
             *(f"    {shell(c)}" for c in GAMMA_RUNS.values()), "",
             "MLR-SNet in place against the 12 other schedules on gpt_finetune, final test perplexity paired over "
             "seeds (a failed seed, worse than chance, counts at chance, 256):", "",
             "| ruleset | net.gamma | n | final test perplexity | failed | win | tie | loss |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    def others(d: dict) -> list[dict]:
        return [{n: r[n] for n in ("schedule", "lr_multiplier", "final_test")} for r in d["per_workload"]
                if r["workload"] == "gpt_finetune" and r["schedule"] != "mlrsnet"]

    same = []
    for ruleset in RULESETS:
        paper, mine = _load(OUT / f"default_{ruleset}"), _load(OUT / f"gpt_gamma_optimizer_{ruleset}")
        if paper is None or mine is None:
            continue
        for label, d in (("the paper's formula", paper), ("optimizer", mine)):
            row = next(r for r in d["per_workload"] if r["workload"] == "gpt_finetune" and r["schedule"] == "mlrsnet")
            c = counts(d["paired"], "gpt_finetune")
            lines.append(f"| {ruleset} | {label} | {row['n']} | {row['final_test']:.4g} | {row['failed']}/{row['n']} | "
                         f"{c['win']} | {c['tie']} | {c['loss']} |")
        same.append(others(paper) == others(mine))
    lines += ["", "The other schedules' rows (chosen LR multiplier, mean final test perplexity) in these directories "
              + ("equal" if same and all(same) else "**differ from**") + " the default suite's: net.gamma changes only "
              "MLR-SNet meta-trained in place. (The mean of a failed row is over its seeds' raw values.)"]
    return lines


def command(suite: str, ruleset: str, jobs: int) -> list[str]:
    return ["python", "-m", "mlrsnet.suite", f"suite={suite}", f"ruleset={ruleset}", *RULESETS[ruleset],
            f"schedules=[{','.join(SCHEDULES)}]", f"jobs={jobs}", f"out_dir=experiments/suite/{suite}_{ruleset}"]


def counts(paired: list[dict], workload: str | None = None) -> dict[str, int]:
    rows = [p for p in paired if workload is None or p["workload"] == workload]
    return {v: sum(p["verdict"] == v for p in rows) for v in ("win", "tie", "loss")}


def section(data: dict[str, dict], heading: str) -> list[str]:
    """The scores, MLR-SNet's wins, ties and losses, and its ranks, of the suite directories ``data`` (ruleset ->
    its suite.json)."""
    first = next(iter(data.values()))
    lines = [f"## {heading}: benchmark scores", "",
             "The normalised area under each schedule's performance profile up to tau = "
             f"{first['tau_max']:g} (1: the fastest to the target on every workload; 0: never reaches it within tau "
             "of the fastest), in seconds (AlgoPerf's measure: a schedule's own cost, such as MLR-SNet's meta steps, "
             "counts) and in steps (it does not). Workloads: "
             + ", ".join(f"`{w['name']}`" for w in first["workloads"]) + ".", "",
             "| schedule | " + " | ".join(f"{r}: seconds | {r}: steps" for r in data) + " |",
             "|---|" + "---:|---:|" * len(data)]
    for name in sorted(first["scores"], key=lambda n: -first["scores"][n]):
        cells = []
        for d in data.values():
            rank = sorted(d["scores"], key=lambda n: -d["scores"][n]).index(name) + 1
            srank = sorted(d["step_scores"], key=lambda n: -d["step_scores"][n]).index(name) + 1
            cells.append(f"{d['scores'][name]:.3f} (#{rank}) | {d['step_scores'][name]:.3f} (#{srank})")
        label = f"**{name}**" if name.startswith("mlrsnet") else name
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    n = len(first["scores"])
    lines += ["", f"({n} schedules; #k: the rank.)", "", f"### {heading}: MLR-SNet against every other schedule", "",
              "MLR-SNet meta-trained in place minus each other schedule, final test metric paired over the seeds "
              "(t-test, 95% interval): **win** / **loss** where p < 0.05 in MLR-SNet's favour / against it, "
              "**tie** otherwise (no correction for the number of rows; the rows are in each `scores.md`).", "",
              "| ruleset | workload | win | tie | loss |", "|---|---|---:|---:|---:|"]
    for ruleset, d in data.items():
        for w in d["workloads"]:
            c = counts(d["paired"], w["name"])
            lines.append(f"| {ruleset} | {w['name']} | {c['win']} | {c['tie']} | {c['loss']} |")
        c = counts(d["paired"])
        lines.append(f"| {ruleset} | **all** | {c['win']} | {c['tie']} | {c['loss']} |")
    lines += ["", f"### {heading}: where MLR-SNet ranks", ""]
    for ruleset, d in data.items():
        for name in (n for n in d["scores"] if n.startswith("mlrsnet")):
            rank = sorted(d["scores"], key=lambda x: -d["scores"][x]).index(name) + 1
            srank = sorted(d["step_scores"], key=lambda x: -d["step_scores"][x]).index(name) + 1
            best = max(d["scores"], key=lambda x: d["scores"][x])
            lines.append(f"- ruleset {ruleset}, `{name}`: #{rank} of {n} in seconds ({d['scores'][name]:.3f}; "
                         f"the best, {best}, {d['scores'][best]:.3f}), #{srank} of {n} in steps "
                         f"({d['step_scores'][name]:.3f}).")
    return lines


def _load(directory: Path) -> dict | None:
    path = directory / "suite.json"
    return json.loads(path.read_text()) if path.is_file() else None


def readme(suite: str, jobs: int) -> str:
    lines = [f"# The {suite} and default suites under both tuning rulesets", "",
             "Regenerate: `python experiments/suite_study.py` (both rulesets of the quick suite, then this file; "
             "finished runs are reused; `--default` also runs the default suite, `--gamma` and `--bundles` the studies "
             "below it). The commands it "
             "runs:", ""]
    for ruleset in RULESETS:
        lines.append(f"    {shell(command(suite, ruleset, jobs))}")
    lines += [f"    {shell(c)}" for c in DEFAULT_RUNS.values()]
    lines.append(f"    {shell(BUNDLES_RUN)}")
    lines += ["", "The protocol (workloads, targets on the meta split, trials, time to target, performance "
              "profiles, the benchmark score, the paired tests) is in `mlrsnet/suite.py` and "
              "[docs/commands/suite.md](../../docs/commands/suite.md); how the targets were set: "
              f"[targets_{suite}.md](targets_{suite}.md) and [targets_default.md](targets_default.md). Each "
              "directory's full tables: its `scores.md`; one row per seed run: its `results.csv`; every trial, the "
              "chosen one and whether it sits at an edge of the search space: `trials.csv`.", ""]
    data = {r: d for r in RULESETS if (d := _load(OUT / f"{suite}_{r}")) is not None}
    if data:
        lines += section(data, f"The {suite} suite")
        lines += ["", "In plain words: meta-trained in place, MLR-SNet reaches the quick suite's targets in the fewest "
                  "steps without tuning, but its meta steps cost more time than any other schedule's, so in seconds "
                  "(the suite's score) it ranks near the bottom; tuned, the baselines catch up and it ranks lower "
                  "still. The frozen bundle (meta-trained on noisy digits) never reaches the targets untuned. "
                  "Caveats: the quick suite is three small offline workloads whose runs reach their targets in under "
                  "a second to a few seconds, so the seconds are noisy and decide nothing about larger tasks; 3 "
                  "seeds; the targets are set by SGDM + cosine at its defaults, which the ruleset-self cosine row "
                  "reaches on about half its seeds by construction.", ""]
    default = {r: d for r in DEFAULT_RUNS if (d := _load(OUT / f"default_{r}")) is not None}
    for ruleset, d in default.items():
        names = [w["name"] for w in d["workloads"]]
        heading = "The default suite" + (" without Fashion-MNIST" if not set(FMNIST_WORKLOADS) <= set(names) else "")
        lines += [*section({ruleset: d}, f"{heading}, ruleset {ruleset}"), "",
                  f"{len(d['scores'])} schedules, ruleset {ruleset}"
                  + "".join(f" (`{a}`)" for a in DEFAULT_RUNS[ruleset] if a.startswith("trials="))
                  + f"; workloads: {', '.join(names)}.", ""]
    if set(default) == set(DEFAULT_RUNS):
        lines += [DEFAULT_WORDS, ""]
    if any((OUT / f"gpt_gamma_optimizer_{r}" / "suite.json").is_file() for r in RULESETS):
        lines += [*gamma_section(), ""]
    bundles = _load(OUT / "default_self_bundles")
    if bundles is not None:
        lines += [*section({"self": bundles}, "The default suite without Fashion-MNIST, with the three bundles"), "",
                  *bundles_section(OUT / "default_self_bundles"), ""]
    lines += ["Profiles (seconds and steps to target):", ""]
    for name in [*(f"{suite}_{r}" for r in data), *(f"default_{r}" for r in default),
                 *(["default_self_bundles"] if bundles is not None else [])]:
        lines += [f"![{name}]({name}/profiles.png)", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="quick")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--tables", action="store_true", help="only write README.md from the suite directories")
    ap.add_argument("--default", action="store_true", help="also run the default suite (DEFAULT_RUNS: self, external)")
    ap.add_argument("--bundles", action="store_true", help="also run it with the three frozen bundles (BUNDLES_RUN)")
    ap.add_argument("--gamma", action="store_true", help="also run GPT with net.gamma=optimizer (GAMMA_RUNS)")
    args = ap.parse_args()
    if not args.tables:
        for ruleset in RULESETS:
            cmd = command(args.suite, ruleset, args.jobs)
            subprocess.run([sys.executable, *cmd[1:]], cwd=ROOT, check=True)
        if args.default:
            for cmd in DEFAULT_RUNS.values():
                subprocess.run([sys.executable, *cmd[1:]], cwd=ROOT, check=True)
        if args.bundles:
            run_bundles()
        if args.gamma:
            for cmd in GAMMA_RUNS.values():
                subprocess.run([sys.executable, *cmd[1:]], cwd=ROOT, check=True)
    text = readme(args.suite, args.jobs)
    atomic_write_text(OUT / "README.md", text + "\n")
    print(text)


if __name__ == "__main__":
    main()
