"""PyFlameRT vs ONNX Runtime on a suite of real architectures, side by side in one process.

Usage (from the repository root)::

    python benchmarks/compare.py                          # whole suite, batch 1 and 8
    python benchmarks/compare.py --models resnet50 bert-base --batch 1
    python benchmarks/compare.py --quick --models squeezenet1.1   # smoke test, seconds
    python benchmarks/compare.py --json results.json --profile bert-base
    python benchmarks/compare.py --table results.json   # reprint the tables of a saved run

What it does:

1. Builds each model of the suite in plain PyTorch with seeded random weights
   (``benchmarks/zoo.py``; no downloads) and exports it once to ONNX (opset 17, TorchScript
   exporter, dynamic batch axis) into ``--cache-dir`` (default ``~/.cache/pyflame_rt/bench``).
   The export runs in a child process, so this process never loads torch.
2. Counts each model's FLOPs on the exported graph (``benchmarks/flops.py``: 2 x MACs of
   Conv/MatMul/Gemm), so an engine that folds work away cannot fake a higher GFLOP/s.
3. Measures peak RSS of each engine separately: one fresh child process per model and engine
   imports only that engine, builds the session, runs every batch size and reports
   ``ru_maxrss`` (it also reports the build time in a fresh process).
4. In this process, per model: builds a PyFlameRT session and an ONNX Runtime session
   (``ORT_ENABLE_ALL``, same ``intra_op_num_threads``, ``inter_op_num_threads=1``) and times
   each build; per batch size checks that all outputs agree (rtol 1e-3, atol 1e-4; a mismatch
   is reported loudly and makes the exit status 1), warms up, then interleaves timed blocks
   (ours N runs, ORT N runs, ours, ORT, ... R times) and reports the median latency of each,
   the ratio ours/ORT (and "best": fastest over fastest), GFLOP/s, build times, peak RSS.
5. Prints the table, the geometric mean of the ratios per batch size and the machine (CPU,
   cores, load, versions); ``--json`` writes everything, per-run times included.

``--profile MODEL ...`` (or ``--profile all``) adds per-op-type time totals of both engines
from their Chrome traces (``SessionOptions.enable_profiling``), after the timing.

Exit status: 0 when every model ran and agreed, 1 when a model failed or mismatched.
The numbers are only as quiet as the machine: check the load average printed with them.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import hashlib
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SUITE",
    "Result",
    "check_outputs",
    "ensure_exported",
    "format_table",
    "machine_info",
    "main",
    "make_inputs",
    "make_session",
    "physical_cores",
    "result_from_dict",
    "run_suite",
]

HERE = Path(__file__).resolve().parent
SUITE = ("resnet50", "mobilenetv2", "squeezenet1.1", "googlenet", "densenet121", "vgg19",
         "bert-base", "gpt2-small", "vit-tiny")
ENGINES = ("ours", "ort")
RTOL, ATOL = 1e-3, 1e-4
SEQ = 128
VOCAB = {"bert-base": 30522, "gpt2-small": 50257}
_WORKER_TAG = "@@rss-worker@@"


# --------------------------------------------------------------------------------------------
# Inputs, machine, cache


def make_inputs(name: str, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic inputs for model ``name`` at ``batch`` (numpy only: no torch here)."""
    rng = np.random.default_rng(seed)
    if name == "bert-base":
        ids = rng.integers(0, VOCAB[name], (batch, SEQ), dtype=np.int64)
        # Padded batches: row i has 128 - 16 * (i % 4) real tokens, so the mask matters.
        lengths = SEQ - 16 * (np.arange(batch) % 4)
        mask = (np.arange(SEQ)[None, :] < lengths[:, None]).astype(np.int64)
        segments = (np.arange(SEQ)[None, :] >= SEQ // 2).astype(np.int64).repeat(batch, 0)
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": segments}
    if name == "gpt2-small":
        return {"input_ids": rng.integers(0, VOCAB[name], (batch, SEQ), dtype=np.int64)}
    if name in SUITE:
        return {"input": rng.standard_normal((batch, 3, 224, 224), dtype=np.float32)}
    raise KeyError(f"unknown model {name!r}; the suite is: {', '.join(SUITE)}")


def physical_cores() -> int:
    """Physical cores from /proc/cpuinfo (unique physical id / core id pairs)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return os.cpu_count() or 1
    cores: set[tuple[str, str]] = set()
    phys = core = ""
    for line in text.splitlines() + [""]:
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "physical id":
            phys = value
        elif key == "core id":
            core = value
        elif not key and core:
            cores.add((phys, core))
            phys = core = ""
    return len(cores) or (os.cpu_count() or 1)


def _cpu_model() -> tuple[str, list[str]]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown", []
    model, flags = "unknown", []
    for line in text.splitlines():
        if line.startswith("model name") and model == "unknown":
            model = line.split(":", 1)[1].strip()
        elif line.startswith("flags") and not flags:
            flags = line.split(":", 1)[1].split()
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "amx_tile") if f in flags]
    return model, isa


def _version(module: str) -> str:
    try:
        return str(__import__(module).__version__)
    except Exception as exc:  # noqa: BLE001 - a missing package is reported, not fatal
        return f"unavailable ({type(exc).__name__})"


def machine_info() -> dict[str, Any]:
    """CPU, cores, load and package versions, for the report."""
    model, isa = _cpu_model()
    info: dict[str, Any] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpu": model, "isa": isa, "physical_cores": physical_cores(),
        "logical_cpus": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else None,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "numpy": np.__version__, "onnx": _version("onnx"),
        "onnxruntime": _version("onnxruntime"), "pyflame_rt": _version("pyflame_rt"),
    }
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [f"{p.get('internal_api')} {p.get('version')} "
                        f"({p.get('architecture')}, {p.get('num_threads')} threads)"
                        for p in threadpool_info() if p.get("user_api") == "blas"]
    except Exception:  # noqa: BLE001 - informational only
        info["blas"] = []
    return info


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pyflame_rt" / "bench"


def _zoo_hash() -> str:
    return hashlib.sha256((HERE / "zoo.py").read_bytes()).hexdigest()[:12]


def ensure_exported(names: Iterable[str], cache_dir: Path, log: Any = print) -> dict[str, Path]:
    """The ONNX file of each model, exporting (in a child process) those not cached yet."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = _zoo_hash()
    paths = {}
    for name in names:
        path = cache_dir / f"{name}-opset17-{key}.onnx"
        if not path.exists():
            log(f"exporting {name} -> {path} ...")
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, str(HERE / "zoo.py"), name, str(path)],
                                  check=False, capture_output=True, text=True)
            if proc.returncode != 0 or not path.exists():
                raise RuntimeError(f"exporting {name} failed (exit {proc.returncode}):\n"
                                   f"{proc.stderr[-4000:]}")
            log(f"  exported in {time.perf_counter() - start:.1f} s")
        paths[name] = path
    return paths


