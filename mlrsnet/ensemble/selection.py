r"""Ensemble selection over a pool of models' predicted probabilities, on the meta split only.

The pool is ``probs[M, N, C]`` (``M`` models, ``N`` examples, ``C`` classes) with ``labels[N]``. A team is a
tuple of member indices; greedy selection may repeat a member, which weights it (Caruana et al. 2004).

Combiners (``weights`` = how often each member appears)::

    soft       argmax_c  sum_i w_i p_i(c) / sum_i w_i                       (soft voting, model averaging)
    plurality  argmax_c  sum_i w_i [argmax p_i = c],  ties broken by the soft average

Selection methods (:func:`select`), every choice made from ``probs`` and ``labels`` of the meta split:

- ``all``: every model of the pool once (the reference "average everything");
- ``brute``: every team of 2..``max_size`` distinct members (at most ``max_teams`` of them, else a one-line
  error); the most accurate, ties to the lower mean cross-entropy, then the smaller team;
- ``greedy``: forward selection with replacement (Caruana, Niculescu-Mizil, Crew & Ksikes, "Ensemble
  Selection from Libraries of Models", ICML 2004): start from the ``init_k`` most accurate models (sorted
  initialisation; 0 = empty), then ``bag_size`` times add the model, repeats allowed, whose addition gives
  the most accurate ensemble (ties: lower cross-entropy of the soft average); return the best ensemble of
  that path (ties: lower cross-entropy, then the earliest, i.e. the smallest);
- ``focal``: focal-diversity pruning (Wu, Liu et al., EnsembleBench, CVPR 2021): for every team of 2..
  ``max_size`` members, its accuracy and its focal diversity (:mod:`mlrsnet.ensemble.diversity`; with
  several metrics, the mean of each metric min-max scaled over the teams, as EnsembleBench scales them);
  2-means on (accuracy, focal diversity), both min-max scaled, with the centroids initialised at the
  extremes (max accuracy, most diverse) and (min accuracy, least diverse); the teams of the first cluster
  are kept and the most accurate kept team is chosen (ties: lower cross-entropy, more diverse, smaller).

Accuracy on a small meta split moves in coarse steps (one example of 100 is a point), so ties are common;
they go to the lower mean cross-entropy of the team's soft average, the finer measure of the same split.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from mlrsnet.ensemble.diversity import check_metrics, focal_diversity_table
from mlrsnet.errors import ConfigError

__all__ = ["COMBINERS", "METHODS", "Selection", "combine", "count_teams", "enumerate_teams", "ensemble_accuracy",
           "select", "team_focal_diversity", "team_scores"]

COMBINERS = ("soft", "plurality")
METHODS = ("all", "brute", "greedy", "focal")


@dataclass
class Selection:
    """A chosen team: ``members`` (model indices, repeated for weight), its meta-split accuracy and mean
    cross-entropy under ``combiner``. ``candidates`` (focal only): every team considered, with its accuracy,
    focal diversity and whether the clustering kept it."""

    method: str
    combiner: str
    members: tuple[int, ...]
    accuracy: float
    nll: float
    candidates: dict = field(default_factory=dict)

    @property
    def weights(self) -> dict[int, int]:
        return dict(Counter(self.members))


def _check_pool(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs, labels = np.asarray(probs, dtype=np.float32), np.asarray(labels, dtype=np.int64)
    if probs.ndim != 3 or labels.ndim != 1 or probs.shape[1] != labels.shape[0]:
        raise ConfigError(f"a pool is probs[models, examples, classes] with labels[examples]; got probs "
                          f"{probs.shape} and labels {labels.shape}")
    if probs.shape[0] < 1 or labels.size == 0:
        raise ConfigError("the pool is empty; it needs at least one model and one example")
    return probs, labels


def _check_combiner(combiner: str) -> None:
    if combiner not in COMBINERS:
        raise ConfigError(f"unknown combiner {combiner!r}; use one of {', '.join(COMBINERS)}")


def _combined(probs: np.ndarray, weights: np.ndarray, combiner: str) -> tuple[np.ndarray, np.ndarray]:
    """(predicted labels [..., N], soft average [..., N, C]) of ``probs[..., M, N, C]`` weighted by
    ``weights[..., M]``."""
    w = weights / weights.sum(-1, keepdims=True)
    mean = np.einsum("...m,...mnc->...nc", w, probs)
    if combiner == "soft":
        return mean.argmax(-1), mean
    votes = np.einsum("...m,...mnc->...nc", w, np.eye(probs.shape[-1], dtype=np.float32)[probs.argmax(-1)])
    top = votes.max(-1, keepdims=True)
    # Ties between classes with the most votes go to the larger soft average (a vote count is exact).
    return np.where(votes >= top - 1e-6, mean, -1.0).argmax(-1), mean


def combine(probs: np.ndarray, members: Sequence[int] | None = None, combiner: str = "soft") -> np.ndarray:
    """Predicted labels ``[N]`` of the team ``members`` (indices into ``probs[M, N, C]``, repeats weight;
    default every model once) under ``combiner`` (``soft`` or ``plurality``)."""
    _check_combiner(combiner)
    probs = np.asarray(probs, dtype=np.float32)
    members = list(range(probs.shape[0])) if members is None else list(members)
    weights = np.bincount(members, minlength=probs.shape[0]).astype(np.float32)
    return _combined(probs, weights, combiner)[0]


def ensemble_accuracy(probs: np.ndarray, labels: np.ndarray, members: Sequence[int] | None = None,
                      combiner: str = "soft") -> float:
    """Accuracy of :func:`combine` against ``labels``."""
    return float(np.mean(combine(probs, members, combiner) == np.asarray(labels)))


def _nll(mean: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean cross-entropy of soft averages ``mean[teams, N, C]``, one per team."""
    picked = mean[:, np.arange(labels.size), labels]
    return -np.log(np.clip(picked, 1e-12, None)).mean(-1)


