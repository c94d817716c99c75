"""ONNX import and export: ``ModelProto`` <-> :class:`pyflame_rt.ir.Model`.

Import (:func:`load_onnx`, :func:`from_onnx`) validates as it goes: sizes of every tensor
against its data, external data confined to the model's folder, SSA names, undefined inputs,
supported IR/opset versions. Model-local functions are inlined. Files of 1 MiB or more are
not parsed whole: the wire format is walked (``_onnx_wire.py``), protobuf parses only the
structure, and each weight is read from the file straight into its own array, so loading holds
every weight once (not three times: file bytes, parsed message, arrays). Export (:func:`to_onnx`,
:func:`save_onnx`) writes any graph back, optimized ones with ``pyflame`` domain nodes
included, with external data for large models.
"""

from __future__ import annotations

import mmap
import os
from typing import Any, Union

import numpy as np
import onnx
from google.protobuf.message import DecodeError

from ..errors import (
    InvalidArgumentError,
    InvalidGraphError,
    InvalidModelError,
    InvalidProtobufError,
    ModelNotFoundError,
)
from ..ir import Graph, Model, Node, Value
from ..types import DType, MapInfo, OptionalInfo, SequenceInfo, TensorInfo
from ._onnx_functions import FunctionInliner, normalize_domain
from ._onnx_tensors import (
    TensorReader,
    array_to_sparse,
    array_to_tensor,
    type_from_proto,
    type_to_proto,
)
from ._onnx_wire import StrippedModel, strip_raw_data

__all__ = ["MAX_GRAPH_DEPTH", "PYFLAME_DOMAIN", "from_onnx", "load_onnx", "save_onnx", "to_onnx"]

PYFLAME_DOMAIN = "pyflame"
# Subgraphs (If/Loop/Scan bodies) nested deeper than this are refused: real models stay under
# 10, protobuf's parser stops near 32 for bytes, and every later stage (optimizer, planner,
# executor) recurses once per level, so an unbounded depth is a crash waiting to happen.
MAX_GRAPH_DEPTH = 64
MIN_OPSET = 7
MIN_IR_VERSION = 3
# Above this many bytes of initializers a model cannot be one protobuf (2 GiB hard limit).
EXTERNAL_DATA_THRESHOLD = 1_800_000_000
# Initializers smaller than this stay inside the model file when writing external data.
EXTERNAL_MIN_TENSOR_BYTES = 1024
# Files at least this big have their weights read straight into arrays (see _onnx_wire.py);
# smaller ones are simply parsed whole.
MIN_SPLIT_FILE_BYTES = 1 << 20

PathLike = Union[str, "os.PathLike[str]"]
AT = onnx.AttributeProto


# ==============================================================================================
# Import
# ==============================================================================================
def load_onnx(source: PathLike | bytes | onnx.ModelProto, *, memory_limit: int | None = None,
              base_dir: str | None = None) -> Model:
    """Load an ONNX model into our IR.

    Args:
        source: A path to a ``.onnx`` file, the file's bytes, or an ``onnx.ModelProto``.
        memory_limit: Refuse models whose constant tensors need more bytes than this.
        base_dir: Folder that external data locations resolve against when ``source`` is bytes
            or a ``ModelProto`` (for a path it is the file's folder).

    Returns:
        The imported :class:`Model`.

    Raises:
        ModelNotFoundError: The path does not exist.
        InvalidProtobufError: The bytes are not an ONNX model.
        InvalidModelError: The model is empty, malformed, or uses unsupported IR/opset versions.
        InvalidGraphError: Duplicate value names, undefined inputs, cycles.
    """
    if isinstance(source, onnx.ModelProto):
        return from_onnx(source, base_dir=base_dir, memory_limit=memory_limit)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, label = bytes(source), "<bytes>"
        if not data:
            raise InvalidModelError(f"model file {label} is empty (0 bytes)")
        _check_size(len(data), label)
        stripped = strip_raw_data(data) if len(data) >= MIN_SPLIT_FILE_BYTES else None
        if stripped is not None:
            importer = _stripped_importer(stripped, label, base_dir, memory_limit)
            if importer is not None:
                importer.tensors.raw_buffer = data
                return importer.run()
        return _Importer(_parse(data, label), base_dir=base_dir, memory_limit=memory_limit,
                         source=label).run()
    if not isinstance(source, (str, os.PathLike)):
        raise InvalidArgumentError(
            f"cannot load a model from {type(source).__name__}; pass a path, bytes or an "
            "onnx.ModelProto")
    path = label = os.fspath(source)
    if not os.path.exists(path):
        raise ModelNotFoundError(f"model file {path!r} does not exist")
    if os.path.isdir(path):
        raise InvalidModelError(f"{path!r} is a directory, not an ONNX model file")
    base_dir = os.path.dirname(os.path.abspath(path))
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if not size:
                raise InvalidModelError(f"model file {label} is empty (0 bytes)")
            _check_size(size, label)
            importer = _importer_from_file(f, size, label, base_dir, memory_limit)
            if importer is not None:
                # Weights are read from the open file one by one, straight into their arrays.
                importer.tensors.raw_file = f
                return importer.run()
            data = f.read()
    except OSError as exc:
        raise InvalidModelError(f"cannot read model file {path!r}: {exc}") from None
    proto = _parse(data, label)
    del data  # the parsed message holds everything now; do not keep the file's bytes too
    return _Importer(proto, base_dir=base_dir, memory_limit=memory_limit, source=label).run()


