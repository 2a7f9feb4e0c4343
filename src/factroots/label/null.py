"""Per-partner tests of `fact_labels`: a fact's top-k Jaccard between L and L′ against the null.

For a fact f of relation r, correct in L and in a partner L′, J = J(f; L, L′) is compared with a
**fact-anchored, stratified null**: the Jaccards between f's L signature and the L′ signatures
of the *other* facts of r, split by the other fact's object:

- ``same``: facts with f's object. Their overlap is what a shared answer token alone gives
  (measured on the sample run: 0.281 for different facts with the same object against 0.298
  for the same fact), so a fact is only shared when J beats this stratum;
- ``diff``: facts with another object: what the relation and the language pair give.

When f's own same-object stratum holds fewer than ``min_null`` values (most objects are rare)
it falls back to every same-object pair of r in (L, L′) (``same_pooled``); without that either,
the partner cannot be shown shared. Each stratum gives a threshold (its ``percentile``) and an
empirical one-sided p-value (1 + #{null ≥ J}) / (1 + n); the partner's p-value is the larger of
the two (both strata must be beaten). ``lower`` is the ``lower_q`` percentile of the diff
stratum: a fact at or below it for every partner is independent *with power*.

The ``pooled`` rule (the earlier one, kept for comparison) tests J against one null per
language pair mixing every relation and object (`neurons.null_distribution`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from factroots.label.neurons import Signatures, null_distribution, pvalue

STRATIFIED, POOLED = "stratified", "pooled"
COLUMNS = ("j", "tau", "p", "tau_same", "tau_diff", "p_same", "p_diff", "n_same", "n_diff",
           "same_pooled", "lower", "n_lower")
_CHUNK = 256   # rows of a one-hot block multiplied at a time (memory: 256 × vocab floats)


@dataclass(frozen=True)
class NullConfig:
    """How partners are tested (the label.* settings)."""

    rule: str = STRATIFIED
    percentile: float = 95.0
    lower_q: float = 50.0
    min_null: int = 10
    null_samples: int = 200
    seed: int = 0


def _onehot(ids: np.ndarray, vocab: np.ndarray) -> np.ndarray:
    """[n, len(vocab)] float32 indicator of which vocabulary ids each row holds."""
    pos = np.clip(np.searchsorted(vocab, ids), 0, len(vocab) - 1)
    hit = (ids >= 0) & (vocab[pos] == ids)
    out = np.zeros((len(ids), len(vocab)), np.float32)
    r, c = np.nonzero(hit)
    out[r, pos[r, c]] = 1.0
    return out


def block_jaccard(sig: Signatures, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Top-k Jaccard of every (row, col) pair of signature rows: an [n, m] matrix (NaN: empty)."""
    a, b = sig.ids[rows], sig.ids[cols]
    vocab = np.intersect1d(a[a >= 0], b[b >= 0])   # only ids on both sides can intersect
    inter = np.zeros((len(rows), len(cols)), np.float64)
    if len(vocab):
        for i in range(0, len(rows), _CHUNK):
            x = _onehot(a[i:i + _CHUNK], vocab)
            for j in range(0, len(cols), _CHUNK):
                inter[i:i + _CHUNK, j:j + _CHUNK] = x @ _onehot(b[j:j + _CHUNK], vocab).T
    union = sig.sizes[rows][:, None] + sig.sizes[cols][None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


class _Block:
    """J of every fact of relation r in L against every fact of r in L′, with their objects."""

    def __init__(self, sig: Signatures, lang: str, other: str, relation: str,
                 objects: Mapping[str, str | None]) -> None:
        rows = sig.by_relation.get((lang, relation), np.zeros(0, np.int64))
        cols = sig.by_relation.get((other, relation), np.zeros(0, np.int64))
        self.m = block_jaccard(sig, rows, cols) if len(rows) and len(cols) else np.zeros((0, 0))
        self.row_of = {u: i for i, u in enumerate(sig.uuids[rows].tolist())}
        self.col_uuid = sig.uuids[cols]
        self.col_obj = np.array([objects.get(u) for u in self.col_uuid.tolist()], dtype=object)
        self.col_of = {u: i for i, u in enumerate(self.col_uuid.tolist())}
        self.row_obj = np.array([objects.get(u) for u in sig.uuids[rows].tolist()], dtype=object)
        self.row_uuid = sig.uuids[rows]
        self._pool: np.ndarray | None = None

    def same_object_pool(self) -> np.ndarray:
        """Sorted J of every same-object pair of different facts of the block (the fallback)."""
        if self._pool is None:
            known = np.array([o is not None for o in self.row_obj], bool)[:, None]
            same = (self.row_obj[:, None] == self.col_obj[None, :]) & known
            same &= self.row_uuid[:, None] != self.col_uuid[None, :]
            v = self.m[same] if self.m.size else np.zeros(0)
            self._pool = np.sort(v[~np.isnan(v)])
        return self._pool


def _stratum(null: np.ndarray, j: float, cfg: NullConfig) -> tuple[float, float]:
    """(threshold, p-value) of a sorted stratum; NaN when it has fewer than min_null values."""
    if len(null) < max(cfg.min_null, 1) or math.isnan(j):
        return math.nan, math.nan
    return float(np.percentile(null, cfg.percentile)), pvalue(null, j)


def _lower(null: np.ndarray, cfg: NullConfig) -> float:
    """The independence bound of a null: its lower_q percentile (NaN when too small)."""
    return float(np.percentile(null, cfg.lower_q)) if len(null) >= max(cfg.min_null, 1) \
        else math.nan


def _test(block: _Block, uuid: str, obj: str | None, cfg: NullConfig) -> dict:
    """The stratified test of one (fact, L, L′)."""
    out = dict.fromkeys(COLUMNS, math.nan)
    out.update(n_same=0, n_diff=0, same_pooled=False, n_lower=0)
    i, c = block.row_of.get(uuid), block.col_of.get(uuid)
    if i is None or c is None:
        return out
    row = block.m[i]
    j = float(row[c])
    others = np.ones(len(row), bool)
    others[c] = False
    ok = others & ~np.isnan(row)
    same_mask = (block.col_obj == obj) if obj is not None else np.zeros(len(row), bool)
    same, diff = np.sort(row[ok & same_mask]), np.sort(row[ok & ~same_mask])
    out.update(j=j, n_same=len(same), n_diff=len(diff))
    if len(same) < max(cfg.min_null, 1):
        same = block.same_object_pool()
        out.update(same_pooled=True, n_same=len(same))
    out["tau_same"], out["p_same"] = _stratum(same, j, cfg)
    out["tau_diff"], out["p_diff"] = _stratum(diff, j, cfg)
    both = (out["p_same"], out["p_diff"])
    out["tau"] = out["tau_same"]
    out["p"] = math.nan if any(math.isnan(x) for x in both) else max(both)
    out["lower"], out["n_lower"] = _lower(diff, cfg), len(diff)
    return out


def partner_tests(sig: Signatures, triples: pd.DataFrame, objects: Mapping[str, str | None],
                  cfg: NullConfig) -> pd.DataFrame:
    """One row of test results (``COLUMNS``) per row of ``triples`` (lang, partner, uuid,
    relation), in the same order."""
    blocks: dict[tuple[str, str, str], _Block] = {}
    pooled: dict[tuple[str, str], np.ndarray] = {}
    rows = []
    for lg, p, u, r in zip(triples["lang"], triples["partner"], triples["uuid"],
                           triples["relation"]):
        key = (lg, p, r)
        if key not in blocks:
            blocks[key] = _Block(sig, lg, p, r, objects)
        res = _test(blocks[key], u, objects.get(u), cfg)
        if cfg.rule == POOLED:
            pair = tuple(sorted((lg, p)))
            if pair not in pooled:
                pooled[pair] = null_distribution(sig, pair[0], pair[1], cfg.null_samples,
                                                 cfg.seed)
            null = pooled[pair]
            res["tau"], res["p"] = _stratum(null, res["j"], cfg)
            res["lower"], res["n_lower"] = _lower(null, cfg), len(null)
        rows.append(res)
    return pd.DataFrame(rows, columns=list(COLUMNS), index=triples.index)


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
