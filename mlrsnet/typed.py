"""Typed configs: dataclasses whose fields declare their default, their range and their help once, and the
one conversion of a plain mapping (a composed Hydra config section) into them.

A field is declared with :func:`setting`::

    @dataclass
    class MetaConfig:
        interval: int = setting(1, "meta step every `interval` inner iterations", ge=1)
        backend: str = setting("exact", "exact | higher | unroll", choices=("exact", "higher", "unroll"))

:func:`parse` merges a mapping into the class (OmegaConf structured configs convert the types), builds the
objects, checks every declared range and choice, then calls each object's ``check(prefix)`` method where it
has one (combinations of fields). Every failure is a one-line :class:`~mlrsnet.errors.ConfigError` that names
the full key (``task.noise.rate``), the value and the fix. :func:`defaults` is the plain mapping of a class's
defaults (what Hydra composes a command's config from), :func:`keys` its dotted keys with their help.

OmegaConf types a field as ``int``, ``float``, ``bool``, ``str``, a list, a dict, a nested dataclass,
``X | None`` or ``Any``; a field that takes more than one type (``gamma: recompute | checkpoint | <number>``)
is ``Any`` and its ``check`` says what it accepts.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Sequence
from dataclasses import MISSING, fields, is_dataclass
from typing import Any, TypeVar

from mlrsnet.errors import ConfigError

__all__ = ["check_values", "closest_key", "defaults", "describe_type", "help_of", "keys", "parse", "setting"]

T = TypeVar("T")


def setting(default: Any = MISSING, help: str = "", *, ge: float | None = None, gt: float | None = None,
            le: float | None = None, lt: float | None = None, choices: Sequence[Any] | None = None,
            example: Any = None) -> Any:
    """A dataclass field with its default, its help and its allowed values: ``ge`` / ``gt`` / ``le`` / ``lt``
    bounds (None, where the type allows it, is always accepted), or ``choices``. ``example`` is the value the
    fix suggests (default: the bound, or the first choice). A list or dict default is copied per instance."""
    meta = {"help": help, "ge": ge, "gt": gt, "le": le, "lt": lt,
            "choices": None if choices is None else tuple(choices), "example": example}
    if isinstance(default, list | dict):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=meta)
    if is_dataclass(default) and not isinstance(default, type):
        value = default
        return dataclasses.field(default_factory=lambda: dataclasses.replace(value), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def help_of(cls: type, name: str) -> str:
    """The help of field ``name`` of ``cls`` (for a field of another class that takes the same values)."""
    return next(f.metadata.get("help", "") for f in fields(cls) if f.name == name)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _dataclass_type(kind: Any) -> type | None:
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and len(args) == 1:
        kind = args[0]
    return kind if isinstance(kind, type) and is_dataclass(kind) else None


def keys(cls: type, prefix: str = "") -> list[tuple[str, Any, str]]:
    """Every leaf key of ``cls``, dotted, with its type and help: ``[("meta.interval", int, "..."), ...]``."""
    out = []
    hints = _hints(cls)
    for f in fields(cls):
        nested = _dataclass_type(hints[f.name])
        if nested is not None:
            out += keys(nested, f"{prefix}{f.name}.")
        else:
            out.append((prefix + f.name, hints[f.name], f.metadata.get("help", "")))
    return out


def closest_key(cls: type, key: str) -> str | None:
    """The existing key of ``cls`` closest to a misspelt ``key`` (``epoch`` -> ``epochs``), or None."""
    names = [k for k, _, _ in keys(cls)]
    sections = {k.rsplit(".", 1)[0] for k in names if "." in k} if "." not in key else set()
    matches = difflib.get_close_matches(key, names + sorted(sections), n=1, cutoff=0.6)
    return matches[0] if matches else None


def describe_type(kind: Any) -> tuple[str, str]:
    """``(phrase, placeholder)`` for a field type: ``("an integer", "<integer>")``."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in args:
        inner = next(a for a in args if a is not type(None))
        phrase, placeholder = describe_type(inner)
        return f"{phrase} or null", placeholder
    origin = typing.get_origin(kind) or kind
    if origin is list:
        item = describe_type(args[0])[0] if args else "values"
        item = {"an integer": "integers", "a number": "numbers", "a string": "strings"}.get(item, "values")
        return f"a list of {item}", "[a,b]"
    if origin is dict or (isinstance(kind, type) and is_dataclass(kind)):
        return "a mapping of keys to values", "{key: value}"
    return {int: ("an integer", "<integer>"), float: ("a number", "<number>"), bool: ("true or false", "true"),
            str: ("a string", "<text>")}.get(kind, ("a value", "<value>"))


