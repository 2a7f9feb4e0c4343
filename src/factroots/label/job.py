"""The label stage: read facts, cooccurrence, predictions, signatures and overlap from ``out``;
write `status`, `easy_facts` and `fact_labels` per language.

Inputs other than `facts` may be missing (a stage not run, a language not traced, or one that
failed in this run: the runner unmarks it, so an older table is never used): the stage then
writes what it can, with null codes or `unlabelled` rows whose reason says what was missing,
and records a note in every manifest and `_stats.json`. Labels compare languages, so every
language is rebuilt when any input of any language changed (a cross-language stage).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from factroots import storage
from factroots.config import RunConfig, to_dict
from factroots.errors import MissingTableError
from factroots.label.easy_facts import build_easy_facts
from factroots.label.fact_labels import build_fact_labels, label_rules
from factroots.label.status import build_status, status_stats
from factroots.label.tokenizer import load_token_sets
from factroots.runner import Plan, Stage, Work, run_stage

log = logging.getLogger(__name__)
INPUTS = ("cooccurrence", "predictions", "signatures", "overlap", "interventions")
OUTPUTS = ("status", "easy_facts", "fact_labels")


def _optional(out: Path, table: str, langs: list[str], notes: list[str]) -> tuple:
    """(table or None, finished langs) of an optional input; a missing one becomes a note."""
    done = [lg for lg in storage.done_langs(out, table) if lg in langs]
    for lg in sorted(set(langs) - set(done)):
        notes.append(f"{table}: no finished partition for {lg}")
    if not done:
        return None, set()
    return storage.read_table(out, table, done), set(done)


def _tokenizer_candidates(cfg: RunConfig, out: Path, langs: list[str]) -> list[str]:
    cands = [str(cfg.path(cfg.label.tokenizer))] if cfg.label.tokenizer else []
    if cfg.probe.model:  # the plan's: never the lab placeholder
        local = cfg.path(cfg.probe.model)
        cands.append(str(local) if local.exists() else cfg.probe.model)
    for lg in langs:
        recorded = ((storage.read_manifest(out, "predictions", lg) or {}).get("config") or {})
        model = (recorded.get("probe") or {}).get("model")
        if model and model not in cands:
            cands.append(model)
    return cands


def _presence(out: Path, langs: list[str]) -> dict:
    """The trace's definition of "present", as recorded in the cooccurrence manifests."""
    for lg in langs:
        trace = ((storage.read_manifest(out, "cooccurrence", lg) or {}).get("config") or {})
        trace = trace.get("trace") or {}
        if trace:
            return {"window": trace.get("window"), "min_count": trace.get("min_count")}
    return {}


def _lang(t: pa.Table, lang: str) -> pa.Table:
    return t.filter(pc.equal(t.column("lang"), lang))


def _counts(t: pa.Table, column: str, prefix: str) -> dict:
    vc = t.column(column).value_counts().to_pylist() if t.num_rows else []
    return {f"{prefix}_{v['values']}": int(v["counts"]) for v in vc}


def _label_stats(t: pa.Table) -> dict:
    stats = {"in": t.num_rows, "out": t.num_rows, **_counts(t, "label", "label"),
             **_counts(t, "reason", "reason")}
    # thresholds are per fact: the median per partner language, decisive and per stratum
    for col, key in (("partner_threshold", "null_threshold"),
                     ("partner_threshold_same", "null_threshold_same"),
                     ("partner_threshold_diff", "null_threshold_diff")):
        stats[key] = _median_per_partner(t, col)
    return stats


def _median_per_partner(t: pa.Table, column: str) -> dict[str, float]:
    values: dict[str, list[float]] = {}
    for langs, thr in zip(t.column("partner_langs").to_pylist(), t.column(column).to_pylist()):
        for lg, x in zip(langs or [], thr or []):
            if x is not None and not math.isnan(x):
                values.setdefault(lg, []).append(x)
    return {lg: float(np.median(v)) for lg, v in sorted(values.items())}


def _build(work: Work) -> None:
    """Build `status`, `easy_facts` and `fact_labels` of every language of ``work`` together."""
    cfg, out, langs = work.cfg, work.out, sorted(work.langs)
    facts = work.plan.keep(storage.read_table(out, "facts", langs))
    notes: list[str] = []
    coo, traced = _optional(out, "cooccurrence", langs, notes)
    preds, probed = _optional(out, "predictions", langs, notes)
    sigs, _ = _optional(out, "signatures", langs, notes)
    overlap, _ = _optional(out, "overlap", langs, notes)
    status = build_status(facts, coo, preds, langs, protocol=cfg.label.protocol,
                          match=cfg.label.match, traced=traced, probed=probed)
    tok = load_token_sets(_tokenizer_candidates(cfg, out, langs)) if cfg.label.token_overlap \
        else None
    if tok is not None and tok.encode is None:
        notes.append(tok.note)
    easy = build_easy_facts(status, facts, naming_relations=cfg.label.naming_relations,
                            token_sets=tok.encode if tok else None)
    # the causal verdict from `interventions`, when the stage ran
    ivs, _ = _optional(out, "interventions", langs, [])  # missing: causal_reason says so
    labels = build_fact_labels(status, easy, sigs, overlap, facts=facts, predictions=preds,
                               interventions=ivs, rules=label_rules(cfg.label),
                               top_k=cfg.neurons.overlap_k,
                               use_small_groups=cfg.label.use_small_groups)
    inputs = {"notes": notes, "presence": _presence(out, langs), "langs": langs,
              "tokenizer": tok.source if tok and tok.encode else None,
              "token_overlap_rule": "off" if tok is None else ("on" if tok.encode else "skipped")}
    for note in notes:
        log.warning("label: %s", note)
    _write(work, langs, inputs, status, easy, labels)


def _langs(plan: Plan) -> list[str]:
    if not plan.langs:
        raise MissingTableError(f"no facts under {plan.out}", "run `factroots facts` first")
    return list(plan.langs)


def _settings(plan: Plan) -> dict:
    cfg = plan.cfg
    return {"label": to_dict(cfg.label), "overlap_k": cfg.neurons.overlap_k,
            "model": cfg.probe.model}


STAGE = Stage("label", OUTPUTS, _build, "label-3", settings=_settings, inputs=("facts",),
              optional=INPUTS, langs=_langs, per_lang=False, cross_lang=True,
              result="fact_labels")


def run(cfg: RunConfig | Plan) -> Path:
    """Build and write `status`, `easy_facts` and `fact_labels`; return the fact_labels folder."""
    return run_stage(STAGE, cfg)


def _write(work: Work, langs: list[str], inputs: dict, status: pa.Table, easy: pa.Table,
           labels: pa.Table) -> None:
    extra = {"notes": inputs["notes"], "token_overlap_rule": inputs["token_overlap_rule"]}
    for lg in langs:
        s, e, f = _lang(status, lg), _lang(easy, lg), _lang(labels, lg)
        e_stats = {"in": e.num_rows, "out": e.num_rows, **_counts(e, "category", "category"),
                   **_counts(e, "rule", "rule"), **extra}
        for table, t, stats in (("status", s, {**status_stats(s), **extra}),
                                ("easy_facts", e, e_stats),
                                ("fact_labels", f, {**_label_stats(f), **extra})):
            work.write(table, t, lg, stats=stats, inputs=inputs)
