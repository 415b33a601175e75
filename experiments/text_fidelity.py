"""The 21.0 perplexity of MLR-SNet on the CPython text: the implementation, or the method? (issue 30, section 3)

    python experiments/text_fidelity.py            # 30 runs of 1-4 minutes, one at a time (~1 h); writes
                                                   # experiments/text_fidelity/README.md
    python experiments/text_fidelity.py --tables   # the README from the finished runs only

MLR-SNet meta-trained in place on ``+task=text_lstm_cpython`` (4 epochs of 146 steps) ended at 21.0 test
perplexity with the settings of mlrsnet before issue 30, where Adam reaches 4.19 and a fixed SGD LR of 10 4.62
(``experiments/paper_claims/``). Issue 30 found three places where mlrsnet's language-model meta-training was not
the reference's (github.com/xjtushujun/MLR-SNet, ``meta-train/language-modeling/``), and two changes of the method
itself that could explain the gap. Each is applied alone to that baseline, then in combination, on seeds 0, 1, 2:

- (a) the reference's language-model cell: MLP width 50, the maps' weights U(-0.1, 0.1) (``net.cell=lm``);
- (b) sequential meta windows with the meta LSTM state carried (``task.meta_windows=sequential``);
- (c) the reference's per-epoch counter: ``step % 300 == 0`` with the step reset every epoch, that is one meta
  update at the first step of each epoch here (``meta.counter=epoch_start meta.interval=300``); and, for
  completeness, the image code's rule ``(i + 1) % 300 == 0``, which never fires in an epoch of 146 steps
  (``meta.counter=epoch``: no meta update at all, the net stays at its initialisation);
- (d) a longer meta horizon, against the short-horizon bias ``experiments/short_horizon.md`` measured:
  ``meta.backend=unroll meta.K=10 meta.interval=10``;
- (e) gamma x 2 (``net.gamma`` = twice the formula's value for the seed's L0).

Every variant runs on the same seeds, so the same split, initialisation and data order; each is compared with
the baseline seed by seed (paired difference, its 95% t-interval over the 3 seeds, and a paired t-test). Any
choice is made on the meta split; the test split is reported only. Runs go to ``experiments/text_fidelity/runs``
(their ``.pt``/``.png`` files and snapshots are deleted after each run to keep the folder small: the command
regenerates them), one at a time with ``threads=1``.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import yaml
from scipy import stats

from mlrsnet.engine.cli import compose
from mlrsnet.io import atomic_write_text
from mlrsnet.meta.engine import meta_update_due
from mlrsnet.train import meta_train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import collect, write_results  # noqa: E402

OUT = Path("experiments/text_fidelity")
SEEDS = [0, 1, 2]
# The task's settings before issue 30 (the cell of the image code); every variant starts from them.
BASE = ["+task=text_lstm_cpython", "net.cell=image", "task.meta_windows=random", "meta.counter=global",
        "meta.interval=1", "progress=false", "threads=1"]
A = ["net.cell=lm"]
B = ["task.meta_windows=sequential"]
C = ["meta.counter=epoch_start", "meta.interval=300"]
D = ["meta.backend=unroll", "meta.K=10", "meta.interval=10"]
E = ["gamma x 2"]  # resolved per seed (twice the formula's gamma at the seed's L0)
# name -> (label, overrides)
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "base": ("baseline (mlrsnet before issue 30: image cell, random meta windows, a meta update every step)", []),
    "a": ("(a) the reference LM cell (net.cell=lm)", A),
    "b": ("(b) sequential meta windows, state carried (task.meta_windows=sequential)", B),
    "c": ("(c) the reference LM counter (meta.counter=epoch_start meta.interval=300: one per epoch)", C),
    "c_image": ("(c') the image code's counter (meta.counter=epoch meta.interval=300: none in 146 steps)",
                ["meta.counter=epoch", "meta.interval=300"]),
    "d": ("(d) a 10-step horizon (meta.backend=unroll meta.K=10 meta.interval=10)", D),
    "e": ("(e) gamma x 2", E),
    "abc": ("(a)+(b)+(c): the reference's implementation", A + B + C),
    "abce": ("(a)+(b)+(c)+(e)", A + B + C + E),
    "abde": ("(a)+(b)+(d)+(e): the reference's implementation with the longer horizon", A + B + D + E),
}
PRUNE = ("*.pt", "*.png")


def run_dir(name: str, seed: int) -> Path:
    return OUT / "runs" / name / f"seed{seed}"


def summary(name: str, seed: int) -> dict | None:
    path = run_dir(name, seed) / "summary.json"
    if not path.is_file():
        return None
    s = json.loads(path.read_text())
    return s if s.get("status") == "complete" else None


def formula_gamma(seed: int) -> float:
    """The formula's gamma of the baseline run of ``seed`` (``net.gamma: null``; L0 is the fresh model's, the same
    in every variant of the seed)."""
    base = summary("base", seed)
    if base is None:
        raise SystemExit(f"run the baseline of seed {seed} first")
    return float(base["gamma"])


def overrides(name: str, seed: int) -> list[str]:
    out = [*BASE, f"seed={seed}"]
    for item in VARIANTS[name][1]:
        out.append(f"net.gamma={2 * formula_gamma(seed)!r}" if item == "gamma x 2" else item)
    return out


def run(name: str, seed: int) -> dict:
    done = summary(name, seed)
    if done is not None:
        return done
    target = run_dir(name, seed)
    if target.exists():
        shutil.rmtree(target)
    print(f"{name} seed {seed}: {' '.join(overrides(name, seed))}", flush=True)
    result = meta_train(compose("train", overrides(name, seed)), target)
    for pattern in PRUNE:
        for path in target.glob(pattern):
            path.unlink()
    shutil.rmtree(target / "snapshots", ignore_errors=True)
    return result


def _ci(diffs: list[float]) -> tuple[float, float, float]:
    """Mean paired difference, half-width of its 95% t-interval, two-sided p of the paired t-test."""
    n = len(diffs)
    mean = statistics.fmean(diffs)
    if n < 2:
        return mean, math.nan, math.nan
    sd = statistics.stdev(diffs)
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    p = 1.0 if sd == 0 else float(2 * stats.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1))
    return mean, half, p


def _fmt(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"


def meta_updates(name: str, seed: int) -> int:
    """The run's meta updates, by the rule it ran under (:func:`mlrsnet.meta.engine.meta_update_due`)."""
    config = yaml.safe_load((run_dir(name, seed) / "config.yaml").read_text())
    lines = [json.loads(line) for line in (run_dir(name, seed) / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in lines if r.get("type") == "step"]
    per_epoch = len(steps) // max(1, config["epochs"])
    meta = config["meta"]
    return sum(meta_update_due(meta["counter"], meta["interval"], e * per_epoch + i, i)
               for e in range(config["epochs"]) for i in range(per_epoch))


def table() -> str:
    rows = []
    base = {s: summary("base", s) for s in SEEDS}
    head = ("| variant | seeds | meta updates | test perplexity | meta-split perplexity | final training loss | "
            "last-epoch mean LR | meta split: minus the baseline (paired mean, 95% CI) | p | test: minus the "
            "baseline |")
    rows += [head, "|" + "---|" * 10]
    verdicts = {}
    for name, (label, _) in VARIANTS.items():
        got = {s: summary(name, s) for s in SEEDS}
        got = {s: v for s, v in got.items() if v is not None}
        if not got:
            rows.append(f"| {label} | 0 | | not run | | | | | | |")
            continue
        test = [v["final_test_perplexity"] for v in got.values()]
        meta = [v["final_meta_perplexity"] for v in got.values()]
        loss = [v["final_train_loss"] for v in got.values()]
        lr = [_last_epoch_lr(name, s) for s in got]
        paired = [s for s in got if base.get(s) is not None]
        dm = [got[s]["final_meta_perplexity"] - base[s]["final_meta_perplexity"] for s in paired]
        dt = [got[s]["final_test_perplexity"] - base[s]["final_test_perplexity"] for s in paired]
        if name == "base":
            cmp_meta = cmp_test = p_text = "—"
        else:
            m, half, p = _ci(dm)
            cmp_meta = f"{m:+.2f} [{m - half:+.2f}, {m + half:+.2f}]"
            p_text = f"{p:.3f}"
            cmp_test = f"{statistics.fmean(dt):+.2f}"
            verdicts[name] = (m, half, p)
        rows.append(f"| {label} | {len(got)} | {meta_updates(name, next(iter(got)))} | {_fmt(test)} | {_fmt(meta)} | "
                    f"{statistics.fmean(loss):.3f} | {statistics.fmean(lr):.3g} | {cmp_meta} | {p_text} | {cmp_test} |")
    return "\n".join(rows) + "\n", verdicts


def _last_epoch_lr(name: str, seed: int) -> float:
    epochs = [json.loads(line) for line in (run_dir(name, seed) / "metrics.jsonl").read_text().splitlines()
              if '"type": "epoch"' in line or '"type":"epoch"' in line]
    return float(epochs[-1]["lr_mean"])


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_readme() -> None:
    body, verdicts = table()
    lines = [
        "# The 21.0 perplexity on the CPython text: implementation or method? (issue 30, section 3)",
        "",
        "Command: `python experiments/text_fidelity.py` (then `--tables` rewrites this file from the runs), on the "
        "2-core CPU machine shared with other work, each run with `threads=1`, one at a time. Code: commit "
        f"`{commit()}` plus the working tree of issue 30 (each run's `environment.json` records it). The docstring "
        "of the script says what each variant is.",
        "",
        "MLR-SNet meta-trained in place on `+task=text_lstm_cpython` (4 epochs of 146 steps, SGD momentum 0, "
        "clipping 0.25), seeds 0, 1, 2; every variant on the same seeds (same split, initialisation and data "
        "order). Means ± std over the seeds. The comparison with the baseline is paired by seed, on the **meta "
        "split** (the test split is reported, never used to choose): the mean difference of the final meta-split "
        "perplexity with its 95% t-interval (2 degrees of freedom) and the two-sided paired t-test's p. For scale: "
        "Adam reaches 4.19 and the tuned fixed SGD LR of 10 4.62 test perplexity on this task "
        "(`experiments/paper_claims/`).",
        "",
        body,
    ]
    lines += verdict_text(verdicts)
    atomic_write_text(OUT / "README.md", "\n".join(lines) + "\n")
    print(f"wrote {OUT / 'README.md'}")


def _paired(name: str, other: str) -> tuple[float, float, float]:
    """Paired difference of the final meta-split perplexity, ``name`` minus ``other``, over the seeds both ran."""
    pairs = [(summary(name, s), summary(other, s)) for s in SEEDS]
    return _ci([a["final_meta_perplexity"] - b["final_meta_perplexity"] for a, b in pairs if a and b])


def _mean(name: str, key: str = "final_meta_perplexity") -> float:
    return statistics.fmean(summary(name, s)[key] for s in SEEDS if summary(name, s))


def verdict_text(verdicts: dict[str, tuple[float, float, float]]) -> list[str]:
    needed = ("a", "b", "c", "c_image", "d", "e", "abc", "abce", "abde")
    if not all(k in verdicts for k in needed) or any(summary(k, s) is None for k in needed for s in SEEDS):
        return ["Verdict: not all variants have run on every seed yet."]

    def moved(name: str) -> bool:  # a change beyond the noise: the 95% interval excludes 0, and by > 5%
        m, half, _ = verdicts[name]
        return abs(m) > half and abs(m) > 0.05 * _base_meta()

    def interval(m: float, half: float) -> str:
        return f"{m:+.2f} [{m - half:+.2f}, {m + half:+.2f}]"

    impl = [k for k in ("a", "b", "c", "abc") if moved(k)]
    method = [k for k in ("d", "e") if moved(k)]
    updates = interval(*_paired("c", "c_image")[:2])
    ref_vs_c = interval(*_paired("abc", "c")[:2])
    lr = {k: statistics.fmean(_last_epoch_lr(k, s) for s in SEEDS) for k in ("base", "c", "c_image", "d", "abce")}
    out = ["## Verdict", ""]
    out.append("Moved beyond seed noise (the meta-split interval excludes 0, by more than 5% of the baseline's "
               f"meta perplexity): implementation changes {', '.join(impl) or 'none'}; method changes "
               f"{', '.join(method) or 'none'}.")
    out += ["", "What the numbers say (meta split, paired differences with their 95% intervals):", ""]
    a_m, a_h, _ = verdicts["a"]
    b_m, b_h, _ = verdicts["b"]
    out.append(f"- (a) the reference LM cell alone {'worsens' if a_m > a_h else 'does not improve'} the baseline "
               f"({interval(a_m, a_h)}); (b) sequential meta windows alone change nothing measurable "
               f"({interval(b_m, b_h)}).")
    out.append(f"- (c) the reference's counter moves it most ({interval(*verdicts['c'][:2])}), but not by "
               f"meta-learning better: it makes {meta_updates('c', SEEDS[0])} meta updates in the run, and with "
               f"none at all (c', the image code's rule) the result is the same (c minus c': {updates}); the net "
               f"stays at its initialisation, an LR of about {lr['c_image']:.2f} (gamma / 2) throughout, where the "
               f"baseline's every-step meta updates drive it to {lr['base']:.3f} by the last epoch.")
    out.append(f"- (d) a 10-step horizon removes the collapse too ({interval(*verdicts['d'][:2])}; "
               f"{meta_updates('d', SEEDS[0])} meta updates, last-epoch LR {lr['d']:.2f}): the one-step meta "
               "objective, not the implementation, pulls the LR down (the short-horizon bias "
               "`experiments/short_horizon.md` measured along fixed-LR runs).")
    out.append(f"- (e) gamma x 2 helps under any counter ({interval(*verdicts['e'][:2])} alone; the reference's "
               f"implementation with it, (a)+(b)+(c)+(e), reaches {_mean('abce'):.2f} meta / "
               f"{_mean('abce', 'final_test_perplexity'):.2f} test perplexity, and with the longer horizon, "
               f"(a)+(b)+(d)+(e), {_mean('abde'):.2f} / {_mean('abde', 'final_test_perplexity'):.2f}): the "
               "formula's gamma puts the LR at half of what this task wants (the tuned fixed LR is 10, 4.62 test "
               "perplexity; Adam 4.19).")
    out.append(f"- The reference's implementation (a)+(b)+(c) against (c) alone: {ref_vs_c}.")
    c_is_no_meta = abs(_paired("c", "c_image")[0]) < 0.05 * _base_meta()
    if not (method and c_is_no_meta):
        return out + ["", "**Verdict**: the numbers do not separate implementation from method as the runs of issue 30 "
                      "did; read the rows above."]
    out += ["", "**Verdict: the method.** The 21.0 is MLR-SNet's one-step meta objective applied at every step "
            "(mlrsnet's earlier counter): it anneals the LR within the first epoch, a 10-step horizon does not. The "
            "reference's implementation escapes it only because its counter (one meta update at each epoch's first "
            "step) hardly meta-trains the net on an epoch of 146 steps: it is then a constant LR of gamma / 2. Its "
            "remaining gap to the tuned baselines is gamma: twice the formula's closes most of it. Under the "
            "reference's counter neither its cell nor its meta windows matter ((a)+(b)+(c) against (c) above); "
            "under every-step meta updates its cell is worse ((a)).", "",
            "**What changed.** Because (c) moves the result, the `text_lstm_cpython` task now meta-trains as the "
            "reference's language-modeling code, (a)+(b)+(c): `net.cell=lm task.meta_windows=sequential "
            f"meta.counter=epoch_start meta.interval=300` ({_mean('abc'):.2f} meta-split perplexity against "
            f"{_base_meta():.2f}, chosen on the meta split), with what that means said plainly above: at this "
            "scale MLR-SNet then barely learns. gamma and the horizon stay the method's (the formula; one step); "
            "`net.gamma` and `meta.backend=unroll meta.K=10 meta.interval=10` are the options. MLR-SNet still "
            "loses on this task to the tuned fixed LR and to Adam under every variant tried."]
    return out


def _base_meta() -> float:
    return statistics.fmean(summary("base", s)["final_meta_perplexity"] for s in SEEDS)


def results_csv() -> Path:
    """``results.csv``: one row per finished run (``experiments/_results.py``): the variant, its overrides, the
    meta updates it made, and the run's columns (test and meta-split perplexity, final and best)."""
    found = [({"variant": name, "overrides": " ".join(VARIANTS[name][1]), "seed": seed}, run_dir(name, seed))
             for name in VARIANTS for seed in SEEDS if summary(name, seed) is not None]
    rows = collect(found)
    for row in rows:
        row["meta_updates"] = meta_updates(row["variant"], int(row["seed"]))
    return write_results(OUT / "results.csv", rows, ("variant", "overrides", "seed", "meta_updates"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", action="store_true",
                        help="only rewrite the README and results.csv from the finished runs")
    parser.add_argument("--only", default="", help="comma-separated variants to run (default: all)")
    args = parser.parse_args()
    if not args.tables:
        names = [n for n in (args.only.split(",") if args.only else VARIANTS)]
        for seed in SEEDS:
            run("base", seed)
        for name in names:
            for seed in SEEDS:
                run(name, seed)
                write_readme()
    write_readme()
    results_csv()


if __name__ == "__main__":
    sys.exit(main())
