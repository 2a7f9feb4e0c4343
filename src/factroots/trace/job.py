"""The trace stage: Wikipedia dumps -> `pages`, `sentences`, [`mentions`], `cooccurrence`.

``run(spark, cfg)`` reads ``facts`` from ``cfg.out``, finds each language's dumps
(``trace.dumps``, else ``trace.dump_dir``), and builds the tables for every language that is
not done yet, all languages in one Spark job. One pass over the dumps does it all
(``dump_source.write_dumps`` with ``cooccurrence.plan_tracing``): each task decompresses its
byte range, writes its ``pages`` and ``sentences`` Parquet files, finds the names in the
sentences as it makes them and pairs them page by page (``text.cooccur.PartitionTracer``),
writing ``mentions`` too only with ``trace.write_mentions``; the JVM receives its counters
and per-fact partial counts, merged by one aggregation, and the driver writes
``cooccurrence`` (one row per fact). Each table is written into a staging folder and each
language is then moved into place on its own (``storage.commit_partition``): re-running one
language replaces only that language. A language is skipped when its partitions are done with
the same fingerprint (dumps, trace settings, normaliser, matcher, chunk tokenizer, facts). A
language without a dump, or whose dump cannot be read, is reported in
``<out>/trace_report.json`` and the log, not a crash. ``_mentions_and_cooccurrence`` is the
DataFrame path from committed sentences, kept as the reference the fused path is tested
against. ``main(cfg)`` builds a local session from ``cfg.trace``, runs, and stops it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from factroots import storage, tables
from factroots.config import RunConfig, to_dict
from factroots.errors import ShardError
from factroots.text.chunking import tokenizer_key
from factroots.text.match import MATCHER
from factroots.text.normalize import NORMALIZER
from factroots.trace import chunks as chunks_mod
from factroots.trace import dump_source
from factroots.trace.cooccurrence import build_cooccurrence, finish_cooccurrence, plan_tracing
from factroots.trace.mentions import build_mentions
from factroots.trace.names import build_names, fact_flags, read_aliases
from factroots.trace.tokenizer import resolve_tokenizer

log = logging.getLogger(__name__)

STAGE_VERSION = "trace-1"
TABLES = ("pages", "sentences", "mentions", "cooccurrence")
# sort keys of the tables Spark writes (pages and sentences come in dump order from the tasks)
KEYS = {"mentions": ("sentence_id", "uri", "role", "start"), "cooccurrence": ("uuid",)}
_DDL = {"string": "string", "int64": "bigint", "int32": "int", "bool": "boolean",
        "list<item: int64>": "array<bigint>"}
JAVA_OPTS = "spark.driver.extraJavaOptions"
QUICK_JIT = "-XX:TieredStopAtLevel=1"
_NOT_RESULTS = ("spark_master", "spark_conf", "local_jit", "partitions_per_file",
                "write_mentions")


def find_dumps(cfg: RunConfig, langs: list[str]) -> dict[str, list[str]]:
    """lang -> dump paths, from ``trace.dumps`` or ``<dump_dir>/<lang>wiki-*.xml*``."""
    out: dict[str, list[str]] = {}
    for lang in langs:
        listed = cfg.trace.dumps.get(lang)
        if listed:
            out[lang] = [listed] if isinstance(listed, str) else list(listed)
        elif cfg.trace.dump_dir:
            d = cfg.path(cfg.trace.dump_dir)
            found = sorted(str(p) for p in d.glob(f"{lang}wiki-*.xml*") if "-index" not in p.name)
            if found:
                out[lang] = found
    return out


def _dump_ids(cfg: RunConfig, paths: list[str]) -> list:
    ids = []
    for p in paths:
        q = Path(dump_source.resolve(cfg, p))
        ids.append([q.name, q.stat().st_size if q.exists() else None])
    return ids


def fingerprints(cfg: RunConfig, dumps: dict[str, list[str]], tok_key: str) -> dict[str, str]:
    """The fingerprint of each language's trace outputs."""
    settings = {k: v for k, v in to_dict(cfg.trace).items() if k not in _NOT_RESULTS + ("dumps",)}
    alias = cfg.trace.aliases
    alias_id = [alias, Path(cfg.path(alias)).stat().st_size] if alias else None
    out = {}
    for lang, paths in dumps.items():
        facts_fp = (storage.read_manifest(cfg.out, "facts", lang) or {}).get("fingerprint")
        out[lang] = storage.fingerprint(STAGE_VERSION, NORMALIZER, MATCHER, tok_key, settings,
                                        _dump_ids(cfg, paths), facts_fp, alias_id,
                                        sorted(cfg.relations))
    return out


