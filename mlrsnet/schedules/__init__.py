"""Baseline LR schedules: the LRBench family, PyTorch built-ins, GreedyLR, hypergradient descent,
MARTHE/RTHO online hypergradients, L4, stochastic line search, AutoLR-style tuning and schedule-/parameter-free peers.

:mod:`mlrsnet.schedules.registry` names each of them for configs (``schedule=<name>``) and says how
a training loop drives it.
"""

from mlrsnet.schedules.autolr import AutoLRTuner, choose_factor
from mlrsnet.schedules.builtin import TORCH_SCHEDULES, build_torch_scheduler
from mlrsnet.schedules.greedy import GreedyLR
from mlrsnet.schedules.hd import SGDHD, AdamHD
from mlrsnet.schedules.l4 import L4
from mlrsnet.schedules.line_search import SGDArmijo
from mlrsnet.schedules.lrbench import Composite, LRBenchScheduler, available_policies, lr_at, schedule
from mlrsnet.schedules.marthe import MartheTuner
from mlrsnet.schedules.peers import (
    PEER_OPTIMIZERS,
    build_peer_optimizer,
    needs_train_eval,
    optimizer_eval,
    optimizer_train,
)
from mlrsnet.schedules.registry import (
    KINDS,
    SCHEDULES,
    ScheduleInfo,
    available_schedules,
    build_optimizer,
    build_scheduler,
    describe_schedule,
)

__all__ = [
    "KINDS",
    "PEER_OPTIMIZERS",
    "SCHEDULES",
    "SGDHD",
    "TORCH_SCHEDULES",
    "AdamHD",
    "AutoLRTuner",
    "Composite",
    "GreedyLR",
    "L4",
    "LRBenchScheduler",
    "MartheTuner",
    "SGDArmijo",
    "ScheduleInfo",
    "available_policies",
    "available_schedules",
    "build_optimizer",
    "build_peer_optimizer",
    "build_scheduler",
    "build_torch_scheduler",
    "choose_factor",
    "describe_schedule",
    "lr_at",
    "needs_train_eval",
    "optimizer_eval",
    "optimizer_train",
    "schedule",
]
