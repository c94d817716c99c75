"""Generated kernels of the blocked (NCHWc) direct convolution, as LLVM IR.

Layouts (``B`` floats per vector; ``BI`` = ``B``, or 1 for an un-blocked NCHW input):

* input ``xb`` [N, CB, Hp, Wp, BI]: zero-padded so that no window leaves it (the pads of
  the convolution and the channels up to a multiple of ``BI``);
* weights ``wb`` [MB, CBg, KH, KW, BI, B]: ``MB`` blocks of ``B`` output channels, each
  with the group's ``CBg`` input blocks; zero where channels were padded;
* output ``y`` [N, M, OH, OW] (plain NCHW).

A *job* is (image, filter set of up to ``FC`` blocks, range of up to ``plen`` output
pixels taken in row-major order, so small images still make full tiles). The job computes
its pixels in tiles of ``OWT`` with a micro-kernel that keeps ``FC x OWT`` vector
accumulators in registers: per input channel it loads ``FC`` weight vectors and broadcasts
``OWT`` input values (each pixel has its own base pointer, so strides, dilations and row
wraps cost nothing). Input blocks are consumed in chunks of ``cbc`` (partial sums stay in
a job-local tile), then the tile is transposed back to NCHW in registers, with the
epilogue ``act(y + bias (+ z))`` applied on the way out.

Drivers follow the protocol of ``codegen/_nb_par.py`` (atomic job counter in ``ctrl[0]``,
finished jobs in ``ctrl[1]``, the caller publishes ``gen`` in ``flags[0]`` and waits only for
started jobs), so :func:`...threads.run_parallel` runs them on the session's threads.
Parameters travel in one int64 array whose slots are named by :data:`CONV` / :data:`REORDER`.
"""

from __future__ import annotations

from llvmlite import ir

from .irb import F32, F32P, I32, I64, I64P, Emitter, const, job_driver

__all__ = ["ACT_IN_KERNEL", "CONV", "PHASED", "REORDER", "UNBLOCK", "conv_module",
           "phased_module", "reorder_module", "unblock_module"]

#: Parameter slots of the convolution driver.
CONV = {name: i for i, name in enumerate(
    ["x", "w", "bias", "y", "z", "njobs", "plen", "npb", "fsg", "mbg", "cbg", "g", "hp", "wp", "kh", "kw", "sh", "sw", "dh", "dw", "oh", "ow", "m", "mg", "a0", "a1", "cbc", "cbt"])}
#: Parameter slots of the NCHW -> padded NCHWc reorder driver.
REORDER = {name: i for i, name in enumerate(
    ["x", "xb", "n", "c", "h", "w", "cbt", "hp", "wp", "pt", "pl", "nrb", "rpb", "njobs"])}
#: Activation codes (``codegen.activations.ACT_CODES``) the convolution applies itself.
ACT_IN_KERNEL = (0, 1, 2, 5, 6, 7)


def _params(e: Emitter, prm: ir.Value, slots: dict[str, int]) -> dict[str, ir.Value]:
    return {name: e.b.load(e.at(prm, i), name=name) for name, i in slots.items()}


def _ptr(e: Emitter, value: ir.Value) -> ir.Value:
    return e.b.inttoptr(value, F32P)


def _float(e: Emitter, bits: ir.Value) -> ir.Value:
    """An f32 passed as its bit pattern in an int64 slot."""
    return e.b.bitcast(e.b.trunc(bits, I32), F32)


