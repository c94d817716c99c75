"""ai.onnx.ml kernels against ONNX Runtime and onnx.reference.

Where the two oracles disagree the test says which one it follows and why (ONNX Runtime is the
drop-in target; the spec decides where ONNX Runtime contradicts it).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from oracle import assert_close

from pyflame_rt.backends.cpu import ml
from pyflame_rt.ops import lookup
from pyflame_rt.types import DType

ML = "ai.onnx.ml"


def _attr(v):
    return numpy_helper.from_array(v) if isinstance(v, np.ndarray) else v


def _model(op, inputs, attrs, *, version=1, noutputs=1):
    ins, names = [], []
    for i, a in enumerate(inputs):
        names.append(f"in{i}")
        ins.append(helper.make_tensor_value_info(f"in{i}", DType.from_numpy(a.dtype).value,
                                                 list(a.shape)))
    node = helper.make_node(op, names, [f"out{i}" for i in range(noutputs)], domain=ML,
                            **{k: _attr(v) for k, v in attrs.items()})
    outs = [helper.make_value_info(f"out{i}", onnx.TypeProto()) for i in range(noutputs)]
    graph = helper.make_graph([node], "g", ins, outs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19),
                                                   helper.make_opsetid(ML, version)],
                             ir_version=10)


def _run(oracle, op, inputs, attrs, *, version=1):
    model = _model(op, inputs, attrs, version=version)
    feeds = {f"in{i}": a for i, a in enumerate(inputs)}
    if oracle == "ort":
        import onnxruntime as ort

        sess = ort.InferenceSession(model.SerializeToString(),
                                    providers=["CPUExecutionProvider"])
        return sess.run(None, feeds)[0]
    return ReferenceEvaluator(model).run(None, feeds)[0]


def _check(fn, op, inputs, attrs, oracles=("ort", "reference"), *, version=1, rtol=1e-5,
           atol=1e-6):
    got = fn(*inputs, **attrs)
    for oracle in oracles:
        exp = np.asarray(_run(oracle, op, inputs, attrs, version=version))
        if exp.dtype.kind == "U":
            exp = exp.astype(object)
        assert_close(got, exp, rtol=rtol, atol=atol)


def _strings(*values):
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def test_registered_versions():
    assert lookup("LabelEncoder", domain=ML, opset=1).fn is ml.label_encoder_1
    for opset in (2, 4):
        assert lookup("LabelEncoder", domain=ML, opset=opset).fn is ml.label_encoder_2
    assert lookup("TreeEnsemble", domain=ML, opset=5).fn is ml.tree_ensemble
    for opset in (1, 3, 5):
        assert lookup("TreeEnsembleRegressor", domain=ML, opset=opset).fn is \
            ml.tree_ensemble_regressor
    assert lookup("ArrayFeatureExtractor", domain=ML, opset=1).fn is ml.array_feature_extractor
    assert lookup("Binarizer", domain=ML, opset=1).fn is ml.binarizer


# -- element-wise and small ops ----------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32])
def test_binarizer(dtype):
    x = np.random.default_rng(0).uniform(-3, 3, size=(4, 5)).astype(dtype)
    # ONNX Runtime implements Binarizer for float only.
    oracles = ("ort", "reference") if dtype is np.float32 else ("reference",)
    _check(ml.binarizer, "Binarizer", [x], {"threshold": 0.5}, oracles)


@pytest.mark.parametrize("x,idx", [
    (np.arange(12, dtype=np.float32).reshape(3, 4), np.array([0, 3, 3])),
    (np.arange(24, dtype=np.int64).reshape(2, 3, 4), np.array([[2], [1]])),
    (np.arange(5, dtype=np.float64), np.array([4, 0])),
    (np.arange(6, dtype=np.int32).reshape(2, 3), np.array([1])),
], ids=["2d", "3d", "1d", "int32"])
def test_array_feature_extractor(x, idx):
    _check(ml.array_feature_extractor, "ArrayFeatureExtractor", [x, idx], {})


def test_array_feature_extractor_strings_and_errors():
    x = _strings("a", "b", "c", "d").reshape(2, 2)
    _check(ml.array_feature_extractor, "ArrayFeatureExtractor", [x, np.array([1])], {},
           ("ort",))
    with pytest.raises(ValueError, match="out of range"):
        ml.array_feature_extractor(np.zeros((2, 3)), np.array([3]))


@pytest.mark.parametrize("norm", ["MAX", "L1", "L2"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_normalizer(norm, dtype):
    x = np.array([[1, -2, 3], [0, 0, 0], [-4, 5, 2]], dtype=dtype)
    # onnx.reference has no integer Normalizer; ONNX Runtime returns float for every input.
    _check(ml.normalizer, "Normalizer", [x], {"norm": norm}, ("ort",))
    _check(ml.normalizer, "Normalizer", [x[2]], {"norm": norm}, ("ort",))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scaler(dtype):
    x = np.array([[1, -2, 3], [0, 7, 0]], dtype=dtype)
    attrs = {"offset": [1.0, 0.5, -2.0], "scale": [2.0, 3.0, 0.25]}
    _check(ml.scaler, "Scaler", [x], attrs, ("ort",))


def test_scaler_integer_input_gives_exact_floats():
    # The spec's output is float. Both oracles truncate integer inputs' results to integers
    # (ONNX Runtime gives -7.0 for (-2 - 0.5) * 3, onnx.reference keeps int64), so the formula
    # itself is the oracle here.
    x = np.array([[1, -2, 3], [0, 7, 0]], dtype=np.int64)
    offset, scale = [1.0, 0.5, -2.0], [2.0, 3.0, 0.25]
    expected = ((x.astype(np.float64) - offset) * scale).astype(np.float32)
    assert_close(ml.scaler(x, offset=offset, scale=scale), expected)


def test_imputer():
    x = np.array([[1.0, np.nan, 3.0], [np.nan, 9.0, np.nan]], np.float32)
    _check(ml.imputer, "Imputer", [x], {"imputed_value_floats": [7.0, 8.0, 9.0],
                                         "replaced_value_float": np.nan})
    _check(ml.imputer, "Imputer", [x], {"imputed_value_floats": [0.5],
                                         "replaced_value_float": 3.0})
    xi = np.array([[1, -1, 3], [-1, 9, -1]], np.int64)
    _check(ml.imputer, "Imputer", [xi], {"imputed_value_int64s": [5],
                                          "replaced_value_int64": -1})


def test_linear_regressor():
    x = np.array([[1.0, 2.0, 0.5], [3.0, -9.0, 1.5]], np.float32)
    attrs = {"coefficients": [1.0, 2.0, 3.0, 4.0, -1.0, 0.5], "intercepts": [0.5, 1.0],
             "targets": 2}
    _check(ml.linear_regressor, "LinearRegressor", [x], attrs)
    # Without intercepts both ONNX Runtime and onnx.reference return NaN (they read the absent
    # list as NaN); the spec makes intercepts optional, i.e. 0, so the formula is the oracle.
    coef = np.array([0.2, 0.1, 0.3], np.float32)
    assert_close(ml.linear_regressor(x, coefficients=coef.tolist()), (x @ coef)[:, None])


def test_feature_vectorizer():
    a = np.array([[1.0, 2.0], [3.0, 9.0]], np.float32)
    b = np.array([[1.5], [2.5]], np.float32)
    _check(ml.feature_vectorizer, "FeatureVectorizer", [a, b], {"inputdimensions": [3, 1]})
    _check(ml.feature_vectorizer, "FeatureVectorizer", [a, b], {"inputdimensions": [1, 1]})


@pytest.mark.parametrize("zeros", [1, 0])
def test_one_hot_encoder(zeros):
    x = np.array([[1, 2], [3, 1]], np.int64)
    _check(ml.one_hot_encoder, "OneHotEncoder", [x], {"cats_int64s": [1, 2, 3], "zeros": zeros})
    s = _strings("b", "a", "c")
    _check(ml.one_hot_encoder, "OneHotEncoder", [s], {"cats_strings": ["a", "b", "c"],
                                                       "zeros": zeros})


def test_one_hot_encoder_float_input_truncates_like_onnxruntime():
    # The spec says float input is cast to integers; onnx.reference compares the raw floats.
    x = np.array([1.7, 2.2, 3.0], np.float32)
    _check(ml.one_hot_encoder, "OneHotEncoder", [x], {"cats_int64s": [1, 2, 3]}, ("ort",))
    with pytest.raises(ValueError, match="not among"):
        ml.one_hot_encoder(np.array([4], np.int64), cats_int64s=[1, 2], zeros=0)


def test_category_mapper():
    attrs = {"cats_int64s": [1, 2, 5], "cats_strings": ["a", "b", "e"]}
    _check(ml.category_mapper, "CategoryMapper", [_strings("b", "z", "e", "a")],
           dict(attrs, default_int64=-7), ("ort",))
    _check(ml.category_mapper, "CategoryMapper", [np.array([[5, 9], [1, 2]], np.int64)],
           dict(attrs, default_string="none"), ("ort",))


# -- LabelEncoder ------------------------------------------------------------------------------

def test_label_encoder_1():
    # onnx.reference has no LabelEncoder-1.
    _check(ml.label_encoder_1, "LabelEncoder", [_strings("b", "q", "a")],
           {"classes_strings": ["a", "b", "c"], "default_int64": 42}, ("ort",))
    _check(ml.label_encoder_1, "LabelEncoder", [np.array([[1, 2], [7, -1]], np.int64)],
           {"classes_strings": ["a", "b", "c"], "default_string": "zz"}, ("ort",))


@pytest.mark.parametrize("case", [
    ([_strings("a", "b", "x", "c")], {"keys_strings": ["a", "b", "c"],
                                      "values_int64s": [3, 4, 5], "default_int64": -9}),
    ([_strings("a", "b", "x")], {"keys_strings": ["a", "b"], "values_floats": [0.5, 1.5]}),
    ([np.array([3, 1, 7, 1], np.int64)], {"keys_int64s": [1, 3], "values_strings": ["one", "3"],
                                          "default_string": "?"}),
    ([np.array([[0.5, 1.0], [2.0, 9.0]], np.float32)],
     {"keys_floats": [0.5, 1.0, 2.0], "values_int64s": [1, 2, 3]}),
], ids=["str-int", "str-float", "int-str", "float-int"])
def test_label_encoder_2(case):
    inputs, attrs = case
    _check(ml.label_encoder_2, "LabelEncoder", inputs, attrs, version=2)


def test_label_encoder_nan_key_and_duplicates_follow_spec():
    # LabelEncoder-4: "Float keys with value NaN match any input NaN" and "If a key is
    # repeated, the last key takes precedence". ONNX Runtime does neither (NaN -> default,
    # first duplicate wins); onnx.reference follows the second rule only.
    x = np.array([[0.5, np.nan], [2.0, 9.0]], np.float32)
    assert ml.label_encoder_2(x, keys_floats=[0.5, np.nan, 2.0],
                              values_int64s=[1, 2, 3]).tolist() == [[1, 2], [3, -1]]
    dup = {"keys_int64s": [1, 2, 1], "values_int64s": [10, 20, 30]}
    _check(ml.label_encoder_2, "LabelEncoder", [np.array([1, 2, 3], np.int64)], dup,
           ("reference",), version=4)
    assert ml.label_encoder_2(np.array([1, 2, 3], np.int64), **dup).tolist() == [30, 20, -1]


@pytest.mark.parametrize("kdtype,vdtype", [(np.int64, np.int16), (np.int32, np.float64),
                                           (np.float64, np.int32), (np.int16, np.float32)])
def test_label_encoder_4_tensors(kdtype, vdtype):
    keys = np.array([1, 2, 5], kdtype)
    values = np.array([10, 20, 50], vdtype)
    attrs = {"keys_tensor": keys, "values_tensor": values,
             "default_tensor": np.array([-3], vdtype)}
    x = np.array([[5, 1], [4, 2]], kdtype)
    # ONNX Runtime has no LabelEncoder-4 kernel for these type pairs.
    _check(ml.label_encoder_2, "LabelEncoder", [x], attrs, ("reference",), version=4)
    got = ml.label_encoder_2(x, keys_tensor=keys, values_tensor=values)
    assert got.dtype == np.dtype(vdtype) and got[1, 0] == (-1 if values.dtype.kind != "f"
                                                           else -0.0)


def test_label_encoder_errors():
    with pytest.raises(ValueError, match="exactly one"):
        ml.label_encoder_2(_strings("a"), keys_strings=["a"], keys_int64s=[1], values_int64s=[1])
    with pytest.raises(ValueError, match="same length"):
        ml.label_encoder_2(_strings("a"), keys_strings=["a", "b"], values_int64s=[1])


# -- tree ensembles ----------------------------------------------------------------------------

def _random_forest(rng, ntrees, depth, nfeat, ntargets, member=False):
    """TreeEnsemble-5 attributes for random trees; features take values 0..4 (and NaN)."""
    n = {"feat": [], "split": [], "mode": [], "tn": [], "tl": [], "fn": [], "fl": [],
         "miss": []}
    leaf_t, leaf_w, members, roots = [], [], [], []

    def build(d):
        if d == 0 or (d < depth and rng.random() < 0.25):
            leaf_t.append(int(rng.integers(ntargets)))
            leaf_w.append(float(rng.normal()))
            return len(leaf_t) - 1, 1
        i = len(n["feat"])
        for column in n.values():
            column.append(0)
        mode = int(rng.integers(7 if member else 6))
        n["feat"][i] = int(rng.integers(nfeat))
        n["split"][i] = float(rng.integers(0, 5)) + (0.5 if mode < 4 and rng.random() < 0.5
                                                     else 0.0)
        n["mode"][i] = mode
        n["miss"][i] = int(rng.integers(2))
        if mode == 6:
            members.append(sorted(rng.choice(5, size=int(rng.integers(1, 4)), replace=False)))
        n["tn"][i], n["tl"][i] = build(d - 1)
        n["fn"][i], n["fl"][i] = build(d - 1)
        return i, 0

    for _ in range(ntrees):
        idx, is_leaf = build(depth)
        if is_leaf:  # a one-leaf tree: a node whose branches both name that leaf
            i = len(n["feat"])
            for k, v in zip(n, (0, 0.0, 0, idx, 1, idx, 1, 0)):
                n[k].append(v)
            idx = i
        roots.append(idx)
    # Membership sets are listed in node order (nodes are numbered as they are created), each
    # ended by NaN.
    mv = []
    for members_of_node in members:
        mv += [float(v) for v in members_of_node] + [np.nan]
    attrs = {"nodes_featureids": n["feat"], "nodes_splits": np.array(n["split"], np.float32),
             "nodes_modes": np.array(n["mode"], np.uint8), "nodes_truenodeids": n["tn"],
             "nodes_trueleafs": n["tl"], "nodes_falsenodeids": n["fn"],
             "nodes_falseleafs": n["fl"], "nodes_missing_value_tracks_true": n["miss"],
             "leaf_targetids": leaf_t, "leaf_weights": np.array(leaf_w, np.float32),
             "tree_roots": roots, "n_targets": ntargets}
    if mv:
        attrs["membership_values"] = np.array(mv, np.float32)
    return attrs


def _tree_input(rng, n, nfeat, dtype=np.float32):
    x = rng.integers(0, 5, size=(n, nfeat)).astype(dtype)
    x[rng.random(x.shape) < 0.1] = np.nan
    return x


@pytest.mark.parametrize("agg", [0, 1, 2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tree_ensemble_random_forests(agg, seed):
    rng = np.random.default_rng(seed)
    attrs = _random_forest(rng, ntrees=6, depth=4, nfeat=3, ntargets=3, member=(seed == 2))
    attrs["aggregate_function"] = agg
    x = _tree_input(rng, 40, 3)
    # ONNX Runtime scores a target no tree voted for as 0 under MIN/MAX; onnx.reference
    # leaves +-FLT_MAX there. We follow ONNX Runtime.
    oracles = ("ort", "reference") if agg in (0, 1) else ("ort",)
    _check(ml.tree_ensemble, "TreeEnsemble", [x], attrs, oracles, version=5, rtol=1e-5,
           atol=1e-5)


def test_tree_ensemble_float64_input():
    rng = np.random.default_rng(5)
    attrs = _random_forest(rng, ntrees=4, depth=3, nfeat=2, ntargets=2)
    attrs["nodes_splits"] = attrs["nodes_splits"].astype(np.float64)
    attrs["leaf_weights"] = attrs["leaf_weights"].astype(np.float64)
    x = _tree_input(rng, 20, 2, np.float64)
    _check(ml.tree_ensemble, "TreeEnsemble", [x], attrs, version=5, rtol=1e-12, atol=1e-12)


def _softmax(v):
    e = np.exp(v - v.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("post", [1, 2, 3])
def test_tree_ensemble_post_transform(post):
    # onnx.reference ignores post_transform and ONNX Runtime swaps SOFTMAX (1) and
    # LOGISTIC (2); the spec's formulas are applied to the reference's raw scores instead.
    rng = np.random.default_rng(7)
    attrs = _random_forest(rng, ntrees=5, depth=3, nfeat=3, ntargets=4)
    x = _tree_input(rng, 25, 3)
    raw = np.asarray(_run("reference", "TreeEnsemble", [x], attrs, version=5), np.float64)
    if post == 1:
        expected = _softmax(raw)
    elif post == 2:
        expected = 1 / (1 + np.exp(-raw))
    else:
        masked = np.where(raw == 0, -np.inf, raw)
        expected = np.nan_to_num(_softmax(masked), nan=0.0)
        expected[(raw == 0).all(axis=1)] = 0
    got = ml.tree_ensemble(x, **attrs, post_transform=post)
    assert_close(got, expected.astype(np.float32), rtol=1e-5, atol=1e-6)


def test_tree_ensemble_softmax_zero_matches_onnxruntime():
    rng = np.random.default_rng(8)
    attrs = _random_forest(rng, ntrees=3, depth=2, nfeat=2, ntargets=5)
    attrs["post_transform"] = 3
    _check(ml.tree_ensemble, "TreeEnsemble", [_tree_input(rng, 10, 2)], attrs, ("ort",),
           version=5)


def test_tree_ensemble_errors():
    rng = np.random.default_rng(0)
    attrs = _random_forest(rng, ntrees=2, depth=2, nfeat=4, ntargets=2)
    with pytest.raises(ValueError, match="features"):
        ml.tree_ensemble(np.zeros((3, 2), np.float32), **attrs)
    bad = dict(attrs, nodes_truenodeids=[0] * len(attrs["nodes_truenodeids"]),
               nodes_trueleafs=[0] * len(attrs["nodes_trueleafs"]))
    with pytest.raises(ValueError, match="cycle"):
        ml.tree_ensemble(np.zeros((3, 4), np.float32), **bad)
    with pytest.raises(ValueError, match="required"):
        ml.tree_ensemble(np.zeros((3, 4), np.float32), tree_roots=[0])


_LEGACY_MODES = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ",
                 "BRANCH_NEQ"]


def _legacy_forest(rng, ntrees, depth, nfeat, ntargets):
    a = {k: [] for k in ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes",
                         "nodes_values", "nodes_truenodeids", "nodes_falsenodeids",
                         "nodes_missing_value_tracks_true", "target_treeids", "target_nodeids",
                         "target_ids", "target_weights")}
    for t in range(ntrees):
        count = [0]

        def build(d, t=t, count=count):
            i = count[0]
            count[0] += 1
            pos = len(a["nodes_treeids"])
            for k in ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes",
                      "nodes_values", "nodes_truenodeids", "nodes_falsenodeids",
                      "nodes_missing_value_tracks_true"):
                a[k].append(0)
            a["nodes_treeids"][pos], a["nodes_nodeids"][pos] = t, i
            if d == 0 or (d < depth and rng.random() < 0.25):
                a["nodes_modes"][pos] = "LEAF"
                # Several votes per leaf (multi-target regression).
                for k in rng.choice(ntargets, size=int(rng.integers(1, ntargets + 1)),
                                    replace=False):
                    a["target_treeids"].append(t)
                    a["target_nodeids"].append(i)
                    a["target_ids"].append(int(k))
                    a["target_weights"].append(float(rng.normal()))
                return i
            a["nodes_modes"][pos] = _LEGACY_MODES[int(rng.integers(6))]
            a["nodes_featureids"][pos] = int(rng.integers(nfeat))
            a["nodes_values"][pos] = float(rng.integers(0, 5)) + 0.5 * int(rng.integers(2))
            a["nodes_missing_value_tracks_true"][pos] = int(rng.integers(2))
            a["nodes_truenodeids"][pos] = build(d - 1)
            a["nodes_falsenodeids"][pos] = build(d - 1)
            return i

        build(depth)
    a["n_targets"] = ntargets
    return a


@pytest.mark.parametrize("agg", ["SUM", "AVERAGE", "MIN", "MAX"])
@pytest.mark.parametrize("seed", [0, 1])
def test_tree_ensemble_regressor(agg, seed):
    rng = np.random.default_rng(seed + 10)
    attrs = _legacy_forest(rng, ntrees=5, depth=4, nfeat=3, ntargets=2)
    attrs["aggregate_function"] = agg
    attrs["base_values"] = [0.25, -1.0]
    x = _tree_input(rng, 30, 3)
    _check(ml.tree_ensemble_regressor, "TreeEnsembleRegressor", [x], attrs, ("ort",),
           version=3, rtol=1e-5, atol=1e-5)
    if agg in ("SUM", "AVERAGE"):
        # onnx.reference's legacy regressor mishandles NaN features; compare without them.
        x = np.nan_to_num(x, nan=2.0)
        _check(ml.tree_ensemble_regressor, "TreeEnsembleRegressor", [x], attrs,
               ("reference",), version=3, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("post", ["LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"])
def test_tree_ensemble_regressor_post_transform(post):
    rng = np.random.default_rng(3)
    attrs = _legacy_forest(rng, ntrees=4, depth=3, nfeat=2, ntargets=3)
    attrs["post_transform"] = post
    _check(ml.tree_ensemble_regressor, "TreeEnsembleRegressor", [_tree_input(rng, 20, 2)],
           attrs, ("ort",), version=3, rtol=1e-5, atol=1e-6)


def test_tree_ensemble_regressor_probit_single_target():
    rng = np.random.default_rng(4)
    attrs = _legacy_forest(rng, ntrees=3, depth=2, nfeat=2, ntargets=1)
    attrs["target_weights"] = [abs(w) % 0.3 for w in attrs["target_weights"]]
    attrs["post_transform"] = "PROBIT"
    attrs["base_values"] = [0.05]
    _check(ml.tree_ensemble_regressor, "TreeEnsembleRegressor", [_tree_input(rng, 20, 2)],
           attrs, ("ort",), version=3, rtol=1e-4, atol=1e-5)


def test_tree_ensemble_regressor_as_tensor_attributes():
    rng = np.random.default_rng(6)
    attrs = _legacy_forest(rng, ntrees=3, depth=3, nfeat=2, ntargets=2)
    attrs["nodes_values_as_tensor"] = np.array(attrs.pop("nodes_values"), np.float64)
    attrs["target_weights_as_tensor"] = np.array(attrs.pop("target_weights"), np.float64)
    x = _tree_input(rng, 15, 2, np.float64)
    _check(ml.tree_ensemble_regressor, "TreeEnsembleRegressor", [x], attrs, ("ort",),
           version=3, rtol=1e-5, atol=1e-6)
