"""Meta-train MLR-SNet on a task.

Command line (Hydra)::

    python -m mlrsnet.train +task=digits_cnn [epochs=30 seed=1 meta.backend=higher meta.K=2 ...]
    python -m mlrsnet.train +task=digits_cnn schedule=cosine [+schedule_params.cosine.warmup_epochs=1]

Python::

    from mlrsnet.train import meta_train
    summary = meta_train(cfg, run_dir="runs/my_run")   # cfg: the composed conf/train.yaml + task

Outputs in the run directory: ``metrics.jsonl`` (per step the LR and loss, per epoch train / meta /
test metrics and LR statistics), ``summary.json``, ``config.yaml`` (resolved), ``environment.json``
(package versions, git commit), ``mlrsnet.pt`` (the learned MLR-SNet), ``mlrsnet_bundle.pt`` (the
transfer bundle: the nets after epochs 1, N/2 and N with their gamma and config, what
:mod:`mlrsnet.transfer` and :class:`~mlrsnet.schedules.scheduler.MLRSNetScheduler` take), ``lr_schedule.csv`` /
``lr_schedule.png`` (the learned LR against iteration), ``run_state.pt`` (everything a resumed run
needs, see :mod:`mlrsnet.engine.resume`) and ``snapshots/`` (MLR-SNet at a few epochs, for :mod:`mlrsnet.plot`).
Exit codes: 0 done, 2 bad input, 3 diverged (:class:`DivergenceError`), 75 stopped by a signal with the
state saved (:class:`RunInterrupted`; run the same command again to continue).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from mlrsnet.checkpoint import BUNDLE_FILE, SNAPSHOT_DIR, is_shipped, load_mlrsnet, save_bundle, save_mlrsnet
from mlrsnet.engine.build import build_run, to_plain, validate
from mlrsnet.engine.figures import save_lr_schedule
from mlrsnet.engine.log import RunLogger, WandbSink, dump_config, environment, read_metrics
from mlrsnet.engine.loop import Diverged, Interrupted, train_loop
from mlrsnet.engine.resume import RUN_STATE, Checkpointer, StopSignals, bundle_epochs, loop_position, previous_state
from mlrsnet.errors import ConfigError, RunInterrupted
from mlrsnet.io import file_sha256
from mlrsnet.rundir import open_run_dir


def meta_train(cfg: Any, run_dir: str | Path, config_yaml: str | None = None) -> dict:
    """Meta-train MLR-SNet (``schedule=mlrsnet``) or train under any other schedule (``schedule=<name>``,
    see :mod:`mlrsnet.schedules.drivers`) on ``cfg.task``; write the run directory and return the summary.

    Faults (:mod:`mlrsnet.engine.resume`): ``run_state.pt`` is saved atomically every ``save_every`` epochs and,
    on SIGTERM / SIGUSR1 / SIGUSR2, after the current step, before :class:`RunInterrupted` (exit code 75)
    or submitit's requeue. A run directory holding one is continued where it stopped (``resume=auto``),
    with the numbers an uninterrupted run would produce. A divergence stops the run with
    :class:`DivergenceError`, keeping the last good state, or, with ``guard.on_divergence=rollback``,
    restores that state and lowers the LR by ``guard.lr_factor``.

    The run directory is locked while the run writes to it (:class:`mlrsnet.rundir.RunDirLock`); a disk
    fault (full, read-only) is a one-line :class:`~mlrsnet.errors.WriteError` that leaves what was written
    before intact.
    """
    cfg = to_plain(cfg)
    validate(cfg)
    if cfg.get("copy_to_checkpoints") and is_shipped(Path(cfg.get("checkpoints_dir", "checkpoints")) / "x.pt"):
        raise ConfigError(f"copy_to_checkpoints=true with checkpoints_dir={cfg['checkpoints_dir']} would write "
                          "into the shipped checkpoints; set checkpoints_dir=<another folder>")
    with open_run_dir(run_dir) as locked:
        return _meta_train(cfg, locked, config_yaml)


def _meta_train(cfg: dict, run_dir: Path, config_yaml: str | None) -> dict:
    saved = previous_state(cfg, run_dir / RUN_STATE)
    run = build_run(cfg, l0=None if saved is None else float(saved["initial_loss"]))
    task, net, seed, l0 = run.task, run.net, run.seed, run.l0

    resume_at = None if saved is None else saved["metrics_bytes"]
    logger = RunLogger(run_dir, config_yaml=config_yaml or dump_config(cfg), resume_at=resume_at)
    if cfg["logger"]["name"] == "wandb":
        wandb_id = None if saved is None else saved["wandb_id"]
        logger.sinks.append(WandbSink(run_dir, cfg, cfg["logger"], run_id=wandb_id))
    loop_cfg = run.loop_config(f"{task.info.name} [{run.schedule}]")
    ckpt = Checkpointer(run_dir, cfg, run, logger, l0, saved)
    # The handler is in place before the first save, so a Ctrl-C that finds run_state.pt always
    # stops at a step boundary with exit code 75 (never a bare KeyboardInterrupt between the two).
    with StopSignals() as stop:
        if saved is None:
            position = loop_position({"epoch": 0, "global_step": 0, "history": [], "progress": None})
            ckpt.snapshot(0)
            ckpt.save(0, 0, [])
        else:
            run.load_state_dict(saved["training"])
            position = loop_position(saved)
            print(f"resuming {run_dir} after step {saved['global_step']} ({saved['epoch']} epochs complete)",
                  flush=True)

        while True:
            try:
                history = train_loop(
                    task, run.train_model, run.optimizer, run.driver, loop_cfg, logger=logger, engine=run.engine,
                    on_epoch_end=ckpt.on_epoch_end, stop_requested=stop.requested, **position,
                )
                break
            except Interrupted as e:
                ckpt.save(e.epoch, e.global_step, e.history, e.progress)
                logger.close()
                stop.forward()
                raise RunInterrupted(
                    f"stopped by {stop.name} after step {e.global_step} ({e.epoch} epochs complete); state saved "
                    f"in {ckpt.path}: rerun the same command with hydra.run.dir={run_dir} to continue"
                ) from None
            except Diverged as d:
                position = ckpt.recover(d)

    metric = task.info.metric
    key = f"test_{metric}"
    finals = [h[key] for h in history]
    summary: dict[str, Any] = {
        "status": "complete",
        "task": task.info.name,
        "schedule": run.schedule,
        "optimizer": run.info["optimizer"],
        **({"checkpoints": run.info["checkpoints"]} if "checkpoints" in run.info else {}),
        "seed": seed,
        "epochs": loop_cfg.epochs,
        "initial_loss": l0,
        "metric": metric,
        f"final_{key}": finals[-1],
        f"best_{key}": max(finals) if task.info.higher_is_better else min(finals),
        "final_meta_" + metric: history[-1].get(f"meta_{metric}"),
        "final_train_loss": history[-1]["train_loss"],
        "wall_time_s": ckpt.wall_time(),
        "rollbacks": ckpt.rollbacks,
        "run_dir": str(run_dir),
    }
    if net is not None:
        summary["gamma"] = float(net.gamma)
        path = run_dir / "mlrsnet.pt"
        info = task.info
        save_mlrsnet(
            path, net, task=info.name, num_classes=info.num_classes, loss_scale=info.loss_scale,
            initial_loss=l0, config=cfg, epochs=loop_cfg.epochs, **environment(),
        )
        summary["checkpoint"] = str(path)
        epochs = bundle_epochs(loop_cfg.epochs)
        bundle = run_dir / BUNDLE_FILE
        nets = [load_mlrsnet(run_dir / SNAPSHOT_DIR / f"mlrsnet_epoch{e:04d}.pt")[0] for e in epochs]
        save_bundle(bundle, nets, epochs, task=info.name, num_classes=info.num_classes, loss_scale=info.loss_scale,
                    initial_loss=l0, config=cfg, **environment())
        summary["bundle"] = {"path": str(bundle.resolve()), "epochs": epochs, "sha256": file_sha256(bundle)}
        if cfg["logger"].get("log_checkpoint", True):
            logger.artifact(path, f"mlrsnet-{task.info.name}-seed{seed}", "model")
        if cfg.get("copy_to_checkpoints"):
            dest = Path(cfg.get("checkpoints_dir", "checkpoints")) / f"{task.info.name}_seed{seed}.pt"
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_suffix(".pt.tmp")
            shutil.copyfile(bundle, tmp)
            tmp.replace(dest)
            summary["checkpoint_copy"] = {"path": str(dest.resolve()), "sha256": file_sha256(dest)}
    steps = [(r["step"], r["lr"]) for r in read_metrics(run_dir / "metrics.jsonl") if r.get("type") == "step"]
    if steps:
        save_lr_schedule(run_dir, steps, f"{task.info.name}: {run.schedule} LR (seed {seed})")
        logger.image("lr_schedule", run_dir / "lr_schedule.png")
    logger.summary(summary)
    logger.close()
    return summary


def _hydra_main(cfg: Any) -> None:
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    summary = meta_train(cfg, run_dir, config_yaml=OmegaConf.to_yaml(cfg, resolve=True))
    metric = summary["metric"]
    print(f"done: test {metric} {summary[f'final_test_{metric}']:.4f}; outputs in {run_dir}")


def main() -> None:
    from mlrsnet.engine.cli import run_hydra

    run_hydra(_hydra_main, config_name="train", group="task", command="train", validate=validate)


if __name__ == "__main__":
    main()
