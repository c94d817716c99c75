"""Regenerate the generated pages of ``docs/``: ``API_Reference.md`` and ``operators.md``.

Usage (from the repository root)::

    python -m pyflame_rt.tools.gen_docs            # rewrite both files
    python -m pyflame_rt.tools.gen_docs --check    # exit 1 if either is out of date

``API_Reference.md`` is built from the docstrings and signatures of the public modules;
``operators.md`` from the kernel registry (:func:`pyflame_rt.ops.all_kernels`) and the ONNX
operator schemas (versions, type constraints, and the ONNX ops that have no kernel yet).
Tests compare both files with a fresh rendering, so the docs cannot drift from the code.
"""

from __future__ import annotations

import argparse
import enum
import importlib
import inspect
import os
import re
import sys
from collections.abc import Iterable
from typing import Any

__all__ = ["API_MODULES", "main", "render_api_reference", "render_operators"]

#: (module, one-line description), in the order the reference presents them.
API_MODULES: list[tuple[str, str]] = [
    ("pyflame_rt", "The package: ONNX Runtime's Python API plus `load`, `save`, "
                   "`register_op`."),
    ("pyflame_rt.session", "`InferenceSession` and its options (ONNX Runtime's names)."),
    ("pyflame_rt.errors", "Exceptions; each is also reachable under ONNX Runtime's name in "
                          "`pyflame_rt.capi.onnxruntime_pybind11_state`."),
    ("pyflame_rt.types", "Element types, tensor/sequence/map types, `NodeArg`."),
    ("pyflame_rt.ir", "The graph IR: values, nodes, graphs, ordering, verification, shapes."),
    ("pyflame_rt.io.onnx", "ONNX import and export."),
    ("pyflame_rt.io.pfm", "The native `.pfm` format."),
    ("pyflame_rt.ops", "The operator registry and the custom-op API."),
    ("pyflame_rt.opt", "The optimizer: levels, passes, pattern rewrite rules."),
    ("pyflame_rt.backends.base", "The execution-provider interface."),
    ("pyflame_rt.models", "Models shipped with the package (the demo)."),
    ("pyflame_rt.tools.compare", "Accuracy debugging (`pyflame-rt compare`)."),
    ("pyflame_rt.tools.bench", "Benchmarking (`pyflame-rt bench`)."),
    ("pyflame_rt.tools.profile", "Profiling (`pyflame-rt profile`)."),
    ("pyflame_rt.tools.warmup", "Ahead-of-time kernel compilation (`pyflame-rt warmup`)."),
    ("pyflame_rt.tools.flops", "FLOP estimates (`pyflame-rt inspect`)."),
    ("pyflame_rt.tools.dot", "Graphviz export (`pyflame-rt inspect --dot`)."),
]

_SECTION = re.compile(r"^(Args|Arguments|Parameters|Returns|Return|Raises|Attributes|Yields|"
                      r"Example|Examples|Note|Notes|Warning|See Also):\s*$")
