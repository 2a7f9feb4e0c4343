"""One versioned text normaliser, applied the same way to entity names and to Wikipedia text.

The normalised form of a string is, in order:

1. Turkish/Azeri dotted and dotless i: ``İ`` -> ``i`` everywhere, ``I`` -> ``ı`` in tr/az (so
   that "İstanbul" and "ISPARTA" fold as Turkish readers expect);
2. NFKC: full-width forms, ligatures, presentation forms, NBSP -> space;
3. removal of soft hyphens, zero-width spaces and (non-)joiners (ZWNJ included, on both sides),
   BOM, Arabic tatweel and harakat, Hebrew points and cantillation marks;
4. every run of characters that are neither letters, digits, ``_`` nor combining marks
   (spaces, punctuation, typographic or straight apostrophes, ...) becomes one space, and the
   ends are stripped;
5. ``str.casefold`` (``ß`` -> ``ss``, final sigma -> ``σ``);
6. for zh, Traditional -> Simplified character by character (zhconv's ``zh2Hans``
   one-character table), so that both scripts meet and offsets stay put.

Steps 1-4 run vectorised in ``pyarrow.compute`` (utf8proc and RE2), 5-6 on one joined Python
string; ``normalize_py`` is the same function in plain Python, used to map offsets back
(``source_spans``) and checked against the vectorised path in the tests. Anything that changes
results bumps ``NORMALIZER``, which every output records.
"""

from __future__ import annotations

import bisect
import functools
import re
import sys
import unicodedata
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

NORMALIZER = "nfkc_casefold_v1"

DOTLESS_LANGS = frozenset({"tr", "az", "crh", "gag", "tt"})
_DROP = [(0x00AD, 0x00AD), (0x180E, 0x180E), (0x200B, 0x200D), (0x2060, 0x2060),
         (0xFEFF, 0xFEFF), (0x0640, 0x0640), (0x0610, 0x061A), (0x064B, 0x065F), (0x0670, 0x0670),
         (0x06D6, 0x06DC), (0x06DF, 0x06E4), (0x06E7, 0x06E8), (0x06EA, 0x06ED), (0x0591, 0x05BD),
         (0x05BF, 0x05BF), (0x05C1, 0x05C2), (0x05C4, 0x05C5), (0x05C7, 0x05C7)]
_DROP_RE2 = "[" + "".join(f"\\x{{{a:04X}}}-\\x{{{b:04X}}}" for a, b in _DROP) + "]"
_DROP_PY = re.compile("[" + "".join(f"{chr(a)}-{chr(b)}" for a, b in _DROP) + "]")
# ASCII separators in RE2 (a small class: compiling \p{L} classes on every call costs more
# than the matching); runs that are not a lone space, which stays as it is
_A = r"a-zA-Z0-9_\x{80}-\x{10FFFF}"
_SEP_ASCII_RE2 = f"[^{_A} ][^{_A}]*| [^{_A}]+"
_ASCII_LEAD = re.compile(r"[^a-zA-Z0-9_\n]+")
_ASCII_RUNS = re.compile(r"[^a-zA-Z0-9_\n]{2,}")


@functools.lru_cache(maxsize=1)
def _zh_table() -> dict[int, int]:
    from zhconv import zhconv as _zc  # the package's own module holds the dictionaries

    _zc.loaddict()
    table = _zc.zhcdicts["zh2Hans"]
    return {ord(k): ord(v) for k, v in table.items() if len(k) == 1 and len(v) == 1 and k != v}


@functools.lru_cache(maxsize=1)
def _marks() -> str:
    """Every combining mark (Unicode category M*) as a regex class body."""
    ranges, start = [], None
    for i in range(sys.maxunicode + 2):
        is_mark = i <= sys.maxunicode and unicodedata.category(chr(i))[0] == "M"
        if is_mark and start is None:
            start = i
        elif not is_mark and start is not None:
            ranges.append(f"{re.escape(chr(start))}-{re.escape(chr(i - 1))}")
            start = None
    return "".join(ranges)


@functools.lru_cache(maxsize=1)
def separator_re() -> re.Pattern:
    """Runs of separators: not a letter, digit, ``_`` or combining mark (nor \\n)."""
    return re.compile(f"[^\\w{_marks()}\\n]+")


