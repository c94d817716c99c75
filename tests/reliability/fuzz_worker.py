"""Fuzz worker: mutate valid models with hypothesis and check what the runtime does with them.

Run as a script (the reliability tests start it in a subprocess, so a crash, a hang or a
memory blow-up fails one test instead of the whole run)::

    python tests/reliability/fuzz_worker.py onnx --cases 1000 --seed 1

Each case draws a seed model and 1-4 mutations (bit flips, truncation, inserted/deleted
bytes; or edits of the parsed model: huge counts and dims, wrong dtypes, cycles, dangling and
duplicate names, swapped/removed nodes and fields, deep nesting, hostile external-data
locations), then

1. loads it (``memory_limit`` = 64 MiB),
2. builds an ``InferenceSession`` from what loaded (optimizer on or off),
3. runs it once on small inputs, with ``RunOptions.terminate`` set after 2 s.

Pass: every exception is a ``PyFlameRTError`` subclass; loading and building never fail
for lack of memory (a ``MemoryError`` anywhere in the chain means an allocation followed a
claim instead of being checked first; the process runs under ``RLIMIT_AS`` = its size after
warm-up + 2 GiB so no such allocation can succeed quietly); no loaded external-data model
contains bytes from outside its folder; no case takes longer than ``--timeout`` seconds
(a watchdog dumps the stack and exits otherwise). At run time a ``MemoryError`` inside a
``KernelError`` is accepted: the model asked for that much, as it could in ONNX Runtime.

Output: one ``FUZZ-RESULT {json}`` line on success; on failure the traceback, the falsifying
example and ``FUZZ-FAILURE <path of the failing file>``, exit status 1.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads: one thread, a stable address space

import argparse
import faulthandler
import json
import math
import resource
import sys
import tempfile
import threading
import time
import traceback
import warnings
from typing import Any

import numpy as np
import onnx
from fuzz_seeds import (
    SECRET,
    Seed,
    onnx_seeds,
    pack_pfm,
    pfm_seeds,
    prepare_external_folder,
    unpack_pfm,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

import pyflame_rt as P
from pyflame_rt.errors import InvalidModelError, PyFlameRTError
from pyflame_rt.io.onnx import load_onnx
from pyflame_rt.io.pfm import load_pfm, loads_pfm
from pyflame_rt.types import DType

MEMORY_LIMIT = 64 << 20  # what the loaders and sessions are told
HEADROOM = 2 << 30  # what the process may grow by (RLIMIT_AS) after warm-up
RUN_SECONDS = 2.0  # RunOptions.terminate fires after this long

# -- values a mutation picks from -------------------------------------------------------------
_INTS = [0, 1, -1, 2, 3, 7, 64, 65, 255, 256, 2**31 - 1, -2**31, 2**32, 2**40, 2**62,
         2**63 - 1, -2**63]
_FLOATS = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e38, 1e-45, 3.0]
_STRINGS = ["", "nope", "../../etc/passwd", "/etc/passwd", "../secret.bin", "link.bin",
            "sub/secret.bin", "sub/model/weights.bin", "weights.bin", "./weights.bin",
            "weights.bin\0x", "C:\\Windows\\win.ini", "..\\secret.bin", ".", "x" * 5000,
            "ai.onnx", "com.microsoft", "pyflame", "local", "If", "Loop", "Add", "offset",
            "length", "location", "\u00e9\U0001f600"]
_nasty_int = st.sampled_from(_INTS) | st.integers(-300, 300)


def _repeated(fd: Any) -> bool:
    if hasattr(fd, "is_repeated"):
        return bool(fd.is_repeated)
    return fd.label == fd.LABEL_REPEATED


# ============================================================================================
# ONNX mutations
# ============================================================================================
def _byte_mutations(data: st.DataObject, raw: bytes) -> bytes:
    buf = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4), label="byte ops")):
        op = data.draw(st.sampled_from(["flip", "flip", "set", "truncate", "insert", "delete",
                                        "dup"]), label="byte op")
        if not buf:
            buf += b"\x08"
        pos = data.draw(st.integers(0, len(buf) - 1), label="position")
        if op == "flip":
            buf[pos] ^= 1 << data.draw(st.integers(0, 7), label="bit")
        elif op == "set":
            buf[pos] = data.draw(st.sampled_from([0, 0xFF, 0x7F, 0x80, 1]) | st.integers(0, 255),
                                 label="byte")
        elif op == "truncate":
            del buf[pos:]
        elif op == "insert":
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=8), label="inserted")
        elif op == "delete":
            del buf[pos:pos + data.draw(st.integers(1, 16), label="count")]
        else:
            n = data.draw(st.integers(1, 64), label="count")
            buf[pos:pos] = buf[pos:pos + n]
    return bytes(buf)


def _messages(msg: Any, out: list) -> list:
    """Every message reachable through set fields (the root first)."""
    out.append(msg)
    for fd, value in msg.ListFields():
        if fd.type == fd.TYPE_MESSAGE:
            for item in (value if _repeated(fd) else (value,)):
                if hasattr(item, "ListFields"):  # map entries of message type included
                    _messages(item, out)
    return out


def _names(model: onnx.ModelProto) -> list[str]:
    names: set[str] = set()
    for msg in _messages(model, []):
        if isinstance(msg, onnx.NodeProto):
            names.update(msg.input)
            names.update(msg.output)
        elif isinstance(msg, (onnx.ValueInfoProto, onnx.TensorProto)):
            names.add(msg.name)
    return sorted(n for n in names if n)


def _scalar_value(data: st.DataObject, fd: Any, names: list[str], current: Any) -> Any:
    t = fd.type
    if t in (fd.TYPE_STRING,):
        return data.draw(st.sampled_from(names + _STRINGS) | st.text(max_size=6), label="str")
    if t == fd.TYPE_BYTES:
        current = bytes(current or b"")
        how = data.draw(st.sampled_from(["cut", "grow", "random", "empty"]), label="bytes op")
        if how == "cut" and current:
            return current[:data.draw(st.integers(0, len(current) - 1), label="cut")]
        if how == "grow":
            return current + data.draw(st.binary(min_size=1, max_size=64), label="grown")
        if how == "random":
            return data.draw(st.binary(max_size=64), label="bytes")
        return b""
    if t in (fd.TYPE_FLOAT, fd.TYPE_DOUBLE):
        return data.draw(st.sampled_from(_FLOATS) | st.floats(allow_nan=False, width=32),
                         label="float")
    if t == fd.TYPE_BOOL:
        return data.draw(st.booleans(), label="bool")
    if t in (fd.TYPE_UINT32, fd.TYPE_UINT64, fd.TYPE_FIXED32, fd.TYPE_FIXED64):
        return abs(data.draw(_nasty_int, label="uint")) % (2**64)
    return data.draw(_nasty_int, label="int")  # int32/int64/sint/enum


def _proto_mutation(data: st.DataObject, model: onnx.ModelProto) -> None:
    """One generic edit: any field of any message set to a hostile value, or removed."""
    msgs = _messages(model, [])
    names = _names(model)
    msg = msgs[data.draw(st.integers(0, len(msgs) - 1), label="message")]
    fields = list(msg.DESCRIPTOR.fields)
    if not fields:
        return
    fd = data.draw(st.sampled_from(fields), label=f"field of {msg.DESCRIPTOR.name}")
    try:
        if fd.type == fd.TYPE_MESSAGE:
            _message_field(data, model, msg, fd, msgs)
        elif _repeated(fd):
            seq = getattr(msg, fd.name)
            how = data.draw(st.sampled_from(["append", "replace", "delete", "clear"]),
                            label="repeated op")
            if how == "append":
                for _ in range(data.draw(st.integers(1, 3), label="how many")):
                    seq.append(_scalar_value(data, fd, names, None))
            elif how == "clear" or not seq:
                msg.ClearField(fd.name)
            else:
                i = data.draw(st.integers(0, len(seq) - 1), label="index")
                if how == "delete":
                    del seq[i]
                else:
                    seq[i] = _scalar_value(data, fd, names, seq[i])
        elif data.draw(st.booleans(), label="clear instead"):
            msg.ClearField(fd.name)
        else:
            setattr(msg, fd.name, _scalar_value(data, fd, names, getattr(msg, fd.name)))
    except (ValueError, TypeError, AttributeError, KeyError):
        pass  # protobuf refused the value (out of range for int32, unknown enum): no edit


def _detached(msg: Any) -> Any:
    """A standalone copy. Copying an element of a repeated field straight into a new element
    of the same field crashes protobuf's upb backend (``add()`` may move the source)."""
    copy = type(msg)()
    copy.CopyFrom(msg)
    return copy


