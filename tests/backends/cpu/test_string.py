"""String kernels vs onnx.reference and ONNX Runtime (RE2 semantics come from ORT)."""

from __future__ import annotations

import numpy as np
import pytest

from pyflame_rt.backends.cpu.string import (
    regex_full_match,
    string_concat,
    string_normalizer,
    string_split,
    tfidf_vectorizer,
)
from tests.oracle import assert_close, onnxruntime, reference


def _s(*values, shape=None) -> np.ndarray:
    arr = np.array(list(values), dtype=object)
    return arr.reshape(shape) if shape is not None else arr


def _compare(fn, op_type, inputs, attrs, *, noutputs=1, opset=20, oracles=("reference",)):
    got = fn(*inputs, **attrs)
    got = list(got) if isinstance(got, tuple) else [got]
    for oracle in oracles:
        run = reference if oracle == "reference" else onnxruntime
        expected = run(op_type, inputs, attrs, noutputs=noutputs, opset=opset)
        for g, e in zip(got, expected):
            e = np.asarray(e)
            if e.dtype.kind == "U":  # some oracles hand strings back as numpy unicode
                e = e.astype(object)
            assert_close(g, e)


# -- StringNormalizer ------------------------------------------------------------------------

WEEK = ("Monday", "tuesday", "wednesday", "MONDAY", "thursday", "monday")


# ONNX Runtime's StringNormalizer needs the named locale installed; "C.UTF-8" always is (the
# default en_US.UTF-8 often is not). Our kernel ignores ``locale``.
ORT_LOCALE = {"locale": "C.UTF-8"}


@pytest.mark.parametrize("action", ["NONE", "LOWER", "UPPER"])
@pytest.mark.parametrize("case_sensitive", [0, 1])
@pytest.mark.parametrize("stopwords", [None, ["monday"], ["Monday", "thursday"]])
@pytest.mark.parametrize("two_dim", [False, True])
def test_string_normalizer(action, case_sensitive, stopwords, two_dim):
    x = _s(*WEEK, shape=(1, len(WEEK)) if two_dim else None)
    attrs = {"case_change_action": action, "is_case_sensitive": case_sensitive}
    if stopwords is not None:
        attrs["stopwords"] = stopwords
    _compare(string_normalizer, "StringNormalizer", [x], dict(attrs, **ORT_LOCALE), opset=10,
             oracles=("onnxruntime",))
    if case_sensitive or action != "NONE" or stopwords is None:
        # onnx.reference never drops stop words case-insensitively without a case change.
        _compare(string_normalizer, "StringNormalizer", [x], attrs, opset=10)


@pytest.mark.parametrize("two_dim", [False, True])
def test_string_normalizer_all_removed(two_dim):
    x = _s("monday", "Monday", shape=(1, 2) if two_dim else None)
    attrs = {"stopwords": ["MONDAY"], "case_change_action": "UPPER"}
    got = string_normalizer(x, **attrs)
    # The spec: [C] -> [1] and [1, C] -> [1, 1], holding one empty string.
    assert got.shape == ((1, 1) if two_dim else (1,)) and got.reshape(-1)[0] == ""
    _compare(string_normalizer, "StringNormalizer", [x], attrs, opset=10)
    _compare(string_normalizer, "StringNormalizer", [x], dict(attrs, **ORT_LOCALE), opset=10,
             oracles=("onnxruntime",))


@pytest.mark.parametrize("action", ["LOWER", "UPPER"])
@pytest.mark.parametrize("case_sensitive", [0, 1])
def test_string_normalizer_non_ascii(action, case_sensitive):
    # Case changes go character by character like ONNX Runtime ("ß" has no one-letter upper
    # case, a final sigma is not special), not by Python's full Unicode rules.
    x = _s("Ærø", "ÉCOLE", "straße", "ΟΔΟΣ", "école")
    attrs = {"case_change_action": action, "is_case_sensitive": case_sensitive,
             "stopwords": ["école"], **ORT_LOCALE}
    _compare(string_normalizer, "StringNormalizer", [x], attrs, opset=10,
             oracles=("onnxruntime",))


