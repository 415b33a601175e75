"""Spiking networks (leaky integrate-and-fire, surrogate gradients) from snnTorch, for the SNN tasks.

Input batches are spike trains ``[B, T, ...]`` (T time steps). Each model runs its LIF layers over the
T steps and returns, as logits, the output layer's membrane potential averaged over time, which gives
the cross-entropy a smooth target while the hidden layers communicate only by spikes. The fraction of
hidden neurons that spike per time step is accumulated over forward passes in ``model.spike_counts``
(spikes, neuron-steps; detached, reset with :meth:`reset_spike_counts`) for the tasks' ``spike_rate``
metric.

snnTorch is an optional extra (``pip install -e ".[snn]"``); it is imported when a model is built.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mlrsnet.errors import ConfigError
from mlrsnet.tasks.models.registry import register_model


def snntorch() -> Any:
    """The ``snntorch`` module, or a one-line error naming the extra to install."""
    try:
        import snntorch as snn
    except ImportError:
        raise ConfigError('the SNN tasks need snnTorch: pip install -e ".[snn]"') from None
    return snn


def _lif(beta: float, slope: float) -> nn.Module:
    snn = snntorch()
    from snntorch import surrogate

    return snn.Leaky(beta=beta, spike_grad=surrogate.fast_sigmoid(slope=slope))


class _SpikingNet(nn.Module):
    """``layers`` (stateless maps) interleaved with LIF neurons, run over the time axis."""

    def __init__(self, layers: list[nn.Module], beta: float, slope: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.lifs = nn.ModuleList(_lif(beta, slope) for _ in layers)
        self.reset_spike_counts()

    def reset_spike_counts(self) -> None:
        self.spike_counts = [torch.zeros(()), 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mems: list[Any] = [None] * len(self.layers)
        out_sum = None
        spikes = torch.zeros((), device=x.device)
        hidden_units = 0
        for t in range(x.shape[1]):
            h = x[:, t]
            for i, (layer, lif) in enumerate(zip(self.layers, self.lifs, strict=True)):
                cur = layer(h)
                if mems[i] is None:
                    mems[i] = torch.zeros_like(cur)
                h, mems[i] = lif(cur, mems[i])
                if i < len(self.layers) - 1:
                    spikes = spikes + h.detach().sum()
                    if t == 0:
                        hidden_units += h[0].numel()
            out_sum = mems[-1] if out_sum is None else out_sum + mems[-1]
        steps = x.shape[1]
        self.spike_counts = [self.spike_counts[0].to(spikes.device) + spikes,
                             self.spike_counts[1] + hidden_units * steps * x.shape[0]]
        return out_sum / steps


@register_model("snn_mlp")
def snn_mlp(in_shape: tuple[int, ...] = (16, 1, 8, 8), num_classes: int = 10, width: int = 128,
            beta: float = 0.9, slope: float = 25.0) -> nn.Module:
    """Fully connected LIF network: per time step flatten -> Linear -> LIF -> Linear -> LIF (output)."""
    d_in = 1
    for s in in_shape[1:]:
        d_in *= int(s)
    layers = [nn.Sequential(nn.Flatten(), nn.Linear(d_in, width)), nn.Linear(width, num_classes)]
    return _SpikingNet(layers, beta, slope)


@register_model("snn_cnn")
def snn_cnn(in_shape: tuple[int, ...] = (16, 2, 8, 8), num_classes: int = 10, width: int = 16,
            beta: float = 0.9, slope: float = 25.0) -> nn.Module:
    """Convolutional LIF network: Conv3x3 -> LIF -> AvgPool2 + Linear -> LIF (output)."""
    c, h, w = (int(s) for s in in_shape[1:])
    layers = [
        nn.Conv2d(c, width, 3, padding=1),
        nn.Sequential(nn.AvgPool2d(2), nn.Flatten(), nn.Linear(width * (h // 2) * (w // 2), num_classes)),
    ]
    return _SpikingNet(layers, beta, slope)