def _micro_kernel(module: ir.Module, width: int, bi: int, fc: int, owt: int) -> ir.Function:
    """``mk(x, offs, w, tile, ncb, kh, kw, xcbs, xdh, xdw, wfs, tfs, accumulate)``: the
    ``fc x owt`` tile of output vectors over ``ncb`` input blocks of ``bi`` channels."""
    args = [F32P, I64P, F32P, F32P] + [I64] * 9
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), args), name=f"mk_{fc}_{owt}")
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    fn.attributes.add("alwaysinline")
    x, offs, w, tile, ncb, kh_, kw_, xcbs, xdh, xdw, wfs, tfs, accumulate = fn.args
    for a in (x, offs, w, tile):
        a.add_attribute("noalias")
    e = Emitter(module, fn, width)
    b = e.b
    acc = e.slots(fc * owt)
    xs = [e.at(x, b.load(e.at(offs, jj))) for jj in range(owt)]
    keep = b.icmp_signed("!=", accumulate, const(0))
    for f in range(fc):
        for jj in range(owt):
            old = e.vload(e.at(tile, b.add(b.mul(const(f), tfs), const(jj * width))),
                          align=4 * width)
            b.store(b.select(keep, old, e.zero()), acc[f * owt + jj])
    step = bi * width
    with e.for_range(0, ncb, name="cb") as cb, e.for_range(0, kh_, name="kh") as kh, \
            e.for_range(0, kw_, name="kw") as kw:
        o = b.add(b.add(b.mul(cb, xcbs), b.mul(kh, xdh)), b.mul(kw, xdw))
        tap = b.add(b.mul(b.add(b.mul(cb, kh_), kh), kw_), kw)
        wp = e.at(w, b.mul(tap, const(step)))
        xo = [e.at(xj, o) for xj in xs]
        vals = [b.load(acc[i]) for i in range(fc * owt)]
        for ic in range(bi):
            wv = [e.vload(e.at(wp, b.add(b.mul(const(f), wfs), const(ic * width))),
                          align=4 * width) for f in range(fc)]
            for jj in range(owt):
                xv = e.bcast(e.at(xo[jj], ic))
                for f in range(fc):
                    vals[f * owt + jj] = e.fma(wv[f], xv, vals[f * owt + jj])
        for i in range(fc * owt):
            b.store(vals[i], acc[i])
    for f in range(fc):
        for jj in range(owt):
            e.vstore(b.load(acc[f * owt + jj]),
                     e.at(tile, b.add(b.mul(const(f), tfs), const(jj * width))),
                     align=4 * width)
    b.ret_void()
    return fn


def _activation(e: Emitter, v: ir.Value, act: int, a0: ir.Value, a1: ir.Value) -> ir.Value:
    """``v`` through the activation of code ``act`` (one of :data:`ACT_IN_KERNEL`)."""
    b = e.b
    zero = e.zero()
    one = e.splat(ir.Constant(F32, 1.0))
    if act == 1:
        return e.vmax(v, zero)
    if act == 2:
        return b.select(b.fcmp_ordered(">=", v, zero), v, b.fmul(v, e.splat(a0)))
    if act == 5:
        return e.vmin(e.vmax(e.fma(v, e.splat(a0), e.splat(a1)), zero), one)
    if act == 6:
        return b.fmul(v, e.vmin(e.vmax(e.fma(v, e.splat(ir.Constant(F32, 1.0 / 6.0)),
                                             e.splat(ir.Constant(F32, 0.5))), zero), one))
    if act == 7:
        return e.vmin(e.vmax(v, e.splat(a0)), e.splat(a1))
    if act != 0:
        raise ValueError(f"activation code {act} is not fused by the generated kernel")
    return v


