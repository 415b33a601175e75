"""``python -m mlrsnet.ensemble +task=NAME``: LREnsemble from the command line (Hydra, conf/ensemble.yaml).

Trains the pool of LR policies (or reads a finished ``mlrsnet.bench`` with ``from_bench=DIR``), chooses
teams on the meta split and writes the tables and the diversity figure; see :mod:`mlrsnet.ensemble.study`.
"""

from __future__ import annotations

from mlrsnet.ensemble.study import lrensemble, validate_ensemble


def main() -> None:
    from mlrsnet.engine.cli import run_hydra, table_command

    run_hydra(table_command(lrensemble), config_name="ensemble", group="task", command="ensemble",
              validate=validate_ensemble)


if __name__ == "__main__":
    main()
