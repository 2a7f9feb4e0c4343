"""Readers of mLAMA: the copy shipped in the package, or a user's mLAMA-format directory.

Both give, per language, the same raw tables (before any check of the method):
``triples`` (lang, relation, uuid, lineid, sub_uri, sub_label, obj_uri, obj_label),
``templates`` (lang, relation, template) and ``candidates`` (lang, relation, candidate, source),
plus the counts of lines that could not be read at all (``malformed_json``, ``bad_record``).

A user directory follows mLAMA 1.1's layout: ``<lang>/<relation>.jsonl`` (one triple a line),
``<lang>/templates.jsonl`` (``{"relation", "template"}``) and optionally a candidates folder with
``TREx_multilingual_objects/<lang>.json`` and ``GoogleRE_objects/<lang>.json``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from factroots.errors import ConfigError, ShardError

log = logging.getLogger(__name__)

TRIPLE_FIELDS = {"uuid": str, "lineid": int, "sub_uri": str, "sub_label": str,
                 "obj_uri": str, "obj_label": str}
RAW_TRIPLES = pa.schema([("lang", pa.string()), ("relation", pa.string()), ("uuid", pa.string()),
                         ("lineid", pa.int32()), ("sub_uri", pa.string()),
                         ("sub_label", pa.string()), ("obj_uri", pa.string()),
                         ("obj_label", pa.string())])
RAW_TEMPLATES = pa.schema([("lang", pa.string()), ("relation", pa.string()),
                           ("template", pa.string())])
RAW_CANDIDATES = pa.schema([("lang", pa.string()), ("relation", pa.string()),
                            ("candidate", pa.string()), ("source", pa.string())])
CANDIDATE_SOURCES = {"TREx_multilingual_objects": "TREx", "GoogleRE_objects": "GoogleRE"}
SHIPPED_FILES = ("triples.parquet", "templates.parquet", "candidates.parquet")
MAX_LOGGED = 20  # malformed lines logged per file; the rest are only counted


@dataclass
class RawLang:
    """The raw mLAMA of one language, with the lines that could not be read."""

    lang: str
    triples: pa.Table
    templates: pa.Table
    candidates: pa.Table | None  # None: no candidate lists for this language
    triple_rejects: Counter = field(default_factory=Counter)
    template_rejects: Counter = field(default_factory=Counter)


def shipped_dir() -> Path:
    """The folder of the mLAMA 1.1 copy shipped inside the package."""
    return Path(str(resources.files("factroots") / "data" / "mlama"))


@functools.lru_cache(maxsize=1)
def shipped_counts() -> dict:
    """``counts.json`` of the shipped data: triples per language and relation, templates."""
    path = shipped_dir() / "counts.json"
    if not path.exists():
        raise ConfigError(f"the shipped mLAMA data is missing ({path})",
                          "reinstall factroots, or run scripts/build_mlama_data.py")
    return json.loads(path.read_text(encoding="utf-8"))


def _shipped_tables() -> tuple[dict[str, pa.Table], ...]:
    """Each shipped table split by language once (filtering 843 k rows per language is slow)."""
    d = shipped_dir()
    return tuple(_split_by_lang(pq.read_table(d / name).select(s.names).cast(s))
                 for name, s in zip(SHIPPED_FILES, (RAW_TRIPLES, RAW_TEMPLATES, RAW_CANDIDATES)))


def _split_by_lang(t: pa.Table) -> dict[str, pa.Table]:
    t = t.take(pc.sort_indices(t["lang"]))  # stable: the order within a language is kept
    counts = {r["values"]: r["counts"] for r in pc.value_counts(t["lang"]).to_pylist()}
    parts, start = {}, 0
    for lang in sorted(counts):  # the sorted table holds the languages in this order
        parts[lang], start = t.slice(start, counts[lang]), start + counts[lang]
    return parts


class ShippedSource:
    """mLAMA 1.1 as shipped in ``factroots/data/mlama`` (Parquet)."""

    name = "shipped mLAMA 1.1"

    def __init__(self) -> None:
        self._parts: tuple[dict[str, pa.Table], ...] | None = None  # loaded on first read

    def langs(self) -> list[str]:
        """Languages present."""
        return sorted(shipped_counts()["triples"])

    def relations(self) -> dict[str, list[str]]:
        """Relation -> the languages that have triples for it."""
        return _invert(shipped_counts()["triples"])

    def template_relations(self) -> list[str]:
        """Every relation that has a template in some language."""
        return sorted({r for rels in shipped_counts()["templates"].values() for r in rels})

    def digest(self, lang: str) -> str:
        """A hash that changes when this language's input changes."""
        return hashlib.sha256((shipped_dir() / "CHECKSUMS").read_bytes()).hexdigest()[:16]

    def files(self, lang: str) -> list[Path]:
        """The files whose content this language's tables depend on (fingerprinted)."""
        return [shipped_dir() / "CHECKSUMS"]

    def read(self, lang: str, relations: list[str] | None = None) -> RawLang:
        """The raw tables of one language (triples of ``relations`` only, when given)."""
        if self._parts is None:
            self._parts = _shipped_tables()
        triples, templates, candidates = (
            parts.get(lang, schema.empty_table()) for parts, schema in
            zip(self._parts, (RAW_TRIPLES, RAW_TEMPLATES, RAW_CANDIDATES)))
        if relations is not None:
            triples = triples.filter(pc.is_in(triples["relation"], pa.array(relations, pa.string())))
        return RawLang(lang, triples, templates, candidates)


