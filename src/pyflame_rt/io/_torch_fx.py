"""``torch.export.ExportedProgram`` -> our IR: the FX graph walker the ATen op table plugs into.

The exported program is decomposed to the core ATen op set (minus the ops in
:data:`KEEP_UNDECOMPOSED`, which have a better ONNX form: LSTM/GRU/RNN keep a dynamic sequence
length, upsampling becomes ``Resize``). Then every FX node is lowered by one small function of
``_torch_aten`` into default-domain ONNX ops. A ``SymInt`` (a size known only at run time) is
carried as a 1-D int64 tensor of one element computed from ``Shape``; symbolic dims of graph
inputs become named dims (``Dim("batch")`` gives ``"batch"``).

Before anything is emitted, every node is checked against the table, so an unsupported module
fails with one :class:`~pyflame_rt.errors.UnsupportedOperatorError` that lists each missing op
and where it is used (module path and source line).

Importing this module imports torch: only ``io/torch.py`` and ``io/torchscript.py`` do, lazily.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
import torch.fx

from ..errors import InvalidArgumentError, UnsupportedOperatorError
from ..ir import Graph, Model, Value
from ..types import DType, TensorInfo

__all__ = ["OPSET", "TABLE", "Converter", "Unsupported", "aten", "convert_program",
           "decomposition_table", "tensor_to_numpy", "torch_to_dtype"]

# The default-domain opset the emitted graph imports (the kernels and ONNX export agree on it).
OPSET = 21

Handler = Callable[..., Any]

# target -> lowering function. Keys are ``OpOverload`` objects for ATen ops and plain Python
# callables (``operator.getitem``, ``operator.mul`` on SymInts, ...).
TABLE: dict[Any, Handler] = {}


class Unsupported(UnsupportedOperatorError):
    """Raised by a lowering when the op is used in a way it cannot express (names the why).

    The converter collects these per node; one escaping elsewhere (a complex-typed input) is
    still an ``UnsupportedOperatorError`` for the caller."""


def aten(*names: str) -> Callable[[Handler], Handler]:
    """Register a lowering for ATen overloads given as ``"add.Tensor"`` (or Python callables)."""

    def register(fn: Handler) -> Handler:
        for name in names:
            TABLE[_resolve(name)] = fn
        return fn

    return register


def _resolve(name: Any) -> Any:
    if not isinstance(name, str):
        return name
    packet, _, overload = name.partition(".")
    return getattr(getattr(torch.ops.aten, packet), overload or "default")


# Ops kept out of the core-ATen decomposition because they map to one ONNX op (or a few) and
# their decomposition would lose something: RNNs would be unrolled over a fixed sequence length,
# upsampling would become index arithmetic.
KEEP_UNDECOMPOSED = [
    "lstm.input", "gru.input", "rnn_tanh.input", "rnn_relu.input",
    "linear.default", "silu.default", "hardswish.default", "mish.default",
    "upsample_nearest1d.vec", "upsample_nearest2d.vec", "upsample_nearest3d.vec",
    "_upsample_nearest_exact1d.vec", "_upsample_nearest_exact2d.vec",
    "_upsample_nearest_exact3d.vec", "upsample_linear1d.vec", "upsample_bilinear2d.vec",
    "upsample_trilinear3d.vec", "upsample_bicubic2d.vec", "upsample_nearest1d.default",
    "upsample_nearest2d.default", "upsample_nearest3d.default",
    "_upsample_nearest_exact1d.default", "_upsample_nearest_exact2d.default",
    "_upsample_nearest_exact3d.default", "upsample_linear1d.default",
    "upsample_bilinear2d.default", "upsample_trilinear3d.default",
    "upsample_bicubic2d.default", "pixel_shuffle.default",
    "reflection_pad1d.default", "reflection_pad2d.default", "reflection_pad3d.default",
    "replication_pad1d.default", "replication_pad2d.default", "replication_pad3d.default",
]


def decomposition_table() -> dict:
    """``torch.export.default_decompositions()`` minus the ops we lower directly."""
    table = torch.export.default_decompositions()
    for name in KEEP_UNDECOMPOSED:
        op = _resolve(name)
        if op in TABLE:
            table.pop(op, None)
    return table


# -- dtypes --------------------------------------------------------------------------------------
_TORCH_TO_DTYPE = {
    torch.float32: DType.FLOAT, torch.float64: DType.DOUBLE, torch.float16: DType.FLOAT16,
    torch.bfloat16: DType.BFLOAT16, torch.int8: DType.INT8, torch.int16: DType.INT16,
    torch.int32: DType.INT32, torch.int64: DType.INT64, torch.uint8: DType.UINT8,
    torch.bool: DType.BOOL, torch.uint16: DType.UINT16, torch.uint32: DType.UINT32,
    torch.uint64: DType.UINT64,
}


def torch_to_dtype(dtype: torch.dtype) -> DType:
    """Our ``DType`` for a torch dtype; complex and quantized types raise ``Unsupported``."""
    try:
        return _TORCH_TO_DTYPE[dtype]
    except KeyError:
        raise Unsupported(f"tensors of dtype {dtype} are not supported") from None


def tensor_to_numpy(t: torch.Tensor) -> np.ndarray:
    """A numpy copy of a (CPU or fake-free) tensor, bfloat16 included."""
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(DType.BFLOAT16.numpy).copy()
    if t.dtype not in _TORCH_TO_DTYPE:
        raise Unsupported(f"constant tensors of dtype {t.dtype} are not supported")
    return t.numpy().copy()


# -- locations for error messages ----------------------------------------------------------------
def describe_location(node: torch.fx.Node) -> str:
    """``in block.conv1 (Conv2d), File "m.py", line 12: y = conv(x)`` for a node (best effort)."""
    parts = []
    stack = node.meta.get("nn_module_stack") or {}
    if stack:
        path, cls = list(stack.values())[-1]
        cls_name = cls.__name__ if isinstance(cls, type) else str(cls).rsplit(".", 1)[-1]
        parts.append(f"in module '{path or '<root>'}' ({cls_name})")
    trace = node.meta.get("stack_trace") or ""
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)\n\s*(.*)', trace)
    if frames:
        file, line, fn, code = frames[-1]
        parts.append(f'File "{file}", line {line}, in {fn}: {code.strip()}')
    return ", ".join(parts) or f"FX node {node.name!r}"


def op_name(target: Any) -> str:
    if isinstance(target, torch._ops.OpOverload):
        return str(target)  # aten.add.Tensor
    return getattr(target, "__qualname__", None) or getattr(target, "__name__", str(target))


# -- the converter -------------------------------------------------------------------------------
class Converter:
    """Lowers one exported FX graph into a ``Graph``; handlers call its helper methods.

    Handlers receive ``(cx, node, *args)`` with ``args`` bound to the ATen schema (defaults
    filled in); tensor arguments are FX nodes: ``cx.v(arg)`` gives their ``Value``,
    ``cx.dtype(arg)``/``cx.shape(arg)``/``cx.rank(arg)`` their traced metadata.
    """

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.env: dict[str, Any] = {}
        self.node: torch.fx.Node | None = None  # the FX node being lowered (names new nodes)
        self._dtypes: dict[int, torch.dtype] = {}
        self._consts: dict[tuple, Value] = {}

    # -- metadata --------------------------------------------------------------------------
    @staticmethod
    def meta(arg: Any) -> Any:
        return arg.meta.get("val") if isinstance(arg, torch.fx.Node) else arg

    def dtype(self, arg: Any) -> torch.dtype:
        """The torch dtype of a tensor argument, of a ``Value`` we made, or of a Python scalar."""
        if isinstance(arg, Value):
            return self._dtypes[id(arg)]
        val = self.meta(arg)
        if isinstance(val, torch.Tensor):
            return val.dtype
        if isinstance(val, (bool, torch.SymBool)):
            return torch.bool
        if isinstance(val, (int, torch.SymInt)):
            return torch.int64
        if isinstance(val, (float, torch.SymFloat)):
            return torch.float32
        raise Unsupported(f"cannot tell the dtype of argument {arg!r}")

    def shape(self, arg: Any) -> tuple:
        """Traced sizes of a tensor argument: ints, or ``torch.SymInt`` for symbolic ones."""
        return tuple(self.meta(arg).shape)

    def rank(self, arg: Any) -> int:
        return len(self.meta(arg).shape)

    @staticmethod
    def static(dim: Any) -> int | None:
        """``dim`` as an int when it is known while converting, else ``None``."""
        if isinstance(dim, int):
            return dim
        if isinstance(dim, torch.SymInt):
            expr = dim.node.expr
            if expr.is_number:
                return int(expr)
        return None

    def is_tensor(self, arg: Any) -> bool:
        return isinstance(arg, torch.fx.Node) and isinstance(self.meta(arg), torch.Tensor)

    def used_outputs(self, node: torch.fx.Node | None = None) -> set[int]:
        """Indices of a multi-output node's results that some ``getitem`` reads."""
        node = node or self.node
        used = set()
        for user in node.users:
            if user.target is operator.getitem and user.users:
                used.add(user.args[1])
            elif user.target is not operator.getitem:
                used.update(range(64))
        return used

    # -- making values ---------------------------------------------------------------------
    def typed(self, value: Value, dtype: torch.dtype) -> Value:
        self._dtypes[id(value)] = dtype
        return value

    def v(self, arg: Any) -> Any:
        """The ``Value`` for an FX node argument (lists map element-wise; ``None`` stays)."""
        if arg is None:
            return None
        if isinstance(arg, (list, tuple)):
            return [self.v(a) for a in arg]
        if isinstance(arg, torch.fx.Node):
            value = self.env.get(arg.name)
            if value is None:
                raise Unsupported(f"input {arg.name!r} was not converted")
            return value
        raise Unsupported(f"expected a tensor argument, got {arg!r}")

    def op(self, op_type: str, *inputs: Value | None, _n: int = 1,
           _dtype: torch.dtype | None = None, **attrs: Any) -> Any:
        """Emit one ONNX node; returns its output (or a tuple of ``_n`` outputs)."""
        hint = self.node.name if self.node is not None else op_type.lower()
        attrs = {k: a for k, a in attrs.items() if a is not None}
        node = self.graph.make_node(op_type, list(inputs), _n, attrs, name=hint)
        if self.node is not None:
            node.meta["torch_node"] = self.node.name
        if _dtype is not None:
            for out in node.outputs:
                self.typed(out, _dtype)
        return node.outputs[0] if _n == 1 else node.outputs

    def const(self, value: Any, dtype: Any = None, *, name: str | None = None) -> Value:
        """An initializer holding ``value`` (small constants are shared)."""
        arr = np.asarray(value, dtype=dtype)
        tdtype = _numpy_to_torch(arr.dtype)
        if name is None and arr.size <= 64:
            key = (arr.dtype.str, arr.shape, arr.tobytes())
            cached = self._consts.get(key)
            if cached is not None:
                return cached
            value_ = self.graph.add_initializer(self.graph.unique_name("const"), arr)
            self._consts[key] = self.typed(value_, tdtype)
            return value_
        value_ = self.graph.add_initializer(self.graph.unique_name(name or "const"), arr)
        return self.typed(value_, tdtype)

    def scalar(self, value: Any, dtype: torch.dtype) -> Value:
        """A 0-d tensor of ``dtype`` from a Python number or a SymInt argument."""
        if isinstance(value, torch.fx.Node):
            sym = self.v(value)
            if self.is_tensor(value):
                return self.cast(sym, dtype)
            return self.cast(self.op("Squeeze", sym, self.const([0], np.int64),
                                     _dtype=self.dtype(sym)), dtype)
        if isinstance(value, Value):
            return self.cast(value, dtype)
        np_dtype = torch_to_dtype(dtype).numpy
        if isinstance(value, float) and np.issubdtype(np_dtype, np.integer):
            raise Unsupported(f"float scalar {value} used with an integer tensor")
        return self.const(np.asarray(value).astype(np_dtype))

    def tensor(self, arg: Any, dtype: torch.dtype) -> Value:
        """``arg`` (tensor, SymInt or Python number) as a tensor of ``dtype``."""
        if self.is_tensor(arg):
            return self.cast(self.v(arg), dtype)
        return self.scalar(arg, dtype)

    def cast(self, value: Value, dtype: torch.dtype) -> Value:
        if self._dtypes.get(id(value)) == dtype:
            return value
        return self.op("Cast", value, to=torch_to_dtype(dtype).value, _dtype=dtype)

    def ints(self, items: Iterable[Any]) -> Value:
        """A 1-D int64 tensor from ints and SymInt arguments (a constant when all are known)."""
        items = list(items)
        static = [self.static(self.meta(i)) for i in items]
        if all(s is not None for s in static):
            return self.const(np.asarray(static, dtype=np.int64).reshape(len(static)))
        parts: list[Value] = []
        run: list[int] = []
        for item, s in zip(items, static):
            if s is not None:
                run.append(s)
                continue
            if run:
                parts.append(self.const(np.asarray(run, dtype=np.int64)))
                run = []
            parts.append(self.sym(item))
        if run:
            parts.append(self.const(np.asarray(run, dtype=np.int64)))
        if len(parts) == 1:
            return parts[0]
        return self.op("Concat", *parts, axis=0, _dtype=torch.int64)

    def sym(self, item: Any) -> Value:
        """A SymInt argument as a 1-D int64 tensor of one element."""
        if isinstance(item, torch.fx.Node):
            value = self.v(item)
            if self.is_tensor(item):  # a 0-d int tensor standing for a size
                return self.op("Reshape", self.cast(value, torch.int64),
                               self.const([1], np.int64), _dtype=torch.int64)
            return value
        s = self.static(item)
        if s is None:
            raise Unsupported(f"symbolic size {item} is not reachable from an FX node")
        return self.const([s], np.int64)

    def shape_of(self, value: Value, start: int | None = None, end: int | None = None) -> Value:
        return self.op("Shape", value, start=start, end=end, _dtype=torch.int64)

    def axes(self, dims: Iterable[int], rank: int) -> list[int]:
        return [d % rank if rank else 0 for d in dims]

    # -- walking ---------------------------------------------------------------------------
    def bind(self, node: torch.fx.Node) -> list[Any]:
        """The node's arguments in schema order, defaults filled in; size arithmetic whose
        result was known while tracing arrives as the plain number."""
        target = node.target
        if not isinstance(target, torch._ops.OpOverload):
            return [_fold(a) for a in list(node.args) + list(node.kwargs.values())]
        bound = []
        for i, arg in enumerate(target._schema.arguments):
            if i < len(node.args) and not arg.kwarg_only:
                bound.append(node.args[i])
            elif arg.name in node.kwargs:
                bound.append(node.kwargs[arg.name])
            elif arg.has_default_value():
                bound.append(arg.default_value)
            else:
                bound.append(None)
        return [_fold(a) for a in bound]

    def lower(self, node: torch.fx.Node) -> Any:
        self.node = node
        fn = TABLE[node.target]
        try:
            result = fn(self, node, *self.bind(node))
        finally:
            self.node = None
        self._record_dtypes(node, result)
        return result

    def _record_dtypes(self, node: torch.fx.Node, result: Any) -> None:
        val = node.meta.get("val")
        if isinstance(result, Value) and isinstance(val, torch.Tensor):
            self._dtypes.setdefault(id(result), val.dtype)
        elif isinstance(result, (list, tuple)) and isinstance(val, (list, tuple)):
            for r, m in zip(result, val):
                if isinstance(r, Value) and isinstance(m, torch.Tensor):
                    self._dtypes.setdefault(id(r), m.dtype)
        elif isinstance(result, Value) and isinstance(val, (int, torch.SymInt)):
            self._dtypes.setdefault(id(result), torch.int64)


