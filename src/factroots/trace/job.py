"""The trace stage: Wikipedia dumps -> `pages` -> `sentences` -> `mentions` -> `cooccurrence`.

``run(spark, plan)`` runs the trace stage (``STAGE``) on the runner: it reads ``facts``, finds
each language's dumps (``trace.dumps``, else ``trace.dump_dir``), and builds the tables each
pending language still needs, all languages in one Spark job per table. Each table is
materialised to Parquet and read back by the next. Every table is written into a staging
folder, ``pages`` and ``sentences`` by the Spark tasks themselves (``dump_source.write_dumps``:
one file per byte range, only counters reach the JVM), the others with ``partitionBy("lang")``,
and each language is then committed on its own (``Work.commit``: pages read back with their
checksums, rows counted): re-running one language replaces only that language. The runner
resumes per table: a language whose pages and sentences are done with the same fingerprint
(dumps by content, trace settings, normaliser, matcher, chunk tokenizer, facts) starts at
mentions. A language without a dump, or whose dump cannot be read, fails alone: named in
``<out>/run_report.json``, the others finish, the run exits non-zero.
``main(plan)`` builds a local session from ``cfg.trace``, runs, and stops it.
"""

from __future__ import annotations

import dataclasses
import functools
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
from factroots.runner import Plan, Stage, Work, plan_of, run_stage
from factroots.text.chunking import tokenizer_key
from factroots.text.match import MATCHER
from factroots.text.multistream import index_path_for
from factroots.text.normalize import NORMALIZER
from factroots.trace import chunks as chunks_mod
from factroots.trace import dump_source
from factroots.trace.cooccurrence import build_cooccurrence
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


def _settings(plan: Plan) -> dict:
    """The trace settings that change results (not where or how fast Spark runs)."""
    settings = {k: v for k, v in to_dict(plan.cfg.trace).items()
                if k not in _NOT_RESULTS + ("dumps", "dump_dir", "aliases")}
    return {"version": STAGE_VERSION, "normalizer": NORMALIZER, "matcher": MATCHER, **settings}


def _files(plan: Plan, lang: str) -> list[str]:
    """A language's dumps (with a multistream index beside) and the alias file, by content."""
    cfg = plan.cfg
    files = []
    for p in find_dumps(cfg, [lang]).get(lang, []):
        q = dump_source.resolve(cfg, p)
        files.append(q)
        if "://" not in q and (idx := index_path_for(q)).is_file():
            files.append(str(idx))
    return files + ([str(cfg.path(cfg.trace.aliases))] if cfg.trace.aliases else [])


_TOKENIZERS: dict[tuple, tuple[str | None, str]] = {}


def _tokenizer(cfg: RunConfig) -> tuple[str | None, str]:
    """The chunk tokenizer (JSON, description), resolved once per process and setting."""
    key = (cfg.trace.chunk_tokenizer, cfg.probe.model, cfg.base_dir)
    if key not in _TOKENIZERS:
        _TOKENIZERS[key] = resolve_tokenizer(cfg)
    return _TOKENIZERS[key]


def _key(plan: Plan, lang: str) -> str:
    return tokenizer_key(_tokenizer(plan.cfg)[0])


def _staged_write(df: DataFrame, cfg: RunConfig, table: str) -> Path:
    """Write ``df`` under a fresh staging folder, one sorted file set per language."""
    staged = storage.staging_dir(cfg.out, table)
    # sorted by key within each language: a rerun writes the same rows in the same order
    (df.repartition("lang").sortWithinPartitions("lang", *KEYS[table])
     .write.mode("overwrite").option("compression", "zstd")
     .partitionBy("lang").parquet(str(staged / "data")))
    return staged / "data"


def _commit(work: Work, table: str, staged: Path, langs: list[str], stats: dict,
            extra: dict) -> dict[str, int]:
    """Commit each language of a staged write with its stats; rows per language."""
    spark_rows = {}
    log.info("trace: %s written for %s", table, ", ".join(langs))
    for lang in langs:
        part = staged / f"lang={lang}"
        part.mkdir(parents=True, exist_ok=True)
        for f in part.glob(".*.crc"):
            f.unlink()
        final = work.commit(table, lang, part, stats=stats.get(lang, {}),
                            inputs={**extra.get(lang, {}), "normalizer": NORMALIZER,
                                    "matcher": MATCHER})
        spark_rows[lang] = storage.read_manifest(work.out, table, lang)["rows"]
        assert final.is_dir()
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


