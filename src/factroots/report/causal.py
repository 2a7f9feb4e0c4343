"""The report's causal section, from `interventions` and `fact_labels`: does switching off a
fact's neurons found in L hurt the fact in L', and does that agree with the overlap verdict?

``causal_blocks(out, langs, folder)`` returns report blocks: the positive control (L' = L),
the causal verdict counts and reasons, the agreement of the overlap verdict (``shared_with``:
Jaccard above the pair's null) with the causal one (``causal_shared_with``) per (fact,
partner) and per fact, and a figure of the ablation effect (Δlog p beyond the same-relation
controls) against the pair's top-k Jaccard.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from factroots import storage

CAUSAL_ORDER = ["shared", "not_shared", "untested"]


def _read(out: Path, table: str, langs: list[str] | None) -> pd.DataFrame | None:
    if not storage.done_langs(out, table):
        return None
    return storage.read_table(out, table, langs or None).to_pandas()


def pair_frame(labels: pd.DataFrame, ivs: pd.DataFrame) -> pd.DataFrame:
    """One row per (lang, uuid, partner) tested by overlap or ablation: both verdicts, the
    Jaccard, Δlog p and its margin over the same-relation controls."""
    rows = []
    for r in labels.itertuples(index=False):
        shared, causal = set(r.shared_with), set(r.causal_shared_with)
        judged = r.label in ("shared", "independent")  # the overlap verdict's facts
        for lg, j in zip(r.partner_langs, r.partner_jaccard):
            rows.append({"lang": r.lang, "uuid": r.uuid, "target_lang": lg, "jaccard": j,
                         "overlap": "shared" if lg in shared else
                         ("untested" if not judged or j is None or np.isnan(j)
                          else "not_shared"),
                         "causal": "shared" if lg in causal else
                         ("untested" if r.causal == "untested" else "not_shared")})
    pairs = pd.DataFrame(rows, columns=["lang", "uuid", "target_lang", "jaccard", "overlap",
                                        "causal"])
    eff = ivs[ivs["lang"] != ivs["target_lang"]][["lang", "uuid", "target_lang", "dlogp",
                                                  "ctrl_relation_mean", "flipped"]]
    pairs = pairs.merge(eff, on=["lang", "uuid", "target_lang"], how="left")
    pairs["margin"] = pairs["dlogp"] - pairs["ctrl_relation_mean"]
    return pairs


def agreement(pairs: pd.DataFrame) -> pd.DataFrame:
    """Overlap verdict (rows) × causal verdict (columns) over (fact, partner) pairs."""
    t = pd.crosstab(pairs["overlap"], pairs["causal"]).reindex(
        index=CAUSAL_ORDER, columns=CAUSAL_ORDER, fill_value=0)
    t.index.name, t.columns.name = "overlap \\ causal", None
    return t.reset_index()


def plot_effect(pairs: pd.DataFrame, path: Path) -> Path | None:
    """Scatter: margin of Δlog p over the controls against Jaccard, coloured by causal verdict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = pairs.dropna(subset=["jaccard", "margin"])
    if d.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    for verdict, color in (("shared", "#55a868"), ("not_shared", "#4c72b0"),
                           ("untested", "#c7c7c7")):
        s = d[d["causal"] == verdict]
        ax.scatter(s["jaccard"], s["margin"], s=12, alpha=0.7, color=color,
                   label=f"causal {verdict} ({len(s)})")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel("top-k Jaccard of the fact's neurons in L and L'")
    ax.set_ylabel("Δlog p in L' − same-relation controls")
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _own(ivs: pd.DataFrame) -> str:
    own = ivs[ivs["lang"] == ivs["target_lang"]]
    if own.empty:
        return "No positive-control rows (L' = L)."
    beat = (own["pvalue"] <= 0.05).mean() * 100
    return (f"Positive control (the fact's neurons switched off in its own language L): "
            f"{len(own)} facts, prediction flipped for {own['flipped'].mean() * 100:.1f} %, "
            f"mean Δlog p {own['dlogp'].mean():.2f} against {own['ctrl_relation_mean'].mean():.2f} "
            f"for same-relation controls and {own['ctrl_random_mean'].mean():.2f} for "
            f"layer-matched random units; p ≤ 0.05 (uncorrected) for {beat:.1f} %.")


