"""Benchmark inputs grown from the bundled Wikipedia samples: their articles repeated under new
ids until a size is reached."""

from __future__ import annotations

from collections.abc import Iterator

from factroots.text import dumps
from factroots.text.samples import sample_dump


def article_rows(lang: str) -> list[dict]:
    """The bundled sample's pages of ``lang`` that hold wikitext, as ``dumps`` reads them."""
    return [r for p in dumps.plan_dump(str(sample_dump(lang)), lang)
            for rows in dumps.read_partition(p) for r in rows if r["wikitext"] is not None]


def grown_pages(src: list[dict], limit_bytes: float) -> Iterator[dict]:
    """Pages of ``src`` in turn, under new ids, until about ``limit_bytes`` of XML."""
    size, i = 0, 0
    while size < limit_bytes:
        r = src[i % len(src)]
        i += 1
        size += len(r["wikitext"].encode("utf-8")) + 450  # the page's XML around its text
        yield {"page_id": i, "rev_id": i, "title": f"{r['title']} ({i})",
               "ns": r["namespace"], "text": r["wikitext"],
               "redirect": "Target" if r["is_redirect"] else None}
