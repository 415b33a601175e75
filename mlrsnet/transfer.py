"""Transfer a meta-learned MLR-SNet: freeze it and schedule a task it never saw.

Command line (Hydra)::

    python -m mlrsnet.transfer +query=text_lstm [checkpoint=NAME|PATH gamma=checkpoint compare=[multistep,cosine]]

Python::

    from mlrsnet.transfer import transfer
    summary = transfer(cfg, run_dir="runs/my_transfer")   # cfg: the composed conf/transfer.yaml + query

The query's task is trained through the runner every command uses (:mod:`mlrsnet.engine.runner`) under the
schedule ``mlrsnet_frozen`` (:mod:`mlrsnet.schedules.catalog.mlrsnet_frozen`): the LR that the frozen net emits at
every step from that step's loss, the inner SGD at momentum 0, as the reference meta-test. The protocol is the
reference meta-test's:

- ``checkpoint`` names a bundle (``null``: the shipped default bundle; a shipped short name such as
  ``paper_cifar10_resnet18``, the authors' three CIFAR-10 nets; a run's ``mlrsnet_bundle.pt``; or a list
  of files, each one net, a bundle or an authors' ``.pth``): its nets are swapped at equal fractions of
  the run (1/3 and 2/3 for three), the LSTM state carried across;
- ``reading=auto`` (default): the authors' published nets are read with their meta-test cell (input, forget
  without shift, candidate, output gates), as their ``meta_test.py`` loads them; ``reading=meta_train`` reads
  them with their meta-train cell instead; our own files always load as they were trained;
- ``gamma=recompute`` (default): gamma = |sqrt(L) ln(L C) / (4 C^0.25)| at the start and at each swap,
  with L the mean loss over the whole training split in eval mode at that moment and C the class count
  (vocabulary size for a language model); ``checkpoint``: each net's stored gamma; a number: that gamma.

``compare=[multistep,cosine,...]`` also trains the query under other schedules: any name ``schedule=``
accepts in :mod:`mlrsnet.train` except the meta-trained ``mlrsnet`` (:mod:`mlrsnet.schedules.drivers`: the
torch built-ins, stepped every iteration, and the rest of the zoo), each under its own defaults
(its declaration in ``mlrsnet/schedules/catalog/NAME.py``: its parameters, run-relative where null, and its
optimiser: SGD momentum 0.9 for the SGDM baselines), with ``schedule_params.NAME.KEY=VALUE`` overrides,
starting from the query's ``optimizer.lr``. Every schedule of a run uses the same seed, so the same model
initialisation and the same data order. The tables name the optimiser each schedule ran with.

Outputs in the run directory, as :mod:`mlrsnet.train` writes them: ``metrics.jsonl``, ``summary.json``,
``config.yaml`` (resolved), ``environment.json``, ``lr_schedule.csv`` / ``lr_schedule.png`` (the MLR-SNet
run); with ``compare``, ``compare/<name>/`` holds the same files for each baseline, and
``comparison.csv`` / ``comparison.md`` tabulate all of them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from mlrsnet.engine.config import ScheduleChoice, TransferConfig, parse_config
from mlrsnet.engine.resume import StopSignals
from mlrsnet.engine.runner import execute
from mlrsnet.io import atomic_write_json, atomic_write_text
from mlrsnet.schedules.registry import get_schedule
from mlrsnet.schedules.scheduler import load_frozen

FROZEN = "mlrsnet_frozen"


def validate_transfer(cfg: Any) -> TransferConfig:
    """The typed config of ``python -m mlrsnet.transfer`` (:func:`mlrsnet.engine.config.parse_config`)."""
    typed = parse_config(cfg, "transfer")
    assert isinstance(typed, TransferConfig)
    return typed


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
    directory and return the MLR-SNet run's summary (with a ``comparison`` entry when comparing).

    Each run goes through the runner (:func:`mlrsnet.engine.runner.execute`): locked directories, the run state
    saved every epoch and on SIGTERM / SIGUSR1 / SIGUSR2 (exit code 75); the same command resumes the run in
    flight and reuses the finished ones."""
    typed = validate_transfer(cfg)
    run_dir = Path(run_dir)
    frozen = typed.frozen()
    # Loaded once, before any seeding, so that building them draws nothing from the seeded generators.
    nets = load_frozen(frozen.checkpoint, "cpu", frozen.reading)
    records = _checkpoint_records(frozen.checkpoint)
    choice = ScheduleChoice(FROZEN, dict(get_schedule(FROZEN).optimizer),
                            dataclasses.replace(frozen, checkpoint=nets))
    query = {"query": typed.query.name, "axis": typed.query.axis}
    with StopSignals() as stop:
        main = execute(typed, run_dir, stop, schedule=choice, desc=f"{typed.query.name} [mlrsnet]",
                       config_yaml=config_yaml, gamma_key="gamma", extra={**query, "checkpoints": records})
        summary = {**main.summary(), "schedule": "mlrsnet"}
        atomic_write_json(run_dir / "summary.json", summary)
        if not typed.compare:
            return summary
        summaries = [summary]
        for name in dict.fromkeys(typed.compare):
            rec = execute(typed, run_dir / "compare" / name, stop, schedule=name, desc=f"{typed.query.name} [{name}]",
                          extra=query)
            summaries.append(rec.summary())
    csv, md = comparison_table(summaries)
    atomic_write_text(run_dir / "comparison.csv", csv)
    atomic_write_text(run_dir / "comparison.md", md)
    key = f"final_test_{summary['metric']}"
    summary["comparison"] = {s["schedule"]: s[key] for s in summaries}
    atomic_write_json(run_dir / "summary.json", summary)
    return summary


def _checkpoint_records(checkpoint: Any) -> list[dict]:
    from mlrsnet.checkpoint import resolve_checkpoint
    from mlrsnet.io import file_sha256
    from mlrsnet.schedules.catalog.mlrsnet_frozen import sources

    return [{"name": s, "path": str(p), "sha256": file_sha256(p)}
            for s, p in ((s, resolve_checkpoint(s)) for s in sources(checkpoint))]


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
