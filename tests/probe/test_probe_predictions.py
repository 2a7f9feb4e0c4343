"""The fast path against the paper's every-k procedure, fact by fact; flags; typed querying."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
import torch
from probe_inputs import slice_tables
from scripting import scripted

from factroots.probe import paper_baseline, protocol, queries
from factroots.probe.decode import MaskPredictor
from factroots.probe.models import LoadedModel, load_model
from factroots.probe.predictions import build_predictions

pytestmark = pytest.mark.probe
LANGS = ("en", "de", "zh")


def _items(lm: LoadedModel, lang: str) -> list[queries.Item]:
    t = slice_tables((lang,))
    maxlens = queries.relation_maxlens(lm.tokenizer, t["candidates"])
    items, stats = queries.prepare(t["facts"], maxlens, lm.tokenizer, lm.family.mask_token,
                                   MaskPredictor(lm).fits)
    assert stats["out"] == len(items) > 0
    return items


def _compare(lm: LoadedModel, items: list[queries.Item], **kw: object) -> tuple[dict, dict]:
    table, stats = build_predictions(lm, "xx", items, batch_size=8, **kw)
    paper = paper_baseline.run(lm, items)
    ours = {r["uuid"]: r for r in table.to_pylist()}
    assert set(ours) == set(paper)
    for it in items:
        r, p = ours[it.uuid], paper[it.uuid]
        assert (r["correct_full"], r["correct_partial"], r["correct_exact"]) == \
            (p.full, p.partial, p.exact), it
        assert r["k"] == (p.k if p.full else len(it.gold))
        if r["k"] in p.preds:
            assert r["pred_ids"] == p.preds[r["k"]]
        assert r["gold_ids"] == list(it.gold)
    return ours, stats


@pytest.fixture(scope="module", params=["bert", "xlmr"])
def lm(request: pytest.FixtureRequest, tiny_bert_dir: Path, tiny_xlmr_dir: Path,
       device: str) -> LoadedModel:
    return load_model(str(tiny_bert_dir if request.param == "bert" else tiny_xlmr_dir), device)


@pytest.mark.parametrize("lang", LANGS)
def test_fast_path_equals_every_k_on_random_weights(lm: LoadedModel, lang: str) -> None:
    items = _items(lm, lang)
    _, stats = _compare(lm, items)
    every_k = sum(it.maxlen for it in items)
    assert stats["prompts_run"] <= every_k + len(items)


def test_all_k_mode_equals_paper(lm: LoadedModel) -> None:
    items = _items(lm, "en")
    _, stats = _compare(lm, items, all_k=True)
    assert stats["prompts_run"] >= len({(it.sentence, k) for it in items
                                        for k in range(1, it.maxlen + 1)})


def _script(lm: LoadedModel, items: list[queries.Item]) -> tuple[dict, dict]:
    """Forced predictions that make full, partial and exact differ; returns script, expected."""
    mask, space = lm.family.mask_token, lm.family.space_id
    script: dict[str, list[int]] = {}
    expect: dict[str, tuple[bool, bool, bool, int]] = {}
    filler = next(i for i in range(10, 200) if all(i not in it.gold for it in items)
                  and i != space)
    singles = [it for it in items if len(it.gold) == 1 and it.maxlen >= 3]
    multi = [it for it in items if len(set(protocol.strip(it.gold, space))) >= 2
             and it.maxlen > len(it.gold)]
    a, d = singles[0], singles[1]
    script[protocol.prompt(a.sentence, mask, 1)] = list(a.gold)  # full, exact
    expect[a.uuid] = (True, True, True, 1)
    script[protocol.prompt(d.sentence, mask, 3)] = [filler, d.gold[0], filler]  # partial only
    expect[d.uuid] = (False, True, False, 1)
    b = multi[0]
    g = len(b.gold)
    script[protocol.prompt(b.sentence, mask, g + 1)] = list(reversed(b.gold)) + [filler]
    expect[b.uuid] = (False, True, False, g)
    c = multi[1]
    script[protocol.prompt(c.sentence, mask, len(c.gold))] = list(c.gold[:-1]) + [filler]
    expect[c.uuid] = (False, False, False, len(c.gold))
    return script, expect


def test_forced_flags_differ_and_match_paper(lm: LoadedModel) -> None:
    items = _items(lm, "en")
    script, expect = _script(lm, items)
    with scripted(lm, script):
        ours, _ = _compare(lm, items)
    for uuid, (full, partial, exact, k) in expect.items():
        r = ours[uuid]
        assert (r["correct_full"], r["correct_partial"], r["correct_exact"], r["k"]) == \
            (full, partial, exact, k)


def test_strip_space_full_not_exact_and_last_k_kept(tiny_xlmr_dir: Path) -> None:
    lm = load_model(str(tiny_xlmr_dir), "cpu")
    space = lm.family.space_id
    assert space is not None and lm.tokenizer.convert_ids_to_tokens(space) == "\u2581"
    items = _items(lm, "zh")
    z = next(it for it in items if it.gold[0] == space and len(it.gold) + 1 <= it.maxlen)
    y = next(it for it in items if it is not z and it.gold[0] == space)
    stripped = protocol.strip(z.gold, space)
    g2 = len(stripped)
    mask = lm.family.mask_token
    script = {protocol.prompt(z.sentence, mask, g2): stripped,  # full without the "▁"
              protocol.prompt(z.sentence, mask, g2 + 2): [space] + stripped + [space],
              protocol.prompt(y.sentence, mask, len(y.gold)): list(y.gold)}  # exact
    with scripted(lm, script):
        ours, _ = _compare(lm, items)
    assert (ours[z.uuid]["correct_full"], ours[z.uuid]["correct_exact"]) == (True, False)
    assert ours[z.uuid]["k"] == g2 + 2  # the last matching k is kept
    assert ours[z.uuid]["pred_ids"] == [space] + stripped + [space]
    assert (ours[y.uuid]["correct_full"], ours[y.uuid]["correct_exact"]) == (True, True)


def test_typed_querying_ranks_the_forced_candidate(tiny_bert_dir: Path) -> None:
    lm = load_model(str(tiny_bert_dir), "cpu")
    items = [it for it in _items(lm, "en") if it.relation == "P37"]
    cands = slice_tables(("en",))["candidates"]
    labels = [c for r, c in zip(cands["relation"].to_pylist(), cands["candidate"].to_pylist())
              if r == "P37"]
    mask = lm.family.mask_token
    gold_item, wrong_item = items[0], items[1]
    other = next(c for c in labels if c != wrong_item.obj_label)
    other_ids = protocol.gold_ids(lm.tokenizer, other)
    script = {protocol.prompt(gold_item.sentence, mask, len(gold_item.gold)): list(gold_item.gold),
              protocol.prompt(wrong_item.sentence, mask, len(other_ids)): other_ids}
    with scripted(lm, script):
        table, stats = build_predictions(lm, "en", items, {"P37": labels}, ["full", "typed"],
                                         batch_size=4)
    rows = {(r["uuid"], r["protocol"]): r for r in table.to_pylist()}
    top = rows[(gold_item.uuid, "typed")]
    assert top["pred_text"] == gold_item.obj_label and top["correct_full"]
    assert top["score"] == pytest.approx(0.0, abs=1e-3)
    miss = rows[(wrong_item.uuid, "typed")]
    assert miss["pred_text"] == other and not miss["correct_full"]
    assert rows[(gold_item.uuid, "full")]["correct_full"]
    assert stats["correct_full_typed"] >= 1


def test_typed_scores_are_mean_logprobs(tiny_xlmr_dir: Path) -> None:
    lm = load_model(str(tiny_xlmr_dir), "cpu")
    it = _items(lm, "de")[0]
    labels = ["Paris", "Wien", "Toronto Stadt"]
    table, _ = build_predictions(lm, "de", [it], {it.relation: labels}, ["typed"])
    row = table.to_pylist()[0]
    best = None
    for lab in labels:
        ids = protocol.gold_ids(lm.tokenizer, lab)
        enc = lm.tokenizer([protocol.prompt(it.sentence, lm.family.mask_token, len(ids))],
                           return_tensors="pt")
        with torch.no_grad():
            lp = torch.log_softmax(lm.model(**enc).logits[0], -1)
        start, _ = protocol_mask_start(enc["input_ids"][0].tolist(), lm.family.mask_id)
        s = float(sum(lp[start + i, t] for i, t in enumerate(ids)) / len(ids))
        best = max(best or (s, lab), (s, lab))
    assert row["pred_text"] == best[1]
    assert row["score"] == pytest.approx(best[0], abs=1e-4)


def protocol_mask_start(ids: list[int], mask_id: int) -> tuple[int, int]:
    from factroots.probe.decode import mask_run

    return mask_run(ids, mask_id)


def test_oom_halves_the_batch_and_gives_the_same_answers(tiny_bert_dir: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    lm = load_model(str(tiny_bert_dir), "cpu")
    items = _items(lm, "de")
    ref, _ = build_predictions(lm, "de", items, batch_size=32)
    real = MaskPredictor._batch

    def tight(self, seqs, runs):  # type: ignore[no-untyped-def]
        if len(seqs) > 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, seqs, runs)

    monkeypatch.setattr(MaskPredictor, "_batch", tight)
    got, stats = build_predictions(lm, "de", items, batch_size=32)
    assert stats["batch_size_end"] == 4
    # other batch shapes may move the float32 scores in the last bits, never the answers
    assert got.drop_columns(["score"]).equals(ref.drop_columns(["score"]))
    assert got["score"].to_pylist() == pytest.approx(ref["score"].to_pylist(), abs=1e-5)


def test_empty_predictions_table_has_the_schema(tiny_bert_dir: Path) -> None:
    lm = load_model(str(tiny_bert_dir), "cpu")
    t, _ = build_predictions(lm, "en", [])
    assert t.num_rows == 0 and t.schema.names[:3] == ["lang", "uuid", "relation"]
    assert isinstance(t, pa.Table)


def test_without_partial_wordpiece_needs_one_prompt_per_fact(tiny_bert_dir: Path) -> None:
    lm = load_model(str(tiny_bert_dir), "cpu")
    items = _items(lm, "de")
    script, _ = _script(lm, items)
    with scripted(lm, script):
        table, stats = build_predictions(lm, "de", items, partial=False)
        paper = paper_baseline.run(lm, items)
    assert stats["prompts_run"] <= len(items)
    rows = {r["uuid"]: r for r in table.to_pylist()}
    assert any(p.full for p in paper.values()) and any(p.partial and not p.full
                                                       for p in paper.values())
    for it in items:
        r, p = rows[it.uuid], paper[it.uuid]
        assert (r["correct_full"], r["correct_partial"], r["correct_exact"]) == \
            (p.full, None, p.exact)


def test_bfloat16_runs_on_cpu(tiny_xlmr_dir: Path) -> None:
    lm = load_model(str(tiny_xlmr_dir), "cpu", dtype="bfloat16")
    assert next(lm.model.parameters()).dtype == torch.bfloat16
    items = _items(lm, "en")[:20]
    # (bf16 answers may differ from float32 ones at near-ties, so only the shape is checked)
    cands = {it.relation: [it.obj_label] for it in items}
    t, stats = build_predictions(lm, "en", items, cands, ["full", "typed"], batch_size=8)
    assert t.num_rows == 40 and stats["prompts_run"] > 0
    for r in t.to_pylist():
        assert len(r["pred_ids"]) == r["k"] and r["score"] <= 0.0
