"""numba loops of the 2-D convolution tactics (imported lazily; see ``conv/``).

Arrays are flat float32 buffers with explicit offsets, so one compiled signature serves every
shape. The depthwise kernel copies one input plane at a time into a zero-bordered scratch
plane (so no tap needs a bounds check), then computes each output row in 8-lane vectors of
``_nb_simd`` -- bias, taps and a Relu/Clip epilogue in registers, the row's tail written with
a masked store. Short rows are why: left to LLVM's loop vectorizer, a 7- or 14-wide row of
MobileNet's small maps ran mostly in the scalar remainder loop (3-5x slower). Stride 2 reads
every other column with a 16-wide load and a shuffle; other strides use the scalar loops.
Wide 3x3 stride-2 planes skip the copy (of an input 4x the output) and read the input in
place, the padding columns masked out of the border loads.
(The im2col gather is a numpy strided copy: ``conv/tactics.py``.)
"""

from __future__ import annotations

import numpy as np

from ._nb_epilogue import act_row
from ._nb_simd import (
    LANES,
    vfma,
    vload,
    vload_n,
    vload_r,
    vload_s2,
    vload_s2_r,
    vmax,
    vmin,
    vsplat,
    vstore,
    vstore_n,
)
from .jit import announce_if_cold, njit

__all__ = ["depthwise2d", "warm"]

#: Input width from which stride-2 planes are read in place instead of copied.
_DIRECT_MIN_WIDTH = 64


@njit
def _pad_plane(x, xbase, h, w, xp, dbase, wp):
    """Copy plane ``x[xbase:xbase + h*w]`` into ``xp`` at ``dbase``, rows ``wp`` apart."""
    tail = w % LANES
    for i in range(h):
        d = dbase + i * wp
        s = xbase + i * w
        for j in range(0, w - tail, LANES):
            vstore(xp, d + j, vload(x, s + j))
        if tail:
            vstore_n(xp, d + w - tail, vload_n(x, s + w - tail, tail), tail)


@njit
def _clamp(a, vact, lo, hi):
    """The epilogue's activation in registers: Relu (1) or Clip (7); else unchanged."""
    if vact == 7:
        return vmin(vmax(a, lo), hi)
    if vact == 1:
        return vmax(a, lo)
    return a


@njit
def _store(y, i, a, n):
    if n >= LANES:
        vstore(y, i, a)
    else:
        vstore_n(y, i, a, n)


@njit
def _plane_3x3(xp, wp, sh, sw, wt, kb, bv, y, yb, oh_, ow_, vact, lo, hi):
    """One output plane of a 3x3 undilated kernel, stride (sh, 1 or 2), from padded ``xp``."""
    k0 = vsplat(wt[kb])
    k1 = vsplat(wt[kb + 1])
    k2 = vsplat(wt[kb + 2])
    k3 = vsplat(wt[kb + 3])
    k4 = vsplat(wt[kb + 4])
    k5 = vsplat(wt[kb + 5])
    k6 = vsplat(wt[kb + 6])
    k7 = vsplat(wt[kb + 7])
    k8 = vsplat(wt[kb + 8])
    for oh in range(oh_):
        ob = yb + oh * ow_
        for o in range(0, ow_, LANES):
            r0 = oh * sh * wp + o * sw
            r1 = r0 + wp
            r2 = r1 + wp
            if sw == 1:
                a = vfma(k0, vload(xp, r0), bv)
                a = vfma(k1, vload(xp, r0 + 1), a)
                a = vfma(k2, vload(xp, r0 + 2), a)
                a = vfma(k3, vload(xp, r1), a)
                a = vfma(k4, vload(xp, r1 + 1), a)
                a = vfma(k5, vload(xp, r1 + 2), a)
                a = vfma(k6, vload(xp, r2), a)
                a = vfma(k7, vload(xp, r2 + 1), a)
                a = vfma(k8, vload(xp, r2 + 2), a)
            else:
                a = vfma(k0, vload_s2(xp, r0), bv)
                a = vfma(k1, vload_s2(xp, r0 + 1), a)
                a = vfma(k2, vload_s2(xp, r0 + 2), a)
                a = vfma(k3, vload_s2(xp, r1), a)
                a = vfma(k4, vload_s2(xp, r1 + 1), a)
                a = vfma(k5, vload_s2(xp, r1 + 2), a)
                a = vfma(k6, vload_s2(xp, r2), a)
                a = vfma(k7, vload_s2(xp, r2 + 1), a)
                a = vfma(k8, vload_s2(xp, r2 + 2), a)
            _store(y, ob + o, _clamp(a, vact, lo, hi), ow_ - o)


