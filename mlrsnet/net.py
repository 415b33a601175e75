"""MLR-SNet: an LSTM that maps the training loss to a learning rate (Shu et al., TPAMI 2022).

One definition, used by meta-training (:mod:`mlrsnet.meta`), transfer and
:class:`mlrsnet.schedules.scheduler.MLRSNetScheduler`.

    gates_t = MLP_ih(x_t) + MLP_hh(h_{t-1}),   MLP = Linear(in, hidden // 2)-ReLU-Linear(hidden // 2, 4 hidden)
    i, f, g, o = sigmoid(i), sigmoid(f + b_f), tanh(g), sigmoid(o)      (forget-gate shift b_f)
    c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)
    lr_t = gamma * sigmoid(W h_t + b)

The reference code has two cells. Its meta-train modules (``meta-train/*/module.py``) shift the forget gate
by b_f = -1 and split the gate rows as input, forget, output, candidate; its meta-test cell
(``meta-test/model/network.py``), which reads the authors' published nets, has no shift (b_f = 0) and splits
them as input, forget, candidate, output. :class:`MLRSNetConfig` records both (``forget_bias``,
``gate_order``), and every checkpoint stores its config, so a file always loads as it was trained: ours as
the meta-train cell (b_f = -1, rows input, forget, candidate, output), the authors' nets as their meta-test
code reads them (:mod:`mlrsnet.checkpoint`).

The input x_t is the mini-batch training loss (divided by ln(vocab) for language models). The state
(h, c) is carried across steps and detached every step by the caller (:meth:`MLRSNet.step`), so the
meta-gradient is truncated at one step as in the paper.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from mlrsnet.errors import ConfigError
from mlrsnet.typed import setting

State = tuple[torch.Tensor, torch.Tensor]


GAMMA_FROM = ("auto", "loss", "perplexity")
L0_OVER = ("train", "train_augmented", "batches")
CELLS = ("image", "lm")
LM_INIT_RANGE = 0.1  # the reference language-modeling cell's U(-0.1, 0.1) on the maps' weights


@dataclass
class NetConfig:
    """The ``net`` section: a meta-trained MLR-SNet's size and output scale gamma."""

    hidden_size: int = setting(50, "LSTM hidden units", ge=1)
    gamma: Any = setting(None, "null: gamma = sqrt(L0) ln(L0 C) / (4 C^0.25) from the initial loss (the paper's, "
                         "an SGD-scale LR) | optimizer: twice the optimizer's LR, so that a fresh net's first LR "
                         "(about gamma / 2) is the LR the optimizer is configured with (for Adam and AdamW, whose "
                         "LR is ~1e-3) | a fixed gamma > 0")
    gamma_min: float = setting(0.01, "guard when the formula is <= 0 (L0 <= 1/C) or tiny", gt=0)
    gamma_from: str = setting("auto", "L0 of the formula: loss | perplexity (exp(loss), as the reference's "
                              "language-modeling meta_train.py) | auto (perplexity for a language model, the loss "
                              "otherwise)", choices=GAMMA_FROM)
    l0_over: str = setting("train", "L0 in eval mode over: train (the whole training split, as the reference's "
                           "meta_train.py, with the evaluation transform) | train_augmented (the same with the "
                           "training augmentation, as the reference measures it on its augmented loader; image "
                           "tasks) | batches (4 random training batches; the earlier default)", choices=L0_OVER)
    cell: str = setting("image", "the cell meta-trained in place: image (MLP maps of width hidden // 2, torch's "
                        "default init: the reference's meta-train/image-classification/module.py) | lm (width "
                        "hidden, the maps' weights U(-0.1, 0.1): its language-modeling/module.py; the LSTM "
                        "language-model tasks set it)", choices=CELLS)

    def check(self, prefix: str) -> None:
        g, fix = self.gamma, (f"use {prefix}gamma=null (the paper's formula), {prefix}gamma=optimizer (twice the "
                              "optimizer's LR) or a positive number")
        if isinstance(g, int | float) and not isinstance(g, bool):
            if not (math.isfinite(g) and g > 0):
                raise ConfigError(f"{prefix}gamma must be positive, got {g}; {fix}")
        elif g is not None and g != "optimizer":
            raise ConfigError(f"{prefix}gamma={g!r}: {fix}")


