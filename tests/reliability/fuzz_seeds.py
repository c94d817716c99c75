"""Valid seed models the fuzzers mutate, and the ``.pfm`` section (un)packer they use.

Each seed is small (a few KiB) so random byte mutations hit structure, not weights, and
together they reach most of the loaders' paths: initializers in raw and typed fields, sparse
and string tensors, Constant attributes of several kinds, subgraphs (If/Loop) that capture
outer values, a model-local function, external data, and patterns the optimizer fuses.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "EXTERNAL_DATA_FILE",
    "SECRET",
    "Seed",
    "onnx_seeds",
    "pack_pfm",
    "pfm_seeds",
    "prepare_external_folder",
    "unpack_pfm",
]

OPSET = 17
# Bytes placed *outside* the external-data seed's folder; no loaded model may ever contain them.
SECRET = b"PYFLAME-SECRET-OUTSIDE-THE-MODEL-FOLDER!"  # 40 bytes = 10 float32
EXTERNAL_DATA_FILE = "weights.bin"


@dataclass
class Seed:
    """A seed model: its name, its serialized form, and one valid feed for it."""

    name: str
    data: bytes
    feeds: dict[str, np.ndarray]
    external: bool = False  # needs the external-data folder (base_dir)


def _vi(name: str, dtype: int, shape: Any) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, shape)


def _model(graph: onnx.GraphProto, **kwargs: Any) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=8, producer_name="pyflame-fuzz", **kwargs)
    return model


def _mlp() -> tuple[onnx.ModelProto, dict]:
    rng = np.random.default_rng(1)
    w1 = numpy_helper.from_array(rng.standard_normal((6, 4)).astype(np.float32), "w1")
    b1 = helper.make_tensor("b1", TensorProto.FLOAT, [6], rng.standard_normal(6).tolist())
    w2 = numpy_helper.from_array(rng.standard_normal((6, 3)).astype(np.float32), "w2")
    b2 = numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b2")
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1, name="fc1"),
        helper.make_node("Relu", ["h"], ["hr"], name="relu"),
        helper.make_node("MatMul", ["hr", "w2"], ["m"], name="fc2"),
        helper.make_node("Add", ["m", "b2"], ["logits"], name="bias"),
        helper.make_node("Softmax", ["logits"], ["y"], axis=-1, name="softmax"),
    ]
    graph = helper.make_graph(nodes, "mlp", [_vi("x", TensorProto.FLOAT, ["batch", 4])],
                              [_vi("y", TensorProto.FLOAT, ["batch", 3])], [w1, b1, w2, b2])
    return _model(graph), {"x": rng.standard_normal((2, 4)).astype(np.float32)}


def _cnn() -> tuple[onnx.ModelProto, dict]:
    rng = np.random.default_rng(2)
    inits = [
        numpy_helper.from_array(rng.standard_normal((3, 2, 3, 3)).astype(np.float32), "cw"),
        numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "cb"),
        numpy_helper.from_array(np.ones(3, np.float32), "scale"),
        numpy_helper.from_array(np.zeros(3, np.float32), "shift"),
        numpy_helper.from_array(np.zeros(3, np.float32), "mean"),
        numpy_helper.from_array(np.ones(3, np.float32), "var"),
        numpy_helper.from_array(rng.standard_normal((2, 3)).astype(np.float32), "fw"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "cw", "cb"], ["c"], pads=[1, 1, 1, 1],
                         kernel_shape=[3, 3], strides=[1, 1], name="conv"),
        helper.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["bn"],
                         epsilon=1e-5, name="bn"),
        helper.make_node("Relu", ["bn"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("AveragePool", ["p"], ["ap"], kernel_shape=[2, 2], pads=[0, 0, 1, 1]),
        helper.make_node("GlobalAveragePool", ["ap"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fw"], ["y"], transB=1),
    ]
    graph = helper.make_graph(nodes, "cnn", [_vi("x", TensorProto.FLOAT, ["N", 2, 6, 6])],
                              [_vi("y", TensorProto.FLOAT, ["N", 2])], inits)
    return _model(graph), {"x": rng.standard_normal((1, 2, 6, 6)).astype(np.float32)}


def _control_flow() -> tuple[onnx.ModelProto, dict]:
    then_g = helper.make_graph([helper.make_node("Add", ["x", "k"], ["t"])], "then", [],
                               [_vi("t", TensorProto.FLOAT, ["N", 3])])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [],
                               [_vi("e", TensorProto.FLOAT, ["N", 3])])
    body = helper.make_graph(
        [helper.make_node("Add", ["acc_in", "k"], ["acc_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Cast", ["i"], ["i_f"], to=TensorProto.FLOAT),
         helper.make_node("Mul", ["acc_out", "i_f"], ["scan_out"])],
        "body",
        [_vi("i", TensorProto.INT64, []), _vi("cond_in", TensorProto.BOOL, []),
         _vi("acc_in", TensorProto.FLOAT, ["N", 3])],
        [_vi("cond_out", TensorProto.BOOL, []), _vi("acc_out", TensorProto.FLOAT, ["N", 3]),
         _vi("scan_out", TensorProto.FLOAT, ["N", 3])])
    nodes = [
        helper.make_node("If", ["c"], ["branch"], then_branch=then_g, else_branch=else_g),
        helper.make_node("Loop", ["trips", "", "branch"], ["final", "stacked"], body=body),
        helper.make_node("ReduceSum", ["stacked", "axes"], ["y"], keepdims=0),
    ]
    inits = [numpy_helper.from_array(np.array(3, np.int64), "trips"),
             numpy_helper.from_array(np.full((1, 3), 0.5, np.float32), "k"),
             numpy_helper.from_array(np.array([0], np.int64), "axes")]
    graph = helper.make_graph(
        nodes, "control",
        [_vi("x", TensorProto.FLOAT, ["N", 3]), _vi("c", TensorProto.BOOL, [])],
        [_vi("y", TensorProto.FLOAT, ["N", 3]), _vi("final", TensorProto.FLOAT, ["N", 3])],
        inits)
    feeds = {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "c": np.array(True)}
    return _model(graph), feeds


def _tensor_ops() -> tuple[onnx.ModelProto, dict]:
    sparse = helper.make_sparse_tensor(
        helper.make_tensor("sp", TensorProto.FLOAT, [2], [1.0, 2.0]),
        helper.make_tensor("sp_idx", TensorProto.INT64, [2], [0, 5]), [2, 3])
    nodes = [
        helper.make_node("Shape", ["x"], ["shp"]),
        helper.make_node("Gather", ["shp", "zero"], ["n"], axis=0),
        helper.make_node("Constant", [], ["three"], value_ints=[3]),
        helper.make_node("Concat", ["n", "three"], ["new_shape"], axis=0),
        helper.make_node("Reshape", ["x", "new_shape"], ["r"]),
        helper.make_node("Add", ["r", "sp"], ["r2"]),
        helper.make_node("Constant", [], ["kshape"], value=numpy_helper.from_array(
            np.array([1, 3], np.int64))),
        helper.make_node("ConstantOfShape", ["kshape"], ["ones"],
                         value=numpy_helper.from_array(np.array([1.5], np.float32))),
        helper.make_node("Mul", ["r2", "ones"], ["m"]),
        helper.make_node("Transpose", ["m"], ["t"], perm=[1, 0]),
        helper.make_node("Slice", ["t", "starts", "ends"], ["s"]),
        helper.make_node("Cast", ["s"], ["h"], to=TensorProto.FLOAT16),
        helper.make_node("Cast", ["h"], ["hf"], to=TensorProto.FLOAT),
        helper.make_node("Greater", ["hf", "zero_f"], ["mask"]),
        helper.make_node("Where", ["mask", "hf", "zero_f"], ["y"]),
        helper.make_node("Constant", [], ["labels"], value_strings=["a", "bc"]),
        helper.make_node("Identity", ["labels"], ["names"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([0], np.int64), "zero"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero_f"),
        numpy_helper.from_array(np.array([0, 0], np.int64), "starts"),
        helper.make_tensor("ends", TensorProto.INT64, [2], [2, 2]),
    ]
    graph = helper.make_graph(
        nodes, "tensor_ops", [_vi("x", TensorProto.FLOAT, ["N", 3])],
        [_vi("y", TensorProto.FLOAT, None), _vi("names", TensorProto.STRING, [2])], inits)
    graph.sparse_initializer.append(sparse)
    return _model(graph), {"x": np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)}


def _transformer() -> tuple[onnx.ModelProto, dict]:
    rng = np.random.default_rng(3)
    d = 4
    inits = [
        numpy_helper.from_array(np.array([-1], np.int64), "axes"),
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
        numpy_helper.from_array(np.array(1e-5, np.float32), "eps"),
        numpy_helper.from_array(np.ones(d, np.float32), "gamma"),
        numpy_helper.from_array(np.zeros(d, np.float32), "beta"),
        numpy_helper.from_array(rng.standard_normal((d, d)).astype(np.float32), "wq"),
        numpy_helper.from_array(np.array(np.sqrt(0.5), np.float32), "rsqrt2"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["mu"], axes=[-1]),
        helper.make_node("Sub", ["x", "mu"], ["xc"]),
        helper.make_node("Pow", ["xc", "two"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["var"], axes=[-1]),
        helper.make_node("Add", ["var", "eps"], ["ve"]),
        helper.make_node("Sqrt", ["ve"], ["sd"]),
        helper.make_node("Div", ["xc", "sd"], ["xn"]),
        helper.make_node("Mul", ["xn", "gamma"], ["xg"]),
        helper.make_node("Add", ["xg", "beta"], ["ln"]),
        helper.make_node("MatMul", ["ln", "wq"], ["q"]),
        helper.make_node("Mul", ["q", "rsqrt2"], ["qs"]),
        helper.make_node("Erf", ["qs"], ["erf"]),
        helper.make_node("Add", ["erf", "one"], ["e1"]),
        helper.make_node("Mul", ["q", "e1"], ["qe"]),
        helper.make_node("Mul", ["qe", "half"], ["gelu"]),
        helper.make_node("Softmax", ["gelu"], ["y"], axis=-1),
    ]
    graph = helper.make_graph(nodes, "transformer", [_vi("x", TensorProto.FLOAT, ["B", "S", d])],
                              [_vi("y", TensorProto.FLOAT, ["B", "S", d])], inits)
    return _model(graph), {"x": rng.standard_normal((1, 2, d)).astype(np.float32)}


def _function() -> tuple[onnx.ModelProto, dict]:
    fn = helper.make_function(
        "local", "ScaledRelu", ["a"], ["b"],
        [helper.make_node("Constant", [], ["s"], value_float=0.0),
         helper.make_node("Constant", [], ["alpha_c"], value=helper.make_tensor(
             "alpha_t", TensorProto.FLOAT, [], [1.0])),
         helper.make_node("LeakyRelu", ["a"], ["r"], alpha=0.1),
         helper.make_node("Max", ["r", "s"], ["m"]),
         helper.make_node("Mul", ["m", "alpha_c"], ["b"])],
        [helper.make_opsetid("", OPSET)], attributes=["alpha"])
    nodes = [helper.make_node("ScaledRelu", ["x"], ["h"], domain="local"),
             helper.make_node("ScaledRelu", ["h"], ["y"], domain="local")]
    graph = helper.make_graph(nodes, "with_function", [_vi("x", TensorProto.FLOAT, ["N"])],
                              [_vi("y", TensorProto.FLOAT, ["N"])])
    model = helper.make_model(graph, ir_version=8, functions=[fn], opset_imports=[
        helper.make_opsetid("", OPSET), helper.make_opsetid("local", 1)])
    return model, {"x": np.array([-1.0, 0.5, 2.0], np.float32)}


def _external() -> tuple[onnx.ModelProto, dict]:
    """An MLP whose two weight tensors live in ``weights.bin`` next to the model."""
    model, feeds = _mlp()
    offset = 0
    for t in model.graph.initializer:
        if t.name not in ("w1", "w2"):
            continue
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        for key, value in (("location", EXTERNAL_DATA_FILE), ("offset", str(offset)),
                           ("length", str(int(np.prod(t.dims)) * 4))):
            entry = t.external_data.add()
            entry.key, entry.value = key, value
        offset += int(np.prod(t.dims)) * 4
    return model, feeds


def _external_bytes() -> bytes:
    model, _ = _mlp()
    arrays = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return arrays["w1"].tobytes() + arrays["w2"].tobytes()


def prepare_external_folder(root: str) -> str:
    """Lay out ``root/model/weights.bin`` plus bait outside it; returns the model folder.

    Bait: ``root/secret.bin`` (outside), ``model/link.bin`` (a symlink to it) and
    ``model/sub/`` (a symlinked folder pointing at ``root``). Locations a mutation may pick.
    """
    folder = os.path.join(root, "model")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, EXTERNAL_DATA_FILE), "wb") as f:
        f.write(_external_bytes())
    secret = os.path.join(root, "secret.bin")
    with open(secret, "wb") as f:
        f.write(SECRET * 64)
    for name, target in (("link.bin", secret), ("sub", root)):
        path = os.path.join(folder, name)
        if not os.path.lexists(path):
            os.symlink(target, path)
    return folder


def onnx_seeds() -> list[Seed]:
    """Every ONNX seed, serialized."""
    seeds = []
    for name, build in (("mlp", _mlp), ("cnn", _cnn), ("control_flow", _control_flow),
                        ("tensor_ops", _tensor_ops), ("transformer", _transformer),
                        ("function", _function), ("external", _external)):
        model, feeds = build()
        seeds.append(Seed(name, model.SerializeToString(), feeds, external=name == "external"))
    return seeds


def pfm_seeds() -> list[Seed]:
    """The ONNX seeds (external data inlined) converted to ``.pfm``."""
    from pyflame_rt.io.onnx import load_onnx
    from pyflame_rt.io.pfm import dumps_pfm

    out = []
    for seed in onnx_seeds():
        if seed.external:
            continue
        out.append(Seed(seed.name, dumps_pfm(load_onnx(seed.data)), seed.feeds))
    return out


# -- .pfm sections ---------------------------------------------------------------------------
_HEAD = struct.Struct("<8sII")
_SECTIONS = struct.Struct("<QQQ")
_ALIGN = 64


def unpack_pfm(data: bytes) -> tuple[Any, Any, Any, list[bytes]]:
    """A valid ``.pfm`` file -> (metadata, graph, table, tensor blobs in table order)."""
    _, _, meta_len = _HEAD.unpack_from(data, 0)
    meta = json.loads(data[16:16 + meta_len])
    at = 16 + meta_len
    _, graph_len, table_len = _SECTIONS.unpack_from(data, at)
    at += _SECTIONS.size
    graph = json.loads(data[at:at + graph_len])
    table = json.loads(data[at + graph_len:at + graph_len + table_len])
    blobs = [data[e["offset"]:e["offset"] + e["length"]] for e in table]
    return meta, graph, table, blobs


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def pack_pfm(meta: Any, graph: Any, table: Any, blobs: list[bytes], *,
             fix_offsets: bool = True) -> bytes:
    """Reassemble a (possibly mutated) file.

    With ``fix_offsets`` every table entry that is still an object gets the offset where its
    blob is written, so mutations elsewhere are not drowned by offset errors; without it the
    table is written exactly as mutated. The header's total size always matches the file.
    """
    meta_b, graph_b = _dumps(meta), _dumps(graph)
    fixed = _HEAD.size + len(meta_b) + _SECTIONS.size + len(graph_b)
    table_b = _dumps(table)
    reserve = 24 * len(table) if isinstance(table, list) else 0  # offsets may grow
    start = -(-(fixed + len(table_b) + reserve) // _ALIGN) * _ALIGN
    offsets, pos = [], start
    for blob in blobs:
        offsets.append(pos)
        pos = -(-(pos + len(blob)) // _ALIGN) * _ALIGN
    if fix_offsets and isinstance(table, list):
        for entry, offset in zip(table, offsets):
            if isinstance(entry, dict):
                entry["offset"] = offset
        table_b = _dumps(table)
    header = _HEAD.pack(b"PFMODEL\0", 1, len(meta_b)) + meta_b
    body = graph_b + table_b
    out = bytearray(header + _SECTIONS.pack(0, len(graph_b), len(table_b)) + body)
    for blob, offset in zip(blobs, offsets):
        if len(out) < offset:
            out += b"\0" * (offset - len(out))
        out[offset:offset + len(blob)] = blob
    struct.pack_into("<Q", out, len(header), len(out))
    return bytes(out)
