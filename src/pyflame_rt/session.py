"""``InferenceSession`` and its options: a drop-in for ``onnxruntime.InferenceSession``.

Build once (load -> optimize -> compile a plan), run many times. Inputs are validated the
way ONNX Runtime validates them, with the same exception types (``ValueError`` for a missing
input, ``InvalidArgument`` for a wrong name, dtype, rank or dim), and messages that also say
how to fix the call.
"""

from __future__ import annotations

import enum
import json
import os
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .backends.base import CompileOptions, available_backends, get_backend
from .errors import (
    InvalidArgumentError,
    MissingInputError,
    ModelNotFoundError,
    ValidationError,
)
from .ir import Graph, Model, clone_graph, clone_model, verify
from .opt import OptLevel, optimize
from .opt.levels import to_opt_level
from .opt.passes.layout import LayoutPass
from .types import (
    DType,
    NodeArg,
    OptionalInfo,
    SequenceInfo,
    TensorInfo,
    ValueType,
    type_string,
)

__all__ = [
    "InferenceSession",
    "SessionOptions",
    "RunOptions",
    "GraphOptimizationLevel",
    "ExecutionMode",
    "ExecutionOrder",
    "ModelMetadata",
    "OrtValue",
    "IOBinding",
    "load_model",
]


class GraphOptimizationLevel(enum.IntEnum):
    """ONNX Runtime's optimization levels (same names and values)."""

    ORT_DISABLE_ALL = 0
    ORT_ENABLE_BASIC = 1
    ORT_ENABLE_EXTENDED = 2
    ORT_ENABLE_LAYOUT = 3
    ORT_ENABLE_ALL = 99


class ExecutionMode(enum.IntEnum):
    """ONNX Runtime's execution modes; nodes run sequentially in both for now."""

    ORT_SEQUENTIAL = 0
    ORT_PARALLEL = 1


class ExecutionOrder(enum.IntEnum):
    """ONNX Runtime's node orderings; PyFlameRT's planner always uses its own order."""

    DEFAULT = 0
    PRIORITY_BASED = 1
    MEMORY_EFFICIENT = 2


class SessionOptions:
    """Session configuration with ONNX Runtime's field names and defaults.

    ``graph_optimization_level`` accepts ``GraphOptimizationLevel.ORT_*`` and ``OptLevel``;
    ``memory_limit`` (bytes, 0 = unlimited) is PyFlameRT's own.
    """

    def __init__(self) -> None:
        self.graph_optimization_level: Any = GraphOptimizationLevel.ORT_ENABLE_ALL
        self.intra_op_num_threads = 0
        self.inter_op_num_threads = 0
        self.execution_mode = ExecutionMode.ORT_SEQUENTIAL
        self.execution_order = ExecutionOrder.DEFAULT
        self.optimized_model_filepath = ""
        self.enable_profiling = False
        self.profile_file_prefix = "onnxruntime_profile_"
        self.log_severity_level = -1
        self.log_verbosity_level = 0
        self.logid = ""
        self.enable_cpu_mem_arena = True
        self.enable_mem_pattern = True
        self.enable_mem_reuse = True
        self.use_deterministic_compute = False
        self.use_per_session_threads = True
        self.memory_limit = 0
        self.disabled_optimizers: list[str] = []
        self._config: dict[str, str] = {}
        self._free_dims_by_name: dict[str, int] = {}
        self._free_dims_by_denotation: dict[str, int] = {}
        self._initializers: dict[str, np.ndarray] = {}

    def add_session_config_entry(self, key: str, value: str) -> None:
        """Set a free-form ``key -> value`` configuration entry (ORT's API)."""
        self._config[str(key)] = str(value)

    def get_session_config_entry(self, key: str) -> str:
        """The value set for ``key``; raises ``InvalidArgument`` when not set (as ORT)."""
        try:
            return self._config[key]
        except KeyError:
            raise InvalidArgumentError(f"session config entry {key!r} is not set") from None

    def add_free_dimension_override_by_name(self, dim_name: str, dim_value: int) -> None:
        """Fix the symbolic dim ``dim_name`` to ``dim_value`` in every graph input."""
        if int(dim_value) < 0:
            raise InvalidArgumentError(f"free dimension {dim_name!r} must be >= 0, got "
                                       f"{dim_value}")
        self._free_dims_by_name[str(dim_name)] = int(dim_value)

    def add_free_dimension_override_by_denotation(self, dim_denotation: str,
                                                  dim_value: int) -> None:
        """Recorded for API compatibility; PyFlameRT's IR does not keep dim denotations."""
        self._free_dims_by_denotation[str(dim_denotation)] = int(dim_value)

    def add_initializer(self, name: str, value: Any) -> None:
        """Replace the initializer ``name`` with ``value`` (an array or ``OrtValue``)."""
        self._initializers[str(name)] = _to_numpy(value)

    @property
    def opt_level(self) -> OptLevel:
        return to_opt_level(self.graph_optimization_level)


