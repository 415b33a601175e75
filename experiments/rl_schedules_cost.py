"""The RL agents' training cost against the runs they schedule, from the committed files of
experiments/rl_schedules/ (agent: summary.json + learning_curve.csv; runs: the bench's results.csv).

    python experiments/rl_schedules_cost.py > experiments/rl_schedules/cost.md
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent / "rl_schedules"
# agent run -> (bench of the runs its policy schedules, the steps of one such run)
PAIRS = {"nmf_synthetic_ship": [("nmf", 360)], "digits_cnn_ship": [("digits", 180), ("text", 48)]}


def main() -> None:
    print("| agent | episodes | agent steps | training steps simulated | agent wall time (s) | scheduled task | "
          "steps of one scheduled run | wall time of one rl run (s) | agent cost in scheduled runs |")
    print("|---|---|---|---|---|---|---|---|---|")
    for agent, benches in PAIRS.items():
        summary = json.loads((HERE / agent / "summary.json").read_text())
        steps = summary["total_train_steps"]
        for bench, run_steps in benches:
            rows = [r for r in csv.DictReader((HERE / bench / "results.csv").open()) if r["schedule"] == "rl"]
            wall = statistics.mean(float(r["wall_time_s"]) for r in rows)
            print(f"| {agent} | {summary['episodes']} | {summary['timesteps']} | {steps} | "
                  f"{summary['wall_time_s']:.0f} | {bench} | {run_steps or 'see results'} | {wall:.1f} | "
                  f"{summary['wall_time_s'] / wall:.0f}x |")


if __name__ == "__main__":
    main()