def _known_number(val: Any) -> Any:
    """A plain Python number for ``val`` when tracing knows it, else ``None``."""
    if isinstance(val, (bool, int, float)):
        return val
    if isinstance(val, (torch.SymInt, torch.SymFloat, torch.SymBool)):
        expr = val.node.expr
        if isinstance(val, torch.SymBool):
            if expr in (True, False) or getattr(expr, "is_Boolean", False) and expr.is_Atom:
                return bool(expr)
            return None
        if expr.is_number:
            return int(expr) if isinstance(val, torch.SymInt) else float(expr)
    return None


def static_scalar(node: torch.fx.Node) -> bool:
    """True for a node computing a Python number that tracing already knows (size math)."""
    return node.op == "call_function" and _known_number(node.meta.get("val")) is not None


def _fold(arg: Any) -> Any:
    if isinstance(arg, torch.fx.Node) and static_scalar(arg):
        return _known_number(arg.meta["val"])
    if isinstance(arg, (list, tuple)):
        return type(arg)(_fold(a) for a in arg)
    return arg


def _numpy_to_torch(dtype: np.dtype) -> torch.dtype:
    dt = DType.from_numpy(dtype)
    for t, d in _TORCH_TO_DTYPE.items():
        if d is dt:
            return t
    raise Unsupported(f"numpy dtype {dtype} has no torch equivalent")


