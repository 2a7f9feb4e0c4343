"""Parquet tables under one output root, partitioned by ``lang``, written atomically.

Layout: ``<out>/<table>/lang=<xx>/part-*.parquet`` (the ``lang`` column lives in the folder
name, as Spark writes it), beside ``_SUCCESS``, ``_manifest.json`` (resolved config, code
version, fingerprint, row count) and ``_stats.json`` (``in``/``out``/``rejected_<reason>``).
A partition is written to a temporary folder and renamed into place, so a reader never sees
half a language; a rerun skips partitions whose ``_SUCCESS`` and fingerprint match.
``<out>/stats.json`` gathers every partition's stats.

Reads are verified: every file is written with Parquet page checksums (CRC32) and read with
their verification, and the manifest lists each data file with its size and rows, so a file
that went missing, lost rows or holds damaged pages is a one-line ``DamagedTableError`` naming
the file and the fix, never a table that silently lacks rows.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import hashlib
import json
import logging
import os
import shutil
import subprocess
import uuid as _uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from factroots import __version__, tables
from factroots.errors import DamagedTableError, MissingTableError, SchemaError

log = logging.getLogger(__name__)

SUCCESS, MANIFEST, STATS = "_SUCCESS", "_manifest.json", "_stats.json"
FAILED = "_FAILED"
# every Parquet file factroots writes carries page CRCs, and every read checks them
WRITE_OPTS = {"compression": "zstd", "write_page_checksum": True}


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """The package version plus the git commit of the source tree when there is one."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    return f"{__version__}+g{rev}" if rev else __version__


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-able parts (config sections, input names, versions)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def table_dir(out: str | Path, table: str) -> Path:
    """The folder of a table."""
    return Path(out) / table


def partition_dir(out: str | Path, table: str, lang: str) -> Path:
    """The folder of one language of a table."""
    return table_dir(out, table) / f"lang={lang}"


def read_manifest(out: str | Path, table: str, lang: str) -> dict | None:
    """The manifest of a finished partition, or None."""
    d = partition_dir(out, table, lang)
    if not (d / SUCCESS).exists() or not (d / MANIFEST).exists():
        return None
    return json.loads((d / MANIFEST).read_text(encoding="utf-8"))


def is_done(out: str | Path, table: str, lang: str, fp: str | None = None) -> bool:
    """True when the partition finished, its files are all there (by name and size) and (if
    given) its fingerprint matches."""
    m = read_manifest(out, table, lang)
    if m is None or (fp is not None and m.get("fingerprint") != fp):
        return False
    return missing_file(out, table, lang, m) is None


def missing_file(out: str | Path, table: str, lang: str, manifest: Mapping) -> str | None:
    """The first data file the manifest lists that is missing or of another size, or None."""
    d = partition_dir(out, table, lang)
    for name, meta in (manifest.get("files") or {}).items():
        f = d / name
        if not f.is_file() or f.stat().st_size != meta.get("bytes"):
            return str(f)
    return None


def done_langs(out: str | Path, table: str) -> list[str]:
    """Languages of a table whose partitions finished, sorted."""
    d = table_dir(out, table)
    if not d.is_dir():
        return []
    return sorted(p.name[5:] for p in d.glob("lang=*") if (p / SUCCESS).exists())


def staging_dir(out: str | Path, table: str) -> Path:
    """A fresh temporary folder inside the table's folder (same file system: rename is atomic)."""
    d = table_dir(out, table) / f"_tmp-{_uuid.uuid4().hex[:12]}"
    d.mkdir(parents=True, exist_ok=False)
    return d


def fail_partition(out: str | Path, table: str, lang: str, error: str) -> None:
    """Unmark a partition that failed in this run: readers then see no finished partition
    (never the older result), and ``_FAILED`` says why. The files stay for inspection."""
    d = partition_dir(out, table, lang)
    if not d.is_dir():
        return
    (d / SUCCESS).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # a full disk: unmarked is what matters
        (d / FAILED).write_text(error + "\n", encoding="utf-8")
        update_stats_summary(out)  # rebuilt from finished partitions: this one leaves it


def clean_stale(out: str | Path, table: str) -> list[str]:
    """Remove what dead runs left inside a table's folder (``_tmp-*``, ``_old-*``,
    ``_inflight``, ``_ckpt-*`` is kept: it is a resumable checkpoint); the names removed.
    Only safe under the output root's lock (no other run is writing)."""
    d = table_dir(out, table)
    gone = []
    for p in sorted(d.glob("_tmp-*")) + sorted(d.glob("_old-*")) + sorted(d.glob("_inflight")):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        gone.append(p.name)
    return gone


def check_balance(stats: Mapping[str, Any]) -> bool:
    """True unless stats has ``in`` and ``out`` and ``in != out + Σ rejected_*``."""
    if "in" not in stats or "out" not in stats:
        return True
    rejected = sum(v for k, v in stats.items() if k.startswith("rejected_"))
    return stats["in"] == stats["out"] + rejected


