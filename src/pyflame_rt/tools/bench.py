"""``pyflame-rt bench``: trtexec-style latency measurement, optionally beside ONNX Runtime.

Both engines get the same feeds. With ONNX Runtime in the comparison the runs are interleaved
(ours, theirs, theirs, ours, ...) so that a noisy neighbour, turbo or thermal drift hits both
columns alike instead of whichever engine happened to run second. Peak memory cannot be told
apart that way (one process, one peak), so with a comparison each engine's peak RSS is
measured alone, in a fresh process that imports only that engine, builds and runs the same
feeds (:mod:`.rss`).
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError
from .common import ORT_LEVELS, peak_rss_bytes, progress

__all__ = ["BenchResult", "EngineStats", "benchmark", "latency_stats", "plot_latencies"]

#: Coefficient of variation (stdev / mean) above which the result gets a warning.
HIGH_VARIATION = 0.10

PERCENTILES = (90, 95, 99)


def latency_stats(times_ms: list[float]) -> dict[str, float]:
    """min/mean/median/p90/p95/p99/max/stdev of ``times_ms`` (nearest-rank percentiles)."""
    if not times_ms:
        raise ValueError("no timings")
    ordered = sorted(times_ms)
    stats = {"min": ordered[0], "mean": statistics.fmean(ordered),
             "median": statistics.median(ordered)}
    for p in PERCENTILES:
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        stats[f"p{p}"] = ordered[rank - 1]
    stats["max"] = ordered[-1]
    stats["stdev"] = statistics.stdev(ordered) if len(ordered) > 1 else 0.0
    return stats


@dataclass
class EngineStats:
    """One engine's numbers (times in milliseconds)."""

    name: str
    version: str
    build_ms: float
    first_run_ms: float
    latencies_ms: list[float] = field(default_factory=list)
    #: Peak RSS in bytes: measured alone in a fresh process when engines are compared, the
    #: bench process's own peak otherwise; ``None`` when the measurement failed.
    peak_rss_bytes: int | None = None

    @property
    def stats(self) -> dict[str, float]:
        return latency_stats(self.latencies_ms)

    @property
    def qps(self) -> float:
        """Inferences per second at the mean latency (one run at a time)."""
        mean = self.stats["mean"]
        return 1000.0 / mean if mean > 0 else float("inf")

    @property
    def variation(self) -> float:
        s = self.stats
        return s["stdev"] / s["mean"] if s["mean"] > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "build_ms": self.build_ms,
                "first_run_ms": self.first_run_ms, "iterations": len(self.latencies_ms),
                "latency_ms": self.stats, "throughput_qps": self.qps,
                "coefficient_of_variation": self.variation,
                "peak_rss_bytes": self.peak_rss_bytes}


