"""InferenceSession: construction, introspection, running, options and ORT parity."""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
import onnxruntime
import pytest
from models_util import mlp_model, two_input_model

import pyflame_rt as ort
from pyflame_rt.capi import onnxruntime_pybind11_state as C


@pytest.fixture(scope="module")
def mlp_bytes() -> bytes:
    return mlp_model().SerializeToString()


def _x(n: int) -> np.ndarray:
    return np.random.default_rng(n).standard_normal((n, 4)).astype(np.float32)


def test_results_match_onnxruntime_at_any_batch(mlp_bytes):
    sess = ort.InferenceSession(mlp_bytes)
    ref = onnxruntime.InferenceSession(mlp_bytes, providers=["CPUExecutionProvider"])
    for batch in (1, 3, 8):
        x = _x(batch)
        ours = sess.run(None, {"x": x})
        theirs = ref.run(None, {"x": x})
        assert [o.shape for o in ours] == [(batch, 3), (batch, 3)]
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["path", "bytes", "proto", "pfm", "model"])
def test_constructs_from_every_source(tmp_path, mlp_bytes, kind):
    proto = onnx.load_from_string(mlp_bytes)
    if kind == "path":
        path = tmp_path / "m.onnx"
        path.write_bytes(mlp_bytes)
        source = str(path)
    elif kind == "bytes":
        source = mlp_bytes
    elif kind == "proto":
        source = proto
    elif kind == "pfm":
        source = tmp_path / "m.pfm"
        ort.save(ort.load(mlp_bytes), source)
    else:
        source = ort.load(mlp_bytes)
    sess = ort.InferenceSession(source)
    expected = onnxruntime.InferenceSession(mlp_bytes).run(None, {"x": _x(2)})
    for a, b in zip(sess.run(None, {"x": _x(2)}), expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_user_model_object_is_not_changed(mlp_bytes):
    model = ort.load(mlp_bytes)
    before = str(model.graph)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    ort.InferenceSession(model, opts)
    assert str(model.graph) == before


def test_introspection_matches_onnxruntime(mlp_bytes):
    sess = ort.InferenceSession(mlp_bytes)
    ref = onnxruntime.InferenceSession(mlp_bytes, providers=["CPUExecutionProvider"])
    for ours, theirs in ((sess.get_inputs(), ref.get_inputs()),
                         (sess.get_outputs(), ref.get_outputs())):
        assert [(a.name, a.type, a.shape) for a in ours] == \
            [(a.name, a.type, a.shape) for a in theirs]
    meta, ref_meta = sess.get_modelmeta(), ref.get_modelmeta()
    for field in ("producer_name", "graph_name", "domain", "description", "version",
                  "custom_metadata_map", "graph_description"):
        assert getattr(meta, field) == getattr(ref_meta, field), field
    assert sess.get_providers() == ["CPUExecutionProvider"]
    assert isinstance(sess.get_session_options(), ort.SessionOptions)
    assert "CPUExecutionProvider" in ort.get_available_providers()
    assert ort.get_device() == "CPU"
    assert isinstance(ort.__version__, str)


def test_overridable_initializers_and_feeding_them():
    data = two_input_model().SerializeToString()
    sess = ort.InferenceSession(data)
    ref = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    assert [a.name for a in sess.get_inputs()] == [a.name for a in ref.get_inputs()]
    assert [a.name for a in sess.get_overridable_initializers()] == ["scale"]
    a = np.ones((2, 3), np.float32)
    b = np.array([1, 2, 3], np.int64)
    np.testing.assert_allclose(sess.run(None, {"a": a, "b": b})[0],
                               ref.run(None, {"a": a, "b": b})[0])
    scale = np.array([10.0], np.float32)
    np.testing.assert_allclose(sess.run(None, {"a": a, "b": b, "scale": scale})[0],
                               ref.run(None, {"a": a, "b": b, "scale": scale})[0])


def test_output_selection_and_order(mlp_bytes):
    sess = ort.InferenceSession(mlp_bytes)
    x = _x(2)
    y, logits = sess.run(None, {"x": x})
    only = sess.run(["logits", "y"], {"x": x})
    np.testing.assert_array_equal(only[0], logits)
    np.testing.assert_array_equal(only[1], y)
    opts = ort.RunOptions()
    opts.only_execute_path_to_fetches = True
    np.testing.assert_array_equal(sess.run(["logits"], {"x": x}, opts)[0], logits)


def test_run_with_ort_values_and_iobinding(mlp_bytes):
    sess = ort.InferenceSession(mlp_bytes)
    x = _x(2)
    expected = sess.run(["y"], {"x": x})[0]
    value = ort.OrtValue.ortvalue_from_numpy(x)
    assert value.shape() == [2, 4] and value.data_type() == "tensor(float)"
    assert value.is_tensor() and value.device_name() == "cpu"
    out = sess.run_with_ort_values(["y"], {"x": value})
    np.testing.assert_array_equal(out[0].numpy(), expected)
    binding = sess.io_binding()
    binding.bind_cpu_input("x", x)
    binding.bind_output("y")
    sess.run_with_iobinding(binding)
    np.testing.assert_array_equal(binding.copy_outputs_to_cpu()[0], expected)
    with pytest.raises(C.InvalidArgument, match="cpu"):
        ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0)


