"""Shape inference: IR graphs inferred by ``infer_shapes`` against ONNX's whole-model inference.

Most tests build a graph with the IR API, build the same model with ``onnx.helper`` and check
that every node output gets the type ``onnx.shape_inference.infer_shapes`` gives it (ONNX is
the oracle); where ONNX's whole-model inference knows less (symbolic shape data, control
flow), the expected shapes are worked out by hand from the op's definition.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import pyflame_rt.ir.shape_inference as si
from pyflame_rt.errors import InvalidArgumentError, InvalidGraphError
from pyflame_rt.ir import Graph, Node, Value
from pyflame_rt.ir.shape_inference import (
    ShapeContext,
    from_type_proto,
    infer_shapes,
    join_types,
    merge_types,
    register_shape_function,
    to_type_proto,
)
from pyflame_rt.types import DType, MapInfo, OptionalInfo, SequenceInfo, TensorInfo

F32 = DType.FLOAT
I64 = DType.INT64


def t(*shape, dtype: DType = F32) -> TensorInfo:
    return TensorInfo(dtype, tuple(shape))


# -- an ONNX oracle for graphs without subgraphs --------------------------------------------------
def _onnx_attr(key, value):
    if isinstance(value, np.ndarray):
        # Only Constant/ConstantOfShape "value" is a tensor; other arrays stand for int lists.
        return numpy_helper.from_array(value) if key == "value" else value.tolist()
    return value


def to_model(graph: Graph, *, all_outputs: bool = False) -> onnx.ModelProto:
    """The same graph written with onnx.helper (no subgraphs), every output left untyped.

    ``all_outputs`` makes every node output a graph output (to run it and look at each).
    """
    nodes = [helper.make_node(n.op_type, [v.name if v is not None else "" for v in n.inputs],
                              [v.name if v is not None else "" for v in n.outputs],
                              domain=n.domain,
                              **{k: _onnx_attr(k, a) for k, a in n.attrs.items()})
             for n in graph.nodes]
    inputs = [helper.make_tensor_value_info(v.name, v.type.dtype.value, list(v.type.shape))
              for v in graph.inputs]
    inits = [numpy_helper.from_array(v.const_value, v.name) for v in graph.initializers.values()]
    out_values = ([v for n in graph.nodes for v in n.outputs if v is not None] if all_outputs
                  else graph.outputs)
    outputs = [helper.make_value_info(v.name, onnx.TypeProto()) for v in out_values]
    g = helper.make_graph(nodes, graph.name, inputs, outputs, initializer=inits)
    opsets = [helper.make_opsetid(d, v) for d, v in graph.opset_imports.items()]
    return helper.make_model(g, opset_imports=opsets, ir_version=10)


def _dims(proto: onnx.TypeProto) -> tuple:
    tensor = proto.tensor_type
    if not tensor.HasField("shape"):
        return (tensor.elem_type, None)
    # ONNX's whole-model inference names unknown dims "unk__<n>"; we leave them None.
    dims = tuple(d.dim_value if d.HasField("dim_value")
                 else None if d.dim_param.startswith("unk__") else d.dim_param or None
                 for d in tensor.shape.dim)
    return (tensor.elem_type, dims)


def onnx_types(graph: Graph) -> dict[str, tuple]:
    """name -> (elem_type, dims) for every value ONNX's whole-model inference typed."""
    inferred = onnx.shape_inference.infer_shapes(to_model(graph), strict_mode=True,
                                                 data_prop=True)
    return {vi.name: _dims(vi.type) for vi in
            list(inferred.graph.value_info) + list(inferred.graph.output)
            if vi.type.tensor_type.elem_type}


def ours(v: Value) -> tuple:
    return (v.type.dtype.value, v.type.shape)


def assert_matches_onnx(graph: Graph) -> None:
    expected = onnx_types(graph)
    for node in graph.nodes:
        for v in node.outputs:
            if v is not None:
                assert v.name in expected, f"ONNX typed nothing for {v.name}"
                assert ours(v) == expected[v.name], v.name


def assert_matches_run(graph: Graph) -> None:
    """Every node output's inferred static type equals what running the graph produces
    (``onnx.reference`` on random inputs of the declared, all-int input shapes)."""
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(0)
    feeds = {v.name: rng.standard_normal(v.type.shape).astype(v.type.dtype.numpy)
             for v in graph.inputs}
    model = to_model(graph, all_outputs=True)
    results = ReferenceEvaluator(model).run(None, feeds)
    for vi, arr in zip(model.graph.output, results):
        value = graph.find_value(vi.name)
        arr = np.asarray(arr)
        assert value.type == TensorInfo(DType.from_numpy(arr.dtype), arr.shape), vi.name


