"""The model registry: ``@register_model("name")`` on a class or factory, ``build_model(name, **kwargs)``.

Importing it imports its package, :mod:`mlrsnet.tasks.models`, which imports every module that registers
a model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from mlrsnet.errors import ConfigError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator that registers a model class or factory under ``name``."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = fn
        return fn

    return deco


def available_models() -> list[str]:
    return sorted(_MODELS)


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` with keyword arguments from the task config."""
    if name not in _MODELS:
        raise ConfigError(
            f"unknown model {name!r}; available models: {', '.join(available_models())}. "
            "Set task.model to one of them."
        )
    return _MODELS[name](**kwargs)