def test_outputs_are_owned_by_the_caller():
    # Identity/Reshape return views: the result must not alias the feed or the model.
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"]),
         helper.make_node("Identity", ["c"], ["z"])], "views",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 2]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])],
        [onnx.numpy_helper.from_array(np.array([3, 2], np.int64), "shape"),
         onnx.numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "c")])
    sess = ort.InferenceSession(helper.make_model(graph))
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y, z = sess.run(None, {"x": x})
    assert not np.shares_memory(y, x)
    y[:] = -1
    z[:] = -1
    assert x[0, 0] == 0  # the feed is untouched
    y2, z2 = sess.run(None, {"x": x})
    np.testing.assert_array_equal(z2, [1.0, 2.0])  # the model's constant is untouched
    np.testing.assert_array_equal(y2.ravel(), np.arange(6))


def test_symbolic_batch_dim_runs_any_batch_and_free_dim_override(mlp_bytes):
    opts = ort.SessionOptions()
    opts.add_free_dimension_override_by_name("batch", 5)
    sess = ort.InferenceSession(mlp_bytes, opts)
    assert sess.get_inputs()[0].shape == [5, 4]
    assert sess.run(["y"], {"x": _x(5)})[0].shape == (5, 3)
    with pytest.raises(C.InvalidArgument, match="index: 0 Got: 2 Expected: 5"):
        sess.run(None, {"x": _x(2)})


def test_session_options_fields_and_levels(mlp_bytes):
    opts = ort.SessionOptions()
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert opts.intra_op_num_threads == 0 and opts.inter_op_num_threads == 0
    assert opts.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert opts.profile_file_prefix == "onnxruntime_profile_"
    assert opts.log_severity_level == -1 and opts.optimized_model_filepath == ""
    opts.add_session_config_entry("session.key", "v")
    assert opts.get_session_config_entry("session.key") == "v"
    with pytest.raises(C.InvalidArgument):
        opts.get_session_config_entry("missing.key")
    for level in (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, ort.OptLevel.BASIC,
                  ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, ort.OptLevel.ALL):
        opts.graph_optimization_level = level
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(mlp_bytes, opts)
        assert sess.run(["y"], {"x": _x(1)})[0].shape == (1, 3)


