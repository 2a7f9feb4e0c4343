"""Benchmark the trace's matching and the whole trace job (issue 4), printing each figure beside
its baseline measured in the same run.

1. Matching throughput on one core, outside Spark: 100,000 names (the real English mLAMA
   labels padded with synthetic names) over the English sentences of the bundled sample,
   repeated to a few MB. Baseline: pyahocorasick on casefolded raw text with a per-hit Python
   word-boundary check (the naive way), and a bare ``str.casefold`` pass (a ceiling).
2. The whole trace job (``factroots.trace.job.run``) in local mode on multistream dumps of the
   eight sample languages replicated to 24 MB of XML (``bench_sentences.build_dumps``): MB of
   XML per core-second (CPU of driver, JVM and Python workers), beside Python's bz2
   decompression of the same files.
3. A Python worker's peak memory (RSS) and build time against the number of names, each size
   in a fresh process.

Run: python bench/bench_match.py [--quick]
"""

from __future__ import annotations

import bz2
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
from cpu_tree import tree_cpu

from factroots import storage
from factroots.config import load_config

CORES = 2  # local[2]


def synthetic_names(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    alpha = "bcdfghjklmnpqrstvwxzaeiou"
    return [" ".join("".join(rng.choice(alpha) for _ in range(rng.randint(4, 9)))
                     for _ in range(rng.randint(1, 3))) for _ in range(n)]


def names_for(out: Path, lang: str, n: int) -> list[str]:
    """The real mLAMA labels of ``lang`` padded with synthetic names to ``n`` normalised names."""
    from factroots.text.normalize import normalize_many

    facts = storage.read_table(out, "facts", [lang])
    labels = sorted(set(facts["sub_label"].to_pylist()) | set(facts["obj_label"].to_pylist()))
    names = {x for x in normalize_many(labels, lang) if len(x) >= 2}
    pad = normalize_many(synthetic_names(n), lang)
    names.update(pad[: max(0, n - len(names))])
    return sorted(names)[:n] if len(names) > n else sorted(names)


def run_job(work: Path, mb: float) -> dict:
    """The trace job on multistream dumps replicated from the samples to ``mb`` MB of XML."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_sentences import (
        build_dumps,  # trace-1's realistic dumps, cached in bench/out
    )

    from factroots.facts import job as facts_job
    from factroots.trace import job

    paths = build_dumps(mb, Path(__file__).parent / "out" / "sentences" / f"dumps-{mb:g}")
    langs = sorted(paths)
    out = work / "out"
    facts_job.run(load_config(None, {"out": str(out), "langs": langs}))
    c0 = time.process_time()
    xml = sum(len(bz2.decompress(p.read_bytes())) for p in paths.values()) / 1e6
    bz2_rate = xml / (time.process_time() - c0)
    cfg = load_config(None, {"out": str(out), "langs": langs, "probe.model": "none",
                             "trace.dumps": {lg: [str(paths[lg])] for lg in langs}})
    spark = job.session(cfg)
    spark.range(4).selectExpr("id * 2").collect()  # JVM up, not counted
    try:
        c0, t0 = tree_cpu(), time.perf_counter()
        job.run(spark, cfg)
        cpu, wall = tree_cpu() - c0, time.perf_counter() - t0
    finally:
        spark.stop()
    rows = sum(storage.read_manifest(out, "sentences", lg)["rows"] for lg in langs)
    return {"xml": xml, "bz2": bz2_rate, "cpu": cpu, "wall": wall, "rows": rows, "out": out,
            "langs": langs}


def naive(texts: list[str], names: list[str]) -> int:
    """Baseline: automaton on raw casefolded text, then a Python boundary check per hit."""
    import ahocorasick

    a = ahocorasick.Automaton()
    for i, n in enumerate(names):
        a.add_word(n, (i, len(n)))
    a.make_automaton()
    hits = 0
    for t in texts:
        low = t.casefold()
        for end, (_, ln) in a.iter(low):
            s = end - ln + 1
            if (s == 0 or not low[s - 1].isalnum()) and (end + 1 == len(low) or not low[end + 1].isalnum()):
                hits += 1
    return hits


def bench_matching(out: Path, n_names: int, target_mb: float) -> None:
    from factroots.text.match import Matcher

    sents = storage.read_table(out, "sentences", ["en"])["text"].to_pylist()
    reps = max(1, int(target_mb * 1e6 / sum(len(s.encode()) for s in sents)))
    texts = sents * reps
    mb = sum(len(s.encode()) for s in texts) / 1e6
    names = names_for(out, "en", n_names)
    t0 = time.process_time()
    m = Matcher.build("en", "word", names)
    build = time.process_time() - t0
    batches = [pa.array(texts[i:i + 10_000]) for i in range(0, len(texts), 10_000)]
    rates = {}
    for label, fn in (("find (source offsets)", m.find), ("find_normalized", m.find_normalized)):
        t0 = time.process_time()
        n_hits = sum(len(fn(b)) for b in batches)
        rates[label] = (mb / (time.process_time() - t0), n_hits)
    t0 = time.process_time()
    n_naive = naive(texts, names)
    rates["baseline: raw automaton + Python boundary check"] = (mb / (time.process_time() - t0), n_naive)
    t0 = time.process_time()
    for t in texts:
        t.casefold()
    rates["ceiling: str.casefold only"] = (mb / (time.process_time() - t0), 0)
    print(f"\n1. matching, one core, {len(names):,} names ({mb:.1f} MB of English sentences), "
          f"automaton build {build:.2f} s CPU")
    for label, (rate, hits) in rates.items():
        print(f"   {label:50s} {rate:6.1f} MB/s  ({hits:,} hits)")


_MEM_CHILD = r"""
import json, resource, sys, time
sys.path[:0] = [{src!r}]
from bench_match import names_for
from factroots.text.match import Matcher
from pathlib import Path
names = names_for(Path({out!r}), "en", {n})
import gc; gc.collect()
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
r0 = rss()
t0 = time.process_time()
m = Matcher.build("en", "word", names)
dt = time.process_time() - t0
r1 = rss()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"n": len(names), "base_mb": r0, "after_mb": r1, "peak_mb": peak, "build_s": dt}}))
"""


def bench_memory(out: Path, sizes: list[int]) -> None:
    print("\n3. one Python worker's memory against the number of names (fresh process each)")
    print(f"   {'names':>9} {'RSS before':>11} {'RSS after':>10} {'automaton':>10} {'peak RSS':>9} "
          f"{'build':>7}")
    for n in sizes:
        code = _MEM_CHILD.format(src=str(Path(__file__).parent), out=str(out), n=n)
        res = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                        text=True, check=True).stdout.strip().splitlines()[-1])
        print(f"   {res['n']:>9,} {res['base_mb']:>9.0f}MB {res['after_mb']:>8.0f}MB "
              f"{res['after_mb'] - res['base_mb']:>8.0f}MB {res['peak_mb']:>7.0f}MB {res['build_s']:>6.2f}s")


def main() -> None:
    quick = "--quick" in sys.argv
    mb = 6.0 if quick else 24.0
    with tempfile.TemporaryDirectory() as tmp:
        r = run_job(Path(tmp), mb)
        print(f"2. trace job (dumps -> pages -> sentences -> mentions -> cooccurrence), local[{CORES}], "
              f"{len(r['langs'])} languages, {r['xml']:.1f} MB of XML, {r['rows']:,} sentences")
        print(f"   ours, CPU of driver + JVM + Python workers   {r['xml'] / r['cpu']:6.2f} MB of XML "
              f"per core-second ({r['cpu']:.0f} core-s)")
        print(f"   ours, wall x {CORES} cores                        {r['xml'] / (r['wall'] * CORES):6.2f} "
              f"MB of XML per core-second ({r['wall']:.0f} s)")
        print(f"   baseline: Python bz2 decompression only      {r['bz2']:6.1f} MB of XML per core-second")
        bench_matching(r["out"], 100_000, 2.0 if quick else 8.0)
        bench_memory(r["out"], [10_000, 100_000] if quick else [10_000, 100_000, 300_000])


if __name__ == "__main__":
    main()
