"""What the hypergradient-descent declarations share."""

from dataclasses import dataclass

from mlrsnet.schedules.spec import ScheduleParams
from mlrsnet.typed import setting

HD = "Baydin et al., Hypergradient Descent, ICLR 2018"


@dataclass
class HDParams(ScheduleParams):
    lr: float | None = setting(None, "the initial LR (null: optimizer.lr; adam_hd: 1e-3 unless the base is Adam)",
                               gt=0)
    hypergrad_lr: float | None = setting(None, "the hypergradient step beta (null: 1e-6 SGD, 1e-8 Adam)", ge=0)
