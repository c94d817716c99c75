"""The memo of ONNX's per-node inference in ``ir.shape_inference``.

The optimizer re-infers the whole graph after each change, and transformers repeat the same
layer many times; ONNX's answer for one (op, input types, small constants, attributes) query
is kept and reused. These tests check that a repeated query is answered from the memo, and
that anything the answer depends on (constant data, attributes, types, opset) changes the
key. The expected shapes come from ONNX's own whole-model inference.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import pyflame_rt.ir.shape_inference as si
from pyflame_rt.ir import Graph, Value
from pyflame_rt.ir.shape_inference import infer_shapes
from pyflame_rt.types import DType, TensorInfo

F32 = DType.FLOAT


def _onnx_shape(op: str, x_shape: list[int], attrs: dict, const: np.ndarray | None,
                opset: int = 18) -> tuple:
    """ONNX's whole-model inference for ``op(x[, const])``: the oracle."""
    inputs = ["x"] + (["c"] if const is not None else [])
    inits = [numpy_helper.from_array(const, "c")] if const is not None else []
    graph = helper.make_graph([helper.make_node(op, inputs, ["y"], **attrs)], "g",
                              [helper.make_tensor_value_info("x", 1, x_shape)],
                              [helper.make_tensor_value_info("y", 0, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    dims = inferred.graph.output[0].type.tensor_type.shape.dim
    return tuple(d.dim_value for d in dims)


def _ours(op: str, x_shape: list[int], attrs: dict, const: np.ndarray | None,
          opset: int = 18) -> tuple:
    g = Graph("g")
    g.opset_imports = {"": opset}
    x = g.add_input(Value("x", TensorInfo(F32, tuple(x_shape))))
    ins = [x] + ([g.add_initializer("c", const)] if const is not None else [])
    node = g.make_node(op, ins, attrs=attrs)
    g.add_output(node.outputs[0])
    infer_shapes(g)
    return tuple(node.outputs[0].type.shape)


@pytest.fixture
def onnx_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts the queries that reach ONNX (the memo starts empty)."""
    monkeypatch.setattr(si, "_onnx_memo", {})
    calls: list[str] = []
    real = onnx.shape_inference.infer_node_outputs

    def counting(schema, node, *args, **kwargs):
        calls.append(node.op_type)
        return real(schema, node, *args, **kwargs)

    monkeypatch.setattr(onnx.shape_inference, "infer_node_outputs", counting)
    return calls


def test_a_repeated_query_is_answered_from_the_memo(onnx_calls) -> None:
    shape = np.array([4, -1], np.int64)
    first = _ours("Reshape", [2, 3, 4], {}, shape)
    assert onnx_calls == ["Reshape"]
    second = _ours("Reshape", [2, 3, 4], {}, shape)
    assert onnx_calls == ["Reshape"]  # no second query
    assert first == second == _onnx_shape("Reshape", [2, 3, 4], {}, shape)


@pytest.mark.parametrize("op, x_shape, variants", [
    # Constant data is part of the key.
    ("Reshape", [2, 3, 4], [({}, np.array([4, -1], np.int64)),
                            ({}, np.array([-1, 2], np.int64)),
                            ({}, np.array([24], np.int64))]),
    # Attributes are part of the key.
    ("Transpose", [2, 3, 4], [({"perm": [2, 0, 1]}, None), ({"perm": [1, 2, 0]}, None)]),
    ("Flatten", [2, 3, 4], [({"axis": 1}, None), ({"axis": 2}, None), ({"axis": 0}, None)]),
    # Input types are part of the key (same op and attributes, other shape).
    ("Relu", [2, 3], [({}, None)]),
])
def test_every_part_of_the_query_changes_the_key(onnx_calls, op, x_shape, variants) -> None:
    for attrs, const in variants:
        assert _ours(op, x_shape, attrs, const) == _onnx_shape(op, x_shape, attrs, const)
    assert len(onnx_calls) == len(variants)
    if op == "Relu":
        assert _ours(op, [5, 7], {}, None) == (5, 7)
        assert len(onnx_calls) == 2


def test_the_opset_is_part_of_the_key(onnx_calls) -> None:
    # Squeeze-11 takes axes as an attribute, Squeeze-13 as an input: same graph, two queries.
    assert _ours("Squeeze", [1, 3, 1], {}, None, opset=11) == (3,)
    assert _ours("Squeeze", [1, 3, 1], {}, None, opset=13) == (3,)
    assert len(onnx_calls) == 2


def test_the_memo_stays_bounded(onnx_calls, monkeypatch) -> None:
    monkeypatch.setattr(si, "_MEMO_MAX_ENTRIES", 4)
    for n in range(1, 11):
        assert _ours("Relu", [n, 2], {}, None) == (n, 2)
    assert len(si._onnx_memo) <= 4


def test_the_memo_is_bounded_in_constant_bytes(onnx_calls, monkeypatch) -> None:
    monkeypatch.setattr(si, "_MEMO_MAX_BYTES", 3 * 4096 * 4)
    monkeypatch.setattr(si, "_memo_bytes", 0)
    for k in range(1, 6):
        const = np.full(4096, k, np.float32)  # 16 KiB of key data each
        assert _ours("Add", [4096], {}, const) == (4096,)
        assert si._memo_bytes <= 3 * 4096 * 4
    assert len(onnx_calls) == 5


def test_queries_without_a_stable_key_are_not_kept() -> None:
    import onnx.defs

    tensor = TensorInfo(DType.STRING, (1,))
    strings = np.array(["a"], dtype=object)  # object data has no stable bytes
    schema = onnx.defs.get_schema("Identity", 18)
    assert si._memo_key(schema, [(tensor, strings)], {}, {}, 1, {"": 18}) is None
    big = np.zeros(100_000, np.float32)  # a big tensor attribute
    schema = onnx.defs.get_schema("Constant", 18)
    assert si._memo_key(schema, [], {"value": big}, {}, 1, {"": 18}) is None
    key = si._memo_key(schema, [], {"value": big[:10]}, {}, 1, {"": 18})
    assert key is not None and key != si._memo_key(schema, [], {"value": big[:11]}, {}, 1,
                                                     {"": 18})
