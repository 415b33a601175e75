"""``schedule=warmup_cosine``: a linear warmup over warmup_ratio of the run, then a cosine decay to 0
(LRBench++)."""

from mlrsnet.schedules.catalog._warmup import LLM, WarmupRatioParams, warmup_make
from mlrsnet.schedules.spec import Schedule

SCHEDULE = Schedule(
    name="warmup_cosine", summary="linear warmup over warmup_ratio of the run, then cosine decay to 0",
    reference=LLM, kind="scheduler", params=WarmupRatioParams, simplicity=66, make=warmup_make("warmup_cosine"),
)
