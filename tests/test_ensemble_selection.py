"""Team selection and combiners (mlrsnet.ensemble.selection): brute force, greedy with replacement, focal
pruning, and that no choice reads the test split."""

import numpy as np
import pytest

from mlrsnet.engine.config import EnsembleConfig
from mlrsnet.ensemble import Pool, combine, ensemble_accuracy, select
from mlrsnet.ensemble.selection import _two_means, count_teams
from mlrsnet.ensemble.study import ensemble_rows
from mlrsnet.errors import ConfigError


def onehot_like(pred: np.ndarray, labels: np.ndarray, p_right: float, p_wrong: float, classes: int) -> np.ndarray:
    """Probabilities that put ``p_right`` on the label where ``pred`` is right, ``p_wrong`` on ``pred`` where
    it is wrong, the rest spread evenly."""
    n = len(pred)
    out = np.zeros((n, classes))
    for i, (p, y) in enumerate(zip(pred, labels, strict=True)):
        top = p_right if p == y else p_wrong
        out[i] = (1 - top) / (classes - 1)
        out[i, p] = top
    return out


def synthetic_pool(seed: int = 0, n: int = 60, classes: int = 3) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Three complementary experts hidden among five weak models; returns probs, labels and the experts'
    indices. Expert k errs on the k-th third of the examples only, more confidently (0.7) than it is right
    (0.6): any two of them disagree on a third and the wrong one wins there, all three are always right
    (every example has two right votes, and a soft average of 0.45 on the label against 0.37)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    wrong = (labels + 1) % classes
    thirds = np.arange(n) % 3
    models = []
    for k in range(3):  # expert k errs on third k only
        pred = np.where(thirds == k, wrong, labels)
        models.append(onehot_like(pred, labels, 0.6, 0.7, classes))
    for _ in range(5):
        pred = np.where(rng.random(n) < 0.3, labels, rng.integers(0, classes, n))  # ~53%
        models.append(onehot_like(pred, labels, 0.7, 0.7, classes))
    order = rng.permutation(len(models))
    probs = np.stack(models)[order]
    experts = tuple(sorted(int(np.flatnonzero(order == k)[0]) for k in range(3)))
    return probs, labels, experts


@pytest.mark.parametrize("combiner", ["soft", "plurality"])
def test_brute_force_finds_the_known_best_team(combiner):
    probs, labels, experts = synthetic_pool()
    sel = select(probs, labels, "brute", combiner, max_size=4)
    assert sel.members == experts
    assert sel.accuracy == 1.0
    # each expert alone is at 2/3: the team is what makes it perfect
    for e in experts:
        assert ensemble_accuracy(probs, labels, [e], combiner) == pytest.approx(2 / 3)


def test_greedy_with_replacement_picks_a_member_twice_when_that_helps():
    # labels 0 0 1; A says class 0 everywhere (2/3); B errs on example 0, confidently (2/3).
    labels = np.array([0, 0, 1])
    a = np.array([[0.7, 0.3], [0.7, 0.3], [0.6, 0.4]])
    b = np.array([[0.2, 0.8], [0.9, 0.1], [0.1, 0.9]])
    probs = np.stack([a, b])
    # A + B averages to 0.45 / 0.8 / 0.35 on class 0: 2/3; 2A + B to 0.53 / 0.77 / 0.43: all right.
    assert ensemble_accuracy(probs, labels, [0, 1]) == pytest.approx(2 / 3)
    assert ensemble_accuracy(probs, labels, [0, 0, 1]) == 1.0
    sel = select(probs, labels, "greedy", "soft", bag_size=3)  # picks A, then B, then A again
    assert sel.weights == {0: 2, 1: 1}
    assert sel.accuracy == 1.0
    # a longer path keeps a perfect ensemble with a lower cross-entropy, still weighting A above B
    longer = select(probs, labels, "greedy", "soft", bag_size=6)
    assert longer.accuracy == 1.0 and longer.weights[0] > longer.weights[1] >= 1 and longer.nll <= sel.nll
    # without replacement (brute force over distinct members) the best is 2/3
    assert select(probs, labels, "brute", "soft", max_size=2).accuracy == pytest.approx(2 / 3)


