"""LREnsemble (Jin & Wu, "Boosting Deep Ensembles with Learning Rate Tuning", 2024) with EnsembleBench's
focal-diversity pruning (Wu, Liu et al., CogMI 2020 / CVPR 2021).

The library (arrays in, choices out; the test split never enters a choice)::

    from mlrsnet.ensemble import select, combine
    sel = select(probs_meta, labels_meta, method="focal", combiner="soft")   # probs[models, examples, classes]
    test_pred = combine(probs_test, sel.members, sel.combiner)

The command line trains the pool of LR policies and writes the tables (``python -m mlrsnet.ensemble
+task=NAME``; ``__main__.py``), through :func:`lrensemble`.
"""

from mlrsnet.engine.record import load_probabilities, save_probabilities
from mlrsnet.ensemble.diversity import (
    DIVERSITY_METRICS,
    binary_disagreement,
    cohen_kappa,
    fleiss_kappa,
    focal_diversity,
    focal_diversity_table,
    generalized_diversity,
    kohavi_wolpert,
    q_statistic,
    team_diversity,
)
from mlrsnet.ensemble.pool import Pool, PoolEntry, bench_pool, pool_entries, resolve_relative, train_pool
from mlrsnet.ensemble.selection import (
    COMBINERS,
    METHODS,
    Selection,
    combine,
    ensemble_accuracy,
    enumerate_teams,
    select,
    team_focal_diversity,
    team_scores,
)
from mlrsnet.ensemble.study import best_single, lrensemble

__all__ = [
    "COMBINERS", "DIVERSITY_METRICS", "METHODS", "Pool", "PoolEntry", "Selection", "bench_pool", "best_single",
    "binary_disagreement", "cohen_kappa", "combine", "ensemble_accuracy", "enumerate_teams", "fleiss_kappa",
    "focal_diversity", "focal_diversity_table", "generalized_diversity", "kohavi_wolpert", "load_probabilities",
    "lrensemble", "pool_entries", "q_statistic", "resolve_relative", "save_probabilities", "select",
    "team_diversity", "team_focal_diversity", "team_scores", "train_pool",
]
