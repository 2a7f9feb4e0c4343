"""fact_labels under the default rules, on hand-built signatures with known answers: the
same-object confound, relations with different nulls, 50 partners under the null, power,
siblings, popular answers and the overlap required of a transfer."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from label_data import facts, sigs, status, table

from factroots.config import RunConfig
from factroots.lab.lab_check import TRANSFER_CANDIDATE
from factroots.label.easy_facts import OTHERS
from factroots.label.fact_labels import LabelRules, _transfer_evidence, build_fact_labels
from factroots.label.neurons import load_signatures
from factroots.label.null import NullConfig, block_jaccard

K = 10


def _facts(rows: list[tuple]) -> pa.Table:
    """facts from (lang, uuid, relation, obj_uri) tuples."""
    t = facts([(lg, u, r) for lg, u, r, _ in rows])
    objs = {(lg, u): o for lg, u, _, o in rows}
    col = [objs[(lg, u)] for lg, u in zip(t.column("lang").to_pylist(),
                                          t.column("uuid").to_pylist())]
    return t.set_column(t.column_names.index("obj_uri"), "obj_uri", pa.array(col))


def _by_key(t: pa.Table) -> dict:
    return {(r["lang"], r["uuid"]): r for r in t.to_pylist()}


def _run(st_rows, sig_rows, fact_rows, **kw):  # type: ignore[no-untyped-def]
    rules = kw.pop("rules", LabelRules())
    return _by_key(build_fact_labels(status(st_rows), kw.pop("easy", None), sigs(sig_rows),
                                     None, facts=_facts(fact_rows), rules=rules, top_k=K, **kw))


def test_block_jaccard_matches_pairwise_sets() -> None:
    rng = np.random.default_rng(0)
    rows = [("en" if i < 70 else "de", f"u{i}", "R",
             rng.choice(30, int(rng.integers(1, K + 1)), replace=False).tolist())
            for i in range(150)]          # sizes 1..10; more rows than one chunk
    sg = load_signatures(sigs(rows), K, False)
    m = block_jaccard(sg, sg.by_relation[("en", "R")], sg.by_relation[("de", "R")])
    assert m.shape == (70, 80)
    for i, j in ((2, 3), (69, 79), (65, 0), (10, 41)):
        a, b = set(rows[i][3]), set(rows[70 + j][3])
        assert m[i, j] == pytest.approx(len(a & b) / len(a | b))


# ---- the same-object confound ---------------------------------------------------------------
def _confound() -> tuple[list, list, list]:
    """Relation R: 200 facts, 25 of them with object A, the rest with objects of their own.
    Every fact's top-10 = 5 neurons of its object (the answer token, the same in en and de)
    + 5 neurons of its own, different in en and de: J(f; en, de) = 5/15 for *every* fact, and
    also for any two facts with the same object. Fact "t" (object A) has identical en and de
    signatures: the one truly shared fact."""
    st, sg, fa = [], [], []
    for i in range(200):
        u, obj = f"f{i}", "A" if i < 25 else f"o{i}"
        block = [1 + 10 * (0 if obj == "A" else i) + n for n in range(5)]
        for lg, off in (("en", 100_000), ("de", 200_000)):
            own = [off + 10 * i + n for n in range(5)]
            if u == "f0":      # the truly shared fact
                own = [100_000 + n for n in range(5)]
            st.append((lg, u, "R", 3))
            sg.append((lg, u, "R", block + own))
            fa.append((lg, u, "R", obj))
    return st, sg, fa


def test_same_object_confound_is_not_shared() -> None:
    got = _run(*_confound())
    r = got[("en", "f3")]              # object A: J equals every same-object pair's J
    assert r["partner_jaccard"] == [pytest.approx(1 / 3)]
    assert r["partner_threshold_same"] == [pytest.approx(1 / 3)]
    assert r["partner_threshold_diff"] == [0.0] and r["partner_n_same"] == [24]
    assert r["label"] == "unlabelled" and r["reason"] == "inconclusive"
    assert r["shared_with"] == []
    rare = got[("en", "f50")]          # a unique object: the relation's same-object pairs
    assert rare["partner_same_pooled"] == [True] and rare["label"] != "shared"
    t = got[("en", "f0")]              # beats its same-object stratum: shared
    assert t["label"] == "shared" and t["shared_with"] == ["de"]
    assert t["partner_pvalue_same"][0] == pytest.approx(1 / 601)   # 25 · 24 A-pairs beaten
    assert t["partner_pvalue"] == t["partner_pvalue_same"]       # the larger of the two
    shared = [k for k, r in got.items() if r["label"] == "shared"]
    assert sorted(shared) == [("de", "f0"), ("en", "f0")]


def test_the_pooled_rule_falls_for_the_confound() -> None:
    pooled = LabelRules(null=NullConfig(rule="pooled"), correction="none")
    got = _run(*_confound(), rules=pooled)
    shared = sum(r["label"] == "shared" for r in got.values())
    assert shared == 400                 # every fact "shared" by its answer token alone


# ---- relations with very different nulls ----------------------------------------------------
def _two_relations(seed: int = 1) -> tuple[list, list, list]:
    """R_low: 120 facts, neurons from 5,000 (null J ≈ 0); R_high: 30 facts, neurons from 20
    (null J ≈ 0.33). Every fact's de signature is a fresh draw (not shared) except fact 0 of each
    relation, whose de signature equals its en one."""
    rng = np.random.default_rng(seed)
    st, sg, fa = [], [], []
    for rel, n, pool in (("R_low", 120, 5000), ("R_high", 30, 20)):
        for i in range(n):
            u = f"{rel}_{i}"
            en = rng.choice(pool, K, replace=False).tolist()
            de = en if i == 0 else rng.choice(pool, K, replace=False).tolist()
            for lg, ids in (("en", en), ("de", de)):
                st.append((lg, u, rel, 3))
                sg.append((lg, u, rel, ids))
                fa.append((lg, u, rel, f"{rel}_obj{i % 6}"))
    return st, sg, fa


def test_each_relation_is_tested_against_its_own_null() -> None:
    got = _run(*_two_relations())
    tau = {rel: np.median([r["partner_threshold_diff"][0] for (lg, u), r in got.items()
                           if lg == "en" and u.startswith(rel + "_")])
           for rel in ("R_low", "R_high")}
    assert tau["R_low"] < 0.1 < 0.4 < tau["R_high"]
    assert got[("en", "R_low_0")]["label"] == "shared"
    assert got[("en", "R_high_0")]["label"] == "shared"
    high = [r["label"] for (lg, u), r in got.items() if u.startswith("R_high_") and u[-2:] != "_0"]
    assert sum(x == "shared" for x in high) <= 0.1 * len(high)
    pooled = _run(*_two_relations(), rules=LabelRules(null=NullConfig(rule="pooled"),
                                                      correction="none"))
    high_pooled = [r["label"] for (lg, u), r in pooled.items() if u.startswith("R_high_")]
    assert sum(x == "shared" for x in high_pooled) >= 0.8 * len(high_pooled)


# ---- 50 partners under the null -------------------------------------------------------------
def test_fifty_partners_drawn_from_the_null_are_rarely_shared() -> None:
    rng = np.random.default_rng(7)
    langs = ["en"] + [f"l{i:02d}" for i in range(50)]
    st, sg, fa = [], [], []
    for i in range(40):
        for lg in langs:
            st.append((lg, f"u{i}", "R", 3))
            sg.append((lg, f"u{i}", "R", rng.choice(40, K, replace=False).tolist()))
            fa.append((lg, f"u{i}", "R", f"obj{i % 2}"))
    got = _run(st, sg, fa)
    en = [r for (lg, _), r in got.items() if lg == "en"]
    assert all(len(r["partner_langs"]) == 50 for r in en)
    assert sum(r["label"] == "shared" for r in en) < 0.1 * len(en)
    raw = [min(p for p in r["partner_pvalue"]) for r in en]
    assert sum(p <= 0.05 for p in raw) > 0.3 * len(en)     # uncorrected: many "shared"
    adj = en[0]["partner_pvalue_adj"]
    assert all(a >= p for a, p in zip(adj, en[0]["partner_pvalue"]))


# ---- power ----------------------------------------------------------------------------------
def test_independent_needs_power() -> None:
    rows_st, rows_sg, rows_fa = [], [], []
    for rel, n in (("Small", 3), ("Big", 30)):
        for i in range(n):
            u = f"{rel}{i}"
            for lg in ("en", "de"):
                rows_st.append((lg, u, rel, 3))
                rows_sg.append((lg, u, rel, [10_000 * (lg == "de") + 100 * i + x
                                             + (1000 if rel == "Big" else 0) for x in range(K)]))
                rows_fa.append((lg, u, rel, f"{u}-obj"))
    got = _run(rows_st, rows_sg, rows_fa)
    small = got[("en", "Small0")]       # J = 0, but 2 other facts, 6 pairs in the relation
    assert small["partner_jaccard"] == [0.0] and small["partner_n_diff"] == [6]
    assert small["partner_diff_pooled"] == [True] and np.isnan(small["partner_lower"][0])
    assert (small["label"], small["reason"]) == ("unlabelled", "inconclusive")
    big = got[("en", "Big0")]          # J = 0 with 29 null values at 0: independent
    assert (big["label"], big["reason"]) == ("independent", "below_lower_bound")
    assert big["partner_n_diff"] == [29] and big["partner_diff_pooled"] == [False]


# ---- transfer controls ----------------------------------------------------------------------
def _transfer_case() -> dict:
    """uk: g0 absent & correct with present & correct siblings of the same object (g4, g8, ..);
    g1 absent & correct with the answer many prompts of the relation get; g2 and g3 absent &
    correct with unique objects and answers, g2 sharing its neurons with en, g3 not."""
    st, sg, fa, pr = [], [], [], []
    n = 30
    rng = np.random.default_rng(3)
    for i in range(n):
        u = f"g{i}"
        for lg in ("en", "uk"):
            st.append((lg, u, "R", 3 if lg == "en" or i >= 4 else 2))
            sg.append((lg, u, "R", rng.choice(5000, K, replace=False).tolist()))
            obj = f"u{i}" if i in (1, 2, 3) else f"c{i % 4}"   # g0 shares c0 with g4, g8, ...
            fa.append((lg, u, "R", obj))
            pr.append({"lang": lg, "uuid": u, "relation": "R", "protocol": "full",
                       "pred_ids": [7] if i in (1, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20)
                       else [100 + i], "correct_full": True})
    sg = [(lg, u, r, ids) for lg, u, r, ids in sg]
    shared_ids = list(range(90_000, 90_000 + K))
    sg = [(lg, u, r, shared_ids if u == "g2" else ids) for lg, u, r, ids in sg]
    easy = table("easy_facts", [{"lang": "uk", "uuid": f"g{i}", "relation": "R",
                                 "category": OTHERS, "rule": "none"} for i in range(4)])
    predictions = table("predictions", pr)
    return {"st": st, "sg": sg, "fa": fa, "easy": easy, "predictions": predictions}


def test_transfer_controls() -> None:
    c = _transfer_case()
    got = _run(c["st"], c["sg"], c["fa"], easy=c["easy"], predictions=c["predictions"],
               rules=LabelRules(transfer_evidence="overlap"))
    sib = got[("uk", "g0")]
    assert sib["sibling_in_lang"] is True
    assert (sib["label"], sib["reason"]) == ("explained_within_language", "sibling_in_lang")
    pop = got[("uk", "g1")]            # 10 of uk's 29 other prompts of R answer [7]
    assert pop["prior_rate"] == pytest.approx(10 / 29) and pop["sibling_in_lang"] is False
    assert (pop["label"], pop["reason"]) == ("prior_explained", "prior_rate")
    tr = got[("uk", "g2")]             # unique answer, identical neurons in en and uk
    assert tr["prior_rate"] == 0.0 and tr["label"] == "transferred"
    assert tr["reason"] == "absent_with_shared_source" and tr["shared_with"] == ["en"]
    no = got[("uk", "g3")]             # unique answer, neurons unrelated to en's
    assert (no["label"], no["reason"]) == ("unlabelled", "no_shared_source")
    assert no["source_langs"] == ["en"]
    loose = _run(c["st"], c["sg"], c["fa"], easy=c["easy"], predictions=c["predictions"],
                 rules=LabelRules(transfer_evidence="none", max_prior=0.5))
    assert loose[("uk", "g3")]["label"] == "transferred"
    assert loose[("uk", "g3")]["reason"] == "absent_with_source"
    assert loose[("uk", "g1")]["label"] == "transferred"       # 0.34 is under a 0.5 prior


def test_default_transfer_needs_a_source_past_the_controls_not_neurons() -> None:
    """The default (`none`): the controls still decide; the reason says what the neurons showed."""
    assert LabelRules().transfer_evidence == "none"
    assert RunConfig().label.transfer_evidence == "none"
    c = _transfer_case()
    got = _run(c["st"], c["sg"], c["fa"], easy=c["easy"], predictions=c["predictions"])
    assert got[("uk", "g0")]["label"] == "explained_within_language"
    assert got[("uk", "g1")]["label"] == "prior_explained"
    assert (got[("uk", "g2")]["label"], got[("uk", "g2")]["reason"]) == \
        ("transferred", "absent_with_shared_source")          # the overlap shows en sharing it
    assert (got[("uk", "g3")]["label"], got[("uk", "g3")]["reason"]) == \
        ("transferred", "absent_with_source")                 # not shown: still transferred
    assert got[("uk", "g3")]["shared_with"] == [] and got[("uk", "g3")]["source_langs"] == ["en"]


def _ablations(rows: list[tuple[str, str, str, float]]) -> pa.Table:
    """`interventions` rows (lang, uuid, target_lang, pvalue) with 99 controls each."""
    cols = list(zip(*rows))
    return pa.table({"lang": list(cols[0]), "uuid": list(cols[1]), "target_lang": list(cols[2]),
                     "pvalue": list(cols[3]), "n_controls": [99] * len(rows)})


def test_transfer_evidence_overlap_causal_either_none() -> None:
    c = _transfer_case()
    # g3's uk units carry it in en (p 0.01 among 99 controls, also in uk itself); g2's do not
    ivs = _ablations([("uk", "g3", "en", 0.01), ("uk", "g3", "uk", 0.01),
                      ("uk", "g2", "en", 0.6), ("uk", "g2", "uk", 0.01)])

    reasons = set()

    def run(rule: str, interventions: pa.Table | None = ivs) -> dict:
        got = _run(c["st"], c["sg"], c["fa"], easy=c["easy"], predictions=c["predictions"],
                   interventions=interventions, rules=LabelRules(transfer_evidence=rule))
        reasons.update(got[("uk", u)]["reason"] for u in ("g2", "g3"))
        return {u: (got[("uk", u)]["label"], got[("uk", u)]["reason"]) for u in ("g2", "g3")}

    assert run("overlap") == {"g2": ("transferred", "absent_with_shared_source"),
                              "g3": ("unlabelled", "no_shared_source")}
    assert run("causal") == {"g2": ("unlabelled", "no_shared_source"),
                             "g3": ("transferred", "absent_with_causal_source")}
    assert run("either") == {"g2": ("transferred", "absent_with_shared_source"),
                             "g3": ("transferred", "absent_with_causal_source")}
    # none: both transferred; the reason names the evidence that showed a shared source
    assert run("none") == {"g2": ("transferred", "absent_with_shared_source"),
                           "g3": ("transferred", "absent_with_causal_source")}
    assert run("none", None) == {"g2": ("transferred", "absent_with_shared_source"),
                                 "g3": ("transferred", "absent_with_source")}
    # no interventions: the causal rule cannot test a source
    assert run("causal", None) == {"g2": ("unlabelled", "source_untested"),
                                   "g3": ("unlabelled", "source_untested")}
    # lab_check scores exactly these reasons as the candidates of `transferred` (the
    # inconclusive one is built in the next test)
    assert reasons | {"source_inconclusive"} == set(TRANSFER_CANDIDATE)
    # the causal columns are filled whatever the rule
    got = _run(c["st"], c["sg"], c["fa"], easy=c["easy"], predictions=c["predictions"],
               interventions=ivs)
    assert got[("uk", "g3")]["causal"] == "shared"
    assert got[("uk", "g3")]["causal_shared_with"] == ["en"]
    assert (got[("uk", "g2")]["causal"], got[("uk", "g2")]["causal_reason"]) == \
        ("not_shared", "below_controls")


def test_a_source_not_shown_shared_is_a_finding_only_with_power() -> None:
    """J above the independence bound but not shared: inconclusive, not `no_shared_source`."""
    ev = {"partner": np.array(["en"], dtype=object), "shared": np.array([False]),
          "p": np.array([0.3]), "j": np.array([0.4]), "below": np.array([False])}
    untested = ("untested", "no_interventions", [])
    assert _transfer_evidence(ev, untested, "overlap") == ("unlabelled", "source_inconclusive")
    ev["below"] = np.array([True])      # J at or below the bound, with a null behind it
    assert _transfer_evidence(ev, untested, "overlap") == ("unlabelled", "no_shared_source")
    # either: the causal test, when it ran, must say not_shared with power too
    assert _transfer_evidence(ev, ("not_shared", "below_controls", []), "either") == \
        ("unlabelled", "no_shared_source")
    assert _transfer_evidence(ev, ("shared", "beats_controls", ["de"]), "either") == \
        ("unlabelled", "source_inconclusive")
    assert _transfer_evidence(ev, ("untested", "underpowered", []), "either") == \
        ("unlabelled", "no_shared_source")


def test_identical_spellings_are_recorded_per_partner() -> None:
    st = [(lg, u, "R", 3) for lg in ("bg", "uk", "en") for u in ("a", "b")]
    sg = [(lg, u, "R", list(range(10 * i, 10 * i + K))) for i, (lg, u) in
          enumerate((lg, u) for lg in ("bg", "uk", "en") for u in ("a", "b"))]
    t = facts([("bg", "a", "R", "Київ", "Дніпро"), ("uk", "a", "R", "київ", "Дніпро"),
               ("en", "a", "R", "Kyiv", "Dnipro"), ("bg", "b", "R"), ("uk", "b", "R"),
               ("en", "b", "R")])
    got = _by_key(build_fact_labels(status(st), None, sigs(sg), None, facts=t, top_k=K))
    r = got[("bg", "a")]
    assert dict(zip(r["partner_langs"], r["partner_identical"])) == {"uk": True, "en": False}
    assert got[("bg", "b")]["partner_identical"] == [True, True]   # S<uuid>, O<uuid> everywhere


def test_identical_spellings_can_be_excluded() -> None:
    st, sg, fa = _confound()
    names = facts([(lg, u, r) for lg, u, r, _ in fa])        # S<uuid>/O<uuid>: identical
    names = names.set_column(names.column_names.index("obj_uri"), "obj_uri",
                             pa.array([o for *_, o in fa]))
    rules = LabelRules(identical_spellings="exclude")
    got = _by_key(build_fact_labels(status(st), None, sigs(sg), None, facts=names,
                                    rules=rules, top_k=K))
    t = got[("en", "f0")]              # shared under "record"; excluded, it is untested
    assert t["partner_identical"] == [True] and np.isnan(t["partner_pvalue_adj"][0])
    assert (t["label"], t["reason"]) == ("unlabelled", "inconclusive")
