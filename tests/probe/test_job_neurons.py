"""The neurons job on a tiny model: signatures per language, counted rejects, resume, overlap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from transformers import AutoTokenizer

from factroots import storage, tables
from factroots.config import load_config
from factroots.probe import job_neurons
from factroots.probe.probeless import rank_group

pytestmark = pytest.mark.probe

SUBJECTS = ["Paris", "Berlin", "Rome", "Dante", "Goethe", "France", "Germany", "Italy"]


def _facts(lang: str) -> list[tuple[str, str, int, bool, object]]:
    """(uuid, relation, k, correct_full, has_query): P1 has 5 ranked facts, P2 is small."""
    rows = [(f"u{i}", "P1", 1 + i % 2, True, True) for i in range(5)]
    rows += [("u5", "P1", 1, False, True), ("u6", "P2", 2, True, True), ("u7", "P2", 1, True, True)]
    rows += [("u8", "P1", 1, True, False)]  # correct, but its matching prompt is missing
    rows += [("u9", "P1", 1, True, "no mask")]  # its prompt holds no mask token
    return rows if lang == "en" else [r for r in rows if r[0] != "u4"]


def _write_inputs(out: Path, model_dir: Path, langs: tuple[str, ...] = ("en", "de")) -> None:
    mask = AutoTokenizer.from_pretrained(model_dir).mask_token
    for lang in langs:
        facts = _facts(lang)
        q = [(u, r, kq, f"{SUBJECTS[i % 8]} {'is in' if lang == 'en' else 'ist in'} "
                        + " ".join([mask if has_q is True else "it"] * kq) + " .")
             for i, (u, r, _, _, has_q) in enumerate(facts) if has_q for kq in (1, 2)]
        storage.write_table(out, "queries", tables.conform("queries", pa.table({
            "lang": [lang] * len(q), "uuid": [x[0] for x in q], "relation": [x[1] for x in q],
            "k": pa.array([x[2] for x in q], pa.int32()), "prompt": [x[3] for x in q]})), lang)
        n = len(facts)
        storage.write_table(out, "predictions", tables.conform("predictions", pa.table({
            "lang": [lang] * n, "uuid": [f[0] for f in facts], "relation": [f[1] for f in facts],
            "protocol": ["full"] * n, "k": pa.array([f[2] for f in facts], pa.int32()),
            "pred_ids": pa.array([[1]] * n, pa.list_(pa.int32())), "pred_text": ["x"] * n,
            "gold_ids": pa.array([[1]] * n, pa.list_(pa.int32())),
            "correct_full": [f[3] for f in facts], "correct_partial": [f[3] for f in facts],
            "correct_exact": [f[3] for f in facts], "score": pa.array([0.0] * n, pa.float32())})),
            lang)


def _cfg(out: Path, model_dir: Path, **extra: object):
    return load_config(overrides={"out": str(out), "probe.model": str(model_dir),
                                  "probe.device": "cpu", "probe.batch_size": 2,
                                  "neurons.top_k": 10, "neurons.overlap_k": 5, **extra})


@pytest.fixture(scope="module")
def done_run(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("neurons")
    _write_inputs(out, tiny_bert_dir)
    job_neurons.run(_cfg(out, tiny_bert_dir))
    return out


def test_signatures_cover_correct_facts_with_counted_rejects(done_run: Path) -> None:
    sig = storage.read_table(done_run, "signatures", ["en"]).to_pylist()
    by = {r["uuid"]: r for r in sig}
    assert sorted(by) == ["u0", "u1", "u2", "u3", "u4", "u6", "u7"]  # u5 wrong, u8 no query
    assert all(len(by[u]["neuron_ids"]) == 10 and not by[u]["small_group"] for u in ("u0", "u4"))
    assert by["u6"]["small_group"] and by["u6"]["neuron_ids"] == [] and by["u6"]["group_size"] == 2
    assert by["u0"]["group_size"] == 5 and by["u0"]["site"] == "ffn"
    stats = storage.read_stats(done_run, "signatures", "en")
    assert stats["in"] == 9 and stats["out"] == 7 and stats["rejected_no_query"] == 1
    assert stats["rejected_mask_mismatch"] == 1 and stats["rejected_nonfinite"] == 0
    assert storage.check_balance(stats) and stats["small_group_facts"] == 2


def test_signatures_rank_the_matching_prompts(done_run: Path, tiny_bert_dir: Path) -> None:
    from factroots.probe.models import load_model

    lm = load_model(str(tiny_bert_dir), "cpu")
    q = storage.read_table(done_run, "queries", ["en"]).to_pylist()
    prompt = {(r["uuid"], r["k"]): r["prompt"] for r in q}
    uuids = ["u0", "u1", "u2", "u3", "u4"]
    ids = lm.tokenizer([prompt[(u, 1 + i % 2)] for i, u in enumerate(uuids)])["input_ids"]
    fam = lm.family
    acts = job_neurons.capture_acts(lm, fam.sites("ffn"), ids, 2, fam.num_layers * fam.ffn_width)
    want = rank_group(acts, k=10).neuron_ids
    sig = {r["uuid"]: r["neuron_ids"] for r in storage.read_table(done_run, "signatures", ["en"])
           .to_pylist()}
    assert [sig[u] for u in uuids] == want.tolist()


def test_overlap_is_written_for_both_directions(done_run: Path) -> None:
    ov = storage.read_table(done_run, "overlap").to_pylist()
    assert {(r["lang"], r["other_lang"]) for r in ov} == {("en", "de"), ("de", "en")}
    assert ov[0]["n_facts"] == 4 and ov[0]["top_k"] == 5  # u0..u3 ranked in both
    assert 0.0 <= ov[0]["mean_jaccard"] <= 1.0


class _Killed(Exception):
    pass


def test_interrupted_run_resumes_and_gives_identical_signatures(
        tmp_path: Path, tiny_bert_dir: Path, done_run: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _write_inputs(tmp_path, tiny_bert_dir)
    cfg = _cfg(tmp_path, tiny_bert_dir)
    real, calls = job_neurons._group, []

    def dies_on_second_group(*args, **kwargs):
        calls.append(args[3])
        if len(calls) == 2:
            raise _Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(job_neurons, "_group", dies_on_second_group)
    with pytest.raises(_Killed):
        job_neurons.run(cfg)
    assert storage.done_langs(tmp_path, "signatures") == []
    assert len(list((tmp_path / "signatures").glob("_ckpt-de-*/*.parquet"))) == 1  # P1 kept
    calls.clear()
    monkeypatch.setattr(job_neurons, "_group", lambda *a, **k: (calls.append(a[3]), real(*a, **k))[1])
    job_neurons.run(cfg)
    assert calls == ["P2", "P1", "P2"]  # de resumes at P2, then en in full
    assert not list((tmp_path / "signatures").glob("_ckpt-*"))
    for table in ("signatures", "overlap"):
        assert storage.read_table(tmp_path, table).equals(storage.read_table(done_run, table))
    assert storage.read_stats(tmp_path, "signatures", "de") == \
        storage.read_stats(done_run, "signatures", "de")
    calls.clear()
    job_neurons.run(cfg)  # everything done: nothing recomputed
    assert calls == []


def test_hidden_site_and_layer_subset_give_global_ids(tmp_path: Path, tiny_xlmr_dir: Path) -> None:
    _write_inputs(tmp_path, tiny_xlmr_dir, langs=("en",))
    job_neurons.run(_cfg(tmp_path, tiny_xlmr_dir, **{"neurons.site": "hidden",
                                                     "neurons.layers": [1]}))
    sig = storage.read_table(tmp_path, "signatures", ["en"])
    man = storage.read_manifest(tmp_path, "signatures", "en")
    width = man["config"]["width"]
    ids = np.concatenate([np.asarray(x) for x in sig["neuron_ids"].to_pylist() if x])
    assert sig["site"].unique().to_pylist() == ["hidden"] and man["config"]["layers"] == [1]
    assert ids.min() >= width and ids.max() < 2 * width  # layer 1 only


def test_neurons_run_on_the_probe_stage_outputs(tmp_path: Path, tiny_xlmr_dir: Path) -> None:
    # The real `queries` of probe.job (zh included, XLM-R "▁" tokenizer): every matching prompt
    # must hold exactly k masks. Random weights get nothing right, so mark every fact correct.
    import pyarrow.compute as pc
    from probe_inputs import write_inputs

    from factroots.probe import job

    write_inputs(tmp_path, langs=("en", "zh"))
    cfg = _cfg(tmp_path, tiny_xlmr_dir, langs=["en", "zh"])
    job.run(cfg)
    for lang in ("en", "zh"):
        p = storage.read_table(tmp_path, "predictions", [lang])
        p = p.set_column(p.schema.get_field_index("correct_full"), "correct_full",
                         pc.equal(p["protocol"], "full"))
        storage.write_table(tmp_path, "predictions", p, lang, fp="forced")
    assert job_neurons.run(cfg) == storage.table_dir(tmp_path, "signatures")
    for lang in ("en", "zh"):
        stats = storage.read_stats(tmp_path, "signatures", lang)
        assert stats["out"] == stats["in"] > 0 and stats["rejected_mask_mismatch"] == 0
    ov = storage.read_table(tmp_path, "overlap").to_pylist()
    assert len(ov) == 2 and ov[0]["n_facts"] > 0


def test_a_language_without_queries_fails_alone(tmp_path: Path, tiny_bert_dir: Path) -> None:
    from factroots.errors import ShardError

    _write_inputs(tmp_path, tiny_bert_dir, langs=("en", "fr"))
    storage.partition_dir(tmp_path, "queries", "fr").joinpath("_SUCCESS").unlink()
    stale = tmp_path / "signatures" / "_ckpt-en-0000000000000000"
    stale.mkdir(parents=True)
    with pytest.raises(ShardError, match="fr"):
        job_neurons.run(_cfg(tmp_path, tiny_bert_dir))
    assert storage.done_langs(tmp_path, "signatures") == ["en"]
    assert not stale.exists()  # a checkpoint of another config is cleared
    assert [r["lang"] for r in storage.read_table(tmp_path, "overlap").to_pylist()] == []
