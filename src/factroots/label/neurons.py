"""Top-k neuron sets of facts, their Jaccard overlaps, and the null distribution per language pair.

The null for a pair (L, L') holds the top-k Jaccard between *different* facts of the *same*
relation, one fact's set taken in L and the other's in L': what overlap a fact shares by
relation and language alone. A fact shared between L and L' must beat it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa


@dataclass
class Signatures:
    """Top-k sets, padded to a matrix, indexed by (lang, uuid)."""

    ids: np.ndarray            # [n, k] int64, padded with -1 .. -k
    sizes: np.ndarray          # [n] number of real ids per row
    index: dict[tuple[str, str], int]
    by_relation: dict[tuple[str, str], np.ndarray]   # (lang, relation) -> row numbers
    uuids: np.ndarray          # [n] uuid of each row
    k: int
    _sets: dict = field(default_factory=dict)

    def uuid_set(self, key: tuple[str, str]) -> frozenset[str]:
        """The uuids with a usable signature in one (lang, relation), cached."""
        if key not in self._sets:
            self._sets[key] = frozenset(self.uuids[self.by_relation[key]].tolist())
        return self._sets[key]

    def rows(self, keys: list[tuple[str, str]]) -> np.ndarray:
        """Row numbers of ``keys`` (-1 where a key has no usable signature)."""
        return np.array([self.index.get(key, -1) for key in keys], dtype=np.int64)


def load_signatures(signatures: pa.Table | None, k: int, use_small_groups: bool) -> Signatures:
    """Index the `signatures` table: the first ``k`` neuron ids of every usable row."""
    empty = Signatures(np.zeros((0, k), np.int64), np.zeros(0, np.int64), {}, {}, np.array([]), k)
    if signatures is None or signatures.num_rows == 0:
        return empty
    df = signatures.select(["lang", "uuid", "relation", "small_group", "neuron_ids"]).to_pandas()
    if not use_small_groups:
        df = df[~df["small_group"].fillna(False).astype(bool)]
    df = df.drop_duplicates(["lang", "uuid"]).reset_index(drop=True)
    ids = np.tile(-np.arange(1, k + 1, dtype=np.int64), (len(df), 1))
    sizes = np.zeros(len(df), np.int64)
    for i, arr in enumerate(df["neuron_ids"]):
        top = np.unique(np.asarray(arr if arr is not None else [], np.int64)[:k])
        ids[i, : len(top)] = top
        sizes[i] = len(top)
    index = {(lg, u): i for i, (lg, u) in enumerate(zip(df["lang"], df["uuid"]))}
    groups = df.groupby(["lang", "relation"]).indices
    by_rel = {key: np.asarray(v, np.int64) for key, v in groups.items()}
    return Signatures(ids, sizes, index, by_rel, df["uuid"].to_numpy(), k)


def jaccard(sig: Signatures, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Top-k Jaccard of rows ``a`` and ``b`` (NaN where a row is -1 or a set is empty)."""
    out = np.full(len(a), np.nan)
    ok = (a >= 0) & (b >= 0)
    if not ok.any():
        return out
    left, right = sig.ids[a[ok]], sig.ids[b[ok]]
    right = np.where(right < 0, right - sig.k, right)   # pads of the two sides never meet
    both = np.sort(np.concatenate([left, right], axis=1), axis=1)
    inter = (both[:, 1:] == both[:, :-1]).sum(axis=1)
    union = sig.sizes[a[ok]] + sig.sizes[b[ok]] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        out[ok] = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    return out


def _all_pairs(sig: Signatures, groups: list[tuple[np.ndarray, np.ndarray]]) -> tuple:
    a = [np.repeat(x, len(y)) for x, y in groups]
    b = [np.tile(y, len(x)) for x, y in groups]
    a, b = (np.concatenate(a), np.concatenate(b)) if a else (np.zeros(0, int), np.zeros(0, int))
    keep = sig.uuids[a] != sig.uuids[b] if len(a) else np.zeros(0, bool)
    return a[keep], b[keep]


def _sample_pairs(sig: Signatures, groups: list, counts: np.ndarray, n: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    g = rng.choice(len(groups), size=n, p=counts / counts.sum())
    a, b = np.empty(n, np.int64), np.empty(n, np.int64)
    todo = np.arange(n)
    for _ in range(100):   # redraw same-uuid pairs; a group with counts > 0 has a valid pair
        for gi in np.unique(g[todo]):
            sel = todo[g[todo] == gi]
            x, y = groups[gi]
            a[sel], b[sel] = rng.choice(x, len(sel)), rng.choice(y, len(sel))
        todo = todo[sig.uuids[a[todo]] == sig.uuids[b[todo]]]
        if not len(todo):
            break
    keep = np.ones(n, bool)
    keep[todo] = False
    return a[keep], b[keep]


def null_distribution(sig: Signatures, lang: str, other: str, n_samples: int,
                      seed: int) -> np.ndarray:
    """Sorted null Jaccards for (lang, other): every pair when few exist, else a seeded sample."""
    lo, hi = sorted((lang, other))
    rels = sorted({r for lg, r in sig.by_relation if lg == lo} & {r for lg, r in sig.by_relation
                                                                if lg == hi})
    groups = [(sig.by_relation[(lo, r)], sig.by_relation[(hi, r)]) for r in rels]
    shared = [len(sig.uuid_set((lo, r)) & sig.uuid_set((hi, r))) for r in rels]
    counts = np.array([len(x) * len(y) - s for (x, y), s in zip(groups, shared)], dtype=float)
    if not len(counts) or counts.sum() <= 0:
        return np.zeros(0)
    if counts.sum() <= n_samples:
        a, b = _all_pairs(sig, groups)
    else:
        rng = np.random.default_rng([seed, zlib.crc32(lo.encode()), zlib.crc32(hi.encode())])
        keep = counts > 0
        a, b = _sample_pairs(sig, [g for g, k in zip(groups, keep) if k], counts[keep],
                             n_samples, rng)
    j = jaccard(sig, a, b)
    return np.sort(j[~np.isnan(j)])


def threshold(null: np.ndarray, percentile: float, min_null: int) -> float:
    """The ``percentile`` of the null (NaN when it has fewer than ``min_null`` values)."""
    return float(np.percentile(null, percentile)) if len(null) >= max(min_null, 1) else np.nan


def pvalue(null: np.ndarray, observed: float) -> float:
    """Empirical one-sided p-value (1 + #null >= observed) / (1 + n); NaN without a null."""
    if not len(null) or np.isnan(observed):
        return np.nan
    n_ge = len(null) - np.searchsorted(null, observed, side="left")
    return float((1 + n_ge) / (1 + len(null)))
