"""PassManager, levels, disabled_optimizers, debug verification and the report."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from opt_helpers import check_rewrite, make_model, optimized, randn, session

import pyflame_rt as pf
from pyflame_rt.errors import InvalidArgumentError, InvalidGraphError
from pyflame_rt.ir import Graph, Value
from pyflame_rt.opt import (
    FunctionPass,
    OptLevel,
    Pass,
    PassContext,
    PassManager,
    PassResult,
    available_optimizers,
    optimize,
    to_opt_level,
)
from pyflame_rt.types import DType, TensorInfo


def _relu_chain_model():
    """x -> Identity -> Relu -> Identity -> y, plus a constant subexpression."""
    nodes = [
        helper.make_node("Identity", ["x"], ["a"]),
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("Add", ["c1", "c2"], ["c"]),
        helper.make_node("Add", ["b", "c"], ["d"]),
        helper.make_node("Identity", ["d"], ["y"]),
    ]
    return make_model(nodes, {"x": (np.float32, [2, 3])}, ["y"],
                      {"c1": np.ones(3, np.float32), "c2": np.full(3, 2.0, np.float32)})


def test_levels_map_from_ort_enum_ints_and_names():
    assert to_opt_level(pf.GraphOptimizationLevel.ORT_DISABLE_ALL) is OptLevel.NONE
    assert to_opt_level(pf.GraphOptimizationLevel.ORT_ENABLE_BASIC) is OptLevel.BASIC
    assert to_opt_level(pf.GraphOptimizationLevel.ORT_ENABLE_EXTENDED) is OptLevel.EXTENDED
    assert to_opt_level(pf.GraphOptimizationLevel.ORT_ENABLE_ALL) is OptLevel.ALL
    assert to_opt_level(99) is OptLevel.ALL and to_opt_level("basic") is OptLevel.BASIC
    with pytest.raises(ValueError, match="unknown optimization level"):
        to_opt_level("fastest")


def test_report_counts_nodes_rules_passes_and_time():
    graph, report = optimized(_relu_chain_model(), "all")
    assert report.nodes_before == 5
    assert report.nodes_after == len(graph.nodes) == 2  # Relu, Add(b, folded c)
    assert report.rules_fired["eliminate_identity"] == 2
    assert report.rules_fired["constant_folding"] == 1
    assert "constant_folding" in report.passes and "simplify" in report.passes
    assert report.seconds["total"] > 0 and "constant_folding" in report.seconds
    text = report.format()
    assert "5 -> 2 nodes" in text and "eliminate_identity" in text
    assert "eliminate_identity×2" in report.summary()


def test_level_none_changes_nothing_and_basic_skips_extended():
    model = _relu_chain_model()
    graph, report = optimized(model, "none")
    assert len(graph.nodes) == 5 and report.rules_fired == {} and report.passes == []
    # Conv+Relu fusion is EXTENDED: BASIC must not do it.
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Relu", ["c"], ["y"])]
    conv = make_model(nodes, {"x": (np.float32, [1, 2, 5, 5])}, ["y"],
                      {"w": randn(3, 2, 3, 3)})
    g_basic, _ = optimized(conv, "basic")
    assert [n.op_type for n in g_basic.nodes] == ["Conv", "Relu"]
    g_ext, _ = optimized(conv, "extended")
    assert [n.op_type for n in g_ext.nodes] == ["FusedConv"]


def test_disabled_optimizers_switch_off_passes_and_single_rules():
    model = _relu_chain_model()
    g, rep = optimized(model, "all", disabled_optimizers=["eliminate_identity"])
    assert "eliminate_identity" not in rep.rules_fired
    assert sum(n.op_type == "Identity" for n in g.nodes) == 2
    g, rep = optimized(model, "all", disabled_optimizers=["constant_folding"])
    assert "constant_folding" not in rep.passes
    assert any(n.op_type == "Add" and n.inputs[0].name == "c1" for n in g.nodes)
    # Through the session, with ORT's keyword.
    x = randn(2, 3)
    sess = session(model, OptLevel.ALL, disabled_optimizers=["simplify"])
    assert sum(n.op_type == "Identity" for n in sess.graph.nodes) == 2
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], np.maximum(x, 0) + 3.0)


def test_every_default_pass_and_rule_has_a_name_to_disable():
    names = available_optimizers()
    for expected in ("constant_folding", "dead_code_elimination",
                     "common_subexpression_elimination", "simplify", "basic_fusions",
                     "attention_fusion"):
        assert expected in names
    assert "fuse_conv_bn" in names["basic_fusions"]
    assert "fuse_attention" in names["attention_fusion"]


class _Counter(Pass):
    """Changes the graph the first ``n`` times it runs (to test the fixed point)."""

    name = "counter"
    level = OptLevel.BASIC

    def __init__(self, n: int) -> None:
        self.left = n
        self.runs = 0

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        self.runs += 1
        result = PassResult()
        if self.left > 0:
            self.left -= 1
            result.add("tick")
        return result


def test_manager_repeats_a_level_until_nothing_changes():
    p = _Counter(3)
    _, rep = optimized(_relu_chain_model(), "basic", passes=[p])
    assert p.runs == 4  # three changes, then one quiet run
    assert rep.rules_fired == {"tick": 3}


def test_manager_bounds_a_flip_flopping_pass():
    p = _Counter(10_000)
    optimized(_relu_chain_model(), "basic", passes=[p])
    assert p.runs == 10


def test_ordering_constraints_are_respected():
    order: list[str] = []

    def make(name, **kw):
        return FunctionPass(name, lambda g, c: order.append(name) or 0, OptLevel.BASIC, **kw)

    passes = [make("c", after=("a",)), make("b", before=("a",)), make("a")]
    manager = PassManager(passes, OptLevel.ALL)
    assert [p.name for p in manager.passes] == ["b", "a", "c"]
    with pytest.raises(InvalidArgumentError, match="circular"):
        PassManager([make("x", after=("y",)), make("y", after=("x",))])


def _breaker(graph: Graph, ctx: PassContext) -> int:
    """A buggy pass: adds a node reading a value that does not exist."""
    ghost = Value("ghost", TensorInfo(DType.FLOAT, (1,)))
    graph.make_node("Relu", [ghost], 1)
    return 1


def test_debug_mode_names_the_pass_that_broke_the_graph_and_those_before():
    passes = [FunctionPass("harmless", lambda g, c: 0), FunctionPass("breaker", _breaker,
                                                                       after=("harmless",))]
    with pytest.raises(InvalidGraphError) as err:
        optimized(_relu_chain_model(), "all", passes=passes, debug=True)
    msg = str(err.value)
    assert "'breaker' broke the graph" in msg and "harmless" in msg and "ghost" in msg
    # Without debug mode, the final check still refuses to hand back a broken graph.
    with pytest.raises(InvalidGraphError, match="optimized graph is invalid"):
        optimized(_relu_chain_model(), "all", passes=passes, debug=False)


def test_optimize_accepts_a_graph_and_returns_the_same_object():
    from pyflame_rt.io.onnx import from_onnx

    model = from_onnx(_relu_chain_model())
    g, rep = optimize(model.graph, OptLevel.BASIC)
    assert g is model.graph and rep.level is OptLevel.BASIC


def test_outputs_keep_their_names_when_their_producer_is_bypassed():
    sess = check_rewrite(_relu_chain_model(), {"x": randn(2, 3)},
                         fired={"eliminate_identity": 2})
    assert [o.name for o in sess.get_outputs()] == ["y"]
    assert sess.graph.outputs[0].name == "y"


def test_a_crashing_pass_is_reported_as_invalid_graph_naming_it():
    from pyflame_rt.errors import InvalidGraphError
    from pyflame_rt.ir import Graph, Value
    from pyflame_rt.opt import OptLevel, optimize
    from pyflame_rt.opt.pass_manager import FunctionPass
    from pyflame_rt.types import DType, TensorInfo

    def broken(graph, ctx):
        raise KeyError("boom")

    g = Graph("g")
    x = g.add_input(Value("x", TensorInfo(DType.FLOAT, (2,))))
    g.add_output(g.make_node("Relu", [x]).outputs[0])
    with pytest.raises(InvalidGraphError, match="optimizer pass 'broken'.*boom"):
        optimize(g, OptLevel.ALL, passes=[FunctionPass("broken", broken)])
