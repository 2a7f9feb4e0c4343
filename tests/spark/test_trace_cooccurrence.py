"""mentions + cooccurrence on a small hand-built input with counts worked out by hand."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pytest

from factroots.config import TraceConfig
from factroots.trace.chunks import build_chunks
from factroots.trace.cooccurrence import build_cooccurrence
from factroots.trace.mentions import build_mentions
from factroots.trace.names import build_names, fact_flags

pytestmark = pytest.mark.spark

P1, P2 = 1_000_000, 2_000_000
SENTENCES = [  # (page_id, sent_idx, text)
    (1, 0, "Paris is the capital of France."),
    (1, 1, "The Parisian club Paris Saint-Germain won."),
    (2, 0, "France borders Germany."),
    (2, 1, "Berlin is in Germany, and Paris is not."),
    (3, 0, "Київ є столицею України."),
]
FACTS = [  # uuid, relation, sub_uri, sub_label, obj_uri, obj_label
    ("f1", "P1376", "Q90", "Paris", "Q142", "France"),
    ("f2", "P17", "Q483020", "Paris Saint-Germain", "Q142", "France"),
    ("f3", "P17", "Q64", "Berlin", "Q183", "Germany"),
    ("f4", "P159", "Q483020", "Paris Saint-Germain", "Q90", "Paris"),
    ("f5", "P999", "Q64", "Berlin", "Q142", "France"),
    ("f6", "P17", "Q1428", "Georgia", "Q30", "United States"),
    ("f7", "P30", "Q230", "Georgia", "Q46", "Europe"),
    ("f8", "P30", "Q5", "X", "Q46", "Europe"),
]
UK_FACTS = [("u1", "P1376", "Q1899", "Київ", "Q212", "Україна")]


def _facts(rows: list, lang: str) -> pa.Table:
    cols = list(zip(*rows))
    return pa.table({"lang": [lang] * len(rows), "relation": cols[1], "uuid": cols[0],
                     "lineid": list(range(len(rows))), "sub_uri": cols[2], "sub_label": cols[3],
                     "obj_uri": cols[4], "obj_label": cols[5], "template": ["[X] [Y]"] * len(rows)})


@pytest.fixture(scope="module")
def result(spark):
    # chunks of 8 whitespace subwords: page 1 cuts before "Parisian", page 2 before ", and"
    trace = dataclasses.replace(TraceConfig(), chunk_size=8, window="chunk", evidence_k=3)
    facts = pa.concat_tables([_facts(FACTS, "en"), _facts(UK_FACTS, "uk")])
    names, stats = build_names(facts, None, trace)
    flags = fact_flags(facts, names, trace)
    facts_f = facts.join(flags, ["lang", "uuid"])
    sents = spark.createDataFrame(
        [("uk" if p == 3 else "en", p, 0, i, p * 1_000_000 + i, t) for p, i, t in SENTENCES],
        "lang string, page_id bigint, para_idx int, sent_idx int, sentence_id bigint, text string")
    mentions = build_mentions(sents, spark.createDataFrame(names), trace)
    chunks = build_chunks(sents, None, trace.chunk_size)
    cooc = build_cooccurrence(mentions, spark.createDataFrame(facts_f), chunks, trace)
    rows = {r["uuid"]: r.asDict() for r in cooc.collect()}
    return stats, mentions.toArrow(), rows, cooc


def test_names_skip_short_names_and_count_them(result):
    stats = result[0]
    assert stats["en"]["rejected_short"] == 1  # "X"
    assert stats["en"]["in"] == stats["en"]["out"] + sum(
        v for k, v in stats["en"].items() if k.startswith("rejected_"))


def test_mentions_are_whole_words_with_source_offsets(result):
    m = result[1].to_pylist()
    texts = {p * 1_000_000 + i: t for p, i, t in SENTENCES}
    for r in m:
        assert texts[r["sentence_id"]][r["start"]:r["end"]] != ""
    paris = sorted((r["sentence_id"], r["start"]) for r in m if r["uri"] == "Q90" and r["role"] == "subject")
    assert paris == [(P1, 0), (P1 + 1, 18), (P2 + 1, 26)]  # not "Parisian"
    uk = [texts[r["sentence_id"]][r["start"]:r["end"]] for r in m if r["lang"] == "uk"]
    assert uk == ["Київ"]  # "України" is an inflected form: exact labels only


def test_cooccurrence_counts_by_hand(result):
    rows = result[2]
    assert len(rows) == len(FACTS) + len(UK_FACTS)
    got = {u: (r["cooc_sentence"], r["cooc_chunk"], r["cooc_document"]) for u, r in rows.items()}
    assert got["f1"] == (1, 1, 2)  # page 2 holds both, but in different chunks
    assert got["f2"] == (0, 0, 1)
    assert got["f3"] == (1, 1, 1)
    assert got["f4"] == (0, 0, 1)  # "Paris" inside "Paris Saint-Germain" is not disjoint
    assert got["f5"] == (0, 1, 1)
    assert got["u1"] == (0, 0, 0)
    assert (rows["f1"]["sub_mentions"], rows["f1"]["obj_mentions"]) == (3, 2)
    assert rows["f1"]["evidence"] == [P1]
    assert rows["f5"]["evidence"] == [P2]


def test_cooccurrence_flags_and_presence(result):
    rows = result[2]
    assert rows["f4"]["sub_contains_obj"] and not rows["f1"]["sub_contains_obj"]
    assert rows["f6"]["ambiguous_name"] and rows["f7"]["ambiguous_name"]
    assert not rows["f3"]["ambiguous_name"]
    assert [u for u, r in sorted(rows.items()) if r["present"]] == ["f1", "f3", "f5"]


def test_cooccurrence_has_exactly_the_declared_schema(result):
    from factroots import tables
    t = result[3].toArrow()
    tables.check("cooccurrence", tables.conform("cooccurrence", t))
    assert t.column_names == tables.spec("cooccurrence").names
