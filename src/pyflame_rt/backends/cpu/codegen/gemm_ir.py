"""A GEMM with pre-packed constant weights, generated as LLVM IR (AVX-512 or AVX2 + FMA).

OpenBLAS packs both operands on every call; for the activations-times-weights products of a
transformer at batch 1 (M = 128..200 rows) that costs 15-25% (measured: 133 GFLOP/s on one
core for 128x768x768, where ONNX Runtime's MLAS, which packs the weights once, reaches 157).
Here the weights B [K, N] are packed once, at plan time, into panels of ``NR`` = 2 vectors of
columns, each panel [K, NR] contiguous (the last one zero-padded), and a micro-kernel keeps
an ``MR x NR`` block of C in vector registers while it streams a panel and broadcasts A's
values straight from their rows (A is not packed: its rows are few and stay in L2).

Loops of a job (rows [r0, r1), panels [p0, p1)): K in blocks of ``KC`` (a panel block of
KC x NR floats stays in L1 while every row block reuses it), then panels, then ``MR``-row
blocks (the tail rows by kernels of fewer rows). The first K block stores C, later ones add
to it, the last adds the bias. The driver follows the job protocol of ``_nb_par.py`` (atomic
job counter ``ctrl[0]``, finished jobs ``ctrl[1]``, the caller publishes ``gen`` in
``flags[0]`` and waits only for started jobs), so ``threads.run_parallel`` runs it on the
session's threads; it is called through ctypes, which releases the GIL.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np
from llvmlite import ir

from .llvm.irb import F32P, I64, I64P, Emitter, const, job_driver

__all__ = ["PRM", "GemmKernel", "gemm_kernel", "pack_b", "run_args"]

#: Parameter slots of the driver.
PRM = {name: i for i, name in enumerate(
    ["a", "lda", "bp", "c", "ldc", "n", "k", "jobs", "njobs", "bias", "has_bias"])}
#: Depth of a K block.
KC = 256
#: Rows of A per block (a multiple of the kernel's rows): its K block stays in L2 while
#: every panel of the K block streams past it.
MC_ROWS = {6: 192, 8: 192, 12: 192}

_DRIVER_TYPE = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p,
                                ctypes.c_int64, ctypes.c_void_p)


def _micro_kernel(module: ir.Module, width: int, mr: int) -> ir.Function:
    """``mk(a, lda, bp, kc, c, ldc, first, valid, bias, add_bias)``: C[0:mr, 0:valid] (+)=
    A[0:mr, 0:kc] @ panel[0:kc] (+ bias[0:valid] when ``add_bias``)."""
    args = [F32P, I64, F32P, I64, F32P, I64, I64, I64, F32P, I64]
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), args), name=f"mk{mr}")
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    a, lda, bp, kc, c, ldc, first, valid, bias, add_bias = fn.args
    for p in (a, bp, c, bias):
        p.add_attribute("noalias")
    e = Emitter(module, fn, width)
    b = e.b
    nr = 2 * width
    acc = e.slots(2 * mr)
    m0 = e.mask(valid)
    m1 = e.mask(b.sub(valid, const(width)))
    masks = (m0, m1)
    rows_c = [e.at(c, b.mul(const(r), ldc)) for r in range(mr)]
    rows_a = [e.at(a, b.mul(const(r), lda)) for r in range(mr)]
    is_first = b.icmp_signed("!=", first, const(0))
    with b.if_else(is_first) as (then, otherwise):
        with then:
            for i in range(2 * mr):
                b.store(e.zero(), acc[i])
        with otherwise:
            for r in range(mr):
                for h in range(2):
                    b.store(e.masked_load(e.at(rows_c[r], h * width), masks[h]),
                            acc[2 * r + h])
    with e.for_range(0, kc, name="k") as k:
        pk = e.at(bp, b.mul(k, const(nr)))
        # Unaligned loads (as fast as aligned ones on aligned data): the attention kernel
        # packs its panels into buffers with no particular alignment.
        b0 = e.vload(pk)
        b1 = e.vload(e.at(pk, width))
        vals = [b.load(acc[i]) for i in range(2 * mr)]
        for r in range(mr):
            av = e.bcast(e.at(rows_a[r], k))
            vals[2 * r] = e.fma(av, b0, vals[2 * r])
            vals[2 * r + 1] = e.fma(av, b1, vals[2 * r + 1])
        for i in range(2 * mr):
            b.store(vals[i], acc[i])
    with b.if_then(b.icmp_signed("!=", add_bias, const(0))):
        bv = [e.masked_load(e.at(bias, h * width), masks[h]) for h in range(2)]
        for r in range(mr):
            for h in range(2):
                b.store(b.fadd(b.load(acc[2 * r + h]), bv[h]), acc[2 * r + h])
    for r in range(mr):
        for h in range(2):
            e.masked_store(b.load(acc[2 * r + h]), e.at(rows_c[r], h * width), masks[h])
    b.ret_void()
    return fn


def _job(module: ir.Module, width: int, mr: int, kernels: list[ir.Function]) -> ir.Function:
    """``job(prm, j)``: rows [r0, r1) x panels [p0, p1) of job ``j`` (jobs table [j, 4])."""
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [I64P, I64]), name="gemm_job")
    fn.linkage = "internal"
    prm, j = fn.args
    e = Emitter(module, fn, width)
    b = e.b
    nr = 2 * width

    def slot(name: str) -> ir.Value:
        return b.load(e.at(prm, PRM[name]))

    def ptr(name: str) -> ir.Value:
        return b.inttoptr(slot(name), F32P)

    a, bp, c, bias = ptr("a"), ptr("bp"), ptr("c"), ptr("bias")
    lda, ldc, n, k = slot("lda"), slot("ldc"), slot("n"), slot("k")
    has_bias = slot("has_bias")
    jobs = b.inttoptr(slot("jobs"), I64P)
    row = b.mul(j, const(4))
    r0, r1, p0, p1 = (b.load(e.at(jobs, b.add(row, const(i)))) for i in range(4))
    mc = const(MC_ROWS[mr])
    with e.for_range(0, k, KC, name="kb") as k0:
        kc = e.imin(const(KC), b.sub(k, k0))
        first = b.zext(b.icmp_signed("==", k0, const(0)), I64)
        last = b.zext(b.icmp_signed(">=", b.add(k0, const(KC)), k), I64)
        add_bias = b.and_(last, has_bias)
        with e.for_range(r0, r1, MC_ROWS[mr], name="mb") as m0:
            m1 = e.imin(b.add(m0, mc), r1)
            full_end = b.sub(m1, b.srem(b.sub(m1, m0), const(mr)))
            tail = b.sub(m1, full_end)
            with e.for_range(p0, p1, name="p") as p:
                col = b.mul(p, const(nr))
                valid = e.imin(const(nr), b.sub(n, col))
                bpan = e.at(bp, b.add(b.mul(p, b.mul(k, const(nr))), b.mul(k0, const(nr))))
                bias_p = e.at(bias, col)

                def call(kernel: ir.Function, r: ir.Value) -> None:
                    b.call(kernel, [e.at(a, b.add(b.mul(r, lda), k0)), lda, bpan, kc,
                                    e.at(c, b.add(b.mul(r, ldc), col)), ldc, first, valid,
                                    bias_p, add_bias])

                with e.for_range(m0, full_end, mr, name="r") as r:
                    call(kernels[mr - 1], r)
                for t in range(1, mr):
                    with b.if_then(b.icmp_signed("==", tail, const(t))):
                        call(kernels[t - 1], full_end)
    b.ret_void()
    return fn


def module_ir(width: int, mr: int) -> str:
    """The LLVM IR text of the GEMM driver for ``width``-float vectors and ``mr`` rows."""
    module = ir.Module(name=f"pyflame_gemm_{width}_{mr}")
    kernels = [_micro_kernel(module, width, t) for t in range(1, mr + 1)]
    job_driver(module, "gemm_driver", _job(module, width, mr, kernels), PRM["njobs"], width)
    return str(module)


class GemmKernel:
    """The compiled driver: ``kernel(ctrl, flags, gen, prm)`` (ctypes; releases the GIL)."""

    def __init__(self, width: int, mr: int) -> None:
        from .llvm import compile_ir

        self.width = width
        self.nr = 2 * width
        self.mr = mr
        self._module = compile_ir(f"gemm{width}x{mr}", module_ir(width, mr))
        self.address = self._module.address("gemm_driver")
        self._fn = _DRIVER_TYPE(self.address)

    def __call__(self, ctrl: np.ndarray, flags: np.ndarray, gen: int, prm: np.ndarray) -> int:
        return self._fn(ctrl.ctypes.data, flags.ctypes.data, gen, prm.ctypes.data)


@functools.cache
def gemm_kernel() -> GemmKernel | None:
    """The GEMM kernel for this CPU (AVX-512: 12 x 32 blocks, AVX2: 6 x 16), or None when
    the host has neither or llvmlite cannot compile for it."""
    try:
        from .llvm import vector_width

        width = vector_width()
        if width == 0:
            return None
        return GemmKernel(width, 12 if width == 16 else 6)
    except Exception:
        import logging

        logging.getLogger("pyflame_rt").info("pyflame_rt: generated GEMM unavailable",
                                             exc_info=True)
        return None


def pack_b(b: np.ndarray, nr: int, trans_b: bool = False) -> np.ndarray:
    """B [K, N] (or [N, K] with ``trans_b``) as panels [ceil(N / nr), K, nr], zero-padded,
    64-byte aligned."""
    bt = b.T if trans_b else b
    k, n = bt.shape
    npan = -(-n // nr)
    raw = np.zeros(npan * k * nr + 16, np.float32)
    start = (-raw.ctypes.data % 64) // 4
    packed = raw[start:start + npan * k * nr].reshape(npan, k, nr)
    full = n // nr
    if full:
        packed[:full] = bt[:, :full * nr].reshape(k, full, nr).transpose(1, 0, 2)
    if n % nr:
        packed[full, :, :n % nr] = bt[:, full * nr:]
    return packed


def run_args(a: np.ndarray, packed: np.ndarray, y: np.ndarray, bias: np.ndarray | None,
             jobs: np.ndarray, n: int) -> np.ndarray:
    """The parameter array of one call (the arrays must outlive the call)."""
    prm = np.zeros(len(PRM), np.int64)
    prm[PRM["a"]] = a.ctypes.data
    prm[PRM["lda"]] = a.strides[0] // 4
    prm[PRM["bp"]] = packed.ctypes.data
    prm[PRM["c"]] = y.ctypes.data
    prm[PRM["ldc"]] = y.strides[0] // 4
    prm[PRM["n"]] = n
    prm[PRM["k"]] = a.shape[1]
    prm[PRM["jobs"]] = jobs.ctypes.data
    prm[PRM["njobs"]] = jobs.shape[0]
    # Without a bias the kernel never reads it, but its address must still be valid.
    prm[PRM["bias"]] = bias.ctypes.data if bias is not None and bias.size else \
        packed.ctypes.data
    prm[PRM["has_bias"]] = int(bias is not None and bias.size > 0)
    return prm
