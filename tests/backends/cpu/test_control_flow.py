"""If / Loop / Scan through the session (bodies with outer-scope values), vs onnx.reference."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import pyflame_rt as ort

F = TensorProto.FLOAT


def _check(model, feeds, rtol=1e-6, oracle="reference"):
    # onnx.reference lacks Scan directions/axes and mishandles Loop without a cond input;
    # ONNX Runtime is the oracle there.
    if oracle == "reference":
        expected = ReferenceEvaluator(model).run(None, feeds)
    else:
        expected = onnxruntime.InferenceSession(model.SerializeToString()).run(None, feeds)
    got = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=rtol)


def _if_model(opset=17, cond_shape=()):
    # then: y = x * outer_scale ; else: y = x - 1 (outer-scope reads of x and outer_scale)
    then_g = helper.make_graph([helper.make_node("Mul", ["x", "outer_scale"], ["t"])], "then",
                               [], [helper.make_tensor_value_info("t", F, [3])])
    else_g = helper.make_graph([helper.make_node("Sub", ["x", "one"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", F, [3])])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["outer_scale"]),
         helper.make_node("If", ["cond"], ["y"], then_branch=then_g, else_branch=else_g)],
        "if_model",
        [helper.make_tensor_value_info("x", F, [3]),
         helper.make_tensor_value_info("cond", TensorProto.BOOL, cond_shape)],
        [helper.make_tensor_value_info("y", F, [3])],
        [numpy_helper.from_array(np.array(2.0, np.float32), "two"),
         numpy_helper.from_array(np.array(1.0, np.float32), "one")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("cond", [True, False])
def test_if_with_outer_scope_values(cond):
    x = np.array([1.0, 2.0, 3.0], np.float32)
    _check(_if_model(), {"x": x, "cond": np.array(cond)})


def test_if_condition_must_be_one_element():
    sess = ort.InferenceSession(_if_model(cond_shape=None))
    with pytest.raises(ort.KernelError, match="exactly one element"):
        sess.run(None, {"x": np.ones(3, np.float32), "cond": np.array([True, False])})


def _loop_model(with_trip=True, with_cond=True):
    # body: i, cond, acc -> cond_out = (i < 4); acc_out = acc + x * i ; scan: acc_out
    body = helper.make_graph(
        [helper.make_node("Cast", ["i"], ["fi"], to=F),
         helper.make_node("Mul", ["x", "fi"], ["xi"]),
         helper.make_node("Add", ["acc", "xi"], ["acc_out"]),
         helper.make_node("Less", ["i", "four"], ["cond_out"]),
         helper.make_node("Identity", ["acc_out"], ["scan_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("c", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc", F, [2])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", F, [2]),
         helper.make_tensor_value_info("scan_out", F, [2])])
    inputs = ["trip" if with_trip else "", "cond" if with_cond else "", "acc0"]
    graph = helper.make_graph(
        [helper.make_node("Loop", inputs, ["acc_final", "scans"], body=body)], "loop_model",
        [helper.make_tensor_value_info("x", F, [2]),
         helper.make_tensor_value_info("acc0", F, [2])],
        [helper.make_tensor_value_info("acc_final", F, [2]),
         helper.make_tensor_value_info("scans", F, None)],
        [numpy_helper.from_array(np.array(10, np.int64), "trip"),
         numpy_helper.from_array(np.array(True), "cond"),
         numpy_helper.from_array(np.array(4, np.int64), "four")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("with_trip,with_cond", [(True, True), (True, False), (False, True)])
def test_loop_carried_and_scan_outputs(with_trip, with_cond):
    feeds = {"x": np.array([1.0, -2.0], np.float32), "acc0": np.zeros(2, np.float32)}
    _check(_loop_model(with_trip, with_cond), feeds, oracle="ort")


def _scan_model(reverse=0, out_axis=0):
    # running sum over rows of x: state s, input row r -> s + r, emit s + r
    body = helper.make_graph(
        [helper.make_node("Add", ["s", "r"], ["s_out"]),
         helper.make_node("Mul", ["s_out", "k"], ["y"])], "scan_body",
        [helper.make_tensor_value_info("s", F, [2]), helper.make_tensor_value_info("r", F, [2])],
        [helper.make_tensor_value_info("s_out", F, [2]), helper.make_tensor_value_info("y", F, [2])])
    graph = helper.make_graph(
        [helper.make_node("Scan", ["s0", "x"], ["s_final", "ys"], body=body, num_scan_inputs=1,
                          scan_input_directions=[reverse], scan_output_axes=[out_axis])],
        "scan_model",
        [helper.make_tensor_value_info("s0", F, [2]), helper.make_tensor_value_info("x", F, [5, 2])],
        [helper.make_tensor_value_info("s_final", F, [2]),
         helper.make_tensor_value_info("ys", F, None)],
        [numpy_helper.from_array(np.array(0.5, np.float32), "k")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("reverse,out_axis", [(0, 0), (1, 0), (0, 1), (1, -1)])
def test_scan_directions_and_axes(reverse, out_axis):
    x = np.arange(10, dtype=np.float32).reshape(5, 2)
    _check(_scan_model(reverse, out_axis), {"s0": np.zeros(2, np.float32), "x": x},
           oracle="ort")


def test_scan_8_with_batch_axis():
    body = helper.make_graph(
        [helper.make_node("Add", ["s", "r"], ["s_out"]),
         helper.make_node("Identity", ["s_out"], ["y"])], "scan_body",
        [helper.make_tensor_value_info("s", F, [2]), helper.make_tensor_value_info("r", F, [2])],
        [helper.make_tensor_value_info("s_out", F, [2]), helper.make_tensor_value_info("y", F, [2])])
    graph = helper.make_graph(
        [helper.make_node("Scan", ["", "s0", "x"], ["s_final", "ys"], body=body,
                          num_scan_inputs=1)], "scan8",
        [helper.make_tensor_value_info("s0", F, [3, 2]),
         helper.make_tensor_value_info("x", F, [3, 4, 2])],
        [helper.make_tensor_value_info("s_final", F, [3, 2]),
         helper.make_tensor_value_info("ys", F, [3, 4, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)])
    x = np.arange(24, dtype=np.float32).reshape(3, 4, 2)
    _check(model, {"s0": np.zeros((3, 2), np.float32), "x": x}, oracle="ort")


def test_if_branch_may_return_an_outer_value_directly():
    # ONNX Runtime refuses such models ("add an Identity node"); onnx.reference runs them,
    # and the optimizer's Identity removal can create them, so we must run them too.
    then_g = helper.make_graph([], "then", [], [helper.make_tensor_value_info("x", F, [3])])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["n"])], "else", [],
                               [helper.make_tensor_value_info("n", F, [3])])
    graph = helper.make_graph(
        [helper.make_node("If", ["cond"], ["y"], then_branch=then_g, else_branch=else_g)],
        "if_outer",
        [helper.make_tensor_value_info("x", F, [3]),
         helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", F, [3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.array([1.0, -2.0, 3.0], np.float32)
    for cond in (True, False):
        _check(model, {"x": x, "cond": np.array(cond)})