@dataclass
class BenchResult:
    """What ``pyflame-rt bench`` measured."""

    model: str
    inputs: dict[str, tuple[list[int], str]]
    level: str
    threads: int
    warmup: int
    engines: list[EngineStats]
    peak_rss_bytes: int
    notes: list[str] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        out = []
        for e in self.engines:
            if len(e.latencies_ms) > 1 and e.variation > HIGH_VARIATION:
                out.append(
                    f"run-to-run variation of {e.name} is high (stdev {100 * e.variation:.0f}% "
                    "of the mean): other programs or CPU frequency changes disturb the "
                    "measurement; close them, raise --warmup/--iterations, or pin --threads")
        if any(len(e.latencies_ms) < 10 for e in self.engines):
            out.append("fewer than 10 timed runs: percentiles are rough; raise --iterations")
        return out

    def ratio(self, key: str) -> float | None:
        """ours / ONNX Runtime for a latency ``key`` (None without a comparison)."""
        if len(self.engines) < 2:
            return None
        ours, theirs = self.engines[0].stats[key], self.engines[1].stats[key]
        return ours / theirs if theirs > 0 else None

    @property
    def rss_scope(self) -> str:
        """How the engines' ``peak_rss_bytes`` were measured."""
        if len(self.engines) > 1:
            return "each engine alone in a fresh process (import, build, runs)"
        return "this process (import, build, runs)"

    def rss_ratio(self) -> float | None:
        """ours / ONNX Runtime peak RSS (None without both numbers)."""
        if len(self.engines) < 2:
            return None
        ours, theirs = self.engines[0].peak_rss_bytes, self.engines[1].peak_rss_bytes
        return ours / theirs if ours and theirs else None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "model": self.model, "level": self.level, "threads": self.threads,
            "warmup": self.warmup,
            "inputs": {k: {"shape": s, "dtype": d} for k, (s, d) in self.inputs.items()},
            "engines": {e.name: e.to_dict() for e in self.engines},
            "peak_rss_bytes": self.peak_rss_bytes, "warnings": self.warnings,
            "notes": self.notes}
        data["peak_rss_scope"] = self.rss_scope
        if len(self.engines) > 1:
            data["ratio"] = {k: self.ratio(k) for k in ("min", "mean", "median", "p90", "p95",
                                                        "p99", "max")}
            data["ratio"]["peak_rss"] = self.rss_ratio()
            data["ratio_definition"] = "pyflame-rt time / onnxruntime time (< 1: faster)"
        return data

    def format(self) -> str:
        names = [e.name for e in self.engines]
        feeds = ", ".join(f"{k} {d}{s}" for k, (s, d) in self.inputs.items())
        lines = [f"model          : {self.model}",
                 f"inputs         : {feeds}",
                 f"level          : {self.level}; threads: {self.threads or 'default'}",
                 f"iterations     : {len(self.engines[0].latencies_ms)} timed after "
                 f"{self.warmup} warm-up"
                 + (" (engines interleaved)" if len(names) > 1 else "")]
        lines += [f"note           : {n}" for n in self.notes]
        cols = "".join(f"{n:>14}" for n in names) + ("       ratio" if len(names) > 1 else "")
        lines.append(f"{'':<18}{cols}")

        def row(label: str, values: list[float], unit: str, ratio: float | None) -> str:
            cells = "".join(f"{v:>14.3f}" for v in values)
            tail = f"{ratio:>11.2f}x" if ratio is not None else ""
            return f"{label:<14}{unit:>4}{cells}{tail}"

        def simple_ratio(a: float, b: float) -> float | None:
            return a / b if len(names) > 1 and b > 0 else None

        builds = [e.build_ms for e in self.engines]
        firsts = [e.first_run_ms for e in self.engines]
        lines.append(row("session build", builds, "ms", simple_ratio(*builds[:2])
                         if len(builds) > 1 else None))
        lines.append(row("first run", firsts, "ms", simple_ratio(*firsts[:2])
                         if len(firsts) > 1 else None))
        for key in ("min", "mean", "median", "p90", "p95", "p99", "max"):
            lines.append(row(f"latency {key}", [e.stats[key] for e in self.engines], "ms",
                             self.ratio(key)))
        qps = [e.qps for e in self.engines]
        lines.append(row("throughput", qps, "qps", simple_ratio(*qps[:2])
                         if len(qps) > 1 else None))
        rss = "".join(f"{e.peak_rss_bytes / 2**20:>14.1f}" if e.peak_rss_bytes else
                      f"{'n/a':>14}" for e in self.engines)
        rss_ratio = self.rss_ratio()
        lines.append(f"{'peak RSS':<14}{'MiB':>4}{rss}"
                     + (f"{rss_ratio:>11.2f}x" if rss_ratio is not None else ""))
        lines.append(f"{'':<18}(peak RSS: {self.rss_scope})")
        if len(names) > 1:
            lines.append("ratio = pyflame-rt / onnxruntime (times: below 1 means pyflame-rt is "
                         "faster; throughput: above 1 means it is)")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def _ort_session(model_bytes: bytes, level: str, threads: int, spinning: bool
                 ) -> tuple[Any, str]:
    try:
        import onnxruntime
    except ImportError:
        raise InvalidArgumentError(
            "--compare onnxruntime needs the onnxruntime package: pip install onnxruntime"
        ) from None
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = getattr(onnxruntime.GraphOptimizationLevel,
                                               ORT_LEVELS[level])
    if threads:
        options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(model_bytes, options,
                                           providers=["CPUExecutionProvider"])
    return session, onnxruntime.__version__