def _check_size(size: int, label: str) -> None:
    if size >= 2**31:
        raise InvalidModelError(
            f"model file {label} is {size} bytes; protobuf cannot hold 2 GiB or more, so "
            "a model this big must keep its weights in external data files")


def _parse(data: bytes, label: str) -> onnx.ModelProto:
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise InvalidProtobufError(
            f"{label} is not an ONNX model: its bytes do not parse as an ONNX ModelProto "
            f"({exc})") from None
    if not proto.HasField("graph") and not proto.opset_import and not proto.ir_version:
        raise InvalidProtobufError(
            f"{label} is not an ONNX model: it parses as protobuf but holds no graph, IR "
            "version or opset")
    return proto


def _importer_from_file(f: Any, size: int, label: str, base_dir: str,
                        memory_limit: int | None) -> _Importer | None:
    """An importer for the file's structure with its weights left in the file, or ``None``.

    The file is memory-mapped only to walk its wire format; the weights' pages are skipped,
    not touched, so they never count towards this process's memory.
    """
    if size < MIN_SPLIT_FILE_BYTES:
        return None
    try:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None
    try:
        view = memoryview(mm)
        try:
            stripped = strip_raw_data(view)
        finally:
            view.release()
    finally:
        mm.close()
    if stripped is None:
        return None
    return _stripped_importer(stripped, label, base_dir, memory_limit)


def _stripped_importer(stripped: StrippedModel, label: str, base_dir: str | None,
                       memory_limit: int | None) -> _Importer | None:
    """An importer for the stripped bytes, or ``None`` when the full bytes must be parsed
    (they do not parse, or the model needs the opset converter, which needs every weight)."""
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(stripped.data)
    except (DecodeError, RuntimeError, ValueError):
        return None  # parse the full bytes: protobuf's own message names the problem
    default = [imp.version for imp in proto.opset_import if normalize_domain(imp.domain) == ""]
    if not proto.HasField("graph") or (default and default[0] < MIN_OPSET):
        return None
    importer = _Importer(proto, base_dir=base_dir, memory_limit=memory_limit, source=label)
    importer.raw_slices = stripped.raw_slices
    return importer


def from_onnx(proto: onnx.ModelProto, *, base_dir: str | None = None,
              memory_limit: int | None = None) -> Model:
    """Convert an in-memory ``ModelProto`` into our IR (see :func:`load_onnx`).

    Args:
        proto: The model; it is not modified.
        base_dir: Folder for external data locations (needed only if the model has any).
        memory_limit: Refuse models whose constant tensors need more bytes than this.
    """
    if not isinstance(proto, onnx.ModelProto):
        raise InvalidArgumentError(f"from_onnx expects an onnx.ModelProto, got "
                                   f"{type(proto).__name__}")
    return _Importer(proto, base_dir=base_dir, memory_limit=memory_limit,
                     source="the model").run()


def _upgrade_old_opset(proto: onnx.ModelProto, source: str) -> onnx.ModelProto:
    """Models older than opset 7 are converted up to 7 with ONNX's own version converter.

    Opsets 1-6 differ from 7 mostly in legacy broadcasting (``broadcast``/``axis``
    attributes) and ``consumed_inputs``; the converter rewrites those exactly, so our kernels
    only ever see opset >= 7 semantics. The caller's proto is not modified (it returns a copy).
    """
    default = [imp.version for imp in proto.opset_import if normalize_domain(imp.domain) == ""]
    if not default or not 1 <= default[0] < MIN_OPSET:
        return proto
    from onnx import version_converter

    proto = _per_channel_prelu_slopes(proto)
    try:
        return version_converter.convert_version(proto, MIN_OPSET)
    except Exception as exc:  # noqa: BLE001 - the converter raises bare RuntimeErrors
        raise InvalidModelError(
            f"{source} uses ONNX opset {default[0]}, and converting it to opset {MIN_OPSET} "
            f"failed ({str(exc).strip().splitlines()[0][:200]}); convert the model with a "
            "newer exporter") from None


