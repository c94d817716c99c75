"""CPU kernels for signal ops: DFT, STFT, the Hann/Hamming/Blackman windows, MelWeightMatrix,
CumSum and CumProd.

Fourier transforms run through ``numpy.fft`` in complex128 whatever the input precision (the
outputs are compared at 1e-4, which float32 FFTs of a few hundred points miss) and are cast
back to the input dtype. Complex values travel as a trailing axis of size 2 (real, imaginary);
real signals have a trailing axis of size 1.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ...ops import kernel
from ...types import DType

__all__ = [
    "blackman_window",
    "cum_prod",
    "cum_sum",
    "dft_17",
    "dft_20",
    "hamming_window",
    "hann_window",
    "mel_weight_matrix",
    "stft",
]


def _scalar_int(value: Any, name: str, op: str) -> int:
    arr = np.asarray(value)
    if arr.size != 1:
        raise ValueError(f"{op}: '{name}' must be a scalar, got shape {arr.shape}")
    return int(arr.reshape(-1)[0])


def _scalar_float(value: Any, name: str, op: str) -> float:
    arr = np.asarray(value)
    if arr.size != 1:
        raise ValueError(f"{op}: '{name}' must be a scalar, got shape {arr.shape}")
    return float(arr.reshape(-1)[0].astype(np.float64))


def _out_dtype(output_datatype: int, op: str) -> np.dtype:
    try:
        dtype = np.dtype(DType.from_onnx(int(output_datatype)).numpy)
    except (ValueError, TypeError, KeyError):  # unknown numbers: same message as bad types
        dtype = None
    if dtype is None or not (dtype.kind in "fiu" or dtype == ml_dtypes.bfloat16) or \
            dtype.name.startswith(("float8", "float4", "int4", "uint4", "int2", "uint2")):
        raise ValueError(f"{op}: output_datatype={output_datatype} is not a type this op can "
                         "produce; use a float or integer type (e.g. 1 = FLOAT, 11 = DOUBLE)")
    return dtype


def _to_complex(x: np.ndarray, op: str) -> np.ndarray:
    """``(..., 1)`` real or ``(..., 2)`` (re, im) input as a complex128 array without the last axis."""
    if x.ndim < 2 or x.shape[-1] not in (1, 2):
        raise ValueError(f"{op}: the input's last axis must have size 1 (real) or 2 (complex), "
                         f"got shape {x.shape}")
    xf = x.astype(np.float64)
    if x.shape[-1] == 1:
        return xf[..., 0]
    return xf[..., 0] + 1j * xf[..., 1]


def _from_complex(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    out = np.stack([y.real, y.imag], axis=-1)
    return out.astype(dtype)


def _dft(x: np.ndarray, dft_length: Any, axis: int, inverse: int, onesided: int) -> np.ndarray:
    x = np.asarray(x)
    rank = x.ndim
    if not (0 <= axis <= rank - 2 or -rank <= axis <= -2):
        raise ValueError(f"DFT: axis {axis} is out of range for a rank-{rank} input (the last "
                         "axis holds the real/imaginary parts and cannot be transformed)")
    axis = axis % rank
    sig = _to_complex(x, "DFT")
    n_in = x.shape[axis]
    if dft_length is not None:
        n = _scalar_int(dft_length, "dft_length", "DFT")
    else:
        n = 2 * (n_in - 1) if inverse and onesided else n_in
    if n <= 0:
        raise ValueError(f"DFT: dft_length must be positive, got {n}")
    if inverse:
        if onesided:
            return np.fft.irfft(sig, n=n, axis=axis)[..., None].astype(x.dtype)
        return _from_complex(np.fft.ifft(sig, n=n, axis=axis), x.dtype)
    if onesided and np.isrealobj(sig):
        return _from_complex(np.fft.rfft(sig, n=n, axis=axis), x.dtype)
    y = np.fft.fft(sig, n=n, axis=axis)
    if onesided:
        y = np.take(y, np.arange(n // 2 + 1), axis=axis)
    return _from_complex(y, x.dtype)


@kernel("DFT", since=17)
def dft_17(input: np.ndarray, dft_length: np.ndarray | None = None, *, axis: int = 1,
           inverse: int = 0, onesided: int = 0) -> np.ndarray:
    """ONNX DFT-17: (inverse) discrete Fourier transform along the 'axis' attribute."""
    return _dft(input, dft_length, int(axis), int(inverse), int(onesided))


@kernel("DFT", since=20)
def dft_20(input: np.ndarray, dft_length: np.ndarray | None = None,
           axis: np.ndarray | None = None, *, inverse: int = 0, onesided: int = 0) -> np.ndarray:
    """ONNX DFT-20: (inverse) discrete Fourier transform along the 'axis' input (default -2)."""
    ax = -2 if axis is None else _scalar_int(axis, "axis", "DFT")
    return _dft(input, dft_length, ax, int(inverse), int(onesided))


@kernel("STFT", since=17)
def stft(signal: np.ndarray, frame_step: np.ndarray, window: np.ndarray | None = None,
         frame_length: np.ndarray | None = None, *, onesided: int = 1) -> np.ndarray:
    """ONNX STFT-17: short-time Fourier transform of (batch, length, 1|2) signals."""
    signal = np.asarray(signal)
    if signal.ndim != 3:
        raise ValueError(f"STFT: signal must have shape (batch, length, 1|2), got {signal.shape}")
    step = _scalar_int(frame_step, "frame_step", "STFT")
    if step <= 0:
        raise ValueError(f"STFT: frame_step must be positive, got {step}")
    length = signal.shape[1]
    if window is not None:
        window = np.asarray(window).reshape(-1)
    if frame_length is not None:
        flen = _scalar_int(frame_length, "frame_length", "STFT")
        if window is not None and window.shape[0] != flen:
            raise ValueError(f"STFT: the window has {window.shape[0]} values but frame_length "
                             f"is {flen}; they must match")
    else:
        flen = window.shape[0] if window is not None else length
    if not 0 < flen <= length:
        raise ValueError(f"STFT: frame_length {flen} must be in [1, signal length {length}]")
    sig = _to_complex(signal, "STFT")
    nframes = 1 + (length - flen) // step
    frames = sliding_window_view(sig, flen, axis=1)[:, ::step][:, :nframes]
    if window is not None:
        frames = frames * window.astype(np.float64)
    if onesided and np.isrealobj(frames):
        spec = np.fft.rfft(frames, n=flen, axis=-1)
    else:
        spec = np.fft.fft(frames, n=flen, axis=-1)
        if onesided:
            spec = spec[..., : flen // 2 + 1]
    return _from_complex(spec, signal.dtype)


# ------------------------------------------------------------------------------- windows


def _window(size: Any, periodic: int, output_datatype: int, op: str) -> np.ndarray:
    """The window of ``op`` over n = 0..size-1, N = size (periodic) or size - 1 (symmetric)."""
    n = _scalar_int(size, "size", op)
    if n < 0:
        raise ValueError(f"{op}: size must be non-negative, got {n}")
    dtype = _out_dtype(output_datatype, op)
    denom = n if periodic else n - 1
    if denom <= 0:
        # A one-point symmetric window is the single peak value (as numpy and PyTorch give).
        return np.ones(n, dtype=np.float64).astype(dtype)
    phase = 2.0 * np.pi * np.arange(n, dtype=np.float64) / denom
    # The forms below add their terms in the order the spec's reference does, so values that
    # are exactly 1 stay 1 (they matter when output_datatype is an integer type).
    if op == "HannWindow":
        w = np.sin(phase / 2) ** 2
    elif op == "HammingWindow":
        w = 25 / 46 - np.cos(phase) * (21 / 46)
    else:
        w = np.cos(phase) * -0.5 + np.cos(2 * phase) * 0.08 + 0.42
    return w.astype(dtype)


@kernel("HannWindow", since=17)
def hann_window(size: np.ndarray, *, output_datatype: int = 1, periodic: int = 1) -> np.ndarray:
    """ONNX HannWindow-17: 0.5 - 0.5 cos(2 pi n / N)."""
    return _window(size, periodic, output_datatype, "HannWindow")


@kernel("HammingWindow", since=17)
def hamming_window(size: np.ndarray, *, output_datatype: int = 1,
                   periodic: int = 1) -> np.ndarray:
    """ONNX HammingWindow-17: 25/46 - 21/46 cos(2 pi n / N)."""
    return _window(size, periodic, output_datatype, "HammingWindow")


@kernel("BlackmanWindow", since=17)
def blackman_window(size: np.ndarray, *, output_datatype: int = 1,
                    periodic: int = 1) -> np.ndarray:
    """ONNX BlackmanWindow-17: 0.42 - 0.5 cos(2 pi n / N) + 0.08 cos(4 pi n / N)."""
    return _window(size, periodic, output_datatype, "BlackmanWindow")


@kernel("MelWeightMatrix", since=17)
def mel_weight_matrix(num_mel_bins: np.ndarray, dft_length: np.ndarray,
                      sample_rate: np.ndarray, lower_edge_hertz: np.ndarray,
                      upper_edge_hertz: np.ndarray, *, output_datatype: int = 1) -> np.ndarray:
    """ONNX MelWeightMatrix-17: triangular mel filterbank, (dft_length // 2 + 1, num_mel_bins)."""
    op = "MelWeightMatrix"
    nmel = _scalar_int(num_mel_bins, "num_mel_bins", op)
    nfft = _scalar_int(dft_length, "dft_length", op)
    rate = _scalar_int(sample_rate, "sample_rate", op)
    low = _scalar_float(lower_edge_hertz, "lower_edge_hertz", op)
    high = _scalar_float(upper_edge_hertz, "upper_edge_hertz", op)
    if nmel <= 0 or nfft <= 0 or rate <= 0:
        raise ValueError(f"{op}: num_mel_bins, dft_length and sample_rate must be positive, got "
                         f"{nmel}, {nfft}, {rate}")
    if not 0 <= low < high:
        raise ValueError(f"{op}: need 0 <= lower_edge_hertz < upper_edge_hertz, got {low}, {high}")
    dtype = _out_dtype(output_datatype, op)
    nspec = nfft // 2 + 1
    low_mel = 2595.0 * np.log10(1.0 + low / 700.0)
    high_mel = 2595.0 * np.log10(1.0 + high / 700.0)
    # nmel + 2 band edges, spaced evenly on the mel scale over (nmel + 2) steps, as the spec's
    # reference (and ONNX Runtime) space them.
    mels = np.arange(nmel + 2) * ((high_mel - low_mel) / (nmel + 2)) + low_mel
    hz = 700.0 * (np.power(10.0, mels / 2595.0) - 1.0)
    edges = np.floor((nfft + 1) * hz / rate).astype(np.int64)
    lo, center, hi = edges[:-2][None, :], edges[1:-1][None, :], edges[2:][None, :]
    j = np.arange(nspec)[:, None]
    rise_den = np.maximum(center - lo, 1)
    rising = np.where(center > lo, (j - lo) / rise_den, 1.0)
    out = np.where((j >= lo) & (j <= center) & ((center > lo) | (j == center)), rising, 0.0)
    fall_den = np.maximum(hi - center, 1)
    out = np.where((hi > center) & (j >= center) & (j < hi), (hi - j) / fall_den, out)
    return out.astype(dtype)


# ------------------------------------------------------------------------------ cumulative


def _cumulative(x: np.ndarray, axis: Any, exclusive: int, reverse: int, op: str,
                fn: Any, identity: int) -> np.ndarray:
    x = np.asarray(x)
    ax = _scalar_int(axis, "axis", op)
    if not -x.ndim <= ax < max(x.ndim, 1):
        raise ValueError(f"{op}: axis {ax} is out of range for a rank-{x.ndim} input")
    if x.ndim == 0:
        return x.copy()
    ax %= x.ndim
    # 16-bit floats accumulate in float32 (numpy has no bfloat16 accumulator).
    work = x.astype(np.float32) if x.dtype.itemsize == 2 and x.dtype.kind not in "iu" else x
    if reverse:
        work = np.flip(work, axis=ax)
    if exclusive:
        head = [slice(None)] * x.ndim
        head[ax] = slice(0, x.shape[ax] - 1)
        lead_shape = list(x.shape)
        lead_shape[ax] = min(1, x.shape[ax])
        lead = np.full(lead_shape, identity, dtype=work.dtype)
        y = np.concatenate([lead, fn(work[tuple(head)], axis=ax, dtype=work.dtype)], axis=ax)
    else:
        y = fn(work, axis=ax, dtype=work.dtype)
    if reverse:
        y = np.flip(y, axis=ax)
    return np.ascontiguousarray(y).astype(x.dtype, copy=False)


@kernel("CumSum", since=11)
def cum_sum(x: np.ndarray, axis: np.ndarray, *, exclusive: int = 0,
            reverse: int = 0) -> np.ndarray:
    """ONNX CumSum-11/14: cumulative sum along an axis (exclusive / reverse variants)."""
    return _cumulative(x, axis, exclusive, reverse, "CumSum", np.cumsum, 0)


@kernel("CumProd", since=26)
def cum_prod(x: np.ndarray, axis: np.ndarray, *, exclusive: int = 0,
             reverse: int = 0) -> np.ndarray:
    """ONNX CumProd-26: cumulative product along an axis (exclusive / reverse variants)."""
    return _cumulative(x, axis, exclusive, reverse, "CumProd", np.cumprod, 1)
