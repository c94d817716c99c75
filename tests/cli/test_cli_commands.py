"""Every ``pyflame-rt`` command, run as a subprocess on real models, output checked.

Numbers are checked against ONNX Runtime (outputs), against ONNX's own protobuf (parameter
counts) or against FLOPs worked out by hand from the model's shapes, never against our output.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import onnx
import pytest
from cli_util import assert_one_line_error, conv_mlp_model, ort_run, pyflame_rt

import pyflame_rt as ort
from pyflame_rt.backends.cpu.conv import nchwc
from pyflame_rt.models import demo_model_path, make_batch

COMMANDS = ["demo", "run", "bench", "inspect", "optimize", "convert", "profile", "compare",
            "warmup"]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A folder with the demo model (``demo.onnx``, ``demo.pfm``) and a small helper model."""
    folder = tmp_path_factory.mktemp("cli")
    shutil.copy(demo_model_path(), folder / "demo.onnx")
    ort.save(ort.load(demo_model_path()), str(folder / "demo.pfm"))
    onnx.save(conv_mlp_model(), str(folder / "small.onnx"))
    return folder


# -- help and errors ---------------------------------------------------------------------------
def test_every_command_has_help_with_examples():
    script = ("import sys\nfrom pyflame_rt.cli import main\n"
              f"for cmd in [None] + {COMMANDS!r}:\n"
              "    print('=== ' + str(cmd), flush=True)\n"
              "    try:\n"
              "        main(([cmd] if cmd else []) + ['--help'])\n"
              "    except SystemExit as e:\n"
              "        print('=== exit', e.code, flush=True)\n")
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    sections = proc.stdout.split("=== ")[1:]
    assert len(sections) == 2 * (len(COMMANDS) + 1)
    for head, tail in zip(sections[::2], sections[1::2]):
        assert tail.strip() == "exit 0", (head, tail)
        assert "Usage: pyflame-rt" in head and "Example" in head, head
    top = sections[0]
    for cmd in COMMANDS:
        assert f"  {cmd}" in top, cmd


def test_version():
    result = pyflame_rt("--version")
    assert result.code == 0, str(result)
    assert ort.__version__ in result.out


@pytest.mark.parametrize("args", [
    ["inspect", "no_such_model.onnx"],
    ["run", "garbage.onnx", "--random"],
    ["bench", "demo.onnx", "--iterations", "many"],
], ids=lambda a: " ".join(a))
def test_bad_input_gives_one_line_error(work, args):
    (work / "garbage.onnx").write_bytes(b"this is not a model")
    result = pyflame_rt(*args, cwd=str(work))
    assert_one_line_error(result)


MORE_BAD_INPUTS = [
    (["run", "demo.onnx"], 2),  # no data for the input and no --random
    (["run", "demo.pfm", "--random", "--shapes", "image:2x1x32"], 1),  # wrong rank
    (["run", "demo.onnx", "--input", "image=missing.npy"], 1),
    (["compare", "demo.onnx", "--against", "tensorflow"], 1),
    (["compare", "demo.opt.bad.pfm"], 1),
    (["convert", "demo.onnx", "-o", "demo.txt"], 1),
    (["convert", "missing.pt", "-o", "out.onnx"], 1),
    (["convert", "demo.onnx", "-o", "x.pfm", "--shapes", "x:1"], 2),
    (["optimize", "demo.onnx", "-o", "out.onnx", "--disable", "no_such_pass"], 2),
    (["optimize", "demo.onnx"], 2),  # -o is required
    (["profile", "demo.onnx", "--runs", "0"], 1),
    (["bench", "demo.onnx", "--compare", "tensorrt"], 2),
    (["nosuchcommand"], 2),
]


