"""Train an LR-scheduling agent with PPO (needs the ``[rl]`` extra).

Command line (Hydra)::

    python -m mlrsnet.rl train +task=nmf_synthetic [rl.total_timesteps=5000 seed=1 rl.safe=true ...]

Outputs in ``runs/rl/<task>/<timestamp>/``: ``policy.pt`` (run it with ``schedule=rl
+schedule_params.rl.policy=PATH``), ``learning_curve.{csv,png}``, ``ppo_state.zip`` / ``rl_state.json``
(resume: rerun with the same ``hydra.run.dir``), ``config.yaml``, ``environment.json``, ``summary.json``;
see :mod:`mlrsnet.rl.agent`. Exit codes: 0 done, 2 bad input or a missing extra, 75 stopped by a signal with
the state saved.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

COMMANDS = ("train",)


def _hydra_main(cfg: Any) -> None:
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from mlrsnet.rl.agent import train_agent

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    summary = train_agent(cfg, run_dir, config_yaml=OmegaConf.to_yaml(cfg, resolve=True))
    print(f"done: {summary['episodes']} episodes, {summary['timesteps']} agent steps; policy {summary['policy']}")


def main() -> None:
    from mlrsnet.engine.cli import fail, run_hydra

    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        got = sys.argv[1] if len(sys.argv) > 1 else "nothing"
        fail(f"expected a command ({', '.join(COMMANDS)}), got {got}; run python -m mlrsnet.rl train +task=NAME")
    sys.argv = [sys.argv[0], *sys.argv[2:]]
    from mlrsnet.rl.agent import validate_rl

    run_hydra(_hydra_main, config_name="rl", group="task", command="rl train", validate=validate_rl)


if __name__ == "__main__":
    main()
