"""The pattern matcher, RewriteRule/RuleSet, the tracer and user-registered rules."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from opt_helpers import make_model, optimized, randn, session

from pyflame_rt.io.onnx import from_onnx
from pyflame_rt.opt import (
    Match,
    OptLevel,
    PassContext,
    RewriteRule,
    RuleSet,
    optimize,
    register_rule,
    unregister,
)


def _graph(nodes, inputs, outputs, inits=None, **kw):
    return from_onnx(make_model(nodes, inputs, outputs, inits, **kw)).graph


# A toy rule: Neg(Neg(x)) ==> x (written as Identity so the test sees the rewrite happen).
def _negneg_pattern(op, x):
    return op.Neg(op.Neg(x, _name="inner"))


def _negneg_rewrite(op, m: Match):
    return op.Identity(m["x"])


NEGNEG = RewriteRule("negneg", _negneg_pattern, _negneg_rewrite)


def test_rule_fires_and_rewires_uses():
    g = _graph([helper.make_node("Neg", ["x"], ["a"]), helper.make_node("Neg", ["a"], ["y"])],
               {"x": (np.float32, [3])}, ["y"])
    n = RuleSet([NEGNEG]).run(g, PassContext()).counts
    assert n == {"negneg": 1}
    assert [node.op_type for node in g.nodes] == ["Identity"]
    assert g.outputs[0].name == "y" and g.nodes[0].inputs[0].name == "x"


def test_safe_by_default_refuses_escaping_intermediates_with_reason():
    nodes = [helper.make_node("Neg", ["x"], ["a"]), helper.make_node("Neg", ["a"], ["y"]),
             helper.make_node("Relu", ["a"], ["z"])]
    g = _graph(nodes, {"x": (np.float32, [3])}, ["y", "z"])
    tracer = RuleSet([NEGNEG]).explain(g)
    reasons = {e.node.split()[1]: e.reason for e in tracer.why("negneg")}
    assert len(reasons) == 2  # tried at both Neg nodes
    outer = [r for r in reasons.values() if "'a'" in r]
    assert outer and "outside the pattern" in outer[0]
    assert RuleSet([NEGNEG]).run(g, PassContext()).counts == {}
    escaping = RewriteRule("negneg_escaping", _negneg_pattern, _negneg_rewrite,
                           allow_escaping=True)
    assert RuleSet([escaping]).run(g, PassContext()).counts == {"negneg_escaping": 1}
    assert sorted(n.op_type for n in g.nodes) == ["Identity", "Neg", "Relu"]


def test_commutative_ops_match_both_orders_and_variables_bind_consistently():
    # x * Sigmoid(x) in both operand orders; x * Sigmoid(other) must not match.
    def pattern(op, x):
        return op.Mul(x, op.Sigmoid(x))

    rule = RewriteRule("silu", pattern, lambda op, m: op.Identity(m["x"]))
    for order in (["x", "s"], ["s", "x"]):
        g = _graph([helper.make_node("Sigmoid", ["x"], ["s"]),
                    helper.make_node("Mul", order, ["y"])], {"x": (np.float32, [3])}, ["y"])
        assert RuleSet([rule]).run(g, PassContext()).counts == {"silu": 1}
    g = _graph([helper.make_node("Sigmoid", ["w"], ["s"]), helper.make_node("Mul", ["x", "s"],
                                                                           ["y"])],
               {"x": (np.float32, [3]), "w": (np.float32, [3])}, ["y"])
    (entry,) = RuleSet([rule]).explain(g).why("silu")
    assert "variable 'x' is bound to" in entry.reason, entry.reason


def test_constants_in_patterns_match_within_tolerance_only():
    def pattern(op, x):
        return op.Mul(x, 0.5)

    rule = RewriteRule("half", pattern, lambda op, m: op.Identity(m["x"]))
    for value, fires in ((0.5, True), (0.50000001, True), (0.6, False)):
        g = _graph([helper.make_node("Mul", ["h", "x"], ["y"])], {"x": (np.float32, [3])},
                   ["y"], {"h": np.array(value, np.float32)})
        assert bool(RuleSet([rule]).run(g, PassContext()).counts) is fires
    g = _graph([helper.make_node("Mul", ["x", "h"], ["y"])], {"x": (np.float32, [3])},
               ["y"], {"h": np.array(0.6, np.float32)})
    assert "expected the constant 0.5, got 0.6" in RuleSet([rule]).explain(g).why()[0].reason


def test_attribute_constraints_use_schema_defaults_and_callables():
    def pattern(op, x):
        return op.Softmax(x, axis=-1)

    rule = RewriteRule("sm", pattern, lambda op, m: op.Identity(m["x"]))
    # Softmax-13's default axis is -1: an absent attribute matches.
    g = _graph([helper.make_node("Softmax", ["x"], ["y"])], {"x": (np.float32, [2, 3])}, ["y"])
    assert RuleSet([rule]).run(g, PassContext()).counts == {"sm": 1}
    g = _graph([helper.make_node("Softmax", ["x"], ["y"], axis=0)], {"x": (np.float32, [2, 3])},
               ["y"])
    assert "axis=0" in RuleSet([rule]).explain(g).why()[0].reason
    cond = RewriteRule("sm2", lambda op, x: op.Softmax(x, axis=lambda a: a in (0, 1)),
                       lambda op, m: op.Identity(m["x"]))
    assert RuleSet([cond]).run(g, PassContext()).counts == {"sm2": 1}


def test_check_reason_reaches_the_tracer_and_rewrite_may_decline():
    def check(m):
        return m.fail("never on Tuesdays")

    rule = RewriteRule("picky", _negneg_pattern, _negneg_rewrite, check)
    g = _graph([helper.make_node("Neg", ["x"], ["a"]), helper.make_node("Neg", ["a"], ["y"])],
               {"x": (np.float32, [3])}, ["y"])
    assert [e.reason for e in RuleSet([rule]).explain(g).why("picky")
            if "Neg" not in e.reason and "graph input" not in e.reason] == ["never on Tuesdays"]
    declining = RewriteRule("declines", _negneg_pattern, lambda op, m: None)
    assert RuleSet([declining]).run(g, PassContext()).counts == {}
    assert [n.op_type for n in g.nodes] == ["Neg", "Neg"]


def test_pattern_mismatch_reasons_name_the_node_and_the_expected_op():
    def pattern(op, x, w):
        return op.Relu(op.Conv(x, w, _allow_other_inputs=True, _name="conv"))

    rule = RewriteRule("conv_relu", pattern, lambda op, m: op.Identity(m["x"]))
    g = _graph([helper.make_node("Add", ["x", "x"], ["a"]), helper.make_node("Relu", ["a"],
                                                                             ["y"])],
               {"x": (np.float32, [1, 1, 3, 3])}, ["y"])
    reason = RuleSet([rule]).explain(g).why()[0].reason
    assert "Add" in reason and "pattern wants Conv" in reason


def test_rewrite_creates_initializers_and_multi_output_nodes():
    def pattern(op, x):
        return op.Neg(x, _name="n")

    def rewrite(op, m):
        minus_one = op.initializer(np.array(-1.0, np.float32), "minus_one")
        return op.Mul(m["x"], minus_one)

    g = _graph([helper.make_node("Neg", ["x"], ["y"])], {"x": (np.float32, [3])}, ["y"])
    RuleSet([RewriteRule("neg_as_mul", pattern, rewrite)]).run(g, PassContext())
    (node,) = g.nodes
    assert node.op_type == "Mul" and node.inputs[1].const_value == np.float32(-1.0)


def test_user_registered_rule_runs_in_sessions():
    def pattern(op, x):
        return op.Sqrt(op.Mul(x, x, _name="sq"))

    def rewrite(op, m):
        return op.Abs(m["x"])

    rule = register_rule(RewriteRule("sqrt_of_square", pattern, rewrite), OptLevel.EXTENDED)
    try:
        model = make_model([helper.make_node("Mul", ["x", "x"], ["s"]),
                            helper.make_node("Sqrt", ["s"], ["y"])],
                           {"x": (np.float32, [4])}, ["y"])
        sess = session(model)
        assert [n.op_type for n in sess.graph.nodes] == ["Abs"]
        assert sess.optimization_report.rules_fired["sqrt_of_square"] == 1
        x = randn(4)
        np.testing.assert_allclose(sess.run(None, {"x": x})[0], np.abs(x), rtol=1e-6)
        g, _ = optimized(model, "basic")
        assert [n.op_type for n in g.nodes] == ["Mul", "Sqrt"]  # EXTENDED rule, BASIC run
    finally:
        unregister(rule.name)
    g, _ = optimized(model, "all")
    assert [n.op_type for n in g.nodes] == ["Mul", "Sqrt"]


def test_trace_through_optimize_records_fired_and_refused():
    model = make_model([helper.make_node("Conv", ["x", "w"], ["c"]),
                        helper.make_node("Relu", ["c"], ["y"]),
                        helper.make_node("Relu", ["x"], ["z"])],
                       {"x": (np.float32, [1, 2, 4, 4])}, ["y", "z"], {"w": randn(2, 2, 1, 1)})
    _, report = optimized(model, "all", trace=True)
    assert len(report.trace.fired("fuse_conv_relu")) == 1
    reasons = [e.reason for e in report.trace.why("fuse_conv_relu")]
    assert any("'x' is a graph input" in r for r in reasons)
    assert "fuse_conv_relu" in str(report.trace)


def test_pattern_must_return_node_outputs():
    with pytest.raises(TypeError, match="node outputs"):
        RewriteRule("bad", lambda op, x: x, lambda op, m: None)


def test_rules_apply_inside_subgraphs():
    then_body = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["a"]), helper.make_node("Neg", ["a"], ["t"])],
        "then", [], [helper.make_tensor_value_info("t", 1, [3])])
    else_body = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [],
                                  [helper.make_tensor_value_info("e", 1, [3])])
    model = make_model([helper.make_node("If", ["c"], ["y"], then_branch=then_body,
                                         else_branch=else_body)],
                       {"x": (np.float32, [3]), "c": (np.bool_, [])}, ["y"])
    m = from_onnx(model)
    optimize(m, "all", passes=[RuleSet([NEGNEG], name="negneg", level=OptLevel.BASIC)])
    sub = m.graph.nodes[0].attrs["then_branch"]
    assert [n.op_type for n in sub.nodes] == ["Identity"]
    x = randn(3)
    for c in (True, False):
        out = session(model).run(None, {"x": x, "c": np.array(c)})[0]
        np.testing.assert_allclose(out, x)
