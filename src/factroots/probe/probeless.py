"""PROBELESS per fact within one (lang, relation) group, in O(n log n) per neuron.

The paper's score (``paper.md`` §1.5, NeuroX ``_get_tag_wise_ranking`` with one prompt per fact):
for a group of ``n`` facts with activations ``A`` of shape ``[n, D]``, the score of fact ``f`` for
neuron ``d`` is ``s[f, d] = 1/(n-1) · Σ_{f'≠f} |A[f, d] − A[f', d]|`` (0 when ``n == 1``).

Instead of the ``O(n² D)`` pairwise sum we sort each neuron's ``n`` values once: with ``x`` the
value of fact ``f``, ``r`` its 1-based rank in the sorted column (any order among equal values),
``P(r)`` the sum of the ``r`` smallest values and ``T`` the column total,
``Σ_j |x − x_j| = x·(2r − n) + T − 2·P(r)``. That is ``O(D · n log n)``, vectorised over neurons.
Equal values are handled as one block ``[lo, hi]`` of sorted positions (below: ``x·lo − P(lo)``,
above: ``T − P(hi+1) − x·(n−1−hi)``, 0-based), so tied facts get bitwise-equal scores whatever
order the (unstable, fast) sort leaves them in.

**Tie rule** (documented, and shared by the brute-force reference ``pairwise_scores`` +
``reference_top_k``): neurons are ranked by score descending, then by neuron id ascending, on
the float64 scores. The top-k of a union of per-chunk top-k's under this total order is the
global top-k, so neurons can be processed in chunks (``RunningTopK``) with memory bounded by
the group's activations plus one chunk of temporaries.

**Small groups:** a group with fewer than ``min_group`` facts is flagged ``small_group`` and its
facts get an empty neuron list: with 1 or 2 facts the "other facts" are 0 or 1 and the ranking
says nothing about the fact (with 2 facts both get identical scores).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

F16_MAX = float(np.finfo(np.float16).max)


def _chunk_size(n: int, budget: int = 1 << 20) -> int:
    """Neurons per chunk so that one chunk's temporaries hold about ``budget`` values."""
    return max(64, budget // max(n, 1))


def probeless_scores(acts: np.ndarray) -> np.ndarray:
    """Per-fact PROBELESS scores ``[n, D]`` (float64) by sort + prefix sums."""
    x = np.asarray(acts)
    x = np.ascontiguousarray((x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)).T)
    d, n = x.shape  # [D, n]: each neuron's values along a row
    if n <= 1:
        return np.zeros((n, d))
    # Any sort order among equal values works, so the fast unstable (SIMD) sort is fine.
    order = np.argsort(x, axis=1)
    xs = np.take_along_axis(x, order, axis=1).astype(np.float64, copy=False)
    prefix = np.zeros((d, n + 1))
    np.cumsum(xs, axis=1, out=prefix[:, 1:])
    # Equal values share one block [lo, hi]; computing from the block's ends gives them
    # bitwise-equal scores whatever order the sort left them in.
    pos = np.arange(n)
    new = np.ones((d, n), bool)
    np.not_equal(xs[:, 1:], xs[:, :-1], out=new[:, 1:])
    lo = np.maximum.accumulate(np.where(new, pos, 0), axis=1)
    last = np.ones((d, n), bool)
    last[:, :-1] = new[:, 1:]
    hi = np.minimum.accumulate(np.where(last, pos, n - 1)[:, ::-1], axis=1)[:, ::-1]
    below = xs * lo - np.take_along_axis(prefix, lo, axis=1)
    above = (prefix[:, -1:] - np.take_along_axis(prefix, hi + 1, axis=1)) - xs * (n - 1 - hi)
    sums = np.maximum(below + above, 0.0)  # rounding can leave -1e-16 at the extremes
    out = np.empty_like(sums)
    np.put_along_axis(out, order, sums, axis=1)
    return out.T / (n - 1)


def pairwise_scores(acts: np.ndarray, chunk: int = 1) -> np.ndarray:
    """Reference: the pairwise formula, vectorised numpy ``O(n² D)``, chunked over neurons."""
    a = np.asarray(acts, dtype=np.float64)
    n, d = a.shape
    if n <= 1:
        return np.zeros((n, d))
    out = np.empty((n, d))
    for lo in range(0, d, chunk):
        c = a[:, lo:lo + chunk]
        out[:, lo:lo + chunk] = np.abs(c[:, None, :] - c[None, :, :]).sum(axis=1)
    return out / (n - 1)


