"""Every headline number of the docs traces to a study's results.csv (experiments/headlines.yaml).

For each claim: its quote occurs in the file it names (README.md, docs/...), the number occurs in the quote, and
the number recomputed from the CSV rows the claim names matches it at the precision it is written with. Pure CSV
reading: a second or two. When the text moves, re-point the claim's ``file`` (or ``defaults.file``) in
experiments/headlines.yaml; when a rerun changes a number, the failure names the claim, the file and the new value.
"""

from __future__ import annotations

import csv
import functools
import re
import statistics
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
HEADLINES = REPO / "experiments" / "headlines.yaml"
SPEC = yaml.safe_load(HEADLINES.read_text())
CLAIMS = [{**SPEC.get("defaults", {}), **c} for c in SPEC["claims"]]


@functools.cache
def _text(path: str) -> str:
    """The file with its whitespace (line breaks included) collapsed to single spaces."""
    return " ".join((REPO / path).read_text(encoding="utf-8").split())


@functools.cache
def _rows(path: str) -> tuple[dict, ...]:
    with (REPO / path).open(newline="", encoding="utf-8") as f:
        return tuple(csv.DictReader(f))


def _same(cell: str, want: object) -> bool:
    """A CSV cell against a wanted value: as numbers where both are numbers (``10`` matches ``10.0``)."""
    try:
        return float(cell) == float(want)
    except (TypeError, ValueError):
        return cell == str(want)


def _select(rows: tuple[dict, ...], where: dict) -> list[dict]:
    for col in where:
        if rows and col not in rows[0]:
            raise KeyError(f"no column {col!r}")
    return [r for r in rows if all(any(_same(r[c], v) for v in (w if isinstance(w, list) else [w]))
                                   for c, w in where.items())]


def _value(claim: dict) -> tuple[float, int]:
    """The claim's number recomputed from its CSV, and the rows it read."""
    rows = _rows(claim["csv"])
    picked = _select(rows, claim["where"])
    column, scale = claim["column"], float(claim.get("scale", 1))
    agg = claim["agg"]
    if agg == "mean":
        return scale * statistics.fmean(float(r[column]) for r in picked), len(picked)
    if agg == "best_mean":
        groups: dict[str, list[float]] = {}
        for r in picked:
            groups.setdefault(r[claim["group_by"]], []).append(float(r[column]))
        means = [statistics.fmean(v) for v in groups.values()]
        return scale * (max(means) if claim.get("higher", True) else min(means)), len(picked)
    if agg == "paired_t_p":
        from scipy import stats

        key = claim["pair_on"]
        others = {r[key]: float(r[column]) for r in _select(rows, {**claim["where"], **claim["against"]})}
        ours = {r[key]: float(r[column]) for r in picked}
        if set(ours) != set(others):
            raise AssertionError(f"unpaired {key}s: {sorted(ours)} against {sorted(others)}")
        a, b = [ours[k] for k in sorted(ours)], [others[k] for k in sorted(ours)]
        p = 1.0 if a == b else float(stats.ttest_rel(a, b).pvalue)
        return p, len(picked)
    raise ValueError(f"unknown agg {agg!r}")


def test_headlines_file_is_well_formed():
    ids = [c["id"] for c in CLAIMS]
    assert len(ids) == len(set(ids)), "duplicate claim ids in experiments/headlines.yaml"
    for c in CLAIMS:
        missing = [k for k in ("id", "file", "quote", "value", "csv", "where", "n", "column", "agg", "digits")
                   if k not in c]
        assert not missing, f"claim {c.get('id')}: missing {missing}"


@pytest.mark.parametrize("claim", CLAIMS, ids=[c["id"] for c in CLAIMS])
def test_headline_is_in_its_file_and_recomputes_from_results_csv(claim):
    where = f"claim {claim['id']!r} ({claim['file']}: {claim['quote']!r})"
    assert (REPO / claim["file"]).is_file(), f"{where}: {claim['file']} does not exist; re-point its `file`"
    assert " ".join(claim["quote"].split()) in _text(claim["file"]), (
        f"{where}: the quote is no longer in {claim['file']}; re-point the claim in experiments/headlines.yaml")
    value = str(claim["value"])
    assert re.search(rf"(?<![\d.]){re.escape(value)}(?!\d)", claim["quote"]), f"{where}: {value} not in the quote"
    assert (REPO / claim["csv"]).is_file(), f"{where}: {claim['csv']} does not exist"
    got, n = _value(claim)
    assert n == claim["n"], f"{where}: {claim['csv']} has {n} rows for {claim['where']}, the claim needs {claim['n']}"
    assert f"{got:.{claim['digits']}f}" == value, (
        f"{where}: {claim['csv']} gives {got:.{claim['digits']}f} ({claim['agg']} of {claim['column']} over "
        f"{claim['where']}), the text says {value}")


def test_results_csvs_of_the_claims_are_not_gitignored():
    """The CSVs the claims read are committed with the study (its raw runs are not)."""
    paths = sorted({c["csv"] for c in CLAIMS})
    try:
        out = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=REPO, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("git not available")
    if out.returncode == 128:
        pytest.skip("not a git checkout")
    assert out.stdout.strip() == "", f"ignored by .gitignore: {out.stdout.split()}"
