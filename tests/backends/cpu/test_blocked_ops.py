"""Kernels of the blocked-layout pooling / concatenation / affine ops (backends/cpu/blocked.py).

Each kernel runs on a blocked copy of a random NCHW tensor; its result, unblocked, is compared
with ``onnx.reference`` running the plain ONNX op on the NCHW tensor. Channel counts are
multiples of the block and not (padded last block), batches 1 and 2; the threaded drivers
run in the session tests of ``tests/opt/test_layout_blocked_ops.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from oracle import assert_close, reference

from pyflame_rt.backends.cpu import blocked as bl
from pyflame_rt.backends.cpu.conv.nchwc import from_blocked, to_blocked

RNG = np.random.default_rng(11)

POOL_CASES = [
    {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1},
    {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [3, 2], "strides": [2, 1], "pads": [1, 0, 0, 1]},  # asymmetric pads
    {"kernel_shape": [2, 2], "strides": [2, 2]},
    {"kernel_shape": [2, 3], "dilations": [2, 1], "pads": [0, 1, 1, 0]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1},
]


def _input(n: int, c: int, h: int = 9, w: int = 11) -> np.ndarray:
    return RNG.standard_normal((n, c, h, w)).astype(np.float32)


@pytest.mark.parametrize("attrs", POOL_CASES)
@pytest.mark.parametrize("shape", [(1, 16), (2, 20), (2, 40)])
@pytest.mark.parametrize("block", [16, 8])
def test_max_pool(attrs, shape, block):
    x = _input(*shape)
    got = bl.blocked_max_pool(to_blocked(x, block), **attrs, block=block)
    assert got.ndim == 5 and got.shape[4] == block
    want = reference("MaxPool", [x], attrs, opset=22)[0]
    assert_close(from_blocked(got, shape[1]), want)


@pytest.mark.parametrize("attrs", POOL_CASES)
@pytest.mark.parametrize("include_pad", [0, 1])
@pytest.mark.parametrize("shape", [(1, 16), (2, 20)])
def test_average_pool(attrs, include_pad, shape):
    x = _input(*shape)
    attrs = {**attrs, "count_include_pad": include_pad}
    got = bl.blocked_average_pool(to_blocked(x, 16), **attrs, block=16)
    want = reference("AveragePool", [x], attrs, opset=22)[0]
    assert_close(from_blocked(got, shape[1]), want, rtol=1e-5, atol=1e-6)


def test_pool_padding_channels_stay_zero():
    x = _input(2, 20)
    got = bl.blocked_max_pool(to_blocked(x, 16), kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    assert np.all(got[:, 1, :, :, 4:] == 0)  # channels 20..31 are the padding of block 1


@pytest.mark.parametrize("shape", [(1, 16, 7, 7), (2, 20, 5, 3), (2, 48, 1, 1)])
def test_global_average_pool(shape):
    x = RNG.standard_normal(shape).astype(np.float32)
    got = bl.blocked_global_average_pool(to_blocked(x, 16), block=16)
    assert got.shape == (shape[0], -(-shape[1] // 16), 1, 1, 16)
    want = reference("GlobalAveragePool", [x])[0]
    assert_close(from_blocked(got, shape[1]), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("channels", [(16, 32), (32, 16, 20), (48, 8)])
def test_concat(channels):
    xs = [_input(2, c, 5, 4) for c in channels]
    got = bl.blocked_concat(*[to_blocked(x, 16) for x in xs], block=16)
    want = reference("Concat", xs, {"axis": 1})[0]
    assert_close(from_blocked(got, sum(channels)), want)


@pytest.mark.parametrize("activation", ["", "Relu", "LeakyRelu"])
@pytest.mark.parametrize("c", [16, 20])
def test_channel_affine(activation, c):
    x = _input(2, c)
    scale = RNG.standard_normal(c).astype(np.float32)
    bias = RNG.standard_normal(c).astype(np.float32)
    got = bl.blocked_channel_affine(to_blocked(x, 16), scale, bias, activation=activation,
                                    block=16)
    # BatchNormalization with mean 0, variance 1 and epsilon 0 is x * scale + bias.
    want = reference("BatchNormalization",
                     [x, scale, bias, np.zeros(c, np.float32), np.ones(c, np.float32)],
                     {"epsilon": 0.0})[0]
    if activation:
        want = reference(activation, [want])[0]
    assert_close(from_blocked(got, c), want, rtol=1e-5, atol=1e-5)


def test_other_dtype_takes_the_numpy_path():
    x = _input(1, 20).astype(np.float64)
    got = bl.blocked_max_pool(to_blocked(x, 16), kernel_shape=[2, 2], strides=[2, 2])
    assert got.dtype == np.float64
    want = reference("MaxPool", [x], {"kernel_shape": [2, 2], "strides": [2, 2]})[0]
    assert_close(from_blocked(got, 20), want)


def test_bad_inputs_raise():
    x = to_blocked(_input(1, 16), 16)
    with pytest.raises(ValueError, match="blocked tensor"):
        bl.blocked_max_pool(x[0], kernel_shape=[2, 2])
    with pytest.raises(ValueError, match="blocked tensor"):
        bl.blocked_concat(x, to_blocked(_input(1, 16), 8), block=16)
    with pytest.raises(ValueError, match="kernel_shape"):
        bl.blocked_average_pool(x)
    with pytest.raises(ValueError, match="scale and bias"):
        bl.blocked_channel_affine(x, np.ones(40, np.float32), np.ones(40, np.float32))


@pytest.mark.parametrize("activation", ["", "Relu", "Sigmoid"])
@pytest.mark.parametrize("block", [16, 8])
def test_channel_affine_of_concatenated_pieces(activation, block):
    xs = [_input(2, c, 4, 5) for c in (2 * block, block, 3)]
    c = sum(x.shape[1] for x in xs)
    scale = RNG.standard_normal(c).astype(np.float32)
    bias = RNG.standard_normal(c).astype(np.float32)
    pieces = [to_blocked(x, block) for x in xs]
    got = bl.blocked_channel_affine(pieces[0], scale, bias, *pieces[1:],
                                    activation=activation, block=block)
    cat = reference("Concat", xs, {"axis": 1})[0]
    want = reference("BatchNormalization",
                     [cat, scale, bias, np.zeros(c, np.float32), np.ones(c, np.float32)],
                     {"epsilon": 0.0})[0]
    if activation:
        want = reference(activation, [want])[0]
    assert_close(from_blocked(got, c), want, rtol=1e-5, atol=1e-5)
