"""Count a model's FLOPs from its ONNX graph: 2 x the multiply-accumulates of Conv,
ConvTranspose, MatMul and Gemm nodes (other ops are memory-bound and left out).

The count is taken on the model *as exported*, before any engine optimizes it, so an engine
that folds work away at build time cannot fake a higher GFLOP/s. Shapes come from ONNX shape
inference with the batch fixed; where inference cannot resolve a shape (data-dependent
reshapes), the shapes are read off one ONNX Runtime run instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import shape_inference

__all__ = ["FlopCount", "count_flops", "node_macs"]

COUNTED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
# Initializers larger than this are replaced by shape-only graph inputs before shape
# inference, so a 600 MB model is not copied around; small ones stay (Reshape shapes).
_SMALL_INITIALIZER = 4096

Shape = tuple[int, ...]


@dataclass
class FlopCount:
    """FLOPs (2 x MACs) of one model at one set of input shapes."""

    total: int = 0
    by_op_type: dict[str, int] = field(default_factory=dict)
    nodes: int = 0  # counted nodes
    shapes_from_runtime: int = 0  # nodes whose shapes needed an ONNX Runtime run

    @property
    def gflop(self) -> float:
        return self.total / 1e9


def node_macs(op_type: str, attrs: Mapping[str, Any], in_shapes: list[Shape | None],
              out_shape: Shape | None) -> int:
    """Multiply-accumulates of one Conv / ConvTranspose / MatMul / Gemm node."""
    if op_type == "Conv":
        w, y = in_shapes[1], out_shape
        if w is None or y is None:
            raise ValueError("Conv needs the weight and output shapes")
        # every output element takes (C_in / group) * prod(kernel) MACs
        return math.prod(y) * math.prod(w[1:])
    if op_type == "ConvTranspose":
        x, w = in_shapes[0], in_shapes[1]
        if x is None or w is None:
            raise ValueError("ConvTranspose needs the input and weight shapes")
        # weight is (C_in, C_out / group, *kernel): every input element scatters into
        # (C_out / group) * prod(kernel) outputs
        return math.prod(x) * math.prod(w[1:])
    if op_type == "MatMul":
        a, b = in_shapes[0], in_shapes[1]
        if a is None or b is None or out_shape is None:
            raise ValueError("MatMul needs both input shapes and the output shape")
        k = a[-1]
        return math.prod(out_shape) * k
    if op_type == "Gemm":
        a = in_shapes[0]
        if a is None or out_shape is None:
            raise ValueError("Gemm needs the A and output shapes")
        k = a[0] if int(attrs.get("transA", 0)) else a[1]
        return math.prod(out_shape) * k
    raise ValueError(f"no MAC rule for {op_type}")


def _shape_of(vi: onnx.ValueInfoProto) -> Shape | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    dims = []
    for d in t.shape.dim:
        if not d.HasField("dim_value"):
            return None
        dims.append(int(d.dim_value))
    return tuple(dims)


def _light_model(model: onnx.ModelProto, input_shapes: Mapping[str, Shape]) -> onnx.ModelProto:
    """A weightless copy of ``model`` with concrete input shapes, for shape inference."""
    light = onnx.ModelProto()
    if _has_big_initializers(model):
        _copy_without_big(model, light)
    else:
        light.CopyFrom(model)
    for vi in light.graph.input:
        if vi.name in input_shapes:
            shape = input_shapes[vi.name]
            dims = vi.type.tensor_type.shape.dim
            if len(dims) != len(shape):
                raise ValueError(f"input {vi.name!r} has rank {len(dims)}, got shape {shape}")
            for d, n in zip(dims, shape):
                d.Clear()
                d.dim_value = int(n)
    return light


def _has_big_initializers(model: onnx.ModelProto) -> bool:
    return any(math.prod(t.dims) > _SMALL_INITIALIZER for t in model.graph.initializer)


def _copy_without_big(model: onnx.ModelProto, light: onnx.ModelProto) -> None:
    big = [t for t in model.graph.initializer if math.prod(t.dims) > _SMALL_INITIALIZER]
    # Copy everything but the initializers, then add back the small ones and shape-only
    # inputs for the big ones.
    saved = list(model.graph.initializer)
    del model.graph.initializer[:]
    try:
        light.CopyFrom(model)
    finally:
        model.graph.initializer.extend(saved)
    big_names = {t.name for t in big}
    light.graph.initializer.extend(t for t in saved if t.name not in big_names)
    declared = {vi.name for vi in light.graph.input}
    for t in big:
        if t.name not in declared:
            light.graph.input.append(onnx.helper.make_tensor_value_info(
                t.name, t.data_type, list(t.dims)))


def _runtime_shapes(model: onnx.ModelProto, names: list[str],
                    feeds: Mapping[str, np.ndarray]) -> dict[str, Shape]:
    """Shapes of ``names`` from one ONNX Runtime run of ``model`` with ``feeds``."""
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    have = {o.name for o in probe.graph.output}
    for n in names:
        if n not in have:
            probe.graph.output.append(onnx.ValueInfoProto(name=n))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(probe.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    values = sess.run(names, dict(feeds))
    return {n: tuple(int(d) for d in np.shape(v)) for n, v in zip(names, values)}


def count_flops(model: onnx.ModelProto | str | Path, input_shapes: Mapping[str, Shape],
                feeds: Mapping[str, np.ndarray] | None = None) -> FlopCount:
    """FLOPs (2 x MACs of Conv/ConvTranspose/MatMul/Gemm) of ``model`` at ``input_shapes``.

    Args:
        model: The model (top-level graph only; control-flow bodies are not counted).
        input_shapes: Concrete shape of every graph input with a symbolic dim.
        feeds: Inputs for an ONNX Runtime run, used only when shape inference leaves a
            counted node's shape unknown. Without them such a node raises ``ValueError``.
    """
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    light = _light_model(model, input_shapes)
    inferred = shape_inference.infer_shapes(light, data_prop=True)
    shapes: dict[str, Shape | None] = {}
    for vi in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        shapes[vi.name] = _shape_of(vi)
    for t in model.graph.initializer:
        shapes[t.name] = tuple(int(d) for d in t.dims)

    counted = [n for n in model.graph.node if n.op_type in COUNTED_OPS and n.domain in ("",
                                                                                       "ai.onnx")]
    unknown = sorted({name for n in counted for name in (*n.input[:2], n.output[0])
                      if name and shapes.get(name) is None})
    from_runtime = 0
    if unknown:
        if feeds is None:
            raise ValueError(f"shape inference left {len(unknown)} shapes unknown (e.g. "
                             f"{unknown[0]!r}); pass feeds= to read them from a run")
        shapes.update(_runtime_shapes(model, unknown, feeds))
        from_runtime = sum(1 for n in counted
                           if any(x in unknown for x in (*n.input[:2], n.output[0])))

    result = FlopCount(shapes_from_runtime=from_runtime)
    for n in counted:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        ins = [shapes.get(x) if x else None for x in n.input]
        flops = 2 * node_macs(n.op_type, attrs, ins, shapes.get(n.output[0]))
        result.total += flops
        result.by_op_type[n.op_type] = result.by_op_type.get(n.op_type, 0) + flops
        result.nodes += 1
    return result
