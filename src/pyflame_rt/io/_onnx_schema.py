"""Checks of IR nodes against their ONNX schema, for loaders whose input is not protobuf.

The ONNX importer checks node protos as it reads them; a ``.pfm`` file decodes straight into
IR nodes, so its loader runs :func:`check_schemas` on the finished graph instead. Either way
the optimizer and the kernels may then rely on what the spec promises: a ``Gather`` has its
two inputs, an ``If`` its two branches, ``epsilon`` is a number and ``then_branch`` a graph.

Only ops of domains the ``onnx`` package has schemas for are checked; custom and ``pyflame``
domain ops are left to their kernels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

from ..errors import InvalidModelError
from ..ir import Graph, Node
from ..types import DType, MapInfo, OptionalInfo, SequenceInfo, TensorInfo

__all__ = ["check_schemas", "lookup_schema"]

AT = onnx.AttributeProto
_VALUE_TYPES = (TensorInfo, SequenceInfo, OptionalInfo, MapInfo)
_SINGLE = onnx.defs.OpSchema.FormalParameterOption.Single


def _number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _integer(v: Any) -> bool:
    return isinstance(v, (int, np.integer, DType))


def _array(v: Any) -> bool:
    return isinstance(v, (np.ndarray, np.generic))


def _items(each: Callable[[Any], bool], array_kinds: str = "") -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        if isinstance(v, np.ndarray):  # passes may store a 1-D array where a list was
            return v.ndim <= 1 and v.dtype.kind in array_kinds
        return isinstance(v, (list, tuple)) and all(each(x) for x in v)
    return check


# What Python value each attribute type may hold in the IR (the loaders' own encodings).
_ACCEPTS: dict[int, Callable[[Any], bool]] = {
    AT.FLOAT: _number,
    AT.INT: _integer,
    AT.STRING: lambda v: isinstance(v, (str, bytes)),
    AT.TENSOR: _array,
    AT.GRAPH: lambda v: isinstance(v, Graph),
    AT.SPARSE_TENSOR: _array,
    AT.TYPE_PROTO: lambda v: v is None or isinstance(v, _VALUE_TYPES),
    AT.FLOATS: _items(_number, "iuf"),
    AT.INTS: _items(_integer, "iub"),
    AT.STRINGS: _items(lambda v: isinstance(v, (str, bytes)), "USO"),
    AT.TENSORS: _items(_array),
    AT.GRAPHS: _items(lambda v: isinstance(v, Graph)),
    AT.SPARSE_TENSORS: _items(_array),
    AT.TYPE_PROTOS: _items(lambda v: isinstance(v, _VALUE_TYPES)),
}

_cache: dict[tuple[str, str, int], onnx.defs.OpSchema | None] = {}


def lookup_schema(op_type: str, domain: str, opset: int | None) -> onnx.defs.OpSchema | None:
    """The ONNX schema of ``op_type`` at ``opset`` (None: unknown op, domain or version)."""
    if opset is None or not isinstance(op_type, str):
        return None
    domain = "" if domain == "ai.onnx" else domain
    key = (domain, op_type, opset)
    if key not in _cache:
        try:
            _cache[key] = onnx.defs.get_schema(op_type, opset, domain)
        except (onnx.defs.SchemaError, TypeError, OverflowError):  # TypeError: huge opset
            _cache[key] = None
    return _cache[key]


def _check_node(node: Node, schema: onnx.defs.OpSchema, where: str) -> None:
    what = f"{where}: {node.op_type} node {node.name!r}"
    for kind, values, low, high, formals in (
            ("inputs", node.inputs, schema.min_input, schema.max_input, schema.inputs),
            ("outputs", node.outputs, schema.min_output, schema.max_output, schema.outputs)):
        if not low <= len(values) <= high:
            bound = f"{low}" if low == high else \
                f"{low} to {high}" if high < 2**31 - 1 else f"at least {low}"
            raise InvalidModelError(f"{what} has {len(values)} {kind}, but {node.op_type}-"
                                    f"{schema.since_version} takes {bound}")
        for formal, value in zip(formals, values):
            if formal.option == _SINGLE and value is None:
                raise InvalidModelError(f"{what} leaves its required {kind[:-1]} "
                                        f"{formal.name!r} empty")
    for name, attr in schema.attributes.items():
        value = node.attrs.get(name)
        if name not in node.attrs:
            if attr.required:
                raise InvalidModelError(f"{what} lacks the required attribute {name!r}")
            continue
        expected = int(attr.type)
        accepts = _ACCEPTS.get(expected)
        if accepts is not None and not accepts(value):
            raise InvalidModelError(
                f"{what}: attribute {name!r} holds a {type(value).__name__}, but the ONNX "
                f"schema of {node.op_type} declares {AT.AttributeType.Name(expected)}")


def check_schemas(graph: Graph, where: str = "the model") -> None:
    """Check every node (subgraphs included) of ``graph`` against its ONNX schema."""
    for node in graph.all_nodes():
        schema = lookup_schema(node.op_type, node.domain, graph.opset(node.domain))
        if schema is not None:
            _check_node(node, schema, where)
