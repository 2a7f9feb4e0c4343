"""A faithful re-implementation of the paper's probing procedure, for benchmarks and tests.

As fact-cl's ``mask_prediction.predict_mask_tokens`` + ``AbstractModel.get_mask_tokens_ids`` +
``pred_evaluation`` (``paper.md`` §1.4): per relation, for every k = 1..maxlen, the relation's
sentences with k masks in batches of 128, tokenized with ``padding=True``, one
``model(**inputs).logits`` per batch (all positions, whole vocabulary), then per sentence the
first mask token and the masks after it, each decoded by ``torch.topk(logits, 1)``. Matching
follows ``full_match``/``get_partial_match_per_uuid``/``get_exact_match_per_uuid`` with
``strip_space`` deleting the "▁" id, and the kept k is the last matching one
(``generate_match_sent_by_full_match``). Left out: the O(n²) ``pd.concat`` and the CSV
round trip (I/O quirks, not the method). Use the model in float32, as the paper did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from factroots.probe import protocol
from factroots.probe.models import LoadedModel
from factroots.probe.queries import Item


@dataclass
class PaperResult:
    """One fact's paper-procedure outcome."""

    preds: dict[int, list[int]]
    full: bool
    partial: bool
    exact: bool
    k: int | None  # the last full-matching k


def get_mask_tokens_ids(lm: LoadedModel, sentences: list[str]) -> list[list[list[int]]]:
    """Per sentence, the wrapped top-1 ids ``[[id], ...]`` of its first run of masks."""
    tok, mask = lm.tokenizer, lm.family.mask_token
    enc = tok(sentences, padding=True, return_tensors="pt").to(lm.device)
    with torch.no_grad():
        logits = lm.model(**enc).logits
    out = []
    for i in range(len(sentences)):
        tokens = tok.convert_ids_to_tokens(enc["input_ids"][i])
        mask_ind = tokens.index(mask)
        ids = []
        for j, token in enumerate(tokens[mask_ind:]):
            if token != mask:
                break
            ids.append(torch.topk(logits[i][mask_ind + j], 1).indices.tolist())
        out.append(ids)
    return out


def predict(lm: LoadedModel, items: Sequence[Item], batch_size: int = 128
            ) -> dict[str, dict[int, list[list[int]]]]:
    """uuid -> k -> wrapped prediction, running every k = 1..maxlen per relation."""
    by_rel: dict[str, list[Item]] = {}
    for it in items:
        by_rel.setdefault(it.relation, []).append(it)
    preds: dict[str, dict[int, list[list[int]]]] = {it.uuid: {} for it in items}
    for rel_items in by_rel.values():
        maxlen = max(it.maxlen for it in rel_items)
        for k in range(1, maxlen + 1):
            sents = [protocol.prompt(it.sentence, lm.family.mask_token, k) for it in rel_items]
            for start in range(0, len(sents), batch_size):
                batch = rel_items[start:start + batch_size]
                for it, ids in zip(batch, get_mask_tokens_ids(lm, sents[start:start + batch_size])):
                    preds[it.uuid][k] = ids
    return preds


def evaluate(items: Sequence[Item], preds: dict[str, dict[int, list[list[int]]]],
             space_id: int | None) -> dict[str, PaperResult]:
    """The paper's full/partial/exact matching and the last matching k, per uuid."""
    res = {}
    for it in items:
        gold = list(it.gold)
        obj = protocol.strip(gold, space_id)
        by_k = preds[it.uuid]
        stripped = {k: protocol.strip([x[0] for x in p], space_id) for k, p in by_k.items()}
        full_ks = [k for k, p in stripped.items() if p == obj]
        partial = any(all(x in p for x in obj) for p in stripped.values())
        exact = any([x[0] for x in p] == gold for p in by_k.values())
        res[it.uuid] = PaperResult({k: [x[0] for x in p] for k, p in by_k.items()},
                                   bool(full_ks), partial, exact, max(full_ks) if full_ks else None)
    return res


def run(lm: LoadedModel, items: Sequence[Item], batch_size: int = 128) -> dict[str, PaperResult]:
    """Predict and evaluate ``items`` the paper's way."""
    return evaluate(items, predict(lm, items, batch_size), lm.family.space_id)
