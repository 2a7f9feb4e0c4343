"""The trace stage: Wikipedia dumps -> `pages` -> `sentences` -> `mentions` -> `cooccurrence`.

``run(spark, cfg)`` reads ``facts`` from ``cfg.out``, finds each language's dumps
(``trace.dumps``, else ``trace.dump_dir``), and builds the four tables for every language that
is not done yet, all languages in one Spark job per stage. Each stage is materialised to
Parquet and read back by the next. Every table is written into a staging folder, ``pages``
and ``sentences`` by the Spark tasks themselves (``dump_source.write_dumps``: one file per byte
range, only counters reach the JVM), the others with ``partitionBy("lang")``, and each
language is then moved into place on its own (``storage.commit_partition``): re-running one
language replaces only that language. A
language is skipped when its four partitions are done with the same fingerprint (dumps, trace
settings, normaliser, matcher, chunk tokenizer, facts). A language without a dump, or whose
dump cannot be read, is reported in ``<out>/trace_report.json`` and the log, not a crash.
``main(cfg)`` builds a local session from ``cfg.trace``, runs, and stops it.
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
from factroots.trace.cooccurrence import build_cooccurrence
from factroots.trace.executors import check as check_executors  # #17
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
_NOT_RESULTS = ("spark_master", "spark_conf", "local_jit", "partitions_per_file")


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
        ddl = ", ".join(f"`{f.name}` {_DDL[str(f.type)]}" for f in tables.spec(table).schema)
        return spark.createDataFrame([], ddl)
    return spark.read.option("basePath", str(base)).parquet(*paths)


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
    todo = [lg for lg in dumps if not all(storage.is_done(cfg.out, t, lg, fps[lg]) for t in TABLES)]
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
    # JVM); Spark only schedules the byte ranges and gathers their counters.
    staged = {t: storage.staging_dir(cfg.out, t) / "data" for t in ("pages", "sentences")}
    try:
        stats = dump_source.write_dumps(spark, dumps, cfg, staged["pages"], staged["sentences"])
        for table in ("pages", "sentences"):
            _commit(cfg, table, staged[table], langs, stats[table], fps, extra)
    finally:
        for d in staged.values():
            shutil.rmtree(d.parent, ignore_errors=True)
    _mentions_and_cooccurrence(spark, cfg, facts, langs, fps, tok_json, extra, report)


def _mentions_and_cooccurrence(spark: SparkSession, cfg: RunConfig, facts: pa.Table,
                               langs: list[str], fps: dict, tok_json: str | None, extra: dict,
                               report: dict) -> None:
    aliases = read_aliases(cfg.path(cfg.trace.aliases)) if cfg.trace.aliases else None
    names, name_stats = build_names(facts, aliases, cfg.trace)
    sents = _read_back(spark, cfg, "sentences", langs)
    mentions = build_mentions(sents, _via_parquet(spark, cfg, names, "names"), cfg)
    staged = _staged_write(mentions, cfg, "mentions")
    m_back = spark.read.parquet(str(staged)).groupBy("lang", "strictness").count().collect()
    mstats = {lg: {f"names_{k}": v for k, v in name_stats.get(lg, {}).items()} for lg in langs}
    for r in m_back:
        mstats[r["lang"]][f"mentions_{r['strictness']}"] = r["count"]
    _commit(cfg, "mentions", staged, langs, mstats, fps, extra)
    flags = fact_flags(facts, names, cfg.trace)
    facts_df = _via_parquet(spark, cfg, facts.join(flags, ["lang", "uuid"]), "facts_flags")
    chunk_df = chunks_mod.build_chunks(sents, tok_json, cfg.trace.chunk_size)
    cooc = build_cooccurrence(_read_back(spark, cfg, "mentions", langs), facts_df, chunk_df, cfg)
    staged = _staged_write(cooc, cfg, "cooccurrence")
    agg = (spark.read.parquet(str(staged)).groupBy("lang")
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
        check_executors(spark)  # #17: a cluster's executors run the driver's code (local: no-op)
        return run(spark, cfg)
    finally:
        spark.stop()
