import pytest
import torch

from mlrsnet.errors import ConfigError
from mlrsnet.schedules.line_search import SGDArmijo


def _problem(seed=0, n=256, d=6):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    y = X @ torch.randn(d, 1, generator=g) + 0.1 * torch.randn(n, 1, generator=g)
    return X, y


def _loss(model, xb, yb):
    return torch.nn.functional.mse_loss(model(xb), yb)


def test_every_accepted_step_satisfies_armijo_and_loss_decreases():
    torch.manual_seed(0)
    X, y = _problem()
    model = torch.nn.Linear(6, 1)
    c = 0.1
    opt = SGDArmijo(model.parameters(), init_step_size=10.0, c=c, n_batches_per_epoch=8)
    with torch.no_grad():
        start_loss = float(_loss(model, X, y))
    backtracked = 0
    for step in range(40):
        idx = torch.arange(32) + 32 * (step % 8)
        xb, yb = X[idx], y[idx]
        before = [p.detach().clone() for p in model.parameters()]
        with torch.no_grad():
            f_before = float(_loss(model, xb, yb))
        opt.step(lambda xb=xb, yb=yb: _loss(model, xb, yb))
        grads = [p.grad for p in model.parameters()]
        grad_norm_sq = float(sum((g * g).sum() for g in grads))
        with torch.no_grad():
            f_after = float(_loss(model, xb, yb))
        eta = opt.step_size
        assert opt.last_armijo_held
        assert f_after <= f_before - c * eta * grad_norm_sq + 1e-6
        for p, p0, g in zip(model.parameters(), before, grads, strict=True):
            torch.testing.assert_close(p.detach(), p0 - eta * g)
        assert opt.last_loss == pytest.approx(f_before) and opt.last_loss_next == pytest.approx(f_after)
        backtracked += opt.last_backtracks > 0
    assert backtracked > 0  # init_step_size=10 is too large for this problem: the search did work
    with torch.no_grad():
        assert float(_loss(model, X, y)) < 0.1 * start_loss


def test_reset_options():
    X, y = _problem()
    xb, yb = X[:32], y[:32]

    def run(**kw):
        torch.manual_seed(0)
        model = torch.nn.Linear(6, 1)
        opt = SGDArmijo(model.parameters(), **kw)
        etas = []
        for _ in range(5):
            opt.step(lambda: _loss(model, xb, yb))
            etas.append(opt.step_size)
        return opt, etas

    opt, etas = run(init_step_size=1e-3, reset_option=1, gamma=16.0, n_batches_per_epoch=4)
    assert etas == pytest.approx([1e-3 * 2.0 ** (k + 1) for k in range(5)])  # 16^(1/4) = 2 per step, accepted
    _, etas = run(init_step_size=1e-3, reset_option=1, gamma=16.0, n_batches_per_epoch=4, eta_max=4e-3)
    assert max(etas) == pytest.approx(4e-3)
    _, etas = run(init_step_size=1e-3, reset_option=0)
    assert etas == [1e-3] * 5
    opt, etas = run(init_step_size=100.0, reset_option=2)
    assert all(100.0 * 0.9**opt.max_backtracks <= e < 100.0 for e in etas)


def test_no_acceptable_step_takes_the_tiny_fallback_step():
    model = torch.nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(0.5)
        model.bias.fill_(-0.25)
    before = [p.detach().clone() for p in model.parameters()]
    opt = SGDArmijo(model.parameters(), init_step_size=1.0, max_backtracks=3)
    # An adversarial closure: every trial point looks worse than the start.
    calls = []

    def closure():
        calls.append(1)
        base = (model.weight**2).sum() + (model.bias**2).sum() + 1.0
        return base if len(calls) == 1 else base + 100.0

    opt.step(closure)
    # Three trials, each failing and shrinking the step; then the reference's 1e-6 step (grad = 2 theta).
    assert not opt.last_armijo_held and opt.last_backtracks == 3 and len(calls) == 4
    assert opt.step_size == pytest.approx(1.0 * 2.0 ** (1 / 500) * 0.9**3)
    for p, p0 in zip(model.parameters(), before, strict=True):
        torch.testing.assert_close(p.detach(), p0 - 1e-6 * 2 * p0)


def test_closure_sees_the_same_randomness_and_rng_advances_once():
    torch.manual_seed(0)
    X, y = _problem(d=6)
    model = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.Linear(6, 1))
    opt = SGDArmijo(model.parameters(), init_step_size=5.0)

    def closure():
        return _loss(model, X[:32], y[:32])

    for _ in range(5):
        state = torch.get_rng_state()
        opt.step(closure)
        after_step = torch.rand(1)
        torch.set_rng_state(state)
        with torch.no_grad():
            # Same mask as the line search used: the accepted point's loss is reproduced exactly.
            assert float(closure()) == opt.last_loss_next
        assert torch.equal(torch.rand(1), after_step)
        assert opt.last_armijo_held


@pytest.mark.parametrize("kw,names", [({"c": 0.0}, "0 < c < 1"), ({"beta_b": 1.0}, "0 < beta_b < 1"),
                                      ({"gamma": 0.5}, "gamma >= 1"), ({"reset_option": 3}, "reset_option=3"),
                                      ({"init_step_size": 0.0}, "init_step_size > 0")])
def test_bad_parameters(kw, names):
    with pytest.raises(ConfigError, match=f"SGDArmijo: .*{names}"):
        SGDArmijo([torch.nn.Parameter(torch.zeros(1))], **kw)


def test_step_without_closure_is_a_config_error():
    opt = SGDArmijo([torch.nn.Parameter(torch.zeros(1))])
    with pytest.raises(ConfigError, match="needs a closure"):
        opt.step()
