"""Table declarations: every contract is complete, and conform/check enforce it."""

from __future__ import annotations

import pyarrow as pa
import pytest

from factroots import tables
from factroots.errors import SchemaError

STAGES = {"facts", "trace", "probe", "label", "lab"}


@pytest.mark.parametrize("name", sorted(tables.TABLES))
def test_every_spec_is_complete(name: str) -> None:
    s = tables.spec(name)
    assert s.name == name and s.stage in STAGES and s.grain.startswith("one row per")
    assert set(s.key) <= set(s.names), f"{name}: key {s.key} not in {s.names}"
    assert set(s.partition) <= set(s.key) and s.partition == ("lang",)
    assert s.names[0] == "lang" and len(set(s.names)) == len(s.names)


def test_facts_tables_carry_the_issue_columns() -> None:
    assert tables.spec("facts").names == ["lang", "relation", "uuid", "lineid", "sub_uri",
                                          "sub_label", "obj_uri", "obj_label", "template"]
    assert tables.spec("candidates").key == ("lang", "relation", "candidate")


def test_conform_selects_orders_and_casts() -> None:
    t = pa.table({"extra": [1], "template": ["[X] [Y]"], "relation": ["P1"], "lang": ["en"]})
    c = tables.conform("templates", t)
    assert c.column_names == ["lang", "relation", "template"]
    tables.check("templates", c)
    facts = pa.table({n: ["x"] for n in tables.spec("facts").names} | {"lineid": pa.array([3])})
    f = tables.conform("facts", facts)
    assert f.schema.field("lineid").type == pa.int32() and f["lineid"][0].as_py() == 3


def test_conform_refuses_missing_and_uncastable_columns() -> None:
    with pytest.raises(SchemaError, match=r"lacks columns \['template'\]"):
        tables.conform("templates", pa.table({"lang": ["en"], "relation": ["P1"]}))
    bad = pa.table({n: ["x"] for n in tables.spec("facts").names})  # lineid "x" is no int
    with pytest.raises(SchemaError, match="does not cast"):
        tables.conform("facts", bad)


def test_check_refuses_a_wrong_type_and_unknown_tables() -> None:
    t = pa.table({"lang": ["en"], "relation": ["P1"], "template": pa.array(["t"], pa.large_string())})
    with pytest.raises(SchemaError, match="end the builder with tables.conform"):
        tables.check("templates", t)
    with pytest.raises(SchemaError, match="unknown table 'nope'"):
        tables.spec("nope")