def conv_module(width: int, bi: int, fc_max: int, owt: int, act: int = 0,
                residual: bool = False, blocked_out: bool = False) -> str:
    """IR text of the convolution driver ``nchwc_conv`` for vectors of ``width`` floats,
    input blocks of ``bi`` channels, up to ``fc_max`` filter blocks x ``owt`` pixels, with
    the activation ``act`` (a code of :data:`ACT_IN_KERNEL`) and a residual input or not
    fixed at generation time (a branch-free epilogue).

    ``blocked_out``: the output (and the residual) are blocked too, [N, MB, OH, OW, width],
    with ``bias`` padded to ``MB * width``; channels past the real ones are written as 0.
    """
    module = ir.Module(name=f"nchwc_conv_{width}_{bi}_{fc_max}_{owt}_{act}_{int(residual)}"
                            f"_{int(blocked_out)}")
    kernels = [_micro_kernel(module, width, bi, fc, owt) for fc in range(1, fc_max + 1)]
    job = ir.Function(module, ir.FunctionType(ir.VoidType(), [I64P, I64]), name="conv_job")
    job.attributes.add("noinline")  # its dynamic allocas must not land in the claim loop
    prm, j = job.args
    e = Emitter(module, job, width)
    b = e.b
    p = _params(e, prm, CONV)
    npix = b.mul(p["oh"], p["ow"])
    fs_total = b.mul(p["g"], p["fsg"])
    per_image = b.mul(fs_total, p["npb"])
    n = b.sdiv(j, per_image)
    r = b.srem(j, per_image)
    fs = b.sdiv(r, p["npb"])
    pb = b.srem(r, p["npb"])
    gi = b.sdiv(fs, p["fsg"])
    s = b.srem(fs, p["fsg"])
    fbl0 = b.mul(s, const(fc_max))
    fc = e.imin(const(fc_max), b.sub(p["mbg"], fbl0))
    p0 = b.mul(pb, p["plen"])
    p1 = e.imin(npix, b.add(p0, p["plen"]))
    plen = b.sub(p1, p0)
    ntiles = b.sdiv(b.add(plen, const(owt - 1)), const(owt))
    # The tile holds plen rounded up to whole micro-kernel tiles and whole vectors.
    rows = b.add(p["plen"], const(owt + width))
    tfs = b.mul(rows, const(width))
    with b.goto_block(e.entry):
        b.position_at_start(e.entry)
    tile = b.alloca(F32, b.mul(tfs, const(fc_max)))
    tile.align = 64
    offs = b.alloca(I64, rows)
    offs.align = 64
    # Pixel q of the job reads its windows from offs[q] (past the end: the last pixel).
    stride_h = b.mul(b.mul(p["sh"], p["wp"]), const(bi))
    stride_w = b.mul(p["sw"], const(bi))
    with e.for_range(0, b.mul(ntiles, const(owt)), name="q") as q:
        pix = e.imin(b.add(p0, q), b.sub(p1, const(1)))
        oh = b.sdiv(pix, p["ow"])
        ow = b.srem(pix, p["ow"])
        b.store(b.add(b.mul(oh, stride_h), b.mul(ow, stride_w)), e.at(offs, q))
    plane = b.mul(b.mul(p["hp"], p["wp"]), const(bi))
    xn = e.at(_ptr(e, p["x"]), b.mul(b.add(b.mul(n, p["cbt"]), b.mul(gi, p["cbg"])), plane))
    taps = b.mul(p["kh"], p["kw"])
    wfs = b.mul(b.mul(p["cbg"], taps), const(bi * width))
    fb0 = b.add(b.mul(gi, p["mbg"]), fbl0)
    wf = e.at(_ptr(e, p["w"]), b.mul(fb0, wfs))
    xdh = b.mul(b.mul(p["dh"], p["wp"]), const(bi))
    xdw = b.mul(p["dw"], const(bi))
    # Chunks of cbc input blocks; partial sums stay in the tile between chunks.
    with e.for_range(0, p["cbg"], step=p["cbc"], name="c0") as c0:
        ncb = e.imin(p["cbc"], b.sub(p["cbg"], c0))
        xc = e.at(xn, b.mul(c0, plane))
        wc = e.at(wf, b.mul(b.mul(c0, taps), const(bi * width)))
        accumulate = b.zext(b.icmp_signed(">", c0, const(0)), I64)
        for k, mk in enumerate(kernels, start=1):
            with e.if_then(b.icmp_signed("==", fc, const(k))), \
                    e.for_range(0, ntiles, name=f"t{k}") as t:
                b.call(mk, [xc, e.at(offs, b.mul(t, const(owt))), wc,
                            e.at(tile, b.mul(t, const(owt * width))), ncb, p["kh"], p["kw"],
                            plane, xdh, xdw, wfs, tfs, accumulate])
    y = _ptr(e, p["y"])
    z = _ptr(e, p["z"])
    bias = _ptr(e, p["bias"])
    a0, a1 = _float(e, p["a0"]), _float(e, p["a1"])
    if blocked_out:
        # Epilogue: the tile rows are already blocked pixels: bias, residual, activation.
        mbt = b.mul(p["g"], p["mbg"])
        with e.for_range(0, fc, name="f") as f:
            fb = b.add(fb0, f)
            bvec = e.vload(e.at(bias, b.mul(fb, const(width))))
            real = e.mask(b.sub(p["mg"], b.mul(b.add(fbl0, f), const(width))))
            first = b.mul(b.add(b.mul(b.add(b.mul(n, mbt), fb), npix), p0), const(width))
            with e.for_range(0, plen, name="q") as q:
                off = b.add(first, b.mul(q, const(width)))
                v = e.vload(e.at(tile, b.add(b.mul(f, tfs), b.mul(q, const(width)))),
                            align=4 * width)
                v = b.fadd(v, bvec)
                if residual:
                    v = b.fadd(v, e.vload(e.at(z, off)))
                v = b.select(real, _activation(e, v, act, a0, a1), e.zero())
                e.vstore(v, e.at(y, off))
        b.ret_void()
        job_driver(module, "nchwc_conv", job, CONV["njobs"], width)
        return str(module)
    # Epilogue: transpose B x B blocks of the tile to NCHW rows, bias, residual, activation.
    with e.for_range(0, fc, name="f") as f:
        mloc0 = b.mul(b.add(fbl0, f), const(width))
        with e.for_range(0, plen, step=width, name="q0") as q0:
            mask = e.mask(e.imin(const(width), b.sub(plen, q0)))
            base = e.at(tile, b.add(b.mul(f, tfs), b.mul(q0, const(width))))
            cols = e.transpose([e.vload(e.at(base, k * width), align=4 * width)
                                for k in range(width)])
            for lane in range(width):
                mloc = b.add(mloc0, const(lane))
                with e.if_then(b.icmp_signed("<", mloc, p["mg"])):
                    m = b.add(b.mul(gi, p["mg"]), mloc)
                    v = b.fadd(cols[lane], e.splat(b.load(e.at(bias, m))))
                    off = b.add(b.mul(b.add(b.mul(n, p["m"]), m), npix), b.add(p0, q0))
                    if residual:
                        v = b.fadd(v, e.masked_load(e.at(z, off), mask))
                    v = _activation(e, v, act, a0, a1)
                    e.masked_store(v, e.at(y, off), mask)
    b.ret_void()
    job_driver(module, "nchwc_conv", job, CONV["njobs"], width)
    return str(module)


