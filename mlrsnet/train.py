"""Meta-train MLR-SNet on a task.

Command line (Hydra)::

    python -m mlrsnet.train +task=digits_cnn [epochs=30 seed=1 meta.backend=higher meta.K=2 ...]
    python -m mlrsnet.train +task=digits_cnn schedule=cosine [+schedule_params.cosine.warmup_epochs=1]

Python::

    from mlrsnet.train import meta_train
    summary = meta_train(cfg, run_dir="runs/my_run")   # cfg: the composed conf/train.yaml + task

Outputs in the run directory: ``metrics.jsonl`` (per step the LR and loss, per epoch train / meta /
test metrics and LR statistics), ``summary.json``, ``config.yaml`` (resolved), ``environment.json``
(package versions, git commit), ``mlrsnet.pt`` (the learned MLR-SNet), ``lr_schedule.csv`` /
``lr_schedule.png`` (the learned LR against iteration), ``run_state.pt`` (everything a resumed run
needs, see :mod:`mlrsnet.resume`) and ``snapshots/`` (MLR-SNet at a few epochs, for :mod:`mlrsnet.plot`).
Exit codes: 0 done, 2 bad input, 3 diverged (:class:`DivergenceError`), 75 stopped by a signal with the
state saved (:class:`RunInterrupted`; run the same command again to continue).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch

from mlrsnet.checkpoint import atomic_write_text, save_mlrsnet
from mlrsnet.errors import ConfigError, DivergenceError, RunInterrupted
from mlrsnet.log import RunLogger, WandbSink, environment, read_metrics
from mlrsnet.loop import (
    Diverged,
    EpochProgress,
    Guard,
    Interrupted,
    LoopConfig,
    LRDriver,
    MLRSNetDriver,
    train_loop,
)
from mlrsnet.meta.engine import MetaEngine
from mlrsnet.net import MLRSNet, MLRSNetConfig, compute_gamma
from mlrsnet.plot import SNAPSHOT_DIR, plot_lr
from mlrsnet.resume import (
    RUN_STATE,
    StopSignals,
    check_same_config,
    load_run_state,
    rng_states,
    save_run_state,
    set_rng_states,
)
from mlrsnet.schedules.drivers import META_TRAINED, build_driver, check_schedule
from mlrsnet.tasks import Task, build_task
from mlrsnet.utils import build_optimizer, dump_config, resolve_device, seed_everything, to_plain


def _value(cfg: dict, key: str, kind: type) -> Any:
    """``cfg[key]`` (dotted) converted to ``kind``; a wrong type is a one-line ConfigError."""
    value: Any = cfg
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    try:
        if kind is int and (isinstance(value, bool) or float(value) != int(float(value))):
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        name = "an integer" if kind is int else "a number"
        raise ConfigError(f"{key} must be {name}, got {value!r}; set {key}=<{name.split()[-1]}>") from None


def validate(cfg: dict) -> None:
    """Type and range checks with messages that name the key and the fix."""
    _value(cfg, "seed", int)
    for key, low in (("epochs", 1), ("batch_size", 1), ("meta.interval", 1), ("meta.batch_size", 1),
                     ("save_every", 1), ("snapshots", 0), ("guard.max_rollbacks", 0)):
        if _value(cfg, key, int) < low:
            raise ConfigError(f"{key} must be >= {low}, got {_value(cfg, key, int)}")
    for key in ("meta.lr", "optimizer.lr"):
        if _value(cfg, key, float) <= 0:
            raise ConfigError(f"{key} must be positive, got {_value(cfg, key, float):g}")
    noise = cfg["task"].get("noise") or {}
    rate = _value({"rate": noise.get("rate", 0.0)}, "rate", float)
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"task.noise.rate must be in [0, 1), got {rate}")
    check_schedule(cfg["schedule"])
    if not isinstance(cfg.get("schedule_params") or {}, dict):
        raise ConfigError("schedule_params must map schedule names to their parameters, e.g. "
                          "+schedule_params.step.gamma=0.5")
    if cfg["resume"] not in ("auto", True, False):
        raise ConfigError(f"resume must be auto, true or false, got {cfg['resume']!r}")
    guard = cfg["guard"]
    if guard["on_divergence"] not in ("stop", "rollback"):
        raise ConfigError(
            f"guard.on_divergence must be stop or rollback, got {guard['on_divergence']!r}"
        )
    if not 0.0 < _value(cfg, "guard.lr_factor", float) < 1.0:
        raise ConfigError(f"guard.lr_factor must be in (0, 1), got {guard['lr_factor']}")
    lr_min = _value(cfg, "guard.lr_min", float)
    if guard["lr_max"] is not None and _value(cfg, "guard.lr_max", float) <= lr_min:
        raise ConfigError(f"guard.lr_max must be above guard.lr_min ({lr_min:g}), got {guard['lr_max']}")
    if cfg["logger"]["name"] not in ("none", "wandb"):
        raise ConfigError(f"unknown logger {cfg['logger']['name']!r}; use logger=none or logger=wandb")


def ensure_writable(run_dir: Path) -> None:
    """Create the run directory and prove it is writable, before any work is done."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write_test_{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ConfigError(
            f"cannot write to the run directory {run_dir} ({e.strerror or type(e).__name__}); "
            "choose a writable one with hydra.run.dir=PATH (hydra.sweep.dir=PATH with -m)"
        ) from None


