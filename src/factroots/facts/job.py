"""The facts stage: mLAMA (shipped, or ``facts.mlama_dir``) -> `templates`, `candidates`, `facts`.

One language at a time: read, check, write the three tables with their stats. A language whose
three partitions are done with the same fingerprint (input digest, selection, stage version) is
skipped; a language whose files cannot be read fails alone (``ShardError`` at the end).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path

from factroots import storage
from factroots.config import RunConfig, to_dict
from factroots.errors import ConfigError, ShardError
from factroots.facts.candidates import build_candidates
from factroots.facts.facts import build_facts
from factroots.facts.sources import DirSource, ShippedSource, open_source
from factroots.facts.templates import build_templates, check_templates

log = logging.getLogger(__name__)

STAGE_VERSION = "facts-1"
TABLES = ("templates", "candidates", "facts")


def source_of(cfg: RunConfig) -> ShippedSource | DirSource:
    """The mLAMA source that ``cfg`` names (the shipped copy unless facts.mlama_dir is set)."""
    f = cfg.facts
    return open_source(cfg.path(f.mlama_dir) if f.mlama_dir else None,
                       cfg.path(f.candidates_dir) if f.candidates_dir else None)


def select_langs(cfg: RunConfig, src: ShippedSource | DirSource) -> list[str]:
    """``cfg.langs`` checked against the source (all of its languages when empty)."""
    have = src.langs()
    unknown = [lg for lg in cfg.langs if lg not in have]
    if unknown:
        raise ConfigError(f"unknown language{'s' * (len(unknown) > 1)} {', '.join(unknown)} "
                          f"in {src.name}", f"use some of: {' '.join(have)}")
    return list(dict.fromkeys(cfg.langs)) or have


def select_relations(cfg: RunConfig, src: ShippedSource | DirSource) -> list[str] | None:
    """``cfg.relations`` checked against the source (None = all relations)."""
    if not cfg.relations:
        return None
    have = src.relations()
    excluded = [r for r in cfg.relations if r in cfg.facts.exclude_relations]
    if excluded:
        raise ConfigError(f"relation {excluded[0]} is excluded by facts.exclude_relations",
                          "drop it from --relations or from facts.exclude_relations")
    unknown = [r for r in cfg.relations if r not in have]
    if unknown:
        only_tpl = set(src.template_relations())
        what = ("has a template but no triples" if unknown[0] in only_tpl else "is unknown")
        raise ConfigError(f"relation {unknown[0]} {what} in {src.name}",
                          f"use some of: {' '.join(sorted(have))}")
    return list(dict.fromkeys(cfg.relations))


def run(cfg: RunConfig) -> Path:
    """Write `templates`, `candidates` and `facts` for the configured languages; return facts' dir."""
    out = cfg.path(cfg.out)
    src = source_of(cfg)
    langs, rels = select_langs(cfg, src), select_relations(cfg, src)
    failed: dict[str, str] = {}
    totals: Counter = Counter()
    t0 = time.perf_counter()
    for lang in langs:
        fp = storage.fingerprint(STAGE_VERSION, src.digest(lang), rels,
                                 sorted(cfg.facts.exclude_relations), lang)
        if all(storage.is_done(out, t, lang, fp) for t in TABLES):
            log.info("facts/%s: done before, skipped", lang)
            totals["skipped"] += 1
            continue
        try:
            totals.update(_run_lang(cfg, out, src, lang, rels, fp))
        except ShardError as exc:
            log.error("facts/%s failed: %s", lang, exc)
            failed[lang] = exc.message
    rejected = {k: v for k, v in totals.items() if k.startswith("rejected_") and v}
    log.info("facts: %d languages (%d skipped as done) in %.1f s: %d of %d triples kept%s",
             len(langs), totals["skipped"], time.perf_counter() - t0, totals["out"],
             totals["in"], f", {rejected}" if rejected else "")
    if failed:
        raise ShardError(f"facts failed for {len(failed)} of {len(langs)} languages: "
                         + "; ".join(failed.values()), ",".join(failed),
                         "fix those inputs and rerun (finished languages are skipped)")
    return storage.table_dir(out, "facts")


def _run_lang(cfg: RunConfig, out: Path, src: ShippedSource | DirSource, lang: str,
              rels: list[str] | None, fp: str) -> dict:
    """Build and write the three tables of one language; return the facts' stats."""
    exclude = list(cfg.facts.exclude_relations)
    raw = src.read(lang, rels)
    check = check_templates(raw, rels, exclude)
    templates, t_stats = build_templates(raw, rels, exclude, check)
    facts, f_stats = build_facts(raw, rels, exclude, check)
    candidates, c_stats = build_candidates(raw, facts, rels, exclude)
    meta = {"config": to_dict(cfg), "fp": fp, "inputs": {"source": src.name, "lang": lang}}
    for name, table, stats in (("templates", templates, t_stats),
                               ("candidates", candidates, c_stats), ("facts", facts, f_stats)):
        storage.write_table(out, name, table, lang, stats=stats, **meta)
    log.info("facts/%s: %d facts, %d templates, %d candidates", lang, facts.num_rows,
             templates.num_rows, candidates.num_rows)
    return f_stats