def _message_field(data: st.DataObject, model: onnx.ModelProto, msg: Any, fd: Any,
                   msgs: list) -> None:
    same_type = [m for m in msgs if m.DESCRIPTOR is fd.message_type]
    if _repeated(fd):
        seq = getattr(msg, fd.name)
        how = data.draw(st.sampled_from(["delete", "duplicate", "swap", "clear", "add"]),
                        label="repeated message op")
        if how == "clear" or (not len(seq) and how != "add"):
            msg.ClearField(fd.name)
            return
        if how == "add":
            if same_type and not fd.message_type.GetOptions().map_entry:
                donor = same_type[data.draw(st.integers(0, len(same_type) - 1), label="donor")]
                seq.add().CopyFrom(_detached(donor))
            return
        i = data.draw(st.integers(0, len(seq) - 1), label="index")
        if how == "delete":
            del seq[i]
        elif how == "duplicate":
            seq.add().CopyFrom(_detached(seq[i]))
        else:
            j = data.draw(st.integers(0, len(seq) - 1), label="other index")
            a, b = _detached(seq[i]), _detached(seq[j])
            seq[i].CopyFrom(b)
            seq[j].CopyFrom(a)
        return
    if same_type and data.draw(st.booleans(), label="copy another message here"):
        donor = same_type[data.draw(st.integers(0, len(same_type) - 1), label="donor")]
        # The donor may be an ancestor of msg: this nests the model into itself.
        getattr(msg, fd.name).CopyFrom(_detached(donor))
    else:
        msg.ClearField(fd.name)


