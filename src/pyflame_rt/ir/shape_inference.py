"""Type and shape inference over the IR, with symbolic dims.

``infer_shapes(graph)`` visits every node in topological order (subgraphs included) and fills
``Value.type`` for its outputs. Default-domain ops (and any domain ONNX has schemas for) use
ONNX's own per-node inference, ``onnx.shape_inference.infer_node_outputs``; control flow
(If/Loop/Scan) and custom ops use shape functions registered here with
:func:`register_shape_function`.

Small integer tensors are tracked as constants while walking the graph (initializers,
``Constant`` outputs, and ``Shape``/``Gather``/``Concat``/``Unsqueeze``/``Slice``/... over
them) and handed to ONNX as ``input_data``, so ``Reshape``/``Expand``/``ConstantOfShape``
targets get concrete shapes. When such a "shape tensor" holds symbolic dims (``Shape`` of an
input with a ``"N"`` batch dim), its entries are tracked symbolically and ``Reshape``,
``Expand`` and ``ConstantOfShape`` get their output dims from it (ONNX's per-node inference
cannot see symbolic data).

Types are merged, never degraded: a dim known as an int is never replaced by a symbol or by
``None``; when a declared fixed dim conflicts with the inferred one the inferred one is kept.
"""

from __future__ import annotations

import contextlib
import functools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.defs import OpSchema

from ..errors import InvalidArgumentError, InvalidGraphError
from ..types import (
    DType,
    MapInfo,
    OptionalInfo,
    SequenceInfo,
    TensorInfo,
    ValueType,
    shape_string,
    type_string,
)
from .order import topological_order

if TYPE_CHECKING:
    from .graph import Graph, Node, Value

__all__ = [
    "ShapeContext",
    "ShapeFunction",
    "from_type_proto",
    "infer_shapes",
    "join_types",
    "merge_types",
    "register_shape_function",
    "to_type_proto",
]

# Constants above this many elements are neither computed nor handed to ONNX: shape tensors
# are tiny, and serializing every weight for every node would make inference slow.
_MAX_CONST_ELEMS = 4096


# -- TypeProto converters ----------------------------------------------------------------------
def to_type_proto(vtype: ValueType | None) -> onnx.TypeProto:
    """Our value type as an ``onnx.TypeProto`` (an empty proto for ``None``, i.e. unknown)."""
    proto = onnx.TypeProto()
    if vtype is None:
        return proto
    if isinstance(vtype, TensorInfo):
        tensor = proto.tensor_type
        tensor.elem_type = vtype.dtype.value
        if vtype.shape is not None:
            tensor.shape.SetInParent()  # rank 0 must still be "shape present"
            for d in vtype.shape:
                dim = tensor.shape.dim.add()
                if isinstance(d, str):
                    dim.dim_param = d
                elif d is not None:
                    dim.dim_value = int(d)
    elif isinstance(vtype, SequenceInfo):
        proto.sequence_type.SetInParent()
        if vtype.elem is not None:
            proto.sequence_type.elem_type.CopyFrom(to_type_proto(vtype.elem))
    elif isinstance(vtype, OptionalInfo):
        proto.optional_type.SetInParent()
        if vtype.elem is not None:
            proto.optional_type.elem_type.CopyFrom(to_type_proto(vtype.elem))
    elif isinstance(vtype, MapInfo):
        proto.map_type.key_type = vtype.key.value
        if vtype.value is not None:
            proto.map_type.value_type.CopyFrom(to_type_proto(vtype.value))
    else:
        raise TypeError(f"not a value type: {vtype!r}")
    return proto


def from_type_proto(proto: onnx.TypeProto) -> ValueType | None:
    """An ``onnx.TypeProto`` as our value type; ``None`` when it says nothing usable."""
    kind = proto.WhichOneof("value")
    if kind == "tensor_type":
        tensor = proto.tensor_type
        if not tensor.elem_type:
            return None
        try:
            dtype = DType.from_onnx(tensor.elem_type)
        except ValueError:
            return None
        if not tensor.HasField("shape"):
            return TensorInfo(dtype, None)
        dims: list = []
        for dim in tensor.shape.dim:
            which = dim.WhichOneof("value")
            if which == "dim_value":
                dims.append(int(dim.dim_value))
            elif which == "dim_param" and dim.dim_param:
                dims.append(dim.dim_param)
            else:
                dims.append(None)
        return TensorInfo(dtype, tuple(dims))
    if kind == "sequence_type":
        elem = proto.sequence_type
        return SequenceInfo(from_type_proto(elem.elem_type) if elem.HasField("elem_type")
                            else None)
    if kind == "optional_type":
        elem = proto.optional_type
        return OptionalInfo(from_type_proto(elem.elem_type) if elem.HasField("elem_type")
                            else None)
    if kind == "map_type":
        try:
            key = DType.from_onnx(proto.map_type.key_type)
        except ValueError:
            return None
        value = (from_type_proto(proto.map_type.value_type)
                 if proto.map_type.HasField("value_type") else None)
        return MapInfo(key, value)
    return None  # sparse tensors and empty protos


# -- merging -----------------------------------------------------------------------------------
def _merge_dim(old: Any, new: Any) -> Any:
    if new is None:
        return old
    if old is None:
        return new
    if isinstance(old, int) and isinstance(new, int):
        return new  # a conflict between fixed dims: the inferred one wins
    if isinstance(old, int):
        return old
    if isinstance(new, int):
        return new
    return old  # two symbols: keep the declared name users see


def merge_types(old: ValueType | None, new: ValueType | None) -> ValueType | None:
    """The more precise of two types for the same value, dim by dim.

    ``old`` is what the value has (declared or inferred earlier), ``new`` what inference says.
    Nothing known in ``old`` is lost unless ``new`` contradicts it (different element type,
    rank or fixed dim), in which case ``new`` wins.
    """
    if new is None:
        return old
    if old is None or type(old) is not type(new):
        return new
    if isinstance(new, TensorInfo):
        if old.dtype != new.dtype:
            return new
        if new.shape is None:
            return old
        if old.shape is None or len(old.shape) != len(new.shape):
            return new
        return TensorInfo(new.dtype, tuple(_merge_dim(a, b) for a, b in zip(old.shape, new.shape)))
    if isinstance(new, SequenceInfo):
        return SequenceInfo(merge_types(old.elem, new.elem))
    if isinstance(new, OptionalInfo):
        return OptionalInfo(merge_types(old.elem, new.elem))
    if isinstance(new, MapInfo):
        if old.key != new.key:
            return new
        return MapInfo(new.key, merge_types(old.value, new.value))
    return new