# --------------------------------------------------------------------------------------------
# Engines


def make_session(engine: str, path: str | Path, threads: int, profile_prefix: str = "") -> Any:
    """A PyFlameRT (``"ours"``) or ONNX Runtime (``"ort"``) session on ``threads`` threads."""
    if engine == "ours":
        import pyflame_rt as rt

        opts = rt.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        if profile_prefix:
            opts.enable_profiling = True
            opts.profile_file_prefix = profile_prefix
        return rt.InferenceSession(str(path), opts)
    if engine == "ort":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        if profile_prefix:
            opts.enable_profiling = True
            opts.profile_file_prefix = profile_prefix
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    raise ValueError(f"unknown engine {engine!r}; use one of {ENGINES}")


def check_outputs(ours: Sequence[np.ndarray], ref: Sequence[np.ndarray], names: Sequence[str],
                  rtol: float = RTOL, atol: float = ATOL) -> list[str]:
    """Problems found comparing our outputs with ONNX Runtime's (empty when they agree)."""
    problems = []
    if len(ours) != len(ref):
        return [f"{len(ours)} outputs, ONNX Runtime returned {len(ref)}"]
    for name, a, b in zip(names, ours, ref):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or a.dtype != b.dtype:
            problems.append(f"output {name!r}: {a.dtype}{list(a.shape)}, ONNX Runtime gives "
                            f"{b.dtype}{list(b.shape)}")
            continue
        if not np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
            err = np.abs(a.astype(np.float64) - b.astype(np.float64))
            bad = ~np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
            problems.append(
                f"output {name!r}: {int(bad.sum())} of {a.size} elements differ; max abs err "
                f"{np.nanmax(err):.3g} (ORT's max |value| {np.nanmax(np.abs(b)):.3g})")
    return problems