@torch.no_grad()
def initial_loss(task: Task, model: torch.nn.Module, seed: int) -> float:
    """L0: the mean training loss of the freshly initialised model over a few random training
    batches (eval mode, so BatchNorm statistics are untouched), from a dedicated generator."""
    saved = task.meta_generator.get_state()
    task.meta_generator.manual_seed(seed + 15485863)
    was_training = model.training
    model.eval()
    losses = [float(task.loss(model, task.random_train_batch())) for _ in range(4)]
    model.train(was_training)
    task.meta_generator.set_state(saved)
    return sum(losses) / len(losses)


def apply_speed_options(
    cfg: dict, task: Task, model: torch.nn.Module, device: torch.device
) -> torch.nn.Module:
    """Apply the ``amp``, ``channels_last`` and ``compile`` keys; return the module the loop calls.

    ``amp`` turns on the task's bf16 autocast (CUDA only). ``channels_last`` converts the model's 4-D
    weights in place; a convolution with NHWC weights converts its input once and emits NHWC, so batches
    need no conversion of their own. ``compile`` returns ``torch.compile(model)`` (CUDA only) for the
    loop's training and evaluation passes; the meta engine must keep the plain ``model``, whose parameters
    it substitutes through ``torch.func.functional_call`` (``exact``) or copies (``higher``).
    """
    cuda = device.type == "cuda"
    if cfg.get("amp") and cuda:
        task.autocast_dtype = torch.bfloat16
    if cfg.get("channels_last"):
        model.to(memory_format=torch.channels_last)
    return torch.compile(model) if cfg.get("compile") and cuda else model


def build_net(cfg: dict, task: Task, l0: float, device: torch.device) -> MLRSNet:
    ncfg = cfg["net"]
    gamma = ncfg.get("gamma")
    if gamma is None:
        gamma = compute_gamma(l0, task.info.num_classes, float(ncfg.get("gamma_min", 1e-2)))
    elif float(gamma) <= 0:
        raise ConfigError(f"net.gamma must be positive (or null to compute it), got {gamma}")
    return MLRSNet(MLRSNetConfig(hidden_size=int(ncfg.get("hidden_size", 50))), gamma=float(gamma)).to(device)


class Schedule(NamedTuple):
    """The optimiser a run trains with, its LR driver and, for ``schedule=mlrsnet``, the MLR-SNet being
    meta-trained and its meta engine."""

    optimizer: torch.optim.Optimizer
    driver: LRDriver
    net: MLRSNet | None
    engine: MetaEngine | None