def benchmark(path: str, feeds: Mapping[str, np.ndarray] | None = None, *,
              input_items: tuple[str, ...] = (), shape_items: tuple[str, ...] = (),
              level: str = "all", threads: int = 0, warmup: int = 10,
              iterations: int | None = 100, duration: float | None = None,
              compare: str | None = None, seed: int = 0) -> BenchResult:
    """Benchmark the model at ``path``.

    Args:
        path: ``.onnx`` or ``.pfm`` model.
        feeds: Input arrays; when ``None`` they are read from ``input_items`` (``NAME=FILE``)
            or drawn at random with ``shape_items`` (``NAME:DIMS``) fixing free dims.
        level: Optimization level for both engines.
        threads: ``intra_op_num_threads`` for both engines (0 = their default).
        warmup: Untimed runs before timing (per engine).
        iterations: Timed runs per engine (when ``duration`` is not given).
        duration: Time budget in seconds for the timed runs instead of a fixed count.
        compare: ``"onnxruntime"`` to run ONNX Runtime interleaved.
        seed: Seed of the random feeds.
    """
    from .. import InferenceSession, SessionOptions, __version__
    from .common import load_onnx_proto, make_feeds

    if compare not in (None, "onnxruntime"):
        raise InvalidArgumentError(f"--compare {compare!r}: only 'onnxruntime' is supported")
    if iterations is not None and iterations < 1 and duration is None:
        raise InvalidArgumentError("--iterations must be >= 1")
    if duration is not None and duration <= 0:
        raise InvalidArgumentError("--duration must be > 0 seconds")
    if warmup < 0:
        raise InvalidArgumentError("--warmup must be >= 0")

    options = SessionOptions()
    options.graph_optimization_level = level
    options.intra_op_num_threads = threads
    start = time.perf_counter()
    ours = InferenceSession(path, options)
    engines = [EngineStats("pyflame-rt", __version__, (time.perf_counter() - start) * 1e3, 0.0)]
    notes: list[str] = []
    if feeds is None:
        feeds = make_feeds(ours.get_inputs(), input_items, shape_items, seed=seed, notes=notes)
    runners: list[Callable[[], Any]] = [lambda: ours.run(None, feeds)]
    if compare:
        proto = load_onnx_proto(path)
        start = time.perf_counter()
        # Interleaved, ORT's worker threads would keep spinning through our runs and take
        # the cores from us; with spinning off each engine has the machine to itself.
        theirs, version = _ort_session(proto.SerializeToString(), level, threads,
                                       spinning=False)
        notes.append("onnxruntime runs with session.intra_op.allow_spinning=0 so that its "
                     "idle threads do not spin through pyflame-rt's interleaved runs")
        engines.append(EngineStats("onnxruntime", version,
                                   (time.perf_counter() - start) * 1e3, 0.0))
        runners.append(lambda: theirs.run(None, dict(feeds)))

    for engine, run in zip(engines, runners):
        engine.first_run_ms = _timed(run)
    for _ in progress(range(warmup), desc="warm-up", unit="run"):
        for run in runners:
            run()

    i = 0
    deadline = None if duration is None else time.perf_counter() + duration
    total = None if deadline is not None else iterations
    bar = progress(total=total, desc="timing", unit="run")
    try:
        while True:
            if deadline is not None:
                if time.perf_counter() >= deadline and i > 0:
                    break
            elif i >= (iterations or 0):
                break
            # Alternate who goes first, so neither engine always runs on a cache the other
            # just warmed (or evicted).
            order = range(len(runners)) if i % 2 == 0 else reversed(range(len(runners)))
            for k in order:
                engines[k].latencies_ms.append(_timed(runners[k]))
            i += 1
            bar.update(1)
    finally:
        bar.close()

    process_peak = peak_rss_bytes()
    if compare:
        _measure_rss_apart(engines, path, proto, feeds, level, threads, notes)
    else:
        engines[0].peak_rss_bytes = process_peak
    shapes = {k: (list(np.shape(v)), str(np.asarray(v).dtype)) for k, v in feeds.items()}
    return BenchResult(model=path, inputs=shapes, level=level, threads=threads, warmup=warmup,
                       engines=engines, peak_rss_bytes=process_peak, notes=notes)


