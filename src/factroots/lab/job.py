"""The lab stage: `facts` + bundled samples -> plan, corpus dumps, tokenizer and MLM; then the check.

``build`` writes, under ``<out>/lab/``: ``dumps/<lang>wiki-lab-pages-articles-multistream.xml.bz2``
(with its index) per lab language, ``model/`` (a Hugging Face model folder with tokenizer.json)
and ``lab.json`` (fingerprint, paths, training log, the model's P@1 on the plan's groups); and
the `planted_facts` table. It is cached (the runner's skip-if-done): a rerun with the same lab
config, facts, samples (by content) and lab code version returns at once. ``check`` compares the trace and label tables with the plan
and writes `lab_check` (and ``<out>/lab/check.md``).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from factroots import storage
from factroots.config import RunConfig, to_dict
from factroots.errors import ConfigError, ShardError
from factroots.lab import corpus as lc
from factroots.lab import planted_facts as pf
from factroots.lab import train as lt
from factroots.lab.lab_check import build_lab_check, check_markdown
from factroots.runner import Plan, Stage, Work, plan_of, run_stage
from factroots.text import match as tmatch
from factroots.text.samples import sample_dump, sample_langs

log = logging.getLogger(__name__)

LAB_VERSION = "lab-1"  # bump when the plan, corpus or training changes what build() makes
MANIFEST = "lab.json"
_MARKERS = ("▁", "##", "Ġ", "Ċ")  # boundary-only tokens carry no entity (as the label stage)


@dataclass(frozen=True)
class LabArtifacts:
    """Where the built lab lives: the model folder and each language's corpus dump."""

    model_dir: Path
    dumps: dict[str, list[str]]


def say(msg: str) -> None:
    """Print one progress line (the main job's progress goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def lab_dir(cfg: RunConfig) -> Path:
    """``<out>/lab``."""
    return cfg.path(cfg.out) / "lab"


def lab_langs(cfg: RunConfig) -> list[str]:
    """The lab languages, checked against the bundled samples."""
    have = sample_langs()
    bad = [lg for lg in cfg.lab.langs if lg not in have]
    if bad or not cfg.lab.langs:
        raise ConfigError(f"lab.langs: {bad or '[]'} without a bundled dump sample",
                          f"use languages among {have}")
    return list(dict.fromkeys(cfg.lab.langs))


def _settings(plan: Plan) -> dict:
    """What the lab's outputs depend on besides the facts and the bundled samples."""
    cfg, t = plan.cfg, plan.cfg.trace
    return {"lab": to_dict(cfg.lab), "min_name_len": t.min_name_len,
            "substring_langs": t.substring_langs, "left_boundary_langs": t.left_boundary_langs,
            "naming": cfg.label.naming_relations}


def _samples(plan: Plan, lang: str) -> list[Path]:
    return [Path(sample_dump(lg)) for lg in lab_langs(plan.cfg)]


def _dump_path(cfg: RunConfig, lang: str) -> Path:
    return lab_dir(cfg) / "dumps" / f"{lang}wiki-lab-pages-articles-multistream.xml.bz2"


def _built(cfg: RunConfig) -> bool:
    """True when the lab's files (manifest, model, every dump) are all there."""
    m = lab_dir(cfg) / MANIFEST
    return (m.is_file() and (lab_dir(cfg) / "model" / "config.json").is_file()
            and all(_dump_path(cfg, lg).is_file() for lg in lab_langs(cfg)))


def build(cfg: RunConfig | Plan) -> Path:
    """Build (or find cached) the lab: plan, corpus dumps, tokenizer and model; return its dir."""
    plan = plan_of(cfg)
    if not _built(plan.cfg):  # the planted_facts alone do not make a lab: build it again
        for lg in lab_langs(plan.cfg):
            storage.fail_partition(plan.out, "planted_facts", lg, "the lab's files are missing")
    run_stage(BUILD, plan)
    return lab_dir(plan.cfg)


