"""``schedule=adamw_schedulefree``: schedule-free AdamW (Defazio et al. 2024)."""

from mlrsnet.schedules.catalog._peers import ADAM_KEYS, SF, PeerParams, peer_make
from mlrsnet.schedules.spec import Schedule

SCHEDULE = Schedule(
    name="adamw_schedulefree", summary="schedule-free AdamW", reference=SF, kind="train_eval_optimizer",
    params=PeerParams, simplicity=170, make=peer_make("adamw_schedulefree"), inherits=ADAM_KEYS, default_lr="adam",
)