#: Runs each engine makes in its peak-RSS process (the peak is normally reached by the 2nd).
RSS_RUNS = 3


def _measure_rss_apart(engines: list[EngineStats], path: str, proto: Any,
                       feeds: Mapping[str, np.ndarray], level: str, threads: int,
                       notes: list[str]) -> None:
    """Fill each engine's ``peak_rss_bytes`` from a fresh process of its own."""
    from .common import model_format
    from .rss import measure_engine_rss

    with tempfile.TemporaryDirectory(prefix="pyflame_rt_bench_") as scratch:
        feeds_path = os.path.join(scratch, "feeds.npz")
        np.savez(feeds_path, **{k: np.asarray(v) for k, v in feeds.items()})
        ort_path = path
        if model_format(path) != "onnx":  # ONNX Runtime reads our .pfm through its ONNX form
            ort_path = os.path.join(scratch, "model.onnx")
            with open(ort_path, "wb") as fh:
                fh.write(proto.SerializeToString())
        jobs = [("pyflame-rt", path, level), ("onnxruntime", ort_path, ORT_LEVELS[level])]
        for engine, (name, model, engine_level) in zip(
                engines, progress(jobs, desc="peak RSS", unit="engine")):
            report = measure_engine_rss(name, os.path.abspath(model), feeds_path,
                                        level=engine_level, threads=threads, runs=RSS_RUNS)
            if report.ok:
                engine.peak_rss_bytes = int(report["peak_rss_bytes"])
            else:
                notes.append(f"peak RSS of {name} not measured: {report['error']}")


def plot_latencies(result: BenchResult, path: str) -> None:
    """Draw each engine's latency distribution (histogram) and per-run trace to ``path``."""
    try:
        import matplotlib
    except ImportError:
        raise InvalidArgumentError(
            "--plot needs matplotlib: pip install 'pyflame_rt[plot]' (or pip install "
            "matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (hist, trace) = plt.subplots(1, 2, figsize=(11, 4))
    all_times = [t for e in result.engines for t in e.latencies_ms]
    lo, hi = min(all_times), max(all_times)
    spread = lo > 0 and hi / lo > 20
    if spread:  # outliers (or engines far apart) would squash a linear axis into one bar
        bins = np.geomspace(lo, hi, 50)
        hist.set_xscale("log")
    else:
        bins = np.linspace(lo, hi if hi > lo else lo + 1e-3, 40)
    for e in result.engines:
        hist.hist(e.latencies_ms, bins=bins, alpha=0.6,
                  label=f"{e.name} (median {e.stats['median']:.3f} ms)")
        trace.plot(e.latencies_ms, linewidth=0.8, label=e.name)
    hist.set_xlabel("latency (ms)")
    hist.set_ylabel("runs")
    hist.set_title("latency distribution")
    hist.legend()
    trace.set_xlabel("run")
    trace.set_ylabel("latency (ms)")
    trace.set_title("latency per run")
    trace.legend()
    fig.suptitle(result.model, fontsize=9)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except (OSError, ValueError) as exc:
        raise InvalidArgumentError(f"--plot: cannot write {path!r}: {exc}") from None
    finally:
        plt.close(fig)
