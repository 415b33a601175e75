"""SGDArmijo against the authors' ``Sls`` (IssamLaradji/sls): the edge cases of issue 13, with the
reference's behaviour as the expected values."""

import pytest
import torch

from mlrsnet.schedules.line_search import SGDArmijo


def test_no_step_size_cap_by_default_and_the_cap_as_an_option():
    # A linear loss satisfies Armijo at every step size, so reset_option=1 doubles eta every step (n=1).
    def run(**kw):
        p = torch.nn.Parameter(torch.ones(3))
        opt = SGDArmijo([p], init_step_size=8.0, gamma=2.0, n_batches_per_epoch=1, **kw)
        out = []
        for _ in range(3):
            opt.step(lambda: p.sum())
            out.append(opt.step_size)
        return out

    assert run() == pytest.approx([16.0, 32.0, 64.0])  # the reference has no eta_max in its reset
    assert run(eta_max=10.0) == pytest.approx([10.0, 10.0, 10.0])


def test_armijo_never_satisfied_takes_the_final_tiny_step():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = SGDArmijo([p], init_step_size=1.0, reset_option=0)
    calls = []

    def closure():
        calls.append(1)
        return (p**2).sum() + (0.0 if len(calls) == 1 else 100.0)

    opt.step(closure)
    assert len(calls) == 101  # one gradient evaluation, then the reference's 100 trials
    # theta - 1e-6 * grad, grad = 2 theta; the step size kept is 0.9^100 after the 100 halvings.
    torch.testing.assert_close(p.detach(), torch.tensor([1.0, -2.0]) * (1 - 2e-6))
    assert opt.step_size == pytest.approx(0.9**100)


def test_tiny_gradient_skips_the_step():
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    opt = SGDArmijo([p], init_step_size=1.0, gamma=4.0, n_batches_per_epoch=2)
    calls = []

    def closure():
        calls.append(1)
        return 1e-9 * p[0]  # |grad| = 1e-9 < 1e-8

    opt.step(closure)
    assert len(calls) == 1 and torch.equal(p.detach(), torch.tensor([1.0, 2.0]))
    assert opt.step_size == pytest.approx(2.0)  # the reset still applies (4^(1/2))


def _two_groups(search):
    a, b = torch.nn.Parameter(torch.tensor([1.0])), torch.nn.Parameter(torch.tensor([1.0]))
    opt = SGDArmijo([{"params": [a]}, {"params": [b]}], init_step_size=1.0, reset_option=0, c=0.1,
                    search=search)

    def f(x, y):
        return 0.5 * x**2 + 50.0 * y**2

    opt.step(lambda: f(a, b).sum())
    return opt, float(a.detach()), float(b.detach()), f


def _armijo(f0, gnsq, loss_at):
    """The reference's search: eta = 0.9^k for the first k whose trial satisfies Armijo."""
    eta = 1.0
    for _ in range(100):
        if loss_at(eta) <= f0 - 0.1 * eta * gnsq:
            return eta
        eta *= 0.9
    raise AssertionError("no step size found")


def test_per_group_search_is_the_default():
    opt, a1, b1, f = _two_groups("group")
    f0 = 50.5
    # Group 0 (grad 1) searched first with group 1 fixed; group 1 (grad 100) next, with group 0 already
    # moved, both against the loss at the start.
    eta_a = _armijo(f0, 1.0, lambda e: float(f(torch.tensor(1.0 - e), torch.tensor(1.0))))
    eta_b = _armijo(f0, 1e4, lambda e: float(f(torch.tensor(1.0 - eta_a), torch.tensor(1.0 - 100 * e))))
    assert eta_a == 1.0 and eta_b < 0.05
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([eta_a, eta_b])
    assert (a1, b1) == pytest.approx((1.0 - eta_a, 1.0 - 100 * eta_b))


def test_joint_search_is_an_option():
    opt, a1, b1, f = _two_groups("joint")
    eta = _armijo(50.5, 1.0 + 1e4, lambda e: float(f(torch.tensor(1.0 - e), torch.tensor(1.0 - 100 * e))))
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([eta, eta])
    assert (a1, b1) == pytest.approx((1.0 - eta, 1.0 - 100 * eta))
