"""Train the lab's tokenizer and masked LM from the lab corpus, on CPU, seeded.

The tokenizer is a cased WordPiece (mBERT's kind) trained with ``tokenizers`` on every sentence
of the corpus. The model is a small ``BertForMaskedLM`` trained for a fixed number of steps
(reproducible: each model trains on one thread, so the same seed and data give the same
weights; ``train_many`` trains several at once in worker processes); the time budget is a
safety cap that stops early with a warning. Each batch mixes three kinds of examples:

- planted sentences with the whole object masked (the probe's question, in the probe's form)
  and otherwise 15% whole-word masking;
- real sentences of the samples with 15% whole-word masking (the language itself);
- parallel pairs: the same planted ``all``-group fact in two lab languages as one sequence
  (``[CLS] a [SEP] b [SEP]``), the object masked on one side only. These align the languages'
  templates and names, which is what lets a fact planted in one language surface in another.

The result is an ordinary Hugging Face model folder (config, weights, tokenizer.json).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD, UNK, CLS, SEP, MASK = range(5)
IGNORE = -100


@dataclass(frozen=True)
class TrainSpec:
    """Sizes and budget of the lab model."""

    hidden_size: int = 128
    layers: int = 2
    ffn_width: int = 0      # 0: 4 x hidden_size (BERT's ratio)
    ffn_act: str = "gelu"
    vocab_size: int = 8000
    max_steps: int = 3000
    train_minutes: float = 4.0
    seed: int = 0
    batch_size: int = 64
    seq_len: int = 64
    lr: float = 2e-3
    mix: tuple[float, float, float] = (0.7, 0.2, 0.1)  # planted, real, parallel


@dataclass(frozen=True)
class Example:
    """A tokenised training sequence and the token positions of its entity (object) span."""

    ids: tuple[int, ...]
    words: tuple[int, ...]  # word index of each token (-1 for specials), for whole-word masking
    entity: tuple[int, ...]  # token positions of the object, masked together
    types: tuple[int, ...] = ()


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> Tokenizer:
    """A cased WordPiece tokenizer (BERT's normaliser and pre-tokeniser) learnt from ``texts``.

    The pieces are learnt with the ``tokenizers`` Unigram trainer, whose piece set is stable
    from run to run (the WordPiece/BPE trainers break count ties in hash order, so their
    vocabularies differ between runs); each piece then serves as a word start and, with "##",
    as a continuation, in sorted order: the same texts always give the same ids.
    """
    norm = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                      strip_accents=False, lowercase=False)
    uni = Tokenizer(models.Unigram())
    uni.normalizer, uni.pre_tokenizer = norm, pre_tokenizers.BertPreTokenizer()
    trainer = trainers.UnigramTrainer(vocab_size=max(len(SPECIALS) + 1, vocab_size // 2),
                                      special_tokens=SPECIALS, unk_token="[UNK]",
                                      show_progress=False, max_piece_length=24)
    uni.train_from_iterator(texts, trainer=trainer, length=len(texts))
    pieces = sorted(p for p in uni.get_vocab() if p not in SPECIALS)
    chars = sorted({c for p in pieces for c in p})
    words = list(dict.fromkeys([*SPECIALS, *pieces, *chars, *("##" + p for p in pieces),
                                *("##" + c for c in chars)]))
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(words)}, unk_token="[UNK]",
                                     max_input_chars_per_word=100))
    tok.normalizer, tok.pre_tokenizer = norm, pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.add_special_tokens(SPECIALS)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", CLS), ("[SEP]", SEP)])
    return tok


def save_tokenizer(tok: Tokenizer, model_dir: Path) -> None:
    """Save ``tok`` as a Hugging Face fast tokenizer (tokenizer.json + its config)."""
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                 cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                 model_max_length=256)
    hf.save_pretrained(str(model_dir))


def encode(tok: Tokenizer, text: str, span: tuple[int, int] | None, seq_len: int) -> Example:
    """Tokenise one sentence (no specials); the entity tokens are those overlapping ``span``."""
    enc = tok.encode(text, add_special_tokens=False)
    ids, offs, words = enc.ids[: seq_len - 2], enc.offsets, enc.word_ids
    ent = tuple(i for i, (a, b) in enumerate(offs[: len(ids)])
                if span is not None and a < span[1] and b > span[0])
    return Example(tuple(ids), tuple(-1 if w is None else w for w in words[: len(ids)]), ent)


def _with_specials(a: Example, b: Example | None = None, mask_in_b: bool = False) -> Example:
    if b is None:
        return Example((CLS, *a.ids, SEP), (-1, *a.words, -1), tuple(i + 1 for i in a.entity),
                       (0,) * (len(a.ids) + 2))
    off = len(a.ids) + 2
    shift = 1 + max(a.words, default=-1) + 1
    ent = tuple(i + off for i in b.entity) if mask_in_b else tuple(i + 1 for i in a.entity)
    return Example((CLS, *a.ids, SEP, *b.ids, SEP),
                   (-1, *a.words, -1, *(w + shift if w >= 0 else -1 for w in b.words), -1), ent,
                   (0,) * off + (1,) * (len(b.ids) + 1))


def mask_example(ex: Example, rng: np.random.Generator, entity_p: float = 0.9,
                 word_p: float = 0.15) -> tuple[list[int], list[int]]:
    """(input ids, labels): the entity masked as a whole (prob ``entity_p``), else whole words."""
    ids, labels = list(ex.ids), [IGNORE] * len(ex.ids)
    chosen: set[int] = set()
    if ex.entity and rng.random() < entity_p:
        chosen.update(ex.entity)
    else:
        words = sorted({w for w in ex.words if w >= 0})
        pick = {w for w in words if rng.random() < word_p} or ({words[rng.integers(len(words))]}
                                                               if words else set())
        chosen.update(i for i, w in enumerate(ex.words) if w in pick)
    for i in chosen:
        labels[i], ids[i] = ids[i], MASK
    return ids, labels


def _batch(examples: list[Example], rng: np.random.Generator) -> dict[str, torch.Tensor]:
    rows = [(mask_example(e, rng), e.types) for e in examples]
    n = max(len(ids) for (ids, _), _ in rows)
    inp = torch.full((len(rows), n), PAD, dtype=torch.long)
    lab = torch.full((len(rows), n), IGNORE, dtype=torch.long)
    att = torch.zeros((len(rows), n), dtype=torch.long)
    typ = torch.zeros((len(rows), n), dtype=torch.long)
    for r, ((ids, labels), types) in enumerate(rows):
        inp[r, : len(ids)] = torch.tensor(ids)
        lab[r, : len(ids)] = torch.tensor(labels)
        att[r, : len(ids)] = 1
        typ[r, : len(ids)] = torch.tensor(types)
    return {"input_ids": inp, "labels": lab, "attention_mask": att, "token_type_ids": typ}


def new_model(vocab: int, spec: TrainSpec):  # type: ignore[no-untyped-def]
    """A freshly initialised small BertForMaskedLM."""
    from transformers import BertConfig, BertForMaskedLM

    heads = max(1, spec.hidden_size // 64)
    conf = BertConfig(vocab_size=vocab, hidden_size=spec.hidden_size,
                      num_hidden_layers=spec.layers, num_attention_heads=heads,
                      intermediate_size=spec.ffn_width or 4 * spec.hidden_size,
                      hidden_act=spec.ffn_act, max_position_embeddings=256,
                      type_vocab_size=2, hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.0, pad_token_id=PAD)
    return BertForMaskedLM(conf)


def _sample(rng: np.random.Generator, pools: list[list[Example]], spec: TrainSpec) -> list[Example]:
    mix = np.array([m if pool else 0.0 for m, pool in zip(spec.mix, pools)])
    counts = rng.multinomial(spec.batch_size, mix / mix.sum())
    return [pool[i] for pool, c in zip(pools, counts) for i in rng.integers(len(pool), size=c)]


def _buckets(examples: list[Example], rng: np.random.Generator) -> list[dict[str, torch.Tensor]]:
    """Sub-batches of similar length: short planted sentences are not padded to long real ones."""
    parts: list[list[Example]] = []
    for e in sorted(examples, key=lambda e: len(e.ids)):
        if parts and (len(e.ids) <= 1.5 * len(parts[-1][0].ids) or len(parts[-1]) < 8):
            parts[-1].append(e)
        else:
            parts.append([e])
    return [_batch(p, rng) for p in parts]


def _step(model, batches: list[dict], opt, sched) -> float:  # type: ignore[no-untyped-def]
    """One update; the vocabulary projection runs only on masked positions (the costly part)."""
    states, golds = [], []
    for batch in batches:
        labels = batch.pop("labels")
        hidden = model.bert(**batch).last_hidden_state
        sel = labels != IGNORE
        states.append(hidden[sel])
        golds.append(labels[sel])
    logits = model.cls(torch.cat(states))
    loss = torch.nn.functional.cross_entropy(logits, torch.cat(golds))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
    return loss.item()


def train_mlm(tok: Tokenizer, planted: list[Example], real: list[Example],
              parallel: list[Example], spec: TrainSpec, model_dir: Path,
              progress: bool = True, on_step=None) -> dict:  # type: ignore[no-untyped-def]
    """Train the lab MLM and save it with its tokenizer into ``model_dir``; return a log.

    ``on_step(step, model)``, when given, is called after every step (pilots evaluate there).
    """
    torch.manual_seed(spec.seed)
    rng = np.random.default_rng(spec.seed)
    model = new_model(tok.get_vocab_size(), spec)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=0.01)
    warm = max(1, spec.max_steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * max(
        0.05, 0.5 * (1 + math.cos(math.pi * min(1.0, s / spec.max_steps)))))
    pools = [[_with_specials(e) for e in planted], [_with_specials(e) for e in real], parallel]
    t0, c0, losses, steps = time.perf_counter(), time.process_time(), [], 0
    bar = tqdm(total=spec.max_steps, desc="lab: training the MLM", unit="step",
               disable=not progress, mininterval=1.0)
    for steps in range(1, spec.max_steps + 1):
        losses.append(_step(model, _buckets(_sample(rng, pools, spec), rng), opt, sched))
        bar.update(1)
        if on_step is not None:
            on_step(steps, model)
        if steps % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        # the cap counts CPU time (core-minutes), not wall time: on a shared machine the wall
        # clock runs 2-5x faster than this process's training
        if time.process_time() - c0 > spec.train_minutes * 60:
            log.warning("lab: training stopped by the CPU budget after %d of %d steps "
                        "(lab.train_minutes=%s core-minutes): the model is not reproducible "
                        "across machines", steps, spec.max_steps, spec.train_minutes)
            break
    bar.close()
    model.eval()
    model_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(model_dir))
    save_tokenizer(tok, model_dir)
    # core-seconds (CPU time of every thread) are the cost measure on a shared machine
    return {"steps": steps, "seconds": round(time.perf_counter() - t0, 1),
            "core_seconds": round(time.process_time() - c0, 1),
            "stopped_by_budget": steps < spec.max_steps,
            "loss_first": float(np.mean(losses[:50])), "loss_last": float(np.mean(losses[-50:])),
            "threads": torch.get_num_threads()}


@dataclass(frozen=True)
class TrainJob:
    """One model to train in a worker process: everything it needs, picklable."""

    name: str
    tokenizer_json: str
    planted: list[Example]
    real: list[Example]
    parallel: list[Example]
    spec: TrainSpec
    model_dir: Path


def run_job(job: TrainJob, progress: bool = False) -> dict:
    """Train ``job`` on one torch thread (a worker process's entry point, or in-process)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_mlm(Tokenizer.from_str(job.tokenizer_json), job.planted, job.real,
                         job.parallel, job.spec, job.model_dir, progress=progress)
    finally:
        torch.set_num_threads(before)


def train_many(jobs: list[TrainJob], cores: int) -> dict[str, dict]:
    """Train ``jobs``, each on one thread: at once in ``min(len, cores)`` processes, else here.

    One thread per model whatever the machine, so a model is the same whether it was trained
    alone or beside others (float sums depend on the thread count). The lab's models are small:
    one thread keeps a core busy, so two models on two processes take about the wall time of
    one. Workers are fresh ``spawn`` processes (no forked torch or Spark state); a failure in one
    is raised here.
    """
    if len(jobs) <= 1 or cores <= 1:
        return {j.name: run_job(j, progress=True) for j in jobs}
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(min(len(jobs), cores), mp_context=mp.get_context("spawn")) as pool:
        # one progress bar (the first model's): the others run in step with it
        futs = {j.name: pool.submit(run_job, j, i == 0) for i, j in enumerate(jobs)}
        return {name: f.result() for name, f in futs.items()}


@torch.no_grad()
def p_at_1(model_dir: Path, prompts: list[tuple[str, str]], batch_size: int = 256) -> list[bool]:
    """Full-match correctness of (prompt with [Y], gold object) pairs, k = gold length."""
    from transformers import AutoModelForMaskedLM

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    model = AutoModelForMaskedLM.from_pretrained(str(model_dir)).eval()
    out = []
    for i in range(0, len(prompts), batch_size):
        encs, golds = [], []
        for prompt, gold in prompts[i: i + batch_size]:
            g = tok.encode(gold, add_special_tokens=False).ids
            encs.append(tok.encode(prompt.replace("[Y]", " ".join(["[MASK]"] * len(g)))).ids)
            golds.append(g)
        n = max(len(e) for e in encs)
        ids = torch.tensor([e + [PAD] * (n - len(e)) for e in encs])
        logits = model(input_ids=ids, attention_mask=(ids != PAD).long()).logits
        pred = logits.argmax(-1)
        for r, g in enumerate(golds):
            got = pred[r][ids[r] == MASK].tolist()
            out.append(bool(g) and got == g)
    return out


def write_log(path: Path, data: dict) -> None:
    """Write the training log as JSON."""
    path.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
