"""One threading policy for the CPU backend: our own worker pool, BLAS sized per step.

Measured on the 2-core development machine with other processes busy: OpenBLAS's own
threads (static partitioning, busy-waiting) made a 128x768x3072 sgemm 4-6x *slower* with two
threads than with one, and numba's OpenMP layer spinning against OpenBLAS made a small CNN
37x slower than ONNX Runtime. So the backend owns one policy:

* Kernels that parallelize themselves (convolutions, fused epilogues, pooling, the planner's
  GEMMs) cut their work into chunks that the calling thread and ``n - 1`` pool workers pull
  from a shared counter (:func:`parallel_for`). A worker that the OS deschedules holds up at
  most one chunk; nobody spins (workers block on a lock). Inside such kernels BLAS runs on one
  thread; numba code is compiled ``nogil`` and never uses numba's own threading layer.
* BLAS runs on one thread for the whole run (see :func:`thread_limit`): OpenBLAS workers
  busy-wait after a multi-threaded call and would take the pool's cores.

``intra_op_num_threads`` (0 = one thread per physical core) picks ``n`` per session; pools
are shared by sessions asking for the same ``n``, and a pool busy with another session's
kernel makes the caller run its chunks itself instead of waiting.

This module also points numba's on-disk cache at a user-writable directory
(``$PYFLAME_RT_CACHE_DIR/numba``, default ``~/.cache/pyflame_rt/numba``) before numba is
imported, so compiled kernels survive read-only installs.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "WorkerPool",
    "blas_threads",
    "cache_dir",
    "current_threads",
    "default_num_threads",
    "get_pool",
    "parallel_for",
    "physical_cores",
    "thread_limit",
]


def cache_dir() -> Path:
    """Where pyflame_rt keeps compiled code and timing caches (created on demand)."""
    root = os.environ.get("PYFLAME_RT_CACHE_DIR")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pyflame_rt"


def _configure_numba_cache() -> None:
    # numba reads NUMBA_CACHE_DIR when it is imported; if the user (or another library)
    # imported it already, set its config directly -- caching locators read it lazily.
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    path = str(cache_dir() / "numba")
    if "numba" in sys.modules:
        config = sys.modules["numba"].config
        if not getattr(config, "CACHE_DIR", ""):
            config.CACHE_DIR = path
    else:
        os.environ["NUMBA_CACHE_DIR"] = path


_configure_numba_cache()


@functools.cache
def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads counted once)."""
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        allowed = set(range(os.cpu_count() or 1))
    cores: set[tuple[str, str]] = set()
    try:
        cpu = phys = core = None
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in itertools.chain(f, [""]):
                key, _, val = line.partition(":")
                key, val = key.strip(), val.strip()
                if key == "processor":
                    cpu = int(val)
                elif key == "physical id":
                    phys = val
                elif key == "core id":
                    core = val
                elif not key:
                    if cpu is not None and cpu in allowed:
                        cores.add((phys or "0", core if core is not None else str(cpu)))
                    cpu = phys = core = None
    except (OSError, ValueError):
        cores = set()
    return max(1, min(len(cores) or len(allowed), len(allowed)))


def default_num_threads() -> int:
    """The thread count used when a session asks for 0: one per physical core."""
    return physical_cores()


class _Task:
    """One ``map`` call: chunks are claimed from ``counter``; ``done`` is released by whoever
    completes the last one."""

    __slots__ = ("completed", "count", "counter", "done", "errors", "fn", "lock")

    def __init__(self, fn: Callable[[int], None], count: int) -> None:
        self.fn = fn
        self.count = count
        self.counter = itertools.count()
        self.completed = 0
        self.lock = threading.Lock()
        self.done = threading.Lock()
        self.done.acquire()
        self.errors: list[BaseException] = []

    def work(self) -> None:
        count, counter, fn = self.count, self.counter, self.fn
        while True:
            i = next(counter)  # atomic under the GIL: each chunk is claimed once
            if i >= count:
                return
            try:
                fn(i)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                self.errors.append(exc)
            with self.lock:
                self.completed += 1
                last = self.completed == count
            if last:
                self.done.release()


