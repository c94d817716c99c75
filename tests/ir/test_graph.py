"""The IR's editing API: use-def edges, naming, insertion, removal, ordering and cloning."""

from __future__ import annotations

import numpy as np
import pytest

from pyflame_rt.errors import InvalidGraphError
from pyflame_rt.ir import (
    Graph,
    Model,
    Node,
    Use,
    Value,
    clone_graph,
    clone_model,
    topological_order,
    verify,
)
from pyflame_rt.ir.order import outer_inputs
from pyflame_rt.types import DType, SequenceInfo, TensorInfo

F32 = TensorInfo(DType.FLOAT, ("N", 4))


def chain() -> tuple[Graph, Value, Node, Node]:
    """x -> Relu -> Neg -> output."""
    g = Graph("chain")
    x = g.add_input(Value("x", F32))
    relu = g.make_node("Relu", [x])
    neg = g.make_node("Neg", relu.outputs)
    g.add_output(neg.outputs[0])
    return g, x, relu, neg


def uses(v: Value) -> list[tuple[str, int]]:
    return [(u.node.op_type, u.index) for u in v.uses]


# -- values and uses -----------------------------------------------------------------------------
def test_node_construction_records_uses_and_producers():
    x, y, out = Value("x"), Value("y"), Value("out")
    node = Node("Add", [x, y, x], [out])
    assert uses(x) == [("Add", 0), ("Add", 2)]
    assert uses(y) == [("Add", 1)]
    assert out.producer is node and out.producer_index == 0
    assert x.uses[0].node is node and x.uses[1].index == 2
    assert isinstance(x.uses[0], Use) and tuple(x.uses[0]) == (node, 0)
    assert x.consumers() == [node]  # distinct nodes, once each


def test_value_cannot_have_two_producers():
    out = Value("out")
    Node("Relu", [Value("a")], [out], name="first")
    with pytest.raises(InvalidGraphError, match="already produced by Relu 'first'"):
        Node("Neg", [Value("b")], [out])


def test_replace_input_moves_the_use():
    g, _x, relu, neg = chain()
    z = g.add_input(Value("z", F32))
    neg.replace_input(0, z)
    assert uses(relu.outputs[0]) == []
    assert uses(z) == [("Neg", 0)]
    assert neg.inputs == (z,)
    neg.replace_input(0, None)  # an omitted optional input holds no use
    assert uses(z) == [] and neg.inputs == (None,)
    neg.replace_input(0, relu.outputs[0])
    verify(g)


def test_replace_input_of_a_repeated_value_moves_only_that_slot():
    x, y = Value("x"), Value("y")
    node = Node("Mul", [x, x], [Value("o")])
    node.replace_input(1, y)
    assert uses(x) == [("Mul", 0)] and uses(y) == [("Mul", 1)]


def test_set_inputs_and_append_input():
    a, b, c = Value("a"), Value("b"), Value("c")
    node = Node("Sum", [a, b], [Value("o")])
    node.set_inputs([c, None, a])
    assert uses(a) == [("Sum", 2)] and uses(b) == [] and uses(c) == [("Sum", 0)]
    node.append_input(b)
    assert uses(b) == [("Sum", 3)]
    assert node.inputs == (c, None, a, b)


def test_replace_all_uses_with_moves_every_use():
    g, x, relu, _neg = chain()
    extra = g.make_node("Abs", relu.outputs)
    g.add_output(extra.outputs[0])
    moved = relu.outputs[0].replace_all_uses_with(x)
    assert moved == 2
    assert relu.outputs[0].uses == ()
    assert uses(x) == [("Relu", 0), ("Neg", 0), ("Abs", 0)]
    assert x.replace_all_uses_with(x) == 0
    g.remove_node(relu)
    verify(g)


