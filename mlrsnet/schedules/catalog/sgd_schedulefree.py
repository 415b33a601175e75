"""``schedule=sgd_schedulefree``: schedule-free SGD (Defazio et al. 2024)."""

from mlrsnet.schedules.catalog._peers import SF, SGD_KEYS, PeerParams, peer_make
from mlrsnet.schedules.catalog._torch import SGDM
from mlrsnet.schedules.spec import Schedule

SCHEDULE = Schedule(
    name="sgd_schedulefree", summary="schedule-free SGD (no decay schedule)", reference=SF,
    kind="train_eval_optimizer", params=PeerParams, optimizer=SGDM, simplicity=160,
    make=peer_make("sgd_schedulefree"), inherits=SGD_KEYS,
)
