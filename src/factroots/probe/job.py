"""The probe stage: `queries` + `predictions` per language, from `facts`, `candidates`, `templates`.

The runner (``factroots.runner``) takes this shard's languages (``probe.shard`` = i/n, balanced
by fact count), skips languages done with the same fingerprint (model files by content, dtype,
protocols, inputs, code), and commits each language's two tables atomically. The model is
loaded once, on the first language that needs it, and checked (tokenizer and embeddings agree)
before any query is written.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa

from factroots import storage
from factroots.config import RunConfig
from factroots.errors import ConfigError, ModelError
from factroots.probe import models, predictions, queries
from factroots.probe.decode import MaskPredictor
from factroots.runner import Plan, Stage, Work, run_stage

log = logging.getLogger(__name__)

METHOD = "full_match_v1"  # bump when the protocol's results change
_MODEL: dict[tuple, models.LoadedModel] = {}


def model_files(plan: Plan, lang: str = "") -> list[Path]:
    """The files of a local model folder (fingerprinted by content); none for a hub id."""
    p = plan.cfg.path(plan.cfg.probe.model)
    if not p.is_dir():
        return []
    return sorted(f for f in p.iterdir() if f.suffix in (".json", ".safetensors", ".bin", ".txt",
                                                         ".model"))


def loaded_model(cfg: RunConfig) -> models.LoadedModel:
    """The probed model, loaded once per process and checked; ModelError when unusable."""
    p = cfg.probe
    key = (p.model, p.device, p.dtype, p.trust_remote_code)
    if key not in _MODEL:
        _MODEL.clear()
        try:
            lm = models.load_model(p.model, p.device, p.dtype, p.trust_remote_code)
        except (ModelError, ConfigError):
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. a truncated safetensors file
            raise ModelError(f"cannot load model {p.model}: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}",
                             "check the model folder (a truncated or partial copy?) or "
                             "probe.model") from None
        check_vocab(lm)
        _MODEL[key] = lm
    return _MODEL[key]


def check_vocab(lm: models.LoadedModel) -> None:
    """The tokenizer's ids must all have an embedding row (ModelError before any query)."""
    rows = int(lm.model.get_input_embeddings().weight.shape[0])
    n = len(lm.tokenizer)
    if n > rows:
        raise ModelError(f"model {lm.name}: the tokenizer has {n} tokens but the model's "
                         f"embeddings only {rows} rows (tokenizer and weights do not match)",
                         "use the tokenizer saved with these weights")


def _inputs(plan: Plan, lang: str) -> tuple[pa.Table, pa.Table, dict]:
    cfg = plan.cfg
    facts = plan.keep(storage.read_table(plan.out, "facts", [lang]))
    stats = {}
    if facts.num_rows and facts["template"].null_count:
        temps = storage.read_table(plan.out, "templates", [lang]).to_pylist()
        by_rel = {r["relation"]: r["template"] for r in temps}
        facts = facts.set_column(facts.schema.get_field_index("template"), "template", pa.array(
            [t if t is not None else by_rel.get(r, "")
             for t, r in zip(facts["template"].to_pylist(), facts["relation"].to_pylist())]))
    cap = cfg.probe.max_facts_per_lang
    stats["rejected_max_facts"] = max(0, facts.num_rows - cap) if cap else 0
    limited = facts.slice(0, cap) if cap else facts
    try:
        cands = storage.read_table(plan.out, "candidates", [lang])
    except FileNotFoundError:
        cands = pa.table({"relation": pa.array([], pa.string()),
                          "candidate": pa.array([], pa.string())})
    return limited, cands, {**stats, "facts_in": facts.num_rows}


def _probe_lang(work: Work, lm: models.LoadedModel, lang: str) -> None:
    from tqdm.auto import tqdm

    cfg = work.cfg
    facts, cands, extra = _inputs(work.plan, lang)
    maxlens = queries.relation_maxlens(lm.tokenizer, cands)
    predictor = MaskPredictor(lm, cfg.probe.batch_size)
    items, stats = queries.prepare(facts, maxlens, lm.tokenizer, lm.family.mask_token,
                                   predictor.fits)
    stats["in"] = extra.pop("facts_in")
    stats.update(extra)
    q = queries.build_queries(lang, items, lm.family.mask_token)
    work.write("queries", q, lang, stats={**stats, "rows": q.num_rows}, inputs={"model": lm.name})
    by_rel: dict[str, list[str]] = {}
    for r, c in zip(cands["relation"].to_pylist(), cands["candidate"].to_pylist()):
        by_rel.setdefault(r, []).append(c)
    with tqdm(total=0, desc=f"probe {lang}", unit="prompt", disable=None, leave=False) as bar:
        t, run = predictions.build_predictions(
            lm, lang, items, by_rel, cfg.probe.protocols, batch_size=cfg.probe.batch_size,
            all_k=cfg.probe.all_k, partial=cfg.probe.partial, progress=bar)
    stats = {**stats, **run, "rows": t.num_rows, "protocols": len(cfg.probe.protocols)}
    work.write("predictions", t, lang, stats=stats,
               inputs={"model": lm.name, "device": str(lm.device), "dtype": str(lm.dtype)})
    log.info("probe %s: %d facts, %s", lang, len(items),
             {k: v for k, v in run.items() if k.startswith("correct_")})


def _settings(plan: Plan) -> dict:
    p = plan.cfg.probe
    return {"method": METHOD, "model": p.model, "dtype": p.dtype,
            "protocols": sorted(p.protocols), "all_k": p.all_k, "partial": p.partial,
            "max_facts_per_lang": p.max_facts_per_lang}


def _build(work: Work) -> None:
    (lang,) = work.langs
    _probe_lang(work, loaded_model(work.cfg), lang)


STAGE = Stage("probe", ("queries", "predictions"), _build, METHOD, settings=_settings,
              inputs=("facts",), optional=("candidates", "templates"), files=model_files,
              sharded=True)


def run(cfg: RunConfig | Plan) -> Path:
    """Build `queries` and `predictions` for this shard's languages; return the predictions dir."""
    return run_stage(STAGE, cfg)