def join_types(a: ValueType | None, b: ValueType | None) -> ValueType | None:
    """What two types have in common (for values that may take either): dims that agree stay,
    others become ``None``; different element types or kinds give ``None``."""
    if a is None or b is None or type(a) is not type(b):
        return None
    if isinstance(a, TensorInfo):
        if a.dtype != b.dtype:
            return None
        if a.shape is None or b.shape is None or len(a.shape) != len(b.shape):
            return TensorInfo(a.dtype, None)
        return TensorInfo(a.dtype, tuple(x if x == y else None for x, y in zip(a.shape, b.shape)))
    if isinstance(a, SequenceInfo):
        return SequenceInfo(join_types(a.elem, b.elem))
    if isinstance(a, OptionalInfo):
        return OptionalInfo(join_types(a.elem, b.elem))
    if isinstance(a, MapInfo):
        return MapInfo(a.key, join_types(a.value, b.value)) if a.key == b.key else None
    return None


def _describe_type(vtype: ValueType | None) -> str:
    if isinstance(vtype, TensorInfo):
        return type_string(vtype) + shape_string(vtype.shape)
    return type_string(vtype)


# -- inference state ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _ShapeData:
    """The contents of a small int64/int32 tensor whose entries are dims (``Shape`` outputs and
    arithmetic on them): ints, symbols or ``None``. ``scalar`` marks a 0-d tensor."""

    dims: tuple
    scalar: bool = False
    dtype: DType = DType.INT64

    def is_concrete(self) -> bool:
        return all(isinstance(d, int) for d in self.dims)

    def to_array(self) -> np.ndarray:
        arr = np.array(self.dims, dtype=self.dtype.numpy)
        return arr.reshape(()) if self.scalar else arr


class _State:
    """Types, constants and shape data found so far; subgraphs get a child state that sees its
    parent's, so a Loop body can be inferred several times before its results are kept."""

    def __init__(self, parent: _State | None, opset_imports: dict[str, int], strict: bool) -> None:
        self.parent = parent
        self.opset_imports = opset_imports
        self.strict = strict
        self.types: dict[int, tuple[Value, ValueType | None]] = {}
        self.consts: dict[int, np.ndarray] = {}
        self.shape_data: dict[int, _ShapeData] = {}

    def child(self) -> _State:
        return _State(self, self.opset_imports, self.strict)

    def type_of(self, v: Value) -> ValueType | None:
        state: _State | None = self
        while state is not None:
            entry = state.types.get(id(v))
            if entry is not None:
                return entry[1]
            state = state.parent
        if v.type is None and v.graph is not None:
            return v.graph.value_info.get(v.name)
        return v.type

    def set_type(self, v: Value, vtype: ValueType | None) -> None:
        self.types[id(v)] = (v, merge_types(self.type_of(v), vtype))

    def const_of(self, v: Value | None) -> np.ndarray | None:
        if v is None:
            return None
        state: _State | None = self
        while state is not None:
            arr = state.consts.get(id(v))
            if arr is not None:
                return arr
            state = state.parent
        # An initializer also listed as a graph input can be overridden at run time.
        if v.const_value is not None and v.producer is None and not v.is_graph_input:
            return np.asarray(v.const_value)
        return None

    def data_of(self, v: Value | None) -> _ShapeData | None:
        """Shape data of ``v``: tracked symbolic entries, or a small int constant's entries."""
        if v is None:
            return None
        state: _State | None = self
        while state is not None:
            data = state.shape_data.get(id(v))
            if data is not None:
                return data
            state = state.parent
        arr = self.const_of(v)
        if arr is not None and arr.ndim <= 1 and arr.dtype.kind in "iu" and \
                arr.size <= _MAX_CONST_ELEMS:
            return _ShapeData(tuple(int(x) for x in arr.reshape(-1)), arr.ndim == 0,
                              DType.from_numpy(arr.dtype))
        return None

    def absorb(self, other: _State) -> None:
        self.types.update(other.types)
        self.consts.update(other.consts)
        self.shape_data.update(other.shape_data)

    def commit(self) -> int:
        changed = 0
        for value, vtype in self.types.values():
            if vtype is not None and vtype != value.type:
                value.type = vtype
                changed += 1
        return changed


# -- shape-function registry -------------------------------------------------------------------
class ShapeContext:
    """What a shape function gets: the node, its input types and helpers.

    Attributes:
        node: The node being inferred.
        input_types: One type (or ``None`` when unknown / input omitted) per node input.
        opset: The model's opset for the node's domain (``None`` when not imported).
        strict: Whether the caller asked for strict inference.
    """

    def __init__(self, node: Node, input_types: list[ValueType | None], state: _State) -> None:
        self.node = node
        self.input_types = list(input_types)
        self._state = state
        self.opset = state.opset_imports.get(_norm_domain(node.domain))
        self.strict = state.strict
        self._children: dict[int, _State] = {}

    def constant(self, index: int) -> np.ndarray | None:
        """The value of input ``index`` when it is a known constant, else ``None``."""
        inputs = self.node.inputs
        return self._state.const_of(inputs[index]) if index < len(inputs) else None

    def infer_onnx(self, op_type: str, input_types: Sequence[ValueType | None] | None = None,
                   attrs: dict[str, Any] | None = None, *, domain: str = "",
                   num_outputs: int | None = None) -> list[ValueType | None]:
        """Types ONNX infers for ``op_type`` applied to this node's inputs (or ``input_types``).

        Lets a fused op reuse a standard op's inference, e.g. a ``pyflame.FusedConv`` asks for
        ``ctx.infer_onnx("Conv", attrs=conv_attrs)``. Constant inputs are passed along when the
        input list is this node's own.
        """
        schema = _find_schema(op_type, domain, self._state.opset_imports)
        if schema is None:
            raise InvalidGraphError(f"{self.node.describe()}: ONNX has no schema for "
                                    f"{op_type!r} in domain {domain!r}")
        own = input_types is None
        types = self.input_types if own else list(input_types)
        args: list[tuple[ValueType | None, np.ndarray | None] | None] = []
        for i, t in enumerate(types):
            v = self.node.inputs[i] if own else None
            if own and v is None:
                args.append(None)
            else:
                args.append((t, self._state.const_of(v) if own else None))
        count = len(self.node.outputs) if num_outputs is None else num_outputs
        node_attrs = self.node.attrs if attrs is None else attrs
        attr_types = self.node.attr_types if attrs is None else {}
        try:
            return _onnx_infer(schema, args, node_attrs, attr_types, count,
                               self._state.opset_imports)
        except _OnnxFailure as exc:
            raise _inference_error(self.node, self.input_types, str(exc)) from None

    def infer_subgraph(self, graph: Graph, input_types: Sequence[ValueType | None]
                       ) -> list[ValueType | None]:
        """Infer a subgraph whose inputs have ``input_types``; returns its output types.

        Calling it again for the same subgraph replaces the earlier result (Loop bodies are
        re-inferred until their carried types stop changing); the last call's types are kept.
        """
        child = self._state.child()
        for v, t in zip(graph.inputs, input_types):
            if t is not None:
                child.set_type(v, t)
        _infer_graph(graph, child)
        self._children[id(graph)] = child
        return [child.type_of(v) for v in graph.outputs]


