"""Run the official ONNX backend test suite through ``pyflame_rt.backend`` and count results.

Usable from pytest (``test_conformance.py``) and as a script for a quick look::

    python tests/conformance/harness.py node            # all node cases, summary
    python tests/conformance/harness.py node -k conv -v # matching cases, each result

Each case runs with a time limit (SIGALRM) so a hang fails that case instead of the run.
Outputs are compared the way ``onnx.backend.test.runner`` compares them, at ONNX Runtime's
tolerances (rtol 1e-3, atol 1e-5; the DFT/STFT family at 1e-4).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import re
import signal
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.backend.test.loader import load_model_tests
from onnx.backend.test.runner import Runner

import pyflame_rt.backend as backend

DATA_DIR = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
RTOL, ATOL = 1e-3, 1e-5
DFT_TOL = 1e-4
CASE_SECONDS = 60


@dataclass
class CaseResult:
    name: str
    passed: bool
    message: str = ""
    seconds: float = 0.0


class CaseTimeout(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: int) -> Iterator[None]:
    if not hasattr(signal, "SIGALRM") or seconds <= 0:
        yield
        return

    def on_alarm(signum, frame):  # noqa: ARG001
        raise CaseTimeout(f"case took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _tolerance(name: str) -> tuple[float, float]:
    if re.search(r"dft|stft", name, re.IGNORECASE):
        return DFT_TOL, DFT_TOL
    return RTOL, ATOL


def _normalize(item):
    if isinstance(item, onnx.TensorProto):
        return numpy_helper.to_array(item)
    if isinstance(item, list):
        return [_normalize(x) for x in item]
    return item


def _load_pb(path: str, type_proto: onnx.TypeProto):
    data = open(path, "rb").read()
    which = type_proto.WhichOneof("value")
    if which == "sequence_type":
        proto = onnx.SequenceProto()
        proto.ParseFromString(data)
        return numpy_helper.to_list(proto)
    if which == "optional_type":
        proto = onnx.OptionalProto()
        proto.ParseFromString(data)
        return numpy_helper.to_optional(proto)
    if which == "map_type":
        proto = onnx.MapProto()
        proto.ParseFromString(data)
        return numpy_helper.to_dict(proto)
    proto = onnx.TensorProto()
    proto.ParseFromString(data)
    return numpy_helper.to_array(proto)


def _disk_data_sets(model: onnx.ModelProto, model_dir: str) -> list[tuple[list, list]]:
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    sets = []
    for ds in sorted(glob.glob(os.path.join(model_dir, "test_data_set_*"))):
        n_in = len(glob.glob(os.path.join(ds, "input_*.pb")))
        n_out = len(glob.glob(os.path.join(ds, "output_*.pb")))
        ins = [_load_pb(os.path.join(ds, f"input_{i}.pb"), inputs[i].type) for i in range(n_in)]
        outs = [_load_pb(os.path.join(ds, f"output_{i}.pb"), model.graph.output[i].type)
                for i in range(n_out)]
        sets.append((ins, outs))
    return sets


def _light_data_sets(model: onnx.ModelProto) -> list[tuple[list, list]]:
    """Light models ship no inputs: compare with ONNX Runtime on a random input."""
    import onnxruntime

    sess = onnxruntime.InferenceSession(model.SerializeToString(),
                                        providers=["CPUExecutionProvider"])
    arg = sess.get_inputs()[0]
    x = np.random.default_rng(0).random(arg.shape, dtype=np.float32)
    return [([x], sess.run(None, {arg.name: x}))]


def iter_cases(kind: str) -> Iterator[tuple[str, onnx.ModelProto, list, float, float]]:
    """``(name, model, data_sets, rtol, atol)`` for every case of a suite kind."""
    if kind == "node":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cases = load_model_tests(kind="node")
        for case in sorted(cases, key=lambda c: c.name):
            rtol, atol = _tolerance(case.name)
            sets = [([_normalize(x) for x in ins], [_normalize(x) for x in outs])
                    for ins, outs in case.data_sets]
            yield case.name, case.model, sets, rtol, atol
        return
    if kind == "light":
        for path in sorted(glob.glob(os.path.join(DATA_DIR, "light", "*.onnx"))):
            model = onnx.load(path)
            name = "test_" + os.path.basename(path)[len("light_"):-5]
            yield name, model, _light_data_sets(model), RTOL, ATOL
        return
    for case_dir in sorted(glob.glob(os.path.join(DATA_DIR, kind, "test_*"))):
        path = os.path.join(case_dir, "model.onnx")
        if not os.path.exists(path):
            continue  # models that would have to be downloaded
        model = onnx.load(path)
        name = os.path.basename(case_dir)
        rtol, atol = _tolerance(name)
        yield name, model, _disk_data_sets(model, case_dir), rtol, atol


def assert_similar(expected, got, rtol: float, atol: float) -> None:
    """onnx's comparison, extended to sequences of 0-d tensors and empty optionals.

    ``Runner.assert_similar_outputs`` calls ``len()`` on each element of a sequence output,
    which fails for 0-d tensors (e.g. ``test_loop16_seq_none``); recurse ourselves instead.
    """
    if expected is None or got is None:
        assert expected is None and got is None, f"expected {expected!r}, got {got!r}"
        return
    if isinstance(expected, (list, tuple)):
        assert isinstance(got, (list, tuple)), f"expected a sequence, got {type(got).__name__}"
        assert len(got) == len(expected), f"sequence of {len(got)}, expected {len(expected)}"
        for e, g in zip(expected, got):
            assert_similar(e, g, rtol, atol)
        return
    Runner.assert_similar_outputs([expected], [got], rtol=rtol, atol=atol)


def run_case(name: str, model: onnx.ModelProto, data_sets: list, rtol: float,
             atol: float, runtime=backend) -> CaseResult:
    start = time.perf_counter()
    try:
        with _time_limit(CASE_SECONDS), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rep = runtime.prepare(model, "CPU")
            for inputs, expected in data_sets:
                outputs = rep.run(inputs)
                assert len(outputs) == len(expected), \
                    f"{len(outputs)} outputs, expected {len(expected)}"
                for got, want in zip(outputs, expected):
                    assert_similar(want, got, rtol, atol)
    except Exception as exc:  # noqa: BLE001 - every failure is a counted result
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        return CaseResult(name, False, f"{type(exc).__name__}: {first}",
                          time.perf_counter() - start)
    return CaseResult(name, True, "", time.perf_counter() - start)


def onnxruntime_backend():
    """ONNX Runtime's own ``onnx.backend`` implementation, for side-by-side counts."""
    import onnxruntime
    import onnxruntime.backend

    onnxruntime.set_default_logger_severity(3)
    return onnxruntime.backend


def run_suite(kind: str, pattern: str | None = None, runtime=backend) -> list[CaseResult]:
    results = []
    for name, model, sets, rtol, atol in iter_cases(kind):
        if pattern and not re.search(pattern, name):
            continue
        results.append(run_case(name, model, sets, rtol, atol, runtime))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["node", "simple", "pytorch-converted",
                                         "pytorch-operator", "light"])
    parser.add_argument("-k", dest="pattern", help="regex selecting case names")
    parser.add_argument("-v", action="store_true", help="print every case")
    parser.add_argument("--onnxruntime", action="store_true",
                        help="run ONNX Runtime's backend instead, for comparison")
    args = parser.parse_args(argv)
    runtime = onnxruntime_backend() if args.onnxruntime else backend
    results = run_suite(args.kind, args.pattern, runtime)
    for r in results:
        if args.v or not r.passed:
            print(f"{'PASS' if r.passed else 'FAIL'} {r.name} ({r.seconds:.2f}s) {r.message}")
    passed = sum(r.passed for r in results)
    print(f"{args.kind}: {passed} passed, {len(results) - passed} failed of {len(results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
