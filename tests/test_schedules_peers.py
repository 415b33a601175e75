import sys

import pytest
import torch

from mlrsnet.errors import ConfigError
from mlrsnet.schedules.peers import (
    PEER_OPTIMIZERS,
    build_peer_optimizer,
    needs_train_eval,
    optimizer_eval,
    optimizer_train,
)


def _problem():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(64, 4, generator=g)
    return X, X @ torch.randn(4, 1, generator=g)


@pytest.mark.parametrize("name", sorted(PEER_OPTIMIZERS))
def test_each_peer_builds_and_steps(name):
    torch.manual_seed(0)
    X, y = _problem()
    model = torch.nn.Linear(4, 1)
    lr = 0.05 if "schedulefree" in name else 1.0
    opt = build_peer_optimizer(name, model.parameters(), lr=lr)
    assert needs_train_eval(opt) == ("schedulefree" in name)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer_train(opt)
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(X), y).backward()
        opt.step()
    optimizer_eval(opt)
    assert any(not torch.equal(p.detach(), b) for p, b in zip(model.parameters(), before, strict=True))
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_train_eval_helpers_are_no_ops_for_plain_optimizers():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1)
    assert not needs_train_eval(opt)
    optimizer_train(opt)
    optimizer_eval(opt)


def test_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "prodigyopt", None)  # makes `import prodigyopt` fail
    with pytest.raises(ConfigError, match=r"pip install 'mlrsnet\[peers\]'"):
        build_peer_optimizer("prodigy", [torch.nn.Parameter(torch.zeros(1))], lr=1.0)


def test_unknown_name_and_bad_parameters():
    params = [torch.nn.Parameter(torch.zeros(1))]
    with pytest.raises(ConfigError):
        build_peer_optimizer("lion", params, lr=1.0)
    with pytest.raises(ConfigError):
        build_peer_optimizer("dadapt_sgd", params, lr=1.0, nonsense=3)
