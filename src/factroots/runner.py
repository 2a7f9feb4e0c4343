"""The stage runner: what every stage shares, written once.

A stage is a declaration (``Stage``: its name = CLI verb, output tables in build order, input
tables, version, the config slice that changes its results, input files) plus a build function.
``run_stage(stage, plan)`` does the rest:

- **languages and shards**: the plan's languages (or the stage's own ``langs``), this shard's
  share when the stage is ``sharded`` (``probe.shard`` = i/n, balanced by input rows);
- **fingerprints by content**: stage name and version, the settings slice, the relations, the
  fingerprints recorded in the input tables' manifests, and every input file by size, mtime and
  a content hash (``file_id``);
- **skip-if-done, per table**: a (table, language) whose partition is finished with the same
  fingerprint is skipped; when one table of a stage is stale, it and the tables after it are
  rebuilt (a killed trace resumes at the first table it had not finished);
- **atomic commit** (``Work.write`` / ``Work.commit``, via ``storage``), files verified;
- **a lock on the output root** (``<out>/.lock``): a second run on the same root is refused
  with a one-line error; stale ``_tmp-*``/``_old-*`` folders of dead runs go at stage start;
- **one failure policy**: a ``ShardError`` fails that language (its other languages go on); a
  missing required input (an upstream stage failed or was not run) fails it too. A failed
  (table, language) is unmarked (``storage.fail_partition``: no reader sees the older result),
  listed in ``<out>/run_report.json``, and the run ends with ``RunFailedError`` (exit non-zero).
  Any other error stops the stage: everything it had not committed is recorded as failed.

The plan (``Plan``) is built once, after the lab build (``pipeline.plan``): final config, output
root, languages, relations. A stage that needs it refuses a config still naming the lab model
placeholder (``probe.model: lab``): that check lives here only.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import functools
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from factroots import __version__, storage, tables
from factroots.config import LAB_MODEL, RunConfig, to_dict
from factroots.errors import ConfigError, FactrootsError, OutputError, RunFailedError, ShardError

log = logging.getLogger(__name__)

LOCK, REPORT = ".lock", "run_report.json"
# content hash of input files: whole files up to FULL_HASH_BYTES; above, a sample (file_id)
FULL_HASH_BYTES = 64 << 20
BLOCK_BYTES, BLOCKS = 1 << 20, 16


# ---- the plan --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """One run, resolved once: the final config, output root, languages and relations."""

    cfg: RunConfig
    out: Path
    langs: tuple[str, ...]
    relations: tuple[str, ...]

    def keep(self, t: pa.Table) -> pa.Table:
        """``t`` restricted to the plan's relations (all when none are named)."""
        if not self.relations or "relation" not in t.column_names:
            return t
        return t.filter(pc.is_in(t["relation"], pa.array(list(self.relations), pa.string())))


def plan_of(cfg: RunConfig | Plan) -> Plan:
    """A plan for a config that needs no resolving (a Plan is returned as it is): languages
    are ``langs``, else every language with finished facts."""
    if isinstance(cfg, Plan):
        return cfg
    out = cfg.path(cfg.out)
    langs = tuple(dict.fromkeys(cfg.langs)) or tuple(storage.done_langs(out, "facts"))
    return Plan(cfg, out, langs, tuple(dict.fromkeys(cfg.relations)))


# ---- fingerprints ----------------------------------------------------------------------------

def file_id(path: str | Path) -> dict:
    """A file known by content: name, size, mtime and a blake2b hash.

    Files up to ``FULL_HASH_BYTES`` (64 MiB) are hashed whole. Larger ones (Wikipedia dumps,
    model weights) hash their first and last MiB and 16 evenly spaced MiB between, with the
    size: 18 MiB read whatever the size. That sees truncation, appends, a re-download (new
    mtime), another file of the same size (its header, index positions and compressed streams
    differ) and damage in any sampled block; a same-size in-place edit outside the sampled
    blocks that also keeps the mtime is not seen (bump the stage with ``--set`` of any setting,
    or delete its partitions, after such an edit).
    """
    p = Path(path)
    if "://" in str(path) or not p.is_file():
        return {"name": str(path), "missing": not p.exists()} if "://" not in str(path) \
            else {"uri": str(path)}
    st = p.stat()
    # cached per (size, mtime, ctime): any write moves ctime, even one that restores the mtime
    return {"name": p.name, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns,
            **_content_hash(str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                            FULL_HASH_BYTES, BLOCK_BYTES)}


@functools.lru_cache(maxsize=4096)
def _content_hash(path: str, size: int, mtime_ns: int, ctime_ns: int, full: int,
                  block: int) -> dict:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        if size <= full:
            for chunk in iter(lambda: f.read(block), b""):
                h.update(chunk)
            return {"hash": h.hexdigest()}
        step = (size - block) // (BLOCKS + 1)
        for off in [0, *(step * i for i in range(1, BLOCKS + 1)), size - block]:
            f.seek(off)
            h.update(f.read(block))
    return {"hash": h.hexdigest(), "sampled": f"head+tail+{BLOCKS}x{block}"}


