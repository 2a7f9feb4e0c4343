"""Build ``signatures`` (per language) and ``overlap`` from ``predictions`` and ``queries``.

For every fact correct under full-match (``predictions``: protocol ``full``, ``correct_full``)
the prompt that matched (``predictions.k`` joined to ``queries`` on lang, uuid, k) is run once
through the model; ``capture`` keeps the FFN activations (or layer outputs) of the chosen layers
at the mask positions, averaged over the masks. Facts are grouped by (lang, relation), and each
group is ranked by PROBELESS (``signatures.build_signatures``); only one group's activations
are ever in memory. Each finished group is checkpointed (``<out>/signatures/_ckpt-<lang>-<fp>/
<relation>.parquet``, written atomically, its counters in the file's metadata), so a killed run
resumes at the next group; a finished language is written atomically and skipped on rerun.
Then ``overlap`` is built over every finished language.

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
from factroots.errors import ConfigError, MissingTableError, ModelError, ShardError
from factroots.probe.capture import capture_batch
from factroots.probe.job import shard_langs
from factroots.probe.models import LoadedModel, load_model
from factroots.probe.overlap import build_overlap
from factroots.probe.signatures import build_signatures

log = logging.getLogger(__name__)

REJECTS = ("no_query", "mask_mismatch", "nonfinite")


def run(cfg: RunConfig) -> Path:
    """Write ``signatures`` for every language not yet done, then ``overlap``; return its dir."""
    if cfg.probe.model == "lab":
        raise ConfigError("probe.model is 'lab' but the lab model was not resolved",
                          "run through `factroots probe` (it resolves the lab model) or set "
                          "probe.model to a model path")
    out = Path(cfg.out)
    lm = LazyModel(cfg)
    failed: list[str] = []
    for lang in _langs(cfg):
        fp = _fingerprint(cfg, lang)
        if storage.is_done(out, "signatures", lang, fp):
            log.info("signatures/%s is done, skipped", lang)
            continue
        try:
            _run_lang(cfg, lm, lang, fp)
        except ShardError as exc:
            log.error("signatures/%s failed: %s", lang, exc)
            failed.append(lang)
    write_overlap(cfg)
    if failed:
        raise ShardError(f"signatures failed for {failed}", lang=",".join(failed),
                         fix="see the log; rerun to retry only those languages")
    return storage.table_dir(out, "signatures")


class LazyModel:
    """Loads the model on first use, so languages without correct facts never load it."""

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg, self._lm = cfg, None

    def get(self) -> LoadedModel:
        """The loaded model (loading it the first time)."""
        if self._lm is None:
            p = self.cfg.probe
            self._lm = load_model(p.model, p.device, p.dtype, p.trust_remote_code)
        return self._lm


def _langs(cfg: RunConfig) -> list[str]:
    """This shard's languages with finished predictions (balanced like `factroots probe`)."""
    have = storage.done_langs(cfg.out, "predictions")
    if not have:
        raise MissingTableError(f"table 'predictions' has no finished partition under {cfg.out}",
                                "run `factroots probe` first")
    langs = sorted(cfg.langs) if cfg.langs else have
    missing = [lg for lg in langs if lg not in have]
    if missing:
        log.warning("no predictions for %s: skipped", missing)
    sizes = {lg: int((storage.read_manifest(cfg.out, "predictions", lg) or {}).get("rows") or 0)
             for lg in langs if lg in have}
    return shard_langs(sizes, cfg.probe.shard)


def _fingerprint(cfg: RunConfig, lang: str) -> str:
    neurons = {k: v for k, v in to_dict(cfg.neurons).items() if k != "batch_size"}
    ins = [(storage.read_manifest(cfg.out, t, lang) or {}).get("fingerprint")
           for t in ("predictions", "queries")]
    return storage.fingerprint("signatures", neurons, cfg.probe.model, cfg.probe.dtype,
                               sorted(cfg.relations), ins)


