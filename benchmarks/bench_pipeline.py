"""Images per second of the device-resident image pipeline against a per-sample DataLoader pipeline.

- device-resident (what the paper image tasks do): the training images are one uint8 tensor on the
  device; a batch is an index gather plus one batched crop / flip / normalise
  (:func:`~mlrsnet.tasks.data.augment.augment_batch`), drawn by the real ``cifar10_resnet`` task
  (:func:`mlrsnet.tasks.paper.image_task` on synthetic CIFAR-shaped data);
- DataLoader: a torch ``Dataset`` over the same images stored HWC in numpy, padding, cropping,
  flipping and normalising one image at a time (torchvision's ``RandomCrop(32, padding=4)``,
  ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``), batched by a ``DataLoader`` with 0, 1 or 2
  worker processes, then copied to the device (pinned and non-blocking on CUDA).

Each pipeline is timed alone ("data": batches delivered on the device) and feeding the same model's
training step ("train": forward, backward, SGD step), in interleaved rounds (``_common.interleaved``),
on the wall clock. On a shared CPU the process-CPU-time figures (``--threads 1``) are steadier, but only
for the pipelines that run in this process: DataLoader workers do their work in other processes.

    python benchmarks/bench_pipeline.py [--device cuda] [--model resnet18] [--n 20000] [--batches 20]

The last line is the training-step speed-up of the device-resident pipeline over the fastest
DataLoader variant.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import _common as C
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mlrsnet.schedules.optim import build_base_optimizer
from mlrsnet.tasks.base import ClassificationTask
from mlrsnet.tasks.data.cifar import CIFAR10_MEAN, CIFAR10_STD
from mlrsnet.tasks.data.types import ImageSplits
from mlrsnet.tasks.paper import image_task


def synthetic_cifar(n: int, n_test: int = 100, seed: int = 0) -> ImageSplits:
    """Random CIFAR-10-shaped data: ``n`` uint8 (3, 32, 32) training images with balanced labels."""
    g = torch.Generator().manual_seed(seed)
    train_x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    test_x = torch.randint(0, 256, (n_test, 3, 32, 32), dtype=torch.uint8, generator=g)
    return ImageSplits(train_x, torch.arange(n) % 10, test_x, torch.arange(n_test) % 10, 10, CIFAR10_MEAN,
                       CIFAR10_STD)


class PerSampleCIFAR(Dataset):
    """HWC uint8 images augmented one at a time, as a torchvision CIFAR pipeline does."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, pad: int = 4) -> None:
        self.images, self.labels, self.pad = images, labels, pad
        self.mean = torch.tensor(CIFAR10_MEAN).view(3, 1, 1)
        self.std = torch.tensor(CIFAR10_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        p = self.pad
        img = np.pad(self.images[i], ((p, p), (p, p), (0, 0)))
        dy, dx = random.randint(0, 2 * p), random.randint(0, 2 * p)  # DataLoader seeds `random` per worker
        img = img[dy:dy + 32, dx:dx + 32]
        if random.random() < 0.5:
            img = img[:, ::-1]
        x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(255.0)
        return (x - self.mean) / self.std, int(self.labels[i])


def forever(make_epoch: Callable[[int], Iterator[tuple]]) -> Iterator[tuple]:
    epoch = 0
    while True:
        yield from make_epoch(epoch)
        epoch += 1


def loader_batches(task: ClassificationTask, workers: int, device: torch.device) -> Iterator[tuple]:
    """Endless training batches from a per-sample DataLoader over the task's training images."""
    cuda = device.type == "cuda"
    dataset = PerSampleCIFAR(task.data.train_x.permute(0, 2, 3, 1).cpu().numpy(), task.data.train_y.cpu().numpy())
    loader = DataLoader(dataset, batch_size=task.batch_size, shuffle=True, drop_last=True, num_workers=workers,
                        pin_memory=cuda, persistent_workers=workers > 0)
    for x, y in forever(lambda _: iter(loader)):
        yield x.to(device, non_blocking=cuda), y.to(device, non_blocking=cuda)


def main() -> None:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet18", help="task.model of cifar10_resnet (cnn: a fast CPU check)")
    p.add_argument("--n", type=int, default=20_000, help="synthetic training images")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--batches", type=int, default=20, help="batches per timed call")
    p.add_argument("--workers", default="0,1,2", help="DataLoader worker counts to compare")
    args = p.parse_args()
    device = C.setup_torch(args)
    meta_size = min(1000, args.n // 10)
    cfg = C.compose("cifar10_resnet", [f"task.model={args.model}", f"batch_size={args.batch_size}",
                                       f"task.meta_size={meta_size}"])
    task = image_task(synthetic_cifar(args.n, seed=args.seed), cfg.task, args.seed, device)
    torch.manual_seed(args.seed)
    model = task.build_model()
    optimizer = build_base_optimizer(model.parameters(), cfg.optimizer)

    def train_step(batch: tuple) -> None:
        optimizer.zero_grad(set_to_none=True)
        task.loss(model, batch).backward()
        optimizer.step()

    sources = {"device-resident": forever(task.train_batches)}
    for w in (int(s) for s in args.workers.split(",")):
        sources[f"DataLoader workers={w}"] = loader_batches(task, w, device)

    def run(source: Iterator[tuple], step: Callable[[tuple], None] | None) -> Callable[[], None]:
        def call() -> None:
            for _ in range(args.batches):
                batch = next(source)
                if step is not None:
                    step(batch)
        return call

    model.train()
    images = args.batches * task.batch_size
    print(C.machine())
    print(f"{args.model} on {device}, batch {task.batch_size}, {task.data.train_y.numel()} synthetic training "
          f"images, {args.batches} batches per call, {args.rounds} rounds (median)")
    print(f"{'pipeline':<24}{'data img/s':>14}{'train img/s':>14}{'data img/s (CPU time)':>24}")
    timings = C.interleaved({k: run(s, None) for k, s in sources.items()}, args.rounds, device)
    data = timings.wall
    train = C.interleaved({k: run(s, train_step) for k, s in sources.items()}, args.rounds, device).wall
    for name in sources:
        in_process = name == "device-resident" or name.endswith("workers=0")
        cpu = f"{images / C.median(timings.cpu[name]):,.0f}" if in_process else "n/a"
        print(f"{name:<24}{images / C.median(data[name]):>14,.0f}{images / C.median(train[name]):>14,.0f}"
              f"{cpu:>24}")
    data_best, data_speedup = fastest_loader(data)
    print(f"data only: device-resident delivers batches {data_speedup:.1f}x as fast as the fastest DataLoader "
          f"({data_best})")
    best, speedup = fastest_loader(train)
    print(f"speed-up of the device-resident pipeline over the fastest DataLoader ({best}), training step of "
          f"{args.model} on {device.type}: {speedup:.2f}x")


def fastest_loader(times: dict[str, list[float]]) -> tuple[str, float]:
    """The fastest DataLoader variant and its time over the device-resident pipeline's (median of rounds)."""
    ratios = {k: r for k, r in C.ratios(times, "device-resident").items() if k != "device-resident"}
    best = min(ratios, key=ratios.__getitem__)
    return best, ratios[best]


if __name__ == "__main__":
    main()
