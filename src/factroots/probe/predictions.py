"""Build the `predictions` table: the model's answer per (fact, protocol) in one language.

Protocols:

* ``full`` — the paper's (``paper.md`` §1.4): argmax at every mask position for k masks,
  k = 1..maxlen; full-, partial- and exact-match flags; k is the kept (largest) full-matching
  k, else the gold length; ``score`` is the mean max log-probability of that prediction.
  Only the k that can change a flag are run (``protocol.FactState.needed_ks``, with the proof),
  in rounds (k = gold length, then ± 1, then the rest) over windows of at most 50,000
  prompts; identical prompts in a window run once.
* ``typed`` — mLAMA's typed querying (``paper.md`` §2): every candidate object of the relation
  is scored by its mean log-probability over its own mask positions (the prompt with as many
  masks as the candidate has tokens); the best candidate (ties: the earlier one) is the answer.
  ``correct_full`` = it is the gold label; ``correct_exact``/``correct_partial`` compare ids.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import torch

from factroots import tables
from factroots.probe import protocol
from factroots.probe.decode import MaskPredictor
from factroots.probe.models import LoadedModel
from factroots.probe.queries import Item

PROTOCOLS = ("full", "typed")


@dataclass
class TypedSet:
    """A relation's candidates grouped by token length."""

    labels: list[str]
    ids: list[list[int]]
    by_len: dict[int, tuple[list[int], torch.Tensor]] = field(default_factory=dict)

    @classmethod
    def build(cls, tokenizer: Any, labels: Sequence[str]) -> TypedSet:
        """Tokenize candidates; those that tokenize to nothing cannot be scored and are left out."""
        ts = cls(list(labels), [protocol.gold_ids(tokenizer, c) for c in labels])
        groups: dict[int, list[int]] = {}
        for i, ids in enumerate(ts.ids):
            if ids:
                groups.setdefault(len(ids), []).append(i)
        ts.by_len = {n: (idx, torch.tensor([ts.ids[i] for i in idx], dtype=torch.long))
                     for n, idx in groups.items()}
        return ts


class _Typed:
    """Running best candidate per fact."""

    def __init__(self, items: Sequence[Item], sets: dict[str, TypedSet]) -> None:
        self.items, self.sets = items, sets
        self.best: list[tuple[float, int]] = [(float("-inf"), -1)] * len(items)

    def ks(self, f: int) -> set[int]:
        return set(self.sets[self.items[f].relation].by_len)

    def score(self, f: int, k: int, lp: torch.Tensor) -> None:
        idx, ids = self.sets[self.items[f].relation].by_len[k]
        n = min(k, lp.shape[0])
        ids = ids.to(lp.device)[:, :n]
        s = lp[:n].gather(1, ids.T).mean(0)  # [n_candidates]: mean over positions
        j = int(torch.argmax(s))  # first maximum: the earlier candidate wins ties
        cand = (float(s[j]), idx[j])
        old = self.best[f]
        if cand[0] > old[0] or (cand[0] == old[0] and cand[1] < old[1]):
            self.best[f] = cand


def _decode_text(tokenizer: Any, ids: Sequence[int]) -> str:
    return tokenizer.decode(list(ids)) if ids else ""


WINDOW = 50_000  # prompts tokenized and held at once: bounds memory on 37k-fact languages


def _window(predictor: MaskPredictor, items: Sequence[Item], reqs: list[tuple[int, int]],
            states: list[protocol.FactState], typed: _Typed | None, progress: Any) -> tuple[int, int]:
    """Run one window of (fact, k) requests, identical prompts once; return (prompts, passes)."""
    mask = predictor.lm.family.mask_token
    texts: dict[str, int] = {}
    uids = [texts.setdefault(protocol.prompt(items[f].sentence, mask, k), len(texts))
            for f, k in reqs]
    want = [False] * len(texts)
    hooks: dict[int, list[tuple[int, int]]] = {}
    if typed is not None:
        for (f, k), u in zip(reqs, uids):
            if k in typed.ks(f):
                want[u] = True
                hooks.setdefault(u, []).append((f, k))
    if progress is not None:
        progress.total = (progress.total or 0) + len(texts)
        progress.refresh()
    out = predictor.run(predictor.encode(list(texts)), want,
                        lambda u, lp: [typed.score(f, k, lp) for f, k in hooks[u]],
                        progress.update if progress is not None else None)
    for (f, k), u in zip(reqs, uids):
        states[f].add(k, out.preds[u], out.scores[u])
    return len(texts), out.passes


