"""Dump -> sentences throughput, beside Python bz2 decompression and WikiExtractor, same run.

Builds realistic multistream dumps (one per language, 100 pages a stream, with index) by
replicating the real pages of the bundled samples (en bg bn el hy ja uk vi) under new ids, to
at least ``--mb`` MB of XML in total, under bench/out/. Then measures, in CPU seconds (all
processes, children included), MB of XML per core-second for:

  bz2          Python's bz2 decompression of the same files (the floor)
  ours/core    our pure path, one process: decompress, parse, clean, segment (dump -> sentences)
  spark        the Spark job in local mode (dumps -> sentences -> Parquet), CPU of the JVM and
               its Python workers: read_dumps + build_sentences cold (workers start) and
               warm, and the fused read (cleaning inside the data source) warm; also
               wall-clock x 2 cores (meaningless when the machine is shared)
  wikiextractor  python -m wikiextractor.WikiExtractor --no-templates --processes 1

and peak RSS of our pure path on a dump ``--mem-factor`` times smaller (flat memory check).
Usage: python bench/bench_sentences.py [--mb 50] [--no-spark] [--no-wikiextractor]
"""

from __future__ import annotations

import argparse
import bz2
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from factroots.text import dumps, pagetext
from factroots.text.multistream import write_multistream
from factroots.text.samples import sample_dump, sample_langs

OUT = Path(__file__).resolve().parent / "out" / "sentences"


def build_dumps(total_mb: float, folder: Path) -> dict[str, Path]:
    """One multistream dump per sample language, pages replicated to total_mb MB of XML."""
    folder.mkdir(parents=True, exist_ok=True)
    langs = sample_langs()
    per_lang = total_mb * 1e6 / len(langs)
    made = {}
    for lang in langs:
        path = folder / f"{lang}wiki-bench-pages-articles-multistream.xml.bz2"
        made[lang] = path
        if path.is_file() and (folder / f"{lang}.size").is_file() and \
                float((folder / f"{lang}.size").read_text()) >= per_lang:
            continue
        src = [r for p in dumps.plan_dump(str(sample_dump(lang)), lang)
               for rows in dumps.read_partition(p) for r in rows if r["wikitext"] is not None]
        info = dumps.dump_info(str(sample_dump(lang)))

        def pages(src=src, per_lang=per_lang):
            size, i = 0, 0
            while size < per_lang:
                r = src[i % len(src)]
                i += 1
                size += len(r["wikitext"].encode("utf-8")) + 450
                yield {"page_id": i, "rev_id": i, "title": f"{r['title']} ({i})",
                       "ns": r["namespace"], "text": r["wikitext"],
                       "redirect": "Target" if r["is_redirect"] else None}

        write_multistream(pages(), path, lang=lang, siteinfo=info["siteinfo"])
        (folder / f"{lang}.size").write_text(str(per_lang))
    return made


def xml_mb(paths: dict[str, Path]) -> float:
    total = 0
    for p in paths.values():
        with bz2.open(p, "rb") as f:
            while block := f.read(1 << 22):
                total += len(block)
    return total / 1e6


def cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def run_bz2(paths: dict[str, Path]) -> float:
    t = cpu()
    for p in paths.values():
        with bz2.open(p, "rb") as f:
            while f.read(1 << 22):
                pass
    return cpu() - t


def ours(paths: dict[str, Path]) -> tuple[int, int]:
    """Our pure path over the dumps; returns (articles, sentences)."""
    n_pages = n_sents = 0
    for lang, p in paths.items():
        ns = dumps.dump_info(str(p))["siteinfo"]["namespaces"]
        for part in dumps.plan_dump(str(p), lang):
            for rows in dumps.read_partition(part):
                for r in rows:
                    if r["reject"] or r["namespace"] != 0 or r["is_redirect"]:
                        continue
                    sents, _ = pagetext.page_sentences(r["wikitext"], r["wikitext_len"], lang,
                                                       namespaces=ns)
                    n_pages += 1
                    n_sents += len(sents)
    return n_pages, n_sents


def run_ours(paths: dict[str, Path]) -> tuple[float, int, int]:
    t = cpu()
    n_pages, n_sents = ours(paths)
    return cpu() - t, n_pages, n_sents


def run_child(args: list[str]) -> tuple[float, float, str]:
    """(CPU seconds of the child tree, wall seconds, stdout) of a child process."""
    t, w = cpu(), time.perf_counter()
    res = subprocess.run(args, capture_output=True, text=True, check=False)
    if res.returncode:
        raise RuntimeError(f"{args[:3]} failed: {res.stderr[-2000:]}")
    return cpu() - t, time.perf_counter() - w, res.stdout


def run_wikiextractor(paths: dict[str, Path]) -> float:
    total = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for lang, p in paths.items():
            c, _, _ = run_child([sys.executable, "-m", "wikiextractor.WikiExtractor", "--no-templates",
                                 "--processes", "1", "-q", "-o", f"{tmp}/{lang}", str(p)])
            total += c
    return total


