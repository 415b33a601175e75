"""Tasks whose data ships offline: scikit-learn's digits and text that ships with CPython."""

from __future__ import annotations

import importlib
import inspect
import math
import warnings

import torch

from mlrsnet.errors import ConfigError
from mlrsnet.tasks.base import ClassificationData, ClassificationTask, LanguageModelTask, TaskInfo
from mlrsnet.tasks.data.splits import class_balanced_split, corrupt_labels
from mlrsnet.tasks.registry import register_dataset


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
    x: torch.Tensor, y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, num_classes: int, cfg: dict,
    seed: int, device: torch.device,
) -> ClassificationData:
    """Carve the class-balanced meta set from the training data, subsample the training subset
    (``train_fraction``) and corrupt its labels; meta and test labels stay clean."""
    g = torch.Generator().manual_seed(int(cfg.get("split_seed", 0)))
    train_idx, meta_idx = class_balanced_split(y, int(cfg["meta_size"]), num_classes, g)
    frac = float(cfg.get("train_fraction", 1.0))
    if not 0.0 < frac <= 1.0:
        raise ConfigError(f"task.train_fraction must be in (0, 1], got {frac}")
    if frac < 1.0:
        keep = torch.randperm(train_idx.numel(), generator=g)[: max(1, int(round(frac * train_idx.numel())))]
        train_idx = torch.sort(train_idx[keep]).values
    clean = y[train_idx]
    noise = cfg.get("noise") or {}
    noisy = corrupt_labels(
        clean, str(noise.get("kind", "none")), float(noise.get("rate", 0.0)), num_classes,
        torch.Generator().manual_seed(seed + 104729),
    )
    return ClassificationData(
        train_x=x[train_idx].to(device), train_y=noisy.to(device),
        meta_x=x[meta_idx].to(device), meta_y=y[meta_idx].to(device),
        test_x=test_x.to(device), test_y=test_y.to(device),
        clean_train_y=clean.to(device),
    )


@register_dataset("digits")
def build_digits(cfg: dict, seed: int, device: torch.device) -> ClassificationTask:
    """scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), scaled to [0, 1] and
    standardised; a fixed 30% stratified test split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target, dtype=torch.long)
    x = (x - 0.3) / 0.4
    rest, test = stratified_holdout(y, float(cfg.get("test_fraction", 0.3)), 10, seed=1234)
    data = split_classification(x[rest], y[rest], x[test], y[test], 10, cfg, seed, device)
    return ClassificationTask(
        TaskInfo(name=cfg["name"], num_classes=10), data, cfg["model"], dict(cfg.get("model_kwargs") or {}),
        cfg["batch_size"], cfg["meta_batch_size"], seed,
    )


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


@register_dataset("cpython_text")
def build_cpython_text(cfg: dict, seed: int, device: torch.device) -> LanguageModelTask:
    """Character-level language modelling on CPython's own documentation.

    Documents are shuffled with a fixed seed and split into train / meta / test by document, so the
    three splits share no text. The vocabulary is the training characters plus ``<unk>``.
    """
    train_docs, meta_docs, test_docs = split_documents(
        cpython_documents(), int(cfg.get("split_seed", 0)), float(cfg.get("test_fraction", 0.1)),
        float(cfg.get("meta_fraction", 0.1)),
    )
    max_chars = int(cfg.get("max_chars", 400_000))

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
        name=cfg["name"], num_classes=len(vocab), loss_scale=math.log(len(vocab)), metric="perplexity",
        higher_is_better=False,
    )
    return LanguageModelTask(
        info, encode(train_text), encode(meta_text), encode(test_text), cfg["model"],
        dict(cfg.get("model_kwargs") or {}), cfg["batch_size"], cfg["bptt"], cfg["meta_batch_size"], seed,
    )
