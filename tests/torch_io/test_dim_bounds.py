"""``torch.export.Dim(min=, max=)`` bounds travel with the converted model and are enforced."""

from __future__ import annotations

import json

import numpy as np
import pytest

# "torch.nn", not "torch": a namespace package named torch must never satisfy the check.
pytest.importorskip("torch.nn", reason="PyTorch is the optional [torch] extra")
import torch
from torch_util import assert_matches, eager, run

import pyflame_rt
from pyflame_rt.capi.onnxruntime_pybind11_state import InvalidArgument
from pyflame_rt.errors import InvalidModelError, ValidationError
from pyflame_rt.io.torch import DIM_BOUNDS_KEY, dim_bounds_from_spec, from_torch
from pyflame_rt.io.torchscript import load_torchscript


class _Pair(torch.nn.Module):
    """Two inputs sharing the batch dim; the second also has a bounded sequence dim."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor, seq: torch.Tensor) -> torch.Tensor:
        return self.proj(x).unsqueeze(1) + seq.mean(dim=2, keepdim=True)


def _inputs(batch: int, length: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(batch * 31 + length)
    return torch.randn(batch, 4, generator=g), torch.randn(batch, length, 3, generator=g)


def _converted(**bounds):
    module = _Pair().eval()
    batch = torch.export.Dim("batch", **bounds)
    seq = torch.export.Dim("seq", max=16)
    model = from_torch(module, _inputs(3), dynamic_shapes=({0: batch}, {0: batch, 1: seq}))
    return module, model


def test_sizes_inside_the_bounds_run_and_match_eager():
    module, model = _converted(min=2, max=8)
    assert json.loads(model.metadata_props[DIM_BOUNDS_KEY]) == {"batch": [2, 8],
                                                                "seq": [None, 16]}
    sess = pyflame_rt.InferenceSession(model)
    for batch, length in ((2, 1), (8, 16), (5, 7)):
        inputs = _inputs(batch, length)
        assert_matches(run(sess, inputs), eager(module, inputs), f"batch {batch} seq {length}")


@pytest.mark.parametrize(("batch", "length", "dim", "size"),
                         [(1, 5, "batch", 1), (9, 5, "batch", 9), (4, 17, "seq", 17)])
def test_sizes_outside_the_bounds_are_rejected(batch, length, dim, size):
    _, model = _converted(min=2, max=8)
    sess = pyflame_rt.InferenceSession(model)
    with pytest.raises(ValidationError) as info:
        run(sess, _inputs(batch, length))
    assert isinstance(info.value, InvalidArgument)  # ONNX Runtime's name for it
    text = str(info.value)
    assert f"{dim!r} = {size}" in text and "torch.export.Dim" in text
    assert ("2..8" if dim == "batch" else "-inf..16") in text


def test_unbounded_dims_record_nothing_and_accept_any_size():
    module, model = _converted()
    bounds = json.loads(model.metadata_props[DIM_BOUNDS_KEY])
    assert bounds == {"seq": [None, 16]}  # only the bounded one
    sess = pyflame_rt.InferenceSession(model)
    inputs = _inputs(40, 2)
    assert_matches(run(sess, inputs), eager(module, inputs), "batch 40")


@pytest.mark.parametrize("suffix", [".pfm", ".onnx"])
def test_bounds_survive_saving_and_loading(tmp_path, suffix):
    _, model = _converted(min=2, max=8)
    path = str(tmp_path / f"bounded{suffix}")
    pyflame_rt.save(model, path)
    sess = pyflame_rt.InferenceSession(path)
    sess.run(None, {"x": _inputs(2)[0].numpy(), "seq": _inputs(2)[1].numpy()})
    with pytest.raises(ValidationError, match="'batch' = 9"):
        sess.run(None, {"x": _inputs(9)[0].numpy(), "seq": _inputs(9)[1].numpy()})


def test_torchscript_models_carry_the_bounds_too():
    module = torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.ReLU()).eval()
    script = torch.jit.script(module)
    batch = torch.export.Dim("n", min=1, max=4)
    model = load_torchscript(script, (torch.randn(3, 4),), dynamic_shapes=({0: batch},))
    sess = pyflame_rt.InferenceSession(model)
    x = torch.randn(4, 4)
    assert_matches(sess.run(None, {"input": x.numpy()}), eager(module, (x,)), "n=4")
    with pytest.raises(ValidationError, match="'n' = 5"):
        sess.run(None, {"input": np.zeros((5, 4), np.float32)})


def test_spec_reading():
    batch = torch.export.Dim("batch", min=1, max=64)
    open_dim = torch.export.Dim("free")
    assert dim_bounds_from_spec(({0: batch, 1: open_dim}, [2 * batch, None])) == {
        "batch": [1, 64]}
    assert dim_bounds_from_spec({"x": {0: torch.export.Dim("m", max=3)}}) == {"m": [None, 3]}
    assert dim_bounds_from_spec(None) == {}


def test_malformed_bounds_metadata_is_an_invalid_model():
    _, model = _converted(min=2, max=8)
    model.metadata_props[DIM_BOUNDS_KEY] = '{"batch": [2, "eight"]}'
    with pytest.raises(InvalidModelError, match=DIM_BOUNDS_KEY):
        pyflame_rt.InferenceSession(model)
