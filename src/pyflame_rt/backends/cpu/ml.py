"""CPU kernels for the ``ai.onnx.ml`` domain (classical machine learning).

Covered: TreeEnsemble-5 and TreeEnsembleRegressor-1/3/5, LabelEncoder-1/2/4,
ArrayFeatureExtractor, Binarizer, Scaler, Normalizer, Imputer, LinearRegressor, OneHotEncoder,
CategoryMapper and FeatureVectorizer.

Tree ensembles are evaluated for all samples and all trees at once: each step moves every
(sample, tree) pair that has not reached a leaf one level down, so the Python loop runs once per
tree level, not once per node or sample. String look-ups map each distinct input string once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...ops import kernel

__all__ = [
    "array_feature_extractor",
    "binarizer",
    "category_mapper",
    "feature_vectorizer",
    "imputer",
    "label_encoder_1",
    "label_encoder_2",
    "linear_regressor",
    "normalizer",
    "one_hot_encoder",
    "scaler",
    "tree_ensemble",
    "tree_ensemble_regressor",
]

ML = "ai.onnx.ml"


def _text(s: Any) -> str:
    return s.decode("utf-8") if isinstance(s, bytes) else str(s)


def _as_2d(x: np.ndarray, op: str) -> np.ndarray:
    """[N, C] view of a 1-D ([C] -> [1, C]) or 2-D input."""
    x = np.asarray(x)
    if x.ndim == 1:
        return x.reshape(1, -1)
    if x.ndim != 2:
        raise ValueError(f"{op} expects a [N, C] (or [C]) tensor, got shape {list(x.shape)}")
    return x


def _real(x: np.ndarray) -> np.ndarray:
    """float input stays float32/float64; integer input is computed (and returned) as float32."""
    x = np.asarray(x)
    if x.dtype == np.float64 or x.dtype == np.float32:
        return x
    return x.astype(np.float32)


# -- simple element-wise ops -------------------------------------------------------------------

@kernel("Binarizer", since=1, domain=ML)
def binarizer(X: np.ndarray, *, threshold: float = 0.0) -> np.ndarray:
    """ONNX ML Binarizer-1: 1 where X > threshold, else 0 (same type as X)."""
    x = np.asarray(X)
    return (x > x.dtype.type(threshold) if x.dtype.kind == "f" else x > threshold).astype(x.dtype)


@kernel("ArrayFeatureExtractor", since=1, domain=ML)
def array_feature_extractor(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """ONNX ML ArrayFeatureExtractor-1: X[..., Y] with the indices Y on the last axis."""
    x = np.asarray(X)
    idx = np.asarray(Y).astype(np.int64).reshape(-1)
    if x.ndim == 0:
        raise ValueError("ArrayFeatureExtractor: X must have rank >= 1")
    size = x.shape[-1]
    if idx.size and (idx.min() < 0 or idx.max() >= size):
        raise ValueError(f"ArrayFeatureExtractor: indices {idx.tolist()} are out of range for a "
                         f"last axis of size {size}")
    y = x[..., idx]
    # A 1-D input gives a [1, len(Y)] result, as in ONNX Runtime and onnx.reference.
    return y.reshape(1, -1) if x.ndim == 1 else y


@kernel("Scaler", since=1, domain=ML)
def scaler(X: np.ndarray, *, offset: Sequence[float] | None = None,
           scale: Sequence[float] | None = None) -> np.ndarray:
    """ONNX ML Scaler-1: (X - offset) * scale per feature (last axis); float output."""
    x = _real(X)
    dt = x.dtype if x.dtype == np.float64 else np.float32
    off = np.asarray(offset if offset is not None else [0.0], dtype=np.float32).astype(dt)
    sc = np.asarray(scale if scale is not None else [1.0], dtype=np.float32).astype(dt)
    c = x.shape[-1] if x.ndim else 1
    for name, v in (("offset", off), ("scale", sc)):
        if v.size not in (1, c):
            raise ValueError(f"Scaler: {name} has {v.size} values; give 1 or one per feature "
                             f"({c})")
    return ((x.astype(dt) - off) * sc).astype(np.float32)


@kernel("Normalizer", since=1, domain=ML)
def normalizer(X: np.ndarray, *, norm: str = "MAX") -> np.ndarray:
    """ONNX ML Normalizer-1: each row divided by its max, L1 or L2 norm (rows of zero kept)."""
    x = _as_2d(_real(X), "Normalizer")
    mode = _text(norm).upper()
    if mode == "MAX":
        d = np.max(x, axis=1, keepdims=True) if x.shape[1] else np.zeros((x.shape[0], 1), x.dtype)
    elif mode == "L1":
        d = np.sum(np.abs(x), axis=1, keepdims=True)
    elif mode == "L2":
        d = np.sqrt(np.sum(x * x, axis=1, keepdims=True))
    else:
        raise ValueError(f"Normalizer: norm must be MAX, L1 or L2, got {norm!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where(d == 0, x, x / np.where(d == 0, 1, d))
    return y.astype(np.float32).reshape(np.shape(X))  # a 1-D input stays 1-D


@kernel("Imputer", since=1, domain=ML)
def imputer(X: np.ndarray, *, imputed_value_floats: Sequence[float] | None = None,
            imputed_value_int64s: Sequence[int] | None = None,
            replaced_value_float: float = 0.0, replaced_value_int64: int = 0) -> np.ndarray:
    """ONNX ML Imputer-1: replace elements equal to the replaced value (NaN matches NaN)."""
    x = np.asarray(X)
    if x.dtype.kind == "f":
        if not imputed_value_floats:
            raise ValueError("Imputer: float input needs imputed_value_floats")
        fill = np.asarray(imputed_value_floats, dtype=np.float32).astype(x.dtype)
        target = x.dtype.type(replaced_value_float)
        hit = np.isnan(x) if np.isnan(target) else x == target
    elif x.dtype.kind in "iu":
        if not imputed_value_int64s:
            raise ValueError("Imputer: integer input needs imputed_value_int64s")
        fill = np.asarray(imputed_value_int64s, dtype=np.int64).astype(x.dtype)
        hit = x == replaced_value_int64
    else:
        raise ValueError(f"Imputer: unsupported input type {x.dtype}")
    c = x.shape[-1] if x.ndim else 1
    if fill.size not in (1, c):
        raise ValueError(f"Imputer: {fill.size} imputed values; give 1 or one per feature ({c})")
    return np.where(hit, fill if fill.size > 1 else fill.reshape(()), x)


@kernel("FeatureVectorizer", since=1, domain=ML)
def feature_vectorizer(*X: np.ndarray,
                       inputdimensions: Sequence[int] | None = None) -> np.ndarray:
    """ONNX ML FeatureVectorizer-1: concatenate [N, C_i] inputs (padded/cut to inputdimensions)."""
    parts = [_as_2d(np.asarray(x), "FeatureVectorizer") for x in X]
    if not parts:
        raise ValueError("FeatureVectorizer needs at least one input")
    dims = list(inputdimensions) if inputdimensions else [p.shape[1] for p in parts]
    if len(dims) != len(parts):
        raise ValueError(f"FeatureVectorizer: inputdimensions has {len(dims)} entries for "
                         f"{len(parts)} inputs")
    n = parts[0].shape[0]
    out = np.zeros((n, sum(dims)), dtype=np.float32)
    col = 0
    for p, d in zip(parts, dims):
        if p.shape[0] != n:
            raise ValueError(f"FeatureVectorizer: inputs have {n} and {p.shape[0]} rows")
        k = min(d, p.shape[1])
        out[:, col:col + k] = p[:, :k]
        col += d
    return out


# -- look-up tables ----------------------------------------------------------------------------

def _map_strings(x: np.ndarray, table: dict[str, Any], default: Any,
                 out_dtype: Any) -> np.ndarray:
    """table[s] (or default) for every string in x; each distinct string is looked up once."""
    flat = np.asarray(x, dtype=object).reshape(-1)
    if flat.size == 0:
        return np.empty(x.shape, dtype=out_dtype)
    uniq, inv = np.unique(flat.astype(str), return_inverse=True)
    looked = [table.get(str(u), default) for u in uniq]
    vals = np.empty(len(looked), dtype=out_dtype)
    vals[:] = looked
    return vals[inv.reshape(-1)].reshape(x.shape)


def _map_numbers(x: np.ndarray, keys: np.ndarray, values: np.ndarray,
                 default: Any) -> np.ndarray:
    """values[i] where x == keys[i] (the last duplicate key wins; NaN matches NaN)."""
    flat = np.asarray(x).reshape(-1)
    out = np.full(flat.shape, default, dtype=values.dtype)
    if keys.size == 0 or flat.size == 0:
        return out.reshape(np.shape(x))
    # Keep the last occurrence of each key, then binary-search the sorted keys.
    rev_keys = keys[::-1]
    uniq, first = np.unique(rev_keys, return_index=True)
    uvals = values[::-1][first]
    pos = np.clip(np.searchsorted(uniq, flat), 0, len(uniq) - 1)
    found = uniq[pos]
    hit = found == flat
    if flat.dtype.kind == "f":
        hit |= np.isnan(found) & np.isnan(flat)
    out[hit] = uvals[pos[hit]]
    return out.reshape(np.shape(x))


@kernel("LabelEncoder", since=1, domain=ML)
def label_encoder_1(X: np.ndarray, *, classes_strings: Sequence[str] | None = None,
                    default_int64: int = -1, default_string: str = "_Unused") -> np.ndarray:
    """ONNX ML LabelEncoder-1: string -> its index in classes_strings, or int64 -> string."""
    x = np.asarray(X)
    classes = [_text(s) for s in (classes_strings or [])]
    if x.dtype.kind in "OUS":
        table = {s: i for i, s in enumerate(classes)}
        return _map_strings(x, table, int(default_int64), np.int64)
    if x.dtype.kind in "iu":
        idx = x.astype(np.int64)
        lut = np.empty(len(classes) + 1, dtype=object)
        lut[:len(classes)] = classes
        lut[len(classes)] = _text(default_string)
        ok = (idx >= 0) & (idx < len(classes))
        return lut[np.where(ok, idx, len(classes))]
    raise ValueError(f"LabelEncoder: input must be string or int64, got {x.dtype}")


def _values_of(kind: str, attrs: dict[str, Any]) -> np.ndarray | None:
    ints, floats, strings, tensor = (attrs[f"{kind}_int64s"], attrs[f"{kind}_floats"],
                                     attrs[f"{kind}_strings"], attrs.get(f"{kind}_tensor"))
    given = [v for v in (ints, floats, strings, tensor) if v is not None]
    if len(given) != 1:
        raise ValueError(f"LabelEncoder: set exactly one of the {kind}_* attributes "
                         f"({len(given)} given)")
    if tensor is not None:
        t = np.asarray(tensor).reshape(-1)
        return t.astype(object) if t.dtype.kind in "OUS" else t
    if ints is not None:
        return np.asarray(ints, dtype=np.int64)
    if floats is not None:
        return np.asarray(floats, dtype=np.float32)
    arr = np.empty(len(strings), dtype=object)
    arr[:] = [_text(s) for s in strings]
    return arr


@kernel("LabelEncoder", since=2, domain=ML)
def label_encoder_2(X: np.ndarray, *, keys_int64s: Sequence[int] | None = None,
                    keys_floats: Sequence[float] | None = None,
                    keys_strings: Sequence[str] | None = None,
                    keys_tensor: np.ndarray | None = None,
                    values_int64s: Sequence[int] | None = None,
                    values_floats: Sequence[float] | None = None,
                    values_strings: Sequence[str] | None = None,
                    values_tensor: np.ndarray | None = None, default_int64: int = -1,
                    default_float: float = -0.0, default_string: str = "_Unused",
                    default_tensor: np.ndarray | None = None) -> np.ndarray:
    """ONNX ML LabelEncoder-2/4: map keys_* to values_* element-wise, default_* otherwise."""
    attrs = locals()
    keys = _values_of("keys", attrs)
    values = _values_of("values", attrs)
    if keys.size != values.size:
        raise ValueError(f"LabelEncoder: {keys.size} keys but {values.size} values; they must "
                         "have the same length")
    if default_tensor is not None:
        default = np.asarray(default_tensor).reshape(-1)[0]
    elif values.dtype == object:
        default = _text(default_string)
    elif values.dtype.kind == "f":
        default = default_float
    else:
        default = default_int64
    x = np.asarray(X)
    if values.dtype == object and not isinstance(default, str):
        default = _text(default)
    if keys.dtype == object:
        if x.dtype.kind not in "OUS":
            raise ValueError(f"LabelEncoder: string keys but the input is {x.dtype}")
        table = {str(k): v for k, v in zip(keys.tolist(), values.tolist())}
        return _map_strings(x, table, default, values.dtype)
    if x.dtype.kind in "OUS":
        raise ValueError(f"LabelEncoder: input is a string tensor but the keys are {keys.dtype}")
    return _map_numbers(x, keys.astype(x.dtype), values, default)


@kernel("CategoryMapper", since=1, domain=ML)
def category_mapper(X: np.ndarray, *, cats_int64s: Sequence[int] | None = None,
                    cats_strings: Sequence[str] | None = None, default_int64: int = -1,
                    default_string: str = "_Unused") -> np.ndarray:
    """ONNX ML CategoryMapper-1: strings <-> int64 through the parallel cats_* lists."""
    x = np.asarray(X)
    ints = list(cats_int64s or [])
    strs = [_text(s) for s in (cats_strings or [])]
    if len(ints) != len(strs):
        raise ValueError(f"CategoryMapper: cats_int64s has {len(ints)} entries but cats_strings "
                         f"has {len(strs)}")
    if x.dtype.kind in "OUS":
        return _map_strings(x, dict(zip(strs, ints)), int(default_int64), np.int64)
    if x.dtype.kind in "iu":
        keys = np.asarray(ints, dtype=np.int64)
        vals = np.empty(len(strs), dtype=object)
        vals[:] = strs
        return _map_numbers(x.astype(np.int64), keys, vals, _text(default_string))
    raise ValueError(f"CategoryMapper: input must be string or int64, got {x.dtype}")


@kernel("OneHotEncoder", since=1, domain=ML)
def one_hot_encoder(X: np.ndarray, *, cats_int64s: Sequence[int] | None = None,
                    cats_strings: Sequence[str] | None = None, zeros: int = 1) -> np.ndarray:
    """ONNX ML OneHotEncoder-1: a trailing one-hot axis over the categories (float output)."""
    x = np.asarray(X)
    if x.dtype.kind in "OUS":
        if cats_strings is None:
            raise ValueError("OneHotEncoder: string input needs cats_strings")
        cats = [_text(s) for s in cats_strings]
        idx = _map_strings(x, {s: i for i, s in enumerate(cats)}, -1, np.int64)
    else:
        if cats_int64s is None:
            raise ValueError("OneHotEncoder: numeric input needs cats_int64s")
        cats_arr = np.asarray(cats_int64s, dtype=np.int64)
        vals = np.arange(cats_arr.size, dtype=np.int64)
        # Float inputs are truncated to integers for the look-up, as the spec says.
        idx = _map_numbers(x.astype(np.int64), cats_arr, vals, -1)
        cats = cats_arr.tolist()
    if not zeros and np.any(idx < 0):
        raise ValueError("OneHotEncoder: an input value is not among the categories (zeros=0 "
                         "makes unknown values an error)")
    y = (idx[..., None] == np.arange(len(cats))).astype(np.float32)
    return y


# -- linear models -----------------------------------------------------------------------------

def _erfinv(y: np.ndarray) -> np.ndarray:
    """Inverse error function by Winitzki's closed-form approximation (as ONNX Runtime uses)."""
    a = 0.147
    ln = np.log((1 - y) * (1 + y))
    t = 2 / (np.pi * a) + 0.5 * ln
    return np.sign(y) * np.sqrt(np.sqrt(t * t - ln / a) - t)


