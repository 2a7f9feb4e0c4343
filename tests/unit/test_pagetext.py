"""split_pages (page dicts of one dump -> stored pages and sentences rows) and its counters."""

from __future__ import annotations

import pytest

from factroots import storage, tables
from factroots.text import pagetext, wikitext
from factroots.text.xmlpages import reject

DUMP = "/dumps/xxwiki-multistream.xml.bz2"
NS = {14: "Kat"}


def page(pid: int, text: str | None, *, ns: int = 0, redirect: bool = False,
         length: int | None = None) -> dict:
    return {"page_id": pid, "rev_id": pid * 10, "title": f"T{pid}", "namespace": ns,
            "is_redirect": redirect, "wikitext": text,
            "wikitext_len": len(text.encode()) if length is None else length, "reject": None}


ROWS = [
    page(7, "First [[one]]. Second one.\n\nThird para.[[Kat:Hidden]]"),  # article
    page(8, "#REDIRECT [[Seven]]", redirect=True),                       # redirect
    page(9, "[[Kat:Top]] A category page.", ns=14),                     # non-article
    reject("truncated", 10, "T10"),                                      # cut-off page
    reject("parse_error", 11, None, 0),                                  # broken XML
    page(12, None, length=9_000_000),                                    # oversized article
    page(13, "{{only template}}"),                                       # no sentences
    page(14, "Lone sentence here."),                                     # article
]


def _split(rows: list[dict], counts: dict | None = None):
    counts = pagetext.new_counts() if counts is None else counts
    pages, sents = pagetext.split_pages(rows, "xx", DUMP, counts, namespaces=NS)
    return pages, sents, counts


def test_new_counts_are_zero_and_named():
    c = pagetext.new_counts()
    assert set(c) == {"pages", "sentences"}
    assert tuple(c["pages"]) == pagetext.PAGE_COUNTS and not any(c["pages"].values())
    assert tuple(c["sentences"]) == pagetext.SENTENCE_COUNTS and not any(c["sentences"].values())
    c["pages"]["in"] += 1
    assert pagetext.new_counts()["pages"]["in"] == 0  # fresh dicts each time


def test_split_pages_rows_and_exact_counters():
    pages, sents, counts = _split(ROWS)
    assert pages.schema.equals(pagetext.PAGES_FILE) and sents.schema.equals(pagetext.SENTENCES_FILE)
    assert pagetext.PAGES_FILE.equals(tables.stored_schema("pages"))
    assert pagetext.SENTENCES_FILE.equals(tables.stored_schema("sentences"))
    tables.check_stored("pages", pages.schema)
    tables.check_stored("sentences", sents.schema)
    assert "lang" not in pages.schema.names + sents.schema.names

    # every page read whole is a pages row (rejects are only counted), in input order
    p = pages.to_pylist()
    assert [r["page_id"] for r in p] == [7, 8, 9, 12, 13, 14]
    assert {r["dump"] for r in p} == {DUMP}
    assert p[3] == {"page_id": 12, "rev_id": 120, "title": "T12", "namespace": 0,
                    "is_redirect": False, "wikitext_len": 9_000_000, "dump": DUMP}
    assert (p[1]["is_redirect"], p[2]["namespace"]) == (True, 14)

    # sentences only of articles, ids = page_id * 1e6 + position, dump namespaces honoured
    assert [(r["page_id"], r["para_idx"], r["sent_idx"], r["sentence_id"], r["text"])
            for r in sents.to_pylist()] == [
        (7, 0, 0, 7_000_000, "First one."), (7, 0, 1, 7_000_001, "Second one."),
        (7, 1, 0, 7_000_002, "Third para."), (14, 0, 0, 14_000_000, "Lone sentence here.")]

    assert counts["pages"] == {"in": 8, "out": 6, "rejected_truncated": 1,
                               "rejected_corrupt_stream": 0, "rejected_parse_error": 1,
                               "articles": 4, "redirects": 1, "non_articles": 1, "oversized": 1}
    assert counts["sentences"] == {"in": 4, "out": 3, "sentences": 4, "empty_articles": 1,
                                   "rejected_oversized": 1, "rejected_timeout": 0,
                                   "rejected_clean_error": 0, "rejected_unparsed": 0}
    assert counts["pages"]["out"] == pages.num_rows
    assert counts["sentences"]["sentences"] == sents.num_rows
    assert storage.check_balance(counts["pages"]) and storage.check_balance(counts["sentences"])
    assert counts["pages"]["articles"] == counts["sentences"]["in"]


