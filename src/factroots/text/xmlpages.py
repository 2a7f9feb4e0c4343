"""Pages from bytes of MediaWiki XML: the siteinfo header, page splitting and page parsing.

Works on UTF-8 bytes that hold whole ``<page>…</page>`` elements (a multistream stream, or a
window of a plain dump). ``PageSplitter`` cuts a byte stream into runs of complete pages and
reports what is left at the end (a page cut off mid-way: ``truncated``). ``parse_pages`` turns a
run into page dicts with lxml (huge-tree; a run that does not parse is retried page by page,
and a page that still fails becomes a ``parse_error`` reject).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

from lxml import etree

PAGE_OPEN, PAGE_CLOSE = b"<page>", b"</page>"
_STRICT = etree.XMLParser(huge_tree=True, resolve_entities=False, remove_blank_text=False)
_NS_RE = re.compile(rb'<namespace key="(-?\d+)"[^>]*?(?:/>|>(.*?)</namespace>)', re.DOTALL)
_TAG_RE = {k: re.compile(rb"<%s>(.*?)</%s>" % (k.encode(), k.encode()), re.DOTALL)
           for k in ("title", "ns", "id", "dbname", "base")}
_LANG_RE = re.compile(rb'xml:lang="([^"]+)"')


def reject(reason: str, page_id: int | None = None, title: str | None = None,
           ns: int | None = None) -> dict:
    """A page row that is counted under ``rejected_<reason>`` instead of being kept."""
    return {"page_id": page_id, "rev_id": None, "title": title, "namespace": ns,
            "is_redirect": False, "wikitext": None, "wikitext_len": None, "reject": reason}


def parse_siteinfo(head: bytes) -> dict:
    """dbname, base URL, lang and namespaces ({key: name}) from the first bytes of a dump."""
    end = head.find(b"</siteinfo>")
    block = head[: end if end >= 0 else len(head)]
    namespaces = {int(k): html.unescape((v or b"").decode("utf-8", "replace"))
                  for k, v in _NS_RE.findall(block)}
    db = _TAG_RE["dbname"].search(block)
    base = _TAG_RE["base"].search(block)
    lang = _LANG_RE.search(head[:2000])
    return {"dbname": db.group(1).decode() if db else None,
            "base": html.unescape(base.group(1).decode("utf-8", "replace")) if base else None,
            "lang": lang.group(1).decode() if lang else None,
            "namespaces": namespaces}


def _first_int(rx: re.Pattern, data: bytes) -> int | None:
    m = rx.search(data)
    try:
        return int(m.group(1)) if m else None
    except ValueError:
        return None


def salvage(fragment: bytes, reason: str) -> dict:
    """A reject row for a broken page, with whatever id/title/ns can still be read from it."""
    head = fragment[:4096]
    t = _TAG_RE["title"].search(head)
    title = html.unescape(t.group(1).decode("utf-8", "replace")) if t else None
    return reject(reason, _first_int(_TAG_RE["id"], head), title, _first_int(_TAG_RE["ns"], head))


def _page_dict(page: etree._Element, max_bytes: int) -> dict:
    title = ns = pid = rev_id = text = None
    redirect = False
    for ch in page:
        tag = ch.tag
        if tag == "title":
            title = ch.text or ""
        elif tag == "ns":
            ns = int(ch.text)
        elif tag == "id":
            pid = int(ch.text)
        elif tag == "redirect":
            redirect = True
        elif tag == "revision":  # a history dump has several: the last one wins
            for r in ch:
                if r.tag == "id":
                    rev_id = int(r.text)
                elif r.tag == "text":
                    text = r.text or ""
    if pid is None or title is None:
        raise ValueError("page without id or title")
    text = text or ""
    n = len(text)
    if n * 4 > max_bytes:  # only encode when the cap could be reached
        n = len(text.encode("utf-8"))
    return {"page_id": pid, "rev_id": rev_id, "title": title, "namespace": 0 if ns is None else ns,
            "is_redirect": redirect, "wikitext": None if n > max_bytes else text,
            "wikitext_len": n, "reject": None}


def _split_raw(run: bytes) -> list[bytes]:
    parts, pos = [], 0
    while True:
        s = run.find(PAGE_OPEN, pos)
        if s < 0:
            return parts
        e = run.find(PAGE_CLOSE, s)
        if e < 0:
            parts.append(run[s:])
            return parts
        parts.append(run[s: e + len(PAGE_CLOSE)])
        pos = e + len(PAGE_CLOSE)


def parse_pages(run: bytes, max_bytes: int = 2_000_000) -> list[dict]:
    """Page dicts from a run of complete ``<page>`` elements (rejects included, never raises)."""
    try:
        root = etree.fromstring(b"<pages>" + run + b"</pages>", _STRICT)
        return [_safe_page(p, max_bytes) for p in root.iterchildren("page")]
    except etree.XMLSyntaxError:
        pass
    out = []
    for frag in _split_raw(run):  # the run is broken somewhere: find the page, keep the rest
        try:
            out.append(_page_dict(etree.fromstring(frag, _STRICT), max_bytes))
        except (etree.XMLSyntaxError, ValueError, TypeError):
            out.append(salvage(frag, "parse_error"))
    return out


def _safe_page(page: etree._Element, max_bytes: int) -> dict:
    try:
        return _page_dict(page, max_bytes)
    except (ValueError, TypeError):
        return salvage(etree.tostring(page), "parse_error")


class PageSplitter:
    """Cuts a stream of UTF-8 dump bytes into runs of whole pages.

    ``limit`` (bytes from the first fed byte) makes the splitter own only pages that open
    before it, so that byte-range partitions of a plain XML file neither lose nor repeat a page.
    """

    def __init__(self, limit: int | None = None) -> None:
        self.buf = b""
        self.pos = 0  # stream offset of buf[0]
        self.limit = limit
        self.done = False
        self.pending_rejects: list[dict] = []  # rows for bytes lost upstream (corrupt streams)
        # set after lost bytes: the text that follows may start with the tail of a lost page
        self.resynced = False

    def feed(self, data: bytes) -> bytes | None:
        """Add bytes; return a run of complete pages when one is ready."""
        if self.done:
            return None
        buf = self.buf + data if self.buf else data
        if self.resynced:
            buf = self._drop_lost_tail(buf)
        start = buf.find(PAGE_OPEN)
        if start < 0:
            keep = buf[-(len(PAGE_OPEN) - 1):]
            self.pos += len(buf) - len(keep)
            self.buf = keep
            return None
        if self.limit is not None and self.pos + start >= self.limit:
            self.done, self.buf = True, b""
            return None
        end = buf.rfind(PAGE_CLOSE)
        if end < start:
            self.pos += start
            self.buf = buf[start:]
            return None
        end += len(PAGE_CLOSE)
        run = buf[start:end]
        if self.limit is not None:
            cut = run.find(PAGE_OPEN, self.limit - self.pos - start)
            if cut >= 0:
                self.done, self.buf = True, b""
                return run[:cut]
        self.pos += end
        self.buf = buf[end:]
        return run

    def _drop_lost_tail(self, buf: bytes) -> bytes:
        """Count the end of a page whose start was lost (a ``</page>`` before any ``<page>``)."""
        close, start = buf.find(PAGE_CLOSE), buf.find(PAGE_OPEN)
        if close < 0 and start < 0:
            return buf
        self.resynced = False
        if close >= 0 and (start < 0 or close < start):
            self.pending_rejects.append(reject("corrupt_stream"))
            self.pos += close + len(PAGE_CLOSE)
            return buf[close + len(PAGE_CLOSE):]
        return buf

    def finish(self) -> list[dict]:
        """Reject rows for pages left open at the end of the stream (cut off mid-page)."""
        if self.done:
            return []
        tail, self.buf = self.buf, b""
        return [salvage(frag, "truncated") for frag in _split_raw(tail)]

    def discard(self, reason: str) -> list[dict]:
        """Drop the open pages (their bytes are lost, e.g. a corrupt stream) and count them."""
        rows = [salvage(frag, reason) for frag in _split_raw(self.buf)]
        self.pos += len(self.buf)
        self.buf = b""
        return rows


def iter_runs(blocks: Iterator[bytes], splitter: PageSplitter) -> Iterator[bytes]:
    """Runs of whole pages from a stream of byte blocks."""
    for block in blocks:
        run = splitter.feed(block)
        if run:
            yield run
        if splitter.done:
            return
