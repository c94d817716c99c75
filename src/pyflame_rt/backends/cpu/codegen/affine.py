"""Inference BatchNormalization as one pass: y = act(x * scale[c] + shift[c]).

:func:`specialize_batch_norm` is the planner's fast path for float32 ``BatchNormalization``
with constant parameters and one output: the four parameter vectors are folded once, at
compile time, into ``scale = gamma / sqrt(var + eps)`` and ``shift = beta - mean * scale``
(in float64), and the run is one numba pass over the planes, split across the session's
threads. The planner may hand it the activation that follows (``absorb``), e.g. the ReLU of
DenseNet's pre-activation BN-ReLU-Conv blocks, which then costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import threads
from . import par
from .activations import ACT_CODES

__all__ = ["ChannelAffine", "specialize_batch_norm"]

#: Elements per parallel job.
_JOB = 1 << 16


class ChannelAffine:
    """The specialized BatchNormalization: same positional signature as the kernel."""

    def __init__(self, scale: np.ndarray, shift: np.ndarray, sources: tuple,
                 fallback: Callable[..., Any]) -> None:
        self.scale = np.ascontiguousarray(scale, dtype=np.float32)
        self.shift = np.ascontiguousarray(shift, dtype=np.float32)
        self.sources = sources
        self.fallback = fallback
        self.act, self.a0, self.a1 = 0, 0.0, 0.0
        self.absorbed: str | None = None

    def absorb(self, activation: str) -> bool:
        """Apply ``activation`` (a fused-op activation name) to the output too."""
        if self.absorbed is not None or activation not in ACT_CODES or not activation:
            return False
        self.act = ACT_CODES[activation]
        self.absorbed = activation
        return True

    def __call__(self, X: np.ndarray, *params: Any, _ctx: Any = None) -> np.ndarray:
        c = self.scale.size
        if (X.dtype != np.float32 or X.ndim < 2 or X.shape[1] != c or not par.available()
                or any(p is not s for p, s in zip(params, self.sources))):
            y = self.fallback(X, *params, _ctx=_ctx)
            if self.absorbed:
                from ..fused import apply_activation

                y = apply_activation(np.array(y, copy=True), self.absorbed, [])
            return y
        x = X if X.flags.c_contiguous else np.ascontiguousarray(X)
        y = np.empty(x.shape, np.float32)
        planes = x.shape[0] * c
        plane = x.size // max(planes, 1)
        per = max(1, _JOB // max(plane, 1))
        nthreads = threads.current_threads()
        if nthreads > 1:
            per = min(per, max(1, -(-planes // (4 * nthreads))))
        parts = np.array([(a, min(planes, a + per)) for a in range(0, planes, per)],
                         np.int64).reshape(-1, 2)
        par.run("channel_affine", parts, x.reshape(-1), y.reshape(-1), self.scale, self.shift,
                c, plane, self.act, self.a0, self.a1)
        return y


def specialize_batch_norm(ctx: Any, fallback: Callable[..., Any]) -> ChannelAffine | None:
    """A :class:`ChannelAffine` for inference BatchNormalization with constant parameters."""
    attrs = ctx.attrs
    if attrs.get("training_mode", 0) or not attrs.get("spatial", 1):
        return None
    if len([v for v in ctx.node.outputs if v is not None]) != 1:
        return None
    types = list(ctx.input_types)
    dtype = getattr(getattr(types[0] if types else None, "dtype", None), "numpy", None)
    if dtype is not None and dtype != np.float32:
        return None
    consts = list(ctx.constants)
    if len(consts) != 5 or any(not isinstance(c, np.ndarray) or c.dtype != np.float32
                               or c.ndim != 1 for c in consts[1:]):
        return None
    gamma, beta, mean, var = (c.astype(np.float64) for c in consts[1:])
    if not (gamma.size == beta.size == mean.size == var.size):
        return None
    eps = float(attrs.get("epsilon", 1e-5))
    scale = gamma / np.sqrt(var + eps)
    shift = beta - mean * scale
    bound = {k: v for k, v in attrs.items() if k in ("epsilon", "momentum", "spatial",
                                                      "training_mode")}

    def generic(X: np.ndarray, *params: Any, _ctx: Any = None) -> Any:
        return fallback(X, *params, _ctx=_ctx, **bound)

    return ChannelAffine(scale, shift, tuple(consts[1:]), generic)
