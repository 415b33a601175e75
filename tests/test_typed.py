"""mlrsnet.typed: a field's default, range and help declared once; one conversion of a mapping into the typed
objects, every failure a one-line error naming the full key, the value and the fix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from mlrsnet.errors import ConfigError
from mlrsnet.typed import closest_key, defaults, help_of, keys, parse, setting


@dataclass
class Inner:
    kind: str = setting("none", "what kind", choices=("none", "sym"))
    rate: float = setting(0.0, "how much", ge=0.0, lt=1.0, example="0.4")

    def check(self, prefix: str) -> None:
        if self.rate > 0 and self.kind == "none":
            raise ConfigError(f"{prefix}rate has no effect with {prefix}kind=none")


@dataclass(kw_only=True)
class Outer:
    name: str = setting(help="required")
    size: int = setting(100, "a size", ge=1)
    scale: float | None = setting(None, "a positive scale or null", gt=0)
    inner: Inner = setting(Inner(), "a section")
    extra: dict[str, Any] = setting({}, "free-form")
    anything: Any = None


def test_parse_converts_fills_defaults_and_builds_the_objects():
    obj = parse(Outer, {"name": "a", "size": "7", "inner": {"kind": "sym", "rate": 0.4}})
    assert obj == Outer(name="a", size=7, inner=Inner("sym", 0.4))
    assert parse(Outer, {"name": "b"}).extra is not parse(Outer, {"name": "c"}).extra  # no shared default


@pytest.mark.parametrize(("data", "message"), [
    ({"name": "a", "size": "x"}, "p.size must be an integer, got 'x'; set p.size=<integer>"),
    ({"name": "a", "size": 0}, "p.size must be >= 1, got 0; set p.size=1 or more"),
    ({"name": "a", "scale": -2.0}, "p.scale must be positive, got -2; set p.scale=<a positive number>"),
    ({"name": "a", "inner": {"rate": 1.5, "kind": "sym"}},
     "p.inner.rate must be in [0, 1), got 1.5; set p.inner.rate=0.4"),
    ({"name": "a", "inner": {"kind": "asym"}}, "p.inner.kind='asym' is not one of none, sym; set p.inner.kind=none"),
    ({"name": "a", "inner": {"rate": 0.3}}, "p.inner.rate has no effect with p.inner.kind=none"),
    ({"name": "a", "szie": 3}, "unknown config key p.szie; did you mean p.size?"),
    ({}, "p.name is not set; set p.name=<value>"),
])
def test_every_failure_is_one_line_naming_the_key_the_value_and_the_fix(data, message):
    with pytest.raises(ConfigError) as info:
        parse(Outer, data, "p.")
    assert str(info.value) == message


def test_defaults_keys_and_help_come_from_the_declaration():
    assert defaults(Inner) == {"kind": "none", "rate": 0.0}
    assert defaults(Outer)["name"] == "???"  # required: OmegaConf's missing value
    assert ("inner.rate", float, "how much") in keys(Outer)
    assert help_of(Outer, "size") == "a size"
    assert closest_key(Outer, "inner.kindd") == "inner.kind"
