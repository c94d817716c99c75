"""Winograd F(2x2, 3x3) and F(4x4, 3x3) for 3x3 stride-1 ungrouped convolutions.

Each m x m block of outputs ("tile") is computed from an (m+2) x (m+2) block of inputs with
(m+2)^2 multiplies per channel pair instead of 9 m^2 -- 2.25x fewer for F(2,3), 4x fewer for
F(4,3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016):

    Y_tile = A^T [ sum_c (G g_mc G^T) . (B^T d_c B) ] A

with ``.`` elementwise. The weight transform U = G g G^T is done once, at compile time, in
float64. At run time, for a block of tiles (whole tile rows, across the batch), the input
tiles are gathered from the zero-padded image and transformed by one numba kernel
(``codegen/_nb_wino.py``), multiplied by U in (m+2)^2 independent GEMMs of (M x C) @
(C x tiles), and transformed back straight into the output with the bias; the rest of the
epilogue runs on the output rows while they are in cache.

F(4,3)'s transforms have entries up to 8 (A^T) and 5 (B^T), so its float32 error is larger
(~1e-5 relative); the chooser only keeps it when it agrees with the reference.
"""

from __future__ import annotations

import numpy as np

from ..codegen import par
from ..codegen.scratch import scratch
from .geometry import ConvGeometry, split_range

__all__ = ["build_winograd", "transform_weights", "winograd_matrices"]


#: Fewest tiles in a block that a thread handles alone.
_MIN_BLOCK_TILES = 32

#: Multiply-adds per thread below which a block's phases run on one thread.
_MIN_PHASED_MACS = 1 << 20

#: Bytes of transformed tiles (input, its transform and the products) per block of tiles.
_BLOCK_BYTES = 2 << 20


