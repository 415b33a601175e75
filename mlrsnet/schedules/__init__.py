"""LR schedules: MLR-SNet (meta-trained in place, or frozen) and every baseline the literature compares against
(the LRBench family, PyTorch built-ins, GreedyLR, hypergradient descent, MARTHE/RTHO, L4, stochastic line search,
AutoLR-style tuning, schedule- and learning-rate-free peers, RL policies).

Each schedule is declared once, in its own module of :mod:`mlrsnet.schedules.catalog`;
:mod:`mlrsnet.schedules.registry` finds the declarations and builds any of them by name (``schedule=<name>``).
"""

from mlrsnet.schedules.registry import (
    build_optimizer,
    build_scheduler,
    describe_schedule,
    get_schedule,
    schedule_names,
)
from mlrsnet.schedules.scheduler import MLRSNetScheduler

__all__ = ["MLRSNetScheduler", "build_optimizer", "build_scheduler", "describe_schedule", "get_schedule",
           "schedule_names"]
