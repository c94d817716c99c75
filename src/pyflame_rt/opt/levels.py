"""Optimization levels and their mapping from ONNX Runtime's ``GraphOptimizationLevel``."""

from __future__ import annotations

import enum
from typing import Any

__all__ = ["OptLevel", "to_opt_level"]


class OptLevel(enum.IntEnum):
    """How much the optimizer may rewrite: each level includes the ones below it."""

    NONE = 0
    BASIC = 1
    EXTENDED = 2
    ALL = 3

    @classmethod
    def parse(cls, value: Any) -> OptLevel:
        """Accept an ``OptLevel``, ORT's ``GraphOptimizationLevel``, an int or a name."""
        return to_opt_level(value)


_ORT_VALUES = {0: OptLevel.NONE, 1: OptLevel.BASIC, 2: OptLevel.EXTENDED, 3: OptLevel.ALL,
               99: OptLevel.ALL}
_NAMES = {
    "none": OptLevel.NONE, "disable_all": OptLevel.NONE, "ort_disable_all": OptLevel.NONE,
    "basic": OptLevel.BASIC, "ort_enable_basic": OptLevel.BASIC,
    "extended": OptLevel.EXTENDED, "ort_enable_extended": OptLevel.EXTENDED,
    "layout": OptLevel.ALL, "ort_enable_layout": OptLevel.ALL,
    "all": OptLevel.ALL, "ort_enable_all": OptLevel.ALL,
}


def to_opt_level(value: Any) -> OptLevel:
    """Map ``OptLevel``, ``GraphOptimizationLevel`` (0/1/2/3/99), ints or names to ``OptLevel``."""
    if isinstance(value, OptLevel):
        return value
    if isinstance(value, str):
        key = value.strip().lower().split(".")[-1]
        if key in _NAMES:
            return _NAMES[key]
        raise ValueError(f"unknown optimization level {value!r}; use one of none, basic, "
                         "extended, all (or ORT's ORT_DISABLE_ALL ... ORT_ENABLE_ALL)")
    name = getattr(value, "name", None)
    if isinstance(name, str) and name.lower() in _NAMES:
        return _NAMES[name.lower()]
    try:
        return _ORT_VALUES[int(value)]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"unknown optimization level {value!r}; use OptLevel.NONE/BASIC/"
                         "EXTENDED/ALL or GraphOptimizationLevel.ORT_*") from None
