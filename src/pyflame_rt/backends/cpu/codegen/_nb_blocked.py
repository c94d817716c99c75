"""Parallel drivers of the blocked-layout ops (``backends/cpu/blocked.py``; numba, imported
lazily): max / average pooling, global average pooling and a per-channel affine map with an
activation, on tensors ``[N, CB, H, W, B]`` given as flat float32 buffers.

With the ``B`` channels of a pixel contiguous, every window tap is one contiguous run of
``B`` floats: the innermost loop runs over those lanes (a constant trip count of 16 or 8,
unrolled into vector instructions), so no plane copy, padding buffer or shuffle is needed;
taps in the padding are skipped by row/column bounds (for max, padding never wins; for
average, the divisor comes from the caller's ONNX counts). Jobs are ``(plane, row0, row1)``
ranges of output rows of a plane ``(n, cb)``, claimed like the drivers of ``_nb_par``.
"""

from __future__ import annotations

import numpy as np

from ._nb_epilogue import act_row
from ._nb_simd import vadd, vload, vmax, vmul, vsplat, vstore
from ._nb_sync import fetch_add, load, pause, store
from .jit import announce_if_cold, njit

__all__ = ["DRIVERS", "warm"]


@njit
def _start(flags, gen):
    if gen > 0:
        store(flags, 0, gen)


@njit
def _finish(ctrl, n, gen):
    spins = 0
    if gen > 0:
        while load(ctrl, 1) < n:
            pause()
            spins += 1
    return spins


@njit
def _pool_pixel16(x, y, xb, ob, ih0, iw0, h, w, kh_, kw_, dh, dw, is_max, scale):
    """One output pixel of 16 lanes: two ``f32x8`` accumulators kept in registers."""
    init = vsplat(np.float32(-np.inf) if is_max else np.float32(0.0))
    a = init
    c = init
    for kh in range(kh_):
        ih = ih0 + kh * dh
        if ih < 0 or ih >= h:
            continue
        for kw in range(kw_):
            iw = iw0 + kw * dw
            if iw < 0 or iw >= w:
                continue
            base = xb + (ih * w + iw) * 16
            if is_max:
                a = vmax(a, vload(x, base))
                c = vmax(c, vload(x, base + 8))
            else:
                a = vadd(a, vload(x, base))
                c = vadd(c, vload(x, base + 8))
    if not is_max:
        sv = vsplat(scale)
        a = vmul(a, sv)
        c = vmul(c, sv)
    vstore(y, ob, a)
    vstore(y, ob + 8, c)


@njit
def _pool_pixel8(x, y, xb, ob, ih0, iw0, h, w, kh_, kw_, dh, dw, is_max, scale):
    """One output pixel of 8 lanes: one ``f32x8`` accumulator."""
    a = vsplat(np.float32(-np.inf) if is_max else np.float32(0.0))
    for kh in range(kh_):
        ih = ih0 + kh * dh
        if ih < 0 or ih >= h:
            continue
        for kw in range(kw_):
            iw = iw0 + kw * dw
            if iw < 0 or iw >= w:
                continue
            base = xb + (ih * w + iw) * 8
            if is_max:
                a = vmax(a, vload(x, base))
            else:
                a = vadd(a, vload(x, base))
    if not is_max:
        a = vmul(a, vsplat(scale))
    vstore(y, ob, a)


@njit
def _pool_pixel(x, y, xb, ob, ih0, iw0, h, w, kh_, kw_, dh, dw, is_max, scale, lanes):
    for b in range(lanes):
        y[ob + b] = -np.inf if is_max else np.float32(0.0)
    for kh in range(kh_):
        ih = ih0 + kh * dh
        if ih < 0 or ih >= h:
            continue
        for kw in range(kw_):
            iw = iw0 + kw * dw
            if iw < 0 or iw >= w:
                continue
            base = xb + (ih * w + iw) * lanes
            for b in range(lanes):
                if is_max:
                    y[ob + b] = max(y[ob + b], x[base + b])
                else:
                    y[ob + b] += x[base + b]
    if not is_max:
        for b in range(lanes):
            y[ob + b] *= scale


