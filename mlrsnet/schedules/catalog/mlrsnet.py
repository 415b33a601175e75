"""``schedule=mlrsnet``: MLR-SNet meta-trained in place while the task trains (``python -m mlrsnet.train``): a fresh
net (the run's ``net`` section) sets every step's LR from that step's loss, and a meta engine (its ``meta``
section) updates it on the meta-validation split every ``meta.interval`` steps. SGD without momentum, as the
reference meta_train.py (--momentum 0)."""

import torch

from mlrsnet.meta.engine import MetaEngine
from mlrsnet.net import MLRSNet, compute_gamma, fresh_mlrsnet, gamma_statistic
from mlrsnet.schedules.drivers import MLRSNetDriver
from mlrsnet.schedules.scheduler import warn_adaptive_gamma
from mlrsnet.schedules.spec import BuildContext, Built, Schedule, ScheduleParams


def build_net(ctx: BuildContext) -> MLRSNet:
    """A fresh MLR-SNet of the run's ``net.cell`` (:func:`~mlrsnet.net.fresh_mlrsnet`): gamma from the formula
    (``net.gamma: null``; its L is the initial loss, or for a language model the initial perplexity, per
    ``net.gamma_from``), twice the optimizer's LR (``net.gamma: optimizer``; a fresh net's outputs start near
    half its gamma) or fixed."""
    net_cfg = ctx.net
    gamma = net_cfg.gamma
    if gamma == "optimizer":
        gamma = 2.0 * ctx.base_lr
    elif gamma is None:
        stat = gamma_statistic(ctx.l0, net_cfg.gamma_from, ctx.task.info.metric)
        gamma = compute_gamma(stat, ctx.task.info.num_classes, net_cfg.gamma_min)
    return fresh_mlrsnet(net_cfg.hidden_size, float(gamma), net_cfg.cell).to(ctx.device)


def _build(ctx: BuildContext, params: ScheduleParams) -> Built:
    torch.manual_seed(ctx.seed + 1)
    net = build_net(ctx)
    net.set_gamma(float(net.gamma) * ctx.lr_multiplier)
    if ctx.net.gamma is None:
        warn_adaptive_gamma(ctx.optimizer, float(net.gamma), "net.gamma")
    meta = ctx.meta
    engine = MetaEngine(
        net, ctx.task, ctx.model, ctx.optimizer, backend=meta.backend, K=meta.K, meta_lr=meta.lr,
        meta_weight_decay=meta.weight_decay, grad_clip=ctx.grad_clip, first_order=meta.first_order,
        lookahead_advances_state=meta.lookahead_advances_state,
    )
    return Built(ctx.optimizer, MLRSNetDriver(net, ctx.optimizer, ctx.task.info.loss_scale), net, engine)


SCHEDULE = Schedule(
    name="mlrsnet", summary="MLR-SNet meta-trained in place: an LSTM maps each step's training loss to its LR",
    reference="Shu et al., MLR-SNet: Transferable LR Schedules for Heterogeneous Tasks, TPAMI 2022",
    kind="meta_trained", optimizer={"momentum": 0.0}, simplicity=260, build=_build,
    needs_l0=True,
)
