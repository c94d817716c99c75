"""RNN, GRU and LSTM kernels against ONNX Runtime and onnx.reference.

ONNX Runtime covers what onnx.reference ignores (sequence_lens, activations with alpha/beta,
clip, input_forget); onnx.reference covers what ONNX Runtime refuses (layout=1) and float64.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from oracle import assert_close, onnxruntime, reference

from pyflame_rt.backends.cpu.rnn import gru, lstm, rnn
from pyflame_rt.ops import lookup

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
KERNELS = {"RNN": rnn, "GRU": gru, "LSTM": lstm}
NOUT = {"RNN": 2, "GRU": 2, "LSTM": 3}
TOL = {"rtol": 1e-4, "atol": 1e-5}


def _inputs(op, *, seq=4, batch=3, inp=5, hidden=6, dirs=1, bias=True, init=False,
            lens=None, peep=False, layout=0, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    g = GATES[op]

    def r(*shape, scale=0.5):
        return (rng.standard_normal(shape) * scale).astype(dtype)

    x = r(batch, seq, inp, scale=1.0) if layout else r(seq, batch, inp, scale=1.0)
    state_shape = (batch, dirs, hidden) if layout else (dirs, batch, hidden)
    ins = [x, r(dirs, g * hidden, inp), r(dirs, g * hidden, hidden),
           r(dirs, 2 * g * hidden) if bias else None,
           None if lens is None else np.asarray(lens, dtype=np.int32),
           r(*state_shape) if init else None]
    if op == "LSTM":
        ins += [r(*state_shape) if init else None, r(dirs, 3 * hidden) if peep else None]
    while ins and ins[-1] is None:
        ins.pop()
    return ins


def _compare(op, ins, attrs, oracle, *, opset=14, tol=TOL):
    ours = KERNELS[op](*ins, **attrs)
    run = onnxruntime if oracle == "ort" else reference
    expected = run(op, ins, attrs, noutputs=NOUT[op], opset=opset)
    assert len(ours) == NOUT[op]
    for got, exp in zip(ours, expected):
        assert_close(got, exp, **tol)


def test_registered_versions():
    for opset in (7, 14, 22):
        assert lookup("RNN", opset=opset).fn is rnn
        assert lookup("GRU", opset=opset).fn is gru
        assert lookup("LSTM", opset=opset).fn is lstm


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("bias,init", [(False, False), (True, True)])
def test_directions_vs_onnxruntime(op, direction, bias, init):
    dirs = 2 if direction == "bidirectional" else 1
    ins = _inputs(op, dirs=dirs, bias=bias, init=init)
    _compare(op, ins, {"hidden_size": 6, "direction": direction}, "ort")


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_sequence_lens_vs_onnxruntime(op, direction):
    dirs = 2 if direction == "bidirectional" else 1
    ins = _inputs(op, seq=5, batch=4, dirs=dirs, init=True, lens=[5, 2, 0, 3])
    _compare(op, ins, {"hidden_size": 6, "direction": direction}, "ort")


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_layout_1_vs_reference(op, direction):
    dirs = 2 if direction == "bidirectional" else 1
    ins = _inputs(op, dirs=dirs, init=True, layout=1)
    _compare(op, ins, {"hidden_size": 6, "direction": direction, "layout": 1}, "reference")


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_float64_vs_reference(op):
    ins = _inputs(op, init=True, dtype=np.float64, peep=True)
    ours = KERNELS[op](*ins, hidden_size=6)
    assert ours[0].dtype == np.float64
    _compare(op, ins, {"hidden_size": 6}, "reference", tol={"rtol": 1e-10, "atol": 1e-12})


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16])
def test_half_types_computed_in_float32(op, dtype):
    ins = _inputs(op, init=True, dtype=dtype)
    ours = KERNELS[op](*ins, hidden_size=6)
    assert all(o.dtype == np.dtype(dtype) for o in ours)
    wide = [None if a is None else a.astype(np.float32) if a.dtype != np.int32 else a
            for a in ins]
    for got, exp in zip(ours, KERNELS[op](*wide, hidden_size=6)):
        assert_close(got.astype(np.float32), exp, rtol=2e-2, atol=2e-2)


def test_gru_linear_before_reset_vs_onnxruntime():
    for direction, dirs in (("forward", 1), ("bidirectional", 2)):
        ins = _inputs("GRU", dirs=dirs, init=True)
        _compare("GRU", ins, {"hidden_size": 6, "direction": direction,
                              "linear_before_reset": 1}, "ort")


def test_lstm_peepholes_and_input_forget_vs_onnxruntime():
    ins = _inputs("LSTM", dirs=2, init=True, peep=True, lens=[4, 1, 3])
    _compare("LSTM", ins, {"hidden_size": 6, "direction": "bidirectional"}, "ort")
    _compare("LSTM", ins, {"hidden_size": 6, "direction": "bidirectional", "input_forget": 1},
             "ort")


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_clip_vs_onnxruntime(op):
    ins = _inputs(op, init=True)
    ins[1] = ins[1] * 6  # large pre-activations so the clip matters
    _compare(op, ins, {"hidden_size": 6, "clip": 0.7}, "ort")


ACTIVATION_SETS = {
    "RNN": [(["Relu"], None, None), (["LeakyRelu"], [0.2], None),
            (["HardSigmoid"], [0.3], [0.4]), (["Affine"], [0.5], [0.1]),
            (["ThresholdedRelu"], [0.1], None), (["Softsign"], None, None),
            (["Elu"], [0.7], None), (["ScaledTanh"], [1.5], [0.5]),
            (["Softplus"], None, None), (["Sigmoid"], None, None)],
    "GRU": [(["HardSigmoid", "Tanh"], [0.3], [0.4]), (["Sigmoid", "LeakyRelu"], [0.05], None),
            (["HardSigmoid", "ScaledTanh"], [0.25, 1.2], [0.5, 0.8])],
    "LSTM": [(["HardSigmoid", "Tanh", "Softsign"], [0.25], [0.45]),
             (["Sigmoid", "Elu", "ScaledTanh"], [0.9, 1.1], [0.7]),
             (["Sigmoid", "Relu", "Tanh"], None, None)],
}


@pytest.mark.parametrize("op,acts", [(op, a) for op, sets in ACTIVATION_SETS.items()
                                     for a in sets], ids=str)
def test_activations_vs_onnxruntime(op, acts):
    names, alpha, beta = acts
    attrs = {"hidden_size": 6, "activations": names}
    if alpha is not None:
        attrs["activation_alpha"] = alpha
    if beta is not None:
        attrs["activation_beta"] = beta
    _compare(op, _inputs(op, init=True), attrs, "ort")


def test_bidirectional_activations_per_direction_vs_onnxruntime():
    attrs = {"hidden_size": 6, "direction": "bidirectional",
             "activations": ["Sigmoid", "Tanh", "HardSigmoid", "Softsign"],
             "activation_alpha": [0.3], "activation_beta": [0.6]}
    _compare("GRU", _inputs("GRU", dirs=2, init=True), attrs, "ort")


def test_hidden_size_inferred_from_r():
    ins = _inputs("LSTM", init=True)
    for a, b in zip(lstm(*ins), lstm(*ins, hidden_size=6)):
        assert_close(a, b)


def test_omitted_optional_inputs_in_the_middle():
    # B and sequence_lens omitted, initial_h given (the executor passes None for "").
    x, w, r = _inputs("GRU", bias=False)
    h0 = np.random.default_rng(3).standard_normal((1, 3, 6)).astype(np.float32)
    ins = [x, w, r, None, None, h0]
    _compare("GRU", ins, {"hidden_size": 6}, "ort")


def test_errors():
    ins = _inputs("LSTM")
    with pytest.raises(ValueError, match="direction"):
        lstm(*ins, hidden_size=6, direction="sideways")
    with pytest.raises(ValueError, match="hidden_size"):
        lstm(*ins, hidden_size=5)
    with pytest.raises(ValueError, match="activation"):
        rnn(*_inputs("RNN"), hidden_size=6, activations=["Swish"])
    with pytest.raises(ValueError, match="sequence_lens"):
        rnn(*_inputs("RNN", lens=[9, 1, 1]), hidden_size=6)


def test_inputs_not_modified():
    ins = _inputs("LSTM", dirs=2, init=True, peep=True, lens=[4, 2, 1])
    before = [None if a is None else a.copy() for a in ins]
    for a in ins:
        if a is not None:
            a.flags.writeable = False
    lstm(*ins, hidden_size=6, direction="bidirectional")
    for a, b in zip(ins, before):
        if a is not None:
            np.testing.assert_array_equal(a, b)
