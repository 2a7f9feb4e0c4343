"""Build report.md and report.html from a run's `Results` and its figures.

The report is a list of blocks (headings, paragraphs, notes, tables, images) rendered twice:
Markdown with images referenced relatively, and one self-contained HTML file with the images
inlined as base64. It says what was run and flags missing stages and small numbers.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
from pathlib import Path

import numpy as np
import pandas as pd

from factroots.report import results as R
from factroots.report.causal import causal_blocks
from factroots.report.paper import R_P1_PAGES

Block = tuple  # ("h1"|"h2"|"p"|"note", text) | ("table", DataFrame) | ("img", path, caption)


def _fmt(v: object) -> str:
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return "–"
        # small values (chance levels, p-values) keep three significant digits
        return f"{v:.3g}" if 0 < abs(v) < 0.1 else f"{v:.2f}"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v))
    return "–" if v is None or v is pd.NA else str(v)


def to_markdown(blocks: list[Block], base: Path) -> str:
    """Render blocks as Markdown; images relative to ``base``."""
    out = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2"):
            out.append(("# " if kind == "h1" else "## ") + rest[0])
        elif kind == "p":
            out.append(rest[0])
        elif kind == "note":
            out.append(f"> **Note.** {rest[0]}")
        elif kind == "table":
            df = rest[0]
            rows = [" | ".join(map(str, df.columns))] + [" | ".join(["---"] * len(df.columns))]
            rows += [" | ".join(_fmt(v) for v in r) for r in df.itertuples(index=False)]
            out.append("\n".join(f"| {r} |" for r in rows))
        elif kind == "img":
            out.append(f"![{rest[1]}]({rest[0].relative_to(base).as_posix()})")
    return "\n\n".join(out) + "\n"


def _paragraph_html(text: str) -> str:
    """A paragraph (or a "- " bullet list) with **bold** spans, escaped."""
    def inline(t: str) -> str:
        parts = html.escape(t).split("**")
        return "".join(f"<b>{x}</b>" if i % 2 else x for i, x in enumerate(parts))

    out = []
    for chunk in text.split("\n\n"):
        lines = chunk.splitlines()
        if lines and all(ln.startswith("- ") for ln in lines):
            out.append("<ul>" + "".join(f"<li>{inline(ln[2:])}</li>" for ln in lines) + "</ul>")
        else:
            out.append(f"<p>{inline(chunk)}</p>")
    return "".join(out)


def to_html(blocks: list[Block], title: str) -> str:
    """Render blocks as one self-contained HTML page (images inlined)."""
    e = html.escape
    body = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{e(rest[0])}</{kind}>")
        elif kind == "p":
            body.append(_paragraph_html(rest[0]))
        elif kind == "note":
            body.append(f'<p class="note"><b>Note.</b> {e(rest[0])}</p>')
        elif kind == "table":
            df = rest[0]
            head = "".join(f"<th>{e(str(c))}</th>" for c in df.columns)
            rows = "".join("<tr>" + "".join(f"<td>{e(_fmt(v))}</td>" for v in r) + "</tr>"
                           for r in df.itertuples(index=False))
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "img":
            data = base64.b64encode(rest[0].read_bytes()).decode()
            body.append(f'<figure><img alt="{e(rest[1])}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{e(rest[1])}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:70em;margin:auto;padding:1em}"
             "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;"
             "padding:2px 6px;text-align:right}.note{background:#fff4d6;padding:.4em}"
             "img{max-width:100%}")
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{e(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def _run_facts(res: R.Results, run: dict) -> list[Block]:
    facts = res.get("facts")
    counts = facts.groupby("lang").size() if facts is not None else pd.Series(dtype=int)
    lines = [f"- **{k}**: {v}" for k, v in run.items()]
    blocks: list[Block] = [("h2", "What was run"), ("p", "\n".join(lines))]
    if len(counts):
        blocks.append(("p", f"Facts: {int(counts.sum())} (language, fact) pairs over "
                            f"{len(counts)} languages, "
                            f"{facts['uuid'].nunique()} distinct facts."))
        blocks.append(("table", counts.rename("facts").reset_index()))
    return blocks


def _small(df: pd.DataFrame, column: str, min_n: int, what: str) -> list[Block]:
    small = df.loc[df[column] < min_n, "lang"].tolist() if len(df) else []
    return [("note", f"{what} rest on fewer than {min_n} facts for: {', '.join(small)}; "
                     "read them as anecdotes.")] if small else []


def p1_blocks(res: R.Results, figs: dict, min_n: int, reference: tuple) -> list[Block]:
    """P@1 table (with the paper's numbers beside) and bars."""
    t = R.p1_table(res)
    blocks: list[Block] = [("h2", "P@1 per language")]
    if t.empty:
        return blocks + [("note", "No predictions: the probe stage did not run.")]
    name, ref = reference
    if ref:
        t = t.assign(**{name: [ref.get(lg, np.nan) for lg in t["lang"]]})
    micro = 100 * t["correct"].sum() / max(t["facts"].sum(), 1)
    blocks += [("p", f"Micro P@1 over all languages: {micro:.2f} %; macro over languages: "
                     f"{t['p1'].mean():.2f} %. P@1 is in %; p1_macro averages relations.")]
    blocks += [("table", t)] + _small(t, "facts", min_n, "P@1 values")
    return blocks + _img(figs, "p1", "P@1 per language (full-match; partial lighter)")


def _img(figs: dict, name: str, caption: str) -> list[Block]:
    return [("img", figs[name], caption)] if figs.get(name) else [
        ("note", f"Figure '{caption}' not drawn: its data is missing.")]


def presence_blocks(res: R.Results, figs: dict, min_n: int) -> list[Block]:
    """Absent rate and easy-fact categories."""
    a = R.absent_table(res)
    blocks: list[Block] = [("h2", "Correct facts absent from the language's Wikipedia")]
    if a.empty:
        return blocks + [("note", "No status table: run the label stage.")]
    if a["unknown"].sum():
        blocks.append(("note", f"{int(a['unknown'].sum())} (language, fact) pairs have no "
                               "status (trace or probe missing); they are not counted."))
    blocks += [("table", a)] + _small(a, "correct", min_n, "Absent rates")
    blocks += _img(figs, "absent_rate", "Share of correct facts absent from Wikipedia")
    e = R.easy_table(res)
    blocks.append(("h2", "Why absent facts can be guessed (easy facts)"))
    if e.empty:
        return blocks + [("note", "No absent & correct facts, or no easy_facts table.")]
    share = e.copy()
    for c in R.EASY_ORDER:
        share[f"{c} %"] = 100 * e[c] / e["total"].where(e["total"] > 0)
    blocks += [("table", share)] + _small(e, "total", min_n, "Category shares")
    return blocks + _img(figs, "easy_facts", "Absent & correct facts by category")


def _chance_text(res: R.Results, k: int | None) -> str:
    """'k = 50 of N neurons; chance level c' (or that N is unknown)."""
    if not k:
        return "k unknown"
    if not res.neurons:
        return (f"k = {k}; the neuron count of the probed model is not recorded in the "
                "signatures' manifests, so the chance level is unknown")
    return (f"k = {k} of {res.neurons:,} neurons; chance level (two random k-sets) J = "
            f"{R.chance_jaccard(k, res.neurons):.4f}")


def overlap_blocks(res: R.Results, figs: dict, top: int) -> list[Block]:
    """The clustered heatmap and the most similar pairs, with the chance level beside them."""
    blocks: list[Block] = [("h2", "Shared fact neurons between languages")]
    ov = res.get("overlap")
    if ov is None or ov.empty:
        return blocks + [("note", "No overlap table: the neuron stage did not run.")]
    k = int(ov["top_k"].iloc[0])
    chance = R.chance_jaccard(k, res.neurons)
    pairs = ov[ov["lang"] < ov["other_lang"]].sort_values("mean_jaccard", ascending=False)
    pairs = pairs.assign(chance=chance, x_chance=pairs["mean_jaccard"] / chance)
    text = (f"Mean top-k Jaccard over facts correct in both languages ({_chance_text(res, k)}; "
            "x_chance = mean J / chance).")
    if res.neurons == R.MBERT_NEURONS:
        text += (" The paper (mBERT, the same 36,864 neurons) reports en–zh 0.211 and about "
                 "0.25 on average.")
    else:
        text += (" The paper's Jaccards (mBERT: 36,864 neurons, chance "
                 f"{R.chance_jaccard(k, R.MBERT_NEURONS):.4f}) are not comparable with these "
                 "and are not shown.")
    blocks += [("p", text + " Most similar pairs:"), ("table", pairs.head(15))]
    thin = pairs[pairs["n_facts"] < 10]
    if len(thin):
        blocks.append(("note", f"{len(thin)} language pairs share fewer than 10 facts."))
    return blocks + _img(figs, "overlap_heatmap", f"Language × language overlap (top {top}; "
                                                  f"chance J = {chance:.4f})")


def corpus_blocks(res: R.Results, figs: dict) -> list[Block]:
    """P@1 against corpus size, with Pearson r only over enough languages."""
    t = R.corpus_table(res)
    blocks: list[Block] = [("h2", "P@1 against corpus size")]
    if t.empty or t[["articles", "sentences"]].isna().all().all():
        return blocks + [("note", "No trace pages/sentences: corpus sizes are unknown.")]
    n = int(t[["articles", "sentences"]].notna().any(axis=1).sum())
    if n < R.MIN_CORR_LANGS:
        blocks.append(("note", f"{n} languages: no correlation is computed below "
                               f"{R.MIN_CORR_LANGS} (the paper's r = {R_P1_PAGES} is over 53)."))
    else:
        lines = []
        for size in ("articles", "sentences"):
            r, m = R.pearson(t[size], t["p1"])
            rl, _ = R.pearson(np.log10(t[size].where(t[size] > 0)), t["p1"])
            lines.append(f"- {size}: Pearson r = {_fmt(r)} (log10 size: {_fmt(rl)}), n = {m}")
        blocks.append(("p", "\n".join(lines) + f"\n\nThe paper: r = {R_P1_PAGES} with page "
                            "counts over 53 languages (full Wikipedia dumps, 2018)."))
    shown = t.astype({"articles": "Int64", "sentences": "Int64"})
    return blocks + [("table", shown)] + _img(figs, "p1_vs_corpus", "P@1 against corpus size")


# what `transferred` asks of the neurons, by `label.transfer_evidence`
_TRANSFER_RULE = {
    "none": "no neuron evidence is required (the lab's counterfactual truth backs the source "
            "and its controls; the overlap misses most true transfers: docs/lab.md)",
    "overlap": "and its L signature shared with a source under the shared rule",
    "causal": "and the causal test shows its L units carrying it in a source",
    "either": "and the overlap or the causal test shows a source sharing it",
}


def label_blocks(res: R.Results, figs: dict) -> list[Block]:
    """Label counts and shares with 95 % intervals, per pair and relation, unlabelled reasons."""
    t = R.label_table(res)
    blocks: list[Block] = [("h2", "Transferred, shared, independent")]
    if t.empty:
        return blocks + [("note", "No fact_labels: run the label stage (or no correct facts).")]
    rule = _TRANSFER_RULE.get(R.transfer_rule(res) or "", "the neuron evidence is unrecorded")
    blocks.append(("p", "Our operational definitions are in docs/labels.md. Shared with L′: the "
                        "fact's top-k Jaccard beats its own same-object and different-object "
                        "strata (other facts of its relation) and its p-value, corrected over "
                        "the fact's partners, is at most alpha. Independent: at or below the "
                        "different-object stratum's lower bound for every partner, with enough "
                        "null values; otherwise unlabelled (inconclusive). Transferred: absent "
                        "in L, not an easy fact, no sibling of the same object in L, not a "
                        "popular answer (prior), correct in a source language where it is "
                        f"present; {rule}."))
    blocks.append(("table", t))
    tr = R.reasons_table(res, "transferred")
    if len(tr):
        blocks += [("p", "Transferred facts by the neuron evidence that shows a source sharing "
                         "them (absent_with_shared_source: the overlap test; "
                         "absent_with_causal_source: the causal test; absent_with_source: "
                         "neither shows it, which in the lab is most true transfers, "
                         "docs/lab.md):"), ("table", tr)]
    fl = res.get("fact_labels")
    shares = R.bootstrap_shares(fl, "label", R.LABEL_ORDER)
    if len(shares):
        shown = shares.assign(**{"share % [95 % CI]": [
            f"{s:.1f} [{a:.1f}, {b:.1f}]" for s, a, b in
            zip(shares["share"], shares["ci_low"], shares["ci_high"])]})
        blocks += [("p", "Label shares per language with 95 % bootstrap intervals (2,000 "
                         "resamples of the language's labelled facts):"),
                   ("table", shown[["lang", "label", "n", "total", "share % [95 % CI]"]])]
    pairs = R.pair_table(res)
    if len(pairs):
        blocks += [("p", "Per language pair (facts present & correct in both; thresholds are "
                         "medians over facts; chance = J of two random top-k sets of the "
                         f"model's neurons; {_chance_text(res, R.label_k(res))}; identical "
                         "= partners whose subject and object are spelled the same in both "
                         "languages, where a high J may be the same input, not a shared "
                         "fact):"),
                   ("table", pairs)]
    rel = R.relation_table(res)
    if len(rel):
        blocks += [("p", "Per relation (all tested fact-partner pairs): one relation should not "
                         "carry the shared labels."), ("table", rel)]
    why = R.reasons_table(res, "unlabelled")
    if len(why):
        blocks += [("p", "Why facts stay unlabelled:"), ("table", why)]
    return blocks + _img(figs, "labels", "Label proportions per language")


def lab_blocks(res: R.Results, figs: dict | None = None) -> list[Block]:
    """The lab check (only for lab runs): labels and trace against the lab's truths."""
    t = R.lab_check_table(res)
    if t.empty:
        return []
    return [("h2", "Lab check: labels against the lab's truths"),
            ("p", "The lab model was trained on a corpus of fictional facts that we wrote "
                  "(docs/lab.md). **What its truths are.** *transferred*: a `transfer` fact "
                  "(planted in one source language only) correct in another language under "
                  "the probed model and wrong under a counterfactual model trained without "
                  "its source sentences (and, with `lab.replicate_seeds`, correct in every "
                  "seed). *shared* / *independent*: by construction of the data (group "
                  "`shared`: identical names and parallel pairs in every language; the "
                  "`independent_*` groups: language-specific subjects, no link), which says "
                  "what the model was shown, not which units it uses; and against the causal "
                  "verdict of the interventions stage. *detector*: facts written by hand into "
                  "chosen FFN units (the same units in every language, or disjoint ones): "
                  "the only truth about units, for a fact the model never learnt. "
                  "`shared_rate_independent_same_obj` against `_diff_obj` measures the "
                  "answer-token confound. Each cell is value (numerator/denominator), – "
                  "where the denominator is 0; lab_check holds the 95 % Wilson intervals."),
            ("table", t)] + _img(figs or {}, "lab_check",
                                 "Lab check, pooled, with 95 % Wilson intervals")


def failed_blocks(res: R.Results) -> list[Block]:
    """What failed in the run, first: those partitions are left out of every figure below."""
    if not res.failed:
        return []
    rows = pd.DataFrame([{k: f.get(k) for k in ("stage", "table", "lang", "error")}
                         for f in res.failed])
    return [("h2", "Failed in this run"),
            ("note", f"{len(rows)} partition(s) failed: the run exited non-zero and these "
                     "(table, language) pairs are missing below, not replaced by older results "
                     "(run_report.json). Fix the input named in each error and rerun: finished "
                     "partitions are skipped."),
            ("table", rows)]


def build_report(res: R.Results, run: dict, figs: dict, folder: Path, *, formats: list[str],
                 min_facts: int, top: int, reference: tuple) -> Path:
    """Write report.md (and report.html) into ``folder``; return the Markdown path."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    blocks: list[Block] = [("h1", "factroots report"), ("p", f"Generated {now} from {res.out}.")]
    blocks += _run_facts(res, run)
    blocks += failed_blocks(res)
    if res.notes:
        blocks += [("h2", "Missing inputs")] + [("note", n) for n in res.notes]
    blocks += p1_blocks(res, figs, min_facts, reference) + presence_blocks(res, figs, min_facts)
    blocks += overlap_blocks(res, figs, top) + corpus_blocks(res, figs) + label_blocks(res, figs)
    blocks += lab_blocks(res, figs)
    blocks += causal_blocks(res.out, res.langs, folder)  # the causal test (report/causal.py)
    md = folder / "report.md"
    md.write_text(to_markdown(blocks, folder), encoding="utf-8")
    if "html" in formats:
        (folder / "report.html").write_text(to_html(blocks, "factroots report"),
                                            encoding="utf-8")
    return md
