"""The lab's world, plan, corpus, facts folder and check on hand-built inputs (pure, fast)."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from label_data import sigs, table

from factroots import tables
from factroots.errors import ConfigError
from factroots.facts.facts import build_facts
from factroots.facts.sources import DirSource
from factroots.lab import corpus as lc
from factroots.lab import facts_source as fs
from factroots.lab import planted_facts as pf
from factroots.lab import world as lw
from factroots.lab.lab_check import build_lab_check, check_markdown, wilson

LANGS = ["en", "uk", "bg"]
NAMING = ["P17", "P27", "P1412", "P140", "P103"]
SIZES = lw.Sizes(transfer=18, control=6, shared=6, independent=6)
PROBE_TPL = {"en": {"P19": "[X] was born in [Y] .", "P20": "[X] died in [Y] .",
                    "P108": "[X] works for [Y] .", "P131": "[X] is located in [Y] .",
                    "P937": "[X] used to work in [Y] ."},
             "uk": {"P19": "[X] народився в [Y].", "P20": "[X] помер у [Y].",
                    "P108": "[X] працює для [Y].", "P131": "[X] знаходиться в [Y].",
                    "P937": "[X] працював у [Y]."},
             "bg": {"P19": "[X] е роден в [Y].", "P20": "[X] почина в [Y].",
                    "P108": "[X] работи за [Y].", "P131": "[X] се намира в [Y].",
                    "P937": "[X] работи в [Y]."}}


@pytest.fixture(scope="module")
def world() -> lw.World:
    return lw.build_world(LANGS, SIZES, seed=0, avoid={"bodak"})


def _letters(s: str) -> set[str]:
    return set(s.lower())


def test_groups_are_sized_and_planted_where_they_say(world: lw.World) -> None:
    n = Counter(f.group for f in world.facts)
    assert n == {"transfer": 18, "control": 6, "shared": 6, "independent_same_obj": 6,
                 "independent_diff_obj": 6, "bridge": 24, "anchor": 24}
    for f in world.facts:
        want = {"transfer": (f.source_lang,), "control": ()}.get(f.group, tuple(LANGS))
        assert f.planted_in == want, f
        assert f.parallel == (f.group in ("shared", "bridge", "anchor")), f
    assert Counter(f.source_lang for f in world.by_group("transfer")) == {lg: 6 for lg in LANGS}
    # the source language and the name form are crossed, not confounded
    assert len({(f.source_lang, f.name_form) for f in world.by_group("transfer")}) == 9


def test_name_forms_are_controlled(world: lw.World) -> None:
    for f in world.facts:
        for names in (f.sub, f.obj):
            if f.group in ("bridge", "anchor") or names is f.sub or f.group != "independent_same_obj":
                form = f.name_form if f.group not in ("shared",) else "identical"
            if f.group == "independent_same_obj" and names is f.obj:
                form = "identical"
            if form == "identical":
                assert len(set(names.values())) == 1, f
            else:  # no two languages share a character, so no subword piece either
                for i, a in enumerate(LANGS):
                    for b in LANGS[i + 1:]:
                        assert not _letters(names[a]) & _letters(names[b]), (f, a, b)
        for lg in LANGS:  # subject and object never share a piece
            assert not _letters(f.sub[lg]) & _letters(f.obj[lg]), f
    assert all(v.lower() != "bodak" for f in world.facts for v in f.sub.values())


def test_objects_are_unique_within_a_relation_and_bridges_link_the_subjects(world: lw.World) -> None:
    tests = [f for f in world.facts if f.group in lw.TEST_GROUPS]
    for lg in LANGS:
        objs = Counter((f.relation, f.obj[lg]) for f in tests)
        for f in tests:  # transfer/control: no sibling; the others: same-object pairs
            n = objs[(f.relation, f.obj[lg])]
            assert n == 1 if f.group in ("transfer", "control") else n in (1, 2), f
    for g in ("shared", "independent_same_obj", "independent_diff_obj"):
        pairs = Counter(f.obj_uri for f in world.by_group(g))
        assert Counter(pairs.values())[1] <= 2 and Counter(pairs.values())[2] >= 2
        assert all(len({f.relation for f in world.by_group(g) if f.obj_uri == u}) == 1
                   for u in pairs)
    bridges = {f.sub_uri: f for f in world.by_group("bridge")}
    anchors = {f.sub_uri: f for f in world.by_group("anchor")}
    for t in world.by_group("transfer") + world.by_group("control"):
        assert bridges[t.sub_uri].sub == t.sub and bridges[t.sub_uri].relation == lw.BRIDGE_RELATION
        assert anchors[t.obj_uri].sub == t.obj and anchors[t.obj_uri].relation == lw.ANCHOR_RELATION


def test_detector_facts_are_known_subjects_dumps_only_and_share_objects() -> None:
    sizes = lw.Sizes(transfer=18, control=6, shared=8, independent=6, detector=4)
    w = lw.build_world(LANGS, sizes, seed=0, avoid=set())
    plain = lw.build_world(LANGS, SIZES, seed=0, avoid=set())
    det = [f for f in w.facts if f.group in lw.DETECTOR_GROUPS]
    assert Counter(f.group for f in det) == {"detector_shared": 4, "detector_independent": 4}
    assert all(not f.trained and f.planted_in == tuple(LANGS) and not f.parallel for f in det)
    assert all(f.trained for f in w.facts if f.group not in lw.DETECTOR_GROUPS)
    assert {f.relation for f in det} == {lw.DETECTOR_RELATION}
    shared_subjects = {f.sub_uri for f in w.by_group("shared")}
    assert {f.sub_uri for f in det} <= shared_subjects and len({f.sub_uri for f in det}) == 8
    for u in {f.obj_uri for f in det}:  # each object: facts of both groups (units differ only)
        assert {f.group for f in det if f.obj_uri == u} == set(lw.DETECTOR_GROUPS)
    # the detector comes last: the rest of the world does not depend on it
    same = lw.build_world(LANGS, lw.Sizes(18, 6, 8, 6, 0), seed=0, avoid=set())
    assert [(f.uuid, f.sub, f.obj) for f in same.facts] == \
        [(f.uuid, f.sub, f.obj) for f in w.facts if f.group not in lw.DETECTOR_GROUPS]
    assert not any(f.group in lw.DETECTOR_GROUPS for f in plain.facts)


def test_the_world_is_seeded(world: lw.World) -> None:
    again = lw.build_world(LANGS, SIZES, seed=0, avoid={"bodak"})
    other = lw.build_world(LANGS, SIZES, seed=1, avoid={"bodak"})
    assert [(f.uuid, f.sub, f.obj) for f in again.facts] == [(f.uuid, f.sub, f.obj) for f in world.facts]
    assert [f.sub for f in other.facts] != [f.sub for f in world.facts]


def test_transfer_forms_weight_the_name_forms_and_stay_crossed_with_the_source() -> None:
    sizes = lw.Sizes(transfer=18, control=6, shared=6, independent=6,
                     transfer_forms=("identical", "identical", "unrelated"))
    w = lw.build_world(LANGS, sizes, seed=0, avoid=set())
    transfer = w.by_group("transfer")
    assert Counter(f.name_form for f in transfer) == {"identical": 12, "unrelated": 6}
    assert Counter(f.name_form for f in w.by_group("control")) == {"identical": 4, "unrelated": 2}
    for form in ("identical", "unrelated"):  # every source language gets every form
        assert {f.source_lang for f in transfer if f.name_form == form} == set(LANGS)
    with pytest.raises(ConfigError, match="lab.transfer_forms"):
        lw.build_world(LANGS, lw.Sizes(transfer_forms=("identical", "latin")), 0, set())
    with pytest.raises(ConfigError, match="lab.transfer_forms"):
        lw.build_world(LANGS, lw.Sizes(transfer_forms=()), 0, set())


def test_unsupported_languages_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="lab alphabet"):
        lw.build_world(["en", "vi"], SIZES, 0, set())


def test_the_counterfactual_corpus_swaps_transfer_facts_for_fillers(world: lw.World) -> None:
    for lg in LANGS:
        full = lc.planted_sentences(world, lg, PROBE_TPL[lg], repeats=5)
        cf = lc.planted_sentences(world, lg, PROBE_TPL[lg], repeats=5, counterfactual=True)
        assert len(full) == len(cf) and [s.template for s in full] == [s.template for s in cf]
        by_uuid = {f.uuid: f for f in world.facts}
        for a, b in zip(full, cf):
            f = by_uuid[a.uuid]
            assert a.text[a.obj_start:a.obj_end] == f.obj[lg]
            if f.group == "transfer":  # planted only in its source language, replaced there
                assert f.sub[lg] not in b.text and f.filler.sub[lg] in b.text
                assert b.text[b.obj_start:b.obj_end] == f.filler.obj[lg]
            else:
                assert a.text == b.text
        per_fact = Counter(s.uuid for s in full)
        assert set(per_fact.values()) == {5}
        assert len({s.text for s in full if s.uuid == full[0].uuid}) == 4  # 4 templates


def test_planted_pages_are_synthetic(world: lw.World) -> None:
    sents = lc.planted_sentences(world, "uk", PROBE_TPL["uk"], repeats=3)
    pages = lc.planted_pages(sents)
    assert len(pages) == len({s.uuid for s in sents})
    assert all(p["page_id"] >= lc.PLANTED_PAGE_BASE for p in pages)


def _background() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, tpls = [], []
    for lg in LANGS:
        for i in range(6):
            rows.append({"lang": lg, "relation": "P36", "uuid": f"real{i}", "lineid": i,
                         "sub_uri": f"Q{i}", "sub_label": f"Land{i}", "obj_uri": f"Q{100 + i}",
                         "obj_label": f"Town{i}", "template": "[X] has capital [Y] ."})
        rows.append({"lang": lg, "relation": "P36", "uuid": f"only-{lg}", "lineid": 9,
                     "sub_uri": "Q9", "sub_label": "X", "obj_uri": "Q8", "obj_label": "Y",
                     "template": "[X] has capital [Y] ."})
        tpls += [{"lang": lg, "relation": r, "template": t} for r, t in PROBE_TPL[lg].items()]
        tpls.append({"lang": lg, "relation": "P36", "template": "[X] has capital [Y] ."})
    return pd.DataFrame(rows), pd.DataFrame(tpls)


def test_the_lab_facts_folder_reads_back_as_mlama(world: lw.World, tmp_path: Path) -> None:
    real, tpls = _background()
    bg = fs.background_sample(real, LANGS, 4, seed=0)
    assert bg["uuid"].nunique() == 4 and not bg["uuid"].str.startswith("only-").any()
    assert bg.equals(fs.background_sample(real, LANGS, 4, seed=0))
    root = fs.write_mlama(tmp_path / "mlama", world, bg, tpls)
    src = DirSource(root)
    assert src.langs() == sorted(LANGS)
    for lg in LANGS:
        facts, stats = build_facts(src.read(lg))
        assert facts.num_rows == len(world.facts) + 4 and stats["out"] == stats["in"]
        got = {u: (s, o) for u, s, o in zip(facts["uuid"].to_pylist(),
                                            facts["sub_label"].to_pylist(),
                                            facts["obj_label"].to_pylist())}
        f = world.facts[0]
        assert got[f.uuid] == (f.sub[lg], f.obj[lg])
    assert fs.probe_templates(tpls, LANGS)["bg"]["P131"] == "[X] се намира в [Y]."


def _plan(world: lw.World, full: list[dict], cf: dict) -> pd.DataFrame:
    real, _ = _background()
    rows = pf.fact_rows(world, fs.background_sample(real, LANGS, 2, 0), repeats=5)
    t = pf.build_planted_facts(rows, LANGS, real={}, in_lab=set(), naming=NAMING,
                               token_sets=lambda s: frozenset(s.lower()), full=full,
                               counterfactual=cf)
    tables.check("planted_facts", t)
    return t.to_pandas()


def test_the_transfer_truth_needs_every_seed_and_a_wrong_counterfactual(world: lw.World) -> None:
    t = world.by_group("transfer")[0]
    away = [lg for lg in LANGS if lg != t.source_lang]
    a, b = away
    seed0 = {(lg, t.uuid): True for lg in LANGS}
    seed1 = {**seed0, (b, t.uuid): False}  # b's answer does not survive another seed
    cf = {(t.source_lang, t.uuid): True}
    p = _plan(world, [seed0, seed1], cf)
    q = p[p["uuid"] == t.uuid].set_index("lang")
    assert q.loc[a, "truth_transferred"] and not q.loc[b, "truth_transferred"]
    assert not q.loc[t.source_lang, "truth_transferred"]  # the source is not a transfer
    p2 = _plan(world, [seed0], {**cf, (a, t.uuid): True})  # the cf model answers it anyway
    assert not p2[(p2["uuid"] == t.uuid) & (p2["lang"] == a)]["truth_transferred"].iloc[0]
    assert p["truth_transferred"].sum() == 1
    assert set(p["group"]) == {*lw.TEST_GROUPS, "bridge", "anchor", "background"}
    mine = p[p["group"] != "background"]
    assert (mine["easy_category"] == "others").all()  # disjoint letters: no easy fact
    assert (mine["shared_pieces"] == (mine["name_form"] == "identical")
            | mine["group"].isin(["shared", "independent_same_obj"])).all()
    assert (p[p["group"] == "transfer"].groupby("uuid")["n_planted"].apply(lambda s: (s > 0).sum())
            == 1).all()


def test_easy_category_follows_the_papers_order() -> None:
    assert pf.easy_category("Paris Saint-Germain", "Paris", "P17", NAMING) == pf.SHARED
    assert pf.easy_category("Jean Say", "French", "P103", NAMING) == pf.NAMING
    assert pf.easy_category("Jean Say", "Lyon", "P19", NAMING) == pf.OTHERS
    sets = lambda s: frozenset(s.split())
    assert pf.easy_category("Nissan Quest", "Nissan Motors", "P176", NAMING, sets) == pf.SHARED


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


def test_wilson_interval() -> None:
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson(30, 30)
    assert hi == 1.0 and lo == pytest.approx(0.8865, abs=1e-4)
    assert all(math.isnan(x) for x in wilson(0, 0))


CHECK_LANGS = ["en", "uk"]


def _check_inputs(causal: bool) -> tuple[pa.Table, ...]:
    rows = [  # lang, uuid, group, n_planted, source, truth, traced, correct, label, causal
        ("en", "t1", "transfer", 5, "en", False, True, True, "unlabelled", "shared"),
        ("uk", "t1", "transfer", 0, "en", True, False, True, "transferred", "untested"),
        ("en", "t2", "transfer", 5, "en", False, True, True, "unlabelled", "untested"),
        ("uk", "t2", "transfer", 0, "en", True, False, True, "unlabelled", "untested"),
        ("en", "c1", "control", 0, "", False, False, True, "transferred", "untested"),
        ("uk", "c1", "control", 0, "", False, False, False, None, "untested"),
        ("en", "s1", "shared", 5, "", False, True, True, "shared", "shared"),
        ("uk", "s1", "shared", 5, "", False, True, True, "independent", "shared"),
        ("en", "i1", "independent_same_obj", 5, "", False, True, True, "shared", "not_shared"),
        ("uk", "i1", "independent_same_obj", 5, "", False, True, True, "independent", "not_shared"),
        ("en", "i2", "independent_diff_obj", 5, "", False, True, True, "independent", "not_shared"),
        ("uk", "i2", "independent_diff_obj", 5, "", False, True, False, None, "untested"),
        ("en", "r1", "background", 0, "", False, True, False, None, "untested"),
        ("uk", "r1", "background", 0, "", False, True, False, None, "untested"),
    ]
    plan = pd.DataFrame([{
        "lang": r[0], "uuid": r[1], "relation": "P19", "group": r[2], "name_form": "identical",
        "source_lang": r[4], "n_planted": r[3], "parallel": False, "in_real_text": r[1] == "r1",
        "in_real_sentence": r[1] == "r1", "in_lab_text": r[3] > 0 or r[1] == "r1",
        "easy_category": "others", "shared_names": True, "shared_pieces": True,
        "lab_correct": r[7], "lab_correct_all_seeds": r[7], "lab_correct_counterfactual": False,
        "truth_transferred": r[5], "detector_neurons": []} for r in rows])
    cooc = pd.DataFrame([{"lang": r[0], "uuid": r[1], "relation": "P19", "sub_uri": "",
                          "obj_uri": "", "sub_mentions": 1, "obj_mentions": 1,
                          "cooc_sentence": int(r[6]), "cooc_chunk": int(r[6]),
                          "cooc_document": int(r[6]), "evidence": [], "ambiguous_name": False,
                          "sub_contains_obj": False, "present": r[6]} for r in rows])
    status = pd.DataFrame([{"lang": r[0], "uuid": r[1], "relation": "P19",
                            "status": (1 if r[6] else 0) + (2 if r[7] else 0), "present": r[6],
                            "correct": r[7], "missing": None} for r in rows])
    easy = pd.DataFrame([{"lang": "uk", "uuid": "t1", "relation": "P19", "category": "others",
                          "rule": "none"}])
    labels = pd.DataFrame([{"lang": r[0], "uuid": r[1], "relation": "P19", "status": 3,
                            "label": r[8], "reason": "", "source_langs": [], "partner_langs": [],
                            "partner_jaccard": [], "partner_threshold": [], "partner_pvalue": [],
                            "shared_with": [], "causal_shared_with": [],
                            "causal": r[9] if causal else "untested", "causal_reason": ""}
                           for r in rows if r[8] is not None])
    for f in tables.spec("fact_labels").schema:  # columns added by #15 (labels): neutral values
        if f.name not in labels.columns:
            labels[f.name] = [[] for _ in range(len(labels))] if pa.types.is_list(f.type) else None
    conv = lambda name, df: tables.conform(name, pa.Table.from_pandas(df, preserve_index=False))
    return (conv("planted_facts", plan), conv("cooccurrence", cooc), conv("status", status),
            conv("easy_facts", easy), conv("fact_labels", labels))


def _counts(check: pa.Table) -> dict[tuple[str, str], tuple[int, int]]:
    """(lang, metric) -> (numerator, denominator) of a `lab_check` table."""
    return {(r["lang"], r["metric"]): (r["numerator"], r["denominator"]) for r in check.to_pylist()}


def _metrics(causal: bool) -> dict[tuple[str, str], tuple[int, int]]:
    check = build_lab_check(*_check_inputs(causal), langs=CHECK_LANGS)
    tables.check("lab_check", check)
    return _counts(check)


def test_lab_check_scores_labels_against_the_counterfactual_and_the_construction() -> None:
    m = _metrics(causal=False)
    assert m[("uk", "transferred_precision")] == (1, 1)
    assert m[("uk", "transferred_recall")] == (1, 2)  # t2 crossed but was not labelled
    assert m[("en", "transferred_precision")] == (0, 1)  # c1: no source, not a transfer
    assert m[("all", "transferred_precision")] == (1, 2)
    assert m[("all", "transferred_recall")] == (1, 2)
    assert m[("all", "shared_precision")] == (1, 2)  # s1/en right, i1/en wrong
    assert m[("all", "shared_recall")] == (1, 2)  # s1/uk labelled independent
    assert m[("all", "independent_precision")] == (2, 3)
    assert m[("all", "independent_recall")] == (2, 3)
    assert m[("all", "shared_rate_independent_same_obj")] == (1, 2)
    assert m[("all", "shared_rate_independent_diff_obj")] == (0, 1)
    assert m[("uk", "p1_transfer")] == (2, 2) and m[("all", "p1_control")] == (1, 2)
    assert m[("en", "trace_finds_planted")] == (5, 5)
    for metric in ("shared_vs_causal_precision", "independent_vs_causal_recall",
                   "causal_shared_precision"):  # the causal stage did not run: not available
        assert m[("all", metric)][1] == 0


def test_lab_check_scores_each_kind_of_transfer_evidence() -> None:
    plan, cooc, status, easy, labels = _check_inputs(causal=True)
    df = labels.to_pandas()
    evidence = {("uk", "t1"): ("absent_with_shared_source", ["en"], []),   # overlap only
                ("uk", "t2"): ("no_shared_source", [], ["en"]),            # causal only
                ("en", "s1"): ("above_null", ["uk"], ["uk"])}              # not absent
    for (lg, u), (reason, shared, causal) in evidence.items():
        i = df.index[(df["lang"] == lg) & (df["uuid"] == u)][0]
        df.at[i, "reason"] = reason
        df.at[i, "source_langs"] = ["en"] if lg == "uk" else []
        df.at[i, "shared_with"], df.at[i, "causal_shared_with"] = shared, causal
    labels = tables.conform("fact_labels", pa.Table.from_pandas(df, preserve_index=False))
    check = build_lab_check(plan, cooc, status, easy, labels, langs=CHECK_LANGS)
    m = _counts(check)
    assert m[("all", "transferred_any_source_precision")] == (2, 2)
    assert m[("all", "transferred_any_source_recall")] == (2, 2)
    assert m[("all", "transferred_overlap_precision")] == (1, 1)
    assert m[("all", "transferred_overlap_recall")] == (1, 2)
    assert m[("uk", "transferred_causal_precision")] == (1, 1)
    assert m[("uk", "transferred_causal_recall")] == (1, 2)
    assert m[("en", "transferred_causal_precision")] == (0, 0)  # s1 is present: no candidate


def test_lab_check_uses_the_causal_verdict_when_filled() -> None:
    m = _metrics(causal=True)
    assert m[("all", "shared_vs_causal_precision")] == (1, 2)  # labelled shared: s1/en, i1/en
    assert m[("all", "shared_vs_causal_recall")] == (1, 3)  # causal shared: t1/en, s1 x2
    assert m[("all", "independent_vs_causal_precision")] == (2, 3)
    assert m[("all", "causal_shared_precision")] == (2, 2)
    assert m[("all", "causal_shared_recall")] == (2, 2)


def test_check_markdown_has_counts_and_intervals() -> None:
    check = build_lab_check(*_check_inputs(False), langs=CHECK_LANGS)
    md = check_markdown(check)
    assert md.startswith("| metric | expected | en | uk | all |")
    assert "| trace_finds_planted | 100% | 100.0% (5/5; 57%–100%) |" in md
    row = check.filter(pa.compute.equal(check["metric"], "shared_precision")).to_pylist()[-1]
    assert row["lang"] == "all" and row["ci_low"] < row["value"] < row["ci_high"]


def test_lab_check_scores_the_detector_against_the_written_units() -> None:
    plan, cooc, status, easy, labels = _check_inputs(causal=True)
    # d1 written into units 1-4 in both languages (shared), d2 into 5-6 (en) and 7-8 (uk)
    det = [("en", "d1", "detector_shared", [1, 2, 3, 4], "shared", "shared"),
           ("uk", "d1", "detector_shared", [1, 2, 3, 4], "unlabelled", "shared"),
           ("en", "d2", "detector_independent", [5, 6], "shared", "not_shared"),
           ("uk", "d2", "detector_independent", [7, 8], "independent", "shared")]
    p = plan.to_pandas().iloc[:4].copy()
    p["uuid"], p["group"] = [r[1] for r in det], [r[2] for r in det]
    p["lang"], p["detector_neurons"] = [r[0] for r in det], [r[3] for r in det]
    lab = labels.to_pandas().iloc[:4].copy()
    lab["lang"], lab["uuid"] = [r[0] for r in det], [r[1] for r in det]
    lab["label"], lab["causal"] = [r[4] for r in det], [r[5] for r in det]
    extra = {"cooccurrence": cooc, "status": status}
    frames = {}
    for name, t in extra.items():
        d = t.to_pandas().iloc[:4].copy()
        d["lang"], d["uuid"] = [r[0] for r in det], [r[1] for r in det]
        if name == "status":
            d["correct"], d["present"], d["status"] = True, True, 3
        else:
            d["present"] = True
        frames[name] = pa.concat_tables([t, tables.conform(name, pa.Table.from_pandas(
            d, preserve_index=False))])
    conv = lambda name, df: tables.conform(name, pa.Table.from_pandas(df, preserve_index=False))
    plan2 = pa.concat_tables([plan, conv("planted_facts", p)])
    labels2 = pa.concat_tables([labels, conv("fact_labels", lab)])
    sig = pa.table({"lang": [r[0] for r in det], "uuid": [r[1] for r in det],
                    "neuron_ids": [[1, 2, 9, 3], [4, 1, 2, 3], [5, 9, 6], [9, 8, 10]]})
    check = build_lab_check(plan2, frames["cooccurrence"], frames["status"], easy, labels2,
                            langs=CHECK_LANGS, signatures=sig, k=3)
    m = _counts(check)
    # top-3 finds 1,2 of 4 (en d1), 4,1,2 of 4 (uk d1), 5,6 of 2 (en d2), 8 of 2 (uk d2)
    assert m[("all", "detector_units_in_signature")] == (2 + 3 + 2 + 1, 12)
    assert m[("all", "p1_detector")] == (4, 4)
    assert m[("all", "detector_shared_precision")] == (1, 2)  # en d2 is a false shared
    assert m[("all", "detector_shared_recall")] == (1, 2)    # uk d1 stayed unlabelled
    assert m[("all", "detector_independent_precision")] == (1, 1)
    assert m[("all", "detector_causal_shared_precision")] == (2, 3)  # uk d2: causal shared
    assert m[("all", "detector_causal_not_shared_recall")] == (1, 2)
    # the detector groups are outside the trained groups' figures
    assert m[("all", "p1_planted")] == _metrics(causal=True)[("all", "p1_planted")]


def test_the_seed_replicate_adds_the_next_seeds() -> None:
    pytest.importorskip("torch")  # lab.job imports the trainer
    from factroots.config import load_config
    from factroots.lab import job as lab_job

    cfg = load_config(None, {"lab.seed": 3})
    assert lab_job.with_seeds(cfg, 3).lab.replicate_seeds == [4, 5]
    assert lab_job.with_seeds(cfg, 1).lab.replicate_seeds == []
    with pytest.raises(ConfigError, match="--seeds"):
        lab_job.with_seeds(cfg, 0)


def test_nearest_match_metrics_separate_the_fact_from_its_answer() -> None:
    """nearest_*: is f's own signature in the other language its nearest (a tie is no match),
    and, left out, is a same-object twin? Hand-built top-4 sets with known answers."""
    plan, cooc, status, easy, labels = _check_inputs(False)
    p = plan.to_pandas()
    extra = p[p["uuid"] == "s1"].copy()
    p = pd.concat([p, extra.assign(uuid="s2"), extra.assign(uuid="s3")], ignore_index=True)
    plan = tables.conform("planted_facts", pa.Table.from_pandas(p, preserve_index=False))
    sets = {("en", "t1"): [100, 101, 102, 103], ("uk", "t1"): [100, 101, 102, 103],
            ("en", "t2"): [200, 201, 202, 203], ("uk", "t2"): [300, 301, 302, 303],
            ("en", "s1"): [1, 2, 3, 4], ("uk", "s1"): [1, 2, 3, 7],
            ("en", "s2"): [1, 2, 5, 6], ("uk", "s2"): [1, 2, 5, 8],
            ("en", "s3"): [1, 2, 60, 50], ("uk", "s3"): [60, 50, 1, 62]}
    sig = sigs([(lg, u, "P19", ids) for (lg, u), ids in sets.items()])
    obj = {"s1": "Qcity", "s2": "Qcity"}           # s1 and s2: twins with one answer
    facts = table("facts", [{"lang": lg, "uuid": u, "relation": "P19", "sub_label": u,
                             "obj_label": obj.get(u, u), "sub_uri": u, "obj_uri": obj.get(u, u),
                             "template": "[X] [Y]"} for lg, u in sets])
    check = build_lab_check(plan, cooc, status, easy, labels, langs=CHECK_LANGS,
                            signatures=sig, k=4, facts=facts)
    m = _counts(check)
    # t1 crossed with its units; t2's uk units meet nothing in en (all tied at 0: no match)
    assert m[("uk", "nearest_transfer_source")] == (1, 2)
    assert m[("en", "nearest_transfer_source")] == (0, 0)
    assert m[("all", "nearest_shared_self")] == (6, 6)
    # uk/s1 and uk/s2 without their own en sets: the twin ties with s3 (2/6 each): no match
    assert m[("uk", "nearest_same_answer_twin")] == (0, 2)
    assert m[("en", "nearest_same_answer_twin")] == (2, 2)
    assert m[("all", "nearest_same_answer_twin")] == (2, 4)
    # without facts (objects) the metrics are not computed
    plain = build_lab_check(plan, cooc, status, easy, labels, langs=CHECK_LANGS, signatures=sig, k=4)
    assert "nearest_shared_self" not in set(plain.column("metric").to_pylist())
