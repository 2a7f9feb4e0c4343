"""Build the `status` table from `facts`, `cooccurrence` and `predictions`.

One row per (lang, uuid) over every uuid of the run's facts, with the paper's codes (§1.6):
-1 the fact is not in L's mLAMA, 0 absent & wrong, 1 present & wrong, 2 absent & correct,
3 present & correct. "Present" is the trace's `cooccurrence.present` (its window and minimum
count are in that table's manifest); "correct" is one correct flag of one probing protocol.
Where the trace or the probe did not cover a fact the code is null and `missing` says why:
presence and correctness are never invented.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from factroots import tables

NOT_IN_LANG, ABSENT_WRONG, PRESENT_WRONG, ABSENT_CORRECT, PRESENT_CORRECT = -1, 0, 1, 2, 3
CODES = (NOT_IN_LANG, ABSENT_WRONG, PRESENT_WRONG, ABSENT_CORRECT, PRESENT_CORRECT)


def _lookup(grid: pd.DataFrame, table: pa.Table | None, column: str) -> pd.Series:
    """``column`` of ``table`` for each (lang, uuid) of ``grid``, as a nullable boolean."""
    if table is None or table.num_rows == 0:
        return pd.Series(pd.NA, index=grid.index, dtype="boolean")
    df = table.select(["lang", "uuid", column]).to_pandas()
    df = df.drop_duplicates(["lang", "uuid"])
    merged = grid[["lang", "uuid"]].merge(df, on=["lang", "uuid"], how="left")
    return merged[column].astype("boolean").set_axis(grid.index)


def _covered(table: pa.Table | None, covered: set[str] | None) -> set[str]:
    if covered is not None:
        return set(covered)
    return set() if table is None else set(table.column("lang").unique().to_pylist())


def build_status(facts: pa.Table, cooccurrence: pa.Table | None, predictions: pa.Table | None,
                 langs: list[str], *, protocol: str = "full", match: str = "full",
                 traced: set[str] | None = None, probed: set[str] | None = None) -> pa.Table:
    """Return the `status` table: one row per (lang, uuid) of ``langs`` × every uuid of the facts.

    ``traced`` / ``probed`` are the languages the trace / probe finished (default: those with
    rows); a fact of a covered language without a row is marked ``no_trace_row`` /
    ``no_prediction``.
    """
    f = facts.select(["lang", "uuid", "relation"]).to_pandas()
    f = f[f["lang"].isin(langs)]
    relation = f.drop_duplicates("uuid").set_index("uuid")["relation"]
    uuids = sorted(relation.index)
    grid = pd.MultiIndex.from_product([sorted(langs), uuids], names=["lang", "uuid"])
    grid = grid.to_frame(index=False)
    grid["relation"] = grid["uuid"].map(relation).astype(object)
    keys = pd.MultiIndex.from_frame(f[["lang", "uuid"]])
    in_lang = pd.MultiIndex.from_frame(grid[["lang", "uuid"]]).isin(keys)

    if predictions is not None and predictions.num_rows:
        mask = pc.equal(predictions.column("protocol"), protocol)
        predictions = predictions.filter(mask)
    present = _lookup(grid, cooccurrence, "present")
    correct = _lookup(grid, predictions, f"correct_{match}")
    traced_l = grid["lang"].isin(_covered(cooccurrence, traced)).to_numpy()
    probed_l = grid["lang"].isin(_covered(predictions, probed)).to_numpy()

    missing = np.full(len(grid), "", dtype=object)
    p_na, c_na = present.isna().to_numpy() & in_lang, correct.isna().to_numpy() & in_lang
    missing = _reason(missing, p_na, traced_l, "not_traced", "no_trace_row")
    missing = _reason(missing, c_na, probed_l, "not_probed", "no_prediction")

    code = (present.fillna(False).astype(int) + 2 * correct.fillna(False).astype(int)).to_numpy()
    status = pd.array(code, dtype="Int8")
    status[p_na | c_na] = pd.NA
    status[~in_lang] = NOT_IN_LANG
    grid["status"] = status
    grid["present"] = present.where(in_lang, pd.NA)
    grid["correct"] = correct.where(in_lang, pd.NA)
    grid["missing"] = missing
    return tables.conform("status", pa.Table.from_pandas(grid, preserve_index=False))


def _reason(missing: np.ndarray, na: np.ndarray, covered: np.ndarray, not_run: str,
            no_row: str) -> np.ndarray:
    """Append ``not_run`` (language not covered) or ``no_row`` (covered, row absent) where ``na``."""
    out = missing.copy()
    for sel, text in ((na & ~covered, not_run), (na & covered, no_row)):
        out[sel] = [f"{m};{text}" if m else text for m in out[sel]]
    return out


def status_stats(status: pa.Table) -> dict:
    """Counts for one language's `status` partition: codes, unknowns and their reasons."""
    df = status.select(["status", "missing"]).to_pandas()
    stats: dict = {"in": len(df), "out": len(df)}
    for c in CODES:
        stats[f"status_{c}"] = int((df["status"] == c).sum())
    stats["status_unknown"] = int(df["status"].isna().sum())
    for reason, n in df.loc[df["missing"] != "", "missing"].value_counts().items():
        stats[f"unknown_{reason}"] = int(n)
    return stats
