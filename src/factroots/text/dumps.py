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
import lzma
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

from factroots.errors import ConfigError, DumpNotFoundError, NotADumpError
from factroots.text import xmlpages
from factroots.text.multistream import index_path_for

BLOCK = 1 << 20
HEAD_BYTES = 1 << 18
DEFAULT_PART_BYTES = 32 << 20
# A Spark Python task costs ~30 ms of CPU by itself (measured, BENCHMARKS.md): a file is cut in
# two for parallelism only when each half is at least this big (compressed, ~20 MB of XML).
MIN_SPLIT_BYTES = 4 << 20
BZ2_STREAM_MAGIC = re.compile(rb"BZh[1-9]1AY&SY")
# what bz2 raises for a corrupt or cut-off stream
STREAM_ERRORS = (OSError, ValueError, EOFError)
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
        streams = read_index(info["index"])
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
                xml = decompress_streams(data)
            except STREAM_ERRORS:
                yield _stream_rejects(part, off, part["counts"][i])
                continue
            splitter = xmlpages.PageSplitter()
            run = splitter.feed(xml)
            rows = xmlpages.parse_pages(run, max_bytes) if run else []
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


def _stream_rejects(part: dict, offset: int, count: int) -> list[dict]:
    try:
        entries = index_entries(part["index"], offset)
    except (OSError, ValueError, EOFError):
        entries = []
    if len(entries) != count:
        entries = [(None, None)] * count
    return [xmlpages.reject("corrupt_stream", pid, title) for pid, title in entries]


def _stream_blocks(part: dict, splitter: xmlpages.PageSplitter) -> Iterator[bytes]:
    """Decompressed UTF-8 blocks of a whole file; a corrupt bz2 stream is skipped, counted."""
    enc = part["encoding"]
    decoder = codecs.getincrementaldecoder(enc)("replace") if enc != "utf-8" else None
    for block in _decompressed_blocks(part, splitter):
        if decoder is not None:
            block = decoder.decode(block).encode("utf-8")
        yield block


def _decompressed_blocks(part: dict, splitter: xmlpages.PageSplitter) -> Iterator[bytes]:
    if part["codec"] != "bz2":
        try:
            with open_decompressed(Path(part["path"]), part["codec"]) as f:
                while block := f.read(BLOCK):
                    yield block
        except (OSError, EOFError, lzma.LZMAError, ValueError):
            splitter.pending_rejects += splitter.discard("corrupt_stream") or [
                xmlpages.reject("corrupt_stream")]
        return
    yield from _bz2_resync_blocks(part["path"], splitter)


def _bz2_resync_blocks(path: str, splitter: xmlpages.PageSplitter) -> Iterator[bytes]:
    """bz2 streams one after another; after a corrupt stream, go on at the next stream header."""
    with open(path, "rb") as f:
        dec, pending = bz2.BZ2Decompressor(), b""
        while True:
            data = pending or f.read(BLOCK)
            pending = b""
            if not data:
                return
            try:
                out = dec.decompress(data)
            except (OSError, ValueError, EOFError):
                # the pages of this stream are lost: count the open ones (at least one)
                splitter.pending_rejects += splitter.discard("corrupt_stream") or [
                    xmlpages.reject("corrupt_stream")]
                pending = _next_stream(f, data)
                if not pending:
                    return
                dec = bz2.BZ2Decompressor()
                continue
            if out:
                yield out
            if dec.eof:
                pending, dec = dec.unused_data, bz2.BZ2Decompressor()


def _next_stream(f: BinaryIO, buf: bytes) -> bytes:
    """The bytes from the next bz2 stream header on (empty at end of file), read block-wise."""
    pos = 1
    while True:
        m = BZ2_STREAM_MAGIC.search(buf, pos)
        if m:
            return buf[m.start():]
        block = f.read(BLOCK)
        if not block:
            return b""
        buf, pos = buf[-16:] + block, 0
