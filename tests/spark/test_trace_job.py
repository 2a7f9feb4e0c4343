"""The trace job end to end with spark-submit (local mode) on the bundled real dump samples
against the real mLAMA facts of their languages; then a rerun in-process."""

from __future__ import annotations

import bz2
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from factroots import storage
from factroots.config import load_config
from factroots.errors import RunFailedError
from factroots.text.normalize import normalize
from factroots.text.samples import sample_dump
from factroots.trace.job import TABLES

pytestmark = pytest.mark.spark
ROOT = Path(__file__).resolve().parents[2]
# four of the bundled samples (bg: UTF-16 in its source dump); the benchmark runs all eight
TRACED = ["bg", "en", "hy", "uk"]

# Facts whose subject and object stand together in one sentence of the sample, found by
# grepping the decompressed samples: (lang, uuid, sub, obj, a fragment of the dump's text).
BY_HAND = [
    ("uk", "054ba9b2-5448-4d98-a91c-71be1a28873a", "Франція", "Париж", "(Париж, Франція)"),
    ("bg", "6b4bd104-0f49-4abd-9f06-0c8afa91a3cc", "Испания", "Франция", "Испания, Португалия"),
    ("en", "02dbd4ec-8015-4d29-aacd-79bd194cca6e", "Michel Onfray", "French",
     "French anarcho-hedonist philosopher Michel Onfray"),
    ("hy", "02311889-63cd-46af-a8b2-be9b4a0ed7d2", "Ադրբեջան", "Թուրքիա", "(Թուրքիա)"),
]


def _tokenizer(path: Path) -> Path:
    """A small WordPiece tokenizer trained in code on the English sample's text."""
    from tokenizers import BertWordPieceTokenizer

    with bz2.open(sample_dump("en"), "rt", encoding="utf-8") as f:
        text = f.read(2_000_000).split("\n")
    tok = BertWordPieceTokenizer(lowercase=False)
    tok.train_from_iterator(text, vocab_size=3000, show_progress=False)
    tok.save(str(path))
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, spark) -> Path:  # spark: the JVM check and PYSPARK_PYTHON
    d = tmp_path_factory.mktemp("trace_job")
    langs = TRACED + ["zh"]  # zh has facts but no dump: it fails alone, the run exits non-zero
    from factroots.facts import job as facts_job
    facts_job.run(load_config(None, {"out": str(d / "out"), "langs": langs}))
    conf = {"out": str(d / "out"), "langs": langs, "probe": {"model": "none"},
            "trace": {"dumps": {lg: [str(sample_dump(lg))] for lg in TRACED},
                      "window": "sentence", "chunk_tokenizer": str(_tokenizer(d / "tok.json")),
                      "write_mentions": True}}
    (d / "trace.yaml").write_text(yaml.safe_dump(conf), encoding="utf-8")
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    submit = shutil.which("spark-submit") or str(Path(sys.executable).parent / "spark-submit")
    proc = subprocess.run(
        [submit, "--master", "local[2]", "--conf", "spark.ui.enabled=false",
         "--conf", "spark.sql.shuffle.partitions=4", "--conf", "spark.driver.host=127.0.0.1",
         "--conf", "spark.driver.bindAddress=127.0.0.1",
         str(ROOT / "spark_jobs" / "trace_job.py"), "--conf", str(d / "trace.yaml")],
        env=env, capture_output=True, text=True, timeout=600, cwd=ROOT, check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "trace.dumps.zh" in errors[0]  # one line naming the key
    return d


def test_every_language_is_traced_and_the_missing_dump_reported(run_dir: Path) -> None:
    report = json.loads((run_dir / "out" / "run_report.json").read_text())
    langs = report["stages"]["trace"]["langs"]
    assert langs.pop("zh") == "failed" and not report["ok"]
    assert {f["table"] for f in report["failed"] if f["lang"] == "zh"} == set(TABLES)
    assert "no dump for language zh" in report["failed"][0]["error"]
    assert langs == {lg: "done" for lg in TRACED}
    for lang in TRACED:
        for table in ("pages", "sentences", "mentions", "cooccurrence"):
            assert storage.is_done(run_dir / "out", table, lang), (table, lang)
        st = storage.read_stats(run_dir / "out", "cooccurrence", lang)
        assert st["in"] == st["out"] > 0 and st["window"] == "sentence"
        assert st["mentions_over_cap"] >= 0 and 0 < st["present"] <= st["out"]
        m = storage.read_manifest(run_dir / "out", "cooccurrence", lang)
        assert m["inputs"]["chunk_tokenizer"].endswith("tok.json")
        assert storage.read_stats(run_dir / "out", "mentions", lang)["names_rejected_short"] >= 0


@pytest.mark.parametrize("lang,uuid,sub,obj,fragment", BY_HAND)
def test_cooccurrences_checked_by_hand(run_dir: Path, lang: str, uuid: str, sub: str, obj: str,
                                       fragment: str) -> None:
    out = run_dir / "out"
    row = next(r for r in storage.read_table(out, "cooccurrence", [lang]).to_pylist()
               if r["uuid"] == uuid)
    assert row["cooc_sentence"] >= 1 and row["cooc_document"] >= 1 and row["present"]
    # no cooc_chunk check: a 512-subword cut may fall inside the sentence (it does for en here)
    assert not row["sub_contains_obj"]
    sents = storage.read_table(out, "sentences", [lang])
    text = dict(zip(sents["sentence_id"].to_pylist(), sents["text"].to_pylist()))
    evidence = [text[s] for s in row["evidence"]]
    assert any(fragment in t for t in evidence), evidence
    for t in evidence:  # every evidence sentence names both, as whole words
        assert f" {normalize(sub, lang)} " in f" {normalize(t, lang)} "
        assert f" {normalize(obj, lang)} " in f" {normalize(t, lang)} "


def test_rerun_skips_done_languages_and_redoes_one_identically(run_dir: Path, spark) -> None:
    from factroots.trace import job

    out = run_dir / "out"
    cfg = load_config(run_dir / "trace.yaml")
    before = storage.read_table(out, "cooccurrence", ["bg"]).sort_by("uuid")
    en_files = sorted(p.stat().st_mtime_ns for p in (out / "mentions" / "lang=en").iterdir())
    bg_mentions = storage.read_manifest(out, "mentions", "bg")["created"]
    (out / "cooccurrence" / "lang=bg" / "_SUCCESS").unlink()
    (out / "pages" / "_tmp-deadrun").mkdir()  # left by a killed run: removed at stage start
    with pytest.raises(RunFailedError, match="zh"):
        job.run(spark, cfg)
    report = json.loads((out / "run_report.json").read_text())["stages"]["trace"]["langs"]
    assert report["bg"] == "done" and report["en"] == "skipped" and report["zh"] == "failed"
    assert storage.read_table(out, "cooccurrence", ["bg"]).sort_by("uuid").equals(before)
    # resumed per table: bg's mentions were done, only its cooccurrence was rebuilt
    assert storage.read_manifest(out, "mentions", "bg")["created"] == bg_mentions
    assert sorted(p.stat().st_mtime_ns for p in (out / "mentions" / "lang=en").iterdir()) == en_files
    assert not (out / "pages" / "_tmp-deadrun").exists()
