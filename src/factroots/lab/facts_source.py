"""Write the lab's facts as an mLAMA-format directory: the fictional world + real background facts.

In lab mode the facts stage reads this directory (``pipeline.lab_facts`` sets
``facts.mlama_dir``), so `facts`, `templates` and `candidates` hold exactly the lab's facts:
every fictional fact of the world and a seeded sample of real mLAMA facts (``background``,
those of every lab language), and trace, probe and label see nothing else. Probing the lab
thus takes seconds. The layout is mLAMA 1.1's: ``<lang>/<relation>.jsonl`` and
``<lang>/templates.jsonl``; there is no candidates folder, so the facts stage derives the
candidates from the facts' objects.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from factroots.facts.facts import build_facts
from factroots.facts.sources import DirSource, ShippedSource
from factroots.facts.templates import build_templates, check_templates
from factroots.lab.world import DETECTOR_RELATION, RELATIONS, World


def real_facts(src: ShippedSource | DirSource, langs: list[str], exclude: list[str]
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(facts, templates) of the real mLAMA source in the lab languages, checked as the facts stage."""
    facts, tpls = [], []
    for lg in langs:
        raw = src.read(lg)
        check = check_templates(raw, None, exclude)
        facts.append(build_facts(raw, None, exclude, check)[0].to_pandas())
        tpls.append(build_templates(raw, None, exclude, check)[0].to_pandas())
    return pd.concat(facts, ignore_index=True), pd.concat(tpls, ignore_index=True)


def background_sample(facts: pd.DataFrame, langs: list[str], n: int, seed: int) -> pd.DataFrame:
    """A seeded sample of ``n`` real facts (uuids present in every lab language), all languages.

    The detector's relation is left out: its null must hold the detector facts only.
    """
    f = facts[facts["lang"].isin(langs) & (facts["relation"] != DETECTOR_RELATION)]
    counts = f.groupby("uuid")["lang"].nunique()
    uuids = np.sort(counts[counts == len(langs)].index.to_numpy())
    rng = np.random.default_rng(seed)
    pick = set(rng.choice(uuids, size=min(n, len(uuids)), replace=False)) if len(uuids) else set()
    return f[f["uuid"].isin(pick)].sort_values(["lang", "relation", "uuid"], kind="stable")


def probe_templates(tpls: pd.DataFrame, langs: list[str]) -> dict[str, dict[str, str]]:
    """lang -> relation -> the mLAMA template of the world's relations (the probe's prompt)."""
    out: dict[str, dict[str, str]] = {}
    for lg in langs:
        t = tpls[tpls["lang"] == lg].set_index("relation")["template"].to_dict()
        missing = [r for r in RELATIONS if r not in t]
        if missing:
            raise ValueError(f"lab: mLAMA has no {lg} template for {missing}")
        out[lg] = {r: t[r] for r in RELATIONS}
    return out


def write_mlama(root: Path, world: World, background: pd.DataFrame, tpls: pd.DataFrame) -> Path:
    """Write the world's facts and the background facts as ``root/<lang>/<relation>.jsonl``."""
    shutil.rmtree(root, ignore_errors=True)
    for lg in world.langs:
        rows: dict[str, list[dict]] = {}
        for i, f in enumerate(world.facts):
            rows.setdefault(f.relation, []).append(
                {"uuid": f.uuid, "lineid": i, "sub_uri": f.sub_uri, "sub_label": f.sub[lg],
                 "obj_uri": f.obj_uri, "obj_label": f.obj[lg]})
        bg = background[background["lang"] == lg]
        for rel, uuid, lineid, su, sl, ou, ol in zip(bg["relation"], bg["uuid"], bg["lineid"],
                                                     bg["sub_uri"], bg["sub_label"],
                                                     bg["obj_uri"], bg["obj_label"]):
            rows.setdefault(rel, []).append({"uuid": uuid, "lineid": int(lineid), "sub_uri": su,
                                             "sub_label": sl, "obj_uri": ou, "obj_label": ol})
        d = root / lg
        d.mkdir(parents=True, exist_ok=True)
        for rel, rs in sorted(rows.items()):
            (d / f"{rel}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n"
                                                    for r in rs), encoding="utf-8")
        t = tpls[(tpls["lang"] == lg) & tpls["relation"].isin(rows)]
        (d / "templates.jsonl").write_text(
            "".join(json.dumps({"relation": r, "template": s}, ensure_ascii=False) + "\n"
                    for r, s in zip(t["relation"], t["template"])), encoding="utf-8")
    return root
