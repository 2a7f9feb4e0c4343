"""Build the `templates` table from the raw templates of one language (``templates.jsonl``).

A template is usable when it holds exactly one ``[X]`` (the subject) and one ``[Y]`` (the
object). As in the paper, the relations of a language are those named in its templates file;
relations in ``facts.exclude_relations`` (``date_of_birth``) are dropped, and a second template
for the same relation is rejected (the first one wins).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa

from factroots import tables
from factroots.facts.sources import RawLang

log = logging.getLogger(__name__)


@dataclass
class TemplateCheck:
    """The templates of one language after checking: usable ones and why others were rejected."""

    usable: dict[str, str] = field(default_factory=dict)    # relation -> template
    rejected: dict[str, str] = field(default_factory=dict)  # relation -> reason
    stats: Counter = field(default_factory=Counter)


def template_problem(template: str) -> str | None:
    """Why ``template`` cannot be used as a prompt, or None when it can."""
    nx, ny = template.count("[X]"), template.count("[Y]")
    if nx == 1 and ny == 1:
        return None
    return f"has {nx} [X] and {ny} [Y]; a template needs exactly one of each"


def check_templates(raw: RawLang, relations: Iterable[str] | None,
                    exclude: Iterable[str]) -> TemplateCheck:
    """Sort the raw templates of ``raw`` (of ``relations``, or all) into usable and rejected."""
    wanted, excluded = (None if relations is None else set(relations)), set(exclude)
    out = TemplateCheck()
    out.stats.update({f"rejected_{k}": v for k, v in raw.template_rejects.items()})
    out.stats["in"] = sum(raw.template_rejects.values())
    for rel, template in zip(raw.templates["relation"].to_pylist(),
                             raw.templates["template"].to_pylist()):
        if wanted is not None and rel not in wanted:
            continue
        out.stats["in"] += 1
        if rel in excluded:
            reason, why = "excluded_relation", "listed in facts.exclude_relations"
        elif rel in out.usable or rel in out.rejected:
            reason, why = "duplicate_relation", "a second template for this relation"
        else:
            problem = template_problem(template)
            if problem is None:
                out.usable[rel] = template
                continue
            reason, why = "bad_template", problem
            out.rejected[rel] = reason
        out.stats[f"rejected_{reason}"] += 1
        if reason != "excluded_relation":
            log.warning("%s/%s template %r rejected: %s", raw.lang, rel, template, why)
    out.stats["out"] = len(out.usable)
    return out


def build_templates(raw: RawLang, relations: Iterable[str] | None = None,
                    exclude: Iterable[str] = ("date_of_birth",),
                    check: TemplateCheck | None = None) -> tuple[pa.Table, dict]:
    """Return the `templates` table: one row per (lang, relation); and its stats."""
    check = check or check_templates(raw, relations, exclude)
    rels = sorted(check.usable)
    t = pa.table({"lang": [raw.lang] * len(rels), "relation": rels,
                  "template": [check.usable[r] for r in rels]})
    return tables.conform("templates", t), dict(check.stats)
