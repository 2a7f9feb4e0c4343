"""Article wikitext to numbered sentences, page by page and Arrow batch by Arrow batch.

``page_sentences`` is the row logic (clean, split into paragraphs, segment). Two drivers apply
it: ``sentence_batches`` to Arrow batches of raw pages (lang, page_id, dump, wikitext,
wikitext_len), emitting per page its sentences plus one marker row (``para_idx = -1``,
``sent_idx`` = the page's sentence count) that carries the page's reject reason or null, so
that rejects are counted from the pass that builds the sentences (the DataFrame path); and
``split_pages`` to page dicts straight from a dump partition, returning the ``pages`` and
``sentences`` rows in their stored schemas and counting every page (``new_counts``) - the
path on which the Spark tasks write both tables themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from factroots import tables
from factroots.config import TEXT_TEMPLATES
from factroots.text import segment, wikitext
from factroots.text.dumps import dump_info

SENTENCE_ID_BASE = 1_000_000
CLEAN_SCHEMA = pa.schema([
    ("lang", pa.string()), ("page_id", pa.int64()), ("para_idx", pa.int32()),
    ("sent_idx", pa.int32()), ("sentence_id", pa.int64()), ("text", pa.string()),
    ("reject", pa.string()),
])


def page_sentences(text: str | None, length: int, lang: str, *, namespaces: Mapping | None = None,
                   parser: str = "fast", max_bytes: int = 2_000_000, timeout_s: float = 10.0,
                   templates: Iterable[str] = TEXT_TEMPLATES
                   ) -> tuple[list[tuple[int, int, str]], str | None]:
    """((para_idx, sent_idx, sentence) in page order, reject reason or None) of one article."""
    paras, reason = wikitext.clean_page(text, length, namespaces=namespaces, parser=parser,
                                        max_bytes=max_bytes, timeout_s=timeout_s, lang=lang,
                                        templates=templates)
    if reason:
        return [], reason
    out = segment.split_paragraphs(paras, lang)
    if len(out) >= SENTENCE_ID_BASE:  # ids must stay inside the page's id block
        return [], "oversized"
    return out, None


def namespaces_of(dump: str | None) -> Mapping:
    """The namespace names of a dump's siteinfo ({} when it cannot be read: English names)."""
    if not dump:
        return {}
    try:
        return dump_info(dump)["siteinfo"]["namespaces"]
    except Exception:  # noqa: BLE001 - the dump was readable a moment ago; fall back to English
        return {}


def sentence_batches(batches: Iterable[pa.RecordBatch], *, parser: str = "fast",
                     max_bytes: int = 2_000_000, timeout_s: float = 10.0,
                     templates: Iterable[str] = TEXT_TEMPLATES) -> Iterator[pa.RecordBatch]:
    """Sentence rows and per-page marker rows (``CLEAN_SCHEMA``) for batches of article pages."""
    for batch in batches:
        cols = {n: batch.column(n).to_pylist() for n in ("lang", "page_id", "dump", "wikitext",
                                                          "wikitext_len")}
        rows: dict[str, list] = {n: [] for n in CLEAN_SCHEMA.names}
        for lang, pid, dump, text, length in zip(*cols.values()):
            sents, reason = page_sentences(text, length or 0, lang, namespaces=namespaces_of(dump),
                                           parser=parser, max_bytes=max_bytes, timeout_s=timeout_s,
                                           templates=templates)
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
PAGES_FILE = tables.stored_schema("pages")
SENTENCES_FILE = tables.stored_schema("sentences")
PAGE_REJECTS = ("truncated", "corrupt_stream", "parse_error")
SENTENCE_REJECTS = ("oversized", "timeout", "clean_error")
PAGE_COUNTS = ("in", "out", *(f"rejected_{r}" for r in PAGE_REJECTS), "articles", "redirects",
               "non_articles", "oversized")
SENTENCE_COUNTS = ("in", "out", "sentences", "empty_articles",
                   *(f"rejected_{r}" for r in SENTENCE_REJECTS))


def new_counts() -> dict[str, dict[str, int]]:
    """Zeroed counters of one language: ``pages`` and ``sentences`` (the keys of ``_stats.json``)."""
    return {"pages": dict.fromkeys(PAGE_COUNTS, 0), "sentences": dict.fromkeys(SENTENCE_COUNTS, 0)}


