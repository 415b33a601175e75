"""The bilevel engine: backend agreement, and a lookahead that touches nothing real."""

import copy

import pytest
import torch

from mlrsnet.meta.engine import MetaEngine
from mlrsnet.net import MLRSNet
from mlrsnet.tasks.base import ClassificationData, ClassificationTask, TaskInfo
from tests.conftest import warm_up


def make_task(dtype=torch.float64, n=48, meta=24, classes=3, seed=0) -> ClassificationTask:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n + meta + 16, 1, 8, 8, generator=g, dtype=dtype)
    y = torch.randint(0, classes, (n + meta + 16,), generator=g)
    data = ClassificationData(
        train_x=x[:n], train_y=y[:n], meta_x=x[n:n + meta], meta_y=y[n:n + meta],
        test_x=x[n + meta:], test_y=y[n + meta:],
    )
    # meta_batch_size >= meta set size: every meta batch is the whole meta set, identical for both backends
    return ClassificationTask(TaskInfo("synthetic", classes), data, "cnn", {"width": 4}, 16, 64, seed)


def make_optimizer(name: str, model: torch.nn.Module) -> torch.optim.Optimizer:
    if name == "sgd_momentum_wd":
        return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    if name == "sgd_nesterov":
        return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
    if name == "sgd_plain":
        return torch.optim.SGD(model.parameters(), lr=0.1)
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    raise ValueError(name)


def warmed_up(opt_name: str, warm_steps: int = 2):
    """A task, BN model and optimiser whose state is non-trivial (momentum buffers / Adam moments)."""
    torch.manual_seed(0)
    task = make_task()
    model = task.build_model().double()
    opt = make_optimizer(opt_name, model)
    batch, loss = warm_up(task, model, opt, warm_steps)
    torch.manual_seed(1)
    net = MLRSNet(gamma=0.3).double()
    for v in (2.0, 1.5):
        net.step(torch.tensor(v, dtype=torch.float64))
    return task, model, opt, net, batch, loss


def net_grad(engine: MetaEngine, batch, loss) -> torch.Tensor:
    state = engine.task.meta_generator.get_state()
    engine.hypergradient(batch, loss)
    engine.task.meta_generator.set_state(state)
    return torch.cat([p.grad.flatten() for p in engine.net.parameters()])


@pytest.mark.parametrize("opt_name", ["sgd_momentum_wd", "sgd_nesterov", "sgd_plain", "adam", "adamw"])
def test_exact_matches_the_higher_package_to_machine_precision(opt_name):
    """The closed form against an independent implementation (``higher``'s differentiable optimisers) in
    float64, at 1e-12: a wrong term of any direction (momentum, nesterov, weight decay, Adam's bias
    correction, AdamW's decoupled decay) shows up far above rounding error (~5e-16 measured)."""
    task, model, opt, net, batch, loss = warmed_up(opt_name, warm_steps=0 if opt_name == "sgd_plain" else 2)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    g_exact = net_grad(MetaEngine(net, task, model, opt, backend="exact"), batch, loss)
    g_higher = net_grad(MetaEngine(net, task, model, opt, backend="higher", K=1), batch, loss)
    assert g_exact.abs().max() > 0
    rel = (g_exact - g_higher).norm() / g_higher.norm()
    assert rel < 1e-12, f"relative error {rel:.3e}"


def real_step_direction(model: torch.nn.Module, opt: torch.optim.Optimizer, opt_name: str,
                        lr: float) -> list[torch.Tensor]:
    """d = (theta - theta') / lr, with theta' from a real ``optimizer.step()`` on copies of the model and
    optimiser (every optimiser here is linear in lr at fixed state, so d does not depend on lr)."""
    m = copy.deepcopy(model)
    o = make_optimizer(opt_name, m)
    o.load_state_dict(copy.deepcopy(opt.state_dict()))  # a plain load would share (and step) opt's buffers
    for q, p in zip(m.parameters(), model.parameters(), strict=True):
        q.grad = p.grad.clone()
    o.param_groups[0]["lr"] = lr
    o.step()
    return [(p.detach() - q.detach()) / lr for p, q in zip(model.parameters(), m.parameters(), strict=True)]


@pytest.mark.parametrize("opt_name", ["sgd_momentum_wd", "adamw"])
def test_exact_matches_a_finite_difference_along_the_real_optimizer_step(opt_name):
    """dL_meta/dphi from the engine equals dL_meta(theta - lr d)/dlr * dlr/dphi, with dL/dlr a central
    finite difference, d taken from a real ``optimizer.step()`` (not from the engine's UpdateRule, so a
    term dropped from UpdateRule, e.g. SGD's weight decay, is caught) and lr = MLR-SNet(L / loss_scale)
    on a task with loss_scale = 2 (guards MetaEngine._net_input dividing the loss by loss_scale)."""
    task, model, opt, net, batch, loss = warmed_up(opt_name)
    task.info.loss_scale = 2.0
    lr, _ = net(loss.detach() / 2.0, net.state)
    lr_value = float(lr.detach())
    dirs = real_step_direction(model, opt, opt_name, lr_value)
    meta_batch = task.meta_batch()  # the whole meta set: the batch the engine draws too

    def meta_loss_at(step: float) -> float:
        m = copy.deepcopy(model)
        with torch.no_grad():
            for q, d in zip(m.parameters(), dirs, strict=True):
                q -= step * d
            return float(task.loss(m, meta_batch))

    eps = 1e-6
    fd = (meta_loss_at(lr_value + eps) - meta_loss_at(lr_value - eps)) / (2 * eps)
    want = fd * torch.cat([g.flatten() for g in torch.autograd.grad(lr, list(net.parameters()))])
    got = net_grad(MetaEngine(net, task, model, opt, backend="exact"), batch, loss)
    rel = (got - want).norm() / want.norm()
    assert rel < 1e-6, f"relative error {rel:.3e}"


