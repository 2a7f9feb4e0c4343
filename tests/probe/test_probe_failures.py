"""The probe stage's model checks: an unusable model is one line, before any query is written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from probe_inputs import write_inputs

from factroots import runner, storage
from factroots.config import load_config
from factroots.errors import ModelError
from factroots.probe import job

pytestmark = pytest.mark.probe


def _cfg(out: Path, model: Path):  # type: ignore[no-untyped-def]
    return load_config(None, {"out": str(out), "probe.model": str(model), "probe.device": "cpu",
                              "langs": ["en"]})


def test_a_tokenizer_larger_than_the_embeddings_is_refused_before_queries(
        tmp_path: Path, tiny_bert_dir: Path) -> None:
    from transformers import AutoTokenizer

    model = tmp_path / "model"
    shutil.copytree(tiny_bert_dir, model)
    tok = AutoTokenizer.from_pretrained(model)
    tok.add_tokens([f"newword{i}" for i in range(50)])  # ids beyond the embedding rows
    tok.save_pretrained(model)
    write_inputs(tmp_path / "out", ("en",))
    with pytest.raises(ModelError, match="the tokenizer has .* tokens but the model's embeddings"):
        job.run(_cfg(tmp_path / "out", model))
    assert storage.done_langs(tmp_path / "out", "queries") == []
    assert not list((tmp_path / "out" / "queries").glob("lang=*"))


def test_a_truncated_safetensors_file_is_one_line(tmp_path: Path, tiny_bert_dir: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_bert_dir, model)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    write_inputs(tmp_path / "out", ("en",))
    job._MODEL.clear()
    with pytest.raises(ModelError) as exc:
        job.run(_cfg(tmp_path / "out", model))
    assert str(model) in exc.value.message and "\n" not in str(exc.value)
    assert "truncated" in exc.value.fix
    report = (tmp_path / "out" / runner.REPORT).read_text()
    assert '"lang": "en"' in report and "cannot load model" in report
