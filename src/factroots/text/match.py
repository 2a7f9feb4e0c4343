"""A pure name matcher: Aho–Corasick over normalised text, one automaton per name list.

Three modes, chosen per language and recorded on every hit as its ``strictness``:

- ``word`` (spaced scripts): text and names are normalised (``factroots.text.normalize``) and
  padded with spaces, so a hit is always a whole-word match: "Paris" is not in "Parisian".
- ``left`` (agglutinative languages: tr, fi, hu, ko, ...): names are padded on the left only, so
  "Londra" matches "Londra'da" and "Helsinki" matches "Helsinkiin"-like forms; a hit that also
  ends at a word boundary is recorded as ``word``, otherwise as ``prefix``.
- ``substring`` (zh, ja, th: no spaces between words): raw substrings of the normalised text,
  with a minimum name length; a name starting or ending in a spaced script (e.g. Latin) must
  still not continue a word of that script ("Google" is not in "Googleplex" inside Japanese).

The automaton is built lazily once per process from the name list (``cached_matcher``, keyed by
the list's hash) and never pickled: a Spark worker ships only the names.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import ahocorasick
import pyarrow as pa

from factroots.text.normalize import (
    DOTLESS_LANGS,
    NORMALIZER,
    ascii_shifts,
    normalize_batch,
    shifted_spans,
    source_spans,
)

MATCHER = "aho_v1"
MODES = ("word", "left", "substring")
_CACHE: OrderedDict[str, Matcher] = OrderedDict()
_CACHE_SIZE = 4  # automata kept per process (a worker may see several languages in turn)
_NEWLINE = re.compile("\n")


class Hit(NamedTuple):
    """One match: which text, which name, where in the original text, how strict."""

    text_idx: int
    name_idx: int
    start: int
    end: int
    strictness: str


def mode_for(lang: str, substring_langs: Iterable[str], left_boundary_langs: Iterable[str]) -> str:
    """The matching mode of a language."""
    base = lang.split("-")[0]
    if base in set(substring_langs):
        return "substring"
    return "left" if base in set(left_boundary_langs) else "word"


def names_key(lang: str, mode: str, names: list[str]) -> str:
    """A stable hash of a name list and how it is matched (the automaton cache key)."""
    h = hashlib.sha256(f"{NORMALIZER}|{MATCHER}|{lang}|{mode}\n".encode())
    for n in names:
        h.update(n.encode())
        h.update(b"\x00")
    return h.hexdigest()[:24]


def _unspaced(ch: str) -> bool:
    """True for characters of scripts written without spaces (CJK, kana, Thai, Lao, ...)."""
    o = ord(ch)
    return (0x2E80 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x3FFFF
            or 0x0E00 <= o <= 0x0EFF or 0x1000 <= o <= 0x109F or 0x1780 <= o <= 0x17FF
            or 0xFF66 <= o <= 0xFF9F)


def _spaced_word_char(ch: str) -> bool:
    return (ch.isalnum() or ch == "_") and not _unspaced(ch)


@dataclass
class Matcher:
    """An automaton over normalised names (``names`` must already be ``normalize``d)."""

    lang: str
    mode: str
    names: list[str]
    automaton: ahocorasick.Automaton = field(repr=False)
    key_len: list[int] = field(repr=False)

    @classmethod
    def build(cls, lang: str, mode: str, names: list[str]) -> Matcher:
        """Build the automaton; names must be distinct, normalised and non-empty."""
        if mode not in MODES:
            raise ValueError(f"unknown match mode {mode!r}; use one of {MODES}")
        auto = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        key_len = []
        for i, name in enumerate(names):
            key = {"word": f" {name} ", "left": f" {name}", "substring": name}[mode]
            auto.add_word(key, i)
            key_len.append(len(key))
        auto.make_automaton()
        return cls(lang, mode, names, auto, key_len)

    def find_normalized(self, texts: Sequence[str] | pa.Array) -> list[Hit]:
        """(text_idx, name_idx, start, end, strictness) tuples, in text order, with start/end
        in each text's normalised form (``normalize(text, lang)``)."""
        big = normalize_batch(texts, self.lang)
        newlines = [m.start() for m in _NEWLINE.finditer(big)]
        newlines.append(len(big))
        hits: list = []  # plain tuples in Hit's field order (no per-hit object cost)
        key_len, mode = self.key_len, self.mode
        t, next_nl, seg = 0, newlines[0], 1
        lead = 0 if mode == "substring" else 1  # the padding space before the name
        for e, i in self.automaton.iter(big):
            ws = e - key_len[i] + 1 + lead
            while ws > next_nl:
                seg = next_nl + 2
                t += 1
                next_nl = newlines[t]
            if mode == "word":
                hits.append((t, i, ws - seg, e - seg, "word"))
            elif mode == "left":
                strict = "word" if big[e + 1] in " \n" else "prefix"
                hits.append((t, i, ws - seg, e + 1 - seg, strict))
            elif self._substring_ok(big, ws, e + 1, i):
                hits.append((t, i, ws - seg, e + 1 - seg, "substring"))
        return hits

    def _substring_ok(self, big: str, ws: int, we: int, i: int) -> bool:
        name = self.names[i]
        if _spaced_word_char(name[0]) and _spaced_word_char(big[ws - 1]):
            return False
        return not (_spaced_word_char(name[-1]) and _spaced_word_char(big[we]))

    def find(self, texts: Sequence[str] | pa.Array) -> list[Hit]:
        """Hits with start/end as offsets into the original texts (``text[start:end]``)."""
        return self._to_source(texts, self.find_normalized(texts), None)

    def find_mixed(self, texts: Sequence[str]) -> tuple[list[Hit], list[bool]]:
        """``find``'s hits, except in the texts flagged True: there start/end stay offsets
        into the normalised text, which map to the original ones strictly increasingly (ASCII
        text outside the dotless-i languages: only separator runs shift), so that every
        comparison of offsets within such a text comes out the same; ``source_spans`` maps
        them when the original offsets themselves are needed."""
        ascii_ok = self.lang not in DOTLESS_LANGS
        shifted = [ascii_ok and t.isascii() for t in texts]
        return self._to_source(texts, self.find_normalized(texts), shifted), shifted

    def _to_source(self, texts: Sequence[str] | pa.Array, hits: list,
                   skip: list[bool] | None) -> list[Hit]:
        """``hits`` with offsets mapped into the original texts (but for texts in ``skip``)."""
        if isinstance(texts, (pa.Array, pa.ChunkedArray)):
            texts = texts.to_pylist()  # one conversion beats one per hit text
        groups: list[tuple[int, int, int]] = []  # (text, first hit, end): hits come in text order
        k, n = 0, len(hits)
        while k < n:
            j = k
            while j < n and hits[j][0] == hits[k][0]:
                j += 1
            groups.append((hits[k][0], k, j))
            k = j
        out: list[Hit] = []
        if skip is not None:
            keep = [g for g in groups if skip[g[0]]]
            groups = [g for g in groups if not skip[g[0]]]
            for _, a, b in keep:
                out += hits[a:b]  # plain tuples in Hit's field order
        # ASCII texts: every shift found in one regex pass over all of them
        ascii_ok = self.lang not in DOTLESS_LANGS
        fast = [g for g in groups if ascii_ok and texts[g[0]].isascii()]
        shifts = dict(zip((g[0] for g in fast), ascii_shifts([texts[g[0]] for g in fast])))
        for t, a, b in groups:
            spans = [(h[2], h[3]) for h in hits[a:b]]
            mapped = (shifted_spans(shifts[t], spans) if t in shifts
                      else source_spans(texts[t], self.lang, spans))
            out += [Hit(t, h[1], s, e, h[4]) for h, (s, e) in zip(hits[a:b], mapped)]
        if skip is not None:
            out.sort(key=lambda h: h[0])  # text order again (stable: hit order kept per text)
        return out


def cached_matcher(key: str, lang: str, mode: str, names: Callable[[], list[str]]) -> Matcher:
    """The process's matcher for ``key``, built from ``names()`` on first use only."""
    m = _CACHE.get(key)
    if m is None:
        m = Matcher.build(lang, mode, names())
        _CACHE[key] = m
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    return m


def best_mentions(hits: Iterable[Hit], targets: Sequence[Sequence[tuple[str, str]]]
                  ) -> dict[tuple[int, str, str, int], tuple[int, str]]:
    """(text_idx, uri, role, start) -> (end, strictness) of ``hits`` (``find``'s), each name
    hit spread to the (uri, role)s it names (``targets[name_idx]``); two names of one uri at one
    start: the longest (the first of equal length)."""
    best: dict[tuple[int, str, str, int], tuple[int, str]] = {}
    for t, i, start, end, strict in hits:
        for uri, role in targets[i]:
            k = (t, uri, role, start)
            if k not in best or best[k][0] < end:
                best[k] = (end, strict)
    return best


def cache_info() -> list[str]:
    """Keys of the automata this process holds (for tests and diagnostics)."""
    return list(_CACHE)