def add_counts(total: dict[str, dict[str, int]], part: Mapping[str, Mapping[str, int]]) -> None:
    """Add the counters ``part`` (of one partition) into ``total``."""
    for table, counts in part.items():
        for k, v in counts.items():
            total[table][k] = total[table].get(k, 0) + v


def page_stats_of(counts: Mapping[str, int]) -> dict[str, int]:
    """The ``pages`` stats from summed counters: ``pages_in``/``pages_out`` beside ``in``/``out``."""
    d = {k: v for k, v in counts.items() if k != "rejected_other" or v}
    d["pages_in"], d["pages_out"] = d["in"], d["out"]
    return d


def is_article(row: Mapping) -> bool:
    """A page read whole, in namespace 0 and not a redirect: the pages that get sentences."""
    return row["reject"] is None and row["namespace"] == 0 and not row["is_redirect"]


def split_pages(rows: list[dict], lang: str, dump: str, counts: dict[str, dict[str, int]], *,
                namespaces: Mapping | None = None, parser: str = "fast",
                max_bytes: int = 2_000_000, timeout_s: float = 10.0,
                templates: Iterable[str] = TEXT_TEMPLATES
                ) -> tuple[pa.RecordBatch, pa.RecordBatch]:
    """``pages`` and ``sentences`` rows (their stored schemas: no ``lang``) of a run of page
    dicts of one dump, each page counted in ``counts`` (``new_counts()``)."""
    pcount, scount = counts["pages"], counts["sentences"]
    page_cols: dict[str, list] = {n: [] for n in PAGES_FILE.names}
    sent_cols: dict[str, list] = {n: [] for n in SENTENCES_FILE.names}
    for r in rows:
        pcount["in"] += 1
        if r["reject"] is not None:
            key = f"rejected_{r['reject']}" if r["reject"] in PAGE_REJECTS else "rejected_other"
            pcount[key] = pcount.get(key, 0) + 1
            continue
        pcount["out"] += 1
        for n in PAGES_FILE.names:
            page_cols[n].append(dump if n == "dump" else r[n])
        if r["is_redirect"] or r["namespace"] != 0:
            pcount["redirects" if r["is_redirect"] else "non_articles"] += 1
            continue
        pcount["articles"] += 1
        scount["in"] += 1
        sents, reason = page_sentences(r["wikitext"], r["wikitext_len"] or 0, lang,
                                       namespaces=namespaces, parser=parser,
                                       max_bytes=max_bytes, timeout_s=timeout_s,
                                       templates=templates)
        pcount["oversized"] += r["wikitext"] is None  # as page_stats counts it
        if reason:
            key = f"rejected_{reason}"
            scount[key] = scount.get(key, 0) + 1
            continue
        _add_sentences(sent_cols, r["page_id"], sents)
        scount["out"] += 1
        scount["sentences"] += len(sents)
        scount["empty_articles"] += not sents
    sent_cols["text"] = _string_array(sent_cols["text"])
    return (pa.RecordBatch.from_pydict(page_cols, schema=PAGES_FILE),
            pa.RecordBatch.from_pydict(sent_cols, schema=SENTENCES_FILE))


def _string_array(texts: list[str]) -> pa.Array:
    """``pa.array(texts)``, faster: one join and one UTF-8 encoding in C instead of one per
    string (NUL never occurs in page text, which XML forbids)."""
    joined = "\x00".join(texts)
    if len(texts) < 2 or joined.count("\x00") != len(texts) - 1:
        return pa.array(texts, pa.string())
    return pc.split_pattern(pa.array([joined], pa.string()), "\x00").flatten()


def _add_sentences(cols: dict[str, list], page_id: int, sents: list[tuple[int, int, str]]) -> None:
    base = page_id * SENTENCE_ID_BASE
    cols["page_id"] += [page_id] * len(sents)
    cols["para_idx"] += [s[0] for s in sents]
    cols["sent_idx"] += [s[1] for s in sents]
    cols["sentence_id"] += range(base, base + len(sents))
    cols["text"] += [s[2] for s in sents]