def _inputs(cfg: RunConfig, lang: str) -> tuple[pa.Table, Counter]:
    """Correct facts of a language with their matching prompt, sorted by (relation, uuid)."""
    preds = storage.read_table(cfg.out, "predictions", [lang])
    keep = pc.and_(pc.equal(preds["protocol"], "full"), pc.fill_null(preds["correct_full"], False))
    if cfg.relations:
        keep = pc.and_(keep, pc.is_in(preds["relation"], pa.array(list(cfg.relations))))
    preds = preds.filter(keep).select(["uuid", "relation", "k"])
    if not storage.is_done(cfg.out, "queries", lang):
        raise ShardError(f"no finished queries for {lang}", lang=lang, fix="run `factroots probe`")
    queries = storage.read_table(cfg.out, "queries", [lang], columns=["uuid", "k", "prompt"])
    facts = preds.join(queries, keys=["uuid", "k"], join_type="left outer")
    stats = Counter({"in": facts.num_rows})
    no_query = pc.is_null(facts["prompt"])
    stats["rejected_no_query"] = int(pc.sum(no_query).as_py() or 0)
    facts = facts.filter(pc.invert(no_query)).sort_by([("relation", "ascending"),
                                                       ("uuid", "ascending")])
    return facts, stats


def _run_lang(cfg: RunConfig, lm: LazyModel, lang: str, fp: str) -> Path:
    facts, stats = _inputs(cfg, lang)
    ckpt = storage.table_dir(cfg.out, "signatures") / f"_ckpt-{lang}-{fp}"
    for stale in ckpt.parent.glob(f"_ckpt-{lang}-*"):  # left by a run with another config
        if stale != ckpt:
            shutil.rmtree(stale, ignore_errors=True)
    ckpt.mkdir(parents=True, exist_ok=True)
    parts = []
    for relation in sorted(set(facts["relation"].to_pylist())):
        path = ckpt / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', relation)}.parquet"
        if path.exists():
            part = pq.read_table(path)
            group_stats = json.loads(part.schema.metadata[b"factroots_stats"])
        else:
            group = facts.filter(pc.equal(facts["relation"], relation))
            part, group_stats = _group(cfg, lm.get(), lang, relation, group)
            _write_atomic(part, group_stats, path)
        parts.append(tables.conform("signatures", part.replace_schema_metadata(None)))
        stats.update(group_stats)
    table = pa.concat_tables(parts) if parts else tables.spec("signatures").schema.empty_table()
    stats["out"] = table.num_rows
    stats["small_group_facts"] = int(pc.sum(table["small_group"]).as_py() or 0)
    for r in REJECTS:
        stats.setdefault(f"rejected_{r}", 0)
    final = storage.write_table(cfg.out, "signatures", table, lang, fp=fp, stats=dict(stats),
                                config=_manifest_config(cfg),
                                inputs={"predictions": "full/correct_full", "queries": "k"})
    shutil.rmtree(ckpt, ignore_errors=True)
    log.info("signatures/%s: %d facts in %d groups", lang, table.num_rows, len(parts))
    return final


def _write_atomic(part: pa.Table, group_stats: Counter, path: Path) -> None:
    meta = {b"factroots_stats": json.dumps(dict(group_stats)).encode()}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    pq.write_table(part.replace_schema_metadata(meta), tmp)
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


def write_overlap(cfg: RunConfig) -> list[Path]:
    """Build ``overlap`` over every finished language of ``signatures`` (skipped when current)."""
    langs = storage.done_langs(cfg.out, "signatures")
    if not langs:
        return []
    sig_fps = [(storage.read_manifest(cfg.out, "signatures", lg) or {}).get("fingerprint")
               for lg in langs]
    fp = storage.fingerprint("overlap", cfg.neurons.overlap_k, langs, sig_fps)
    if all(storage.is_done(cfg.out, "overlap", lg, fp) for lg in langs):
        return [storage.partition_dir(cfg.out, "overlap", lg) for lg in langs]
    sig = storage.read_table(cfg.out, "signatures", langs)
    ov = build_overlap(sig, cfg.neurons.overlap_k, langs)
    paths = []
    for lg in langs:
        part = ov.filter(pc.equal(ov["lang"], lg))
        paths.append(storage.write_table(cfg.out, "overlap", part, lg, fp=fp,
                                         config={"overlap_k": cfg.neurons.overlap_k, "langs": langs},
                                         stats={"pairs": part.num_rows}))
    return paths
