"""A script written against ``onnxruntime`` runs unchanged with ``import pyflame_rt``.

The script below only uses ONNX Runtime's API (item 8 of the foundation issue). It is run
twice, once with the real ``onnxruntime`` module and once with ``pyflame_rt`` bound to the
same name, and both runs must produce the same results.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as real_ort
from models_util import mlp_model

import pyflame_rt

SCRIPT = '''
import numpy as np

def main(onnxruntime, model_path, tmp_dir):
    so = onnxruntime.SessionOptions()
    so.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    so.enable_profiling = True
    so.profile_file_prefix = tmp_dir + "/profile"
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    assert "CPUExecutionProvider" in onnxruntime.get_available_providers()
    sess = onnxruntime.InferenceSession(model_path, sess_options=so,
                                        providers=["CPUExecutionProvider"])
    inputs = sess.get_inputs()
    outputs = sess.get_outputs()
    meta = sess.get_modelmeta()
    result = {
        "inputs": [(i.name, i.type, i.shape) for i in inputs],
        "outputs": [(o.name, o.type, o.shape) for o in outputs],
        "meta": (meta.producer_name, meta.graph_name, meta.domain, meta.description,
                 meta.version, dict(meta.custom_metadata_map)),
        "providers": sess.get_providers(),
        "overridable": [i.name for i in sess.get_overridable_initializers()],
    }
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    result["all"] = sess.run(None, {inputs[0].name: x})
    result["one"] = sess.run([outputs[0].name], {inputs[0].name: x}, onnxruntime.RunOptions())
    ov = onnxruntime.OrtValue.ortvalue_from_numpy(x, "cpu", 0)
    result["ortvalue"] = [v.numpy() for v in sess.run_with_ort_values(
        [outputs[0].name], {inputs[0].name: ov})]
    errors = []
    try:
        sess.run(None, {"wrong": x})
    except onnxruntime.capi.onnxruntime_pybind11_state.InvalidArgument:
        errors.append("InvalidArgument")
    except ValueError:
        errors.append("ValueError")
    try:
        sess.run(None, {inputs[0].name: x.astype(np.float64)})
    except onnxruntime.capi.onnxruntime_pybind11_state.InvalidArgument:
        errors.append("InvalidArgument")
    try:
        onnxruntime.InferenceSession(tmp_dir + "/missing.onnx")
    except onnxruntime.capi.onnxruntime_pybind11_state.NoSuchFile:
        errors.append("NoSuchFile")
    result["errors"] = errors
    profile = sess.end_profiling()
    result["profiled"] = bool(profile)
    result["session_options_type"] = type(sess.get_session_options()).__name__
    return result
'''


def _run(module, model_path, tmp_path):
    namespace: dict = {}
    exec(compile(SCRIPT, "ort_script.py", "exec"), namespace)  # the user's script, verbatim
    return namespace["main"](module, model_path, str(tmp_path))


def test_script_runs_unchanged(tmp_path):
    path = tmp_path / "mlp.onnx"
    path.write_bytes(mlp_model().SerializeToString())
    (tmp_path / "ours").mkdir()
    (tmp_path / "theirs").mkdir()
    ours = _run(pyflame_rt, str(path), tmp_path / "ours")
    theirs = _run(real_ort, str(path), tmp_path / "theirs")
    for key in ("inputs", "outputs", "meta", "providers", "overridable", "profiled",
                "session_options_type"):
        assert ours[key] == theirs[key], key
    # ORT raises InvalidArgument for an unknown name when the required input is also
    # missing it reports the missing input first (ValueError) — same as ours.
    assert ours["errors"] == theirs["errors"]
    for key in ("all", "one", "ortvalue"):
        for a, b in zip(ours[key], theirs[key]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
