"""Target 3: an epoch scheduled by a frozen MLR-SNet over the same epoch under StepLR.

Both run :func:`mlrsnet.engine.loop.train_loop` (no evaluation, no logging, no progress bar) from the same
initial weights and data order: one with :class:`~mlrsnet.schedules.drivers.MLRSNetDriver` on a frozen net (no
gradients, no meta steps: the transfer setting, one LSTM-cell forward per iteration), the other with
``torch.optim.lr_scheduler.StepLR`` through :class:`~mlrsnet.schedules.base.TorchSchedulerDriver`. Rounds of a
few epochs per variant are interleaved; the ratio is total time / the StepLR run's total time. The
effect is about one percent, below the noise of whole epochs on a shared machine, so the drivers are
also timed alone: (MLR-SNet driver - StepLR driver) per iteration / a StepLR iteration.

    python benchmarks/bench_transfer_overhead.py [--tasks digits_cnn,text_lstm_cpython,digits_mlp]
                                                 [--threads 1 --clock cpu]

The last line holds the epoch ratio (on ``--clock``) and, in brackets, 1 + the drivers' cost difference,
per task.
"""

from __future__ import annotations

import _common as C
import torch
from bench_epoch import EPOCHS_PER_ROUND, OVERRIDES, Run, step_lr

from mlrsnet.schedules.drivers import MLRSNetDriver

TARGET = 1.03


def frozen_mlrsnet(optimizer, net) -> MLRSNetDriver:
    net.requires_grad_(False)
    return MLRSNetDriver(net, optimizer)


def driver_cost(trainees: dict[str, C.Trainee], rounds: int, device) -> dict[str, float]:
    """Seconds per iteration spent in each LR driver alone (``before_step`` + ``after_step`` on a loss
    tensor of the device), interleaved over ``rounds``: the part of the epoch the ratio is about, free
    of the noise of whole training steps."""
    loss = torch.tensor(2.0, device=device)
    reps = 200

    def drive(t: C.Trainee):
        def run() -> None:
            for _ in range(reps):
                t.driver.before_step(loss)
                t.driver.after_step(loss)
        return run

    timings = C.interleaved({k: drive(t) for k, t in trainees.items()}, 3 * rounds, device)
    return {k: C.median(v) / reps for k, v in timings.on("cpu" if device.type == "cpu" else "wall").items()}


def bench_task(task: str, args, device) -> tuple[float, float]:
    cfg = C.compose(task, OVERRIDES.get(task, []))
    epochs = EPOCHS_PER_ROUND.get(task, 2)
    runs = {
        "StepLR": Run(C.make_trainee(cfg, device, args.seed, driver=step_lr), 1, epochs),
        "frozen MLR-SNet": Run(C.make_trainee(cfg, device, args.seed, driver=frozen_mlrsnet), 1, epochs),
    }
    timings = C.interleaved(runs, args.rounds, device)
    per_step = driver_cost({k: r.t for k, r in runs.items()}, args.rounds, device)
    wall, cpu = C.total_ratios(timings.wall, "StepLR"), C.total_ratios(timings.cpu, "StepLR")
    steps = runs["StepLR"].t.task.steps_per_epoch
    print(f"\n{task} (batch {cfg.batch_size}, {steps} steps/epoch; {epochs} epochs per round, {args.rounds} rounds)")
    print(f"| variant | s / epoch ({args.clock}) | ratio to StepLR, wall | ratio to StepLR, CPU time |")
    print("|---|---:|---:|---:|")
    for name, ts in timings.on(args.clock).items():
        print(f"| {name} | {sum(ts) / len(ts) / epochs:.3f} | {wall[name]:.3f}x | {cpu[name]:.3f}x |")
    step = sum(timings.on(args.clock)["StepLR"]) / (args.rounds * epochs * steps)
    extra = (per_step["frozen MLR-SNet"] - per_step["StepLR"]) / step
    print(f"LR driver alone, per iteration: frozen MLR-SNet {1e6 * per_step['frozen MLR-SNet']:.0f} us, StepLR "
          f"{1e6 * per_step['StepLR']:.0f} us; difference / StepLR iteration ({1e3 * step:.2f} ms) = "
          f"{100 * extra:+.2f}%")
    return (cpu if args.clock == "cpu" else wall)["frozen MLR-SNet"], 1.0 + extra


def main() -> None:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--tasks", default="digits_cnn,text_lstm_cpython,digits_mlp")
    p.set_defaults(rounds=8)
    args = p.parse_args()
    device = C.setup_torch(args)
    print(C.machine())
    results = {task: bench_task(task, args, device) for task in args.tasks.split(",")}
    print(f"\ntarget 3 (<= {TARGET}x), frozen MLR-SNet epoch / StepLR epoch ({args.clock}; from the drivers' own "
          "cost in brackets): " + " ".join(f"{t}={r:.3f}x ({e:.3f}x)" for t, (r, e) in results.items()))


if __name__ == "__main__":
    main()