def fresh_mlrsnet(hidden_size: int = 50, gamma: float = 1.0, cell: str = "image") -> MLRSNet:
    """A freshly initialised MLR-SNet of the reference's ``cell``: ``image`` (MLP width hidden // 2, torch's
    default init, as ``meta-train/image-classification/module.py``: its ``init_weights`` tests for MetaLinear
    layers the maps do not have, so it changes nothing) or ``lm`` (width hidden, the four map weights drawn
    from U(-0.1, 0.1), biases and head left at torch's default, as ``meta-train/language-modeling/module.py``,
    whose maps are MetaLinear layers, so its ``init_weights`` applies)."""
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
    net = MLRSNet(MLRSNetConfig(hidden_size=hidden_size, mlp_ratio=1.0 if cell == "lm" else 0.5), gamma=gamma)
    if cell == "lm":
        with torch.no_grad():
            for layer in (*net.hh, *net.ih):
                if isinstance(layer, nn.Linear):
                    layer.weight.uniform_(-LM_INIT_RANGE, LM_INIT_RANGE)
    return net


def resolve_gamma_from(gamma_from: str, metric: str) -> str:
    """``loss`` or ``perplexity``: ``auto`` resolved for a task whose test metric is ``metric``."""
    if gamma_from not in GAMMA_FROM:
        raise ValueError(f"gamma_from must be one of {', '.join(GAMMA_FROM)}, got {gamma_from!r}")
    if gamma_from == "auto":
        return "perplexity" if metric == "perplexity" else "loss"
    return gamma_from


def gamma_statistic(loss: float, gamma_from: str = "auto", metric: str = "accuracy") -> float:
    """The L that enters the gamma formula for a mean training loss ``loss``.

    ``loss``: the loss itself, as the reference's image-classification meta_train.py and meta_test.py do.
    ``perplexity``: ``exp(loss)``, as the reference's language-modeling meta_train.py does (it computes
    gamma from the initial training perplexity, ``C`` being the vocabulary size). ``auto``: perplexity for a
    task whose metric is perplexity (a language model), the loss otherwise."""
    if resolve_gamma_from(gamma_from, metric) == "perplexity":
        return math.exp(min(float(loss), 700.0))
    return float(loss)


