"""ONNX ``TensorProto``/``SparseTensorProto``/``TypeProto`` <-> numpy arrays and value types.

Every length and count in a tensor is checked against the data actually present (or the size
of the external data file) before anything is allocated, so a malformed or hostile model fails
with :class:`InvalidModelError` instead of a crash or an unbounded allocation.
"""

from __future__ import annotations

import math
import os
import stat
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from ..errors import InvalidModelError, MemoryLimitError, NotImplementedFeatureError
from ..types import DType, MapInfo, OptionalInfo, SequenceInfo, TensorInfo, ValueType

__all__ = [
    "TensorReader",
    "array_to_sparse",
    "array_to_tensor",
    "packed_bytes",
    "tensor_bit_width",
    "type_from_proto",
    "type_to_proto",
]

MAX_RANK = 64  # numpy's own limit on dimensions
MAX_TYPE_DEPTH = 64  # sequence(optional(sequence(...))) nesting bound
# numpy refuses arrays whose nominal byte size (empty dims counted as 1) reaches 2**63.
_MAX_NOMINAL_BYTES = 2**63 - 1

_PACKED_BITS = {DType.UINT4: 4, DType.INT4: 4, DType.FLOAT4E2M1: 4, DType.UINT2: 2, DType.INT2: 2,
                DType.FLOAT6E2M3: 6, DType.FLOAT6E3M2: 6}

# Element types whose typed field is ``int32_data`` holding the bit pattern (not the value).
# (float6 is bit-packed in raw_data but stores one element per int32 entry, as onnx does.)
_BITS_IN_INT32 = {
    DType.FLOAT16: np.uint16, DType.BFLOAT16: np.uint16, DType.FLOAT8E4M3FN: np.uint8,
    DType.FLOAT8E4M3FNUZ: np.uint8, DType.FLOAT8E5M2: np.uint8, DType.FLOAT8E5M2FNUZ: np.uint8,
    DType.FLOAT8E8M0: np.uint8, DType.FLOAT6E2M3: np.uint8, DType.FLOAT6E3M2: np.uint8,
}
# Element types whose typed field is ``int32_data`` holding the value itself.
_VALUES_IN_INT32 = {DType.INT32, DType.INT16, DType.INT8, DType.UINT16, DType.UINT8, DType.BOOL}


def tensor_bit_width(dtype: DType) -> int:
    """Bits per element in ONNX's packed storage (``raw_data`` / external data)."""
    return _PACKED_BITS.get(dtype) or dtype.numpy.itemsize * 8


def packed_bytes(dtype: DType, count: int) -> int:
    """Bytes ``count`` elements of ``dtype`` take in ``raw_data``."""
    return (count * tensor_bit_width(dtype) + 7) // 8


def _check_shape(dims: list[int], itemsize: int, what: str) -> None:
    """Refuse shapes no numpy array can have, before anything is allocated for them."""
    if any(d < 0 for d in dims):
        raise InvalidModelError(f"{what} has a negative dimension {dims}")
    if len(dims) > MAX_RANK:
        raise InvalidModelError(f"{what} has rank {len(dims)}; at most {MAX_RANK} dimensions "
                                "are supported")
    # Checked even for empty tensors: numpy refuses a shape like [0, 2**62, 2**62] outright.
    if math.prod(max(d, 1) for d in dims) * max(itemsize, 1) > _MAX_NOMINAL_BYTES:
        raise InvalidModelError(f"{what} has shape {dims}, too large for any array")


