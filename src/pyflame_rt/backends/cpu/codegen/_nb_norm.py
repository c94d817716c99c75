"""Row-wise transformer kernels: LayerNorm, SkipLayerNorm, masked softmax, GELU (numba).

Each works on rows [r0, r1) of a flat float32 buffer with rows of ``n`` elements, so that
the drivers of ``_nb_par`` can split the rows; statistics are accumulated in float32 over
vectorized loops (two passes: mean, then the centred sum of squares, which is as accurate as
numpy's ``var``), transcendentals use the vectorizable approximations of ``_nb_vmath``.
"""

from __future__ import annotations

import math

import numpy as np

from ._nb_vmath import _bits_to_f32, exp32, gelu32, gelu_tanh32
from .jit import announce_if_cold, njit

__all__ = ["attention_probs", "bias_gelu", "layer_norm", "masked_softmax", "skip_layer_norm",
           "warm"]

_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)


@njit
def _normalize(v, out, gamma, beta, has_beta, eps):
    n = v.size
    acc = np.float32(0.0)
    for j in range(n):
        acc += v[j]
    mean = acc / np.float32(n)
    sq = np.float32(0.0)
    for j in range(n):
        d = v[j] - mean
        sq += d * d
    inv = np.float32(1.0) / np.sqrt(sq / np.float32(n) + np.float32(eps))
    if has_beta:
        for j in range(n):
            out[j] = (v[j] - mean) * inv * gamma[j] + beta[j]
    else:
        for j in range(n):
            out[j] = (v[j] - mean) * inv * gamma[j]


@njit
def layer_norm(x, y, gamma, beta, has_beta, eps, n, r0, r1):
    """y[r] = (x[r] - mean) / sqrt(var + eps) * gamma (+ beta) for rows [r0, r1)."""
    for r in range(r0, r1):
        _normalize(x[r * n:(r + 1) * n], y[r * n:(r + 1) * n], gamma, beta, has_beta, eps)


@njit
def skip_layer_norm(x, skip, bias, has_bias, gamma, beta, has_beta, eps, y, s, n, skip_rows,
                    r0, r1):
    """s = x + skip (+ bias); y = LayerNorm(s) over rows [r0, r1). ``skip`` has ``skip_rows``
    rows, repeated over the rows of x (a broadcast batch axis)."""
    for r in range(r0, r1):
        xr = x[r * n:(r + 1) * n]
        sk = skip[(r % skip_rows) * n:(r % skip_rows + 1) * n]
        sr = s[r * n:(r + 1) * n]
        if has_bias:
            for j in range(n):
                sr[j] = xr[j] + sk[j] + bias[j]
        else:
            for j in range(n):
                sr[j] = xr[j] + sk[j]
        _normalize(sr, y[r * n:(r + 1) * n], gamma, beta, has_beta, eps)


@njit
def row_max(v):
    """max(v) with eight independent running maxima (one would be a latency-bound chain:
    LLVM does not vectorize a float max reduction without fast-math NaN assumptions)."""
    n = v.size
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = v[0]
    j = 0
    while j + 8 <= n:
        x0, x1, x2, x3 = v[j], v[j + 1], v[j + 2], v[j + 3]
        x4, x5, x6, x7 = v[j + 4], v[j + 5], v[j + 6], v[j + 7]
        m0 = max(m0, x0)
        m1 = max(m1, x1)
        m2 = max(m2, x2)
        m3 = max(m3, x3)
        m4 = max(m4, x4)
        m5 = max(m5, x5)
        m6 = max(m6, x6)
        m7 = max(m7, x7)
        j += 8
    for i in range(j, n):
        x = v[i]
        m0 = max(m0, x)
    return max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))


@njit
def masked_softmax(s, n, r0, r1, scale, causal, causal_offset, fill, keep, has_keep, add,
                   has_add):
    """Rows [r0, r1) of scores s ([rows, n]): v = s * scale; v = fill where j > i + offset
    (causal) or where ``keep`` is False; v += add; softmax over the row, in place.

    ``keep`` (uint8) and ``add`` are [rows, n] arrays, possibly broadcast views. A row that
    is -inf everywhere gives NaN, as numpy's softmax does.
    """
    scale = np.float32(scale)
    fill = np.float32(fill)
    plain = not causal and not has_keep and not has_add and scale > 0
    for r in range(r0, r1):
        v = s[r * n:(r + 1) * n]
        if plain:
            # exp(scale * (v - max v)): the scaling folds into the exponent's argument.
            m = row_max(v)
            for j in range(n):
                v[j] = exp32((v[j] - m) * scale)
        else:
            for j in range(n):
                v[j] = v[j] * scale
            if causal:
                first = max(0, r + causal_offset + 1)
                for j in range(first, n):
                    v[j] = fill
            if has_keep:
                k = keep[r]
                for j in range(n):
                    v[j] = v[j] if k[j] else fill
            if has_add:
                a = add[r]
                for j in range(n):
                    v[j] = v[j] + a[j]
            m = row_max(v)
            for j in range(n):
                v[j] = exp32(v[j] - m)
        total = np.float32(0.0)
        for j in range(n):
            total += v[j]
        inv = np.float32(1.0) / total
        for j in range(n):
            v[j] = v[j] * inv


