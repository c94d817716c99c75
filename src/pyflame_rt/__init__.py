"""PyFlameRT: an ONNX Runtime-compatible inference runtime written in Python."""

from __future__ import annotations

__version__ = "0.1.0"
