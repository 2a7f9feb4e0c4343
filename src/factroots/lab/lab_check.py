"""Build `lab_check` from `planted_facts`, `cooccurrence`, `status`, `easy_facts`, `fact_labels`.

The lab knows the truth: what its corpus holds, how each fact was built, and (from its own
evaluation of the full and the counterfactual model) which facts really crossed languages.
Per lab language, and pooled over them (lang ``all``), each metric is value = numerator /
denominator (NaN when the denominator is 0) with a 95 % Wilson interval:

- trace: planted facts found present (expected 1.0, also at sentence level), facts found beyond
  the plan that the corpus really holds (expected 1.0), real same-sentence pairs found;
- model: P@1 (the probe's verdict) on planted facts, on `transfer` facts outside their source
  language (per name form), on the `control` group and on the background; how often the probe's
  verdict agrees with the lab's own evaluation;
- labels: `transferred` against the counterfactual truth (``truth_transferred``), and so is each
  kind of source evidence on its own (any source, overlap, causal: which rule the truth backs);
  `shared` and
  `independent` against the construction (group `shared` vs the two `independent_*` groups,
  among facts with a label) and against the causal verdict (``fact_labels.causal``; where it is
  ``untested`` the denominators are 0), the causal verdict itself against the construction, and
  the rate of `shared` on each independent group (the same-object confound);
- detector: facts written into chosen FFN units (``lab.detector``; the same units in every
  language for ``detector_shared``, disjoint units for ``detector_independent``): how many the
  probe answers, how many of the written units the fact's signature (top ``k``) finds, and the
  overlap labels and the causal verdict against the written truth;
- easy facts: each category among absent-and-correct facts against the plan's category;
- nearest matches (with ``facts``): how often a fact's own signature in another language is its
  nearest, for true transfers and `shared` facts, against how often a different fact with the
  same answer is (`_nearest_pairs`): the answer's share of what the overlap evidence sees.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa

from factroots import tables

# trace_finds_real_sentence is not among them: the paper's chunks cut documents every 512
# subwords regardless of sentences, so a same-sentence pair can straddle two chunks.
EXPECTED_ONE = ("trace_finds_planted", "trace_finds_planted_sentence",
                "trace_beyond_plan_in_corpus")
CATEGORIES = ("shared_entity_tokens", "naming_cues", "others")
FORMS = ("identical", "transliterated", "unrelated")
CONSTRUCTED = ("shared", "independent_same_obj", "independent_diff_obj")
DETECTOR = ("detector_shared", "detector_independent")
POOLED = "all"
# the label stage's reasons for an absent fact with a source that passed the controls (cue,
# sibling, prior): the candidates of `transferred` under every `label.transfer_evidence`
TRANSFER_CANDIDATE = ("absent_with_shared_source", "absent_with_causal_source",
                      "absent_with_source", "no_shared_source", "source_inconclusive",
                      "source_untested")
Z = 1.959963984540054  # the normal quantile of a two-sided 95 % interval


def wilson(num: int, den: int, z: float = Z) -> tuple[float, float]:
    """The Wilson score interval of num/den (NaN, NaN when den is 0)."""
    if den <= 0:
        return math.nan, math.nan
    p, z2 = num / den, z * z
    mid = (p + z2 / (2 * den)) / (1 + z2 / den)
    half = z * math.sqrt(p * (1 - p) / den + z2 / (4 * den * den)) / (1 + z2 / den)
    lo, hi = max(0.0, mid - half), min(1.0, mid + half)
    return (0.0 if num == 0 else lo), (1.0 if num == den else hi)  # exact at the bounds


def _frame(plan: pa.Table, cooc: pa.Table, status: pa.Table, easy: pa.Table,
           labels: pa.Table, top: dict[tuple[str, str], frozenset]) -> pd.DataFrame:
    """One row per (lang, uuid) of the plan with trace, probe and label columns joined."""
    p = plan.to_pandas()
    c = cooc.select(["lang", "uuid", "present", "cooc_sentence"]).to_pandas()
    s = status.select(["lang", "uuid", "correct"]).to_pandas()
    e = easy.select(["lang", "uuid", "category"]).to_pandas()
    lab = labels.select(["lang", "uuid", "label", "reason", "causal", "source_langs",
                         "shared_with", "causal_shared_with"]).to_pandas()
    on = ["lang", "uuid"]
    d = p.merge(c, on=on, how="left").merge(s, on=on, how="left")
    d = d.merge(e, on=on, how="left").merge(lab, on=on, how="left")
    d["traced"] = d["present"].astype("boolean").fillna(False).astype(bool)
    d["traced_sentence"] = d["cooc_sentence"].fillna(0) > 0
    d["correct"] = d["correct"].astype("boolean").fillna(False).astype(bool)
    d["planted"] = d["n_planted"] > 0
    d["labelled"] = d["label"].notna()
    d["causal"] = d["causal"].fillna("untested")
    d["candidate"] = d["reason"].isin(TRANSFER_CANDIDATE)
    d["overlap_source"] = _meets(d["shared_with"], d["source_langs"])
    d["causal_source"] = _meets(d["causal_shared_with"], d["source_langs"])
    written = d["detector_neurons"] if "detector_neurons" in d else [[]] * len(d)
    d["n_written"] = [len(w) if w is not None else 0 for w in written]
    d["n_found"] = [len(set(w if w is not None else []) & top.get((lg, u), set()))
                    for w, lg, u in zip(written, d["lang"], d["uuid"])]
    d["has_signature"] = [(lg, u) in top for lg, u in zip(d["lang"], d["uuid"])]
    return d


def _meets(a: pd.Series, b: pd.Series) -> list[bool]:
    """Per row: the two language lists (missing when the row has no label) share a language."""
    def langs(x: object) -> set:
        return set(x) if isinstance(x, (list, tuple, np.ndarray)) else set()
    return [bool(langs(x) & langs(y)) for x, y in zip(a, b)]


def _metric(rows: list, lang: str, name: str, num: int, den: int) -> None:
    lo, hi = wilson(int(num), int(den))
    rows.append((lang, name, num / den if den else math.nan, int(num), int(den), lo, hi))


def _pr(rows: list, lang: str, name: str, predicted: pd.Series, truth: pd.Series) -> None:
    tp = int((predicted & truth).sum())
    _metric(rows, lang, f"{name}_precision", tp, int(predicted.sum()))
    _metric(rows, lang, f"{name}_recall", tp, int(truth.sum()))


def _trace_rows(rows: list, q: pd.DataFrame, lang: str) -> None:
    beyond = q["traced"] & ~q["planted"]
    _metric(rows, lang, "trace_finds_planted", (q["planted"] & q["traced"]).sum(),
            q["planted"].sum())
    _metric(rows, lang, "trace_finds_planted_sentence",
            (q["planted"] & q["traced_sentence"]).sum(), q["planted"].sum())
    _metric(rows, lang, "trace_beyond_plan_in_corpus", (beyond & q["in_lab_text"]).sum(),
            beyond.sum())
    _metric(rows, lang, "trace_beyond_plan_in_real_text", (beyond & q["in_real_text"]).sum(),
            beyond.sum())
    _metric(rows, lang, "trace_finds_real_sentence", (q["in_real_sentence"] & q["traced"]).sum(),
            q["in_real_sentence"].sum())


def _model_rows(rows: list, q: pd.DataFrame, lang: str) -> None:
    away = (q["group"] == "transfer") & ~q["planted"]
    det = q["group"].isin(DETECTOR)
    groups = {"planted": q["planted"] & ~det, "transfer": away, "detector": det, "control": q["group"] == "control",
              "background": q["group"] == "background"}
    groups.update({f"transfer_{f}": away & (q["name_form"] == f) for f in FORMS})
    for name, m in groups.items():
        _metric(rows, lang, f"p1_{name}", (m & q["correct"]).sum(), m.sum())
    lab = (q["group"] != "background") & ~det
    _metric(rows, lang, "probe_agrees_with_lab_eval",
            (lab & (q["correct"] == q["lab_correct"])).sum(), lab.sum())
    _metric(rows, lang, "counterfactual_transfer", (away & q["truth_transferred"]).sum(),
            away.sum())


def _label_rows(rows: list, q: pd.DataFrame, lang: str) -> None:
    _pr(rows, lang, "transferred", q["label"] == "transferred", q["truth_transferred"])
    evidence = {"any_source": q["candidate"], "overlap": q["candidate"] & q["overlap_source"],
                "causal": q["candidate"] & q["causal_source"]}
    for name, predicted in evidence.items():
        _pr(rows, lang, f"transferred_{name}", predicted, q["truth_transferred"])
    built = q["labelled"] & q["group"].isin(CONSTRUCTED)
    b = q[built]
    _pr(rows, lang, "shared", b["label"] == "shared", b["group"] == "shared")
    _pr(rows, lang, "independent", b["label"] == "independent",
        b["group"].str.startswith("independent_"))
    for g in ("independent_same_obj", "independent_diff_obj"):
        m = b["group"] == g
        _metric(rows, lang, f"shared_rate_{g}", (m & (b["label"] == "shared")).sum(), m.sum())
    tested = q[q["labelled"] & q["causal"].isin(["shared", "not_shared"])]
    _pr(rows, lang, "shared_vs_causal", tested["label"] == "shared", tested["causal"] == "shared")
    _pr(rows, lang, "independent_vs_causal", tested["label"] == "independent",
        tested["causal"] == "not_shared")
    tb = tested[tested["group"].isin(CONSTRUCTED)]
    _pr(rows, lang, "causal_shared", tb["causal"] == "shared", tb["group"] == "shared")


def _detector_rows(rows: list, q: pd.DataFrame, lang: str) -> None:
    d = q[q["group"].isin(DETECTOR) & q["correct"] & q["has_signature"]]
    _metric(rows, lang, "detector_units_in_signature", d["n_found"].sum(), d["n_written"].sum())
    b = d[d["labelled"]]
    _pr(rows, lang, "detector_shared", b["label"] == "shared", b["group"] == "detector_shared")
    _pr(rows, lang, "detector_independent", b["label"] == "independent",
        b["group"] == "detector_independent")
    t = d[d["causal"].isin(["shared", "not_shared"])]
    _pr(rows, lang, "detector_causal_shared", t["causal"] == "shared",
        t["group"] == "detector_shared")
    _pr(rows, lang, "detector_causal_not_shared", t["causal"] == "not_shared",
        t["group"] == "detector_independent")


def _easy_rows(rows: list, q: pd.DataFrame, lang: str) -> None:
    absent_ok = q["correct"] & ~q["in_lab_text"]
    for cat in CATEGORIES:
        _pr(rows, lang, f"easy_{cat}", q["category"] == cat,
            absent_ok & (q["easy_category"] == cat))


def _rows(q: pd.DataFrame, lang: str) -> list:
    rows: list = []
    for part in (_trace_rows, _model_rows, _label_rows, _detector_rows, _easy_rows):
        part(rows, q, lang)
    return rows


def _top_sets(signatures: pa.Table | None, k: int) -> dict[tuple[str, str], frozenset]:
    """(lang, uuid) -> the fact's first ``k`` neuron ids (facts with an empty list left out)."""
    if signatures is None:
        return {}
    sig = signatures.select(["lang", "uuid", "neuron_ids"]).to_pylist()
    return {(r["lang"], r["uuid"]): frozenset((r["neuron_ids"] or [])[:k]) for r in sig
            if r["neuron_ids"]}


