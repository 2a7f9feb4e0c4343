"""The fused trace (mentions and co-occurrence in the pass that makes the sentences) against the
DataFrame reference path (``trace.job._mentions_and_cooccurrence``: mentions through the JVM,
chunks of every sentence, a shuffle of the mentions), row by row, on the bundled real samples
against their real mLAMA facts, with the mentions table (and one more language, zh, whose dump
is empty: no mention at all, schema-correct partitions whose counters say why) and without."""

from __future__ import annotations

import bz2
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from factroots import storage
from factroots.config import load_config
from factroots.text.samples import sample_dump, sample_langs

pytestmark = pytest.mark.spark

# small chunks and a low cap, so that chunk windows, cuts inside sentences and the cap all
# occur; hy matched with a left boundary only (prefix mentions), ja as substrings
TRACE = {"window": "chunk", "chunk_size": 48, "max_mentions_per_sentence": 4, "evidence_k": 3,
         "left_boundary_langs": ["hy"], "write_mentions": True}


def _tokenizer(path: Path) -> Path:
    """A small WordPiece tokenizer trained in code on the English sample's text."""
    from tokenizers import BertWordPieceTokenizer

    with bz2.open(sample_dump("en"), "rt", encoding="utf-8") as f:
        text = f.read(1_000_000).split("\n")
    tok = BertWordPieceTokenizer(lowercase=False)
    tok.train_from_iterator(text, vocab_size=2000, show_progress=False)
    tok.save(str(path))
    return path


def _conf(out: Path, langs: list[str], dumps: dict, tok: Path, **trace) -> dict:
    return {"out": str(out), "langs": langs, "probe": {"model": "none"},
            "trace": {"dumps": dumps, "chunk_tokenizer": str(tok), **TRACE, **trace}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, spark) -> dict:
    from factroots.facts import job as facts_job
    from factroots.trace import job

    d = tmp_path_factory.mktemp("trace_fused")
    langs = sample_langs()
    facts_job.run(load_config(None, {"out": str(d / "facts"), "langs": langs + ["zh"]}))
    tok = _tokenizer(d / "tok.json")
    dumps = {lg: [str(sample_dump(lg))] for lg in langs}
    empty = d / "zhwiki-empty.xml"  # zh: facts and names, but an empty dump
    empty.write_text("", encoding="utf-8")
    for name, more, mentions in (("out", {"zh": [str(empty)]}, True), ("out2", {}, False)):
        shutil.copytree(d / "facts" / "facts", d / name / "facts")
        cfg = load_config(None, _conf(d / name, langs + list(more), {**dumps, **more}, tok,
                                      write_mentions=mentions))
        job.run(spark, cfg)
    # the reference: a copy of the fused run's facts, pages and sentences resumes after them
    # by the DataFrame path (the runner sees pages and sentences done, the rest pending)
    ref = d / "ref"
    for t in ("facts", "pages", "sentences"):
        shutil.copytree(d / "out" / t, ref / t)
    stamps = {p: p.stat().st_mtime_ns for p in (ref / "sentences").rglob("*.parquet")}
    job.run(spark, load_config(None, _conf(ref, langs, dumps, tok, write_mentions=True)))
    assert stamps and all(p.stat().st_mtime_ns == m for p, m in stamps.items())  # not re-read
    return {"out": d / "out", "ref": ref, "out2": d / "out2", "langs": langs}


def _sorted(t: pa.Table, keys: list[str]) -> pa.Table:
    return t.sort_by([(k, "ascending") for k in keys])


def test_mentions_identical_to_the_reference(runs: dict) -> None:
    keys = ["lang", "sentence_id", "uri", "role", "start"]
    got = _sorted(storage.read_table(runs["out"], "mentions", runs["langs"]), keys)
    ref = _sorted(storage.read_table(runs["ref"], "mentions"), keys)
    assert got.num_rows == ref.num_rows > 1000
    assert got.equals(ref)
    strict = set(got["strictness"].to_pylist())
    assert {"word", "prefix", "substring"} <= strict  # all three matching modes ran
    for lang in runs["langs"]:
        assert storage.read_stats(runs["out"], "mentions", lang) == \
            storage.read_stats(runs["ref"], "mentions", lang)


@pytest.mark.parametrize("run", ["out", "out2"])  # with and without the mentions table
def test_cooccurrence_identical_to_the_reference(runs: dict, run: str) -> None:
    got = _sorted(storage.read_table(runs[run], "cooccurrence", runs["langs"]), ["lang", "uuid"])
    ref = _sorted(storage.read_table(runs["ref"], "cooccurrence"), ["lang", "uuid"])
    assert got.num_rows == ref.num_rows
    for name in ref.column_names:  # column by column: a failure names the column
        assert got[name].equals(ref[name]), name
    rows = got.to_pylist()
    assert sum(r["present"] for r in rows) > 50
    # chunk windows that are neither sentence nor document ones, evidence at its cap
    assert any(0 < r["cooc_chunk"] < r["cooc_document"] for r in rows)
    assert any(r["cooc_sentence"] < r["cooc_chunk"] for r in rows)
    assert any(len(r["evidence"]) == 3 for r in rows)


@pytest.mark.parametrize("run", ["out", "out2"])
def test_cooccurrence_stats_hold_the_reference_counters(runs: dict, run: str) -> None:
    over = 0
    for lang in runs["langs"]:
        got = storage.read_stats(runs[run], "cooccurrence", lang)
        ref = storage.read_stats(runs["ref"], "cooccurrence", lang)
        assert {k: got[k] for k in ref} == ref
        assert got["mentions"] == sum(v for k, v in got.items()
                                      if k in ("mentions_word", "mentions_prefix",
                                               "mentions_substring"))
        assert got["sentences"] == storage.read_stats(runs[run], "sentences", lang)["sentences"]
        assert got["sentences_chunked"] <= got["sentences"]
        over += got["mentions_over_cap"]
    assert over > 0  # the cap was reached


def test_no_mentions_table_unless_asked(runs: dict) -> None:
    assert not (runs["out2"] / "mentions").exists()
    assert storage.is_done(runs["out2"], "cooccurrence", "en")


def test_an_empty_dump_gives_empty_partitions_and_says_why(runs: dict) -> None:
    out = runs["out"]
    for table in ("pages", "sentences", "mentions", "cooccurrence"):
        assert storage.is_done(out, table, "zh"), table
    assert storage.read_table(out, "mentions", ["zh"]).num_rows == 0
    assert storage.read_table(out, "sentences", ["zh"]).num_rows == 0
    zh = storage.read_table(out, "cooccurrence", ["zh"])
    assert zh.num_rows > 0 and not any(zh["present"].to_pylist())
    assert set(zh["sub_mentions"].to_pylist()) == {0}
    st = storage.read_stats(out, "cooccurrence", "zh")
    assert st["in"] == st["out"] == zh.num_rows
    assert (st["sentences"], st["mentions"], st["present"]) == (0, 0, 0)
    assert st["names"] > 0  # names there were; text there was not
    assert storage.read_stats(out, "mentions", "zh")["names_out"] == st["names"]
