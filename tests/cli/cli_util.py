"""Helpers for the command-line tests: run ``pyflame-rt`` in a subprocess, build small models."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


@dataclass
class Result:
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out[-3000:]}\n--- stderr\n{self.err[-3000:]}"


def pyflame_rt(*args: str, cwd: str | None = None, timeout: float = 120,
               env: dict[str, str] | None = None) -> Result:
    """Run ``python -m pyflame_rt.cli ARGS`` (what the ``pyflame-rt`` script runs);
    ``env`` adds to (or overrides) this process's environment."""
    env = dict(os.environ, PYFLAME_RT_PROGRESS="0", **(env or {}))
    env.pop("PYFLAME_RT_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "pyflame_rt.cli", *args], cwd=cwd, env=env,
                          check=False, capture_output=True, text=True, timeout=timeout)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_error(result: Result) -> None:
    """Non-zero exit, exactly one ``error: ...`` line on stderr, no traceback anywhere."""
    assert result.code != 0, str(result)
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, str(result)
    assert lines[0].startswith("error: "), str(result)
    assert "Traceback" not in result.out + result.err, str(result)


def conv_mlp_model() -> onnx.ModelProto:
    """x[N,3,8,8] -> Conv(4x3x3x3, pad 1, bias) -> Relu -> AveragePool(2x2) -> Flatten
    -> MatMul(64x5) -> Add(b) -> Softmax -> y[N,5]; N is the symbol 'n'."""
    rng = np.random.default_rng(7)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "B"),
        numpy_helper.from_array(rng.standard_normal((64, 5)).astype(np.float32), "M"),
        numpy_helper.from_array(rng.standard_normal(5).astype(np.float32), "b"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv", pads=[1, 1, 1, 1],
                         kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("AveragePool", ["r"], ["p"], name="pool", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "M"], ["m"], name="matmul"),
        helper.make_node("Add", ["m", "b"], ["logits"], name="add"),
        helper.make_node("Softmax", ["logits"], ["y"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "conv_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 5])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                             producer_name="pyflame-cli-tests")


def ort_run(path: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime

    sess = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)