class RunOptions:
    """Per-run options (ONNX Runtime's fields). Set ``terminate = True`` from another thread
    to stop a run in progress; it then raises ``RunTerminatedError``."""

    def __init__(self) -> None:
        self.log_severity_level = -1
        self.log_verbosity_level = 0
        self.logid = ""
        self.terminate = False
        self.only_execute_path_to_fetches = False
        self._config: dict[str, str] = {}

    def add_run_config_entry(self, key: str, value: str) -> None:
        self._config[str(key)] = str(value)

    def get_run_config_entry(self, key: str) -> str:
        try:
            return self._config[key]
        except KeyError:
            raise InvalidArgumentError(f"run config entry {key!r} is not set") from None


@dataclass
class ModelMetadata:
    """``InferenceSession.get_modelmeta()``: the fields ONNX Runtime reports."""

    producer_name: str = ""
    graph_name: str = ""
    domain: str = ""
    description: str = ""
    graph_description: str = ""
    version: int = 0
    custom_metadata_map: dict[str, str] = field(default_factory=dict)


class OrtValue:
    """A tensor held for the runtime (ORT's ``OrtValue``, CPU only): wraps a numpy array."""

    def __init__(self, array: Any) -> None:
        self._array = array

    @staticmethod
    def ortvalue_from_numpy(numpy_obj: Any, device_type: str = "cpu", device_id: int = 0
                            ) -> OrtValue:
        """Wrap ``numpy_obj`` (no copy). Only ``device_type='cpu'`` exists here."""
        _check_device(device_type)
        return OrtValue(np.asarray(numpy_obj))

    @staticmethod
    def ortvalue_from_shape_and_type(shape: Sequence[int], element_type: Any = np.float32,
                                     device_type: str = "cpu", device_id: int = 0) -> OrtValue:
        """A new zero-filled tensor of ``shape`` and ``element_type``."""
        _check_device(device_type)
        return OrtValue(np.zeros(tuple(shape), dtype=element_type))

    def numpy(self) -> Any:
        """The value as a numpy array (or list for a sequence)."""
        return self._array

    def shape(self) -> list[int]:
        return list(np.shape(self._array))

    def data_type(self) -> str:
        if isinstance(self._array, list):
            inner = DType.from_numpy(self._array[0].dtype).ort_name if self._array else "float"
            return f"seq(tensor({inner}))"
        return f"tensor({DType.from_numpy(np.asarray(self._array).dtype).ort_name})"

    def element_type(self) -> Any:
        return np.asarray(self._array).dtype.type

    def is_tensor(self) -> bool:
        return isinstance(self._array, np.ndarray)

    def has_value(self) -> bool:
        return self._array is not None

    def device_name(self) -> str:
        return "cpu"

    def __repr__(self) -> str:
        return f"OrtValue({self.data_type()}, shape={self.shape()})"


def _check_device(device_type: str) -> None:
    if str(device_type).lower() != "cpu":
        raise InvalidArgumentError(
            f"device_type {device_type!r} is not available: PyFlameRT runs on the CPU; use "
            "device_type='cpu'")


class IOBinding:
    """ORT's ``IOBinding`` for CPU tensors: bind inputs/outputs once, run, read outputs."""

    def __init__(self, session: InferenceSession) -> None:
        self._session = session
        self._inputs: dict[str, Any] = {}
        self._output_names: list[str] = []
        self._outputs: list[Any] = []

    def bind_cpu_input(self, name: str, arr_on_cpu: Any) -> None:
        self._inputs[name] = arr_on_cpu

    def bind_ortvalue_input(self, name: str, ortvalue: OrtValue) -> None:
        self._inputs[name] = ortvalue.numpy()

    def bind_output(self, name: str, device_type: str = "cpu", device_id: int = 0,
                    element_type: Any = None, shape: Any = None, buffer_ptr: Any = None) -> None:
        _check_device(device_type)
        self._output_names.append(name)

    def bind_ortvalue_output(self, name: str, ortvalue: OrtValue) -> None:
        self._output_names.append(name)

    def clear_binding_inputs(self) -> None:
        self._inputs.clear()

    def clear_binding_outputs(self) -> None:
        self._output_names.clear()

    def copy_outputs_to_cpu(self) -> list[Any]:
        return list(self._outputs)

    def get_outputs(self) -> list[OrtValue]:
        return [OrtValue(o) for o in self._outputs]

    def synchronize_inputs(self) -> None:
        """Nothing to do on the CPU."""

    def synchronize_outputs(self) -> None:
        """Nothing to do on the CPU."""