# -- symbolic dims -------------------------------------------------------------------------------
def _dim_names_from_spec(dynamic_shapes: Any, arg_names: Sequence[str]) -> list[dict[int, str]]:
    """Per input: axis -> the name of the ``torch.export.Dim`` given for it."""
    out: list[dict[int, str]] = [{} for _ in arg_names]
    if dynamic_shapes is None:
        return out
    if isinstance(dynamic_shapes, dict):
        specs = [dynamic_shapes.get(n) for n in arg_names]
    else:
        specs = list(dynamic_shapes) + [None] * (len(arg_names) - len(dynamic_shapes))
    for i, spec in enumerate(specs[:len(arg_names)]):
        if isinstance(spec, dict):
            items = spec.items()
        elif isinstance(spec, (list, tuple)):
            items = enumerate(spec)
        else:
            continue
        for axis, dim in items:
            name = getattr(dim, "__name__", None)
            if isinstance(name, str) and name and isinstance(axis, int):
                out[i][axis] = name
    return out


def _dim_string(dim: Any, names: dict) -> Any:
    """A traced size as an IR dim: int, the user's name for its symbol, or an expression."""
    if isinstance(dim, int):
        return dim
    expr = dim.node.expr
    if expr.is_number:
        return int(expr)
    if expr in names:
        return names[expr]
    text = str(expr)
    for sym, name in sorted(names.items(), key=lambda kv: -len(str(kv[0]))):
        text = re.sub(rf"\b{re.escape(str(sym))}\b", name, text)
    return text.replace(" ", "")


