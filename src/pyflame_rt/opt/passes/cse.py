"""Common-subexpression elimination, for constants and nodes.

Two small constants with the same dtype, shape and bytes become one; two nodes with the same
op, domain, attributes and *the same input values* become one (the later one's readers move to
the earlier one's outputs). Random ops and nodes with subgraphs are never merged. Constants
above ``max_const_bytes`` are not merged: exporters duplicate scalars and shape vectors, not
weight matrices, and merging two equal weights would make them *shared*, which stops rules
that fold into a weight (Conv+BatchNormalization) from firing.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

from ...ir import Graph, Node, Value
from .._util import RANDOM_OPS, graphs_of
from ..levels import OptLevel
from ..pass_manager import Pass, PassContext, PassResult

__all__ = ["CommonSubexpressionElimination"]


def _freeze(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, hashlib.sha1(
            np.ascontiguousarray(value).tobytes() if value.dtype != object
            else repr(value.tolist()).encode()).hexdigest())
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, float) and math.isnan(value):
        return ("nan",)
    return value


class CommonSubexpressionElimination(Pass):
    """Merge duplicate constants and duplicate nodes."""

    name = "common_subexpression_elimination"
    level = OptLevel.BASIC
    after = ("constant_folding",)

    def __init__(self, max_const_bytes: int = 256) -> None:
        self.max_const_bytes = max_const_bytes

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        result = PassResult()
        for g in graphs_of(graph):
            self._constants(g, ctx, result)
            self._nodes(g, result)
        return result

    def _constants(self, graph: Graph, ctx: PassContext, result: PassResult) -> None:
        seen: dict[Any, Value] = {}
        for value in list(graph.initializers.values()):
            arr = value.const_value
            if not isinstance(arr, np.ndarray) or arr.nbytes > self.max_const_bytes or \
                    arr.dtype == object or ctx.is_overridable(value) or value.is_graph_output \
                    or not value.uses:
                continue
            key = (value.dtype, _freeze(arr))
            first = seen.setdefault(key, value)
            if first is not value:
                value.replace_all_uses_with(first)
                result.add("merged_constants")

    @staticmethod
    def _nodes(graph: Graph, result: PassResult) -> None:
        seen: dict[Any, Node] = {}
        for node in graph.nodes:
            if node.graph is not graph or node.op_type in RANDOM_OPS or not node.outputs:
                continue
            if any(True for _ in node.subgraphs()):
                continue
            try:
                attrs = tuple(sorted((k, _freeze(v)) for k, v in node.attrs.items()))
                key = (node.domain or "", node.op_type,
                       tuple(None if v is None else id(v) for v in node.inputs), attrs,
                       tuple(v is not None for v in node.outputs))
                hash(key)
            except TypeError:
                continue
            first = seen.setdefault(key, node)
            if first is node:
                continue
            pairs = [(a, b) for a, b in zip(node.outputs, first.outputs) if a is not None]
            if any(a.is_graph_output and b.is_graph_output for a, b in pairs):
                continue  # both names must stay: nothing to gain
            for a, b in pairs:
                if b.type is None:
                    b.type = a.type
                a.replace_all_uses_with(b)
            graph.remove_node(node)
            result.add("merged_nodes")