def test_greedy_sorted_initialisation_starts_from_the_best_k():
    probs, labels, experts = synthetic_pool(1)
    sel = select(probs, labels, "greedy", "soft", bag_size=1, init_k=3)
    # the three most accurate models are the experts; one more pick cannot beat their perfect team
    assert set(sel.members) == set(experts) and len(sel.members) == 3


def test_focal_pruning_keeps_the_accurate_diverse_cluster_and_chooses_in_it():
    probs, labels, experts = synthetic_pool(2)
    sel = select(probs, labels, "focal", "plurality", max_size=3, metrics=["GD", "KW"])
    cand = sel.candidates
    assert len(cand["teams"]) == count_teams(8, 3)
    kept = cand["kept"]
    assert 0 < kept.sum() < len(kept)
    # the kept cluster is the accurate one: its worst team beats the mean of the pruned ones
    assert cand["accuracy"][kept].mean() > cand["accuracy"][~kept].mean()
    assert sel.members == experts
    assert sel.accuracy == cand["accuracy"][kept].max()


def test_two_means_starts_from_the_extremes():
    acc = np.array([0.9, 0.91, 0.92, 0.5, 0.52, 0.55])
    div = np.array([0.1, 0.2, 0.15, 0.8, 0.9, 0.7])  # lower = more diverse
    assert _two_means(acc, div).tolist() == [True, True, True, False, False, False]


def test_plurality_voting_counts_votes_and_breaks_ties_by_the_soft_average():
    p = np.array([[[0.9, 0.1, 0.0]], [[0.4, 0.6, 0.0]], [[0.45, 0.55, 0.0]]])
    # votes: class 0 once, class 1 twice -> plurality says 1; the soft average says 0 (0.583 vs 0.417)
    assert combine(p, [0, 1, 2], "plurality").tolist() == [1]
    assert combine(p, [0, 1, 2], "soft").tolist() == [0]
    # two members, one vote each: the tie goes to the larger average
    assert combine(p, [0, 1], "plurality").tolist() == [0]
    assert combine(p, [0, 1, 1], "plurality").tolist() == [1]  # a repeated member votes twice


def test_bad_requests_are_one_line_errors():
    probs, labels, _ = synthetic_pool()
    with pytest.raises(ConfigError, match="unknown selection method"):
        select(probs, labels, "random")
    with pytest.raises(ConfigError, match="unknown combiner"):
        select(probs, labels, "all", "median")
    with pytest.raises(ConfigError, match="exceed max_teams=10"):
        select(probs, labels, "brute", max_size=3, max_teams=10)
    with pytest.raises(ConfigError, match=r"probs\[models, examples, classes\]"):
        select(probs[0], labels)


CFG = {"methods": ["all", "brute", "greedy", "focal"], "combiners": ["soft", "plurality"], "max_team_size": 3,
       "max_teams": 20000, "greedy": {"bag_size": 6, "init_k": 0}, "focal": {"metrics": ["CK", "GD", "KW"]}}


def test_no_choice_reads_the_test_split():
    probs, labels, _ = synthetic_pool(3)
    test_probs, test_labels, _ = synthetic_pool(4)
    names = [f"m{i}" for i in range(len(probs))]

    def choices(tp: np.ndarray, tl: np.ndarray) -> list[tuple]:
        pool = Pool(names, names, probs.astype(np.float32), labels, tp.astype(np.float32), tl, [{}] * len(names))
        rows, _ = ensemble_rows(pool, EnsembleConfig(**CFG), seed=0)
        return [(r["method"], r["combiner"], r["team"], r["meta_accuracy"]) for r in rows], rows

    base, base_rows = choices(test_probs, test_labels)
    rng = np.random.default_rng(0)
    shuffled, _ = choices(test_probs, rng.permutation(test_labels))
    corrupted, corrupted_rows = choices(rng.random(test_probs.shape), (test_labels + 1) % 3)
    assert base == shuffled == corrupted
    assert len(base) == 1 + 4 * 2
    # the test accuracies did change: the test split was read, after the choices
    assert [r["test_accuracy"] for r in base_rows] != [r["test_accuracy"] for r in corrupted_rows]
