"""The main job: (lab build ->) facts -> trace -> probe -> neurons -> overlap -> interventions ->
label -> (lab check ->) report, and the plan every stage after the lab build runs on.

``plan(cfg)`` is the one place a config is resolved: with ``probe.model: lab`` (the default) it
points the facts stage at the lab's facts (its mLAMA-format folder), the probe at the built lab
model and the trace at the lab's corpus dumps, and picks the lab languages when ``langs`` is
empty. The lab build runs first, then the facts stage on the lab's facts. ``run`` calls each stage in turn under one lock and one
run report (``runner.session``), printing progress and each stage's wall time, and writes
``<out>/run_times.json``. Every stage skips the (table, language) partitions it finished before,
so a rerun after an interruption picks up where it stopped. A language that fails in a stage
is named in ``<out>/run_report.json``, the other stages go on, and the run ends non-zero.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

from factroots import runner
from factroots.config import LAB_MODEL, RunConfig
from factroots.errors import ConfigError
from factroots.runner import Plan


def uses_lab(cfg: RunConfig) -> bool:
    """True when the probed model is the embedded lab model."""
    return cfg.probe.model == LAB_MODEL


def _resolve_lab(cfg: RunConfig) -> RunConfig:
    """Point the facts stage at the lab's facts, the probe at the lab model and the trace at its
    dumps (lab languages without configured ``trace.dumps``); the trace's chunk tokenizer
    defaults to the lab model's."""
    from factroots.lab import job as lab_job

    art = lab_job.artifacts(cfg)
    dumps = dict(cfg.trace.dumps)
    for lang, paths in art.dumps.items():
        dumps.setdefault(lang, list(paths))
    trace = dataclasses.replace(cfg.trace, dumps=dumps,
                                chunk_tokenizer=cfg.trace.chunk_tokenizer or str(art.model_dir))
    probe = dataclasses.replace(cfg.probe, model=str(art.model_dir))
    return dataclasses.replace(lab_facts(cfg), trace=trace, probe=probe)


def lab_facts(cfg: RunConfig) -> RunConfig:
    """``cfg`` with the facts stage reading the built lab's facts folder (lab mode only)."""
    if not uses_lab(cfg):
        return cfg
    from factroots.lab import job as lab_job

    facts = dataclasses.replace(cfg.facts, mlama_dir=str(lab_job.artifacts(cfg).mlama_dir),
                                candidates_dir=None)
    return dataclasses.replace(cfg, facts=facts)


def _langs(cfg: RunConfig) -> RunConfig:
    """With the lab, run the lab languages unless ``langs`` is given (and then it must hold them)."""
    if not uses_lab(cfg):
        return cfg
    if not cfg.langs:
        return dataclasses.replace(cfg, langs=list(cfg.lab.langs))
    missing = [lg for lg in cfg.lab.langs if lg not in cfg.langs]
    if missing:
        raise ConfigError(f"lab languages {missing} are not among langs {cfg.langs}",
                          "add them to `langs` or set lab.langs to a subset of langs")
    return cfg


def plan(cfg: RunConfig | Plan) -> Plan:
    """The plan of a run (after the lab build): final config, output root, languages,
    relations. No stage after it sees the ``probe.model: lab`` placeholder."""
    if isinstance(cfg, Plan):
        return cfg
    cfg = _langs(cfg)
    return runner.plan_of(_resolve_lab(cfg) if uses_lab(cfg) else cfg)


def _say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def stages(cfg: RunConfig) -> list[tuple[str, Callable[[Plan], Path]]]:
    """The stages after the plan, in order (name, job taking the plan)."""
    from factroots.label import job as label_job
    from factroots.probe import job as probe_job
    from factroots.probe import job_interventions, job_neurons
    from factroots.report import job as report_job
    from factroots.trace import job as trace_job

    out: list[tuple[str, Callable[[Plan], Path]]] = [
        ("trace", trace_job.main), ("probe", probe_job.run), ("neurons", job_neurons.run_signatures),
        ("overlap", job_neurons.run_overlap), ("interventions", job_interventions.run),
        ("label", label_job.run)]
    if uses_lab(cfg):
        from factroots.lab import job as lab_job
        out.append(("lab check", lab_job.check))
    out.append(("report", lambda p: report_job.run(p.cfg)))
    return out


def run(cfg: RunConfig) -> Path:
    """Run every stage; return the path of the report (RunFailedError at the end when a
    (table, language) failed: the report then says which)."""
    cfg = _langs(cfg)
    times: dict[str, float] = {}
    t_all = time.perf_counter()
    out = cfg.path(cfg.out)
    result = out
    with runner.session(out):
        first: list[tuple[str, Callable]] = [("facts", _facts_job())]
        if uses_lab(cfg):  # first: the facts stage reads the lab's facts
            from factroots.lab import job as lab_job
            first = [("lab build", lab_job.build),
                     ("facts", lambda c: _facts_job()(lab_facts(c)))]
        todo = first + stages(cfg)
        the_plan: Plan | None = None
        for i, (name, job) in enumerate(todo, 1):
            _say(f"== stage {i}/{len(todo)}: {name} ==")
            t0 = time.perf_counter()
            if i <= len(first):
                result = job(cfg)
            else:
                the_plan = the_plan or plan(cfg)  # once: the lab exists only after its build
                result = job(the_plan)
            times[name] = round(time.perf_counter() - t0, 1)
            _say(f"{name}: done in {times[name]} s -> {result}")
        times["total"] = round(time.perf_counter() - t_all, 1)
        (out / "run_times.json").write_text(json.dumps(times, indent=1), encoding="utf-8")
        _say("wall time per stage: " + ", ".join(f"{k} {v} s" for k, v in times.items()))
    return result


def _facts_job() -> Callable[[RunConfig], Path]:
    from factroots.facts import job as facts_job
    return facts_job.run
