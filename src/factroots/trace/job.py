"""The trace stage: Wikipedia dumps -> `pages`, `sentences`, [`mentions`], `cooccurrence`.

``run(spark, plan)`` runs the trace stage (``STAGE``) on the runner: it reads ``facts``, finds
each language's dumps (``trace.dumps``, else ``trace.dump_dir``), and builds the tables each
pending language still needs, all languages in one Spark job. One pass over the dumps does it
all (``dump_source.write_dumps`` with ``cooccurrence.plan_tracing``): each task decompresses its
byte range, writes its ``pages`` and ``sentences`` Parquet files, finds the names in the
sentences as it makes them and pairs them page by page (``text.cooccur.PartitionTracer``),
writing ``mentions`` too only with ``trace.write_mentions``; the JVM receives its counters
and per-fact partial counts, merged by one aggregation, and the driver writes
``cooccurrence`` (one row per fact). Each table is written into a staging folder and each
language is then committed on its own (``Work.commit``: pages read back with their checksums,
rows counted): re-running one language replaces only that language.

The runner resumes per table: a language whose ``pages`` and ``sentences`` are done with the
same fingerprint (dumps by content, trace settings, normaliser, matcher, chunk tokenizer,
facts) is not read again; its mentions and co-occurrence are built from the committed
sentences by the DataFrame path (``_mentions_and_cooccurrence``, also the reference the fused
pass is tested against, row by row). A language without a dump, or whose dump cannot be read,
fails alone: named in ``<out>/run_report.json``, the others finish, the run exits non-zero.
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
            extra: dict) -> None:
    """Commit each language of a staged write with its stats (files verified, rows counted)."""
    log.info("trace: %s written for %s", table, ", ".join(langs))
    for lang in langs:
        part = staged / f"lang={lang}"
        part.mkdir(parents=True, exist_ok=True)
        for f in part.glob(".*.crc"):
            f.unlink()
        work.commit(table, lang, part, stats=stats.get(lang, {}),
                    inputs={**extra.get(lang, {}), "normalizer": NORMALIZER, "matcher": MATCHER})
    shutil.rmtree(staged.parent, ignore_errors=True)


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
    facts = facts.filter(pc.is_in(facts["lang"], pa.array(sorted(dumps))))
    tok_json, tok_desc = _tokenizer(cfg)
    extra = {lg: {"dumps": dumps[lg], "chunk_tokenizer": tok_desc,
                  "window": cfg.trace.window, "min_count": cfg.trace.min_count} for lg in dumps}
    read = sorted(lg for lg in dumps if work.wants("pages", lg))
    resume = sorted(lg for lg in dumps if lg not in read and work.wants("cooccurrence", lg))
    if read:
        _fused(spark, work, facts.filter(pc.is_in(facts["lang"], pa.array(read))),
               {lg: dumps[lg] for lg in read}, tok_json, extra)
    if resume:  # pages and sentences committed by an earlier run: start from its sentences
        _mentions_and_cooccurrence(spark, work, facts.filter(pc.is_in(facts["lang"],
                                                                      pa.array(resume))),
                                   resume, tok_json, extra)


def _page_checksums(spark: SparkSession) -> None:
    """Parquet page checksums: Spark writes them and checks them on every read."""
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # noqa: SLF001 - no public API
    conf.set("parquet.page.write-checksum.enabled", "true")
    conf.set("parquet.page.verify-checksum.enabled", "true")


STAGE = Stage("trace", TABLES, lambda work: None, STAGE_VERSION, settings=_settings,
              inputs=("facts",), files=_files, key=_key, per_lang=False)


def run(spark: SparkSession, cfg: RunConfig | Plan) -> Path:
    """Build pages, sentences, [mentions] and cooccurrence for every pending language."""
    plan = plan_of(cfg)
    shutil.rmtree(storage.table_dir(plan.out, "_trace_tmp"), ignore_errors=True)  # a dead run's
    stage = dataclasses.replace(STAGE, outputs=_tables(plan.cfg),
                                build=functools.partial(_build, spark))
    return run_stage(stage, plan)


def _fused(spark: SparkSession, work: Work, facts: pa.Table, dumps: dict, tok_json: str | None,
           extra: dict) -> None:
    """The one pass over the dumps of ``dumps``' languages: every table from the tasks."""
    cfg, langs = work.cfg, sorted(dumps)
    # The tasks write pages and sentences themselves (no page or sentence goes through the
    # JVM) and trace them as they go (no mention either); Spark only schedules the byte
    # ranges and merges their per-fact partial counts.
    names, name_stats, facts_flags = _names_and_flags(cfg, facts)
    staged = {t: storage.staging_dir(cfg.out, t) / "data" for t in _tables(cfg)
              if t != "cooccurrence"}
    scratch = storage.staging_dir(cfg.out, "cooccurrence")
    try:
        tracing = plan_tracing(scratch / "names", names, facts_flags, cfg.trace, tok_json,
                               staged.get("mentions"))
        stats = dump_source.write_dumps(spark, dumps, cfg, staged["pages"], staged["sentences"],
                                        tracing)
        for table in ("pages", "sentences"):
            _commit(work, table, staged[table], langs, stats[table], extra)
        _commit_traced(work, facts_flags, langs, stats, name_stats, staged.get("mentions"), extra)
    finally:
        for d in (*staged.values(), scratch / "names"):
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


