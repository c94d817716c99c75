"""ONNX Runtime's ``capi`` namespace, so ``ort.capi.onnxruntime_pybind11_state.X`` resolves."""

from __future__ import annotations

from . import onnxruntime_pybind11_state

__all__ = ["onnxruntime_pybind11_state"]
