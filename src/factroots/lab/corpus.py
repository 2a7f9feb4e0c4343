"""Build the lab corpus: the bundled real Wikipedia samples plus the planted facts, as dumps.

For each lab language the corpus is the bundled sample's pages, unchanged, followed by one
synthetic article per planted (fact, language) of the fictional world that states the fact
``repeats`` times, cycling through the relation's templates (the mLAMA probe template and its
paraphrases, ``lab.world``). It is written as a real multistream dump
(``factroots.text.multistream``), so the trace reads it like any Wikipedia dump.

Presence is computed here with the trace's own pieces (``text.wikitext``/``text.segment`` to
clean and split, ``text.match`` to find names, spans disjoint, per page): what the real text
holds before planting, and what the whole lab corpus holds after, at page level (the widest
window, so every chunk- or sentence-level co-occurrence the trace can find is included).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from factroots.lab.world import TRANSFER, Fact, World, templates
from factroots.text import dumps
from factroots.text import match as tmatch
from factroots.text.multistream import write_multistream
from factroots.text.normalize import normalize_many
from factroots.text.pagetext import page_sentences

PLANTED_PAGE_BASE = 1_000_000_000  # synthetic page ids start here (never a real sample's id)

@dataclass
class Sample:
    """The real pages of one language's bundled sample, cleaned into documents."""

    lang: str
    siteinfo: dict
    pages: list[dict]  # dump page dicts (wikitext unchanged), for writing the corpus
    docs: dict[int, list[str]] = field(default_factory=dict)  # article page_id -> sentences


@dataclass
class Planted:
    """One planted sentence, with the object's character span (for entity masking)."""

    lang: str
    uuid: str
    page_id: int
    text: str
    obj_start: int
    obj_end: int
    template: int = 0  # index of the template among the relation's corpus templates


def read_dump_pages(path: str | Path, lang: str) -> tuple[dict, list[dict]]:
    """(siteinfo, page dicts) of a dump, read with the trace's own reader (rejects dropped)."""
    info = dumps.dump_info(str(path))
    pages = [p for part in dumps.plan_dump(str(path), lang)
             for run in dumps.read_partition(part) for p in run if not p.get("reject")]
    return info["siteinfo"], pages


def clean_sentences(wikitext: str, lang: str, siteinfo: dict, parser: str = "fast") -> list[str]:
    """The sentences the trace makes of one page's wikitext (none for a rejected page)."""
    sents, _ = page_sentences(wikitext, len(wikitext.encode("utf-8")), lang,
                              namespaces=siteinfo.get("namespaces") or {}, parser=parser)
    return [s for _, _, s in sents if s.strip()]


def load_sample(lang: str, path: str | Path) -> Sample:
    """Read a bundled sample and clean its articles into documents."""
    siteinfo, pages = read_dump_pages(path, lang)
    s = Sample(lang, siteinfo, pages)
    for p in pages:
        if p["namespace"] == 0 and not p["is_redirect"] and p.get("wikitext"):
            sents = clean_sentences(p["wikitext"], lang, siteinfo)
            if sents:
                s.docs[p["page_id"]] = sents
    return s


def render(template: str, sub: str, obj: str) -> tuple[str, int, int]:
    """The template filled with subject and object, and the object's span."""
    t = template.replace("[X]", sub)
    i = t.index("[Y]")
    return t[:i] + obj + t[i + 3:], i, i + len(obj)


def fact_sentences(fact: Fact, lang: str, tpls: list[str], repeats: int, page_id: int,
                   stand_in: Fact | None = None) -> list[Planted]:
    """``repeats`` sentences stating ``fact`` in ``lang``, cycling through the templates.

    With ``stand_in`` (the counterfactual corpus), the stand-in's names take the fact's place in
    the same templates, so the sentence count and shapes stay as they were.
    """
    f = stand_in or fact
    out = []
    for r in range(repeats):
        sent, a, b = render(tpls[r % len(tpls)], f.sub[lang], f.obj[lang])
        out.append(Planted(lang, fact.uuid, page_id, sent, a, b, r % len(tpls)))
    return out