def _graphs(model: onnx.ModelProto) -> list[onnx.GraphProto]:
    return [m for m in _messages(model, []) if isinstance(m, onnx.GraphProto)]


def _targeted_mutation(data: st.DataObject, model: onnx.ModelProto, seed: Seed) -> None:
    """Edits that keep the file well-formed but make the model hostile or inconsistent."""
    kinds = ["cycle", "self_loop", "dangling", "duplicate_output", "huge_dims", "dtype",
             "elem_type", "input_dim", "opset", "attr_type", "reverse_nodes", "remove_node",
             "nest", "raw_data"]
    if seed.external:
        kinds += ["external"] * 6
    kind = data.draw(st.sampled_from(kinds), label="targeted mutation")
    graphs = _graphs(model)
    graph = graphs[data.draw(st.integers(0, len(graphs) - 1), label="graph")]
    nodes = list(graph.node)
    tensors = [m for m in _messages(model, []) if isinstance(m, onnx.TensorProto)]
    if kind in ("cycle", "self_loop", "dangling") and nodes:
        i = data.draw(st.integers(0, len(nodes) - 1), label="node")
        node = graph.node[i]
        if not node.input:
            node.input.append("")
        k = data.draw(st.integers(0, len(node.input) - 1), label="input")
        if kind == "dangling":
            node.input[k] = data.draw(st.sampled_from(["undefined_value", "", "y", "x"]),
                                      label="name")
        else:
            later = [o for n in nodes[i if kind == "self_loop" else i + 1:][:1 if kind ==
                     "self_loop" else None] for o in n.output if o]
            if later:
                node.input[k] = data.draw(st.sampled_from(later), label="later output")
    elif kind == "duplicate_output" and nodes:
        node = graph.node[data.draw(st.integers(0, len(nodes) - 1), label="node")]
        names = _names(model)
        if node.output and names:
            node.output[0] = data.draw(st.sampled_from(names), label="existing name")
    elif kind == "huge_dims" and tensors:
        t = tensors[data.draw(st.integers(0, len(tensors) - 1), label="tensor")]
        how = data.draw(st.sampled_from(["set", "append", "many"]), label="dims op")
        if how == "many":
            t.dims.extend([1] * data.draw(st.integers(60, 80), label="extra rank"))
        elif how == "append" or not t.dims:
            t.dims.append(data.draw(_nasty_int, label="dim"))
        else:
            t.dims[data.draw(st.integers(0, len(t.dims) - 1), label="axis")] = \
                data.draw(_nasty_int, label="dim")
    elif kind == "dtype" and tensors:
        t = tensors[data.draw(st.integers(0, len(tensors) - 1), label="tensor")]
        t.data_type = data.draw(st.integers(0, 27) | st.sampled_from([2**31 - 1, -1]),
                                label="data_type")
    elif kind == "elem_type":
        vis = [m for m in _messages(model, []) if isinstance(m, onnx.TypeProto.Tensor)]
        if vis:
            vi = vis[data.draw(st.integers(0, len(vis) - 1), label="type")]
            vi.elem_type = data.draw(st.integers(0, 27), label="elem_type")
    elif kind == "input_dim":
        dims = [m for m in _messages(model, []) if isinstance(m, onnx.TensorShapeProto)]
        if dims:
            shape = dims[data.draw(st.integers(0, len(dims) - 1), label="shape")]
            if shape.dim and data.draw(st.booleans(), label="edit a dim"):
                d = shape.dim[data.draw(st.integers(0, len(shape.dim) - 1), label="axis")]
                d.dim_value = data.draw(_nasty_int, label="dim_value")
            else:
                for _ in range(data.draw(st.integers(1, 70), label="extra dims")):
                    shape.dim.add().dim_value = 1
    elif kind == "opset":
        if data.draw(st.booleans(), label="ir_version instead"):
            model.ir_version = data.draw(st.integers(-1, 15), label="ir_version")
        elif model.opset_import:
            model.opset_import[0].version = data.draw(st.integers(-1, 30) | _nasty_int,
                                                      label="opset")
    elif kind == "attr_type":
        attrs = [m for m in _messages(model, []) if isinstance(m, onnx.AttributeProto)]
        if attrs:
            a = attrs[data.draw(st.integers(0, len(attrs) - 1), label="attribute")]
            a.type = data.draw(st.integers(0, 14), label="attribute type")
    elif kind == "reverse_nodes" and nodes:
        reordered = list(reversed(nodes))
        del graph.node[:]
        graph.node.extend(reordered)
    elif kind == "remove_node" and nodes:
        del graph.node[data.draw(st.integers(0, len(nodes) - 1), label="node")]
    elif kind == "nest":
        # Put a copy of the main graph (itself holding subgraphs) into a subgraph slot.
        attrs = [m for m in _messages(model, []) if isinstance(m, onnx.AttributeProto)
                 and m.HasField("g")]
        if attrs:
            a = attrs[data.draw(st.integers(0, len(attrs) - 1), label="graph attribute")]
            for _ in range(data.draw(st.integers(1, 3), label="times")):
                copy = onnx.GraphProto()
                copy.CopyFrom(model.graph)
                a.g.CopyFrom(copy)
    elif kind == "raw_data" and tensors:
        t = tensors[data.draw(st.integers(0, len(tensors) - 1), label="tensor")]
        t.raw_data = data.draw(st.binary(max_size=64), label="raw_data")
    elif kind == "external":
        ext = [t for t in tensors if t.external_data]
        if ext:
            t = ext[data.draw(st.integers(0, len(ext) - 1), label="tensor")]
            entry = t.external_data[data.draw(st.integers(0, len(t.external_data) - 1),
                                              label="entry")]
            if entry.key == "location":
                entry.value = data.draw(st.sampled_from(_STRINGS[1:12]), label="location")
            else:
                entry.value = str(data.draw(_nasty_int, label="number"))


