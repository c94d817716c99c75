"""The operator registry: ``(domain, op_type, since_version) -> kernel``.

A kernel is a plain function: inputs positional (``None`` for an omitted optional input),
attributes keyword-only with the ONNX spelling and the spec's defaults. It returns one value
(an array; a Python list for a sequence; ``None`` for an empty optional), or a ``tuple`` with
one entry per output when the op has several outputs. Two optional extras:

* a keyword-only parameter ``_ctx`` receives a :class:`KernelContext` (number of outputs the
  node asks for, opset, the node, and a way to run subgraphs for control-flow ops);
* ``specialize=`` names a function run once at compile time, when input types and constant
  inputs are known, returning a faster callable with the same signature (or ``None``).

The registry picks the highest ``since`` version that is ``<=`` the model's opset for the
op's domain, like ``onnx.reference``.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import UnsupportedOperatorError

__all__ = [
    "KernelDef",
    "KernelContext",
    "SpecializeContext",
    "kernel",
    "register_op",
    "lookup",
    "registered_ops",
    "all_kernels",
    "unregister_op",
]

DEFAULT_DOMAINS = ("", "ai.onnx")


def _norm_domain(domain: str) -> str:
    return "" if domain in DEFAULT_DOMAINS else domain


@dataclass
class KernelContext:
    """What a kernel may need beyond its inputs and attributes (given when it takes ``_ctx``).

    Attributes:
        node: The IR node being executed.
        noutputs: How many outputs the node asks for (``len(node.outputs)``).
        opset: The model's opset for the node's domain.
        run_graph: ``run_graph(subgraph, inputs: list) -> list`` executes a subgraph attribute
            with the given graph inputs, seeing the enclosing scope's values.
        output_present: For each output index, whether the model uses it (omitted optional
            outputs have ``False``).
        rng: A ``numpy.random.Generator`` for random ops without a seed.
    """

    node: Any
    noutputs: int
    opset: int
    run_graph: Callable[[Any, list], list] | None = None
    output_present: Sequence[bool] = ()
    rng: Any = None


@dataclass
class SpecializeContext:
    """Compile-time facts given to a kernel's ``specialize`` function.

    Attributes:
        node: The IR node.
        attrs: The node's attributes (spec defaults not filled in).
        input_types: One ``TensorInfo``/``None`` per input, shapes concrete where known.
        constants: One numpy array (constant input: initializer or folded) or ``None`` per input.
        opset: The model's opset for the node's domain.
        options: Backend options (threads, tactic settings, ...).
    """

    node: Any
    attrs: dict[str, Any]
    input_types: Sequence[Any]
    constants: Sequence[Any]
    opset: int
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class KernelDef:
    """One registered implementation of an op from version ``since`` on."""

    op_type: str
    domain: str
    since: int
    fn: Callable[..., Any]
    specialize: Callable[[SpecializeContext], Callable[..., Any] | None] | None = None
    attr_names: frozenset[str] = frozenset()
    takes_ctx: bool = False
    takes_any_attr: bool = False
    custom: bool = False

    @property
    def doc(self) -> str:
        return (inspect.getdoc(self.fn) or "").split("\n")[0]

    def check_attrs(self, attrs: dict[str, Any]) -> list[str]:
        """Attribute names the model sets that this kernel does not know."""
        if self.takes_any_attr:
            return []
        return sorted(a for a in attrs if a not in self.attr_names)


_REGISTRY: dict[tuple[str, str], list[KernelDef]] = {}


def _make_def(op_type: str, fn: Callable[..., Any], since: int, domain: str,
              specialize: Callable | None, custom: bool) -> KernelDef:
    params = inspect.signature(fn).parameters.values()
    attr_names = frozenset(p.name for p in params
                           if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "_ctx")
    return KernelDef(
        op_type=op_type,
        domain=_norm_domain(domain),
        since=since,
        fn=fn,
        specialize=specialize,
        attr_names=attr_names,
        takes_ctx=any(p.name == "_ctx" for p in params),
        takes_any_attr=any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params),
        custom=custom,
    )


def _add(kdef: KernelDef) -> None:
    versions = _REGISTRY.setdefault((kdef.domain, kdef.op_type), [])
    versions[:] = [k for k in versions if k.since != kdef.since]
    versions.append(kdef)
    versions.sort(key=lambda k: k.since)


def kernel(op_type: str, since: int = 1, *, domain: str = "",
           specialize: Callable | None = None) -> Callable[[Callable], Callable]:
    """Register the decorated function as the kernel of ``domain::op_type`` from ``since`` on.

    The function itself is returned unchanged, so kernels stay plain, testable functions.
    """

    def decorate(fn: Callable) -> Callable:
        _add(_make_def(op_type, fn, since, domain, specialize, custom=False))
        return fn

    return decorate


def register_op(op_type: str, fn: Callable | None = None, *, domain: str = "", since: int = 1,
                specialize: Callable | None = None) -> Any:
    """Register a Python kernel for a custom (or replacement) operator.

    Usable directly or as a decorator::

        @pyflame_rt.register_op("MyRelu", domain="com.example")
        def my_relu(x, *, alpha: float = 0.0):
            return np.where(x > 0, x, alpha * x)

    Args:
        op_type: The node's ``op_type``.
        fn: The kernel: inputs positional, attributes keyword-only, returns an array or a tuple.
        domain: The node's domain (``""`` for the default ONNX domain).
        since: First opset version of ``domain`` the kernel implements.
        specialize: Optional compile-time specializer (see :class:`SpecializeContext`).

    Returns:
        ``fn`` (so it can be used as a decorator).
    """
    if fn is None:
        return lambda f: register_op(op_type, f, domain=domain, since=since,
                                     specialize=specialize)
    if not callable(fn):
        raise TypeError(f"register_op({op_type!r}): fn must be callable, got {type(fn).__name__}")
    _add(_make_def(op_type, fn, since, domain, specialize, custom=True))
    return fn


def unregister_op(op_type: str, *, domain: str = "", since: int | None = None) -> None:
    """Remove custom kernels of an op (all versions, or only ``since``)."""
    key = (_norm_domain(domain), op_type)
    versions = _REGISTRY.get(key, [])
    versions[:] = [k for k in versions if not (k.custom and (since is None or k.since == since))]
    if not versions:
        _REGISTRY.pop(key, None)


def lookup(op_type: str, domain: str = "", opset: int | None = None) -> KernelDef:
    """The kernel for ``domain::op_type`` at ``opset`` (the newest when ``opset`` is None).

    Raises:
        UnsupportedOperatorError: naming the op, domain and opset, and listing similar names.
    """
    dom = _norm_domain(domain)
    versions = _REGISTRY.get((dom, op_type))
    if versions:
        if opset is None:
            return versions[-1]
        for kdef in reversed(versions):
            if kdef.since <= opset:
                return kdef
        available = ", ".join(str(k.since) for k in versions)
        raise UnsupportedOperatorError(
            f"operator {_qual(dom, op_type)} has no kernel for opset {opset} (kernels exist "
            f"from opset versions {available}); convert the model to a newer opset with "
            "onnx.version_converter or register a kernel with pyflame_rt.register_op")
    names = [name for (d, name) in _REGISTRY if d == dom]
    similar = difflib.get_close_matches(op_type, names, n=5, cutoff=0.6)
    hint = f" Similar registered ops: {', '.join(similar)}." if similar else ""
    domains = sorted({d or "ai.onnx" for d, _ in _REGISTRY})
    where = "" if dom in {d for d, _ in _REGISTRY} else \
        f" No kernel is registered in domain {dom or 'ai.onnx'!r} (known domains: " \
        f"{', '.join(domains)})."
    raise UnsupportedOperatorError(
        f"operator {_qual(dom, op_type)} (opset {opset}) is not supported.{hint}{where} "
        "Register a Python kernel with pyflame_rt.register_op(op_type, fn, domain=...) to "
        "run this model.")


def _qual(domain: str, op_type: str) -> str:
    return f"{domain}::{op_type}" if domain else f"ai.onnx::{op_type}"


def registered_ops() -> dict[tuple[str, str], list[int]]:
    """``(domain, op_type) -> [since versions]`` of every registered kernel."""
    return {key: [k.since for k in versions] for key, versions in sorted(_REGISTRY.items())}


def all_kernels() -> list[KernelDef]:
    """Every registered ``KernelDef``, sorted by domain, op and version."""
    return [k for key in sorted(_REGISTRY) for k in _REGISTRY[key]]
