"""The lab stage: real mLAMA + bundled samples -> fictional world, corpus, models, plan; the check.

``build`` writes, under ``<out>/lab/``: ``mlama/`` (the lab's facts in mLAMA's layout: the
fictional world and a seeded sample of real background facts; the facts stage reads it in lab
mode), ``dumps/<lang>wiki-lab-pages-articles-multistream.xml.bz2`` (with its index) per lab
language, ``models/<fingerprint>/`` (Hugging Face model folders with tokenizer.json: the full
model of each seed and the counterfactual model, each cached by the fingerprint of its training
data and settings), ``lab.json`` (fingerprint, paths, training logs with core-seconds, the lab's
own P@1 per group) and the `planted_facts` table. Both are stages of the runner
(``factroots.runner``: skip-if-done by fingerprint, atomic commit, one failure policy): the
build's fingerprint covers the lab config, the mLAMA source, the samples (by content), the
trace's matching settings and the lab code version. ``check`` compares the trace, probe and label tables with the plan and writes
`lab_check` (and ``<out>/lab/check.md``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from factroots import storage
from factroots.config import RunConfig, to_dict
from factroots.errors import ConfigError, ShardError
from factroots.facts.sources import open_source
from factroots.lab import corpus as lc
from factroots.lab import detector as ld
from factroots.lab import facts_source as fs
from factroots.lab import planted_facts as pf
from factroots.lab import train as lt
from factroots.lab import world as lw
from factroots.lab.lab_check import POOLED, build_lab_check, check_markdown
from factroots.runner import Plan, Stage, Work, plan_of, run_stage
from factroots.text import match as tmatch
from factroots.text.samples import sample_dump, sample_langs

log = logging.getLogger(__name__)

LAB_VERSION = "lab-3"  # bump when the world, corpus or training changes what build() makes
MANIFEST = "lab.json"
_MARKERS = ("▁", "##", "Ġ", "Ċ")  # boundary-only tokens carry no entity (as the label stage)


@dataclass(frozen=True)
class LabArtifacts:
    """Where the built lab lives: the probed model, each language's dump, the lab's mLAMA."""

    model_dir: Path
    dumps: dict[str, list[str]]
    mlama_dir: Path


def say(msg: str) -> None:
    """Print one progress line (the main job's progress goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def lab_dir(cfg: RunConfig) -> Path:
    """``<out>/lab``."""
    return cfg.path(cfg.out) / "lab"


def lab_langs(cfg: RunConfig) -> list[str]:
    """The lab languages, checked against the bundled samples and the lab's alphabets."""
    have = sample_langs()
    bad = [lg for lg in cfg.lab.langs if lg not in have]
    if bad or not cfg.lab.langs:
        raise ConfigError(f"lab.langs: {bad or '[]'} without a bundled dump sample",
                          f"use languages among {have}")
    lw.check_langs(cfg.lab.langs)
    return list(dict.fromkeys(cfg.lab.langs))


def _source(cfg: RunConfig):  # type: ignore[no-untyped-def]
    f = cfg.facts
    return open_source(cfg.path(f.mlama_dir) if f.mlama_dir else None,
                       cfg.path(f.candidates_dir) if f.candidates_dir else None)


def _settings(plan: Plan) -> dict:
    """What the lab's outputs depend on besides the bundled samples (files, by content)."""
    cfg, t = plan.cfg, plan.cfg.trace
    src = _source(cfg)
    return {"lab": to_dict(cfg.lab), "mlama": {lg: src.digest(lg) for lg in lab_langs(cfg)},
            "exclude": sorted(cfg.facts.exclude_relations), "min_name_len": t.min_name_len,
            "substring_langs": t.substring_langs, "left_boundary_langs": t.left_boundary_langs,
            "naming": cfg.label.naming_relations}


def _samples(plan: Plan, lang: str) -> list[Path]:
    return [Path(sample_dump(lg)) for lg in lab_langs(plan.cfg)]


def _dump_path(cfg: RunConfig, lang: str) -> Path:
    return lab_dir(cfg) / "dumps" / f"{lang}wiki-lab-pages-articles-multistream.xml.bz2"


def _built(cfg: RunConfig) -> bool:
    """True when the lab's files (manifest, every model, the facts folder, every dump) are there."""
    m = lab_dir(cfg) / MANIFEST
    if not m.is_file():
        return False
    data = json.loads(m.read_text())
    return (all(Path(d, "config.json").is_file() for d in data.get("models", {}).values())
            and Path(data.get("mlama_dir", "/nonexistent")).is_dir()
            and all(_dump_path(cfg, lg).is_file() for lg in lab_langs(cfg)))


def sizes(cfg: RunConfig) -> lw.Sizes:
    """The world's group sizes from the lab config."""
    n = cfg.lab.facts_per_group
    return lw.Sizes(transfer=cfg.lab.transfer_facts, control=n, shared=n, independent=n,
                    detector=cfg.lab.detector_facts,
                    transfer_forms=tuple(cfg.lab.transfer_forms))


def build(cfg: RunConfig | Plan) -> Path:
    """Build (or find cached) the lab: world, facts, corpus dumps, models and plan; return its dir."""
    plan = plan_of(cfg)
    if not _built(plan.cfg):  # the planted_facts alone do not make a lab: build it again
        for lg in lab_langs(plan.cfg):
            storage.fail_partition(plan.out, "planted_facts", lg, "the lab's files are missing")
    run_stage(BUILD, plan)
    return lab_dir(plan.cfg)


def _build(work: Work) -> None:
    """World, lab facts folder, corpus dumps, tokenizer, models, detector, `planted_facts`."""
    cfg = work.cfg
    langs, lab = lab_langs(cfg), cfg.lab
    if sorted(work.langs) != sorted(langs):  # one lab over all its languages, or none
        raise ShardError(f"the lab is built for every lab language, not only {work.langs}",
                         ",".join(work.langs), "run `factroots lab build` for lab.langs")
    fp = work.fps[langs[0]]
    t0 = time.perf_counter()
    say(f"lab: reading mLAMA and the bundled samples of {', '.join(langs)}")
    real_f, real_t = fs.real_facts(_source(cfg), langs, list(cfg.facts.exclude_relations))
    samples = {lg: lc.load_sample(lg, sample_dump(lg)) for lg in langs}
    world = lw.build_world(langs, sizes(cfg), lab.seed, _words(samples, real_f))
    background = fs.background_sample(real_f, langs, lab.background_facts, lab.seed)
    ptpl = fs.probe_templates(real_t, langs)
    mlama = fs.write_mlama(lab_dir(cfg) / "mlama", world, background, real_t)
    rows = pf.fact_rows(world, background, lab.repeats)
    real = _presence(cfg, rows, {lg: s.docs for lg, s in samples.items()})
    planted = {lg: lc.planted_sentences(world, lg, ptpl[lg], lab.repeats) for lg in langs}
    pages = {lg: lc.planted_pages(planted[lg]) for lg in langs}
    dumps = _write_dumps(cfg, samples, pages)
    say(f"lab: {len(world.facts)} fictional facts ({', '.join(f'{g} {len(world.by_group(g))}' for g in (*lw.TEST_GROUPS, lw.BRIDGE, lw.ANCHOR))}) "
        f"and {background['uuid'].nunique()} background facts; corpus: "
        f"{sum(len(v) for v in planted.values())} planted sentences, dumps in {lab_dir(cfg) / 'dumps'}")
    models, logs, tok = _train_all(cfg, world, samples, planted, ptpl)
    lab_docs = {lg: {p["page_id"]: lc.clean_sentences(p["text"], lg, samples[lg].siteinfo)
                     for p in pages[lg]} for lg in langs}
    in_lab = {k for k, (doc, _) in _presence(cfg, rows, lab_docs).items() if doc}
    prompts = _prompts(rows, ptpl, background)
    probed, det = _detector(cfg, rows, prompts, models[f"full_seed{lab.seed}"])
    full = [_verdicts(probed, rows, prompts)]
    full += [_verdicts(models[f"full_seed{s}"], rows, prompts) for s in _seeds(cfg)[1:]]
    if det:  # the written units must leave every other answer as the trained model gave it
        det["changed_verdicts"] = _changed(full[0], _verdicts(models[f"full_seed{lab.seed}"],
                                                             rows, prompts), rows)
    cf = _verdicts(models["counterfactual"], rows, prompts) if "counterfactual" in models else {}
    plan = pf.build_planted_facts(rows, langs, real=real, in_lab=in_lab,
                                  naming=cfg.label.naming_relations, token_sets=_token_sets(tok),
                                  full=full, counterfactual=cf, detector=ld.units_of(det))
    for lg in langs:
        part = plan.filter(pc.equal(plan["lang"], lg))
        work.write("planted_facts", part, lg, config=to_dict(cfg.lab), stats=_plan_stats(part))
    evals = _evaluate(plan, langs)
    models = {**models, "detector": probed} if det else models
    manifest = {"fingerprint": fp, "lab_version": LAB_VERSION, "langs": langs,
                "model_dir": str(probed), "models": {k: str(v) for k, v in models.items()},
                "mlama_dir": str(mlama), "dumps": dumps, "train": logs, "eval": evals,
                "detector": {k: v for k, v in det.items() if k != "facts"},
                "seconds": round(time.perf_counter() - t0, 1), "config": to_dict(lab)}
    tmp = lab_dir(cfg) / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, default=str), encoding="utf-8")
    tmp.replace(lab_dir(cfg) / MANIFEST)
    say(f"lab: built in {manifest['seconds']} s; lab P@1 on planted facts: "
        + ", ".join(f"{lg} {evals['p1_planted'].get(lg, 0):.2f}" for lg in langs)
        + f"; counterfactual-positive transfers: {evals['truth_transferred']}"
        + (f"; detector facts answered {det['answered']}/{det['targets']}, other answers "
           f"changed {det['changed_verdicts']}" if det else ""))