_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):`~?([^`]+)`")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


# ==============================================================================================
# API reference
# ==============================================================================================
def _anchor(title: str) -> str:
    """GitHub's heading anchor for ``title``."""
    text = title.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _signature(obj: Any) -> str:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return "(...)"
    text = str(sig)
    # ``from __future__ import annotations`` leaves annotations as strings; unquote them.
    text = re.sub(r"'([^']*)'", lambda m: m.group(1) if _looks_like_type(m.group(1))
                  else m.group(0), text)
    return _ADDRESS.sub("", text)


def _looks_like_type(text: str) -> bool:
    return bool(re.fullmatch(r"[\w\.\[\], |]*(None|[A-Z]\w*|\w+\[.*\]|int|str|float|bool|"
                             r"bytes|object|list|dict|tuple|set|Any)[\w\.\[\], |]*", text))


def _convert_docstring(doc: str) -> list[str]:
    """Google-style docstring -> Markdown lines."""
    doc = _ROLE.sub(r"`\1`", doc)
    lines = doc.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        header = _SECTION.match(line.strip()) if not line.startswith(" ") else None
        if header:
            name = header.group(1)
            block, i = _indented_block(lines, i + 1)
            out.append("")
            out.append(f"**{name}:**")
            out.append("")
            if name.startswith(("Example", "Note")) or name == "Warning":
                if any(b.strip().startswith(">>>") for b in block) or name.startswith("Ex"):
                    out += _fence(block, "pycon" if any(b.strip().startswith(">>>")
                                                       for b in block) else "text")
                else:
                    out += [b.strip() for b in block]
            else:
                out += _items(block)
            out.append("")
            continue
        if line.rstrip().endswith("::"):
            out.append(line.rstrip()[:-1])
            block, i = _indented_block(lines, i + 1)
            out += _fence(block, "text")
            continue
        if line.strip().startswith(">>>"):
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i])
                i += 1
            out += _fence(block, "pycon")
            continue
        out.append(line.strip() if line.startswith("    ") else line)
        i += 1
    while out and not out[-1].strip():
        out.pop()
    return out


def _indented_block(lines: list[str], start: int) -> tuple[list[str], int]:
    block: list[str] = []
    i = start
    while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
        block.append(lines[i])
        i += 1
    while block and not block[-1].strip():
        block.pop()
    while block and not block[0].strip():
        block.pop(0)
    return block, i


def _fence(block: list[str], lang: str) -> list[str]:
    if not block:
        return []
    indent = min(len(b) - len(b.lstrip()) for b in block if b.strip())
    return ["", f"```{lang}", *[b[indent:] for b in block], "```", ""]


def _items(block: list[str]) -> list[str]:
    """``name: text`` entries (continuations deeper indented) -> a bullet list."""
    if not block:
        return []
    base = min(len(b) - len(b.lstrip()) for b in block if b.strip())
    items: list[str] = []
    for b in block:
        if not b.strip():
            continue
        depth = len(b) - len(b.lstrip())
        text = b.strip()
        if depth == base or not items:
            m = re.match(r"^([\w\*\.]+(?: \([^)]*\))?):\s*(.*)$", text)
            items.append(f"- `{m.group(1)}`: {m.group(2)}" if m else f"- {text}")
        else:
            items[-1] += " " + text
    return items


def _doc(obj: Any) -> list[str]:
    doc = inspect.getdoc(obj)
    return _convert_docstring(doc) if doc else ["*(no docstring)*"]


def _own_members(cls: type) -> list[tuple[str, Any]]:
    members = []
    for name, value in cls.__dict__.items():
        if name.startswith("_"):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            members.append((name, value.__func__))
        elif isinstance(value, property) or inspect.isfunction(value):
            members.append((name, value))
    return members


def _render_class(name: str, cls: type, level: str) -> list[str]:
    out = [f"{level} `{name}`", ""]
    if issubclass(cls, BaseException):
        bases = ", ".join(f"`{b.__name__}`" for b in cls.__bases__)
        out += [f"*exception* — bases: {bases}", ""]
        out += _doc(cls) + [""]
        return out
    if issubclass(cls, enum.Enum):
        out += [f"*enum* `{name}`", ""]
        out += _doc(cls) + [""]
        out += ["| member | value |", "|---|---|"]
        out += [f"| `{m.name}` | `{m.value!r}` |" for m in cls]
        return out + [""]
    signature = _signature(cls).removesuffix(" -> None")
    out += ["```text", f"class {name}{signature}", "```", ""]
    out += _doc(cls) + [""]
    for member, value in _own_members(cls):
        if isinstance(value, property):
            out += [f"- **`{name}.{member}`** *(property)*"]
            doc = inspect.getdoc(value)
            if doc:
                out[-1] += " — " + _ROLE.sub(r"`\1`", doc.splitlines()[0])
            continue
        out += ["", f"#### `{name}.{member}`", "", "```text",
                f"{member}{_signature(value)}", "```", ""]
        out += _doc(value)
    return out + [""]


def _render_object(name: str, obj: Any) -> list[str]:
    if inspect.isclass(obj):
        return _render_class(name, obj, "###")
    if callable(obj):
        return [f"### `{name}`", "", "```text", f"{name}{_signature(obj)}", "```", "",
                *_doc(obj), ""]
    text = _ADDRESS.sub("", repr(obj))
    if len(text) > 160:
        text = text[:157] + "..."
    return [f"### `{name}`", "", f"`{name} = {text}`", ""]


def _module_section(modname: str, documented: dict[int, str]) -> list[str]:
    module = importlib.import_module(modname)
    names = [n for n in getattr(module, "__all__", []) if not n.startswith("__")]
    body: list[str] = []
    elsewhere: list[str] = []
    for name in names:
        obj = getattr(module, name, None)
        if obj is None or inspect.ismodule(obj):
            continue
        if id(obj) in documented:
            elsewhere.append(f"[`{name}`](#{_anchor(name)}) ({documented[id(obj)]})")
            continue
        documented[id(obj)] = f"`{modname}`"
        body += _render_object(name, obj)
    if elsewhere:
        body += [f"Also exported here: {', '.join(elsewhere)}.", ""]
    return body


