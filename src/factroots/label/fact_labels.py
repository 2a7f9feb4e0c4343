"""Build the `fact_labels` table from `status`, `easy_facts`, `signatures` and `overlap`.

One row per correctly predicted (lang, uuid), with our operational definitions (docs/labels.md):
- ``transferred``: absent from L's Wikipedia (status 2), not an easy fact, and present & correct
  in at least one other language; ``source_langs`` are those languages, ranked by how much the
  fact's top-k neurons in L overlap with its neurons there (then by the pair's mean overlap);
- ``cue_explained``: absent, and an easy fact (shared entity tokens or naming cue);
- ``shared`` / ``independent``: present & correct in L (status 3) and in partners L'; shared
  with each L' whose top-k Jaccard exceeds (strictly) the pair's null threshold, independent
  when tested against at least one partner and shared with none;
- ``unlabelled`` with a reason when none applies: never forced into a class.
Partner lists (``partner_*``) are aligned: language, Jaccard, threshold, empirical p-value.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pandas as pd
import pyarrow as pa

from factroots import tables
from factroots.label.causal import apply_causal
from factroots.label.easy_facts import OTHERS
from factroots.label.neurons import (
    Signatures,
    jaccard,
    load_signatures,
    null_distribution,
    pvalue,
    threshold,
)

TRANSFERRED, SHARED, INDEPENDENT = "transferred", "shared", "independent"
CUE_EXPLAINED, UNLABELLED = "cue_explained", "unlabelled"
LABELS = (TRANSFERRED, SHARED, INDEPENDENT, CUE_EXPLAINED, UNLABELLED)


def _pair_means(overlap: pa.Table | None) -> dict[tuple[str, str], float]:
    if overlap is None or overlap.num_rows == 0:
        return {}
    df = overlap.select(["lang", "other_lang", "mean_jaccard"]).to_pandas()
    means = {}
    for a, b, m in zip(df["lang"], df["other_lang"], df["mean_jaccard"]):
        means[(a, b)] = float(m)
        means.setdefault((b, a), float(m))
    return means


def _evidence(rows: pd.DataFrame, partners: dict[str, list[str]], sig: Signatures,
              cfg: dict) -> dict[int, list[tuple]]:
    """Per row position: (partner, J, threshold, p) for every present & correct partner."""
    trip = [(i, lg, p, u) for i, (lg, u) in enumerate(zip(rows["lang"], rows["uuid"]))
            for p in partners.get(u, []) if p != lg]
    if not trip:
        return {}
    idx, lang, part, uu = map(list, zip(*trip))
    j = jaccard(sig, sig.rows(list(zip(lang, uu))), sig.rows(list(zip(part, uu))))
    nulls: dict[tuple[str, str], tuple[np.ndarray, float]] = {}
    for pair in {tuple(sorted(x)) for x in zip(lang, part)}:
        null = null_distribution(sig, pair[0], pair[1], cfg["null_samples"], cfg["seed"])
        nulls[pair] = (null, threshold(null, cfg["percentile"], cfg["min_null"]))
    out: dict[int, list[tuple]] = defaultdict(list)
    for i, lg, p, jj in zip(idx, lang, part, j):
        null, thr = nulls[(lg, p) if lg < p else (p, lg)]
        out[i].append((p, float(jj), thr, pvalue(null, jj) if not math.isnan(thr) else np.nan))
    return out


def _rank(ev: list[tuple], lang: str, means: dict) -> list[tuple]:
    """Partners by fact-level Jaccard, then the pair's mean Jaccard (NaN last), then name."""
    def key(e: tuple) -> tuple:
        m = means.get((lang, e[0]), np.nan)
        return (math.isnan(e[1]), -e[1] if not math.isnan(e[1]) else 0,
                math.isnan(m), -m if not math.isnan(m) else 0, e[0])
    return sorted(ev, key=key)


def _decide(status: int | None, category: str | None, ev: list[tuple], has_sig: bool) -> tuple:
    """(label, reason, shared_with) of one correct fact."""
    if status is None:
        return UNLABELLED, "presence_unknown", []
    if status == 2:
        if category is None:
            return UNLABELLED, "no_easy_facts_row", []
        if category != OTHERS:
            return CUE_EXPLAINED, category, []
        return (TRANSFERRED, "absent_with_source", []) if ev else (
            UNLABELLED, "absent_no_source", [])
    if not ev:
        return UNLABELLED, "no_partner", []
    tested = [e for e in ev if not math.isnan(e[1]) and not math.isnan(e[2])]
    if not tested:
        if not has_sig:
            return UNLABELLED, "no_signature", []
        if all(math.isnan(e[1]) for e in ev):
            return UNLABELLED, "partners_without_signature", []
        return UNLABELLED, "no_null", []
    shared = [e[0] for e in tested if e[1] > e[2]]
    return (SHARED, "above_null", shared) if shared else (INDEPENDENT, "below_null", [])


def build_fact_labels(status: pa.Table, easy_facts: pa.Table | None,
                      signatures: pa.Table | None, overlap: pa.Table | None, *,
                      top_k: int = 50, percentile: float = 95.0, null_samples: int = 200,
                      min_null: int = 10, seed: int = 0,
                      use_small_groups: bool = False) -> pa.Table:
    """Return the `fact_labels` table: one row per correct (lang, uuid) of ``status``."""
    st = status.select(["lang", "uuid", "relation", "status", "correct"]).to_pandas()
    correct = status.column("correct").fill_null(False).to_numpy(zero_copy_only=False)
    rows = st[correct.astype(bool)].sort_values(["lang", "uuid"])
    rows = rows.reset_index(drop=True)
    known = st[st["status"] == 3]
    partners = known.groupby("uuid")["lang"].agg(lambda s: sorted(s)).to_dict()
    easy = {} if easy_facts is None else {
        (lg, u): c for lg, u, c in zip(*(easy_facts.column(n).to_pylist()
                                         for n in ("lang", "uuid", "category")))}
    sig = load_signatures(signatures, top_k, use_small_groups)
    cfg = {"null_samples": null_samples, "seed": seed, "percentile": percentile,
           "min_null": min_null}
    evidence, means = _evidence(rows, partners, sig, cfg), _pair_means(overlap)
    out: dict[str, list] = defaultdict(list)
    for i, (lg, u, s) in enumerate(zip(rows["lang"], rows["uuid"], rows["status"])):
        code = None if pd.isna(s) else int(s)
        ev = _rank(evidence.get(i, []), lg, means)
        label, reason, shared = _decide(code, easy.get((lg, u)), ev, (lg, u) in sig.index)
        out["status"].append(code)
        out["label"].append(label)
        out["reason"].append(reason)
        out["source_langs"].append([e[0] for e in ev] if code == 2 else [])
        for name, pos in (("partner_langs", 0), ("partner_jaccard", 1),
                          ("partner_threshold", 2), ("partner_pvalue", 3)):
            out[name].append([e[pos] for e in ev])
        out["shared_with"].append(shared)
    data = {"lang": rows["lang"].tolist(), "uuid": rows["uuid"].tolist(),
            "relation": rows["relation"].tolist(), **out}
    # the causal columns are filled by label.causal.apply_causal
    schema = pa.schema([f for f in tables.spec("fact_labels").schema
                        if not f.name.startswith("causal")])
    base = pa.Table.from_pydict({n: data.get(n, []) for n in schema.names}, schema=schema)
    return tables.conform("fact_labels", apply_causal(base, None))
