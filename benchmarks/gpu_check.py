"""Target 5 on a GPU, and targets 1 to 4 measured there.

1. Sync check: a meta-training epoch (``exact`` engine, MLR-SNet driver), a meta-training epoch with
   ``higher`` K=2, and a transfer epoch (frozen MLR-SNet) run through :func:`mlrsnet.engine.loop.train_loop`
   with ``torch.cuda.set_sync_debug_mode("error")`` around every step of the epoch (from the first batch
   to the last ``optimizer.step()``; the once-per-epoch metric read-out after it is allowed to sync).
   Any ``.item()``, host read or blocking copy in the hot path raises.
2. The target 1 to 4 benchmarks on the GPU (each also has its own script, with ``--device cuda``).

    python benchmarks/gpu_check.py [--quick | --sync-only]

Without CUDA the sync check runs its epochs on the CPU (exercising the same code) and the GPU figures
are skipped. The last line says whether the sync check passed and holds the GPU ratios.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import _common as C
import bench_epoch
import bench_memory
import bench_meta_step
import bench_transfer_overhead
import torch

from mlrsnet.engine.loop import LoopConfig, train_loop


def strict_epochs(task, cuda: bool) -> None:
    """Make every epoch's batches come out under ``set_sync_debug_mode("error")``: the mode is set when
    the loop asks for the first batch and reset when it asks past the last one, i.e. after the last step."""
    inner = task.train_batches

    def train_batches(epoch: int) -> Iterator[tuple]:
        batches = inner(epoch)
        if cuda:
            torch.cuda.set_sync_debug_mode("error")
        try:
            yield from batches
        finally:
            if cuda:
                torch.cuda.set_sync_debug_mode(0)

    task.train_batches = train_batches


def sync_check(device: torch.device) -> list[str]:
    """Run the strict epochs; returns the names of the runs that passed (raises on a sync)."""
    cuda = device.type == "cuda"
    cfg = C.compose("digits_cnn", ["batch_size=128", "meta.batch_size=128"])
    frozen = bench_transfer_overhead.frozen_mlrsnet
    runs = {
        "meta-training epoch, exact": C.make_trainee(cfg, device, 0, meta={"backend": "exact"}),
        "meta-training epoch, higher K=2": C.make_trainee(cfg, device, 0, meta={"backend": "unroll", "K": 2}),
        "transfer epoch, frozen MLR-SNet": C.make_trainee(cfg, device, 0, driver=frozen),
    }
    passed = []
    for name, t in runs.items():
        strict_epochs(t.task, cuda)
        loop = LoopConfig(epochs=2 if cuda else 1, meta_interval=1, progress=False, log_steps=False,
                          eval_splits=("test",))
        history = train_loop(t.task, t.model, t.optimizer, t.driver, loop, engine=t.engine)
        lr_is_tensor = isinstance(t.optimizer.param_groups[0]["lr"], torch.Tensor)
        verdict = "without a host sync in the hot path" if cuda else "ran (CPU: not checked for syncs)"
        print(f"{name}: {len(history)} epoch(s) {verdict}; train loss {history[-1]['train_loss']:.3f}, "
              f"LR a device tensor: {lr_is_tensor}")
        passed.append(name)
    return passed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer rounds (a rough figure in a few minutes)")
    p.add_argument("--sync-only", action="store_true", help="only the sync check (under a minute on a GPU)")
    args = p.parse_args()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    print(C.machine())
    passed = sync_check(device)
    if not cuda:
        print(f"\nCUDA not available: sync-check epochs ran on the CPU ({len(passed)} runs); GPU figures skipped")
        print("gpu_check: skipped (no CUDA)")
        return
    if args.sync_only:
        print(f"gpu_check: sync check passed ({len(passed)} runs)")
        return
    bench = argparse.Namespace(device="cuda", threads=0, rounds=3 if args.quick else 5, seed=0, block=0.2,
                               clock="wall")
    meta = {m: bench_meta_step.bench_model(m, bench, device) for m in ("cnn", "mlp", "lstm")}
    bench.rounds = 3 if args.quick else 6
    epoch = {t: bench_epoch.bench_task(t, [10, 30, 100], bench, device)[1] for t in ("digits_cnn", "text_lstm_cpython")}
    bench.rounds = 4 if args.quick else 8
    transfer = {t: bench_transfer_overhead.bench_task(t, bench, device) for t in ("digits_cnn", "text_lstm_cpython")}
    mem = {k: bench_memory.peak_bytes(C.make_trainee(C.compose("digits_cnn", C.MODELS["cnn"][1]), device, 0,
                                                       meta={"backend": "unroll", "K": k}), device) / 2**20
           for k in (1, 2, 5, 10)}
    print("\nGPU peak MiB, higher K=1/2/5/10: " + "/".join(f"{v:.1f}" for v in mem.values()))
    print(
        f"gpu_check: sync check passed ({len(passed)} runs); target 1 exact/plain "
        + " ".join(f"{m}={r['exact']:.2f}x" for m, r in meta.items())
        + "; target 2 interval=1/10/30/100 "
        + " ".join(f"{t}=" + "/".join(f"{r[f'meta interval={k}']:.3f}" for k in (1, 10, 30, 100))
                   for t, r in epoch.items())
        + "; target 3 " + " ".join(f"{t}={r:.3f}x ({e:.3f}x)" for t, (r, e) in transfer.items())
    )


if __name__ == "__main__":
    main()
