"""The fast meta engine: native unroll against the ``higher`` package, the first-order option, and a
tensor learning rate that stays a tensor where the optimiser takes one."""

import copy

import pytest
import torch
import torch.nn.functional as F

from mlrsnet.errors import ConfigError
from mlrsnet.meta.engine import MetaEngine
from mlrsnet.net import MLRSNet
from mlrsnet.schedules.base import set_lr
from mlrsnet.tasks.base import ClassificationData, ClassificationTask, LanguageModelTask, TaskInfo
from tests.conftest import warm_up


class Float64Task(ClassificationTask):
    """A BatchNorm CNN task whose loss stays in float64, so that backends can be compared tightly."""

    def loss(self, forward, batch):
        x, y = batch
        return F.cross_entropy(forward(x), y)


def make_setup(opt_name: str, warm_steps: int = 2, clip: float | None = None):
    g = torch.Generator().manual_seed(0)
    n, meta, classes = 64, 24, 3
    x = torch.randn(n + meta + 8, 1, 8, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (n + meta + 8,), generator=g)
    data = ClassificationData(x[:n], y[:n], x[n:n + meta], y[n:n + meta], x[n + meta:], y[n + meta:])
    task = Float64Task(TaskInfo("synthetic", classes), data, "cnn", {"width": 4}, 16, 64, 0)
    torch.manual_seed(0)
    model = task.build_model().double()
    opt = {
        "sgd_momentum_wd": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=5e-4),
        "sgd_nesterov": lambda ps: torch.optim.SGD(ps, 0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
        "sgd_dampening": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.5),
        "sgd_plain": lambda ps: torch.optim.SGD(ps, lr=0.1),
        "adam": lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=1e-4),
        "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=1e-2),
    }[opt_name](model.parameters())
    batch, loss = warm_up(task, model, opt, warm_steps, clip)
    torch.manual_seed(1)
    net = MLRSNet(gamma=0.3).double()
    for v in (2.0, 1.5):
        net.step(torch.tensor(v, dtype=torch.float64))
    return task, model, opt, net, batch, loss


def hypergrad(setup, **engine_kwargs) -> torch.Tensor:
    task, model, opt, net, batch, loss = setup
    rng = task.meta_generator.get_state()
    MetaEngine(net, task, model, opt, **engine_kwargs).hypergradient(batch, loss)
    task.meta_generator.set_state(rng)
    return torch.cat([p.grad.flatten() for p in net.parameters()])


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


OPTIMISERS = ["sgd_momentum_wd", "sgd_nesterov", "sgd_dampening", "sgd_plain", "adam", "adamw"]


@pytest.mark.parametrize("K", [1, 2, 3])
@pytest.mark.parametrize("opt_name", OPTIMISERS)
def test_native_unroll_matches_higher_package(opt_name, K):
    setup = make_setup(opt_name, warm_steps=0 if opt_name == "sgd_plain" else 2)
    native = hypergrad(setup, backend="unroll", K=K)
    library = hypergrad(setup, backend="higher", K=K)
    assert library.abs().max() > 0
    assert rel(native, library) < 1e-9


def test_native_unroll_matches_higher_package_with_grad_clip():
    setup = make_setup("sgd_momentum_wd", clip=0.05)
    native = hypergrad(setup, backend="unroll", K=3, grad_clip=0.05)
    library = hypergrad(setup, backend="higher", K=3, grad_clip=0.05)
    assert rel(native, library) < 1e-9


def test_exact_is_the_one_step_unroll():
    setup = make_setup("adam")
    library = hypergrad(setup, backend="higher", K=1)
    assert rel(hypergrad(setup, backend="exact"), library) < 1e-9


def test_first_order_changes_nothing_at_k1():
    setup = make_setup("sgd_momentum_wd")
    first_order = hypergrad(setup, backend="unroll", K=1, first_order=True)
    assert rel(first_order, hypergrad(setup, backend="exact")) < 1e-12


