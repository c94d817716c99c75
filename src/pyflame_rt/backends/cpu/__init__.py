"""The CPU execution provider: kernels by category plus the planner/executor.

Importing this package registers every CPU kernel.
"""

from __future__ import annotations

import importlib
import importlib.util

from .provider import CPUExecutionProvider

__all__ = ["KERNEL_MODULES", "CPUExecutionProvider"]

#: Kernel modules, by category; each registers its kernels on import.
KERNEL_MODULES = (
    "math", "activation", "reduction", "tensor", "indexing", "linalg", "nn", "pooling",
    "normalization", "control_flow", "fused", "fused_extra", "attention", "loss", "image",
    "signal", "quantization", "sequence", "string", "rnn", "random", "ml", "training",
    "conv.nchwc", "blocked",
)

for _name in KERNEL_MODULES:
    # TEMPORARY while the kernel modules are being written in parallel: skip absent ones.
    if importlib.util.find_spec(f"{__name__}.{_name}") is not None:
        importlib.import_module(f"{__name__}.{_name}")
