"""Benchmark: interventions per second, batched (ours) vs one unbatched forward pass per row.

    python bench/bench_interventions.py [--shape mbert|lab|both] [--facts 12] [--controls 10]
        [--random 10] [--tokenizer ../shared/data/tokenizers/bert-base-multilingual-cased]
        [--lab-model out/default/lab/model] [--baseline-rows 120] [--threads 1]

An *intervention* is one (prompt, unit set) forward row: a fact's prompt in a target language
with the fact's top-k units switched off, or a control set's, or clean (the reference). A
(fact, target) pair costs 2 + n_controls + n_random rows.

Shapes:
* ``mbert``: a BertForMaskedLM of mBERT's shape (12 layers, hidden 768, 12 heads, 3,072 FFN
  units per layer, 119,547 vocabulary) with random weights (seed 0) and the real mBERT
  tokenizer (tokenizer.json from the shared data folder);
* ``lab``: the lab model (2 layers, hidden 128, 512 FFN units, about 8,000 vocabulary), loaded
  from a ``factroots lab build`` folder.

Prompts: ``facts`` subjects × two languages (en, de) in short mLAMA-like templates ("[X] was
born in [MASK] ."); answers are the model's own clean argmax (so "flipped" means something);
signatures are seeded random k-unit sets over all layers; one relation group.

Ours: ``interventions.build_interventions`` (rows of many prompts and unit sets in one pass,
per-row unit masks, MLM head at the mask positions only), and ours with batches of one row
(what batching alone buys). Baseline: the obvious loop: for
each row, register the hooks, run ``model(**inputs).logits`` on that one prompt, read the log
p of the answer at its masks. Both in float32 on ``--threads`` threads, in the same run, on
the same rows (the baseline on the first ``--baseline-rows`` rows), and the script asserts
that both give the same log-probabilities.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from factroots.probe import interventions as iv
from factroots.probe.capture import Ablate
from factroots.probe.models import LoadedModel, build_adapter, load_model

SUBJECTS = ["Paris", "Berlin", "Dante", "Goethe", "Marie Curie", "Mozart", "Einstein", "Rome",
            "Tolstoy", "Picasso", "Chopin", "Newton", "Kafka", "Vienna", "Madrid", "Bach"]
TEMPLATES = {"en": "{} was born in {} .", "de": "{} wurde in {} geboren ."}


def mbert(tokenizer_dir: Path) -> LoadedModel:
    """mBERT's shape with random weights and the real mBERT tokenizer."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    tok = BertTokenizerFast(tokenizer_file=str(tokenizer_dir / "tokenizer.json"),
                            vocab_file=str(tokenizer_dir / "vocab.txt"), do_lower_case=False)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=119_547, hidden_size=768, num_hidden_layers=12,
                     num_attention_heads=12, intermediate_size=3072)
    model = BertForMaskedLM(cfg).eval()
    return LoadedModel(model, tok, build_adapter(model, tok), torch.device("cpu"),
                       torch.float32, "mbert-shape-random")


def make_group(lm: LoadedModel, n_facts: int, k: int, seed: int = 0) -> tuple[dict, dict]:
    """(sigs, targets) of one synthetic relation group: each fact in en (own) and de."""
    fam, tok = lm.family, lm.tokenizer
    runner = iv._Runner(lm, "ffn", 0.0, 64)
    rng = np.random.default_rng(seed)
    total = fam.num_layers * fam.ffn_width
    sigs, targets = {}, {}
    for i in range(n_facts):
        uuid = f"u{i:03d}"
        sigs[uuid] = rng.choice(total, size=k, replace=False)
        subject = SUBJECTS[i % len(SUBJECTS)] + ("" if i < len(SUBJECTS) else f" {i}")
        for lang, tpl in TEMPLATES.items():
            masks = " ".join([tok.mask_token] * (1 + i % 2))
            prompt = tpl.format(subject, masks)
            probe = iv.make_target(lm, lang, uuid, prompt, [0] * (1 + i % 2))
            answer = runner.run([(probe, np.array([], np.int64))])[1][0]  # the clean argmax
            targets.setdefault(uuid, []).append(iv.make_target(lm, lang, uuid, prompt, answer))
    return sigs, targets