def top_k(scores: np.ndarray, k: int, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the ``k`` best ``(ids, scores)`` by score desc then id asc (the tie rule)."""
    n, d = scores.shape
    ids = np.broadcast_to(np.arange(d, dtype=np.int64) if ids is None else ids, (n, d))
    k = min(k, d)
    if k == 0 or n == 0:
        return np.empty((n, 0), np.int64), np.empty((n, 0))
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    thr = np.take_along_axis(scores, part, axis=1).min(axis=1, keepdims=True)
    gt = scores > thr
    eq = scores == thr
    keep = gt | eq
    # Rows with more neurons tied at the threshold than places left keep the smallest ids;
    # such rows are rare on real activations, so a loop over them costs nothing.
    for r in np.flatnonzero(keep.sum(axis=1) > k):
        tied = np.flatnonzero(eq[r])
        drop = tied[np.argsort(ids[r, tied], kind="stable")][k - int(gt[r].sum()):]
        keep[r, drop] = False
    _, cols = np.nonzero(keep)
    cols = cols.reshape(n, k)
    sel_ids = np.take_along_axis(ids, cols, axis=1)
    sel_sc = np.take_along_axis(scores, cols, axis=1)
    order = np.lexsort((sel_ids, -sel_sc), axis=1)
    return np.take_along_axis(sel_ids, order, axis=1), np.take_along_axis(sel_sc, order, axis=1)


def reference_top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference ranking: a full lexsort per row by score desc then id asc, cut at ``k``."""
    n, d = scores.shape
    ids = np.broadcast_to(np.arange(d), (n, d))
    order = np.lexsort((ids, -scores), axis=1)[:, :min(k, d)]
    return order.astype(np.int64), np.take_along_axis(scores, order, axis=1)


class RunningTopK:
    """A running per-row top-k over column chunks (``add``), restorable (``state_dict``)."""

    def __init__(self, n: int, k: int) -> None:
        self.n, self.k = n, k
        self.ids = np.empty((n, 0), np.int64)
        self.scores = np.empty((n, 0), np.float64)

    def add(self, scores: np.ndarray, offset: int = 0) -> None:
        """Merge a chunk ``[n, c]`` of scores whose column j is neuron ``offset + j``."""
        ids = np.arange(offset, offset + scores.shape[1], dtype=np.int64)
        cand_ids = np.concatenate([self.ids, np.broadcast_to(ids, scores.shape)], axis=1)
        cand_sc = np.concatenate([self.scores, scores], axis=1)
        self.ids, self.scores = top_k(cand_sc, self.k, cand_ids)

    def state_dict(self) -> dict[str, Any]:
        """The state as plain arrays."""
        return {"n": self.n, "k": self.k, "ids": self.ids.copy(), "scores": self.scores.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from ``state_dict``."""
        self.n, self.k = int(state["n"]), int(state["k"])
        self.ids = np.asarray(state["ids"], np.int64)
        self.scores = np.asarray(state["scores"], np.float64)


@dataclass(frozen=True)
class GroupRanking:
    """The top neurons of every fact of one group (rows in the group's fact order)."""

    neuron_ids: np.ndarray  # [n, k] int32; [n, 0] for a small group
    scores: np.ndarray  # [n, k] float16
    small_group: bool

    @property
    def group_size(self) -> int:
        """Facts in the group."""
        return int(self.neuron_ids.shape[0])


def rank_group(acts: np.ndarray, k: int = 100, min_group: int = 3,
               chunk: int | None = None) -> GroupRanking:
    """PROBELESS top-``k`` neurons per fact of one group; small groups are flagged, not ranked."""
    acts = np.asarray(acts)
    n, d = acts.shape
    if n < min_group:
        return GroupRanking(np.empty((n, 0), np.int32), np.empty((n, 0), np.float16), True)
    chunk = chunk or _chunk_size(n)
    running = RunningTopK(n, k)
    for lo in range(0, d, chunk):
        running.add(probeless_scores(acts[:, lo:lo + chunk]), offset=lo)
    scores16 = np.clip(running.scores, 0.0, F16_MAX).astype(np.float16)
    return GroupRanking(running.ids.astype(np.int32), scores16, False)
