"""Tiny masked LMs saved to disk like real ones, and helpers to write probe inputs.

``tiny_bert_dir`` / ``tiny_xlmr_dir`` (session-scoped): a ``BertForMaskedLM`` and an
``XLMRobertaForMaskedLM`` built from a config (2 layers, hidden 32, FFN 64, seeded random
weights) with a tokenizer trained in code on sentences made from real mLAMA facts
(``mlama_slice.py``: en, de, zh): WordPiece (cased) for BERT; Unigram with the Metaspace "▁"
for XLM-R, whose vocabulary has a lone "▁" (so strip_space matters, e.g. zh objects tokenize
as ['▁', '波', ...]; its id is not 6). Both are saved with ``save_pretrained`` (tokenizer.json
included) and must be loaded back through ``probe.models.load_model``, as a real model is.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mlama_slice import FACTS, TEMPLATES
from probe_inputs import slice_tables, write_inputs  # noqa: F401  (re-exported)
from tokenizers import (
    AddedToken,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

# The tiny models run fastest on one thread, and CI has two cores shared by other work.
torch.set_num_threads(1)

SIZES = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def corpus() -> list[str]:
    """Sentences made from the slice: each fact's true sentence, its subject and object."""
    out = []
    for lang, rel, _, _, _, sub, _, obj in FACTS:
        t = TEMPLATES[(lang, rel)]
        out += [t.replace("[X]", sub).replace("[Y]", obj), sub, obj]
    return out * 3


def _bert(path: Path) -> Path:
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(corpus(), trainers.WordPieceTrainer(vocab_size=600,
                                                                special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tok.decoder = decoders.WordPiece()
    hf = BertTokenizerFast(tokenizer_object=tok, do_lower_case=False, unk_token="[UNK]",
                           pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                           mask_token="[MASK]")
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.get_vocab_size(), max_position_embeddings=128, **SIZES)
    hf.save_pretrained(path)
    BertForMaskedLM(cfg).save_pretrained(path)
    return path


def _xlmr(path: Path) -> Path:
    from transformers import (
        XLMRobertaConfig,
        XLMRobertaForMaskedLM,
        XLMRobertaTokenizerFast,
    )

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok.train_from_iterator(corpus(), trainers.UnigramTrainer(
        vocab_size=700, special_tokens=specials, unk_token="<unk>"))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)])
    hf = XLMRobertaTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>",
        cls_token="<s>", unk_token="<unk>", pad_token="<pad>",
        mask_token=AddedToken("<mask>", lstrip=True, normalized=False))
    torch.manual_seed(0)
    cfg = XLMRobertaConfig(vocab_size=tok.get_vocab_size(), max_position_embeddings=130,
                           pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1,
                           **SIZES)
    hf.save_pretrained(path)
    XLMRobertaForMaskedLM(cfg).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny BertForMaskedLM with a WordPiece tokenizer trained on mLAMA sentences."""
    return _bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def tiny_xlmr_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny XLMRobertaForMaskedLM with a Unigram "▁" tokenizer trained on mLAMA."""
    return _xlmr(tmp_path_factory.mktemp("tiny_xlmr"))
