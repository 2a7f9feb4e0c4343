"""Builds ``sentences`` (one row per sentence of an article, in page order, with
``sentence_id = page_id * 1_000_000 + position``) from raw pages, by ``mapInArrow`` over the
pure row logic in ``factroots.text.pagetext`` (clean wikitext, paragraphs, sentencex)."""

from __future__ import annotations

import functools
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from factroots import tables
from factroots.text import pagetext
from factroots.text.pagetext import SENTENCE_REJECTS
from factroots.trace import pyworker

CLEAN_DDL = ("lang string, page_id bigint, para_idx int, sent_idx int, sentence_id bigint, "
             "text string, reject string")


def clean_pages(raw_df: DataFrame, cfg: Any) -> DataFrame:
    """Sentence rows of every article plus one marker row per article (``para_idx = -1``,
    ``sent_idx`` = its sentence count, ``reject`` = its reason or null). Persist it to get both ``sentences`` and
    ``sentence_stats`` from one pass."""
    tc = getattr(cfg, "trace", cfg)
    fn = functools.partial(pagetext.sentence_batches, parser=tc.parser,
                           max_bytes=int(tc.max_page_bytes), timeout_s=float(tc.page_timeout_s),
                           templates=tuple(tc.text_templates))
    articles = (raw_df.where(F.col("reject").isNull() & (F.col("namespace") == 0)
                             & ~F.col("is_redirect"))
                .select("lang", "page_id", "dump", "wikitext", "wikitext_len"))
    return articles.mapInArrow(pyworker.frozen(fn), CLEAN_DDL)


def sentences_of(clean_df: DataFrame) -> DataFrame:
    """The ``sentences`` table from the output of ``clean_pages``."""
    return clean_df.where(F.col("para_idx") >= 0).select(*tables.spec("sentences").names)


def build_sentences(raw_df: DataFrame, cfg: Any) -> DataFrame:
    """Sentences of the articles of ``raw_df`` (exactly the ``sentences`` schema)."""
    return sentences_of(clean_pages(raw_df, cfg))


def sentence_stats(clean_df: DataFrame) -> dict[str, dict]:
    """From ``clean_pages`` output, per language: ``in`` (articles), ``out`` (articles
    cleaned), ``rejected_<reason>`` for oversized / timeout / clean_error, ``sentences`` and
    ``empty_articles`` (no sentence)."""
    marker = F.col("para_idx") < 0
    reject = F.col("reject")
    aggs = [F.sum(marker.cast("long")).alias("in"),
            F.sum((marker & reject.isNull()).cast("long")).alias("out"),
            F.sum((F.col("para_idx") >= 0).cast("long")).alias("sentences"),
            F.sum((marker & reject.isNull() & (F.col("sent_idx") == 0)).cast("long"))
            .alias("empty_articles")]
    aggs += [F.sum((marker & (reject == r)).cast("long")).alias(f"rejected_{r}")
             for r in SENTENCE_REJECTS]
    out = {}
    for row in clean_df.groupBy("lang").agg(*aggs).collect():
        d = {k: int(v or 0) for k, v in row.asDict().items() if k != "lang"}
        out[row["lang"]] = d
    return out
