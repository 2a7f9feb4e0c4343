"""The probe stage's jobs: `queries` + `predictions` per language, and the neuron tables.

``run(cfg)`` reads `facts` and `candidates` (and `templates` for facts without a template)
from ``cfg.out``, takes this shard's languages (``probe.shard`` = i/n: languages balanced by
fact count), loads the model once, and for each language not yet done builds and writes
`queries` and `predictions` atomically, with their stats. A language whose partitions exist
with the same fingerprint (model, dtype, protocols, inputs, code) is skipped, so an
interrupted run resumes where it stopped and a rerun rewrites nothing. A language that fails
with a ShardError is reported and the others go on; the error is raised at the end.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from factroots import storage
from factroots.config import RunConfig, to_dict
from factroots.errors import ConfigError, ShardError
from factroots.probe import models, predictions, queries
from factroots.probe.decode import MaskPredictor

log = logging.getLogger(__name__)

METHOD = "full_match_v1"  # bump when the protocol's results change


def parse_shard(shard: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n), checked."""
    try:
        i, n = (int(x) for x in shard.split("/"))
    except ValueError:
        raise ConfigError(f"probe.shard {shard!r} is not i/n", "use e.g. 0/4") from None
    if not 0 <= i < n:
        raise ConfigError(f"probe.shard {shard!r}: need 0 <= i < n", "use e.g. 0/4")
    return i, n


def shard_langs(sizes: dict[str, int], shard: str) -> list[str]:
    """This shard's languages: largest first to the least loaded shard (ties: lower index)."""
    i, n = parse_shard(shard)
    loads = [0] * n
    mine = []
    for lang in sorted(sizes, key=lambda x: (-sizes[x], x)):
        j = min(range(n), key=lambda s: (loads[s], s))
        loads[j] += sizes[lang]
        if j == i:
            mine.append(lang)
    return sorted(mine)


def _langs(cfg: RunConfig) -> dict[str, int]:
    have = storage.done_langs(cfg.out, "facts")
    langs = cfg.langs or have
    missing = [lg for lg in langs if lg not in have]
    if missing:
        raise ConfigError(f"no facts for language(s) {missing} under {cfg.out}",
                          "run `factroots facts` for them or drop them from langs")
    return {lg: storage.read_manifest(cfg.out, "facts", lg).get("rows", 0) for lg in langs}


def _model_id(name: str) -> dict:
    p = Path(name).expanduser()
    if not p.is_dir():
        return {"model": name}
    files = sorted(f for f in p.iterdir() if f.suffix in (".json", ".safetensors", ".bin"))
    return {"model": str(p.resolve()),
            "files": [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]}


def _fingerprint(cfg: RunConfig, lang: str) -> str:
    p = cfg.probe
    inputs = [(t, (storage.read_manifest(cfg.out, t, lang) or {}).get("fingerprint"))
              for t in ("facts", "candidates", "templates")]
    return storage.fingerprint(METHOD, _model_id(p.model), p.dtype, sorted(p.protocols),
                               p.all_k, p.partial, p.max_facts_per_lang, sorted(cfg.relations),
                               inputs)


def _inputs(cfg: RunConfig, lang: str) -> tuple[pa.Table, pa.Table, dict]:
    facts = storage.read_table(cfg.out, "facts", [lang])
    stats = {}
    if cfg.relations:
        facts = facts.filter(pc.is_in(facts["relation"], pa.array(cfg.relations, pa.string())))
    if facts.num_rows and facts["template"].null_count:
        temps = storage.read_table(cfg.out, "templates", [lang]).to_pylist()
        by_rel = {r["relation"]: r["template"] for r in temps}
        facts = facts.set_column(facts.schema.get_field_index("template"), "template", pa.array(
            [t if t is not None else by_rel.get(r, "")
             for t, r in zip(facts["template"].to_pylist(), facts["relation"].to_pylist())]))
    cap = cfg.probe.max_facts_per_lang
    stats["rejected_max_facts"] = max(0, facts.num_rows - cap) if cap else 0
    limited = facts.slice(0, cap) if cap else facts
    try:
        cands = storage.read_table(cfg.out, "candidates", [lang])
    except FileNotFoundError:
        cands = pa.table({"relation": pa.array([], pa.string()),
                          "candidate": pa.array([], pa.string())})
    return limited, cands, {**stats, "facts_in": facts.num_rows}


