"""Raw pages from Wikipedia dumps: a Spark 4 Python Data Source over byte-range partitions.

The driver plans each dump (``factroots.text.dumps.plan_dump``: a multistream dump is cut at
stream offsets of its index into ranges of about ``32 MB`` compressed, or
``trace.partitions_per_file`` ranges; a dump without index is one partition); each task
decompresses and parses its range with bounded memory and yields Arrow batches of raw pages,
including counted rejects (``reject`` = truncated / corrupt_stream / parse_error). Spark's
built-in XML reader is not used (one task per file, JVM bzip2). Paths: local or ``file://``
(the same path must be readable by every executor, e.g. a shared mount).

``write_dumps`` is the trace job's path: the same source with a ``sink`` option, where each
task also cleans and segments its pages and writes its own ``pages`` and ``sentences`` Parquet
files (``storage.PartWriter``, one file per table and byte range) into staged folders, and
hands the JVM only its counters. No page or sentence crosses into the JVM: the job then runs
at the speed of the Python row logic (BENCHMARKS.md), instead of paying for Arrow -> rows ->
Parquet in the JVM.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition
from pyspark.sql.types import StructType

from factroots import storage, tables
from factroots.text import dumps as dumpio
from factroots.text import pagetext
from factroots.text.cooccur import PartitionTracer
from factroots.trace import cooccurrence, pyworker

log = logging.getLogger(__name__)
T = TypeVar("T")
SOURCE_NAME = "factroots_wikidump"
RAW_SCHEMA = pa.schema(pagetext.RAW_FIELDS)
RAW_DDL = ("lang string, dump string, page_id bigint, rev_id bigint, title string, "
           "namespace int, is_redirect boolean, wikitext string, wikitext_len bigint, reject string")
# a task's receipt: one row of counters (uuid null), then per-fact partials when it traces
RECEIPT_DDL = "lang string, part int, counts string, " + cooccurrence.PARTIALS_DDL
RECEIPT_SCHEMA = pa.schema([("lang", pa.string()), ("part", pa.int32()), ("counts", pa.string()),
                            *cooccurrence.PARTIAL_FIELDS])
PARTIAL_NAMES = [f[0] for f in cooccurrence.PARTIAL_FIELDS]
MENTIONS_FILE = tables.stored_schema("mentions")
# Settings for reading raw pages into a DataFrame (read_dumps): whole pages per Arrow batch,
# not 10,000 (write_dumps sends no pages through Arrow and needs none).
SPARK_CONF = {"spark.sql.execution.arrow.maxRecordsPerBatch": "256"}


class DumpPartition(InputPartition):
    """One byte range of one dump (a JSON-able plan dict)."""

    def __init__(self, value: dict) -> None:
        super().__init__(value)


class WikiDumpSource(DataSource):
    """``spark.read.format("factroots_wikidump").option("plan", json).load()``."""

    @classmethod
    def name(cls) -> str:
        return SOURCE_NAME

    def schema(self) -> str:
        return RECEIPT_DDL if self.options.get("sink") else RAW_DDL

    def reader(self, schema: StructType) -> DataSourceReader:
        return WikiDumpReader(self.options)


class WikiDumpReader(DataSourceReader):
    """Reads the partitions planned on the driver."""

    def __init__(self, options: Mapping[str, str]) -> None:
        self.plan = json.loads(options.get("plan", "[]"))
        self.max_bytes = int(options.get("max_page_bytes", "2000000"))
        self.sink = json.loads(options.get("sink") or "{}")
        self.parser = options.get("parser", "fast")
        self.timeout_s = float(options.get("page_timeout_s", "10"))
        self.tracing = json.loads(options.get("tracing") or "{}")
        # trace.text_templates (None: the default list)
        self.templates = json.loads(options.get("text_templates") or "null")

    def partitions(self) -> list[InputPartition]:
        """One input partition per planned byte range."""
        return [DumpPartition(p) for p in self.plan]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        """Arrow batches of one byte range: raw pages, or (sink) the receipt of its writes."""
        return pyworker.freezing(self._batches(partition.value))

    def _batches(self, part: dict) -> Iterator[pa.RecordBatch]:
        if self.sink:
            yield self._write(part)
            return
        for rows in dumpio.read_partition(part, self.max_bytes):
            yield raw_batch(rows, part["lang"], part["dump"])

    def _write(self, part: dict) -> pa.RecordBatch:
        """Write the byte range's pages and sentences (and, when tracing, its mentions); one
        receipt row with its counters, then one row per fact it traced (partial counts)."""
        lang, dump = part["lang"], part["dump"]
        ns = pagetext.namespaces_of(dump)
        counts = pagetext.new_counts()
        name = f"part-{part['part']:05d}.parquet"
        tracer = cooccurrence.tracer_for(self.tracing, lang) if self.tracing else None
        with contextlib.ExitStack() as stack:
            pw, sw = (stack.enter_context(storage.PartWriter(
                Path(self.sink[t]) / f"lang={lang}", t, name)) for t in ("pages", "sentences"))
            mw = (stack.enter_context(storage.PartWriter(
                Path(self.tracing["mentions"]) / f"lang={lang}", "mentions", name))
                if tracer is not None and self.tracing.get("mentions") else None)
            lap = _Laps()  # CPU seconds of this task by step (the benchmark's stage split)
            for rows in lap.timed("read", dumpio.read_partition(part, self.max_bytes)):
                pages, sents = pagetext.split_pages(rows, lang, dump, counts, namespaces=ns,
                                                    parser=self.parser, max_bytes=self.max_bytes,
                                                    timeout_s=self.timeout_s,
                                                    **_templates(self.templates))
                lap("sentences")
                pw.write(pages)
                sw.write(sents)
                lap("write")
                if tracer is not None:
                    _trace(tracer, sents, mw)
                    lap("trace")
        lap("write")  # the writers' last row groups, written as they close
        if tracer is not None:
            counts["trace"] = tracer.counts
            lap.seconds.update({f"trace_{k}": v for k, v in tracer.cpu.items()})
        counts["cpu"] = lap.seconds
        return receipt_batch(lang, part["part"], counts, tracer)


class _Laps:
    """CPU seconds (``time.process_time``) since the last lap, summed by step name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.t = time.process_time()

    def __call__(self, step: str) -> None:
        t = time.process_time()
        self.seconds[step] = self.seconds.get(step, 0.0) + t - self.t
        self.t = t

    def timed(self, step: str, items: Iterator[T]) -> Iterator[T]:
        """``items``, the time spent producing each one lapped as ``step``."""
        for item in items:
            self(step)
            yield item
        self(step)