def _nearest(fb: frozenset, pool: dict[str, frozenset]) -> str | None:
    """The uuid of ``pool`` whose set has the largest Jaccard with ``fb`` (None on a tie)."""
    js = sorted(((len(fb & s) / len(fb | s), u) for u, s in pool.items()), reverse=True)
    if not js or (len(js) > 1 and js[0][0] == js[1][0]):
        return None
    return js[0][1]


def _nearest_pairs(d: pd.DataFrame, top: dict, objects: dict) -> pd.DataFrame:
    """Per (fact f in B, language A): is f's nearest A signature f itself?

    Rows of three kinds: ``transfer`` (a true transfer into B, A its source), ``shared`` (a
    `shared` fact, A every other lab language) and ``same_answer`` (a `shared` fact with a
    same-object twin in A: with f's own A signature left out, is the nearest a twin?). The last
    is what the answer alone gives: a transfer fact's object is unique, so its own nearest
    match cannot be told from its answer's.
    """
    langs = sorted(set(d["lang"]))
    pools: dict[tuple[str, str], dict[str, frozenset]] = {}
    for lg, u, r in zip(d["lang"], d["uuid"], d["relation"]):
        if (lg, u) in top:
            pools.setdefault((lg, r), {})[u] = top[(lg, u)]
    out = []
    truth = d["truth_transferred"].astype("boolean").fillna(False).astype(bool)
    todo = d[(d["group"] == "shared") | ((d["group"] == "transfer") & truth)]
    for b, u, r, g, src in zip(todo["lang"], todo["uuid"], todo["relation"], todo["group"],
                               todo["source_lang"]):
        fb = top.get((b, u))
        for a in ([src] if g == "transfer" else [lg for lg in langs if lg != b]):
            pool = pools.get((a, r), {})
            if fb is None or u not in pool:
                continue
            out.append((b, g, _nearest(fb, pool) == u))
            if g != "shared":
                continue
            rest = {h: s for h, s in pool.items() if h != u}
            twins = {h for h in rest if objects.get((a, h)) == objects.get((b, u))}
            if twins:
                out.append((b, "same_answer", _nearest(fb, rest) in twins))
    return pd.DataFrame(out, columns=["lang", "kind", "hit"])


