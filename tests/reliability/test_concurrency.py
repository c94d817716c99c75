"""One session, many threads (ORT's promise: ``run`` is thread-safe), and RunOptions.terminate."""

from __future__ import annotations

import threading
import time

import numpy as np
import onnxruntime
import onnxruntime.capi.onnxruntime_pybind11_state as OrtC
import pytest
from fuzz_seeds import onnx_seeds
from onnx import TensorProto, helper, numpy_helper

import pyflame_rt as ort
from pyflame_rt.capi import onnxruntime_pybind11_state as C
from pyflame_rt.errors import RunTerminatedError

THREADS = 8
RUNS = 200


def _inputs(seed, count: int, rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    """``count`` different feeds for ``seed``, batch size varying where the model allows."""
    feeds = []
    for i in range(count):
        feed = {}
        for name, value in seed.feeds.items():
            if value.dtype.kind != "f":
                feed[name] = value if name != "c" else np.array(i % 2 == 0)
                continue
            shape = (1 + i % 3, *value.shape[1:]) if value.ndim > 0 else value.shape
            feed[name] = rng.standard_normal(shape).astype(value.dtype)
        feeds.append(feed)
    return feeds


@pytest.mark.parametrize("seed", [s for s in onnx_seeds() if s.name in
                                  ("mlp", "cnn", "control_flow", "transformer")],
                         ids=lambda s: s.name)
@pytest.mark.parametrize("intra_op_threads", [0, 2])
def test_threads_share_one_session(seed, intra_op_threads: int) -> None:
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    sess = ort.InferenceSession(seed.data, options)
    feeds = _inputs(seed, THREADS * RUNS, np.random.default_rng(11))
    expected = [sess.run(None, f) for f in feeds]  # the single-threaded answers
    barrier = threading.Barrier(THREADS)
    mismatches: list[str] = []
    errors: list[BaseException] = []
    done = [0] * THREADS

    def worker(t: int) -> None:
        try:
            barrier.wait()
            for i in range(t, len(feeds), THREADS):  # interleaved: neighbours differ in shape
                got = sess.run(None, feeds[i])
                for k, (g, e) in enumerate(zip(got, expected[i], strict=True)):
                    if g.shape != e.shape or not np.array_equal(g, e, equal_nan=True):
                        mismatches.append(f"thread {t} run {i} output {k}")
                done[t] += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not any(th.is_alive() for th in threads), "a thread hung"
    assert not errors, errors[:3]
    assert not mismatches, mismatches[:10]
    assert done == [RUNS] * THREADS


def test_threads_with_different_output_subsets() -> None:
    """Fetching different outputs at once must not mix up which steps run (pruned plans)."""
    seed = next(s for s in onnx_seeds() if s.name == "control_flow")
    sess = ort.InferenceSession(seed.data)
    options = ort.RunOptions()
    options.only_execute_path_to_fetches = True
    feeds = _inputs(seed, 64, np.random.default_rng(3))
    full = [sess.run(None, f) for f in feeds]
    errors: list[str] = []

    def worker(t: int) -> None:
        for i, f in enumerate(feeds):
            pick = (i + t) % 3
            names = [["y"], ["final"], ["final", "y"]][pick]
            got = sess.run(names, f, options)
            want = [full[i][0] if n == "y" else full[i][1] for n in names]
            if not all(np.array_equal(g, w) for g, w in zip(got, want, strict=True)):
                errors.append(f"thread {t} feed {i} {names}")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not errors, errors[:5]


# -- RunOptions.terminate ---------------------------------------------------------------------
def _loop_model() -> bytes:
    """acc <- acc + 1, ``trips`` times (an input, so one model serves long and short runs)."""
    body = helper.make_graph(
        [helper.make_node("Add", ["acc_in", "one"], ["acc_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [2])])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "", "start"], ["total"], body=body)], "loop",
        [helper.make_tensor_value_info("trips", TensorProto.INT64, []),
         helper.make_tensor_value_info("start", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.array(1.0, np.float32), "one")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                             ir_version=8).SerializeToString()


LOOP = _loop_model()
START = np.zeros(2, np.float32)
FOREVER = np.array(10**12, np.int64)  # ~ days of iterations


def test_terminate_from_another_thread_stops_a_long_run() -> None:
    sess = ort.InferenceSession(LOOP)
    options = ort.RunOptions()
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            sess.run(None, {"trips": FOREVER, "start": START}, options)
            outcome["result"] = "finished"
        except BaseException as exc:  # noqa: BLE001 - inspected below
            outcome["error"] = exc
            outcome["at"] = time.perf_counter()

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.3)
    assert thread.is_alive(), "the loop finished before it could be terminated"
    asked = time.perf_counter()
    options.terminate = True
    thread.join(timeout=10)
    assert not thread.is_alive(), "terminate did not stop the run"
    err = outcome.get("error")
    assert isinstance(err, RunTerminatedError), outcome
    assert isinstance(err, C.Fail)  # ORT raises Fail for a terminated run too
    assert str(err).startswith("the run was terminated by RunOptions.terminate")
    assert "Loop" in str(err)  # names the node that was running
    assert outcome["at"] - asked < 2.0
    # The session is unharmed: a new run (fresh options) gives ORT's answer.
    feeds = {"trips": np.array(5, np.int64), "start": START}
    (total,) = sess.run(None, feeds)
    want = onnxruntime.InferenceSession(LOOP, providers=["CPUExecutionProvider"]).run(None,
                                                                                      feeds)
    np.testing.assert_array_equal(total, want[0])


def test_terminate_set_before_the_run_refuses_at_once_like_onnxruntime() -> None:
    options = ort.RunOptions()
    options.terminate = True
    start = time.perf_counter()
    with pytest.raises(RunTerminatedError, match="terminated by RunOptions.terminate"):
        ort.InferenceSession(LOOP).run(None, {"trips": FOREVER, "start": START}, options)
    assert time.perf_counter() - start < 1.0
    ort_options = onnxruntime.RunOptions()
    ort_options.terminate = True
    with pytest.raises(OrtC.Fail, match="terminate flag"):
        onnxruntime.InferenceSession(LOOP, providers=["CPUExecutionProvider"]).run(
            None, {"trips": FOREVER, "start": START}, ort_options)


def test_terminate_stops_only_the_run_it_belongs_to() -> None:
    sess = ort.InferenceSession(LOOP)
    long_options = ort.RunOptions()
    errors: list[BaseException] = []
    short_results: list[np.ndarray] = []

    def long_run() -> None:
        try:
            sess.run(None, {"trips": FOREVER, "start": START}, long_options)
        except BaseException as exc:  # noqa: BLE001 - inspected below
            errors.append(exc)

    def short_runs() -> None:
        for n in range(20):
            short_results.append(sess.run(None, {"trips": np.array(n, np.int64),
                                                 "start": START}, ort.RunOptions())[0])

    long_thread = threading.Thread(target=long_run)
    long_thread.start()
    time.sleep(0.1)
    short_thread = threading.Thread(target=short_runs)
    short_thread.start()
    short_thread.join(timeout=60)
    long_options.terminate = True
    long_thread.join(timeout=10)
    assert not long_thread.is_alive() and not short_thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], RunTerminatedError)
    assert [r.tolist() for r in short_results] == [[float(n)] * 2 for n in range(20)]
