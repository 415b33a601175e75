"""The `schedule` config group: generated from the declarations (mlrsnet/schedules/catalog/<name>.py) with
each schedule's parameters and the optimiser it runs with; momentum 0 under MLR-SNet (the reference code),
SGDM 0.9 for the baselines."""

from __future__ import annotations

import dataclasses
from importlib import resources

import pytest
from omegaconf import OmegaConf

from mlrsnet.engine.build import build_run
from mlrsnet.engine.cli import compose
from mlrsnet.engine.config import ScheduleChoice, parse_config, schedule_choice
from mlrsnet.errors import ConfigError
from mlrsnet.schedules.optim import resolve_optimizer
from mlrsnet.schedules.registry import (
    get_schedule,
    params_as_dict,
    parse_params,
    schedule_names,
    schedule_node,
    simplicity_order,
)

TASK = ["+task=digits_mlp", "task.train_fraction=0.05", "batch_size=16", "epochs=1", "progress=false"]
SGDM_BASELINES = ("fixed", "step", "multistep", "exponential", "sgdr", "cosine")


def raw_of(*overrides: str, config: str = "train") -> dict:
    return OmegaConf.to_container(compose(config, [*TASK, *overrides]), resolve=True)


def cfg_of(*overrides: str, config: str = "train"):
    return parse_config(raw_of(*overrides, config=config), config)


def test_every_schedule_has_a_node_in_the_group_format():
    assert not (resources.files("mlrsnet.conf") / "schedule").is_dir()  # no YAML files to keep in sync
    for name in schedule_names():
        node = schedule_node(name)
        assert list(node)[:2] == ["name", "optimizer"] and node["name"] == name
        assert isinstance(node["optimizer"], dict) and node["optimizer"] == get_schedule(name).optimizer
        fields = {f.name: f.default for f in dataclasses.fields(get_schedule(name).params)}
        assert set(node) - {"name", "optimizer"} == set(fields), name
        assert node["safe"] is False  # every schedule declares safe


@pytest.mark.parametrize("name", schedule_names())
def test_every_declared_schedule_composes_and_builds(name):
    raw = raw_of(f"schedule={name}")
    assert raw["schedule"] == schedule_node(name)  # what schedule=<name> composes is the declaration's node
    cfg = parse_config(raw, "train")
    assert isinstance(cfg.schedule, ScheduleChoice)
    assert cfg.schedule.name == name and cfg.schedule.optimizer == get_schedule(name).optimizer
    assert isinstance(cfg.schedule.params, get_schedule(name).params)
    run = build_run(cfg)
    assert run.schedule == name and run.driver is not None
    assert run.info["schedule_params"] == params_as_dict(cfg.schedule.params)


def test_cosine_with_its_parameter_on_the_command_line():
    cfg = cfg_of("schedule=cosine", "schedule.eta_min=0.001")
    assert cfg.schedule.params.eta_min == 0.001
    assert params_as_dict(cfg.schedule.params) == {"eta_min": 0.001}
    run = build_run(cfg)
    assert run.schedule == "cosine" and run.driver.scheduler.eta_min == 0.001
    assert run.optimizer.param_groups[0]["momentum"] == 0.9
    assert run.info["optimizer"] == "SGD(momentum=0.9, wd=0.0005)"


@pytest.mark.parametrize(("overrides", "name", "expected"), [
    (["schedule=step", "schedule.gamma=0.5", "schedule.step_size=7"], "step", {"gamma": 0.5, "step_size": 7}),
    (["schedule=multistep", "schedule.milestones=[2,3]"], "multistep", {"milestones": [2, 3]}),
    (["schedule=sgdr", "schedule.T_0=4", "schedule.T_mult=1"], "sgdr", {"T_0": 4, "T_mult": 1}),
    (["schedule=greedy", "schedule.patience=3", "schedule.factor=0.5"], "greedy", {"patience": 3, "factor": 0.5}),
    (["schedule=mlrsnet_frozen", "schedule.gamma=0.002"], "mlrsnet_frozen", {"gamma": 0.002}),
    (["schedule=marthe", "schedule.mu=0.5"], "marthe", {"mu": 0.5}),
    (["schedule=cosine", "schedule.safe=true"], "cosine", {"safe": True}),
])
def test_schedule_overrides_reach_the_typed_params(overrides, name, expected):
    params = cfg_of(*overrides).schedule.params
    assert type(params) is get_schedule(name).params
    assert {k: getattr(params, k) for k in expected} == expected


def test_mlrsnet_runs_sgd_without_momentum_meta_trained_and_frozen():
    for name in ("mlrsnet", "mlrsnet_frozen"):
        assert get_schedule(name).optimizer == {"momentum": 0.0}
        run = build_run(cfg_of(f"schedule={name}"))
        assert run.optimizer.param_groups[0]["momentum"] == 0.0, name
    assert cfg_of().schedule.name == "mlrsnet"  # the default of mlrsnet.train


def test_baselines_keep_sgdm_and_an_explicit_momentum_applies_to_every_schedule():
    for name in SGDM_BASELINES:
        assert get_schedule(name).optimizer == {"momentum": 0.9}, name
        assert build_run(cfg_of(f"schedule={name}")).optimizer.param_groups[0]["momentum"] == 0.9, name
    for name in ("mlrsnet", "cosine"):
        run = build_run(cfg_of(f"schedule={name}", "optimizer.momentum=0.5"))
        assert run.optimizer.param_groups[0]["momentum"] == 0.5
    run = build_run(cfg_of("schedule=cosine", "schedule.optimizer.momentum=0.0"))
    assert run.optimizer.param_groups[0]["momentum"] == 0.0


