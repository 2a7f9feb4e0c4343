"""Reading Wikimedia XML dumps as independent partitions of pages (pure Python, no Spark).

Formats: multistream ``.xml.bz2`` with its ``-index.txt.bz2`` (cut into byte ranges at stream
offsets: many partitions), plain ``.xml.bz2`` / ``.xml.xz`` / ``.xml.gz`` (one partition,
read as a stream), plain ``.xml`` in UTF-8 (byte ranges, each owning the pages that open in
it) and UTF-16 XML (detected from the BOM or the XML declaration; one partition, transcoded).
Paths are local paths or ``file://`` URIs. ``plan_dump`` runs on the driver and raises
``NotADumpError`` for a file that is not a MediaWiki dump; ``read_partition`` runs on a
worker, streams with bounded memory and never raises for bad data: a page cut off mid-way is
a ``truncated`` reject, a bz2 stream that does not decompress makes its pages
``corrupt_stream`` rejects (ids and titles from the index), a page that does not parse is a
``parse_error`` reject.
"""

from __future__ import annotations

import bz2
import codecs
import functools
import gzip
import itertools
import logging
import lzma
import os
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

from factroots.errors import ConfigError, DumpNotFoundError, NotADumpError, ShardError
from factroots.text import xmlpages
from factroots.text.multistream import index_path_for

log = logging.getLogger(__name__)
BLOCK = 1 << 20
# compressed bytes per decoder call: a decoder error drops the text of its call, so damage
# loses at most the text that ends within this many bytes before it (bz2 releases a 900 kB
# block only once its CRC matched: all text before that is sound)
CHUNK = 1 << 12
HEAD_BYTES = 1 << 18
DEFAULT_PART_BYTES = 32 << 20
# A Spark Python task costs ~30 ms of CPU by itself (measured, BENCHMARKS.md): a file is cut in
# two for parallelism only when each half is at least this big (compressed, ~20 MB of XML).
MIN_SPLIT_BYTES = 4 << 20
BZ2_STREAM_MAGIC = re.compile(rb"BZh[1-9]1AY&SY")
# what bz2 raises for a corrupt or cut-off stream
STREAM_ERRORS = (OSError, ValueError, EOFError, zlib.error, lzma.LZMAError)
_MAGIC = {b"BZh": "bz2", b"\xfd7zXZ": "xz", b"\x1f\x8b": "gz"}


def local_path(uri: str | os.PathLike) -> Path:
    """A local path for a dump path or ``file://`` URI (other schemes are a ConfigError)."""
    s = str(uri)
    if "://" in s:
        u = urlparse(s)
        if u.scheme != "file":
            raise ConfigError(f"dump {s}: only local paths and file:// URIs are read",
                              "copy or mount the dump on a local/shared file system")
        return Path(u.path)
    return Path(s)


def _codec(head: bytes) -> str:
    for magic, codec in _MAGIC.items():
        if head.startswith(magic):
            return codec
    return "none"


def open_decompressed(path: Path, codec: str) -> BinaryIO:
    """A binary file object that yields the decompressed bytes of the whole file."""
    if codec == "bz2":
        return bz2.open(path, "rb")
    if codec == "xz":
        return lzma.open(path, "rb")
    if codec == "gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def _encoding(head: bytes) -> str:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if head[:2] == b"<\x00":
        return "utf-16-le"
    if head[:2] == b"\x00<":
        return "utf-16-be"
    decl = re.match(rb'<\?xml[^>]*encoding=["\']([A-Za-z0-9_-]+)', head.lstrip(codecs.BOM_UTF8))
    if decl and decl.group(1).lower().replace(b"_", b"-") not in (b"utf-8", b"utf8", b"us-ascii"):
        return decl.group(1).decode().lower()
    return "utf-8"


def _read_head(path: Path, codec: str) -> bytes:
    """The first decompressed bytes, up to the end of <siteinfo> (damage further on is the
    readers' business: it becomes counted rejects there)."""
    out = b""
    try:
        if codec == "bz2":
            with open(path, "rb") as f:
                dec = bz2.BZ2Decompressor()
                while len(out) < HEAD_BYTES and b"</siteinfo>" not in out:
                    data = dec.unused_data if dec.eof else f.read(1 << 14)
                    if dec.eof:
                        dec = bz2.BZ2Decompressor()
                    if not data:
                        break
                    out += dec.decompress(data)
            return out
        with open_decompressed(path, codec) as f:
            while len(out) < HEAD_BYTES and b"</siteinfo>" not in out:
                block = f.read(1 << 14)
                if not block:
                    break
                out += block
        return out
    except (OSError, EOFError, lzma.LZMAError, ValueError) as exc:
        if out:
            return out
        raise NotADumpError(f"{path}: cannot be decompressed as {codec} ({exc})",
                            fix="check that the file is a complete MediaWiki XML dump") from exc


