"""Tasks whose data ships offline: scikit-learn's digits and text that ships with CPython."""

from __future__ import annotations

import importlib
import inspect
import math
import warnings
from dataclasses import dataclass

import torch

from mlrsnet.tasks.base import (
    META_WINDOWS,
    META_WINDOWS_HELP,
    ClassificationConfig,
    ClassificationData,
    ClassificationTask,
    LanguageModelTask,
    TaskConfig,
    TaskInfo,
)
from mlrsnet.tasks.data.splits import class_balanced_split, corrupt_labels
from mlrsnet.tasks.registry import register_dataset
from mlrsnet.typed import setting


@dataclass(kw_only=True)
class DigitsConfig(ClassificationConfig):
    """scikit-learn's digits (and the spiking tasks built on them)."""

    test_fraction: float = setting(0.3, "fixed stratified test split (never used for any choice)", gt=0, lt=1)


@dataclass(kw_only=True)
class TextConfig(TaskConfig):
    """Character-level language modelling on CPython's own documentation."""

    test_fraction: float = setting(0.1, "documents held out for the test split", gt=0, lt=1)
    meta_fraction: float = setting(0.1, "documents held out for the meta split", gt=0, lt=1)
    max_chars: int = setting(400_000, "characters of the training split", ge=1)
    bptt: int = setting(35, "truncated back-propagation length", ge=1)
    meta_windows: str = setting("random", META_WINDOWS_HELP, choices=META_WINDOWS)


def stratified_holdout(
    y: torch.Tensor, fraction: float, num_classes: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split indices into (rest, holdout) with ``fraction`` of every class held out, from a fixed seed
    so that every run of a task sees the same test set."""
    g = torch.Generator().manual_seed(seed)
    hold = []
    for c in range(num_classes):
        idx = torch.nonzero(y == c).flatten()
        k = int(round(fraction * idx.numel()))
        hold.append(idx[torch.randperm(idx.numel(), generator=g)[:k]])
    hold_idx = torch.sort(torch.cat(hold)).values
    mask = torch.ones(y.numel(), dtype=torch.bool)
    mask[hold_idx] = False
    return torch.nonzero(mask).flatten(), hold_idx


def split_classification(
    x: torch.Tensor, y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, num_classes: int,
    cfg: ClassificationConfig, seed: int, device: torch.device,
) -> ClassificationData:
    """Carve the class-balanced meta set from the training data, subsample the training subset
    (``train_fraction``) and corrupt its labels; meta and test labels stay clean."""
    g = torch.Generator().manual_seed(cfg.split_seed)
    train_idx, meta_idx = class_balanced_split(y, cfg.meta_size, num_classes, g)
    frac = cfg.train_fraction
    if frac < 1.0:
        keep = torch.randperm(train_idx.numel(), generator=g)[: max(1, int(round(frac * train_idx.numel())))]
        train_idx = torch.sort(train_idx[keep]).values
    clean = y[train_idx]
    noisy = corrupt_labels(clean, cfg.noise.kind, cfg.noise.rate, num_classes,
                           torch.Generator().manual_seed(seed + 104729))
    return ClassificationData(
        train_x=x[train_idx].to(device), train_y=noisy.to(device),
        meta_x=x[meta_idx].to(device), meta_y=y[meta_idx].to(device),
        test_x=test_x.to(device), test_y=test_y.to(device),
        clean_train_y=clean.to(device),
    )


@register_dataset("digits", DigitsConfig)
def build_digits(cfg: DigitsConfig, seed: int, device: torch.device) -> ClassificationTask:
    """scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), scaled to [0, 1] and
    standardised; a fixed 30% stratified test split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target, dtype=torch.long)
    x = (x - 0.3) / 0.4
    rest, test = stratified_holdout(y, cfg.test_fraction, 10, seed=1234)
    data = split_classification(x[rest], y[rest], x[test], y[test], 10, cfg, seed, device)
    return ClassificationTask(TaskInfo(name=cfg.name, num_classes=10), data, cfg.model, cfg.model_kwargs,
                              cfg.batch_size, cfg.meta_batch_size, seed)


