"""Builds the entity names that the tracer looks for, and per-fact name flags, from ``facts``.

Names are one row per (lang, uri, role, norm): each fact's subject label (role ``subject``) and
object label (role ``object``) in that language, plus an optional alias file (lang, uri, alias)
whose aliases serve both roles of that uri. Every name is normalised with the one versioned
normaliser; names shorter than ``trace.min_name_len`` characters (``trace.min_substring_len``
in substring languages such as zh/ja/th), and names that normalise to nothing, are skipped and
counted. Runs on the driver with pyarrow: ~10^4-10^5 names per language.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from factroots.errors import ConfigError
from factroots.text.match import mode_for
from factroots.text.normalize import normalize_many

NAMES_SCHEMA = pa.schema([("lang", pa.string()), ("uri", pa.string()), ("role", pa.string()),
                          ("name", pa.string()), ("norm", pa.string()), ("source", pa.string())])
ROLES = ("subject", "object")


def read_aliases(path: str | Path) -> pa.Table:
    """An alias file (Parquet, CSV or TSV) with columns lang, uri, alias."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"trace.aliases: {p} not found", "point trace.aliases at an existing file")
    if p.suffix == ".parquet" or p.is_dir():
        import pyarrow.parquet as pq
        t = pq.read_table(p)
    else:
        from pyarrow import csv
        delim = "\t" if p.suffix in (".tsv", ".tab") else ","
        t = csv.read_csv(p, parse_options=csv.ParseOptions(delimiter=delim),
                         convert_options=csv.ConvertOptions(column_types={
                             "lang": pa.string(), "uri": pa.string(), "alias": pa.string()}))
    missing = {"lang", "uri", "alias"} - set(t.column_names)
    if missing:
        raise ConfigError(f"trace.aliases: {p} lacks columns {sorted(missing)}",
                          "give the alias file the columns lang, uri, alias")
    return t.select(["lang", "uri", "alias"])


def _raw_names(facts: pa.Table, aliases: pa.Table | None) -> pa.Table:
    parts = []
    for role, uri, label in (("subject", "sub_uri", "sub_label"), ("object", "obj_uri", "obj_label")):
        parts.append(pa.table({"lang": facts["lang"], "uri": facts[uri], "role": [role] * len(facts),
                               "name": facts[label], "source": ["label"] * len(facts)}))
    if aliases is not None and aliases.num_rows:
        langs = pc.unique(facts["lang"])
        a = aliases.filter(pc.is_in(aliases["lang"], langs))
        for role, col in (("subject", "sub_uri"), ("object", "obj_uri")):
            a_role = a.filter(pc.is_in(a["uri"], pc.unique(facts[col])))
            parts.append(pa.table({"lang": a_role["lang"], "uri": a_role["uri"],
                                   "role": [role] * len(a_role), "name": a_role["alias"],
                                   "source": ["alias"] * len(a_role)}))
    t = pa.concat_tables([p.cast(pa.schema([(f, pa.string()) for f in p.column_names]))
                          for p in parts])
    return t.filter(pc.is_valid(t["name"]))


def build_names(facts: pa.Table, aliases: pa.Table | None, trace: Any) -> tuple[pa.Table, dict]:
    """Names per (lang, uri, role, norm) and per-language stats (``in``/``out``/``rejected_*``)."""
    raw = _raw_names(facts, aliases)
    rows, stats = [], {}
    for lang in sorted(pc.unique(raw["lang"]).to_pylist()):
        sub = raw.filter(pc.equal(raw["lang"], lang))
        mode = mode_for(lang, trace.substring_langs, trace.left_boundary_langs)
        min_len = max(trace.min_name_len, getattr(trace, "min_substring_len", 1)) \
            if mode == "substring" else trace.min_name_len
        # distinct (uri, role, name) first: a label repeats once per fact
        sub = sub.group_by(["lang", "uri", "role", "name"]).aggregate([("source", "min")]) \
            .rename_columns(["lang", "uri", "role", "name", "source"])
        norms = pa.array(normalize_many(sub["name"], lang), pa.string())
        sub = sub.append_column("norm", norms)
        length = pc.utf8_length(norms)
        empty, short = pc.equal(length, 0), pc.less(length, min_len)
        kept = sub.filter(pc.invert(short))
        kept = kept.group_by(["lang", "uri", "role", "norm"]).aggregate(
            [("name", "min"), ("source", "min")]).rename_columns(
            ["lang", "uri", "role", "norm", "name", "source"])
        st = {"in": sub.num_rows, "rejected_empty": int(pc.sum(empty).as_py() or 0),
              "rejected_short": int(pc.sum(pc.and_(short, pc.invert(empty))).as_py() or 0)}
        st["rejected_duplicate"] = sub.num_rows - st["rejected_empty"] - st["rejected_short"] \
            - kept.num_rows
        st["out"] = kept.num_rows
        st["min_name_len"] = min_len
        stats[lang] = st
        rows.append(kept.select(NAMES_SCHEMA.names).cast(NAMES_SCHEMA))
    names = pa.concat_tables(rows) if rows else NAMES_SCHEMA.empty_table()
    return names.sort_by([("lang", "ascending"), ("norm", "ascending"), ("uri", "ascending"),
                          ("role", "ascending")]), stats


def _contains(outer: str, inner: str, mode: str) -> bool:
    if mode == "substring":
        return inner in outer
    return f" {inner} " in f" {outer} " if mode == "word" else f" {inner}" in f" {outer}"


def fact_flags(facts: pa.Table, names: pa.Table, trace: Any) -> pa.Table:
    """Per (lang, uuid): ``ambiguous_name`` (a subject or object name also names another uri)
    and ``sub_contains_obj`` (a subject name contains an object name, as the matcher sees it)."""
    by_key: dict[tuple[str, str, str], list[str]] = {}
    uris_of: dict[tuple[str, str], set[str]] = {}
    for lang, uri, role, norm in zip(*(names[c].to_pylist() for c in ("lang", "uri", "role", "norm"))):
        by_key.setdefault((lang, uri, role), []).append(norm)
        uris_of.setdefault((lang, norm), set()).add(uri)
    amb, cont = [], []
    modes: dict[str, str] = {}
    cols = [facts[c].to_pylist() for c in ("lang", "sub_uri", "obj_uri")]
    for lang, s, o in zip(*cols):
        mode = modes.setdefault(lang, mode_for(lang, trace.substring_langs, trace.left_boundary_langs))
        sn, on = by_key.get((lang, s, "subject"), []), by_key.get((lang, o, "object"), [])
        amb.append(any(len(uris_of[(lang, n)]) > 1 for n in sn + on))
        cont.append(any(_contains(a, b, mode) for a in sn for b in on))
    return pa.table({"lang": facts["lang"], "uuid": facts["uuid"],
                     "ambiguous_name": pa.array(amb, pa.bool_()),
                     "sub_contains_obj": pa.array(cont, pa.bool_())})
