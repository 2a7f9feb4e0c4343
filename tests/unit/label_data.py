"""Hand-built input tables for the label and report tests (small, with known answers)."""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from factroots import tables


def table(name: str, rows: Iterable[dict], **defaults) -> pa.Table:  # type: ignore[no-untyped-def]
    """A table of ``name`` from dicts; absent columns take ``defaults`` or a neutral value."""
    schema = tables.spec(name).schema
    rows = list(rows)
    neutral = {pa.types.is_string: "", pa.types.is_boolean: False, pa.types.is_list: []}

    def value(field: pa.Field, row: dict):  # type: ignore[no-untyped-def]
        if field.name in row:
            return row[field.name]
        if field.name in defaults:
            return defaults[field.name]
        for test, v in neutral.items():
            if test(field.type):
                return v
        return 0

    cols = {f.name: [value(f, r) for r in rows] for f in schema}
    return tables.conform(name, pa.Table.from_pydict(cols, schema=schema))


def facts(rows: list[tuple]) -> pa.Table:
    """facts from (lang, uuid, relation[, sub_label, obj_label]) tuples."""
    out = []
    for r in rows:
        lang, uuid, rel, *labels = r
        sub, obj = labels if labels else (f"S{uuid}", f"O{uuid}")
        out.append({"lang": lang, "uuid": uuid, "relation": rel, "sub_label": sub,
                    "obj_label": obj, "sub_uri": f"Qs{uuid}", "obj_uri": f"Qo{uuid}",
                    "template": "[X] ... [Y] ."})
    return table("facts", out)


def cooc(rows: list[tuple]) -> pa.Table:
    """cooccurrence from (lang, uuid, present) tuples."""
    return table("cooccurrence", [{"lang": lg, "uuid": u, "present": p,
                                   "cooc_chunk": int(p)} for lg, u, p in rows])


def preds(rows: list[tuple], protocol: str = "full", relations: dict | None = None) -> pa.Table:
    """predictions from (lang, uuid, correct_full[, correct_partial]) tuples."""
    out = []
    for lg, u, full, *partial in rows:
        out.append({"lang": lg, "uuid": u, "protocol": protocol, "correct_full": full,
                    "relation": (relations or {}).get(u, ""),
                    "correct_partial": partial[0] if partial else full, "correct_exact": full,
                    "k": 1})
    return table("predictions", out)


def status(rows: list[tuple]) -> pa.Table:
    """status from (lang, uuid, relation, code) tuples; code None = unknown presence."""
    out = []
    for lg, u, rel, code in rows:
        correct = None if code is None else code in (2, 3)
        out.append({"lang": lg, "uuid": u, "relation": rel, "status": code,
                    "present": None if code is None else code in (1, 3),
                    "correct": True if code is None else correct,
                    "missing": "not_traced" if code is None else ""})
    return table("status", out)


def sigs(rows: list[tuple]) -> pa.Table:
    """signatures from (lang, uuid, relation, neuron_ids[, small_group]) tuples."""
    out = []
    for lg, u, rel, ids, *small in rows:
        out.append({"lang": lg, "uuid": u, "relation": rel, "site": "ffn", "group_size": 5,
                    "small_group": bool(small and small[0]), "neuron_ids": list(ids),
                    "scores": [1.0] * len(ids)})
    return table("signatures", out)


def ids(i: int, k: int = 4) -> list[int]:
    """A signature of ``k`` neurons that no other ``ids(j)`` shares."""
    return [1000 * i + n for n in range(k)]


def write(out, name: str, t: pa.Table, config: dict | None = None) -> None:  # type: ignore[no-untyped-def]
    """Write every language of ``t`` as partitions of table ``name`` under ``out``."""
    from pyarrow import compute as pc

    from factroots import storage

    for lg in sorted(set(t.column("lang").to_pylist())):
        storage.write_table(out, name, t.filter(pc.equal(t.column("lang"), lg)), lg,
                            config=config)


def build_run(out, *, corpus: bool = True) -> None:  # type: ignore[no-untyped-def]
    """A small run of three languages (fr probed, not traced) with every upstream table."""
    rel = "P19"
    write(out, "facts", facts([
        ("en", "a", rel, "Paris Hilton", "Paris"), ("en", "b", rel), ("en", "c", "P17"),
        ("de", "a", rel, "Paris Hilton", "Paris"), ("de", "b", rel), ("de", "c", "P17"),
        ("fr", "a", rel), ("fr", "b", rel)]))
    write(out, "cooccurrence", cooc([("en", "a", True), ("en", "b", True), ("en", "c", False),
                                     ("de", "a", False), ("de", "b", True), ("de", "c", False)]),
          config={"trace": {"window": "chunk", "min_count": 1}})
    write(out, "predictions", preds([
        ("en", "a", True), ("en", "b", True), ("en", "c", False), ("de", "a", True),
        ("de", "b", True), ("de", "c", True), ("fr", "a", True), ("fr", "b", False)],
        relations={"a": rel, "b": rel, "c": "P17"}))
    write(out, "signatures", sigs([("en", "a", rel, ids(1)), ("en", "b", rel, ids(2)),
                                   ("de", "a", rel, ids(1)), ("de", "b", rel, ids(3)),
                                   ("fr", "a", rel, ids(1))]))
    write(out, "overlap", table("overlap", [
        {"lang": a, "other_lang": b, "mean_jaccard": j, "n_facts": 2, "top_k": 4}
        for a, b, j in (("en", "de", 0.4), ("de", "en", 0.4), ("en", "fr", 1.0),
                        ("fr", "en", 1.0), ("de", "fr", 0.2), ("fr", "de", 0.2))]))
    if corpus:
        pages = [{"lang": lg, "page_id": i, "namespace": 0 if i % 4 else 1,
                  "is_redirect": i % 5 == 0} for lg, n in (("en", 40), ("de", 20))
                 for i in range(n)]
        write(out, "pages", table("pages", pages))
        write(out, "sentences", table("sentences", [
            {"lang": lg, "sentence_id": i, "text": "x"} for lg, n in (("en", 9), ("de", 5))
            for i in range(n)]))