ShapeFunction = Callable[[ShapeContext], Sequence[ValueType | None]]
_SHAPE_FUNCTIONS: dict[tuple[str, str], ShapeFunction] = {}


def _norm_domain(domain: str) -> str:
    return "" if domain in ("", "ai.onnx") else domain


def register_shape_function(domain: str, op_type: str) -> Callable[[ShapeFunction], ShapeFunction]:
    """Register ``fn(ctx: ShapeContext) -> [type per output]`` for ``domain::op_type``.

    A registered function takes precedence over ONNX's inference for the same op. It returns
    one type (or ``None`` for unknown) per node output; a shorter list leaves the rest unknown.
    Raise ``InvalidGraphError`` for inputs the op cannot accept.
    """
    def decorate(fn: ShapeFunction) -> ShapeFunction:
        _SHAPE_FUNCTIONS[(_norm_domain(domain), op_type)] = fn
        return fn

    return decorate


# -- ONNX per-node inference -------------------------------------------------------------------
class _OnnxFailure(Exception):
    pass


class _AttributeFailure(_OnnxFailure):
    """An attribute value ONNX cannot represent (e.g. an importer's own object)."""


def _find_schema(op_type: str, domain: str, opset_imports: dict[str, int]) -> OpSchema | None:
    domain = _norm_domain(domain)
    version = opset_imports.get(domain)
    if version is None:
        version = onnx.defs.onnx_opset_version() if domain == "" else None
    return _schema_at(op_type, domain, version)


@functools.lru_cache(maxsize=4096)
def _schema_at(op_type: str, domain: str, version: int | None) -> OpSchema | None:
    """ONNX's schema lookup, memoized: the optimizer re-infers every node after each change."""
    try:
        if version is None:
            return onnx.defs.get_schema(op_type, domain)
        return onnx.defs.get_schema(op_type, version, domain)
    except onnx.defs.SchemaError:
        return None


# -- memo of ONNX's per-node inference -------------------------------------------------------
# The optimizer re-runs inference after every change, and a transformer repeats the same
# layer many times: the same (op, input types, small constants, attributes) query comes back
# again and again. Its answer depends only on that key, so it is kept, bounded in entries
# and in the constant bytes the keys hold (constants up to _MAX_CONST_ELEMS elements are part
# of a query: BatchNormalization's per-channel parameters, a Reshape target, ...).
_MEMO_MAX_ENTRIES = 8192
_MEMO_MAX_BYTES = 16 << 20
_MEMO_MAX_ATTR_BYTES = 1 << 15
_onnx_memo: dict[Any, tuple[ValueType | None, ...]] = {}
_memo_bytes = 0
_UNCACHEABLE = object()


def _memo_array(arr: np.ndarray) -> Any:
    if arr.dtype.kind in "OUSV":
        return _UNCACHEABLE  # object data has no stable bytes
    return ("a", arr.dtype.str, arr.shape, arr.tobytes())


def _key_bytes(key: Any) -> int:
    """Bytes of constant data held by a memo key (its arrays' ``tobytes``)."""
    if isinstance(key, bytes):
        return len(key)
    if isinstance(key, tuple):
        return sum(_key_bytes(k) for k in key)
    return 0


