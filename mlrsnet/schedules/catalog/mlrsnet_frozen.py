"""``schedule=mlrsnet_frozen``: a frozen, meta-trained MLR-SNet bundle schedules the run, with the reference
meta-test's protocol (:class:`~mlrsnet.schedules.scheduler.MLRSNetScheduler`): the bundle's nets are swapped at
equal fractions of the run, the LSTM state carried across, and gamma (``gamma=recompute``) is
|sqrt(L) ln(L C) / (4 C^0.25)| at the start and at each swap, with L the mean loss over the whole training split
in eval mode at that moment (its perplexity for a language model, per ``gamma_from``). The inner SGD has
momentum 0, as the reference meta_test.py. The authors' nets are read with their meta-test cell (``reading=auto``;
``reading=meta_train`` for the other reading, :mod:`mlrsnet.checkpoint`). ``python -m mlrsnet.transfer`` trains its
query under this schedule (its ``checkpoint``, ``reading``, ``gamma``, ``gamma_min`` and ``gamma_from`` keys are these
parameters)."""

from dataclasses import dataclass
from typing import Any

from mlrsnet.checkpoint import READING_CHOICES, resolve_checkpoint
from mlrsnet.errors import CheckpointError, ConfigError
from mlrsnet.io import file_sha256
from mlrsnet.net import GAMMA_FROM, MLRSNet, compute_gamma, gamma_statistic, resolve_gamma_from
from mlrsnet.schedules.drivers import FrozenMLRSNetDriver
from mlrsnet.schedules.scheduler import MLRSNetScheduler, warn_adaptive_gamma, without_scale_warning
from mlrsnet.schedules.spec import BuildContext, Built, Schedule, ScheduleParams
from mlrsnet.typed import setting

GAMMA_MODES = ("recompute", "checkpoint")


@dataclass
class FrozenParams(ScheduleParams):
    checkpoint: Any = setting(None, "null: the shipped default bundle (digits_cnn_sym40); a shipped short name "
                              "(paper_cifar10_resnet18: the authors' CIFAR-10 nets); a path (a run's "
                              "mlrsnet_bundle.pt, one mlrsnet.pt, an authors' .pth); or a list of them, swapped at "
                              "equal fractions of the run")
    reading: str = setting("auto", "how the authors' nets (paper_cifar10_resnet18, their .pth files) are read: auto "
                           "= meta_test (their meta-test cell, which loads these files: no forget-gate shift, the "
                           "reading that reproduces their CIFAR-10 log) | meta_train (their meta-train cell: forget "
                           "gate shifted by -1, other gate order); nets meta-trained here load as they were trained",
                           choices=READING_CHOICES)
    gamma: Any = setting("recompute", "recompute (the reference meta-test's gamma at the start and at each swap) "
                         "| checkpoint (each net's stored gamma) | <number> (a fixed gamma)")
    gamma_min: float = setting(0.0, "floor of the recomputed gamma (0: the reference's abs(...), unfloored)", ge=0)
    gamma_from: str = setting("auto", "L of the recomputed gamma: loss | perplexity (exp(L)) | auto (perplexity for "
                              "a language model, as the reference's language-modeling code; else loss)",
                              choices=GAMMA_FROM)

    def check(self, prefix: str) -> None:
        if self.gamma not in GAMMA_MODES and not (isinstance(self.gamma, int | float)
                                                  and not isinstance(self.gamma, bool) and self.gamma > 0):
            raise ConfigError(f"{prefix}gamma={self.gamma!r}: use {prefix}gamma=recompute, {prefix}gamma=checkpoint "
                              "or a positive number")
        if isinstance(self.checkpoint, list | tuple) and not self.checkpoint:
            raise ConfigError(f"{prefix}checkpoint=[] names no checkpoint; give a path, a list of paths, or null")
        for source in sources(self.checkpoint):
            if not isinstance(source, MLRSNet) and not resolve_checkpoint(source).is_file():
                raise CheckpointError(f"checkpoint {resolve_checkpoint(source)} does not exist; pass "
                                      f"{prefix}checkpoint=PATH to an existing .pt file (or a shipped name)")


def sources(checkpoint: Any) -> list[Any]:
    """The ``checkpoint`` parameter as a list (``None`` is the shipped default bundle)."""
    return list(checkpoint) if isinstance(checkpoint, list | tuple) else [checkpoint]


def _build(ctx: BuildContext, p: FrozenParams) -> Built:
    task, m = ctx.task, ctx.lr_multiplier
    gamma_from = resolve_gamma_from(p.gamma_from, task.info.metric)
    if p.gamma == "checkpoint" and m != 1.0:
        raise ConfigError("schedule mlrsnet_frozen: gamma=checkpoint cannot be multiplied by "
                          f"{m:g}; give gamma=recompute or a number, or turn LR tuning off")
    items = sources(p.checkpoint)
    records = [{"name": s, "path": str(path), "sha256": file_sha256(path)}
               for s, path in ((s, resolve_checkpoint(s)) for s in items if not isinstance(s, MLRSNet))]
    if p.gamma == "recompute":
        first = compute_gamma(gamma_statistic(ctx.l0, gamma_from), task.info.num_classes, p.gamma_min)
        warn_adaptive_gamma(ctx.optimizer, m * first, ctx.gamma_key)
    try:
        with without_scale_warning():  # warned above in the command line's words, naming the config key
            sched = MLRSNetScheduler(
                ctx.optimizer, items, total_steps=ctx.total_steps, scale=p.gamma,
                num_classes=task.info.num_classes, loss_scale=task.info.loss_scale,
                train_loss=lambda: float(task.evaluate(ctx.model, "train")["loss"]), gamma_min=p.gamma_min,
                lr_factor=m if p.gamma != "checkpoint" else 1.0, gamma_from=gamma_from, check_finite=False,
                reading=p.reading,
            )
    except ValueError as err:
        raise ConfigError(f"schedule mlrsnet_frozen: {err}") from None
    info = {
        "gamma_mode": p.gamma if p.gamma in GAMMA_MODES else "fixed", "gamma_from": gamma_from,
        "checkpoint_gammas": list(sched.stored_gammas), "initial_loss": ctx.l0, "loss_scale": task.info.loss_scale,
        "num_nets": len(sched.nets), "checkpoints": records, "reading": p.reading,
        "cells": [{"forget_bias": n.config.forget_bias, "gate_order": n.config.gate_order} for n in sched.nets],
    }
    return Built(ctx.optimizer, FrozenMLRSNetDriver(sched), info=info)


SCHEDULE = Schedule(
    name="mlrsnet_frozen", summary="a frozen, meta-trained MLR-SNet bundle: the LR of each step from its loss, "
    "nets swapped at equal fractions, gamma recomputed at each swap",
    reference="Shu et al., MLR-SNet: Transferable LR Schedules for Heterogeneous Tasks, TPAMI 2022 (meta-test)",
    kind="loss_scheduler", params=FrozenParams, optimizer={"momentum": 0.0}, simplicity=250, build=_build,
    needs_l0=True,
)
