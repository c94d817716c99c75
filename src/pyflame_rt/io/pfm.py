"""The native ``.pfm`` model format: a versioned binary file whose tensors can be memory-mapped.

Layout (every integer little-endian)::

    offset    size  field
    0         8     magic b"PFMODEL\\0"
    8         4     format version, uint32 (this module writes and reads version 1)
    12        4     M: size of the metadata, uint32
    16        M     metadata, UTF-8 JSON object: format, producer_name, producer_version,
                    domain, model_version, doc_string, ir_version, metadata_props (str -> str),
                    opset_imports (domain -> version)
    16+M      8     total file size, uint64 (a truncated or extended file is refused at once)
    24+M      8     G: size of the graph section, uint64
    32+M      8     T: size of the tensor table, uint64
    40+M      G     graph, UTF-8 JSON (encoding documented in ``_pfm_graph``)
    40+M+G    T     tensor table, UTF-8 JSON list of
                    {"name", "dtype" (ONNX DataType number), "shape", "offset", "length"}
    ...             zero padding, then each tensor's bytes at an ``offset`` that is a multiple
                    of 64 counted from the file start, zero padding between tensors

Tensor bytes: C order, little-endian, exactly what numpy holds, so a tensor is mapped with
``np.frombuffer`` over an ``mmap`` of the file and never copied. The 4-bit and 2-bit types
(int4, uint4, float4e2m1, int2, uint2) are stored one element per byte in the low bits, which
is ``ml_dtypes``' own in-memory layout (unpacked: simple and mappable, at twice the size of
ONNX's packed form). String tensors are a sequence of elements, each a kind byte (0: ``str``
encoded as UTF-8, 1: ``bytes``), a uint32 length and the bytes.

Hostile files: every size, count, offset and dim is checked against the file size and fixed
bounds before it is used, JSON fields are type-checked, names are resolved explicitly, nesting
is bounded, and every problem raises :class:`~pyflame_rt.errors.InvalidModelError` naming what
is wrong. Nothing is unpickled or evaluated.

Mapped tensors are read-only views into the file. Writing a model over a path that a loaded
model still maps is safe: :func:`save_pfm` writes a new file and renames it into place.
Truncating a mapped file in place from outside (e.g. ``open(path, "w")``) is not: the OS then
kills the process on the next access, as with any memory-mapped file.
"""

from __future__ import annotations

import gc
import io
import itertools
import json
import math
import mmap as _mmap
import os
import stat
import struct
import sys
import tempfile
from typing import Any, BinaryIO, Union

import numpy as np

from ..errors import InvalidArgumentError, InvalidModelError, ModelNotFoundError
from ..ir import Model, verify
from ..types import DType
from ._onnx_schema import check_schemas
from ._pfm_graph import MAX_DIM, MAX_RANK, GraphDecoder, GraphEncoder, check, field

__all__ = ["ALIGNMENT", "FORMAT_VERSION", "MAGIC", "dumps_pfm", "is_pfm", "load_pfm", "loads_pfm",
           "save_pfm"]

MAGIC = b"PFMODEL\0"
FORMAT_VERSION = 1
ALIGNMENT = 64

PathLike = Union[str, "os.PathLike[str]"]

_HEAD = struct.Struct("<8sII")  # magic, format version, metadata size
_SECTIONS = struct.Struct("<QQQ")  # total size, graph size, table size
_STR_HEAD = struct.Struct("<BI")  # string element: kind, length
_STR_KINDS = (str, bytes)
_MAX_TENSORS = 10_000_000  # more table entries than this is not a model, it is an attack
# Bytes of memory a decoded Python string object costs beyond its payload (for memory_limit).
_STR_OVERHEAD = 64
# Element types whose bytes must stay below a bound: bool is 0/1, 4-bit and 2-bit types live
# in the low bits of their byte. Other types accept every byte pattern.
_BYTE_BOUND = {DType.BOOL: 2, DType.INT4: 16, DType.UINT4: 16, DType.FLOAT4E2M1: 16,
               DType.INT2: 4, DType.UINT2: 4}


