"""The trace's failures on the runner: a language whose dump is missing, not a dump, or has a
damaged index fails alone, the others finish, the run ends non-zero, and no later stage reads
that language's older tables."""

from __future__ import annotations

import bz2
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from label_data import facts, table, write  # noqa: E402 - the unit tier's table builders

from factroots import runner, storage
from factroots.config import load_config
from factroots.errors import RunFailedError
from factroots.label import job as label_job
from factroots.text.multistream import write_multistream
from factroots.trace import job

pytestmark = pytest.mark.spark


def _cfg(out: Path, dumps: dict, langs: list[str]):  # type: ignore[no-untyped-def]
    return load_config(None, {"out": str(out), "langs": langs, "probe.model": "none",
                              "trace": {"dumps": dumps, "window": "sentence"}})


def _facts(out: Path, langs: list[str]) -> None:
    write(out, "facts", facts([(lg, f"{lg}1", "P36", "Kyiv", "Ukraine") for lg in langs]))


def _older_trace(out: Path, lang: str) -> None:
    """What an earlier run left: a finished cooccurrence saying the fact is present."""
    write(out, "cooccurrence", table("cooccurrence", [{"lang": lang, "uuid": f"{lang}1",
                                                       "present": True, "cooc_sentence": 3}]))


def _dump(path: Path, lang: str) -> Path:
    pages = [{"page_id": i, "title": f"Page {i}", "ns": 0, "rev_id": i, "redirect": None,
              "text": "Kyiv is the capital of Ukraine. It is big."} for i in range(1, 6)]
    dump, _ = write_multistream(pages, path / f"{lang}wiki-test-pages-articles-multistream.xml.bz2",
                                lang=lang, pages_per_stream=2)
    return dump


def test_an_html_file_as_dump_fails_its_language_and_label_does_not_use_older_tables(
        tmp_path: Path) -> None:
    html = tmp_path / "enwiki-latest-pages-articles.xml"
    html.write_text("<!DOCTYPE html><html><body>Not Found</body></html>\n", "utf-8")
    _facts(tmp_path, ["en"])
    _older_trace(tmp_path, "en")
    cfg = _cfg(tmp_path, {"en": [str(html)]}, ["en"])
    with pytest.raises(RunFailedError, match="cooccurrence/en"):
        job.run(None, cfg)  # no language reaches Spark
    assert storage.done_langs(tmp_path, "cooccurrence") == []  # the older table is unmarked
    report = json.loads((tmp_path / runner.REPORT).read_text())
    assert report["stages"]["trace"]["langs"] == {"en": "failed"}
    label_job.run(cfg)
    status = storage.read_table(tmp_path, "status").to_pylist()
    assert [r["missing"] for r in status] == ["not_traced;not_probed"]


def test_a_missing_dump_for_the_only_language_fails_the_run(tmp_path: Path) -> None:
    _facts(tmp_path, ["en"])
    with pytest.raises(RunFailedError, match="no dump for language en") as exc:
        job.run(None, _cfg(tmp_path, {}, ["en"]))
    assert "trace.dumps.en" in str(exc.value)


def test_one_garbage_index_line_reads_that_dump_without_its_index(tmp_path: Path, spark) -> None:  # type: ignore[no-untyped-def]
    good, bad = _dump(tmp_path / "d", "en"), _dump(tmp_path / "d", "uk")
    idx = Path(str(bad).replace(".xml.bz2", "-index.txt.bz2"))
    lines = bz2.decompress(idx.read_bytes()).decode().splitlines()
    idx.write_bytes(bz2.compress(("\n".join([lines[0], "garbage!", *lines[1:]]) + "\n").encode()))
    _facts(tmp_path, ["en", "uk"])
    _older_trace(tmp_path, "uk")
    cfg = _cfg(tmp_path, {"en": [str(good)], "uk": [str(bad)]}, ["en", "uk"])
    job.run(spark, cfg)  # the index is not trusted (logged): the stream is read without it
    assert storage.done_langs(tmp_path, "cooccurrence") == ["en", "uk"]
    for lang in ("en", "uk"):
        row = storage.read_table(tmp_path, "cooccurrence", [lang]).to_pylist()[0]
        assert row["present"] and row["cooc_sentence"] == 5, lang  # not the older table's 3
    # the repaired index (a new fingerprint) is traced again on the rerun; en is skipped
    idx.write_bytes(bz2.compress(("\n".join(lines) + "\n").encode()))
    job.run(spark, cfg)
    langs = json.loads((tmp_path / runner.REPORT).read_text())["stages"]["trace"]["langs"]
    assert langs == {"en": "skipped", "uk": "done"}