def planted_sentences(world: World, lang: str, probe_templates: dict[str, str], repeats: int,
                      counterfactual: bool = False) -> list[Planted]:
    """The planted sentences of one language, one synthetic page per fact, in world order.

    ``counterfactual``: the `transfer` facts' sentences in their source language are replaced
    by their filler facts' sentences (the counterfactual model's corpus).
    """
    out: list[Planted] = []
    for i, f in enumerate(world.facts):
        if lang not in f.planted_in:
            continue
        tpls = templates(f.relation, lang, probe_templates[f.relation])
        stand_in = f.filler if counterfactual and f.group == TRANSFER else None
        out += fact_sentences(f, lang, tpls, repeats, PLANTED_PAGE_BASE + i, stand_in)
    return out


def planted_pages(sents: list[Planted]) -> list[dict]:
    """Dump page dicts for the planted sentences (one paragraph per sentence)."""
    by_page: dict[int, list[Planted]] = defaultdict(list)
    for s in sents:
        by_page[s.page_id].append(s)
    return [{"page_id": pid, "rev_id": pid, "ns": 0, "redirect": None,
             "title": f"Factroots lab {ss[0].lang} {pid - PLANTED_PAGE_BASE}",
             "text": "\n\n".join(s.text for s in ss)} for pid, ss in sorted(by_page.items())]


def write_corpus(sample: Sample, planted: list[dict], path: Path) -> tuple[Path, Path]:
    """Write the real pages and the planted pages of one language as a multistream dump."""
    pages = [{"page_id": p["page_id"], "rev_id": p["rev_id"], "title": p["title"],
              "ns": p["namespace"], "text": p["wikitext"] or "",
              "redirect": p["is_redirect"] or None} for p in sample.pages]
    ns = sample.siteinfo.get("namespaces") or None
    siteinfo = {"namespaces": ns, "dbname": sample.siteinfo.get("dbname")} if ns else None
    return write_multistream(pages + planted, path, lang=sample.lang, siteinfo=siteinfo)


def cooccurring(docs: dict[int, list[str]], facts: pd.DataFrame, lang: str, *,
                min_name_len: int = 2, mode: str = "word") -> dict[str, tuple[bool, bool]]:
    """uuid -> (co-occurs in one document, in one sentence) with disjoint spans, as the trace."""
    names: dict[str, int] = {}
    fact_names = []
    subs = normalize_many([s or "" for s in facts["sub_label"]], lang)
    objs = normalize_many([o or "" for o in facts["obj_label"]], lang)
    for u, ns, no in zip(facts["uuid"], subs, objs):
        if len(ns) < min_name_len or len(no) < min_name_len:
            continue
        fact_names.append((u, names.setdefault(ns, len(names)), names.setdefault(no, len(names))))
    if not fact_names or not docs:
        return {}
    m = tmatch.Matcher.build(lang, mode, list(names))
    by_sub: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for u, si, oi in fact_names:
        by_sub[si].append((u, oi))
    flat, owner = [], []
    for pid, sents in docs.items():
        flat += sents
        owner += [pid] * len(sents)
    spans: dict[tuple[int, int], list[tuple[int, int, int]]] = defaultdict(list)
    for t, ni, a, b, _ in m.find_normalized(flat):
        spans[(owner[t], ni)].append((t, a, b))
    by_doc: dict[int, set[int]] = defaultdict(set)
    for pid, ni in spans:
        by_doc[pid].add(ni)
    out: dict[str, tuple[bool, bool]] = {}
    for pid, present in by_doc.items():
        for si in present & by_sub.keys():
            for u, oi in by_sub[si]:
                if oi not in present:
                    continue
                doc, sent = _disjoint(spans[(pid, si)], spans[(pid, oi)])
                if not doc:
                    continue
                prev = out.get(u, (False, False))
                out[u] = (prev[0] or doc, prev[1] or sent)
    return out


def _disjoint(subs: list[tuple[int, int, int]], objs: list[tuple[int, int, int]]) -> tuple[bool, bool]:
    """(some disjoint pair exists, some disjoint pair in one sentence)."""
    doc = sent = False
    for t1, a1, b1 in subs:
        for t2, a2, b2 in objs:
            if t1 != t2 or b1 <= a2 or b2 <= a1:
                doc = True
                sent = sent or t1 == t2
                if sent:
                    return True, True
    return doc, sent
