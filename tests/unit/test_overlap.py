"""overlap and signatures on hand-built data: exact schema, Jaccard means, counts, small groups."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from factroots import tables
from factroots.errors import ConfigError
from factroots.probe.overlap import build_overlap, topk_matrix
from factroots.probe.signatures import build_signatures, global_ids


def _sig(rows: list[tuple[str, str, list[int]]], site: str = "ffn") -> pa.Table:
    n = len(rows)
    return tables.conform("signatures", pa.table({
        "lang": [r[0] for r in rows], "uuid": [r[1] for r in rows], "relation": ["P1"] * n,
        "site": [site] * n, "group_size": [3] * n, "small_group": [not r[2] for r in rows],
        "neuron_ids": pa.array([r[2] for r in rows], pa.list_(pa.int32())),
        "scores": pa.array([[1.0] * len(r[2]) for r in rows], pa.list_(pa.float16())),
    }))


def test_overlap_means_jaccard_over_shared_facts_per_ordered_pair() -> None:
    sig = _sig([
        ("en", "u1", [1, 2, 3, 4]), ("en", "u2", [5, 6, 7, 8]), ("en", "u3", [1, 2, 3, 4]),
        ("de", "u1", [1, 2, 3, 9]),  # J = 3/5 with en
        ("de", "u2", [5, 6, 10, 11]),  # J = 2/6 with en
        ("de", "u9", [1, 2, 3, 4]),  # not in en
        ("zh", "u3", []),  # small group: no signature, not counted
    ])
    ov = build_overlap(sig, k=4)
    assert ov.schema.equals(tables.spec("overlap").schema)
    rows = {(r["lang"], r["other_lang"]): r for r in ov.to_pylist()}
    assert set(rows) == {(a, b) for a in ("de", "en", "zh") for b in ("de", "en", "zh") if a != b}
    assert rows[("en", "de")]["mean_jaccard"] == pytest.approx((3 / 5 + 2 / 6) / 2)
    assert rows[("de", "en")] == {**rows[("en", "de")], "lang": "de", "other_lang": "en"}
    assert rows[("en", "de")]["n_facts"] == 2 and rows[("en", "de")]["top_k"] == 4
    assert rows[("en", "zh")]["n_facts"] == 0 and rows[("en", "zh")]["mean_jaccard"] is None


def test_overlap_compares_only_the_first_k_neurons() -> None:
    sig = _sig([("en", "u1", [1, 2, 3, 4, 5, 6]), ("de", "u1", [1, 2, 7, 8, 5, 6])])
    ov = build_overlap(sig, k=2)
    assert ov.to_pylist()[0]["mean_jaccard"] == 1.0
    assert build_overlap(sig, k=6).to_pylist()[0]["mean_jaccard"] == pytest.approx(4 / 8)


def test_overlap_refuses_mixed_sites() -> None:
    sig = pa.concat_tables([_sig([("en", "u1", [1])]), _sig([("de", "u1", [1])], site="hidden")])
    with pytest.raises(ConfigError):
        build_overlap(sig, k=1)


def test_topk_matrix_pads_short_lists() -> None:
    m = topk_matrix(pa.array([[3, 1, 2], [7], []], pa.list_(pa.int32())), 2)
    assert m.tolist() == [[3, 1], [7, -1], [-1, -1]]


def test_build_signatures_has_the_exact_schema_and_global_ids() -> None:
    acts = np.zeros((4, 6), np.float32)
    acts[2, 4] = 5.0  # fact c differs most on captured column 4 = layer 3, unit 1
    t = build_signatures("en", "P19", ["a", "b", "c", "d"], acts, site="ffn", layers=[1, 3],
                         width=3, top_k=2)
    assert t.schema.equals(tables.spec("signatures").schema)
    row = t.to_pylist()[2]
    assert row["neuron_ids"][0] == 3 * 3 + 1 and row["scores"][0] == pytest.approx(5.0)
    assert row["group_size"] == 4 and row["small_group"] is False
    assert global_ids(np.array([0, 2, 3, 5]), [1, 3], 3).tolist() == [3, 5, 9, 11]


def test_build_signatures_flags_small_groups_with_empty_lists() -> None:
    t = build_signatures("en", "P19", ["a", "b"], np.ones((2, 6), np.float32), site="ffn",
                         layers=[0, 1], width=3, top_k=2, min_group=3)
    assert t.column("small_group").to_pylist() == [True, True]
    assert t.column("neuron_ids").to_pylist() == [[], []]
    assert t.column("group_size").to_pylist() == [2, 2]


def test_overlap_lists_languages_without_ranked_facts() -> None:
    ov = build_overlap(_sig([]), k=5, langs=["en", "de"])
    assert [(r["lang"], r["other_lang"], r["n_facts"]) for r in ov.to_pylist()] == \
        [("de", "en", 0), ("en", "de", 0)]
