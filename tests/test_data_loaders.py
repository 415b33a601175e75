"""Dataset loaders read tiny files written in each dataset's true on-disk format; nothing hits the network."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
import zipfile
from pathlib import Path

import pytest
import torch

from mlrsnet.errors import DataMissingError
from mlrsnet.tasks.data import download as download_mod
from mlrsnet.tasks.data.cifar import load_cifar10, load_cifar100
from mlrsnet.tasks.data.download import OFFLINE_ENV, Remote, ensure_files
from mlrsnet.tasks.data.svhn import load_svhn
from mlrsnet.tasks.data.text_corpora import load_ptb, load_wikitext2, tokenize_words
from mlrsnet.tasks.data.tinyimagenet import CACHE_NAME, load_tinyimagenet
from tests.fixtures_data import (
    COLOURS,
    WNIDS,
    write_cifar10,
    write_cifar100,
    write_svhn_mat,
    write_text_corpus,
    write_tinyimagenet,
)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any accidental download attempt fails the test instead of reaching the internet."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("tests must not open URLs")

    monkeypatch.setattr(download_mod.urllib.request, "urlopen", refuse)
    monkeypatch.delenv(OFFLINE_ENV, raising=False)


# ---------------------------------------------------------------- CIFAR


@pytest.mark.parametrize("python2", [False, True], ids=["python3-pickle", "python2-pickle"])
def test_cifar10_shapes_order_and_pixel_layout(tmp_path: Path, python2: bool) -> None:
    written = write_cifar10(tmp_path, python2=python2)
    s = load_cifar10(tmp_path, download=False)
    assert s.train_x.shape == (10, 3, 32, 32) and s.train_x.dtype == torch.uint8
    assert s.test_x.shape == (3, 3, 32, 32) and s.test_x.dtype == torch.uint8
    assert s.train_y.dtype == torch.int64 and s.test_y.dtype == torch.int64
    assert s.num_classes == 10 and len(s.mean) == 3 and len(s.std) == 3
    # Batches are concatenated in order 1..5.
    assert s.train_y.tolist() == [y for i in range(1, 6) for y in written[i][1]]
    assert s.test_y.tolist() == [9, 0, 5]
    # Row layout: 1024 R, 1024 G, 1024 B, each 32x32 row-major.
    x3, _ = written[3]
    c, h, w = 2, 5, 17
    assert s.train_x[4, c, h, w].item() == x3[0, c * 1024 + h * 32 + w]
    assert torch.equal(s.test_x[1], torch.from_numpy(written["test"][0][1].reshape(3, 32, 32)))


def test_cifar100_uses_fine_labels(tmp_path: Path) -> None:
    write_cifar100(tmp_path, [0, 99, 42, 7], [98, 1])
    s = load_cifar100(tmp_path, download=False)
    assert s.num_classes == 100
    assert s.train_x.shape == (4, 3, 32, 32) and s.test_x.shape == (2, 3, 32, 32)
    assert s.train_y.tolist() == [0, 99, 42, 7] and s.test_y.tolist() == [98, 1]


def test_cifar_batch_that_would_run_code_is_refused(tmp_path: Path) -> None:
    write_cifar10(tmp_path)

    class Evil:
        def __reduce__(self) -> tuple:
            return (os.system, ("echo pwned",))

    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f, protocol=2)
    with pytest.raises(DataMissingError, match="not a valid CIFAR batch"):
        load_cifar10(tmp_path, download=False)


# ---------------------------------------------------------------- SVHN


def test_svhn_layout_and_label_10_is_digit_0(tmp_path: Path) -> None:
    x_train = write_svhn_mat(tmp_path / "svhn" / "train_32x32.mat", [1, 10, 5, 9, 10], seed=0)
    write_svhn_mat(tmp_path / "svhn" / "test_32x32.mat", [10, 3], seed=1)
    s = load_svhn(tmp_path, download=False)
    assert s.train_x.shape == (5, 3, 32, 32) and s.train_x.dtype == torch.uint8
    assert s.test_x.shape == (2, 3, 32, 32)
    assert s.train_y.dtype == torch.int64
    assert s.train_y.tolist() == [1, 0, 5, 9, 0] and s.test_y.tolist() == [0, 3]
    assert s.num_classes == 10
    # MATLAB (H, W, C, N) -> (N, C, H, W)
    assert s.train_x[3, 1, 7, 20].item() == x_train[7, 20, 1, 3]


# ---------------------------------------------------------------- Tiny ImageNet

def _colour_class(img: torch.Tensor) -> int:
    """Index in WNIDS of the colour nearest to the image's mean colour (JPEG is lossy)."""
    mean = img.float().mean(dim=(1, 2))
    dists = [torch.dist(mean, torch.tensor(COLOURS[w], dtype=torch.float32)) for w in WNIDS]
    return int(torch.argmin(torch.stack(dists)))


