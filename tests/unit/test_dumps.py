"""Reading dumps: multistream + index, plain XML, UTF-16, truncated, corrupt, empty, not a dump."""

from __future__ import annotations

import bz2
import functools
import lzma
import shutil
from pathlib import Path

import pytest

from factroots.errors import DumpNotFoundError, NotADumpError
from factroots.text import dumps, xmlpages
from factroots.text.multistream import index_path_for, write_multistream
from factroots.text.samples import sample_dump, sample_index, sample_langs

SIX = ("bn", "el", "hy", "ja", "uk", "vi")


def read_all(path, lang="xx", **kw) -> list[dict]:
    return [r for p in dumps.plan_dump(str(path), lang, **kw) for rows in dumps.read_partition(p)
            for r in rows]


@functools.lru_cache(maxsize=1)
def _en_rows() -> tuple:
    return tuple(r for r in read_all(sample_dump("en")) if r["wikitext"] is not None)


def real_pages(n: int) -> list[dict]:
    """n real pages (English sample, first 4,000 characters, new ids), for write_multistream."""
    src = [dict(r, wikitext=r["wikitext"][:4000]) for r in _en_rows()]
    return [{"page_id": 1000 + i, "rev_id": 5000 + i, "title": f"{src[i % len(src)]['title']} {i}",
             "ns": src[i % len(src)]["namespace"], "text": src[i % len(src)]["wikitext"],
             "redirect": "X" if src[i % len(src)]["is_redirect"] else None} for i in range(n)]


@pytest.fixture(scope="module")
def ms250(tmp_path_factory) -> tuple[Path, Path]:
    return write_multistream(real_pages(250), tmp_path_factory.mktemp("ms") / "xxwiki-multistream.xml.bz2",
                             lang="xx")


def test_multistream_layout_and_index(ms250):
    dump, index = ms250
    assert index == index_path_for(dump) and index.name == "xxwiki-multistream-index.txt.bz2"
    raw = dump.read_bytes()
    streams, d = [], bz2.BZ2Decompressor()
    pos = 0
    while pos < len(raw):
        d = bz2.BZ2Decompressor()
        out = d.decompress(raw[pos:])
        streams.append((pos, out))
        pos = len(raw) - len(d.unused_data)
    assert b"<siteinfo>" in streams[0][1] and b"<page>" not in streams[0][1]
    assert streams[-1][1].strip() == b"</mediawiki>"
    assert [s[1].count(b"<page>") for s in streams[1:-1]] == [100, 100, 50]
    lines = bz2.decompress(index.read_bytes()).decode().splitlines()
    assert len(lines) == 250
    offsets = sorted({int(line.split(":")[0]) for line in lines})
    assert offsets == [s[0] for s in streams[1:-1]]
    assert lines[0].split(":", 2)[1:] == ["1000", real_pages(1)[0]["title"]]


