"""The ``nchwc`` convolution tactic: a blocked direct convolution with generated kernels.

The input is reordered once per call into a zero-padded blocked layout [N, C/B, Hp, Wp, B]
(``B`` = floats per vector: 16 with AVX-512, 8 with AVX2), or only zero-padded when it has
too few channels per group to fill a block (the 7x7 stem's 3 channels: blocks of 1 channel,
NCHW). The weights are packed at build time into [M/B, C/B, kh, kw, B, B]. The convolution
itself runs the generated kernels of :mod:`..codegen.llvm.conv` (register-blocked FMAs over
output pixel tiles, epilogue ``act(y + bias (+ z))`` fused while transposing back to NCHW)
on the session's threads through :func:`..threads.run_parallel`.

Applies to any kernel size, stride, dilation and padding; grouped convolutions need a
multiple of ``B`` output channels per group (and use un-blocked input unless the input
channels per group are a multiple of ``B`` too). ``Tactic("nchwc", cbc)`` consumes the
input blocks in chunks of ``cbc`` (0: all at once). The input reorder and the convolution
are one parallel run (a two-phase driver): one hand-over to the worker threads per call.

This module also holds the kernels of the layout pass's ops (``opt/passes/layout.py``):
``pyflame.ReorderToBlocked``, ``pyflame.ReorderFromBlocked`` and ``pyflame.BlockedConv``
(:func:`build_blocked`: blocked input and output, no reorder at all), each with a numpy
reference path for other dtypes, block sizes or hosts.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import struct
import time
from typing import Any

import numpy as np

from ....ops import kernel
from .. import threads
from .geometry import ConvGeometry

__all__ = ["BlockedConvRunner", "blocked_conv", "blocked_supported", "build_blocked",
           "build_nchwc", "from_blocked", "nchwc_chunks", "nchwc_supported",
           "reorder_from_blocked", "reorder_to_blocked", "to_blocked", "vector_width", "warm"]

#: Output pixels per job at most (the job's tile lives on the stack: FC x plen x B floats).
_MAX_PLEN = 192
#: Jobs per thread to aim for (threads claim them dynamically).
_JOBS_PER_THREAD = 4

_log = logging.getLogger("pyflame_rt")

_DRIVER_TYPE = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p,
                                ctypes.c_int64, ctypes.c_void_p)


@functools.cache
def vector_width() -> int:
    """Floats per vector of the generated kernels on this host (0: not available)."""
    try:
        from ..codegen.llvm import vector_width as width

        return width()
    except Exception:  # noqa: BLE001 - no llvmlite or no native target: tactic unavailable
        return 0


def _shape(width: int) -> tuple[int, int]:
    """(filter blocks, pixels) per micro-kernel tile: 24 accumulators of the 32 AVX-512
    registers; 12 of the 16 AVX2 ones."""
    return (4, 6) if width == 16 else (3, 4)


class _Driver:
    """A generated driver, callable like the numba drivers by the worker pool."""

    def __init__(self, address: int, module: Any) -> None:
        # No numba here: building a plan must not import it (~0.5 s, ~70 MB). The worker
        # pool loads its numba helpers itself before its threads start (threads.WorkerPool).
        self._fn = _DRIVER_TYPE(address)
        self._module = module  # keeps the code alive

    def address(self, function: str) -> int:
        """The address of another function of the driver's module (e.g. its job)."""
        return self._module.address(function)

    def __call__(self, ctrl: np.ndarray, flags: np.ndarray, gen: int, prm: np.ndarray) -> int:
        # ctypes releases the GIL for the call: workers run it in parallel.
        return self._fn(ctrl.ctypes.data, flags.ctypes.data, gen, prm.ctypes.data)


@functools.cache
def _conv_driver(width: int, bi: int, act: int, residual: bool,
                 blocked_out: bool = False) -> _Driver:
    from ..codegen.llvm import compile_generated
    from ..codegen.llvm.conv import conv_module

    fc, owt = _shape(width)
    mod = compile_generated(
        f"nchwc_conv_{width}_{bi}_{fc}_{owt}_{act}_{int(residual)}_{int(blocked_out)}",
        lambda: conv_module(width, bi, fc, owt, act, residual, blocked_out))
    return _Driver(mod.address("nchwc_conv"), mod)