BUILD = Stage("lab build", ("planted_facts",), _build, LAB_VERSION, settings=_settings,
              files=_samples, langs=lambda plan: lab_langs(plan.cfg), per_lang=False,
              cross_lang=True, needs_plan=False)


def _words(samples: dict, facts: pd.DataFrame) -> set[str]:
    """Every word of the real text and of the real facts' names (no fictional name may be one)."""
    words: set[str] = set()
    for s in samples.values():
        for sents in s.docs.values():
            for sent in sents:
                words.update(re.findall(r"\w+", sent.lower()))
    for col in ("sub_label", "obj_label"):
        for name in facts[col].dropna().unique():
            words.update(re.findall(r"\w+", name.lower()))
    return words


def _seeds(cfg: RunConfig) -> list[int]:
    return list(dict.fromkeys([cfg.lab.seed, *cfg.lab.replicate_seeds]))


def _presence(cfg: RunConfig, rows: pd.DataFrame, docs: dict[str, dict[int, list[str]]]
              ) -> dict[tuple[str, str], tuple[bool, bool]]:
    t = cfg.trace
    out = {}
    for lg, d in docs.items():
        f = rows[rows["lang"] == lg][["uuid", "sub_label", "obj_label"]]
        mode = tmatch.mode_for(lg, t.substring_langs, t.left_boundary_langs)
        found = lc.cooccurring(d, f, lg, min_name_len=t.min_name_len, mode=mode)
        out.update({(lg, u): v for u, v in found.items()})
    return out


