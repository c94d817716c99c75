"""Sequence and optional kernels vs onnx.reference (and ONNX Runtime where it has the op).

Kernels are called directly where they need no subgraph; SequenceMap, If/Loop carrying
sequences or optionals, and ``get_inputs()`` types go through ``InferenceSession``.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import pyflame_rt as pf
from pyflame_rt.backends.cpu.sequence import (
    concat_from_sequence,
    optional,
    optional_get_element,
    optional_has_element,
    sequence_at,
    sequence_construct,
    sequence_empty,
    sequence_erase,
    sequence_insert,
    sequence_length,
    split_to_sequence,
)
from pyflame_rt.types import DType
from tests.oracle import assert_close

F = TensorProto.FLOAT
I64 = TensorProto.INT64

DTYPES = [np.float32, np.float64, np.float16, np.int8, np.int32, np.int64, np.uint8, np.uint64,
          np.bool_, object]


def _sample(dtype, shape, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype is object:
        return rng.choice(["a", "bc", "", "déf"], size=shape).astype(object)
    if dtype is np.bool_:
        return rng.random(shape) > 0.5
    return (rng.random(shape) * 10).astype(dtype)


def _elem(dtype) -> int:
    return DType.from_numpy(np.dtype(dtype)).value


def _type_of(value) -> onnx.TypeProto:
    """The TypeProto of a feed: tensor, sequence of tensors, or (list marked ``None``) empty."""
    if isinstance(value, list):
        dtype = value[0].dtype if value else np.float32
        return helper.make_sequence_type_proto(helper.make_tensor_type_proto(_elem(dtype), None))
    arr = np.asarray(value)
    return helper.make_tensor_type_proto(_elem(arr.dtype), list(arr.shape))


def _model(op_type, inputs, attrs=None, *, noutputs=1, opset=18, types=None):
    """A one-node model; ``inputs`` are feeds (``None``: omitted), ``types`` overrides types."""
    names, graph_inputs = [], []
    for i, value in enumerate(inputs):
        if value is None and not (types and i in types):
            names.append("")
            continue
        names.append(f"in{i}")
        tp = types[i] if types and i in types else _type_of(value)
        graph_inputs.append(helper.make_value_info(f"in{i}", tp))
    outs = [f"out{i}" for i in range(noutputs)]
    node = helper.make_node(op_type, names, outs, **(attrs or {}))
    graph = helper.make_graph([node], "g", graph_inputs,
                              [helper.make_value_info(o, onnx.TypeProto()) for o in outs])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _feeds(inputs, types=None):
    return {f"in{i}": v for i, v in enumerate(inputs)
            if v is not None or (types and i in types)}


def _reference(op_type, inputs, attrs=None, *, noutputs=1, opset=18, types=None):
    model = _model(op_type, inputs, attrs, noutputs=noutputs, opset=opset, types=types)
    return ReferenceEvaluator(model).run(None, _feeds(inputs, types))


def _same(got, expected):
    """Tensors, sequences (lists) and empty optionals (None) compared exactly."""
    if expected is None:
        assert got is None
    elif isinstance(expected, list):
        assert isinstance(got, list), f"expected a sequence, got {type(got).__name__}"
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            _same(g, e)
    else:
        assert_close(got, expected, rtol=0, atol=0)


def _onnxruntime(op_type, inputs, attrs=None, *, opset=18, types=None):
    model = _model(op_type, inputs, attrs, opset=opset, types=types)
    sess = onnxruntime.InferenceSession(model.SerializeToString(),
                                        providers=["CPUExecutionProvider"])
    return sess.run(None, _feeds(inputs, types))


def _check(fn, op_type, inputs, attrs=None, *, opset=18, types=None, oracle="reference"):
    run = _reference if oracle == "reference" else _onnxruntime
    expected = run(op_type, inputs, attrs, opset=opset, types=types)[0]
    _same(fn(*inputs, **(attrs or {})), expected)


# -- construct / empty / at / insert / erase / length ---------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_sequence_construct(dtype):
    inputs = [_sample(dtype, (2, 3), 0), _sample(dtype, (4,), 1), _sample(dtype, (), 2)]
    _check(sequence_construct, "SequenceConstruct", inputs)


def test_sequence_construct_rejects_mixed_types():
    with pytest.raises(ValueError, match="same element type"):
        sequence_construct(np.zeros(2, np.float32), np.zeros(2, np.int64))


@pytest.mark.parametrize("dtype", [None, TensorProto.INT64, TensorProto.STRING])
def test_sequence_empty(dtype):
    attrs = {} if dtype is None else {"dtype": dtype}
    _check(sequence_empty, "SequenceEmpty", [], attrs)
    assert sequence_empty(**attrs) == []


@pytest.mark.parametrize("position", [0, 1, 2, -1, -3])
@pytest.mark.parametrize("pos_dtype", [np.int32, np.int64])
def test_sequence_at(position, pos_dtype):
    seq = [_sample(np.float32, (i + 1,), i) for i in range(3)]
    _check(sequence_at, "SequenceAt", [seq, np.array(position, pos_dtype)])


@pytest.mark.parametrize("position", [3, -4])
def test_sequence_at_out_of_range(position):
    with pytest.raises(ValueError, match="out of range"):
        sequence_at([np.zeros(1)] * 3, np.array(position))


@pytest.mark.parametrize("position", [None, 0, 1, 3, -1, -3])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, object])
def test_sequence_insert(position, dtype):
    seq = [_sample(dtype, (2,), i) for i in range(3)]
    pos = None if position is None else np.array(position, np.int64)
    tensor = _sample(dtype, (5,), 9)
    # onnx.reference wraps position len(seq) round to 0; ONNX Runtime follows the spec.
    _check(sequence_insert, "SequenceInsert", [seq, tensor, pos], oracle="onnxruntime")
    assert len(seq) == 3, "the input sequence must not change"


def test_sequence_insert_into_empty_sequence():
    _check(sequence_insert, "SequenceInsert", [[], np.ones(2, np.float32)], oracle="onnxruntime",
           types={0: helper.make_sequence_type_proto(helper.make_tensor_type_proto(F, None))})


@pytest.mark.parametrize("position", [4, -4])
def test_sequence_insert_out_of_range(position):
    with pytest.raises(ValueError, match="out of range"):
        sequence_insert([np.zeros(1)] * 3, np.zeros(1), np.array(position))


def test_sequence_insert_rejects_other_element_type():
    with pytest.raises(ValueError, match="element type"):
        sequence_insert([np.zeros(1, np.float32)], np.zeros(1, np.int64))
    # numpy unicode and object arrays are both tensor(string).
    got = sequence_insert([np.array(["a"])], np.array(["b"], dtype=object))
    assert [list(t) for t in got] == [["a"], ["b"]]


@pytest.mark.parametrize("position", [None, 0, 2, -1, -3])
def test_sequence_erase(position):
    seq = [_sample(np.int32, (i + 1,), i) for i in range(3)]
    pos = None if position is None else np.array(position, np.int32)
    _check(sequence_erase, "SequenceErase", [seq, pos])
    assert len(seq) == 3, "the input sequence must not change"


def test_sequence_erase_errors():
    with pytest.raises(ValueError, match="empty sequence"):
        sequence_erase([])
    with pytest.raises(ValueError, match="out of range"):
        sequence_erase([np.zeros(1)] * 2, np.array(2))


@pytest.mark.parametrize("n", [0, 1, 4])
def test_sequence_length(n):
    seq = [np.zeros(2, np.float32)] * n
    got = sequence_length(seq)
    assert got.dtype == np.int64 and got.shape == () and int(got) == n
    if n:
        _check(sequence_length, "SequenceLength", [seq])


# -- SplitToSequence / ConcatFromSequence ---------------------------------------------------

@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_split_to_sequence_default(axis, keepdims):
    x = _sample(np.float32, (3, 4), 0)
    _check(split_to_sequence, "SplitToSequence", [x], {"axis": axis, "keepdims": keepdims})


@pytest.mark.parametrize("split", [np.array(2), np.array(3, np.int32), np.array(6),
                                   np.array([1, 2, 3]), np.array([0, 6], np.int32)])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_split_to_sequence_with_split(split, keepdims):
    # keepdims is ignored when split is given; a scalar that does not divide leaves a short tail.
    x = _sample(np.float32, (2, 6), 1)
    _check(split_to_sequence, "SplitToSequence", [x, split], {"axis": 1, "keepdims": keepdims})


def test_split_to_sequence_uneven_scalar():
    x = _sample(np.int64, (7, 2), 2)
    got = split_to_sequence(x, np.array(3))
    assert [p.shape for p in got] == [(3, 2), (3, 2), (1, 2)]
    _check(split_to_sequence, "SplitToSequence", [x, np.array(3)])


@pytest.mark.parametrize("dtype", DTYPES + [ml_dtypes.bfloat16])
def test_split_to_sequence_dtypes(dtype):
    x = _sample(np.float32 if dtype is ml_dtypes.bfloat16 else dtype, (4, 3), 3)
    x = x.astype(dtype)
    if dtype is ml_dtypes.bfloat16:
        # onnx.reference cannot type bfloat16 sequences; slices are exact, so numpy is the oracle.
        got = split_to_sequence(x, np.array([1, 3]))
        _same(got, [x[:1], x[1:]])
        return
    _check(split_to_sequence, "SplitToSequence", [x, np.array([1, 3])], opset=24)


def test_split_to_sequence_errors():
    x = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match="sum to"):
        split_to_sequence(x, np.array([1, 2]), axis=1)
    with pytest.raises(ValueError, match="positive"):
        split_to_sequence(x, np.array(0))
    with pytest.raises(ValueError, match="out of range"):
        split_to_sequence(x, axis=2)


@pytest.mark.parametrize("axis", [0, 1, -1, -2])
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.bool_, object])
def test_concat_from_sequence(axis, dtype):
    seq = [_sample(dtype, (2, 3), i) for i in range(3)]
    _check(concat_from_sequence, "ConcatFromSequence", [seq], {"axis": axis})


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_concat_from_sequence_new_axis(axis):
    seq = [_sample(np.float32, (2, 3), i) for i in range(4)]
    _check(concat_from_sequence, "ConcatFromSequence", [seq], {"axis": axis, "new_axis": 1})


def test_concat_from_sequence_uneven_lengths():
    seq = [_sample(np.float64, (2, i + 1), i) for i in range(3)]
    _check(concat_from_sequence, "ConcatFromSequence", [seq], {"axis": 1})


def test_concat_from_sequence_errors():
    with pytest.raises(ValueError, match="empty"):
        concat_from_sequence([], axis=0)
    with pytest.raises(ValueError, match="out of range"):
        concat_from_sequence([np.zeros((2, 3))], axis=2)
    with pytest.raises(ValueError, match="axis attribute"):
        concat_from_sequence([np.zeros((2, 3))])


# -- Optional ------------------------------------------------------------------------------

def test_optional_wraps_and_makes_empty():
    # onnx.reference returns an optional as a one-element list; ONNX Runtime is the oracle.
    x = np.arange(3, dtype=np.float32)
    _check(optional, "Optional", [x], oracle="onnxruntime")
    seq = [x, x + 1]
    _check(optional, "Optional", [seq], oracle="onnxruntime")
    assert optional(None, type=pf.types.TensorInfo(DType.FLOAT, (3,))) is None
    with pytest.raises(ValueError, match="type attribute"):
        optional(None)


OPT_F = helper.make_optional_type_proto(helper.make_tensor_type_proto(F, [4]))
OPT_SEQ = helper.make_optional_type_proto(
    helper.make_sequence_type_proto(helper.make_tensor_type_proto(TensorProto.INT32, None)))


@pytest.mark.parametrize("opset", [15, 18])
@pytest.mark.parametrize("value,tp", [
    (np.arange(4, dtype=np.float32), OPT_F),
    (None, OPT_F),
    ([np.arange(3, dtype=np.int32)], OPT_SEQ),
    (None, OPT_SEQ),
])
def test_optional_has_element(opset, value, tp):
    expected = _reference("OptionalHasElement", [value], opset=opset, types={0: tp})[0]
    got = optional_has_element(value)
    assert_close(got, expected)
    assert got.dtype == np.bool_ and got.shape == ()


@pytest.mark.parametrize("value", [np.arange(4, dtype=np.float32),
                                   [np.arange(3, dtype=np.int32)]])
def test_optional_has_element_18_plain_inputs(value):
    # Opset 18: a plain tensor/sequence input counts as present; an omitted input as absent.
    _check(optional_has_element, "OptionalHasElement", [value], opset=18)
    _check(optional_has_element, "OptionalHasElement", [None], opset=18)


@pytest.mark.parametrize("value,tp", [(np.arange(4, dtype=np.float32), OPT_F),
                                      ([np.arange(3, dtype=np.int32)], OPT_SEQ)])
@pytest.mark.parametrize("plain", [False, True])
def test_optional_get_element(value, tp, plain):
    types = None if plain else {0: tp}
    _check(optional_get_element, "OptionalGetElement", [value], opset=18, types=types)


def test_optional_get_element_of_empty_raises():
    with pytest.raises(ValueError, match="empty"):
        optional_get_element(None)


# -- through the session: subgraphs, control flow, feeds and types ---------------------------

def _session_vs_oracle(model, feeds, opt_level=None, oracle="onnxruntime"):
    # onnx.reference wraps optionals in lists, cannot feed a tensor to SequenceMap and loses
    # Loop-carried sequences, so ONNX Runtime is the oracle for whole models by default.
    options = pf.SessionOptions()
    if opt_level is not None:
        options.graph_optimization_level = opt_level
    got = pf.InferenceSession(model.SerializeToString(), options).run(None, feeds)
    if oracle == "reference":
        expected = ReferenceEvaluator(model).run(None, feeds)
    else:
        expected = onnxruntime.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        _same(g, e)
    return got


SEQ_F = helper.make_sequence_type_proto(helper.make_tensor_type_proto(F, None))

LEVELS = [None, pf.GraphOptimizationLevel.ORT_DISABLE_ALL]


def _seq_map_model(n_seq_inputs, n_tensor_inputs, body_nodes, body_outputs, n_outputs):
    body_inputs = [helper.make_tensor_value_info(f"b{i}", F, None)
                   for i in range(n_seq_inputs + n_tensor_inputs)]
    body = helper.make_graph(body_nodes, "body", body_inputs,
                             [helper.make_tensor_value_info(o, t, None)
                              for o, t in body_outputs])
    inputs = [helper.make_value_info(f"s{i}", SEQ_F) for i in range(n_seq_inputs)]
    inputs += [helper.make_tensor_value_info(f"t{i}", F, None) for i in range(n_tensor_inputs)]
    outs = [f"y{i}" for i in range(n_outputs)]
    node = helper.make_node("SequenceMap", [i.name for i in inputs], outs, body=body)
    graph = helper.make_graph([node], "seqmap", inputs,
                              [helper.make_value_info(o, onnx.TypeProto()) for o in outs])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("level", LEVELS)
def test_sequence_map_one_sequence(level):
    model = _seq_map_model(1, 0, [helper.make_node("Shape", ["b0"], ["o"])], [("o", I64)], 1)
    seq = [np.zeros((2, 3), np.float32), np.zeros((4,), np.float32), np.zeros((), np.float32)]
    _session_vs_oracle(model, {"s0": seq}, level)


@pytest.mark.parametrize("level", LEVELS)
def test_sequence_map_sequence_and_tensor_two_outputs(level):
    # The tensor input is broadcast to every iteration; the second sequence is sliced.
    nodes = [helper.make_node("Add", ["b0", "b2"], ["o0"]),
             helper.make_node("Mul", ["b1", "b2"], ["o1"])]
    model = _seq_map_model(2, 1, nodes, [("o0", F), ("o1", F)], 2)
    s0 = [_sample(np.float32, (3,), i) for i in range(3)]
    s1 = [_sample(np.float32, (3,), 10 + i) for i in range(3)]
    t0 = _sample(np.float32, (3,), 99)
    got = _session_vs_oracle(model, {"s0": s0, "s1": s1, "t0": t0}, level)
    assert len(got[0]) == 3 and len(got[1]) == 3


@pytest.mark.parametrize("level", LEVELS)
def test_sequence_map_body_reads_outer_scope(level):
    # The body multiplies by "scale", a value of the enclosing graph it is not given as input.
    body = helper.make_graph(
        [helper.make_node("Mul", ["b0", "scale"], ["o"])], "body",
        [helper.make_tensor_value_info("b0", F, None)], [helper.make_tensor_value_info("o", F, None)])
    graph = helper.make_graph(
        [helper.make_node("Add", ["k", "k"], ["scale"]),
         helper.make_node("SequenceMap", ["s"], ["y"], body=body)],
        "outer", [helper.make_value_info("s", SEQ_F), helper.make_tensor_value_info("k", F, [])],
        [helper.make_value_info("y", SEQ_F)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    seq = [_sample(np.float32, (2,), i) for i in range(3)]
    _session_vs_oracle(model, {"s": seq, "k": np.array(1.5, np.float32)}, level)


def test_sequence_map_empty_and_mismatched_sequences():
    model = _seq_map_model(2, 0, [helper.make_node("Add", ["b0", "b1"], ["o"])], [("o", F)], 1)
    sess = pf.InferenceSession(model.SerializeToString())
    assert sess.run(None, {"s0": [], "s1": []}) == [[]]
    with pytest.raises(pf.PyFlameRTError, match="length"):
        sess.run(None, {"s0": [np.zeros(2, np.float32)], "s1": []})


def _if_optional_model():
    # then: an empty optional of seq(float); else: Optional(SequenceConstruct(x))
    then_g = helper.make_graph(
        [helper.make_node("Optional", [], ["e"], type=SEQ_F)], "then", [],
        [helper.make_value_info("e", helper.make_optional_type_proto(SEQ_F))])
    else_g = helper.make_graph(
        [helper.make_node("SequenceConstruct", ["x", "x"], ["s"]),
         helper.make_node("Optional", ["s"], ["o"])], "else", [],
        [helper.make_value_info("o", helper.make_optional_type_proto(SEQ_F))])
    graph = helper.make_graph(
        [helper.make_node("If", ["cond"], ["opt"], then_branch=then_g, else_branch=else_g),
         helper.make_node("OptionalHasElement", ["opt"], ["has"])],
        "if_opt",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x", F, [2])],
        [helper.make_value_info("opt", helper.make_optional_type_proto(SEQ_F)),
         helper.make_tensor_value_info("has", TensorProto.BOOL, [])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])


@pytest.mark.parametrize("cond", [True, False])
@pytest.mark.parametrize("level", LEVELS)
def test_if_producing_optional_sequence(cond, level):
    got = _session_vs_oracle(_if_optional_model(),
                                {"cond": np.array(cond), "x": np.ones(2, np.float32)}, level)
    assert (got[0] is None) == cond
    assert bool(got[1]) is not cond


@pytest.mark.parametrize("level", LEVELS)
def test_loop_carrying_a_sequence(level):
    # seq_out = SequenceInsert(seq_in, x[:i+1]) for i in range(trip_count)
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Constant", [], ["one"], value=helper.make_tensor("c1", I64, [1], [1])),
         helper.make_node("Constant", [], ["zero"], value=helper.make_tensor("c0", I64, [1], [0])),
         helper.make_node("Unsqueeze", ["i", "zero"], ["i1"]),
         helper.make_node("Add", ["i1", "one"], ["end"]),
         helper.make_node("Slice", ["x", "zero", "end"], ["piece"]),
         helper.make_node("SequenceInsert", ["seq_in", "piece"], ["seq_out"])],
        "body",
        [helper.make_tensor_value_info("i", I64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_value_info("seq_in", SEQ_F)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_value_info("seq_out", SEQ_F)])
    graph = helper.make_graph(
        [helper.make_node("SequenceEmpty", [], ["empty"]),
         helper.make_node("Loop", ["n", "", "empty"], ["res"], body=body),
         helper.make_node("ConcatFromSequence", ["res"], ["flat"], axis=0)],
        "loop_seq",
        [helper.make_tensor_value_info("n", I64, []), helper.make_tensor_value_info("x", F, [4])],
        [helper.make_value_info("res", SEQ_F), helper.make_tensor_value_info("flat", F, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    got = _session_vs_oracle(model, {"n": np.array(4), "x": np.arange(4, dtype=np.float32)},
                                level)
    assert [len(t) for t in got[0]] == [1, 2, 3, 4]


@pytest.mark.parametrize("level", LEVELS)
def test_split_then_concat_roundtrip_through_session(level):
    graph = helper.make_graph(
        [helper.make_node("SplitToSequence", ["x", "split"], ["seq"], axis=1),
         helper.make_node("SequenceErase", ["seq", "pos"], ["seq2"]),
         helper.make_node("SequenceLength", ["seq2"], ["n"]),
         helper.make_node("ConcatFromSequence", ["seq2"], ["y"], axis=1)],
        "split_concat",
        [helper.make_tensor_value_info("x", F, [2, 5]),
         helper.make_tensor_value_info("split", I64, [3]),
         helper.make_tensor_value_info("pos", I64, [])],
        [helper.make_tensor_value_info("y", F, None), helper.make_tensor_value_info("n", I64, [])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    _session_vs_oracle(model, {"x": _sample(np.float32, (2, 5)),
                                  "split": np.array([1, 3, 1]), "pos": np.array(-2)}, level)


def _typed_io_model():
    seq = helper.make_value_info("s", SEQ_F)
    opt = helper.make_value_info("o", OPT_F)
    graph = helper.make_graph(
        [helper.make_node("SequenceLength", ["s"], ["n"]),
         helper.make_node("OptionalHasElement", ["o"], ["h"]),
         helper.make_node("Optional", ["n"], ["on"])],
        "typed_io", [seq, opt],
        [helper.make_tensor_value_info("n", I64, []),
         helper.make_tensor_value_info("h", TensorProto.BOOL, []),
         helper.make_value_info("on", helper.make_optional_type_proto(
             helper.make_tensor_type_proto(I64, [])))])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)


def test_get_inputs_types_match_onnxruntime():
    model = _typed_io_model().SerializeToString()
    ours = pf.InferenceSession(model)
    theirs = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    assert [(a.name, a.type) for a in ours.get_inputs()] == \
        [(a.name, a.type) for a in theirs.get_inputs()] == \
        [("s", "seq(tensor(float))"), ("o", "optional(tensor(float))")]
    assert [(a.name, a.type) for a in ours.get_outputs()] == \
        [(a.name, a.type) for a in theirs.get_outputs()]


def test_get_inputs_optional_shape_matches_onnxruntime():
    model = _typed_io_model().SerializeToString()
    ours = pf.InferenceSession(model)
    theirs = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    assert [a.shape for a in ours.get_inputs()] == [a.shape for a in theirs.get_inputs()]


@pytest.mark.parametrize("opt_value", [np.ones(4, np.float32), None])
def test_sequence_and_optional_feeds_run_like_onnxruntime(opt_value):
    model = _typed_io_model().SerializeToString()
    feeds = {"s": [np.zeros((2, 3), np.float32), np.ones(1, np.float32)], "o": opt_value}
    got = pf.InferenceSession(model).run(None, feeds)
    expected = onnxruntime.InferenceSession(
        model, providers=["CPUExecutionProvider"]).run(None, feeds)
    for g, e in zip(got, expected):
        _same(g, e)