def _post_transform(y: np.ndarray, mode: Any) -> np.ndarray:
    """NONE / SOFTMAX / LOGISTIC / SOFTMAX_ZERO / PROBIT over the last axis (scores [N, K])."""
    name = {0: "NONE", 1: "SOFTMAX", 2: "LOGISTIC", 3: "SOFTMAX_ZERO", 4: "PROBIT"}.get(
        mode, mode) if isinstance(mode, (int, np.integer)) else _text(mode).upper()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if name == "NONE":
            return y
        if name == "LOGISTIC":
            return 1 / (1 + np.exp(-y))
        if name == "SOFTMAX":
            e = np.exp(y - np.max(y, axis=-1, keepdims=True))
            return e / np.sum(e, axis=-1, keepdims=True)
        if name == "SOFTMAX_ZERO":
            # Zero scores stay zero (they mean "no vote"); the rest get a softmax.
            nz = y != 0
            e = np.where(nz, np.exp(y - np.max(y, axis=-1, keepdims=True)), 0)
            s = np.sum(e, axis=-1, keepdims=True)
            return np.where(s > 0, e / np.where(s > 0, s, 1), 0)
        if name == "PROBIT":
            return np.sqrt(2) * _erfinv(2 * y - 1)
    raise ValueError(f"post_transform {mode!r} is not one of NONE, SOFTMAX, LOGISTIC, "
                     "SOFTMAX_ZERO, PROBIT")


