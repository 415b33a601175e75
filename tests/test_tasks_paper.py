"""The paper tasks end to end on tiny files in each dataset's real on-disk format: the composed config,
the loader, the task (splits, noise, batches) and training through :func:`mlrsnet.train.meta_train`."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from mlrsnet.engine.build import apply_speed_options
from mlrsnet.engine.cli import compose
from mlrsnet.engine.config import TrainConfig, parse_config
from mlrsnet.errors import ConfigError, DataMissingError
from mlrsnet.meta.engine import MetaEngine
from mlrsnet.net import MLRSNet
from mlrsnet.schedules.drivers import MLRSNetDriver
from mlrsnet.schedules.optim import build_base_optimizer, resolve_optimizer
from mlrsnet.tasks import ClassificationTask, LanguageModelTask, Task, build_task
from mlrsnet.tasks.data import download as download_mod
from mlrsnet.tasks.data.text_corpora import UNK, load_ptb, load_wikitext2
from mlrsnet.tasks.models.mobilenetv2 import MobileNetV2
from mlrsnet.tasks.models.resnet import ResNet
from mlrsnet.train import meta_train
from tests.conftest import run_cli
from tests.fixtures_data import (
    write_cifar10,
    write_cifar100,
    write_svhn_mat,
    write_text_corpus,
    write_tinyimagenet,
)

WORDS = "the a cat dog sat ran on mat big small red blue".split()
# Data sizes per task, matched to the ``data_root`` fixture.
LM_SIZES = ["batch_size=4", "task.bptt=5", "meta.batch_size=3"]
TASKS: dict[str, list[str]] = {
    "cifar10_resnet": ["batch_size=8", "meta.batch_size=5", "task.meta_size=10"],
    "cifar100_wrn": ["batch_size=8", "meta.batch_size=20", "task.meta_size=100"],
    "svhn_resnet": ["batch_size=8", "meta.batch_size=5", "task.meta_size=10"],
    "tinyimagenet_resnet": ["batch_size=4", "meta.batch_size=3", "task.meta_size=3"],
    "ptb_lstm": LM_SIZES,
    "ptb_lstm3": LM_SIZES,
    "wikitext2_lstm": LM_SIZES,
}
# Small stand-ins for the real models, which are slow on a CPU (test_real_* train the real ones).
SMALL_CNN = ["task.model=cnn", "+task.model_kwargs.width=8"]
SMALL_LSTM = ["task.model=lstm_lm", "+task.model_kwargs.emb_size=16", "+task.model_kwargs.hidden_size=16"]
SMALL = {name: SMALL_LSTM if "lstm" in name else SMALL_CNN for name in TASKS}
SMALL["ptb_lstm3"] = [*SMALL_LSTM, "+task.model_kwargs.num_layers=3"]
# (training images, image size, classes) as written by the ``data_root`` fixture.
IMAGES = {"cifar10_resnet": (50, 32, 10), "cifar100_wrn": (200, 32, 100), "svhn_resnet": (40, 32, 10),
          "tinyimagenet_resnet": (13, 64, 3)}


def _sentences(n: int, seed: int, extra: str = "") -> str:
    """PTB-style lines: a leading space, words separated by spaces, a trailing space."""
    rng = random.Random(seed)
    return "".join(f" {' '.join(rng.choice(WORDS) for _ in range(rng.randint(3, 8)))}{extra} \n" for _ in range(n))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_cifar10(root, per_batch=10, test_labels=range(10))
    write_cifar100(root, [i % 100 for i in range(200)], range(100))
    write_svhn_mat(root / "svhn" / "train_32x32.mat", list(range(1, 11)) * 4, seed=0)
    write_svhn_mat(root / "svhn" / "test_32x32.mat", list(range(1, 11)), seed=1)
    write_tinyimagenet(root, per_class=4)
    ptb = {"train": _sentences(30, 0, " <unk>"), "valid": _sentences(20, 1), "test": _sentences(20, 2, " zebra")}
    write_text_corpus(root / "ptb", "ptb.{}.txt", ptb)
    wiki = {k: f" \n = Heading = \n \n{v} \n" for k, v in ptb.items()}
    write_text_corpus(root / "wikitext-2-raw", "wiki.{}.raw", wiki)
    return root


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """These tensors are tiny: intra-op threads gain nothing, and on a busy machine OpenMP's waiting
    threads made a 16-unit LSTM step 100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("tests must not open URLs")

    monkeypatch.setattr(download_mod.urllib.request, "urlopen", refuse)


def _cfg(name: str, root: Path, *extra: str, small: bool = True) -> TrainConfig:
    overrides = [f"+task={name}", f"data.root={root}", "data.download=false", *TASKS[name],
                 *(SMALL[name] if small else []), *extra]
    return parse_config(compose("train", overrides), "train")


def _rows(x: torch.Tensor) -> set[bytes]:
    return {bytes(r.flatten().tolist()) for r in x}


