"""Convolution tactics: interchangeable algorithms for one 2-D float32 convolution.

Each tactic turns (geometry, packed weights, epilogue) into a ``run(x, bias, z) -> y``
closure; the chooser (:mod:`.chooser`) times the applicable ones on the real shapes. All of
them apply the epilogue ``act(y + bias (+ z))`` on output tiles that are still in cache. The
work is cut into jobs (int64 tables built once per shape) that a numba kernel of
``codegen/_nb_par.py`` runs on the session's threads, each job entirely in nopython code
(gather, cblas ``sgemm``, epilogue):

* ``gemm``: 1x1 stride-1 unpadded convolutions are ``W[g] @ X[n, g]``; jobs are column
  (pixel) blocks, or row (channel) blocks when the image is small.
* ``im2col``: per job, the patches of a block of output rows are gathered from the
  zero-padded input into a job-local buffer sized for the L2 cache, multiplied by the
  group's weights straight into the output (BLAS writes a strided block), then the epilogue.
  ``tile`` sets the block size (in output pixels).
* ``im2col_full``: for small images: one job per (image, group, block of output channels)
  gathers the whole patch matrix (cheap next to the GEMM it feeds).
* ``depthwise``: one input channel per group (MobileNet): a direct loop per output plane.
* ``winograd``: F(2x2, 3x3) and F(4x4, 3x3) for 3x3 stride-1 convolutions (:mod:`.winograd`).
* ``nchwc``: blocked direct convolution with generated AVX-512/AVX2 kernels (:mod:`.nchwc`);
  ``tile`` is its input-channel chunk (0: all).
* ``reference``: ``nn.py``'s numpy im2col convolution, then a numpy epilogue; always
  applicable, and the accuracy reference of the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..codegen import par
from ..codegen.scratch import scratch
from .geometry import ConvGeometry, split_range

__all__ = ["TACTICS", "Epilogue", "PackedWeights", "Tactic", "applicable_tactics"]

#: Bytes of im2col patches per job: about half of a 2 MiB L2 (the GEMM streams through it).
_TILE_BYTES = 1 << 20
#: Columns per job below which BLAS efficiency drops.
_MIN_TILE = 64
#: Work per job (multiply-adds) below which splitting costs more than it gains.
_MIN_JOB_MACS = 1 << 21
#: Multiply-adds per ``depthwise`` job at least.
_MIN_DW_JOB_MACS = 1 << 17
#: Bytes of output per ``gemm`` job, so its epilogue runs on a block still in the L2 cache;
#: and the fewest columns such a block may have (narrower GEMMs lose BLAS efficiency).
_OUT_TILE_BYTES = 1 << 18
_MIN_OUT_TILE = 256

_EMPTY = np.zeros(0, np.float32)

Run = Callable[[np.ndarray, np.ndarray, "np.ndarray | None"], np.ndarray]


@dataclass(frozen=True)
class Epilogue:
    """act(y + bias (+ z)): an activation code of ``_nb_epilogue.ACT_CODES`` and its params."""

    act: int = 0
    a0: float = 0.0
    a1: float = 0.0


@dataclass
class PackedWeights:
    """Weights prepared once, at plan compile time, in the forms the tactics read."""

    w: np.ndarray  # [M, C/g, kh, kw] float32, C-contiguous
    g: int
    extra: dict[str, Any] = field(default_factory=dict)  # per-tactic transforms, made lazily

    @property
    def wg(self) -> np.ndarray:
        m = self.w.shape[0]
        return self.w.reshape(self.g, m // self.g, -1)

    @property
    def flat(self) -> np.ndarray:
        return self.w.reshape(-1)


@dataclass(frozen=True)
class Tactic:
    """A named algorithm and its parameters (``tile`` for im2col)."""

    name: str
    tile: int = 0

    @property
    def label(self) -> str:
        return f"{self.name}:{self.tile}" if self.tile else self.name

    @staticmethod
    def parse(label: str) -> Tactic:
        name, _, tile = label.partition(":")
        return Tactic(name, int(tile) if tile else 0)


def _jobs(count: int, threads_: int, work: int) -> int:
    """How many jobs to cut ``work`` multiply-adds into (a few per thread when worth it)."""
    if threads_ <= 1:
        return 1
    return max(1, min(count, 4 * threads_, work // _MIN_JOB_MACS))


def _parts_per_image(geo: ConvGeometry, nthreads: int) -> int:
    """Jobs per (image, group) so that the whole call has a few jobs per thread."""
    images = geo.n * geo.g
    want = _jobs(10 ** 9, nthreads, geo.flops // 2)
    return max(1, -(-want // images))


# -- gemm -----------------------------------------------------------------------------------


def _build_gemm(geo: ConvGeometry, pack: PackedWeights, epi: Epilogue, nthreads: int) -> Run:
    n, g, mg, p, m = geo.n, geo.g, geo.mg, geo.p, geo.m
    parts = _parts_per_image(geo, nthreads)
    # Column blocks small enough that the epilogue finds its block of Y still in the L2
    # (one pass over a 5 MB output, MobileNet's first 1x1, cost a third of the GEMM).
    cols = max(parts, -(-mg * p * 4 // _OUT_TILE_BYTES)) if epi.act or nthreads > 1 else parts
    rows: list[tuple[int, int, int, int, int, int]] = []  # n, g, m0, m1, p0, p1
    for b in range(n):
        for gi in range(g):
            if parts > 1 and p < _MIN_TILE * parts and mg >= 8 * parts:
                for m0, m1 in split_range(mg, parts, 8):
                    rows.append((b, gi, m0, m1, 0, p))
            else:
                for p0, p1 in split_range(p, cols, 16, _MIN_OUT_TILE if cols > parts
                                          else _MIN_TILE):
                    rows.append((b, gi, 0, mg, p0, p1))
    jobs = np.array(rows, np.int64).reshape(-1, 6)
    w = pack.flat
    args = (epi.act, epi.a0, epi.a1, geo.c, m, p, g)

    def run(x: np.ndarray, bias: np.ndarray, z: np.ndarray | None) -> np.ndarray:
        fp, ilp64 = par.blas()
        y = np.empty((n, m, geo.oh, geo.ow), np.float32)
        yf = y.reshape(-1)
        par.run("conv_gemm", fp, ilp64, jobs, w, x.reshape(-1), yf, bias,
                yf if z is None else z.reshape(-1), z is not None, *args)
        return y

    return run


# -- im2col ---------------------------------------------------------------------------------


def default_tile(geo: ConvGeometry) -> int:
    """Output pixels per im2col job so that the job's patches fill about half the L2."""
    t = _TILE_BYTES // (4 * geo.k)
    t = max(_MIN_TILE, t // 16 * 16)
    return min(t, geo.p)


def _pad_dims(geo: ConvGeometry) -> tuple[int, int]:
    hp = max(geo.h + geo.pt, (geo.oh - 1) * geo.sh + (geo.kh - 1) * geo.dh + 1)
    wp = max(geo.w + geo.pl, (geo.ow - 1) * geo.sw + (geo.kw - 1) * geo.dw + 1)
    return hp, wp


def _padded(x: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """``x`` with the zero padding every window needs (``x`` itself when it needs none)."""
    hp, wp = _pad_dims(geo)
    if not geo.pt and not geo.pl and hp == geo.h and wp == geo.w:
        return x
    n, c, h, w, pt, pl = geo.n, geo.c, geo.h, geo.w, geo.pt, geo.pl
    xp = scratch("conv_pad", n * c * hp * wp).reshape(n, c, hp, wp)
    # Zero only the border, then copy the image in (the buffer is reused across calls).
    xp[:, :, :pt] = 0
    xp[:, :, pt + h:] = 0
    xp[:, :, pt:pt + h, :pl] = 0
    xp[:, :, pt:pt + h, pl + w:] = 0
    xp[:, :, pt:pt + h, pl:pl + w] = x[:, :, :hp - pt, :wp - pl]
    return xp


def _im2col_runner(geo: ConvGeometry, pack: PackedWeights, epi: Epilogue,
                   rows: list[tuple[int, int, int, int, int, int]]) -> Run:
    jobs = np.array(rows, np.int64).reshape(-1, 6)  # n, g, q0, q1, m0, m1
    hp, wp = _pad_dims(geo)
    w = pack.flat
    n, m = geo.n, geo.m
    args = (epi.act, epi.a0, epi.a1, geo.c, m, geo.g, hp, wp, geo.kh, geo.kw, geo.sh, geo.sw,
            geo.dh, geo.dw, geo.oh, geo.ow)

    def run(x: np.ndarray, bias: np.ndarray, z: np.ndarray | None) -> np.ndarray:
        fp, ilp64 = par.blas()
        xp = _padded(x, geo)
        y = np.empty((n, m, geo.oh, geo.ow), np.float32)
        yf = y.reshape(-1)
        par.run("conv_im2col", fp, ilp64, jobs, w, xp.reshape(-1), yf, bias,
                yf if z is None else z.reshape(-1), z is not None, *args)
        return y

    return run


def _build_im2col(geo: ConvGeometry, pack: PackedWeights, epi: Epilogue, nthreads: int,
                  tile: int) -> Run:
    oh, ow = geo.oh, geo.ow
    tile = min(tile or default_tile(geo), geo.p)
    parts = _parts_per_image(geo, nthreads)
    if parts > 1:
        # Enough jobs to keep every thread busy.
        tile = min(tile, max(_MIN_TILE, -(-geo.p // parts)))
    step = max(1, min(oh, round(tile / ow)))  # jobs are whole output rows
    rows = [(b, gi, q0, min(oh, q0 + step), 0, geo.mg) for b in range(geo.n)
            for gi in range(geo.g) for q0 in range(0, oh, step)]
    return _im2col_runner(geo, pack, epi, rows)


def _build_im2col_full(geo: ConvGeometry, pack: PackedWeights, epi: Epilogue,
                       nthreads: int) -> Run:
    # One job per (image, group, block of output channels); each gathers all the patches,
    # which costs 1 / (rows of its block) of its GEMM.
    parts = max(1, -(-_jobs(geo.mg, nthreads, geo.flops // 2) // (geo.n * geo.g)))
    mparts = split_range(geo.mg, parts, 8, 16)
    rows = [(b, gi, 0, geo.oh, m0, m1) for b in range(geo.n) for gi in range(geo.g)
            for m0, m1 in mparts]
    return _im2col_runner(geo, pack, epi, rows)


# -- depthwise ------------------------------------------------------------------------------


def _build_depthwise(geo: ConvGeometry, pack: PackedWeights, epi: Epilogue,
                     nthreads: int) -> Run:
    n, m = geo.n, geo.m
    planes = n * m
    work = planes * geo.p * geo.kh * geo.kw
    # The vector kernel does ~8 multiply-adds per ns: a job of _MIN_DW_JOB_MACS lasts ~15 us,
    # several times a hand-off to the other thread (MobileNet's 7x7 and 14x14 layers, 50 us
    # each, ran on one thread under the GEMM's threshold).
    jobs = 1 if nthreads <= 1 else max(1, min(planes, 4 * nthreads, work // _MIN_DW_JOB_MACS))
    parts = np.array(split_range(planes, jobs, 1), np.int64).reshape(-1, 2)
    wflat = pack.flat
    dims = (m, geo.mg, geo.h, geo.w, geo.oh, geo.ow, geo.kh, geo.kw, geo.sh, geo.sw, geo.dh,
            geo.dw, geo.pt, geo.pl, epi.act, epi.a0, epi.a1)

    def run(x: np.ndarray, bias: np.ndarray, z: np.ndarray | None) -> np.ndarray:
        y = np.empty((n, m, geo.oh, geo.ow), np.float32)
        yf = y.reshape(-1)
        par.run("conv_depthwise", parts, x.reshape(-1), wflat, bias, yf,
                yf if z is None else z.reshape(-1), z is not None, *dims)
        return y

    return run


# -- reference ------------------------------------------------------------------------------


def reference_conv(geo: ConvGeometry, w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``nn.py``'s numpy convolution (no bias) for this geometry."""
    from ..nn import _conv_core

    pads_end = ((geo.oh - 1) * geo.sh + (geo.kh - 1) * geo.dh + 1 - geo.h - geo.pt,
                (geo.ow - 1) * geo.sw + (geo.kw - 1) * geo.dw + 1 - geo.w - geo.pl)
    return _conv_core(x, w, (geo.pt, geo.pl), (max(0, pads_end[0]), max(0, pads_end[1])),
                      (geo.sh, geo.sw), (geo.dh, geo.dw), geo.g, (geo.oh, geo.ow))


def _build_reference(geo: ConvGeometry, pack: PackedWeights, epi: Epilogue,
                     nthreads: int) -> Run:
    from ..codegen.activations import ACT_CODES
    from ..fused import apply_activation

    name = {v: k for k, v in ACT_CODES.items()}[epi.act]
    params = [epi.a0, epi.a1]

    def run(x: np.ndarray, bias: np.ndarray, z: np.ndarray | None) -> np.ndarray:
        y = reference_conv(geo, pack.w, x)
        if not y.flags.writeable or y.base is x:
            y = y.copy()
        if bias.size:
            y += bias.reshape(1, -1, 1, 1)
        if z is not None:
            y += z
        return apply_activation(y, name, params)

    return run


# -- registry -------------------------------------------------------------------------------


def _is_winograd_shape(geo: ConvGeometry) -> bool:
    return (geo.kh == geo.kw == 3 and geo.sh == geo.sw == 1 and geo.dh == geo.dw == 1
            and geo.g == 1)


def applicable_tactics(geo: ConvGeometry) -> list[Tactic]:
    """Every tactic that can run ``geo`` (the reference last)."""
    out: list[Tactic] = []
    if geo.pointwise:
        out.append(Tactic("gemm"))
    if geo.depthwise:
        out.append(Tactic("depthwise"))
    if not geo.depthwise or geo.kh * geo.kw == 1:
        base = default_tile(geo)
        tiles = sorted({t for t in (base // 2, base, base * 2) if _MIN_TILE <= t < geo.p}
                       | ({base} if base >= geo.p else set()))
        out.extend(Tactic("im2col", t) for t in tiles)
        out.append(Tactic("im2col_full"))
    if _is_winograd_shape(geo):
        out.extend([Tactic("winograd", 2), Tactic("winograd", 4)])
    if not geo.depthwise:
        from .nchwc import nchwc_chunks, nchwc_supported

        if nchwc_supported(geo):
            out.extend(Tactic("nchwc", k) for k in nchwc_chunks(geo))
    out.append(Tactic("reference"))
    return out


def build(tactic: Tactic, geo: ConvGeometry, pack: PackedWeights, epi: Epilogue,
          nthreads: int) -> Run:
    """The ``run(x, bias, z)`` closure of ``tactic`` for ``geo``."""
    name = tactic.name
    if name != "reference" and not par.available():
        name = "reference"  # no numba kernels (no BLAS found): numpy only
    if name == "gemm":
        return _build_gemm(geo, pack, epi, nthreads)
    if name == "im2col":
        return _build_im2col(geo, pack, epi, nthreads, tactic.tile)
    if name == "im2col_full":
        return _build_im2col_full(geo, pack, epi, nthreads)
    if name == "depthwise":
        return _build_depthwise(geo, pack, epi, nthreads)
    if name == "winograd":
        from .winograd import build_winograd

        return build_winograd(geo, pack, epi, nthreads, tactic.tile)
    if name == "nchwc":
        from .nchwc import build_nchwc

        return build_nchwc(geo, pack, epi, nthreads, tactic.tile)
    if name == "reference":
        return _build_reference(geo, pack, epi, nthreads)
    raise ValueError(f"unknown convolution tactic {tactic.label!r}")


TACTICS = ("gemm", "im2col", "im2col_full", "depthwise", "winograd", "nchwc", "reference")
