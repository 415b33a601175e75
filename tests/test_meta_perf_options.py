"""The fast meta engine: native unroll against the ``higher`` package, the first-order option, and a
tensor learning rate that stays a tensor where the optimiser takes one."""

import copy

import pytest
import torch

from mlrsnet.errors import ConfigError
from mlrsnet.meta.engine import MetaEngine
from mlrsnet.net import MLRSNet
from mlrsnet.schedules.base import set_lr
from mlrsnet.tasks.base import ClassificationData, ClassificationTask, LanguageModelTask, Task, TaskInfo
from tests.conftest import warm_up


def make_setup(opt_name: str, warm_steps: int = 2, clip: float | None = None):
    g = torch.Generator().manual_seed(0)
    n, meta, classes = 64, 24, 3
    x = torch.randn(n + meta + 8, 1, 8, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (n + meta + 8,), generator=g)
    data = ClassificationData(x[:n], y[:n], x[n:n + meta], y[n:n + meta], x[n + meta:], y[n + meta:])
    # a BatchNorm CNN; ClassificationTask keeps a float64 loss in float64, so backends compare tightly
    task = ClassificationTask(TaskInfo("synthetic", classes), data, "cnn", {"width": 4}, 16, 64, 0)
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
@pytest.mark.slow
def test_native_unroll_matches_higher_package(opt_name, K):
    setup = make_setup(opt_name, warm_steps=0 if opt_name == "sgd_plain" else 2)
    native = hypergrad(setup, backend="unroll", K=K)
    library = hypergrad(setup, backend="higher", K=K)
    assert library.abs().max() > 0
    assert rel(native, library) < 1e-9


@pytest.mark.slow
def test_native_unroll_matches_higher_package_with_grad_clip():
    setup = make_setup("sgd_momentum_wd", clip=0.05)
    native = hypergrad(setup, backend="unroll", K=3, grad_clip=0.05)
    library = hypergrad(setup, backend="higher", K=3, grad_clip=0.05)
    assert rel(native, library) < 1e-9


class QuadraticTask(Task):
    """One weight w (``nn.Linear(1, 1)``): every training batch has L(w) = A/2 (w - B)^2, the meta batch
    L_meta(w) = 1/2 (w - M)^2, and MLR-SNet reads L / 2 (loss_scale = 2)."""

    A, B, M = 4.0, 0.25, -0.5

    def __init__(self) -> None:
        self.info = TaskInfo("quadratic", 2, loss_scale=2.0)
        self.meta_generator = torch.Generator()
        one = torch.ones(1, 1, dtype=torch.float64)
        self.train = (one * self.A ** 0.5, one * self.A ** 0.5 * self.B)
        self.meta = (one, one * self.M)

    def loss(self, forward, batch):
        x, y = batch
        return 0.5 * ((forward(x) - y) ** 2).sum()

    def random_train_batch(self):
        return self.train

    def meta_batch(self):
        return self.meta


