"""Winograd F(2x2, 3x3) and F(4x4, 3x3) tile transforms (numba, imported lazily).

``wino{m}_in`` gathers each (m+2)x(m+2) input tile straight from the padded image and
writes V = B^T d B into a tap-major [(m+2)^2, n] array (one column per channel and tile);
``wino{m}_out`` computes A^T P A of each column of the products and writes the m x m outputs
(plus the bias) into the image, cropping at its edge. The 1-D transform is applied to rows and
then to columns (separable: 2(m+2) small transforms instead of an (m+2)^2-square matrix
product); the loop over tiles is straight-line code, so LLVM vectorizes it (strided loads and
stores across tiles). The bodies are written out term by term (they were generated from the
B^T and A^T matrices of ``conv/winograd.py``, which the tests compare them with).
"""

from __future__ import annotations

import numpy as np

from .jit import announce_if_cold, njit

__all__ = ["warm", "wino2_in", "wino2_out", "wino4_in", "wino4_out"]

# float32 constants: a Python float would promote the arithmetic to float64.
_C2 = np.float32(2.0)
_C4 = np.float32(4.0)
_C5 = np.float32(5.0)
_C8 = np.float32(8.0)


@njit
def _bt2(x0, x1, x2, x3):
    return (x0 - x2, x1 + x2, -x1 + x2, x1 - x3)


@njit
def _at2(x0, x1, x2, x3):
    return (x0 + x1 + x2, x1 - x2 - x3)


@njit
def wino2_in(xp, v, c0, c1, ra, rb, tw, t, off):
    """V[(x, y), c * t + off + (tr - ra) * tw + tc] = (B^T d B)[x, y] of F(2x2, 3x3) for
    the tile d = xp[c, tr * 2:tr * 2 + 4, tc * 2:tc * 2 + 4] of every channel c in
    [c0, c1) and tile row tr in [ra, rb) of the padded image ``xp`` [C, Hp, Wp]."""
    for c in range(c0, c1):
        for tr in range(ra, rb):
            row = tr * 2
            q0 = c * t + off + (tr - ra) * tw
            src = xp[c, row:row + 4]
            for tc in range(tw):
                # Unsigned indexes: no wraparound check, so LLVM vectorizes over tiles.
                k = np.uint64(q0 + tc)
                j = np.uint64(2 * tc)
                r0 = _bt2(src[0, j], src[0, j + np.uint64(1)], src[0, j + np.uint64(2)], src[0, j + np.uint64(3)])
                r1 = _bt2(src[1, j], src[1, j + np.uint64(1)], src[1, j + np.uint64(2)], src[1, j + np.uint64(3)])
                r2 = _bt2(src[2, j], src[2, j + np.uint64(1)], src[2, j + np.uint64(2)], src[2, j + np.uint64(3)])
                r3 = _bt2(src[3, j], src[3, j + np.uint64(1)], src[3, j + np.uint64(2)], src[3, j + np.uint64(3)])
                cc = _bt2(r0[0], r1[0], r2[0], r3[0])
                v[0, k] = cc[0]
                v[4, k] = cc[1]
                v[8, k] = cc[2]
                v[12, k] = cc[3]
                cc = _bt2(r0[1], r1[1], r2[1], r3[1])
                v[1, k] = cc[0]
                v[5, k] = cc[1]
                v[9, k] = cc[2]
                v[13, k] = cc[3]
                cc = _bt2(r0[2], r1[2], r2[2], r3[2])
                v[2, k] = cc[0]
                v[6, k] = cc[1]
                v[10, k] = cc[2]
                v[14, k] = cc[3]
                cc = _bt2(r0[3], r1[3], r2[3], r3[3])
                v[3, k] = cc[0]
                v[7, k] = cc[1]
                v[11, k] = cc[2]
                v[15, k] = cc[3]


