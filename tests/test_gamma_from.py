"""The language-model convention of the gamma formula: the reference's language-modeling meta_train.py
computes gamma = sqrt(P0) ln(P0 V) / (4 V^0.25) from the initial training *perplexity* P0 (V the vocabulary
size); its image code passes the loss. ``gamma_from=auto`` follows that per task, in meta-training and in
the transfer's recompute; ``gamma_from=loss`` restores the loss for a language model."""

import math

import pytest
import torch

from mlrsnet.checkpoint import save_mlrsnet
from mlrsnet.engine.build import initial_loss
from mlrsnet.engine.config import parse_config
from mlrsnet.errors import ConfigError
from mlrsnet.net import MLRSNet, compute_gamma, gamma_statistic, recomputed_gamma
from mlrsnet.schedules.catalog.mlrsnet import build_net
from mlrsnet.schedules.scheduler import MLRSNetScheduler
from mlrsnet.schedules.spec import BuildContext
from mlrsnet.tasks import build_task
from mlrsnet.train import meta_train
from mlrsnet.transfer import transfer
from tests.conftest import compose, run_cli

SMALL_TEXT = ["task.max_chars=12000", "batch_size=8", "task.model_kwargs.hidden_size=32", "epochs=1",
              "progress=false"]


def test_gamma_statistic_per_convention():
    assert gamma_statistic(2.0, "loss", "perplexity") == 2.0
    assert gamma_statistic(2.0, "perplexity", "accuracy") == pytest.approx(math.exp(2.0))
    assert gamma_statistic(2.0, "auto", "perplexity") == pytest.approx(math.exp(2.0))
    assert gamma_statistic(2.0, "auto", "accuracy") == 2.0
    assert math.isfinite(gamma_statistic(1e4, "perplexity"))  # no overflow
    with pytest.raises(ValueError, match="gamma_from"):
        gamma_statistic(2.0, "ppl")


def test_reference_language_model_gamma_is_several_times_the_loss_formula():
    """A fresh character LM (V = 105, P0 = V): the reference's gamma is ~7.4, the loss formula's ~1.0."""
    v = 105
    p0 = float(v)
    ref = math.sqrt(p0) * math.log(p0 * v) / v ** 0.25 / 4  # meta-train/language-modeling/meta_train.py
    assert compute_gamma(gamma_statistic(math.log(v), "auto", "perplexity"), v) == pytest.approx(ref)
    assert compute_gamma(math.log(v), v) < ref / 5


def _net(cfg, task, model, l0):
    """The fresh MLR-SNet schedule=mlrsnet builds for a run of ``cfg`` with initial loss ``l0``."""
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.optimizer.lr)
    ctx = BuildContext(optimizer, model, task, cfg.epochs * task.steps_per_epoch, task.steps_per_epoch, l0=l0,
                       net=cfg.net, meta=cfg.meta, device=torch.device("cpu"))
    return build_net(ctx)


def test_meta_training_a_language_model_takes_gamma_from_the_initial_perplexity():
    cfg = parse_config(compose("train", ["+task=text_lstm_cpython", *SMALL_TEXT]), "train")
    task = build_task(cfg.task, 0, "cpu")
    torch.manual_seed(0)
    model = task.build_model()
    l0 = initial_loss(task, model, 0)
    v = task.info.num_classes
    net = _net(cfg, task, model, l0)
    assert float(net.gamma) == pytest.approx(compute_gamma(math.exp(l0), v), rel=1e-6)
    cfg.net.gamma_from = "loss"
    assert float(_net(cfg, task, model, l0).gamma) == pytest.approx(compute_gamma(l0, v))
    digits = parse_config(compose("train", ["+task=digits_mlp", "task.train_fraction=0.3", "progress=false"]),
                          "train")
    dtask = build_task(digits.task, 0, "cpu")
    dmodel = dtask.build_model()
    dl0 = initial_loss(dtask, dmodel, 0)
    assert float(_net(digits, dtask, dmodel, dl0).gamma) == pytest.approx(compute_gamma(dl0, 10))


