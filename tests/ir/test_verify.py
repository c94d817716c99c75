"""``verify(graph)``: every structural problem is reported with what is wrong and where."""

from __future__ import annotations

import numpy as np
import pytest

from pyflame_rt.errors import InvalidGraphError, InvalidModelError
from pyflame_rt.ir import Graph, Node, Use, Value, verify
from pyflame_rt.types import DType, TensorInfo

F32 = TensorInfo(DType.FLOAT, (2, 3))


def valid() -> tuple[Graph, Value, Node]:
    g = Graph("main")
    x = g.add_input(Value("x", F32))
    w = g.add_initializer("w", np.ones((2, 3), np.float32))
    add = g.make_node("Add", [x, w], name="add")
    relu = g.make_node("Relu", add.outputs, name="relu")
    g.add_output(relu.outputs[0])
    return g, x, add


def test_valid_graph_passes():
    g, x, _ = valid()
    g.make_node("Clip", [x, None, g.initializers["w"]])  # an omitted optional input is fine
    verify(g)  # raises on any problem
    assert issubclass(InvalidGraphError, InvalidModelError)


def test_duplicate_value_names():
    g, x, _add = valid()
    g.make_node("Neg", [x], output_names=["add_out"])
    with pytest.raises(InvalidGraphError, match=r"graph 'main': duplicate value name 'add_out' "
                                                r"\(output of Neg\).*rename"):
        verify(g)


def test_input_and_initializer_with_the_same_name():
    g, _x, _add = valid()
    g.initializers["x"] = Value("x", F32, const_value=np.ones((2, 3), np.float32))
    with pytest.raises(InvalidGraphError, match="duplicate value name 'x' \\(initializer\\)"):
        verify(g)


def test_initializer_registered_under_another_name():
    g, _x, _add = valid()
    g.initializers["alias"] = g.initializers["w"]
    with pytest.raises(InvalidGraphError, match="initializer registered as 'alias' is named 'w'"):
        verify(g)


def test_empty_value_name():
    g, _x, _add = valid()
    g.add_input(Value("", F32))
    with pytest.raises(InvalidGraphError, match="graph input has an empty name"):
        verify(g)


def test_undefined_input():
    g, x, _add = valid()
    ghost = Value("ghost", F32)
    g.make_node("Mul", [x, ghost], name="mul")
    with pytest.raises(InvalidGraphError,
                       match=r"Mul 'mul' .*input 1 'ghost' is not defined in graph 'main'"):
        verify(g)


def test_value_of_an_unrelated_graph_with_a_known_name_is_undefined():
    g, _x, _add = valid()
    impostor = Value("x", F32)  # same name as the input, different object
    g.make_node("Neg", [impostor], name="neg")
    with pytest.raises(InvalidGraphError, match="input 0 'x' is not defined"):
        verify(g)


def test_read_before_produced_asks_for_sort():
    g, _x, _add = valid()
    g._nodes.reverse()
    with pytest.raises(InvalidGraphError, match=r"Relu 'relu'.*reads 'add_out' before it is "
                                                r"produced by Add 'add'.*graph.sort\(\)"):
        verify(g)
    g.sort()
    verify(g)


def test_cycle():
    g = Graph("cyc")
    a, b = Value("a"), Value("b")
    g.insert_node(Node("Neg", [b], [a], name="p"))
    g.insert_node(Node("Neg", [a], [b], name="q"))
    with pytest.raises(InvalidGraphError, match="cycle.*'p'.*'q'"):
        verify(g)


def test_missing_use_entry():
    g, x, _add = valid()
    x._uses.clear()  # an edge edited behind the IR's back
    with pytest.raises(InvalidGraphError,
                       match="input 0 'x' is missing from the value's use list"):
        verify(g)


def test_dangling_use():
    g, x, add = valid()
    x._uses.append(Use(add, 1))  # add's input 1 is w, not x
    with pytest.raises(InvalidGraphError, match=r"value 'x' has a dangling use .*Add 'add'"):
        verify(g)


def test_dangling_use_by_removed_node():
    g, x, _add = valid()
    stale = g.make_node("Abs", [x], name="stale")
    g._nodes.remove(stale)  # dropped from the list but the edge was never removed
    stale.graph = None
    with pytest.raises(InvalidGraphError, match="dangling use .*'stale'"):
        verify(g)


def test_use_index_out_of_range():
    g, x, add = valid()
    x._uses.append(Use(add, 9))
    with pytest.raises(InvalidGraphError, match="dangling use"):
        verify(g)


def test_output_not_produced():
    g, _x, _add = valid()
    g.add_output(Value("nowhere", F32))
    with pytest.raises(InvalidGraphError, match="output 'nowhere' is not produced"):
        verify(g)


def test_graph_input_and_initializer_can_be_outputs():
    g, x, _add = valid()
    g.add_output(x)
    g.add_output(g.initializers["w"])
    verify(g)


def test_node_from_another_graph():
    g, _x, add = valid()
    add.graph = Graph("other")
    with pytest.raises(InvalidGraphError, match="listed in graph 'main' but belongs to another"):
        verify(g)


def test_output_naming_another_producer():
    g, _x, add = valid()
    relu = g.nodes[1]
    relu.outputs[0].producer = add
    with pytest.raises(InvalidGraphError, match="output 'relu_out' names another producer"):
        verify(g)


def subgraph_graph(parent_of_branch: Graph | None = None):
    g, x, _add = valid()
    branch = Graph("then", parent=g if parent_of_branch is None else parent_of_branch)
    branch.add_output(branch.make_node("Neg", [x], name="inner").outputs[0])  # outer-scope x
    cond = g.add_input(Value("cond", TensorInfo(DType.BOOL, ())))
    node = g.make_node("If", [cond], attrs={"then_branch": branch, "else_branch": branch},
                       name="if")
    g.add_output(node.outputs[0])
    return g, branch


def test_outer_scope_values_are_accepted_in_subgraphs():
    g, _branch = subgraph_graph()
    verify(g)
    verify(g)  # idempotent


def test_subgraph_may_return_an_outer_value():
    g, branch = subgraph_graph()
    branch.outputs[0] = g.inputs[0]
    verify(g)


def test_subgraph_parent_mismatch():
    g, _branch = subgraph_graph(parent_of_branch=Graph("stranger"))
    with pytest.raises(InvalidGraphError, match=r"If 'if'.*subgraph 'then' does not name this "
                                                r"graph as its parent"):
        verify(g)


def test_subgraph_errors_are_found():
    g, branch = subgraph_graph()
    branch.make_node("Abs", [Value("undefined_inner")], name="bad")
    with pytest.raises(InvalidGraphError, match="'undefined_inner' is not defined in graph "
                                                "'then'"):
        verify(g)


def test_subgraph_cannot_see_values_defined_after_its_node():
    g, branch = subgraph_graph()
    later = g.make_node("Exp", [g.inputs[0]], name="later")
    branch.make_node("Abs", [later.outputs[0]], name="too_early")
    # The captured value is produced after the If: it is out of order.
    with pytest.raises(InvalidGraphError, match="not defined in graph 'then'"):
        verify(g)
    g.sort()
    verify(g)
