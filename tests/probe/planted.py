"""A tiny BERT whose answer is planted by hand in a few FFN units, for the interventions tests.

``plant(lm, units, answer)``: the FFN units ``units`` of the last layer fire at every token
(bias 6, no input weights) and write one direction ``v`` into the residual stream; the answer
token's output embedding and bias are set so that its logit is large when ``v`` is there and
very negative when it is not. So the clean model predicts ``answer`` at every mask, switching
off all planted units flips it, and switching off other units (or some of the planted ones:
LayerNorm rescales what is left) does not.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from factroots.probe.capture import Ablate


@torch.no_grad()
def plant(lm, units: Sequence[int], answer: int, prompts: Sequence[Sequence[int]]) -> None:  # type: ignore[no-untyped-def]
    """Make the last layer's FFN ``units`` (local indices) carry ``answer`` at the masks."""
    model, fam = lm.model, lm.family
    last = fam.num_layers - 1
    layer = model.get_submodule(f"{fam.base_attr}.encoder.layer.{last}")
    g = torch.Generator().manual_seed(1)
    v = torch.randn(fam.hidden_size, generator=g)
    v = v / v.norm()
    idx = torch.tensor(list(units))
    layer.intermediate.dense.weight[idx] = 0.0
    layer.intermediate.dense.bias[idx] = 6.0
    layer.output.dense.weight[:, idx] = 0.0
    layer.output.dense.weight[:, idx] += (4.0 * v)[:, None]
    on, off = _head_inputs(lm, prompts, None), _head_inputs(lm, prompts, (last, idx))
    delta = on.mean(0) - off.mean(0)
    direction = delta / delta.norm()
    decoder = model.get_output_embeddings()
    decoder.weight[answer] = 20.0 * direction
    mid = ((on @ direction).min() + (off @ direction).max()) / 2
    decoder.bias[answer] = -20.0 * mid


def _head_inputs(lm, prompts: Sequence[Sequence[int]], ablate) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """The MLM head's transform output at the first mask of each prompt."""
    fam = lm.family
    width = max(len(p) for p in prompts)
    ids = torch.zeros((len(prompts), width), dtype=torch.long)
    att = torch.zeros_like(ids)
    for r, p in enumerate(prompts):
        ids[r, :len(p)] = torch.tensor(list(p))
        att[r, :len(p)] = 1
    pos = ids == fam.mask_id
    factors = {}
    if ablate is not None:
        f = torch.ones((len(prompts), fam.ffn_width))
        f[:, ablate[1]] = 0.0
        factors[fam.ffn_site(ablate[0])] = f
    with Ablate(lm.model, factors, positions=pos):
        hidden = getattr(lm.model, fam.base_attr)(input_ids=ids, attention_mask=att)[0]
    rows, cols = pos.nonzero(as_tuple=True)
    return lm.model.cls.predictions.transform(hidden[rows, cols])