@kernel("LinearRegressor", since=1, domain=ML)
def linear_regressor(X: np.ndarray, *, coefficients: Sequence[float] | None = None,
                     intercepts: Sequence[float] | None = None, post_transform: str = "NONE",
                     targets: int = 1) -> np.ndarray:
    """ONNX ML LinearRegressor-1: Y = X @ coefficients^T + intercepts, float32 [N, targets]."""
    x = _as_2d(np.asarray(X), "LinearRegressor").astype(np.float32)
    k = int(targets)
    coef = np.asarray(coefficients if coefficients is not None else [], dtype=np.float32)
    if coef.size != k * x.shape[1]:
        raise ValueError(f"LinearRegressor: {coef.size} coefficients for {k} targets and "
                         f"{x.shape[1]} features; expected {k * x.shape[1]}")
    y = x @ coef.reshape(k, x.shape[1]).T
    if intercepts:
        b = np.asarray(intercepts, dtype=np.float32)
        if b.size != k:
            raise ValueError(f"LinearRegressor: {b.size} intercepts for {k} targets")
        y = y + b
    return _post_transform(y, post_transform).astype(np.float32)


# -- tree ensembles ----------------------------------------------------------------------------

_MODES = {"BRANCH_LEQ": 0, "BRANCH_LT": 1, "BRANCH_GTE": 2, "BRANCH_GT": 3, "BRANCH_EQ": 4,
          "BRANCH_NEQ": 5, "BRANCH_MEMBER": 6, "LEAF": 7}


