"""Build the lab's plan, the `planted_facts` table, from the fictional world and the background.

One row per (lab language, fact) of the lab's facts: every fact of the fictional world
(``lab.world``: the test groups ``transfer``, ``control``, ``shared``, ``independent_same_obj``,
``independent_diff_obj`` and the ``bridge`` and ``anchor`` facts) and the seeded sample of real
``background`` facts. A row records how the fact was built (group, name form, source language,
how often planted, whether in parallel pairs), what the corpus holds (``in_real_text`` /
``in_real_sentence`` before planting, ``in_lab_text`` after, at page level, with the trace's own
matcher), the easy-fact category by the paper's rules under the lab tokenizer, and the lab's own
evaluation of its models: correct under the full model (seed 0, and in every seed of the
replicate), correct under the counterfactual model, and the counterfactual truth of transfer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import pandas as pd
import pyarrow as pa

from factroots import tables
from factroots.lab.world import BACKGROUND, TRANSFER, World

SHARED, NAMING, OTHERS = "shared_entity_tokens", "naming_cues", "others"
REAL = "real"  # name form of the background facts

Presence = Mapping[tuple[str, str], tuple[bool, bool]]  # (lang, uuid) -> (document, sentence)
Verdicts = Mapping[tuple[str, str], bool]  # (lang, uuid) -> correct


def easy_category(sub: str, obj: str, relation: str, naming: Iterable[str],
                  token_sets: Callable[[str], frozenset[int]] | None = None) -> str:
    """The easy-fact category that the paper's rules give (the label stage's order)."""
    s, o = (sub or "").lower(), (obj or "").lower()
    if o and o in s:
        return SHARED
    if token_sets is not None and sub and obj and token_sets(sub) & token_sets(obj):
        return SHARED
    return NAMING if relation in set(naming) else OTHERS


def _alike(names: dict[str, str], langs: list[str], key: Callable[[str], object]) -> bool:
    """Some two languages' names agree under ``key`` (equality, or a shared piece)."""
    for i, a in enumerate(langs):
        for b in langs[i + 1:]:
            ka, kb = key(names[a]), key(names[b])
            if (ka & kb) if isinstance(ka, frozenset) else ka == kb:
                return True
    return False


def fact_rows(world: World, background: pd.DataFrame, repeats: int) -> pd.DataFrame:
    """One row per (lang, uuid) with the names and how each fact was built (no evaluation yet)."""
    rows = []
    for f in world.facts:
        for lg in world.langs:
            rows.append({"lang": lg, "uuid": f.uuid, "relation": f.relation, "group": f.group,
                         "name_form": f.name_form, "source_lang": f.source_lang,
                         "n_planted": repeats if lg in f.planted_in else 0,
                         "parallel": f.parallel, "sub_label": f.sub[lg], "obj_label": f.obj[lg],
                         "subs": f.sub, "objs": f.obj})
    bg = background.assign(group=BACKGROUND, name_form=REAL, source_lang="", n_planted=0,
                           parallel=False)
    wide = {u: (dict(zip(g["lang"], g["sub_label"])), dict(zip(g["lang"], g["obj_label"])))
            for u, g in bg.groupby("uuid")}
    for r in bg.itertuples():
        rows.append({"lang": r.lang, "uuid": r.uuid, "relation": r.relation,
                     "group": BACKGROUND, "name_form": REAL, "source_lang": "", "n_planted": 0,
                     "parallel": False, "sub_label": r.sub_label, "obj_label": r.obj_label,
                     "subs": wide[r.uuid][0], "objs": wide[r.uuid][1]})
    return pd.DataFrame(rows)


def build_planted_facts(rows: pd.DataFrame, langs: list[str], *, real: Presence,
                        in_lab: Iterable[tuple[str, str]], naming: Iterable[str],
                        token_sets: Callable[[str], frozenset[int]],
                        full: list[Verdicts], counterfactual: Verdicts,
                        detector: Mapping[tuple[str, str], list[int]] | None = None) -> pa.Table:
    """Return the `planted_facts` table from ``fact_rows`` and what the corpus and models hold.

    ``full``: the full model's verdicts, one mapping per seed (the first is the probed model);
    ``counterfactual``: the verdicts of the model trained without the `transfer` facts;
    ``detector``: (lang, uuid) -> the neuron ids a detector fact was written into.
    """
    d = rows.copy()
    key = list(zip(d["lang"], d["uuid"]))
    lab = set(in_lab)
    pres = [real.get(k, (False, False)) for k in key]
    d["in_real_text"] = [p[0] for p in pres]
    d["in_real_sentence"] = [p[1] for p in pres]
    d["in_lab_text"] = [(n > 0) or p[0] or k in lab for n, p, k in zip(d["n_planted"], pres, key)]
    d["easy_category"] = [easy_category(s, o, r, naming, token_sets)
                          for s, o, r in zip(d["sub_label"], d["obj_label"], d["relation"])]
    d["shared_names"] = [_alike(s, langs, str) and _alike(o, langs, str)
                         for s, o in zip(d["subs"], d["objs"])]
    d["shared_pieces"] = [_alike(s, langs, token_sets) or _alike(o, langs, token_sets)
                          for s, o in zip(d["subs"], d["objs"])]
    d["lab_correct"] = [bool(full[0].get(k, False)) for k in key] if full else False
    d["lab_correct_all_seeds"] = [all(v.get(k, False) for v in full) for k in key]
    d["lab_correct_counterfactual"] = [bool(counterfactual.get(k, False)) for k in key]
    d["detector_neurons"] = [list((detector or {}).get(k, [])) for k in key]
    d["truth_transferred"] = ((d["group"] == TRANSFER) & (d["lang"] != d["source_lang"])
                              & d["lab_correct_all_seeds"] & ~d["lab_correct_counterfactual"])
    d = d.sort_values(["lang", "uuid"], kind="stable")
    return tables.conform("planted_facts", pa.Table.from_pandas(d, preserve_index=False))
