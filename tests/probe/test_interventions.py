"""Interventions on a tiny BERT whose answer is planted in four FFN units (``planted.py``).

Switching off the planted units flips the answer and beats the controls; random units do not;
batching does not change the numbers; hooks are gone after an exception; the stage counts
facts without signature or partner, balances its stats, and a rerun after a kill gives the
same table; the label stage's causal verdict follows.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch
from planted import plant

from factroots import storage, tables
from factroots.config import load_config
from factroots.label.causal import apply_causal
from factroots.probe import interventions as iv
from factroots.probe import job_interventions
from factroots.probe.capture import Ablate
from factroots.probe.models import load_model

pytestmark = pytest.mark.probe

UNITS = [3, 17, 40, 55]  # planted, in the last of the two layers
SUBJECTS = ["Paris", "Berlin", "Rome", "Dante", "Goethe", "France", "Germany", "Italy"]


def _prompts(mask: str, lang: str, n: int) -> list[str]:
    verb = "is in" if lang == "en" else "ist in"
    return [f"{SUBJECTS[i % 8]} {SUBJECTS[(i // 8) % 8]} {verb} {mask} ." for i in range(n)]


def _answer(tok) -> int:  # type: ignore[no-untyped-def]
    return len(tok) - 1  # the last id of the vocabulary: in no prompt


@pytest.fixture(scope="module")
def planted_dir(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> Path:
    """The tiny BERT with the answer planted in UNITS, saved like a real model."""
    lm = load_model(str(tiny_bert_dir), "cpu")
    tok = lm.tokenizer
    ids = [tok(p)["input_ids"] for lg in ("en", "de") for p in _prompts(tok.mask_token, lg, 30)]
    plant(lm, UNITS, _answer(tok), ids)
    out = tmp_path_factory.mktemp("planted")
    lm.model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def lm(planted_dir: Path):  # type: ignore[no-untyped-def]
    return load_model(str(planted_dir), "cpu")


def _group(lm, n: int = 8, planted: str = "u0"):  # type: ignore[no-untyped-def]
    """sigs and targets of one relation: ``planted`` has the planted units, others do not."""
    width, tok = lm.family.ffn_width, lm.tokenizer
    rng = np.random.default_rng(0)
    free = [u for u in range(width) if u not in UNITS]
    sigs = {f"u{i}": width + rng.choice(free, 4, replace=False) for i in range(n)}
    sigs[planted] = np.array([width + u for u in UNITS])
    targets = {f"u{i}": [iv.make_target(lm, lg, f"u{i}", _prompts(tok.mask_token, lg, n)[i],
                                        [_answer(tok)]) for lg in ("de", "en")]
               for i in range(n)}
    return sigs, targets


def test_planted_units_flip_the_answer_and_beat_the_controls(lm) -> None:  # type: ignore[no-untyped-def]
    sigs, targets = _group(lm)
    t, stats = iv.build_interventions(lm, "en", sigs, targets, k=4, n_controls=7, batch_size=16)
    rows = {(r["uuid"], r["target_lang"]): r for r in t.to_pylist()}
    assert t.num_rows == 16 and stats["clean_not_reproduced"] == 0
    for target in ("en", "de"):  # the positive control and the partner
        r = rows[("u0", target)]
        assert r["flipped"] and r["dlogp"] < -10
        assert r["n_controls"] == 7 and r["pvalue"] == pytest.approx(1 / 8)  # beats all 7
        assert abs(r["ctrl_random_mean"]) < 1e-3 and abs(r["ctrl_relation_mean"]) < 1e-3
    for u in ("u1", "u5"):  # other units: no effect, and u0's planted set is among its controls
        r = rows[(u, "en")]
        assert not r["flipped"] and abs(r["dlogp"]) < 1e-3 and r["pvalue"] >= 2 / 8


def test_random_and_partial_units_do_not_flip(lm) -> None:  # type: ignore[no-untyped-def]
    tok, width = lm.tokenizer, lm.family.ffn_width
    target = iv.make_target(lm, "en", "u0", _prompts(tok.mask_token, "en", 1)[0], [_answer(tok)])
    rng = np.random.default_rng(3)
    sets = [np.array([], np.int64), np.array([width + u for u in UNITS]),
            np.array([width + u for u in UNITS[:2]])]  # half of the planted units
    sets += [iv.random_like(sets[1], width, rng) for _ in range(20)]
    assert all(not set(s) & set(sets[1]) for s in sets[3:])  # random sets avoid the fact's own
    runner = iv._Runner(lm, "ffn", 0.0, 64)
    logp, preds = runner.run([(target, s) for s in sets])
    assert preds[0] == [_answer(tok)] and preds[1] != [_answer(tok)]
    assert all(p == [_answer(tok)] for p in preds[2:])
    assert np.all(np.abs(logp[3:] - logp[0]) < 1e-3)


def test_batching_does_not_change_the_numbers(lm) -> None:  # type: ignore[no-untyped-def]
    sigs, targets = _group(lm, n=6)
    one, _ = iv.build_interventions(lm, "en", sigs, targets, k=4, n_controls=3, n_random=3,
                                    batch_size=1)
    many, st = iv.build_interventions(lm, "en", sigs, targets, k=4, n_controls=3, n_random=3,
                                      batch_size=500)
    assert st["forward_passes"] == 1 and st["ablated_rows"] == 12 * (2 + 3 + 3)
    a, b = one.to_pandas(), many.to_pandas()
    assert a[["uuid", "target_lang", "flipped"]].equals(b[["uuid", "target_lang", "flipped"]])
    for c in ("dlogp", "ctrl_relation_mean", "ctrl_random_mean"):
        np.testing.assert_allclose(a[c], b[c], atol=1e-4)
    np.testing.assert_array_equal(a["pvalue"], b["pvalue"])


def test_scale_mode_and_controls_are_seeded(lm) -> None:  # type: ignore[no-untyped-def]
    sigs, targets = _group(lm, n=6)
    half, _ = iv.build_interventions(lm, "en", sigs, targets, k=4, mode="scale", scale=0.5,
                                     n_controls=3)
    zero, _ = iv.build_interventions(lm, "en", sigs, targets, k=4, n_controls=3)
    assert set(half["mode"].to_pylist()) == {"scale"}
    h, z = half.to_pylist()[1], zero.to_pylist()[1]  # u0 in en
    assert h["uuid"] == "u0" and not h["flipped"] and z["flipped"]  # half a signal still wins
    a = iv.plan_controls("u0", "en", sigs, n_controls=3, seed=0, width=64)
    b = iv.plan_controls("u0", "en", sigs, n_controls=3, seed=0, width=64)
    c = iv.plan_controls("u0", "en", sigs, n_controls=3, seed=1, width=64)
    assert all(np.array_equal(x, y) for x, y in zip(a.sets(), b.sets()))
    assert not all(np.array_equal(x, y) for x, y in zip(a.sets(), c.sets()))


def _hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_hooks_are_gone_after_an_exception(lm, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    site = lm.family.ffn_site(1)
    pos = torch.zeros((1, 5), dtype=torch.bool)
    with pytest.raises(RuntimeError, match="boom"), \
            Ablate(lm.model, {site: torch.ones((1, 64))}, positions=pos):
        assert _hooks(lm.model) == 1
        raise RuntimeError("boom")
    assert _hooks(lm.model) == 0
    sigs, targets = _group(lm, n=4)
    encoder = lm.model.bert.encoder.layer[1].output

    def fail(*_a, **_k):  # type: ignore[no-untyped-def]
        raise RuntimeError("forward failed")

    monkeypatch.setattr(encoder, "forward", fail)
    with pytest.raises(RuntimeError, match="forward failed"):
        iv.build_interventions(lm, "en", sigs, targets, k=4, n_controls=2)
    assert _hooks(lm.model) == 0


def test_xlmr_family_runs_through_its_adapter(tiny_xlmr_dir: Path) -> None:
    lm = load_model(str(tiny_xlmr_dir), "cpu")
    tok, width = lm.tokenizer, lm.family.ffn_width
    prompt = f"Paris is in {tok.mask_token} ."
    clean = iv._Runner(lm, "ffn", 0.0, 8).run(
        [(iv.make_target(lm, "en", "u0", prompt, [5]), np.array([], np.int64))])[1][0]
    targets = {u: [iv.make_target(lm, "en", u, prompt, clean)] for u in ("u0", "u1", "u2")}
    sigs = {"u0": np.array([0, 1, width + 2]), "u1": np.array([width + 5, 7, 9]),
            "u2": np.array([3, width + 4, width + 8])}
    t, stats = iv.build_interventions(lm, "en", sigs, targets, k=3, n_controls=2)
    assert t.num_rows == 3 and stats["clean_not_reproduced"] == 0
    assert np.isfinite(t["dlogp"].to_numpy()).all() and set(t["n_controls"].to_pylist()) == {2}
    assert _hooks(lm.model) == 0


# ---- the stage ----------------------------------------------------------------------------

N_P1 = 24  # enough same-relation controls to reach p < 0.05


def _facts(lang: str) -> list[tuple[str, str, bool]]:
    """(uuid, relation, has signature) of the correct facts of a language."""
    rows = [(f"a{i:02d}", "P1", True) for i in range(N_P1)]
    rows += [("b0", "P2", True), ("b1", "P2", True), ("b2", "P2", False)]
    if lang == "en":
        rows += [("c0", "P1", True)]  # correct in en only: no partner
    return rows


def _write(out: Path, model_dir: Path) -> None:
    tok = load_model(str(model_dir), "cpu").tokenizer
    width = 64
    for lang in ("en", "de"):
        facts = _facts(lang)
        prompts = _prompts(tok.mask_token, lang, len(facts))
        prompts[-1 if lang == "de" else 0] = "no mask here ."  # a counted mask mismatch
        n = len(facts)
        storage.write_table(out, "queries", tables.conform("queries", pa.table({
            "lang": [lang] * n, "uuid": [f[0] for f in facts], "relation": [f[1] for f in facts],
            "k": pa.array([1] * n, pa.int32()), "prompt": prompts})), lang, fp="q")
        storage.write_table(out, "predictions", tables.conform("predictions", pa.table({
            "lang": [lang] * n, "uuid": [f[0] for f in facts], "relation": [f[1] for f in facts],
            "protocol": ["full"] * n, "k": pa.array([1] * n, pa.int32()),
            "pred_ids": pa.array([[_answer(tok)]] * n, pa.list_(pa.int32())),
            "pred_text": ["x"] * n, "gold_ids": pa.array([[_answer(tok)]] * n, pa.list_(pa.int32())),
            "correct_full": [True] * n, "correct_partial": [True] * n,
            "correct_exact": [True] * n, "score": pa.array([0.0] * n, pa.float32())})), lang,
            fp="p")
        rng = np.random.default_rng(7)
        free = [u for u in range(width) if u not in UNITS]
        sig = [f for f in facts if f[2]]
        ids = [[width + u for u in UNITS] if f[0] == "a01" else
               (width + rng.choice(free, 6, replace=False)).tolist() for f in sig]
        storage.write_table(out, "signatures", tables.conform("signatures", pa.table({
            "lang": [lang] * len(sig), "uuid": [f[0] for f in sig],
            "relation": [f[1] for f in sig], "site": ["ffn"] * len(sig),
            "group_size": pa.array([len(sig)] * len(sig), pa.int32()),
            "small_group": [False] * len(sig),
            "neuron_ids": pa.array(ids, pa.list_(pa.int32())),
            "scores": pa.array([[1.0] * len(x) for x in ids], pa.list_(pa.float16()))})),
            lang, fp="s")


def _cfg(out: Path, model_dir: Path):  # type: ignore[no-untyped-def]
    return load_config(overrides={"out": str(out), "probe.model": str(model_dir),
                                  "probe.device": "cpu", "neurons.top_k": 6, "neurons.overlap_k": 4,
                                  "interventions.k": 4, "interventions.n_controls": 30,
                                  "interventions.batch_size": 64})


@pytest.fixture(scope="module")
def done_run(tmp_path_factory: pytest.TempPathFactory, planted_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("interventions")
    _write(out, planted_dir)
    job_interventions.run(_cfg(out, planted_dir))
    return out


def test_stage_counts_and_balances(done_run: Path) -> None:
    en = storage.read_table(done_run, "interventions", ["en"])
    stats = storage.read_stats(done_run, "interventions", "en")
    # en: 24 + 3 + 1 facts; 27 of them also correct in de; b2 has no signature (2 pairs);
    # a00's en prompt and b2's de prompt have no mask (b2 is rejected for its signature first)
    assert stats["in"] == 28 + 27 and stats["rejected_no_signature"] == 2
    assert stats["rejected_mask_mismatch"] == 1 and stats["rejected_no_query"] == 0
    assert stats["out"] == en.num_rows == 52 and storage.check_balance(stats)
    assert stats["facts_no_signature"] == 1 and stats["facts_no_partner"] == 1
    keys = set(zip(en["uuid"].to_pylist(), en["target_lang"].to_pylist()))
    assert ("c0", "en") in keys and ("a00", "en") not in keys and ("a00", "de") in keys
    assert set(en["n_controls"].to_pylist()) == {24, 1}  # P1: 24 others (30 asked); P2: 1


def test_stage_finds_the_planted_fact_and_the_label_says_shared(done_run: Path) -> None:
    en = storage.read_table(done_run, "interventions", ["en"])
    planted = en.filter(pc.equal(en["uuid"], "a01")).to_pylist()
    assert [r["target_lang"] for r in planted] == ["de", "en"]
    assert all(r["flipped"] and r["pvalue"] == pytest.approx(1 / 25) for r in planted)
    others = en.filter(pc.not_equal(en["uuid"], "a01"))
    assert not any(others["flipped"].to_pylist())
    labels = pa.table({"lang": ["en", "en", "en", "en"], "uuid": ["a01", "a02", "c0", "b2"]})
    out = apply_causal(labels, en, alpha=0.05, method="holm").to_pylist()
    assert out[0]["causal"] == "shared" and out[0]["causal_shared_with"] == ["de"]
    assert (out[1]["causal"], out[1]["causal_reason"]) == ("untested", "own_no_effect")
    assert (out[2]["causal"], out[2]["causal_reason"]) == ("untested", "no_partner")
    assert (out[3]["causal"], out[3]["causal_reason"]) == ("untested", "not_intervened")


def test_rerun_after_a_kill_gives_the_same_table(done_run: Path, planted_dir: Path,
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "killed"
    _write(out, planted_dir)
    real = job_interventions.build_interventions
    calls = []

    def killed(*a, **k):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the second group of de: the first one is checkpointed
        return real(*a, **k)

    monkeypatch.setattr(job_interventions, "build_interventions", killed)
    with pytest.raises(KeyboardInterrupt):
        job_interventions.run(_cfg(out, planted_dir))
    ckpt = list((out / "interventions").glob("_ckpt-de-*/*.parquet"))
    assert [p.name for p in ckpt] == ["P1.parquet"]
    monkeypatch.setattr(job_interventions, "build_interventions", real)
    job_interventions.run(_cfg(out, planted_dir))
    for lang in ("en", "de"):
        a = storage.read_table(done_run, "interventions", [lang])
        b = storage.read_table(out, "interventions", [lang])
        assert a.num_rows and a.to_pandas().equals(b.to_pandas())  # NaN == NaN here
        assert storage.read_stats(done_run, "interventions", lang) == \
            storage.read_stats(out, "interventions", lang)
    assert not list((out / "interventions").glob("_ckpt-*"))
    before = storage.read_manifest(out, "interventions", "en")
    job_interventions.run(_cfg(out, planted_dir))  # done: skipped
    assert storage.read_manifest(out, "interventions", "en") == before
    shutil.rmtree(out)


def test_pool_null_draws_from_the_relations_units(lm) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    others = [np.array([1, 2, 3, 4]), np.array([1, 2, 5, 6]), np.array([1, 7, 8, 9])]
    sets = iv.pool_sets(np.array([10, 11, 12]), others, 200, rng)
    assert len(sets) == 200 and all(len(set(s)) == 3 and set(s) <= set(range(1, 10))
                                    for s in sets)
    freq = np.bincount(np.concatenate(sets), minlength=10)
    assert freq[1] > freq[2] > freq[9]  # unit 1 is in three sets, 2 in two, 9 in one
    assert iv.pool_sets(np.arange(5), others, 10, rng) == []  # 9 units < 2 x 5: no draws
    sigs, targets = _group(lm, n=4)  # 3 other facts: the facts null stops at 3 draws
    t, _ = iv.build_interventions(lm, "en", sigs, targets, k=4, n_controls=9, null="pool")
    u0 = t.filter(pc.equal(t["uuid"], "u0")).to_pylist()
    assert all(r["n_controls"] == 9 and r["pvalue"] == pytest.approx(1 / 10) for r in u0)
    with pytest.raises(ValueError, match="unknown null"):
        iv.plan_controls("u0", "en", sigs, n_controls=2, seed=0, width=64, null="other")