def _build(work: Work) -> None:
    """Plan, write the corpus as dumps, train the tokenizer and the model, write planted_facts."""
    cfg = work.cfg
    langs, out = lab_langs(cfg), work.out
    if sorted(work.langs) != sorted(langs):  # one lab over all its languages, or none
        raise ShardError(f"the lab needs facts for every lab language, not only {work.langs}",
                         ",".join(work.langs), "run `factroots facts` for lab.langs")
    fp = work.fps[langs[0]]
    t0 = time.perf_counter()
    facts = storage.read_table(out, "facts", langs)
    say(f"lab: reading and cleaning the bundled samples of {', '.join(langs)}")
    samples = {lg: lc.load_sample(lg, sample_dump(lg)) for lg in langs}
    real = _presence(cfg, facts, {lg: s.docs for lg, s in samples.items()})
    say(f"lab: {sum(len(s.docs) for s in samples.values())} real articles; "
        f"{sum(d for d, _ in real.values())} (fact, language) pairs already co-occur in them")
    plan = _plan(cfg, facts, real)
    planted = {lg: lc.planted_sentences(plan, facts, lg) for lg in langs}
    pages = {lg: lc.planted_pages(planted[lg]) for lg in langs}
    dumps = _write_dumps(cfg, samples, pages)
    say(f"lab: corpus written: {sum(len(v) for v in planted.values())} planted sentences "
        f"in {sum(len(v) for v in pages.values())} articles, dumps in {lab_dir(cfg) / 'dumps'}")
    model_dir, train_log = _train(cfg, samples, planted, plan, facts)
    lab_docs = {lg: {p["page_id"]: lc.clean_sentences(p["text"], lg, samples[lg].siteinfo)
                     for p in pages[lg]} for lg in langs}
    in_lab = {k for k, (doc, _) in _presence(cfg, facts, lab_docs).items() if doc}
    plan = _plan(cfg, facts, real, token_sets=_token_sets(model_dir), planted_text=in_lab)
    for lg in langs:
        part = plan.filter(pc.equal(plan["lang"], lg))
        work.write("planted_facts", part, lg, config=to_dict(cfg.lab), stats=_plan_stats(part))
    evals = _evaluate(model_dir, plan, facts, langs)
    manifest = {"fingerprint": fp, "lab_version": LAB_VERSION, "langs": langs,
                "model_dir": str(model_dir), "dumps": dumps, "train": train_log, "eval": evals,
                "seconds": round(time.perf_counter() - t0, 1), "config": to_dict(cfg.lab)}
    tmp = lab_dir(cfg) / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, default=str), encoding="utf-8")
    tmp.replace(lab_dir(cfg) / MANIFEST)
    say(f"lab: built in {manifest['seconds']} s; model P@1 on planted facts: "
        + ", ".join(f"{lg} {evals['planted'].get(lg, 0):.2f}" for lg in langs))


BUILD = Stage("lab build", ("planted_facts",), _build, LAB_VERSION, settings=_settings,
              inputs=("facts",), files=_samples, langs=lambda plan: lab_langs(plan.cfg),
              per_lang=False, cross_lang=True, needs_plan=False)


def _presence(cfg: RunConfig, facts: pa.Table, docs: dict[str, dict[int, list[str]]]
              ) -> dict[tuple[str, str], tuple[bool, bool]]:
    t = cfg.trace
    out = {}
    for lg, d in docs.items():
        f = facts.filter(pc.equal(facts["lang"], lg)).select(["uuid", "sub_label", "obj_label"])
        mode = tmatch.mode_for(lg, t.substring_langs, t.left_boundary_langs)
        found = lc.cooccurring(d, f.to_pandas(), lg, min_name_len=t.min_name_len, mode=mode)
        out.update({(lg, u): v for u, v in found.items()})
    return out


def _plan(cfg: RunConfig, facts: pa.Table, real: dict, **kw) -> pa.Table:  # type: ignore[no-untyped-def]
    return pf.build_planted_facts(facts, real, langs=lab_langs(cfg),
                                  per_group=cfg.lab.facts_per_group, repeats=cfg.lab.repeats,
                                  seed=cfg.lab.seed, naming=cfg.label.naming_relations, **kw)


def _plan_stats(part: pa.Table) -> dict:
    groups = part["group"].value_counts().to_pylist()
    stats = {f"group_{g['values']}": g["counts"] for g in groups}
    stats.update(planted=int(pc.sum(pc.greater(part["n_planted"], 0)).as_py() or 0),
                 in_real_text=int(pc.sum(part["in_real_text"]).as_py() or 0))
    return stats


def _write_dumps(cfg: RunConfig, samples: dict, pages: dict) -> dict[str, list[str]]:
    out = {}
    for lg, s in samples.items():
        path = _dump_path(cfg, lg)
        dump, _ = lc.write_corpus(s, pages[lg], path)
        out[lg] = [str(dump)]
    return out


def _train(cfg: RunConfig, samples: dict, planted: dict, plan: pa.Table,
           facts: pa.Table) -> tuple[Path, dict]:
    lab = cfg.lab
    spec = lt.TrainSpec(hidden_size=lab.hidden_size, layers=lab.layers, vocab_size=lab.vocab_size,
                        max_steps=lab.max_steps, train_minutes=lab.train_minutes, seed=lab.seed)
    real = [s for smp in samples.values() for sents in smp.docs.values() for s in sents]
    texts = real + [p.text for ps in planted.values() for p in ps]
    say(f"lab: training a WordPiece tokenizer ({lab.vocab_size} tokens) on {len(texts)} sentences")
    tok = lt.train_tokenizer(texts, lab.vocab_size)
    ex_planted = [lt.encode(tok, p.text, (p.obj_start, p.obj_end), spec.seq_len)
                  for ps in planted.values() for p in ps]
    ex_real = [lt.encode(tok, s, None, spec.seq_len) for s in real]
    ex_par = _parallel(tok, planted, plan, spec)
    model_dir = lab_dir(cfg) / "model"
    shutil.rmtree(model_dir, ignore_errors=True)
    say(f"lab: training the MLM (hidden {lab.hidden_size}, {lab.layers} layers, "
        f"{lab.max_steps} steps at most, {lab.train_minutes} min budget) on "
        f"{len(ex_planted)} planted, {len(ex_real)} real and {len(ex_par)} parallel sequences")
    log_ = lt.train_mlm(tok, ex_planted, ex_real, ex_par, spec, model_dir)
    lt.write_log(lab_dir(cfg) / "train_log.json", {**log_, "spec": asdict(spec)})
    return model_dir, log_


