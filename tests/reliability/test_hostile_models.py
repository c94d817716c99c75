"""Hand-crafted hostile models: each is refused with ``InvalidModelError`` naming the problem.

Complements the fuzzers with the attacks the issue names explicitly (external data escaping
the model's folder, a .pfm claiming a terabyte, subgraphs nested without end) and the checks
the importer makes against the ONNX schema. Memory claims are verified with ``tracemalloc``
(numpy reports its buffers to it): a refused claim must not have been allocated first.
"""

from __future__ import annotations

import ast
import json
import os
import tracemalloc
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from fuzz_seeds import onnx_seeds, pack_pfm, pfm_seeds, unpack_pfm
from onnx import TensorProto, helper, numpy_helper

import pyflame_rt as ort
from pyflame_rt.errors import InvalidModelError, MemoryLimitError
from pyflame_rt.io.onnx import MAX_GRAPH_DEPTH, from_onnx, load_onnx
from pyflame_rt.io.pfm import loads_pfm

SRC = Path(ort.__file__).parent


def _peak_bytes(fn) -> tuple[BaseException | None, int]:
    """Run ``fn``; return what it raised and the peak of traced allocations meanwhile."""
    tracemalloc.start()
    try:
        try:
            fn()
            raised = None
        except Exception as exc:  # noqa: BLE001 - returned to the caller
            raised = exc
        return raised, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# -- external data -----------------------------------------------------------------------------
def _external_model(location: str, nbytes: int = 24) -> onnx.ModelProto:
    w = onnx.TensorProto()
    w.name, w.data_type = "w", TensorProto.FLOAT
    w.dims.extend([nbytes // 4])
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(nbytes))):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "ext", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.fixture()
def folders(tmp_path: Path) -> Path:
    """``tmp/model/`` holds the model and its data; ``tmp/secret.bin`` lies outside."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "weights.bin").write_bytes(np.arange(6, dtype=np.float32).tobytes())
    (tmp_path / "secret.bin").write_bytes(b"S" * 64)
    os.symlink(tmp_path / "secret.bin", model_dir / "link.bin")
    os.symlink(tmp_path, model_dir / "up")  # a symlinked folder pointing out
    os.symlink(model_dir / "weights.bin", model_dir / "inside_link.bin")
    return model_dir


@pytest.mark.parametrize("location, message", [
    ("../../etc/passwd", "leaves the model's folder \\('\\.\\.'\\)"),
    ("../secret.bin", "leaves the model's folder"),
    ("..\\secret.bin", "leaves the model's folder"),
    ("/etc/passwd", "is an absolute path"),
    ("//etc/passwd", "is an absolute path"),
    ("link.bin", "resolves to .*secret.bin.*, outside the model's folder .*symlink"),
    ("up/secret.bin", "outside the model's folder"),
    ("weights.bin\0.txt", "contains a NUL character"),
    ("missing.bin", "external data file 'missing.bin' not found"),
    (".", "is not a regular file"),
])
def test_external_data_cannot_leave_the_model_folder(folders: Path, location: str,
                                                     message: str) -> None:
    path = folders / "m.onnx"
    path.write_bytes(_external_model(location).SerializeToString())
    with pytest.raises(InvalidModelError, match=message):
        ort.InferenceSession(str(path))
    with pytest.raises(InvalidModelError, match=message):  # the bytes + base_dir route too
        load_onnx(path.read_bytes(), base_dir=str(folders))


def test_onnxruntime_also_refuses_path_traversal(folders: Path) -> None:
    """Our refusal matches ORT's (which fixed this class of bug), not just our taste."""
    path = folders / "m.onnx"
    path.write_bytes(_external_model("../secret.bin").SerializeToString())
    with pytest.raises(Exception, match="(?i)external|outside|directory|path"):
        onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_external_data_inside_the_folder_loads(folders: Path) -> None:
    for location in ("weights.bin", "./weights.bin", "inside_link.bin"):
        path = folders / "m.onnx"
        path.write_bytes(_external_model(location).SerializeToString())
        (y,) = ort.InferenceSession(str(path)).run(None, {})
        np.testing.assert_array_equal(y, np.arange(6, dtype=np.float32))