def _to_numpy(value: Any) -> Any:
    if isinstance(value, OrtValue):
        return value.numpy()
    return value


# -- loading -----------------------------------------------------------------------------------

def load_model(source: Any, *, example_inputs: Any = None, dynamic_shapes: Any = None,
               memory_limit: int | None = None) -> Model:
    """Load ``source`` into a ``Model`` the session can own (and edit).

    ``source`` may be a path to an ``.onnx`` or ``.pfm`` file (recognised by content), the
    bytes of either, an ``onnx.ModelProto``, a ``pyflame_rt.ir.Model`` or a ``Graph`` (both
    copied, so the caller's object is never changed), or a ``torch.nn.Module`` together with
    ``example_inputs`` (and optionally ``dynamic_shapes``, ``torch.export``'s format).
    ``memory_limit`` (bytes) refuses files whose tensors need more, before allocating them.
    """
    from .io.torch import is_torch_module

    if is_torch_module(source):
        if example_inputs is None:
            raise InvalidArgumentError(
                "a torch.nn.Module needs example_inputs=(tensor, ...) in forward() order to "
                "be converted; pass InferenceSession(module, example_inputs=...)")
        from .io.torch import from_torch

        return from_torch(source, example_inputs, dynamic_shapes=dynamic_shapes)
    if isinstance(source, Model):
        return clone_model(source)
    if isinstance(source, Graph):
        return Model(graph=clone_graph(source))
    from .io.onnx import from_onnx, load_onnx
    from .io.pfm import is_pfm, load_pfm, loads_pfm

    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if is_pfm(data):
            return loads_pfm(data, memory_limit=memory_limit)
        return load_onnx(data, memory_limit=memory_limit)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise ModelNotFoundError(f"model file {path!r} does not exist; check the path")
        if os.path.isfile(path) and is_pfm(path):
            return load_pfm(path, memory_limit=memory_limit)
        return load_onnx(path, memory_limit=memory_limit)
    proto_type = type(source).__name__
    if proto_type == "ModelProto":
        return from_onnx(source, memory_limit=memory_limit)
    raise InvalidArgumentError(
        f"cannot load a model from a {type(source).__name__}; pass a file path, bytes, an "
        "onnx.ModelProto, or a pyflame_rt Model/Graph")


# -- the session ---------------------------------------------------------------------------------

