"""What the declarations of the schedule-free and learning-rate-free peers share (optional packages,
:mod:`mlrsnet.schedules.peers`)."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlrsnet.schedules.peers import build_peer_optimizer
from mlrsnet.schedules.spec import ScheduleParams
from mlrsnet.typed import setting

SF = "Defazio et al., The Road Less Scheduled, NeurIPS 2024"
DA = "Defazio & Mishchenko, D-Adaptation, ICML 2023"
ADAM_KEYS = ("betas", "eps", "weight_decay")
SGD_KEYS = ("momentum", "weight_decay")


@dataclass
class PeerParams(ScheduleParams):
    lr: float | None = setting(None, "the LR (learning-rate-free peers: the multiplier of their estimated step "
                               "size, null: 1; schedule-free: null: optimizer.lr, AdamW 1e-3 unless the base is Adam)",
                               gt=0)


def peer_make(name: str) -> Callable[..., Any]:
    def make(params: Any, lr: float, **kw: Any) -> Any:
        return build_peer_optimizer(name, params, lr, **kw)

    return make
