r"""Ensemble diversity metrics and EnsembleBench's focal diversity, oriented so that lower = more diverse.

Wu, Liu et al., "Promoting High Diversity Ensemble Learning with EnsembleBench" (CogMI 2020) and
"Boosting Ensemble Accuracy by Revisiting Ensemble Diversity Metrics" (CVPR 2021). A team's predictions
are a matrix ``preds[L, N]`` of class labels (``L`` members, ``N`` examples) with true ``labels[N]``;
``c[i, n] = preds[i, n] == labels[n]`` is the oracle output. For a pair ``(i, j)``, ``N11``, ``N00``,
``N10``, ``N01`` count the examples both get right, both wrong, only ``i`` right, only ``j`` right.
Each metric is reported the way EnsembleBench's ``calDiversityMetric`` reports it (lower = more diverse)::

    CK  Cohen's kappa, mean over pairs:  (p_o - p_e) / (1 - p_e),  p_o = mean(preds_i == preds_j),
        p_e = sum_c P_i(c) P_j(c) (the label frequencies)                 [1 when p_e = 1: full agreement]
    QS  Q-statistic, mean over pairs:  (N11 N00 - N01 N10) / (N11 N00 + N01 N10)     [0 when 0/0]
    BD  1 - binary disagreement,  1 - mean over pairs of (N01 + N10) / N
    FK  Fleiss' kappa of the L raters:  (Pbar - Pe) / (1 - Pe),  n_nc = #{i: preds[i, n] = c},
        P_n = (sum_c n_nc^2 - L) / (L (L - 1)),  Pbar = mean_n P_n,  Pe = sum_c (sum_n n_nc / (N L))^2
                                                                           [1 when Pe = 1]
    KW  1 - Kohavi-Wolpert variance,  1 - (1 / (N L^2)) sum_n l_n (L - l_n),  l_n = sum_i c[i, n]
    GD  1 - generalized diversity = p(2) / p(1),  p(1) = sum_k (k / L) p_k,
        p(2) = sum_k (k (k - 1) / (L (L - 1))) p_k,  p_k = fraction of examples that exactly k members
        get wrong                                                         [0 when p(1) = 0]

Focal diversity (CVPR 2021): for a focal member ``f`` of a team, the team's metric is computed on the
*negative samples* of ``f``, the examples ``f`` gets wrong; the team's focal diversity is the mean over its
members (those with at least one negative sample). EnsembleBench estimates it on 3 x 100 random negative
samples; here every negative sample is used, so the value is exact and deterministic.

:func:`focal_diversity_table` computes it for many teams at once (vectorised per focal model and team
size); the scalar functions are the definitions, and the tests check that the two agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations

import numpy as np

from mlrsnet.errors import ConfigError

__all__ = [
    "DIVERSITY_METRICS", "binary_disagreement", "check_metrics", "cohen_kappa", "fleiss_kappa",
    "focal_diversity", "focal_diversity_table", "generalized_diversity", "kohavi_wolpert", "q_statistic",
    "team_diversity",
]


def _pairs(preds: np.ndarray) -> list[tuple[int, int]]:
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[0] < 2:
        raise ConfigError(f"a diversity metric needs predictions of at least 2 members as a [members, examples] "
                          f"array, got shape {preds.shape}")
    return list(combinations(range(preds.shape[0]), 2))


def _kappa(a: np.ndarray, b: np.ndarray, num_classes: int) -> float:
    p_o = float(np.mean(a == b))
    p_e = float(np.dot(np.bincount(a, minlength=num_classes), np.bincount(b, minlength=num_classes))) / a.size**2
    return 1.0 if p_e >= 1.0 else (p_o - p_e) / (1.0 - p_e)


def cohen_kappa(preds: np.ndarray, labels: np.ndarray | None = None) -> float:
    """CK: the mean pairwise Cohen's kappa of the members' predicted labels (``labels`` unused)."""
    preds = np.asarray(preds, dtype=np.int64)
    c = int(preds.max()) + 1
    return float(np.mean([_kappa(preds[i], preds[j], c) for i, j in _pairs(preds)]))


def _counts(ci: np.ndarray, cj: np.ndarray) -> tuple[int, int, int, int]:
    return (int(np.sum(ci & cj)), int(np.sum(~ci & ~cj)), int(np.sum(ci & ~cj)), int(np.sum(~ci & cj)))


def q_statistic(preds: np.ndarray, labels: np.ndarray) -> float:
    """QS: the mean pairwise Yule's Q of the oracle outputs."""
    c = np.asarray(preds) == np.asarray(labels)[None]
    values = []
    for i, j in _pairs(c):
        n11, n00, n10, n01 = _counts(c[i], c[j])
        den = n11 * n00 + n01 * n10
        values.append(0.0 if den == 0 else (n11 * n00 - n01 * n10) / den)
    return float(np.mean(values))


