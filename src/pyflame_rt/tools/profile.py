"""``pyflame-rt profile``: a Chrome trace of the run and the nodes that take the time.

The trace is written by the session itself (``SessionOptions.enable_profiling`` +
``InferenceSession.end_profiling()``), in the event layout ONNX Runtime uses: a JSON list of
``{"cat", "name", "ph": "X", "ts", "dur", "pid", "tid", "args"}`` events, one ``Session``
``model_run`` event per run and one ``Node`` event per executed node whose ``args`` carry
``op_name``, ``provider`` and the input/output shapes. Open it in https://ui.perfetto.dev or
``chrome://tracing``. :func:`summarize_trace` reads such a file, ours or ONNX Runtime's.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError
from .common import progress

__all__ = ["ProfileResult", "TraceSummary", "profile_model", "summarize_trace"]


@dataclass
class TraceSummary:
    """Node time aggregated from a Chrome trace (times in microseconds)."""

    runs: int
    node_events: int
    total_node_us: int
    by_node: list[tuple[str, str, int, int]]  # (node, op type, total us, calls)
    by_op_type: list[tuple[str, int, int]]  # (op type, total us, calls)

    def format(self, top: int = 10) -> str:
        total = self.total_node_us or 1
        runs = max(1, self.runs)
        lines = [(f"top {min(top, len(self.by_node))} nodes by time ({self.runs} profiled "
                  f"run(s), {self.node_events} node events):")]
        width = min(40, max((len(n) for n, *_ in self.by_node[:top]), default=4))
        lines.append(f"  {'node':<{width}}  {'op':<22} {'avg us/run':>11} {'share':>7}")
        for name, op, us, _calls in self.by_node[:top]:
            lines.append(f"  {name[:width]:<{width}}  {op:<22} {us / runs:>11.1f} "
                         f"{100 * us / total:>6.1f}%")
        lines.append(f"top {min(top, len(self.by_op_type))} op types by time:")
        lines.append(f"  {'op':<24} {'nodes/run':>9} {'avg us/run':>11} {'share':>7}")
        for op, us, calls in self.by_op_type[:top]:
            lines.append(f"  {op:<24} {calls / runs:>9.1f} {us / runs:>11.1f} "
                         f"{100 * us / total:>6.1f}%")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"runs": self.runs, "node_events": self.node_events,
                "total_node_us": self.total_node_us,
                "by_node": [{"node": n, "op_type": o, "total_us": us, "calls": c}
                            for n, o, us, c in self.by_node],
                "by_op_type": [{"op_type": o, "total_us": us, "calls": c}
                               for o, us, c in self.by_op_type]}


def summarize_trace(events: list[dict[str, Any]]) -> TraceSummary:
    """Aggregate the ``Node`` events of a Chrome trace by node and by op type.

    A node inside an If/Loop/Scan body (``args.parent_node`` set) is listed as
    ``parent/node``; its time is already inside its parent's event, so it is not added to
    ``total_node_us`` again (shares stay relative to the top-level nodes' time).
    """
    if not isinstance(events, list):
        raise InvalidArgumentError("a Chrome trace is a JSON list of events")
    nodes: dict[str, list[Any]] = {}
    ops: dict[str, list[int]] = {}
    runs = node_events = total = 0
    for ev in events:
        if not isinstance(ev, dict) or ev.get("ph") != "X":
            continue
        if ev.get("cat") == "Session" and ev.get("name") == "model_run":
            runs += 1
        if ev.get("cat") != "Node":
            continue
        name = str(ev.get("name", ""))
        # ONNX Runtime also writes <node>_fence_before/_after events of zero length.
        if not name.endswith("_kernel_time"):
            continue
        node_events += 1
        node = name[: -len("_kernel_time")]
        args = ev.get("args") if isinstance(ev.get("args"), dict) else {}
        op = str(args.get("op_name", "?"))
        parent = args.get("parent_node")
        if parent:
            node = f"{parent}/{node}"
        dur = int(ev.get("dur", 0))
        if not parent:
            total += dur
        entry = nodes.setdefault(node, [op, 0, 0])
        entry[1] += dur
        entry[2] += 1
        per_op = ops.setdefault(op, [0, 0])
        per_op[0] += dur
        per_op[1] += 1
    by_node = sorted(((n, e[0], e[1], e[2]) for n, e in nodes.items()), key=lambda r: -r[2])
    by_op = sorted(((o, v[0], v[1]) for o, v in ops.items()), key=lambda r: -r[1])
    return TraceSummary(runs, node_events, total, by_node, by_op)


@dataclass
class ProfileResult:
    """The trace file written and its summary."""

    trace_path: str
    summary: TraceSummary
    executed_nodes: int
    notes: list[str] = field(default_factory=list)


def profile_model(path: str, feeds: Mapping[str, np.ndarray] | None = None, *,
                  output: str | None = None, runs: int = 10, warmup: int = 1,
                  level: str = "all", threads: int = 0, input_items: tuple[str, ...] = (),
                  shape_items: tuple[str, ...] = (), seed: int = 0) -> ProfileResult:
    """Run ``path`` with profiling on and write the Chrome trace.

    Warm-up runs are profiled into a throw-away trace first, so the kept trace holds exactly
    ``runs`` steady-state runs.

    Args:
        path: ``.onnx`` or ``.pfm`` model.
        feeds: Input arrays (else from ``input_items`` / random with ``shape_items``).
        output: Trace file to write (default: the session's ``profile_file_prefix`` name in
            the current folder, as ONNX Runtime names it).
        runs: Profiled runs.
        warmup: Runs before profiling starts (not in the trace).
        level: Optimization level.
        threads: ``intra_op_num_threads``.
    """
    from .. import InferenceSession, SessionOptions
    from .common import make_feeds

    if runs < 1:
        raise InvalidArgumentError("--runs must be >= 1")
    if warmup < 0:
        raise InvalidArgumentError("--warmup must be >= 0")
    if output:
        folder = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(folder):
            raise InvalidArgumentError(f"output folder {folder!r} does not exist")
    options = SessionOptions()
    options.graph_optimization_level = level
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="pyflame_rt_profile_") as scratch:
        options.profile_file_prefix = os.path.join(scratch, "warmup_")
        session = InferenceSession(path, options)
        if feeds is None:
            feeds = make_feeds(session.get_inputs(), input_items, shape_items, seed=seed,
                               notes=notes)
        if warmup:
            for _ in progress(range(warmup), desc="warm-up", unit="run"):
                session.run(None, feeds)
            session.end_profiling()  # drops the warm-up events with their scratch file
        options.profile_file_prefix = os.path.join(scratch, "trace_")
        for _ in progress(range(runs), desc="profiling", unit="run"):
            session.run(None, feeds)
        written = session.end_profiling()
        target = output or os.path.basename(written).replace("trace_", "pyflame_rt_profile_", 1)
        shutil.move(written, target)
    with open(target, encoding="utf-8") as fh:
        events = json.load(fh)
    summary = summarize_trace(events)
    # Node events per run: the plan's nodes plus every node run inside If/Loop/Scan bodies.
    return ProfileResult(target, summary, summary.node_events // max(1, summary.runs), notes)