def verify_files(table: str, staged: Path, rows: int | None = None, *, pages: bool = False,
                 lang: str = "") -> dict[str, dict]:
    """Check the staged files' schemas (and, with ``pages``, every page's checksum); return
    ``{name: {bytes, rows}}`` for the manifest. Raises SchemaError when ``rows`` differs."""
    files: dict[str, dict] = {}
    for f in sorted(staged.glob("*.parquet")):
        try:
            pf = pq.ParquetFile(f, page_checksum_verification=True)
            tables.check_stored(table, pf.schema_arrow)
            if pages:
                for i in range(pf.num_row_groups):
                    pf.read_row_group(i)
        except (OSError, pa.ArrowException) as exc:
            raise DamagedTableError(f"{f}: unreadable Parquet at commit: {exc}".splitlines()[0],
                                    "rerun the stage (the partition was not committed)",
                                    lang) from exc
        files[f.name] = {"bytes": f.stat().st_size, "rows": pf.metadata.num_rows}
    got = sum(v["rows"] for v in files.values())
    if rows is not None and got != rows:
        raise SchemaError(f"{table}: staged files in {staged} hold {got} rows, expected {rows}",
                          "rerun the stage (the partition was not committed)")
    return files


def commit_partition(out: str | Path, table: str, lang: str, staged: Path, *,
                     rows: int | None = None, config: Mapping | None = None,
                     stats: Mapping | None = None, fp: str | None = None,
                     inputs: Mapping | None = None, verify_pages: bool = False) -> Path:
    """Move a staged folder of parquet files into place as ``lang=<lang>`` and mark it done.

    The files are checked first (schema, and the rows their footers hold against ``rows``;
    ``verify_pages`` also reads every page with its checksum, for files another writer made)
    and listed in the manifest, which later reads check against.
    """
    files = verify_files(table, staged, rows, pages=verify_pages, lang=lang)
    rows = sum(v["rows"] for v in files.values())
    if stats is not None and not check_balance(stats):
        raise SchemaError(f"{table}/lang={lang}: stats do not balance: {dict(stats)}",
                          "count every dropped row under rejected_<reason>")
    manifest = {"table": table, "lang": lang, "rows": rows, "files": files,
                "code_version": code_version(),
                "fingerprint": fp, "inputs": dict(inputs or {}), "config": dict(config or {}),
                "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
    (staged / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str), encoding="utf-8")
    if stats is not None:
        (staged / STATS).write_text(json.dumps(dict(stats), indent=1), encoding="utf-8")
    final = partition_dir(out, table, lang)
    trash = final.with_name(f"_old-{lang}-{_uuid.uuid4().hex[:8]}")
    if final.exists():
        final.rename(trash)
    staged.rename(final)
    (final / SUCCESS).touch()
    shutil.rmtree(trash, ignore_errors=True)
    update_stats_summary(out, table, lang)
    return final


def write_table(out: str | Path, table: str, data: pa.Table, lang: str, *,
                config: Mapping | None = None, stats: Mapping | None = None,
                fp: str | None = None, inputs: Mapping | None = None) -> Path:
    """Write one language of a table atomically; ``data`` must match its declaration."""
    tables.check(table, data)
    if data.num_rows and set(data.column("lang").unique().to_pylist()) != {lang}:
        raise SchemaError(f"{table}: rows of other languages in partition lang={lang}",
                          "filter the table to one language before writing")
    staged = staging_dir(out, table)
    try:
        pq.write_table(data.drop_columns(["lang"]), staged / "part-00000.parquet", **WRITE_OPTS)
        return commit_partition(out, table, lang, staged, rows=data.num_rows, config=config,
                                stats=stats, fp=fp, inputs=inputs)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


