"""The paper's full-match protocol as pure functions, and which mask counts k can matter.

Paper (``paper.md`` §1.4, fact-cl ``pred_evaluation.py``): for k = 1..maxlen the prompt has k
masks, each predicting its argmax. With ``strip`` deleting the lone "▁" id (``space_id``; id 6
in xlm-roberta, which the paper hard-codes) and G the gold ids, G' = strip(G), P_k the k
predictions:

* full    iff  ∃ k ≤ maxlen: strip(P_k) == G'      (the matching prompt kept: the largest k)
* partial iff  ∃ k ≤ maxlen: every id of G' occurs in strip(P_k)
* exact   iff  ∃ k ≤ maxlen: P_k == G

**Which k can matter** (``needed_ks``), with g = |G|, g' = |G'|, d = |set(G')|, m = maxlen:

* exact: |P_k| = k, so only k = g (when g ≤ m).
* full: |strip(P_k)| ≤ k, so k ≥ g'. Without a "▁" token (WordPiece) strip is the identity,
  so only k = g' = g. With one, every k in [max(g', 1), m] can match (the extra predictions
  being "▁"), and the largest matching k is kept, so all of them are needed.
* partial: strip(P_k) holds at most k distinct ids, so k ≥ d; every k in [max(d, 1), m] can
  match, but one match decides the flag: once it holds, the remaining k are not needed.
  Full implies partial (equal lists contain each other's ids), and exact implies full.

So a fact needs ``{g}`` (for the recorded prediction) plus the full range (SentencePiece only)
plus the partial range until partial holds (when partial is wanted). ``needed_ks`` gives the k
still needed after the ones done; the decoder runs them in rounds (``next_ks``): g first, then
g ± 1, then the rest, so partial can stop early.
Every k the paper runs that could change a flag is run: the flags are identical by
construction, and the tests compare both fact by fact.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


def gold_ids(tokenizer: Any, label: str) -> list[int]:
    """The object's ids as the paper computes them: the label tokenized on its own."""
    return [int(i) for i in tokenizer.convert_tokens_to_ids(tokenizer.tokenize(label))]


def candidate_maxlen(tokenizer: Any, candidates: Iterable[str]) -> int:
    """The longest candidate in the model's tokens (0 when there are none)."""
    return max((len(tokenizer.tokenize(c)) for c in candidates), default=0)


def strip(ids: Sequence[int], space_id: int | None) -> list[int]:
    """The paper's ``strip_space``: delete every lone "▁" id."""
    return list(ids) if space_id is None else [i for i in ids if i != space_id]


def fill_subject(template: str, subject: str) -> str:
    """The paper's sentence: the template with its subject filled in ("[Y]" left)."""
    return template.replace("[X]", subject)


def prompt(sentence: str, mask_token: str, k: int) -> str:
    """The sentence with k masks, joined by single spaces, in the object slot."""
    return sentence.replace("[Y]", " ".join([mask_token] * k))


@dataclass
class FactState:
    """One fact's gold, bounds and what the predictions so far decided."""

    gold: list[int]
    maxlen: int
    space_id: int | None
    all_k: bool = False
    want_partial: bool = True
    preds: dict[int, list[int]] = field(default_factory=dict)
    scores: dict[int, float] = field(default_factory=dict)
    full_ks: list[int] = field(default_factory=list)
    partial: bool = False
    exact: bool = False

    def __post_init__(self) -> None:
        self.stripped = strip(self.gold, self.space_id)
        self.distinct = set(self.stripped)

    def add(self, k: int, pred: list[int], score: float) -> None:
        """Record the prediction with k masks and update the flags."""
        self.preds[k] = pred
        self.scores[k] = score
        if k > self.maxlen:
            return  # the paper never runs k > maxlen: kept for display only
        sp = strip(pred, self.space_id)
        if sp == self.stripped:
            self.full_ks.append(k)
            self.partial = True
        if not self.partial and self.distinct.issubset(sp):
            self.partial = True
        if pred == self.gold:
            self.exact = True

    def needed_ks(self) -> set[int]:
        """The mask counts not yet run that could still change a flag or the kept k."""
        g, m = len(self.gold), self.maxlen
        need = {g}
        if self.all_k:
            need |= set(range(1, m + 1))
        else:
            if self.space_id is not None:
                need |= set(range(max(len(self.stripped), 1), m + 1))
            if self.want_partial and not self.partial:
                need |= set(range(max(len(self.distinct), 1), m + 1))
        return need - self.preds.keys()

    @property
    def full(self) -> bool:
        """Full-match: some k's stripped prediction equals the stripped gold."""
        return bool(self.full_ks)

    @property
    def k(self) -> int:
        """The kept k: the largest full-matching one, else the gold length."""
        return max(self.full_ks) if self.full_ks else len(self.gold)


def next_ks(g: int, need: Iterable[int]) -> set[int]:
    """The next round's mask counts: those next to the gold length g if any, else all.

    Few rounds keep the length buckets (and so the batches) large; the k next to g come
    first because a partial match there makes the other k unnecessary.
    """
    need = set(need)
    near = {k for k in need if abs(k - g) <= 1}
    return near or need
