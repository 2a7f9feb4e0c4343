"""Build `lab_check` from `planted_facts`, `cooccurrence`, `status`, `easy_facts`, `fact_labels`.

The lab knows the truth: which (fact, language) pairs its corpus holds (planted, already in the
real text, or by other planted facts' names; page level) and what the model answers. Per lab
language it reports, as value = numerator / denominator (null when the denominator is 0):

- trace: the share of planted facts the trace finds present (expected 1.0; also at sentence
  level), the share of facts it finds beyond the plan that the corpus really holds (expected
  1.0), and the share of real-text same-sentence co-occurrences it finds (expected 1.0);
- model: P@1 on facts planted in this language, on facts planted only in another language (any
  correct answer there is transfer or a guess), on the unplanted control group, and on the rest;
- labels against the truth: precision and recall of *transferred* (truth: correct in L, absent
  from L's corpus, not an easy fact by the plan, present and correct in another lab language)
  and of each easy-fact category among truly absent and correct facts.
"""

from __future__ import annotations

import math

import pandas as pd
import pyarrow as pa

from factroots import tables

# trace_finds_real_sentence is not among them: the paper's chunks cut documents every 512
# subwords regardless of sentences, so a same-sentence pair can straddle two chunks.
EXPECTED_ONE = ("trace_finds_planted", "trace_finds_planted_sentence",
                "trace_beyond_plan_in_corpus")
CATEGORIES = ("shared_entity_tokens", "naming_cues", "others")


def _frame(plan: pa.Table, cooc: pa.Table, status: pa.Table, easy: pa.Table,
           labels: pa.Table) -> pd.DataFrame:
    """One row per (lang, uuid) of the plan with trace, probe and label columns joined."""
    p = plan.to_pandas()
    c = cooc.select(["lang", "uuid", "present", "cooc_sentence"]).to_pandas()
    s = status.select(["lang", "uuid", "correct"]).to_pandas()
    e = easy.select(["lang", "uuid", "category"]).to_pandas()
    lab = labels.select(["lang", "uuid", "label"]).to_pandas()
    d = p.merge(c, on=["lang", "uuid"], how="left").merge(s, on=["lang", "uuid"], how="left")
    d = d.merge(e, on=["lang", "uuid"], how="left").merge(lab, on=["lang", "uuid"], how="left")
    d["traced"] = d["present"].astype("boolean").fillna(False).astype(bool)
    d["traced_sentence"] = d["cooc_sentence"].fillna(0) > 0
    d["correct"] = d["correct"].astype("boolean").fillna(False).astype(bool)
    d["planted"] = d["n_planted"] > 0
    return d


def _truth_transferred(d: pd.DataFrame) -> pd.Series:
    """Correct in L, absent from L's corpus, not easy, present and correct in another language."""
    src = d[d["in_lab_text"] & d["correct"]].groupby("uuid")["lang"].apply(set).to_dict()
    has_source = [bool(src.get(u, set()) - {lg}) for lg, u in zip(d["lang"], d["uuid"])]
    return (d["correct"] & ~d["in_lab_text"] & (d["easy_category"] == "others")
            & pd.Series(has_source, index=d.index))


def _metric(rows: list, lang: str, name: str, num: int, den: int) -> None:
    rows.append((lang, name, num / den if den else math.nan, int(num), int(den)))


def _pr(rows: list, lang: str, name: str, predicted: pd.Series, truth: pd.Series) -> None:
    tp = int((predicted & truth).sum())
    _metric(rows, lang, f"{name}_precision", tp, int(predicted.sum()))
    _metric(rows, lang, f"{name}_recall", tp, int(truth.sum()))


def _lang_rows(q: pd.DataFrame, lang: str) -> list:
    rows: list = []
    beyond = q["traced"] & ~q["planted"]
    _metric(rows, lang, "trace_finds_planted", (q["planted"] & q["traced"]).sum(), q["planted"].sum())
    _metric(rows, lang, "trace_finds_planted_sentence", (q["planted"] & q["traced_sentence"]).sum(),
            q["planted"].sum())
    _metric(rows, lang, "trace_beyond_plan_in_corpus", (beyond & q["in_lab_text"]).sum(), beyond.sum())
    _metric(rows, lang, "trace_beyond_plan_in_real_text", (beyond & q["in_real_text"]).sum(),
            beyond.sum())
    _metric(rows, lang, "trace_finds_real_sentence", (q["in_real_sentence"] & q["traced"]).sum(),
            q["in_real_sentence"].sum())
    groups = {"planted": q["planted"],
              "only_other": q["group"].str.startswith("only_") & ~q["planted"],
              "only_other_shared_names": (q["group"].str.startswith("only_") & ~q["planted"]
                                          & q["shared_names"]),
              "control": q["group"] == "none", "background": q["group"] == "background"}
    for name, m in groups.items():
        _metric(rows, lang, f"p1_{name}", (m & q["correct"]).sum(), m.sum())
    _pr(rows, lang, "transferred", q["label"] == "transferred", q["truth_transferred"])
    absent_ok = q["correct"] & ~q["in_lab_text"]
    for cat in CATEGORIES:
        _pr(rows, lang, f"easy_{cat}", q["category"] == cat, absent_ok & (q["easy_category"] == cat))
    return rows


def build_lab_check(plan: pa.Table, cooc: pa.Table, status: pa.Table, easy: pa.Table,
                    labels: pa.Table, *, langs: list[str]) -> pa.Table:
    """Return the `lab_check` table: one row per (lab language, metric)."""
    d = _frame(plan, cooc, status, easy, labels)
    d = d[d["lang"].isin(langs)].copy()
    d["truth_transferred"] = _truth_transferred(d)
    rows = [r for lg in langs for r in _lang_rows(d[d["lang"] == lg], lg)]
    df = pd.DataFrame(rows, columns=["lang", "metric", "value", "numerator", "denominator"])
    return tables.conform("lab_check", pa.Table.from_pandas(df, preserve_index=False))


def check_markdown(check: pa.Table) -> str:
    """The check as a Markdown table: metrics as rows, languages as columns."""
    df = check.to_pandas()
    langs = list(dict.fromkeys(df["lang"]))
    lines = ["| metric | expected | " + " | ".join(langs) + " |",
             "|---|---|" + "---|" * len(langs)]
    for metric in dict.fromkeys(df["metric"]):
        cells = []
        for lg in langs:
            r = df[(df["lang"] == lg) & (df["metric"] == metric)]
            if r.empty:
                cells.append("")
                continue
            v, n, k = r.iloc[0][["value", "numerator", "denominator"]]
            cells.append("–" if k == 0 else f"{v:.1%} ({n}/{k})")
        exp = "100%" if metric in EXPECTED_ONE else ""
        lines.append(f"| {metric} | {exp} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
