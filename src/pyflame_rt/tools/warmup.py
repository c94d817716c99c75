"""``pyflame-rt warmup``: compile the CPU kernels (and time a model's tactics) ahead of time.

The CPU backend's numba kernels compile on their first use (half a minute in all on a
2-core machine) and are then loaded from an on-disk cache in well under a second; a
convolution's tactic is chosen by timing the candidates on its real shape the first time
that shape runs, and remembered in a timing cache. Both caches live in the user cache
directory (``$PYFLAME_RT_CACHE_DIR``, default ``~/.cache/pyflame_rt``). This command pays
those one-time costs up front (in a Docker build step, say), with a progress bar, so that
the first session of a service starts warm.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidArgumentError
from .common import progress

__all__ = ["ModelWarmup", "WarmupResult", "warmup"]


@dataclass
class ModelWarmup:
    """A model built and run once, so its per-shape plans and tactic choices were made."""

    path: str
    inputs: dict[str, list[int]]
    build_ms: float
    first_run_ms: float


@dataclass
class WarmupResult:
    """What ``pyflame-rt warmup`` did."""

    kernel_seconds: dict[str, float]  # kernel module -> seconds to compile (or load)
    numba_cache_dir: str
    timing_cache: str
    models: list[ModelWarmup] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def total_kernel_seconds(self) -> float:
        return sum(self.kernel_seconds.values())

    def to_dict(self) -> dict[str, Any]:
        return {"kernel_modules": self.kernel_seconds,
                "kernel_seconds": self.total_kernel_seconds,
                "numba_cache_dir": self.numba_cache_dir, "timing_cache": self.timing_cache,
                "models": [{"model": m.path, "inputs": m.inputs, "build_ms": m.build_ms,
                            "first_run_ms": m.first_run_ms} for m in self.models],
                "notes": self.notes}

    def format(self) -> str:
        lines = [(f"kernels      : {len(self.kernel_seconds)} kernel modules ready in "
                  f"{self.total_kernel_seconds:.1f} s")]
        lines += [f"  {name:<14} {sec:7.2f} s" for name, sec in self.kernel_seconds.items()]
        lines.append(f"kernel cache : {self.numba_cache_dir}")
        for m in self.models:
            shapes = ", ".join(f"{k}{v}" for k, v in m.inputs.items())
            lines.append(f"model        : {m.path} ({shapes}): built in {m.build_ms:.1f} ms, "
                         f"first run {m.first_run_ms:.1f} ms")
        if self.models:
            lines.append(f"tactic cache : {self.timing_cache}")
        return "\n".join(lines)


class _NoColdNotice(logging.Filter):
    """Drops the backend's "compiling kernels on first use, run pyflame-rt warmup" notice
    while this very command compiles them (its progress bar says so already)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pyflame-rt warmup" not in str(record.msg)


def _numba_cache_dir() -> str:
    import numba

    return str(getattr(numba.config, "CACHE_DIR", "") or os.environ.get("NUMBA_CACHE_DIR", ""))


def _timing_cache_path() -> str:
    from ..backends.cpu.conv.chooser import timing_cache

    return str(timing_cache().path)


def warmup(models: Sequence[str] = (), *, shape_items: Sequence[str] = (),
           input_items: Sequence[str] = (), level: str = "all", threads: int = 0,
           seed: int = 0) -> WarmupResult:
    """Compile every numba kernel into the on-disk cache, then build and run each model once.

    Args:
        models: ``.onnx``/``.pfm`` files to build and run once, so that their convolution
            tactics are timed on the real shapes and stored in the timing cache.
        shape_items: ``NAME:DIMS`` shapes for the models' free dims (else 1).
        input_items: ``NAME=FILE`` inputs (``.npy``/``.npz``) instead of random data.
        level: Optimization level of the sessions (the one you will serve with).
        threads: ``intra_op_num_threads`` of the sessions (tactics are timed per thread
            count, so use the serving value).
        seed: Seed of the random inputs.
    """
    from ..backends.cpu.codegen.jit import KERNEL_MODULES
    from ..backends.cpu.codegen.jit import warmup as compile_kernels

    for path in models:
        if not os.path.isfile(path):
            raise InvalidArgumentError(f"--model {path!r}: no such file")
    seconds: dict[str, float] = {}
    names = [m.removeprefix("_nb_") for m in KERNEL_MODULES] + ["nchwc"]
    bar = progress(total=len(names), desc="compiling kernels", unit="module")
    quiet = _NoColdNotice()
    logging.getLogger("pyflame_rt").addFilter(quiet)
    try:
        bar.set_postfix_str(names[0])

        def done(module: str, spent: float) -> None:
            seconds[module.removeprefix("_nb_")] = spent
            if len(seconds) < len(names):  # the module being compiled now
                bar.set_postfix_str(names[len(seconds)])
            bar.update(1)

        compile_kernels(done)
    finally:
        logging.getLogger("pyflame_rt").removeFilter(quiet)
        bar.close()
    result = WarmupResult(seconds, _numba_cache_dir(), _timing_cache_path())
    for path in progress(models, desc="building models", unit="model"):
        result.models.append(_warm_model(path, shape_items, input_items, level, threads, seed,
                                         result.notes))
    return result


def _warm_model(path: str, shape_items: Sequence[str], input_items: Sequence[str], level: str,
                threads: int, seed: int, notes: list[str]) -> ModelWarmup:
    import numpy as np

    from .. import InferenceSession, SessionOptions
    from .common import make_feeds

    options = SessionOptions()
    options.graph_optimization_level = level
    options.intra_op_num_threads = threads
    start = time.perf_counter()
    session = InferenceSession(path, options)
    build_ms = (time.perf_counter() - start) * 1e3
    feeds: Mapping[str, Any] = make_feeds(session.get_inputs(), input_items, shape_items,
                                          seed=seed, notes=notes)
    start = time.perf_counter()
    session.run(None, feeds)
    first_ms = (time.perf_counter() - start) * 1e3
    return ModelWarmup(path, {k: list(np.shape(v)) for k, v in feeds.items()}, build_ms,
                       first_ms)
