"""``MLRSNetScheduler``'s defaults in a user's own training loop (issue 33, item 4).

    python experiments/scheduler_defaults.py             # every run not yet in results.csv, then README.md + figures
    python experiments/scheduler_defaults.py --force     # rerun every run
    python experiments/scheduler_defaults.py --tables    # README.md and figures from results.csv / lr_curves.json
    python experiments/scheduler_defaults.py --tasks breast_cancer --seeds 0,1,2

A plain PyTorch loop, as a user writes it (not mlrsnet's engine): ``optimizer.zero_grad(); loss.backward();
optimizer.step(); sched.step(loss)``. Four tasks, each with its own fixed split and a plain SGD (momentum 0):

- ``digits``: scikit-learn's 8x8 digits (10 classes), an MLP 64-128-10, SGD lr 0.1, batch 32, 10 epochs;
- ``breast_cancer``: scikit-learn's breast cancer (2 classes), standardised features, an MLP 30-64-2, SGD
  lr 0.1, batch 32, 20 epochs (the issue's setup);
- ``fashion_mnist``: Fashion-MNIST (the Debian IDX files), 5,000 class-balanced training images and 2,000
  class-balanced test images, a two-conv CNN, SGD lr 0.1, batch 64, 3 epochs;
- ``text_lm``: the CPython character language model (:mod:`mlrsnet.tasks.offline`'s corpus and document split,
  cut to 100k training characters), an LSTM (embedding 32, hidden 128), SGD lr 1.0 with gradient clipping 0.25
  (``conf/task/text_lstm_cpython.yaml``'s optimiser), bptt 64, batch 32, 4 epochs.

Variants (every MLR-SNet variant uses the shipped default bundle, three nets swapped at 1/3 and 2/3):

- ``recompute_snippet``: the two-line snippet under the old default, ``MLRSNetScheduler(opt, total_steps=T,
  scale="recompute")``: gamma from the formula with ``C = exp(L_0)`` and the mean mini-batch loss of each window;
- ``ceiling_snippet``: ``scale=None`` (``"ceiling"``): the optimizer's LR is the largest LR the net can emit (the
  shipped bundle's first net emits about half of it);
- ``optimizer_snippet``: ``scale="optimizer"``, the new default (the two-line snippet as it now reads): the
  optimizer's LR is the first LR, later LRs are it times the net's output relative to its first output;
- ``paper``: the reference's meta-test protocol, ``scale="recompute"`` with the task's ``num_classes`` (and for
  the language model ``loss_scale=ln(V)``, ``gamma_from="perplexity"``) and ``train_loss=`` the mean training
  loss over the whole training split in eval mode;
- ``constant``: the optimizer's own LR throughout;
- ``cosine``: ``torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=T)`` from the optimizer's LR.

Seeds 0-4: the seed sets the initialisation and the batch order, the same for every variant (paired). The split
is fixed. Metrics: accuracy (classification) or perplexity (language model) on the whole training and test
splits, in eval mode, after the last step. ``torch.set_num_threads(1)``.

Writes ``experiments/scheduler_defaults/``: ``results.csv`` (one row per run; rows present are reused unless
``--force``), ``lr_curves.json`` (seed 0's LR per step), ``README.md`` (the tables, paired t-tests) and
``lr_<task>.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mlrsnet import MLRSNetScheduler

OUT = Path(__file__).resolve().parent / "scheduler_defaults"
RESULTS = OUT / "results.csv"
CURVES = OUT / "lr_curves.json"
COLUMNS = ("task", "variant", "seed", "metric", "final_train", "final_test", "final_train_loss", "final_test_loss",
           "lr_first", "lr_last", "steps", "wall_time_s", "commit")
TASKS = ("digits", "breast_cancer", "fashion_mnist", "text_lm")
VARIANTS = ("recompute_snippet", "ceiling_snippet", "optimizer_snippet", "paper", "constant", "cosine")
MLRSNET_VARIANTS = ("recompute_snippet", "ceiling_snippet", "optimizer_snippet", "paper")
SEEDS = (0, 1, 2, 3, 4)
CODE = {
    "recompute_snippet": 'MLRSNetScheduler(opt, total_steps=T, scale="recompute")  # the old default',
    "ceiling_snippet": "MLRSNetScheduler(opt, total_steps=T, scale=None)",
    "optimizer_snippet": 'MLRSNetScheduler(opt, total_steps=T, scale="optimizer")  # the new default',
    "paper": 'MLRSNetScheduler(opt, total_steps=T, scale="recompute", num_classes=C, train_loss=f)',
    "constant": "no scheduler",
    "cosine": "CosineAnnealingLR(opt, T_max=T)",
}


# ----------------------------------------------------------------------------------------------- tasks
@dataclass
class Task:
    """What a user's loop needs: batches, a model, a loss, and an evaluation of the whole splits."""

    name: str
    metric: str  # accuracy | perplexity
    num_classes: int
    lr: float
    epochs: int
    make_model: Callable[[], nn.Module]
    batches: Callable[[torch.Generator], list[tuple[torch.Tensor, torch.Tensor]]]  # one epoch, in order
    evaluate: Callable[[nn.Module, str], tuple[float, float]]  # (mean loss, metric) over "train" / "test"
    clip: float | None = None
    loss_scale: float = 1.0
    gamma_from: str = "loss"