def _checked(work: Work, dumps: dict[str, list[str]]) -> dict[str, list[str]]:
    """The languages whose dumps can be read; the others fail (named in the run report)."""
    ok = {}
    for lang in work.langs:
        if lang not in dumps:
            work.fail(lang, f"no dump for language {lang} (set trace.dumps.{lang} or "
                            "trace.dump_dir, or drop it from langs)")
            continue
        if "pages" not in work.todo[lang]:  # resumes after its pages: no need to read the dump
            ok[lang] = dumps[lang]
            continue
        try:
            dump_source.plan_dumps({lang: dumps[lang]}, work.cfg)
            ok[lang] = dumps[lang]
        except (ShardError, ValueError, OSError, EOFError) as exc:  # this dump only
            work.fail(lang, f"{exc}".splitlines()[0] if isinstance(exc, ShardError)
                      else f"dump of {lang} unreadable: {type(exc).__name__}: {exc}".splitlines()[0])
    return ok


def _build(spark: SparkSession, work: Work) -> None:
    """Build every table ``work.todo`` lists, for every language at once."""
    cfg = work.cfg
    facts = work.plan.keep(storage.read_table(work.out, "facts", work.langs))
    dumps = _checked(work, find_dumps(cfg, work.langs))
    if not dumps:
        return
    _page_checksums(spark)
    tok_json, tok_desc = _tokenizer(cfg)
    _run_langs(spark, work, facts, dumps, tok_json, tok_desc)


def _page_checksums(spark: SparkSession) -> None:
    """Parquet page checksums: Spark writes them and checks them on every read."""
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # noqa: SLF001 - no public API
    conf.set("parquet.page.write-checksum.enabled", "true")
    conf.set("parquet.page.verify-checksum.enabled", "true")


STAGE = Stage("trace", TABLES, lambda work: None, STAGE_VERSION, settings=_settings,
              inputs=("facts",), files=_files, key=_key, per_lang=False)


def run(spark: SparkSession, cfg: RunConfig | Plan) -> Path:
    """Build pages, sentences, mentions and cooccurrence for every pending language."""
    plan = plan_of(cfg)
    shutil.rmtree(storage.table_dir(plan.out, "_trace_tmp"), ignore_errors=True)  # a dead run's
    return run_stage(dataclasses.replace(STAGE, build=functools.partial(_build, spark)), plan)


def _run_langs(spark: SparkSession, work: Work, facts: pa.Table, dumps: dict,
               tok_json: str | None, tok_desc: str) -> None:
    cfg = work.cfg
    langs = sorted(dumps)
    facts = facts.filter(pc.is_in(facts["lang"], pa.array(langs)))
    extra = {lg: {"dumps": dumps[lg], "chunk_tokenizer": tok_desc,
                  "window": cfg.trace.window, "min_count": cfg.trace.min_count} for lg in langs}
    # The tasks write pages and sentences themselves (no page or sentence goes through the
    # JVM); Spark only schedules the byte ranges and gathers their counters.
    read = {lg: dumps[lg] for lg in langs if work.wants("pages", lg)}
    if read:
        staged = {t: storage.staging_dir(cfg.out, t) / "data" for t in ("pages", "sentences")}
        try:
            stats = dump_source.write_dumps(spark, read, cfg, staged["pages"], staged["sentences"])
            for table in ("pages", "sentences"):
                _commit(work, table, staged[table], sorted(read), stats[table], extra)
        finally:
            for d in staged.values():
                shutil.rmtree(d.parent, ignore_errors=True)
    _mentions_and_cooccurrence(spark, work, facts, langs, tok_json, extra)


def _mentions_and_cooccurrence(spark: SparkSession, work: Work, facts: pa.Table,
                               langs: list[str], tok_json: str | None, extra: dict) -> None:
    cfg = work.cfg
    langs = [lg for lg in langs if work.wants("cooccurrence", lg)]
    if not langs:
        return
    m_langs = [lg for lg in langs if work.wants("mentions", lg)]  # the others resume after it
    facts = facts.filter(pc.is_in(facts["lang"], pa.array(langs)))
    aliases = read_aliases(cfg.path(cfg.trace.aliases)) if cfg.trace.aliases else None
    names, name_stats = build_names(facts, aliases, cfg.trace)
    sents = _read_back(spark, cfg, "sentences", langs)
    if m_langs:
        m_names = names.filter(pc.is_in(names["lang"], pa.array(m_langs)))
        mentions = build_mentions(_read_back(spark, cfg, "sentences", m_langs),
                                  _via_parquet(spark, cfg, m_names, "names"), cfg)
        staged = _staged_write(mentions, cfg, "mentions")
        m_back = spark.read.parquet(str(staged)).groupBy("lang", "strictness").count().collect()
        mstats = {lg: {f"names_{k}": v for k, v in name_stats.get(lg, {}).items()}
                  for lg in m_langs}
        for r in m_back:
            mstats[r["lang"]][f"mentions_{r['strictness']}"] = r["count"]
        _commit(work, "mentions", staged, m_langs, mstats, extra)
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
    _commit(work, "cooccurrence", staged, langs, cstats, extra)
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


def main(cfg: RunConfig | Plan) -> Path:
    """Build a session from ``cfg.trace``, run the trace stage, stop the session."""
    plan = plan_of(cfg)
    spark = session(plan.cfg)
    try:
        return run(spark, plan)
    finally:
        spark.stop()