# ---- the declaration ---------------------------------------------------------------------------

def _no_settings(plan: Plan) -> Any:
    return None


@dataclass(frozen=True)
class Stage:
    """A stage: what it builds from what, and the function that builds it.

    ``build(work)`` builds the tables ``work.todo`` lists for ``work.langs`` and commits each
    (table, language) with ``work.write`` (an Arrow table) or ``work.commit`` (a staged folder
    of Parquet files, e.g. written by Spark). It raises ``ShardError(lang=...)`` or calls
    ``work.fail(lang, why)`` for a language that cannot be built.
    """

    name: str                                   # the CLI verb, e.g. "probe", "lab build"
    outputs: tuple[str, ...]                    # tables written, in build order
    build: Callable[[Work], Any]
    version: str                                # bump when the stage's results change
    settings: Callable[[Plan], Any] = _no_settings   # the config slice that changes results
    inputs: tuple[str, ...] = ()                # tables needed for the same language
    optional: tuple[str, ...] = ()              # tables used when present (fingerprinted)
    files: Callable[[Plan, str], Iterable[str | Path]] | None = None  # input files per lang
    key: Callable[[Plan, str], Any] | None = None    # other per-language fingerprint parts
    langs: Callable[[Plan], list[str]] | None = None  # default: the plan's languages
    per_lang: bool = True       # build once per language; False: once for all pending ones
    cross_lang: bool = False    # results of a language depend on all: rebuilt all together
    sharded: bool = False       # only this shard's languages (probe.shard), by inputs[0] rows
    needs_plan: bool = True     # refuses the lab model placeholder (all but facts, lab build)
    result: str | None = None   # the table whose folder run_stage returns (default: last)


@dataclass
class Work:
    """What one call of a build function must do, and how it commits."""

    stage: Stage
    plan: Plan
    langs: list[str]
    todo: dict[str, list[str]]          # lang -> tables to build, in order
    fps: dict[str, str]                 # lang -> fingerprint
    committed: set[tuple[str, str]] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def cfg(self) -> RunConfig:
        """The plan's final config."""
        return self.plan.cfg

    @property
    def out(self) -> Path:
        """The output root."""
        return self.plan.out

    def wants(self, table: str, lang: str) -> bool:
        """True when ``table`` of ``lang`` is to be built in this call."""
        return lang in self.todo and table in self.todo[lang] and lang not in self.failed

    def write(self, table: str, data: pa.Table, lang: str, *, stats: dict | None = None,
              inputs: dict | None = None, config: dict | None = None) -> Path:
        """Write one (table, language) atomically with this stage's fingerprint."""
        self._check(table, lang)
        p = storage.write_table(self.out, table, data, lang, stats=stats, fp=self.fps[lang],
                                inputs=inputs, config=to_dict(self.cfg) if config is None
                                else config)
        self.committed.add((table, lang))
        return p

    def commit(self, table: str, lang: str, staged: Path, *, rows: int | None = None,
               stats: dict | None = None, inputs: dict | None = None,
               config: dict | None = None) -> Path:
        """Commit a staged folder of Parquet files another writer made (e.g. Spark): every
        page is read back with its checksum and the rows counted before it goes in place."""
        self._check(table, lang)
        p = storage.commit_partition(self.out, table, lang, staged, rows=rows, stats=stats,
                                     fp=self.fps[lang], inputs=inputs, verify_pages=True,
                                     config=to_dict(self.cfg) if config is None else config)
        self.committed.add((table, lang))
        return p

    def fail(self, lang: str, why: str) -> None:
        """Fail a language: its tables of this stage are not committed in this run."""
        self.failed.setdefault(lang, why)

    def _check(self, table: str, lang: str) -> None:
        if table not in self.stage.outputs or lang not in self.fps:
            raise ShardError(f"stage {self.stage.name} may not write {table}/lang={lang}", lang,
                             "declare the table in the stage's outputs")


# ---- the lock and the run report -----------------------------------------------------------

@dataclass
class _Session:
    out: Path
    fd: int
    depth: int = 0
    started: str = ""
    stages: dict[str, dict] = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)
    error: str | None = None


_SESSIONS: dict[Path, _Session] = {}


