"""The text form of a graph: one line per node, attributes, nested subgraphs."""

from __future__ import annotations

import numpy as np

from pyflame_rt.ir import Graph, Value, format_graph
from pyflame_rt.types import DType, SequenceInfo, TensorInfo


def sample() -> tuple[Graph, Graph]:
    g = Graph("main")
    x = g.add_input(Value("x", TensorInfo(DType.FLOAT, ("N", 3))))
    cond = g.add_input(Value("cond", TensorInfo(DType.BOOL, ())))
    g.add_input(Value("seq", SequenceInfo(TensorInfo(DType.INT64, None))))
    g.add_input(Value("untyped"))
    w = g.add_initializer("w", np.ones(3, np.float32))
    clip = g.make_node("Clip", [x, None, w], name="clip",
                       attrs={"alpha": 0.5, "mode": "edge", "small": np.arange(3),
                              "big": np.zeros((4, 4))})
    branch = Graph("then_body", parent=g)
    neg = branch.make_node("Neg", clip.outputs, name="inner_neg")
    branch.add_output(neg.outputs[0])
    iff = g.make_node("If", [cond], name="branchy",
                      attrs={"then_branch": branch, "else_branch": branch})
    g.add_output(iff.outputs[0])
    return g, branch


def test_header_inputs_and_initializers():
    g, _ = sample()
    lines = format_graph(g).splitlines()
    assert lines[0] == "graph main("
    assert "    %x: tensor(float)[N,3]," in lines
    assert "    %cond: tensor(bool)[]," in lines
    assert "    %seq: seq(tensor(int64))," in lines
    assert "    %untyped: unknown," in lines
    assert "    %w: tensor(float)[3] = initializer" in lines
    assert lines[-2] == "    return %branchy_out"
    assert lines[-1] == "}"


def test_node_lines_with_attributes_and_omitted_inputs():
    g, _ = sample()
    text = format_graph(g)
    clip_line = next(line for line in text.splitlines() if "= Clip" in line)
    assert clip_line.startswith("    %clip_out = Clip <")
    assert clip_line.endswith("(%x, _, %w)  # clip")
    assert "alpha=0.5" in clip_line and "mode='edge'" in clip_line
    assert "small=tensor<int64[3]>[0, 1, 2]" in clip_line  # small arrays show their values
    assert "big=tensor<float64[4, 4]>>" in clip_line  # large ones only dtype and shape


def test_nested_subgraphs_are_indented():
    g, _branch = sample()
    lines = format_graph(g).splitlines()
    inner = [i for i, line in enumerate(lines) if "= Neg(%clip_out)" in line]
    assert len(inner) == 2  # printed once per branch attribute
    for i in inner:
        assert lines[i] == "        %inner_neg_out = Neg(%clip_out)  # inner_neg"
    assert lines.count("    graph then_body(") == 2
    if_line = next(line for line in lines if "= If <then_branch=" in line)
    assert if_line == "    %branchy_out = If <then_branch="
    assert "    }>(%cond)  # branchy" in lines


def test_unnamed_node_and_str_of_graph():
    g = Graph("tiny")
    a = g.add_input(Value("a", TensorInfo(DType.INT8, (2,))))
    node = g.make_node("Abs", [a])
    node.name = ""
    g.add_output(node.outputs[0])
    assert str(g) == format_graph(g)
    assert format_graph(g).splitlines()[3] == "    %abs_out = Abs(%a)"
    assert format_graph(g, indent="  ").splitlines()[0] == "  graph tiny("


def test_overridable_initializer_is_printed_as_input_only():
    g = Graph("ov")
    w = g.add_initializer("w", np.zeros(2, np.float32))
    g.add_input(w)
    text = format_graph(g)
    assert "%w: tensor(float)[2]," in text
    assert "= initializer" not in text
