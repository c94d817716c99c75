"""Split an ONNX file's weights from its structure by reading protobuf's wire format.

Parsing a whole ``.onnx`` file with protobuf holds every weight twice (the file's bytes and
the parsed message) before the importer makes a third copy as numpy arrays: a 500 MB model
peaked at three times its size. :func:`strip_raw_data` instead walks the top level of the
wire format (``ModelProto.graph`` -> ``GraphProto.initializer`` -> ``TensorProto.raw_data``),
copies everything except the initializers' ``raw_data`` payloads into a small buffer for
protobuf to parse, and records where each payload lies in the file, so the importer can read
each weight straight into its own array (one copy, no transient ones).

The scanner is deliberately conservative: anything unusual (a malformed varint, a group, a
graph field given twice, which protobuf would merge) makes it return ``None`` and the caller
parses the file the ordinary way, so errors and semantics stay exactly protobuf's.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["StrippedModel", "strip_raw_data"]

# Field numbers (onnx.proto).
_MODEL_GRAPH = 7
_GRAPH_INITIALIZER = 5
_TENSOR_RAW_DATA = 9
_LEN = 2  # wire type of length-delimited fields
# Payloads smaller than this stay in the message: splitting them saves nothing.
MIN_SPLIT_BYTES = 256


class _Malformed(Exception):
    """The bytes are not a wire format this scanner vouches for (the caller falls back)."""


@dataclass
class StrippedModel:
    """A model's bytes without its initializers' ``raw_data``, and where that data lies.

    Attributes:
        data: The serialized ``ModelProto`` with the large ``raw_data`` fields of the main
            graph's initializers removed.
        raw_slices: For the i-th initializer of the main graph, ``(offset, length)`` of its
            ``raw_data`` payload in the original bytes (absent when it was left in place).
        split_bytes: Total bytes of the payloads taken out.
    """

    data: bytes
    raw_slices: dict[int, tuple[int, int]]
    split_bytes: int


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Malformed
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _encode_varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _fields(buf: memoryview, start: int, end: int):
    """``(field, wire_type, tag_start, value_start, value_end)`` for each field in a message.

    For length-delimited fields ``value_start`` is past the length prefix.
    """
    pos = start
    while pos < end:
        tag, p = _varint(buf, pos, end)
        field, wtype = tag >> 3, tag & 7
        if field == 0:
            raise _Malformed
        if wtype == 0:
            _, q = _varint(buf, p, end)
        elif wtype == 1:
            q = p + 8
        elif wtype == 5:
            q = p + 4
        elif wtype == _LEN:
            n, p = _varint(buf, p, end)
            q = p + n
        else:  # groups (3, 4) and invalid types
            raise _Malformed
        if q > end:
            raise _Malformed
        yield field, wtype, pos, p, q
        pos = q


def _tag(field: int, wtype: int) -> bytes:
    return _encode_varint(field << 3 | wtype)


def strip_raw_data(buf: memoryview | bytes) -> StrippedModel | None:
    """Take the main graph's large initializer payloads out of a serialized ``ModelProto``.

    Returns ``None`` when there is nothing worth splitting or the bytes look unusual in any
    way (the caller then parses them as they are).
    """
    view = memoryview(buf).cast("B") if not isinstance(buf, memoryview) else buf
    try:
        return _strip(view)
    except _Malformed:
        return None


def _strip(buf: memoryview) -> StrippedModel | None:
    end = len(buf)
    graphs = [f for f in _fields(buf, 0, end) if f[0] == _MODEL_GRAPH]
    if len(graphs) != 1 or graphs[0][1] != _LEN:
        return None  # no graph, or several that protobuf would merge: not ours to judge
    out = bytearray()
    slices: dict[int, tuple[int, int]] = {}
    split = 0
    for field, wtype, tag_start, start, stop in _fields(buf, 0, end):
        if field != _MODEL_GRAPH:
            out += buf[tag_start:stop]
            continue
        graph = bytearray()
        index = 0
        for gfield, gwtype, gtag, gstart, gstop in _fields(buf, start, stop):
            if gfield != _GRAPH_INITIALIZER or gwtype != _LEN:
                graph += buf[gtag:gstop]
                continue
            raw = None
            for tfield, twtype, _, tstart, tstop in _fields(buf, gstart, gstop):
                if tfield == _TENSOR_RAW_DATA and twtype == _LEN:
                    raw = (tstart, tstop)  # protobuf keeps the last occurrence
            if raw is None or raw[1] - raw[0] < MIN_SPLIT_BYTES:
                graph += buf[gtag:gstop]
            else:
                tensor = bytearray()
                for tfield, twtype, ttag, _, tstop in _fields(buf, gstart, gstop):
                    if not (tfield == _TENSOR_RAW_DATA and twtype == _LEN):
                        tensor += buf[ttag:tstop]
                graph += _tag(_GRAPH_INITIALIZER, _LEN) + _encode_varint(len(tensor)) + tensor
                slices[index] = (raw[0], raw[1] - raw[0])
                split += raw[1] - raw[0]
            index += 1
        out += _tag(_MODEL_GRAPH, _LEN) + _encode_varint(len(graph)) + graph
    if not slices:
        return None
    return StrippedModel(bytes(out), slices, split)
