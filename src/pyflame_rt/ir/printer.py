"""A readable text form of a graph, for debugging and ``str(graph)``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..types import shape_string, type_string

if TYPE_CHECKING:
    from .graph import Graph, Value

__all__ = ["format_graph"]


def _value(v: Value | None) -> str:
    if v is None:
        return "_"
    return f"%{v.name}"


def _typed(v: Value) -> str:
    return f"%{v.name}: {type_string(v.type)}{shape_string(v.shape) if v.shape is not None else ''}"


def _attr(value: Any, indent: str) -> str:
    from .graph import Graph

    if isinstance(value, Graph):
        return "\n" + format_graph(value, indent + "    ")
    if isinstance(value, np.ndarray):
        if value.size <= 8:
            return f"tensor<{value.dtype}{list(value.shape)}>{value.tolist()}"
        return f"tensor<{value.dtype}{list(value.shape)}>"
    return repr(value)


def format_graph(graph: Graph, indent: str = "") -> str:
    """Render ``graph`` one node per line, subgraphs nested and indented."""
    lines = [f"{indent}graph {graph.name}("]
    lines += [f"{indent}    {_typed(v)}," for v in graph.inputs]
    lines.append(f"{indent}) {{")
    for v in graph.initializers.values():
        if not v.is_graph_input:
            lines.append(f"{indent}    {_typed(v)} = initializer")
    for node in graph.nodes:
        outs = ", ".join(_value(v) for v in node.outputs)
        ins = ", ".join(_value(v) for v in node.inputs)
        attrs = ", ".join(f"{k}={_attr(a, indent)}" for k, a in node.attrs.items())
        label = f"  # {node.name}" if node.name else ""
        attr_part = f" <{attrs}>" if attrs else ""
        lines.append(f"{indent}    {outs} = {node.qualified_op}{attr_part}({ins}){label}")
    lines.append(f"{indent}    return {', '.join(_value(v) for v in graph.outputs)}")
    lines.append(f"{indent}}}")
    return "\n".join(lines)
