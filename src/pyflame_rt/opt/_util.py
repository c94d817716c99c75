"""Small helpers shared by passes and rules: attribute defaults, constants, shapes."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import numpy as np
import onnx
from onnx import helper

from ..ir import Graph, Node, Value
from ..types import TensorInfo

__all__ = [
    "RANDOM_OPS",
    "get_attr",
    "graphs_of",
    "is_default_domain",
    "node_opset",
    "rank_of",
    "same_shape",
    "scalar_of",
    "static_shape",
]

#: Ops whose output differs run to run: never folded, never merged by CSE.
RANDOM_OPS = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                        "Multinomial", "Bernoulli"})


def is_default_domain(node: Node) -> bool:
    return node.domain in ("", "ai.onnx")


def node_opset(node: Node, graph: Graph | None = None) -> int:
    g = graph or node.graph
    if g is None:
        return onnx.defs.onnx_opset_version()
    found = g.opset(node.domain)
    if found is None:
        return onnx.defs.onnx_opset_version() if is_default_domain(node) else 1
    return found


@functools.lru_cache(maxsize=4096)
def _schema_default(op_type: str, domain: str, opset: int, name: str) -> Any:
    try:
        schema = onnx.defs.get_schema(op_type, opset, domain)
    except Exception:  # noqa: BLE001 - unknown op/domain: no default known
        return None
    attr = schema.attributes.get(name)
    if attr is None or not attr.default_value.name:
        return None
    value = helper.get_attribute_value(attr.default_value)
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    return value


def get_attr(node: Node, name: str, default: Any = None) -> Any:
    """``node``'s attribute ``name``, else the ONNX schema's default, else ``default``."""
    if name in node.attrs:
        value = node.attrs[name]
        return value.decode("utf-8") if isinstance(value, bytes) else value
    if is_default_domain(node):
        found = _schema_default(node.op_type, "", node_opset(node), name)
        if found is not None:
            return found
    return default


def graphs_of(graph: Graph) -> Iterator[Graph]:
    """``graph`` and every subgraph under it (depth first), snapshot taken up front."""
    out = [graph]
    for node in graph.nodes:
        for sub in node.subgraphs():
            out.extend(graphs_of(sub))
    return iter(out)


def static_shape(value: Value | None) -> tuple[int, ...] | None:
    """The value's shape when every dim is a known int, else ``None``."""
    if value is None or not isinstance(value.type, TensorInfo) or value.type.shape is None:
        return None
    shape = value.type.shape
    if all(isinstance(d, int) and d >= 0 for d in shape):
        return tuple(shape)
    return None


def rank_of(value: Value | None) -> int | None:
    if value is None or not isinstance(value.type, TensorInfo) or value.type.shape is None:
        return None
    return len(value.type.shape)


def same_shape(a: Value | None, b: Value | None) -> bool:
    """True when both shapes are known and equal dim by dim (symbolic names included)."""
    if a is None or b is None:
        return False
    sa, sb = a.shape, b.shape
    if sa is None or sb is None or len(sa) != len(sb):
        return False
    return all(x is not None and x == y for x, y in zip(sa, sb))


def scalar_of(arr: np.ndarray | None) -> float | None:
    """The single value of a one-element array (any rank), else ``None``."""
    if arr is None or arr.size != 1 or arr.dtype.kind not in "fiub":
        return None
    return float(np.asarray(arr, dtype=np.float64).reshape(()))
