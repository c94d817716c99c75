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
from ._nb_simd import vadd, vfma, vload, vload_at, vmax, vmul, vsplat, vstore
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
def _pool_pixel16(x, y, xb, ob, ih0, iw0, w, kh0, kh1, kw0, kw1, dh, dw, is_max, scale):
    """One output pixel of 16 lanes: two ``f32x8`` accumulators kept in registers."""
    init = vsplat(np.float32(-np.inf) if is_max else np.float32(0.0))
    a = init
    c = init
    for kh in range(kh0, kh1):
        row = xb + ((ih0 + kh * dh) * w + iw0) * 16
        for kw in range(kw0, kw1):
            base = row + kw * dw * 16
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
def _pool_pixel8(x, y, xb, ob, ih0, iw0, w, kh0, kh1, kw0, kw1, dh, dw, is_max, scale):
    """One output pixel of 8 lanes: one ``f32x8`` accumulator."""
    a = vsplat(np.float32(-np.inf) if is_max else np.float32(0.0))
    for kh in range(kh0, kh1):
        row = xb + ((ih0 + kh * dh) * w + iw0) * 8
        for kw in range(kw0, kw1):
            base = row + kw * dw * 8
            if is_max:
                a = vmax(a, vload(x, base))
            else:
                a = vadd(a, vload(x, base))
    if not is_max:
        a = vmul(a, vsplat(scale))
    vstore(y, ob, a)