@torch.inference_mode()
def baseline_row(lm: LoadedModel, target: iv.Target, units: np.ndarray) -> float:
    """One row the obvious way: hooks for this row, full logits of this one prompt."""
    fam = lm.family
    ids = torch.tensor([target.ids])
    pos = ids == fam.mask_id
    factors = {}
    for layer in np.unique(units // fam.ffn_width):
        f = torch.ones((1, fam.ffn_width))
        f[0, torch.from_numpy(units[units // fam.ffn_width == layer] % fam.ffn_width)] = 0.0
        factors[fam.ffn_site(int(layer))] = f
    with Ablate(lm.model, factors, positions=pos):
        logits = lm.model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0]
    logp = torch.log_softmax(logits[list(target.cols)].float(), dim=-1)
    return float(logp[torch.arange(len(target.answer)), list(target.answer)].mean())


def bench(lm: LoadedModel, name: str, n_facts: int, n_controls: int, n_random: int, k: int,
          batch: int, baseline_rows: int) -> dict:
    """The whole stage build once; then, interleaved chunk by chunk (the machine's speed drifts),
    ours batched on a chunk of ``batch`` rows, and the baseline and ours unbatched on the
    first ``baseline_rows // chunks`` rows of that chunk; log p must agree."""
    sigs, targets = make_group(lm, n_facts, k)
    plans = [(t, iv.plan_controls(u, "en", sigs, n_controls=n_controls, seed=0,
                                  width=lm.family.ffn_width, n_random=n_random))
             for u in sorted(targets) for t in targets[u]]
    rows = [(t, s) for t, p in plans for s in p.sets()]
    warm = {u: targets[u] for u in sorted(targets)[:2]}  # imports and allocator warm-up
    iv.build_interventions(lm, "en", sigs, warm, k=k, n_controls=1, batch_size=batch)
    baseline_row(lm, *rows[1])
    t0 = time.perf_counter()
    table, stats = iv.build_interventions(lm, "en", sigs, targets, k=k, n_controls=n_controls,
                                          n_random=n_random, batch_size=batch)
    stage_s = time.perf_counter() - t0
    chunks = [rows[i:i + batch] for i in range(0, len(rows), batch)]
    per = max(1, baseline_rows // len(chunks))
    batched, one = iv._Runner(lm, "ffn", 0.0, batch), iv._Runner(lm, "ffn", 0.0, 1)
    t = {"ours": 0.0, "base": 0.0, "one": 0.0}
    n = {"ours": 0, "base": 0}
    diff = 0.0
    for chunk in chunks:
        t0 = time.perf_counter()
        lp = batched.run(chunk)[0]
        t["ours"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        base = np.array([baseline_row(lm, tg, st) for tg, st in chunk[:per]])
        t["base"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        lp1 = one.run(chunk[:per])[0]
        t["one"] += time.perf_counter() - t0
        n["ours"] += len(chunk)
        n["base"] += len(chunk[:per])
        diff = max(diff, float(np.max(np.abs(lp[:per] - base))),
                   float(np.max(np.abs(lp1 - base))))
    assert diff < 1e-3, f"batched and unbatched log p differ by {diff}"
    out = {"shape": name, "facts": n_facts, "pairs": table.num_rows, "rows": len(rows),
           "stage_s": stage_s, "stage_rows_per_s": len(rows) / stage_s,
           "ours_rows_per_s": n["ours"] / t["ours"], "baseline_rows": n["base"],
           "baseline_rows_per_s": n["base"] / t["base"],
           "unbatched_ours_rows_per_s": n["base"] / t["one"],
           "passes": stats["forward_passes"], "max_abs_logp_diff": diff}
    out["speedup"] = out["ours_rows_per_s"] / out["baseline_rows_per_s"]
    out["speedup_unbatched"] = out["ours_rows_per_s"] / out["unbatched_ours_rows_per_s"]
    return out


def main() -> None:
    """Parse arguments, run the shapes, print one line per shape."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parents[1]
    ap.add_argument("--shape", default="both", choices=["mbert", "lab", "both"])
    ap.add_argument("--tokenizer", type=Path, default=root.parent / "shared" / "data" /
                    "tokenizers" / "bert-base-multilingual-cased")
    ap.add_argument("--lab-model", type=Path, default=root / "out" / "default" / "lab" / "model")
    ap.add_argument("--facts", type=int, default=12)
    ap.add_argument("--controls", type=int, default=10)
    ap.add_argument("--random", type=int, default=10)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--baseline-rows", type=int, default=120)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    shapes = ["lab", "mbert"] if a.shape == "both" else [a.shape]
    for shape in shapes:
        if shape == "lab":
            if not a.lab_model.is_dir():
                print(f"lab: no model at {a.lab_model} (run `factroots lab build`): skipped")
                continue
            lm = load_model(str(a.lab_model), "cpu")
        else:
            lm = mbert(a.tokenizer)
        r = bench(lm, shape, a.facts, a.controls, a.random, a.k, a.batch, a.baseline_rows)
        print(f"{shape}: stage build of {r['pairs']} (fact, target) pairs = {r['rows']} rows "
              f"({r['rows'] / max(r['pairs'], 1):.0f} per pair) in {r['stage_s']:.2f} s = "
              f"{r['stage_rows_per_s']:.0f} rows/s; interleaved: ours {r['ours_rows_per_s']:.1f} "
              f"rows/s, baseline {r['baseline_rows_per_s']:.2f} rows/s ({r['baseline_rows']} "
              f"rows), ours unbatched {r['unbatched_ours_rows_per_s']:.2f} rows/s; speedup "
              f"{r['speedup']:.1f}x over the baseline, {r['speedup_unbatched']:.1f}x over "
              f"unbatched; max |Δ log p| {r['max_abs_logp_diff']:.1e}",
              flush=True)


if __name__ == "__main__":
    main()
