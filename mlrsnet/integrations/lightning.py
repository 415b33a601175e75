"""A frozen MLR-SNet in a PyTorch Lightning ``Trainer`` (optional extra ``mlrsnet[lightning]``)::

    from mlrsnet.integrations.lightning import MLRSNetCallback
    trainer = pl.Trainer(max_epochs=10, callbacks=[MLRSNetCallback()])
    trainer.fit(model)          # model.configure_optimizers returns the optimizer; no LR scheduler

    MLRSNetCallback(scale="recompute", num_classes=10)   # the paper's meta-test protocol instead

The callback builds a :class:`~mlrsnet.schedules.scheduler.MLRSNetScheduler` over the trainer's (first) optimizer
when training starts, with ``total_steps`` the trainer's optimizer steps (``estimated_stepping_batches``), and
feeds it every step's training loss with the paper's timing: the loss reaches the callback before the backward
pass (``on_before_backward``; averaged over the micro-batches of gradient accumulation), and the LR of the step
is set from it just before ``optimizer.step()`` (``on_before_optimizer_step``). Keyword arguments go to
``MLRSNetScheduler`` (``checkpoint``, ``scale``, ``num_classes``, ``loss_scale``, ``gamma_min``...), with its
defaults: ``scale="optimizer"``, the optimizer's LR is the first LR (``scale="recompute"``: the paper's gamma). The
scheduler's state is saved in Lightning checkpoints (``state_dict`` / ``load_state_dict``).
"""

from __future__ import annotations

from typing import Any

import torch

from mlrsnet.errors import ConfigError
from mlrsnet.schedules.scheduler import MLRSNetScheduler

try:
    import pytorch_lightning as pl
except ImportError as _err:  # pragma: no cover - the extra is installed in CI
    raise ConfigError("mlrsnet.integrations.lightning needs the [lightning] extra (pytorch-lightning); pip install "
                      "'mlrsnet[lightning]'") from _err

__all__ = ["MLRSNetCallback"]


class MLRSNetCallback(pl.Callback):
    """Feeds a frozen MLR-SNet the training loss of every step (the module docstring)."""

    def __init__(self, **scheduler_kwargs: Any) -> None:
        self.kwargs = scheduler_kwargs
        self.scheduler: MLRSNetScheduler | None = None
        self._losses: list[torch.Tensor] = []
        self._state: dict | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.optimizers:
            raise ConfigError("MLRSNetCallback needs an optimizer: return one from configure_optimizers")
        self.scheduler = MLRSNetScheduler(trainer.optimizers[0],
                                          **{"total_steps": int(trainer.estimated_stepping_batches), **self.kwargs})
        if self._state is not None:
            self.scheduler.load_state_dict(self._state)
            self._state = None

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        self._losses.append(loss.detach())

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                                 optimizer: torch.optim.Optimizer) -> None:
        if self.scheduler is None or not self._losses:
            return
        loss = torch.stack(self._losses).mean()
        self._losses = []
        self.scheduler.step(loss)

    def state_dict(self) -> dict[str, Any]:
        return {} if self.scheduler is None else {"scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._state = state_dict.get("scheduler")
