"""Gather/scatter/index kernels (Gather*, Scatter*, OneHot, TopK, NonZero, Compress, Unique,
ReverseSequence) against ``onnx.reference`` per registered op version, attribute and dtype;
ONNX Runtime is the oracle where the reference lacks the op (Scatter) or a case.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx.defs
import pytest
from oracle import assert_close, check_kernel, onnxruntime, reference

from pyflame_rt.backends.cpu import indexing as I
from pyflame_rt.ops import lookup

BF16 = np.dtype(ml_dtypes.bfloat16)
MAX_OPSET = onnx.defs.onnx_opset_version()


def versions(op: str, first: int = 1, last: int = MAX_OPSET) -> list[int]:
    """Every schema version of ``op`` in [first, last]: the opsets our kernels must serve."""
    return sorted({s.since_version for s in onnx.defs.get_all_schemas_with_history()
                   if s.name == op and s.domain == "" and first <= s.since_version <= last})


def i64(*values) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def strings(*values: str, shape=None) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out if shape is None else out.reshape(shape)


def sample(shape, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    if dtype == object:
        return strings(*[f"s{i % 7}" for i in range(n)], shape=shape)
    if dtype == np.bool_:
        return (np.arange(n) % 3 == 0).reshape(shape)
    return ((np.arange(n) * 7) % 23).astype(np.float32).astype(dtype).reshape(shape)


X234 = np.arange(24, dtype=np.float32).reshape(2, 3, 4) * 1.5 - 7
DTYPES = [np.float32, np.float64, np.float16, np.int64, np.int32, np.uint8, np.bool_, BF16,
          object]


def test_registered_versions():
    ops = ["Gather", "GatherElements", "GatherND", "ScatterElements", "ScatterND", "Scatter",
           "OneHot", "TopK", "NonZero", "Compress", "Unique", "ReverseSequence"]
    for op in ops:
        first = versions(op)[0]
        for opset in range(max(first, 7), MAX_OPSET + 1):
            assert lookup(op, opset=opset).since <= opset
    assert lookup("TopK", opset=10).fn is I.top_k_10
    assert lookup("TopK", opset=11).fn is I.top_k
    assert lookup("OneHot", opset=9).fn is I.one_hot


# --------------------------------------------------------------------------------- Gather

@pytest.mark.parametrize("opset", versions("Gather"))
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
@pytest.mark.parametrize("indices", [i64(0), i64(1, 0, 1), i64([0, -1], [-2, 1]),
                                     np.array(-1, np.int64), np.array([1, 0], np.int32)])
def test_gather(opset, axis, indices):
    if (axis < 0 or (indices < 0).any()) and opset < 11:
        pytest.skip("negative axis/indices are defined from Gather-11 on")
    check_kernel(I.gather, "Gather", [X234, indices], {"axis": axis}, opset=opset)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gather_dtypes(dtype):
    check_kernel(I.gather, "Gather", [sample((3, 2), dtype), i64(2, -3, 0)])
    check_kernel(I.gather, "Gather", [sample((3,), dtype), np.array(1, np.int64)])


def test_gather_out_of_range():
    with pytest.raises(ValueError, match=r"index 3 is out of range.*\[-3, 2\]"):
        I.gather(X234, i64(0, 3), axis=1)
    with pytest.raises(ValueError, match=r"index -5 is out of range.*\[-4, 3\]"):
        I.gather(X234, i64(-5), axis=-1)
    with pytest.raises(ValueError, match="integers"):
        I.gather(X234, np.array([0.0]))


@pytest.mark.parametrize("opset", versions("GatherElements"))
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_gather_elements(opset, axis):
    rng = np.random.default_rng(axis + 5)
    dim = X234.shape[axis]
    idx = rng.integers(-dim, dim, size=(2, 3, 4))
    check_kernel(I.gather_elements, "GatherElements", [X234, idx], {"axis": axis}, opset=opset)
    # Indices smaller than data outside the axis read the leading block (the reference
    # refuses such shapes; ONNX Runtime runs them).
    small = np.ascontiguousarray(idx[:1, :2, :3])
    expected = onnxruntime("GatherElements", [X234, small], {"axis": axis}, opset=opset)[0]
    assert_close(I.gather_elements(X234, small, axis=axis), expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gather_elements_dtypes(dtype):
    idx = np.array([[1, 0], [-1, 2], [0, 0]], np.int32)
    check_kernel(I.gather_elements, "GatherElements", [sample((3, 2), dtype), idx])


def test_gather_elements_errors():
    with pytest.raises(ValueError, match=r"index 4 is out of range.*\[-4, 3\]"):
        I.gather_elements(X234, np.full((2, 3, 1), 4, np.int64), axis=2)
    with pytest.raises(ValueError, match="rank"):
        I.gather_elements(X234, i64(0, 1))
    with pytest.raises(ValueError, match="exceeds"):
        I.gather_elements(X234, np.zeros((2, 5, 4), np.int64), axis=0)


@pytest.mark.parametrize("opset", versions("GatherND", 12))
@pytest.mark.parametrize("batch_dims, indices", [
    (0, i64([0, 1], [1, 2])),
    (0, i64([[1]], [[-2]])),
    (0, i64([1, -1, 3], [0, 0, 0])),
    (1, i64([1], [0])),
    (1, i64([[1, 3], [2, 0]], [[0, 0], [-1, -1]])),
    (2, i64([[1], [2], [3]], [[0], [1], [2]])),
])
def test_gather_nd(opset, batch_dims, indices):
    check_kernel(I.gather_nd, "GatherND", [X234, indices], {"batch_dims": batch_dims},
                 opset=opset)


def test_gather_nd_empty_index_tuples():
    # indices.shape[-1] == 0 selects whole data per index (the reference cannot reshape it).
    idx = np.zeros((2, 0), np.int64)
    assert_close(I.gather_nd(X234, idx), onnxruntime("GatherND", [X234, idx])[0])


def test_gather_nd_11_and_dtypes():
    check_kernel(I.gather_nd, "GatherND", [X234, i64([0, 2], [1, 0])], opset=11)
    for dtype in DTYPES:
        check_kernel(I.gather_nd, "GatherND", [sample((3, 2), dtype), i64([2, 1], [0, -1])])


def test_gather_nd_errors():
    with pytest.raises(ValueError, match=r"index 3 \(entry 1.*out of range.*\[-3, 2\]"):
        I.gather_nd(X234, i64([0, 3]))
    with pytest.raises(ValueError, match="exceeds the rank"):
        I.gather_nd(X234, i64([0, 0, 0, 0]))
    with pytest.raises(ValueError, match="must match"):
        I.gather_nd(X234, np.zeros((3, 1), np.int64), batch_dims=1)


# ------------------------------------------------------------------------------- Scatters

@pytest.mark.parametrize("opset", versions("ScatterElements"))
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_scatter_elements(opset, axis):
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    idx = np.array([[1, -1, 0], [0, 2, -3]], np.int64) if axis == 0 else \
        np.array([[1, -1, 0], [3, 2, -4]], np.int64)
    upd = np.array([[10, 20, 30], [40, 50, 60]], np.float32)
    check_kernel(I.scatter_elements, "ScatterElements", [data, idx, upd], {"axis": axis},
                 opset=opset)


@pytest.mark.parametrize("opset", versions("ScatterElements", 16))
@pytest.mark.parametrize("reduction", ["add", "mul", "max", "min"])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.float16, np.int32])
def test_scatter_elements_reduction(opset, reduction, dtype):
    if reduction in ("max", "min") and opset < 18:
        pytest.skip("max/min exist from ScatterElements-18 on")
    data = np.arange(1, 13, dtype=dtype).reshape(3, 4)
    # Duplicate indices: every update must be reduced in, not just the last.
    idx = np.array([[1, 1, 0, -3], [1, 0, 2, 2]], np.int64)
    upd = np.array([[2, 3, -1, 5], [7, -2, 4, 6]], dtype)
    check_kernel(I.scatter_elements, "ScatterElements", [data, idx, upd],
                 {"axis": 0, "reduction": reduction}, opset=opset)


@pytest.mark.parametrize("dtype", [np.bool_, object, BF16, np.uint8])
def test_scatter_elements_dtypes(dtype):
    data = sample((3, 2), dtype)
    upd = sample((1, 2), dtype)[:, ::-1].copy()
    check_kernel(I.scatter_elements, "ScatterElements", [data, i64([2, -3]), upd])


def test_scatter_elements_bfloat16_add():
    data = np.array([1.5, 2, 3], BF16)
    got = I.scatter_elements(data, i64(0, 0, 2), np.array([1, 1, 0.5], BF16), reduction="add")
    expected = reference("ScatterElements", [data.astype(np.float32), i64(0, 0, 2),
                                             np.array([1, 1, 0.5], np.float32)],
                         {"reduction": "add"})[0]
    assert_close(got, expected.astype(BF16))


def test_scatter_elements_errors():
    data = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"index 3 is out of range.*\[-3, 2\]"):
        I.scatter_elements(data, i64([3]), np.ones((1,), np.float32).reshape(1, 1))
    with pytest.raises(ValueError, match="must equal indices shape"):
        I.scatter_elements(data, i64([0, 1]), np.ones((1, 1), np.float32))
    with pytest.raises(ValueError, match="reduction must be"):
        I.scatter_elements(data, i64([0]), np.ones((1, 1), np.float32), reduction="sum")
    with pytest.raises(ValueError, match="not defined for strings"):
        I.scatter_elements(strings("a"), i64(0), strings("b"), reduction="add")


@pytest.mark.parametrize("opset", [9, 10])
def test_scatter_deprecated(opset):
    # onnx.reference has no Scatter; ONNX Runtime still runs it, and the reference's
    # ScatterElements defines the same result.
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    idx = np.array([[1, 0, 2], [0, 2, 1]], np.int64)
    upd = np.array([[10, 20, 30], [40, 50, 60]], np.float32)
    expected = onnxruntime("Scatter", [data, idx, upd], {"axis": 1}, opset=opset)[0]
    assert_close(I.scatter(data, idx, upd, axis=1), expected)
    expected = reference("ScatterElements", [data, idx, upd], {"axis": 1}, opset=11)[0]
    assert_close(I.scatter(data, idx, upd, axis=1), expected)


@pytest.mark.parametrize("opset", versions("ScatterND"))
@pytest.mark.parametrize("indices, upd_shape", [
    (i64([4], [3], [1], [-1]), (4, 3, 4)),
    (i64([0, 1], [1, -1]), (2, 4)),
    (i64([[0, 1, 2]], [[1, 2, -1]]), (2, 1)),
])
def test_scatter_nd(opset, indices, upd_shape):
    data = np.arange(5 * 3 * 4, dtype=np.float32).reshape(5, 3, 4)
    if indices.shape[-1] == 2:
        data = data[:2]
    upd = np.arange(np.prod(upd_shape), dtype=np.float32).reshape(upd_shape) + 100
    check_kernel(I.scatter_nd, "ScatterND", [data, indices, upd], opset=opset)


@pytest.mark.parametrize("opset", versions("ScatterND", 16))
@pytest.mark.parametrize("reduction", ["add", "mul", "max", "min"])
def test_scatter_nd_reduction(opset, reduction):
    if reduction in ("max", "min") and opset < 18:
        pytest.skip("max/min exist from ScatterND-18 on")
    data = np.arange(1, 9, dtype=np.int64)
    idx = i64([4], [3], [4], [-1])  # duplicate index 4
    upd = i64(9, 10, 11, -12)
    check_kernel(I.scatter_nd, "ScatterND", [data, idx, upd], {"reduction": reduction},
                 opset=opset)
    data2 = np.arange(12, dtype=np.float32).reshape(3, 4)
    upd2 = np.arange(8, dtype=np.float32).reshape(2, 4) - 3
    check_kernel(I.scatter_nd, "ScatterND", [data2, i64([1], [1]), upd2],
                 {"reduction": reduction}, opset=opset)


@pytest.mark.parametrize("dtype", [object, np.bool_, BF16])
def test_scatter_nd_dtypes(dtype):
    data = sample((4,), dtype)
    check_kernel(I.scatter_nd, "ScatterND", [data, i64([0], [-1]), sample((2,), dtype)[::-1]])


def test_scatter_nd_errors():
    data = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"index -5 \(entry 1.*out of range.*\[-4, 3\]"):
        I.scatter_nd(data, i64([0, -5]), np.ones(1, np.float32))
    with pytest.raises(ValueError, match="updates shape"):
        I.scatter_nd(data, i64([0]), np.ones(3, np.float32))
    with pytest.raises(ValueError, match="exceeds the rank"):
        I.scatter_nd(data, i64([0, 0, 0]), np.ones(1, np.float32))


# --------------------------------------------------------------------------------- OneHot

@pytest.mark.parametrize("opset", versions("OneHot"))
@pytest.mark.parametrize("axis", [-1, 0, 1, -2])
def test_one_hot(opset, axis):
    indices = i64([0, 2, -1], [5, 1, -3])
    values = np.array([-1.0, 4.0], np.float32)
    check_kernel(I.one_hot, "OneHot", [indices, np.array(3, np.int64), values], {"axis": axis},
                 opset=opset)


def test_one_hot_types():
    indices = np.array([1.0, 0.0, 2.0], np.float32)
    for depth in (np.array(4, np.float32), np.array(4, np.int32)):
        for values in (np.array([0, 1], np.int64), np.array([0.5, 2.5], np.float64),
                       np.array([1, 3], np.uint8)):
            check_kernel(I.one_hot, "OneHot", [indices, depth, values])
    # The reference computes with arithmetic, which bool and string values do not support.
    ints = np.array([1, 0, 2], np.int64)
    on_off = strings("off", "on")
    expected = onnxruntime("OneHot", [ints, np.array(4, np.int64), on_off])[0]
    assert_close(I.one_hot(ints, np.array(4, np.int64), on_off), expected)
    as_float = reference("OneHot", [ints, np.array(4, np.int64), np.array([0, 1], np.float32)])
    assert_close(I.one_hot(ints, np.array(4, np.int64), np.array([False, True])),
                 as_float[0].astype(bool))
    # depth may also be a one-element 1-D tensor (the reference only takes a scalar).
    values = np.array([0, 1], np.float32)
    expected = reference("OneHot", [indices, np.array(4, np.int64), values])[0]
    assert_close(I.one_hot(indices, np.array([4], np.int64), values), expected)
    check_kernel(I.one_hot, "OneHot", [np.array([1, 3], np.uint8), np.array(4, np.int64),
                                       np.array([0, 1], np.float32)], opset=9)


def test_one_hot_9_negative_indices_like_onnxruntime():
    # OneHot-9's text says negative indices are "off"; both oracles wrap them, as 11 does.
    args = [i64(0, -1, 4, -4), np.array(3, np.int64), np.array([0, 1], np.float32)]
    assert_close(I.one_hot(*args), onnxruntime("OneHot", args, opset=9)[0])
    assert_close(I.one_hot(*args), reference("OneHot", args, opset=9)[0])


def test_one_hot_errors():
    with pytest.raises(ValueError, match="off_value, on_value"):
        I.one_hot(i64(0), np.array(2, np.int64), np.array([1.0], np.float32))
    with pytest.raises(ValueError, match="axis=3"):
        I.one_hot(i64(0), np.array(2, np.int64), np.array([0, 1.0]), axis=3)
    with pytest.raises(ValueError, match="depth must be >= 0"):
        I.one_hot(i64(0), np.array(-2, np.int64), np.array([0, 1.0]))


# ----------------------------------------------------------------------------------- TopK

TIES = np.array([[3, 1, 3, 2, 5, 1, 5], [0, 0, 0, 1, 1, -1, 2]], np.float32)


@pytest.mark.parametrize("opset", versions("TopK", 11))
@pytest.mark.parametrize("largest", [0, 1])
@pytest.mark.parametrize("k", [0, 1, 3, 7])
@pytest.mark.parametrize("axis", [1, -1])
def test_top_k(opset, largest, k, axis):
    check_kernel(I.top_k, "TopK", [TIES, i64(k)], {"largest": largest, "axis": axis},
                 noutputs=2, opset=opset)


def test_top_k_axis0_and_sorted_attribute():
    check_kernel(I.top_k, "TopK", [X234, i64(2)], {"axis": 0}, noutputs=2)
    check_kernel(I.top_k, "TopK", [X234, i64(2)], {"axis": -2, "largest": 0}, noutputs=2)
    # sorted=0 leaves the order unspecified; the result must still be the right set.
    vals, idx = I.top_k(TIES, i64(3), sorted=0)
    ref_vals, ref_idx = reference("TopK", [TIES, i64(3)], {"sorted": 1}, noutputs=2)
    assert sorted(map(tuple, np.sort(idx, axis=1))) == sorted(map(tuple, np.sort(ref_idx, 1)))
    np.testing.assert_array_equal(np.sort(vals, axis=1), np.sort(ref_vals, axis=1))


def test_top_k_1_and_10():
    check_kernel(I.top_k_1, "TopK", [TIES], {"k": 3}, noutputs=2, opset=1)
    check_kernel(I.top_k_10, "TopK", [TIES, i64(4)], {"axis": 1}, noutputs=2, opset=10)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.float64, np.float16,
                                   np.uint64, np.int8])
def test_top_k_dtypes(dtype):
    x = sample((3, 5), dtype)
    for largest in (0, 1):
        check_kernel(I.top_k, "TopK", [x, i64(3)], {"largest": largest}, noutputs=2)


def test_top_k_bfloat16():
    x = sample((3, 5), BF16)
    check_kernel(I.top_k, "TopK", [x, i64(2)], noutputs=2, opset=24)


def test_top_k_nan_like_reference():
    x = np.array([[1.0, np.nan, 3.0, -1.0]], np.float32)
    for largest in (0, 1):
        check_kernel(I.top_k, "TopK", [x, i64(2)], {"largest": largest}, noutputs=2)


def test_top_k_errors():
    with pytest.raises(ValueError, match=r"k=8 must be in \[0, 7\]"):
        I.top_k(TIES, i64(8))
    with pytest.raises(ValueError, match="k=-1"):
        I.top_k(TIES, i64(-1))


# ---------------------------------------------------------------------------- NonZero & co.

@pytest.mark.parametrize("opset", versions("NonZero"))
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_, np.uint8, np.float16])
def test_non_zero(opset, dtype):
    check_kernel(I.non_zero, "NonZero", [sample((3, 4), dtype)], opset=opset)
    check_kernel(I.non_zero, "NonZero", [sample((5,), dtype)], opset=opset)
    check_kernel(I.non_zero, "NonZero", [np.zeros((2, 0, 3), dtype)], opset=opset)


def test_non_zero_scalar_bfloat16_strings():
    # A scalar gives (rank 0, count): the ONNX shape; ONNX Runtime returns (1, count) instead.
    check_kernel(I.non_zero, "NonZero", [np.array(3.0, np.float32)])
    check_kernel(I.non_zero, "NonZero", [np.array(0, np.int64)])
    check_kernel(I.non_zero, "NonZero", [np.array([[0, 1.5], [0, -2]], BF16)], opset=13)
    check_kernel(I.non_zero, "NonZero", [strings("", "a", "", "b")])


@pytest.mark.parametrize("opset", versions("Compress"))
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("cond", [[1, 0, 1], [0, 1], [0, 0, 0], [1, 1, 1, 0]])
def test_compress(opset, axis, cond):
    if axis is not None and axis < 0 and opset < 11:
        pytest.skip("negative axis exists from Compress-11 on")
    attrs = {} if axis is None else {"axis": axis}
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    check_kernel(I.compress, "Compress", [x, np.array(cond, bool)], attrs, opset=opset)


def test_compress_long_condition_and_strings():
    x = np.arange(3, dtype=np.float32)
    cond = np.array([1, 0, 1, 1, 0], bool)  # the reference fails on the extra entries
    expected = onnxruntime("Compress", [x, cond], {"axis": 0})[0]
    assert_close(I.compress(x, cond, axis=0), expected)
    check_kernel(I.compress, "Compress", [sample((2, 3), object), np.array([0, 1], bool)],
                 {"axis": 0})


# --------------------------------------------------------------------------------- Unique

UNIQUE_INPUTS = [
    np.array([2, 1, 1, 3, 4, 3], np.int64),
    np.array([[1, 3], [2, 3]], np.float32),
    np.array([[1, 0, 0], [1, 0, 0], [2, 3, 4]], np.int64),
    np.array([[[1, 1], [0, 1], [2, 1], [0, 1]], [[1, 1], [0, 1], [2, 1], [0, 1]]], np.float32),
]


@pytest.mark.parametrize("opset", versions("Unique"))
@pytest.mark.parametrize("sorted_", [0, 1])
@pytest.mark.parametrize("case", range(len(UNIQUE_INPUTS)))
def test_unique(opset, sorted_, case):
    x = UNIQUE_INPUTS[case]
    for axis in [None] + list(range(-x.ndim, x.ndim)):
        attrs = {"sorted": sorted_} | ({} if axis is None else {"axis": axis})
        if not sorted_ and (axis is not None or x.ndim > 1):
            # The reference fails on sorted=0 with an axis or a rank > 1 input; ONNX Runtime
            # runs these.
            expected = onnxruntime("Unique", [x], attrs, noutputs=4, opset=opset)
            for got, exp in zip(I.unique(x, **attrs), expected):
                assert_close(got, exp)
        else:
            check_kernel(I.unique, "Unique", [x], attrs, noutputs=4, opset=opset)


def test_unique_strings_nan_bool():
    s = strings("b", "a", "b", "c", "a")
    for sorted_ in (0, 1):
        check_kernel(I.unique, "Unique", [s], {"sorted": sorted_}, noutputs=4)
    # Unique by axis over strings: numpy (so the reference) cannot; ONNX Runtime can.
    s2 = strings("x", "y", "a", "b", "x", "y", "a", "c", shape=(4, 2))
    for sorted_ in (0, 1):
        expected = onnxruntime("Unique", [s2], {"axis": 0, "sorted": sorted_}, noutputs=4)
        for got, exp in zip(I.unique(s2, axis=0, sorted=sorted_), expected):
            assert_close(got, exp)
    x = np.array([2, np.nan, 1, np.nan, 2], np.float32)
    for sorted_ in (0, 1):
        check_kernel(I.unique, "Unique", [x], {"sorted": sorted_}, noutputs=4)
    check_kernel(I.unique, "Unique", [np.array([True, False, True])], noutputs=4)


# ------------------------------------------------------------------------ ReverseSequence

@pytest.mark.parametrize("batch_axis, time_axis", [(1, 0), (0, 1)])
@pytest.mark.parametrize("lens", [(4, 3, 2, 1), (1, 1, 1, 1), (4, 4, 4, 4), (0, 2, 4, 1)])
@pytest.mark.parametrize("dtype", [np.float32, object, np.bool_])
def test_reverse_sequence(batch_axis, time_axis, lens, dtype):
    x = sample((4, 4, 2), dtype)
    check_kernel(I.reverse_sequence, "ReverseSequence", [x, i64(*lens)],
                 {"batch_axis": batch_axis, "time_axis": time_axis}, opset=10)


def test_reverse_sequence_shapes_and_errors():
    x = np.arange(15, dtype=np.float32).reshape(3, 5)  # time 3, batch 5
    check_kernel(I.reverse_sequence, "ReverseSequence", [x, i64(3, 2, 1, 0, 3)], opset=10)
    with pytest.raises(ValueError, match="one entry"):
        I.reverse_sequence(x, i64(3, 2))
    with pytest.raises(ValueError, match="one entry"):
        I.reverse_sequence(x, i64(4, 2, 1, 1, 1))
    with pytest.raises(ValueError, match="must be 0 and 1"):
        I.reverse_sequence(x, i64(1, 1, 1, 1, 1), batch_axis=0, time_axis=0)


def test_kernels_do_not_modify_inputs():
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    keep = data.copy()
    I.scatter_elements(data, i64([0, 1]), np.ones((1, 2), np.float32), reduction="add")
    I.scatter_nd(data, i64([1]), np.ones((1, 4), np.float32), reduction="mul")
    I.scatter_nd(data, i64([1]), np.ones((1, 4), np.float32))
    I.top_k(data, i64(2))
    I.reverse_sequence(data, i64(3, 1, 2, 3))
    np.testing.assert_array_equal(data, keep)
