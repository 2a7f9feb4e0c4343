"""The versioned normaliser: same result on names and text, every script, offsets back."""

from __future__ import annotations

import pytest

from factroots.text.normalize import (
    NORMALIZER,
    normalize,
    normalize_batch,
    normalize_many,
    normalize_py,
    source_spans,
)

CASES = [  # (lang, text, normalised)
    ("en", "  Hello, World!  ", "hello world"),
    ("en", "PARIS — the “City of Light”…", "paris the city of light"),
    ("en", "Ｔｏｋｙｏ ﬁnance", "tokyo finance"),  # full-width and ligature (NFKC)
    ("en", "O’Brien vs O'Brien", "o brien vs o brien"),  # typographic apostrophe
    ("en", "Ams\u00adter\u00addam\u00a0Centraal", "amsterdam centraal"),  # soft hyphen, NBSP
    ("de", "Straße", "strasse"),
    ("el", "ΟΔΟΣ Αθήνα", "οδοσ αθήνα"),  # final sigma folds to σ
    ("uk", "Київ — столиця України", "київ столиця україни"),
    ("hy", "Երևան, Հայաստան։", "երեւան հայաստան"),  # the ligature և decomposes
    ("bn", "ঢাকা বাংলাদেশের রাজধানী।", "ঢাকা বাংলাদেশের রাজধানী"),  # vowel signs are marks
    ("ar", "اَلْقَاهِرَة ـ مصر", "القاهرة مصر"),  # harakat and tatweel removed
    ("he", "יְרוּשָׁלַיִם", "ירושלים"),  # niqqud removed
    ("fa", "می\u200cخواهم", "میخواهم"),  # ZWNJ removed on both sides
    ("zh", "東京是日本的首都。", "东京是日本的首都"),  # Traditional -> Simplified
    ("ja", "東京は日本の首都です。", "東京は日本の首都です"),  # ja keeps its kanji
    ("tr", "İSTANBUL, IRAK", "istanbul ırak"),
    ("en", "İstanbul", "istanbul"),  # no stray combining dot outside Turkish either
]


@pytest.mark.parametrize("lang,text,expected", CASES)
def test_normalize_every_script(lang: str, text: str, expected: str) -> None:
    assert normalize(text, lang) == expected
    assert normalize_py(text, lang) == expected


def test_vectorised_batch_equals_the_reference_on_mixed_input() -> None:
    texts = [t for _, t, _ in CASES] + ["", "—", " – ", "a –,– b", "«(foo", "bar–", "x\ny"]
    for lang in ("en", "tr", "zh"):
        assert normalize_many(texts, lang) == [normalize_py(t, lang) for t in texts]


def test_batch_keeps_texts_apart() -> None:
    big = normalize_batch(["New", "York", "", "—", "City"], "en")
    assert " new york " not in big
    assert big.count("\n") == 4


def test_chinese_scripts_meet() -> None:
    assert normalize("臺灣", "zh") == normalize("台湾", "zh")


def test_source_spans_map_back_to_the_original() -> None:
    text = "Hello,  ＰＡＲＩＳ — Straße; اَلْقَاهِرَة!"
    norm = normalize(text, "en")
    for word in ("paris", "strasse", "القاهرة"):
        a = norm.index(word)
        [(s, e)] = source_spans(text, "en", [(a, a + len(word))])
        assert normalize(text[s:e], "en") == word


def test_normalizer_is_versioned() -> None:
    assert NORMALIZER.endswith("_v1")


def test_ascii_offsets_found_in_one_pass_match_the_reference() -> None:
    import random
    import string

    from factroots.text.normalize import ascii_shifts, normalize_py, shifted_spans

    rng = random.Random(2)
    chars = string.ascii_letters[:6] + " ,.-()'\n"
    texts = ["".join(rng.choice(chars) for _ in range(rng.randint(0, 30))) for _ in range(500)]
    for t, bp in zip(texts, ascii_shifts(texts)):
        n = normalize_py(t, "en")
        words = [(i, j) for i in range(len(n)) for j in range(i + 1, len(n) + 1)
                 if (i == 0 or n[i - 1] == " ") and (j == len(n) or n[j] == " ")
                 and n[i] != " " and n[j - 1] != " "]
        for (s, e), (i, j) in zip(shifted_spans(bp, words), words):
            assert normalize_py(t[s:e], "en") == n[i:j], (t, (s, e), (i, j))
