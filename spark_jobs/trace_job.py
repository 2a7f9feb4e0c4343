"""Run with: spark-submit spark_jobs/trace_job.py --conf conf/cluster.yaml

Wikipedia dumps -> pages -> sentences -> mentions -> cooccurrence for the facts under `out`.
The code lives in factroots.trace.job; this file only parses arguments and starts the session.
See spark_jobs/README.md for shipping the package and its compiled dependencies.
"""

import argparse
import logging
import sys

from pyspark.sql import SparkSession

from factroots import pipeline
from factroots.config import load_config
from factroots.errors import FactrootsError
from factroots.trace import job

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conf", required=True, help="YAML preset, e.g. conf/cluster.yaml")
    ap.add_argument("--out", default=None, help="output root (overrides `out`)")
    ap.add_argument("--langs", default=None, help="languages, comma-separated")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    langs = args.langs.split(",") if args.langs else None
    try:  # one line and a non-zero exit when a language fails (<out>/run_report.json)
        plan = pipeline.plan(load_config(args.conf, {"out": args.out, "langs": langs}))
        spark = SparkSession.builder.appName("factroots-trace").getOrCreate()
        try:
            print(job.run(spark, plan))
        finally:
            spark.stop()
    except FactrootsError as exc:
        sys.exit(f"Error: {exc}")
