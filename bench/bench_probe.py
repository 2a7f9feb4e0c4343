"""Benchmark: full-match probing, ours vs a faithful paper procedure, same model, same run.

    python bench/bench_probe.py [--langs en,uk,vi] [--facts-per-lang 1700] [--vocab 30000]

Model: a BertForMaskedLM with 4 layers, hidden 256, 4 heads, FFN 1,024 and a cased WordPiece
vocabulary trained here on the bundled Wikipedia samples (``factroots.text.samples``) plus the
languages' mLAMA labels and templates; random weights (seed 0) except the MLM head's output
bias, set to a log-frequency prior over the single-token objects of the sampled facts, so
that some facts come out correct (with random weights the correct sets would be empty, and asserting
that two empty sets are equal checks nothing). Facts: the shipped mLAMA 1.1 through the facts
stage, an evenly spread sample per language (by uuid hash), every relation's full candidate
list (so maxlen is the real one). Both procedures run in float32 on one thread
(``torch.set_num_threads(1)``): ours (``predictions.build_predictions``, batch 128) and the
paper's (``paper_baseline``: every k = 1..maxlen, batches of 128 padded prompts, full logits).
Per fact the full/partial/exact flags and the kept k must be identical; the script asserts it.
"""

from __future__ import annotations

import argparse
import bz2
import hashlib
import logging
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import torch

from factroots import storage
from factroots.config import load_config
from factroots.facts import job as facts_job
from factroots.probe import paper_baseline, queries
from factroots.probe.decode import MaskPredictor
from factroots.probe.models import load_model
from factroots.probe.predictions import build_predictions
from factroots.text import samples


def sample_text(lang: str) -> list[str]:
    """The wikitext of the bundled dump sample's pages, split in lines."""
    with bz2.open(samples.sample_dump(lang), "rt", encoding="utf-8") as fh:
        xml = fh.read()
    body = "\n".join(re.findall(r"<text[^>]*>(.*?)</text>", xml, flags=re.DOTALL))
    return [ln for ln in body.splitlines() if ln.strip()]


