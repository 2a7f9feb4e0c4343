"""The runner: one failure policy, the run report, the lock, stale folders, content
fingerprints, verified reads, and one-line errors for bad config and outputs."""

from __future__ import annotations

import errno
import fcntl
import json
import os
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner
from label_data import facts, write

from factroots import runner, storage, tables
from factroots.cli import main
from factroots.config import load_config, parse_set
from factroots.errors import ConfigError, DamagedTableError, OutputError, RunFailedError, ShardError


def templates(lang: str, n: int = 2) -> pa.Table:
    return tables.conform("templates", pa.table({
        "lang": [lang] * n, "relation": [f"P{i}" for i in range(n)],
        "template": ["[X] in [Y] ."] * n}))


def _stage(fail: set[str], calls: list[str] | None = None, **kw) -> runner.Stage:  # type: ignore[no-untyped-def]
    def build(work: runner.Work) -> None:
        for lg in work.langs:
            (calls if calls is not None else []).append(lg)
            if lg in fail:
                raise ShardError(f"{lg} is broken", lg, "fix it")
            work.write("templates", templates(lg), lg)
    return runner.Stage("facts", ("templates",), build, "t-1", needs_plan=False, **kw)


def _cfg(out: Path, **kw: object):  # type: ignore[no-untyped-def]
    return load_config(None, {"out": str(out), "langs": ["en", "de"], "probe.model": "", **kw})


def _one_line(res) -> str:  # type: ignore[no-untyped-def]
    lines = res.output.strip().splitlines()
    assert res.exit_code != 0 and len(lines) == 1, res.output
    return lines[0]


# ---- the failure policy ------------------------------------------------------------------------

def test_a_failed_language_is_unmarked_reported_and_the_run_fails(tmp_path: Path) -> None:
    storage.write_table(tmp_path, "templates", templates("de", 5), "de", fp="older")
    with pytest.raises(RunFailedError, match="templates/de") as exc:
        runner.run_stage(_stage({"de"}), _cfg(tmp_path))
    assert "run_report.json" in exc.value.fix
    assert storage.done_langs(tmp_path, "templates") == ["en"]  # never the older de
    assert (storage.partition_dir(tmp_path, "templates", "de") / "_FAILED").read_text().startswith(
        "de is broken")
    with pytest.raises(FileNotFoundError):
        storage.read_table(tmp_path, "facts")
    report = json.loads((tmp_path / runner.REPORT).read_text())
    assert not report["ok"] and report["stages"]["facts"]["langs"] == {"en": "done", "de": "failed"}
    assert report["failed"] == [{"stage": "facts", "table": "templates", "lang": "de",
                                 "error": "de is broken (fix: fix it)"}]


def test_a_rerun_skips_done_languages_and_retries_the_failed(tmp_path: Path) -> None:
    with pytest.raises(RunFailedError):
        runner.run_stage(_stage({"de"}), _cfg(tmp_path))
    calls: list[str] = []
    runner.run_stage(_stage(set(), calls), _cfg(tmp_path))
    assert calls == ["de"] and storage.done_langs(tmp_path, "templates") == ["de", "en"]
    assert json.loads((tmp_path / runner.REPORT).read_text())["ok"]
    runner.run_stage(_stage(set(), calls, settings=lambda p: "changed"), _cfg(tmp_path))
    assert calls == ["de", "de", "en"]  # a changed setting rebuilds both


def test_a_missing_input_fails_the_language_not_the_stage(tmp_path: Path) -> None:
    write(tmp_path, "facts", facts([("en", "a", "P19")]))
    with pytest.raises(RunFailedError, match="input facts/lang=de is not finished"):
        runner.run_stage(_stage(set(), inputs=("facts",)), _cfg(tmp_path))
    assert storage.done_langs(tmp_path, "templates") == ["en"]


def test_an_error_that_is_not_a_language_stops_the_stage_and_is_recorded(tmp_path: Path) -> None:
    def build(work: runner.Work) -> None:
        raise ConfigError("bad setting x", "set x")
    with pytest.raises(ConfigError, match="bad setting"):
        runner.run_stage(runner.Stage("facts", ("templates",), build, "1", needs_plan=False),
                         _cfg(tmp_path))
    report = json.loads((tmp_path / runner.REPORT).read_text())
    assert {f["lang"] for f in report["failed"]} == {"en", "de"}
    assert report["error"].startswith("ConfigError: bad setting x")