# -- the whole program ---------------------------------------------------------------------------
def live_nodes(gm: torch.fx.GraphModule, user_outputs: set[str] | None = None) -> set[str]:
    """Names of the nodes the user outputs depend on (runtime asserts and dead code are not)."""
    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    todo = [a for a in out_node.all_input_nodes
            if user_outputs is None or a.name in user_outputs]
    live: set[str] = set()
    while todo:
        node = todo.pop()
        if node.name in live:
            continue
        live.add(node.name)
        todo.extend(node.all_input_nodes)
    return live


def check_supported(gm: torch.fx.GraphModule, live: set[str] | None = None) -> None:
    """Raise one ``UnsupportedOperatorError`` naming every op without a lowering, with places."""
    missing: dict[str, list[str]] = {}
    for node in gm.graph.nodes:
        if live is not None and node.name not in live:
            continue
        if node.op == "call_function" and node.target not in TABLE and not static_scalar(node):
            missing.setdefault(op_name(node.target), []).append(describe_location(node))
        elif node.op in ("call_module", "call_method"):
            missing.setdefault(f"{node.op} {node.target}", []).append(describe_location(node))
    if missing:
        raise UnsupportedOperatorError(_missing_message(missing))


def _missing_message(missing: dict[str, list[str]], reasons: dict[str, str] | None = None) -> str:
    head = (f"cannot convert the PyTorch program: {len(missing)} operator(s) have no "
            "PyFlameRT lowering:")
    lines = [head]
    for name, places in missing.items():
        why = f" ({reasons[name]})" if reasons and name in reasons else ""
        lines.append(f"  {name}{why}, used {len(places)} time(s):")
        for place in places[:8]:
            lines.append(f"    - {place}")
        if len(places) > 8:
            lines.append(f"    - ... and {len(places) - 8} more")
    lines.append("Fix: rewrite that part of the module with supported operations, or keep it "
                 "outside the converted module; please report ops you need.")
    return "\n".join(lines)