@pytest.mark.parametrize("backend,K", [("exact", 1), ("higher", 1), ("higher", 3), ("unroll", 1), ("unroll", 3)])
@pytest.mark.parametrize("opt_name", ["sgd_momentum_wd", "adam"])
def test_lookahead_leaves_model_bn_and_optimizer_untouched(backend, K, opt_name):
    task, model, opt, net, batch, loss = warmed_up(opt_name)
    before_model = copy.deepcopy(model.state_dict())
    before_opt = copy.deepcopy(opt.state_dict())
    before_grads = [p.grad.clone() for p in model.parameters()]
    net_before = [p.detach().clone() for p in net.parameters()]
    state_before = [t.clone() for t in net.state]
    engine = MetaEngine(net, task, model, opt, backend=backend, K=K)
    engine.meta_step(batch, loss)
    # the net's LSTM state is read, not advanced: the real step's call reads this loss once (README)
    assert all(torch.equal(a, b) for a, b in zip(state_before, net.state, strict=True))
    after_model = model.state_dict()
    for k, v in before_model.items():
        assert torch.equal(v, after_model[k]), f"{k} changed (running stats or weights)"
    after_opt = opt.state_dict()
    for pid, st in before_opt["state"].items():
        for key, val in st.items():
            assert torch.equal(torch.as_tensor(val), torch.as_tensor(after_opt["state"][pid][key])), key
    assert before_opt["param_groups"] == after_opt["param_groups"]
    assert all(torch.equal(a, p.grad) for a, p in zip(before_grads, model.parameters(), strict=True))
    assert any(not torch.equal(a, p) for a, p in zip(net_before, net.parameters(), strict=True)), "net not updated"


@pytest.mark.parametrize("backend,K", [("exact", 1), ("higher", 1), ("unroll", 2)])
def test_reference_double_read_advances_the_state_in_the_lookahead_and_again_at_the_real_step(backend, K):
    """meta.lookahead_advances_state=true is the reference's meta_train.py: the lookahead's call on the
    training loss advances the LSTM state (old weights), the real step's call advances it again on the
    same loss (updated weights)."""
    task, model, opt, net, batch, loss = warmed_up("sgd_momentum_wd")
    before = copy.deepcopy(net)  # weights and carried state before the meta update
    engine = MetaEngine(net, task, model, opt, backend=backend, K=K, lookahead_advances_state=True)
    engine.meta_step(batch, loss)
    x = engine._net_input(loss)
    with torch.no_grad():
        _, once = before(x, before.state)
    assert all(torch.allclose(a, b, rtol=0, atol=1e-12) for a, b in zip(once, net.state, strict=True))
    with torch.no_grad():
        twice_lr, twice = net(x, once)
        once_lr, _ = net(x, before.state)
    real_lr = net.step(x)
    assert torch.allclose(real_lr, twice_lr, rtol=0, atol=1e-12)
    assert all(torch.allclose(a, b, rtol=0, atol=1e-12) for a, b in zip(twice, net.state, strict=True))
    assert abs(float(real_lr) - float(once_lr)) > 1e-6, "the double read made no difference"


@pytest.mark.slow
def test_meta_step_lowers_meta_loss_of_lookahead_on_average():
    """A sanity check of direction: a few meta steps on a fixed batch reduce the lookahead's meta loss."""
    task, model, opt, net, batch, loss = warmed_up("sgd_momentum_wd")
    engine = MetaEngine(net, task, model, opt, backend="exact", meta_lr=1e-2)
    losses = [float(engine.meta_step(batch, loss)) for _ in range(30)]
    assert losses[-1] < losses[0]


def test_engine_rejects_bad_settings():
    from mlrsnet.errors import ConfigError

    task, model, opt, net, *_ = warmed_up("sgd_plain", 0)
    with pytest.raises(ConfigError, match="meta.backend"):
        MetaEngine(net, task, model, opt, backend="magic")
    with pytest.raises(ConfigError, match="meta.K must be >= 1"):
        MetaEngine(net, task, model, opt, backend="higher", K=0)
    with pytest.raises(ConfigError, match="use meta.backend=unroll"):
        MetaEngine(net, task, model, opt, backend="exact", K=2)
    rms = torch.optim.RMSprop(model.parameters())
    eng = MetaEngine(net, task, model, rms, backend="exact")
    with pytest.raises(ConfigError, match="RMSprop"):
        eng.meta_step(*warmed_up("sgd_plain", 0)[4:])