def _plan_stats(part: pa.Table) -> dict:
    groups = part["group"].value_counts().to_pylist()
    stats = {f"group_{g['values']}": g["counts"] for g in groups}
    stats.update(planted=int(pc.sum(pc.greater(part["n_planted"], 0)).as_py() or 0),
                 in_real_text=int(pc.sum(part["in_real_text"]).as_py() or 0),
                 truth_transferred=int(pc.sum(part["truth_transferred"]).as_py() or 0))
    return stats


def _write_dumps(cfg: RunConfig, samples: dict, pages: dict) -> dict[str, list[str]]:
    out = {}
    for lg, s in samples.items():
        dump, _ = lc.write_corpus(s, pages[lg], _dump_path(cfg, lg))
        out[lg] = [str(dump)]
    return out


def spec(cfg: RunConfig, seed: int) -> lt.TrainSpec:
    """The training settings of one lab model."""
    lab = cfg.lab
    return lt.TrainSpec(hidden_size=lab.hidden_size, layers=lab.layers,
                        ffn_width=lab.ffn_width, ffn_act=lab.ffn_act,
                        vocab_size=lab.vocab_size, max_steps=lab.max_steps,
                        train_minutes=lab.train_minutes, seed=seed, batch_size=lab.batch_size,
                        seq_len=lab.seq_len, lr=lab.lr, mix=tuple(lab.mix))


