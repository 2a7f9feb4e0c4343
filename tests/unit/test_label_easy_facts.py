"""easy_facts: each rule, their order, Chinese scripts, and the tokenizer loading or skipping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from label_data import facts, status

from factroots.label.easy_facts import (
    NAMING,
    OTHERS,
    SHARED,
    build_easy_facts,
    classify,
)
from factroots.label.tokenizer import load_token_sets

NAMING_RELS = ["P17", "P27", "P1412", "P140", "P103"]


def _words(text: str) -> frozenset[int]:
    return frozenset(hash(w) for w in text.split())


@pytest.mark.parametrize("sub, obj, rel, lang, expected", [
    ("Nissan Quest", "NISSAN", "P176", "en", (SHARED, "substring")),
    ("臺灣大學", "台湾", "P131", "zh", (SHARED, "substring")),        # Traditional vs Simplified
    ("臺灣大學", "台湾", "P131", "ja", (OTHERS, "none")),             # only zh is converted
    ("Nissan Quest", "Nissan Motors", "P176", "en", (SHARED, "token_overlap")),
    ("Anatole France", "French", "P103", "en", (NAMING, "naming_relation")),
    ("Franciszek Smuglewicz", "Warsaw", "P19", "en", (OTHERS, "none")),
    ("France Télécom", "France", "P17", "en", (SHARED, "substring")),  # first rule wins
    ("Ab", "", "P19", "en", (OTHERS, "none")),                       # an empty object is no cue
])
def test_rules_in_order(sub: str, obj: str, rel: str, lang: str, expected: tuple) -> None:
    assert classify(sub, obj, rel, lang, NAMING_RELS, _words) == expected


def test_without_tokenizer_the_token_rule_is_skipped() -> None:
    assert classify("Nissan Quest", "Nissan Motors", "P176", "en", NAMING_RELS, None) == (
        OTHERS, "none")
    assert classify("Nissan Quest", "Nissan Motors", "P176", "en", ["P176"], None) == (
        NAMING, "naming_relation")


def test_build_only_status_2_rows() -> None:
    f = facts([("en", "u1", "P17", "France Télécom", "France"),
               ("en", "u2", "P19", "Franciszek Smuglewicz", "Warsaw"),
               ("en", "u3", "P27", "Jean Say", "France"), ("en", "u4", "P19", "A", "B")])
    st = status([("en", "u1", "P17", 2), ("en", "u2", "P19", 2), ("en", "u3", "P27", 2),
                 ("en", "u4", "P19", 3), ("de", "u1", "P17", 0)])
    t = build_easy_facts(st, f, naming_relations=NAMING_RELS, token_sets=_words)
    got = {r["uuid"]: (r["category"], r["rule"]) for r in t.to_pylist()}
    assert got == {"u1": (SHARED, "substring"), "u2": (OTHERS, "none"),
                   "u3": (NAMING, "naming_relation")}
    empty = build_easy_facts(status([("en", "u4", "P19", 3)]), f, naming_relations=[])
    assert empty.num_rows == 0 and empty.schema.names[-1] == "rule"


def _word_tokenizer(folder: Path) -> Path:
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit

    vocab = {"[UNK]": 0, "Nissan": 1, "Motors": 2, "Quest": 3, "▁": 4, "the": 5}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = WhitespaceSplit()
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    return folder


def test_load_tokenizer_json_and_marker_tokens_are_ignored(tmp_path: Path) -> None:
    model = _word_tokenizer(tmp_path / "model")
    ts = load_token_sets(["lab", str(tmp_path / "nope"), str(model)])
    assert ts.encode is not None and ts.source == str(model)
    assert ts.encode("Nissan Motors ▁") == {1, 2}        # the lone boundary token is dropped
    assert classify("Nissan Quest ▁", "▁ Motors", "P176", "en", [], ts.encode) == (OTHERS, "none")


def test_load_vocab_txt_for_wordpiece_models(tmp_path: Path) -> None:
    folder = tmp_path / "mbert"
    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
                                                 "Paris", "##ian", "London"]) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    ts = load_token_sets([str(folder)])
    assert ts.encode is not None
    assert ts.encode("Parisian") == {5, 6} and ts.encode("London") == {7}


def test_unloadable_tokenizer_is_a_recorded_skip(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "tokenizer.json").write_text("{not json")
    ts = load_token_sets([str(tmp_path / "broken"), str(tmp_path / "missing")])
    assert ts.encode is None and "skipped" in ts.note and "broken" in ts.note
    assert load_token_sets(["lab"]).note.startswith("token-overlap rule skipped")
