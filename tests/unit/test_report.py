"""report: per-language tables, clustering, figures, report.md/html, missing stages, notebook."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from label_data import build_run, facts, write

from factroots.config import load_config
from factroots.label import job as label_job
from factroots.report import figures, report, results
from factroots.report import job as report_job

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    build_run(out)
    label_job.run(load_config(None, {"out": str(out), "label.min_null": 1, "probe.model": ""}))
    return out


def test_result_tables(run_dir: Path) -> None:
    res = results.load_results(run_dir)
    p1 = results.p1_table(res).set_index("lang")
    assert p1.loc["de", "p1"] == pytest.approx(100.0) and p1.loc["fr", "p1"] == 50.0
    assert p1.loc["en", "p1_macro"] == pytest.approx(50.0)    # P19 1.0, P17 0.0
    assert list(results.p1_table(res)["lang"]) == ["de", "en", "fr"]
    ab = results.absent_table(res).set_index("lang")
    assert ab.loc["de", "absent_correct"] == 2 and ab.loc["de", "absent_rate"] == pytest.approx(
        200 / 3)
    assert ab.loc["fr", "unknown"] == 2 and np.isnan(ab.loc["fr", "absent_rate"])
    easy = results.easy_table(res).set_index("lang")
    assert easy.loc["de", "shared_entity_tokens"] == 1 and easy.loc["de", "naming_cues"] == 1
    corpus = results.corpus_table(res).set_index("lang")
    assert corpus.loc["en", "articles"] == 24 and corpus.loc["de", "sentences"] == 5
    assert np.isnan(corpus.loc["fr", "articles"])
    m = results.overlap_matrix(res, top=2)
    assert list(m.index) == ["de", "en"] and m.loc["en", "de"] == 0.4
    assert res.notes == ["label: cooccurrence: no finished partition for fr",
                         "label: token-overlap rule skipped: no tokenizer path configured or recorded"]


def test_pearson_and_cluster_order() -> None:
    assert results.pearson([1, 2, 3, 4, 5], [2, 4, 6, 8, 10])[0] == pytest.approx(1.0)
    assert np.isnan(results.pearson([1, 2, 3, 4], [2, 4, 6, 8])[0])    # < 5 languages
    assert results.pearson([1, 2, 3], [1, 2, 4], min_n=3)[1] == 3
    d = np.array([[0, .9, .1, .8], [.9, 0, .85, .2], [.1, .85, 0, .9], [.8, .2, .9, 0]])
    order = figures.cluster_order(d)
    assert sorted(order) == [0, 1, 2, 3]
    assert abs(order.index(0) - order.index(2)) == 1 and abs(order.index(1) - order.index(3)) == 1


def test_report_files(run_dir: Path) -> None:
    md = report_job.run(load_config(None, {"out": str(run_dir)}))
    assert md == run_dir / "report" / "report.md"
    text = md.read_text()
    for needle in ("## What was run", "## P@1 per language", "no correlation is computed",
                   "transferred", "95 % bootstrap", "Per relation",
                   "figures/p1.png", "figures/overlap_heatmap.png", "co-occurrence in the same"):
        assert needle in text, needle
    assert "fewer than 30 facts" in text                       # every language is small here
    figs = sorted(p.name for p in (run_dir / "report" / "figures").glob("*.png"))
    assert figs == sorted(f"{n}.png" for n in figures.FIGURES if n != "lab_check")  # no lab
    html = (run_dir / "report" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(figs) and "<table>" in html


def test_report_says_what_transferred_asked_of_the_neurons(run_dir: Path) -> None:
    res = results.load_results(run_dir)
    assert results.transfer_rule(res) == "none"           # the default, as the label stage ran
    fl = res.get("fact_labels").copy()
    fl.loc[fl["uuid"] == "a", ["label", "reason"]] = ["transferred", "absent_with_source"]
    fl.loc[fl["uuid"] == "c", ["label", "reason"]] = ["transferred", "absent_with_shared_source"]
    res.tables["fact_labels"] = fl
    res.manifests["fact_labels"] = {"de": {"config": {"label": {"transfer_evidence": "overlap"}}}}
    assert results.transfer_rule(res) == "overlap"
    tr = results.reasons_table(res, "transferred").set_index(["lang", "reason"])["facts"].to_dict()
    assert tr == {("de", "absent_with_source"): 1, ("de", "absent_with_shared_source"): 1,
                  ("en", "absent_with_source"): 1, ("fr", "absent_with_source"): 1}
    text = " ".join(str(b[1]) for b in report.label_blocks(res, {}))
    assert "its L signature shared with a source" in text
    assert "Transferred facts by the neuron evidence" in text
    res.manifests = {}
    assert "the neuron evidence is unrecorded" in " ".join(
        str(b[1]) for b in report.label_blocks(res, {}))


def test_report_degrades_without_stages(tmp_path: Path) -> None:
    write(tmp_path, "facts", facts([("en", "a", "P19"), ("de", "a", "P19")]))
    md = report_job.run(load_config(None, {"out": str(tmp_path), "report.formats": ["md"]}))
    text = md.read_text()
    assert "`predictions` is missing" in text and "the probe stage did not run" in text
    assert "No trace pages/sentences" in text and not (md.parent / "report.html").exists()
    empty = report_job.run(load_config(None, {"out": str(tmp_path / "nothing")}))
    assert "`facts` is missing" in empty.read_text()


def test_report_names_what_failed_in_the_run(tmp_path: Path) -> None:
    write(tmp_path, "facts", facts([("en", "a", "P19"), ("de", "a", "P19")]))
    assert "Failed in this run" not in report_job.run(
        load_config(None, {"out": str(tmp_path), "report.formats": ["md"]})).read_text()
    failed = [{"stage": "trace", "table": "cooccurrence", "lang": "de",
               "error": "dump de.xml is not a MediaWiki XML dump"}]
    (tmp_path / "run_report.json").write_text(json.dumps({"ok": False, "failed": failed}))
    text = report_job.run(load_config(None, {"out": str(tmp_path),
                                             "report.formats": ["md"]})).read_text()
    assert "Failed in this run" in text and "1 partition(s) failed" in text
    assert "not a MediaWiki XML dump" in text and text.index("Failed in this run") < text.index(
        "Missing inputs")


def test_notebook_has_no_outputs_and_no_logic() -> None:
    nb = json.loads((ROOT / "notebooks" / "01_results.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code
    for cell in code:
        assert cell.get("outputs", []) == [] and cell.get("execution_count") is None
        tree = ast.parse("".join(cell["source"]))
        for node in ast.walk(tree):
            assert not isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.For, ast.While,
                                         ast.If, ast.Lambda, ast.ListComp, ast.DictComp))
            if isinstance(node, ast.ImportFrom):
                assert node.module.startswith("factroots") or node.module == "pathlib"
            if isinstance(node, ast.Import):
                assert all(a.name.startswith("factroots") or a.name == "os" for a in node.names)
    src = "".join("".join(c["source"]) for c in code)
    assert src.count("figures.plot_") == 2


def test_notebook_cells_run_on_a_real_output(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACTROOTS_OUT", str(run_dir))
    nb = json.loads((ROOT / "notebooks" / "01_results.ipynb").read_text())
    ns: dict = {}
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), "notebook", "exec"), ns)  # noqa: S102
    assert ns["res"].langs == ["de", "en", "fr"]
    figures.plt.close("all")


def test_pair_table(run_dir: Path) -> None:
    res = results.load_results(run_dir)
    pairs = results.pair_table(res).set_index(["lang", "other_lang"])
    assert pairs.loc[("en", "de"), "facts"] == 1 and pairs.loc[("en", "de"), "tested"] == 1
    assert pairs.loc[("en", "de"), "shared"] == 0 and pairs.loc[("en", "de"), "threshold_diff"] == 0
    assert np.isnan(pairs.loc[("en", "de"), "threshold"])   # no two facts share an object
    assert np.isnan(pairs.loc[("en", "de"), "chance"])       # the neuron count is not recorded


def test_corpus_figure_falls_back_to_sentences(run_dir: Path) -> None:
    res = results.load_results(run_dir)
    res.corpus["articles"] = np.nan
    fig = figures.plot_p1_vs_corpus(res)
    assert fig is not None and "sentences" in fig.axes[0].get_xlabel()
    assert "too few for r" in fig.axes[0].get_title()
    figures.plt.close(fig)


def test_report_shows_the_lab_check_when_present(tmp_path: Path) -> None:
    import pyarrow as pa

    from factroots import tables

    write(tmp_path, "facts", facts([("en", "a", "P19"), ("uk", "a", "P19")]))
    plain = report_job.run(load_config(None, {"out": str(tmp_path)})).read_text()
    assert "Lab check" not in plain and "`lab_check` is missing" not in plain
    check = tables.conform("lab_check", pa.table({
        "lang": ["en", "en", "uk", "all"],
        "metric": ["trace_recall_planted", "transferred_precision", "trace_recall_planted",
                   "transferred_recall"],
        "value": [1.0, 0.0, 0.75, 0.5], "numerator": [60, 0, 45, 3],
        "denominator": [60, 0, 60, 6], "ci_low": [0.94, None, 0.63, 0.19],
        "ci_high": [1.0, None, 0.84, 0.81]}))  # lab 2: Wilson bounds
    write(tmp_path, "lab_check", check)
    text = report_job.run(load_config(None, {"out": str(tmp_path)})).read_text()
    assert "## Lab check: labels against the lab's truths" in text
    assert "What its truths are." in text and "counterfactual model" in text
    assert "100.0% (60/60)" in text and "75.0% (45/60)" in text and "–" in text
    assert "figures/lab_check.png" in text  # the pooled metrics with their intervals
    fig = figures.plot_lab_check(results.load_results(tmp_path))
    fig.canvas.draw()
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["transferred_recall (3/6)"]  # only pooled rows with a denominator
    figures.plt.close(fig)


def test_chance_level_jaccard() -> None:
    assert results.chance_jaccard(1, 2) == pytest.approx(0.5)
    assert results.chance_jaccard(2, 4) == pytest.approx(7 / 18)    # i = 1 w.p. 4/6, 2 w.p. 1/6
    mbert, lab = results.chance_jaccard(50, 36_864), results.chance_jaccard(50, 1_024)
    assert mbert == pytest.approx(50 / (2 * 36_864 - 50), rel=0.02)
    assert lab / mbert > 30 and np.isnan(results.chance_jaccard(50, None))


def test_bootstrap_shares_cover_the_share() -> None:
    import pandas as pd

    df = pd.DataFrame({"lang": ["en"] * 100 + ["de"] * 10,
                       "label": ["shared"] * 30 + ["independent"] * 70 + ["shared"] * 10})
    b = results.bootstrap_shares(df, "label", results.LABEL_ORDER).set_index(["lang", "label"])
    en = b.loc[("en", "shared")]
    assert en["share"] == pytest.approx(30) and en["ci_low"] < 30 < en["ci_high"]
    assert 15 < en["ci_low"] and en["ci_high"] < 45
    assert b.loc[("de", "shared"), "ci_low"] == pytest.approx(100)   # no variation to resample


def test_paper_jaccards_only_for_the_same_neuron_space(run_dir: Path) -> None:
    from factroots.report import report

    res = results.load_results(run_dir)
    res.neurons = 1_024
    text = " ".join(b[1] for b in report.overlap_blocks(res, {}, 30) if b[0] == "p")
    assert "not comparable" in text and "0.211" not in text and "1,024 neurons" in text
    res.neurons = results.MBERT_NEURONS
    text = " ".join(b[1] for b in report.overlap_blocks(res, {}, 30) if b[0] == "p")
    assert "en–zh 0.211" in text and "chance level" in text


def test_relation_table(run_dir: Path) -> None:
    rel = results.relation_table(results.load_results(run_dir)).set_index("relation")
    assert rel.loc["P19", "tests"] == 2 and rel.loc["P19", "shared"] == 0