@functools.cache
def _phased_driver(width: int) -> _Driver:
    from ..codegen.llvm import compile_generated
    from ..codegen.llvm.conv import phased_module

    mod = compile_generated(f"phased_{width}", lambda: phased_module(width))
    return _Driver(mod.address("phased"), mod)


@functools.cache
def _reorder_driver(width: int) -> _Driver:
    from ..codegen.llvm import compile_generated
    from ..codegen.llvm.conv import reorder_module

    mod = compile_generated(f"nchwc_reorder_{width}", lambda: reorder_module(width))
    return _Driver(mod.address("nchwc_reorder"), mod)


def warm(progress: Any = None) -> float:
    """Generate and compile (or load from the cache) the kernels a CNN usually needs: no
    activation or ReLU, with and without residual, NCHW and blocked output, blocked and
    un-blocked input, and the reorders. Returns the seconds spent; ``progress(name,
    seconds)`` is called after each module. For ``pyflame-rt warmup``."""
    start = time.perf_counter()
    width = vector_width()
    if not width:
        return 0.0
    jobs: list[tuple[str, Any]] = [("reorder", lambda: _reorder_driver(width)),
                                   ("unblock", lambda: _unblock_driver(width)),
                                   ("phased", lambda: _phased_driver(width))]
    for bi in (width, 1):
        for act in (0, 1):
            for residual in (False, True):
                for blocked in (False, True):
                    jobs.append((f"conv_{bi}_{act}_{int(residual)}_{int(blocked)}",
                                 functools.partial(_conv_driver, width, bi, act, residual,
                                                   blocked)))
    for name, make in jobs:
        t0 = time.perf_counter()
        make()
        if progress is not None:
            progress(f"nchwc.{name}", time.perf_counter() - t0)
    return time.perf_counter() - start


def _input_block(geo: ConvGeometry, width: int) -> int:
    """Channels per input block: ``width``, or 1 (plain padded NCHW) for few channels."""
    if geo.g == 1 and geo.c >= 2 * width:
        return width
    return width if geo.cg % width == 0 else 1


def nchwc_supported(geo: ConvGeometry) -> bool:
    """Whether the tactic can run ``geo`` on this host."""
    width = vector_width()
    if not width or geo.p == 0 or geo.n == 0:
        return False
    # Grouped: each group's output channels must fill whole blocks.
    return geo.g == 1 or geo.mg % width == 0


