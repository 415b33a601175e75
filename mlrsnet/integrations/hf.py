"""Loss-driven LR schedules inside the HuggingFace ``transformers.Trainer`` (optional extra ``mlrsnet[llm]``).

``Trainer`` steps its ``lr_scheduler`` with no argument after every optimiser step, and a
``ReduceLROnPlateau`` with the eval metric after every evaluation. A frozen MLR-SNet
(:class:`~mlrsnet.schedules.scheduler.MLRSNetScheduler`) needs each step's training loss, and GreedyLR
(:class:`~mlrsnet.schedules.greedy.GreedyLR`) a metric. :class:`HFTrainerSchedule` wraps either and is
handed to the Trainer twice, as its scheduler and as a callback::

    sched = MLRSNetScheduler(optimizer, total_steps=args.max_steps, loss_scale=math.log(vocab), scale=None)
    hf = HFTrainerSchedule(sched)  # or HFTrainerSchedule(GreedyLR(optimizer, ...), on="eval_loss")
    Trainer(model, args, train_dataset=ds, optimizers=(optimizer, hf), callbacks=[hf]).train()

(``scale=None``: AdamW's LR is the largest LR the net emits; the default ``scale="optimizer"`` starts at it; the
paper's recomputed gamma, ``scale="recompute"``, is an SGD LR and warns under AdamW.)

- ``on="train_loss"`` (default): a forward hook on the model collects the training loss the model returns
  (``outputs.loss``: pass ``labels``), averaged over the forward passes of one optimiser step (gradient
  accumulation), and ``scheduler.step(loss)`` runs after the backward pass and gradient clipping, before
  ``optimizer.step()``: the LR of step t comes from the loss of step t, as in the paper and in
  :class:`mlrsnet.schedules.drivers.FrozenMLRSNetDriver`.
- ``on="eval_loss"`` (or any key of the Trainer's evaluation metrics): ``scheduler.step(metrics[on])``
  after every evaluation, where transformers itself steps a plateau scheduler; the LR changes from the next
  optimiser step on. Evaluate often (``eval_strategy="steps"``) for the schedule to have something to do.

The Trainer's own call ``lr_scheduler.step()`` is a no-op here, ``get_last_lr()`` reports the optimiser's
LRs (what the Trainer logs as ``learning_rate``), and ``state_dict()`` / ``load_state_dict()`` carry the
wrapped scheduler's state through Trainer checkpoints.
"""

from __future__ import annotations

from typing import Any

import torch

from mlrsnet.errors import ConfigError

try:
    from transformers import TrainerCallback
except ImportError as _err:
    raise ConfigError(f"mlrsnet.integrations.hf needs transformers ({_err.name} is missing); install the "
                      "optional extra: pip install 'mlrsnet[llm]'") from None

__all__ = ["HFTrainerSchedule"]


def _output_loss(output: Any) -> torch.Tensor | None:
    loss = getattr(output, "loss", None)
    if loss is None and isinstance(output, dict):
        loss = output.get("loss")
    return loss if isinstance(loss, torch.Tensor) else None


class HFTrainerSchedule(TrainerCallback):
    """A loss-driven scheduler (anything with ``step(value)`` and an ``optimizer``) as a Trainer
    ``lr_scheduler`` and callback; see the module docstring."""

    def __init__(self, scheduler: Any, on: str = "train_loss") -> None:
        if not callable(getattr(scheduler, "step", None)) or getattr(scheduler, "optimizer", None) is None:
            raise ConfigError(f"HFTrainerSchedule wraps a scheduler with step(value) and an optimizer, got "
                              f"{type(scheduler).__name__}; pass an MLRSNetScheduler or a GreedyLR")
        self.scheduler = scheduler
        self.optimizer = scheduler.optimizer
        self.on = on
        self._losses: list[torch.Tensor] = []
        self._hook: Any = None

    # --- the Trainer's lr_scheduler protocol -------------------------------------------------------------
    def step(self, *args: Any, **kwargs: Any) -> None:
        """Called by the Trainer after every optimiser step: nothing to do, the callback steps the scheduler."""

    def get_last_lr(self) -> list[float | torch.Tensor]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state["scheduler"])

    # --- callback events ---------------------------------------------------------------------------------
    def _collect(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        loss = _output_loss(output)
        if module.training and loss is not None:
            self._losses.append(loss.detach())

    def on_train_begin(self, args: Any, state: Any, control: Any, model: torch.nn.Module | None = None,
                       **kwargs: Any) -> None:
        if self.on == "train_loss" and model is not None and self._hook is None:
            self._hook = model.register_forward_hook(self._collect)

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.on != "train_loss":
            return
        if not self._losses:
            raise ConfigError("HFTrainerSchedule(on='train_loss') saw no training loss: the model's forward "
                              "returned none; give the batches labels so that outputs.loss is set")
        loss = torch.stack(self._losses).mean()
        self._losses.clear()
        self.scheduler.step(loss)

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict | None = None, **kwargs: Any) -> None:
        if self.on == "train_loss":
            return
        if not metrics or self.on not in metrics:
            raise ConfigError(f"HFTrainerSchedule(on={self.on!r}): the evaluation returned "
                              f"{sorted(metrics or {})}; pass on= one of them")
        self.scheduler.step(float(metrics[self.on]))

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
