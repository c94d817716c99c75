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

from ._nb_simd import (
    LANES,
    vadd,
    vfma,
    vload,
    vload_at,
    vload_at_n,
    vload_n,
    vmax,
    vmin,
    vsplat,
    vstore,
    vstore_n,
)
from ._nb_vmath import gelu32, gelu_tanh32, sigmoid32, tanh32
from .activations import ACT_CODES
from .jit import announce_if_cold, njit

__all__ = ["ACT_CODES", "act_block", "act_row", "affine_at", "bias_act", "warm"]


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
def _act_lanes(a, act, lo, hi, slope, zero):
    """Relu (1), LeakyRelu (2) or Clip (7) of a vector; other codes leave it unchanged."""
    if act == 1:
        return vmax(a, zero)
    if act == 7:
        return vmin(vmax(a, lo), hi)
    if act == 2:
        return vfma(slope, vmin(a, zero), vmax(a, zero))
    return a


@njit
def bias_act(y, base, stride, rows, cols, bias, boff, bias_axis, z, zbase, zstride, has_z,
             act, a0, a1):
    """y = act(y + bias (+ z)) on the block; ``bias`` empty for none, ``z`` flat like y."""
    # One pass per row in 8-lane vectors (the tail masked): bias, residual and the cheap
    # activations in registers. Left to LLVM, rows as short as a 7x7 map's 49 pixels ran
    # mostly scalar, and the activation was a second pass over the block.
    has_bias = bias.size > 0
    if not has_bias and not has_z and act == 0:
        return
    vact = act if act == 1 or act == 2 or act == 7 else 0
    zero = vsplat(np.float32(0.0))
    lo = vsplat(np.float32(a0))
    hi = vsplat(np.float32(a1))
    tail = cols % LANES
    full = cols - tail
    by_col = has_bias and bias_axis != 0
    # Only a transcendental activation to apply: act_row's pass alone.
    vector_pass = has_bias or has_z or vact != 0
    for r in range(rows):
        o = base + r * stride
        zo = zbase + r * zstride
        bv = vsplat(bias[boff + r]) if has_bias and bias_axis == 0 else zero
        for j in range(0, full if vector_pass else 0, LANES):
            a = vload(y, o + j)
            if by_col:
                a = vadd(a, vload(bias, boff + j))
            elif has_bias:
                a = vadd(a, bv)
            if has_z:
                a = vadd(a, vload(z, zo + j))
            vstore(y, o + j, _act_lanes(a, vact, lo, hi, lo, zero))
        if tail and vector_pass:
            a = vload_n(y, o + full, tail)
            if by_col:
                a = vadd(a, vload_n(bias, boff + full, tail))
            elif has_bias:
                a = vadd(a, bv)
            if has_z:
                a = vadd(a, vload_n(z, zo + full, tail))
            vstore_n(y, o + full, _act_lanes(a, vact, lo, hi, lo, zero), tail)
        if act != vact:
            act_row(y[o:o + cols], act, a0, a1)


@njit
def affine_at(addr, xoff, y, yoff, n, scale, shift, act, a0, a1):
    """y[yoff:yoff + n] = act(x * scale + shift) for the ``n`` floats ``xoff`` past the
    address ``addr`` (a plane of an inference BatchNormalization; see ``_nb_simd.vload_at``)."""
    vact = act if act == 1 or act == 2 or act == 7 else 0
    zero = vsplat(np.float32(0.0))
    lo = vsplat(np.float32(a0))
    hi = vsplat(np.float32(a1))
    a = vsplat(scale)
    b = vsplat(shift)
    tail = n % LANES
    full = n - tail
    for j in range(0, full, LANES):
        v = vfma(vload_at(addr, xoff + j), a, b)
        vstore(y, yoff + j, _act_lanes(v, vact, lo, hi, lo, zero))
    if tail:
        v = vfma(vload_at_n(addr, xoff + full, tail), a, b)
        vstore_n(y, yoff + full, _act_lanes(v, vact, lo, hi, lo, zero), tail)
    if act != vact:
        act_row(y[yoff:yoff + n], act, a0, a1)


announce_if_cold(bias_act, act_block, act_row)


def warm() -> None:
    y = np.zeros(8, np.float32)
    bias_act(y, 0, 4, 2, 4, np.zeros(2, np.float32), 0, 0, y, 0, 4, False, 1, 0.0, 0.0)