def convert_program(ep: torch.export.ExportedProgram, *, input_names: Sequence[str],
                    output_names: Sequence[str] | None = None, dynamic_shapes: Any = None,
                    graph_name: str = "torch_graph", producer: str = "pyflame_rt.from_torch",
                    arg_names: Sequence[str] | None = None) -> Model:
    """Lower a decomposed ``ExportedProgram`` into a ``Model`` (opset :data:`OPSET`).

    ``arg_names`` are ``forward()``'s argument names, which key a dict ``dynamic_shapes``
    (default: ``input_names``).
    """
    from torch.export.graph_signature import InputKind, OutputKind

    gm = ep.graph_module
    sig = ep.graph_signature
    live = live_nodes(gm, {s.arg.name for s in sig.output_specs
                           if s.kind == OutputKind.USER_OUTPUT})
    check_supported(gm, live)
    user_inputs = [s for s in sig.input_specs if s.kind == InputKind.USER_INPUT]
    user_outputs = [s for s in sig.output_specs if s.kind == OutputKind.USER_OUTPUT]
    names_out = _interface_names(ep, input_names, output_names, len(user_inputs),
                                 len(user_outputs))

    graph = Graph(graph_name)
    graph.opset_imports = {"": OPSET}
    cx = Converter(graph)
    for name in list(input_names) + names_out:
        graph._claim(name)
    placeholders = {n.name: n for n in gm.graph.nodes if n.op == "placeholder"}
    user_vals = [placeholders[s.arg.name].meta.get("val") for s in user_inputs]
    dim_specs = _dim_names_from_spec(dynamic_shapes, list(arg_names or input_names))
    sym_names = _name_symbols(user_vals, dim_specs, input_names)

    state = {**ep.state_dict, **ep.constants}
    user_index = {s.arg.name: i for i, s in enumerate(user_inputs)}
    for spec in sig.input_specs:
        node = placeholders[spec.arg.name]
        if spec.kind == InputKind.USER_INPUT:
            i = user_index[spec.arg.name]
            val = user_vals[i]
            if not isinstance(val, torch.Tensor):
                raise InvalidArgumentError(
                    f"input {input_names[i]!r} is a {type(val).__name__}; only tensor inputs "
                    "can become graph inputs")
            shape = tuple(_dim_string(d, sym_names) for d in val.shape)
            value = Value(input_names[i], TensorInfo(torch_to_dtype(val.dtype), shape))
            graph.add_input(value)
            cx.env[node.name] = cx.typed(value, val.dtype)
        elif spec.kind in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
            tensor = state.get(spec.target)
            if tensor is None:
                raise InvalidArgumentError(f"the exported program has no value for {spec.target!r}")
            value = graph.add_initializer(graph.unique_name(spec.target), tensor_to_numpy(tensor))
            cx.env[node.name] = cx.typed(value, tensor.dtype)
        else:
            raise UnsupportedOperatorError(
                f"exported program input {spec.arg.name!r} of kind {spec.kind.name} (token, "
                "custom object) is not supported")

    _lower_nodes(cx, gm, live)

    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    kinds = {s.arg.name: s.kind for s in sig.output_specs}
    out_args = [a for a in out_node.args[0] if isinstance(a, torch.fx.Node)
                and kinds.get(a.name) == OutputKind.USER_OUTPUT]
    if len(out_args) != len(user_outputs):
        raise UnsupportedOperatorError(
            "the module returns values that are not tensors (None, Python numbers, "
            "sizes); return tensors only")
    _add_outputs(cx, out_args, names_out, sym_names)
    _prune(graph)
    model = Model(graph=graph, producer_name=producer, producer_version=torch.__version__)
    model.metadata_props["pyflame_rt.torch_route"] = "export"
    if sym_names:
        model.metadata_props["pyflame_rt.torch_dims"] = ", ".join(
            f"{name}: {_range_text(ep, sym)}" for sym, name in sym_names.items())
    set_dim_bounds(model, dynamic_shapes)
    return model


