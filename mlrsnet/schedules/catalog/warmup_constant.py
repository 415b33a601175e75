"""``schedule=warmup_constant``: a linear warmup over warmup_ratio of the run, then the base LR (DeepSpeed
WarmupLR; LRBench++)."""

from mlrsnet.schedules.catalog._warmup import LLM, WarmupRatioParams, warmup_make
from mlrsnet.schedules.spec import Schedule

SCHEDULE = Schedule(
    name="warmup_constant", summary="linear warmup over warmup_ratio of the run, then constant (DeepSpeed WarmupLR)",
    reference=LLM, kind="scheduler", params=WarmupRatioParams, simplicity=56, make=warmup_make("warmup_constant"),
)