@pytest.mark.parametrize("name", IMAGES)
def test_image_task_data_splits_and_batches(data_root: Path, name: str) -> None:
    cfg = _cfg(name, data_root)
    task = build_task(cfg.task, seed=0)
    assert isinstance(task, ClassificationTask)
    n, size, classes = IMAGES[name]
    d = task.data
    meta_size, meta_bs, bs = cfg.task.meta_size, cfg.meta.batch_size, cfg.batch_size
    assert task.info.num_classes == classes
    for x in (d.train_x, d.meta_x, d.test_x):
        assert x.dtype == torch.uint8 and tuple(x.shape[1:]) == (3, size, size)
    assert d.train_y.numel() + d.meta_y.numel() == n and d.meta_y.numel() == meta_size
    assert torch.bincount(d.meta_y, minlength=classes).tolist() == [meta_size // classes] * classes
    for y in (d.train_y, d.meta_y, d.test_y):
        assert y.dtype == torch.int64 and 0 <= int(y.min()) and int(y.max()) < classes
    if name != "tinyimagenet_resnet":  # its fixture images are one flat colour per class
        assert not _rows(d.train_x) & _rows(d.meta_x), "meta images must not be training images"
    x, y = next(iter(task.train_batches(0)))
    assert x.dtype == torch.float32 and x.shape == (bs, 3, size, size) and torch.isfinite(x).all()
    assert y.shape == (bs,)
    mx, my = task.meta_batch()
    assert mx.dtype == torch.float32 and mx.shape == (meta_bs, 3, size, size) and my.shape == (meta_bs,)


def test_svhn_is_not_flipped_and_cifar_is(data_root: Path) -> None:
    assert _cfg("svhn_resnet", data_root).task.flip is False
    assert _cfg("cifar10_resnet", data_root).task.flip is True


def test_noisy_label_variant_corrupts_training_labels_only(data_root: Path) -> None:
    clean = build_task(_cfg("cifar10_resnet", data_root).task, seed=0)
    noisy_cfg = _cfg("cifar10_resnet", data_root, "task.noise.kind=sym", "task.noise.rate=0.4")
    noisy = build_task(noisy_cfg.task, seed=0)
    flipped = noisy.data.train_y != noisy.data.clean_train_y
    assert int(flipped.sum()) == round(0.4 * noisy.data.train_y.numel())
    assert torch.equal(noisy.data.clean_train_y, clean.data.train_y)
    assert torch.equal(noisy.data.meta_y, clean.data.meta_y) and torch.equal(noisy.data.test_y, clean.data.test_y)


def test_model_is_selectable(data_root: Path) -> None:
    task = build_task(_cfg("svhn_resnet", data_root, "task.model=mobilenetv2", small=False).task, seed=0)
    model = task.build_model()
    assert isinstance(model, MobileNetV2)
    x, _ = task.meta_batch()
    assert model.eval()(x[:2]).shape == (2, 10)


@pytest.mark.parametrize("name,loader", [("ptb_lstm", load_ptb), ("wikitext2_lstm", load_wikitext2)])
def test_language_model_task_vocab_streams_and_batches(data_root: Path, name: str, loader) -> None:
    cfg = _cfg(name, data_root)
    task = build_task(cfg.task, seed=0)
    assert isinstance(task, LanguageModelTask)
    splits = loader(data_root, download=False)
    vocab = splits.vocab
    assert task.info.num_classes == len(vocab) and task.info.loss_scale == pytest.approx(math.log(len(vocab)))
    assert set(vocab) == {*WORDS, "<eos>", UNK} | ({"=", "Heading"} if name.startswith("wiki") else set())
    assert torch.equal(task.streams["train"], splits.train)
    assert torch.equal(task.streams["meta"], splits.valid), "the meta set is the validation stream"
    assert torch.equal(task.streams["test"], splits.test)
    assert vocab.index(UNK) in splits.test.tolist()  # "zebra" is not in the training vocabulary
    batches = task.train_batches(0)
    (x0, y0, h0), (x1, _, _) = next(batches), next(batches)
    assert x0.shape == y0.shape == (4, 5) and h0 is None
    assert torch.equal(y0[:, :-1], x0[:, 1:]) and torch.equal(x1[:, 0], y0[:, -1]), "contiguous BPTT slices"
    mx, my, _ = task.meta_batch()
    assert mx.shape == my.shape == (3, 5)


def test_language_model_meta_set_from_the_training_tail(data_root: Path) -> None:
    cfg = _cfg("ptb_lstm", data_root, "task.meta_split=train_tail", "task.meta_tokens=50")
    task = build_task(cfg.task, seed=0)
    train = load_ptb(data_root, download=False).train
    assert torch.equal(task.streams["meta"], train[-50:]) and torch.equal(task.streams["train"], train[:-50])
    # The test stream is never a choice: meta_split is valid or train_tail only.
    with pytest.raises(ConfigError, match="task.meta_split='test' is not one of valid, train_tail"):
        build_task(_cfg("ptb_lstm", data_root, "task.meta_split=test").task, seed=0)
    # Label noise is a key of the classification tasks only.
    with pytest.raises(ConfigError, match="unknown config key task.noise"):
        build_task(_cfg("ptb_lstm", data_root, "+task.noise.kind=sym", "+task.noise.rate=0.4").task, seed=0)
    with pytest.raises(ConfigError, match="unknown config key task.noise"):
        build_task({**dataclasses.asdict(cfg.task), "noise": {"kind": "sym", "rate": 0.4}}, seed=0)


@pytest.mark.parametrize("name", TASKS)
@pytest.mark.slow
def test_one_epoch_of_meta_training(data_root: Path, tmp_path: Path, name: str) -> None:
    cfg = _cfg(name, data_root, "epochs=1", "meta.interval=2", "progress=false")
    summary = meta_train(cfg, tmp_path / "run")
    metric = summary["metric"]
    assert math.isfinite(summary[f"final_test_{metric}"]) and math.isfinite(summary["final_train_loss"])
    assert (tmp_path / "run" / "mlrsnet.pt").exists()


def _meta_training_step(task: Task, cfg: TrainConfig) -> float:
    """One iteration of the training loop with a meta step, on a freshly built model; returns the loss."""
    model = task.build_model()
    optimizer = build_base_optimizer(model.parameters(), resolve_optimizer(cfg.optimizer, {}))
    net = MLRSNet(gamma=0.1)
    engine = MetaEngine(net, task, model, optimizer, grad_clip=cfg.grad_clip)
    before = [p.detach().clone() for p in (*model.parameters(), *net.parameters())]
    batch = next(iter(task.train_batches(0)))
    loss = task.train_loss(model, batch)
    loss.backward()
    if cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    assert math.isfinite(float(engine.meta_step(batch, loss)))
    MLRSNetDriver(net, optimizer, task.info.loss_scale).before_step(loss)
    optimizer.step()
    after = (*model.parameters(), *net.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True) if b.grad is not None)
    return float(loss.detach())


