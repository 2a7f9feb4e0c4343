"""The whole trace job at scale (dump -> pages, sentences, [mentions], cooccurrence) beside
Python's bz2 decompression of the same files, in the same run.

Builds (or reuses, under bench/out/trace_scale/) an English multistream dump with its index of
``--mb`` MB of XML and one of ``--mb``/10, by repeating the real pages of the bundled English
sample under new ids, and takes all English mLAMA facts (the facts stage on the bundled mLAMA).
Then, in one local[2] session built as the trace job builds it (``trace.job.session``):

  cold    the job on the small input, Python workers starting (not used in the ratio)
  small   the job on the small input, warm
  big     the job on the big input, warm; Python's bz2 on the big file right before and after

each timed in CPU seconds read per process from the kernel (/proc: the driver, the JVM, the
Python workers), with the tasks' own split by step (read = bz2 + XML, sentences = clean +
segment, write = Parquet of pages and sentences, match = finding the names, pair = pairing
and chunking, from the cooccurrence ``_stats.json``). Prints per-stage core-s, output sizes, peak RSS,
and as its last line ``marginal: X MB/core-s, bz2 Y MB/core-s, ratio Z``: X is
(MB big - MB small) / (core-s big - core-s small), the per-MB rate once a run's fixed cost
(the intercept, also printed) is paid.

Usage: python bench/bench_trace_scale.py [--mb 100] [--tokenizer PATH|none] [--write-mentions]
"""

from __future__ import annotations

import argparse
import bz2
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_tree import peak_rss_mb, tree_cpu_by_kind  # noqa: E402
from sample_input import article_rows, grown_pages  # noqa: E402

from factroots.config import load_config  # noqa: E402
from factroots.text import dumps  # noqa: E402
from factroots.text.multistream import write_multistream  # noqa: E402
from factroots.text.samples import sample_dump  # noqa: E402

OUT = Path(__file__).resolve().parent / "out" / "trace_scale"
MBERT = Path("/work/shared/data/tokenizers/bert-base-multilingual-cased/tokenizer.json")


def build_input(mb: float, folder: Path) -> Path:
    """An English multistream dump (+ index) of at least ``mb`` MB of XML (reused if built)."""
    path = folder / f"enwiki-scale{mb:g}-pages-articles-multistream.xml.bz2"
    mark = path.with_suffix(".done")
    if path.is_file() and mark.is_file():
        return path
    src = article_rows("en")
    info = dumps.dump_info(str(sample_dump("en")))

    write_multistream(grown_pages(src, mb * 1e6), path, lang="en", siteinfo=info["siteinfo"], compresslevel=6)
    mark.write_text("ok")
    return path


def xml_mb(path: Path) -> float:
    """MB of XML in a dump (decompressed once; remembered beside it)."""
    memo = path.with_suffix(".mb")
    if memo.is_file():
        return float(memo.read_text())
    n = 0
    with bz2.open(path, "rb") as f:
        while block := f.read(1 << 22):
            n += len(block)
    memo.write_text(str(n / 1e6))
    return n / 1e6


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_bz2(path: Path) -> float:
    """CPU seconds of Python's bz2 decompressing ``path`` in this process."""
    t = self_cpu()
    with bz2.open(path, "rb") as f:
        while f.read(1 << 22):
            pass
    return self_cpu() - t


def facts_dir(folder: Path) -> Path:
    """The ``facts`` table of all English mLAMA facts (built once)."""
    out = folder / "facts_out"
    if not (out / "facts" / "lang=en" / "_SUCCESS").exists():
        from factroots.facts import job as facts_job
        facts_job.run(load_config(None, {"out": str(out), "langs": ["en"]}))
    return out / "facts"


