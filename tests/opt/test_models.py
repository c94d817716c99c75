"""Whole models through every optimization level, against ONNX Runtime.

BERT-, GPT-2- (causal), ViT-, ResNet- and MobileNet-like modules are built in plain PyTorch
(``opt_torch_models``) with random weights and exported with ``torch.onnx.export``. Each level
must preserve the outputs (rtol 1e-3); at ALL the node count must not exceed ONNX Runtime's
after ORT_ENABLE_EXTENDED, and every attention block must become one fused node.
"""

from __future__ import annotations

import collections
import importlib.util
import os
import tempfile

import numpy as np
import onnx
import pytest
from opt_helpers import assert_same_outputs, optimized, session

import pyflame_rt as pf

torch = pytest.importorskip("torch", reason="the exported-model tests need PyTorch")
from opt_torch_models import MODEL_NAMES, build, export

pytestmark = pytest.mark.slow

ATTENTION_BLOCKS = {"bert": 2, "gpt2": 2, "vit": 2, "resnet": 0, "mobilenet": 0}
EMBED_LAYERNORMS = {"bert": 1, "gpt2": 1, "vit": 0, "resnet": 0, "mobilenet": 0}


def _ort_extended(data: bytes, feeds: dict) -> tuple[int, list]:
    import onnxruntime

    so = onnxruntime.SessionOptions()
    so.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    with tempfile.TemporaryDirectory() as tmp:
        so.optimized_model_filepath = os.path.join(tmp, "ort.onnx")
        sess = onnxruntime.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        count = len(onnx.load(so.optimized_model_filepath).graph.node)
    return count, sess.run(None, feeds)


@pytest.mark.parametrize("opset", [14, 17])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_exported_model_every_level_matches_onnxruntime(name, opset, capsys):
    data, feeds = export(name, opset=opset)
    ort_count, expected = _ort_extended(data, feeds)
    for level in (pf.OptLevel.NONE, pf.OptLevel.BASIC, pf.OptLevel.EXTENDED, pf.OptLevel.ALL):
        sess = session(data, level)
        assert_same_outputs(sess.run(None, feeds), expected, rtol=1e-3, atol=1e-4,
                            what=f"{name} opset {opset} at {level.name}")
    ours = len(sess.graph.nodes)
    ops = collections.Counter(n.qualified_op for n in sess.graph.nodes)
    with capsys.disabled():
        print(f"\n{name:<10} opset {opset}: exported {len(onnx.load_from_string(data).graph.node)}"
              f" nodes; ONNX Runtime EXTENDED {ort_count}; PyFlameRT ALL {ours}")
    assert ours <= ort_count, f"{name}: {ours} nodes > ONNX Runtime's {ort_count}: {dict(ops)}"
    assert ops["pyflame::Attention"] == ATTENTION_BLOCKS[name]
    assert ops["pyflame::EmbedLayerNormalization"] == EMBED_LAYERNORMS[name]
    assert ops["Softmax"] == 0


@pytest.mark.parametrize("name", ["bert", "gpt2", "vit"])
def test_dynamic_batch_models_fuse_and_run_at_other_batch_sizes(name):
    data, feeds = export(name, opset=17, dynamic_batch=True)
    sess = session(data)
    ops = collections.Counter(n.qualified_op for n in sess.graph.nodes)
    assert ops["pyflame::Attention"] == ATTENTION_BLOCKS[name]
    import onnxruntime

    ref = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    bigger = {k: np.concatenate([v, v[:1]], axis=0) for k, v in feeds.items()}
    for f in (feeds, bigger):
        assert_same_outputs(sess.run(None, f), ref.run(None, f), rtol=1e-3, atol=1e-4,
                            what=f"{name} batch {next(iter(f.values())).shape[0]}")


def test_conv_batchnorm_survives_export_in_preserve_mode_and_folds():
    model, args, names = build("resnet")
    import io
    import warnings

    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, f, dynamo=False, opset_version=17, input_names=names,
                          training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    data = f.getvalue()
    assert any(n.op_type == "BatchNormalization" for n in onnx.load_from_string(data).graph.node)
    sess = session(data)
    assert sess.optimization_report.rules_fired["fuse_conv_bn"] == 8  # every Conv has a BN
    import onnxruntime

    feeds = {names[0]: args[0].numpy()}
    expected = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"]).run(
        None, feeds)
    assert_same_outputs(sess.run(None, feeds), expected, rtol=1e-3, atol=1e-4)


@pytest.mark.skipif(importlib.util.find_spec("onnxscript") is None,
                    reason="torch's dynamo exporter needs the onnxscript package, which is not "
                           "installed here")
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_dynamo_exported_models_match_onnxruntime(name):
    model, args, _ = build(name)
    data = torch.onnx.export(model, args, dynamo=True).model_proto.SerializeToString()
    proto = onnx.load_from_string(data)
    feeds = {i.name: a.numpy() for i, a in zip(proto.graph.input, args)}
    ort_count, expected = _ort_extended(data, feeds)
    sess = session(data)
    assert_same_outputs(sess.run(None, feeds), expected, rtol=1e-3, atol=1e-4)
    assert len(sess.graph.nodes) <= ort_count


def test_optimized_model_saves_and_reloads(tmp_path):
    data, feeds = export("gpt2", opset=17)
    path = tmp_path / "gpt2_opt.onnx"
    sess = session(data, pf.OptLevel.ALL, optimized_model_filepath=str(path))
    saved = onnx.load(str(path))
    assert any(n.domain == "pyflame" and n.op_type == "Attention" for n in saved.graph.node)
    reloaded = session(str(path), pf.OptLevel.NONE)
    assert_same_outputs(reloaded.run(None, feeds), sess.run(None, feeds), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("path", sorted(
    __import__("glob").glob(os.path.join(os.path.dirname(onnx.__file__), "backend", "test",
                                         "data", "light", "*.onnx"))),
    ids=lambda p: os.path.basename(p)[6:-5])
def test_light_models_at_every_level(path):
    import onnxruntime

    from pyflame_rt.backends.cpu.executor import compile_plan

    ref = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    arg = ref.get_inputs()[0]
    x = np.random.default_rng(0).random(arg.shape, dtype=np.float32)
    expected = ref.run(None, {arg.name: x})
    with open(path, "rb") as fh:
        data = fh.read()
    for level in ("basic", "all"):
        graph, report = optimized(data, level)
        assert report.nodes_after < report.nodes_before
        got = compile_plan(graph).run({arg.name: x})
        assert_same_outputs(got, expected, rtol=1e-3, atol=1e-5, what=f"{path} at {level}")