def test_a_stage_that_writes_nothing_for_a_language_fails_it(tmp_path: Path) -> None:
    stage = runner.Stage("facts", ("templates",), lambda work: None, "1", needs_plan=False)
    with pytest.raises(RunFailedError, match="did not write templates/lang=en"):
        runner.run_stage(stage, _cfg(tmp_path))


def test_stages_after_the_plan_refuse_the_lab_placeholder(tmp_path: Path) -> None:
    stage = runner.Stage("label", ("templates",), lambda work: None, "1")
    with pytest.raises(ConfigError, match="placeholder 'lab'"):
        runner.run_stage(stage, load_config(None, {"out": str(tmp_path)}))


def test_the_plan_is_resolved_once_and_keeps_relations(tmp_path: Path) -> None:
    from factroots import pipeline
    plan = pipeline.plan(_cfg(tmp_path, relations=["P19"]))
    assert pipeline.plan(plan) is plan and plan.langs == ("en", "de")
    t = facts([("en", "a", "P19"), ("en", "b", "P17")])
    assert plan.keep(t)["uuid"].to_pylist() == ["a"]
    with pytest.raises(ConfigError, match="lab is not built"):
        pipeline.plan(load_config(None, {"out": str(tmp_path)}))


# ---- lock and stale folders ------------------------------------------------------------------

