"""Mutation check of the core modules with mutmut: how many deliberate bugs the tests catch.

For each module below, mutmut (``pip install 'mlrsnet[mutation]'``) rewrites the module into many
mutants (one small change each: ``<`` for ``<=``, ``+`` for ``-``, a dropped argument, a changed
constant, ...) and runs, for each mutant, only the tests of that module's test files that execute the
mutated function. A mutant is *killed* when a test fails; the score is killed / (killed + survived),
with timeouts counted as killed (mutmut's convention) and listed apart.

Each module runs in its own copy of the repository under ``--workdir`` (conf/ is placed inside the
package there, since mutmut imports the mutated copy of ``mlrsnet`` rather than the editable install),
with a ``[tool.mutmut]`` section naming only that module and its tests. This is not run in CI: it takes
minutes to hours on a small machine. ``--sample D`` runs only the mutants whose number ends in one of the
digits D (e.g. ``--sample 0`` = every 10th mutant of every function, a stratified ~10% sample); the
report says which.

    nice -n 10 python benchmarks/mutation.py                        # every module, every mutant
    nice -n 10 python benchmarks/mutation.py meta resume --sample 0 # ~10% of their mutants
    python benchmarks/mutation.py greedy --show-survivors           # print each surviving diff

Prints a Markdown table (benchmarks/RESULTS.md keeps the latest one, with its command).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# module -> (files to mutate, pytest arguments that select its tests)
MODULES: dict[str, tuple[list[str], list[str]]] = {
    "meta": (["mlrsnet/meta/*.py"], ["tests/test_meta_engine.py", "tests/test_meta_perf_options.py"]),
    # the class-balanced meta split and the label-noise code
    "splits": (["mlrsnet/tasks/data/splits.py"], ["tests/test_splits.py"]),
    # the CLI SIGTERM test runs a subprocess that imports the real package, not the mutant: left out
    "resume": (["mlrsnet/engine/resume.py"], ["tests/test_resume.py", "tests/test_divergence.py", "-k", "not cli"]),
    "greedy": (["mlrsnet/schedules/greedy.py"], ["tests/test_schedules_greedy*.py"]),
    "lrbench": (["mlrsnet/schedules/lrbench.py"], ["tests/test_schedules_lrbench*.py"]),
}

KILLED = {"killed", "timeout"}


def prepare(workdir: Path, module: str) -> Path:
    """A fresh copy of the package, its tests and pyproject.toml with this module's mutmut section."""
    files, tests = MODULES[module]
    ws = workdir / module
    if ws.exists():
        shutil.rmtree(ws)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "mlrsnet", ws / "mlrsnet", ignore=ignore)
    shutil.copytree(REPO / "conf", ws / "mlrsnet" / "conf", ignore=ignore)
    shutil.copytree(REPO / "tests", ws / "tests", ignore=ignore)
    selection = [str(p.relative_to(REPO)) for t in tests for p in sorted(REPO.glob(t))] if tests else []
    selection += [t for t in tests if t.startswith("-") or not t.endswith(".py")]
    config = {
        "source_paths": ["mlrsnet/"],
        "only_mutate": files,
        "pytest_add_cli_args_test_selection": selection,
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-x"],
        "use_git_change_detection": False,
        "track_dependencies": False,
        "use_setproctitle": False,
    }
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in config.items())
    text = (REPO / "pyproject.toml").read_text()
    (ws / "pyproject.toml").write_text(f"{text}\n[tool.mutmut]\n{body}\n")
    return ws


def results(ws: Path) -> dict[str, str]:
    """mutant name -> status, from the .meta files mutmut writes beside each mutated module."""
    from mutmut.stats import status_by_exit_code

    out = {}
    for meta in (ws / "mutants").rglob("*.meta"):
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            out[name] = status_by_exit_code.get(code, f"exit {code}")
    return out


def run_module(module: str, workdir: Path, sample: str | None, max_children: int, show: bool) -> dict:
    ws = prepare(workdir, module)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLRSNET_OFFLINE": "1", "MPLBACKEND": "Agg",
           "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    env.pop("PYTHONPATH", None)
    patterns = [f"*__mutmut_*[{sample}]"] if sample else []
    t0 = time.perf_counter()
    log = ws / "mutmut.log"
    with open(log, "w") as f:
        proc = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children),
                               *patterns], cwd=ws, env=env, stdout=f, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - t0
    status = results(ws)
    if patterns:
        status = {n: s for n, s in status.items() if any(fnmatch.fnmatch(n, p) for p in patterns)}
    counts: dict[str, int] = {}
    for s in status.values():
        counts[s] = counts.get(s, 0) + 1
    killed = sum(counts.get(s, 0) for s in KILLED)
    survived = counts.get("survived", 0)
    survivors = sorted(n for n, s in status.items() if s == "survived")
    if show:
        for name in survivors:
            diff = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=ws, env=env,
                                  capture_output=True, text=True).stdout
            print(f"--- {name}\n" + "\n".join(ln for ln in diff.splitlines() if ln.startswith(("-", "+"))))
    if proc.returncode != 0 and not status:
        raise SystemExit(f"mutmut failed for {module}; see {log}")
    return {"module": module, "files": ", ".join(MODULES[module][0]), "mutants": len(status), "killed": killed,
            "timeout": counts.get("timeout", 0), "survived": survived,
            "other": {k: v for k, v in counts.items() if k not in KILLED | {"survived"}},
            "score": killed / (killed + survived) if killed + survived else float("nan"), "wall_s": wall,
            "sample": f"mutant numbers ending in [{sample}]" if sample else "all",
            "survivors": survivors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"modules to check: {', '.join(MODULES)} (default: all)")
    parser.add_argument("--sample", default=None, help="only mutants whose number ends in one of these digits")
    parser.add_argument("--max-children", type=int, default=1, help="mutants tested in parallel")
    parser.add_argument("--workdir", type=Path, default=REPO / ".mutation")
    parser.add_argument("--show-survivors", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this file")
    args = parser.parse_args()
    try:
        import mutmut  # noqa: F401
    except ImportError:
        raise SystemExit("error: mutmut is not installed; pip install 'mlrsnet[mutation]'") from None
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        raise SystemExit(f"error: unknown module(s) {unknown}; choose from {', '.join(MODULES)}")
    rows = []
    for module in args.modules or list(MODULES):
        row = run_module(module, args.workdir, args.sample, args.max_children, args.show_survivors)
        rows.append(row)
        print(f"{module}: {row['killed']}/{row['killed'] + row['survived']} killed "
              f"({row['score']:.0%}), {row['wall_s']:.0f}s", flush=True)
    print("\n| module | files | mutants run | killed (of which timeout) | survived | score | sample | wall |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        other = "".join(f", {v} {k}" for k, v in r["other"].items())
        print(f"| {r['module']} | `{r['files']}` | {r['mutants']}{other} | {r['killed']} ({r['timeout']}) | "
              f"{r['survived']} | {r['score']:.0%} | {r['sample']} | {r['wall_s'] / 60:.0f} min |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
