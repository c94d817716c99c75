"""Shared helpers of the command-line tools: loading models, building feeds, progress bars.

Everything a user can get wrong here raises :class:`~pyflame_rt.errors.InvalidArgumentError`
(or the loader's own error) with a message that says how to fix the call; the command line
prints it as one ``error: ...`` line.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError, ModelNotFoundError
from ..ir import Graph, Model
from ..types import DType

__all__ = [
    "LEVELS",
    "ORT_LEVELS",
    "graph_inputs_as_args",
    "load_feeds",
    "load_model_file",
    "load_onnx_proto",
    "load_plugin",
    "make_feeds",
    "model_format",
    "parse_shapes",
    "peak_rss_bytes",
    "progress",
    "random_feeds",
    "save_model_file",
]

#: Optimization level names the commands accept (``--level``).
LEVELS = ("none", "basic", "extended", "all")

#: The same levels under ONNX Runtime's names, for sessions run side by side.
ORT_LEVELS = {"none": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
              "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}

_MODEL_EXTENSIONS = (".onnx", ".pfm")


# -- models ------------------------------------------------------------------------------------
def model_format(path: str) -> str:
    """``"pfm"`` or ``"onnx"``, recognised by content (the extension does not matter)."""
    from ..io.pfm import is_pfm

    return "pfm" if is_pfm(path) else "onnx"


def load_model_file(path: str) -> Model:
    """Load an ``.onnx`` or ``.pfm`` file into a :class:`~pyflame_rt.ir.Model`."""
    from ..session import load_model

    if not os.path.exists(path):
        raise ModelNotFoundError(f"model file {path!r} does not exist; check the path")
    if os.path.isdir(path):
        raise InvalidArgumentError(f"{path!r} is a directory; give the path of an .onnx or "
                                   ".pfm model file")
    return load_model(path)


def load_onnx_proto(path: str) -> Any:
    """The model as an ``onnx.ModelProto`` (converted through our IR when it is a ``.pfm``).

    For an ONNX file the original protobuf is returned untouched (external data loaded), so
    tools that check PyFlameRT against ONNX Runtime never feed ORT our own re-export.
    """
    import onnx

    if model_format(path) == "pfm":
        from ..io.onnx import to_onnx

        return to_onnx(load_model_file(path))
    load_model_file(path)  # same checks and messages as every other command
    return onnx.load(path)


def save_model_file(model: Model, path: str) -> str:
    """Save ``model`` as ``.pfm`` or ONNX, chosen by the extension; returns the format."""
    from ..io.onnx import save_onnx
    from ..io.pfm import save_pfm

    ext = os.path.splitext(path)[1].lower()
    if ext not in _MODEL_EXTENSIONS:
        raise InvalidArgumentError(
            f"cannot tell the output format from {path!r}: name it *.onnx or *.pfm")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InvalidArgumentError(f"output folder {folder!r} does not exist; create it first")
    if ext == ".pfm":
        save_pfm(model, path)
        return "pfm"
    save_onnx(model, path)
    return "onnx"


def load_plugin(spec: str) -> None:
    """Import a Python file or module that registers custom ops, rules or backends.

    ``spec`` is a path to a ``.py`` file or a dotted module name; its top-level code runs once
    (e.g. calls to :func:`pyflame_rt.register_op`).
    """
    if spec.endswith(".py") or os.path.sep in spec:
        if not os.path.isfile(spec):
            raise InvalidArgumentError(f"plugin file {spec!r} does not exist")
        name = "pyflame_rt_plugin_" + os.path.splitext(os.path.basename(spec))[0]
        loader_spec = importlib.util.spec_from_file_location(name, spec)
        if loader_spec is None or loader_spec.loader is None:
            raise InvalidArgumentError(f"cannot import plugin file {spec!r}")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module
        loader_spec.loader.exec_module(module)
        return
    try:
        importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        raise InvalidArgumentError(f"plugin module {spec!r} cannot be imported ({exc}); give "
                                   "a .py file or a module on PYTHONPATH") from None


# -- feeds -------------------------------------------------------------------------------------
def parse_shapes(spec: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """Parse ``--shapes`` items ``NAME:1x3x224x224`` (``NAME:`` alone is a scalar)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for item in spec:
        for part in item.split(","):
            name, sep, dims = part.strip().rpartition(":")
            if not sep or not name:
                raise InvalidArgumentError(f"--shapes {part!r}: write NAME:DIMS, e.g. "
                                           "image:8x1x32x32")
            try:
                shapes[name] = tuple(int(d) for d in dims.lower().split("x")) if dims else ()
            except ValueError:
                raise InvalidArgumentError(f"--shapes {part!r}: dims must be integers "
                                           "separated by x, e.g. 1x3x224x224") from None
            if any(d < 0 for d in shapes[name]):
                raise InvalidArgumentError(f"--shapes {part!r}: dims must be >= 0")
    return shapes


