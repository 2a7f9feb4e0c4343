"""label.job: reads the stored tables, writes three tables per language, notes what is missing."""

from __future__ import annotations

from pathlib import Path

import pytest
from label_data import build_run, facts, write

from factroots import storage
from factroots.config import load_config
from factroots.errors import MissingTableError
from factroots.label import job

R = "P19"


def test_job_writes_labels_and_notes(tmp_path: Path) -> None:
    build_run(tmp_path)
    cfg = load_config(None, {"probe.model": "", "out": str(tmp_path), "label.min_null": 1,
                             "label.tokenizer": str(tmp_path / "no-tokenizer")})
    assert job.run(cfg) == tmp_path / "fact_labels"
    st = {(r["lang"], r["uuid"]): r["status"] for r in storage.read_table(tmp_path, "status")
          .to_pylist()}
    assert st[("en", "a")] == 3 and st[("de", "a")] == 2 and st[("fr", "a")] is None
    assert st[("fr", "c")] == -1
    easy = {(r["lang"], r["uuid"]): r["category"] for r in storage.read_table(tmp_path,
                                                                              "easy_facts")
            .to_pylist()}
    assert easy == {("de", "a"): "shared_entity_tokens", ("de", "c"): "naming_cues"}
    labels = {(r["lang"], r["uuid"]): (r["label"], r["reason"])
              for r in storage.read_table(tmp_path, "fact_labels").to_pylist()}
    assert labels[("en", "b")] == ("independent", "below_lower_bound")
    assert labels[("de", "b")] == ("independent", "below_lower_bound")
    assert labels[("fr", "a")] == ("unlabelled", "presence_unknown")
    stats = storage.read_stats(tmp_path, "status", "fr")
    assert stats["unknown_not_traced"] == 2
    assert "cooccurrence: no finished partition for fr" in stats["notes"]
    assert storage.read_stats(tmp_path, "easy_facts", "de")["token_overlap_rule"] == "skipped"
    manifest = storage.read_manifest(tmp_path, "fact_labels", "en")
    assert "token-overlap rule skipped" in " ".join(manifest["inputs"]["notes"])
    lab = storage.read_stats(tmp_path, "fact_labels", "en")
    assert lab["in"] == lab["out"] == 2 and lab["null_threshold_diff"] == {"de": 0.0}
    assert lab["null_threshold"] == {}     # no two facts share an object: no same-object null


def test_rerun_skips_and_new_config_rebuilds(tmp_path: Path) -> None:
    build_run(tmp_path)
    cfg = load_config(None, {"probe.model": "", "out": str(tmp_path), "langs": ["en", "de"]})
    job.run(cfg)
    first = storage.read_manifest(tmp_path, "status", "en")["created"]
    marker = storage.partition_dir(tmp_path, "status", "en") / "part-00000.parquet"
    mtime = marker.stat().st_mtime_ns
    job.run(cfg)
    assert marker.stat().st_mtime_ns == mtime
    job.run(load_config(None, {"probe.model": "", "out": str(tmp_path), "langs": ["en", "de"],
                               "label.null_percentile": 90.0}))
    assert storage.read_manifest(tmp_path, "status", "en")["created"] >= first
    assert marker.exists() and marker.stat().st_mtime_ns != mtime


def test_only_facts_present(tmp_path: Path) -> None:
    write(tmp_path, "facts", facts([("en", "a", R), ("en", "b", R)]))
    job.run(load_config(None, {"probe.model": "", "out": str(tmp_path)}))
    st = storage.read_table(tmp_path, "status").to_pylist()
    assert {r["missing"] for r in st} == {"not_traced;not_probed"}
    assert storage.read_table(tmp_path, "fact_labels").num_rows == 0


def test_no_facts_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MissingTableError):
        job.run(load_config(None, {"probe.model": "", "out": str(tmp_path)}))