def quadratic_setup():
    task = QuadraticTask()
    model = torch.nn.Linear(1, 1, bias=False).double()
    with torch.no_grad():
        model.weight.fill_(1.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = task.loss(model, task.train)
    loss.backward()
    torch.manual_seed(0)
    net = MLRSNet(gamma=0.2).double()
    return task, model, opt, net, task.train, loss


def quadratic_by_hand(net: MLRSNet) -> tuple[torch.Tensor, torch.Tensor]:
    """dL_meta(theta_2)/dphi for K = 2 plain-SGD steps on the quadratic, worked out by hand:
    g_k = A (theta_k - B), lr_k = MLR-SNet(L_k / 2) (input detached, LSTM state detached between steps),
    theta_{k+1} = theta_k - lr_k g_k, dL_meta/dtheta_2 = theta_2 - M. First order treats g_1 as a constant:
    dtheta_2/dlr_0 = -g_0; second order also differentiates g_1 = A (theta_1 - B):
    dtheta_2/dlr_0 = -(1 - A lr_1) g_0. Both have dtheta_2/dlr_1 = -g_1. Returns (first, second order)."""
    A, B, M = QuadraticTask.A, QuadraticTask.B, QuadraticTask.M
    theta0 = 1.0
    g0, l0 = A * (theta0 - B), A / 2 * (theta0 - B) ** 2
    lr0, state = net(torch.tensor(l0 / 2, dtype=torch.float64), net.state)
    theta1 = theta0 - float(lr0.detach()) * g0
    g1, l1 = A * (theta1 - B), A / 2 * (theta1 - B) ** 2
    lr1, _ = net(torch.tensor(l1 / 2, dtype=torch.float64), (state[0].detach(), state[1].detach()))
    theta2 = theta1 - float(lr1.detach()) * g1
    params = list(net.parameters())

    def flat(c0: float, c1: float) -> torch.Tensor:
        grads = torch.autograd.grad(c0 * lr0 + c1 * lr1, params, retain_graph=True)
        return torch.cat([g.flatten() for g in grads])

    first = flat(-(theta2 - M) * g0, -(theta2 - M) * g1)
    second = flat(-(theta2 - M) * (1 - A * float(lr1.detach())) * g0, -(theta2 - M) * g1)
    return first, second


def test_first_and_second_order_at_k2_match_a_hand_computed_quadratic():
    """Guards ``first_order`` (it must drop exactly the dg_1/dlr_0 term at K = 2, where it is read),
    the second-order unroll itself, and the loss_scale division of MetaEngine._net_input."""
    setup = quadratic_setup()
    first, second = quadratic_by_hand(setup[3])
    assert rel(first, second) > 0.1  # the dropped term is large here
    assert rel(hypergrad(setup, backend="unroll", K=2, first_order=True), first) < 1e-12
    assert rel(hypergrad(setup, backend="unroll", K=2), second) < 1e-12
    assert rel(hypergrad(setup, backend="higher", K=2), second) < 1e-12


def test_a_clip_above_the_gradient_norm_changes_nothing():
    """MetaEngine._clip scales a gradient *down* to grad_clip and never up: a threshold far above every
    gradient norm leaves the unrolled hypergradient bit for bit (a missing clamp(max=1) would scale
    the small gradients up to norm grad_clip)."""
    setup = quadratic_setup()
    second = quadratic_by_hand(setup[3])[1]
    assert rel(hypergrad(setup, backend="unroll", K=2, grad_clip=1e3), second) < 1e-12
    assert rel(hypergrad(setup, backend="higher", K=2, grad_clip=1e3), second) < 1e-12
    assert rel(hypergrad(setup, backend="unroll", K=2, grad_clip=0.1), second) > 1e-3  # a binding clip acts


@pytest.mark.parametrize("opt_name", ["sgd_momentum_wd", "adam"])
@pytest.mark.slow
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


@pytest.mark.slow
def test_other_optimisers_still_unroll_through_higher():
    """RMSprop has no native UpdateRule: the unroll falls back to the higher package, and its K = 2
    hypergradient is the derivative of the meta loss after two *real* ``RMSprop.step()`` calls with
    lr_k = MLR-SNet(L_k): checked against a central finite difference along a random direction of phi."""
    task, model, _, net, batch, _ = make_setup("sgd_plain", 0)
    rms = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    rms.zero_grad()
    loss = task.train_loss(model, batch)
    loss.backward()
    engine = MetaEngine(net, task, model, rms, backend="unroll", K=2)
    assert engine.use_higher_library
    got = hypergrad((task, model, rms, net, batch, loss), backend="unroll", K=2)

    def meta_loss_after_two_real_steps(inputs: list | None = None) -> float:
        """The meta loss after two real RMSprop steps; with ``inputs``, MLR-SNet reads the recorded
        (loss, LSTM state) pairs, since the engine treats its inputs as constants (detached)."""
        rng = task.meta_generator.get_state()
        m = copy.deepcopy(model)
        o = torch.optim.RMSprop(m.parameters(), lr=1e-3)
        state, seen = net.state, []
        for k in range(2):
            o.zero_grad()
            inner = task.loss(m, batch if k == 0 else task.random_train_batch())
            inner.backward()
            x, state = (inner.detach(), state) if inputs is None else inputs[k]
            seen.append((x, state))
            with torch.no_grad():
                lr, state = net(x, state)
            o.param_groups[0]["lr"] = float(lr)
            o.step()
        with torch.no_grad():
            value = float(task.loss(m, task.meta_batch()))
        task.meta_generator.set_state(rng)
        if inputs is None:
            inputs_at_phi.extend(seen)
        return value

    inputs_at_phi: list = []
    meta_loss_after_two_real_steps()
    direction = torch.randn(got.numel(), generator=torch.Generator().manual_seed(2), dtype=got.dtype)
    eps = 1e-5

    def shifted(sign: float) -> float:
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(phi + sign * eps * direction, net.parameters())
        return meta_loss_after_two_real_steps(inputs_at_phi)

    phi = torch.nn.utils.parameters_to_vector(net.parameters()).detach().clone()
    fd = (shifted(1.0) - shifted(-1.0)) / (2 * eps)
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(phi, net.parameters())
    assert abs(fd) > 1e-8
    assert float(got @ direction) == pytest.approx(fd, rel=1e-5)


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