def test_tinyimagenet_labels_from_wnids_and_val_annotations(tmp_path: Path) -> None:
    write_tinyimagenet(tmp_path)
    s = load_tinyimagenet(tmp_path, download=False)
    assert s.num_classes == 3
    assert s.train_x.shape == (7, 3, 64, 64) and s.train_x.dtype == torch.uint8
    assert s.test_x.shape == (4, 3, 64, 64) and s.test_x.dtype == torch.uint8
    assert s.train_y.dtype == torch.int64 and s.test_y.dtype == torch.int64
    assert s.train_y.tolist() == [0, 0, 1, 1, 2, 2, 2]  # wnids.txt order, files sorted within a class
    assert s.test_y.tolist() == [2, 0, 1, 2]
    for x, y in zip(s.test_x, s.test_y, strict=True):
        assert _colour_class(x) == int(y)
    grey = s.train_x[s.train_y == 2][-1]  # n03_grey sorts after n03_0 and n03_1
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])


def test_tinyimagenet_cache_is_written_once_and_then_used(tmp_path: Path) -> None:
    base = write_tinyimagenet(tmp_path)
    first = load_tinyimagenet(tmp_path, download=False)
    cache = base / CACHE_NAME
    assert cache.exists()
    assert not [p for p in base.iterdir() if p.name.endswith(".part")]
    for p in (base / "train").rglob("*.JPEG"):  # prove the second load never decodes JPEGs
        p.unlink()
    second = load_tinyimagenet(tmp_path, download=False)
    assert torch.equal(first.train_x, second.train_x) and torch.equal(first.test_y, second.test_y)


def test_tinyimagenet_corrupt_cache_is_rebuilt(tmp_path: Path) -> None:
    base = write_tinyimagenet(tmp_path)
    (base / CACHE_NAME).write_bytes(b"truncated")
    s = load_tinyimagenet(tmp_path, download=False)
    assert s.train_x.shape == (7, 3, 64, 64)
    assert zipfile.is_zipfile(base / CACHE_NAME)


# ---------------------------------------------------------------- text corpora

PTB_TRAIN = " the cat sat <unk> \n the dog ran \n"
PTB_VALID = " the cat ran \n"
PTB_TEST = " a dog sat \n"


def test_tokenize_words_builds_vocab_in_first_occurrence_order() -> None:
    ids, vocab = tokenize_words(["b a b", "", "   ", "c a"])
    assert vocab == ["b", "a", "<eos>", "c"]
    assert ids.dtype == torch.int64
    assert ids.tolist() == [0, 1, 0, 2, 3, 1, 2]  # blank lines produce no <eos>


def test_tokenize_words_with_fixed_vocab_maps_unknowns() -> None:
    ids, vocab = tokenize_words(["x b"], ["b", "<eos>", "<unk>"])
    assert vocab == ["b", "<eos>", "<unk>"] and ids.tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match="<unk>"):
        tokenize_words(["x"], ["b", "<eos>"])


def test_ptb_streams_and_vocab(tmp_path: Path) -> None:
    texts = {"train": PTB_TRAIN, "valid": PTB_VALID, "test": PTB_TEST}
    write_text_corpus(tmp_path / "ptb", "ptb.{}.txt", texts)
    s = load_ptb(tmp_path, download=False)
    assert s.vocab == ["the", "cat", "sat", "<unk>", "<eos>", "dog", "ran"]
    assert s.train.dtype == torch.int64 and s.train.dim() == 1
    words = [s.vocab[i] for i in s.train.tolist()]
    assert words == "the cat sat <unk> <eos> the dog ran <eos>".split()
    assert [s.vocab[i] for i in s.valid.tolist()] == "the cat ran <eos>".split()
    assert [s.vocab[i] for i in s.test.tolist()] == "<unk> dog sat <eos>".split()


def test_wikitext2_adds_unk_and_skips_blank_lines(tmp_path: Path) -> None:
    texts = {
        "train": " \n = Valkyria Chronicles = \n \n Senjō no Valkyria 3 \n",
        "valid": " \n = Chronicles of Senjō = \n",
        "test": " Valkyria 4 \n",
    }
    write_text_corpus(tmp_path / "wikitext-2-raw", "wiki.{}.raw", texts)
    s = load_wikitext2(tmp_path, download=False)
    assert s.vocab == ["=", "Valkyria", "Chronicles", "<eos>", "Senjō", "no", "3", "<unk>"]

    def words(ids: torch.Tensor) -> str:
        return " ".join(s.vocab[i] for i in ids.tolist())

    assert words(s.train) == "= Valkyria Chronicles = <eos> Senjō no Valkyria 3 <eos>"
    assert words(s.valid) == "= Chronicles <unk> Senjō = <eos>"
    assert words(s.test) == "Valkyria <unk> <eos>"


