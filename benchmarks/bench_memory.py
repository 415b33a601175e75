"""Target 4: peak memory of a K-step unroll against plain training, and the ``first_order`` bound.

For each variant one training iteration (as in :func:`mlrsnet.engine.loop.train_loop`, meta step included) is
measured after two warm-up iterations: the peak of tensor memory allocated during the iteration (on top
of the weights and optimiser state that persist between iterations). On CPU this replays the allocation
events of ``torch.profiler`` (``profile_memory=True``); on CUDA it is ``torch.cuda.max_memory_allocated``
above the level before the iteration. Variants: plain, ``higher`` at K = 1, 2, 5, 10 (second order),
and the same with ``meta.first_order=true``.

    python benchmarks/bench_memory.py [--model cnn] [--Ks 1,2,5,10]

The last line holds the peaks and the per-step growth (a least-squares line through K and its R^2).
"""

from __future__ import annotations

import json
import os
import tempfile

import _common as C
import torch
from torch.profiler import ProfilerActivity, profile


def peak_bytes(trainee: C.Trainee, device: torch.device) -> int:
    """Peak bytes allocated during one iteration, above the level right before it."""
    for _ in range(2):
        trainee.iteration()
    if device.type == "cuda":
        torch.cuda.synchronize()
        start = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        trainee.iteration()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - start
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        trainee.iteration()
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f)["traceEvents"]
    finally:
        os.remove(path)
    # Replay the allocation events: blocks allocated inside the window, while they are alive. (Frees of
    # blocks allocated before the window carry no size and are left out.)
    live: dict[int, int] = {}
    level = peak = 0
    for e in sorted((e for e in events if e.get("name") == "[memory]"), key=lambda e: e["ts"]):
        size, addr = int(e["args"]["Bytes"]), int(e["args"]["Addr"])
        if size > 0:
            live[addr] = size
            level += size
            peak = max(peak, level)
        elif addr in live:
            level -= live.pop(addr)
    return peak


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """Least-squares ``y = a + b x``; returns (a, b, R^2)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys, strict=True))
    return a, b, 1.0 - ss_res / ss_tot if ss_tot else 1.0


def main() -> None:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--model", default="cnn", choices=sorted(C.MODELS))
    p.add_argument("--Ks", default="1,2,5,10")
    args = p.parse_args()
    device = C.setup_torch(args)
    print(C.machine())
    task, overrides = C.MODELS[args.model]
    cfg = C.compose(task, overrides)
    Ks = [int(k) for k in args.Ks.split(",")]
    mb = 2.0**20
    plain = peak_bytes(C.make_trainee(cfg, device, args.seed), device) / mb
    second = {k: peak_bytes(C.make_trainee(cfg, device, args.seed, meta={"backend": "unroll", "K": k}), device) / mb
              for k in Ks}
    first = {k: peak_bytes(C.make_trainee(cfg, device, args.seed,
                                          meta={"backend": "unroll", "K": k, "first_order": True}), device) / mb
             for k in Ks}
    print(f"\n{args.model} ({task}, {' '.join(overrides)}): peak MiB of tensors allocated during one iteration")
    print("| K | higher (second order) | higher first_order |")
    print("|---:|---:|---:|")
    print(f"| plain | {plain:.1f} | {plain:.1f} |")
    for k in Ks:
        print(f"| {k} | {second[k]:.1f} ({second[k] / plain:.1f}x plain) | "
              f"{first[k]:.1f} ({first[k] / plain:.1f}x plain) |")
    _, slope2, r2 = linear_fit([float(k) for k in Ks], [second[k] for k in Ks])
    _, slope1, r1 = linear_fit([float(k) for k in Ks], [first[k] for k in Ks])
    print(f"\ngrowth per unrolled step: second order {slope2:.1f} MiB (R^2 {r2:.4f}); first_order {slope1:.2f} MiB "
          f"(R^2 {r1:.4f})")
    print(f"target 4, peak MiB: plain {plain:.1f}; higher K={'/'.join(map(str, Ks))} "
          f"{'/'.join(f'{second[k]:.1f}' for k in Ks)} (+{slope2:.1f}/step, R^2 {r2:.3f}); first_order "
          f"{'/'.join(f'{first[k]:.1f}' for k in Ks)} (+{slope1:.2f}/step)")


if __name__ == "__main__":
    main()
