"""Fused epilogues for GEMM-shaped results, in place: y = act(y + bias (+ z)).

A block is ``rows`` rows of ``cols`` contiguous elements inside a flat float32 buffer, the
first at ``base`` and the next ``stride`` elements on: a tile of a convolution's (M, P) output
or of a GEMM's (M, N) result, applied while the tile is still in cache. ``bias`` is indexed by
row (``bias_axis=0``: conv channels) or by column (``bias_axis=1``: Gemm/MatMul), starting
at ``boff``. Activations are the fused ops' codes (:data:`ACT_CODES`), each in its own loop so
LLVM vectorizes it.
"""

from __future__ import annotations

import numpy as np

from ._nb_vmath import gelu32, gelu_tanh32, sigmoid32, tanh32
from .activations import ACT_CODES
from .jit import announce_if_cold, njit

__all__ = ["ACT_CODES", "act_block", "act_row", "bias_act", "warm"]


@njit
def act_row(v, act, a0, a1):
    """Apply activation ``act`` (parameters a0, a1) to the 1-D view ``v``, in place."""
    a0 = np.float32(a0)
    a1 = np.float32(a1)
    zero = np.float32(0.0)
    one = np.float32(1.0)
    n = v.size
    if act == 1:
        for j in range(n):
            v[j] = max(v[j], zero)
    elif act == 2:
        for j in range(n):
            x = v[j]
            v[j] = x if x >= zero else x * a0
    elif act == 3:
        for j in range(n):
            v[j] = sigmoid32(v[j])
    elif act == 4:
        for j in range(n):
            v[j] = tanh32(v[j])
    elif act == 5:
        for j in range(n):
            v[j] = min(max(v[j] * a0 + a1, zero), one)
    elif act == 6:
        for j in range(n):
            x = v[j]
            v[j] = x * min(max(x * np.float32(1.0 / 6.0) + np.float32(0.5), zero), one)
    elif act == 7:
        for j in range(n):
            v[j] = min(max(v[j], a0), a1)
    elif act == 8:
        for j in range(n):
            x = v[j]
            v[j] = x * sigmoid32(x)
    elif act == 9:
        for j in range(n):
            v[j] = gelu32(v[j])
    elif act == 10:
        for j in range(n):
            v[j] = gelu_tanh32(v[j])


@njit
def act_block(y, base, stride, rows, cols, act, a0, a1):
    """Apply activation ``act`` to ``rows`` rows of ``cols`` elements of flat ``y``."""
    if act == 0:
        return
    for r in range(rows):
        o = base + r * stride
        act_row(y[o:o + cols], act, a0, a1)


@njit
def bias_act(y, base, stride, rows, cols, bias, boff, bias_axis, z, zbase, zstride, has_z,
             act, a0, a1):
    """y = act(y + bias (+ z)) on the block; ``bias`` empty for none, ``z`` flat like y."""
    # Loops index 0-based views: an index LLVM cannot prove non-negative gets numba's
    # wraparound select, which stops vectorization.
    has_bias = bias.size > 0
    for r in range(rows):
        o = base + r * stride
        v = y[o:o + cols]
        if has_z:
            zo = zbase + r * zstride
            w = z[zo:zo + cols]
            if has_bias and bias_axis == 0:
                b = bias[boff + r]
                for j in range(cols):
                    v[j] = v[j] + b + w[j]
            elif has_bias:
                bb = bias[boff:boff + cols]
                for j in range(cols):
                    v[j] = v[j] + bb[j] + w[j]
            else:
                for j in range(cols):
                    v[j] = v[j] + w[j]
        elif has_bias and bias_axis == 0:
            b = bias[boff + r]
            for j in range(cols):
                v[j] = v[j] + b
        elif has_bias:
            bb = bias[boff:boff + cols]
            for j in range(cols):
                v[j] = v[j] + bb[j]
        if act != 0:
            act_row(v, act, a0, a1)


announce_if_cold(bias_act, act_block, act_row)


def warm() -> None:
    y = np.zeros(8, np.float32)
    bias_act(y, 0, 4, 2, 4, np.zeros(2, np.float32), 0, 0, y, 0, 4, False, 1, 0.0, 0.0)