class _Forest:
    """Interior nodes and leaves as flat arrays; ``leaves(X)`` walks every tree at once.

    A node's true/false successor is either another node or, when the matching ``*_leaf``
    flag is set, a leaf index. A tree whose root is itself a leaf has ``root_leaf`` set.
    """

    def __init__(self, feature, split, mode, true_next, false_next, true_leaf, false_leaf,
                 missing_true, roots, root_leaf, members=None):
        self.feature = np.asarray(feature, dtype=np.int64)
        self.split = np.asarray(split, dtype=np.float64)
        self.mode = np.asarray(mode, dtype=np.int64)
        self.true_next = np.asarray(true_next, dtype=np.int64)
        self.false_next = np.asarray(false_next, dtype=np.int64)
        self.true_leaf = np.asarray(true_leaf, dtype=bool)
        self.false_leaf = np.asarray(false_leaf, dtype=bool)
        self.missing_true = np.asarray(missing_true, dtype=bool)
        self.roots = np.asarray(roots, dtype=np.int64)
        self.root_leaf = np.asarray(root_leaf, dtype=bool)
        n = self.feature.size
        for name in ("split", "mode", "true_next", "false_next", "true_leaf", "false_leaf",
                     "missing_true"):
            if getattr(self, name).size != n:
                raise ValueError(f"tree ensemble: nodes_{name} has {getattr(self, name).size} "
                                 f"entries but there are {n} nodes")
        # Set-membership nodes: row r of ``member_sets`` (NaN padded) is node's set.
        self.member_row = np.full(n, -1, dtype=np.int64)
        self.member_sets = np.zeros((0, 1))
        if members:
            is_member = np.nonzero(self.mode == 6)[0]
            if len(members) != is_member.size:
                raise ValueError(f"tree ensemble: {is_member.size} BRANCH_MEMBER nodes but "
                                 f"{len(members)} member sets in membership_values")
            width = max(1, max(len(m) for m in members))
            self.member_sets = np.full((len(members), width), np.nan)
            for r, m in enumerate(members):
                self.member_sets[r, :len(m)] = m
            self.member_row[is_member] = np.arange(len(members))
        elif np.any(self.mode == 6):
            raise ValueError("tree ensemble: BRANCH_MEMBER nodes need membership_values")

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """Leaf index reached by every sample in every tree: [N, n_trees]."""
        n, nf = x.shape
        if self.feature.size and (self.feature.min() < 0 or self.feature.max() >= nf):
            raise ValueError(f"tree ensemble: a node reads feature {int(self.feature.max())} "
                             f"but the input has {nf} features")
        ntrees = self.roots.size
        cur = np.broadcast_to(self.roots, (n, ntrees)).copy()
        done = np.broadcast_to(self.root_leaf, (n, ntrees)).copy()
        for _ in range(self.feature.size + 1):
            r, c = np.nonzero(~done)
            if r.size == 0:
                return cur
            node = cur[r, c]
            xv = x[r, self.feature[node]]
            cond = self._compare(xv, node)
            cur[r, c] = np.where(cond, self.true_next[node], self.false_next[node])
            done[r, c] = np.where(cond, self.true_leaf[node], self.false_leaf[node])
        raise ValueError("tree ensemble: the node links contain a cycle")

    def _compare(self, xv: np.ndarray, node: np.ndarray) -> np.ndarray:
        m = self.mode[node]
        s = self.split[node]
        with np.errstate(invalid="ignore"):
            cond = np.select([m == 0, m == 1, m == 2, m == 3, m == 4, m == 5],
                             [xv <= s, xv < s, xv >= s, xv > s, xv == s, xv != s], False)
            member = m == 6
            if member.any():
                sets = self.member_sets[self.member_row[node[member]]]
                cond[member] = np.any(sets == xv[member, None], axis=1)
        # NaN follows the true branch only where the node says so.
        return cond | (np.isnan(xv) & self.missing_true[node])


