"""Fashion-MNIST at CPU scale (issue 29): the time of one epoch of each ``fmnist_*`` task and of a meta-training
epoch, the cost of reading the IDX files, and the estimated length of a 30-epoch meta-training run.

Every epoch runs through the real loop (:func:`mlrsnet.engine.loop.train_loop`) with the evaluation a run does
after each epoch (the 10,000 test and 1,000 meta images), no logging, no progress bar: plain epochs at a fixed LR
(SGDM, the baselines' optimiser), the meta-training epoch with the ``exact`` engine at the task's default
``meta.interval``. Rounds are interleaved (each round times every variant once, in a shuffled order); each
variant's training continues from round to round. The baseline is digits_cnn's plain epoch, timed in the same
rounds, so that the ratios survive a machine shared with other work; absolute seconds are printed with the load
average before and after.

    python benchmarks/bench_fmnist.py --threads 1 [--rounds 5] [--end-to-end]

``--end-to-end`` also times ``python -m mlrsnet.train +task=fmnist_cnn epochs=2`` and ``epochs=1`` in a subprocess
(start-up, data loading, L0 over the training split, the epochs, the files), and extrapolates the default 30 epochs
from their difference. Needs Fashion-MNIST on disk (``apt-get install dataset-fashion-mnist``).
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as C
import torch

from mlrsnet.tasks.data.idx import FILES, MNIST_FAMILY, load_mnist_family

BASELINE = "digits_cnn plain"
# variant -> (task, meta-training?, epochs per round)
VARIANTS = {
    BASELINE: ("digits_cnn", False, 5),
    "fmnist_cnn plain": ("fmnist_cnn", False, 1),
    "fmnist_cnn meta-training": ("fmnist_cnn", True, 1),
    "fmnist_mlp plain": ("fmnist_mlp", False, 1),
    "fmnist_resnet plain": ("fmnist_resnet", False, 1),
}



def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def bench_reading(rounds: int) -> None:
    """Reading the four files: gzip (as Debian ships them) against the same files decompressed."""
    folder = next((d for d in MNIST_FAMILY["fashion_mnist"].system if (d / f"{FILES[0]}.gz").is_file()), None)
    if folder is None:
        print("\nreading: skipped (no gzipped Fashion-MNIST in the Debian directory)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "fashion-mnist"
        raw.mkdir()
        for f in FILES:
            (raw / f).write_bytes(gzip.decompress((folder / f"{f}.gz").read_bytes()))
        timings = C.interleaved({"gzip (Debian's files)": lambda: load_mnist_family("fashion_mnist", "/nonexistent"),
                                 "raw (decompressed)": lambda: load_mnist_family("fashion_mnist", tmp)},
                                rounds, torch.device("cpu"))
    print(f"\nreading the four Fashion-MNIST files ({rounds} rounds, median; {load()})")
    print("| files | s (wall) |\n|---|---:|")
    for name, ts in timings.wall.items():
        print(f"| {name} | {C.median(ts):.3f} |")


def end_to_end(threads: int) -> dict[int, float]:
    """Wall seconds of ``python -m mlrsnet.train +task=fmnist_cnn epochs=E`` for E = 1, 2."""
    out = {}
    env = {**os.environ, "MLRSNET_OFFLINE": "1", "MPLBACKEND": "Agg"}
    for epochs in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "mlrsnet.train", "+task=fmnist_cnn", f"epochs={epochs}",
                            "progress=false", f"hydra.run.dir={tmp}/run"] + ([f"threads={threads}"] if threads else []),
                           check=True, env=env, capture_output=True)
            out[epochs] = time.perf_counter() - t0
    return out


def main() -> None:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--end-to-end", action="store_true", help="also time the train command in a subprocess")
    p.set_defaults(rounds=5)
    args = p.parse_args()
    device = C.setup_torch(args)
    print(C.machine())
    print(f"start: {load()}")
    runs, steps = {}, {}
    for name, (task, meta, epochs) in VARIANTS.items():
        cfg = C.compose(task, ["optimizer.momentum=0.9"] if not meta else [])
        trainee = C.make_trainee(cfg, device, args.seed, meta={"backend": "exact"} if meta else None)
        runs[name] = C.EpochRun(trainee, cfg.meta.interval, epochs, ("test", "meta"))
        steps[name] = (trainee.task.steps_per_epoch, cfg.batch_size, trainee.task.data.train_y.numel(), epochs)
    timings = C.interleaved(runs, args.rounds, device)
    per_epoch = {n: [t / runs[n].epochs for t in ts] for n, ts in timings.on(args.clock).items()}
    ratio = C.ratios(per_epoch, BASELINE)
    plain = C.ratios(per_epoch, "fmnist_cnn plain")
    print(f"\nepochs with evaluation ({args.rounds} rounds, median; clock {args.clock}; end: {load()})")
    print("| variant | training images, batch, steps/epoch | s / epoch | ratio to digits_cnn's epoch | "
          "ratio to fmnist_cnn's plain epoch |")
    print("|---|---|---:|---:|---:|")
    for name, ts in per_epoch.items():
        n_steps, batch, images, _ = steps[name]
        print(f"| {name} | {images}, {batch}, {n_steps} | {C.median(ts):.2f} | {ratio[name]:.2f}x | "
              f"{plain[name]:.2f}x |")
    meta_epoch = C.median(per_epoch["fmnist_cnn meta-training"])
    print(f"\nfmnist_cnn, 30 epochs of meta-training at these rates: {30 * meta_epoch / 60:.1f} min "
          "(plus start-up, data loading and L0)")
    bench_reading(args.rounds)
    if args.end_to_end:
        e2e = end_to_end(args.threads)
        per = e2e[2] - e2e[1]
        print(f"\nend to end, python -m mlrsnet.train +task=fmnist_cnn: epochs=1 {e2e[1]:.1f} s, "
              f"epochs=2 {e2e[2]:.1f} s; 30 epochs = {e2e[1] - per:.1f} s + 30 x {per:.1f} s = "
              f"{(e2e[1] + 29 * per) / 60:.1f} min ({load()})")
    print(f"\nend: {load()}")


if __name__ == "__main__":
    sys.exit(main())
