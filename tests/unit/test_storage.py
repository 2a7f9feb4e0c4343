"""Storage: atomic per-language writes, markers, manifests, stats, schema checks, reads."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from factroots import __version__, storage, tables
from factroots.errors import MissingTableError, SchemaError


def templates(lang: str, n: int = 2) -> pa.Table:
    return tables.conform("templates", pa.table({
        "lang": [lang] * n, "relation": [f"P{i}" for i in range(n)],
        "template": ["[X] in [Y] ."] * n}))


def leftovers(out: Path) -> list[str]:
    return [p.name for p in (out / "templates").iterdir() if p.name.startswith(("_tmp", "_old"))]


def test_write_then_read_round_trips_with_markers(tmp_path: Path) -> None:
    storage.write_table(tmp_path, "templates", templates("en"), "en", config={"out": "x"},
                        stats={"in": 3, "out": 2, "rejected_bad_template": 1}, fp="abc")
    storage.write_table(tmp_path, "templates", templates("uk", 1), "uk")
    d = storage.partition_dir(tmp_path, "templates", "en")
    assert sorted(p.name for p in d.iterdir()) == [
        "_SUCCESS", "_manifest.json", "_stats.json", "part-00000.parquet"]
    assert "lang" not in pq.read_schema(d / "part-00000.parquet").names  # it is the folder
    m = storage.read_manifest(tmp_path, "templates", "en")
    assert (m["rows"], m["fingerprint"], m["config"]) == (2, "abc", {"out": "x"})
    assert m["code_version"].startswith(__version__) and m["created"]
    t = storage.read_table(tmp_path, "templates")
    assert t.num_rows == 3 and t.schema.equals(tables.spec("templates").schema)
    assert storage.read_table(tmp_path, "templates", langs=["uk"])["lang"].to_pylist() == ["uk"]
    assert storage.read_table(tmp_path, "templates", columns=["relation"]).column_names == \
        ["relation"]
    assert storage.done_langs(tmp_path, "templates") == ["en", "uk"]
    summary = json.loads((tmp_path / "stats.json").read_text())
    assert summary["templates"]["en"]["rejected_bad_template"] == 1
    assert leftovers(tmp_path) == []


def test_is_done_checks_the_fingerprint(tmp_path: Path) -> None:
    assert not storage.is_done(tmp_path, "templates", "en")
    storage.write_table(tmp_path, "templates", templates("en"), "en", fp="v1")
    assert storage.is_done(tmp_path, "templates", "en", "v1")
    assert storage.is_done(tmp_path, "templates", "en")
    assert not storage.is_done(tmp_path, "templates", "en", "v2")
    (storage.partition_dir(tmp_path, "templates", "en") / storage.SUCCESS).unlink()
    assert not storage.is_done(tmp_path, "templates", "en", "v1")
    assert storage.done_langs(tmp_path, "templates") == []


def test_a_failed_write_leaves_the_old_partition_and_no_debris(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage.write_table(tmp_path, "templates", templates("en", 2), "en", fp="old")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(storage.pq, "write_table", boom)
    with pytest.raises(OSError, match="disk full"):
        storage.write_table(tmp_path, "templates", templates("en", 5), "en", fp="new")
    assert storage.read_manifest(tmp_path, "templates", "en")["fingerprint"] == "old"
    assert storage.read_table(tmp_path, "templates").num_rows == 2
    assert leftovers(tmp_path) == []


def test_rewrite_replaces_the_partition(tmp_path: Path) -> None:
    storage.write_table(tmp_path, "templates", templates("en", 2), "en", fp="a")
    storage.write_table(tmp_path, "templates", templates("en", 4), "en", fp="b")
    assert storage.read_table(tmp_path, "templates").num_rows == 4
    assert storage.read_manifest(tmp_path, "templates", "en")["fingerprint"] == "b"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("bad", [
    pa.table({"lang": ["en"], "relation": ["P1"]}),                               # missing
    pa.table({"lang": ["en"], "relation": ["P1"], "template": [1]}),              # type
    pa.table({"relation": ["P1"], "lang": ["en"], "template": ["t"]}),            # order
    pa.table({"lang": ["en"], "relation": ["P1"], "template": ["t"], "x": [1]}),  # extra
])
def test_schema_mismatch_raises_and_writes_nothing(tmp_path: Path, bad: pa.Table) -> None:
    with pytest.raises(SchemaError, match="templates"):
        storage.write_table(tmp_path, "templates", bad, "en")
    assert storage.done_langs(tmp_path, "templates") == []


def test_rows_of_another_language_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="other languages"):
        storage.write_table(tmp_path, "templates", templates("uk"), "en")


def test_stats_must_balance(tmp_path: Path) -> None:
    assert storage.check_balance({"in": 5, "out": 3, "rejected_a": 1, "rejected_b": 1})
    assert not storage.check_balance({"in": 5, "out": 3, "rejected_a": 1})
    assert storage.check_balance({"pages": 5})  # no in/out: nothing to check
    with pytest.raises(SchemaError, match="do not balance"):
        storage.write_table(tmp_path, "templates", templates("en"), "en",
                            stats={"in": 3, "out": 2})
    assert storage.done_langs(tmp_path, "templates") == [] and leftovers(tmp_path) == []


def test_reading_a_missing_table_says_which_stage_builds_it(tmp_path: Path) -> None:
    with pytest.raises(MissingTableError, match="facts") as err:
        storage.read_table(tmp_path, "facts")
    assert "facts stage" in err.value.fix


def test_empty_partition_round_trips(tmp_path: Path) -> None:
    storage.write_table(tmp_path, "templates", templates("en", 0), "en", stats={"in": 0, "out": 0})
    assert storage.is_done(tmp_path, "templates", "en")
    assert storage.read_table(tmp_path, "templates").num_rows == 0


def test_fingerprint_is_stable_and_sensitive() -> None:
    a = storage.fingerprint({"b": 1, "a": [1, 2]}, "x")
    assert a == storage.fingerprint({"a": [1, 2], "b": 1}, "x") and len(a) == 16
    assert a != storage.fingerprint({"b": 1, "a": [2, 1]}, "x")


def test_staging_dirs_are_fresh_and_inside_the_table(tmp_path: Path) -> None:
    a, b = storage.staging_dir(tmp_path, "facts"), storage.staging_dir(tmp_path, "facts")
    assert a != b and a.parent == b.parent == storage.table_dir(tmp_path, "facts")


def test_commit_refuses_staged_files_that_break_the_declaration(tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pytest

    from factroots import storage
    from factroots.errors import SchemaError

    staged = storage.staging_dir(tmp_path, "templates")
    pq.write_table(pa.table({"relation": ["P19"], "template": [3]}), staged / "part-0.parquet")
    with pytest.raises(SchemaError, match="declares"):
        storage.commit_partition(tmp_path, "templates", "en", staged, rows=1)
    assert not storage.is_done(tmp_path, "templates", "en")
    good = storage.staging_dir(tmp_path, "templates")
    pq.write_table(pa.table({"relation": ["P19"], "template": ["[X] was born in [Y] ."]}),
                   good / "part-0.parquet")
    storage.commit_partition(tmp_path, "templates", "en", good, rows=1)
    assert storage.read_table(tmp_path, "templates").num_rows == 1


def sentence_batch(start: int, n: int) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({
        "page_id": [1] * n, "para_idx": [0] * n, "sent_idx": list(range(start, start + n)),
        "sentence_id": list(range(1_000_000 + start, 1_000_000 + start + n)),
        "text": [f"Sentence {i}." for i in range(start, start + n)]},
        schema=tables.stored_schema("sentences"))


def inflight(folder: Path) -> list[Path]:
    d = folder.parent / "_inflight"
    return sorted(d.iterdir()) if d.is_dir() else []


def test_part_writer_groups_rows_and_appears_only_when_closed(tmp_path: Path) -> None:
    folder = tmp_path / "sentences" / "lang=en"
    with storage.PartWriter(folder, "sentences", "part-00003.parquet", group_rows=10) as w:
        for i in range(10):  # 40 rows in batches of 4: groups of 12, 12, 12 and the rest (4)
            w.write(sentence_batch(4 * i, 4))
            assert not (folder / "part-00003.parquet").exists()
        w.write(sentence_batch(40, 0))  # empty batches are skipped
        assert w.rows == 40
        assert len(inflight(folder)) == 1  # written so far: a temporary file beside the folder
    path = folder / "part-00003.parquet"
    assert sorted(p.name for p in folder.iterdir()) == ["part-00003.parquet"]
    assert inflight(folder) == []
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups == 4
    assert [meta.row_group(i).num_rows for i in range(4)] == [12, 12, 12, 4]
    assert meta.row_group(0).column(0).compression == "ZSTD"
    t = pq.read_table(path)
    tables.check_stored("sentences", t.schema)
    assert t.column("sent_idx").to_pylist() == list(range(40))


def test_part_writer_close_returns_rows_and_big_groups_flush_by_bytes(tmp_path: Path) -> None:
    folder = tmp_path / "sentences" / "lang=en"
    w = storage.PartWriter(folder, "sentences", "p.parquet", group_bytes=1)
    w.write(sentence_batch(0, 3))
    w.write(sentence_batch(3, 2))
    assert not (folder / "p.parquet").exists()
    assert w.close() == 5
    assert pq.ParquetFile(folder / "p.parquet").metadata.num_row_groups == 2


def test_part_writer_without_rows_writes_no_file(tmp_path: Path) -> None:
    folder = tmp_path / "pages" / "lang=en"
    with storage.PartWriter(folder, "pages", "part-00000.parquet") as w:
        w.write(pa.RecordBatch.from_pylist([], schema=tables.stored_schema("pages")))
    assert w.close() == 0 and w.rows == 0
    assert not (folder / "part-00000.parquet").exists() and inflight(folder) == []


@pytest.mark.parametrize("bad", [
    pa.RecordBatch.from_pydict({"page_id": [1], "text": ["x"]}),                       # missing
    sentence_batch(0, 1).append_column("lang", pa.array(["en"])),                   # extra lang
    pa.RecordBatch.from_pydict({"page_id": [1], "para_idx": [0], "sent_idx": [0],
                                "sentence_id": [1_000_000], "text": ["x"]}),         # int64 idx
])
def test_part_writer_refuses_a_wrong_schema(tmp_path: Path, bad: pa.RecordBatch) -> None:
    folder = tmp_path / "sentences" / "lang=en"
    with pytest.raises(SchemaError, match="stored table 'sentences'"):
        with storage.PartWriter(folder, "sentences", "part-00000.parquet") as w:
            w.write(bad)
    assert not (folder / "part-00000.parquet").exists() and inflight(folder) == []


def test_part_writer_leaves_nothing_when_the_task_fails(tmp_path: Path) -> None:
    folder = tmp_path / "sentences" / "lang=en"
    with pytest.raises(RuntimeError, match="task died"):
        with storage.PartWriter(folder, "sentences", "part-00001.parquet", group_rows=2) as w:
            w.write(sentence_batch(0, 4))  # one row group already on disk
            assert len(inflight(folder)) == 1
            raise RuntimeError("task died")
    assert not (folder / "part-00001.parquet").exists()
    assert inflight(folder) == []


def test_part_writer_rewrite_replaces_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "sentences" / "lang=en"
    for n in (5, 3):  # a retried task writes the same name again
        with storage.PartWriter(folder, "sentences", "part-00000.parquet") as w:
            w.write(sentence_batch(0, n))
    assert pq.read_table(folder / "part-00000.parquet").num_rows == 3
    assert [p.name for p in folder.iterdir()] == ["part-00000.parquet"]
