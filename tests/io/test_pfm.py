"""The native .pfm format: round trips, memory mapping, and hostile files.

The file layout is parsed and re-packed here independently of ``pyflame_rt.io.pfm`` (following
the layout in its module docstring), so the tests check the documented format, not merely
that the writer and the reader agree with each other.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import struct
import time
import tracemalloc
from datetime import timedelta
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyflame_rt.errors import (
    InvalidArgumentError,
    InvalidGraphError,
    InvalidModelError,
    ModelNotFoundError,
    PyFlameRTError,
)
from pyflame_rt.io.pfm import dumps_pfm, is_pfm, load_pfm, loads_pfm, save_pfm
from pyflame_rt.ir import Graph, Model, Node, Value, verify
from pyflame_rt.types import DType, MapInfo, OptionalInfo, SequenceInfo, TensorInfo

MAGIC = b"PFMODEL\0"


# -- an independent reader/writer of the documented layout ----------------------------------
def unpack(data: bytes) -> tuple[dict, dict, list, list[bytes]]:
    """(metadata, graph, tensor table, each tensor's bytes) of a .pfm file."""
    assert data[:8] == MAGIC
    version, meta_len = struct.unpack_from("<II", data, 8)
    assert version == 1
    meta = json.loads(data[16:16 + meta_len])
    total, graph_len, table_len = struct.unpack_from("<QQQ", data, 16 + meta_len)
    assert total == len(data)
    graph_at = 16 + meta_len + 24
    graph = json.loads(data[graph_at:graph_at + graph_len])
    table = json.loads(data[graph_at + graph_len:graph_at + graph_len + table_len])
    blobs = [data[e["offset"]:e["offset"] + e["length"]] for e in table]
    return meta, graph, table, blobs


def pack(meta: Any, graph: Any, table: list, blobs: list[bytes], *,
         fix_offsets: bool = True, after_layout=None) -> bytes:
    """Assemble a file. With ``fix_offsets`` each blob is placed at the next 64-byte boundary
    and the table's offsets/lengths are set to match; ``after_layout(table)`` may then change
    the table (blobs stay where the layout put them). Without ``fix_offsets`` the table's
    offsets are used as they are."""
    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

    meta_b, graph_b = dumps(meta), dumps(graph)
    head_len = 16 + len(meta_b) + 24 + len(graph_b)
    data_start = 0
    while True:
        places = []
        if fix_offsets:
            pos = data_start
            for entry, blob in zip(table, blobs):
                entry["offset"], entry["length"] = pos, len(blob)
                places.append(pos)
                pos = -(-(pos + len(blob)) // 64) * 64
            if after_layout is not None:
                after_layout(table)
        else:
            places = [e.get("offset") if isinstance(e, dict) else None for e in table]
        table_b = dumps(table)
        needed = -(-(head_len + len(table_b)) // 64) * 64
        if needed <= data_start:
            break
        data_start = needed
    body = bytearray(data_start)
    for place, blob in zip(places, blobs):
        if isinstance(place, int) and 0 <= place < 1 << 24:
            end = place + len(blob)
            if end > len(body):
                body.extend(bytes(end - len(body)))
            body[place:end] = blob
    header = (MAGIC + struct.pack("<II", 1, len(meta_b)) + meta_b
              + struct.pack("<QQQ", len(body), len(graph_b), len(table_b)) + graph_b + table_b)
    body[:len(header)] = header
    return bytes(body)


def repack(data: bytes, edit) -> bytes:
    """Unpack ``data``, let ``edit(meta, graph, table, blobs)`` change it, pack it again.

    ``edit`` may return a function that edits the tensor table after the layout is done."""
    meta, graph, table, blobs = unpack(data)
    after = edit(meta, graph, table, blobs)
    return pack(meta, graph, table, blobs, after_layout=after if callable(after) else None)


# -- models ---------------------------------------------------------------------------------
def every_dtype_array(dtype: DType) -> np.ndarray:
    """A small array of ``dtype`` with edge values (nan/inf where the type has them)."""
    if dtype is DType.STRING:
        return np.array([["ascii", "ünïcødé ✓"], ["", "emoji 🔥"]], dtype=object)
    if dtype is DType.BOOL:
        return np.array([True, False, True])
    if dtype in (DType.COMPLEX64, DType.COMPLEX128):
        return np.array([1 + 2j, -0.5j, complex(math.inf, math.nan)], dtype=dtype.numpy)
    npdt = dtype.numpy
    if dtype.is_float:
        info = ml_dtypes.finfo(npdt)
        values = [0.0, -0.0, 1.0, float(info.max), float(info.min), float(info.tiny)]
        values = [v for v in values if not (dtype is DType.FLOAT8E8M0 and v <= 0)]
        arr = np.array(values, dtype=np.float64).astype(npdt)
        if dtype in (DType.FLOAT, DType.DOUBLE, DType.FLOAT16, DType.BFLOAT16):
            arr = np.concatenate([arr, np.array([np.nan, np.inf, -np.inf]).astype(npdt)])
        return arr.reshape(-1, 1) if arr.size % 2 else arr.reshape(2, -1)
    info = ml_dtypes.iinfo(npdt)
    return np.array([int(info.min), 0, 1, int(info.max)], dtype=npdt).reshape(2, 2)


def build_model() -> Model:
    """A model exercising every part of the format the IR can express."""
    g = Graph("main")
    g.doc_string = "the main graph"
    g.opset_imports = {"": 21, "com.example": 3}
    x = g.add_input(Value("x", TensorInfo(DType.FLOAT, ("batch", 3, None))))
    x.doc_string = "the image"
    seq = g.add_input(Value("seq_in", SequenceInfo(TensorInfo(DType.INT64, (None,)))))
    g.add_input(Value("opt_in", OptionalInfo(SequenceInfo(TensorInfo(DType.FLOAT, None)))))
    g.add_input(Value("map_in", MapInfo(DType.STRING, TensorInfo(DType.FLOAT, ()))))
    g.add_input(Value("untyped", None))
    cond = g.add_input(Value("cond", TensorInfo(DType.BOOL, ())))
    w = g.add_initializer("w", np.arange(6, dtype=np.float32).reshape(3, 2))
    w.doc_string = "weights"
    # An overridable initializer: an initializer listed among the inputs too.
    bias = g.add_initializer("bias", np.array([0.5, -0.5], dtype=np.float32))
    g.add_input(bias)
    for dtype in DType:
        g.add_initializer(f"init_{dtype.name.lower()}", every_dtype_array(dtype))
    g.add_initializer("empty", np.zeros((0, 3), np.float32))
    g.add_initializer("scalar", np.array(7, np.int64))
    g.add_initializer("transposed", np.arange(12, dtype=np.int32).reshape(3, 4).T)
    g.add_initializer("big_endian", np.arange(4, dtype=">f8"), dtype=DType.DOUBLE)

    mm = Value("mm", TensorInfo(DType.FLOAT, ("batch", 3, 2)))
    g.insert_node(Node("MatMul", [x, w], [mm], name="matmul"))
    added = Value("added", None)  # an intermediate value whose type is unknown
    add = Node("Add", [mm, bias], [added], name="add")
    add.doc_string = "adds the bias"
    g.insert_node(add)

    # Attributes of every kind.
    tensor_attr = np.array([[1.5, 2.5]], np.float16)
    attrs = {
        "i": 3, "neg": -7, "huge": 2**62, "flag": True,
        "f": 0.1, "neg_zero": -0.0, "nan": math.nan, "inf": math.inf, "ninf": -math.inf,
        "s": "ünïcødé", "raw": b"\x00\xff\xfe not utf-8", "t": tensor_attr,
        "ints": [1, -2, 3], "floats": [1.0, math.nan, -math.inf], "strings": ["a", "b"],
        "empty": [], "tensors": [np.array([1, 2], np.int8), np.array(["s"], dtype=object)],
        "tvalue": TensorInfo(DType.BFLOAT16, (2, "n")),
        "types": [SequenceInfo(None), OptionalInfo(TensorInfo(DType.INT4, None))],
        "dtype": DType.FLOAT8E5M2, "np_scalar": np.float32(2.5), "tup": (1, "two"),
        "nothing": None,
    }
    many = g.insert_node(Node("Custom", [added, None, seq], [Value("c0"), None, Value("c2")],
                              attrs, domain="com.example", name="custom"))
    many.attr_types = {"i": 2, "f": 1, "ints": 7, "empty": 7, "t": 4}

    # If with both branches capturing outer values; the then-branch nests a Loop whose body
    # captures a value two levels up.
    then_g = Graph("then_branch", parent=g)
    loop = Graph("loop_body", parent=then_g)
    it = loop.add_input(Value("iter", TensorInfo(DType.INT64, ())))
    cin = loop.add_input(Value("cond_in", TensorInfo(DType.BOOL, ())))
    deep = Value("deep", TensorInfo(DType.FLOAT, None))
    loop.insert_node(Node("Mul", [w, w], [deep], name="deep_mul"))  # w is two levels up
    cout = Value("cond_out")
    loop.insert_node(Node("Identity", [cin], [cout], name="cond_id"))
    loop.add_output(cout)
    loop.add_output(deep)
    del it
    then_out = Value("then_out", TensorInfo(DType.FLOAT, None))
    then_g.insert_node(Node("Loop", [None, cond], [Value("loop_deep"), then_out],
                            {"body": loop}, name="loop"))
    then_g.add_output(then_out)
    else_g = Graph("else_branch", parent=g)
    else_g.add_initializer("else_const", np.ones((3, 2), np.float32))
    else_out = Value("else_out")
    else_g.insert_node(Node("Add", [w, else_g.initializers["else_const"]], [else_out],
                            name="else_add"))
    else_g.add_output(else_out)
    if_out = Value("if_out", TensorInfo(DType.FLOAT, (3, 2)))
    g.insert_node(Node("If", [cond], [if_out],
                       {"then_branch": then_g, "else_branch": else_g,
                        "graphs": [Graph("unused_a", parent=g), Graph("unused_b", parent=g)]},
                       name="if"))
    g.value_info["mm"] = TensorInfo(DType.FLOAT, ("batch", 3, 2))
    g.add_output(added)
    g.add_output(if_out)
    g.add_output(w)  # an initializer as a graph output
    verify(g)
    return Model(g, ir_version=9, producer_name="pyflame-test", producer_version="1.2.3",
                 domain="org.test", model_version=42, doc_string="a doc string",
                 metadata_props={"author": "me", "ünï": "cødé"})


# -- comparison -----------------------------------------------------------------------------
def assert_same_array(a: Any, b: Any, where: str) -> None:
    assert isinstance(b, type(a)), (where, type(a), type(b))
    if isinstance(a, np.generic):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype, where
    if a.dtype.kind in "OUS":
        assert b.dtype == object, where
        assert a.shape == b.shape, where
        for ea, eb in zip(a.reshape(-1).tolist(), b.reshape(-1).tolist()):
            assert type(ea) is type(eb) and ea == eb, (where, ea, eb)
        return
    assert a.dtype.newbyteorder("=") == b.dtype, (where, a.dtype, b.dtype)
    assert a.shape == b.shape, where
    # Bitwise: nan payloads, -0.0 and every narrow-type bit pattern must survive.
    assert np.ascontiguousarray(a.astype(b.dtype)).tobytes() == b.tobytes(), where


def assert_same_attr(a: Any, b: Any, where: str, values: dict) -> None:
    if isinstance(a, Graph):
        assert isinstance(b, Graph), where
        assert_same_graph(a, b, values)
    elif isinstance(a, (np.ndarray, np.generic)):
        assert_same_array(a, b, where)
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), (where, a, b)
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_attr(x, y, f"{where}[{i}]", values)
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), where
    else:
        assert type(a) is type(b) and a == b, (where, a, b)
        if isinstance(a, float):
            assert math.copysign(1, a) == math.copysign(1, b), where


def assert_same_graph(a: Graph, b: Graph, values: dict | None = None) -> None:
    """Structural equality; ``values`` maps id(value of a) -> value of b, so a reference
    (including an outer-scope capture) must resolve to the *same object* in b."""
    values = {} if values is None else values

    def same_value(va: Value, vb: Value, where: str) -> None:
        assert vb.name == va.name and vb.type == va.type, (where, va, vb)
        assert vb.doc_string == va.doc_string, where
        assert vb.graph is not None
        values[id(va)] = vb

    assert (b.name, b.doc_string, b.value_info) == (a.name, a.doc_string, a.value_info)
    for name, va in a.initializers.items():
        vb = b.initializers[name]
        same_value(va, vb, f"initializer {name}")
        assert_same_array(va.const_value, vb.const_value, f"initializer {name}")
    assert len(a.inputs) == len(b.inputs)
    for va, vb in zip(a.inputs, b.inputs):
        if va.is_initializer:
            assert vb is values[id(va)], va.name  # the input *is* the initializer
        else:
            same_value(va, vb, f"input {va.name}")
    assert list(b.initializers) == list(a.initializers)
    assert len(a.nodes) == len(b.nodes)
    for na, nb in zip(a.nodes, b.nodes):
        where = na.describe()
        assert (nb.op_type, nb.domain, nb.name, nb.doc_string, nb.attr_types) == \
            (na.op_type, na.domain, na.name, na.doc_string, na.attr_types), where
        assert nb.graph is b
        assert len(na.inputs) == len(nb.inputs), where
        for ia, ib in zip(na.inputs, nb.inputs):
            assert (ib is None) if ia is None else (ib is values[id(ia)]), (where, ia, ib)
        assert list(nb.attrs) == list(na.attrs), where
        for key in na.attrs:
            assert_same_attr(na.attrs[key], nb.attrs[key], f"{where} .{key}", values)
        for sub in nb.subgraphs():
            assert sub.parent is b
        assert len(na.outputs) == len(nb.outputs), where
        for oa, ob in zip(na.outputs, nb.outputs):
            if oa is None:
                assert ob is None, where
            else:
                same_value(oa, ob, f"{where} output")
                assert ob.producer is nb
    assert [values[id(v)] for v in a.outputs] == list(b.outputs)
    assert all(x is y for x, y in zip([values[id(v)] for v in a.outputs], b.outputs))


def assert_same_model(a: Model, b: Model) -> None:
    for key in ("ir_version", "producer_name", "producer_version", "domain", "model_version",
                "doc_string", "metadata_props", "opset_imports"):
        assert getattr(b, key) == getattr(a, key), key
    assert_same_graph(a.graph, b.graph)


def array_backing(arr: np.ndarray) -> Any:
    """The non-ndarray object at the end of an array's ``base`` chain."""
    obj = arr
    while isinstance(obj, np.ndarray):
        obj = obj.base
    if isinstance(obj, memoryview):
        obj = obj.obj
    return obj


@pytest.fixture(scope="module")
def model() -> Model:
    return build_model()


@pytest.fixture(scope="module")
def data(model: Model) -> bytes:
    return dumps_pfm(model)


# -- round trips ----------------------------------------------------------------------------
def test_round_trip_bytes(model: Model, data: bytes) -> None:
    loaded = loads_pfm(data)
    assert_same_model(model, loaded)
    # Deterministic: saving what was loaded gives the same bytes.
    assert dumps_pfm(loaded) == data


@pytest.mark.parametrize("use_mmap", [True, False])
def test_round_trip_file(model: Model, tmp_path, use_mmap: bool) -> None:
    path = tmp_path / "m.pfm"
    save_pfm(model, path)
    assert path.read_bytes() == dumps_pfm(model)
    assert_same_model(model, load_pfm(path, mmap=use_mmap))
    assert_same_model(model, load_pfm(str(path), mmap=use_mmap))
    assert [p.name for p in tmp_path.iterdir()] == ["m.pfm"]  # no temp file left behind


def test_metadata_in_header_is_readable_json(model: Model, data: bytes) -> None:
    meta, graph, table, _ = unpack(data)
    assert meta["producer_name"] == "pyflame-test"
    assert meta["producer_version"] == "1.2.3"
    assert meta["domain"] == "org.test"
    assert meta["model_version"] == 42
    assert meta["ir_version"] == 9
    assert meta["doc_string"] == "a doc string"
    assert meta["metadata_props"] == {"author": "me", "ünï": "cødé"}
    assert meta["opset_imports"] == {"": 21, "com.example": 3}
    assert graph["name"] == "main"
    assert {e["name"] for e in table} >= {"w", "bias", "init_bfloat16"}


@pytest.mark.parametrize("dtype", list(DType), ids=lambda d: d.name.lower())
def test_every_dtype(dtype: DType, tmp_path) -> None:
    g = Graph("g")
    arr = every_dtype_array(dtype)
    value = g.add_initializer("t", arr)
    g.add_output(value)
    node_out = Value("out", TensorInfo(dtype, ("n", 2)))
    g.insert_node(Node("Constant", [], [node_out], {"value": arr}, name="const"))
    g.add_output(node_out)
    m = Model(g)
    path = tmp_path / "t.pfm"
    save_pfm(m, path)
    for loaded in (load_pfm(path), load_pfm(path, mmap=False), loads_pfm(path.read_bytes())):
        out = loaded.graph.initializers["t"]
        assert out.type == TensorInfo(dtype, arr.shape)
        assert_same_array(arr, out.const_value, dtype.name)
        assert_same_array(arr, loaded.graph.nodes[0].attrs["value"], dtype.name)
        assert loaded.graph.nodes[0].outputs[0].type == node_out.type
    # Both references are the same array object, stored once.
    _, _, table, _ = unpack(path.read_bytes())
    assert len(table) == 1 and table[0]["dtype"] == dtype.value
    if dtype.itemsize in (0.5, 0.25):
        assert table[0]["length"] == arr.size  # documented: one element per byte


def test_string_tensor_encoding_is_documented_layout() -> None:
    g = Graph("g")
    g.add_output(g.add_initializer("s", np.array(["hé", b"\xff"], dtype=object)))
    _, _, _, blobs = unpack(dumps_pfm(Model(g)))
    assert blobs[0] == b"\x00" + struct.pack("<I", 3) + "hé".encode() + \
        b"\x01" + struct.pack("<I", 1) + b"\xff"


def test_numpy_fixed_width_strings_load_as_object_arrays() -> None:
    g = Graph("g")
    g.add_output(g.add_initializer("u", np.array(["ab", "c"])))
    g.add_output(g.add_initializer("b", np.array([b"ab", b"c"])))
    loaded = loads_pfm(dumps_pfm(Model(g))).graph.initializers
    assert loaded["u"].const_value.tolist() == ["ab", "c"]
    assert loaded["b"].const_value.tolist() == [b"ab", b"c"]


# -- memory mapping -------------------------------------------------------------------------
def test_tensors_are_memory_mapped_and_aligned(model: Model, tmp_path) -> None:
    path = tmp_path / "m.pfm"
    save_pfm(model, path)
    raw = path.read_bytes()
    _, _, table, _ = unpack(raw)
    meta_len = struct.unpack_from("<I", raw, 12)[0]
    _, graph_len, table_len = struct.unpack_from("<QQQ", raw, 16 + meta_len)
    header_end = 16 + meta_len + 24 + graph_len + table_len
    for entry in table:
        assert entry["offset"] % 64 == 0, entry
        assert entry["offset"] >= header_end, entry
    loaded = load_pfm(path)
    mapped = 0
    for name, value in loaded.graph.initializers.items():
        arr = value.const_value
        if arr.dtype == object or arr.size == 0:
            continue
        assert not arr.flags.owndata, name
        assert not arr.flags.writeable, name
        assert isinstance(array_backing(arr), mmap.mmap), name
        assert arr.ctypes.data % 64 == 0, name
        mapped += 1
    assert mapped > 20
    tensor_attr = loaded.graph.nodes[2].attrs["t"]
    assert isinstance(array_backing(tensor_attr), mmap.mmap)
    with pytest.raises(ValueError):
        loaded.graph.initializers["w"].const_value[0, 0] = 1.0  # read-only view


def test_mmap_false_reads_into_memory(model: Model, tmp_path) -> None:
    path = tmp_path / "m.pfm"
    save_pfm(model, path)
    arr = load_pfm(path, mmap=False).graph.initializers["w"].const_value
    assert isinstance(array_backing(arr), bytes)
    np.testing.assert_array_equal(arr, np.arange(6, dtype=np.float32).reshape(3, 2))


def test_save_over_a_mapped_file_keeps_the_old_model_valid(tmp_path) -> None:
    path = tmp_path / "m.pfm"
    g = Graph("g")
    g.add_output(g.add_initializer("w", np.full(1000, 3.0, np.float32)))
    save_pfm(Model(g), path)
    old = load_pfm(path).graph.initializers["w"].const_value
    g2 = Graph("g")
    g2.add_output(g2.add_initializer("w", np.full(10, 5.0, np.float32)))
    save_pfm(Model(g2), path)  # would SIGBUS the old mapping if it truncated in place
    assert float(old.sum()) == 3000.0
    assert load_pfm(path).graph.initializers["w"].const_value.tolist() == [5.0] * 10


def test_resave_a_mapped_model_to_its_own_path(model: Model, tmp_path) -> None:
    path = tmp_path / "m.pfm"
    save_pfm(model, path)
    loaded = load_pfm(path)  # its tensors are views of the file being replaced
    save_pfm(loaded, path)
    assert_same_model(model, load_pfm(path))
    assert_same_model(model, loaded)


# -- is_pfm and argument errors -------------------------------------------------------------
def test_is_pfm(data: bytes, tmp_path) -> None:
    path = tmp_path / "m.pfm"
    path.write_bytes(data)
    assert is_pfm(data) and is_pfm(bytearray(data)) and is_pfm(path) and is_pfm(str(path))
    assert not is_pfm(b"\x08\x07" + data)
    assert not is_pfm(b"PFMODEL")  # shorter than the magic
    other = tmp_path / "x.onnx"
    other.write_bytes(b"\x08\x07\x12\x04test")
    assert not is_pfm(other)
    assert not is_pfm(tmp_path / "missing.pfm")
    assert not is_pfm(tmp_path)  # a directory


def test_missing_file(tmp_path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist") as info:
        load_pfm(tmp_path / "nope.pfm")
    assert isinstance(info.value, FileNotFoundError)


def test_bad_arguments(data: bytes, tmp_path) -> None:
    with pytest.raises(InvalidArgumentError, match="expects bytes"):
        loads_pfm("not bytes")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="memory_limit"):
        loads_pfm(data, memory_limit=-1)
    with pytest.raises(InvalidArgumentError, match="file path"):
        load_pfm(123)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="cannot read|not a regular file"):
        load_pfm(tmp_path)
    if os.path.exists("/dev/zero"):  # would otherwise be read forever
        with pytest.raises(InvalidArgumentError, match="not a regular file"):
            load_pfm("/dev/zero", mmap=False)
        assert not is_pfm("/dev/zero")
    with pytest.raises(InvalidArgumentError, match="cannot write"):
        save_pfm(build_model(), tmp_path / "no_dir" / "m.pfm")
    with pytest.raises(InvalidArgumentError, match="expects a pyflame_rt.ir.Model"):
        dumps_pfm(Graph("g"))  # type: ignore[arg-type]


