"""Meta-train MLR-SNet on a task.

Command line (Hydra)::

    python -m mlrsnet.train +task=digits_cnn [epochs=30 seed=1 meta.backend=higher meta.K=2 ...]
    python -m mlrsnet.train +task=digits_cnn schedule=cosine [+schedule_params.cosine.warmup_epochs=1]
    python -m mlrsnet.train +family=cpu4 [seed=1 threads=1 family.sampling=proportional ...]

``+family=NAME`` meta-trains one MLR-SNet while the tasks of ``conf/family/NAME.yaml`` train side by side
(:mod:`mlrsnet.engine.family`: its outputs, resume, and which keys the family level sets).

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
from mlrsnet.engine.build import Run
from mlrsnet.engine.config import TrainConfig, parse_config
from mlrsnet.engine.family import FamilyPlan, execute_family, is_family, parse_family
from mlrsnet.engine.fingerprint import config_dict
from mlrsnet.engine.log import RunLogger, environment
from mlrsnet.engine.resume import StopSignals, bundle_epochs
from mlrsnet.engine.runner import RunRecord, execute
from mlrsnet.errors import ConfigError
from mlrsnet.io import file_sha256


def validate(cfg: Any) -> TrainConfig | FamilyPlan:
    """The typed config of ``python -m mlrsnet.train`` (:func:`mlrsnet.engine.config.parse_config`), and the
    train command's own check; a ``+family=NAME`` config as its :class:`~mlrsnet.engine.family.FamilyPlan`."""
    typed = parse_family(cfg) if is_family(cfg) else parse_config(cfg, "train")
    top = typed.top if isinstance(typed, FamilyPlan) else typed
    assert isinstance(top, TrainConfig)
    if top.copy_to_checkpoints and is_shipped(Path(top.checkpoints_dir) / "x.pt"):
        raise ConfigError(f"copy_to_checkpoints=true with checkpoints_dir={top.checkpoints_dir} would write "
                          "into the shipped checkpoints; set checkpoints_dir=<another folder>")
    return typed


def meta_train(cfg: Any, run_dir: str | Path, config_yaml: str | None = None) -> dict:
    """Meta-train MLR-SNet (``schedule=mlrsnet``) or train under any other schedule (``schedule=<name>``,
    :mod:`mlrsnet.schedules.catalog`) on ``cfg.task``; write the run directory and return the summary.

    Faults (:mod:`mlrsnet.engine.runner`): ``run_state.pt`` is saved atomically every ``save_every`` epochs and,
    on SIGTERM / SIGUSR1 / SIGUSR2, after the current step, before :class:`RunInterrupted` (exit code 75)
    or submitit's requeue. A run directory holding one is continued where it stopped (``resume=auto``),
    with the numbers an uninterrupted run would produce. A divergence stops the run with
    :class:`DivergenceError`, keeping the last good state, or, with ``guard.on_divergence=rollback``,
    restores that state and lowers the LR by ``guard.lr_factor``.

    The run directory is locked while the run writes to it (:class:`mlrsnet.rundir.RunDirLock`); a disk
    fault (full, read-only) is a one-line :class:`~mlrsnet.errors.WriteError` that leaves what was written
    before intact.

    A ``+family=NAME`` config meta-trains one net over the family's tasks
    (:func:`~mlrsnet.engine.family.execute_family`) and returns the family's summary.
    """
    typed = validate(cfg)
    if isinstance(typed, FamilyPlan):
        with StopSignals() as stop:
            return execute_family(typed, run_dir, stop, config_yaml=config_yaml)
    with StopSignals() as stop:
        # The handler is in place before the first save, so a Ctrl-C that finds run_state.pt always stops at a
        # step boundary with exit code 75 (never a bare KeyboardInterrupt between the two).
        record = execute(typed, run_dir, stop, config_yaml=config_yaml, finish=_save_nets)
    return record.summary()


def _save_nets(run: Run, record: RunRecord, run_dir: Path, logger: RunLogger) -> None:
    """A meta-trained MLR-SNet's files: ``mlrsnet.pt`` (the final net) and ``mlrsnet_bundle.pt`` (the nets after
    epochs 1, N/2 and N, the transfer bundle), and the copy of ``copy_to_checkpoints``."""
    net, cfg = run.net, run.cfg
    if net is None:
        return
    assert isinstance(cfg, TrainConfig)
    info, seed, plain = run.task.info, run.seed, config_dict(cfg)
    record.info["gamma"] = float(net.gamma)
    path = run_dir / "mlrsnet.pt"
    save_mlrsnet(path, net, task=info.name, num_classes=info.num_classes, loss_scale=info.loss_scale,
                 initial_loss=run.l0, config=plain, epochs=cfg.epochs, **environment())
    record.info["checkpoint"] = str(path)
    epochs = bundle_epochs(cfg.epochs)
    bundle = run_dir / BUNDLE_FILE
    nets = [load_mlrsnet(run_dir / SNAPSHOT_DIR / f"mlrsnet_epoch{e:04d}.pt")[0] for e in epochs]
    save_bundle(bundle, nets, epochs, task=info.name, num_classes=info.num_classes, loss_scale=info.loss_scale,
                initial_loss=run.l0, config=plain, **environment())
    record.info["bundle"] = {"path": str(bundle.resolve()), "epochs": epochs, "sha256": file_sha256(bundle)}
    if cfg.logger.log_checkpoint:
        logger.artifact(path, f"mlrsnet-{info.name}-seed{seed}", "model")
    if cfg.copy_to_checkpoints:
        dest = Path(cfg.checkpoints_dir) / f"{info.name}_seed{seed}.pt"
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".pt.tmp")
        shutil.copyfile(bundle, tmp)
        tmp.replace(dest)
        record.info["checkpoint_copy"] = {"path": str(dest.resolve()), "sha256": file_sha256(dest)}


def _hydra_main(cfg: Any) -> None:
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    summary = meta_train(cfg, run_dir, config_yaml=OmegaConf.to_yaml(cfg, resolve=True))
    if "family" in summary:
        for name, member in summary["members"].items():
            metric = member["metric"]
            print(f"{name}: test {metric} {member[f'final_test_{metric}']:.4f}")
        print(f"done: family {summary['family']}; bundle {summary['bundle']['path']}; outputs in {run_dir}")
        return
    metric = summary["metric"]
    print(f"done: test {metric} {summary[f'final_test_{metric}']:.4f}; outputs in {run_dir}")


def main() -> None:
    import sys

    from mlrsnet.engine.cli import fail, run_hydra

    groups = {a.partition("=")[0].lstrip("+") for a in sys.argv[1:] if "=" in a}
    if {"task", "family"} <= groups:
        fail("give +task=NAME or +family=NAME, not both; a family lists its tasks in conf/family/NAME.yaml")
    group = "family" if "family" in groups else "task"
    run_hydra(_hydra_main, config_name="train", group=group, command="train", validate=validate)


if __name__ == "__main__":
    main()
