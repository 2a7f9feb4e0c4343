"""The main job end to end on a small budget: lab -> facts -> trace -> probe -> neurons -> label
-> lab check -> report, then the lab comparison and a rerun that redoes nothing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from factroots import pipeline, storage
from factroots.config import load_config

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.probe]

LANGS = ["en", "uk"]
SMALL = {
    "langs": LANGS, "lab.langs": LANGS, "lab.transfer_facts": 12, "lab.facts_per_group": 6,
    "lab.background_facts": 20, "lab.repeats": 6, "lab.detector_facts": 3, "lab.max_steps": 900,
    "lab.hidden_size": 96, "lab.layers": 2, "lab.vocab_size": 4000, "lab.train_minutes": 6.0,
    "probe.partial": False, "probe.device": "cpu", "neurons.top_k": 40, "neurons.overlap_k": 20,
}


@pytest.fixture(scope="module")
def main_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    out = tmp_path_factory.mktemp("main_job")
    cfg = load_config(None, {"out": str(out), **SMALL})
    report = pipeline.run(cfg)
    return cfg, Path(report)


def _check(out: Path) -> dict[tuple[str, str], tuple[float, int, int]]:
    t = storage.read_table(out, "lab_check").to_pylist()
    return {(r["lang"], r["metric"]): (r["value"], r["numerator"], r["denominator"]) for r in t}


def test_every_table_is_written_for_every_language(main_job) -> None:  # type: ignore[no-untyped-def]
    cfg, report = main_job
    out = Path(cfg.out)
    for table in ("facts", "planted_facts", "sentences", "cooccurrence", "predictions",
                  "status", "fact_labels"):
        assert storage.done_langs(out, table) == sorted(LANGS), table
    assert storage.done_langs(out, "lab_check") == sorted([*LANGS, "all"])
    facts = storage.read_table(out, "facts")  # the lab's facts: fictional + a real sample
    plan = storage.read_table(out, "planted_facts")
    assert sorted(facts["uuid"].to_pylist()) == sorted(plan["uuid"].to_pylist())
    assert facts.num_rows == 2 * (12 + 4 * 6 + 2 * (12 + 6) + 2 * 3 + 20)
    assert report.is_file() and report.suffix == ".md"
    times = json.loads((out / "run_times.json").read_text())
    assert set(times) >= {"facts", "lab build", "trace", "probe", "neurons", "label", "report"}
    assert list(times)[:2] == ["lab build", "facts"]  # the facts stage reads the lab's facts


def test_the_trace_finds_exactly_what_the_corpus_holds(main_job) -> None:  # type: ignore[no-untyped-def]
    cfg, _ = main_job
    m = _check(Path(cfg.out))
    for lg in LANGS:
        _, num, den = m[(lg, "trace_finds_planted")]
        assert den > 0 and num == den, (lg, m[(lg, "trace_finds_planted")])
        _, num, den = m[(lg, "trace_beyond_plan_in_corpus")]
        assert num == den, (lg, num, den)
        value, num, den = m[(lg, "trace_finds_real_sentence")]  # a chunk may cut a sentence
        assert den == 0 or value >= 0.8, (lg, num, den)


def test_the_model_learnt_the_planted_facts_and_the_labels_are_scored(main_job) -> None:  # type: ignore[no-untyped-def]
    cfg, _ = main_job
    m = _check(Path(cfg.out))
    for lg in LANGS:
        value, num, den = m[(lg, "p1_planted")]
        assert den > 0 and value >= 0.5, (lg, value, num, den)
        assert m[(lg, "p1_background")][0] < value
    for lg in [*LANGS, "all"]:
        for metric in ("transferred_precision", "transferred_recall", "shared_precision",
                       "independent_recall", "shared_vs_causal_precision",
                       "transferred_any_source_recall", "transferred_causal_precision"):
            v, num, den = m[(lg, metric)]
            assert (den == 0 and (v is None or math.isnan(v))) or 0.0 <= v <= 1.0  # null: 0/0
    assert m[("all", "p1_planted")][2] == sum(m[(lg, "p1_planted")][2] for lg in LANGS)
    lab = json.loads((Path(cfg.out) / "lab" / "lab.json").read_text())
    assert set(lab["models"]) == {"full_seed0", "counterfactual", "detector"}
    assert lab["detector"]["changed_verdicts"] == 0  # the written units leave the rest alone
    value, num, den = m[("all", "detector_units_in_signature")]  # the signatures find them
    assert den > 0 and value >= 0.5, (num, den)
    assert m[("all", "p1_detector")][2] == 2 * 2 * 3
    assert lab["train"]["counterfactual"]["core_seconds"] > 0
    assert (Path(cfg.out) / "lab" / "check.md").read_text().startswith("| metric |")


def test_a_rerun_skips_finished_work(main_job) -> None:  # type: ignore[no-untyped-def]
    cfg, _ = main_job
    out = Path(cfg.out)
    before = {lg: storage.read_manifest(out, "predictions", lg)["created"] for lg in LANGS}
    from factroots.lab import job as lab_job
    from factroots.probe import job as probe_job

    weights = lab_job.artifacts(cfg).model_dir / "model.safetensors"
    model = weights.stat().st_mtime
    lab_job.build(cfg)
    probe_job.run(pipeline.plan(cfg))
    assert weights.stat().st_mtime == model
    assert {lg: storage.read_manifest(out, "predictions", lg)["created"] for lg in LANGS} == before
