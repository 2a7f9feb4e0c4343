"""Transfer controls of `fact_labels`: what explains an absent fact's correct answer without
transfer from another language.

- ``sibling_in_lang``: another fact of the same relation with the same object is present and
  correct in L itself (status 3): the model can give this answer from L alone (measured on the
  sample run: 199 of the 212 absent-and-correct facts had one);
- ``prior_rate``: the share of L's *other* prompts of the relation that the model answers with
  this fact's answer (the same predicted ids): a popular answer is right by its prior.

And per partner, ``identical_spellings``: subject and object are written the same in L and L′
(case-insensitive), so the two prompts share their entity tokens; a high Jaccard there may be
the same input rather than a shared fact (measured on the sample run: bg–uk J 0.56 for such
facts against 0.12 for the others). It is recorded and reported, not used to decide.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def objects_of(facts: pa.Table | None) -> dict[str, str | None]:
    """uuid -> object URI (the object's identity across languages); {} without facts."""
    if facts is None or facts.num_rows == 0:
        return {}
    uu, ob = facts.column("uuid").to_pylist(), facts.column("obj_uri").to_pylist()
    out: dict[str, str | None] = {}
    for u, o in zip(uu, ob):
        out.setdefault(u, o or None)
    return out


def sibling_in_lang(rows: pd.DataFrame, status: pd.DataFrame,
                    objects: Mapping[str, str | None]) -> list[bool | None]:
    """Per row (lang, uuid, relation): a status-3 fact of L, same relation and object, exists
    (None where the object is unknown)."""
    known = status[status["status"] == 3]
    have = Counter((lg, r, objects.get(u)) for lg, u, r in
                   zip(known["lang"], known["uuid"], known["relation"]))
    out: list[bool | None] = []
    for lg, u, r, s in zip(rows["lang"], rows["uuid"], rows["relation"], rows["status"]):
        obj = objects.get(u)
        if obj is None:
            out.append(None)
            continue
        n = have.get((lg, r, obj), 0) - (1 if s == 3 else 0)   # never the fact itself
        out.append(n > 0)
    return out


def prior_rates(rows: pd.DataFrame, predictions: pa.Table | None,
                protocol: str = "full") -> np.ndarray:
    """Per row: share of L's other predictions of the relation with the same predicted ids
    (NaN without predictions of the fact or of any other fact of its relation)."""
    out = np.full(len(rows), np.nan)
    if predictions is None or predictions.num_rows == 0:
        return out
    p = predictions.filter(pc.equal(predictions.column("protocol"), protocol))
    langs, uuids = p.column("lang").to_pylist(), p.column("uuid").to_pylist()
    rels, ids = p.column("relation").to_pylist(), p.column("pred_ids").to_pylist()
    answer = {(lg, u): (r, tuple(x or ())) for lg, u, r, x in zip(langs, uuids, rels, ids)}
    count = Counter((r, lg, a) for (lg, _), (r, a) in answer.items())
    total = Counter((r, lg) for (lg, _), (r, _a) in answer.items())
    for i, (lg, u) in enumerate(zip(rows["lang"], rows["uuid"])):
        if (lg, u) not in answer:
            continue
        r, a = answer[(lg, u)]
        others = total[(r, lg)] - 1
        if others > 0:
            out[i] = (count[(r, lg, a)] - 1) / others
    return out


def identical_spellings(langs: list[str], partners: list[str], uuids: list[str],
                        facts: pa.Table | None) -> np.ndarray:
    """Per (lang, partner, uuid): subject and object labels equal in both (case-insensitive)."""
    if facts is None or facts.num_rows == 0:
        return np.zeros(len(uuids), bool)
    cols = [facts.column(c).to_pylist() for c in ("lang", "uuid", "sub_label", "obj_label")]
    names = {(lg, u): ((s or "").casefold(), (o or "").casefold()) for lg, u, s, o in zip(*cols)}
    return np.array([(lg, u) in names and names.get((lg, u)) == names.get((p, u))
                     for lg, p, u in zip(langs, partners, uuids)], bool)
