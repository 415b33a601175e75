"""``schedule=adam_hd``: Adam-HD (Baydin et al. 2018)."""

from mlrsnet.schedules.catalog._hd import HD, HDParams
from mlrsnet.schedules.hd import AdamHD
from mlrsnet.schedules.spec import Schedule

SCHEDULE = Schedule(
    name="adam_hd", summary="Adam-HD: hypergradient descent on Adam's LR", reference=HD, kind="optimizer",
    params=HDParams, simplicity=130, make=AdamHD, inherits=("betas", "eps", "weight_decay"), default_lr="adam",
)
