"""Whole parallel kernels: every job -- gather, GEMM (cblas), epilogue -- in nopython code.

Handing a job to a Python thread costs a GIL hand-off and a thread wake-up, ~100 us in this
VM (measured), as much as a small convolution; OpenMP-style fork/join (numba's ``prange``)
costs ~2 us but waits at its barrier for every thread, ~8 ms whenever another process holds
a core. So each kernel here is a *driver* that the pool of :mod:`..threads` calls on every
thread at once, with the same arguments: the threads claim job numbers from ``ctrl[0]`` with
an atomic fetch-and-add, count finished jobs in ``ctrl[1]``, and the caller (``gen > 0``)
publishes ``gen`` in ``flags[0]`` once it holds no GIL (the workers spin on it) and at the end
waits only for jobs a worker has *started* -- a worker the OS has not scheduled yet claims
nothing and is waited for by nobody. Jobs call the BLAS ``sgemm`` through :mod:`._nb_blas`.

Drivers take ``(ctrl, flags, gen, ...)``; arrays are flat float32 buffers unless said
otherwise; job tables are int64 arrays built once per shape on the Python side.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core.extending import intrinsic

from ._nb_blas import sgemm, sgemv
from ._nb_conv import depthwise2d
from ._nb_epilogue import act_row, affine_at, bias_act
from ._nb_norm import attention_probs, bias_gelu, layer_norm, skip_layer_norm
from ._nb_pool import pool2d
from ._nb_sync import fetch_add, load, pause, store
from ._nb_wino import wino2_in, wino2_out, wino4_in, wino4_out
from .jit import announce_if_cold, njit

__all__ = ["DRIVERS", "mark_done", "warm"]


@njit
def _claim(ctrl, flags, gen):
    """The next job number (the caller publishes its task first)."""
    return fetch_add(ctrl, 0, 1)


@njit
def _done(ctrl):
    fetch_add(ctrl, 1, 1)


@njit
def _start(flags, gen):
    if gen > 0:
        store(flags, 0, gen)


@njit
def _finish(ctrl, n, gen):
    """The caller waits for the jobs other threads started (spinning, without the GIL);
    returns how many spins that took (the pool's measure of lagging workers)."""
    spins = 0
    if gen > 0:
        while load(ctrl, 1) < n:
            pause()
            spins += 1
    return spins


@njit
def mark_done(ctrl):
    """Count one job as finished (a worker whose job raised, so that nobody waits forever)."""
    fetch_add(ctrl, 1, 1)


# -- convolution: 1x1 as GEMM --------------------------------------------------------------

@njit
def conv_gemm(ctrl, flags, gen, fp, ilp64, jobs, w, x, y, bias, z, has_z, act, a0, a1, c, m, p,
              g):
    """Jobs (image, group, m0, m1, p0, p1): Y[b, g, m0:m1, p0:p1] = W[g, m0:m1] @
    X[b, g, :, p0:p1], then act(y + bias (+ z))."""
    _start(flags, gen)
    cg = c // g
    mg = m // g
    n = jobs.shape[0]
    while True:
        j = _claim(ctrl, flags, gen)
        if j >= n:
            break
        b, gi, m0, m1, p0, p1 = jobs[j, 0], jobs[j, 1], jobs[j, 2], jobs[j, 3], jobs[j, 4], \
            jobs[j, 5]
        r0 = gi * mg + m0
        base = (b * m + r0) * p + p0
        sgemm(fp, ilp64, 0, m1 - m0, p1 - p0, cg, w, r0 * cg, cg, x,
              (b * c + gi * cg) * p + p0, p, y, base, p, 0.0)
        bias_act(y, base, p, m1 - m0, p1 - p0, bias, r0, 0, z, base, p, has_z, act, a0, a1)
        _done(ctrl)
    return _finish(ctrl, n, gen)


# -- convolution: im2col + GEMM --------------------------------------------------------------

@njit
def _gather(xp, xbase, cg, hp, wp, kh_, kw_, sh, sw, dh, dw, ow_, q0, q1, buf):
    """buf[(c, kh, kw), (oh - q0) * OW + ow] = xp[c, oh * sh + kh * dh, ow * sw + kw * dw]
    for output rows [q0, q1) of the zero-padded image planes at ``xbase``."""
    t = (q1 - q0) * ow_
    for c in range(cg):
        cb = xbase + c * hp * wp
        for kh in range(kh_):
            for kw in range(kw_):
                row = ((c * kh_ + kh) * kw_ + kw) * t
                for oh in range(q0, q1):
                    src0 = cb + (oh * sh + kh * dh) * wp + kw * dw
                    dst = buf[row + (oh - q0) * ow_:row + (oh - q0 + 1) * ow_]
                    if sw == 1:
                        src = xp[src0:src0 + ow_]
                        for o in range(ow_):
                            dst[o] = src[o]
                    else:
                        src2 = xp[src0:src0 + (ow_ - 1) * sw + 1]
                        for o in range(ow_):
                            dst[o] = src2[o * sw]


@njit
def conv_im2col(ctrl, flags, gen, fp, ilp64, jobs, w, xp, y, bias, z, has_z, act, a0, a1, c, m,
                g, hp, wp, kh_, kw_, sh, sw, dh, dw, oh_, ow_):
    """Jobs (image, group, q0, q1, m0, m1): gather the patches of output rows [q0, q1) of
    the padded image ``xp`` [N, C, hp, wp] into a job-local buffer, multiply by the group's
    weight rows [m0, m1) straight into Y, then the epilogue."""
    _start(flags, gen)
    cg = c // g
    mg = m // g
    k = cg * kh_ * kw_
    p = oh_ * ow_
    n = jobs.shape[0]
    while True:
        j = _claim(ctrl, flags, gen)
        if j >= n:
            break
        b, gi, q0, q1, m0, m1 = jobs[j, 0], jobs[j, 1], jobs[j, 2], jobs[j, 3], jobs[j, 4], \
            jobs[j, 5]
        t = (q1 - q0) * ow_
        buf = np.empty(k * t, np.float32)
        _gather(xp, (b * c + gi * cg) * hp * wp, cg, hp, wp, kh_, kw_, sh, sw, dh, dw, ow_,
                q0, q1, buf)
        r0 = gi * mg + m0
        base = (b * m + r0) * p + q0 * ow_
        sgemm(fp, ilp64, 0, m1 - m0, t, k, w, r0 * k, k, buf, 0, t, y, base, p, 0.0)
        bias_act(y, base, p, m1 - m0, t, bias, r0, 0, z, base, p, has_z, act, a0, a1)
        _done(ctrl)
    return _finish(ctrl, n, gen)


# -- depthwise and pooling: blocks of planes -------------------------------------------------

@njit
def conv_depthwise(ctrl, flags, gen, parts, x, wt, bias, y, z, has_z, m_, mult, h, w, oh_, ow_,
                   kh_, kw_, sh, sw, dh, dw, ph, pw, act, a0, a1):
    """Parts (q0, q1) of output planes, each by the serial depthwise kernel."""
    _start(flags, gen)
    n = parts.shape[0]
    while True:
        j = _claim(ctrl, flags, gen)
        if j >= n:
            break
        depthwise2d(x, wt, bias, y, z, has_z, parts[j, 0], parts[j, 1], m_, mult, h, w, oh_,
                    ow_, kh_, kw_, sh, sw, dh, dw, ph, pw, act, a0, a1)
        _done(ctrl)
    return _finish(ctrl, n, gen)


@njit
def pool(ctrl, flags, gen, parts, x, y, h, w, oh_, ow_, kh_, kw_, sh, sw, dh, dw, pt, pl, hp, wp,
         is_max, cnt_h, cnt_w):
    """Parts (q0, q1) of planes, each by the serial pooling kernel."""
    _start(flags, gen)
    n = parts.shape[0]
    while True:
        j = _claim(ctrl, flags, gen)
        if j >= n:
            break
        pool2d(x, y, parts[j, 0], parts[j, 1], h, w, oh_, ow_, kh_, kw_, sh, sw, dh, dw, pt, pl,
               hp, wp, is_max, cnt_h, cnt_w)
        _done(ctrl)
    return _finish(ctrl, n, gen)


# -- Winograd --------------------------------------------------------------------------------

@njit
def _lead(cols):
    ld = (cols + 15) // 16 * 16
    return ld if (ld // 16) % 2 else ld + 16


@njit
def _wino_in(mm, xp, v, c0, c1, segs, s0, s1, tw, t):
    for s in range(s0, s1):
        if mm == 4:
            wino4_in(xp[segs[s, 0]], v, c0, c1, segs[s, 1], segs[s, 2], tw, t, segs[s, 3])
        else:
            wino2_in(xp[segs[s, 0]], v, c0, c1, segs[s, 1], segs[s, 2], tw, t, segs[s, 3])


@njit
def _wino_out(mm, prod, y, m0, m1, segs, s0, s1, tw, t, bias, z, has_z, act, a0, a1):
    mo = y.shape[1]
    oh_ = y.shape[2]
    ow_ = y.shape[3]
    p = oh_ * ow_
    yf = y.reshape(-1)
    zf = z.reshape(-1)
    empty = np.zeros(0, np.float32)
    for s in range(s0, s1):
        b, ra, rb, off = segs[s, 0], segs[s, 1], segs[s, 2], segs[s, 3]
        if mm == 4:
            wino4_out(prod, m0 * t, y[b], m0, m1, ra, rb, tw, t, off, oh_, ow_, bias)
        else:
            wino2_out(prod, m0 * t, y[b], m0, m1, ra, rb, tw, t, off, oh_, ow_, bias)
        if has_z or act != 0:
            y0 = ra * mm
            y1 = min(oh_, rb * mm)
            base = (b * mo + m0) * p + y0 * ow_
            bias_act(yf, base, p, m1 - m0, (y1 - y0) * ow_, empty, 0, 0, zf, base, p, has_z,
                     act, a0, a1)


@njit
def _wino_multiply(fp, ilp64, u, v, prod, e0, e1, c, mo, t):
    for e in range(e0, e1):
        sgemm(fp, ilp64, 0, mo, t, c, u, e * mo * c, c, v, e * v.shape[1], t, prod,
              e * prod.shape[1], t, 0.0)


@njit
def winograd(ctrl, flags, gen, fp, ilp64, mm, xp, u, y, bias, z, has_z, act, a0, a1, segs,
             blocks, phased, cparts, eparts, mparts, tw, v, prod):
    """Winograd F(mm x mm, 3x3) over blocks of tile rows. ``segs`` are (image, first row, end
    row, first tile) pieces, ``blocks`` (first piece, end piece, tiles) rows.

    Whole blocks are the jobs (buffers job-local), or, ``phased``, every block is three
    phases of jobs -- input transforms by channel part, products by tap part, output
    transforms by output-channel part -- in the shared buffers ``v`` [(mm+2)^2, >= C * tiles]
    and ``prod`` [(mm+2)^2, >= M * tiles] (their row length is the leading dimension), a job
    starting only when every job of the previous phases has finished.
    """
    _start(flags, gen)
    c = xp.shape[1]
    mo = y.shape[1]
    a2 = (mm + 2) * (mm + 2)
    nc, ne, nm = cparts.shape[0], eparts.shape[0], mparts.shape[0]
    per_block = nc + ne + nm
    n = blocks.shape[0] * per_block if phased else blocks.shape[0]
    while True:
        j = _claim(ctrl, flags, gen)
        if j >= n:
            break
        if phased:
            bl = j // per_block
            r = j - bl * per_block
            s0, s1, t = blocks[bl, 0], blocks[bl, 1], blocks[bl, 2]
            first = bl * per_block
            if r < nc:
                start = first
            elif r < nc + ne:
                start = first + nc
            else:
                start = first + nc + ne
            while load(ctrl, 1) < start:  # the previous phases are still running
                pause()
            if r < nc:
                _wino_in(mm, xp, v, cparts[r, 0], cparts[r, 1], segs, s0, s1, tw, t)
            elif r < nc + ne:
                _wino_multiply(fp, ilp64, u, v, prod, eparts[r - nc, 0], eparts[r - nc, 1], c,
                               mo, t)
            else:
                i = r - nc - ne
                _wino_out(mm, prod, y, mparts[i, 0], mparts[i, 1], segs, s0, s1, tw, t, bias, z,
                          has_z, act, a0, a1)
        else:
            s0, s1, t = blocks[j, 0], blocks[j, 1], blocks[j, 2]
            vb = np.empty((a2, _lead(c * t)), np.float32)
            pb = np.empty((a2, _lead(mo * t)), np.float32)
            _wino_in(mm, xp, vb, 0, c, segs, s0, s1, tw, t)
            _wino_multiply(fp, ilp64, u, vb, pb, 0, a2, c, mo, t)
            _wino_out(mm, pb, y, 0, mo, segs, s0, s1, tw, t, bias, z, has_z, act, a0, a1)
        _done(ctrl)
    return _finish(ctrl, n, gen)


# -- GEMM with packed weights ----------------------------------------------------------------

@njit
def gemm(ctrl, flags, gen, fp, ilp64, jobs, a, b, y, bias, act, a0, a1, k, n_cols, trans_b):
    """Jobs (r0, r1, c0, c1): Y[r0:r1, c0:c1] = A[r0:r1] @ B'[:, c0:c1], then act(y + bias);
    B' = B [K, N], or B^T for ``trans_b`` with B [N, K]."""
    _start(flags, gen)
    empty = np.zeros(0, np.float32)
    n = jobs.shape[0]
    while True:
        j = _claim(ctrl, flags, gen)
        if j >= n:
            break
        r0, r1, c0, c1 = jobs[j, 0], jobs[j, 1], jobs[j, 2], jobs[j, 3]
        base = r0 * n_cols + c0
        if trans_b:
            sgemm(fp, ilp64, 1, r1 - r0, c1 - c0, k, a, r0 * k, k, b, c0 * k, k, y, base,
                  n_cols, 0.0)
        else:
            sgemm(fp, ilp64, 0, r1 - r0, c1 - c0, k, a, r0 * k, k, b, c0, n_cols, y, base,
                  n_cols, 0.0)
        if bias.size > 0 or act != 0:
            bias_act(y, base, n_cols, r1 - r0, c1 - c0, bias, c0, 1, empty, 0, 0, False, act,
                     a0, a1)
        _done(ctrl)
    return _finish(ctrl, n, gen)


@njit
def gemm_bt_small(ctrl, flags, gen, fp, ilp64, jobs, a, b, y, bias, act, a0, a1, k, n_cols,
                  rows):
    """Few rows times a transposed B [N, K]: jobs (c0, c1) compute Y[:, c0:c1]^T =
    B[c0:c1] @ A^T (BLAS packs the thin A instead of a transposed B, ~2x faster for up to a
    few dozen rows; one row becomes a GEMV), then transpose into Y and the epilogue."""
    _start(flags, gen)
    empty = np.zeros(0, np.float32)
    n = jobs.shape[0]
    while True:
        j = _claim(ctrl, flags, gen)
        if j >= n:
            break
        c0, c1 = jobs[j, 0], jobs[j, 1]
        cols = c1 - c0
        t = np.empty(cols * rows, np.float32)
        sgemm(fp, ilp64, 1, cols, rows, k, b, c0 * k, k, a, 0, k, t, 0, rows, 0.0)
        for r in range(rows):
            dst = y[r * n_cols + c0:r * n_cols + c1]
            for i in range(cols):
                dst[i] = t[i * rows + r]
        if bias.size > 0 or act != 0:
            bias_act(y, c0, n_cols, rows, cols, bias, c0, 1, empty, 0, 0, False, act, a0, a1)
        _done(ctrl)
    return _finish(ctrl, n, gen)


@intrinsic
def _call_driver(typingctx, fptr, ctrl, flags, gen, prm):
    """Call the generated driver ``i64 (i64* ctrl, i64* flags, i64 gen, i64* prm)`` at
    address ``fptr`` (see ``gemm_ir.py``)."""
    sig = types.int64(types.int64, ctrl, flags, types.int64, prm)

    def codegen(context, builder, signature, args):
        fp, c, f, g, p = args
        i64 = ir.IntType(64)
        fnty = ir.FunctionType(i64, [i64.as_pointer(), i64.as_pointer(), i64, i64.as_pointer()])

        def data(aty, val):
            return context.make_array(aty)(context, builder, val).data

        fn = builder.inttoptr(fp, fnty.as_pointer())
        return builder.call(fn, [data(signature.args[1], c), data(signature.args[2], f), g,
                                 data(signature.args[4], p)])

    return sig, codegen


@njit
def gemm_panels(ctrl, flags, gen, fptr, a, y, template):
    """The generated panel GEMM (``gemm_ir.py``): ``template`` holds its parameters but A's
    and C's addresses, filled in here (cheaper than from Python on every call)."""
    prm = template.copy()
    prm[0] = a.ctypes.data
    prm[3] = y.ctypes.data
    return _call_driver(fptr, ctrl, flags, gen, prm)


@njit
def gemv(ctrl, flags, gen, fv, ilp64, jobs, a, b, y, bias, act, a0, a1, k, n_cols, trans_b):
    """One row: jobs (c0, c1) compute y[c0:c1] = a @ B'[:, c0:c1] with BLAS ``sgemv`` (B
    [K, N], or [N, K] with ``trans_b``), then the epilogue."""
    _start(flags, gen)
    empty = np.zeros(0, np.float32)
    n = jobs.shape[0]
    while True:
        j = _claim(ctrl, flags, gen)
        if j >= n:
            break
        c0, c1 = jobs[j, 0], jobs[j, 1]
        if trans_b:
            sgemv(fv, ilp64, 0, c1 - c0, k, b, c0 * k, k, a, 0, y, c0)
        else:
            sgemv(fv, ilp64, 1, k, c1 - c0, b, c0, n_cols, a, 0, y, c0)
        if bias.size > 0 or act != 0:
            bias_act(y, c0, n_cols, 1, c1 - c0, bias, c0, 1, empty, 0, 0, False, act, a0, a1)
        _done(ctrl)
    return _finish(ctrl, n, gen)


@njit
def channel_affine(ctrl, flags, gen, parts, x, y, scale, shift, c, plane, act, a0, a1):
    """Parts (q0, q1) of planes q = n * C + c: y = act(x * scale[c] + shift[c]) -- inference
    BatchNormalization (with a following activation absorbed)."""
    _start(flags, gen)
    n = parts.shape[0]
    addr = x.ctypes.data
    while True:
        j = _claim(ctrl, flags, gen)
        if j >= n:
            break
        for q in range(parts[j, 0], parts[j, 1]):
            ch = q % c
            affine_at(addr, q * plane, y, q * plane, plane, scale[ch], shift[ch], act, a0, a1)
        _done(ctrl)
    return _finish(ctrl, n, gen)


@njit
def channel_affine_pieces(ctrl, flags, gen, parts, addrs, piece, pch, pci, y, scale, shift, c,
                          plane, act, a0, a1):
    """:func:`channel_affine` of a channel concatenation read piece by piece (Concat ->
    BatchNormalization, the concatenation never built): channel ``ch`` of image ``b`` is
    plane ``b * pch[p] + pci[ch]`` of piece ``p = piece[ch]``, a contiguous float32 array at
    address ``addrs[p]`` that the caller keeps alive."""
    _start(flags, gen)
    n = parts.shape[0]
    while True:
        j = _claim(ctrl, flags, gen)
        if j >= n:
            break
        for q in range(parts[j, 0], parts[j, 1]):
            b = q // c
            ch = q - b * c
            p = piece[ch]
            affine_at(addrs[p], (b * pch[p] + pci[ch]) * plane, y, q * plane, plane, scale[ch],
                      shift[ch], act, a0, a1)
        _done(ctrl)
    return _finish(ctrl, n, gen)


# -- rows: norms, GELU, activations ----------------------------------------------------------

@njit
def rows_layer_norm(ctrl, flags, gen, parts, x, y, gamma, beta, has_beta, eps, n_cols):
    _start(flags, gen)
    n = parts.shape[0]
    while True:
        j = _claim(ctrl, flags, gen)
        if j >= n:
            break
        layer_norm(x, y, gamma, beta, has_beta, eps, n_cols, parts[j, 0], parts[j, 1])
        _done(ctrl)
    return _finish(ctrl, n, gen)


@njit
def rows_skip_layer_norm(ctrl, flags, gen, parts, x, skip, bias, has_bias, gamma, beta,
                         has_beta, eps, y, s, n_cols, skip_rows):
    _start(flags, gen)
    n = parts.shape[0]
    while True:
        j = _claim(ctrl, flags, gen)
        if j >= n:
            break
        skip_layer_norm(x, skip, bias, has_bias, gamma, beta, has_beta, eps, y, s, n_cols,
                        skip_rows, parts[j, 0], parts[j, 1])
        _done(ctrl)
    return _finish(ctrl, n, gen)


@njit
def rows_bias_gelu(ctrl, flags, gen, parts, x, y, bias, has_bias, n_cols, approx):
    _start(flags, gen)
    n = parts.shape[0]
    while True:
        j = _claim(ctrl, flags, gen)
        if j >= n:
            break
        bias_gelu(x, y, bias, has_bias, n_cols, approx, parts[j, 0], parts[j, 1])
        _done(ctrl)
    return _finish(ctrl, n, gen)


@njit
def activation(ctrl, flags, gen, parts, y, act, a0, a1):
    """Activation ``act`` in place on the element ranges ``parts`` of flat ``y``."""
    _start(flags, gen)
    n = parts.shape[0]
    while True:
        j = _claim(ctrl, flags, gen)
        if j >= n:
            break
        act_row(y[parts[j, 0]:parts[j, 1]], act, a0, a1)
        _done(ctrl)
    return _finish(ctrl, n, gen)


# -- attention -------------------------------------------------------------------------------

@njit
def _pack_keys(flat, kbase, row, dim, ncols, nr, kp):
    """K^T of one head as panels [ceil(ncols / nr), dim, nr] (zero past the last key): the
    B operand of the generated GEMM (``gemm_ir.py``)."""
    npan = (ncols + nr - 1) // nr
    for p in range(npan):
        for j in range(nr):
            key = p * nr + j
            dst = p * dim * nr + j
            if key < ncols:
                src = flat[kbase + key * row:kbase + key * row + dim]
                for d in range(dim):
                    kp[dst + d * nr] = src[d]
            else:
                for d in range(dim):
                    kp[dst + d * nr] = np.float32(0.0)
    return npan


@njit
def attention(ctrl, flags, gen, fp, ilp64, qkv, ctx, scale, causal, fill, keep, has_keep, add,
              has_add, rows, gfp, nr):
    """qkv [B, S, 3, H, D] -> ctx [B, S, H * D]; one job per (batch, head, block of ``rows``
    queries): S = q k^T (a causal block only multiplies the keys it can see), the
    unnormalized masked softmax of ``_nb_norm``, then S v into ctx's slot, scaled row by row
    by 1 / sum. q k^T runs on the generated panel GEMM at address ``gfp`` (panels of ``nr``
    keys, K^T packed per job: ~2x faster than cblas reading k transposed, measured) or, with
    ``gfp`` 0, on cblas. ``keep`` (uint8) and ``add`` are C-contiguous [B|1, H|1, S|1, S]
    (or 1x1x1x1 when absent); each thread reuses its buffers."""
    _start(flags, gen)
    batch, seq, _, heads, dim = qkv.shape
    width = heads * dim
    flat = qkv.reshape(-1)
    out = ctx.reshape(-1)
    row = 3 * width
    nblk = (seq + rows - 1) // rows
    n = batch * heads * nblk
    s = np.empty(rows * seq, np.float32)
    inv = np.empty(rows, np.float32)
    kb, kh = keep.shape[0], keep.shape[1]
    ab, ah = add.shape[0], add.shape[1]
    use_panels = gfp != 0
    kp = np.empty(((seq + nr - 1) // nr) * nr * dim if use_panels else 1, np.float32)
    one_job = np.zeros((1, 4), np.int64)
    prm = np.zeros(11, np.int64)
    own_ctrl = np.zeros(4, np.int64)
    own_flags = np.zeros(8, np.int64)
    fbytes = flat.ctypes.data
    while True:
        j = _claim(ctrl, flags, gen)
        if j >= n:
            break
        bh = j // nblk
        r0 = (j - bh * nblk) * rows
        r1 = min(seq, r0 + rows)
        b = bh // heads
        h = bh - b * heads
        ncols = r1 if causal else seq
        base = b * seq * row + h * dim
        if use_panels:
            npan = _pack_keys(flat, base + width, row, dim, ncols, nr, kp)
            one_job[0, 1] = r1 - r0
            one_job[0, 3] = npan
            # Parameter slots of gemm_ir.PRM: a lda bp c ldc n k jobs njobs bias has_bias.
            prm[0] = fbytes + 4 * (base + r0 * row)
            prm[1] = row
            prm[2] = kp.ctypes.data
            prm[3] = s.ctypes.data
            prm[4] = ncols
            prm[5] = ncols
            prm[6] = dim
            prm[7] = one_job.ctypes.data
            prm[8] = 1
            prm[9] = kp.ctypes.data
            prm[10] = 0
            own_ctrl[0] = 0
            own_ctrl[1] = 0
            _call_driver(gfp, own_ctrl, own_flags, 0, prm)
        else:
            sgemm(fp, ilp64, 1, r1 - r0, ncols, dim, flat, base + r0 * row, row, flat,
                  base + width, row, s, 0, ncols, 0.0)
        attention_probs(s, ncols, r0, r1, ncols, scale, causal, fill,
                        keep[b if kb > 1 else 0, h if kh > 1 else 0], has_keep,
                        add[b if ab > 1 else 0, h if ah > 1 else 0], has_add, inv)
        obase = (b * seq + r0) * width + h * dim
        sgemm(fp, ilp64, 0, r1 - r0, dim, ncols, s, 0, ncols, flat, base + 2 * width, row,
              out, obase, width, 0.0)
        for i in range(r1 - r0):
            o = out[obase + i * width:obase + i * width + dim]
            f = inv[i]
            for d in range(dim):
                o[d] *= f
        _done(ctrl)
    return _finish(ctrl, n, gen)


DRIVERS = {"conv_gemm": conv_gemm, "conv_im2col": conv_im2col,
           "conv_depthwise": conv_depthwise, "pool": pool, "winograd": winograd, "gemm": gemm,
           "gemm_bt_small": gemm_bt_small, "gemv": gemv, "gemm_panels": gemm_panels,
           "channel_affine": channel_affine,
           "channel_affine_pieces": channel_affine_pieces,
           "rows_layer_norm": rows_layer_norm, "rows_skip_layer_norm": rows_skip_layer_norm,
           "rows_bias_gelu": rows_bias_gelu, "activation": activation, "attention": attention}

announce_if_cold(*DRIVERS.values())


def warm() -> None:
    """Compile every driver with the argument types the backend uses (tiny shapes)."""
    from .blas import sgemm_info

    info = sgemm_info()
    if info is None:
        return
    fp, ilp = info.address, info.ilp64
    f32, i64 = np.float32, np.int64

    def ctrl():
        return np.zeros(4, i64), np.zeros(8, i64), 0

    one = np.ones(16, f32)
    out = np.zeros(16, f32)
    bias = np.zeros(1, f32)
    jobs6 = np.array([[0, 0, 0, 1, 0, 4]], i64)
    parts = np.array([[0, 1]], i64)
    conv_gemm(*ctrl(), fp, ilp, jobs6, one, one, out, bias, out, False, 1, 0.0, 0.0, 1, 1, 4, 1)
    conv_im2col(*ctrl(), fp, ilp, np.array([[0, 0, 0, 1, 0, 1]], i64), one, one, out, bias, out,
                False, 1, 0.0, 0.0, 1, 1, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1)
    conv_depthwise(*ctrl(), parts, one, one, bias, out, out, False, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1,
                   1, 1, 0, 0, 1, 0.0, 0.0)
    cnt = np.ones(2, i64)
    pool(*ctrl(), parts, one, out, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 0, 0, 2, 2, True, cnt, cnt)
    y4 = np.zeros((1, 1, 2, 2), f32)
    segs = np.array([[0, 0, 1, 0]], i64)
    blocks = np.array([[0, 1, 1]], i64)
    for mm in (2, 4):
        a2 = (mm + 2) ** 2
        xp = np.zeros((1, 1, mm + 2, mm + 2), f32)
        u = np.zeros((a2, 1, 1), f32)
        buf = np.zeros((a2, 48), f32)
        for phased in (False, True):
            winograd(*ctrl(), fp, ilp, mm, xp, u, y4, bias, y4, False, 1, 0.0, 0.0, segs, blocks,
                     phased, parts, np.array([[0, a2]], i64), parts, 1, buf, buf)
    jobs4 = np.array([[0, 1, 0, 4]], i64)
    for trans in (False, True):
        gemm(*ctrl(), fp, ilp, jobs4, one, one, out, bias, 0, 0.0, 0.0, 1, 4, trans)
        gemv(*ctrl(), info.gemv, ilp, np.array([[0, 4]], i64), one, one, out, bias, 0, 0.0, 0.0,
             1, 4, trans)
    gemm_bt_small(*ctrl(), fp, ilp, np.array([[0, 4]], i64), one, one, out, bias, 0, 0.0, 0.0,
                  1, 4, 1)
    from .gemm_ir import gemm_kernel, pack_b, run_args

    kern = gemm_kernel()
    if kern is not None:
        a2, y2 = np.ones((2, 3), f32), np.zeros((2, 5), f32)
        panels = pack_b(np.ones((3, 5), f32), kern.nr)
        jobs = np.array([[0, 2, 0, 1]], i64)
        gemm_panels(*ctrl(), kern.address, a2, y2, run_args(a2, panels, y2, None, jobs, 5))
    channel_affine(*ctrl(), parts, one, out, bias, bias, 1, 4, 1, 0.0, 0.0)
    pieces = np.array([one.ctypes.data], i64)
    zero_i = np.zeros(1, i64)
    channel_affine_pieces(*ctrl(), parts, pieces, zero_i, np.ones(1, i64), zero_i, out, bias,
                          bias, 1, 4, 1, 0.0, 0.0)
    rows_layer_norm(*ctrl(), parts, one, out, one, one, True, 1e-5, 4)
    rows_skip_layer_norm(*ctrl(), parts, one, one, one, True, one, one, True, 1e-5, out,
                         out.copy(), 4, 1)
    rows_bias_gelu(*ctrl(), parts, one, out, one, True, 4, False)
    activation(*ctrl(), parts, out, 1, 0.0, 0.0)
    qkv = np.zeros((1, 2, 3, 1, 2), f32)
    ctx = np.zeros((1, 2, 2), f32)
    keep_c = np.ones((1, 1, 1, 1), np.uint8)
    add_c = np.zeros((1, 1, 1, 1), f32)
    keep_a = np.ones((1, 1, 1, 2), np.uint8)
    add_a = np.zeros((1, 1, 1, 2), f32)
    for keep, add in ((keep_c, add_c), (keep_a, add_a)):
        attention(*ctrl(), fp, ilp, qkv, ctx, 1.0, False, -np.inf, keep, keep is keep_a, add,
                  add is add_a, 2, 0, 32)
    mark_done(np.zeros(4, i64))
