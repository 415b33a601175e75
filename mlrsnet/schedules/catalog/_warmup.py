"""What the LLM fine-tuning policies (``warmup_constant``, ``warmup_linear``, ``warmup_cosine``) share: a linear
warmup over ``warmup_ratio`` of the run (:func:`mlrsnet.schedules.builtin.build_warmup_policy`)."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlrsnet.schedules.builtin import build_warmup_policy
from mlrsnet.schedules.spec import ScheduleParams
from mlrsnet.typed import setting

LLM = "Jin et al., Rethinking Learning Rate Tuning in the Era of Large Language Models (LRBench++), 2023"


@dataclass
class WarmupRatioParams(ScheduleParams):
    warmup_ratio: float = setting(0.03, "fraction of the run spent warming up", ge=0, lt=1)
    warmup_steps: int | None = setting(None, "warmup iterations (instead of warmup_ratio)", ge=0)
    warmup_epochs: float | None = setting(None, "warmup in epochs (instead of warmup_ratio)", ge=0)
    warmup_start_factor: float | None = setting(None, "the warmup's first LR as a fraction of lr0 (null: 1e-3)",
                                                gt=0, le=1)


def warmup_make(name: str) -> Callable[..., Any]:
    def make(optimizer: Any, total_steps: int, steps_per_epoch: int, **kw: Any) -> Any:
        return build_warmup_policy(name, optimizer, total_steps, steps_per_epoch, **kw)

    return make