def winograd_matrices(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B^T, G, A^T) of F(m x m, 3 x 3), float64, for m = 2 or 4."""
    if m == 2:
        bt = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
        g = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
        at = [[1, 1, 1, 0], [0, 1, -1, -1]]
    elif m == 4:
        bt = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
              [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
        g = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
             [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]
        at = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
              [0, 1, -1, 8, -8, 1]]
    else:
        raise ValueError(f"Winograd F({m}x{m}, 3x3) is not implemented; use m = 2 or 4")
    return np.array(bt, np.float64), np.array(g, np.float64), np.array(at, np.float64)


def transform_weights(w: np.ndarray, m: int) -> np.ndarray:
    """U[(i, j), M, C] = (G w[M, C] G^T)[i, j], float32 (computed in float64).

    Built row by row in the final layout: every row of U is a combination of nine rows
    w[:, :, k, l] over all (M, C), so the work is a few hundred vector operations however
    many filters there are (a batched 3x3 product per filter is ~10x slower).
    """
    _, g, _ = winograd_matrices(m)
    mo, c = w.shape[:2]
    a = m + 2
    taps = np.ascontiguousarray(w.reshape(mo * c, 9).T, dtype=np.float64)  # [(k, l), M*C]
    t = np.zeros((3, a, mo * c))  # t[k, j] = sum_l w[k, l] G[j, l]
    for k in range(3):
        for j in range(a):
            for col in range(3):
                if g[j, col]:
                    t[k, j] += g[j, col] * taps[3 * k + col]
    u = np.empty((a, a, mo * c), np.float32)
    row = np.empty(mo * c)
    for i in range(a):
        for j in range(a):
            row[:] = 0.0
            for k in range(3):
                if g[i, k]:
                    row += g[i, k] * t[k, j]
            u[i, j] = row
    return u.reshape(a * a, mo, c)


def _segments(r0: int, r1: int, th: int, tw: int) -> list[tuple[int, int, int, int]]:
    """Global tile rows [r0, r1) as (image, first row, end row, first tile column) pieces."""
    segs = []
    off = 0
    for b in range(r0 // th, -(-r1 // th)):
        a, e = max(r0, b * th) - b * th, min(r1, (b + 1) * th) - b * th
        segs.append((b, a, e, off))
        off += (e - a) * tw
    return segs


def _table(rows: list, width: int) -> np.ndarray:
    return np.array(rows, np.int64).reshape(-1, width)


def _lead(cols: int) -> int:
    """A row length >= ``cols`` whose byte size is an odd multiple of 64: the (m+2)^2 rows
    of a transform are read and written together, and rows 4 KiB apart share L1 sets."""
    ld = -(-cols // 16) * 16
    return ld if (ld // 16) % 2 else ld + 16


def build_winograd(geo: ConvGeometry, pack, epi, nthreads: int, m: int):
    """The ``run(x, bias, z)`` closure of Winograd F(m x m, 3 x 3) for ``geo``."""
    if not (geo.kh == geo.kw == 3 and geo.sh == geo.sw == 1 and geo.dh == geo.dw == 1
            and geo.g == 1):
        raise ValueError("Winograd needs a 3x3, stride-1, undilated, ungrouped convolution")
    key = f"winograd{m}"
    u = pack.extra.get(key)
    if u is None:
        u = pack.extra[key] = transform_weights(pack.w, m)
    a = m + 2
    a2 = a * a
    n, c, mo, oh, ow = geo.n, geo.c, geo.m, geo.oh, geo.ow
    th, tw = -(-oh // m), -(-ow // m)
    hp, wp = th * m + 2, tw * m + 2
    # Blocks of whole tile rows (across the batch: global row b * th + tr), sized so that
    # their transformed data stays in cache. With several threads, each thread takes whole
    # blocks of its own when every block still has >= _MIN_BLOCK_TILES tiles (no data moves
    # between cores); otherwise the phases of each block are split over the threads (the
    # GEMMs of a block of a few tiles are too thin to be worth splitting by tiles).
    per_row = 4 * a2 * (2 * c + mo) * tw
    rows = max(1, min(n * th, _BLOCK_BYTES // per_row))
    serial_rows = n * th // (2 * nthreads)
    serial_blocks = nthreads > 1 and serial_rows * tw >= _MIN_BLOCK_TILES
    if serial_blocks:
        rows = min(rows, serial_rows)
    blocks = [_segments(r0, min(n * th, r0 + rows), th, tw)
              for r0 in range(0, n * th, rows)]
    # Phases are split over the threads only when each has enough work for it.
    macs = a2 * mo * c * th * tw * n // len(blocks)
    inner = 1 if serial_blocks or macs < _MIN_PHASED_MACS * nthreads else nthreads
    cparts = _table(split_range(c, max(1, min(inner, c // 8)), 1), 2)
    eparts = _table(split_range(a2, inner, 1), 2)
    mparts = _table(split_range(mo, max(1, min(inner, mo // 8)), 8), 2)
    segs = _table([seg for block in blocks for seg in block], 4)
    table, first = [], 0
    for block in blocks:
        last = block[-1]
        table.append((first, first + len(block), last[3] + (last[2] - last[1]) * tw))
        first += len(block)
    block_table = _table(table, 3)
    phased = not serial_blocks
    epi_args = (epi.act, epi.a0, epi.a1)

    def pad(x: np.ndarray) -> np.ndarray:
        xp = scratch("wino_pad", n * c * hp * wp).reshape(n, c, hp, wp)
        pt, pl = geo.pt, geo.pl
        h, w = geo.h, geo.w
        xp[:, :, :pt] = 0
        xp[:, :, pt + h:] = 0
        xp[:, :, pt:pt + h, :pl] = 0
        xp[:, :, pt:pt + h, pl + w:] = 0
        # A pad larger than the tile grid needs is cropped (windows never read it).
        xp[:, :, pt:pt + h, pl:pl + w] = x[:, :, :hp - pt, :wp - pl]
        return xp

    t_max = max(row[2] for row in table)
    ld_in, ld_out = _lead(c * t_max), _lead(mo * t_max)
    dummy = np.zeros((1, 1), np.float32)

    def run(x: np.ndarray, bias: np.ndarray, z: np.ndarray | None) -> np.ndarray:
        fp, ilp64 = par.blas()
        y = np.empty((n, mo, oh, ow), np.float32)
        if phased:
            v = scratch("wino_v", a2 * ld_in).reshape(a2, ld_in)
            prod = scratch("wino_m", a2 * ld_out).reshape(a2, ld_out)
        else:
            v = prod = dummy
        par.run("winograd", fp, ilp64, m, pad(x), u, y, bias, y if z is None else z,
                z is not None, *epi_args, segs, block_table, phased, cparts, eparts, mparts, tw,
                v, prod)
        return y

    return run
