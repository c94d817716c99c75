"""CPU kernels for the recurrent ops: RNN, GRU and LSTM (all versions).

Layout: every kernel works in time-major form ``X[seq, batch, input]`` (``layout=1`` inputs are
transposed on the way in and the outputs back on the way out). The input projection
``X @ W^T + Wb`` of every time step is one matmul over the whole sequence; only the recurrent
part ``H @ R^T`` runs in a loop over time, vectorized over the batch. ``sequence_lens`` is a
per-batch mask: past its length a sequence keeps its state and writes zeros to ``Y``; reverse
directions therefore start at each sequence's own last valid step. A sequence of length 0 gets
zero final states, as in ONNX Runtime.

float16/bfloat16 are computed in float32 and cast back; float64 stays float64.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ...ops import kernel
from .nn import compute_dtype

__all__ = ["gru", "lstm", "rnn"]

Activation = Callable[[np.ndarray], np.ndarray]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(np.zeros((), dtype=x.dtype), x)


# name -> (function of (x, alpha, beta), takes alpha, takes beta, default alpha, default beta).
# Defaults are those of the ONNX operators of the same name; like ONNX Runtime, alpha/beta
# values are consumed in order only by the activations that take them.
_ACTIVATIONS: dict[str, tuple[Callable[..., np.ndarray], bool, bool, float, float]] = {
    "relu": (lambda x, a, b: np.maximum(x, 0), False, False, 0.0, 0.0),
    "tanh": (lambda x, a, b: np.tanh(x), False, False, 0.0, 0.0),
    "sigmoid": (lambda x, a, b: _sigmoid(x), False, False, 0.0, 0.0),
    "affine": (lambda x, a, b: a * x + b, True, True, 1.0, 0.0),
    "leakyrelu": (lambda x, a, b: np.where(x >= 0, x, a * x), True, False, 0.01, 0.0),
    "thresholdedrelu": (lambda x, a, b: np.where(x > a, x, 0), True, False, 1.0, 0.0),
    "scaledtanh": (lambda x, a, b: a * np.tanh(b * x), True, True, 1.0, 1.0),
    "hardsigmoid": (lambda x, a, b: np.clip(a * x + b, 0, 1), True, True, 0.2, 0.5),
    "elu": (lambda x, a, b: np.where(x >= 0, x, a * np.expm1(np.minimum(x, 0))), True, False,
            1.0, 0.0),
    "softsign": (lambda x, a, b: x / (1 + np.abs(x)), False, False, 0.0, 0.0),
    "softplus": (lambda x, a, b: _softplus(x), False, False, 0.0, 0.0),
}


def _text(s: Any) -> str:
    return s.decode("utf-8") if isinstance(s, bytes) else str(s)


def _activations(op: str, names: Sequence[Any] | None, defaults: Sequence[str],
                 num_dirs: int, alphas: Sequence[float] | None, betas: Sequence[float] | None,
                 dtype: np.dtype) -> list[list[Activation]]:
    """One list of gate activations per direction."""
    per_dir = len(defaults)
    if names is None or len(names) == 0:
        names = list(defaults) * num_dirs
    else:
        names = [_text(n) for n in names]
        if len(names) == per_dir and num_dirs == 2:
            names = names * 2
        if len(names) != per_dir * num_dirs:
            raise ValueError(f"{op}: activations has {len(names)} entries; expected {per_dir} "
                             f"per direction ({per_dir * num_dirs} in all)")
    alpha_it = iter(alphas or [])
    beta_it = iter(betas or [])
    funcs: list[Activation] = []
    for name in names:
        entry = _ACTIVATIONS.get(name.lower())
        if entry is None:
            raise ValueError(f"{op}: unknown activation {name!r}; use one of "
                             "Relu, Tanh, Sigmoid, Affine, LeakyRelu, ThresholdedRelu, "
                             "ScaledTanh, HardSigmoid, Elu, Softsign, Softplus")
        fn, takes_a, takes_b, a, b = entry
        if takes_a:
            a = next(alpha_it, a)
        if takes_b:
            b = next(beta_it, b)
        a_, b_ = np.asarray(a, dtype=dtype), np.asarray(b, dtype=dtype)
        funcs.append(lambda x, fn=fn, a_=a_, b_=b_: fn(x, a_, b_))
    return [funcs[d * per_dir:(d + 1) * per_dir] for d in range(num_dirs)]


class _Setup:
    """Shapes, direction, masks and converted inputs shared by RNN, GRU and LSTM."""

    def __init__(self, op: str, gates: int, X: np.ndarray, W: np.ndarray, R: np.ndarray,
                 B: np.ndarray | None, sequence_lens: np.ndarray | None,
                 hidden_size: int | None, direction: Any, layout: int, clip: float | None):
        self.op = op
        self.out_dtype = X.dtype
        ct = compute_dtype(X.dtype)
        if ct.kind != "f":
            raise ValueError(f"{op}: X must be a floating-point tensor, got {X.dtype}")
        self.ct = ct
        if X.ndim != 3:
            raise ValueError(f"{op}: X must have rank 3, got shape {list(X.shape)}")
        self.layout = int(layout)
        x = X.astype(ct, copy=False)
        self.x = np.swapaxes(x, 0, 1) if self.layout else x  # [seq, batch, input]
        self.seq, self.batch, inp = self.x.shape
        direction = _text(direction).lower()
        if direction not in ("forward", "reverse", "bidirectional"):
            raise ValueError(f"{op}: direction must be forward, reverse or bidirectional, got "
                             f"{direction!r}")
        self.direction = direction
        self.num_dirs = 2 if direction == "bidirectional" else 1
        if W.ndim != 3 or R.ndim != 3:
            raise ValueError(f"{op}: W and R must have rank 3, got {list(W.shape)} and "
                             f"{list(R.shape)}")
        hs = int(hidden_size) if hidden_size is not None else R.shape[-1]
        self.hidden = hs
        expect_w = [self.num_dirs, gates * hs, inp]
        expect_r = [self.num_dirs, gates * hs, hs]
        if list(W.shape) != expect_w or list(R.shape) != expect_r:
            raise ValueError(f"{op}: W {list(W.shape)} / R {list(R.shape)} do not match "
                             f"direction={direction}, hidden_size={hs}, input size {inp}: expected "
                             f"W {expect_w} and R {expect_r}")
        self.w = W.astype(ct, copy=False)
        self.r = R.astype(ct, copy=False)
        if B is not None:
            if list(B.shape) != [self.num_dirs, 2 * gates * hs]:
                raise ValueError(f"{op}: B has shape {list(B.shape)}; expected "
                                 f"{[self.num_dirs, 2 * gates * hs]}")
            b = B.astype(ct, copy=False)
            self.wb, self.rb = b[:, :gates * hs], b[:, gates * hs:]
        else:
            self.wb = self.rb = np.zeros((self.num_dirs, gates * hs), dtype=ct)
        if sequence_lens is not None:
            lens = np.asarray(sequence_lens).astype(np.int64).reshape(-1)
            if lens.shape != (self.batch,):
                raise ValueError(f"{op}: sequence_lens has {lens.size} values for a batch of "
                                 f"{self.batch}")
            if np.any(lens < 0) or np.any(lens > self.seq):
                raise ValueError(f"{op}: sequence_lens {lens.tolist()} must lie in "
                                 f"[0, {self.seq}] (the sequence length)")
            # mask[t, b] is True where step t is part of sequence b.
            self.mask: np.ndarray | None = (np.arange(self.seq)[:, None] < lens[None, :])[..., None]
            # An empty sequence ends with zero states (ONNX Runtime), not the initial ones.
            self.empty = (lens == 0)[:, None] if np.any(lens == 0) else None
            if self.mask.all():
                self.mask = None
        else:
            self.mask = None
            self.empty = None
        self.clip = None if clip is None else float(clip)

    def state(self, init: np.ndarray | None, name: str) -> np.ndarray:
        """An initial state as [num_dirs, batch, hidden] in the compute dtype (zeros if absent)."""
        shape = (self.num_dirs, self.batch, self.hidden)
        if init is None:
            return np.zeros(shape, dtype=self.ct)
        s = init.astype(self.ct, copy=False)
        if self.layout:
            s = np.swapaxes(s, 0, 1)
        if s.shape != shape:
            raise ValueError(f"{self.op}: {name} has shape {list(init.shape)}; expected "
                             f"{list(shape) if not self.layout else [shape[1], shape[0], shape[2]]}")
        return s

    def steps(self, d: int) -> range:
        reverse = self.direction == "reverse" or (self.direction == "bidirectional" and d == 1)
        return range(self.seq - 1, -1, -1) if reverse else range(self.seq)

    def clipped(self, g: np.ndarray) -> np.ndarray:
        return g if self.clip is None else np.clip(g, -self.clip, self.clip)

    def projection(self, d: int) -> np.ndarray:
        """X @ W^T + Wb for every step at once: [seq, batch, gates*hidden]."""
        return np.matmul(self.x, self.w[d].T) + self.wb[d]

    def update(self, t: int, new: np.ndarray, old: np.ndarray) -> np.ndarray:
        """The state after step t: ``new`` where step t belongs to the sequence, else ``old``."""
        if self.mask is None:
            return new
        return np.where(self.mask[t], new, old)

    def output(self, y: np.ndarray) -> np.ndarray:
        """Y as [seq, num_dirs, batch, hidden] (layout 0) or [batch, seq, num_dirs, hidden]."""
        if self.mask is not None:
            y = np.where(self.mask[:, None], y, 0)
        if self.layout:
            y = y.transpose(2, 0, 1, 3)
        return np.ascontiguousarray(y).astype(self.out_dtype, copy=False)

    def final(self, s: np.ndarray) -> np.ndarray:
        """Y_h / Y_c from the [num_dirs, batch, hidden] final states."""
        if self.empty is not None:
            s = np.where(self.empty, 0, s)
        if self.layout:
            s = np.swapaxes(s, 0, 1)
        return np.ascontiguousarray(s).astype(self.out_dtype, copy=False)


@kernel("RNN", since=1)
def rnn(X: np.ndarray, W: np.ndarray, R: np.ndarray, B: np.ndarray | None = None,
        sequence_lens: np.ndarray | None = None, initial_h: np.ndarray | None = None, *,
        activation_alpha: Sequence[float] | None = None,
        activation_beta: Sequence[float] | None = None,
        activations: Sequence[str] | None = None, clip: float | None = None,
        direction: str = "forward", hidden_size: int | None = None, layout: int = 0,
        output_sequence: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """ONNX RNN-1/7/14/22: Ht = f(Xt*W^T + Ht-1*R^T + Wb + Rb), default f = Tanh."""
    s = _Setup("RNN", 1, X, W, R, B, sequence_lens, hidden_size, direction, layout, clip)
    acts = _activations("RNN", activations, ("Tanh",), s.num_dirs, activation_alpha,
                        activation_beta, s.ct)
    h_all = s.state(initial_h, "initial_h")
    y = np.zeros((s.seq, s.num_dirs, s.batch, s.hidden), dtype=s.ct)
    h_final = np.empty_like(h_all)
    for d in range(s.num_dirs):
        (f,) = acts[d]
        xw = s.projection(d) + s.rb[d]
        rt = s.r[d].T
        h = h_all[d]
        for t in s.steps(d):
            h_new = f(s.clipped(xw[t] + h @ rt))
            h = s.update(t, h_new, h)
            y[t, d] = h_new
        h_final[d] = h
    return s.output(y), s.final(h_final)


@kernel("GRU", since=1)
def gru(X: np.ndarray, W: np.ndarray, R: np.ndarray, B: np.ndarray | None = None,
        sequence_lens: np.ndarray | None = None, initial_h: np.ndarray | None = None, *,
        activation_alpha: Sequence[float] | None = None,
        activation_beta: Sequence[float] | None = None,
        activations: Sequence[str] | None = None, clip: float | None = None,
        direction: str = "forward", hidden_size: int | None = None, layout: int = 0,
        linear_before_reset: int = 0,
        output_sequence: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """ONNX GRU-1/3/7/14/22: gates z, r, h (order zrh), optional linear_before_reset."""
    s = _Setup("GRU", 3, X, W, R, B, sequence_lens, hidden_size, direction, layout, clip)
    acts = _activations("GRU", activations, ("Sigmoid", "Tanh"), s.num_dirs, activation_alpha,
                        activation_beta, s.ct)
    hs = s.hidden
    h_all = s.state(initial_h, "initial_h")
    y = np.zeros((s.seq, s.num_dirs, s.batch, hs), dtype=s.ct)
    h_final = np.empty_like(h_all)
    for d in range(s.num_dirs):
        f, g = acts[d]
        xw = s.projection(d)
        # z and r take both biases directly; the h gate's Rb goes inside the reset product
        # when linear_before_reset is set.
        xw[..., :2 * hs] += s.rb[d, :2 * hs]
        rzr_t = s.r[d, :2 * hs].T
        rh_t = s.r[d, 2 * hs:].T
        rbh = s.rb[d, 2 * hs:]
        h = h_all[d]
        for t in s.steps(d):
            zr = f(s.clipped(xw[t, :, :2 * hs] + h @ rzr_t))
            z, r = zr[:, :hs], zr[:, hs:]
            if linear_before_reset:
                hh = g(s.clipped(xw[t, :, 2 * hs:] + r * (h @ rh_t + rbh)))
            else:
                hh = g(s.clipped(xw[t, :, 2 * hs:] + (r * h) @ rh_t + rbh))
            h_new = (1 - z) * hh + z * h
            h = s.update(t, h_new, h)
            y[t, d] = h_new
        h_final[d] = h
    return s.output(y), s.final(h_final)


@kernel("LSTM", since=1)
def lstm(X: np.ndarray, W: np.ndarray, R: np.ndarray, B: np.ndarray | None = None,
         sequence_lens: np.ndarray | None = None, initial_h: np.ndarray | None = None,
         initial_c: np.ndarray | None = None, P: np.ndarray | None = None, *,
         activation_alpha: Sequence[float] | None = None,
         activation_beta: Sequence[float] | None = None,
         activations: Sequence[str] | None = None, clip: float | None = None,
         direction: str = "forward", hidden_size: int | None = None, input_forget: int = 0,
         layout: int = 0,
         output_sequence: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ONNX LSTM-1/7/14/22: gates i, o, f, c (order iofc), peepholes P, input_forget, clip."""
    s = _Setup("LSTM", 4, X, W, R, B, sequence_lens, hidden_size, direction, layout, clip)
    acts = _activations("LSTM", activations, ("Sigmoid", "Tanh", "Tanh"), s.num_dirs,
                        activation_alpha, activation_beta, s.ct)
    hs = s.hidden
    h_all = s.state(initial_h, "initial_h")
    c_all = s.state(initial_c, "initial_c")
    if P is not None:
        if list(P.shape) != [s.num_dirs, 3 * hs]:
            raise ValueError(f"LSTM: P has shape {list(P.shape)}; expected "
                             f"{[s.num_dirs, 3 * hs]}")
        p_all = P.astype(s.ct, copy=False)
    else:
        p_all = None
    y = np.zeros((s.seq, s.num_dirs, s.batch, hs), dtype=s.ct)
    h_final = np.empty_like(h_all)
    c_final = np.empty_like(c_all)
    for d in range(s.num_dirs):
        f, g, hf = acts[d]
        xw = s.projection(d) + s.rb[d]
        rt = s.r[d].T
        pi = po = pf = None
        if p_all is not None:
            pi, po, pf = p_all[d, :hs], p_all[d, hs:2 * hs], p_all[d, 2 * hs:]
        h, c = h_all[d], c_all[d]
        for t in s.steps(d):
            gates = xw[t] + h @ rt
            gi, go, gf, gc = (gates[:, k * hs:(k + 1) * hs] for k in range(4))
            if pi is not None:
                gi = gi + pi * c
                gf = gf + pf * c
            i = f(s.clipped(gi))
            # input_forget couples the gates: the forget gate is 1 - the input gate.
            fg = 1 - i if input_forget else f(s.clipped(gf))
            c_new = fg * c + i * g(s.clipped(gc))
            if po is not None:
                go = go + po * c_new
            o = f(s.clipped(go))
            h_new = o * hf(c_new)
            h = s.update(t, h_new, h)
            c = s.update(t, c_new, c)
            y[t, d] = h_new
        h_final[d] = h
        c_final[d] = c
    return s.output(y), s.final(h_final), s.final(c_final)