def test_more_bad_inputs_give_one_line_errors(work):
    """Many bad command lines through the real entry point, in one subprocess to save time."""
    import subprocess
    import sys

    script = ("import contextlib, io, json, sys\n"
              "from pyflame_rt.cli import main\n"
              "results = []\n"
              "for argv in json.loads(sys.argv[1]):\n"
              "    err, out = io.StringIO(), io.StringIO()\n"
              "    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):\n"
              "        try:\n"
              "            main(argv)\n"
              "            code = 0\n"
              "        except SystemExit as e:\n"
              "            code = e.code\n"
              "    results.append([code, out.getvalue(), err.getvalue()])\n"
              "print(json.dumps(results))\n")
    cases = [argv for argv, _ in MORE_BAD_INPUTS]
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(cases)], check=False,
                          capture_output=True, text=True, timeout=300, cwd=str(work))
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for (argv, expected_code), (code, out, err) in zip(MORE_BAD_INPUTS, results):
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == expected_code, (argv, code, out, err)
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err)
        assert "Traceback" not in out + err, (argv, err)


NETS = """
import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return torch.relu(self.fc(x)) * 2.0


def make():
    return Net()
"""


def test_convert_from_a_torch_module_factory(work):
    import importlib.util

    if importlib.util.find_spec("pyflame_rt.io.torch") is None or \
            importlib.util.find_spec("torch") is None:
        # Without the importer (or torch) the command must say so in one line.
        result = pyflame_rt("convert", "nets:make", "-o", "net.pfm", "--shapes", "x:2x4",
                            cwd=str(work))
        assert_one_line_error(result)
        return
    (work / "nets.py").write_text(NETS)
    result = pyflame_rt("convert", "nets:make", "-o", "net.pfm", "--shapes", "x:2x4",
                        "--dynamic-batch", cwd=str(work))
    assert result.code == 0, str(result)
    assert "input  x: float ['batch', 4]" in result.out
    # The converted model computes what the module computes (weights seeded in __init__).
    import torch

    spec = importlib.util.spec_from_file_location("cli_test_nets", work / "nets.py")
    nets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nets)
    x = np.random.default_rng(2).standard_normal((5, 4)).astype(np.float32)
    with torch.no_grad():
        expected = nets.make()(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(work / "net.pfm"))
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], expected, rtol=1e-5, atol=1e-6)


# -- demo and run ------------------------------------------------------------------------------
def test_demo_prints_model_passes_predictions_and_latency():
    result = pyflame_rt("demo", "--runs", "3", "--images", "16")
    assert result.code == 0, str(result)
    out = result.out
    assert "shapes_cnn.onnx" in out
    assert "fuse_conv_relu" in out  # which passes fired
    assert "accuracy : " in out and "on 16 drawn images" in out
    assert "latency  : median" in out


def test_run_matches_onnxruntime(work):
    x = np.random.default_rng(3).standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.save(work / "x.npy", x)
    result = pyflame_rt("run", "small.onnx", "--input", "x=x.npy", "--output", "out.npz",
                        cwd=str(work))
    assert result.code == 0, str(result)
    assert "y: shape [2, 5] dtype float32" in result.out
    with np.load(work / "out.npz") as data:
        ours = data["y"]
    expected = ort_run(str(work / "small.onnx"), {"x": x})[0]
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


def test_run_pfm_with_random_inputs(work):
    result = pyflame_rt("run", "demo.pfm", "--random", "--shapes", "image:3x1x32x32",
                        cwd=str(work))
    assert result.code == 0, str(result)
    assert "probabilities: shape [3, 5] dtype float32" in result.out