def make_model(out: Path, langs: list[str], vocab: int, facts: pa.Table, cands: pa.Table,
               prior: float) -> Path:
    """Train the tokenizer, build the model with its bias prior, save it like a real one."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    lines = [ln for lg in langs for ln in sample_text(lg)]
    lines += facts["template"].to_pylist() + facts["sub_label"].to_pylist()
    lines += cands["candidate"].to_pylist()
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(lines, trainers.WordPieceTrainer(
        vocab_size=vocab, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok.decoder = decoders.WordPiece()
    hf = BertTokenizerFast(tokenizer_object=tok, do_lower_case=False, mask_token="[MASK]",
                           pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                           sep_token="[SEP]")
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=256, num_hidden_layers=4,
                     num_attention_heads=4, intermediate_size=1024, max_position_embeddings=512)
    model = BertForMaskedLM(cfg)
    counts: Counter = Counter()  # objects that are one token: whole words, not pieces
    for c in facts["obj_label"].to_pylist():
        ids = hf.convert_tokens_to_ids(hf.tokenize(c))
        if len(ids) == 1:
            counts.update(ids)
    with torch.no_grad():
        bias = model.cls.predictions.bias
        for tid, n in counts.items():
            bias[tid] += prior * torch.log1p(torch.tensor(float(n)))
    path = out / "model"
    hf.save_pretrained(path)
    model.save_pretrained(path)
    return path


def spread(t: pa.Table, n: int) -> pa.Table:
    """``n`` facts spread over the table (smallest uuid hashes), in table order."""
    h = [hashlib.sha1(u.encode()).hexdigest() for u in t["uuid"].to_pylist()]
    keep = sorted(sorted(range(t.num_rows), key=h.__getitem__)[:n])
    return t.take(pa.array(keep, pa.int64()))


def compare(items: list, ours: pa.Table, paper: dict, partial: bool = True) -> Counter:
    """Assert identical flags and kept k fact by fact; return the correct counts."""
    rows = {r["uuid"]: r for r in ours.to_pylist()}
    c: Counter = Counter()
    for it in items:
        r, p = rows[it.uuid], paper[it.uuid]
        got = (r["correct_full"], r["correct_partial"], r["correct_exact"])
        assert got == (p.full, p.partial if partial else None, p.exact), (it, got, p)
        assert r["k"] == (p.k if p.full else len(it.gold)), (it, r["k"], p.k)
        c.update({"full": p.full, "partial": p.partial, "exact": p.exact})
    return c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--langs", default="en,uk,vi")
    ap.add_argument("--facts-per-lang", type=int, default=1700)
    ap.add_argument("--vocab", type=int, default=30000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--prior", type=float, default=1.0, help="weight of the object-token prior")
    a = ap.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    langs = a.langs.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="bench_probe_"))
    facts_job.run(load_config(None, {"out": str(tmp), "langs": langs}))
    facts = {lg: spread(storage.read_table(tmp, "facts", [lg]), a.facts_per_lang) for lg in langs}
    cands = storage.read_table(tmp, "candidates", langs)
    lm = load_model(str(make_model(tmp, langs, a.vocab, pa.concat_tables(facts.values()), cands,
                                    a.prior)),
                    "cpu")
    print(f"model: BERT 4x256, vocab {lm.family.vocab_size}; torch threads "
          f"{torch.get_num_threads()}; {a.facts_per_lang} facts per language")
    tot: Counter = Counter()
    for lg in langs:
        c = cands.filter(pa.compute.equal(cands["lang"], lg))
        maxlens = queries.relation_maxlens(lm.tokenizer, c)
        items, _ = queries.prepare(facts[lg], maxlens, lm.tokenizer, lm.family.mask_token,
                                   MaskPredictor(lm).fits)
        t0 = time.perf_counter()
        ours, st = build_predictions(lm, lg, items, batch_size=a.batch_size)
        t1 = time.perf_counter()
        fe, st2 = build_predictions(lm, lg, items, batch_size=a.batch_size, partial=False)
        t2 = time.perf_counter()
        paper = paper_baseline.run(lm, items, batch_size=128)
        t3 = time.perf_counter()
        counts = compare(items, ours, paper)
        compare(items, fe, paper, partial=False)
        every = sum(it.maxlen for it in items)
        print(f"{lg}: {len(items)} facts; prompts: paper {every}, ours {st['prompts_run']} "
              f"(all flags) / {st2['prompts_run']} (full+exact); seconds: paper {t3 - t2:.1f}, "
              f"ours {t1 - t0:.1f} / {t2 - t1:.1f}; correct full {counts['full']} partial "
              f"{counts['partial']} exact {counts['exact']} (identical)")
        tot.update({"facts": len(items), "all": t1 - t0, "fe": t2 - t1, "paper": t3 - t2,
                    "every": every, "run": st["prompts_run"], "run2": st2["prompts_run"],
                    **counts})
    n = tot["facts"]
    print(f"\nTOTAL {n} facts from {len(langs)} languages, one thread each:")
    print("| procedure | prompts | seconds | facts/s | speed-up |\n|---|---|---|---|---|")
    for name, key, prompts in (("paper (every k, padded 128, full logits)", "paper", "every"),
                               ("ours, all flags (full, partial, exact)", "all", "run"),
                               ("ours, full + exact (probe.partial: false)", "fe", "run2")):
        print(f"| {name} | {tot[prompts]} | {tot[key]:.1f} | {n / tot[key]:.0f} | "
              f"{tot['paper'] / tot[key]:.1f}x |")
    print(f"correct: full {tot['full']}, partial {tot['partial']}, exact {tot['exact']}; "
          "identical fact by fact (flags and kept k) in every mode")

if __name__ == "__main__":
    sys.exit(main())