SPARK_CHILD = """
import json, os, sys, time
os.environ["PYSPARK_PYTHON"] = sys.executable
from pyspark.sql import SparkSession
from factroots.config import RunConfig
from factroots.trace.dump_source import read_dumps, SPARK_CONF
from factroots.trace.sentences import build_sentences
paths, out = json.loads(sys.argv[1]), sys.argv[2]
b = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
     .config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1")
     .config("spark.driver.memory", "1g").config("spark.sql.shuffle.partitions", "2"))
for k, v in SPARK_CONF.items():
    b = b.config(k, v)
spark = b.getOrCreate()
spark.sparkContext.setLogLevel("ERROR")

sys.path.insert(0, sys.argv[3])  # bench/, for the shared CPU meter
from cpu_tree import tree_cpu
spark.range(4).selectExpr("id * 2").collect()  # JVM up, not counted
cfg = RunConfig()
res = {}
# cold: Python workers start and import; warm: they are reused; fused: one Python pass
for run, fused in (("cold", False), ("warm", False), ("fused", True), ("noop", True)):
    c0, t = tree_cpu(), time.perf_counter()
    raw = read_dumps(spark, {k: [v] for k, v in paths.items()}, cfg, with_sentences=fused)
    s = build_sentences(raw, cfg)
    if run == "noop":  # the same, computed but not written (no Parquet encoding)
        s.write.format("noop").mode("overwrite").save()
    else:
        s.write.mode("overwrite").partitionBy("lang").parquet(out)
    res[run + "_wall"], res[run + "_cpu"] = time.perf_counter() - t, tree_cpu() - c0
res["rows"] = spark.read.parquet(out).count()
print(json.dumps(res))
spark.stop()
"""


def run_spark(paths: dict[str, Path]) -> dict:
    c, wall, stdout = run_child([sys.executable, "-c", SPARK_CHILD,
                                 json.dumps({k: str(v) for k, v in paths.items()}),
                                 str(OUT / "spark-sentences"), str(Path(__file__).parent)])
    res = json.loads(stdout.strip().splitlines()[-1])
    return {"cpu": c, "wall": wall, **res}


MEM_CHILD = """
import json, resource, sys
sys.path.insert(0, sys.argv[2])
from bench_sentences import ours
from pathlib import Path
paths = {k: Path(v) for k, v in json.loads(sys.argv[1]).items()}
ours(paths)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_mb(paths: dict[str, Path]) -> float:
    _, _, out = run_child([sys.executable, "-c", MEM_CHILD,
                           json.dumps({k: str(v) for k, v in paths.items()}),
                           str(Path(__file__).resolve().parent)])
    return int(out.strip().splitlines()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=50.0, help="MB of XML in total (default 50)")
    ap.add_argument("--mem-factor", type=float, default=10.0, help="size ratio for the memory check")
    ap.add_argument("--no-spark", action="store_true")
    ap.add_argument("--no-wikiextractor", action="store_true")
    a = ap.parse_args()
    load0 = os.getloadavg()
    big = build_dumps(a.mb, OUT / f"dump-{a.mb:g}mb")
    small = build_dumps(a.mb / a.mem_factor, OUT / f"dump-{a.mb / a.mem_factor:g}mb")
    mb = xml_mb(big)
    print(f"input: {len(big)} multistream dumps, {mb:.1f} MB of XML, "
          f"{sum(p.stat().st_size for p in big.values()) / 1e6:.1f} MB bz2; "
          f"load average at start {load0[0]:.1f} on {os.cpu_count()} cores")
    rows = []
    t = run_bz2(big)
    rows.append(("Python bz2 decompression (floor)", mb / t, t))
    t, n_pages, n_sents = run_ours(big)
    rows.append((f"ours, pure path, 1 process ({n_pages} articles, {n_sents} sentences)", mb / t, t))
    if not a.no_wikiextractor:
        t = run_wikiextractor(big)
        rows.append(("WikiExtractor --no-templates --processes 1", mb / t, t))
    spark = None
    if not a.no_spark:
        spark = run_spark(big)
        names = {"cold": "read_dumps + build_sentences, cold (Python workers start)",
                 "warm": "read_dumps + build_sentences, warm",
                 "fused": "read_dumps(with_sentences=True), warm",
                 "noop": "the same into a noop sink (no Parquet encoding)"}
        for run, name in names.items():
            rows.append((f"Spark local[2] -> Parquet: {name}", mb / spark[f"{run}_cpu"],
                         spark[f"{run}_cpu"]))
        rows.append((f"Spark fused, wall-clock x 2 cores, machine shared ({spark['rows']} rows)",
                     mb / (2 * spark["fused_wall"]), 2 * spark["fused_wall"]))
    print(f"{'what':<78} {'MB XML/core-s':>13} {'core-s':>8}")
    for name, rate, secs in rows:
        print(f"{name:<78} {rate:>13.1f} {secs:>8.1f}")
    bz2_rate, our_rate = rows[0][1], rows[1][1]
    print(f"ours / bz2 = {our_rate / bz2_rate:.2f} (target >= 0.33)")
    if not a.no_wikiextractor:
        print(f"ours / WikiExtractor = {our_rate / rows[2][1]:.2f} (target >= 1.0)")
    small_mb, big_rss, small_rss = xml_mb(small), peak_rss_mb(big), peak_rss_mb(small)
    print(f"peak RSS, pure path: {small_rss:.0f} MB on {small_mb:.1f} MB of XML, "
          f"{big_rss:.0f} MB on {mb:.1f} MB (x{mb / small_mb:.1f} input, x{big_rss / small_rss:.2f} memory)")
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
