"""Every bad-input case of the foundation issue: exception type (ORT's) and message."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from models_util import mlp_model, two_input_model
from onnx import TensorProto, helper

import pyflame_rt as ort
from pyflame_rt.capi import onnxruntime_pybind11_state as C


@pytest.fixture(scope="module")
def sess() -> ort.InferenceSession:
    return ort.InferenceSession(two_input_model().SerializeToString())


def feeds(**over):
    base = {"a": np.ones((2, 3), np.float32), "b": np.arange(3, dtype=np.int64)}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def test_missing_input_is_value_error_naming_it(sess):
    with pytest.raises(ValueError, match=r"Required inputs \(\['b'\]\) are missing"):
        sess.run(None, feeds(b=None))
    with pytest.raises(ort.MissingInputError):
        sess.run(None, {})


def test_unknown_input_name(sess):
    with pytest.raises(C.InvalidArgument, match="Invalid input name: c.*inputs are"):
        sess.run(None, feeds(c=np.ones(1, np.float32)))


def test_wrong_dtype_names_input_expected_and_actual(sess):
    with pytest.raises(C.InvalidArgument, match=r"input 'a'.*Actual: \(tensor\(double\)\) , "
                                                r"expected: \(tensor\(float\)\)"):
        sess.run(None, feeds(a=np.ones((2, 3))))


def test_wrong_rank(sess):
    with pytest.raises(C.InvalidArgument, match="Invalid rank for input: a Got: 1 Expected: 2"):
        sess.run(None, feeds(a=np.ones(3, np.float32)))


def test_wrong_fixed_dim(sess):
    with pytest.raises(C.InvalidArgument,
                       match="invalid dimensions for input: a.*index: 1 Got: 4 Expected: 3"):
        sess.run(None, feeds(a=np.ones((2, 4), np.float32)))


def test_unknown_output_name(sess):
    with pytest.raises(C.InvalidArgument, match="Invalid output name: nope"):
        sess.run(["nope"], feeds())


def test_non_mapping_feed(sess):
    with pytest.raises(C.InvalidArgument, match="input_feed must be a dict"):
        sess.run(None, [np.ones((2, 3), np.float32)])


def test_missing_model_file(tmp_path):
    with pytest.raises(C.NoSuchFile, match="does not exist"):
        ort.InferenceSession(str(tmp_path / "absent.onnx"))
    with pytest.raises(FileNotFoundError):
        ort.InferenceSession(str(tmp_path / "absent.onnx"))


def test_empty_model_file(tmp_path):
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(ort.InvalidModelError, match="empty"):
        ort.InferenceSession(str(path))


def test_corrupt_model_file(tmp_path):
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(b"\x08\x07\x12\xff\xff\xff\xff garbage that is not protobuf" * 3)
    with pytest.raises(C.InvalidProtobuf):
        ort.InferenceSession(str(path))
    truncated = mlp_model().SerializeToString()[:100]
    with pytest.raises(ort.InvalidModelError):
        ort.InferenceSession(truncated)


def test_unknown_op_names_op_domain_and_opset():
    graph = helper.make_graph(
        [helper.make_node("Reluu", ["x"], ["y"], name="typo")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(C.NotImplemented, match=r"ai\.onnx::Reluu.*opset 17.*Relu"):
        ort.InferenceSession(model.SerializeToString())
    with pytest.raises(ort.UnsupportedOperatorError, match="typo"):
        ort.InferenceSession(model.SerializeToString())


def test_custom_domain_op_unknown():
    graph = helper.make_graph(
        [helper.make_node("Magic", ["x"], ["y"], domain="com.example")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.example", 1)])
    with pytest.raises(ort.UnsupportedOperatorError, match="com.example::Magic.*register_op"):
        ort.InferenceSession(model.SerializeToString())


def test_kernel_failure_at_run_time_is_fail_naming_the_node():
    # Reshape to a shape that does not fit the data only fails at run time.
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "s"], ["y"], name="bad_reshape")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"]),
         helper.make_tensor_value_info("s", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    sess = ort.InferenceSession(helper.make_model(graph).SerializeToString())
    with pytest.raises(C.Fail, match="bad_reshape"):
        sess.run(None, {"x": np.ones(5, np.float32), "s": np.array([2, 2], np.int64)})
    with pytest.raises(RuntimeError):
        sess.run(None, {"x": np.ones(5, np.float32), "s": np.array([2, 2], np.int64)})


def test_bad_sess_options_type():
    with pytest.raises(C.InvalidArgument, match="SessionOptions"):
        ort.InferenceSession(mlp_model().SerializeToString(), sess_options={"a": 1})


def test_unloadable_source_type():
    with pytest.raises(C.InvalidArgument, match="cannot load a model from a int"):
        ort.InferenceSession(42)


def test_invalid_graph_is_invalid_graph():
    # A node reading a value nothing defines.
    graph = helper.make_graph(
        [helper.make_node("Relu", ["nowhere"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    with pytest.raises(C.InvalidGraph, match="nowhere"):
        ort.InferenceSession(helper.make_model(graph).SerializeToString())


def test_errors_keep_the_user_model_intact(tmp_path):
    model = mlp_model()
    before = model.SerializeToString()
    sess = ort.InferenceSession(model)
    with pytest.raises(ValueError):
        sess.run(None, {})
    assert model.SerializeToString() == before
    assert isinstance(onnx.load_from_string(before), onnx.ModelProto)


def _seq_opt_model():
    seq = helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, None)
    opt = helper.make_value_info("o", helper.make_optional_type_proto(
        helper.make_tensor_type_proto(TensorProto.FLOAT, [3])))
    graph = helper.make_graph(
        [helper.make_node("SequenceLength", ["s"], ["n"]),
         helper.make_node("OptionalHasElement", ["o"], ["has"])], "g", [seq, opt],
        [helper.make_tensor_value_info("n", TensorProto.INT64, []),
         helper.make_tensor_value_info("has", TensorProto.BOOL, [])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_sequence_and_optional_feeds_are_validated():
    sess = ort.InferenceSession(_seq_opt_model())
    ok = sess.run(None, {"s": [np.ones(2, np.float32)], "o": None})
    assert int(ok[0]) == 1 and not bool(ok[1])
    with pytest.raises(C.InvalidArgument, match="feed a list of numpy arrays"):
        sess.run(None, {"s": np.ones(2, np.float32), "o": None})
    with pytest.raises(C.InvalidArgument, match=r"s\[1\].*tensor\(double\)"):
        sess.run(None, {"s": [np.ones(2, np.float32), np.ones(2)], "o": None})
    with pytest.raises(C.InvalidArgument, match=r"'o'.*tensor\(int64\)"):
        sess.run(None, {"s": [], "o": np.ones(3, np.int64)})
