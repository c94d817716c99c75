"""Shape functions of the pyflame ops: after optimizing, every output type is wiped and
re-inferred strictly (an op without a shape function fails), then checked against the arrays
the optimized graph actually computes."""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper
from opt_helpers import make_model, optimized, randn

from pyflame_rt.backends.cpu.executor import compile_plan
from pyflame_rt.ir.shape_inference import infer_shapes
from pyflame_rt.ops import registry

F32 = np.float32

#: The ops the fusion rules create (layout passes add their own, tested with them).
FUSION_OPS = {"FusedConv", "FusedGemm", "FusedMatMul", "Gelu", "BiasGelu", "LayerNormalization",
              "SkipLayerNormalization", "Attention", "QuickGelu", "RMSNormalization",
              "BiasSoftmax", "EmbedLayerNormalization", "ChannelAffine"}


def _conv_gemm_matmul_model():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "x"], ["cs"]),
             helper.make_node("Relu", ["cs"], ["y0"]),
             helper.make_node("Gemm", ["a", "gw", "gb"], ["g"], transB=1),
             helper.make_node("Relu", ["g"], ["y1"]),
             helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["q", "kt"], ["y2"])]
    inits = {"w": randn(3, 3, 3, 3, seed=1), "gw": randn(4, 5, seed=2), "gb": randn(4, seed=3)}
    inputs = {"x": (F32, [2, 3, 6, 6]), "a": (F32, [3, 5]), "q": (F32, [2, 3, 4]),
              "k": (F32, [2, 5, 4])}
    return make_model(nodes, inputs, ["y0", "y1", "y2"], inits)


def _gelu_ln_model(opset=16):
    nodes = [helper.make_node("Add", ["x", "bias"], ["h"]),
             helper.make_node("Div", ["h", "sqrt2"], ["a"]),
             helper.make_node("Erf", ["a"], ["e"]),
             helper.make_node("Add", ["e", "one"], ["e1"]),
             helper.make_node("Mul", ["h", "half"], ["hh"]),
             helper.make_node("Mul", ["hh", "e1"], ["gl"]),
             helper.make_node("ReduceMean", ["gl"], ["mean"], axes=[-1]),
             helper.make_node("Sub", ["gl", "mean"], ["d"]),
             helper.make_node("Mul", ["d", "d"], ["sq"]),
             helper.make_node("ReduceMean", ["sq"], ["var"], axes=[-1]),
             helper.make_node("Add", ["var", "eps"], ["ve"]),
             helper.make_node("Sqrt", ["ve"], ["std"]),
             helper.make_node("Div", ["d", "std"], ["y"]),
             helper.make_node("Div", ["x", "sqrt2"], ["a2"]),
             helper.make_node("Erf", ["a2"], ["e2"]),
             helper.make_node("Add", ["e2", "one"], ["e21"]),
             helper.make_node("Mul", ["x", "half"], ["xh"]),
             helper.make_node("Mul", ["xh", "e21"], ["y3"])]
    inits = {"bias": randn(8, seed=4), "sqrt2": np.array(math.sqrt(2), F32),
             "one": np.array(1, F32), "half": np.array(0.5, F32), "eps": np.array(1e-5, F32)}
    return make_model(nodes, {"x": (F32, [2, 3, 8])}, ["y", "y3"], inits, opset=opset)


def _cases():
    from test_extra_fusions import (
        _bias_softmax_model,
        _bn_act_model,
        _embed_model,
        _quick_gelu_model,
        _rms_model,
    )
    from test_onnx_attention import _model as _onnx_attention_model
    from test_transformer_fusions import _skip_ln_model

    return [_conv_gemm_matmul_model(), _gelu_ln_model(), _quick_gelu_model(), _rms_model(),
            _bias_softmax_model(), _embed_model(extra_use=True), _bn_act_model(),
            _onnx_attention_model(causal=1), _skip_ln_model(True)]


def _feeds(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    feeds = {}
    for i in model.graph.input:
        shape = [d.dim_value for d in i.type.tensor_type.shape.dim]
        if i.type.tensor_type.elem_type == onnx.TensorProto.INT64:
            feeds[i.name] = np.random.default_rng(0).integers(0, 2, shape)
        else:
            feeds[i.name] = randn(*shape, seed=len(feeds))
    return feeds


def test_every_pyflame_op_has_a_shape_function_that_matches_its_kernel():
    seen = set()
    for model in _cases():
        graph, _ = optimized(model)
        for node in graph.nodes:
            for v in node.outputs:
                if v is not None:
                    v.type = None
        infer_shapes(graph, strict=True)
        produced = [(n, v) for n in graph.nodes for v in n.outputs if v is not None]
        for _, v in produced:
            if not v.is_graph_output:
                graph.add_output(v)
        arrays = compile_plan(graph).run(_feeds(model))
        got = dict(zip((v.name for v in graph.outputs), arrays))
        for node, v in produced:
            if node.domain != "pyflame":
                continue
            seen.add(node.op_type)
            arr = got[v.name]
            assert v.type is not None, f"{node.describe()}: no type inferred"
            assert v.dtype.numpy == arr.dtype, f"{node.describe()}: dtype"
            assert tuple(v.shape) == arr.shape, f"{node.describe()}: {v.shape} vs {arr.shape}"
    assert seen == FUSION_OPS, f"not covered: {FUSION_OPS - seen}"
    registered = {op for (domain, op) in registry.registered_ops() if domain == "pyflame"}
    assert FUSION_OPS <= registered
