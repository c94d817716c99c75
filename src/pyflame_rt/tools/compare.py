"""``pyflame-rt compare``: Polygraphy-style accuracy debugging.

Both sides run the same feeds with *every intermediate tensor marked as a graph output*:

* ours: the model is optimized at ``level`` (a copy, through the IR API), then every value a
  node of the optimized graph produces is added with ``Graph.add_output`` and the result runs
  unoptimized, so what is compared is exactly what the optimized plan computes;
* ``onnxruntime`` / ``reference`` (``onnx.reference.ReferenceEvaluator``): the original ONNX
  protobuf with every node output appended to ``graph.output``; ONNX Runtime runs it with its
  optimizations off, so it is as literal a reading of the model as possible;
* ``level=NAME``: PyFlameRT itself at another optimization level (``level=none`` isolates
  optimizer bugs from kernel bugs).

Tensors are matched by name and walked in the reference graph's topological order; a tensor a
fusion renamed is found through a node that survived unchanged (same name, op, attributes and
constants) and reads it, e.g. ``/2/Relu_output_0`` is our ``FusedConv``'s output because our
``MaxPool`` reads that where the model's reads ``/2/Relu_output_0``. A tensor
diverges when some element has ``|ours - ref| > atol + rtol * |ref|`` (NaN only matches NaN),
or when shape or dtype differ. The first node with a divergent output is reported with what
its inputs looked like, which usually names the culprit: if its inputs match, that node (or
the fused node computing it in our graph) introduced the error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ExecutionError, InvalidArgumentError
from .common import LEVELS, progress

__all__ = ["CompareResult", "TensorDiff", "compare_arrays", "compare_model", "parse_against"]


@dataclass
class TensorDiff:
    """One tensor compared (or not) between the two sides.

    ``status`` is ``"ok"``, ``"DIVERGED"``, or why it was not compared (``"not in
    pyflame-rt's graph"`` for a tensor an optimization fused away, ...).
    """

    tensor: str
    node: str
    op_type: str
    shape: list[int] | None = None
    dtype: str = ""
    max_abs: float | None = None
    max_rel: float | None = None
    mismatched: int = 0
    status: str = "ok"
    detail: str = ""
    ours_tensor: str = ""  # our value's name when a fusion renamed it

    @property
    def compared(self) -> bool:
        return self.status in ("ok", "DIVERGED")

    @property
    def diverged(self) -> bool:
        return self.status == "DIVERGED"

    def to_dict(self) -> dict[str, Any]:
        return {"tensor": self.tensor, "node": self.node, "op_type": self.op_type,
                "shape": self.shape, "dtype": self.dtype, "max_abs": self.max_abs,
                "max_rel": self.max_rel, "mismatched_elements": self.mismatched,
                "status": self.status, "detail": self.detail}


@dataclass
class CompareResult:
    """The per-tensor report and the first divergent node."""

    model: str
    ours: str
    against: str
    atol: float
    rtol: float
    diffs: list[TensorDiff]
    first: TensorDiff | None = None
    explanation: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.first is None

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "ours": self.ours, "against": self.against,
                "atol": self.atol, "rtol": self.rtol, "passed": self.passed,
                "compared": sum(d.compared for d in self.diffs),
                "diverged": sum(d.diverged for d in self.diffs),
                "first_divergence": self.first.to_dict() if self.first else None,
                "explanation": self.explanation, "tensors": [d.to_dict() for d in self.diffs],
                "notes": self.notes}

    def format(self, only_failures: bool = False) -> str:
        lines = [f"model     : {self.model}",
                 f"comparing : {self.ours}  vs  {self.against}",
                 f"tolerance : |a - b| <= {self.atol:g} + {self.rtol:g} * |b|"]
        lines += [f"note      : {n}" for n in self.notes]
        rows = [d for d in self.diffs if d.diverged] if only_failures else self.diffs
        node_w = min(32, max((len(d.node) for d in rows), default=4))
        op_w = min(20, max((len(d.op_type) for d in rows), default=2))
        t_w = min(36, max((len(d.tensor) for d in rows), default=6))
        lines.append(f"  {'node':<{node_w}}  {'op':<{op_w}}  {'tensor':<{t_w}}  "
                     f"{'max abs':>10}  {'max rel':>10}  status")
        for d in rows:
            a = f"{d.max_abs:.3g}" if d.max_abs is not None else "-"
            r = f"{d.max_rel:.3g}" if d.max_rel is not None else "-"
            lines.append(f"  {d.node[:node_w]:<{node_w}}  {d.op_type[:op_w]:<{op_w}}  "
                         f"{d.tensor[-t_w:]:<{t_w}}  {a:>10}  {r:>10}  {d.status}"
                         + (f" ({d.detail})" if d.detail else ""))
        compared = sum(d.compared for d in self.diffs)
        diverged = sum(d.diverged for d in self.diffs)
        if self.first is None:
            lines.append(f"PASSED: all {compared} compared tensors match "
                         f"({len(self.diffs) - compared} not comparable)")
        else:
            f = self.first
            lines.append(f"first divergence: node {f.node!r} ({f.op_type}), output "
                         f"{f.tensor!r}: max abs {f.max_abs:.3g}, max rel "
                         f"{f.max_rel:.3g}, {f.mismatched} element(s) off"
                         if f.max_abs is not None else
                         f"first divergence: node {f.node!r} ({f.op_type}), output "
                         f"{f.tensor!r}: {f.detail or f.status}")
            lines += [f"  {e}" for e in self.explanation]
            lines.append(f"FAILED: {diverged} of {compared} compared tensors diverge")
        return "\n".join(lines)


def parse_against(against: str) -> tuple[str, str | None]:
    """``"onnxruntime"`` | ``"reference"`` | ``"level=NAME"`` -> ``(kind, level)``."""
    text = against.strip().lower()
    if text in ("onnxruntime", "ort"):
        return "onnxruntime", None
    if text in ("reference", "onnx.reference"):
        return "reference", None
    if text.startswith("level="):
        level = text.split("=", 1)[1]
        if level not in LEVELS:
            raise InvalidArgumentError(f"--against {against!r}: level must be one of "
                                       f"{', '.join(LEVELS)}")
        return "level", level
    raise InvalidArgumentError(f"--against {against!r}: use onnxruntime, reference or "
                               "level=none|basic|extended")


def compare_arrays(ours: Any, ref: Any, atol: float, rtol: float) -> dict[str, Any]:
    """Compare two values; returns ``max_abs``, ``max_rel``, ``mismatched`` and ``status``."""
    if not isinstance(ours, np.ndarray) or not isinstance(ref, np.ndarray):
        if isinstance(ours, list) and isinstance(ref, list) and len(ours) == len(ref):
            parts = [compare_arrays(np.asarray(a), np.asarray(b), atol, rtol)
                     for a, b in zip(ours, ref)]
            bad = [p for p in parts if p["status"] != "ok"]
            return {"max_abs": max((p["max_abs"] or 0.0 for p in parts), default=0.0),
                    "max_rel": max((p["max_rel"] or 0.0 for p in parts), default=0.0),
                    "mismatched": sum(p["mismatched"] for p in parts),
                    "status": "DIVERGED" if bad else "ok"}
        if ours is None and ref is None:
            return {"max_abs": None, "max_rel": None, "mismatched": 0, "status": "ok"}
        return {"max_abs": None, "max_rel": None, "mismatched": 0,
                "status": f"not a tensor ({type(ours).__name__} vs {type(ref).__name__})"}
    if ours.shape != ref.shape:
        return {"max_abs": None, "max_rel": None, "mismatched": 0, "status": "DIVERGED",
                "detail": f"shape {list(ours.shape)} vs {list(ref.shape)}"}
    if ours.dtype.kind in "OSU" or ref.dtype.kind in "OSU":
        bad = int(np.sum(ours.astype(str) != ref.astype(str)))
        return {"max_abs": None, "max_rel": None, "mismatched": bad,
                "status": "DIVERGED" if bad else "ok"}
    a = ours.astype(np.float64)
    b = ref.astype(np.float64)
    if a.size == 0:
        return {"max_abs": 0.0, "max_rel": 0.0, "mismatched": 0, "status": "ok"}
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    same_inf = np.isinf(a) & (a == b)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a - b)
        diff[nan_a & nan_b] = 0.0
        diff[same_inf] = 0.0
        diff[nan_a ^ nan_b] = np.inf
        bad = diff > atol + rtol * np.abs(b)
        bad |= nan_a ^ nan_b
        nonzero = np.abs(b) > 0
        rel = float(np.max(diff[nonzero] / np.abs(b[nonzero]))) if nonzero.any() else 0.0
    return {"max_abs": float(np.max(diff)), "max_rel": rel, "mismatched": int(bad.sum()),
            "status": "DIVERGED" if bad.any() else "ok"}


# -- running both sides ------------------------------------------------------------------------
def _mark_all_outputs_proto(proto: Any) -> tuple[Any, list[tuple[str, str, list[str]]]]:
    """A copy of ``proto`` whose outputs include every node output, and its nodes in
    topological order as ``(node name, op type, output names)``."""
    import onnx

    marked = onnx.ModelProto()
    marked.CopyFrom(proto)
    graph = marked.graph
    present = {o.name for o in graph.output}
    for node in graph.node:
        for name in node.output:
            if name and name not in present:
                graph.output.append(onnx.ValueInfoProto(name=name))
                present.add(name)
    order = _proto_topological_order(graph)
    return marked, [(n.name or f"{n.op_type}#{i}", n.op_type, [o for o in n.output if o])
                    for i, n in order]


def _proto_topological_order(graph: Any) -> list[tuple[int, Any]]:
    """Nodes in a valid execution order, keeping file order where it already is one."""
    produced_by: dict[str, int] = {}
    for i, node in enumerate(graph.node):
        for name in node.output:
            if name:
                produced_by[name] = i
    deps = [{produced_by[x] for x in node.input if x in produced_by and produced_by[x] != i}
            for i, node in enumerate(graph.node)]
    done: set[int] = set()
    order: list[tuple[int, Any]] = []
    pending = list(range(len(graph.node)))
    while pending:
        rest = []
        for i in pending:
            if deps[i] <= done:
                done.add(i)
                order.append((i, graph.node[i]))
            else:
                rest.append(i)
        if len(rest) == len(pending):  # a cycle: keep file order for what is left
            order.extend((i, graph.node[i]) for i in rest)
            break
        pending = rest
    return order


_STANDARD_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview.training",
                     "ai.onnx.preview"}


def _check_standard_ops(proto: Any, reference: str) -> None:
    """Refuse a model the reference cannot run (PyFlameRT's fused or custom-domain ops)."""
    custom = sorted({f"{n.domain}::{n.op_type}" for n in proto.graph.node
                     if n.domain not in _STANDARD_DOMAINS}
                    - {f"{f.domain}::{f.name}" for f in proto.functions})
    if custom:
        raise InvalidArgumentError(
            f"{reference} cannot run this model's non-standard ops ({', '.join(custom[:5])}); "
            "compare the original (unoptimized) model instead, or use --against level=none")


def _run_onnxruntime(proto: Any, feeds: Mapping[str, np.ndarray]) -> tuple[dict[str, Any], str]:
    try:
        import onnxruntime
    except ImportError:
        raise InvalidArgumentError("--against onnxruntime needs the onnxruntime package: pip "
                                   "install onnxruntime (or use --against reference)") from None
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = onnxruntime.InferenceSession(proto.SerializeToString(), options,
                                           providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, dict(feeds))
    return dict(zip(names, values)), f"onnxruntime {onnxruntime.__version__} (unoptimized)"


def _run_reference(proto: Any, feeds: Mapping[str, np.ndarray]) -> tuple[dict[str, Any], str]:
    import onnx
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(proto)
    values = evaluator.run(None, dict(feeds))
    return dict(zip(evaluator.output_names, values)), f"onnx.reference (onnx {onnx.__version__})"


def _marked_session(model: Any, level: str) -> tuple[Any, Any, str]:
    """Optimize a copy of ``model`` at ``level``, mark every node output, build a session."""
    from .. import InferenceSession, SessionOptions
    from ..ir import clone_model
    from ..opt import optimize

    work = clone_model(model)
    _, report = optimize(work, level)
    graph = work.graph
    present = {id(v) for v in graph.outputs}
    for node in graph.nodes:
        for v in node.outputs:
            if v is not None and v.name and id(v) not in present:
                graph.add_output(v)
                present.add(id(v))
    options = SessionOptions()
    options.graph_optimization_level = "none"  # already optimized above
    session = InferenceSession(work, options)
    return session, graph, report.summary()


def compare_model(path: str, against: str = "onnxruntime", *, level: str = "all",
                  feeds: Mapping[str, np.ndarray] | None = None, atol: float = 1e-4,
                  rtol: float = 1e-3, input_items: tuple[str, ...] = (),
                  shape_items: tuple[str, ...] = (), seed: int = 0) -> CompareResult:
    """Compare every intermediate tensor of PyFlameRT's run of ``path`` against a reference.

    Args:
        path: ``.onnx`` or ``.pfm`` model.
        against: ``"onnxruntime"``, ``"reference"`` or ``"level=NAME"``.
        level: PyFlameRT's optimization level.
        feeds: Input arrays (else from ``input_items`` / random with ``shape_items``).
        atol: Absolute tolerance.
        rtol: Relative tolerance.
        seed: Seed of random feeds.

    Returns:
        A :class:`CompareResult`; ``result.first`` is the first divergent tensor.
    """
    from .common import load_model_file, load_onnx_proto, make_feeds

    kind, ref_level = parse_against(against)
    if level not in LEVELS:
        raise InvalidArgumentError(f"--level {level!r}: use one of {', '.join(LEVELS)}")
    if atol < 0 or rtol < 0:
        raise InvalidArgumentError("--atol and --rtol must be >= 0")
    model = load_model_file(path)
    steps = progress(total=3, desc="compare", unit="step")
    try:
        ours_session, ours_graph, summary = _marked_session(model, level)
        notes: list[str] = []
        if feeds is None:
            feeds = make_feeds(ours_session.get_inputs(), input_items, shape_items, seed=seed,
                               notes=notes)
        names = [o.name for o in ours_session.get_outputs()]
        ours_values = dict(zip(names, ours_session.run(None, feeds)))
        steps.update(1)
        if kind == "level":
            ref_session, ref_graph, _ = _marked_session(model, ref_level or "none")
            ref_names = [o.name for o in ref_session.get_outputs()]
            ref_values = dict(zip(ref_names, ref_session.run(None, feeds)))
            order = [(n.name or n.op_type, n.qualified_op,
                      [v.name for v in n.outputs if v is not None]) for n in ref_graph.nodes]
            against_label = f"pyflame-rt at level {ref_level}"
        else:
            proto = load_onnx_proto(path)
            marked, order = _mark_all_outputs_proto(proto)
            steps.update(1)
            _check_standard_ops(marked, kind)
            runner = _run_onnxruntime if kind == "onnxruntime" else _run_reference
            try:
                ref_values, against_label = runner(marked, feeds)
            except InvalidArgumentError:
                raise
            except Exception as exc:  # the reference's own failure, not ours: say so
                raise ExecutionError(f"the reference ({kind}) failed to run the model: "
                                     f"{type(exc).__name__}: {exc}") from exc
        steps.update(1)
    finally:
        steps.close()

    aliases = _aliases(model.graph, ours_graph)
    diffs: list[TensorDiff] = []
    for node_name, op_type, outputs in order:
        for tensor in outputs:
            diff = TensorDiff(tensor, node_name, op_type)
            ref = ref_values.get(tensor)
            mine_name = tensor if tensor in ours_values else aliases.get(tensor)
            if tensor not in ref_values:
                diff.status = "not produced by the reference"
            elif mine_name is None or mine_name not in ours_values:
                diff.status = "not in pyflame-rt's graph (optimized away)"
            else:
                mine = ours_values[mine_name]
                diff.shape = list(np.shape(ref)) if isinstance(ref, np.ndarray) else None
                diff.dtype = str(ref.dtype) if isinstance(ref, np.ndarray) else ""
                if mine_name != tensor and np.shape(mine) != np.shape(ref):
                    diff.status = "not comparable"
                    diff.detail = f"pyflame-rt's {mine_name!r} has another shape"
                    diffs.append(diff)
                    continue
                result = compare_arrays(mine, ref, atol, rtol)
                diff.max_abs, diff.max_rel = result["max_abs"], result["max_rel"]
                diff.mismatched, diff.status = result["mismatched"], result["status"]
                diff.detail = result.get("detail", "")
                if mine_name != tensor:
                    diff.ours_tensor = mine_name
                    diff.detail = (diff.detail + "; " if diff.detail else "") + \
                        f"as pyflame-rt's {mine_name!r}"
            diffs.append(diff)

    first = next((d for d in diffs if d.diverged), None)
    explanation = _explain(first, diffs, ours_graph) if first is not None else []
    return CompareResult(model=path, ours=f"pyflame-rt at level {level} ({summary})",
                         against=against_label, atol=atol, rtol=rtol, diffs=diffs, first=first,
                         explanation=explanation, notes=notes)


def _aliases(base: Any, ours: Any) -> dict[str, str]:
    """Reference tensor name -> our value name, for values a fusion renamed.

    When a node survives optimization unchanged (same name, op, attributes and constant
    inputs) its non-constant inputs must carry the same tensors on both sides, even when a
    fused node now produces them under a new name: ``MaxPool('/3/MaxPool')`` reads
    ``/2/Relu_output_0`` in the model and ``/0/Conv__0_out`` (a ``FusedConv``) in ours.
    """
    base_nodes = {n.name: n for n in base.nodes if n.name}
    base_names = {v.name for v in base.values()}
    our_names = {v.name for v in ours.values()}
    aliases: dict[str, str] = {}
    for node in ours.nodes:
        ref = base_nodes.get(node.name)
        if ref is None or ref.qualified_op != node.qualified_op or \
                len(ref.inputs) != len(node.inputs) or not _same_attrs(ref.attrs, node.attrs):
            continue
        pairs = list(zip(ref.inputs, node.inputs))
        if any((a is None) != (b is None) for a, b in pairs):
            continue
        if any(a is not None and (a.const_value is not None or b.const_value is not None)
               and not _same_constant(a, b) for a, b in pairs):
            continue
        for a, b in pairs:
            if a is None or a.const_value is not None or a.name == b.name:
                continue
            if a.name not in our_names and b.name not in base_names:
                aliases.setdefault(a.name, b.name)
    return aliases


def _same_attrs(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a.keys() != b.keys():
        return False
    for key, value in a.items():
        other = b[key]
        if isinstance(value, np.ndarray) or isinstance(other, np.ndarray):
            if not (isinstance(value, np.ndarray) and isinstance(other, np.ndarray)
                    and value.shape == other.shape and np.array_equal(value, other)):
                return False
        elif hasattr(value, "nodes") or hasattr(other, "nodes"):
            return False  # subgraphs: not worth proving equal
        elif value != other:
            return False
    return True


def _same_constant(a: Any, b: Any) -> bool:
    x, y = a.const_value, b.const_value
    if x is None or y is None:
        return False
    x, y = np.asarray(x), np.asarray(y)
    return x.shape == y.shape and x.dtype == y.dtype and np.array_equal(x, y)


def _explain(first: TensorDiff, diffs: list[TensorDiff], ours_graph: Any) -> list[str]:
    """Say where the first divergent tensor comes from in our graph and how its inputs did."""
    by_tensor = {d.ours_tensor or d.tensor: d for d in diffs}
    name = first.ours_tensor or first.tensor
    value = next((v for v in ours_graph.values() if v.name == name), None)
    if value is None or value.producer is None:
        return []
    node = value.producer
    lines = [f"in pyflame-rt it is computed by {node.qualified_op} {node.name!r}"]
    unchecked = []
    for v in node.inputs:
        if v is None:
            continue
        if v.producer is None:
            kind = "initializer" if v.const_value is not None else "graph input"
            lines.append(f"  input {v.name!r}: {kind}")
            continue
        d = by_tensor.get(v.name)
        if d is not None and d.compared:
            lines.append(f"  input {v.name!r}: {'matches' if d.status == 'ok' else 'DIVERGED'}")
        else:
            unchecked.append(v)
            lines.append(f"  input {v.name!r}: not compared (made by "
                         f"{v.producer.qualified_op} {v.producer.name!r}, which the reference "
                         "graph does not have)")
    if unchecked:
        lines.append("the error comes from this node or from the node(s) making its "
                     "uncompared inputs (rerun with --level none to test the kernels alone)")
    elif all(by_tensor.get(v.name) is None or by_tensor[v.name].status == "ok"
             for v in node.inputs if v is not None):
        lines.append("its inputs match, so this node introduces the error: check the kernel "
                     f"of {node.qualified_op} (and the fusion that made it, if any)")
    return lines
