"""The interventions stage (on the runner): `interventions` per source language, resumable per
relation.

Reads `signatures` (the source language L), `predictions` and `queries` (every language of the
run: the partners L'). For each of this shard's languages with finished signatures, each
relation's facts correct in L are handed to ``interventions.build_interventions`` with their
matching prompts in L and in every L' where the fact is also correct. Each finished (L,
relation) group is checkpointed (``<out>/interventions/_ckpt-<lang>-<fp>/<relation>.parquet``,
atomic, counters in the file's metadata), so a killed run resumes at the next group and
gives the same table (the controls are seeded per fact); the runner commits a finished
language atomically and skips it on rerun (its fingerprint holds every L' input).

Counted per (fact, target language) pair (``_stats.json``: ``in = out + Σ rejected_*``):
``rejected_no_signature`` (the fact has no usable signature in L: small group, nonfinite, ...),
``rejected_no_query`` (no `queries` row for the matching k), ``rejected_mask_mismatch`` (the
tokenized prompt does not hold one mask per answer id). ``facts_no_signature`` and
``facts_no_partner`` (only the positive control could run) count facts.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from factroots import storage, tables
from factroots.config import RunConfig, to_dict
from factroots.errors import ShardError
from factroots.probe import job as probe_job
from factroots.probe.interventions import Target, build_interventions, make_targets
from factroots.probe.job_neurons import write_checkpoint
from factroots.runner import Plan, Stage, Work, plan_of, run_stage

log = logging.getLogger(__name__)

REJECTS = ("no_signature", "no_query", "mask_mismatch")


def _settings(plan: Plan) -> dict:
    iv = {k: v for k, v in to_dict(plan.cfg.interventions).items()
          if k not in ("batch_size", "enabled")}
    return {"interventions": iv, "k": _k(plan.cfg), "model": plan.cfg.probe.model,
            "dtype": plan.cfg.probe.dtype}


def _k(cfg: RunConfig) -> int:
    # a signature holds neurons.top_k neurons: more cannot be ablated
    return min(cfg.interventions.k, cfg.neurons.top_k)


def _targets(plan: Plan) -> list[str]:
    """Every target language L' of the run: finished predictions and queries."""
    return [lg for lg in storage.done_langs(plan.out, "predictions")
            if (not plan.langs or lg in plan.langs) and storage.is_done(plan.out, "queries", lg)]


def _key(plan: Plan, lang: str) -> dict:
    """The targets' inputs: L's results depend on every L' predictions and queries."""
    return {lg: [(storage.read_manifest(plan.out, t, lg) or {}).get("fingerprint")
                 for t in ("predictions", "queries")] for lg in _targets(plan)}


def _build(work: Work) -> None:
    (lang,) = work.langs
    targets = _targets(work.plan)
    _run_lang(work, lang, correct_facts(work.plan, targets))


STAGE = Stage("interventions", ("interventions",), _build, "interventions-1", settings=_settings,
              inputs=("signatures",), key=_key, files=probe_job.model_files, sharded=True)


def run(cfg: RunConfig | Plan) -> Path:
    """Write `interventions` for this shard's source languages not yet done; return its folder
    (nothing is built with ``interventions.enabled: false``)."""
    plan = plan_of(cfg)
    if not plan.cfg.interventions.enabled:
        log.info("interventions: disabled (interventions.enabled: false)")
        return storage.table_dir(plan.out, "interventions")
    return run_stage(STAGE, plan)


def correct_facts(plan: Plan, langs: list[str]) -> pa.Table:
    """Facts correct under full-match in ``langs``, with answer ids and the matching prompt
    (null when `queries` has no row for the matching k)."""
    preds = storage.read_table(plan.out, "predictions", langs,
                               columns=["lang", "uuid", "relation", "protocol", "k", "pred_ids",
                                        "correct_full"])
    keep = pc.and_(pc.equal(preds["protocol"], "full"), pc.fill_null(preds["correct_full"], False))
    preds = plan.keep(preds.filter(keep)).select(["lang", "uuid", "relation", "k", "pred_ids"])
    queries = storage.read_table(plan.out, "queries", langs, columns=["lang", "uuid", "k", "prompt"])
    prompt = {(lg, u, k): p for lg, u, k, p in zip(*(queries[c].to_pylist()
                                                     for c in ("lang", "uuid", "k", "prompt")))}
    # Arrow's join does not carry list columns (pred_ids): look the prompts up instead
    keys = zip(*(preds[c].to_pylist() for c in ("lang", "uuid", "k")))
    preds = preds.append_column("prompt", pa.array([prompt.get(key) for key in keys], pa.string()))
    return preds.sort_by([("relation", "ascending"), ("uuid", "ascending"), ("lang", "ascending")])


