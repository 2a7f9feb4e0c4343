"""Raw pages from Wikipedia dumps: a Spark 4 Python Data Source over byte-range partitions.

The driver plans each dump (``factroots.text.dumps.plan_dump``: a multistream dump is cut at
stream offsets of its index into ranges of about ``32 MB`` compressed, or
``trace.partitions_per_file`` ranges; a dump without index is one partition); each task
decompresses and parses its range with bounded memory and yields Arrow batches of raw pages,
including counted rejects (``reject`` = truncated / corrupt_stream / parse_error). Spark's
built-in XML reader is not used (one task per file, JVM bzip2). Paths: local or ``file://``
(the same path must be readable by every executor, e.g. a shared mount).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition
from pyspark.sql.types import StructType

from factroots.text import dumps as dumpio
from factroots.text import pagetext

log = logging.getLogger(__name__)
SOURCE_NAME = "factroots_wikidump"
RAW_SCHEMA = pa.schema(pagetext.RAW_FIELDS)
RAW_DDL = ("lang string, dump string, page_id bigint, rev_id bigint, title string, "
           "namespace int, is_redirect boolean, wikitext string, wikitext_len bigint, reject string")
FUSED_DDL = RAW_DDL + (", para_idx int, sent_idx int, sentence_id bigint, text string, "
                       "text_reject string")
# Settings a job should use for the page stages: whole pages per Arrow batch, not 10,000.
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
        return FUSED_DDL if self.options.get("with_sentences") == "true" else RAW_DDL

    def reader(self, schema: StructType) -> DataSourceReader:
        return WikiDumpReader(self.options)


class WikiDumpReader(DataSourceReader):
    """Reads the partitions planned on the driver."""

    def __init__(self, options: Mapping[str, str]) -> None:
        self.plan = json.loads(options.get("plan", "[]"))
        self.max_bytes = int(options.get("max_page_bytes", "2000000"))
        self.fused = options.get("with_sentences") == "true"
        self.parser = options.get("parser", "fast")
        self.timeout_s = float(options.get("page_timeout_s", "10"))

    def partitions(self) -> list[InputPartition]:
        """One input partition per planned byte range."""
        return [DumpPartition(p) for p in self.plan]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        """Arrow batches of one byte range: raw pages, or pages and sentences (fused)."""
        part = partition.value
        ns = dumpio.dump_info(part["dump"])["siteinfo"]["namespaces"] if self.fused else None
        for rows in dumpio.read_partition(part, self.max_bytes):
            if self.fused:
                yield pagetext.fused_batch(rows, part["lang"], part["dump"], namespaces=ns,
                                           parser=self.parser, max_bytes=self.max_bytes,
                                           timeout_s=self.timeout_s)
            else:
                yield raw_batch(rows, part["lang"], part["dump"])


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
    """The partitions of every dump of every language (raises NotADumpError/DumpNotFoundError)."""
    tc = _trace_cfg(cfg)
    parts_per_file = int(getattr(tc, "partitions_per_file", 0) or 0)
    plan: list[dict] = []
    for lang in sorted(dumps):
        for uri in dumps[lang]:
            parts = dumpio.plan_dump(resolve(cfg, uri), lang, parts=parts_per_file)
            if not parts:
                log.warning("dump %s (%s) is empty: no pages", uri, lang)
            plan += parts
    return plan


def read_dumps(spark: SparkSession, dumps: Mapping[str, list[str]], cfg: Any, *,
               with_sentences: bool = False) -> DataFrame:
    """Raw pages of ``dumps`` (lang -> paths): RAW_SCHEMA, one row per page or reject.

    ``with_sentences=True`` cleans and segments in the same Python pass (no wikitext goes
    through the JVM; about twice the throughput): FUSED_DDL, one page row per page
    (``para_idx = -1``, wikitext null, ``text_reject`` = its cleaning reject) followed by its
    sentence rows. ``build_pages``, ``page_stats``, ``build_sentences`` and ``sentence_stats``
    accept either frame.

    Checks every file on the driver first, so a missing file or one that is not a dump fails
    with an error naming it (``DumpNotFoundError`` / ``NotADumpError``, both ``ShardError``).
    """
    tc = _trace_cfg(cfg)
    plan = plan_dumps(dumps, cfg)
    if not plan:  # only empty files: an empty frame, not a failing scan
        return spark.createDataFrame([], FUSED_DDL if with_sentences else RAW_DDL)
    spark.dataSource.register(WikiDumpSource)
    return (spark.read.format(SOURCE_NAME)
            .option("plan", json.dumps(plan))
            .option("max_page_bytes", str(int(getattr(tc, "max_page_bytes", 2_000_000))))
            .option("with_sentences", "true" if with_sentences else "false")
            .option("parser", str(getattr(tc, "parser", "fast")))
            .option("page_timeout_s", str(float(getattr(tc, "page_timeout_s", 10.0))))
            .load())
