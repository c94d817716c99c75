"""Winograd F(2x2, 3x3) and F(4x4, 3x3) tile transforms (numba, imported lazily).

``wino{m}_in`` computes V = B^T d B and ``wino{m}_out`` O = A^T P A for every column of a
tap-major [(m+2)^2, n] array (one column per channel and tile), applying the 1-D transform to
rows and then to columns (separable: 2(m+2) small transforms instead of one (m+2)^2-square
matrix product). The loop over columns is straight-line code on unit-stride data, so LLVM
vectorizes it across tiles. The bodies are written out term by term (they were generated
from the B^T and A^T matrices of ``conv/winograd.py``, which the tests compare them with).
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
def wino2_in(d, v, q0, q1):
    """V[(x, y), q] = (B^T d B)[x, y] of F(2x2, 3x3) for columns q0 <= q < q1 of the
    tap-major [16, n] tiles ``d`` (one column per channel and tile)."""
    for q in range(q1 - q0):
        k = np.uint64(q0 + q)  # unsigned: no wraparound check, so LLVM vectorizes
        r0 = _bt2(d[0, k], d[1, k], d[2, k], d[3, k])
        r1 = _bt2(d[4, k], d[5, k], d[6, k], d[7, k])
        r2 = _bt2(d[8, k], d[9, k], d[10, k], d[11, k])
        r3 = _bt2(d[12, k], d[13, k], d[14, k], d[15, k])
        c = _bt2(r0[0], r1[0], r2[0], r3[0])
        v[0, k] = c[0]
        v[4, k] = c[1]
        v[8, k] = c[2]
        v[12, k] = c[3]
        c = _bt2(r0[1], r1[1], r2[1], r3[1])
        v[1, k] = c[0]
        v[5, k] = c[1]
        v[9, k] = c[2]
        v[13, k] = c[3]
        c = _bt2(r0[2], r1[2], r2[2], r3[2])
        v[2, k] = c[0]
        v[6, k] = c[1]
        v[10, k] = c[2]
        v[14, k] = c[3]
        c = _bt2(r0[3], r1[3], r2[3], r3[3])
        v[3, k] = c[0]
        v[7, k] = c[1]
        v[11, k] = c[2]
        v[15, k] = c[3]


@njit
def wino2_out(p, o, q0, q1):
    """O[(i, j), q] = (A^T P A)[i, j] of F(2x2, 3x3) for columns q0 <= q < q1 of the
    [16, n] products ``p``."""
    for q in range(q1 - q0):
        k = np.uint64(q0 + q)
        s0 = _at2(p[0, k], p[1, k], p[2, k], p[3, k])
        s1 = _at2(p[4, k], p[5, k], p[6, k], p[7, k])
        s2 = _at2(p[8, k], p[9, k], p[10, k], p[11, k])
        s3 = _at2(p[12, k], p[13, k], p[14, k], p[15, k])
        c = _at2(s0[0], s1[0], s2[0], s3[0])
        o[0, k] = c[0]
        o[2, k] = c[1]
        c = _at2(s0[1], s1[1], s2[1], s3[1])
        o[1, k] = c[0]
        o[3, k] = c[1]


@njit
def _bt4(x0, x1, x2, x3, x4, x5):
    return (_C4 * x0 - _C5 * x2 + x4, -_C4 * x1 - _C4 * x2 + x3 + x4, _C4 * x1 - _C4 * x2 - x3 + x4, -_C2 * x1 - x2 + _C2 * x3 + x4, _C2 * x1 - x2 - _C2 * x3 + x4, _C4 * x1 - _C5 * x3 + x5)


@njit
def _at4(x0, x1, x2, x3, x4, x5):
    return (x0 + x1 + x2 + x3 + x4, x1 - x2 + _C2 * x3 - _C2 * x4, x1 + x2 + _C4 * x3 + _C4 * x4, x1 - x2 + _C8 * x3 - _C8 * x4 + x5)


@njit
def wino4_in(d, v, q0, q1):
    """V[(x, y), q] = (B^T d B)[x, y] of F(4x4, 3x3) for columns q0 <= q < q1 of the
    tap-major [36, n] tiles ``d`` (one column per channel and tile)."""
    for q in range(q1 - q0):
        k = np.uint64(q0 + q)  # unsigned: no wraparound check, so LLVM vectorizes
        r0 = _bt4(d[0, k], d[1, k], d[2, k], d[3, k], d[4, k], d[5, k])
        r1 = _bt4(d[6, k], d[7, k], d[8, k], d[9, k], d[10, k], d[11, k])
        r2 = _bt4(d[12, k], d[13, k], d[14, k], d[15, k], d[16, k], d[17, k])
        r3 = _bt4(d[18, k], d[19, k], d[20, k], d[21, k], d[22, k], d[23, k])
        r4 = _bt4(d[24, k], d[25, k], d[26, k], d[27, k], d[28, k], d[29, k])
        r5 = _bt4(d[30, k], d[31, k], d[32, k], d[33, k], d[34, k], d[35, k])
        c = _bt4(r0[0], r1[0], r2[0], r3[0], r4[0], r5[0])
        v[0, k] = c[0]
        v[6, k] = c[1]
        v[12, k] = c[2]
        v[18, k] = c[3]
        v[24, k] = c[4]
        v[30, k] = c[5]
        c = _bt4(r0[1], r1[1], r2[1], r3[1], r4[1], r5[1])
        v[1, k] = c[0]
        v[7, k] = c[1]
        v[13, k] = c[2]
        v[19, k] = c[3]
        v[25, k] = c[4]
        v[31, k] = c[5]
        c = _bt4(r0[2], r1[2], r2[2], r3[2], r4[2], r5[2])
        v[2, k] = c[0]
        v[8, k] = c[1]
        v[14, k] = c[2]
        v[20, k] = c[3]
        v[26, k] = c[4]
        v[32, k] = c[5]
        c = _bt4(r0[3], r1[3], r2[3], r3[3], r4[3], r5[3])
        v[3, k] = c[0]
        v[9, k] = c[1]
        v[15, k] = c[2]
        v[21, k] = c[3]
        v[27, k] = c[4]
        v[33, k] = c[5]
        c = _bt4(r0[4], r1[4], r2[4], r3[4], r4[4], r5[4])
        v[4, k] = c[0]
        v[10, k] = c[1]
        v[16, k] = c[2]
        v[22, k] = c[3]
        v[28, k] = c[4]
        v[34, k] = c[5]
        c = _bt4(r0[5], r1[5], r2[5], r3[5], r4[5], r5[5])
        v[5, k] = c[0]
        v[11, k] = c[1]
        v[17, k] = c[2]
        v[23, k] = c[3]
        v[29, k] = c[4]
        v[35, k] = c[5]


@njit
def wino4_out(p, o, q0, q1):
    """O[(i, j), q] = (A^T P A)[i, j] of F(4x4, 3x3) for columns q0 <= q < q1 of the
    [36, n] products ``p``."""
    for q in range(q1 - q0):
        k = np.uint64(q0 + q)
        s0 = _at4(p[0, k], p[1, k], p[2, k], p[3, k], p[4, k], p[5, k])
        s1 = _at4(p[6, k], p[7, k], p[8, k], p[9, k], p[10, k], p[11, k])
        s2 = _at4(p[12, k], p[13, k], p[14, k], p[15, k], p[16, k], p[17, k])
        s3 = _at4(p[18, k], p[19, k], p[20, k], p[21, k], p[22, k], p[23, k])
        s4 = _at4(p[24, k], p[25, k], p[26, k], p[27, k], p[28, k], p[29, k])
        s5 = _at4(p[30, k], p[31, k], p[32, k], p[33, k], p[34, k], p[35, k])
        c = _at4(s0[0], s1[0], s2[0], s3[0], s4[0], s5[0])
        o[0, k] = c[0]
        o[4, k] = c[1]
        o[8, k] = c[2]
        o[12, k] = c[3]
        c = _at4(s0[1], s1[1], s2[1], s3[1], s4[1], s5[1])
        o[1, k] = c[0]
        o[5, k] = c[1]
        o[9, k] = c[2]
        o[13, k] = c[3]
        c = _at4(s0[2], s1[2], s2[2], s3[2], s4[2], s5[2])
        o[2, k] = c[0]
        o[6, k] = c[1]
        o[10, k] = c[2]
        o[14, k] = c[3]
        c = _at4(s0[3], s1[3], s2[3], s3[3], s4[3], s5[3])
        o[3, k] = c[0]
        o[7, k] = c[1]
        o[11, k] = c[2]
        o[15, k] = c[3]


announce_if_cold(wino4_in)


def warm() -> None:
    for m, fin, fout in ((2, wino2_in, wino2_out), (4, wino4_in, wino4_out)):
        a2 = (m + 2) ** 2
        d = np.zeros((a2, 4), np.float32)
        fin(d, d.copy(), 0, 4)
        fout(d, np.zeros((m * m, 4), np.float32), 0, 4)