@njit
def _exp_le0(x):
    """e^x for x <= 0 (softmax arguments), float32 throughout: ``np.floor`` keeps the range
    reduction in float32 (``math.floor`` returns an int64 and drags the loop into float64:
    measured 2x slower). Arguments below -87 give ~1e-38 instead of 0; NaN propagates."""
    c = max(x, np.float32(-87.0))
    n = np.floor(c * _LOG2E + np.float32(0.5))
    r = c - n * _LN2_HI
    r = r - n * _LN2_LO
    p = np.float32(1.0 / 720.0)
    p = p * r + np.float32(1.0 / 120.0)
    p = p * r + np.float32(1.0 / 24.0)
    p = p * r + np.float32(1.0 / 6.0)
    p = p * r + np.float32(0.5)
    p = p * r + np.float32(1.0)
    p = p * r + np.float32(1.0)
    y = p * _bits_to_f32((np.int32(n) + np.int32(127)) << np.int32(23))
    return x if math.isnan(x) else y


@njit
def attention_probs(s, ld, r0, r1, ncols, scale, causal, fill, keep, has_keep, add, has_add,
                    inv):
    """Unnormalized softmax of the score rows of queries [r0, r1) (row i of ``s`` at
    ``i * ld``, ``ncols`` keys): v = s * scale; v = fill where key j > query r (causal) or
    where ``keep`` is 0; v += add; then e = exp(v - max v) in place, and inv[i] = 1 / sum e
    (the caller scales the product P V instead of P: ``dim`` values per row, not ``ncols``).

    ``keep`` (uint8) and ``add`` are C-contiguous [1 or S, ncols] (one row for every query,
    or one per query). Causal rows compute only their visible keys and zero the others.
    A row masked everywhere (all -inf) gives NaN, as numpy's softmax does.
    """
    scale = np.float32(scale)
    fill = np.float32(fill)
    plain = not has_keep and not has_add and scale > 0
    for i in range(r1 - r0):
        r = r0 + i
        hi = min(ncols, r + 1) if causal else ncols
        v = s[i * ld:i * ld + ncols]
        if hi <= 0:
            for j in range(ncols):
                v[j] = np.nan
            inv[i] = np.float32(1.0)
            continue
        w = v[:hi]
        if plain:
            # exp(scale * (v - max v)): the scaling folds into the exponent's argument.
            m = row_max(w)
            total = np.float32(0.0)
            for j in range(hi):
                e = _exp_le0((w[j] - m) * scale)
                w[j] = e
                total += e
        else:
            if has_add:
                a = add[r if add.shape[0] > 1 else 0]
                for j in range(hi):
                    w[j] = w[j] * scale + a[j]
            else:
                for j in range(hi):
                    w[j] = w[j] * scale
            if has_keep:
                k = keep[r if keep.shape[0] > 1 else 0]
                for j in range(hi):
                    w[j] = w[j] if k[j] != 0 else fill
            m = row_max(w)
            if m == -np.inf:
                m = np.float32(np.nan)  # every key masked: NaN like numpy (-inf - -inf)
            total = np.float32(0.0)
            for j in range(hi):
                e = _exp_le0(w[j] - m)
                w[j] = e
                total += e
        for j in range(hi, ncols):
            v[j] = np.float32(0.0)
        inv[i] = np.float32(1.0) / total


@njit
def bias_gelu(x, y, bias, has_bias, n, approx, r0, r1):
    """y = Gelu(x (+ bias over the last axis)) for rows [r0, r1) of ``n`` elements."""
    for r in range(r0, r1):
        xr = x[r * n:(r + 1) * n]
        yr = y[r * n:(r + 1) * n]
        if has_bias:
            if approx:
                for j in range(n):
                    yr[j] = gelu_tanh32(xr[j] + bias[j])
            else:
                for j in range(n):
                    yr[j] = gelu32(xr[j] + bias[j])
        elif approx:
            for j in range(n):
                yr[j] = gelu_tanh32(xr[j])
        else:
            for j in range(n):
                yr[j] = gelu32(xr[j])


announce_if_cold(layer_norm, skip_layer_norm, masked_softmax, attention_probs, bias_gelu)


def warm() -> None:
    x = np.zeros(8, np.float32)
    g = np.ones(4, np.float32)
    layer_norm(x, x.copy(), g, g, True, 1e-5, 4, 0, 2)
    skip_layer_norm(x, x, g, True, g, g, True, 1e-5, x.copy(), x.copy(), 4, 2, 0, 2)
    keep = np.ones((2, 4), np.uint8)
    masked_softmax(x.copy(), 4, 0, 2, 1.0, True, 0, -np.inf, keep, True,
                   np.zeros((2, 4), np.float32), True)
    bias_gelu(x, x.copy(), g, True, 4, False, 0, 2)
    inv = np.zeros(2, np.float32)
    attention_probs(x.copy(), 4, 0, 2, 4, 1.0, True, -np.inf, keep, True,
                    np.zeros((2, 4), np.float32), True, inv)