def _peak_rss_mb() -> float:
    """This process's peak resident set size in MiB.

    Linux's VmHWM first: ``ru_maxrss`` of a child started by fork + exec also counts the
    parent's resident size at the fork (the kernel keeps the larger of the two across exec),
    which would give every worker the parent's footprint.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (2**20 if sys.platform == "darwin" else 2**10)


def _rss_worker(engine: str, path: str, name: str, batches: list[int], threads: int,
                runs: int) -> None:
    """Child process: import one engine, build, run every batch, print peak RSS as JSON."""
    report: dict[str, Any] = {"engine": engine, "peak_rss_mb": {}}
    try:
        if engine == "ours":
            import pyflame_rt  # noqa: F401
        else:
            import onnxruntime  # noqa: F401
        report["import_rss_mb"] = _peak_rss_mb()
        start = time.perf_counter()
        sess = make_session(engine, path, threads)
        report["build_s"] = time.perf_counter() - start
        report["after_build_rss_mb"] = _peak_rss_mb()
        for batch in batches:
            feeds = make_inputs(name, batch)
            for _ in range(runs):
                sess.run(None, feeds)
            report["peak_rss_mb"][str(batch)] = _peak_rss_mb()
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        report["error"] = f"{type(exc).__name__}: {exc}"[:2000]
    print(_WORKER_TAG + json.dumps(report), flush=True)


def measure_rss(engine: str, path: Path, name: str, batches: list[int], threads: int,
                runs: int, timeout: float = 1800) -> dict[str, Any]:
    """Run :func:`_rss_worker` in a fresh process and return its report."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_rss-worker", engine, str(path),
           name, "--batch", *map(str, batches), "--threads", str(threads), "--runs", str(runs)]
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"engine": engine, "error": f"timed out after {timeout:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith(_WORKER_TAG):
            return json.loads(line[len(_WORKER_TAG):])
    return {"engine": engine,
            "error": f"worker exited {proc.returncode}: {proc.stderr.strip()[-2000:]}"}


# --------------------------------------------------------------------------------------------
# Timing


@dataclass
class Timing:
    """Per-run latencies of one engine at one batch size (seconds)."""

    first_run_s: float = math.nan  # the very first run (lazy per-shape work included)
    runs_s: list[float] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(self.runs_s) if self.runs_s else math.nan

    def summary(self) -> dict[str, float]:
        if not self.runs_s:
            return {}
        q = np.percentile(self.runs_s, [10, 90])
        return {"median_ms": 1e3 * self.median_s, "min_ms": 1e3 * min(self.runs_s),
                "p10_ms": 1e3 * float(q[0]), "p90_ms": 1e3 * float(q[1]),
                "first_run_ms": 1e3 * self.first_run_s, "runs": len(self.runs_s)}


@dataclass
class Result:
    """One model at one batch size."""

    model: str
    batch: int
    gflop: float = math.nan
    ours: Timing = field(default_factory=Timing)
    ort: Timing = field(default_factory=Timing)
    runs_per_block: int = 0
    check: str = "n/a"  # "ok", "MISMATCH", "FAILED", "n/a"
    problems: list[str] = field(default_factory=list)
    error: str = ""  # our runtime's failure (build or run), if any
    build_s: dict[str, float] = field(default_factory=dict)  # in this process
    fresh_build_s: dict[str, float] = field(default_factory=dict)  # in a fresh process
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    rss_errors: dict[str, str] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.ours.median_s / self.ort.median_s if self.ours.runs_s and self.ort.runs_s \
            else math.nan

    @property
    def best_ratio(self) -> float:
        """Fastest run over fastest run: less sensitive to a busy machine than the median."""
        return min(self.ours.runs_s) / min(self.ort.runs_s) if self.ours.runs_s and \
            self.ort.runs_s else math.nan

    def gflops(self, engine: str) -> float:
        t = getattr(self, engine).median_s
        return self.gflop / t if t and not math.isnan(t) else math.nan

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ours"] = {**self.ours.summary(), "runs_ms": [1e3 * t for t in self.ours.runs_s]}
        d["ort"] = {**self.ort.summary(), "runs_ms": [1e3 * t for t in self.ort.runs_s]}
        d["ratio"] = self.ratio
        d["best_ratio"] = self.best_ratio
        d["gflops_per_s"] = {e: self.gflops(e) for e in ENGINES}
        return d


