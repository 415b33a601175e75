"""``schedule=dadapt_sgd``: D-Adaptation SGD, learning-rate-free SGD (Defazio & Mishchenko 2023)."""

from mlrsnet.schedules.catalog._peers import DA, SGD_KEYS, PeerParams, peer_make
from mlrsnet.schedules.catalog._torch import SGDM
from mlrsnet.schedules.spec import Schedule

SCHEDULE = Schedule(
    name="dadapt_sgd", summary="D-Adaptation SGD: learning-rate-free SGD", reference=DA, kind="optimizer",
    params=PeerParams, optimizer=SGDM, simplicity=190, make=peer_make("dadapt_sgd"), inherits=SGD_KEYS,
    default_lr=1.0,
)