def _open_out(out: Path) -> int:
    """Create the output root and take its lock (a one-line error when it cannot)."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"out {out} is a file, not a folder",
                          "point --out (or `out`) at a folder or at a path that does not exist")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise OutputError(f"cannot write to out {out}: {exc.strerror}",
                          "point --out (or `out`) at a writable folder") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise OutputError(f"another factroots run (pid {holder}) is using out {out} "
                          f"(it holds {out / LOCK})",
                          "wait for it to finish, or use another --out") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


@contextlib.contextmanager
def session(out: str | Path) -> Iterator[_Session]:
    """Hold the output root's lock and gather the run report; the outermost session writes
    ``<out>/run_report.json`` and raises ``RunFailedError`` when anything failed."""
    key = Path(out).resolve()
    s = _SESSIONS.get(key)
    if s is not None:
        s.depth += 1
        try:
            yield s
        finally:
            s.depth -= 1
        return
    s = _Session(key, _open_out(key), started=_now())
    _SESSIONS[key] = s
    try:
        yield s
    except BaseException as exc:
        s.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        _close(s)
        raise
    _close(s)
    if s.failures:
        names = sorted({f"{f['table']}/{f['lang']}" for f in s.failures})
        first = s.failures[0]
        raise RunFailedError(f"{len(names)} partition(s) failed ({', '.join(names[:6])}"
                             f"{', ...' if len(names) > 6 else ''}); first: {first['error']}",
                             ",".join(sorted({f["lang"] for f in s.failures})),
                             f"see {key / REPORT}; fix those inputs and rerun "
                             "(finished partitions are skipped)")


def _close(s: _Session) -> None:
    try:
        _write_report(s, final=True)
    finally:
        _SESSIONS.pop(s.out, None)
        os.close(s.fd)  # releases the lock


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _write_report(s: _Session, final: bool = False) -> None:
    report = {"ok": not s.failures and s.error is None, "started": s.started,
              "finished": _now() if final else None, "code_version": storage.code_version(),
              "error": s.error, "failed": s.failures, "stages": s.stages}
    tmp = s.out / f".{REPORT}.tmp{os.getpid()}"
    with contextlib.suppress(OSError):  # a full disk must not hide the error that filled it
        tmp.write_text(json.dumps(report, indent=1, sort_keys=True, default=str), "utf-8")
        tmp.replace(s.out / REPORT)


# ---- shards ------------------------------------------------------------------------------------

def parse_shard(shard: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n), checked."""
    try:
        i, n = (int(x) for x in shard.split("/"))
    except ValueError:
        raise ConfigError(f"probe.shard {shard!r} is not i/n", "use e.g. 0/4") from None
    if not 0 <= i < n:
        raise ConfigError(f"probe.shard {shard!r}: need 0 <= i < n", "use e.g. 0/4")
    return i, n


def shard_langs(sizes: dict[str, int], shard: str) -> list[str]:
    """This shard's languages: largest first to the least loaded shard (ties: lower index)."""
    i, n = parse_shard(shard)
    loads = [0] * n
    mine = []
    for lang in sorted(sizes, key=lambda x: (-sizes[x], x)):
        j = min(range(n), key=lambda s: (loads[s], s))
        loads[j] += sizes[lang]
        if j == i:
            mine.append(lang)
    return sorted(mine)


# ---- run_stage -----------------------------------------------------------------------------

def stage_langs(stage: Stage, plan: Plan) -> list[str]:
    """The languages ``stage`` works on in ``plan`` (this shard's, when sharded)."""
    if stage.langs:
        langs = list(stage.langs(plan))
    elif plan.langs or not stage.inputs:
        langs = list(plan.langs)
    else:  # no languages named and no facts: those of its first input
        langs = storage.done_langs(plan.out, stage.inputs[0])
    if stage.sharded:
        src = stage.inputs[0]
        sizes = {lg: int((storage.read_manifest(plan.out, src, lg) or {}).get("rows") or 0)
                 for lg in langs}
        langs = shard_langs(sizes, plan.cfg.probe.shard)
    return langs


def fingerprint(stage: Stage, plan: Plan, lang: str, langs: list[str]) -> str:
    """The fingerprint of ``stage``'s outputs for ``lang`` (``langs``: for cross-language
    stages, whose every output depends on every language's inputs)."""
    over = langs if stage.cross_lang else [lang]
    ins = {t: {lg: (storage.read_manifest(plan.out, t, lg) or {}).get("fingerprint")
               for lg in over} for t in (*stage.inputs, *stage.optional)}
    files = [file_id(f) for f in stage.files(plan, lang)] if stage.files else []
    key = stage.key(plan, lang) if stage.key else None
    return storage.fingerprint(stage.name, stage.version, __version__, stage.settings(plan),
                               sorted(plan.relations), ins, files, key,
                               sorted(over) if stage.cross_lang else lang)


def _pending(stage: Stage, plan: Plan, langs: list[str], fps: dict[str, str]
             ) -> dict[str, list[str]]:
    todo = {}
    for lg in langs:
        for i, t in enumerate(stage.outputs):
            if not storage.is_done(plan.out, t, lg, fps[lg]):
                todo[lg] = list(stage.outputs[i:])  # this table and the ones built from it
                break
    if stage.cross_lang and todo:
        todo = {lg: list(stage.outputs) for lg in langs}
    return todo


