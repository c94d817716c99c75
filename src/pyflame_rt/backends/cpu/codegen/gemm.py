"""GEMMs with constant weights, split over the session's threads, with a fused epilogue.

``Y = act(A @ B + bias)`` for A [rows, K] (activations) and a constant B [K, N] packed once
at compile time (transposed if the op says so, float32, C-contiguous). The work is cut into
column blocks when B is the larger operand (a transformer at batch 1: each thread streams its
own part of the weights) and into row blocks otherwise; every job runs one single-threaded
BLAS call on its block and then the epilogue (bias over the last axis, activation) on the
block while it is still in cache.

:func:`specialize_matmul`, :func:`specialize_gemm` and their fused forms are the compile-time
fast paths of ``MatMul``, ``Gemm``, ``pyflame.FusedMatMul`` and ``pyflame.FusedGemm``; any
case they do not cover (weights fed at run time, other dtypes, broadcast C) keeps the generic
kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import threads
from . import par
from .activations import act_params

__all__ = ["PackedGemm", "specialize_fused_gemm", "specialize_fused_matmul",
           "specialize_gemm", "specialize_matmul"]

#: Multiply-adds per job below which splitting costs more than it gains.
_MIN_JOB_MACS = 1 << 21
_EMPTY = np.zeros(0, np.float32)
#: Up to this many rows, a transposed B is multiplied as (B @ A^T)^T (see gemm_bt_small).
_SMALL_ROWS = 64


class PackedGemm:
    """``act(A @ B + bias)`` with B [K, N] fixed; call with A [rows, K] float32."""

    def __init__(self, b: np.ndarray, bias: np.ndarray | None, act: int = 0, a0: float = 0.0,
                 a1: float = 0.0, trans_b: bool = False) -> None:
        # B is kept as given: [K, N], or [N, K] with trans_b (BLAS reads it transposed, so
        # a Linear layer's weight needs no transposed copy).
        self.b = np.ascontiguousarray(b, dtype=np.float32)
        self.trans_b = bool(trans_b)
        self.n, self.k = self.b.shape if trans_b else self.b.shape[::-1]
        self.bias = _EMPTY if bias is None else \
            np.ascontiguousarray(bias, dtype=np.float32).reshape(-1)
        self.act, self.a0, self.a1 = act, float(a0), float(a1)
        self._jobs: dict[tuple[int, int], np.ndarray] = {}

    def jobs(self, rows: int, nthreads: int) -> np.ndarray:
        """(r0, r1, c0, c1) blocks of the output for ``rows`` rows on ``nthreads`` threads."""
        key = (rows, nthreads)
        jobs = self._jobs.get(key)
        if jobs is None:
            k, n = self.k, self.n
            work = rows * k * n
            want = 1 if nthreads <= 1 else max(1, min(4 * nthreads, work // _MIN_JOB_MACS))
            if want > 1 and rows <= n:
                share = -(-n // want)
                step = max(64, -(-share // 16) * 16)
                table = [(0, rows, c, min(n, c + step)) for c in range(0, n, step)]
            elif want > 1:
                step = max(16, -(-rows // want))
                table = [(r, min(rows, r + step), 0, n) for r in range(0, rows, step)]
            else:
                table = [(0, rows, 0, n)]
            jobs = np.array(table, np.int64).reshape(-1, 4)
            if len(self._jobs) < 16:
                self._jobs[key] = jobs
        return jobs

    def __call__(self, a: np.ndarray) -> np.ndarray:
        """``a`` [rows, K] float32 (C-contiguous) -> [rows, N] float32."""
        rows = a.shape[0]
        y = np.empty((rows, self.n), np.float32)
        if not par.available():
            np.matmul(a, self.b.T if self.trans_b else self.b, out=y)
            if self.bias.size:
                y += self.bias
            if self.act:
                from ..fused import apply_activation
                from .activations import ACT_CODES

                name = {v: k for k, v in ACT_CODES.items()}[self.act]
                apply_activation(y, name, [self.a0, self.a1])
            return y
        fp, ilp64 = par.blas()
        if rows == 1:
            jobs = self.jobs(1, threads.current_threads())
            par.run("gemv", par.gemv(), ilp64, np.ascontiguousarray(jobs[:, 2:4]),
                    a.reshape(-1), self.b.reshape(-1), y.reshape(-1), self.bias, self.act,
                    self.a0, self.a1, self.k, self.n, self.trans_b)
            return y
        if self.trans_b and rows <= _SMALL_ROWS:
            jobs = self.jobs(rows, threads.current_threads())
            cols = np.ascontiguousarray(jobs[:, 2:4]) if jobs[0, 1] == rows else \
                np.array([[0, self.n]], np.int64)
            par.run("gemm_bt_small", fp, ilp64, cols, a.reshape(-1), self.b.reshape(-1),
                    y.reshape(-1), self.bias, self.act, self.a0, self.a1, self.k, self.n, rows)
            return y
        par.run("gemm", fp, ilp64, self.jobs(rows, threads.current_threads()),
                a.reshape(-1), self.b.reshape(-1), y.reshape(-1), self.bias, self.act,
                self.a0, self.a1, self.k, self.n, self.trans_b)
        return y


def _const2d(ctx: Any, index: int) -> np.ndarray | None:
    consts = list(ctx.constants) + [None] * 4
    b = consts[index]
    if isinstance(b, np.ndarray) and b.dtype == np.float32 and b.ndim == 2:
        return b
    return None


def _float32_input(ctx: Any, index: int = 0) -> bool:
    types = list(ctx.input_types) + [None] * 4
    dtype = getattr(getattr(types[index], "dtype", None), "numpy", None)
    return dtype is None or dtype == np.float32


def _row_vector(c: Any, n: int) -> np.ndarray | None:
    """``c`` as an [n] bias if it broadcasts along the last axis only, else None."""
    if not isinstance(c, np.ndarray) or c.dtype != np.float32:
        return None
    if c.size == n and (c.ndim == 1 or all(d == 1 for d in c.shape[:-1])) and \
            c.shape[-1] == n:
        return c.reshape(n)
    if c.size == 1:
        return np.full(n, c.reshape(()), np.float32)
    return None


def _matmul_runner(packed: PackedGemm, b_source: np.ndarray, c_source: Any,
                   fallback: Callable[..., Any]) -> Callable[..., Any]:
    n = packed.n

    def run(A: np.ndarray, B: np.ndarray, C: Any = None) -> np.ndarray:
        if (B is not b_source or C is not c_source or A.dtype != np.float32 or A.ndim < 1
                or A.shape[-1] != packed.k):
            return fallback(A, B, C)
        if A.ndim == 1:
            return packed(A.reshape(1, -1)).reshape(n)
        a2 = A.reshape(-1, packed.k)
        if not a2.flags.c_contiguous:
            a2 = np.ascontiguousarray(a2)
        return packed(a2).reshape(*A.shape[:-1], n)

    return run


def specialize_matmul(ctx: Any, fallback: Callable[..., Any]) -> Callable[..., Any] | None:
    """``MatMul(A, B)`` with a constant 2-D float32 B."""
    b = _const2d(ctx, 1)
    if b is None or not _float32_input(ctx):
        return None
    packed = PackedGemm(b, None)
    return _matmul_runner(packed, ctx.constants[1], None,
                          lambda A, B, C=None: fallback(A, B))


def specialize_fused_matmul(ctx: Any, fallback: Callable[..., Any]) -> Callable[..., Any] | None:
    """``pyflame.FusedMatMul(A, B, C?)``: transA = 0, alpha = 1, constant 2-D B, C a
    constant bias along the last axis (or absent)."""
    attrs = ctx.attrs
    if attrs.get("transA", 0) or float(attrs.get("alpha", 1.0)) != 1.0:
        return None
    b = _const2d(ctx, 1)
    if b is None or not _float32_input(ctx):
        return None
    trans_b = bool(attrs.get("transB", 0))
    n = b.shape[0] if trans_b else b.shape[1]
    consts = list(ctx.constants) + [None] * 4
    c_source = consts[2]
    has_c = len(ctx.input_types) > 2 and ctx.input_types[2] is not None
    bias = None
    if has_c:
        bias = _row_vector(c_source, n)
        if bias is None:
            return None
    act = attrs.get("activation", "") or ""
    if isinstance(act, bytes):
        act = act.decode()
    try:
        code, a0, a1 = act_params(act, attrs.get("activation_params"))
    except ValueError:
        return None
    packed = PackedGemm(b, bias, code, a0, a1, trans_b)
    return _matmul_runner(packed, ctx.constants[1], c_source if has_c else None,
                          lambda A, B, C=None: fallback(A, B, C, **attrs))


def _gemm_runner(ctx: Any, fallback: Callable[..., Any], fused: bool
                 ) -> Callable[..., Any] | None:
    attrs = ctx.attrs
    if attrs.get("transA", 0) or float(attrs.get("alpha", 1.0)) != 1.0:
        return None
    b = _const2d(ctx, 1)
    if b is None or not _float32_input(ctx):
        return None
    trans_b = bool(attrs.get("transB", 0))
    n = b.shape[0] if trans_b else b.shape[1]
    consts = list(ctx.constants) + [None] * 4
    c_source = consts[2]
    has_c = len(ctx.input_types) > 2 and ctx.input_types[2] is not None
    bias = None
    beta = float(attrs.get("beta", 1.0))
    if has_c:
        bias = _row_vector(c_source, n)
        if bias is None:
            return None
        if beta != 1.0:
            bias = (bias * np.float32(beta)).astype(np.float32)
    code, a0, a1 = 0, 0.0, 0.0
    if fused:
        act = attrs.get("activation", "") or ""
        if isinstance(act, bytes):
            act = act.decode()
        try:
            code, a0, a1 = act_params(act, attrs.get("activation_params"))
        except ValueError:
            return None
    packed = PackedGemm(b, bias, code, a0, a1, trans_b)
    b_source = ctx.constants[1]
    c_expected = c_source if has_c else None

    def run(A: np.ndarray, B: np.ndarray, C: Any = None) -> np.ndarray:
        if (B is not b_source or C is not c_expected or A.dtype != np.float32 or A.ndim != 2
                or A.shape[1] != packed.k):
            return fallback(A, B, C, **attrs)
        a = A if A.flags.c_contiguous else np.ascontiguousarray(A)
        return packed(a)

    return run


def specialize_gemm(ctx: Any, fallback: Callable[..., Any]) -> Callable[..., Any] | None:
    """``Gemm(A, B, C?)``: transA = 0, alpha = 1, constant 2-D B, C a constant bias along the
    columns (or absent)."""
    return _gemm_runner(ctx, fallback, fused=False)


def specialize_fused_gemm(ctx: Any, fallback: Callable[..., Any]) -> Callable[..., Any] | None:
    """``pyflame.FusedGemm``: as :func:`specialize_gemm`, plus the activation."""
    return _gemm_runner(ctx, fallback, fused=True)
