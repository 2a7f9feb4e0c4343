"""Dump -> sentences throughput, beside Python bz2 decompression and WikiExtractor, same run.

Builds realistic multistream dumps (one per language, 100 pages a stream, with index) by
replicating the real pages of the bundled samples (en bg bn el hy ja uk vi) under new ids, to
at least ``--mb`` MB of XML in total, under bench/out/. Then measures, in CPU seconds (all
processes, children included), MB of XML per core-second for:

  bz2          Python's bz2 decompression of the same files (the floor), in one process, and
               in two processes at once (half the files each), as a two-core job runs
  ours/core    our pure path, one process: decompress, parse, clean, segment (dump -> sentences)
  spark        in local mode, CPU of the JVM and its Python workers: the trace job's path
               (write_dumps: each task decompresses, parses, cleans, segments and writes its
               pages and sentences Parquet files; the JVM gets counters only): cold on the
               small input (Python workers start and import), then warm on the big, the small
               and the big input again; "warm" is the mean of the two big runs and "per MB" is
               (big - small) / (MB big - MB small), the cost per MB without the fixed cost of
               a job (query planning, task start-up), which a real dump (GBs) amortises; the
               DataFrame API (read_dumps + build_sentences, the JVM writes Parquet) warm, in
               the first round; also wall-clock x 2 cores. The session is the trace job's own
               (``trace.job.session``: ``trace.local_jit: quick``, C1-only JIT); the warm runs
               are repeated with ``local_jit: full`` (the JVM's default C1 + C2) beside them
  wikiextractor  python -m wikiextractor.WikiExtractor --no-templates --processes 1

and peak RSS of our pure path and of the Spark job's Python workers and JVM on the small input
(``--mem-factor`` times smaller) and the big one (flat memory check).
Every contender runs once per round (``--rounds``, default 3), one after the other, and the
report gives each round and the median: this machine's speed drifts over minutes, so ratios
are taken within a round, where the contenders ran minutes apart at most.
Usage: python bench/bench_sentences.py [--mb 50] [--rounds 3] [--mem-check | --mem-only] [--no-spark]
                                       [--no-wikiextractor] [--no-full-jit]
"""

from __future__ import annotations

import argparse
import bz2
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from sample_input import article_rows, grown_pages  # bench/, beside this script

from factroots.text import dumps, pagetext
from factroots.text.multistream import write_multistream
from factroots.text.samples import sample_dump, sample_langs

OUT = Path(__file__).resolve().parent / "out" / "sentences"


def build_dumps(total_mb: float, folder: Path, repeat: int = 1) -> dict[str, Path]:
    """One multistream dump per sample language, pages replicated to total_mb MB of XML;
    ``repeat`` > 1: the whole streams of that input written ``repeat`` times (under new ids),
    so that the bigger input has the same streams, only more of them (the memory check)."""
    folder.mkdir(parents=True, exist_ok=True)
    langs = sample_langs()
    per_lang = total_mb * 1e6 / len(langs)
    made = {}
    for lang in langs:
        path = folder / f"{lang}wiki-bench-pages-articles-multistream.xml.bz2"
        made[lang] = path
        mark = f"{per_lang} x{repeat}" if repeat > 1 else str(per_lang)
        if path.is_file() and (folder / f"{lang}.size").is_file() and (
                (folder / f"{lang}.size").read_text() == mark if repeat > 1
                else float((folder / f"{lang}.size").read_text().split()[0]) >= per_lang):
            continue
        src = article_rows(lang)
        info = dumps.dump_info(str(sample_dump(lang)))

        def pages(src=src, per_lang=per_lang):  # noqa: ANN202
            return grown_pages(src, per_lang)

        if repeat > 1:  # a dump of fewer than 100 pages is one stream: keep it one
            base = list(pages())
            per_stream = min(100, len(base))
            write_multistream(_repeated(base, repeat, per_stream), path, lang=lang,
                              siteinfo=info["siteinfo"], pages_per_stream=per_stream)
        else:
            write_multistream(pages(), path, lang=lang, siteinfo=info["siteinfo"])
        (folder / f"{lang}.size").write_text(mark)
    return made


