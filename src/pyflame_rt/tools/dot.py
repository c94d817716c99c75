"""Graphviz (``.dot``) export of a graph: ``dot -Tsvg graph.dot -o graph.svg`` draws it.

Nodes are boxes labelled with op type and name (fused ``pyflame`` ops are shaded); graph
inputs and outputs are ellipses; edges carry the tensor's shape. Initializers are not drawn
as nodes: a node lists its constant inputs (``W[64,3,7,7]``) in its label instead, which keeps
big models readable.
"""

from __future__ import annotations

from ..ir import Graph, Value
from ..types import shape_string

__all__ = ["to_dot"]


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _edge_label(v: Value) -> str:
    return shape_string(v.shape) if v.shape is not None else ""


def to_dot(graph: Graph, *, title: str | None = None) -> str:
    """The top-level graph of ``graph`` in Graphviz DOT syntax."""
    lines = [f"digraph {_quote(title or graph.name or 'graph')} {{",
             "  rankdir=TB;",
             '  node [fontname="Helvetica", fontsize=10];',
             '  edge [fontname="Helvetica", fontsize=8, color="#555555"];']
    ids: dict[int, str] = {}
    for i, v in enumerate(v for v in graph.inputs if v.const_value is None):
        ids[id(v)] = f"in{i}"
        lines.append(f"  in{i} [shape=ellipse, style=filled, fillcolor=\"#d8ecff\", "
                     f"label={_quote(v.name + chr(10) + _edge_label(v))}];")
    for i, node in enumerate(graph.nodes):
        nid = f"n{i}"
        label = node.qualified_op
        if node.name:
            label += "\n" + node.name
        consts = [f"{v.name}{shape_string(v.shape)}" for v in node.inputs
                  if v is not None and v.const_value is not None and v.producer is None]
        if consts:
            label += "\n" + "\n".join(consts[:4]) + ("\n..." if len(consts) > 4 else "")
        fill = "#ffe3c2" if node.domain == "pyflame" else "#f2f2f2"
        lines.append(f"  {nid} [shape=box, style=\"rounded,filled\", fillcolor=\"{fill}\", "
                     f"label={_quote(label)}];")
        for v in node.outputs:
            if v is not None:
                ids[id(v)] = nid
        for v in node.inputs:
            if v is None or id(v) not in ids:
                continue
            lines.append(f"  {ids[id(v)]} -> {nid} [label={_quote(_edge_label(v))}];")
    for i, v in enumerate(graph.outputs):
        lines.append(f"  out{i} [shape=ellipse, style=filled, fillcolor=\"#dff5d8\", "
                     f"label={_quote(v.name + chr(10) + _edge_label(v))}];")
        if id(v) in ids:
            lines.append(f"  {ids[id(v)]} -> out{i} [label={_quote(_edge_label(v))}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
