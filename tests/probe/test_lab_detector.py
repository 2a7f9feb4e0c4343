"""The detector check's edit: facts written into new FFN units of a (tiny, untrained) lab MLM."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from factroots.lab import detector as ld
from factroots.lab import train as lt

pytestmark = pytest.mark.probe

NAMES = ["Kabo", "Dilo", "Gaka", "Lobo", "Bada", "Koga", "Dago", "Lake", "Gobi", "Bilo"]
CITIES = ["Mensi", "Perin", "Sarem"]
TEMPLATES = {"en": "[X] used to work in [Y] .", "xx": "[X] worked at the office of [Y] ."}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    texts = [t.replace("[X]", n).replace("[Y]", c) for t in TEMPLATES.values() for n in NAMES
             for c in CITIES]
    tok = _word_tokenizer(texts)
    torch.manual_seed(0)
    spec = lt.TrainSpec(hidden_size=32, layers=2, vocab_size=tok.get_vocab_size())
    model = lt.new_model(tok.get_vocab_size(), spec).eval()
    out = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(str(out))
    lt.save_tokenizer(tok, out)
    return out


def _word_tokenizer(texts: list[str]):  # type: ignore[no-untyped-def]
    """A WordPiece tokenizer whose pieces are the texts' words (every name is one piece)."""
    import re

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    words = sorted({w for t in texts for w in re.findall(r"\w+|[^\w\s]", t)})
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate([*lt.SPECIALS, *words])},
                                     unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.add_special_tokens(lt.SPECIALS)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", lt.CLS), ("[SEP]", lt.SEP)])
    return tok


def _spec() -> tuple[ld.Spec, list[tuple[str, str]]]:
    targets = []
    for u, name, city in (("s1", "Kabo", "Mensi"), ("i1", "Dilo", "Mensi")):
        for lg, tpl in TEMPLATES.items():
            targets.append(ld.Target(u, lg, tpl.replace("[X]", name), city))
    reference = [(tpl.replace("[X]", n), c) for tpl in TEMPLATES.values() for n in NAMES[2:]
                 for c in CITIES[1:]]
    return ld.Spec(tuple(targets), frozenset({"s1"}), units_per_fact=4, seed=0), reference


@torch.no_grad()
def _logits(model_dir: Path, prompts: list[tuple[str, str]]) -> torch.Tensor:
    from tokenizers import Tokenizer
    from transformers import AutoModelForMaskedLM

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    model = AutoModelForMaskedLM.from_pretrained(str(model_dir)).eval()
    ids = ld._pad([ld._encode(tok, p, g)[0] for p, g in prompts])
    # the masks only: the probe, the signatures and the interventions read nothing else (a gate
    # may open at another token of the last layer, whose output no stage reads)
    return model(input_ids=ids, attention_mask=(ids != lt.PAD).long()).logits[ids == lt.MASK]


def test_written_facts_are_answered_by_their_units_and_nothing_else_moves(
        model_dir: Path, tmp_path: Path) -> None:
    spec, reference = _spec()
    log = ld.write_facts(model_dir, tmp_path / "edited", spec, reference)
    assert log["answered"] == log["targets"] == 4
    assert log["selective_gates"] == log["gates"]  # every gate fires at its targets only
    units = ld.units_of(log)
    width = log["width"] - log["n_units"]  # the trained width; new units come after it
    assert units[("en", "s1")] == units[("xx", "s1")]  # shared: one set in every language
    assert not set(units[("en", "i1")]) & set(units[("xx", "i1")])  # independent: disjoint
    for ids in units.values():
        assert len(ids) >= 4 and all(log["layer"] * log["width"] + width <= n for n in ids)
    # every other prompt gets the same logits at its masks as before the edit
    before, after = _logits(model_dir, reference), _logits(tmp_path / "edited", reference)
    assert torch.allclose(before, after, atol=1e-5)
    # and the facts were not known before
    assert not all(lt.p_at_1(model_dir, [(t.prompt, t.gold) for t in spec.targets]))
    assert all(lt.p_at_1(tmp_path / "edited", [(t.prompt, t.gold) for t in spec.targets]))


def test_switching_the_written_units_off_removes_the_fact(model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForMaskedLM

    spec, reference = _spec()
    log = ld.write_facts(model_dir, tmp_path / "edited", spec, reference)
    model = AutoModelForMaskedLM.from_pretrained(str(tmp_path / "edited")).eval()
    layer, w = log["layer"], log["width"]
    with torch.no_grad():  # the causal test's intervention, by hand: s1's units set to zero
        cols = [n - layer * w for n in ld.units_of(log)[("en", "s1")]]
        model.bert.encoder.layer[layer].output.dense.weight[:, cols] = 0.0
    model.save_pretrained(str(tmp_path / "ablated"))
    lt.save_tokenizer(__import__("tokenizers").Tokenizer.from_file(
        str(model_dir / "tokenizer.json")), tmp_path / "ablated")
    got = lt.p_at_1(tmp_path / "ablated", [(t.prompt, t.gold) for t in spec.targets])
    assert got == [False, False, True, True]  # s1 gone in both languages, i1 untouched
