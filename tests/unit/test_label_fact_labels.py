"""fact_labels under the pooled rule without correction (the earlier rule, kept as an option):
every label and reason, source ranking, ties at the threshold, the pooled null."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from label_data import ids, sigs, status, table

from factroots.label.easy_facts import NAMING, OTHERS, SHARED
from factroots.label.fact_labels import LabelRules, build_fact_labels
from factroots.label.neurons import (
    jaccard,
    load_signatures,
    null_distribution,
    pvalue,
    threshold,
)
from factroots.label.null import NullConfig

R = "P19"
ST = status([
    ("en", "f1", R, 3), ("de", "f1", R, 3), ("fr", "f1", R, 3),
    ("en", "f2", R, 3), ("de", "f2", R, 3),
    ("en", "f3", R, 3), ("de", "f3", R, 0),
    ("de", "f4", R, 2), ("en", "f4", R, 3), ("fr", "f4", R, 3),
    ("fr", "f5", R, 2), ("en", "f5", R, 3),
    ("fr", "f6", R, 2), ("en", "f6", R, 1),
    ("fr", "f7", R, None),
    ("en", "f8", R, 3), ("de", "f8", R, 3),
    ("de", "f9", R, 2), ("en", "f9", R, 3),
    ("xx", "f1", R, 0), ("xx", "f2", R, 1), ("xx", "f3", R, -1),
])
EASY = table("easy_facts", [
    {"lang": "de", "uuid": "f4", "relation": R, "category": OTHERS, "rule": "none"},
    {"lang": "fr", "uuid": "f5", "relation": R, "category": NAMING, "rule": "naming_relation"},
    {"lang": "fr", "uuid": "f6", "relation": R, "category": OTHERS, "rule": "none"},
    {"lang": "de", "uuid": "f9", "relation": R, "category": SHARED, "rule": "substring"},
])
# Different facts never share a neuron, so every null Jaccard is 0 and the threshold is 0.
SIGS = sigs([
    ("en", "f1", R, ids(1)), ("de", "f1", R, ids(1)), ("fr", "f1", R, ids(1)[:2] + [90, 91]),
    ("en", "f2", R, ids(2)), ("de", "f2", R, ids(12)),
    ("en", "f3", R, ids(3)),
    ("de", "f4", R, ids(4)), ("en", "f4", R, ids(4)[:3] + [99]),
    ("fr", "f4", R, ids(4)[:1] + [96, 97, 98]),
    ("fr", "f5", R, ids(5)), ("en", "f5", R, ids(5)),
    ("en", "f8", R, ids(8)), ("de", "f8", R, ids(8), True),
    ("de", "f9", R, ids(9)), ("en", "f9", R, ids(9)),
])




def old_rule(min_null: int = 1) -> LabelRules:
    """The earlier rule: pooled null, J > τ95 shared, J ≤ τ95 independent, no correction."""
    return LabelRules(null=NullConfig(rule="pooled", lower_q=95, min_null=min_null),
                      correction="none", alpha=1.0, transfer_evidence="none")


@pytest.fixture(scope="module")
def labels() -> dict:
    t = build_fact_labels(ST, EASY, SIGS, None, top_k=4, rules=old_rule())
    return {(r["lang"], r["uuid"]): r for r in t.to_pylist()}


def test_only_correct_facts_get_a_row(labels: dict) -> None:
    assert ("en", "f6") not in labels and ("de", "f3") not in labels
    assert not [k for k in labels if k[0] == "xx"]  # a language with no correct fact
    assert ("fr", "f7") in labels


def test_shared_with_each_partner_above_the_null(labels: dict) -> None:
    r = labels[("en", "f1")]
    assert r["label"] == "shared" and r["reason"] == "above_null"
    assert r["partner_langs"] == ["de", "fr"]                 # ranked by Jaccard
    assert r["partner_jaccard"] == pytest.approx([1.0, 2 / 6])
    assert r["partner_threshold"] == [0.0, 0.0]
    assert r["shared_with"] == ["de", "fr"] and r["source_langs"] == []
    assert r["partner_pvalue"][0] < 0.1


def test_tie_at_the_threshold_is_independent(labels: dict) -> None:
    r = labels[("en", "f2")]
    assert r["partner_jaccard"] == [0.0] and r["partner_threshold"] == [0.0]
    assert r["label"] == "independent" and r["shared_with"] == []
    assert r["reason"] == "below_lower_bound"
    assert r["partner_pvalue"] == [1.0]


def test_fact_correct_in_one_language_only(labels: dict) -> None:
    assert (labels[("en", "f3")]["label"], labels[("en", "f3")]["reason"]) == (
        "unlabelled", "no_partner")


def test_transferred_with_ranked_sources(labels: dict) -> None:
    r = labels[("de", "f4")]
    assert r["label"] == "transferred" and r["status"] == 2
    # the rule needs no neuron evidence, and the reason says the overlap shows en sharing it
    assert r["reason"] == "absent_with_shared_source" and r["sibling_in_lang"] is None
    assert "en" in r["shared_with"]
    assert r["source_langs"] == ["en", "fr"]
    assert r["partner_jaccard"] == pytest.approx([3 / 5, 1 / 7])


def test_cue_explained_and_unsourced(labels: dict) -> None:
    assert (labels[("fr", "f5")]["label"], labels[("fr", "f5")]["reason"]) == (
        "cue_explained", NAMING)
    assert labels[("fr", "f5")]["source_langs"] == ["en"]    # listed, not used to label
    assert (labels[("de", "f9")]["label"], labels[("de", "f9")]["reason"]) == (
        "cue_explained", SHARED)
    assert (labels[("fr", "f6")]["label"], labels[("fr", "f6")]["reason"]) == (
        "unlabelled", "absent_no_source")


def test_unknown_presence_and_small_groups(labels: dict) -> None:
    assert labels[("fr", "f7")]["reason"] == "presence_unknown"
    assert labels[("de", "f8")]["reason"] == "no_signature"       # its group is too small
    r = labels[("en", "f8")]
    assert r["reason"] == "partners_without_signature" and np.isnan(r["partner_jaccard"][0])
    t = build_fact_labels(ST, EASY, SIGS, None, top_k=4, rules=old_rule(),
                          use_small_groups=True)
    got = {(r["lang"], r["uuid"]): r["label"] for r in t.to_pylist()}
    assert got[("en", "f8")] == "shared"


def test_no_signatures_no_easy_facts_and_too_small_a_null() -> None:
    t = build_fact_labels(ST, None, None, None, top_k=4)
    got = {(r["lang"], r["uuid"]): r["reason"] for r in t.to_pylist()}
    assert got[("en", "f1")] == "no_signature" and got[("de", "f4")] == "no_easy_facts_row"
    t = build_fact_labels(ST, EASY, SIGS, None, top_k=4, rules=old_rule(10_000))
    got = {(r["lang"], r["uuid"]): r for r in t.to_pylist()}
    assert got[("en", "f1")]["reason"] == "inconclusive"      # a null, but too small
    assert np.isnan(got[("en", "f1")]["partner_threshold"][0])


def test_ties_in_fact_jaccard_are_broken_by_the_pair_mean() -> None:
    st = status([("de", "g", R, 2), ("en", "g", R, 3), ("fr", "g", R, 3)])
    easy = table("easy_facts", [{"lang": "de", "uuid": "g", "relation": R, "category": OTHERS}])
    overlap = table("overlap", [{"lang": "de", "other_lang": "fr", "mean_jaccard": 0.4},
                                {"lang": "de", "other_lang": "en", "mean_jaccard": 0.2}])
    t = build_fact_labels(st, easy, None, overlap)
    assert t.to_pylist()[0]["source_langs"] == ["fr", "en"]


def test_null_threshold_and_pvalue_with_known_values() -> None:
    sg = load_signatures(sigs([("en", "a", R, [1, 2, 3, 4]), ("en", "b", R, [5, 6, 7, 8]),
                               ("de", "a", R, [1, 2, 3, 4]), ("de", "b", R, [1, 2, 7, 8]),
                               ("de", "c", "P1", [1, 2, 3, 4])]), 4, False)
    null = null_distribution(sg, "en", "de", 200, 0)   # en.b-de.a: 0, en.a-de.b: 2/6; R only
    assert null.tolist() == pytest.approx([0.0, 1 / 3])
    assert threshold(null, 95, 1) == pytest.approx(0.95 / 3) and np.isnan(threshold(null, 95, 3))
    assert pvalue(np.array([0.0, 0.0, 0.0, 0.5]), 0.5) == pytest.approx(2 / 5)
    assert pvalue(np.array([0.0, 0.1]), 0.9) == pytest.approx(1 / 3)
    assert threshold(np.linspace(0, 1, 101), 95, 1) == pytest.approx(0.95)


def test_sampled_null_is_seeded_and_never_pairs_a_fact_with_itself() -> None:
    rng = np.random.default_rng(1)
    rows = [(lg, f"u{i}", R, rng.choice(100, 10, replace=False).tolist())
            for lg in ("en", "de") for i in range(40)]
    sg = load_signatures(sigs(rows), 10, False)
    a = null_distribution(sg, "en", "de", 300, seed=3)
    assert len(a) == 300 and np.array_equal(a, null_distribution(sg, "de", "en", 300, seed=3))
    assert (a < 1.0).all()   # random 10-of-100 sets: a self-pair would give 1.0
    same = jaccard(sg, sg.rows([("en", "u1")]), sg.rows([("de", "u1")]))
    assert same[0] == pytest.approx(len(set(rows[1][3]) & set(rows[41][3]))
                                    / len(set(rows[1][3]) | set(rows[41][3])))


def test_output_schema_on_empty_input() -> None:
    t = build_fact_labels(status([("en", "f", R, 0)]), None, None, None)
    assert t.num_rows == 0 and isinstance(t, pa.Table)
