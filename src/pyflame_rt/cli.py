"""The ``pyflame-rt`` command (also ``python -m pyflame_rt.cli``).

Built on click; the work is done in :mod:`pyflame_rt.tools`, this module only parses options
and prints. Every command exits 0 on success. On bad input it prints one line ``error: ...``
to stderr and exits 2 for a usage error (unknown option, bad value) or 1 otherwise, never a
traceback (set ``PYFLAME_RT_DEBUG=1`` to see one). ``compare`` also exits 1 when the two sides
diverge, so scripts and CI can gate on it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import click
import numpy as np

__all__ = ["cli", "main"]

_LEVEL = click.Choice(["none", "basic", "extended", "all"], case_sensitive=False)
_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _model_arg(fn: Any) -> Any:
    return click.argument("model", type=click.Path(dir_okay=False))(fn)


def _feed_options(fn: Any) -> Any:
    fn = click.option("--seed", default=0, show_default=True,
                      help="Seed of the random input data.")(fn)
    fn = click.option("--shapes", multiple=True, metavar="NAME:DIMS",
                      help="Concrete shape for an input with free dims, e.g. image:8x1x32x32 "
                           "(repeat, or separate with commas).")(fn)
    fn = click.option("--input", "inputs", multiple=True, metavar="NAME=FILE",
                      help="Feed an input from a .npy file (or every input from one .npz); "
                           "other inputs get random data.")(fn)
    return fn


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(_strict_json(data), indent=2, default=_json_default))


def _strict_json(obj: Any) -> Any:
    """Non-finite floats as strings ("inf", "nan"): strict JSON parsers reject Infinity/NaN."""
    if isinstance(obj, float) and not np.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict_json(v) for v in obj]
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)


def _notes(notes: list[str]) -> None:
    for note in notes:
        click.echo(f"note: {note}", err=True)


# ==============================================================================================
@click.group(context_settings=_CONTEXT)
@click.version_option(package_name="pyflame_rt", prog_name="pyflame-rt")
@click.option("--plugin", "plugins", multiple=True, metavar="FILE.py|MODULE",
              help="Import this Python file or module first: it may register custom ops "
                   "(pyflame_rt.register_op), fusion rules or backends. Repeatable.")
def cli(plugins: tuple[str, ...]) -> None:
    """PyFlameRT: load, optimize, run, measure and debug ONNX models on the CPU.

    Models may be .onnx or .pfm files (recognised by content).

    \b
    Examples:
      pyflame-rt demo
      pyflame-rt run model.onnx --random --shapes image:4x1x32x32
      pyflame-rt bench model.onnx --compare onnxruntime
      pyflame-rt inspect model.onnx --dot graph.dot
      pyflame-rt optimize model.onnx -o model.pfm
      pyflame-rt convert model.pfm -o model.onnx
      pyflame-rt profile model.onnx -o trace.json
      pyflame-rt compare model.onnx --against onnxruntime
      pyflame-rt warmup --model model.onnx
      pyflame-rt --plugin my_ops.py run custom.onnx --random
    """
    from .tools.common import load_plugin

    for spec in plugins:
        load_plugin(spec)


# -- demo --------------------------------------------------------------------------------------
@cli.command(context_settings=_CONTEXT)
@click.option("--runs", default=50, show_default=True, help="Timed runs for the latency.")
@click.option("--images", default=256, show_default=True,
              help="Drawn images to measure accuracy on.")
def demo(runs: int, images: int) -> None:
    """Run the embedded demo model end to end and print what happened.

    The model is a small CNN trained to tell circles, squares, triangles, crosses and rings
    apart; the images are drawn on the fly, so nothing is downloaded. It prints the model,
    the optimizer passes that fired, predictions, accuracy and latency.

    \b
    Examples:
      pyflame-rt demo
      pyflame-rt demo --runs 100 --images 64
    """
    from . import InferenceSession, SessionOptions
    from .models.shapes import CLASSES, demo_model_path, make_batch
    from .tools.bench import latency_stats

    if runs < 1 or images < 1:
        raise click.BadParameter("--runs and --images must be >= 1")
    path = demo_model_path()
    start = time.perf_counter()
    session = InferenceSession(path, SessionOptions())
    build_ms = (time.perf_counter() - start) * 1e3
    inp = session.get_inputs()[0]
    out = session.get_outputs()[0]
    click.echo(f"model    : {path}")
    click.echo(f"input    : {inp.name} {inp.type} {inp.shape}")
    click.echo(f"output   : {out.name} {out.type} {out.shape}")
    click.echo(f"build    : {build_ms:.1f} ms; optimizer {session.optimization_report.summary()}")

    x, labels = make_batch(images, seed=2024)
    probs = session.run(None, {inp.name: x})[0]
    predicted = probs.argmax(axis=1)
    click.echo("samples  :")
    for i in range(min(5, images)):
        top = int(predicted[i])
        click.echo(f"  image {i}: predicted {CLASSES[top]:<8} ({probs[i, top] * 100:5.1f}%), "
                   f"drawn {CLASSES[int(labels[i])]}")
    click.echo(f"accuracy : {(predicted == labels).mean() * 100:.1f}% on {images} drawn images")

    one = x[:1]
    session.run(None, {inp.name: one})
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        session.run(None, {inp.name: one})
        times.append((time.perf_counter() - t0) * 1e3)
    stats = latency_stats(times)
    click.echo(f"latency  : median {stats['median']:.3f} ms, p90 {stats['p90']:.3f} ms "
               f"(batch 1, {len(times)} runs)")


# -- run ---------------------------------------------------------------------------------------
@cli.command(context_settings=_CONTEXT)
@_model_arg
@click.option("--input", "inputs", multiple=True, metavar="NAME=FILE",
              help="Feed an input from a .npy file (or all inputs from one .npz).")
@click.option("--random", "use_random", is_flag=True,
              help="Feed random data to every input not given with --input.")
@click.option("--shapes", multiple=True, metavar="NAME:DIMS",
              help="Concrete shape for an input with free dims, e.g. image:8x1x32x32.")
@click.option("--seed", default=0, show_default=True, help="Seed of the random data.")
@click.option("--output", type=click.Path(dir_okay=False), help="Save all outputs to a .npz.")
@click.option("--level", default="all", show_default=True, type=_LEVEL,
              help="Optimization level.")
def run(model: str, inputs: tuple[str, ...], use_random: bool, shapes: tuple[str, ...],
        seed: int, output: str | None, level: str) -> None:
    """Run MODEL once and print each output's name, shape, dtype and a short summary.

    \b
    Examples:
      pyflame-rt run model.onnx --random --shapes image:4x1x32x32
      pyflame-rt run model.pfm --input image=x.npy --output out.npz
    """
    from . import InferenceSession, SessionOptions
    from .tools.common import load_feeds, random_feeds

    options = SessionOptions()
    options.graph_optimization_level = level
    session = InferenceSession(model, options)
    feeds: dict[str, Any] = load_feeds(inputs)
    missing = [a for a in session.get_inputs() if a.name not in feeds]
    if missing:
        if not use_random:
            raise click.UsageError(f"no data for input(s) {[a.name for a in missing]}; pass "
                                   "--input NAME=FILE.npy or --random")
        from .tools.common import parse_shapes

        notes: list[str] = []
        feeds.update(random_feeds(missing, parse_shapes(shapes), seed=seed, notes=notes))
        _notes(notes)
    start = time.perf_counter()
    results = session.run(None, feeds)
    elapsed = (time.perf_counter() - start) * 1e3
    for arg, value in zip(session.get_outputs(), results):
        arr = np.asarray(value)
        summary = ""
        if arr.size and arr.dtype.kind in "fiub":
            as_float = arr.astype(np.float64)
            summary = (f" min {as_float.min():.6g} max {as_float.max():.6g} "
                       f"mean {as_float.mean():.6g}")
        click.echo(f"{arg.name}: shape {list(arr.shape)} dtype {arr.dtype}{summary}")
    click.echo(f"ran in {elapsed:.3f} ms")
    if output:
        try:
            np.savez(output, **{a.name: np.asarray(v)
                                for a, v in zip(session.get_outputs(), results)})
        except OSError as exc:
            raise click.ClickException(f"cannot write {output!r}: {exc.strerror}") from None
        click.echo(f"saved outputs to {output}")


# -- bench -------------------------------------------------------------------------------------
@cli.command(context_settings=_CONTEXT)
@_model_arg
@click.option("--warmup", default=10, show_default=True, help="Untimed runs first.")
@click.option("--iterations", default=100, show_default=True, help="Timed runs.")
@click.option("--duration", type=float, default=None,
              help="Time for this many seconds instead of a fixed --iterations.")
@click.option("--threads", default=0, show_default=True,
              help="intra_op_num_threads for each engine (0: its default).")
@click.option("--level", default="all", show_default=True, type=_LEVEL,
              help="Optimization level (ONNX Runtime gets the matching level).")
@click.option("--compare", type=click.Choice(["onnxruntime"]), default=None,
              help="Also run ONNX Runtime, interleaved, on the same inputs.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON only.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Draw the latency distribution to this image (needs matplotlib).")
@_feed_options
def bench(model: str, warmup: int, iterations: int, duration: float | None, threads: int,
          level: str, compare: str | None, as_json: bool, plot: str | None,
          inputs: tuple[str, ...], shapes: tuple[str, ...], seed: int) -> None:
    """Measure MODEL's latency and throughput, trtexec-style.

    Prints session build time, first-run time, latency min/mean/median/p90/p95/p99/max,
    throughput and peak RSS, and warns when run-to-run variation is high. With --compare
    onnxruntime both engines run interleaved and a ratio column is added.

    \b
    Examples:
      pyflame-rt bench model.onnx
      pyflame-rt bench model.onnx --shapes image:8x1x32x32 --iterations 500 --threads 2
      pyflame-rt bench model.onnx --compare onnxruntime --plot latency.png
      pyflame-rt bench model.pfm --duration 10 --json > result.json
    """
    from .tools.bench import benchmark, plot_latencies

    result = benchmark(model, input_items=inputs, shape_items=shapes, level=level,
                       threads=threads, warmup=warmup, iterations=iterations,
                       duration=duration, compare=compare, seed=seed)
    if plot:
        plot_latencies(result, plot)
    if as_json:
        _echo_json(result.to_dict())
        return
    click.echo(result.format())
    if plot:
        click.echo(f"latency plot  : {plot}")


# -- inspect -----------------------------------------------------------------------------------
@cli.command(context_settings=_CONTEXT)
@_model_arg
@click.option("--level", default="none", show_default=True, type=_LEVEL,
              help="Describe the graph optimized at this level (none: as stored).")
@click.option("--shapes", multiple=True, metavar="NAME:DIMS",
              help="Input shapes for the FLOP estimate (free dims default to 1).")
@click.option("--dot", "dot_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the graph in Graphviz format to this file.")
@click.option("--nodes", "max_nodes", default=0, show_default=True,
              help="List only the N costliest nodes (0: all, in execution order).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON only.")
def inspect(model: str, level: str, shapes: tuple[str, ...], dot_path: str | None,
            max_nodes: int, as_json: bool) -> None:
    """Describe MODEL: interface, opsets, ops, parameters, FLOPs and unsupported ops.

    Inputs and outputs are shown with their symbolic dims; FLOPs are estimated per node
    (2 per multiply-accumulate) for the --shapes given, free dims set to 1 otherwise.

    \b
    Examples:
      pyflame-rt inspect model.onnx
      pyflame-rt inspect model.onnx --shapes image:8x1x32x32 --nodes 10
      pyflame-rt inspect model.onnx --level all --dot optimized.dot
      dot -Tsvg optimized.dot -o optimized.svg
    """
    from .tools.common import parse_shapes
    from .tools.dot import to_dot
    from .tools.inspect_model import inspect_model

    info, optimized = inspect_model(model, level=level, input_shapes=parse_shapes(shapes))
    if dot_path:
        text = to_dot(optimized.graph, title=os.path.basename(model))
        try:
            with open(dot_path, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise click.ClickException(f"cannot write {dot_path!r}: {exc.strerror}") from None
    if as_json:
        _echo_json(info.to_dict())
        return
    click.echo(info.format(max_nodes=max_nodes or None))
    if dot_path:
        click.echo(f"graphviz    : {dot_path} (render with: dot -Tsvg {dot_path} -o graph.svg)")


# -- optimize ----------------------------------------------------------------------------------
@cli.command(context_settings=_CONTEXT)
@_model_arg
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Where to save the optimized model (.onnx or .pfm, by extension).")
@click.option("--level", default="all", show_default=True, type=_LEVEL,
              help="Optimization level.")
@click.option("--disable", multiple=True, metavar="NAME",
              help="Skip this pass or rule (repeatable); see the names the report prints.")
def optimize(model: str, output: str, level: str, disable: tuple[str, ...]) -> None:
    """Optimize MODEL and save the result; print which passes ran and what fired.

    The saved model runs without optimizing again (set graph_optimization_level to
    ORT_DISABLE_ALL when loading it). Fused ops live in the "pyflame" domain; see
    docs/fused_ops.md.

    \b
    Examples:
      pyflame-rt optimize model.onnx -o model.opt.pfm
      pyflame-rt optimize model.onnx -o model.opt.onnx --level basic
      pyflame-rt optimize model.onnx -o out.onnx --disable fuse_conv_relu
    """
    from .opt import available_optimizers
    from .opt import optimize as run_optimizer
    from .tools.common import load_model_file, save_model_file

    known = {name for p, rules in available_optimizers().items() for name in (p, *rules)}
    unknown = sorted(set(disable) - known)
    if unknown:
        raise click.BadParameter(f"unknown pass or rule {', '.join(unknown)}; known: "
                                 f"{', '.join(sorted(known))}", param_hint="--disable")
    loaded = load_model_file(model)
    _, report = run_optimizer(loaded, level, disabled_optimizers=disable)
    fmt = save_model_file(loaded, output)
    click.echo(report.format())
    click.echo(f"saved {fmt.upper()} model to {output} ({os.path.getsize(output):,} bytes)")


# -- convert -----------------------------------------------------------------------------------
@cli.command(context_settings=_CONTEXT)
@click.argument("source")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Output file: .onnx or .pfm.")
@click.option("--shapes", multiple=True, metavar="NAME:DIMS",
              help="PyTorch sources: a float32 example input per forward() argument.")
@click.option("--input", "inputs", multiple=True, metavar="NAME=FILE",
              help="PyTorch sources: an example input from a .npy file (any dtype).")
@click.option("--dynamic-batch", is_flag=True,
              help="PyTorch sources: make dim 0 of every input the symbolic dim 'batch'.")
def convert(source: str, output: str, shapes: tuple[str, ...], inputs: tuple[str, ...],
            dynamic_batch: bool) -> None:
    """Convert SOURCE between ONNX (.onnx) and PyFlameRT's native format (.pfm).

    SOURCE may also be a PyTorch model (the "torch" extra): a TorchScript file (.pt, .pth)
    or package.module:factory, a function returning a torch.nn.Module (looked up from the
    current folder too). Both are traced, so give example inputs in forward() order with
    --input (first) and --shapes.

    \b
    Examples:
      pyflame-rt convert model.onnx -o model.pfm
      pyflame-rt convert model.pfm -o model.onnx
      pyflame-rt convert traced.pt -o model.onnx --shapes x:1x3x224x224 --dynamic-batch
      pyflame-rt convert mynets:make_resnet -o resnet.pfm --shapes image:1x3x224x224
    """
    from .tools.common import load_model_file, model_format, save_model_file
    from .tools.convert import is_torch_source, load_torch_source

    if is_torch_source(source):
        model = load_torch_source(source, shape_items=shapes, input_items=inputs,
                                  dynamic_batch=dynamic_batch)
        kind = "PyTorch"
    else:
        if shapes or inputs or dynamic_batch:
            raise click.UsageError("--shapes, --input and --dynamic-batch are for PyTorch "
                                   "sources only")
        model = load_model_file(source)
        kind = model_format(source).upper()
    fmt = save_model_file(model, output)
    click.echo(f"converted {source} ({kind}) -> {output} "
               f"({fmt.upper()}, {os.path.getsize(output):,} bytes)")
    if kind == "PyTorch":
        for v in model.graph.inputs:
            if v.const_value is None:
                click.echo(f"  input  {v.name}: {v.type.dtype.ort_name if v.dtype else '?'} "
                           f"{list(v.shape) if v.shape is not None else '?'}")
        for v in model.graph.outputs:
            click.echo(f"  output {v.name}: {list(v.shape) if v.shape is not None else '?'}")


# -- profile -----------------------------------------------------------------------------------
@cli.command(context_settings=_CONTEXT)
@_model_arg
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Trace file to write (default: pyflame_rt_profile_<time>.json here).")
@click.option("--runs", default=10, show_default=True, help="Profiled runs.")
@click.option("--warmup", default=1, show_default=True, help="Runs before profiling starts.")
@click.option("--top", default=10, show_default=True, help="How many nodes / op types to list.")
@click.option("--level", default="all", show_default=True, type=_LEVEL,
              help="Optimization level.")
@click.option("--threads", default=0, show_default=True, help="intra_op_num_threads.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON only.")
@_feed_options
def profile(model: str, output: str | None, runs: int, warmup: int, top: int, level: str,
            threads: int, as_json: bool, inputs: tuple[str, ...], shapes: tuple[str, ...],
            seed: int) -> None:
    """Profile MODEL: write a Chrome trace and list the nodes and op types that take the time.

    The trace has ONNX Runtime's event layout (one "model_run" event per run, one "Node"
    event per executed node with op type and shapes) and opens in https://ui.perfetto.dev
    or chrome://tracing. In Python, SessionOptions.enable_profiling = True plus
    InferenceSession.end_profiling() write the same file.

    \b
    Examples:
      pyflame-rt profile model.onnx -o trace.json
      pyflame-rt profile model.onnx --runs 50 --top 20 --shapes image:8x1x32x32
    """
    from .tools.profile import profile_model

    result = profile_model(model, output=output, runs=runs, warmup=warmup, level=level,
                           threads=threads, input_items=inputs, shape_items=shapes, seed=seed)
    if as_json:
        _echo_json({"trace": result.trace_path, "executed_nodes_per_run": result.executed_nodes,
                    **result.summary.to_dict(), "notes": result.notes})
        return
    _notes(result.notes)
    click.echo(f"trace : {result.trace_path} ({result.summary.runs} runs, "
               f"{result.executed_nodes} nodes per run; open in https://ui.perfetto.dev)")
    click.echo(result.summary.format(top=top))


# -- compare -----------------------------------------------------------------------------------
@cli.command(context_settings=_CONTEXT)
@_model_arg
@click.option("--against", default="onnxruntime", show_default=True,
              metavar="onnxruntime|reference|level=NAME",
              help="The reference: ONNX Runtime, onnx.reference.ReferenceEvaluator, or "
                   "PyFlameRT at another optimization level.")
@click.option("--level", default="all", show_default=True, type=_LEVEL,
              help="PyFlameRT's optimization level.")
@click.option("--atol", default=1e-4, show_default=True, help="Absolute tolerance.")
@click.option("--rtol", default=1e-3, show_default=True, help="Relative tolerance.")
@click.option("--only-failures", is_flag=True, help="List only the divergent tensors.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON only.")
@_feed_options
def compare(model: str, against: str, level: str, atol: float, rtol: float,
            only_failures: bool, as_json: bool, inputs: tuple[str, ...],
            shapes: tuple[str, ...], seed: int) -> None:
    """Find where PyFlameRT's results first diverge from a reference (Polygraphy-style).

    Every intermediate tensor is marked as an output on both sides; each is compared
    (max abs / max rel error) in topological order, and the first node whose output is off
    by more than atol + rtol * |reference| is reported with its inputs. Exits 1 when
    anything diverges.

    \b
    Examples:
      pyflame-rt compare model.onnx
      pyflame-rt compare model.onnx --against reference --atol 1e-5
      pyflame-rt compare model.onnx --against level=none     # optimizer vs kernels
      pyflame-rt --plugin my_ops.py compare custom.onnx --against level=none
    """
    from .tools.compare import compare_model

    result = compare_model(model, against, level=level, atol=atol, rtol=rtol,
                           input_items=inputs, shape_items=shapes, seed=seed)
    if as_json:
        _echo_json(result.to_dict())
    else:
        click.echo(result.format(only_failures=only_failures))
    if not result.passed:
        sys.exit(1)


# -- warmup ------------------------------------------------------------------------------------
@cli.command(context_settings=_CONTEXT)
@click.option("--model", "models", multiple=True, type=click.Path(dir_okay=False),
              help="Also build and run this model once, so its convolution tactics are timed "
                   "and cached (repeatable).")
@click.option("--level", default="all", show_default=True, type=_LEVEL,
              help="Optimization level of the --model sessions.")
@click.option("--threads", default=0, show_default=True,
              help="intra_op_num_threads of the --model sessions (tactics are timed per "
                   "thread count: use the value you will serve with).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON only.")
@_feed_options
def warmup(models: tuple[str, ...], level: str, threads: int, as_json: bool,
           inputs: tuple[str, ...], shapes: tuple[str, ...], seed: int) -> None:
    """Compile the CPU kernels ahead of time (and time a model's tactics), with progress.

    The numba kernels of the CPU backend compile on first use (about half a minute) and
    are then loaded from the on-disk cache ($PYFLAME_RT_CACHE_DIR, default
    ~/.cache/pyflame_rt) in well under a second. Run this once after installing, e.g. in
    a Docker build step. With --model, each model is also built and run once at --shapes,
    so its convolution tactic choices are timed and stored in the timing cache.

    \b
    Examples:
      pyflame-rt warmup
      pyflame-rt warmup --model model.onnx --shapes image:8x1x32x32 --threads 2
    """
    from .tools.warmup import warmup as run_warmup

    result = run_warmup(models, shape_items=shapes, input_items=inputs, level=level,
                        threads=threads, seed=seed)
    if as_json:
        _echo_json(result.to_dict())
        return
    _notes(result.notes)
    click.echo(result.format())


# ==============================================================================================
def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).strip().splitlines() if part.strip())


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the command, turn failures into one ``error:`` line."""
    from .errors import PyFlameRTError

    debug = bool(os.environ.get("PYFLAME_RT_DEBUG"))
    try:
        code = cli.main(args=argv, prog_name="pyflame-rt", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        code = 1
    except click.UsageError as exc:
        no_args = getattr(click.exceptions, "NoArgsIsHelpError", ())
        if no_args and isinstance(exc, no_args):
            click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
            code = 0
        else:
            command = exc.ctx.command_path if exc.ctx else "pyflame-rt"
            click.echo(f"error: {_one_line(exc.format_message())} (see '{command} --help')",
                       err=True)
            code = exc.exit_code
    except click.ClickException as exc:
        click.echo(f"error: {_one_line(exc.format_message())}", err=True)
        code = exc.exit_code
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        code = 130
    except (PyFlameRTError, OSError, ValueError) as exc:
        if debug:
            raise
        message = _one_line(str(exc)) or repr(exc)
        click.echo(f"error: {type(exc).__name__}: {message}", err=True)
        code = 1
    except Exception as exc:
        if debug:
            raise
        click.echo(f"error: internal error {type(exc).__name__}: {_one_line(str(exc))} "
                   "(rerun with PYFLAME_RT_DEBUG=1 for the traceback and please report it)",
                   err=True)
        code = 1
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
