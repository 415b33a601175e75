import math

import pytest
import torch

from mlrsnet.net import MLRSNet, MLRSNetConfig, compute_gamma


def test_output_is_scalar_in_open_interval_zero_gamma():
    torch.manual_seed(0)
    net = MLRSNet(gamma=0.7)
    state = None
    for loss in [5.0, 2.3, 0.01, 0.0, 100.0, 1e4]:
        lr, state = net(torch.tensor(loss), state)
        assert lr.shape == ()
        assert 0.0 < float(lr) < 0.7
        assert state[0].shape == (1, 50) and state[1].shape == (1, 50)


def test_architecture_follows_the_paper():
    net = MLRSNet(MLRSNetConfig(hidden_size=50))
    linears = [m for m in net.ih if isinstance(m, torch.nn.Linear)]
    assert [type(m).__name__ for m in net.ih] == ["Linear", "ReLU", "Linear"]
    assert [type(m).__name__ for m in net.hh] == ["Linear", "ReLU", "Linear"]
    assert linears[-1].out_features == 4 * 50 and net.hh[0].in_features == 50
    assert linears[0].out_features == 25 and net.hh[0].out_features == 25  # width hidden // 2
    assert net.head.in_features == 50 and net.head.out_features == 1
    assert net.config.forget_bias == -1.0


def test_forget_gate_is_shifted_by_minus_one():
    torch.manual_seed(0)
    net = MLRSNet(MLRSNetConfig(hidden_size=4))
    with torch.no_grad():
        for m in [*net.ih, *net.hh]:
            if isinstance(m, torch.nn.Linear):
                m.weight.zero_()
                m.bias.zero_()
        net.ih[2].bias[8:12] = 1.0  # cell-gate pre-activation g = 1 -> tanh(1)
    c_prev = torch.ones(1, 4)
    _, (h, c) = net(torch.tensor(1.0), (torch.zeros(1, 4), c_prev))
    # c = sigmoid(0 - 1) * c_prev + sigmoid(0) * tanh(1)
    expected = torch.sigmoid(torch.tensor(-1.0)) + 0.5 * math.tanh(1.0)
    assert torch.allclose(c, torch.full((1, 4), float(expected)))


def test_step_carries_state_and_detaches_it():
    torch.manual_seed(0)
    net = MLRSNet(gamma=1.0)
    assert net.state is None
    lr1 = net.step(torch.tensor(2.0))
    s1 = net.state
    assert s1 is not None and not s1[0].requires_grad
    lr2 = net.step(torch.tensor(2.0))
    assert not torch.equal(net.state[1], s1[1])
    assert not torch.equal(lr1, lr2)  # same input, different state -> different LR
    net.reset_state()
    assert torch.equal(net.step(torch.tensor(2.0)), lr1)


def test_gradient_flows_to_net_parameters_but_not_loss():
    net = MLRSNet()
    loss = torch.tensor(2.0, requires_grad=True)
    lr, _ = net(loss * 1.0)
    lr.backward()
    assert loss.grad is None
    assert all(p.grad is not None for p in net.parameters())


def test_gamma_formula():
    l0, c = 2.302585, 10
    expected = math.sqrt(l0) * math.log(l0 * c) / (4 * c**0.25)
    assert compute_gamma(l0, c) == pytest.approx(expected)
    assert compute_gamma(4.6, 100) == pytest.approx(math.sqrt(4.6) * math.log(460) / (4 * 100**0.25))


@pytest.mark.parametrize("l0,c", [(0.1, 10), (0.05, 2), (1.0, 1)])
def test_gamma_guard_when_log_is_not_positive(l0, c):
    assert l0 * c <= 1.0
    assert compute_gamma(l0, c, gamma_min=0.05) == 0.05


def test_gamma_rejects_nonsense():
    with pytest.raises(ValueError, match="initial loss must be positive and finite"):
        compute_gamma(float("nan"), 10)
    with pytest.raises(ValueError, match="num_classes must be >= 1"):
        compute_gamma(1.0, 0)


def test_hidden_size_and_gamma_configurable():
    net = MLRSNet(MLRSNetConfig(hidden_size=8), gamma=3.0)
    lr, (h, _) = net(torch.tensor(1.0))
    assert h.shape == (1, 8) and 0 < float(lr) < 3.0
    net.set_gamma(0.5)
    assert float(net(torch.tensor(1.0))[0]) < 0.5