def _signatures(plan: Plan, lang: str) -> tuple[dict[str, dict[str, np.ndarray]], str]:
    """relation -> uuid -> neuron ids of L's usable signatures, and their site."""
    sig = storage.read_table(plan.out, "signatures", [lang])
    by: dict[str, dict[str, np.ndarray]] = {}
    sites = set(sig["site"].to_pylist())
    if len(sites) > 1:
        raise ShardError(f"signatures/{lang} mixes sites {sorted(sites)}", lang=lang,
                         fix="rerun `factroots probe` with one neurons.site")
    for r in sig.select(["uuid", "relation", "small_group", "neuron_ids"]).to_pylist():
        if r["neuron_ids"] and not r["small_group"]:
            by.setdefault(r["relation"], {})[r["uuid"]] = np.asarray(r["neuron_ids"], np.int64)
    return by, (sites.pop() if sites else plan.cfg.neurons.site)


def _run_lang(work: Work, lang: str, facts: pa.Table) -> Path:
    cfg, fp = work.cfg, work.fps[lang]
    sigs, site = _signatures(work.plan, lang)
    ckpt = storage.table_dir(work.out, "interventions") / f"_ckpt-{lang}-{fp}"
    for stale in ckpt.parent.glob(f"_ckpt-{lang}-*"):  # left by a run with another config
        if stale != ckpt:
            shutil.rmtree(stale, ignore_errors=True)
    ckpt.mkdir(parents=True, exist_ok=True)
    mine = facts.filter(pc.equal(facts["lang"], lang))
    parts, stats = [], Counter()
    for relation in sorted(set(mine["relation"].to_pylist())):
        path = ckpt / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', relation)}.parquet"
        if path.exists():
            part = pq.read_table(path, page_checksum_verification=True)
            group_stats = json.loads(part.schema.metadata[b"factroots_stats"])
        else:
            rel = facts.filter(pc.equal(facts["relation"], relation))
            part, group_stats = _group(cfg, lang, site, rel, sigs.get(relation, {}))
            write_checkpoint(part, group_stats, path)
        parts.append(tables.conform("interventions", part.replace_schema_metadata(None)))
        stats.update(group_stats)
    table = pa.concat_tables(parts) if parts else tables.spec("interventions").schema.empty_table()
    stats["out"] = table.num_rows
    stats["own_flipped"] = int(pc.sum(pc.and_(
        pc.equal(table["target_lang"], lang), table["flipped"])).as_py() or 0)
    for r in REJECTS:
        stats.setdefault(f"rejected_{r}", 0)
    stats.setdefault("in", 0)
    conf = {"interventions": to_dict(cfg.interventions), "model": cfg.probe.model, "site": site}
    final = work.write("interventions", table, lang, stats=dict(stats), config=conf,
                       inputs={"signatures": lang, "predictions": "full/correct_full"})
    shutil.rmtree(ckpt, ignore_errors=True)
    log.info("interventions/%s: %d rows in %d groups", lang, table.num_rows, len(parts))
    return final


def _group(cfg: RunConfig, lang: str, site: str, rel: pa.Table,
           sigs: dict[str, np.ndarray]) -> tuple[pa.Table, Counter]:
    """One (lang, relation) group: its facts' targets, then ``build_interventions``."""
    rows = rel.to_pylist()
    own = {r["uuid"] for r in rows if r["lang"] == lang}
    stats: Counter = Counter(facts=len(own))
    todo = []
    for r in rows:
        if r["uuid"] not in own:
            continue
        stats["in"] += 1
        if r["uuid"] not in sigs:
            stats["rejected_no_signature"] += 1
        elif r["prompt"] is None:
            stats["rejected_no_query"] += 1
        else:
            todo.append((r["lang"], r["uuid"], r["prompt"], r["pred_ids"] or []))
    targets: dict[str, list[Target]] = {}
    # the model loads on the first group with work: a language without any never loads it
    lm = probe_job.loaded_model(cfg) if todo else None
    for t in make_targets(lm, todo) if todo else []:
        if t is None:
            stats["rejected_mask_mismatch"] += 1
        else:
            targets.setdefault(t.uuid, []).append(t)
    stats["facts_no_signature"] = len(own - set(sigs))
    if not targets:
        return tables.spec("interventions").schema.empty_table(), stats
    iv = cfg.interventions
    table, built = build_interventions(lm, lang, sigs, targets, k=_k(cfg), mode=iv.mode,
                                       scale=iv.scale, n_controls=iv.n_controls,
                                       n_random=iv.n_random, seed=iv.seed, null=iv.controls,
                                       batch_size=iv.batch_size, site=site)
    built.pop("facts_no_signature", None)
    stats.update(built)
    return table, stats
