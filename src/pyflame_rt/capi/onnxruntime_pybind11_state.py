"""PyFlameRT's exceptions under ONNX Runtime's names.

Scripts written for ONNX Runtime catch ``InvalidArgument``, ``Fail``, ``InvalidGraph``,
``InvalidProtobuf``, ``NoSuchFile`` and ``NotImplemented`` from this module; these are the
very classes PyFlameRT raises (aliases, not copies), so ``except`` clauses keep working.
"""

from __future__ import annotations

from ..errors import (
    ExecutionError,
    InvalidArgumentError,
    InvalidGraphError,
    InvalidProtobufError,
    ModelNotFoundError,
    NotImplementedFeatureError,
    PyFlameRTError,
)

__all__ = [
    "InvalidArgument",
    "Fail",
    "InvalidGraph",
    "InvalidProtobuf",
    "NoSuchFile",
    "NotImplemented",
    "RuntimeException",
    "EPFail",
]

InvalidArgument = InvalidArgumentError
Fail = ExecutionError
InvalidGraph = InvalidGraphError
InvalidProtobuf = InvalidProtobufError
NoSuchFile = ModelNotFoundError
NotImplemented = NotImplementedFeatureError  # noqa: A001 - ONNX Runtime's name
RuntimeException = PyFlameRTError
EPFail = ExecutionError
