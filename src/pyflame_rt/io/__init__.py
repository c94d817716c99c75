"""Model importers and exporters: ONNX (``onnx.py``), and later ``.pfm``, PyTorch, TorchScript."""

from __future__ import annotations

from .onnx import from_onnx, load_onnx, save_onnx, to_onnx

__all__ = ["from_onnx", "load_onnx", "save_onnx", "to_onnx"]