def set_dim_bounds(model: Model, dynamic_shapes: Any) -> None:
    """Record the ``Dim(min=, max=)`` bounds of the graph's symbolic input dims in the model's
    metadata (:data:`~pyflame_rt.io.torch.DIM_BOUNDS_KEY`), for sessions to enforce."""
    import json

    from .torch import DIM_BOUNDS_KEY, dim_bounds_from_spec

    used = {d for v in model.graph.inputs if isinstance(v.type, TensorInfo)
            and v.type.shape is not None for d in v.type.shape if isinstance(d, str)}
    bounds = {k: v for k, v in dim_bounds_from_spec(dynamic_shapes).items() if k in used}
    if bounds:
        model.metadata_props[DIM_BOUNDS_KEY] = json.dumps(bounds, sort_keys=True)


def _interface_names(ep: torch.export.ExportedProgram, input_names: Sequence[str],
                     output_names: Sequence[str] | None, n_in: int, n_out: int) -> list[str]:
    """Checked output names (defaults derived from the output structure)."""
    if len(input_names) != n_in:
        raise InvalidArgumentError(f"{len(input_names)} input names given for {n_in} tensor "
                                   "inputs")
    names_out = list(output_names) if output_names is not None else [
        n if n not in input_names else f"{n}_out" for n in _default_output_names(ep, n_out)]
    if len(names_out) != n_out:
        raise InvalidArgumentError(
            f"output_names has {len(names_out)} names but the module returns {n_out} tensors")
    clash = set(input_names) & set(names_out)
    if clash:
        raise InvalidArgumentError(
            f"{sorted(clash)} named both an input and an output; give distinct names")
    if len(set(names_out)) != len(names_out):
        raise InvalidArgumentError(f"output names must be distinct: {names_out}")
    return names_out