def test_replace_all_uses_with_keeps_graph_output_name_by_renaming():
    g, _x, relu, neg = chain()
    old = neg.outputs[0]
    old_name = old.name
    sig = g.make_node("Sigmoid", relu.outputs)
    assert old.replace_all_uses_with(sig.outputs[0]) == 1
    assert g.outputs == [sig.outputs[0]]
    assert sig.outputs[0].name == old_name  # the model's interface is unchanged
    g.remove_node(neg)
    verify(g)


@pytest.mark.parametrize("kind", ["input", "initializer", "output"])
def test_replace_all_uses_with_interface_value_inserts_identity(kind):
    g, x, relu, neg = chain()
    old = neg.outputs[0]
    old_name = old.name
    if kind == "input":
        other = x
    elif kind == "initializer":
        other = g.add_initializer("k", np.zeros((1, 4), np.float32))
    else:
        other = relu.outputs[0]
        g.add_output(other)
    old.replace_all_uses_with(other)
    out = g.outputs[0]
    assert out.name == old_name
    assert out.producer.op_type == "Identity" and out.producer.inputs == (other,)
    assert other.name != old_name  # the interface value keeps its own name
    g.remove_node(neg)
    verify(g)


def test_replace_all_uses_with_leaves_no_duplicate_names():
    g = Graph()
    x = g.add_input(Value("x", F32))
    split = g.make_node("Split", [x], num_outputs=2, attrs={"num_outputs": 2})
    a, b = split.outputs
    g.add_output(a)
    g.add_output(b)
    relu = g.make_node("Relu", [x])
    a.replace_all_uses_with(relu.outputs[0])  # Split stays: b is still an output
    assert g.outputs[0] is relu.outputs[0] and relu.outputs[0].name == "split_out0"
    assert a.name != "split_out0"  # the replaced value was renamed
    verify(g)


def test_replace_all_uses_with_also_redirects_the_replacements_own_input():
    # Documented hazard (as in torch.fx without delete_user_cb): a node built on the old value
    # is one of its uses, so redirecting *all* uses makes it read its own output.
    g, _x, relu, _neg = chain()
    sig = g.make_node("Sigmoid", relu.outputs)
    relu.outputs[0].replace_all_uses_with(sig.outputs[0])
    assert sig.inputs == (sig.outputs[0],)
    with pytest.raises(InvalidGraphError, match="reads its own output"):
        verify(g)


def test_replace_all_uses_with_except_nodes_keeps_the_replacements_input():
    g, _x, relu, neg = chain()
    sig = g.make_node("Sigmoid", relu.outputs)
    relu.outputs[0].replace_all_uses_with(sig.outputs[0], except_nodes=(sig,))
    assert sig.inputs == (relu.outputs[0],)
    assert neg.inputs == (sig.outputs[0],)
    g.sort()
    verify(g)


def test_consumers_and_has_other_uses():
    g, x, relu, neg = chain()
    abs_ = g.make_node("Abs", [x])
    g.add_output(abs_.outputs[0])
    assert x.consumers() == [relu, abs_]
    assert x.has_other_uses(relu)
    assert not x.has_other_uses(relu, abs_)
    assert neg.outputs[0].has_other_uses()  # graph output
    assert not relu.outputs[0].has_other_uses(neg)


def test_value_properties():
    g = Graph()
    x = g.add_input(Value("x", F32))
    w = g.add_initializer("w", np.ones((2, 3), np.float64))
    assert w.type == TensorInfo(DType.DOUBLE, (2, 3)) and w.is_initializer
    assert not w.is_graph_input and x.is_graph_input and not x.is_initializer
    h = g.add_initializer("h", np.ones(2, np.float32), dtype=DType.FLOAT16)
    assert h.dtype is DType.FLOAT16
    s = Value("s", SequenceInfo(F32))
    assert s.dtype is None and s.shape is None
    assert Value("free").is_graph_input is False and Value("free").is_graph_output is False
    assert x.dtype is DType.FLOAT and x.shape == ("N", 4)
    assert repr(x) == "Value('x', tensor(float), shape=('N', 4))"


