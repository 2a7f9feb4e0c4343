"""The interventions stage's loop: `interventions` per source language, resumable per relation.

Reads `signatures` (the source language L), `predictions` and `queries` (every language of the
run: the partners L'). For each of this shard's languages with finished signatures, each
relation's facts correct in L are handed to ``interventions.build_interventions`` with their
matching prompts in L and in every L' where the fact is also correct. Each finished (L,
relation) group is checkpointed (``<out>/interventions/_ckpt-<lang>-<fp>/<relation>.parquet``,
atomic, counters in the file's metadata), so a killed run resumes at the next group and
gives the same table (the controls are seeded per fact); a finished language is written
atomically and skipped on rerun.

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
from factroots.errors import ConfigError, MissingTableError, ShardError
from factroots.probe.interventions import Target, build_interventions, make_targets
from factroots.probe.job import shard_langs
from factroots.probe.job_neurons import (  # the neuron stage's checkpoint writer and loader
    LazyModel,
    _write_atomic,
)

log = logging.getLogger(__name__)

REJECTS = ("no_signature", "no_query", "mask_mismatch")


def run(cfg: RunConfig) -> Path:
    """Write `interventions` for every source language not yet done; return its folder."""
    if cfg.probe.model == "lab":
        raise ConfigError("probe.model is 'lab' but the lab model was not resolved",
                          "run through `factroots intervene` (it resolves the lab model) or set "
                          "probe.model to a model path")
    out, lm, failed = Path(cfg.out), LazyModel(cfg), []
    langs, targets = _langs(cfg)
    facts: pa.Table | None = None
    for lang in langs:
        fp = _fingerprint(cfg, lang, targets)
        if storage.is_done(out, "interventions", lang, fp):
            log.info("interventions/%s is done, skipped", lang)
            continue
        facts = facts if facts is not None else correct_facts(cfg, targets)
        try:
            _run_lang(cfg, lm, lang, fp, facts)
        except ShardError as exc:
            log.error("interventions/%s failed: %s", lang, exc)
            failed.append(lang)
    if failed:
        raise ShardError(f"interventions failed for {failed}", lang=",".join(failed),
                         fix="see the log; rerun to retry only those languages")
    return storage.table_dir(out, "interventions")


def _langs(cfg: RunConfig) -> tuple[list[str], list[str]]:
    """(this shard's source languages with signatures, every target language with predictions)."""
    sig = storage.done_langs(cfg.out, "signatures")
    if not sig:
        raise MissingTableError(f"table 'signatures' has no finished partition under {cfg.out}",
                                "run `factroots probe` (with neurons) first")
    want = set(cfg.langs) if cfg.langs else None
    sig = [lg for lg in sig if want is None or lg in want]
    targets = [lg for lg in storage.done_langs(cfg.out, "predictions")
               if (want is None or lg in want) and storage.is_done(cfg.out, "queries", lg)]
    sizes = {lg: int((storage.read_manifest(cfg.out, "signatures", lg) or {}).get("rows") or 0)
             for lg in sig}
    return shard_langs(sizes, cfg.probe.shard), targets


def _fingerprint(cfg: RunConfig, lang: str, targets: list[str]) -> str:
    iv = {k: v for k, v in to_dict(cfg.interventions).items() if k not in ("batch_size", "enabled")}
    sig = (storage.read_manifest(cfg.out, "signatures", lang) or {}).get("fingerprint")
    ins = {lg: [(storage.read_manifest(cfg.out, t, lg) or {}).get("fingerprint")
                for t in ("predictions", "queries")] for lg in targets}
    return storage.fingerprint("interventions_v1", iv, cfg.probe.model, cfg.probe.dtype, sig,
                               ins, sorted(cfg.relations))


def correct_facts(cfg: RunConfig, langs: list[str]) -> pa.Table:
    """Facts correct under full-match in ``langs``, with answer ids and the matching prompt
    (null when `queries` has no row for the matching k)."""
    preds = storage.read_table(cfg.out, "predictions", langs,
                               columns=["lang", "uuid", "relation", "protocol", "k", "pred_ids",
                                        "correct_full"])
    keep = pc.and_(pc.equal(preds["protocol"], "full"), pc.fill_null(preds["correct_full"], False))
    if cfg.relations:
        keep = pc.and_(keep, pc.is_in(preds["relation"], pa.array(list(cfg.relations))))
    preds = preds.filter(keep).select(["lang", "uuid", "relation", "k", "pred_ids"])
    queries = storage.read_table(cfg.out, "queries", langs, columns=["lang", "uuid", "k", "prompt"])
    prompt = {(lg, u, k): p for lg, u, k, p in zip(*(queries[c].to_pylist()
                                                     for c in ("lang", "uuid", "k", "prompt")))}
    # Arrow's join does not carry list columns (pred_ids): look the prompts up instead
    keys = zip(*(preds[c].to_pylist() for c in ("lang", "uuid", "k")))
    preds = preds.append_column("prompt", pa.array([prompt.get(key) for key in keys], pa.string()))
    return preds.sort_by([("relation", "ascending"), ("uuid", "ascending"), ("lang", "ascending")])


def _signatures(cfg: RunConfig, lang: str) -> tuple[dict[str, dict[str, np.ndarray]], str]:
    """relation -> uuid -> neuron ids of L's usable signatures, and their site."""
    sig = storage.read_table(cfg.out, "signatures", [lang])
    by: dict[str, dict[str, np.ndarray]] = {}
    sites = set(sig["site"].to_pylist())
    if len(sites) > 1:
        raise ShardError(f"signatures/{lang} mixes sites {sorted(sites)}", lang=lang,
                         fix="rerun `factroots probe` with one neurons.site")
    for r in sig.select(["uuid", "relation", "small_group", "neuron_ids"]).to_pylist():
        if r["neuron_ids"] and not r["small_group"]:
            by.setdefault(r["relation"], {})[r["uuid"]] = np.asarray(r["neuron_ids"], np.int64)
    return by, (sites.pop() if sites else cfg.neurons.site)


def _run_lang(cfg: RunConfig, lm: LazyModel, lang: str, fp: str, facts: pa.Table) -> Path:
    sigs, site = _signatures(cfg, lang)
    ckpt = storage.table_dir(cfg.out, "interventions") / f"_ckpt-{lang}-{fp}"
    for stale in ckpt.parent.glob(f"_ckpt-{lang}-*"):  # left by a run with another config
        if stale != ckpt:
            shutil.rmtree(stale, ignore_errors=True)
    ckpt.mkdir(parents=True, exist_ok=True)
    mine = facts.filter(pc.equal(facts["lang"], lang))
    parts, stats = [], Counter()
    for relation in sorted(set(mine["relation"].to_pylist())):
        path = ckpt / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', relation)}.parquet"
        if path.exists():
            part = pq.read_table(path)
            group_stats = json.loads(part.schema.metadata[b"factroots_stats"])
        else:
            rel = facts.filter(pc.equal(facts["relation"], relation))
            part, group_stats = _group(cfg, lm, lang, site, rel, sigs.get(relation, {}))
            _write_atomic(part, group_stats, path)
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
    final = storage.write_table(cfg.out, "interventions", table, lang, fp=fp, stats=dict(stats),
                                config=conf, inputs={"signatures": lang,
                                                     "predictions": "full/correct_full"})
    shutil.rmtree(ckpt, ignore_errors=True)
    log.info("interventions/%s: %d rows in %d groups", lang, table.num_rows, len(parts))
    return final


def _group(cfg: RunConfig, lm: LazyModel, lang: str, site: str, rel: pa.Table,
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
    for t in make_targets(lm.get(), todo) if todo else []:
        if t is None:
            stats["rejected_mask_mismatch"] += 1
        else:
            targets.setdefault(t.uuid, []).append(t)
    stats["facts_no_signature"] = len(own - set(sigs))
    if not targets:
        return tables.spec("interventions").schema.empty_table(), stats
    iv = cfg.interventions
    table, built = build_interventions(lm.get(), lang, sigs, targets,
                                        k=min(iv.k, cfg.neurons.top_k), mode=iv.mode,
                                       scale=iv.scale, n_controls=iv.n_controls,
                                       n_random=iv.n_random, seed=iv.seed, null=iv.controls,
                                       batch_size=iv.batch_size, site=site)
    built.pop("facts_no_signature", None)
    stats.update(built)
    return table, stats
