"""The LLM fine-tuning tasks: shipped base, splits, metrics, full and LoRA fine-tuning, missing extra."""

from __future__ import annotations

import dataclasses
import math
import sys

import pytest
import torch

pytest.importorskip("transformers")  # the llm extra is in dev: CI runs these

from mlrsnet.engine.build import build_run  # noqa: E402
from mlrsnet.engine.config import parse_config  # noqa: E402
from mlrsnet.engine.loop import train_loop  # noqa: E402
from mlrsnet.engine.resume import StopSignals  # noqa: E402
from mlrsnet.errors import ConfigError  # noqa: E402
from mlrsnet.tasks import build_task  # noqa: E402
from mlrsnet.tasks.llm import BASE_CHECKPOINT, load_base_model, require_llm  # noqa: E402


def _cfg(compose_cfg, task: str = "gpt_finetune_stdlib", *over: str):
    return parse_config(compose_cfg("train", [f"+task={task}", "task.train_chars=3000", "task.eval_chars=2000",
                                              *over]), "train")


def test_shipped_base_is_pretrained_on_the_documentation(compose_cfg):
    state = torch.load(BASE_CHECKPOINT, map_location="cpu", weights_only=True)
    assert BASE_CHECKPOINT.stat().st_size < 5e6
    assert state["pretrain"]["lr"] == _cfg(compose_cfg).optimizer.lr  # the grid is relative to it
    task = build_task(_cfg(compose_cfg).task, seed=0)
    scores = task.evaluate(load_base_model(), "test")
    # Far below the 256 of a uniform byte model: it learnt the documentation, and it is worse on code.
    assert scores["pretrain_perplexity"] < 15
    assert scores["perplexity"] > scores["pretrain_perplexity"]
    assert scores["perplexity"] == pytest.approx(math.exp(scores["loss"]))
    assert 0 < scores["accuracy"] < 1


