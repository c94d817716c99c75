"""Generated LLVM kernels (backends/cpu/codegen/llvm/): the IR helpers, the compile-once
engine with its on-disk object cache, and the drivers of the blocked convolution."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from oracle import assert_close

from pyflame_rt.backends.cpu import threads
from pyflame_rt.backends.cpu.codegen import kernels
from pyflame_rt.backends.cpu.codegen.llvm import engine, vector_width
from pyflame_rt.backends.cpu.codegen.llvm.conv import REORDER, reorder_module
from pyflame_rt.backends.cpu.codegen.llvm.irb import F32P, I64, Emitter

HOST_WIDTH = vector_width()
pytestmark = pytest.mark.skipif(HOST_WIDTH == 0,
                                reason="generated kernels need an x86-64 CPU with AVX2+FMA")
WIDTHS = [w for w in (16, 8) if w <= HOST_WIDTH]
# Load the pool's numba helpers before any worker thread does: two threads touching a
# lazily imported module at once can see it half-initialized (CPython 3.11's LazyLoader).
kernels("sync").spin_count  # noqa: B018
RNG = np.random.default_rng(5)


def _cpu_flags() -> set[str]:
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def test_vector_width_follows_the_cpu_flags():
    flags = _cpu_flags()
    if "avx512f" in flags and "fma" in flags:
        assert HOST_WIDTH == 16
    elif "avx2" in flags and "fma" in flags:
        assert HOST_WIDTH == 8


def _fma_transpose_module(width: int) -> str:
    """``kernel(a, x, y, out)``: out = transpose(a * x + y) for width x width blocks."""
    from llvmlite import ir

    module = ir.Module(name=f"test_{width}")
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [F32P] * 4), name="kernel")
    e = Emitter(module, fn, width)
    a, x, y, out = fn.args
    rows = [e.fma(e.vload(e.at(a, r * width)), e.vload(e.at(x, r * width)),
                  e.vload(e.at(y, r * width))) for r in range(width)]
    for r, v in enumerate(e.transpose(rows)):
        e.vstore(v, e.at(out, r * width))
    e.b.ret_void()
    return str(module)


@pytest.mark.parametrize("width", WIDTHS)
def test_fma_and_register_transpose(width):
    mod = engine.compile_ir(f"test_fma_{width}", _fma_transpose_module(width))
    fn = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * 4)(mod.address("kernel"))
    a, x, y = (RNG.standard_normal((width, width)).astype(np.float32) for _ in range(3))
    out = np.zeros((width, width), np.float32)
    fn(a.ctypes.data, x.ctypes.data, y.ctypes.data, out.ctypes.data)
    assert_close(out, (a.astype(np.float64) * x + y).T.astype(np.float32), rtol=1e-6,
                 atol=1e-6)


def test_object_code_is_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("PYFLAME_RT_CACHE_DIR", str(tmp_path))
    text = _fma_transpose_module(HOST_WIDTH) + "\n; cache test\n"
    engine.compile_ir("test_cache", text)
    files = list((tmp_path / "llvm").glob("test_cache-*.o"))
    assert len(files) == 1 and files[0].stat().st_size > 0
    # A new process (simulated: the in-memory table emptied) loads the file, no compile.
    monkeypatch.setattr(engine, "_modules", {})
    monkeypatch.setattr(engine, "_compile", lambda text: pytest.fail("compiled again"))
    mod = engine.compile_ir("test_cache", text)
    assert mod.address("kernel")
    with pytest.raises(LookupError, match="no function"):
        mod.address("missing")


def test_unwritable_cache_still_compiles(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("PYFLAME_RT_CACHE_DIR", str(blocker))  # a file, not a directory
    mod = engine.compile_ir("test_nocache", _fma_transpose_module(HOST_WIDTH) + "\n; nc\n")
    assert mod.address("kernel")


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("shape,pads", [((2, 21, 5, 19), (1, 2, 3, 0)),
                                        ((1, 3, 1, 1), (0, 0, 0, 0)),
                                        ((1, 40, 4, 33), (2, 1, 0, 0))])
def test_reorder_driver_pads_and_blocks(shape, pads, width, nthreads):
    from pyflame_rt.backends.cpu.conv.nchwc import _Driver

    n, c, h, w = shape
    pt, pl, pb, pr = pads
    mod = engine.compile_ir(f"nchwc_reorder_{width}", reorder_module(width))
    driver = _Driver(mod.address("nchwc_reorder"), mod)
    cb = -(-c // width)
    hp, wp = h + pt + pb, w + pl + pr
    x = RNG.standard_normal(shape).astype(np.float32)
    out = np.full((n, cb, hp, wp, width), np.nan, np.float32)  # every slot must be written
    prm = np.zeros(len(REORDER), np.int64)
    vals = {"x": x.ctypes.data, "xb": out.ctypes.data, "n": n, "c": c, "h": h, "w": w,
            "cbt": cb, "hp": hp, "wp": wp, "pt": pt, "pl": pl, "nrb": 2, "rpb": -(-hp // 2),
            "njobs": n * cb * 2}
    for k, v in vals.items():
        prm[REORDER[k]] = v
    with threads.thread_limit(nthreads):
        threads.run_parallel(driver, prm)
    padded = np.zeros((n, cb * width, hp, wp), np.float32)
    padded[:, :c, pt:pt + h, pl:pl + w] = x
    expected = padded.reshape(n, cb, width, hp, wp).transpose(0, 1, 3, 4, 2)
    np.testing.assert_array_equal(out, expected)


def test_driver_counts_every_job():
    """The driver protocol: with ``gen`` > 0 the caller publishes it and waits for all."""
    from llvmlite import ir

    from pyflame_rt.backends.cpu.codegen.llvm.irb import I64P, job_driver

    module = ir.Module(name="count")
    job = ir.Function(module, ir.FunctionType(ir.VoidType(), [I64P, I64]), name="job")
    e = Emitter(module, job, HOST_WIDTH)
    prm, j = job.args
    slot = e.at(prm, e.b.add(j, ir.Constant(I64, 1)))
    e.b.store(e.b.add(e.b.load(slot), ir.Constant(I64, 1)), slot)
    e.b.ret_void()
    job_driver(module, "drive", job, 0, HOST_WIDTH)
    mod = engine.compile_ir("test_count", str(module))
    fn = ctypes.CFUNCTYPE(ctypes.c_int64, *[ctypes.c_void_p] * 2, ctypes.c_int64,
                          ctypes.c_void_p)(mod.address("drive"))
    prm = np.zeros(1 + 50, np.int64)
    prm[0] = 50
    ctrl, flags = np.zeros(4, np.int64), np.zeros(8, np.int64)
    fn(ctrl.ctypes.data, flags.ctypes.data, 7, prm.ctypes.data)
    assert flags[0] == 7 and ctrl[1] == 50
    np.testing.assert_array_equal(prm[1:], np.ones(50, np.int64))


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("shape,channels", [((2, 3, 5, 19, 0), 37), ((1, 1, 1, 1, 0), 1),
                                            ((1, 2, 4, 33, 0), 32)])
def test_unblock_driver(shape, channels, width, nthreads):
    from pyflame_rt.backends.cpu.codegen.llvm.conv import UNBLOCK, unblock_module
    from pyflame_rt.backends.cpu.conv.nchwc import _Driver

    n, cb, h, w, _ = shape
    channels = min(channels, cb * width)
    mod = engine.compile_ir(f"nchwc_unblock_{width}", unblock_module(width))
    driver = _Driver(mod.address("nchwc_unblock"), mod)
    xb = RNG.standard_normal((n, cb, h, w, width)).astype(np.float32)
    out = np.full((n, channels, h, w), np.nan, np.float32)
    prm = np.zeros(len(UNBLOCK), np.int64)
    vals = {"xb": xb.ctypes.data, "y": out.ctypes.data, "n": n, "c": channels, "h": h,
            "w": w, "cbt": cb, "nrb": 2, "rpb": -(-h // 2), "njobs": n * cb * 2}
    for k, v in vals.items():
        prm[UNBLOCK[k]] = v
    with threads.thread_limit(nthreads):
        threads.run_parallel(driver, prm)
    expected = xb.transpose(0, 1, 4, 2, 3).reshape(n, cb * width, h, w)[:, :channels]
    np.testing.assert_array_equal(out, expected)
