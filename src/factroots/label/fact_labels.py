"""Build the `fact_labels` table from `status`, `easy_facts`, `signatures`, `facts`,
`predictions` and `overlap`.

One row per correctly predicted (lang, uuid), with our operational definitions (docs/labels.md):
- ``shared``: present & correct in L (status 3) and shared with at least one partner L′ (status
  3 there): J(f; L, L′) above the null of `label.null` (by default the fact-anchored,
  same-object stratum *and* the different-object one) and its p-value, corrected over the
  fact's partners (`label.multitest`, Holm by default), at most alpha; ``shared_with`` lists
  the partners that survive;
- ``independent``: status 3, and for every tested partner J at or below the lower bound of a
  null with at least ``min_null`` values: a test with power; otherwise ``unlabelled`` /
  ``inconclusive``;
- ``cue_explained``: absent (status 2) and an easy fact; ``explained_within_language``: absent
  with a status-3 sibling in L (same relation, same object); ``prior_explained``: absent, and
  the answer is given to more than ``max_prior`` of L's other prompts of the relation;
- ``transferred``: absent, none of those, present & correct elsewhere (a source language)
  and, by ``label.transfer_evidence``: nothing more (``none``, the default: the lab's
  counterfactual truth backs it, docs/lab.md), or shared with at least one source under the
  shared rule (``overlap``), by the causal verdict of `interventions` (``causal``: the fact's L
  units carry it in a source), or by ``either``; the reason says which neuron evidence, if any,
  shows a source sharing the fact, whatever the rule;
- ``unlabelled`` with a reason when none applies: never forced into a class.
``source_langs`` ranks the sources by the fact's Jaccard, then the pair's mean overlap.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from factroots import tables
from factroots.config import LabelConfig
from factroots.label.causal import verdicts, with_causal
from factroots.label.controls import (
    identical_spellings,
    objects_of,
    prior_rates,
    sibling_in_lang,
)
from factroots.label.easy_facts import OTHERS
from factroots.label.multitest import adjust
from factroots.label.neurons import Signatures, load_signatures
from factroots.label.null import (
    STRATIFIED,
    NullConfig,
    below_mask,
    partner_tests,
    shared_mask,
)

TRANSFERRED, SHARED, INDEPENDENT = "transferred", "shared", "independent"
CUE_EXPLAINED, UNLABELLED = "cue_explained", "unlabelled"
WITHIN_LANGUAGE, PRIOR_EXPLAINED = "explained_within_language", "prior_explained"
LABELS = (TRANSFERRED, SHARED, INDEPENDENT, CUE_EXPLAINED, WITHIN_LANGUAGE, PRIOR_EXPLAINED,
          UNLABELLED)
# partner list column -> column of the per-partner evidence frame
PARTNER_COLUMNS = {"partner_langs": "partner", "partner_jaccard": "j",
                   "partner_threshold": "tau", "partner_pvalue": "p",
                   "partner_threshold_same": "tau_same", "partner_threshold_diff": "tau_diff",
                   "partner_pvalue_same": "p_same", "partner_pvalue_diff": "p_diff",
                   "partner_n_same": "n_same", "partner_n_diff": "n_diff",
                   "partner_same_pooled": "same_pooled", "partner_diff_pooled": "diff_pooled",
                   "partner_pvalue_adj": "padj", "partner_identical": "identical",
                   "partner_lower": "lower"}


@dataclass(frozen=True)
class LabelRules:
    """The decision settings (label.*): the null, the correction and the transfer controls."""

    null: NullConfig = NullConfig()
    correction: str = "holm"
    alpha: float = 0.05
    max_prior: float = 0.2
    transfer_evidence: str = "none"
    protocol: str = "full"
    identical_spellings: str = "record"


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
              objects: dict, facts: pa.Table | None, rules: LabelRules,
              means: dict) -> dict[str, np.ndarray]:
    """Per (fact row, partner), as arrays sorted by row: the tests, corrected per fact, the
    shared / below flags; within a row ranked by J (NaN last), the pair's mean J, then name."""
    trip = [(i, lg, p, u, r) for i, (lg, u, r) in enumerate(zip(rows["lang"], rows["uuid"],
                                                                rows["relation"]))
            for p in partners.get(u, []) if p != lg]
    ev = pd.DataFrame(trip, columns=["row", "lang", "partner", "uuid", "relation"])
    ev = pd.concat([ev, partner_tests(sig, ev, objects, rules.null)], axis=1)
    ev["identical"] = identical_spellings(ev["lang"].tolist(), ev["partner"].tolist(),
                                          ev["uuid"].tolist(), facts)
    ev["mean"] = [means.get((lg, p), np.nan) for lg, p in zip(ev["lang"], ev["partner"])]
    ev["_j"] = -ev["j"].fillna(-np.inf)
    ev["_m"] = -ev["mean"].fillna(-np.inf)
    ev = ev.sort_values(["row", "_j", "_m", "partner"], kind="stable", ignore_index=True)
    cols = {c: ev[c].to_numpy() for c in ev.columns}
    p, padj = cols["p"].astype(float), np.full(len(ev), np.nan)
    excluded = cols["identical"].astype(bool) if rules.identical_spellings == "exclude" \
        else np.zeros(len(ev), bool)
    p[excluded] = np.nan            # the same input in both prompts: not a test of the fact
    bounds = np.searchsorted(cols["row"].astype(np.int64), np.arange(len(rows) + 1))
    for s, e in zip(bounds[:-1], bounds[1:]):
        if e > s:
            padj[s:e] = adjust(p[s:e], rules.correction)
    cols["padj"] = padj
    cols["shared"] = shared_mask(ev, padj, rules.null, rules.alpha)
    cols["below"] = below_mask(ev) & ~excluded
    cols["_bounds"] = bounds
    return cols