def mutate_onnx(data: st.DataObject, seed: Seed, parsed: onnx.ModelProto) -> bytes:
    mode = data.draw(st.sampled_from(["bytes", "proto", "proto", "targeted", "targeted"]),
                     label="mode")
    if mode == "bytes":
        return _byte_mutations(data, seed.data)
    model = onnx.ModelProto()
    model.CopyFrom(parsed)
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        if mode == "proto":
            _proto_mutation(data, model)
        else:
            _targeted_mutation(data, model, seed)
    return model.SerializeToString()


# ============================================================================================
# .pfm mutations
# ============================================================================================
def _json_paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _json_paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _json_paths(v, prefix + (i,))
    return out


def _json_strings(obj: Any) -> list[str]:
    return sorted({p for path in _json_paths(obj) for p in path if isinstance(p, str)}
                  | {v for v in _leaves(obj) if isinstance(v, str)})


def _leaves(obj: Any) -> list:
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in _leaves(v)]
    if isinstance(obj, list):
        return [x for v in obj for x in _leaves(v)]
    return [obj]


def _nasty_json(names: list[str]) -> st.SearchStrategy:
    atoms = (st.none() | st.booleans() | _nasty_int | st.sampled_from([10**30, -(2**64), 2**64])
             | st.sampled_from([1.5, -0.0, 1e308]) | st.sampled_from(names + _STRINGS[:8])
             | st.integers(0, 30))
    shaped = st.sampled_from([[], {}, [0], [2**62, 2**62], [-1], [1] * 70, [0, 2**62, 2**62],
                              {"tensor": 1, "shape": [2**40]}, {"int": 1}, {"graph": {}},
                              {"seq": {"seq": None}}, {"tensor": 0}, {"scalar": 0},
                              {"bytes": "!!"}, {"float": "nan"}, {"none": 1}])
    return atoms | shaped | st.recursive(atoms, lambda c: st.lists(c, max_size=3)
                                         | st.dictionaries(st.sampled_from(names[:20] or ["x"]),
                                                           c, max_size=2), max_leaves=6)


