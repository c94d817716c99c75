"""Every light model shipped in the ``onnx`` package matches ONNX Runtime.

Foundation issue, "done when": each ``onnx/backend/test/data/light/*.onnx`` loads and matches
ONNX Runtime's outputs (rtol 1e-3) with ``graph_optimization_level`` at its lowest and highest
setting, from ``.onnx`` and from ``.pfm``.
"""

from __future__ import annotations

import glob
import os

import numpy as np
import onnx
import onnxruntime
import pytest

import pyflame_rt as ort

LIGHT_DIR = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
MODELS = sorted(glob.glob(os.path.join(LIGHT_DIR, "*.onnx")))

pytestmark = pytest.mark.slow


def test_the_light_models_are_there():
    assert len(MODELS) >= 8, f"expected the onnx package's light models in {LIGHT_DIR}"


@pytest.fixture(scope="module")
def pfm_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("pfm")


@pytest.mark.parametrize("path", MODELS, ids=[os.path.basename(p)[6:-5] for p in MODELS])
def test_light_model_matches_onnxruntime(path, pfm_dir):
    ref = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    arg = ref.get_inputs()[0]
    x = np.random.default_rng(0).random(arg.shape, dtype=np.float32)
    expected = ref.run(None, {arg.name: x})
    pfm_path = str(pfm_dir / (os.path.basename(path)[:-5] + ".pfm"))
    ort.save(ort.load(path), pfm_path)
    for source in (path, pfm_path):
        for level in (ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                      ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
            opts = ort.SessionOptions()
            opts.graph_optimization_level = level
            sess = ort.InferenceSession(source, opts)
            assert [i.name for i in sess.get_inputs()] == [arg.name]
            got = sess.run(None, {arg.name: x})
            assert len(got) == len(expected)
            for a, b in zip(got, expected):
                assert a.shape == b.shape and a.dtype == b.dtype
                np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5,
                                           err_msg=f"{source} at {level.name}")
