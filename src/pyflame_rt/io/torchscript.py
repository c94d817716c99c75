"""TorchScript -> PyFlameRT: ``load_torchscript(path_or_scriptmodule, example_inputs)``.

``torch.export`` cannot trace a ``ScriptModule`` with symbolic sizes (the TorchScript
interpreter turns every size into a plain int), so the TorchScript graph is first rewritten
into an FX graph of ATen calls by torch's own TorchScript converter
(``torch._export.converter``; ``prim::If``/``prim::Loop`` become ``torch.cond`` and loops,
``aten::size`` stays symbolic). That FX module is then exported with the caller's
``dynamic_shapes`` and lowered exactly like :func:`pyflame_rt.io.torch.from_torch` output, so
both paths share one op table.

torch's converter does not handle every scripted construct: some ``prim::If``/``prim::Loop``
forms fail, and scripted ``nn.LSTM``/``nn.GRU``/``nn.RNN`` specialize the batch size through
their argument checks. For those modules, and only when the direct route fails, the module
goes through torch's TorchScript-based ONNX exporter (``torch.onnx.export(dynamo=False)``,
which needs no onnxscript and keeps script control flow as ONNX ``If``/``Loop``) and our ONNX
importer. ``model.metadata_props["pyflame_rt.torch_route"]`` says which route was taken
(``"export"`` or ``"onnx"``).

The converter module is private torch API; the ``[torch]`` extra pins the torch version it
was written against.
"""

from __future__ import annotations

import io
import os
import warnings
from typing import Any

from ..errors import (
    InvalidArgumentError,
    InvalidModelError,
    ModelNotFoundError,
    UnsupportedOperatorError,
)
from ..ir import Model
from .torch import check_names, export_module, import_torch, normalize_inputs

__all__ = ["load_torchscript"]

# The opset the TorchScript ONNX exporter (fallback route) is asked for.
FALLBACK_OPSET = 17


def load_torchscript(path_or_scriptmodule: Any, example_inputs: Any, *,
                     dynamic_shapes: Any = None, input_names: Any = None,
                     output_names: Any = None) -> Model:
    """Convert a TorchScript module (``torch.jit.trace``/``script``, saved or in memory).

    Args:
        path_or_scriptmodule: A ``torch.jit.save``'d file (path, bytes or binary file object)
            or a ``torch.jit.ScriptModule``.
        example_inputs: A tuple of tensors in ``forward()`` order; shapes not declared dynamic
            are fixed to these.
        dynamic_shapes: ``torch.export``'s format, one entry per input (a dict keyed by the
            ``forward()`` argument names also works), e.g. ``({0: Dim("batch")},)``.
        input_names: Graph input names; default: ``forward()``'s argument names.
        output_names: Graph output names; default ``output``/``output_0``, ...

    Returns:
        A ``Model`` that ``InferenceSession`` accepts.

    Raises:
        ModelNotFoundError: The path does not exist.
        InvalidModelError: The file is not TorchScript, or its graph cannot be converted.
        UnsupportedOperatorError: Listing every op without a lowering and where it is used.
    """
    torch = import_torch()
    script = _load(torch, path_or_scriptmodule)
    args = normalize_inputs(example_inputs)
    arg_names = _script_arg_names(script, len(args))
    names = list(input_names) if input_names is not None else arg_names
    check_names(names, len(args))
    if isinstance(dynamic_shapes, dict):
        unknown = set(dynamic_shapes) - set(arg_names)
        if unknown:
            raise InvalidArgumentError(
                f"dynamic_shapes names {sorted(unknown)} are not forward() arguments "
                f"{arg_names}")
        dynamic_shapes = tuple(dynamic_shapes.get(n) for n in arg_names)
    if script.training:
        script.eval()
    try:
        gm = _to_fx(torch, script, args)
        ep = export_module(gm, args, dynamic_shapes, what="TorchScript module")
        _check_against_script(torch, script, args, ep)
        from ._torch_fx import convert_program

        model = convert_program(ep, input_names=names, output_names=output_names,
                                dynamic_shapes=dynamic_shapes, graph_name="torchscript_graph",
                                producer="pyflame_rt.load_torchscript")
        return model
    except (InvalidModelError, UnsupportedOperatorError) as direct_error:
        try:
            model = _via_onnx(torch, script, args, names, output_names, dynamic_shapes)
        except Exception as onnx_error:  # noqa: BLE001 - report both routes' failures
            note = (f"\n(The TorchScript ONNX exporter route failed too: "
                    f"{type(onnx_error).__name__}: {' '.join(str(onnx_error).split())[:300]})")
            raise type(direct_error)(str(direct_error) + note) from direct_error
        return model


