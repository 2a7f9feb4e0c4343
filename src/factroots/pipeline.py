"""The main job: (lab build ->) facts -> trace -> probe -> neurons -> interventions -> label ->
(lab check ->) report.

``run`` calls each stage's job in turn, printing progress and each stage's wall time, and writes
``<out>/run_times.json``. Every stage skips the (table, language) partitions it finished before,
so a rerun after an interruption picks up where it stopped. With ``probe.model: lab`` (the
default) the lab is built first (cached under ``<out>/lab``) and ``resolve_lab`` points the
facts stage at the lab's facts (its mLAMA-format folder), the probe at the lab model and the
trace at the lab's corpus dumps.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

from factroots.config import RunConfig
from factroots.errors import ConfigError

LAB = "lab"


def uses_lab(cfg: RunConfig) -> bool:
    """True when the probed model is the embedded lab model."""
    return cfg.probe.model == LAB


def resolve_lab(cfg: RunConfig) -> RunConfig:
    """With ``probe.model: lab``, point facts, probe and trace at the built lab.

    The facts stage reads the lab's facts (``facts.mlama_dir``: the fictional world and the
    background sample); lab languages without configured ``trace.dumps`` get the lab's corpus
    dumps; the trace's chunk tokenizer defaults to the lab model's. Other configs are returned
    unchanged.
    """
    if not uses_lab(cfg):
        return cfg
    from factroots.lab import job as lab_job

    art = lab_job.artifacts(cfg)
    dumps = dict(cfg.trace.dumps)
    for lang, paths in art.dumps.items():
        dumps.setdefault(lang, list(paths))
    trace = dataclasses.replace(cfg.trace, dumps=dumps,
                                chunk_tokenizer=cfg.trace.chunk_tokenizer or str(art.model_dir))
    probe = dataclasses.replace(cfg.probe, model=str(art.model_dir))
    facts = dataclasses.replace(cfg.facts, mlama_dir=str(art.mlama_dir), candidates_dir=None)
    return dataclasses.replace(cfg, facts=facts, trace=trace, probe=probe)


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


def _say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def stages(cfg: RunConfig) -> list[tuple[str, Callable[[RunConfig], Path]]]:
    """The stages of the main job for ``cfg``, in order (name, job taking the resolved config)."""
    from factroots.facts import job as facts_job
    from factroots.label import job as label_job
    from factroots.probe import job as probe_job
    from factroots.report import job as report_job
    from factroots.trace import job as trace_job

    out: list[tuple[str, Callable[[RunConfig], Path]]] = []
    if uses_lab(cfg):  # first: the facts stage reads the lab's facts
        from factroots.lab import job as lab_job
        out.append(("lab build", lab_job.build))
    out += [("facts", facts_job.run), ("trace", trace_job.main), ("probe", probe_job.run),
            ("neurons", probe_job.run_neurons),
            ("interventions", probe_job.run_interventions),  # #16: the causal test
            ("label", label_job.run)]
    if uses_lab(cfg):
        out.append(("lab check", lab_job.check))
    out.append(("report", report_job.run))
    return out


def run(cfg: RunConfig) -> Path:
    """Run every stage; return the path of the report."""
    cfg = _langs(cfg)
    plan = stages(cfg)
    times: dict[str, float] = {}
    t_all = time.perf_counter()
    result = Path(cfg.path(cfg.out))
    resolved: RunConfig | None = None  # the lab's paths exist only once it is built
    for i, (name, job) in enumerate(plan, 1):
        _say(f"== stage {i}/{len(plan)}: {name} ==")
        t0 = time.perf_counter()
        if name == "lab build":
            result = job(cfg)
        else:
            resolved = resolved or resolve_lab(cfg)
            result = job(resolved)
        times[name] = round(time.perf_counter() - t0, 1)
        _say(f"{name}: done in {times[name]} s -> {result}")
    times["total"] = round(time.perf_counter() - t_all, 1)
    out = cfg.path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "run_times.json").write_text(json.dumps(times, indent=1), encoding="utf-8")
    _say("wall time per stage: " + ", ".join(f"{k} {v} s" for k, v in times.items()))
    return result
