"""Run with: spark_jobs/submit.sh --master spark://host:7077 --conf conf/cluster.yaml

Wikipedia dumps -> pages -> sentences -> mentions -> cooccurrence for the facts under `out`.
The code lives in factroots.trace.job; this file only parses arguments, starts the session and
checks that the executors run the driver's code and dependencies (factroots.trace.executors).
See spark_jobs/README.md for shipping the package and its compiled dependencies.
"""

import argparse
import logging
import sys

from pyspark.sql import SparkSession

from factroots import pipeline
from factroots.config import load_config
from factroots.errors import FactrootsError
from factroots.trace import executors, job

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conf", required=True, help="YAML preset, e.g. conf/cluster.yaml")
    ap.add_argument("--out", default=None, help="output root (overrides `out`)")
    ap.add_argument("--langs", default=None, help="languages, comma-separated")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    langs = args.langs.split(",") if args.langs else None
    cfg = pipeline.resolve_lab(load_config(args.conf, {"out": args.out, "langs": langs}))
    spark = SparkSession.builder.appName("factroots-trace").getOrCreate()
    try:
        executors.check(spark)
        print(job.run(spark, cfg))
    except FactrootsError as exc:  # one line, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        spark.stop()