def binary_disagreement(preds: np.ndarray, labels: np.ndarray) -> float:
    """BD: one minus the mean pairwise disagreement ``(N01 + N10) / N`` of the oracle outputs."""
    c = np.asarray(preds) == np.asarray(labels)[None]
    return 1.0 - float(np.mean([np.mean(c[i] != c[j]) for i, j in _pairs(c)]))


def fleiss_kappa(preds: np.ndarray, labels: np.ndarray | None = None, num_classes: int | None = None) -> float:
    """FK: Fleiss' kappa of the members as raters of the predicted labels (``labels`` unused)."""
    preds = np.asarray(preds, dtype=np.int64)
    _pairs(preds)
    k = int(num_classes or preds.max() + 1)
    counts = np.stack([np.bincount(col, minlength=k) for col in preds.T])  # [N, classes]
    return _fleiss_from_counts(counts[None], preds.shape[0])[0]


def _fleiss_from_counts(counts: np.ndarray, raters: int) -> np.ndarray:
    """Fleiss' kappa of ``counts[teams, N, classes]`` (each row sums to ``raters``), one per team."""
    n_items = counts.shape[1]
    p_class = counts.sum(1) / (n_items * raters)
    p_item = ((counts.astype(np.float64) ** 2).sum(2) - raters) / (raters * (raters - 1))
    p_bar, p_e = p_item.mean(1), (p_class**2).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = (p_bar - p_e) / (1.0 - p_e)
    return np.where(p_e >= 1.0 - 1e-12, 1.0, kappa)


def kohavi_wolpert(preds: np.ndarray, labels: np.ndarray) -> float:
    """KW: one minus the Kohavi-Wolpert variance of the oracle outputs."""
    c = np.asarray(preds) == np.asarray(labels)[None]
    _pairs(c)
    return float(_kw_from_correct(c.sum(0)[None], c.shape[0])[0])


def _kw_from_correct(correct: np.ndarray, size: int) -> np.ndarray:
    """``1 - KW`` from the number of members right on each example, ``correct[teams, N]``."""
    return 1.0 - (correct * (size - correct)).mean(1) / size**2


def generalized_diversity(preds: np.ndarray, labels: np.ndarray) -> float:
    """GD: one minus Partridge & Krzanowski's generalized diversity, ``p(2) / p(1)``."""
    c = np.asarray(preds) == np.asarray(labels)[None]
    _pairs(c)
    return float(_gd_from_wrong(c.shape[0] - c.sum(0)[None], c.shape[0])[0])


