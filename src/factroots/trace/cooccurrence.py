"""Builds ``cooccurrence`` (one row per (lang, uuid) of ``facts``) from ``mentions``, the chunk
positions of the sentences (``factroots.trace.chunks``) and the facts with their name flags.

Windows: a sentence, a chunk of ``trace.chunk_size`` subwords (the paper's unit) and a document
(page). A subject and an object co-occur in a window when a mention of each lies in it and the
two spans are disjoint ("Paris Saint-Germain" does not hold "Paris" for the fact PSG -> Paris).
Joins never key on the object alone: subject mentions meet the broadcast facts on
(lang, sub_uri), and the resulting pairs meet object mentions on (lang, window, obj_uri), so a
popular object (a country, a language) spreads over its windows instead of one hot key.
``evidence`` holds the first ``trace.evidence_k`` sentence ids of co-occurrence windows (of
``trace.window``): the sentence itself, or the first sentence of the chunk or page that
mentions the subject or the object. ``present`` is ``cooc_<window> >= trace.min_count``.
"""

from __future__ import annotations

from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from factroots import tables

FACT_COLS = ("lang", "uuid", "relation", "sub_uri", "obj_uri", "ambiguous_name", "sub_contains_obj")
UNITS = {"chunk": ("page_id", "chunk"), "document": ("page_id",)}


def place_mentions(mentions_df: DataFrame, chunks_df: DataFrame, cap: int) -> DataFrame:
    """Mentions with their chunk, at most ``cap`` per sentence (the first by position)."""
    m = mentions_df.join(chunks_df.select("lang", "sentence_id", "chunk0", "cuts"),
                         ["lang", "sentence_id"], "left")
    cuts = F.coalesce(F.col("cuts"), F.array().cast("array<int>"))
    m = m.withColumn("chunk", F.coalesce(F.col("chunk0"), F.lit(0))
                     + F.size(F.filter(cuts, lambda c: c <= F.col("start"))))
    w = Window.partitionBy("lang", "sentence_id").orderBy("start", F.desc("end"), "uri", "role")
    return (m.withColumn("_rank", F.row_number().over(w)).where(F.col("_rank") <= cap)
            .drop("_rank", "chunk0", "cuts"))


def _sides(placed: DataFrame) -> tuple[DataFrame, DataFrame]:
    cols = ["lang", "sentence_id", "page_id", "chunk"]
    s = placed.where(F.col("role") == "subject").select(
        *cols, F.col("uri").alias("sub_uri"), F.col("start").alias("s_start"),
        F.col("end").alias("s_end"))
    o = placed.where(F.col("role") == "object").select(
        *cols, F.col("uri").alias("obj_uri"), F.col("start").alias("o_start"),
        F.col("end").alias("o_end"))
    return s, o


def sentence_pairs(s: DataFrame, o: DataFrame, facts: DataFrame) -> DataFrame:
    """Distinct (lang, uuid, sentence_id) where the fact's names co-occur with disjoint spans."""
    sf = s.join(F.broadcast(facts), ["lang", "sub_uri"], "inner")
    p = sf.join(o.select("lang", "sentence_id", "obj_uri", "o_start", "o_end"),
                ["lang", "sentence_id", "obj_uri"], "inner")
    disjoint = (F.col("s_end") <= F.col("o_start")) | (F.col("o_end") <= F.col("s_start"))
    return p.where(disjoint).select("lang", "uuid", "sentence_id").distinct()