def test_real_resnet18_step_on_a_two_image_batch(data_root: Path) -> None:
    cfg = _cfg("cifar10_resnet", data_root, "batch_size=2", "meta.batch_size=2", small=False)
    task = build_task(cfg.task, seed=0)
    assert cfg.task.model == "resnet18" and isinstance(task.build_model(), ResNet)
    assert math.isfinite(_meta_training_step(task, cfg))


@pytest.mark.parametrize("name,model", [("ptb_lstm", "lstm_lm_2layer"), ("ptb_lstm3", "lstm_lm_3layer")])
def test_real_lstm_step(data_root: Path, name: str, model: str) -> None:
    cfg = _cfg(name, data_root, "batch_size=2", "meta.batch_size=2", small=False)
    task = build_task(cfg.task, seed=0)
    lm = task.build_model()
    assert cfg.task.model == model and lm.rnn.hidden_size == 512 and lm.decoder.weight is lm.encoder.weight
    assert _meta_training_step(task, cfg) == pytest.approx(math.log(task.info.num_classes), rel=0.2)


def test_speed_options_on_cpu(data_root: Path) -> None:
    cfg = _cfg("cifar10_resnet", data_root, "amp=true", "channels_last=true", "compile=true")
    task = build_task(cfg.task, seed=0)
    model = task.build_model()
    assert apply_speed_options(cfg, task, model, torch.device("cpu")) is model, "compile is CUDA-only"
    assert task.autocast_dtype is None, "amp is CUDA-only"
    assert model.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    batch = task.meta_batch()
    with torch.no_grad():
        fp32 = task.loss(model, batch)
        task.autocast_dtype = torch.bfloat16  # what amp=true sets on CUDA; the hook itself works anywhere
        bf16 = task.loss(model, batch)
    assert bf16.dtype == torch.float32 and float(bf16) == pytest.approx(float(fp32), rel=0.05)


@pytest.mark.parametrize("name", TASKS)
def test_missing_data_names_the_files(tmp_path: Path, name: str) -> None:
    with pytest.raises(DataMissingError, match="Fetch by hand") as info:
        build_task(_cfg(name, tmp_path / "empty").task, seed=0)
    assert "\n" not in str(info.value) and str(tmp_path / "empty") in str(info.value)


@pytest.mark.slow
def test_cli_offline_missing_data_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    root = tmp_path / "no data here"
    proc = run_cli(["mlrsnet.train", "+task=cifar10_resnet", f"data.root='{root}'"], cwd=tmp_path,
                   env={download_mod.OFFLINE_ENV: "1"})
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for part in ("cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch", str(root),
                 "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"):
        assert part in proc.stderr


@pytest.mark.parametrize("task", ["cifar10_resnet", "cifar100_wrn"])
def test_the_cifar_tasks_meta_batch_is_the_training_batch_as_the_reference(task):
    """The reference's meta loader takes the training batch size (128); a batch_size override carries over,
    and meta.batch_size still sets it on its own."""
    cfg = compose("train", [f"+task={task}"])
    assert cfg.batch_size == 128 and cfg.meta.batch_size == 128 and cfg.task.meta_batch_size == 128
    assert compose("train", [f"+task={task}", "batch_size=64"]).task.meta_batch_size == 64
    assert compose("train", [f"+task={task}", "meta.batch_size=100"]).task.meta_batch_size == 100
