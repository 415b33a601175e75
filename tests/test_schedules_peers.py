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
    """optimizer_train / optimizer_eval leave a plain optimiser's parameters, state and groups as they
    are (schedule-free ones swap to their averaged point), and training goes on as if never called."""
    X, y = _problem()
    runs = []
    for call_helpers in (True, False):
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        losses = []
        for _ in range(3):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(X), y)
            loss.backward()
            opt.step()
            losses.append(float(loss))
            if call_helpers:
                before = [p.detach().clone() for p in model.parameters()]
                groups = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
                optimizer_eval(opt)
                optimizer_train(opt)
                assert all(torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
                assert groups == [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
        runs.append((losses, [p.detach().clone() for p in model.parameters()]))
        assert not needs_train_eval(opt)
    assert runs[0][0] == runs[1][0] and runs[0][0][-1] < runs[0][0][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))


def test_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "prodigyopt", None)  # makes `import prodigyopt` fail
    with pytest.raises(ConfigError, match=r"pip install 'mlrsnet\[peers\]'"):
        build_peer_optimizer("prodigy", [torch.nn.Parameter(torch.zeros(1))], lr=1.0)


def test_unknown_name_and_bad_parameters():
    params = [torch.nn.Parameter(torch.zeros(1))]
    with pytest.raises(ConfigError, match="unknown peer optimizer 'lion'"):
        build_peer_optimizer("lion", params, lr=1.0)
    with pytest.raises(ConfigError, match="rejected the parameters .*nonsense"):
        build_peer_optimizer("dadapt_sgd", params, lr=1.0, nonsense=3)
