"""Builds ``cooccurrence`` (one row per (lang, uuid) of ``facts``) from ``mentions``, the chunk
positions of the sentences (``factroots.trace.chunks``) and the facts with their name flags.

Windows: a sentence, a chunk of ``trace.chunk_size`` subwords (the paper's unit) and a document
(page). A subject and an object co-occur in a window when a mention of each lies in it and the
two spans are disjoint ("Paris Saint-Germain" does not hold "Paris" for the fact PSG -> Paris).
No join keys on an entity: the mentions are grouped by page (a page-uniform key), and each
page's subject mentions meet the broadcast facts (subject uri -> (uuid, object uri)) in
Python (``factroots.text.cooccur``), so a popular object (a country, a language) never becomes
one hot key. Only the per-fact counts are shuffled, by (lang, uuid).
``evidence`` holds the first ``trace.evidence_k`` sentence ids of co-occurrence windows (of
``trace.window``): the sentence itself, or the first sentence of the chunk or page that
mentions the subject or the object. ``present`` is ``cooc_<window> >= trace.min_count``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from factroots import tables
from factroots.text.cooccur import page_hits
from factroots.trace import pyworker

FACT_COLS = ("lang", "uuid", "relation", "sub_uri", "obj_uri", "ambiguous_name", "sub_contains_obj")
HITS_DDL = "lang string, uuid string, window string, ev bigint"
_HITS = pa.schema([("lang", pa.string()), ("uuid", pa.string()), ("window", pa.string()),
                   ("ev", pa.int64())])
_MCOLS = ("sentence_id", "chunk", "uri", "role", "start", "end")


def place_mentions(mentions_df: DataFrame, chunks_df: DataFrame) -> DataFrame:
    """Mentions with the chunk they lie in (``chunk0 + #cuts <= start``)."""
    m = mentions_df.join(chunks_df.select("lang", "sentence_id", "chunk0", "cuts"),
                         ["lang", "sentence_id"], "left")
    cuts = F.coalesce(F.col("cuts"), F.array().cast("array<int>"))
    return (m.withColumn("chunk", F.coalesce(F.col("chunk0"), F.lit(0))
                         + F.size(F.filter(cuts, lambda c: c <= F.col("start"))))
            .select("lang", "page_id", *_MCOLS))


def hit_batches(batches: Iterator[pa.RecordBatch], facts: Any, cap: int) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: mentions grouped by page (pages whole and contiguous) -> window hits."""
    by_sub = facts.value
    page_key, page_rows = None, []

    def flush() -> Iterator[pa.RecordBatch]:
        lang = page_key[0]
        hits = page_hits(page_rows, by_sub.get(lang, {}), cap)
        if hits:
            cols = list(zip(*hits))
            yield pa.RecordBatch.from_arrays(
                [pa.array([lang] * len(hits), pa.string()), pa.array(cols[0], pa.string()),
                 pa.array(cols[1], pa.string()), pa.array(cols[2], pa.int64())], schema=_HITS)

    for b in batches:
        cols = [b.column(c).to_pylist() for c in ("lang", "page_id", *_MCOLS)]
        for row in zip(*cols):
            key = (row[0], row[1])
            if key != page_key:
                if page_rows:
                    yield from flush()
                page_key, page_rows = key, []
            page_rows.append(row[2:])
    if page_rows:
        yield from flush()


def _facts_by_sub(facts_df: DataFrame) -> dict:
    t = facts_df.select("lang", "uuid", "sub_uri", "obj_uri").toArrow()
    out: dict[str, dict[str, list]] = {}
    for lang, uuid, s, o in zip(*(t[c].to_pylist() for c in ("lang", "uuid", "sub_uri", "obj_uri"))):
        out.setdefault(lang, {}).setdefault(s, []).append((uuid, o))
    return out


def build_cooccurrence(mentions_df: DataFrame, facts_df: DataFrame, chunks_df: DataFrame,
                       cfg: Any) -> DataFrame:
    """Return the ``cooccurrence`` table: one row per (lang, uuid) of ``facts_df``.

    ``facts_df`` holds the facts with their name flags (``names.fact_flags``), columns
    ``FACT_COLS``; ``chunks_df`` comes from ``chunks.build_chunks``.
    """
    trace = getattr(cfg, "trace", cfg)
    facts = facts_df.select(*FACT_COLS)
    bc = mentions_df.sparkSession.sparkContext.broadcast(_facts_by_sub(facts))
    fn = functools.partial(hit_batches, facts=bc, cap=trace.max_mentions_per_sentence)
    hits = (place_mentions(mentions_df, chunks_df).repartition("lang", "page_id")
            .sortWithinPartitions("lang", "page_id", "sentence_id").mapInArrow(pyworker.frozen(fn), HITS_DDL))
    k = trace.evidence_k
    agg = hits.groupBy("lang", "uuid").agg(
        *[F.count_if(F.col("window") == w).alias(f"cooc_{w}") for w in ("sentence", "chunk", "document")],
        F.slice(F.array_sort(F.collect_list(F.when(F.col("window") == trace.window, F.col("ev")))),
                1, k).alias("evidence"))
    mc = mentions_df.groupBy("lang", "uri", "role").agg(F.count("*").alias("n"))
    sub_mc = mc.where(F.col("role") == "subject").select(
        "lang", F.col("uri").alias("sub_uri"), F.col("n").alias("sub_mentions"))
    obj_mc = mc.where(F.col("role") == "object").select(
        "lang", F.col("uri").alias("obj_uri"), F.col("n").alias("obj_mentions"))
    out = (facts.join(sub_mc, ["lang", "sub_uri"], "left").join(obj_mc, ["lang", "obj_uri"], "left")
           .join(agg, ["lang", "uuid"], "left"))
    zero = {c: 0 for c in ("sub_mentions", "obj_mentions", "cooc_sentence", "cooc_chunk",
                           "cooc_document")}
    out = (out.fillna(zero)
           .withColumn("evidence", F.coalesce("evidence", F.array().cast("array<bigint>")))
           .withColumn("present", F.col(f"cooc_{trace.window}") >= F.lit(trace.min_count)))
    spec = tables.spec("cooccurrence")
    types = {"int64": "bigint", "string": "string", "bool": "boolean",
             "list<item: int64>": "array<bigint>"}
    return out.select(*[F.col(f.name).cast(types[str(f.type)]).alias(f.name) for f in spec.schema])
