"""The pure matcher: whole words, casefold, Turkish i, CJK substrings, left boundaries."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import pyarrow as pa

from factroots.text import match
from factroots.text.match import Matcher, cached_matcher, mode_for, names_key
from factroots.text.normalize import normalize_many


def _find(lang: str, names: list[str], texts: list[str], mode: str | None = None) -> list[tuple]:
    mode = mode or mode_for(lang, ["zh", "ja", "th"], ["tr", "fi", "hu", "ko"])
    norms = normalize_many(names, lang)
    m = Matcher.build(lang, mode, norms)
    return [(h.text_idx, names[h.name_idx], texts[h.text_idx][h.start:h.end], h.strictness)
            for h in m.find(texts)]


def test_whole_words_only_in_latin_script() -> None:
    hits = _find("en", ["Paris", "France"], ["The Parisian said Paris, FRANCE!", "Frances"])
    assert hits == [(0, "Paris", "Paris", "word"), (0, "France", "FRANCE", "word")]


def test_multiword_names_across_punctuation_and_nested_names() -> None:
    hits = _find("en", ["Paris", "Paris Saint-Germain"], ["Paris  Saint Germain beat Lyon."])
    assert sorted(h[2] for h in hits) == ["Paris", "Paris  Saint Germain"]


def test_cyrillic_greek_armenian_bengali_arabic_scripts() -> None:
    cases = [
        ("uk", ["Київ"], ["Київ є столицею; Київщина ні."], ["Київ"]),
        ("el", ["αθήνα"], ["Η ΑΘΉΝΑ και η Αθήνα, όχι Αθήναι."], ["ΑΘΉΝΑ", "Αθήνα"]),
        ("hy", ["Երևան"], ["Երևանը և Երևան։"], ["Երևան"]),
        ("bn", ["ঢাকা"], ["ঢাকা বাংলাদেশের রাজধানী। ঢাকাই নয়।"], ["ঢাকা"]),
        ("ar", ["القاهرة"], ["اَلْقَاهِرَة هي عاصمة مصر، والقاهرةُ كبيرة"], ["اَلْقَاهِرَة"]),
    ]
    for lang, names, texts, expected in cases:
        assert [h[2] for h in _find(lang, names, texts)] == expected, lang


def test_casefold_and_german_sharp_s() -> None:
    assert [h[2] for h in _find("de", ["Straße"], ["STRASSE und Strasse"])] == ["STRASSE", "Strasse"]


def test_turkish_dotted_i_and_left_boundary() -> None:
    hits = _find("tr", ["İstanbul", "Londra", "Irak"], ["İSTANBUL'da, Londralı ve IRAK"])
    assert hits == [(0, "İstanbul", "İSTANBUL", "word"), (0, "Londra", "Londra", "prefix"),
                    (0, "Irak", "IRAK", "word")]


def test_finnish_case_suffixes_match_with_left_boundary_only() -> None:
    hits = _find("fi", ["Helsinki"], ["Asun Helsingissä, en Helsinkiin vaan Vantaalle."])
    assert [(h[2], h[3]) for h in hits] == [("Helsinki", "prefix")]
    assert _find("fi", ["Helsinki"], ["Uusi-Helsinki"], mode="word") == [
        (0, "Helsinki", "Helsinki", "word")]


def test_cjk_substrings_with_script_conversion() -> None:
    hits = _find("zh", ["東京", "日本"], ["东京是日本的首都", "日本人"])
    assert [(h[0], h[2]) for h in hits] == [(0, "东京"), (0, "日本"), (1, "日本")]
    ja = _find("ja", ["東京", "Google"], ["東京都とGoogleplexとＧｏｏｇｌｅ"])
    assert [h[2] for h in ja] == ["東京", "Ｇｏｏｇｌｅ"]  # not inside the Latin word


def test_arrow_input_and_cache_builds_once() -> None:
    norms = normalize_many(["Paris"], "en")
    key = names_key("en", "word", norms)
    calls = []

    def load() -> list[str]:
        calls.append(1)
        return norms

    m1 = cached_matcher(key, "en", "word", load)
    m2 = cached_matcher(key, "en", "word", load)
    assert m1 is m2 and calls == [1] and key in match.cache_info()
    hits = m1.find(pa.array(["in Paris", None, "Paris"]))
    assert [(h.text_idx, h.start) for h in hits] == [(0, 3), (2, 0)]


def test_name_key_changes_with_names_and_mode() -> None:
    assert names_key("en", "word", ["a"]) != names_key("en", "word", ["b"])
    assert names_key("en", "word", ["a"]) != names_key("en", "left", ["a"])
    assert len(pickle.dumps(["paris"] * 10)) < 200  # what a worker receives: names, no automaton


def test_names_shorter_than_the_minimum_are_counted() -> None:
    from factroots.trace.names import build_names

    facts = pa.table({"lang": ["zh", "zh"], "uuid": ["a", "b"], "sub_uri": ["Q1", "Q2"],
                      "sub_label": ["東京", "京"], "obj_uri": ["Q3", "Q3"], "obj_label": ["日本", "日本"]})
    trace = SimpleNamespace(substring_langs=["zh"], left_boundary_langs=[], min_name_len=1,
                            min_substring_len=2)
    names, stats = build_names(facts, None, trace)
    assert sorted(names["norm"].to_pylist()) == ["东京", "日本"]
    assert stats["zh"]["rejected_short"] == 1
    assert stats["zh"]["in"] == stats["zh"]["out"] + sum(
        v for k, v in stats["zh"].items() if k.startswith("rejected_"))
