"""Shared plumbing of the Hydra entry points: config-group checks and one-line errors."""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import resources
from typing import Any

from mlrsnet.errors import MLRSNetError

CONFIG_PATH = "pkg://mlrsnet.conf"


def available_configs(group: str) -> list[str]:
    """Names of the configs in a config group (``conf/<group>/*.yaml``), as shipped in the package."""
    root = resources.files("mlrsnet.conf") / group
    if not root.is_dir():
        return []
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def fail(message: str, code: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def check_group_arg(argv: list[str], group: str, command: str) -> list[str]:
    """Validate ``+group=name`` on the command line before Hydra composes the config.

    Accepts ``group=name`` as a synonym of ``+group=name`` (the group is deliberately not in the
    defaults list, so Hydra itself would reject it). Comma-separated sweeps are checked item by item.
    """
    available = available_configs(group)
    listing = ", ".join(available)
    out, found = [], False
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+") == group:
            found = True
            arg = f"+{group}={value}"
            if "(" not in value:
                unknown = [v for v in value.split(",") if v not in available]
                if unknown:
                    fail(f"unknown {group} {unknown[0]!r}; available {group}s: {listing}")
        out.append(arg)
    if not found and not any(a in ("-h", "--help", "--cfg", "-c", "--info", "-i") for a in argv):
        fail(f"no {group} given; run `python -m mlrsnet.{command} +{group}=NAME` with NAME one of: {listing}")
    return out


def run_hydra(task_function: Callable[[Any], Any], config_name: str, group: str, command: str) -> None:
    """Run ``task_function`` under ``hydra.main``; user errors print one line and exit with code 2."""
    import hydra

    sys.argv = [sys.argv[0], *check_group_arg(sys.argv[1:], group, command)]

    def guarded(cfg: Any) -> Any:
        try:
            return task_function(cfg)
        except MLRSNetError as e:
            fail(str(e), e.exit_code)

    guarded.__name__ = command
    guarded.__module__ = task_function.__module__
    hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name=config_name)(guarded)()


def compose(config_name: str = "train", overrides: list[str] | None = None) -> Any:
    """Compose ``conf/<config_name>.yaml`` with command-line style overrides, from Python.

    ``compose("train", ["+task=digits_cnn", "epochs=5"])`` gives the config that
    ``python -m mlrsnet.train +task=digits_cnn epochs=5`` would run with.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="mlrsnet.conf", version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides or []))