# Standard-library modules whose docstrings join pydoc's topics in the text corpus (fixed order,
# so the corpus is identical on every machine with the same CPython).
_DOC_MODULES = (
    "abc argparse ast asyncio base64 bisect calendar collections contextlib copy csv dataclasses datetime "
    "decimal difflib enum fnmatch fractions functools glob gzip hashlib heapq hmac html inspect io "
    "ipaddress itertools json logging math mimetypes numbers operator os pathlib pickle pprint queue random "
    "re sched secrets selectors shlex shutil signal socket statistics string struct subprocess tarfile "
    "tempfile textwrap threading time timeit tokenize traceback types typing unittest urllib uuid warnings "
    "weakref zipfile"
).split()


def cpython_documents() -> list[str]:
    """Documents of the CPython text corpus: every ``pydoc_data.topics`` entry, then the docstrings of
    ``_DOC_MODULES`` and their public members."""
    from pydoc_data.topics import topics

    docs = [topics[k] for k in sorted(topics)]
    for name in _DOC_MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        if mod.__doc__:
            docs.append(inspect.cleandoc(mod.__doc__))
        for attr in sorted(vars(mod)):
            if attr.startswith("_"):
                continue
            with warnings.catch_warnings():  # e.g. typing.re warns on attribute access
                warnings.simplefilter("ignore", DeprecationWarning)
                obj = getattr(mod, attr)
                if inspect.isclass(obj) or inspect.isfunction(obj):
                    if getattr(obj, "__module__", None) == name and obj.__doc__:
                        docs.append(inspect.cleandoc(obj.__doc__))
    return docs


def split_documents(
    docs: list[str], split_seed: int, test_fraction: float, meta_fraction: float
) -> tuple[list[str], list[str], list[str]]:
    """(train, meta, test) documents: shuffled with ``split_seed``, test first, then meta, the rest
    training, so the three splits share no document."""
    g = torch.Generator().manual_seed(split_seed)
    shuffled = [docs[i] for i in torch.randperm(len(docs), generator=g).tolist()]
    n_test = max(1, int(len(shuffled) * test_fraction))
    n_meta = max(1, int(len(shuffled) * meta_fraction))
    return shuffled[n_test + n_meta:], shuffled[n_test:n_test + n_meta], shuffled[:n_test]


@register_dataset("cpython_text", TextConfig)
def build_cpython_text(cfg: TextConfig, seed: int, device: torch.device) -> LanguageModelTask:
    """Character-level language modelling on CPython's own documentation.

    Documents are shuffled with a fixed seed and split into train / meta / test by document, so the
    three splits share no text. The vocabulary is the training characters plus ``<unk>``.
    """
    train_docs, meta_docs, test_docs = split_documents(cpython_documents(), cfg.split_seed, cfg.test_fraction,
                                                       cfg.meta_fraction)
    max_chars = cfg.max_chars

    def join(parts: list[str], limit: int) -> str:
        return "\n\n".join(parts)[:limit]

    train_text = join(train_docs, max_chars)
    meta_text = join(meta_docs, max(max_chars // 8, 10_000))
    test_text = join(test_docs, max(max_chars // 8, 10_000))
    vocab = ["<unk>"] + sorted(set(train_text))
    index = {ch: i for i, ch in enumerate(vocab)}

    def encode(s: str) -> torch.Tensor:
        return torch.tensor([index.get(ch, 0) for ch in s], dtype=torch.long, device=device)

    info = TaskInfo(
        name=cfg.name, num_classes=len(vocab), loss_scale=math.log(len(vocab)), metric="perplexity",
        higher_is_better=False,
    )
    return LanguageModelTask(
        info, encode(train_text), encode(meta_text), encode(test_text), cfg.model, cfg.model_kwargs, cfg.batch_size,
        cfg.bptt, cfg.meta_batch_size, seed, meta_windows=cfg.meta_windows,
    )