def render_api_reference() -> str:
    """The Markdown text of ``docs/API_Reference.md``."""
    import pyflame_rt

    documented: dict[int, str] = {}
    # The package re-exports most of its names: document each where it is defined, and the
    # package's own functions (and exports defined in no listed module) under the package.
    top_names = [n for n in pyflame_rt.__all__ if not n.startswith("__")]
    bodies: dict[str, list[str]] = {}
    for modname, _ in API_MODULES[1:]:
        bodies[modname] = _module_section(modname, documented)
    top: list[str] = ["Everything listed here is importable from `pyflame_rt` directly:", ""]
    own: list[str] = []
    for name in top_names:
        obj = getattr(pyflame_rt, name)
        if inspect.ismodule(obj):
            top.append(f"- `{name}` (module)")
        elif id(obj) in documented:
            top.append(f"- [`{name}`](#{_anchor(name)}) ({documented[id(obj)]})")
        else:
            top.append(f"- [`{name}`](#{_anchor(name)})")
            documented[id(obj)] = "`pyflame_rt`"
            own += _render_object(name, obj)
    bodies["pyflame_rt"] = top + [""] + own

    sections: list[str] = []
    toc: list[str] = []
    for modname, blurb in API_MODULES:
        body = bodies[modname]
        if not body:
            continue
        toc.append(f"- [`{modname}`](#{_anchor(modname)}) — {blurb}")
        doc = inspect.getdoc(importlib.import_module(modname)) or ""
        first = _ROLE.sub(r"`\1`", doc.split("\n\n")[0].replace("\n", " ")) if doc else ""
        sections += [f"## `{modname}`", "", blurb, ""]
        if first:
            sections += [first, ""]
        sections += body
    header = ["# API reference", "",
              "<!-- Generated by `python -m pyflame_rt.tools.gen_docs` from the docstrings; "
              "do not edit by hand. -->", "",
              "The public Python API, module by module. Guides: "
              "[Developer Guide](Developer_Guide.md), "
              "[Extending PyFlameRT](Extending_PyFlameRT.md), "
              "[Examples and Tutorials](Examples_and_Tutorials.md), "
              "[Operators](operators.md).", "", *toc, ""]
    text = "\n".join(header + sections)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.rstrip() + "\n"


# ==============================================================================================
# operators.md
# ==============================================================================================
_FLOATS = ["float16", "float", "double", "bfloat16"]
_SIGNED = ["int8", "int16", "int32", "int64"]
_UNSIGNED = ["uint8", "uint16", "uint32", "uint64"]
_FLOAT8 = ["float8e4m3fn", "float8e4m3fnuz", "float8e5m2", "float8e5m2fnuz"]
_DOMAIN_SCHEMAS = ("", "ai.onnx.ml", "ai.onnx.preview.training", "ai.onnx.preview")


def _compact_types(types: Iterable[str]) -> str:
    names = []
    for t in types:
        m = re.fullmatch(r"tensor\((\w+)\)", t)
        names.append(m.group(1) if m else t)
    rest = list(dict.fromkeys(names))
    parts = []
    for group, label in ((_FLOATS, None), (_SIGNED, "int8..int64"),
                         (_UNSIGNED, "uint8..uint64"), (_FLOAT8, "float8*")):
        if label and all(g in rest for g in group):
            parts.append(label)
            rest = [r for r in rest if r not in group]
    floats = [f for f in _FLOATS if f in rest]
    rest = [r for r in rest if r not in floats]
    return ", ".join(floats + parts + sorted(rest))


def _schema(op: str, domain: str, version: int) -> Any:
    import onnx.defs

    try:
        return onnx.defs.get_schema(op, max_inclusive_version=version, domain=domain)
    except Exception:  # noqa: BLE001 - onnx raises SchemaError for unknown ops
        return None


def _latest_schema(op: str, domain: str) -> Any:
    import onnx.defs

    try:
        return onnx.defs.get_schema(op, domain=domain)
    except Exception:  # noqa: BLE001
        return None