def _nearest_rows(rows: list, pairs: pd.DataFrame, lang: str) -> None:
    for kind, name in (("transfer", "nearest_transfer_source"), ("shared", "nearest_shared_self"),
                       ("same_answer", "nearest_same_answer_twin")):
        hit = pairs.loc[pairs["kind"] == kind, "hit"]
        _metric(rows, lang, name, int(hit.sum()), len(hit))


def build_lab_check(plan: pa.Table, cooc: pa.Table, status: pa.Table, easy: pa.Table,
                    labels: pa.Table, *, langs: list[str], signatures: pa.Table | None = None,
                    k: int = 50, facts: pa.Table | None = None) -> pa.Table:
    """Return the `lab_check` table: one row per (lab language or ``all``, metric).

    ``signatures`` (optional) and ``k``: the top-k neurons the detector's written units are
    looked for in (the overlap's k); with ``facts`` too (their objects), the nearest-match
    metrics of `_nearest_pairs`.
    """
    top = _top_sets(signatures, k)
    d = _frame(plan, cooc, status, easy, labels, top)
    d = d[d["lang"].isin(langs)].copy()
    rows = [r for lg in langs for r in _rows(d[d["lang"] == lg], lg)] + _rows(d, POOLED)
    if signatures is not None and facts is not None:
        f = facts.select(["lang", "uuid", "obj_uri"]).to_pylist()
        pairs = _nearest_pairs(d, top, {(r["lang"], r["uuid"]): r["obj_uri"] for r in f})
        for lg in (*langs, POOLED):
            part = pairs if lg == POOLED else pairs[pairs["lang"] == lg]
            _nearest_rows(rows, part, lg)
    cols = ["lang", "metric", "value", "numerator", "denominator", "ci_low", "ci_high"]
    df = pd.DataFrame(rows, columns=cols)
    return tables.conform("lab_check", pa.Table.from_pandas(df, preserve_index=False))


def check_markdown(check: pa.Table) -> str:
    """The check as a Markdown table: metrics as rows, languages (and `all`) as columns."""
    df = check.to_pandas()
    langs = list(dict.fromkeys(df["lang"]))
    lines = ["| metric | expected | " + " | ".join(langs) + " |",
             "|---|---|" + "---|" * len(langs)]
    cell = {(r.lang, r.metric): r for r in df.itertuples()}
    for metric in dict.fromkeys(df["metric"]):
        cells = []
        for lg in langs:
            r = cell.get((lg, metric))
            if r is None:
                cells.append("")
            elif r.denominator == 0:
                cells.append("–")
            else:
                cells.append(f"{r.value:.1%} ({r.numerator}/{r.denominator}; "
                             f"{r.ci_low:.0%}–{r.ci_high:.0%})")
        exp = "100%" if metric in EXPECTED_ONE else ""
        lines.append(f"| {metric} | {exp} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
