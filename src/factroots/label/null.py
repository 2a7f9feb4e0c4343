"""Per-partner tests of `fact_labels`: a fact's top-k Jaccard between L and L′ against the null.

For a fact f of relation r, correct in L and in a partner L′, J = J(f; L, L′) is compared with a
**fact-anchored, stratified null**: the Jaccards between f's L signature and the L′ signatures
of the *other* facts of r, split by the other fact's object:

- ``same``: facts with f's object. Their overlap is what a shared answer token alone gives
  (measured on the sample run: 0.281 for different facts with the same object against 0.298
  for the same fact), so a fact is only shared when J beats this stratum;
- ``diff``: facts with another object: what the relation and the language pair give.

Thresholds are fact-anchored: the ``percentile`` of f's own stratum, or, when it holds fewer
than ``min_null`` values (most objects are rare), of every pair of different facts of r in
(L, L′) in that stratum (``same_pooled`` / ``diff_pooled``). ``lower``, the ``lower_q``
percentile of the diff stratum (same fallback), is the bound at or below which a partner shows
the fact *not* shared with power. The p-values are empirical, one-sided,
(1 + #{null ≥ J}) / (1 + n), against the relation's pairs of each stratum in (L, L′): a fact's
own stratum has at most n − 1 values, too coarse to survive a correction over many partners.
The partner's p-value is the larger of the two (both strata must be beaten). A stratum with
fewer than ``min_null`` values gives no threshold or p-value: that partner cannot be shown
shared (nor, for the diff stratum, independent).

The ``pooled`` rule (the earlier one, kept for comparison) tests J against one null per
language pair mixing every relation and object (`neurons.null_distribution`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from factroots.label.neurons import Signatures, null_distribution

STRATIFIED, POOLED = "stratified", "pooled"
COLUMNS = ("j", "tau", "p", "tau_same", "tau_diff", "p_same", "p_diff", "n_same", "n_diff",
           "same_pooled", "diff_pooled", "lower", "n_lower")
_CHUNK = 64   # rows intersected at a time (memory: at most 64 × m × k matches)


@dataclass(frozen=True)
class NullConfig:
    """How partners are tested (the label.* settings)."""

    rule: str = STRATIFIED
    percentile: float = 95.0
    lower_q: float = 50.0
    min_null: int = 10
    null_samples: int = 200
    seed: int = 0


def _intersections(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|A_i ∩ B_j| for every row i of ``a`` and j of ``b`` (ids < 0 are padding; ids unique per
    row), through an inverted index of ``b``: the work is the number of shared ids, not n × m × k
    (top-k sets of tens of thousands of neurons rarely meet)."""
    n, m = len(a), len(b)
    inter = np.zeros(n * m, np.int64)
    bi = b.ravel()
    bc = np.repeat(np.arange(m), b.shape[1])[bi >= 0]
    bi = bi[bi >= 0]
    order = np.argsort(bi, kind="stable")
    bi, bc = bi[order], bc[order]
    for start in range(0, n, _CHUNK):
        ai = a[start:start + _CHUNK].ravel()
        ar = np.repeat(np.arange(start, min(start + _CHUNK, n)), a.shape[1])[ai >= 0]
        ai = ai[ai >= 0]
        lo = np.searchsorted(bi, ai, "left")
        cnt = np.searchsorted(bi, ai, "right") - lo
        total = int(cnt.sum())
        if not total:
            continue
        first = np.repeat(lo - (np.cumsum(cnt) - cnt), cnt) + np.arange(total)
        inter += np.bincount(np.repeat(ar, cnt) * m + bc[first], minlength=n * m)
    return inter.reshape(n, m)


