"""MARTHE / RTHO: the online forward-mode hypergradient against autograd through the unrolled run."""

import pytest
import torch

from mlrsnet.errors import ConfigError
from mlrsnet.schedules.marthe import MartheTuner

F64 = torch.float64
DIM = 4
A = torch.tensor([[3.0, 0.5, 0.0, 0.0], [0.5, 2.0, 0.3, 0.0], [0.0, 0.3, 1.0, 0.2], [0.0, 0.0, 0.2, 0.5]], dtype=F64)
B = torch.tensor([1.0, -1.0, 0.5, 2.0], dtype=F64)
THETA0 = torch.tensor([0.5, 1.0, -1.0, 0.3], dtype=F64)


def _batch(t):
    # A different "mini-batch" per step, and a quartic term so that the Hessian moves with theta.
    return torch.sin(torch.arange(DIM, dtype=torch.float64) + t)


QUARTIC = {"quartic": 0.05}  # 0.0: the training loss is a plain quadratic


def train_loss(theta, t):
    return 0.5 * theta @ A @ theta - _batch(t) @ theta + QUARTIC["quartic"] * (theta**4).sum()


def val_loss(theta):
    return 0.5 * ((theta - B) ** 2).sum() + 0.1 * (theta**3).sum()


def _online(steps, lr, momentum, weight_decay, mu, hyper_lr):
    p = torch.nn.Parameter(THETA0.clone())
    opt = torch.optim.SGD([p], lr=lr, momentum=momentum, weight_decay=weight_decay)
    tuner = MartheTuner(opt, hyper_lr=hyper_lr, mu=mu, clip=None)
    etas, hs = [], []
    for t in range(steps):
        opt.zero_grad()
        train_loss(p, t).backward()
        etas.append(opt.param_groups[0]["lr"])
        hs.append(tuner.step(lambda t=t: train_loss(p, t), lambda: val_loss(p)))
    return etas, hs, tuner


def _unrolled(etas, momentum, weight_decay):
    """d E(theta_{t+1}) / d delta with every LR eta_s + delta, by autograd through every step."""
    out = []
    for t in range(len(etas)):
        delta = torch.zeros((), dtype=F64, requires_grad=True)
        theta, buf = THETA0.clone().requires_grad_(), None
        for s in range(t + 1):
            g = torch.autograd.grad(train_loss(theta, s), theta, create_graph=True)[0] + weight_decay * theta
            buf = g if buf is None or not momentum else momentum * buf + g
            theta = theta - (etas[s] + delta) * buf
        out.append(float(torch.autograd.grad(val_loss(theta), delta)[0]))
    return out


@pytest.mark.parametrize("quartic", [0.0, 0.05])
@pytest.mark.parametrize("momentum,weight_decay", [(0.0, 0.0), (0.9, 0.0), (0.9, 0.01)])
def test_rtho_hypergradient_is_the_derivative_of_the_unrolled_run(momentum, weight_decay, quartic, monkeypatch):
    monkeypatch.setitem(QUARTIC, "quartic", quartic)
    etas, hs, _ = _online(8, 0.05, momentum, weight_decay, mu=1.0, hyper_lr=0.002)
    assert len(set(etas)) == len(etas)  # the LR moved at every step, so the current eta matters
    assert max(etas) / min(etas) > 1.05
    assert hs == pytest.approx(_unrolled(etas, momentum, weight_decay), rel=1e-9, abs=1e-12)


def test_the_authors_initial_lr_tangent_would_not_match():
    # The reference code multiplies H Z by the initial LR; with a moving LR that is not the derivative.
    etas, hs, _ = _online(8, 0.05, 0.9, 0.0, mu=1.0, hyper_lr=0.002)
    frozen = _unrolled([etas[0]] * len(etas), 0.9, 0.0)
    assert hs[-1] != pytest.approx(frozen[-1], rel=1e-3)