def test_string_normalizer_errors():
    with pytest.raises(ValueError, match=r"\[C\] or \[1, C\]"):
        string_normalizer(_s("a", "b", "c", "d", shape=(2, 2)))
    with pytest.raises(ValueError, match="case_change_action"):
        string_normalizer(_s("a"), case_change_action="TITLE")
    with pytest.raises(ValueError, match="string tensor"):
        string_normalizer(np.zeros(2, np.float32))


# -- StringConcat ----------------------------------------------------------------------------

@pytest.mark.parametrize("x,y", [
    (_s("abc", "def"), _s(".com", ".net")),
    (_s("cat", "dog", "snake"), _s("s")),
    (_s("a", "b", shape=(2, 1)), _s("x", "y", "z")),
    (np.array("cat", dtype=object), np.array("s", dtype=object)),
    (_s("", "的"), _s("中", "")),
    (np.empty((0, 2), dtype=object), _s("x", "y")),
])
def test_string_concat(x, y):
    _compare(string_concat, "StringConcat", [x, y], {}, oracles=("reference", "onnxruntime"))


def test_string_concat_returns_object_strings():
    got = string_concat(np.array("a", dtype=object), np.array("b", dtype=object))
    assert got.dtype == object and got.shape == () and got[()] == "ab"


# -- StringSplit -----------------------------------------------------------------------------

SPLIT_INPUTS = [
    _s("abc.com", "def.net", "a..b."),
    _s("hello world", "def.net", "o n n x", "the quick  brown fox", shape=(2, 2)),
    _s("  hello   world ! ", "single", " a  b  c  "),
    _s("o-n-n--x-", "o-n----nx"),
    _s("", "x", ""),
]


@pytest.mark.parametrize("x", SPLIT_INPUTS)
@pytest.mark.parametrize("delimiter", [None, "", ".", "-", " ", "--"])
@pytest.mark.parametrize("maxsplit", [None, 0, 1, 2])
def test_string_split(x, delimiter, maxsplit):
    attrs = {}
    if delimiter is not None:
        attrs["delimiter"] = delimiter
    if maxsplit is not None:
        attrs["maxsplit"] = maxsplit
    oracles = ["onnxruntime"]
    # onnx.reference keeps the whitespace after a maxsplit tail and counts "" as one substring;
    # ONNX Runtime follows the spec (whitespace trimmed) and counts 0, so it alone decides there.
    whitespace_tail = not delimiter and maxsplit is not None
    if not whitespace_tail and not (x == "").any():
        oracles.append("reference")
    _compare(string_split, "StringSplit", [x], attrs, noutputs=2, oracles=tuple(oracles))


def test_string_split_empty_tensor():
    y, z = string_split(np.empty((0,), dtype=object))
    assert y.shape == (0, 0) and y.dtype == object and z.shape == (0,) and z.dtype == np.int64
    _compare(string_split, "StringSplit", [np.empty((0,), dtype=object)], {}, noutputs=2)


def test_string_split_scalar():
    # onnx.reference cannot split a 0-d tensor.
    _compare(string_split, "StringSplit", [np.array("a b c", dtype=object)], {}, noutputs=2,
             oracles=("onnxruntime",))


# -- RegexFullMatch --------------------------------------------------------------------------

@pytest.mark.parametrize("pattern,x", [
    (r"www\.[\w.-]+\.\bcom\b", _s("www.google.com", "www.facebook.com", "www.bbc.co.uk")),
    (r"(\W|^)[\w.\-]{0,25}@(yahoo|gmail)\.com(\W|$)",
     _s("account@gmail.com", "account@hotmail.com", "not email", "account2@yahoo.com",
        shape=(2, 2))),
    (r"(\W|^)[\w.\-]{0,25}@(yahoo|gmail)\.com(\W|$)", np.empty((2, 0), dtype=object)),
    (r"[[:digit:]]+-[[:alpha:]_]*", _s("123-abc", "123-", "12a-b", "-x")),
    (r"[[:upper:][:space:]]+", _s("AB C", "Ab", " ")),
    (r"\Qa.b*\E.+", _s("a.b*c", "axb*c", "a.b*")),
    (r"abc\z", _s("abc", "abc\n")),
    (r"(?i)hello|wor.d", _s("HeLLo", "world", "worXd", "hello!")),
    (r"", _s("", "a")),
    (r"\d{2,3}", _s("1", "12", "123", "1234", "١٢")),
    (r"\w+\s\W", _s("né a!", "ab\t!", "ab\v!", "ab c")),
    (r"[^\d\s]+\b.*", _s("ab cd", "ab", "éa", "1a")),
    (r"[]a]+\x{41}", _s("]a]A", "aA", "]A")),
    (r"abc$\n?", _s("abc", "abc\n")),
    (r"(?m)abc$\n?", _s("abc", "abc\n")),
])
def test_regex_full_match(pattern, x):
    # ONNX Runtime runs real RE2, so it decides where RE2 and Python's re could differ.
    _compare(regex_full_match, "RegexFullMatch", [x], {"pattern": pattern},
             oracles=("onnxruntime",))


