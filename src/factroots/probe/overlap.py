"""Build ``overlap`` from ``signatures``: how much two languages share a fact's top neurons.

For every fact (uuid) with a ranked signature in two languages, the Jaccard overlap of the two
top-``k`` neuron sets (the paper's ``shared_neuron`` similarity, ``k = 50``; with full top-50
sets ``J = s / (100 − s)`` for ``s`` shared neurons); per ordered language pair ``(lang,
other_lang)``, ``lang ≠ other_lang``, the mean over those facts and their count. Facts of small
groups (empty neuron lists) have no signature and are not counted. A pair without shared facts
gets a row with ``n_facts = 0`` and a null mean, so the heatmap is complete. The diagonal is
left out (it would be 1 by definition; the paper plots it as 0).

``jaccard_rows`` and ``pair_jaccard`` are pure numpy so the label stage can mirror them.
"""

from __future__ import annotations

from itertools import permutations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from factroots import tables
from factroots.errors import ConfigError


def jaccard_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Jaccard of two id-set matrices (ids ≥ 0, unique per row; negatives pad)."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    both = np.sort(np.concatenate([np.where(a < 0, -1, a), np.where(b < 0, -2, b)], axis=1), axis=1)
    # Each id is unique within its set, so an id in both sets appears exactly twice, adjacent.
    shared = ((both[:, 1:] == both[:, :-1]) & (both[:, 1:] >= 0)).sum(axis=1)
    union = (a >= 0).sum(axis=1) + (b >= 0).sum(axis=1) - shared
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, shared / np.maximum(union, 1), np.nan)


def topk_matrix(neuron_ids: pa.ChunkedArray | pa.Array, k: int) -> np.ndarray:
    """The first ``k`` ids of each list as an ``[n, k]`` matrix padded with -1."""
    lists = pa.chunked_array([neuron_ids]) if isinstance(neuron_ids, pa.Array) else neuron_ids
    lists = pc.list_slice(lists.combine_chunks(), 0, k)
    lens = pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = pc.list_flatten(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    out = np.full((len(lens), k), -1, np.int64)
    rows = np.repeat(np.arange(len(lens)), lens)
    cols = np.arange(len(flat)) - np.repeat(np.cumsum(lens) - lens, lens)
    out[rows, cols] = flat
    return out


def _ranked(signatures: pa.Table, lang: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted uuids and top-k matrix of the ranked facts of one language."""
    t = signatures.filter(pc.and_(pc.equal(signatures["lang"], lang),
                                  pc.greater(pc.list_value_length(signatures["neuron_ids"]), 0)))
    t = t.sort_by("uuid")
    return np.asarray(t["uuid"].to_pylist(), dtype=object), topk_matrix(t["neuron_ids"], k)


def pair_jaccard(uuids_a: np.ndarray, top_a: np.ndarray, uuids_b: np.ndarray,
                 top_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shared uuids (sorted) of two languages and the Jaccard of their top-k sets per uuid."""
    shared, ia, ib = np.intersect1d(uuids_a, uuids_b, assume_unique=True, return_indices=True)
    return shared, jaccard_rows(top_a[ia], top_b[ib])


def build_overlap(signatures: pa.Table, k: int = 50, langs: list[str] | None = None) -> pa.Table:
    """Per ordered language pair, the mean top-``k`` Jaccard over facts ranked in both."""
    sites = set(signatures["site"].unique().to_pylist()) if signatures.num_rows else set()
    if len(sites) > 1:
        raise ConfigError(f"signatures mix sites {sorted(sites)}",
                          "rerun `factroots probe` with one neurons.site for all languages")
    langs = sorted(set(signatures["lang"].to_pylist()) | set(langs or ()))
    ranked = {lg: _ranked(signatures, lg, k) for lg in langs}
    cols: dict[str, list] = {"lang": [], "other_lang": [], "mean_jaccard": [], "n_facts": []}
    for a, b in permutations(langs, 2):
        _, jac = pair_jaccard(*ranked[a], *ranked[b])
        cols["lang"].append(a)
        cols["other_lang"].append(b)
        cols["mean_jaccard"].append(float(np.mean(jac)) if len(jac) else None)
        cols["n_facts"].append(len(jac))
    t = pa.table(cols).append_column("top_k", pa.array([k] * len(cols["lang"]), pa.int32()))
    return tables.conform("overlap", t)