def _train_all(cfg: RunConfig, world: lw.World, samples: dict, planted: dict,
               ptpl: dict) -> tuple[dict[str, Path], dict, object]:
    """Tokenizer, then the full model per seed and the counterfactual model (each cached)."""
    langs = world.langs
    untrained = {f.uuid for f in world.facts if not f.trained}  # detector facts: dumps only
    planted = {lg: [p for p in ps if p.uuid not in untrained] for lg, ps in planted.items()}
    cf_planted = {lg: [p for p in lc.planted_sentences(world, lg, ptpl[lg], cfg.lab.repeats, True)
                       if p.uuid not in untrained] for lg in langs}
    real = [s for smp in samples.values() for sents in smp.docs.values() for s in sents]
    texts = real + [p.text for ps in planted.values() for p in ps]
    texts += sorted({p.text for ps in cf_planted.values() for p in ps} - set(texts))
    say(f"lab: training a WordPiece tokenizer ({cfg.lab.vocab_size} tokens) on "
        f"{len(texts)} sentences")
    tok = lt.train_tokenizer(texts, cfg.lab.vocab_size)
    sl = cfg.lab.seq_len
    ex_real = [lt.encode(tok, s, None, sl) for s in real]
    pars = {"full": _parallel(tok, world, planted, sl)}
    pools = {"full": [lt.encode(tok, p.text, (p.obj_start, p.obj_end), sl)
                      for lg in langs for p in planted[lg]],
             "counterfactual": [lt.encode(tok, p.text, (p.obj_start, p.obj_end), sl)
                                for lg in langs for p in cf_planted[lg]]}
    runs = [(f"full_seed{s}", "full", s) for s in _seeds(cfg)]
    if cfg.lab.counterfactual:
        runs.append(("counterfactual", "counterfactual", cfg.lab.seed))
    models, logs, todo, tok_json = {}, {}, [], tok.to_str()
    for name, pool, seed in runs:
        sp = spec(cfg, seed)
        mfp = storage.fingerprint(LAB_VERSION, asdict(sp), _digest(pools[pool], ex_real,
                                                                   pars["full"]),
                                  tok_json)
        mdir = models[name] = lab_dir(cfg) / "models" / mfp
        if (mdir / "config.json").is_file() and (mdir / "train_log.json").is_file():
            say(f"lab: {name}: cached model {mdir}")
            logs[name] = json.loads((mdir / "train_log.json").read_text())
        else:
            shutil.rmtree(mdir, ignore_errors=True)
            todo.append(lt.TrainJob(name, tok_json, pools[pool], ex_real, pars["full"], sp, mdir))
    if todo:
        sp, cores = todo[0].spec, _cores()
        say(f"lab: training {', '.join(j.name for j in todo)} (hidden {sp.hidden_size}, "
            f"{sp.layers} layers, {sp.max_steps} steps, seq {sp.seq_len}; "
            f"{min(len(todo), cores)} at once on {cores} cores) on {len(todo[0].planted)} "
            f"planted, {len(ex_real)} real and {len(pars['full'])} parallel sequences")
        done = lt.train_many(todo, cores)
        for job in todo:
            log_ = logs[job.name] = {**done[job.name], "spec": asdict(job.spec)}
            lt.write_log(job.model_dir / "train_log.json", log_)
            say(f"lab: {job.name}: {log_['steps']} steps, {log_['core_seconds']} core-s, "
                f"loss {log_['loss_first']:.2f} -> {log_['loss_last']:.2f}")
    return models, logs, tok


