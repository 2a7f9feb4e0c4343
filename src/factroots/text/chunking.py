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
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_WORDS = re.compile(r"\w+|[^\w\s]")
_CACHE: dict[str, object] = {}


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
        tok = Tokenizer.from_str(load())
        _CACHE[key] = tok
    return tok


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
    for page, starts in zip(page_ids, token_starts(texts, tokenizer)):
        if page != state[0]:
            state[0], state[1] = page, 0
        first = state[1]
        n = len(starts)
        # subword k of this sentence has page position first + k; a chunk starts where that
        # position is a multiple of size
        k = (-first) % size
        cuts = []
        while k < n:
            if k > 0:
                cuts.append(starts[k])
            k += size
        state[1] = first + n
        yield first // size, cuts, n
