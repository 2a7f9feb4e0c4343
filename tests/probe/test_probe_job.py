"""The probe job: tables and stats per language, rejects, resume, shards, models, CLI."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner
from probe_inputs import slice_tables, write_inputs

from factroots import runner, storage
from factroots.config import load_config
from factroots.errors import ConfigError, ModelError
from factroots.probe import job
from factroots.probe.models import load_model, resolve_device, resolve_dtype

pytestmark = pytest.mark.probe


def _cfg(out: Path, model: Path, **kw: object):  # type: ignore[no-untyped-def]
    return load_config(None, {"out": str(out), "probe.model": str(model), "probe.device": "cpu",
                              "probe.batch_size": 16, **kw})


def _with_bad_rows(langs: tuple[str, ...]) -> dict[str, pa.Table]:
    t = slice_tables(langs)
    facts = t["facts"].to_pylist()
    extra = dict(facts[0])
    facts.append({**extra, "uuid": "empty-object", "obj_label": "   "})
    facts.append({**extra, "uuid": "no-slot", "template": "[X] has no slot ."})
    t["facts"] = pa.Table.from_pylist(facts, schema=t["facts"].schema)
    return t


def test_job_writes_queries_and_predictions_with_balanced_stats(tmp_path: Path,
                                                               tiny_bert_dir: Path) -> None:
    write_inputs(tmp_path, ("en", "de"), _with_bad_rows(("en", "de")))
    cfg = _cfg(tmp_path, tiny_bert_dir, **{"probe.protocols": ["full", "typed"]})
    assert job.run(cfg) == storage.table_dir(tmp_path, "predictions")
    preds = storage.read_table(tmp_path, "predictions")
    q = storage.read_table(tmp_path, "queries", ["en"])
    st = storage.read_stats(tmp_path, "predictions", "en")
    assert st["in"] == 62 and st["out"] == 60
    assert st["rejected_empty_object"] == 1 and st["rejected_no_object_slot"] == 1
    assert storage.check_balance(st) and storage.check_balance(
        storage.read_stats(tmp_path, "queries", "en"))
    en = preds.filter(pa.compute.equal(preds["lang"], "en"))
    assert en.num_rows == 120 and set(en["protocol"].to_pylist()) == {"full", "typed"}
    assert "empty-object" not in en["uuid"].to_pylist()
    # every (uuid, k) of a full-match row is a query whose prompt has k masks
    prompts = {(r["uuid"], r["k"]): r["prompt"] for r in q.to_pylist()}
    for r in en.filter(pa.compute.equal(en["protocol"], "full")).to_pylist():
        if r["k"] in {k for (u, k) in prompts if u == r["uuid"]}:
            assert prompts[(r["uuid"], r["k"])].count("[MASK]") == r["k"]


def test_interrupted_run_resumes_to_identical_tables(tmp_path: Path, tiny_xlmr_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    ref_out, out = tmp_path / "ref", tmp_path / "out"
    for o in (ref_out, out):
        write_inputs(o)
    job.run(_cfg(ref_out, tiny_xlmr_dir))
    real = job._probe_lang
    calls: list[str] = []

    def dies_on_second(work, lm, lang):  # type: ignore[no-untyped-def]
        calls.append(lang)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(work, lm, lang)

    monkeypatch.setattr(job, "_probe_lang", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        job.run(_cfg(out, tiny_xlmr_dir))
    first = calls[0]
    assert storage.done_langs(out, "predictions") == [first]
    made = storage.read_manifest(out, "predictions", first)["created"]
    monkeypatch.setattr(job, "_probe_lang", real)
    resumed: list[str] = []
    monkeypatch.setattr(job, "_probe_lang", lambda *a: (resumed.append(a[2]), real(*a)))
    job.run(_cfg(out, tiny_xlmr_dir))
    assert first not in resumed and len(resumed) == 2
    assert storage.read_manifest(out, "predictions", first)["created"] == made
    for table in ("queries", "predictions"):
        assert storage.read_table(ref_out, table).equals(storage.read_table(out, table))


def test_shards_split_the_languages(tmp_path: Path, tiny_bert_dir: Path) -> None:
    sizes = {"en": 37498, "fr": 33872, "de": 32548, "ceb": 6829, "ur": 7295, "zh": 21449}
    parts = [runner.shard_langs(sizes, f"{i}/3") for i in range(3)]
    assert sorted(lg for p in parts for lg in p) == sorted(sizes)
    assert all(parts)
    with pytest.raises(ConfigError):
        runner.shard_langs(sizes, "3/3")
    write_inputs(tmp_path)
    got = []
    for i in range(2):
        job.run(_cfg(tmp_path, tiny_bert_dir, **{"probe.shard": f"{i}/2",
                                                  "probe.max_facts_per_lang": 12}))
        got.append(set(storage.done_langs(tmp_path, "predictions")))
    assert got[0] and got[0] < got[1] and got[1] == {"en", "de", "zh"}
    st = storage.read_stats(tmp_path, "predictions", "de")
    assert st["out"] == 12 and st["rejected_max_facts"] == 48 and storage.check_balance(st)


def test_models_adapters_and_errors(tmp_path: Path, tiny_bert_dir: Path,
                                    tiny_xlmr_dir: Path) -> None:
    from transformers import AutoTokenizer, BertConfig, BertModel, GPT2Config

    bert = load_model(str(tiny_bert_dir), "cpu")
    xlmr = load_model(str(tiny_xlmr_dir), "auto")
    assert (bert.family.family, bert.family.space_id, bert.family.mask_token) == \
        ("bert", None, "[MASK]")
    assert xlmr.family.family == "xlmr" and xlmr.family.mask_token == "<mask>"
    assert xlmr.tokenizer.convert_ids_to_tokens(xlmr.family.space_id) == "\u2581"
    assert bert.family.ffn_site(1) == "bert.encoder.layer.1.intermediate"
    assert xlmr.family.hidden_site(0) == "roberta.encoder.layer.0.output"
    assert bert.module(bert.family.ffn_site(1)).dense.out_features == bert.family.ffn_width == 64
    assert len(xlmr.family.sites("hidden")) == xlmr.family.num_layers == 2
    with pytest.raises(ModelError, match="does not exist"):
        load_model(str(tmp_path / "nowhere"), "cpu")
    headless = tmp_path / "headless"
    BertModel(BertConfig(**{k: getattr(bert.model.config, k) for k in (
        "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
        "intermediate_size")})).save_pretrained(headless)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(headless)
    with pytest.raises(ModelError, match="no trained MLM head"):
        load_model(str(headless), "cpu")
    causal = tmp_path / "causal"
    GPT2Config(n_layer=1, n_embd=8, n_head=2).save_pretrained(causal)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(causal)
    with pytest.raises(ModelError, match="not a masked LM"):
        load_model(str(causal), "cpu")
    with pytest.raises(ConfigError):
        resolve_dtype("float16", resolve_device("cpu"))


def test_cli_probe_help_and_launcher() -> None:
    from factroots.cli import main

    res = CliRunner().invoke(main, ["probe", "--help"])
    assert res.exit_code == 0, res.output
    assert "--shard" in res.output and "--device" in res.output
    launcher = Path(__file__).resolve().parents[2] / "probing" / "probe_job.py"
    text = launcher.read_text(encoding="utf-8")
    assert text.lstrip("\"").startswith("Run with: python probing/probe_job.py --conf")
    assert len(text.splitlines()) < 40


def test_cli_probe_runs_one_language(tmp_path: Path, tiny_bert_dir: Path) -> None:
    from factroots.cli import main

    write_inputs(tmp_path, ("zh",))
    res = CliRunner().invoke(main, ["probe", "--out", str(tmp_path), "--model",
                                    str(tiny_bert_dir), "--device", "cpu", "--no-neurons",
                                    "--set", "probe.protocols=[full, typed]"])
    assert res.exit_code == 0, res.output
    t = storage.read_table(tmp_path, "predictions", ["zh"])
    assert t.num_rows == 120 and set(t["protocol"].to_pylist()) == {"full", "typed"}
