"""The causal verdict of `fact_labels`: which partners an ablation of the fact's neurons shows
shared (columns ``causal_shared_with``, ``causal``, ``causal_reason``), from `interventions`.

For a correct (L, uuid), the `interventions` rows with ``lang = L`` hold one test per partner
L' ≠ L (f's L neurons switched off at its prompt in L', against same-relation controls) and the
positive control L' = L. The partners' permutation p-values are corrected together
(``label.multitest.adjust``, the same ``label.correction`` and ``label.alpha`` as the overlap
verdict); the positive control is not a partner and is not corrected with them.

* ``shared`` (``beats_controls``): some partner's corrected p-value ≤ alpha; those partners
  are ``causal_shared_with``.
* ``not_shared`` (``below_controls``): none is, the test had power (the smallest corrected
  p-value the controls allow is ≤ alpha) and the positive control worked (ablating f's L
  neurons in L beats the controls at alpha): the neurons carry f in L but not in any L'.
* ``untested`` otherwise, with the reason: ``no_interventions`` (the stage did not run),
  ``not_intervened`` (no row: no signature, or the language was not run), ``no_partner``,
  ``no_controls`` (no other fact of the relation), ``underpowered`` (too few controls to reach
  alpha after correction: "not shown shared" would not mean "not shared"),
  ``no_positive_control`` / ``own_no_effect`` (the neurons do not beat the controls even in L).
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pyarrow as pa

from factroots.label.multitest import adjust

SHARED, NOT_SHARED, UNTESTED = "shared", "not_shared", "untested"


def _by_fact(interventions: pa.Table) -> dict[tuple[str, str], list[tuple[str, float, int]]]:
    cols = [interventions.column(c).to_pylist() for c in
            ("lang", "uuid", "target_lang", "pvalue", "n_controls")]
    out: dict[tuple[str, str], list[tuple[str, float, int]]] = defaultdict(list)
    for lg, u, t, p, n in zip(*cols):
        out[(lg, u)].append((t, float("nan") if p is None else float(p), int(n or 0)))
    return out


def verdict(lang: str, rows: list[tuple[str, float, int]], *, alpha: float,
            method: str) -> tuple[str, str, list[str]]:
    """(causal, reason, shared partners) of one fact from its (target, p-value, n) rows."""
    partners = sorted((r for r in rows if r[0] != lang), key=lambda r: r[0])
    if not partners:
        return UNTESTED, "no_partner", []
    tested = [r for r in partners if not math.isnan(r[1])]
    if not tested:
        return UNTESTED, "no_controls", []
    q = adjust([r[1] for r in tested], method)
    shared = [r[0] for r, x in zip(tested, q) if x <= alpha]
    if shared:
        return SHARED, "beats_controls", shared
    floor = adjust([1.0 / (r[2] + 1) for r in tested], method)
    if float(np.nanmin(floor)) > alpha:
        return UNTESTED, "underpowered", []
    own = [r for r in rows if r[0] == lang and not math.isnan(r[1])]
    if not own:
        return UNTESTED, "no_positive_control", []
    if own[0][1] > alpha:
        return UNTESTED, "own_no_effect", []
    return NOT_SHARED, "below_controls", []


def verdicts(keys: list[tuple[str, str]], interventions: pa.Table | None, *,
             alpha: float = 0.05, method: str = "holm") -> list[tuple[str, str, list[str]]]:
    """(causal, reason, shared partners) of each (lang, uuid) in ``keys``."""
    if interventions is None:
        return [(UNTESTED, "no_interventions", [])] * len(keys)
    facts = _by_fact(interventions)
    return [verdict(lg, facts[(lg, u)], alpha=alpha, method=method)
            if (lg, u) in facts else (UNTESTED, "not_intervened", []) for lg, u in keys]


def apply_causal(labels: pa.Table, interventions: pa.Table | None, *, alpha: float = 0.05,
                 method: str = "holm") -> pa.Table:
    """Return ``labels`` with the causal columns filled from ``interventions``."""
    keys = list(zip(labels.column("lang").to_pylist(), labels.column("uuid").to_pylist()))
    return with_causal(labels, verdicts(keys, interventions, alpha=alpha, method=method))


def with_causal(labels: pa.Table, results: list[tuple[str, str, list[str]]]) -> pa.Table:
    """Return ``labels`` with the causal columns set to ``results`` (one per row)."""
    cols = {"causal_shared_with": pa.array([r[2] for r in results], pa.list_(pa.string())),
            "causal": pa.array([r[0] for r in results], pa.string()),
            "causal_reason": pa.array([r[1] for r in results], pa.string())}
    for name, arr in cols.items():
        if name in labels.column_names:
            labels = labels.set_column(labels.column_names.index(name), name, arr)
        else:
            labels = labels.append_column(name, arr)
    return labels