def reorder_module(width: int) -> str:
    """IR text of ``nchwc_reorder``: NCHW -> zero-padded [N, CB, Hp, Wp, width]."""
    module = ir.Module(name=f"nchwc_reorder_{width}")
    job = ir.Function(module, ir.FunctionType(ir.VoidType(), [I64P, I64]), name="reorder_job")
    prm, j = job.args
    e = Emitter(module, job, width)
    b = e.b
    p = _params(e, prm, REORDER)
    plane_no = b.sdiv(j, p["nrb"])
    rb = b.srem(j, p["nrb"])
    n = b.sdiv(plane_no, p["cbt"])
    cb = b.srem(plane_no, p["cbt"])
    x = _ptr(e, p["x"])
    xb = _ptr(e, p["xb"])
    zero = e.zero()
    h0 = b.mul(rb, p["rpb"])
    h1 = e.imin(p["hp"], b.add(h0, p["rpb"]))
    row_len = b.mul(p["wp"], const(width))
    i1v = ir.IntType(1)
    with e.for_range(h0, h1, name="hp") as hp:
        dst = e.at(xb, b.mul(b.add(b.mul(plane_no, p["hp"]), hp), row_len))
        h = b.sub(hp, p["pt"])
        inside = b.and_(b.icmp_signed(">=", h, const(0)), b.icmp_signed("<", h, p["h"]))
        with b.if_else(inside) as (then, other):
            with then:
                with e.for_range(0, p["pl"], name="lp") as q:
                    e.vstore(zero, e.at(dst, b.mul(q, const(width))))
                with e.for_range(b.add(p["pl"], p["w"]), p["wp"], name="rp") as q:
                    e.vstore(zero, e.at(dst, b.mul(q, const(width))))
                with e.for_range(0, p["w"], step=width, name="w0") as w0:
                    cnt = e.imin(const(width), b.sub(p["w"], w0))
                    mask = e.mask(cnt)
                    rows = []
                    for k in range(width):
                        ch = b.add(b.mul(cb, const(width)), const(k))
                        ok = e.splat(b.icmp_signed("<", ch, p["c"]), i1v)
                        src = b.gep(x, [b.add(b.mul(b.add(b.mul(n, p["c"]), ch),
                                                    b.mul(p["h"], p["w"])),
                                              b.add(b.mul(h, p["w"]), w0))])
                        rows.append(e.masked_load(src, b.and_(mask, ok)))
                    cols = e.transpose(rows)
                    out = e.at(dst, b.mul(b.add(p["pl"], w0), const(width)))
                    for q in range(width):
                        with e.if_then(b.icmp_signed("<", const(q), cnt)):
                            e.vstore(cols[q], e.at(out, q * width))
            with other, e.for_range(0, p["wp"], name="zp") as q:
                e.vstore(zero, e.at(dst, b.mul(q, const(width))))
    b.ret_void()
    job_driver(module, "nchwc_reorder", job, REORDER["njobs"], width)
    return str(module)