@functools.lru_cache(maxsize=1)
def _nonascii_sep_re() -> re.Pattern:
    """A non-ASCII separator and the separators after it."""
    m = _marks()
    return re.compile(f"[^\\x00-\\x7f\\w{m}][^\\w{m}\\n]*")


@functools.lru_cache(maxsize=1)
def _shift_re() -> re.Pattern:
    """Separator runs that change offsets: a leading run, or a run of two or more."""
    sep = f"[^\\w{_marks()}\\n]"
    return re.compile(f"^{sep}+|{sep}{{2,}}")


def _is_zh(lang: str) -> bool:
    return lang == "zh" or lang.startswith("zh-")


def _fold_arrow(arr: pa.Array, lang: str) -> pa.Array:
    """Steps 1-3 and the ASCII part of step 4 on an Arrow string array."""
    if lang in DOTLESS_LANGS:
        arr = pc.replace_substring(pc.replace_substring(arr, "\u0130", "i"), "I", "\u0131")
    else:
        arr = pc.replace_substring(arr, "\u0130", "i")
    arr = pc.utf8_normalize(arr, "NFKC")
    arr = pc.replace_substring_regex(arr, _DROP_RE2, "")
    arr = pc.replace_substring(arr, "\n", " ")
    arr = pc.replace_substring_regex(arr, _SEP_ASCII_RE2, " ")
    return pc.utf8_trim(arr, " ")


def _fold_str(s: str, lang: str) -> str:
    """Step 5 (casefold) and 6 (zh script) on a Python string."""
    s = s.casefold()
    return s.translate(_zh_table()) if _is_zh(lang) else s


def normalize_batch(texts: Sequence[str] | pa.Array, lang: str = "") -> str:
    """Normalise many texts into one string: ``" " + " \\n ".join(normalized texts) + " "``.

    Text i lies between the i-th and (i+1)-th newline, after one space and before one space
    (an empty text may leave a single space), so padded keys (``" paris "``) never match
    across two texts.
    """
    arr = texts if isinstance(texts, (pa.Array, pa.ChunkedArray)) else pa.array(texts, pa.string())
    arr = pc.fill_null(_fold_arrow(arr, lang), "")
    joined = " " + " \n ".join(arr.to_pylist()) + " "
    if not joined.isascii():
        # the rest of step 4: a run holding a non-ASCII separator becomes one space, or
        # nothing when a space (an ASCII run, already collapsed) precedes it
        joined = _nonascii_sep_re().sub(lambda m: "" if joined[m.start() - 1] == " " else " ",
                                        joined)
    return _fold_str(joined, lang)


def normalize_many(texts: Sequence[str] | pa.Array, lang: str = "") -> list[str]:
    """The normalised form of each text (names or sentences)."""
    if len(texts) == 0:
        return []
    return [p.strip(" ") for p in normalize_batch(texts, lang).split("\n")]


def normalize(s: str, lang: str = "") -> str:
    """The normalised form of one string (see the module docstring)."""
    return normalize_many([s], lang)[0]


def fold_py(s: str, lang: str = "") -> str:
    """Steps 1-3 and 5-6 in plain Python (no separator collapsing)."""
    if lang in DOTLESS_LANGS:
        s = s.replace("\u0130", "i").replace("I", "\u0131")
    else:
        s = s.replace("\u0130", "i")
    if not s.isascii():
        s = _DROP_PY.sub("", unicodedata.normalize("NFKC", s))
    return _fold_str(s, lang)


def normalize_py(s: str, lang: str = "") -> str:
    """``normalize`` in plain Python (reference implementation)."""
    return separator_re().sub(" ", fold_py(s.replace("\n", " "), lang)).strip(" ")


def _clusters(s: str) -> list[tuple[int, int]]:
    """(start, end) of each base character with the combining marks that follow it."""
    out: list[tuple[int, int]] = []
    for i, ch in enumerate(s):
        if out and unicodedata.combining(ch):
            out[-1] = (out[-1][0], i + 1)
        else:
            out.append((i, i + 1))
    return out


def _fold_map(s: str, lang: str) -> tuple[str, list[int] | None, list[int] | None]:
    """Fold ``s``; for each folded char its source span (None: the identity)."""
    if s.isascii() and lang not in DOTLESS_LANGS:
        return s, None, None  # ASCII folding keeps every offset and every separator
    folded = fold_py(s, lang)
    if len(folded) == len(s) and not _DROP_PY.search(s):
        return folded, None, None
    parts, starts, ends = [], [], []
    for a, b in _clusters(s):
        f = fold_py(s[a:b], lang)
        parts.append(f)
        starts += [a] * len(f)
        ends += [b] * len(f)
    return "".join(parts), starts, ends