def _field_type(cls: type, key: str) -> Any:
    """The annotation of dotted ``key`` in ``cls`` (None when the key is not in it)."""
    kind: Any = cls
    for part in key.split("."):
        nested = _dataclass_type(kind)
        if nested is None:
            return None
        kind = _hints(nested).get(part)
        if kind is None:
            return None
    return kind


def _lookup(data: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _type_error(cls: type, e: Any, data: dict, prefix: str) -> ConfigError:
    key = str(getattr(e, "full_key", "") or getattr(e, "key", "") or "")
    kind = _field_type(cls, key) if key else None
    full = prefix + key
    if kind is None or type(e).__name__ == "ConfigKeyError":
        near = closest_key(cls, key) if key else None
        hint = f"did you mean {prefix}{near}?" if near else "see the keys with --cfg job"
        return ConfigError(f"unknown config key {full or '?'}; {hint}")
    phrase, placeholder = describe_type(kind)
    return ConfigError(f"{full} must be {phrase}, got {_lookup(data, key)!r}; set {full}={placeholder}")


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _check_field(key: str, value: Any, meta: Any) -> None:
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        shown = ", ".join(str(c).lower() for c in choices)
        raise ConfigError(f"{key}={value!r} is not one of {shown}; set {key}={str(choices[0]).lower()}")
    ge, gt, le, lt = (meta.get(k) for k in ("ge", "gt", "le", "lt"))
    if (ge, gt, le, lt) == (None, None, None, None) or not isinstance(value, int | float) or isinstance(value, bool):
        return
    ok = ((ge is None or value >= ge) and (gt is None or value > gt) and (le is None or value <= le)
          and (lt is None or value < lt)) and not math.isnan(value)
    if ok:
        return
    example = meta.get("example")
    if le is None and lt is None:
        if gt == 0 and ge is None:
            raise ConfigError(f"{key} must be positive, got {_fmt(value)}; set {key}="
                              f"{'<a positive number>' if example is None else example}")
        low = ge if ge is not None else gt
        rel = ">=" if ge is not None else ">"
        raise ConfigError(f"{key} must be {rel} {_fmt(low)}, got {value}; set {key}="
                          f"{example if example is not None else f'{_fmt(max(low, 1))} or more'}")
    left = f"[{_fmt(ge)}" if ge is not None else (f"({_fmt(gt)}" if gt is not None else "(-inf")
    right = f"{_fmt(le)}]" if le is not None else (f"{_fmt(lt)})" if lt is not None else "inf)")
    fix = example if example is not None else (ge if ge is not None else le if le is not None else "<value>")
    raise ConfigError(f"{key} must be in {left}, {right}, got {value}; set {key}={fix}")


def check_values(obj: Any, prefix: str = "") -> None:
    """Every declared range and choice of ``obj`` (a dataclass instance) and of the dataclasses in it, then
    its ``check(prefix)`` method where it has one."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        key = prefix + f.name
        if is_dataclass(value) and not isinstance(value, type):
            check_values(value, key + ".")
        elif value is not None:
            _check_field(key, value, f.metadata)
    hook = getattr(obj, "check", None)
    if callable(hook):
        hook(prefix)


def parse(cls: type[T], data: Any, prefix: str = "") -> T:
    """``data`` (a mapping, e.g. one section of a composed config, interpolations resolved) as a ``cls``
    object: types converted, absent keys at their defaults, unknown keys refused, ranges and combinations
    checked (:func:`check_values`). ``prefix`` (``"task."``) is put in front of every key an error names."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'the config'} must be a mapping of keys to values, got "
                          f"{data!r}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), data)
        missing = sorted(OmegaConf.missing_keys(merged))
        if missing:
            raise ConfigError(f"{prefix}{missing[0]} is not set; set {prefix}{missing[0]}=<value>")
        obj = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise _type_error(cls, e, data, prefix) from None
    check_values(obj, prefix)
    return obj  # type: ignore[return-value]


def defaults(cls: type) -> dict:
    """The defaults of ``cls`` as a plain mapping (nested dataclasses as mappings; required fields as
    ``???``, OmegaConf's missing value)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.structured(cls))  # type: ignore[return-value]