# -- bench -------------------------------------------------------------------------------------
def test_bench_compare_prints_both_columns(work):
    result = pyflame_rt("bench", "demo.onnx", "--iterations", "5", "--warmup", "1",
                        "--compare", "onnxruntime", cwd=str(work))
    assert result.code == 0, str(result)
    lines = result.out.splitlines()
    assert ["pyflame-rt", "onnxruntime", "ratio"] in [line.split() for line in lines]
    for label in ("session build", "first run", "latency min", "latency mean", "latency median",
                  "latency p90", "latency p95", "latency p99", "latency max", "throughput"):
        row = next(line for line in lines if line.startswith(label))
        cells = row[len(label):].split()
        # unit, ours, ORT, ratio (e.g. "ms 0.712 0.130 5.48x")
        assert len(cells) == 4 and cells[-1].endswith("x"), row
        ours, theirs = float(cells[1]), float(cells[2])
        assert ours > 0 and theirs > 0
        assert float(cells[3][:-1]) == pytest.approx(ours / theirs, rel=0.02, abs=0.01)
    assert "peak RSS" in result.out


def test_bench_json_and_plot(work):
    result = pyflame_rt("bench", "demo.pfm", "--iterations", "4", "--warmup", "0",
                        "--shapes", "image:2x1x32x32", "--json", "--plot", "lat.png",
                        cwd=str(work))
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # the plot extra is optional: then --plot must fail cleanly
        assert_one_line_error(result)
        assert "matplotlib" in result.err
        return
    assert result.code == 0, str(result)
    data = json.loads(result.out)
    engine = data["engines"]["pyflame-rt"]
    assert engine["iterations"] == 4
    lat = engine["latency_ms"]
    assert lat["min"] <= lat["median"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert data["inputs"]["image"]["shape"] == [2, 1, 32, 32]
    assert data["peak_rss_bytes"] > 10 * 2**20
    assert (work / "lat.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- inspect -----------------------------------------------------------------------------------
def _expected_small_flops(n: int) -> dict[str, int]:
    """Hand-worked FLOPs of ``conv_mlp_model`` at batch ``n`` (2 per multiply-accumulate)."""
    conv_out = n * 4 * 8 * 8
    return {
        "conv": 2 * conv_out * 3 * 3 * 3 + conv_out,  # MACs + bias
        "relu": conv_out,
        "pool": n * 4 * 4 * 4 * 2 * 2,  # each output reads a 2x2 window
        "flatten": 0,
        "matmul": 2 * n * 5 * 64,
        "add": n * 5,
        "softmax": 5 * n * 5,
    }


def test_inspect_json_counts_parameters_and_flops(work):
    result = pyflame_rt("inspect", "small.onnx", "--shapes", "x:3x3x8x8", "--json",
                        cwd=str(work))
    assert result.code == 0, str(result)
    data = json.loads(result.out)
    proto = onnx.load(str(work / "small.onnx"))
    sizes = [onnx.numpy_helper.to_array(t).size for t in proto.graph.initializer]
    assert data["parameters"] == sum(sizes)
    assert data["parameter_bytes"] == 4 * sum(sizes)
    expected = _expected_small_flops(3)
    assert {n["name"]: n["flops"] for n in data["nodes"]} == expected
    assert data["flops_total"] == sum(expected.values())
    assert data["inputs"] == [{"name": "x", "type": "tensor(float)", "shape": ["n", 3, 8, 8]}]
    assert data["opsets"] == {"": 17}
    assert data["op_histogram"]["Conv"] == 1 and data["node_count"] == 7
    assert data["unsupported_ops"] == {}


def test_inspect_text_and_dot(work):
    result = pyflame_rt("inspect", "demo.onnx", "--dot", "demo.dot", cwd=str(work))
    assert result.code == 0, str(result)
    out = result.out
    assert "image: tensor(float) ['batch', 1, 32, 32]" in out  # symbolic dims kept
    assert "ai.onnx 17" in out
    histogram = {line.split()[0]: int(line.split()[1]) for line in
                 out.split("op histogram:")[1].split("FLOPs per node")[0].strip().splitlines()}
    proto = onnx.load(str(work / "demo.onnx"))
    expected_hist: dict[str, int] = {}
    for node in proto.graph.node:
        expected_hist[node.op_type] = expected_hist.get(node.op_type, 0) + 1
    assert histogram == expected_hist
    assert "/4/Conv" in out and "total FLOPs" in out
    dot = (work / "demo.dot").read_text()
    assert dot.startswith("digraph")
    assert dot.count("shape=box") == len(proto.graph.node)
    # one edge per node-to-node use, plus graph input and output edges
    inner = sum(1 for n in proto.graph.node for i in n.input
                if any(i in m.output for m in proto.graph.node))
    assert dot.count(" -> ") == inner + 1 + 1


def test_inspect_lists_unsupported_ops(work):
    node = onnx.helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")
    graph = onnx.helper.make_graph(
        [node], "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17),
                                                         onnx.helper.make_opsetid("com.example",
                                                                                  1)])
    onnx.save(model, str(work / "custom.onnx"))
    result = pyflame_rt("inspect", "custom.onnx", cwd=str(work))
    assert result.code == 0, str(result)
    assert "unsupported : no kernel in this build for" in result.out
    assert "com.example::Frobnicate" in result.out


# -- optimize and convert ----------------------------------------------------------------------
def test_optimize_reports_and_saves(work):
    result = pyflame_rt("optimize", "demo.onnx", "-o", "demo.opt.pfm", cwd=str(work))
    assert result.code == 0, str(result)
    assert "15 -> 11 nodes" in result.out
    assert "fuse_conv_relu" in result.out and "passes:" in result.out
    saved = ort.load(str(work / "demo.opt.pfm"))
    assert [n.op_type for n in saved.graph.nodes].count("FusedConv") == 4
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(work / "demo.opt.pfm"), options)
    images, _ = make_batch(3, seed=1)
    expected = ort_run(str(work / "demo.onnx"), {"image": images})[0]
    np.testing.assert_allclose(sess.run(None, {"image": images})[0], expected, atol=1e-5)