def test_mu_zero_is_hd_on_the_validation_loss():
    etas, hs, tuner = _online(5, 0.05, 0.0, 0.0, mu=0.0, hyper_lr=0.01)
    # Replay: h_t = -grad E(theta_{t+1}) . g_t, and eta_{t+1} = eta_t - beta h_t.
    theta = THETA0.clone().requires_grad_()
    for t in range(5):
        g = torch.autograd.grad(train_loss(theta, t), theta)[0]
        theta = (theta - etas[t] * g).detach().requires_grad_()
        e = torch.autograd.grad(val_loss(theta), theta)[0]
        assert hs[t] == pytest.approx(float(-e @ g), rel=1e-12)
        if t + 1 < 5:
            assert etas[t + 1] == pytest.approx(max(etas[t] - 0.01 * hs[t], 0.0), rel=1e-12)


def test_lr_is_clamped_at_zero_and_state_round_trips():
    p = torch.nn.Parameter(THETA0.clone())
    opt = torch.optim.SGD([p], lr=0.05)
    tuner = MartheTuner(opt, hyper_lr=1e6, mu=1.0)
    opt.zero_grad()
    train_loss(p, 0).backward()
    # E = -L: the step raises E, so h > 0 and a huge beta drives the LR to the clamp at 0.
    h = tuner.step(lambda: train_loss(p, 0), lambda: -train_loss(p, 0))
    assert h > 0 and opt.param_groups[0]["lr"] == 0.0
    other = MartheTuner(torch.optim.SGD([torch.nn.Parameter(THETA0.clone())], lr=0.05), mu=1.0)
    other.load_state_dict(tuner.state_dict())
    assert other.eta == 0.0 and torch.equal(other.z, tuner.z)


def test_adaptive_mu_follows_the_authors_rule():
    etas, hs, tuner = _online(6, 0.05, 0.0, 0.0, mu="auto", hyper_lr=0.002)
    assert 0.0 <= tuner.mu <= 1.0 and tuner.c >= 0.0
    # Replay the rule by hand over the same run.
    p = torch.nn.Parameter(THETA0.clone())
    opt = torch.optim.SGD([p], lr=0.05)
    t2 = MartheTuner(opt, hyper_lr=0.002, mu="auto", clip=None)
    mu, c = -1.0, 0.0
    for t in range(6):
        opt.zero_grad()
        train_loss(p, t).backward()
        g = p.grad.detach().clone()
        t2.step(lambda t=t: train_loss(p, t), lambda: val_loss(p))
        e = torch.autograd.grad(val_loss(p), p)[0]
        dot = float(e @ g)
        q = min(max(t2.eta / dot, 0.0), 1.0) if dot > 0 else 0.0
        c = c * (0.0 if mu == 0 else (1.0 if mu > 0 else -1.0)) + mu
        mu = (1.0 if q >= 1 else 0.0) if c == -1.0 else q ** (1 / (1 + c))
        assert t2.mu == pytest.approx(mu, rel=1e-12)


@pytest.mark.parametrize("kw", [{"mu": 1.5}, {"mu": "sometimes"}, {"hyper_lr": -1.0}])
def test_bad_parameters(kw):
    with pytest.raises(ConfigError):
        MartheTuner(torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1), **kw)


def test_needs_sgd():
    with pytest.raises(ConfigError, match="sgd"):
        MartheTuner(torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=0.1))
    with pytest.raises(ConfigError, match="nesterov"):
        MartheTuner(torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1, momentum=0.9, nesterov=True))


