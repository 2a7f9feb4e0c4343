"""The decoding core: argmax at every mask position of many prompts, fast and exactly.

Where the paper pads batches of 128 prompts to their longest member and computes the MLM
head over every position (``model(**inputs).logits``: batch x seq x vocab, the costliest
part for a large vocabulary), we

* tokenize every prompt once and batch them **sorted by token length**, so a batch's members
  differ by a token or two and padding is almost nil (the paper pads to the longest of 128
  prompts in data order);
* run the encoder, then the MLM head on the **mask positions only** (the encoder and head
  modules named by the family adapter; other families fall back to the full logits);
* take the same ``topk(1)`` per mask position as the paper, on the first run of masks;
* on GPU out-of-memory, halve the batch and go on (a batch of one that still fails is a
  ModelError).

The paper reads the first mask and the contiguous masks after it; so do we.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from factroots.errors import ModelError
from factroots.probe.models import LoadedModel

log = logging.getLogger(__name__)

LogprobHook = Callable[[int, torch.Tensor], None]  # (sequence index, [k, vocab] log-probs)


def mask_run(ids: Sequence[int], mask_id: int) -> tuple[int, int]:
    """(start, length) of the first run of mask ids; (-1, 0) when there is none."""
    try:
        start = list(ids).index(mask_id)
    except ValueError:
        return -1, 0
    end = start
    while end < len(ids) and ids[end] == mask_id:
        end += 1
    return start, end - start


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


@dataclass
class Output:
    """Argmax ids per sequence and their mean max log-probability."""

    preds: list[list[int]]
    scores: list[float]
    passes: int = 0


class MaskPredictor:
    """Batched mask prediction for a loaded model."""

    def __init__(self, lm: LoadedModel, batch_size: int = 128) -> None:
        self.lm = lm
        self.batch_size = max(1, batch_size)
        fam = lm.family
        self.base = getattr(lm.model, fam.base_attr) if fam.base_attr and fam.head_attr else None
        self.head = getattr(lm.model, fam.head_attr) if self.base is not None else None
        self.max_len = int(getattr(lm.model.config, "max_position_embeddings", 0) or 0)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, with the model's special tokens, unpadded."""
        if not texts:
            return []
        return [list(x) for x in self.lm.tokenizer(list(texts))["input_ids"]]

    def fits(self, ids: Sequence[int]) -> bool:
        """Whether a sequence fits the model's position embeddings."""
        # XLM-R's positions start after the padding index: two slots are unusable.
        reserve = 2 if self.lm.family.family == "xlmr" else 0
        return not self.max_len or len(ids) <= self.max_len - reserve

    def _logits(self, ids: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor,
                cols: torch.Tensor) -> torch.Tensor:
        """[n_masks, vocab] logits at (rows, cols) of a right-padded batch."""
        if self.base is None:
            return self.lm.model(input_ids=ids, attention_mask=mask).logits[rows, cols]
        hidden = self.base(input_ids=ids, attention_mask=mask)[0]  # [batch, seq, hidden]
        return self.head(hidden[rows, cols])

    def _batch(self, seqs: list[list[int]], runs: list[tuple[int, int]]
               ) -> tuple[torch.Tensor, list[int]]:
        dev, width = self.lm.device, max(len(s) for s in seqs)
        pad = self.lm.tokenizer.pad_token_id or 0
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], dtype=torch.long)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs],
                            dtype=torch.long)
        rows = [r for r, (_, n) in enumerate(runs) for _ in range(n)]
        cols = [s + j for s, n in runs for j in range(n)]
        with torch.inference_mode():
            logits = self._logits(ids.to(dev), mask.to(dev), torch.tensor(rows, device=dev),
                                  torch.tensor(cols, device=dev))
        return logits, [n for _, n in runs]

    def run(self, seqs: Sequence[Sequence[int]], want_logprobs: Sequence[bool] | None = None,
            on_logprobs: LogprobHook | None = None,
            progress: Callable[[int], None] | None = None) -> Output:
        """Predict every sequence's first mask run; call ``on_logprobs`` where wanted."""
        mask_id = self.lm.family.mask_id
        runs = [mask_run(s, mask_id) for s in seqs]
        preds: list[list[int]] = [[] for _ in seqs]
        scores = [float("nan")] * len(seqs)
        # sorted by length, a batch's members differ by a token or two: almost no padding
        todo = sorted((i for i in range(len(seqs)) if runs[i][1]), key=lambda i: len(seqs[i]))
        passes = pos = 0
        while pos < len(todo):
            chunk = todo[pos:pos + self.batch_size]
            try:
                logits, counts = self._batch([list(seqs[i]) for i in chunk],
                                             [runs[i] for i in chunk])
            except Exception as exc:
                if not _is_oom(exc):
                    raise
                self._shrink(exc)
                continue
            passes += 1
            self._collect(chunk, logits, counts, preds, scores, want_logprobs, on_logprobs)
            pos += len(chunk)
            if progress is not None:
                progress(len(chunk))
        return Output(preds, scores, passes)

    def _shrink(self, exc: BaseException) -> None:
        if self.batch_size == 1:
            raise ModelError(f"out of memory with a batch of one prompt on {self.lm.device}",
                             "use a smaller dtype (--set probe.dtype=bfloat16) or a larger "
                             "device") from exc
        if self.lm.device.type == "cuda":
            torch.cuda.empty_cache()
        self.batch_size = max(1, self.batch_size // 2)
        log.warning("out of memory: batch size halved to %d", self.batch_size)

    @staticmethod
    def _collect(chunk: list[int], logits: torch.Tensor, counts: list[int],
                 preds: list[list[int]], scores: list[float],
                 want: Sequence[bool] | None, hook: LogprobHook | None) -> None:
        top = logits.topk(1, dim=-1)
        best = top.indices[:, 0].tolist()
        lse = torch.logsumexp(logits.float(), dim=-1)
        maxlp = (top.values[:, 0].float() - lse).tolist()
        start = 0
        for i, n in zip(chunk, counts):
            preds[i] = best[start:start + n]
            scores[i] = sum(maxlp[start:start + n]) / n
            if hook is not None and want is not None and want[i]:
                hook(i, torch.log_softmax(logits[start:start + n].float(), dim=-1))
            start += n