def test_external_data_from_bytes_without_a_folder_is_refused(folders: Path) -> None:
    data = _external_model("weights.bin").SerializeToString()
    with pytest.raises(InvalidModelError, match="without a folder; load it from its path"):
        ort.InferenceSession(data)


@pytest.mark.parametrize("key, value, message", [
    ("offset", "-8", "offset -8 is negative"),
    ("offset", "1e3", "offset '1e3' is not an integer"),
    ("offset", str(2**70), "offset \\d+ is beyond the end"),
    ("length", "4", "length 4 does not match the 24 bytes"),
])
def test_external_data_numbers_are_checked(folders: Path, key: str, value: str,
                                           message: str) -> None:
    model = _external_model("weights.bin")
    entry = next(e for e in model.graph.initializer[0].external_data if e.key == key)
    entry.value = value
    with pytest.raises(InvalidModelError, match=message):
        load_onnx(model.SerializeToString(), base_dir=str(folders))


def test_external_claim_beyond_the_file_is_refused_before_allocating(folders: Path) -> None:
    model = _external_model("weights.bin", nbytes=4 << 30)  # 4 GiB claimed, 24 B on disk
    raised, peak = _peak_bytes(lambda: load_onnx(model.SerializeToString(),
                                                 base_dir=str(folders)))
    assert isinstance(raised, InvalidModelError)
    assert "the file has only 24 bytes" in str(raised)
    assert peak < 1 << 20


def test_external_data_within_the_file_but_over_memory_limit(folders: Path) -> None:
    (folders / "big.bin").open("wb").truncate(64 << 20)  # sparse: no disk used
    model = _external_model("big.bin", nbytes=64 << 20)
    raised, peak = _peak_bytes(lambda: load_onnx(
        model.SerializeToString(), base_dir=str(folders), memory_limit=1 << 20))
    assert isinstance(raised, MemoryLimitError)
    assert "needs 67108864 bytes, more than memory_limit=1048576" in str(raised)
    assert peak < 1 << 20


# -- size claims inside the file ---------------------------------------------------------------
def _initializer_model(tensor: onnx.TensorProto) -> bytes:
    graph = helper.make_graph([helper.make_node("Identity", [tensor.name], ["y"])], "g", [],
                              [helper.make_tensor_value_info("y", tensor.data_type, None)],
                              [tensor])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                             ir_version=8).SerializeToString()


def _raw_tensor(dims: list[int], raw: bytes = b"") -> onnx.TensorProto:
    t = onnx.TensorProto()
    t.name, t.data_type, t.raw_data = "w", TensorProto.FLOAT, raw
    t.dims.extend(dims)
    return t


@pytest.mark.parametrize("dims, raw, message", [
    ([2**20, 2**20], b"\0" * 16, "raw_data holds 16 bytes but shape .* needs 4398046511104"),
    ([0, 2**62, 2**62], b"", "too large for any array"),
    ([2**63 - 1], b"", "too large for any array"),
    ([-1, 4], b"", "negative dimension"),
    ([1] * 65, b"\0" * 4, "rank 65; at most 64 dimensions"),
])
def test_tensor_size_claims_are_checked_before_allocating(dims, raw, message) -> None:
    data = _initializer_model(_raw_tensor(dims, raw))
    raised, peak = _peak_bytes(lambda: load_onnx(data))
    assert isinstance(raised, InvalidModelError), raised
    assert __import__("re").search(message, str(raised)), str(raised)
    assert peak < 1 << 20


