"""The report stage: read every output table under ``out``, draw the figures, write the report.

Writes ``<out>/<report.dir>/report.md`` (always), ``report.html`` (when ``html`` is among
``report.formats``) and ``figures/*.png``. Missing stages become notes in the report.
"""

from __future__ import annotations

import logging
from pathlib import Path

from factroots import storage
from factroots.config import RunConfig
from factroots.report.figures import write_figures
from factroots.report.paper import reference_p1
from factroots.report.report import build_report
from factroots.report.results import Results, load_results, recorded

log = logging.getLogger(__name__)


def describe_run(res: Results, cfg: RunConfig) -> dict:
    """What was run, as recorded in the manifests (falling back to the current config)."""
    probe = recorded(res, "predictions", "probe") or {"model": cfg.probe.model}
    trace = recorded(res, "status", "trace") or {}
    presence = {}
    for m in res.manifests.get("status", {}).values():
        presence = (m.get("inputs") or {}).get("presence") or presence
    label = recorded(res, "fact_labels", "label") or {}
    neurons = recorded(res, "fact_labels", "neurons") or {}
    traced = sorted(res.manifests.get("status", {}))
    dumps = trace.get("dumps") or {}
    return {
        "model": probe.get("model", cfg.probe.model),
        "languages": f"{len(res.langs)}: {', '.join(res.langs) or '(none)'}",
        "protocol": f"{label.get('protocol', cfg.label.protocol)} "
                    f"({label.get('match', cfg.label.match)}-match counts as correct)",
        "presence in Wikipedia": (f"co-occurrence in the same {presence.get('window')} at least "
                                  f"{presence.get('min_count')} time(s)") if presence
                                 else "unknown (no trace recorded)",
        "dumps": ", ".join(f"{k}: {len(v) if isinstance(v, list) else v}" for k, v in
                           sorted(dumps.items())) or "as configured in the trace stage",
        "neurons": f"top-{neurons.get('overlap_k', cfg.neurons.overlap_k)} of the "
                   f"{neurons.get('site', cfg.neurons.site)} signatures over "
                   + (f"{res.neurons:,} neurons" if res.neurons else "an unrecorded number of "
                      "neurons"),
        "shared rule": _shared_rule(label, cfg),
        "labelled languages": ", ".join(traced) or "(label stage not run)",
        "code version": storage.code_version(),
    }


def _shared_rule(label: dict, cfg: RunConfig) -> str:
    """The null, threshold, correction and transfer controls the label stage used."""
    def get(key: str) -> object:
        return label.get(key, getattr(cfg.label, key))

    null = ("fact-anchored, stratified: other facts of the relation with the same object / "
            "another object" if get("null_rule") == "stratified"
            else f"pooled: {get('null_samples')} random same-relation pairs per language pair")
    return (f"J above the {get('null_percentile')}th percentile of the null ({null}); "
            f"{get('correction')}-corrected p ≤ {get('alpha')} over a fact's partners; "
            f"independent at or below the {get('independent_quantile')}th percentile with "
            f"≥ {get('min_null')} null values; transfer controls: sibling, prior > "
            f"{get('max_prior')}, source evidence {get('transfer_evidence')}; "
            f"identical spellings: {get('identical_spellings')}")


def run(cfg: RunConfig) -> Path:
    """Write the report of the run under ``cfg.out``; return the path of report.md."""
    out = cfg.path(cfg.out)
    res = load_results(out, cfg.langs or None)
    folder = Path(cfg.report.dir)
    folder = folder if folder.is_absolute() else out / folder
    folder.mkdir(parents=True, exist_ok=True)
    reference = reference_p1(str(describe_run(res, cfg)["model"]))
    figs = write_figures(res, folder / "figures", top=cfg.report.top_langs,
                         reference=reference[1])
    for note in res.notes:
        log.warning("report: %s", note)
    return build_report(res, describe_run(res, cfg), figs, folder, formats=cfg.report.formats,
                        min_facts=cfg.report.min_facts, top=cfg.report.top_langs,
                        reference=reference)