def test_splits_windows_and_batches(compose_cfg):
    task = build_task(_cfg(compose_cfg).task, seed=0)
    assert {k: v.numel() for k, v in task.streams.items()} == {
        "train": 3000, "meta": 2000, "test": 2000, "pretrain": 2000}
    train, test = bytes(task.streams["train"].tolist()), bytes(task.streams["test"].tolist())
    assert train[:200] not in test  # split by file
    assert task.steps_per_epoch == (2999 // 64) // 8
    x, y = next(task.train_batches(0))
    assert x.shape == y.shape == (8, 64)
    assert torch.equal(x[:, 1:], y[:, :-1])  # next-token targets
    again = build_task(_cfg(compose_cfg).task, seed=0)
    assert torch.equal(next(again.train_batches(0))[0], x)  # seeded order


@pytest.mark.slow
def test_fine_tuning_at_a_small_lr_adapts_to_code_and_forgets_some_docs(compose_cfg):
    # 3% of the pretraining LR: at the pretraining LR itself the first Adam steps undo the base.
    cfg = _cfg(compose_cfg, "gpt_finetune_stdlib", "epochs=2", "schedule=warmup_linear", "task.train_chars=6000",
               "optimizer.lr=6e-5")
    assert cfg.task.train_chars == 6000 and cfg.optimizer.lr == 6e-5
    run = build_run(cfg)
    before = run.task.evaluate(run.model, "test")
    history = train_loop(run.task, run.train_model, run.optimizer, run.driver, run.loop_config("t", progress=False))
    after = history[-1]
    assert after["test_perplexity"] < before["perplexity"]
    assert after["test_pretrain_perplexity"] > before["pretrain_perplexity"]
    assert {"test_accuracy", "meta_perplexity", "meta_accuracy"} <= set(after)


@pytest.mark.slow
def test_lora_trains_only_the_adapters(compose_cfg):
    run = build_run(_cfg(compose_cfg, "gpt_finetune_stdlib_lora", "epochs=1", "schedule=warmup_constant"))
    trainable = {n for n, p in run.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    frozen = {n: p.detach().clone() for n, p in run.model.named_parameters() if not p.requires_grad}
    adapters = {n: p.detach().clone() for n, p in run.model.named_parameters() if p.requires_grad}
    train_loop(run.task, run.train_model, run.optimizer, run.driver, run.loop_config("t", progress=False))
    named = dict(run.model.named_parameters())
    assert all(torch.equal(named[n], v) for n, v in frozen.items())
    assert any(not torch.equal(named[n], v) for n, v in adapters.items())


def test_wrong_model_and_missing_extra_are_one_line_errors(compose_cfg, monkeypatch):
    cfg = _cfg(compose_cfg)
    with pytest.raises(ConfigError, match="task.model=tiny_gpt2"):
        build_task(dataclasses.replace(cfg.task, model="lstm_lm"), seed=0)
    with pytest.raises(ConfigError, match="task.model=tiny_gpt2"):
        build_task({**dataclasses.asdict(cfg.task), "model": "lstm_lm"}, seed=0)
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(ConfigError, match=r"pip install 'mlrsnet\[llm\]'"):
        require_llm()


def test_bench_defaults_of_the_task_are_small_and_valid(compose_cfg):
    from mlrsnet.bench import validate_bench

    for task in ("gpt_finetune_stdlib", "gpt_finetune_stdlib_lora"):
        cfg = validate_bench(compose_cfg("bench", [f"+task={task}"]))
        assert cfg.schedules == ["warmup_constant", "warmup_linear", "warmup_cosine", "mlrsnet_frozen",
                                 "greedy_eval", "adamw_schedulefree"]
        assert cfg.seeds == [0] and len(cfg.lr_grid) == 3 and cfg.tune_epochs == 1
        assert cfg.optimizer.name == "adamw"


@pytest.mark.parametrize("task", ["gpt_finetune_stdlib", "gpt_finetune_stdlib_lora"])
@pytest.mark.slow
def test_bench_frozen_mlrsnet_is_scaled_by_the_adamw_lr_not_the_sgd_gamma(compose_cfg, task, capsys, tmp_path):
    """The task's default for mlrsnet_frozen: gamma = optimizer.lr, so a multiplier means the same LR for every
    policy. The paper's recomputed gamma (gamma=recompute, still one override away) is an SGD LR, ~1.4 here."""
    from mlrsnet.bench import train_run, validate_bench
    from mlrsnet.engine.config import schedule_choice

    over = [f"+task={task}", "task.train_chars=3000", "task.eval_chars=2000"]
    cfg = validate_bench(compose_cfg("bench", over))
    assert cfg.schedule_params["mlrsnet_frozen"] == {"gamma": cfg.optimizer.lr}
    assert schedule_choice(cfg, "mlrsnet_frozen").params.gamma == cfg.optimizer.lr
    lr_cap = 0.1 * cfg.optimizer.lr
    with StopSignals() as stop:
        ours = train_run(cfg, "mlrsnet_frozen", 0, 0.1, tmp_path / "ours", stop, epochs=1, eval_splits=())
    assert ours.status == "complete"
    assert ours.history[-1]["lr_max"] <= lr_cap and ours.history[-1]["lr_min"] > lr_cap / 100
    assert "warning" not in capsys.readouterr().err
    paper = validate_bench(compose_cfg("bench", [*over, "schedule_params.mlrsnet_frozen.gamma=recompute"]))
    with StopSignals() as stop:
        theirs = train_run(paper, "mlrsnet_frozen", 0, 0.1, tmp_path / "theirs", stop, epochs=1, eval_splits=())
    # an LR 20x and more above the cap, if the run lives through its first epoch at all
    assert theirs.status == "diverged" or theirs.history[-1]["lr_max"] > 20 * lr_cap
    err = capsys.readouterr().err  # and the run said why, naming the key that fixes it
    assert "warning: optimizer.name=adamw with the SGD-scale gamma" in err
    assert "schedule_params.mlrsnet_frozen.gamma=0.002" in err
