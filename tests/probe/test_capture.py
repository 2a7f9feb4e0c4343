"""Capture on tiny BERT and XLM-R: shapes and values against a manual forward pass; hooks."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    BertConfig,
    BertForMaskedLM,
    XLMRobertaConfig,
    XLMRobertaForMaskedLM,
)

from factroots.errors import ModelError
from factroots.probe.capture import Capture, StopForward, capture_batch

pytestmark = pytest.mark.probe

MASK, PAD, LAYERS, HIDDEN, FFN = 4, 1, 3, 16, 24


def _tiny(family: str) -> tuple[torch.nn.Module, str]:
    torch.manual_seed(0)
    kw = {"vocab_size": 40, "hidden_size": HIDDEN, "num_hidden_layers": LAYERS,
          "num_attention_heads": 2, "intermediate_size": FFN, "pad_token_id": PAD,
          "max_position_embeddings": 40}
    if family == "bert":
        return BertForMaskedLM(BertConfig(**kw)).eval(), "bert"
    return XLMRobertaForMaskedLM(XLMRobertaConfig(**kw)).eval(), "roberta"


def _sites(prefix: str, kind: str, layers: range = range(LAYERS)) -> list[str]:
    leaf = "intermediate" if kind == "ffn" else "output"
    return [f"{prefix}.encoder.layer.{l}.{leaf}" for l in layers]


def _manual(model: torch.nn.Module, prefix: str, ids: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean over mask positions per layer, recomputed from output_hidden_states (no padding)."""
    with torch.no_grad():
        hs = model(input_ids=ids, output_hidden_states=True).hidden_states
        enc = getattr(model, prefix).encoder
        pos = ids[0] == MASK
        per_layer = []
        for l in range(LAYERS):
            if kind == "hidden":
                h = hs[l + 1][0]
            else:  # FFN input = the layer's attention output; recompute dense + GELU
                att = enc.layer[l].attention(hs[l])[0]
                h = enc.layer[l].intermediate.intermediate_act_fn(enc.layer[l].intermediate.dense(att))[0]
            per_layer.append(h[pos].mean(dim=0))
        return torch.cat(per_layer)


PROMPTS = [[2, 10, 11, MASK, 12, 3], [2, 13, MASK, MASK, 14, 15, 16, 3], [2, MASK, 17, 3]]


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, PROMPTS))
    ids = torch.full((len(PROMPTS), width), PAD)
    att = torch.zeros_like(ids)
    for i, p in enumerate(PROMPTS):
        ids[i, :len(p)] = torch.tensor(p)
        att[i, :len(p)] = 1
    return ids, att


@pytest.mark.parametrize("family", ["bert", "xlmr"])
@pytest.mark.parametrize("kind", ["ffn", "hidden"])
def test_capture_matches_manual_forward_pass(family: str, kind: str, device: str) -> None:
    model, prefix = _tiny(family)
    ids, att = _batch()
    got = capture_batch(model.to(device), _sites(prefix, kind), ids.to(device), att.to(device),
                        MASK)
    assert got.device.type == "cpu"
    model.cpu()
    width = FFN if kind == "ffn" else HIDDEN
    assert got.shape == (len(PROMPTS), LAYERS * width) and got.dtype == torch.float32
    for i, p in enumerate(PROMPTS):  # padded batch == each prompt alone == the manual pass
        want = _manual(model, prefix, torch.tensor([p]), kind)
        torch.testing.assert_close(got[i], want, rtol=1e-4, atol=1e-5)


def test_capture_averages_over_the_masks_and_keeps_only_them() -> None:
    model, prefix = _tiny("bert")
    ids, att = _batch()
    site = _sites(prefix, "hidden")[-1]
    with torch.no_grad(), Capture(model, [site], positions=ids == MASK) as cap:
        full = model(input_ids=ids, attention_mask=att, output_hidden_states=True).hidden_states[-1]
    torch.testing.assert_close(cap.outputs[site][1], full[1, 2:4].mean(dim=0))
    assert cap.outputs[site].shape == (len(PROMPTS), HIDDEN)  # no sequence axis is kept


def test_capture_of_a_layer_subset_stacks_in_site_order() -> None:
    model, prefix = _tiny("xlmr")
    ids, att = _batch()
    every = capture_batch(model, _sites(prefix, "ffn"), ids, att, MASK)
    some = capture_batch(model, _sites(prefix, "ffn", range(2, -1, -2)), ids, att, MASK)
    torch.testing.assert_close(some, torch.cat([every[:, 2 * FFN:], every[:, :FFN]], dim=1))


def test_stop_skips_the_rest_of_the_forward_pass_with_the_same_values() -> None:
    model, prefix = _tiny("bert")
    ids, att = _batch()
    head_calls = []
    h = model.cls.register_forward_hook(lambda *a: head_calls.append(1))
    try:
        stopped = capture_batch(model, _sites(prefix, "ffn", range(2)), ids, att, MASK, stop=True)
        assert head_calls == []
        full = capture_batch(model, _sites(prefix, "ffn", range(2)), ids, att, MASK, stop=False)
        assert head_calls == [1]
    finally:
        h.remove()
    torch.testing.assert_close(stopped, full)


def _hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_hooks_are_removed_after_an_exception() -> None:
    model, prefix = _tiny("bert")
    ids, _ = _batch()
    with pytest.raises(RuntimeError, match="boom"), \
            Capture(model, _sites(prefix, "ffn"), positions=ids == MASK):
        assert _hook_count(model) == LAYERS
        raise RuntimeError("boom")
    assert _hook_count(model) == 0
    # positions of the wrong shape fail inside the forward pass
    with pytest.raises(ModelError), torch.no_grad(), \
            Capture(model, _sites(prefix, "ffn"), positions=ids[:, :2] == MASK):
        model(input_ids=ids)
    assert _hook_count(model) == 0


def test_low_precision_model_gives_float32_close_to_float32_model() -> None:
    model, prefix = _tiny("bert")
    ids, att = _batch()
    full = capture_batch(model, _sites(prefix, "ffn"), ids, att, MASK)
    half = capture_batch(model.to(torch.bfloat16), _sites(prefix, "ffn"), ids, att, MASK)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, full, rtol=0.1, atol=0.05)


def test_duplicate_sites_are_refused() -> None:
    model, prefix = _tiny("bert")
    with pytest.raises(ModelError, match="distinct"):
        Capture(model, _sites(prefix, "ffn")[:1] * 2)


def test_unknown_site_is_a_model_error_and_leaves_no_hooks() -> None:
    model, prefix = _tiny("bert")
    sites = _sites(prefix, "ffn") + [f"{prefix}.encoder.layer.99.intermediate"]
    with pytest.raises(ModelError, match="layer.99"), Capture(model, sites):
        pass
    assert _hook_count(model) == 0


def test_stop_forward_is_swallowed_only_by_the_context_manager() -> None:
    model, prefix = _tiny("bert")
    ids, att = _batch()
    with torch.no_grad(), Capture(model, _sites(prefix, "ffn")[:1], positions=ids == MASK,
                                  stop=True) as cap:
        model(input_ids=ids, attention_mask=att)
        pytest.fail("the forward pass should have been stopped")  # pragma: no cover
    assert set(cap.outputs) == {_sites(prefix, "ffn")[0]}
    assert issubclass(StopForward, Exception)