def test_driver_takes_e_on_the_meta_split_and_keeps_the_data_order():
    from mlrsnet.engine.build import initial_loss
    from mlrsnet.engine.cli import compose
    from mlrsnet.engine.config import parse_config
    from mlrsnet.engine.loop import LoopConfig, train_loop
    from mlrsnet.schedules import registry
    from mlrsnet.schedules.drivers import HypergradientDriver
    from mlrsnet.schedules.optim import build_base_optimizer, resolve_optimizer
    from mlrsnet.schedules.spec import BuildContext
    from mlrsnet.tasks import build_task

    cfg = parse_config(compose("train", ["+task=digits_mlp", "task.train_fraction=0.05", "batch_size=16",
                                         "epochs=1", "progress=false"]), "train")

    def built(schedule, **params):
        task = build_task(cfg.task, 0, "cpu")
        torch.manual_seed(0)
        model = task.build_model()
        opt = build_base_optimizer(model.parameters(), resolve_optimizer(cfg.optimizer, {}))
        ctx = BuildContext(opt, model, task, cfg.epochs * task.steps_per_epoch, task.steps_per_epoch,
                           l0=initial_loss(task, model, 0))
        return task, model, registry.build(schedule, ctx, registry.parse_params(schedule, params))

    task, model, rtho = built("rtho", hyper_lr=1e-3)
    assert isinstance(rtho.driver, HypergradientDriver) and rtho.driver.tuner.mu == 1.0
    drawn = []
    meta_batch = task.meta_batch
    task.meta_batch = lambda: drawn.append(1) or meta_batch()
    train_loop(task, model, rtho.optimizer, rtho.driver, LoopConfig(epochs=1, progress=False, eval_splits=()))
    assert len(drawn) == task.steps_per_epoch  # one meta-validation batch per step
    assert rtho.optimizer.param_groups[0]["lr"] != cfg.optimizer.lr
    plain_task, plain_model, plain = built("fixed")
    train_loop(plain_task, plain_model, plain.optimizer, plain.driver,
               LoopConfig(epochs=1, progress=False, eval_splits=()))
    assert torch.equal(task.generator.get_state(), plain_task.generator.get_state())
    # RTHO is MARTHE with mu = 1: it declares no mu (schedule.mu is an unknown key of schedule=rtho), and a
    # hand-written loop that passes one is told to use marthe.
    with pytest.raises(ConfigError, match="unknown config key schedule.mu"):
        built("rtho", mu=0.5)
    with pytest.raises(ConfigError, match="use schedule=marthe"):
        registry.build_scheduler("rtho", rtho.optimizer, total_steps=3, steps_per_epoch=3, mu=0.5)
    state = rtho.driver.state_dict()
    _, _, other = built("marthe", mu=0.5)
    other.driver.load_state_dict(state)
    assert other.driver.tuner.eta == rtho.driver.tuner.eta


@pytest.mark.slow
def test_bench_runs_marthe_rtho_and_l4(tmp_path):
    from tests.conftest import REPO, run_cli

    proc = run_cli(["mlrsnet.bench", "+task=digits_mlp", "task.train_fraction=0.05", "batch_size=16", "epochs=1",
                    "progress=false", "schedules=[marthe,rtho,l4]", "seeds=[0]", "tune=false",
                    f"out_dir={tmp_path}", f"hydra.run.dir={tmp_path}/hydra"], cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = (tmp_path / "results.md").read_text()
    for name in ("marthe", "rtho", "l4"):
        assert f"| {name} |" in table


@pytest.mark.parametrize("name", ["marthe", "rtho", "l4"])
def test_schedule_group_defaults_build(name):
    from mlrsnet.schedules.registry import build_optimizer, build_scheduler, get_schedule, parse_params, schedule_node
    from mlrsnet.schedules.spec import given_params

    node = schedule_node(name)  # what schedule=<name> composes
    assert node.pop("name") == name and isinstance(node.pop("optimizer"), dict)
    conf = given_params(parse_params(name, node))  # the implementation's keyword arguments
    model = torch.nn.Linear(3, 1)
    if get_schedule(name).kind == "hypergradient":
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        tuner = build_scheduler(name, opt, total_steps=10, steps_per_epoch=5, **conf)
        assert tuner.hyper_lr == conf["hyper_lr"]
    else:
        opt = build_optimizer(name, model.parameters(), 1.0, **conf)
        assert opt.alpha == conf["alpha"]
