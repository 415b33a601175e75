"""The cost of multi-task meta-training (issue 34, item 4): a family run (``python -m mlrsnet.train +family=NAME``)
against the sum of its members' single-task runs, side by side.

A family run takes the same steps and meta steps as its members' single-task meta-training runs, each member with
its own config (the family's :class:`~mlrsnet.engine.family.FamilyPlan`); what it adds is the swap of the shared
net's gamma and LSTM state around each step and one run state that holds every member. The target is at most 1.2x
the sum.

Each round times, in a shuffled order, the family run (:func:`~mlrsnet.engine.family.execute_family`) and every
member's single-task run (:func:`mlrsnet.train.meta_train` on the member's own config), each from scratch in a fresh
directory and in this process (build, L0, training, evaluation, saves and files included; the config composition
is done once, before; ``--warmup`` untimed rounds come first). The headline is the median over rounds of family /
sum of members, on the wall clock or the process's CPU time (``--clock cpu``, for a machine shared with other work).

    python benchmarks/bench_family.py --family tiny --rounds 5 --threads 1
    python benchmarks/bench_family.py --family cpu4 --rounds 1 --threads 1 --clock cpu   # ~2 x the family's time
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mlrsnet.engine.cli import compose
from mlrsnet.engine.family import FamilyPlan, execute_family
from mlrsnet.engine.resume import StopSignals
from mlrsnet.train import meta_train, validate


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", default="tiny", help="conf/family/NAME.yaml")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first (imports, first-call costs)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clock", default="wall", choices=("wall", "cpu"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("overrides", nargs="*", help="more key=value overrides of the family run")
    args = p.parse_args(argv)
    plan = validate(compose("train", [f"+family={args.family}", f"threads={args.threads}", "progress=false",
                                      "resume=false", f"seed={args.seed}", *args.overrides]))
    assert isinstance(plan, FamilyPlan)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    rng = random.Random(args.seed)
    names = ["family", *plan.members]
    times: dict[str, list[float]] = {n: [] for n in names}
    print(f"family {args.family}: members {', '.join(plan.members)}; threads={args.threads}, clock={args.clock}; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory() as tmp, StopSignals() as stop:
        for r in range(-args.warmup, args.rounds):
            order = list(names)
            rng.shuffle(order)
            for n in order:
                run_dir = Path(tmp) / f"r{r + args.warmup}" / n
                t0 = clock()
                if n == "family":
                    execute_family(plan, run_dir, stop)
                else:
                    meta_train(plan.members[n], run_dir)
                times[n].append(clock() - t0)
            if r < 0:
                for n in names:
                    times[n].pop()
                continue
            ratio = times["family"][-1] / sum(times[n][-1] for n in plan.members)
            print(f"round {r + 1}: family {times['family'][-1]:.2f} s, members "
                  + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in plan.members) + f"; ratio {ratio:.3f}", flush=True)
    per_round = [times["family"][i] / sum(times[n][i] for n in plan.members) for i in range(args.rounds)]
    print(f"\nfamily / sum of members' single-task runs: median {statistics.median(per_round):.3f} over "
          f"{args.rounds} rounds (min {min(per_round):.3f}, max {max(per_round):.3f}); target <= 1.2; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    sys.exit(main())
