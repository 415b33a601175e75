"""Target 1: the cost of a meta-training iteration over a plain one, same model and batch.

A plain iteration is zero_grad, forward, backward, (clip), ``optimizer.step()`` at a fixed LR; a
meta-training iteration adds ``MetaEngine.meta_step`` and MLR-SNet's LR, exactly as in
:func:`mlrsnet.engine.loop.train_loop` with ``meta_interval=1``. The meta batch has the training batch's size.
Variants: ``exact``; ``unroll`` at K = 1, 2, 5 (native unroll) and K = 5 with ``first_order``;
``higher`` at K = 1, 2, 5 (the unroll through the ``higher`` package).

    python benchmarks/bench_meta_step.py [--models cnn,mlp,lstm] [--threads 1 --clock cpu] [--rounds 7]

The last line holds the target-1 ratios (exact / plain) for the three models, on ``--clock``.
"""

from __future__ import annotations

import time

import _common as C

VARIANTS: dict[str, dict | None] = {
    "plain": None,
    "exact": {"backend": "exact"},
    "unroll K=1": {"backend": "unroll", "K": 1},
    "unroll K=2": {"backend": "unroll", "K": 2},
    "unroll K=5": {"backend": "unroll", "K": 5},
    "unroll K=5 first_order": {"backend": "unroll", "K": 5, "first_order": True},
    "higher K=1": {"backend": "higher", "K": 1},
    "higher K=2": {"backend": "higher", "K": 2},
    "higher K=5": {"backend": "higher", "K": 5},
}


def bench_model(name: str, args, device) -> dict[str, float]:
    task, overrides = C.MODELS[name]
    cfg = C.compose(task, overrides)
    trainees = {v: C.make_trainee(cfg, device, args.seed, meta=kw) for v, kw in VARIANTS.items()}
    plain = trainees["plain"]
    for _ in range(3):
        plain.iteration()
    C.sync(device)
    t0 = time.perf_counter()
    plain.iteration()
    C.sync(device)
    reps = max(1, round(args.block / (time.perf_counter() - t0)))
    timings = C.interleaved({v: C.repeat(t.iteration, reps) for v, t in trainees.items()}, args.rounds, device)
    wall, cpu = C.ratios(timings.wall, "plain"), C.ratios(timings.cpu, "plain")
    ms = {v: 1e3 * C.median(ts) / reps for v, ts in timings.on(args.clock).items()}
    print(f"\n{name} ({task}, {' '.join(overrides)}; {reps} iterations per block, {args.rounds} rounds)")
    print(f"| variant | ms / iteration ({args.clock}) | ratio to plain, wall | ratio to plain, CPU time |")
    print("|---|---:|---:|---:|")
    for v in VARIANTS:
        print(f"| {v} | {ms[v]:.2f} | {wall[v]:.2f}x | {cpu[v]:.2f}x |")
    return cpu if args.clock == "cpu" else wall


def main() -> None:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--models", default="cnn,mlp,lstm")
    p.add_argument("--block", type=float, default=0.15, help="seconds of plain iterations per timed block")
    args = p.parse_args()
    device = C.setup_torch(args)
    print(C.machine())
    results = {m: bench_model(m, args, device) for m in args.models.split(",")}
    print("\n" + "; ".join(f"{m} higher K=1/2/5 {r['higher K=1']:.2f}/{r['higher K=2']:.2f}/{r['higher K=5']:.2f}x "
                           f"(higher-pkg {r['higher K=1']:.2f}/{r['higher K=2']:.2f}/"
                           f"{r['higher K=5']:.2f}x)" for m, r in results.items()))
    print(f"target 1, meta step exact/plain ({args.clock}): "
          + " ".join(f"{m}={r['exact']:.2f}x" for m, r in results.items()))


if __name__ == "__main__":
    main()
