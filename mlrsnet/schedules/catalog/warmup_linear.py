"""``schedule=warmup_linear``: a linear warmup over warmup_ratio of the run, then a linear decay to 0 (DeepSpeed
WarmupDecayLR, the HuggingFace default; LRBench++)."""

from mlrsnet.schedules.catalog._warmup import LLM, WarmupRatioParams, warmup_make
from mlrsnet.schedules.spec import Schedule

SCHEDULE = Schedule(
    name="warmup_linear", summary="linear warmup over warmup_ratio of the run, then linear decay to 0 (DeepSpeed "
    "WarmupDecayLR, the HuggingFace default)", reference=LLM, kind="scheduler", params=WarmupRatioParams,
    simplicity=57, make=warmup_make("warmup_linear"),
)
