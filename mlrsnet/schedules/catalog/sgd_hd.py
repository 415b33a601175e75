"""``schedule=sgd_hd``: SGD-HD over SGDM (Baydin et al. 2018)."""

from mlrsnet.schedules.catalog._hd import HD, HDParams
from mlrsnet.schedules.catalog._torch import SGDM
from mlrsnet.schedules.hd import SGDHD
from mlrsnet.schedules.spec import Schedule

SCHEDULE = Schedule(
    name="sgd_hd", summary="SGD-HD: alpha_t = alpha_{t-1} + beta * grad f(theta_{t-1}) . u_{t-2}", reference=HD,
    kind="optimizer", params=HDParams, optimizer=SGDM, simplicity=120, make=SGDHD,
    inherits=("momentum", "weight_decay", "nesterov"),
)
