"""Builds the bundled dump samples in src/factroots/data/wiki/ from ../shared/data/wikipedia/.

Each sample is a real multistream dump (siteinfo stream, 100 pages a stream, closing stream)
plus its index, made of complete pages of the source dump in their order, with the source's
siteinfo namespaces. Run once by a maintainer: ``python scripts/make_wiki_samples.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from factroots.text import dumps
from factroots.text.multistream import write_multistream

SRC = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikipedia"
DST = Path(__file__).resolve().parents[1] / "src" / "factroots" / "data" / "wiki"
SOURCES = {
    "en": "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
    "bg": "bgwiki-latest-pages-articles-shortened.xml.bz2",
    **{lang: f"{lang}wiki-truncated-100k.xml.xz" for lang in ("bn", "el", "hy", "ja", "uk", "vi")},
}
XML_BUDGET = 900_000  # first guess; rescaled to about TARGET_BZ2 bytes of bz2 per language
TARGET_BZ2 = 240_000
MAX_NON_ARTICLES = 12


def pick_pages(path: Path, lang: str, budget: int = XML_BUDGET) -> list[dict]:
    """Complete pages in dump order: articles, a few redirects and other namespaces, in budget."""
    pages, size, others, redirects = [], 0, 0, 0
    for part in dumps.plan_dump(str(path), lang):
        for rows in dumps.read_partition(part, max_bytes=10**9):
            for r in rows:
                if r["reject"] or r["wikitext"] is None:
                    continue
                if r["is_redirect"]:
                    redirects += 1
                    if redirects > MAX_NON_ARTICLES:
                        continue
                elif r["namespace"] != 0:
                    others += 1
                    if others > MAX_NON_ARTICLES:
                        continue
                text = r["wikitext"]
                size += len(text.encode("utf-8")) + 400
                if size > budget and pages:
                    return pages
                redirect = r["is_redirect"]
                pages.append({"page_id": r["page_id"], "rev_id": r["rev_id"], "title": r["title"],
                              "ns": r["namespace"], "text": text,
                              "redirect": _redirect_target(text) if redirect else None})
    return pages


def _redirect_target(text: str) -> str:
    import re
    m = re.search(r"\[\[([^\]|#]+)", text)
    return m.group(1).strip() if m else ""


def main() -> None:
    DST.mkdir(parents=True, exist_ok=True)
    for lang, name in SOURCES.items():
        src = SRC / name
        info = dumps.dump_info(str(src))
        target = DST / f"{lang}wiki-sample-pages-articles-multistream.xml.bz2"
        budget = XML_BUDGET
        for _ in range(3):
            pages = pick_pages(src, lang, budget)
            dump, _ = write_multistream(pages, target, lang=lang, siteinfo=info["siteinfo"])
            budget = int(budget * TARGET_BZ2 / dump.stat().st_size)
        print(f"{lang}: {len(pages)} pages, {dump.stat().st_size // 1024} KB, from {name}",
              file=sys.stderr)


if __name__ == "__main__":
    main()