def _gd_from_wrong(wrong: np.ndarray, size: int) -> np.ndarray:
    """``p(2) / p(1)`` from the number of members wrong on each example, ``wrong[teams, N]``."""
    p1 = wrong.mean(1) / size
    p2 = (wrong * (wrong - 1)).mean(1) / (size * (size - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p1 > 0, p2 / p1, 0.0)


DIVERSITY_METRICS: dict[str, Callable[..., float]] = {
    "CK": cohen_kappa, "QS": q_statistic, "BD": binary_disagreement, "FK": fleiss_kappa, "KW": kohavi_wolpert,
    "GD": generalized_diversity,
}


def check_metrics(metrics: Sequence[str]) -> list[str]:
    """The metric names, upper-cased; an unknown or empty list is a one-line ConfigError."""
    names = [str(m).upper() for m in metrics]
    unknown = [m for m in names if m not in DIVERSITY_METRICS]
    if not names or unknown:
        raise ConfigError(f"unknown diversity metric {unknown[0] if unknown else '(none given)'}; use some of "
                          f"{', '.join(DIVERSITY_METRICS)}")
    return names


def team_diversity(preds: np.ndarray, labels: np.ndarray, metric: str) -> float:
    """One metric (a key of :data:`DIVERSITY_METRICS`) of a team's predictions ``preds[L, N]``."""
    return float(DIVERSITY_METRICS[check_metrics([metric])[0]](preds, labels))


def focal_diversity(preds: np.ndarray, labels: np.ndarray, team: Sequence[int], metric: str) -> float:
    """The focal diversity of ``team`` (indices into the rows of ``preds[M, N]``): the metric on the negative
    samples of each member, averaged over the members that have any; NaN if none has."""
    team = list(team)
    labels = np.asarray(labels)
    values = []
    for f in team:
        wrong = preds[f] != labels
        if wrong.any():
            values.append(team_diversity(preds[team][:, wrong], labels[wrong], metric))
    return float(np.mean(values)) if values else float("nan")


def _pairwise_tables(preds: np.ndarray, labels: np.ndarray, num_classes: int,
                     metrics: Sequence[str]) -> dict[str, np.ndarray]:
    """For the pairwise metrics (CK, QS, BD): ``table[m][f, i, j]`` = metric m of the pair (i, j) on the
    negative samples of focal model f (NaN where f has none)."""
    n_models = preds.shape[0]
    wanted = [m for m in ("CK", "QS", "BD") if m in metrics]
    tables = {m: np.full((n_models, n_models, n_models), np.nan) for m in wanted}
    correct = preds == labels[None]
    for f in range(n_models):
        neg = ~correct[f]
        if not neg.any():
            continue
        p, c = preds[:, neg], correct[:, neg]
        for i, j in combinations(range(n_models), 2):
            values = {}
            if "CK" in tables:
                values["CK"] = _kappa(p[i], p[j], num_classes)
            n11, n00, n10, n01 = _counts(c[i], c[j])
            if "QS" in tables:
                den = n11 * n00 + n01 * n10
                values["QS"] = 0.0 if den == 0 else (n11 * n00 - n01 * n10) / den
            if "BD" in tables:
                values["BD"] = 1.0 - (n01 + n10) / c.shape[1]
            for m, v in values.items():
                tables[m][f, i, j] = tables[m][f, j, i] = v
    return tables


def focal_diversity_table(preds: np.ndarray, labels: np.ndarray, teams: Sequence[Sequence[int]],
                          metrics: Sequence[str], num_classes: int | None = None) -> np.ndarray:
    """Focal diversity of every team (distinct member indices into ``preds[M, N]``) for every metric:
    an array ``[len(teams), len(metrics)]``, NaN for a team none of whose members makes a mistake."""
    preds, labels = np.asarray(preds, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    metrics = check_metrics(metrics)
    k = int(num_classes or max(int(preds.max()), int(labels.max())) + 1)
    correct = preds == labels[None]
    onehot = np.eye(k, dtype=np.int32)[preds]  # [M, N, classes]
    tables = _pairwise_tables(preds, labels, k, metrics)
    out = np.full((len(teams), len(metrics)), np.nan)
    sums, counts = np.zeros_like(out), np.zeros(len(teams))
    by_size: dict[int, list[int]] = {}
    for t, team in enumerate(teams):
        by_size.setdefault(len(team), []).append(t)
    for size, rows in by_size.items():
        members = np.array([list(teams[t]) for t in rows], dtype=np.int64)  # [n, size]
        rows_arr = np.array(rows)
        pairs = list(combinations(range(size), 2))
        for f in range(preds.shape[0]):
            neg = ~correct[f]
            has = (members == f).any(1)
            if not neg.any() or not has.any():
                continue
            team_rows, sel = rows_arr[has], members[has]
            values = np.empty((len(sel), len(metrics)))
            for col, m in enumerate(metrics):
                if m in tables:
                    values[:, col] = np.mean([tables[m][f, sel[:, a], sel[:, b]] for a, b in pairs], axis=0)
                elif m == "KW":
                    values[:, col] = _kw_from_correct(correct[sel][:, :, neg].sum(1), size)
                elif m == "GD":
                    values[:, col] = _gd_from_wrong(size - correct[sel][:, :, neg].sum(1), size)
                else:  # FK
                    values[:, col] = _fleiss_from_counts(onehot[sel][:, :, neg].sum(1), size)
            sums[team_rows] += values
            counts[team_rows] += 1
    done = counts > 0
    out[done] = sums[done] / counts[done, None]
    return out