class DirSource:
    """A user's mLAMA-format directory, with an optional candidates directory."""

    def __init__(self, root: Path, candidates_dir: Path | None = None) -> None:
        if not root.is_dir():
            raise ConfigError(f"facts.mlama_dir {root} is not a directory",
                              "point --mlama-dir at a folder of <lang>/<relation>.jsonl")
        if candidates_dir is None and any((root / s).is_dir() for s in CANDIDATE_SOURCES):
            candidates_dir = root
        if candidates_dir is not None and not candidates_dir.is_dir():
            raise ConfigError(f"facts.candidates_dir {candidates_dir} is not a directory",
                              "point it at a folder with TREx_multilingual_objects/")
        self.root, self.candidates_dir = root, candidates_dir
        self.name = str(root)

    def _lang_dirs(self) -> dict[str, Path]:
        return {p.name: p for p in sorted(self.root.iterdir())
                if p.is_dir() and p.name not in CANDIDATE_SOURCES and any(p.glob("*.jsonl"))}

    def langs(self) -> list[str]:
        """Languages present (sub-folders holding .jsonl files)."""
        langs = sorted(self._lang_dirs())
        if not langs:
            raise ConfigError(f"facts.mlama_dir {self.root} holds no <lang>/*.jsonl files",
                              "use mLAMA's layout: <lang>/<relation>.jsonl, <lang>/templates.jsonl")
        return langs

    def relations(self) -> dict[str, list[str]]:
        """Relation -> the languages that have a non-empty triples file for it."""
        have: dict[str, list[str]] = {}
        for lang, d in self._lang_dirs().items():
            for f in _relation_files(d):
                if f.stat().st_size > 0:
                    have.setdefault(f.stem, []).append(lang)
        return have

    def template_relations(self) -> list[str]:
        """Every relation named in some language's templates.jsonl."""
        rels = set()
        for lang in self.langs():
            _, rows = _read_templates(self.root / lang / "templates.jsonl", lang)
            rels |= {r["relation"] for r in rows}
        return sorted(rels)

    def files(self, lang: str) -> list[Path]:
        """This language's input files (fingerprinted by content)."""
        files = sorted((self.root / lang).glob("*.jsonl"))
        if self.candidates_dir is not None:
            files += [self.candidates_dir / s / f"{lang}.json" for s in CANDIDATE_SOURCES]
        return [f for f in files if f.exists()]

    def digest(self, lang: str) -> str:
        """A hash of the names, sizes and modification times of this language's input files."""
        files = sorted((self.root / lang).glob("*.jsonl"))
        if self.candidates_dir is not None:
            files += [self.candidates_dir / s / f"{lang}.json" for s in CANDIDATE_SOURCES]
        parts = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.exists()]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]

    def read(self, lang: str, relations: list[str] | None = None) -> RawLang:
        """Parse one language's files (triples of ``relations`` only, when given).

        An unreadable file fails the language (``ShardError``); a bad line is a counted reject.
        """
        d = self.root / lang
        try:
            tpl_rejects, tpl_rows = _read_templates(d / "templates.jsonl", lang)
            rows: list[dict] = []
            rejects: Counter = Counter()
            for f in _relation_files(d):
                if relations is None or f.stem in relations:
                    rejects.update(_read_triples(f, lang, rows))
            cands = self._read_candidates(lang)
        except OSError as exc:
            raise ShardError(f"{lang}: cannot read {exc.filename}: {exc.strerror}", lang,
                             "check the file's permissions") from exc
        return RawLang(lang, _table(rows, RAW_TRIPLES), _table(tpl_rows, RAW_TEMPLATES), cands,
                       rejects, tpl_rejects)

    def _read_candidates(self, lang: str) -> pa.Table | None:
        paths = {source: self.candidates_dir / sub / f"{lang}.json"
                 for sub, source in CANDIDATE_SOURCES.items()} if self.candidates_dir else {}
        if not any(p.exists() for p in paths.values()):
            return None  # no lists for this language: build_candidates derives them
        rows = []
        for source, path in paths.items():
            if path.exists():
                rows += candidate_rows(path, lang, source)
        return _table(rows, RAW_CANDIDATES)