def block_jaccard(sig: Signatures, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Top-k Jaccard of every (row, col) pair of signature rows: an [n, m] matrix (NaN: empty)."""
    inter = _intersections(sig.ids[rows], sig.ids[cols]).astype(np.float64)
    union = sig.sizes[rows][:, None] + sig.sizes[cols][None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


class _Block:
    """J of every fact of relation r in L against every fact of r in L′, with their objects."""

    def __init__(self, sig: Signatures, lang: str, other: str, relation: str,
                 objects: Mapping[str, str | None], cache: dict) -> None:
        rows = sig.by_relation.get((lang, relation), np.zeros(0, np.int64))
        cols = sig.by_relation.get((other, relation), np.zeros(0, np.int64))
        self._pools: tuple[np.ndarray, np.ndarray] | None = None
        if (other, lang, relation) in cache:   # J is symmetric: (L′, L) is the transpose
            m, self._pools = cache.pop((other, lang, relation))
            self.m = m.T
        else:
            self.m = block_jaccard(sig, rows, cols) if len(rows) and len(cols) else \
                np.zeros((len(rows), len(cols)))
            cache[(lang, other, relation)] = (self.m, None)
        self._key, self._cache = (lang, other, relation), cache
        self.row_of = {u: i for i, u in enumerate(sig.uuids[rows].tolist())}
        self.col_uuid = sig.uuids[cols]
        self.col_obj = np.array([objects.get(u) for u in self.col_uuid.tolist()], dtype=object)
        self.col_of = {u: i for i, u in enumerate(self.col_uuid.tolist())}
        self.row_obj = np.array([objects.get(u) for u in sig.uuids[rows].tolist()], dtype=object)
        self.row_uuid = sig.uuids[rows]

    def pools(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted J of every pair of different facts of the block: (same object, other object)."""
        if self._pools is None:
            known = np.array([o is not None for o in self.row_obj], bool)[:, None]
            same = (self.row_obj[:, None] == self.col_obj[None, :]) & known
            other = self.row_uuid[:, None] != self.col_uuid[None, :]
            ok = ~np.isnan(self.m)
            self._pools = (np.sort(self.m[same & other & ok]), np.sort(self.m[~same & other & ok]))
            if self._key in self._cache:       # the transposed block has the same pairs
                self._cache[self._key] = (self.m, self._pools)
        return self._pools


def _percentile(x: np.ndarray, q: float, n: np.ndarray, cfg: NullConfig) -> np.ndarray:
    """Row-wise ``q`` percentile of ``x`` ignoring NaN (numpy's linear interpolation); NaN
    where a row has fewer than min_null values."""
    out = np.full(len(x), np.nan)
    ok = n >= max(cfg.min_null, 1)
    if not ok.any():
        return out
    srt = np.sort(x[ok], axis=1)                # NaN sort last
    pos = (n[ok] - 1) * q / 100.0
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n[ok] - 1)
    r = np.arange(len(srt))
    out[ok] = srt[r, lo] + (srt[r, hi] - srt[r, lo]) * (pos - lo)
    return out


