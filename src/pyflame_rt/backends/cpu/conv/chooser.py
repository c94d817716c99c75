"""Pick a convolution tactic: by measurement on the real shape (TensorRT's idea), remembered.

For a geometry the chooser times every applicable tactic on random data of that shape (best
of a few runs after a warm-up), drops those whose result disagrees with the reference
tactic, and keeps the fastest. Choices go to a JSON timing cache in the user cache directory
(:func:`..threads.cache_dir`), keyed by CPU model, thread count and the geometry, so the next
build of the same model does no timing at all. Small convolutions (below
:data:`TIMING_MIN_FLOPS`) and sessions that turn timing off use :func:`heuristic`.

Settings (session config entries, or environment variables of the same meaning):

* ``session.pyflame.conv_tactic`` / ``PYFLAME_RT_CONV_TACTIC``: force one tactic (a label
  such as ``im2col``, ``winograd:4``) wherever it applies; for tests and benchmarks.
* ``session.pyflame.tactic_timing`` / ``PYFLAME_RT_TACTIC_TIMING``: ``0`` picks by heuristic
  without timing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import threads
from .geometry import ConvGeometry
from .tactics import Epilogue, PackedWeights, Tactic, applicable_tactics, build

__all__ = ["TIMING_MIN_FLOPS", "TimingCache", "choose", "heuristic", "timing_cache"]

_log = logging.getLogger("pyflame_rt")

#: Convolutions cheaper than this (per image) are not worth timing.
TIMING_MIN_FLOPS = 20_000_000
#: Relative error (max |diff| / max |reference|) a tactic may show against the reference.
TOLERANCE = 2e-4
#: Timing cache format; bump when tactics change meaning (4: the ``nchwc`` tactic).
_FORMAT = 4


@functools.cache
def cpu_signature() -> str:
    """CPU model and vector extensions: choices measured on one CPU do not apply to another."""
    model, flags = "unknown", ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, val = line.partition(":")
                if key.strip() == "model name" and model == "unknown":
                    model = val.strip()
                elif key.strip() == "flags" and not flags:
                    flags = " ".join(sorted(v for v in val.split()
                                            if v.startswith(("avx", "fma", "sse4"))))
    except OSError:
        pass
    digest = hashlib.sha1(f"{model}|{flags}|{np.__version__}".encode()).hexdigest()[:12]
    return f"{model} [{digest}]"


class TimingCache:
    """Tactic choices by key, persisted as JSON (atomic writes; unreadable files ignored)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, str] = {}
        self._dirty = False
        try:
            data = json.loads(path.read_text())
            if data.get("format") == _FORMAT and isinstance(data.get("entries"), dict):
                self._entries = {str(k): str(v) for k, v in data["entries"].items()}
        except (OSError, ValueError, AttributeError):
            pass

    def get(self, key: str) -> str | None:
        return self._entries.get(key)

    def put(self, key: str, label: str) -> None:
        with self._lock:
            if self._entries.get(key) != label:
                self._entries[key] = label
                self._dirty = True

    def save(self) -> None:
        """Write the file if anything changed (merging entries another process wrote)."""
        with self._lock:
            if not self._dirty:
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    data = json.loads(self.path.read_text())
                    # Entries of another format were measured with other tactics: dropped.
                    old = data.get("entries", {}) if data.get("format") == _FORMAT else {}
                except (OSError, ValueError, AttributeError):
                    old = {}
                merged = {**old, **self._entries}
                fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tactics-")
                with os.fdopen(fd, "w") as f:
                    json.dump({"format": _FORMAT, "cpu": cpu_signature(),
                               "entries": merged}, f, indent=0, sort_keys=True)
                os.replace(tmp, self.path)
                self._dirty = False
            except OSError as exc:  # a read-only home must not break a session
                _log.info("pyflame_rt: cannot write the timing cache %s: %s", self.path, exc)


_caches: dict[Path, TimingCache] = {}
_caches_lock = threading.Lock()


def timing_cache() -> TimingCache:
    """The process-wide timing cache of this CPU."""
    digest = hashlib.sha1(cpu_signature().encode()).hexdigest()[:16]
    path = threads.cache_dir() / f"conv-tactics-{digest}.json"
    with _caches_lock:
        cache = _caches.get(path)
        if cache is None:
            cache = _caches[path] = TimingCache(path)
    return cache


def _setting(options: Mapping[str, Any], key: str, env: str) -> str | None:
    value = options.get(key)
    if value is None:
        value = os.environ.get(env)
    return None if value is None else str(value)


def forced_tactic(options: Mapping[str, Any]) -> str | None:
    """The tactic label a session forces (config entry or environment), if any."""
    return _setting(options, "session.pyflame.conv_tactic", "PYFLAME_RT_CONV_TACTIC") or None