def _name_symbols(user_vals: list, dim_specs: list[dict[int, str]],
                  input_names: Sequence[str]) -> dict[Any, str]:
    """Symbol -> dim name: the user's ``Dim`` names first, then ``<input>_dim<axis>``."""
    names: dict[Any, str] = {}
    for from_spec in (True, False):
        for i, val in enumerate(user_vals):
            if not isinstance(val, torch.Tensor):
                continue
            for axis, dim in enumerate(val.shape):
                if not isinstance(dim, torch.SymInt):
                    continue
                expr = dim.node.expr
                if not expr.is_Symbol or expr in names:
                    continue
                if from_spec and axis in dim_specs[i]:
                    names[expr] = dim_specs[i][axis]
                elif not from_spec:
                    names[expr] = f"{input_names[i]}_dim{axis}"
    return names


def _lower_nodes(cx: Converter, gm: torch.fx.GraphModule, live: set[str]) -> None:
    """Lower every live node; collect every failure, then raise once listing them all."""
    problems: dict[str, list[str]] = {}
    reasons: dict[str, str] = {}
    failed: set[str] = set()
    for node in gm.graph.nodes:
        if node.name not in live or node.op not in ("call_function", "get_attr"):
            continue
        if node.op == "get_attr":
            attr = getattr(gm, node.target)
            if not isinstance(attr, torch.Tensor):
                problems.setdefault(f"get_attr {node.target}", []).append(
                    describe_location(node))
                failed.add(node.name)
                continue
            value = cx.graph.add_initializer(cx.graph.unique_name(node.target),
                                             tensor_to_numpy(attr))
            cx.env[node.name] = cx.typed(value, attr.dtype)
            continue
        if static_scalar(node):
            continue  # consumers receive the number itself (see Converter.bind)
        if any(a.name in failed for a in node.all_input_nodes):
            failed.add(node.name)  # an input already failed; that failure is reported
            continue
        try:
            result = cx.lower(node)
        except Unsupported as exc:
            key = op_name(node.target)
            problems.setdefault(key, []).append(describe_location(node))
            reasons.setdefault(key, str(exc))
            failed.add(node.name)
            continue
        if result is not None:
            cx.env[node.name] = result
    if problems:
        raise UnsupportedOperatorError(_missing_message(problems, reasons))


