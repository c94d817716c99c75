"""Helpers shared by the PyTorch importer tests: run a converted model, compare with eager."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.utils._pytree as pytree

import pyflame_rt

RTOL, ATOL = 1e-4, 1e-5


def session(model: pyflame_rt.Model, level: pyflame_rt.OptLevel) -> pyflame_rt.InferenceSession:
    options = pyflame_rt.SessionOptions()
    options.graph_optimization_level = level
    return pyflame_rt.InferenceSession(model, options)


def eager(module: torch.nn.Module, inputs: tuple) -> list[np.ndarray]:
    """The module's outputs, flattened in pytree order (what the converted graph returns)."""
    with torch.no_grad():
        result = module(*inputs)
    return [t.numpy() for t in pytree.tree_leaves(result)]


def run(sess: pyflame_rt.InferenceSession, inputs: tuple) -> list[np.ndarray]:
    feeds = {arg.name: x.numpy() for arg, x in zip(sess.get_inputs(), inputs)}
    assert len(feeds) == len(inputs), "the graph has a different number of inputs"
    return sess.run(None, feeds)


def assert_matches(actual: list[Any], expected: list[np.ndarray], what: str) -> None:
    assert len(actual) == len(expected), (
        f"{what}: {len(actual)} outputs, eager returns {len(expected)}")
    for i, (a, e) in enumerate(zip(actual, expected)):
        a = np.asarray(a)
        assert a.dtype == e.dtype, f"{what} output {i}: dtype {a.dtype} != eager {e.dtype}"
        assert a.shape == e.shape, f"{what} output {i}: shape {a.shape} != eager {e.shape}"
        if e.dtype.kind in "biu":
            np.testing.assert_array_equal(a, e, err_msg=f"{what} output {i}")
        else:
            np.testing.assert_allclose(a, e, rtol=RTOL, atol=ATOL, equal_nan=True,
                                       err_msg=f"{what} output {i}")