@njit
def _plane_any(xp, wp, wt, kb, bv, y, yb, oh_, ow_, kh_, kw_, sh, sw, dh, dw, vact, lo, hi):
    """One output plane of any kernel size and dilation, column stride 1 or 2."""
    for oh in range(oh_):
        ob = yb + oh * ow_
        for o in range(0, ow_, LANES):
            a = bv
            for kh in range(kh_):
                r = (oh * sh + kh * dh) * wp + o * sw
                for kw in range(kw_):
                    wv = vsplat(wt[kb + kh * kw_ + kw])
                    if sw == 1:
                        a = vfma(wv, vload(xp, r + kw * dw), a)
                    else:
                        a = vfma(wv, vload_s2(xp, r + kw * dw), a)
            _store(y, ob + o, _clamp(a, vact, lo, hi), ow_ - o)


@njit
def _tap_direct(x, row, c0, w, sw):
    """The 8 inputs of one tap for 8 outputs in a row of ``x`` starting at column ``c0``
    (stride ``sw`` 1 or 2), columns outside [0, w) as the zero padding, never read."""
    if sw == 1:
        if c0 >= 0 and c0 + LANES <= w:
            return vload(x, row + c0)
        return vload_r(x, row + c0, -c0, w - c0)
    if c0 >= 0 and c0 + 2 * LANES <= w:
        return vload_s2(x, row + c0)
    return vload_s2_r(x, row + c0, -c0, w - c0)


@njit
def _plane_direct(x, xb, h, w, ph, pw, wt, kb, bv, y, yb, oh_, ow_, sh, sw, vact, lo, hi):
    """One output plane of a 3x3 undilated kernel straight from the input plane at ``xb``
    (no padded copy): taps on padding rows are skipped, padding columns masked out of the
    loads. Used for wide stride-2 planes, where copying the 4x larger input cost more."""
    k0 = vsplat(wt[kb])
    k1 = vsplat(wt[kb + 1])
    k2 = vsplat(wt[kb + 2])
    k3 = vsplat(wt[kb + 3])
    k4 = vsplat(wt[kb + 4])
    k5 = vsplat(wt[kb + 5])
    k6 = vsplat(wt[kb + 6])
    k7 = vsplat(wt[kb + 7])
    k8 = vsplat(wt[kb + 8])
    for oh in range(oh_):
        ob = yb + oh * ow_
        r0 = oh * sh - ph
        for o in range(0, ow_, LANES):
            c0 = o * sw - pw
            a = bv
            if 0 <= r0 < h:
                row = xb + r0 * w
                a = vfma(k0, _tap_direct(x, row, c0, w, sw), a)
                a = vfma(k1, _tap_direct(x, row, c0 + 1, w, sw), a)
                a = vfma(k2, _tap_direct(x, row, c0 + 2, w, sw), a)
            if 0 <= r0 + 1 < h:
                row = xb + (r0 + 1) * w
                a = vfma(k3, _tap_direct(x, row, c0, w, sw), a)
                a = vfma(k4, _tap_direct(x, row, c0 + 1, w, sw), a)
                a = vfma(k5, _tap_direct(x, row, c0 + 2, w, sw), a)
            if 0 <= r0 + 2 < h:
                row = xb + (r0 + 2) * w
                a = vfma(k6, _tap_direct(x, row, c0, w, sw), a)
                a = vfma(k7, _tap_direct(x, row, c0 + 1, w, sw), a)
                a = vfma(k8, _tap_direct(x, row, c0 + 2, w, sw), a)
            _store(y, ob + o, _clamp(a, vact, lo, hi), ow_ - o)