def _classification(name: str, xtr: torch.Tensor, ytr: torch.Tensor, xte: torch.Tensor, yte: torch.Tensor,
                    make_model: Callable[[], nn.Module], num_classes: int, lr: float, epochs: int,
                    batch_size: int) -> Task:
    def batches(g: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(xtr), generator=g)
        return [(xtr[order[i:i + batch_size]], ytr[order[i:i + batch_size]]) for i in range(0, len(xtr), batch_size)]

    @torch.no_grad()
    def evaluate(model: nn.Module, split: str) -> tuple[float, float]:
        x, y = (xtr, ytr) if split == "train" else (xte, yte)
        model.eval()
        out = torch.cat([model(x[i:i + 1000]) for i in range(0, len(x), 1000)])
        model.train()
        return float(nn.functional.cross_entropy(out, y)), float((out.argmax(1) == y).float().mean())

    return Task(name, "accuracy", num_classes, lr, epochs, make_model, batches, evaluate)


def _sklearn(name: str) -> Task:
    from sklearn.datasets import load_breast_cancer, load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = (load_digits if name == "digits" else load_breast_cancer)(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)
    scaler = StandardScaler().fit(xtr)
    xtr, xte = (torch.tensor(scaler.transform(a), dtype=torch.float32) for a in (xtr, xte))
    ytr, yte = torch.tensor(ytr), torch.tensor(yte)
    c = int(ytr.max()) + 1
    width, epochs = (128, 10) if name == "digits" else (64, 20)

    def make_model() -> nn.Module:
        return nn.Sequential(nn.Linear(xtr.shape[1], width), nn.ReLU(), nn.Linear(width, c))

    return _classification(name, xtr, ytr, xte, yte, make_model, c, 0.1, epochs, 32)


def _balanced(y: np.ndarray, per_class: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False)
                                   for c in range(int(y.max()) + 1)]))


def _fashion_mnist() -> Task:
    from mlrsnet.tasks.data.idx import DEBIAN_FASHION_MNIST, MNIST_FAMILY, load_mnist_family

    splits = load_mnist_family("fashion_mnist", DEBIAN_FASHION_MNIST.parent)
    mean, std = MNIST_FAMILY["fashion_mnist"].mean, MNIST_FAMILY["fashion_mnist"].std

    def prepare(x: torch.Tensor, y: torch.Tensor, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(_balanced(np.asarray(y), per_class))
        return (x[idx].float() / 255.0 - mean) / std, y[idx].long()

    xtr, ytr = prepare(splits.train_x, splits.train_y, 500)
    xte, yte = prepare(splits.test_x, splits.test_y, 200)

    def make_model() -> nn.Module:
        return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(32 * 7 * 7, 10))

    return _classification("fashion_mnist", xtr, ytr, xte, yte, make_model, 10, 0.1, 3, 64)


class CharLSTM(nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, 32)
        self.lstm = nn.LSTM(32, 128, batch_first=True)
        self.out = nn.Linear(128, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.lstm(self.emb(x))[0])


