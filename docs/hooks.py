"""mkdocs hooks (``hooks:`` in mkdocs.yml).

- The reference pages are generated at build time from the typed declarations, so they cannot drift from the
  code: a page holding ``<!-- generated: NAME -->`` gets that marker replaced by :data:`GENERATORS` [NAME]:
  ``configuration`` (every command's keys, from :mod:`mlrsnet.engine.config` and :mod:`mlrsnet.suite`),
  ``tasks`` (each dataset's task keys, from :mod:`mlrsnet.tasks`) and ``schedules`` (every declared schedule,
  from :mod:`mlrsnet.schedules.registry`).
- Relative links that leave ``docs/`` (to ``experiments/``, ``checkpoints/``...) are checked against the
  repository (a missing target is a warning, so ``mkdocs build --strict`` fails) and, where mkdocs.yml sets
  ``repo_url``, pointed at the repository's copy of the file.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import typing
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.mlrsnet")

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"<!--\s*generated:\s*([a-z_]+)\s*-->")
LINK = re.compile(r"(?<!!)\[([^\]]*)\]\(([^)\s]+)\)|!\[([^\]]*)\]\(([^)\s]+)\)")


# --- formatting --------------------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return (str(text).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
            .replace("\n", " "))


def _value(value: Any) -> str:
    """A default as it is written on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _allowed(meta: Any) -> str:
    """The declared range or choices of a field (:func:`mlrsnet.typed.setting`)."""
    choices = meta.get("choices")
    if choices is not None:
        return "one of " + ", ".join(f"`{_value(c)}`" for c in choices)
    ge, gt, le, lt = (meta.get(k) for k in ("ge", "gt", "le", "lt"))
    if (ge, gt, le, lt) == (None, None, None, None):
        return ""
    left = f"[{_value(ge)}" if ge is not None else (f"({_value(gt)}" if gt is not None else "(-inf")
    right = f"{_value(le)}]" if le is not None else (f"{_value(lt)})" if lt is not None else "inf)")
    return f"{left}, {right}"


def _field(cls: type, dotted: str) -> dataclasses.Field:
    """The dataclass field of dotted key ``dotted`` of ``cls``."""
    *head, last = dotted.split(".")
    for part in head:
        kind = typing.get_type_hints(cls)[part]
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        cls = args[0] if args else kind
    return next(f for f in dataclasses.fields(cls) if f.name == last)


