"""Operator registry and the public custom-op API."""

from __future__ import annotations

from .registry import (
    KernelContext,
    KernelDef,
    SpecializeContext,
    all_kernels,
    kernel,
    lookup,
    register_op,
    registered_ops,
    unregister_op,
)

__all__ = [
    "KernelContext",
    "KernelDef",
    "SpecializeContext",
    "all_kernels",
    "kernel",
    "lookup",
    "register_op",
    "registered_ops",
    "unregister_op",
]
