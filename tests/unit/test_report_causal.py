"""report.causal: the agreement table and the effect figure from stored tables."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from factroots import storage, tables
from factroots.report.causal import agreement, causal_blocks, pair_frame


def _write(out: Path) -> None:
    iv = [("en", "u1", "en", -5.0, 0.01), ("en", "u1", "de", -4.0, 0.01),
          ("en", "u2", "en", -3.0, 0.01), ("en", "u2", "de", 0.0, 0.6),
          ("en", "u3", "en", -0.1, 0.5), ("en", "u3", "de", -0.1, 0.5)]
    n = len(iv)
    storage.write_table(out, "interventions", tables.conform("interventions", pa.table({
        "lang": [r[0] for r in iv], "uuid": [r[1] for r in iv], "target_lang": [r[2] for r in iv],
        "k": pa.array([50] * n, pa.int32()), "mode": ["zero"] * n, "dlogp": [r[3] for r in iv],
        "flipped": [r[3] < -1 for r in iv], "ctrl_relation_mean": [-0.5] * n,
        "ctrl_relation_sd": [0.2] * n, "ctrl_random_mean": [0.0] * n,
        "pvalue": [r[4] for r in iv], "n_controls": pa.array([99] * n, pa.int32())})), "en")
    lab = [("u1", "shared", ["de"], ["de"], "shared", "beats_controls"),
           ("u2", "shared", ["de"], [], "not_shared", "below_controls"),
           ("u3", "independent", [], [], "untested", "own_no_effect")]
    m = len(lab)
    storage.write_table(out, "fact_labels", tables.conform("fact_labels", pa.table({
        "lang": ["en"] * m, "uuid": [r[0] for r in lab], "relation": ["P1"] * m,
        "status": pa.array([3] * m, pa.int8()), "label": [r[1] for r in lab],
        "reason": ["x"] * m, "source_langs": [[]] * m, "partner_langs": [["de"]] * m,
        "partner_jaccard": [[0.4], [0.3], [0.05]], "partner_threshold": [[0.1]] * m,
        "partner_pvalue": [[0.01]] * m, "shared_with": [r[2] for r in lab],
        "causal_shared_with": [r[3] for r in lab], "causal": [r[4] for r in lab],
        "causal_reason": [r[5] for r in lab], **_label_extras(m)})), "en")


def _label_extras(m: int) -> dict:
    """The #15 per-partner and control columns, neutral."""
    lists = ("partner_threshold_same", "partner_threshold_diff", "partner_pvalue_same",
             "partner_pvalue_diff", "partner_pvalue_adj", "partner_lower")
    out: dict = {n: pa.array([[0.1]] * m, pa.list_(pa.float64())) for n in lists}
    out.update({n: pa.array([[20]] * m, pa.list_(pa.int32())) for n in ("partner_n_same", "partner_n_diff")})
    out.update({n: pa.array([[False]] * m, pa.list_(pa.bool_()))
                for n in ("partner_same_pooled", "partner_diff_pooled", "partner_identical")})
    out["sibling_in_lang"] = pa.array([False] * m)
    out["prior_rate"] = pa.array([0.0] * m)
    return out


def test_agreement_and_figure(tmp_path: Path) -> None:
    _write(tmp_path)
    labels = storage.read_table(tmp_path, "fact_labels").to_pandas()
    ivs = storage.read_table(tmp_path, "interventions").to_pandas()
    pairs = pair_frame(labels, ivs)
    assert pairs["margin"].tolist() == [-3.5, 0.5, 0.4]
    t = agreement(pairs).set_index("overlap \\ causal")
    assert t.loc["shared", "shared"] == 1 and t.loc["shared", "not_shared"] == 1
    assert t.loc["not_shared", "untested"] == 1 and int(t.to_numpy().sum()) == 3
    blocks = causal_blocks(tmp_path, ["en"], tmp_path / "report")
    imgs = [b for b in blocks if b[0] == "img"]
    assert len(imgs) == 1 and imgs[0][1].stat().st_size > 1000
    assert any(b[0] == "p" and "Positive control" in b[1] and "3 facts" in b[1] for b in blocks)


def test_without_interventions_a_note(tmp_path: Path) -> None:
    blocks = causal_blocks(tmp_path, None, tmp_path)
    assert blocks[-1][0] == "note" and "factroots intervene" in blocks[-1][1]
