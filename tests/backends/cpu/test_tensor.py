"""Shape/layout kernels (Reshape, Transpose, Concat, Split, Slice, Cast, Pad, ...) against
``onnx.reference``, per registered op version, attribute, mode and dtype. Cases the reference
cannot run (negative pads, numeric -> string formatting) are checked against ONNX Runtime;
cases where the reference disagrees with the spec text are checked against the spec's tables.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import onnx.defs
import pytest
from onnx import TensorProto as TP
from onnx import helper, numpy_helper
from oracle import assert_close, check_kernel, onnxruntime, reference

from pyflame_rt.backends.cpu import tensor as T
from pyflame_rt.ops import KernelContext, lookup

BF16 = np.dtype(ml_dtypes.bfloat16)
MAX_OPSET = onnx.defs.onnx_opset_version()
INT_MAX = np.iinfo(np.int64).max
INT_MIN = np.iinfo(np.int64).min


def versions(op: str, first: int = 1, last: int = MAX_OPSET) -> list[int]:
    """Every schema version of ``op`` in [first, last]: the opsets our kernels must serve."""
    return sorted({s.since_version for s in onnx.defs.get_all_schemas_with_history()
                   if s.name == op and s.domain == "" and first <= s.since_version <= last})


def ctx(noutputs: int, opset: int) -> KernelContext:
    return KernelContext(node=None, noutputs=noutputs, opset=opset)


def i64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def strings(*values: str, shape=None) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out if shape is None else out.reshape(shape)


def as_object(a: np.ndarray) -> np.ndarray:
    """The reference returns numpy unicode arrays for strings; we use object arrays."""
    out = np.empty(a.shape, dtype=object)
    out[...] = a.tolist() if a.ndim else a.item()
    return out


X34 = np.arange(12, dtype=np.float32).reshape(3, 4)
X234 = np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 7.5
DTYPES = [np.float32, np.float64, np.float16, np.int64, np.int32, np.int8, np.uint8, np.bool_,
          BF16]


def sample(shape, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    if dtype == object:
        return strings(*[f"s{i}" for i in range(n)], shape=shape)
    if dtype == np.bool_:
        return (np.arange(n) % 3 == 0).reshape(shape)
    return (np.arange(n) % 100).astype(np.float32).astype(dtype).reshape(shape)


def test_registered_versions():
    """Each op resolves to a kernel at every opset from 7 to the newest onnx knows."""
    ops = ["Reshape", "Transpose", "Concat", "Split", "Slice", "Squeeze", "Unsqueeze", "Flatten",
           "Expand", "Constant", "ConstantOfShape", "Identity", "Cast", "CastLike", "Shape",
           "Size", "Tile", "Pad", "CenterCropPad", "Range", "DepthToSpace", "SpaceToDepth",
           "EyeLike", "Trilu"]
    for op in ops:
        first = versions(op)[0]
        for opset in range(max(first, 7), MAX_OPSET + 1):
            assert lookup(op, opset=opset).since <= opset
    assert lookup("Split", opset=17).fn is T.split_13
    assert lookup("Split", opset=18).fn is T.split_18
    assert lookup("Slice", opset=9).fn is T.slice_1
    assert lookup("Pad", opset=10).fn is T.pad_2


# --------------------------------------------------------------------------------- Reshape

@pytest.mark.parametrize("opset", versions("Reshape", 5))
@pytest.mark.parametrize("target", [(4, 3), (-1,), (0, -1), (0, 2, 2), (-1, 2, 1), (12,)])
def test_reshape(opset, target):
    check_kernel(T.reshape, "Reshape", [X34, i64(*target)], opset=opset)


@pytest.mark.parametrize("dtype", DTYPES + [object])
def test_reshape_dtypes(dtype):
    check_kernel(T.reshape, "Reshape", [sample((2, 6), dtype), i64(3, -1)])


def test_reshape_to_scalar_and_allowzero():
    check_kernel(T.reshape, "Reshape", [np.array([5.0], np.float32), np.zeros(0, np.int64)])
    empty = np.zeros((0, 4), np.float32)
    check_kernel(T.reshape, "Reshape", [empty, i64(4, 0)], {"allowzero": 1}, opset=14)
    check_kernel(T.reshape, "Reshape", [empty, i64(0, 4)], {"allowzero": 0}, opset=14)


def test_reshape_1_matches_reshape_5():
    expected = reference("Reshape", [X234, i64(0, -1)], opset=5)[0]
    assert_close(T.reshape_1(X234, shape=[0, -1]), expected)


@pytest.mark.parametrize("target, allowzero, match", [
    ((-1, -1), 0, "more than one -1"), ((5, -1), 0, "cannot infer"), ((5, 5), 0, "12 elements"),
    ((3, 4, 0), 0, "position 2"), ((0, -1), 1, "both 0 and -1"), ((-2, 6), 0, "negative"),
])
def test_reshape_errors(target, allowzero, match):
    with pytest.raises(ValueError, match=match):
        T.reshape(X34, i64(*target), allowzero=allowzero)


# ------------------------------------------------------------------------------ Transpose

@pytest.mark.parametrize("opset", versions("Transpose"))
@pytest.mark.parametrize("perm", [None, [0, 1, 2], [2, 0, 1], [1, 2, 0]])
def test_transpose(opset, perm):
    attrs = {} if perm is None else {"perm": perm}
    check_kernel(T.transpose, "Transpose", [X234], attrs, opset=opset)


@pytest.mark.parametrize("dtype", [object, BF16, np.bool_, np.int64])
def test_transpose_dtypes(dtype):
    check_kernel(T.transpose, "Transpose", [sample((2, 3), dtype)])


def test_transpose_bad_perm():
    with pytest.raises(ValueError, match="not a permutation"):
        T.transpose(X234, perm=[0, 0, 1])


# --------------------------------------------------------------------------------- Concat

@pytest.mark.parametrize("opset", versions("Concat", 4))
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_concat(opset, axis):
    if axis < 0 and opset < 11:
        pytest.skip("negative axis exists from Concat-11 on")
    ax = axis % 3
    parts = np.split(X234, [1], axis=ax) if X234.shape[ax] > 1 else [X234, X234]
    check_kernel(T.concat, "Concat", [*parts, parts[0]], {"axis": axis}, opset=opset)


@pytest.mark.parametrize("dtype", [object, np.bool_, BF16, np.uint64])
def test_concat_dtypes(dtype):
    check_kernel(T.concat, "Concat", [sample((2, 2), dtype), sample((1, 2), dtype)],
                 {"axis": 0})


def test_concat_1_default_axis_and_errors():
    expected = reference("Concat", [X34, X34], {"axis": 1}, opset=4)[0]
    assert_close(T.concat_1(X34, X34), expected)
    with pytest.raises(ValueError, match="does not match"):
        T.concat(X34, X34[:2], axis=1)
    with pytest.raises(ValueError, match="requires the 'axis'"):
        T.concat(X34, X34)


# ---------------------------------------------------------------------------------- Split

@pytest.mark.parametrize("opset", [2, 11])
def test_split_attribute(opset):
    check_kernel(T.split_2, "Split", [X234], {"axis": 2, "split": [1, 3]}, noutputs=2,
                 opset=opset)
    check_kernel(T.split_2, "Split", [X234], {"axis": 1}, noutputs=3, opset=opset,
                 _ctx=ctx(3, opset))
    if opset >= 11:
        check_kernel(T.split_2, "Split", [X234], {"axis": -1, "split": [2, 1, 1]},
                     noutputs=3, opset=opset)


def test_split_13_input_and_equal():
    check_kernel(T.split_13, "Split", [X234, i64(1, 0, 2)], {"axis": 1}, noutputs=3,
                 opset=13)
    check_kernel(T.split_13, "Split", [X234], {"axis": -1}, noutputs=2, opset=13,
                 _ctx=ctx(2, 13))
    check_kernel(T.split_13, "Split", [sample((6,), object)], {}, noutputs=3, opset=13,
                 _ctx=ctx(3, 13))


@pytest.mark.parametrize("opset", versions("Split", 18))
@pytest.mark.parametrize("dim, n", [(7, 3), (7, 4), (6, 3), (4, 3), (5, 1)])
def test_split_18_num_outputs(opset, dim, n):
    x = np.arange(dim * 2, dtype=np.float32).reshape(2, dim)
    check_kernel(T.split_18, "Split", [x], {"axis": 1, "num_outputs": n}, noutputs=n,
                 opset=opset, _ctx=ctx(n, opset))
    # Without num_outputs the number of outputs decides (the reference does the same).
    check_kernel(T.split_18, "Split", [x], {"axis": -1}, noutputs=n, opset=opset,
                 _ctx=ctx(n, opset))


def test_split_18_sizes_input():
    check_kernel(T.split_18, "Split", [X234, i64(3, 1)], {"axis": 2}, noutputs=2, opset=18,
                 _ctx=ctx(2, 18))


def test_split_1_matches_split_2():
    expected = reference("Split", [X234], {"axis": 2, "split": [1, 3]}, noutputs=2, opset=2)
    for got, exp in zip(T.split_1(X234, i64(1, 3), axis=2), expected):
        assert_close(got, exp)
    for got, exp in zip(T.split_1(X234, axis=2, split=[1, 3]), expected):
        assert_close(got, exp)


def test_split_errors():
    with pytest.raises(ValueError, match="sum to 4"):
        T.split_13(X234, i64(1, 2), axis=2)
    with pytest.raises(ValueError, match="evenly"):
        T.split_13(X234, axis=2, _ctx=ctx(3, 13))
    with pytest.raises(ValueError, match="not both"):
        T.split_18(X234, i64(2, 2), axis=2, num_outputs=2)
    with pytest.raises(ValueError, match="num_outputs=2 but the node has 3"):
        T.split_18(X234, axis=2, num_outputs=2, _ctx=ctx(3, 18))
    with pytest.raises(ValueError, match="2 entries but the node has 3"):
        T.split_13(X234, i64(2, 2), axis=2, _ctx=ctx(3, 13))


# ---------------------------------------------------------------------------------- Slice

SLICES = [
    # starts, ends, axes, steps
    ((0, 1), (2, 3), None, None),
    ((1,), (INT_MAX,), (1,), None),
    ((-1,), (INT_MIN,), (1,), (-1,)),
    ((-2, 3), (-100, 0), (0, -1), (-1, -2)),
    ((10,), (-10,), (2,), (-3,)),
    ((0, 0, 0), (2, 3, 4), (0, 1, 2), (2, 2, 3)),
    ((-100,), (100,), (-1,), (1,)),
    ((3,), (1,), (2,), (1,)),
    ((2,), (2,), (0,), (-1,)),
    ((0,), (-1,), (0,), (1,)),
]


@pytest.mark.parametrize("opset", versions("Slice", 10))
@pytest.mark.parametrize("starts, ends, axes, steps", SLICES)
def test_slice(opset, starts, ends, axes, steps):
    if axes is not None and min(axes) < 0 and opset < 11:
        pytest.skip("negative axes exist from Slice-11 on")
    inputs = [X234, i64(*starts), i64(*ends)]
    if axes is not None or steps is not None:
        inputs.append(None if axes is None else i64(*axes))
    if steps is not None:
        inputs.append(i64(*steps))
    check_kernel(T.slice_10, "Slice", inputs, opset=opset)


@pytest.mark.parametrize("starts, ends, axes", [((0, 1), (2, 3), None), ((1,), (1000,), (1,)),
                                               ((-2,), (-1,), (2,)), ((0,), (0,), (0,))])
def test_slice_1(starts, ends, axes):
    attrs = {"starts": list(starts), "ends": list(ends)}
    if axes is not None:
        attrs["axes"] = list(axes)
    check_kernel(T.slice_1, "Slice", [X234], attrs, opset=1)


@pytest.mark.parametrize("dtype", [object, np.bool_, BF16])
def test_slice_dtypes(dtype):
    check_kernel(T.slice_10, "Slice", [sample((3, 4), dtype), i64(-1), i64(0), i64(1), i64(-1)])


@pytest.mark.parametrize("dim, start, end, step", [(2, -7, -3, -1), (3, -6, -4, -2),
                                                   (4, -9, INT_MIN, -1), (5, 9, -9, -2)])
def test_slice_negative_step_clamps_start_like_spec(dim, start, end, step):
    # The spec clamps a (negative-step) start below 0 up to 0, so element 0 is kept; ONNX
    # Runtime does this, while the reference uses Python slicing and returns nothing.
    x = np.arange(dim, dtype=np.float32)
    inputs = [x, i64(start), i64(end), i64(0), i64(step)]
    assert_close(T.slice_10(*inputs), onnxruntime("Slice", inputs)[0])


def test_slice_empty_axis_negative_step():
    x = np.zeros((0, 3), np.float32)
    check_kernel(T.slice_10, "Slice", [x, i64(-1), i64(INT_MIN), i64(0), i64(-1)])


def test_slice_errors():
    with pytest.raises(ValueError, match="step for axis 0 is 0"):
        T.slice_10(X234, i64(0), i64(1), i64(0), i64(0))
    with pytest.raises(ValueError, match="repeats an axis"):
        T.slice_10(X234, i64(0, 0), i64(1, 1), i64(0, -3))
    with pytest.raises(ValueError, match="same length"):
        T.slice_10(X234, i64(0, 0), i64(1))


# ---------------------------------------------------------------------- Squeeze / Unsqueeze

X1 = np.arange(6, dtype=np.float32).reshape(1, 3, 1, 2, 1)


@pytest.mark.parametrize("opset", [1, 11])
@pytest.mark.parametrize("axes", [None, [0], [0, 2], [0, 2, 4]])
def test_squeeze_attribute(opset, axes):
    check_kernel(T.squeeze_1, "Squeeze", [X1], None if axes is None else {"axes": axes},
                 opset=opset)


def test_squeeze_unsorted_axes():
    # The reference squeezes unsorted axes one at a time and fails; the set is what counts.
    expected = reference("Squeeze", [X1], {"axes": [0, 2, 4]}, opset=11)[0]
    assert_close(T.squeeze_1(X1, axes=[4, 0, 2]), expected)


@pytest.mark.parametrize("opset", versions("Squeeze", 13))
@pytest.mark.parametrize("axes", [None, [0], [-1, -3], [0, 2, 4]])
def test_squeeze_input(opset, axes):
    inputs = [X1] if axes is None else [X1, i64(*axes)]
    check_kernel(T.squeeze_13, "Squeeze", inputs, opset=opset)


def test_squeeze_negative_axes_11_and_errors():
    check_kernel(T.squeeze_1, "Squeeze", [X1], {"axes": [-1, -5]}, opset=11)
    check_kernel(T.squeeze_13, "Squeeze", [sample((1, 2), object), i64(0)])
    with pytest.raises(ValueError, match="has size 3, not 1"):
        T.squeeze_13(X1, i64(1))
    with pytest.raises(ValueError, match="out of range"):
        T.squeeze_13(X1, i64(5))


@pytest.mark.parametrize("opset", [1, 11])
@pytest.mark.parametrize("axes", [[0], [0, 3], [3, 0], [1, 2, 3]])
def test_unsqueeze_attribute(opset, axes):
    # "The order of values in axes does not matter"; the reference inserts them one at a time
    # in the given order, so it is asked with the axes sorted.
    expected = reference("Unsqueeze", [X34], {"axes": sorted(axes)}, opset=opset)[0]
    assert_close(T.unsqueeze_1(X34, axes=axes), expected)


@pytest.mark.parametrize("opset", versions("Unsqueeze", 13))
@pytest.mark.parametrize("axes", [[0], [-1], [0, -1], [1, 3, -1]])
def test_unsqueeze_input(opset, axes):
    check_kernel(T.unsqueeze_13, "Unsqueeze", [X34, i64(*axes)], opset=opset)


def test_unsqueeze_scalar_strings_and_errors():
    check_kernel(T.unsqueeze_13, "Unsqueeze", [np.array(3.0, np.float32), i64(0)])
    check_kernel(T.unsqueeze_13, "Unsqueeze", [sample((2,), object), i64(-1)])
    check_kernel(T.unsqueeze_1, "Unsqueeze", [X34], {"axes": [-1, 0]}, opset=11)
    with pytest.raises(ValueError, match="repeats"):
        T.unsqueeze_13(X34, i64(0, -4))
    with pytest.raises(ValueError, match="out of range"):
        T.unsqueeze_13(X34, i64(3))
    with pytest.raises(ValueError, match="requires the 'axes'"):
        T.unsqueeze_1(X34)


# -------------------------------------------------------------------------------- Flatten

@pytest.mark.parametrize("opset", versions("Flatten"))
@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1, -3])
def test_flatten(opset, axis):
    if axis < 0 and opset < 11:
        pytest.skip("negative axis exists from Flatten-11 on")
    check_kernel(T.flatten, "Flatten", [X234], {"axis": axis}, opset=opset)


def test_flatten_dtypes_and_error():
    check_kernel(T.flatten, "Flatten", [sample((2, 3, 2), object)])
    # The reference cannot reshape zero-size tensors (it uses -1); ONNX Runtime can.
    x = np.zeros((2, 0, 2), np.float32)
    assert_close(T.flatten(x, axis=2), onnxruntime("Flatten", [x], {"axis": 2})[0])
    with pytest.raises(ValueError, match="out of range"):
        T.flatten(X234, axis=4)


# --------------------------------------------------------------------------------- Expand

@pytest.mark.parametrize("opset", versions("Expand"))
@pytest.mark.parametrize("xshape, target", [((3, 1), (2, 3, 4)), ((3, 1), (1,)),
                                            ((1, 4), (3, 1)), ((2, 3, 4), (1, 1, 1)),
                                            ((), (2, 2)), ((1, 3), (0, 1))])
def test_expand(opset, xshape, target):
    x = np.arange(int(np.prod(xshape)), dtype=np.float32).reshape(xshape)
    check_kernel(T.expand, "Expand", [x, i64(*target)], opset=opset)


@pytest.mark.parametrize("dtype", [object, np.bool_, BF16, np.int8])
def test_expand_dtypes(dtype):
    check_kernel(T.expand, "Expand", [sample((2, 1), dtype), i64(2, 3)])


def test_expand_result_is_writable_copy_and_error():
    x = np.ones((3, 1), np.float32)
    y = T.expand(x, i64(3, 4))
    y[0, 0] = 5
    assert x[0, 0] == 1
    with pytest.raises(ValueError, match="cannot be broadcast"):
        T.expand(x, i64(2, 4))


# -------------------------------------------------------------------- Constant & friends

@pytest.mark.parametrize("value", [np.array([[1.5, -2]], np.float32), np.array(7, np.int64),
                                   np.array([True, False]), np.zeros((0, 3), np.float16)])
def test_constant_value(value):
    expected = reference("Constant", [], {"value": numpy_helper.from_array(value)})[0]
    assert_close(T.constant(value=value), expected)


@pytest.mark.parametrize("attr, value", [("value_float", 2.5), ("value_floats", [1.0, -3.25]),
                                         ("value_int", -4), ("value_ints", [1, 2, 3]),
                                         ("value_floats", [])])
def test_constant_scalar_attributes(attr, value):
    if attr == "value_floats" and not value:
        # helper.make_node cannot infer the type of an empty list; spell the attribute out.
        node_attr = helper.make_attribute(attr, value, attr_type=onnx.AttributeProto.FLOATS)
        expected = np.zeros(0, np.float32)
        assert node_attr.type == onnx.AttributeProto.FLOATS
    else:
        expected = reference("Constant", [], {attr: value})[0]
    assert_close(T.constant(**{attr: value}), expected)


def test_constant_strings():
    expected = reference("Constant", [], {"value_strings": ["ab", "c"]})[0]
    assert_close(T.constant(value_strings=["ab", b"c"]), as_object(expected))
    expected = reference("Constant", [], {"value_string": "hello"})[0]
    assert_close(T.constant(value_string=b"hello"), as_object(expected))


def test_constant_sparse_value_dense_after_import():
    # The importer densifies sparse_value (the reference returns a SparseTensor object we
    # cannot compare); the kernel must hand that dense array through unchanged.
    sparse = helper.make_sparse_tensor(
        numpy_helper.from_array(np.array([3.0, 4.0], np.float32), "values"),
        numpy_helper.from_array(np.array([2, 3], np.int64), "indices"), [2, 3])
    dense = np.zeros(6, np.float32)
    dense[numpy_helper.to_array(sparse.indices)] = numpy_helper.to_array(sparse.values)
    assert_close(T.constant(sparse_value=dense.reshape(2, 3)),
                 np.array([[0, 0, 3.0], [4.0, 0, 0]], np.float32))


def test_constant_errors():
    with pytest.raises(ValueError, match="exactly one"):
        T.constant()
    with pytest.raises(ValueError, match="exactly one"):
        T.constant(value_int=1, value_float=2.0)


@pytest.mark.parametrize("opset", versions("ConstantOfShape"))
@pytest.mark.parametrize("value", [None, np.array([5], np.int64), np.array([2.5], np.float16),
                                   np.array([True]), np.array([-1], np.int8),
                                   np.array([1.5], BF16)])
@pytest.mark.parametrize("shape", [(2, 3), (), (0, 2)])
def test_constant_of_shape(opset, value, shape):
    if value is not None and value.dtype == BF16 and opset < 20:
        pytest.skip("bfloat16 values exist from ConstantOfShape-20 on")
    attrs = {} if value is None else {"value": numpy_helper.from_array(value)}
    expected = reference("ConstantOfShape", [i64(*shape)], attrs, opset=opset)[0]
    assert_close(T.constant_of_shape(i64(*shape), value=value), expected)


def test_constant_of_shape_errors():
    with pytest.raises(ValueError, match="negative"):
        T.constant_of_shape(i64(2, -1))
    with pytest.raises(ValueError, match="one element"):
        T.constant_of_shape(i64(2), value=np.array([1, 2], np.int64))


@pytest.mark.parametrize("opset", versions("Identity"))
@pytest.mark.parametrize("dtype", [np.float32, object, BF16, np.bool_])
def test_identity(opset, dtype):
    check_kernel(T.identity, "Identity", [sample((2, 3), dtype)], opset=opset)


def test_identity_passes_sequences_and_optionals():
    seq = [np.ones(2, np.float32), np.zeros(3, np.int64)]
    assert T.identity(seq) is seq
    assert T.identity(None) is None


# ----------------------------------------------------------------------------------- Cast

NUMERIC = {TP.FLOAT: np.float32, TP.DOUBLE: np.float64, TP.FLOAT16: np.float16,
           TP.BFLOAT16: BF16, TP.INT8: np.int8, TP.INT16: np.int16, TP.INT32: np.int32,
           TP.INT64: np.int64, TP.UINT8: np.uint8, TP.UINT16: np.uint16,
           TP.UINT32: np.uint32, TP.UINT64: np.uint64, TP.BOOL: np.bool_}
FLOAT8 = {TP.FLOAT8E4M3FN: ml_dtypes.float8_e4m3fn, TP.FLOAT8E4M3FNUZ: ml_dtypes.float8_e4m3fnuz,
          TP.FLOAT8E5M2: ml_dtypes.float8_e5m2, TP.FLOAT8E5M2FNUZ: ml_dtypes.float8_e5m2fnuz}


@pytest.mark.parametrize("src", list(NUMERIC))
@pytest.mark.parametrize("to", list(NUMERIC))
def test_cast_numeric_pairs(src, to):
    # Values representable (or truncated) in every type: no out-of-range float -> int cases,
    # which the spec leaves undefined.
    x = np.array([[0, 1, 2.75, 7], [100, 0.5, 127, 3]], np.float32).astype(NUMERIC[src])
    check_kernel(T.cast, "Cast", [x], {"to": to})


@pytest.mark.parametrize("opset", [6, 9, 13])
def test_cast_older_versions_and_signed(opset):
    x = np.array([-3.5, -1, 0, 2.25, 1e4], np.float64)
    for to in (TP.FLOAT, TP.FLOAT16, TP.INT32, TP.INT64, TP.BOOL):
        check_kernel(T.cast, "Cast", [x], {"to": to}, opset=opset)


def test_cast_integer_wraparound():
    check_kernel(T.cast, "Cast", [np.array([200, -200, 300, 127], np.int16)], {"to": TP.INT8})
    check_kernel(T.cast, "Cast", [np.array([-1, 256, 511], np.int64)], {"to": TP.UINT8})
    check_kernel(T.cast, "Cast", [np.array([np.nan, -0.0, 0.0, np.inf], np.float32)],
                 {"to": TP.BOOL})


def test_cast_1_type_names():
    x = np.array([1.5, -2.0], np.float32)
    for name, number in (("INT32", TP.INT32), ("DOUBLE", TP.DOUBLE), ("float16", TP.FLOAT16)):
        expected = reference("Cast", [x], {"to": number}, opset=6)[0]
        assert_close(T.cast(x, to=name), expected)
    with pytest.raises(ValueError, match="unknown type name"):
        T.cast(x, to="REAL")


F8_INPUT = np.array([0.3, -0.0, 0.0, 1e9, -1e9, np.inf, -np.inf, np.nan, 448, 465, 500,
                     57344, 60000, 1e-7, -2.7, 0.001953125], np.float32)


@pytest.mark.parametrize("opset", [19, 21, MAX_OPSET])
@pytest.mark.parametrize("to", list(FLOAT8))
@pytest.mark.parametrize("saturate", [0, 1])
def test_cast_to_float8(opset, to, saturate):
    check_kernel(T.cast, "Cast", [F8_INPUT], {"to": to, "saturate": saturate}, opset=opset)
    with np.errstate(over="ignore"):  # 1e9 is inf in float16, which is part of the test
        half = F8_INPUT.astype(np.float16)
    check_kernel(T.cast, "Cast", [half],
                 {"to": to, "saturate": saturate}, opset=opset)


@pytest.mark.parametrize("to", list(FLOAT8))
def test_cast_float8_from_other_types(to):
    check_kernel(T.cast, "Cast", [np.array([-300, -1, 0, 3, 1000], np.int64)], {"to": to})
    check_kernel(T.cast, "Cast", [np.array([True, False])], {"to": to})
    check_kernel(T.cast, "Cast", [np.array([1.5, -300, 2e5], BF16)], {"to": to})
    f8 = np.array([0.5, -2, 3, 240], np.float32).astype(FLOAT8[to])
    for back in (TP.FLOAT, TP.FLOAT16, TP.BFLOAT16, TP.INT32, TP.BOOL, TP.DOUBLE):
        check_kernel(T.cast, "Cast", [f8], {"to": back})


@pytest.mark.parametrize("to", [TP.INT4, TP.UINT4])
def test_cast_int4(to):
    check_kernel(T.cast, "Cast", [np.arange(-9, 16, dtype=np.int64)], {"to": to})
    check_kernel(T.cast, "Cast", [np.array([-8, -1.5, 0, 2.5, 7], np.float32)], {"to": to})
    check_kernel(T.cast, "Cast", [np.array([True, False])], {"to": to})
    packed = np.array([0, 1, 5, 7], np.int64).astype(ml_dtypes.int4 if to == TP.INT4
                                                     else ml_dtypes.uint4)
    for back in (TP.FLOAT, TP.INT64, TP.UINT8, TP.FLOAT16, TP.BOOL):
        check_kernel(T.cast, "Cast", [packed], {"to": back})


def test_cast_float4_and_int2():
    x = np.array([0.25, 0.48, 1.5, 2.6, -5.0, 7.0, 100.0], np.float32)
    check_kernel(T.cast, "Cast", [x], {"to": TP.FLOAT4E2M1}, opset=23)
    check_kernel(T.cast, "Cast", [x.astype(ml_dtypes.float4_e2m1fn)], {"to": TP.FLOAT},
                 opset=23)
    for to in (TP.INT2, TP.UINT2):
        check_kernel(T.cast, "Cast", [np.arange(-3, 4, dtype=np.int64)], {"to": to},
                     opset=25)


@pytest.mark.parametrize("round_mode", ["up", "down", "nearest"])
@pytest.mark.parametrize("saturate", [0, 1])
def test_cast_to_float8e8m0_normal_values(round_mode, saturate):
    x = np.array([1.0, 1.5, 1.25, 1.75, 3.0, 0.3, 1e-30, 2.0**-126, 5.0e37, 1e38, 2.0**127,
                  3.0e38, 6.0], np.float32)
    check_kernel(T.cast, "Cast", [x], {"to": TP.FLOAT8E8M0, "saturate": saturate,
                                       "round_mode": round_mode}, opset=24)


def test_cast_to_float8e8m0_special_values_follow_spec_table():
    # The spec's table for float8e8m0 (the reference maps Inf to NaN and 0 to E8M0_MIN even
    # when not saturating, so these cases are checked against the spec text directly).
    x = np.array([0.0, np.nan, np.inf, 3.0e38, 2.0**-140], np.float32)
    sat_up = T.cast(x, to=TP.FLOAT8E8M0, saturate=1, round_mode="up").view(np.uint8)
    assert sat_up.tolist() == [0, 255, 254, 254, 0]  # 0, NaN, MAX, MAX, MIN
    nosat = T.cast(x, to=TP.FLOAT8E8M0, saturate=0, round_mode="nearest").view(np.uint8)
    assert nosat.tolist() == [255, 255, 255, 255, 255]  # all NaN
    with pytest.raises(ValueError, match="round_mode"):
        T.cast(x, to=TP.FLOAT8E8M0, round_mode="zero")


def test_cast_numbers_to_strings_like_onnxruntime():
    for x in (np.array([0.1, 1.0, 1e20, np.nan, -np.inf, np.inf, 1 / 3, -0.0, 123456789.0,
                        1e-7], np.float32),
              np.array([1 / 3, 3.14159265, 1e16, 100.0], np.float64),
              np.array([0.5, 1000, 2.1], np.float16),
              np.array([-5, 0, 2**40], np.int64), np.array([0, 200, 255], np.uint8),
              np.array([True, False])):
        expected = onnxruntime("Cast", [x], {"to": TP.STRING})[0]
        assert_close(T.cast(x, to=TP.STRING), expected)
    assert T.cast(np.array([1.5], BF16), to=TP.STRING).tolist() == ["1.5"]


def test_cast_strings_to_numbers():
    s = strings("3.14", "1e-5", "-INF", "+INF", "inf", "NaN", "nan", "1000", " 2.5", "-0")
    for to in (TP.FLOAT, TP.DOUBLE, TP.FLOAT16):
        check_kernel(T.cast, "Cast", [s], {"to": to})
    ints = strings("100", "-7", "0", "42")
    for to in (TP.INT64, TP.INT32, TP.INT8, TP.UINT16):
        check_kernel(T.cast, "Cast", [ints if to != TP.UINT16 else strings("100", "0")],
                     {"to": to})
    assert T.cast(strings("100.5", "-2.7"), to=TP.INT64).tolist() == [100, -2]
    assert T.cast(s, to=TP.BFLOAT16).dtype == BF16
    flagged = strings("0", "1", "2", "true", "False")
    assert T.cast(flagged, to=TP.BOOL).tolist() == [False, True, True, True, False]
    expected = onnxruntime("Cast", [strings("0", "1", "2")], {"to": TP.BOOL})[0]
    assert_close(T.cast(strings("0", "1", "2"), to=TP.BOOL), expected)
    assert_close(T.cast(strings("a", "b"), to=TP.STRING), strings("a", "b"))
    with pytest.raises(ValueError, match="not a number"):
        T.cast(strings("hello"), to=TP.FLOAT)


def test_cast_same_type_and_missing_to():
    x = np.array([1, 2], np.int64)
    assert_close(T.cast(x, to=TP.INT64), x)
    with pytest.raises(ValueError, match="requires the 'to'"):
        T.cast(x)


@pytest.mark.parametrize("opset", versions("CastLike"))
@pytest.mark.parametrize("target", [np.float16, np.int32, np.bool_, np.float64, BF16])
def test_cast_like(opset, target):
    x = np.array([0.0, 1.5, -2.25, 100.0], np.float32)
    check_kernel(T.cast_like, "CastLike", [x, np.zeros(1, target)], opset=opset)


@pytest.mark.parametrize("saturate", [0, 1])
def test_cast_like_float8_saturate(saturate):
    target = np.zeros(1, ml_dtypes.float8_e4m3fn)
    check_kernel(T.cast_like, "CastLike", [F8_INPUT, target], {"saturate": saturate},
                 opset=19)


def test_cast_like_strings():
    expected = reference("CastLike", [strings("1.5", "-2"), np.zeros(1, np.float32)])[0]
    assert_close(T.cast_like(strings("1.5", "-2"), np.zeros(1, np.float32)), expected)
    expected = onnxruntime("CastLike", [np.array([1.5, 2], np.float32), strings("")])[0]
    assert_close(T.cast_like(np.array([1.5, 2], np.float32), strings("")), expected)


# ---------------------------------------------------------------------------- Shape & Size

@pytest.mark.parametrize("opset", versions("Shape"))
def test_shape(opset):
    check_kernel(T.shape, "Shape", [X234], opset=opset)
    check_kernel(T.shape, "Shape", [np.array(1.0, np.float32)], opset=opset)
    check_kernel(T.shape, "Shape", [sample((2, 0), object)], opset=opset)


@pytest.mark.parametrize("start, end", [(1, None), (-1, None), (0, -1), (1, 2), (-10, 10),
                                        (2, 1), (None, 5), (3, None)])
def test_shape_start_end(start, end):
    attrs = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    check_kernel(T.shape, "Shape", [X234], attrs, opset=15)


@pytest.mark.parametrize("opset", versions("Size"))
@pytest.mark.parametrize("shape", [(2, 3, 4), (), (0, 5)])
def test_size(opset, shape):
    check_kernel(T.size, "Size", [np.zeros(shape, np.float32)], opset=opset)
    check_kernel(T.size, "Size", [sample(shape, object)], opset=opset)


# ----------------------------------------------------------------------------------- Tile

@pytest.mark.parametrize("opset", versions("Tile", 6))
@pytest.mark.parametrize("repeats", [(1, 1, 1), (2, 1, 3), (1, 0, 2)])
def test_tile(opset, repeats):
    check_kernel(T.tile, "Tile", [X234, i64(*repeats)], opset=opset)


@pytest.mark.parametrize("dtype", [object, np.bool_, BF16])
def test_tile_dtypes(dtype):
    check_kernel(T.tile, "Tile", [sample((2, 2), dtype), i64(2, 3)])


def test_tile_1_and_errors():
    expected = reference("Tile", [X234, i64(1, 3, 1)], opset=6)[0]
    assert_close(T.tile_1(X234, np.array(3, np.int64), np.array(1, np.int64)), expected)
    with pytest.raises(ValueError, match="one non-negative entry per axis"):
        T.tile(X234, i64(1, 2))
    with pytest.raises(ValueError, match="one non-negative entry per axis"):
        T.tile(X234, i64(1, -2, 1))


# ------------------------------------------------------------------------------------ Pad

@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
@pytest.mark.parametrize("pads", [(0, 1, 0, 2), (1, 0, 2, 1), (0, 0, 0, 0)])
def test_pad_2(mode, pads):
    check_kernel(T.pad_2, "Pad", [X34], {"pads": list(pads), "mode": mode, "value": 1.5},
                 opset=2)


def test_pad_1_matches_pad_2():
    expected = reference("Pad", [X34], {"pads": [1, 0, 2, 1], "value": -1.0}, opset=2)[0]
    assert_close(T.pad_1(X34, paddings=[1, 0, 2, 1], value=-1.0), expected)


@pytest.mark.parametrize("opset", versions("Pad", 11))
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("pads", [(1, 2, 0, 2, 1, 3), (0, 0, 1, 0, 0, 0)])
def test_pad_inputs(opset, mode, pads):
    if mode == "wrap" and opset < 19:
        pytest.skip("wrap mode exists from Pad-19 on")
    check_kernel(T.pad_11, "Pad", [X234, i64(*pads)], {"mode": mode}, opset=opset)
    if mode == "constant":
        check_kernel(T.pad_11, "Pad", [X234, i64(*pads), np.array(2.5, np.float32)],
                     opset=opset)


@pytest.mark.parametrize("opset", versions("Pad", 18))
@pytest.mark.parametrize("axes", [(1,), (-1, 0), (2, 0)])
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad_axes(opset, axes, mode):
    pads = i64(*([1] * len(axes) + [2] * len(axes)))
    check_kernel(T.pad_11, "Pad", [X234, pads, None, i64(*axes)], {"mode": mode},
                 opset=opset)


@pytest.mark.parametrize("dtype", [np.int64, np.bool_, BF16, np.uint8, object])
def test_pad_dtypes(dtype):
    x = sample((2, 3), dtype)
    check_kernel(T.pad_11, "Pad", [x, i64(1, 0, 0, 2)], {"mode": "edge"})
    if dtype != object:
        check_kernel(T.pad_11, "Pad", [x, i64(1, 0, 0, 2)])


def test_pad_strings_constant_default_is_empty_string():
    x = strings("a", "b")
    # The spec: the constant defaults to 0, empty string, or False.
    assert T.pad_11(x, i64(1, 2)).tolist() == ["", "a", "b", "", ""]
    assert T.pad_11(x, i64(1, 0), strings("z")).tolist() == ["z", "a", "b"]


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("pads", [(2, -1), (-1, 3), (-2, -1)])
def test_pad_negative_pads_like_onnxruntime(mode, pads):
    # onnx.reference cannot crop (negative pads); ONNX Runtime crops first, then pads.
    x = np.arange(5, dtype=np.float32)
    expected = onnxruntime("Pad", [x, i64(*pads)], {"mode": mode}, opset=19)[0]
    assert_close(T.pad_11(x, i64(*pads), mode=mode), expected)


def test_pad_errors():
    with pytest.raises(ValueError, match="2 per padded axis"):
        T.pad_11(X34, i64(1, 1))
    with pytest.raises(ValueError, match="unknown mode"):
        T.pad_11(X34, i64(1, 1, 1, 1), mode="mirror")
    with pytest.raises(ValueError, match="remove more than"):
        T.pad_11(X34, i64(-2, 0, -2, 0))
    with pytest.raises(ValueError, match="cannot pad axis 0 of size 0"):
        T.pad_11(np.zeros((0, 2), np.float32), i64(1, 0, 0, 0), mode="edge")


# -------------------------------------------------------------------------- CenterCropPad

@pytest.mark.parametrize("shape, axes", [((2, 2, 2), None), ((3, 5, 7), None),
                                         ((1, 6), [1, 2]), ((5,), [-2]), ((4, 1), [-1, 0])])
def test_center_crop_pad(shape, axes):
    attrs = {} if axes is None else {"axes": axes}
    check_kernel(T.center_crop_pad, "CenterCropPad", [X234, i64(*shape)], attrs, opset=18)


def test_center_crop_pad_dtypes_and_errors():
    check_kernel(T.center_crop_pad, "CenterCropPad", [sample((3, 3), np.int32), i64(4, 2)],
                 opset=18)
    # The spec pads with zero; for strings that is the empty string (the reference writes 0).
    got = T.center_crop_pad(strings("a", "b"), i64(3))
    assert got.tolist() == ["a", "b", ""]
    with pytest.raises(ValueError, match="2 axes"):
        T.center_crop_pad(X34, i64(2))


# ---------------------------------------------------------------------------------- Range

@pytest.mark.parametrize("opset", versions("Range"))
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.int16, np.float32, np.float64])
@pytest.mark.parametrize("start, limit, delta", [(3, 9, 3), (10, 4, -2), (0, 10, 1), (5, 5, 1),
                                                 (5, 1, 1), (1, 10, 4), (-3, 4, 2)])
def test_range(opset, dtype, start, limit, delta):
    inputs = [np.array(v, dtype) for v in (start, limit, delta)]
    check_kernel(T.range_, "Range", inputs, opset=opset)


@pytest.mark.parametrize("opset", versions("Range"))
def test_range_fractional(opset):
    for dtype in (np.float32, np.float64):
        inputs = [np.array(v, dtype) for v in (1.0, 10.0, 0.3)]
        check_kernel(T.range_, "Range", inputs, opset=opset)
        inputs = [np.array(v, dtype) for v in (2.5, -1.0, -0.7)]
        check_kernel(T.range_, "Range", inputs, opset=opset)


def test_range_half_precision_27():
    for dtype in (np.float16, BF16):
        inputs = [np.array(v, dtype) for v in (1.0, 10.0, 0.3)]
        check_kernel(T.range_, "Range", inputs, opset=27)


def test_range_errors():
    with pytest.raises(ValueError, match="delta must not be 0"):
        T.range_(np.array(0, np.int64), np.array(3, np.int64), np.array(0, np.int64))
    with pytest.raises(ValueError, match="no finite count"):
        T.range_(np.array(0, np.float32), np.array(np.inf, np.float32),
                 np.array(1, np.float32))


# --------------------------------------------------------------------- block & matrix ops

@pytest.mark.parametrize("opset", versions("DepthToSpace"))
@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize("blocksize", [1, 2, 3])
def test_depth_to_space(opset, mode, blocksize):
    if mode == "CRD" and opset < 11:
        pytest.skip("mode exists from DepthToSpace-11 on")
    x = np.arange(2 * 36 * 2 * 3, dtype=np.float32).reshape(2, 36, 2, 3)
    attrs = {"blocksize": blocksize} | ({"mode": mode} if opset >= 11 else {})
    check_kernel(T.depth_to_space, "DepthToSpace", [x], attrs, opset=opset)


@pytest.mark.parametrize("opset", versions("SpaceToDepth"))
@pytest.mark.parametrize("blocksize", [1, 2, 3])
def test_space_to_depth(opset, blocksize):
    x = np.arange(2 * 3 * 6 * 12, dtype=np.float32).reshape(2, 3, 6, 12)
    check_kernel(T.space_to_depth, "SpaceToDepth", [x], {"blocksize": blocksize}, opset=opset)


def test_depth_space_dtypes_and_errors():
    x = sample((1, 4, 2, 2), object)
    check_kernel(T.depth_to_space, "DepthToSpace", [x], {"blocksize": 2, "mode": "CRD"})
    check_kernel(T.space_to_depth, "SpaceToDepth", [x], {"blocksize": 2})
    with pytest.raises(ValueError, match="not divisible"):
        T.depth_to_space(np.zeros((1, 6, 2, 2), np.float32), blocksize=2)
    with pytest.raises(ValueError, match="must be divisible"):
        T.space_to_depth(np.zeros((1, 1, 3, 2), np.float32), blocksize=2)
    with pytest.raises(ValueError, match="4-D"):
        T.space_to_depth(np.zeros((3, 2), np.float32), blocksize=2)
    with pytest.raises(ValueError, match="mode"):
        T.depth_to_space(np.zeros((1, 4, 2, 2), np.float32), blocksize=2, mode="XYZ")


@pytest.mark.parametrize("opset", versions("EyeLike"))
@pytest.mark.parametrize("k", [0, 1, -2, 5])
@pytest.mark.parametrize("dtype", [None, TP.INT32, TP.BOOL, TP.DOUBLE])
def test_eye_like(opset, k, dtype):
    attrs = {"k": k} | ({} if dtype is None else {"dtype": dtype})
    check_kernel(T.eye_like, "EyeLike", [np.zeros((3, 4), np.float32)], attrs, opset=opset)
    check_kernel(T.eye_like, "EyeLike", [np.zeros((4, 2), np.int64)], attrs, opset=opset)


def test_eye_like_errors():
    with pytest.raises(ValueError, match="2-D"):
        T.eye_like(np.zeros(3, np.float32))


@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [None, 0, 1, -1, 5, -5])
@pytest.mark.parametrize("shape", [(3, 4), (2, 4, 3), (1, 1)])
def test_trilu(upper, k, shape):
    x = np.arange(1, np.prod(shape) + 1, dtype=np.float32).reshape(shape)
    inputs = [x] if k is None else [x, np.array(k, np.int64)]
    check_kernel(T.trilu, "Trilu", inputs, {"upper": upper}, opset=14)


@pytest.mark.parametrize("dtype", [np.int64, np.bool_, BF16, np.uint8])
def test_trilu_dtypes(dtype):
    check_kernel(T.trilu, "Trilu", [sample((3, 3), dtype)], {"upper": 0})


def test_trilu_strings_and_errors():
    # Zeroed entries of a string tensor become empty strings (the reference writes int 0).
    got = T.trilu(strings("a", "b", "c", "d", shape=(2, 2)))
    assert got.tolist() == [["a", "b"], ["", "d"]]
    with pytest.raises(ValueError, match="rank >= 2"):
        T.trilu(np.zeros(3, np.float32))


def test_view_kernels_do_not_modify_inputs():
    x = X234.copy()
    for fn, args in ((T.reshape, (i64(-1),)), (T.transpose, ()), (T.flatten, ()),
                     (T.slice_10, (i64(0), i64(1)))):
        fn(x, *args)
    T.pad_11(x, i64(1, 1, 1, 1, 1, 1))
    T.cast(x, to=TP.INT32)
    np.testing.assert_array_equal(x, X234)


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_space_to_depth_mode_inverts_depth_to_space(mode):
    # SpaceToDepth's mode attribute is not in onnx.reference; the spec defines it as the
    # inverse of DepthToSpace with the same mode, which the reference does implement.
    from pyflame_rt.backends.cpu.tensor import space_to_depth

    x = np.arange(2 * 8 * 3 * 4, dtype=np.float32).reshape(2, 8, 3, 4)
    back = reference("DepthToSpace", [x], {"blocksize": 2, "mode": mode}, opset=13)[0]
    np.testing.assert_array_equal(space_to_depth(back, blocksize=2, mode=mode), x)
    with pytest.raises(ValueError, match="DCR or CRD"):
        space_to_depth(back, blocksize=2, mode="XYZ")