def test_save_refuses_what_it_cannot_store(tmp_path) -> None:
    g = Graph("g")
    x = g.add_input(Value("x", TensorInfo(DType.FLOAT, (1,))))
    y = Value("y")
    g.insert_node(Node("Weird", [x], [y], {"obj": object()}, name="weird"))
    g.add_output(y)
    with pytest.raises(InvalidModelError, match="attribute 'obj'.*type object"):
        dumps_pfm(Model(g))
    g2 = Graph("g")
    g2.add_output(g2.add_initializer("s", np.array(["a", None], dtype=object), dtype=DType.STRING))
    with pytest.raises(InvalidModelError, match="'s' holds a NoneType"):
        dumps_pfm(Model(g2))
    with pytest.raises(InvalidModelError, match="nested deeper than 64"):
        dumps_pfm(deep_model(66))
    assert list(tmp_path.iterdir()) == []


def deep_model(depth: int) -> Model:
    """If nodes nested ``depth`` levels, each branch passing the root input through."""
    root = Graph("root")
    x = root.add_input(Value("x", TensorInfo(DType.FLOAT, (1,))))
    cond = root.add_input(Value("c", TensorInfo(DType.BOOL, ())))
    graph, level_out = root, None
    for level in range(depth):
        body = Graph(f"b{level}", parent=graph)
        other = Graph(f"e{level}", parent=graph)
        other.add_output(x)
        out = Value(f"o{level}")
        graph.insert_node(Node("If", [cond], [out], {"then_branch": body,
                                                     "else_branch": other}, name=f"if{level}"))
        graph.add_output(out)
        graph, level_out = body, out
    inner = Value("inner")
    graph.insert_node(Node("Identity", [x], [inner], name="id"))
    graph.add_output(inner)
    del level_out
    return Model(root)


