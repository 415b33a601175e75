r"""LLM fine-tuning at CPU scale: a tiny GPT-2 pretrained on CPython's documentation, fine-tuned on the
standard library's source code (optional extra ``mlrsnet[llm]``: transformers, peft).

The setting of LRBench++ (Jin et al., "Rethinking Learning Rate Tuning in the Era of Large Language
Models", 2023) scaled down until it runs on two CPU cores: AdamW, a few epochs, small learning rates
relative to the pretraining LR, warmup.

- **Model.** A decoder-only transformer built from a ``transformers.GPT2Config`` (byte-level vocabulary
  of 256, 2 layers, width 128, 4 heads, 128 positions, no dropout; :data:`BASE_CONFIG`), randomly
  initialised, then pretrained by :func:`pretrain_base` on the training documents of the CPython text
  corpus (:func:`mlrsnet.tasks.offline.cpython_documents`, the split of ``text_lstm_cpython``). The
  result ships in the package (:data:`BASE_CHECKPOINT`, ~1.8 MB), so fine-tuning starts in seconds;
  ``python experiments/llm_pretrain_base.py`` regenerates it.
- **Fine-tuning domain.** Source files of the standard library (:data:`STDLIB_FILES`, read from
  ``sysconfig``'s stdlib directory, never imported): code instead of prose, a domain shift. Files are
  shuffled with a fixed seed and split by file into train / meta / test, so no text is shared. The
  meta split is the held-out validation data a benchmark tunes on; the test split is only reported.
- **Metrics** (per epoch, through :meth:`CausalLMTask.evaluate`): perplexity and next-token accuracy on
  the split, and on ``"test"`` also ``pretrain_perplexity``: perplexity on held-out CPython
  documentation, the pretraining domain (forgetting).
- **LoRA** (``task.lora``): peft's LoRA on the attention and MLP projections; only the adapters train.

Byte-level perplexity: ``exp(mean cross-entropy per byte)``.
"""

from __future__ import annotations

import functools
import math
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mlrsnet.errors import CheckpointError, ConfigError
from mlrsnet.tasks.base import Forward, Task, TaskConfig, TaskInfo
from mlrsnet.tasks.offline import cpython_documents, split_documents
from mlrsnet.tasks.registry import register_dataset
from mlrsnet.typed import setting

__all__ = [
    "BASE_CHECKPOINT", "BASE_CONFIG", "STDLIB_FILES", "CausalLMTask", "TinyGPT", "encode_bytes", "load_base_model",
    "pretrain_base", "pretraining_texts", "require_llm", "stdlib_sources",
]

BASE_CHECKPOINT = Path(__file__).resolve().parent / "gpt_cpython_base.pt"
# GPT-2 architecture, shrunk: byte vocabulary, no dropout (fine-tuning runs are then deterministic per seed).
BASE_CONFIG: dict[str, Any] = {
    "vocab_size": 256, "n_positions": 128, "n_embd": 128, "n_layer": 2, "n_head": 4,
    "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "use_cache": False,
}
# Standard-library modules whose source is the fine-tuning domain: none of them is in the pretraining
# corpus's module list (mlrsnet.tasks.offline._DOC_MODULES), so their docstrings were never seen.
STDLIB_FILES = (
    "bdb cmd code codeop colorsys compileall configparser contextvars copyreg dis doctest filecmp fileinput "
    "ftplib getopt getpass gettext graphlib imaplib linecache locale mailbox netrc opcode optparse pdb "
    "pickletools pkgutil platform plistlib poplib posixpath profile pstats py_compile pyclbr quopri reprlib "
    "rlcompleter runpy smtplib stat stringprep symtable sysconfig tabnanny token trace tracemalloc tty "
    "wave webbrowser zipapp"
).split()


def require_llm() -> None:
    """Raise a one-line :class:`~mlrsnet.errors.ConfigError` if the ``llm`` extra is not installed."""
    try:
        import peft  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as err:
        raise ConfigError(f"the LLM fine-tuning tasks need transformers and peft ({err.name} is missing); "
                          "install the optional extra: pip install 'mlrsnet[llm]'") from None


