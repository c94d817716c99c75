"""``bench --compare`` per-engine peak RSS, ``profile`` on control flow, and ``warmup``."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from cli_util import assert_one_line_error, pyflame_rt
from onnx import TensorProto, helper, numpy_helper

from pyflame_rt.models import demo_model_path

F = TensorProto.FLOAT


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli_more")
    shutil.copy(demo_model_path(), folder / "demo.onnx")
    onnx.save(_loop_model(), str(folder / "loop.onnx"))
    return folder


def _loop_model():
    """acc = x; repeat 3 times: acc = acc + x, then Relu; y = acc * 2."""
    body = helper.make_graph(
        [helper.make_node("Add", ["acc_in", "x"], ["s"], name="body_add"),
         helper.make_node("Relu", ["s"], ["acc_out"], name="body_relu"),
         helper.make_node("Identity", ["cond_in"], ["cond_out"], name="body_cond")],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", F, [2, 3])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", F, [2, 3])])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trip", "", "x"], ["acc"], body=body, name="loop"),
         helper.make_node("Mul", ["acc", "two"], ["y"], name="scale")],
        "loop_model", [helper.make_tensor_value_info("x", F, [2, 3])],
        [helper.make_tensor_value_info("y", F, [2, 3])],
        [numpy_helper.from_array(np.array(3, np.int64), "trip"),
         numpy_helper.from_array(np.array(2.0, np.float32), "two")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


# -- bench: peak RSS per engine ----------------------------------------------------------------
def test_bench_compare_reports_peak_rss_per_engine(work):
    result = pyflame_rt("bench", "demo.onnx", "--iterations", "3", "--warmup", "0",
                        "--compare", "onnxruntime", "--json", cwd=str(work), timeout=300)
    assert result.code == 0, str(result)
    data = json.loads(result.out)
    ours = data["engines"]["pyflame-rt"]["peak_rss_bytes"]
    theirs = data["engines"]["onnxruntime"]["peak_rss_bytes"]
    assert ours > 20 * 2**20 and theirs > 20 * 2**20
    assert "fresh process" in data["peak_rss_scope"]
    assert data["ratio"]["peak_rss"] == pytest.approx(ours / theirs)
    # Measured apart, neither engine's number is the two-engine process's peak.
    assert theirs < data["peak_rss_bytes"]


def test_bench_compare_text_has_a_peak_rss_row_with_a_ratio(work):
    result = pyflame_rt("bench", "demo.onnx", "--iterations", "2", "--warmup", "0",
                        "--compare", "onnxruntime", cwd=str(work), timeout=300)
    assert result.code == 0, str(result)
    row = next(line for line in result.out.splitlines() if line.startswith("peak RSS"))
    unit, ours, theirs, ratio = row[len("peak RSS"):].split()
    assert unit == "MiB" and ratio.endswith("x")
    assert float(ratio[:-1]) == pytest.approx(float(ours) / float(theirs), rel=0.02, abs=0.01)


def test_bench_without_compare_reports_the_process_peak(work):
    result = pyflame_rt("bench", "demo.onnx", "--iterations", "2", "--warmup", "0", "--json",
                        cwd=str(work))
    assert result.code == 0, str(result)
    data = json.loads(result.out)
    assert data["engines"]["pyflame-rt"]["peak_rss_bytes"] == data["peak_rss_bytes"]
    assert "this process" in data["peak_rss_scope"]


# -- profile: nodes inside a Loop body ---------------------------------------------------------
def test_profile_trace_counts_loop_body_nodes_per_iteration(work):
    result = pyflame_rt("profile", "loop.onnx", "-o", "loop_trace.json", "--runs", "2",
                        "--level", "none", "--json", cwd=str(work))
    assert result.code == 0, str(result)
    events = json.loads((work / "loop_trace.json").read_text())
    names = Counter(e["name"] for e in events if e["cat"] == "Node")
    # ONNX Runtime's trace of the same model says which node events a run has.
    options = onnxruntime.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(work / "ort_loop_")
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = onnxruntime.InferenceSession(str(work / "loop.onnx"), options,
                                        providers=["CPUExecutionProvider"])
    for _ in range(2):
        sess.run(None, {"x": np.ones((2, 3), np.float32)})
    with open(sess.end_profiling(), encoding="utf-8") as fh:
        expected = Counter(e["name"] for e in json.load(fh)
                           if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"))
    assert names == expected
    assert names["body_add_kernel_time"] == 2 * 3
    summary = json.loads(result.out)
    assert summary["executed_nodes_per_run"] == 2 + 3 * 3
    by_node = {n["node"]: n["calls"] for n in summary["by_node"]}
    assert by_node["loop/body_relu"] == 6 and by_node["loop"] == 2


# -- warmup ------------------------------------------------------------------------------------
def _numba_cache_dir() -> str:
    """The kernel cache this process uses (set when the CPU backend's threads module loads)."""
    import os

    import numba

    from pyflame_rt.backends.cpu import threads  # noqa: F401 - configures the directory

    return os.environ.get("NUMBA_CACHE_DIR") or numba.config.CACHE_DIR


def test_warmup_compiles_every_kernel_module_into_the_cache(work):
    import subprocess
    import sys

    from pyflame_rt.backends.cpu.codegen.jit import KERNEL_MODULES

    result = pyflame_rt("warmup", "--json", cwd=str(work), timeout=600)
    assert result.code == 0, str(result)
    data = json.loads(result.out)
    # Every numba module, then the generated (LLVM) blocked-layout convolutions.
    assert list(data["kernel_modules"]) == [m.removeprefix("_nb_") for m in KERNEL_MODULES] \
        + ["nchwc"]
    cache = Path(data["numba_cache_dir"])
    assert cache.resolve() == Path(_numba_cache_dir()).resolve()
    indexed = {p.name.split(".")[0] for p in cache.rglob("*.nbi")}
    assert set(KERNEL_MODULES) <= indexed, sorted(indexed)
    # The backend's "compiling on first use" notice must not come up in a later process.
    code = ("import logging; logging.basicConfig()\n"
            "from pyflame_rt.backends.cpu.codegen.jit import warmup; warmup()\n")
    later = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=600, check=True)
    assert "compiling CPU kernels" not in later.stderr


