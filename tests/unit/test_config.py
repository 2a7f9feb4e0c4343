"""Config loading: validation errors are one line naming the key; overrides; presets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from factroots.config import RunConfig, describe, load_config, to_dict
from factroots.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def error_of(overrides: dict | None = None, path: Path | None = None) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(path, overrides)
    text = str(err.value)
    assert "\n" not in text and err.value.fix, text
    return text


def test_defaults_load_and_every_field_has_help() -> None:
    cfg = load_config()
    assert isinstance(cfg, RunConfig) and cfg.langs == [] and cfg.probe.batch_size == 128
    assert cfg.facts.exclude_relations == ["date_of_birth"]
    rows = describe()
    assert len(rows) > 40 and all(help_ for _, _, help_ in rows)
    assert ("probe.batch_size", "128") in [(k, d) for k, d, _ in rows]


@pytest.mark.parametrize("overrides, needle", [
    ({"probe.foo": 1}, "unknown config key probe.foo"),
    ({"nope": 1}, "unknown config key nope"),
    ({"probe.batch_size": "x"}, "probe.batch_size: expected int, got 'x'"),
    ({"trace.max_page_bytes": True}, "trace.max_page_bytes: expected int, got True"),
    ({"facts.exclude_relations": "P17"}, "facts.exclude_relations: expected list"),
    ({"probe.device": "tpu"}, "probe.device: 'tpu' is not one of"),
    ({"trace.window": "page"}, "trace.window: 'page' is not one of"),
    ({"probe": 5}, "probe: expected a mapping"),
    ({"probe.shard": "3/2"}, "probe.shard '3/2'"),
    ({"neurons.overlap_k": 500}, "neurons.overlap_k (500) exceeds"),
    ({"probe.batch_size": 0}, "probe.batch_size must be >= 1"),
    ({"lab.ffn_act": "tanh"}, "lab.ffn_act: 'tanh' is not one of"),
    ({"lab.ffn_width": -1}, "lab.ffn_width must be >= 0"),
])
def test_bad_values_give_one_line_error_naming_the_key(overrides: dict, needle: str) -> None:
    assert needle in error_of(overrides)


def test_an_unknown_key_gets_its_new_name_or_the_closest_spelling() -> None:
    renamed = error_of({"label.transfer_requires_overlap": True})
    assert "unknown config key label.transfer_requires_overlap" in renamed
    assert "renamed: use label.transfer_evidence" in renamed and "\n" not in renamed
    assert "did you mean probe.batch_size?" in error_of({"probe.batch_sise": 8})
    assert "did you mean" not in error_of({"probe.zzzz": 8})


def test_an_error_names_where_the_bad_key_came_from(tmp_path: Path) -> None:
    p = tmp_path / "preset.yaml"
    p.write_text("probe:\n  batch_size: 64\n", encoding="utf-8")
    assert error_of({"probe.shard": "3/2"}, path=p).startswith("--set: probe.shard")
    p.write_text("probe:\n  batch_sise: 64\n", encoding="utf-8")
    assert error_of({"probe.batch_size": 8}, path=p).startswith(f"{p}: unknown config key")
    # a preset that is wrong alone but right with the overrides loads
    p.write_text("neurons:\n  top_k: 10\n  overlap_k: 50\n", encoding="utf-8")
    assert error_of(path=p).startswith(f"{p}: neurons.overlap_k")
    assert load_config(p, {"neurons.overlap_k": 10}).neurons.overlap_k == 10


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("probe:\n  batch_sise: 64\n", encoding="utf-8")
    msg = error_of(path=p)
    assert msg.startswith(f"{p}: unknown config key probe.batch_sise") and "batch_size" in msg
    p.write_text("probe: [1\n", encoding="utf-8")
    assert "not valid YAML" in error_of(path=p)
    p.write_text("- a\n", encoding="utf-8")
    assert "expected a mapping" in error_of(path=p)
    assert "not found" in error_of(path=tmp_path / "missing.yaml")


def test_dotted_overrides_apply_over_the_file(tmp_path: Path) -> None:
    p = tmp_path / "run.yaml"
    p.write_text("out: results\nprobe:\nlangs: [en]\n", encoding="utf-8")
    cfg = load_config(p, {"probe.batch_size": 7, "langs": ["uk", "bg"], "out": None,
                          "trace.spark_conf": {"spark.sql.shuffle.partitions": 4}})
    assert cfg.probe.batch_size == 7 and cfg.langs == ["uk", "bg"]
    assert cfg.out == str(tmp_path / "results")  # None overrides are ignored; preset-relative
    assert cfg.trace.spark_conf == {"spark.sql.shuffle.partitions": 4}
    assert cfg.base_dir == str(tmp_path) and cfg.path(cfg.out) == tmp_path / "results"
    assert "probe is 3, not a section" in error_of({"probe": 3, "probe.batch_size": 1})


def test_out_is_absolute_preset_relative_or_cwd_relative(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "conf" / "run.yaml"
    p.parent.mkdir()
    p.write_text("out: out/x\n", encoding="utf-8")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_config(p).out == str(tmp_path / "out" / "x")   # a preset under conf/: the root
    assert load_config(p, {"out": "mine"}).out == str(elsewhere / "mine")  # --out: the cwd
    assert load_config().out == str(elsewhere / "out")


def test_config_is_frozen_and_round_trips() -> None:
    cfg = load_config(overrides={"label.null_percentile": 90, "probe.protocols": ["typed"]})
    assert cfg.label.null_percentile == 90.0 and isinstance(cfg.label.null_percentile, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.out = "x"  # type: ignore[misc]
    assert load_config(overrides={k: v for k, v in to_dict(cfg).items()}) == cfg


@pytest.mark.parametrize("name", ["default.yaml", "paper.yaml"])
def test_presets_load(name: str) -> None:
    path = ROOT / "conf" / name
    if not path.exists():
        pytest.skip(f"conf/{name} does not exist yet")
    cfg = load_config(path)
    assert cfg.base_dir == str(ROOT)  # presets in conf/ resolve against the project root
    assert cfg.path(cfg.out).is_relative_to(ROOT)


def test_every_preset_in_conf_loads() -> None:
    presets = sorted((ROOT / "conf").rglob("*.yaml"))
    if not presets:
        pytest.skip("no presets yet")
    for p in presets:
        load_config(p)