@njit
def _plane_scalar(xp, wp, wt, kb, b, y, yb, oh_, ow_, kh_, kw_, sh, sw, dh, dw):
    """One output plane, any strides (the rare column strides above 2)."""
    for oh in range(oh_):
        out = y[yb + oh * ow_:yb + (oh + 1) * ow_]
        for o in range(ow_):
            out[o] = b
        for kh in range(kh_):
            r = (oh * sh + kh * dh) * wp
            for kw in range(kw_):
                wv = wt[kb + kh * kw_ + kw]
                src = xp[r + kw * dw:r + kw * dw + (ow_ - 1) * sw + 1]
                for o in range(ow_):
                    out[o] += wv * src[o * sw]


@njit
def depthwise2d(x, wt, bias, y, z, has_z, q0, q1, m_, mult, h, w, oh_, ow_, kh_, kw_, sh, sw,
                dh, dw, ph, pw, act, a0, a1):
    """Depthwise (grouped, one input channel per group) 2-D conv of output planes [q0, q1).

    Plane q = n * M + m reads input plane n * (M / mult) + m // mult; weights wt[m, kh, kw];
    the epilogue act(y + bias (+ z)) is applied per plane while it is in cache.
    """
    plane = oh_ * ow_
    has_bias = bias.size > 0
    # Zero-bordered copy of one input plane, big enough for every tap of every output, plus
    # slack for the lanes a row's last vector reads past it (their results are not stored).
    three = kh_ == 3 and kw_ == 3 and dh == 1 and dw == 1
    direct = three and sw == 2 and w >= _DIRECT_MIN_WIDTH
    hp = max(h + ph, (oh_ - 1) * sh + (kh_ - 1) * dh + 1)
    wp = max(w + pw, (ow_ - 1) * sw + (kw_ - 1) * dw + 1)
    xp = np.zeros(0 if direct else hp * wp + 4 * LANES, np.float32)
    # Relu and Clip are applied in registers unless a residual comes first.
    vact = act if (act == 1 or act == 7) and not has_z else 0
    lo = vsplat(np.float32(0.0) if act == 1 else np.float32(a0))
    hi = vsplat(np.float32(a1))
    for q in range(q0, q1):
        n = q // m_
        m = q - n * m_
        if not direct:
            _pad_plane(x, (n * (m_ // mult) + m // mult) * h * w, h, w, xp, ph * wp + pw, wp)
        kb = m * kh_ * kw_
        b = bias[m] if has_bias else np.float32(0.0)
        yb = q * plane
        if direct:
            _plane_direct(x, (n * (m_ // mult) + m // mult) * h * w, h, w, ph, pw, wt, kb,
                          vsplat(b), y, yb, oh_, ow_, sh, sw, vact, lo, hi)
        elif sw > 2:
            _plane_scalar(xp, wp, wt, kb, b, y, yb, oh_, ow_, kh_, kw_, sh, sw, dh, dw)
        elif three:
            _plane_3x3(xp, wp, sh, sw, wt, kb, vsplat(b), y, yb, oh_, ow_, vact, lo, hi)
        else:
            _plane_any(xp, wp, wt, kb, vsplat(b), y, yb, oh_, ow_, kh_, kw_, sh, sw, dh, dw,
                       vact, lo, hi)
        if has_z or act != vact or sw > 2:
            v = y[yb:yb + plane]
            if has_z:
                zz = z[yb:yb + plane]
                for j in range(plane):
                    v[j] = v[j] + zz[j]
            if act != 0:
                act_row(v, act, a0, a1)


announce_if_cold(depthwise2d)


def warm() -> None:
    x = np.zeros(16, np.float32)
    y = np.zeros(16, np.float32)
    depthwise2d(x, np.zeros(9, np.float32), np.zeros(1, np.float32), y, y, False, 0, 1, 1, 1,
                4, 4, 4, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0.0, 0.0)
