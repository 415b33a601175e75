"""transformers.Trainer driven by a frozen MLR-SNet (training loss) and by GreedyLR (eval loss)."""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("transformers")  # the llm extra is in dev: CI runs these

from transformers import Trainer, TrainingArguments  # noqa: E402

from mlrsnet.errors import ConfigError  # noqa: E402
from mlrsnet.integrations.hf import HFTrainerSchedule  # noqa: E402
from mlrsnet.schedules.greedy import GreedyLR  # noqa: E402
from mlrsnet.schedules.scheduler import MLRSNetScheduler  # noqa: E402
from mlrsnet.tasks.llm import TinyGPT, encode_bytes, stdlib_sources  # noqa: E402
from tests.conftest import REPO  # noqa: E402

CHECKPOINT = "digits_cnn_sym40"  # the shipped default bundle, by its short name


def _data(n: int, offset: int = 0) -> list[dict]:
    stream = encode_bytes(stdlib_sources()[0][offset:offset + n * 33 + 1])
    return [{"input_ids": stream[i * 32:i * 32 + 32], "labels": stream[i * 32:i * 32 + 32]} for i in range(n)]


def _trainer(tmp_path, sched, optimizer, model, **kw) -> Trainer:
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, logging_steps=1,
                             report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True, seed=0, **kw)
    return Trainer(model=model, args=args, train_dataset=_data(24), eval_dataset=_data(8, offset=5000),
                   optimizers=(optimizer, sched), callbacks=[sched])


def _logged(trainer: Trainer, key: str) -> list[float]:
    return [h[key] for h in trainer.state.log_history if key in h and "train_runtime" not in h]


@pytest.mark.slow
def test_mlrsnet_sets_each_steps_lr_from_that_steps_training_loss(tmp_path):
    torch.manual_seed(0)
    model = TinyGPT().lm
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scale = 3e-3
    hf = HFTrainerSchedule(MLRSNetScheduler(opt, str(CHECKPOINT), scale=scale, loss_scale=math.log(256),
                                            total_steps=6))
    trainer = _trainer(tmp_path, hf, opt, model, max_steps=6)
    trainer.train()
    losses, lrs = _logged(trainer, "loss"), _logged(trainer, "learning_rate")
    assert len(losses) == len(lrs) == 6
    # The rule, replayed on a fresh scheduler: lr_t = scale * MLRSNet(loss_t / ln 256) / gamma, with the
    # LSTM state carried; the Trainer logs losses rounded to 4 decimals, hence the tolerance.
    dummy = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    replay = MLRSNetScheduler(dummy, str(CHECKPOINT), scale=scale, loss_scale=math.log(256), total_steps=6)
    expected = []
    for loss in losses:
        replay.step(loss)
        expected.append(float(dummy.param_groups[0]["lr"]))
    assert lrs == pytest.approx(expected, rel=1e-3)
    assert all(0 < lr < scale for lr in lrs) and len(set(lrs)) > 1
    assert hf._hook is None  # removed at the end of training


@pytest.mark.slow
def test_greedy_follows_the_eval_loss(tmp_path):
    torch.manual_seed(0)
    model = TinyGPT().lm
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    hf = HFTrainerSchedule(GreedyLR(opt, patience=0, factor=0.5, min_lr=1e-5, max_lr=1e-1, reset_start=0),
                           on="eval_loss")
    trainer = _trainer(tmp_path, hf, opt, model, max_steps=6, eval_strategy="steps", eval_steps=1)
    trainer.train()
    evals, lrs = _logged(trainer, "eval_loss"), _logged(trainer, "learning_rate")
    assert len(evals) == len(lrs) == 6
    # Replay: the LR of step t+1 is GreedyLR's after the evaluations of steps 1..t.
    dummy = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    replay = GreedyLR(dummy, patience=0, factor=0.5, min_lr=1e-5, max_lr=1e-1, reset_start=0)
    expected = [1e-3]
    for value in evals[:-1]:
        replay.step(value)
        expected.append(dummy.param_groups[0]["lr"])
    assert lrs == pytest.approx(expected, rel=1e-9)
    assert len(set(lrs)) > 1  # the eval loss moved the LR


def test_missing_loss_or_metric_is_a_one_line_error(tmp_path):
    model = TinyGPT().lm
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with pytest.raises(ConfigError, match="MLRSNetScheduler or a GreedyLR"):
        HFTrainerSchedule(object())
    hf = HFTrainerSchedule(GreedyLR(opt), on="eval_accuracy")
    with pytest.raises(ConfigError, match="eval_loss"):
        hf.on_evaluate(None, None, None, metrics={"eval_loss": 1.0})
    hf = HFTrainerSchedule(MLRSNetScheduler(opt, str(CHECKPOINT), scale=1e-3, total_steps=10))
    with pytest.raises(ConfigError, match="labels"):
        hf.on_pre_optimizer_step(None, None, None)


@pytest.mark.slow
def test_the_readme_example_runs_as_written(tmp_path, monkeypatch):
    text = (REPO / "README.md").read_text()
    section = text[text.index("### Inside the HuggingFace Trainer"):]
    code = section[section.index("```python\n") + 10:section.index("\n```", section.index("```python\n"))]
    assert "HFTrainerSchedule(MLRSNetScheduler(" in code
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102
    lrs = [float(g["lr"]) for g in scope["optimizer"].param_groups]
    assert all(0 < lr < 2e-3 for lr in lrs)  # MLR-SNet set them, below its scale (the optimiser's LR)
    assert scope["hf"].scheduler.last_epoch == 10