class PartWriter:
    """Streams Arrow batches of one table into one Parquet file of a staged language folder.

    Batches are gathered into row groups of about ``group_rows`` rows or ``group_bytes`` bytes
    (bounded memory), written to a temporary file beside the language folders and renamed to
    ``<folder>/<name>`` when closed whole, so a task that fails leaves no partial file and a
    retried task replaces the file with the same content. No rows: no file.
    """

    def __init__(self, folder: Path, table: str, name: str, *, group_rows: int = 1 << 15,
                 group_bytes: int = 16 << 20) -> None:
        self.final = Path(folder) / name
        self.tmp = Path(folder).parent / "_inflight" / f"{self.final.parent.name}-{name}.{_uuid.uuid4().hex[:8]}"
        self.schema = tables.stored_schema(table)
        self.table, self.group_rows, self.group_bytes = table, group_rows, group_bytes
        self.buf: list[pa.RecordBatch] = []
        self.buf_rows = self.buf_bytes = self.rows = 0
        self.writer: pq.ParquetWriter | None = None

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, batch: pa.RecordBatch) -> None:
        """Add a batch of the table's stored schema (``tables.stored_schema``)."""
        if not batch.num_rows:
            return
        if not batch.schema.equals(self.schema):
            tables.check_stored(self.table, batch.schema)  # raises unless only nullability differs
            batch = pa.RecordBatch.from_arrays(batch.columns, schema=self.schema)
        self.buf.append(batch)
        self.rows += batch.num_rows
        self.buf_rows += batch.num_rows
        self.buf_bytes += batch.nbytes
        if self.buf_rows >= self.group_rows or self.buf_bytes >= self.group_bytes:
            self._flush()

    def _flush(self) -> None:
        if not self.buf:
            return
        if self.writer is None:
            self.tmp.parent.mkdir(parents=True, exist_ok=True)
            # text columns are mostly unique: dictionary pages would be built and thrown away
            dict_cols = [f.name for f in self.schema if not pa.types.is_string(f.type)]
            self.writer = pq.ParquetWriter(self.tmp, self.schema, use_dictionary=dict_cols,
                                           **WRITE_OPTS)
        self.writer.write_table(pa.Table.from_batches(self.buf, self.schema))
        self.buf, self.buf_rows, self.buf_bytes = [], 0, 0

    def close(self) -> int:
        """Write what is left and move the file into place; the number of rows written."""
        try:
            self._flush()
            if self.writer is not None:
                self.writer.close()
                self.writer = None
                self.final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(self.tmp, self.final)
        except BaseException:
            self.abort()
            raise
        return self.rows

    def abort(self) -> None:
        """Drop what was written (the task failed)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.tmp.unlink(missing_ok=True)
        self.buf = []


def read_table(out: str | Path, table: str, langs: Iterable[str] | None = None,
               columns: list[str] | None = None) -> pa.Table:
    """Read the finished partitions of a table (all, or ``langs``) with its declared schema."""
    spec = tables.spec(table)
    have = done_langs(out, table)
    if not have:
        raise MissingTableError(f"table {table!r} has no finished partition under {out}",
                                f"run the {spec.stage} stage first")
    want = have if langs is None else [lg for lg in langs if lg in have]
    parts = []
    schema = pa.schema([f for f in spec.schema if f.name != "lang"])
    for lg in want:
        t = _read_partition(out, table, lg, schema, spec.stage)
        t = t.append_column("lang", pa.array([lg] * t.num_rows, pa.string()))
        parts.append(tables.conform(table, t))
    out_t = pa.concat_tables(parts) if parts else spec.schema.empty_table()
    return out_t.select(columns) if columns else out_t


def _read_partition(out: str | Path, table: str, lang: str, schema: pa.Schema,
                    stage: str) -> pa.Table:
    """One finished partition, checked against its manifest and its pages' checksums."""
    d = partition_dir(out, table, lang)
    fix = f"delete {d} and rerun `factroots {stage}` (it rebuilds that partition)"
    m = read_manifest(out, table, lang) or {}
    gone = missing_file(out, table, lang, m)
    if gone:
        raise DamagedTableError(f"{gone} is missing or changed size, but {d / SUCCESS} says "
                                "the partition is finished", fix, lang)
    files = sorted(d.glob("*.parquet"))
    listed = m.get("files")
    if listed is not None and sorted(listed) != [f.name for f in files]:
        extra = sorted({f.name for f in files} - set(listed))
        raise DamagedTableError(f"{d}: data files {extra} are not in its manifest", fix, lang)
    try:
        t = (pq.read_table(files, schema=schema, page_checksum_verification=True)
             if files else schema.empty_table())
    except (OSError, pa.ArrowException) as exc:
        raise DamagedTableError(f"{d}: damaged Parquet: {exc}".splitlines()[0], fix, lang) from exc
    if "rows" in m and listed is not None and t.num_rows != m["rows"]:
        raise DamagedTableError(f"{d}: {t.num_rows} rows read, the manifest says {m['rows']}",
                                fix, lang)
    return t


def read_stats(out: str | Path, table: str, lang: str) -> dict:
    """The stats of one finished partition ({} when it has none)."""
    p = partition_dir(out, table, lang) / STATS
    return json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}


def update_stats_summary(out: str | Path, table: str | None = None, lang: str | None = None) -> Path:
    """Update ``<out>/stats.json``: one partition's entry, or (no table given) rebuild it all."""
    root = Path(out)
    path = root / "stats.json"
    if table is None or not path.exists():
        summary: dict[str, dict] = {}
        for d in sorted(root.glob("*/lang=*")):
            if (d / SUCCESS).exists() and (d / STATS).exists():
                summary.setdefault(d.parent.name, {})[d.name[5:]] = json.loads((d / STATS).read_text())
    else:
        summary = json.loads(path.read_text(encoding="utf-8"))
        stats_file = partition_dir(out, table, lang or "") / STATS
        if stats_file.exists():
            summary.setdefault(table, {})[lang] = json.loads(stats_file.read_text(encoding="utf-8"))
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(summary, indent=1, sort_keys=True), encoding="utf-8")
    tmp.replace(path)
    return path
