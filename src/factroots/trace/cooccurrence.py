"""Builds ``cooccurrence`` (one row per (lang, uuid) of ``facts``): in the trace job from the
sentences as the dump source makes them (the fused path at the end of this module: no row per
mention reaches the JVM), and by ``build_cooccurrence`` from ``mentions``, the chunk
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
import hashlib
import pickle
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from factroots import tables
from factroots.text.chunking import cached_tokenizer, tokenizer_key
from factroots.text.cooccur import LanguageNames, PartitionTracer, page_hits
from factroots.text.match import cached_matcher
from factroots.trace import pyworker
from factroots.trace.mentions import name_lists

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


# ---- the fused path: mentions and co-occurrence in the pass that makes the sentences ------
# The driver writes each language's names and facts once (``plan_tracing``); every task of the
# dump source loads them once per worker (``tracer_for``), traces its sentences as it makes
# them (``text.cooccur.PartitionTracer``) and hands back per-fact partial counts with its
# receipt; ``merge_partials`` sums them in one aggregation and ``finish_cooccurrence`` joins
# them to the facts on the driver (one row per fact: 10^4-10^5 per language).

PARTIALS_DDL = ("uuid string, sub_mentions bigint, obj_mentions bigint, cooc_sentence bigint, "
                "cooc_chunk bigint, cooc_document bigint, evidence array<bigint>")
PARTIAL_FIELDS = [("uuid", pa.string()), ("sub_mentions", pa.int64()),
                  ("obj_mentions", pa.int64()), ("cooc_sentence", pa.int64()),
                  ("cooc_chunk", pa.int64()), ("cooc_document", pa.int64()),
                  ("evidence", pa.list_(pa.int64()))]
_COUNTS = ("sub_mentions", "obj_mentions", "cooc_sentence", "cooc_chunk", "cooc_document")
_LOADED: OrderedDict[str, LanguageNames] = OrderedDict()  # file name -> one language's names


def plan_tracing(folder: Path, names: pa.Table, facts: pa.Table, trace: Any,
                 tokenizer_json: str | None, mentions_dir: Path | None = None) -> dict:
    """Write what the tasks need to trace each language of ``facts`` under ``folder`` (one
    pickle of its name list and facts per language, the chunk tokenizer's JSON) and return the
    spec the dump source takes (JSON-able; the folder must be readable by every executor)."""
    folder.mkdir(parents=True, exist_ok=True)
    lists = name_lists(names, trace)
    files = {}
    for lang in sorted(pc.unique(facts["lang"]).to_pylist()):
        f = facts.filter(pc.equal(facts["lang"], lang))
        info = lists.get(lang, {"key": "", "mode": "", "norms": [], "targets": []})
        payload = {"lang": lang, "key": info["key"], "mode": info["mode"],
                   "norms": info["norms"], "targets": info["targets"],
                   "facts": list(zip(*(f[c].to_pylist() for c in ("uuid", "sub_uri", "obj_uri"))))}
        data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
        name = f"{lang}-{hashlib.sha256(data).hexdigest()[:24]}.pkl"
        (folder / name).write_bytes(data)
        files[lang] = name
    if tokenizer_json:
        (folder / "tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
    return {"dir": str(folder), "files": files, "tokenizer": tokenizer_key(tokenizer_json),
            "cap": int(trace.max_mentions_per_sentence), "window": trace.window,
            "k": int(trace.evidence_k), "chunk_size": int(trace.chunk_size),
            "mentions": str(mentions_dir) if mentions_dir else ""}


def _names_of(folder: str, name: str) -> LanguageNames:
    names = _LOADED.get(name)
    if names is None:
        p = pickle.loads((Path(folder) / name).read_bytes())
        matcher = (cached_matcher(p["key"], p["lang"], p["mode"], lambda: p["norms"])
                   if p["norms"] else None)
        names = _LOADED[name] = LanguageNames(matcher, p["targets"], p["facts"])
        while len(_LOADED) > 4:  # as many languages as the matcher cache keeps
            _LOADED.popitem(last=False)
    else:
        _LOADED.move_to_end(name)
    return names


def tracer_for(spec: dict, lang: str) -> PartitionTracer | None:
    """A fresh tracer for one partition of ``lang`` (None: the language has no facts); the
    names automaton and the tokenizer are built once per worker process."""
    name = spec["files"].get(lang)
    if name is None:
        return None
    tok = cached_tokenizer(spec["tokenizer"], lambda: (Path(spec["dir"]) / "tokenizer.json")
                           .read_text(encoding="utf-8"))
    return PartitionTracer(_names_of(spec["dir"], name), cap=spec["cap"], window=spec["window"],
                           k=spec["k"], chunk_size=spec["chunk_size"], tokenizer=tok)


def merge_partials(df: DataFrame, k: int, extra: list | None = None) -> DataFrame:
    """Per (lang, uuid): the tasks' partial counts summed, the ``k`` smallest evidence ids
    (and the aggregates ``extra``)."""
    return df.groupBy("lang", "uuid").agg(
        *[F.sum(c).alias(c) for c in _COUNTS],
        F.slice(F.array_sort(F.flatten(F.collect_list("evidence"))), 1, k).alias("evidence"),
        *(extra or []))


def finish_cooccurrence(facts: pa.Table, partials: pa.Table, trace: Any) -> pa.Table:
    """The ``cooccurrence`` table, sorted by (lang, uuid), from the facts with their name flags
    (``FACT_COLS``) and the merged partials (lang, uuid, counts, evidence): zero counts and no
    evidence for a fact no task saw."""
    facts = facts.select(list(FACT_COLS)).sort_by([("lang", "ascending"), ("uuid", "ascending")])
    fkey = pc.binary_join_element_wise(facts["lang"], facts["uuid"], "\x00")
    pkey = pc.binary_join_element_wise(partials["lang"], partials["uuid"], "\x00")
    got = partials.take(pc.index_in(fkey, value_set=pkey))
    cols = {c: facts[c] for c in FACT_COLS}
    for c in _COUNTS:
        cols[c] = pc.fill_null(got[c].cast(pa.int64()), 0)
    ev = got["evidence"].combine_chunks().cast(pa.list_(pa.int64()))
    cols["evidence"] = pc.if_else(pc.is_null(ev), pa.scalar([], pa.list_(pa.int64())), ev)
    cols["present"] = pc.greater_equal(cols[f"cooc_{trace.window}"], trace.min_count)
    return tables.conform("cooccurrence", pa.table(cols))