def run_job(spark, dump: Path, folder: Path, name: str, tok: str | None,  # noqa: ANN001
            write_mentions: bool) -> dict:
    """One whole trace job into a fresh ``out``; its CPU by process kind and its report."""
    from factroots.trace import job
    out = folder / f"run-{name}"
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(facts_dir(folder), out / "facts")
    trace = {"dumps": {"en": [str(dump)]}, "write_mentions": write_mentions}
    if tok:
        trace["chunk_tokenizer"] = tok
    cfg = load_config(None, {"out": str(out), "langs": ["en"], "probe": {"model": "none"},
                             "trace": trace})
    before, drv0, wall = tree_cpu_by_kind(), self_cpu(), time.time()
    job.run(spark, cfg)
    after, drv1, wall = tree_cpu_by_kind(), self_cpu(), time.time() - wall
    driver = drv1 - drv0
    sizes = {t: sum(f.stat().st_size for f in (out / t).rglob("*.parquet")) / 1e6
             for t in ("pages", "sentences", "mentions", "cooccurrence") if (out / t).is_dir()}
    stats = json.loads((out / "cooccurrence" / "lang=en" / "_stats.json").read_text())
    res = {"jvm": after["jvm"] - before["jvm"], "driver": driver,
           "workers": after["python"] - before["python"] - driver, "wall": wall,
           "tasks": stats.get("task_cpu_s", {}), "sizes": sizes, "stats": stats,
           "rss": peak_rss_mb(), "driver_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    res["total"] = res["jvm"] + res["driver"] + res["workers"]
    shutil.rmtree(out, ignore_errors=True)
    return res


def stages(r: dict) -> dict[str, float]:
    """Core-s by stage: the tasks' steps, the rest of the workers, the JVM, the driver."""
    t = r["tasks"]
    steps = {"pages + sentences (read, clean, segment, write)":
             t.get("read", 0) + t.get("sentences", 0) + t.get("write", 0),
             "  read: bz2 + XML": t.get("read", 0), "  clean + segment": t.get("sentences", 0),
             "  Parquet pages + sentences": t.get("write", 0),
             "mentions (match names)": t.get("trace_match", 0),
             "co-occurrence (pair + chunk, in the tasks)": t.get("trace", 0) - t.get("trace_match", 0)}
    in_tasks = t.get("read", 0) + t.get("sentences", 0) + t.get("write", 0) + t.get("trace", 0)
    steps["Python workers outside the steps (PySpark, Arrow)"] = r["workers"] - in_tasks
    steps["JVM (scheduling, aggregation)"] = r["jvm"]
    steps["driver (plan, names, finish, commit)"] = r["driver"]
    steps["whole job"] = r["total"]
    return steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=float, default=100.0, help="MB of XML of the big input")
    ap.add_argument("--tokenizer", default=str(MBERT) if MBERT.is_file() else "none",
                    help="chunk tokenizer (tokenizer.json; none = whitespace chunks)")
    ap.add_argument("--write-mentions", action="store_true", help="also write `mentions`")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    load0 = os.getloadavg()
    t0 = time.time()
    small, big = build_input(args.mb / 10, OUT), build_input(args.mb, OUT)
    mb_small, mb_big = xml_mb(small), xml_mb(big)
    print(f"input: {mb_small:.1f} and {mb_big:.1f} MB of XML ({small.stat().st_size / 1e6:.1f}"
          f" / {big.stat().st_size / 1e6:.1f} MB bz2), built or found in {time.time() - t0:.0f} s;"
          f" load average {load0[0]:.1f} at start", flush=True)
    tok = None if args.tokenizer == "none" else args.tokenizer
    facts_dir(OUT)
    from factroots.trace import job
    cfg = load_config(None, {"out": str(OUT / "session"), "probe": {"model": "none"}})
    spark = job.session(cfg)
    spark.sparkContext.setLogLevel("ERROR")
    try:
        cold = run_job(spark, small, OUT, "cold", tok, args.write_mentions)
        warm_small = run_job(spark, small, OUT, "small", tok, args.write_mentions)
        bz_before = run_bz2(big)
        warm_big = run_job(spark, big, OUT, "big", tok, args.write_mentions)
        bz_after = run_bz2(big)
        bz_small = run_bz2(small)
    finally:
        spark.stop()
    load1 = os.getloadavg()
    runs = {"cold small": (cold, mb_small), "small": (warm_small, mb_small), "big": (warm_big, mb_big)}
    print(f"\nchunk tokenizer: {tok or 'whitespace'}; write_mentions: {args.write_mentions}; "
          f"load average {load0[0]:.1f} -> {load1[0]:.1f} (2 cores, shared)")
    print(f"\n{'core-s':<52}" + "".join(f"{k:>12}" for k in runs) + f"{'marginal':>12}")
    st = {k: stages(r) for k, (r, _) in runs.items()}
    for name in st["big"]:
        vals = [st[k][name] for k in runs]
        print(f"{name:<52}" + "".join(f"{v:>12.1f}" for v in vals) + f"{vals[2] - vals[1]:>12.1f}")
    print(f"{'wall s':<52}" + "".join(f"{r['wall']:>12.1f}" for r, _ in runs.values()))
    print(f"{'MB of XML per core-s, whole job':<52}"
          + "".join(f"{mb / r['total']:>12.2f}" for r, mb in runs.values()))
    bz2_rate = mb_big / ((bz_before + bz_after) / 2)
    print(f"\nbz2 on the same files: big {mb_big / bz_before:.1f} (before) / "
          f"{mb_big / bz_after:.1f} (after) MB/core-s, small {mb_small / bz_small:.1f}")
    s = warm_big["stats"]
    print(f"big run: {s['sentences']:,} sentences, {s['mentions']:,} mentions, "
          f"{s['pages_with_pairs']:,} pages with a subject-object pair, "
          f"{s['sentences_chunked']:,} sentences chunked, {s['present']:,} of {s['in']:,} facts "
          f"present ({s['window']})")
    for k, (r, _) in runs.items():
        print(f"outputs, {k}: " + ", ".join(f"{t} {v:.1f} MB" for t, v in r["sizes"].items())
              + f"; peak RSS JVM {r['rss']['jvm']:.0f} MB, largest Python worker "
              f"{r['rss']['python_worker']:.0f} MB, driver {r['driver_rss']:.0f} MB")
    d_core = warm_big["total"] - warm_small["total"]
    marginal = (mb_big - mb_small) / d_core
    fixed = warm_small["total"] - mb_small / marginal
    pair = st["big"]["co-occurrence (pair + chunk, in the tasks)"]
    sent = st["big"]["pages + sentences (read, clean, segment, write)"]
    print(f"fixed cost of a run: {fixed:.1f} core-s; co-occurrence / pages+sentences in the "
          f"tasks: {pair / sent:.2f}; whole big run {mb_big / warm_big['total']:.2f} MB/core-s"
          f" = {mb_big / warm_big['total'] / bz2_rate:.3f} of bz2")
    print(f"marginal: {marginal:.2f} MB/core-s, bz2 {bz2_rate:.1f} MB/core-s, "
          f"ratio {marginal / bz2_rate:.3f}")


if __name__ == "__main__":
    main()
