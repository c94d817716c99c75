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

__all__ = ["PackedGemm", "known_rows", "specialize_fused_gemm", "specialize_fused_matmul",
           "specialize_gemm", "specialize_matmul"]

#: Multiply-adds per job below which splitting costs more than it gains.
_MIN_JOB_MACS = 1 << 21
_EMPTY = np.zeros(0, np.float32)
#: The generated panel kernel's domain (see :class:`PackedGemm`): rows per call, and weight
#: elements (4 MiB: ViT-tiny's matrices and BERT-base's 768 x 768 projections).
_PANEL_MAX_ROWS = 256
_PANEL_MAX_WEIGHTS = 1 << 20
#: Jobs per thread of a split GEMM.
_JOBS_PER_THREAD = 2
#: Up to this many rows, a transposed B is multiplied as (B @ A^T)^T (see gemm_bt_small).
_SMALL_ROWS = 64


class PackedGemm:
    """``act(A @ B + bias)`` with B [K, N] fixed; call with A [rows, K] float32.

    ``rows`` (the row count the plan will see, when known) picks the kernel: up to
    :data:`_PANEL_MAX_ROWS` rows and weights of at most :data:`_PANEL_MAX_WEIGHTS` floats
    use the generated kernel of :mod:`.gemm_ir` on panel-packed weights (measured on one
    core against OpenBLAS: +15% on 128x768x768, +25% on ViT-tiny's 197x192x576, but -7% at
    1024 rows and -9% with 3072 columns, where OpenBLAS's packed A and B win); the packed
    copy is made only for those small matrices, so memory grows little.
    """

    def __init__(self, b: np.ndarray, bias: np.ndarray | None, act: int = 0, a0: float = 0.0,
                 a1: float = 0.0, trans_b: bool = False, rows: int | None = None) -> None:
        # B is kept as given: [K, N], or [N, K] with trans_b (BLAS reads it transposed, so
        # a Linear layer's weight needs no transposed copy).
        self.b = np.ascontiguousarray(b, dtype=np.float32)
        self.trans_b = bool(trans_b)
        self.n, self.k = self.b.shape if trans_b else self.b.shape[::-1]
        self.bias = _EMPTY if bias is None else \
            np.ascontiguousarray(bias, dtype=np.float32).reshape(-1)
        self.act, self.a0, self.a1 = act, float(a0), float(a1)
        self._jobs: dict[tuple[int, int], np.ndarray] = {}
        self.panels: np.ndarray | None = None
        self._kernel: Any = None
        self._templates: dict[tuple[int, int], np.ndarray] = {}
        # Small weights may use the panel kernel; they are packed when a call (or the plan's
        # known row count) first asks for few enough rows.
        self._panel_ok = bool(self.b.size and self.b.size <= _PANEL_MAX_WEIGHTS)
        if rows is not None and 1 <= rows <= _PANEL_MAX_ROWS:
            self._use_panels()

    def _use_panels(self) -> bool:
        """Pack the weights for the generated kernel (once); False when it cannot run here."""
        if self.panels is not None:
            return True
        if not self._panel_ok or not par.available():
            return False
        from .gemm_ir import gemm_kernel, pack_b

        kernel = gemm_kernel()
        if kernel is None:
            self._panel_ok = False
            return False
        self.panels = pack_b(self.b, kernel.nr, self.trans_b)
        self._kernel = kernel
        return True

    def jobs(self, rows: int, nthreads: int) -> np.ndarray:
        """(r0, r1, c0, c1) blocks of the output for ``rows`` rows on ``nthreads`` threads."""
        key = (rows, nthreads)
        jobs = self._jobs.get(key)
        if jobs is None:
            k, n = self.k, self.n
            work = rows * k * n
            # Two jobs per thread: each job is one BLAS call that packs its own operands, so
            # more, smaller jobs cost efficiency (measured, one thread running the tables:
            # 8 jobs ~11% slower than 1 on BERT's 128x768x768, 4 jobs ~4%) for little gain
            # in balance -- the threads claim jobs dynamically.
            want = 1 if nthreads <= 1 else max(1, min(_JOBS_PER_THREAD * nthreads,
                                                      work // _MIN_JOB_MACS))
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
        if rows <= _PANEL_MAX_ROWS and self._panel_ok and self._use_panels():
            return self._run_panels(a, y)
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

    def panel_jobs(self, rows: int, nthreads: int) -> np.ndarray:
        """(r0, r1, first panel, end panel) jobs of the generated kernel."""
        key = (-rows, nthreads)
        jobs = self._jobs.get(key)
        if jobs is None:
            nr = self._kernel.nr
            npan = -(-self.n // nr)
            work = rows * self.k * self.n
            want = 1 if nthreads <= 1 else max(1, min(_JOBS_PER_THREAD * nthreads,
                                                      work // _MIN_JOB_MACS))
            if want > 1 and npan >= want:
                step = -(-npan // want)
                table = [(0, rows, p, min(npan, p + step)) for p in range(0, npan, step)]
            elif want > 1:
                step = max(self._kernel.mr, -(-rows // want))
                step = -(-step // self._kernel.mr) * self._kernel.mr
                table = [(r, min(rows, r + step), 0, npan) for r in range(0, rows, step)]
            else:
                table = [(0, rows, 0, npan)]
            jobs = np.array(table, np.int64).reshape(-1, 4)
            if len(self._jobs) < 16:
                self._jobs[key] = jobs
        return jobs

    def _run_panels(self, a: np.ndarray, y: np.ndarray) -> np.ndarray:
        from .gemm_ir import run_args

        if not a.flags.c_contiguous:
            a = np.ascontiguousarray(a)  # the cached parameters assume lda = K
        rows = a.shape[0]
        nthreads = threads.current_threads()
        key = (rows, nthreads)
        template = self._templates.get(key)
        if template is None:
            jobs = self.panel_jobs(rows, nthreads)
            # Everything but A's and C's addresses (the driver fills those in); the table
            # ``jobs`` is kept alive by self._jobs.
            template = run_args(a, self.panels, y, self.bias, jobs, self.n)
            if len(self._templates) < 16:
                self._templates[key] = template
        par.run("gemm_panels", self._kernel.address, a, y, template)
        if self.act:
            from ..fused import _row_parts

            par.run("activation", _row_parts(y.size, 1), y.reshape(-1), self.act, self.a0,
                    self.a1)
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


def known_rows(ctx: Any, index: int = 0) -> int | None:
    """Rows of input ``index`` seen as a matrix (its size over its last axis), when the plan's
    shapes are concrete."""
    types = list(ctx.input_types) + [None] * 4
    shape = getattr(types[index], "shape", None)
    if not shape or not all(isinstance(d, int) for d in shape):
        return None
    rows = 1
    for d in shape[:-1]:
        rows *= d
    return rows


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
    packed = PackedGemm(b, None, rows=known_rows(ctx))
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
    packed = PackedGemm(b, bias, code, a0, a1, trans_b, rows=known_rows(ctx))
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
    packed = PackedGemm(b, bias, code, a0, a1, trans_b, rows=known_rows(ctx))
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