def _staged_write(df: DataFrame, cfg: RunConfig, table: str) -> Path:
    """Write ``df`` under a fresh staging folder, one sorted file set per language."""
    staged = storage.staging_dir(cfg.out, table)
    # sorted by key within each language: a rerun writes the same rows in the same order
    (df.repartition("lang").sortWithinPartitions("lang", *KEYS[table])
     .write.mode("overwrite").option("compression", "zstd")
     .partitionBy("lang").parquet(str(staged / "data")))
    return staged / "data"


def _commit(cfg: RunConfig, table: str, staged: Path, langs: list[str], stats: dict,
            fps: dict, extra: dict) -> dict[str, int]:
    """Move each language of a staged write into place with its stats; rows per language."""
    spark_rows = {}
    log.info("trace: %s written for %s", table, ", ".join(langs))
    for lang in langs:
        part = staged / f"lang={lang}"
        part.mkdir(parents=True, exist_ok=True)
        files = sorted(part.glob("*.parquet"))
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        for f in part.glob(".*.crc"):
            f.unlink()
        storage.commit_partition(cfg.out, table, lang, part, rows=rows, config=to_dict(cfg),
                                 stats=stats.get(lang, {}), fp=fps[lang],
                                 inputs={**extra.get(lang, {}), "normalizer": NORMALIZER,
                                         "matcher": MATCHER})
        spark_rows[lang] = rows
    shutil.rmtree(staged.parent, ignore_errors=True)
    return spark_rows


def _read_back(spark: SparkSession, cfg: RunConfig, table: str, langs: list[str]) -> DataFrame:
    """The committed partitions of ``langs`` (those with rows) as one DataFrame."""
    base = storage.table_dir(cfg.out, table)
    paths = [str(p) for lg in langs
             if any((p := storage.partition_dir(cfg.out, table, lg)).glob("*.parquet"))]
    if not paths:  # no rows at all: an empty frame of the declared schema
        return spark.createDataFrame([], _ddl_of(table))
    return spark.read.option("basePath", str(base)).parquet(*paths)


def _ddl_of(table: str) -> str:
    return ", ".join(f"`{f.name}` {_DDL[str(f.type)]}" for f in tables.spec(table).schema)


def _read_staged(spark: SparkSession, staged: Path, table: str) -> DataFrame:
    """A staged write read back with its declared schema: a write of no rows (no language
    found a mention) has no file to infer one from."""
    return spark.read.schema(_ddl_of(table)).parquet(str(staged))


def _via_parquet(spark: SparkSession, cfg: RunConfig, t: pa.Table, name: str) -> DataFrame:
    """A driver-side table as a DataFrame read from Parquet under ``out`` (a local relation
    would travel inside every task)."""
    d = storage.table_dir(cfg.out, "_trace_tmp")
    d.mkdir(parents=True, exist_ok=True)
    pq.write_table(t, d / f"{name}.parquet")
    return spark.read.parquet(str(d / f"{name}.parquet"))


def _facts(cfg: RunConfig) -> pa.Table:
    facts = storage.read_table(cfg.out, "facts", cfg.langs or None)
    if cfg.relations:
        facts = facts.filter(pc.is_in(facts["relation"], pa.array(cfg.relations)))
    return facts