def _parallel(tok, planted: dict, plan: pa.Table, spec: lt.TrainSpec) -> list[lt.Example]:  # type: ignore[no-untyped-def]
    """Pairs of first-frame sentences of the `all` group in two languages, masked on one side."""
    allg = set(plan.filter(pc.equal(plan["group"], pf.ALL))["uuid"].to_pylist())
    first: dict[str, dict[str, lt.Example]] = {}
    for lg, ps in planted.items():
        for p in ps:
            if p.uuid in allg and p.uuid not in first.setdefault(lg, {}):  # frame 0: plain
                first[lg][p.uuid] = lt.encode(tok, p.text, (p.obj_start, p.obj_end), spec.seq_len)
    out = []
    langs = sorted(first)
    for u in sorted(allg):
        for a in langs:
            for b in langs:
                if a != b and u in first[a] and u in first[b]:
                    out.append(lt._with_specials(first[a][u], first[b][u], mask_in_b=True))
    return out


def _token_sets(model_dir: Path):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    vocab = tok.get_vocab()
    skip = {vocab[m] for m in _MARKERS if m in vocab}
    return lambda text: frozenset(tok.encode(text, add_special_tokens=False).ids) - skip


def _evaluate(model_dir: Path, plan: pa.Table, facts: pa.Table, langs: list[str]) -> dict:
    """The lab model's P@1 per language on planted, transfer (only in another), control facts."""
    p = plan.filter(pc.is_in(plan["group"], pa.array(pf.groups_of(langs)))).to_pandas()
    f = facts.select(["lang", "uuid", "template", "sub_label", "obj_label"]).to_pandas()
    p = p.merge(f, on=["lang", "uuid"])
    prompts = [(t.replace("[X]", s.strip()), o.strip())
               for t, s, o in zip(p["template"], p["sub_label"], p["obj_label"])]
    p["correct"] = lt.p_at_1(model_dir, prompts)
    ev: dict[str, dict] = {"planted": {}, "transfer": {}, "transfer_shared_names": {}, "none": {}}
    for lg in langs:
        q = p[p["lang"] == lg]
        planted = q[q["n_planted"] > 0]
        other = q[(q["n_planted"] == 0) & q["group"].str.startswith("only_")]
        ev["planted"][lg] = float(planted["correct"].mean()) if len(planted) else 0.0
        ev["transfer"][lg] = float(other["correct"].mean()) if len(other) else 0.0
        sh = other[other["shared_names"]]
        ev["transfer_shared_names"][lg] = float(sh["correct"].mean()) if len(sh) else 0.0
        ev["none"][lg] = float(q[q["group"] == pf.NONE]["correct"].mean()) if len(q) else 0.0
    return ev


def artifacts(cfg: RunConfig) -> LabArtifacts:
    """The built lab's model folder and dumps (raises ConfigError when it is not built)."""
    m = lab_dir(cfg) / MANIFEST
    if not m.is_file():
        raise ConfigError(f"the lab is not built under {lab_dir(cfg)}",
                          "run `factroots lab build` (or `factroots run`) first")
    data = json.loads(m.read_text(encoding="utf-8"))
    return LabArtifacts(Path(data["model_dir"]), {k: list(v) for k, v in data["dumps"].items()})


def check(cfg: RunConfig | Plan) -> Path:
    """Compare the trace and the labels with the plan; write `lab_check` and check.md."""
    plan = plan_of(cfg)
    if not (lab_dir(plan.cfg) / "check.md").is_file():
        for lg in lab_langs(plan.cfg):
            storage.fail_partition(plan.out, "lab_check", lg, "check.md is missing")
    return run_stage(CHECK, plan)


def _check(work: Work) -> None:
    out, langs = work.out, sorted(work.langs)
    have = {t: storage.read_table(out, t, langs) for t in CHECK.inputs}
    result = build_lab_check(have["planted_facts"], have["cooccurrence"], have["status"],
                             have["easy_facts"], have["fact_labels"], langs=langs)
    for lg in langs:
        work.write("lab_check", result.filter(pc.equal(result["lang"], lg)), lg,
                   config={"window": work.cfg.trace.window})
    (lab_dir(work.cfg) / "check.md").write_text(check_markdown(result), encoding="utf-8")
    say(f"lab check: written to {storage.table_dir(out, 'lab_check')} and "
        f"{lab_dir(work.cfg) / 'check.md'}")


CHECK = Stage("lab check", ("lab_check",), _check, LAB_VERSION,
              inputs=("planted_facts", "cooccurrence", "status", "easy_facts", "fact_labels"),
              langs=lambda plan: lab_langs(plan.cfg), per_lang=False, cross_lang=True)
