"""Builds the chunk position of every sentence (lang, sentence_id, chunk0, cuts) from
``sentences``: the paper's 512-subword chunks of each page (``factroots.text.chunking``).

An intermediate of ``cooccurrence``, not a stored table. The pages are kept whole and in order
within a partition, so a page's subword count runs on across Arrow batches.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame

from factroots.text.chunking import cached_tokenizer, sentence_chunks, tokenizer_key
from factroots.trace import pyworker

CHUNKS_DDL = "lang string, sentence_id bigint, chunk0 int, cuts array<int>, n_subwords int"
_SCHEMA = pa.schema([("lang", pa.string()), ("sentence_id", pa.int64()), ("chunk0", pa.int32()),
                     ("cuts", pa.list_(pa.int32())), ("n_subwords", pa.int32())])


def chunk_batches(batches: Iterator[pa.RecordBatch], key: str, tok_json: Any, size: int
                  ) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: page-ordered sentences -> their chunk positions."""
    state: list = [None, 0]
    tokenizer = cached_tokenizer(key, lambda: tok_json.value)
    for b in batches:
        langs, pages = b.column("lang").to_pylist(), b.column("page_id").to_pylist()
        keys = list(zip(langs, pages))
        rows = list(sentence_chunks(keys, b.column("text").to_pylist(), tokenizer, size, state))
        yield pa.RecordBatch.from_arrays(
            [b.column("lang"), b.column("sentence_id"),
             pa.array([r[0] for r in rows], pa.int32()),
             pa.array([r[1] for r in rows], pa.list_(pa.int32())),
             pa.array([r[2] for r in rows], pa.int32())], schema=_SCHEMA)


def build_chunks(sentences_df: DataFrame, tokenizer_json: str | None, size: int) -> DataFrame:
    """Per sentence: the chunk of its first subword and the character offsets of chunk cuts."""
    key = tokenizer_key(tokenizer_json)
    bc = sentences_df.sparkSession.sparkContext.broadcast(tokenizer_json)
    fn = functools.partial(chunk_batches, key=key, tok_json=bc, size=size)
    return (sentences_df.select("lang", "page_id", "sentence_id", "text")
            .repartition("lang", "page_id")
            .sortWithinPartitions("lang", "page_id", "sentence_id")
            .mapInArrow(pyworker.frozen(fn), CHUNKS_DDL))