# ---------------------------------------------------------------- missing data and downloads

LOADERS = {
    "CIFAR-10": (load_cifar10, ["cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch"]),
    "CIFAR-100": (load_cifar100, ["cifar-100-python/train", "cifar-100-python/test"]),
    "SVHN": (load_svhn, ["svhn/train_32x32.mat", "svhn/test_32x32.mat"]),
    "Tiny ImageNet": (load_tinyimagenet, ["tiny-imagenet-200/wnids.txt", "tiny-imagenet-200/val/images"]),
    "Penn Treebank": (load_ptb, ["ptb/ptb.train.txt", "ptb/ptb.test.txt"]),
    "WikiText-2": (load_wikitext2, ["wikitext-2-raw/wiki.train.raw", "wikitext-2-raw/wiki.test.raw"]),
}


@pytest.mark.parametrize("name", LOADERS)
def test_missing_dataset_with_downloads_disabled_is_a_one_line_error(tmp_path: Path, name: str) -> None:
    loader, expected = LOADERS[name]
    with pytest.raises(DataMissingError) as info:
        loader(tmp_path / "nowhere", download=False)
    message = str(info.value)
    assert "\n" not in message
    assert name in message and str(tmp_path / "nowhere") in message and "http" in message
    for f in expected:
        assert f in message


@pytest.mark.parametrize("name", LOADERS)
def test_offline_machine_gives_the_same_error(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def offline(request: object, timeout: float) -> None:
        calls.append(request)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(download_mod.urllib.request, "urlopen", offline)
    loader, expected = LOADERS[name]
    with pytest.raises(DataMissingError, match="name resolution") as info:
        loader(tmp_path, download=True)
    assert calls, "download=True should have tried the network"
    assert "\n" not in str(info.value) and expected[0] in str(info.value)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()], "a failed download must leave no files"


def test_offline_environment_variable_vetoes_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(OFFLINE_ENV, "1")
    with pytest.raises(DataMissingError, match=OFFLINE_ENV):
        load_cifar10(tmp_path, download=True)  # the autouse fixture fails the test if a URL is opened


class _FakeResponse(io.BytesIO):
    def __enter__(self) -> _FakeResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve(monkeypatch: pytest.MonkeyPatch, payloads: dict[str, bytes]) -> list[str]:
    fetched: list[str] = []

    def urlopen(request: download_mod.urllib.request.Request, timeout: float) -> _FakeResponse:
        fetched.append(request.full_url)
        return _FakeResponse(payloads[request.full_url])

    monkeypatch.setattr(download_mod.urllib.request, "urlopen", urlopen)
    return fetched


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            t.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def test_download_verifies_md5_unpacks_and_leaves_no_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = _tar_gz({"ds/a.txt": b"alpha", "ds/sub/b.txt": b"beta"})
    url = "https://example.org/ds.tar.gz"
    fetched = _serve(monkeypatch, {url: archive})
    remote = Remote(url, hashlib.md5(archive).hexdigest(), unpack=True)
    root = ensure_files(tmp_path, "DS", ["ds/a.txt", "ds/sub/b.txt"], [remote])
    assert root == tmp_path and fetched == [url]
    assert (tmp_path / "ds/sub/b.txt").read_bytes() == b"beta"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no archive, no scratch dirs
    ensure_files(tmp_path, "DS", ["ds/a.txt"], [remote])
    assert fetched == [url], "present files must not be downloaded again"


def test_download_of_single_files_skips_those_already_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls = ["https://example.org/one.bin", "https://example.org/two.bin"]
    fetched = _serve(monkeypatch, {urls[0]: b"1", urls[1]: b"2"})
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "one.bin").write_bytes(b"1")
    remotes = [Remote(u, None, subdir="d") for u in urls]
    ensure_files(tmp_path, "DS", ["d/one.bin", "d/two.bin"], remotes)
    assert fetched == [urls[1]] and (tmp_path / "d" / "two.bin").read_bytes() == b"2"
    assert (tmp_path / "d" / "two.bin").stat().st_mode & 0o777 == 0o644


def test_download_with_wrong_md5_is_discarded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = "https://example.org/x.mat"
    _serve(monkeypatch, {url: b"corrupted"})
    with pytest.raises(DataMissingError, match="MD5 mismatch") as info:
        ensure_files(tmp_path, "DS", ["x.mat"], [Remote(url, "0" * 32)])
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_download_that_lacks_the_expected_files_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("other/readme.txt", "hi")
    url = "https://example.org/ds.zip"
    _serve(monkeypatch, {url: buf.getvalue()})
    with pytest.raises(DataMissingError, match="did not contain"):
        ensure_files(tmp_path, "DS", ["ds/a.txt"], [Remote(url, None, unpack=True)])
