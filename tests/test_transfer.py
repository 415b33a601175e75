"""`mlrsnet.transfer`: meta-train -> save -> load round trip, queries, baselines, outputs and errors."""

import json
import math

import pytest
import torch

from mlrsnet.checkpoint import DEFAULT_CHECKPOINT, save_mlrsnet
from mlrsnet.engine.build import initial_loss
from mlrsnet.engine.cli import available_configs
from mlrsnet.engine.config import parse_config
from mlrsnet.engine.log import read_metrics
from mlrsnet.engine.loop import LoopConfig, train_loop
from mlrsnet.errors import CheckpointError, ConfigError
from mlrsnet.io import file_sha256, save
from mlrsnet.meta.engine import MetaEngine
from mlrsnet.net import MLRSNet, MLRSNetConfig, recomputed_gamma
from mlrsnet.rng import seed_everything
from mlrsnet.schedules.catalog.mlrsnet import build_net
from mlrsnet.schedules.drivers import MLRSNetDriver
from mlrsnet.schedules.optim import build_base_optimizer, resolve_optimizer
from mlrsnet.schedules.spec import BuildContext
from mlrsnet.tasks import available_datasets, build_task
from mlrsnet.transfer import transfer, validate_transfer
from tests.conftest import compose, run_cli

TINY = ["epochs=1", "task.train_fraction=0.3", "progress=false"]


@pytest.fixture(scope="module")
def meta_trained(tmp_path_factory):
    """A net meta-trained in memory for one short epoch, and its checkpoint."""
    cfg = parse_config(compose("train", ["+task=digits_mlp", *TINY]), "train")
    seed_everything(0)
    task = build_task(cfg.task, 0, "cpu")
    torch.manual_seed(0)
    model = task.build_model()
    optimizer = build_base_optimizer(model.parameters(), resolve_optimizer(cfg.optimizer, {}))
    net = build_net(BuildContext(optimizer, model, task, cfg.epochs * task.steps_per_epoch, task.steps_per_epoch,
                                 l0=initial_loss(task, model, 0), net=cfg.net, device=torch.device("cpu")))
    engine = MetaEngine(net, task, model, optimizer, backend="exact", K=1, meta_lr=1e-2, meta_weight_decay=0.0)
    train_loop(task, model, optimizer, MLRSNetDriver(net, optimizer), LoopConfig(epochs=1, progress=False),
               engine=engine)
    path = tmp_path_factory.mktemp("ckpt") / "mlrsnet.pt"
    save_mlrsnet(path, net, task=task.info.name)
    net.reset_state()
    return net, path


def replay(net: MLRSNet, losses: list[float], loss_scale: float = 1.0) -> list[float]:
    """The LRs the in-memory net emits on a loss sequence."""
    out, state = [], None
    for loss in losses:
        with torch.no_grad():
            lr, state = net(torch.tensor(loss) / loss_scale, state)
        out.append(float(lr))
    return out


def steps_of(run_dir) -> tuple[list[float], list[float]]:
    records = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["type"] == "step"]
    return [r["loss"] for r in records], [r["lr"] for r in records]


def transfer_cfg(query: str, *overrides: str) -> dict:
    tiny = ["epochs=1", "progress=false"] if query.startswith("text") else TINY
    return compose("transfer", [f"+query={query}", *tiny, *overrides])


@pytest.mark.slow
def test_meta_train_save_load_transfer_gives_the_in_memory_lr_sequence(meta_trained, tmp_path):
    net, path = meta_trained
    summary = transfer(transfer_cfg("digits_cnn", f"checkpoint={path}", "gamma=checkpoint"), tmp_path)
    losses, lrs = steps_of(tmp_path)
    assert len(lrs) == summary["steps"] > 3
    assert lrs == pytest.approx(replay(net, losses), rel=1e-6, abs=0)
    assert [c["path"] for c in summary["checkpoints"]] == [str(path.resolve())]
    assert summary["checkpoints"][0]["sha256"] == file_sha256(path)
    assert summary["gammas"] == pytest.approx([float(net.gamma)])


@pytest.mark.slow
def test_recomputed_gamma_rescales_the_same_sequence(meta_trained, tmp_path):
    net, path = meta_trained
    summary = transfer(transfer_cfg("digits_cnn", f"checkpoint={path}"), tmp_path)
    losses, lrs = steps_of(tmp_path)
    factor = summary["gammas"][0] / float(net.gamma)
    assert summary["gamma_mode"] == "recompute" and factor != pytest.approx(1.0)
    # gamma from the mean loss over the whole training split in eval mode, as the reference meta-test
    assert summary["gammas"][0] == pytest.approx(recomputed_gamma(summary["swap_losses"][0], 10))
    assert lrs == pytest.approx([lr * factor for lr in replay(net, losses)], rel=1e-6)
    assert summary["initial_loss"] == pytest.approx(math.log(10), rel=0.2)


