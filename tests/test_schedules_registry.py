import pytest
import torch

import mlrsnet.schedules as schedules
from mlrsnet.errors import ConfigError
from mlrsnet.schedules.drivers import KINDS
from mlrsnet.schedules.peers import optimizer_eval, optimizer_train
from mlrsnet.schedules.registry import (
    build_optimizer,
    build_scheduler,
    describe_schedule,
    get_schedule,
    schedule_names,
)

WRAPPING = {"scheduler", "metric_scheduler", "eval_metric_scheduler", "eval_loss_scheduler", "tuner",
            "hypergradient"}
PARAMS = {
    "lrbench": {"policy": "COS", "k0": 0.0, "k1": 0.1, "l": 10},
    "step": {"step_size": 5},
    "multistep": {"milestones": [5]},
    "exponential": {"gamma": 0.99},
    "sgdr": {"T_0": 5},
    "autolr": {"interval": 2, "horizon": 1},
}


def _data():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(32, 3, generator=g)
    return X, X @ torch.randn(3, 1, generator=g)


def _loss(model, batch):
    x, y = batch
    return torch.nn.functional.mse_loss(model(x), y)


# The schedules with an object of their own (a scheduler, tuner or replacement optimiser) that a hand-written
# loop builds with build_scheduler / build_optimizer; fixed, mlrsnet, mlrsnet_frozen and rl declare a whole build.
BUILDABLE = [name for name in schedule_names() if get_schedule(name).make is not None]


def test_the_buildable_schedules_are_every_schedule_but_the_loop_driven_ones():
    assert set(schedule_names()) - set(BUILDABLE) == {"fixed", "mlrsnet", "mlrsnet_frozen", "rl"}


@pytest.mark.parametrize("name", BUILDABLE)
def test_every_name_builds_and_runs_a_few_steps(name):
    torch.manual_seed(0)
    info = get_schedule(name)
    assert info.kind in KINDS and info.summary and info.reference
    assert name in describe_schedule(name)
    batch = _data()
    model = torch.nn.Linear(3, 1)
    if info.kind in WRAPPING:
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        sch = build_scheduler(name, opt, total_steps=20, steps_per_epoch=5, model=model, loss_fn=_loss,
                              **PARAMS.get(name, {}))
    else:
        lr = 0.05 if "schedulefree" in name or name.endswith("_hd") else 1.0
        opt = build_optimizer(name, model.parameters(), lr=lr)
        optimizer_train(opt)
    for step in range(4):
        if info.kind == "tuner":
            sch.maybe_tune(step, [batch])
        opt.zero_grad()
        loss = _loss(model, batch)
        if info.kind == "closure_optimizer":
            opt.step(lambda: _loss(model, batch))
            continue
        loss.backward()
        if info.kind == "hypergradient":
            sch.step(lambda: _loss(model, batch), lambda: _loss(model, batch))
            continue
        if info.kind == "loss_optimizer":
            opt.step(loss=loss)
            continue
        opt.step()
        if info.kind == "scheduler":
            sch.step()
        elif info.kind in ("metric_scheduler", "eval_metric_scheduler", "eval_loss_scheduler"):
            sch.step(float(loss.detach()))
    optimizer_eval(opt)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert all(g["lr"] > 0 for g in opt.param_groups)


def test_wrong_builder_unknown_name_and_missing_pieces():
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ConfigError, match="build_optimizer"):
        build_scheduler("sgd_hd", opt, total_steps=10, steps_per_epoch=5)
    with pytest.raises(ConfigError, match="build_scheduler"):
        build_optimizer("cosine", model.parameters(), lr=0.1)
    with pytest.raises(ConfigError, match="unknown schedule"):
        build_scheduler("warp_drive", opt, total_steps=10, steps_per_epoch=5)
    with pytest.raises(ConfigError, match="policy"):
        build_scheduler("lrbench", opt, total_steps=10, steps_per_epoch=5, k0=0.1)
    with pytest.raises(ConfigError, match="loss_fn"):
        build_scheduler("autolr", opt, total_steps=10, steps_per_epoch=5, interval=1, horizon=1)
    with pytest.raises(ConfigError):
        build_scheduler("greedy", opt, total_steps=10, steps_per_epoch=5, patience_steps=3)
    with pytest.raises(ConfigError):
        build_optimizer("sls", model.parameters(), lr=1.0, momentum=0.9)
    for name in ("fixed", "mlrsnet", "mlrsnet_frozen", "rl"):  # built by the training loop (registry.build)
        with pytest.raises(ConfigError, match=f"schedule={name}|build_scheduler"):
            build_scheduler(name, opt, total_steps=10, steps_per_epoch=5)


def test_package_exports_the_public_names():
    for name in schedules.__all__:
        assert hasattr(schedules, name)