def _memo_attr(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return (type(value).__name__, value)
    if isinstance(value, np.generic):
        return ("g", value.dtype.str, value.item())
    if isinstance(value, np.ndarray):
        # (A big tensor attribute, e.g. a Constant's value, would bloat the key.)
        return _memo_array(value) if value.nbytes <= _MEMO_MAX_ATTR_BYTES else _UNCACHEABLE
    if isinstance(value, (TensorInfo, SequenceInfo, OptionalInfo, MapInfo)):
        return value
    if isinstance(value, (list, tuple)):
        items = tuple(_memo_attr(x) for x in value)
        return _UNCACHEABLE if any(x is _UNCACHEABLE for x in items) else ("l", items)
    return _UNCACHEABLE  # graphs, protos, importer objects: not worth a key


def _memo_key(schema: OpSchema, inputs: Sequence[tuple[ValueType | None, Any] | None],
              attrs: dict[str, Any], attr_types: dict[str, int], num_outputs: int,
              opset_imports: dict[str, int]) -> Any:
    parts: list[Any] = [schema.name, schema.domain, schema.since_version, num_outputs,
                        tuple(sorted(opset_imports.items()))]
    for arg in inputs:
        if arg is None:
            parts.append(None)
            continue
        vtype, const = arg
        if const is not None and const.size <= _MAX_CONST_ELEMS:
            data = _memo_array(np.asarray(const))
            if data is _UNCACHEABLE:
                return None
        else:
            data = None
        parts.append((vtype, data))
    for key in sorted(attrs):
        value = _memo_attr(attrs[key])
        if value is _UNCACHEABLE:
            return None
        parts.append((key, attr_types.get(key), value))
    try:
        key_ = tuple(parts)
        hash(key_)
    except TypeError:
        return None
    return key_


_A = onnx.AttributeProto


def _attribute_proto(name: str, value: Any, attr_type: int | None) -> onnx.AttributeProto:
    """An AttributeProto from our attribute value, coerced to ``attr_type`` when known."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (TensorInfo, SequenceInfo, OptionalInfo, MapInfo)):
        value = to_type_proto(value)
    if attr_type in (_A.FLOAT, _A.INT) and isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if attr_type == _A.FLOAT:
        value = float(value)
    elif attr_type == _A.INT:
        value = int(value)
    elif attr_type in (_A.FLOATS, _A.INTS, _A.STRINGS, _A.TENSORS, _A.TYPE_PROTOS):
        value = list(value.reshape(-1)) if isinstance(value, np.ndarray) else list(value)
        if attr_type == _A.FLOATS:
            value = [float(x) for x in value]
        elif attr_type == _A.INTS:
            value = [int(x) for x in value]
        elif attr_type == _A.TENSORS:
            value = [numpy_helper.from_array(np.asarray(x)) for x in value]
        elif attr_type == _A.TYPE_PROTOS:
            value = [x if isinstance(x, onnx.TypeProto) else to_type_proto(x) for x in value]
    elif isinstance(value, np.ndarray):
        value = numpy_helper.from_array(value)
    elif isinstance(value, (list, tuple)):
        value = [x.item() if isinstance(x, np.generic)
                 else numpy_helper.from_array(x) if isinstance(x, np.ndarray) else x
                 for x in value]
    return helper.make_attribute(name, value, attr_type=attr_type)


def _onnx_infer(schema: OpSchema, inputs: Sequence[tuple[ValueType | None, Any] | None],
                attrs: dict[str, Any], attr_types: dict[str, int], num_outputs: int,
                opset_imports: dict[str, int]) -> list[ValueType | None]:
    """Run ONNX's inference for one node; ``inputs`` holds ``(type, const)`` or ``None`` for an
    omitted input. Raises ``_OnnxFailure`` with ONNX's message. Answers are memoized."""
    key = _memo_key(schema, inputs, attrs, attr_types, num_outputs, opset_imports)
    if key is not None:
        hit = _onnx_memo.get(key)
        if hit is not None:
            return list(hit)
    result = _onnx_infer_uncached(schema, inputs, attrs, attr_types, num_outputs,
                                  opset_imports)
    if key is not None:
        global _memo_bytes
        size = _key_bytes(key)
        if len(_onnx_memo) >= _MEMO_MAX_ENTRIES or _memo_bytes + size > _MEMO_MAX_BYTES:
            _onnx_memo.clear()
            _memo_bytes = 0
        _onnx_memo[key] = tuple(result)
        _memo_bytes += size
    return result


def _onnx_infer_uncached(schema: OpSchema,
                         inputs: Sequence[tuple[ValueType | None, Any] | None],
                         attrs: dict[str, Any], attr_types: dict[str, int], num_outputs: int,
                         opset_imports: dict[str, int]) -> list[ValueType | None]:
    in_names, in_types, in_data = [], {}, {}
    for i, arg in enumerate(inputs):
        if arg is None:
            in_names.append("")
            continue
        name = f"in{i}"
        in_names.append(name)
        vtype, const = arg
        in_types[name] = to_type_proto(vtype)
        if const is not None and const.size <= _MAX_CONST_ELEMS:
            # An exotic dtype numpy_helper cannot write is simply not passed as data.
            with contextlib.suppress(Exception):
                in_data[name] = numpy_helper.from_array(np.asarray(const), name)
    out_names = [f"out{i}" for i in range(num_outputs)]
    node = onnx.NodeProto()
    node.op_type = schema.name
    node.domain = schema.domain
    node.input.extend(in_names)
    node.output.extend(out_names)
    for key, value in attrs.items():
        if value is None:
            continue
        attr_type = attr_types.get(key)
        if attr_type is None and key in schema.attributes:
            attr_type = int(schema.attributes[key].type)
        try:
            node.attribute.append(_attribute_proto(key, value, attr_type))
        except (TypeError, ValueError) as exc:
            raise _AttributeFailure(f"attribute {key}={value!r} cannot be written as an ONNX "
                                    f"attribute ({exc})") from None
    opsets = [helper.make_opsetid(d, v) for d, v in opset_imports.items()]
    try:
        result = onnx.shape_inference.infer_node_outputs(
            schema, node, in_types, input_data=in_data, opset_imports=opsets)
    except Exception as exc:  # noqa: BLE001 - InferenceError, ValidationError, ...
        raise _OnnxFailure(str(exc)) from None
    return [from_type_proto(result[n]) if n in result else None for n in out_names]


def _inference_error(node: Node, input_types: Sequence[ValueType | None],
                     message: str) -> InvalidGraphError:
    args = ", ".join(f"{'<none>' if v is None else v.name}: {_describe_type(t)}"
                     for v, t in zip(node.inputs, input_types))
    return InvalidGraphError(
        f"shape inference failed for {node.describe()} with inputs ({args}): {message}. "
        "Check that the inputs' shapes and types are valid for this op (a wrong declared "
        "input shape or an input_shapes override is the usual cause).")


# -- constant folding and shape data -----------------------------------------------------------
# What a folder returns per output: a constant, symbolic shape data, or nothing known.
_Folded = Any


def _small(arr: np.ndarray) -> np.ndarray | None:
    return arr if arr.size <= _MAX_CONST_ELEMS else None


def _axes_input(node: Node, st: _State, index: int, attr: str = "axes") -> list[int] | None:
    """Axes given as attribute (old opsets) or as input ``index`` (new ones)."""
    if attr in node.attrs:
        return [int(a) for a in np.asarray(node.attrs[attr]).reshape(-1)]
    if index < len(node.inputs) and node.inputs[index] is not None:
        arr = st.const_of(node.inputs[index])
        return None if arr is None else [int(a) for a in arr.reshape(-1)]
    return []


def _fold_constant(node: Node, st: _State, in_types: list) -> list[_Folded]:
    attrs = node.attrs
    if "value" in attrs and isinstance(attrs["value"], np.ndarray):
        return [np.asarray(attrs["value"])]
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in attrs:
            return [np.asarray(attrs[key], dtype=dtype)]
    return [None]


def _fold_shape(node: Node, st: _State, in_types: list) -> list[_Folded]:
    t = in_types[0]
    if not isinstance(t, TensorInfo) or t.shape is None:
        return [None]
    rank = len(t.shape)

    def clamp(i: int) -> int:
        return min(max(i + rank if i < 0 else i, 0), rank)

    start = clamp(int(node.attrs.get("start", 0)))
    end = clamp(int(node.attrs["end"])) if node.attrs.get("end") is not None else rank
    return [_ShapeData(tuple(t.shape[start:end]))]


def _fold_size(node: Node, st: _State, in_types: list) -> list[_Folded]:
    t = in_types[0]
    if isinstance(t, TensorInfo) and t.is_static():
        return [np.asarray(int(np.prod(t.shape, dtype=np.int64)), dtype=np.int64)]
    return [None]


def _fold_identity(node: Node, st: _State, in_types: list) -> list[_Folded]:
    arr = st.const_of(node.inputs[0])
    return [arr if arr is not None else st.data_of(node.inputs[0])]


def _fold_cast(node: Node, st: _State, in_types: list) -> list[_Folded]:
    try:
        to = DType.from_onnx(node.attrs.get("to", 0))
    except ValueError:
        return [None]
    arr = st.const_of(node.inputs[0])
    if arr is not None:
        if to is DType.STRING or arr.dtype.kind in "OUS":
            return [None]
        with np.errstate(all="ignore"):
            return [arr.astype(to.numpy)]
    data = st.data_of(node.inputs[0])
    if data is not None and to in (DType.INT64, DType.INT32):
        return [_ShapeData(data.dims, data.scalar, to)]
    return [None]


def _fold_gather(node: Node, st: _State, in_types: list) -> list[_Folded]:
    axis = int(node.attrs.get("axis", 0))
    indices = st.const_of(node.inputs[1])
    if indices is None or indices.dtype.kind not in "iu":
        return [None]
    arr = st.const_of(node.inputs[0])
    if arr is not None and arr.ndim > 0:
        if arr.size // max(arr.shape[axis % arr.ndim], 1) * indices.size > _MAX_CONST_ELEMS:
            return [None]
        try:
            return [np.take(arr, indices.astype(np.int64), axis=axis)]
        except IndexError:
            return [None]  # ONNX's inference reports invalid indices where it can
    data = st.data_of(node.inputs[0])
    if data is None or data.scalar or axis not in (0, -1) or indices.ndim > 1:
        return [None]
    n = len(data.dims)
    picked = []
    for i in indices.reshape(-1):
        i = int(i)
        if not -n <= i < n:
            return [None]
        picked.append(data.dims[i])
    return [_ShapeData(tuple(picked), indices.ndim == 0, data.dtype)]


def _fold_unsqueeze(node: Node, st: _State, in_types: list) -> list[_Folded]:
    axes = _axes_input(node, st, 1)
    if not axes:
        return [None]
    arr = st.const_of(node.inputs[0])
    if arr is not None:
        out_rank = arr.ndim + len(axes)
        try:
            return [np.expand_dims(arr, tuple(sorted(a % out_rank for a in axes)))]
        except (ValueError, np.exceptions.AxisError):
            return [None]
    data = st.data_of(node.inputs[0])
    if data is not None and data.scalar and axes in ([0], [-1]):
        return [_ShapeData(data.dims, False, data.dtype)]
    return [None]


def _fold_squeeze(node: Node, st: _State, in_types: list) -> list[_Folded]:
    axes = _axes_input(node, st, 1)
    if axes is None:
        return [None]
    arr = st.const_of(node.inputs[0])
    if arr is not None:
        try:
            return [np.squeeze(arr, axis=tuple(axes) if axes else None)]
        except (ValueError, np.exceptions.AxisError):
            return [None]
    data = st.data_of(node.inputs[0])
    if data is not None and not data.scalar and len(data.dims) == 1 and axes in ([], [0], [-1]):
        return [_ShapeData(data.dims, True, data.dtype)]
    return [None]


def _fold_concat(node: Node, st: _State, in_types: list) -> list[_Folded]:
    axis = int(node.attrs.get("axis", 0))
    arrays = [st.const_of(v) for v in node.inputs]
    if all(a is not None for a in arrays) and arrays:
        try:
            return [_small(np.concatenate(arrays, axis=axis))]
        except (ValueError, np.exceptions.AxisError):
            return [None]
    parts = [st.data_of(v) for v in node.inputs]
    if axis not in (0, -1) or not parts or any(p is None or p.scalar for p in parts):
        return [None]
    return [_ShapeData(tuple(d for p in parts for d in p.dims), False, parts[0].dtype)]


def _slice_params(node: Node, st: _State) -> tuple | None:
    if st.opset_imports.get("", 1) < 10 or "starts" in node.attrs:
        starts, ends = node.attrs.get("starts"), node.attrs.get("ends")
        axes, steps = node.attrs.get("axes"), None
    else:
        params = [st.const_of(node.inputs[i]) if i < len(node.inputs) else None
                  for i in range(1, 5)]
        starts, ends, axes, steps = params
        if any(node.inputs[i] is not None and params[i - 1] is None
               for i in range(1, min(len(node.inputs), 5))):
            return None  # a non-constant parameter
    if starts is None or ends is None:
        return None
    starts = [int(x) for x in np.asarray(starts).reshape(-1)]
    ends = [int(x) for x in np.asarray(ends).reshape(-1)]
    axes = (list(range(len(starts))) if axes is None
            else [int(x) for x in np.asarray(axes).reshape(-1)])
    steps = [1] * len(starts) if steps is None else [int(x) for x in np.asarray(steps).reshape(-1)]
    if not len(starts) == len(ends) == len(axes) == len(steps) or 0 in steps:
        return None
    return starts, ends, axes, steps


def _fold_slice(node: Node, st: _State, in_types: list) -> list[_Folded]:
    params = _slice_params(node, st)
    if params is None:
        return [None]
    starts, ends, axes, steps = params
    arr = st.const_of(node.inputs[0])
    data = None if arr is not None else st.data_of(node.inputs[0])
    rank = arr.ndim if arr is not None else 1
    index = [slice(None)] * rank
    for s, e, a, k in zip(starts, ends, axes, steps):
        if not -rank <= a < rank:
            return [None]
        # Python slicing clamps out-of-range starts/ends the way ONNX Slice does.
        index[a % rank] = slice(s, e, k)
    if arr is not None:
        return [arr[tuple(index)]]
    if data is None or data.scalar:
        return [None]
    return [_ShapeData(tuple(data.dims[index[0]]), False, data.dtype)]


def _int_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # ONNX integer Div truncates toward zero; numpy's // floors.
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (b < 0), -q, q).astype(a.dtype)