def open_source(mlama_dir: Path | None, candidates_dir: Path | None = None
                ) -> ShippedSource | DirSource:
    """The shipped data, or the user's directory when ``mlama_dir`` is given."""
    if mlama_dir is None:
        if candidates_dir is not None:
            raise ConfigError("facts.candidates_dir is set without facts.mlama_dir",
                              "set facts.mlama_dir too, or drop candidates_dir")
        return ShippedSource()
    return DirSource(mlama_dir, candidates_dir)


def available_langs(mlama_dir: str | Path | None = None) -> list[str]:
    """Languages of the shipped mLAMA 1.1 (or of an mLAMA-format directory)."""
    return open_source(Path(mlama_dir) if mlama_dir else None).langs()


def available_relations(mlama_dir: str | Path | None = None, lang: str | None = None
                        ) -> list[str]:
    """Relations with triples (in ``lang``, or in any language), sorted."""
    rels = open_source(Path(mlama_dir) if mlama_dir else None).relations()
    return sorted(r for r, langs in rels.items() if lang is None or lang in langs)


def candidate_rows(path: Path, lang: str, source: str) -> list[dict]:
    """Rows (lang, relation, candidate, source) of one mLAMA candidates file, in list order."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ShardError(f"{path}: not valid JSON ({exc})", lang, "fix or remove the file") from exc
    if not isinstance(data, dict):
        raise ShardError(f"{path}: expected {{relation: {{objects: [...]}}}}", lang,
                         "fix or remove the file")
    return [{"lang": lang, "relation": rel, "candidate": obj, "source": source}
            for rel, entry in data.items() if isinstance(entry, dict)
            for obj in entry.get("objects", []) if isinstance(obj, str)]


def _relation_files(d: Path) -> list[Path]:
    return [f for f in sorted(d.glob("*.jsonl")) if f.name != "templates.jsonl" and f.is_file()]


def _json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value or the exception) for every non-blank line."""
    with path.open("rb") as fh:
        for no, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                yield no, json.loads(raw.decode("utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                yield no, exc


def _reject(counts: Counter, reason: str, path: Path, no: int, why: str) -> None:
    counts[reason] += 1
    if counts[reason] <= MAX_LOGGED:
        log.warning("%s:%d: %s (rejected_%s)", path, no, why, reason)
    elif counts[reason] == MAX_LOGGED + 1:
        log.warning("%s: more rejected_%s lines; only counting them now", path, reason)


def _read_triples(path: Path, lang: str, rows: list[dict]) -> Counter:
    rejects: Counter = Counter()
    for no, obj in _json_lines(path):
        if isinstance(obj, Exception) or not isinstance(obj, dict):
            _reject(rejects, "malformed_json", path, no, f"not a JSON object: {obj}")
            continue
        bad = [k for k, tp in TRIPLE_FIELDS.items()
               if not isinstance(obj.get(k), tp) or isinstance(obj.get(k), bool)]
        if not bad and not 0 <= obj["lineid"] < 2**31:  # lineid is an int32 column
            bad = ["lineid"]
        if bad:
            _reject(rejects, "bad_record", path, no, f"missing or mistyped field {bad[0]!r}")
            continue
        rows.append({"lang": lang, "relation": path.stem, **{k: obj[k] for k in TRIPLE_FIELDS}})
    return rejects


def _read_templates(path: Path, lang: str) -> tuple[Counter, list[dict]]:
    rejects: Counter = Counter()
    rows: list[dict] = []
    if not path.exists():
        log.warning("%s: no templates.jsonl; every triple of %s is rejected", path, lang)
        return rejects, rows
    for no, obj in _json_lines(path):
        if isinstance(obj, Exception) or not isinstance(obj, dict):
            _reject(rejects, "malformed_json", path, no, f"not a JSON object: {obj}")
        elif not isinstance(obj.get("relation"), str) or not isinstance(obj.get("template"), str):
            _reject(rejects, "bad_record", path, no, "needs string fields relation and template")
        else:
            rows.append({"lang": lang, "relation": obj["relation"], "template": obj["template"]})
    return rejects, rows


def _table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pydict({n: [r[n] for r in rows] for n in schema.names}, schema=schema)


def _invert(counts: dict[str, dict[str, int]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for lang, rels in sorted(counts.items()):
        for rel, n in rels.items():
            if n > 0:
                out.setdefault(rel, []).append(lang)
    return out