def test_sparse_initializer_dense_size_is_bounded() -> None:
    values = numpy_helper.from_array(np.array([1.0], np.float32), "sp")
    indices = numpy_helper.from_array(np.array([0], np.int64), "sp_i")
    huge = helper.make_sparse_tensor(values, indices, [2**20, 2**20])  # 4 TiB dense
    graph = helper.make_graph([helper.make_node("Identity", ["sp"], ["y"])], "g", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    graph.sparse_initializer.append(huge)
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                             ir_version=8).SerializeToString()
    raised, peak = _peak_bytes(lambda: load_onnx(data))
    assert isinstance(raised, InvalidModelError)
    assert "dense form (shape [1048576, 1048576]) needs 4398046511104 bytes" in str(raised)
    assert peak < 1 << 20
    raised, _ = _peak_bytes(lambda: load_onnx(data, memory_limit=1 << 20))
    assert isinstance(raised, MemoryLimitError)


def _pfm_with_claim(shape: list[int], length: int) -> bytes:
    seed = next(s for s in pfm_seeds() if s.name == "mlp")
    meta, graph, table, blobs = unpack_pfm(seed.data)
    table[0].update(shape=shape, length=length)
    return pack_pfm(meta, graph, table, blobs)


def test_pfm_claiming_a_terabyte_is_refused_before_any_allocation(tmp_path: Path) -> None:
    path = tmp_path / "huge.pfm"
    path.write_bytes(_pfm_with_claim([2**18, 2**20], 2**40))  # 1 TiB of float32
    raised, peak = _peak_bytes(lambda: ort.InferenceSession(str(path)))
    assert isinstance(raised, InvalidModelError)
    assert "claims 1099511627776 bytes at offset" in str(raised)
    assert peak < 4 << 20


# -- nesting --------------------------------------------------------------------------------
def _nested_if(depth: int) -> onnx.ModelProto:
    """``depth`` If nodes, each holding the next in its then_branch (built in place: protobuf's
    own parser would stop near 32 levels, so only an in-memory proto gets deeper)."""
    model = onnx.ModelProto()
    model.ir_version = 8
    model.opset_import.add().version = 17
    graph = model.graph
    graph.name = "g0"
    graph.input.append(helper.make_tensor_value_info("c", TensorProto.BOOL, []))
    for d in range(depth):
        node = graph.node.add()
        node.op_type, node.name = "If", f"if{d}"
        node.input.append("c")
        node.output.append(f"o{d}")
        graph.output.append(helper.make_tensor_value_info(f"o{d}", TensorProto.BOOL, []))
        other = node.attribute.add()
        other.name, other.type = "else_branch", onnx.AttributeProto.GRAPH
        other.g.CopyFrom(helper.make_graph(
            [helper.make_node("Not", ["c"], [f"e{d}"])], f"e{d}", [],
            [helper.make_tensor_value_info(f"e{d}", TensorProto.BOOL, [])]))
        attr = node.attribute.add()
        attr.name, attr.type = "then_branch", onnx.AttributeProto.GRAPH
        graph = attr.g
        graph.name = f"g{d + 1}"
    graph.node.add().CopyFrom(helper.make_node("Not", ["c"], ["last"]))
    graph.output.append(helper.make_tensor_value_info("last", TensorProto.BOOL, []))
    return model


def test_subgraph_nesting_is_bounded() -> None:
    with pytest.raises(InvalidModelError, match=f"nested more than {MAX_GRAPH_DEPTH} levels"):
        from_onnx(_nested_if(MAX_GRAPH_DEPTH + 1))
    with pytest.raises(InvalidModelError, match="nested more than"):
        ort.InferenceSession(_nested_if(500))
    # At the bound, the model loads, optimizes, compiles and runs like ONNX Runtime.
    sess = ort.InferenceSession(_nested_if(MAX_GRAPH_DEPTH))
    for c in (True, False):
        # c: every If takes its then-branch down to the innermost Not(c); not c: the
        # outermost else-branch, Not(c). Either way the answer is not c.
        (y,) = sess.run(None, {"c": np.array(c)})
        assert y.dtype == np.bool_ and bool(y) is (not c)


def test_serialized_nesting_beyond_protobufs_limit_is_invalid_protobuf() -> None:
    data = _nested_if(40).SerializeToString()
    with pytest.raises(InvalidModelError, match="do not parse as an ONNX ModelProto"):
        ort.InferenceSession(data)