def _lab(out: Path, langs: list[str] | None, labels: pd.DataFrame) -> list[tuple]:
    """Lab runs: the causal verdict by the fact's plan group (a fact planted in one language
    only and correct in another can only have been transferred: its neurons should be shared)."""
    plan = _read(out, "planted_facts", langs)
    if plan is None or plan.empty:
        return []
    m = labels.merge(plan[["lang", "uuid", "group", "shared_names"]], on=["lang", "uuid"])
    t = pd.crosstab([m["group"], m["shared_names"]], m["causal"]).reindex(
        columns=CAUSAL_ORDER, fill_value=0).reset_index()
    return [("p", "Lab: the causal verdict by plan group (only_<lang>: planted in that language "
                  "alone, so correct elsewhere only by transfer) and whether the fact's names "
                  "are spelled alike in two lab languages:"), ("table", t)]


def causal_blocks(out: Path, langs: list[str] | None, folder: Path) -> list[tuple]:
    """The causal section's blocks (a note when the interventions stage did not run)."""
    blocks: list[tuple] = [("h2", "Causal test: switching off a fact's neurons")]
    ivs, labels = _read(out, "interventions", langs), _read(out, "fact_labels", langs)
    if ivs is None or labels is None or ivs.empty:
        return blocks + [("note", "No interventions table: run `factroots intervene`, then the "
                                  "label stage.")]
    k = sorted(ivs["k"].unique().tolist())
    conf = next(((storage.read_manifest(out, "interventions", lg) or {}).get("config") or {}
                 for lg in storage.done_langs(out, "interventions")), {})
    pool = (conf.get("interventions") or {}).get("controls") == "pool"
    ctrl = ("k-unit sets drawn from the units of the other facts' top sets in the same "
            "relation, by frequency" if pool else "the top units of other facts of the same "
            "relation")
    blocks.append(("p", f"For each correct fact with a signature, its top-{k[-1]} units found in "
                        "L are switched off at the masks of its prompt in each L' where it is "
                        "also correct, against the same fact's prompt run clean; controls are "
                        f"{ctrl} (permutation p-value) and layer-matched random units. A fact's partners' p-values "
                        "are corrected together (label.correction, as for the overlap "
                        "verdict); a fact whose relation has too few controls for a corrected "
                        "p-value to reach alpha stays untested (underpowered)."))
    blocks.append(("p", _own(ivs)))
    counts = labels.groupby(["lang", "causal"]).size().unstack(fill_value=0).reindex(
        columns=CAUSAL_ORDER, fill_value=0).reset_index()
    blocks += [("table", counts)]
    why = labels[labels["causal"] == "untested"].groupby(["lang", "causal_reason"]).size()
    if len(why):
        blocks += [("p", "Why facts stay causally untested:"),
                   ("table", why.rename("facts").reset_index())]
    pairs = pair_frame(labels, ivs)
    if len(pairs):
        blocks += [("p", "Agreement per (fact, partner) pair (the partners of `fact_labels`: "
                         "present & correct in both), the overlap verdict as the label stage "
                         "decides it against the causal verdict:"),
                   ("table", agreement(pairs))]
        fact = pd.crosstab(labels["label"], labels["causal"]).reindex(
            columns=CAUSAL_ORDER, fill_value=0)
        fact.index.name = "label \\ causal"
        blocks += [("p", "Per fact, overlap-based label against the causal verdict:"),
                   ("table", fact.reset_index())]
    blocks += _lab(out, langs, labels)
    fig = plot_effect(pairs, folder / "figures" / "causal_effect_vs_jaccard.png")
    if fig is not None:
        blocks.append(("img", fig, "Ablation effect in L' beyond the same-relation controls "
                                   "against the top-k Jaccard of L and L'"))
    return blocks