#: Parameter slots of the padded-blocked -> NCHW reorder driver.
UNBLOCK = {name: i for i, name in enumerate(["xb", "y", "n", "c", "h", "w", "cbt", "nrb", "rpb", "njobs"])}


def unblock_module(width: int) -> str:
    """IR text of ``nchwc_unblock``: [N, CB, H, W, width] -> NCHW (the first C channels)."""
    module = ir.Module(name=f"nchwc_unblock_{width}")
    job = ir.Function(module, ir.FunctionType(ir.VoidType(), [I64P, I64]), name="unblock_job")
    job.linkage = "internal"
    prm, j = job.args
    e = Emitter(module, job, width)
    b = e.b
    p = _params(e, prm, UNBLOCK)
    plane_no = b.sdiv(j, p["nrb"])
    rb = b.srem(j, p["nrb"])
    n = b.sdiv(plane_no, p["cbt"])
    cb = b.srem(plane_no, p["cbt"])
    xb = _ptr(e, p["xb"])
    y = _ptr(e, p["y"])
    h0 = b.mul(rb, p["rpb"])
    h1 = e.imin(p["h"], b.add(h0, p["rpb"]))
    i1v = ir.IntType(1)
    with e.for_range(h0, h1, name="h") as h, \
            e.for_range(0, p["w"], step=width, name="w0") as w0:
        src = e.at(xb, b.mul(b.add(b.mul(b.add(b.mul(plane_no, p["h"]), h), p["w"]), w0),
                             const(width)))
        cnt = e.imin(const(width), b.sub(p["w"], w0))
        mask = e.mask(cnt)
        rows = [e.masked_load(b.gep(src, [const(k * width)]),
                              e.splat(b.icmp_signed("<", const(k), cnt), i1v))
                for k in range(width)]
        cols = e.transpose(rows)
        for lane in range(width):
            ch = b.add(b.mul(cb, const(width)), const(lane))
            with e.if_then(b.icmp_signed("<", ch, p["c"])):
                off = b.add(b.mul(b.add(b.mul(n, p["c"]), ch), b.mul(p["h"], p["w"])),
                            b.add(b.mul(h, p["w"]), w0))
                e.masked_store(cols[lane], e.at(y, off), mask)
    b.ret_void()
    job_driver(module, "nchwc_unblock", job, UNBLOCK["njobs"], width)
    return str(module)


