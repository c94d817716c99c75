"""Element types, dims, value types and ``NodeArg``.

``DType`` covers every ONNX tensor element type; the narrow float and integer types
(bfloat16, float8, float6, float4, int4/uint4, int2/uint2) are backed by ``ml_dtypes`` numpy dtypes.
A dim is an ``int`` (fixed), a ``str`` (symbolic, e.g. ``"batch"``) or ``None`` (unknown).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Union

import ml_dtypes
import numpy as np

__all__ = [
    "DType",
    "Dim",
    "Shape",
    "TensorInfo",
    "SequenceInfo",
    "OptionalInfo",
    "MapInfo",
    "ValueType",
    "NodeArg",
    "type_string",
    "shape_string",
]

Dim = Union[int, str, None]
Shape = tuple  # tuple[Dim, ...]


class DType(enum.Enum):
    """ONNX tensor element types. ``value`` is the ``TensorProto.DataType`` number."""

    FLOAT = 1
    UINT8 = 2
    INT8 = 3
    UINT16 = 4
    INT16 = 5
    INT32 = 6
    INT64 = 7
    STRING = 8
    BOOL = 9
    FLOAT16 = 10
    DOUBLE = 11
    UINT32 = 12
    UINT64 = 13
    COMPLEX64 = 14
    COMPLEX128 = 15
    BFLOAT16 = 16
    FLOAT8E4M3FN = 17
    FLOAT8E4M3FNUZ = 18
    FLOAT8E5M2 = 19
    FLOAT8E5M2FNUZ = 20
    UINT4 = 21
    INT4 = 22
    FLOAT4E2M1 = 23
    FLOAT8E8M0 = 24
    UINT2 = 25
    INT2 = 26
    FLOAT6E2M3 = 27
    FLOAT6E3M2 = 28

    @property
    def numpy(self) -> np.dtype:
        """The numpy dtype that holds this element type."""
        return _TO_NUMPY[self]

    @property
    def ort_name(self) -> str:
        """The spelling ONNX Runtime uses inside ``tensor(...)``, e.g. ``float``."""
        return _ORT_NAMES.get(self, self.name.lower())

    @property
    def itemsize(self) -> float:
        """Bytes per element as stored in ONNX (0.5 for 4-bit, 0.25 for 2-bit types)."""
        if self in (DType.UINT4, DType.INT4, DType.FLOAT4E2M1):
            return 0.5
        if self in (DType.UINT2, DType.INT2):
            return 0.25
        if self in (DType.FLOAT6E2M3, DType.FLOAT6E3M2):
            return 0.75
        if self is DType.STRING:
            return 0
        return self.numpy.itemsize

    @property
    def is_float(self) -> bool:
        return self in _FLOATS

    @classmethod
    def from_onnx(cls, elem_type: int) -> DType:
        """Map a ``TensorProto.DataType`` number; raises ``ValueError`` for unknown numbers."""
        try:
            return cls(int(elem_type))
        except ValueError:
            raise ValueError(f"unknown ONNX tensor element type {elem_type}") from None

    @classmethod
    def from_numpy(cls, dtype: Any) -> DType:
        """Map a numpy dtype (or anything ``np.dtype`` accepts)."""
        dt = np.dtype(dtype)
        if dt.kind in ("U", "S", "O"):
            return DType.STRING
        if not dt.isnative:
            dt = dt.newbyteorder("=")
        try:
            return _FROM_NUMPY[dt]
        except KeyError:
            raise ValueError(f"numpy dtype {dt} has no ONNX element type") from None


_TO_NUMPY: dict[DType, np.dtype] = {
    DType.FLOAT: np.dtype(np.float32),
    DType.UINT8: np.dtype(np.uint8),
    DType.INT8: np.dtype(np.int8),
    DType.UINT16: np.dtype(np.uint16),
    DType.INT16: np.dtype(np.int16),
    DType.INT32: np.dtype(np.int32),
    DType.INT64: np.dtype(np.int64),
    DType.STRING: np.dtype(object),
    DType.BOOL: np.dtype(np.bool_),
    DType.FLOAT16: np.dtype(np.float16),
    DType.DOUBLE: np.dtype(np.float64),
    DType.UINT32: np.dtype(np.uint32),
    DType.UINT64: np.dtype(np.uint64),
    DType.COMPLEX64: np.dtype(np.complex64),
    DType.COMPLEX128: np.dtype(np.complex128),
    DType.BFLOAT16: np.dtype(ml_dtypes.bfloat16),
    DType.FLOAT8E4M3FN: np.dtype(ml_dtypes.float8_e4m3fn),
    DType.FLOAT8E4M3FNUZ: np.dtype(ml_dtypes.float8_e4m3fnuz),
    DType.FLOAT8E5M2: np.dtype(ml_dtypes.float8_e5m2),
    DType.FLOAT8E5M2FNUZ: np.dtype(ml_dtypes.float8_e5m2fnuz),
    DType.UINT4: np.dtype(ml_dtypes.uint4),
    DType.INT4: np.dtype(ml_dtypes.int4),
    DType.FLOAT4E2M1: np.dtype(ml_dtypes.float4_e2m1fn),
    DType.FLOAT8E8M0: np.dtype(ml_dtypes.float8_e8m0fnu),
    DType.UINT2: np.dtype(ml_dtypes.uint2),
    DType.INT2: np.dtype(ml_dtypes.int2),
    DType.FLOAT6E2M3: np.dtype(ml_dtypes.float6_e2m3fn),
    DType.FLOAT6E3M2: np.dtype(ml_dtypes.float6_e3m2fn),
}
_FROM_NUMPY: dict[np.dtype, DType] = {v: k for k, v in _TO_NUMPY.items() if k is not DType.STRING}

_ORT_NAMES = {
    DType.FLOAT: "float",
    DType.DOUBLE: "double",
    DType.FLOAT16: "float16",
    DType.BFLOAT16: "bfloat16",
    DType.BOOL: "bool",
    DType.STRING: "string",
    DType.COMPLEX64: "complex64",
    DType.COMPLEX128: "complex128",
}

_FLOATS = {
    DType.FLOAT, DType.DOUBLE, DType.FLOAT16, DType.BFLOAT16, DType.FLOAT8E4M3FN,
    DType.FLOAT8E4M3FNUZ, DType.FLOAT8E5M2, DType.FLOAT8E5M2FNUZ, DType.FLOAT4E2M1,
    DType.FLOAT8E8M0, DType.FLOAT6E2M3, DType.FLOAT6E3M2,
}


@dataclass(frozen=True)
class TensorInfo:
    """A tensor type: element type and shape. ``shape`` is ``None`` when the rank is unknown."""

    dtype: DType
    shape: Shape | None = None

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    def is_static(self) -> bool:
        """True when every dim is a known integer."""
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)


@dataclass(frozen=True)
class SequenceInfo:
    """``seq(elem)``: an ONNX sequence of tensors (or of other sequence/optional types)."""

    elem: ValueType | None


@dataclass(frozen=True)
class OptionalInfo:
    """``optional(elem)``: a value that may be absent."""

    elem: ValueType | None


@dataclass(frozen=True)
class MapInfo:
    """``map(key,value)``: an ONNX map (used by ONNX-ML ops)."""

    key: DType
    value: ValueType | None


ValueType = Union[TensorInfo, SequenceInfo, OptionalInfo, MapInfo]


def type_string(vtype: ValueType | None) -> str:
    """The type as ONNX Runtime prints it: ``tensor(float)``, ``seq(tensor(int64))``, ..."""
    if vtype is None:
        return "unknown"
    if isinstance(vtype, TensorInfo):
        return f"tensor({vtype.dtype.ort_name})"
    if isinstance(vtype, SequenceInfo):
        return f"seq({type_string(vtype.elem)})"
    if isinstance(vtype, OptionalInfo):
        return f"optional({type_string(vtype.elem)})"
    if isinstance(vtype, MapInfo):
        return f"map({vtype.key.ort_name},{type_string(vtype.value)})"
    raise TypeError(f"not a value type: {vtype!r}")


def shape_string(shape: Shape | None) -> str:
    """``[1, 'batch', 3]`` written compactly as ``[1,batch,3]`` (``?`` for unknown dims)."""
    if shape is None:
        return "[?...]"
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


@dataclass(frozen=True)
class NodeArg:
    """A model input or output as ``InferenceSession.get_inputs()`` reports it (ORT's class).

    Attributes:
        name: The value name in the graph.
        type: The ORT type string, e.g. ``tensor(float)``.
        shape: One entry per dim: ``int`` for fixed, ``str`` for symbolic, ``None`` for unknown;
            an empty list for scalars and for non-tensor types.
    """

    name: str
    type: str
    shape: list

    def __repr__(self) -> str:  # ORT prints NodeArg(name='x', type='tensor(float)', shape=[1, 3])
        return f"NodeArg(name={self.name!r}, type={self.type!r}, shape={self.shape!r})"

    @classmethod
    def from_value_type(cls, name: str, vtype: ValueType | None) -> NodeArg:
        # ORT reports an optional tensor's inner shape; sequences and maps have none.
        inner = vtype.elem if isinstance(vtype, OptionalInfo) else vtype
        shape = list(inner.shape) if isinstance(inner, TensorInfo) and inner.shape else []
        return cls(name=name, type=type_string(vtype), shape=shape)
