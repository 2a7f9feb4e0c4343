"""Read a run's output tables and reduce them to the per-language tables the report shows.

`load_results` reads whatever exists under ``out`` (a stage not run gives ``None`` and a note);
each ``*_table`` function returns a pandas DataFrame, one row per language, or an empty one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from math import lgamma
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from factroots import storage

COLUMNS = {
    "facts": ["lang", "uuid", "relation"],
    "predictions": ["lang", "uuid", "relation", "protocol", "correct_full", "correct_partial",
                    "correct_exact"],
    "status": ["lang", "uuid", "relation", "status", "missing"],
    "easy_facts": ["lang", "uuid", "category", "rule"],
    "fact_labels": ["lang", "uuid", "relation", "status", "label", "reason", "shared_with",
                    "partner_langs", "partner_jaccard", "partner_threshold",
                    "partner_threshold_same", "partner_threshold_diff", "partner_lower",
                    "partner_identical"],
    "overlap": ["lang", "other_lang", "mean_jaccard", "n_facts", "top_k"],
    "lab_check": ["lang", "metric", "value", "numerator", "denominator", "ci_low", "ci_high"],
}
OPTIONAL = {"lab_check"}  # only lab runs have it: its absence is not a missing stage
LABEL_ORDER = ["transferred", "shared", "independent", "cue_explained",
               "explained_within_language", "prior_explained", "unlabelled"]
MBERT_NEURONS = 36_864   # mBERT-base: 12 layers x 3,072 FFN units, the space of the paper's J
MIN_CORR_LANGS = 5       # fewer languages: no correlation is computed
EASY_ORDER = ["shared_entity_tokens", "naming_cues", "others"]


@dataclass
class Results:
    """The tables of one run (``None`` where a stage did not run) and notes on what is missing."""

    out: Path
    langs: list[str]
    tables: dict[str, pd.DataFrame | None] = field(default_factory=dict)
    manifests: dict[str, dict[str, dict]] = field(default_factory=dict)
    corpus: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)  # the run report's failed partitions
    neurons: int | None = None   # neurons of the probed model the signatures rank (layers x width)

    def get(self, name: str) -> pd.DataFrame | None:
        """One table as a DataFrame, or None."""
        return self.tables.get(name)


def _corpus(out: Path, langs: list[str]) -> pd.DataFrame:
    """Articles (main namespace, not redirects) and sentences per language, from the trace."""
    rows = []
    for lg in langs:
        row: dict = {"lang": lg, "articles": np.nan, "sentences": np.nan}
        if storage.is_done(out, "pages", lg):
            files = sorted(storage.partition_dir(out, "pages", lg).glob("*.parquet"))
            if files:
                t = pq.read_table(files, columns=["namespace", "is_redirect"]).to_pandas()
                row["articles"] = int(((t["namespace"] == 0) & ~t["is_redirect"]).sum())
        m = storage.read_manifest(out, "sentences", lg)
        if m is not None:
            row["sentences"] = m.get("rows", np.nan)
        rows.append(row)
    return pd.DataFrame(rows, columns=["lang", "articles", "sentences"])


def load_results(out: str | Path, langs: list[str] | None = None) -> Results:
    """Read every output table that exists under ``out`` (restricted to ``langs`` if given)."""
    out = Path(out)
    have = storage.done_langs(out, "facts")
    langs = sorted(langs or have)
    res = Results(out, langs)
    for name, cols in COLUMNS.items():
        pooled = {"all"} if name == "lab_check" else set()  # the lab check's pooled rows
        done = [lg for lg in storage.done_langs(out, name) if lg in langs or lg in pooled]
        res.manifests[name] = {lg: storage.read_manifest(out, name, lg) or {} for lg in done}
        if not done:
            res.tables[name] = None
            if name not in OPTIONAL:
                res.notes.append(f"`{name}` is missing: its stage did not run for these languages")
            continue
        res.tables[name] = storage.read_table(out, name, done, columns=cols).to_pandas()
        lacking = sorted(set(langs) - set(done)) if name not in {"overlap"} | OPTIONAL else []
        if lacking:
            res.notes.append(f"`{name}` lacks {', '.join(lacking)}")
    for m in res.manifests.get("status", {}).values():
        for note in (m.get("inputs") or {}).get("notes") or []:
            if f"label: {note}" not in res.notes:
                res.notes.append(f"label: {note}")
    res.corpus = _corpus(out, langs)
    res.neurons = neuron_count(out, langs)
    res.failed = run_failures(out)
    return res


def run_failures(out: Path) -> list[dict]:
    """The (stage, table, lang, error) that failed in the last run on ``out``
    (``<out>/run_report.json``, written by the runner); none when there is no report."""
    try:
        report = json.loads((out / "run_report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [f for f in report.get("failed") or [] if isinstance(f, dict)]


def neuron_count(out: Path, langs: list[str]) -> int | None:
    """How many neurons the signatures ranked (layers x units per layer), from their manifests."""
    for lg in langs:
        conf = (storage.read_manifest(out, "signatures", lg) or {}).get("config") or {}
        width, layers = conf.get("width"), conf.get("layers")
        if width and layers:
            return int(width) * len(layers)
    return None


def chance_jaccard(k: int, n: int | None) -> float:
    """Expected Jaccard of two independent uniformly random k-subsets of n neurons (exact:
    the intersection is hypergeometric); about k / (2n - k), i.e. half of k / n."""
    if not n or not k or k > n:
        return float("nan")
    i = np.arange(0, k + 1)
    valid = (k - i) <= (n - k)
    i = i[valid]
    logp = (_lcomb(k, i) + _lcomb(n - k, k - i)) - _lcomb(n, np.array([k]))[0]
    return float(np.sum(np.exp(logp) * i / (2 * k - i)))


def _lcomb(n: int, r: np.ndarray) -> np.ndarray:
    return np.array([lgamma(n + 1) - lgamma(x + 1) - lgamma(n - x + 1) for x in np.atleast_1d(r)])


def recorded(res: Results, table: str, section: str) -> dict:
    """The config section recorded by the first manifest of ``table`` (the config that built it)."""
    for m in res.manifests.get(table, {}).values():
        if (m.get("config") or {}).get(section):
            return m["config"][section]
    return {}


def transfer_rule(res: Results) -> str | None:
    """The `label.transfer_evidence` that built fact_labels (None where unrecorded)."""
    rule = recorded(res, "fact_labels", "label").get("transfer_evidence")
    return None if rule is None else str(rule)


def reasons_table(res: Results, label: str) -> pd.DataFrame:
    """Facts per language and reason under one label of fact_labels."""
    fl = res.get("fact_labels")
    if fl is None or not len(fl):
        return pd.DataFrame(columns=["lang", "reason", "facts"])
    return (fl[fl["label"] == label].groupby(["lang", "reason"]).size().rename("facts")
            .reset_index())


def label_k(res: Results) -> int | None:
    """The top-k of the fact-level Jaccards (neurons.overlap_k recorded by the label stage)."""
    k = recorded(res, "fact_labels", "neurons").get("overlap_k")
    if k:
        return int(k)
    ov = res.get("overlap")
    return int(ov["top_k"].iloc[0]) if ov is not None and len(ov) else None


def bootstrap_shares(df: pd.DataFrame, column: str, order: list[str], n_boot: int = 2000,
                     seed: int = 0) -> pd.DataFrame:
    """Per language and category: count, share (%) and its 95 % bootstrap interval (resampling
    the language's rows: a multinomial draw of its counts), seeded."""
    cols = ["lang", column, "n", "total", "share", "ci_low", "ci_high"]
    if df is None or df.empty:
        return pd.DataFrame(columns=cols)
    rng = np.random.default_rng(seed)
    rows = []
    for lg, g in df.groupby("lang"):
        counts = g[column].value_counts()
        cats = [c for c in order if c in counts.index] + [c for c in counts.index if c not in order]
        n = counts.reindex(cats).to_numpy(int)
        total = int(n.sum())
        draws = rng.multinomial(total, n / total, size=n_boot) / total
        lo, hi = np.percentile(draws, [2.5, 97.5], axis=0)
        rows += [(lg, c, int(x), total, 100 * x / total, 100 * a, 100 * b)
                 for c, x, a, b in zip(cats, n, lo, hi)]
    return pd.DataFrame(rows, columns=cols)


def p1_table(res: Results, protocol: str = "full") -> pd.DataFrame:
    """P@1 per language (micro full / partial / exact, macro over relations), descending."""
    p = res.get("predictions")
    if p is None:
        return pd.DataFrame(columns=["lang", "facts", "correct", "p1", "p1_partial", "p1_exact",
                                     "p1_macro"])
    p = p[p["protocol"] == protocol]
    g = p.groupby("lang")
    df = pd.DataFrame({"facts": g.size(), "correct": g["correct_full"].sum(),
                       "p1": 100 * g["correct_full"].mean(),
                       "p1_partial": 100 * g["correct_partial"].mean(),
                       "p1_exact": 100 * g["correct_exact"].mean()})
    macro = p.groupby(["lang", "relation"])["correct_full"].mean().groupby("lang").mean()
    df["p1_macro"] = 100 * macro
    return df.reset_index().sort_values(["p1", "lang"], ascending=[False, True],
                                        ignore_index=True)


def absent_table(res: Results) -> pd.DataFrame:
    """Per language: correct facts absent (2) / present (3) in its Wikipedia, the absent rate."""
    s = res.get("status")
    cols = ["lang", "absent_correct", "present_correct", "correct", "absent_rate", "unknown"]
    if s is None:
        return pd.DataFrame(columns=cols)
    g = s.groupby("lang")["status"]
    df = pd.DataFrame({"absent_correct": g.apply(lambda x: int((x == 2).sum())),
                       "present_correct": g.apply(lambda x: int((x == 3).sum())),
                       "unknown": g.apply(lambda x: int(x.isna().sum()))})
    df["correct"] = df["absent_correct"] + df["present_correct"]
    df["absent_rate"] = 100 * df["absent_correct"] / df["correct"].where(df["correct"] > 0)
    return df.reset_index()[cols]


def _shares(df: pd.DataFrame | None, column: str, order: list[str]) -> pd.DataFrame:
    if df is None or df.empty:
        return pd.DataFrame(columns=["lang", *order, "total"])
    t = pd.crosstab(df["lang"], df[column])
    extra = [c for c in t.columns if c not in order]
    t = t.reindex(columns=order + extra, fill_value=0)
    t["total"] = t.sum(axis=1)
    return t.reset_index().rename_axis(columns=None)


def easy_table(res: Results) -> pd.DataFrame:
    """Per language: absent & correct facts in each easy-fact category."""
    return _shares(res.get("easy_facts"), "category", EASY_ORDER)


def label_table(res: Results) -> pd.DataFrame:
    """Per language: correct facts under each label."""
    return _shares(res.get("fact_labels"), "label", LABEL_ORDER)


def _partner_rows(res: Results) -> pd.DataFrame:
    """One row per (status-3 fact, partner) of fact_labels: J, thresholds, bound, shared."""
    fl = res.get("fact_labels")
    cols = ["lang", "other_lang", "relation", "j", "t", "t_same", "t_diff", "lower",
            "identical", "shared"]
    if fl is None or fl.empty:
        return pd.DataFrame(columns=cols)
    fl = fl[fl["status"] == 3]
    rows = [(lg, p, r, j, t, ts, td, lo, bool(ident), p in set(sw))
            for lg, r, ps, js, tt, tss, tds, los, ids, sw in zip(
                fl["lang"], fl["relation"], fl["partner_langs"], fl["partner_jaccard"],
                fl["partner_threshold"], fl["partner_threshold_same"],
                fl["partner_threshold_diff"], fl["partner_lower"], fl["partner_identical"],
                fl["shared_with"])
            for p, j, t, ts, td, lo, ident in zip(ps, js, tt, tss, tds, los, ids)]
    return pd.DataFrame(rows, columns=cols)


def pair_table(res: Results) -> pd.DataFrame:
    """Per ordered language pair: facts present & correct in both, tested (J and a null), shared,
    mean J, the median thresholds of the two strata and the chance level of J."""
    cols = ["lang", "other_lang", "facts", "tested", "shared", "shared_pct", "mean_jaccard",
            "threshold", "threshold_same", "threshold_diff", "chance", "identical",
            "shared_identical", "mean_jaccard_identical"]
    df = _partner_rows(res)
    if df.empty:
        return pd.DataFrame(columns=cols)
    df["tested"] = df["j"].notna() & (df["t"].notna() | df["lower"].notna())
    g = df.groupby(["lang", "other_lang"])
    out = pd.DataFrame({"facts": g.size(), "tested": g["tested"].sum(),
                        "shared": g["shared"].sum(), "mean_jaccard": g["j"].mean(),
                        "threshold": g["t"].median(), "threshold_same": g["t_same"].median(),
                        "threshold_diff": g["t_diff"].median()}).reset_index()
    out["shared_pct"] = 100 * out["shared"] / out["tested"].where(out["tested"] > 0)
    out["chance"] = chance_jaccard(label_k(res) or 0, res.neurons)
    # the identical-spelling confound: same entity tokens in both prompts
    ident = df[df["identical"]].groupby(["lang", "other_lang"])
    extra = pd.DataFrame({"identical": ident.size(), "shared_identical": ident["shared"].sum(),
                          "mean_jaccard_identical": ident["j"].mean()})
    out = out.merge(extra.reset_index(), on=["lang", "other_lang"], how="left")
    out[["identical", "shared_identical"]] = out[["identical", "shared_identical"]].fillna(0) \
        .astype(int)
    return out[cols].sort_values(["lang", "other_lang"], ignore_index=True)


def relation_table(res: Results) -> pd.DataFrame:
    """Per relation: (fact, partner) tests of status-3 facts, shared, shared rate (%) and the
    median thresholds of the two strata: one relation must not carry the shared labels."""
    cols = ["relation", "tests", "shared", "shared_pct", "mean_jaccard", "threshold_same",
            "threshold_diff"]
    df = _partner_rows(res)
    df = df[df["j"].notna()] if len(df) else df
    if df.empty:
        return pd.DataFrame(columns=cols)
    g = df.groupby("relation")
    out = pd.DataFrame({"tests": g.size(), "shared": g["shared"].sum(),
                        "mean_jaccard": g["j"].mean(), "threshold_same": g["t_same"].median(),
                        "threshold_diff": g["t_diff"].median()}).reset_index()
    out["shared_pct"] = 100 * out["shared"] / out["tests"]
    return out[cols].sort_values(["shared", "relation"], ascending=[False, True],
                                 ignore_index=True)


def corpus_table(res: Results) -> pd.DataFrame:
    """Per language: P@1 beside the corpus size the trace saw (articles, sentences)."""
    p1 = p1_table(res)[["lang", "p1", "facts"]]
    return p1.merge(res.corpus, on="lang", how="left")


def pearson(x: pd.Series, y: pd.Series, min_n: int = MIN_CORR_LANGS) -> tuple[float, int]:
    """Pearson r over the rows where both are finite, and how many rows that is (NaN with
    fewer than ``min_n`` rows: an r over 3 languages says nothing)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < max(min_n, 3) or np.std(x[ok]) == 0 or np.std(y[ok]) == 0:
        return float("nan"), int(ok.sum())
    return float(np.corrcoef(x[ok], y[ok])[0, 1]), int(ok.sum())


def overlap_matrix(res: Results, top: int = 30) -> pd.DataFrame:
    """Square language × language mean Jaccard for the ``top`` languages by P@1 (NaN = no pair)."""
    ov = res.get("overlap")
    if ov is None or ov.empty:
        return pd.DataFrame()
    langs = sorted(set(ov["lang"]) | set(ov["other_lang"]))
    ranked = [lg for lg in p1_table(res)["lang"] if lg in langs] or langs
    keep = ranked[:top]
    m = pd.DataFrame(np.nan, index=keep, columns=keep)
    for a, b, j in zip(ov["lang"], ov["other_lang"], ov["mean_jaccard"]):
        if a in m.index and b in m.columns and a != b:
            m.loc[a, b] = j
            if np.isnan(m.loc[b, a]):
                m.loc[b, a] = j
    return m


def lab_check_table(res: Results) -> pd.DataFrame:
    """The lab check as metrics x languages, each cell 'value (numerator/denominator)'."""
    c = res.get("lab_check")
    if c is None or c.empty:
        return pd.DataFrame()
    cell = [("–" if d == 0 else f"{100 * v:.1f}% ({n}/{d})")
            for v, n, d in zip(c["value"], c["numerator"], c["denominator"])]
    wide = c.assign(cell=cell).pivot(index="metric", columns="lang", values="cell")
    order = list(dict.fromkeys(c["metric"]))
    return wide.reindex(order).reset_index().rename_axis(None, axis=1).fillna("")
