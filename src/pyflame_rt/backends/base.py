"""The ``Backend`` (execution provider) interface: the seam for new hardware.

A backend decides which nodes it can run (``supports_op``), turns a graph into a ``Plan``
once (``compile``: kernels chosen, constants packed, buffers planned), and then executes that
plan many times (``execute``). A Cerebras or GPU backend implements the same five methods.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..ir import Graph, Node

__all__ = ["Backend", "Plan", "CompileOptions", "MemoryInfo", "available_backends",
           "register_backend", "get_backend"]


@dataclass
class CompileOptions:
    """What a backend needs to know when compiling.

    Attributes:
        intra_op_num_threads: Threads for one kernel (0 = backend default).
        memory_limit: Bytes a plan may hold (0 = unlimited).
        enable_profiling: Record per-node timings.
        config: Free-form ``add_session_config_entry`` pairs.
    """

    intra_op_num_threads: int = 0
    memory_limit: int = 0
    enable_profiling: bool = False
    config: dict[str, str] = field(default_factory=dict)


@dataclass
class MemoryInfo:
    """Memory accounting of a backend: bytes held by constants and the peak seen in runs."""

    constant_bytes: int = 0
    peak_activation_bytes: int = 0


class Plan(abc.ABC):
    """A compiled, runnable form of a graph for one backend."""

    @abc.abstractmethod
    def run(self, feeds: Mapping[str, Any], fetches: Sequence[str] | None = None,
            run_options: Any = None) -> list[Any]:
        """Execute with ``feeds`` (graph input name -> array) and return the fetched outputs."""


class Backend(abc.ABC):
    """An execution provider.

    Lifecycle: ``initialize(options)`` once, ``compile`` per graph, ``execute`` per run,
    ``shutdown()`` when the session closes.
    """

    #: ORT-style provider name, e.g. ``CPUExecutionProvider``.
    name: str = ""

    def initialize(self, options: CompileOptions) -> None:
        """Acquire resources (thread pools, device handles)."""

    def shutdown(self) -> None:
        """Release resources; the backend may be initialized again later."""

    @abc.abstractmethod
    def supports_op(self, node: Node, opset: int) -> bool:
        """Whether this backend has a kernel for ``node`` at ``opset``."""

    @abc.abstractmethod
    def compile(self, graph: Graph, options: CompileOptions) -> Plan:
        """Turn ``graph`` into a runnable plan (raises for unsupported ops)."""

    def execute(self, plan: Plan, feeds: Mapping[str, Any], fetches: Sequence[str] | None = None,
                run_options: Any = None) -> list[Any]:
        """Run a compiled plan."""
        return plan.run(feeds, fetches, run_options)

    def layout_block(self, options: CompileOptions) -> int:
        """Channel block of the blocked (NCHWc) layout this backend's convolutions run
        fastest in, for the optimizer's layout pass; 0 (the default): keep NCHW."""
        return 0

    def memory_info(self) -> MemoryInfo:
        """Bytes the backend holds for constants and the peak activation bytes seen."""
        return MemoryInfo()


_BACKENDS: dict[str, type[Backend]] = {}


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Class decorator making a backend selectable by its ``name`` in ``providers=[...]``."""
    _BACKENDS[cls.name] = cls
    return cls


def available_backends() -> list[str]:
    """Names of the registered backends (ORT: ``get_available_providers()``)."""
    return list(_BACKENDS)


def get_backend(name: str) -> type[Backend]:
    """The backend class registered as ``name``."""
    return _BACKENDS[name]
