"""L4 on a quadratic with a known minimum, against the rule of the paper and of the authors' code
(``L4General``: gradient estimate = bias-corrected EMA of time scale 10, Adam direction with time
scales 10 and 1000 and epsilon 1e-4, L_min from 0.75 L_0, forgotten at rate 1/1000), by hand."""

import math

import pytest
import torch

from mlrsnet.errors import ConfigError
from mlrsnet.schedules.l4 import L4

A, C, FMIN = 2.0, 1.0, 0.3  # f(theta) = A/2 (theta - C)^2 + FMIN, minimum FMIN at theta = C


def f(theta):
    return 0.5 * A * (theta - C) ** 2 + FMIN


def _run(direction, steps, theta0=3.0, **kw):
    p = torch.nn.Parameter(torch.tensor([theta0], dtype=torch.float64))
    opt = L4([p], direction=direction, **kw)
    thetas, etas = [], []
    for _ in range(steps):
        opt.zero_grad()
        loss = f(p).sum()
        loss.backward()
        opt.step(loss=loss)
        thetas.append(float(p.detach()))
        etas.append(opt.param_groups[0]["lr"])
    return thetas, etas, opt


def _hand(direction, steps, theta0=3.0):
    """The same rule written out for one scalar, step by step."""
    theta, m, s, lmin, thetas, etas = theta0, 0.0, 0.0, None, [], []
    for k in range(steps):
        loss, grad = f(theta), A * (theta - C)
        lmin = 0.75 * loss if k == 0 else min(lmin, loss)
        m = 0.9 * m + 0.1 * grad
        g = m / (1 - 0.9 ** (k + 1))
        if direction == "adam":
            s = 0.999 * s + 0.001 * grad * grad
            v = g / (math.sqrt(s / (1 - 0.999 ** (k + 1))) + 1e-4)
        else:
            v = g
        eta = 0.15 * (loss - 0.9 * lmin) / (g * v + 1e-12)
        theta -= eta * v
        lmin *= 1.001
        thetas.append(theta)
        etas.append(eta)
    return thetas, etas


def test_first_momentum_step_by_hand():
    # theta0 = 3: L = 4.3, grad = 4; Lmin = 0.75 * 4.3 = 3.225; g = v = 4 (bias-corrected EMA);
    # eta = 0.15 * (4.3 - 0.9 * 3.225) / 16 = 0.0131015625; theta1 = 3 - 4 * eta = 2.94759375.
    thetas, etas, opt = _run("momentum", 1)
    assert etas[0] == pytest.approx(0.0131015625, rel=1e-12)
    assert thetas[0] == pytest.approx(2.94759375, rel=1e-12)
    assert opt.min_loss == pytest.approx(3.225 * 1.001, rel=1e-12)


@pytest.mark.parametrize("direction", ["momentum", "adam"])
def test_steps_match_the_hand_computation(direction):
    thetas, etas, _ = _run(direction, 30)
    hand_thetas, hand_etas = _hand(direction, 30)
    assert thetas == pytest.approx(hand_thetas, rel=1e-10)
    assert etas == pytest.approx(hand_etas, rel=1e-10)


@pytest.mark.parametrize("direction", ["momentum", "adam"])
def test_approaches_the_known_minimum(direction):
    # Near the minimum L - gamma * Lmin stays positive while the gradient vanishes, so L4 oscillates
    # around it (a property of the rule); the best loss reached gets within 5% of the initial gap.
    thetas, _, _ = _run(direction, 300)
    assert min(f(t) for t in thetas) - FMIN < 0.05 * (f(3.0) - FMIN)


def test_lr_multiplies_the_step_and_closure_works():
    base, _, _ = _run("momentum", 1)
    half, etas, _ = _run("momentum", 1, lr=0.5)
    assert 3 - half[0] == pytest.approx(0.5 * (3 - base[0]))
    p = torch.nn.Parameter(torch.tensor([3.0], dtype=torch.float64))
    opt = L4([p], direction="momentum")

    def closure():
        opt.zero_grad()
        loss = f(p).sum()
        loss.backward()
        return loss

    opt.step(closure)
    assert float(p.detach()) == pytest.approx(base[0])


def test_state_round_trip():
    _, _, a = _run("adam", 5)
    p = torch.nn.Parameter(a.param_groups[0]["params"][0].detach().clone())
    b = L4([p], direction="adam")
    b.load_state_dict(a.state_dict())
    assert (b.k, b.min_loss) == (a.k, a.min_loss)


def test_bad_input():
    p = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(ConfigError):
        L4([p], direction="sgd")
    with pytest.raises(ConfigError):
        L4([p], alpha=0.0)
    opt = L4([p])
    with pytest.raises(ConfigError, match="non-negative"):
        opt.step(loss=-1.0)
    with pytest.raises(ConfigError, match="needs the mini-batch loss"):
        opt.step()


def test_prepare_sets_the_step_size_before_the_step():
    p = torch.nn.Parameter(torch.tensor([3.0], dtype=torch.float64))
    opt = L4([p], direction="momentum")
    loss = f(p).sum()
    loss.backward()
    assert opt.prepare(loss) == pytest.approx(0.0131015625)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0131015625) and float(p.detach()) == 3.0
    opt.step()
    assert float(p.detach()) == pytest.approx(2.94759375)
