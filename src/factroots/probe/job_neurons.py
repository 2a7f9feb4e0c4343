"""Build ``signatures`` (per language) and ``overlap`` from ``predictions`` and ``queries``.

For every fact correct under full-match (``predictions``: protocol ``full``, ``correct_full``)
the prompt that matched (``predictions.k`` joined to ``queries`` on lang, uuid, k) is run once
through the model; ``capture`` keeps the FFN activations (or layer outputs) of the chosen layers
at the mask positions, averaged over the masks. Facts are grouped by (lang, relation), and each
group is ranked by PROBELESS (``signatures.build_signatures``); only one group's activations
are ever in memory. Each finished group is checkpointed (``<out>/signatures/_ckpt-<lang>-<fp>/
<relation>.parquet``, written atomically, its counters in the file's metadata), so a killed run
resumes at the next group; a finished language is written atomically and skipped on rerun
(the runner's skip-if-done). ``overlap`` is its own stage, built once over every language's
signatures: after all shards (``factroots overlap``; ``factroots run`` and an unsharded
``factroots probe`` build it themselves).

Counted rejects (``_stats.json``): ``rejected_no_query`` (no ``queries`` row for the matching
k), ``rejected_mask_mismatch`` (the tokenized prompt does not hold exactly k mask tokens),
``rejected_nonfinite`` (NaN/inf activations, e.g. float16 overflow).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from factroots import storage, tables
from factroots.config import RunConfig, to_dict
from factroots.errors import ModelError
from factroots.probe import job as probe_job
from factroots.probe.capture import capture_batch
from factroots.probe.models import LoadedModel
from factroots.probe.overlap import build_overlap
from factroots.probe.signatures import build_signatures
from factroots.runner import Plan, Stage, Work, parse_shard, plan_of, run_stage, session

log = logging.getLogger(__name__)

REJECTS = ("no_query", "mask_mismatch", "nonfinite")


def _settings(plan: Plan) -> dict:
    neurons = {k: v for k, v in to_dict(plan.cfg.neurons).items() if k != "batch_size"}
    return {"neurons": neurons, "model": plan.cfg.probe.model, "dtype": plan.cfg.probe.dtype}


def _build(work: Work) -> None:
    (lang,) = work.langs
    _run_lang(work, lang)


STAGE = Stage("neurons", ("signatures",), _build, "signatures-1", settings=_settings,
              inputs=("predictions", "queries"), files=probe_job.model_files, sharded=True)


def _overlap_langs(plan: Plan) -> list[str]:
    done = storage.done_langs(plan.out, "signatures")
    return [lg for lg in done if not plan.langs or lg in plan.langs]


def _build_overlap(work: Work) -> None:
    langs = sorted(work.langs)
    sig = storage.read_table(work.out, "signatures", langs)
    k = work.cfg.neurons.overlap_k
    ov = build_overlap(sig, k, langs)
    for lg in langs:
        part = ov.filter(pc.equal(ov["lang"], lg))
        work.write("overlap", part, lg, config={"overlap_k": k, "langs": langs},
                   stats={"pairs": part.num_rows})


OVERLAP = Stage("overlap", ("overlap",), _build_overlap, "overlap-1",
                settings=lambda plan: plan.cfg.neurons.overlap_k, optional=("signatures",),
                langs=_overlap_langs, per_lang=False, cross_lang=True)


def run(cfg: RunConfig | Plan) -> Path:
    """Write ``signatures`` for this shard's languages not yet done; then, when the run has one
    shard, ``overlap``; return the signatures' dir."""
    plan = plan_of(cfg)
    with session(plan.out):  # one report: a failed language does not stop the overlap
        path = run_stage(STAGE, plan)
        if parse_shard(plan.cfg.probe.shard)[1] == 1:
            run_overlap(plan)
    return path


def run_signatures(cfg: RunConfig | Plan) -> Path:
    """Write ``signatures`` for this shard's languages not yet done; return its dir."""
    return run_stage(STAGE, cfg)


def run_overlap(cfg: RunConfig | Plan) -> Path:
    """Build ``overlap`` over every language with finished signatures (after all shards)."""
    return run_stage(OVERLAP, cfg)


def _inputs(plan: Plan, lang: str) -> tuple[pa.Table, Counter]:
    """Correct facts of a language with their matching prompt, sorted by (relation, uuid)."""
    preds = plan.keep(storage.read_table(plan.out, "predictions", [lang]))
    keep = pc.and_(pc.equal(preds["protocol"], "full"), pc.fill_null(preds["correct_full"], False))
    preds = preds.filter(keep).select(["uuid", "relation", "k"])
    queries = storage.read_table(plan.out, "queries", [lang], columns=["uuid", "k", "prompt"])
    facts = preds.join(queries, keys=["uuid", "k"], join_type="left outer")
    stats = Counter({"in": facts.num_rows})
    no_query = pc.is_null(facts["prompt"])
    stats["rejected_no_query"] = int(pc.sum(no_query).as_py() or 0)
    facts = facts.filter(pc.invert(no_query)).sort_by([("relation", "ascending"),
                                                       ("uuid", "ascending")])
    return facts, stats


