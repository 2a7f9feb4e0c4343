"""The facts stage: mLAMA 1.1 (shipped in the package) as the `facts`, `templates` and
`candidates` tables. ``available_langs()`` and ``available_relations()`` list what exists."""

from factroots.facts.sources import available_langs, available_relations

__all__ = ["available_langs", "available_relations"]
