"""Meta-train MLR-SNet on a task.

Command line (Hydra)::

    python -m mlrsnet.train +task=digits_cnn [epochs=30 seed=1 meta.backend=higher meta.K=2 ...]
    python -m mlrsnet.train +task=digits_cnn schedule=cosine [+schedule_params.cosine.warmup_epochs=1]

Python::

    from mlrsnet.train import meta_train
    summary = meta_train(cfg, run_dir="runs/my_run")   # cfg: the composed conf/train.yaml + task

Outputs in the run directory: ``metrics.jsonl`` (per step the LR and loss, per epoch train / meta /
test metrics and LR statistics), ``summary.json``, ``config.yaml`` (resolved), ``environment.json``
(package versions, git commit), ``mlrsnet.pt`` (the learned MLR-SNet), and ``lr_schedule.csv`` /
``lr_schedule.png`` (the learned LR against iteration).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, NamedTuple

import torch

from mlrsnet.checkpoint import atomic_write_text, save_mlrsnet
from mlrsnet.errors import ConfigError
from mlrsnet.log import RunLogger, environment
from mlrsnet.loop import LoopConfig, LRDriver, MLRSNetDriver, train_loop
from mlrsnet.meta.engine import MetaEngine
from mlrsnet.net import MLRSNet, MLRSNetConfig, compute_gamma
from mlrsnet.schedules.drivers import META_TRAINED, build_driver, check_schedule
from mlrsnet.tasks import Task, build_task
from mlrsnet.utils import build_optimizer, resolve_device, seed_everything, to_plain


def validate(cfg: dict) -> None:
    """Range checks with messages that name the key and the fix."""
    if int(cfg["epochs"]) < 1:
        raise ConfigError(f"epochs must be >= 1, got {cfg['epochs']}")
    if int(cfg["batch_size"]) < 1:
        raise ConfigError(f"batch_size must be >= 1, got {cfg['batch_size']}")
    meta = cfg["meta"]
    if int(meta["interval"]) < 1:
        raise ConfigError(f"meta.interval must be >= 1, got {meta['interval']}")
    if float(meta["lr"]) <= 0:
        raise ConfigError(f"meta.lr must be positive, got {meta['lr']}")
    if int(meta["batch_size"]) < 1:
        raise ConfigError(f"meta.batch_size must be >= 1, got {meta['batch_size']}")
    if float(cfg["optimizer"]["lr"]) <= 0:
        raise ConfigError(f"optimizer.lr must be positive, got {cfg['optimizer']['lr']}")
    noise = cfg["task"].get("noise") or {}
    rate = float(noise.get("rate", 0.0))
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"task.noise.rate must be in [0, 1), got {rate}")
    check_schedule(cfg["schedule"])
    if not isinstance(cfg.get("schedule_params") or {}, dict):
        raise ConfigError("schedule_params must map schedule names to their parameters, e.g. "
                          "+schedule_params.step.gamma=0.5")


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
    atomic_write_text(run_dir / "lr_schedule.csv", "step,lr\n" + "".join(f"{s},{lr:.8g}\n" for s, lr in history_steps))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot([s for s, _ in history_steps], [lr for _, lr in history_steps], lw=1)
    ax.set_xlabel("iteration")
    ax.set_ylabel("learning rate")
    ax.set_title(title)
    fig.tight_layout()
    tmp = run_dir / ".lr_schedule.png.tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(run_dir / "lr_schedule.png")


def meta_train(cfg: Any, run_dir: str | Path, config_yaml: str | None = None) -> dict:
    """Meta-train MLR-SNet (``schedule=mlrsnet``) or train under any other schedule (``schedule=<name>``,
    see :mod:`mlrsnet.schedules.drivers`) on ``cfg.task``; write the run directory and return the summary."""
    cfg = to_plain(cfg)
    validate(cfg)
    run_dir = Path(run_dir)
    device = resolve_device(str(cfg["device"]))
    seed = int(cfg["seed"])
    seed_everything(seed)
    task = build_task(cfg["task"], seed, device)
    torch.manual_seed(seed)
    model = task.build_model()
    train_model = apply_speed_options(cfg, task, model, device)
    optimizer = build_optimizer(model.parameters(), cfg["optimizer"])
    l0 = initial_loss(task, model, seed)

    optimizer, driver, net, engine = build_schedule(cfg, task, model, optimizer, l0, device)

    logger = RunLogger(run_dir, config_yaml=config_yaml)
    loop_cfg = LoopConfig(
        epochs=int(cfg["epochs"]), meta_interval=int(cfg["meta"]["interval"]), grad_clip=cfg.get("grad_clip"),
        progress=bool(cfg.get("progress", True)), log_steps=bool(cfg.get("log_steps", True)),
        desc=f"{task.info.name} [{cfg['schedule']}]",
    )
    t0 = time.perf_counter()
    history = train_loop(task, train_model, optimizer, driver, loop_cfg, logger=logger, engine=engine)
    wall = time.perf_counter() - t0

    metric = task.info.metric
    key = f"test_{metric}"
    finals = [h[key] for h in history]
    summary: dict[str, Any] = {
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
        "wall_time_s": wall,
        "run_dir": str(run_dir),
    }
    if net is not None:
        summary["gamma"] = float(net.gamma)
        ckpt = run_dir / "mlrsnet.pt"
        save_mlrsnet(
            ckpt, net, task=task.info.name, num_classes=task.info.num_classes, loss_scale=task.info.loss_scale,
            initial_loss=l0, config=cfg, epochs=loop_cfg.epochs, **environment(),
        )
        summary["checkpoint"] = str(ckpt)
        if cfg.get("copy_to_checkpoints"):
            dest = Path(cfg.get("checkpoints_dir", "checkpoints")) / f"{task.info.name}_seed{seed}.pt"
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_suffix(".pt.tmp")
            shutil.copyfile(ckpt, tmp)
            tmp.replace(dest)
            summary["checkpoint_copy"] = str(dest)
    from mlrsnet.log import read_metrics

    steps = [(r["step"], r["lr"]) for r in read_metrics(run_dir / "metrics.jsonl") if r.get("type") == "step"]
    if steps:
        save_lr_schedule(run_dir, steps, f"{task.info.name}: {cfg['schedule']} LR (seed {seed})")
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
