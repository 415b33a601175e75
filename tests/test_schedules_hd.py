import copy

import pytest
import torch

from mlrsnet.errors import ConfigError
from mlrsnet.schedules.hd import SGDHD, AdamHD

A = torch.tensor([1.0, 3.0, 0.5], dtype=torch.float64)
THETA0 = torch.tensor([1.0, -2.0, 4.0], dtype=torch.float64)


def _grad(theta):
    return A * theta  # f(theta) = 0.5 * sum(A * theta^2)


def _run(opt_cls, steps, **kw):
    theta = torch.nn.Parameter(THETA0.clone())
    opt = opt_cls([theta], **kw)
    lrs = []
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * (A * theta**2).sum()).backward()
        opt.step()
        lrs.append(opt.param_groups[0]["lr"])
    return theta.detach(), lrs


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgdhd_matches_hand_computation(momentum, nesterov):
    alpha, beta = 0.1, 0.01
    theta, lrs = _run(SGDHD, 3, lr=alpha, momentum=momentum, nesterov=nesterov, hypergrad_lr=beta)

    t, a, buf, u_prev, expected_lrs = THETA0.clone(), alpha, None, None, []
    for _ in range(3):
        g = _grad(t)
        if u_prev is not None:
            a = a + beta * float(g @ u_prev)  # alpha_t = alpha_{t-1} + beta * g_{t-1} . u_{t-2}
        if momentum:
            buf = g.clone() if buf is None else momentum * buf + g
            u = g + momentum * buf if nesterov else buf
        else:
            u = g
        t = t - a * u
        u_prev = u
        expected_lrs.append(a)
    assert lrs == pytest.approx(expected_lrs, rel=1e-12)
    assert lrs[1] != alpha  # the LR really moved
    torch.testing.assert_close(theta, t)


def test_adamhd_matches_hand_computation():
    alpha, beta, b1, b2, eps = 0.1, 0.01, 0.9, 0.999, 1e-8
    theta, lrs = _run(AdamHD, 3, lr=alpha, betas=(b1, b2), eps=eps, hypergrad_lr=beta)

    t, a = THETA0.clone(), alpha
    m, v = torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    expected_lrs = []
    for k in range(1, 4):
        g = _grad(t)
        if k > 1:
            u_prev = (1 - b2 ** (k - 1)) ** 0.5 / (1 - b1 ** (k - 1)) * m / (v.sqrt() + eps)
            a = a + beta * float(g @ u_prev)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        t = t - a * (1 - b2**k) ** 0.5 / (1 - b1**k) * m / (v.sqrt() + eps)
        expected_lrs.append(a)
    assert lrs == pytest.approx(expected_lrs, rel=1e-12)
    assert lrs[1] != alpha
    torch.testing.assert_close(theta, t)


@pytest.mark.parametrize("opt_cls,lr", [(SGDHD, 1e-3), (AdamHD, 1e-4)])
def test_too_small_lr_grows_and_loss_falls(opt_cls, lr):
    theta, lrs = _run(opt_cls, 30, lr=lr, hypergrad_lr=1e-3)
    assert lrs[-1] > lr
    assert (A * theta**2).sum() < (A * THETA0**2).sum()


def test_param_groups_adapt_separately_and_state_round_trips():
    def make():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        opt = SGDHD([{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 0.05}],
                    lr=0.1, momentum=0.5, weight_decay=1e-3, hypergrad_lr=1e-2)
        return model, opt

    x, y = torch.randn(32, 4, generator=torch.Generator().manual_seed(1)), torch.randn(32, 1)

    def train(model, opt, n):
        for _ in range(n):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()

    model, opt = make()
    train(model, opt, 5)
    lr0, lr1 = (g["lr"] for g in opt.param_groups)
    assert lr0 != 0.1 and lr1 != 0.05 and lr0 - 0.1 != lr1 - 0.05
    model2, opt2 = make()
    model2.load_state_dict(copy.deepcopy(model.state_dict()))
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    train(model, opt, 3)
    train(model2, opt2, 3)
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in opt2.param_groups]


@pytest.mark.parametrize("opt_cls,kw,names", [(SGDHD, {"lr": -1.0}, "lr=-1.0"),
                                              (SGDHD, {"lr": 0.1, "nesterov": True}, "momentum=0"),
                                              (AdamHD, {"betas": (1.0, 0.9)}, "betas="),
                                              (AdamHD, {"hypergrad_lr": -1.0}, "hypergrad_lr=-1.0")])
def test_bad_parameters(opt_cls, kw, names):
    with pytest.raises(ConfigError, match=names):
        opt_cls([torch.nn.Parameter(torch.zeros(1))], **kw)