def _rounds(lm: LoadedModel, items: Sequence[Item], states: list[protocol.FactState],
            typed: _Typed | None, full: bool, batch_size: int, progress: Any) -> dict:
    """Run rounds of prompts until no fact needs another k; return run counters."""
    predictor = MaskPredictor(lm, batch_size)
    todo = {f: (({len(it.gold)} if full else set()) | (typed.ks(f) if typed else set()))
            for f, it in enumerate(items)}
    todo = {f: ks for f, ks in todo.items() if ks}
    prompts = passes = 0
    while todo:
        reqs = [(f, k) for f, ks in todo.items() for k in sorted(ks)]
        for start in range(0, len(reqs), WINDOW):
            n, p = _window(predictor, items, reqs[start:start + WINDOW], states, typed, progress)
            prompts, passes = prompts + n, passes + p
        todo = {}
        for f, st in enumerate(states if full else ()):
            need = st.needed_ks()
            if need:
                todo[f] = protocol.next_ks(len(st.gold), need)
    return {"prompts_run": prompts, "forward_passes": passes, "batch_size_end": predictor.batch_size}


def _rows(lang: str, items: Sequence[Item], states: list[protocol.FactState],
          typed: _Typed | None, protocols: Sequence[str], tokenizer: Any, space: int | None
          ) -> list[dict]:
    rows = []
    for f, (it, st) in enumerate(zip(items, states)):
        base = {"lang": lang, "uuid": it.uuid, "relation": it.relation, "gold_ids": list(it.gold)}
        if "full" in protocols:
            pred = st.preds[st.k]
            rows.append({**base, "protocol": "full", "k": st.k, "pred_ids": pred,
                         "pred_text": _decode_text(tokenizer, pred), "correct_full": st.full,
                         "correct_partial": st.partial if st.want_partial else None,
                         "correct_exact": st.exact,
                         "score": st.scores[st.k]})
        if typed is not None:
            score, j = typed.best[f]
            ts = typed.sets[it.relation]
            pred = ts.ids[j] if j >= 0 else []
            sp = protocol.strip(pred, space)
            rows.append({**base, "protocol": "typed", "k": len(pred), "pred_ids": pred,
                         "pred_text": ts.labels[j] if j >= 0 else "",
                         "correct_full": j >= 0 and ts.labels[j] == it.obj_label,
                         "correct_partial": st.distinct.issubset(sp), "correct_exact":
                         list(pred) == list(it.gold), "score": score if j >= 0 else None})
    return rows


def build_predictions(lm: LoadedModel, lang: str, items: Sequence[Item],
                      candidates: dict[str, list[str]] | None = None,
                      protocols: Sequence[str] = ("full",), *, batch_size: int = 128,
                      all_k: bool = False, partial: bool = True, progress: Any = None
                      ) -> tuple[pa.Table, dict]:
    """Return the `predictions` table: one row per (lang, uuid, protocol); and run stats."""
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise ValueError(f"unknown protocol {unknown[0]!r}")
    t0 = time.perf_counter()
    tok, space = lm.tokenizer, lm.family.space_id
    states = [protocol.FactState(list(it.gold), it.maxlen, space, all_k, partial or all_k)
              for it in items]
    typed = None
    if "typed" in protocols:
        rels = sorted({it.relation for it in items})
        typed = _Typed(items, {r: TypedSet.build(tok, (candidates or {}).get(r, [])) for r in rels})
    run = (_rounds(lm, items, states, typed, "full" in protocols, batch_size, progress)
           if items else {})
    rows = _rows(lang, items, states, typed, protocols, tok, space)
    rows.sort(key=lambda r: (r["uuid"], r["protocol"]))
    spec = tables.spec("predictions")
    t = pa.Table.from_pylist(rows, schema=spec.schema) if rows else spec.schema.empty_table()
    stats = {**run, "seconds": round(time.perf_counter() - t0, 3)}
    for p in protocols:
        stats[f"correct_full_{p}"] = sum(r["correct_full"] for r in rows if r["protocol"] == p)
    return tables.conform("predictions", t), stats