def compute_gamma(initial_loss: float, num_classes: int, gamma_min: float = 1e-2) -> float:
    """The paper's output scale: gamma = sqrt(L0) * ln(L0 * C) / (4 * C**0.25).

    L0 is the initial training loss and C the number of classes (vocabulary size for a language
    model, whose L0 the reference takes as the initial training perplexity: :func:`gamma_statistic`).
    Guard: when L0 <= 1/C the logarithm is zero or negative, so the formula would give a non-positive
    scale (the reference code then emits zero or negative learning rates). In that case, and whenever the
    formula falls below ``gamma_min``, ``gamma_min`` is returned instead.
    """
    if not math.isfinite(initial_loss) or initial_loss <= 0:
        raise ValueError(f"initial loss must be positive and finite to compute gamma, got {initial_loss}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    value = math.sqrt(initial_loss) * math.log(initial_loss * num_classes) / (4.0 * num_classes**0.25)
    return max(value, gamma_min)


def recomputed_gamma(loss: float, num_classes: int, gamma_min: float = 0.0) -> float:
    """The reference meta-test's gamma at the start and at each net swap of a transfer run:

        gamma = | sqrt(L) * ln(L * C) / (4 * C**0.25) |

    with L the current mean training loss. The absolute value matters: late in training L < 1/C and the
    formula turns negative. ``gamma_min`` floors the result (0: unfloored, as in the reference)."""
    if not math.isfinite(loss) or loss < 0:
        raise ValueError(f"the training loss must be finite and >= 0 to recompute gamma, got {loss}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if loss == 0.0:
        return float(gamma_min)
    value = abs(math.sqrt(loss) * math.log(loss * num_classes) / (4.0 * num_classes**0.25))
    return max(value, float(gamma_min))


@dataclass
class MLRSNetConfig:
    """Architecture of an MLR-SNet; stored in checkpoints so a loaded net is rebuilt identically."""

    hidden_size: int = 50
    input_size: int = 1
    # Width of the MLP maps as a fraction of hidden_size: 0.5 is the reference cell (25 for 50 hidden
    # units, as in the authors' published nets). Checkpoints written before this default (width 2 x
    # hidden) store mlp_ratio 2 and are rebuilt with it.
    mlp_ratio: float = 0.5
    # The forget-gate shift b_f and the order of the gate blocks in the rows of the maps' last Linear (i input,
    # f forget, g candidate, o output). Ours: the meta-train cell's shift -1, rows i, f, g, o. The authors'
    # published nets as their meta-test code reads them: shift 0, rows i, f, g, o; as their meta-train code
    # wrote them: shift -1, rows i, f, o, g (mlrsnet.checkpoint.READINGS). Checkpoints written before these
    # fields store neither and load with these defaults, as they were trained.
    forget_bias: float = -1.0
    gate_order: str = "ifgo"

    def __post_init__(self) -> None:
        if sorted(self.gate_order) != sorted("ifgo"):
            raise ValueError(f"gate_order must order the four gates i, f, g, o (e.g. 'ifgo'), got {self.gate_order!r}")

    @property
    def mlp_width(self) -> int:
        return max(1, int(round(self.hidden_size * self.mlp_ratio)))

    @property
    def gate_index(self) -> tuple[int, int, int, int]:
        """Positions of the input, forget, candidate and output blocks in the gate rows."""
        return tuple(self.gate_order.index(k) for k in "ifgo")  # type: ignore[return-value]

    def to_dict(self) -> dict:
        return asdict(self)


class MLRSNet(nn.Module):
    """Loss -> learning rate, an LSTM cell with MLP input/recurrent maps and a sigmoid head.

    ``gamma`` is a buffer (saved with the weights) so that a transferred net can keep or replace it.
    """

    def __init__(self, config: MLRSNetConfig | None = None, gamma: float = 1.0) -> None:
        super().__init__()
        self.config = config or MLRSNetConfig()
        h, w = self.config.hidden_size, self.config.mlp_width
        self.ih = nn.Sequential(nn.Linear(self.config.input_size, w), nn.ReLU(), nn.Linear(w, 4 * h))
        self.hh = nn.Sequential(nn.Linear(h, w), nn.ReLU(), nn.Linear(w, 4 * h))
        self.head = nn.Linear(h, 1)
        self._gate_index = self.config.gate_index
        self.register_buffer("gamma", torch.tensor(float(gamma)))
        self._state: State | None = None

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    def set_gamma(self, gamma: float) -> None:
        self.gamma.fill_(float(gamma))

    def zero_state(self, device: torch.device | None = None, dtype: torch.dtype | None = None) -> State:
        p = self.head.weight
        z = torch.zeros(1, self.hidden_size, device=device or p.device, dtype=dtype or p.dtype)
        return z, z.clone()

    def forward(self, loss: torch.Tensor | float, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Pure step: ``(lr, new_state) = net(loss, state)``; ``lr`` is a 0-dim tensor. ``loss`` is a tensor
        or a Python number (as :meth:`MLRSNetScheduler.step <mlrsnet.schedules.scheduler.MLRSNetScheduler.step>`
        takes it)."""
        if not isinstance(loss, torch.Tensor):
            loss = torch.tensor(float(loss), device=self.head.weight.device)
        x = loss.detach().reshape(1, -1).to(self.head.weight.dtype)
        if state is None:
            state = self.zero_state(device=x.device)
        h_prev, c_prev = state
        blocks = (self.ih(x) + self.hh(h_prev)).chunk(4, dim=1)
        i, f, g, o = (blocks[k] for k in self._gate_index)
        c = torch.sigmoid(f + self.config.forget_bias) * c_prev + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        lr = self.gamma * torch.sigmoid(self.head(h)).reshape(())
        return lr, (h, c)

    # Stateful convenience used by the training loop and the scheduler: the state lives on the net,
    # detached every step as in the paper.
    @property
    def state(self) -> State | None:
        return self._state

    @state.setter
    def state(self, value: State | None) -> None:
        self._state = None if value is None else (value[0].detach(), value[1].detach())

    def reset_state(self) -> None:
        self._state = None

    def step(self, loss: torch.Tensor | float) -> torch.Tensor:
        """LR for this loss, advancing (and detaching) the carried state; no graph is kept."""
        with torch.no_grad():
            lr, new_state = self(loss, self._state)
        self.state = new_state
        return lr