def _text_lm() -> Task:
    from mlrsnet.tasks.offline import cpython_documents, split_documents

    train_docs, _, test_docs = split_documents(cpython_documents(), 0, 0.1, 0.1)
    train_text, test_text = "\n\n".join(train_docs)[:100_000], "\n\n".join(test_docs)[:20_000]
    vocab = ["<unk>"] + sorted(set(train_text))
    index = {ch: i for i, ch in enumerate(vocab)}
    bptt, batch = 64, 32

    def streams(text: str) -> torch.Tensor:
        ids = torch.tensor([index.get(ch, 0) for ch in text])
        n = len(ids) // batch
        return ids[:n * batch].reshape(batch, n)  # batch parallel streams

    tr, te = streams(train_text), streams(test_text)

    def windows(data: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(data[:, i:i + bptt], data[:, i + 1:i + 1 + bptt]) for i in range(0, data.shape[1] - 1 - bptt, bptt)]

    def batches(g: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
        ws = windows(tr)
        return [ws[i] for i in torch.randperm(len(ws), generator=g).tolist()]

    @torch.no_grad()
    def evaluate(model: nn.Module, split: str) -> tuple[float, float]:
        model.eval()
        ws = windows(tr if split == "train" else te)
        loss = sum(float(nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())) for x, y in ws) / len(ws)
        model.train()
        return loss, math.exp(loss)

    return Task("text_lm", "perplexity", len(vocab), 1.0, 4, lambda: CharLSTM(len(vocab)), batches, evaluate,
                clip=0.25, loss_scale=math.log(len(vocab)), gamma_from="perplexity")


def build(name: str) -> Task:
    if name in ("digits", "breast_cancer"):
        return _sklearn(name)
    return _fashion_mnist() if name == "fashion_mnist" else _text_lm()


# --------------------------------------------------------------------------------------- the user's loop
def loss_of(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return nn.functional.cross_entropy(out.flatten(0, -2) if out.dim() > 2 else out, y.flatten())


def run(task: Task, variant: str, seed: int) -> tuple[dict, list[float]]:
    torch.manual_seed(seed)
    model = task.make_model()
    g = torch.Generator().manual_seed(seed)
    epochs = [task.batches(g) for _ in range(task.epochs)]
    total = sum(len(e) for e in epochs)
    opt = torch.optim.SGD(model.parameters(), lr=task.lr)
    start = time.perf_counter()
    sched = None
    if variant == "recompute_snippet":
        sched = MLRSNetScheduler(opt, total_steps=total, scale="recompute")
    elif variant == "ceiling_snippet":
        sched = MLRSNetScheduler(opt, total_steps=total, scale=None)
    elif variant == "optimizer_snippet":
        sched = MLRSNetScheduler(opt, total_steps=total, scale="optimizer")
    elif variant == "paper":
        sched = MLRSNetScheduler(opt, total_steps=total, scale="recompute", num_classes=task.num_classes,
                                 loss_scale=task.loss_scale, gamma_from=task.gamma_from,
                                 train_loss=lambda: task.evaluate(model, "train")[0])
    elif variant == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    lrs: list[float] = []
    for batches in epochs:
        for x, y in batches:
            opt.zero_grad()
            loss = loss_of(model, x, y)
            loss.backward()
            if task.clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), task.clip)
            lrs.append(float(opt.param_groups[0]["lr"]))
            opt.step()
            if isinstance(sched, MLRSNetScheduler):
                sched.step(loss)
            elif sched is not None:
                sched.step()
    train_loss, train_metric = task.evaluate(model, "train")
    test_loss, test_metric = task.evaluate(model, "test")
    row = {"task": task.name, "variant": variant, "seed": seed, "metric": task.metric,
           "final_train": f"{train_metric:.6g}", "final_test": f"{test_metric:.6g}",
           "final_train_loss": f"{train_loss:.6g}", "final_test_loss": f"{test_loss:.6g}",
           "lr_first": f"{lrs[0]:.6g}", "lr_last": f"{lrs[-1]:.6g}", "steps": total,
           "wall_time_s": f"{time.perf_counter() - start:.2f}", "commit": COMMIT}
    return row, lrs


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=OUT.parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


COMMIT = git_commit()


# ------------------------------------------------------------------------------------------------ tables
def read_rows() -> list[dict]:
    if not RESULTS.is_file():
        return []
    with RESULTS.open() as f:
        return list(csv.DictReader(f))


