"""The ``factroots`` command: one verb per stage, each a thin call into ``<stage>.job``."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

import click

from factroots import __version__
from factroots.config import RunConfig, describe, load_config, to_dict
from factroots.errors import FactrootsError


def _split(value: str | None) -> list[str] | None:
    return [v for v in value.replace(",", " ").split() if v] if value else None


def common(fn: Callable) -> Callable:
    """Options every verb shares: --conf, --out, --langs, --relations, --set, --dry-run."""

    @click.option("--conf", "conf", type=click.Path(dir_okay=False), default=None,
                  help="YAML preset, e.g. conf/default.yaml (defaults when omitted).")
    @click.option("--out", default=None, help="Output root (overrides `out`).")
    @click.option("--langs", default=None, help="Languages, comma-separated (overrides `langs`).")
    @click.option("--relations", default=None, help="Relations, comma-separated.")
    @click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                  help="Override any config key, e.g. --set probe.batch_size=64 (YAML value).")
    @click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")
    @functools.wraps(fn)
    def wrapper(conf, out, langs, relations, sets, dry_run, **kwargs):
        overrides: dict[str, Any] = {"out": out, "langs": _split(langs),
                                     "relations": _split(relations)}
        for s in sets:
            key, _, raw = s.partition("=")
            import yaml
            overrides[key.strip()] = yaml.safe_load(raw)
        for key in list(kwargs):
            if key.startswith("o_"):
                value = kwargs.pop(key)
                if value is not None:
                    overrides[key[2:].replace("__", ".")] = value
        cfg = load_config(conf, overrides)
        if dry_run:
            click.echo(json.dumps(to_dict(cfg), indent=2))
            return
        return fn(cfg, **kwargs)

    return wrapper


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FactrootsError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="factroots")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Trace the roots of facts in multilingual language models.

    Stages write Parquet tables partitioned by `lang` under one output root:
    facts -> trace -> probe -> neurons -> intervene -> label -> report. `factroots run` does all of them;
    `factroots lab` builds and checks the controlled experiment (the embedded default model).
    """
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)


@main.command()
@click.option("--mlama-dir", "o_facts__mlama_dir", default=None,
              help="Read your own mLAMA-format directory (<lang>/<relation>.jsonl, "
                   "<lang>/templates.jsonl) instead of the shipped mLAMA 1.1.")
@click.option("--candidates-dir", "o_facts__candidates_dir", default=None,
              help="Candidate lists for --mlama-dir (TREx_multilingual_objects/<lang>.json, "
                   "GoogleRE_objects/<lang>.json); default: those folders inside --mlama-dir, "
                   "else each relation's distinct objects.")
@common
def facts(cfg: RunConfig) -> None:
    """Write the `facts`, `templates` and `candidates` tables from mLAMA."""
    from factroots.facts import job
    click.echo(job.run(cfg))


@main.command()
@common
def trace(cfg: RunConfig) -> None:
    """Trace facts in Wikipedia dumps with Spark (local mode): pages -> co-occurrence."""
    from factroots import pipeline
    from factroots.trace import job
    click.echo(job.main(pipeline.resolve_lab(cfg)))


@main.command()
@click.option("--model", "o_probe__model", default=None, help="Hub id or local path of a masked LM.")
@click.option("--device", "o_probe__device", default=None,
              type=click.Choice(["auto", "cpu", "cuda", "mps"]), help="Where to run.")
@click.option("--dtype", "o_probe__dtype", default=None,
              type=click.Choice(["float32", "bfloat16", "float16"]), help="Weights' precision on GPU.")
@click.option("--batch-size", "o_probe__batch_size", default=None, type=int,
              help="Prompts per forward pass (halved on GPU out-of-memory).")
@click.option("--shard", "o_probe__shard", default=None, help="i/n: run the i-th of n shards.")
@click.option("--neurons/--no-neurons", default=True, help="Also build signatures and overlap.")
@common
def probe(cfg: RunConfig, neurons: bool) -> None:
    """Probe a masked LM on mLAMA (full-match), then capture neuron signatures."""
    from factroots import pipeline
    from factroots.probe import job
    cfg = pipeline.resolve_lab(cfg)
    click.echo(job.run(cfg))
    if neurons:
        click.echo(job.run_neurons(cfg))


@main.command()
@common
def intervene(cfg: RunConfig) -> None:
    """Switch off each fact's neurons found in one language; measure it in the others."""
    from factroots import pipeline
    from factroots.probe import job
    click.echo(job.run_interventions(pipeline.resolve_lab(cfg)))


@main.command()
@common
def label(cfg: RunConfig) -> None:
    """Label every (fact, language): status, easy facts, transferred / shared / independent."""
    from factroots import pipeline
    from factroots.label import job
    click.echo(job.run(pipeline.resolve_lab(cfg)))


@main.command()
@common
def report(cfg: RunConfig) -> None:
    """Write report.md and report.html with PNG figures."""
    from factroots import pipeline
    from factroots.report import job
    click.echo(job.run(pipeline.resolve_lab(cfg)))


@main.group()
def lab() -> None:
    """The controlled experiment: plant facts, train a small MLM, check the labels."""


@lab.command("build")
@common
def lab_build(cfg: RunConfig) -> None:
    """Plan, write the corpus as a dump, train the tokenizer and the lab MLM (cached)."""
    from factroots.lab import job
    click.echo(job.build(cfg))


@lab.command("check")
@click.option("--seeds", type=int, default=None,
              help="full models in the seed replicate (e.g. 2: trains seed+1 if not cached, "
                   "and a transfer must survive both)")
@common
def lab_check(cfg: RunConfig, seeds: int | None) -> None:
    """Compare trace and labels with the lab plan (run after `factroots run`)."""
    from factroots.lab import job
    click.echo(job.check(cfg) if seeds is None else job.check_with_seeds(cfg, seeds))


@main.command()
@common
def run(cfg: RunConfig) -> None:
    """The main job: facts -> lab build -> trace -> probe -> neurons -> label -> report."""
    from factroots import pipeline
    path = pipeline.run(cfg)
    click.echo(f"report: {path}")


@main.command("config")
def config_help() -> None:
    """List every config key with its default and help."""
    for key, default, help_ in describe():
        click.echo(f"{key} = {default}\n    {help_}")


if __name__ == "__main__":  # pragma: no cover
    main()
