"""The graph section of a ``.pfm`` file: ``ir.Graph`` <-> plain JSON objects.

Internal to :mod:`pyflame_rt.io.pfm`. Encoding never touches tensor bytes: numpy arrays are
handed to a callback that puts them in the tensor table and returns an index. Decoding trusts
nothing: every field is type-checked, every name resolved, every nesting depth bounded, and
every problem raises :class:`~pyflame_rt.errors.InvalidModelError` naming the graph part.

Encodings (all JSON):

* value type: ``null`` (unknown), ``{"tensor": <DType number>, "shape": null | [dim, ...]}``
  with a dim being an int >= 0, a string (symbolic) or ``null`` (unknown);
  ``{"seq": <type>}``, ``{"optional": <type>}``, ``{"map": [<key DType number>, <type>]}``.
* attribute value: a one-key object tagging the Python type -- ``{"int": 3}``,
  ``{"bool": true}``, ``{"float": 1.5 | "nan" | "inf" | "-inf"}``, ``{"str": "x"}``,
  ``{"bytes": "<base64>"}``, ``{"tensor": <table index>}`` (numpy array),
  ``{"scalar": <table index>}`` (numpy scalar, stored as a 0-d tensor), ``{"graph": <graph>}``,
  ``{"list": [...]}``, ``{"tuple": [...]}``, ``{"type": <value type>}``,
  ``{"ints": [1, 2]}``, ``{"floats": [1.5, "nan"]}``, ``{"strs": ["a"]}`` (compact forms of
  non-empty Python lists whose items are all int, all float or all str),
  ``{"dtype": <DType number>}``, ``{"none": null}``.
* graph: ``{"name", "doc_string", "inputs": [{"name", "type", "initializer"?, "doc_string"?}],
  "initializers": [{"name", "tensor", "type", "doc_string"?}], "nodes": [{"op_type", "domain",
  "name", "inputs": [name | ""], "outputs": [name | ""], "output_types": [type],
  "attributes": {name: value}, "attr_types": {name: int}, "doc_string"?}], "outputs": [name],
  "value_info": {name: type}}``. An input with ``"initializer": true`` is an overridable
  initializer: the input *is* the initializer value of that name.
"""

from __future__ import annotations

import base64
import math
from collections import ChainMap
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..errors import InvalidModelError
from ..ir import Graph, Node, Value
from ..types import DType, MapInfo, OptionalInfo, SequenceInfo, TensorInfo, ValueType

__all__ = ["MAX_GRAPH_DEPTH", "MAX_RANK", "MAX_TYPE_DEPTH", "GraphDecoder", "GraphEncoder"]

MAX_GRAPH_DEPTH = 64  # subgraphs nested deeper than this are refused (real models use < 10)
MAX_TYPE_DEPTH = 64  # seq(optional(seq(...))) nesting bound
MAX_LIST_DEPTH = 8  # attribute lists nested in lists (ONNX itself has none)
MAX_RANK = 64  # numpy's own limit on dimensions
MAX_DIM = 2**62  # larger dims cannot describe anything numpy could allocate
MAX_ATTR_TYPE = 14  # AttributeProto.AttributeType values are 0..14

_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


# -- encoding ------------------------------------------------------------------------------
def encode_type(vtype: ValueType | None, where: str, depth: int = 0) -> Any:
    """A value type as JSON (see the module docstring)."""
    if depth > MAX_TYPE_DEPTH:
        raise InvalidModelError(f"{where}: value type nested deeper than {MAX_TYPE_DEPTH}")
    if vtype is None:
        return None
    if isinstance(vtype, TensorInfo):
        shape = None if vtype.shape is None else [_encode_dim(d, where) for d in vtype.shape]
        return {"tensor": vtype.dtype.value, "shape": shape}
    if isinstance(vtype, SequenceInfo):
        return {"seq": encode_type(vtype.elem, where, depth + 1)}
    if isinstance(vtype, OptionalInfo):
        return {"optional": encode_type(vtype.elem, where, depth + 1)}
    if isinstance(vtype, MapInfo):
        return {"map": [vtype.key.value, encode_type(vtype.value, where, depth + 1)]}
    raise InvalidModelError(f"{where}: {vtype!r} is not a value type; cannot save it")


def _encode_dim(dim: Any, where: str) -> Any:
    if dim is None or isinstance(dim, str):
        return dim
    if isinstance(dim, (int, np.integer)) and not isinstance(dim, bool):
        return int(dim)
    raise InvalidModelError(f"{where}: shape dim {dim!r} is not an int, a name or None")


