"""Probe inputs for tests: the mLAMA slice as `facts`/`templates`/`candidates` tables.

Kept out of conftest.py because tests import these helpers by module name, and every test
tier has its own conftest module.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from mlama_slice import FACTS, TEMPLATES

from factroots import storage, tables


def slice_tables(langs: tuple[str, ...] = ("en", "de", "zh")) -> dict[str, pa.Table]:
    """`facts`, `templates` and `candidates` of the slice (candidates = distinct objects)."""
    facts = [{"lang": lang, "relation": rel, "uuid": u, "lineid": li, "sub_uri": su, "sub_label": s,
                  "obj_uri": ou, "obj_label": o, "template": TEMPLATES[(lang, rel)]}
             for lang, rel, u, li, su, s, ou, o in FACTS if lang in langs]
    temps = [{"lang": lg, "relation": r, "template": t} for (lg, r), t in sorted(TEMPLATES.items())
             if lg in langs]
    seen, cands = set(), []
    for f in facts:
        key = (f["lang"], f["relation"], f["obj_label"])
        if key not in seen:
            seen.add(key)
            cands.append({"lang": key[0], "relation": key[1], "candidate": key[2], "source": "facts"})
    return {"facts": tables.conform("facts", pa.Table.from_pylist(facts)),
            "templates": tables.conform("templates", pa.Table.from_pylist(temps)),
            "candidates": tables.conform("candidates", pa.Table.from_pylist(cands))}


def write_inputs(out: Path, langs: tuple[str, ...] = ("en", "de", "zh"),
                 tables_: dict[str, pa.Table] | None = None) -> Path:
    """Write the slice's `facts`, `templates` and `candidates` under ``out``, per language."""
    import pyarrow.compute as pc

    for name, t in (tables_ or slice_tables(langs)).items():
        for lang in langs:
            part = t.filter(pc.equal(t["lang"], lang))
            storage.write_table(out, name, part, lang, fp=f"slice-{name}")
    return out
