"""Sentences from a paragraph: sentencex (Wikimedia's rule-based segmenter, rules ship in the
wheel) for every language, and the whole paragraph for scripts without sentence punctuation."""

from __future__ import annotations

import itertools

import sentencex

# Thai, Lao, Khmer and Burmese Wikipedia text has no reliable sentence-final punctuation:
# the paragraph is the unit (co-occurrence then works at paragraph level for them).
PARAGRAPH_LANGS = frozenset({"th", "lo", "km", "my"})
MAX_SENTENCE_CHARS = 5_000


def split_sentences(paragraph: str, lang: str) -> list[str]:
    """Sentences of ``paragraph`` (stripped, non-empty, in order) for language ``lang``."""
    return [s for _, _, s in split_paragraphs([paragraph], lang)]


def split_paragraphs(paragraphs: list[str], lang: str) -> list[tuple[int, int, str]]:
    """(para_idx, sent_idx, sentence) of a page's paragraphs in order, one loop per page (a
    page has hundreds of paragraphs: per-call work stays out of it)."""
    whole, seg, out = lang in PARAGRAPH_LANGS, sentencex.segment, []
    strip, repeat, count = str.strip, itertools.repeat, itertools.count
    for p, para in enumerate(paragraphs):
        if whole:
            parts = [para]
        else:
            try:
                parts = seg(lang, para)
            except Exception:  # noqa: BLE001 - an unknown code falls back to sentencex's default rules
                parts = seg("en", para)
        sents = list(filter(None, map(strip, parts)))
        if len(para) > MAX_SENTENCE_CHARS:
            sents = _cap(sents)
        out += zip(repeat(p), count(), sents)
    return out


def _cap(sentences: list[str]) -> list[str]:
    """Split run-on 'sentences' (lists without punctuation) at spaces below a length cap."""
    out = []
    for s in sentences:
        while len(s) > MAX_SENTENCE_CHARS:
            cut = s.rfind(" ", 0, MAX_SENTENCE_CHARS)
            cut = cut if cut > 0 else MAX_SENTENCE_CHARS
            out.append(s[:cut].strip())
            s = s[cut:].strip()
        if s:
            out.append(s)
    return out