def run(spark: SparkSession, cfg: RunConfig) -> Path:
    """Build pages, sentences, mentions and cooccurrence for every pending language."""
    facts = _facts(cfg)
    langs = sorted(pc.unique(facts["lang"]).to_pylist())
    report: dict[str, dict] = {lang: {"status": "no_dump"} for lang in langs}
    dumps = find_dumps(cfg, langs)
    for lang in langs:
        if lang not in dumps:
            log.warning("trace: no dump for language %s: its facts are not traced "
                        "(set trace.dumps.%s or trace.dump_dir)", lang, lang)
    dumps = _checked(cfg, dumps, report)
    tok_json, tok_desc = resolve_tokenizer(cfg)
    fps = fingerprints(cfg, dumps, tokenizer_key(tok_json))
    todo = [lg for lg in dumps
            if not all(storage.is_done(cfg.out, t, lg, fps[lg]) for t in _tables(cfg))]
    for lang in dumps:
        report[lang] = {"status": "done" if lang in todo else "skipped", "dumps": dumps[lang],
                        "fingerprint": fps[lang]}
    if todo:
        _run_langs(spark, cfg, facts, {lg: dumps[lg] for lg in todo}, fps, tok_json, tok_desc,
                   report)
    _write_report(cfg, report)
    return storage.table_dir(cfg.out, "cooccurrence")


def _checked(cfg: RunConfig, dumps: dict[str, list[str]], report: dict) -> dict[str, list[str]]:
    """Drop languages whose dumps are missing or not dumps (reported, not raised)."""
    ok = {}
    for lang, paths in dumps.items():
        try:
            dump_source.plan_dumps({lang: paths}, cfg)
            ok[lang] = paths
        except ShardError as exc:
            log.error("trace: language %s fails: %s", lang, exc)
            report[lang] = {"status": "failed", "error": str(exc), "dumps": paths}
    return ok


def _write_report(cfg: RunConfig, report: dict) -> None:
    path = Path(cfg.out) / "trace_report.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, sort_keys=True), encoding="utf-8")


def _run_langs(spark: SparkSession, cfg: RunConfig, facts: pa.Table, dumps: dict, fps: dict,
               tok_json: str | None, tok_desc: str, report: dict) -> None:
    langs = sorted(dumps)
    facts = facts.filter(pc.is_in(facts["lang"], pa.array(langs)))
    extra = {lg: {"dumps": dumps[lg], "chunk_tokenizer": tok_desc,
                  "window": cfg.trace.window, "min_count": cfg.trace.min_count} for lg in langs}
    # The tasks write pages and sentences themselves (no page or sentence goes through the
    # JVM) and trace them as they go (no mention either); Spark only schedules the byte
    # ranges and merges their per-fact partial counts.
    names, name_stats, facts_flags = _names_and_flags(cfg, facts)
    staged = {t: storage.staging_dir(cfg.out, t) / "data" for t in _tables(cfg)
              if t != "cooccurrence"}
    work = storage.staging_dir(cfg.out, "cooccurrence")
    try:
        tracing = plan_tracing(work / "names", names, facts_flags, cfg.trace, tok_json,
                               staged.get("mentions"))
        stats = dump_source.write_dumps(spark, dumps, cfg, staged["pages"], staged["sentences"],
                                        tracing)
        for table in ("pages", "sentences"):
            _commit(cfg, table, staged[table], langs, stats[table], fps, extra)
        _commit_traced(cfg, facts_flags, langs, stats, name_stats, staged.get("mentions"), fps,
                       extra, report)
    finally:
        for d in (*staged.values(), work / "names"):
            shutil.rmtree(d.parent, ignore_errors=True)