def test_regex_full_match_matches_reference_on_spec_cases():
    x = _s("www.google.com", "www.bbc.co.uk")
    _compare(regex_full_match, "RegexFullMatch", [x], {"pattern": r"www\.[\w.-]+\.\bcom\b"})


def test_regex_full_match_errors():
    with pytest.raises(ValueError, match="pattern attribute"):
        regex_full_match(_s("a"))
    with pytest.raises(ValueError, match="invalid pattern"):
        regex_full_match(_s("a"), pattern="(a")
    with pytest.raises(ValueError, match="cannot express"):
        regex_full_match(_s("a"), pattern=r"\p{Greek}")
    with pytest.raises(ValueError, match="cannot express"):
        regex_full_match(_s("a"), pattern=r"(?U)a+")


# -- TfIdfVectorizer -------------------------------------------------------------------------

INT_POOL = {"ngram_counts": [0, 4], "ngram_indexes": [0, 1, 2, 3, 4, 5, 6],
            "pool_int64s": [2, 3, 5, 4, 5, 6, 7, 8, 6, 7]}
INT_X = np.array([[1, 1, 3, 3, 3, 7], [8, 6, 7, 5, 6, 8]])


@pytest.mark.parametrize("mode", ["TF", "IDF", "TFIDF"])
@pytest.mark.parametrize("grams", [(1, 1), (1, 2), (2, 2)])
@pytest.mark.parametrize("skip", [0, 1, 5])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("batched", [False, True])
def test_tfidf_int_pool(mode, grams, skip, dtype, batched):
    x = (INT_X if batched else INT_X.reshape(-1)).astype(dtype)
    attrs = dict(INT_POOL, mode=mode, min_gram_length=grams[0], max_gram_length=grams[1],
                 max_skip_count=skip)
    # onnx.reference fails on IDF/TFIDF without weights; ONNX Runtime covers those.
    _compare(tfidf_vectorizer, "TfIdfVectorizer", [x], attrs, opset=9,
             oracles=("reference", "onnxruntime") if mode == "TF" else ("onnxruntime",))


@pytest.mark.parametrize("mode", ["TF", "IDF", "TFIDF"])
@pytest.mark.parametrize("skip", [0, 2])
@pytest.mark.parametrize("permuted", [False, True])
def test_tfidf_weights(mode, skip, permuted):
    indexes = [6, 0, 3, 1, 5, 2, 4] if permuted else list(range(7))
    attrs = dict(INT_POOL, mode=mode, min_gram_length=1, max_gram_length=2, max_skip_count=skip,
                 ngram_indexes=indexes, weights=[0.5, 1.0, 2.0, 0.25, 3.0, 1.5, 0.75])
    x = np.array([2, 3, 5, 6, 7, 8, 5, 6, 7, 6, 4, 5, 6], dtype=np.int64)
    # The spec (and ONNX Runtime) give weights[k] to the k-th pooled n-gram; onnx.reference
    # applies weights[k] to output column k instead, so it only judges unpermuted indexes.
    oracles = ("onnxruntime",) if permuted and mode != "TF" else ("reference", "onnxruntime")
    _compare(tfidf_vectorizer, "TfIdfVectorizer", [x], attrs, opset=9, oracles=oracles)


