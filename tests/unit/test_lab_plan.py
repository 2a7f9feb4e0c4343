"""The lab's plan, corpus rendering, presence and check on hand-built tables (pure, fast)."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from factroots import tables
from factroots.lab import corpus as lc
from factroots.lab import planted_facts as pf
from factroots.lab.lab_check import build_lab_check, check_markdown

LANGS = ["en", "uk"]
NAMING = ["P17", "P27", "P1412", "P140", "P103"]
TEMPLATES = {"en": {"P19": "[X] was born in [Y].", "P17": "[X] is located in [Y].",
                    "P361": "[X] is part of [Y]."},
             "uk": {"P19": "[X] народився в [Y].", "P17": "[X] знаходиться в [Y].",
                    "P361": "[X] є частиною [Y]."}}


def _facts(n: int = 60) -> pa.Table:
    rows = []
    for i in range(n):
        rel = ("P19", "P17", "P361")[i % 3]
        for lg in LANGS:
            sub, obj = f"Sub{i}{lg}", f"Obj{i}{lg}"
            if i % 10 == 5:  # a shared-token fact: the object inside the subject
                sub = f"{obj} Club"
            if i % 10 == 7:  # names written the same way in both languages
                sub, obj = f"Same{i}", f"Place{i}"
            rows.append({"lang": lg, "relation": rel, "uuid": f"u{i:03d}", "lineid": i, "sub_uri": f"Q{i}",
                             "sub_label": sub, "obj_uri": f"Q{1000 + i}", "obj_label": obj,
                             "template": TEMPLATES[lg][rel]})
    return tables.conform("facts", pa.Table.from_pylist(rows))


def _plan(facts: pa.Table, real: dict | None = None, seed: int = 0, per_group: int = 6) -> pd.DataFrame:
    t = pf.build_planted_facts(facts, real or {}, langs=LANGS, per_group=per_group, repeats=5,
                               seed=seed, naming=NAMING)
    tables.check("planted_facts", t)
    return t.to_pandas()


def test_groups_are_disjoint_sized_and_planted_where_they_say() -> None:
    p = _plan(_facts())
    groups = p.drop_duplicates("uuid").groupby("group").size().to_dict()
    assert groups == {"all": 6, "only_en": 6, "only_uk": 6, "none": 6, "background": 36}
    assert p.groupby("uuid")["group"].nunique().max() == 1  # one group per fact
    for g, langs in (("all", {"en", "uk"}), ("only_en", {"en"}), ("only_uk", {"uk"}), ("none", set())):
        q = p[p["group"] == g]
        assert set(q[q["n_planted"] > 0]["lang"]) == langs
        assert (q[q["n_planted"] > 0]["n_planted"] == 5).all()
    assert (p[p["group"] == "background"]["n_planted"] == 0).all()


def test_each_group_gets_naming_shared_token_and_shared_name_facts() -> None:
    p = _plan(_facts(120), per_group=10)
    planned = p[(p["group"] != "background") & (p["lang"] == "en")]
    for g, q in planned.groupby("group"):
        assert (q["easy_category"] == pf.NAMING).sum() >= 2, g
        assert (q["easy_category"] == pf.SHARED).sum() >= 1, g
        assert q["shared_names"].sum() >= 1, g
    allg = planned[planned["group"] == "all"]
    assert allg["shared_names"].sum() >= planned[planned["group"] == "none"]["shared_names"].sum()


def test_plan_is_seeded_and_skips_facts_already_in_the_real_text() -> None:
    facts = _facts()
    real = {("uk", "u000"): (True, False), ("en", "u001"): (True, True)}
    a, b, c = _plan(facts, real), _plan(facts, real), _plan(facts, real, seed=1)
    assert a.equals(b)
    assert not a["group"].equals(c["group"])
    for u in ("u000", "u001"):
        assert set(a[a["uuid"] == u]["group"]) == {"background"}
    row = a[(a["lang"] == "en") & (a["uuid"] == "u001")].iloc[0]
    assert row["in_real_text"] and row["in_real_sentence"] and row["in_lab_text"]


def test_easy_category_follows_the_papers_order() -> None:
    assert pf.easy_category("Paris Saint-Germain", "Paris", "P17", NAMING) == pf.SHARED
    assert pf.easy_category("Jean Say", "French", "P103", NAMING) == pf.NAMING
    assert pf.easy_category("Jean Say", "Lyon", "P19", NAMING) == pf.OTHERS
    sets = lambda s: frozenset(s.split())
    assert pf.easy_category("Nissan Quest", "Nissan Motors", "P176", NAMING, sets) == pf.SHARED


def test_planted_sentences_mark_the_object_span_and_cycle_frames() -> None:
    facts = _facts()
    plan = pa.Table.from_pandas(_plan(facts), preserve_index=False)
    sents = lc.planted_sentences(plan, facts, "uk")
    assert len(sents) == 5 * 12  # all + only_uk, 5 repeats each
    for s in sents:
        obj = facts.filter(pa.compute.and_(pa.compute.equal(facts["lang"], "uk"),
                                           pa.compute.equal(facts["uuid"], s.uuid)))["obj_label"][0]
        assert s.text[s.obj_start:s.obj_end] == obj.as_py()
    assert len({s.text for s in sents if s.uuid == sents[0].uuid}) == len(lc.FRAMES["uk"])
    pages = lc.planted_pages(sents)
    assert len(pages) == 12 and all(p["page_id"] >= lc.PLANTED_PAGE_BASE for p in pages)


def test_cooccurring_needs_whole_words_and_disjoint_spans() -> None:
    facts = pd.DataFrame({"uuid": ["a", "b", "c", "d"],
                          "sub_label": ["Paris", "Nissan Quest", "Lyon", "Rome"],
                          "obj_label": ["France", "Nissan", "France", "Italy"]})
    docs = {1: ["Paris is the capital of France.", "Nissan Quest is a car."],
            2: ["Lyon lies on the Rhône.", "It is a city of France."],
            3: ["Romeo and Italy's people."]}
    got = lc.cooccurring(docs, facts, "en")
    assert got["a"] == (True, True)
    assert "b" not in got  # "Nissan" only inside "Nissan Quest": spans overlap
    assert got["c"] == (True, False)  # same page, different sentences
    assert "d" not in got  # "Rome" is not a word of "Romeo"


def _check_inputs() -> tuple[pa.Table, ...]:
    rows = [  # lang, uuid, group, n_planted, in_real_text, in_lab_text, easy, traced, correct
        ("en", "p1", "all", 5, False, True, "others", True, True),
        ("uk", "p1", "all", 5, False, True, "others", True, True),
        ("en", "t1", "only_en", 5, False, True, "others", True, True),
        ("uk", "t1", "only_en", 0, False, False, "others", False, True),   # true transfer
        ("en", "t2", "only_en", 5, False, True, "naming_cues", True, True),
        ("uk", "t2", "only_en", 0, False, False, "naming_cues", False, True),  # a cue, not transfer
        ("en", "r1", "background", 0, True, True, "others", True, False),
        ("uk", "r1", "background", 0, False, False, "others", True, False),  # traced, not in corpus
        ("en", "n1", "none", 0, False, False, "others", False, True),  # a guess: no source
        ("uk", "n1", "none", 0, False, False, "others", False, False),
    ]
    plan = pd.DataFrame([{"lang": r[0], "uuid": r[1], "relation": "P19", "group": r[2], "n_planted": r[3],
                              "in_real_text": r[4], "in_real_sentence": r[4], "in_lab_text": r[5],
                              "easy_category": r[6], "shared_names": False} for r in rows])
    cooc = pd.DataFrame([{"lang": r[0], "uuid": r[1], "relation": "P19", "sub_uri": "", "obj_uri": "",
                              "sub_mentions": 1, "obj_mentions": 1, "cooc_sentence": int(r[7]),
                              "cooc_chunk": int(r[7]), "cooc_document": int(r[7]), "evidence": [],
                              "ambiguous_name": False, "sub_contains_obj": False, "present": r[7]}
                         for r in rows])
    status = pd.DataFrame([{"lang": r[0], "uuid": r[1], "relation": "P19",
                                "status": (1 if r[7] else 0) + (2 if r[8] else 0), "present": r[7],
                                "correct": r[8], "missing": None} for r in rows])
    easy = pd.DataFrame([{"lang": "uk", "uuid": "t1", "relation": "P19", "category": "others", "rule": "none"},
                         {"lang": "uk", "uuid": "t2", "relation": "P19", "category": "naming_cues",
                              "rule": "naming_relation"},
                         {"lang": "en", "uuid": "n1", "relation": "P19", "category": "others", "rule": "none"}])
    labels = pd.DataFrame([{"lang": "uk", "uuid": "t1", "relation": "P19", "status": 2, "label": "transferred",
                                "reason": "", "source_langs": ["en"], "partner_langs": [], "partner_jaccard": [],
                                "partner_threshold": [], "partner_pvalue": [], "shared_with": [],
                                "causal_shared_with": [], "causal": "untested", "causal_reason": ""},
                           {"lang": "en", "uuid": "n1", "relation": "P19", "status": 2, "label": "transferred",
                                "reason": "", "source_langs": ["uk"], "partner_langs": [], "partner_jaccard": [],
                                "partner_threshold": [], "partner_pvalue": [], "shared_with": [],
                                "causal_shared_with": [], "causal": "untested", "causal_reason": ""}])
    for f in tables.spec("fact_labels").schema:  # the null-model and control columns: neutral values
        if f.name not in labels.columns:
            labels[f.name] = [[] for _ in range(len(labels))] if pa.types.is_list(f.type) else None
    conv = lambda name, df: tables.conform(name, pa.Table.from_pandas(df, preserve_index=False))
    return (conv("planted_facts", plan), conv("cooccurrence", cooc), conv("status", status),
            conv("easy_facts", easy), conv("fact_labels", labels))


def test_lab_check_compares_labels_with_the_truth() -> None:
    check = build_lab_check(*_check_inputs(), langs=LANGS)
    tables.check("lab_check", check)
    m = {(r["lang"], r["metric"]): (r["numerator"], r["denominator"]) for r in check.to_pylist()}
    assert m[("en", "trace_finds_planted")] == (3, 3)
    assert m[("uk", "trace_finds_planted")] == (1, 1)
    assert m[("en", "trace_beyond_plan_in_corpus")] == (1, 1)
    assert m[("uk", "trace_beyond_plan_in_corpus")] == (0, 1)  # r1 in uk: a false co-occurrence
    assert m[("uk", "transferred_precision")] == (1, 1)
    assert m[("uk", "transferred_recall")] == (1, 1)
    assert m[("en", "transferred_precision")] == (0, 1)  # n1 has no source: not transfer
    assert m[("uk", "easy_naming_cues_recall")] == (1, 1)
    assert m[("uk", "p1_only_other")] == (2, 2)
    md = check_markdown(check)
    assert "| trace_finds_planted | 100% | 100.0% (3/3) | 100.0% (1/1) |" in md


@pytest.mark.parametrize("group,langs", [("all", ["en", "uk"]), ("only_uk", ["uk"]),
                                         ("none", []), ("background", [])])
def test_planted_langs(group: str, langs: list[str]) -> None:
    assert pf.planted_langs(group, LANGS) == langs