def build_schedule(
    cfg: dict, task: Task, model: torch.nn.Module, optimizer: torch.optim.Optimizer, l0: float,
    device: torch.device, lr_multiplier: float = 1.0,
) -> Schedule:
    """The schedule ``cfg["schedule"]`` over ``optimizer``: ``mlrsnet`` is a fresh MLR-SNet (gamma times
    ``lr_multiplier``) meta-trained in place by a :class:`MetaEngine`; every other name goes to
    :func:`~mlrsnet.schedules.drivers.build_driver` with ``cfg["schedule_params"][name]``."""
    name = cfg["schedule"]
    if name == META_TRAINED:
        torch.manual_seed(int(cfg["seed"]) + 1)
        net = build_net(cfg, task, l0, device)
        net.set_gamma(float(net.gamma) * lr_multiplier)
        engine = MetaEngine(
            net, task, model, optimizer, backend=cfg["meta"]["backend"], K=int(cfg["meta"]["K"]),
            meta_lr=float(cfg["meta"]["lr"]), meta_weight_decay=float(cfg["meta"]["weight_decay"]),
            grad_clip=cfg.get("grad_clip"), first_order=bool(cfg["meta"].get("first_order", False)),
        )
        return Schedule(optimizer, MLRSNetDriver(net, optimizer, task.info.loss_scale), net, engine)
    steps = task.steps_per_epoch
    optimizer, driver = build_driver(
        name, optimizer, model, task, total_steps=int(cfg["epochs"]) * steps, steps_per_epoch=steps,
        params=(cfg.get("schedule_params") or {}).get(name), lr_multiplier=lr_multiplier,
    )
    return Schedule(optimizer, driver, None, None)


def save_lr_schedule(run_dir: Path, history_steps: list[tuple[int, float]], title: str) -> None:
    """Write the LR against iteration as CSV and PNG."""
    rows = "".join(f"{s},{lr:.8g}\n" for s, lr in history_steps)
    atomic_write_text(run_dir / "lr_schedule.csv", "step,lr\n" + rows)
    plot_lr(history_steps, run_dir / "lr_schedule.png", title)


def snapshot_epochs(epochs: int, count: int) -> set[int]:
    """``count`` evenly spaced epochs from 0 (before training) to ``epochs``, at which MLR-SNet's weights
    are kept for :mod:`mlrsnet.plot`."""
    if count <= 0:
        return set()
    if count == 1:
        return {epochs}
    return {round(i * epochs / (count - 1)) for i in range(count)}


