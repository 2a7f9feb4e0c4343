"""The facts stage: mLAMA (shipped, or ``facts.mlama_dir``) -> `templates`, `candidates`, `facts`.

One language at a time: read, check, write the three tables with their stats. The runner skips
a language whose three partitions are done with the same fingerprint (input files by content,
selection, stage version); a language whose files cannot be read fails alone.
"""

from __future__ import annotations

import logging
from pathlib import Path

from factroots.config import RunConfig
from factroots.errors import ConfigError
from factroots.facts.candidates import build_candidates
from factroots.facts.facts import build_facts
from factroots.facts.sources import DirSource, ShippedSource, open_source
from factroots.facts.templates import build_templates, check_templates
from factroots.runner import Plan, Stage, Work, run_stage

log = logging.getLogger(__name__)

STAGE_VERSION = "facts-1"
TABLES = ("templates", "candidates", "facts")


_SOURCES: dict[tuple, ShippedSource | DirSource] = {}


def source_of(cfg: RunConfig) -> ShippedSource | DirSource:
    """The mLAMA source that ``cfg`` names (the shipped copy unless facts.mlama_dir is set);
    one per folder pair in a process, so its tables are parsed once."""
    f = cfg.facts
    where = (cfg.path(f.mlama_dir) if f.mlama_dir else None,
             cfg.path(f.candidates_dir) if f.candidates_dir else None)
    if where not in _SOURCES:
        _SOURCES.clear()  # one source at a time: the shipped tables are large
        _SOURCES[where] = open_source(*where)
    return _SOURCES[where]


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


def _langs(plan: Plan) -> list[str]:
    return select_langs(plan.cfg, source_of(plan.cfg))


def _settings(plan: Plan) -> dict:
    cfg = plan.cfg
    select_relations(cfg, source_of(cfg))  # a bad relation is a ConfigError before any work
    return {"exclude": sorted(cfg.facts.exclude_relations), "source": source_of(cfg).name}


def _files(plan: Plan, lang: str) -> list[Path]:
    return source_of(plan.cfg).files(lang)


def _build(work: Work) -> None:
    """Build and write the three tables of one language."""
    (lang,) = work.langs
    cfg = work.cfg
    src = source_of(cfg)
    rels = select_relations(cfg, src)
    exclude = list(cfg.facts.exclude_relations)
    raw = src.read(lang, rels)
    check = check_templates(raw, rels, exclude)
    templates, t_stats = build_templates(raw, rels, exclude, check)
    facts, f_stats = build_facts(raw, rels, exclude, check)
    candidates, c_stats = build_candidates(raw, facts, rels, exclude)
    inputs = {"source": src.name, "lang": lang}
    for name, table, stats in (("templates", templates, t_stats),
                               ("candidates", candidates, c_stats), ("facts", facts, f_stats)):
        work.write(name, table, lang, stats=stats, inputs=inputs)
    log.info("facts/%s: %d facts, %d templates, %d candidates", lang, facts.num_rows,
             templates.num_rows, candidates.num_rows)


STAGE = Stage("facts", TABLES, _build, STAGE_VERSION, settings=_settings, files=_files,
              langs=_langs, needs_plan=False)


def run(cfg: RunConfig | Plan) -> Path:
    """Write `templates`, `candidates` and `facts` for the configured languages; return facts' dir."""
    return run_stage(STAGE, cfg)