def test_convert_round_trip_onnx_pfm_onnx(work):
    first = pyflame_rt("convert", "small.onnx", "-o", "small.pfm", cwd=str(work))
    assert first.code == 0, str(first)
    assert (work / "small.pfm").read_bytes()[:8] == b"PFMODEL\0"
    second = pyflame_rt("convert", "small.pfm", "-o", "back.onnx", cwd=str(work))
    assert second.code == 0, str(second)
    assert "(PFM) -> back.onnx (ONNX" in second.out
    x = np.random.default_rng(5).standard_normal((2, 3, 8, 8)).astype(np.float32)
    # ONNX Runtime runs the converted file and agrees with the original.
    np.testing.assert_allclose(ort_run(str(work / "back.onnx"), {"x": x})[0],
                               ort_run(str(work / "small.onnx"), {"x": x})[0], atol=1e-6)


# -- profile -----------------------------------------------------------------------------------
def test_profile_writes_ort_layout_chrome_trace(work):
    result = pyflame_rt("profile", "demo.onnx", "-o", "trace.json", "--runs", "3",
                        "--warmup", "1", "--top", "4", cwd=str(work))
    assert result.code == 0, str(result)
    events = json.loads((work / "trace.json").read_text())
    assert isinstance(events, list)
    for ev in events:
        assert {"cat", "name", "ph", "ts", "dur", "pid", "tid", "args"} <= set(ev), ev
        assert ev["ph"] == "X"
    runs = [e for e in events if e["cat"] == "Session" and e["name"] == "model_run"]
    nodes = [e for e in events if e["cat"] == "Node"]
    assert len(runs) == 3  # the warm-up run is not in the trace
    executed = [n.name for n in ort.InferenceSession(str(work / "demo.onnx")).graph.nodes]
    assert len(nodes) == 3 * len(executed)  # one X event per executed node per run
    assert sorted(e["name"] for e in nodes) == sorted(f"{n}_kernel_time" for n in executed * 3)
    # The first convolution (1 -> 16 channels): fused with its Relu, and in the CPU's
    # channel-blocked layout when the layout pass converted the demo's conv chain.
    convs = [e for e in nodes if e["args"]["op_name"] in ("FusedConv", "BlockedConv")]
    conv = next(e for e in convs if e["args"]["input_type_shape"][0] == {"shape": [1, 1, 32, 32]})
    block = nchwc.vector_width()
    expected = [1, 16, 32, 32] if conv["args"]["op_name"] == "FusedConv" else \
        [1, -(-16 // block), 32, 32, block]
    assert conv["args"]["output_type_shape"] == [{"shape": expected}]
    # every node event lies inside a model_run event
    for e in nodes:
        assert any(r["ts"] <= e["ts"] and e["ts"] + e["dur"] <= r["ts"] + r["dur"] + 1
                   for r in runs), e
    assert "top 4 nodes by time" in result.out and "top 4 op types by time" in result.out
    assert conv["args"]["op_name"] in result.out


# -- compare -----------------------------------------------------------------------------------
BROKEN_MAXPOOL = '''
import numpy as np
import pyflame_rt
from pyflame_rt.ops import lookup

_good = lookup("MaxPool", "", 17).fn

@pyflame_rt.register_op("MaxPool", since=17)
def broken_maxpool(x, **attrs):
    y = _good(x, **attrs)
    return (y[0] if isinstance(y, tuple) else y) + np.float32(0.5)
'''

BROKEN_FUSED_CONV = '''
import numpy as np
import pyflame_rt
from pyflame_rt.ops import lookup

_good = lookup("FusedConv", "pyflame").fn

@pyflame_rt.register_op("FusedConv", domain="pyflame", since=1)
def broken_fused_conv(*inputs, **attrs):
    return _good(*inputs, **attrs) * np.float32(1.01)
'''


def test_compare_passes_on_a_correct_model(work):
    result = pyflame_rt("compare", "demo.onnx", cwd=str(work))
    assert result.code == 0, str(result)
    assert "PASSED" in result.out
    assert "/17/Softmax" in result.out and "onnxruntime" in result.out


def test_compare_finds_the_corrupted_node_against_onnxruntime(work):
    (work / "broken_maxpool.py").write_text(BROKEN_MAXPOOL)
    result = pyflame_rt("--plugin", "broken_maxpool.py", "compare", "demo.onnx", "--json",
                        cwd=str(work))
    assert result.code == 1, str(result)
    data = json.loads(result.out)
    assert data["passed"] is False
    first = data["first_divergence"]
    assert first["node"] == "/3/MaxPool" and first["op_type"] == "MaxPool"
    assert first["max_abs"] == pytest.approx(0.5, rel=1e-3)
    # every tensor before it in topological order that was compared matches
    tensors = [t["tensor"] for t in data["tensors"]]
    before = data["tensors"][:tensors.index(first["tensor"])]
    assert all(t["status"] != "DIVERGED" for t in before)


def test_compare_level_none_blames_the_fused_node(work):
    (work / "broken_fused.py").write_text(BROKEN_FUSED_CONV)
    result = pyflame_rt("--plugin", "broken_fused.py", "compare", "demo.onnx", "--against",
                        "level=none", "--only-failures", cwd=str(work))
    assert result.code == 1, str(result)
    # The Relu output is what the first FusedConv computes (the fusion keeps the replaced
    # value's name): it is blamed on the fused node, whose inputs all match.
    assert "first divergence: node '/2/Relu' (Relu), output '/2/Relu_output_0'" in result.out
    assert "computed by pyflame::FusedConv '/0/Conv__0'" in result.out
    assert "its inputs match, so this node introduces the error" in result.out
    assert "FAILED" in result.out


def test_compare_reference_on_pfm(work):
    result = pyflame_rt("compare", "small.pfm" if os.path.exists(work / "small.pfm")
                        else "small.onnx", "--against", "reference", "--level", "none",
                        cwd=str(work))
    assert result.code == 0, str(result)
    assert "onnx.reference" in result.out and "PASSED: all 7 compared tensors match" in result.out
