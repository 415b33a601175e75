"""The `schedule` config group: one conf/schedule/<name>.yaml per schedule with its parameters and the
optimiser it runs with; momentum 0 under MLR-SNet (the reference code), SGDM 0.9 for the baselines."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml

from mlrsnet.engine.build import build_run, to_plain, validate
from mlrsnet.engine.cli import compose
from mlrsnet.errors import ConfigError
from mlrsnet.schedules.drivers import schedule_names
from mlrsnet.schedules.spec import resolve_optimizer, schedule_file, schedule_spec

TASK = ["+task=digits_mlp", "task.train_fraction=0.05", "batch_size=16", "epochs=1", "progress=false"]


def cfg_of(*overrides: str, config: str = "train") -> dict:
    return to_plain(compose(config, [*TASK, *overrides]))


def test_every_schedule_has_a_file_in_the_group_format():
    root = resources.files("mlrsnet.conf") / "schedule"
    for name in schedule_names():
        path = root / f"{name}.yaml"
        assert path.is_file(), f"conf/schedule/{name}.yaml is missing"
        data = yaml.safe_load(path.read_text())
        assert list(data)[:2] == ["name", "optimizer"] and data["name"] == name
        assert isinstance(data["optimizer"], dict)


def test_cosine_with_its_parameter_on_the_command_line():
    cfg = cfg_of("schedule=cosine", "schedule.eta_min=0.001")
    validate(cfg)
    assert schedule_spec(cfg).params == {"eta_min": 0.001}
    run = build_run(cfg)
    assert run.schedule == "cosine" and run.driver.scheduler.eta_min == 0.001
    assert run.optimizer.param_groups[0]["momentum"] == 0.9
    assert run.info["optimizer"] == "SGD(momentum=0.9, wd=0.0005)"


def test_mlrsnet_runs_sgd_without_momentum_meta_trained_and_frozen():
    for name in ("mlrsnet", "mlrsnet_frozen"):
        run = build_run(cfg_of(f"schedule={name}"))
        assert run.optimizer.param_groups[0]["momentum"] == 0.0, name
    assert cfg_of()["schedule"]["name"] == "mlrsnet"  # the default of mlrsnet.train


def test_baselines_keep_sgdm_and_an_explicit_momentum_applies_to_every_schedule():
    for name in ("fixed", "step", "multistep", "exponential", "sgdr", "cosine"):
        assert build_run(cfg_of(f"schedule={name}")).optimizer.param_groups[0]["momentum"] == 0.9, name
    for name in ("mlrsnet", "cosine"):
        run = build_run(cfg_of(f"schedule={name}", "optimizer.momentum=0.5"))
        assert run.optimizer.param_groups[0]["momentum"] == 0.5
    run = build_run(cfg_of("schedule=cosine", "schedule.optimizer.momentum=0.0"))
    assert run.optimizer.param_groups[0]["momentum"] == 0.0


def test_another_schedule_of_a_run_uses_its_own_file():
    cfg = cfg_of("schedule=cosine", "schedule.eta_min=0.001")
    assert schedule_spec(cfg, "multistep").params == {}
    assert schedule_spec(cfg, "multistep").optimizer == {"momentum": 0.9}
    assert schedule_spec(cfg, "mlrsnet").optimizer == {"momentum": 0.0}
    assert build_run(cfg, schedule="mlrsnet").optimizer.param_groups[0]["momentum"] == 0.0


def test_transfer_compares_each_baseline_under_its_own_defaults():
    cfg = to_plain(compose("transfer", ["+query=digits_mlp", "epochs=1", "progress=false",
                                        "compare=[multistep,cosine]"]))
    assert cfg["optimizer"]["momentum"] is None
    for name, momentum in (("multistep", 0.9), ("cosine", 0.9), ("mlrsnet", 0.0)):
        assert resolve_optimizer(cfg["optimizer"], schedule_spec(cfg, name).optimizer)["momentum"] == momentum


def test_schedule_params_is_a_deprecated_alias_that_still_works():
    cfg = cfg_of("schedule=cosine", "+schedule_params.cosine.eta_min=0.002")
    assert schedule_spec(cfg).params == {"eta_min": 0.002}


def test_file_defaults_and_bad_shapes():
    assert schedule_file("multistep")["optimizer"] == {"momentum": 0.9}
    assert schedule_file("no_such")["optimizer"] == {}
    cfg = cfg_of("schedule=cosine")
    with pytest.raises(ConfigError, match="schedule.optimizer must be a mapping"):
        schedule_spec({**cfg, "schedule": {**cfg["schedule"], "optimizer": 3}})
    with pytest.raises(ConfigError, match="optimizer.momentum must be >= 0"):
        build_run(cfg_of("optimizer.momentum=-1"))


@pytest.mark.parametrize(("task", "policy"), [("digits_cnn", "digits"), ("nmf_synthetic", "nmf")])
def test_a_shipped_rl_policy_schedules_under_the_optimiser_it_was_trained_with(task, policy):
    # `mlrsnet.rl train` runs its episodes under conf/rl.yaml's base schedule (fixed: SGDM where the task
    # leaves momentum open); the rl schedule must hand the frozen policy the same optimiser, or it acts on
    # dynamics it never saw (a digits policy trained under SGDM 0.9 lost 0.8 points under momentum 0).
    import torch

    from mlrsnet.schedules.rl_policy import SHIPPED_POLICIES

    path = resources.files("mlrsnet.schedules") / "policies" / SHIPPED_POLICIES[policy]
    stored = torch.load(str(path), map_location="cpu", weights_only=False)["config"]["optimizer"]
    trained = to_plain(compose("rl", [f"+task={task}", "progress=false"]))
    bench = to_plain(compose("train", [f"+task={task}", "schedule=rl", f"schedule.policy={policy}",
                                       "progress=false"]))
    for cfg in (trained, bench):
        run = build_run(cfg)
        group = run.optimizer.param_groups[0]
        assert (group["momentum"], group["weight_decay"]) == (stored["momentum"], stored["weight_decay"]), task