def _tables(cfg: RunConfig) -> tuple[str, ...]:
    """The tables a language needs to be done (``mentions`` only with trace.write_mentions)."""
    return TABLES if cfg.trace.write_mentions else tuple(t for t in TABLES if t != "mentions")


def _names_and_flags(cfg: RunConfig, facts: pa.Table) -> tuple[pa.Table, dict, pa.Table]:
    """The names to find (with their stats) and the facts with their name flags."""
    aliases = read_aliases(cfg.path(cfg.trace.aliases)) if cfg.trace.aliases else None
    names, name_stats = build_names(facts, aliases, cfg.trace)
    return names, name_stats, facts.join(fact_flags(facts, names, cfg.trace), ["lang", "uuid"])


_STRICTNESS = {f"mentions_{s}" for s in ("word", "prefix", "substring")}
_TRACE_EXTRA = ("mentions", "pages_with_pairs", "sentences_chunked")


def _commit_traced(cfg: RunConfig, facts_flags: pa.Table, langs: list[str], stats: dict,
                   name_stats: dict, mentions_staged: Path | None, fps: dict, extra: dict,
                   report: dict) -> None:
    """Commit ``mentions`` (when written) and ``cooccurrence`` from the fused pass's results."""
    traced = {lg: stats["trace"].get(lg, {}) for lg in langs}
    mstats = {lg: {f"names_{k}": v for k, v in name_stats.get(lg, {}).items()} for lg in langs}
    for lg in langs:
        mstats[lg].update({k: v for k, v in traced[lg].items() if k in _STRICTNESS})
    if mentions_staged is not None:
        _commit(cfg, "mentions", mentions_staged, langs, mstats, fps, extra)
    cooc = finish_cooccurrence(facts_flags, stats["partials"], cfg.trace)
    for lg in langs:
        t = cooc.filter(pc.equal(cooc["lang"], lg))
        present = int(pc.sum(t["present"].cast(pa.int64())).as_py() or 0)
        st = {"in": t.num_rows, "out": t.num_rows, "present": present, "window": cfg.trace.window,
              "min_count": cfg.trace.min_count,
              "mentions_over_cap": traced[lg].get("mentions_over_cap", 0),
              # why a language has few or no co-occurrences: its sentences, names, mentions
              "sentences": stats["sentences"].get(lg, {}).get("sentences", 0),
              "names": mstats[lg].get("names_out", 0),
              **{k: traced[lg].get(k, 0) for k in _TRACE_EXTRA},
              **{k: v for k, v in mstats[lg].items() if k in _STRICTNESS}}
        storage.write_table(cfg.out, "cooccurrence", t, lg, config=to_dict(cfg), stats=st,
                            fp=fps[lg], inputs={**extra[lg], "normalizer": NORMALIZER,
                                                "matcher": MATCHER})
        report[lg].update(present=present, facts=t.num_rows,
                          task_cpu_s={k: round(v, 3) for k, v in stats["cpu"].get(lg, {}).items()})