def _add_outputs(cx: Converter, out_args: list, names: list[str],
                 sym_names: dict[Any, str]) -> None:
    """Name and type the graph outputs; an input, constant or repeated value gets an
    Identity so every output has its own name."""
    graph = cx.graph
    taken: set[int] = set()
    for arg, name in zip(out_args, names):
        value = cx.env.get(arg.name)
        val = arg.meta.get("val")
        if not isinstance(value, Value) or not isinstance(val, torch.Tensor):
            raise UnsupportedOperatorError(f"output {name!r} is not a tensor")
        if value.producer is not None and id(value) not in taken and value.graph is graph:
            value.name = name
        else:
            out = Value(name)
            graph.insert_node(_identity(graph, value, out))
            value = out
        taken.add(id(value))
        value.type = TensorInfo(torch_to_dtype(val.dtype),
                                tuple(_dim_string(d, sym_names) for d in val.shape))
        graph.add_output(value)


def _identity(graph: Graph, value: Value, out: Value) -> Any:
    from ..ir import Node

    return Node("Identity", [value], [out], name=graph.unique_name(f"{out.name}_identity"))


def _range_text(ep: torch.export.ExportedProgram, sym: Any) -> str:
    rng = ep.range_constraints.get(sym)
    if rng is None:
        return "any"
    return f"{rng.lower}..{rng.upper}"


def _default_output_names(ep: torch.export.ExportedProgram, n: int) -> list[str]:
    """``output`` for one tensor, dict keys for dict/ModelOutput results, else ``output_i``."""
    import torch.utils._pytree as pytree

    try:
        spec = ep.call_spec.out_spec
        tree = pytree.tree_unflatten(list(range(n)), spec)
        paths = [p for p, _ in pytree.tree_flatten_with_path(tree)[0]]
    except Exception:  # noqa: BLE001 - names are cosmetic; fall back to positions
        paths = []
    names = []
    for i, path in enumerate(paths):
        keys = []
        for k in path:
            key = getattr(k, "key", None)
            if isinstance(key, str):
                keys.append(key)
            elif getattr(k, "name", None):
                keys.append(str(k.name))
        names.append("_".join(keys) if keys else "")
    if len(names) != n or any(not s for s in names) or len(set(names)) != n:
        return ["output"] if n == 1 else [f"output_{i}" for i in range(n)]
    return names


def _prune(graph: Graph) -> None:
    """Drop nodes and initializers nothing reads (helper constants a lowering did not use)."""
    changed = True
    while changed:
        changed = False
        for node in reversed(graph.nodes):
            if all(v is None or (not v.uses and not v.is_graph_output) for v in node.outputs):
                graph.remove_node(node)
                changed = True
    for value in list(graph.initializers.values()):
        if not value.uses and not value.is_graph_output:
            graph.remove_initializer(value)
