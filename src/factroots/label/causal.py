"""The causal verdict of `fact_labels`: which partners an ablation of the fact's neurons shows
shared (columns ``causal_shared_with``, ``causal``, ``causal_reason``), from `interventions`.

Stub until the interventions stage lands: every row is ``untested``.
"""

from __future__ import annotations

import pyarrow as pa

SHARED, NOT_SHARED, UNTESTED = "shared", "not_shared", "untested"


def apply_causal(labels: pa.Table, interventions: pa.Table | None, *, alpha: float = 0.05,
                 method: str = "holm") -> pa.Table:
    """Return ``labels`` with the causal columns filled from ``interventions``."""
    n = labels.num_rows
    reason = "no_interventions" if interventions is None else "not_implemented"
    cols = {"causal_shared_with": pa.array([[] for _ in range(n)], pa.list_(pa.string())),
            "causal": pa.array([UNTESTED] * n, pa.string()),
            "causal_reason": pa.array([reason] * n, pa.string())}
    for name, arr in cols.items():
        if name in labels.column_names:
            labels = labels.set_column(labels.column_names.index(name), name, arr)
        else:
            labels = labels.append_column(name, arr)
    return labels
