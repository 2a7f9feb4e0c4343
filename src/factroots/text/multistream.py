"""Writes real Wikimedia multistream dumps (``.xml.bz2`` + ``-index.txt.bz2``) from page dicts.

The layout is the one dumps.wikimedia.org publishes: the first bz2 stream holds only the
``<mediawiki>`` opening tag and ``<siteinfo>``, then one stream per ``pages_per_stream`` pages,
and the last stream holds only ``</mediawiki>``. The index has one ``offset:page_id:title`` line
per page, where ``offset`` is the byte offset of the page's stream in the compressed file.
Used for the bundled samples, the lab corpus and the benchmark dumps.
"""

from __future__ import annotations

import bz2
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

EXPORT_NS = "http://www.mediawiki.org/xml/export-0.10/"

# Canonical (English) namespace names, used when no siteinfo is given.
DEFAULT_NAMESPACES: dict[int, str] = {
    -2: "Media", -1: "Special", 0: "", 1: "Talk", 2: "User", 3: "User talk", 4: "Wikipedia",
    5: "Wikipedia talk", 6: "File", 7: "File talk", 8: "MediaWiki", 9: "MediaWiki talk",
    10: "Template", 11: "Template talk", 12: "Help", 13: "Help talk", 14: "Category",
    15: "Category talk", 100: "Portal", 101: "Portal talk", 828: "Module", 829: "Module talk",
}


_SPLIT_DUMP = re.compile(r"^(.*-multistream)(\d+)\.xml(-p\d+p\d+)\.bz2$")


def index_path_for(dump_path: str | Path) -> Path:
    """The index file Wikimedia puts beside a multistream dump (``…-index.txt.bz2``; for the
    split ``…-multistream3.xml-p1p9.bz2`` files, ``…-multistream-index3.txt-p1p9.bz2``)."""
    p = Path(dump_path)
    name = p.name
    m = _SPLIT_DUMP.match(name)
    if m:
        return p.with_name(f"{m.group(1)}-index{m.group(2)}.txt{m.group(3)}.bz2")
    for suffix in (".xml.bz2", ".bz2", ".xml"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return p.with_name(name + "-index.txt.bz2")


def header_xml(lang: str, siteinfo: Mapping | None = None) -> str:
    """The ``<mediawiki>`` opening tag and ``<siteinfo>`` block of a dump."""
    si = dict(siteinfo or {})
    namespaces = {int(k): v for k, v in (si.get("namespaces") or DEFAULT_NAMESPACES).items()}
    ns_lines = []
    for key in sorted(namespaces):
        name = namespaces[key] or ""
        if name:
            ns_lines.append(f'      <namespace key="{key}" case="first-letter">{escape(name)}</namespace>')
        else:
            ns_lines.append(f'      <namespace key="{key}" case="first-letter" />')
    dbname = si.get("dbname") or f"{lang}wiki"
    return (
        f'<mediawiki xmlns="{EXPORT_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'version="0.10" xml:lang={quoteattr(lang)}>\n'
        "  <siteinfo>\n"
        f"    <sitename>{escape(si.get('sitename') or 'Wikipedia')}</sitename>\n"
        f"    <dbname>{escape(dbname)}</dbname>\n"
        f"    <base>{escape(si.get('base') or f'https://{lang}.wikipedia.org/wiki/')}</base>\n"
        f"    <generator>{escape(si.get('generator') or 'factroots')}</generator>\n"
        "    <case>first-letter</case>\n"
        "    <namespaces>\n" + "\n".join(ns_lines) + "\n    </namespaces>\n"
        "  </siteinfo>\n"
    )


def page_xml(page: Mapping) -> str:
    """One ``<page>`` element in the dump's format (text escaped, redirect as an element)."""
    text = page.get("text") or ""
    redirect = page.get("redirect")
    lines = [
        "  <page>",
        f"    <title>{escape(str(page['title']))}</title>",
        f"    <ns>{int(page.get('ns', 0) or 0)}</ns>",
        f"    <id>{int(page['page_id'])}</id>",
    ]
    if redirect:
        target = redirect if isinstance(redirect, str) else ""
        lines.append(f"    <redirect title={quoteattr(target)} />")
    rev_id = int(page.get("rev_id") or page["page_id"])
    lines += [
        "    <revision>",
        f"      <id>{rev_id}</id>",
        f"      <timestamp>{page.get('timestamp') or '2024-01-01T00:00:00Z'}</timestamp>",
        "      <model>wikitext</model>",
        "      <format>text/x-wiki</format>",
        f'      <text bytes="{len(text.encode("utf-8"))}" xml:space="preserve">{escape(text)}</text>',
        "    </revision>",
        "  </page>",
    ]
    return "\n".join(lines) + "\n"


def write_multistream(pages: Iterable[Mapping], path: str | Path, *, lang: str,
                      pages_per_stream: int = 100, siteinfo: Mapping | None = None,
                      compresslevel: int = 9) -> tuple[Path, Path]:
    """Write ``pages`` ({page_id, title, ns, text, rev_id, redirect}) as a multistream dump + index.

    ``siteinfo`` may carry ``namespaces`` ({key: name}), ``dbname``, ``sitename``; without it the
    English canonical namespace names are written. Returns (dump path, index path).
    """
    if pages_per_stream < 1:
        raise ValueError("pages_per_stream must be >= 1")
    dump = Path(path)
    dump.parent.mkdir(parents=True, exist_ok=True)
    index = index_path_for(dump)
    index_lines: list[str] = []
    with open(dump, "wb") as out:
        out.write(bz2.compress(header_xml(lang, siteinfo).encode("utf-8"), compresslevel))
        batch: list[Mapping] = []

        def flush() -> None:
            offset = out.tell()
            out.write(bz2.compress("".join(page_xml(p) for p in batch).encode("utf-8"), compresslevel))
            index_lines.extend(f"{offset}:{int(p['page_id'])}:{p['title']}" for p in batch)
            batch.clear()

        for page in pages:
            batch.append(page)
            if len(batch) >= pages_per_stream:
                flush()
        if batch:
            flush()
        out.write(bz2.compress(b"</mediawiki>\n", compresslevel))
    index.write_bytes(bz2.compress(("\n".join(index_lines) + "\n").encode("utf-8") if index_lines
                                   else b"", compresslevel))
    return dump, index