class WorkerPool:
    """``n - 1`` daemon threads that, with the caller, run the chunks of one task at a time.

    The caller never waits for a worker that has not started: it claims every chunk still
    unclaimed itself and then waits only for chunks a worker is running. So a worker that the
    OS has not scheduled yet (another process holds the core) costs nothing -- with a plain
    fork-join, every parallel kernel would wait a scheduler time slice for it (measured: a
    2-thread MobileNetV2 6x slower than 1 thread under load).
    """

    def __init__(self, num_threads: int) -> None:
        self.num_threads = max(1, int(num_threads))
        self._busy = threading.Lock()
        self._task: _Task | None = None
        self._wake: list[threading.Lock] = []
        for i in range(self.num_threads - 1):
            wake = threading.Lock()
            wake.acquire()
            t = threading.Thread(target=self._worker, args=(wake,), daemon=True,
                                 name=f"pyflame_rt-worker-{self.num_threads}-{i}")
            self._wake.append(wake)
            t.start()

    def map(self, fn: Callable[[int], None], count: int) -> None:
        """Call ``fn(i)`` for every ``i < count``, spread over the pool; re-raise the first
        exception. Runs serially in the caller when the pool is busy (another session)."""
        helpers = min(len(self._wake), count - 1)
        if helpers <= 0 or not self._busy.acquire(blocking=False):
            for i in range(count):
                fn(i)
            return
        try:
            task = _Task(fn, count)
            self._task = task
            for wake in self._wake[:helpers]:
                # A lock used as a wake-up token: only this thread releases it, so checking
                # first never releases an unlocked lock (a worker not yet awake keeps its
                # token and will find the current task, or nothing left to do).
                if wake.locked():
                    wake.release()
            task.work()
            task.done.acquire()
            self._task = None
        finally:
            self._busy.release()
        if task.errors:
            raise task.errors[0]

    def _worker(self, wake: threading.Lock) -> None:
        while True:
            wake.acquire()
            task = self._task
            if task is not None:
                task.work()


_pools: dict[int, WorkerPool] = {}
_pools_lock = threading.Lock()
_local = threading.local()


def get_pool(num_threads: int) -> WorkerPool:
    """The process-wide pool of ``num_threads`` threads (0 = :func:`default_num_threads`)."""
    n = num_threads if num_threads > 0 else default_num_threads()
    pool = _pools.get(n)
    if pool is None:
        with _pools_lock:
            pool = _pools.get(n)
            if pool is None:
                pool = _pools[n] = WorkerPool(n)
    return pool


def current_threads() -> int:
    """Threads available to a kernel running now on this thread (1 outside a session run)."""
    pool = getattr(_local, "pool", None)
    return pool.num_threads if pool is not None else 1


def parallel_for(count: int, fn: Callable[[int], None]) -> None:
    """Run ``fn(i)`` for ``i`` in ``range(count)`` on the running session's threads.

    ``fn`` must be safe to call concurrently for different ``i`` (disjoint outputs) and should
    spend its time in code that releases the GIL (numpy, BLAS, ``nogil`` numba).
    """
    pool = getattr(_local, "pool", None)
    if pool is None or count <= 1:
        for i in range(count):
            fn(i)
        return
    if getattr(_local, "blas", None) == 1:
        pool.map(fn, count)
        return
    with blas_threads(1):
        pool.map(fn, count)


# -- BLAS thread count --------------------------------------------------------------------------

@functools.cache
def _blas_controllers() -> tuple:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return ()
    import numpy  # noqa: F401 - threadpoolctl only sees libraries already loaded

    return tuple(ThreadpoolController().select(user_api="blas").lib_controllers)


def _set_blas(n: int) -> None:
    for lib in _blas_controllers():
        lib.set_num_threads(n)


def _get_blas() -> int:
    libs = _blas_controllers()
    return libs[0].get_num_threads() if libs else 1


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """Run the block with BLAS limited to ``n`` threads, then restore the previous count."""
    prev = getattr(_local, "blas", None)
    if prev is None:
        prev = _get_blas()
    if prev == n:
        yield
        return
    _set_blas(n)
    _local.blas = n
    try:
        yield
    finally:
        _set_blas(prev)
        _local.blas = prev


@contextlib.contextmanager
def thread_limit(num_threads: int) -> Iterator[None]:
    """The threading scope of one session run: our pool of ``num_threads`` threads (0 = one
    per physical core) for the kernels, and BLAS on one thread.

    BLAS stays single-threaded inside runs because an OpenBLAS call with several threads
    leaves its workers busy-waiting for new work for a long while afterwards (measured: the
    pool's worker then shares its core with a spinning BLAS thread, and a 2-thread DenseNet
    ran slower than a 1-thread one); every BLAS-heavy kernel of the backend splits its own
    work over the pool instead. The previous BLAS thread count is restored on exit.
    """
    pool = get_pool(num_threads)
    prev_pool = getattr(_local, "pool", None)
    prev_blas = getattr(_local, "blas", None)
    outer = _get_blas() if prev_blas is None else prev_blas
    _local.pool = pool
    if outer != 1:
        _set_blas(1)
    _local.blas = 1
    try:
        yield
    finally:
        _local.pool = prev_pool
        if outer != 1:
            _set_blas(outer)
        _local.blas = prev_blas