def _aggregate(forest: _Forest, x: np.ndarray, leaf_target: np.ndarray, leaf_weight: np.ndarray,
               leaf_of_vote: np.ndarray, n_leaves: int, n_targets: int,
               aggregate: str) -> np.ndarray:
    """Per-sample scores [N, n_targets] from the leaves reached (float64)."""
    leaves = forest.leaves(x)
    n, ntrees = leaves.shape
    # Dense per-leaf vote tables: sum (and min/max) of the leaf's weights for each target.
    flat = leaf_of_vote * n_targets + leaf_target
    table = np.bincount(flat, weights=leaf_weight,
                        minlength=n_leaves * n_targets).reshape(n_leaves, n_targets)
    voted = np.bincount(flat, minlength=n_leaves * n_targets).reshape(n_leaves, n_targets) > 0
    if aggregate in ("SUM", "AVERAGE"):
        out = np.zeros((n, n_targets))
        chunk = max(1, (1 << 22) // max(1, n * n_targets))
        for t0 in range(0, ntrees, chunk):
            out += table[leaves[:, t0:t0 + chunk]].sum(axis=1)
        return out / ntrees if aggregate == "AVERAGE" and ntrees else out
    if aggregate in ("MIN", "MAX"):
        fill = np.inf if aggregate == "MIN" else -np.inf
        ext = np.full((n_leaves, n_targets), fill)
        ufunc = np.minimum if aggregate == "MIN" else np.maximum
        ufunc.at(ext, (leaf_of_vote, leaf_target), leaf_weight)
        out = np.full((n, n_targets), fill)
        hit = np.zeros((n, n_targets), dtype=bool)
        for t in range(ntrees):
            out = ufunc(out, ext[leaves[:, t]])
            hit |= voted[leaves[:, t]]
        # A target no tree voted for scores 0, as in ONNX Runtime.
        return np.where(hit, out, 0.0)
    raise ValueError(f"aggregate_function {aggregate!r} is not one of AVERAGE, SUM, MIN, MAX")


def _tensor_values(tensor: Any, floats: Sequence[float] | None) -> np.ndarray | None:
    if tensor is not None:
        return np.asarray(tensor, dtype=np.float64).reshape(-1)
    if floats is not None:
        return np.asarray(floats, dtype=np.float32).astype(np.float64)
    return None


@kernel("TreeEnsemble", since=5, domain=ML)
def tree_ensemble(X: np.ndarray, *, aggregate_function: int = 1,
                  leaf_targetids: Sequence[int] | None = None,
                  leaf_weights: np.ndarray | None = None,
                  membership_values: np.ndarray | None = None, n_targets: int | None = None,
                  nodes_falseleafs: Sequence[int] | None = None,
                  nodes_falsenodeids: Sequence[int] | None = None,
                  nodes_featureids: Sequence[int] | None = None,
                  nodes_hitrates: np.ndarray | None = None,
                  nodes_missing_value_tracks_true: Sequence[int] | None = None,
                  nodes_modes: np.ndarray | None = None, nodes_splits: np.ndarray | None = None,
                  nodes_trueleafs: Sequence[int] | None = None,
                  nodes_truenodeids: Sequence[int] | None = None, post_transform: int = 0,
                  tree_roots: Sequence[int] | None = None) -> np.ndarray:
    """ONNX ML TreeEnsemble-5: sum/average/min/max of leaf weights per target, then transform."""
    required = {"leaf_targetids": leaf_targetids, "leaf_weights": leaf_weights,
                "nodes_falseleafs": nodes_falseleafs, "nodes_falsenodeids": nodes_falsenodeids,
                "nodes_featureids": nodes_featureids, "nodes_modes": nodes_modes,
                "nodes_splits": nodes_splits, "nodes_trueleafs": nodes_trueleafs,
                "nodes_truenodeids": nodes_truenodeids, "tree_roots": tree_roots}
    missing = [k for k, v in required.items() if v is None]
    if missing:
        raise ValueError(f"TreeEnsemble: required attribute(s) {', '.join(missing)} not set")
    x = _as_2d(np.asarray(X), "TreeEnsemble")
    nnodes = len(nodes_featureids)
    members = None
    if membership_values is not None:
        mv = np.asarray(membership_values, dtype=np.float64).reshape(-1)
        # NaN ends each set; one set per BRANCH_MEMBER node, in node order.
        ends = np.nonzero(np.isnan(mv))[0]
        starts = np.concatenate([[0], ends[:-1] + 1]) if ends.size else np.zeros(0, np.int64)
        members = [mv[s:e] for s, e in zip(starts, ends)]
    missing_true = (nodes_missing_value_tracks_true if nodes_missing_value_tracks_true
                    is not None else [0] * nnodes)
    roots = np.asarray(tree_roots, dtype=np.int64)
    forest = _Forest(nodes_featureids, np.asarray(nodes_splits, dtype=np.float64).reshape(-1),
                     np.asarray(nodes_modes).reshape(-1), nodes_truenodeids, nodes_falsenodeids,
                     nodes_trueleafs, nodes_falseleafs, missing_true, roots,
                     np.zeros(roots.size, dtype=bool), members)
    weights = np.asarray(leaf_weights, dtype=np.float64).reshape(-1)
    targets = np.asarray(leaf_targetids, dtype=np.int64)
    if targets.size != weights.size:
        raise ValueError(f"TreeEnsemble: {targets.size} leaf_targetids but {weights.size} "
                         "leaf_weights")
    k = int(n_targets) if n_targets is not None else int(targets.max(initial=-1)) + 1
    if targets.size and (targets.min() < 0 or targets.max() >= k):
        raise ValueError(f"TreeEnsemble: leaf_targetids must lie in [0, n_targets={k})")
    agg = {0: "AVERAGE", 1: "SUM", 2: "MIN", 3: "MAX"}.get(int(aggregate_function))
    if agg is None:
        raise ValueError(f"TreeEnsemble: aggregate_function {aggregate_function} is not 0-3")
    scores = _aggregate(forest, x.astype(np.float64), targets, weights,
                        np.arange(weights.size), weights.size, k, agg)
    out_dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
    return _post_transform(scores, int(post_transform)).astype(out_dtype)


def _legacy_forest(op: str, nodes_treeids, nodes_nodeids, nodes_featureids, nodes_modes,
                   nodes_values, nodes_truenodeids, nodes_falsenodeids,
                   nodes_missing_value_tracks_true) -> tuple[_Forest, dict, int]:
    """A ``_Forest`` from the (treeid, nodeid)-keyed attributes of the legacy tree ops.

    Returns the forest, the map (treeid, nodeid) -> leaf index, and the number of leaves.
    """
    lists = {"nodes_treeids": nodes_treeids, "nodes_nodeids": nodes_nodeids,
             "nodes_featureids": nodes_featureids, "nodes_modes": nodes_modes,
             "nodes_truenodeids": nodes_truenodeids, "nodes_falsenodeids": nodes_falsenodeids}
    missing = [k for k, v in lists.items() if v is None]
    if missing:
        raise ValueError(f"{op}: required attribute(s) {', '.join(missing)} not set")
    n = len(nodes_treeids)
    modes = [_MODES.get(_text(m).upper(), -1) for m in nodes_modes]
    if -1 in modes:
        bad = nodes_modes[modes.index(-1)]
        raise ValueError(f"{op}: unknown node mode {bad!r}")
    values = nodes_values if nodes_values is not None else np.zeros(n)
    if any(len(v) != n for v in lists.values()) or len(values) != n:
        raise ValueError(f"{op}: the nodes_* attributes must all have {n} entries")
    key_to_pos = {(int(t), int(i)): p for p, (t, i) in enumerate(zip(nodes_treeids,
                                                                     nodes_nodeids))}
    leaf_pos = [p for p in range(n) if modes[p] == 7]
    leaf_index = {p: j for j, p in enumerate(leaf_pos)}
    leaf_key = {(int(nodes_treeids[p]), int(nodes_nodeids[p])): j for p, j in leaf_index.items()}
    # Interior nodes get dense indices; successors point at interior nodes or leaves.
    inner = [p for p in range(n) if modes[p] != 7]
    inner_index = {p: j for j, p in enumerate(inner)}

    def successor(p: int, child: int) -> tuple[int, bool]:
        q = key_to_pos.get((int(nodes_treeids[p]), int(child)))
        if q is None:
            raise ValueError(f"{op}: node {nodes_nodeids[p]} of tree {nodes_treeids[p]} links to "
                             f"missing node {child}")
        return (leaf_index[q], True) if modes[q] == 7 else (inner_index[q], False)

    tn, tl, fn, fl = [], [], [], []
    for p in inner:
        a, b = successor(p, nodes_truenodeids[p])
        c, d = successor(p, nodes_falsenodeids[p])
        tn.append(a)
        tl.append(b)
        fn.append(c)
        fl.append(d)
    tracks = (nodes_missing_value_tracks_true if nodes_missing_value_tracks_true
              else [0] * n)
    # A tree's root is its node 0 (the spec numbers each tree's nodes from 0).
    tree_ids = sorted({int(t) for t in nodes_treeids})
    roots, root_leaf = [], []
    for t in tree_ids:
        p = key_to_pos.get((t, 0))
        if p is None:
            p = min((q for q in range(n) if int(nodes_treeids[q]) == t),
                    key=lambda q: nodes_nodeids[q])
        if modes[p] == 7:
            roots.append(leaf_index[p])
            root_leaf.append(True)
        else:
            roots.append(inner_index[p])
            root_leaf.append(False)
    forest = _Forest([nodes_featureids[p] for p in inner], [values[p] for p in inner],
                     [modes[p] for p in inner], tn, fn, tl, fl,
                     [tracks[p] for p in inner], roots, root_leaf)
    return forest, leaf_key, len(leaf_pos)


@kernel("TreeEnsembleRegressor", since=1, domain=ML)
def tree_ensemble_regressor(
        X: np.ndarray, *, aggregate_function: str = "SUM",
        base_values: Sequence[float] | None = None, base_values_as_tensor: Any = None,
        n_targets: int | None = None, nodes_falsenodeids: Sequence[int] | None = None,
        nodes_featureids: Sequence[int] | None = None,
        nodes_hitrates: Sequence[float] | None = None, nodes_hitrates_as_tensor: Any = None,
        nodes_missing_value_tracks_true: Sequence[int] | None = None,
        nodes_modes: Sequence[str] | None = None, nodes_nodeids: Sequence[int] | None = None,
        nodes_treeids: Sequence[int] | None = None,
        nodes_truenodeids: Sequence[int] | None = None,
        nodes_values: Sequence[float] | None = None, nodes_values_as_tensor: Any = None,
        post_transform: str = "NONE", target_ids: Sequence[int] | None = None,
        target_nodeids: Sequence[int] | None = None,
        target_treeids: Sequence[int] | None = None,
        target_weights: Sequence[float] | None = None,
        target_weights_as_tensor: Any = None) -> np.ndarray:
    """ONNX ML TreeEnsembleRegressor-1/3/5: legacy tree ensemble, float32 [N, n_targets]."""
    op = "TreeEnsembleRegressor"
    x = _as_2d(np.asarray(X), op).astype(np.float64)
    forest, leaf_key, n_leaves = _legacy_forest(
        op, nodes_treeids, nodes_nodeids, nodes_featureids, nodes_modes,
        _tensor_values(nodes_values_as_tensor, nodes_values), nodes_truenodeids,
        nodes_falsenodeids, nodes_missing_value_tracks_true)
    weights = _tensor_values(target_weights_as_tensor, target_weights)
    if weights is None or target_ids is None or target_nodeids is None or target_treeids is None:
        raise ValueError(f"{op}: target_ids, target_nodeids, target_treeids and target_weights "
                         "are required")
    votes = []
    for t, nd in zip(target_treeids, target_nodeids):
        j = leaf_key.get((int(t), int(nd)))
        if j is None:
            raise ValueError(f"{op}: a target refers to node {nd} of tree {t}, which is not a "
                             "LEAF node")
        votes.append(j)
    targets = np.asarray(target_ids, dtype=np.int64)
    k = int(n_targets) if n_targets is not None else int(targets.max(initial=-1)) + 1
    if targets.size and (targets.min() < 0 or targets.max() >= k):
        raise ValueError(f"{op}: target_ids must lie in [0, n_targets={k})")
    agg = _text(aggregate_function).upper()
    scores = _aggregate(forest, x, targets, weights, np.asarray(votes, dtype=np.int64),
                        n_leaves, k, agg)
    base = _tensor_values(base_values_as_tensor, base_values)
    if base is not None and base.size:
        if base.size != k:
            raise ValueError(f"{op}: {base.size} base_values for {k} targets")
        scores = scores + base
    return _post_transform(scores, post_transform).astype(np.float32)
