"""The trace job's dump -> sentences path against the previous one, in the same run.

The previous path (commit f41275a: ``read_dumps(with_sentences=True)`` + ``build_sentences``,
Parquet written by the JVM) runs from a checkout of that commit given by ``--old-src``; this
tree's ``write_dumps`` from ``src/``. Each path runs in its own Spark child (local[2]), one cold
and two warm runs; rounds alternate the order, and Python's bz2 on the same dumps is timed at
the start of each round. Inputs: the dumps of ``bench_sentences.py --mb 50`` (run it first).
Usage: git worktree add /tmp/old f41275a && python bench/compare_job_paths.py --old-src /tmp/old/src
"""

import argparse
import glob
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_sentences import run_bz2, xml_mb  # noqa: E402 - bench/ is not a package

CHILD = r"""
import json, os, sys, time, shutil
from pathlib import Path
os.environ["PYSPARK_PYTHON"] = sys.executable
sys.path.insert(0, sys.argv[3])
from cpu_tree import tree_cpu
from pyspark.sql import SparkSession
from factroots.config import RunConfig
which = sys.argv[2]
spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
     .config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1")
     .config("spark.driver.memory", "1g").config("spark.sql.shuffle.partitions", "2")
     .config("spark.sql.execution.arrow.maxRecordsPerBatch", "256").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
dumps = {k: [v] for k, v in json.loads(sys.argv[1]).items()}
cfg = RunConfig()
out = Path("/tmp/oldnew") / which
res = []
for run in range(3):
    shutil.rmtree(out, ignore_errors=True)
    c0 = tree_cpu()
    if which == "old":
        from factroots.trace.dump_source import read_dumps
        from factroots.trace.sentences import build_sentences
        raw = read_dumps(spark, dumps, cfg, with_sentences=True)
        build_sentences(raw, cfg).write.mode("overwrite").option("compression", "zstd").partitionBy("lang").parquet(str(out))
    else:
        from factroots.trace.dump_source import write_dumps
        write_dumps(spark, dumps, cfg, out / "pages", out / "sentences")
    res.append(tree_cpu() - c0)
print(json.dumps({"cpu": res}))
spark.stop()
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old-src", required=True, help="src/ of a checkout of the previous commit")
    ap.add_argument("--dumps", default=str(HERE / "out" / "sentences" / "dump-50mb"))
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    paths = {Path(f).name[:2]: f for f in glob.glob(f"{a.dumps}/*.bz2") if "-index" not in f}
    mb = xml_mb({k: Path(v) for k, v in paths.items()})
    srcs = {"old": a.old_src, "new": str(HERE.parent / "src")}
    for rnd in range(a.rounds):
        b = run_bz2({k: Path(v) for k, v in paths.items()})
        line = [f"round {rnd + 1}: bz2 {mb / b:.1f} MB/core-s"]
        for which in ("old", "new") if rnd % 2 == 0 else ("new", "old"):
            env = dict(os.environ, PYTHONPATH=srcs[which])
            r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(paths), which, str(HERE)],
                               env=env, capture_output=True, text=True, check=True)
            d = json.loads(r.stdout.strip().splitlines()[-1])
            warm = sorted(d["cpu"][1:])
            line.append(f"{which} warm {mb / warm[1]:.1f}-{mb / warm[0]:.1f} MB/core-s "
                        f"({b / warm[1]:.2f}-{b / warm[0]:.2f} of bz2)")
        print("; ".join(line), flush=True)


if __name__ == "__main__":
    main()
