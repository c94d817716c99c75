"""Constant folding, dead-code elimination, CSE and shape folding."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from opt_helpers import check_rewrite, make_model, op_counts, optimized, randn, session

from pyflame_rt.io.onnx import from_onnx
from pyflame_rt.opt import optimize
from pyflame_rt.opt.passes import ConstantFolding


# -- constant folding ---------------------------------------------------------------------------
def test_constant_chain_folds_into_one_initializer():
    nodes = [
        helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(
            np.arange(6, dtype=np.float32).reshape(2, 3))),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[1, 0]),
        helper.make_node("Mul", ["kt", "two"], ["k2"]),
        helper.make_node("MatMul", ["x", "k2"], ["y"]),
    ]
    model = make_model(nodes, {"x": (np.float32, [4, 3])}, ["y"],
                       {"two": np.array(2.0, np.float32)})
    sess = check_rewrite(model, {"x": randn(4, 3)}, fired={"constant_folding": 3},
                         ops={"MatMul": 1})
    (mm,) = sess.graph.nodes
    np.testing.assert_array_equal(mm.inputs[1].const_value,
                                  np.arange(6, dtype=np.float32).reshape(2, 3).T * 2)


def test_constant_of_shape_weights_become_initializers_in_ir3_models():
    """The light models feed weights through ConstantOfShape of IR-3 'input' initializers."""
    shape = numpy_helper.from_array(np.array([3, 2, 1, 1], np.int64), "w_shape")
    nodes = [helper.make_node("ConstantOfShape", ["w_shape"], ["w"],
                              value=numpy_helper.from_array(np.array([0.5], np.float32))),
             helper.make_node("Conv", ["x", "w"], ["y"])]
    graph = helper.make_graph(
        nodes, "ir3", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 3]),
                       helper.make_tensor_value_info("w_shape", TensorProto.INT64, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [shape])
    ir3 = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)], ir_version=3)
    m = from_onnx(ir3)
    g, report = optimize(m, "all")  # a Model carries its IR version
    assert report.rules_fired["constant_folding"] == 1
    assert [n.op_type for n in g.nodes] == ["Conv"]
    assert g.nodes[0].inputs[1].const_value.shape == (3, 2, 1, 1)
    assert "w_shape" not in g.initializers  # dead, and not a real input in IR 3
    x = randn(1, 2, 3, 3)
    from pyflame_rt.backends.cpu.executor import compile_plan

    np.testing.assert_allclose(compile_plan(g).run({"x": x})[0],
                               np.broadcast_to(x.sum(axis=1, keepdims=True) * 0.5, (1, 3, 3, 3)),
                               rtol=1e-5)


def test_overridable_initializers_are_not_folded_in_ir4_models():
    model = make_model([helper.make_node("Neg", ["c"], ["nc"]),
                        helper.make_node("Add", ["x", "nc"], ["y"])],
                       {"x": (np.float32, [3]), "c": (np.float32, [3])}, ["y"],
                       {"c": np.ones(3, np.float32)})
    g, report = optimized(model, "all")
    assert "constant_folding" not in report.rules_fired
    assert [n.op_type for n in g.nodes] == ["Neg", "Add"]
    sess = session(model)
    x = randn(3)
    np.testing.assert_allclose(sess.run(None, {"x": x, "c": np.full(3, 5.0, np.float32)})[0],
                               x - 5.0)


def test_large_outputs_are_not_folded_but_shrinking_ones_are():
    # The default cap: a 2-element shape asking for 2^27 elements is refused before running.
    big = [helper.make_node("ConstantOfShape", ["s"], ["z"]),
           helper.make_node("Add", ["x", "z"], ["y"])]
    model = make_model(big, {"x": (np.float32, [1 << 14, 1 << 13])}, ["y"],
                       {"s": np.array([1 << 14, 1 << 13], np.int64)})
    g, report = optimized(model, "basic")
    assert "constant_folding" not in report.rules_fired
    assert "ConstantOfShape" in [n.op_type for n in g.nodes]
    # A small cap shows the rule: growing outputs above it stay, non-growing ones fold.
    small = make_model([helper.make_node("ConstantOfShape", ["s"], ["z"]),
                        helper.make_node("Transpose", ["c"], ["ct"]),
                        helper.make_node("Add", ["x", "z"], ["y1"]),
                        helper.make_node("Add", ["x", "ct"], ["y2"])],
                       {"x": (np.float32, [4, 100])}, ["y1", "y2"],
                       {"s": np.array([4, 100], np.int64), "c": np.ones((100, 4), np.float32)})
    m = from_onnx(small)
    _, report = optimize(m, "basic", passes=[ConstantFolding(max_elements=10)])
    assert report.rules_fired == {"constant_folding": 1}
    assert sorted(n.op_type for n in m.graph.nodes) == ["Add", "Add", "ConstantOfShape"]
    m = from_onnx(small)
    optimize(m, "basic", passes=[ConstantFolding(max_elements=1000)])
    assert sorted(n.op_type for n in m.graph.nodes) == ["Add", "Add"]


def test_random_ops_and_kernel_failures_are_not_folded():
    nodes = [helper.make_node("RandomUniform", [], ["r"], shape=[3], seed=1.0),
             helper.make_node("Add", ["x", "r"], ["y"]),
             helper.make_node("Reshape", ["c", "bad"], ["rc"]),
             helper.make_node("Add", ["x", "rc"], ["z"])]
    model = make_model(nodes, {"x": (np.float32, [3])}, ["y", "z"],
                       {"c": np.ones(3, np.float32), "bad": np.array([7], np.int64)})
    g, report = optimized(model, "all")
    ops = [n.op_type for n in g.nodes]
    assert "RandomUniform" in ops and "Reshape" in ops
    assert "constant_folding" not in report.rules_fired


def test_graph_outputs_computed_from_constants_keep_their_node():
    model = make_model([helper.make_node("Neg", ["c"], ["y"])], {"x": (np.float32, [1])},
                       ["y"], {"c": np.ones(2, np.float32)})
    sess = check_rewrite(model, {"x": randn(1)})
    assert [n.op_type for n in sess.graph.nodes] == ["Neg"]


# -- dead-code elimination ----------------------------------------------------------------------
def test_dce_removes_unused_nodes_and_initializers_but_never_real_inputs():
    nodes = [helper.make_node("Relu", ["x"], ["y"]),
             helper.make_node("Neg", ["x"], ["unused"]),
             helper.make_node("Exp", ["unused"], ["unused2"])]
    model = make_model(nodes, {"x": (np.float32, [3]), "extra": (np.float32, [3])}, ["y"],
                       {"w": np.ones(3, np.float32)})
    g, report = optimized(model, "basic")
    assert report.rules_fired["dead_nodes"] == 2 and report.rules_fired["dead_initializers"] == 1
    assert [n.op_type for n in g.nodes] == ["Relu"] and "w" not in g.initializers
    assert [v.name for v in g.inputs] == ["x", "extra"]
    sess = session(model)
    assert [i.name for i in sess.get_inputs()] == ["x", "extra"]
    x = randn(3)
    np.testing.assert_allclose(sess.run(None, {"x": x, "extra": x})[0], np.maximum(x, 0))


def test_dce_keeps_outer_values_a_subgraph_returns():
    then_body = helper.make_graph([], "then", [], [helper.make_tensor_value_info("n", 1, [3])])
    else_body = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [],
                                  [helper.make_tensor_value_info("e", 1, [3])])
    model = make_model([helper.make_node("Neg", ["x"], ["n"]),
                        helper.make_node("If", ["c"], ["y"], then_branch=then_body,
                                         else_branch=else_body)],
                       {"x": (np.float32, [3]), "c": (np.bool_, [])}, ["y"])
    g, _ = optimized(model, "all")  # optimize() verifies the result
    assert "Neg" in [n.op_type for n in g.nodes]
    # (Not run: the executor does not yet let a branch return an outer value directly.)


# -- CSE ---------------------------------------------------------------------------------------
def test_cse_merges_duplicate_nodes_and_constants():
    nodes = [helper.make_node("Mul", ["x", "a"], ["m1"]),
             helper.make_node("Mul", ["x", "b"], ["m2"]),  # b == a: same after constant merge
             helper.make_node("Exp", ["m1"], ["e1"]),
             helper.make_node("Exp", ["m2"], ["e2"]),
             helper.make_node("Add", ["e1", "e2"], ["y"])]
    model = make_model(nodes, {"x": (np.float32, [3])}, ["y"],
                       {"a": np.array([1.5], np.float32), "b": np.array([1.5], np.float32)})
    sess = check_rewrite(model, {"x": randn(3)},
                         fired={"merged_constants": 1, "merged_nodes": 2})
    assert op_counts(sess.graph) == {"Mul": 1, "Exp": 1, "Add": 1}


def test_cse_refuses_random_ops_and_different_attributes():
    nodes = [helper.make_node("RandomNormalLike", ["x"], ["r1"], seed=3.0),
             helper.make_node("RandomNormalLike", ["x"], ["r2"], seed=3.0),
             helper.make_node("Softmax", ["x"], ["s1"], axis=0),
             helper.make_node("Softmax", ["x"], ["s2"], axis=1),
             helper.make_node("Sum", ["r1", "r2", "s1", "s2"], ["y"])]
    model = make_model(nodes, {"x": (np.float32, [2, 3])}, ["y"])
    g, report = optimized(model, "all")
    assert "merged_nodes" not in report.rules_fired
    assert op_counts(g)["RandomNormalLike"] == 2 and op_counts(g)["Softmax"] == 2


def test_cse_keeps_both_names_when_both_duplicates_are_graph_outputs():
    nodes = [helper.make_node("Relu", ["x"], ["y1"]), helper.make_node("Relu", ["x"], ["y2"])]
    model = make_model(nodes, {"x": (np.float32, [3])}, ["y1", "y2"])
    sess = check_rewrite(model, {"x": randn(3)})
    assert [o.name for o in sess.get_outputs()] == ["y1", "y2"]


# -- shape folding ------------------------------------------------------------------------------
def _reshape_by_shape_model(batch):
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "i0"], ["d0"], axis=0),
             helper.make_node("Gather", ["s", "i1"], ["d1"], axis=0),
             helper.make_node("Unsqueeze", ["d0", "ax"], ["u0"]),
             helper.make_node("Unsqueeze", ["d1", "ax"], ["u1"]),
             helper.make_node("Concat", ["u0", "u1", "m1"], ["target"], axis=0),
             helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Reshape", ["r", "target"], ["y"])]
    return make_model(nodes, {"x": (np.float32, [batch, 3, 2, 2])}, ["y"],
                      {"i0": np.array(0, np.int64), "i1": np.array(1, np.int64),
                       "ax": np.array([0], np.int64), "m1": np.array([-1], np.int64)})


def test_shape_gather_unsqueeze_concat_folds_to_a_constant_with_static_shapes():
    sess = check_rewrite(_reshape_by_shape_model(2), {"x": randn(2, 3, 2, 2)},
                         fired={"fold_shape": 1})
    assert op_counts(sess.graph) == {"Relu": 1, "Reshape": 1}
    assert list(sess.graph.nodes[1].inputs[1].const_value) == [2, 3, -1]


def test_symbolic_dims_fold_partially_and_reroute_to_the_input():
    model = _reshape_by_shape_model("batch")
    g, report = optimized(model, "all")
    assert report.rules_fired.get("fold_gather") == 1  # dim 1 (3) is known
    ops = op_counts(g)
    assert ops["Shape"] == 1 and ops["Gather"] == 1
    sess = session(model)
    for b in (1, 4):
        x = randn(b, 3, 2, 2)
        np.testing.assert_allclose(sess.run(None, {"x": x})[0], np.maximum(x, 0).reshape(b, 3, 4))


def test_shape_reads_of_intermediates_are_rerouted_to_inputs_with_the_same_dim_name():
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Shape", ["r"], ["s"]),
             helper.make_node("Gather", ["s", "i0"], ["d0"], axis=0),
             helper.make_node("Unsqueeze", ["d0", "ax"], ["u0"]),
             helper.make_node("Concat", ["u0", "m1"], ["target"], axis=0),
             helper.make_node("Reshape", ["r", "target"], ["y"])]
    model = make_model(nodes, {"x": (np.float32, ["n", 6])}, ["y"],
                       {"i0": np.array(0, np.int64), "ax": np.array([0], np.int64),
                        "m1": np.array([2, 3], np.int64)})
    sess = check_rewrite(model, {"x": randn(5, 6)}, fired={"reroute_symbolic_dim": 1})
    (shape_node,) = [n for n in sess.graph.nodes if n.op_type == "Shape"]
    assert shape_node.inputs[0].name == "x"


@pytest.mark.slow
def test_light_models_fold_their_constant_of_shape_weights():
    import glob

    from pyflame_rt.backends.cpu.executor import compile_plan
    from pyflame_rt.io.onnx import load_onnx

    light = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    path = min(glob.glob(os.path.join(light, "*squeezenet*.onnx")))
    m = load_onnx(path)
    before = sum(n.op_type == "ConstantOfShape" for n in m.graph.nodes)
    g, report = optimize(m, "all")
    assert before > 30 and not any(n.op_type == "ConstantOfShape" for n in g.nodes)
    assert report.rules_fired["constant_folding"] >= before
    import onnxruntime

    ref = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    arg = ref.get_inputs()[0]
    x = np.random.default_rng(0).random(arg.shape, dtype=np.float32)
    np.testing.assert_allclose(compile_plan(g).run({arg.name: x})[0],
                               ref.run(None, {arg.name: x})[0], rtol=1e-3, atol=1e-5)


def test_graphs_with_gradient_are_left_as_written():
    # Gradient names the tensors it differentiates by attribute; DCE or fusion on that path
    # would break it, so the optimizer refuses to rewrite such graphs (and says why).
    from onnx import TensorProto, helper

    import pyflame_rt
    from pyflame_rt.opt import OptLevel, optimize

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["m"]),
         helper.make_node("Add", ["m", "c"], ["d"]),
         helper.make_node("Gradient", ["a", "b", "c"], ["da", "db", "dc"],
                          domain="ai.onnx.preview.training", xs=["a", "b", "c"], y="d")],
        "grad",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 2]) for n in "abc"],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 2]) for n in
         ("da", "db", "dc")])
    model = helper.make_model(graph, opset_imports=[
        helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.preview.training", 1)])
    loaded = pyflame_rt.load(model)
    _, report = optimize(loaded, OptLevel.ALL)
    assert "Gradient" in report.skipped_reason
    assert [n.op_type for n in loaded.graph.nodes] == ["MatMul", "Add", "Gradient"]
    feeds = {n: np.eye(2, dtype=np.float32) for n in "abc"}
    got = pyflame_rt.InferenceSession(model).run(None, feeds)
    np.testing.assert_allclose(got[2], np.ones((2, 2)))  # d(sum over outputs)/dc = 1
