"""Multiple-testing correction of per-partner p-values: the one rule every verdict uses.

A fact tested against many partner languages is "shared with some partner" by chance alone
(1 − 0.95^52 = 93 % under the null at the paper's 53 languages); its per-partner p-values are
adjusted together, Holm (family-wise error) by default or Benjamini–Hochberg (false discovery
rate). NaN p-values (untested partners) stay NaN and do not count as tests.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METHODS = ("holm", "bh", "none")


def adjust(pvalues: Sequence[float] | np.ndarray, method: str = "holm") -> np.ndarray:
    """Return the adjusted p-values (same order; NaN where the input is NaN)."""
    if method not in METHODS:
        raise ValueError(f"unknown correction {method!r}: use one of {METHODS}")
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    q = p[ok]
    if method == "none":
        out[ok] = q
        return out
    order = np.argsort(q, kind="stable")
    ranked = q[order]
    if method == "holm":
        # step-down: p_(i) * (m - i + 1), made monotone from the smallest up
        adj = np.maximum.accumulate(ranked * (m - np.arange(m)))
    else:
        # step-up: p_(i) * m / i, made monotone from the largest down
        adj = np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]
    res = np.empty(m)
    res[order] = np.minimum(adj, 1.0)
    out[ok] = res
    return out