def write_rows(rows: list[dict]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rows = sorted(rows, key=lambda r: (TASKS.index(r["task"]), VARIANTS.index(r["variant"]), int(r["seed"])))
    tmp = RESULTS.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        w.writerows({k: r[k] for k in COLUMNS} for r in rows)
    tmp.replace(RESULTS)


def fmt(task: str, value: float) -> str:
    return f"{100 * value:.2f}" if task != "text_lm" else f"{value:.2f}"


def paired(rows: list[dict], task: str, a: str, b: str, key: str) -> tuple[float, float, float, float, int] | None:
    """Mean difference a - b over the seeds both have, its 95% interval and the paired t-test's p."""
    from scipy import stats

    va = {r["seed"]: float(r[key]) for r in rows if r["task"] == task and r["variant"] == a}
    vb = {r["seed"]: float(r[key]) for r in rows if r["task"] == task and r["variant"] == b}
    seeds = sorted(set(va) & set(vb))
    if len(seeds) < 2:
        return None
    x, y = np.array([va[s] for s in seeds]), np.array([vb[s] for s in seeds])
    d = x - y
    if np.allclose(d, d[0]):
        return float(d.mean()), float(d.mean()), float(d.mean()), math.nan, len(seeds)
    res = stats.ttest_rel(x, y)
    ci = res.confidence_interval(0.95)
    return float(d.mean()), float(ci.low), float(ci.high), float(res.pvalue), len(seeds)


def readme(rows: list[dict]) -> str:
    scale = {t: (100.0 if t != "text_lm" else 1.0) for t in TASKS}
    unit = {t: ("accuracy, %" if t != "text_lm" else "perplexity, lower is better") for t in TASKS}
    out = [
        "# `MLRSNetScheduler`'s defaults in a user's own loop",
        "",
        "Issue 33, item 4: the two-line snippet `sched = MLRSNetScheduler(optimizer, total_steps=T)` ... "
        "`sched.step(loss)` in a plain PyTorch loop, against a constant LR at the optimizer's own LR and against "
        "cosine. Regenerate (reuses the rows of `results.csv`; `--force` reruns them):",
        "",
        "    nice -n 5 python experiments/scheduler_defaults.py",
        "",
        "The setup (tasks, variants, seeds) is the docstring of `experiments/scheduler_defaults.py`. Every "
        "MLR-SNet variant runs the shipped default bundle (`digits_cnn_sym40`, three nets swapped at 1/3 and 2/3 "
        "of the run). SGD, momentum 0, at the optimizer LR given per task; seeds set initialisation and batch "
        "order, identical across variants (paired); splits fixed. One CPU thread.",
        "",
        "| variant | code |",
        "|---|---|",
    ]
    out += [f"| `{v}` | `{CODE[v]}` |" for v in VARIANTS]
    out += ["", "## Final metrics (mean ± std over seeds, n per cell)", ""]
    for key, title in (("final_test", "test"), ("final_train", "train")):
        out += [f"**{title}** (accuracy in %, perplexity for `text_lm`)", "",
                "| variant | " + " | ".join(TASKS) + " |", "|---" * (len(TASKS) + 1) + "|"]
        for v in VARIANTS:
            cells = []
            for t in TASKS:
                vals = [scale[t] * float(r[key]) for r in rows if r["task"] == t and r["variant"] == v]
                if not vals:
                    cells.append("")
                    continue
                sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
                cells.append(f"{statistics.mean(vals):.2f} ± {sd:.2f} (n={len(vals)})")
            out.append(f"| `{v}` | " + " | ".join(cells) + " |")
        out.append("")
    out += ["## Paired t-tests (test metric)", "",
            "Mean difference (MLR-SNet variant minus baseline) over the seeds, its 95% interval "
            "(`scipy.stats.ttest_rel(...).confidence_interval(0.95)`) and the two-sided p. Accuracy in points; "
            "perplexity in perplexity units (negative is better for the MLR-SNet variant).", "",
            "| task | variant | baseline | n | mean diff | 95% CI | p |", "|---|---|---|---|---|---|---|"]
    for t in TASKS:
        for v in MLRSNET_VARIANTS:
            for b in ("constant", "cosine"):
                res = paired(rows, t, v, b, "final_test")
                if res is None:
                    continue
                m, lo, hi, p, n = res
                s = scale[t]
                out.append(f"| {t} | `{v}` | `{b}` | {n} | {s * m:+.2f} | [{s * lo:+.2f}, {s * hi:+.2f}] | "
                           f"{'n/a' if math.isnan(p) else f'{p:.3g}'} |")
    out += ["", "The candidate defaults against each other (test metric; `optimizer_snippet` minus the other):", "",
            "| task | other | n | mean diff | 95% CI | p |", "|---|---|---|---|---|---|"]
    for t in TASKS:
        for b in ("recompute_snippet", "ceiling_snippet"):
            res = paired(rows, t, "optimizer_snippet", b, "final_test")
            if res is not None:
                m, lo, hi, p, n = res
                out.append(f"| {t} | `{b}` | {n} | {scale[t] * m:+.2f} | [{scale[t] * lo:+.2f}, {scale[t] * hi:+.2f}] "
                           f"| {'n/a' if math.isnan(p) else f'{p:.3g}'} |")
    out += ["", CONCLUSION]
    out += ["", "## LR of the first step and of the last (seed 0)", "",
            "| variant | " + " | ".join(TASKS) + " |", "|---" * (len(TASKS) + 1) + "|"]
    for v in VARIANTS:
        cells = []
        for t in TASKS:
            r = next((r for r in rows if r["task"] == t and r["variant"] == v and r["seed"] == "0"), None)
            cells.append("" if r is None else f"{float(r['lr_first']):.3g} → {float(r['lr_last']):.3g}")
        out.append(f"| `{v}` | " + " | ".join(cells) + " |")
    wall = {t: sum(float(r["wall_time_s"]) for r in rows if r["task"] == t) for t in TASKS}
    out += ["", "Wall time of all runs (s): " + ", ".join(f"{t} {wall[t]:.0f}" for t in TASKS)
            + f"; commit {rows[0]['commit'][:12] if rows else ''} (plus uncommitted work).", "",
            "Figures: " + ", ".join(f"`lr_{t}.png`" for t in TASKS) + " (seed 0's LR per step, log scale; "
            "dotted lines: the swaps at 1/3 and 2/3).", "", *[f"![{t}](lr_{t}.png)" for t in TASKS], ""]
    out.insert(out.index("## Final metrics (mean ± std over seeds, n per cell)"),
               "Units: " + "; ".join(f"{t}: {unit[t]}" for t in TASKS) + ".\n")
    return "\n".join(out)


CONCLUSION = """## What this chose

`MLRSNetScheduler`'s default is now `scale="optimizer"`: the optimizer's LR is the LR the run starts at (as
with torch's own schedulers), and later LRs are it times the net's output relative to its first output.
Against the old default (`recompute_snippet`) it wins on breast cancer and the language model, ties on
Fashion-MNIST (+1 point, not significant with 5 seeds) and loses on digits, where the paper's gamma (about
0.67, a first LR of about 0.35) is a better LR than the user's 0.1. Against the ceiling reading of the
optimizer's LR (`ceiling_snippet`, whose first LR is half the user's) it wins on all four. The paper's
protocol stays one argument away (`scale="recompute"`, with `num_classes=`, `train_loss=` and for a language
model `loss_scale=`, `gamma_from="perplexity"`: the `paper` rows).

None of the drop-in variants is a safe improvement on a constant LR or cosine at these short budgets: the
shipped bundle (meta-trained on digits with 40% label noise) cuts the LR 6 to 170 times at the first swap
(the figures), which a clean, short run pays for. MLR-SNet's edge in these measurements is the paper's gamma
where the user's LR is too small (the language model: `paper` beats `constant`)."""


def figures(curves: dict) -> None:
    import matplotlib.pyplot as plt

    for t in TASKS:
        if t not in curves:
            continue
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
        steps = 0
        for v in VARIANTS:
            lrs = curves[t].get(v)
            if lrs:
                ax.plot(range(1, len(lrs) + 1), lrs, label=v, lw=1.4)
                steps = len(lrs)
        for k in (1, 2):
            ax.axvline(k * steps / 3, color="grey", ls=":", lw=1)
        ax.set_yscale("log")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("learning rate (log scale)")
        ax.set_title(f"{t}: LR per step, seed 0")
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9)
        fig.tight_layout()
        fig.savefig(OUT / f"lr_{t}.png", dpi=120)
        plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    ap.add_argument("--force", action="store_true", help="rerun the runs already in results.csv")
    ap.add_argument("--tables", action="store_true", help="only README.md and the figures")
    args = ap.parse_args()
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    rows = read_rows()
    curves = json.loads(CURVES.read_text()) if CURVES.is_file() else {}
    if not args.tables:
        done = {(r["task"], r["variant"], r["seed"]) for r in rows}
        for t in args.tasks.split(","):
            task = None
            for v in args.variants.split(","):
                for s in (int(x) for x in args.seeds.split(",")):
                    if (t, v, str(s)) in done and not args.force:
                        continue
                    task = task or build(t)
                    row, lrs = run(task, v, s)
                    print(f"{t:14s} {v:18s} seed {s}: train {row['final_train']} test {row['final_test']} "
                          f"lr {row['lr_first']} -> {row['lr_last']} ({row['wall_time_s']} s)", flush=True)
                    rows = [r for r in rows if (r["task"], r["variant"], r["seed"]) != (t, v, str(s))] + [
                        {k: str(x) for k, x in row.items()}]
                    if s == 0:
                        curves.setdefault(t, {})[v] = [float(f"{x:.5g}") for x in lrs]
                        CURVES.write_text(json.dumps(curves))
                    write_rows(rows)
    figures(curves)
    (OUT / "README.md").write_text(readme(rows))
    print(f"wrote {RESULTS}, {OUT / 'README.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
