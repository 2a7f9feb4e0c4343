"""Damaged and odd dumps (issue #14): every complete page before the damage is kept and the
rest counted as pages, for bz2, gz and xz; a wrong index is noticed and not used; the dump's
siteinfo must name the configured language."""

from __future__ import annotations

import bz2
import gzip
import lzma
import shutil
import zlib
from pathlib import Path

import pytest
from test_dumps import read_all, real_pages

from factroots.errors import ShardError
from factroots.text import dumps
from factroots.text.multistream import index_path_for, write_multistream
from factroots.text.samples import sample_dump


def _xml() -> bytes:
    return bz2.decompress(sample_dump("en").read_bytes())


def _oracle(data: bytes, dec) -> bytes:  # type: ignore[no-untyped-def]
    """What a decoder gives fed one byte at a time, up to its first error (independent of the
    reader's chunking)."""
    out = []
    for i in range(len(data)):
        try:
            out.append(dec.decompress(data[i:i + 1]))
        except (OSError, EOFError, zlib.error, lzma.LZMAError):
            break
        if getattr(dec, "eof", False):
            break
    return b"".join(out)


def _complete_ids(xml: bytes) -> list[int]:
    rows = [r for r in read_all_bytes(xml) if r["reject"] is None]
    return [r["page_id"] for r in rows]


def read_all_bytes(xml: bytes) -> list[dict]:
    from factroots.text import xmlpages

    sp = xmlpages.PageSplitter()
    run = sp.feed(xml)
    return xmlpages.parse_pages(run) if run else []


def _flip(data: bytes, at: int) -> bytes:
    b = bytearray(data)
    b[at:at + 8] = bytes(x ^ 0x5A for x in b[at:at + 8])
    return bytes(b)


@pytest.mark.parametrize("codec", ["bz2", "gz", "xz"])
def test_damage_keeps_every_complete_page_before_it(tmp_path: Path, codec: str) -> None:
    xml = _xml()
    total = xml.count(b"<page>")
    packed = {"bz2": lambda x: bz2.compress(x, 1), "gz": gzip.compress, "xz": lzma.compress}[codec](xml)
    bad = _flip(packed, int(len(packed) * 0.6))
    path = tmp_path / f"enwiki-damaged.xml.{codec}"
    path.write_bytes(bad)
    dec = {"bz2": bz2.BZ2Decompressor(), "gz": zlib.decompressobj(wbits=31),
           "xz": lzma.LZMADecompressor()}[codec]
    before = _complete_ids(_oracle(bad, dec))
    rows = read_all(path, "en")
    kept = [r["page_id"] for r in rows if r["reject"] is None]
    assert len(before) > total // 3  # the damage is well inside: many pages precede it
    assert kept[: len(before)] == before and len(kept) >= len(before)
    assert kept == _complete_ids(xml)[: len(kept)] or codec != "bz2"  # bz2: CRC-checked text
    rejects = [r for r in rows if r["reject"]]
    assert rejects and {r["reject"] for r in rejects} <= {"corrupt_stream", "truncated"}


@pytest.mark.parametrize("codec", ["gz", "xz", "bz2"])
def test_cut_off_file_keeps_its_complete_pages(tmp_path: Path, codec: str) -> None:
    xml = _xml()
    packed = {"bz2": lambda x: bz2.compress(x, 1), "gz": gzip.compress, "xz": lzma.compress}[codec](xml)
    cut = packed[: int(len(packed) * 0.7)]
    path = tmp_path / f"enwiki-cut.xml.{codec}"
    path.write_bytes(cut)
    dec = {"bz2": bz2.BZ2Decompressor(), "gz": zlib.decompressobj(wbits=31),
           "xz": lzma.LZMADecompressor()}[codec]
    readable = _oracle(cut, dec)
    rows = read_all(path, "en")
    kept = [r["page_id"] for r in rows if r["reject"] is None]
    assert kept == _complete_ids(readable) and len(kept) > 10
    assert [r["reject"] for r in rows if r["reject"]] == ["truncated"]  # the page cut off


def test_damaged_stream_keeps_its_pages_before_the_damage(tmp_path: Path) -> None:
    # one stream of 250 pages in 100 kB blocks: damage in a later block of the stream
    dump, index = write_multistream(real_pages(250), tmp_path / "xxwiki-multistream.xml.bz2",
                                    lang="xx", pages_per_stream=250, compresslevel=1)
    raw = dump.read_bytes()
    bad = _flip(raw, int(len(raw) * 0.7))
    dump.write_bytes(bad)
    rows = read_all(dump)
    kept = [r["page_id"] for r in rows if r["reject"] is None]
    lost = [r["page_id"] for r in rows if r["reject"] == "corrupt_stream"]
    assert 50 < len(kept) < 250 and kept == list(range(1000, 1000 + len(kept)))
    assert lost == list(range(1000 + len(kept), 1250))  # ids of the rest from the index
    assert len(rows) == 250  # pages_in counts pages