def dump_info(uri: str) -> dict:
    """Codec, text encoding, size, siteinfo (namespaces) and index of a dump; checks it is one."""
    path = local_path(uri)
    if not path.is_file():
        raise DumpNotFoundError(f"dump {uri} not found", fix="fix trace.dumps or trace.dump_dir")
    st = path.stat()
    idx = index_path_for(path)
    idx_mtime = idx.stat().st_mtime_ns if idx.is_file() else 0
    return _dump_info(str(uri), st.st_size, st.st_mtime_ns, idx_mtime)


@functools.lru_cache(maxsize=256)
def _dump_info(uri: str, size: int, mtime: int, idx_mtime: int) -> dict:
    """dump_info, cached per file version (size and modification times)."""
    path = local_path(uri)
    with open(path, "rb") as f:
        magic = f.read(8)
    codec = _codec(magic)
    info = {"uri": str(uri), "path": str(path), "size": size, "codec": codec, "encoding": "utf-8",
            "siteinfo": {"namespaces": {}, "dbname": None, "lang": None}, "index": None,
            "empty": size == 0}
    if size == 0:
        return info
    head = _read_head(path, codec)
    if not head.strip():
        info["empty"] = True
        return info
    enc = _encoding(head)
    text_head = head.decode(enc, "replace").encode("utf-8") if enc != "utf-8" else head
    if b"<mediawiki" not in text_head[:HEAD_BYTES]:
        snippet = text_head[:60].decode("utf-8", "replace").strip()
        raise NotADumpError(f"{uri} is not a MediaWiki XML dump (it starts with {snippet!r})",
                            fix="point trace.dumps at a pages-articles .xml/.xml.bz2 dump")
    info["encoding"] = enc
    info["siteinfo"] = xmlpages.parse_siteinfo(text_head)
    idx = index_path_for(path)
    alt = idx.with_name(idx.name[: -len(".bz2")])
    for cand in (idx, alt):
        if codec == "bz2" and cand.is_file() and cand.stat().st_size > 0:
            info["index"] = str(cand)
            break
    return info


def read_index(index: str) -> list[tuple[int, int]]:
    """(stream offset, pages in it) for each stream listed in a multistream index."""
    opener = bz2.open if index.endswith(".bz2") else open
    streams: list[list[int]] = []
    with opener(index, "rb") as f:
        for line in f:
            off = int(line[: line.index(b":")])
            if streams and streams[-1][0] == off:
                streams[-1][1] += 1
            else:
                streams.append([off, 1])
    return [(o, n) for o, n in streams]


def index_entries(index: str, offset: int) -> list[tuple[int, str]]:
    """(page_id, title) of the pages of the stream at ``offset`` (for counting its rejects)."""
    opener = bz2.open if index.endswith(".bz2") else open
    out = []
    prefix = f"{offset}:".encode()
    with opener(index, "rb") as f:
        for line in f:
            if line.startswith(prefix):
                _, pid, title = line.rstrip(b"\n").decode("utf-8", "replace").split(":", 2)
                out.append((int(pid), title))
            elif out:
                break
    return out