class GraphEncoder:
    """Turns a graph into JSON; ``add_tensor(array, name) -> index`` stores the arrays."""

    def __init__(self, add_tensor: Callable[[np.ndarray, str], int]) -> None:
        self.add_tensor = add_tensor

    def graph(self, graph: Graph, depth: int = 0) -> dict[str, Any]:
        if depth > MAX_GRAPH_DEPTH:
            raise InvalidModelError(
                f"graph {graph.name!r}: subgraphs are nested deeper than {MAX_GRAPH_DEPTH} "
                "levels; the .pfm format refuses such models")
        where = f"graph {graph.name!r}"
        inputs = []
        for v in graph.inputs:
            entry: dict[str, Any] = {"name": v.name}
            if v.is_initializer and graph.initializers.get(v.name) is v:
                entry["initializer"] = True
            else:
                entry["type"] = encode_type(v.type, f"{where} input {v.name!r}")
            if v.doc_string:
                entry["doc_string"] = v.doc_string
            inputs.append(entry)
        initializers = []
        for name, v in graph.initializers.items():
            arr = v.const_value
            if not isinstance(arr, np.ndarray):
                raise InvalidModelError(f"{where}: initializer {name!r} holds "
                                        f"{type(arr).__name__}, not a numpy array")
            entry = {"name": name, "tensor": self.add_tensor(arr, name),
                     "type": encode_type(v.type, f"{where} initializer {name!r}")}
            if v.doc_string:
                entry["doc_string"] = v.doc_string
            initializers.append(entry)
        nodes = [self.node(node, depth) for node in graph.nodes]
        out: dict[str, Any] = {
            "name": graph.name,
            "inputs": inputs,
            "initializers": initializers,
            "nodes": nodes,
            "outputs": [v.name for v in graph.outputs],
            "value_info": {name: encode_type(t, f"{where} value_info {name!r}")
                           for name, t in graph.value_info.items()},
        }
        if graph.doc_string:
            out["doc_string"] = graph.doc_string
        return out

    def node(self, node: Node, depth: int) -> dict[str, Any]:
        where = f"node {node.name!r} ({node.qualified_op})"
        out: dict[str, Any] = {
            "op_type": node.op_type,
            "domain": node.domain,
            "name": node.name,
            "inputs": ["" if v is None else v.name for v in node.inputs],
            "outputs": ["" if v is None else v.name for v in node.outputs],
            "output_types": [None if v is None else encode_type(v.type, f"{where} output")
                             for v in node.outputs],
            "attributes": {name: self.attr(value, f"{where} attribute {name!r}", depth, 0)
                           for name, value in node.attrs.items()},
            "attr_types": {name: int(t) for name, t in node.attr_types.items()},
        }
        if node.doc_string:
            out["doc_string"] = node.doc_string
        return out

    def attr(self, value: Any, where: str, depth: int, list_depth: int) -> dict[str, Any]:
        # Order matters: bool before int (bool is an int), str/bytes before numpy scalars.
        if value is None:
            return {"none": None}
        if isinstance(value, bool):
            return {"bool": value}
        if isinstance(value, int):
            return {"int": int(value)}
        if isinstance(value, float):
            return {"float": _encode_float(float(value))}
        if isinstance(value, str):
            return {"str": str(value)}
        if isinstance(value, (bytes, bytearray)):
            return {"bytes": base64.b64encode(bytes(value)).decode("ascii")}
        if isinstance(value, DType):
            return {"dtype": value.value}
        if isinstance(value, np.ndarray):
            return {"tensor": self.add_tensor(value, where)}
        if isinstance(value, np.generic):
            return {"scalar": self.add_tensor(np.asarray(value), where)}
        if isinstance(value, Graph):
            return {"graph": self.graph(value, depth + 1)}
        if isinstance(value, (TensorInfo, SequenceInfo, OptionalInfo, MapInfo)):
            return {"type": encode_type(value, where)}
        if isinstance(value, (list, tuple)):
            if list_depth >= MAX_LIST_DEPTH:
                raise InvalidModelError(f"{where}: lists nested deeper than {MAX_LIST_DEPTH}")
            if isinstance(value, list) and value:
                compact = _compact_list(value)
                if compact is not None:
                    return compact
            items = [self.attr(v, where, depth, list_depth + 1) for v in value]
            return {"list" if isinstance(value, list) else "tuple": items}
        raise InvalidModelError(
            f"{where}: cannot save an attribute of type {type(value).__name__}; .pfm stores "
            "int, float, str, bytes, numpy arrays, graphs, value types and lists of those")


