"""Small shared helpers: seeding, optimisers, config conversion."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from mlrsnet.errors import ConfigError


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name} requested but CUDA is not available; use device=cpu")
    return dev


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: dict[str, Any]) -> torch.optim.Optimizer:
    """SGD / Adam / AdamW from the ``optimizer`` config section. On CUDA the step is ``fused``: it reads
    a tensor LR (MLR-SNet's output) on the device, so setting the LR needs no host sync."""
    params = list(params)
    cuda = bool(params) and all(isinstance(p, torch.Tensor) and p.device.type == "cuda" for p in params)
    fused = True if cuda else None
    name = str(cfg.get("name", "sgd")).lower()
    lr = float(cfg["lr"])
    if lr <= 0:
        raise ConfigError(f"optimizer.lr must be positive, got {lr}")
    wd = float(cfg.get("weight_decay", 0.0))
    if wd < 0:
        raise ConfigError(f"optimizer.weight_decay must be >= 0, got {wd}")
    if name == "sgd":
        momentum = float(cfg.get("momentum", 0.0))
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=wd,
                               nesterov=bool(cfg.get("nesterov", False)) and momentum > 0, fused=fused)
    if name in ("adam", "adamw"):
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        betas = tuple(cfg.get("betas", (0.9, 0.999)))
        return cls(params, lr=lr, betas=betas, eps=float(cfg.get("eps", 1e-8)), weight_decay=wd, fused=fused)
    raise ConfigError(f"unknown optimizer {name!r}; use optimizer.name=sgd, adam or adamw")


def to_plain(cfg: Any) -> dict:
    """A resolved, plain-dict copy of an OmegaConf config (or a dict)."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


def dump_config(cfg: dict) -> str:
    """The resolved config as YAML, as written to ``config.yaml`` beside a run's results."""
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(cfg))