def test_nesting_within_the_bound_loads() -> None:
    m = deep_model(60)
    assert_same_model(m, loads_pfm(dumps_pfm(m)))


# -- hostile files --------------------------------------------------------------------------
def _raises(data: bytes, pattern: str, exc: type = InvalidModelError, **kwargs) -> Exception:
    with pytest.raises(exc, match=pattern) as info:
        loads_pfm(data, **kwargs)
    return info.value


def test_truncated_files(data: bytes) -> None:
    _raises(b"", "truncated: 0 bytes")
    _raises(data[:10], "truncated: 10 bytes")
    _raises(data[:30], "metadata size .* runs past the end")
    for cut in (60, len(data) // 2, len(data) - 1):
        _raises(data[:cut], "truncated")
    _raises(data + b"\0", "header says the file has .* bytes but it has")


def test_wrong_magic_and_version(data: bytes) -> None:
    _raises(b"NOTPFM\0\0" + data[8:], "not a .pfm file: it starts with")
    _raises(data[:8] + struct.pack("<I", 2) + data[12:], "unsupported .pfm format version 2")


def test_section_sizes_beyond_the_file(data: bytes) -> None:
    meta_len = struct.unpack_from("<I", data, 12)[0]
    _raises(data[:12] + struct.pack("<I", 0xFFFFFFFF) + data[16:], "metadata size 4294967295")
    at = 16 + meta_len
    for index, what in ((1, "graph section size"), (2, "tensor table size")):
        fields = list(struct.unpack_from("<QQQ", data, at))
        fields[index] = 2**63
        patched = data[:at] + struct.pack("<QQQ", *fields) + data[at + 24:]
        _raises(patched, f"{what} {2**63} runs past the end")


def test_bad_json(data: bytes) -> None:
    meta_len = struct.unpack_from("<I", data, 12)[0]
    broken = data[:16] + b"{" + b" " * (meta_len - 1) + data[16 + meta_len:]
    _raises(broken, "metadata is not valid JSON")
    latin = data[:16] + b"\xff" * meta_len + data[16 + meta_len:]
    _raises(latin, "metadata is not valid UTF-8")
    _raises(repack(data, lambda m, g, t, b: m.update(ir_version="10")),
            "'ir_version' must be an integer, got str")
    _raises(repack(data, lambda m, g, t, b: m.update(ir_version=True)),
            "'ir_version' must be an integer, got bool")
    _raises(repack(data, lambda m, g, t, b: m.pop("opset_imports")),
            "required field 'opset_imports' is missing")
    _raises(repack(data, lambda m, g, t, b: m["metadata_props"].update(k=1)),
            r"metadata_props\['k'\] must be a string")
    _raises(repack(data, lambda m, g, t, b: g.update(nodes={})),
            "field 'nodes' must be a list, got dict")
    _raises(repack(data, lambda m, g, t, b: g["nodes"][0].update(op_type=5)),
            "node #0: field 'op_type' must be a string, got int")
    _raises(repack(data, lambda m, g, t, b: g["inputs"][0].update(
        type={"tensor": 1, "shape": [-4]})), "shape dim -4 is negative")
    _raises(repack(data, lambda m, g, t, b: g["inputs"][0].update(
        type={"tensor": 99, "shape": []})), "99 is not an ONNX tensor element type")
    _raises(repack(data, lambda m, g, t, b: t.append("x")),
            "tensor table entry #.* must be an object")


def test_json_nan_constant_refused(data: bytes) -> None:
    def edit(m, g, t, b):
        g["nodes"][2]["attributes"]["f"] = {"float": "NAN_HERE"}
    patched = repack(data, edit).replace(b'"NAN_HERE"', b"NaN       ")
    # Keep the sizes right: the graph section is the same length after the swap.
    _raises(patched, "JSON constant NaN is not allowed")


def test_json_nesting_bomb(data: bytes) -> None:
    bomb = repack(data, lambda m, g, t, b: g.update(doc_string="Y" * 200_000))
    bomb = bomb.replace(b'"' + b"Y" * 200_000 + b'"', b"[" * 100_001 + b"]" * 100_001)
    _raises(bomb, "the graph section cannot be parsed")


def _tensor_edit(name: str, **changes):
    def after_layout(table):
        next(e for e in table if e["name"] == name).update(changes)
    return lambda m, g, t, b: after_layout


def test_tensor_entries_out_of_bounds(data: bytes) -> None:
    _raises(repack(data, _tensor_edit("w", offset=1 << 40)), "'w': claims 24 bytes at offset")
    _raises(repack(data, _tensor_edit("w", offset=64)), "'w': offset 64 overlaps the header")
    _raises(repack(data, _tensor_edit("w", offset=65)), "offset 65 is not a multiple of 64")
    _raises(repack(data, _tensor_edit("w", length=-1)), "negative offset")
    _raises(repack(data, _tensor_edit("w", length=28)),
            "shape \\[3, 2\\] of FLOAT needs 24 bytes, but the entry has 28")
    _raises(repack(data, _tensor_edit("w", shape=[3, -2])), "shape dim -2 is negative")
    _raises(repack(data, _tensor_edit("w", shape=[2**63])), "absurdly large")
    _raises(repack(data, _tensor_edit("w", shape=[0] + [2**40] * 3)), "absurdly large")
    _raises(repack(data, _tensor_edit("w", shape=[1] * 65)), "rank 65 exceeds 64")
    _raises(repack(data, _tensor_edit("w", dtype=1000)), "dtype 1000 is not an ONNX")
    _raises(repack(data, _tensor_edit("w", shape="3x2")), "'shape' must be a list")

    def overlap(table):
        w = next(e for e in table if e["name"] == "w")
        bias = next(e for e in table if e["name"] == "bias")
        bias["offset"] = w["offset"]
    _raises(repack(data, lambda m, g, t, b: overlap), "'bias' and tensor #0 'w' overlap in the file")


def test_one_terabyte_tensor_is_refused_before_allocation(data: bytes) -> None:
    huge = repack(data, _tensor_edit("w", shape=[2**18, 2**20], length=2**40))
    tracemalloc.start()
    try:
        start = time.perf_counter()
        _raises(huge, "'w': claims 1099511627776 bytes at offset .* file has only")
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20 and elapsed < 5


def test_memory_limit(data: bytes, tmp_path) -> None:
    loads_pfm(data, memory_limit=len(data) * 2)
    _raises(data, "needs \\d+ bytes, more than memory_limit=1000", memory_limit=1000)
    _raises(data, "header sections needs .* memory_limit=10", memory_limit=10)
    path = tmp_path / "m.pfm"
    path.write_bytes(data)
    with pytest.raises(InvalidModelError, match="memory_limit=1000"):
        load_pfm(path, memory_limit=1000)
    with pytest.raises(InvalidModelError, match="reading the file needs"):
        load_pfm(path, memory_limit=1000, mmap=False)
    g = Graph("g")
    g.add_output(g.add_initializer("big", np.zeros(100_000, np.float64)))
    big = dumps_pfm(Model(g))
    _raises(big, "model's tensors needs 8\\d{5} bytes", memory_limit=500_000)


def test_references_to_undefined_things(data: bytes) -> None:
    def set_tensor_ref(m, g, t, b):
        g["initializers"][0]["tensor"] = len(t) + 5
    _raises(repack(data, set_tensor_ref), "refers to tensor #\\d+, but the tensor table has")

    def bad_input(m, g, t, b):
        g["nodes"][0]["inputs"][0] = "ghost"
    _raises(repack(data, bad_input), "input 0 'ghost' is not defined")

    def bad_output(m, g, t, b):
        g["outputs"][0] = "ghost"
    _raises(repack(data, bad_output), "graph output 'ghost' is not defined")

    def bad_capture(m, g, t, b):
        else_g = g["nodes"][3]["attributes"]["else_branch"]["graph"]
        else_g["nodes"][0]["inputs"][0] = "not_in_any_scope"
    _raises(repack(data, bad_capture), "'not_in_any_scope' is not defined in this graph or")

    def dup(m, g, t, b):
        g["nodes"][1]["outputs"][0] = "mm"
    _raises(repack(data, dup), "value name 'mm' is defined twice")

    def bad_init_flag(m, g, t, b):
        g["inputs"][0]["initializer"] = True
    _raises(repack(data, bad_init_flag), "'x' is marked as an initializer, but no initializer")

    def mismatched_type(m, g, t, b):
        g["initializers"][0]["type"] = {"tensor": 7, "shape": [3, 2]}
    _raises(repack(data, mismatched_type), "declared type .* does not match the stored tensor")


def test_use_before_definition_is_reported_by_verify(data: bytes) -> None:
    def swap(m, g, t, b):
        g["nodes"][0], g["nodes"][1] = g["nodes"][1], g["nodes"][0]
    err = _raises(repack(data, swap), "reads 'mm' before it is produced")
    assert isinstance(err, InvalidGraphError)


def test_subgraph_nesting_bound() -> None:
    data = dumps_pfm(deep_model(60))

    def deepen(m, g, t, b):
        sub = g
        while sub["nodes"] and sub["nodes"][0]["op_type"] == "If":
            sub = sub["nodes"][0]["attributes"]["then_branch"]["graph"]
        inner = json.loads(json.dumps(g))  # graft a copy of the whole chain at the bottom
        inner["name"] = "grafted"
        sub["nodes"][0]["attributes"]["extra"] = {"graph": inner}
    _raises(repack(data, deepen), "nested deeper than 64 levels")


def test_bad_tensor_bytes(data: bytes) -> None:
    def corrupt(name: str, blob: bytes):
        def edit(m, g, t, b):
            index = next(i for i, e in enumerate(t) if e["name"] == name)
            b[index] = blob
        return edit
    _raises(repack(data, corrupt("init_bool", b"\x01\x02\x00")), "not valid bool elements")
    _raises(repack(data, corrupt("init_int4", b"\x80\x00\x01\x07")), "not valid int4 elements")
    four = b"\x00" + struct.pack("<I", 1) + b"a"
    _raises(repack(data, corrupt("init_string", four * 3 + b"\x00" + struct.pack("<I", 99)
                                 + b"abcde")), "string element 3 claims 99 bytes")
    _raises(repack(data, corrupt("init_string", four * 3 + b"\x00" + struct.pack("<I", 2)
                                 + b"\xff\xfe")), "string element 3 is not valid UTF-8")
    _raises(repack(data, corrupt("init_string", four * 3 + b"\x07" + struct.pack("<I", 0))),
            "string element 3 has unknown kind 7")
    _raises(repack(data, corrupt("init_string", four * 4 + b"junk")), "4 bytes left over")
    _raises(repack(data, corrupt("init_string", b"\x00" * 19)),
            "4 strings need at least 20 bytes")


def test_bad_attribute_encodings(data: bytes) -> None:
    def attr(value: Any):
        def edit(m, g, t, b):
            g["nodes"][2]["attributes"]["i"] = value
        return edit
    _raises(repack(data, attr({"float": "1e5"})), "is not a number, 'nan'")
    _raises(repack(data, attr({"int": 1.5})), "must be an integer, got float")
    _raises(repack(data, attr({"bytes": "!!!"})), "not valid base64")
    _raises(repack(data, attr({"ints": [1, True]})), "'ints' must be a list of integers")
    _raises(repack(data, attr({"floats": [1.0, "x"]})), "float 'x' is not a number")
    _raises(repack(data, attr({"floats": [10**400]})), "out of range")
    _raises(repack(data, attr({"strs": ["a", 1]})), "'strs' must be a list of strings")
    _raises(repack(data, attr({"pickle": "x"})), "unknown attribute kind 'pickle'")
    _raises(repack(data, attr({"int": 1, "str": "x"})), "must be a one-key object")
    _raises(repack(data, attr({"scalar": 0})), "scalar refers to a tensor of shape")
    _raises(repack(data, attr({"list": [{"list": [{"list": [{"list": [{"list": [
        {"list": [{"list": [{"list": [{"list": []}]}]}]}]}]}]}]}]})), "lists nested deeper")
    _raises(repack(data, attr({"type": {"seq": {"seq": {"tensor": 1}}}})),
            "required field 'shape' is missing")

    def attr_type(m, g, t, b):
        g["nodes"][2]["attr_types"]["i"] = 99
    _raises(repack(data, attr_type), "is not an ONNX attribute type")


# -- fuzzing --------------------------------------------------------------------------------
def _small_model() -> bytes:
    g = Graph("fuzz")
    x = g.add_input(Value("x", TensorInfo(DType.FLOAT, ("n", 2))))
    w = g.add_initializer("w", np.arange(4, dtype=np.float32).reshape(2, 2))
    s = g.add_initializer("s", np.array(["a", b"b"], dtype=object))
    g.add_initializer("b", np.array([True, False]))
    y = Value("y", TensorInfo(DType.FLOAT, ("n", 2)))
    g.insert_node(Node("MatMul", [x, w], [y], {"alpha": 1.5, "t": np.ones(3, np.int8)},
                       name="mm"))
    bodies = []
    for branch in ("then", "else"):
        body = Graph(branch, parent=g)
        z = Value(f"z_{branch}")
        body.insert_node(Node("Identity", [y], [z], name=f"id_{branch}"))
        body.add_output(z)
        bodies.append(body)
    out = Value("out")
    g.insert_node(Node("If", [None], [out], {"then_branch": bodies[0],
                                             "else_branch": bodies[1]}, name="if"))
    g.add_output(out)
    g.add_output(s)
    return dumps_pfm(Model(g, metadata_props={"k": "v"}))


FUZZ_BASE = _small_model()


def _load_only_our_errors(data: bytes) -> None:
    try:
        model = loads_pfm(data, memory_limit=1 << 26)
    except PyFlameRTError:
        return
    verify(model.graph)
    try:
        dumps_pfm(model)  # whatever loaded can be written back
    except PyFlameRTError:
        pass


_FUZZ = settings(max_examples=150, deadline=timedelta(seconds=2), database=None,
                 suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, len(FUZZ_BASE) - 1), st.integers(0, 7)),
                      min_size=1, max_size=8),
       cut=st.none() | st.integers(0, len(FUZZ_BASE)))