def _cores() -> int:
    """The cores this process may use (its CPU affinity, which containers and taskset set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _digest(*pools: list[lt.Example]) -> str:
    h = hashlib.sha256()
    for pool in pools:
        for e in pool:
            h.update(repr((e.ids, e.words, e.entity, e.types)).encode())
        h.update(b"|")
    return h.hexdigest()[:16]


def _parallel(tok, world: lw.World, planted: dict, seq_len: int) -> list[lt.Example]:  # type: ignore[no-untyped-def]
    """Pairs (a, b) of the same parallel fact and template in two languages, masked in b."""
    par = {f.uuid for f in world.facts if f.parallel}
    by: dict[tuple[str, str, int], lt.Example] = {}
    for lg, ps in planted.items():
        for p in ps:
            if p.uuid in par and (lg, p.uuid, p.template) not in by:
                by[(lg, p.uuid, p.template)] = lt.encode(tok, p.text, (p.obj_start, p.obj_end),
                                                         seq_len)
    out = []
    for (a, u, t), ea in sorted(by.items()):
        for b in world.langs:
            eb = by.get((b, u, t))
            if b != a and eb is not None:
                out.append(lt._with_specials(ea, eb, mask_in_b=True))
    return out


def _detector(cfg: RunConfig, rows: pd.DataFrame, prompts: list[tuple[str, str]],
              full: Path) -> tuple[Path, dict]:
    """The probed model: ``full`` with the detector facts written into its units (cached)."""
    det = rows["group"].isin(lw.DETECTOR_GROUPS).to_numpy()
    if not det.any():
        return full, {}
    targets = tuple(ld.Target(u, lg, p, g) for (p, g), u, lg, d in
                    zip(prompts, rows["uuid"], rows["lang"], det) if d)
    shared = frozenset(rows.loc[rows["group"] == lw.DETECTOR_SHARED, "uuid"])
    spec = ld.Spec(targets, shared, cfg.lab.detector_units, seed=cfg.lab.seed)
    reference = [pg for pg, d in zip(prompts, det) if not d]
    # the spec by value, shared uuids sorted (a frozenset's repr follows the hash seed)
    key = [[dataclasses.astuple(t) for t in targets], sorted(shared), spec.units_per_fact,
           spec.steps, spec.seed]
    dest = lab_dir(cfg) / "models" / storage.fingerprint(LAB_VERSION, full.name, key, reference)
    if (dest / "config.json").is_file() and (dest / "detector.json").is_file():
        say(f"lab: detector: cached model {dest}")
        return dest, json.loads((dest / "detector.json").read_text(encoding="utf-8"))
    shutil.rmtree(dest, ignore_errors=True)
    t0 = time.perf_counter()
    log = ld.write_facts(full, dest, spec, reference)
    say(f"lab: detector: {len(shared)} shared and {len(set(rows.loc[det, 'uuid'])) - len(shared)} "
        f"independent facts written into {log['n_units']} units of layer {log['layer']} "
        f"({log['selective_gates']}/{log['gates']} gates selective, "
        f"{log['answered']}/{log['targets']} answered) in {time.perf_counter() - t0:.1f} s")
    return dest, log


def _changed(a: dict, b: dict, rows: pd.DataFrame) -> int:
    """How many non-detector (lang, uuid) verdicts differ between two models."""
    keep = ~rows["group"].isin(lw.DETECTOR_GROUPS)
    return sum(a[k] != b[k] for k in zip(rows.loc[keep, "lang"], rows.loc[keep, "uuid"]))


def _token_sets(tok):  # type: ignore[no-untyped-def]
    vocab = tok.get_vocab()
    skip = {vocab[m] for m in _MARKERS if m in vocab}
    return lambda text: frozenset(tok.encode(text, add_special_tokens=False).ids) - skip


def _prompts(rows: pd.DataFrame, ptpl: dict, background: pd.DataFrame) -> list[tuple[str, str]]:
    """The probe's question of every row (the mLAMA template with the subject), and the gold."""
    bg = dict(zip(zip(background["lang"], background["uuid"]), background["template"]))
    out = []
    for lg, u, rel, s, o in zip(rows["lang"], rows["uuid"], rows["relation"], rows["sub_label"],
                                rows["obj_label"]):
        tpl = bg.get((lg, u)) or ptpl[lg][rel]
        out.append((tpl.replace("[X]", s.strip()), o.strip()))
    return out


def _verdicts(model_dir: Path, rows: pd.DataFrame, prompts: list) -> dict[tuple[str, str], bool]:
    ok = lt.p_at_1(model_dir, prompts)
    return dict(zip(zip(rows["lang"], rows["uuid"]), ok))


