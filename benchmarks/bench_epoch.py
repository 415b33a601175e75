"""Target 2: wall time of a meta-training epoch over a plain-training epoch, same task.

Both run :func:`mlrsnet.engine.loop.train_loop` (no evaluation, no logging, no progress bar): the plain run
with ``StepLR`` through :class:`~mlrsnet.schedules.base.TorchSchedulerDriver`, the meta-training runs with the
``exact`` engine and :class:`~mlrsnet.schedules.drivers.MLRSNetDriver` at the task's default ``meta.interval``, at
``meta_interval=1`` and at each ``--intervals`` value. Rounds of ``--epochs`` epochs per variant are
interleaved; each variant's training continues from round to round. The ratio is total time over all
rounds / the plain run's total, so that meta steps every k iterations are counted in proportion.

    python benchmarks/bench_epoch.py [--tasks digits_cnn,text_lstm_cpython] [--intervals 10,30,100]
                                     [--threads 1 --clock cpu]

The last line holds the ratio (on ``--clock``) at the task default interval and at the smallest listed
interval that meets the 1.05x target, per task.
"""

from __future__ import annotations

import _common as C
import torch

from mlrsnet.schedules.base import TorchSchedulerDriver

TARGET = 1.05
EPOCHS_PER_ROUND = {"digits_cnn": 5, "digits_mlp": 5, "digits_resnet": 2, "text_lstm_cpython": 1}
OVERRIDES = {"text_lstm_cpython": ["task.max_chars=120000"]}


def step_lr(optimizer: torch.optim.Optimizer, _net) -> TorchSchedulerDriver:
    return TorchSchedulerDriver(torch.optim.lr_scheduler.StepLR(optimizer, step_size=1000, gamma=0.5), "steplr")



def bench_task(task: str, intervals: list[int], args, device) -> tuple[int, dict[str, float]]:
    cfg = C.compose(task, OVERRIDES.get(task, []))
    default = cfg.meta.interval
    epochs = EPOCHS_PER_ROUND.get(task, 2)
    runs = {"plain StepLR": C.EpochRun(C.make_trainee(cfg, device, args.seed, driver=step_lr), 1, epochs)}
    for k in sorted({default, 1, *intervals}):
        trainee = C.make_trainee(cfg, device, args.seed, meta={"backend": "exact"})
        runs[f"meta interval={k}"] = C.EpochRun(trainee, k, epochs)
    timings = C.interleaved(runs, args.rounds, device)
    wall, cpu = C.total_ratios(timings.wall, "plain StepLR"), C.total_ratios(timings.cpu, "plain StepLR")
    steps = runs["plain StepLR"].t.task.steps_per_epoch
    print(f"\n{task} (batch {cfg.batch_size}, meta batch {cfg.meta.batch_size}, {steps} steps/epoch, "
          f"default meta.interval={default}; {epochs} epochs per round, {args.rounds} rounds)")
    print(f"| variant | s / epoch ({args.clock}) | ratio to plain, wall | ratio to plain, CPU time |")
    print("|---|---:|---:|---:|")
    for name, ts in timings.on(args.clock).items():
        print(f"| {name} | {sum(ts) / len(ts) / epochs:.3f} | {wall[name]:.3f}x | {cpu[name]:.3f}x |")
    return default, cpu if args.clock == "cpu" else wall


def main() -> None:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--tasks", default="digits_cnn,text_lstm_cpython")
    p.add_argument("--intervals", default="10,30,100")
    p.set_defaults(rounds=6)
    args = p.parse_args()
    device = C.setup_torch(args)
    print(C.machine())
    intervals = [int(k) for k in args.intervals.split(",")]
    parts = []
    for task in args.tasks.split(","):
        default, r = bench_task(task, intervals, args, device)
        meets = [k for k in sorted(intervals) if r[f"meta interval={k}"] <= TARGET]
        first = f", interval={meets[0]} {r[f'meta interval={meets[0]}']:.3f}x" if meets else ", no listed interval"
        parts.append(f"{task} default interval={default} {r[f'meta interval={default}']:.3f}x{first}")
    print(f"\ntarget 2, meta-training epoch / plain epoch ({args.clock}): " + "; ".join(parts))


if __name__ == "__main__":
    main()