def _run_lang(work: Work, lang: str) -> Path:
    cfg, fp = work.cfg, work.fps[lang]
    facts, stats = _inputs(work.plan, lang)
    ckpt = storage.table_dir(work.out, "signatures") / f"_ckpt-{lang}-{fp}"
    for stale in ckpt.parent.glob(f"_ckpt-{lang}-*"):  # left by a run with another config
        if stale != ckpt:
            shutil.rmtree(stale, ignore_errors=True)
    ckpt.mkdir(parents=True, exist_ok=True)
    parts = []
    for relation in sorted(set(facts["relation"].to_pylist())):
        path = ckpt / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', relation)}.parquet"
        if path.exists():
            part = pq.read_table(path, page_checksum_verification=True)
            group_stats = json.loads(part.schema.metadata[b"factroots_stats"])
        else:
            group = facts.filter(pc.equal(facts["relation"], relation))
            # the model loads on the first group: languages without correct facts never load it
            part, group_stats = _group(cfg, probe_job.loaded_model(cfg), lang, relation, group)
            write_checkpoint(part, group_stats, path)
        parts.append(tables.conform("signatures", part.replace_schema_metadata(None)))
        stats.update(group_stats)
    table = pa.concat_tables(parts) if parts else tables.spec("signatures").schema.empty_table()
    stats["out"] = table.num_rows
    stats["small_group_facts"] = int(pc.sum(table["small_group"]).as_py() or 0)
    for r in REJECTS:
        stats.setdefault(f"rejected_{r}", 0)
    final = work.write("signatures", table, lang, stats=dict(stats), config=_manifest_config(cfg),
                       inputs={"predictions": "full/correct_full", "queries": "k"})
    shutil.rmtree(ckpt, ignore_errors=True)
    log.info("signatures/%s: %d facts in %d groups", lang, table.num_rows, len(parts))
    return final


def write_checkpoint(part: pa.Table, group_stats: Counter, path: Path) -> None:
    """Write one finished group's rows atomically, its counters in the file's metadata."""
    meta = {b"factroots_stats": json.dumps(dict(group_stats)).encode()}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    pq.write_table(part.replace_schema_metadata(meta), tmp, write_page_checksum=True)
    os.replace(tmp, path)


def _manifest_config(cfg: RunConfig) -> dict:
    """The neurons config plus what decodes a neuron id: the layers and units per layer."""
    from transformers import AutoConfig

    mc = AutoConfig.from_pretrained(cfg.probe.model, trust_remote_code=cfg.probe.trust_remote_code)
    width = mc.intermediate_size if cfg.neurons.site == "ffn" else mc.hidden_size
    layers = list(cfg.neurons.layers) or list(range(mc.num_hidden_layers))
    return {"neurons": to_dict(cfg.neurons), "model": cfg.probe.model,
            "model_type": mc.model_type, "layers": layers, "width": int(width),
            "neuron_id": "layer * width + unit"}


def _group(cfg: RunConfig, lm: LoadedModel, lang: str, relation: str,
           group: pa.Table) -> tuple[pa.Table, Counter]:
    """Capture and rank one (lang, relation) group; returns its rows and reject counters."""
    stats: Counter = Counter()
    ids = lm.tokenizer(group["prompt"].to_pylist(), add_special_tokens=True)["input_ids"]
    ks = group["k"].to_pylist()
    ok = np.array([sum(t == lm.family.mask_id for t in seq) == k for seq, k in zip(ids, ks)],
                  dtype=bool)
    stats["rejected_mask_mismatch"] = int((~ok).sum())
    fam, kind = lm.family, cfg.neurons.site
    layers = list(cfg.neurons.layers) or list(range(fam.num_layers))
    width = fam.site_width(kind)
    acts = capture_acts(lm, fam.sites(kind, layers), [s for s, g in zip(ids, ok) if g],
                        cfg.neurons.batch_size or cfg.probe.batch_size, len(layers) * width)
    finite = np.isfinite(acts).all(axis=1)
    stats["rejected_nonfinite"] = int((~finite).sum())
    uuids = np.asarray(group["uuid"].to_pylist(), dtype=object)[ok][finite]
    table = build_signatures(lang, relation, list(uuids), acts[finite], site=kind, layers=layers,
                             width=width, top_k=cfg.neurons.top_k, min_group=cfg.neurons.min_group)
    return table, stats


def capture_acts(lm: LoadedModel, sites: list[str], seqs: list[list[int]], batch_size: int,
                 dim: int) -> np.ndarray:
    """Activations ``[len(seqs), dim]`` (float32), in length-bucketed batches; OOM halves them."""
    out = np.empty((len(seqs), dim), np.float32)
    order = sorted(range(len(seqs)), key=lambda i: (len(seqs[i]), i))
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    i, bs = 0, max(1, batch_size)
    while i < len(order):
        idx = order[i:i + bs]
        width = max(len(seqs[j]) for j in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        att = torch.zeros((len(idx), width), dtype=torch.long)
        for row, j in enumerate(idx):
            ids[row, :len(seqs[j])] = torch.tensor(seqs[j])
            att[row, :len(seqs[j])] = 1
        try:
            acts = capture_batch(lm.model, sites, ids.to(lm.device), att.to(lm.device),
                                 lm.family.mask_id, stop=True)
        except torch.cuda.OutOfMemoryError as exc:
            if bs == 1:
                raise ModelError("out of GPU memory with one prompt per batch",
                                 "use a smaller model or dtype bfloat16") from exc
            bs //= 2
            torch.cuda.empty_cache()
            log.warning("GPU out of memory: capture batch size halved to %d", bs)
            continue
        out[idx] = acts.numpy()
        i += len(idx)
    return out
