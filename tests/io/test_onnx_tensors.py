"""ONNX tensors and types: every element type, size validation, sparse, external data, limits.

The oracle for decoding is ``onnx.numpy_helper`` (``to_array``/``from_array``) and
``onnx.load``: our arrays must equal what ONNX's own helpers produce, and what we write must
decode with ONNX's helpers to the array we started from.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pyflame_rt.errors import InvalidModelError, MemoryLimitError, NotImplementedFeatureError
from pyflame_rt.io import from_onnx, load_onnx, save_onnx, to_onnx
from pyflame_rt.io._onnx_tensors import (
    TensorReader,
    array_to_sparse,
    array_to_tensor,
    type_from_proto,
    type_to_proto,
)
from pyflame_rt.ir import Graph, Model, Value
from pyflame_rt.types import DType, MapInfo, OptionalInfo, SequenceInfo, TensorInfo

NUMERIC = [d for d in DType if d is not DType.STRING]


def sample(dtype: DType, count: int = 7) -> np.ndarray:
    """``count`` representable, mostly non-zero values of ``dtype`` (odd count: packing edge)."""
    if dtype is DType.BOOL:
        return np.array([True, False, True, True, False, True, False][:count])
    if dtype is DType.FLOAT8E8M0:  # powers of two only, no zero
        return np.array([1, 2, 4, 0.5, 8, 0.25, 16][:count], dtype=np.float32).astype(dtype.numpy)
    if dtype in (DType.UINT2,):
        return (np.arange(count) % 4).astype(dtype.numpy)
    if dtype in (DType.INT2,):
        return (np.arange(count) % 4 - 2).astype(dtype.numpy)
    if dtype in (DType.UINT4, DType.UINT8, DType.UINT16, DType.UINT32, DType.UINT64):
        return (np.arange(count) * 2 % 16).astype(dtype.numpy)
    if dtype is DType.FLOAT4E2M1:
        return np.array([0.5, -1, 1.5, -2, 3, -4, 6][:count], dtype=np.float32).astype(dtype.numpy)
    if dtype in (DType.COMPLEX64, DType.COMPLEX128):
        return (np.arange(count) - 3 + 1j * np.arange(count)).astype(dtype.numpy)
    return (np.arange(count) - 3).astype(dtype.numpy) if dtype is not DType.INT4 else \
        (np.arange(count) - 4).astype(dtype.numpy)


def same(a: np.ndarray, b: np.ndarray) -> None:
    """Equal dtype, shape and bits (NaN-safe for the narrow float types)."""
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    assert a.shape == b.shape, (a.shape, b.shape)
    if a.dtype == object:
        assert a.tolist() == b.tolist()
    else:
        np.testing.assert_array_equal(np.ascontiguousarray(a).view(np.uint8),
                                      np.ascontiguousarray(b).view(np.uint8))


def read(t: TensorProto, **kwargs) -> np.ndarray:
    arr, _ = TensorReader(**kwargs).to_array(t, "tensor")
    return arr


# -- element types ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", NUMERIC, ids=lambda d: d.name)
def test_raw_data_matches_onnx_helper(dtype: DType) -> None:
    arr = sample(dtype)
    t = numpy_helper.from_array(arr, "t")  # ONNX's own encoder
    assert t.HasField("raw_data")
    got = read(t)
    same(got, numpy_helper.to_array(t))
    assert got.dtype == dtype.numpy
    assert got.flags.writeable and got.flags.c_contiguous


@pytest.mark.parametrize("dtype", NUMERIC, ids=lambda d: d.name)
def test_typed_fields_match_onnx_helper(dtype: DType) -> None:
    arr = sample(dtype).reshape(7, 1)
    t = helper.make_tensor("t", dtype.value, arr.shape, arr.reshape(-1).tolist()
                           if dtype.numpy.kind in "biufc" else arr, raw=False)
    assert not t.HasField("raw_data")
    got = read(t)
    same(got, numpy_helper.to_array(t))
    assert got.dtype == dtype.numpy


@pytest.mark.parametrize("dtype", NUMERIC, ids=lambda d: d.name)
def test_export_decodes_with_onnx_helper(dtype: DType) -> None:
    arr = sample(dtype).reshape(1, 7)
    t = array_to_tensor(arr, "t")
    assert t.data_type == dtype.value
    same(numpy_helper.to_array(t), arr)
    same(read(t), arr)


def test_bool_raw_bytes_are_normalized() -> None:
    t = TensorProto(name="b", data_type=TensorProto.BOOL, dims=[3], raw_data=b"\x00\x02\x01")
    got = read(t)
    assert got.dtype == np.bool_ and got.tolist() == [False, True, True]


def test_string_tensor_follows_onnx_helper() -> None:
    t = helper.make_tensor("s", TensorProto.STRING, [2, 2], [b"ab", "\u00e9t\u00e9", b"", b"x"])
    got = read(t)
    expected = numpy_helper.to_array(t)
    assert got.dtype == object and got.shape == (2, 2)
    assert got.tolist() == expected.tolist()
    assert all(type(x) is str for x in got.reshape(-1))
    back = array_to_tensor(got, "s")
    assert list(back.string_data) == list(t.string_data)


def test_string_tensor_keeps_undecodable_bytes() -> None:
    t = helper.make_tensor("s", TensorProto.STRING, [2], [b"\xff\xfe", b"ok"])
    got = read(t)
    assert got.tolist() == [b"\xff\xfe", "ok"]
    assert list(array_to_tensor(got).string_data) == [b"\xff\xfe", b"ok"]


def test_scalar_and_empty_tensors() -> None:
    scalar = numpy_helper.from_array(np.array(3.5, np.float32))
    got = read(scalar)
    assert got.shape == () and got == 3.5
    empty = numpy_helper.from_array(np.zeros((0, 3), np.int64))
    assert read(empty).shape == (0, 3)
    typed_empty = helper.make_tensor("e", TensorProto.FLOAT, [2, 0], [])
    assert read(typed_empty).shape == (2, 0)


def test_float6_raw_data_is_a_six_bit_stream() -> None:
    # 0.5, 1.5, -2.0 in float6_e2m3fn are 0b000100, 0b001100, 0b110000: packed low bits
    # first they straddle bytes as 0x04 0x03 0x03 (what onnx.numpy_helper writes).
    t = TensorProto(name="f6", data_type=27, dims=[3], raw_data=b"\x04\x03\x03")
    got = read(t)
    assert got.dtype == DType.FLOAT6E2M3.numpy
    assert got.astype(np.float32).tolist() == [0.5, 1.5, -2.0]
    with pytest.raises(InvalidModelError, match="needs 3"):
        read(TensorProto(name="f6", data_type=27, dims=[3], raw_data=b"\x04\x03"))


def test_unknown_and_undefined_element_types() -> None:
    with pytest.raises(InvalidModelError, match="unknown element type 99"):
        read(TensorProto(name="t", data_type=99, dims=[1]))
    with pytest.raises(InvalidModelError, match="no element type"):
        read(TensorProto(name="t", data_type=0, dims=[1]))


# -- validation before allocation ------------------------------------------------------------
def test_raw_data_size_mismatch_names_tensor() -> None:
    t = TensorProto(name="weights", data_type=TensorProto.FLOAT, dims=[1000, 1000],
                    raw_data=b"\0" * 16)
    with pytest.raises(InvalidModelError, match=r"'weights'.*raw_data holds 16 bytes.*needs "
                                                r"4000000"):
        read(t)


def test_packed_raw_size_mismatch() -> None:
    t = TensorProto(name="q", data_type=TensorProto.INT4, dims=[5], raw_data=b"\0\0")
    with pytest.raises(InvalidModelError, match=r"'q'.*2 bytes.*needs 3"):
        read(t)


def test_typed_field_length_mismatch() -> None:
    t = helper.make_tensor("w", TensorProto.FLOAT, [3], [1.0, 2.0, 3.0])
    t.dims[0] = 4
    with pytest.raises(InvalidModelError, match=r"'w'.*holds 3 values.*needs 4"):
        read(t)
    missing = TensorProto(name="m", data_type=TensorProto.INT64, dims=[2])
    with pytest.raises(InvalidModelError, match=r"'m'.*holds 0 values"):
        read(missing)


def test_negative_dim_and_segment_and_string_raw() -> None:
    with pytest.raises(InvalidModelError, match="negative dimension"):
        read(TensorProto(name="n", data_type=TensorProto.FLOAT, dims=[-1], raw_data=b""))
    seg = numpy_helper.from_array(np.zeros(2, np.float32), "s")
    seg.segment.begin, seg.segment.end = 0, 1
    with pytest.raises(NotImplementedFeatureError, match="segments"):
        read(seg)
    with pytest.raises(InvalidModelError, match="'s' uses raw_data; string tensors must use string_data"):
        read(TensorProto(name="s", data_type=TensorProto.STRING, dims=[1], raw_data=b"a"))


def test_memory_limit_refuses_big_tensor() -> None:
    t = numpy_helper.from_array(np.zeros(1000, np.float32), "big")
    assert read(t, memory_limit=4000).size == 1000
    with pytest.raises(MemoryLimitError, match=r"'big' needs 4000 bytes.*memory_limit=3999"):
        read(t, memory_limit=3999)


def test_memory_limit_counts_all_constants() -> None:
    a = numpy_helper.from_array(np.zeros(100, np.float32), "a")
    b = numpy_helper.from_array(np.zeros(100, np.float32), "b")
    graph = helper.make_graph([], "g", [], [helper.make_tensor_value_info("a", 1, [100])], [a, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert len(from_onnx(model, memory_limit=800).graph.initializers) == 2
    with pytest.raises(MemoryLimitError, match=r"'b'.*800 bytes.*memory_limit=799"):
        from_onnx(model, memory_limit=799)


# -- sparse ----------------------------------------------------------------------------------
def test_sparse_tensor_densified_linear_and_coordinate_indices() -> None:
    values = numpy_helper.from_array(np.array([5, 7], np.int32), "sp")
    linear = helper.make_sparse_tensor(values, numpy_helper.from_array(np.array([1, 4])), [2, 3])
    dense, dtype = TensorReader().sparse_to_array(linear, "sparse")
    assert dtype is DType.INT32
    np.testing.assert_array_equal(dense, [[0, 5, 0], [0, 7, 0]])
    coords = helper.make_sparse_tensor(
        values, numpy_helper.from_array(np.array([[0, 1], [1, 1]], np.int64)), [2, 3])
    np.testing.assert_array_equal(TensorReader().sparse_to_array(coords, "s")[0], dense)
    # Our sparse export decodes back to the same dense array.
    again = TensorReader().sparse_to_array(array_to_sparse(dense, "sp"), "s")[0]
    np.testing.assert_array_equal(again, dense)


def test_sparse_out_of_range_index_refused() -> None:
    values = numpy_helper.from_array(np.array([1.0], np.float32), "sp")
    bad = helper.make_sparse_tensor(values, numpy_helper.from_array(np.array([6])), [2, 3])
    with pytest.raises(InvalidModelError, match="out of range"):
        TensorReader().sparse_to_array(bad, "s")


def test_sparse_initializer_becomes_dense_initializer() -> None:
    values = numpy_helper.from_array(np.array([2.0, 3.0], np.float32), "w")
    sp = helper.make_sparse_tensor(values, numpy_helper.from_array(np.array([0, 3])), [2, 2])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [y],
                              sparse_initializer=[sp])
    model = from_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    w = model.graph.initializers["w"]
    np.testing.assert_array_equal(w.const_value, [[2, 0], [0, 3]])
    onnx.checker.check_model(to_onnx(model))


# -- value types -----------------------------------------------------------------------------
def test_type_protos_round_trip() -> None:
    protos = [
        helper.make_tensor_type_proto(TensorProto.FLOAT, ["batch", 3, None]),
        helper.make_tensor_type_proto(TensorProto.INT64, []),
        helper.make_tensor_type_proto(TensorProto.BFLOAT16, None),
        helper.make_sequence_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, [2])),
        helper.make_optional_type_proto(helper.make_sequence_type_proto(
            helper.make_tensor_type_proto(TensorProto.STRING, ["n"]))),
        helper.make_map_type_proto(TensorProto.INT64,
                                   helper.make_tensor_type_proto(TensorProto.FLOAT, [])),
    ]
    expected = [
        TensorInfo(DType.FLOAT, ("batch", 3, None)),
        TensorInfo(DType.INT64, ()),
        TensorInfo(DType.BFLOAT16, None),
        SequenceInfo(TensorInfo(DType.FLOAT, (2,))),
        OptionalInfo(SequenceInfo(TensorInfo(DType.STRING, ("n",)))),
        MapInfo(DType.INT64, TensorInfo(DType.FLOAT, ())),
    ]
    for proto, want in zip(protos, expected):
        got = type_from_proto(proto, "v")
        assert got == want
        assert type_to_proto(got) == proto


def test_sparse_tensor_type_reads_as_tensor() -> None:
    tp = helper.make_sparse_tensor_type_proto(TensorProto.FLOAT, [4, "k"])
    assert type_from_proto(tp, "v") == TensorInfo(DType.FLOAT, (4, "k"))


def test_unknown_type_element_refused() -> None:
    tp = helper.make_tensor_type_proto(TensorProto.FLOAT, [1])
    tp.tensor_type.elem_type = 77
    with pytest.raises(InvalidModelError, match=r"'x'.*unknown element type 77"):
        type_from_proto(tp, "graph input 'x'")


def test_empty_type_is_none() -> None:
    assert type_from_proto(onnx.TypeProto(), "v") is None
    assert type_to_proto(None) == onnx.TypeProto()


# -- external data ---------------------------------------------------------------------------
def _external_model(tmp_path, location: str, *, offset: int = 0, length: int | None = None,
                     data: bytes | None = None) -> onnx.ModelProto:
    arr = np.arange(6, dtype=np.float32)
    if data is not None:
        (tmp_path / "weights.bin").write_bytes(data)
    t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[6])
    t.data_location = TensorProto.EXTERNAL
    entries = [("location", location), ("offset", str(offset))]
    if length is not None:
        entries.append(("length", str(length)))
    for k, v in entries:
        e = t.external_data.add()
        e.key, e.value = k, v
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [6])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [6])
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [y], [t])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert arr.nbytes == 24
    return model


def _save(model: onnx.ModelProto, path) -> str:
    path = str(path)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    return path


def test_external_data_read_at_offset(tmp_path) -> None:
    arr = np.arange(6, dtype=np.float32)
    model = _external_model(tmp_path, "weights.bin", offset=8, length=24,
                            data=b"\xab" * 8 + arr.tobytes() + b"\xcd" * 4)
    path = _save(model, tmp_path / "m.onnx")
    got = load_onnx(path).graph.initializers["w"].const_value
    np.testing.assert_array_equal(got, arr)
    # Same answer as ONNX's own loader.
    np.testing.assert_array_equal(
        numpy_helper.to_array(onnx.load(path).graph.initializer[0]), got)
    # As bytes, it needs the folder.
    with pytest.raises(InvalidModelError, match=r"'w'.*weights.bin.*base_dir"):
        load_onnx(Path(path).read_bytes())
    np.testing.assert_array_equal(
        load_onnx(Path(path).read_bytes(), base_dir=str(tmp_path))
        .graph.initializers["w"].const_value, arr)
    np.testing.assert_array_equal(
        from_onnx(model, base_dir=str(tmp_path)).graph.initializers["w"].const_value, arr)


def test_external_data_in_subfolder(tmp_path) -> None:
    (tmp_path / "data").mkdir()
    arr = np.arange(6, dtype=np.float32)
    (tmp_path / "data" / "w.bin").write_bytes(arr.tobytes())
    model = _external_model(tmp_path, "data/w.bin")
    got = load_onnx(_save(model, tmp_path / "m.onnx")).graph.initializers["w"].const_value
    np.testing.assert_array_equal(got, arr)


def test_external_absolute_path_refused(tmp_path) -> None:
    data = tmp_path / "weights.bin"
    data.write_bytes(b"\0" * 24)
    path = _save(_external_model(tmp_path, str(data)), tmp_path / "m.onnx")
    with pytest.raises(InvalidModelError, match="absolute path"):
        load_onnx(path)


def test_external_dotdot_escape_refused(tmp_path) -> None:
    (tmp_path / "secret.bin").write_bytes(b"\0" * 24)
    sub = tmp_path / "model"
    sub.mkdir()
    path = _save(_external_model(sub, "../secret.bin"), sub / "m.onnx")
    with pytest.raises(InvalidModelError, match=r"leaves the model's folder"):
        load_onnx(path)


def test_external_symlink_out_of_folder_refused(tmp_path) -> None:
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"\0" * 24)
    sub = tmp_path / "model"
    sub.mkdir()
    os.symlink(outside, sub / "weights.bin")
    path = _save(_external_model(sub, "weights.bin"), sub / "m.onnx")
    with pytest.raises(InvalidModelError, match=r"outside the model's folder"):
        load_onnx(path)


def test_external_symlink_inside_folder_allowed(tmp_path) -> None:
    arr = np.arange(6, dtype=np.float32)
    (tmp_path / "real.bin").write_bytes(arr.tobytes())
    os.symlink(tmp_path / "real.bin", tmp_path / "weights.bin")
    path = _save(_external_model(tmp_path, "weights.bin"), tmp_path / "m.onnx")
    np.testing.assert_array_equal(load_onnx(path).graph.initializers["w"].const_value, arr)


def test_external_offset_beyond_file_refused(tmp_path) -> None:
    model = _external_model(tmp_path, "weights.bin", offset=100, data=b"\0" * 24)
    with pytest.raises(InvalidModelError, match=r"offset 100 is beyond the end.*24 bytes"):
        load_onnx(_save(model, tmp_path / "m.onnx"))


def test_external_truncated_file_refused(tmp_path) -> None:
    model = _external_model(tmp_path, "weights.bin", offset=8, data=b"\0" * 24)
    with pytest.raises(InvalidModelError, match=r"needs bytes 8\.\.32.*only 24 bytes"):
        load_onnx(_save(model, tmp_path / "m.onnx"))


def test_external_wrong_length_and_missing_file(tmp_path) -> None:
    model = _external_model(tmp_path, "weights.bin", length=20, data=b"\0" * 24)
    with pytest.raises(InvalidModelError, match=r"length 20 does not match the 24 bytes"):
        load_onnx(_save(model, tmp_path / "m.onnx"))
    model = _external_model(tmp_path, "nothere.bin")
    with pytest.raises(InvalidModelError, match=r"'nothere.bin' not found"):
        load_onnx(_save(model, tmp_path / "m2.onnx"))


def test_external_memory_limit_checked_before_reading(tmp_path) -> None:
    model = _external_model(tmp_path, "weights.bin", data=b"\0" * 24)
    path = _save(model, tmp_path / "m.onnx")
    with pytest.raises(MemoryLimitError, match="'w'"):
        load_onnx(path, memory_limit=10)


def _weights_model() -> Model:
    g = Graph("w")
    x = g.add_input(Value("x", TensorInfo(DType.FLOAT, ("n", 64))))
    big = g.add_initializer("big", np.arange(64 * 64, dtype=np.float32).reshape(64, 64))
    small = g.add_initializer("small", np.ones(3, np.int64))
    q = g.add_initializer("q", np.arange(2000).astype(DType.INT4.numpy))
    mm = g.make_node("MatMul", [x, big])
    g.add_output(mm.outputs[0])
    g.add_output(small)
    g.add_output(q)
    return Model(g, producer_name="test")


def test_save_with_external_data(tmp_path) -> None:
    model = _weights_model()
    path = tmp_path / "ext.onnx"
    save_onnx(model, path, external_data=True)
    data_file = tmp_path / "ext.onnx.data"
    assert data_file.exists()
    proto = onnx.load(str(path), load_external_data=False)
    stored = {t.name: t.data_location for t in proto.graph.initializer}
    assert stored == {"big": TensorProto.EXTERNAL, "small": TensorProto.DEFAULT,
                      "q": TensorProto.DEFAULT}  # q packs to 1000 bytes: below the threshold
    # ONNX's loader (the oracle) reads what we wrote.
    full = onnx.load(str(path))
    onnx.checker.check_model(full)
    by_name = {t.name: numpy_helper.to_array(t) for t in full.graph.initializer}
    for name, value in model.graph.initializers.items():
        same(by_name[name], value.const_value)
    # And so do we.
    again = load_onnx(path)
    for name, value in model.graph.initializers.items():
        same(again.graph.initializers[name].const_value, value.const_value)


def test_save_chooses_external_data_above_threshold(tmp_path, monkeypatch) -> None:
    import pyflame_rt.io.onnx as onnx_io

    save_onnx(_weights_model(), tmp_path / "one.onnx")
    assert not (tmp_path / "one.onnx.data").exists()
    monkeypatch.setattr(onnx_io, "EXTERNAL_DATA_THRESHOLD", 10_000)
    save_onnx(_weights_model(), tmp_path / "two.onnx")
    assert (tmp_path / "two.onnx.data").stat().st_size >= 64 * 64 * 4
    save_onnx(_weights_model(), tmp_path / "three.onnx", external_data=False)
    assert not (tmp_path / "three.onnx.data").exists()
    np.testing.assert_array_equal(
        load_onnx(tmp_path / "two.onnx").graph.initializers["big"].const_value,
        np.arange(64 * 64, dtype=np.float32).reshape(64, 64))


def test_typed_values_out_of_range_do_not_crash() -> None:
    t = TensorProto(name="i8", data_type=TensorProto.INT8, dims=[2])
    t.int32_data.extend([300, -1])
    got = read(t)
    assert got.dtype == np.int8 and got.tolist() == [np.int8(300 - 256), -1]
    u = TensorProto(name="u32", data_type=TensorProto.UINT32, dims=[1])
    u.uint64_data.append(2**33 + 5)
    assert read(u).tolist() == [5]


def test_sparse_with_huge_shape_refused() -> None:
    values = numpy_helper.from_array(np.array([1.0], np.float32), "sp")
    sp = helper.make_sparse_tensor(values, numpy_helper.from_array(np.array([[0, 0]])),
                                   [2**40, 2**40])
    with pytest.raises(InvalidModelError, match="'sp'"):
        TensorReader().sparse_to_array(sp, "sparse")
    with pytest.raises(MemoryLimitError, match="'sp'"):
        TensorReader(memory_limit=10**6).sparse_to_array(sp, "sparse")