def _nest_graph(graph: dict, levels: int) -> dict:
    """``graph`` wrapped ``levels`` times as the then_branch of an If in a fresh graph."""
    for depth in range(levels):
        out = f"nest_out_{depth}"
        graph = {"name": f"nest{depth}", "inputs": [], "initializers": [], "outputs": [out],
                 "nodes": [{"op_type": "If", "domain": "", "name": f"if{depth}",
                            "inputs": ["c"], "outputs": [out], "output_types": [None],
                            "attributes": {"then_branch": {"graph": graph},
                                           "else_branch": {"graph": _empty_branch(out)}},
                            "attr_types": {}}]}
    return graph


def _empty_branch(out: str) -> dict:
    return {"name": "else", "inputs": [], "initializers": [], "outputs": [out + "_e"],
            "nodes": [{"op_type": "Identity", "inputs": ["c"], "outputs": [out + "_e"]}]}


def mutate_pfm(data: st.DataObject, seed: Seed) -> bytes:
    mode = data.draw(st.sampled_from(["bytes", "header", "json", "json", "json", "graph",
                                      "graph", "table", "blob"]), label="mode")
    if mode == "bytes":
        return _byte_mutations(data, seed.data)
    if mode == "header":
        buf = bytearray(seed.data)
        meta_len = int.from_bytes(buf[12:16], "little")
        at, size = data.draw(st.sampled_from([(8, 4), (12, 4), (16 + meta_len, 8),
                                              (24 + meta_len, 8), (32 + meta_len, 8)]),
                             label="header field")
        value = abs(data.draw(_nasty_int | st.integers(0, 2**64 - 1), label="value"))
        buf[at:at + size] = (value % (1 << (8 * size))).to_bytes(size, "little")
        return bytes(buf)
    meta, graph, table, blobs = unpack_pfm(seed.data)
    sections = [meta, graph, table]
    names = _json_strings(graph)
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        if mode == "json":
            idx = data.draw(st.sampled_from([0, 1, 1, 2]), label="section")
            root = sections[idx]
            paths = [p for p in _json_paths(root) if p]
            path = paths[data.draw(st.integers(0, len(paths) - 1), label="path")]
            parent = root
            for key in path[:-1]:
                parent = parent[key]
            how = data.draw(st.sampled_from(["set", "set", "delete", "duplicate", "swap"]),
                            label="json op")
            key = path[-1]
            if how == "set":
                parent[key] = data.draw(_nasty_json(names), label="value")
            elif how == "delete":
                del parent[key]
            elif isinstance(parent, list):
                if how == "duplicate":
                    parent.insert(key, parent[key])
                else:
                    j = data.draw(st.integers(0, len(parent) - 1), label="other index")
                    parent[key], parent[j] = parent[j], parent[key]
        elif mode == "graph":
            try:
                _targeted_pfm_graph(data, graph, names)
            except RecursionError:
                break  # an earlier edit nested the graph too deep for this walker: enough

        elif mode == "table" and table:
            entry = table[data.draw(st.integers(0, len(table) - 1), label="entry")]
            key = data.draw(st.sampled_from(["dtype", "shape", "length", "offset", "name"]),
                            label="table key")
            if key == "dtype":
                entry[key] = data.draw(st.integers(-1, 30), label="dtype")
            elif key == "shape":
                entry[key] = data.draw(st.lists(_nasty_int, max_size=4) | st.just([1] * 65),
                                       label="shape")
            elif key == "name":
                entry[key] = data.draw(st.sampled_from(names + ["", "x"]), label="name")
            else:
                entry[key] = data.draw(_nasty_int, label=key)
        elif mode == "blob" and blobs:
            i = data.draw(st.integers(0, len(blobs) - 1), label="blob")
            blob = bytearray(blobs[i])
            if blob:
                pos = data.draw(st.integers(0, len(blob) - 1), label="position")
                blob[pos] = data.draw(st.sampled_from([2, 0xFF, 0x80, 16]), label="byte")
            blobs[i] = bytes(blob)
    fix = data.draw(st.booleans(), label="fix offsets") if mode != "table" else \
        data.draw(st.sampled_from([True, True, False]), label="fix offsets")
    try:
        return pack_pfm(meta, graph, table, blobs, fix_offsets=fix)
    except (TypeError, ValueError, OverflowError, RecursionError):
        return seed.data[: len(seed.data) // 2]  # our packer could not write it: a truncation


def _targeted_pfm_graph(data: st.DataObject, graph: dict, names: list[str]) -> None:
    graphs = [g for g in _json_dicts(graph) if "nodes" in g and isinstance(g["nodes"], list)]
    if not graphs:
        return
    g = graphs[data.draw(st.integers(0, len(graphs) - 1), label="graph")]
    nodes = [n for n in g["nodes"] if isinstance(n, dict)]
    kind = data.draw(st.sampled_from(["cycle", "dangling", "duplicate_output", "reverse",
                                      "remove", "nest", "op_type", "attr"]),
                     label="graph mutation")
    if not nodes:
        return
    i = data.draw(st.integers(0, len(nodes) - 1), label="node")
    node = nodes[i]
    if kind == "cycle":
        later = [o for n in nodes[i:] for o in n.get("outputs", []) if isinstance(o, str) and o]
        if later and node.get("inputs"):
            k = data.draw(st.integers(0, len(node["inputs"]) - 1), label="input")
            node["inputs"][k] = data.draw(st.sampled_from(later), label="later output")
    elif kind == "dangling" and node.get("inputs"):
        node["inputs"][0] = "undefined_value"
    elif kind == "duplicate_output" and node.get("outputs"):
        node["outputs"][0] = data.draw(st.sampled_from(names or ["x"]), label="existing name")
    elif kind == "reverse":
        g["nodes"].reverse()
    elif kind == "remove":
        g["nodes"].remove(node)
    elif kind == "nest":
        levels = data.draw(st.sampled_from([1, 2, 63, 64, 65, 200]), label="levels")
        copy = json.loads(json.dumps(g))
        node.setdefault("attributes", {})["then_branch"] = {"graph": _nest_graph(copy, levels)}
    elif kind == "op_type":
        node["op_type"] = data.draw(st.sampled_from(["If", "Loop", "Scan", "Unknown", "Add",
                                                     "Gemm", ""]), label="op_type")
    else:
        attrs = node.setdefault("attributes", {})
        name = data.draw(st.sampled_from(sorted(attrs) + ["axis", "perm", "pads", "to"]),
                         label="attribute")
        attrs[name] = data.draw(st.sampled_from([{"int": 2**62}, {"int": -2**63},
                                                 {"ints": [2**40, -5]}, {"float": "inf"},
                                                 {"str": "NOTSET"}, {"list": []},
                                                 {"tensor": 0}, {"graph": {}}]),
                                label="attribute value")


def _json_dicts(obj: Any) -> list[dict]:
    out = []
    if isinstance(obj, dict):
        out.append(obj)
        for v in obj.values():
            out += _json_dicts(v)
    elif isinstance(obj, list):
        for v in obj:
            out += _json_dicts(v)
    return out


# ============================================================================================
# The checks
# ============================================================================================
_TYPES = {f"tensor({d.ort_name})": d for d in DType}


class Stats:
    def __init__(self) -> None:
        self.cases = self.refused = self.loaded = self.built = self.ran = 0
        self.max_seconds = 0.0


def _memory_error_in(exc: BaseException) -> BaseException | None:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, MemoryError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _no_allocation_failure(exc: PyFlameRTError, stage: str) -> None:
    found = _memory_error_in(exc)
    if found is not None:
        raise AssertionError(
            f"{stage} ran out of memory ({found!r}) instead of refusing the claim before "
            f"allocating: {exc}") from exc


def _feeds(sess: P.InferenceSession, seed: Seed, rng: np.random.Generator) -> dict | None:
    """Small inputs for whatever the mutated model declares (None: cannot synthesize)."""
    feeds = {}
    for arg in sess.get_inputs():
        given = seed.feeds.get(arg.name)
        dtype = _TYPES.get(arg.type)
        if dtype is None:
            return None
        shape = []
        for d in (arg.shape or []):
            if isinstance(d, int):
                if not 0 <= d <= 16:
                    return None
                shape.append(d)
            else:
                shape.append(2)
        if given is not None and DType.from_numpy(given.dtype) is dtype and \
                given.ndim == len(shape) and all(
                    isinstance(d, str) or d is None or d == n for d, n in
                    zip(arg.shape or [], given.shape)):
            feeds[arg.name] = given
        elif dtype is DType.STRING:
            feeds[arg.name] = np.full(shape, "a", dtype=object)
        else:
            try:
                feeds[arg.name] = rng.integers(0, 3, size=shape).astype(dtype.numpy)
            except (TypeError, ValueError):
                return None
    return feeds


def _injected(kind: str) -> Any:
    """A loader with a planted bug, for the harness's self-test."""
    def load() -> Any:
        if kind == "exception":
            raise KeyError("injected: a non-PyFlameRT exception escaped")
        if kind == "memory":
            try:
                np.ones(HEADROOM * 2, np.uint8)  # beyond RLIMIT_AS: fails at once
            except MemoryError as exc:
                raise InvalidModelError("injected: hid an allocation failure") from exc
        time.sleep(3600)
    return load


def check_model(load: Any, seed: Seed, opt_level: int, stats: Stats, inject: str,
                run_seconds: float | None = RUN_SECONDS) -> None:
    """Load, build, run; raise if anything but a PyFlameRTError escapes or memory blows up."""
    if inject != "none":
        load = _injected(inject)
    try:
        model = load()
    except PyFlameRTError as exc:
        _no_allocation_failure(exc, "loading")
        stats.refused += 1
        return
    stats.loaded += 1
    for value in model.graph.initializers.values():
        arr = value.const_value
        if isinstance(arr, np.ndarray) and arr.dtype != object and \
                SECRET[:16] in np.ascontiguousarray(arr).tobytes():
            raise AssertionError(f"initializer {value.name!r} holds bytes from outside the "
                                 "model's folder")
    options = P.SessionOptions()
    options.memory_limit = MEMORY_LIMIT
    options.graph_optimization_level = opt_level
    try:
        sess = P.InferenceSession(model, options)
    except PyFlameRTError as exc:
        _no_allocation_failure(exc, "building the session")
        return
    stats.built += 1
    feeds = _feeds(sess, seed, np.random.default_rng(0))
    if feeds is None:
        return
    run_options = P.RunOptions()
    timer = None
    if run_seconds is not None:
        timer = threading.Timer(run_seconds, setattr, (run_options, "terminate", True))
        timer.start()
    try:
        sess.run(None, feeds, run_options)
        stats.ran += 1
    except PyFlameRTError:
        if run_seconds is None:
            raise  # warm-up: the unmutated seed must run
        # Refusing to run a broken model is fine, including MemoryError at run time.
    finally:
        if timer is not None:
            timer.cancel()


# ============================================================================================
# main
# ============================================================================================
def _replay(path: str, fmt: str, seeds: list[Seed], folder: str) -> int:
    with open(path, "rb") as f:
        payload = f.read()
    status = 0
    for seed in seeds:
        for opt_level in (0, 99):
            stats = Stats()
            if fmt == "onnx":
                def load() -> Any:
                    return load_onnx(payload, memory_limit=MEMORY_LIMIT, base_dir=folder)
            else:
                def load() -> Any:
                    return loads_pfm(payload, memory_limit=MEMORY_LIMIT)
            try:
                check_model(load, seed, opt_level, stats, "none")
                outcome = ("refused at load" if stats.refused else "ran" if stats.ran
                           else "built" if stats.built else "loaded, not built")
            except BaseException:  # noqa: BLE001 - printed for the developer
                traceback.print_exc()
                outcome, status = "FAILED", 1
            print(f"feeds of seed {seed.name!r}, optimization level {opt_level}: {outcome}")
    return status


def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("format", choices=["onnx", "pfm"])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per case")
    parser.add_argument("--inject", choices=["none", "exception", "memory", "hang"],
                        default="none", help="self-test: make every case fail this way")
    parser.add_argument("--artifacts", default=None, help="folder for the failing file")
    parser.add_argument("--skip-warmup", action="store_true",
                        help="do not check the seeds first (for --inject self-tests)")
    parser.add_argument("--replay", default=None, metavar="FILE",
                        help="run the checks on one saved case (every seed's feeds, both "
                             "optimization levels) and show the traceback of a failure")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    faulthandler.enable()  # a crash in C code prints the Python stack that led to it
    artifacts = args.artifacts or tempfile.mkdtemp(prefix="pyflame-fuzz-")
    os.makedirs(artifacts, exist_ok=True)
    root = tempfile.mkdtemp(prefix="pyflame-fuzz-ext-")
    folder = prepare_external_folder(root)

    seeds = onnx_seeds() if args.format == "onnx" else pfm_seeds()
    parsed = {s.name: onnx.load_from_string(s.data) for s in seeds} \
        if args.format == "onnx" else {}
    stats = Stats()
    if args.replay:
        return _replay(args.replay, args.format, seeds, folder)

    def loader(payload: bytes, seed: Seed, via_file: bool) -> Any:
        if args.format == "onnx":
            return lambda: load_onnx(payload, memory_limit=MEMORY_LIMIT,
                                     base_dir=folder if seed.external else None)
        if via_file:
            def from_file() -> Any:
                # A fresh file each time: rewriting one that an older model still maps
                # in place would make that mapping fault.
                path = os.path.join(artifacts, f"case-{args.seed}.pfm")
                tmp = path + ".tmp"
                with open(tmp, "wb") as f:
                    f.write(payload)
                os.replace(tmp, path)
                return load_pfm(path, memory_limit=MEMORY_LIMIT)
            return from_file
        return lambda: loads_pfm(payload, memory_limit=MEMORY_LIMIT)

    # Warm-up: every seed must load, build and run (else the fuzzer tests nothing), and the
    # kernels they use get compiled before the clock and the memory bound start.
    for seed in [] if args.skip_warmup else seeds:
        before = stats.ran
        try:
            # No time limit here: the first run of a seed compiles its numba kernels.
            check_model(loader(seed.data, seed, False), seed, 99, stats, "none", None)
            check_model(loader(seed.data, seed, False), seed, 0, stats, "none", None)
        except Exception:  # noqa: BLE001 - reported below
            traceback.print_exc()
        if stats.ran != before + 2:
            print(f"FUZZ-FAILURE seed {seed.name!r} does not run unmutated", flush=True)
            return 1
    stats.__init__()
    limit = _vm_size() + HEADROOM
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY
                                            else min(limit, hard), hard))
    current = os.path.join(artifacts, f"current-{args.format}-{args.seed}.bin")
    failing = os.path.join(artifacts, f"failure-{args.format}-{args.seed}.bin")

    @settings(max_examples=args.cases, deadline=None, database=None, print_blob=True,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def case(data: st.DataObject) -> None:
        seed = seeds[data.draw(st.integers(0, len(seeds) - 1), label="seed")]
        if args.format == "onnx":
            payload = mutate_onnx(data, seed, parsed[seed.name])
            via_file = False
        else:
            payload = mutate_pfm(data, seed)
            via_file = data.draw(st.integers(0, 7), label="via file") == 0
        opt_level = data.draw(st.sampled_from([0, 99]), label="opt level")
        with open(current, "wb") as f:  # what to replay if the watchdog fires
            f.write(payload)
        stats.cases += 1
        start = time.perf_counter()
        faulthandler.dump_traceback_later(args.timeout, exit=True)
        try:
            check_model(loader(payload, seed, via_file), seed, opt_level, stats, args.inject)
        except BaseException:
            with open(failing, "wb") as f:
                f.write(payload)
            raise
        finally:
            faulthandler.cancel_dump_traceback_later()
        stats.max_seconds = max(stats.max_seconds, time.perf_counter() - start)

    hypothesis_seed(args.seed)(case)
    try:
        case()
    except BaseException:  # noqa: BLE001 - report whatever hypothesis re-raised
        traceback.print_exc()
        print(f"FUZZ-FAILURE {failing} (after {stats.cases} cases)", flush=True)
        return 1
    print("FUZZ-RESULT " + json.dumps({
        "format": args.format, "seed": args.seed, "cases": stats.cases, "failures": 0,
        "refused": stats.refused, "loaded": stats.loaded, "built": stats.built,
        "ran": stats.ran, "max_case_seconds": round(stats.max_seconds, 3)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
