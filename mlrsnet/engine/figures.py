"""Figures, each written atomically: a run's ``lr_schedule.csv`` / ``.png`` (:func:`save_lr_schedule`); the
learning rate, training curves and MLR-SNet's response of a run directory (:func:`plot_run`, behind
``python -m mlrsnet.plot``); the bench's comparison plots.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from mlrsnet.checkpoint import SNAPSHOT_DIR, load_mlrsnet
from mlrsnet.engine.log import read_metrics
from mlrsnet.errors import MLRSNetError
from mlrsnet.io import atomic_write_text


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> Path:
    """Save a figure atomically (temporary file, then rename) and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    _pyplot().close(fig)
    tmp.replace(path)
    return path


def plot_lr(steps: list[tuple[int, float]], path: Path, title: str, swaps: list[int] | None = None) -> Path:
    """The learning rate against iteration, on a log scale when every LR is positive (a frozen MLR-SNet's LR
    falls by orders of magnitude at its swaps); ``swaps``: the iterations where a bundle's next net takes over,
    marked with dashed lines."""
    fig, ax = _pyplot().subplots(figsize=(6.4, 3.4))
    ax.plot([s for s, _ in steps], [lr for _, lr in steps], lw=1, label="learning rate")
    if steps and all(lr > 0 for _, lr in steps):
        ax.set_yscale("log")
    for i, step in enumerate(swaps or []):
        ax.axvline(step, color="0.4", ls="--", lw=0.8, label="net swap" if i == 0 else None)
    ax.set_xlabel("iteration")
    ax.set_ylabel("learning rate" + (" (log scale)" if ax.get_yscale() == "log" else ""))
    ax.set_title(title)
    if swaps:
        ax.legend(fontsize="small", loc="best")
    fig.tight_layout()
    return save_figure(fig, path)


def swap_steps(summary: dict) -> list[int]:
    """The iterations where a frozen MLR-SNet bundle swaps nets (equal fractions of the run), from a run's
    summary; none for other schedules."""
    n, total = int(summary.get("num_nets") or 1), int(summary.get("steps") or 0)
    return [round(k * total / n) for k in range(1, n)] if n > 1 and total else []


