"""pages and sentences on Spark from real dumps: bundled samples, a corrupt stream, a cut-off
dump, an empty file, by the DataFrame path and by write_dumps; the six truncated and the UTF-16
dumps of ../shared when present."""

from __future__ import annotations

import bz2
import dataclasses
import lzma
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from factroots import tables
from factroots.config import RunConfig, TraceConfig
from factroots.errors import NotADumpError
from factroots.text.multistream import write_multistream
from factroots.text.samples import sample_dump, sample_langs

pytestmark = pytest.mark.spark


def _pages(n: int) -> list[dict]:
    from factroots.text import dumps
    src = [r for p in dumps.plan_dump(str(sample_dump("uk")), "uk") for rs in dumps.read_partition(p)
           for r in rs if r["wikitext"]]
    src = sorted(src, key=lambda r: len(r["wikitext"]))[:10]  # short whole real pages
    return [{"page_id": 500 + i, "title": f"T{i}", "ns": 0, "rev_id": i,
             "text": src[i % len(src)]["wikitext"]} for i in range(n)]


def _balanced(stats: dict) -> bool:
    return stats["in"] == stats["out"] + sum(v for k, v in stats.items() if k.startswith("rejected_"))


def _check_schema(df, name: str) -> None:
    arrow = df.toArrow()
    tables.check(name, tables.conform(name, arrow))
    assert arrow.column_names == tables.spec(name).names


def _sorted(t, key: str):
    return t.sort_by([("lang", "ascending"), (key, "ascending")]).combine_chunks()


def _write_dumps(spark, dumps: dict, cfg, root: Path, plan: dict[int, str]) -> dict:
    """write_dumps into fresh folders under root: its stats, each file's table and both tables
    read back (lang added from the folder name) in key order, after checking the layout."""
    from factroots.trace.dump_source import write_dumps

    dirs = {t: root / t for t in ("pages", "sentences")}
    stats = write_dumps(spark, dumps, cfg, dirs["pages"], dirs["sentences"])
    assert set(stats) == set(dirs)
    files: dict[str, pa.Table] = {}
    out = {"stats": stats, "files": files}
    for name, d in dirs.items():
        assert not (d / "_inflight").exists()
        parts = []
        for lang_dir in sorted(d.iterdir()):
            lang = lang_dir.name.removeprefix("lang=")
            assert lang_dir.name == f"lang={lang}" and lang in dumps, lang_dir
            for f in sorted(lang_dir.iterdir()):
                m = re.fullmatch(r"part-(\d{5})\.parquet", f.name)
                assert m and plan[int(m.group(1))] == lang, f  # named after its byte range
                tables.check_stored(name, pq.read_schema(f))
                t = pq.ParquetFile(f).read()
                assert t.num_rows
                files[f"{name}/{lang_dir.name}/{f.name}"] = t
                parts.append(t.append_column("lang", pa.array([lang] * t.num_rows, pa.string())))
        out[name] = _sorted(tables.conform(name, pa.concat_tables(parts)), tables.spec(name).key[-1])
    assert {k.split("/")[1][5:] for k in files} == set(stats["pages"])
    return out