def _via_onnx(torch: Any, script: Any, args: tuple, names: list[str], output_names: Any,
              dynamic_shapes: Any) -> Model:
    """Fallback: torch's TorchScript-based ONNX exporter, then our ONNX importer."""
    import onnx

    from ._torch_fx import _dim_names_from_spec, set_dim_bounds
    from .onnx import from_onnx

    with torch.no_grad():
        result = script(*args)
    count = len(torch.utils._pytree.tree_leaves(result))
    outs = list(output_names) if output_names is not None else (
        ["output"] if count == 1 else [f"output_{i}" for i in range(count)])
    dims = _dim_names_from_spec(dynamic_shapes, names)
    dynamic_axes = {}
    if dynamic_shapes is not None:
        specs = list(dynamic_shapes) + [None] * (len(names) - len(dynamic_shapes))
        for i, (name, spec) in enumerate(zip(names, specs)):
            axes = spec.keys() if isinstance(spec, dict) else (
                [a for a, d in enumerate(spec) if d is not None]
                if isinstance(spec, (list, tuple)) else [])
            if axes:
                dynamic_axes[name] = {a: dims[i].get(a, f"{name}_dim{a}") for a in axes}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(script, args, buf, dynamo=False, opset_version=FALLBACK_OPSET,
                          input_names=names, output_names=outs,
                          dynamic_axes=dynamic_axes or None)
    model = from_onnx(onnx.load_from_string(buf.getvalue()))
    model.producer_name = "pyflame_rt.load_torchscript"
    model.metadata_props["pyflame_rt.torch_route"] = "onnx"
    set_dim_bounds(model, dynamic_shapes)
    return model


def _load(torch: Any, source: Any) -> Any:
    if isinstance(source, (torch.jit.ScriptModule, torch.jit.ScriptFunction)):
        if isinstance(source, torch.jit.ScriptFunction):
            raise InvalidArgumentError(
                "load_torchscript takes a ScriptModule; wrap the scripted function in an "
                "nn.Module and script that")
        return source
    if isinstance(source, torch.nn.Module):
        raise InvalidArgumentError(
            "load_torchscript takes a TorchScript module; for a plain nn.Module use "
            "pyflame_rt.from_torch")
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise ModelNotFoundError(f"TorchScript file {path!r} does not exist; check the path")
        source = path
    elif not hasattr(source, "read"):
        raise InvalidArgumentError(
            f"cannot load TorchScript from a {type(source).__name__}; pass a path, bytes, a "
            "binary file object or a torch.jit.ScriptModule")
    try:
        return torch.jit.load(source, map_location="cpu")
    except Exception as exc:
        raise InvalidModelError(
            f"not a loadable TorchScript file ({type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}); save the "
            "module with torch.jit.save") from exc


def _script_arg_names(script: Any, count: int) -> list[str]:
    try:
        names = [a.name for a in script.forward.schema.arguments][1:]  # drop self
    except Exception:  # noqa: BLE001 - schema access varies; names are cosmetic
        names = []
    names = [n for n in names if n][:count]
    names.extend(f"input_{i}" for i in range(len(names), count))
    return names


def _to_fx(torch: Any, script: Any, args: tuple) -> Any:
    """The TorchScript graph as an FX ``GraphModule`` of ATen calls.

    When torch's converter refuses the graph as scripted, it is tried once more with the
    graph's input checks removed (:func:`_drop_input_checks`): scripted library code such as
    ``F.group_norm``/``F.instance_norm`` validates sizes in ``prim::Loop``s over
    ``len(x.size())`` and raise-only ``prim::If``s, which the converter cannot take
    ("prim::Loop currently cannot run with dynamic value of number of iterations").
    """
    from torch._export import converter as ts_converter

    def convert(simplify: bool) -> Any:
        conv = ts_converter.TS2EPConverter(script, args)
        if simplify:  # conv.ts_graph is the converter's own lowered copy, never the module's
            _drop_input_checks(torch, conv.ts_graph)
        lifted, attr_fqn = ts_converter.get_block_to_lifted_attrs(conv.ts_graph)
        graph_converter = ts_converter.TS2FXGraphConverter(
            conv.ts_graph, conv.name_to_param, conv.name_to_buffer, lifted,
            conv.name_to_non_tensor_attributes, conv.name_to_constant, attr_fqn)
        gm = graph_converter.convert()
        ts_converter.replace_quantized_ops_with_standard_ops(gm)
        _scalarize_sizes(torch, gm)
        _unwrap_scalar_constants(torch, gm)
        return gm

    try:
        try:
            return convert(simplify=False)
        except Exception as first:  # noqa: BLE001 - retried below, reported if that fails
            try:
                return convert(simplify=True)
            except Exception:  # noqa: BLE001 - the unsimplified graph's error says more
                raise first
    except Exception as exc:
        raise InvalidModelError(
            f"cannot convert the TorchScript graph to ATen calls ({type(exc).__name__}: "
            f"{_torch_cause(exc)}). Tracing with torch.jit.trace or using from_torch on the "
            "original module may work") from exc