def test_multistream_byte_ranges_cover_every_page_once(ms250, monkeypatch):
    dump, _ = ms250
    plan = dumps.plan_dump(str(dump), "xx", parts=3)
    assert [p["kind"] for p in plan] == ["multistream"] * 3
    rows = [r for p in plan for rs in dumps.read_partition(p) for r in rs]
    assert [r["page_id"] for r in rows] == list(range(1000, 1250))
    assert all(r["reject"] is None for r in rows)
    first = real_pages(1)[0]
    assert rows[0]["title"] == first["title"] and rows[0]["wikitext"] == first["text"]
    # default: a small file stays one task; one of 2 x MIN_SPLIT_BYTES or more becomes two
    assert len(dumps.plan_dump(str(dump), "xx")) == 1
    monkeypatch.setattr(dumps, "MIN_SPLIT_BYTES", dump.stat().st_size // 2)
    halves = dumps.plan_dump(str(dump), "xx")
    assert len(halves) == 2 and halves[0]["end"] == halves[1]["start"]
    assert [r["page_id"] for p in halves for rs in dumps.read_partition(p) for r in rs] == list(range(1000, 1250))


def test_dump_without_index_reads_as_one_partition(ms250, tmp_path):
    copy = tmp_path / "noindex.xml.bz2"
    shutil.copy(ms250[0], copy)
    plan = dumps.plan_dump(str(copy), "xx")
    assert len(plan) == 1 and plan[0]["kind"] == "stream"
    assert [r["page_id"] for r in read_all(copy)] == list(range(1000, 1250))


def test_plain_xml_byte_ranges(ms250, tmp_path):
    xml = tmp_path / "plain.xml"
    xml.write_bytes(bz2.decompress(ms250[0].read_bytes()))
    plan = dumps.plan_dump(str(xml), "xx", part_bytes=xml.stat().st_size // 7)
    assert len(plan) >= 7 and {p["kind"] for p in plan} == {"xmlrange"}
    rows = [r for p in plan for rs in dumps.read_partition(p) for r in rs]
    assert [r["page_id"] for r in rows] == list(range(1000, 1250))
    xz = tmp_path / "plain.xml.xz"
    xz.write_bytes(lzma.compress(xml.read_bytes()))
    assert [r["page_id"] for r in read_all(xz)] == list(range(1000, 1250))


def test_corrupt_stream_rejects_only_its_pages(ms250, tmp_path):
    dump, index = ms250
    offsets = sorted({int(x.split(":")[0]) for x in bz2.decompress(index.read_bytes()).decode().splitlines()})
    raw = bytearray(dump.read_bytes())
    mid = (offsets[1] + offsets[2]) // 2  # inside the second stream of pages
    raw[mid:mid + 64] = bytes(64)
    bad = tmp_path / "bad-multistream.xml.bz2"
    bad.write_bytes(bytes(raw))
    shutil.copy(index, index_path_for(bad))
    rows = read_all(bad)
    kept = [r["page_id"] for r in rows if r["reject"] is None]
    lost = [r["page_id"] for r in rows if r["reject"] == "corrupt_stream"]
    assert kept == list(range(1000, 1100)) + list(range(1200, 1250))
    assert lost == list(range(1100, 1200))  # ids come from the index
    # without the index: the reader skips to the next stream and counts the loss
    index_path_for(bad).unlink()
    rows = read_all(bad)
    assert [r["page_id"] for r in rows if r["reject"] is None] == kept
    assert 1 <= sum(r["reject"] == "corrupt_stream" for r in rows) <= 100


def test_stream_decoder_checks_every_stream(ms250):
    """Whole streams give bz2's bytes; damage in any stream (not only the first, which
    bz2.decompress would ignore) raises one of STREAM_ERRORS."""
    raw = ms250[0].read_bytes()
    assert dumps.decompress_streams(raw) == bz2.decompress(raw)  # all streams, concatenated
    assert dumps.decompress_streams(b"") == b""
    assert dumps.decompress_streams(raw + bytes(512)) == bz2.decompress(raw)  # zero padding
    for damaged in (raw[: len(raw) // 2], raw[:5000] + bytes(64) + raw[5064:], b"BZh9 not bz2"):
        with pytest.raises(dumps.STREAM_ERRORS):
            dumps.decompress_streams(damaged)


def test_cut_off_dump_keeps_complete_pages(ms250, tmp_path):
    xml = bz2.decompress(ms250[0].read_bytes())
    cut = xml[: xml.index(b"<page>", len(xml) // 2) + 3000]
    for path, data in ((tmp_path / "cut.xml", cut), (tmp_path / "cut.xml.bz2", bz2.compress(cut))):
        path.write_bytes(data)
        rows = read_all(path)
        assert sum(r["reject"] is None for r in rows) == cut.count(b"</page>")
        assert [r["reject"] for r in rows if r["reject"]] == ["truncated"]
        assert rows[-1]["page_id"] is not None  # the salvaged id of the cut page


@pytest.mark.shared
@pytest.mark.parametrize("lang", SIX)
def test_real_truncated_xz_samples(shared_data, lang):
    path = shared_data / "wikipedia" / f"{lang}wiki-truncated-100k.xml.xz"
    rows = read_all(path, lang)
    complete = lzma.decompress(path.read_bytes()).count(b"</page>")
    assert sum(r["reject"] is None for r in rows) == complete > 200
    assert [r["reject"] for r in rows if r["reject"]] == ["truncated"]


@pytest.mark.shared
def test_real_utf16_bulgarian(shared_data):
    path = shared_data / "wikipedia" / "bgwiki-latest-pages-articles-shortened.xml.bz2"
    info = dumps.dump_info(str(path))
    assert info["encoding"].startswith("utf-16")
    rows = read_all(path, "bg")
    assert len(rows) == 3 and all(r["reject"] is None for r in rows)
    assert any("Григорианск" in r["title"] for r in rows)
    assert info["siteinfo"]["namespaces"][14] == "Категория"


def test_utf16_built_in_code(tmp_path):
    xml = bz2.decompress(sample_dump("bg").read_bytes()).decode("utf-8")
    for enc in ("utf-16", "utf-16-be"):
        p = tmp_path / f"bg-{enc}.xml"
        data = xml.encode(enc) if enc == "utf-16" else b"\xfe\xff" + xml.encode(enc)
        p.write_bytes(data)
        rows = read_all(p, "bg")
        assert [r["title"] for r in rows] == [r["title"] for r in read_all(sample_dump("bg"), "bg")]


def test_empty_file_has_no_partitions(tmp_path):
    empty = tmp_path / "empty.xml.bz2"
    empty.write_bytes(b"")
    assert dumps.plan_dump(str(empty), "xx") == []
    blank = tmp_path / "blank.xml.bz2"
    blank.write_bytes(bz2.compress(b"\n"))
    assert dumps.plan_dump(str(blank), "xx") == []


def test_not_a_dump_is_a_clear_error(tmp_path):
    for name, data in (("notes.xml", b"hello world, not xml"),
                       ("table.xml.bz2", bz2.compress(b"a,b,c\n1,2,3\n")),
                       ("broken.bz2", b"BZh91AY&SY garbage")):
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(NotADumpError, match=name):
            dumps.plan_dump(str(p), "xx")
    with pytest.raises(DumpNotFoundError, match="missing.xml"):
        dumps.plan_dump(str(tmp_path / "missing.xml"), "xx")


def test_samples_bundled():
    assert sample_langs() == ["bg", "bn", "el", "en", "hy", "ja", "uk", "vi"]
    total = 0
    for lang in sample_langs():
        assert sample_index(lang).is_file()
        info = dumps.dump_info(str(sample_dump(lang)))
        assert info["index"] and info["siteinfo"]["namespaces"].get(14)
        rows = read_all(sample_dump(lang), lang)
        assert rows and all(r["reject"] is None for r in rows)
        assert sum(r["namespace"] == 0 and not r["is_redirect"] for r in rows) >= 1
        total += sample_dump(lang).stat().st_size
    assert total < 3_000_000
    bn = dumps.dump_info(str(sample_dump("bn")))["siteinfo"]["namespaces"]
    assert bn[14] == "বিষয়শ্রেণী"


def test_parse_error_is_a_counted_reject():
    good = b"<page><title>A</title><ns>0</ns><id>1</id><revision><id>2</id><text>x</text></revision></page>"
    bad = b"<page><title>B</title><ns>0</ns><id>3</id><revision><text>a <b </text></revision></page>"
    rows = xmlpages.parse_pages(good + bad + good.replace(b">1<", b">4<"))
    assert [(r["page_id"], r["reject"]) for r in rows] == [(1, None), (3, "parse_error"), (4, None)]


def test_oversized_page_keeps_length_drops_text():
    text = "é" * 600
    page = (f"<page><title>A</title><ns>0</ns><id>1</id><revision><id>2</id><text>{text}</text>"
            "</revision></page>").encode()
    (row,) = xmlpages.parse_pages(page, max_bytes=1000)
    assert row["wikitext"] is None and row["wikitext_len"] == 1200 and row["reject"] is None


def test_write_multistream_escapes_and_flags(tmp_path):
    pages = [{"page_id": 1, "title": "A & B <c>", "ns": 0, "text": "x < y && \"z\" [[L]]", "rev_id": 9},
             {"page_id": 2, "title": "Redir", "ns": 0, "text": "#REDIRECT [[A & B <c>]]",
              "redirect": "A & B <c>"},
             {"page_id": 3, "title": "Category:Cats", "ns": 14, "text": ""}]
    dump, index = write_multistream(pages, tmp_path / "tiny.xml.bz2", lang="de",
                                    siteinfo={"namespaces": {0: "", 14: "Kategorie"}})
    assert index.name == "tiny-index.txt.bz2"
    assert bz2.decompress(index.read_bytes()).decode().splitlines()[0].endswith(":1:A & B <c>")
    rows = read_all(dump, "de")
    assert [(r["page_id"], r["title"], r["namespace"], r["is_redirect"], r["rev_id"]) for r in rows] == [
        (1, "A & B <c>", 0, False, 9), (2, "Redir", 0, True, 2), (3, "Category:Cats", 14, False, 3)]
    assert rows[0]["wikitext"] == pages[0]["text"] and rows[2]["wikitext"] == ""
    assert dumps.dump_info(str(dump))["siteinfo"]["namespaces"][14] == "Kategorie"


def test_index_names_of_wikimedia_dumps():
    assert index_path_for("/d/enwiki-20240601-pages-articles-multistream.xml.bz2").name == \
        "enwiki-20240601-pages-articles-multistream-index.txt.bz2"
    assert index_path_for("enwiki-20240601-pages-articles-multistream3.xml-p151574p311329.bz2").name == \
        "enwiki-20240601-pages-articles-multistream-index3.txt-p151574p311329.bz2"
