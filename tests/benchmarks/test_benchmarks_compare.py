"""Tests for benchmarks/: the FLOP counter on hand-made graphs, the architectures against
their published parameter counts, and a smoke run of compare.py on one tiny model."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    # Loaded under a private name and without touching sys.path: tests/torch has its own
    # zoo.py, and compare.py imports flops.py only when it benchmarks (in a subprocess here).
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


flops = _load("flops")
compare = _load("compare")


def _model(nodes, inputs, outputs, inits=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _init(name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.zeros(shape, np.float32), name)


def test_conv_flops_count_groups_strides_and_pads():
    # N=2, C_in=8, 9x9 input, 12 filters of 3x3 over 8/4 = 2 channels, stride 2, pad 1:
    # out 5x5, so MACs = 2 * 12 * 5 * 5 * (2 * 3 * 3).
    m = _model([helper.make_node("Conv", ["x", "w"], ["y"], group=4, strides=[2, 2],
                                 pads=[1, 1, 1, 1])],
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8, 9, 9])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
               [_init("w", (12, 2, 3, 3))])
    count = flops.count_flops(m, {"x": (2, 8, 9, 9)})
    assert count.total == 2 * (2 * 12 * 5 * 5 * 2 * 3 * 3)
    assert count.by_op_type == {"Conv": count.total}
    assert count.nodes == 1


def test_matmul_gemm_and_conv_transpose_flops():
    nodes = [
        # (3, 1, 4, 5) @ (2, 5, 6) broadcasts to (3, 2, 4, 6): 3*2*4*6 outputs x 5 MACs
        helper.make_node("MatMul", ["a", "b"], ["ab"]),
        # Gemm with transA: A is (K=7, M=4), B is (7, 9): 4*9 outputs x 7 MACs
        helper.make_node("Gemm", ["ga", "gb"], ["g"], transA=1),
        # ConvTranspose: x (1, 4, 3, 3), w (4, 6 / 2 groups = 3, 2, 2): each of the 36 input
        # elements scatters into 3 * 2 * 2 outputs
        helper.make_node("ConvTranspose", ["x", "w"], ["ct"], group=2),
        helper.make_node("Relu", ["ct"], ["r"]),  # not counted
    ]
    m = _model(nodes,
               [helper.make_tensor_value_info("a", TensorProto.FLOAT, [3, 1, 4, 5]),
                helper.make_tensor_value_info("b", TensorProto.FLOAT, [2, 5, 6]),
                helper.make_tensor_value_info("ga", TensorProto.FLOAT, [7, 4]),
                helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 3, 3])],
               [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                for n in ("ab", "g", "r")],
               [_init("gb", (7, 9)), _init("w", (4, 3, 2, 2))])
    count = flops.count_flops(m, {})
    assert count.by_op_type == {"MatMul": 2 * 3 * 2 * 4 * 6 * 5, "Gemm": 2 * 4 * 9 * 7,
                                "ConvTranspose": 2 * 36 * 3 * 2 * 2}
    assert count.total == sum(count.by_op_type.values())


def test_unknown_shapes_fall_back_to_a_runtime_run():
    # The Reshape target comes from a graph input, so shape inference cannot know the MatMul
    # shapes; with feeds the counter reads them from one ONNX Runtime run.
    m = _model([helper.make_node("Reshape", ["x", "shape"], ["xr"]),
                helper.make_node("MatMul", ["xr", "w"], ["y"])],
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, [24]),
                helper.make_tensor_value_info("shape", TensorProto.INT64, [2])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
               [numpy_helper.from_array(np.ones((4, 5), np.float32), "w")])
    with pytest.raises(ValueError, match="feeds"):
        flops.count_flops(m, {})
    feeds = {"x": np.ones(24, np.float32), "shape": np.array([6, 4], np.int64)}
    count = flops.count_flops(m, {}, feeds=feeds)
    assert count.total == 2 * 6 * 5 * 4
    assert count.shapes_from_runtime == 1


def test_inputs_are_deterministic_and_bert_is_padded():
    a, b = compare.make_inputs("bert-base", 4), compare.make_inputs("bert-base", 4)
    assert sorted(a) == ["attention_mask", "input_ids", "token_type_ids"]
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        assert a[k].shape == (4, 128) and a[k].dtype == np.int64
    # rows have 128, 112, 96, 80 real tokens
    assert a["attention_mask"].sum(axis=1).tolist() == [128, 112, 96, 80]
    assert a["input_ids"].max() < 30522
    img = compare.make_inputs("resnet50", 2)["input"]
    assert img.shape == (2, 3, 224, 224) and img.dtype == np.float32
    with pytest.raises(KeyError, match="suite"):
        compare.make_inputs("alexnet", 1)


def test_check_outputs_flags_mismatches():
    ref = [np.linspace(-1, 1, 50, dtype=np.float32)]
    assert compare.check_outputs([ref[0] + 1e-6], ref, ["y"]) == []
    bad = ref[0].copy()
    bad[3] += 0.01
    (problem,) = compare.check_outputs([bad], ref, ["y"])
    assert "'y'" in problem and "1 of 50" in problem
    (problem,) = compare.check_outputs([ref[0].astype(np.float64)], ref, ["y"])
    assert "float64" in problem


# Published parameter counts (torchvision, Hugging Face, timm). GoogLeNet's differs from
# torchvision's 6,624,904 because our third branch uses the paper's 5x5 convolution, not
# torchvision's 3x3: sum over the nine modules of c5_reduce * c5 * (25 - 9) = 380,928 more.
# BERT-base is Hugging Face's 109,482,240 less the pooler (768 * 768 + 768).
PARAMS = {"resnet50": 25_557_032, "mobilenetv2": 3_504_872, "squeezenet1.1": 1_235_496,
          "googlenet": 6_624_904 + 380_928, "densenet121": 7_978_856, "vgg19": 143_667_240,
          "bert-base": 109_482_240 - 590_592, "gpt2-small": 124_439_808,
          "vit-tiny": 5_717_416}


def test_architectures_match_published_parameter_counts():
    torch = pytest.importorskip("torch", reason="the zoo is written in PyTorch")
    zoo = _load("zoo")
    assert set(zoo.BUILDERS) == set(compare.SUITE) == set(PARAMS)
    classes = {"resnet50": zoo.ResNet50, "mobilenetv2": zoo.MobileNetV2,
               "squeezenet1.1": zoo.SqueezeNet11, "googlenet": zoo.GoogLeNet,
               "densenet121": zoo.DenseNet121, "vgg19": zoo.VGG19, "bert-base": zoo.BertBase,
               "gpt2-small": zoo.GPT2Small, "vit-tiny": zoo.ViTTiny}
    with torch.device("meta"):  # shapes only: no memory, no init time
        counts = {n: sum(p.numel() for p in cls().parameters()) for n, cls in classes.items()}
    assert counts == PARAMS


@pytest.mark.slow  # 7-26 s measured (export, two engine child processes, builds)
def test_compare_smoke_on_squeezenet(tmp_path):
    pytest.importorskip("torch", reason="compare.py exports the model with torch")
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "compare.py"), "--quick", "--models", "squeezenet1.1",
         "--batch", "1", "2", "--threads", "1", "--cache-dir", str(tmp_path / "cache"),
         "--json", str(out)],
        capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "geometric mean" in proc.stdout and "squeezenet1.1" in proc.stdout
    data = json.loads(out.read_text())
    assert data["machine"]["physical_cores"] >= 1
    r1, r2 = data["results"]
    assert (r1["batch"], r2["batch"]) == (1, 2)
    # SqueezeNet 1.1 is 0.35 GMAC at 224x224 (torchvision's figure), i.e. ~0.70 GFLOP
    assert 0.65 < r1["gflop"] < 0.75
    assert math.isclose(r2["gflop"], 2 * r1["gflop"], rel_tol=1e-9)
    for r in (r1, r2):
        assert r["check"] == "ok", r["problems"] or r["error"]
        assert r["ours"]["runs"] == 2 and r["ort"]["runs"] == 2  # --quick: 2 blocks x 1 run
        assert r["ratio"] > 0 and math.isfinite(r["ratio"])
        assert r["ours"]["median_ms"] / r["ort"]["median_ms"] == pytest.approx(r["ratio"])
        for engine in ("ours", "ort"):
            # a process with numpy and an engine loaded is tens of MB, not the parent's size
            assert 20 < r["peak_rss_mb"][engine] < 2000
            assert r["build_s"][engine] > 0 and r["fresh_build_s"][engine] > 0
    assert str(1) in data["geomean_ratio"] and data["geomean_ratio"]["1"] > 0
    # the export is cached: a second run finds it
    assert len(list((tmp_path / "cache").glob("squeezenet1.1-*.onnx"))) == 1