class InferenceSession:
    """Load, optimize and compile a model once; run it many times.

    Args:
        path_or_bytes: Model path (``.onnx``/``.pfm``), bytes, ``onnx.ModelProto``,
            ``pyflame_rt.ir.Model`` or ``Graph``, or a ``torch.nn.Module`` (then
            ``example_inputs`` is required and ``dynamic_shapes`` optional).
        sess_options: A ``SessionOptions``.
        providers: Execution providers in priority order (names or ``(name, options)``);
            providers this build does not have are skipped with a warning, as ORT does.
        provider_options: Per-provider option dicts (accepted for compatibility).
        disabled_optimizers: (keyword, as in ONNX Runtime) pass or rule names to switch off
            for this session, added to ``sess_options.disabled_optimizers``; see
            ``pyflame_rt.opt.available_optimizers()`` (the session's layout pass is
            ``"nchwc_layout"``).

    Example:
        >>> sess = InferenceSession("model.onnx")
        >>> out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    """

    def __init__(self, path_or_bytes: Any, sess_options: SessionOptions | None = None,
                 providers: Sequence[Any] | None = None,
                 provider_options: Sequence[dict] | None = None, *,
                 example_inputs: Any = None, dynamic_shapes: Any = None,
                 **kwargs: Any) -> None:
        self._options = sess_options if sess_options is not None else SessionOptions()
        if not isinstance(self._options, SessionOptions):
            raise InvalidArgumentError(
                f"sess_options must be a pyflame_rt.SessionOptions, got "
                f"{type(self._options).__name__}")
        self._model_path = path_or_bytes if isinstance(path_or_bytes, (str, os.PathLike)) \
            else None
        unknown = sorted(set(kwargs) - {"disabled_optimizers"})
        if unknown:
            raise InvalidArgumentError(
                f"InferenceSession got unexpected keyword argument(s) {unknown}; it accepts "
                "sess_options, providers, provider_options, disabled_optimizers, "
                "example_inputs and dynamic_shapes")
        # Merged here, never written back: the caller's SessionOptions stay as given.
        self._disabled_optimizers = [*self._options.disabled_optimizers,
                                     *(kwargs.get("disabled_optimizers") or ())]
        build_start = time.perf_counter()
        self._providers, self._provider_options = _select_providers(providers, provider_options)
        model = load_model(path_or_bytes, example_inputs=example_inputs,
                           dynamic_shapes=dynamic_shapes,
                           memory_limit=int(self._options.memory_limit or 0) or None)
        self._model = model
        graph = model.graph
        if model.ir_version < 4:
            # IR < 4 lists every initializer as an input; they are constants, not
            # overridable inputs (ONNX Runtime reports none of them either).
            for v in [v for v in graph.inputs if v.const_value is not None]:
                graph.unlist_initializer_input(v)
        self._apply_options_to_graph(graph)
        verify(graph)
        # The interface is what the user's model declares, before any optimization.
        self._inputs = [v for v in graph.inputs if v.const_value is None]
        self._overridable = [v for v in graph.inputs if v.const_value is not None]
        self._input_meta = [NodeArg.from_value_type(v.name, v.type) for v in self._inputs]
        self._output_meta = [NodeArg.from_value_type(v.name, v.type) for v in graph.outputs]
        self._overridable_meta = [NodeArg.from_value_type(v.name, v.type)
                                  for v in self._overridable]
        self._input_types = {v.name: v.type for v in graph.inputs}
        self._dim_bounds = _dim_bounds(model)
        self._required = [v.name for v in self._inputs]
        self._output_names = [v.name for v in graph.outputs]
        compile_options = CompileOptions(
            intra_op_num_threads=int(self._options.intra_op_num_threads or 0),
            memory_limit=int(self._options.memory_limit or 0),
            enable_profiling=bool(self._options.enable_profiling),
            config=dict(self._options._config))
        backend_cls = get_backend(self._providers[0])
        self._backend = backend_cls()
        self._backend.initialize(compile_options)
        # The layout pass belongs to the backend's choice of layout: opt never imports
        # backends, so the session hands it the backend's block size.
        layout = LayoutPass(self._backend.layout_block(compile_options))
        self.optimization_report = optimize(
            graph, self._options.opt_level, ir_version=model.ir_version,
            disabled_optimizers=self._disabled_optimizers, extra_passes=[layout])[1]
        if self._options.optimized_model_filepath:
            self._save_optimized(self._options.optimized_model_filepath)
        self._plan = self._backend.compile(graph, compile_options)
        self.build_seconds = time.perf_counter() - build_start
        self._profile_start_ns = time.perf_counter_ns()
        self._profile_wall_start_us = time.time() * 1e6
        self._run_events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    # -- building ---------------------------------------------------------------------------
    def _apply_options_to_graph(self, graph: Graph) -> None:
        overrides = self._options._free_dims_by_name
        if overrides:
            for v in graph.inputs:
                if isinstance(v.type, TensorInfo) and v.type.shape is not None:
                    shape = tuple(overrides.get(d, d) if isinstance(d, str) else d
                                  for d in v.type.shape)
                    v.type = TensorInfo(v.type.dtype, shape)
        for name, array in self._options._initializers.items():
            init = graph.initializers.get(name)
            if init is None:
                raise InvalidArgumentError(
                    f"SessionOptions.add_initializer: the model has no initializer {name!r}")
            init.const_value = np.asarray(array)

    def _save_optimized(self, path: str) -> None:
        from .io.onnx import save_onnx
        from .io.pfm import save_pfm

        if str(path).lower().endswith(".pfm"):
            save_pfm(self._model, path)
        else:
            save_onnx(self._model, path)

    # -- introspection (ORT's API) ----------------------------------------------------------
    def get_inputs(self) -> list[NodeArg]:
        """The model's inputs (initializers excluded), as ``NodeArg``."""
        return list(self._input_meta)

    def get_outputs(self) -> list[NodeArg]:
        """The model's outputs, as ``NodeArg``."""
        return list(self._output_meta)

    def get_overridable_initializers(self) -> list[NodeArg]:
        """Initializers that are also graph inputs, so a feed may replace them."""
        return list(self._overridable_meta)

    def get_modelmeta(self) -> ModelMetadata:
        m = self._model
        return ModelMetadata(
            producer_name=m.producer_name, graph_name=m.graph.name, domain=m.domain,
            description=m.doc_string, graph_description=m.graph.doc_string,
            version=m.model_version, custom_metadata_map=dict(m.metadata_props))

    def get_providers(self) -> list[str]:
        return list(self._providers)

    def get_provider_options(self) -> dict[str, dict[str, str]]:
        return {p: dict(o) for p, o in zip(self._providers, self._provider_options)}

    def get_session_options(self) -> SessionOptions:
        return self._options

    def get_profiling_start_time_ns(self) -> int:
        return int(self._profile_wall_start_us * 1000)

    def set_providers(self, providers: Sequence[Any] | None = None,
                      provider_options: Sequence[dict] | None = None) -> None:
        """Accepted for compatibility; the CPU provider stays in use."""
        self._providers, self._provider_options = _select_providers(providers, provider_options)

    def disable_fallback(self) -> None:
        """Accepted for compatibility (there is no fallback to disable)."""

    def enable_fallback(self) -> None:
        """Accepted for compatibility."""

    @property
    def graph(self) -> Graph:
        """The optimized graph the plan runs (read it, do not edit it)."""
        return self._model.graph

    # -- running ----------------------------------------------------------------------------
    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, Any],
            run_options: RunOptions | None = None) -> list[Any]:
        """Run the model.

        Args:
            output_names: Outputs to return, in this order (``None`` or ``[]`` = all).
            input_feed: Input name -> numpy array (or ``OrtValue``).
            run_options: Optional ``RunOptions``.

        Returns:
            A list of numpy arrays, one per requested output.

        Raises:
            ValueError: (``MissingInputError``) a required input is missing.
            InvalidArgument: (``ValidationError``) unknown input name, wrong dtype, rank or dim,
                or unknown output name.
            Fail: (``ExecutionError``) a kernel failed; the message names the node.
        """
        feeds = self._validate(input_feed)
        fetches = self._check_output_names(output_names)
        start = time.perf_counter_ns()
        outputs = self._backend.execute(self._plan, feeds, fetches, run_options)
        if self._options.enable_profiling:
            self._record_run(start, time.perf_counter_ns() - start)
        return outputs

    def run_with_ort_values(self, output_names: Sequence[str] | None,
                            input_dict_ort_values: Mapping[str, OrtValue],
                            run_options: RunOptions | None = None) -> list[OrtValue]:
        """Like ``run`` with ``OrtValue`` inputs and outputs."""
        feeds = {k: _to_numpy(v) for k, v in input_dict_ort_values.items()}
        return [OrtValue(o) for o in self.run(output_names, feeds, run_options)]

    def io_binding(self) -> IOBinding:
        return IOBinding(self)

    def run_with_iobinding(self, iobinding: IOBinding, run_options: RunOptions | None = None
                           ) -> None:
        names = iobinding._output_names or None
        iobinding._outputs = self.run(names, iobinding._inputs, run_options)

    def end_profiling(self) -> str:
        """Write the Chrome-trace profile (ORT's event layout) and return its file name.

        Returns an empty string when profiling is off, as ONNX Runtime does.
        """
        if not self._options.enable_profiling:
            return ""
        micros = time.time_ns() // 1000 % 1_000_000
        stamp = f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{micros:06d}"
        path = f"{self._options.profile_file_prefix}{stamp}.json"
        events = self._profile_events()
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(events, fh)
        self._plan.profile_events.clear()
        self._run_events.clear()
        return path

    # -- helpers ----------------------------------------------------------------------------
    def _ts(self, ns: int) -> int:
        return max(0, (ns - self._profile_start_ns) // 1000)

    def _record_run(self, start: int, dur: int) -> None:
        with self._lock:
            self._run_events.append({
                "cat": "Session", "pid": os.getpid(), "tid": threading.get_ident(),
                "dur": dur // 1000, "ts": self._ts(start), "ph": "X", "name": "model_run",
                "args": {}})

    def _profile_events(self) -> list[dict[str, Any]]:
        pid = os.getpid()
        events = list(self._run_events)
        for ev in self._plan.profile_events:
            events.append({
                "cat": "Node", "pid": pid, "tid": ev.thread_id, "dur": ev.dur_ns // 1000,
                "ts": self._ts(ev.start_ns), "ph": "X", "name": f"{ev.name}_kernel_time",
                "args": {"op_name": ev.op_type, "provider": self._providers[0],
                         "input_type_shape": [{"shape": s} for s in ev.input_shapes],
                         "output_type_shape": [{"shape": s} for s in ev.output_shapes]}})
            if ev.parent:  # an If/Loop/Scan body's node: which control-flow node ran it
                events[-1]["args"]["parent_node"] = ev.parent
        events.sort(key=lambda e: e["ts"])
        return events

    def _check_output_names(self, output_names: Sequence[str] | None) -> list[str] | None:
        if not output_names:
            return None
        if isinstance(output_names, str):
            raise InvalidArgumentError(
                f"output_names must be a list of names, not the string {output_names!r}; "
                f"write [{output_names!r}]")
        for name in output_names:
            if name not in self._output_names:
                raise InvalidArgumentError(
                    f"Invalid output name: {name}. The model's outputs are "
                    f"{self._output_names}")
        return list(output_names)

    def _validate(self, input_feed: Mapping[str, Any]) -> dict[str, Any]:
        """Check every feed against the model's inputs (ORT's checks and exception types)."""
        if not isinstance(input_feed, Mapping):
            raise InvalidArgumentError(
                f"input_feed must be a dict of input name -> numpy array, got "
                f"{type(input_feed).__name__}")
        missing = [n for n in self._required if n not in input_feed]
        if missing:
            raise MissingInputError(
                f"Required inputs ({missing}) are missing from input feed "
                f"({list(input_feed)}). Feed every input listed by get_inputs().")
        feeds: dict[str, Any] = {}
        for name, value in input_feed.items():
            vtype = self._input_types.get(name)
            if name not in self._input_types:
                raise ValidationError(
                    f"Invalid input name: {name}. The model's inputs are {self._required}"
                    + (f" (overridable initializers: {[v.name for v in self._overridable]})"
                       if self._overridable else ""))
            feeds[name] = _check_value(name, _to_numpy(value), vtype)
            if self._dim_bounds and isinstance(vtype, TensorInfo):
                _check_dim_bounds(name, feeds[name], vtype, self._dim_bounds)
        return feeds


def _select_providers(providers: Sequence[Any] | None,
                      provider_options: Sequence[dict] | None) -> tuple[list[str], list[dict]]:
    available = available_backends()
    if not providers:
        return [available[0]], [{}]
    chosen: list[str] = []
    options: list[dict] = []
    for i, entry in enumerate(providers):
        name, opts = (entry if isinstance(entry, tuple) else (entry, {}))
        if provider_options is not None and i < len(provider_options):
            opts = provider_options[i]
        if name in available:
            chosen.append(name)
            options.append(dict(opts or {}))
        else:
            warnings.warn(
                f"Specified provider {name!r} is not in available provider names "
                f"{available}; PyFlameRT skips it.", RuntimeWarning, stacklevel=3)
    if not chosen:
        chosen, options = [available[0]], [{}]
    return chosen, options


def _check_value(name: str, value: Any, vtype: ValueType | None) -> Any:
    """Validate one feed against the declared input type; returns the value to run with.

    The value returned is a plain, native-byte-order ``np.ndarray`` with real memory behind
    every element (broadcast views are materialized), so kernels never see array subclasses,
    big-endian data or zero strides.
    """
    if isinstance(vtype, SequenceInfo):
        if not isinstance(value, (list, tuple)):
            raise ValidationError(
                f"input {name!r} is a {type_string(vtype)}: feed a list of numpy arrays, not "
                f"a {type(value).__name__}")
        return [_check_value(f"{name}[{i}]", v, vtype.elem) for i, v in enumerate(value)]
    if isinstance(vtype, OptionalInfo):
        return None if value is None else _check_value(name, value, vtype.elem)
    if not isinstance(vtype, TensorInfo):
        return value  # maps and untyped inputs are passed as given
    expected = vtype.dtype
    if not isinstance(value, np.ndarray):
        if isinstance(value, (list, tuple, int, float, bool, np.generic)):
            value = _from_python(name, value, vtype)
        else:
            raise ValidationError(
                f"input {name!r} must be a numpy array, got {type(value).__name__}")
    elif type(value) is not np.ndarray:
        # Subclasses change what operators mean (np.matrix: * is a matrix product) or carry
        # state kernels ignore (masked arrays): run on the plain data, as ONNX Runtime does.
        value = np.asarray(value)
    actual_dtype = _dtype_of(value)
    if actual_dtype is not expected:
        actual = f"tensor({actual_dtype.ort_name})" if actual_dtype else f"{value.dtype}"
        raise ValidationError(
            f"Unexpected input data type for input {name!r}. Actual: ({actual}) , expected: "
            f"({type_string(vtype)}). Convert it, e.g. x.astype(np.{expected.numpy.name})")
    shape = vtype.shape
    if shape is not None:
        if value.ndim != len(shape):
            raise ValidationError(
                f"Invalid rank for input: {name} Got: {value.ndim} Expected: {len(shape)} "
                f"(expected shape {_fmt_shape(shape)}, got {list(value.shape)}). Please fix "
                "either the inputs or the model.")
        bad = [(i, got, want) for i, (got, want) in enumerate(zip(value.shape, shape))
               if isinstance(want, int) and got != want]
        if bad:
            details = "; ".join(f"index: {i} Got: {g} Expected: {w}" for i, g, w in bad)
            raise ValidationError(
                f"Got invalid dimensions for input: {name} for the following indices: "
                f"{details} (expected shape {_fmt_shape(shape)}, got {list(value.shape)}). "
                "Please fix either the inputs or the model.")
    if expected is DType.STRING and value.dtype != object:
        value = value.astype(object)
    elif not value.dtype.isnative:
        value = value.astype(value.dtype.newbyteorder("="))  # kernels assume native order
    if value.size > 1 and 0 in value.strides:
        # A broadcast view (np.broadcast_to) can claim terabytes over one element; kernels
        # and outputs would materialize it anyway, so do it here where a failure is clear.
        try:
            value = np.ascontiguousarray(value)
        except MemoryError:
            raise ValidationError(
                f"input {name!r} is a broadcast view of shape {list(value.shape)} whose "
                f"{value.nbytes} bytes cannot be allocated; feed a smaller array") from None
    return value


def _dim_bounds(model: Model) -> dict[str, tuple[int | None, int | None]]:
    """The ``torch.export.Dim(min=, max=)`` bounds a converted model carries (else none)."""
    from .io.torch import DIM_BOUNDS_KEY, parse_dim_bounds

    text = model.metadata_props.get(DIM_BOUNDS_KEY)
    return parse_dim_bounds(text) if text else {}


def _check_dim_bounds(name: str, value: np.ndarray, vtype: TensorInfo,
                      bounds: Mapping[str, tuple[int | None, int | None]]) -> None:
    """A symbolic dim with bounds must be within them: the model was converted (and checked
    by torch.export) only for those sizes."""
    for axis, dim in enumerate(vtype.shape or ()):
        if not isinstance(dim, str) or dim not in bounds or axis >= value.ndim:
            continue
        low, high = bounds[dim]
        size = value.shape[axis]
        if (low is not None and size < low) or (high is not None and size > high):
            span = f"{'-inf' if low is None else low}..{'inf' if high is None else high}"
            raise ValidationError(
                f"input {name!r} has {dim!r} = {size} (dim {axis} of shape "
                f"{list(value.shape)}), outside {span}, the range given for it with "
                f"torch.export.Dim({dim!r}, min=..., max=...) when the model was converted. "
                "Feed a size within it, or convert the model again with wider bounds")


def _from_python(name: str, value: Any, vtype: TensorInfo) -> np.ndarray:
    """A list, tuple or scalar feed as an array of the input's element type (ORT does too)."""
    expected = vtype.dtype
    try:
        return np.asarray(value, dtype=expected.numpy if expected is not DType.STRING
                          else object)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValidationError(
            f"Could not create tensor from given input list for input {name!r} "
            f"({type_string(vtype)}): {str(exc).rstrip('.')}. Feed a numpy array of "
            f"{'strings' if expected is DType.STRING else expected.numpy.name}") from None


def _dtype_of(value: np.ndarray) -> DType | None:
    try:
        return DType.from_numpy(value.dtype)
    except ValueError:
        return None


def _fmt_shape(shape: tuple) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"

