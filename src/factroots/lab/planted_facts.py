"""Build the lab's plan, the `planted_facts` table, from `facts` and the real text's co-occurrences.

Every mLAMA fact of the lab languages gets one row per language. A seeded draw assigns facts
that the real sample text does not already contain (in no lab language) to groups:

- ``all``: planted in every lab language;
- ``only_<A>``: planted only in language A, so in any other language B a correct answer can only
  come from transfer (or a cue);
- ``none``: planted nowhere (a control: a correct answer is a guess or a cue);
- ``background``: every other fact, left as the real text has it.

Each group gets naming-cue facts (the naming relations) and shared-token facts (the object
inside the subject) on purpose, and, where the languages allow it, half of its other facts have
names written identically in two lab languages (``shared_names``), the case where transfer is
most plausible for a small model. The row also records what the corpus holds before and after
planting, so the trace can be checked exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa

from factroots import tables

ALL, NONE, BACKGROUND = "all", "none", "background"
SHARED, NAMING, OTHERS = "shared_entity_tokens", "naming_cues", "others"
NAMING_SHARE, SHARED_SHARE = 0.2, 0.15  # of each group: naming-cue and shared-token facts
ALL_SHARED_NAMES = True  # fill the `all` group's other facts with shared-name facts first

Presence = Mapping[tuple[str, str], tuple[bool, bool]]  # (lang, uuid) -> (document, sentence)


def only(lang: str) -> str:
    """The group of facts planted only in ``lang``."""
    return f"only_{lang}"


def groups_of(langs: Iterable[str]) -> list[str]:
    """The plan's groups, in dealing order."""
    return [ALL, *(only(lg) for lg in langs), NONE]


def planted_langs(group: str, langs: Iterable[str]) -> list[str]:
    """The languages a group is planted in."""
    langs = list(langs)
    if group == ALL:
        return langs
    if group.startswith("only_"):
        return [group[5:]] if group[5:] in langs else []
    return []


def easy_category(sub: str, obj: str, relation: str, naming: Iterable[str],
                  token_sets: Callable[[str], frozenset[int]] | None = None) -> str:
    """The easy-fact category that the paper's rules give (the label stage's order)."""
    s, o = (sub or "").lower(), (obj or "").lower()
    if o and o in s:
        return SHARED
    if token_sets is not None and sub and obj and token_sets(sub) & token_sets(obj):
        return SHARED
    return NAMING if relation in set(naming) else OTHERS


def _wide(facts: pd.DataFrame, langs: list[str]) -> pd.DataFrame:
    """One row per uuid present in every lab language, with its labels per language."""
    f = facts[facts["lang"].isin(langs)]
    counts = f.groupby("uuid")["lang"].nunique()
    keep = f[f["uuid"].isin(counts[counts == len(langs)].index)]
    sub = keep.pivot_table(index="uuid", columns="lang", values="sub_label", aggfunc="first")
    obj = keep.pivot_table(index="uuid", columns="lang", values="obj_label", aggfunc="first")
    rel = keep.groupby("uuid")["relation"].first()
    ok = keep.assign(ok=keep["template"].str.contains(r"\[X\]", regex=True)
                     & keep["template"].str.contains(r"\[Y\]", regex=True)
                     & (keep["sub_label"].str.strip().str.len() >= 2)
                     & (keep["obj_label"].str.strip().str.len() >= 2)).groupby("uuid")["ok"].all()
    w = pd.DataFrame({"relation": rel, "ok": ok})
    w["sub"] = [dict(r) for r in sub[langs].to_dict("records")]
    w["obj"] = [dict(r) for r in obj[langs].to_dict("records")]
    return w


def _names_shared(sub: dict, obj: dict, langs: list[str]) -> bool:
    return any(sub[a] == sub[b] and obj[a] == obj[b]
               for i, a in enumerate(langs) for b in langs[i + 1:])


