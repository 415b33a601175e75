"""``python -m mlrsnet.ensemble +task=NAME``: LREnsemble from the command line (Hydra, conf/ensemble.yaml).

Trains the pool of LR policies (or reads a finished ``mlrsnet.bench`` with ``from_bench=DIR``), chooses
teams on the meta split and writes the tables and the diversity figure; see :mod:`mlrsnet.ensemble.study`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlrsnet.ensemble.study import lrensemble, validate_ensemble


def _hydra_main(cfg: Any) -> None:
    from hydra.core.hydra_config import HydraConfig

    out_dir = Path(cfg.get("out_dir") or HydraConfig.get().runtime.output_dir)
    results = lrensemble(cfg, out_dir)
    print(results["table"])
    print(f"outputs in {out_dir}: " + ", ".join(results["files"]))


def main() -> None:
    from mlrsnet.cli import run_hydra

    run_hydra(_hydra_main, config_name="ensemble", group="task", command="ensemble", validate=validate_ensemble)


if __name__ == "__main__":
    main()