def test_a_second_run_on_the_same_root_is_refused_in_one_line(tmp_path: Path) -> None:
    fd = os.open(tmp_path / runner.LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another process's run
    os.write(fd, b"4242")
    try:
        with pytest.raises(OutputError, match="another factroots run .pid 4242"):
            runner.run_stage(_stage(set()), _cfg(tmp_path))
        line = _one_line(CliRunner().invoke(main, ["facts", "--out", str(tmp_path)]))
        assert "another factroots run" in line and "use another --out" in line
    finally:
        os.close(fd)
    runner.run_stage(_stage(set()), _cfg(tmp_path))  # released: the next run goes
    with runner.session(tmp_path), runner.session(tmp_path):  # nested in one process: fine
        pass


def test_stale_tmp_and_old_folders_go_at_stage_start(tmp_path: Path) -> None:
    for name in ("_tmp-dead", "_old-en-dead", "_inflight"):
        (tmp_path / "templates" / name).mkdir(parents=True)
    (tmp_path / "templates" / "_ckpt-en-x").mkdir()
    runner.run_stage(_stage(set()), _cfg(tmp_path))
    left = sorted(p.name for p in (tmp_path / "templates").iterdir())
    assert left == ["_ckpt-en-x", "lang=de", "lang=en"]


# ---- fingerprints by content -------------------------------------------------------------------

def test_a_repaired_file_of_the_same_size_and_mtime_changes_the_fingerprint(tmp_path: Path) -> None:
    dump = tmp_path / "enwiki.xml"
    dump.write_bytes(b"<mediawiki>" + b"x" * 5000 + b"</mediawiki>")
    st = dump.stat()
    stage = _stage(set(), files=lambda plan, lang: [dump])
    plan = runner.plan_of(_cfg(tmp_path))
    before = runner.fingerprint(stage, plan, "en", ["en"])
    data = bytearray(dump.read_bytes())
    data[2000:2010] = b"yyyyyyyyyy"  # a repaired stream: same size
    dump.write_bytes(bytes(data))
    os.utime(dump, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same mtime
    assert dump.stat().st_size == st.st_size and dump.stat().st_mtime_ns == st.st_mtime_ns
    assert runner.fingerprint(stage, plan, "en", ["en"]) != before


def test_big_files_hash_a_documented_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "FULL_HASH_BYTES", 1 << 10)
    monkeypatch.setattr(runner, "BLOCK_BYTES", 64)
    f = tmp_path / "big.bin"
    f.write_bytes(os.urandom(1 << 16))
    a = runner.file_id(f)
    assert a["sampled"] == "head+tail+16x64" and a["bytes"] == 1 << 16
    with open(f, "r+b") as h:  # the last bytes (a truncated-and-refilled tail)
        h.seek((1 << 16) - 10)
        h.write(b"0123456789")
    os.utime(f, ns=(0, a["mtime_ns"]))
    assert runner.file_id(f)["hash"] != a["hash"]


# ---- verified reads ----------------------------------------------------------------------------

def _facts_partition(out: Path) -> Path:
    write(out, "facts", facts([("en", f"u{i}", "P19") for i in range(3000)]))
    return storage.partition_dir(out, "facts", "en") / "part-00000.parquet"


def test_garbled_bytes_in_a_parquet_file_are_an_error_not_silent(tmp_path: Path) -> None:
    f = _facts_partition(tmp_path)
    data = bytearray(f.read_bytes())
    mid = len(data) // 3
    data[mid:mid + 64] = bytes(b ^ 0x5A for b in data[mid:mid + 64])
    f.write_bytes(bytes(data))
    with pytest.raises(DamagedTableError) as exc:
        storage.read_table(tmp_path, "facts")
    assert "damaged Parquet" in str(exc.value) and "lang=en" in str(exc.value)
    assert "rerun `factroots facts`" in exc.value.fix and "\n" not in str(exc.value)


def test_a_deleted_data_file_with_success_kept_names_the_file(tmp_path: Path) -> None:
    f = _facts_partition(tmp_path)
    f.unlink()
    assert (f.parent / "_SUCCESS").exists()
    with pytest.raises(DamagedTableError, match="part-00000.parquet is missing"):
        storage.read_table(tmp_path, "facts")
    assert not storage.is_done(tmp_path, "facts", "en")  # so a rerun rebuilds it


def test_rows_are_checked_against_the_manifest(tmp_path: Path) -> None:
    f = _facts_partition(tmp_path)
    m = f.parent / "_manifest.json"
    manifest = json.loads(m.read_text())
    manifest["rows"] = 3001
    m.write_text(json.dumps(manifest))
    with pytest.raises(DamagedTableError, match="3000 rows read, the manifest says 3001"):
        storage.read_table(tmp_path, "facts")


def test_every_file_is_written_with_page_checksums(tmp_path: Path) -> None:
    import pyarrow.parquet as pq
    f = _facts_partition(tmp_path)
    # a file without page CRCs would read back although its pages were damaged
    assert pq.ParquetFile(f, page_checksum_verification=True).read().num_rows == 3000
    assert storage.WRITE_OPTS["write_page_checksum"] is True


# ---- outputs that cannot be written ---------------------------------------------------------

def test_out_at_a_file_is_one_line(tmp_path: Path) -> None:
    f = tmp_path / "afile"
    f.write_text("x")
    line = _one_line(CliRunner().invoke(main, ["facts", "--out", str(f), "--langs", "en"]))
    assert f"out {f} is a file" in line and "fix:" in line


def test_out_on_a_read_only_file_system_is_one_line(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.open

    def ro(path, *a, **k):  # type: ignore[no-untyped-def]
        if str(path).endswith(runner.LOCK):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real(path, *a, **k)
    monkeypatch.setattr(runner.os, "open", ro)
    line = _one_line(CliRunner().invoke(main, ["facts", "--out", str(tmp_path / "o")]))
    assert "Read-only file system" in line and "writable folder" in line


def test_disk_full_is_one_line_and_commits_nothing(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*a, **k):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.parquet"))
    monkeypatch.setattr(storage.pq, "write_table", full)
    line = _one_line(CliRunner().invoke(main, ["facts", "--out", str(tmp_path), "--langs", "en"]))
    assert line.startswith("Error: disk full writing") and "free space" in line
    assert storage.done_langs(tmp_path, "templates") == []
    assert not list((tmp_path / "templates").glob("_tmp-*"))
    assert json.loads((tmp_path / runner.REPORT).read_text())["failed"][0]["lang"] == "en"


def test_a_failed_language_makes_the_cli_exit_non_zero(tmp_path: Path) -> None:
    d = tmp_path / "mlama"
    for lg in ("en", "de"):
        (d / lg).mkdir(parents=True)
        (d / lg / "templates.jsonl").write_text(
            '{"relation": "P19", "template": "[X] was born in [Y] ."}\n', "utf-8")
        (d / lg / "P19.jsonl").write_text(
            '{"sub_uri": "Q1", "obj_uri": "Q2", "sub_label": "A", "obj_label": "B", '
            '"uuid": "u1", "lineid": 1}\n', "utf-8")
    (d / "TREx_multilingual_objects").mkdir()
    (d / "TREx_multilingual_objects" / "en.json").write_text('{"P19": {"objects": ["B"]}}')
    (d / "TREx_multilingual_objects" / "de.json").write_text("<html>not json</html>")
    res = CliRunner().invoke(main, ["facts", "--out", str(tmp_path / "o"), "--mlama-dir", str(d)])
    assert res.exit_code == 1
    line = res.output.strip().splitlines()[-1]  # after the folder of what was written
    assert line.startswith("Error: 3 partition(s) failed (candidates/de, facts/de, templates/de)")
    assert "de.json: not valid JSON" in line and "run_report.json" in line
    assert storage.done_langs(tmp_path / "o", "facts") == ["en"]


# ---- config ----------------------------------------------------------------------------------

def test_set_without_equals_is_an_error() -> None:
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_set("probe.batch_size")
    line = _one_line(CliRunner().invoke(main, ["facts", "--set", "probe.batch_size", "--dry-run"]))
    assert "--set 'probe.batch_size': expected KEY=VALUE" in line


def test_bad_yaml_value_in_set_names_the_key() -> None:
    line = _one_line(CliRunner().invoke(main, ["facts", "--set", "probe.protocols=[full",
                                               "--dry-run"]))
    assert "--set probe.protocols:1:" in line and "not valid YAML" in line
    line = _one_line(CliRunner().invoke(main, ["facts", "--set", "probe.batch_size=many",
                                               "--dry-run"]))
    assert "probe.batch_size: expected int" in line


def test_non_utf8_preset_is_one_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_bytes(b"out: x\nlangs: [en]\nrelations: [P\xe9]\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:3: not UTF-8 \(byte b'\\xe9' at offset"):
        load_config(p)


def test_yaml_errors_keep_line_and_column(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("out: x\nprobe:\n  batch_size: [1, 2\n  device: cpu\n", "utf-8")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert f"{p}:4:" in exc.value.message and "not valid YAML" in exc.value.message


def test_yaml_aliases_are_refused_without_expanding_them(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    lines.append("langs: *i")
    p = tmp_path / "bomb.yaml"
    p.write_text("\n".join(lines) + "\n", "utf-8")
    assert len(p.read_bytes()) < 700
    from factroots import config

    def never(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("the document was constructed (its aliases expanded)")
    monkeypatch.setattr(config.yaml, "safe_load", never)
    with pytest.raises(ConfigError, match=r"bomb.yaml:2:\d+: YAML alias \*a is not allowed"):
        load_config(p)


def test_a_damaged_input_fails_only_the_language_that_reads_it(tmp_path: Path) -> None:
    write(tmp_path, "facts", facts([(lg, f"u{i}", "P19") for lg in ("en", "de")
                                    for i in range(3000)]))
    f = storage.partition_dir(tmp_path, "facts", "de") / "part-00000.parquet"
    data = bytearray(f.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = bytes(64)
    f.write_bytes(bytes(data))

    def build(work: runner.Work) -> None:
        (lang,) = work.langs
        n = storage.read_table(work.out, "facts", [lang]).num_rows  # verified read
        work.write("templates", templates(lang, 1), lang, stats={"facts": n})
    stage = runner.Stage("facts", ("templates",), build, "1", inputs=("facts",), needs_plan=False)
    with pytest.raises(RunFailedError, match="damaged Parquet") as exc:
        runner.run_stage(stage, _cfg(tmp_path))
    assert exc.value.lang == "de" and storage.done_langs(tmp_path, "templates") == ["en"]
