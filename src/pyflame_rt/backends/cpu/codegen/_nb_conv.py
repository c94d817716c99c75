"""numba loops of the 2-D convolution tactics (imported lazily; see ``conv/``).

Arrays are flat float32 buffers with explicit offsets, so one compiled signature serves every
shape. Inner loops run 0-based over 1-D views: an index LLVM cannot prove non-negative gets
numba's negative-index wraparound, which stops vectorization. The depthwise kernel copies one
plane at a time into a zero-bordered scratch plane, so its inner loops need no bounds checks.
(The im2col gather is a numpy strided copy: ``conv/tactics.py``.)
"""

from __future__ import annotations

import numpy as np

from ._nb_epilogue import act_row
from .jit import announce_if_cold, njit

__all__ = ["depthwise2d", "warm"]


@njit
def _pad_plane(x, xbase, h, w, ph, pw, wp, xp):
    """Copy plane ``x[xbase:xbase + h*w]`` into the interior of zero-bordered ``xp``."""
    for i in range(h):
        src = x[xbase + i * w:xbase + (i + 1) * w]
        dst = xp[(i + ph) * wp + pw:(i + ph) * wp + pw + w]
        for j in range(w):
            dst[j] = src[j]


@njit
def depthwise2d(x, wt, bias, y, z, has_z, q0, q1, m_, mult, h, w, oh_, ow_, kh_, kw_, sh, sw,
                dh, dw, ph, pw, act, a0, a1):
    """Depthwise (grouped, one input channel per group) 2-D conv of output planes [q0, q1).

    Plane q = n * M + m reads input plane n * (M / mult) + m // mult; weights wt[m, kh, kw];
    the epilogue act(y + bias (+ z)) is applied per plane while it is in cache.
    """
    plane = oh_ * ow_
    has_bias = bias.size > 0
    zero = np.float32(0.0)
    # Zero-bordered copy of one input plane, big enough for every tap of every output.
    hp = max(h + ph, (oh_ - 1) * sh + (kh_ - 1) * dh + 1)
    wp = max(w + pw, (ow_ - 1) * sw + (kw_ - 1) * dw + 1)
    xp = np.zeros(hp * wp, np.float32)
    three = kh_ == 3 and kw_ == 3 and dh == 1 and dw == 1 and sh == sw and sh <= 2
    # Narrow planes: compute over the flat padded grid (rows wp wide, the columns past ow_
    # are thrown away) so that vectors span several output rows.
    flat = ow_ < 16 and sh == sw and (three or sh == 1)
    acc = np.empty(oh_ * wp if flat else 0, np.float32)
    for q in range(q0, q1):
        n = q // m_
        m = q - n * m_
        _pad_plane(x, (n * (m_ // mult) + m // mult) * h * w, h, w, ph, pw, wp, xp)
        yb = q * plane
        k = wt[m * kh_ * kw_:(m + 1) * kh_ * kw_]
        b = bias[m] if has_bias else zero
        if flat:
            cnt = (oh_ - 1) * wp + ow_
            a = acc[:cnt]
            if three and sh == 1:
                r0 = xp[0:cnt + 2]
                r1 = xp[wp:wp + cnt + 2]
                r2 = xp[2 * wp:2 * wp + cnt + 2]
                for f in range(cnt):
                    a[f] = (b + k[0] * r0[f] + k[1] * r0[f + 1] + k[2] * r0[f + 2]
                            + k[3] * r1[f] + k[4] * r1[f + 1] + k[5] * r1[f + 2]
                            + k[6] * r2[f] + k[7] * r2[f + 1] + k[8] * r2[f + 2])
            elif three:
                r0 = xp[0:2 * cnt + 1]
                r1 = xp[wp:wp + 2 * cnt + 1]
                r2 = xp[2 * wp:2 * wp + 2 * cnt + 1]
                for f in range(cnt):
                    i = 2 * f
                    a[f] = (b + k[0] * r0[i] + k[1] * r0[i + 1] + k[2] * r0[i + 2]
                            + k[3] * r1[i] + k[4] * r1[i + 1] + k[5] * r1[i + 2]
                            + k[6] * r2[i] + k[7] * r2[i + 1] + k[8] * r2[i + 2])
            else:
                for f in range(cnt):
                    a[f] = b
                for kh in range(kh_):
                    for kw in range(kw_):
                        wv = k[kh * kw_ + kw]
                        off = kh * dh * wp + kw * dw
                        src = xp[off:off + (cnt - 1) * sh + 1]
                        if sh == 1:
                            for f in range(cnt):
                                a[f] += wv * src[f]
                        else:
                            for f in range(cnt):
                                a[f] += wv * src[f * sh]
            for oh in range(oh_):
                out = y[yb + oh * ow_:yb + (oh + 1) * ow_]
                row = acc[oh * wp:oh * wp + ow_]
                for o in range(ow_):
                    out[o] = row[o]
        elif three and sh == 1:
            for oh in range(oh_):
                out = y[yb + oh * ow_:yb + (oh + 1) * ow_]
                r0 = xp[oh * wp:oh * wp + ow_ + 2]
                r1 = xp[(oh + 1) * wp:(oh + 1) * wp + ow_ + 2]
                r2 = xp[(oh + 2) * wp:(oh + 2) * wp + ow_ + 2]
                for o in range(ow_):
                    out[o] = (b + k[0] * r0[o] + k[1] * r0[o + 1] + k[2] * r0[o + 2]
                              + k[3] * r1[o] + k[4] * r1[o + 1] + k[5] * r1[o + 2]
                              + k[6] * r2[o] + k[7] * r2[o + 1] + k[8] * r2[o + 2])
        elif three:
            for oh in range(oh_):
                out = y[yb + oh * ow_:yb + (oh + 1) * ow_]
                r0 = xp[2 * oh * wp:2 * oh * wp + 2 * ow_ + 1]
                r1 = xp[(2 * oh + 1) * wp:(2 * oh + 1) * wp + 2 * ow_ + 1]
                r2 = xp[(2 * oh + 2) * wp:(2 * oh + 2) * wp + 2 * ow_ + 1]
                for o in range(ow_):
                    i = 2 * o
                    out[o] = (b + k[0] * r0[i] + k[1] * r0[i + 1] + k[2] * r0[i + 2]
                              + k[3] * r1[i] + k[4] * r1[i + 1] + k[5] * r1[i + 2]
                              + k[6] * r2[i] + k[7] * r2[i + 1] + k[8] * r2[i + 2])
        else:
            for oh in range(oh_):
                out = y[yb + oh * ow_:yb + (oh + 1) * ow_]
                for o in range(ow_):
                    out[o] = b
                for kh in range(kh_):
                    r = (oh * sh + kh * dh) * wp
                    for kw in range(kw_):
                        wv = k[kh * kw_ + kw]
                        src = xp[r + kw * dw:r + kw * dw + (ow_ - 1) * sw + 1]
                        if sw == 1:
                            for o in range(ow_):
                                out[o] += wv * src[o]
                        else:
                            for o in range(ow_):
                                out[o] += wv * src[o * sw]
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