def _mentions_and_cooccurrence(spark: SparkSession, cfg: RunConfig, facts: pa.Table,
                               langs: list[str], fps: dict, tok_json: str | None, extra: dict,
                               report: dict) -> None:
    """The DataFrame path from committed ``sentences`` (mentions through the JVM to Parquet,
    chunks of every sentence, co-occurrence by a shuffle of the mentions): the reference the
    fused path is checked against, row by row (tests/spark/test_trace_fused.py)."""
    aliases = read_aliases(cfg.path(cfg.trace.aliases)) if cfg.trace.aliases else None
    names, name_stats = build_names(facts, aliases, cfg.trace)
    sents = _read_back(spark, cfg, "sentences", langs)
    mentions = build_mentions(sents, _via_parquet(spark, cfg, names, "names"), cfg)
    staged = _staged_write(mentions, cfg, "mentions")
    m_back = _read_staged(spark, staged, "mentions").groupBy("lang", "strictness").count().collect()
    mstats = {lg: {f"names_{k}": v for k, v in name_stats.get(lg, {}).items()} for lg in langs}
    for r in m_back:
        mstats[r["lang"]][f"mentions_{r['strictness']}"] = r["count"]
    _commit(cfg, "mentions", staged, langs, mstats, fps, extra)
    flags = fact_flags(facts, names, cfg.trace)
    facts_df = _via_parquet(spark, cfg, facts.join(flags, ["lang", "uuid"]), "facts_flags")
    chunk_df = chunks_mod.build_chunks(sents, tok_json, cfg.trace.chunk_size)
    cooc = build_cooccurrence(_read_back(spark, cfg, "mentions", langs), facts_df, chunk_df, cfg)
    staged = _staged_write(cooc, cfg, "cooccurrence")
    agg = (_read_staged(spark, staged, "cooccurrence").groupBy("lang")
           .agg(F.count("*").alias("out"), F.sum(F.col("present").cast("long")).alias("present"))
           .collect())
    n_facts = {lg: int(pc.sum(pc.equal(facts["lang"], lg)).as_py()) for lg in langs}
    cstats = {lg: {"in": n_facts[lg], "out": 0, "present": 0, "window": cfg.trace.window,
                   "min_count": cfg.trace.min_count} for lg in langs}
    for r in agg:
        cstats[r["lang"]].update(out=r["out"], present=int(r["present"] or 0))
    cap = cfg.trace.max_mentions_per_sentence
    over = (_read_back(spark, cfg, "mentions", langs).groupBy("lang", "sentence_id").count()
            .where(F.col("count") > cap).groupBy("lang")
            .agg(F.sum(F.col("count") - cap).alias("n")).collect())
    for lg in langs:  # mentions left out of pairing by trace.max_mentions_per_sentence
        cstats[lg]["mentions_over_cap"] = 0
    for r in over:
        cstats[r["lang"]]["mentions_over_cap"] = int(r["n"])
    _commit(cfg, "cooccurrence", staged, langs, cstats, fps, extra)
    for lg in langs:
        report[lg].update(present=cstats[lg]["present"], facts=n_facts[lg])
    shutil.rmtree(storage.table_dir(cfg.out, "_trace_tmp"), ignore_errors=True)


def session(cfg: RunConfig) -> SparkSession:
    """A Spark session for ``cfg.trace`` (local mode by default), workers on this Python."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    b = (SparkSession.builder.appName("factroots-trace").master(cfg.trace.spark_master)
         .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
         .config("spark.ui.showConsoleProgress", "false")
         .config("spark.sql.session.timeZone", "UTC"))
    conf = {k: str(v) for k, v in cfg.trace.spark_conf.items()}
    if cfg.trace.spark_master.startswith("local"):
        # a few shuffle partitions per core: the default 200 costs more than the work here
        b = (b.config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.driver.host", "127.0.0.1")
             .config("spark.sql.shuffle.partitions", str(4 * (os.cpu_count() or 2))))
        if opts := local_java_options(cfg.trace.local_jit, conf.get(JAVA_OPTS, "")):
            conf[JAVA_OPTS] = opts
    for k, v in conf.items():
        b = b.config(k, v)
    return b.getOrCreate()


def local_java_options(jit: str, extra: str = "") -> str:
    """The driver JVM's options in local mode: ``extra`` (the user's), after C1-only
    compilation for ``jit="quick"``."""
    # C2 spends more CPU compiling Spark's planner and generated code than a job of minutes
    # gets back (BENCHMARKS.md); the user's own options come last, so they win
    return " ".join(o for o in (QUICK_JIT if jit == "quick" else "", extra.strip()) if o)


def main(cfg: RunConfig) -> Path:
    """Build a session from ``cfg.trace``, run the trace stage, stop the session."""
    spark = session(cfg)
    try:
        return run(spark, cfg)
    finally:
        spark.stop()