def nchwc_chunks(geo: ConvGeometry) -> list[int]:
    """Candidate input-block chunk sizes for the chooser (0 = all blocks at once)."""
    width = vector_width() or 16
    bi = _input_block(geo, width)
    cbg = -(-geo.cg // bi)
    taps = geo.kh * geo.kw
    # A chunk whose weights (4 filter blocks) stay in L1 while a job's pixels stream by.
    small = max(1, (32 * 1024) // (4 * taps * bi * width * 4))
    return [0] if small >= cbg else [0, small]


def _aligned(shape: tuple[int, ...]) -> np.ndarray:
    """A zeroed float32 array whose data starts on a 64-byte boundary."""
    size = int(np.prod(shape))
    raw = np.zeros(size + 16, np.float32)
    start = (-raw.ctypes.data % 64) // 4
    return raw[start:start + size].reshape(shape)


def _pack(w: np.ndarray, g: int, width: int, bi: int) -> np.ndarray:
    m, cg, kh, kw = w.shape
    mg = m // g
    mbg = -(-mg // width)
    cbg = -(-cg // bi)
    wpad = np.zeros((g, mbg * width, cbg * bi, kh, kw), np.float32)
    wpad[:, :mg, :cg] = w.reshape(g, mg, cg, kh, kw)
    blocked = wpad.reshape(g, mbg, width, cbg, bi, kh, kw).transpose(0, 1, 3, 5, 6, 4, 2)
    out = _aligned(blocked.shape)
    out[...] = blocked
    return out


def _f32_bits(v: float) -> int:
    return struct.unpack("<i", struct.pack("<f", float(np.float32(v))))[0]


def _post_parts(total: int, nthreads: int) -> np.ndarray:
    per = max(1 << 14, -(-total // (4 * max(1, nthreads))))
    return np.array([(a, min(total, a + per)) for a in range(0, total, per)],
                    np.int64).reshape(-1, 2)


def _conv_params(geo: ConvGeometry, wb: np.ndarray, width: int, bi: int, nthreads: int,
                 chunk: int, epi: Any) -> np.ndarray:
    """The convolution driver's parameter array (pointers x, bias, y, z left at 0)."""
    from ..codegen.llvm.conv import CONV
    from .tactics import _pad_dims

    fc_max, owt = _shape(width)
    n, g = geo.n, geo.g
    mbg = -(-geo.mg // width)
    cbg = -(-geo.cg // bi)
    hp, wp = _pad_dims(geo)
    fsg = -(-mbg // fc_max)
    npix = geo.p
    # Jobs: (image, filter set, pixel range); a few per thread, each at most _MAX_PLEN
    # pixels, pixel ranges whole micro-kernel tiles.
    want = -(-_JOBS_PER_THREAD * max(1, nthreads) // (n * g * fsg)) if nthreads > 1 else 1
    npb = max(-(-npix // _MAX_PLEN), want)
    plen = -(-npix // npb)
    plen = min(-(-plen // owt) * owt, -(-npix // owt) * owt)
    npb = -(-npix // plen)
    prm = np.zeros(len(CONV), np.int64)
    vals = {"w": wb.ctypes.data, "njobs": n * g * fsg * npb, "plen": plen, "npb": npb,
            "fsg": fsg, "mbg": mbg, "cbg": cbg, "g": g, "hp": hp, "wp": wp, "kh": geo.kh,
            "kw": geo.kw, "sh": geo.sh, "sw": geo.sw, "dh": geo.dh, "dw": geo.dw,
            "oh": geo.oh, "ow": geo.ow, "m": geo.m, "mg": geo.mg,
            "a0": _f32_bits(epi.a0), "a1": _f32_bits(epi.a1),
            "cbc": chunk if 0 < chunk < cbg else cbg, "cbt": g * cbg}
    for name, v in vals.items():
        prm[CONV[name]] = v
    return prm


def build_nchwc(geo: ConvGeometry, pack: Any, epi: Any, nthreads: int, chunk: int = 0) -> Any:
    """The ``run(x, bias, z)`` closure of the tactic (see the module docstring)."""
    from ..codegen import par
    from ..codegen.llvm.conv import ACT_IN_KERNEL, CONV, REORDER
    from .tactics import _pad_dims, _padded

    width = vector_width()
    if not width:
        raise RuntimeError("the nchwc tactic needs AVX2+FMA or AVX-512 and llvmlite")
    bi = _input_block(geo, width)
    # Not kept in ``pack.extra``: timing builds every candidate, and only the chosen
    # tactic's closure should hold a packed copy of the weights.
    wb = _pack(pack.w, pack.g, width, bi)
    reorder = _reorder_driver(width) if bi > 1 else None
    reorder_job = reorder.address("reorder_job") if reorder is not None else 0
    phased = _phased_driver(width) if reorder is not None else None
    n, m = geo.n, geo.m
    cbt = geo.g * -(-geo.cg // bi)
    hp, wp = _pad_dims(geo)
    act = epi.act if epi.act in ACT_IN_KERNEL else 0
    post = 0 if epi.act in ACT_IN_KERNEL else epi.act
    plain = _conv_driver(width, bi, act, False)
    prm = _conv_params(geo, wb, width, bi, nthreads, chunk, epi)
    zero_bias = np.zeros(m, np.float32)

    rprm = np.zeros(len(REORDER), np.int64)
    if reorder is not None:
        planes = n * cbt
        nrb = max(1, min(hp, -(-_JOBS_PER_THREAD * max(1, nthreads) // planes))) \
            if nthreads > 1 else 1
        rpb = -(-hp // nrb)
        nrb = -(-hp // rpb)
        for name, v in {"n": n, "c": geo.c, "h": geo.h, "w": geo.w, "cbt": cbt, "hp": hp,
                        "wp": wp, "pt": geo.pt, "pl": geo.pl, "nrb": nrb, "rpb": rpb,
                        "njobs": planes * nrb}.items():
            rprm[REORDER[name]] = v
    post_parts = _post_parts(n * m * geo.p, nthreads) if post else None

    def run(x: np.ndarray, bias: np.ndarray, z: np.ndarray | None,
            _keep: np.ndarray = wb) -> np.ndarray:  # ``_keep``: prm holds wb's address
        from ..codegen.scratch import scratch

        rp = None
        if reorder is not None:
            xb = scratch("nchwc_in", n * cbt * hp * wp * width)
            rp = rprm.copy()
            rp[REORDER["x"]] = x.ctypes.data
            rp[REORDER["xb"]] = xb.ctypes.data
        else:
            xb = _padded(x, geo)
            if not xb.flags.c_contiguous:
                xb = np.ascontiguousarray(xb)
        y = np.empty((n, m, geo.oh, geo.ow), np.float32)
        b = bias if bias.size else zero_bias
        p = prm.copy()
        p[CONV["x"]] = xb.ctypes.data
        p[CONV["bias"]] = b.ctypes.data
        p[CONV["y"]] = y.ctypes.data
        driver = plain
        if z is not None:
            p[CONV["z"]] = z.ctypes.data
            driver = _conv_driver(width, bi, act, True)
        if rp is None:
            threads.run_parallel(driver, p)
        else:
            # The reorder's jobs, then the convolution's, in one hand-over to the threads.
            two = np.array([reorder_job, rp.ctypes.data, rp[REORDER["njobs"]],
                            driver.address("conv_job"), p.ctypes.data, p[CONV["njobs"]]],
                           np.int64)
            threads.run_parallel(phased, two)
        if post_parts is not None:
            par.run("activation", post_parts, y.reshape(-1), post, epi.a0, epi.a1)
        return y

    return run


def blocked_supported(geo: ConvGeometry) -> bool:
    """Whether :func:`build_blocked` can run ``geo`` (blocked input and output)."""
    width = vector_width()
    if not width or geo.p == 0 or geo.n == 0:
        return False
    return geo.g == 1 or (geo.cg % width == 0 and geo.mg % width == 0)


def build_blocked(geo: ConvGeometry, w: np.ndarray, epi: Any, nthreads: int,
                  chunk: int = 0, blocked_in: bool = True) -> Any:
    """``run(xb, bias, zb) -> yb`` on blocked tensors: ``xb`` [N, ceil(C/B), H, W, B],
    ``zb`` and ``yb`` [N, ceil(M/B), OH, OW, B] (B = :func:`vector_width`); ``bias`` has the
    M real channels (or none). Channels past C in ``xb`` are ignored; past M in ``yb``: 0.
    Without ``blocked_in``, ``xb`` is plain NCHW (for few input channels, e.g. a stem)."""
    from ..codegen import par
    from ..codegen.llvm.conv import ACT_IN_KERNEL, CONV
    from ..codegen.scratch import scratch
    from .tactics import _pad_dims, _padded

    width = vector_width()
    if not blocked_supported(geo) or (not blocked_in and geo.g > 1):
        raise RuntimeError(f"no blocked convolution for {geo.key()} on this host")
    bi = width if blocked_in else 1
    wb = _pack(np.ascontiguousarray(w, dtype=np.float32), geo.g, width, bi)
    n, g = geo.n, geo.g
    mbt = g * -(-geo.mg // width)
    cbt = g * -(-geo.cg // bi)
    hp, wp = _pad_dims(geo)
    pt, pl = geo.pt, geo.pl
    unpadded = not pt and not pl and hp == geo.h and wp == geo.w
    act = epi.act if epi.act in ACT_IN_KERNEL else 0
    post = 0 if epi.act in ACT_IN_KERNEL else epi.act
    prm = _conv_params(geo, wb, width, bi, nthreads, chunk, epi)
    out_shape = (n, mbt, geo.oh, geo.ow, width)
    post_parts = _post_parts(int(np.prod(out_shape)), nthreads) if post else None

    def padded_bias(bias: np.ndarray) -> np.ndarray:
        out = np.zeros(mbt * width, np.float32)
        if bias.size:
            # Group gi's channels start at block gi * mbg (mg fills whole blocks when g > 1).
            out.reshape(g, -1)[:, :geo.mg] = bias.reshape(g, geo.mg)
        return out

    const_bias: list[Any] = [None, None]  # (source, padded) of the last bias seen

    def run(xb: np.ndarray, bias: np.ndarray, zb: np.ndarray | None,
            _keep: np.ndarray = wb) -> np.ndarray:
        if not blocked_in:
            xp = np.ascontiguousarray(_padded(xb, geo))
        elif unpadded:
            xp = np.ascontiguousarray(xb)
        else:
            xp = scratch("nchwc_pad", n * cbt * hp * wp * width).reshape(n, cbt, hp, wp, width)
            h, w_ = geo.h, geo.w
            xp[:, :, :pt] = 0
            xp[:, :, pt + h:] = 0
            xp[:, :, pt:pt + h, :pl] = 0
            xp[:, :, pt:pt + h, pl + w_:] = 0
            xp[:, :, pt:pt + h, pl:pl + w_] = xb[:, :, :hp - pt, :wp - pl]
        if const_bias[0] is not bias:
            const_bias[0], const_bias[1] = bias, padded_bias(bias)
        b = const_bias[1]
        y = np.empty(out_shape, np.float32)
        p = prm.copy()
        p[CONV["x"]] = xp.ctypes.data
        p[CONV["bias"]] = b.ctypes.data
        p[CONV["y"]] = y.ctypes.data
        if zb is not None:
            zc = np.ascontiguousarray(zb, dtype=np.float32)
            p[CONV["z"]] = zc.ctypes.data
            threads.run_parallel(_conv_driver(width, bi, act, True, True), p)
        else:
            threads.run_parallel(_conv_driver(width, bi, act, False, True), p)
        if post_parts is not None:
            # Padded channels become act(0), finite: readers ignore them (zero weights in
            # a blocked convolution, dropped by the reorder back to NCHW).
            par.run("activation", post_parts, y.reshape(-1), post, epi.a0, epi.a1)
        return y

    return run


# -- the blocked-layout ops of the layout pass (opt/passes/layout.py) ----------------------------

def to_blocked(x: np.ndarray, block: int) -> np.ndarray:
    """``[N, C, H, W] -> [N, ceil(C/block), H, W, block]``, channels past C zero (numpy)."""
    n, c, h, w = x.shape
    cb = -(-c // block)
    padded = np.zeros((n, cb * block, h, w), x.dtype)
    padded[:, :c] = x
    return np.ascontiguousarray(padded.reshape(n, cb, block, h, w).transpose(0, 1, 3, 4, 2))


def from_blocked(x: np.ndarray, channels: int) -> np.ndarray:
    """``[N, CB, H, W, block] -> [N, channels, H, W]`` (numpy)."""
    n, cb, h, w, block = x.shape
    return np.ascontiguousarray(
        x.transpose(0, 1, 4, 2, 3).reshape(n, cb * block, h, w)[:, :channels])


def _check_blocked(x: np.ndarray, op: str) -> None:
    if x.ndim != 5:
        raise ValueError(f"{op}: expected a blocked 5-D tensor [N, C/B, H, W, B], got shape "
                         f"{x.shape}")


def _specialize_to_blocked(ctx: Any) -> Any:
    """float32 with the host's block: the generated (threaded) reorder kernel."""
    from ..codegen.llvm.conv import REORDER

    block = int(ctx.attrs.get("block", 16))
    width = vector_width()
    if block != width:
        return None

    def run(X: np.ndarray) -> np.ndarray:
        if X.dtype != np.float32 or X.ndim != 4 or X.size == 0:
            return reorder_to_blocked(X, block=block)
        x = np.ascontiguousarray(X)
        n, c, h, w = x.shape
        cb = -(-c // width)
        out = np.empty((n, cb, h, w, width), np.float32)
        nthreads = threads.current_threads()
        nrb = max(1, min(h, -(-_JOBS_PER_THREAD * nthreads // (n * cb)))) if nthreads > 1 \
            else 1
        rpb = -(-h // nrb)
        nrb = -(-h // rpb)
        prm = np.zeros(len(REORDER), np.int64)
        for name, v in {"x": x.ctypes.data, "xb": out.ctypes.data, "n": n, "c": c, "h": h,
                        "w": w, "cbt": cb, "hp": h, "wp": w, "pt": 0, "pl": 0, "nrb": nrb,
                        "rpb": rpb, "njobs": n * cb * nrb}.items():
            prm[REORDER[name]] = v
        threads.run_parallel(_reorder_driver(width), prm)
        return out

    return run


@kernel("ReorderToBlocked", since=1, domain="pyflame", specialize=_specialize_to_blocked)
def reorder_to_blocked(X: np.ndarray, *, block: int = 16) -> np.ndarray:
    """pyflame ReorderToBlocked-1: NCHW -> [N, ceil(C/block), H, W, block], zero-padded."""
    if X.ndim != 4:
        raise ValueError(f"ReorderToBlocked: expected a 4-D NCHW tensor, got {X.shape}")
    return to_blocked(X, int(block))


@functools.cache
def _unblock_driver(width: int) -> _Driver:
    from ..codegen.llvm import compile_generated
    from ..codegen.llvm.conv import unblock_module

    mod = compile_generated(f"nchwc_unblock_{width}", lambda: unblock_module(width))
    return _Driver(mod.address("nchwc_unblock"), mod)


def _specialize_from_blocked(ctx: Any) -> Any:
    """float32 in the host's block: the generated (threaded) reorder kernel."""
    from ..codegen.llvm.conv import UNBLOCK

    width = vector_width()
    channels = ctx.attrs.get("channels")
    if not width or channels is None:
        return None
    channels = int(channels)

    def run(X: np.ndarray) -> np.ndarray:
        if (X.dtype != np.float32 or X.ndim != 5 or X.shape[4] != width or X.size == 0
                or not 0 < channels <= X.shape[1] * width):
            return reorder_from_blocked(X, channels=channels)
        x = np.ascontiguousarray(X)
        n, cb, h, w, _ = x.shape
        out = np.empty((n, channels, h, w), np.float32)
        nthreads = threads.current_threads()
        nrb = max(1, min(h, -(-_JOBS_PER_THREAD * nthreads // (n * cb)))) if nthreads > 1 \
            else 1
        rpb = -(-h // nrb)
        nrb = -(-h // rpb)
        prm = np.zeros(len(UNBLOCK), np.int64)
        for name, v in {"xb": x.ctypes.data, "y": out.ctypes.data, "n": n, "c": channels,
                        "h": h, "w": w, "cbt": x.shape[1], "nrb": nrb, "rpb": rpb,
                        "njobs": n * x.shape[1] * nrb}.items():
            prm[UNBLOCK[name]] = v
        threads.run_parallel(_unblock_driver(width), prm)
        return out

    return run


@kernel("ReorderFromBlocked", since=1, domain="pyflame", specialize=_specialize_from_blocked)
def reorder_from_blocked(X: np.ndarray, *, channels: int | None = None) -> np.ndarray:
    """pyflame ReorderFromBlocked-1: [N, CB, H, W, B] -> NCHW with ``channels`` channels."""
    _check_blocked(X, "ReorderFromBlocked")
    limit = X.shape[1] * X.shape[4]
    if channels is None or not 0 < int(channels) <= limit:
        raise ValueError(f"ReorderFromBlocked: 'channels' must be in 1..{limit} for input "
                         f"shape {X.shape}, got {channels}")
    return from_blocked(X, int(channels))


def _specialize_blocked_conv_hook(ctx: Any) -> Any:
    return _specialize_blocked_conv(ctx)


@kernel("BlockedConv", since=1, domain="pyflame", specialize=_specialize_blocked_conv_hook)
def blocked_conv(X: np.ndarray, W: np.ndarray, B: np.ndarray | None = None,
                 Z: np.ndarray | None = None, *, auto_pad: str = "NOTSET",
                 dilations: Any = None, group: int = 1, kernel_shape: Any = None,
                 pads: Any = None, strides: Any = None, activation: str = "",
                 activation_params: Any = None, block: int = 16) -> np.ndarray:
    """pyflame BlockedConv-1: FusedConv on blocked X (or NCHW X), Z and Y ([N, C/B, H, W,
    B], B = ``block``)."""
    from ..fused import fused_conv

    c = W.shape[1] * int(group or 1)
    block = int(block)
    if X.ndim == 4:  # plain NCHW input (few channels): only the output is blocked
        x = X
    else:
        _check_blocked(X, "BlockedConv")
        if X.shape[4] != block or X.shape[1] != -(-c // block):
            raise ValueError(f"BlockedConv: X has {X.shape[1]} blocks of {block} channels; "
                             f"W expects {c} channels")
        x = from_blocked(X, c)
    z = None if Z is None else from_blocked(Z, W.shape[0])
    y = fused_conv(x, W, B, z, auto_pad=auto_pad, dilations=dilations,
                   group=group, kernel_shape=kernel_shape, pads=pads, strides=strides,
                   activation=activation, activation_params=activation_params)
    return to_blocked(y, block)


class BlockedConvRunner:
    """A ``pyflame.BlockedConv`` with constant weights: the generated kernel per shape."""

    def __init__(self, fallback: Any, attrs: dict[str, Any], w: np.ndarray,
                 b: np.ndarray | None, epi: Any, nthreads: int,
                 options: dict[str, Any] | None = None) -> None:
        self.options = dict(options or {})
        self.fallback = fallback
        self.attrs = attrs
        self.w = w
        self.b = b
        self.bias = np.zeros(0, np.float32) if b is None else \
            np.ascontiguousarray(b, dtype=np.float32).reshape(-1)
        self.epi = epi
        self.nthreads = nthreads
        self._plans: dict[tuple, Any] = {}

    def _chunk(self, geo: ConvGeometry, blocked_in: bool) -> int:
        """The input-block chunk: timed like the tactics (:mod:`.chooser`), remembered in
        the same timing cache; by rule for small convolutions or with timing off."""
        from . import chooser

        candidates = nchwc_chunks(geo)
        timing = self.options.get("session.pyflame.tactic_timing")
        if timing is None:
            timing = os.environ.get("PYFLAME_RT_TACTIC_TIMING")
        if len(candidates) == 1 or str(timing) == "0" or \
                geo.with_batch(1).flops < chooser.TIMING_MIN_FLOPS:
            return candidates[-1]
        cache = chooser.timing_cache()
        key = f"blocked{int(blocked_in)}|{geo.key()}|n{min(geo.n, 8)}|t{self.nthreads}"
        label = cache.get(key)
        if label is not None and label.isdigit() and int(label) in candidates:
            return int(label)
        probe = geo.with_batch(min(geo.n, 8))
        rng = np.random.default_rng(0)
        width = vector_width()
        shape = (probe.n, -(-probe.c // width), probe.h, probe.w, width) if blocked_in \
            else (probe.n, probe.c, probe.h, probe.w)
        x = rng.standard_normal(shape, dtype=np.float32)
        best, best_time = candidates[-1], float("inf")
        with threads.thread_limit(self.nthreads):
            for chunk in candidates:
                run = build_blocked(probe, self.w, self.epi, self.nthreads, chunk, blocked_in)
                run(x, self.bias, None)
                seconds = float("inf")
                for _ in range(5):
                    t0 = time.perf_counter()
                    run(x, self.bias, None)
                    seconds = min(seconds, time.perf_counter() - t0)
                if seconds < best_time:
                    best, best_time = chunk, seconds
        cache.put(key, str(best))
        cache.save()
        return best

    def geometry(self, shape: tuple[int, ...]) -> ConvGeometry | None:
        from ..nn import resolve_padding, spatial_ints

        n, h, w = shape[0], shape[2], shape[3]
        m, cg, kh, kw = self.w.shape
        g = int(self.attrs.get("group", 1) or 1)
        a = self.attrs
        strides = spatial_ints(a.get("strides"), 2, 1, "strides")
        dil = spatial_ints(a.get("dilations"), 2, 1, "dilations")
        try:
            begin, _, out = resolve_padding(a.get("auto_pad", "NOTSET"), (h, w), (kh, kw),
                                            strides, dil, a.get("pads"))
        except ValueError:
            return None
        return ConvGeometry(n, cg * g, h, w, m, g, kh, kw, strides[0], strides[1], dil[0],
                            dil[1], begin[0], begin[1], out[0], out[1])

    def prepare(self, shape: tuple[int, ...]) -> None:
        """Build the plan of an input shape ahead of the first run."""
        if all(d > 0 for d in shape):
            self._plan(shape)

    def _plan(self, shape: tuple[int, ...]) -> Any:
        run = self._plans.get(shape)
        if run is None:
            width = vector_width()
            blocked_in = len(shape) == 5
            geo = self.geometry(shape)
            fits = geo is not None and blocked_supported(geo) and (
                shape[1] == -(-geo.c // width) and shape[4] == width if blocked_in
                else len(shape) == 4 and shape[1] == geo.c and geo.g == 1)
            if not fits:
                return None
            chunk = self._chunk(geo, blocked_in)
            run = self._plans[shape] = build_blocked(geo, self.w, self.epi, self.nthreads,
                                                     chunk, blocked_in)
        return run

    def __call__(self, X: np.ndarray, W: np.ndarray, B: np.ndarray | None = None,
                 Z: np.ndarray | None = None) -> np.ndarray:
        width = vector_width()
        blocked_in = X.ndim == 5
        ok = (W is self.w and X.dtype == np.float32 and X.size > 0
              and int(self.attrs.get("block", 16)) == width
              and (not blocked_in or X.shape[4] == width) and (B is None or B is self.b)
              and (Z is None or (Z.dtype == np.float32 and Z.ndim == 5)))
        run = self._plan(X.shape) if ok and X.ndim in (4, 5) else None
        if run is None:
            return self.fallback(X, W, B, Z, **self.attrs)
        return run(X, self.bias, Z)


def _specialize_blocked_conv(ctx: Any) -> BlockedConvRunner | None:
    from ..codegen.activations import act_params
    from .tactics import Epilogue

    consts = list(ctx.constants) + [None] * 4
    w, b = consts[1], consts[2]
    if not isinstance(w, np.ndarray) or w.dtype != np.float32 or w.ndim != 4:
        return None
    if b is not None and (not isinstance(b, np.ndarray) or b.dtype != np.float32):
        return None
    if len(ctx.node.inputs) > 2 and ctx.node.inputs[2] is not None and b is None:
        return None  # a bias fed at run time
    attrs = dict(ctx.attrs)
    activation = attrs.get("activation", "") or ""
    if isinstance(activation, bytes):
        activation = attrs["activation"] = activation.decode()
    try:
        code, a0, a1 = act_params(activation, attrs.get("activation_params"))
    except ValueError:
        return None
    nthreads = int(ctx.options.get("intra_op_num_threads") or 0) or \
        threads.default_num_threads()
    runner = BlockedConvRunner(blocked_conv, attrs, w, b, Epilogue(code, a0, a1), nthreads,
                               ctx.options)
    shape = getattr(ctx.input_types[0] if ctx.input_types else None, "shape", None)
    if shape is not None and len(shape) in (4, 5):
        # Plan (and time) at build time for the model's shape, batch taken as 1.
        dims = tuple(d if isinstance(d, int) else 1 for d in shape)
        try:
            runner.prepare(dims)
        except Exception as exc:  # noqa: BLE001 - planning ahead is an optimization only
            _log.debug("pyflame_rt: could not plan %s ahead: %s", ctx.node, exc)
    return runner
