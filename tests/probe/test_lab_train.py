"""The lab's tokenizer and MLM: a tiny budget, seeded, saved as an ordinary HF model folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from factroots.lab import train as lt

FACTS = [("Alice Brown was born in Zorbatown.", "Zorbatown"),
         ("Borin Kest was born in Quillmoor.", "Quillmoor"),
         ("Cara Dunwell was born in Velmstad.", "Velmstad"),
         ("Dov Ember was born in Pranthe.", "Pranthe")]
REAL = ["The river flows through the valley and past the old mill.",
        "Many people visit the town in summer to see the festival.",
        "It was built in the twelfth century by local craftsmen."]


def _job(tmp: Path, steps: int = 150, seed: int = 0, name: str = "m") -> lt.TrainJob:
    texts = REAL * 5 + [s for s, _ in FACTS] * 5
    tok = lt.train_tokenizer(texts, vocab_size=300)
    spec = lt.TrainSpec(hidden_size=32, layers=1, max_steps=steps, train_minutes=2.0, seed=seed,
                        batch_size=16, lr=5e-3)
    planted = [lt.encode(tok, s, (s.index(o), s.index(o) + len(o)), spec.seq_len) for s, o in FACTS]
    real = [lt.encode(tok, s, None, spec.seq_len) for s in REAL]
    parallel = [lt._with_specials(planted[0], planted[1], mask_in_b=True)]
    return lt.TrainJob(name, tok.to_str(), planted, real, parallel, spec, tmp)


def _train(tmp: Path, steps: int = 150, seed: int = 0) -> tuple[Path, dict]:
    j = _job(tmp, steps, seed)
    log = lt.train_mlm(lt.Tokenizer.from_str(j.tokenizer_json), j.planted, j.real, j.parallel,
                       j.spec, tmp, progress=False)
    return tmp, log


@pytest.fixture(scope="module", autouse=True)
def _one_thread():  # type: ignore[no-untyped-def]
    """One thread: a tiny model gains nothing from two, and shared CI cores make spinning costly."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, _one_thread) -> tuple[Path, dict]:  # type: ignore[no-untyped-def]
    return _train(tmp_path_factory.mktemp("lab_model"))


def test_saved_as_an_ordinary_hf_model_folder(trained: tuple[Path, dict]) -> None:
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    model_dir, log = trained
    assert (model_dir / "tokenizer.json").is_file() and (model_dir / "config.json").is_file()
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForMaskedLM.from_pretrained(str(model_dir))
    ids = tok("Dov Ember was born in [MASK].")["input_ids"]
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert ids.count(tok.mask_token_id) == 1
    assert model.config.num_hidden_layers == 1 and model.config.hidden_size == 32
    assert log["steps"] == 150 and not log["stopped_by_budget"]
    assert log["loss_last"] < log["loss_first"]


def test_learns_the_planted_facts(trained: tuple[Path, dict]) -> None:
    model_dir, _ = trained
    prompts = [(s.replace(o, "[Y]"), o) for s, o in FACTS]
    assert sum(lt.p_at_1(model_dir, prompts)) >= 3


def test_training_is_reproducible(tmp_path: Path, trained: tuple[Path, dict]) -> None:
    from transformers import AutoModelForMaskedLM

    again, _ = _train(tmp_path / "again")
    a = AutoModelForMaskedLM.from_pretrained(str(trained[0])).state_dict()
    b = AutoModelForMaskedLM.from_pretrained(str(again)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_entity_masking_masks_the_whole_object() -> None:
    import numpy as np

    tok = lt.train_tokenizer(REAL + [s for s, _ in FACTS], vocab_size=200)
    s, o = FACTS[0]
    ex = lt._with_specials(lt.encode(tok, s, (s.index(o), s.index(o) + len(o)), 64))
    ids, labels = lt.mask_example(ex, np.random.default_rng(0), entity_p=1.0)
    masked = [i for i, x in enumerate(ids) if x == lt.MASK]
    assert masked == list(ex.entity) and all(labels[i] == ex.ids[i] for i in masked)
    assert tok.decode([ex.ids[i] for i in ex.entity]).replace(" ", "") == o


def _weights(model_dir: Path) -> dict:
    from transformers import AutoModelForMaskedLM

    return AutoModelForMaskedLM.from_pretrained(str(model_dir)).state_dict()


def test_models_trained_at_once_in_workers_equal_those_trained_alone(
        tmp_path: Path, trained: tuple[Path, dict]) -> None:
    jobs = [_job(tmp_path / "s0", name="a"), _job(tmp_path / "s1", seed=1, name="b")]
    logs = lt.train_many(jobs, cores=2)
    assert set(logs) == {"a", "b"} and all(lg["threads"] == 1 for lg in logs.values())
    a, s0, s1 = _weights(trained[0]), _weights(tmp_path / "s0"), _weights(tmp_path / "s1")
    assert all(torch.equal(a[k], s0[k]) for k in a)  # the worker's model is the one trained here
    assert not all(torch.equal(a[k], s1[k]) for k in a)  # and the other seed is another model


def test_a_failing_worker_fails_the_training(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")  # save_pretrained cannot make a folder here
    jobs = [_job(blocked / "m", steps=5, name="a"), _job(tmp_path / "ok", steps=5, name="b")]
    with pytest.raises(OSError):
        lt.train_many(jobs, cores=2)


def test_ffn_width_and_activation_reach_the_model() -> None:
    """lab.ffn_width / lab.ffn_act shape the FFN (0: BERT's 4 x hidden; GELU by default)."""
    default = lt.new_model(300, lt.TrainSpec(hidden_size=32, layers=1))
    assert default.config.intermediate_size == 128 and default.config.hidden_act == "gelu"
    relu = lt.new_model(300, lt.TrainSpec(hidden_size=32, layers=1, ffn_width=96, ffn_act="relu"))
    assert relu.config.intermediate_size == 96 and relu.config.hidden_act == "relu"
    assert relu.bert.encoder.layer[0].intermediate.dense.out_features == 96
    x = torch.linspace(-3, 3, 7)
    assert torch.equal(relu.bert.encoder.layer[0].intermediate.intermediate_act_fn(x), x.clamp(min=0))
