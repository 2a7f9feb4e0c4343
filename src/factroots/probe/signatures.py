"""Build ``signatures`` for one (lang, relation) group from its facts' activations.

One row per correct (lang, uuid): the fact's top-``k`` neurons by PROBELESS within its group
(``probeless.rank_group``), best first, with float16 scores. Neuron ids are global over the
model: ``id = layer * width + unit`` (``width`` = FFN width for site ``ffn``, hidden size for
``hidden``), also when only a subset of layers is captured, so ids from different runs compare.
A group with fewer than ``min_group`` facts is flagged ``small_group`` with empty lists.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from factroots import tables
from factroots.probe.probeless import rank_group


def global_ids(local: np.ndarray, layers: Sequence[int], width: int) -> np.ndarray:
    """Map column indices of the captured ``[layers x width]`` block to global neuron ids."""
    layer_of = np.asarray(layers, np.int64)[local // width]
    return (layer_of * width + local % width).astype(np.int32)


def _lists(values: np.ndarray, typ: pa.DataType) -> pa.Array:
    n, k = values.shape
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * k, pa.int32())
    return pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1), typ))


def build_signatures(lang: str, relation: str, uuids: Sequence[str], acts: np.ndarray, *,
                     site: str, layers: Sequence[int], width: int, top_k: int = 100,
                     min_group: int = 3) -> pa.Table:
    """Rank the facts of one group (rows of ``acts`` follow ``uuids``) and return their rows."""
    if len(uuids) != acts.shape[0]:
        raise ValueError(f"{len(uuids)} uuids but {acts.shape[0]} activation rows")
    if acts.shape[0] and acts.shape[1] != len(layers) * width:
        raise ValueError(f"activations have {acts.shape[1]} columns, not {len(layers)} x {width}")
    ranking = rank_group(acts, k=top_k, min_group=min_group)
    ids = global_ids(ranking.neuron_ids.astype(np.int64), layers, width)
    n = len(uuids)
    t = pa.table({
        "lang": pa.array([lang] * n, pa.string()),
        "uuid": pa.array(list(uuids), pa.string()),
        "relation": pa.array([relation] * n, pa.string()),
        "site": pa.array([site] * n, pa.string()),
        "group_size": pa.array([n] * n, pa.int32()),
        "small_group": pa.array([ranking.small_group] * n, pa.bool_()),
        "neuron_ids": _lists(ids, pa.int32()),
        "scores": _lists(ranking.scores, pa.float16()),
    })
    return tables.conform("signatures", t)