def _align(n: int) -> int:
    return -(-n // ALIGNMENT) * ALIGNMENT


# -- writing -------------------------------------------------------------------------------
class _TensorTable:
    """Collects arrays for the tensor table; one array object is stored once."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, DType, tuple[int, ...], Any]] = []
        self._index: dict[int, int] = {}
        self._keep: list[np.ndarray] = []  # keeps ids stable while encoding

    def add(self, array: np.ndarray, name: str) -> int:
        key = id(array)
        if key in self._index:
            return self._index[key]
        self._keep.append(array)
        dtype, payload = _tensor_payload(array, name)
        self.entries.append((name, dtype, tuple(int(d) for d in array.shape), payload))
        self._index[key] = len(self.entries) - 1
        return self._index[key]


def _tensor_payload(array: np.ndarray, name: str) -> tuple[DType, Any]:
    """The element type and the bytes (a buffer) stored for ``array``."""
    if array.ndim > MAX_RANK:
        raise InvalidModelError(f"tensor {name!r} has rank {array.ndim}; .pfm allows {MAX_RANK}")
    if array.dtype.kind in ("U", "S", "O"):
        out = bytearray()
        for element in array.reshape(-1).tolist():
            if isinstance(element, str):
                try:
                    data = element.encode("utf-8")
                except UnicodeEncodeError:
                    raise InvalidModelError(
                        f"string tensor {name!r} holds a string that is not valid Unicode "
                        f"({element[:20]!r}...); store it as bytes instead") from None
                kind = 0
            elif isinstance(element, bytes):
                data, kind = element, 1
            else:
                raise InvalidModelError(
                    f"string tensor {name!r} holds a {type(element).__name__}; only str and "
                    "bytes elements can be saved")
            if len(data) > 0xFFFFFFFF:
                raise InvalidModelError(f"string tensor {name!r} has an element over 4 GiB")
            out += _STR_HEAD.pack(kind, len(data))
            out += data
        return DType.STRING, bytes(out)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    try:
        dtype = DType.from_numpy(array.dtype)
    except ValueError:
        raise InvalidModelError(f"tensor {name!r} has numpy dtype {array.dtype}, which has no "
                                "ONNX element type; cast it before saving") from None
    flat = np.ascontiguousarray(array).reshape(-1)
    return dtype, flat.view(np.uint8)


def _json_bytes(obj: Any, what: str) -> bytes:
    try:
        # ensure_ascii: names with lone surrogates still make valid UTF-8; allow_nan=False:
        # non-finite floats are encoded as strings by the graph encoder, never as bare NaN.
        return json.dumps(obj, ensure_ascii=True, allow_nan=False,
                          separators=(",", ":")).encode("ascii")
    except (TypeError, ValueError) as exc:
        raise InvalidModelError(f"cannot encode the {what} as JSON: {exc}") from None


def _metadata(model: Model) -> dict[str, Any]:
    for key in ("producer_name", "producer_version", "domain", "doc_string"):
        if not isinstance(getattr(model, key), str):
            raise InvalidModelError(f"model.{key} must be a str, got "
                                    f"{type(getattr(model, key)).__name__}")
    for key in ("ir_version", "model_version"):
        value = getattr(model, key)
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise InvalidModelError(f"model.{key} must be an int, got {type(value).__name__}")
    props = model.metadata_props
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in props.items()):
        raise InvalidModelError("model.metadata_props must map str to str")
    opsets = model.graph.opset_imports
    if not all(isinstance(k, str) and isinstance(v, (int, np.integer)) for k, v in
               opsets.items()):
        raise InvalidModelError("graph.opset_imports must map domain (str) to version (int)")
    return {
        "format": "pfm",
        "producer_name": model.producer_name,
        "producer_version": model.producer_version,
        "domain": model.domain,
        "model_version": int(model.model_version),
        "doc_string": model.doc_string,
        "ir_version": int(model.ir_version),
        "metadata_props": dict(props),
        "opset_imports": {k: int(v) for k, v in opsets.items()},
    }


def _write(model: Model, out: BinaryIO) -> None:
    """Serialize ``model`` into the writable binary stream ``out``."""
    if not isinstance(model, Model):
        raise InvalidArgumentError(f"save_pfm expects a pyflame_rt.ir.Model, got "
                                   f"{type(model).__name__}")
    if sys.byteorder != "little":  # pragma: no cover - no big-endian CI
        raise InvalidArgumentError(".pfm files can only be written on little-endian hosts")
    verify(model.graph)  # never write a file the loader would refuse
    table = _TensorTable()
    graph_obj = GraphEncoder(table.add).graph(model.graph)
    meta = _json_bytes(_metadata(model), "metadata")
    if len(meta) > 0xFFFFFFFF:
        raise InvalidModelError("the model metadata is larger than 4 GiB")
    graph = _json_bytes(graph_obj, "graph")

    # The table holds absolute offsets, and its own length moves where the data starts:
    # grow the data start until the table fits in front of it (converges in a step or two).
    lengths = [len(payload) if isinstance(payload, bytes) else payload.nbytes
               for _, _, _, payload in table.entries]
    fixed = _HEAD.size + len(meta) + _SECTIONS.size + len(graph)
    data_start = _align(fixed)
    while True:
        offsets, pos = [], data_start
        for length in lengths:
            offsets.append(pos)
            pos = _align(pos + length)
        total = (offsets[-1] + lengths[-1]) if lengths else data_start
        entries = [{"name": name, "dtype": dtype.value, "shape": list(shape),
                    "offset": offset, "length": length}
                   for (name, dtype, shape, _), offset, length in
                   zip(table.entries, offsets, lengths)]
        table_bytes = _json_bytes(entries, "tensor table")
        needed = _align(fixed + len(table_bytes))
        if needed <= data_start:
            break
        data_start = needed

    header = (_HEAD.pack(MAGIC, FORMAT_VERSION, len(meta)) + meta
              + _SECTIONS.pack(total, len(graph), len(table_bytes)) + graph + table_bytes)
    out.write(header)
    pos = len(header)
    for (_, _, _, payload), offset in zip(table.entries, offsets):
        out.write(b"\0" * (offset - pos))
        out.write(payload)
        pos = offset + (len(payload) if isinstance(payload, bytes) else payload.nbytes)
    if pos < total:  # only when there are no tensors: the file ends at the data start
        out.write(b"\0" * (total - pos))


def dumps_pfm(model: Model) -> bytes:
    """Serialize ``model`` to ``.pfm`` bytes.

    Args:
        model: The model to write; its graph must pass ``ir.verify``.

    Returns:
        The complete file contents.

    Raises:
        InvalidModelError: The model holds something the format cannot store (e.g. an
            attribute of an unknown Python type) or its graph is malformed.
    """
    buffer = io.BytesIO()
    _write(model, buffer)
    return buffer.getvalue()


def save_pfm(model: Model, path: PathLike) -> None:
    """Write ``model`` to ``path`` as a ``.pfm`` file.

    The file is written next to ``path`` under a temporary name and renamed into place, so a
    model that is still memory-mapped from an older file at ``path`` keeps working.

    Args:
        model: The model to write; its graph must pass ``ir.verify``.
        path: Destination file.

    Raises:
        InvalidModelError: The model cannot be stored (see :func:`dumps_pfm`).
        InvalidArgumentError: The file cannot be written (missing directory, permissions).
    """
    path = _fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".pfm-", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise InvalidArgumentError(f"cannot write {path!r}: {exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            _write(model, fh)
        os.replace(tmp, path)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise InvalidArgumentError(f"cannot write {path!r}: {exc}") from None
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _fspath(path: Any) -> str:
    try:
        result = os.fspath(path)
    except TypeError:
        raise InvalidArgumentError(f"expected a file path (str or os.PathLike), got "
                                   f"{type(path).__name__}") from None
    if isinstance(result, bytes):
        result = os.fsdecode(result)
    return result


# -- reading -------------------------------------------------------------------------------
class _Entry:
    __slots__ = ("count", "dtype", "length", "name", "offset", "shape")

    def __init__(self, name: str, dtype: DType, shape: tuple[int, ...], offset: int,
                 length: int, count: int) -> None:
        self.name, self.dtype, self.shape = name, dtype, shape
        self.offset, self.length, self.count = offset, length, count


class _Reader:
    """Parses one ``.pfm`` buffer (bytes or an mmap) into a ``Model``."""

    def __init__(self, buf: Any, memory_limit: int | None) -> None:
        self.buf = buf
        self.size = len(buf)
        self.memory_limit = memory_limit
        self.entries: list[_Entry] = []
        self.arrays: dict[int, np.ndarray] = {}

    def parse(self) -> Model:
        size = self.size
        if size < _HEAD.size:
            raise InvalidModelError(f"file is truncated: {size} bytes, but a .pfm header alone "
                                    f"takes {_HEAD.size}")
        magic, version, meta_len = _HEAD.unpack_from(self.buf, 0)
        if magic != MAGIC:
            raise InvalidModelError(f"not a .pfm file: it starts with {magic!r}, expected "
                                    f"{MAGIC!r}")
        if version != FORMAT_VERSION:
            raise InvalidModelError(
                f"unsupported .pfm format version {version}; this PyFlameRT reads version "
                f"{FORMAT_VERSION} (upgrade PyFlameRT or re-export the model)")
        if meta_len > size - _HEAD.size - _SECTIONS.size:
            raise InvalidModelError(f"metadata size {meta_len} runs past the end of the file "
                                    f"({size} bytes): the file is truncated or corrupt")
        meta_start = _HEAD.size
        sections_at = meta_start + meta_len
        total, graph_len, table_len = _SECTIONS.unpack_from(self.buf, sections_at)
        if total != size:
            raise InvalidModelError(f"the header says the file has {total} bytes but it has "
                                    f"{size}: the file is truncated or was modified")
        graph_start = sections_at + _SECTIONS.size
        if graph_len > size - graph_start:
            raise InvalidModelError(f"graph section size {graph_len} runs past the end of the "
                                    f"file ({size} bytes)")
        table_start = graph_start + graph_len
        if table_len > size - table_start:
            raise InvalidModelError(f"tensor table size {table_len} runs past the end of the "
                                    f"file ({size} bytes)")
        data_start = table_start + table_len
        self._check_memory(meta_len + graph_len + table_len, "the header sections")

        meta = self._json(meta_start, meta_len, "metadata")
        table = self._json(table_start, table_len, "tensor table")
        self._read_table(table, data_start)
        self._check_memory(meta_len + graph_len + table_len + sum(
            e.length + (_STR_OVERHEAD * e.count if e.dtype is DType.STRING else 0)
            for e in self.entries), "the model's tensors")
        graph_obj = self._json(graph_start, graph_len, "graph section")
        return self._model(meta, graph_obj)

    def _check_memory(self, needed: int, what: str) -> None:
        if self.memory_limit is not None and needed > self.memory_limit:
            raise InvalidModelError(
                f"loading {what} needs {needed} bytes, more than memory_limit="
                f"{self.memory_limit}; raise memory_limit to load this model")

    def _json(self, start: int, length: int, what: str) -> Any:
        raw = bytes(self.buf[start:start + length])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidModelError(f"the {what} is not valid UTF-8 ({exc.reason} at byte "
                                    f"{start + exc.start})") from None
        try:
            return json.loads(text, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            raise InvalidModelError(f"the {what} is not valid JSON: {exc.msg} at line "
                                    f"{exc.lineno} column {exc.colno}") from None
        except (ValueError, RecursionError) as exc:
            raise InvalidModelError(f"the {what} cannot be parsed: {exc}") from None

    def _read_table(self, table: Any, data_start: int) -> None:
        check(table, list, "the tensor table")
        if len(table) > _MAX_TENSORS:
            raise InvalidModelError(f"the tensor table has {len(table)} entries; at most "
                                    f"{_MAX_TENSORS} are allowed")
        spans = []
        for i, obj in enumerate(table):
            where = f"tensor table entry #{i}"
            check(obj, dict, where)
            name = field(obj, "name", str, where)
            where = f"tensor #{i} {name!r}"
            dtype_num = field(obj, "dtype", int, where)
            try:
                dtype = DType(dtype_num)
            except ValueError:
                raise InvalidModelError(f"{where}: dtype {dtype_num} is not an ONNX element "
                                        "type") from None
            shape = field(obj, "shape", list, where)
            if len(shape) > MAX_RANK:
                raise InvalidModelError(f"{where}: rank {len(shape)} exceeds {MAX_RANK}")
            for d in shape:
                check(d, int, f"{where}: shape dim")
                if not 0 <= d <= MAX_DIM:
                    raise InvalidModelError(f"{where}: shape dim {d} is negative or absurdly "
                                            f"large (shape {shape})")
            offset = field(obj, "offset", int, where)
            length = field(obj, "length", int, where)
            if offset < 0 or length < 0:
                raise InvalidModelError(f"{where}: negative offset {offset} or length {length}")
            if offset % ALIGNMENT:
                raise InvalidModelError(f"{where}: offset {offset} is not a multiple of "
                                        f"{ALIGNMENT}")
            if offset < data_start:
                raise InvalidModelError(f"{where}: offset {offset} overlaps the header, which "
                                        f"ends at byte {data_start}")
            if length > self.size or offset > self.size - length:
                raise InvalidModelError(
                    f"{where}: claims {length} bytes at offset {offset}, but the file has only "
                    f"{self.size} bytes")
            count = math.prod(shape)
            # numpy refuses shapes whose nominal byte size overflows even when empty.
            if math.prod(max(d, 1) for d in shape) > MAX_DIM:
                raise InvalidModelError(f"{where}: shape {shape} is absurdly large")
            if dtype is DType.STRING:
                if count * _STR_HEAD.size > length:
                    raise InvalidModelError(
                        f"{where}: {count} strings need at least {count * _STR_HEAD.size} "
                        f"bytes, but the entry has {length}")
            elif count * dtype.numpy.itemsize != length:
                raise InvalidModelError(
                    f"{where}: shape {shape} of {dtype.name} needs "
                    f"{count * dtype.numpy.itemsize} bytes, but the entry has {length}")
            if length:
                spans.append((offset, length, where))
            self.entries.append(_Entry(name, dtype, tuple(shape), offset, length, count))
        spans.sort()
        for (a_off, a_len, a_where), (b_off, _, b_where) in itertools.pairwise(spans):
            if a_off + a_len > b_off:
                raise InvalidModelError(f"{a_where} and {b_where} overlap in the file")

    def tensor(self, index: Any, where: str) -> np.ndarray:
        check(index, int, f"{where}: tensor index")
        if not 0 <= index < len(self.entries):
            raise InvalidModelError(f"{where}: refers to tensor #{index}, but the tensor table "
                                    f"has {len(self.entries)} entries")
        array = self.arrays.get(index)
        if array is None:
            array = self.arrays[index] = self._decode(self.entries[index], index)
        return array

    def _decode(self, entry: _Entry, index: int) -> np.ndarray:
        where = f"tensor #{index} {entry.name!r}"
        if entry.dtype is DType.STRING:
            return self._decode_strings(entry, where)
        dtype = entry.dtype.numpy
        if entry.count == 0:
            return np.empty(entry.shape, dtype)
        array = np.frombuffer(self.buf, dtype=dtype, count=entry.count, offset=entry.offset)
        bound = _BYTE_BOUND.get(entry.dtype)
        if bound is not None and int(array.view(np.uint8).max()) >= bound:
            raise InvalidModelError(f"{where}: holds byte values that are not valid "
                                    f"{entry.dtype.name.lower()} elements")
        return array.reshape(entry.shape)

    def _decode_strings(self, entry: _Entry, where: str) -> np.ndarray:
        out = np.empty(entry.count, dtype=object)
        pos, end = entry.offset, entry.offset + entry.length
        for i in range(entry.count):
            if pos + _STR_HEAD.size > end:
                raise InvalidModelError(f"{where}: string element {i} starts past the end of "
                                        "the tensor's bytes")
            kind, length = _STR_HEAD.unpack_from(self.buf, pos)
            pos += _STR_HEAD.size
            if kind >= len(_STR_KINDS):
                raise InvalidModelError(f"{where}: string element {i} has unknown kind {kind}")
            if length > end - pos:
                raise InvalidModelError(f"{where}: string element {i} claims {length} bytes, "
                                        "past the end of the tensor's bytes")
            data = bytes(self.buf[pos:pos + length])
            pos += length
            if kind == 0:
                try:
                    out[i] = data.decode("utf-8")
                except UnicodeDecodeError:
                    raise InvalidModelError(f"{where}: string element {i} is not valid "
                                            "UTF-8") from None
            else:
                out[i] = data
        if pos != end:
            raise InvalidModelError(f"{where}: {end - pos} bytes left over after "
                                    f"{entry.count} string elements")
        return out.reshape(entry.shape)

    def _model(self, meta: Any, graph_obj: Any) -> Model:
        where = "metadata"
        check(meta, dict, where)
        if meta.get("format", "pfm") != "pfm":
            raise InvalidModelError(f"metadata: format is {meta.get('format')!r}, not 'pfm'")
        props = field(meta, "metadata_props", dict, where, {})
        for key, value in props.items():
            check(value, str, f"metadata_props[{key!r}]")
        opsets = field(meta, "opset_imports", dict, where)
        for domain, version in opsets.items():
            check(version, int, f"opset_imports[{domain!r}]")
            if not 0 <= version < 2**31:
                raise InvalidModelError(f"opset_imports[{domain!r}] = {version} is out of range")

        graph = GraphDecoder(self.tensor).graph(graph_obj)
        graph.opset_imports = dict(opsets)
        # Node inputs/outputs/attributes against the ONNX schemas: the optimizer and the
        # kernels rely on those shapes of nodes, and a .pfm file is as untrusted as an .onnx.
        check_schemas(graph, "graph")
        model = Model(
            graph=graph,
            ir_version=field(meta, "ir_version", int, where),
            producer_name=field(meta, "producer_name", str, where, ""),
            producer_version=field(meta, "producer_version", str, where, ""),
            domain=field(meta, "domain", str, where, ""),
            model_version=field(meta, "model_version", int, where, 0),
            doc_string=field(meta, "doc_string", str, where, ""),
            metadata_props=dict(props),
        )
        verify(graph)
        return model


def _reject_constant(name: str) -> Any:
    raise InvalidModelError(f"JSON constant {name} is not allowed in a .pfm file")


def _check_limit(memory_limit: Any) -> int | None:
    if memory_limit is None:
        return None
    if isinstance(memory_limit, bool) or not isinstance(memory_limit, (int, np.integer)) \
            or memory_limit < 0:
        raise InvalidArgumentError(f"memory_limit must be None or a non-negative int (bytes), "
                                   f"got {memory_limit!r}")
    return int(memory_limit)


# Python exceptions that malformed input could still provoke past the explicit checks (a
# safety net: each is turned into InvalidModelError instead of escaping as a crash).
_PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError,
                 struct.error, RecursionError, MemoryError)


def _parse(buf: Any, source: str, memory_limit: int | None) -> Model:
    if sys.byteorder != "little":  # pragma: no cover - no big-endian CI
        raise InvalidArgumentError(".pfm files can only be read on little-endian hosts")
    # The parse allocates many objects and frees almost none: cyclic-GC passes over them are
    # wasted work (about a third of the load time on a 5000-node graph).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _Reader(buf, memory_limit).parse()
    except InvalidModelError as exc:
        raise type(exc)(f"invalid .pfm model {source}: {exc}") from None
    except _PARSE_ERRORS as exc:
        if isinstance(exc, InvalidArgumentError):
            raise
        raise InvalidModelError(f"invalid .pfm model {source}: malformed content "
                                f"({type(exc).__name__}: {exc})") from exc
    finally:
        if gc_was_enabled:
            gc.enable()


def loads_pfm(data: bytes, *, memory_limit: int | None = None) -> Model:
    """Load a model from ``.pfm`` bytes.

    Tensors are read-only views into ``data`` (a ``bytearray`` or ``memoryview`` is copied to
    ``bytes`` first, so later edits to it cannot change the model).

    Args:
        data: The complete file contents.
        memory_limit: Refuse models whose sections and tensors need more bytes than this.

    Raises:
        InvalidModelError: The bytes are not a valid ``.pfm`` model; the message says why.
        InvalidArgumentError: ``data`` is not bytes-like or ``memory_limit`` is invalid.
    """
    limit = _check_limit(memory_limit)
    if not isinstance(data, bytes):
        if not isinstance(data, (bytearray, memoryview)):
            raise InvalidArgumentError(f"loads_pfm expects bytes, got {type(data).__name__}")
        data = bytes(data)
    return _parse(data, "(from bytes)", limit)


def load_pfm(path: PathLike, *, memory_limit: int | None = None, mmap: bool = True) -> Model:
    """Load a ``.pfm`` file.

    Args:
        path: The file to read.
        memory_limit: Refuse models whose sections and tensors need more bytes than this
            (checked before anything of that size is read or allocated).
        mmap: Map the file and return tensors as read-only views into the mapping (no copy;
            pages are read on first use). With ``False`` the file is read into memory once and
            tensors are read-only views into that buffer.

    Raises:
        ModelNotFoundError: ``path`` does not exist.
        InvalidModelError: The file is not a valid ``.pfm`` model; the message says why.
        InvalidArgumentError: ``path`` cannot be read (a directory, no permission) or
            ``memory_limit`` is invalid.
    """
    limit = _check_limit(memory_limit)
    path = _fspath(path)
    source = repr(path)
    try:
        with open(path, "rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                # A device or pipe has no size to check against and may never end.
                raise InvalidArgumentError(f"model path {source} is not a regular file")
            size = info.st_size
            if mmap and size > 0:
                buf: Any = _mmap.mmap(fh.fileno(), 0, access=_mmap.ACCESS_READ)
            else:
                if limit is not None and size > limit:
                    raise InvalidModelError(
                        f"invalid .pfm model {source}: reading the file needs {size} bytes, "
                        f"more than memory_limit={limit}; raise memory_limit or use mmap=True")
                buf = fh.read(size)
                if len(buf) != size:
                    raise InvalidModelError(f"invalid .pfm model {source}: the file changed "
                                            "size while it was read")
    except FileNotFoundError:
        raise ModelNotFoundError(f"model file {source} does not exist") from None
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read model file {source}: {exc}") from None
    except ValueError as exc:  # mmap of a file that shrank while opening
        if isinstance(exc, InvalidArgumentError):
            raise
        raise InvalidModelError(f"invalid .pfm model {source}: cannot map it ({exc})") from None
    return _parse(buf, source, limit)


def is_pfm(path_or_bytes: PathLike | bytes) -> bool:
    """True when the file (or bytes) starts with the ``.pfm`` magic; False if unreadable."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return bytes(path_or_bytes[:len(MAGIC)]) == MAGIC
    try:
        path = _fspath(path_or_bytes)
        if not stat.S_ISREG(os.stat(path).st_mode):  # never block on a pipe or read a device
            return False
        with open(path, "rb") as fh:
            return fh.read(len(MAGIC)) == MAGIC
    except (OSError, InvalidArgumentError):
        return False