def _lookup(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        data = data[part]
    return data


def key_table(cls: type, skip: set[str] = frozenset(), prefix: str = "") -> str:
    """A Markdown table of every leaf key of ``cls`` (:func:`mlrsnet.typed.keys`) but those in ``skip``: the key,
    its type (:func:`mlrsnet.typed.describe_type`), its default (:func:`mlrsnet.typed.defaults`), its range or
    choices and its help."""
    from mlrsnet.typed import defaults, describe_type, keys

    values = defaults(cls)
    rows = ["| key | type | default | allowed | help |", "|---|---|---|---|---|"]
    for key, kind, help_text in keys(cls):
        if key.split(".")[0] in skip:
            continue
        default = _lookup(values, key)
        shown = "*required*" if default == "???" else f"`{_cell(_value(default))}`"
        rows.append(f"| `{prefix}{key}` | {_cell(describe_type(kind)[0])} | {shown} | "
                    f"{_cell(_allowed(_field(cls, key).metadata))} | {_cell(help_text)} |")
    return "\n".join(rows)


def _doc(cls: type, command: bool = False) -> str:
    """The class docstring on one line (none for a dataclass without one); ``command``: without the leading
    "``python -m mlrsnet.X``: " that the heading already says."""
    doc = cls.__doc__ or ""
    if doc.startswith(cls.__name__ + "("):  # the signature dataclasses write where there is no docstring
        return ""
    doc = re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", " ".join(doc.split()))  # Sphinx roles as code
    return re.sub(r"^``[^`]+``: ", "", doc) if command else doc


def _own(cls: type, parent: type) -> set[str]:
    """The fields ``parent`` declares that ``cls`` does not redeclare."""
    own = set(cls.__dict__.get("__annotations__", {}))
    return {f.name for f in dataclasses.fields(parent)} - own


# --- generated pages ---------------------------------------------------------------------------------------------


def configuration() -> str:
    """Every command's keys: the shared ones once, then what each command adds."""
    from mlrsnet.engine.config import BenchConfig, EnsembleConfig, RLConfig, RunConfig, TrainConfig, TransferConfig
    from mlrsnet.suite import SuiteConfig, Workload

    out = ["## Keys every command shares", "",
           f"`{RunConfig.__name__}` (`mlrsnet.engine.config`): {_doc(RunConfig)} `task` is set by `+task=NAME` "
           "(`+query=NAME` for transfer); its keys depend on the task's dataset: [Task keys](tasks.md).", "",
           key_table(RunConfig, skip={"task"}), ""]
    commands = [("train", "python -m mlrsnet.train", TrainConfig, RunConfig),
                ("transfer", "python -m mlrsnet.transfer", TransferConfig, RunConfig),
                ("bench", "python -m mlrsnet.bench", BenchConfig, TrainConfig),
                ("ensemble", "python -m mlrsnet.ensemble", EnsembleConfig, TrainConfig),
                ("rl", "python -m mlrsnet.rl train", RLConfig, TrainConfig)]
    for name, command, cls, parent in commands:
        inherited = "the shared keys" if parent is RunConfig else "the shared keys and every key of `train`"
        intro = f"`{command}` (`{cls.__name__}`): {_doc(cls, command=True)} It takes {inherited}, and:"
        out += [f"## {name}", "", intro, "",
                key_table(cls, skip=_own(cls, parent) | {"task"}), ""]
        if cls is TrainConfig:
            out += ["`schedule` is a config group: `schedule=NAME schedule.KEY=VALUE`, each schedule's keys on "
                    "the [Schedules](schedules.md) page.", ""]
    out += ["## suite", "", f"`python -m mlrsnet.suite` (`{SuiteConfig.__name__}`, `mlrsnet.suite`): "
            f"{_doc(SuiteConfig, command=True)} It shares no key with the other commands; each workload's overrides "
            "go to its runs.", "", key_table(SuiteConfig), "",
            f"### A workload (`workloads` entry, `{Workload.__name__}`)", "", _doc(Workload), "",
            key_table(Workload), ""]
    from mlrsnet.engine.family import FamilyConfig, FamilyMember

    out += ["## family (`python -m mlrsnet.train +family=NAME`)", "",
            f"`+family=NAME` (conf/family/NAME.yaml) adds the `family` section (`{FamilyConfig.__name__}`, "
            "`mlrsnet.engine.family`) to `train`; the shared and `train` keys then apply to every member, before the "
            "family's and the member's own overrides.", "", key_table(FamilyConfig, prefix="family."), "",
            f"### A member (`family.members.NAME`, `{FamilyMember.__name__}`)", "", _doc(FamilyMember), "",
            key_table(FamilyMember), ""]
    return "\n".join(out)


def tasks() -> str:
    """Each dataset's task keys (``task.*``), one table per config class."""
    import mlrsnet.tasks  # noqa: F401  (registers every dataset)
    from mlrsnet.tasks.registry import _DATASETS

    by_class: dict[type, list[str]] = {}
    for dataset, (cls, _) in sorted(_DATASETS.items()):
        by_class.setdefault(cls, []).append(dataset)
    task_files = sorted(p.stem for p in (ROOT / "conf" / "task").glob("*.yaml"))
    out = ["Task files (`+task=NAME`, `conf/task/`): " + ", ".join(f"`{t}`" for t in task_files) + ".", ""]
    for cls, datasets in by_class.items():
        out += [f"## `{cls.__name__}`", "", f"`dataset`: {', '.join(f'`{d}`' for d in datasets)} "
                f"(`{cls.__module__}`). {_doc(cls)}", "", key_table(cls, prefix="task."), ""]
    return "\n".join(out)


def schedules() -> str:
    """Every declared schedule: an overview table, then each one's parameters and search space."""
    from mlrsnet.schedules.drivers import KINDS
    from mlrsnet.schedules.registry import schedules as declared
    from mlrsnet.schedules.spec import ScheduleParams

    decls = declared()

    def search(decl: Any) -> str:
        return ", ".join(f"`{k}` {r.low:g} to {r.high:g}{' (log)' if r.log else ''}" for k, r in decl.search.items())

    def optimizer(decl: Any) -> str:
        return ", ".join(f"{k}={_value(v)}" for k, v in decl.optimizer.items()) or "the base optimiser"

    out = ["| name | kind | summary | optimiser | search space |", "|---|---|---|---|---|"]
    for name, decl in decls.items():
        out.append(f"| [`{name}`](#{name}) | `{decl.kind}` | {_cell(decl.summary)} | {_cell(optimizer(decl))} | "
                   f"{_cell(search(decl))} |")
    out += ["", "Kinds (how a training loop drives a schedule, `mlrsnet.schedules.drivers.KINDS`):", ""]
    out += [f"- `{kind}`: {text}" for kind, text in KINDS.items()]
    out.append("")
    for name, decl in decls.items():
        out += [f"## `{name}` {{#{name}}}", "", f"{_cell(decl.summary)}.", "",
                f"- reference: {_cell(decl.reference)}",
                f"- kind: `{decl.kind}` ({_cell(KINDS[decl.kind])})",
                f"- optimiser: {_cell(optimizer(decl))}; simplicity rank {decl.simplicity}",
                f"- search space (`lr`: a multiplier of the base LR): {_cell(search(decl))}",
                f"- parameters: `{decl.params.__name__}`" + ("" if decl.params is ScheduleParams else
                                                              f" (`{decl.params.__module__}`)"), "",
                key_table(decl.params, prefix="schedule."), ""]
    return "\n".join(out)


GENERATORS = {"configuration": configuration, "tasks": tasks, "schedules": schedules}


# --- hooks -------------------------------------------------------------------------------------------------------


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    markdown = MARKER.sub(lambda m: GENERATORS[m.group(1)](), markdown)
    src = Path(config["docs_dir"]) / page.file.src_uri
    docs = Path(config["docs_dir"]).resolve()
    repo_url = (config.get("repo_url") or "").rstrip("/")

    def outside(m: re.Match) -> str:
        text, target = (m.group(1), m.group(2)) if m.group(2) is not None else (m.group(3), m.group(4))
        if re.match(r"^[a-z]+:|^#|^/", target):
            return m.group(0)
        path = target.split("#", 1)[0]
        resolved = (src.parent / path).resolve()
        if not resolved.exists():
            log.warning("%s links to %s, which does not exist", page.file.src_uri, target)
            return m.group(0)
        if docs in resolved.parents or resolved == docs or not repo_url:
            return m.group(0)
        kind = "tree" if resolved.is_dir() else "blob"
        rel = resolved.relative_to(ROOT).as_posix()
        bang = "!" if m.group(2) is None else ""
        return f"{bang}[{text}]({repo_url}/{kind}/main/{rel})"

    return LINK.sub(outside, markdown)