def load_feeds(items: Iterable[str]) -> dict[str, np.ndarray]:
    """Read ``--input`` items: ``NAME=FILE.npy``, or a ``FILE.npz`` holding several inputs."""
    feeds: dict[str, np.ndarray] = {}
    for item in items:
        name, sep, file = item.partition("=")
        if not sep:
            if not item.endswith(".npz"):
                raise InvalidArgumentError(f"--input {item!r}: write NAME=FILE.npy or FILE.npz")
            file = item
        if not os.path.isfile(file):
            raise InvalidArgumentError(f"--input {item!r}: file {file!r} does not exist")
        try:
            data = np.load(file, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InvalidArgumentError(f"--input {item!r}: {file!r} is not a .npy/.npz file "
                                       f"({exc})") from None
        if isinstance(data, np.ndarray):
            if not sep:
                raise InvalidArgumentError(f"--input {item!r}: a .npy holds one array; write "
                                           "NAME=FILE.npy")
            feeds[name] = data
        else:
            with data:
                if sep:
                    if name not in data.files:
                        raise InvalidArgumentError(
                            f"--input {item!r}: {file!r} has no array {name!r} (it has "
                            f"{data.files})")
                    feeds[name] = data[name]
                else:
                    feeds.update({k: data[k] for k in data.files})
    return feeds


def random_feeds(inputs: Sequence[Any], shapes: Mapping[str, tuple[int, ...]] | None = None,
                 seed: int = 0, notes: list[str] | None = None) -> dict[str, np.ndarray]:
    """Random data for ``inputs`` (``NodeArg``-like: ``.name``, ``.type``, ``.shape``).

    Free (symbolic or unknown) dims are 1 unless ``shapes`` fixes them; each such choice is
    appended to ``notes`` so the command can say what it assumed.
    """
    shapes = dict(shapes or {})
    rng = np.random.default_rng(seed)
    by_type = {f"tensor({d.ort_name})": d for d in DType}
    feeds: dict[str, np.ndarray] = {}
    for arg in inputs:
        if arg.name in shapes:
            shape = shapes.pop(arg.name)
            if len(shape) != len(arg.shape) and arg.shape:
                raise InvalidArgumentError(
                    f"--shapes {arg.name}: rank {len(shape)} but the model's input has shape "
                    f"{arg.shape}")
        else:
            free = [d for d in arg.shape if not isinstance(d, int)]
            if free and notes is not None:
                notes.append(f"input {arg.name!r} has free dims {free}: using 1 (set them with "
                             f"--shapes {arg.name}:...)")
            shape = tuple(d if isinstance(d, int) else 1 for d in arg.shape)
        dtype = by_type.get(arg.type)
        if dtype is None:
            raise InvalidArgumentError(f"cannot make random data for input {arg.name!r} of "
                                       f"type {arg.type}; pass it with --input")
        if dtype.is_float:
            feeds[arg.name] = rng.standard_normal(shape).astype(dtype.numpy)
        elif dtype is DType.BOOL:
            feeds[arg.name] = rng.integers(0, 2, shape).astype(bool)
        elif dtype is DType.STRING:
            feeds[arg.name] = np.full(shape, "a", dtype=object)
        else:
            # Small non-negative integers are valid indices and ids for most models.
            feeds[arg.name] = rng.integers(0, 8, shape).astype(dtype.numpy)
    if shapes:
        known = [a.name for a in inputs]
        raise InvalidArgumentError(f"--shapes names unknown input(s) {sorted(shapes)}; the "
                                   f"model's inputs are {known}")
    return feeds


def make_feeds(inputs: Sequence[Any], input_items: Iterable[str] = (),
               shape_items: Iterable[str] = (), seed: int = 0,
               notes: list[str] | None = None) -> dict[str, np.ndarray]:
    """Feeds for a model: ``--input`` files first, random data for every other input."""
    feeds = load_feeds(input_items)
    known = {a.name for a in inputs}
    unknown = sorted(set(feeds) - known)
    if unknown:
        raise InvalidArgumentError(f"--input names unknown input(s) {unknown}; the model's "
                                   f"inputs are {sorted(known)}")
    missing = [a for a in inputs if a.name not in feeds]
    shapes = parse_shapes(shape_items)
    for name in list(shapes):
        if name in feeds:
            raise InvalidArgumentError(f"--shapes {name}: that input is read from a file")
    feeds.update(random_feeds(missing, shapes, seed=seed, notes=notes))
    return {a.name: feeds[a.name] for a in inputs}


def graph_inputs_as_args(graph: Graph) -> list[Any]:
    """The real inputs of ``graph`` as ``NodeArg`` (what ``session.get_inputs()`` returns)."""
    from ..types import NodeArg

    return [NodeArg.from_value_type(v.name, v.type) for v in graph.inputs
            if v.const_value is None]


# -- the process -------------------------------------------------------------------------------
def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far, in bytes (see :mod:`.rss`)."""
    from .rss import peak_rss_bytes as peak

    return peak()


def progress(iterable: Iterable[Any] | None = None, *, total: int | None = None,
             desc: str = "", unit: str = "it", leave: bool = False) -> Iterator[Any]:
    """A tqdm progress bar on stderr, shown only when stderr is a terminal.

    ``PYFLAME_RT_PROGRESS=1`` forces it on, ``0`` off.
    """
    from tqdm import tqdm

    forced = os.environ.get("PYFLAME_RT_PROGRESS")
    disable: bool | None = None if forced is None else forced in ("0", "", "false")
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, disable=disable,
                file=sys.stderr, dynamic_ncols=True)