def _kind(row: pd.Series, langs: list[str], naming: frozenset) -> str:
    if any(row["obj"][lg].lower() in row["sub"][lg].lower() for lg in langs):
        return SHARED
    if row["relation"] in naming:
        return NAMING
    return "shared_names" if row["shared_names"] else OTHERS


def assign_groups(facts: pd.DataFrame, real: Presence, langs: list[str], per_group: int,
                  seed: int, naming: Iterable[str]) -> dict[str, str]:
    """uuid -> group for the planted, only-in-one and control groups (seeded, deterministic)."""
    w = _wide(facts, langs)
    in_real = {u for (lg, u), (doc, _) in real.items() if doc and lg in langs}
    w = w[w["ok"] & ~w.index.isin(sorted(in_real))].sort_index()
    if w.empty:
        return {}
    w["shared_names"] = [_names_shared(s, o, langs) for s, o in zip(w["sub"], w["obj"])]
    nm = frozenset(naming)
    w["kind"] = [_kind(r, langs, nm) for _, r in w.iterrows()]
    rng = np.random.default_rng(seed)
    pools = {k: list(rng.permutation(w.index[w["kind"] == k].to_numpy()))
             for k in (SHARED, NAMING, "shared_names", OTHERS)}
    n_naming, n_shared = round(per_group * NAMING_SHARE), round(per_group * SHARED_SHARE)
    n_names = (per_group - n_naming - n_shared) // 2
    quota = {SHARED: n_shared, NAMING: n_naming, "shared_names": n_names}
    groups = groups_of(langs)
    out: dict[str, str] = {}
    filled = {g: 0 for g in groups}
    for kind in (SHARED, NAMING, "shared_names"):
        for _ in range(quota[kind]):
            for g in groups:
                if pools[kind]:
                    out[pools[kind].pop()] = g
                    filled[g] += 1
    if ALL_SHARED_NAMES:  # the `all` group teaches that a name means one thing in every language
        while filled[ALL] < per_group and pools["shared_names"]:
            out[pools["shared_names"].pop()] = ALL
            filled[ALL] += 1
    rest = pools[OTHERS] + pools["shared_names"] + pools[NAMING] + pools[SHARED]
    for g in groups:  # fill up with other facts, then whatever is left
        while filled[g] < per_group and rest:
            out[rest.pop(0)] = g
            filled[g] += 1
    return out


def build_planted_facts(facts: pa.Table, real: Presence, *, langs: list[str],
                        per_group: int, repeats: int, seed: int, naming: Iterable[str],
                        token_sets: Callable[[str], frozenset[int]] | None = None,
                        planted_text: Iterable[tuple[str, str]] = ()) -> pa.Table:
    """Return the `planted_facts` table: one row per (lang, uuid) of the lab languages' facts."""
    f = facts.select(["lang", "uuid", "relation", "sub_label", "obj_label", "template"]
                     ).to_pandas()
    f = f[f["lang"].isin(langs)].sort_values(["lang", "uuid"], kind="stable")
    group = assign_groups(f, real, langs, per_group, seed, naming)
    wide = _wide(f, langs)
    shared = {u: _names_shared(s, o, langs) for u, s, o in zip(wide.index, wide["sub"], wide["obj"])}
    in_planted = set(planted_text)
    rows = []
    for lg, u, rel, sub, obj in zip(f["lang"], f["uuid"], f["relation"], f["sub_label"],
                                    f["obj_label"]):
        g = group.get(u, BACKGROUND)
        doc, sent = real.get((lg, u), (False, False))
        n = repeats if lg in planted_langs(g, langs) else 0
        rows.append((lg, u, rel, g, n, doc, sent, n > 0 or doc or (lg, u) in in_planted,
                     easy_category(sub, obj, rel, naming, token_sets), shared.get(u, False)))
    cols = ["lang", "uuid", "relation", "group", "n_planted", "in_real_text", "in_real_sentence",
            "in_lab_text", "easy_category", "shared_names"]
    df = pd.DataFrame(rows, columns=cols)
    return tables.conform("planted_facts", pa.Table.from_pandas(df, preserve_index=False))
