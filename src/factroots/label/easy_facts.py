"""Build the `easy_facts` table from `status` and `facts`: why an absent fact may be guessable.

For every (lang, uuid) with status 2 (absent from L's Wikipedia, predicted correctly) the first
rule that fires gives the category, as in the paper's §1.7:
1. ``substring``: the object label, lower-cased, is a substring of the subject label (Chinese
   compared in Simplified script) -> ``shared_entity_tokens``;
2. ``token_overlap``: the subject's and object's token-id sets under the probed model's
   tokenizer intersect (boundary-only tokens such as a lone "▁" excluded) -> also
   ``shared_entity_tokens`` (skipped, with a recorded note, when no tokenizer is available);
3. ``naming_relation``: the relation is a naming relation (country, citizenship, language,
   religion, native language by default) -> ``naming_cues``;
4. ``none`` -> ``others``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from factroots import tables

SHARED, NAMING, OTHERS = "shared_entity_tokens", "naming_cues", "others"
CATEGORIES = (SHARED, NAMING, OTHERS)


def _simplified(text: str, lang: str) -> str:
    if lang == "zh" or lang.startswith(("zh-", "zh_")):
        import zhconv

        return zhconv.convert(text, "zh-cn")
    return text


def classify(sub: str, obj: str, relation: str, lang: str, naming: Iterable[str],
             token_sets: Callable[[str], frozenset[int]] | None) -> tuple[str, str]:
    """(category, rule) of one absent-and-correct fact: the first rule that fires."""
    s, o = _simplified(sub or "", lang), _simplified(obj or "", lang)
    if o and o.lower() in s.lower():
        return SHARED, "substring"
    if token_sets is not None and s and o and token_sets(s) & token_sets(o):
        return SHARED, "token_overlap"
    if relation in set(naming):
        return NAMING, "naming_relation"
    return OTHERS, "none"


def build_easy_facts(status: pa.Table, facts: pa.Table, *, naming_relations: Iterable[str],
                     token_sets: Callable[[str], frozenset[int]] | None = None) -> pa.Table:
    """Return the `easy_facts` table: one row per (lang, uuid) with status 2."""
    absent = status.filter(pc.equal(status.column("status"), 2))
    a = absent.select(["lang", "uuid", "relation"]).to_pandas()
    labels = facts.select(["lang", "uuid", "sub_label", "obj_label"]).to_pandas()
    a = a.merge(labels.drop_duplicates(["lang", "uuid"]), on=["lang", "uuid"], how="left")
    naming = frozenset(naming_relations)
    cache: dict[str, frozenset[int]] = {}

    def cached(text: str) -> frozenset[int]:
        if text not in cache:
            cache[text] = token_sets(text)  # type: ignore[misc]
        return cache[text]

    rows = [classify(s, o, r, lg, naming, cached if token_sets else None)
            for s, o, r, lg in zip(a["sub_label"], a["obj_label"], a["relation"], a["lang"])]
    a["category"] = pd.Series([c for c, _ in rows], index=a.index, dtype=object)
    a["rule"] = pd.Series([r for _, r in rows], index=a.index, dtype=object)
    a = a.sort_values(["lang", "uuid"], kind="stable")
    return tables.conform("easy_facts", pa.Table.from_pandas(a, preserve_index=False))
