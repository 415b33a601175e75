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
def test_exact_and_higher_agree_at_k1(opt_name):
    task, model, opt, net, batch, loss = warmed_up(opt_name, warm_steps=0 if opt_name == "sgd_plain" else 2)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    g_exact = net_grad(MetaEngine(net, task, model, opt, backend="exact"), batch, loss)
    g_higher = net_grad(MetaEngine(net, task, model, opt, backend="higher", K=1), batch, loss)
    g_unroll = net_grad(MetaEngine(net, task, model, opt, backend="unroll", K=1), batch, loss)
    assert g_exact.abs().max() > 0
    for other in (g_higher, g_unroll):
        rel = (g_exact - other).norm() / other.norm()
        assert rel < 1e-5, f"relative error {rel:.3e}"


def test_exact_matches_finite_difference_of_the_lr():
    """dL_meta(theta - lr d)/dlr from the closed form equals a central finite difference."""
    task, model, opt, net, batch, loss = warmed_up("sgd_momentum_wd")
    engine = MetaEngine(net, task, model, opt, backend="exact")
    lr, _ = net(loss.detach(), net.state)
    from mlrsnet.meta.hypergrad import update_direction

    dirs = [d for grp in update_direction(opt) for d in grp]
    params = list(model.parameters())
    meta_batch = task.meta_batch()

    def meta_loss_at(step: float) -> float:
        m = copy.deepcopy(model)
        with torch.no_grad():
            for q, d in zip(m.parameters(), dirs, strict=True):
                q -= step * d
        return float(task.loss(m, meta_batch))

    eps = 1e-6
    lr_value = float(lr.detach())
    fd = (meta_loss_at(lr_value + eps) - meta_loss_at(lr_value - eps)) / (2 * eps)
    # closed form through the engine: dL/dphi = dL/dlr * dlr/dphi; recover dL/dlr via the head bias
    task.meta_generator.manual_seed(123)
    engine.hypergradient(batch, loss)
    lr2, _ = net(loss.detach(), net.state)
    dlr_dbias = torch.autograd.grad(lr2, net.head.bias)[0]
    dl_dlr = float(net.head.bias.grad / dlr_dbias)
    assert dl_dlr == pytest.approx(fd, rel=1e-4)
    assert len(params) == len(dirs)


@pytest.mark.parametrize("backend,K", [("exact", 1), ("higher", 1), ("higher", 3), ("unroll", 1), ("unroll", 3)])
@pytest.mark.parametrize("opt_name", ["sgd_momentum_wd", "adam"])
def test_lookahead_leaves_model_bn_and_optimizer_untouched(backend, K, opt_name):
    task, model, opt, net, batch, loss = warmed_up(opt_name)
    before_model = copy.deepcopy(model.state_dict())
    before_opt = copy.deepcopy(opt.state_dict())
    before_grads = [p.grad.clone() for p in model.parameters()]
    net_before = [p.detach().clone() for p in net.parameters()]
    engine = MetaEngine(net, task, model, opt, backend=backend, K=K)
    engine.meta_step(batch, loss)
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
    with pytest.raises(ConfigError, match="K"):
        MetaEngine(net, task, model, opt, backend="higher", K=0)
    with pytest.raises(ConfigError, match="higher"):
        MetaEngine(net, task, model, opt, backend="exact", K=2)
    rms = torch.optim.RMSprop(model.parameters())
    eng = MetaEngine(net, task, model, rms, backend="exact")
    with pytest.raises(ConfigError, match="RMSprop"):
        eng.meta_step(*warmed_up("sgd_plain", 0)[4:])