@pytest.mark.slow
def test_text_query_feeds_the_net_the_loss_over_ln_vocab(meta_trained, tmp_path):
    net, path = meta_trained
    small = ["task.max_chars=12000", "batch_size=8", "task.model_kwargs.hidden_size=32"]
    summary = transfer(transfer_cfg("text_lstm", f"checkpoint={path}", "gamma=0.5", *small), tmp_path)
    losses, lrs = steps_of(tmp_path)
    assert summary["metric"] == "perplexity" and summary["gamma_mode"] == "fixed"
    assert 3.5 < summary["loss_scale"] < 5  # ln(vocabulary size), ~100 characters
    assert summary["initial_loss"] == pytest.approx(summary["loss_scale"], rel=0.1)
    expected = [lr * 0.5 / float(net.gamma) for lr in replay(net, losses, summary["loss_scale"])]
    assert lrs == pytest.approx(expected, rel=1e-6)


def test_multi_checkpoint_protocol_swaps_at_equal_fractions(meta_trained, tmp_path):
    net, path = meta_trained
    torch.manual_seed(3)
    other = MLRSNet(MLRSNetConfig(), gamma=float(net.gamma))
    other_path = tmp_path / "other.pt"
    save_mlrsnet(other_path, other)
    run = tmp_path / "run"
    summary = transfer(transfer_cfg("digits_mlp", f"checkpoint=[{path},{other_path}]", "gamma=checkpoint",
                                    "epochs=2"), run)
    losses, lrs = steps_of(run)
    half = summary["steps"] // 2
    expected, state = [], None
    for t, loss in enumerate(losses):
        with torch.no_grad():
            lr, state = (net if t < half else other)(torch.tensor(loss), state)
        expected.append(float(lr))
    assert lrs == pytest.approx(expected, rel=1e-6)
    assert [c["path"] for c in summary["checkpoints"]] == [str(path.resolve()), str(other_path.resolve())]


@pytest.mark.slow
def test_baselines_share_seed_init_and_data_order(tmp_path):
    summary = transfer(transfer_cfg("digits_mlp", "compare=[multistep,cosine,fixed]", "optimizer.lr=0.05"),
                       tmp_path)
    first_losses = {}
    for name in ["multistep", "cosine", "fixed"]:
        losses, lrs = steps_of(tmp_path / "compare" / name)
        first_losses[name] = losses[0]
        assert lrs[0] == pytest.approx(0.05)
    losses, _ = steps_of(tmp_path)
    assert set(first_losses.values()) == {losses[0]}
    _, cos = steps_of(tmp_path / "compare" / "cosine")
    _, const = steps_of(tmp_path / "compare" / "fixed")
    assert cos[-1] < cos[0] and set(const) == {0.05}
    assert set(summary["comparison"]) == {"mlrsnet", "multistep", "cosine", "fixed"}
    md = (tmp_path / "comparison.md").read_text()
    assert "| mlrsnet | SGD(momentum=0," in md and "| cosine | SGD(momentum=0.9," in md and "**" in md
    rows = (tmp_path / "comparison.csv").read_text().strip().splitlines()
    assert rows[0].startswith("schedule,optimizer,final_test_accuracy") and len(rows) == 5


def test_every_query_composes_and_names_a_known_dataset():
    queries = available_configs("query")
    for required in ["text_lstm", "digits_mlp", "digits_resnet", "digits_cnn_epochs10", "digits_cnn_epochs90",
                     "digits_cnn_data25", "digits_cnn_data50", "digits_cnn_sym40", "cifar10_mobilenetv2",
                     "cifar10_shufflenetv2", "cifar100_resnet", "svhn_resnet", "tinyimagenet_resnet", "ptb_lstm"]:
        assert required in queries
    for name in queries:
        cfg = parse_config(compose("transfer", [f"+query={name}"]), "transfer")
        assert cfg.query.name == name and cfg.query.axis
        assert cfg.task.dataset in available_datasets()
        assert cfg.epochs >= 1 and cfg.task.batch_size == cfg.batch_size


