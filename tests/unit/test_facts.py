"""The facts stage: the shipped mLAMA 1.1 counts exactly, and every kind of bad input."""

from __future__ import annotations

import hashlib
import json
import logging
import tarfile
from pathlib import Path

import pyarrow.compute as pc
import pytest

from factroots import facts as facts_pkg
from factroots import storage
from factroots.config import load_config
from factroots.errors import ConfigError, ShardError
from factroots.facts import job
from factroots.facts.sources import (
    DirSource,
    ShippedSource,
    shipped_counts,
    shipped_dir,
)
from factroots.facts.templates import template_problem

ROOT = Path(__file__).resolve().parents[2]
PAPER_LANG_COUNTS = {"en": 37498, "fr": 33872, "de": 32548, "ja": 25356, "zh": 21449,
                     "uk": 18147, "bg": 12669, "ta": 7241, "ceb": 6829}
PAPER_REL_COUNTS = {"P530": 52702, "P190": 51932, "place_of_birth": 44710, "P47": 41106,
                    "P37": 40394, "P108": 6802, "P463": 6597}


# ---- the shipped data -----------------------------------------------------------------------

@pytest.fixture(scope="session")
def shipped_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The facts stage run once on all 53 shipped languages."""
    out = tmp_path_factory.mktemp("facts_all")
    job.run(load_config(overrides={"out": str(out)}))
    return out


@pytest.fixture(scope="session")
def shipped_facts(shipped_out: Path):
    return storage.read_table(shipped_out, "facts")


def test_shipped_facts_have_exactly_mlama_counts(shipped_facts) -> None:
    assert shipped_facts.num_rows == 843_143
    assert len(pc.unique(shipped_facts["lang"])) == 53
    assert len(pc.unique(shipped_facts["relation"])) == 43
    assert len(pc.unique(shipped_facts["uuid"])) == 37_535
    keys = pc.binary_join_element_wise(shipped_facts["lang"], shipped_facts["uuid"], "/")
    assert len(pc.unique(keys)) == 843_143


def test_shipped_counts_per_language_and_relation_match_the_paper(shipped_facts) -> None:
    by_lang = {r["lang"]: r["uuid_count"] for r in
               shipped_facts.group_by("lang").aggregate([("uuid", "count")]).to_pylist()}
    by_rel = {r["relation"]: r["uuid_count"] for r in
              shipped_facts.group_by("relation").aggregate([("uuid", "count")]).to_pylist()}
    assert {lg: by_lang[lg] for lg in PAPER_LANG_COUNTS} == PAPER_LANG_COUNTS
    assert {r: by_rel[r] for r in PAPER_REL_COUNTS} == PAPER_REL_COUNTS
    en = shipped_facts.filter(pc.equal(shipped_facts["lang"], "en"))
    google = {r: int(pc.sum(pc.equal(en["relation"], r)).as_py())
              for r in ("place_of_birth", "place_of_death")}
    assert google == {"place_of_birth": 2764, "place_of_death": 753}
    assert en.num_rows - sum(google.values()) == 33_981


def test_shipped_templates_are_the_papers(shipped_out: Path, shipped_facts) -> None:
    t = storage.read_table(shipped_out, "templates")
    assert t.num_rows == 53 * 48  # 49 lines per language, date_of_birth excluded
    assert "date_of_birth" not in t["relation"].to_pylist()
    en = {r["relation"]: r["template"] for r in t.to_pylist() if r["lang"] == "en"}
    assert en["P1001"] == "[X] is a legal term in [Y] ."
    assert en["P19"] == en["place_of_birth"] == "[X] was born in [Y] ."
    assert {"P166", "P69", "P54", "P1923", "P102"} <= set(en)  # templates without triples
    assert all(template_problem(x) is None for x in t["template"].to_pylist())
    joined = {(r["lang"], r["relation"]): r["template"] for r in t.to_pylist()}
    sample = shipped_facts.slice(0, 5000).to_pylist()
    assert all(joined[(r["lang"], r["relation"])] == r["template"] for r in sample)


def test_shipped_candidates_are_the_distinct_objects(shipped_out: Path, shipped_facts) -> None:
    c = storage.read_table(shipped_out, "candidates", langs=["en", "uk"])
    assert set(c["source"].to_pylist()) == {"TREx", "GoogleRE"}
    keys = [(r["lang"], r["relation"], r["candidate"]) for r in c.to_pylist()]
    assert len(keys) == len(set(keys))
    en_p17 = {k[2] for k in keys if k[:2] == ("en", "P17")}
    assert len(en_p17) == 109 and "Germany" in en_p17
    f = shipped_facts.filter(pc.equal(shipped_facts["lang"], "uk"))
    objs = {(r["relation"], r["obj_label"]) for r in f.select(["relation", "obj_label"]).to_pylist()}
    assert objs == {(k[1], k[2]) for k in keys if k[0] == "uk"}


def test_shipped_stats_balance_and_rerun_skips(shipped_out: Path) -> None:
    for table in job.TABLES:
        for lang in ("en", "ceb"):
            stats = storage.read_stats(shipped_out, table, lang)
            assert stats["out"] > 0 and storage.check_balance(stats), (table, lang, stats)
    assert storage.read_stats(shipped_out, "candidates", "en")["rejected_duplicate_candidate"] > 0
    before = storage.read_manifest(shipped_out, "facts", "en")["created"]
    marker = storage.partition_dir(shipped_out, "facts", "en") / "_SUCCESS"
    mtime = marker.stat().st_mtime_ns
    job.run(load_config(overrides={"out": str(shipped_out), "langs": ["en"]}))
    assert marker.stat().st_mtime_ns == mtime
    assert storage.read_manifest(shipped_out, "facts", "en")["created"] == before


def test_available_langs_and_relations() -> None:
    langs = facts_pkg.available_langs()
    assert len(langs) == 53 and langs[:3] == ["af", "ar", "az"] and "ceb" in langs
    rels = facts_pkg.available_relations()
    assert len(rels) == 43 and "date_of_birth" not in rels and "P166" not in rels
    assert set(facts_pkg.available_relations(lang="ceb")) < set(rels)


def test_shipped_data_is_small_intact_and_licensed() -> None:
    d = shipped_dir()
    assert sum(f.stat().st_size for f in d.iterdir()) < 25e6
    for line in (d / "CHECKSUMS").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((d / name).read_bytes()).hexdigest() == digest, name
    notice = (d / "LICENSE-DATA.md").read_text(encoding="utf-8")
    assert "CC BY-NC-SA 4.0" in notice and "CC BY-NC 4.0" in notice and "3e50a5ab" in notice
    top = (ROOT / "NOTICE").read_text(encoding="utf-8")
    assert "CC BY-NC-SA 4.0" in top and "CC BY-SA 4.0" in top


@pytest.mark.shared
def test_shipped_data_comes_from_the_shared_tarballs(shared_data: Path) -> None:
    for name, digest in shipped_counts()["sources"].items():
        path = shared_data / "mlama" / name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, name


@pytest.mark.shared
def test_shipped_data_equals_the_release_jsonl(shared_data: Path, tmp_path: Path) -> None:
    # A sample of languages (the full rebuild is scripts/build_mlama_data.py, ~15 s).
    langs = ("uk", "ceb")
    with tarfile.open(shared_data / "mlama" / "mlama1.1.tar.gz") as tf:
        tf.extractall(tmp_path, members=[m for m in tf.getmembers()
                                         if m.name.split("/")[1:2] in (["uk"], ["ceb"])],
                      filter="data")
    with tarfile.open(shared_data / "mlama" / "mlama1.1-candidates.tar.gz") as tf:
        tf.extractall(tmp_path, members=[m for m in tf.getmembers()
                                         if m.name.endswith(("/uk.json", "/ceb.json"))],
                      filter="data")
    order = [("relation", "ascending"), ("lineid", "ascending")]
    release_dir = DirSource(tmp_path / "mlama1.1", tmp_path / "mlama1.1-candidates")
    assert release_dir.langs() == sorted(langs)
    for lang in langs:
        mine, release = ShippedSource().read(lang), release_dir.read(lang)
        assert mine.triples.num_rows > 6000
        assert mine.triples.sort_by(order).equals(release.triples.sort_by(order))
        assert mine.templates.equals(release.templates)
        assert mine.candidates.equals(release.candidates)
        assert release.triple_rejects == release.template_rejects == {}


# ---- a user's mLAMA-format directory --------------------------------------------------------

def triple(i: int, uuid: str | None = None, **kw) -> dict:
    row = {"sub_uri": f"Q{i}", "obj_uri": f"Q{1000 + i % 3}", "obj_label": f"Land{i % 3}",
           "sub_label": f"Ort{i}", "lineid": i, "uuid": uuid or f"u{i}"}
    return {**row, **kw}


def write_mlama(root: Path, lang: str, templates: dict[str, str],
                triples: dict[str, list]) -> Path:
    """A tiny mLAMA-format language folder; a str line in ``triples`` is written as is."""
    d = root / lang
    d.mkdir(parents=True, exist_ok=True)
    (d / "templates.jsonl").write_text("".join(
        json.dumps({"relation": r, "template": t}) + "\n" for r, t in templates.items()),
        encoding="utf-8")
    for rel, rows in triples.items():
        (d / f"{rel}.jsonl").write_text("".join(
            (r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n"
            for r in rows), encoding="utf-8")
    return root


def run_dir(tmp_path: Path, **over):
    out = tmp_path / "out"
    cfg = load_config(overrides={"out": str(out), "facts.mlama_dir": str(tmp_path / "mlama"),
                                 **over})
    job.run(cfg)
    return out


GOOD = {"P17": "[X] liegt in [Y] .", "P19": "[X] wurde in [Y] geboren ."}


def test_user_dir_reads_like_the_shipped_data(tmp_path: Path) -> None:
    write_mlama(tmp_path / "mlama", "de", GOOD,
                {"P17": [triple(i) for i in range(5)], "P19": [triple(i + 10) for i in range(3)]})
    out = run_dir(tmp_path)
    f = storage.read_table(out, "facts")
    assert f.num_rows == 8 and f["template"][0].as_py() == "[X] liegt in [Y] ."
    assert storage.read_stats(out, "facts", "de") == {"in": 8, "out": 8}
    c = storage.read_table(out, "candidates")
    assert set(c["source"].to_pylist()) == {"facts"}  # no candidate lists: derived from facts
    assert sorted(c.filter(pc.equal(c["relation"], "P17"))["candidate"].to_pylist()) == \
        ["Land0", "Land1", "Land2"]


def test_malformed_json_line_is_a_counted_reject_naming_file_and_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = [triple(0), '{"sub_uri": "Q1", "obj_uri": ', triple(2), "[1, 2]",
            json.dumps({k: v for k, v in triple(4).items() if k != "obj_label"}),
            triple(5, lineid=2**40), triple(6, lineid="6")]
    write_mlama(tmp_path / "mlama", "de", GOOD, {"P17": rows})
    with (tmp_path / "mlama" / "de" / "P17.jsonl").open("ab") as fh:
        fh.write(b'{"sub_label": "\xff\xfe"}\n\n')  # not UTF-8; the blank line is no row
    with caplog.at_level(logging.WARNING):
        out = run_dir(tmp_path)
    stats = storage.read_stats(out, "facts", "de")
    assert stats == {"in": 8, "out": 2, "rejected_malformed_json": 3, "rejected_bad_record": 3}
    assert all(f"P17.jsonl:{no}:" in caplog.text for no in (2, 4, 6, 7, 8))
    assert "P17.jsonl:5: missing or mistyped field 'obj_label'" in caplog.text


@pytest.mark.parametrize("template, why", [("[X] liegt in [Y] [Y] .", "1 [X] and 2 [Y]"),
                                           ("[X] liegt irgendwo .", "1 [X] and 0 [Y]"),
                                           ("liegt in [Y] .", "0 [X] and 1 [Y]")])
def test_bad_template_is_rejected_with_its_reason_and_its_triples(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, template: str, why: str) -> None:
    write_mlama(tmp_path / "mlama", "de", {**GOOD, "P17": template},
                {"P17": [triple(i) for i in range(4)], "P19": [triple(9)]})
    with caplog.at_level(logging.WARNING):
        out = run_dir(tmp_path)
    assert storage.read_stats(out, "templates", "de") == {
        "in": 2, "out": 1, "rejected_bad_template": 1}
    assert storage.read_table(out, "templates")["relation"].to_pylist() == ["P19"]
    assert storage.read_stats(out, "facts", "de") == {
        "in": 5, "out": 1, "rejected_bad_template": 4}
    assert caplog.text.count(f"de/P17 template {template!r} rejected: has {why}") == 1


def test_duplicate_uuid_is_rejected_and_the_first_kept(tmp_path: Path) -> None:
    write_mlama(tmp_path / "mlama", "de", GOOD,
                {"P17": [triple(0), triple(1, uuid="same"), triple(2, uuid="same")],
                 "P19": [triple(3, uuid="same")]})
    out = run_dir(tmp_path)
    f = storage.read_table(out, "facts")
    assert storage.read_stats(out, "facts", "de") == {"in": 4, "out": 2,
                                                      "rejected_duplicate_uuid": 2}
    kept = [r for r in f.to_pylist() if r["uuid"] == "same"]
    assert [(r["relation"], r["lineid"]) for r in kept] == [("P17", 1)]


def test_triples_without_template_empty_fields_and_excluded_relations_are_counted(
        tmp_path: Path) -> None:
    write_mlama(tmp_path / "mlama", "de", {**GOOD, "date_of_birth": "[X] wurde [Y] geboren ."},
                {"P17": [triple(0), triple(1, sub_label=" ")], "P31": [triple(5)],
                 "date_of_birth": [triple(7)]})
    out = run_dir(tmp_path)
    assert storage.read_stats(out, "facts", "de") == {
        "in": 4, "out": 1, "rejected_no_template": 1, "rejected_empty_field": 1,
        "rejected_excluded_relation": 1}
    assert storage.read_stats(out, "templates", "de")["rejected_excluded_relation"] == 1


def test_unknown_language_or_relation_is_a_config_error_listing_what_exists(
        tmp_path: Path) -> None:
    write_mlama(tmp_path / "mlama", "de", GOOD, {"P17": [triple(0)]})
    write_mlama(tmp_path / "mlama", "fr", GOOD, {"P19": [triple(0)]})
    with pytest.raises(ConfigError, match="unknown language xx") as err:
        run_dir(tmp_path, langs=["xx"])
    assert err.value.fix == "use some of: de fr"
    with pytest.raises(ConfigError, match="relation P31 is unknown") as err:
        run_dir(tmp_path, relations=["P31"])
    assert err.value.fix == "use some of: P17 P19"
    with pytest.raises(ConfigError, match="unknown language xx in shipped mLAMA 1.1"):
        job.run(load_config(overrides={"out": str(tmp_path / "o"), "langs": ["en", "xx"]}))
    with pytest.raises(ConfigError, match="P166 has a template but no triples"):
        job.run(load_config(overrides={"out": str(tmp_path / "o"), "relations": ["P166"]}))
    with pytest.raises(ConfigError, match="not a directory"):
        run_dir(tmp_path, **{"facts.mlama_dir": str(tmp_path / "nope")})


def test_candidate_lists_are_deduplicated_and_a_broken_one_fails_only_its_language(
        tmp_path: Path) -> None:
    for lang in ("de", "fr"):
        write_mlama(tmp_path / "mlama", lang, GOOD, {"P17": [triple(0), triple(1)]})
    cands = tmp_path / "cands" / "TREx_multilingual_objects"
    cands.mkdir(parents=True)
    (cands / "de.json").write_text(json.dumps(
        {"P17": {"objects": ["A", "B", "A", " "], "subjects": []},
         "date_of_birth": {"objects": ["1900"]}}), encoding="utf-8")
    (cands / "fr.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ShardError, match="fr.json: not valid JSON") as err:
        run_dir(tmp_path, **{"facts.candidates_dir": str(tmp_path / "cands")})
    assert err.value.lang == "fr"
    out = tmp_path / "out"
    assert storage.done_langs(out, "facts") == ["de"]
    c = storage.read_table(out, "candidates")
    assert c["candidate"].to_pylist() == ["A", "B"] and c["source"][0].as_py() == "TREx"
    assert storage.read_stats(out, "candidates", "de") == {
        "in": 5, "out": 2, "rejected_excluded_relation": 1, "rejected_empty_candidate": 1,
        "rejected_duplicate_candidate": 1}
    (cands / "fr.json").unlink()  # no list for fr: derived from its facts
    run_dir(tmp_path, **{"facts.candidates_dir": str(tmp_path / "cands")})
    fr = storage.read_table(out, "candidates", langs=["fr"])
    assert fr["source"].to_pylist() == ["facts", "facts"]
    assert storage.read_stats(out, "candidates", "fr")["derived_from_facts"] == 1


def test_rerun_skips_done_languages_and_redoes_changed_input(tmp_path: Path) -> None:
    write_mlama(tmp_path / "mlama", "de", GOOD, {"P17": [triple(0)]})
    out = run_dir(tmp_path)
    marker = storage.partition_dir(out, "facts", "de") / "_SUCCESS"
    first = marker.stat().st_mtime_ns
    run_dir(tmp_path)
    assert marker.stat().st_mtime_ns == first
    write_mlama(tmp_path / "mlama", "de", GOOD, {"P17": [triple(0), triple(1)]})
    run_dir(tmp_path)
    assert storage.read_table(out, "facts").num_rows == 2
    run_dir(tmp_path, relations=["P17"])  # another selection is another fingerprint
    assert storage.read_manifest(out, "facts", "de")["config"]["relations"] == ["P17"]