def test_pfm_subgraph_nesting_is_bounded() -> None:
    from fuzz_worker import _nest_graph

    seed = next(s for s in pfm_seeds() if s.name == "mlp")
    meta, graph, table, blobs = unpack_pfm(seed.data)
    nested = _nest_graph(json.loads(json.dumps(graph)), 65)
    nested["inputs"] = [{"name": "c", "type": {"tensor": TensorProto.BOOL, "shape": []}}]
    with pytest.raises(InvalidModelError, match="nested deeper than 64 levels"):
        loads_pfm(pack_pfm(meta, nested, table, blobs))


def test_function_call_chains_are_bounded() -> None:
    def chain(length: int) -> onnx.ModelProto:
        functions = []
        for i in range(length):
            body = helper.make_node("Identity" if i == length - 1 else f"F{i + 1}", ["a"],
                                    ["b"], domain="" if i == length - 1 else "local")
            functions.append(helper.make_function(
                "local", f"F{i}", ["a"], ["b"], [body],
                [helper.make_opsetid("", 17), helper.make_opsetid("local", 1)]))
        graph = helper.make_graph([helper.make_node("F0", ["x"], ["y"], domain="local")], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
        return helper.make_model(graph, ir_version=8, functions=functions, opset_imports=[
            helper.make_opsetid("", 17), helper.make_opsetid("local", 1)])

    x = np.array([3.0], np.float32)
    assert ort.InferenceSession(chain(20).SerializeToString()).run(None, {"x": x})[0] == x
    with pytest.raises(InvalidModelError, match="call each other more than 64 levels deep"):
        load_onnx(chain(70).SerializeToString())


def test_type_nesting_is_bounded() -> None:
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [], [])
    for name, where in (("x", graph.input), ("y", graph.output)):
        vi = where.add()
        vi.name = name
        tp = vi.type  # built in place: protobuf refuses to copy types this deep
        for _ in range(70):
            tp = tp.sequence_type.elem_type
        tp.tensor_type.elem_type = TensorProto.FLOAT
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    with pytest.raises(InvalidModelError, match="more than 64 levels deep"):
        from_onnx(model)


# -- the schema: counts, attribute types, versions -------------------------------------------------
def _one_node_model(node: onnx.NodeProto, opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in node.output if o])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                             ir_version=8)


def _tampered(build) -> bytes:
    node = helper.make_node("Softmax", ["x"], ["y"], axis=1)
    build(node)
    return _one_node_model(node).SerializeToString()


@pytest.mark.parametrize("edit, message, ort_refuses", [
    (lambda n: setattr(n.attribute[0], "type", onnx.AttributeProto.GRAPH),
     ("attribute 'axis' of Softmax node '' has type GRAPH, but the ONNX schema of Softmax "
      "declares INT"), True),
    (lambda n: setattr(n.attribute[0], "type", onnx.AttributeProto.STRING),
     "has type STRING, but the ONNX schema of Softmax declares INT", True),
    # ORT reads the unset value as 0; we refuse: the file does not say what the axis is.
    (lambda n: n.attribute[0].ClearField("i"), "has type INT but holds no value", False),
    (lambda n: n.input.append("x"), "Softmax node '' has 2 inputs, but Softmax-13 takes 1",
     True),
    (lambda n: n.output.append("z"), "has 2 outputs, but Softmax-13 takes 1", True),
    (lambda n: n.input.__setitem__(0, ""), "leaves its required input 'input' empty", True),
])
def test_nodes_must_match_their_onnx_schema(edit, message: str, ort_refuses: bool) -> None:
    data = _tampered(edit)
    with pytest.raises(InvalidModelError, match=message.replace("(", "\\(").replace(")", "\\)")):
        load_onnx(data)
    if ort_refuses:  # ONNX Runtime refuses these models too (its message differs)
        with pytest.raises(Exception):  # noqa: B017 - any ORT error will do
            onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])