def _evaluate(plan: pa.Table, langs: list[str]) -> dict:
    """The lab's own P@1 per language and group, and the count of counterfactual transfers."""
    p = plan.to_pandas()
    ev: dict = {"p1_planted": {}, "p1_by_group": {}, "truth_transferred": 0}
    for lg in langs:
        q = p[p["lang"] == lg]
        pl = q[(q["n_planted"] > 0) & ~q["group"].isin(lw.DETECTOR_GROUPS)]
        ev["p1_planted"][lg] = float(pl["lab_correct"].mean()) if len(pl) else 0.0
        away = q[(q["n_planted"] == 0) | (q["group"] == "background")]
        ev["p1_by_group"][lg] = {f"{g}/{f}": round(float(x["lab_correct"].mean()), 3)
                                 for (g, f), x in away.groupby(["group", "name_form"])}
    ev["truth_transferred"] = int(p["truth_transferred"].sum())
    ev["cf_p1_transfer_away"] = float(p[(p["group"] == "transfer") & (p["n_planted"] == 0)]
                                      ["lab_correct_counterfactual"].mean())
    return ev


def artifacts(cfg: RunConfig) -> LabArtifacts:
    """The built lab's model folder, dumps and mLAMA folder (ConfigError when not built)."""
    m = lab_dir(cfg) / MANIFEST
    if not m.is_file():
        raise ConfigError(f"the lab is not built under {lab_dir(cfg)}",
                          "run `factroots lab build` (or `factroots run`) first")
    data = json.loads(m.read_text(encoding="utf-8"))
    if "mlama_dir" not in data:
        raise ConfigError(f"the lab under {lab_dir(cfg)} was built by an older version",
                          "run `factroots lab build` again")
    return LabArtifacts(Path(data["model_dir"]), {k: list(v) for k, v in data["dumps"].items()},
                        Path(data["mlama_dir"]))


def with_seeds(cfg: RunConfig, seeds: int) -> RunConfig:
    """``cfg`` with a seed replicate of ``seeds`` full models in all (lab.seed, +1, ...)."""
    if seeds < 1:
        raise ConfigError(f"--seeds {seeds}: at least one seed is needed", "pass --seeds 2")
    more = [cfg.lab.seed + i for i in range(1, seeds)]
    return dataclasses.replace(cfg, lab=dataclasses.replace(cfg.lab, replicate_seeds=more))


def check(cfg: RunConfig | Plan) -> Path:
    """Compare the trace, probe and labels with the plan; write `lab_check` and check.md."""
    plan = plan_of(cfg)
    if not (lab_dir(plan.cfg) / "check.md").is_file():
        for lg in (*lab_langs(plan.cfg), POOLED):
            storage.fail_partition(plan.out, "lab_check", lg, "check.md is missing")
    return run_stage(CHECK, plan)


def _check(work: Work) -> None:
    cfg, out = work.cfg, work.out
    langs = lab_langs(cfg)
    have = {t: storage.read_table(out, t, langs) for t in CHECK_INPUTS}
    sig = (storage.read_table(out, "signatures", langs)
           if all(storage.is_done(out, "signatures", lg) for lg in langs) else None)
    result = build_lab_check(have["planted_facts"], have["cooccurrence"], have["status"],
                             have["easy_facts"], have["fact_labels"], langs=langs,
                             signatures=sig, k=cfg.neurons.overlap_k, facts=have["facts"])
    for lg in (*langs, POOLED):
        work.write("lab_check", result.filter(pc.equal(result["lang"], lg)), lg,
                   config={"window": cfg.trace.window})
    (lab_dir(cfg) / "check.md").write_text(check_markdown(result), encoding="utf-8")
    say(f"lab check: written to {storage.table_dir(out, 'lab_check')} and "
        f"{lab_dir(cfg) / 'check.md'}")


def _check_langs(plan: Plan) -> list[str]:
    return [*lab_langs(plan.cfg), POOLED]


def _check_key(plan: Plan, lang: str) -> dict:
    """The inputs of every lab language (the pooled row `all` has no partition of its own)."""
    langs = lab_langs(plan.cfg)
    return {t: {lg: (storage.read_manifest(plan.out, t, lg) or {}).get("fingerprint")
                for lg in langs} for t in (*CHECK_INPUTS, "signatures")}


CHECK_INPUTS = ("planted_facts", "cooccurrence", "status", "easy_facts", "fact_labels", "facts")
CHECK = Stage("lab check", ("lab_check",), _check, LAB_VERSION,
              key=_check_key, langs=_check_langs, per_lang=False, cross_lang=True,
              settings=lambda plan: {"k": plan.cfg.neurons.overlap_k})
