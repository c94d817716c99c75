"""Property: on random valid graphs, ``optimize(ALL)`` never changes outputs and never breaks
``verify()``.

Graphs are drawn step by step from a set of ops, tracking every value's shape so each step is
valid: elementwise unary ops, binary ops with another value or a constant (neutral ones
included), transposes (pairs cancel), reshapes, no-op casts, identities and dropouts, MatMul
with a constant weight (+ bias, + activation), Softmax, ReduceMean, GELU written out, constant
subexpressions (to fold) and repeated nodes (to merge)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from opt_helpers import assert_same_outputs, make_model, optimized, session

import pyflame_rt as pf
from pyflame_rt.ir import verify

F32 = np.float32
UNARY = ["Relu", "Sigmoid", "Tanh", "Neg", "Abs", "Identity", "Dropout", "Softsign"]
BINARY = ["Add", "Mul", "Sub", "Max", "Min"]


class _Builder:
    def __init__(self, data: st.DataObject) -> None:
        self.data = data
        self.nodes: list = []
        self.inits: dict[str, np.ndarray] = {}
        self.values: list[tuple[str, tuple[int, ...]]] = [("x", (2, 3, 4))]
        self.n = 0

    def name(self, hint: str) -> str:
        self.n += 1
        return f"{hint}{self.n}"

    def const(self, arr: np.ndarray) -> str:
        name = self.name("c")
        self.inits[name] = np.asarray(arr, F32)
        return name

    def pick(self) -> tuple[str, tuple[int, ...]]:
        return self.data.draw(st.sampled_from(self.values))

    def add(self, op: str, inputs: list[str], shape: tuple[int, ...], **attrs) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        self.values.append((out, shape))
        return out

    def step(self) -> None:
        kind = self.data.draw(st.sampled_from(
            ["unary", "binary", "transpose", "reshape", "cast", "matmul", "softmax", "reduce",
             "gelu", "fold", "repeat", "transpose_pair"]))
        v, shape = self.pick()
        draw = self.data.draw
        if kind == "unary":
            self.add(draw(st.sampled_from(UNARY)), [v], shape)
        elif kind == "binary":
            op = draw(st.sampled_from(BINARY))
            same = [n for n, s in self.values if s == shape]
            how = draw(st.sampled_from(["value", "scalar", "row", "neutral"]))
            if how == "value":
                other = draw(st.sampled_from(same))
            elif how == "scalar":
                other = self.const(draw(st.floats(-2, 2, width=32)))
            elif how == "row":
                other = self.const(np.linspace(-1, 1, shape[-1]))
            else:
                other = self.const(1.0 if op == "Mul" else 0.0)
            ins = [v, other] if draw(st.booleans()) or op == "Sub" else [other, v]
            self.add(op, ins, shape)
        elif kind == "transpose":
            perm = draw(st.permutations(range(len(shape))))
            self.add("Transpose", [v], tuple(shape[p] for p in perm), perm=list(perm))
        elif kind == "transpose_pair" and len(shape) >= 2:
            perm = list(range(len(shape)))
            perm[-1], perm[-2] = perm[-2], perm[-1]
            t_shape = tuple(shape[p] for p in perm)
            t = self.add("Transpose", [v], t_shape, perm=perm)
            self.add("Transpose", [t], shape, perm=perm)
        elif kind == "reshape":
            target = draw(st.sampled_from([shape, (int(np.prod(shape)),),
                                           (shape[0], -1) if len(shape) > 1 else shape]))
            out_shape = tuple(int(np.prod(shape)) // int(np.prod([d for d in target if d > 0]))
                              if d == -1 else d for d in target)
            self.add("Reshape", [v, self.const_int(target)], out_shape)
        elif kind == "cast":
            self.add("Cast", [v], shape, to=TensorProto.FLOAT)
        elif kind == "matmul":
            k = draw(st.integers(1, 5))
            rng = np.random.default_rng(draw(st.integers(0, 1000)))
            w = self.const(rng.normal(size=(shape[-1], k)) * 0.5)
            out = self.add("MatMul", [v, w], shape[:-1] + (k,))
            if draw(st.booleans()):
                out = self.add("Add", [out, self.const(rng.normal(size=k))], shape[:-1] + (k,))
            if draw(st.booleans()):
                self.add(draw(st.sampled_from(["Relu", "Sigmoid", "Tanh"])), [out],
                         shape[:-1] + (k,))
        elif kind == "softmax":
            self.add("Softmax", [v], shape, axis=-1)
        elif kind == "reduce":
            self.add("ReduceMean", [v], shape[:-1] + (1,), axes=[-1])
        elif kind == "gelu":
            a = self.add("Div", [v, self.const(math.sqrt(2.0))], shape)
            e = self.add("Erf", [a], shape)
            e1 = self.add("Add", [e, self.const(1.0)], shape)
            m = self.add("Mul", [v, e1], shape)
            self.add("Mul", [m, self.const(0.5)], shape)
        elif kind == "fold":
            c1 = self.const(np.linspace(0, 1, shape[-1]))
            c2 = self.const(2.0)
            s = self.add("Mul", [c1, c2], (shape[-1],))
            self.add("Add", [v, s], shape)
        elif kind == "repeat" and self.nodes:
            node = draw(st.sampled_from(self.nodes))
            if len(node.output) == 1:
                src_shape = dict(self.values)[node.output[0]]
                attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
                self.add(node.op_type, list(node.input), src_shape, **attrs)

    def const_int(self, target) -> str:
        name = self.name("shape")
        self.inits[name] = np.asarray(target, np.int64)
        return name


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_optimize_all_preserves_outputs_and_validity(data):
    b = _Builder(data)
    for _ in range(data.draw(st.integers(1, 12))):
        b.step()
    outputs = [b.values[-1][0]]
    extra = data.draw(st.sampled_from(b.values))[0]
    if extra not in outputs and extra != "x":
        outputs.append(extra)
    model = make_model(b.nodes, {"x": (F32, [2, 3, 4])}, outputs, b.inits, opset=17)
    x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(F32)
    graph, _ = optimized(model, "all", debug=True)  # debug: verify after every pass
    verify(graph)
    base = session(model, pf.OptLevel.NONE).run(None, {"x": x})
    opt = session(model, pf.OptLevel.ALL)
    assert [o.name for o in opt.get_outputs()] == outputs
    assert_same_outputs(opt.run(None, {"x": x}), base, rtol=1e-4, atol=1e-5,
                        what="optimized vs unoptimized")
