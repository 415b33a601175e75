"""Adam-HD against Baydin et al.'s code (gbaydin/hypergradient-descent): ``per_tensor=True`` reproduces
its tensor-by-tensor LR update; the default (one update per group, the paper's equation) does not
depend on the order of the parameters."""

import math

import pytest
import torch

from mlrsnet.schedules.hd import AdamHD

BETAS, EPS, BETA, WD = (0.9, 0.999), 1e-8, 1e-3, 1e-2


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(32, 5, generator=g, dtype=torch.float64), torch.randn(32, 2, generator=g, dtype=torch.float64)


def _loss(w, b, x, y):
    return ((x @ w.T + b - y) ** 2).mean()


def _reference(steps, order):
    """The reference's loop, written out: for each tensor in turn, update the LR from that tensor's
    hypergradient, then take that tensor's Adam step with the LR as it stands."""
    x, y = _data()
    w = torch.full((2, 5), 0.1, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    params = [w, b] if order == "wb" else [b, w]
    lr, state = 0.01, {id(p): [0, torch.zeros_like(p), torch.zeros_like(p)] for p in params}
    lrs = []
    for _ in range(steps):
        grads = torch.autograd.grad(_loss(w, b, x, y), params)
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                st = state[id(p)]
                st[0] += 1
                g = g + WD * p
                if st[0] > 1:
                    h = torch.dot(g.view(-1), (st[1] / (st[2].sqrt() + EPS)).view(-1)) * \
                        math.sqrt(1 - BETAS[1] ** (st[0] - 1)) / (1 - BETAS[0] ** (st[0] - 1))
                    lr += BETA * float(h)
                st[1].mul_(BETAS[0]).add_(g, alpha=1 - BETAS[0])
                st[2].mul_(BETAS[1]).addcmul_(g, g, value=1 - BETAS[1])
                step = lr * math.sqrt(1 - BETAS[1] ** st[0]) / (1 - BETAS[0] ** st[0])
                p.addcdiv_(st[1], st[2].sqrt() + EPS, value=-step)
        lrs.append(lr)
    return lrs, w.detach(), b.detach()


def _ours(steps, order, per_tensor):
    x, y = _data()
    w = torch.nn.Parameter(torch.full((2, 5), 0.1, dtype=torch.float64))
    b = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    opt = AdamHD([w, b] if order == "wb" else [b, w], lr=0.01, betas=BETAS, eps=EPS, weight_decay=WD,
                 hypergrad_lr=BETA, per_tensor=per_tensor)
    lrs = []
    for _ in range(steps):
        opt.zero_grad()
        _loss(w, b, x, y).backward()
        opt.step()
        lrs.append(opt.param_groups[0]["lr"])
    return lrs, w.detach(), b.detach()


@pytest.mark.parametrize("order", ["wb", "bw"])
def test_per_tensor_reproduces_the_reference(order):
    ref_lrs, ref_w, ref_b = _reference(20, order)
    lrs, w, b = _ours(20, order, per_tensor=True)
    assert lrs == pytest.approx(ref_lrs, rel=1e-12)
    torch.testing.assert_close(w, ref_w, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(b, ref_b, rtol=1e-12, atol=1e-14)


def test_the_reference_depends_on_parameter_order_and_the_default_does_not():
    assert _reference(20, "wb")[0][-1] != pytest.approx(_reference(20, "bw")[0][-1], rel=1e-9)
    default_wb, default_bw = _ours(20, "wb", per_tensor=False), _ours(20, "bw", per_tensor=False)
    assert default_wb[0] == pytest.approx(default_bw[0], rel=1e-12)
    torch.testing.assert_close(default_wb[1], default_bw[1])
    assert default_wb[0][-1] != pytest.approx(_reference(20, "wb")[0][-1], rel=1e-9)
