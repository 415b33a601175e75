"""``schedule=prodigy``: Prodigy, Adam with an online estimate of the distance to the optimum."""

from mlrsnet.schedules.catalog._peers import ADAM_KEYS, PeerParams, peer_make
from mlrsnet.schedules.spec import Schedule

SCHEDULE = Schedule(
    name="prodigy", summary="Prodigy: Adam with an online estimate of the distance to optimum",
    reference="Mishchenko & Defazio, Prodigy, ICML 2024", kind="optimizer", params=PeerParams, simplicity=180,
    make=peer_make("prodigy"), inherits=ADAM_KEYS, default_lr=1.0,
)