_ARITH = {
    "Add": (np.add, lambda x, y: x + y),
    "Sub": (np.subtract, lambda x, y: x - y),
    "Mul": (np.multiply, lambda x, y: x * y),
    "Div": (None, lambda x, y: int(x / y) if y else None),
}


def _fold_arith(node: Node, st: _State, in_types: list) -> list[_Folded]:
    a, b = (st.const_of(v) for v in node.inputs[:2])
    ufunc, scalar_op = _ARITH[node.op_type]
    if a is not None and b is not None:
        if a.dtype != b.dtype or a.dtype.kind not in "iuf":
            return [None]
        try:  # refuse before computing: two small inputs can broadcast to a huge result
            size = int(np.prod(np.broadcast_shapes(a.shape, b.shape), dtype=np.int64))
        except ValueError:
            return [None]
        if size > _MAX_CONST_ELEMS:
            return [None]
        with np.errstate(all="ignore"):
            if node.op_type == "Div":
                if a.dtype.kind in "iu":
                    if np.any(b == 0):
                        return [None]
                    return [_small(_int_div(*np.broadcast_arrays(a, b)))]
                return [_small(np.divide(a, b))]
            return [_small(ufunc(a, b).astype(a.dtype))]
    da, db = (st.data_of(v) for v in node.inputs[:2])
    if da is None or db is None:
        return [None]
    na, nb = len(da.dims), len(db.dims)
    if na != nb and 1 not in (na, nb):
        return [None]
    n = max(na, nb)
    out = []
    for i in range(n):
        x = da.dims[i if na > 1 else 0]
        y = db.dims[i if nb > 1 else 0]
        if isinstance(x, int) and isinstance(y, int):
            out.append(scalar_op(x, y))
        elif node.op_type in ("Mul", "Div") and y == 1:
            out.append(x)  # N * 1, N / 1
        elif node.op_type == "Mul" and x == 1:
            out.append(y)
        elif node.op_type in ("Add", "Sub") and y == 0:
            out.append(x)
        elif node.op_type == "Add" and x == 0:
            out.append(y)
        else:
            out.append(None)
    return [_ShapeData(tuple(out), da.scalar and db.scalar, da.dtype)]