def test_bz2_without_index_resyncs_and_counts_pages(tmp_path: Path) -> None:
    dump, index = write_multistream(real_pages(250), tmp_path / "xxwiki-multistream.xml.bz2",
                                    lang="xx", pages_per_stream=20)
    index.unlink()
    offsets = _stream_offsets(dump)
    raw = _flip(dump.read_bytes(), (offsets[3] + offsets[4]) // 2)  # inside the 3rd stream of pages
    dump.write_bytes(raw)
    rows = read_all(dump)
    kept = [r["page_id"] for r in rows if r["reject"] is None]
    assert kept == list(range(1000, 1040)) + list(range(1060, 1250))
    assert 1 <= sum(r["reject"] == "corrupt_stream" for r in rows) <= 20


def _stream_offsets(dump: Path) -> list[int]:
    raw, pos, out = dump.read_bytes(), 0, []
    while pos < len(raw):
        out.append(pos)
        d = bz2.BZ2Decompressor()
        d.decompress(raw[pos:])
        pos = len(raw) - len(d.unused_data)
    return out


def test_page_tail_after_resync_is_counted() -> None:
    from factroots.text import xmlpages

    sp = xmlpages.PageSplitter()
    sp.resynced = True
    run = sp.feed(b"lost text</text></revision></page>\n<page><title>A</title><ns>0</ns>"
                  b"<id>7</id><revision><id>1</id><text>x</text></revision></page>")
    assert [r["page_id"] for r in xmlpages.parse_pages(run)] == [7]
    assert [r["reject"] for r in sp.pending_rejects] == ["corrupt_stream"]


# ---- index validation -------------------------------------------------------------------------

@pytest.fixture()
def two_dumps(tmp_path: Path) -> tuple[Path, Path]:
    a, _ = write_multistream(real_pages(120), tmp_path / "a" / "xxwiki-multistream.xml.bz2",
                             lang="xx", pages_per_stream=30)
    pages = [dict(p, page_id=p["page_id"] + 5000) for p in real_pages(90)]
    b, _ = write_multistream(pages, tmp_path / "b" / "xxwiki-multistream.xml.bz2", lang="xx",
                             pages_per_stream=45)
    return a, b


def test_a_right_index_is_used(two_dumps) -> None:
    a, _ = two_dumps
    plan = dumps.plan_dump(str(a), "xx")
    assert plan[0]["kind"] == "multistream" and plan[0]["index"]


def test_another_dumps_index_is_not_used(two_dumps, caplog) -> None:
    a, b = two_dumps
    shutil.copy(index_path_for(b), index_path_for(a))
    plan = dumps.plan_dump(str(a), "xx")
    assert [p["kind"] for p in plan] == ["stream"] and plan[0]["index"] is None
    assert "not used" in caplog.text
    assert [r["page_id"] for r in read_all(a)] == list(range(1000, 1120))


def test_shifted_offsets_are_not_used(two_dumps, caplog) -> None:
    a, _ = two_dumps
    idx = index_path_for(a)
    lines = bz2.decompress(idx.read_bytes()).decode().splitlines()
    shifted = [f"{int(x.split(':', 1)[0]) + 3}:{x.split(':', 1)[1]}" for x in lines]
    idx.write_bytes(bz2.compress(("\n".join(shifted) + "\n").encode()))
    plan = dumps.plan_dump(str(a), "xx")
    assert plan[0]["kind"] == "stream" and "no bz2 stream starts at offset" in caplog.text
    assert [r["page_id"] for r in read_all(a)] == list(range(1000, 1120))


def test_index_with_swapped_titles_is_not_used(two_dumps, caplog) -> None:
    a, _ = two_dumps
    idx = index_path_for(a)
    lines = bz2.decompress(idx.read_bytes()).decode().splitlines()
    lines[0], lines[1] = (f"{lines[0].rsplit(':', 1)[0]}:{lines[1].rsplit(':', 1)[1]}",
                          f"{lines[1].rsplit(':', 1)[0]}:{lines[0].rsplit(':', 1)[1]}")
    idx.write_bytes(bz2.compress(("\n".join(lines) + "\n").encode()))
    assert dumps.plan_dump(str(a), "xx")[0]["kind"] == "stream"
    assert "the index lists" in caplog.text


def test_damage_in_a_sampled_stream_is_not_a_wrong_index(two_dumps) -> None:
    a, _ = two_dumps
    offsets = _stream_offsets(a)
    raw = bytearray(a.read_bytes())
    raw[offsets[1] + 10] ^= 0xFF  # the first stream of pages: its block CRC
    a.write_bytes(bytes(raw))
    plan = dumps.plan_dump(str(a), "xx")
    assert plan[0]["kind"] == "multistream"
    rows = read_all(a)
    assert [r["page_id"] for r in rows if r["reject"]] == list(range(1000, 1030))


# ---- siteinfo ---------------------------------------------------------------------------------

@pytest.mark.parametrize("lang", ["bg", "en", "ja", "vi"])
def test_bundled_samples_name_their_language(lang: str) -> None:
    dumps.check_language(str(sample_dump(lang)), lang)
    with pytest.raises(ShardError, match="trace.allow_lang_mismatch"):
        dumps.check_language(str(sample_dump(lang)), "uk")


def test_site_language_from_dbname_or_base() -> None:
    assert dumps.site_language({"dbname": "zh_yuewiki"}) == "zh-yue"
    assert dumps.site_language({"dbname": "enwiktionary"}) == "en"
    assert dumps.site_language({"dbname": None, "base": "https://bg.wikipedia.org/wiki/X"}) == "bg"
    assert dumps.site_language({"dbname": None, "base": None}) is None


@pytest.mark.shared
def test_real_bulgarian_dump_listed_as_english(shared_data: Path) -> None:
    path = shared_data / "wikipedia" / "bgwiki-latest-pages-articles-shortened.xml.bz2"
    with pytest.raises(ShardError, match=r"bgwiki \(language bg\)"):
        dumps.check_language(str(path), "en")
    dumps.check_language(str(path), "bg")
