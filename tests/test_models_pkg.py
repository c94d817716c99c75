"""The shipped demo model and its image generator."""

from __future__ import annotations

import numpy as np
import onnxruntime

import pyflame_rt
from pyflame_rt.models import CLASSES, IMAGE_SIZE, demo_model_path, draw_shape, make_batch


def test_make_batch_is_reproducible_and_labelled():
    x, y = make_batch(12, seed=3)
    assert x.shape == (12, 1, IMAGE_SIZE, IMAGE_SIZE) and x.dtype == np.float32
    assert y.dtype == np.int64 and set(y.tolist()) <= set(range(len(CLASSES)))
    x2, y2 = make_batch(12, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)


def test_every_class_draws_a_distinct_shape():
    rng = np.random.default_rng(0)
    images = [draw_shape(k, rng) for k in range(len(CLASSES))]
    for img in images:
        assert img.shape == (1, IMAGE_SIZE, IMAGE_SIZE)
        assert (img > 0.4).sum() > 20  # something is drawn
    masks = [(img > 0.4) for img in images]
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            assert (masks[i] != masks[j]).any()


def test_demo_model_classifies_drawn_shapes_like_onnxruntime():
    x, y = make_batch(64, seed=11)
    ours = pyflame_rt.InferenceSession(demo_model_path()).run(None, {"image": x})[0]
    theirs = onnxruntime.InferenceSession(demo_model_path()).run(None, {"image": x})[0]
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-5)
    assert (ours.argmax(1) == y).mean() > 0.9  # a trained model, not random weights
