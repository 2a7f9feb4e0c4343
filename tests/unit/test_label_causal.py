"""label.causal.apply_causal: the causal verdict from `interventions`, corrected like overlap."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from factroots import tables
from factroots.label.causal import apply_causal, verdict

NAN = math.nan


def _iv(rows: list[tuple[str, str, str, float, int]]) -> pa.Table:
    """interventions rows from (lang, uuid, target_lang, pvalue, n_controls)."""
    n = len(rows)
    return tables.conform("interventions", pa.table({
        "lang": [r[0] for r in rows], "uuid": [r[1] for r in rows],
        "target_lang": [r[2] for r in rows], "k": pa.array([50] * n, pa.int32()),
        "mode": ["zero"] * n, "dlogp": [-1.0] * n, "flipped": [False] * n,
        "ctrl_relation_mean": [0.0] * n, "ctrl_relation_sd": [1.0] * n,
        "ctrl_random_mean": [0.0] * n, "pvalue": [r[3] for r in rows],
        "n_controls": pa.array([r[4] for r in rows], pa.int32())}))


def _t(rows: list[tuple]) -> list[tuple]:
    """verdict's (target_lang, pvalue, n_controls) from (lang, uuid, target_lang, p, n)."""
    return [r[2:] for r in rows]


def _labels(keys: list[tuple[str, str]]) -> pa.Table:
    return pa.table({"lang": [k[0] for k in keys], "uuid": [k[1] for k in keys],
                     "causal": ["stale"] * len(keys)})


def test_no_interventions_leaves_every_fact_untested() -> None:
    out = apply_causal(_labels([("en", "u1"), ("de", "u1")]), None)
    assert out.column("causal").to_pylist() == ["untested", "untested"]
    assert out.column("causal_reason").to_pylist() == ["no_interventions"] * 2
    assert out.column("causal_shared_with").to_pylist() == [[], []]
    assert out.column_names == ["lang", "uuid", "causal", "causal_shared_with", "causal_reason"]


def test_holm_corrects_the_partners_and_bh_is_laxer() -> None:
    rows = [("en", "u1", "en", 0.005, 199), ("en", "u1", "de", 0.01, 199),
            ("en", "u1", "fr", 0.03, 199), ("en", "u1", "ru", 0.5, 199)]
    # Holm: 0.03, 0.06, 0.5 (the positive control en is not a partner) -> only de
    assert verdict("en", _t(rows), alpha=0.05, method="holm") == ("shared", "beats_controls", ["de"])
    # BH: 0.03, 0.045, 0.5 -> de and fr
    assert verdict("en", _t(rows), alpha=0.05, method="bh") == ("shared", "beats_controls",
                                                            ["de", "fr"])
    assert verdict("en", _t(rows), alpha=0.05, method="none")[2] == ["de", "fr"]


def test_not_shared_needs_power_and_a_positive_control() -> None:
    weak = [("en", "u1", "de", 0.03, 199), ("en", "u1", "fr", 0.04, 199)]
    assert verdict("en", _t(weak + [("en", "u1", "en", 0.005, 199)]), alpha=0.05,
                   method="holm") == ("not_shared", "below_controls", [])
    assert verdict("en", _t(weak + [("en", "u1", "en", 0.3, 199)]), alpha=0.05,
                   method="holm")[:2] == ("untested", "own_no_effect")
    assert verdict("en", _t(weak), alpha=0.05, method="holm")[:2] == ("untested",
                                                                  "no_positive_control")
    # 39 controls: floor 1/40 = 0.025; Holm over 3 partners cannot go below 0.075
    few = [("en", "u1", lg, 0.5, 39) for lg in ("de", "fr", "ru")] + [("en", "u1", "en", 0.025, 39)]
    assert verdict("en", _t(few), alpha=0.05, method="holm")[:2] == ("untested", "underpowered")
    assert verdict("en", _t(few), alpha=0.05, method="bh")[:2] == ("not_shared", "below_controls")


def test_reasons_for_facts_that_could_not_be_tested() -> None:
    ivs = _iv([("en", "u1", "en", 0.01, 50), ("en", "u2", "en", 0.01, 50),
               ("en", "u2", "de", NAN, 0), ("de", "u3", "en", 0.001, 999),
               ("de", "u3", "de", 0.001, 999)])
    keys = [("en", "u1"), ("en", "u2"), ("de", "u3"), ("en", "u9")]
    out = apply_causal(_labels(keys), ivs, alpha=0.05, method="holm").to_pylist()
    assert [(r["causal"], r["causal_reason"]) for r in out] == [
        ("untested", "no_partner"), ("untested", "no_controls"), ("shared", "beats_controls"),
        ("untested", "not_intervened")]
    assert out[2]["causal_shared_with"] == ["en"]


def test_unknown_correction_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown correction"):
        verdict("en", [("de", 0.01, 99)], alpha=0.05, method="sidak")
