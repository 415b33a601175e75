"""Meta split (class-balanced, disjoint from training) and label noise (training split only)."""

import pytest
import torch

from mlrsnet.engine.config import parse_config
from mlrsnet.errors import ConfigError
from mlrsnet.tasks import build_task
from mlrsnet.tasks.base import ClassificationConfig
from mlrsnet.tasks.data.splits import class_balanced_split, corrupt_labels, reference_transition
from mlrsnet.tasks.offline import split_classification
from tests.conftest import compose


def test_class_balanced_split_is_disjoint_and_balanced():
    y = torch.arange(10).repeat_interleave(50)[torch.randperm(500, generator=torch.Generator().manual_seed(0))]
    train_idx, meta_idx = class_balanced_split(y, 100, 10, torch.Generator().manual_seed(1))
    assert set(train_idx.tolist()).isdisjoint(meta_idx.tolist())
    assert len(train_idx) + len(meta_idx) == 500
    assert torch.bincount(y[meta_idx], minlength=10).tolist() == [10] * 10


@pytest.mark.parametrize("meta_size", [13, 19, 7])
def test_meta_split_remainder_goes_one_each_to_the_first_classes(meta_size):
    """Guards the remainder rule of the class-balanced meta split when meta_size is not a multiple of the
    class count: exactly meta_size examples, meta_size // C of every class plus one more for each of the
    first meta_size % C classes (an off-by-one gives one too many or too few)."""
    y = torch.arange(10).repeat_interleave(30)[torch.randperm(300, generator=torch.Generator().manual_seed(0))]
    train_idx, meta_idx = class_balanced_split(y, meta_size, 10, torch.Generator().manual_seed(1))
    q, r = divmod(meta_size, 10)
    assert torch.bincount(y[meta_idx], minlength=10).tolist() == [q + 1] * r + [q] * (10 - r)
    assert len(meta_idx) == meta_size and len(train_idx) == 300 - meta_size
    assert set(train_idx.tolist()).isdisjoint(meta_idx.tolist())