def render_operators() -> str:
    """The Markdown text of ``docs/operators.md``."""
    import onnx

    from ..backends import cpu  # noqa: F401 - registers every CPU kernel
    from ..ops import all_kernels

    kernels: dict[tuple[str, str], list[int]] = {}
    for k in all_kernels():
        if k.custom:
            continue
        kernels.setdefault((k.domain, k.op_type), []).append(k.since)

    by_domain: dict[str, list[tuple[str, list[int]]]] = {}
    for (domain, op), versions in sorted(kernels.items()):
        by_domain.setdefault(domain, []).append((op, sorted(versions)))

    lines = ["# Operators", "",
             f"<!-- Generated by `python -m pyflame_rt.tools.gen_docs` from the kernel registry "
             f"and the ONNX {onnx.__version__} operator schemas; do not edit by hand. -->", "",
             "Every operator the CPU execution provider has a kernel for. *Kernel versions* are "
             "the opset versions a kernel is registered at: the runtime picks the highest one "
             "at or below the model's opset, so a kernel registered at 13 also serves opsets "
             "14, 15, ... until the next entry (the op's semantics did not change). *ONNX "
             "versions* are the versions the ONNX standard defines; *types* are the type "
             "constraints of the newest schema a kernel serves, as the ONNX standard states "
             "them (`float` is float32, `double` float64).", "",
             f"{sum(len(v) for v in by_domain.values())} operators in "
             f"{len(by_domain)} domains; [ONNX operators without a kernel](#onnx-operators-"
             "without-a-kernel) are listed at the end. Ops of the `pyflame` domain are made "
             "by the optimizer's fusions: see [fused_ops.md](fused_ops.md) and "
             "[optimizer.md](optimizer.md).", ""]
    for domain in sorted(by_domain, key=lambda d: (d != "", d)):
        title = domain or "ai.onnx (default domain)"
        lines += [f"## {title}", ""]
        if domain in _DOMAIN_SCHEMAS:
            lines += ["| op | kernel versions | ONNX versions | types |", "|---|---|---|---|"]
        else:
            lines += ["| op | kernel versions | summary |", "|---|---|---|"]
        for op, versions in by_domain[domain]:
            kernel_text = ", ".join(str(v) for v in versions)
            if domain not in _DOMAIN_SCHEMAS:
                from ..ops import lookup

                doc = inspect.getdoc(lookup(op, domain).fn) or ""
                summary = " ".join(doc.split("\n\n")[0].split()).replace("|", "\\|")
                lines.append(f"| `{op}` | {kernel_text} | {summary} |")
                continue
            onnx_versions = _onnx_versions(op, domain)
            schema = _schema(op, domain, max(max(onnx_versions or [0]), max(versions)))
            types = "; ".join(
                f"{tc.type_param_str}: {_compact_types(tc.allowed_type_strs)}"
                for tc in schema.type_constraints) if schema is not None else "(no ONNX schema)"
            onnx_text = ", ".join(str(v) for v in onnx_versions) or "-"
            lines.append(f"| `{op}` | {kernel_text} | {onnx_text} | {types} |")
        lines.append("")

    lines += ["## ONNX operators without a kernel", "",
              "Operators the ONNX standard defines (latest versions; deprecated ones excluded) "
              "that this build cannot run yet. A model using one fails at session creation "
              "with `UnsupportedOperatorError`; `pyflame_rt.register_op` can fill the gap "
              "(see [Extending PyFlameRT](Extending_PyFlameRT.md)).", ""]
    missing_any = False
    for domain in _DOMAIN_SCHEMAS:
        missing = sorted(s.name for s in onnx.defs.get_all_schemas()
                         if s.domain == domain and not s.deprecated
                         and (domain, s.name) not in kernels)
        if missing:
            missing_any = True
            lines.append(f"- **{domain or 'ai.onnx'}**: " + ", ".join(f"`{m}`" for m in missing))
    if not missing_any:
        lines.append("None: every operator of these domains has a kernel.")
    return "\n".join(lines).rstrip() + "\n"


def _onnx_versions(op: str, domain: str) -> list[int]:
    import onnx.defs

    versions = sorted({s.since_version for s in onnx.defs.get_all_schemas_with_history()
                       if s.name == op and s.domain == domain})
    return versions


# ==============================================================================================
def default_docs_dir() -> str:
    """``docs/`` of the source checkout this package is installed from (editable install)."""
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "..", "docs"))


GENERATED = {"API_Reference.md": render_api_reference, "operators.md": render_operators}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pyflame_rt.tools.gen_docs",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", default=default_docs_dir(), help="the docs/ folder")
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 when a generated file is out of date")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.docs):
        print(f"error: docs folder {args.docs!r} does not exist; pass --docs", file=sys.stderr)
        return 2
    stale = []
    for name, render in GENERATED.items():
        path = os.path.join(args.docs, name)
        text = render()
        current = None
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                current = fh.read()
        if current == text:
            continue
        if args.check:
            stale.append(name)
        else:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
            print(f"wrote {path}")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python -m pyflame_rt.tools.gen_docs",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
