"""Force a loaded model's argmax at chosen prompts, for tests whose flags must differ.

``scripted(lm, {prompt: [id, ...]})`` hooks the encoder and the MLM head: for a prompt in the
script, the hidden state at its i-th mask carries a code (id, MAGIC), and the head turns a
coded row into logits of +1e4 for that id and -1e4 elsewhere (log-prob ~0 for it). Other
prompts keep the random model's outputs. It works for padded batches (the paper's baseline)
and for the fast path's head-on-masks-only alike, because both go through the same modules.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from factroots.probe.decode import mask_run
from factroots.probe.models import LoadedModel

MAGIC = 12345.0


@contextlib.contextmanager
def scripted(lm: LoadedModel, script: dict[str, list[int]]) -> Iterator[None]:
    """Within the block, the model predicts ``script[prompt]`` at that prompt's mask run."""
    by_ids = {}
    for text, ids in script.items():
        seq = tuple(lm.tokenizer(text)["input_ids"])
        start, n = mask_run(seq, lm.family.mask_id)
        assert n == len(ids), (text, n, ids)
        by_ids[seq] = [(start + j, t) for j, t in enumerate(ids)]
    base = lm.model.get_submodule(lm.family.base_attr)
    head = lm.model.get_submodule(lm.family.head_attr)
    state: dict = {}

    def pre(_m, args, kwargs):  # type: ignore[no-untyped-def]
        ids = kwargs.get("input_ids", args[0] if args else None)
        am = kwargs.get("attention_mask")
        state["ids"], state["am"] = ids, am

    def post(_m, _args, _kwargs, out):  # type: ignore[no-untyped-def]
        hidden = out[0]
        ids, am = state["ids"], state["am"]
        for r in range(ids.shape[0]):
            n = int(am[r].sum()) if am is not None else ids.shape[1]
            for pos, tok in by_ids.get(tuple(ids[r, :n].tolist()), []):
                hidden[r, pos, 0] = float(tok)
                hidden[r, pos, 1] = MAGIC
        return out

    def head_post(_m, args, out):  # type: ignore[no-untyped-def]
        x = args[0]
        coded = x[..., 1] == MAGIC
        if coded.any():
            toks = x[..., 0][coded].round().long()
            forced = torch.full((int(coded.sum()), out.shape[-1]), -1e4, dtype=out.dtype,
                                device=out.device)
            forced[torch.arange(len(toks)), toks] = 1e4
            out[coded] = forced
        return out

    handles = [base.register_forward_pre_hook(pre, with_kwargs=True),
               base.register_forward_hook(post, with_kwargs=True),
               head.register_forward_hook(head_post)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
