"""Builds ``mentions`` (one row per name found in a sentence) from ``sentences`` and the names
of ``factroots.trace.names``, by ``mapInArrow`` over the pure matcher ``factroots.text.match``.

The driver collects each language's distinct normalised names (10^4-10^5 strings) and
broadcasts them with the (uri, role) pairs each one names; every Python worker builds that
language's Aho–Corasick automaton once, on first use, and caches it by the name list's hash
(``cached_matcher``). The automaton itself is never pickled.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame

from factroots import tables
from factroots.text.match import best_mentions, cached_matcher, mode_for, names_key
from factroots.trace import pyworker

_TARGETS: dict[str, list[list[tuple[str, str]]]] = {}  # names_key -> (uri, role) per name


def name_lists(names: pa.Table, trace: Any) -> dict[str, dict]:
    """Per language: the matcher's key, mode, sorted distinct norms and their (uri, role)s."""
    out = {}
    for lang in sorted(pc.unique(names["lang"]).to_pylist()):
        t = names.filter(pc.equal(names["lang"], lang))
        targets: dict[str, list[tuple[str, str]]] = {}
        for norm, uri, role in zip(t["norm"].to_pylist(), t["uri"].to_pylist(), t["role"].to_pylist()):
            targets.setdefault(norm, []).append((uri, role))
        norms = sorted(targets)
        mode = mode_for(lang, trace.substring_langs, trace.left_boundary_langs)
        out[lang] = {"key": names_key(lang, mode, norms), "mode": mode, "norms": norms,
                     "targets": [sorted(set(targets[n])) for n in norms]}
    return out


def _matcher(lang: str, info: dict, lists: Any):  # type: ignore[no-untyped-def]
    key = info["key"]

    def load() -> list[str]:
        full = lists.value[lang]
        _TARGETS[key] = full["targets"]
        return full["norms"]

    m = cached_matcher(key, lang, info["mode"], load)
    if key not in _TARGETS:
        _TARGETS[key] = lists.value[lang]["targets"]
    return m, _TARGETS[key]


def _mentions_of(batch: pa.RecordBatch, lang: str, info: dict, lists: Any) -> pa.Table:
    matcher, targets = _matcher(lang, info, lists)
    best = best_mentions(matcher.find(batch.column("text")), targets)
    keys = sorted(best)
    idx = pa.array([k[0] for k in keys], pa.int64())
    return pa.table({
        "lang": pa.array([lang] * len(keys), pa.string()),
        "sentence_id": pc.take(batch.column("sentence_id"), idx),
        "page_id": pc.take(batch.column("page_id"), idx),
        "uri": pa.array([k[1] for k in keys], pa.string()),
        "role": pa.array([k[2] for k in keys], pa.string()),
        "start": pa.array([k[3] for k in keys], pa.int32()),
        "end": pa.array([best[k][0] for k in keys], pa.int32()),
        "strictness": pa.array([best[k][1] for k in keys], pa.string()),
    })


def mention_batches(batches: Iterator[pa.RecordBatch], infos: dict, lists: Any
                    ) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: sentences (lang, sentence_id, page_id, text) -> mention rows."""
    for batch in batches:
        langs = batch.column("lang")
        present = pc.unique(langs).to_pylist()
        for lang in present:
            if lang not in infos:  # a language without names: nothing to find
                continue
            sub = batch.filter(pc.equal(langs, lang)) if len(present) > 1 else batch
            yield from tables.conform("mentions", _mentions_of(sub, lang, infos[lang], lists)).to_batches()


def build_mentions(sentences_df: DataFrame, names_df: DataFrame, cfg: Any) -> DataFrame:
    """Return the ``mentions`` table: one row per (lang, sentence_id, uri, role, start)."""
    trace = getattr(cfg, "trace", cfg)
    names = names_df.select("lang", "uri", "role", "norm").toArrow()
    lists = name_lists(names, trace)
    spark = sentences_df.sparkSession
    bc = spark.sparkContext.broadcast(lists)
    infos = {lang: {"key": v["key"], "mode": v["mode"]} for lang, v in lists.items()}
    fn = functools.partial(mention_batches, infos=infos, lists=bc)
    spec = tables.spec("mentions")
    ddl = ", ".join(f"`{f.name}` {_ddl(f.type)}" for f in spec.schema)
    return (sentences_df.select("lang", "sentence_id", "page_id", "text")
            .mapInArrow(pyworker.frozen(fn), ddl).select(*spec.names))


def _ddl(t: pa.DataType) -> str:
    return {"string": "string", "int64": "bigint", "int32": "int", "bool": "boolean"}[str(t)]
