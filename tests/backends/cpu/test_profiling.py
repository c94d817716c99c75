"""The Chrome trace holds every executed node, If/Loop/Scan bodies included (per iteration).

ONNX Runtime's own trace of the same model is the oracle for which node events exist.
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

import pyflame_rt as ort

F = TensorProto.FLOAT
B = TensorProto.BOOL
I64 = TensorProto.INT64


def _control_flow_model():
    """x -> Loop(trip) whose body adds x and runs an If on (i < 2) -> If(cond) -> z.

    The Loop body holds a nested If, so a node two levels deep appears in the trace too.
    """
    inner_then = helper.make_graph(
        [helper.make_node("Mul", ["acc_out", "two"], ["it"], name="inner_mul")], "inner_then",
        [], [helper.make_tensor_value_info("it", F, [3])])
    inner_else = helper.make_graph(
        [helper.make_node("Neg", ["acc_out"], ["ie"], name="inner_neg")], "inner_else", [],
        [helper.make_tensor_value_info("ie", F, [3])])
    body = helper.make_graph(
        [helper.make_node("Add", ["acc_in", "x"], ["acc_out"], name="body_add"),
         helper.make_node("Less", ["i", "limit"], ["small"], name="body_less"),
         helper.make_node("If", ["small"], ["scan_out"], name="body_if",
                          then_branch=inner_then, else_branch=inner_else),
         helper.make_node("Identity", ["cond_in"], ["cond_out"], name="body_cond")],
        "body",
        [helper.make_tensor_value_info("i", I64, []),
         helper.make_tensor_value_info("cond_in", B, []),
         helper.make_tensor_value_info("acc_in", F, [3])],
        [helper.make_tensor_value_info("cond_out", B, []),
         helper.make_tensor_value_info("acc_out", F, [3]),
         helper.make_tensor_value_info("scan_out", F, [3])])
    then_g = helper.make_graph([helper.make_node("Mul", ["y", "two"], ["t"], name="then_mul")],
                               "then", [], [helper.make_tensor_value_info("t", F, [3])])
    else_g = helper.make_graph([helper.make_node("Neg", ["y"], ["e"], name="else_neg")],
                               "else", [], [helper.make_tensor_value_info("e", F, [3])])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trip", "", "x"], ["y", "ys"], body=body, name="my_loop"),
         helper.make_node("If", ["cond"], ["z"], name="my_if", then_branch=then_g,
                          else_branch=else_g)],
        "control_flow",
        [helper.make_tensor_value_info("x", F, [3]),
         helper.make_tensor_value_info("trip", I64, []),
         helper.make_tensor_value_info("cond", B, [])],
        [helper.make_tensor_value_info("z", F, [3]),
         helper.make_tensor_value_info("ys", F, None)],
        [numpy_helper.from_array(np.array(2.0, np.float32), "two"),
         numpy_helper.from_array(np.array(2, np.int64), "limit")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _scan_model():
    """Running sum over the rows of x with Scan (one body Add per row)."""
    body = helper.make_graph(
        [helper.make_node("Add", ["s_in", "row"], ["s_out"], name="scan_add"),
         helper.make_node("Identity", ["s_out"], ["row_out"], name="scan_copy")],
        "scan_body",
        [helper.make_tensor_value_info("s_in", F, [2]),
         helper.make_tensor_value_info("row", F, [2])],
        [helper.make_tensor_value_info("s_out", F, [2]),
         helper.make_tensor_value_info("row_out", F, [2])])
    graph = helper.make_graph(
        [helper.make_node("Scan", ["s0", "x"], ["s", "rows"], name="my_scan", body=body,
                          num_scan_inputs=1)],
        "scan",
        [helper.make_tensor_value_info("s0", F, [2]),
         helper.make_tensor_value_info("x", F, [4, 2])],
        [helper.make_tensor_value_info("s", F, [2]),
         helper.make_tensor_value_info("rows", F, [4, 2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _kernel_events(events):
    return [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]


def _ours_trace(model, feeds, tmp_path, runs=1):
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.profile_file_prefix = str(tmp_path / "ours_")
    session = ort.InferenceSession(model.SerializeToString(), options)
    for _ in range(runs):
        outputs = session.run(None, feeds)
    with open(session.end_profiling(), encoding="utf-8") as fh:
        return json.load(fh), outputs, session


def _ort_trace(model, feeds, tmp_path, runs=1):
    options = onnxruntime.SessionOptions()
    options.enable_profiling = True
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.profile_file_prefix = str(tmp_path / "ort_")
    session = onnxruntime.InferenceSession(model.SerializeToString(), options,
                                           providers=["CPUExecutionProvider"])
    for _ in range(runs):
        outputs = session.run(None, feeds)
    with open(session.end_profiling(), encoding="utf-8") as fh:
        return json.load(fh), outputs


@pytest.mark.parametrize("trip,cond", [(3, True), (4, False), (0, True)])
def test_trace_has_one_event_per_executed_node_including_bodies(tmp_path, trip, cond):
    model = _control_flow_model()
    feeds = {"x": np.array([1.0, -2.0, 3.0], np.float32), "trip": np.array(trip, np.int64),
             "cond": np.array(cond)}
    ours, got, _ = _ours_trace(model, feeds, tmp_path, runs=2)
    theirs, expected = _ort_trace(model, feeds, tmp_path, runs=2)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-6)
    our_names = Counter(e["name"] for e in _kernel_events(ours))
    ort_names = Counter(e["name"] for e in _kernel_events(theirs))
    assert our_names == ort_names
    # Worked out from the model: per run, Loop + If at the top, 4 body nodes and one inner
    # branch node per iteration, one outer branch node.
    assert sum(our_names.values()) == 2 * (2 + 5 * trip + 1)
    assert our_names["body_add_kernel_time"] == 2 * trip
    assert our_names["inner_mul_kernel_time"] == 2 * min(trip, 2)
    assert our_names["inner_neg_kernel_time"] == 2 * max(trip - 2, 0)
    assert our_names[("then_mul" if cond else "else_neg") + "_kernel_time"] == 2


def test_body_events_name_their_parent_and_lie_inside_it(tmp_path):
    model = _control_flow_model()
    feeds = {"x": np.ones(3, np.float32), "trip": np.array(3, np.int64),
             "cond": np.array(True)}
    events, _, _ = _ours_trace(model, feeds, tmp_path)
    nodes = _kernel_events(events)
    parent_of = {e["name"]: e["args"].get("parent_node") for e in nodes}
    assert parent_of["my_loop_kernel_time"] is None
    assert parent_of["body_add_kernel_time"] == "my_loop"
    assert parent_of["inner_mul_kernel_time"] == "my_loop/body_if"
    assert parent_of["then_mul_kernel_time"] == "my_if"
    loop = next(e for e in nodes if e["name"] == "my_loop_kernel_time")
    for e in nodes:
        if (e["args"].get("parent_node") or "").startswith("my_loop"):
            assert loop["ts"] <= e["ts"] and e["ts"] + e["dur"] <= loop["ts"] + loop["dur"] + 1
    adds = [e for e in nodes if e["name"] == "body_add_kernel_time"]
    assert [a["args"]["input_type_shape"] for a in adds] == [[{"shape": [3]}, {"shape": [3]}]] * 3
    assert all(a["args"]["op_name"] == "Add" for a in adds)


def test_scan_body_events_per_iteration(tmp_path):
    model = _scan_model()
    feeds = {"s0": np.zeros(2, np.float32),
             "x": np.arange(8, dtype=np.float32).reshape(4, 2)}
    ours, _, _ = _ours_trace(model, feeds, tmp_path)
    theirs, _ = _ort_trace(model, feeds, tmp_path)
    our_names = Counter(e["name"] for e in _kernel_events(ours))
    assert our_names == Counter(e["name"] for e in _kernel_events(theirs))
    assert our_names == {"my_scan_kernel_time": 1, "scan_add_kernel_time": 4,
                         "scan_copy_kernel_time": 4}


def test_end_profiling_clears_body_events_too(tmp_path):
    model = _control_flow_model()
    feeds = {"x": np.ones(3, np.float32), "trip": np.array(2, np.int64),
             "cond": np.array(False)}
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / "twice_")
    session = ort.InferenceSession(model.SerializeToString(), options)
    session.run(None, feeds)
    first = session.end_profiling()
    session.run(None, feeds)
    with open(session.end_profiling(), encoding="utf-8") as fh:
        second = _kernel_events(json.load(fh))
    with open(first, encoding="utf-8") as fh:
        assert len(_kernel_events(json.load(fh))) == len(second)
    assert Counter(e["name"] for e in second)["body_add_kernel_time"] == 2


def test_profile_summary_lists_body_nodes_under_their_parent(tmp_path):
    from pyflame_rt.tools.profile import summarize_trace

    model = _control_flow_model()
    feeds = {"x": np.ones(3, np.float32), "trip": np.array(3, np.int64),
             "cond": np.array(True)}
    events, _, _ = _ours_trace(model, feeds, tmp_path)
    summary = summarize_trace(events)
    calls = {name: c for name, _op, _us, c in summary.by_node}
    assert calls["my_loop/body_add"] == 3
    assert calls["my_loop/body_if/inner_mul"] == 2
    assert calls["my_if/then_mul"] == 1
    top = sum(e["dur"] for e in _kernel_events(events) if "parent_node" not in e["args"])
    assert summary.total_node_us == top
