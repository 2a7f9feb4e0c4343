"""Run with: python probing/probe_job.py --conf conf/paper.yaml --shard i/n [--device cuda]

Probes one shard of the languages on one GPU (or CPU): `queries`, `predictions`, then the
neuron tables. The code lives in `factroots.probe`; this file only parses arguments.
"""

import argparse
import sys

from factroots import pipeline, runner
from factroots.config import load_config
from factroots.errors import FactrootsError
from factroots.probe import job, job_neurons


def main() -> None:
    p = argparse.ArgumentParser(description="Probe one shard of the languages.")
    p.add_argument("--conf", required=True, help="YAML preset, e.g. conf/paper.yaml")
    p.add_argument("--shard", default="0/1", help="i/n: this job's share of the languages")
    p.add_argument("--device", default=None, help="auto, cpu, cuda or mps (pick a GPU with CUDA_VISIBLE_DEVICES)")
    p.add_argument("--out", default=None, help="output root (overrides `out`)")
    p.add_argument("--no-neurons", action="store_true", help="skip signatures (and overlap: "
                   "unsharded only; after n shards run `factroots overlap`)")
    a = p.parse_args()
    try:
        plan = pipeline.plan(load_config(a.conf, {"probe.shard": a.shard, "out": a.out,
                                                  "probe.device": a.device}))
        with runner.session(plan.out):  # one lock and report for both
            print(job.run(plan))
            if not a.no_neurons:
                print(job_neurons.run(plan))
    except FactrootsError as exc:
        sys.exit(f"Error: {exc}")


if __name__ == "__main__":
    main()