@njit
def wino2_out(p, pcol, y, ch0, ch1, ra, rb, tw, t, off, oh, ow, bias):
    """y[ch, tr * 2 + i, tc * 2 + j] = (A^T P A)[i, j] + bias[ch] of F(2x2, 3x3) for the
    products P = p[:, pcol + (ch - ch0) * t + off + (tr - ra) * tw + tc] of channels
    [ch0, ch1) and
    tile rows [ra, rb); outputs past (oh, ow) are dropped. ``y`` is [C, oh, ow]."""
    has_bias = bias.size > 0
    full_cols = ow // 2
    for ch in range(ch0, ch1):
        b = bias[ch] if has_bias else np.float32(0.0)
        for tr in range(ra, rb):
            q0 = pcol + (ch - ch0) * t + off + (tr - ra) * tw
            row = tr * 2
            if row + 2 <= oh:
                dst = y[ch, row:row + 2]
                for tc in range(full_cols):
                    k = np.uint64(q0 + tc)
                    j = np.uint64(2 * tc)
                    s0 = _at2(p[0, k], p[1, k], p[2, k], p[3, k])
                    s1 = _at2(p[4, k], p[5, k], p[6, k], p[7, k])
                    s2 = _at2(p[8, k], p[9, k], p[10, k], p[11, k])
                    s3 = _at2(p[12, k], p[13, k], p[14, k], p[15, k])
                    cc = _at2(s0[0], s1[0], s2[0], s3[0])
                    dst[0, j] = cc[0] + b
                    dst[1, j] = cc[1] + b
                    cc = _at2(s0[1], s1[1], s2[1], s3[1])
                    dst[0, j + np.uint64(1)] = cc[0] + b
                    dst[1, j + np.uint64(1)] = cc[1] + b
                first = full_cols
            else:
                first = 0
            for tc in range(first, tw):
                k = q0 + tc
                s0 = _at2(p[0, k], p[1, k], p[2, k], p[3, k])
                s1 = _at2(p[4, k], p[5, k], p[6, k], p[7, k])
                s2 = _at2(p[8, k], p[9, k], p[10, k], p[11, k])
                s3 = _at2(p[12, k], p[13, k], p[14, k], p[15, k])
                vals = (
                    _at2(s0[0], s1[0], s2[0], s3[0]),
                    _at2(s0[1], s1[1], s2[1], s3[1]),
                )
                for i in range(2):
                    if row + i >= oh:
                        break
                    for jj in range(2):
                        if tc * 2 + jj < ow:
                            y[ch, row + i, tc * 2 + jj] = vals[jj][i] + b


@njit
def _bt4(x0, x1, x2, x3, x4, x5):
    return (_C4 * x0 - _C5 * x2 + x4, -_C4 * x1 - _C4 * x2 + x3 + x4, _C4 * x1 - _C4 * x2 - x3 + x4, -_C2 * x1 - x2 + _C2 * x3 + x4, _C2 * x1 - x2 - _C2 * x3 + x4, _C4 * x1 - _C5 * x3 + x5)


@njit
def _at4(x0, x1, x2, x3, x4, x5):
    return (x0 + x1 + x2 + x3 + x4, x1 - x2 + _C2 * x3 - _C2 * x4, x1 + x2 + _C4 * x3 + _C4 * x4, x1 - x2 + _C8 * x3 - _C8 * x4 + x5)


