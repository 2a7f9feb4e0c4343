"""Builds ``pages`` (one row per page of the dumps, articles and others, with flags) from raw
pages, and the per-language page counts for ``_stats.json``."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from factroots import tables
from factroots.text.pagetext import PAGE_REJECTS, page_stats_of


def build_pages(raw_df: DataFrame) -> DataFrame:
    """Pages that were read whole (rejects left out; they are counted by ``page_stats``)."""
    spec = tables.spec("pages")
    return (raw_df.where(F.col("reject").isNull())
            .select(*[F.col(f.name).cast(_spark_type(f.type)).alias(f.name) for f in spec.schema]))


def _spark_type(t) -> str:  # type: ignore[no-untyped-def]
    return {"string": "string", "int64": "bigint", "int32": "int", "bool": "boolean"}[str(t)]


def page_stats(raw_df: DataFrame) -> dict[str, dict]:
    """Per language: ``in``/``pages_in`` (pages seen), ``out``/``pages_out`` (rows of ``pages``),
    ``rejected_<reason>`` for truncated / corrupt_stream / parse_error (so that
    ``in = out + Σ rejected_*``), and, among the pages kept, ``articles`` (namespace 0, not a
    redirect), ``redirects``, ``non_articles`` (other namespaces) and ``oversized`` (articles
    over trace.max_page_bytes: kept in ``pages``, rejected from ``sentences``)."""
    ok = F.col("reject").isNull()
    aggs = [F.count(F.lit(1)).alias("in"), F.sum(ok.cast("long")).alias("out")]
    aggs += [F.sum((F.col("reject") == r).cast("long")).alias(f"rejected_{r}") for r in PAGE_REJECTS]
    article = ok & (F.col("namespace") == 0) & ~F.col("is_redirect")
    aggs += [
        F.sum(article.cast("long")).alias("articles"),
        F.sum((ok & F.col("is_redirect")).cast("long")).alias("redirects"),
        F.sum((ok & (F.col("namespace") != 0) & ~F.col("is_redirect")).cast("long")).alias("non_articles"),
        F.sum((article & F.col("wikitext").isNull()).cast("long")).alias("oversized"),
    ]
    other = ok | F.col("reject").isin(*PAGE_REJECTS)
    aggs.append(F.sum((~other).cast("long")).alias("rejected_other"))
    out = {}
    for row in raw_df.groupBy("lang").agg(*aggs).collect():
        out[row["lang"]] = page_stats_of({k: int(v or 0) for k, v in row.asDict().items()
                                          if k != "lang"})
    return out