class TinyGPT(nn.Module):
    """A ``transformers`` GPT-2 LM whose ``forward(tokens)`` returns the logits (B, T, V), the interface the
    training loop, the meta engine (``torch.func.functional_call``) and :class:`CausalLMTask` use.
    ``lm`` is the ``GPT2LMHeadModel`` (or, with LoRA, its peft wrapper)."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        require_llm()
        from transformers import GPT2Config, GPT2LMHeadModel

        self.config_dict = {**BASE_CONFIG, **(config or {})}
        self.lm: nn.Module = GPT2LMHeadModel(GPT2Config(**self.config_dict))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.lm(input_ids=tokens).logits


def load_base_model(path: str | Path | None = None) -> TinyGPT:
    """The pretrained base (``path`` or the shipped :data:`BASE_CHECKPOINT`) as a :class:`TinyGPT`."""
    p = BASE_CHECKPOINT if path is None else Path(path)
    if not p.is_file():
        raise CheckpointError(f"pretrained base model {p} not found; regenerate it with "
                              "python experiments/llm_pretrain_base.py")
    state = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise CheckpointError(f"{p} is not a TinyGPT base checkpoint (no model/config); regenerate it with "
                              "python experiments/llm_pretrain_base.py")
    model = TinyGPT(state["config"])
    model.lm.load_state_dict(state["model"])
    return model


def encode_bytes(text: str, device: torch.device | str = "cpu") -> torch.Tensor:
    """UTF-8 bytes of ``text`` as a LongTensor of tokens in [0, 256)."""
    data = bytearray(text.encode("utf-8"))
    return torch.frombuffer(data, dtype=torch.uint8).long().to(device) if data else torch.zeros(0, dtype=torch.long)


@functools.cache
def stdlib_sources() -> tuple[str, ...]:
    """The source text of every :data:`STDLIB_FILES` module present in this Python's stdlib directory."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return tuple((root / f"{name}.py").read_text(encoding="utf-8") for name in STDLIB_FILES
                 if (root / f"{name}.py").is_file())


@functools.cache
def pretraining_texts(split_seed: int = 0) -> tuple[str, str]:
    """(training text, held-out text) of the pretraining domain: the CPython documentation split as in
    ``text_lstm_cpython`` (10% test, 10% meta by document); the held-out text is the test documents.
    Cached: collecting the documentation imports some 80 modules."""
    train, _, test = split_documents(cpython_documents(), split_seed, 0.1, 0.1)
    return "\n\n".join(train), "\n\n".join(test)


def _windows(stream: torch.Tensor, block: int) -> torch.Tensor:
    """Non-overlapping (block + 1)-token windows of a stream (inputs and next-token targets)."""
    n = (stream.numel() - 1) // block
    if n < 1:
        raise ConfigError(f"a text split has {stream.numel()} tokens, fewer than block_size + 1 = {block + 1}; "
                          "raise the split's size or lower task.block_size")
    idx = torch.arange(n, device=stream.device)[:, None] * block + torch.arange(block + 1, device=stream.device)
    return stream[idx]


