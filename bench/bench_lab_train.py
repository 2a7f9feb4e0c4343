"""Benchmark: the lab build's trainings, at once in workers (ours) vs one after another (before).

    python bench/bench_lab_train.py [--steps 300] [--rounds 2] [--models 2]

Two (``--models``) lab-shaped models — BertForMaskedLM, hidden 128, 2 layers, 8,000
vocabulary, batches of 64 sequences of at most 32 tokens, the lab's mix of planted, real and
parallel examples (synthetic ids, seeded) — trained for ``--steps`` steps each:

* ours: ``lab.train.train_many`` (what ``lab build`` does now): one ``spawn`` worker process per
  model up to the cores, one torch thread each;
* baseline: what ``lab build`` did before: ``train_mlm`` for each model in turn, in this
  process, on torch's default thread count (all cores).

The two alternate within each round, in the same run (this machine's speed drifts: only the
paired ratio counts). Printed: wall seconds per round and the ratio, and each model's steps/s
(ours: one thread; baseline: all threads), which says whether one thread is slower than all.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, models

from factroots.lab import train as lt


def _tokenizer(vocab: int) -> Tokenizer:
    words = [*lt.SPECIALS, *(f"t{i}" for i in range(vocab - len(lt.SPECIALS)))]
    return Tokenizer(models.WordPiece({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))


def _examples(rng: np.random.Generator, n: int, vocab: int, entity: bool) -> list[lt.Example]:
    out = []
    for _ in range(n):
        length = int(rng.integers(8, 29))
        ids = tuple(int(i) for i in rng.integers(len(lt.SPECIALS), vocab, size=length))
        ent = (length - 3, length - 2) if entity else ()
        out.append(lt.Example(ids, tuple(range(length)), ent))
    return out


def _jobs(tmp: Path, steps: int, n_models: int, tag: str) -> list[lt.TrainJob]:
    rng, vocab = np.random.default_rng(0), 8000
    planted = _examples(rng, 4000, vocab, True)
    real = _examples(rng, 2000, vocab, False)
    parallel = [lt._with_specials(a, b, mask_in_b=True)
                for a, b in zip(planted[:1000], planted[1000:2000])]
    tok = _tokenizer(vocab).to_str()
    return [lt.TrainJob(f"m{s}", tok, planted, real, parallel,
                        lt.TrainSpec(vocab_size=vocab, max_steps=steps, train_minutes=60.0,
                                     seed=s, seq_len=32, mix=(0.75, 0.1, 0.15)),
                        tmp / f"{tag}{s}") for s in range(n_models)]


def _ours(jobs: list[lt.TrainJob]) -> tuple[float, list[dict]]:
    t0 = time.perf_counter()
    logs = lt.train_many(jobs, len(os.sched_getaffinity(0)))
    return time.perf_counter() - t0, [logs[j.name] for j in jobs]


def _baseline(jobs: list[lt.TrainJob]) -> tuple[float, list[dict]]:
    t0 = time.perf_counter()
    logs = [lt.train_mlm(Tokenizer.from_str(j.tokenizer_json), j.planted, j.real, j.parallel,
                         j.spec, j.model_dir, progress=False) for j in jobs]
    return time.perf_counter() - t0, logs


def main() -> None:
    """Alternate ours and the baseline for ``--rounds`` rounds and print the paired ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--models", type=int, default=2)
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    print(f"{args.models} models x {args.steps} steps; {cores} cores; torch default threads "
          f"{torch.get_num_threads()}; load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            ours_s, ours = _ours(_jobs(Path(tmp), args.steps, args.models, f"o{r}_"))
            base_s, base = _baseline(_jobs(Path(tmp), args.steps, args.models, f"b{r}_"))
            rate = [f"{lg['steps'] / lg['seconds']:.1f}" for lg in ours]
            brate = [f"{lg['steps'] / lg['seconds']:.1f}" for lg in base]
            print(f"round {r + 1}: ours {ours_s:.1f} s (steps/s per model, 1 thread: "
                  f"{', '.join(rate)}); baseline {base_s:.1f} s (steps/s, {base[0]['threads']} "
                  f"threads: {', '.join(brate)}); baseline / ours {base_s / ours_s:.2f}x")


if __name__ == "__main__":
    main()
