"""Transfer a meta-learned MLR-SNet: freeze it and schedule a task it never saw.

Command line (Hydra)::

    python -m mlrsnet.transfer +query=text_lstm [checkpoint=NAME|PATH gamma=checkpoint compare=[multistep,cosine]]

Python::

    from mlrsnet.transfer import transfer
    summary = transfer(cfg, run_dir="runs/my_transfer")   # cfg: the composed conf/transfer.yaml + query

The query's task is trained by :func:`mlrsnet.engine.loop.train_loop` (the loop meta-training uses) with the LR
that the frozen net emits at every step from that step's loss
(:class:`~mlrsnet.schedules.drivers.FrozenMLRSNetDriver`, built by :func:`mlrsnet.engine.build.build_run`), with the
inner SGD at momentum 0, as the reference meta-test (``conf/schedule/mlrsnet.yaml``). The protocol is the
reference meta-test's:

- ``checkpoint`` names a bundle (``null``: the shipped default bundle; a shipped short name such as
  ``paper_cifar10_resnet18``, the authors' three CIFAR-10 nets; a run's ``mlrsnet_bundle.pt``; or a list
  of files, each one net, a bundle or an authors' ``.pth``): its nets are swapped at equal fractions of
  the run (1/3 and 2/3 for three), the LSTM state carried across;
- ``gamma=recompute`` (default): gamma = |sqrt(L) ln(L C) / (4 C^0.25)| at the start and at each swap,
  with L the mean loss over the whole training split in eval mode at that moment and C the class count
  (vocabulary size for a language model); ``checkpoint``: each net's stored gamma; a number: that gamma.

``compare=[multistep,cosine,...]`` also trains the query under other schedules: any name ``schedule=``
accepts in :mod:`mlrsnet.train` except the meta-trained ``mlrsnet`` (:mod:`mlrsnet.schedules.drivers`: the
torch built-ins, stepped every iteration, and the rest of the zoo), each under its own defaults
(``conf/schedule/NAME.yaml``: its parameters, run-relative where null, and its optimiser: SGD momentum 0.9
for the SGDM baselines), with ``schedule_params.NAME.KEY=VALUE`` overrides, starting from the query's
``optimizer.lr``. Every schedule of a run uses the same seed, so the same model initialisation and the
same data order. The tables name the optimiser each schedule ran with.

Outputs in the run directory, as :mod:`mlrsnet.train` writes them: ``metrics.jsonl``, ``summary.json``,
``config.yaml`` (resolved), ``environment.json``, ``lr_schedule.csv`` / ``lr_schedule.png`` (the MLR-SNet
run); with ``compare``, ``compare/<name>/`` holds the same files for each baseline, and
``comparison.csv`` / ``comparison.md`` tabulate all of them.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from mlrsnet.checkpoint import resolve_checkpoint
from mlrsnet.engine.build import build_run, resolve_device, to_plain, validate
from mlrsnet.engine.figures import save_lr_schedule
from mlrsnet.engine.log import RunLogger, dump_config, read_metrics
from mlrsnet.engine.loop import train_loop
from mlrsnet.errors import ConfigError
from mlrsnet.io import atomic_write_json, atomic_write_text, file_sha256
from mlrsnet.net import GAMMA_FROM, MLRSNet
from mlrsnet.rundir import open_run_dir
from mlrsnet.schedules.drivers import META_TRAINED, check_schedule
from mlrsnet.schedules.scheduler import load_frozen

GAMMA_MODES = ("recompute", "checkpoint")


def checkpoint_list(value: Any) -> list[str | None]:
    """The ``checkpoint`` key as a list (``null`` is the shipped default bundle)."""
    if value is None or isinstance(value, str):
        return [value]
    items = list(value)
    if not items:
        raise ConfigError("checkpoint=[] names no checkpoint; give a path, a list of paths, or null")
    return [str(v) for v in items]


def validate_transfer(cfg: dict) -> None:
    """:func:`mlrsnet.engine.build.validate` (types, ranges), then the transfer's own keys, with messages that name
    the key and the fix; ``compare`` becomes a list."""
    if "query" not in cfg or "task" not in cfg:
        raise ConfigError("no query composed; run `python -m mlrsnet.transfer +query=NAME`")
    validate(cfg, "transfer")
    gamma = cfg["gamma"]
    if gamma not in GAMMA_MODES:
        try:
            value = float(gamma)
        except (TypeError, ValueError):
            value = math.nan
        if not value > 0:
            raise ConfigError(f"gamma={gamma!r}: use gamma=recompute, gamma=checkpoint or a positive number")
    if cfg.get("gamma_from", "auto") not in GAMMA_FROM:
        raise ConfigError(f"gamma_from={cfg['gamma_from']!r} is not one of {', '.join(GAMMA_FROM)}; "
                          "set gamma_from=auto")
    if isinstance(cfg["compare"], str):
        cfg["compare"] = [cfg["compare"]]
    cfg["compare"] = list(cfg["compare"] or [])
    for name in cfg["compare"]:
        if name == META_TRAINED:
            raise ConfigError("compare: mlrsnet is meta-trained in place (python -m mlrsnet.train); the transfer "
                              "run itself is the frozen MLR-SNet, so leave it out of compare")
        check_schedule(name)
    checkpoint_list(cfg["checkpoint"])


def _train_one(
    cfg: dict, name: str, run_dir: Path, config_yaml: str | None, nets: list[MLRSNet], sources: list[dict]
) -> dict:
    """Train the query task once under schedule ``name``; write ``run_dir`` and return its summary.
    Every call re-seeds, so every schedule gets the same initialisation and data order."""
    if name == META_TRAINED:
        run = build_run(cfg, schedule=name, frozen=nets)
        extra = {"checkpoints": sources, **run.info}
    else:
        run = build_run(cfg, schedule=name)
        extra = run.info
    task, seed, epochs = run.task, run.seed, int(cfg["epochs"])

    logger = RunLogger(run_dir, config_yaml=config_yaml or dump_config(cfg))
    loop_cfg = run.loop_config(f"{cfg['query']['name']} [{name}]")
    t0 = time.perf_counter()
    history = train_loop(task, run.train_model, run.optimizer, run.driver, loop_cfg, logger=logger)
    wall = time.perf_counter() - t0
    sched = getattr(run.driver, "scheduler", None)
    if name == META_TRAINED and sched is not None:
        extra = {**extra, "gammas": list(sched.gammas), "swap_losses": list(sched.swap_losses)}

    metric = task.info.metric
    key = f"test_{metric}"
    values = [h[key] for h in history]
    summary: dict[str, Any] = {
        "query": cfg["query"]["name"],
        "axis": cfg["query"].get("axis"),
        "task": task.info.name,
        "schedule": name,
        "seed": seed,
        "epochs": epochs,
        "steps": history[-1]["step"],
        "metric": metric,
        "higher_is_better": task.info.higher_is_better,
        f"final_{key}": values[-1],
        f"best_{key}": max(values) if task.info.higher_is_better else min(values),
        "final_train_loss": history[-1]["train_loss"],
        "lr_mean": sum(h["lr_mean"] for h in history) / len(history),
        "wall_time_s": wall,
        "run_dir": str(run_dir),
        **extra,
    }
    steps = [(r["step"], r["lr"]) for r in read_metrics(run_dir / "metrics.jsonl") if r.get("type") == "step"]
    if steps:
        save_lr_schedule(run_dir, steps, f"{cfg['query']['name']}: {name} LR (seed {seed})")
    logger.summary(summary)
    logger.close()
    return summary


def comparison_table(summaries: list[dict]) -> tuple[str, str]:
    """``(csv, markdown)`` of the schedules of one run: final and best test metric, final training
    loss, mean LR and wall time; the best final metric is in bold in the markdown."""
    metric = summaries[0]["metric"]
    key = f"test_{metric}"
    finals = [s[f"final_{key}"] for s in summaries]
    best = max(finals) if summaries[0]["higher_is_better"] else min(finals)
    cols = ["schedule", "optimizer", f"final_{key}", f"best_{key}", "final_train_loss", "lr_mean", "wall_time_s"]
    csv = ",".join(cols) + "\n" + "".join(
        ",".join([s["schedule"], f'"{s["optimizer"]}"'] + [f"{s[c]:.6g}" for c in cols[2:]]) + "\n"
        for s in summaries
    )
    s0 = summaries[0]
    md = [
        f"# Transfer: query {s0['query']} (task {s0['task']}, axis {s0['axis']}), seed {s0['seed']}, "
        f"{s0['epochs']} epochs",
        "",
        f"| schedule | optimizer | final test {metric} | best test {metric} | final train loss | mean LR | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for s, final in zip(summaries, finals, strict=True):
        shown = f"**{final:.4f}**" if final == best else f"{final:.4f}"
        md.append(f"| {s['schedule']} | {s['optimizer']} | {shown} | {s[f'best_{key}']:.4f} | "
                  f"{s['final_train_loss']:.4f} | {s['lr_mean']:.4g} | {s['wall_time_s']:.1f} |")
    return csv, "\n".join(md) + "\n"


def transfer(cfg: Any, run_dir: str | Path, config_yaml: str | None = None) -> dict:
    """Train ``cfg.query``'s task with a frozen MLR-SNet (and the ``compare`` baselines); write the run
    directory and return the MLR-SNet run's summary (with a ``comparison`` entry when comparing)."""
    cfg = to_plain(cfg)
    validate_transfer(cfg)
    with open_run_dir(run_dir) as locked:
        return _transfer(cfg, locked, config_yaml)


