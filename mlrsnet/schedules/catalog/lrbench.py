"""``schedule=lrbench``: an LRBench policy t -> lr (Wu, Liu et al. 2019); by default TRI2 from lr0/10 to lr0
with half-cycles of T/4."""

from dataclasses import dataclass
from typing import Any

from mlrsnet.schedules.catalog._torch import SGDM
from mlrsnet.schedules.lrbench import LRBenchScheduler
from mlrsnet.schedules.spec import BuildContext, Schedule, ScheduleParams
from mlrsnet.typed import setting


@dataclass
class LRBenchParams(ScheduleParams):
    policy: str | None = setting(None, "FIX | STEP | NSTEP | EXP | INV | POLY | SIG | TRI | TRI2 | SIN | COS | ... | "
                                 "COMPOSITE (null: TRI2 with k0 = lr0/10, k1 = lr0, l = T/4)")
    k0: float | None = setting(None, "the policy's k0 (an LR)")
    k1: float | None = setting(None, "the policy's k1 (an LR)")
    l: Any = setting(None, "the policy's l (iterations; a list for NSTEP)")
    gamma: float | None = setting(None, "the policy's gamma")
    p: float | None = setting(None, "the policy's p")
    segments: Any = setting(None, "COMPOSITE: [[start, policy, {params}], ...]")


def _defaults(ctx: BuildContext, given: dict) -> dict:
    if "policy" in given:
        return {}
    lr0 = ctx.base_lr
    return {"policy": "TRI2", "k0": lr0 / 10, "k1": lr0, "l": max(1, ctx.total_steps // 4)}


def _make(optimizer: Any, total_steps: int, steps_per_epoch: int, **params: Any) -> LRBenchScheduler:
    from mlrsnet.errors import ConfigError

    if "policy" not in params:
        raise ConfigError("schedule lrbench needs policy=<LRBench policy name>, e.g. policy=TRI")
    return LRBenchScheduler(optimizer, **params)


SCHEDULE = Schedule(
    name="lrbench", summary="LRBench policy t -> lr (policy=FIX|STEP|NSTEP|EXP|INV|POLY|SIG|TRI|SIN|COS|...|"
    "COMPOSITE with k0, k1, gamma, p, l)", reference="Wu, Liu et al., Demystifying Learning Rate Policies, IEEE "
    "BigData 2019", kind="scheduler", params=LRBenchParams, optimizer=SGDM, simplicity=100, defaults=_defaults,
    make=_make,
)