def result_from_dict(d: Mapping[str, Any]) -> Result:
    """Rebuild a :class:`Result` from its ``to_dict()`` form (``--json`` output)."""
    r = Result(d["model"], int(d["batch"]))
    for key in ("gflop", "runs_per_block", "check", "problems", "error", "build_s",
                "fresh_build_s", "peak_rss_mb", "rss_errors", "profile"):
        if key in d:
            setattr(r, key, d[key])
    for engine in ENGINES:
        e = d.get(engine) or {}
        setattr(r, engine, Timing(first_run_s=e.get("first_run_ms", math.nan) / 1e3,
                                  runs_s=[t / 1e3 for t in e.get("runs_ms", [])]))
    return r


def _time_block(sess: Any, feeds: Mapping[str, np.ndarray], n: int, into: list[float]) -> None:
    gc.collect()
    for _ in range(n):
        start = time.perf_counter()
        sess.run(None, feeds)
        into.append(time.perf_counter() - start)


def _first_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) < 3000 else text[:3000] + " ..."


def _profile_summary(events: list[dict[str, Any]], skip_runs: int) -> dict[str, Any]:
    """Per-op-type and per-node totals from a Chrome trace, after ``skip_runs`` warm-ups."""
    from pyflame_rt.tools.profile import summarize_trace

    starts = sorted(e["ts"] for e in events
                    if e.get("cat") == "Session" and e.get("name") == "model_run")
    if len(starts) > skip_runs:
        cut = starts[skip_runs]
        events = [e for e in events if e.get("ts", 0) >= cut]
    s = summarize_trace(events)
    runs = max(1, s.runs)
    return {"runs": s.runs, "total_node_ms_per_run": s.total_node_us / runs / 1e3,
            "by_op_type": [(op, us / runs / 1e3, calls // runs) for op, us, calls in
                           s.by_op_type[:15]],
            "by_node": [(n, op, us / runs / 1e3) for n, op, us, _ in s.by_node[:10]]}


def profile_engine(engine: str, path: Path, feeds: Mapping[str, np.ndarray], threads: int,
                   runs: int, warmup: int = 1) -> dict[str, Any]:
    """Build a profiling session of ``engine``, run it, and summarize its Chrome trace."""
    with tempfile.TemporaryDirectory(prefix="pyflame_bench_prof_") as tmp:
        sess = make_session(engine, path, threads, profile_prefix=os.path.join(tmp, "p_"))
        for _ in range(warmup + runs):
            sess.run(None, dict(feeds))
        trace = sess.end_profiling()
        with open(trace, encoding="utf-8") as fh:
            events = json.load(fh)
    return _profile_summary(events, warmup)


def bench_model(name: str, path: Path, batches: list[int], args: argparse.Namespace,
                log: Any = print) -> list[Result]:
    """Everything for one model: FLOPs, RSS children, builds, checks, interleaved timing."""
    from flops import count_flops

    results = {b: Result(name, b) for b in batches}
    for b in batches:
        feeds = make_inputs(name, b)
        try:
            results[b].gflop = count_flops(
                path, {k: v.shape for k, v in feeds.items()}, feeds=feeds).gflop
        except Exception as exc:  # noqa: BLE001 - the benchmark still runs without it
            log(f"  FLOP count failed: {_first_line(exc)}")

    if args.rss:
        for engine in ENGINES:
            rep = measure_rss(engine, path, name, batches, args.threads, args.rss_runs)
            for b in batches:
                if "error" in rep:
                    results[b].rss_errors[engine] = rep["error"]
                if str(b) in rep.get("peak_rss_mb", {}):
                    results[b].peak_rss_mb[engine] = rep["peak_rss_mb"][str(b)]
                if "build_s" in rep:
                    results[b].fresh_build_s[engine] = rep["build_s"]
            if "error" in rep:
                log(f"  RSS worker ({engine}) failed: {rep['error']}")

    sessions: dict[str, Any] = {}
    error = ""
    for engine in ENGINES:
        start = time.perf_counter()
        try:
            sessions[engine] = make_session(engine, path, args.threads)
        except Exception as exc:  # reported; the suite goes on
            if engine == "ort":
                raise
            error = f"build: {_first_line(exc)}"
            log(f"  !!! PyFlameRT failed to build {name}: {error}")
            if args.verbose:
                traceback.print_exc()
            continue
        for r in results.values():
            r.build_s[engine] = time.perf_counter() - start

    ort_names = [o.name for o in sessions["ort"].get_outputs()]
    for b in batches:
        r = results[b]
        feeds = make_inputs(name, b)
        timings = {"ours": r.ours, "ort": r.ort}
        # First runs (lazy per-shape planning included) and the agreement check.
        outputs: dict[str, list[np.ndarray]] = {}
        for engine, sess in list(sessions.items()):
            start = time.perf_counter()
            try:
                outputs[engine] = sess.run(None, feeds)
            except Exception as exc:
                if engine == "ort":
                    raise
                r.error = f"run (batch {b}): {_first_line(exc)}"
                log(f"  !!! PyFlameRT failed to run {name} at batch {b}: {r.error}")
                if args.verbose:
                    traceback.print_exc()
                continue
            timings[engine].first_run_s = time.perf_counter() - start
        if error:
            r.error = error
        if "ours" in outputs:
            r.problems = check_outputs(outputs["ours"], outputs["ort"], ort_names)
            r.check = "MISMATCH" if r.problems else "ok"
            for p in r.problems:
                log(f"  !!! MISMATCH {name} batch {b}: {p}")
        else:
            r.check = "FAILED"
        del outputs
        live = {e: s for e, s in sessions.items() if e == "ort" or r.check != "FAILED"}
        # Warm-up, then size the blocks so that one block of the slower engine takes about
        # --block-seconds (unless --runs fixes it).
        warm: dict[str, list[float]] = {e: [] for e in live}
        for _ in range(args.warmup):
            for engine, sess in live.items():
                _time_block(sess, feeds, 1, warm[engine])
        if args.runs:
            n = args.runs
        else:
            slowest = max(min(t) if t else timings[e].first_run_s for e, t in warm.items())
            n = int(max(1, min(args.max_runs, round(args.block_seconds / max(slowest, 1e-6)))))
        r.runs_per_block = n
        for _ in range(args.repeats):
            for engine, sess in live.items():
                _time_block(sess, feeds, n, timings[engine].runs_s)
        log(f"  batch {b}: " + ", ".join(
            f"{e} {1e3 * timings[e].median_s:.2f} ms" for e in live)
            + (f", ratio {r.ratio:.2f}" if not math.isnan(r.ratio) else "")
            + f" ({args.repeats} x {n} runs each)")

    profile_this = args.profile and ("all" in args.profile or name in args.profile)
    sessions.clear()
    gc.collect()
    if profile_this:
        for b in batches:
            feeds = make_inputs(name, b)
            for engine in ENGINES:
                if engine == "ours" and results[b].check == "FAILED":
                    continue
                try:
                    results[b].profile[engine] = profile_engine(
                        engine, path, feeds, args.threads, args.profile_runs)
                except Exception as exc:  # noqa: BLE001
                    results[b].profile[engine] = {"error": _first_line(exc)}
            log(format_profile(results[b]))
    return [results[b] for b in batches]


# --------------------------------------------------------------------------------------------
# Reporting


def geomean(values: Iterable[float]) -> float:
    vals = [v for v in values if v > 0 and not math.isnan(v)]
    return math.exp(sum(map(math.log, vals)) / len(vals)) if vals else math.nan


def _fmt(x: float | None, spec: str) -> str:
    """``format(x, spec)``, or a dash of the same width for a missing value."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        width = spec.split(".")[0]
        return format("-", f">{width}" if width.isdigit() else "")
    return format(x, spec)


def format_table(results: Sequence[Result]) -> str:
    """The latency table, the build/memory table and the geometric means."""
    head = (f"{'model':<14} {'batch':>5} {'GFLOP':>7} {'ours ms':>9} {'ORT ms':>9} "
            f"{'ours/ORT':>8} {'best':>5} {'ours GF/s':>9} {'ORT GF/s':>9} {'RSS ours':>8} "
            f"{'RSS ORT':>8} "
            f"{'RSS x':>5}  check")
    lines = [("latency: median of all timed runs; best = fastest ours / fastest ORT; RSS = "
              "peak MB of a fresh process per engine"),
             head, "-" * len(head)]
    for r in results:
        rss_o, rss_r = r.peak_rss_mb.get("ours", math.nan), r.peak_rss_mb.get("ort", math.nan)
        lines.append(
            f"{r.model:<14} {r.batch:>5} {_fmt(r.gflop, '7.2f')} "
            f"{_fmt(1e3 * r.ours.median_s, '9.2f')} {_fmt(1e3 * r.ort.median_s, '9.2f')} "
            f"{_fmt(r.ratio, '8.2f')} {_fmt(r.best_ratio, '5.2f')} "
            f"{_fmt(r.gflops('ours'), '9.1f')} "
            f"{_fmt(r.gflops('ort'), '9.1f')} {_fmt(rss_o, '8.0f')} {_fmt(rss_r, '8.0f')} "
            f"{_fmt(rss_o / rss_r, '5.2f')}  {r.check}")
    lines.append("")
    for b in sorted({r.batch for r in results}):
        rows = [r for r in results if r.batch == b]
        ok = [r for r in rows if not math.isnan(r.ratio)]
        worst = max(ok, key=lambda r: r.ratio, default=None)
        missing = [r.model for r in rows if math.isnan(r.ratio)]
        lines.append(
            f"batch {b}: geometric mean ours/ORT = {_fmt(geomean(r.ratio for r in ok), '.3f')} "
            f"over {len(ok)} models"
            + (f"; worst {worst.model} {worst.ratio:.2f}" if worst else "")
            + (f"; NOT INCLUDED (failed): {', '.join(missing)}" if missing else ""))

    lines.append("")
    head2 = (f"{'model':<14} {'build ours s':>12} {'build ORT s':>11} {'x':>6}   "
             f"{'fresh-process build ours s':>26} {'ORT s':>7} {'x':>6}")
    lines += ["session build time (this process; and a fresh process, imports excluded)",
              head2, "-" * len(head2)]
    seen = set()
    for r in results:
        if r.model in seen:
            continue
        seen.add(r.model)
        bo, br = r.build_s.get("ours", math.nan), r.build_s.get("ort", math.nan)
        fo, fr = r.fresh_build_s.get("ours", math.nan), r.fresh_build_s.get("ort", math.nan)
        lines.append(f"{r.model:<14} {_fmt(bo, '12.2f')} {_fmt(br, '11.2f')} "
                     f"{_fmt(bo / br, '6.1f')}   {_fmt(fo, '26.2f')} {_fmt(fr, '7.2f')} "
                     f"{_fmt(fo / fr, '6.1f')}")
    failures = [r for r in results if r.check in ("FAILED", "MISMATCH")]
    if failures:
        lines += ["", "!!! PROBLEMS"]
        for r in failures:
            for p in ([r.error] if r.error else []) + r.problems:
                lines.append(f"  {r.model} batch {r.batch}: {p}")
    return "\n".join(lines)


def format_profile(r: Result, top: int = 12) -> str:
    """Per-op-type totals of both engines, side by side."""
    lines = [f"  profile {r.model} batch {r.batch} (ms per run, op-type totals):"]
    for engine in ENGINES:
        p = r.profile.get(engine)
        if not p:
            continue
        if "error" in p:
            lines.append(f"    {engine}: profiling failed: {p['error']}")
            continue
        lines.append(f"    {engine}: node time {p['total_node_ms_per_run']:.2f} ms/run over "
                     f"{p['runs']} runs")
        for op, ms, calls in p["by_op_type"][:top]:
            share = 100 * ms / max(p["total_node_ms_per_run"], 1e-9)
            lines.append(f"      {op:<28} {calls:>4} nodes {ms:>9.2f} ms {share:5.1f}%")
    return "\n".join(lines)


def format_machine(info: Mapping[str, Any], threads: int) -> str:
    return "\n".join([
        (f"machine: {info['cpu']} ({', '.join(info['isa']) or 'no AVX2'}); "
         f"{info['physical_cores']} physical cores, {info['logical_cpus']} logical CPUs; "
         f"load average {info['load_average']}"),
        (f"versions: python {info['python']}, numpy {info['numpy']}, onnx {info['onnx']}, "
         f"onnxruntime {info['onnxruntime']}, pyflame_rt {info['pyflame_rt']}"),
        f"BLAS: {'; '.join(info.get('blas') or ['unknown'])}",
        f"threads: intra_op_num_threads={threads} for both engines, inter_op_num_threads=1",
        f"date: {info['date']}"])


# --------------------------------------------------------------------------------------------
# Command line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="PyFlameRT vs ONNX Runtime: latency, GFLOP/s, build time and peak RSS "
                    "on a suite of random-weight models.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(SUITE), metavar="MODEL",
                   help=f"subset of the suite: {' '.join(SUITE)}")
    p.add_argument("--batch", nargs="+", type=int, default=[1, 8], help="batch sizes")
    p.add_argument("--threads", type=int, default=physical_cores(),
                   help="intra_op_num_threads for both engines (default: physical cores)")
    p.add_argument("--repeats", type=int, default=5,
                   help="interleaved blocks per engine (ours, ORT, ours, ORT, ...)")
    p.add_argument("--runs", type=int, default=0,
                   help="runs per block (0: sized so one block takes ~--block-seconds)")
    p.add_argument("--block-seconds", type=float, default=1.0,
                   help="target duration of one timed block when --runs is 0")
    p.add_argument("--max-runs", type=int, default=50, help="cap on automatic runs per block")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs per engine and batch")
    p.add_argument("--rss-runs", type=int, default=2,
                   help="runs per batch in the peak-RSS child processes")
    p.add_argument("--no-rss", dest="rss", action="store_false",
                   help="skip the peak-RSS child processes")
    p.add_argument("--profile", nargs="*", default=None, metavar="MODEL",
                   help="per-op-type profile of these models ('all' or no name: every model)")
    p.add_argument("--profile-runs", type=int, default=3, help="profiled runs per engine")
    p.add_argument("--cache-dir", type=Path, default=default_cache_dir(),
                   help="where the exported ONNX models are kept")
    p.add_argument("--json", type=Path, default=None, help="write all results here")
    p.add_argument("--quick", action="store_true",
                   help="smoke-test settings: 2 repeats x 1 run, 1 warm-up, 1 RSS run")
    p.add_argument("--table", type=Path, default=None, metavar="JSON",
                   help="only print the tables of an earlier --json file")
    p.add_argument("-v", "--verbose", action="store_true", help="tracebacks for failures")
    p.add_argument("--_rss-worker", nargs=3, default=None, help=argparse.SUPPRESS,
                   metavar=("ENGINE", "PATH", "NAME"))
    return p


def run_suite(args: argparse.Namespace, log: Any = print) -> tuple[list[Result],
                                                                   dict[str, Any]]:
    """Export what is missing, then benchmark every requested model."""
    info = machine_info()
    log(format_machine(info, args.threads))
    paths = ensure_exported(args.models, args.cache_dir, log)
    results: list[Result] = []
    for name in args.models:
        log(f"{name}:")
        try:
            results += bench_model(name, paths[name], args.batch, args, log)
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime failed: record it, go on
            log(f"  !!! {name} could not be benchmarked: {_first_line(exc)}")
            for b in args.batch:
                r = Result(name, b, check="FAILED", error=f"ONNX Runtime: {_first_line(exc)}")
                results.append(r)
    info["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return results, info


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args._rss_worker:
        engine, path, name = args._rss_worker
        _rss_worker(engine, path, name, args.batch, args.threads, max(1, args.runs))
        return 0
    if args.table:
        data = json.loads(args.table.read_text())
        print(format_machine(data["machine"], data["settings"]["threads"]))
        print(f"load average at the end: {data['machine'].get('load_average_end')}\n")
        print(format_table([result_from_dict(d) for d in data["results"]]))
        return 0
    unknown = [m for m in args.models if m not in SUITE]
    if unknown:
        print(f"unknown model(s) {unknown}; the suite is: {' '.join(SUITE)}", file=sys.stderr)
        return 2
    if args.quick:
        args.repeats, args.runs, args.warmup, args.rss_runs = 2, 1, 1, 1
        args.profile_runs = 1
    if args.profile is not None and not args.profile:
        args.profile = ["all"]
    if min(args.batch) < 1 or args.threads < 1 or args.repeats < 1:
        print("--batch, --threads and --repeats must be >= 1", file=sys.stderr)
        return 2
    sys.path.insert(0, str(HERE))  # flops.py beside this file, also when imported
    started = time.perf_counter()
    results, info = run_suite(args)
    print()
    print(format_table(results))
    print(f"\nload average at the end: {info['load_average_end']} (a shared machine makes "
          f"the numbers noisy); total {time.perf_counter() - started:.0f} s")
    if args.json:
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                    if not k.startswith("_")}
        geo = {str(b): geomean(r.ratio for r in results if r.batch == b) for b in args.batch}
        args.json.write_text(json.dumps(
            {"machine": info, "settings": settings, "geomean_ratio": geo,
             "results": [r.to_dict() for r in results]}, indent=1, default=str))
        print(f"wrote {args.json}")
    bad = [r for r in results if r.check in ("FAILED", "MISMATCH")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