def heuristic(geo: ConvGeometry, nthreads: int = 1) -> Tactic:
    """The tactic to use without measuring (rules drawn from the measurements)."""
    if geo.pointwise:
        return Tactic("gemm")
    if geo.depthwise and geo.kh * geo.kw > 1:
        return Tactic("depthwise")
    if not geo.depthwise:
        from .nchwc import nchwc_chunks, nchwc_supported, vector_width

        # With AVX-512 the blocked direct kernel beat the other tactics on ResNet-50's
        # strided and small-image 3x3 layers and the 7x7 stem, not on the large 3x3
        # stride-1 ones (Winograd F(4x4)); 1x1 layers stay GEMMs unless timed.
        big_winograd = (geo.kh == geo.kw == 3 and geo.sh == geo.sw == 1 and geo.dh == geo.dw
                        == 1 and geo.g == 1 and geo.n * geo.p >= 56 * 56 and geo.c >= 16)
        if vector_width() == 16 and nchwc_supported(geo) and not big_winograd:
            return Tactic("nchwc", nchwc_chunks(geo)[-1])
    winograd = (geo.kh == geo.kw == 3 and geo.sh == geo.sw == 1 and geo.dh == geo.dw == 1
                and geo.g == 1 and geo.c >= 16 and geo.m >= 16)
    if winograd and geo.n * geo.p >= 28 * 28:
        return Tactic("winograd", 4)
    if winograd and geo.n * geo.p >= 14 * 14:
        return Tactic("winograd", 2)
    if geo.p <= 256 and (nthreads == 1 or geo.n * geo.g >= nthreads):
        return Tactic("im2col_full")
    return Tactic("im2col")


def _random_input(geo: ConvGeometry) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.standard_normal((geo.n, geo.c, geo.h, geo.w), dtype=np.float32)


def _time(run: Any, x: np.ndarray, bias: np.ndarray, budget: float) -> tuple[float, np.ndarray]:
    y = run(x, bias, None)  # warm-up: compiles kernels, touches buffers
    best = float("inf")
    start = time.perf_counter()
    for i in range(7):
        t0 = time.perf_counter()
        run(x, bias, None)
        best = min(best, time.perf_counter() - t0)
        if i >= 2 and time.perf_counter() - start > budget:
            break
    return best, y


def measure(geo: ConvGeometry, pack: PackedWeights, nthreads: int,
            candidates: list[Tactic] | None = None) -> dict[str, float]:
    """Seconds per call of each candidate that agrees with the reference (inf otherwise)."""
    candidates = candidates or applicable_tactics(geo)
    x = _random_input(geo)
    bias = np.zeros(0, np.float32)
    epi = Epilogue()
    results: dict[str, float] = {}
    with threads.thread_limit(nthreads):
        ref_run = build(Tactic("reference"), geo, pack, epi, nthreads)
        ref_time, ref = _time(ref_run, x, bias, 0.05)
        scale = float(np.max(np.abs(ref))) or 1.0
        results["reference"] = ref_time
        for tactic in candidates:
            if tactic.name == "reference":
                continue
            try:
                run = build(tactic, geo, pack, epi, nthreads)
                seconds, y = _time(run, x, bias, max(0.02, 3 * ref_time))
            except Exception as exc:  # noqa: BLE001 - a failing tactic is just not chosen
                _log.info("pyflame_rt: conv tactic %s failed on %s: %s", tactic.label,
                          geo.key(), exc)
                results[tactic.label] = float("inf")
                continue
            err = float(np.max(np.abs(y - ref))) / scale
            results[tactic.label] = seconds if err <= TOLERANCE else float("inf")
            if err > TOLERANCE:
                _log.info("pyflame_rt: conv tactic %s rejected on %s: relative error %.2e",
                          tactic.label, geo.key(), err)
    return results


def choose(geo: ConvGeometry, pack: PackedWeights, nthreads: int,
           options: Mapping[str, Any]) -> Tactic:
    """The tactic for ``geo``: forced, cached, measured, or by heuristic (in that order)."""
    applicable = applicable_tactics(geo)
    forced = forced_tactic(options)
    if forced:
        for t in applicable:
            if t.label == forced or (t.name == forced and ":" not in forced):
                return t
        return heuristic(geo, nthreads)
    timing = _setting(options, "session.pyflame.tactic_timing", "PYFLAME_RT_TACTIC_TIMING")
    if timing == "0" or geo.with_batch(1).flops < TIMING_MIN_FLOPS:
        return heuristic(geo, nthreads)
    cache = timing_cache()
    key = f"{geo.key()}|n{min(geo.n, 8)}|t{nthreads}"
    label = cache.get(key)
    # "reference" is the accuracy yardstick, not a contender: it is timed without the
    # epilogue that it runs as separate numpy passes (a 1x1 conv with Clip: 1.5x slower than
    # its fused GEMM), so a cached "reference" (older rule) is measured again.
    if label is not None and label != "reference":
        tactic = Tactic.parse(label)
        if tactic in applicable:
            return tactic
    results = measure(geo.with_batch(min(geo.n, 8)), pack, nthreads, applicable)
    contenders = {k: v for k, v in results.items() if k != "reference" and v < float("inf")}
    best = min(contenders, key=contenders.get) if contenders else "reference"
    # Keep the rule-based choice unless another tactic is clearly faster: timings on a busy
    # machine are noisy, and the cache keeps the choice for good.
    default = heuristic(geo, nthreads).label
    if default in results and results[best] > 0.9 * results[default]:
        best = default
    cache.put(key, best)
    cache.save()
    return Tactic.parse(best)