def _row(ev: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    """The evidence of fact row ``i``: every column sliced to its partners."""
    s, e = ev["_bounds"][i], ev["_bounds"][i + 1]
    return {c: v[s:e] for c, v in ev.items() if c != "_bounds"}


def _decide_present(ev: dict, has_sig: bool, stratified: bool) -> tuple[str, str]:
    """(label, reason) of a status-3 fact from its partners' tests."""
    if not len(ev["partner"]):
        return UNLABELLED, "no_partner"
    if not has_sig:
        return UNLABELLED, "no_signature"
    withj = ~np.isnan(ev["j"].astype(float))
    if not withj.any():
        return UNLABELLED, "partners_without_signature"
    if ev["shared"][withj].any():
        return SHARED, "above_null"
    if (ev["n_lower"][withj] == 0).all():
        return UNLABELLED, "no_null"
    if ev["below"][withj].all():
        return INDEPENDENT, "below_lower_bound"
    above = ev["j"][withj].astype(float) > ev["lower"][withj].astype(float)
    if stratified and above.any() and np.isnan(ev["tau_same"][withj].astype(float)).all():
        # above the independence bound, but no same-object null to beat: the answer's share
        # of the overlap cannot be measured in this relation
        return UNLABELLED, "no_same_object_null"
    return UNLABELLED, "inconclusive"


def _decide_absent(ev: dict, category: str | None, sibling: bool | None,
                   prior: float, causal: tuple[str, str, list[str]],
                   rules: LabelRules) -> tuple[str, str]:
    """(label, reason) of a status-2 fact: cues, then the controls, then the sources."""
    if category is None:
        return UNLABELLED, "no_easy_facts_row"
    if category != OTHERS:
        return CUE_EXPLAINED, category
    if not len(ev["partner"]):
        return UNLABELLED, "absent_no_source"
    if sibling:
        return WITHIN_LANGUAGE, "sibling_in_lang"
    if not math.isnan(prior) and prior > rules.max_prior:
        return PRIOR_EXPLAINED, "prior_rate"
    return _transfer_evidence(ev, causal, rules.transfer_evidence)


def _transfer_evidence(ev: dict, causal: tuple[str, str, list[str]],
                       rule: str) -> tuple[str, str]:
    """(label, reason) of an absent fact with sources, from the neuron evidence ``rule`` asks."""
    shown_overlap = bool(ev["shared"].any())
    # the causal verdict's shared partners that are sources (status 3 there)
    shown_causal = bool(set(causal[2]) & set(ev["partner"].tolist()))
    if rule == "none":
        # the label needs no neuron evidence; the reason still says what it showed
        return TRANSFERRED, ("absent_with_shared_source" if shown_overlap else
                             "absent_with_causal_source" if shown_causal else
                             "absent_with_source")
    use_overlap, use_causal = rule in ("overlap", "either"), rule in ("causal", "either")
    if use_overlap and shown_overlap:
        return TRANSFERRED, "absent_with_shared_source"
    if use_causal and shown_causal:
        return TRANSFERRED, "absent_with_causal_source"
    overlap_tested = use_overlap and not np.isnan(ev["p"].astype(float)).all()
    causal_tested = use_causal and causal[0] != "untested"
    if not (overlap_tested or causal_tested):
        return UNLABELLED, "source_untested"
    # "not shown shared" is a finding only where the test had power: every source's J at or
    # below the independence bound, and a causal verdict (if asked and run) of not_shared
    withj = ~np.isnan(ev["j"].astype(float))
    overlap_no = not overlap_tested or bool(ev["below"][withj].all())
    causal_no = not causal_tested or causal[0] == "not_shared"
    if overlap_no and causal_no:
        return UNLABELLED, "no_shared_source"
    return UNLABELLED, "source_inconclusive"


def _correct_rows(status: pa.Table) -> tuple[pd.DataFrame, pd.DataFrame]:
    st = status.select(["lang", "uuid", "relation", "status", "correct"]).to_pandas()
    correct = status.column("correct").fill_null(False).to_numpy(zero_copy_only=False)
    rows = st[correct.astype(bool)].sort_values(["lang", "uuid"]).reset_index(drop=True)
    return st, rows


def build_fact_labels(status: pa.Table, easy_facts: pa.Table | None,
                      signatures: pa.Table | None, overlap: pa.Table | None, *,
                      facts: pa.Table | None = None, predictions: pa.Table | None = None,
                      interventions: pa.Table | None = None,
                      rules: LabelRules | None = None, top_k: int = 50,
                      use_small_groups: bool = False) -> pa.Table:
    """Return the `fact_labels` table: one row per correct (lang, uuid) of ``status``.

    ``interventions`` (optional) gives the causal columns and the causal transfer evidence.
    """
    rules = rules or LabelRules()
    st, rows = _correct_rows(status)
    partners = st[st["status"] == 3].groupby("uuid")["lang"].agg(lambda s: sorted(s)).to_dict()
    easy = {} if easy_facts is None else {
        (lg, u): c for lg, u, c in zip(*(easy_facts.column(n).to_pylist()
                                         for n in ("lang", "uuid", "category")))}
    sig = load_signatures(signatures, top_k, use_small_groups)
    objects = objects_of(facts)
    ev = _evidence(rows, partners, sig, objects, facts, rules, _pair_means(overlap))
    siblings = sibling_in_lang(rows, st, objects)
    priors = prior_rates(rows, predictions, rules.protocol)
    causal = verdicts(list(zip(rows["lang"], rows["uuid"])), interventions,
                      alpha=rules.alpha, method=rules.correction)
    out: dict[str, list] = defaultdict(list)
    for i, (lg, u, s) in enumerate(zip(rows["lang"], rows["uuid"], rows["status"])):
        code = None if pd.isna(s) else int(s)
        e = _row(ev, i)
        if code is None:
            label, reason = UNLABELLED, "presence_unknown"
        elif code == 2:
            label, reason = _decide_absent(e, easy.get((lg, u)), siblings[i], priors[i],
                                           causal[i], rules)
        else:
            label, reason = _decide_present(e, (lg, u) in sig.index,
                                            rules.null.rule == STRATIFIED)
        out["status"].append(code)
        out["label"].append(label)
        out["reason"].append(reason)
        out["source_langs"].append(e["partner"].tolist() if code == 2 else [])
        for name, col in PARTNER_COLUMNS.items():
            out[name].append(e[col].tolist())
        out["shared_with"].append(e["partner"][e["shared"]].tolist())
        out["sibling_in_lang"].append(siblings[i] if code == 2 else None)
        out["prior_rate"].append(None if math.isnan(priors[i]) else float(priors[i]))
    data = {"lang": rows["lang"].tolist(), "uuid": rows["uuid"].tolist(),
            "relation": rows["relation"].tolist(), **out}
    # the causal columns come from label.causal
    schema = pa.schema([f for f in tables.spec("fact_labels").schema
                        if not f.name.startswith("causal")])
    base = pa.Table.from_pydict({n: data.get(n, []) for n in schema.names}, schema=schema)
    return tables.conform("fact_labels", with_causal(base, causal))


def label_rules(label_cfg: LabelConfig) -> LabelRules:
    """The `LabelRules` of a run's ``label`` config section."""
    c = label_cfg
    null = NullConfig(rule=c.null_rule, percentile=c.null_percentile,
                      lower_q=c.independent_quantile, min_null=c.min_null,
                      null_samples=c.null_samples, seed=c.seed)
    return LabelRules(null=null, correction=c.correction, alpha=c.alpha, max_prior=c.max_prior,
                      transfer_evidence=c.transfer_evidence,
                      protocol=c.protocol, identical_spellings=c.identical_spellings)