def _encode_float(value: float) -> Any:
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def _compact_list(items: list) -> dict[str, list] | None:
    """``{"ints": [...]}`` etc. for a list of one plain scalar type (the common case)."""
    kinds = {type(v) for v in items}
    if kinds == {int}:
        return {"ints": items}
    if kinds == {float}:
        return {"floats": [_encode_float(v) for v in items]}
    if kinds == {str}:
        return {"strs": items}
    return None


# -- decoding ------------------------------------------------------------------------------
def _kind(expected: type | tuple) -> str:
    names = {dict: "an object", list: "a list", str: "a string", int: "an integer",
             bool: "a boolean", float: "a number"}
    if isinstance(expected, tuple):
        return " or ".join(names.get(t, t.__name__) for t in expected)
    return names.get(expected, expected.__name__)


def check(value: Any, expected: type | tuple, where: str) -> Any:
    """``value`` if it has the JSON type ``expected`` (bools are not integers here)."""
    ok = isinstance(value, expected)
    if ok and isinstance(value, bool):
        ok = expected is bool or (isinstance(expected, tuple) and bool in expected)
    if not ok:
        raise InvalidModelError(f"{where} must be {_kind(expected)}, got "
                                f"{type(value).__name__} {_short(value)}")
    return value


_MISSING = object()


