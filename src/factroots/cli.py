"""The ``factroots`` command: one verb per stage, each a thin call into ``<stage>.job``.

Every verb after the lab build runs on the plan (``pipeline.plan``), under the output root's
lock (``runner.session``); any error is one line with its fix, and the exit status is non-zero
when any (table, language) failed (``<out>/run_report.json`` says which).
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

import click

from factroots import __version__, pipeline, runner
from factroots.config import RunConfig, describe, load_config, parse_set, to_dict
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
        set_values = dict(parse_set(item) for item in sets)
        for key in list(kwargs):
            if key.startswith("o_"):
                value = kwargs.pop(key)
                if value is not None:  # an option beats a --set of the same key
                    name = key[2:].replace("__", ".")
                    overrides[name] = value
                    set_values.pop(name, None)
        cfg = load_config(conf, overrides, set_values)
        if dry_run:
            click.echo(json.dumps(to_dict(cfg), indent=2))
            return
        with runner.session(cfg.path(cfg.out)):  # the lock, and one report per command
            return fn(cfg, **kwargs)

    return wrapper


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FactrootsError as exc:
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:  # e.g. the disk filled while writing a report
            fix = ("free disk space or use another --out" if exc.errno == 28
                   else "check the path and its permissions")
            raise click.ClickException(f"{exc.filename or ''}: {exc.strerror or exc} "
                                       f"(fix: {fix})") from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="factroots")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Trace the roots of facts in multilingual language models.

    Stages write Parquet tables partitioned by `lang` under one output root:
    facts -> trace -> probe -> neurons -> overlap -> intervene -> label -> report.
    `factroots run` does all of them;
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
    from factroots.trace import job
    click.echo(job.main(pipeline.plan(cfg)))


@main.command()
@click.option("--model", "o_probe__model", default=None, help="Hub id or local path of a masked LM.")
@click.option("--device", "o_probe__device", default=None,
              type=click.Choice(["auto", "cpu", "cuda", "mps"]), help="Where to run.")
@click.option("--dtype", "o_probe__dtype", default=None,
              type=click.Choice(["float32", "bfloat16", "float16"]), help="Weights' precision on GPU.")
@click.option("--batch-size", "o_probe__batch_size", default=None, type=int,
              help="Prompts per forward pass (halved on GPU out-of-memory).")
@click.option("--shard", "o_probe__shard", default=None, help="i/n: run the i-th of n shards.")
@click.option("--neurons/--no-neurons", default=True,
              help="Also build signatures (and, unsharded, the overlap).")
@common
def probe(cfg: RunConfig, neurons: bool) -> None:
    """Probe a masked LM on mLAMA (full-match), then capture neuron signatures."""
    from factroots.probe import job, job_neurons
    plan = pipeline.plan(cfg)
    click.echo(job.run(plan))
    if neurons:
        click.echo(job_neurons.run(plan))


@main.command()
@common
def overlap(cfg: RunConfig) -> None:
    """Build the overlap of neuron signatures over every language (after all probe shards)."""
    from factroots.probe import job_neurons
    click.echo(job_neurons.run_overlap(pipeline.plan(cfg)))


@main.command()
@common
def intervene(cfg: RunConfig) -> None:
    """Switch off each fact's neurons found in one language; measure it in the others."""
    from factroots.probe import job_interventions
    click.echo(job_interventions.run(pipeline.plan(cfg)))


@main.command()
@common
def label(cfg: RunConfig) -> None:
    """Label every (fact, language): status, easy facts, transferred / shared / independent."""
    from factroots.label import job
    click.echo(job.run(pipeline.plan(cfg)))


@main.command()
@common
def report(cfg: RunConfig) -> None:
    """Write report.md and report.html with PNG figures."""
    from factroots.report import job
    click.echo(job.run(pipeline.plan(cfg).cfg))


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
    if seeds is not None:  # the replicate: train the other seeds (cached), rewrite the truth
        cfg = job.with_seeds(cfg, seeds)
        job.build(cfg)
    click.echo(job.check(pipeline.plan(cfg)))


@main.command()
@common
def run(cfg: RunConfig) -> None:
    """The main job: facts -> lab build -> trace -> probe -> neurons -> overlap -> intervene ->
    label -> report."""
    path = pipeline.run(cfg)
    click.echo(f"report: {path}")


@main.command("config")
def config_help() -> None:
    """List every config key with its default and help."""
    for key, default, help_ in describe():
        click.echo(f"{key} = {default}\n    {help_}")


if __name__ == "__main__":  # pragma: no cover
    main()
