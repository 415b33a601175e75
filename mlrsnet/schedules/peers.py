r"""Schedule-free and parameter-free peer optimizers (optional extra ``mlrsnet[peers]``).

Each replaces the base optimizer rather than scheduling it:

    sgd_schedulefree    schedulefree.SGDScheduleFree     Defazio et al., "The Road Less Scheduled",
    adamw_schedulefree  schedulefree.AdamWScheduleFree   NeurIPS 2024
    prodigy             prodigyopt.Prodigy               Mishchenko & Defazio, "Prodigy", ICML 2024
    dadapt_sgd          dadaptation.DAdaptSGD            Defazio & Mishchenko, "Learning-Rate-Free
    dadapt_adam         dadaptation.DAdaptAdam           Learning by D-Adaptation", ICML 2023

Schedule-free: the gradient is taken at ``y_t = (1 - beta) z_t + beta x_t``; ``z`` takes the
SGD/AdamW step ``z_{t+1} = z_t - lr * grad f(y_t)`` and ``x`` averages it,
``x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}`` with ``c_{t+1} = 1/(t+1)`` (LR-weighted in the
package). Prodigy and D-Adaptation estimate the distance ``d ~ ||x_0 - x*||`` online and step
with ``lr * d`` (Adam- or SGD-style).

For Prodigy and D-Adaptation ``lr`` multiplies the estimated step size ``d`` (use 1.0). The
schedule-free optimizers keep two points and must be told which one the model should hold:
call :func:`optimizer_train` before training steps and :func:`optimizer_eval` before evaluating
or saving a checkpoint (both are no-ops for every other optimizer, so a loop may call them
unconditionally; :func:`needs_train_eval` says whether they matter). With BatchNorm, the running
statistics are those of the training point; the schedule-free authors recompute them in eval mode
with a few forward passes, which is left to the caller.

Packages are imported only when a peer is built; a missing one raises
:class:`~mlrsnet.errors.ConfigError` naming the extra to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

from torch.optim import Optimizer

from mlrsnet.errors import ConfigError

__all__ = ["PEER_OPTIMIZERS", "build_peer_optimizer", "needs_train_eval", "optimizer_eval", "optimizer_train"]

# name -> (module, class)
PEER_OPTIMIZERS: dict[str, tuple[str, str]] = {
    "sgd_schedulefree": ("schedulefree", "SGDScheduleFree"),
    "adamw_schedulefree": ("schedulefree", "AdamWScheduleFree"),
    "prodigy": ("prodigyopt", "Prodigy"),
    "dadapt_sgd": ("dadaptation", "DAdaptSGD"),
    "dadapt_adam": ("dadaptation", "DAdaptAdam"),
}


def build_peer_optimizer(name: str, params: Iterable[Any], lr: float, **kw: Any) -> Optimizer:
    """Build peer optimizer ``name`` over ``params``; ``kw`` goes to the package's constructor."""
    if name not in PEER_OPTIMIZERS:
        raise ConfigError(f"unknown peer optimizer {name!r}; use one of: "
                          f"{', '.join(sorted(PEER_OPTIMIZERS))}")
    module_name, class_name = PEER_OPTIMIZERS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"optimizer {name} needs the package {module_name!r}, which is not installed; "
                          "it requires the optional extra: pip install 'mlrsnet[peers]'") from err
    try:
        return getattr(module, class_name)(params, lr=lr, **kw)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"optimizer {name}: {module_name}.{class_name} rejected the parameters ({err}); "
                          "fix them") from err


def needs_train_eval(optimizer: Optimizer) -> bool:
    """Whether ``optimizer`` has train/eval modes (the schedule-free family)."""
    return callable(getattr(optimizer, "train", None)) and callable(getattr(optimizer, "eval", None))


def optimizer_train(optimizer: Optimizer) -> None:
    """Put a schedule-free optimizer's parameters at the training point ``y``; no-op otherwise."""
    if needs_train_eval(optimizer):
        optimizer.train()


def optimizer_eval(optimizer: Optimizer) -> None:
    """Put a schedule-free optimizer's parameters at the averaged point ``x``; no-op otherwise."""
    if needs_train_eval(optimizer):
        optimizer.eval()