class CausalLMTask(Task):
    """Next-token prediction on fixed-length windows of byte streams, for a transformer LM.

    An epoch visits every non-overlapping ``block_size`` window of the training stream once, in a seeded
    order, ``batch_size`` windows per step (no state carried between steps, unlike the LSTM task).
    Batches are ``(x, y)`` with ``y`` the inputs shifted by one token.
    """

    def __init__(self, info: TaskInfo, streams: dict[str, torch.Tensor], base: str | None, lora: Any,
                 batch_size: int, block_size: int, meta_batch_size: int, seed: int,
                 eval_batch_size: int = 32) -> None:
        self.info = info
        self.streams = streams
        self.device = streams["train"].device
        self.base, self.lora = base, lora
        self.batch_size = int(batch_size)
        self.block_size = int(block_size)
        self.meta_batch_size = int(meta_batch_size)
        self.eval_batch_size = eval_batch_size
        self.windows = {k: _windows(v, self.block_size) for k, v in streams.items()}
        if self.windows["train"].shape[0] < self.batch_size:
            raise ConfigError(f"the training split has {self.windows['train'].shape[0]} windows, fewer than "
                              f"batch_size={self.batch_size}; lower batch_size or raise task.train_chars")
        self.generator = torch.Generator().manual_seed(seed)
        self.meta_generator = torch.Generator().manual_seed(seed + 7919)

    def build_model(self) -> nn.Module:
        """The pretrained base (``base``: null for the shipped one, or a path), LoRA-wrapped if ``lora``."""
        base = self.base
        model = load_base_model(base)
        if model.config_dict["n_positions"] < self.block_size:
            raise ConfigError(f"task.block_size={self.block_size} exceeds the model's "
                              f"{model.config_dict['n_positions']} positions; lower it")
        lora = self.lora
        if lora:
            from peft import LoraConfig, get_peft_model

            # GPT-2's projections are Conv1D layers (weights stored input x output): fan_in_fan_out.
            spec = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0,
                    "target_modules": ["c_attn", "c_proj", "c_fc"], **dict(lora)}
            model.lm = get_peft_model(model.lm, LoraConfig(fan_in_fan_out=True, **spec))
        return model.to(self.device)

    @property
    def steps_per_epoch(self) -> int:
        return self.windows["train"].shape[0] // self.batch_size

    def _split(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return w[:, :-1], w[:, 1:]

    def train_batches(self, epoch: int) -> Iterator[tuple]:
        win = self.windows["train"]
        perm = torch.randperm(win.shape[0], generator=self.generator).to(self.device)
        for s in range(self.steps_per_epoch):
            yield self._split(win[perm[s * self.batch_size:(s + 1) * self.batch_size]])

    def _random(self, split: str, count: int) -> tuple:
        win = self.windows[split]
        idx = torch.randint(0, win.shape[0], (count,), generator=self.meta_generator).to(self.device)
        return self._split(win[idx])

    def random_train_batch(self) -> tuple:
        return self._random("train", self.batch_size)

    def meta_batch(self) -> tuple:
        return self._random("meta", self.meta_batch_size)

    def loss(self, forward: Forward, batch: tuple) -> torch.Tensor:
        x, y = batch
        with self.autocast():
            logits = forward(x)
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))

    @torch.no_grad()
    def _scores(self, model: nn.Module, split: str) -> tuple[float, float]:
        """(mean cross-entropy per token, next-token accuracy) over every window of ``split``."""
        win = self.windows[split]
        total = torch.zeros((), device=self.device)
        hits = torch.zeros((), device=self.device, dtype=torch.long)
        for s in range(0, win.shape[0], self.eval_batch_size):
            x, y = self._split(win[s:s + self.eval_batch_size])
            with self.autocast():
                logits = model(x).float()
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum")
            hits += (logits.argmax(-1) == y).sum()
        n = win.shape[0] * self.block_size
        return float(total) / n, int(hits) / n

    def evaluate(self, model: nn.Module, split: str = "test") -> dict[str, float]:
        """Loss, perplexity and next-token accuracy on ``split`` (test, meta or train); on ``test`` also the
        perplexity on held-out pretraining-domain text (forgetting)."""
        was_training = model.training
        model.eval()
        loss, acc = self._scores(model, split)
        out = {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "accuracy": acc}
        if split == "test":
            p_loss, p_acc = self._scores(model, "pretrain")
            out.update(pretrain_loss=p_loss, pretrain_perplexity=math.exp(min(p_loss, 50.0)), pretrain_accuracy=p_acc)
        model.train(was_training)
        return out


@dataclass(kw_only=True)
class LLMConfig(TaskConfig):
    """Fine-tuning the pretrained TinyGPT on standard-library source files."""

    base: str | None = setting(None, "null: the shipped base (mlrsnet/tasks/gpt_cpython_base.pt); or a path")
    lora: Any = setting(None, "null: full fine-tuning; {r: 8, lora_alpha: 16}: peft LoRA")
    train_chars: int = setting(12_000, "bytes of source code to fine-tune on", ge=1)
    eval_chars: int = setting(6_000, "bytes of the meta, test and held-out documentation texts", ge=1)
    test_fraction: float = setting(0.15, "of the source files (split by file)", gt=0, lt=1)
    meta_fraction: float = setting(0.15, "of the source files (split by file)", gt=0, lt=1)
    block_size: int = setting(64, "tokens (bytes) per training window", ge=1)