# -- nodes -----------------------------------------------------------------------------------
def test_node_describe_and_subgraphs():
    g = Graph()
    x = g.add_input(Value("x", TensorInfo(DType.FLOAT, (1, 3))))
    node = g.make_node("Clip", [x, None], name="clip", domain="com.example")
    assert node.qualified_op == "com.example::Clip"
    assert node.describe() == "com.example::Clip 'clip' (x[1,3], <none>) -> (clip_out)"
    assert repr(node) == f"Node({node.describe()})"
    anon = Node("Relu", [Value("u")], [Value("r"), None])
    assert anon.describe() == "Relu (u[?...]) -> (r, <none>)"
    body_a, body_b = Graph("a", parent=g), Graph("b", parent=g)
    looped = g.make_node("Fake", [], attrs={"branches": [body_a, 3, body_b], "g": body_a,
                                           "n": 1})
    assert list(looped.subgraphs()) == [body_a, body_b, body_a]  # attribute order


# -- graphs: naming and building ---------------------------------------------------------------
def test_unique_name_never_repeats_across_the_model():
    g = Graph()
    g.add_input(Value("x", F32))
    sub = Graph("sub", parent=g)
    assert g.unique_name("y") == "y"
    second = g.unique_name("y")
    third = sub.unique_name("y")  # subgraphs share the root's name table
    assert len({"y", second, third}) == 3 and second.startswith("y")
    assert g.unique_name("x") != "x"  # input names are taken
    assert g.unique_name("") == "v"


def test_make_node_names_and_insertion_points():
    g, x, relu, _neg = chain()
    first = g.make_node("Abs", [x], before=relu, name="abs")
    after = g.make_node("Exp", [x], after=relu, num_outputs=2)
    named = g.make_node("Sin", [x], output_names=["sin_y"])
    assert [n.op_type for n in g.nodes] == ["Abs", "Relu", "Exp", "Neg", "Sin"]
    assert first.name == "abs" and first.outputs[0].name == "abs_out"
    assert [v.name for v in after.outputs] == ["exp_out0", "exp_out1"]
    assert named.outputs[0].name == "sin_y" and named.outputs[0].graph is g
    again = g.make_node("Abs", [x])
    assert again.name != "abs" and again.outputs[0].name != "abs_out"
    assert len(g) == 6 and list(g) == list(g.nodes)
    appended = g.append_node(Node("Cos", [x], [Value("cos_y")], name="cos"))
    assert g.nodes[-1] is appended and appended.graph is g
    assert g.unique_name("cos") != "cos" and g.unique_name("cos_y") != "cos_y"
    verify(g)


def test_remove_node_safe_refuses_and_unsafe_removes():
    g, x, relu, neg = chain()
    with pytest.raises(InvalidGraphError, match=r"cannot remove Relu 'relu'.*used by Neg"):
        g.remove_node(relu)
    with pytest.raises(InvalidGraphError, match="a graph output"):
        g.remove_node(neg)
    assert relu in g.nodes and uses(x) == [("Relu", 0)]
    g.remove_node(relu, safe=False)
    assert relu not in g.nodes and relu.graph is None
    assert uses(x) == [] and relu.inputs == (None,)
    with pytest.raises(InvalidGraphError, match="not defined"):
        verify(g)  # Neg now reads a value nobody produces


def test_remove_input_and_initializer_refusals():
    g, x, relu, _neg = chain()
    w = g.add_initializer("w", np.zeros(4, np.float32))
    add = g.make_node("Add", [relu.outputs[0], w])
    with pytest.raises(InvalidGraphError, match="cannot remove graph input 'x'.*Relu"):
        g.remove_input(x)
    with pytest.raises(InvalidGraphError, match="cannot remove initializer 'w': still used"):
        g.remove_initializer(w)
    g.remove_node(add)
    g.remove_initializer(w)
    assert "w" not in g.initializers
    unused = g.add_input(Value("unused", F32))
    g.remove_input(unused)
    assert g.inputs == (x,)
    out_input = g.add_input(Value("passthrough", F32))
    g.add_output(out_input)
    with pytest.raises(InvalidGraphError):
        g.remove_input(out_input)


