"""Find the tokenizer that cuts pages into the paper's chunks, as a ``tokenizers`` JSON string.

Looked up on the driver, in order: ``trace.chunk_tokenizer``, else ``probe.model`` when it is
a local folder. A path may be a ``tokenizer.json`` file, or a folder holding one, or a BERT
folder with ``vocab.txt`` (WordPiece, casing from ``tokenizer_config.json``); anything else is
tried with transformers' fast tokenizer from local files only (never a download). The JSON
travels to the workers by broadcast. With nothing found the chunks fall back to counting words
and punctuation (``whitespace``), which the manifest records; a configured
``trace.chunk_tokenizer`` that cannot be loaded is a ``ConfigError``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from factroots.config import RunConfig
from factroots.errors import ConfigError

log = logging.getLogger(__name__)


def _from_path(p: Path) -> str | None:
    if p.is_file() and p.suffix == ".json":
        return p.read_text(encoding="utf-8")
    if not p.is_dir():
        return None
    if (p / "tokenizer.json").is_file():
        return (p / "tokenizer.json").read_text(encoding="utf-8")
    if (p / "vocab.txt").is_file():
        from tokenizers import BertWordPieceTokenizer

        conf = p / "tokenizer_config.json"
        lower = json.loads(conf.read_text()).get("do_lower_case", False) if conf.is_file() else False
        tok = BertWordPieceTokenizer(str(p / "vocab.txt"), lowercase=lower,
                                     strip_accents=False if not lower else None)
        return tok.to_str()
    return None


def _from_transformers(name: str) -> str | None:
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(name, use_fast=True, local_files_only=True)
        return tok.backend_tokenizer.to_str()
    except Exception as exc:  # noqa: BLE001 - any failure means "not available offline"
        log.debug("no fast tokenizer for %s: %s", name, exc)
        return None


def _looks_like_hub_id(name: str) -> bool:
    """``bert-base-multilingual-cased`` or ``org/model``; not a filesystem path."""
    return not name.startswith((".", "/", "~")) and name.count("/") <= 1


def resolve_tokenizer(cfg: RunConfig) -> tuple[str | None, str]:
    """(tokenizer JSON or None, a description for the manifest)."""
    name = cfg.trace.chunk_tokenizer
    explicit = name is not None
    if name is None:
        model = cfg.probe.model
        if not (cfg.path(model).exists() or _looks_like_hub_id(model)):
            log.warning("trace: no chunk tokenizer (probe.model=%s is not a local folder): "
                        "chunks count words and punctuation", model)
            return None, "whitespace"
        name = model
    p = cfg.path(name)
    found = _from_path(p) if p.exists() else None
    if found is None:
        found = _from_transformers(str(p) if p.exists() else name)
    if found is None:
        if explicit:
            raise ConfigError(f"trace.chunk_tokenizer {name!r} cannot be loaded",
                              "point it at a tokenizer.json, a model folder, or a cached hub id")
        log.warning("trace: no tokenizer in %s: chunks count words and punctuation", name)
        return None, "whitespace"
    return found, str(name)