@njit
def wino4_in(xp, v, c0, c1, ra, rb, tw, t, off):
    """V[(x, y), c * t + off + (tr - ra) * tw + tc] = (B^T d B)[x, y] of F(4x4, 3x3) for
    the tile d = xp[c, tr * 4:tr * 4 + 6, tc * 4:tc * 4 + 6] of every channel c in
    [c0, c1) and tile row tr in [ra, rb) of the padded image ``xp`` [C, Hp, Wp]."""
    for c in range(c0, c1):
        for tr in range(ra, rb):
            row = tr * 4
            q0 = c * t + off + (tr - ra) * tw
            src = xp[c, row:row + 6]
            for tc in range(tw):
                # Unsigned indexes: no wraparound check, so LLVM vectorizes over tiles.
                k = np.uint64(q0 + tc)
                j = np.uint64(4 * tc)
                r0 = _bt4(src[0, j], src[0, j + np.uint64(1)], src[0, j + np.uint64(2)], src[0, j + np.uint64(3)], src[0, j + np.uint64(4)], src[0, j + np.uint64(5)])
                r1 = _bt4(src[1, j], src[1, j + np.uint64(1)], src[1, j + np.uint64(2)], src[1, j + np.uint64(3)], src[1, j + np.uint64(4)], src[1, j + np.uint64(5)])
                r2 = _bt4(src[2, j], src[2, j + np.uint64(1)], src[2, j + np.uint64(2)], src[2, j + np.uint64(3)], src[2, j + np.uint64(4)], src[2, j + np.uint64(5)])
                r3 = _bt4(src[3, j], src[3, j + np.uint64(1)], src[3, j + np.uint64(2)], src[3, j + np.uint64(3)], src[3, j + np.uint64(4)], src[3, j + np.uint64(5)])
                r4 = _bt4(src[4, j], src[4, j + np.uint64(1)], src[4, j + np.uint64(2)], src[4, j + np.uint64(3)], src[4, j + np.uint64(4)], src[4, j + np.uint64(5)])
                r5 = _bt4(src[5, j], src[5, j + np.uint64(1)], src[5, j + np.uint64(2)], src[5, j + np.uint64(3)], src[5, j + np.uint64(4)], src[5, j + np.uint64(5)])
                cc = _bt4(r0[0], r1[0], r2[0], r3[0], r4[0], r5[0])
                v[0, k] = cc[0]
                v[6, k] = cc[1]
                v[12, k] = cc[2]
                v[18, k] = cc[3]
                v[24, k] = cc[4]
                v[30, k] = cc[5]
                cc = _bt4(r0[1], r1[1], r2[1], r3[1], r4[1], r5[1])
                v[1, k] = cc[0]
                v[7, k] = cc[1]
                v[13, k] = cc[2]
                v[19, k] = cc[3]
                v[25, k] = cc[4]
                v[31, k] = cc[5]
                cc = _bt4(r0[2], r1[2], r2[2], r3[2], r4[2], r5[2])
                v[2, k] = cc[0]
                v[8, k] = cc[1]
                v[14, k] = cc[2]
                v[20, k] = cc[3]
                v[26, k] = cc[4]
                v[32, k] = cc[5]
                cc = _bt4(r0[3], r1[3], r2[3], r3[3], r4[3], r5[3])
                v[3, k] = cc[0]
                v[9, k] = cc[1]
                v[15, k] = cc[2]
                v[21, k] = cc[3]
                v[27, k] = cc[4]
                v[33, k] = cc[5]
                cc = _bt4(r0[4], r1[4], r2[4], r3[4], r4[4], r5[4])
                v[4, k] = cc[0]
                v[10, k] = cc[1]
                v[16, k] = cc[2]
                v[22, k] = cc[3]
                v[28, k] = cc[4]
                v[34, k] = cc[5]
                cc = _bt4(r0[5], r1[5], r2[5], r3[5], r4[5], r5[5])
                v[5, k] = cc[0]
                v[11, k] = cc[1]
                v[17, k] = cc[2]
                v[23, k] = cc[3]
                v[29, k] = cc[4]
                v[35, k] = cc[5]