def test_overridable_initializer_and_duplicates():
    g = Graph()
    w = g.add_initializer("w", np.zeros(2, np.float32))
    g.add_input(w)  # an initializer listed as input: overridable (ONNX IR < 4)
    assert w.is_graph_input and w.is_initializer
    assert list(g.values()) == [w]  # listed once
    with pytest.raises(InvalidGraphError, match="duplicate initializer name 'w'"):
        g.add_initializer("w", np.ones(1))
    g.remove_initializer(w)
    assert g.inputs == () and g.initializers == {}


def test_scopes_lookup_and_all_nodes():
    g, x, _relu, neg = chain()
    sub = Graph("body", parent=g)
    inner = sub.make_node("Abs", [x])
    sub.add_output(inner.outputs[0])
    deeper = Graph("deeper", parent=sub)
    deeper.add_output(deeper.make_node("Exp", [inner.outputs[0]]).outputs[0])
    sub.make_node("If", [x], attrs={"then_branch": deeper, "else_branch": deeper})
    node = g.make_node("Loop", [], attrs={"body": sub})
    assert deeper.root is g and sub.root is g
    assert deeper.find_value("x") is x and deeper.find_value(inner.outputs[0].name) is \
        inner.outputs[0]
    assert g.find_value(inner.outputs[0].name) is None  # inner scopes are not visible outside
    # Depth first: each node, then its subgraphs' nodes (the If lists `deeper` twice).
    assert [n.op_type for n in g.all_nodes()] == ["Relu", "Neg", "Loop", "Abs", "If", "Exp",
                                                  "Exp"]
    assert uses(x)[-2:] == [("Abs", 0), ("If", 0)]  # outer-scope uses recorded on x
    assert outer_inputs(node) == [x, x]  # what the Loop reads through its body
    g.opset_imports["com.example"] = 3
    assert deeper.opset() == 17 and deeper.opset("ai.onnx") == 17
    assert deeper.opset("com.example") == 3 and sub.opset_imports == {}
    assert repr(g) == f"Graph('chain', inputs=['x'], outputs=['{neg.outputs[0].name}'], nodes=3)"


def test_model_metadata():
    g, *_ = chain()
    model = Model(g, producer_name="test", metadata_props={"k": "v"})
    assert model.opset_imports is g.opset_imports and model.opset_imports == {"": 17}
    assert model.ir_version == 10 and model.metadata_props == {"k": "v"}


# -- ordering ---------------------------------------------------------------------------------------
def test_topological_order_is_stable_for_valid_order():
    g = Graph()
    x = g.add_input(Value("x", F32))
    nodes = [g.make_node(op, [x]) for op in ("Abs", "Neg", "Relu", "Exp")]
    tail = g.make_node("Sum", [n.outputs[0] for n in nodes])
    assert topological_order(g) == [*nodes, tail]
    g.sort()
    assert list(g.nodes) == [*nodes, tail]


def test_sort_fixes_out_of_order_graph():
    g = Graph()
    x = g.add_input(Value("x", F32))
    a = g.make_node("Abs", [x])
    b = g.make_node("Neg", a.outputs)
    c = g.make_node("Relu", [x])
    d = g.make_node("Add", [b.outputs[0], c.outputs[0]])
    g.add_output(d.outputs[0])
    # Move the consumers first, the way a careless pass could.
    g._nodes = [d, b, c, a]
    with pytest.raises(InvalidGraphError, match="before it is produced.*graph.sort"):
        verify(g)
    g.sort()
    # Stable: among ready nodes the earlier listed goes first (c before a).
    assert list(g.nodes) == [c, a, b, d]
    verify(g)