def _torch_cause(exc: BaseException) -> str:
    """The converter's message with its root cause ("failed for node prim::If" alone does not
    say why), on one line."""
    parts = [str(exc)]
    cause = exc.__cause__
    while cause is not None and len(parts) < 4:
        parts.append(f"{type(cause).__name__}: {cause}")
        cause = cause.__cause__
    return " ".join(" <- ".join(parts).split())[:500]


#: Graph nodes with effects beyond their outputs: a loop holding one is never dropped.
_EFFECTS = {"prim::RaiseException", "prim::SetAttr", "prim::CallMethod", "prim::CallFunction",
            "prim::Print", "aten::warn", "aten::append", "aten::_set_item", "aten::insert",
            "aten::pop", "aten::clear", "aten::extend"}


def _drop_input_checks(torch: Any, graph: Any) -> None:
    """Remove the script's input validation, in place: every output-less ``prim::If`` whose
    branches only raise (or do nothing), then loops and values left without a use.

    Such checks reject inputs torch would refuse (e.g. one spatial element in instance
    norm); exported graphs never keep them either (``torch.export`` of the eager module
    evaluates them once, at export time). Nothing that computes an output is touched.
    """

    def raises_or_nothing(block: Any) -> bool:
        nodes = list(block.nodes())
        return not list(block.outputs()) and (
            not nodes or any(n.kind() == "prim::RaiseException" for n in nodes))

    def has_effects(block: Any) -> bool:
        for n in block.nodes():
            kind = n.kind()
            in_place = kind.startswith("aten::") and kind.endswith("_") and \
                not kind.endswith("__")
            if kind in _EFFECTS or in_place or any(has_effects(b) for b in n.blocks()):
                return True
        return False

    def strip_checks(block: Any) -> None:
        for n in list(block.nodes()):
            for b in n.blocks():
                strip_checks(b)
            if n.kind() == "prim::If" and n.outputsSize() == 0 and \
                    all(raises_or_nothing(b) for b in n.blocks()):
                n.destroy()

    def drop_dead_loops(block: Any) -> None:
        for n in list(block.nodes()):
            for b in n.blocks():
                drop_dead_loops(b)
            if n.kind() == "prim::Loop" and all(not o.uses() for o in n.outputs()) and \
                    not any(has_effects(b) for b in n.blocks()):
                n.destroy()

    strip_checks(graph.block())
    torch._C._jit_pass_dce(graph)
    drop_dead_loops(graph.block())
    torch._C._jit_pass_dce(graph)


