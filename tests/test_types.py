"""Element types, value types and NodeArg strings as ONNX Runtime prints them."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest

from pyflame_rt.types import (
    DType,
    MapInfo,
    NodeArg,
    OptionalInfo,
    SequenceInfo,
    TensorInfo,
    shape_string,
    type_string,
)


def test_every_onnx_element_type_has_a_dtype():
    for name, number in onnx.TensorProto.DataType.items():
        if name == "UNDEFINED":
            continue
        dt = DType.from_onnx(number)
        assert dt.name == name
        assert isinstance(dt.numpy, np.dtype)


def test_numpy_mapping_round_trips():
    for dt in DType:
        if dt is DType.STRING:
            continue
        assert DType.from_numpy(dt.numpy) is dt
    assert DType.from_numpy(np.dtype("U5")) is DType.STRING
    assert DType.BFLOAT16.numpy == np.dtype(ml_dtypes.bfloat16)
    assert DType.INT4.itemsize == 0.5 and DType.UINT2.itemsize == 0.25
    assert DType.FLOAT.itemsize == 4 and DType.STRING.itemsize == 0
    with pytest.raises(ValueError, match="unknown ONNX"):
        DType.from_onnx(999)
    with pytest.raises(ValueError, match="no ONNX element type"):
        DType.from_numpy(np.dtype("datetime64[s]"))


def test_type_strings_match_onnxruntime():
    assert type_string(TensorInfo(DType.FLOAT, (1,))) == "tensor(float)"
    assert type_string(TensorInfo(DType.DOUBLE)) == "tensor(double)"
    assert type_string(TensorInfo(DType.INT64)) == "tensor(int64)"
    assert type_string(TensorInfo(DType.BOOL)) == "tensor(bool)"
    assert type_string(TensorInfo(DType.FLOAT16)) == "tensor(float16)"
    assert type_string(SequenceInfo(TensorInfo(DType.FLOAT))) == "seq(tensor(float))"
    assert type_string(OptionalInfo(SequenceInfo(TensorInfo(DType.INT32)))) == \
        "optional(seq(tensor(int32)))"
    assert type_string(MapInfo(DType.INT64, TensorInfo(DType.FLOAT))) == \
        "map(int64,tensor(float))"
    assert type_string(None) == "unknown"


def test_tensor_info_and_node_arg():
    info = TensorInfo(DType.FLOAT, ("batch", 3, None))
    assert info.rank == 3 and not info.is_static()
    assert TensorInfo(DType.FLOAT, (2, 3)).is_static()
    assert TensorInfo(DType.FLOAT).rank is None
    arg = NodeArg.from_value_type("x", info)
    assert (arg.name, arg.type, arg.shape) == ("x", "tensor(float)", ["batch", 3, None])
    assert repr(arg) == "NodeArg(name='x', type='tensor(float)', shape=['batch', 3, None])"
    assert NodeArg.from_value_type("s", SequenceInfo(info)).shape == []
    assert shape_string(("N", 3, None)) == "[N,3,?]" and shape_string(None) == "[?...]"