def plot_overlay(runs: dict[str, Path], out_dir: Path, title: str, swaps: list[int] | None = None) -> list[Path]:
    """Every run of ``runs`` (label -> run directory) in one figure: the learning rate against iteration (log
    scale when positive) and the test metric against epoch; ``swaps``: a frozen bundle's net swaps, marked on the
    LR panel; the legend sits outside the axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    lr_ax, metric_ax = fig.subplots(1, 2)
    positive, metric = True, None
    for label, run in runs.items():
        records = read_metrics(run / "metrics.jsonl")
        steps = [(r["step"], r["lr"]) for r in records if r.get("type") == "step"]
        epochs = [r for r in records if r.get("type") == "epoch"]
        if steps:
            lr_ax.plot([a for a, _ in steps], [b for _, b in steps], lw=1, label=label)
            positive = positive and all(b > 0 for _, b in steps)
        elif epochs:
            lr_ax.plot([e["step"] for e in epochs], [e["lr_mean"] for e in epochs], lw=1, label=label)
        if epochs:
            metric = metric or _metric(run, epochs[0])
            metric_ax.plot([e["epoch"] for e in epochs], [e.get(f"test_{metric}", math.nan) for e in epochs],
                           marker=".", lw=1, label=label)
    if positive:
        lr_ax.set_yscale("log")
    for i, step in enumerate(swaps or []):
        lr_ax.axvline(step, color="0.4", ls="--", lw=0.8, label="net swap" if i == 0 else None)
    lr_ax.set_xlabel("iteration")
    lr_ax.set_ylabel("learning rate" + (" (log scale)" if positive else ""))
    metric_ax.set_xlabel("epoch")
    metric_ax.set_ylabel(f"test {metric or 'metric'}")
    handles, labels = lr_ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(0.83, 0.5), fontsize="small", frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 0.82, 1))
    out = out_dir / "overlay.png"
    return [save_figure(fig, out)]


def save_lr_schedule(run_dir: Path, history_steps: list[tuple[int, float]], title: str,
                     swaps: list[int] | None = None) -> None:
    """Write the LR against iteration as ``lr_schedule.csv`` and ``lr_schedule.png`` (``swaps``: a frozen
    bundle's net swaps, marked)."""
    rows = "".join(f"{s},{lr:.8g}\n" for s, lr in history_steps)
    atomic_write_text(run_dir / "lr_schedule.csv", "step,lr\n" + rows)
    plot_lr(history_steps, run_dir / "lr_schedule.png", title, swaps)


def plot_lr_epochs(epochs: list[dict], path: Path, title: str) -> Path:
    """Per-epoch LR statistics against iteration, for runs without per-step records."""
    fig, ax = _pyplot().subplots(figsize=(6, 3.2))
    x = [e["step"] for e in epochs]
    ax.plot(x, [e["lr_mean"] for e in epochs], marker="o", lw=1, label="mean")
    lows, highs = [e["lr_min"] for e in epochs], [e["lr_max"] for e in epochs]
    ax.fill_between(x, lows, highs, alpha=0.25, label="min-max")
    ax.set_xlabel("iteration (end of epoch)")
    ax.set_ylabel("learning rate")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def plot_curves(epochs: list[dict], metric: str, path: Path, title: str) -> Path:
    """Training loss (and meta loss, if any) and the test metric against epoch."""
    fig, (left, right) = _pyplot().subplots(1, 2, figsize=(9, 3.4))
    x = [e["epoch"] for e in epochs]
    left.plot(x, [e["train_loss"] for e in epochs], marker="o", label="train loss")
    if all("meta_loss" in e for e in epochs):
        left.plot(x, [e["meta_loss"] for e in epochs], marker=".", label="meta loss")
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    left.legend()
    key = f"test_{metric}"
    right.plot(x, [e.get(key, math.nan) for e in epochs], marker="o", color="C2")
    right.set_xlabel("epoch")
    right.set_ylabel(f"test {metric}")
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


@torch.no_grad()
def response_curve(net: Any, state: Any, losses: torch.Tensor, loss_scale: float) -> torch.Tensor:
    """lr = MLR-SNet(loss / loss_scale | state) for each loss, every point from the same state."""
    return torch.stack([net(loss / loss_scale, state)[0] for loss in losses])


def plot_response(snapshots: list[Path], path: Path, title: str, epoch_losses: dict[int, float]) -> Path:
    """MLR-SNet's output against its input loss, one curve per snapshot."""
    loaded = [load_mlrsnet(p) for p in snapshots]
    top = max(float(meta.get("initial_loss") or 1.0) for _, meta in loaded) * 1.25
    top = max([top, *epoch_losses.values()])
    grid = torch.linspace(0.0, top, 120)
    fig, ax = _pyplot().subplots(figsize=(6, 3.6))
    for i, (net, meta) in enumerate(loaded):
        epoch = int(meta.get("epoch", 0))
        scale = float(meta.get("loss_scale", 1.0))
        lrs = response_curve(net, meta.get("state"), grid, scale)
        ax.plot(grid, lrs, color=f"C{i}", label=f"epoch {epoch}")
        if epoch in epoch_losses:
            x = torch.tensor(epoch_losses[epoch])
            ax.plot([float(x)], [float(response_curve(net, meta.get("state"), x[None], scale)[0])], "o",
                    color=f"C{i}")
    ax.set_xlabel("input: training loss")
    ax.set_ylabel("output: learning rate")
    ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> list[Path]:
    """Write every figure that the run directory has data for; returns the PNG paths."""
    run_dir = Path(run_dir)
    metrics = run_dir / "metrics.jsonl"
    if not metrics.is_file():
        raise MLRSNetError(
            f"no metrics.jsonl in {run_dir}; pass a run directory written by python -m mlrsnet.train"
        )
    out_dir = Path(out) if out is not None else run_dir / "plots"
    records = read_metrics(metrics)
    steps = [(r["step"], r["lr"]) for r in records if r.get("type") == "step"]
    epochs = [r for r in records if r.get("type") == "epoch"]
    name = run_label(run_dir)
    written = []
    summary = _summary(run_dir)
    if steps:
        written.append(plot_lr(steps, out_dir / "lr.png", f"{name}: learning rate", swap_steps(summary)))
    elif epochs:
        written.append(plot_lr_epochs(epochs, out_dir / "lr.png", f"{name}: learning rate"))
    if epochs:
        metric = _metric(run_dir, epochs[0])
        written.append(plot_curves(epochs, metric, out_dir / "curves.png", name))
    snapshots = sorted((run_dir / SNAPSHOT_DIR).glob("*.pt"))
    if not snapshots and (run_dir / "mlrsnet.pt").is_file():
        snapshots = [run_dir / "mlrsnet.pt"]
    if snapshots:
        losses = {e["epoch"]: e["train_loss"] for e in epochs}
        path = out_dir / "mlrsnet_response.png"
        written.append(plot_response(snapshots, path, f"{name}: MLR-SNet output against input loss", losses))
    compared = sorted(p for p in (run_dir / "compare").glob("*") if (p / "metrics.jsonl").is_file())
    if compared:  # a transfer run with compare=[...]: the frozen MLR-SNet against its baselines
        runs = {f"{summary.get('schedule', 'mlrsnet')} (frozen)": run_dir, **{p.name: p for p in compared}}
        written += plot_overlay(runs, out_dir / "comparison", f"{name}: against the compared schedules",
                                swap_steps(summary))
    return written


def _summary(run_dir: Path) -> dict:
    import json

    try:
        return json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return {}


def run_label(run_dir: Path) -> str:
    """A figure title for a run: its task, schedule and seed (from summary.json, else config.yaml), not
    the timestamp its directory is named after."""
    import json

    import yaml

    info: dict = {}
    try:
        if (run_dir / "summary.json").is_file():
            info = json.loads((run_dir / "summary.json").read_text())
        elif (run_dir / "config.yaml").is_file():
            cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
            info = {"task": (cfg.get("task") or {}).get("name"), "schedule": cfg.get("schedule"),
                    "seed": cfg.get("seed")}
    except (OSError, ValueError, yaml.YAMLError):
        info = {}
    task = info.get("query") or info.get("task")
    if not task:
        return run_dir.name
    schedule = info.get("schedule")
    if isinstance(schedule, dict):
        schedule = schedule.get("name")
    extra = ", ".join(str(x) for x in (schedule, None if info.get("seed") is None else f"seed {info['seed']}") if x)
    return f"{task} [{extra}]" if extra else str(task)


def _metric(run_dir: Path, epoch: dict) -> str:
    import json

    summary = run_dir / "summary.json"
    if summary.is_file():
        return json.loads(summary.read_text())["metric"]
    for candidate in ("accuracy", "perplexity"):
        if f"test_{candidate}" in epoch:
            return candidate
    return "loss"


def plot_lr_curves(curves: dict[str, list[tuple[int, float]]], path: Path, title: str) -> Path:
    """LR against iteration, one line per schedule (log scale when every LR is positive)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for name, steps in curves.items():
        ax.plot([s for s, _ in steps], [lr for _, lr in steps], lw=1, label=name)
    if all(lr > 0 for steps in curves.values() for _, lr in steps):
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("learning rate")
    ax.set_title(title)
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_metric_curves(runs: dict[str, list[list[dict]]], metric: str, path: Path, title: str) -> Path:
    """Test metric and training loss against epoch: the mean over seeds, with a ±1 std band."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    left, right = fig.subplots(1, 2)
    for i, (name, histories) in enumerate(runs.items()):
        if not histories:
            continue
        n = min(len(h) for h in histories)
        for ax, key in ((left, f"test_{metric}"), (right, "train_loss")):
            values = torch.tensor([[h[e][key] for e in range(n)] for h in histories], dtype=torch.float64)
            mean = values.mean(0)
            std = values.std(0) if len(histories) > 1 else torch.zeros_like(mean)
            epochs = list(range(1, n + 1))
            ax.plot(epochs, mean, color=f"C{i % 10}", label=name)
            ax.fill_between(epochs, mean - std, mean + std, color=f"C{i % 10}", alpha=0.2)
    left.set_ylabel(f"test {metric}")
    right.set_ylabel("training loss")
    for ax in (left, right):
        ax.set_xlabel("epoch")
    left.legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_learning_curve(episodes: list[int], returns: list[float], path: Path, title: str) -> Path:
    """An RL agent's episode return against episode, with a moving average over a tenth of the episodes."""
    fig, ax = _pyplot().subplots(figsize=(6, 3.2))
    ax.plot(episodes, returns, lw=0.8, alpha=0.5, label="episode return")
    w = max(1, len(returns) // 10)
    if len(returns) >= w > 1:
        smooth = [sum(returns[i - w + 1:i + 1]) / w for i in range(w - 1, len(returns))]
        ax.plot(episodes[w - 1:], smooth, lw=1.6, label=f"moving average ({w})")
    ax.set_xlabel("episode")
    ax.set_ylabel("return")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_team_diversity(points: dict[str, Any], path: Path, title: str) -> Path:
    """EnsembleBench's picture: every candidate team's accuracy against its focal diversity (lower = more
    diverse), on the meta split (where teams are chosen) and on the test split; the teams focal-diversity
    pruning kept are coloured, each method's chosen team is marked, and a dashed line shows the best single
    model (``points["single"]``: its meta and test accuracy), when given."""
    from matplotlib.figure import Figure

    div, kept = points["diversity"], points["kept"]
    fig = Figure(figsize=(11, 4.4))
    axes = fig.subplots(1, 2, sharex=True)
    markers = {"all": "s", "brute": "*", "greedy": "D", "focal": "P"}
    for ax, key, split in ((axes[0], "accuracy", "meta"), (axes[1], "test_accuracy", "test")):
        acc = points[key]
        ax.scatter(div[~kept], acc[~kept], s=6, color="0.6", alpha=0.5, label="team (pruned)" if kept.any()
                   else "team", rasterized=True)
        if kept.any():
            ax.scatter(div[kept], acc[kept], s=6, color="C0", alpha=0.6, label="team kept by focal pruning",
                       rasterized=True)
        if "single" in points:
            ax.axhline(points["single"][split], color="black", ls="--", lw=1, label="best single model")
        # Shrinking markers: teams chosen by several methods stay visible one inside the other.
        for i, (method, idx) in enumerate(points["marked"].items()):
            ax.scatter([div[idx]], [acc[idx]], s=260 - 70 * i, marker=markers.get(method, "o"), color=f"C{i + 1}",
                       edgecolor="black", zorder=3 + i, label=f"chosen by {method}")
        ax.set_xlabel("focal diversity (lower = more diverse)")
        ax.set_ylabel(f"team {split} accuracy")
        ax.set_title(f"{split} split")
    axes[0].legend(fontsize="small", loc="lower left")
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_profiles(panels: dict[str, dict[str, list[float]]], taus: list[float], path: Path, title: str) -> Path:
    """Performance profiles (:func:`mlrsnet.engine.stats.performance_profiles`), one panel per measure of time
    (``panels``: its title, e.g. "seconds to target", -> the profiles): the fraction of workloads on which each
    algorithm is within a factor tau of the fastest, tau on a log axis. The legend, ranked by the first panel's
    area, sits outside the axes."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    first = next(iter(panels.values()))
    order = sorted(first, key=lambda name: -sum(first[name]))
    colors = matplotlib.colormaps["tab20"].colors
    styles = ("-", "--", ":", "-.")
    # 10 strong colours, then the 10 light ones with another line style: no two schedules look alike
    look = {name: (colors[(2 * i) % 20 + (i // 10) % 2], styles[(i // 10) % 4]) for i, name in enumerate(order)}
    fig = Figure(figsize=(5.2 * len(panels) + 2.0, 4.4))
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, (panel, rho) in zip(axes, panels.items(), strict=True):
        for i, name in enumerate(order):
            offset = 0.004 * (i - len(order) / 2)  # curves that coincide (at 0 or 1) stay distinguishable
            ax.step(taus, [v + offset for v in rho[name]], where="post", lw=1.6, label=name, color=look[name][0],
                    linestyle=look[name][1])
        ax.set_xscale("log")
        ax.set_xlim(taus[0], taus[-1])
        ax.xaxis.set_major_locator(FixedLocator([t for t in (1, 1.25, 1.5, 2, 3, 4, 6, 8, 16, 32) if t <= taus[-1]]))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(-0.04, 1.04)
        ax.set_xlabel(f"tau ({panel} / the fastest's), log scale")
        ax.set_title(panel)
    axes[0].set_ylabel("fraction of workloads within tau")
    axes[-1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), title="ranked by area",
                    title_fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