def window_hits(s: DataFrame, o: DataFrame, facts: DataFrame, pairs: DataFrame,
                unit: tuple[str, ...]) -> DataFrame:
    """(lang, uuid, unit..., ev) per window where the fact co-occurs; ev = its first sentence."""
    sw = s.groupBy("lang", *unit, "sub_uri").agg(F.countDistinct("sentence_id").alias("ns"),
                                                 F.min("sentence_id").alias("s1"))
    ow = o.groupBy("lang", *unit, "obj_uri").agg(F.countDistinct("sentence_id").alias("no"),
                                                 F.min("sentence_id").alias("o1"))
    j = (sw.join(F.broadcast(facts), ["lang", "sub_uri"], "inner")
         .join(ow, ["lang", *unit, "obj_uri"], "inner"))
    # both names in one single sentence: they co-occur only if a disjoint pair lies there
    ok = pairs.select("lang", "uuid", F.col("sentence_id").alias("s1"), F.lit(True).alias("pair_ok"))
    j = j.join(ok, ["lang", "uuid", "s1"], "left")
    one = (F.col("ns") == 1) & (F.col("no") == 1) & (F.col("s1") == F.col("o1"))
    return (j.where(~one | F.col("pair_ok").isNotNull())
            .select("lang", "uuid", *unit, F.least("s1", "o1").alias("ev")))


def _evidence(ev: DataFrame, k: int) -> DataFrame:
    w = Window.partitionBy("lang", "uuid").orderBy("ev")
    return (ev.select("lang", "uuid", "ev").distinct()
            .withColumn("_r", F.row_number().over(w)).where(F.col("_r") <= k)
            .groupBy("lang", "uuid").agg(F.array_sort(F.collect_list("ev")).alias("evidence")))


def build_cooccurrence(mentions_df: DataFrame, facts_df: DataFrame, chunks_df: DataFrame,
                       cfg: Any) -> DataFrame:
    """Return the ``cooccurrence`` table: one row per (lang, uuid) of ``facts_df``.

    ``facts_df`` holds the facts with their name flags (``names.fact_flags``), columns
    ``FACT_COLS``; ``chunks_df`` comes from ``chunks.build_chunks``.
    """
    trace = getattr(cfg, "trace", cfg)
    facts = facts_df.select(*FACT_COLS)
    pairs_facts = facts.select("lang", "uuid", "sub_uri", "obj_uri")
    # both are read by every window: computed once (the chunker tokenises every sentence)
    placed = place_mentions(mentions_df, chunks_df, trace.max_mentions_per_sentence).persist(
        StorageLevel.MEMORY_AND_DISK)
    s, o = _sides(placed)
    pairs = sentence_pairs(s, o, pairs_facts).persist(StorageLevel.MEMORY_AND_DISK)
    counts = {"sentence": pairs.groupBy("lang", "uuid").agg(F.count("*").alias("cooc_sentence"))}
    hits = {"sentence": pairs.withColumnRenamed("sentence_id", "ev")}
    for name, unit in UNITS.items():
        hits[name] = window_hits(s, o, pairs_facts, pairs, unit)
        counts[name] = hits[name].groupBy("lang", "uuid").agg(F.count("*").alias(f"cooc_{name}"))
    mc = mentions_df.groupBy("lang", "uri", "role").agg(F.count("*").alias("n"))
    sub_mc = mc.where(F.col("role") == "subject").select(
        "lang", F.col("uri").alias("sub_uri"), F.col("n").alias("sub_mentions"))
    obj_mc = mc.where(F.col("role") == "object").select(
        "lang", F.col("uri").alias("obj_uri"), F.col("n").alias("obj_mentions"))
    out = (facts.join(sub_mc, ["lang", "sub_uri"], "left").join(obj_mc, ["lang", "obj_uri"], "left")
           .join(counts["sentence"], ["lang", "uuid"], "left")
           .join(counts["chunk"], ["lang", "uuid"], "left")
           .join(counts["document"], ["lang", "uuid"], "left")
           .join(_evidence(hits[trace.window], trace.evidence_k), ["lang", "uuid"], "left"))
    zero = {c: 0 for c in ("sub_mentions", "obj_mentions", "cooc_sentence", "cooc_chunk",
                           "cooc_document")}
    out = (out.fillna(zero)
           .withColumn("evidence", F.coalesce("evidence", F.array().cast("array<bigint>")))
           .withColumn("present", F.col(f"cooc_{trace.window}") >= F.lit(trace.min_count)))
    spec = tables.spec("cooccurrence")
    types = {"int64": "bigint", "string": "string", "bool": "boolean", "list<item: int64>": "array<bigint>"}
    return out.select(*[F.col(f.name).cast(types[str(f.type)]).alias(f.name) for f in spec.schema])