def test_sentence_rejects_are_counted_and_balance(monkeypatch: pytest.MonkeyPatch):
    real = wikitext.clean_text

    def flaky(text, **kw):
        if "BOOM" in text:
            raise IndexError("cleaner bug")
        return real(text, **kw)

    monkeypatch.setattr(wikitext, "clean_text", flaky)
    rows = [page(1, "Fine text. Here."), page(2, "BOOM [[x]]"), page(3, "x" * 60)]
    counts = pagetext.new_counts()
    pages, sents = pagetext.split_pages(rows, "en", DUMP, counts, max_bytes=50)
    assert pages.num_rows == 3  # every page stays in pages
    assert sents.column("page_id").to_pylist() == [1, 1]
    assert counts["sentences"] == {"in": 3, "out": 1, "sentences": 2, "empty_articles": 0,
                                   "rejected_oversized": 1, "rejected_timeout": 0,
                                   "rejected_clean_error": 1, "rejected_unparsed": 0}
    assert storage.check_balance(counts["sentences"])


def test_unparsed_pages_are_counted_and_balance():
    """trace.parser: mwparser on a page of hundreds of unclosed templates: a counted reject
    (its residue would be hundreds of 5,000-character sentences), the other pages kept."""
    junk = "".join(f"{{{{Infobox|a={i}|b=2|" + "x " * 2500 + "\n\n" for i in range(200))
    rows = [page(1, "Fine text. Here."), page(2, "Intro.\n\n" + junk)]
    counts = pagetext.new_counts()
    _, sents = pagetext.split_pages(rows, "en", DUMP, counts, parser="mwparser")
    assert sents.column("page_id").to_pylist() == [1, 1]
    assert counts["sentences"]["rejected_unparsed"] == 1 and counts["sentences"]["out"] == 1
    assert storage.check_balance(counts["sentences"])
    assert max(map(len, sents.column("text").to_pylist())) < 100


def test_unknown_page_reject_is_rejected_other_and_kept_in_stats():
    counts = pagetext.new_counts()
    pages, sents = pagetext.split_pages([reject("weird", 1), page(2, "Ok.")], "en", DUMP, counts)
    assert counts["pages"]["rejected_other"] == 1 and counts["pages"]["out"] == 1
    stats = pagetext.page_stats_of(counts["pages"])
    assert stats["rejected_other"] == 1 and storage.check_balance(stats)
    assert (pages.num_rows, sents.num_rows) == (1, 1)


def test_no_rows_give_empty_batches_of_the_stored_schemas():
    pages, sents, counts = _split([])
    assert (pages.num_rows, sents.num_rows) == (0, 0)
    assert pages.schema.equals(pagetext.PAGES_FILE) and sents.schema.equals(pagetext.SENTENCES_FILE)
    assert counts == pagetext.new_counts()


def test_partition_counters_add_up_to_one_pass():
    whole = _split(ROWS)[2]
    total = pagetext.new_counts()
    for chunk in (ROWS[:3], ROWS[3:5], ROWS[5:]):  # three partitions of one language
        pagetext.add_counts(total, _split(chunk)[2])
    assert total == whole
    pagetext.add_counts(total, {"pages": {"rejected_other": 2}, "sentences": {}})
    assert total["pages"]["rejected_other"] == 2 and total["pages"]["in"] == 8

    stats = pagetext.page_stats_of(whole["pages"])
    assert "rejected_other" not in stats  # dropped when 0, as page_stats does
    assert (stats["pages_in"], stats["pages_out"]) == (8, 6)
    assert {k: v for k, v in stats.items() if k not in ("pages_in", "pages_out")} == whole["pages"]
    assert storage.check_balance(stats)


def test_is_article():
    assert pagetext.is_article(ROWS[0]) and pagetext.is_article(ROWS[5])
    assert not any(pagetext.is_article(r) for r in (ROWS[1], ROWS[2], ROWS[3], ROWS[4]))


def test_split_pages_is_deterministic():
    a, b = _split(ROWS), _split(ROWS)
    assert a[0].equals(b[0]) and a[1].equals(b[1]) and a[2] == b[2]


def test_sentence_text_column_matches_pyarrow_and_survives_nul() -> None:
    import pyarrow as pa

    for texts in ([], ["one"], ["a", "ß", "日本語。"], ["", "x", ""], ["bad\x00nul", "ok"]):
        assert pagetext._string_array(texts).equals(pa.array(texts, pa.string())), texts