def _fold_constant_of_shape(node: Node, st: _State, in_types: list) -> list[_Folded]:
    shape = st.const_of(node.inputs[0])
    if shape is None or shape.ndim != 1 or np.any(shape < 0):
        return [None]
    if int(np.prod(shape, dtype=np.int64)) > _MAX_CONST_ELEMS:
        return [None]
    value = node.attrs.get("value")
    fill = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    return [np.full(tuple(int(d) for d in shape), fill[0], dtype=fill.dtype)]


def _fold_reshape(node: Node, st: _State, in_types: list) -> list[_Folded]:
    arr, shape = st.const_of(node.inputs[0]), st.const_of(node.inputs[1])
    if arr is None or shape is None:
        return [None]
    target = [int(d) for d in shape.reshape(-1)]
    if not node.attrs.get("allowzero", 0):
        target = [arr.shape[i] if d == 0 and i < arr.ndim else d for i, d in enumerate(target)]
    try:
        return [arr.reshape(target)]
    except ValueError:
        return [None]


_FOLDERS: dict[str, Callable[[Node, _State, list], list[_Folded]]] = {
    "Constant": _fold_constant,
    "Shape": _fold_shape,
    "Size": _fold_size,
    "Identity": _fold_identity,
    "Cast": _fold_cast,
    "Gather": _fold_gather,
    "Unsqueeze": _fold_unsqueeze,
    "Squeeze": _fold_squeeze,
    "Concat": _fold_concat,
    "Slice": _fold_slice,
    "Add": _fold_arith,
    "Sub": _fold_arith,
    "Mul": _fold_arith,
    "Div": _fold_arith,
    "ConstantOfShape": _fold_constant_of_shape,
    "Reshape": _fold_reshape,
}


# -- refining outputs from symbolic shape data -------------------------------------------------
def _broadcast_dim(a: Any, b: Any) -> Any:
    if a == 1:
        return b
    if b == 1 or a == b:
        return a
    if isinstance(a, int) and isinstance(b, int):
        raise _OnnxFailure(f"dims {a} and {b} cannot be broadcast")
    if isinstance(a, int):
        return a  # the other side must be 1 or equal at run time
    if isinstance(b, int):
        return b
    return None


def _reshape_dims(in_shape: tuple | None, target: _ShapeData, allowzero: bool) -> tuple | None:
    dims: list = []
    infer_at = None
    for i, d in enumerate(target.dims):
        if d == 0 and not allowzero:
            dims.append(in_shape[i] if in_shape is not None and i < len(in_shape) else None)
        elif d == -1:
            if infer_at is not None:
                return None
            infer_at = i
            dims.append(None)
        else:
            dims.append(d)
    if infer_at is not None and in_shape is not None and None not in in_shape:
        others = [d for i, d in enumerate(dims) if i != infer_at]
        if None not in others:
            in_ints = int(np.prod([d for d in in_shape if isinstance(d, int)], dtype=np.int64))
            out_ints = int(np.prod([d for d in others if isinstance(d, int)], dtype=np.int64))
            in_syms = Counter(d for d in in_shape if isinstance(d, str))
            out_syms = Counter(d for d in others if isinstance(d, str))
            left = in_syms - out_syms
            if out_ints and in_ints % out_ints == 0 and not out_syms - in_syms:
                q = in_ints // out_ints
                if not left:
                    dims[infer_at] = q
                elif q == 1 and sum(left.values()) == 1:
                    dims[infer_at] = next(iter(left))
    return tuple(dims)


def _refine_with_shape_data(node: Node, st: _State, in_types: list,
                            outs: list[ValueType | None]) -> list[ValueType | None]:
    """Reshape/Expand/ConstantOfShape whose target holds symbols: compute the dims ourselves."""
    index = 0 if node.op_type == "ConstantOfShape" else 1
    if len(node.inputs) <= index or not outs:
        return outs
    target = st.data_of(node.inputs[index])
    if target is None or target.scalar:
        return outs
    base = outs[0]
    data_type = in_types[0] if node.op_type != "ConstantOfShape" else None
    dtype = base.dtype if isinstance(base, TensorInfo) else (
        data_type.dtype if isinstance(data_type, TensorInfo) else None)
    if dtype is None:
        return outs
    in_shape = data_type.shape if isinstance(data_type, TensorInfo) else None
    if node.op_type == "Reshape":
        dims = _reshape_dims(in_shape, target, bool(node.attrs.get("allowzero", 0)))
    elif node.op_type == "Expand":
        if in_shape is None:
            return outs
        a, b = list(in_shape), list(target.dims)
        rank = max(len(a), len(b))
        a, b = [1] * (rank - len(a)) + a, [1] * (rank - len(b)) + b
        dims = tuple(_broadcast_dim(x, y) for x, y in zip(a, b))
    else:
        dims = target.dims
    if dims is None:
        return outs
    return [merge_types(base, TensorInfo(dtype, dims)), *outs[1:]]


# -- the walk ----------------------------------------------------------------------------------
def _infer_graph(graph: Graph, st: _State) -> None:
    for node in topological_order(graph):
        _infer_node(node, st)


def _unknown_op(node: Node, st: _State, why: str) -> list[ValueType | None]:
    if st.strict:
        raise InvalidGraphError(
            f"cannot infer output types of {node.describe()}: {why}. Register one with "
            "pyflame_rt.ir.shape_inference.register_shape_function(domain, op_type), or call "
            "infer_shapes(strict=False) to leave these outputs untyped.")
    return []


def _infer_node(node: Node, st: _State) -> None:
    domain = _norm_domain(node.domain)
    in_types = [None if v is None else st.type_of(v) for v in node.inputs]
    fn = _SHAPE_FUNCTIONS.get((domain, node.op_type))
    outs: list[ValueType | None]
    if fn is not None:
        ctx = ShapeContext(node, in_types, st)
        try:
            outs = list(fn(ctx) or [])
        except InvalidGraphError:
            raise
        except Exception as exc:  # a shape function's bug or a bad model
            raise InvalidGraphError(
                f"the shape function for {node.qualified_op} failed on {node.describe()}: "
                f"{type(exc).__name__}: {exc}") from exc
        for child in ctx._children.values():
            st.absorb(child)
    elif any(True for _ in node.subgraphs()):
        outs = _unknown_op(node, st, f"no shape function is registered for {node.qualified_op}, "
                                     "which has subgraph attributes")
    else:
        schema = _find_schema(node.op_type, domain, st.opset_imports)
        if schema is None:
            version = st.opset_imports.get(domain)
            outs = _unknown_op(node, st, f"no ONNX schema or registered shape function for "
                                         f"{node.qualified_op} (domain {domain!r} opset "
                                         f"{version})")
        else:
            args = [None if v is None else (t, st.const_of(v))
                    for v, t in zip(node.inputs, in_types)]
            try:
                outs = _onnx_infer(schema, args, node.attrs, node.attr_types,
                                   len(node.outputs), st.opset_imports)
            except _AttributeFailure as exc:
                outs = _unknown_op(node, st, str(exc))
            except _OnnxFailure as exc:
                raise _inference_error(node, in_types, str(exc)) from None
    outs = list(outs[:len(node.outputs)]) + [None] * (len(node.outputs) - len(outs))

    if domain == "":
        folder = _FOLDERS.get(node.op_type)
        if folder is not None and node.outputs and node.outputs[0] is not None:
            try:
                folded = folder(node, st, in_types)[0]
            except Exception:  # noqa: BLE001
                # Folding is best effort; a malformed node is ONNX's inference's to report.
                folded = None
            out = node.outputs[0]
            if isinstance(folded, _ShapeData) and folded.is_concrete():
                folded = folded.to_array()
            elif isinstance(folded, np.generic):  # numpy indexing can return scalars
                folded = np.asarray(folded)
            if isinstance(folded, np.ndarray):
                st.consts[id(out)] = folded
                try:
                    exact = TensorInfo(DType.from_numpy(folded.dtype), tuple(folded.shape))
                    outs[0] = merge_types(outs[0], exact)
                except ValueError:
                    pass
            elif isinstance(folded, _ShapeData):
                st.shape_data[id(out)] = folded
        if node.op_type in ("Reshape", "Expand", "ConstantOfShape"):
            try:
                outs = _refine_with_shape_data(node, st, in_types, outs)
            except _OnnxFailure as exc:
                raise _inference_error(node, in_types, str(exc)) from None
    for v, t in zip(node.outputs, outs):
        if v is not None and t is not None:
            st.set_type(v, t)


