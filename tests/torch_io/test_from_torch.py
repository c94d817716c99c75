"""``from_torch``: zoo modules against torch eager, dynamic batch, errors, names, isolation."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

# "torch.nn", not "torch": a namespace package named torch must never satisfy the check.
pytest.importorskip("torch.nn", reason="PyTorch is the optional [torch] extra")
import torch
from torch_util import assert_matches, eager, run, session
from zoo import CASES

from pyflame_rt import OptLevel
from pyflame_rt.errors import (
    InvalidArgumentError,
    InvalidModelError,
    UnsupportedOperatorError,
    ValidationError,
)
from pyflame_rt.io.torch import from_torch

# Converting is the slow part; each module is converted once and run at every level.
_CONVERTED: dict[str, tuple] = {}

# The fast subset keeps the whole file well under a minute; the rest runs with -m slow.
FAST = {"mlp", "cnn_resnet", "depthwise_separable", "causal_decoder_block", "embedding",
        "layer_group_instance_norm", "where_index_slice_cat_split", "softmax_log_softmax",
        "reductions", "lstm_bidirectional_2layer", "interpolate"}
BATCHES = (2, 5)  # the export traces batch 3; both run sizes differ from it


def converted(name: str) -> tuple:
    if name not in _CONVERTED:
        case = CASES[name]
        if "transformers" in case.tags:
            pytest.importorskip("transformers",
                                reason="transformers is a test-only dependency (torch-test)")
        module = case.build()
        model = from_torch(module, case.inputs(3), dynamic_shapes=case.dynamic_shapes())
        _CONVERTED[name] = (module, model)
    return _CONVERTED[name]


def _params():
    for name, case in CASES.items():
        marks = [] if name in FAST and not case.slow else [pytest.mark.slow]
        for level in (OptLevel.NONE, OptLevel.ALL):
            yield pytest.param(name, level, id=f"{name}-{level.name}", marks=marks)


@pytest.mark.parametrize(("name", "level"), list(_params()))
def test_module_matches_eager(name: str, level: OptLevel) -> None:
    module, model = converted(name)
    case = CASES[name]
    sess = session(model, level)
    for batch in BATCHES:
        inputs = case.inputs(batch)
        assert_matches(run(sess, inputs), eager(module, inputs), f"{name} batch={batch}")


def test_zoo_has_twenty_module_kinds() -> None:
    assert len(CASES) >= 20


def test_batch_axis_is_symbolic_and_inputs_keep_forward_names() -> None:
    _, model = converted("causal_decoder_block")
    (x,) = model.graph.inputs
    assert x.name == "x"
    assert x.shape == ("batch", 7, 16)
    out = model.graph.outputs[0]
    assert out.name == "output" and out.shape == ("batch", 7, 16)
    sess = session(model, OptLevel.NONE)
    assert sess.get_inputs()[0].shape == ["batch", 7, 16]


def test_multi_input_names_and_batch_axes() -> None:
    _, model = converted("lstm_with_state")
    assert [v.name for v in model.graph.inputs] == ["x", "h0", "c0"]
    assert [v.shape for v in model.graph.inputs] == [(3, "batch", 4), (1, "batch", 5),
                                                     (1, "batch", 5)]
    assert [v.name for v in model.graph.outputs] == ["output_0", "output_1", "output_2"]


def test_parameters_become_named_initializers() -> None:
    module, model = converted("mlp")
    inits = model.graph.initializers
    np.testing.assert_array_equal(inits["0.weight"].const_value,
                                  module[0].weight.detach().numpy())
    assert not any(n.op_type == "Dropout" for n in model.graph.nodes)


def test_static_shapes_without_dynamic_shapes() -> None:
    case = CASES["mlp"]
    module = case.build()
    model = from_torch(module, case.inputs(3))
    assert model.graph.inputs[0].shape == (3, 12)
    sess = session(model, OptLevel.NONE)
    assert_matches(run(sess, case.inputs(3)), eager(module, case.inputs(3)), "static mlp")
    with pytest.raises(ValidationError):
        run(sess, case.inputs(4))


def test_input_and_output_names_override() -> None:
    case = CASES["mlp"]
    module = case.build()
    model = from_torch(module, case.inputs(2), input_names=["features"], output_names=["logits"])
    sess = session(model, OptLevel.ALL)
    assert [i.name for i in sess.get_inputs()] == ["features"]
    assert [o.name for o in sess.get_outputs()] == ["logits"]
    with pytest.raises(InvalidArgumentError, match="output_names"):
        from_torch(module, case.inputs(2), output_names=["a", "b"])
    with pytest.raises(InvalidArgumentError, match="input_names"):
        from_torch(module, case.inputs(2), input_names=["a", "b"])
    with pytest.raises(InvalidArgumentError, match="both an input and an output"):
        from_torch(module, case.inputs(2), input_names=["x"], output_names=["x"])


class _DictOut(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> dict:
        return {"double": x * 2, "same": x, "again": x}


def test_dict_outputs_are_named_by_key_and_aliases_get_identities() -> None:
    x = torch.randn(2, 3)
    model = from_torch(_DictOut(), (x,))
    names = [v.name for v in model.graph.outputs]
    assert names == ["double", "same", "again"]
    outs = run(session(model, OptLevel.ALL), (x,))
    assert_matches(outs, [x.numpy() * 2, x.numpy(), x.numpy()], "dict outputs")


class _Bessel(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.i0(x)


class _Unsupported(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Linear(4, 4)
        self.inner = _Bessel()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.lgamma(self.body(x))
        z = self.inner(x)
        return y + torch.lgamma(z)


def test_unsupported_ops_are_all_listed_with_locations() -> None:
    with pytest.raises(UnsupportedOperatorError) as info:
        from_torch(_Unsupported(), (torch.randn(2, 4),))
    text = str(info.value)
    assert "aten.lgamma.default" in text and "used 2 time(s)" in text
    assert "aten.i0.default" in text and "in module 'inner' (_Bessel)" in text
    assert "test_from_torch.py" in text and "torch.lgamma(self.body(x))" in text
    assert "return torch.special.i0(x)" in text
    assert "in module '<root>' (_Unsupported)" in text


class _BadArgument(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(x, 2, divisor_override=3)


def test_unsupported_argument_names_the_reason() -> None:
    with pytest.raises(UnsupportedOperatorError, match="divisor_override"):
        from_torch(_BadArgument(), (torch.randn(1, 1, 4, 4),))


class _DataDependent(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x * 2
        return x


def test_untraceable_module_raises_invalid_model() -> None:
    with pytest.raises(InvalidModelError, match="torch.export could not trace"):
        from_torch(_DataDependent(), (torch.randn(2, 2),))


def test_bad_arguments() -> None:
    with pytest.raises(InvalidArgumentError, match="nn.Module"):
        from_torch(lambda x: x, (torch.randn(1),))
    with pytest.raises(InvalidArgumentError, match="only tensors"):
        from_torch(torch.nn.ReLU(), (torch.randn(1), 3))


def test_training_module_is_traced_in_eval_mode_and_flags_restored() -> None:
    case = CASES["cnn_resnet"]
    module = case.build().train()
    model = from_torch(module, case.inputs(2))
    assert module.training and module.block.bn1.training
    module.eval()
    assert_matches(run(session(model, OptLevel.NONE), case.inputs(2)),
                   eager(module, case.inputs(2)), "train-mode module")


def test_single_tensor_example_input_and_float64() -> None:
    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Softplus()).double().eval()
    x = torch.randn(4, 3, dtype=torch.float64)
    model = from_torch(module, x)
    assert_matches(run(session(model, OptLevel.ALL), (x,)), eager(module, (x,)), "float64")


def test_export_to_onnx_runs_in_onnxruntime() -> None:
    ort = pytest.importorskip("onnxruntime", reason="ONNX Runtime is the export oracle")
    import onnx

    from pyflame_rt.io.onnx import to_onnx

    for name in ("cnn_resnet", "causal_decoder_block"):
        module, model = converted(name)
        proto = to_onnx(model)
        onnx.checker.check_model(proto)
        sess = ort.InferenceSession(proto.SerializeToString(),
                                    providers=["CPUExecutionProvider"])
        inputs = CASES[name].inputs(4)
        feeds = {i.name: x.numpy() for i, x in zip(sess.get_inputs(), inputs)}
        assert_matches(sess.run(None, feeds), eager(module, inputs), f"{name} via ORT")


def test_dict_dynamic_shapes_with_renamed_inputs() -> None:
    module = torch.nn.Linear(4, 2)
    model = from_torch(module, (torch.randn(3, 4),), input_names=["features"],
                       dynamic_shapes={"input": {0: torch.export.Dim("rows")}})
    assert model.graph.inputs[0].name == "features"
    assert model.graph.inputs[0].shape == ("rows", 4)
    assert model.metadata_props["pyflame_rt.torch_route"] == "export"
    assert "rows: 0.." in model.metadata_props["pyflame_rt.torch_dims"]


def test_unnamed_dynamic_dims_get_input_based_names() -> None:
    module = torch.nn.Linear(4, 2)
    model = from_torch(module, (torch.randn(3, 4),),
                       dynamic_shapes=({0: torch.export.Dim.DYNAMIC},))
    assert model.graph.inputs[0].shape == ("input_dim0", 4)


def test_importing_pyflame_rt_does_not_import_torch() -> None:
    code = ("import sys, pyflame_rt, pyflame_rt.io, pyflame_rt.session; "
            "assert 'torch' not in sys.modules, 'torch was imported'; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_inference_session_accepts_a_module_directly():
    import pyflame_rt

    module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()).eval()
    example = (torch.randn(2, 4),)
    batch = torch.export.Dim("batch")
    sess = pyflame_rt.InferenceSession(module, example_inputs=example,
                                       dynamic_shapes=({0: batch},))
    assert sess.get_inputs()[0].shape == ["batch", 4]
    x = torch.randn(5, 4)
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(got, module(x).detach().numpy(), rtol=1e-4, atol=1e-5)
    model = pyflame_rt.from_torch(module, example)
    assert [v.name for v in model.graph.inputs] == [sess.get_inputs()[0].name]
    with pytest.raises(pyflame_rt.InvalidArgumentError, match="example_inputs"):
        pyflame_rt.InferenceSession(module)
