"""String kernels: StringNormalizer, StringConcat, StringSplit, RegexFullMatch, TfIdfVectorizer.

String tensors are numpy object arrays of Python ``str``. Per-string work (splitting, regex
matching, case changes) has no numpy vector form, so it runs once per element; everything
around it (shapes, padding, counting) is vectorized.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from ...ops import kernel

__all__ = [
    "regex_full_match",
    "string_concat",
    "string_normalizer",
    "string_split",
    "tfidf_vectorizer",
]


def _strings(x, op: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind == "U":
        return arr.astype(object)
    if arr.dtype != object:
        raise ValueError(f"{op} expects a string tensor, got {arr.dtype}")
    return arr


def _text(s) -> str:
    return s.decode("utf-8") if isinstance(s, bytes) else str(s)


def _map_strings(fn, arr: np.ndarray, out_dtype=object) -> np.ndarray:
    flat = [fn(_text(s)) for s in arr.reshape(-1)]
    out = np.empty(len(flat), dtype=out_dtype)
    out[:] = flat
    return out.reshape(arr.shape)


# -- StringNormalizer ------------------------------------------------------------------------

# ONNX Runtime changes case one character at a time (std::towlower/towupper under the given
# locale), so "ß" stays "ß" in upper case and a final sigma is not special; Python's
# str.upper/str.lower follow the full Unicode rules. Map per character, keeping characters
# whose case mapping is not a single character. ``locale`` is not interpreted beyond that.

def _lower(word: str) -> str:
    if word.isascii():
        return word.lower()
    return "".join(low if len(low := c.lower()) == 1 else c for c in word)


def _upper(word: str) -> str:
    if word.isascii():
        return word.upper()
    return "".join(up if len(up := c.upper()) == 1 else c for c in word)


@kernel("StringNormalizer", since=10)
def string_normalizer(X, *, case_change_action: str = "NONE", is_case_sensitive: int = 0,
                      locale: str | None = None, stopwords: list[str] | None = None):
    """ONNX StringNormalizer-10: drop stop words from a [C] or [1, C] tensor, then change case."""
    x = _strings(X, "StringNormalizer")
    if x.ndim == 1:
        row = x
    elif x.ndim == 2 and x.shape[0] == 1:
        row = x[0]
    else:
        raise ValueError(f"StringNormalizer accepts [C] or [1, C] tensors, got shape "
                         f"{list(x.shape)}")
    action = _text(case_change_action).upper()
    if action not in ("NONE", "LOWER", "UPPER"):
        raise ValueError(f"StringNormalizer: case_change_action must be NONE, LOWER or UPPER, "
                         f"got {case_change_action!r}")
    words = [_text(s) for s in row]
    if stopwords:
        if is_case_sensitive:
            stop = {_text(s) for s in stopwords}
            words = [w for w in words if w not in stop]
        else:
            stop = {_lower(_text(s)) for s in stopwords}
            words = [w for w in words if _lower(w) not in stop]
    if action == "LOWER":
        words = [_lower(w) for w in words]
    elif action == "UPPER":
        words = [_upper(w) for w in words]
    if not words:
        # The spec's shape for "everything removed": one empty string.
        words = [""]
    out = np.empty(len(words), dtype=object)
    out[:] = words
    return out if x.ndim == 1 else out.reshape(1, -1)


# -- StringConcat ----------------------------------------------------------------------------

@kernel("StringConcat", since=20)
def string_concat(X, Y):
    """ONNX StringConcat-20: elementwise X + Y with numpy broadcasting."""
    x, y = _strings(X, "StringConcat"), _strings(Y, "StringConcat")
    out = np.add(x, y)
    return np.asarray(out, dtype=object)


# -- StringSplit -----------------------------------------------------------------------------

@kernel("StringSplit", since=20)
def string_split(X, *, delimiter: str | None = None, maxsplit: int | None = None):
    """ONNX StringSplit-20: split each string; substrings padded with "" plus their counts."""
    x = _strings(X, "StringSplit")
    sep = _text(delimiter) if delimiter is not None else None
    if sep == "":
        sep = None  # the spec: an empty delimiter means "split on runs of whitespace"
    limit = -1 if maxsplit is None else int(maxsplit)
    if maxsplit is not None and limit < 0:
        raise ValueError(f"StringSplit: maxsplit must be non-negative, got {maxsplit}")
    if sep is None:
        # Whitespace mode drops leading and trailing whitespace, also around the unsplit tail
        # that maxsplit leaves (ONNX Runtime does the same).
        parts = [_text(s).strip().split(None, limit) for s in x.reshape(-1)]
    else:
        # An empty string has no substrings (ONNX Runtime: count 0), where str.split gives [""].
        parts = [_text(s).split(sep, limit) if _text(s) else [] for s in x.reshape(-1)]
    counts = np.array([len(p) for p in parts], dtype=np.int64)
    width = int(counts.max()) if counts.size else 0
    y = np.full((len(parts), width), "", dtype=object)
    for i, p in enumerate(parts):
        y[i, :len(p)] = p
    return y.reshape(*x.shape, width), counts.reshape(x.shape)


# -- RegexFullMatch --------------------------------------------------------------------------

# RE2 character classes, written out for use inside [...]: RE2's \d \w \s are ASCII-only
# where Python's re (on str) is Unicode-aware, and Python has no [[:alpha:]] classes.
_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7f", "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f", "digit": "0-9", "graph": "!-~", "lower": "a-z",
    "print": " -~", "punct": "!-/:-@\\[-`{-~", "space": "\\t\\n\\v\\f\\r ", "upper": "A-Z",
    "word": "0-9A-Za-z_", "xdigit": "0-9A-Fa-f",
}
_PERL_CLASSES = {"d": "0-9", "w": "0-9A-Za-z_", "s": "\\t\\n\\f\\r "}
_WORD = "[0-9A-Za-z_]"
_BOUNDARY = f"(?:(?<!{_WORD})(?={_WORD})|(?<={_WORD})(?!{_WORD}))"
_NOT_BOUNDARY = f"(?:(?<!{_WORD})(?!{_WORD})|(?<={_WORD})(?={_WORD}))"
_POSIX_RE = re.compile(r"\[:(\^?)([a-z]+):\]")
_HEX_RE = re.compile(r"\\x\{([0-9A-Fa-f]+)\}")
_MULTILINE_RE = re.compile(r"\(\?[a-zA-Z]*m")


def _unsupported(what: str) -> ValueError:
    return ValueError(f"RegexFullMatch: {what} is RE2 syntax this runtime's regex engine "
                      "(Python re) cannot express; rewrite the pattern without it")


def _re2_to_python(pattern: str) -> str:
    """Rewrite an RE2 pattern so Python's ``re`` gives RE2's answers.

    Handles: ASCII-only ``\\d \\w \\s \\b`` (and negations), ``$`` meaning end of text
    outside multi-line mode, ``\\z``, ``\\Q...\\E`` literals, ``\\x{hex}``, ``[[:alpha:]]``
    POSIX classes. Unicode classes (``\\p{...}``), ``\\C`` and the ``U`` flag raise ValueError.
    Python-only features (lookaround, backreferences) are not rejected.
    """
    multiline = bool(_MULTILINE_RE.search(pattern))
    out: list[str] = []
    in_class = False
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            hexm = _HEX_RE.match(pattern, i)
            if hexm:
                out.append(f"\\U{int(hexm.group(1), 16):08x}")
                i = hexm.end()
                continue
            if nxt in "pP":
                raise _unsupported("a Unicode class (\\p / \\P)")
            if nxt == "C":
                raise _unsupported("\\C (any byte)")
            if nxt.lower() in _PERL_CLASSES:
                chars = _PERL_CLASSES[nxt.lower()]
                if in_class:
                    if nxt.isupper():
                        raise _unsupported(f"\\{nxt} inside a character class")
                    out.append(chars)
                else:
                    out.append(f"[{'^' if nxt.isupper() else ''}{chars}]")
                i += 2
                continue
            if not in_class:
                if nxt == "z":
                    out.append(r"\Z")
                    i += 2
                    continue
                if nxt in "bB":
                    out.append(_BOUNDARY if nxt == "b" else _NOT_BOUNDARY)
                    i += 2
                    continue
                if nxt == "Q":
                    stop = pattern.find(r"\E", i + 2)
                    out.append(re.escape(pattern[i + 2:] if stop < 0 else pattern[i + 2:stop]))
                    i = n if stop < 0 else stop + 2
                    continue
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            posix = _POSIX_RE.match(pattern, i)
            if posix:
                negate, name = posix.groups()
                if name not in _POSIX_CLASSES or negate:
                    raise _unsupported(f"the POSIX class [:{negate}{name}:]")
                out.append(_POSIX_CLASSES[name])
                i = posix.end()
                continue
            if ch == "]":
                in_class = False
            out.append(ch)
            i += 1
            continue
        if ch == "[":
            in_class = True
            out.append(ch)
            i += 1
            # A leading "^" negates; a "]" right after "[" or "[^" is a literal.
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":
                out.append(r"\]")
                i += 1
            continue
        if ch == "$" and not multiline:
            out.append(r"\Z")  # RE2's $ never matches before a trailing newline
            i += 1
            continue
        if ch == "(" and pattern.startswith("(?", i):
            flags = re.match(r"\(\?([a-zA-Z]*)", pattern[i:]).group(1)
            if "U" in flags:
                raise _unsupported("the U (ungreedy) flag")
        out.append(ch)
        i += 1
    return "".join(out)


@lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern:
    try:
        return re.compile(_re2_to_python(pattern))
    except re.error as exc:
        raise ValueError(f"RegexFullMatch: invalid pattern {pattern!r}: {exc}") from None


@kernel("RegexFullMatch", since=20)
def regex_full_match(X, *, pattern: str | None = None):
    """ONNX RegexFullMatch-20: whether each string fully matches the RE2 ``pattern``."""
    if pattern is None:
        raise ValueError("RegexFullMatch requires the pattern attribute")
    regex = _compile(_text(pattern))
    x = _strings(X, "RegexFullMatch")
    return _map_strings(lambda s: regex.fullmatch(s) is not None, x, out_dtype=np.bool_)


# -- TfIdfVectorizer -------------------------------------------------------------------------

def _token_ids(x: np.ndarray, vocab: list) -> np.ndarray:
    """Each token's index in ``vocab`` (-1 when absent), same shape as ``x``."""
    if x.dtype == object:
        lookup = {v: i for i, v in enumerate(vocab)}
        if not x.size:
            return np.zeros(x.shape, dtype=np.int64)
        # One dict lookup per distinct token, not per element.
        uniq, inverse = np.unique(np.array([_text(s) for s in x.reshape(-1)], dtype=object),
                                  return_inverse=True)
        ids = np.array([lookup.get(u, -1) for u in uniq], dtype=np.int64)
        return ids[inverse].reshape(x.shape)
    keys = np.asarray(vocab, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    pos = np.searchsorted(sorted_keys, x.astype(np.int64))
    pos_c = np.minimum(pos, max(len(sorted_keys) - 1, 0))
    found = (pos < len(sorted_keys)) & (sorted_keys[pos_c] == x) if len(sorted_keys) else \
        np.zeros(x.shape, dtype=bool)
    return np.where(found, order[pos_c] if len(sorted_keys) else 0, -1).astype(np.int64)


@kernel("TfIdfVectorizer", since=9)
def tfidf_vectorizer(X, *, max_gram_length: int | None = None,
                     min_gram_length: int | None = None, max_skip_count: int | None = None,
                     mode: str | None = None, ngram_counts: list[int] | None = None,
                     ngram_indexes: list[int] | None = None, pool_int64s: list[int] | None = None,
                     pool_strings: list[str] | None = None, weights: list[float] | None = None):
    """ONNX TfIdfVectorizer-9: counts of pooled n-grams (with skips) per row, TF/IDF/TFIDF."""
    for name, value in (("max_gram_length", max_gram_length),
                        ("min_gram_length", min_gram_length),
                        ("max_skip_count", max_skip_count), ("mode", mode),
                        ("ngram_counts", ngram_counts), ("ngram_indexes", ngram_indexes)):
        if value is None:
            raise ValueError(f"TfIdfVectorizer requires the {name} attribute")
    if (pool_int64s is None) == (pool_strings is None):
        raise ValueError("TfIdfVectorizer needs exactly one of pool_int64s and pool_strings")
    mode = _text(mode).upper()
    if mode not in ("TF", "IDF", "TFIDF"):
        raise ValueError(f"TfIdfVectorizer: mode must be TF, IDF or TFIDF, got {mode!r}")
    lo, hi, skips = int(min_gram_length), int(max_gram_length), int(max_skip_count)
    if not 1 <= lo <= hi or skips < 0:
        raise ValueError(f"TfIdfVectorizer: need 1 <= min_gram_length ({lo}) <= "
                         f"max_gram_length ({hi}) and max_skip_count ({skips}) >= 0")

    x = np.asarray(X)
    if pool_strings is not None:
        if x.dtype != object and x.dtype.kind != "U":
            raise ValueError(f"TfIdfVectorizer: pool_strings needs a string input, got {x.dtype}")
        pool = [_text(s) for s in pool_strings]
        x = x.astype(object)
    else:
        if x.dtype.kind not in "iu":
            raise ValueError(f"TfIdfVectorizer: pool_int64s needs an integer input, got {x.dtype}")
        pool = [int(v) for v in pool_int64s]
    if x.ndim == 0:
        x = x.reshape(1)  # a single token, as onnx.reference reads it
    if x.ndim not in (1, 2):
        raise ValueError(f"TfIdfVectorizer accepts [C] or [N, C] inputs, got shape "
                         f"{list(x.shape)}")
    rows = x.reshape(1, -1) if x.ndim == 1 else x
    out_index = np.asarray(ngram_indexes, dtype=np.int64)
    width = int(out_index.max()) + 1 if out_index.size else 0

    # The pool as n-grams of vocabulary ids: vocab[i] is a distinct token; the k-th n-gram of
    # the pool (over all lengths, in order) maps to output column ngram_indexes[k].
    vocab = list(dict.fromkeys(pool))
    vocab_id = {v: i for i, v in enumerate(vocab)}
    base = len(vocab) + 1
    starts = [int(c) for c in ngram_counts] + [len(pool)]
    table: dict[int, dict[tuple, int]] = {}
    ordinal = 0
    for n in range(1, len(starts)):
        chunk = pool[starts[n - 1]:starts[n]]
        if len(chunk) % n:
            raise ValueError(f"TfIdfVectorizer: the pool's {n}-gram section has {len(chunk)} "
                             f"items, not a multiple of {n}")
        grams = table.setdefault(n, {})
        for j in range(0, len(chunk), n):
            if ordinal >= len(out_index):
                raise ValueError("TfIdfVectorizer: ngram_indexes is shorter than the pool")
            grams[tuple(vocab_id[t] for t in chunk[j:j + n])] = int(out_index[ordinal])
            ordinal += 1

    ids = _token_ids(rows, vocab)
    counts = np.zeros((rows.shape[0], width), dtype=np.float32)
    cols = rows.shape[1]
    for n in range(lo, hi + 1):
        grams = table.get(n)
        if not grams:
            continue
        # Encode each pooled n-gram as one integer (ids in base len(vocab)+1) so matching is a
        # vectorized searchsorted; python ints keep it exact however long the n-gram is.
        keys = np.array([sum(t * base ** k for k, t in enumerate(g)) for g in grams],
                        dtype=object if base ** n >= 2 ** 62 else np.int64)
        targets = np.fromiter(grams.values(), dtype=np.int64, count=len(grams))
        order = np.argsort(keys)
        keys, targets = keys[order], targets[order]
        # Unigrams have no gaps to vary, so they are counted once, not once per skip.
        for skip in range(1 if n == 1 else skips + 1):
            step = skip + 1
            span = (n - 1) * step
            if cols - span <= 0:
                break
            starts_at = np.arange(cols - span)
            cols_idx = starts_at[:, None] + step * np.arange(n)[None, :]  # [P, n]
            gram_ids = ids[:, cols_idx]  # [N, P, n]
            valid = (gram_ids >= 0).all(axis=-1)
            code = np.zeros(gram_ids.shape[:2], dtype=keys.dtype)
            for k in range(n):
                code = code + gram_ids[..., k].astype(keys.dtype) * base ** k
            pos = np.searchsorted(keys, code)
            pos_c = np.minimum(pos, len(keys) - 1)
            hit = valid & (keys[pos_c] == code)
            row_idx = np.nonzero(hit)[0]
            np.add.at(counts, (row_idx, targets[pos_c[hit]]), 1.0)
    if mode == "IDF":
        counts = np.minimum(counts, 1.0)
    if mode != "TF" and weights is not None and len(weights):
        # weights[k] belongs to the k-th pooled n-gram, i.e. to column ngram_indexes[k].
        if len(weights) != len(out_index):
            raise ValueError(f"TfIdfVectorizer: weights has {len(weights)} entries but there "
                             f"are {len(out_index)} pooled n-grams (ngram_indexes)")
        column_weight = np.zeros(width, dtype=np.float32)
        column_weight[out_index] = np.asarray(weights, dtype=np.float32)
        counts = counts * column_weight
    return counts.reshape(-1) if x.ndim == 1 else counts