def _apply_input_shapes(graph: Graph, input_shapes: dict[str, tuple], st: _State) -> None:
    by_name = {v.name: v for v in graph.inputs}
    for name, shape in input_shapes.items():
        v = by_name.get(name)
        if v is None:
            raise InvalidArgumentError(
                f"input_shapes names {name!r}, which is not an input of graph {graph.name!r}; "
                f"the inputs are {sorted(by_name)}")
        declared = st.type_of(v)
        if not isinstance(declared, TensorInfo):
            raise InvalidArgumentError(
                f"input_shapes gives a shape for {name!r}, whose type is "
                f"{type_string(declared)}; only tensor inputs with a known element type can "
                "take a shape")
        dims = tuple(shape)
        for d in dims:
            if not (d is None or isinstance(d, str) or
                    (isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0)):
                raise InvalidArgumentError(
                    f"input_shapes[{name!r}] = {shape!r}: each dim must be an int >= 0, a "
                    "symbolic name or None")
        dims = tuple(int(d) if isinstance(d, (int, np.integer)) else d for d in dims)
        if declared.shape is not None:
            conflict = len(declared.shape) != len(dims) or any(
                isinstance(a, int) and isinstance(b, int) and a != b
                for a, b in zip(declared.shape, dims))
            if conflict:
                raise InvalidArgumentError(
                    f"input_shapes[{name!r}] = {list(dims)} does not fit the declared shape "
                    f"{shape_string(declared.shape)} of input {name!r}; give the declared rank "
                    "and keep its fixed dims")
        st.set_type(v, TensorInfo(declared.dtype, dims))


def infer_shapes(graph: Graph, *, input_shapes: dict[str, tuple] | None = None,
                 strict: bool = False) -> int:
    """Fill ``Value.type`` of every node output (subgraphs included) from the graph inputs.

    Args:
        graph: The graph to annotate in place (normally the top-level graph; its
            ``opset_imports`` choose the op versions).
        input_shapes: Graph input name -> shape overriding the declared one, e.g.
            ``{"x": (8, 3, 224, 224)}`` when compiling a plan for concrete shapes. Dims must
            agree with the declared fixed dims. The inputs' types are updated too, so
            specialize a copy (``clone_graph``) to keep the symbolic graph for other shapes.
        strict: Raise ``InvalidGraphError`` for an op whose outputs cannot be inferred at all
            (a custom op with no registered shape function) instead of leaving them untyped.

    Returns:
        How many values got a new or more precise type (overridden inputs included).

    Raises:
        InvalidGraphError: ONNX's inference rejects a node (e.g. incompatible shapes); the
            message names the node, its input types and ONNX's reason. Also for cycles.
        InvalidArgumentError: ``input_shapes`` names an unknown input or contradicts it.
    """
    st = _State(None, dict(graph.root.opset_imports), strict)
    if input_shapes:
        _apply_input_shapes(graph, input_shapes, st)
    _infer_graph(graph, st)
    return st.commit()


# -- control flow ------------------------------------------------------------------------------
def _graph_attr(ctx: ShapeContext, name: str) -> Graph:
    from .graph import Graph

    sub = ctx.node.attrs.get(name)
    if not isinstance(sub, Graph):
        raise InvalidGraphError(f"{ctx.node.describe()} has no graph attribute {name!r}")
    return sub


def _scalar(dtype: DType) -> TensorInfo:
    return TensorInfo(dtype, ())


@register_shape_function("", "If")
def _if_shape(ctx: ShapeContext) -> list[ValueType | None]:
    then_types = ctx.infer_subgraph(_graph_attr(ctx, "then_branch"), [])
    else_types = ctx.infer_subgraph(_graph_attr(ctx, "else_branch"), [])
    n = len(ctx.node.outputs)
    if len(then_types) != n or len(else_types) != n:
        raise InvalidGraphError(
            f"{ctx.node.describe()}: then_branch has {len(then_types)} outputs and else_branch "
            f"{len(else_types)}, but the If node has {n}; both branches must produce one value "
            "per If output")
    cond = ctx.constant(0)
    if cond is not None and cond.size == 1:
        return then_types if bool(cond.reshape(-1)[0]) else else_types
    return [join_types(a, b) for a, b in zip(then_types, else_types)]


def _carried_fixpoint(ctx: ShapeContext, body: Graph, prefix: list, carried: list,
                      suffix: list, out_start: int) -> tuple[list, list]:
    """Infer ``body`` until the loop-carried types it returns agree with the ones it gets.

    Returns (carried types, all body output types). Each round joins the incoming carried
    types with what the body returns, so dims that change between iterations become unknown.
    """
    n = len(carried)
    outs: list = []
    for _ in range(4):
        outs = ctx.infer_subgraph(body, [*prefix, *carried, *suffix])
        returned = outs[out_start:out_start + n]
        joined = [join_types(a, b) if a is not None else None
                  for a, b in zip(carried, returned + [None] * (n - len(returned)))]
        if joined == carried:
            return carried, outs
        carried = joined
    # Still changing: keep element types only.
    carried = [TensorInfo(t.dtype, None) if isinstance(t, TensorInfo) else None for t in carried]
    outs = ctx.infer_subgraph(body, [*prefix, *carried, *suffix])
    return carried, outs