def _own_or_pool(x: np.ndarray, pool: np.ndarray, j: np.ndarray, q: float,
                 cfg: NullConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(``q`` percentile, stratum size, pooled?) per fact: its own stratum (the rows of ``x``)
    when it has min_null values, else the relation's pairs of that stratum (``pool``)."""
    n = (~np.isnan(x)).sum(axis=1)
    tau = _percentile(x, q, n, cfg)
    pooled = n < max(cfg.min_null, 1)
    if pooled.any():
        tau[pooled], _ = _sorted_tests(pool, j[pooled], q, cfg)
        n = np.where(pooled, len(pool), n)
    return tau, n, pooled


def _block_tests(block: _Block, uuids: list[str], objects: Mapping[str, str | None],
                 cfg: NullConfig) -> dict[str, np.ndarray]:
    """The stratified tests of every fact of ``uuids`` against one block (L, L′, relation)."""
    q = len(uuids)
    out = {c: np.full(q, np.nan) for c in COLUMNS}
    out.update(n_same=np.zeros(q, np.int64), n_diff=np.zeros(q, np.int64),
               same_pooled=np.zeros(q, bool), diff_pooled=np.zeros(q, bool),
               n_lower=np.zeros(q, np.int64))
    pos = [(k, block.row_of.get(u), block.col_of.get(u)) for k, u in enumerate(uuids)]
    pos = [(k, i, c) for k, i, c in pos if i is not None and c is not None]
    if not pos:
        return out
    k, i, c = (np.array(v, np.int64) for v in zip(*pos))
    x = block.m[i].copy()                       # f's L signature against every L' fact
    j = x[np.arange(len(k)), c]
    x[np.arange(len(k)), c] = np.nan            # never the fact itself
    obj = np.array([objects.get(uuids[t]) for t in k], dtype=object)
    same = (block.col_obj[None, :] == obj[:, None]) & np.array([o is not None for o in obj])[:, None]
    xs, xd = np.where(same, x, np.nan), np.where(same, np.nan, x)
    same_pool, diff_pool = block.pools()
    tau_s, n_s, pooled_s = _own_or_pool(xs, same_pool, j, cfg.percentile, cfg)
    tau_d, n_d, pooled_d = _own_or_pool(xd, diff_pool, j, cfg.percentile, cfg)
    lower, _, _ = _own_or_pool(xd, diff_pool, j, cfg.lower_q, cfg)
    # p-values against the relation's pairs of the language pair: fine enough to survive a
    # correction over many partners (a fact's own stratum has at most n - 1 values)
    _, p_s = _sorted_tests(same_pool, j, None, cfg)
    _, p_d = _sorted_tests(diff_pool, j, None, cfg)
    for name, v in (("j", j), ("tau_same", tau_s), ("p_same", p_s), ("n_same", n_s),
                    ("same_pooled", pooled_s), ("tau_diff", tau_d), ("p_diff", p_d),
                    ("n_diff", n_d), ("diff_pooled", pooled_d), ("lower", lower),
                    ("n_lower", n_d)):
        out[name][k] = v
    out["tau"] = out["tau_same"]
    out["p"] = np.fmax(out["p_same"], out["p_diff"])   # both strata must be beaten
    out["p"][np.isnan(out["p_same"]) | np.isnan(out["p_diff"])] = np.nan
    return out


def _sorted_tests(null: np.ndarray, j: np.ndarray, q: float | None,
                  cfg: NullConfig) -> tuple[np.ndarray, np.ndarray]:
    """(``q`` percentile, p-values of ``j``) against one sorted null shared by every fact."""
    if len(null) < max(cfg.min_null, 1):
        return np.full(len(j), np.nan), np.full(len(j), np.nan)
    ge = len(null) - np.searchsorted(null, np.nan_to_num(j, nan=np.inf), side="left")
    p = np.where(np.isnan(j), np.nan, (1 + ge) / (1 + len(null)))
    tau = np.nan if q is None else float(np.percentile(null, q))
    return np.full(len(j), tau), p


def _pooled_tests(sig: Signatures, lang: str, other: str, j: np.ndarray, cfg: NullConfig,
                  cache: dict) -> tuple[np.ndarray, ...]:
    """(tau, p, lower, n) of the pooled rule for Jaccards ``j`` of one language pair."""
    pair = tuple(sorted((lang, other)))
    if pair not in cache:
        cache[pair] = null_distribution(sig, pair[0], pair[1], cfg.null_samples, cfg.seed)
    null = cache[pair]
    tau, p = _sorted_tests(null, j, cfg.percentile, cfg)
    lower, _ = _sorted_tests(null, j, cfg.lower_q, cfg)
    return tau, p, lower, np.full(len(j), len(null))


def partner_tests(sig: Signatures, triples: pd.DataFrame, objects: Mapping[str, str | None],
                  cfg: NullConfig) -> pd.DataFrame:
    """One row of test results (``COLUMNS``) per row of ``triples`` (lang, partner, uuid,
    relation), in the same order."""
    n = len(triples)
    out = {c: np.full(n, np.nan) for c in COLUMNS}
    out.update(n_same=np.zeros(n, np.int64), n_diff=np.zeros(n, np.int64),
               n_lower=np.zeros(n, np.int64), same_pooled=np.zeros(n, bool),
               diff_pooled=np.zeros(n, bool))
    pooled_nulls: dict = {}
    matrices: dict = {}
    uuids = triples["uuid"].to_numpy(dtype=object)
    for (lg, p, r), idx in triples.groupby(["lang", "partner", "relation"]).indices.items():
        block = _Block(sig, lg, p, r, objects, matrices)
        res = _block_tests(block, uuids[idx].tolist(), objects, cfg)
        if cfg.rule == POOLED:
            res["tau"], res["p"], res["lower"], res["n_lower"] = _pooled_tests(
                sig, lg, p, res["j"], cfg, pooled_nulls)
        for c in COLUMNS:
            out[c][idx] = res[c]
    return pd.DataFrame(out, index=triples.index)


def shared_mask(tests: pd.DataFrame, padj: np.ndarray, cfg: NullConfig, alpha: float) -> np.ndarray:
    """Which partners are shared: J above the decisive threshold(s) and the corrected p ≤ alpha."""
    j, tau = tests["j"].to_numpy(float), tests["tau"].to_numpy(float)
    with np.errstate(invalid="ignore"):
        above = j > tau
        if cfg.rule == STRATIFIED:
            above &= j > tests["tau_diff"].to_numpy(float)
        return above & (padj <= alpha)


def below_mask(tests: pd.DataFrame) -> np.ndarray:
    """Which partners show the fact not shared, with power: J at or below the lower bound."""
    j, low = tests["j"].to_numpy(float), tests["lower"].to_numpy(float)
    with np.errstate(invalid="ignore"):
        return ~np.isnan(low) & (j <= low)
