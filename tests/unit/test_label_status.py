"""status: every code, the -1 fill, protocol and match choice, and missing trace or probe."""

from __future__ import annotations

import pytest
from label_data import cooc, facts, preds

from factroots.label.status import build_status, status_stats

FACTS = facts([("en", "u1", "P19"), ("en", "u2", "P19"), ("en", "u3", "P36"), ("en", "u4", "P36"),
               ("de", "u1", "P19"), ("de", "u2", "P19"), ("fr", "u1", "P19"),
               ("fr", "u5", "P17")])
COOC = cooc([("en", "u1", True), ("en", "u2", False), ("en", "u3", True), ("en", "u4", False),
             ("de", "u1", True), ("de", "u2", False)])
PREDS = preds([("en", "u1", True), ("en", "u2", True), ("en", "u3", False), ("en", "u4", False),
               ("de", "u1", True, True), ("de", "u2", False, True), ("fr", "u1", True),
               ("fr", "u5", False)])


def _codes(t) -> dict:  # type: ignore[no-untyped-def]
    return {(r["lang"], r["uuid"]): r["status"] for r in t.to_pylist()}


def test_every_code_and_the_not_in_language_fill() -> None:
    t = build_status(FACTS, COOC, PREDS, ["en", "de"])
    codes = _codes(t)
    assert t.num_rows == 2 * 4  # every uuid of the run's languages' facts (u5 is fr only)
    assert [codes[("en", u)] for u in ("u1", "u2", "u3", "u4")] == [3, 2, 1, 0]
    assert codes[("de", "u1")] == 3 and codes[("de", "u2")] == 0
    assert codes[("de", "u3")] == -1 and ("en", "u5") not in codes
    codes = _codes(build_status(FACTS, COOC, PREDS, ["en", "fr"]))
    assert codes[("en", "u5")] == -1 and codes[("fr", "u5")] is None


def test_untraced_language_is_marked_not_invented() -> None:
    t = build_status(FACTS, COOC, PREDS, ["en", "fr"])
    rows = {(r["lang"], r["uuid"]): r for r in t.to_pylist()}
    fr1 = rows[("fr", "u1")]
    assert fr1["status"] is None and fr1["present"] is None
    assert fr1["correct"] is True and fr1["missing"] == "not_traced"
    assert rows[("fr", "u2")]["status"] == -1 and rows[("fr", "u2")]["missing"] == ""
    stats = status_stats(t.filter(t.column("lang").to_numpy(zero_copy_only=False) == "fr"))
    assert stats["status_unknown"] == 2 and stats["unknown_not_traced"] == 2
    assert stats["status_-1"] == 3 and stats["in"] == stats["out"] == 5


def test_missing_prediction_row_and_unprobed_language() -> None:
    p = preds([("en", "u1", True)])
    t = build_status(FACTS, COOC, p, ["en", "de"])
    rows = {(r["lang"], r["uuid"]): r for r in t.to_pylist()}
    assert rows[("en", "u1")]["status"] == 3
    assert rows[("en", "u2")]["status"] is None
    assert rows[("en", "u2")]["missing"] == "no_prediction"
    assert rows[("de", "u1")]["missing"] == "not_probed"
    assert rows[("de", "u1")]["present"] is True


def test_no_trace_and_no_probe_at_all() -> None:
    t = build_status(FACTS, None, None, ["en", "fr"])
    rows = {(r["lang"], r["uuid"]): r for r in t.to_pylist()}
    assert rows[("en", "u1")]["status"] is None
    assert rows[("en", "u1")]["missing"] == "not_traced;not_probed"
    assert rows[("en", "u5")]["status"] == -1 and rows[("en", "u5")]["missing"] == ""


def test_protocol_and_match_are_chosen() -> None:
    typed = preds([("en", "u3", True), ("en", "u1", False)], protocol="typed")
    both = PREDS.__class__.from_batches(PREDS.to_batches() + typed.to_batches())
    codes = _codes(build_status(FACTS, COOC, both, ["en"], protocol="typed"))
    assert codes[("en", "u3")] == 3 and codes[("en", "u1")] == 1
    assert codes[("en", "u2")] is None  # no typed prediction for u2
    codes = _codes(build_status(FACTS, COOC, PREDS, ["de"], match="partial"))
    assert codes[("de", "u2")] == 2


@pytest.mark.parametrize("langs", [["en"], ["de", "en"]])
def test_schema_and_order(langs: list[str]) -> None:
    t = build_status(FACTS, COOC, PREDS, langs)
    keys = list(zip(t.column("lang").to_pylist(), t.column("uuid").to_pylist()))
    assert keys == sorted(keys)
    assert t.schema.field("status").type.bit_width == 8
