"""The ``pyflame-rt`` command.

Built on click. Every command exits 0 on success and, on bad input, prints one line
``error: ...`` to stderr and exits 1 (2 for usage errors), never a traceback.
"""

from __future__ import annotations

import functools
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import click
import numpy as np

__all__ = ["main", "cli"]


def _friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn PyFlameRT and OS errors into a one-line message and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .errors import PyFlameRTError

        try:
            return fn(*args, **kwargs)
        except (PyFlameRTError, OSError, ValueError) as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            click.echo(f"error: {type(exc).__name__}: {message}", err=True)
            sys.exit(1)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pyflame_rt", prog_name="pyflame-rt")
def cli() -> None:
    """PyFlameRT: load, optimize and run ONNX models fast on the CPU.

    \b
    Examples:
      pyflame-rt demo
      pyflame-rt run model.onnx --random
    """


@cli.command()
@click.option("--runs", default=50, show_default=True, help="Timed runs for the latency.")
@click.option("--images", default=256, show_default=True,
              help="Drawn images to measure accuracy on.")
@_friendly_errors
def demo(runs: int, images: int) -> None:
    """Run the embedded demo model end to end and print what happened.

    The model is a small CNN trained to tell circles, squares, triangles, crosses and rings
    apart; the images are drawn on the fly, so nothing is downloaded.

    \b
    Example:
      pyflame-rt demo --runs 100
    """
    from . import InferenceSession, SessionOptions
    from .models.shapes import CLASSES, demo_model_path, make_batch

    path = demo_model_path()
    options = SessionOptions()
    start = time.perf_counter()
    session = InferenceSession(path, options)
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
    for _ in range(max(1, runs)):
        t0 = time.perf_counter()
        session.run(None, {inp.name: one})
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    p90 = times[min(len(times) - 1, int(len(times) * 0.9))]
    click.echo(f"latency  : median {statistics.median(times):.3f} ms, p90 {p90:.3f} ms "
               f"(batch 1, {len(times)} runs)")


def _parse_shapes(spec: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for item in spec:
        name, _, dims = item.rpartition(":")
        if not name or not dims:
            raise click.BadParameter(f"{item!r}: write NAME:1x3x224x224")
        try:
            shapes[name] = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            raise click.BadParameter(f"{item!r}: dims must be integers like 1x3x224x224"
                                     ) from None
    return shapes


def _random_feed(session: Any, shapes: dict[str, tuple[int, ...]], seed: int = 0
                 ) -> dict[str, np.ndarray]:
    from .types import DType

    rng = np.random.default_rng(seed)
    feeds = {}
    by_type = {f"tensor({d.ort_name})": d for d in DType}
    for arg in session.get_inputs():
        if arg.name in shapes:
            shape = shapes[arg.name]
        else:
            if any(not isinstance(d, int) for d in arg.shape):
                free = [d for d in arg.shape if not isinstance(d, int)]
                click.echo(f"note: input {arg.name!r} has free dims {free}; using 1 "
                           f"(set them with --shapes {arg.name}:...)", err=True)
            shape = tuple(d if isinstance(d, int) else 1 for d in arg.shape)
        dtype = by_type.get(arg.type)
        if dtype is None:
            raise click.BadParameter(f"cannot make random data for input {arg.name!r} of type "
                                     f"{arg.type}; pass it with --input")
        if dtype.is_float:
            feeds[arg.name] = rng.standard_normal(shape).astype(dtype.numpy)
        elif dtype is DType.BOOL:
            feeds[arg.name] = rng.integers(0, 2, shape).astype(bool)
        elif dtype is DType.STRING:
            feeds[arg.name] = np.full(shape, "a", dtype=object)
        else:
            feeds[arg.name] = rng.integers(0, 8, shape).astype(dtype.numpy)
    return feeds


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--input", "inputs", multiple=True, metavar="NAME=FILE",
              help="Feed an input from a .npy file (or all inputs from one .npz).")
@click.option("--random", "use_random", is_flag=True, help="Feed random data to every input.")
@click.option("--shapes", multiple=True, metavar="NAME:DIMS",
              help="Concrete shape for an input with free dims, e.g. image:8x1x32x32.")
@click.option("--output", type=click.Path(dir_okay=False), help="Save all outputs to a .npz.")
@click.option("--level", default="all", show_default=True,
              type=click.Choice(["none", "basic", "extended", "all"]), help="Optimization level.")
@_friendly_errors
def run(model: str, inputs: tuple[str, ...], use_random: bool, shapes: tuple[str, ...],
        output: str | None, level: str) -> None:
    """Run MODEL once and print each output's name, shape, dtype and a short summary.

    \b
    Examples:
      pyflame-rt run model.onnx --random --shapes image:4x1x32x32
      pyflame-rt run model.pfm --input image=x.npy --output out.npz
    """
    from . import InferenceSession, SessionOptions

    options = SessionOptions()
    options.graph_optimization_level = level
    session = InferenceSession(model, options)
    feeds: dict[str, Any] = {}
    for item in inputs:
        name, sep, file = item.partition("=")
        if not sep:
            if item.endswith(".npz"):
                with np.load(item, allow_pickle=False) as data:
                    feeds.update({k: data[k] for k in data.files})
                continue
            raise click.BadParameter(f"{item!r}: write NAME=FILE.npy or FILE.npz")
        feeds[name] = np.load(file, allow_pickle=False)
    missing = [a.name for a in session.get_inputs() if a.name not in feeds]
    if missing:
        if not use_random:
            raise click.UsageError(f"no data for input(s) {missing}; pass --input or --random")
        random_feeds = _random_feed(session, _parse_shapes(shapes))
        feeds.update({k: v for k, v in random_feeds.items() if k in missing})
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
        np.savez(output, **{a.name: np.asarray(v) for a, v in zip(session.get_outputs(),
                                                                    results)})
        click.echo(f"saved outputs to {output}")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="pyflame-rt")


if __name__ == "__main__":  # pragma: no cover
    main()