def _physical_memory() -> int | None:
    """Bytes of RAM on this machine (``None`` when the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _dtype(elem_type: int, what: str) -> DType:
    if elem_type == 0:
        raise InvalidModelError(f"{what} has no element type (UNDEFINED)")
    try:
        return DType.from_onnx(elem_type)
    except ValueError:
        known = onnx.TensorProto.DataType.Name(elem_type) if elem_type in \
            onnx.TensorProto.DataType.values() else None
        detail = f" ({known}, not supported by PyFlameRT)" if known else ""
        raise InvalidModelError(
            f"{what} has unknown element type {elem_type}{detail}; supported element types: "
            f"{', '.join(d.name for d in DType)}") from None


# -- types ---------------------------------------------------------------------------------
def type_from_proto(tp: onnx.TypeProto, what: str, _depth: int = 0) -> ValueType | None:
    """``TypeProto`` -> our value type; ``None`` when the proto carries no type."""
    if _depth > MAX_TYPE_DEPTH:
        raise InvalidModelError(f"{what}: its type nests sequence/optional/map types more than "
                                f"{MAX_TYPE_DEPTH} levels deep")
    kind = tp.WhichOneof("value")
    if kind is None:
        return None
    if kind in ("tensor_type", "sparse_tensor_type"):
        tt = getattr(tp, kind)
        if tt.elem_type == 0:
            # Some exporters write value_info entries with an unknown element type.
            return None
        dtype = _dtype(tt.elem_type, what)
        shape = None
        if tt.HasField("shape"):
            if len(tt.shape.dim) > MAX_RANK:
                raise InvalidModelError(f"{what} has rank {len(tt.shape.dim)}; at most "
                                        f"{MAX_RANK} dimensions are supported")
            dims: list[Any] = []
            for d in tt.shape.dim:
                which = d.WhichOneof("value")
                if which == "dim_value" and d.dim_value >= 0:
                    dims.append(int(d.dim_value))
                elif which == "dim_param" and d.dim_param:
                    dims.append(str(d.dim_param))
                else:
                    dims.append(None)
            shape = tuple(dims)
        return TensorInfo(dtype, shape)
    if kind == "sequence_type":
        st = tp.sequence_type
        return SequenceInfo(type_from_proto(st.elem_type, what, _depth + 1)
                            if st.HasField("elem_type") else None)
    if kind == "optional_type":
        ot = tp.optional_type
        return OptionalInfo(type_from_proto(ot.elem_type, what, _depth + 1)
                            if ot.HasField("elem_type") else None)
    if kind == "map_type":
        mt = tp.map_type
        value = (type_from_proto(mt.value_type, what, _depth + 1)
                 if mt.HasField("value_type") else None)
        return MapInfo(_dtype(mt.key_type, f"{what} (map key)"), value)
    raise NotImplementedFeatureError(
        f"{what} has an {kind.replace('_type', '')} type, which PyFlameRT does not support")


def type_to_proto(vtype: ValueType | None) -> onnx.TypeProto:
    """Our value type -> ``TypeProto`` (an empty proto for ``None``)."""
    tp = onnx.TypeProto()
    if vtype is None:
        return tp
    if isinstance(vtype, TensorInfo):
        tp.tensor_type.elem_type = vtype.dtype.value
        if vtype.shape is not None:
            shape = tp.tensor_type.shape
            shape.SetInParent()  # a scalar keeps an empty (but present) shape
            for d in vtype.shape:
                dim = shape.dim.add()
                if isinstance(d, (int, np.integer)) and not isinstance(d, bool):
                    dim.dim_value = int(d)
                elif isinstance(d, str) and d:
                    dim.dim_param = d
        return tp
    if isinstance(vtype, SequenceInfo):
        tp.sequence_type.SetInParent()
        if vtype.elem is not None:
            tp.sequence_type.elem_type.CopyFrom(type_to_proto(vtype.elem))
        return tp
    if isinstance(vtype, OptionalInfo):
        tp.optional_type.SetInParent()
        if vtype.elem is not None:
            tp.optional_type.elem_type.CopyFrom(type_to_proto(vtype.elem))
        return tp
    if isinstance(vtype, MapInfo):
        tp.map_type.key_type = vtype.key.value
        if vtype.value is not None:
            tp.map_type.value_type.CopyFrom(type_to_proto(vtype.value))
        return tp
    raise TypeError(f"not a value type: {vtype!r}")


# -- tensors: proto -> numpy -------------------------------------------------------------------
def _unpack(data: np.ndarray, count: int, bits: int) -> np.ndarray:
    """Split a packed bit stream into one element per byte, lowest bits first (ONNX's order).

    Works for every width ONNX packs (2, 4 and 6 bits): elements may straddle bytes.
    """
    stream = np.unpackbits(np.ascontiguousarray(data, dtype=np.uint8), bitorder="little")
    fields = stream[:count * bits].reshape(count, bits)
    return np.packbits(fields, axis=1, bitorder="little").reshape(count).astype(np.uint8)


def _pack(arr: np.ndarray, bits: int) -> bytes:
    """Inverse of :func:`_unpack`: the low ``bits`` of each element, as one bit stream."""
    flat = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
    fields = np.unpackbits(flat[:, None], axis=1, bitorder="little")[:, :bits]
    return np.packbits(fields.reshape(-1), bitorder="little").tobytes()


def _set_hugepage_hint(enabled: bool) -> bool | None:
    """numpy's own switch for ``madvise(MADV_HUGEPAGE)`` on big arrays (previous state), or
    ``None`` where this numpy has none."""
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:  # numpy < 2
        try:
            from numpy.core.multiarray import _set_madvise_hugepage
        except ImportError:
            return None
    return bool(_set_madvise_hugepage(enabled))


def _empty_bytes(size: int) -> np.ndarray:
    """A new uint8 buffer for ``size`` bytes of weights, on ordinary pages.

    numpy asks the kernel for transparent huge pages on arrays of 4 MiB or more; where THP is
    in ``madvise`` mode with direct compaction, the first write to such memory stalls while
    the kernel assembles 2 MiB pages, and reading a model's weights took 2-5x longer
    (0.4 s -> 0.9-2 s for 400 MB here). Weights are written once and then read in order, so
    ordinary pages cost nothing measurable at run time (as with ONNX Runtime's weights).
    """
    if size < 1 << 22:
        return np.empty(size, dtype=np.uint8)
    previous = _set_hugepage_hint(False)
    try:
        return np.empty(size, dtype=np.uint8)
    finally:
        if previous is not None:
            _set_hugepage_hint(previous)


def _decode_string(s: bytes) -> str | bytes:
    try:
        return s.decode("utf-8")
    except UnicodeDecodeError:
        return s  # not text: keep the bytes rather than corrupt them


@dataclass
class TensorReader:
    """Turns tensor protos into numpy arrays, enforcing the size and external-data rules.

    Attributes:
        base_dir: Folder of the model file, against which external data locations resolve;
            ``None`` when the model came from bytes (external data is then refused).
        memory_limit: Largest total of tensor bytes to accept (``None``: no limit).
        source: How to name the model in messages (its path, or ``<bytes>``).
    """

    base_dir: str | None = None
    memory_limit: int | None = None
    source: str = "the model"
    total_bytes: int = 0
    _real_base: str | None = field(default=None, repr=False)
    #: Where ``raw_data`` taken out of the protos by ``strip_raw_data`` lives: an open binary
    #: file (read with ``readinto``, so no transient copy), or the model's bytes.
    raw_file: Any = field(default=None, repr=False)
    raw_buffer: Any = field(default=None, repr=False)

    def _charge(self, nbytes: int, what: str) -> None:
        limit = self.memory_limit
        if limit is None:
            return
        if nbytes > limit:
            raise MemoryLimitError(
                f"{what} needs {nbytes} bytes, more than memory_limit={limit}; raise the limit "
                "or use a smaller model")
        if self.total_bytes + nbytes > limit:
            raise MemoryLimitError(
                f"{what} brings the model's constant data to {self.total_bytes + nbytes} bytes, "
                f"more than memory_limit={limit}; raise the limit or use a smaller model")
        self.total_bytes += nbytes

    def to_array(self, t: onnx.TensorProto, what: str,
                 raw_ref: tuple[int, int] | None = None) -> tuple[np.ndarray, DType]:
        """Decode ``t`` into a writable, C-contiguous array of ``DType.numpy``.

        ``raw_ref`` is ``(offset, length)`` of the tensor's ``raw_data`` in :attr:`raw_file`
        or :attr:`raw_buffer`, for a proto whose payload was split off before parsing.
        """
        label = f"{what} {t.name!r}" if t.name and repr(t.name) not in what else what
        if t.HasField("segment"):
            raise NotImplementedFeatureError(
                f"{label} is stored in segments, which PyFlameRT does not support; re-save the "
                "model without segments")
        dtype = _dtype(t.data_type, label)
        dims = [int(d) for d in t.dims]
        npdt = dtype.numpy
        _check_shape(dims, npdt.itemsize, label)
        count = math.prod(dims)
        if dtype is not DType.STRING:
            self._charge(count * npdt.itemsize, label)

        if t.data_location == onnx.TensorProto.EXTERNAL:
            if dtype is DType.STRING:
                raise InvalidModelError(f"{label} is a string tensor; those cannot use external data")
            raw = self._read_external(t, label, packed_bytes(dtype, count))
            return self._from_raw(raw, dtype, count, dims, owned=True), dtype
        if raw_ref is not None or t.HasField("raw_data"):
            if dtype is DType.STRING:
                raise InvalidModelError(
                    f"{label} uses raw_data; string tensors must use string_data")
            data = None if raw_ref is not None else t.raw_data  # (protobuf copies per read)
            size = raw_ref[1] if data is None else len(data)
            expected = packed_bytes(dtype, count)
            if size != expected:
                raise InvalidModelError(
                    f"{label}: raw_data holds {size} bytes but shape {dims} of "
                    f"{dtype.name} needs {expected}; the model file is corrupt or truncated")
            if raw_ref is not None:
                # A buffer of our own: view it as the array instead of copying it again.
                return self._from_raw(self._read_slice(raw_ref, label), dtype, count, dims,
                                      owned=True), dtype
            return self._from_raw(np.frombuffer(data, np.uint8), dtype, count, dims), dtype
        return self._from_fields(t, dtype, count, dims, label), dtype

    def _read_slice(self, raw_ref: tuple[int, int], label: str) -> np.ndarray:
        """The bytes ``raw_ref`` names, in a new writable uint8 array."""
        offset, size = raw_ref
        buf = _empty_bytes(size)
        if self.raw_file is not None:
            self.raw_file.seek(offset)
            got = self.raw_file.readinto(memoryview(buf))
            if got != size:
                raise InvalidModelError(f"{label}: could read only {got} of {size} bytes of "
                                        "its raw_data (was the file changed while loading?)")
        else:
            buf[:] = np.frombuffer(self.raw_buffer, np.uint8, size, offset)
        return buf

    @staticmethod
    def _from_raw(raw: np.ndarray, dtype: DType, count: int, dims: list[int],
                  owned: bool = False) -> np.ndarray:
        bits = _PACKED_BITS.get(dtype)
        if bits is not None:
            return _unpack(raw, count, bits).view(dtype.numpy).reshape(dims)
        if dtype is DType.BOOL:
            return (raw != 0).reshape(dims)
        if dtype.numpy.itemsize > 1 and raw.ctypes.data % dtype.numpy.itemsize:
            owned = False  # misaligned: the copy below aligns it
        arr = raw.view(dtype.numpy)
        if sys.byteorder == "big" and dtype.numpy.itemsize > 1:  # ONNX stores little-endian
            return arr.byteswap().reshape(dims)
        # Copy unless ``raw`` is ours: the array must own writable memory (frombuffer views
        # of protobuf's bytes are read-only).
        return arr.reshape(dims) if owned else arr.reshape(dims).copy()

    @staticmethod
    def _from_fields(t: onnx.TensorProto, dtype: DType, count: int, dims: list[int],
                     label: str) -> np.ndarray:
        if dtype is DType.STRING:
            fld, per_elem = t.string_data, 1
        elif dtype in (DType.FLOAT, DType.COMPLEX64):
            fld, per_elem = t.float_data, 2 if dtype is DType.COMPLEX64 else 1
        elif dtype in (DType.DOUBLE, DType.COMPLEX128):
            fld, per_elem = t.double_data, 2 if dtype is DType.COMPLEX128 else 1
        elif dtype is DType.INT64:
            fld, per_elem = t.int64_data, 1
        elif dtype in (DType.UINT32, DType.UINT64):
            fld, per_elem = t.uint64_data, 1
        else:
            fld, per_elem = t.int32_data, 1
        bits = None if dtype in _BITS_IN_INT32 else _PACKED_BITS.get(dtype)
        expected = (count * bits + 7) // 8 if bits else count * per_elem
        if len(fld) != expected:
            raise InvalidModelError(
                f"{label}: holds {len(fld)} values but shape {dims} of {dtype.name} "
                f"needs {expected}; the model file is corrupt or truncated")
        if dtype is DType.STRING:
            arr = np.empty(count, dtype=object)
            arr[:] = [_decode_string(s) for s in fld]
            return arr.reshape(dims)
        if bits is not None:
            packed = np.array(fld, dtype=np.int64).astype(np.uint8)
            return _unpack(packed, count, bits).view(dtype.numpy).reshape(dims)
        if dtype in _BITS_IN_INT32:
            store = _BITS_IN_INT32[dtype]
            return np.array(fld, dtype=np.int64).astype(store).view(dtype.numpy).reshape(dims)
        if dtype is DType.BOOL:
            return (np.array(fld, dtype=np.int64) != 0).reshape(dims)
        if dtype in (DType.COMPLEX64, DType.COMPLEX128):
            real = np.float32 if dtype is DType.COMPLEX64 else np.float64
            return np.array(fld, dtype=real).view(dtype.numpy).reshape(dims)
        if dtype.numpy.kind in "iu":
            # Read wide, then narrow: numpy 2 refuses out-of-range Python ints outright, and a
            # malformed model must not crash the loader.
            wide = np.uint64 if dtype in (DType.UINT32, DType.UINT64) else np.int64
            return np.array(fld, dtype=wide).astype(dtype.numpy).reshape(dims)
        return np.array(fld, dtype=dtype.numpy).reshape(dims)

    # -- external data -----------------------------------------------------------------------
    def _read_external(self, t: onnx.TensorProto, label: str, nbytes: int) -> np.ndarray:
        info = {e.key: e.value for e in t.external_data}
        location = info.get("location", "")
        if not location:
            raise InvalidModelError(f"{label} is marked external but names no location")
        if self.base_dir is None:
            raise InvalidModelError(
                f"{label} stores its data in external file {location!r}, but the model "
                "was given as bytes/ModelProto without a folder; load it from its path or pass "
                "base_dir=<folder of the model>")
        if (os.path.isabs(location) or location.startswith(("/", "\\"))
                or os.path.splitdrive(location)[0]):
            raise InvalidModelError(
                f"{label}: external data location {location!r} is an absolute path; "
                "only paths relative to the model's folder are allowed")
        parts = location.replace("\\", "/").split("/")
        if ".." in parts:
            raise InvalidModelError(
                f"{label}: external data location {location!r} leaves the model's "
                "folder ('..'); only files inside the model's folder are allowed")
        if self._real_base is None:
            self._real_base = os.path.realpath(self.base_dir)
        if "\0" in location:
            raise InvalidModelError(f"{label}: external data location {location!r} contains "
                                    "a NUL character")
        path = os.path.join(self.base_dir, *parts)
        real = os.path.realpath(path)
        if os.path.commonpath([real, self._real_base]) != self._real_base:
            raise InvalidModelError(
                f"{label}: external data file {location!r} resolves to {real!r}, outside "
                f"the model's folder {self._real_base!r} (symlink?); refusing to read it")
        try:
            st = os.stat(real)
        except OSError:
            raise InvalidModelError(
                f"{label}: external data file {location!r} not found in "
                f"{self.base_dir!r}") from None
        if not stat.S_ISREG(st.st_mode):
            raise InvalidModelError(
                f"{label}: external data location {location!r} is not a regular file")
        size = st.st_size

        def number(key: str) -> int | None:
            text = info.get(key)
            if text is None or text == "":
                return None
            try:
                n = int(text)
            except ValueError:
                raise InvalidModelError(
                    f"{label}: external data {key} {text!r} is not an integer") from None
            if n < 0:
                raise InvalidModelError(f"{label}: external data {key} {n} is negative")
            return n

        offset = number("offset") or 0
        length = number("length")
        if offset > size:
            raise InvalidModelError(
                f"{label}: external data offset {offset} is beyond the end of "
                f"{location!r} ({size} bytes)")
        if length is not None and length != nbytes:
            raise InvalidModelError(
                f"{label}: external data length {length} does not match the {nbytes} "
                "bytes its shape and element type need")
        if offset + nbytes > size:
            raise InvalidModelError(
                f"{label}: external data needs bytes {offset}..{offset + nbytes} of "
                f"{location!r}, but the file has only {size} bytes (truncated?)")
        buf = _empty_bytes(nbytes)
        with open(real, "rb") as f:
            f.seek(offset)
            got = f.readinto(memoryview(buf))
        if got != nbytes:
            raise InvalidModelError(
                f"{label}: could read only {got} of {nbytes} bytes from {location!r}")
        return buf

    # -- sparse --------------------------------------------------------------------------------
    def sparse_to_array(self, sp: onnx.SparseTensorProto, what: str) -> tuple[np.ndarray, DType]:
        """Densify a ``SparseTensorProto`` (COO: linear ``[NNZ]`` or ``[NNZ, rank]`` indices)."""
        name = sp.values.name
        label = f"{what} {name!r}" if name and repr(name) not in what else what
        dims = [int(d) for d in sp.dims]
        if any(d < 0 for d in dims) or len(dims) > MAX_RANK:
            _check_shape(dims, 1, label)  # raises, naming the problem
        values, dtype = self.to_array(sp.values, f"values of {label}")
        indices, _ = self.to_array(sp.indices, f"indices of {label}")
        values = values.reshape(-1)
        nnz = values.size
        count = math.prod(dims)
        dense_bytes = count * dtype.numpy.itemsize
        if dtype is not DType.STRING:
            self._charge(dense_bytes, label)
        _check_shape(dims, dtype.numpy.itemsize, label)
        # The dense size of a sparse tensor is a claim no file data backs: without a
        # memory_limit, at least refuse what this machine could never hold.
        ram = _physical_memory() if self.memory_limit is None else None
        if ram is not None and dense_bytes > ram:
            raise InvalidModelError(
                f"{label}: its dense form (shape {dims}) needs {dense_bytes} bytes, more than "
                f"this machine's {ram} bytes of memory")
        if indices.dtype.kind not in "iu":
            raise InvalidModelError(f"{label}: indices must be integers")
        indices = indices.astype(np.int64)
        if indices.ndim == 1 and indices.size == nnz:
            flat = indices
        elif indices.ndim == 2 and indices.shape == (nnz, len(dims)):
            if nnz and ((indices < 0).any() or (indices >= np.array(dims)).any()):
                raise InvalidModelError(f"{label}: an index is out of range "
                                        f"for shape {dims}")
            try:
                flat = (np.ravel_multi_index(indices.T, dims) if nnz
                        else np.zeros(0, np.int64))
            except ValueError as exc:  # dims too large to index
                raise InvalidModelError(f"{label}: {exc}") from None
        else:
            raise InvalidModelError(
                f"{label}: indices of shape {list(indices.shape)} do not fit "
                f"{nnz} values of a tensor of rank {len(dims)}")
        if nnz and ((flat < 0).any() or (flat >= count).any()):
            raise InvalidModelError(f"{label}: an index is out of range for "
                                    f"shape {dims}")
        try:
            dense = np.zeros(count, dtype=dtype.numpy)
        except (MemoryError, ValueError):
            raise InvalidModelError(
                f"{label}: its dense form (shape {dims}) does not fit in memory") from None
        if dtype is DType.STRING:
            dense[:] = ""
        dense[flat] = values
        return dense.reshape(dims), dtype


# -- tensors: numpy -> proto -------------------------------------------------------------------
def _encode_string(s: Any) -> bytes:
    if isinstance(s, bytes):
        return s
    if isinstance(s, np.bytes_):
        return bytes(s)
    return str(s).encode("utf-8")


def array_to_tensor(arr: Any, name: str = "", dtype: DType | None = None, *,
                    out: onnx.TensorProto | None = None) -> onnx.TensorProto:
    """A numpy array (or scalar) -> ``TensorProto`` with ``raw_data`` (``string_data`` for text).

    ``out`` fills an existing (empty) message in place, sparing a copy of the data.
    """
    arr = np.asarray(arr)
    if dtype is None:
        dtype = DType.from_numpy(arr.dtype)
    t = onnx.TensorProto() if out is None else out
    if name:
        t.name = name
    t.data_type = dtype.value
    t.dims.extend(int(d) for d in arr.shape)
    if dtype is DType.STRING:
        t.string_data.extend(_encode_string(s) for s in arr.reshape(-1).tolist())
        return t
    if arr.dtype != dtype.numpy:
        arr = arr.astype(dtype.numpy)
    bits = _PACKED_BITS.get(dtype)
    if bits is not None:
        t.raw_data = _pack(arr, bits)
    elif dtype is DType.BOOL:
        t.raw_data = np.ascontiguousarray(arr).view(np.uint8).tobytes()
    else:
        if sys.byteorder == "big" and arr.dtype.itemsize > 1:
            arr = arr.byteswap()
        t.raw_data = np.ascontiguousarray(arr).tobytes()
    return t


def array_to_sparse(arr: np.ndarray, name: str = "") -> onnx.SparseTensorProto:
    """A dense array -> ``SparseTensorProto`` holding its non-zero entries (linear indices)."""
    arr = np.asarray(arr)
    flat = arr.reshape(-1)
    if arr.dtype == object:
        nz = np.array([i for i, s in enumerate(flat.tolist()) if s not in ("", b"")],
                      dtype=np.int64)
    dtype = DType.from_numpy(arr.dtype)
    if arr.dtype != object:
        # Compare in a wide native type: ml_dtypes' narrow types lack some ufunc loops.
        wide = np.float64 if dtype.is_float else np.complex128 if arr.dtype.kind == "c" \
            else np.int64 if dtype is not DType.BOOL else np.bool_
        nz = np.flatnonzero(flat.astype(wide) != 0)
    sp = onnx.SparseTensorProto()
    array_to_tensor(flat[nz], name, dtype, out=sp.values)
    array_to_tensor(nz.astype(np.int64), f"{name}_indices" if name else "", out=sp.indices)
    sp.dims.extend(int(d) for d in arr.shape)
    return sp
