"""The CPU threading policy: the spinning worker pool, BLAS limits, the numba cache dir."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from models_util import mlp_model

import pyflame_rt as ort
from pyflame_rt.backends.cpu import threads
from pyflame_rt.backends.cpu.codegen import jit, par


def _parts(n: int, per: int) -> np.ndarray:
    return np.array([(a, min(n, a + per)) for a in range(0, n, per)], np.int64)


@pytest.mark.parametrize("nthreads", [1, 2, 3])
def test_run_parallel_does_every_job_once(nthreads):
    y = np.linspace(-4, 4, 10_000).astype(np.float32)
    expected = np.maximum(y, 0)
    with threads.thread_limit(nthreads):
        assert threads.current_threads() == nthreads
        for _ in range(20):  # back to back: the workers stay awake between tasks
            z = y.copy()
            par.run("activation", _parts(z.size, 97), z, 1, 0.0, 0.0)
            np.testing.assert_array_equal(z, expected)
    assert threads.current_threads() == 1


def test_outside_a_run_kernels_run_on_the_caller():
    z = np.array([-1.0, 2.0], np.float32)
    par.run("activation", _parts(2, 1), z, 1, 0.0, 0.0)
    np.testing.assert_array_equal(z, [0.0, 2.0])


def test_sessions_can_run_concurrently_from_several_threads():
    sess = ort.InferenceSession(mlp_model().SerializeToString())
    ref = ort.InferenceSession(mlp_model().SerializeToString())
    x = np.random.default_rng(0).standard_normal((64, 4)).astype(np.float32)
    expected = ref.run(None, {"x": x})[0]
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(30):
                np.testing.assert_allclose(sess.run(None, {"x": x})[0], expected, rtol=1e-5,
                                           atol=1e-6)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(3)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, errors[0]


def test_thread_limit_makes_blas_single_threaded_and_restores_it():
    before = threads._get_blas()
    with threads.thread_limit(2):
        assert threads._get_blas() == 1
        with threads.thread_limit(1):
            assert threads._get_blas() == 1
        assert threads.current_threads() == 2
    assert threads._get_blas() == before


def test_a_busy_pool_makes_the_caller_do_the_work():
    pool = threads.get_pool(2)
    assert pool._busy.acquire(blocking=False)
    try:
        assert not pool.run(par._nb.DRIVERS["activation"], ())
        z = np.array([-3.0, 3.0], np.float32)
        with threads.thread_limit(2):
            par.run("activation", _parts(2, 1), z, 1, 0.0, 0.0)  # falls back to the caller
        np.testing.assert_array_equal(z, [0.0, 3.0])
    finally:
        pool._busy.release()


def test_physical_cores_and_default_threads():
    assert 1 <= threads.physical_cores() <= (threads.os.cpu_count() or 1)
    assert threads.default_num_threads() == threads.physical_cores()
    with threads.thread_limit(0):
        assert threads.current_threads() == threads.default_num_threads()


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PYFLAME_RT_CACHE_DIR", str(tmp_path))
    assert threads.cache_dir() == tmp_path
    monkeypatch.delenv("PYFLAME_RT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert threads.cache_dir() == tmp_path / "pyflame_rt"


def test_numba_cache_dir_is_user_writable():
    import os

    import numba

    # Set before numba was imported (or straight into its config when it already was).
    configured = os.environ.get("NUMBA_CACHE_DIR") or numba.config.CACHE_DIR
    assert configured


def test_cold_compile_is_announced_once(caplog, tmp_path, monkeypatch):
    class FakeCacheFile:
        _index_path = str(tmp_path / "missing.nbi")

    class FakeCache:
        _cache_file = FakeCacheFile()

    class FakeDispatcher:
        _cache = FakeCache()

    monkeypatch.setattr(jit, "_announced", False)
    with caplog.at_level("WARNING", logger="pyflame_rt"):
        jit.announce_if_cold(FakeDispatcher())
        jit.announce_if_cold(FakeDispatcher())
    assert sum("compiling CPU kernels" in r.message for r in caplog.records) == 1
    # Nothing is said when the kernel is already on disk.
    (tmp_path / "missing.nbi").write_text("")
    monkeypatch.setattr(jit, "_announced", False)
    caplog.clear()
    with caplog.at_level("WARNING", logger="pyflame_rt"):
        jit.announce_if_cold(FakeDispatcher())
    assert not caplog.records


def test_lazy_import_defers_the_module():
    import sys

    name = "pyflame_rt.backends.cpu.codegen._nb_vmath"
    module = jit.lazy_import(name)
    assert sys.modules[name] is module
    assert callable(module.exp32)
