"""The six diversity metrics and focal diversity (mlrsnet.ensemble.diversity) on hand-made predictions, every
expected value worked out by hand below."""

from itertools import combinations

import numpy as np
import pytest

from mlrsnet.ensemble import (
    binary_disagreement,
    cohen_kappa,
    fleiss_kappa,
    focal_diversity,
    focal_diversity_table,
    generalized_diversity,
    kohavi_wolpert,
    q_statistic,
)
from mlrsnet.errors import ConfigError

# Three members, six examples, three classes.
LABELS = np.array([0, 1, 2, 0, 1, 2])
PREDS = np.array([
    [0, 1, 2, 1, 1, 0],  # right on 0 1 2 . 4 .
    [0, 2, 2, 0, 1, 1],  # right on 0 . 2 3 4 .
    [1, 1, 0, 0, 1, 0],  # right on . 1 . 3 4 .
])


def test_q_statistic_by_hand():
    # pairs (N11, N00, N10, N01): (0,1) = (3,1,1,1): Q = (3 - 1) / (3 + 1) = 1/2; (0,2) = (2,1,2,1): Q = 0;
    # (1,2) = (2,1,2,1): Q = 0. Mean 1/6.
    assert q_statistic(PREDS, LABELS) == pytest.approx(1 / 6)


def test_binary_disagreement_by_hand():
    # disagreements (N01 + N10) / N: (0,1) 2/6, (0,2) 3/6, (1,2) 3/6; mean 4/9; reported 1 - 4/9.
    assert binary_disagreement(PREDS, LABELS) == pytest.approx(5 / 9)


def test_cohen_kappa_by_hand():
    # (0,1): p_o = 3/6, label counts (2,3,1) and (2,2,2): p_e = 12/36, kappa = (1/2 - 1/3) / (2/3) = 1/4
    # (0,2): p_o = 3/6, counts (2,3,1) and (3,3,0): p_e = 15/36, kappa = (1/12) / (7/12) = 1/7
    # (1,2): p_o = 2/6, counts (2,2,2) and (3,3,0): p_e = 12/36, kappa = 0.   Mean (1/4 + 1/7) / 3 = 11/84.
    assert cohen_kappa(PREDS) == pytest.approx(11 / 84)


def test_fleiss_kappa_by_hand():
    # Per example, votes per class and P_n = (sum n^2 - 3) / 6: five examples split 2-1 (P = 1/3), example 4
    # unanimous (P = 1): Pbar = (5/3 + 1) / 6 = 4/9. Class totals 7, 8, 3 of 18: Pe = (49 + 64 + 9) / 324 = 61/162.
    # kappa = (4/9 - 61/162) / (1 - 61/162) = 11/101.
    assert fleiss_kappa(PREDS, LABELS) == pytest.approx(11 / 101)
    assert fleiss_kappa(PREDS, LABELS, num_classes=7) == pytest.approx(11 / 101)  # empty classes change nothing


def test_kohavi_wolpert_by_hand():
    # members right per example l = 2 2 2 2 3 0: sum l (3 - l) = 8; KW = 8 / (6 * 9) = 4/27; reported 1 - 4/27.
    assert kohavi_wolpert(PREDS, LABELS) == pytest.approx(23 / 27)


def test_generalized_diversity_by_hand():
    # members wrong per example 1 1 1 1 0 3: p_1 = 4/6, p_3 = 1/6; p(1) = (1/3)(4/6) + 1 (1/6) = 7/18,
    # p(2) = 1 (1/6) = 3/18; GD = 1 - 3/7; reported 1 - GD = 3/7.
    assert generalized_diversity(PREDS, LABELS) == pytest.approx(3 / 7)


def test_identical_members_are_the_least_diverse():
    same = np.array([[0, 1, 1, 2], [0, 1, 1, 2]])
    labels = np.array([0, 1, 2, 2])
    assert cohen_kappa(same) == 1.0 and fleiss_kappa(same, labels) == 1.0
    assert binary_disagreement(same, labels) == 1.0 and q_statistic(same, labels) == 1.0
    # one example both wrong: KW = 0 (no split votes), GD: p(2)/p(1) = 1 (failures always coincide)
    assert kohavi_wolpert(same, labels) == 1.0 and generalized_diversity(same, labels) == 1.0
    # a more diverse pair scores lower on every metric
    other = np.array([[0, 1, 1, 2], [0, 0, 2, 2]])
    for fn in (cohen_kappa, fleiss_kappa, binary_disagreement, kohavi_wolpert, generalized_diversity):
        assert fn(other, labels) < fn(same, labels)


def test_focal_diversity_by_hand():
    # Negative samples: member 0 errs on examples 3, 5; member 1 on 1, 5; member 2 on 0, 2, 5.
    # KW on them: l = (2, 0) -> 1 - 2/18 = 8/9; l = (2, 0) -> 8/9; l = (2, 2, 0) -> 1 - 4/27 = 23/27.
    # Focal diversity = (8/9 + 8/9 + 23/27) / 3 = 71/81.
    assert focal_diversity(PREDS, LABELS, [0, 1, 2], "KW") == pytest.approx(71 / 81)
    table = focal_diversity_table(PREDS, LABELS, [(0, 1, 2)], ["KW", "GD"])
    assert table[0, 0] == pytest.approx(71 / 81)
    # GD on them: wrong counts (1, 3) -> p(1) = (1/3 + 1)/2 = 2/3, p(2) = 1/2 -> 3/4; (1, 3) -> 3/4;
    # (1, 1, 3) -> p(1) = 5/9, p(2) = 1/3 -> 3/5. Mean (3/4 + 3/4 + 3/5) / 3 = 7/10.
    assert table[0, 1] == pytest.approx(7 / 10)


def test_the_vectorised_table_matches_the_definitions():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 40)
    preds = np.where(rng.random((6, 40)) < 0.7, labels, rng.integers(0, 4, (6, 40)))
    teams = [t for k in (2, 3, 4) for t in combinations(range(6), k)]
    metrics = ["CK", "QS", "BD", "FK", "KW", "GD"]
    table = focal_diversity_table(preds, labels, teams, metrics, num_classes=4)
    for i, team in enumerate(teams):
        for j, m in enumerate(metrics):
            assert table[i, j] == pytest.approx(focal_diversity(preds, labels, team, m), abs=1e-12), (team, m)


def test_a_team_without_mistakes_has_no_focal_diversity_and_bad_input_is_one_line():
    labels = np.array([0, 1])
    assert np.isnan(focal_diversity_table(np.array([[0, 1], [0, 1]]), labels, [(0, 1)], ["KW"])[0, 0])
    with pytest.raises(ConfigError, match="unknown diversity metric XX"):
        focal_diversity_table(PREDS, LABELS, [(0, 1)], ["XX"])
    with pytest.raises(ConfigError, match="at least 2 members"):
        kohavi_wolpert(PREDS[:1], LABELS)
