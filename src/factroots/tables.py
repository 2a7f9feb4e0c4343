"""Every table of factroots, declared once: columns, Arrow types, key, partitioning, grain.

These declarations are the contracts between stages. Builders end by selecting exactly
``SPEC.names`` (``conform``), and ``storage`` refuses to write a table that does not match.
Every table is partitioned by ``lang`` under ``<out>/<table>/lang=<xx>/``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from factroots.errors import SchemaError


@dataclass(frozen=True)
class TableSpec:
    """One table: its name, schema, key columns, partition columns and grain."""

    name: str
    schema: pa.Schema
    key: tuple[str, ...]
    grain: str
    partition: tuple[str, ...] = ("lang",)
    stage: str = ""

    @property
    def names(self) -> list[str]:
        """Column names in declared order."""
        return list(self.schema.names)


def _spec(name: str, stage: str, grain: str, key: tuple[str, ...], *fields: tuple) -> TableSpec:
    return TableSpec(name, pa.schema([pa.field(n, t) for n, t in fields]), key, grain, stage=stage)


S, I8, I16, I32, I64 = pa.string(), pa.int8(), pa.int16(), pa.int32(), pa.int64()
F16, F32, F64, B = pa.float16(), pa.float32(), pa.float64(), pa.bool_()

# ---- facts ---------------------------------------------------------------------------------
FACTS = _spec(
    "facts", "facts", "one row per (lang, uuid): an mLAMA triple in one language",
    ("lang", "uuid"),
    ("lang", S), ("relation", S), ("uuid", S), ("lineid", I32), ("sub_uri", S),
    ("sub_label", S), ("obj_uri", S), ("obj_label", S), ("template", S),
)
TEMPLATES = _spec(
    "templates", "facts", "one row per (lang, relation): the prompt template",
    ("lang", "relation"),
    ("lang", S), ("relation", S), ("template", S),
)
CANDIDATES = _spec(
    "candidates", "facts", "one row per (lang, relation, candidate): a candidate object label",
    ("lang", "relation", "candidate"),
    ("lang", S), ("relation", S), ("candidate", S), ("source", S),
)

# ---- trace ---------------------------------------------------------------------------------
PAGES = _spec(
    "pages", "trace", "one row per (lang, page_id): a page of the dump, articles and others",
    ("lang", "page_id"),
    ("lang", S), ("page_id", I64), ("rev_id", I64), ("title", S), ("namespace", I32),
    ("is_redirect", B), ("wikitext_len", I64), ("dump", S),
)
SENTENCES = _spec(
    "sentences", "trace",
    "one row per (lang, sentence_id): a sentence of an article, in page order; "
    "sentence_id = page_id * 1_000_000 + the sentence's position in its page",
    ("lang", "sentence_id"),
    ("lang", S), ("page_id", I64), ("para_idx", I32), ("sent_idx", I32),
    ("sentence_id", I64), ("text", S),
)
MENTIONS = _spec(
    "mentions", "trace", "one row per (lang, sentence_id, uri, role, start): a name found in text",
    ("lang", "sentence_id", "uri", "role", "start"),
    ("lang", S), ("sentence_id", I64), ("page_id", I64), ("uri", S), ("role", S),
    ("start", I32), ("end", I32), ("strictness", S),
)
COOCCURRENCE = _spec(
    "cooccurrence", "trace",
    "one row per (lang, uuid) of facts: where subject and object occur together",
    ("lang", "uuid"),
    ("lang", S), ("uuid", S), ("relation", S), ("sub_uri", S), ("obj_uri", S),
    ("sub_mentions", I64), ("obj_mentions", I64),
    ("cooc_sentence", I64), ("cooc_chunk", I64), ("cooc_document", I64),
    ("evidence", pa.list_(I64)), ("ambiguous_name", B), ("sub_contains_obj", B),
    ("present", B),
)

# ---- probe ---------------------------------------------------------------------------------
QUERIES = _spec(
    "queries", "probe", "one row per (lang, uuid, k): a prompt with k masks in the object slot",
    ("lang", "uuid", "k"),
    ("lang", S), ("uuid", S), ("relation", S), ("k", I32), ("prompt", S),
)
PREDICTIONS = _spec(
    "predictions", "probe",
    "one row per (lang, uuid, protocol): the model's answer; k is the matching prompt's mask "
    "count (the largest that full-matches) or, when none does, the gold length",
    ("lang", "uuid", "protocol"),
    ("lang", S), ("uuid", S), ("relation", S), ("protocol", S), ("k", I32),
    ("pred_ids", pa.list_(I32)), ("pred_text", S), ("gold_ids", pa.list_(I32)),
    ("correct_full", B), ("correct_partial", B), ("correct_exact", B), ("score", F32),
)
SIGNATURES = _spec(
    "signatures", "probe",
    "one row per correct (lang, uuid): the top neurons of the fact by PROBELESS within its "
    "(lang, relation) group",
    ("lang", "uuid"),
    ("lang", S), ("uuid", S), ("relation", S), ("site", S), ("group_size", I32),
    ("small_group", B), ("neuron_ids", pa.list_(I32)), ("scores", pa.list_(F16)),
)
OVERLAP = _spec(
    "overlap", "probe",
    "one row per (lang, other_lang): mean top-k Jaccard over facts correct in both",
    ("lang", "other_lang"),
    ("lang", S), ("other_lang", S), ("mean_jaccard", F64), ("n_facts", I64), ("top_k", I32),
)

INTERVENTIONS = _spec(
    "interventions", "probe",
    "one row per (lang, uuid, target_lang, k, mode): the fact's top-k neurons found in `lang` "
    "switched off (or scaled) at the masks of its prompt in `target_lang`; dlogp is the mean "
    "change of the gold ids' log-probability, with same-relation and random-unit controls",
    ("lang", "uuid", "target_lang", "k", "mode"),
    ("lang", S), ("uuid", S), ("target_lang", S), ("k", I32), ("mode", S), ("dlogp", F64),
    ("flipped", B), ("ctrl_relation_mean", F64), ("ctrl_relation_sd", F64),
    ("ctrl_random_mean", F64), ("pvalue", F64), ("n_controls", I32),
)

# ---- label ---------------------------------------------------------------------------------
STATUS = _spec(
    "status", "label",
    "one row per (lang, uuid) over all uuids of the run: -1 not in L, 0 absent&wrong, "
    "1 present&wrong, 2 absent&correct, 3 present&correct; null (with `missing` saying why) "
    "when the trace or the probe did not cover it",
    ("lang", "uuid"),
    ("lang", S), ("uuid", S), ("relation", S), ("status", I8), ("present", B), ("correct", B),
    ("missing", S),
)
EASY_FACTS = _spec(
    "easy_facts", "label", "one row per (lang, uuid) with status 2: the first easy-fact rule",
    ("lang", "uuid"),
    ("lang", S), ("uuid", S), ("relation", S), ("category", S), ("rule", S),
)
FACT_LABELS = _spec(
    "fact_labels", "label",
    "one row per correct (lang, uuid): transferred / shared / independent / cue_explained / "
    "explained_within_language / prior_explained / unlabelled, with the reason, the transfer "
    "controls and the per-partner evidence (aligned lists: J, the decisive threshold and raw "
    "p-value of label.null_rule, the same- and different-object strata's thresholds, p-values "
    "and sizes, the corrected p-value, the independence bound); docs/labels.md",
    ("lang", "uuid"),
    ("lang", S), ("uuid", S), ("relation", S), ("status", I8), ("label", S), ("reason", S),
    ("source_langs", pa.list_(S)), ("partner_langs", pa.list_(S)),
    ("partner_jaccard", pa.list_(F64)), ("partner_threshold", pa.list_(F64)),
    ("partner_pvalue", pa.list_(F64)), ("shared_with", pa.list_(S)),
    ("partner_threshold_same", pa.list_(F64)), ("partner_threshold_diff", pa.list_(F64)),
    ("partner_pvalue_same", pa.list_(F64)), ("partner_pvalue_diff", pa.list_(F64)),
    ("partner_n_same", pa.list_(I32)), ("partner_n_diff", pa.list_(I32)),
    ("partner_same_pooled", pa.list_(B)), ("partner_diff_pooled", pa.list_(B)),
    ("partner_pvalue_adj", pa.list_(F64)),
    ("partner_lower", pa.list_(F64)), ("partner_identical", pa.list_(B)),
    ("sibling_in_lang", B), ("prior_rate", F64),
    ("causal_shared_with", pa.list_(S)), ("causal", S), ("causal_reason", S),
)

# ---- lab -----------------------------------------------------------------------------------
PLANTED_FACTS = _spec(
    "planted_facts", "lab",
    "one row per (lang, uuid) of the lab's facts: how the fact was built (group: transfer, "
    "control, shared, independent_same_obj, independent_diff_obj, bridge, anchor or background; "
    "name_form: identical, transliterated, unrelated or real; source_lang of a transfer fact; "
    "n_planted sentences in this language; parallel pairs), what the corpus holds (in_real_text / "
    "in_real_sentence: subject and object in one page / sentence of the real sample; in_lab_text: "
    "in the whole lab corpus), its easy-fact category under the lab tokenizer, whether its names "
    "are written alike (shared_names) or share a subword piece (shared_pieces) in two lab "
    "languages, and the lab's own evaluation: correct under the full model (seed 0; in every seed "
    "of the replicate), under the counterfactual model, and truth_transferred (a transfer fact, "
    "in a language other than its source, correct under the full model in every seed and wrong "
    "under the counterfactual one); detector_neurons: the neuron ids (layer × width + unit) a "
    "detector fact (groups detector_shared, detector_independent) was written into",
    ("lang", "uuid"),
    ("lang", S), ("uuid", S), ("relation", S), ("group", S), ("name_form", S),
    ("source_lang", S), ("n_planted", I32), ("parallel", B), ("in_real_text", B),
    ("in_real_sentence", B), ("in_lab_text", B), ("easy_category", S), ("shared_names", B),
    ("shared_pieces", B), ("lab_correct", B), ("lab_correct_all_seeds", B),
    ("lab_correct_counterfactual", B), ("truth_transferred", B),
    ("detector_neurons", pa.list_(I32)),
)
LAB_CHECK = _spec(
    "lab_check", "lab",
    "one row per (lang, metric): the trace, the probe and the labels compared with the lab's "
    "truth, value = numerator / denominator (NaN when the denominator is 0) with its 95 % "
    "Wilson interval; lang `all` pools the lab languages",
    ("lang", "metric"),
    ("lang", S), ("metric", S), ("value", F64), ("numerator", I64), ("denominator", I64),
    ("ci_low", F64), ("ci_high", F64),
)

TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        FACTS, TEMPLATES, CANDIDATES, PAGES, SENTENCES, MENTIONS, COOCCURRENCE, QUERIES,
        PREDICTIONS, SIGNATURES, OVERLAP, INTERVENTIONS, STATUS, EASY_FACTS, FACT_LABELS, PLANTED_FACTS,
        LAB_CHECK,
    )
}


def spec(name: str) -> TableSpec:
    """Return the declaration of table ``name``."""
    try:
        return TABLES[name]
    except KeyError:
        raise SchemaError(f"unknown table {name!r}", f"use one of {sorted(TABLES)}") from None


def conform(name: str, table: pa.Table) -> pa.Table:
    """Return ``table`` with exactly the declared columns, in order, cast to the declared types."""
    s = spec(name)
    missing = [c for c in s.names if c not in table.column_names]
    if missing:
        raise SchemaError(f"table {name!r} lacks columns {missing}", "fix its builder")
    try:
        return table.select(s.names).cast(s.schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SchemaError(f"table {name!r} does not cast to its schema: {exc}", "fix its builder") from exc


def check(name: str, table: pa.Table) -> None:
    """Raise ``SchemaError`` unless ``table`` has exactly the declared schema."""
    s = spec(name)
    if not table.schema.remove_metadata().equals(s.schema):
        raise SchemaError(
            f"table {name!r} has schema {table.schema.remove_metadata()} "
            f"but tables.py declares {s.schema}",
            "end the builder with tables.conform",
        )


def stored_schema(name: str) -> pa.Schema:
    """The schema of a table's Parquet files: the declared one without the partition columns
    (they live in the folder names, as Spark writes them)."""
    s = spec(name)
    return pa.schema([f for f in s.schema if f.name not in s.partition])


def check_stored(name: str, schema: pa.Schema) -> None:
    """Raise ``SchemaError`` unless a stored file's columns (partition columns excluded, as
    Spark writes them) have the declared names and types, in order; nullability is free."""
    want = [(f.name, f.type) for f in stored_schema(name)]
    have = [(f.name, f.type) for f in schema]
    if have != want:
        raise SchemaError(f"stored table {name!r} has columns {have} but tables.py declares {want}",
                          "select exactly tables.spec(name).names with the declared types")