@pytest.mark.parametrize("train_fraction", [0.3, 0.77])
def test_subsampled_training_set_never_holds_a_meta_example(train_fraction):
    """Guards against a meta leak under train_fraction < 1: the subsample must be drawn from the
    training part left after the meta split, not from the full training set."""
    n = 400
    x = torch.arange(n, dtype=torch.float32).reshape(n, 1)  # each example is its own index
    y = torch.arange(4).repeat(n // 4)
    cfg = ClassificationConfig(name="toy", dataset="toy", model="toy", batch_size=8, meta_batch_size=8, meta_size=40,
                               train_fraction=train_fraction)
    data = split_classification(x, y, x[:4], y[:4], 4, cfg, seed=0, device=torch.device("cpu"))
    train, meta = set(data.train_x.flatten().tolist()), set(data.meta_x.flatten().tolist())
    assert train.isdisjoint(meta)
    assert len(train) == round(train_fraction * (n - 40)) and len(meta) == 40
    assert torch.equal(data.train_y, y[data.train_x.flatten().long()])


def test_split_takes_every_example_of_a_class_when_asked_and_allows_no_meta_set():
    y = torch.tensor([0, 0, 1, 1, 1, 1])
    train_idx, meta_idx = class_balanced_split(y, 4, 2, torch.Generator().manual_seed(0))
    assert sorted(y[meta_idx].tolist()) == [0, 0, 1, 1] and y[train_idx].tolist() == [1, 1]
    train_idx, meta_idx = class_balanced_split(y, 0, 2, torch.Generator())
    assert meta_idx.numel() == 0 and train_idx.tolist() == list(range(6))


def test_split_errors_are_clear():
    y = torch.arange(3).repeat(4)
    with pytest.raises(ConfigError, match="meta_size=12 is not smaller .* lower task.meta_size"):
        class_balanced_split(y, 12, 3, torch.Generator())
    with pytest.raises(ConfigError, match="meta_size must be >= 0, got -1"):
        class_balanced_split(y, -1, 3, torch.Generator())
    with pytest.raises(ConfigError, match="class 0"):
        class_balanced_split(torch.tensor([0, 1, 1, 1, 1, 1]), 4, 2, torch.Generator())


@pytest.mark.parametrize("kind", ["sym", "pair"])
@pytest.mark.parametrize("rate", [0.2, 0.4, 0.8])
def test_realised_noise_rate_matches_request(kind, rate):
    y = torch.arange(10).repeat(100)
    noisy = corrupt_labels(y, kind, rate, 10, torch.Generator().manual_seed(3))
    flipped = noisy != y
    assert int(flipped.sum()) == round(rate * len(y))
    assert noisy.min() >= 0 and noisy.max() < 10
    if kind == "pair":
        assert torch.equal(noisy[flipped], (y[flipped] + 1) % 10)
    else:
        # symmetric: flipped labels are spread over all other classes
        assert len(set((noisy[flipped] - y[flipped]).remainder(10).tolist())) == 9


@pytest.mark.parametrize("n,rate", [(9, 0.3), (100, 0.29), (1000, 0.4555)])
def test_noise_count_is_rounded_not_truncated(n, rate):
    """Guards the rounding of the number of corrupted labels: round(rate * n), where int() would
    truncate (2.7 -> 2; 0.29 * 100 is 28.999999999999996 in floating point; 455.5 -> 456)."""
    y = torch.arange(10).repeat(n // 10 + 1)[:n]
    for kind in ("sym", "pair"):
        noisy = corrupt_labels(y, kind, rate, 10, torch.Generator().manual_seed(3))
        assert int((noisy != y).sum()) == round(rate * n)


def test_noise_aliases_and_two_classes():
    """The documented aliases mean what they say, and two classes are enough for label noise (pair and
    symmetric noise then both swap the two labels)."""
    y = torch.arange(10).repeat(20)
    for alias, kind in (("asym", "pair"), ("asymmetric", "pair"), ("symmetric", "sym"), ("uniform", "sym")):
        assert torch.equal(corrupt_labels(y, alias, 0.3, 10, torch.Generator().manual_seed(4)),
                           corrupt_labels(y, kind, 0.3, 10, torch.Generator().manual_seed(4)))
    assert torch.equal(corrupt_labels(y, "none", 0.3, 10, torch.Generator()), y)
    binary = torch.arange(2).repeat(50)
    for kind in ("sym", "pair"):
        noisy = corrupt_labels(binary, kind, 0.2, 2, torch.Generator().manual_seed(0))
        flipped = noisy != binary
        assert int(flipped.sum()) == 20 and torch.equal(noisy[flipped], 1 - binary[flipped])


def test_noise_is_seeded():
    y = torch.arange(10).repeat(50)
    a = corrupt_labels(y, "sym", 0.4, 10, torch.Generator().manual_seed(5))
    b = corrupt_labels(y, "sym", 0.4, 10, torch.Generator().manual_seed(5))
    c = corrupt_labels(y, "sym", 0.4, 10, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_noise_rate_out_of_range():
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        corrupt_labels(torch.arange(10), "sym", 1.0, 10, torch.Generator())
    with pytest.raises(ConfigError, match="noise kind"):
        corrupt_labels(torch.arange(10), "weird", 0.2, 10, torch.Generator())
    with pytest.raises(ConfigError, match="label noise needs at least 2 classes"):
        corrupt_labels(torch.zeros(10, dtype=torch.long), "sym", 0.2, 1, torch.Generator())


@pytest.fixture(scope="module")
def digits_task():
    """The default digits_cnn task (meta_size 100, no noise), built once: the tests below only read it."""
    return build_task(parse_config(compose(overrides=["+task=digits_cnn"])).task, seed=0)


def test_digits_task_noise_touches_training_split_only(digits_task):
    noisy = parse_config(compose(overrides=["+task=digits_cnn", "task.noise.kind=sym", "task.noise.rate=0.4"])).task
    a, b = digits_task, build_task(noisy, seed=0)
    assert torch.equal(a.data.meta_y, b.data.meta_y) and torch.equal(a.data.meta_x, b.data.meta_x)
    assert torch.equal(a.data.test_y, b.data.test_y) and torch.equal(a.data.test_x, b.data.test_x)
    assert torch.equal(a.data.train_x, b.data.train_x)
    realised = (b.data.train_y != b.data.clean_train_y).float().mean().item()
    assert realised == pytest.approx(0.4, abs=1 / len(b.data.train_y))
    assert torch.equal(a.data.train_y, b.data.clean_train_y)


def test_digits_meta_set_is_disjoint_from_training_and_test(digits_task):
    d = digits_task.data
    assert torch.bincount(d.meta_y, minlength=10).tolist() == [10] * 10

    def rows(x):
        return {tuple(r.tolist()) for r in x.flatten(1)}

    # digits has a few exact duplicate images, so compare by index via the builder's split instead:
    n_total = len(d.train_y) + len(d.meta_y) + len(d.test_y)
    assert n_total == 1797
    assert len(rows(d.meta_x) & rows(d.test_x)) <= 2
    assert len(rows(d.meta_x) & rows(d.train_x)) <= 2


def test_reference_unif_redraws_each_label_uniformly_with_probability_rate():
    """The reference's 'unif' (uniform_mix_C): rate/C everywhere plus 1 - rate on the diagonal; each label
    redrawn independently, so the realised rate is about rate * (C - 1) / C and the true class may come back."""
    c, rate = 10, 0.4
    t = reference_transition("unif", rate, c)
    for i in range(c):
        for j in range(c):
            assert float(t[i, j]) == pytest.approx((1 - rate) * (i == j) + rate / c)
    y = torch.arange(c).repeat(3000)
    noisy = corrupt_labels(y, "unif", rate, c, torch.Generator().manual_seed(0))
    flipped = noisy != y
    # binomial: n = 30000, p = 0.36, sd 0.0028; 4 sd
    assert abs(float(flipped.float().mean()) - rate * (c - 1) / c) < 0.012
    counts = torch.bincount((noisy[flipped] - y[flipped]).remainder(c), minlength=c)[1:]
    assert counts.min() > 0.8 * counts.float().mean() and counts.max() < 1.2 * counts.float().mean()
    assert noisy.dtype == y.dtype
    again = corrupt_labels(y, "unif", rate, c, torch.Generator().manual_seed(0))
    other = corrupt_labels(y, "unif", rate, c, torch.Generator().manual_seed(1))
    assert torch.equal(noisy, again) and not torch.equal(noisy, other)


def test_reference_flip_sends_each_class_to_one_fixed_other_class():
    """The reference's 'flip' (flip_labels_C): 1 - rate on the diagonal, rate on one other class per row,
    the mapping fixed across runs (the reference seeds it with 1); the draws follow the run's generator."""
    c, rate = 10, 0.4
    t = reference_transition("flip", rate, c)
    assert torch.allclose(t.sum(1), torch.ones(c, dtype=t.dtype))
    assert torch.allclose(torch.diagonal(t), torch.full((c,), 1 - rate, dtype=t.dtype))
    off = t - torch.diag(torch.diagonal(t))
    assert torch.equal((off > 0).sum(1), torch.ones(c, dtype=torch.long))
    target = off.argmax(1)
    assert torch.equal(target, reference_transition("flip", 0.2, c).sub(torch.eye(c, dtype=t.dtype) * 0.8).argmax(1))
    y = torch.arange(c).repeat(3000)
    noisy = corrupt_labels(y, "flip", rate, c, torch.Generator().manual_seed(2))
    flipped = noisy != y
    assert torch.equal(noisy[flipped], target[y[flipped]])
    assert abs(float(flipped.float().mean()) - rate) < 0.012
    other = corrupt_labels(y, "flip", rate, c, torch.Generator().manual_seed(3))
    assert not torch.equal(noisy, other) and torch.equal(other[other != y], target[y[other != y]])


def test_reference_noise_reaches_a_task_from_the_command_line():
    from mlrsnet.tasks.registry import build_task

    task = build_task({"name": "digits_cnn", "dataset": "digits", "model": "cnn", "model_kwargs": {},
                       "test_fraction": 0.3, "meta_size": 100, "meta_batch_size": 100, "batch_size": 64,
                       "train_fraction": 1.0, "noise": {"kind": "unif", "rate": 0.4}}, seed=0)
    clean = build_task({"name": "digits_cnn", "dataset": "digits", "model": "cnn", "model_kwargs": {},
                        "test_fraction": 0.3, "meta_size": 100, "meta_batch_size": 100, "batch_size": 64,
                        "train_fraction": 1.0, "noise": {"kind": "none", "rate": 0.0}}, seed=0)
    rate = float((task.data.train_y != clean.data.train_y).float().mean())
    assert 0.30 < rate < 0.42
    assert torch.equal(task.data.meta_y, clean.data.meta_y)