def team_scores(probs: np.ndarray, labels: np.ndarray, teams: Sequence[Sequence[int]],
                combiner: str = "soft", chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(accuracy, mean cross-entropy of the soft average) of every team, each ``[len(teams)]``."""
    probs, labels = _check_pool(probs, labels)
    _check_combiner(combiner)
    acc, nll = np.empty(len(teams)), np.empty(len(teams))
    for s in range(0, len(teams), chunk):
        block = teams[s:s + chunk]
        weights = np.stack([np.bincount(list(t), minlength=probs.shape[0]) for t in block]).astype(np.float32)
        pred, mean = _combined(probs[None], weights, combiner)
        acc[s:s + len(block)] = (pred == labels[None]).mean(1)
        nll[s:s + len(block)] = _nll(mean, labels)
    return acc, nll


def count_teams(n_models: int, max_size: int) -> int:
    """The number of teams of 2..``max_size`` distinct members from ``n_models`` models."""
    return sum(math.comb(n_models, k) for k in range(2, min(max_size, n_models) + 1))


def enumerate_teams(n_models: int, max_size: int, max_teams: int = 20_000) -> list[tuple[int, ...]]:
    """Every team of 2..``max_size`` distinct members, smaller teams first; a one-line ConfigError when
    there are more than ``max_teams``."""
    if max_size < 2:
        raise ConfigError(f"max_team_size must be >= 2, got {max_size}")
    if n_models < 2:
        raise ConfigError(f"team selection needs at least 2 models in the pool, got {n_models}")
    n = count_teams(n_models, max_size)
    if n > max_teams:
        raise ConfigError(f"{n} teams of 2..{max_size} of {n_models} models exceed max_teams={max_teams}; lower "
                          "max_team_size, raise max_teams, or use method greedy")
    return [t for k in range(2, min(max_size, n_models) + 1) for t in combinations(range(n_models), k)]


def _best(acc: np.ndarray, *tiebreaks: np.ndarray) -> int:
    """Index of the highest ``acc``; ties by the tie-breakers in order (lower wins), then the first."""
    keys = [np.arange(len(acc))] + [np.asarray(t) for t in reversed(tiebreaks)] + [-np.round(acc, 12)]
    return int(np.lexsort(keys)[0])


def _brute(probs: np.ndarray, labels: np.ndarray, combiner: str, max_size: int, max_teams: int) -> Selection:
    teams = enumerate_teams(probs.shape[0], max_size, max_teams)
    acc, nll = team_scores(probs, labels, teams, combiner)
    i = _best(acc, nll, np.array([len(t) for t in teams]))
    return Selection("brute", combiner, teams[i], float(acc[i]), float(nll[i]))


def _greedy(probs: np.ndarray, labels: np.ndarray, combiner: str, bag_size: int, init_k: int) -> Selection:
    n_models = probs.shape[0]
    if bag_size < 1 or init_k < 0:
        raise ConfigError(f"greedy selection needs bag_size >= 1 and init_k >= 0, got {bag_size} and {init_k}")
    singles_acc, singles_nll = team_scores(probs, labels, [(i,) for i in range(n_models)], combiner)
    order = np.lexsort((np.arange(n_models), singles_nll, -singles_acc))
    team: list[int] = [int(i) for i in order[: min(init_k, n_models)]]
    path: list[tuple[tuple[int, ...], float, float]] = []
    if team:
        acc, nll = team_scores(probs, labels, [tuple(team)], combiner)
        path.append((tuple(team), float(acc[0]), float(nll[0])))
    for _ in range(bag_size):
        candidates = [tuple(sorted([*team, m])) for m in range(n_models)]
        acc, nll = team_scores(probs, labels, candidates, combiner)
        i = _best(acc, nll)
        team = list(candidates[i])
        path.append((candidates[i], float(acc[i]), float(nll[i])))
    accs, nlls = np.array([a for _, a, _ in path]), np.array([n for _, _, n in path])
    i = _best(accs, nlls, np.array([len(t) for t, _, _ in path]))
    return Selection("greedy", combiner, path[i][0], path[i][1], path[i][2])


def _scale01(x: np.ndarray) -> np.ndarray:
    lo, hi = np.nanmin(x, 0), np.nanmax(x, 0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return (x - lo) / span


def _two_means(acc: np.ndarray, div: np.ndarray) -> np.ndarray:
    """Mask of the teams in the high-accuracy / high-diversity cluster of a 2-means on (accuracy, focal
    diversity), min-max scaled, centroids initialised at (max acc, min div) and (min acc, max div)."""
    from sklearn.cluster import KMeans

    points = _scale01(np.stack([acc, div], 1))
    init = np.array([[points[:, 0].max(), points[:, 1].min()], [points[:, 0].min(), points[:, 1].max()]])
    if len(points) < 2 or np.allclose(init[0], init[1]):
        return np.ones(len(points), dtype=bool)
    labels = KMeans(n_clusters=2, init=init, n_init=1, random_state=0).fit(points).labels_
    return labels == 0


def team_focal_diversity(probs: np.ndarray, labels: np.ndarray, teams: Sequence[Sequence[int]],
                         metrics: Sequence[str]) -> np.ndarray:
    """The focal diversity of every team (lower = more diverse) from the pool ``probs[M, N, C]``: one metric
    as it is; several as the mean of each one min-max scaled over ``teams``. A team none of whose members
    errs has no negative samples and counts as the least diverse."""
    metrics = check_metrics(metrics)
    probs, labels = _check_pool(probs, labels)
    raw = focal_diversity_table(probs.argmax(-1), labels, teams, metrics, probs.shape[-1])
    worst = np.nanmax(np.where(np.isnan(raw), -np.inf, raw), 0) if len(raw) else np.zeros(len(metrics))
    raw = np.where(np.isnan(raw), np.where(np.isfinite(worst), worst, 1.0), raw)
    return raw[:, 0] if len(metrics) == 1 else _scale01(raw).mean(1)


def _focal(probs: np.ndarray, labels: np.ndarray, combiner: str, max_size: int, max_teams: int,
           metrics: Sequence[str]) -> Selection:
    metrics = check_metrics(metrics)
    teams = enumerate_teams(probs.shape[0], max_size, max_teams)
    acc, nll = team_scores(probs, labels, teams, combiner)
    div = team_focal_diversity(probs, labels, teams, metrics)
    kept = _two_means(acc, div)
    idx = np.flatnonzero(kept)
    j = idx[_best(acc[idx], nll[idx], div[idx], np.array([len(teams[k]) for k in idx]))]
    candidates = {"teams": teams, "accuracy": acc, "diversity": div, "kept": kept, "metrics": metrics}
    return Selection("focal", combiner, teams[j], float(acc[j]), float(nll[j]), candidates)


def select(probs_meta: np.ndarray, labels_meta: np.ndarray, method: str = "focal", combiner: str = "soft", *,
           max_size: int = 4, max_teams: int = 20_000, bag_size: int = 10, init_k: int = 0,
           metrics: Sequence[str] = ("CK", "QS", "BD", "FK", "KW", "GD")) -> Selection:
    """Choose a team from the pool ``probs_meta[M, N, C]`` by ``method`` (``all``, ``brute``, ``greedy``,
    ``focal``; see the module docstring) under ``combiner``, from the meta split only::

        sel = select(probs_meta, labels_meta, method="greedy")
        test_pred = combine(probs_test, sel.members, sel.combiner)
    """
    probs, labels = _check_pool(probs_meta, labels_meta)
    _check_combiner(combiner)
    if method == "all":
        team = tuple(range(probs.shape[0]))
        acc, nll = team_scores(probs, labels, [team], combiner)
        return Selection("all", combiner, team, float(acc[0]), float(nll[0]))
    if method == "brute":
        return _brute(probs, labels, combiner, int(max_size), int(max_teams))
    if method == "greedy":
        return _greedy(probs, labels, combiner, int(bag_size), int(init_k))
    if method == "focal":
        return _focal(probs, labels, combiner, int(max_size), int(max_teams), metrics)
    raise ConfigError(f"unknown selection method {method!r}; use one of {', '.join(METHODS)}")