def test_sort_orders_by_values_captured_in_subgraphs():
    g = Graph()
    x = g.add_input(Value("x", F32))
    producer = g.make_node("Relu", [x])
    branch = Graph("then", parent=g)
    branch.add_output(branch.make_node("Neg", producer.outputs).outputs[0])
    cond = g.add_input(Value("c", TensorInfo(DType.BOOL, ())))
    node = g.make_node("If", [cond], attrs={"then_branch": branch, "else_branch": branch})
    g._nodes = [node, producer]
    g.sort()
    assert list(g.nodes) == [producer, node]


def test_cycle_detection_names_the_nodes():
    g = Graph("loopy")
    x = g.add_input(Value("x", F32))
    a, b = Value("a"), Value("b")
    g.insert_node(Node("Add", [x, b], [a], name="n_add"))
    g.insert_node(Node("Relu", [a], [b], name="n_relu"))
    g.make_node("Abs", [x])
    with pytest.raises(InvalidGraphError, match=r"graph 'loopy' has a cycle.*'n_add'.*'n_relu'"):
        topological_order(g)
    with pytest.raises(InvalidGraphError, match="cycle"):
        g.sort()


def test_cycle_message_truncates_long_cycles():
    g = Graph("ring")
    values = [Value(f"v{i}") for i in range(7)]
    for i in range(7):
        g.insert_node(Node("Neg", [values[i - 1]], [values[i]], name=f"n{i}"))
    with pytest.raises(InvalidGraphError, match=r"n4'.*\.\.\.$"):
        g.sort()


def test_self_loop_is_reported():
    g = Graph()
    v = Value("v")
    g.insert_node(Node("Neg", [v], [v], name="selfie"))
    with pytest.raises(InvalidGraphError, match="reads its own output 'v'"):
        topological_order(g)


# -- cloning ------------------------------------------------------------------------------------------
def test_clone_graph_is_independent_and_equal():
    g, x, relu, neg = chain()
    w = g.add_initializer("w", np.arange(4, dtype=np.float32))
    g.add_input(w)
    body = Graph("then", parent=g)
    body.add_output(body.make_node("Abs", [x]).outputs[0])
    cond = g.add_input(Value("c", TensorInfo(DType.BOOL, ())))
    iff = g.make_node("If", [cond], attrs={"then_branch": body, "else_branch": body,
                                          "tag": [1, 2]})
    add = g.make_node("Add", [neg.outputs[0], w])
    g.add_output(add.outputs[0])
    g.add_output(iff.outputs[0])
    relu.attr_types["x"] = 7
    g.value_info["relu_out"] = F32

    new = clone_graph(g)
    verify(new)
    assert str(new) == str(g)
    assert [n.op_type for n in new.all_nodes()] == [n.op_type for n in g.all_nodes()]
    # No object is shared except the constant arrays.
    old_ids = {id(v) for v in g.values()} | {id(n) for n in g.all_nodes()}
    assert not old_ids & ({id(v) for v in new.values()} | {id(n) for n in new.all_nodes()})
    assert new.initializers["w"].const_value is w.const_value
    assert new.initializers["w"] in new.inputs  # still overridable
    new_body = new.nodes[2].attrs["then_branch"]
    assert new_body.parent is new and new_body is not body
    assert new_body.nodes[0].inputs[0] is new.inputs[0]  # outer-scope use remapped
    assert new.nodes[0].attr_types == {"x": 7} and new.value_info == g.value_info
    # Editing the clone leaves the original alone.
    new.nodes[0].outputs[0].replace_all_uses_with(new.inputs[0])
    assert uses(relu.outputs[0]) == [("Neg", 0)]


def test_clone_model_keeps_metadata():
    g, *_ = chain()
    model = Model(g, producer_name="p", producer_version="1", domain="d", model_version=3,
                  doc_string="doc", metadata_props={"a": "b"})
    copy = clone_model(model)
    assert copy.graph is not g and str(copy.graph) == str(g)
    assert (copy.producer_name, copy.producer_version, copy.domain, copy.model_version,
            copy.doc_string, copy.metadata_props) == ("p", "1", "d", 3, "doc", {"a": "b"})
    copy.metadata_props["x"] = "y"
    assert model.metadata_props == {"a": "b"}
