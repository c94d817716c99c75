"""The exception hierarchy and ONNX Runtime's names for it."""

from __future__ import annotations

import pytest

import pyflame_rt
from pyflame_rt import errors
from pyflame_rt.capi import onnxruntime_pybind11_state as C


@pytest.mark.parametrize("name", errors.__all__)
def test_every_error_is_a_pyflame_error(name):
    assert issubclass(getattr(errors, name), errors.PyFlameRTError)


def test_ort_names_are_the_same_classes():
    assert C.InvalidArgument is errors.InvalidArgumentError
    assert C.Fail is errors.ExecutionError
    assert C.InvalidGraph is errors.InvalidGraphError
    assert C.InvalidProtobuf is errors.InvalidProtobufError
    assert C.NoSuchFile is errors.ModelNotFoundError
    assert C.NotImplemented is errors.NotImplementedFeatureError
    assert pyflame_rt.capi.onnxruntime_pybind11_state is C


def test_specific_errors_are_caught_by_ort_and_builtin_handlers():
    assert issubclass(errors.ValidationError, C.InvalidArgument)
    assert issubclass(errors.MissingInputError, ValueError)
    assert issubclass(errors.UnsupportedOperatorError, C.NotImplemented)
    assert issubclass(errors.UnsupportedOperatorError, NotImplementedError)
    assert issubclass(errors.KernelError, C.Fail)
    assert issubclass(errors.KernelError, RuntimeError)
    assert issubclass(errors.InvalidProtobufError, errors.InvalidModelError)
    assert issubclass(errors.InvalidGraphError, errors.InvalidModelError)
    assert issubclass(errors.ModelNotFoundError, FileNotFoundError)