def test_train_rejects_an_unknown_gamma_from(tmp_path):
    with pytest.raises(ConfigError, match="net.gamma_from"):
        meta_train(compose("train", ["+task=digits_mlp", "net.gamma_from=ppl", "progress=false"]), tmp_path)


@pytest.mark.parametrize("gamma_from", ["auto", "loss"])
@pytest.mark.slow
def test_text_transfer_recomputes_gamma_from_the_perplexity(tmp_path, gamma_from):
    torch.manual_seed(0)
    path = tmp_path / "net.pt"
    save_mlrsnet(path, MLRSNet(gamma=0.5), task="digits_mlp")
    summary = transfer(compose("transfer", ["+query=text_lstm", f"checkpoint={path}", f"gamma_from={gamma_from}",
                                            *SMALL_TEXT]), tmp_path / "run")
    assert summary["gamma_mode"] == "recompute"
    v = round(math.exp(summary["loss_scale"]))
    stat = math.exp(summary["swap_losses"][0]) if gamma_from == "auto" else summary["swap_losses"][0]
    assert summary["gamma_from"] == ("perplexity" if gamma_from == "auto" else "loss")
    assert summary["gammas"][0] == pytest.approx(recomputed_gamma(stat, v), rel=1e-6)


def test_transfer_rejects_an_unknown_gamma_from(tmp_path):
    with pytest.raises(ConfigError, match="gamma_from"):
        transfer(compose("transfer", ["+query=digits_mlp", "gamma_from=ppl", "progress=false"]), tmp_path)


def test_scheduler_recompute_from_the_perplexity_in_a_users_loop():
    torch.manual_seed(0)
    net = MLRSNet(gamma=0.5)
    opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    a = MLRSNetScheduler(opt, net, num_classes=100, initial_loss=4.0, gamma_from="perplexity", scale="recompute")
    assert a.gammas[0] == pytest.approx(recomputed_gamma(math.exp(4.0), 100))
    b = MLRSNetScheduler(opt, net, num_classes=100, initial_loss=4.0, scale="recompute")
    assert b.gammas[0] == pytest.approx(recomputed_gamma(4.0, 100))
    with pytest.raises(ValueError, match="gamma_from"):
        MLRSNetScheduler(opt, net, num_classes=100, gamma_from="auto")


@pytest.mark.slow
def test_a_bad_gamma_from_of_the_frozen_schedule_is_one_line_on_the_command_line(tmp_path):
    # The schedule group's gamma_from (a frozen bundle scheduling a train/bench run) is checked where the
    # driver is built: exit 2, one line naming the value and the fix, no traceback.
    proc = run_cli(["mlrsnet.train", "+task=digits_mlp", "schedule=mlrsnet_frozen", "schedule.gamma_from=ppl",
                    "epochs=1", "progress=false", "hydra.run.dir=run"], cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "'ppl'" in lines[0] and "gamma_from=auto" in lines[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_l0_over_the_whole_training_split_as_the_reference(tmp_path):
    """L0 (and so gamma) from the whole training split in eval mode by default, as the reference's
    meta_train.py; net.l0_over=batches takes 4 random training batches."""
    overrides = ["+task=digits_mlp", "task.train_fraction=0.3", "epochs=1", "progress=false"]
    summary = meta_train(compose("train", overrides), tmp_path / "a")
    cfg = parse_config(compose("train", overrides), "train")
    task = build_task(cfg.task, 0, "cpu")
    torch.manual_seed(0)
    model = task.build_model()
    full = task.evaluate(model, "train")["loss"]
    assert summary["initial_loss"] == pytest.approx(full, rel=1e-6)
    assert initial_loss(task, model, 0) == pytest.approx(full, rel=1e-6)
    batches = initial_loss(task, model, 0, "batches")
    assert abs(batches - full) > 1e-6
    assert meta_train(compose("train", [*overrides, "net.l0_over=batches"]), tmp_path / "b")["initial_loss"] == (
        pytest.approx(batches, rel=1e-6))
    with pytest.raises(ConfigError, match="net.l0_over='all' is not one of train, train_augmented, batches"):
        meta_train(compose("train", [*overrides, "net.l0_over=all"]), tmp_path / "c")