def _scalarize_sizes(torch: Any, gm: Any) -> None:
    """Turn size arithmetic done on 0-d tensors back into SymInt arithmetic.

    A traced module records ``x.size(0) * 4`` as NumToTensor -> tensor ops -> ``Int``; export
    then sees ``item()`` of a computed tensor, a size it cannot reason about, and fails on the
    first reshape. When the whole expression is sizes, integer constants and + - * //, it is
    rebuilt with Python operators on the sizes themselves.
    """
    import operator

    aten = torch.ops.aten
    binary = {aten.mul.Tensor: operator.mul, aten.mul.Scalar: operator.mul,
              aten.add.Tensor: operator.add, aten.add.Scalar: operator.add,
              aten.sub.Tensor: operator.sub, aten.sub.Scalar: operator.sub}
    graph = gm.graph

    def rebuild(arg: Any, before: Any) -> Any:
        if isinstance(arg, int) and not isinstance(arg, bool):
            return arg
        if not isinstance(arg, torch.fx.Node):
            return None
        if arg.op == "get_attr":
            value = getattr(gm, arg.target, None)
            if isinstance(value, torch.Tensor) and value.dim() == 0 and \
                    not value.is_floating_point() and value.dtype != torch.bool:
                return int(value)
            return None
        if arg.op != "call_function":
            return None
        target = arg.target
        if target in (aten.sym_size, aten.sym_size.int):
            return arg
        if target in (aten.scalar_tensor, aten.scalar_tensor.default):
            return rebuild(arg.args[0], before)
        if target in (aten._to_copy.default, aten._to_copy):
            dtype = arg.kwargs.get("dtype")
            return rebuild(arg.args[0], before) if dtype in (None, torch.int64, torch.int32) \
                else None
        if target in binary:
            a, b = rebuild(arg.args[0], before), rebuild(arg.args[1], before)
            if a is None or b is None or len(arg.args) > 2 or arg.kwargs.get("alpha", 1) != 1:
                return None
            with graph.inserting_before(before):
                return graph.call_function(binary[target], (a, b))
        if target in (aten.div.Scalar_mode, aten.div.Tensor_mode):
            mode = arg.kwargs.get("rounding_mode", arg.args[2] if len(arg.args) > 2 else None)
            a, b = rebuild(arg.args[0], before), rebuild(arg.args[1], before)
            # Sizes are non-negative, so truncating and flooring agree for a positive divisor.
            if a is None or not isinstance(b, int) or b <= 0 or mode not in ("trunc", "floor"):
                return None
            with graph.inserting_before(before):
                return graph.call_function(operator.floordiv, (a, b))
        return None

    for node in list(graph.nodes):
        if node.op == "call_function" and node.target in (aten._local_scalar_dense.default,
                                                          aten._local_scalar_dense):
            replacement = rebuild(node.args[0], node)
            if replacement is not None:
                node.replace_all_uses_with(replacement)
                graph.erase_node(node)
    # No dead-code elimination here: the script's in-place ops look unused but are not.
    gm.recompile()


def _unwrap_scalar_constants(torch: Any, gm: Any) -> None:
    """Give traced Python floats back their scalar type-promotion.

    ``torch.jit.trace`` stores ``n * 0.5`` with ``0.5`` as a 0-d double tensor flagged as a
    "wrapped number" (it promotes like a Python scalar: int64 * 0.5 is float32). The FX
    conversion loses the flag, so the product would become float64. A 0-d double constant
    meeting a non-float tensor in arithmetic is turned back into a Python float.
    """
    aten = torch.ops.aten
    arithmetic = {aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor, aten.div.Tensor,
                  aten.rsub.Tensor, aten.remainder.Tensor, aten.fmod.Tensor,
                  aten.pow.Tensor_Tensor, aten.add, aten.sub, aten.mul, aten.div}

    def scalar_const(arg: Any) -> float | None:
        if isinstance(arg, torch.fx.Node) and arg.op == "get_attr":
            value = getattr(gm, arg.target, None)
            if isinstance(value, torch.Tensor) and value.dim() == 0 and \
                    value.dtype == torch.float64:
                return float(value)
        return None

    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target not in arithmetic or len(node.args) < 2:
            continue
        consts = [scalar_const(a) for a in node.args[:2]]
        if consts[0] is not None and consts[1] is None:
            node.args = (consts[0],) + tuple(node.args[1:])
        elif consts[1] is not None and consts[0] is None:
            node.args = (node.args[0], consts[1]) + tuple(node.args[2:])
    gm.recompile()


def _check_against_script(torch: Any, script: Any, args: tuple, ep: Any) -> None:
    """The converted program must return what the TorchScript module returns (count, dtype,
    rank): the conversion is torch's private code, so check it rather than trust it."""
    import torch.utils._pytree as pytree
    from torch.export.graph_signature import OutputKind

    with torch.no_grad():
        expected = pytree.tree_leaves(script(*args))
    out_node = next(n for n in ep.graph_module.graph.nodes if n.op == "output")
    kinds = {s.arg.name: s.kind for s in ep.graph_signature.output_specs}
    got = [a.meta.get("val") for a in out_node.args[0]
           if isinstance(a, torch.fx.Node) and kinds.get(a.name) == OutputKind.USER_OUTPUT]
    problem = None
    if len(got) != len(expected):
        problem = f"{len(got)} outputs instead of {len(expected)}"
    else:
        for i, (g, e) in enumerate(zip(got, expected)):
            if not isinstance(g, torch.Tensor) or not isinstance(e, torch.Tensor):
                problem = f"output {i} is not a tensor"
            elif g.dtype != e.dtype or g.dim() != e.dim():
                problem = (f"output {i} is {g.dtype} rank {g.dim()}, TorchScript gives "
                           f"{e.dtype} rank {e.dim()}")
            if problem:
                break
    if problem:
        raise InvalidModelError(f"torch's TorchScript converter changed the module: {problem}")