def checked_index(info: dict) -> tuple[list[tuple[int, int]], str | None]:
    """(streams of the index, None) when the index fits the dump, else ([], why not): the
    offsets must rise inside the file and, in the first and a middle stream of pages, the
    page ids and titles read from the dump must be the index's."""
    idx = Path(info["index"])
    st = idx.stat()
    return _checked_index(info["path"], info["size"], info["index"], st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _checked_index(path: str, size: int, index: str, isize: int, imtime: int
                   ) -> tuple[list[tuple[int, int]], str | None]:
    """checked_index, cached per file version (the driver plans each dump twice)."""
    try:
        streams = read_index(index)
    except (*STREAM_ERRORS, UnicodeDecodeError) as exc:
        return [], f"it cannot be read: {exc}"
    offs = [o for o, _ in streams]
    if any(b <= a for a, b in itertools.pairwise(offs)) or (offs and (offs[0] < 0 or offs[-1] >= size)):
        return [], "its offsets do not rise inside the file"
    if not streams:
        return streams, None
    sample = sorted({0, len(streams) // 2})
    try:
        listed = index_entries_at(index, {offs[i] for i in sample})
    except (*STREAM_ERRORS, UnicodeDecodeError) as exc:
        return [], f"it cannot be read: {exc}"
    with open(path, "rb") as f:
        for i in sample:
            end = offs[i + 1] if i + 1 < len(offs) else size
            why = _stream_matches(f, offs[i], end, listed.get(offs[i], []))
            if why:
                return [], why
    return streams, None


def _stream_matches(f: BinaryIO, off: int, end: int, listed: list[tuple[int, str]]) -> str | None:
    """None when the pages of the stream at ``off`` are those the index lists, else why not."""
    f.seek(off)
    data = f.read(min(end - off, 64 << 20))
    if not BZ2_STREAM_MAGIC.match(data):
        return f"no bz2 stream starts at offset {off}"
    splitter = xmlpages.PageSplitter()
    run = splitter.feed(decompress_prefix(data))
    found = [(r["page_id"], r["title"]) for r in (xmlpages.parse_pages(run) if run else [])
             if r["page_id"] is not None]
    if not found:  # damaged before its first page: damage, not a wrong index (counted later)
        return None
    listed = [(pid, title.replace("_", " ")) for pid, title in listed]
    if [(p, t.replace("_", " ")) for p, t in found] != listed[: len(found)]:
        return (f"the stream at offset {off} holds pages {found[:2]}..., the index lists "
                f"{listed[:2]}...")
    return None


def index_entries_at(index: str, offsets: set[int]) -> dict[int, list[tuple[int, str]]]:
    """(page_id, title) of the pages of the streams at ``offsets``, in one pass of the index."""
    opener = bz2.open if index.endswith(".bz2") else open
    out: dict[int, list[tuple[int, str]]] = {o: [] for o in offsets}
    last = max(offsets, default=-1)
    with opener(index, "rb") as f:
        for line in f:
            off_s, pid, title = line.rstrip(b"\n").decode("utf-8").split(":", 2)
            off = int(off_s)
            if off in out:
                out[off].append((int(pid), title))
            elif off > last:
                break
    return out


def check_language(uri: str, lang: str) -> None:
    """Raise a ShardError when the dump's siteinfo (``dbname``, else the base URL) names
    another language than ``lang``; a dump without either passes."""
    info = dump_info(str(uri))
    found = site_language(info["siteinfo"])
    if found and found != lang.lower().replace("_", "-"):
        si = info["siteinfo"]
        raise ShardError(f"dump {uri} is {si.get('dbname') or si.get('base')} (language {found}),"
                         f" but it is configured for language {lang}", lang,
                         fix=f"list it under trace.dumps.{found}, or set "
                             "trace.allow_lang_mismatch: true if this is intended")


_DBNAME = re.compile(r"^([a-z][a-z0-9_]*?)(wiki|wiktionary|wikibooks|wikinews|wikiquote|"
                     r"wikisource|wikiversity|wikivoyage)$")
_BASE = re.compile(r"^[a-z]+://([a-z][a-z0-9-]*)\.(?:m\.)?(?:wikipedia|wiktionary|wikibooks|"
                   r"wikinews|wikiquote|wikisource|wikiversity|wikivoyage)\.org/")


def site_language(siteinfo: dict) -> str | None:
    """The language code a dump's siteinfo names (``enwiki`` or ``https://en.wikipedia.org/``)."""
    db = _DBNAME.match(siteinfo.get("dbname") or "")
    if db:
        return db.group(1).replace("_", "-")
    base = _BASE.match(siteinfo.get("base") or "")
    return base.group(1) if base else None


def plan_dump(uri: str, lang: str, *, part_bytes: int = 0, parts: int = 0) -> list[dict]:
    """Partitions (JSON-able dicts) of one dump: byte ranges where the format allows it."""
    info = dump_info(str(uri))
    base = {"lang": lang, "dump": str(uri), "path": info["path"], "codec": info["codec"],
            "encoding": info["encoding"], "index": info["index"]}
    if info["empty"]:
        return []
    size = info["size"]
    target = max(1, size // parts) if parts else (part_bytes or DEFAULT_PART_BYTES)
    if info["index"]:
        streams, why = checked_index(info)
        if why:  # a wrong index is worse than none: read the file as one stream
            log.warning("dump %s: index %s not used (%s); reading the dump without it",
                        uri, info["index"], why)
            return [dict(base, index=None, kind="stream", start=0, end=size)]
        if streams:
            at_least = 1 if parts or size < 2 * MIN_SPLIT_BYTES else 2
            return _group_streams(streams, size, target, base, at_least=at_least)
    if info["codec"] == "none" and info["encoding"] == "utf-8" and size > target:
        cuts = list(range(0, size, target)) + [size]
        return [dict(base, kind="xmlrange", start=a, end=b) for a, b in itertools.pairwise(cuts)]
    return [dict(base, kind="stream", start=0, end=size)]


def _group_streams(streams: list[tuple[int, int]], size: int, target: int, base: dict,
                   at_least: int) -> list[dict]:
    span = size - streams[0][0]
    target = min(target, max(1, span // at_least)) if len(streams) >= at_least else target
    parts, cur = [], []
    for i, (off, n) in enumerate(streams):
        cur.append((off, n))
        nxt = streams[i + 1][0] if i + 1 < len(streams) else size
        if nxt - cur[0][0] >= target:
            parts.append((cur, nxt))
            cur = []
    if cur:
        parts.append((cur, size))
    return [dict(base, kind="multistream", start=c[0][0], end=end,
                 streams=[o for o, _ in c], counts=[n for _, n in c]) for c, end in parts]


# ---- worker side ------------------------------------------------------------------------------

def read_partition(part: dict, max_bytes: int = 2_000_000) -> Iterator[list[dict]]:
    """Lists of page dicts (rejects included) for one partition, a run of pages at a time."""
    kind = part["kind"]
    if kind == "multistream":
        yield from _read_multistream(part, max_bytes)
        return
    splitter = xmlpages.PageSplitter(limit=part["end"] - part["start"] if kind == "xmlrange" else None)
    if kind == "xmlrange":
        blocks = _file_blocks(part["path"], part["start"])
    else:
        blocks = _stream_blocks(part, splitter)
    for run in xmlpages.iter_runs(blocks, splitter):
        yield xmlpages.parse_pages(run, max_bytes)
    tail = splitter.pending_rejects + splitter.finish()
    if tail:
        yield tail


def _file_blocks(path: str, start: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        f.seek(start)
        while block := f.read(BLOCK):
            yield block


def _read_multistream(part: dict, max_bytes: int) -> Iterator[list[dict]]:
    offs = part["streams"] + [part["end"]]
    with open(part["path"], "rb") as f:
        f.seek(offs[0])
        for i, off in enumerate(part["streams"]):
            data = f.read(offs[i + 1] - off)
            try:
                xml, damaged = decompress_streams(data), False
            except STREAM_ERRORS:
                xml, damaged = decompress_prefix(data), True
            splitter = xmlpages.PageSplitter()
            run = splitter.feed(xml)
            rows = xmlpages.parse_pages(run, max_bytes) if run else []
            if damaged:  # the complete pages before the damage are kept, the rest counted
                rows += _stream_rejects(part, off, part["counts"][i], rows, splitter)
            else:
                rows += splitter.finish()
            if rows:
                yield rows


def decompress_streams(data: bytes) -> bytes:
    """Whole bz2 streams decompressed, CRCs checked (raises one of ``STREAM_ERRORS``)."""
    # indexed_bzip2 1.7 decodes 1.1-1.3x faster but keeps every file object it is given (and
    # its bytes) alive: a leak of one compressed stream per call (BENCHMARKS.md)
    out = []
    while data:  # not bz2.decompress: it ignores damage after the first stream
        dec = bz2.BZ2Decompressor()
        out.append(dec.decompress(data))
        if not dec.eof:
            raise EOFError("bz2 stream cut off")
        data = dec.unused_data
        if not data.strip(b"\0"):  # zero padding after the last stream is not damage
            break
    return b"".join(out)


def decompress_prefix(data: bytes, codec: str = "bz2") -> bytes:
    """The decompressed bytes of ``data`` up to its first damage (all of it when sound)."""
    out: list[bytes] = []
    try:
        for block in _decode(iter([data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]),
                             codec):
            out.append(block)
    except STREAM_ERRORS:
        pass
    return b"".join(out)


def _decoder(codec: str):  # type: ignore[no-untyped-def]
    if codec == "gz":
        return zlib.decompressobj(wbits=31)  # one gzip member
    if codec == "xz":
        return lzma.LZMADecompressor()
    return bz2.BZ2Decompressor()


def _decode(chunks: Iterator[bytes], codec: str) -> Iterator[bytes]:
    """Decompressed bytes of concatenated streams (gzip members, xz or bz2 streams), in blocks
    of about ``BLOCK``, as far as they decode: at damage it yields what came before and raises
    one of ``STREAM_ERRORS`` (``EOFError`` when cut off)."""
    out: list[bytes] = []
    size = 0
    try:
        for piece in _decode_pieces(chunks, codec):
            out.append(piece)
            size += len(piece)
            if size >= BLOCK:
                yield b"".join(out)
                out, size = [], 0
    except STREAM_ERRORS:
        if out:
            yield b"".join(out)
        raise
    if out:
        yield b"".join(out)


def _decode_pieces(chunks: Iterator[bytes], codec: str) -> Iterator[bytes]:
    dec, data = _decoder(codec), b""
    for chunk in chunks:
        data = data + chunk if data else chunk
        while data:
            if dec.eof:
                if not data.strip(b"\0"):  # zero padding after the last stream is not damage
                    data = b""
                    break
                dec = _decoder(codec)
            out = dec.decompress(data)
            if out:
                yield out
            data = dec.unused_data if dec.eof else b""
    if not dec.eof:
        raise EOFError(f"{codec} data cut off")


class _Pieces:
    """A file from ``start`` on in pieces of ``CHUNK`` bytes; ``last`` is the offset of the
    piece handed out last (where damage was found)."""

    def __init__(self, f: BinaryIO, start: int) -> None:
        self.f, self.pos, self.last = f, start, start

    def __iter__(self) -> Iterator[bytes]:
        self.f.seek(self.pos)
        while block := self.f.read(BLOCK):
            for i in range(0, len(block), CHUNK):
                piece = block[i:i + CHUNK]
                self.last = self.pos
                self.pos += len(piece)
                yield piece


def _stream_rejects(part: dict, offset: int, count: int, kept: list[dict],
                    splitter: xmlpages.PageSplitter) -> list[dict]:
    """Rejects for the pages of a damaged stream that were not read: the index's pages of the
    stream less those kept (ids and titles from the index)."""
    try:
        entries = index_entries(part["index"], offset)
    except STREAM_ERRORS:
        entries = []
    seen = {r["page_id"] for r in kept}
    if len(entries) != count or not seen <= {pid for pid, _ in entries}:
        lost = splitter.discard("corrupt_stream")  # the index cannot say: count what we saw
        return lost + [xmlpages.reject("corrupt_stream")] * max(0, count - len(kept) - len(lost))
    return [xmlpages.reject("corrupt_stream", pid, title) for pid, title in entries
            if pid not in seen]


def _stream_blocks(part: dict, splitter: xmlpages.PageSplitter) -> Iterator[bytes]:
    """Decompressed UTF-8 blocks of a whole file; a corrupt bz2 stream is skipped, counted."""
    enc = part["encoding"]
    decoder = codecs.getincrementaldecoder(enc)("replace") if enc != "utf-8" else None
    for block in _decompressed_blocks(part, splitter):
        if decoder is not None:
            block = decoder.decode(block).encode("utf-8")
        yield block


def _lost(splitter: xmlpages.PageSplitter) -> None:
    """Count the pages lost at damage: the open ones (at least one)."""
    splitter.pending_rejects += splitter.discard("corrupt_stream") or [
        xmlpages.reject("corrupt_stream")]


def _decompressed_blocks(part: dict, splitter: xmlpages.PageSplitter) -> Iterator[bytes]:
    codec = part["codec"]
    if codec == "none":
        yield from _file_blocks(part["path"], 0)
        return
    if codec == "bz2":
        yield from _bz2_resync_blocks(part["path"], splitter)
        return
    with open(part["path"], "rb") as f:
        try:  # gz, xz: up to the damage; a cut-off file ends in a `truncated` page
            yield from _decode(iter(_Pieces(f, 0)), codec)
        except EOFError:
            return
        except STREAM_ERRORS:
            _lost(splitter)


def _bz2_resync_blocks(path: str, splitter: xmlpages.PageSplitter) -> Iterator[bytes]:
    """bz2 streams one after another; after damage, go on at the next stream header."""
    with open(path, "rb") as f:
        start = 0
        while True:
            pieces = _Pieces(f, start)
            try:
                yield from _decode(iter(pieces), "bz2")
                return
            except EOFError:  # cut off: the splitter counts the open page as `truncated`
                return
            except STREAM_ERRORS:
                _lost(splitter)
                splitter.resynced = True
                start = _next_stream(f, pieces.last + 1)
                if start < 0:
                    return


def _next_stream(f: BinaryIO, pos: int) -> int:
    """The offset of the next bz2 stream header from ``pos`` on (-1: none), read block-wise."""
    f.seek(pos)
    buf, base = b"", pos
    while block := f.read(BLOCK):
        buf += block
        m = BZ2_STREAM_MAGIC.search(buf)
        if m:
            return base + m.start()
        base += len(buf) - 16
        buf = buf[-16:]
    return -1
