"""Multi-task meta-training (issue 34): ``python -m mlrsnet.train +family=NAME`` meta-trains one MLR-SNet while the
family's tasks train side by side; resume, outputs, the bundle, and the bad-input rules."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from omegaconf import OmegaConf

from mlrsnet.checkpoint import load_nets
from mlrsnet.engine.family import FamilyPlan, parse_family
from mlrsnet.engine.log import read_metrics
from mlrsnet.engine.resume import load_run_state
from mlrsnet.errors import ConfigError, RunInterrupted
from mlrsnet.schedules.scheduler import MLRSNetScheduler
from mlrsnet.train import meta_train, validate
from tests.conftest import compose, run_cli, signal_at

TINY = ["+family=tiny", "threads=1", "progress=false"]


def records(run_dir) -> dict[str, list[dict]]:
    """metrics.jsonl without the wall-clock field, per member in the order written (the members' step lines are
    written at their epoch ends and saves, so lines of different members interleave by when those came)."""
    out: dict[str, list[dict]] = {}
    for r in read_metrics(run_dir / "metrics.jsonl"):
        out.setdefault(r["task"], []).append({k: v for k, v in r.items() if k != "epoch_time"})
    return out


def plain(overrides: list[str]) -> dict:
    """The composed config as a plain, resolved mapping (to edit the family's members)."""
    return OmegaConf.to_container(compose(overrides=overrides), resolve=True)


def interrupted(monkeypatch, overrides: list[str], run_dir, at: int) -> dict:
    """Run the family with a SIGTERM at the ``at``-th step; check the stop (exit code 75) and return the saved
    state."""
    signal_at(monkeypatch, at)
    with pytest.raises(RunInterrupted, match="stopped by SIGTERM") as info:
        meta_train(compose(overrides=overrides), run_dir)
    monkeypatch.undo()
    assert info.value.exit_code == 75
    return load_run_state(run_dir / "run_state.pt")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("family") / "tiny"
    return run_dir, meta_train(compose(overrides=TINY), run_dir)


def test_a_family_validates_into_each_members_own_config():
    plan = validate(compose(overrides=[*TINY, "seed=3", "net.hidden_size=20", "meta.lr=0.002"]))
    assert isinstance(plan, FamilyPlan) and list(plan.members) == ["digits_mlp", "nmf_synthetic"]
    digits, nmf = plan.members["digits_mlp"], plan.members["nmf_synthetic"]
    assert (digits.task.name, nmf.task.name) == ("digits_mlp", "nmf_synthetic")
    assert (digits.batch_size, nmf.batch_size) == (32, 16)  # each its own task file's, then its overrides
    assert digits.task.train_fraction == 0.3 and nmf.task.rows == 60
    for member in (digits, nmf):  # the family level sets the run keys and the shared net
        assert (member.seed, member.threads, member.net.hidden_size, member.meta.lr) == (3, 1, 20, 0.002)


def test_the_family_run_writes_tagged_metrics_member_summaries_and_a_bundle(tiny_run):
    run_dir, summary = tiny_run
    assert summary["family"] == "tiny" and set(summary["members"]) == {"digits_mlp", "nmf_synthetic"}
    lines = read_metrics(run_dir / "metrics.jsonl")
    assert {r["task"] for r in lines} == {"digits_mlp", "nmf_synthetic"}
    epochs = [r for r in lines if r["type"] == "epoch"]
    assert sorted((r["task"], r["epoch"]) for r in epochs) == [("digits_mlp", 1), ("digits_mlp", 2),
                                                              ("nmf_synthetic", 1), ("nmf_synthetic", 2)]
    for name in ("digits_mlp", "nmf_synthetic"):
        member = json.loads((run_dir / "members" / name / "summary.json").read_text())
        assert member["task"] == name and member["epochs"] == 2 and member["status"] == "complete"
        assert member["gamma"] == summary["members"][name]["gamma"]
    # gamma per member, from its own L0 and C
    assert summary["members"]["digits_mlp"]["gamma"] != summary["members"]["nmf_synthetic"]["gamma"]
    state = load_run_state(run_dir / "run_state.pt")
    members = state["members"]
    carried = [members[n]["training"]["driver"]["state"][0] for n in ("digits_mlp", "nmf_synthetic")]
    assert not torch.equal(*carried)  # one LSTM state per member
    assert torch.equal(members["digits_mlp"]["training"]["net"]["head.weight"],
                       members["nmf_synthetic"]["training"]["net"]["head.weight"])  # one net


def test_the_bundle_records_the_family_and_loads_like_any_bundle(tiny_run):
    run_dir, summary = tiny_run
    nets, meta = load_nets(run_dir / "mlrsnet_bundle.pt")
    assert len(nets) == len(summary["bundle"]["epochs"]) and meta["family"] == "tiny"
    assert meta["members"] == ["digits_mlp", "nmf_synthetic"]
    assert set(meta["member_gammas"]) == {"digits_mlp", "nmf_synthetic"}
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = MLRSNetScheduler(opt, run_dir / "mlrsnet_bundle.pt", total_steps=4, initial_loss=2.3)
    for _ in range(4):
        loss = model(torch.ones(1, 3)).pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step(loss.detach())
    assert all(lr > 0 for lr in sched.get_last_lr())


@pytest.mark.parametrize("sampling,stop_at", [("round_robin", 11), ("proportional", 17)])
def test_interrupt_then_resume_gives_the_numbers_of_an_uninterrupted_run(tmp_path, monkeypatch, sampling, stop_at):
    overrides = [*TINY, f"family.sampling={sampling}"]
    reference = meta_train(compose(overrides=overrides), tmp_path / "ref")
    state = interrupted(monkeypatch, overrides, tmp_path / "run", stop_at)
    assert state["global_step"] == stop_at
    taken = {name: m["global_step"] for name, m in state["members"].items()}
    if sampling == "round_robin":  # in turn, from the first member
        assert taken == {"digits_mlp": 6, "nmf_synthetic": 5}
    else:  # each at its share of its own budget (20 and 6 steps)
        assert abs(taken["digits_mlp"] / 20 - taken["nmf_synthetic"] / 6) <= 1 / 6
    assert any(m["progress"] is not None for m in state["members"].values())  # stopped inside an epoch

    resumed = meta_train(compose(overrides=overrides), tmp_path / "run")
    assert records(tmp_path / "run") == records(tmp_path / "ref")
    for name, member in reference["members"].items():
        assert resumed["members"][name] == member
    assert resumed["bundle"]["sha256"] != ""  # written once the run is complete
    ref_nets, _ = load_nets(tmp_path / "ref" / "mlrsnet_bundle.pt")
    nets, _ = load_nets(tmp_path / "run" / "mlrsnet_bundle.pt")
    for a, b in zip(ref_nets, nets, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_proportional_sampling_finishes_the_members_together(tmp_path):
    meta_train(compose(overrides=[*TINY, "family.sampling=proportional"]), tmp_path / "run")
    steps = [r["task"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["type"] == "step"]
    # digits: 20 steps, nmf: 6; in proportion, nmf's last step comes in the last quarter
    last_nmf = max(i for i, t in enumerate(steps) if t == "nmf_synthetic")
    assert last_nmf >= 0.75 * len(steps)


def test_an_unknown_task_in_a_family_is_one_line():
    cfg = plain(TINY)
    cfg["family"]["members"]["mystery"] = {"task": "no_such_task"}
    with pytest.raises(ConfigError, match="member mystery names unknown task 'no_such_task'") as info:
        parse_family(cfg)
    assert "\n" not in str(info.value) and info.value.exit_code == 2


def test_a_family_of_one_task_is_one_line():
    cfg = plain(TINY)
    del cfg["family"]["members"]["nmf_synthetic"]
    with pytest.raises(ConfigError, match="has 1 member.*two tasks or more") as info:
        parse_family(cfg)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("task,module,extra", [("gpt_finetune_stdlib", "transformers", "llm"),
                                               ("snn_digits", "snntorch", "snn")])
def test_a_member_that_needs_a_missing_extra_names_it(monkeypatch, task, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    cfg = plain(TINY)
    cfg["family"]["members"][task] = {}
    with pytest.raises(ConfigError, match=rf"needs the {extra} extra .*pip install 'mlrsnet\[{extra}\]'") as info:
        parse_family(cfg)
    assert "\n" not in str(info.value)


def test_a_member_key_at_the_family_level_is_refused():
    with pytest.raises(ConfigError, match="epochs is set per member in a family run"):
        validate(compose(overrides=[*TINY, "epochs=3"]))
    cfg = plain(TINY)
    cfg["family"]["overrides"] = ["no_such_key=1"]
    with pytest.raises(ConfigError, match="family tiny, member digits_mlp: .*no_such_key"):
        parse_family(cfg)


def test_a_resume_under_another_family_config_is_refused(tmp_path, monkeypatch):
    interrupted(monkeypatch, TINY, tmp_path / "run", 5)
    with pytest.raises(ConfigError, match="family.sampling"):
        meta_train(compose(overrides=[*TINY, "family.sampling=proportional"]), tmp_path / "run")


@pytest.mark.slow
def test_the_command_line_runs_a_family_and_refuses_bad_ones(tmp_path):
    bad = run_cli(["mlrsnet.train", "+family=tiny", "~family.members.nmf_synthetic",
                   f"hydra.run.dir={tmp_path / 'bad'}"], cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "two tasks or more" in bad.stderr
    assert not (tmp_path / "bad").exists()
    both = run_cli(["mlrsnet.train", "+family=tiny", "+task=digits_mlp"], cwd=tmp_path)
    assert both.returncode == 2 and "not both" in both.stderr
    ok = run_cli(["mlrsnet.train", *TINY, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "done: family tiny" in ok.stdout
    transfer = run_cli(["mlrsnet.transfer", "+query=digits_mlp", f"checkpoint={tmp_path / 'run' / 'mlrsnet_bundle.pt'}",
                        "epochs=1", "threads=1", "task.train_fraction=0.3", f"hydra.run.dir={tmp_path / 'transfer'}"],
                       cwd=tmp_path)
    assert transfer.returncode == 0, transfer.stderr[-2000:]


def test_a_diverging_member_rolls_the_family_back_then_stops_naming_it(tmp_path):
    from mlrsnet.errors import DivergenceError

    overrides = [*TINY, "guard.lr_max=0.01", "guard.on_divergence=rollback", "guard.max_rollbacks=1"]
    with pytest.raises(DivergenceError, match="family member nmf_synthetic diverged") as info:
        meta_train(compose(overrides=overrides), tmp_path / "run")
    assert info.value.exit_code == 3 and "\n" not in str(info.value)
    actions = [r["action"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["type"] == "divergence"]
    assert actions == ["rollback", "stop"]
    state = load_run_state(tmp_path / "run" / "run_state.pt")
    assert state["rollbacks"] == 1
    gammas = {n: m["gamma"] for n, m in state["members"].items()}  # the rolled-back member's gamma is halved
    assert gammas["nmf_synthetic"] == pytest.approx(0.5 * 0.5663373470306396, rel=1e-5)
