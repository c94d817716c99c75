"""No-op elimination and layout-chain simplifications: each fires, matches, and refuses."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper
from opt_helpers import check_rewrite, make_model, op_counts, randn, refusals

F32 = np.float32


def _unary_then_relu(node, x_shape, inits=None, opset=17, extra_inputs=None):
    """``node`` (reading x, writing t) followed by Relu so the result is not a graph output."""
    inputs = {"x": (F32, x_shape), **(extra_inputs or {})}
    return make_model([node, helper.make_node("Relu", ["t"], ["y"])], inputs, ["y"], inits,
                      opset=opset)


def test_identity_and_dropout_are_removed():
    model = make_model([helper.make_node("Identity", ["x"], ["a"]),
                        helper.make_node("Dropout", ["a"], ["b"]),
                        helper.make_node("Relu", ["b"], ["y"])], {"x": (F32, [2, 3])}, ["y"])
    check_rewrite(model, {"x": randn(2, 3)},
                  fired={"eliminate_identity": 1, "eliminate_dropout": 1}, ops={"Relu": 1})


def test_dropout_refused_when_its_mask_is_used_or_training_mode_is_dynamic():
    model = make_model([helper.make_node("Dropout", ["x"], ["a", "mask"]),
                        helper.make_node("Relu", ["a"], ["y"])],
                       {"x": (F32, [2, 3])}, ["y", "mask"])
    assert "the mask output is used" in refusals(model, "eliminate_dropout")
    model = make_model([helper.make_node("Dropout", ["x", "r", "train"], ["a"]),
                        helper.make_node("Relu", ["a"], ["y"])],
                       {"x": (F32, [2, 3]), "train": (np.bool_, [])}, ["y"],
                       {"r": np.array(0.5, F32)})
    assert "training_mode is not a constant false" in refusals(model, "eliminate_dropout")


def test_noop_cast_removed_real_cast_kept():
    model = _unary_then_relu(helper.make_node("Cast", ["x"], ["t"], to=TensorProto.FLOAT), [3])
    check_rewrite(model, {"x": randn(3)}, fired={"eliminate_noop_cast": 1}, ops={"Cast": 0})
    model = make_model([helper.make_node("Cast", ["x"], ["t"], to=TensorProto.INT32),
                        helper.make_node("Neg", ["t"], ["y"])], {"x": (F32, [3])}, ["y"])
    assert any("casts FLOAT to another type" in r for r in
               refusals(model, "eliminate_noop_cast"))


def test_noop_reshape_transpose_expand_slice_pad_tile_are_removed():
    x = randn(2, 3, 4)
    cases = [
        (helper.make_node("Reshape", ["x", "s"], ["t"]), {"s": np.array([2, 3, 4], np.int64)},
         "eliminate_noop_reshape"),
        (helper.make_node("Reshape", ["x", "s"], ["t"]), {"s": np.array([0, -1, 4], np.int64)},
         "eliminate_noop_reshape"),
        (helper.make_node("Transpose", ["x"], ["t"], perm=[0, 1, 2]), {},
         "eliminate_noop_transpose"),
        (helper.make_node("Expand", ["x", "s"], ["t"]), {"s": np.array([1, 3, 1], np.int64)},
         "eliminate_noop_expand"),
        (helper.make_node("Slice", ["x", "st", "en"], ["t"]),
         {"st": np.array([0], np.int64), "en": np.array([100], np.int64)},
         "eliminate_noop_slice"),
        (helper.make_node("Pad", ["x", "p"], ["t"]), {"p": np.zeros(6, np.int64)},
         "eliminate_noop_pad"),
        (helper.make_node("Tile", ["x", "r"], ["t"]), {"r": np.ones(3, np.int64)},
         "eliminate_noop_tile"),
        (helper.make_node("Concat", ["x"], ["t"], axis=0), {}, "eliminate_single_input"),
        (helper.make_node("Mul", ["x", "one"], ["t"]), {"one": np.ones(4, F32)},
         "eliminate_neutral_elementwise"),
        (helper.make_node("Sub", ["x", "zero"], ["t"]), {"zero": np.array(0.0, F32)},
         "eliminate_neutral_elementwise"),
    ]
    for node, inits, rule in cases:
        model = _unary_then_relu(node, [2, 3, 4], inits)
        sess = check_rewrite(model, {"x": x}, fired={rule: 1})
        assert op_counts(sess.graph) == {"Relu": 1}, (rule, op_counts(sess.graph))


def test_shape_changing_forms_are_refused_with_reasons():
    cases = [
        (helper.make_node("Reshape", ["x", "s"], ["t"]), {"s": np.array([6, 4], np.int64)},
         "eliminate_noop_reshape", "is not known to equal the input shape"),
        (helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0, 2]), {},
         "eliminate_noop_transpose", "permutes the dims"),
        (helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["t"]),
         {"st": np.array([-1], np.int64), "en": np.array([-100], np.int64),
          "ax": np.array([0], np.int64), "sp": np.array([-1], np.int64)},
         "eliminate_noop_slice", "steps are not all 1"),
        (helper.make_node("Pad", ["x", "p"], ["t"]), {"p": np.array([0, 1, 0, 0, 0, 0],
                                                                   np.int64)},
         "eliminate_noop_pad", "pads are not all zero"),
        (helper.make_node("Mul", ["x", "one"], ["t"]), {"one": np.ones((2, 2, 3, 4), F32)},
         "eliminate_neutral_elementwise", "broadcast"),
    ]
    for node, inits, rule, why in cases:
        model = _unary_then_relu(node, [2, 3, 4], inits)
        reasons = refusals(model, rule)
        assert any(why in r for r in reasons), (rule, reasons)
        check_rewrite(model, {"x": randn(2, 3, 4)})


def test_bypassing_a_graph_output_fed_by_an_input_is_refused():
    model = make_model([helper.make_node("Identity", ["x"], ["y"])], {"x": (F32, [3])}, ["y"])
    assert any("cannot take its name" in r for r in refusals(model, "eliminate_identity"))
    sess = check_rewrite(model, {"x": randn(3)})
    assert [o.name for o in sess.get_outputs()] == ["y"]


def test_transpose_pairs_cancel_or_merge():
    cancel = make_model([helper.make_node("Transpose", ["x"], ["a"], perm=[0, 2, 1]),
                         helper.make_node("Transpose", ["a"], ["t"], perm=[0, 2, 1]),
                         helper.make_node("Relu", ["t"], ["y"])], {"x": (F32, [2, 3, 4])}, ["y"])
    check_rewrite(cancel, {"x": randn(2, 3, 4)}, fired={"fuse_transpose_pair": 1},
                  ops={"Transpose": 0})
    merge = make_model([helper.make_node("Transpose", ["x"], ["a"], perm=[1, 2, 0]),
                        helper.make_node("Transpose", ["a"], ["t"], perm=[0, 2, 1]),
                        helper.make_node("Relu", ["t"], ["y"])], {"x": (F32, [2, 3, 4])}, ["y"])
    sess = check_rewrite(merge, {"x": randn(2, 3, 4)}, fired={"fuse_transpose_pair": 1},
                         ops={"Transpose": 1})
    (t,) = [n for n in sess.graph.nodes if n.op_type == "Transpose"]
    assert list(t.attrs["perm"]) == [1, 0, 2]
    # The first Transpose stays while something else reads it.
    shared = make_model([helper.make_node("Transpose", ["x"], ["a"], perm=[0, 2, 1]),
                         helper.make_node("Transpose", ["a"], ["t"], perm=[0, 2, 1]),
                         helper.make_node("Relu", ["t"], ["y"]),
                         helper.make_node("Neg", ["a"], ["z"])], {"x": (F32, [2, 3, 4])},
                        ["y", "z"])
    check_rewrite(shared, {"x": randn(2, 3, 4)}, fired={"fuse_transpose_pair": 1},
                  ops={"Transpose": 1})
    lone = make_model([helper.make_node("Relu", ["x"], ["a"]),
                       helper.make_node("Transpose", ["a"], ["y"], perm=[1, 0])],
                      {"x": (F32, [2, 3])}, ["y"])
    assert "the input is not produced by a Transpose" in refusals(lone, "fuse_transpose_pair")


def test_reshape_chains_collapse_unless_the_target_copies_dims():
    chain = make_model([helper.make_node("Unsqueeze", ["x", "ax"], ["a"]),
                        helper.make_node("Reshape", ["a", "s"], ["t"]),
                        helper.make_node("Relu", ["t"], ["y"])], {"x": (F32, [2, 6])}, ["y"],
                       {"ax": np.array([0], np.int64), "s": np.array([3, -1], np.int64)})
    check_rewrite(chain, {"x": randn(2, 6)}, fired={"fuse_reshape_chain": 1},
                  ops={"Unsqueeze": 0, "Reshape": 1})
    zero = make_model([helper.make_node("Reshape", ["x", "s1"], ["a"]),
                       helper.make_node("Reshape", ["a", "s"], ["t"]),
                       helper.make_node("Relu", ["t"], ["y"])], {"x": (F32, [2, 6])}, ["y"],
                      {"s1": np.array([4, 3], np.int64), "s": np.array([0, 3, -1], np.int64)})
    assert "the target shape copies a dim (0) of the intermediate" in \
        refusals(zero, "fuse_reshape_chain")
    check_rewrite(zero, {"x": randn(2, 6)})
