"""Article wikitext to numbered sentences, page by page and Arrow batch by Arrow batch.

``page_sentences`` is the row logic (clean, split into paragraphs, segment); ``sentence_batches``
applies it to Arrow batches of pages (lang, page_id, dump, wikitext, wikitext_len) and emits,
per page, its sentences plus one marker row (``para_idx = -1``, ``sent_idx`` = the page's
sentence count) that carries the page's reject reason or null, so that rejects are counted from the same pass that builds the sentences.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import pyarrow as pa

from factroots.text import segment, wikitext
from factroots.text.dumps import dump_info

SENTENCE_ID_BASE = 1_000_000
CLEAN_SCHEMA = pa.schema([
    ("lang", pa.string()), ("page_id", pa.int64()), ("para_idx", pa.int32()),
    ("sent_idx", pa.int32()), ("sentence_id", pa.int64()), ("text", pa.string()),
    ("reject", pa.string()),
])


def page_sentences(text: str | None, length: int, lang: str, *, namespaces: Mapping | None = None,
                   parser: str = "fast", max_bytes: int = 2_000_000,
                   timeout_s: float = 10.0) -> tuple[list[tuple[int, int, str]], str | None]:
    """((para_idx, sent_idx, sentence) in page order, reject reason or None) of one article."""
    paras, reason = wikitext.clean_page(text, length, namespaces=namespaces, parser=parser,
                                        max_bytes=max_bytes, timeout_s=timeout_s)
    if reason:
        return [], reason
    out: list[tuple[int, int, str]] = []
    for p, para in enumerate(paras):
        for s, sent in enumerate(segment.split_sentences(para, lang)):
            out.append((p, s, sent))
    if len(out) >= SENTENCE_ID_BASE:  # ids must stay inside the page's id block
        return [], "oversized"
    return out, None


def _namespaces(dump: str | None) -> Mapping:
    if not dump:
        return {}
    try:
        return dump_info(dump)["siteinfo"]["namespaces"]
    except Exception:  # noqa: BLE001 - the dump was readable a moment ago; fall back to English
        return {}


def sentence_batches(batches: Iterable[pa.RecordBatch], *, parser: str = "fast",
                     max_bytes: int = 2_000_000, timeout_s: float = 10.0) -> Iterator[pa.RecordBatch]:
    """Sentence rows and per-page marker rows (``CLEAN_SCHEMA``) for batches of article pages."""
    for batch in batches:
        cols = {n: batch.column(n).to_pylist() for n in ("lang", "page_id", "dump", "wikitext",
                                                          "wikitext_len")}
        rows: dict[str, list] = {n: [] for n in CLEAN_SCHEMA.names}
        for lang, pid, dump, text, length in zip(*cols.values()):
            sents, reason = page_sentences(text, length or 0, lang, namespaces=_namespaces(dump),
                                           parser=parser, max_bytes=max_bytes, timeout_s=timeout_s)
            base = pid * SENTENCE_ID_BASE
            n = len(sents)
            rows["lang"] += [lang] * (n + 1)
            rows["page_id"] += [pid] * (n + 1)
            rows["para_idx"] += [s[0] for s in sents] + [-1]
            rows["sent_idx"] += [s[1] for s in sents] + [n]
            rows["sentence_id"] += list(range(base, base + n)) + [None]
            rows["text"] += [s[2] for s in sents] + [None]
            rows["reject"] += [None] * n + [reason]
        yield pa.RecordBatch.from_pydict(rows, schema=CLEAN_SCHEMA)


RAW_FIELDS = [("lang", pa.string()), ("dump", pa.string()), ("page_id", pa.int64()),
              ("rev_id", pa.int64()), ("title", pa.string()), ("namespace", pa.int32()),
              ("is_redirect", pa.bool_()), ("wikitext", pa.string()), ("wikitext_len", pa.int64()),
              ("reject", pa.string())]
FUSED_SCHEMA = pa.schema(RAW_FIELDS + [
    ("para_idx", pa.int32()), ("sent_idx", pa.int32()), ("sentence_id", pa.int64()),
    ("text", pa.string()), ("text_reject", pa.string())])


def fused_batch(rows: list[dict], lang: str, dump: str, *, namespaces: Mapping | None = None,
                parser: str = "fast", max_bytes: int = 2_000_000,
                timeout_s: float = 10.0) -> pa.RecordBatch:
    """Pages and their sentences in one batch (``FUSED_SCHEMA``), wikitext not kept.

    One page row per page (``para_idx = -1``, ``sent_idx`` = its sentence count,
    ``text_reject`` = the article's cleaning reject), then its sentence rows (page columns null).
    """
    cols: dict[str, list] = {n: [] for n in FUSED_SCHEMA.names}
    page_cols = [n for n, _ in RAW_FIELDS if n not in ("lang", "dump", "page_id", "wikitext")]
    for r in rows:
        sents: list = []
        reason = None
        if r["reject"] is None and r["namespace"] == 0 and not r["is_redirect"]:
            sents, reason = page_sentences(r["wikitext"], r["wikitext_len"] or 0, lang,
                                           namespaces=namespaces, parser=parser,
                                           max_bytes=max_bytes, timeout_s=timeout_s)
        n, pid = len(sents), r["page_id"]
        base = (pid or 0) * SENTENCE_ID_BASE
        cols["lang"] += [lang] * (n + 1)
        cols["dump"] += [dump] + [None] * n
        cols["page_id"] += [pid] * (n + 1)
        cols["wikitext"] += [None] * (n + 1)
        for c in page_cols:
            cols[c] += [r[c]] + [None] * n
        cols["para_idx"] += [-1] + [s[0] for s in sents]
        cols["sent_idx"] += [n] + [s[1] for s in sents]
        cols["sentence_id"] += [None] + list(range(base, base + n))
        cols["text"] += [None] + [s[2] for s in sents]
        cols["text_reject"] += [reason] + [None] * n
    return pa.RecordBatch.from_pydict(cols, schema=FUSED_SCHEMA)
