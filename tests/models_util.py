"""Small ONNX models built with ``onnx.helper`` for session and executor tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def mlp_model(batch: int | str = "batch", opset: int = 17) -> onnx.ModelProto:
    """x[batch,4] -> Gemm(4->8) -> Relu -> MatMul(8->3) + b -> Softmax -> y[batch,3]."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b1")
    w2 = numpy_helper.from_array(rng.standard_normal((8, 3)).astype(np.float32), "w2")
    b2 = numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b2")
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1, name="fc1"),
        helper.make_node("Relu", ["h"], ["hr"], name="relu"),
        helper.make_node("MatMul", ["hr", "w2"], ["m"], name="fc2"),
        helper.make_node("Add", ["m", "b2"], ["logits"], name="bias"),
        helper.make_node("Softmax", ["logits"], ["y"], axis=-1, name="softmax"),
    ]
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3]),
         helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 3])],
        [w1, b1, w2, b2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="pyflame-tests", producer_version="1.0")
    model.doc_string = "a tiny MLP"
    model.model_version = 7
    model.domain = "ai.pyflame.tests"
    helper.set_model_props(model, {"author": "tests", "purpose": "session"})
    return model


def two_input_model() -> onnx.ModelProto:
    """a[2,3] (float), b[3] (int64) -> Add(a, Cast(b)) -> out; plus an overridable initializer."""
    scale = numpy_helper.from_array(np.array([2.0], np.float32), "scale")
    nodes = [
        helper.make_node("Cast", ["b"], ["bf"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["a", "bf"], ["s"]),
        helper.make_node("Mul", ["s", "scale"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes, "two_inputs",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("b", TensorProto.INT64, [3]),
         helper.make_tensor_value_info("scale", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2, 3])],
        [scale])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
