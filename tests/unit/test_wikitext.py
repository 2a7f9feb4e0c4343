"""Wikitext cleaning (fast path and mwparserfromhell), guards, segmentation, sentence rows."""

from __future__ import annotations

import time

import pyarrow as pa
import pytest

from factroots.text import dumps, pagetext, segment, wikitext
from factroots.text.samples import sample_dump

BN_NS = {6: "চিত্র", 14: "বিষয়শ্রেণী", -2: "মিডিয়া"}
PAGE = """{{Infobox person|name=Ada|birth_place=[[London]]|spouse={{marriage|William}}}}
'''Ada Lovelace''' (born {{birth date|1815|12|10}}) was an [[England|English]] [[mathematician]].<ref name="a">{{cite web|url=http://x.org}}</ref> She worked with [[Charles Babbage]]s machine.<ref>Plain ref</ref>
<!-- hidden comment -->
[[File:Ada.jpg|thumb|Portrait of [[Ada Lovelace|Ada]] in 1840]]
== Life ==
She was born in <span style="x">London</span> on a ''cold'' day.{{citation needed}}
{| class="wikitable"
|-
| Table cell text || More
|}
* A list item about [http://example.org her notes].
[[Category:Mathematicians]]
[[de:Ada Lovelace]]
[[বিষয়শ্রেণী:গণিতবিদ]]
[[চিত্র:Ada.png|thumb|ছবি]]
"""


@pytest.mark.parametrize("parser", ["fast", "mwparser"])
def test_clean_removes_markup_keeps_link_text(parser):
    paras = wikitext.clean_wikitext(PAGE, namespaces=BN_NS, parser=parser)
    text = "\n".join(paras)
    assert "Ada Lovelace (born) was an English mathematician." in text
    assert "She worked with Charles Babbages machine." in text
    assert "She was born in London on a cold day." in text
    assert "A list item about her notes." in text
    for gone in ("Infobox", "birth_place", "cite", "Plain ref", "hidden", "Portrait", "Table cell",
                 "Mathematicians", "Category", "de:", "গণিতবিদ", "ছবি", "Life", "'''", "<", "{{",
                 "[[", "http"):
        assert gone not in text, gone


def test_fast_path_falls_back_when_markup_does_not_balance():
    text = "Intro [[Paris]] text.\n\n{{Infobox city|name=Paris\n\nParis is a city. {{lang|fr|x}}"
    _, balanced = wikitext.clean_fast(text)
    assert not balanced
    paras = wikitext.clean_wikitext(text)
    assert paras[0] == "Intro Paris text."


def test_fast_path_on_real_pages_has_no_markup_left():
    path = str(sample_dump("en"))
    ns = dumps.dump_info(path)["siteinfo"]["namespaces"]
    pages = [r for p in dumps.plan_dump(path, "en") for rs in dumps.read_partition(p) for r in rs
             if r["namespace"] == 0 and not r["is_redirect"]]
    assert len(pages) >= 5
    for r in pages:
        text = " ".join(wikitext.clean_wikitext(r["wikitext"], namespaces=ns))
        assert len(text) > 1000
        for marker in ("{{", "}}", "[[", "]]", "<ref", "'''", "{|", "Category:", "File:"):
            assert marker not in text, (r["title"], marker)


def test_guards_count_oversized_timeout_and_errors(monkeypatch):
    assert wikitext.clean_page(None, 5_000_000, max_bytes=2_000_000) == ([], "oversized")
    assert wikitext.clean_page("x" * 100, 100, max_bytes=50) == ([], "oversized")

    def slow(text, **kw):
        time.sleep(2)
        return ["never"], 0

    monkeypatch.setattr(wikitext, "clean_text", slow)
    t0 = time.perf_counter()
    assert wikitext.clean_page("text", 4, timeout_s=0.2) == ([], "timeout")
    assert time.perf_counter() - t0 < 1.5  # interrupted, not waited for

    def broken(text, **kw):
        raise IndexError("boom")

    monkeypatch.setattr(wikitext, "clean_text", broken)
    assert wikitext.clean_page("text", 4) == ([], "clean_error")


def test_split_sentences():
    assert segment.split_sentences("Dr. Smith went to Washington. He left in 1990.", "en") == [
        "Dr. Smith went to Washington.", "He left in 1990."]
    assert segment.split_sentences("東京は日本の首都である。人口は多い。", "ja") == [
        "東京は日本の首都である。", "人口は多い。"]
    th = "ประเทศไทย มี กรุงเทพ เป็น เมืองหลวง. อีก ประโยค"
    assert segment.split_sentences(th, "th") == [th]
    assert segment.split_sentences("One. Two.", "zz-unknown") == ["One.", "Two."]
    long = ("word " * 3000).strip()
    parts = segment.split_sentences(long, "en")
    assert len(parts) > 1 and max(map(len, parts)) <= segment.MAX_SENTENCE_CHARS


def test_sentence_batches_ids_order_and_markers():
    batch = pa.RecordBatch.from_pydict({
        "lang": ["en", "en", "en"], "page_id": [7, 9, 11], "dump": [None, None, None],
        "wikitext": ["First [[one]]. Second one.\n\nThird para.", None, "{{only template}}"],
        "wikitext_len": [40, 9_000_000, 17]})
    out = pa.Table.from_batches(list(pagetext.sentence_batches([batch])))
    rows = out.to_pylist()
    sents = [r for r in rows if r["para_idx"] >= 0]
    assert [(r["page_id"], r["para_idx"], r["sent_idx"], r["sentence_id"], r["text"]) for r in sents] == [
        (7, 0, 0, 7_000_000, "First one."), (7, 0, 1, 7_000_001, "Second one."),
        (7, 1, 0, 7_000_002, "Third para.")]
    markers = {r["page_id"]: (r["sent_idx"], r["reject"]) for r in rows if r["para_idx"] < 0}
    assert markers == {7: (3, None), 9: (0, "oversized"), 11: (0, None)}
    again = pa.Table.from_batches(list(pagetext.sentence_batches([batch])))
    assert again.equals(out)