@pytest.mark.parametrize("opt_name", ["sgd_momentum_wd", "adam"])
def test_first_order_is_the_sum_of_one_step_terms_along_the_real_trajectory(opt_name):
    """first_order: dL/dphi = sum_k -<grad L_meta(theta_K), d_k> dlr_k/dphi along the trajectory the
    real torch optimiser takes with lr_k = MLR-SNet(L_k); d_k = (theta_k - theta_{k+1}) / lr_k."""
    K = 3
    setup = make_setup(opt_name)
    task, model, opt, net, batch, loss = setup
    got = hypergrad(setup, backend="unroll", K=K, first_order=True)
    assert rel(got, hypergrad(setup, backend="unroll", K=K)) > 1e-6  # second-order terms are really dropped

    rng = task.meta_generator.get_state()
    m = copy.deepcopy(model)
    o = type(opt)(m.parameters(), **opt.defaults)
    o.load_state_dict(opt.state_dict())
    for q, p in zip(m.parameters(), model.parameters(), strict=True):
        q.grad = p.grad.clone()
    state, lrs, dirs, inner_loss = net.state, [], [], loss
    for k in range(K):
        if k > 0:
            o.zero_grad()
            inner_loss = task.loss(m, task.random_train_batch())
            inner_loss.backward()
        lr, state = net(inner_loss.detach(), state)
        state = (state[0].detach(), state[1].detach())
        before = [q.detach().clone() for q in m.parameters()]
        o.param_groups[0]["lr"] = float(lr.detach())
        o.step()
        after = [q.detach() for q in m.parameters()]
        dirs.append([(b - a) / float(lr.detach()) for b, a in zip(before, after, strict=True)])
        lrs.append(lr)
    meta_grad = torch.autograd.grad(task.loss(m, task.meta_batch()), list(m.parameters()))
    task.meta_generator.set_state(rng)
    dl_dlr = [-sum((g * d).sum() for g, d in zip(meta_grad, ds, strict=True)) for ds in dirs]
    total = sum(c * lr for c, lr in zip(dl_dlr, lrs, strict=True))
    want = torch.cat([g.flatten() for g in torch.autograd.grad(total, list(net.parameters()))])
    assert rel(got, want) < 1e-7


def test_first_order_lookahead_touches_nothing():
    task, model, opt, net, batch, loss = make_setup("sgd_momentum_wd")
    before_model = copy.deepcopy(model.state_dict())
    before_state = copy.deepcopy(opt.state_dict())
    before_grads = [p.grad.clone() for p in model.parameters()]
    MetaEngine(net, task, model, opt, backend="unroll", K=3, first_order=True).meta_step(batch, loss)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before_model.items())
    for pid, st in before_state["state"].items():
        assert torch.equal(st["momentum_buffer"], opt.state_dict()["state"][pid]["momentum_buffer"])
    assert all(torch.equal(a, p.grad) for a, p in zip(before_grads, model.parameters(), strict=True))


def test_first_order_rejects_the_higher_package():
    task, model, opt, net, *_ = make_setup("sgd_plain", 0)
    with pytest.raises(ConfigError, match="first_order"):
        MetaEngine(net, task, model, opt, backend="higher", K=2, first_order=True)
    rms = torch.optim.RMSprop(model.parameters())
    with pytest.raises(ConfigError, match="RMSprop"):
        MetaEngine(net, task, model, rms, backend="unroll", K=2, first_order=True)


def test_other_optimisers_still_unroll_through_higher():
    task, model, _, net, batch, _ = make_setup("sgd_plain", 0)
    rms = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    rms.zero_grad()
    loss = task.train_loss(model, batch)
    loss.backward()
    engine = MetaEngine(net, task, model, rms, backend="unroll", K=2)
    assert engine.use_higher_library
    engine.hypergradient(batch, loss)
    assert all(p.grad is not None for p in net.parameters())


def test_tensor_lr_stays_a_tensor_for_fused_optimisers():
    p = torch.nn.Parameter(torch.ones(3))
    fused = torch.optim.SGD([p], lr=0.1, momentum=0.9, fused=True)
    plain = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    lr = torch.tensor(0.25)
    set_lr(fused, lr)
    set_lr(plain, lr)
    assert isinstance(fused.param_groups[0]["lr"], torch.Tensor)
    assert plain.param_groups[0]["lr"] == 0.25 and isinstance(plain.param_groups[0]["lr"], float)
    p.grad = torch.ones(3)
    fused.step()
    assert torch.allclose(p.detach(), torch.full((3,), 0.75))


def test_native_unroll_matches_higher_package_on_an_lstm_language_model():
    """Second order through an LSTM (run without cuDNN on a GPU, which has no RNN double backward)."""
    g = torch.Generator().manual_seed(0)
    vocab = 12
    streams = [torch.randint(0, vocab, (n,), generator=g) for n in (600, 200, 200)]
    task = LanguageModelTask(TaskInfo("tiny_lm", vocab, loss_scale=2.5, metric="perplexity", higher_is_better=False),
                             *streams, "lstm_lm", {"emb_size": 8, "hidden_size": 8, "num_layers": 1, "dropout": 0.0,
                                                   "tie_weights": True}, 4, 8, 4, 0)
    torch.manual_seed(0)
    model = task.build_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    batch = next(task.train_batches(0))
    loss = task.train_loss(model, batch)
    loss.backward()
    net = MLRSNet(gamma=0.5)
    setup = (task, model, opt, net, batch, loss)
    native = hypergrad(setup, backend="unroll", K=2)
    library = hypergrad(setup, backend="higher", K=2)
    assert MetaEngine(net, task, model, opt, backend="unroll", K=2)._has_rnn
    assert rel(native, library) < 1e-4
