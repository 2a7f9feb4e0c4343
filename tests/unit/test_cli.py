"""The command line: help texts, the facts verb end to end, clean errors, --dry-run."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from factroots import storage
from factroots.cli import main


def verbs(group: click.Group = main, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in group.commands.items():
        out.append(prefix + (name,))
        if isinstance(cmd, click.Group):
            out += verbs(cmd, prefix + (name,))
    return out


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_main_help_lists_every_verb() -> None:
    res = invoke("--help")
    assert res.exit_code == 0, res.output
    for verb in ("facts", "trace", "probe", "label", "report", "lab", "run", "config"):
        assert verb in res.output
    assert invoke("--version").exit_code == 0


@pytest.mark.parametrize("verb", verbs(), ids=" ".join)
def test_every_verb_has_help(verb: tuple[str, ...]) -> None:
    res = invoke(*verb, "--help")
    assert res.exit_code == 0, res.output
    cmd: click.Command = main
    for name in verb:
        cmd = cmd.commands[name]  # type: ignore[attr-defined]
    summary = (cmd.help or "").strip().splitlines()[0]
    start = " ".join(summary.split()[:4])  # click wraps (and hyphen-breaks) long lines
    assert len(summary) > 10 and start in " ".join(res.output.split())
    assert " ".join(verb) in res.output.splitlines()[0]


def test_facts_writes_the_three_tables(tmp_path: Path) -> None:
    res = invoke("facts", "--out", str(tmp_path), "--langs", "en,uk")
    assert res.exit_code == 0, res.output
    assert res.output.strip() == str(tmp_path / "facts")
    for table in ("facts", "templates", "candidates"):
        assert storage.done_langs(tmp_path, table) == ["en", "uk"]
    assert storage.read_table(tmp_path, "facts", langs=["uk"]).num_rows == 18147


def test_facts_relations_and_mlama_dir_options(tmp_path: Path) -> None:
    d = tmp_path / "mlama" / "de"
    d.mkdir(parents=True)
    (d / "templates.jsonl").write_text('{"relation": "P17", "template": "[X] in [Y] ."}\n')
    (d / "P17.jsonl").write_text(json.dumps({"sub_uri": "Q1", "obj_uri": "Q2", "obj_label": "B",
                                             "sub_label": "A", "lineid": 0, "uuid": "u"}) + "\n")
    res = invoke("facts", "--out", str(tmp_path / "o"), "--mlama-dir", str(tmp_path / "mlama"),
                 "--relations", "P17")
    assert res.exit_code == 0, res.output
    assert storage.read_table(tmp_path / "o", "facts")["sub_label"].to_pylist() == ["A"]


@pytest.mark.parametrize("args, needle", [
    (("--langs", "en,xx"), "unknown language xx"),
    (("--relations", "P9999"), "relation P9999 is unknown"),
    (("--set", "probe.device=tpu"), "probe.device: 'tpu' is not one of"),
    (("--set", "nope=1"), "unknown config key nope"),
    (("--set", "lab.ffn_width="), "lab.ffn_width: expected int, got None"),   # a key, no value
    (("--set", "probe.batch_size="), "probe.batch_size: expected int, got None"),
    (("--conf", "missing.yaml"), "missing.yaml"),
])
def test_errors_are_clean_one_liners(tmp_path: Path, args: tuple, needle: str) -> None:
    res = invoke("facts", "--out", str(tmp_path), *args)
    assert res.exit_code != 0
    assert needle in res.output and "Traceback" not in res.output, res.output
    assert res.output.startswith("Error: ") and "(fix: " in res.output
    assert storage.done_langs(tmp_path, "facts") == []


def test_dry_run_prints_the_resolved_config_and_writes_nothing(tmp_path: Path) -> None:
    res = invoke("facts", "--out", str(tmp_path / "o"), "--langs", "en uk",
                 "--set", "probe.batch_size=8", "--mlama-dir", "somewhere", "--dry-run")
    assert res.exit_code == 0, res.output
    cfg = json.loads(res.output)
    assert cfg["langs"] == ["en", "uk"] and cfg["probe"]["batch_size"] == 8
    assert cfg["facts"]["mlama_dir"] == "somewhere"
    assert not (tmp_path / "o").exists()


def test_an_empty_set_value_is_null_and_an_option_beats_a_set(tmp_path: Path) -> None:
    """--set KEY= is YAML null: an optional key is reset, not silently left as it was."""
    preset = tmp_path / "run.yaml"
    preset.write_text("trace:\n  chunk_tokenizer: x\n", encoding="utf-8")
    res = invoke("facts", "--conf", str(preset), "--out", str(tmp_path / "o"),
                 "--set", "trace.chunk_tokenizer=", "--set", "facts.mlama_dir=a",
                 "--mlama-dir", "b", "--dry-run")
    assert res.exit_code == 0, res.output
    cfg = json.loads(res.output)
    assert cfg["trace"]["chunk_tokenizer"] is None and cfg["facts"]["mlama_dir"] == "b"
    assert cfg["out"] == str(tmp_path / "o")


def test_config_verb_lists_keys_with_help() -> None:
    res = invoke("config")
    assert res.exit_code == 0 and "facts.exclude_relations = ['date_of_birth']" in res.output
