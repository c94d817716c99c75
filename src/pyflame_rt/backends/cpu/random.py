"""CPU kernels for random generators: RandomNormal, RandomUniform, RandomNormalLike,
RandomUniformLike, Multinomial and Bernoulli.

With a ``seed`` attribute a kernel draws from a fresh ``numpy.random.Generator`` seeded with
it, so every run of the node gives the same values (ONNX leaves the generator unspecified, so
the values differ from ONNX Runtime's, only the distribution matches). Without a seed the
session's generator (``_ctx.rng``) is used, so successive runs differ.

Draws are made in float32 (float64 for double outputs) and cast to float16/bfloat16.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import ml_dtypes
import numpy as np

from ...ops import kernel
from ...types import DType

__all__ = [
    "bernoulli",
    "multinomial",
    "random_normal",
    "random_normal_like",
    "random_uniform",
    "random_uniform_like",
]

_FLOAT_OUTPUTS = {np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64),
                  np.dtype(ml_dtypes.bfloat16)}


def _generator(seed: float | None, ctx: Any) -> np.random.Generator:
    if seed is not None:
        seed = float(seed)
        if seed.is_integer() and seed >= 0:
            return np.random.default_rng(int(seed))
        # A fractional or negative seed: its bit pattern is the generator's seed.
        return np.random.default_rng(struct.unpack("<Q", struct.pack("<d", seed))[0])
    if ctx is not None and getattr(ctx, "rng", None) is not None:
        return ctx.rng
    return np.random.default_rng()


def _float_dtype(code: int | None, fallback: np.dtype | None, op: str) -> np.dtype:
    if code is None:
        if fallback is None:
            raise ValueError(f"{op}: set the dtype attribute")
        dt = np.dtype(fallback)
    else:
        dt = DType.from_onnx(int(code)).numpy
    if dt not in _FLOAT_OUTPUTS:
        raise ValueError(f"{op}: output type {dt} is not a float type (float16, bfloat16, "
                         "float or double); set dtype to one of them")
    return dt


def _draw_dtype(dt: np.dtype) -> type:
    return np.float64 if dt == np.float64 else np.float32


def _shape(shape: Sequence[int] | None, op: str) -> tuple[int, ...]:
    if shape is None:
        raise ValueError(f"{op}: the shape attribute is required")
    dims = tuple(int(s) for s in shape)
    if any(d < 0 for d in dims):
        raise ValueError(f"{op}: shape {list(dims)} has a negative dimension")
    return dims


def _normal(shape: tuple[int, ...], dt: np.dtype, mean: float, scale: float,
            gen: np.random.Generator) -> np.ndarray:
    draw = _draw_dtype(dt)
    y = gen.standard_normal(shape, dtype=draw)
    y = y * draw(scale) + draw(mean)
    return np.asarray(y, dtype=draw).astype(dt, copy=False)


def _uniform(shape: tuple[int, ...], dt: np.dtype, low: float, high: float,
             gen: np.random.Generator) -> np.ndarray:
    draw = _draw_dtype(dt)
    y = gen.random(shape, dtype=draw)
    y = y * draw(high - low) + draw(low)
    return np.asarray(y, dtype=draw).astype(dt, copy=False)


@kernel("RandomNormal", since=1)
def random_normal(*, dtype: int = 1, mean: float = 0.0, scale: float = 1.0,
                  seed: float | None = None, shape: Sequence[int] | None = None,
                  _ctx: Any = None) -> np.ndarray:
    """ONNX RandomNormal-1/22: samples of N(mean, scale^2) with the given shape."""
    dt = _float_dtype(dtype, None, "RandomNormal")
    return _normal(_shape(shape, "RandomNormal"), dt, mean, scale, _generator(seed, _ctx))


@kernel("RandomUniform", since=1)
def random_uniform(*, dtype: int = 1, high: float = 1.0, low: float = 0.0,
                   seed: float | None = None, shape: Sequence[int] | None = None,
                   _ctx: Any = None) -> np.ndarray:
    """ONNX RandomUniform-1/22: samples of U[low, high) with the given shape."""
    dt = _float_dtype(dtype, None, "RandomUniform")
    return _uniform(_shape(shape, "RandomUniform"), dt, low, high, _generator(seed, _ctx))


@kernel("RandomNormalLike", since=1)
def random_normal_like(input: np.ndarray, *, dtype: int | None = None, mean: float = 0.0,
                       scale: float = 1.0, seed: float | None = None,
                       _ctx: Any = None) -> np.ndarray:
    """ONNX RandomNormalLike-1/22: N(mean, scale^2) samples shaped like the input."""
    x = np.asarray(input)
    dt = _float_dtype(dtype, x.dtype, "RandomNormalLike")
    return _normal(x.shape, dt, mean, scale, _generator(seed, _ctx))


@kernel("RandomUniformLike", since=1)
def random_uniform_like(input: np.ndarray, *, dtype: int | None = None, high: float = 1.0,
                        low: float = 0.0, seed: float | None = None,
                        _ctx: Any = None) -> np.ndarray:
    """ONNX RandomUniformLike-1/22: U[low, high) samples shaped like the input."""
    x = np.asarray(input)
    dt = _float_dtype(dtype, x.dtype, "RandomUniformLike")
    return _uniform(x.shape, dt, low, high, _generator(seed, _ctx))


@kernel("Multinomial", since=7)
def multinomial(input: np.ndarray, *, dtype: int = 6, sample_size: int = 1,
                seed: float | None = None, _ctx: Any = None) -> np.ndarray:
    """ONNX Multinomial-7/22: sample_size class indices per row of unnormalized log-probs."""
    x = np.asarray(input)
    if x.ndim != 2:
        raise ValueError(f"Multinomial: input must be [batch_size, class_size], got shape "
                         f"{list(x.shape)}")
    out = DType.from_onnx(int(dtype)).numpy
    if out not in (np.dtype(np.int32), np.dtype(np.int64)):
        raise ValueError(f"Multinomial: dtype must be int32 (6) or int64 (7), got {dtype}")
    batch, classes = x.shape
    n = int(sample_size)
    if n < 0:
        raise ValueError(f"Multinomial: sample_size must be >= 0, got {sample_size}")
    gen = _generator(seed, _ctx)
    if batch == 0 or n == 0:
        return np.zeros((batch, n), dtype=out)
    if classes == 0:
        raise ValueError("Multinomial: the input has no classes to sample from")
    logits = x.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        p = np.exp(logits - np.max(logits, axis=1, keepdims=True))
    cdf = np.cumsum(p, axis=1)
    cdf /= cdf[:, -1:]
    # One searchsorted for all rows: offset row b's CDF (in [0, 1]) and its draws by b.
    rows = np.arange(batch, dtype=np.float64)[:, None]
    flat_cdf = (cdf + rows).reshape(-1)
    u = gen.random((batch, n)) + rows
    idx = np.searchsorted(flat_cdf, u.reshape(-1), side="right").reshape(batch, n)
    idx = idx - np.arange(batch)[:, None] * classes
    return np.clip(idx, 0, classes - 1).astype(out)


@kernel("Bernoulli", since=15)
def bernoulli(input: np.ndarray, *, dtype: int | None = None, seed: float | None = None,
              _ctx: Any = None) -> np.ndarray:
    """ONNX Bernoulli-15/22: 1 with probability input[i], else 0, in type ``dtype``."""
    p = np.asarray(input)
    out = p.dtype if dtype is None else DType.from_onnx(int(dtype)).numpy
    if out == object:
        raise ValueError("Bernoulli: dtype cannot be string")
    gen = _generator(seed, _ctx)
    draw = gen.random(p.shape)
    return (draw < p.astype(np.float64)).astype(out)