def field(obj: Mapping, key: str, expected: type | tuple, where: str,
          default: Any = _MISSING) -> Any:
    """``obj[key]`` type-checked; a missing key is an error unless ``default`` is given."""
    if key not in obj:
        if default is _MISSING:
            raise InvalidModelError(f"{where}: required field {key!r} is missing")
        return default
    return check(obj[key], expected, f"{where}: field {key!r}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def decode_dtype(number: Any, where: str) -> DType:
    check(number, int, where)
    try:
        return DType(number)
    except ValueError:
        raise InvalidModelError(f"{where}: {number} is not an ONNX tensor element type") from None


def decode_type(obj: Any, where: str, depth: int = 0) -> ValueType | None:
    """A value type from its JSON form (see the module docstring)."""
    if depth > MAX_TYPE_DEPTH:
        raise InvalidModelError(f"{where}: value type nested deeper than {MAX_TYPE_DEPTH}")
    if obj is None:
        return None
    check(obj, dict, where)
    if "tensor" in obj:
        dtype = decode_dtype(obj["tensor"], f"{where}: tensor element type")
        shape = field(obj, "shape", (list, type(None)), where)
        if shape is None:
            return TensorInfo(dtype, None)
        if len(shape) > MAX_RANK:
            raise InvalidModelError(f"{where}: rank {len(shape)} exceeds the limit {MAX_RANK}")
        return TensorInfo(dtype, tuple(_decode_dim(d, where) for d in shape))
    if "seq" in obj:
        return SequenceInfo(decode_type(obj["seq"], where, depth + 1))
    if "optional" in obj:
        return OptionalInfo(decode_type(obj["optional"], where, depth + 1))
    if "map" in obj:
        pair = check(obj["map"], list, f"{where}: map type")
        if len(pair) != 2:
            raise InvalidModelError(f"{where}: map type must be [key, value], got {_short(pair)}")
        return MapInfo(decode_dtype(pair[0], f"{where}: map key"),
                       decode_type(pair[1], where, depth + 1))
    raise InvalidModelError(f"{where}: unknown value type {_short(obj)}")


def _decode_dim(dim: Any, where: str) -> Any:
    if dim is None or isinstance(dim, str):
        return dim
    check(dim, int, f"{where}: shape dim")
    if not 0 <= dim <= MAX_DIM:
        raise InvalidModelError(f"{where}: shape dim {dim} is negative or absurdly large")
    return dim


def _decode_float(payload: Any, where: str) -> float:
    if isinstance(payload, str):
        if payload not in _NONFINITE:
            raise InvalidModelError(f"{where}: float {_short(payload)} is not a number, "
                                    "'nan', 'inf' or '-inf'")
        return _NONFINITE[payload]
    try:
        return float(check(payload, (int, float), where))
    except OverflowError:
        raise InvalidModelError(f"{where}: float value {_short(payload)} is out of range") from None


def _describes(vtype: ValueType, dtype: DType, shape: tuple[int, ...]) -> bool:
    """True when ``vtype`` is a tensor type that fits an array of ``dtype`` and ``shape``."""
    if not isinstance(vtype, TensorInfo) or vtype.dtype is not dtype:
        return False
    if vtype.shape is None:
        return True
    return len(vtype.shape) == len(shape) and all(
        not isinstance(d, int) or d == n for d, n in zip(vtype.shape, shape))


class GraphDecoder:
    """Builds ``ir.Graph`` objects from JSON through the IR's own API.

    ``get_tensor(index, where) -> ndarray`` returns (and validates) tensor table entries.
    """

    def __init__(self, get_tensor: Callable[[Any, str], np.ndarray]) -> None:
        self.get_tensor = get_tensor

    def graph(self, obj: Any, parent: Graph | None = None,
              outer: Mapping[str, Value] | None = None, depth: int = 0,
              where: str = "graph") -> Graph:
        if depth > MAX_GRAPH_DEPTH:
            raise InvalidModelError(
                f"{where}: subgraphs are nested deeper than {MAX_GRAPH_DEPTH} levels")
        check(obj, dict, where)
        name = field(obj, "name", str, where)
        where = f"graph {name!r}" if depth == 0 else f"{where} (subgraph {name!r})"
        graph = Graph(name, parent=parent)
        graph.doc_string = field(obj, "doc_string", str, where, "")
        local: dict[str, Value] = {}
        scope = ChainMap(local, outer) if outer is not None else ChainMap(local)

        def define(value: Value, what: str) -> None:
            if not value.name:
                raise InvalidModelError(f"{where}: {what} has an empty name")
            if value.name in local:
                raise InvalidModelError(
                    f"{where}: value name {value.name!r} is defined twice ({what})")
            local[value.name] = value

        for i, entry in enumerate(field(obj, "initializers", list, where)):
            at = f"{where} initializer #{i}"
            check(entry, dict, at)
            init_name = field(entry, "name", str, at)
            at = f"{where} initializer {init_name!r}"
            array = self.get_tensor(field(entry, "tensor", int, at), at)
            vtype = decode_type(entry.get("type"), f"{at} type")
            if init_name in local:
                raise InvalidModelError(f"{where}: initializer name {init_name!r} is used twice")
            stored = DType.from_numpy(array.dtype)
            # The declared type must describe the stored array, or kernels and the planner
            # would be lied to about the constant they get.
            if vtype is not None and not _describes(vtype, stored, array.shape):
                raise InvalidModelError(
                    f"{at}: declared type {_short(entry.get('type'))} does not match the "
                    f"stored tensor ({stored.name} {list(array.shape)})")
            value = graph.add_initializer(init_name, array, dtype=stored)
            if vtype is not None:
                value.type = vtype
            value.doc_string = field(entry, "doc_string", str, at, "")
            define(value, "initializer")

        for i, entry in enumerate(field(obj, "inputs", list, where)):
            at = f"{where} input #{i}"
            check(entry, dict, at)
            input_name = field(entry, "name", str, at)
            at = f"{where} input {input_name!r}"
            if field(entry, "initializer", bool, at, False):
                value = graph.initializers.get(input_name)
                if value is None:
                    raise InvalidModelError(f"{at} is marked as an initializer, but no "
                                            "initializer of that name exists")
                if value.is_graph_input:
                    raise InvalidModelError(f"{at} is listed twice")
                graph.add_input(value)
            else:
                value = Value(input_name, decode_type(entry.get("type"), f"{at} type"))
                define(value, "graph input")
                graph.add_input(value)
            doc = field(entry, "doc_string", str, at, "")
            if doc:
                value.doc_string = doc

        # Create every node output first so node inputs (and subgraph captures) can be
        # resolved by name; an order problem is then reported by verify(), not as "undefined".
        node_objs = field(obj, "nodes", list, where)
        outputs_of: list[list[Value | None]] = []
        for i, entry in enumerate(node_objs):
            at = f"{where} node #{i}"
            check(entry, dict, at)
            names = field(entry, "outputs", list, at)
            types = field(entry, "output_types", list, at, [None] * len(names))
            if len(types) != len(names):
                raise InvalidModelError(f"{at}: {len(names)} outputs but {len(types)} output "
                                        "types")
            outs: list[Value | None] = []
            for k, (out_name, out_type) in enumerate(zip(names, types)):
                check(out_name, str, f"{at} output {k} name")
                if not out_name:
                    outs.append(None)
                    continue
                value = Value(out_name, decode_type(out_type, f"{at} output {out_name!r} type"))
                define(value, f"output {k} of node #{i}")
                outs.append(value)
            outputs_of.append(outs)

        for i, (entry, outs) in enumerate(zip(node_objs, outputs_of)):
            graph.insert_node(self.node(entry, outs, graph, scope, depth, f"{where} node #{i}"))

        for i, out_name in enumerate(field(obj, "outputs", list, where)):
            check(out_name, str, f"{where} output #{i}")
            value = scope.get(out_name)
            if value is None:
                raise InvalidModelError(f"{where}: graph output {out_name!r} is not defined by "
                                        "any input, initializer or node")
            graph.add_output(value)

        for vi_name, vi_type in field(obj, "value_info", dict, where, {}).items():
            graph.value_info[vi_name] = decode_type(vi_type, f"{where} value_info {vi_name!r}")
        return graph

    def node(self, obj: dict, outs: list[Value | None], graph: Graph,
             scope: Mapping[str, Value], depth: int, where: str) -> Node:
        op_type = field(obj, "op_type", str, where)
        domain = field(obj, "domain", str, where, "")
        name = field(obj, "name", str, where, "")
        where = f"{where} ({op_type} {name!r})" if name else f"{where} ({op_type})"
        inputs: list[Value | None] = []
        for k, in_name in enumerate(field(obj, "inputs", list, where)):
            check(in_name, str, f"{where} input {k}")
            if not in_name:
                inputs.append(None)
                continue
            value = scope.get(in_name)
            if value is None:
                raise InvalidModelError(
                    f"{where}: input {k} {in_name!r} is not defined in this graph or an "
                    "enclosing one (no input, initializer or node output has that name)")
            inputs.append(value)
        attrs = {}
        for attr_name, attr_obj in field(obj, "attributes", dict, where, {}).items():
            attrs[attr_name] = self.attr(attr_obj, graph, scope, depth, 0,
                                         f"{where} attribute {attr_name!r}")
        node = Node(op_type, inputs, outs, attrs, domain=domain, name=name)
        for attr_name, kind in field(obj, "attr_types", dict, where, {}).items():
            check(kind, int, f"{where} attr_types[{attr_name!r}]")
            if not 0 <= kind <= MAX_ATTR_TYPE:
                raise InvalidModelError(f"{where}: attr_types[{attr_name!r}] = {kind} is not "
                                        "an ONNX attribute type (0..14)")
            node.attr_types[attr_name] = kind
        node.doc_string = field(obj, "doc_string", str, where, "")
        return node

    def attr(self, obj: Any, graph: Graph, scope: Mapping[str, Value], depth: int,
             list_depth: int, where: str) -> Any:
        check(obj, dict, where)
        if len(obj) != 1:
            raise InvalidModelError(f"{where}: an attribute value must be a one-key object "
                                    f"like {{\"int\": 1}}, got {_short(obj)}")
        (tag, payload), = obj.items()
        if tag == "int":
            return check(payload, int, where)
        if tag == "bool":
            return check(payload, bool, where)
        if tag == "float":
            return _decode_float(payload, where)
        if tag == "ints":
            if not all(type(v) is int for v in check(payload, list, where)):
                raise InvalidModelError(f"{where}: 'ints' must be a list of integers")
            return payload
        if tag == "floats":
            return [_decode_float(v, where) for v in check(payload, list, where)]
        if tag == "strs":
            if not all(type(v) is str for v in check(payload, list, where)):
                raise InvalidModelError(f"{where}: 'strs' must be a list of strings")
            return payload
        if tag == "str":
            return check(payload, str, where)
        if tag == "bytes":
            try:
                return base64.b64decode(check(payload, str, where), validate=True)
            except ValueError:
                raise InvalidModelError(f"{where}: bytes value is not valid base64") from None
        if tag == "tensor":
            return self.get_tensor(check(payload, int, where), where)
        if tag == "scalar":
            array = self.get_tensor(check(payload, int, where), where)
            if array.ndim != 0:
                raise InvalidModelError(f"{where}: scalar refers to a tensor of shape "
                                        f"{array.shape}, not a 0-d one")
            return array[()]
        if tag == "graph":
            return self.graph(payload, graph, scope, depth + 1, where)
        if tag in ("list", "tuple"):
            if list_depth >= MAX_LIST_DEPTH:
                raise InvalidModelError(f"{where}: lists nested deeper than {MAX_LIST_DEPTH}")
            items = [self.attr(item, graph, scope, depth, list_depth + 1, f"{where}[{k}]")
                     for k, item in enumerate(check(payload, list, where))]
            return items if tag == "list" else tuple(items)
        if tag == "type":
            return decode_type(payload, where)
        if tag == "dtype":
            return decode_dtype(payload, where)
        if tag == "none":
            if payload is not None:
                raise InvalidModelError(f"{where}: 'none' must be null")
            return None
        raise InvalidModelError(f"{where}: unknown attribute kind {tag!r}")