def _big_conv_model():
    """One 3x3 convolution large enough (about 30 MFLOP) for the tactic chooser to time."""
    w = np.random.default_rng(3).standard_normal((32, 32, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "W"], ["y"], name="conv", pads=[1, 1, 1, 1])],
        "big_conv", [helper.make_tensor_value_info("x", F, ["n", 32, 40, 40])],
        [helper.make_tensor_value_info("y", F, ["n", 32, 40, 40])],
        [numpy_helper.from_array(w, "W")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_warmup_model_times_and_caches_its_tactics(work, tmp_path):
    onnx.save(_big_conv_model(), str(work / "big_conv.onnx"))
    # A fresh tactic cache, but the shared (already compiled) kernel cache.
    env = {"PYFLAME_RT_CACHE_DIR": str(tmp_path), "NUMBA_CACHE_DIR": _numba_cache_dir(),
           "PYFLAME_RT_TACTIC_TIMING": "1"}
    result = pyflame_rt("warmup", "--model", "big_conv.onnx", "--shapes", "x:2x32x40x40",
                        "--threads", "1", "--json", cwd=str(work), env=env, timeout=600)
    assert result.code == 0, str(result)
    data = json.loads(result.out)
    assert data["models"][0]["inputs"] == {"x": [2, 32, 40, 40]}
    tactic_file = Path(data["timing_cache"])
    assert tactic_file.parent == tmp_path
    entries = json.loads(tactic_file.read_text())["entries"]
    # Keyed by the conv's geometry, the batch it was timed at and the thread count.
    assert any(key.startswith("c32h40w40m32") and key.endswith("|n2|t1") for key in entries)

    text = pyflame_rt("warmup", "--model", "big_conv.onnx", "--threads", "1", cwd=str(work),
                      env=env, timeout=600)
    assert text.code == 0, str(text)
    assert "tactic cache : " + str(tactic_file) in text.out
    assert "big_conv.onnx (x[1, 32, 40, 40])" in text.out


def test_warmup_bad_model_is_a_one_line_error(work):
    assert_one_line_error(pyflame_rt("warmup", "--model", "missing.onnx", cwd=str(work)))