@register_shape_function("", "Loop")
def _loop_shape(ctx: ShapeContext) -> list[ValueType | None]:
    body = _graph_attr(ctx, "body")
    carried_in = list(ctx.input_types[2:])
    n = len(carried_in)
    if len(body.inputs) != n + 2 or len(body.outputs) < n + 1:
        raise InvalidGraphError(
            f"{ctx.node.describe()}: the Loop body has {len(body.inputs)} inputs and "
            f"{len(body.outputs)} outputs; it needs {n + 2} inputs (iteration number, "
            f"condition, {n} loop-carried) and at least {n + 1} outputs")
    carried, outs = _carried_fixpoint(
        ctx, body, [_scalar(DType.INT64), _scalar(DType.BOOL)], carried_in, [], 1)
    # A carried value of unknown initial type takes the type the body gives it.
    results: list[ValueType | None] = [c if c is not None else o
                                       for c, o in zip(carried, outs[1:1 + n])]
    for t in outs[1 + n:]:
        # Scan outputs stack one body value per iteration; the trip count is not known here.
        if isinstance(t, TensorInfo):
            results.append(TensorInfo(t.dtype, None if t.shape is None else (None, *t.shape)))
        else:
            results.append(None)
    return results


@register_shape_function("", "Scan")
def _scan_shape(ctx: ShapeContext) -> list[ValueType | None]:
    if ctx.opset is not None and ctx.opset < 9:
        return []  # Scan-8's batch layout: left untyped
    body = _graph_attr(ctx, "body")
    m = int(ctx.node.attrs.get("num_scan_inputs", 0))
    n = len(ctx.input_types) - m
    in_axes = list(ctx.node.attrs.get("scan_input_axes") or [0] * m)
    slices: list = []
    seq_len: Any = None
    for i, t in enumerate(ctx.input_types[n:]):
        if isinstance(t, TensorInfo) and t.shape is not None and t.shape:
            axis = int(in_axes[i]) % len(t.shape)
            if i == 0:
                seq_len = t.shape[axis]
            slices.append(TensorInfo(t.dtype, t.shape[:axis] + t.shape[axis + 1:]))
        else:
            slices.append(TensorInfo(t.dtype, None) if isinstance(t, TensorInfo) else None)
    states, outs = _carried_fixpoint(ctx, body, [], list(ctx.input_types[:n]), slices, 0)
    k = len(body.outputs) - n
    out_axes = list(ctx.node.attrs.get("scan_output_axes") or [0] * k)
    results: list[ValueType | None] = list(states)
    for j, t in enumerate(outs[n:]):
        if isinstance(t, TensorInfo) and t.shape is not None:
            axis = int(out_axes[j]) % (len(t.shape) + 1)
            results.append(TensorInfo(t.dtype, t.shape[:axis] + (seq_len,) + t.shape[axis:]))
        else:
            results.append(TensorInfo(t.dtype, None) if isinstance(t, TensorInfo) else None)
    return results


# Function-defined ops whose ONNX schema has no shape inference of its own: the output has the
# input's type and shape.
@register_shape_function("", "GroupNormalization")
@register_shape_function("", "MeanVarianceNormalization")
def _same_as_input(ctx: ShapeContext) -> list[ValueType | None]:
    return [ctx.input_types[0] if ctx.input_types else None]


# -- pyflame ops (created by the optimizer's fusions; see docs/fused_ops.md) -------------------
def _input(ctx: ShapeContext, index: int) -> TensorInfo | None:
    t = ctx.input_types[index] if index < len(ctx.input_types) else None
    return t if isinstance(t, TensorInfo) else None


def _without_fused_attrs(ctx: ShapeContext, *drop: str) -> dict[str, Any]:
    skip = {"activation", "activation_params", *drop}
    return {k: v for k, v in ctx.node.attrs.items() if k not in skip}


@register_shape_function("pyflame", "Gelu")
@register_shape_function("pyflame", "BiasGelu")
@register_shape_function("pyflame", "QuickGelu")
@register_shape_function("pyflame", "LayerNormalization")
@register_shape_function("pyflame", "RMSNormalization")
@register_shape_function("pyflame", "BiasSoftmax")
@register_shape_function("pyflame", "ChannelAffine")
def _pyflame_like_input(ctx: ShapeContext) -> list[ValueType | None]:
    return [_input(ctx, 0)]


@register_shape_function("pyflame", "SkipLayerNormalization")
def _pyflame_skip_layer_norm(ctx: ShapeContext) -> list[ValueType | None]:
    x = _input(ctx, 0)
    return [x, x]


@register_shape_function("pyflame", "FusedConv")
def _pyflame_fused_conv(ctx: ShapeContext) -> list[ValueType | None]:
    return ctx.infer_onnx("Conv", ctx.input_types[:3], _without_fused_attrs(ctx))


@register_shape_function("pyflame", "FusedGemm")
def _pyflame_fused_gemm(ctx: ShapeContext) -> list[ValueType | None]:
    return ctx.infer_onnx("Gemm", ctx.input_types[:3], _without_fused_attrs(ctx))


def _swap_last(t: TensorInfo | None) -> TensorInfo | None:
    if t is None or t.shape is None or len(t.shape) < 2:
        return t
    return TensorInfo(t.dtype, t.shape[:-2] + (t.shape[-1], t.shape[-2]))


@register_shape_function("pyflame", "FusedMatMul")
def _pyflame_fused_matmul(ctx: ShapeContext) -> list[ValueType | None]:
    a, b = _input(ctx, 0), _input(ctx, 1)
    if a is None or b is None:
        return [TensorInfo(a.dtype, None)] if a is not None else []
    if ctx.node.attrs.get("transA"):
        a = _swap_last(a)
    if ctx.node.attrs.get("transB"):
        b = _swap_last(b)
    return ctx.infer_onnx("MatMul", [a, b], {})


@register_shape_function("pyflame", "Attention")
def _pyflame_attention(ctx: ShapeContext) -> list[ValueType | None]:
    x, w = _input(ctx, 0), _input(ctx, 1)
    if x is None:
        return []
    width = None
    if w is not None and w.shape is not None and len(w.shape) == 2 and \
            isinstance(w.shape[1], int):
        width = w.shape[1] // 3
    if x.shape is None or len(x.shape) != 3:
        return [TensorInfo(x.dtype, None)]
    return [TensorInfo(x.dtype, (x.shape[0], x.shape[1], width))]


@register_shape_function("pyflame", "EmbedLayerNormalization")
def _pyflame_embed_layer_norm(ctx: ShapeContext) -> list[ValueType | None]:
    ids, word = _input(ctx, 0), _input(ctx, 2)
    if word is None:
        return []
    hidden = word.shape[1] if word.shape is not None and len(word.shape) == 2 else None
    shape = None if ids is None or ids.shape is None else tuple(ids.shape) + (hidden,)
    out = TensorInfo(word.dtype, shape)
    return [out, out]
