"""Memory behaviour of the ONNX load path: one copy of every weight, no transient copies.

A ``.onnx`` file of S bytes used to peak at about 3 S while loading (the file's bytes, the
parsed protobuf and the arrays). The loader now walks the wire format, parses only the graph's
structure and reads each large initializer straight into its own array
(``io/_onnx_wire.py``). These tests check the arrays (against ``onnx.numpy_helper``, the
reference decoder), the outputs (against ``onnx.reference``), the memory (``tracemalloc``) and
that every unusual file still takes the ordinary path with the ordinary errors.
"""

from __future__ import annotations

import tracemalloc

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import pyflame_rt.io.onnx as onnx_io
from pyflame_rt.errors import InvalidModelError, InvalidProtobufError
from pyflame_rt.io import load_onnx
from pyflame_rt.io._onnx_tensors import _empty_bytes, _set_hugepage_hint
from pyflame_rt.io._onnx_wire import MIN_SPLIT_BYTES, strip_raw_data

F32 = TensorProto.FLOAT


def _weights_model(n: int = 64, seed: int = 0) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """Y = ((X @ W1 + b1) @ W2) * scale, with initializers of several dtypes and sizes."""
    rng = np.random.default_rng(seed)
    arrays = {
        "W1": rng.standard_normal((n, n)).astype(np.float32),
        "b1": rng.standard_normal(n).astype(np.float32),
        "W2": rng.standard_normal((n, n)).astype(np.float32),
        "scale": np.asarray(0.5, np.float32),  # tiny: stays inside the message
        "unused_f16": rng.standard_normal(300).astype(np.float16),
        "unused_i64": rng.integers(-5, 5, 100).astype(np.int64),
        "unused_bool": rng.integers(0, 2, 600).astype(bool),
        "unused_bf16": rng.standard_normal(200).astype(ml_dtypes.bfloat16),
    }
    inits = [numpy_helper.from_array(a, name) for name, a in arrays.items()]
    nodes = [helper.make_node("MatMul", ["X", "W1"], ["h"]),
             helper.make_node("Add", ["h", "b1"], ["h1"]),
             helper.make_node("MatMul", ["h1", "W2"], ["h2"]),
             helper.make_node("Mul", ["h2", "scale"], ["Y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("X", F32, [2, n])],
                              [helper.make_tensor_value_info("Y", F32, [2, n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)],
                              ir_version=10)
    return model, arrays


@pytest.fixture
def split_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    """Take the split path even for these small test files."""
    monkeypatch.setattr(onnx_io, "MIN_SPLIT_FILE_BYTES", 0)


def _initializers(model) -> dict[str, np.ndarray]:
    return {name: v.const_value for name, v in model.graph.initializers.items()}


# -- the wire scanner ----------------------------------------------------------------------------
def test_strip_takes_out_large_payloads_and_records_where_they_are() -> None:
    model, _ = _weights_model()
    data = model.SerializeToString()
    stripped = strip_raw_data(data)
    assert stripped is not None
    parsed = onnx.ModelProto()
    parsed.ParseFromString(stripped.data)
    assert len(stripped.data) < len(data) - stripped.split_bytes + 64
    originals = {t.name: t for t in model.graph.initializer}
    for i, t in enumerate(parsed.graph.initializer):
        raw = originals[t.name].raw_data
        if len(raw) >= MIN_SPLIT_BYTES:
            assert not t.HasField("raw_data")
            offset, length = stripped.raw_slices[i]
            assert data[offset:offset + length] == raw
        else:
            assert i not in stripped.raw_slices
            assert t.raw_data == raw
        # Everything but the payload is kept.
        assert list(t.dims) == list(originals[t.name].dims)
        assert t.data_type == originals[t.name].data_type
    assert [n.op_type for n in parsed.graph.node] == ["MatMul", "Add", "MatMul", "Mul"]
    assert parsed.opset_import[0].version == 18
    assert set(stripped.raw_slices) and stripped.split_bytes == sum(
        length for _, length in stripped.raw_slices.values())


@pytest.mark.parametrize("mutate", ["two_graphs", "truncated", "group", "no_graph", "tiny"])
def test_strip_declines_unusual_bytes(mutate: str) -> None:
    model, _ = _weights_model()
    data = model.SerializeToString()
    if mutate == "two_graphs":
        # Protobuf merges a repeated embedded message; the scanner leaves that to protobuf.
        data = data + b"\x3a\x00"
    elif mutate == "truncated":
        data = data[:-10]
    elif mutate == "group":
        data = b"\x0b" + data  # field 1, wire type 3 (start group)
    elif mutate == "no_graph":
        data = helper.make_model(helper.make_graph([], "g", [], []),
                                 ir_version=10).SerializeToString()[:4]
    elif mutate == "tiny":
        tiny, _ = _weights_model(n=2)
        tiny.graph.ClearField("initializer")
        data = tiny.SerializeToString()
    assert strip_raw_data(data) is None


# -- loading ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("source", ["path", "bytes"])
def test_split_load_matches_the_reference_decoder_and_evaluator(
        tmp_path, split_everything, source: str) -> None:
    model, _ = _weights_model()
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    loaded = load_onnx(str(path) if source == "path" else path.read_bytes())
    got = _initializers(loaded)
    for t in model.graph.initializer:
        want = numpy_helper.to_array(t)
        assert got[t.name].dtype == want.dtype and got[t.name].shape == want.shape
        np.testing.assert_array_equal(got[t.name].reshape(-1).view(np.uint8),
                                      want.reshape(-1).view(np.uint8))
        # Every weight is its own writable array, never a view into a whole-file buffer.
        assert got[t.name].flags.writeable and got[t.name].flags.c_contiguous
        base = got[t.name].base
        assert base is None or base.nbytes == got[t.name].nbytes

    from pyflame_rt import InferenceSession

    x = np.random.default_rng(1).standard_normal((2, 64)).astype(np.float32)
    (want,) = ReferenceEvaluator(model).run(None, {"X": x})
    (out,) = InferenceSession(str(path)).run(None, {"X": x})
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)


def test_split_and_whole_loads_agree(tmp_path, monkeypatch) -> None:
    model, _ = _weights_model(seed=3)
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    monkeypatch.setattr(onnx_io, "MIN_SPLIT_FILE_BYTES", 0)
    split = _initializers(load_onnx(str(path)))
    monkeypatch.setattr(onnx_io, "MIN_SPLIT_FILE_BYTES", 1 << 62)
    whole = _initializers(load_onnx(str(path)))
    assert split.keys() == whole.keys()
    for name in split:
        assert split[name].dtype == whole[name].dtype
        np.testing.assert_array_equal(split[name].reshape(-1).view(np.uint8),
                                      whole[name].reshape(-1).view(np.uint8))


def test_split_load_keeps_one_copy_of_the_weights(tmp_path, split_everything) -> None:
    """Peak traced memory while loading stays near the weights' size (it was ~2x + file)."""
    n = 512  # two 1 MiB float32 matrices
    model, arrays = _weights_model(n)
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    weight_bytes = sum(a.nbytes for a in arrays.values())
    load_onnx(str(path))  # imports and caches outside the measurement
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        loaded = load_onnx(str(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(a.nbytes for a in _initializers(loaded).values()) == weight_bytes
    assert peak < 1.3 * weight_bytes, (peak, weight_bytes)


def test_whole_file_path_is_taken_for_old_opsets(tmp_path, split_everything) -> None:
    """Models below opset 7 go through ONNX's version converter, which needs every weight."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 64)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])], "g",
        [helper.make_tensor_value_info("X", F32, [1, 64]),
         helper.make_tensor_value_info("W", F32, [64, 64])],  # IR 3: initializers are inputs
        [helper.make_tensor_value_info("Y", F32, [1, 64])], [numpy_helper.from_array(w, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 6)], ir_version=3)
    path = tmp_path / "old.onnx"
    path.write_bytes(model.SerializeToString())
    loaded = load_onnx(str(path))
    assert loaded.graph.opset_imports[""] == 7
    np.testing.assert_array_equal(_initializers(loaded)["W"], w)


def test_corrupt_files_keep_their_errors(tmp_path, split_everything) -> None:
    model, _ = _weights_model()
    data = model.SerializeToString()
    path = tmp_path / "bad.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidProtobufError):
        load_onnx(str(path))
    # A raw_data payload whose length does not fit the shape is still caught.
    bad = onnx.ModelProto()
    bad.CopyFrom(model)
    bad.graph.initializer[0].raw_data = bad.graph.initializer[0].raw_data[:-4]
    path.write_bytes(bad.SerializeToString())
    with pytest.raises(InvalidModelError, match="raw_data holds"):
        load_onnx(str(path))


def test_weight_buffers_leave_numpys_hugepage_setting_as_it_was() -> None:
    previous = _set_hugepage_hint(True)
    if previous is None:
        pytest.skip("this numpy has no hugepage switch (nothing to restore)")
    try:
        for state in (True, False):
            _set_hugepage_hint(state)
            buf = _empty_bytes(5 << 20)
            assert buf.nbytes == 5 << 20 and buf.flags.writeable
            assert _set_hugepage_hint(state) is state
    finally:
        _set_hugepage_hint(previous)
