"""Rewrites keep the names of the values they replace.

A fused node's output takes the name of the value it replaces, so intermediate tensors keep
the names users know (in saved optimized models, in `pyflame-rt compare`, in profiles).
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper
from opt_helpers import assert_same_outputs, make_model, optimized, ort_run, randn, session

import pyflame_rt as pf
from pyflame_rt.io.onnx import from_onnx
from pyflame_rt.opt import Match, PassContext, RewriteRule, RuleSet

F32 = np.float32


def _names(graph) -> dict[str, str]:
    """Value name -> qualified op of its producer."""
    return {v.name: n.qualified_op for n in graph.nodes for v in n.outputs if v is not None}


def _gelu_then_relu():
    nodes = [helper.make_node("Div", ["x", "sqrt2"], ["a"]),
             helper.make_node("Erf", ["a"], ["e"]),
             helper.make_node("Add", ["e", "one"], ["e1"]),
             helper.make_node("Mul", ["x", "half"], ["xh"]),
             helper.make_node("Mul", ["xh", "e1"], ["gelu_out"]),
             helper.make_node("Neg", ["gelu_out"], ["y"])]
    inits = {"sqrt2": np.array(math.sqrt(2), F32), "one": np.array(1, F32),
             "half": np.array(0.5, F32)}
    return make_model(nodes, {"x": (F32, [2, 8])}, ["y"], inits)


def test_fused_output_keeps_the_replaced_name():
    graph, report = optimized(_gelu_then_relu())
    assert report.rules_fired["fuse_gelu_erf"] == 1
    names = _names(graph)
    assert names["gelu_out"] == "pyflame::Gelu"
    assert set(names) == {"gelu_out", "y"}, names


def test_saved_optimized_model_keeps_intermediate_names(tmp_path):
    model = _gelu_then_relu()
    path = tmp_path / "opt.onnx"
    session(model, pf.OptLevel.ALL, optimized_model_filepath=str(path))
    saved = onnx.load(str(path))
    gelu = [n for n in saved.graph.node if n.op_type == "Gelu"]
    assert len(gelu) == 1 and list(gelu[0].output) == ["gelu_out"]
    feeds = {"x": randn(2, 8)}
    reloaded = session(str(path), pf.OptLevel.NONE)
    assert_same_outputs(reloaded.run(None, feeds), ort_run(model, feeds))


def test_graph_output_name_kept_and_old_value_renamed():
    # The fused value is itself the graph output: it keeps the output's name.
    model = _gelu_then_relu()
    model.graph.output.append(helper.make_value_info("gelu_out", onnx.TypeProto()))
    graph, _ = optimized(model)
    assert [v.name for v in graph.outputs] == ["y", "gelu_out"]
    assert graph.outputs[1].producer.op_type == "Gelu"
    feeds = {"x": randn(2, 8)}
    assert_same_outputs(session(model).run(None, feeds), ort_run(model, feeds))


def test_rewrite_returning_an_existing_value_does_not_rename_it():
    # Neg(Neg(x)) ==> x: the graph input keeps its name; the reader reads "x".
    rule = RewriteRule("negneg", lambda op, x: op.Neg(op.Neg(x)), lambda op, m: m["x"])
    g = from_onnx(make_model([helper.make_node("Neg", ["x"], ["a"]),
                              helper.make_node("Neg", ["a"], ["b"]),
                              helper.make_node("Relu", ["b"], ["y"])],
                             {"x": (F32, [3])}, ["y"])).graph
    assert RuleSet([rule]).run(g, PassContext()).counts == {"negneg": 1}
    assert g.inputs[0].name == "x" and g.nodes[0].inputs[0].name == "x"


def test_multi_output_rewrite_keeps_each_name():
    # LayerNorm(a + b) whose sum is also read: SkipLayerNormalization's two outputs take the
    # names of the LayerNormalization output and of the sum.
    nodes = [helper.make_node("Add", ["a", "b"], ["resid"]),
             helper.make_node("LayerNormalization", ["resid", "g", "beta"], ["normed"]),
             helper.make_node("Relu", ["normed"], ["y"]),
             helper.make_node("Neg", ["resid"], ["z"])]
    inits = {"g": randn(8, seed=1), "beta": randn(8, seed=2)}
    model = make_model(nodes, {"a": (F32, [2, 3, 8]), "b": (F32, [2, 3, 8])}, ["y", "z"],
                       inits)
    graph, report = optimized(model)
    assert report.rules_fired["fuse_skip_layernorm"] == 1
    skip = [n for n in graph.nodes if n.op_type == "SkipLayerNormalization"]
    assert [v.name for v in skip[0].outputs] == ["normed", "resid"]


def test_hand_written_attention_rule_keeps_the_output_name():
    from test_transformer_fusions import _attention_model, _feeds

    model = _attention_model()
    model.graph.node.append(helper.make_node("Neg", ["y"], ["z"]))
    model.graph.output[0].name = "z"
    graph, report = optimized(model)
    assert report.rules_fired["fuse_attention"] == 1
    assert _names(graph)["y"] == "pyflame::Attention"
    feeds = _feeds()
    assert_same_outputs(session(model).run(None, feeds), ort_run(model, feeds))


def test_merged_transposes_and_folded_constants_keep_names():
    nodes = [helper.make_node("Transpose", ["x"], ["t1"], perm=[1, 0, 2]),
             helper.make_node("Transpose", ["t1"], ["t2"], perm=[0, 2, 1]),
             helper.make_node("Add", ["c1", "c2"], ["csum"]),
             helper.make_node("Add", ["t2", "csum"], ["y"])]
    inits = {"c1": randn(2, seed=1), "c2": randn(2, seed=2)}
    model = make_model(nodes, {"x": (F32, [2, 3, 4])}, ["y"], inits)
    graph, _ = optimized(model, "basic")
    assert _names(graph)["t2"] == "Transpose"
    assert "csum" in graph.initializers
    feeds = {"x": randn(2, 3, 4)}
    assert_same_outputs(session(model).run(None, feeds), ort_run(model, feeds))


def test_user_rule_output_takes_the_replaced_name():
    def rewrite(op, m: Match):
        return op.Abs(m["x"])

    rule = RewriteRule("relu_neg", lambda op, x: op.Relu(op.Neg(x)), rewrite)
    g = from_onnx(make_model([helper.make_node("Neg", ["x"], ["n"]),
                              helper.make_node("Relu", ["n"], ["r"]),
                              helper.make_node("Sigmoid", ["r"], ["y"])],
                             {"x": (F32, [3])}, ["y"])).graph
    RuleSet([rule]).run(g, PassContext())
    assert [(n.op_type, n.outputs[0].name) for n in g.nodes] == [("Abs", "r"), ("Sigmoid", "y")]