#: Parameter slots of the two-phase driver.
PHASED = {name: i for i, name in enumerate(["job1", "prm1", "n1", "job2", "prm2", "n2"])}


def phased_module(width: int) -> str:
    """IR text of ``phased``: the jobs of two job functions ``void job(i64* prm, i64 j)``
    (addresses in the parameters) in one parallel run, every job of the second waiting until
    all of the first have finished -- e.g. the input reorder, then the convolution, for one
    hand-over to the worker threads instead of two."""
    module = ir.Module(name=f"phased_{width}")
    job_type = ir.FunctionType(ir.VoidType(), [I64P, I64])
    job = ir.Function(module, job_type, name="phased_job")
    job.linkage = "internal"
    prm, j = job.args
    e = Emitter(module, job, width)
    b = e.b
    p = _params(e, prm, PHASED)
    first = b.icmp_signed("<", j, p["n1"])
    with b.if_else(first) as (then, other):
        with then:
            fn = b.inttoptr(p["job1"], job_type.as_pointer())
            b.call(fn, [b.inttoptr(p["prm1"], I64P), j])
        with other:
            fn = b.inttoptr(p["job2"], job_type.as_pointer())
            b.call(fn, [b.inttoptr(p["prm2"], I64P), b.sub(j, p["n1"])])
    b.ret_void()
    _phased_driver(module, job, width)
    return str(module)


def _phased_driver(module: ir.Module, job: ir.Function, width: int) -> None:
    """Like :func:`_driver`, but a job of the second phase first waits (spinning) until the
    finished-jobs counter covers the whole first phase."""
    fn = ir.Function(module, ir.FunctionType(I64, [I64P, I64P, I64, I64P]), name="phased")
    ctrl, flags, gen, prm = fn.args
    e = Emitter(module, fn, width)
    b = e.b
    n1 = b.load(e.at(prm, PHASED["n1"]))
    njobs = b.add(n1, b.load(e.at(prm, PHASED["n2"])))
    published = b.icmp_signed(">", gen, const(0))
    with b.if_then(published):
        b.store_atomic(gen, flags, "release", 8)
    spins = e.slots(1, I64)[0]
    b.store(const(0), spins)
    loop = fn.append_basic_block("claim")
    body = fn.append_basic_block("job")
    gate = fn.append_basic_block("gate")
    pause = fn.append_basic_block("pause")
    run = fn.append_basic_block("run")
    done = fn.append_basic_block("done")
    b.branch(loop)
    b.position_at_end(loop)
    j = b.atomic_rmw("add", ctrl, const(1), "seq_cst")
    b.cbranch(b.icmp_signed("<", j, njobs), body, done)
    b.position_at_end(body)
    b.cbranch(b.icmp_signed("<", j, n1), run, gate)
    b.position_at_end(gate)
    finished = b.load_atomic(e.at(ctrl, 1), "acquire", 8)
    b.cbranch(b.icmp_signed("<", finished, n1), pause, run)
    b.position_at_end(pause)
    e.pause()
    b.branch(gate)
    b.position_at_end(run)
    b.call(job, [prm, j])
    b.atomic_rmw("add", e.at(ctrl, 1), const(1), "seq_cst")
    b.branch(loop)
    b.position_at_end(done)
    wait = fn.append_basic_block("wait")
    spin = fn.append_basic_block("spin")
    out = fn.append_basic_block("out")
    b.cbranch(published, wait, out)
    b.position_at_end(wait)
    finished = b.load_atomic(e.at(ctrl, 1), "acquire", 8)
    b.cbranch(b.icmp_signed("<", finished, njobs), spin, out)
    b.position_at_end(spin)
    e.pause()
    b.store(b.add(b.load(spins), const(1)), spins)
    b.branch(wait)
    b.position_at_end(out)
    b.ret(b.load(spins))
