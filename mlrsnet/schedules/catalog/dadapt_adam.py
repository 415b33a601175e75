"""``schedule=dadapt_adam``: D-Adaptation Adam, learning-rate-free Adam (Defazio & Mishchenko 2023)."""

from mlrsnet.schedules.catalog._peers import ADAM_KEYS, DA, PeerParams, peer_make
from mlrsnet.schedules.spec import Schedule

SCHEDULE = Schedule(
    name="dadapt_adam", summary="D-Adaptation Adam: learning-rate-free Adam", reference=DA, kind="optimizer",
    params=PeerParams, simplicity=200, make=peer_make("dadapt_adam"), inherits=ADAM_KEYS, default_lr=1.0,
)