def test_disabled_optimizers_keyword_as_in_onnxruntime(mlp_bytes):
    opts = ort.SessionOptions()
    fused = ort.InferenceSession(mlp_bytes, opts)
    assert fused.optimization_report.rules_fired
    plain = ort.InferenceSession(mlp_bytes, opts,
                                 disabled_optimizers=list(fused.optimization_report.passes))
    assert not plain.optimization_report.rules_fired
    assert opts.disabled_optimizers == []  # merged for the session, not written back
    np.testing.assert_allclose(plain.run(None, {"x": _x(2)})[0],
                               fused.run(None, {"x": _x(2)})[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(C.InvalidArgument, match="unexpected keyword"):
        ort.InferenceSession(mlp_bytes, disabled_optimizer=["cse"])


def test_optimized_model_filepath_is_written_and_reloads(tmp_path, mlp_bytes):
    for name in ("opt.onnx", "opt.pfm"):
        opts = ort.SessionOptions()
        opts.optimized_model_filepath = str(tmp_path / name)
        sess = ort.InferenceSession(mlp_bytes, opts)
        again = ort.InferenceSession(str(tmp_path / name))
        x = _x(3)
        np.testing.assert_allclose(again.run(None, {"x": x})[0], sess.run(None, {"x": x})[0])


def test_profiling_writes_chrome_trace(tmp_path, mlp_bytes):
    opts = ort.SessionOptions()
    opts.enable_profiling = True
    opts.profile_file_prefix = str(tmp_path / "prof_")
    sess = ort.InferenceSession(mlp_bytes, opts)
    sess.run(None, {"x": _x(2)})
    path = sess.end_profiling()
    assert os.path.exists(path)
    events = json.load(open(path))
    nodes = [e for e in events if e["cat"] == "Node"]
    assert len(nodes) == len(sess.graph.nodes)  # one per executed node
    assert {e["args"]["op_name"] for e in nodes} == {n.op_type for n in sess.graph.nodes}
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    plain = ort.InferenceSession(mlp_bytes, opts)
    plain.run(None, {"x": _x(2)})
    events = json.load(open(plain.end_profiling()))
    assert {e["args"]["op_name"] for e in events if e["cat"] == "Node"} == \
        {"Gemm", "Relu", "MatMul", "Add", "Softmax"}
    assert all(e["ph"] == "X" and e["dur"] >= 0 for e in events)
    assert ort.InferenceSession(mlp_bytes).end_profiling() == ""


def test_memory_limit_is_enforced(mlp_bytes):
    opts = ort.SessionOptions()
    opts.memory_limit = 64
    with pytest.raises(ort.MemoryLimitError, match="memory_limit"):
        ort.InferenceSession(mlp_bytes, opts)
    opts.memory_limit = 400  # constants fit (~252 bytes); a big batch does not
    sess = ort.InferenceSession(mlp_bytes, opts)
    assert sess.run(["y"], {"x": _x(1)})[0].shape == (1, 3)
    with pytest.raises(ort.MemoryLimitError, match="activations"):
        sess.run(None, {"x": _x(64)})


def test_terminate_stops_a_run(mlp_bytes):
    sess = ort.InferenceSession(mlp_bytes)
    opts = ort.RunOptions()
    opts.terminate = True
    with pytest.raises(ort.RunTerminatedError):
        sess.run(None, {"x": _x(1)}, opts)


def test_unknown_providers_are_skipped_with_a_warning(mlp_bytes):
    with pytest.warns(RuntimeWarning, match="CUDAExecutionProvider"):
        sess = ort.InferenceSession(
            mlp_bytes, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert sess.get_providers() == ["CPUExecutionProvider"]
    sess2 = ort.InferenceSession(mlp_bytes, providers=[("CPUExecutionProvider", {})])
    assert sess2.get_provider_options() == {"CPUExecutionProvider": {}}


def test_memory_limit_applies_while_loading(tmp_path, mlp_bytes):
    opts = ort.SessionOptions()
    opts.memory_limit = 64  # the MLP's weights alone need ~250 bytes
    for source in (mlp_bytes, onnx.load_from_string(mlp_bytes)):
        with pytest.raises(ort.PyFlameRTError, match="memory_limit"):
            ort.InferenceSession(source, opts)
    path = tmp_path / "m.pfm"
    ort.save(ort.load(mlp_bytes), path)
    with pytest.raises(ort.PyFlameRTError, match="memory_limit"):
        ort.InferenceSession(str(path), opts)
