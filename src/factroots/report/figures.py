"""The report's figures, drawn with matplotlib (Agg) from the tables of `report.results`.

Each ``plot_*`` takes a `Results` (and optionally an Axes) and returns the Figure, or None when
its data is missing; `write_figures` saves every available one as PNG. The overlap heatmap is
ordered by average-linkage clustering on 1 − Jaccard, implemented here in numpy.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from factroots.report import results as R

COLORS = {"shared_entity_tokens": "#4c72b0", "naming_cues": "#dd8452", "others": "#8c8c8c",
          "transferred": "#c44e52", "shared": "#55a868", "independent": "#4c72b0",
          "cue_explained": "#dd8452", "explained_within_language": "#8172b3",
          "prior_explained": "#937860", "unlabelled": "#c7c7c7"}


def _axes(ax, width: float = 8, height: float = 4):  # type: ignore[no-untyped-def]
    if ax is not None:
        return ax.figure, ax
    return plt.subplots(figsize=(width, height), layout="constrained")


def cluster_order(dist: np.ndarray) -> list[int]:
    """Leaf order of average-linkage (UPGMA) clustering of a symmetric distance matrix."""
    n = len(dist)
    clusters: dict[int, list[int]] = {i: [i] for i in range(n)}
    d = {(i, j): float(dist[i, j]) for i in range(n) for j in range(i + 1, n)}
    nxt = n
    while len(clusters) > 1:
        (a, b), _ = min(d.items(), key=lambda kv: (kv[1], kv[0]))
        merged = clusters.pop(a) + clusters.pop(b)
        d = {k: v for k, v in d.items() if a not in k and b not in k}
        for c, members in clusters.items():
            d[(c, nxt)] = float(np.mean([dist[i, j] for i in merged for j in members]))
        clusters[nxt] = merged
        nxt += 1
    return next(iter(clusters.values())) if clusters else []


def plot_p1(res: R.Results, ax=None, reference: dict | None = None):  # type: ignore[no-untyped-def]
    """Bars of P@1 per language (full-match; partial as a lighter bar; paper as dots)."""
    t = R.p1_table(res)
    if t.empty:
        return None
    fig, ax = _axes(ax, max(6, 0.35 * len(t) + 2))
    x = np.arange(len(t))
    ax.bar(x, t["p1_partial"], color="#a1c4e8", label="partial-match")
    ax.bar(x, t["p1"], color="#4c72b0", label="full-match")
    if reference:
        ref = [reference.get(lg, np.nan) for lg in t["lang"]]
        ax.plot(x, ref, "o", color="#c44e52", ms=4, label="paper (full)")
    ax.set_xticks(x, t["lang"], rotation=90 if len(t) > 12 else 0)
    ax.set_ylabel("P@1 (%)")
    ax.set_title("P@1 per language")
    ax.legend(frameon=False)
    return fig


def plot_absent_rate(res: R.Results, ax=None):  # type: ignore[no-untyped-def]
    """Bars of the share of correct facts absent from the language's Wikipedia."""
    t = R.absent_table(res).dropna(subset=["absent_rate"]).sort_values("absent_rate")
    if t.empty:
        return None
    fig, ax = _axes(ax, max(6, 0.35 * len(t) + 2))
    ax.bar(t["lang"], t["absent_rate"], color="#c44e52")
    for x, (rate, n) in enumerate(zip(t["absent_rate"], t["correct"])):
        ax.text(x, rate, f"n={n}", ha="center", va="bottom", fontsize=7)
    ax.set_ylabel("absent & correct / correct (%)")
    ax.set_title("Correct facts absent from the language's Wikipedia")
    return fig


def _stacked(t, order: list[str], title: str, ax, share: bool):  # type: ignore[no-untyped-def]
    if t.empty or t["total"].sum() == 0:
        return None
    fig, ax = _axes(ax, 8, max(2.5, 0.35 * len(t) + 1.5))
    left = np.zeros(len(t))
    for cat in [c for c in t.columns if c not in ("lang", "total")]:
        vals = t[cat].to_numpy(float)
        vals = 100 * vals / np.maximum(t["total"].to_numpy(float), 1) if share else vals
        ax.barh(t["lang"], vals, left=left, color=COLORS.get(cat, None), label=cat)
        for y, (v, lft, n) in enumerate(zip(vals, left, t[cat])):
            if v > (8 if share else 0.08 * max(1, t["total"].max())):
                ax.text(lft + v / 2, y, str(int(n)), ha="center", va="center", fontsize=7)
        left += vals
    ax.set_xlabel("share (%)" if share else "facts")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def plot_easy_facts(res: R.Results, ax=None):  # type: ignore[no-untyped-def]
    """Stacked bars: absent & correct facts per easy-fact category, per language (counts)."""
    return _stacked(R.easy_table(res), R.EASY_ORDER, "Absent & correct facts by category",
                    ax, share=False)


def plot_labels(res: R.Results, ax=None):  # type: ignore[no-untyped-def]
    """Stacked bars: proportions of the labels of correct facts, per language."""
    return _stacked(R.label_table(res), R.LABEL_ORDER, "Labels of correct facts (%)", ax,
                    share=True)


