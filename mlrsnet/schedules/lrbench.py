r"""The LRBench family of learning-rate policies as pure functions of the iteration ``t``.

Wu, Liu et al., "Demystifying Learning Rate Policies for High Accuracy Training of Deep Neural
Networks", IEEE BigData 2019 (reference code: git-disl/LRBench). Each policy maps an iteration
``t >= 0`` to a learning rate using LRBench's parameters ``k0, k1, gamma, p, l``; nothing depends on
call history, so ``lr_at(policy, t)`` gives the same value whatever was asked before (LRBench's
own NSTEP keeps a hidden global counter; this one does not).

Decaying policies::

    FIX     k0
    STEP    k0 * gamma^floor(t / l)
    NSTEP   k0 * gamma^i            for l[i-1] <= t < l[i]   (l: increasing boundaries; i = #{b in l: b <= t})
    EXP     k0 * gamma^t
    INV     k0 * (1 + gamma*t)^(-p)
    POLY    (k1 - k0) * (1 - min(t, l)/l)^p + k0           (LRBench's form: k1 at t=0, k0 from t=l on)
    SIG     k0 / (1 + exp(-gamma*(t - l)))

Cyclic policies are ``k0 + (k1 - k0) * g(t)`` with a wave ``g`` in [0, 1] and a modifier. Waves
(``r = -t/l - floor(-t/l)`` is LRBench's restart phase: ``1 - (t mod l)/l`` inside a cycle and 0 at
``t = 0 (mod l)``)::

    TRI     (2/pi) * |asin(sin(pi*t / (2l)))|       triangle, period 2l, starts at k0 (rises first)
    TRID    TRI(t + l)                               shifted half a period: starts at k1 (falls first)
    SIN     |sin(pi*t / (2l))|                       period 2l, rises first
    SIND    SIN(t + l) = |cos(pi*t / (2l))|          falls first
    COS     0.5 * (1 + cos(pi*t / l))                period 2l, starts at k1 (falls first)
    UPCOS   COS(t + l) = 0.5 * (1 - cos(pi*t / l))   rises first
    RSW     r                                        restart sawtooth: k1 -> k0 linearly, restart every l
    SINRSW  sin(pi*r / 2)                            sine quarter-wave from k1 to k0, restart every l
    COSRSW  0.5 * (1 - cos(pi*r))                    cosine from k1 to k0, restart every l (SGDR-like)

As in LRBench, the restart waves are at k0 (not k1) at ``t = 0 (mod l)``: the restart to k1 comes
one iteration later. TRID and SIND are LRBench's DTRI and DSIN. COS already falls first, so its
shifted ("D") form is UPCOS; there is no COSD. Every wave ``W`` comes in three versions::

    W       g(t)
    W2      g(t) / 2^floor((t + s) / P)   amplitude halved every cycle; P = 2l (TRI/SIN/COS), l (*RSW);
                                          s = l for the waves that fall first (TRID, SIND, COS), else 0
    WEXP    g(t) * gamma^t                exponentially damped amplitude

e.g. TRI2 = TRI / 2^floor(t/2l), COS2 = COS / 2^floor((t+l)/2l), TRIDEXP = gamma^t * TRID,
COSRSW2 = COSRSW / 2^floor(t/l). All of this is LRBench's ``LRfunctions.py`` (git-disl/LRBench) to
float rounding, except two deliberate deviations: POLY is clamped at k0 for ``t > l`` (LRBench's
formula rises again, or is complex for a fractional ``p``), and SIG returns 0.0 where ``exp``
overflows (LRBench raises ``OverflowError``).

Composite (piecewise) policy: ``COMPOSITE`` with ``segments=[(start, policy, params), ...]``; the
first start is 0, starts increase strictly, and segment ``i`` is evaluated at ``t - start_i`` (its
own clock starts at zero when it takes over). Segments may themselves be composites.

Use :func:`lr_at` for one value, :func:`schedule` for a validated callable ``t -> lr`` (the optax
style), and :class:`LRBenchScheduler` to drive a torch optimizer.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from mlrsnet.errors import ConfigError

__all__ = ["Composite", "LRBenchScheduler", "available_policies", "lr_at", "schedule"]


def _fix(t: int, *, k0: float) -> float:
    return k0


def _step(t: int, *, k0: float, gamma: float, l: int) -> float:
    return k0 * gamma ** math.floor(t / l)


def _nstep(t: int, *, k0: float, gamma: float, l: Sequence[int]) -> float:
    return k0 * gamma ** bisect.bisect_right(l, t)


def _exp(t: int, *, k0: float, gamma: float) -> float:
    return k0 * gamma**t


def _inv(t: int, *, k0: float, gamma: float, p: float) -> float:
    return k0 * (1.0 + gamma * t) ** (-p)


def _poly(t: int, *, k0: float, k1: float, p: float, l: int) -> float:
    # Clamped at t = l: past the horizon (1 - t/l) is negative and a fractional power is undefined.
    return (k1 - k0) * (1.0 - min(t, l) / l) ** p + k0


def _sig(t: int, *, k0: float, gamma: float, l: int) -> float:
    z = gamma * (t - l)
    # Written both ways so that exp() never overflows for large |z|.
    if z >= 0:
        return k0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return k0 * e / (1.0 + e)


def _tri(t: float, l: float) -> float:
    return 2.0 / math.pi * abs(math.asin(math.sin(math.pi * t / (2 * l))))


def _sin(t: float, l: float) -> float:
    return abs(math.sin(math.pi * t / (2 * l)))


def _cos(t: float, l: float) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * t / l))


def _restart(t: float, l: float) -> float:
    # LRBench's phase, written as it writes it: 0 (not 1) at t = 0 mod l.
    return -t / l - math.floor(-t / l)


_WAVES: dict[str, tuple[Callable[[float, float], float], int, int]] = {
    # name: (g(t, l), cycle length in units of l, shift of the halving clock in units of l)
    "TRI": (_tri, 2, 0),
    "TRID": (lambda t, l: _tri(t + l, l), 2, 1),
    "SIN": (_sin, 2, 0),
    "SIND": (lambda t, l: _sin(t + l, l), 2, 1),
    "COS": (_cos, 2, 1),
    "UPCOS": (lambda t, l: _cos(t + l, l), 2, 0),
    "RSW": (_restart, 1, 0),
    "SINRSW": (lambda t, l: math.sin(math.pi / 2 * _restart(t, l)), 1, 0),
    "COSRSW": (lambda t, l: 0.5 * (1.0 - math.cos(math.pi * _restart(t, l))), 1, 0),
}


def _cyclic(t: int, *, wave: str, k0: float, k1: float, l: float) -> float:
    g, _, _ = _WAVES[wave]
    return k0 + (k1 - k0) * g(t, l)


def _cyclic2(t: int, *, wave: str, k0: float, k1: float, l: float) -> float:
    g, cycles, shift = _WAVES[wave]
    return k0 + (k1 - k0) * g(t, l) / 2 ** math.floor((t + shift * l) / (cycles * l))


def _cyclic_exp(t: int, *, wave: str, k0: float, k1: float, l: float, gamma: float) -> float:
    g, _, _ = _WAVES[wave]
    return k0 + (k1 - k0) * g(t, l) * gamma**t


@dataclass(frozen=True)
class _Policy:
    fn: Callable[..., float]
    params: tuple[str, ...]
    fixed: Mapping[str, Any]


_POLICIES: dict[str, _Policy] = {
    "FIX": _Policy(_fix, ("k0",), {}),
    "STEP": _Policy(_step, ("k0", "gamma", "l"), {}),
    "NSTEP": _Policy(_nstep, ("k0", "gamma", "l"), {}),
    "EXP": _Policy(_exp, ("k0", "gamma"), {}),
    "INV": _Policy(_inv, ("k0", "gamma", "p"), {}),
    "POLY": _Policy(_poly, ("k0", "k1", "p", "l"), {}),
    "SIG": _Policy(_sig, ("k0", "gamma", "l"), {}),
}
for _wave in _WAVES:
    _POLICIES[_wave] = _Policy(_cyclic, ("k0", "k1", "l"), {"wave": _wave})
    _POLICIES[_wave + "2"] = _Policy(_cyclic2, ("k0", "k1", "l"), {"wave": _wave})
    _POLICIES[_wave + "EXP"] = _Policy(_cyclic_exp, ("k0", "k1", "l", "gamma"), {"wave": _wave})


def available_policies() -> list[str]:
    """Every policy name accepted by :func:`lr_at` (``COMPOSITE`` included)."""
    return sorted([*_POLICIES, "COMPOSITE"])


def _check_number(policy: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"LRBench policy {policy}: parameter {name}={value!r} is not a finite number; "
                          f"give {name} a number")
    return value


def _check(policy: str, params: Mapping[str, Any]) -> _Policy:
    if policy not in _POLICIES:
        raise ConfigError(f"unknown LRBench policy {policy!r}; use one of: {', '.join(available_policies())}")
    spec = _POLICIES[policy]
    missing = [k for k in spec.params if k not in params]
    extra = [k for k in params if k not in spec.params]
    if missing or extra:
        raise ConfigError(f"LRBench policy {policy}: missing {missing or 'none'}, unexpected "
                          f"{extra or 'none'}; it takes exactly {', '.join(spec.params)}")
    for name, value in params.items():
        if policy == "NSTEP" and name == "l":
            continue
        _check_number(policy, name, value)
    if policy == "NSTEP":
        l = params["l"]
        if (isinstance(l, str) or not isinstance(l, Sequence) or not l
                or any(isinstance(b, bool) or not isinstance(b, int) or b < 0 for b in l)
                or any(a >= b for a, b in zip(l, l[1:], strict=False))):
            raise ConfigError(f"LRBench policy NSTEP: l={l!r} must be a non-empty, strictly increasing list "
                              "of non-negative iteration boundaries, e.g. l=[100, 150]")
    elif "l" in spec.params and policy != "SIG" and params["l"] <= 0:
        raise ConfigError(f"LRBench policy {policy}: l={params['l']!r} must be positive; set l > 0")
    return spec


def schedule(policy: str, **params: Any) -> Callable[[int], float]:
    """Validate ``policy`` and its parameters once and return the pure function ``t -> lr``.

    Raises :class:`~mlrsnet.errors.ConfigError` for an unknown policy, a missing or unexpected
    parameter, or an invalid value.
    """
    if policy == "COMPOSITE":
        if set(params) != {"segments"}:
            raise ConfigError("LRBench policy COMPOSITE takes exactly one parameter, "
                              "segments=[(start, policy, params), ...]")
        return Composite(params["segments"])
    spec = _check(policy, params)
    if policy == "NSTEP":
        params = {**params, "l": tuple(params["l"])}
    return partial(spec.fn, **spec.fixed, **params)


def lr_at(policy: str, t: int, **params: Any) -> float:
    """Learning rate of LRBench ``policy`` at iteration ``t`` (see the module docstring for the table).

    Example: ``lr_at("STEP", 250, k0=0.1, gamma=0.1, l=100) == 0.1 * 0.1**2``.
    """
    if t < 0:
        raise ValueError(f"iteration t={t} must be >= 0")
    return float(schedule(policy, **params)(t))


class Composite:
    """Piecewise policy: ``segments=[(start, policy, params), ...]`` switches policy at each ``start``.

    Segment ``i`` is active for ``start_i <= t < start_{i+1}`` and is evaluated at ``t - start_i``,
    i.e. each segment's clock starts at zero when it takes over. The first start must be 0.
    """

    def __init__(self, segments: Sequence[tuple[int, str, Mapping[str, Any]]]) -> None:
        if isinstance(segments, str) or not isinstance(segments, Sequence) or not segments:
            raise ConfigError("LRBench COMPOSITE: segments must be a non-empty list of "
                              "(start, policy, params)")
        starts: list[int] = []
        fns: list[Callable[[int], float]] = []
        for seg in segments:
            if isinstance(seg, str) or not isinstance(seg, Sequence) or len(seg) != 3:
                raise ConfigError(f"LRBench COMPOSITE: segment {seg!r} must be a triple "
                                  "(start, policy, params)")
            start, policy, params = seg
            if isinstance(start, bool) or not isinstance(start, int) or (starts and start <= starts[-1]):
                raise ConfigError(f"LRBench COMPOSITE: segment starts must be strictly increasing integers, "
                                  f"got {start!r} after {starts}")
            starts.append(start)
            fns.append(schedule(policy, **dict(params)))
        if starts[0] != 0:
            raise ConfigError(f"LRBench COMPOSITE: the first segment must start at 0, not {starts[0]}")
        self.starts = starts
        self._fns = fns

    def __call__(self, t: int) -> float:
        i = bisect.bisect_right(self.starts, t) - 1
        return self._fns[i](t - self.starts[i])


class LRBenchScheduler(LRScheduler):
    """Torch scheduler that sets each param group's lr to ``lr_at(policy, t) * group.get("lr_scale", 1)``.

    ``t`` is the number of :meth:`step` calls so far (0 right after construction), so call
    :meth:`step` once per iteration, after ``optimizer.step()``. The group's own initial ``lr`` is
    ignored: the policy gives absolute values, and a group that should differ sets a multiplier
    ``lr_scale`` in its param-group dict. ``state_dict``/``load_state_dict`` carry ``t``, the policy
    and its parameters.
    """

    def __init__(self, optimizer: Optimizer, policy: str, last_epoch: int = -1, **params: Any) -> None:
        self.policy = policy
        self.params = params
        self._fn = schedule(policy, **params)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        value = self._fn(self.last_epoch)
        return [value * group.get("lr_scale", 1.0) for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in super().state_dict().items() if k != "_fn"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._fn = schedule(self.policy, **self.params)
