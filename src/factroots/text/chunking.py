"""Cut each page into the paper's chunks: consecutive, non-overlapping windows of ``size``
subwords of the page's text in page order (mBERT wordpieces, 512, in the paper).

Each sentence is tokenised on its own (no special tokens) and the counts run on across the
page's sentences, which equals tokenising the page as one line for whitespace-pretokenised
vocabularies such as mBERT's WordPiece (SentencePiece may differ by a piece at a sentence
start). A sentence is described by ``chunk0`` (the chunk its first subword falls in) and
``cuts`` (the character offsets inside it where a new chunk starts), so a mention at character
``c`` lies in chunk ``chunk0 + #(cuts <= c)``.

Without a tokenizer, a ``whitespace`` fallback counts words and punctuation marks as subwords
(recorded in the manifest as ``chunk_tokenizer: whitespace``).

Only a sentence in which a cut falls needs its subwords' offsets; the others need only their
subword count (``subword_counts``). For tokenizers whose normaliser works character by
character and whose pre-tokeniser splits at every space (BERT's WordPiece, ``Whitespace``), a
sentence's count is the sum of the counts of its space-separated words, so each distinct word
is tokenised once per process (a bounded cache) instead of every sentence in full: the same
numbers, several times faster (BENCHMARKS.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_WORDS = re.compile(r"\w+|[^\w\s]")
_CACHE: dict[str, object] = {}
_ADDITIVE: dict[int, dict[str, int] | None] = {}  # id(tokenizer) -> its word-count cache
_WORDS_CACHED = 1 << 19  # distinct words counted per process before the cache starts over
# tokenizer parts that never join text across a space, nor split it differently when a
# space-separated word is tokenised on its own
_LOCAL_NORMALIZERS = {"BertNormalizer", "Lowercase", "NFC", "NFD", "StripAccents"}
_SPACE_SPLITTERS = {"BertPreTokenizer", "Whitespace", "WhitespaceSplit", "Punctuation", "Digits"}


def tokenizer_key(tokenizer_json: str | None) -> str:
    """A short hash naming a tokenizer (``whitespace`` when there is none)."""
    if not tokenizer_json:
        return "whitespace"
    return "tok-" + hashlib.sha256(tokenizer_json.encode()).hexdigest()[:16]


def cached_tokenizer(key: str, load: Callable[[], str | None]):  # type: ignore[no-untyped-def]
    """The process's ``tokenizers.Tokenizer`` named ``key``, built from ``load()`` once
    (None: the whitespace fallback)."""
    if key == "whitespace":
        return None
    tok = _CACHE.get(key)
    if tok is None:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # Spark runs one per core
        from tokenizers import Tokenizer
        spec = load()
        tok = Tokenizer.from_str(spec)
        _CACHE[key] = tok
        _ADDITIVE[id(tok)] = {} if counts_add_up(spec) else None
    return tok


def counts_add_up(tokenizer_json: str) -> bool:
    """True when a sentence's subword count is the sum of its space-separated words' counts."""
    d = json.loads(tokenizer_json)

    def parts(p: dict | None, key: str) -> list[dict]:
        if p is None:
            return []
        return [q for x in p[key] for q in parts(x, key)] if p.get("type") == "Sequence" else [p]

    norms, pres = parts(d.get("normalizer"), "normalizers"), parts(d.get("pre_tokenizer"),
                                                                     "pretokenizers")
    return (all(n.get("type") in _LOCAL_NORMALIZERS for n in norms) and bool(pres)
            and all(p.get("type") in _SPACE_SPLITTERS for p in pres)
            and any(p.get("type") != "Punctuation" and p.get("type") != "Digits" for p in pres)
            and not any(" " in t.get("content", "") for t in d.get("added_tokens") or []))


def subword_counts(texts: list[str], tokenizer: Any) -> list[int]:
    """How many subwords each text has (no special tokens): ``len(token_starts(...)[i])``."""
    if tokenizer is None:
        return [len(_WORDS.findall(t)) for t in texts]
    cache = _ADDITIVE.get(id(tokenizer))
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
    if cache is None:
        return [len(e.ids) for e in encode(texts, add_special_tokens=False)]
    words = [t.split(" ") for t in texts]
    try:  # the common case once a process has seen some text: every word known
        return [sum(map(cache.__getitem__, ws)) for ws in words]
    except KeyError:
        pass
    new = list({w for ws in words for w in ws if w not in cache})
    if len(cache) + len(new) > _WORDS_CACHED:  # start over (memory stays bounded)
        cache.clear()
        new = list({w for ws in words for w in ws})
    cache.update(zip(new, (len(e.ids) for e in encode(new, add_special_tokens=False))))
    return [sum(map(cache.__getitem__, ws)) for ws in words]


def token_starts(texts: list[str], tokenizer: Any) -> list[list[int]]:
    """For each text, the character offset where each of its subwords starts."""
    if tokenizer is None:
        return [[m.start() for m in _WORDS.finditer(t)] for t in texts]
    encs = tokenizer.encode_batch(texts, add_special_tokens=False)
    return [[a for a, _ in e.offsets] for e in encs]


def sentence_chunks(page_ids: Iterable, texts: list[str], tokenizer: Any, size: int,
                    state: list | None = None) -> Iterator[tuple[int, list[int], int]]:
    """(chunk0, cuts, n_subwords) per sentence, for sentences given in page order.

    ``state`` ([page_id, subwords so far]) carries a page that goes on in the next batch.
    """
    state = state if state is not None else [None, 0]
    rows = []  # (chunk0, first subword k of a cut, n)
    for page, n in zip(page_ids, subword_counts(texts, tokenizer)):
        if page != state[0]:
            state[0], state[1] = page, 0
        first = state[1]
        state[1] = first + n
        # subword k of this sentence has page position first + k; a chunk starts where that
        # position is a multiple of size
        rows.append((first // size, (-first) % size, n))
    # offsets only for the sentences a cut falls in (k > 0: a cut at k = 0 is the sentence start)
    inside = [i for i, (_, k, n) in enumerate(rows) if 0 < k < n or (k == 0 and n > size)]
    starts = dict(zip(inside, token_starts([texts[i] for i in inside], tokenizer)))
    for i, (chunk0, k, n) in enumerate(rows):
        cuts = []
        if i in starts:
            st = starts[i]
            while k < n:
                if k > 0:
                    cuts.append(st[k])
                k += size
        yield chunk0, cuts, n