def run_stage(stage: Stage, cfg: RunConfig | Plan) -> Path:
    """Run ``stage`` for every pending language of the plan; return its result table's folder.

    Failures follow the one policy in the module docstring; the outermost ``session`` raises
    ``RunFailedError`` at its end when any (table, language) failed.
    """
    plan = plan_of(cfg)
    if stage.needs_plan and plan.cfg.probe.model == LAB_MODEL:
        raise ConfigError(f"stage {stage.name}: probe.model is the placeholder {LAB_MODEL!r}, "
                          "not resolved to the built lab model",
                          "run it through the `factroots` CLI or `pipeline.plan(cfg)`, or set "
                          "probe.model to a model path")
    with session(plan.out) as s:
        for t in stage.outputs:
            if gone := storage.clean_stale(plan.out, t):
                log.info("%s: removed %s left by a dead run", t, ", ".join(gone))
        entry = s.stages.setdefault(stage.name, {"langs": {}})
        langs = stage_langs(stage, plan)
        fps = {lg: fingerprint(stage, plan, lg, langs) for lg in langs}
        todo = _pending(stage, plan, langs, fps)
        for lg in langs:
            entry["langs"][lg] = "pending" if lg in todo else "skipped"
        work = Work(stage, plan, sorted(todo), todo, fps)
        for lg in sorted(todo):
            if miss := [t for t in stage.inputs if not storage.is_done(plan.out, t, lg)]:
                work.fail(lg, f"input {miss[0]}/lang={lg} is not finished (its stage failed or "
                              f"was not run: run `factroots {tables.spec(miss[0]).stage}`)")
        log.info("%s: %d languages, %d to build", stage.name, len(langs), len(todo))
        try:
            _build(stage, work)
        except BaseException as exc:
            why = _one_line(exc)
            for lg in work.todo:
                work.fail(lg, why)
            _record(s, work, entry)
            if isinstance(exc, OSError):
                raise _output_error(exc, plan.out) from exc
            raise
        _record(s, work, entry)
    return storage.table_dir(plan.out, stage.result or stage.outputs[-1])


def _build(stage: Stage, work: Work) -> None:
    todo = [lg for lg in work.langs if lg not in work.failed]
    if not todo:
        return
    if not stage.per_lang:
        _guarded(stage, work, todo)
        return
    for lg in todo:
        one = Work(stage, work.plan, [lg], {lg: work.todo[lg]}, work.fps)
        try:
            _guarded(stage, one, [lg])
        finally:
            work.committed |= one.committed
            work.failed.update(one.failed)


def _guarded(stage: Stage, work: Work, langs: list[str]) -> None:
    """Call the build; a ShardError fails its languages (all of this call's when unnamed)."""
    work.langs = langs
    try:
        stage.build(work)
    except ShardError as exc:
        named = [lg for lg in (exc.lang or "").split(",") if lg in langs] or langs
        for lg in named:
            work.fail(lg, _one_line(exc))
        for lg in langs:  # the others of a multi-language call stopped with it
            work.fail(lg, f"stopped when {','.join(named)} failed: {_one_line(exc)}")
        log.error("%s failed for %s: %s", stage.name, ",".join(named), exc)


def _record(s: _Session, work: Work, entry: dict) -> None:
    """Put each pending (table, language) in the report: committed, or failed and unmarked."""
    for lg in work.todo:
        missing = [t for t in work.todo[lg] if (t, lg) not in work.committed]
        why = work.failed.get(lg) or f"stage {work.stage.name} did not write {missing[0]}/lang={lg}" \
            if missing else None
        if why is None:
            entry["langs"][lg] = "done"
            continue
        entry["langs"][lg] = "failed"
        for t in missing:
            storage.fail_partition(work.out, t, lg, why)
            s.failures.append({"stage": work.stage.name, "table": t, "lang": lg, "error": why})
        log.error("%s/%s failed: %s", work.stage.name, lg, why)
    _write_report(s)


def _one_line(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, FactrootsError) else f"{type(exc).__name__}: {exc}"
    return text.splitlines()[0] if text else type(exc).__name__


def _output_error(exc: OSError, out: Path) -> OutputError:
    """An OS error while writing outputs, as one line with the fix."""
    where = exc.filename or out
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputError(f"disk full writing {where}",
                           f"free space under {out} (or use another --out) and rerun: "
                           "finished partitions are kept, nothing half-written is")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return OutputError(f"cannot write {where}: {exc.strerror}",
                           "point --out at a writable folder")
    return OutputError(f"{where}: {exc.strerror or exc}", "check the file system under out")
