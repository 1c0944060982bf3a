"""Shared attrs validators for part and refiner options.

Python's ``bool`` is an ``int`` subclass, so ``instance_of(int)`` alone would take
``iterations = true`` from a TOML file as 1; every numeric validator here refuses booleans and
non-finite values first.
"""

from __future__ import annotations

import math
from typing import Any

from attrs import validators as v

__all__ = ["choice", "integer", "not_bool", "number", "unit"]


def not_bool(_inst: object, attribute: Any, value: Any) -> None:
    """Refuse ``True``/``False`` where a number is expected."""
    if isinstance(value, bool):
        raise ValueError(f"{attribute.name!r} must be a number, not a boolean ({value!r})")


def _finite(_inst: object, attribute: Any, value: Any) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{attribute.name!r} must be a finite number; got {value!r}")


def number(lo: float | None = None, hi: float | None = None) -> list[Any]:
    """A finite int or float (not a bool) in ``[lo, hi]`` (either bound may be None)."""
    out: list[Any] = [not_bool, _finite]
    if lo is not None:
        out.append(v.ge(lo))
    if hi is not None:
        out.append(v.le(hi))
    return out


def unit(_inst: object, attribute: Any, value: Any) -> None:
    """A number in ``[0, 1]``."""
    for check in number(0.0, 1.0):
        check(_inst, attribute, value)


def integer(lo: int | None = None, hi: int | None = None) -> list[Any]:
    """An ``int`` (not a bool) in ``[lo, hi]``."""
    out: list[Any] = [not_bool, v.instance_of(int)]
    if lo is not None:
        out.append(v.ge(lo))
    if hi is not None:
        out.append(v.le(hi))
    return out


def choice(options: tuple[str, ...]) -> list[Any]:
    """One of ``options`` (a string)."""
    return [v.instance_of(str), v.in_(options)]
