"""One threading policy for the CPU backend: our own spinning worker pool, BLAS on one thread.

Measured on the 2-core development VM:

* OpenBLAS's own threads (static partitioning, busy-waiting) made a 128x768x3072 sgemm 4-6x
  *slower* with two threads than with one while another process was busy, and after any
  multi-threaded call their busy-waiting takes a core from whatever runs next.
* Handing a job to a Python thread costs a GIL hand-off plus a wake-up of a sleeping vCPU:
  ~100 us per parallel section, as much as a small convolution.
* OpenMP-style fork/join (numba's ``prange``, OpenMP layer) costs ~2 us while its threads
  spin, but its closing barrier waits for every thread: ~8 ms per section whenever another
  process holds a core (the OS time slice).

So: every parallel kernel is a numba *driver* (``codegen/_nb_par.py``) that does whole jobs
(gather, cblas ``sgemm`` on one thread, epilogue) without the GIL; :class:`WorkerPool` calls
it on the caller and ``n - 1`` workers at once; threads claim job numbers with an atomic
counter, and the caller waits only for jobs that a worker has actually started. Workers
spin (without the GIL) for ~200 us after each task before sleeping, so kernels hand over in
microseconds while the session is busy and idle sessions cost nothing. numba's own threading
layer is never used. BLAS runs on one thread during runs (:func:`thread_limit`).

``intra_op_num_threads`` (0 = one thread per physical core) picks ``n`` per session; pools
are shared by sessions asking for the same ``n``, and a pool busy with another session's
kernel makes the caller run all the jobs itself instead of waiting.

This module also points numba's on-disk cache at a user-writable directory
(``$PYFLAME_RT_CACHE_DIR/numba/<digest of the kernel sources>``, default under
``~/.cache/pyflame_rt``) before numba is imported, so compiled kernels survive read-only
installs and a changed kernel never reuses stale code.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

__all__ = [
    "WorkerPool",
    "blas_threads",
    "cache_dir",
    "current_threads",
    "default_num_threads",
    "get_pool",
    "physical_cores",
    "run_parallel",
    "thread_limit",
]


def cache_dir() -> Path:
    """Where pyflame_rt keeps compiled code and timing caches (created on demand)."""
    root = os.environ.get("PYFLAME_RT_CACHE_DIR")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pyflame_rt"


def _kernel_sources_digest() -> str:
    """A digest of the numba kernel sources. numba invalidates a cached function only when
    its own file changes, not when a kernel it calls (in another file) does; a cache
    directory per version of the sources keeps stale machine code from ever being loaded."""
    import hashlib

    digest = hashlib.sha1()
    folder = Path(__file__).parent / "codegen"
    try:
        for path in sorted(folder.glob("_nb_*.py")):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    except OSError:
        return "unknown"
    return digest.hexdigest()[:12]


def _configure_numba_cache() -> None:
    # numba reads NUMBA_CACHE_DIR when it is imported; if the user (or another library)
    # imported it already, set its config directly -- caching locators read it lazily.
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    path = str(cache_dir() / "numba" / _kernel_sources_digest())
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


class WorkerPool:
    """``n - 1`` worker threads that run numba *drivers* (``codegen/_nb_par.py``) with the
    caller: everybody calls the same driver with the same arguments and claims jobs from
    its control array; the caller waits only for jobs a worker has started.

    Workers wait for work by spinning without the GIL (``codegen/_nb_sync.py``) for about
    :data:`SPIN_SECONDS` after each task, then sleep on a lock: back-to-back kernels hand
    over in microseconds, an idle session costs nothing, and a worker the OS has not
    scheduled (another process holds its core) delays nobody. A worker preempted in the
    middle of a job still makes the caller wait, and a spinning worker competes with the
    caller when other processes hold the cores: when waiting for workers exceeds a
    quarter of the caller's time (moving average), the pool runs the next tasks on the
    caller alone (as fast as one thread, not slower), then tries its workers again.
    """

    def __init__(self, num_threads: int) -> None:
        self.num_threads = max(1, int(num_threads))
        self.flags = np.zeros(8, np.int64)  # [0]: generation of the published task
        self._gen = 0
        self._busy = threading.Lock()
        self._task: tuple | None = None
        self._lag = 0.0  # moving average of the caller's waiting share
        self._backoff_until = 0.0  # perf_counter() before which the caller runs alone
        self._wake: list[threading.Lock] = []
        self.errors: list[BaseException] = []
        if self.num_threads > 1:
            # Load the kernel modules here, before any worker starts: a worker importing a
            # lazily loaded module while the caller reads it races in CPython 3.11's lazy
            # loader (AttributeError on a half-initialised module).
            from .codegen import kernels

            with contextlib.suppress(Exception):  # no numba: the caller runs every job
                kernels("sync").spin_until_changed  # noqa: B018
                kernels("par").mark_done  # noqa: B018
        for i in range(self.num_threads - 1):
            wake = threading.Lock()
            wake.acquire()
            t = threading.Thread(target=self._worker, args=(wake,), daemon=True,
                                 name=f"pyflame_rt-worker-{self.num_threads}-{i}")
            self._wake.append(wake)
            t.start()

    def run(self, driver: Callable[..., int], args: tuple) -> bool:
        """Run ``driver(ctrl, flags, gen, *args)`` on every thread; False (nothing run) when
        the pool is busy with another session's kernel, or while it is backing off."""
        if self._backoff_until:
            # Recently the caller spent much of its time waiting for workers that other
            # processes had preempted: run on the caller alone for a while (as fast as one
            # thread, instead of slower), then try the workers again.
            if time.perf_counter() < self._backoff_until:
                return False
            self._backoff_until = 0.0
        if not self._busy.acquire(blocking=False):
            return False
        try:
            ctrl = np.zeros(4, np.int64)
            self._gen += 1
            task = (driver, ctrl, args, [])
            self._task = task
            for wake in self._wake:
                # A lock used as a wake-up token: only this thread releases it, so checking
                # first never releases an unlocked lock.
                if wake.locked():
                    wake.release()
            start = time.perf_counter()
            spins = driver(ctrl, self.flags, self._gen, *args)
            self._observe(spins, time.perf_counter() - start)
        finally:
            self._busy.release()
        errors = task[3]
        if errors:
            raise errors[0]
        return True

    def _observe(self, spins: int, seconds: float) -> None:
        """Track the share of the caller's time spent waiting for workers that have not
        finished their jobs (spinning, so counted by the driver): high when other processes
        preempt the workers.

        The caller's own CPU time is deliberately not used: it also drops while the caller
        waits for the GIL or for a worker's hand-over, and counting that as "preempted" made
        the pool back off on a quiet machine (measured: ResNet-50 at 2 threads ran at
        one-thread speed, 1.7x slower, in benchmarks/compare.py)."""
        if seconds <= 1e-4:
            return  # too short to tell
        waited = spins * _spin_seconds() / seconds
        self._lag = 0.9 * self._lag + 0.1 * min(1.0, waited)
        if self._lag > _LAG_LIMIT:
            # A time, not a task count: 200 tasks were ~2.4 whole BERT batch-8 runs on one
            # thread after any busy moment; the load that caused the lag rarely lasts long.
            self._backoff_until = time.perf_counter() + _BACKOFF_SECONDS
            self._lag = 0.0

    def _worker(self, wake: threading.Lock) -> None:
        from .codegen import kernels

        try:
            sync = kernels("sync")
            par = kernels("par")
            sync.spin_until_changed  # noqa: B018 - import numba now, in this thread
        except Exception:  # noqa: BLE001 - no numba: the caller runs every job itself
            return
        seen = 0
        while True:
            if not sync.spin_until_changed(self.flags, 0, seen, _spins()):
                wake.acquire()
            gen = int(self.flags[0])
            task = self._task
            if task is None or gen == seen:
                continue
            seen = gen
            driver, ctrl, args, errors = task
            try:
                driver(ctrl, self.flags, 0, *args)
            except BaseException as exc:  # noqa: BLE001 - the caller re-raises it
                errors.append(exc)
                par.mark_done(ctrl)  # the job it claimed will not finish: do not wait for it


