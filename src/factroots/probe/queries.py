"""Build the `queries` table (the prompts) from `facts` and `candidates`, for one model.

Each fact of a language gives the paper's prompts (``paper.md`` §1.4): the template with the
subject filled in, and k = 1..maxlen masks joined by single spaces in the object slot, where
maxlen is the relation's longest candidate object in the model's tokens. ``prepare`` also
tokenizes each gold object on its own; facts that cannot be probed are counted rejects:
``empty_object`` (the object tokenizes to nothing), ``no_object_slot`` (no "[Y]" in the
template), ``no_candidates`` (the relation has no candidate objects, so no maxlen) and
``too_long`` (the longest prompt exceeds the model's positions).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from factroots import tables
from factroots.probe import protocol

REJECTS = ("empty_object", "no_object_slot", "no_candidates", "too_long")


@dataclass(frozen=True)
class Item:
    """One probeable fact: its sentence with "[Y]" left, gold ids and maxlen."""

    uuid: str
    relation: str
    sentence: str
    obj_label: str
    gold: tuple[int, ...]
    maxlen: int


def relation_maxlens(tokenizer: Any, candidates: pa.Table) -> dict[str, int]:
    """maxlen per relation: its longest candidate in the model's tokens."""
    by_rel: dict[str, list[str]] = {}
    for rel, cand in zip(candidates.column("relation").to_pylist(),
                         candidates.column("candidate").to_pylist()):
        by_rel.setdefault(rel, []).append(cand)
    return {rel: protocol.candidate_maxlen(tokenizer, c) for rel, c in by_rel.items()}


def prepare(facts: pa.Table, maxlens: dict[str, int], tokenizer: Any, mask_token: str,
            fits: Callable[[Sequence[int]], bool] | None = None) -> tuple[list[Item], dict]:
    """The probeable facts of one language, in table order, and the reject counts."""
    rejected: Counter = Counter()
    items: list[Item] = []
    cols = facts.select(["uuid", "relation", "template", "sub_label", "obj_label"]).to_pylist()
    for row in cols:
        gold = protocol.gold_ids(tokenizer, row["obj_label"] or "")
        maxlen = maxlens.get(row["relation"], 0)
        reason = ("no_object_slot" if "[Y]" not in row["template"] else
                  "empty_object" if not gold else
                  "no_candidates" if maxlen < 1 else None)
        if reason:
            rejected[reason] += 1
            continue
        sentence = protocol.fill_subject(row["template"], row["sub_label"])
        items.append(Item(row["uuid"], row["relation"], sentence, row["obj_label"], tuple(gold),
                          maxlen))
    if fits is not None and items:
        longest = [protocol.prompt(it.sentence, mask_token, max(it.maxlen, len(it.gold)))
                   for it in items]
        ok = [fits(ids) for ids in tokenizer(longest)["input_ids"]]
        rejected["too_long"] += ok.count(False)
        items = [it for it, good in zip(items, ok) if good]
    stats = {"in": facts.num_rows, "out": len(items)}
    stats.update({f"rejected_{r}": rejected.get(r, 0) for r in REJECTS})
    return items, stats


def build_queries(lang: str, items: Sequence[Item], mask_token: str) -> pa.Table:
    """Return the `queries` table: one row per (lang, uuid, k) with k = 1..maxlen."""
    uuids, rels, ks, prompts = [], [], [], []
    for it in items:
        for k in range(1, it.maxlen + 1):
            uuids.append(it.uuid)
            rels.append(it.relation)
            ks.append(k)
            prompts.append(protocol.prompt(it.sentence, mask_token, k))
    t = pa.table({"lang": pa.array([lang] * len(uuids), pa.string()), "uuid": uuids,
                  "relation": rels, "k": pa.array(ks, pa.int32()), "prompt": prompts})
    return tables.conform("queries", t)