def _trace(tracer: PartitionTracer, sents: pa.RecordBatch, mw: storage.PartWriter | None) -> None:
    """Trace one batch of sentences (``sentences`` stored schema); write its mentions to ``mw``."""
    found = tracer.add(sents.column("page_id").to_pylist(), sents.column("sentence_id").to_pylist(),
                       sents.column("text").to_pylist(), keep_mentions=mw is not None)
    if mw is not None and found and found["uri"]:
        mw.write(pa.RecordBatch.from_pydict(found, schema=MENTIONS_FILE))


def receipt_batch(lang: str, part: int, counts: dict, tracer: PartitionTracer | None
                  ) -> pa.RecordBatch:
    """A task's receipt (its counters as JSON, ``uuid`` null) and its per-fact partials."""
    cols = tracer.partials() if tracer is not None else {n: [] for n in PARTIAL_NAMES}
    n = len(cols["uuid"])
    return pa.RecordBatch.from_pydict(
        {"lang": [lang] * (n + 1), "part": [part] + [None] * n,
         "counts": [json.dumps(counts)] + [None] * n,
         **{c: [None] + cols[c] for c in PARTIAL_NAMES}}, schema=RECEIPT_SCHEMA)


def _templates(templates: list | None) -> dict:
    """The ``templates`` argument of the cleaner, when the config sets one."""
    return {} if templates is None else {"templates": tuple(templates)}


def raw_batch(rows: list[dict], lang: str, dump: str) -> pa.RecordBatch:
    """An Arrow batch of RAW_SCHEMA from page dicts of one dump."""
    cols: dict[str, list] = {n: [r[n] for r in rows] for n in RAW_SCHEMA.names[2:]}
    cols = {"lang": [lang] * len(rows), "dump": [dump] * len(rows), **cols}
    return pa.RecordBatch.from_pydict(cols, schema=RAW_SCHEMA)


def _trace_cfg(cfg: Any) -> Any:
    return getattr(cfg, "trace", cfg)


def resolve(cfg: Any, uri: str) -> str:
    """A dump path resolved against the config's base folder (URIs are kept)."""
    return str(cfg.path(uri)) if hasattr(cfg, "path") and "://" not in str(uri) else str(uri)


def plan_dumps(dumps: Mapping[str, list[str]], cfg: Any) -> list[dict]:
    """The partitions of every dump of every language (raises NotADumpError/DumpNotFoundError),
    numbered in order (``part``): the name of the files a sink task writes."""
    tc = _trace_cfg(cfg)
    parts_per_file = int(getattr(tc, "partitions_per_file", 0) or 0)
    plan: list[dict] = []
    for lang in sorted(dumps):
        for uri in dumps[lang]:
            if not getattr(tc, "allow_lang_mismatch", False):  # siteinfo vs language
                dumpio.check_language(resolve(cfg, uri), lang)
            parts = dumpio.plan_dump(resolve(cfg, uri), lang, parts=parts_per_file)
            if not parts:
                log.warning("dump %s (%s) is empty: no pages", uri, lang)
            plan += parts
    return [dict(p, part=i) for i, p in enumerate(plan)]


