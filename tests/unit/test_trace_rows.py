"""Pure row logic of the trace (no JVM): names with aliases, chunk cuts, per-page co-occurrence."""

from __future__ import annotations

from types import SimpleNamespace

import pyarrow as pa

from factroots.text.chunking import sentence_chunks
from factroots.text.cooccur import cap_mentions, page_hits
from factroots.trace.names import build_names, fact_flags

TRACE = SimpleNamespace(substring_langs=["zh", "ja", "th"], left_boundary_langs=["tr", "fi"],
                        min_name_len=2, min_substring_len=2)


def test_aliases_name_both_roles_and_flags_follow_them() -> None:
    facts = pa.table({"lang": ["en"], "uuid": ["u"], "sub_uri": ["Q1"], "sub_label": ["Big Apple Inc"],
                      "obj_uri": ["Q60"], "obj_label": ["New York City"]})
    aliases = pa.table({"lang": ["en", "en", "de"], "uri": ["Q60", "Q60", "Q60"],
                        "alias": ["Big Apple", "NYC", "New York"]})
    names, stats = build_names(facts, aliases, TRACE)
    rows = {(r["uri"], r["role"], r["norm"]) for r in names.to_pylist()}
    assert ("Q60", "object", "big apple") in rows and ("Q60", "object", "nyc") in rows
    assert not any(r[2] == "new york" for r in rows)  # the de alias stays out of en
    flags = fact_flags(facts, names, TRACE).to_pylist()[0]
    assert flags["sub_contains_obj"]  # "big apple inc" holds the alias "big apple"
    assert stats["en"]["out"] == names.num_rows


def test_chunks_cut_every_n_subwords_across_sentences_and_batches() -> None:
    state: list = [None, 0]
    first = list(sentence_chunks([1, 1], ["a b c", "d e f g h"], None, 4, state))
    assert first == [(0, [], 3), (0, [2], 5)]  # the 5th subword of page 1 ("e") starts chunk 1
    second = list(sentence_chunks([1, 2], ["i j k l m n o p q", "x"], None, 4, state))
    assert second == [(2, [8, 16], 9), (0, [], 1)]  # page 1 goes on; page 2 restarts at 0


def test_page_hits_need_disjoint_spans_and_count_each_window_once() -> None:
    by_sub = {"PSG": [("f4", "PAR")], "PAR": [("f1", "FR")]}
    mentions = [  # (sentence_id, chunk, uri, role, start, end)
        (10, 0, "PAR", "subject", 0, 5), (10, 0, "FR", "object", 24, 30),
        (11, 1, "PSG", "subject", 18, 37), (11, 1, "PAR", "object", 18, 23),
        (11, 1, "PAR", "subject", 18, 23), (10, 0, "PAR", "object", 0, 5),
    ]
    hits = sorted(page_hits(mentions, by_sub, cap=64))
    assert ("f1", "sentence", 10) in hits and ("f1", "chunk", 10) in hits
    assert ("f4", "document", 10) in hits  # Paris in sentence 10, PSG in sentence 11
    assert not any(h[0] == "f4" and h[1] in ("sentence", "chunk") for h in hits)


def test_cap_keeps_the_first_mentions_of_each_sentence() -> None:
    ms = [(1, 0, f"Q{i}", "object", i * 3, i * 3 + 2) for i in range(10)]
    assert [m[2] for m in cap_mentions(ms, 3)] == ["Q0", "Q1", "Q2"]


def test_chunk_tokenizer_resolves_from_files_or_fails_clearly(tmp_path) -> None:
    import pytest
    from tokenizers import BertWordPieceTokenizer

    from factroots.config import load_config
    from factroots.errors import ConfigError
    from factroots.text.chunking import cached_tokenizer, tokenizer_key
    from factroots.trace.tokenizer import resolve_tokenizer

    tok = BertWordPieceTokenizer(lowercase=False)
    tok.train_from_iterator(["Paris is the capital of France ."] * 50, vocab_size=60,
                            show_progress=False)
    tok.save_model(str(tmp_path))  # vocab.txt only: the BERT-folder path
    js, desc = resolve_tokenizer(load_config(None, {"trace.chunk_tokenizer": str(tmp_path)}))
    assert js and desc == str(tmp_path)
    t = cached_tokenizer(tokenizer_key(js), lambda: js)
    (_, cuts, n), = sentence_chunks([1], ["Paris is the capital of France ."], t, 3)
    assert n >= 7 and len(cuts) == (n - 1) // 3
    assert resolve_tokenizer(load_config(None, {"probe.model": "lab"}))[1] == "whitespace"
    with pytest.raises(ConfigError):
        resolve_tokenizer(load_config(None, {"trace.chunk_tokenizer": str(tmp_path / "none")}))


def _sample_sentences() -> list[str]:
    from factroots.text import dumps, pagetext
    from factroots.text.samples import sample_dump, sample_langs

    out = []
    for lang in sample_langs():
        counts = pagetext.new_counts()
        for p in dumps.plan_dump(str(sample_dump(lang)), lang):
            for rows in dumps.read_partition(p):
                out += pagetext.split_pages(rows, lang, p["dump"], counts)[1]["text"].to_pylist()
    return out


def _chunks_by_offsets(texts: list[str], tok, size: int) -> list[tuple]:  # type: ignore[no-untyped-def]
    """The chunk rows from every subword's offset (what sentence_chunks computed before it
    counted words)."""
    from factroots.text.chunking import token_starts

    out, first = [], 0
    for starts in token_starts(texts, tok):
        n = len(starts)
        out.append((first // size, [starts[k] for k in range((-first) % size, n, size) if k > 0], n))
        first += n
    return out


def _check_counts_add_up(tok_json: str) -> None:
    from factroots.text import chunking as ch

    cached_tokenizer, counts_add_up, subword_counts = (ch.cached_tokenizer, ch.counts_add_up,
                                                       ch.subword_counts)
    token_starts, tokenizer_key = ch.token_starts, ch.tokenizer_key

    assert counts_add_up(tok_json)
    tok = cached_tokenizer(tokenizer_key(tok_json), lambda: tok_json)
    texts = _sample_sentences()  # eight languages: CJK, Cyrillic, Armenian, Bengali, Greek, ...
    texts += ["a\u00a0b  c", "", " lead", "x\ty", "[MASK]x y", "Ｔｏｋｙｏ 東京都 ß"]
    assert subword_counts(texts, tok) == [len(s) for s in token_starts(texts, tok)]
    got = list(sentence_chunks([1] * len(texts), texts, tok, 37))
    assert got == _chunks_by_offsets(texts, tok, 37)
    assert sum(len(c) for _, c, _ in got) > 100


def test_word_counts_equal_full_tokenisation_wordpiece(tmp_path) -> None:
    from tokenizers import BertWordPieceTokenizer

    tok = BertWordPieceTokenizer(lowercase=False)
    tok.train_from_iterator(_sample_sentences()[:3000], vocab_size=1500, show_progress=False)
    _check_counts_add_up(tok.to_str())


def test_word_counts_equal_full_tokenisation_mbert(shared_data) -> None:
    _check_counts_add_up((shared_data / "tokenizers" / "bert-base-multilingual-cased" /
                          "tokenizer.json").read_text(encoding="utf-8"))


def test_tokenizers_that_join_across_spaces_are_tokenised_whole() -> None:
    from tokenizers import ByteLevelBPETokenizer

    from factroots.text.chunking import counts_add_up

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(["Paris is the capital of France"] * 20, vocab_size=300,
                            show_progress=False)
    assert not counts_add_up(bpe._tokenizer.to_str())
