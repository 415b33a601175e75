"""The reference code's other facts (issue 30, section 2), each the default or an option: the meta-update
counter, the language-model cell, sequential meta windows with the meta state carried, augmented meta
batches and an augmented L0, and the language-model tasks' reference settings."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from mlrsnet.engine.build import build_run
from mlrsnet.engine.config import parse_config
from mlrsnet.engine.loop import train_loop
from mlrsnet.errors import ConfigError
from mlrsnet.meta.engine import MetaEngine, meta_update_due
from mlrsnet.net import MLRSNet, MLRSNetConfig, fresh_mlrsnet
from mlrsnet.tasks import ClassificationTask, LanguageModelTask, build_task
from mlrsnet.tasks.base import TaskInfo, batchify
from tests.conftest import compose
from tests.fixtures_data import write_cifar10


def _count(counter: str, interval: int, steps_per_epoch: int, epochs: int) -> int:
    return sum(meta_update_due(counter, interval, e * steps_per_epoch + i, i)
               for e in range(epochs) for i in range(steps_per_epoch))


def test_the_counters_give_the_reference_rules_meta_update_counts():
    # CIFAR-10 in the reference: 383 steps per epoch, 200 epochs, t_val 300.
    assert _count("epoch", 300, 383, 200) == 200  # (i + 1) % 300 == 0: exactly one per epoch
    assert _count("global", 300, 383, 200) == 256  # ours: steps 0, 300, ..., 76,500 of the run
    assert _count("epoch_start", 300, 383, 200) == 400  # the LM rule: steps 0 and 300 of every epoch
    # An epoch shorter than the interval: none under the image rule, its first step under the LM rule.
    assert _count("epoch", 300, 146, 4) == 0 and _count("epoch_start", 300, 146, 4) == 4
    # Every step is a meta step at interval 1 whatever the counter.
    assert {_count(c, 1, 18, 3) for c in ("global", "epoch", "epoch_start")} == {54}
    with pytest.raises(ValueError, match="meta counter must be one of global, epoch, epoch_start"):
        meta_update_due("sometimes", 3, 0, 0)


@pytest.mark.parametrize("counter,want", [("global", [0, 7, 14, 21, 28, 35]), ("epoch", [6, 13, 24, 31]),
                                          ("epoch_start", [0, 7, 14, 18, 25, 32])])
@pytest.mark.slow
def test_the_loop_takes_its_meta_steps_where_the_counter_says(counter, want):
    cfg = parse_config(compose("train", ["+task=digits_mlp", "epochs=2", "progress=false", "log_steps=false",
                                         f"meta.counter={counter}", "meta.interval=7"]), "train")
    run = build_run(cfg)
    assert run.task.steps_per_epoch == 18
    at = []
    real = run.engine.meta_step

    def recorded(batch, loss):
        at.append(trainer_steps[0])
        return real(batch, loss)

    trainer_steps = [0]
    run.engine.meta_step = recorded

    class Counting:
        """Counts the loop's steps through the driver's after_step hook."""

        def __init__(self, driver):
            self.driver = driver

        def __getattr__(self, name):
            return getattr(self.driver, name)

        def after_step(self, loss):
            trainer_steps[0] += 1
            self.driver.after_step(loss)

    history = train_loop(run.task, run.train_model, run.optimizer, Counting(run.driver), run.loop_config("t"),
                         engine=run.engine)
    assert at == want and len(history) == 2 and all(math.isfinite(h["meta_loss"]) for h in history)


def test_a_bad_counter_or_reading_is_a_one_line_error_naming_the_key():
    with pytest.raises(ConfigError) as e:
        parse_config(compose("train", ["+task=digits_mlp", "meta.counter=sometimes"]), "train")
    assert "meta.counter='sometimes' is not one of global, epoch, epoch_start" in str(e.value)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_config(compose("transfer", ["+query=digits_mlp", "reading=sideways"]), "transfer")
    assert "reading='sideways' is not one of auto, meta_test, meta_train" in str(e.value)
    with pytest.raises(ConfigError, match="net.cell='wide' is not one of image, lm"):
        parse_config(compose("train", ["+task=digits_mlp", "net.cell=wide"]), "train")


def test_the_reference_lm_cell_is_wider_and_uniformly_initialised():
    torch.manual_seed(0)
    lm = fresh_mlrsnet(50, 2.0, "lm")
    assert lm.config.mlp_width == 50 and lm.ih[0].out_features == 50 and lm.hh[2].in_features == 50
    maps = [layer for layer in (*lm.ih, *lm.hh) if isinstance(layer, torch.nn.Linear)]
    assert all(float(layer.weight.detach().abs().max()) <= 0.1 for layer in maps)
    assert float(lm.ih[2].weight.detach().abs().max()) > 0.09  # drawn over the whole range, not shrunk
    # Biases and the head keep torch's default init (the reference re-draws the maps' weights only): the
    # first map's bias is U(-1, 1).
    assert float(lm.ih[0].bias.detach().abs().max()) > 0.5
    # The image cell is what mlrsnet always built, draw for draw.
    torch.manual_seed(1)
    image = fresh_mlrsnet(50, 2.0, "image")
    torch.manual_seed(1)
    before = MLRSNet(MLRSNetConfig(hidden_size=50), gamma=2.0)
    assert all(torch.equal(a, b) for a, b in zip(image.state_dict().values(), before.state_dict().values(),
                                                 strict=True))


def test_net_cell_builds_the_meta_trained_net():
    for cell, width in (("image", 25), ("lm", 50)):
        cfg = parse_config(compose("train", ["+task=digits_mlp", f"net.cell={cell}", "progress=false"]), "train")
        assert build_run(cfg).net.config.mlp_width == width


@pytest.mark.parametrize("name", ["ptb_lstm", "ptb_lstm3", "wikitext2_lstm", "text_lstm_cpython"])
def test_the_lstm_language_model_tasks_follow_the_reference_lm_code(name):
    cfg = parse_config(compose("train", [f"+task={name}"]), "train")
    assert cfg.net.cell == "lm"
    if name != "text_lstm_cpython":  # the paper's corpora: the reference's batch, weight decay and gamma
        assert cfg.batch_size == 32 and cfg.task.meta_batch_size == 32 and cfg.optimizer.weight_decay == 5e-6
        assert cfg.net.gamma is None and cfg.net.gamma_from == "auto"


def _lm_task(meta_windows: str) -> LanguageModelTask:
    stream = torch.arange(200) % 17
    info = TaskInfo("toy", num_classes=17, loss_scale=math.log(17), metric="perplexity", higher_is_better=False)
    return LanguageModelTask(info, stream, torch.arange(64) % 17, stream[:50], "lstm_lm",
                             {"emb_size": 8, "hidden_size": 8}, batch_size=4, bptt=5, meta_batch_size=3, seed=0,
                             meta_windows=meta_windows)


def test_sequential_meta_windows_read_the_meta_stream_in_order_with_the_state_carried():
    task = _lm_task("sequential")
    torch.manual_seed(0)
    model = task.build_model().eval()  # no dropout: the state of a second forward is the carried one
    rows = batchify(task.streams["meta"], 3)
    assert rows.shape == (3, 21)  # 4 slices of 5 tokens
    carried = []
    for k in range(5):
        x, y, hidden = task.meta_batch()
        first = (k % 4) * 5
        assert torch.equal(x, rows[:, first:first + 5]) and torch.equal(y, rows[:, first + 1:first + 6])
        if k % 4 == 0:
            assert hidden is None  # the first slice, and again after the last: a zero state
        else:
            assert hidden is not None and all(torch.equal(a, b) for a, b in zip(hidden, carried[-1], strict=True))
        task.meta_loss(model, (x, y, hidden))
        _, state = model(x, hidden)  # with autograd on, as the meta loss (no_grad kernels round differently)
        carried.append(tuple(t.detach() for t in state))
    # Where the meta stream stands is part of a resumable state.
    state = task.rng_state()
    after = task.meta_batch()
    task.set_rng_state(state)
    again = task.meta_batch()
    assert torch.equal(after[0], again[0]) and all(torch.equal(a, b) for a, b in zip(after[2], again[2], strict=True))


def test_the_meta_engine_carries_the_looked_ahead_models_meta_state():
    task = _lm_task("sequential")
    torch.manual_seed(0)
    model = task.build_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    engine = MetaEngine(MLRSNet(gamma=1.0), task, model, optimizer)
    batch = next(task.train_batches(0))
    loss = task.train_loss(model, batch)
    loss.backward()
    engine.meta_step(batch, loss)
    carried = task.rng_state()["meta_carry"]
    with torch.no_grad():  # the real model's state on the slice: not what is carried (the lookahead moved)
        _, at_theta0 = model(batchify(task.streams["meta"], 3)[:, :5], None)
    assert carried is not None and carried[0].shape == at_theta0[0].shape
    assert float((carried[0] - at_theta0[0]).abs().max()) > 1e-4
    # Random windows (the default) keep no meta state: every window starts from zero.
    plain = _lm_task("random")
    assert plain.meta_batch()[2] is None and plain.meta_batch()[0].shape == (3, 5)


def test_meta_windows_is_a_key_of_the_language_model_families():
    cfg = parse_config(compose("train", ["+task=text_lstm_cpython", "task.meta_windows=sequential",
                                         "task.max_chars=20000"]), "train")
    task = build_task(cfg.task, seed=0)
    assert task.meta_windows == "sequential" and task.meta_rows.shape[0] == cfg.meta.batch_size
    with pytest.raises(ConfigError, match="task.meta_windows='fixed' is not one of random, sequential"):
        parse_config(compose("train", ["+task=text_lstm_cpython", "task.meta_windows=fixed"]), "train")


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    write_cifar10(root, per_batch=10, test_labels=range(10))
    return root


def _cifar(root: Path, *extra: str):
    return parse_config(compose("train", ["+task=cifar10_resnet", f"data.root={root}", "data.download=false",
                                          "batch_size=8", "meta.batch_size=10", "task.meta_size=10",
                                          "task.model=cnn", "+task.model_kwargs.width=8", "progress=false",
                                          *extra]), "train")


def test_augmented_meta_batches_are_an_option(cifar_root):
    plain = build_task(_cifar(cifar_root).task, seed=0)
    assert isinstance(plain, ClassificationTask) and not plain.meta_augment
    first, second = plain.meta_batch()[0], plain.meta_batch()[0]
    assert torch.equal(first, second)  # the whole meta set, normalised only: the same every time
    augmented = build_task(_cifar(cifar_root, "task.meta_augment=true").task, seed=0)
    a, b = augmented.meta_batch()[0], augmented.meta_batch()[0]
    assert a.shape == first.shape and not torch.equal(a, b) and not torch.equal(a, first)


def test_l0_can_be_measured_with_the_training_augmentation(cifar_root):
    l0 = {over: build_run(_cifar(cifar_root, f"net.l0_over={over}")).l0 for over in ("train", "train_augmented")}
    assert all(math.isfinite(v) and v > 0 for v in l0.values()) and l0["train"] != l0["train_augmented"]
    again = build_run(_cifar(cifar_root, "net.l0_over=train_augmented")).l0
    assert again == l0["train_augmented"]  # seeded: the same augmentation every time
    with pytest.raises(ConfigError) as e:
        build_run(parse_config(compose("train", ["+task=digits_mlp", "net.l0_over=train_augmented"]), "train"))
    assert "net.l0_over=train_augmented" in str(e.value) and "set net.l0_over=train" in str(e.value)