def test_fuzz_bit_flips_and_truncation(flips: list, cut: int | None) -> None:
    data = bytearray(FUZZ_BASE)
    for pos, bit in flips:
        data[pos] ^= 1 << bit
    _load_only_our_errors(bytes(data[:cut] if cut is not None else data))


_META_LEN = struct.unpack_from("<I", FUZZ_BASE, 12)[0]
_FIELDS = [(8, "<I"), (12, "<I"), (16 + _META_LEN, "<Q"), (24 + _META_LEN, "<Q"),
           (32 + _META_LEN, "<Q")]


@_FUZZ
@given(field=st.sampled_from(_FIELDS),
       value=st.sampled_from([0, 1, 63, 64, 2**31 - 1, 2**32 - 1, 2**40, 2**63, 2**64 - 1])
       | st.integers(0, 2**32 - 1))
def test_fuzz_length_fields(field: tuple, value: int) -> None:
    offset, fmt = field
    value &= (1 << (8 * struct.calcsize(fmt))) - 1
    data = bytearray(FUZZ_BASE)
    struct.pack_into(fmt, data, offset, value)
    _load_only_our_errors(bytes(data))


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**65, 2**65) | st.floats(allow_nan=False)
    | st.text(max_size=5) | st.sampled_from(["x", "w", "y", "", "nan", "tensor", "graph"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["tensor", "shape", "int", "graph", "list", "name",
                                       "seq", "map", "float", "bytes", "scalar", "type",
                                       "ints", "floats", "strs", "tuple", "dtype"]),
                      children, max_size=3),
    max_leaves=10)


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i,))
    return out