def _load(spark: SparkSession, plan: list[dict], cfg: Any, sink: Mapping[str, str] | None,
          tracing: Mapping | None = None) -> DataFrame:
    tc = _trace_cfg(cfg)
    spark.dataSource.register(WikiDumpSource)
    return (spark.read.format(SOURCE_NAME)
            .option("plan", json.dumps(plan))
            .option("max_page_bytes", str(int(getattr(tc, "max_page_bytes", 2_000_000))))
            .option("sink", json.dumps(dict(sink)) if sink else "")
            .option("parser", str(getattr(tc, "parser", "fast")))
            .option("page_timeout_s", str(float(getattr(tc, "page_timeout_s", 10.0))))
            .option("tracing", json.dumps(dict(tracing)) if tracing else "")
            .option("text_templates", json.dumps(getattr(tc, "text_templates", None)))
            .load())


def read_dumps(spark: SparkSession, dumps: Mapping[str, list[str]], cfg: Any) -> DataFrame:
    """Raw pages of ``dumps`` (lang -> paths): RAW_SCHEMA, one row per page or reject, for
    ``build_pages``, ``page_stats`` and ``build_sentences``.

    Checks every file on the driver first, so a missing file or one that is not a dump fails
    with an error naming it (``DumpNotFoundError`` / ``NotADumpError``, both ``ShardError``).
    """
    plan = plan_dumps(dumps, cfg)
    if not plan:  # only empty files: an empty frame, not a failing scan
        return spark.createDataFrame([], RAW_DDL)
    return _load(spark, plan, cfg, None)


def write_dumps(spark: SparkSession, dumps: Mapping[str, list[str]], cfg: Any,
                pages_dir: Path, sentences_dir: Path, tracing: Mapping | None = None
                ) -> dict[str, Any]:
    """Write the ``pages`` and ``sentences`` of ``dumps`` under ``<dir>/lang=<xx>/`` from the
    tasks (one file per table and byte range, in dump order); returns their stats per table
    and language, as ``page_stats`` and ``sentence_stats`` count them.

    With ``tracing`` (``cooccurrence.plan_tracing``) the tasks also find the names in their
    sentences and pair them (and write ``mentions`` when the spec names a folder); the result
    then also holds ``trace`` (the tracers' counters per language) and ``partials`` (Arrow:
    lang, uuid, summed counts, the first ``k`` evidence ids, for every fact seen at all).
    and ``cpu`` (the tasks' CPU seconds per language and step: read, sentences, write, trace,
    trace_match, trace_pair; for benchmarks and the run report).
    The folders must be on a file system every executor writes (local mode: any folder).
    Checks every file on the driver first, as ``read_dumps`` does.
    """
    plan = plan_dumps(dumps, cfg)
    # every language has counters, zeros for a dump without pages (an empty file)
    totals: dict[str, dict] = {lg: pagetext.new_counts() for lg in dumps}
    traced: dict[str, dict[str, int]] = {}
    cpu: dict[str, dict[str, float]] = {}
    partials = pa.table({"lang": pa.array([], pa.string()),
                         **{f[0]: pa.array([], f[1]) for f in cooccurrence.PARTIAL_FIELDS}})
    if plan:
        sink = {"pages": str(pages_dir), "sentences": str(sentences_dir)}
        df = _load(spark, plan, cfg, sink, tracing)
        if tracing:
            got = cooccurrence.merge_partials(
                df, int(tracing["k"]), extra=[F.collect_list("counts").alias("counts"),
                                              F.collect_list("part").alias("parts")]).toArrow()
            is_receipt = pc.is_null(got["uuid"])
            receipts = [{"lang": r["lang"], "part": p, "counts": c}
                        for r in got.filter(is_receipt).to_pylist()
                        for p, c in zip(r["parts"], r["counts"])]
            partials = got.filter(pc.invert(is_receipt)).select(partials.column_names)
        else:
            receipts = [r.asDict() for r in df.select("lang", "part", "counts").collect()]
        if sorted(r["part"] for r in receipts) != list(range(len(plan))):
            raise RuntimeError(f"dump partitions reported {len(receipts)} times for {len(plan)}")
        for r in receipts:
            counts = json.loads(r["counts"])
            for into, key in ((traced, "trace"), (cpu, "cpu")):
                t = into.setdefault(r["lang"], {})
                for k, v in counts.pop(key, {}).items():
                    t[k] = t.get(k, 0) + v
            pagetext.add_counts(totals.setdefault(r["lang"], pagetext.new_counts()), counts)
        for d in (pages_dir, sentences_dir, (tracing or {}).get("mentions")):
            if d:  # the writers' temporary folder, empty by now
                shutil.rmtree(Path(d) / "_inflight", ignore_errors=True)
    out: dict[str, Any] = {
        "pages": {lg: pagetext.page_stats_of(c["pages"]) for lg, c in totals.items()},
        "sentences": {lg: c["sentences"] for lg, c in totals.items()}}
    if tracing:
        out["trace"], out["partials"], out["cpu"] = traced, partials, cpu
    return out