#: How long a worker spins for the next task before sleeping.
SPIN_SECONDS = 200e-6
#: Waiting share (moving average) above which the pool backs off, and for how long (s).
_LAG_LIMIT = 0.25
_BACKOFF_SECONDS = 0.03


@functools.cache
def _spin_seconds() -> float:
    """Seconds one spin iteration (an atomic load and a ``pause``) takes on this CPU.

    The fastest of several short measurements: being preempted only ever makes one slower,
    and a single long measurement taken while another process held the core (e.g. during
    a benchmark's start-up) overestimated it, which made every later wait look long and the
    pool back off for the rest of the process (measured: ResNet-50 ran at one-thread speed).
    """
    from .codegen import kernels

    sync = kernels("sync")
    sync.spin_count(100)
    n = 2000
    best = float("inf")
    for _ in range(9):
        t0 = time.perf_counter()
        sync.spin_count(n)
        best = min(best, (time.perf_counter() - t0) / n)
    return max(best, 1e-9)


@functools.cache
def _spins() -> int:
    """Spin iterations that last about :data:`SPIN_SECONDS`."""
    return max(1000, int(SPIN_SECONDS / _spin_seconds()))


_NO_FLAGS = np.zeros(8, np.int64)  # flags of a driver run without workers (gen = 0)
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


def run_parallel(driver: Callable[..., None], *args: object) -> None:
    """Run a numba driver (``codegen/_nb_par.py``) on the running session's threads.

    Outside a session run, with one thread, or while another session uses the pool, the
    caller runs every job itself.
    """
    pool = getattr(_local, "pool", None)
    if pool is not None and pool.num_threads > 1 and pool.run(driver, args):
        return
    driver(np.zeros(4, np.int64), _NO_FLAGS, 0, *args)


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