def test_unknown_attribute_type_number_falls_back_to_the_payload() -> None:
    """protobuf drops an unknown enum value (type reads as UNDEFINED), so the type is taken
    from the field that holds the value, as for old exporters that never set it."""
    data = _tampered(lambda n: None)
    tag = b"\xa0\x01\x02"  # AttributeProto.type (field 20, varint) = INT
    assert data.count(tag) == 1
    sess = ort.InferenceSession(data.replace(tag, b"\xa0\x01\x63"))  # type = 99
    x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], np.float32)
    want = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], want, rtol=1e-6)


def test_missing_required_attribute() -> None:
    node = helper.make_node("If", ["c"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("c", TensorProto.BOOL,
                                                                           [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    with pytest.raises(InvalidModelError, match="lacks the required attribute 'else_branch'"):
        load_onnx(model.SerializeToString())


def test_an_int_where_a_float_attribute_goes_is_accepted() -> None:
    """Lenient on purpose: an INT ``alpha`` means the same number (old exporters write it)."""
    node = helper.make_node("LeakyRelu", ["x"], ["y"])
    node.attribute.append(helper.make_attribute("alpha", 2))
    assert node.attribute[0].type == onnx.AttributeProto.INT
    sess = ort.InferenceSession(_one_node_model(node).SerializeToString())
    x = np.array([[-1.0, 2.0, -3.0], [0.0, 1.0, -0.5]], np.float32)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], np.where(x < 0, 2 * x, x))


def _pfm_cnn_edit(edit) -> bytes:
    seed = next(s for s in pfm_seeds() if s.name == "cnn")
    meta, graph, table, blobs = unpack_pfm(seed.data)
    edit({n["op_type"]: n for n in graph["nodes"]})
    return pack_pfm(meta, graph, table, blobs)


@pytest.mark.parametrize("edit, message", [
    (lambda n: n["BatchNormalization"]["attributes"].update(epsilon={"ints": [2**40, -5]}),
     ("BatchNormalization node 'bn': attribute 'epsilon' holds a list, but the ONNX schema "
      "of BatchNormalization declares FLOAT")),
    (lambda n: n["Flatten"]["attributes"].update(axis={"str": "one"}),
     "attribute 'axis' holds a str, but the ONNX schema of Flatten declares INT"),
    (lambda n: n["Conv"]["attributes"].update(pads={"graph": {
        "name": "g", "inputs": [], "initializers": [], "nodes": [], "outputs": []}}),
     "attribute 'pads' holds a Graph, but the ONNX schema of Conv declares INTS"),
    (lambda n: n["Conv"]["attributes"].update(pads={"floats": [1.5]}),
     "attribute 'pads' holds a list, but the ONNX schema of Conv declares INTS"),
    (lambda n: n["Gemm"]["inputs"].pop(), "Gemm node '' has 1 inputs, but Gemm-13 takes 2 to 3"),
    (lambda n: n["Gemm"]["inputs"].__setitem__(1, ""), "leaves its required input 'B' empty"),
    (lambda n: (n["Relu"]["outputs"].append("extra"), n["Relu"]["output_types"].append(None)),
     "has 2 outputs, but Relu-14 takes 1"),
])
def test_pfm_nodes_must_match_their_onnx_schema(edit, message: str) -> None:
    with pytest.raises(InvalidModelError, match=message):
        loads_pfm(_pfm_cnn_edit(edit))


def test_pfm_schema_check_accepts_what_save_pfm_writes_for_an_optimized_model(tmp_path) -> None:
    """Passes store attributes their own way (arrays for int lists, DType for ``to``): a
    saved optimized model must still load."""
    for seed in onnx_seeds():
        if seed.external:
            continue
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(tmp_path / f"{seed.name}.pfm")
        want = ort.InferenceSession(seed.data, options).run(None, seed.feeds)
        got = ort.InferenceSession(options.optimized_model_filepath).run(None, seed.feeds)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("version", [-1, 2**31, 2**62])
def test_opset_versions_out_of_range(version: int) -> None:
    model = _one_node_model(helper.make_node("Relu", ["x"], ["y"]))
    model.opset_import.add().domain = "com.example"
    model.opset_import[-1].version = version
    with pytest.raises(InvalidModelError, match="out of range"):
        load_onnx(model.SerializeToString())


# -- every seed survives a hostile-but-valid round trip ------------------------------------------
def test_truncations_of_every_seed_are_refused_cleanly() -> None:
    """Every prefix of every seed (a systematic version of the fuzzers' truncation)."""
    for seed in onnx_seeds():
        if seed.external:
            continue
        for cut in range(0, len(seed.data), 7):
            try:
                load_onnx(seed.data[:cut])
            except InvalidModelError:
                pass  # a prefix may still parse as a (smaller) valid model
    for seed in pfm_seeds():
        for cut in range(0, len(seed.data), 13):
            with pytest.raises(InvalidModelError):
                loads_pfm(seed.data[:cut])


# -- no code execution on a model path -------------------------------------------------------------
_FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle",
                      "joblib"}
_FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            found += [f"{where}: import {a.name}" for a in node.names
                      if a.name.split(".")[0] in _FORBIDDEN_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module and \
                node.module.split(".")[0] in _FORBIDDEN_MODULES:
            found.append(f"{where}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in _FORBIDDEN_CALLS:
                found.append(f"{where}: {func.id}(...)")
            if isinstance(func, ast.Attribute) and func.attr in ("load", "loads") and \
                    isinstance(func.value, ast.Name) and func.value.id in ("torch", "yaml"):
                safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and
                           k.value.value is True for k in node.keywords)
                if not safe:
                    found.append(f"{where}: {func.value.id}.{func.attr}(...) unpickles")
            for k in node.keywords:
                if k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and
                                                    k.value.value is False):
                    found.append(f"{where}: allow_pickle={ast.unparse(k.value)}")
    return found


def test_no_pickle_eval_or_exec_in_the_package() -> None:
    """Loading a model must never run code from it: no unpickling, eval or exec anywhere in
    the package (TorchScript's ``torch.jit.load`` is the documented exception: SECURITY.md)."""
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 20
    found = [v for path in files for v in _violations(path)]
    assert not found, "code execution paths in the package:\n" + "\n".join(found)


def test_the_scanner_catches_what_it_looks_for(tmp_path: Path) -> None:
    sample = ("import pickle\nfrom marshal import loads\nimport numpy as np\nimport torch\n"
              "eval('1')\nexec('x=1')\nnp.load('f', allow_pickle=True)\ntorch.load('m.pt')\n"
              "torch.load('m.pt', weights_only=True)\nnp.load('f', allow_pickle=False)\n")
    probe = tmp_path / "probe.py"
    probe.write_text(sample)
    found = _violations(probe)
    assert len(found) == 6, found


# -- the optimizer must not allocate from declared (unchecked) dims -----------------------------
def test_layernorm_fusion_does_not_allocate_from_a_declared_dim() -> None:
    """A 700-byte model whose input declares a last dim of 2**40: building the session must
    neither allocate that (4 TiB here, so a failing run costs nothing; 2**31 - 1 makes it a
    real 8 GiB) nor fail with anything but a PyFlameRTError."""
    nodes = [helper.make_node("ReduceMean", ["x"], ["mu"], axes=[-1]),
             helper.make_node("Sub", ["x", "mu"], ["xc"]),
             helper.make_node("Pow", ["xc", "two"], ["sq"]),
             helper.make_node("ReduceMean", ["sq"], ["var"], axes=[-1]),
             helper.make_node("Add", ["var", "eps"], ["ve"]),
             helper.make_node("Sqrt", ["ve"], ["sd"]),
             helper.make_node("Div", ["xc", "sd"], ["y"])]
    dims = [1, 2**40]
    graph = helper.make_graph(
        nodes, "ln", [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)],
        [numpy_helper.from_array(np.array(2.0, np.float32), "two"),
         numpy_helper.from_array(np.array(1e-5, np.float32), "eps")])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                             ir_version=8).SerializeToString()
    raised, peak = _peak_bytes(lambda: ort.InferenceSession(data))
    assert raised is None or isinstance(raised, ort.PyFlameRTError), repr(raised)
    assert peak < 64 << 20