def _per_channel_prelu_slopes(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Give old PRelu slopes of shape ``(C,)`` the shape ``(C, 1, ..., 1)``.

    Before opset 7 a 1-D PRelu slope of length C applied per channel (axis 1), which is how
    PyTorch exported ``nn.PReLU(C)``; from opset 7 on, slopes broadcast from the right, so
    the converter's output would apply them to the last axis. Reshaping the initializer keeps
    the model's meaning. Needs the input's rank, so it uses ONNX shape inference.
    """
    inits = {t.name: t for t in proto.graph.initializer}
    prelus = [n for n in proto.graph.node if n.op_type == "PRelu" and len(n.input) == 2
              and n.input[1] in inits and len(inits[n.input[1]].dims) == 1
              and inits[n.input[1]].dims[0] > 1]
    if not prelus:
        return proto
    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
    except Exception:  # noqa: BLE001 - no ranks known: leave the model as it is
        return proto
    ranks = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            ranks[vi.name] = len(vi.type.tensor_type.shape.dim)
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    inits = {t.name: t for t in copy.graph.initializer}
    declared = {vi.name: vi for vi in copy.graph.input}
    for node in prelus:
        rank = ranks.get(node.input[0], 0)
        slope = inits[node.input[1]]
        if rank > 2 and len(slope.dims) == 1:
            slope.dims.extend([1] * (rank - 2))
            vi = declared.get(slope.name)  # IR < 4 lists initializers as inputs too
            if vi is not None and vi.type.tensor_type.HasField("shape"):
                for _ in range(rank - 2):
                    vi.type.tensor_type.shape.dim.add().dim_value = 1
    return copy


class _Scope:
    """The values visible while building one graph: its own plus its ancestors'."""

    __slots__ = ("depth", "graph", "needs_sort", "parent", "unplaced", "values")

    def __init__(self, graph: Graph, parent: _Scope | None) -> None:
        self.graph = graph
        self.values: dict[str, Value] = {}
        self.parent = parent
        self.depth = 0 if parent is None else parent.depth + 1
        self.unplaced: set[str] = set()  # produced by nodes not appended yet
        self.needs_sort = False

    def lookup(self, name: str) -> Value | None:
        scope: _Scope | None = self
        while scope is not None:
            v = scope.values.get(name)
            if v is not None:
                if name in scope.unplaced:
                    scope.needs_sort = True  # read before its producer: reorder later
                return v
            scope = scope.parent
        return None


class _Importer:
    def __init__(self, proto: onnx.ModelProto, *, base_dir: str | None,
                 memory_limit: int | None, source: str) -> None:
        self.proto = proto
        self.source = source
        if memory_limit is not None and memory_limit < 0:
            raise InvalidArgumentError(f"memory_limit must be >= 0, got {memory_limit}")
        self.tensors = TensorReader(base_dir=base_dir, memory_limit=memory_limit, source=source)
        self.opsets: dict[str, int] = {}
        self.inliner: FunctionInliner | None = None
        self._schema_cache: dict[tuple[str, str, int], onnx.defs.OpSchema | None] = {}
        # (offset, length) of the main graph's i-th initializer's raw_data, for a proto
        # parsed without those payloads (see _onnx_wire.strip_raw_data).
        self.raw_slices: dict[int, tuple[int, int]] = {}

    # -- model -------------------------------------------------------------------------------
    def run(self) -> Model:
        try:
            return self._run()
        except RecursionError:
            raise InvalidModelError(
                f"{self.source} nests subgraphs, types or functions too deeply to import"
            ) from None

    def _run(self) -> Model:
        proto = self.proto
        if not proto.HasField("graph"):
            raise InvalidModelError(f"{self.source} has no graph; it is not a usable ONNX model")
        self._check_text(proto, "model")
        proto = self.proto = _upgrade_old_opset(proto, self.source)
        self._check_versions()
        self.inliner = FunctionInliner(proto, self.opsets)
        graph = self._graph(proto.graph, None)
        graph.opset_imports = self.opsets
        self._check_domains(graph)
        return Model(
            graph=graph,
            ir_version=int(proto.ir_version),
            producer_name=proto.producer_name,
            producer_version=proto.producer_version,
            domain=proto.domain,
            model_version=int(proto.model_version),
            doc_string=proto.doc_string,
            metadata_props={p.key: p.value for p in proto.metadata_props},
        )

    def _check_text(self, msg: Any, path: str) -> None:
        """Refuse string fields that are not UTF-8 (protobuf hands those back as ``bytes``).

        Iterative, so a deeply nested model reaches the nesting bound's clear message instead
        of exhausting the Python stack here.
        """
        stack = [(msg, path)]
        while stack:
            msg, path = stack.pop()
            for fd, value in msg.ListFields():
                repeated = fd.is_repeated if hasattr(fd, "is_repeated") else \
                    fd.label == fd.LABEL_REPEATED
                if fd.type == fd.TYPE_STRING:
                    for text in (value if repeated else (value,)):
                        if isinstance(text, bytes):
                            raise InvalidModelError(
                                f"{self.source}: {path}.{fd.name} is not valid UTF-8 text "
                                f"({text[:40]!r}); the model file is corrupt")
                elif fd.type == fd.TYPE_MESSAGE:
                    if repeated:
                        stack.extend((item, f"{path}.{fd.name}[{i}]")
                                     for i, item in enumerate(value))
                    else:
                        stack.append((value, f"{path}.{fd.name}"))

    def _check_versions(self) -> None:
        proto = self.proto
        newest_ir = onnx.IR_VERSION
        if not proto.ir_version:
            raise InvalidModelError(f"{self.source} has no ir_version; set it (e.g. with "
                                    "onnx.helper.make_model)")
        if proto.ir_version < MIN_IR_VERSION or proto.ir_version > newest_ir:
            raise InvalidModelError(
                f"{self.source} has IR version {proto.ir_version}; PyFlameRT supports IR "
                f"versions {MIN_IR_VERSION} to {newest_ir} (convert older models with "
                "onnx.version_converter, or upgrade onnx for newer ones)")
        for imp in proto.opset_import:
            domain = normalize_domain(imp.domain)
            if domain in self.opsets and self.opsets[domain] != imp.version:
                raise InvalidModelError(
                    f"{self.source} imports domain {domain or 'ai.onnx'!r} twice, with "
                    f"versions {self.opsets[domain]} and {imp.version}")
            if not 0 <= imp.version < 2**31:
                raise InvalidModelError(
                    f"{self.source} imports domain {domain or 'ai.onnx'!r} at version "
                    f"{imp.version}, which is out of range (0 to 2**31 - 1)")
            self.opsets[domain] = int(imp.version)
        if not self.opsets:
            raise InvalidModelError(f"{self.source} declares no opset imports (opset_import is "
                                    "empty)")
        default = self.opsets.get("")
        newest = onnx.defs.onnx_opset_version()
        if default is not None and not MIN_OPSET <= default <= newest:
            raise InvalidModelError(
                f"{self.source} uses ONNX opset {default}; PyFlameRT supports opsets "
                f"{MIN_OPSET} to {newest} (convert it with onnx.version_converter."
                "convert_version)")

    def _check_domains(self, graph: Graph) -> None:
        for node in graph.all_nodes():
            if node.domain not in self.opsets:
                if node.domain == "":
                    raise InvalidModelError(
                        f"{node.describe()} is in the default ONNX domain, but {self.source} "
                        "does not import it (add an opset_import for '')")
                # Be lenient with custom domains: assume version 1, as most custom ops are.
                self.opsets[node.domain] = 1

    # -- graphs ------------------------------------------------------------------------------
    def _graph(self, gp: onnx.GraphProto, parent: _Scope | None) -> Graph:
        if parent is not None and parent.depth + 1 > MAX_GRAPH_DEPTH:
            raise InvalidModelError(
                f"{self.source}: subgraph {gp.name!r} is nested more than {MAX_GRAPH_DEPTH} "
                "levels deep (If/Loop/Scan bodies inside each other); PyFlameRT refuses such "
                "models")
        if parent is None:
            graph = Graph(gp.name or "graph")
        else:
            graph = Graph(gp.name or "subgraph", parent=parent.graph)
        graph.doc_string = gp.doc_string
        if gp.metadata_props:
            graph.meta["metadata_props"] = {p.key: p.value for p in gp.metadata_props}
        scope = _Scope(graph, parent)
        where = f"graph {graph.name!r}"

        def define(name: str, value: Value, what: str) -> None:
            if not name:
                raise InvalidGraphError(f"{where}: {what} has an empty name")
            if name in scope.values:
                raise InvalidGraphError(
                    f"{where}: value name {name!r} is defined more than once (again as {what}); "
                    "ONNX graphs must be in SSA form: rename one of them")
            scope.values[name] = value

        # Initializers first: an input that is also an initializer is an overridable one.
        init_protos: dict[str, tuple[np.ndarray, DType]] = {}
        slices = self.raw_slices if parent is None else {}
        for i, t in enumerate(gp.initializer):
            if t.name in init_protos:
                raise InvalidGraphError(f"{where}: initializer name {t.name!r} is used twice")
            init_protos[t.name] = self.tensors.to_array(t, f"initializer {t.name!r}",
                                                        slices.get(i))
        for sp in gp.sparse_initializer:
            name = sp.values.name
            if name in init_protos:
                raise InvalidGraphError(f"{where}: initializer name {name!r} is used twice")
            init_protos[name] = self.tensors.sparse_to_array(sp, f"sparse initializer {name!r}")

        for vi in gp.input:
            vtype = type_from_proto(vi.type, f"graph input {vi.name!r}")
            if vi.name in init_protos:
                arr, dtype = init_protos.pop(vi.name)
                value = graph.add_input(graph.add_initializer(vi.name, arr, dtype=dtype))
                if vtype is not None:
                    value.type = vtype
            else:
                value = graph.add_input(Value(vi.name, vtype))
            value.doc_string = vi.doc_string
            define(vi.name, value, "graph input")
        for name, (arr, dtype) in init_protos.items():
            define(name, Value(name), "initializer")  # checks the name before adding it
            scope.values[name] = graph.add_initializer(name, arr, dtype=dtype)

        value_info = {vi.name: vi for vi in gp.value_info}
        nodes = self.inliner.expand(gp.node) if self.inliner else list(gp.node)

        # Pass 1: every node output exists before any node is built, so a lenient reader can
        # accept nodes listed out of order (reordered by graph.sort() at the end).
        outputs: list[list[Value | None]] = []
        for np_ in nodes:
            outs: list[Value | None] = []
            for name in np_.output:
                if not name:
                    outs.append(None)
                    continue
                value = Value(name)
                vi = value_info.get(name)
                if vi is not None:
                    value.type = type_from_proto(vi.type, f"value_info {name!r}")
                    value.doc_string = vi.doc_string
                elif self.inliner and name in self.inliner.value_types:
                    value.type = type_from_proto(self.inliner.value_types[name],
                                                 f"value {name!r}")
                define(name, value, f"output of {np_.op_type} node {np_.name!r}")
                scope.unplaced.add(name)
                outs.append(value)
            outputs.append(outs)

        # Pass 2: resolve inputs, build attributes (subgraphs see this scope), append.
        for np_, outs in zip(nodes, outputs):
            ins: list[Value | None] = []
            for name in np_.input:
                if not name:
                    ins.append(None)
                    continue
                value = scope.lookup(name)
                if value is None:
                    raise InvalidGraphError(
                        f"{where}: input {name!r} of {np_.op_type} node {np_.name!r} is not "
                        "defined (no graph input, initializer or node output has that name, "
                        "here or in an enclosing graph)")
                ins.append(value)
            self._check_node(np_, where)
            attrs, attr_types = self._attributes(np_, scope)
            node = Node(np_.op_type, ins, outs, attrs, domain=normalize_domain(np_.domain),
                        name=np_.name)
            node.attr_types = attr_types
            node.doc_string = np_.doc_string
            if np_.metadata_props:
                node.meta["metadata_props"] = {p.key: p.value for p in np_.metadata_props}
            if np_.overload:
                node.meta["overload"] = np_.overload
            graph.append_node(node)
            for name in np_.output:
                scope.unplaced.discard(name)

        for vi in gp.output:
            if not vi.name:
                raise InvalidGraphError(f"{where}: a graph output has an empty name")
            value = scope.lookup(vi.name)
            if value is None:
                raise InvalidGraphError(
                    f"{where}: output {vi.name!r} is not produced by any node, input or "
                    "initializer")
            vtype = type_from_proto(vi.type, f"graph output {vi.name!r}")
            if value.graph is graph and (value.type is None or
                                         (vtype is not None and value.producer is not None)):
                value.type = vtype
                if vi.doc_string:
                    value.doc_string = vi.doc_string
            graph.add_output(value)

        for name, vi in value_info.items():
            if name not in scope.values:
                vtype = type_from_proto(vi.type, f"value_info {name!r}")
                if vtype is not None:
                    graph.value_info[name] = vtype
        if scope.needs_sort:
            graph.sort()
        return graph

    # -- attributes --------------------------------------------------------------------------
    def _attributes(self, np_: onnx.NodeProto, scope: _Scope) -> tuple[dict[str, Any],
                                                                         dict[str, int]]:
        attrs: dict[str, Any] = {}
        types: dict[str, int] = {}
        for attr in np_.attribute:
            what = f"attribute {attr.name!r} of {np_.op_type} node {np_.name!r}"
            if attr.ref_attr_name:
                raise InvalidModelError(
                    f"{what} refers to a function attribute ({attr.ref_attr_name!r}) outside "
                    "a function body")
            if attr.name in attrs:
                raise InvalidModelError(f"{what} is given twice")
            atype = attr.type or _guess_attr_type(attr, what)
            atype = self._check_attr_type(np_, attr, atype, what)
            attrs[attr.name] = self._attribute_value(attr, atype, scope, what)
            types[attr.name] = atype
        return attrs, types

    def _schema(self, np_: onnx.NodeProto) -> onnx.defs.OpSchema | None:
        """The ONNX schema of this node at the model's opset (None: custom or unknown op)."""
        domain = normalize_domain(np_.domain)
        opset = self.opsets.get(domain)
        if opset is None:
            return None
        key = (domain, np_.op_type, opset)
        if key not in self._schema_cache:
            try:
                self._schema_cache[key] = onnx.defs.get_schema(np_.op_type, opset, domain)
            except (onnx.defs.SchemaError, TypeError):  # TypeError: opset beyond C int
                self._schema_cache[key] = None
        return self._schema_cache[key]

    def _check_node(self, np_: onnx.NodeProto, where: str) -> None:
        """Input/output counts and required attributes, as the op's ONNX schema states them.

        The optimizer and the kernels index a node's inputs by position and read its required
        attributes without asking: a node that lost an input or an attribute must stop here.
        """
        schema = self._schema(np_)
        if schema is None:
            return
        node = f"{where}: {np_.op_type} node {np_.name!r}"
        for kind, names, low, high in (("inputs", np_.input, schema.min_input,
                                        schema.max_input),
                                       ("outputs", np_.output, schema.min_output,
                                        schema.max_output)):
            if not low <= len(names) <= high:
                bound = f"{low}" if low == high else \
                    f"{low} to {high}" if high < 2**31 - 1 else f"at least {low}"
                raise InvalidModelError(
                    f"{node} has {len(names)} {kind}, but {np_.op_type}-"
                    f"{schema.since_version} takes {bound}")
        single = onnx.defs.OpSchema.FormalParameterOption.Single
        for formal, name in zip(schema.inputs, np_.input):
            if formal.option == single and not name:
                raise InvalidModelError(f"{node} leaves its required input {formal.name!r} "
                                        "empty")
        given = {a.name for a in np_.attribute}
        for name, attr in schema.attributes.items():
            if attr.required and name not in given:
                raise InvalidModelError(f"{node} lacks the required attribute {name!r}")

    def _check_attr_type(self, np_: onnx.NodeProto, attr: onnx.AttributeProto, atype: int,
                         what: str) -> int:
        """The attribute's type, checked against the op's schema and against its payload.

        Kernels and optimizer rules read attributes as the spec types them (``epsilon`` a
        float, ``then_branch`` a graph): a hostile model must not hand them a graph where a
        float belongs, or a declared graph that is absent.
        """
        if atype not in _ATTR_FIELD:
            raise InvalidModelError(f"{what} has unknown attribute type {atype}")
        schema = self._schema(np_)
        declared = schema.attributes.get(attr.name) if schema is not None else None
        expected = int(declared.type) if declared is not None else None
        # (An int where a float goes is accepted: it means the same number.)
        if expected is not None and expected != atype and \
                not (expected == AT.FLOAT and atype == AT.INT):
            raise InvalidModelError(
                f"{what} has type {AT.AttributeType.Name(atype)}, but the ONNX schema of "
                f"{np_.op_type} declares {AT.AttributeType.Name(expected)}; the model is "
                "corrupt or was written by a broken exporter")
        single = _ATTR_FIELD[atype]
        if single is not None and not attr.HasField(single):
            raise InvalidModelError(
                f"{what} has type {AT.AttributeType.Name(atype)} but holds no value (field "
                f"{single!r} is not set)")
        return atype

    def _attribute_value(self, attr: onnx.AttributeProto, atype: int, scope: _Scope,
                         what: str) -> Any:
        if atype == AT.FLOAT:
            return float(attr.f)
        if atype == AT.INT:
            return int(attr.i)
        if atype == AT.STRING:
            return _decode_text(attr.s)
        if atype == AT.TENSOR:
            return self.tensors.to_array(attr.t, what)[0]
        if atype == AT.GRAPH:
            return self._graph(attr.g, scope)
        if atype == AT.SPARSE_TENSOR:
            return self.tensors.sparse_to_array(attr.sparse_tensor, what)[0]
        if atype == AT.TYPE_PROTO:
            return type_from_proto(attr.tp, what)
        if atype == AT.FLOATS:
            return [float(x) for x in attr.floats]
        if atype == AT.INTS:
            return [int(x) for x in attr.ints]
        if atype == AT.STRINGS:
            return [_decode_text(s) for s in attr.strings]
        if atype == AT.TENSORS:
            return [self.tensors.to_array(t, what)[0] for t in attr.tensors]
        if atype == AT.GRAPHS:
            return [self._graph(g, scope) for g in attr.graphs]
        if atype == AT.SPARSE_TENSORS:
            return [self.tensors.sparse_to_array(s, what)[0] for s in attr.sparse_tensors]
        if atype == AT.TYPE_PROTOS:
            return [type_from_proto(tp, what) for tp in attr.type_protos]
        raise InvalidModelError(f"{what} has unknown attribute type {atype}")


# The field an attribute of each type keeps its value in (None: a repeated field, which is
# simply empty when absent).
_ATTR_FIELD = {AT.FLOAT: "f", AT.INT: "i", AT.STRING: "s", AT.TENSOR: "t", AT.GRAPH: "g",
               AT.SPARSE_TENSOR: "sparse_tensor", AT.TYPE_PROTO: "tp", AT.FLOATS: None,
               AT.INTS: None, AT.STRINGS: None, AT.TENSORS: None, AT.GRAPHS: None,
               AT.SPARSE_TENSORS: None, AT.TYPE_PROTOS: None}


def _decode_text(s: bytes) -> str | bytes:
    try:
        return s.decode("utf-8")
    except UnicodeDecodeError:
        return s  # binary payload: keep the bytes


def _guess_attr_type(attr: onnx.AttributeProto, what: str) -> int:
    """The type of an attribute whose ``type`` field is unset (very old exporters)."""
    for fld, atype in (("f", AT.FLOAT), ("i", AT.INT), ("s", AT.STRING), ("t", AT.TENSOR),
                       ("g", AT.GRAPH), ("sparse_tensor", AT.SPARSE_TENSOR),
                       ("tp", AT.TYPE_PROTO)):
        if attr.HasField(fld):
            return atype
    for fld, atype in (("floats", AT.FLOATS), ("ints", AT.INTS), ("strings", AT.STRINGS),
                       ("tensors", AT.TENSORS), ("graphs", AT.GRAPHS),
                       ("sparse_tensors", AT.SPARSE_TENSORS), ("type_protos", AT.TYPE_PROTOS)):
        if len(getattr(attr, fld)):
            return atype
    raise InvalidModelError(f"{what} has no type and no value")


# ==============================================================================================
# Export
# ==============================================================================================
def to_onnx(model: Model) -> onnx.ModelProto:
    """Convert a :class:`Model` (any graph, optimized ones included) to an ``onnx.ModelProto``.

    Nodes in the ``pyflame`` domain get an opset import ``pyflame: 1``; other domains used by
    nodes but not imported are added (version 1 for custom domains).
    """
    return _Exporter(model).run()


def save_onnx(model: Model, path: PathLike, *, external_data: bool | None = None) -> None:
    """Write ``model`` as an ONNX file.

    Args:
        model: The model to write.
        path: Destination ``.onnx`` path.
        external_data: ``True``: initializers of 1 KiB or more go to ``<file name>.data`` next
            to the model; ``False``: everything in one file (fails above protobuf's 2 GiB);
            ``None`` (default): external data when the initializers exceed ~1.8 GB.
    """
    path = os.fspath(path)
    if external_data is None:
        external_data = _constant_bytes(model.graph) > EXTERNAL_DATA_THRESHOLD
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InvalidArgumentError(f"cannot save to {path!r}: folder {folder!r} does not exist")
    writer = None
    if external_data:
        writer = _ExternalWriter(os.path.join(folder, os.path.basename(path) + ".data"))
    try:
        proto = _Exporter(model, writer).run()
    finally:
        if writer is not None:
            writer.close()
    try:
        data = proto.SerializeToString()
    except ValueError as exc:  # protobuf refuses messages over 2 GiB
        raise InvalidArgumentError(
            f"cannot save {path!r} as a single file ({exc}); use external_data=True") from None
    with open(path, "wb") as f:
        f.write(data)


def _constant_bytes(graph: Graph) -> int:
    total = 0
    for v in graph.initializers.values():
        if v.const_value is not None:
            total += np.asarray(v.const_value).nbytes
    for node in graph.nodes:
        for sub in node.subgraphs():
            total += _constant_bytes(sub)
    return total


class _ExternalWriter:
    """Appends tensor bytes to one data file and says where each went."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.location = os.path.basename(path)
        self.file = open(path, "wb")  # noqa: SIM115 - closed by save_onnx
        self.offset = 0

    def maybe_write(self, t: onnx.TensorProto) -> None:
        if t.data_type == onnx.TensorProto.STRING or len(t.raw_data) < EXTERNAL_MIN_TENSOR_BYTES:
            return
        data = t.raw_data
        # Page-align big tensors so a reader can memory-map them.
        align = 4096 if len(data) >= 1 << 20 else 64
        pad = (-self.offset) % align
        if pad:
            self.file.write(b"\0" * pad)
            self.offset += pad
        self.file.write(data)
        t.ClearField("raw_data")
        t.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", self.location), ("offset", str(self.offset)),
                           ("length", str(len(data)))):
            entry = t.external_data.add()
            entry.key, entry.value = key, value
        self.offset += len(data)

    def close(self) -> None:
        self.file.close()


class _Exporter:
    def __init__(self, model: Model, writer: _ExternalWriter | None = None) -> None:
        self.model = model
        self.writer = writer
        self.domains: set[str] = set()
        self.needs_ir4 = False

    def run(self) -> onnx.ModelProto:
        model = self.model
        proto = onnx.ModelProto()
        self._graph(model.graph, proto.graph)
        imports = {normalize_domain(d): int(v) for d, v in model.graph.opset_imports.items()}
        for domain in sorted(self.domains - set(imports)):
            imports[domain] = onnx.defs.onnx_opset_version() if domain == "" else 1
        for domain, version in imports.items():
            op = proto.opset_import.add()
            op.domain, op.version = domain, version
        ir_version = int(model.ir_version) or onnx.IR_VERSION
        if self.needs_ir4 and ir_version < 4:
            # IR < 4 requires every initializer to be a graph input; passes may have added
            # plain constants, which IR 4 allows.
            ir_version = 4
        proto.ir_version = min(ir_version, onnx.IR_VERSION)
        proto.producer_name = model.producer_name
        proto.producer_version = model.producer_version
        proto.domain = model.domain
        proto.model_version = int(model.model_version)
        proto.doc_string = model.doc_string
        for key, value in model.metadata_props.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = str(key), str(value)
        self._fill_missing_output_types(proto)
        return proto

    @staticmethod
    def _fill_missing_output_types(proto: onnx.ModelProto) -> None:
        """Give untyped graph outputs the type ONNX shape inference finds (for Netron/ORT)."""
        missing = [o for o in proto.graph.output if not o.HasField("type")]
        if not missing:
            return
        try:
            inferred = onnx.shape_inference.infer_shapes(proto)
        except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, ValueError,
                RuntimeError, TypeError):
            # Inference is best effort; leave the outputs untyped.
            return
        found = {vi.name: vi.type for vi in (*inferred.graph.output, *inferred.graph.value_info)}
        for out in missing:
            tp = found.get(out.name)
            if tp is not None and tp.WhichOneof("value") is not None:
                out.type.CopyFrom(tp)

    def _value_info(self, value: Value, name: str | None = None) -> onnx.ValueInfoProto:
        vi = onnx.ValueInfoProto()
        vi.name = name if name is not None else value.name
        if value.type is not None:
            vi.type.CopyFrom(type_to_proto(value.type))
        if value.doc_string:
            vi.doc_string = value.doc_string
        return vi

    def _tensor(self, value: Value, out: onnx.TensorProto) -> onnx.TensorProto:
        arr = np.asarray(value.const_value)
        dtype = value.dtype
        if dtype is None or (dtype is not DType.STRING and dtype.numpy != arr.dtype) or \
                (dtype is DType.STRING and arr.dtype.kind not in "OUS"):
            dtype = DType.from_numpy(arr.dtype)
        return array_to_tensor(arr, value.name, dtype, out=out)

    def _graph(self, graph: Graph, gp: onnx.GraphProto) -> onnx.GraphProto:
        """Write ``graph`` into the empty message ``gp`` (filled in place: no copies)."""
        gp.name = graph.name
        if graph.doc_string:
            gp.doc_string = graph.doc_string
        for key, value in graph.meta.get("metadata_props", {}).items():
            entry = gp.metadata_props.add()
            entry.key, entry.value = str(key), str(value)
        interface: set[int] = set()
        for v in graph.inputs:
            gp.input.append(self._value_info(v))
            interface.add(id(v))
        for v in graph.initializers.values():
            if v.const_value is None:
                continue
            t = self._tensor(v, gp.initializer.add())
            if self.writer is not None:
                self.writer.maybe_write(t)
            interface.add(id(v))
            if v not in graph._input_set:
                self.needs_ir4 = True
        for node in graph.nodes:
            self._node(node, gp.node.add())
        for v in graph.outputs:
            gp.output.append(self._value_info(v))
            interface.add(id(v))
        for node in graph.nodes:
            for v in node.outputs:
                if v is not None and id(v) not in interface and v.type is not None:
                    gp.value_info.append(self._value_info(v))
        return gp

    def _node(self, node: Node, np_: onnx.NodeProto) -> onnx.NodeProto:
        np_.op_type = node.op_type
        domain = normalize_domain(node.domain)
        np_.domain = domain
        self.domains.add(domain)
        if node.name:
            np_.name = node.name
        if node.doc_string:
            np_.doc_string = node.doc_string
        overload = node.meta.get("overload")
        if overload:
            np_.overload = overload
        for key, value in node.meta.get("metadata_props", {}).items():
            entry = np_.metadata_props.add()
            entry.key, entry.value = str(key), str(value)
        np_.input.extend("" if v is None else v.name for v in node.inputs)
        outs = ["" if v is None else v.name for v in node.outputs]
        while outs and not outs[-1]:
            outs.pop()  # trailing omitted outputs are simply not listed
        np_.output.extend(outs)
        for name, value in node.attrs.items():
            self._attribute(node, name, value, np_.attribute.add())
        return np_

    # -- attributes --------------------------------------------------------------------------
    def _attribute(self, node: Node, name: str, value: Any,
                   attr: onnx.AttributeProto) -> onnx.AttributeProto:
        atype = _coerce_type(node.attr_types.get(name), value)
        if atype is None:
            raise InvalidArgumentError(
                f"{node.describe()}: attribute {name!r} has a value of type "
                f"{type(value).__name__} that ONNX cannot represent")
        attr.name = name
        attr.type = atype
        if atype == AT.FLOAT:
            attr.f = float(value)
        elif atype == AT.INT:
            attr.i = int(value)
        elif atype == AT.STRING:
            attr.s = _encode_text(value)
        elif atype == AT.TENSOR:
            array_to_tensor(np.asarray(value), out=attr.t)
        elif atype == AT.GRAPH:
            self._graph(value, attr.g)
        elif atype == AT.SPARSE_TENSOR:
            attr.sparse_tensor.CopyFrom(array_to_sparse(np.asarray(value)))
        elif atype == AT.TYPE_PROTO:
            attr.tp.CopyFrom(type_to_proto(value))
        elif atype == AT.FLOATS:
            attr.floats.extend(float(x) for x in _as_list(value))
        elif atype == AT.INTS:
            attr.ints.extend(int(x) for x in _as_list(value))
        elif atype == AT.STRINGS:
            attr.strings.extend(_encode_text(x) for x in _as_list(value))
        elif atype == AT.TENSORS:
            for x in value:
                array_to_tensor(np.asarray(x), out=attr.tensors.add())
        elif atype == AT.GRAPHS:
            for g in value:
                self._graph(g, attr.graphs.add())
        elif atype == AT.SPARSE_TENSORS:
            attr.sparse_tensors.extend(array_to_sparse(np.asarray(x)) for x in value)
        elif atype == AT.TYPE_PROTOS:
            attr.type_protos.extend(type_to_proto(x) for x in value)
        return attr


def _as_list(value: Any) -> list:
    if isinstance(value, np.ndarray):
        return value.reshape(-1).tolist()
    return list(value)


def _encode_text(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, np.bytes_)):
        return bytes(value)
    return str(value).encode("utf-8")


_VALUE_TYPES = (TensorInfo, SequenceInfo, OptionalInfo, MapInfo)


def _kind(value: Any) -> int | None:
    """The attribute type a Python value naturally has (``None`` if it has none)."""
    if isinstance(value, (bool, int, np.integer, np.bool_)):
        return AT.INT
    if isinstance(value, (float, np.floating)):
        return AT.FLOAT
    if isinstance(value, (str, bytes, np.str_, np.bytes_)):
        return AT.STRING
    if isinstance(value, np.ndarray):
        return AT.TENSOR
    if isinstance(value, Graph):
        return AT.GRAPH
    if isinstance(value, _VALUE_TYPES):
        return AT.TYPE_PROTO
    if isinstance(value, (list, tuple)):
        kinds = {_kind(x) for x in value}
        if not kinds:
            return AT.INTS  # an untyped empty list: INTS is by far the most common
        if kinds == {AT.INT}:
            return AT.INTS
        if kinds <= {AT.INT, AT.FLOAT}:
            return AT.FLOATS
        if kinds == {AT.STRING}:
            return AT.STRINGS
        if kinds == {AT.TENSOR}:
            return AT.TENSORS
        if kinds == {AT.GRAPH}:
            return AT.GRAPHS
        if kinds == {AT.TYPE_PROTO}:
            return AT.TYPE_PROTOS
    return None


# What a recorded attribute type accepts, as (kind of the current value) -> ok.
_COMPATIBLE = {
    AT.FLOAT: {AT.FLOAT, AT.INT},
    AT.INT: {AT.INT},
    AT.STRING: {AT.STRING},
    AT.TENSOR: {AT.TENSOR},
    AT.SPARSE_TENSOR: {AT.TENSOR},
    AT.GRAPH: {AT.GRAPH},
    AT.TYPE_PROTO: {AT.TYPE_PROTO},
    AT.FLOATS: {AT.FLOATS, AT.INTS},
    AT.INTS: {AT.INTS},
    AT.STRINGS: {AT.STRINGS},
    AT.TENSORS: {AT.TENSORS},
    AT.SPARSE_TENSORS: {AT.TENSORS},
    AT.GRAPHS: {AT.GRAPHS},
    AT.TYPE_PROTOS: {AT.TYPE_PROTOS},
}
_LISTS = {AT.FLOATS, AT.INTS, AT.STRINGS, AT.TENSORS, AT.SPARSE_TENSORS, AT.GRAPHS,
          AT.TYPE_PROTOS}


def _coerce_type(recorded: int | None, value: Any) -> int | None:
    """The attribute type to write: the recorded one when the value still fits it."""
    kind = _kind(value)
    if recorded is not None and recorded in _COMPATIBLE:
        if isinstance(value, (list, tuple)) and not value and recorded in _LISTS:
            return recorded  # an empty list keeps its exact type
        if kind in _COMPATIBLE[recorded]:
            return recorded
        if recorded in (AT.INTS, AT.FLOATS) and kind == AT.TENSOR and np.ndim(value) <= 1 \
                and np.asarray(value).dtype.kind in ("iub" if recorded == AT.INTS else "iubf"):
            return recorded  # a pass stored a 1-D array where a list was
    if recorded == AT.TYPE_PROTO and value is None:
        return recorded
    return kind