def _repeated(pages: list[dict], repeat: int, per_stream: int) -> Iterator[dict]:
    """The full streams of ``pages`` (a partial last stream left out), ``repeat`` times, under
    new ids."""
    base = pages[: len(pages) // per_stream * per_stream]
    for k in range(repeat):
        for p in base:
            i = k * len(base) + p["page_id"]
            yield dict(p, page_id=i, rev_id=i, title=f"{p['title']} #{k}")


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


BZ2_CHILD = """
import bz2, sys
for p in sys.argv[1:]:
    with bz2.open(p, "rb") as f:
        while f.read(1 << 22):
            pass
"""


def run_bz2_parallel(paths: dict[str, Path]) -> float:
    """The same decompression in two processes at once, half the files each: the floor under
    the conditions of a two-core job (on this machine, work on both cores runs slower)."""
    files = [str(p) for p in paths.values()]
    t = cpu()
    procs = [subprocess.Popen([sys.executable, "-c", BZ2_CHILD, *files[i::2]]) for i in (0, 1)]
    for pr in procs:
        if pr.wait():
            raise RuntimeError("bz2 child failed")
    return cpu() - t


def ours(paths: dict[str, Path]) -> tuple[int, int]:
    """Our pure path over the dumps; returns (articles, sentences)."""
    n_pages = n_sents = 0
    for lang, p in paths.items():
        ns = dumps.dump_info(str(p))["siteinfo"]["namespaces"]
        for part in dumps.plan_dump(str(p), lang):
            for rows in dumps.read_partition(part):
                for r in rows:
                    if not pagetext.is_article(r):
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
import json, os, shutil, sys, time
from pathlib import Path
os.environ["PYSPARK_PYTHON"] = sys.executable
from factroots.config import load_config
from factroots.trace import job as trace_job
from factroots.trace.dump_source import read_dumps, write_dumps, SPARK_CONF
from factroots.trace.sentences import build_sentences
big, small, out, full = (json.loads(sys.argv[1]), json.loads(sys.argv[2]), Path(sys.argv[3]),
                         sys.argv[5] == "full")
# the trace job's own session (local[2]), with its JIT setting (trace.local_jit = argv 6)
cfg = load_config(None, {"trace.local_jit": sys.argv[6], "trace.spark_conf": {
    "spark.ui.enabled": "false", "spark.driver.memory": "1g"}})
spark = trace_job.session(cfg)
spark.sparkContext.setLogLevel("ERROR")

sys.path.insert(0, sys.argv[4])  # bench/, for the shared CPU and memory meters
from cpu_tree import peak_rss_mb, tree_cpu, tree_cpu_by_kind
from bench_sentences import run_bz2
spark.range(4).selectExpr("id * 2").collect()  # JVM up, not counted
res = {}

def job(run, paths, bracket=False):
    shutil.rmtree(out, ignore_errors=True)
    if bracket:  # Python's bz2 on the same files right before the run (and after, below)
        res[run + "_bz2"] = run_bz2({k: Path(v) for k, v in paths.items()})
    c0, t = tree_cpu_by_kind(), time.perf_counter()
    stats = write_dumps(spark, {k: [v] for k, v in paths.items()}, cfg, out / "pages",
                        out / "sentences")
    res[run + "_wall"] = time.perf_counter() - t
    c1 = tree_cpu_by_kind()
    res[run + "_jvm"], res[run + "_py"] = c1["jvm"] - c0["jvm"], c1["python"] - c0["python"]
    res[run + "_cpu"] = res[run + "_jvm"] + res[run + "_py"]
    if bracket:
        res[run + "_bz2"] = (res[run + "_bz2"] + run_bz2({k: Path(v) for k, v in paths.items()})) / 2
    return sum(s["sentences"] for s in stats["sentences"].values())

# the job's path: cold on the small input (Python workers start and import), then warm
# big, small, big: the difference between big and small is the per-MB cost without the fixed
# cost of a job (planning, task start-up)
job("cold", small)
res["rss_small"] = peak_rss_mb()
res["rows"] = job("big1", big, True)
job("small", small)
job("big2", big, True)
res["rss"] = peak_rss_mb()
if full:
    # the DataFrame API: raw pages through the JVM, cleaned by mapInArrow, Parquet by the JVM
    for k, v in SPARK_CONF.items():
        spark.conf.set(k, v)
    c0, t = tree_cpu(), time.perf_counter()
    raw = read_dumps(spark, {k: [v] for k, v in big.items()}, cfg)
    build_sentences(raw, cfg).write.mode("overwrite").partitionBy("lang").parquet(str(out / "df"))
    res["df_wall"], res["df_cpu"] = time.perf_counter() - t, tree_cpu() - c0
    assert spark.read.parquet(str(out / "df")).count() == res["rows"]
print(json.dumps(res))
spark.stop()
"""


def run_spark(big: dict[str, Path], small: dict[str, Path], full: bool, jit: str = "quick"
              ) -> dict:
    """The Spark runs in a child process (full: also the DataFrame API path), with the JVM's
    JIT setting ``jit`` (``trace.local_jit``)."""
    _, _, stdout = run_child([sys.executable, "-c", SPARK_CHILD,
                              json.dumps({k: str(v) for k, v in big.items()}),
                              json.dumps({k: str(v) for k, v in small.items()}),
                              str(OUT / "spark-out"), str(Path(__file__).parent),
                              "full" if full else "job", jit])
    return json.loads(stdout.strip().splitlines()[-1])


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


def one_round(big: dict[str, Path], small: dict[str, Path], mb: float, small_mb: float,
              a: argparse.Namespace, first: bool) -> dict:
    """Core-seconds of every contender on ``big``, measured one after the other."""
    r: dict = {"bz2": run_bz2(big), "bz2_parallel": run_bz2_parallel(big)}
    r["ours"], r["articles"], r["sentences"] = run_ours(big)
    if not a.no_wikiextractor:
        r["wikiextractor"] = run_wikiextractor(big)
    if not a.no_spark:
        sp = run_spark(big, small, first)
        r["spark_warm"] = (sp["big1_cpu"] + sp["big2_cpu"]) / 2
        # ours / bz2 with bz2 timed in the seconds around each run (the machine's speed drifts
        # up to 2x within a minute: this pairs the two as closely as one core allows)
        r["spark_vs_adjacent_bz2"] = [sp[f"big{i}_bz2"] / sp[f"big{i}_cpu"] for i in (1, 2)]
        # per MB without a job's fixed cost, as core-seconds for the big input
        r["spark_marginal"] = (r["spark_warm"] - sp["small_cpu"]) / (mb - small_mb) * mb
        for kind in ("jvm", "py"):  # where a warm run's CPU goes
            r[f"spark_warm_{kind}"] = (sp[f"big1_{kind}"] + sp[f"big2_{kind}"]) / 2
        r["spark_cold"] = sp["cold_cpu"] * mb / small_mb
        if "df_cpu" in sp:
            r["spark_df"] = sp["df_cpu"]
        r["spark_wall2"] = sp["big1_wall"] + sp["big2_wall"]  # mean wall x 2 cores
        r["spark_rows"], r["spark_rss"], r["spark_rss_small"] = sp["rows"], sp["rss"], sp["rss_small"]
        if not a.no_full_jit:  # the same job with the JVM's default JIT (C1 + C2)
            sp = run_spark(big, small, False, "full")
            r["spark_full_jit"] = (sp["big1_cpu"] + sp["big2_cpu"]) / 2
            r["spark_full_jit_jvm"] = (sp["big1_jvm"] + sp["big2_jvm"]) / 2
    return r


ROWS = [("bz2", "Python bz2 decompression (floor)"),
        ("bz2_parallel", "  the same in 2 processes at once (the conditions of a 2-core job)"),
        ("ours", "ours, pure path, 1 process"),
        ("wikiextractor", "WikiExtractor --no-templates --processes 1"),
        ("spark_warm", "Spark local[2], the trace job's path (write_dumps), warm"),
        ("spark_marginal", "  the same, per MB beyond a job's fixed cost (big - small)"),
        ("spark_warm_py", "  core-s of the warm run in its Python workers"),
        ("spark_warm_jvm", "  core-s of the warm run in its JVM (mostly JIT compiling)"),
        ("spark_cold", "  the same, cold, on the small input (Python workers start)"),
        ("spark_full_jit", "  the same, warm, with trace.local_jit: full (the JVM's C1 + C2)"),
        ("spark_full_jit_jvm", "  core-s of that run in its JVM"),
        ("spark_df", "Spark local[2], DataFrame API (read_dumps + build_sentences), warm"),
        ("spark_wall2", "Spark job's path, wall-clock x 2 cores")]


def report(rounds: list[dict], mb: float) -> None:
    """Each round's figures, the median over rounds, and the targets (ratios within a round)."""
    keys = [(k, n) for k, n in ROWS if k in rounds[0]]
    head = "".join(f"  round {i + 1:>2}" for i in range(len(rounds)))
    print(f"{'MB of XML per core-second':<70}{head}    median")
    for k, name in keys:
        rates = [r[k] if name.startswith("  core-s") else mb / r[k] for r in rounds if k in r]
        cells = "".join(f"{x:>10.1f}" for x in rates) + " " * 10 * (len(rounds) - len(rates))
        print(f"{name:<70}{cells}{statistics.median(rates):>10.1f}")
    for who, k in (("pure path", "ours"), ("Spark job", "spark_warm"),
                   ("Spark job per MB", "spark_marginal"),
                   ("Spark job, full JIT", "spark_full_jit")):
        if k not in rounds[0]:
            continue
        vs_bz2 = [r["bz2"] / r[k] for r in rounds]
        vs_par = [r["bz2_parallel"] / r[k] for r in rounds]
        line = (f"{who}: ours / bz2 = {statistics.median(vs_bz2):.2f} "
                f"(rounds {', '.join(f'{x:.2f}' for x in vs_bz2)}; target >= 0.33; "
                f"/ bz2 on 2 cores {statistics.median(vs_par):.2f})")
        if "wikiextractor" in rounds[0]:
            vs_we = [r["wikiextractor"] / r[k] for r in rounds]
            line += (f"; ours / WikiExtractor = {statistics.median(vs_we):.2f} "
                     f"(rounds {', '.join(f'{x:.2f}' for x in vs_we)}; target >= 1.0)")
        print(line)
    if "spark_vs_adjacent_bz2" in rounds[0]:
        pairs = [x for r in rounds for x in r["spark_vs_adjacent_bz2"]]
        print(f"Spark job, bz2 timed around each warm run: ours / bz2 = "
              f"{statistics.median(pairs):.2f} (runs {', '.join(f'{x:.2f}' for x in pairs)}; "
              f"lowest {min(pairs):.2f}; target >= 0.33)")


def mem_check(big: dict[str, Path], mb: float, small: dict[str, Path], a: argparse.Namespace,
              spark_lo: dict | None) -> None:
    """Peak memory on the big input and on its streams repeated --mem-factor times (the same
    streams, ten times as many: peak memory is bounded by the largest stream, so an input with
    larger streams would measure the input, not the job)."""
    n = int(a.mem_factor)
    huge = build_dumps(a.mb, OUT / f"dump-{a.mb:g}mb-x{n}", repeat=n)
    huge_mb, big_rss, huge_rss = xml_mb(huge), peak_rss_mb(big), peak_rss_mb(huge)
    print(f"memory check: the big input's full streams x{n}: {huge_mb:.1f} MB of XML")
    print(f"peak RSS, pure path: {big_rss:.0f} MB on {mb:.1f} MB, {huge_rss:.0f} MB on "
          f"{huge_mb:.1f} MB (x{huge_mb / mb:.1f} input, x{huge_rss / big_rss:.2f} memory)")
    if a.no_spark:
        return
    lo = spark_lo or run_spark(big, small, False)["rss"]
    hi = run_spark(huge, small, False)["rss"]
    for kind in ("python_worker", "jvm"):
        print(f"peak RSS, Spark job's path, largest {kind}: {lo[kind]:.0f} MB after "
              f"{mb:.1f} MB, {hi[kind]:.0f} MB after {huge_mb:.1f} MB "
              f"(x{hi[kind] / lo[kind]:.2f} memory)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=50.0, help="MB of XML in total (default 50)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds of all measurements; medians are reported (default 3)")
    ap.add_argument("--mem-factor", type=float, default=10.0,
                    help="size ratio of the big input to the small one (default 10)")
    ap.add_argument("--mem-check", action="store_true",
                    help="also measure peak memory on an input --mem-factor times the big one "
                         "(the big input's streams, repeated)")
    ap.add_argument("--mem-only", action="store_true",
                    help="only the memory check (no throughput rounds)")
    ap.add_argument("--no-spark", action="store_true")
    ap.add_argument("--no-wikiextractor", action="store_true")
    ap.add_argument("--no-full-jit", action="store_true",
                    help="skip the Spark run with trace.local_jit: full")
    a = ap.parse_args()
    load0 = os.getloadavg()
    big = build_dumps(a.mb, OUT / f"dump-{a.mb:g}mb")
    small = build_dumps(a.mb / a.mem_factor, OUT / f"dump-{a.mb / a.mem_factor:g}mb")
    mb = xml_mb(big)
    print(f"input: {len(big)} multistream dumps, {mb:.1f} MB of XML, "
          f"{sum(p.stat().st_size for p in big.values()) / 1e6:.1f} MB bz2; "
          f"load average at start {load0[0]:.1f} on {os.cpu_count()} cores")
    small_mb = xml_mb(small)
    if a.mem_only:
        mem_check(big, mb, small, a, None)
        return
    rounds = [one_round(big, small, mb, small_mb, a, i == 0) for i in range(a.rounds)]
    r0 = rounds[0]
    print(f"{r0['articles']} articles, {r0['sentences']} sentences"
          + (f" (Spark: {r0['spark_rows']})" if "spark_rows" in r0 else "")
          + f"; small input {small_mb:.1f} MB of XML")
    report(rounds, mb)
    big_rss, small_rss = peak_rss_mb(big), peak_rss_mb(small)
    print(f"peak RSS, pure path: {small_rss:.0f} MB on {small_mb:.1f} MB of XML, "
          f"{big_rss:.0f} MB on {mb:.1f} MB (x{mb / small_mb:.1f} input, x{big_rss / small_rss:.2f} memory)")
    if a.mem_check:
        mem_check(big, mb, small, a, r0.get("spark_rss"))
    if not a.no_spark:
        for kind in ("python_worker", "jvm"):
            lo, hi = r0["spark_rss_small"][kind], r0["spark_rss"][kind]
            print(f"peak RSS, Spark job's path, largest {kind}: {lo:.0f} MB on {small_mb:.1f} MB, "
                  f"{hi:.0f} MB after {mb:.1f} MB (x{hi / lo:.2f} memory)")
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
