"""The ``run()`` misuse catalogue: every bad call, its exact exception and message, and what
ONNX Runtime does with the same call; plus what ``run()`` promises about its outputs (they
never alias an input, each other, a constant or a buffer that a later run reuses).

Where ORT and PyFlameRT differ on purpose the test says so: PyFlameRT names the input and the
fix, and accepts Python scalars/tuples for tensors (ORT raises a bare ``RuntimeError``).
"""

from __future__ import annotations

import warnings

import numpy as np
import onnxruntime
import onnxruntime.capi.onnxruntime_pybind11_state as OrtC
import pytest
from fuzz_seeds import onnx_seeds
from onnx import TensorProto, helper, numpy_helper

import pyflame_rt as ort
from pyflame_rt.capi import onnxruntime_pybind11_state as C
from pyflame_rt.errors import (
    InvalidArgumentError,
    KernelError,
    MissingInputError,
    PyFlameRTError,
    ValidationError,
)

CONST = np.array([[1.0, -2.0, 3.0]], np.float32)


def _catalogue_model() -> bytes:
    nodes = [
        helper.make_node("Identity", ["x"], ["z"]),
        helper.make_node("Identity", ["z"], ["z2"]),
        helper.make_node("Reshape", ["x", "flat"], ["w"]),
        helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0]),
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Identity", ["const"], ["k"]),
        helper.make_node("Cast", ["ids"], ["c"], to=TensorProto.FLOAT),
    ]
    graph = helper.make_graph(
        nodes, "catalogue",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("ids", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
         for n in ("z", "z2", "w", "t", "r", "k", "c")],
        [numpy_helper.from_array(np.array([-1], np.int64), "flat"),
         numpy_helper.from_array(CONST, "const")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                             ir_version=8).SerializeToString()


MODEL = _catalogue_model()
X = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
IDS = np.array([4, 5], np.int64)


@pytest.fixture(scope="module")
def sess() -> ort.InferenceSession:
    return ort.InferenceSession(MODEL)


@pytest.fixture(scope="module")
def ref() -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(MODEL, providers=["CPUExecutionProvider"])


def _feed(**over):
    feed = {"x": X, "ids": IDS}
    feed.update(over)
    return {k: v for k, v in feed.items() if v is not _DROP}


_DROP = object()


def _ort_error(ref, feed, outputs=None) -> type[BaseException] | None:
    try:
        ref.run(outputs, feed)
    except Exception as exc:  # noqa: BLE001 - the type is what we compare
        return type(exc)
    return None


# -- misuse: (feed, our exception type, our exact message, the exception ORT raises) ------------
_BIG_VIEW = np.broadcast_to(np.float32(1.0), (10**11, 3))  # 1.2 TB claimed, 4 bytes real
MISUSE = {
    "unknown input name": (
        _feed(nope=X), ValidationError,
        "Invalid input name: nope. The model's inputs are ['x', 'ids']", OrtC.InvalidArgument),
    "missing input": (
        _feed(ids=_DROP), MissingInputError,
        ("Required inputs (['ids']) are missing from input feed (['x']). Feed every input "
         "listed by get_inputs()."), ValueError),
    "no inputs at all": (
        {}, MissingInputError,
        ("Required inputs (['x', 'ids']) are missing from input feed ([]). Feed every input "
         "listed by get_inputs()."), ValueError),
    "wrong dtype": (
        _feed(x=X.astype(np.float64)), ValidationError,
        ("Unexpected input data type for input 'x'. Actual: (tensor(double)) , expected: "
         "(tensor(float)). Convert it, e.g. x.astype(np.float32)"), OrtC.InvalidArgument),
    "int where float goes": (
        _feed(x=X.astype(np.int32)), ValidationError,
        ("Unexpected input data type for input 'x'. Actual: (tensor(int32)) , expected: "
         "(tensor(float)). Convert it, e.g. x.astype(np.float32)"), OrtC.InvalidArgument),
    "object array": (
        _feed(x=X.astype(object)), ValidationError,
        ("Unexpected input data type for input 'x'. Actual: (tensor(string)) , expected: "
         "(tensor(float)). Convert it, e.g. x.astype(np.float32)"), OrtC.InvalidArgument),
    "wrong rank": (
        _feed(x=X.reshape(-1)), ValidationError,
        ("Invalid rank for input: x Got: 1 Expected: 2 (expected shape [N, 3], got [6]). Please "
         "fix either the inputs or the model."), OrtC.InvalidArgument),
    "wrong fixed dim": (
        _feed(x=np.zeros((2, 4), np.float32)), ValidationError,
        ("Got invalid dimensions for input: x for the following indices: index: 1 Got: 4 "
         "Expected: 3 (expected shape [N, 3], got [2, 4]). Please fix either the inputs or the "
         "model."), OrtC.InvalidArgument),
    "huge dim where a fixed one goes": (
        _feed(ids=np.broadcast_to(np.int64(1), (10**10,))), ValidationError,
        ("Got invalid dimensions for input: ids for the following indices: index: 0 Got: "
         "10000000000 Expected: 2 (expected shape [2], got [10000000000]). Please fix either "
         "the inputs or the model."), RuntimeError),
    "huge broadcast view": (
        _feed(x=_BIG_VIEW), ValidationError,
        ("input 'x' is a broadcast view of shape [100000000000, 3] whose 1200000000000 bytes "
         "cannot be allocated; feed a smaller array"), RuntimeError),
    "str value": (
        _feed(x="abc"), ValidationError, "input 'x' must be a numpy array, got str",
        RuntimeError),
    "bytes value": (
        _feed(x=b"abc"), ValidationError, "input 'x' must be a numpy array, got bytes",
        RuntimeError),
    "dict value": (
        _feed(x={"a": 1}), ValidationError, "input 'x' must be a numpy array, got dict",
        OrtC.InvalidArgument),
    "None value": (
        _feed(x=None), ValidationError, "input 'x' must be a numpy array, got NoneType",
        OrtC.Fail),
    "arbitrary object": (
        _feed(x=object()), ValidationError, "input 'x' must be a numpy array, got object",
        RuntimeError),
    "ragged list": (
        _feed(x=[[1.0, 2.0, 3.0], [4.0]]), ValidationError,
        ("Could not create tensor from given input list for input 'x' (tensor(float)): setting "
         "an array element with a sequence. The requested array has an inhomogeneous shape "
         "after 1 dimensions. The detected shape was (2,) + inhomogeneous part. Feed a numpy "
         "array of float32"), RuntimeError),
    "list of text for a float input": (
        _feed(x=[["a", "b", "c"]]), ValidationError,
        ("Could not create tensor from given input list for input 'x' (tensor(float)): could "
         "not convert string to float: 'a'. Feed a numpy array of float32"), RuntimeError),
    "out-of-range int in a list": (
        _feed(ids=[1, 2**70]), ValidationError,
        ("Could not create tensor from given input list for input 'ids' (tensor(int64)): "
         "Python int too large to convert to C long. Feed a numpy array of int64"),
        RuntimeError),
}


@pytest.mark.parametrize("case", sorted(MISUSE))
def test_misuse_raises_the_exact_error(sess, ref, case: str) -> None:
    feed, our_type, message, ort_type = MISUSE[case]
    with pytest.raises(our_type) as info:
        sess.run(None, feed)
    assert str(info.value) == message
    assert isinstance(info.value, PyFlameRTError)
    # Drop-in: what a script catching ORT's exception would catch here too, where ORT's class
    # has a PyFlameRT twin (ValueError, InvalidArgument); ORT's bare RuntimeError/Fail from
    # its pybind layer are not reproduced: we raise the more precise ValidationError.
    got = _ort_error(ref, feed)
    assert got is not None and issubclass(got, ort_type), (case, got)
    if ort_type is ValueError:
        assert isinstance(info.value, ValueError)
    if ort_type is OrtC.InvalidArgument:
        assert isinstance(info.value, C.InvalidArgument)


def test_feed_that_is_not_a_mapping(sess, ref) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        sess.run(None, [("x", X), ("ids", IDS)])
    assert str(info.value) == ("input_feed must be a dict of input name -> numpy array, got "
                               "list")
    assert _ort_error(ref, [("x", X), ("ids", IDS)]) is AttributeError


def test_output_name_misuse(sess, ref) -> None:
    with pytest.raises(C.InvalidArgument) as info:
        sess.run(["q"], _feed())
    assert str(info.value) == "Invalid output name: q. The model's outputs are ['z', 'z2', " \
        "'w', 't', 'r', 'k', 'c']"
    assert _ort_error(ref, _feed(), ["q"]) is OrtC.InvalidArgument
    with pytest.raises(InvalidArgumentError) as info:
        sess.run("z", _feed())
    assert str(info.value) == "output_names must be a list of names, not the string 'z'; " \
        "write ['z']"
    assert _ort_error(ref, _feed(), "z") is TypeError


# -- accepted inputs: same answer as ONNX Runtime, input untouched ---------------------------------
def _big_endian(a: np.ndarray) -> np.ndarray:
    return a.astype(a.dtype.newbyteorder(">"))


def _read_only(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flags.writeable = False
    return a


def _matrix(a: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():  # np.matrix is pending deprecation, yet users still pass it
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return np.asmatrix(a)


ACCEPTED = {
    "NaN and Inf": np.array([[np.nan, np.inf, -np.inf], [-0.0, 1e-45, -3.4e38]], np.float32),
    "empty batch": np.zeros((0, 3), np.float32),
    "Fortran order": np.asfortranarray(X),
    "non-contiguous": np.arange(12, dtype=np.float32).reshape(2, 6)[:, ::2],
    "negative strides": X[::-1, ::-1],
    "read-only": _read_only(X),
    "big-endian": _big_endian(X),
    "small broadcast view": np.broadcast_to(np.float32(7.0), (4, 3)),
    "np.matrix": _matrix(X),
    "masked array": np.ma.masked_array(X, mask=X > 0),
    "list": X.tolist(),
    "0-d numpy scalar cast": np.float32(1.5) * np.ones((1, 3), np.float32),
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_accepted_inputs_match_onnxruntime(sess, ref, case: str) -> None:
    x = ACCEPTED[case]
    before = np.array(x, copy=True)
    flags = (x.flags.writeable, x.flags.c_contiguous) if isinstance(x, np.ndarray) else None
    got = sess.run(None, {"x": x, "ids": IDS})
    # ORT ignores the byte order of big-endian arrays (it reads the bytes as native, a bug
    # of its own): compare with ORT on the same values in native order there.
    want = ref.run(None, {"x": x.astype(np.float32) if case == "big-endian" else x,
                          "ids": IDS})
    for name, g, w in zip(sess._output_names, got, want, strict=True):
        assert type(g) is np.ndarray and g.dtype == w.dtype and g.shape == w.shape, name
        np.testing.assert_array_equal(g, w, err_msg=f"{case}: output {name}")
    np.testing.assert_array_equal(np.asarray(x), before)  # the input was not modified
    if flags is not None:
        assert (x.flags.writeable, x.flags.c_contiguous) == flags


def test_nan_and_inf_pass_through_bit_for_bit(sess) -> None:
    x = np.array([[np.nan, np.inf, -np.inf]], np.float32)
    x.view(np.uint32)[0, 0] = 0x7FC00123  # a NaN with a payload
    z, _, _, _, r, _, _ = sess.run(None, {"x": x, "ids": IDS})
    assert z.view(np.uint32).tolist() == x.view(np.uint32).tolist()  # Identity: exact bits
    assert np.isnan(r[0, 0]) and r[0, 1] == np.inf and r[0, 2] == 0.0  # Relu(-inf) = 0


def test_python_scalars_and_tuples_are_accepted_unlike_onnxruntime(ref) -> None:
    """A deliberate difference: ORT raises RuntimeError('Unable to handle object of type
    <class 'float'>') for a Python scalar; we convert it to the input's dtype."""
    graph = helper.make_graph([helper.make_node("Neg", ["s"], ["y"])], "g",
                              [helper.make_tensor_value_info("s", TensorProto.FLOAT, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                             ir_version=8).SerializeToString()
    (y,) = ort.InferenceSession(data).run(None, {"s": 1.5})
    assert y.dtype == np.float32 and y == -1.5
    with pytest.raises(RuntimeError, match="Unable to handle object"):
        onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"]).run(
            None, {"s": 1.5})
    z = ort.InferenceSession(MODEL).run(["z"], {"x": ((1, 2, 3),), "ids": IDS})[0]
    assert z.dtype == np.float32 and z.tolist() == [[1.0, 2.0, 3.0]]


@pytest.mark.parametrize("seed", [s for s in onnx_seeds() if not s.external and s.name !=
                                  "tensor_ops"], ids=lambda s: s.name)
def test_zero_size_batch_matches_onnxruntime(seed) -> None:
    feeds = {k: v[:0] if k == "x" else v for k, v in seed.feeds.items()}
    got = ort.InferenceSession(seed.data).run(None, feeds)
    want = onnxruntime.InferenceSession(seed.data,
                                        providers=["CPUExecutionProvider"]).run(None, feeds)
    assert [(g.shape, g.dtype) for g in got] == [(w.shape, w.dtype) for w in want]


def test_zero_size_batch_that_cannot_broadcast_fails_like_onnxruntime() -> None:
    """tensor_ops adds a [2, 3] constant: batch 0 cannot broadcast, in ORT either."""
    seed = next(s for s in onnx_seeds() if s.name == "tensor_ops")
    feeds = {"x": seed.feeds["x"][:0]}
    with pytest.raises(KernelError, match=r"Add .*float32\[0, 3\], float32\[2, 3\]"):
        ort.InferenceSession(seed.data).run(None, feeds)
    with pytest.raises(OrtC.Fail, match="(?i)broadcast"):
        onnxruntime.InferenceSession(seed.data, providers=["CPUExecutionProvider"]).run(
            None, feeds)


def test_ortvalue_inputs(sess) -> None:
    x = ort.OrtValue.ortvalue_from_numpy(X)
    (z,) = sess.run(["z"], {"x": x, "ids": IDS})
    np.testing.assert_array_equal(z, X)
    assert not np.shares_memory(z, X)


# -- outputs never alias ---------------------------------------------------------------------------
def test_outputs_never_alias_inputs_each_other_or_constants(sess) -> None:
    x = X.copy()
    ids = IDS.copy()
    outs = dict(zip(sess._output_names, sess.run(None, {"x": x, "ids": ids}), strict=True))
    for name, out in outs.items():
        assert out.flags.writeable, name  # ORT hands out writable arrays
        assert not np.shares_memory(out, x) and not np.shares_memory(out, ids), name
        for other_name, other in outs.items():
            if other_name != name:
                assert not np.shares_memory(out, other), (name, other_name)
    # Writing into every output changes nothing for the next run (constants included).
    for out in outs.values():
        out[...] = 99.0
    again = dict(zip(sess._output_names, sess.run(None, {"x": x, "ids": ids}), strict=True))
    np.testing.assert_array_equal(again["k"], CONST)
    np.testing.assert_array_equal(again["z"], X)
    np.testing.assert_array_equal(x, X)


@pytest.mark.parametrize("seed", [s for s in onnx_seeds() if not s.external],
                         ids=lambda s: s.name)
def test_a_returned_array_stays_valid_after_the_next_run(seed) -> None:
    """Results must not live in buffers a later run reuses (planner scratch, packed outputs)."""
    sess = ort.InferenceSession(seed.data)
    first = sess.run(None, seed.feeds)
    kept = [np.array(a, copy=True) for a in first]
    rng = np.random.default_rng(7)
    for _ in range(3):
        other = {k: (rng.standard_normal(v.shape).astype(v.dtype) if v.dtype.kind == "f"
                     else v) for k, v in seed.feeds.items()}
        sess.run(None, other)
    for a, b in zip(first, kept, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_failed_run_leaves_the_session_usable(sess) -> None:
    with pytest.raises(ValidationError):
        sess.run(None, _feed(x=np.zeros((2, 4), np.float32)))
    z = sess.run(["z"], _feed())[0]
    np.testing.assert_array_equal(z, X)
