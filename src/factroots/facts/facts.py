"""Build the `facts` table from the raw triples and templates of one language.

A triple is kept when its relation has a usable template (``templates.check_templates``), its
fields are not empty, and its uuid has not been seen before in this language (the uuid is the
fact's identity across languages; the first triple by (relation, lineid) wins). Every other
triple is counted under ``rejected_<reason>``, so ``in = out + Σ rejected_*``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from factroots import tables
from factroots.facts.sources import RawLang
from factroots.facts.templates import TemplateCheck, check_templates

log = logging.getLogger(__name__)

TEXT_FIELDS = ("uuid", "sub_uri", "sub_label", "obj_uri", "obj_label")


def _drop(t: pa.Table, mask: pa.Array, reason: str, stats: dict, lang: str) -> pa.Table:
    """Count the rows where ``mask`` holds under ``rejected_<reason>`` and remove them."""
    mask = pc.fill_null(mask, True)
    n = pc.sum(mask).as_py() or 0
    if n:
        stats[f"rejected_{reason}"] = stats.get(f"rejected_{reason}", 0) + n
        rels = sorted(set(t.filter(mask)["relation"].to_pylist()))
        log.warning("%s: %d triples rejected (%s) in %s", lang, n, reason, ", ".join(rels[:10]))
    return t.filter(pc.invert(mask))


def _first_of_each_uuid(t: pa.Table) -> pa.Array:
    """True for the rows whose uuid occurred in an earlier row."""
    idx = pa.array(range(t.num_rows), pa.int64())
    firsts = (t.select(["uuid"]).append_column("_i", idx)
              .group_by("uuid", use_threads=False).aggregate([("_i", "min")])["_i_min"])
    return pc.invert(pc.is_in(idx, firsts))


def build_facts(raw: RawLang, relations: Iterable[str] | None = None,
                exclude: Iterable[str] = ("date_of_birth",),
                check: TemplateCheck | None = None) -> tuple[pa.Table, dict]:
    """Return the `facts` table: one row per (lang, uuid); and its stats."""
    rels = None if relations is None else list(relations)
    check = check or check_templates(raw, rels, exclude)
    t = raw.triples
    if rels is not None:
        t = t.filter(pc.is_in(t["relation"], pa.array(rels, pa.string())))
    stats = {"in": t.num_rows + sum(raw.triple_rejects.values()), "out": 0}
    stats.update({f"rejected_{k}": v for k, v in raw.triple_rejects.items()})
    t = t.sort_by([("relation", "ascending"), ("lineid", "ascending")])
    rel = t["relation"]
    t = _drop(t, pc.is_in(rel, pa.array(sorted(exclude), pa.string())), "excluded_relation",
              stats, raw.lang)
    t = _drop(t, pc.is_in(t["relation"], pa.array(sorted(check.rejected), pa.string())),
              "bad_template", stats, raw.lang)
    t = _drop(t, pc.invert(pc.is_in(t["relation"], pa.array(sorted(check.usable), pa.string()))),
              "no_template", stats, raw.lang)
    empty = pc.or_(pc.is_null(t["lineid"]), pc.less(t["lineid"], 0))
    for name in TEXT_FIELDS:
        empty = pc.or_(empty, pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(t[name])), 0))
    t = _drop(t, empty, "empty_field", stats, raw.lang)
    t = _drop(t, _first_of_each_uuid(t), "duplicate_uuid", stats, raw.lang)
    rels_known = sorted(check.usable)
    at = pc.index_in(t["relation"], pa.array(rels_known, pa.string()))
    t = t.append_column("template", pc.take(pa.array([check.usable[r] for r in rels_known],
                                                     pa.string()), at))
    stats["out"] = t.num_rows
    return tables.conform("facts", t), stats