@njit
def _pool_row16(x, y, xb, ob, ih0, w, kh0, kh1, dh, ow_, sw, pl, kw_, dw, is_max, inv_row,
                inv_w, vm):
    """One output row, 16 lanes, separably: the window's rows reduced once per input column
    into ``vm``, then the columns per output pixel (a 3x3 stride-1 window: 6 vector loads
    per pixel instead of 9, and no per-tap bounds arithmetic)."""
    init = vsplat(np.float32(-np.inf) if is_max else np.float32(0.0))
    for iw in range(w):
        a = init
        c = init
        for kh in range(kh0, kh1):
            base = xb + ((ih0 + kh * dh) * w + iw) * 16
            if is_max:
                a = vmax(a, vload(x, base))
                c = vmax(c, vload(x, base + 8))
            else:
                a = vadd(a, vload(x, base))
                c = vadd(c, vload(x, base + 8))
        vstore(vm, iw * 16, a)
        vstore(vm, iw * 16 + 8, c)
    for ow in range(ow_):
        iw0 = ow * sw - pl
        kw0 = min(kw_, (-iw0 + dw - 1) // dw) if iw0 < 0 else 0
        kw1 = max(kw0, min(kw_, (w - iw0 + dw - 1) // dw))
        a = init
        c = init
        for kw in range(kw0, kw1):
            base = (iw0 + kw * dw) * 16
            if is_max:
                a = vmax(a, vload(vm, base))
                c = vmax(c, vload(vm, base + 8))
            else:
                a = vadd(a, vload(vm, base))
                c = vadd(c, vload(vm, base + 8))
        if not is_max:
            sv = vsplat(np.float32(inv_row * inv_w[ow]))
            a = vmul(a, sv)
            c = vmul(c, sv)
        vstore(y, ob + ow * 16, a)
        vstore(y, ob + ow * 16 + 8, c)


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
    vm = np.empty(w * lanes, np.float32)  # one input row, reduced over the window's rows
    while True:
        j = fetch_add(ctrl, 0, 1)
        if j >= n:
            break
        plane = jobs[j, 0]
        xb = plane * h * w * lanes
        for oh in range(jobs[j, 1], jobs[j, 2]):
            ih0 = oh * sh - pt
            # Taps inside the input: kh in [kh0, kh1), kw in [kw0, kw1) (padding skipped).
            kh0 = min(kh_, (-ih0 + dh - 1) // dh) if ih0 < 0 else 0
            kh1 = max(kh0, min(kh_, (h - ih0 + dh - 1) // dh))
            row = (plane * oh_ + oh) * ow_
            if lanes == 16 and kw_ > 1:
                _pool_row16(x, y, xb, row * 16, ih0, w, kh0, kh1, dh, ow_, sw, pl, kw_, dw,
                            is_max, inv_h[oh], inv_w, vm)
                continue
            for ow in range(ow_):
                iw0 = ow * sw - pl
                kw0 = min(kw_, (-iw0 + dw - 1) // dw) if iw0 < 0 else 0
                kw1 = max(kw0, min(kw_, (w - iw0 + dw - 1) // dw))
                ob = (row + ow) * lanes
                scale = np.float32(inv_h[oh] * inv_w[ow])
                if lanes == 16:
                    _pool_pixel16(x, y, xb, ob, ih0, iw0, w, kh0, kh1, kw0, kw1, dh, dw, is_max,
                                  scale)
                elif lanes == 8:
                    _pool_pixel8(x, y, xb, ob, ih0, iw0, w, kh0, kh1, kw0, kw1, dh, dw, is_max,
                                 scale)
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
            base = p * hw * lanes
            if lanes % 8 == 0:
                for k in range(0, lanes, 8):
                    a = vsplat(np.float32(0.0))
                    for q in range(hw):
                        a = vadd(a, vload(x, base + q * lanes + k))
                    vstore(y, p * lanes + k, vmul(a, vsplat(inv)))
                continue
            acc[:] = 0.0
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
        zero = vsplat(np.float32(0.0))
        if lanes == 16 and act <= 1:
            # f32x8 registers: scale and shift loaded once, ReLU applied in the same pass.
            s0, s1, t0, t1 = vload(s, 0), vload(s, 8), vload(t, 0), vload(t, 8)
            for off in range(lo, hi, 16):
                v0 = vfma(vload(x, off), s0, t0)
                v1 = vfma(vload(x, off + 8), s1, t1)
                if act == 1:
                    v0 = vmax(v0, zero)
                    v1 = vmax(v1, zero)
                vstore(y, off, v0)
                vstore(y, off + 8, v1)
        elif lanes == 8 and act <= 1:
            s0, t0 = vload(s, 0), vload(t, 0)
            for off in range(lo, hi, 8):
                v0 = vfma(vload(x, off), s0, t0)
                vstore(y, off, vmax(v0, zero) if act == 1 else v0)
        else:
            for off in range(lo, hi, lanes):
                for b in range(lanes):
                    y[off + b] = x[off + b] * s[b] + t[b]
            if act != 0:
                act_row(y[lo:hi], act, a0, a1)
        fetch_add(ctrl, 1, 1)
    return _finish(ctrl, n, gen)


@njit
def blocked_affine_pieces(ctrl, flags, gen, jobs, addrs, piece, pstart, pcbs, y, scale, shift,
                          lanes, cbt, pixels, act):
    """:func:`blocked_affine` (``act`` 0 or 1, ``lanes`` 8 or 16) of a channel concatenation
    read piece by piece, never built: output block ``cb`` (of ``cbt``) is block
    ``cb - pstart[p]`` of piece ``p = piece[cb]``, a contiguous blocked float32 array of
    ``pcbs[p]`` blocks at address ``addrs[p]`` (kept alive by the caller)."""
    _start(flags, gen)
    n = jobs.shape[0]
    zero = vsplat(np.float32(0.0))
    while True:
        j = fetch_add(ctrl, 0, 1)
        if j >= n:
            break
        plane = jobs[j, 0]
        img = plane // cbt
        cb = plane - img * cbt
        p = piece[cb]
        src = ((img * pcbs[p] + cb - pstart[p]) * pixels + jobs[j, 1]) * lanes
        dst = (plane * pixels + jobs[j, 1]) * lanes
        count = (jobs[j, 2] - jobs[j, 1]) * lanes
        addr = addrs[p]
        c0 = cb * lanes
        s0, t0 = vload(scale, c0), vload(shift, c0)
        if lanes == 16:
            s1, t1 = vload(scale, c0 + 8), vload(shift, c0 + 8)
            for off in range(0, count, 16):
                v0 = vfma(vload_at(addr, src + off), s0, t0)
                v1 = vfma(vload_at(addr, src + off + 8), s1, t1)
                if act == 1:
                    v0 = vmax(v0, zero)
                    v1 = vmax(v1, zero)
                vstore(y, dst + off, v0)
                vstore(y, dst + off + 8, v1)
        else:
            for off in range(0, count, 8):
                v0 = vfma(vload_at(addr, src + off), s0, t0)
                vstore(y, dst + off, vmax(v0, zero) if act == 1 else v0)
        fetch_add(ctrl, 1, 1)
    return _finish(ctrl, n, gen)


DRIVERS = {"blocked_pool": blocked_pool, "blocked_global_avg": blocked_global_avg,
           "blocked_affine": blocked_affine, "blocked_affine_pieces": blocked_affine_pieces}

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
    one = np.zeros(1, i64)
    blocked_affine_pieces(*ctrl(), jobs, np.array([x.ctypes.data], i64), one, one,
                          np.ones(1, i64), y, x, y, 16, 1, 1, 1)