def test_another_schedule_of_a_run_uses_its_own_declaration():
    cfg = cfg_of("schedule=cosine", "schedule.eta_min=0.001")
    assert params_as_dict(schedule_choice(cfg, "multistep").params) == {}
    assert schedule_choice(cfg, "multistep").optimizer == {"momentum": 0.9}
    assert schedule_choice(cfg, "mlrsnet").optimizer == {"momentum": 0.0}
    assert schedule_choice(cfg, "cosine").params.eta_min == 0.001  # the chosen one as composed
    assert build_run(cfg, schedule="mlrsnet").optimizer.param_groups[0]["momentum"] == 0.0


def test_transfer_compares_each_baseline_under_its_own_defaults():
    cfg = parse_config(compose("transfer", ["+query=digits_mlp", "epochs=1", "progress=false",
                                            "compare=[multistep,cosine]"]), "transfer")
    assert cfg.optimizer.momentum is None
    for name, momentum in (("multistep", 0.9), ("cosine", 0.9), ("mlrsnet", 0.0), ("mlrsnet_frozen", 0.0)):
        assert resolve_optimizer(cfg.optimizer, schedule_choice(cfg, name).optimizer).momentum == momentum


def test_schedule_params_is_a_deprecated_alias_that_still_works():
    cfg = cfg_of("schedule=cosine", "+schedule_params.cosine.eta_min=0.002")
    assert params_as_dict(cfg.schedule.params) == {"eta_min": 0.002}
    cfg = cfg_of("schedule=cosine", "+schedule_params.step.gamma=0.5")
    assert schedule_choice(cfg, "step").params.gamma == 0.5


def test_node_defaults_and_bad_shapes():
    assert schedule_node("multistep")["optimizer"] == {"momentum": 0.9}
    # A name without a declaration is no schedule (a schedule without a file once ran with the base optimiser).
    with pytest.raises(ConfigError, match="unknown schedule 'no_such'; use one of: "):
        schedule_node("no_such")
    raw = raw_of("schedule=cosine")
    with pytest.raises(ConfigError, match="schedule.optimizer must be a mapping"):
        parse_config({**raw, "schedule": {**raw["schedule"], "optimizer": 3}}, "train")
    with pytest.raises(ConfigError, match="optimizer.momentum must be"):
        build_run(cfg_of("optimizer.momentum=-1"))
    with pytest.raises(ConfigError, match="schedule.optimizer has no key momentun"):
        build_run(cfg_of("schedule=cosine", "+schedule.optimizer.momentun=0.5"))


def test_unknown_or_bad_params_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"^unknown config key schedule\.eta_mn; did you mean schedule\.eta_min\?$"):
        cfg_of("schedule=cosine", "+schedule.eta_mn=0.1")
    with pytest.raises(ConfigError, match=r"^unknown config key schedule_params\.step\.gama"):
        schedule_choice(cfg_of("schedule=cosine", "+schedule_params.step.gama=0.5"), "step")
    with pytest.raises(ConfigError, match=r"^schedule\.gamma must be positive, got -1"):
        cfg_of("schedule=step", "schedule.gamma=-1")
    with pytest.raises(ConfigError, match=r"^schedule\.safe must be true or false"):
        cfg_of("schedule=step", "schedule.safe=bogus")
    with pytest.raises(ConfigError, match="x.warmup_start_factor must be in"):
        parse_params("cosine", {"warmup_start_factor": 2.0}, "x.")
    with pytest.raises(ConfigError) as info:
        cfg_of("schedule=mlrsnet_frozen", "schedule.gamma=bogus")
    assert "\n" not in str(info.value) and "schedule.gamma" in str(info.value)


def test_the_simplicity_order_has_every_schedule_once():
    order = simplicity_order()
    assert sorted(order) == schedule_names() and len(order) == len(set(order))
    ranks = [get_schedule(name).simplicity for name in order]
    assert ranks == sorted(ranks)
    assert order[0] == "fixed" and order[-1] == "mlrsnet"
    assert order.index("cosine") < order.index("greedy") < order.index("mlrsnet_frozen")


@pytest.mark.parametrize(("task", "policy"), [("digits_cnn", "digits"), ("nmf_synthetic", "nmf")])
def test_a_shipped_rl_policy_schedules_under_the_optimiser_it_was_trained_with(task, policy):
    # `mlrsnet.rl train` runs its episodes under conf/rl.yaml's base schedule (fixed: SGDM where the task
    # leaves momentum open); the rl schedule must hand the frozen policy the same optimiser, or it acts on
    # dynamics it never saw (a digits policy trained under SGDM 0.9 lost 0.8 points under momentum 0).
    import torch

    from mlrsnet.schedules.rl_policy import SHIPPED_POLICIES

    path = resources.files("mlrsnet.schedules") / "policies" / SHIPPED_POLICIES[policy]
    stored = torch.load(str(path), map_location="cpu", weights_only=False)["config"]["optimizer"]
    trained = parse_config(compose("rl", [f"+task={task}", "progress=false"]), "rl")
    bench = parse_config(compose("train", [f"+task={task}", "schedule=rl", f"schedule.policy={policy}",
                                           "progress=false"]), "train")
    assert trained.schedule.name == "fixed" and bench.schedule.name == "rl"
    for cfg in (trained, bench):
        run = build_run(cfg)
        group = run.optimizer.param_groups[0]
        assert (group["momentum"], group["weight_decay"]) == (stored["momentum"], stored["weight_decay"]), task


def test_a_schedule_override_reaches_the_built_scheduler():
    run = build_run(cfg_of("schedule=step", "schedule.gamma=0.5", "schedule.step_size=2"))
    assert run.driver.scheduler.gamma == 0.5 and run.driver.scheduler.step_size == 2
    assert run.info["schedule_params"] == {"gamma": 0.5, "step_size": 2}