def _transfer(cfg: dict, run_dir: Path, config_yaml: str | None) -> dict:
    device = resolve_device(str(cfg["device"]))
    sources = checkpoint_list(cfg["checkpoint"])
    resolved = [resolve_checkpoint(s) for s in sources]
    records = [{"name": s, "path": str(p), "sha256": file_sha256(p)} for s, p in zip(sources, resolved, strict=True)]
    # Loaded once, before any seeding, so that building them draws nothing from the seeded generators.
    nets = load_frozen(resolved, device)

    summary = _train_one(cfg, "mlrsnet", run_dir, config_yaml, nets, records)
    if cfg["compare"]:
        summaries = [summary]
        for name in dict.fromkeys(cfg["compare"]):
            summaries.append(_train_one(cfg, name, run_dir / "compare" / name, None, nets, records))
        csv, md = comparison_table(summaries)
        atomic_write_text(run_dir / "comparison.csv", csv)
        atomic_write_text(run_dir / "comparison.md", md)
        key = f"final_test_{summary['metric']}"
        summary["comparison"] = {s["schedule"]: s[key] for s in summaries}
        atomic_write_json(run_dir / "summary.json", summary)
    return summary


def _hydra_main(cfg: Any) -> None:
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    summary = transfer(cfg, run_dir, config_yaml=OmegaConf.to_yaml(cfg, resolve=True))
    metric = summary["metric"]
    results = summary.get("comparison") or {"mlrsnet": summary[f"final_test_{metric}"]}
    shown = ", ".join(f"{name} {value:.4f}" for name, value in results.items())
    print(f"done: test {metric} {shown}; outputs in {run_dir}")


def main() -> None:
    from mlrsnet.engine.cli import run_hydra

    run_hydra(_hydra_main, config_name="transfer", group="query", command="transfer",
              validate=validate_transfer)


if __name__ == "__main__":
    main()