@njit
def blocked_pool(ctrl, flags, gen, jobs, x, y, lanes, h, w, oh_, ow_, kh_, kw_, sh, sw, dh, dw,
                 pt, pl, is_max, inv_h, inv_w):
    """Max or average pooling; ``jobs`` rows ``(plane, oh0, oh1)``; the average of output
    ``(oh, ow)`` is its window's sum times ``inv_h[oh] * inv_w[ow]``."""
    _start(flags, gen)
    n = jobs.shape[0]
    while True:
        j = fetch_add(ctrl, 0, 1)
        if j >= n:
            break
        plane = jobs[j, 0]
        xb = plane * h * w * lanes
        for oh in range(jobs[j, 1], jobs[j, 2]):
            ih0 = oh * sh - pt
            row = (plane * oh_ + oh) * ow_
            for ow in range(ow_):
                iw0 = ow * sw - pl
                ob = (row + ow) * lanes
                scale = np.float32(inv_h[oh] * inv_w[ow])
                if lanes == 16:
                    _pool_pixel16(x, y, xb, ob, ih0, iw0, h, w, kh_, kw_, dh, dw, is_max, scale)
                elif lanes == 8:
                    _pool_pixel8(x, y, xb, ob, ih0, iw0, h, w, kh_, kw_, dh, dw, is_max, scale)
                else:
                    _pool_pixel(x, y, xb, ob, ih0, iw0, h, w, kh_, kw_, dh, dw, is_max, scale,
                                lanes)
        fetch_add(ctrl, 1, 1)
    return _finish(ctrl, n, gen)


@njit
def blocked_global_avg(ctrl, flags, gen, parts, x, y, lanes, hw):
    """Global average pooling of the planes ``parts`` rows ``(p0, p1)``: ``y[p, :]`` is the
    mean over the ``hw`` pixels of plane ``p``."""
    _start(flags, gen)
    n = parts.shape[0]
    inv = np.float32(1.0 / hw)
    acc = np.empty(lanes, np.float32)
    while True:
        j = fetch_add(ctrl, 0, 1)
        if j >= n:
            break
        for p in range(parts[j, 0], parts[j, 1]):
            acc[:] = 0.0
            base = p * hw * lanes
            for q in range(hw):
                off = base + q * lanes
                for b in range(lanes):
                    acc[b] += x[off + b]
            for b in range(lanes):
                y[p * lanes + b] = acc[b] * inv
        fetch_add(ctrl, 1, 1)
    return _finish(ctrl, n, gen)


@njit
def blocked_affine(ctrl, flags, gen, jobs, x, y, scale, shift, lanes, cb_, pixels, act, a0, a1):
    """``y = act(x * scale[c] + shift[c])`` (``scale``/``shift`` padded to ``cb_ * lanes``);
    ``jobs`` rows ``(plane, px0, px1)``: pixel ranges of a plane."""
    _start(flags, gen)
    n = jobs.shape[0]
    while True:
        j = fetch_add(ctrl, 0, 1)
        if j >= n:
            break
        plane = jobs[j, 0]
        c0 = (plane % cb_) * lanes
        s = scale[c0:c0 + lanes]
        t = shift[c0:c0 + lanes]
        lo = (plane * pixels + jobs[j, 1]) * lanes
        hi = (plane * pixels + jobs[j, 2]) * lanes
        for off in range(lo, hi, lanes):
            for b in range(lanes):
                y[off + b] = x[off + b] * s[b] + t[b]
        if act != 0:
            act_row(y[lo:hi], act, a0, a1)
        fetch_add(ctrl, 1, 1)
    return _finish(ctrl, n, gen)


DRIVERS = {"blocked_pool": blocked_pool, "blocked_global_avg": blocked_global_avg,
           "blocked_affine": blocked_affine}

announce_if_cold(*DRIVERS.values())


def warm() -> None:
    """Compile every driver with the argument types the backend uses (tiny shapes)."""
    i64, f32 = np.int64, np.float32

    def ctrl():
        return np.zeros(4, i64), np.zeros(8, i64), 0

    x = np.ones(16, f32)
    y = np.zeros(16, f32)
    inv = np.ones(1, f32)
    jobs = np.array([[0, 0, 1]], i64)
    for is_max in (True, False):
        blocked_pool(*ctrl(), jobs, x, y, 16, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, is_max, inv,
                     inv)
    blocked_global_avg(*ctrl(), np.array([[0, 1]], i64), x, y, 16, 1)
    blocked_affine(*ctrl(), jobs, x, y, x, y, 16, 1, 1, 1, 0.0, 0.0)