def plot_overlap(res: R.Results, ax=None, top: int = 30):  # type: ignore[no-untyped-def]
    """Heatmap of mean top-k Jaccard per language pair, rows and columns clustered."""
    m = R.overlap_matrix(res, top)
    if m.empty or len(m) < 2:
        return None
    dist = 1 - m.fillna(0).to_numpy()
    np.fill_diagonal(dist, 0)
    order = cluster_order((dist + dist.T) / 2)
    m = m.iloc[order, order]
    fig, ax = _axes(ax, max(5.5, 0.3 * len(m) + 3), max(4.5, 0.3 * len(m) + 2.5))
    im = ax.imshow(m.to_numpy(), cmap="viridis")
    ax.set_xticks(range(len(m)), m.columns, rotation=90, fontsize=7)
    ax.set_yticks(range(len(m)), m.index, fontsize=7)
    ov = res.get("overlap")
    k = int(ov["top_k"].iloc[0]) if ov is not None and len(ov) else 0
    chance = R.chance_jaccard(k, res.neurons)
    where = (f"chance {chance:.4f} (k = {k} of {res.neurons:,} neurons)" if res.neurons
             else "chance level unknown (neuron count not recorded)")
    fig.colorbar(im, ax=ax, shrink=0.8, label=f"mean Jaccard of top-k neurons; {where}")
    ax.set_title("Shared fact neurons between languages (clustered)", fontsize=10)
    return fig


def plot_p1_vs_corpus(res: R.Results, ax=None, size: str | None = None):  # type: ignore[no-untyped-def]
    """P@1 against corpus size per language (log x; articles, else sentences) with Pearson r."""
    t = R.corpus_table(res)
    size = size or ("articles" if t["articles"].notna().any() else "sentences")
    t = t.dropna(subset=[size, "p1"])
    t = t[t[size] > 0]
    if t.empty:
        return None
    r, n = R.pearson(t[size], t["p1"])
    fig, ax = _axes(ax, 6, 4)
    ax.scatter(t[size], t["p1"], color="#4c72b0")
    for x, y, lg in zip(t[size], t["p1"], t["lang"]):
        ax.annotate(lg, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel(f"{size} in the traced Wikipedia")
    ax.set_ylabel("P@1 (%)")
    ax.set_title(f"P@1 vs corpus size: Pearson r = {r:.2f} (n = {n})" if not np.isnan(r)
                 else f"P@1 vs corpus size (n = {n}: too few for r, under "
                      f"{R.MIN_CORR_LANGS} languages)" if n < R.MIN_CORR_LANGS
                 else f"P@1 vs corpus size (n = {n}: r undefined)")
    return fig


FIGURES = {"p1": plot_p1, "absent_rate": plot_absent_rate, "easy_facts": plot_easy_facts,
           "overlap_heatmap": plot_overlap, "p1_vs_corpus": plot_p1_vs_corpus,
           "labels": plot_labels}


LAB_METRICS = ("p1_planted", "transferred_precision", "transferred_recall",
               "transferred_any_source_precision", "transferred_any_source_recall",
               "transferred_causal_precision", "transferred_causal_recall", "shared_precision",
               "shared_recall", "independent_precision", "independent_recall",
               "shared_vs_causal_precision", "independent_vs_causal_precision",
               "detector_shared_precision", "detector_independent_precision",
               "detector_causal_shared_precision", "detector_causal_not_shared_precision")


def plot_lab_check(res: R.Results, ax=None):  # type: ignore[no-untyped-def]
    """Pooled lab-check metrics (lang ``all``) with their 95 % Wilson intervals and counts."""
    c = res.get("lab_check")
    if c is None or c.empty or "ci_low" not in c:
        return None
    c = c[(c["lang"] == "all") & c["metric"].isin(LAB_METRICS) & (c["denominator"] > 0)]
    if c.empty:
        return None
    c = c.set_index("metric")
    c = c.reindex([m for m in LAB_METRICS if m in set(c.index)])
    fig, ax = _axes(ax, 8, 0.35 * len(c) + 1)
    y = np.arange(len(c))[::-1]
    v = 100 * c["value"].to_numpy()
    err = [v - 100 * c["ci_low"].to_numpy(), 100 * c["ci_high"].to_numpy() - v]
    ax.barh(y, v, xerr=err, color="#4c72b0", capsize=3)
    ax.set_yticks(y, [f"{m} ({n}/{d})" for m, n, d in zip(c.index, c["numerator"],
                                                          c["denominator"])])
    ax.set_xlim(0, 100)
    ax.set_xlabel("% (pooled over the lab languages; 95 % Wilson interval)")
    ax.set_title("Lab check: labels against the lab's truths")
    return fig


FIGURES["lab_check"] = plot_lab_check


def write_figures(res: R.Results, folder: Path, *, top: int = 30,
                  reference: dict | None = None) -> dict[str, Path | None]:
    """Save every figure whose data exists as ``<folder>/<name>.png``; None for the others."""
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path | None] = {}
    for name, fn in FIGURES.items():
        kwargs = {"top": top} if name == "overlap_heatmap" else (
            {"reference": reference} if name == "p1" else {})
        fig = fn(res, **kwargs)
        paths[name] = None
        if fig is not None:
            paths[name] = folder / f"{name}.png"
            fig.savefig(paths[name], dpi=110)
            plt.close(fig)
    return paths
