"""Activation codes shared by the fused ops' numba epilogues (no numba import here)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ACT_CODES", "act_params"]

#: Activation name (the fused ops' ``activation`` attribute) -> code used by the kernels.
ACT_CODES = {"": 0, "Relu": 1, "LeakyRelu": 2, "Sigmoid": 3, "Tanh": 4, "HardSigmoid": 5,
             "HardSwish": 6, "Clip": 7, "SiLU": 8, "Gelu": 9, "GeluTanh": 10}

_DEFAULTS = {"LeakyRelu": (0.01, 0.0), "HardSigmoid": (0.2, 0.5),
             "Clip": (float("-inf"), float("inf"))}


def act_params(activation: str, params: Sequence[float] | None) -> tuple[int, float, float]:
    """(code, a0, a1) for a fused op's ``activation`` and ``activation_params``."""
    if activation not in ACT_CODES:
        raise ValueError(f"unknown fused activation {activation!r}; known: "
                         f"{', '.join(a for a in ACT_CODES if a)}")
    default = _DEFAULTS.get(activation, (0.0, 0.0))
    p = [float(v) for v in (params or ())]
    a0 = p[0] if len(p) > 0 else default[0]
    a1 = p[1] if len(p) > 1 else default[1]
    return ACT_CODES[activation], a0, a1