@dataclass
class Trainee:
    """The live objects of a training run: what ``run_state.pt`` captures and restores."""

    task: Task
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    driver: LRDriver
    net: MLRSNet | None
    engine: MetaEngine | None

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "driver": self.driver.state_dict(),
            "net": None if self.net is None else self.net.state_dict(),
            "engine": None if self.engine is None else self.engine.state_dict(),
            "task_rng": self.task.rng_state(),
            "rng": rng_states(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.net is not None:
            self.net.load_state_dict(state["net"])
        if self.engine is not None:
            self.engine.load_state_dict(state["engine"])
        self.driver.load_state_dict(state["driver"])
        self.task.set_rng_state(state["task_rng"])
        set_rng_states(state["rng"])



def previous_state(cfg: dict, path: Path) -> dict | None:
    """The run state to continue from, per ``resume`` (auto / true / false), or None to start afresh."""
    if cfg["resume"] is False:
        return None
    if not path.is_file():
        if cfg["resume"] is True:
            raise ConfigError(
                f"resume=true but {path.parent} has no {RUN_STATE}; point hydra.run.dir at the directory of "
                "the run to continue, or drop resume=true to start a new run"
            )
        return None
    saved = load_run_state(path)
    check_same_config(saved["config"], cfg, path)
    return saved


class Checkpointer:
    """Keeps a run directory's ``run_state.pt`` and MLR-SNet snapshots, and recovers from divergence."""

    def __init__(self, run_dir: Path, cfg: dict, trainee: Trainee, logger: RunLogger, l0: float,
                 saved: dict | None) -> None:
        self.run_dir, self.cfg, self.trainee, self.logger, self.l0 = run_dir, cfg, trainee, logger, l0
        self.path = run_dir / RUN_STATE
        self.epochs = int(cfg["epochs"])
        self.snapshots = snapshot_epochs(self.epochs, int(cfg["snapshots"]))
        self.t0 = time.perf_counter()
        self.wall_before = 0.0 if saved is None else float(saved["wall_time_s"])
        self.rollbacks = 0 if saved is None else int(saved["rollbacks"])

    def wall_time(self) -> float:
        return self.wall_before + time.perf_counter() - self.t0

    def save(
        self, epoch: int, global_step: int, history: list[dict], progress: EpochProgress | None = None
    ) -> None:
        sink = next((s for s in self.logger.sinks if isinstance(s, WandbSink)), None)
        save_run_state(self.path, {
            "config": self.cfg, "epoch": epoch, "global_step": global_step, "history": history,
            "progress": None if progress is None else progress.state_dict(),
            "metrics_bytes": self.logger.position(), "training": self.trainee.state_dict(),
            "initial_loss": self.l0, "wall_time_s": self.wall_time(), "rollbacks": self.rollbacks,
            "wandb_id": None if sink is None else sink.id,
        })

    def snapshot(self, epoch: int) -> None:
        net, task = self.trainee.net, self.trainee.task
        if net is not None and epoch in self.snapshots:
            save_mlrsnet(
                self.run_dir / SNAPSHOT_DIR / f"mlrsnet_epoch{epoch:04d}.pt", net, task=task.info.name,
                num_classes=task.info.num_classes, loss_scale=task.info.loss_scale, initial_loss=self.l0,
                epoch=epoch, state=net.state,
            )

    def on_epoch_end(self, epoch: int, global_step: int, history: list[dict]) -> None:
        self.snapshot(epoch)
        if epoch % int(self.cfg["save_every"]) == 0 or epoch == self.epochs:
            self.save(epoch, global_step, history)

    def recover(self, d: Diverged) -> dict:
        """After a divergence: roll back to the last good state with a lower LR and return the loop
        position to continue from, or (``on_divergence=stop``, or too many rollbacks) log it, write a
        ``diverged`` summary and raise a one-line :class:`DivergenceError`."""
        guard = self.cfg["guard"]
        last = load_run_state(self.path)
        record = {"type": "divergence", "step": d.step, "epoch": d.epoch, "loss": d.loss, "lr": d.lr,
                  "reason": d.reason, "last_good_epoch": last["epoch"]}
        if guard["on_divergence"] == "rollback" and self.rollbacks < int(guard["max_rollbacks"]):
            self.rollbacks += 1
            self.trainee.load_state_dict(last["training"])
            self.trainee.driver.scale_lr(self.trainee.optimizer, float(guard["lr_factor"]))
            self.logger.rewind(last["metrics_bytes"])
            self.logger.log({**record, "action": "rollback", "lr_factor": float(guard["lr_factor"])})
            self.save(last["epoch"], last["global_step"], last["history"])
            return loop_position(last)
        task = self.trainee.task
        self.logger.log({**record, "action": "stop"})
        self.logger.summary({"status": "diverged", "task": task.info.name, "schedule": self.cfg["schedule"],
                             "seed": int(self.cfg["seed"]), "divergence": record, "rollbacks": self.rollbacks,
                             "run_dir": str(self.run_dir)})
        self.logger.close()
        knob = "net.gamma" if self.trainee.net is not None else "optimizer.lr"
        raise DivergenceError(
            f"training diverged at step {d.step} (epoch {d.epoch}): {d.reason}, loss {d.loss:.4g}, lr "
            f"{d.lr:.4g}; the last good state (epoch {last['epoch']}) is kept in {self.path}; lower "
            f"{knob}, or add guard.on_divergence=rollback to restore that state with a lower LR"
        )


def loop_position(state: dict) -> dict:
    """:func:`train_loop`'s keyword arguments that continue from a saved run state."""
    progress = state["progress"]
    return {
        "start_epoch": state["epoch"], "global_step": state["global_step"], "history": state["history"],
        "progress": None if progress is None else EpochProgress.from_state_dict(progress),
    }


def build_run(cfg: dict, seed: int) -> tuple[Task, torch.nn.Module, torch.nn.Module, torch.optim.Optimizer]:
    """The seeded task, model (plain, and as the loop calls it with the speed options applied) and base
    optimiser. Every entry point builds them here, in this order, so one seed means one split, label
    noise, data order and initialisation whatever the schedule."""
    device = resolve_device(str(cfg["device"]))
    seed_everything(seed)
    task = build_task(cfg["task"], seed, device)
    torch.manual_seed(seed)
    model = task.build_model()
    train_model = apply_speed_options(cfg, task, model, device)
    optimizer = build_optimizer(model.parameters(), cfg["optimizer"])
    return task, model, train_model, optimizer


def meta_train(cfg: Any, run_dir: str | Path, config_yaml: str | None = None) -> dict:
    """Meta-train MLR-SNet (``schedule=mlrsnet``) or train under any other schedule (``schedule=<name>``,
    see :mod:`mlrsnet.schedules.drivers`) on ``cfg.task``; write the run directory and return the summary.

    Faults (:mod:`mlrsnet.resume`): ``run_state.pt`` is saved atomically every ``save_every`` epochs and,
    on SIGTERM / SIGUSR1 / SIGUSR2, after the current step, before :class:`RunInterrupted` (exit code 75)
    or submitit's requeue. A run directory holding one is continued where it stopped (``resume=auto``),
    with the numbers an uninterrupted run would produce. A divergence stops the run with
    :class:`DivergenceError`, keeping the last good state, or, with ``guard.on_divergence=rollback``,
    restores that state and lowers the LR by ``guard.lr_factor``.
    """
    cfg = to_plain(cfg)
    validate(cfg)
    run_dir = Path(run_dir)
    ensure_writable(run_dir)
    saved = previous_state(cfg, run_dir / RUN_STATE)
    device = resolve_device(str(cfg["device"]))
    seed = int(cfg["seed"])
    task, model, train_model, optimizer = build_run(cfg, seed)
    l0 = initial_loss(task, model, seed) if saved is None else float(saved["initial_loss"])

    optimizer, driver, net, engine = build_schedule(cfg, task, model, optimizer, l0, device)
    trainee = Trainee(task, model, optimizer, driver, net, engine)

    resume_at = None if saved is None else saved["metrics_bytes"]
    logger = RunLogger(run_dir, config_yaml=config_yaml or dump_config(cfg), resume_at=resume_at)
    if cfg["logger"]["name"] == "wandb":
        wandb_id = None if saved is None else saved["wandb_id"]
        logger.sinks.append(WandbSink(run_dir, cfg, cfg["logger"], run_id=wandb_id))
    guard = cfg["guard"]
    loop_cfg = LoopConfig(
        epochs=int(cfg["epochs"]), meta_interval=int(cfg["meta"]["interval"]), grad_clip=cfg.get("grad_clip"),
        progress=bool(cfg.get("progress", True)), log_steps=bool(cfg.get("log_steps", True)),
        desc=f"{task.info.name} [{cfg['schedule']}]",
        guard=Guard(float(guard["lr_min"]), None if guard["lr_max"] is None else float(guard["lr_max"])),
    )
    ckpt = Checkpointer(run_dir, cfg, trainee, logger, l0, saved)
    if saved is None:
        position = loop_position({"epoch": 0, "global_step": 0, "history": [], "progress": None})
        ckpt.snapshot(0)
        ckpt.save(0, 0, [])
    else:
        trainee.load_state_dict(saved["training"])
        position = loop_position(saved)
        print(f"resuming {run_dir} at epoch {saved['epoch']}, step {saved['global_step']}", flush=True)

    with StopSignals() as stop:
        while True:
            try:
                history = train_loop(
                    task, train_model, optimizer, driver, loop_cfg, logger=logger, engine=engine,
                    on_epoch_end=ckpt.on_epoch_end, stop_requested=stop.requested, **position,
                )
                break
            except Interrupted as e:
                ckpt.save(e.epoch, e.global_step, e.history, e.progress)
                logger.close()
                stop.forward()
                raise RunInterrupted(
                    f"stopped by {stop.name} at step {e.global_step} (epoch {e.epoch + 1}); state saved in "
                    f"{ckpt.path}: rerun the same command with hydra.run.dir={run_dir} to continue"
                ) from None
            except Diverged as d:
                position = ckpt.recover(d)

    metric = task.info.metric
    key = f"test_{metric}"
    finals = [h[key] for h in history]
    summary: dict[str, Any] = {
        "status": "complete",
        "task": task.info.name,
        "schedule": cfg["schedule"],
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
        if cfg["logger"].get("log_checkpoint", True):
            logger.artifact(path, f"mlrsnet-{task.info.name}-seed{seed}", "model")
        if cfg.get("copy_to_checkpoints"):
            dest = Path(cfg.get("checkpoints_dir", "checkpoints")) / f"{task.info.name}_seed{seed}.pt"
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_suffix(".pt.tmp")
            shutil.copyfile(path, tmp)
            tmp.replace(dest)
            summary["checkpoint_copy"] = str(dest)
    steps = [(r["step"], r["lr"]) for r in read_metrics(run_dir / "metrics.jsonl") if r.get("type") == "step"]
    if steps:
        save_lr_schedule(run_dir, steps, f"{task.info.name}: {cfg['schedule']} LR (seed {seed})")
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
    from mlrsnet.cli import run_hydra

    run_hydra(_hydra_main, config_name="train", group="task", command="train")


if __name__ == "__main__":
    main()
