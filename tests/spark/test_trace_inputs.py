"""The trace job on inputs that give no mentions at all (issue #14): an empty dump, a dump whose
every stream is corrupt, a dump without any fact name and a dump of another language. Each
language must finish with empty, schema-correct partitions and counters saying why, and a
rerun must finish too."""

from __future__ import annotations

import bz2
import json
from pathlib import Path

import pytest

from factroots import storage, tables
from factroots.config import load_config
from factroots.errors import RunFailedError
from factroots.text.multistream import write_multistream
from factroots.text.samples import sample_dump

pytestmark = pytest.mark.spark
LANGS = ["bg", "en", "uk", "vi"]


def _no_names_pages(n: int) -> list[dict]:
    text = "Zzyzx qwv plonk.\n\nBlorft snee vrok, glim dax trub."
    return [{"page_id": 10 + i, "title": f"Zzyzx {i}", "ns": 0, "text": text} for i in range(n)]


def _all_corrupt(path: Path) -> Path:
    dump, index = write_multistream(_no_names_pages(6), path, lang="uk", pages_per_stream=2)
    raw = bytearray(dump.read_bytes())
    offsets = sorted({int(x.split(":")[0]) for x in bz2.decompress(index.read_bytes()).decode().splitlines()})
    for off in offsets:  # the block CRC of every stream of pages, 4 bytes after its header
        raw[off + 10] ^= 0xFF
    dump.write_bytes(bytes(raw))
    return dump


@pytest.fixture(scope="module")
def traced(tmp_path_factory, spark) -> tuple[Path, Path]:
    from factroots.facts import job as facts_job
    from factroots.trace import job

    d = tmp_path_factory.mktemp("trace_inputs")
    out = d / "out"
    facts_job.run(load_config(None, {"out": str(out), "langs": LANGS}))
    empty = d / "enwiki-empty.xml.bz2"
    empty.write_bytes(b"")
    no_names, _ = write_multistream(_no_names_pages(5), d / "viwiki-x-multistream.xml.bz2",
                                    lang="vi")
    english, _ = write_multistream(_no_names_pages(3), d / "enwiki-x-multistream.xml.bz2",
                                   lang="en")
    conf = {"out": str(out), "langs": LANGS, "probe": {"model": "none"},
            "trace": {"dumps": {"en": [str(empty)], "uk": [str(_all_corrupt(d / "ukwiki-x.xml.bz2"))],
                                "vi": [str(no_names)], "bg": [str(english)]},
                      "allow_lang_mismatch": True, "window": "sentence",
                      "write_mentions": True}}
    cfg = load_config(None, conf)
    job.run(spark, cfg)
    first = json.loads((out / "run_report.json").read_text())["stages"]["trace"]["langs"]
    job.run(spark, cfg)  # the rerun finishes too: every language is done
    return out, first


def test_every_language_finishes_with_empty_partitions(traced) -> None:
    out, first = traced
    assert first == dict.fromkeys(LANGS, "done")
    second = json.loads((out / "run_report.json").read_text())["stages"]["trace"]["langs"]
    assert second == dict.fromkeys(LANGS, "skipped")
    for lang in LANGS:
        for table in ("pages", "sentences", "mentions", "cooccurrence"):
            assert storage.is_done(out, table, lang), (table, lang)
        t = storage.read_table(out, "mentions", [lang])
        assert t.num_rows == 0 and t.schema.names == tables.spec("mentions").schema.names
        co = storage.read_table(out, "cooccurrence", [lang])
        assert co.num_rows > 0 and not any(co["present"].to_pylist())


def test_counters_say_why(traced) -> None:
    out, _ = traced
    pages = {lg: storage.read_stats(out, "pages", lg) for lg in LANGS}
    ments = {lg: storage.read_stats(out, "mentions", lg) for lg in LANGS}
    cooc = {lg: storage.read_stats(out, "cooccurrence", lg) for lg in LANGS}
    assert pages["en"]["in"] == 0 and cooc["en"]["sentences"] == 0  # empty dump
    assert pages["uk"]["in"] == 6 == pages["uk"]["rejected_corrupt_stream"]  # pages, not streams
    assert cooc["uk"]["sentences"] == 0
    assert pages["vi"]["out"] == 5 and cooc["vi"]["sentences"] == 10 and cooc["vi"]["names"] > 0  # no fact name
    assert cooc["bg"]["sentences"] == 6  # an English dump listed as bg: no name
    for lang in LANGS:
        assert not any(k.startswith("mentions_") and v for k, v in ments[lang].items())
        assert storage.read_stats(out, "cooccurrence", lang)["present"] == 0


def test_wrong_language_is_an_error_with_the_fix(tmp_path, spark) -> None:
    from factroots.facts import job as facts_job
    from factroots.trace import job

    out = tmp_path / "out"
    facts_job.run(load_config(None, {"out": str(out), "langs": ["bg", "en"]}))
    cfg = load_config(None, {"out": str(out), "langs": ["bg", "en"], "probe": {"model": "none"},
                             "trace": {"dumps": {"bg": [str(sample_dump("en"))],
                                                 "en": [str(sample_dump("bg"))]}}})
    with pytest.raises(RunFailedError, match="trace.allow_lang_mismatch"):
        job.run(spark, cfg)
    report = json.loads((out / "run_report.json").read_text())
    assert report["stages"]["trace"]["langs"] == {"bg": "failed", "en": "failed"}
    errors = {f["lang"]: f["error"] for f in report["failed"]}
    assert "is enwiki (language en)" in errors["bg"]
    assert "trace.allow_lang_mismatch" in errors["bg"]
