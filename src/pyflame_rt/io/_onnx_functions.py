"""Inlining of model-local functions (``ModelProto.functions``) on import.

``onnx.inliner.inline_local_functions`` is not used: it drops attribute defaults declared in
``FunctionProto.attribute_proto`` and silently leaves calls in place when the function imports
a different ONNX opset than the model. This inliner works on node protos, one graph level at a
time (the importer calls it for every graph it builds, subgraphs included):

* every name a function body defines (node outputs, names inside nested subgraphs) gets a fresh
  model-unique name; formal inputs/outputs map to the call's actual names;
* ``ref_attr_name`` attributes take the call's attribute, else the function's default, else
  they are dropped (the op's own default then applies);
* a function importing another version of the default opset is inlined only when every op it
  uses has the same definition in both versions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import onnx

from ..errors import InvalidModelError, NotImplementedFeatureError

__all__ = ["MAX_CALL_DEPTH", "FunctionInliner", "normalize_domain"]

_DEFAULT_DOMAINS = ("", "ai.onnx")
# Functions calling functions deeper than this are refused (the expansion recurses per level,
# and a chain of distinct functions is not caught by the recursion check).
MAX_CALL_DEPTH = 64


def normalize_domain(domain: str) -> str:
    """``ai.onnx`` and ``""`` are the same domain; we spell it ``""``."""
    return "" if domain in _DEFAULT_DOMAINS else domain


def _graph_names(graph: onnx.GraphProto) -> Iterator[str]:
    """Every value name a graph (and its subgraphs) defines or mentions."""
    for vi in (*graph.input, *graph.output, *graph.value_info):
        yield vi.name
    for t in graph.initializer:
        yield t.name
    for sp in graph.sparse_initializer:
        yield sp.values.name
    for node in graph.node:
        yield from node.input
        yield from node.output
        for attr in node.attribute:
            for g in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
                yield from _graph_names(g)


class FunctionInliner:
    """Expands calls to a model's local functions.

    Args:
        model: The model whose ``functions`` to inline.
        opset_imports: The model's opset imports (normalized); functions importing extra
            domains add them here.
    """

    def __init__(self, model: onnx.ModelProto, opset_imports: dict[str, int]) -> None:
        self.functions: dict[tuple[str, str, str], onnx.FunctionProto] = {}
        for f in model.functions:
            key = (normalize_domain(f.domain), f.name, f.overload)
            if key in self.functions:
                raise InvalidModelError(
                    f"model-local function {f.domain}.{f.name} (overload {f.overload!r}) is "
                    "defined twice")
            self.functions[key] = f
        self.opset_imports = opset_imports
        self.value_types: dict[str, onnx.TypeProto] = {}
        self._used: set[str] | None = None
        self._model = model
        self._counter = 0
        self._checked: set[tuple[str, str, str]] = set()

    def __bool__(self) -> bool:
        return bool(self.functions)

    # -- naming ------------------------------------------------------------------------------
    def _fresh(self, hint: str) -> str:
        if self._used is None:
            self._used = set(_graph_names(self._model.graph))
            for f in self._model.functions:
                self._used.update(f.input)
                self._used.update(f.output)
        base = hint or "v"
        name = base
        while name in self._used:
            self._counter += 1
            name = f"{base}__{self._counter}"
        self._used.add(name)
        return name

    # -- expansion ---------------------------------------------------------------------------
    def expand(self, nodes: Iterable[onnx.NodeProto]) -> list[onnx.NodeProto]:
        """``nodes`` with every call to a local function replaced by the function's body."""
        out: list[onnx.NodeProto] = []
        for node in nodes:
            self._expand_node(node, out, ())
        return out

    def _lookup(self, node: onnx.NodeProto) -> onnx.FunctionProto | None:
        if not self.functions:
            return None
        return self.functions.get((normalize_domain(node.domain), node.op_type, node.overload))

    def _expand_node(self, node: onnx.NodeProto, out: list[onnx.NodeProto],
                     stack: tuple[tuple[str, str, str], ...]) -> None:
        fn = self._lookup(node)
        if fn is None:
            out.append(node)
            return
        key = (normalize_domain(fn.domain), fn.name, fn.overload)
        if key in stack:
            chain = " -> ".join(k[1] for k in (*stack, key))
            raise InvalidModelError(f"model-local functions call themselves recursively: {chain}")
        if len(stack) >= MAX_CALL_DEPTH:
            raise InvalidModelError(
                f"model-local functions call each other more than {MAX_CALL_DEPTH} levels deep "
                f"(reached {fn.domain}.{fn.name}); PyFlameRT refuses such models")
        self._check_opsets(fn, key)
        if len(node.input) > len(fn.input) or len(node.output) > len(fn.output):
            raise InvalidModelError(
                f"node {node.name!r} calls function {fn.name} with {len(node.input)} inputs and "
                f"{len(node.output)} outputs, but it declares {len(fn.input)} and "
                f"{len(fn.output)}")
        prefix = node.name or fn.name
        rename: dict[str, str] = {}
        for i, formal in enumerate(fn.input):
            rename[formal] = node.input[i] if i < len(node.input) else ""
        for i, formal in enumerate(fn.output):
            actual = node.output[i] if i < len(node.output) else ""
            rename[formal] = actual or self._fresh(f"{prefix}_{formal}")
        for body_node in fn.node:
            for name in body_node.output:
                if name and name not in rename:
                    rename[name] = self._fresh(f"{prefix}_{name}")
        for vi in fn.value_info:
            if rename.get(vi.name) and vi.HasField("type"):
                self.value_types[rename[vi.name]] = vi.type
        call_attrs = {a.name: a for a in node.attribute}
        defaults = {a.name: a for a in fn.attribute_proto}
        for body_node in fn.node:
            inlined = self._copy_node(body_node, [rename], call_attrs, defaults, fn, prefix)
            self._expand_node(inlined, out, (*stack, key))

    def _resolve(self, name: str, scopes: list[dict[str, str]], fn: onnx.FunctionProto) -> str:
        if not name:
            return ""
        for scope in reversed(scopes):
            if name in scope:
                return scope[name]
        raise InvalidModelError(
            f"function {fn.domain}.{fn.name} reads {name!r}, which is neither one of its inputs "
            "nor produced inside it")

    def _copy_node(self, node: onnx.NodeProto, scopes: list[dict[str, str]],
                   call_attrs: dict[str, onnx.AttributeProto],
                   defaults: dict[str, onnx.AttributeProto], fn: onnx.FunctionProto,
                   prefix: str) -> onnx.NodeProto:
        new = onnx.NodeProto()
        new.op_type = node.op_type
        new.domain = node.domain
        new.overload = node.overload
        new.doc_string = node.doc_string
        new.name = self._fresh(f"{prefix}/{node.name or node.op_type}")
        new.input.extend(self._resolve(n, scopes, fn) for n in node.input)
        new.output.extend(scopes[-1].get(n, "") if n else "" for n in node.output)
        new.metadata_props.extend(node.metadata_props)
        for attr in node.attribute:
            if attr.ref_attr_name:
                source = call_attrs.get(attr.ref_attr_name) or defaults.get(attr.ref_attr_name)
                if source is None:
                    continue  # not given and no default: the op's own default applies
                resolved = onnx.AttributeProto()
                resolved.CopyFrom(source)
                resolved.name = attr.name
                new.attribute.append(resolved)
                continue
            copy = onnx.AttributeProto()
            copy.CopyFrom(attr)
            if attr.type == onnx.AttributeProto.GRAPH or attr.HasField("g"):
                copy.g.CopyFrom(self._copy_graph(attr.g, scopes, call_attrs, defaults, fn,
                                                 prefix))
            if attr.graphs:
                del copy.graphs[:]
                for g in attr.graphs:
                    copy.graphs.add().CopyFrom(
                        self._copy_graph(g, scopes, call_attrs, defaults, fn, prefix))
            new.attribute.append(copy)
        return new

    def _copy_graph(self, graph: onnx.GraphProto, scopes: list[dict[str, str]],
                    call_attrs: dict[str, onnx.AttributeProto],
                    defaults: dict[str, onnx.AttributeProto], fn: onnx.FunctionProto,
                    prefix: str) -> onnx.GraphProto:
        """A subgraph of a function body, with its own names renamed fresh."""
        local: dict[str, str] = {}
        for vi in graph.input:
            local[vi.name] = self._fresh(f"{prefix}_{vi.name}")
        for t in graph.initializer:
            local[t.name] = self._fresh(f"{prefix}_{t.name}")
        for sp in graph.sparse_initializer:
            local[sp.values.name] = self._fresh(f"{prefix}_{sp.values.name}")
        for node in graph.node:
            for name in node.output:
                if name and name not in local:
                    local[name] = self._fresh(f"{prefix}_{name}")
        inner = [*scopes, local]
        new = onnx.GraphProto()
        new.name = graph.name
        new.doc_string = graph.doc_string
        for vi in graph.input:
            new.input.add().CopyFrom(vi)
            new.input[-1].name = local[vi.name]
        for vi in graph.output:
            new.output.add().CopyFrom(vi)
            new.output[-1].name = self._resolve(vi.name, inner, fn)
        for vi in graph.value_info:
            if vi.name in local:
                new.value_info.add().CopyFrom(vi)
                new.value_info[-1].name = local[vi.name]
        for t in graph.initializer:
            new.initializer.add().CopyFrom(t)
            new.initializer[-1].name = local[t.name]
        for sp in graph.sparse_initializer:
            new.sparse_initializer.add().CopyFrom(sp)
            new.sparse_initializer[-1].values.name = local[sp.values.name]
        for node in graph.node:
            new.node.append(self._copy_node(node, inner, call_attrs, defaults, fn, prefix))
        return new

    # -- opsets ------------------------------------------------------------------------------
    def _check_opsets(self, fn: onnx.FunctionProto, key: tuple[str, str, str]) -> None:
        if key in self._checked:
            return
        self._checked.add(key)
        newest = onnx.defs.onnx_opset_version()
        for imp in fn.opset_import:
            domain = normalize_domain(imp.domain)
            model_version = self.opset_imports.get(domain)
            # Opsets below 7 are only usable when the model's own opset decides (same
            # semantics checked below); above the newest, no schema can be looked up.
            lowest = 7 if model_version is None else 1
            if domain == "" and not lowest <= imp.version <= newest:
                raise InvalidModelError(
                    f"model-local function {fn.domain}.{fn.name} imports ONNX opset "
                    f"{imp.version}; PyFlameRT supports opsets 7 to {newest}")
            if not 0 <= imp.version < 2**31:
                raise InvalidModelError(
                    f"model-local function {fn.domain}.{fn.name} imports domain "
                    f"{imp.domain!r} at version {imp.version}, which is out of range")
            if model_version is None:
                self.opset_imports[domain] = int(imp.version)
            elif domain == "" and model_version != imp.version:
                self._check_same_semantics(fn, int(imp.version), model_version)

    def _check_same_semantics(self, fn: onnx.FunctionProto, fn_version: int,
                              model_version: int) -> None:
        for node in _all_nodes(fn.node):
            if normalize_domain(node.domain) != "":
                continue
            try:
                at_fn = onnx.defs.get_schema(node.op_type, fn_version).since_version
                at_model = onnx.defs.get_schema(node.op_type, model_version).since_version
            except onnx.defs.SchemaError:
                continue  # an unknown op fails later with its own message
            if at_fn != at_model:
                raise NotImplementedFeatureError(
                    f"model-local function {fn.domain}.{fn.name} imports ONNX opset "
                    f"{fn_version} but the model imports opset {model_version}, and "
                    f"{node.op_type} differs between them (versions {at_fn} and {at_model}); "
                    "convert the model to a single opset version")


def _all_nodes(nodes: Iterable[onnx.NodeProto]) -> Iterator[onnx.NodeProto]:
    for node in nodes:
        yield node
        for attr in node.attribute:
            for g in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
                yield from _all_nodes(g.node)
