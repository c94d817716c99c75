"""Peak memory (RSS) of one engine at a time, each in a fresh process.

Two engines in one process share one peak RSS, so ``pyflame-rt bench --compare`` cannot tell
from its own numbers which engine needed the memory. :func:`measure_engine_rss` starts a
fresh Python per engine that imports only that engine, builds the session, runs the feeds a
few times and reports its own peak (``VmHWM``), build time and import cost.

The child runs this file as a script (``python .../tools/rss.py``), not as
``python -m pyflame_rt.tools.rss``: importing the ``pyflame_rt`` package (and onnx with it,
about 24 MiB) would otherwise be charged to ONNX Runtime's column. So this module imports
nothing of ours at module level, only the standard library.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["ENGINES", "EngineRSS", "measure_engine_rss", "peak_rss_bytes"]

#: Engines the worker can build: ours and ONNX Runtime's CPU provider.
ENGINES = ("pyflame-rt", "onnxruntime")

_TAG = "@@pyflame-rt-rss@@"


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far, in bytes.

    Linux's ``VmHWM`` first: ``ru_maxrss`` of a process started by fork + exec keeps the
    parent's peak at the fork when that is larger (the kernel carries it across exec), so a
    small command started from a big process would report the big one's footprint.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


class EngineRSS(dict):
    """One worker's report: ``engine``, ``peak_rss_bytes``, ``import_rss_bytes``,
    ``build_ms``, ``runs``, or ``error`` (a one-line reason) when the worker failed."""

    @property
    def ok(self) -> bool:
        return "error" not in self


def measure_engine_rss(engine: str, model_path: str, feeds_path: str, *, level: str,
                       threads: int = 0, runs: int = 3, timeout: float = 900) -> EngineRSS:
    """Build and run ``engine`` on ``model_path`` in a fresh process; return its peak RSS.

    Args:
        engine: ``"pyflame-rt"`` or ``"onnxruntime"``.
        model_path: An ``.onnx`` file (or ``.pfm`` for pyflame-rt only).
        feeds_path: An ``.npz`` with one array per model input.
        level: For pyflame-rt a level name (``none``/``basic``/``extended``/``all``), for
            ONNX Runtime the ``GraphOptimizationLevel`` member name (``ORT_ENABLE_ALL``).
        threads: ``intra_op_num_threads`` (0: the engine's default).
        runs: Runs after the build (peak memory is normally reached by the second).
        timeout: Seconds before the worker is given up on (reported as an error).
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; use one of {ENGINES}")
    cmd = [sys.executable, os.path.abspath(__file__), engine, model_path, feeds_path,
           "--level", level, "--threads", str(threads), "--runs", str(runs)]
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return EngineRSS(engine=engine, error=f"timed out after {timeout:.0f} s")
    for line in proc.stdout.splitlines():
        if line.startswith(_TAG):
            return EngineRSS(json.loads(line[len(_TAG):]))
    tail = " ".join(proc.stderr.strip().splitlines()[-3:])[-500:]
    return EngineRSS(engine=engine, error=f"worker exited with {proc.returncode}: {tail}")


# -- the worker (runs as a script in the child) -------------------------------------------------
def _build(engine: str, model_path: str, level: str, threads: int) -> Any:
    if engine == "pyflame-rt":
        import pyflame_rt

        options = pyflame_rt.SessionOptions()
        options.graph_optimization_level = level
        options.intra_op_num_threads = threads
        return pyflame_rt.InferenceSession(model_path, options)
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = getattr(onnxruntime.GraphOptimizationLevel, level)
    if threads:
        options.intra_op_num_threads = threads
    # The same setting ``bench`` times ONNX Runtime with.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])


def _worker(engine: str, model_path: str, feeds_path: str, level: str, threads: int,
            runs: int) -> dict[str, Any]:
    import numpy as np

    report: dict[str, Any] = {"engine": engine}
    try:
        with np.load(feeds_path, allow_pickle=False) as data:
            feeds = {name: data[name] for name in data.files}
        if engine == "pyflame-rt":
            import pyflame_rt  # noqa: F401 - the import's own cost, before the build
        else:
            import onnxruntime  # noqa: F401
        report["import_rss_bytes"] = peak_rss_bytes()
        start = time.perf_counter()
        session = _build(engine, model_path, level, threads)
        report["build_ms"] = (time.perf_counter() - start) * 1e3
        for _ in range(max(1, runs)):
            session.run(None, feeds)
        report["runs"] = max(1, runs)
        report["peak_rss_bytes"] = peak_rss_bytes()
    except Exception as exc:  # noqa: BLE001 - the parent prints it as a note
        report["error"] = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
    return report


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Peak RSS of one engine (used by bench).")
    parser.add_argument("engine", choices=ENGINES)
    parser.add_argument("model")
    parser.add_argument("feeds")
    parser.add_argument("--level", required=True)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    report = _worker(args.engine, args.model, args.feeds, args.level, args.threads, args.runs)
    print(_TAG + json.dumps(report), flush=True)
    return 0 if "error" not in report else 1


if __name__ == "__main__":
    # Run as a script, this file's folder heads sys.path, and its siblings (profile.py,
    # common.py, ...) would shadow modules of the same name that the engines import.
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.exit(_main())
