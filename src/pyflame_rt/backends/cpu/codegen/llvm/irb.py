"""Small helpers for writing vector kernels with ``llvmlite.ir``.

Kernels keep their accumulators in ``alloca`` slots indexed by constants and let LLVM's
SROA/mem2reg promote them to registers, so generators can be written as plain Python loops
(unrolled at generation time) around a few run-time loops (:func:`for_range`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from llvmlite import ir

__all__ = [
    "F32",
    "F32P",
    "I1",
    "I32",
    "I64",
    "I64P",
    "Emitter",
    "const",
    "job_driver",
    "vec",
]

F32 = ir.FloatType()
F32P = F32.as_pointer()
I1 = ir.IntType(1)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
I64P = I64.as_pointer()


def vec(n: int) -> ir.VectorType:
    """``<n x float>``."""
    return ir.VectorType(F32, n)


def const(v: int) -> ir.Constant:
    """An i64 constant."""
    return ir.Constant(I64, v)


class Emitter:
    """An ``ir.IRBuilder`` plus the vector width and the intrinsics a kernel needs."""

    def __init__(self, module: ir.Module, func: ir.Function, width: int) -> None:
        self.module = module
        self.func = func
        self.width = width
        self.vt = vec(width)
        self.entry = func.append_basic_block("entry")
        self.b = ir.IRBuilder(self.entry)

    # -- intrinsics ------------------------------------------------------------------------

    def _intrinsic(self, name: str, ret: ir.Type, args: Sequence[ir.Type]) -> ir.Function:
        fn = self.module.globals.get(name)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(ret, list(args)), name=name)
        return fn

    def fma(self, a: ir.Value, x: ir.Value, acc: ir.Value) -> ir.Value:
        """``a * x + acc`` as one fused multiply-add (``llvm.fma``)."""
        t = a.type
        name = f"llvm.fma.v{self.width}f32" if isinstance(t, ir.VectorType) else "llvm.fma.f32"
        return self.b.call(self._intrinsic(name, t, [t, t, t]), [a, x, acc])

    def vmax(self, a: ir.Value, x: ir.Value) -> ir.Value:
        name = f"llvm.maxnum.v{self.width}f32"
        return self.b.call(self._intrinsic(name, self.vt, [self.vt, self.vt]), [a, x])

    def vmin(self, a: ir.Value, x: ir.Value) -> ir.Value:
        name = f"llvm.minnum.v{self.width}f32"
        return self.b.call(self._intrinsic(name, self.vt, [self.vt, self.vt]), [a, x])

    def mask(self, count: ir.Value) -> ir.Value:
        """``<width x i1>``: lane ``l`` is set when ``l < count``."""
        lanes = ir.Constant(ir.VectorType(I64, self.width), list(range(self.width)))
        return self.b.icmp_signed("<", lanes, self.splat(count, I64))

    def masked_load(self, ptr: ir.Value, mask: ir.Value) -> ir.Value:
        """Load the lanes of ``mask`` from ``ptr`` (a float pointer); the others are 0."""
        vp = self.b.bitcast(ptr, self.vt.as_pointer())
        mt = ir.VectorType(I1, self.width)
        fn = self._intrinsic(f"llvm.masked.load.v{self.width}f32.p0", self.vt,
                             [self.vt.as_pointer(), I32, mt, self.vt])
        return self.b.call(fn, [vp, ir.Constant(I32, 4), mask, ir.Constant(self.vt, None)])

    def masked_store(self, value: ir.Value, ptr: ir.Value, mask: ir.Value) -> None:
        vp = self.b.bitcast(ptr, self.vt.as_pointer())
        mt = ir.VectorType(I1, self.width)
        fn = self._intrinsic(f"llvm.masked.store.v{self.width}f32.p0", ir.VoidType(),
                             [self.vt, self.vt.as_pointer(), I32, mt])
        self.b.call(fn, [value, vp, ir.Constant(I32, 4), mask])

    def pause(self) -> None:
        """x86's spin-wait hint (a no-op elsewhere; callers run on x86 only)."""
        self.b.call(self._intrinsic("llvm.x86.sse2.pause", ir.VoidType(), []), [])

    # -- values ----------------------------------------------------------------------------

    def splat(self, scalar: ir.Value, ty: ir.Type = F32) -> ir.Value:
        vt = ir.VectorType(ty, self.width)
        v = self.b.insert_element(ir.Constant(vt, None), scalar, ir.Constant(I32, 0))
        return self.b.shuffle_vector(v, ir.Constant(vt, None),
                                     ir.Constant(ir.VectorType(I32, self.width), [0] * self.width))

    def zero(self) -> ir.Constant:
        return ir.Constant(self.vt, [0.0] * self.width)

    def at(self, ptr: ir.Value, index: ir.Value | int) -> ir.Value:
        """``&ptr[index]`` (element index, i64)."""
        idx = const(index) if isinstance(index, int) else index
        return self.b.gep(ptr, [idx], inbounds=True)

    def vload(self, ptr: ir.Value, align: int = 4) -> ir.Value:
        return self.b.load(self.b.bitcast(ptr, self.vt.as_pointer()), align=align)

    def vstore(self, value: ir.Value, ptr: ir.Value, align: int = 4) -> None:
        self.b.store(value, self.b.bitcast(ptr, self.vt.as_pointer()), align=align)

    def bcast(self, ptr: ir.Value) -> ir.Value:
        """A float loaded from ``ptr`` in every lane (an embedded broadcast on AVX-512)."""
        return self.splat(self.b.load(ptr, align=4))

    def slots(self, count: int, ty: ir.Type | None = None) -> list[ir.Value]:
        """``count`` stack slots in the entry block (promoted to registers by LLVM)."""
        with self.b.goto_block(self.entry):
            self.b.position_at_start(self.entry)
            return [self.b.alloca(ty or self.vt) for _ in range(count)]

    def transpose(self, rows: list[ir.Value]) -> list[ir.Value]:
        """The transpose of a ``width`` x ``width`` block given as ``width`` row vectors
        (log2(width) stages of interleaving shuffles)."""
        n = self.width
        lo = ir.Constant(ir.VectorType(I32, n), [k // 2 + (k % 2) * n for k in range(n)])
        hi = ir.Constant(ir.VectorType(I32, n), [n // 2 + k // 2 + (k % 2) * n
                                                 for k in range(n)])
        r = list(rows)
        step = 1
        while step < n:
            new: list[ir.Value] = [None] * n  # type: ignore[list-item]
            for i in range(n // 2):
                new[2 * i] = self.b.shuffle_vector(r[i], r[i + n // 2], lo)
                new[2 * i + 1] = self.b.shuffle_vector(r[i], r[i + n // 2], hi)
            r = new
            step *= 2
        return r

    # -- control flow ----------------------------------------------------------------------

    @contextlib.contextmanager
    def for_range(self, start: ir.Value | int, stop: ir.Value | int,
                  step: ir.Value | int = 1, name: str = "i") -> Iterator[ir.Value]:
        """``for i in range(start, stop, step)`` (i64, ``step`` > 0) around the body."""
        b = self.b
        start = const(start) if isinstance(start, int) else start
        stop = const(stop) if isinstance(stop, int) else stop
        pre = b.block
        head = self.func.append_basic_block(f"{name}.head")
        body = self.func.append_basic_block(f"{name}.body")
        end = self.func.append_basic_block(f"{name}.end")
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(I64, name=name)
        i.add_incoming(start, pre)
        b.cbranch(b.icmp_signed("<", i, stop), body, end)
        b.position_at_end(body)
        yield i
        i.add_incoming(b.add(i, const(step) if isinstance(step, int) else step), b.block)
        b.branch(head)
        b.position_at_end(end)

    @contextlib.contextmanager
    def if_then(self, cond: ir.Value) -> Iterator[None]:
        with self.b.if_then(cond):
            yield

    def imin(self, a: ir.Value, x: ir.Value) -> ir.Value:
        return self.b.select(self.b.icmp_signed("<", a, x), a, x)


def job_driver(module: ir.Module, name: str, job: ir.Function, njobs_slot: int,
               width: int) -> None:
    """``i64 name(i64* ctrl, i64* flags, i64 gen, i64* prm)``: claim job numbers from
    ``ctrl[0]`` and run ``job(prm, j)`` until ``prm[njobs_slot]`` are taken, count each in
    ``ctrl[1]``; the caller (``gen > 0``) publishes ``gen`` in ``flags[0]`` first and then
    waits for the jobs others started. Returns how many spins that wait took (what the
    worker pool's numba drivers return)."""
    fn = ir.Function(module, ir.FunctionType(I64, [I64P, I64P, I64, I64P]), name=name)
    ctrl, flags, gen, prm = fn.args
    e = Emitter(module, fn, width)
    b = e.b
    njobs = b.load(e.at(prm, njobs_slot))
    published = b.icmp_signed(">", gen, const(0))
    with b.if_then(published):
        b.store_atomic(gen, flags, "release", 8)
    loop = fn.append_basic_block("claim")
    body = fn.append_basic_block("job")
    done = fn.append_basic_block("done")
    b.branch(loop)
    b.position_at_end(loop)
    j = b.atomic_rmw("add", ctrl, const(1), "seq_cst")
    b.cbranch(b.icmp_signed("<", j, njobs), body, done)
    b.position_at_end(body)
    b.call(job, [prm, j])
    b.atomic_rmw("add", e.at(ctrl, 1), const(1), "seq_cst")
    b.branch(loop)
    b.position_at_end(done)
    spins = e.slots(1, I64)[0]
    b.store(const(0), spins)
    wait = fn.append_basic_block("wait")
    spin = fn.append_basic_block("spin")
    out = fn.append_basic_block("out")
    b.cbranch(published, wait, out)
    b.position_at_end(wait)
    finished = b.load_atomic(e.at(ctrl, 1), "acquire", 8)
    b.cbranch(b.icmp_signed("<", finished, njobs), spin, out)
    b.position_at_end(spin)
    e.pause()
    b.store(b.add(b.load(spins), const(1)), spins)
    b.branch(wait)
    b.position_at_end(out)
    b.ret(b.load(spins))