# -- straight-line graphs -------------------------------------------------------------------------
def cnn_graph(batch="N") -> Graph:
    g = Graph("cnn")
    x = g.add_input(Value("x", t(batch, 3, 16, 16)))
    w = g.add_initializer("w", np.zeros((8, 3, 3, 3), np.float32))
    b = g.add_initializer("b", np.zeros(8, np.float32))
    conv = g.make_node("Conv", [x, w, b], attrs={"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]})
    relu = g.make_node("Relu", conv.outputs)
    pool = g.make_node("MaxPool", relu.outputs, attrs={"kernel_shape": [2, 2], "strides": [2, 2]})
    flat = g.make_node("Flatten", pool.outputs)
    fc_w = g.add_initializer("fc_w", np.zeros((10, 8 * 8 * 8), np.float32))
    fc_b = g.add_initializer("fc_b", np.zeros(10, np.float32))
    gemm = g.make_node("Gemm", [flat.outputs[0], fc_w, fc_b], attrs={"transB": 1})
    g.add_output(gemm.outputs[0])
    return g


def test_cnn_chain_symbolic_batch():
    g = cnn_graph()
    assert infer_shapes(g) == 5
    out = g.outputs[0]
    assert out.type == t("N", 10)
    assert g.nodes[0].outputs[0].type == t("N", 8, 16, 16)
    assert g.nodes[2].outputs[0].type == t("N", 8, 8, 8)
    assert g.nodes[3].outputs[0].type == t("N", 512)
    assert_matches_onnx(g)


def test_second_run_changes_nothing():
    g = cnn_graph()
    infer_shapes(g)
    before = [v.type for v in g.values()]
    assert infer_shapes(g) == 0
    assert [v.type for v in g.values()] == before


def test_input_shapes_override_gives_concrete_shapes():
    g = cnn_graph()
    changed = infer_shapes(g, input_shapes={"x": (4, 3, 16, 16)})
    assert changed == 6  # the input and five node outputs
    assert g.inputs[0].type == t(4, 3, 16, 16)
    assert g.outputs[0].type == t(4, 10)
    assert_matches_onnx(g)


def test_input_shapes_refines_an_inferred_graph():
    g = cnn_graph()
    infer_shapes(g)
    assert infer_shapes(g, input_shapes={"x": (2, 3, 16, 16)}) == 6
    assert g.outputs[0].type == t(2, 10)


@pytest.mark.parametrize("shapes, match", [
    ({"y": (1, 3, 16, 16)}, "not an input"),
    ({"x": (1, 3, 16)}, "does not fit the declared shape"),
    ({"x": (1, 4, 16, 16)}, "does not fit the declared shape"),
    ({"x": (-1, 3, 16, 16)}, "each dim must be"),
])
def test_input_shapes_errors(shapes, match):
    g = cnn_graph()
    with pytest.raises(InvalidArgumentError, match=match):
        infer_shapes(g, input_shapes=shapes)
    assert g.inputs[0].type == t("N", 3, 16, 16)  # nothing written on failure


def test_input_shapes_needs_a_tensor_type():
    g = Graph()
    g.add_input(Value("x"))
    with pytest.raises(InvalidArgumentError, match="known element type"):
        infer_shapes(g, input_shapes={"x": (1,)})


def test_reshape_with_constant_shape():
    g = Graph()
    x = g.add_input(Value("x", t("N", 3, 4)))
    shape = g.add_initializer("shape", np.array([0, -1], np.int64))
    r1 = g.make_node("Reshape", [x, shape])
    k = g.make_node("Constant", [], attrs={"value": np.array([-1, 2, 2], np.int64)})
    r2 = g.make_node("Reshape", [r1.outputs[0], k.outputs[0]])
    g.add_output(r2.outputs[0])
    infer_shapes(g)
    assert r1.outputs[0].type == t("N", 12)
    assert r2.outputs[0].type.shape == (None, 2, 2)  # -1 absorbs N*3: not a single symbol
    assert_matches_onnx(g)


def exporter_reshape_graph(x_type: TensorInfo) -> Graph:
    """x.reshape(x.shape[0], -1) as torch.onnx exports it."""
    g = Graph("flatten_dynamic")
    x = g.add_input(Value("x", x_type))
    shape = g.make_node("Shape", [x])
    zero = g.add_initializer("zero", np.array(0, np.int64))
    batch = g.make_node("Gather", [shape.outputs[0], zero], attrs={"axis": 0})
    axes = g.add_initializer("axes", np.array([0], np.int64))
    batch1 = g.make_node("Unsqueeze", [batch.outputs[0], axes])
    minus1 = g.add_initializer("minus1", np.array([-1], np.int64))
    target = g.make_node("Concat", [batch1.outputs[0], minus1], attrs={"axis": 0})
    reshape = g.make_node("Reshape", [x, target.outputs[0]])
    g.add_output(reshape.outputs[0])
    return g


def test_exporter_reshape_pattern_concrete():
    g = exporter_reshape_graph(t(2, 3, 4))
    infer_shapes(g)
    assert g.outputs[0].type == t(2, 12)
    assert_matches_onnx(g)


def test_exporter_reshape_pattern_symbolic():
    g = exporter_reshape_graph(t("N", 3, 4))
    infer_shapes(g)
    # ONNX's own data propagation knows the same: compare where it types the output.
    expected = onnx_types(g)
    assert g.outputs[0].type == t("N", 12)
    assert expected[g.outputs[0].name][1][0] == "N"
    # And with a concrete plan shape the same graph gets concrete shapes.
    infer_shapes(g, input_shapes={"x": (5, 3, 4)})
    assert g.outputs[0].type == t(5, 12)


def test_shape_slice_cast_expand_constant_of_shape():
    g = Graph()
    x = g.add_input(Value("x", t("B", "S", 8)))
    y = g.add_input(Value("y", t(1, 1, 8)))
    shape = g.make_node("Shape", [x])
    starts = g.add_initializer("starts", np.array([0], np.int64))
    ends = g.add_initializer("ends", np.array([2], np.int64))
    first2 = g.make_node("Slice", [shape.outputs[0], starts, ends])
    cast = g.make_node("Cast", first2.outputs, attrs={"to": DType.INT32.value})
    back = g.make_node("Cast", cast.outputs, attrs={"to": I64.value})
    zeros = g.make_node("ConstantOfShape", back.outputs,
                        attrs={"value": np.array([0], np.int64)})
    expand = g.make_node("Expand", [y, shape.outputs[0]])
    shape_start = g.make_node("Shape", [x], attrs={"start": -1})
    g.add_output(zeros.outputs[0])
    g.add_output(expand.outputs[0])
    g.add_output(shape_start.outputs[0])
    infer_shapes(g)
    assert first2.outputs[0].type == t(2, dtype=I64)
    assert cast.outputs[0].type == t(2, dtype=DType.INT32)
    assert zeros.outputs[0].type == t("B", "S", dtype=I64)
    assert expand.outputs[0].type == t("B", "S", 8)
    assert shape_start.outputs[0].type == t(1, dtype=I64)


def test_expand_symbolic_against_broadcasting():
    g = Graph()
    x = g.add_input(Value("x", t("N", 1, 4)))
    like = g.add_input(Value("like", t(3, 1)))
    shape = g.make_node("Shape", [like])
    expand = g.make_node("Expand", [x, shape.outputs[0]])
    g.add_output(expand.outputs[0])
    infer_shapes(g)
    assert expand.outputs[0].type == t("N", 3, 4)
    assert_matches_onnx(g)


def test_shape_arithmetic_on_constants():
    g = Graph()
    x = g.add_input(Value("x", t(6, 4)))
    shape = g.make_node("Shape", [x])
    two = g.add_initializer("two", np.array([2, 1], np.int64))
    half = g.make_node("Div", [shape.outputs[0], two])  # [3, 4]
    doubled = g.make_node("Mul", [half.outputs[0], two])  # [6, 4]
    plus = g.make_node("Add", [doubled.outputs[0], two])  # [8, 5]
    minus = g.make_node("Sub", [plus.outputs[0], two])  # [6, 4]
    swapped = g.make_node("Gather", [minus.outputs[0],
                                     g.add_initializer("rev", np.array([1, 0], np.int64))])
    size = g.make_node("Size", [x])
    size1 = g.make_node("Unsqueeze", [size.outputs[0],
                                      g.add_initializer("ax0", np.array([0], np.int64))])
    r2 = g.make_node("Reshape", [x, doubled.outputs[0]])
    r3 = g.make_node("Reshape", [x, size1.outputs[0]])
    r4 = g.make_node("Reshape", [x, swapped.outputs[0]])
    for n in (r2, r3, r4):
        g.add_output(n.outputs[0])
    infer_shapes(g)
    assert r2.outputs[0].type == t(6, 4)
    assert r3.outputs[0].type == t(24)
    assert r4.outputs[0].type == t(4, 6)
    assert_matches_run(g)


def test_integer_div_truncates_toward_zero():
    g = Graph()
    a = g.add_initializer("a", np.array([-7, 7], np.int64))
    b = g.add_initializer("b", np.array([2, -2], np.int64))
    div = g.make_node("Div", [a, b])
    shape_of = g.make_node("ConstantOfShape", [g.make_node("Abs", div.outputs).outputs[0]])
    g.add_output(shape_of.outputs[0])
    st = si._State(None, dict(g.opset_imports), False)
    si._infer_graph(g, st)
    np.testing.assert_array_equal(st.consts[id(div.outputs[0])], [-3, -3])  # ONNX: trunc


def test_broadcasting_add_with_symbolic_dims():
    g = Graph()
    a = g.add_input(Value("a", t("N", 1, 4)))
    b = g.add_input(Value("b", t("M", 1)))
    c = g.add_input(Value("c", t(4)))
    add = g.make_node("Add", [a, b])
    add2 = g.make_node("Add", [add.outputs[0], c])
    g.add_output(add2.outputs[0])
    infer_shapes(g)
    assert add.outputs[0].type == t("N", "M", 4)
    assert add2.outputs[0].type == t("N", "M", 4)
    assert_matches_onnx(g)


def test_incompatible_shapes_raise_with_node_and_shapes():
    g = Graph()
    a = g.add_input(Value("a", t(3, 4)))
    b = g.add_input(Value("b", t(5, 4)))
    g.make_node("Add", [a, b], name="bad_add")
    with pytest.raises(InvalidGraphError) as info:
        infer_shapes(g)
    message = str(info.value)
    assert "'bad_add'" in message and "Add" in message
    assert "[3,4]" in message and "[5,4]" in message
    assert "Incompatible dimensions" in message  # ONNX's own reason


def test_matmul_transpose_concat_split():
    g = Graph()
    x = g.add_input(Value("x", t("N", "S", 8)))
    w = g.add_initializer("w", np.zeros((8, 6), np.float32))
    mm = g.make_node("MatMul", [x, w])
    tr = g.make_node("Transpose", mm.outputs, attrs={"perm": np.array([0, 2, 1])})
    cat = g.make_node("Concat", [tr.outputs[0], tr.outputs[0]], attrs={"axis": 1})
    split = g.add_initializer("split", np.array([4, 8], np.int64))
    sp = g.make_node("Split", [cat.outputs[0], split], num_outputs=2, attrs={"axis": 1})
    even = g.make_node("Split", [cat.outputs[0]], num_outputs=3, attrs={"axis": 1,
                                                                          "num_outputs": 3})
    for v in (*sp.outputs, *even.outputs):
        g.add_output(v)
    g.opset_imports[""] = 18
    infer_shapes(g)
    assert mm.outputs[0].type == t("N", "S", 6)
    assert tr.outputs[0].type == t("N", 6, "S")
    assert cat.outputs[0].type == t("N", 12, "S")
    assert [v.type for v in sp.outputs] == [t("N", 4, "S"), t("N", 8, "S")]
    assert [v.type for v in even.outputs] == [t("N", 4, "S")] * 3
    assert_matches_onnx(g)


def test_opset9_attribute_forms_fold_constants():
    g = Graph()
    g.opset_imports[""] = 9
    x = g.add_input(Value("x", t(2, 10)))
    sl = g.make_node("Slice", [x], attrs={"starts": [1], "ends": [6], "axes": [1]})
    shape = g.make_node("Shape", [x])
    first = g.make_node("Slice", shape.outputs, attrs={"starts": [0], "ends": [1]})
    second = g.make_node("Slice", shape.outputs, attrs={"starts": [1], "ends": [2]})
    sq0 = g.make_node("Squeeze", second.outputs, attrs={"axes": [0]})
    un = g.make_node("Unsqueeze", sq0.outputs, attrs={"axes": [0]})
    target = g.make_node("Concat", [un.outputs[0], first.outputs[0]], attrs={"axis": 0})
    r = g.make_node("Reshape", [x, target.outputs[0]])
    g.add_output(sl.outputs[0])
    g.add_output(r.outputs[0])
    infer_shapes(g)
    assert sl.outputs[0].type == t(2, 5)
    assert r.outputs[0].type == t(10, 2)  # [10, 2] was folded from the attribute forms
    assert_matches_run(g)


def test_old_opset_attribute_forms_fold_constants():
    g = Graph()
    g.opset_imports[""] = 11
    x = g.add_input(Value("x", t(2, 10)))
    shape = g.make_node("Shape", [x])
    last = g.make_node("Slice", [shape.outputs[0],
                                 g.add_initializer("s", np.array([-1], np.int64)),
                                 g.add_initializer("e", np.array([2**62], np.int64))])
    sq0 = g.make_node("Squeeze", last.outputs, attrs={"axes": [0]})
    un = g.make_node("Unsqueeze", sq0.outputs, attrs={"axes": [0]})
    two = g.add_initializer("two", np.array([2], np.int64))
    target = g.make_node("Concat", [two, un.outputs[0]], attrs={"axis": 0})
    r = g.make_node("Reshape", [x, target.outputs[0]])
    sl = g.make_node("Slice", [x, g.add_initializer("s1", np.array([1], np.int64)),
                               g.add_initializer("e1", np.array([6], np.int64)),
                               g.add_initializer("a1", np.array([1], np.int64))])
    g.add_output(r.outputs[0])
    g.add_output(sl.outputs[0])
    infer_shapes(g)
    assert target.outputs[0].type == t(2, dtype=I64)
    assert r.outputs[0].type == t(2, 10)
    assert sl.outputs[0].type == t(2, 5)
    assert_matches_run(g)


def test_sequence_and_optional_types():
    g = Graph()
    g.opset_imports[""] = 18
    a = g.add_input(Value("a", t("N", 3)))
    seq = g.make_node("SequenceConstruct", [a, a])
    at = g.make_node("SequenceAt", [seq.outputs[0], g.add_initializer("i", np.array(0))])
    opt = g.make_node("Optional", [a])
    g.add_output(at.outputs[0])
    g.add_output(opt.outputs[0])
    infer_shapes(g)
    assert seq.outputs[0].type == SequenceInfo(t("N", 3))
    assert at.outputs[0].type == t("N", 3)
    assert opt.outputs[0].type == OptionalInfo(t("N", 3))


def test_cycle_is_reported():
    g = Graph()
    x = g.add_input(Value("x", t(2)))
    a = Value("a")
    b = Value("b")
    g.insert_node(Node("Add", [x, b], [a], name="n1"))
    g.insert_node(Node("Relu", [a], [b], name="n2"))
    with pytest.raises(InvalidGraphError, match="cycle"):
        infer_shapes(g)


def test_omitted_optional_input_and_output():
    g = Graph()
    x = g.add_input(Value("x", t("N", 4)))
    clip = g.make_node("Clip", [x, None, g.add_initializer("hi", np.array(1.0, np.float32))])
    drop_y = Value("drop_y")
    g.insert_node(Node("Dropout", [clip.outputs[0]], [drop_y, None], name="drop"))
    g.add_output(drop_y)
    infer_shapes(g)
    assert clip.outputs[0].type == t("N", 4)
    assert drop_y.type == t("N", 4)


def test_numpy_valued_and_typed_attributes():
    g = Graph()
    x = g.add_input(Value("x", t(2, 3, 4)))
    tr = g.make_node("Transpose", [x], attrs={"perm": np.array([2, 0, 1], np.int64)})
    lrelu = g.make_node("LeakyRelu", tr.outputs, attrs={"alpha": 1})  # int for a FLOAT attr
    red = g.make_node("ReduceSum", lrelu.outputs, attrs={"keepdims": np.int64(0)})
    empty = g.make_node("Transpose", [x], attrs={"perm": []})
    empty.attr_types["perm"] = onnx.AttributeProto.INTS
    g.add_output(red.outputs[0])
    g.add_output(empty.outputs[0])
    infer_shapes(g)
    assert tr.outputs[0].type == t(4, 2, 3)
    assert lrelu.outputs[0].type == t(4, 2, 3)
    assert red.outputs[0].type == t()
    assert empty.outputs[0].type.dtype is F32


def test_function_ops_without_onnx_inference_keep_input_shape():
    g = Graph()
    g.opset_imports[""] = 21
    x = g.add_input(Value("x", t("N", 4, 5)))
    scale = g.add_initializer("scale", np.ones(4, np.float32))
    gn = g.make_node("GroupNormalization", [x, scale, scale], attrs={"num_groups": 2})
    mvn = g.make_node("MeanVarianceNormalization", gn.outputs)
    g.add_output(mvn.outputs[0])
    infer_shapes(g)
    assert gn.outputs[0].type == t("N", 4, 5)
    assert mvn.outputs[0].type == t("N", 4, 5)


# -- keeping precise types --------------------------------------------------------------------
def test_never_loses_precision_and_keeps_declared_names():
    g = cnn_graph()
    out = g.outputs[0]
    out.type = t(4, 10)  # more precise than the inferred ('N', 10)
    relu_out = g.nodes[1].outputs[0]
    relu_out.type = t("batch", 8, None, 16)  # declared symbol, unknown dim
    infer_shapes(g)
    assert out.type == t(4, 10)
    assert relu_out.type == t("batch", 8, 16, 16)


def test_conflicting_declared_type_is_replaced_without_crashing():
    g = cnn_graph()
    g.outputs[0].type = t("N", 7)
    g.nodes[3].outputs[0].type = TensorInfo(DType.DOUBLE, ("N", 512))
    infer_shapes(g)
    assert g.outputs[0].type == t("N", 10)
    assert g.nodes[3].outputs[0].type == t("N", 512)


def test_value_info_is_used_as_declared_type():
    g = Graph()
    x = g.add_input(Value("x", t("N", 4)))
    custom = g.make_node("Mystery", [x], domain="test.nowhere")
    g.value_info[custom.outputs[0].name] = t("N", 2)
    relu = g.make_node("Relu", custom.outputs)
    g.add_output(relu.outputs[0])
    infer_shapes(g)
    assert relu.outputs[0].type == t("N", 2)


def test_merge_and_join_rules():
    assert merge_types(None, t(1)) == t(1)
    assert merge_types(t(1), None) == t(1)
    assert merge_types(t("N", None, 3), t(2, "M", None)) == t(2, "M", 3)
    assert merge_types(t("N"), t("M")) == t("N")
    assert merge_types(t(3), t(4)) == t(4)
    assert merge_types(t(3), TensorInfo(F32, None)) == t(3)
    assert merge_types(TensorInfo(F32, None), t(3)) == t(3)
    assert merge_types(t(3), t(3, 3)) == t(3, 3)
    assert merge_types(t(3), t(3, dtype=I64)) == t(3, dtype=I64)
    assert merge_types(SequenceInfo(None), SequenceInfo(t(1))) == SequenceInfo(t(1))
    assert merge_types(OptionalInfo(t(None)), OptionalInfo(t(2))) == OptionalInfo(t(2))
    assert merge_types(MapInfo(I64, None), MapInfo(I64, t(1))) == MapInfo(I64, t(1))
    assert merge_types(MapInfo(I64, t(1)), MapInfo(DType.STRING, t(1))) == \
        MapInfo(DType.STRING, t(1))
    assert merge_types(t(1), SequenceInfo(t(1))) == SequenceInfo(t(1))
    assert join_types(t("N", 3), t("N", 4)) == t("N", None)
    assert join_types(t(3), t(3, 3)) == TensorInfo(F32, None)
    assert join_types(t(3), t(3, dtype=I64)) is None
    assert join_types(t(3), None) is None
    assert join_types(SequenceInfo(t(1)), SequenceInfo(t(2))) == SequenceInfo(t(None))
    assert join_types(OptionalInfo(t(1)), OptionalInfo(t(1))) == OptionalInfo(t(1))
    assert join_types(MapInfo(I64, t(1)), MapInfo(I64, t(2))) == MapInfo(I64, t(None))
    assert join_types(MapInfo(I64, t(1)), MapInfo(DType.STRING, t(1))) is None


@pytest.mark.parametrize("vtype", [
    t("N", None, 3),
    t(),
    TensorInfo(DType.BFLOAT16, None),
    SequenceInfo(t(2, dtype=I64)),
    SequenceInfo(None),
    OptionalInfo(SequenceInfo(t("B"))),
    OptionalInfo(None),
    MapInfo(DType.STRING, t(dtype=DType.FLOAT16)),
    MapInfo(I64, None),
])
def test_type_proto_round_trip(vtype):
    proto = to_type_proto(vtype)
    assert from_type_proto(proto) == vtype
    assert from_type_proto(onnx.TypeProto.FromString(proto.SerializeToString())) == vtype


def test_type_proto_matches_onnx_helper_spelling():
    expected = helper.make_tensor_type_proto(onnx.TensorProto.FLOAT, ["N", None, 3])
    assert to_type_proto(t("N", None, 3)) == expected
    assert from_type_proto(helper.make_sequence_type_proto(expected)) == SequenceInfo(
        t("N", None, 3))
    assert to_type_proto(None) == onnx.TypeProto()
    assert from_type_proto(onnx.TypeProto()) is None
    sparse = onnx.TypeProto()
    sparse.sparse_tensor_type.elem_type = 1
    assert from_type_proto(sparse) is None
    bad = onnx.TypeProto()
    bad.tensor_type.elem_type = 999
    assert from_type_proto(bad) is None
    with pytest.raises(TypeError):
        to_type_proto("tensor(float)")


# -- custom ops ---------------------------------------------------------------------------------
@pytest.fixture
def clean_registry(monkeypatch):
    """Shape functions registered by a test are dropped afterwards."""
    monkeypatch.setattr(si, "_SHAPE_FUNCTIONS", dict(si._SHAPE_FUNCTIONS))


def test_unknown_custom_op_left_untyped_or_strict_error(clean_registry):
    g = Graph()
    g.opset_imports["test.custom"] = 1
    x = g.add_input(Value("x", t("N", 4)))
    custom = g.make_node("Frobnicate", [x], domain="test.custom", name="frob")
    relu = g.make_node("Relu", custom.outputs)
    g.add_output(relu.outputs[0])
    assert infer_shapes(g) == 0
    assert custom.outputs[0].type is None and relu.outputs[0].type is None
    with pytest.raises(InvalidGraphError, match=r"test\.custom::Frobnicate 'frob'.*"
                                                r"register_shape_function"):
        infer_shapes(g, strict=True)


def test_registered_shape_function_for_custom_op(clean_registry):
    seen = {}

    @register_shape_function("test.custom", "DoubleWidth")
    def double_width(ctx: ShapeContext):
        seen["opset"] = ctx.opset
        seen["const"] = ctx.constant(1)
        x = ctx.input_types[0]
        return [TensorInfo(x.dtype, (*x.shape[:-1], x.shape[-1] * 2)), t(dtype=I64)]

    g = Graph()
    g.opset_imports["test.custom"] = 3
    x = g.add_input(Value("x", t("N", 4)))
    k = g.add_initializer("k", np.array([7], np.int64))
    custom = g.make_node("DoubleWidth", [x, k], num_outputs=2, domain="test.custom")
    relu = g.make_node("Relu", [custom.outputs[0]])
    g.add_output(relu.outputs[0])
    infer_shapes(g, strict=True)
    assert custom.outputs[0].type == t("N", 8)
    assert custom.outputs[1].type == t(dtype=I64)
    assert relu.outputs[0].type == t("N", 8)
    assert seen["opset"] == 3
    np.testing.assert_array_equal(seen["const"], [7])


def test_fused_op_reuses_onnx_inference(clean_registry):
    @register_shape_function("pyflame", "TestFusedConvRelu")
    def fused_conv_relu(ctx: ShapeContext):
        conv_attrs = {k: v for k, v in ctx.node.attrs.items() if k != "activation"}
        return ctx.infer_onnx("Conv", attrs=conv_attrs)

    g = Graph()
    x = g.add_input(Value("x", t("N", 3, 16, 16)))
    w = g.add_initializer("w", np.zeros((8, 3, 3, 3), np.float32))
    fused = g.make_node("TestFusedConvRelu", [x, w], domain="pyflame",
                        attrs={"kernel_shape": [3, 3], "strides": [2, 2], "activation": "Relu"})
    g.add_output(fused.outputs[0])
    infer_shapes(g)
    # Oracle: the plain Conv through ONNX's whole-model inference.
    plain = Graph()
    px = plain.add_input(Value("x", t("N", 3, 16, 16)))
    pw = plain.add_initializer("w", np.zeros((8, 3, 3, 3), np.float32))
    conv = plain.make_node("Conv", [px, pw], attrs={"kernel_shape": [3, 3], "strides": [2, 2]})
    plain.add_output(conv.outputs[0])
    assert ours(fused.outputs[0]) == onnx_types(plain)[conv.outputs[0].name]


def test_shape_function_errors_name_the_node(clean_registry):
    @register_shape_function("test.custom", "Broken")
    def broken(ctx):
        raise KeyError("oops")

    @register_shape_function("test.custom", "BadConv")
    def bad_conv(ctx):
        return ctx.infer_onnx("MatMul", [t(2, 3), t(4, 5)])

    @register_shape_function("test.custom", "NotOnnx")
    def not_onnx(ctx):
        return ctx.infer_onnx("NoSuchOp")

    for op, match in (("Broken", "shape function for test.custom::Broken failed.*oops"),
                      ("BadConv", "shape inference failed for test.custom::BadConv"),
                      ("NotOnnx", "no schema for 'NoSuchOp'")):
        g = Graph()
        x = g.add_input(Value("x", t(1)))
        g.make_node(op, [x], domain="test.custom")
        with pytest.raises(InvalidGraphError, match=match):
            infer_shapes(g)


def test_default_domain_op_missing_at_opset_is_unknown():
    g = Graph()
    g.opset_imports[""] = 11
    x = g.add_input(Value("x", t(3)))
    gelu = g.make_node("Gelu", [x])  # Gelu-20
    assert infer_shapes(g) == 0 and gelu.outputs[0].type is None
    with pytest.raises(InvalidGraphError, match="no ONNX schema"):
        infer_shapes(g, strict=True)


def test_onnx_ml_domain_uses_onnx_schema():
    g = Graph()
    g.opset_imports["ai.onnx.ml"] = 3
    x = g.add_input(Value("x", t("N", 3)))
    binz = g.make_node("Binarizer", [x], domain="ai.onnx.ml", attrs={"threshold": 0.5})
    g.add_output(binz.outputs[0])
    infer_shapes(g, strict=True)
    assert binz.outputs[0].type == t("N", 3)


# -- control flow ----------------------------------------------------------------------------------
def if_graph(cond_value: np.ndarray | None, else_width: int = 4) -> tuple[Graph, Node]:
    g = Graph("main")
    x = g.add_input(Value("x", t("N", 4)))
    if cond_value is None:
        cond = g.add_input(Value("cond", t(dtype=DType.BOOL)))
    else:
        cond = g.add_initializer("cond", cond_value)
    then_g = Graph("then", parent=g)
    relu = then_g.make_node("Relu", [x])  # reads x from the outer scope
    then_g.add_output(relu.outputs[0])
    else_g = Graph("else", parent=g)
    w = else_g.add_initializer("w_else", np.zeros((4, else_width), np.float32))
    mm = else_g.make_node("MatMul", [x, w])
    else_g.add_output(mm.outputs[0])
    node = g.make_node("If", [cond], attrs={"then_branch": then_g, "else_branch": else_g})
    g.add_output(node.outputs[0])
    return g, node


def test_if_branches_agree():
    g, node = if_graph(None)
    infer_shapes(g)
    assert node.outputs[0].type == t("N", 4)
    then_g = node.attrs["then_branch"]
    assert then_g.nodes[0].outputs[0].type == t("N", 4)  # subgraph values typed too


def test_if_branches_disagree_and_constant_condition():
    g, node = if_graph(None, else_width=6)
    infer_shapes(g)
    assert node.outputs[0].type == t("N", None)
    assert node.attrs["else_branch"].nodes[0].outputs[0].type == t("N", 6)
    g, node = if_graph(np.array(False), else_width=6)
    infer_shapes(g)
    assert node.outputs[0].type == t("N", 6)
    g, node = if_graph(np.array([True]), else_width=6)
    infer_shapes(g)
    assert node.outputs[0].type == t("N", 4)


def test_if_matches_onnx_whole_model_inference():
    g, node = if_graph(None)
    infer_shapes(g)
    then_b = helper.make_graph([helper.make_node("Relu", ["x"], ["t_out"])], "then", [],
                               [helper.make_value_info("t_out", onnx.TypeProto())])
    else_b = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w_else"], ["e_out"])], "else", [],
        [helper.make_value_info("e_out", onnx.TypeProto())],
        initializer=[numpy_helper.from_array(np.zeros((4, 4), np.float32), "w_else")])
    main = helper.make_graph(
        [helper.make_node("If", ["cond"], ["y"], then_branch=then_b, else_branch=else_b)],
        "main", [helper.make_tensor_value_info("x", 1, ["N", 4]),
                 helper.make_tensor_value_info("cond", onnx.TensorProto.BOOL, [])],
        [helper.make_value_info("y", onnx.TypeProto())])
    model = onnx.shape_inference.infer_shapes(helper.make_model(main), strict_mode=True)
    assert ours(node.outputs[0]) == _dims(model.graph.output[0].type)


def test_if_branch_count_mismatch():
    g, node = if_graph(None)
    node.attrs["else_branch"].outputs.clear()
    with pytest.raises(InvalidGraphError, match="both branches"):
        infer_shapes(g)


def loop_graph() -> tuple[Graph, Node, Graph]:
    """for i in range(M): acc = acc + x; grow = concat(grow, x); emits i*x each step."""
    g = Graph("main")
    x = g.add_input(Value("x", t("N", 4)))
    trip = g.add_initializer("M", np.array(3, np.int64))
    acc0 = g.add_input(Value("acc0", t("N", 4)))
    grow0 = g.add_input(Value("grow0", t(1, 4)))
    body = Graph("body", parent=g)
    i = body.add_input(Value("i"))
    cond_in = body.add_input(Value("cond_in"))
    acc = body.add_input(Value("acc"))
    grow = body.add_input(Value("grow"))
    add = body.make_node("Add", [acc, x])
    cat = body.make_node("Concat", [grow, x], attrs={"axis": 0})
    fi = body.make_node("Cast", [i], attrs={"to": F32.value})
    scaled = body.make_node("Mul", [x, fi.outputs[0]])
    ident = body.make_node("Identity", [cond_in])
    for v in (ident.outputs[0], add.outputs[0], cat.outputs[0], scaled.outputs[0]):
        body.add_output(v)
    node = g.make_node("Loop", [trip, None, acc0, grow0], num_outputs=3, attrs={"body": body})
    for v in node.outputs:
        g.add_output(v)
    return g, node, body


def test_loop_body_and_outputs():
    g, node, body = loop_graph()
    infer_shapes(g)
    acc_out, grow_out, scan_out = (v.type for v in node.outputs)
    assert acc_out == t("N", 4)  # the body keeps it unchanged
    assert grow_out == t(None, 4)  # grows every iteration: the first dim is unknown
    assert scan_out == t(None, "N", 4)  # one body value per iteration
    assert body.inputs[0].type == t(dtype=I64) and body.inputs[1].type == t(dtype=DType.BOOL)
    assert body.nodes[1].outputs[0].type == t(None, 4)  # inferred for any iteration
    assert body.nodes[0].outputs[0].type == t("N", 4)


def test_loop_with_changing_rank_falls_back_to_dtype():
    g = Graph("main")
    x0 = g.add_input(Value("x0", t(2)))
    body = Graph("body", parent=g)
    body.add_input(Value("i"))
    c = body.add_input(Value("c"))
    x = body.add_input(Value("x"))
    up = body.make_node("Unsqueeze", [x, body.add_initializer("ax", np.array([0]))])
    body.add_output(c)
    body.add_output(up.outputs[0])
    node = g.make_node("Loop", [None, g.add_initializer("go", np.array(True)), x0],
                       attrs={"body": body})
    g.add_output(node.outputs[0])
    infer_shapes(g)
    assert node.outputs[0].type == TensorInfo(F32, None)


def test_loop_body_signature_checked():
    g, _node, body = loop_graph()
    body._inputs.pop()  # simulate a malformed import
    with pytest.raises(InvalidGraphError, match="Loop body has 3 inputs"):
        infer_shapes(g)


def test_nested_if_inside_loop_body_sees_outer_scopes():
    g, node, body = loop_graph()
    then_g = Graph("then", parent=body)
    then_g.add_output(then_g.make_node("Neg", [g.inputs[0]]).outputs[0])  # two scopes up
    else_g = Graph("else", parent=body)
    else_g.add_output(else_g.make_node("Abs", [body.inputs[2]]).outputs[0])  # one scope up
    cond = body.make_node("Constant", [], attrs={"value": np.array(True)})
    inner = body.make_node("If", [cond.outputs[0]],
                           attrs={"then_branch": then_g, "else_branch": else_g})
    body.add_output(inner.outputs[0])
    node._append_output(Value("extra_scan"))
    g.add_output(node.outputs[-1])
    infer_shapes(g)
    assert inner.outputs[0].type == t("N", 4)
    assert node.outputs[-1].type == t(None, "N", 4)


def test_scan_cumulative_sum():
    g = Graph("main")
    g.opset_imports[""] = 16
    init = g.add_input(Value("init", t(4)))
    xs = g.add_input(Value("xs", t(4, "T")))  # scanned along axis 1
    body = Graph("body", parent=g)
    s = body.add_input(Value("s"))
    x = body.add_input(Value("x_t"))
    add = body.make_node("Add", [s, x])
    ident = body.make_node("Identity", add.outputs)
    body.add_output(add.outputs[0])
    body.add_output(ident.outputs[0])
    node = g.make_node("Scan", [init, xs], num_outputs=2,
                       attrs={"body": body, "num_scan_inputs": 1, "scan_input_axes": [1],
                              "scan_output_axes": [-1]})
    for v in node.outputs:
        g.add_output(v)
    infer_shapes(g)
    assert x.type == t(4)
    assert node.outputs[0].type == t(4)
    assert node.outputs[1].type == t(4, "T")


def test_scan_opset8_left_untyped_and_missing_body():
    g = Graph("main")
    g.opset_imports[""] = 8
    x = g.add_input(Value("x", t(1, 4)))
    node = g.make_node("Scan", [None, x], attrs={"body": Graph("b", parent=g),
                                                 "num_scan_inputs": 1})
    assert infer_shapes(g) == 0 and node.outputs[0].type is None
    g2 = Graph("main")
    x = g2.add_input(Value("x", t(1, 4)))
    g2.make_node("If", [x], attrs={"then_branch": 3})
    with pytest.raises(InvalidGraphError, match="no graph attribute 'then_branch'"):
        infer_shapes(g2)


def test_unregistered_op_with_subgraph_is_unknown(clean_registry):
    g = Graph("main")
    x = g.add_input(Value("x", t(3)))
    body = Graph("body", parent=g)
    node = g.make_node("SequenceMap", [x], attrs={"body": body})
    assert infer_shapes(g) == 0 and node.outputs[0].type is None
    with pytest.raises(InvalidGraphError, match="subgraph attributes"):
        infer_shapes(g, strict=True)


# -- shape data: folding and symbolic entries ---------------------------------------------------
def test_reshape_solves_minus_one_as_a_symbol_and_copies_zero_dims():
    g = Graph()
    x = g.add_input(Value("x", t("N", 3)))
    r1 = g.make_node("Reshape", [x, g.add_initializer("s1", np.array([3, -1], np.int64))])
    y = g.add_input(Value("y", t("B", "S", 4)))
    r2 = g.make_node("Reshape", [y, g.add_initializer("s2", np.array([0, 0, 2, 2], np.int64))])
    r3 = g.make_node("Reshape", [y, g.add_initializer("s3", np.array([-1, 4], np.int64))])
    z = g.add_input(Value("z", t(0, 4)))
    r4 = g.make_node("Reshape", [z, g.add_initializer("s4", np.array([0, 8], np.int64))],
                     attrs={"allowzero": 1})
    infer_shapes(g)
    assert r1.outputs[0].type == t(3, "N")  # 3N elements / 3
    assert r2.outputs[0].type == t("B", "S", 2, 2)
    assert r3.outputs[0].type == t(None, 4)  # B*S is not one symbol
    assert r4.outputs[0].type == t(0, 8)
    # The symbolic answers hold for every concrete N, B, S: check against a run.
    for shapes in ({"x": (5, 3), "y": (2, 7, 4), "z": (0, 4)},):
        concrete = Graph()
        for v in g.inputs:
            concrete.add_input(Value(v.name, TensorInfo(v.type.dtype, shapes[v.name])))
        for name, init in g.initializers.items():
            concrete.add_initializer(name, init.const_value)
        for node in g.nodes:
            concrete.make_node(node.op_type, [concrete.find_value(v.name) for v in node.inputs],
                               attrs=node.attrs, output_names=[node.outputs[0].name])
        infer_shapes(concrete)
        assert_matches_run(concrete)
        assert concrete.find_value(r1.outputs[0].name).type == t(3, 5)


def test_symbolic_shape_arithmetic():
    g = Graph()
    x = g.add_input(Value("x", t("N", 3, "S")))
    shape = g.make_node("Shape", [x])
    mul = g.make_node("Mul", [shape.outputs[0],
                              g.add_initializer("m", np.array([1, 2, 1], np.int64))])
    div = g.make_node("Div", [mul.outputs[0],
                              g.add_initializer("d", np.array([1, 3, 1], np.int64))])
    add = g.make_node("Add", [div.outputs[0],
                              g.add_initializer("z", np.array([0], np.int64))])
    sub = g.make_node("Sub", [add.outputs[0],
                              g.add_initializer("o", np.array(0, np.int64))])
    one = g.add_initializer("one", np.array([1, 1, 1], np.int64))
    mul_rev = g.make_node("Mul", [one, sub.outputs[0]])
    add_rev = g.make_node("Add", [g.add_initializer("zeros", np.zeros(3, np.int64)),
                                  mul_rev.outputs[0]])
    twice = g.make_node("Mul", [add_rev.outputs[0], add_rev.outputs[0]])
    zeros = g.make_node("ConstantOfShape", [add_rev.outputs[0]])
    zeros2 = g.make_node("ConstantOfShape", [twice.outputs[0]])
    plus1 = g.make_node("Add", [shape.outputs[0], g.add_initializer("p1", np.ones(1, np.int64))])
    zeros3 = g.make_node("ConstantOfShape", [plus1.outputs[0]])
    for n in (zeros, zeros2, zeros3):
        g.add_output(n.outputs[0])
    infer_shapes(g)
    assert zeros.outputs[0].type == t("N", 2, "S")
    assert zeros2.outputs[0].type == t(None, 4, None)  # N*N is not representable
    assert zeros3.outputs[0].type == t(None, 4, None)  # N+1 neither


def test_symbolic_shape_data_through_slice_squeeze_cast_concat():
    g = Graph()
    x = g.add_input(Value("x", t("B", "S", 16)))
    shape = g.make_node("Shape", [x])
    last2 = g.make_node("Slice", [shape.outputs[0],
                                  g.add_initializer("st", np.array([-2], np.int64)),
                                  g.add_initializer("en", np.array([99], np.int64)),
                                  g.add_initializer("ax", np.array([0], np.int64)),
                                  g.add_initializer("sp", np.array([1], np.int64))])
    rev = g.make_node("Slice", [shape.outputs[0],
                                g.add_initializer("st2", np.array([-1], np.int64)),
                                g.add_initializer("en2", np.array([-99], np.int64)),
                                g.add_initializer("ax2", np.array([0], np.int64)),
                                g.add_initializer("sp2", np.array([-1], np.int64))])
    first = g.make_node("Slice", [shape.outputs[0],
                                  g.add_initializer("st3", np.array([0], np.int64)),
                                  g.add_initializer("en3", np.array([1], np.int64))])
    batch = g.make_node("Squeeze", [first.outputs[0], g.add_initializer("a0", np.array([0]))])
    batch_all = g.make_node("Squeeze", [first.outputs[0]])
    b32 = g.make_node("Cast", batch.outputs, attrs={"to": DType.INT32.value})
    b64 = g.make_node("Cast", b32.outputs, attrs={"to": I64.value})
    b1 = g.make_node("Unsqueeze", [b64.outputs[0], g.add_initializer("a1", np.array([-1]))])
    b1_all = g.make_node("Unsqueeze", [batch_all.outputs[0], g.add_initializer("a2",
                                                                             np.array([0]))])
    target = g.make_node("Concat", [b1.outputs[0], b1_all.outputs[0], last2.outputs[0]],
                         attrs={"axis": -1})
    zeros = g.make_node("ConstantOfShape", target.outputs)
    zeros_rev = g.make_node("ConstantOfShape", rev.outputs)
    g.add_output(zeros.outputs[0])
    g.add_output(zeros_rev.outputs[0])
    infer_shapes(g)
    assert zeros.outputs[0].type == t("B", "B", "S", 16)
    assert zeros_rev.outputs[0].type == t(16, "S", "B")


def test_constant_folding_helpers_match_a_run():
    g = Graph()
    x = g.add_input(Value("x", t(2, 3)))
    ints = g.make_node("Constant", [], attrs={"value_ints": [4, 3]})
    one = g.make_node("Constant", [], attrs={"value_int": 1})
    fl = g.make_node("Constant", [], attrs={"value_floats": [1.5, 3.0]})
    fone = g.make_node("Constant", [], attrs={"value_float": 2.0})
    unsq = g.make_node("Unsqueeze", [one.outputs[0], g.add_initializer("a", np.array([0]))])
    cat = g.make_node("Concat", [unsq.outputs[0], ints.outputs[0]], attrs={"axis": 0})
    grid = g.make_node("ConstantOfShape", [cat.outputs[0]],
                       attrs={"value": np.array([1], np.int64)})
    as_shape = g.make_node("Shape", grid.outputs)
    flat = g.make_node("Reshape", [grid.outputs[0], g.add_initializer("f", np.array([0, -1]))])
    picked = g.make_node("Gather", [flat.outputs[0], g.add_initializer("i", np.array([0]))],
                         attrs={"axis": 1})
    sq = g.make_node("Squeeze", [picked.outputs[0], g.add_initializer("s", np.array([1]))])
    casted = g.make_node("Cast", fl.outputs, attrs={"to": I64.value})
    fdiv = g.make_node("Div", [fl.outputs[0], fone.outputs[0]])
    identity = g.make_node("Identity", as_shape.outputs)
    tiled = g.make_node("Expand", [x, g.make_node("Concat", [sq.outputs[0], casted.outputs[0]],
                                                  attrs={"axis": 0}).outputs[0]])
    for n in (identity, tiled, fdiv):
        g.add_output(n.outputs[0])
    infer_shapes(g)
    st = si._State(None, dict(g.opset_imports), False)
    si._infer_graph(g, st)
    np.testing.assert_array_equal(st.consts[id(identity.outputs[0])], [1, 4, 3])
    np.testing.assert_array_equal(st.consts[id(casted.outputs[0])], [1, 3])
    assert tiled.outputs[0].type == t(1, 2, 3)
    assert_matches_run(g)


def test_size_shape_start_end_and_gather_out_of_range():
    g = Graph()
    x = g.add_input(Value("x", t("N", 5, 6)))
    y = g.add_input(Value("y", t(2, 5)))
    size = g.make_node("Size", [y])
    size_sym = g.make_node("Size", [x])
    mid = g.make_node("Shape", [x], attrs={"start": 1, "end": -1})
    shape = g.make_node("Shape", [x])
    oob = g.make_node("Gather", [shape.outputs[0], g.add_initializer("i9", np.array(9))])
    picked = g.make_node("Gather", [shape.outputs[0], g.add_initializer("ij", np.array([-1, 0]))])
    zeros = g.make_node("ConstantOfShape", picked.outputs)
    g.add_output(zeros.outputs[0])
    st = si._State(None, dict(g.opset_imports), False)
    si._infer_graph(g, st)
    assert int(st.consts[id(size.outputs[0])]) == 10
    assert id(size_sym.outputs[0]) not in st.consts
    np.testing.assert_array_equal(st.consts[id(mid.outputs[0])], [5])
    assert st.data_of(oob.outputs[0]) is None
    assert st.shape_data[id(picked.outputs[0])].dims == (6, "N")
    infer_shapes(g)
    assert zeros.outputs[0].type == t(6, "N")


def test_large_constants_are_not_computed():
    g = Graph()
    a = g.add_initializer("a", np.ones((4096, 1), np.int64))
    b = g.add_initializer("b", np.ones((1, 4096), np.int64))
    add = g.make_node("Add", [a, b])
    big = g.add_initializer("big", np.arange(4000, dtype=np.int64).reshape(1, 4000))
    gathered = g.make_node("Gather", [big, g.add_initializer("idx", np.zeros(2, np.int64))])
    big_cos = g.make_node("ConstantOfShape", [g.add_initializer("s", np.array([100, 100]))])
    g.add_output(add.outputs[0])
    st = si._State(None, dict(g.opset_imports), False)
    si._infer_graph(g, st)
    assert st.consts == {}  # 16M, 8000 and 10000 elements: refused
    infer_shapes(g)
    assert add.outputs[0].type == t(4096, 4096, dtype=I64)
    assert gathered.outputs[0].type == t(2, 4000, dtype=I64)
    assert big_cos.outputs[0].type == t(100, 100)


def test_expand_broadcast_rules_and_error():
    g = Graph()
    x = g.add_input(Value("x", t("N", 1, None, 1)))
    like = g.add_input(Value("like", t(1, "M", 5, 7, "K")))
    exp = g.make_node("Expand", [x, g.make_node("Shape", [like]).outputs[0]])
    g.add_output(exp.outputs[0])
    infer_shapes(g)
    # N vs M: unknown; 1 vs 5; None vs 7; 1 vs K; leading 1 from the target.
    assert exp.outputs[0].type == t(1, None, 5, 7, "K")
    bad = Graph()
    x = bad.add_input(Value("x", t("N", 3)))
    like = bad.add_input(Value("like", t("N", 4)))
    bad.make_node("Expand", [x, bad.make_node("Shape", [like]).outputs[0]], name="expand")
    with pytest.raises(InvalidGraphError, match=r"Expand 'expand'.*dims 3 and 4"):
        infer_shapes(bad)


def test_attribute_conversion_matches_onnx_helper():
    A = onnx.AttributeProto
    cases = [
        ("f", np.float32(0.5), A.FLOAT, helper.make_attribute("f", 0.5)),
        ("f1", np.array([0.25]), A.FLOAT, helper.make_attribute("f1", 0.25)),
        ("i", True, A.INT, helper.make_attribute("i", 1)),
        ("fs", np.array([1, 2]), A.FLOATS, helper.make_attribute("fs", [1.0, 2.0])),
        ("is", (np.int32(1), 2), A.INTS, helper.make_attribute("is", [1, 2])),
        ("ss", ["a", "b"], A.STRINGS, helper.make_attribute("ss", ["a", "b"])),
        ("ts", [np.zeros(2, np.float32)], A.TENSORS,
         helper.make_attribute("ts", [numpy_helper.from_array(np.zeros(2, np.float32))])),
        ("tp", [t(1)], A.TYPE_PROTOS,
         helper.make_attribute("tp", [helper.make_tensor_type_proto(1, [1])])),
        ("t", np.ones(2, np.int64), None,
         helper.make_attribute("t", numpy_helper.from_array(np.ones(2, np.int64)))),
        ("l", [np.int64(3), 4], None, helper.make_attribute("l", [3, 4])),
        ("tl", [np.ones(1, np.float32)], None,
         helper.make_attribute("tl", [numpy_helper.from_array(np.ones(1, np.float32))])),
        ("ty", t("N"), None, helper.make_attribute("ty", helper.make_tensor_type_proto(1,
                                                                                       ["N"]))),
        ("s", "edge", None, helper.make_attribute("s", "edge")),
    ]
    for name, value, attr_type, expected in cases:
        assert si._attribute_proto(name, value, attr_type) == expected, name


def test_unconvertible_attribute_leaves_node_untyped_or_strict_error():
    g = Graph()
    x = g.add_input(Value("x", t(2)))
    odd = g.make_node("LeakyRelu", [x], attrs={"alpha": object()}, name="odd")
    assert infer_shapes(g) == 0 and odd.outputs[0].type is None
    with pytest.raises(InvalidGraphError, match="'odd'.*attribute alpha=.*cannot be written"):
        infer_shapes(g, strict=True)


def test_malformed_node_for_folding_is_left_to_onnx():
    g = Graph()
    x = g.add_input(Value("x", t(2, 3)))
    gather = g.make_node("Gather", [x], name="short")  # indices missing
    with pytest.raises(InvalidGraphError, match="'short'"):
        infer_shapes(g)
    assert gather.outputs[0].type is None