def test_task_keys_compose_without_a_query_for_multirun_sweeps():
    # Hydra composes a sweep's config before it knows the query: the command line passes a sweep's task keys
    # as ++task.KEY=VALUE, and each job's query then sets the task under them.
    from mlrsnet.engine.cli import _task_overrides_for_sweep

    overrides = _task_overrides_for_sweep(["task.train_fraction=0.5", "task.noise.kind=sym", "task.noise.rate=0.2",
                                           "epochs=1"])
    assert overrides[-1] == "epochs=1" and all(o.startswith("++task.") for o in overrides[:-1])
    cfg = compose("transfer", overrides)
    assert cfg.task.train_fraction == 0.5 and cfg.task.noise.rate == 0.2
    job = parse_config(compose("transfer", ["+query=digits_mlp", *overrides]), "transfer")
    assert job.task.train_fraction == 0.5 and job.task.noise.kind == "sym" and job.task.noise.rate == 0.2


def test_a_single_compare_name_is_a_list():
    cfg = validate_transfer(transfer_cfg("digits_mlp", "compare=step"))
    assert cfg.compare == ["step"]


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="gamma='paper'"):
        transfer(transfer_cfg("digits_mlp", "gamma=paper"), "unused")
    with pytest.raises(ConfigError, match="unknown schedule 'warp'"):
        transfer(transfer_cfg("digits_mlp", "compare=[warp]"), "unused")
    with pytest.raises(ConfigError, match="mlrsnet is meta-trained in place"):
        transfer(transfer_cfg("digits_mlp", "compare=[mlrsnet]"), "unused")


@pytest.mark.slow
def test_cli_end_to_end_with_the_shipped_checkpoint(tmp_path):
    r = run_cli(["mlrsnet.transfer", "+query=digits_cnn_data25", "epochs=1", "compare=[multistep]", "progress=false",
                 "hydra.run.dir=run"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    run = tmp_path / "run"
    for name in ["metrics.jsonl", "summary.json", "config.yaml", "environment.json", "lr_schedule.csv",
                 "lr_schedule.png", "comparison.md", "comparison.csv", "compare/multistep/metrics.jsonl",
                 "compare/multistep/summary.json"]:
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    shipped = summary["checkpoints"][0]
    assert summary["query"] == "digits_cnn_data25" and shipped["name"] is None
    assert shipped["path"].endswith(f"mlrsnet/checkpoints/{DEFAULT_CHECKPOINT}.pt")
    assert shipped["sha256"] == file_sha256(shipped["path"]) and len(summary["gammas"]) == 3
    assert "done: test accuracy mlrsnet" in r.stdout


@pytest.mark.parametrize("kind", ["corrupt", "foreign", "mismatch"])
@pytest.mark.slow
def test_bad_checkpoint_is_one_line_naming_the_file(tmp_path, kind):
    path = tmp_path / f"{kind}.pt"
    if kind == "corrupt":
        path.write_bytes(b"\x80\x02 truncated")
        expected = "is corrupt"
    elif kind == "foreign":
        torch.save({"weights": torch.zeros(3)}, path)
        expected = "is not an mlrsnet checkpoint"
    else:
        small = MLRSNet(MLRSNetConfig(hidden_size=20))
        save(path, "mlrsnet", {"net_config": MLRSNetConfig().to_dict(), "state_dict": small.state_dict(),
                               "gamma": 0.5})
        expected = "does not match the MLR-SNet architecture"
    with pytest.raises(CheckpointError, match=expected):
        transfer(transfer_cfg("digits_mlp", f"checkpoint={path}"), tmp_path / "api")
    if kind == "mismatch":
        r = run_cli(["mlrsnet.transfer", "+query=digits_mlp", f"checkpoint={path}", "progress=false",
                     "hydra.run.dir=run"], cwd=tmp_path)
        assert r.returncode == 2
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0] and expected in lines[0], r.stderr


@pytest.mark.slow
def test_transfer_to_adam_with_the_recomputed_gamma_warns_in_one_line_naming_gamma(tmp_path, capsys, recwarn):
    transfer(transfer_cfg("digits_mlp", "epochs=1", "optimizer.name=adam"), tmp_path / "a")
    assert not [w for w in recwarn if "MLRSNetScheduler" in str(w.message)]  # not said twice
    warning = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "optimizer.name=adam" in warning[0] and "gamma=0.002" in warning[0]
    transfer(transfer_cfg("digits_mlp", "epochs=1", "optimizer.name=adam", "gamma=0.002"), tmp_path / "b")
    transfer(transfer_cfg("digits_mlp", "epochs=1"), tmp_path / "c")  # SGD: the paper's gamma is its scale
    assert "warning:" not in capsys.readouterr().err
