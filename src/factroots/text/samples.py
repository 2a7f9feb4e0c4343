"""Bundled small real Wikipedia dump samples (multistream + index) in ``factroots/data/wiki/``.

Made by ``scripts/make_wiki_samples.py`` from complete pages of real dumps (see the README in
that folder for origin and licence, CC BY-SA 4.0). Used by tests, the demo and the lab.
"""

from __future__ import annotations

from pathlib import Path

from factroots.errors import ConfigError
from factroots.text.multistream import index_path_for

WIKI_DIR = Path(__file__).resolve().parents[1] / "data" / "wiki"
_SUFFIX = "wiki-sample-pages-articles-multistream.xml.bz2"


def sample_langs() -> list[str]:
    """Languages that have a bundled dump sample, sorted."""
    return sorted(p.name[: -len(_SUFFIX)] for p in WIKI_DIR.glob(f"*{_SUFFIX}"))


def sample_dump(lang: str) -> Path:
    """The bundled multistream dump sample of ``lang`` (its index lies beside it)."""
    path = WIKI_DIR / f"{lang}{_SUFFIX}"
    if not path.is_file():
        raise ConfigError(f"no bundled dump sample for language {lang!r}",
                          f"use one of {sample_langs()} or configure trace.dumps")
    return path


def sample_index(lang: str) -> Path:
    """The index (``-index.txt.bz2``) of the bundled sample of ``lang``."""
    return index_path_for(sample_dump(lang))