_ASCII_BATCH = re.compile(r"\x00[^a-zA-Z0-9_\x00]+|[^a-zA-Z0-9_\x00]{2,}")


def ascii_shifts(texts: list[str]) -> list[tuple[list[int], list[int]]]:
    """For ASCII texts, the breakpoints of ``_ascii_spans`` found in one regex pass over all.

    Returns per text (normalised positions, shifts): normalised index j sits at original
    index j + shift of the last breakpoint <= j.
    """
    joined = "\x00" + "\x00".join(texts).replace("\n", " ")
    bounds, pos = [], 1
    for t in texts:
        bounds.append(pos)
        pos += len(t) + 1
    out: list[tuple[list[int], list[int]]] = [([0], [0]) for _ in texts]
    for m in _ASCII_BATCH.finditer(joined):
        a, b = m.span()
        if joined[a] == "\x00":  # the leading separators of the text that starts at a + 1
            j = bisect.bisect_right(bounds, a + 1) - 1
            out[j][1][0] = b - bounds[j]
            continue
        j = bisect.bisect_right(bounds, a) - 1
        bp_norm, bp_shift = out[j]
        shift = bp_shift[-1] + b - a - 1
        bp_norm.append(b - bounds[j] - shift)
        bp_shift.append(shift)
    return out


def shifted_spans(bp: tuple[list[int], list[int]], spans: list[tuple[int, int]]
                  ) -> list[tuple[int, int]]:
    """Apply ``ascii_shifts`` breakpoints to (start, end) spans of the normalised text."""
    bp_norm, bp_shift = bp
    if len(bp_norm) == 1:
        d = bp_shift[0]
        return [(a + d, b + d) for a, b in spans]
    return [(a + bp_shift[bisect.bisect_right(bp_norm, a) - 1],
             b + bp_shift[bisect.bisect_right(bp_norm, b - 1) - 1]) for a, b in spans]


def _ascii_spans(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``source_spans`` for ASCII text: folding keeps offsets, only separator runs shift."""
    if "\n" in text:
        text = text.replace("\n", " ")
    lead = _ASCII_LEAD.match(text)
    bp_norm, bp_shift = [0], [lead.end() if lead else 0]
    for m in _ASCII_RUNS.finditer(text, bp_shift[0]):
        a, b = m.span()
        shift = bp_shift[-1] + b - a - 1
        bp_norm.append(b - shift)
        bp_shift.append(shift)
    if len(bp_norm) == 1:
        d = bp_shift[0]
        return [(a + d, b + d) for a, b in spans]
    out = []
    for a, b in spans:
        sa = bp_shift[bisect.bisect_right(bp_norm, a) - 1]
        sb = bp_shift[bisect.bisect_right(bp_norm, b - 1) - 1]
        out.append((a + sa, b + sb))
    return out


def source_spans(text: str, lang: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Map (start, end) spans of ``normalize(text, lang)`` to spans of ``text``."""
    if text.isascii() and lang not in DOTLESS_LANGS:
        return _ascii_spans(text, spans)
    folded, starts, ends = _fold_map(text.replace("\n", " "), lang)
    # normalised index j sits at folded index j + shift, with shift growing after the stripped
    # head and after each run of two or more separators (a run of one keeps its length)
    bp_norm, bp_shift = [0], [0]
    for m in _shift_re().finditer(folded):
        a, b = m.span()
        if a == 0:
            bp_shift[0] = b
        else:
            shift = bp_shift[-1] + b - a - 1
            bp_norm.append(b - shift)
            bp_shift.append(shift)
    n = len(folded)
    out = []
    for a, b in spans:
        if n == 0:
            out.append((0, 0))
            continue
        fa = min(a + bp_shift[bisect.bisect_right(bp_norm, a) - 1], n - 1)
        last = max(b - 1, a)
        fb = min(last + bp_shift[bisect.bisect_right(bp_norm, last) - 1], n - 1)
        out.append((fa, fb + 1) if starts is None else (starts[fa], ends[fb]))
    return out
