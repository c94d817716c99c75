"""``pyflame-rt inspect``: what a model is made of.

Interface (with symbolic dims), opsets, op histogram, parameter count and bytes, estimated
FLOPs per node and in total, and the ops this build has no kernel for.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..ir import Graph, Model, clone_model, infer_shapes
from ..types import shape_string, type_string
from .common import load_model_file, model_format
from .flops import FlopReport, count_flops

__all__ = ["ModelInfo", "format_flops", "inspect_model"]


def format_flops(n: float | None) -> str:
    """``1.23 GFLOP``-style text (``?`` for unknown)."""
    if n is None:
        return "?"
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}FLOP"
    return f"{int(n)} FLOP"


def _bytes(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


@dataclass
class ModelInfo:
    """Everything ``pyflame-rt inspect`` prints (see :func:`inspect_model`)."""

    path: str
    file_format: str
    file_bytes: int
    producer: str
    ir_version: int
    opsets: dict[str, int]
    inputs: list[tuple[str, str, list[Any]]]
    outputs: list[tuple[str, str, list[Any]]]
    op_histogram: dict[str, int]
    node_count: int
    parameters: int
    parameter_bytes: int
    flops: FlopReport
    unsupported: dict[str, list[str]] = field(default_factory=dict)
    optimization: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "format": self.file_format, "file_bytes": self.file_bytes,
            "producer": self.producer, "ir_version": self.ir_version, "opsets": self.opsets,
            "inputs": [{"name": n, "type": t, "shape": s} for n, t, s in self.inputs],
            "outputs": [{"name": n, "type": t, "shape": s} for n, t, s in self.outputs],
            "op_histogram": self.op_histogram, "node_count": self.node_count,
            "parameters": self.parameters, "parameter_bytes": self.parameter_bytes,
            "flops_total": self.flops.total,
            "flops_input_shapes": {k: list(v) for k, v in self.flops.input_shapes.items()},
            "nodes": [{"name": n.name, "op_type": n.op_type, "domain": n.domain,
                       "flops": n.flops} for n in self.flops.nodes],
            "unsupported_ops": self.unsupported, "optimization": self.optimization,
        }

    def format(self, max_nodes: int | None = None) -> str:
        """The report as text; ``max_nodes`` keeps only the costliest nodes in the table."""
        out = [f"model       : {self.path} ({self.file_format.upper()}, {_bytes(self.file_bytes)})",
               f"producer    : {self.producer or '-'}; IR version {self.ir_version}",
               "opsets      : " + ", ".join(f"{d or 'ai.onnx'} {v}"
                                            for d, v in sorted(self.opsets.items()))]
        if self.optimization:
            out.append(f"optimized   : {self.optimization}")
        out.append("inputs      :")
        out += [f"  {n}: {t} {s}" for n, t, s in self.inputs] or ["  (none)"]
        out.append("outputs     :")
        out += [f"  {n}: {t} {s}" for n, t, s in self.outputs]
        out.append(f"parameters  : {self.parameters:,} ({_bytes(self.parameter_bytes)})")
        out.append(f"nodes       : {self.node_count}")
        out.append("op histogram:")
        width = max((len(k) for k in self.op_histogram), default=0)
        out += [f"  {k:<{width}}  {v}" for k, v in self.op_histogram.items()]
        shapes = ", ".join(f"{k}{shape_string(v)}" for k, v in self.flops.input_shapes.items())
        out.append(f"FLOPs per node (estimated for {shapes or 'the declared shapes'}):")
        rows = list(self.flops.nodes)
        if max_nodes:
            rows = sorted(rows, key=lambda n: -(n.flops or 0))[:max_nodes]
        total = self.flops.total or 1
        name_w = min(40, max((len(n.name) for n in rows), default=4))
        op_w = max((len(n.op_type) for n in rows), default=2)
        out.append(f"  {'node':<{name_w}}  {'op':<{op_w}}  {'FLOPs':>14}  {'share':>6}")
        for n in rows:
            flops = f"{n.flops:,}" if n.flops is not None else "?"
            share = f"{100 * n.flops / total:5.1f}%" if n.flops is not None else ""
            out.append(f"  {n.name[:name_w]:<{name_w}}  {n.op_type:<{op_w}}  {flops:>14}  "
                       f"{share:>6}")
        if max_nodes and len(self.flops.nodes) > len(rows):
            out.append(f"  ... {len(self.flops.nodes) - len(rows)} cheaper node(s) not shown")
        unknown = self.flops.unknown
        note = f" ({len(unknown)} node(s) without an estimate: " + ", ".join(
            sorted({n.op_type for n in unknown})) + ")" if unknown else ""
        out.append(f"total FLOPs : {self.flops.total:,} ({format_flops(self.flops.total)})"
                   f"{note}")
        if self.unsupported:
            out.append("unsupported : no kernel in this build for")
            out += [f"  {op} (nodes: {', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
                    for op, names in self.unsupported.items()]
        else:
            out.append("unsupported : none (every op has a CPU kernel)")
        return "\n".join(out)


def _parameters(graph: Graph) -> tuple[int, int]:
    count = nbytes = 0
    seen: set[int] = set()
    for v in graph.initializers.values():
        arr = v.const_value
        if isinstance(arr, np.ndarray) and id(arr) not in seen:
            seen.add(id(arr))
            count += arr.size
            nbytes += arr.nbytes
    for node in graph.all_nodes():
        if node.op_type == "Constant" and isinstance(node.attrs.get("value"), np.ndarray):
            arr = node.attrs["value"]
            count += arr.size
            nbytes += arr.nbytes
    return count, nbytes


def _unsupported(graph: Graph) -> dict[str, list[str]]:
    from ..backends.cpu import CPUExecutionProvider

    found: dict[str, list[str]] = {}
    for node in CPUExecutionProvider().unsupported_nodes(graph):
        found.setdefault(node.qualified_op, []).append(node.name or "(unnamed)")
    return found


def inspect_model(path: str, *, level: str = "none",
                  input_shapes: Mapping[str, tuple[int, ...]] | None = None
                  ) -> tuple[ModelInfo, Model]:
    """Inspect the model file at ``path``.

    Args:
        path: An ``.onnx`` or ``.pfm`` file.
        level: Inspect the graph as optimized at this level (``"none"``: as stored).
        input_shapes: Concrete shapes for the FLOP estimate (free dims default to 1).

    Returns:
        ``(info, model)``: the report and the (optimized, shape-annotated) model it describes.
    """
    model = load_model_file(path)
    graph = model.graph
    inputs = [(v.name, type_string(v.type), list(v.shape) if v.shape is not None else [])
              for v in graph.inputs if v.const_value is None]
    outputs = [(v.name, type_string(v.type), list(v.shape) if v.shape is not None else [])
               for v in graph.outputs]
    optimization = ""
    if level != "none":
        from ..opt import optimize

        model = clone_model(model)
        _, report = optimize(model, level)
        optimization = report.summary()
        graph = model.graph
    try:
        infer_shapes(graph)  # edge shapes for the .dot export; best effort
    except Exception:  # noqa: BLE001 - inspect must describe models it cannot fully infer
        pass
    histogram = Counter(n.qualified_op for n in graph.all_nodes())
    params, param_bytes = _parameters(graph)
    info = ModelInfo(
        path=path, file_format=model_format(path), file_bytes=os.path.getsize(path),
        producer=" ".join(p for p in (model.producer_name, model.producer_version) if p),
        ir_version=model.ir_version, opsets=dict(graph.opset_imports),
        inputs=inputs, outputs=outputs,
        op_histogram=dict(sorted(histogram.items(), key=lambda kv: (-kv[1], kv[0]))),
        node_count=sum(histogram.values()), parameters=params, parameter_bytes=param_bytes,
        flops=count_flops(graph, input_shapes), unsupported=_unsupported(graph),
        optimization=optimization)
    return info, model