@njit
def wino4_out(p, pcol, y, ch0, ch1, ra, rb, tw, t, off, oh, ow, bias):
    """y[ch, tr * 4 + i, tc * 4 + j] = (A^T P A)[i, j] + bias[ch] of F(4x4, 3x3) for the
    products P = p[:, pcol + (ch - ch0) * t + off + (tr - ra) * tw + tc] of channels
    [ch0, ch1) and
    tile rows [ra, rb); outputs past (oh, ow) are dropped. ``y`` is [C, oh, ow]."""
    has_bias = bias.size > 0
    full_cols = ow // 4
    for ch in range(ch0, ch1):
        b = bias[ch] if has_bias else np.float32(0.0)
        for tr in range(ra, rb):
            q0 = pcol + (ch - ch0) * t + off + (tr - ra) * tw
            row = tr * 4
            if row + 4 <= oh:
                dst = y[ch, row:row + 4]
                for tc in range(full_cols):
                    k = np.uint64(q0 + tc)
                    j = np.uint64(4 * tc)
                    s0 = _at4(p[0, k], p[1, k], p[2, k], p[3, k], p[4, k], p[5, k])
                    s1 = _at4(p[6, k], p[7, k], p[8, k], p[9, k], p[10, k], p[11, k])
                    s2 = _at4(p[12, k], p[13, k], p[14, k], p[15, k], p[16, k], p[17, k])
                    s3 = _at4(p[18, k], p[19, k], p[20, k], p[21, k], p[22, k], p[23, k])
                    s4 = _at4(p[24, k], p[25, k], p[26, k], p[27, k], p[28, k], p[29, k])
                    s5 = _at4(p[30, k], p[31, k], p[32, k], p[33, k], p[34, k], p[35, k])
                    cc = _at4(s0[0], s1[0], s2[0], s3[0], s4[0], s5[0])
                    dst[0, j] = cc[0] + b
                    dst[1, j] = cc[1] + b
                    dst[2, j] = cc[2] + b
                    dst[3, j] = cc[3] + b
                    cc = _at4(s0[1], s1[1], s2[1], s3[1], s4[1], s5[1])
                    dst[0, j + np.uint64(1)] = cc[0] + b
                    dst[1, j + np.uint64(1)] = cc[1] + b
                    dst[2, j + np.uint64(1)] = cc[2] + b
                    dst[3, j + np.uint64(1)] = cc[3] + b
                    cc = _at4(s0[2], s1[2], s2[2], s3[2], s4[2], s5[2])
                    dst[0, j + np.uint64(2)] = cc[0] + b
                    dst[1, j + np.uint64(2)] = cc[1] + b
                    dst[2, j + np.uint64(2)] = cc[2] + b
                    dst[3, j + np.uint64(2)] = cc[3] + b
                    cc = _at4(s0[3], s1[3], s2[3], s3[3], s4[3], s5[3])
                    dst[0, j + np.uint64(3)] = cc[0] + b
                    dst[1, j + np.uint64(3)] = cc[1] + b
                    dst[2, j + np.uint64(3)] = cc[2] + b
                    dst[3, j + np.uint64(3)] = cc[3] + b
                first = full_cols
            else:
                first = 0
            for tc in range(first, tw):
                k = q0 + tc
                s0 = _at4(p[0, k], p[1, k], p[2, k], p[3, k], p[4, k], p[5, k])
                s1 = _at4(p[6, k], p[7, k], p[8, k], p[9, k], p[10, k], p[11, k])
                s2 = _at4(p[12, k], p[13, k], p[14, k], p[15, k], p[16, k], p[17, k])
                s3 = _at4(p[18, k], p[19, k], p[20, k], p[21, k], p[22, k], p[23, k])
                s4 = _at4(p[24, k], p[25, k], p[26, k], p[27, k], p[28, k], p[29, k])
                s5 = _at4(p[30, k], p[31, k], p[32, k], p[33, k], p[34, k], p[35, k])
                vals = (
                    _at4(s0[0], s1[0], s2[0], s3[0], s4[0], s5[0]),
                    _at4(s0[1], s1[1], s2[1], s3[1], s4[1], s5[1]),
                    _at4(s0[2], s1[2], s2[2], s3[2], s4[2], s5[2]),
                    _at4(s0[3], s1[3], s2[3], s3[3], s4[3], s5[3]),
                )
                for i in range(4):
                    if row + i >= oh:
                        break
                    for jj in range(4):
                        if tc * 4 + jj < ow:
                            y[ch, row + i, tc * 4 + jj] = vals[jj][i] + b


announce_if_cold(wino2_in, wino2_out, wino4_in, wino4_out)


def warm() -> None:
    for m, fin, fout in ((2, wino2_in, wino2_out), (4, wino4_in, wino4_out)):
        a2 = (m + 2) ** 2
        xp = np.zeros((1, m + 2, m + 2), np.float32)
        v = np.zeros((a2, 1), np.float32)
        fin(xp, v, 0, 1, 0, 1, 1, 1, 0)
        fout(v, 0, np.zeros((1, m, m), np.float32), 0, 1, 0, 1, 1, 1, 0, m, m,
             np.zeros(0, np.float32))