def test_pages_and_sentences(spark, tmp_path):
    from factroots.trace.dump_source import plan_dumps, read_dumps
    from factroots.trace.pages import build_pages, page_stats
    from factroots.trace.sentences import clean_pages, sentence_stats, sentences_of

    bad, index = write_multistream(_pages(250), tmp_path / "xxwiki-multistream.xml.bz2", lang="xx")
    raw_bytes = bytearray(bad.read_bytes())
    offsets = sorted({int(x.split(":")[0]) for x in bz2.decompress(index.read_bytes()).decode().splitlines()})
    mid = (offsets[1] + offsets[2]) // 2
    raw_bytes[mid:mid + 64] = bytes(64)
    bad.write_bytes(bytes(raw_bytes))
    xml = bz2.decompress(sample_dump("el").read_bytes())
    cut = tmp_path / "zzwiki-cut.xml"
    cut.write_bytes(xml[: xml.rindex(b"<page>") + 500])
    empty = tmp_path / "empty.xml.bz2"
    empty.write_bytes(b"")
    dumps = {lang: [str(sample_dump(lang))] for lang in sample_langs()}
    dumps.update(xx=[str(bad), str(empty)], zz=[str(cut)])
    # zz holds the Greek sample: listed under another language on purpose
    cfg = RunConfig(trace=dataclasses.replace(TraceConfig(), partitions_per_file=3,
                                              allow_lang_mismatch=True))

    raw = read_dumps(spark, dumps, cfg).cache()
    assert raw.rdd.getNumPartitions() >= len(sample_langs()) + 3 + 1  # xx: 3 byte ranges
    pstats = page_stats(raw)
    assert set(pstats) == set(sample_langs()) | {"xx", "zz"}
    assert all(_balanced(s) for s in pstats.values()), pstats
    assert pstats["xx"]["rejected_corrupt_stream"] == 100 and pstats["xx"]["out"] == 150
    assert pstats["zz"]["rejected_truncated"] == 1 and pstats["zz"]["out"] == xml.count(b"</page>") - 1
    pages = build_pages(raw)
    _check_schema(pages, "pages")
    assert pages.where("lang = 'en'").count() == pstats["en"]["out"]

    clean = clean_pages(raw, cfg).cache()
    sstats = sentence_stats(clean)
    assert all(_balanced(s) for s in sstats.values()), sstats
    assert all(sstats[lang]["sentences"] > 50 for lang in sample_langs())
    sents = sentences_of(clean)
    _check_schema(sents, "sentences")
    rows = sents.orderBy("lang", "sentence_id").collect()
    assert len({(r.lang, r.sentence_id) for r in rows}) == len(rows)
    pos: dict = {}
    for r in rows:  # ids are page_id * 1e6 + position, positions follow (para_idx, sent_idx)
        k = (r.lang, r.page_id)
        assert r.sentence_id == r.page_id * 1_000_000 + pos.get(k, 0)
        pos[k] = pos.get(k, 0) + 1
    some = {k: dumps[k] for k in ("bg", "xx", "zz")}
    again = sentences_of(clean_pages(read_dumps(spark, some, cfg), cfg)).orderBy("lang", "sentence_id")
    assert again.collect() == [r for r in rows if r.lang in some]  # a rerun: identical output
    # the job's path: the tasks write both tables themselves, same rows and stats (two runs)
    plan = {p["part"]: p["lang"] for p in plan_dumps(some, cfg)}
    first = _write_dumps(spark, some, cfg, tmp_path / "run1", plan)
    assert first["stats"]["pages"] == {k: v for k, v in pstats.items() if k in some}
    assert first["stats"]["sentences"] == {k: v for k, v in sstats.items() if k in some}
    assert all(_balanced(s) for t in first["stats"].values() for s in t.values())
    want_pages = _sorted(tables.conform("pages", pages.where(pages.lang.isin(*some)).toArrow()),
                         "page_id")
    assert first["pages"].equals(want_pages)
    assert first["sentences"].equals(tables.conform("sentences", again.toArrow()))
    assert first["sentences"].num_rows == sum(sstats[k]["sentences"] for k in some)
    second = _write_dumps(spark, some, cfg, tmp_path / "run2", plan)
    assert second["files"].keys() == first["files"].keys()
    assert all(second["files"][f].equals(t) for f, t in first["files"].items())
    assert second["stats"] == first["stats"]
    raw.unpersist()
    clean.unpersist()


@pytest.mark.shared
def test_real_truncated_and_utf16_dumps(spark, shared_data, tmp_path):
    from factroots.trace.dump_source import read_dumps
    from factroots.trace.pages import page_stats

    wiki = shared_data / "wikipedia"
    six = ("bn", "el", "hy", "ja", "uk", "vi")
    dumps = {lang: [str(wiki / f"{lang}wiki-truncated-100k.xml.xz")] for lang in six}
    dumps["bg"] = [str(wiki / "bgwiki-latest-pages-articles-shortened.xml.bz2")]
    stats = page_stats(read_dumps(spark, dumps, RunConfig()))
    for lang in six:
        complete = lzma.decompress((wiki / f"{lang}wiki-truncated-100k.xml.xz").read_bytes()).count(b"</page>")
        assert stats[lang]["out"] == complete and stats[lang]["rejected_truncated"] == 1
    assert stats["bg"] == {**stats["bg"], "in": 3, "out": 3, "articles": 1}
    notdump = tmp_path / "README.txt"
    shutil.copy(shared_data / "README.md", notdump)
    with pytest.raises(NotADumpError, match="README.txt"):
        read_dumps(spark, {"en": [str(notdump)]}, RunConfig())