def _probe_lang(cfg: RunConfig, lm: models.LoadedModel, lang: str, fp: str) -> None:
    from tqdm.auto import tqdm

    facts, cands, extra = _inputs(cfg, lang)
    maxlens = queries.relation_maxlens(lm.tokenizer, cands)
    predictor = MaskPredictor(lm, cfg.probe.batch_size)
    items, stats = queries.prepare(facts, maxlens, lm.tokenizer, lm.family.mask_token,
                                   predictor.fits)
    stats["in"] = extra.pop("facts_in")
    stats.update(extra)
    conf = to_dict(cfg)
    q = queries.build_queries(lang, items, lm.family.mask_token)
    storage.write_table(cfg.out, "queries", q, lang, config=conf, fp=fp,
                        stats={**stats, "rows": q.num_rows}, inputs={"model": lm.name})
    by_rel: dict[str, list[str]] = {}
    for r, c in zip(cands["relation"].to_pylist(), cands["candidate"].to_pylist()):
        by_rel.setdefault(r, []).append(c)
    with tqdm(total=0, desc=f"probe {lang}", unit="prompt", disable=None, leave=False) as bar:
        t, run = predictions.build_predictions(
            lm, lang, items, by_rel, cfg.probe.protocols, batch_size=cfg.probe.batch_size,
            all_k=cfg.probe.all_k, partial=cfg.probe.partial, progress=bar)
    stats = {**stats, **run, "rows": t.num_rows, "protocols": len(cfg.probe.protocols)}
    storage.write_table(cfg.out, "predictions", t, lang, config=conf, fp=fp, stats=stats,
                        inputs={"model": lm.name, "device": str(lm.device), "dtype": str(lm.dtype)})
    log.info("probe %s: %d facts, %s", lang, len(items),
             {k: v for k, v in run.items() if k.startswith("correct_")})


def run(cfg: RunConfig) -> Path:
    """Build `queries` and `predictions` for this shard's languages; return the predictions dir."""
    if cfg.probe.model == "lab":
        raise ConfigError("probe.model is 'lab' but the lab model was not resolved",
                          "run through `factroots probe` (it resolves the lab model) or set "
                          "probe.model to a model path")
    mine = shard_langs(_langs(cfg), cfg.probe.shard)
    todo = [(lg, _fingerprint(cfg, lg)) for lg in mine]
    todo = [(lg, fp) for lg, fp in todo if not (storage.is_done(cfg.out, "queries", lg, fp)
                                                and storage.is_done(cfg.out, "predictions", lg, fp))]
    log.info("probe: shard %s has %d languages, %d to do", cfg.probe.shard, len(mine), len(todo))
    failed: dict[str, str] = {}
    if todo:
        p = cfg.probe
        lm = models.load_model(p.model, p.device, p.dtype, p.trust_remote_code)
        for lang, fp in todo:
            try:
                _probe_lang(cfg, lm, lang, fp)
            except ShardError as exc:
                log.error("probe %s failed: %s", lang, exc)
                failed[lang] = str(exc)
    if failed:
        raise ShardError(f"probe failed for {sorted(failed)}: {failed}", ",".join(sorted(failed)),
                         "see the log; the other languages are done")
    return storage.table_dir(cfg.out, "predictions")


def run_neurons(cfg: RunConfig) -> Path:
    """Build `signatures` and `overlap` (delegates to ``probe.job_neurons``)."""
    from factroots.probe import job_neurons

    return job_neurons.run(cfg)


def run_interventions(cfg: RunConfig) -> Path:
    """Build `interventions` (delegates to ``probe.job_interventions``); skipped when disabled."""
    from factroots.probe import job_interventions

    if not cfg.interventions.enabled:
        log.info("interventions: disabled (interventions.enabled: false)")
        return storage.table_dir(cfg.out, "interventions")
    return job_interventions.run(cfg)
