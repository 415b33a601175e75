"""experiments/short_horizon.py: the one-step meta-loss curve is the closed form on a quadratic."""

import importlib.util
from pathlib import Path

import pytest
import torch

SPEC = importlib.util.spec_from_file_location(
    "short_horizon", Path(__file__).resolve().parents[1] / "experiments" / "short_horizon.py")
short_horizon = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(short_horizon)


class Quadratic:
    """Least squares: loss(w) = mean((X w - y)^2) / 2 on a batch (X, y)."""

    def loss(self, forward, batch):
        x, y = batch
        return 0.5 * ((forward(x).squeeze(-1) - y) ** 2).mean()

    def train_loss(self, model, batch):
        return self.loss(model, batch)


@pytest.mark.parametrize(("weight_decay", "clip"), [(0.0, None), (0.01, None), (0.0, 0.05)])
def test_the_curve_is_the_meta_loss_one_step_ahead_along_the_clipped_decayed_gradient(weight_decay, clip):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1).double()
    train = (torch.randn(16, 3, dtype=torch.float64), torch.randn(16, dtype=torch.float64))
    metas = [(torch.randn(8, 3, dtype=torch.float64), torch.randn(8, dtype=torch.float64)) for _ in range(2)]
    lr = 0.3
    w0 = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, weight_decay=weight_decay)  # MLR-SNet's: momentum 0
    loss, curve = short_horizon.greedy_curve(Quadratic(), model, optimizer, train, clip, metas)
    # by hand: the gradient, clipped to the norm, plus weight decay; the mean meta loss after each step
    grads = torch.autograd.grad(Quadratic().loss(model, train), list(model.parameters()))
    norm = torch.sqrt(sum((g * g).sum() for g in grads))
    scale = min(1.0, clip / (float(norm) + 1e-6)) if clip else 1.0
    dirs = [g * scale + weight_decay * w for g, w in zip(grads, w0, strict=True)]
    for f, value in zip(short_horizon.FACTORS, curve, strict=True):
        w, b = (p - f * lr * d for p, d in zip(w0, dirs, strict=True))
        expected = sum(0.5 * ((x @ w.T).squeeze(-1) + b - y).pow(2).mean() for x, y in metas) / len(metas)
        assert value == pytest.approx(float(expected), rel=1e-10)
    assert loss == pytest.approx(Quadratic().loss(model, train).item(), rel=1e-12)
    assert all(torch.equal(a, p) for a, p in zip(w0, model.parameters(), strict=True))  # weights untouched
    # the real step's gradient is left in .grad, clipped as the optimiser will use it
    assert all(torch.allclose(p.grad, g * scale) for p, g in zip(model.parameters(), grads, strict=True))