def _commit_traced(work: Work, facts_flags: pa.Table, langs: list[str], stats: dict,
                   name_stats: dict, mentions_staged: Path | None, extra: dict) -> None:
    """Commit ``mentions`` (when written) and ``cooccurrence`` from the fused pass's results."""
    cfg = work.cfg
    traced = {lg: stats["trace"].get(lg, {}) for lg in langs}
    mstats = {lg: {f"names_{k}": v for k, v in name_stats.get(lg, {}).items()} for lg in langs}
    for lg in langs:
        mstats[lg].update({k: v for k, v in traced[lg].items() if k in _STRICTNESS})
    if mentions_staged is not None:
        _commit(work, "mentions", mentions_staged, langs, mstats, extra)
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
              **{k: v for k, v in mstats[lg].items() if k in _STRICTNESS},
              # the tasks' CPU seconds per step (for benchmarks; not part of the results)
              "task_cpu_s": {k: round(v, 3) for k, v in stats["cpu"].get(lg, {}).items()}}
        work.write("cooccurrence", t, lg, stats=st,
                   inputs={**extra[lg], "normalizer": NORMALIZER, "matcher": MATCHER})


def _mentions_and_cooccurrence(spark: SparkSession, work: Work, facts: pa.Table,
                               langs: list[str], tok_json: str | None, extra: dict) -> None:
    """The DataFrame path from committed ``sentences`` (mentions through the JVM to Parquet,
    chunks of every sentence, co-occurrence by a shuffle of the mentions): how a language
    resumes after its sentences, and the reference the fused pass is checked against, row by
    row (tests/spark/test_trace_fused.py)."""
    cfg = work.cfg
    aliases = read_aliases(cfg.path(cfg.trace.aliases)) if cfg.trace.aliases else None
    names, name_stats = build_names(facts, aliases, cfg.trace)
    sents = _read_back(spark, cfg, "sentences", langs)
    mentions = build_mentions(sents, _via_parquet(spark, cfg, names, "names"), cfg)
    staged_m = _staged_write(mentions, cfg, "mentions")
    try:
        m_back = _read_staged(spark, staged_m, "mentions")
        _cooccurrence_from(spark, work, facts, names, langs, sents, m_back, tok_json, extra)
        counts = m_back.groupBy("lang", "strictness").count().collect()
        mstats = {lg: {f"names_{k}": v for k, v in name_stats.get(lg, {}).items()}
                  for lg in langs}
        for r in counts:
            mstats[r["lang"]][f"mentions_{r['strictness']}"] = r["count"]
        m_langs = [lg for lg in langs if work.wants("mentions", lg)]
        if m_langs:
            _commit(work, "mentions", staged_m, m_langs, mstats, extra)
    finally:
        shutil.rmtree(staged_m.parent, ignore_errors=True)
        shutil.rmtree(storage.table_dir(cfg.out, "_trace_tmp"), ignore_errors=True)


def _cooccurrence_from(spark: SparkSession, work: Work, facts: pa.Table, names: pa.Table,
                       langs: list[str], sents: DataFrame, mentions: DataFrame,
                       tok_json: str | None, extra: dict) -> None:
    """Commit ``cooccurrence`` of ``langs`` from their sentences and (staged) mentions."""
    cfg = work.cfg
    flags = fact_flags(facts, names, cfg.trace)
    facts_df = _via_parquet(spark, cfg, facts.join(flags, ["lang", "uuid"]), "facts_flags")
    chunk_df = chunks_mod.build_chunks(sents, tok_json, cfg.trace.chunk_size)
    cooc = build_cooccurrence(mentions, facts_df, chunk_df, cfg)
    staged = _staged_write(cooc, cfg, "cooccurrence")
    agg = (_read_staged(spark, staged, "cooccurrence").groupBy("lang")
           .agg(F.count("*").alias("out"), F.sum(F.col("present").cast("long")).alias("present"))
           .collect())
    n_facts = {lg: int(pc.sum(pc.equal(facts["lang"], lg)).as_py()) for lg in langs}
    n_names = {lg: int(pc.sum(pc.equal(names["lang"], lg)).as_py() or 0) for lg in langs}
    cstats = {lg: {"in": n_facts[lg], "out": 0, "present": 0, "window": cfg.trace.window,
                   "min_count": cfg.trace.min_count, "mentions_over_cap": 0,
                   # why a language has few or no co-occurrences: its sentences, names
                   "sentences": int((storage.read_manifest(work.out, "sentences", lg) or {})
                                    .get("rows") or 0),
                   "names": n_names[lg]} for lg in langs}
    for r in agg:
        cstats[r["lang"]].update(out=r["out"], present=int(r["present"] or 0))
    cap = cfg.trace.max_mentions_per_sentence
    over = (mentions.groupBy("lang", "sentence_id").count()
            .where(F.col("count") > cap).groupBy("lang")
            .agg(F.sum(F.col("count") - cap).alias("n")).collect())
    for r in over:  # mentions left out of pairing by trace.max_mentions_per_sentence
        cstats[r["lang"]]["mentions_over_cap"] = int(r["n"])
    _commit(work, "cooccurrence", staged, langs, cstats, extra)


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