@_FUZZ
@given(section=st.sampled_from([0, 1, 2]), pick=st.integers(0, 10**6), value=_json_values,
       fix=st.booleans())
def test_fuzz_json_fields(section: int, pick: int, value: Any, fix: bool) -> None:
    meta, graph, table, blobs = unpack(FUZZ_BASE)
    root = [meta, graph, table][section]
    paths = [p for p in _paths(root) if p]
    path = paths[pick % len(paths)]
    parent = root
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    try:
        data = pack(meta, graph, table, blobs, fix_offsets=fix and section != 2)
    except (TypeError, KeyError, AttributeError):
        return  # the mutation broke the test's own packer (table entry no longer a dict)
    _load_only_our_errors(data)


# -- ONNX -> .pfm ---------------------------------------------------------------------------
def _onnx_model_with_every_attribute_kind():
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def branch(op: str, out: str):
        return helper.make_graph([helper.make_node(op, ["x", "w"], [out])], f"{op}_branch", [],
                                 [helper.make_tensor_value_info(out, TensorProto.FLOAT, [2])])

    body = helper.make_graph([helper.make_node("Identity", ["x"], ["o"])], "body", [],
                             [helper.make_tensor_value_info("o", TensorProto.FLOAT, None)])
    sparse = helper.make_sparse_tensor(
        helper.make_tensor("v", TensorProto.FLOAT, [2], [1.0, 2.0]),
        helper.make_tensor("i", TensorProto.INT64, [2], [0, 3]), [4])
    custom = helper.make_node(
        "Custom", ["x"], ["c"], domain="com.example", f=1.5, i=3, s="hi", g=body,
        t=numpy_helper.from_array(np.arange(3, dtype=np.int8)), floats=[1.0, math.nan],
        strings=[b"a", b"\xff"], tensors=[numpy_helper.from_array(np.ones(2, np.float16))],
        graphs=[body], sparse_tensor=sparse,
        tp=helper.make_tensor_type_proto(TensorProto.BFLOAT16, ["n", 2]),
        tps=[helper.make_sequence_type_proto(
            helper.make_tensor_type_proto(TensorProto.INT64, None))])
    custom.attribute.append(helper.make_attribute("ints", [], attr_type=onnx.AttributeProto.INTS))
    graph = helper.make_graph(
        [helper.make_node("If", ["c_in"], ["y"], then_branch=branch("Add", "t"),
                          else_branch=branch("Sub", "e")),
         helper.make_node("Cast", ["y"], ["z"], to=TensorProto.BFLOAT16),
         helper.make_node("Constant", [], ["k"], value_strings=["a", "b"]),
         custom],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch"]),
         helper.make_tensor_value_info("c_in", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("z", TensorProto.BFLOAT16, ["batch"]),
         helper.make_tensor_value_info("k", TensorProto.STRING, [2]),
         helper.make_tensor_value_info("c", TensorProto.FLOAT, ["batch"])],
        [helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0]),
         numpy_helper.from_array(np.array([1, 2**63], np.uint64), "u")])
    proto = helper.make_model(graph, producer_name="onnx-test", opset_imports=[
        helper.make_opsetid("", 19), helper.make_opsetid("com.example", 1)])
    helper.set_model_props(proto, {"author": "me"})
    return proto


def test_onnx_model_round_trips_through_pfm(tmp_path) -> None:
    import onnx

    from pyflame_rt.io.onnx import load_onnx, to_onnx

    proto = _onnx_model_with_every_attribute_kind()
    path = tmp_path / "m.onnx"
    onnx.save(proto, str(path))
    model = load_onnx(str(path))
    assert model.graph.nodes[-1].attr_types["sparse_tensor"] == 11  # the importer kept kinds
    save_pfm(model, tmp_path / "m.pfm")
    loaded = load_pfm(tmp_path / "m.pfm")
    assert_same_model(model, loaded)
    # ONNX -> IR -> .pfm -> IR -> ONNX gives back exactly what the direct export gives.
    assert to_onnx(loaded).SerializeToString() == to_onnx(model).SerializeToString()