@register_dataset("stdlib_source", LLMConfig)
def build_stdlib_source(cfg: LLMConfig, seed: int, device: torch.device) -> CausalLMTask:
    """Fine-tuning on standard-library source files (see the module docstring and :class:`LLMConfig`)."""
    require_llm()
    if cfg.model != "tiny_gpt2":
        raise ConfigError(f"task {cfg.name}: dataset stdlib_source trains the model tiny_gpt2, got "
                          f"model={cfg.model!r}; set task.model=tiny_gpt2")
    files = stdlib_sources()
    if len(files) < 3:
        raise ConfigError(f"only {len(files)} of the stdlib_source files were found under "
                          f"{sysconfig.get_paths()['stdlib']}; this Python has no standard-library sources")
    train, meta, test = split_documents(list(files), cfg.split_seed, cfg.test_fraction, cfg.meta_fraction)
    train_chars, eval_chars = cfg.train_chars, cfg.eval_chars
    _, pretrain_held_out = pretraining_texts(cfg.split_seed)
    streams = {
        "train": encode_bytes("\n\n".join(train)[:train_chars], device),
        "meta": encode_bytes("\n\n".join(meta)[:eval_chars], device),
        "test": encode_bytes("\n\n".join(test)[:eval_chars], device),
        "pretrain": encode_bytes(pretrain_held_out[:eval_chars], device),
    }
    info = TaskInfo(name=cfg.name, num_classes=256, loss_scale=math.log(256), metric="perplexity",
                    higher_is_better=False)
    return CausalLMTask(info, streams, cfg.base, cfg.lora, cfg.batch_size, cfg.block_size, cfg.meta_batch_size, seed)


def pretrain_base(out: str | Path = BASE_CHECKPOINT, *, steps: int = 600, lr: float = 2e-3, batch_size: int = 32,
                  block_size: int = 64, warmup_steps: int = 30, seed: int = 0, log_every: int = 50) -> dict:
    """Pretrain :class:`TinyGPT` from random initialisation on the CPython documentation's training
    documents and save it to ``out`` (atomically): AdamW(lr, weight decay 0.01), linear warmup then cosine
    decay to 0, random ``block_size`` windows, gradient norm clipped at 1. Returns the record stored with
    the weights (settings, final training loss, held-out perplexity, seconds)."""
    from mlrsnet.io import atomic_write_bytes

    torch.manual_seed(seed)
    model = TinyGPT()
    train_text, held_out = pretraining_texts()
    stream, held = encode_bytes(train_text), _windows(encode_bytes(held_out[:20_000]), block_size)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: (t + 1) / warmup_steps if t < warmup_steps
        else 0.5 * (1 + math.cos(math.pi * (t - warmup_steps) / max(1, steps - warmup_steps))))
    g = torch.Generator().manual_seed(seed)
    t0, losses = time.perf_counter(), []
    for step in range(steps):
        starts = torch.randint(0, stream.numel() - block_size - 1, (batch_size,), generator=g)
        win = stream[starts[:, None] + torch.arange(block_size + 1)]
        logits = model(win[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), win[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if log_every and (step + 1) % log_every == 0:
            print(f"pretrain step {step + 1}/{steps}: loss {sum(losses[-log_every:]) / log_every:.4f}", flush=True)
    model.eval()
    with torch.no_grad():
        logits = model(held[:, :-1])
        held_loss = float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), held[:, 1:].reshape(-1)))
    record = {"steps": steps, "lr": lr, "batch_size": batch_size, "block_size": block_size,
              "warmup_steps": warmup_steps, "seed": seed, "weight_decay": 0.01,
              "final_train_loss": sum(losses[-50:]) / len(losses[-50:]),
              "held_out_perplexity": math.exp(held_loss), "seconds": time.perf_counter() - t0,
              "torch": str(torch.__version__)}
    import io

    buf = io.BytesIO()
    torch.save({"config": model.config_dict, "model": model.lm.state_dict(), "pretrain": record}, buf)
    atomic_write_bytes(out, buf.getvalue())
    return record