STR_POOL = {"ngram_counts": [0, 3, 7], "ngram_indexes": [5, 0, 4, 1, 3, 2],
            "pool_strings": ["the", "cat", "sat", "the", "cat", "cat", "sat", "the", "cat",
                             "sat"]}


@pytest.mark.parametrize("mode", ["TF", "IDF", "TFIDF"])
@pytest.mark.parametrize("grams", [(1, 3), (2, 3), (3, 3)])
@pytest.mark.parametrize("skip", [0, 1])
def test_tfidf_string_pool(mode, grams, skip):
    x = _s("the", "cat", "sat", "on", "the", "cat", "the", "dog", "cat", "sat", "the", "cat",
           shape=(2, 6))
    attrs = dict(STR_POOL, mode=mode, min_gram_length=grams[0], max_gram_length=grams[1],
                 max_skip_count=skip, weights=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    _compare(tfidf_vectorizer, "TfIdfVectorizer", [x], attrs, opset=9,
             oracles=("reference", "onnxruntime") if mode == "TF" else ("onnxruntime",))


def test_tfidf_bigrams_only_with_empty_unigram_level():
    attrs = {"mode": "TF", "min_gram_length": 2, "max_gram_length": 2, "max_skip_count": 0,
             "ngram_counts": [0, 0], "ngram_indexes": [0, 1, 2],
             "pool_int64s": [5, 6, 7, 8, 6, 7]}
    x = np.array([1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8], dtype=np.int32)
    _compare(tfidf_vectorizer, "TfIdfVectorizer", [x], attrs, opset=9,
             oracles=("reference", "onnxruntime"))


def test_tfidf_empty_input():
    attrs = dict(STR_POOL, mode="TF", min_gram_length=1, max_gram_length=3, max_skip_count=0)
    got = tfidf_vectorizer(np.empty((0,), dtype=object), **attrs)
    assert got.dtype == np.float32 and got.tolist() == [0.0] * 6


def test_tfidf_tokens_outside_pool_and_short_rows():
    attrs = dict(INT_POOL, mode="TF", min_gram_length=1, max_gram_length=2, max_skip_count=3)
    x = np.array([[100, 2], [3, -5]], dtype=np.int64)
    got = tfidf_vectorizer(x, **attrs)
    assert got.dtype == np.float32 and got.shape == (2, 7)
    _compare(tfidf_vectorizer, "TfIdfVectorizer", [x], attrs, opset=9,
             oracles=("reference", "onnxruntime"))


def test_tfidf_long_ngrams_over_a_large_vocabulary():
    # 101 ** 10 overflows int64, so n-gram codes fall back to exact Python integers.
    rng = np.random.default_rng(0)
    tail = [int(v) for v in rng.integers(0, 100, size=40)]
    attrs = {"mode": "TF", "min_gram_length": 1, "max_gram_length": 10, "max_skip_count": 1,
             "ngram_counts": [0] + [100] * 9, "ngram_indexes": list(range(104)),
             "pool_int64s": list(range(100)) + tail}
    x = np.array(tail * 2 + [5, 5, 7], dtype=np.int64)
    got = tfidf_vectorizer(x, **attrs)
    assert got[100:].tolist() == [2.0] * 4
    _compare(tfidf_vectorizer, "TfIdfVectorizer", [x], attrs, opset=9,
             oracles=("reference", "onnxruntime"))


def test_tfidf_errors():
    base = dict(INT_POOL, mode="TF", min_gram_length=1, max_gram_length=2, max_skip_count=0)
    x = np.array([1, 2], dtype=np.int64)
    with pytest.raises(ValueError, match="exactly one"):
        tfidf_vectorizer(x, **dict(base, pool_strings=["a"]))
    with pytest.raises(ValueError, match="mode"):
        tfidf_vectorizer(x, **dict(base, mode="BM25"))
    with pytest.raises(ValueError, match="string input"):
        tfidf_vectorizer(x, **dict(base, pool_int64s=None, pool_strings=["a"]))
    with pytest.raises(ValueError, match="max_gram_length"):
        tfidf_vectorizer(x, **{k: v for k, v in base.items() if k != "max_gram_length"})
    with pytest.raises(ValueError, match="weights"):
        tfidf_vectorizer(x, **dict(base, mode="TFIDF", weights=[1.0]))
