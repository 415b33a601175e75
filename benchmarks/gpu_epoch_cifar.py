"""Wall time of one epoch of ``cifar10_resnet`` on synthetic CIFAR-shaped data: plain and meta-training.

Builds the real task (:func:`mlrsnet.tasks.paper.image_task`: uint8 images on the device, batched
augmentation, the 1,000-image meta set carved out of the training images) from ``--n`` random images,
then runs :func:`mlrsnet.engine.loop.train_loop` for ``--warmup`` + 1 epochs per mode, without evaluation,
logging or progress bar, and reports the last epoch: plain training at the fixed ``optimizer.lr``, and
meta-training (MLR-SNet driving the LR, ``exact`` backend, a meta step every ``meta.interval`` steps).
Warm-up epochs absorb cuDNN autotuning and ``torch.compile``. Hydra overrides after the flags change
the composed config, e.g. ``amp=true channels_last=true compile=true meta.interval=1``.

    python benchmarks/gpu_epoch_cifar.py --device cuda [--n 50000] [amp=true channels_last=true compile=true]
    python benchmarks/gpu_epoch_cifar.py --n 600 --warmup 0 task.model=cnn     # a quick CPU check
"""

from __future__ import annotations

import _common as C
import torch
from bench_pipeline import synthetic_cifar

from mlrsnet.engine.build import apply_speed_options, initial_loss
from mlrsnet.engine.config import TrainConfig
from mlrsnet.engine.loop import LoopConfig, train_loop
from mlrsnet.meta.engine import MetaEngine
from mlrsnet.schedules.base import LRDriver
from mlrsnet.schedules.catalog.mlrsnet import build_net
from mlrsnet.schedules.drivers import MLRSNetDriver
from mlrsnet.schedules.optim import build_base_optimizer
from mlrsnet.schedules.spec import BuildContext
from mlrsnet.tasks.data.types import ImageSplits
from mlrsnet.tasks.paper import image_task


def timed_epoch(cfg: TrainConfig, splits: ImageSplits, device: torch.device, seed: int, meta: bool,
                warmup: int) -> tuple[float, int]:
    """Seconds of the last of ``warmup + 1`` training epochs, and the images it trained on."""
    task = image_task(splits, cfg.task, seed, device)
    torch.manual_seed(seed)
    model = task.build_model()
    train_model = apply_speed_options(cfg, task, model, device)
    optimizer = build_base_optimizer(model.parameters(), cfg.optimizer)
    engine = None
    driver = LRDriver()
    if meta:
        m = cfg.meta
        ctx = BuildContext(optimizer, model, task, (warmup + 1) * task.steps_per_epoch, task.steps_per_epoch,
                           l0=initial_loss(task, model, seed), seed=seed, device=device, net=cfg.net, meta=m,
                           grad_clip=cfg.grad_clip)
        net = build_net(ctx)
        engine = MetaEngine(net, task, model, optimizer, backend=m.backend, K=m.K, meta_lr=m.lr,
                            meta_weight_decay=m.weight_decay, grad_clip=cfg.grad_clip)
        driver = MLRSNetDriver(net, optimizer, task.info.loss_scale)
    loop_cfg = LoopConfig(epochs=warmup + 1, meta_interval=cfg.meta.interval, grad_clip=cfg.grad_clip,
                          progress=False, log_steps=False, eval_splits=())
    history = train_loop(task, train_model, optimizer, driver, loop_cfg, engine=engine)
    return history[-1]["epoch_time"], task.steps_per_epoch * task.batch_size


def main() -> None:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=50_000, help="synthetic training images (CIFAR-10 has 50,000)")
    p.add_argument("--warmup", type=int, default=1, help="untimed epochs before the timed one")
    p.add_argument("overrides", nargs="*", help="Hydra overrides of the composed config")
    args = p.parse_args()
    device = C.setup_torch(args)
    cfg = C.compose("cifar10_resnet", [f"device={device}", f"task.meta_size={min(1000, args.n // 10)}",
                                       *args.overrides])
    splits = synthetic_cifar(args.n, n_test=10, seed=args.seed)
    print(C.machine())
    speed = " ".join(f"{k}={getattr(cfg, k)}" for k in ("amp", "channels_last", "compile"))
    print(f"cifar10_resnet: {cfg.task.model}, batch {cfg.batch_size}, {args.n} synthetic images, "
          f"meta.interval={cfg.meta.interval}, {speed}, device {device}")
    plain_s, images = timed_epoch(cfg, splits, device, args.seed, meta=False, warmup=args.warmup)
    print(f"plain training:  {plain_s:8.2f} s/epoch  {images / plain_s:10,.0f} images/s")
    meta_s, images = timed_epoch(cfg, splits, device, args.seed, meta=True, warmup=args.warmup)
    print(f"meta-training:   {meta_s:8.2f} s/epoch  {images / meta_s:10,.0f} images/s")
    print(f"meta-training / plain epoch time: {meta_s / plain_s:.3f}")


if __name__ == "__main__":
    main()
