"""Build the `candidates` table: the candidate object labels per (lang, relation).

From mLAMA's lists (``TREx_multilingual_objects/<lang>.json``, ``GoogleRE_objects/<lang>.json``,
key ``[relation]["objects"]``), in list order, without duplicates. In mLAMA 1.1 these lists are
exactly the distinct object labels of the relation's triples in that language, so when a user's
own directory has no lists, they are derived from the `facts` table the same way (source
``facts``). The candidates fix the range of mask counts in probing and are typed querying's sets.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from factroots import tables
from factroots.facts.sources import RawLang


def _repeated(t: pa.Table) -> pa.Array:
    """True for rows whose (relation, candidate) occurred in an earlier row."""
    idx = pa.array(range(t.num_rows), pa.int64())
    firsts = (t.select(["relation", "candidate"]).append_column("_i", idx)
              .group_by(["relation", "candidate"], use_threads=False)
              .aggregate([("_i", "min")])["_i_min"])
    return pc.invert(pc.is_in(idx, firsts))


def _from_facts(facts: pa.Table) -> pa.Table:
    t = facts.select(["lang", "relation", "obj_label"]).rename_columns(
        ["lang", "relation", "candidate"])
    return t.append_column("source", pa.array(["facts"] * t.num_rows, pa.string()))


def build_candidates(raw: RawLang, facts: pa.Table, relations: Iterable[str] | None = None,
                     exclude: Iterable[str] = ("date_of_birth",)) -> tuple[pa.Table, dict]:
    """Return the `candidates` table: one row per (lang, relation, candidate); and its stats."""
    t = raw.candidates if raw.candidates is not None else _from_facts(facts)
    if relations is not None:
        t = t.filter(pc.is_in(t["relation"], pa.array(list(relations), pa.string())))
    stats = {"in": t.num_rows, "out": 0}
    for reason, mask in (
        ("excluded_relation", lambda x: pc.is_in(x["relation"], pa.array(sorted(exclude),
                                                                         pa.string()))),
        ("empty_candidate",
         lambda x: pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(x["candidate"])), 0)),
        ("duplicate_candidate", _repeated),
    ):
        m = pc.fill_null(mask(t), True)
        stats[f"rejected_{reason}"] = pc.sum(m).as_py() or 0
        t = t.filter(pc.invert(m))
    stats["out"] = t.num_rows
    if raw.candidates is None:
        stats["derived_from_facts"] = 1
    return tables.conform("candidates", t), stats
