"""Cleaner quality and speed beside WikiExtractor 3.1 (``--no-templates``), on the same files.

For each of the 8 bundled languages (en bg bn el hy ja uk vi): the bundled sample
(src/factroots/data/wiki/) and, when present, the real dump of ../shared/data/wikipedia/ (or
../../shared), each written once as plain UTF-8 XML under bench/out/cleaner/ (the bg dump is
UTF-16: transcoded), so that both tools read the same bytes. Then, per language:

  markup     leftover-markup rate: sentences holding wiki or HTML markup (``{{ }} [[ ]] {| |}
             '' <tag> &entity;``, link options such as ``thumb|`` or ``250px``, a file or
             category prefix followed by ``|``), ours and WikiExtractor's
  lost       lost-text rate: WikiExtractor sentences (20 characters or more) with no near match
             in our text of the same page (under 80 % of its word 3-grams, or character 6-grams
             for ja, found in our page), split into what they are: a section heading (ours
             drops headings), markup (a WikiExtractor leftover), other (printed, to be judged)
  gained     the same the other way round: our sentences with no near match in WikiExtractor's
  chars      characters of text per page (pages both tools kept)
  speed      MB of XML per core-second, ours (the pure path: parse, clean, segment) and
             WikiExtractor (``--processes 1``, its child's CPU), alternated ``--rounds`` times

Both texts are cut into sentences by the same segmenter (ours: ``text.segment``), so the units
compare. Other engineers share this machine's 2 cores: the speed figures are paired ratios of
alternated runs, not absolute rates.
Usage: python bench/bench_cleaner.py [--rounds 2] [--only bundled|shared] [--examples 5]
"""

from __future__ import annotations

import argparse
import html
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from factroots.text import dumps, pagetext, segment, wikitext
from factroots.text.samples import sample_dump, sample_langs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sentences import cpu, run_child  # noqa: E402 - the shared CPU meters

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "cleaner"
SHARED = next((p for p in (ROOT.parent / "shared" / "data" / "wikipedia",
                           ROOT.parents[1] / "shared" / "data" / "wikipedia") if p.is_dir()), None)
SHARED_FILES = {"en": "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
                "bg": "bgwiki-latest-pages-articles-shortened.xml.bz2",
                **{lg: f"{lg}wiki-truncated-100k.xml.xz" for lg in ("bn", "el", "hy", "ja", "uk", "vi")}}
CHAR_GRAMS = {"ja", "zh", "th"}
_MARKUP = re.compile(r"\{\{|\}\}|\[\[|\]\]|\{\||\|\}|''|</?[a-zA-Z][a-zA-Z0-9]*[ />]|&[a-z]+;|"
                     r"\b(?:thumb|thumbnail|miniatur|mini|nhỏ|upright)\s*\||\b\d+\s*(?:px|пкс)\b")
_DOC = re.compile(r'<doc id="(\d+)"[^>]*title="([^"]*)">\n(.*?)</doc>', re.DOTALL)


def plain_xml(lang: str, src: Path, name: str) -> Path:
    """The dump as plain UTF-8 XML (written once)."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{lang}wiki-{name}.xml"
    if path.is_file():
        return path
    info = dumps.dump_info(str(src))
    with dumps.open_decompressed(src, info["codec"]) as f:
        data = f.read()
    if info["encoding"] != "utf-8":
        text = data.decode(info["encoding"])
        text = re.sub(r'(<\?xml[^>]*encoding=")[^"]*', r"\1utf-8", text, count=1)
        data = text.encode("utf-8")
    path.write_bytes(data)
    return path


def inputs(only: str | None) -> list[tuple[str, str, Path]]:
    """(lang, which, plain XML path) for every bundled sample and shared dump."""
    out = []
    for lang in sample_langs():
        if only in (None, "bundled"):
            out.append((lang, "bundled", plain_xml(lang, sample_dump(lang), "bundled")))
        if only in (None, "shared") and SHARED is not None and (SHARED / SHARED_FILES[lang]).is_file():
            out.append((lang, "shared", plain_xml(lang, SHARED / SHARED_FILES[lang], "shared")))
    return out


def ours(path: Path, lang: str) -> dict[int, list[str]]:
    """Our sentences per article of one dump (the pure path)."""
    ns = dumps.dump_info(str(path))["siteinfo"]["namespaces"]
    out = {}
    for part in dumps.plan_dump(str(path), lang):
        for rows in dumps.read_partition(part):
            for r in rows:
                if pagetext.is_article(r):
                    sents, _ = pagetext.page_sentences(r["wikitext"], r["wikitext_len"], lang,
                                                       namespaces=ns)
                    out[r["page_id"]] = [s for _, _, s in sents]
    return out


def run_ours(files: list[tuple[str, str, Path]]) -> tuple[float, dict]:
    t = cpu()
    got = {(lang, which): ours(path, lang) for lang, which, path in files}
    return cpu() - t, got


def run_wikiextractor(files: list[tuple[str, str, Path]], keep: Path | None) -> float:
    total = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for lang, which, path in files:
            dest = (keep or Path(tmp)) / f"{lang}-{which}"
            c, _, _ = run_child([sys.executable, "-m", "wikiextractor.WikiExtractor",
                                 "--no-templates", "--processes", "1", "-q", "-o", str(dest),
                                 str(path)])
            total += c
    return total


def wikiextractor_text(folder: Path, lang: str) -> dict[int, list[str]]:
    """WikiExtractor's sentences per page (its title line dropped, lines as paragraphs)."""
    out = {}
    for f in sorted(folder.rglob("wiki_*")):
        for pid, _title, body in _DOC.findall(f.read_text(encoding="utf-8")):
            lines = [html.unescape(x).strip() for x in body.split("\n")[1:]]
            paras = [x for x in lines if x]
            out[int(pid)] = [s for _, _, s in segment.split_paragraphs(paras, lang)]
    return out


def headings(path: Path, lang: str) -> dict[int, set[str]]:
    """The section headings of each article (WikiExtractor keeps them as sentences)."""
    out: dict[int, set[str]] = {}
    rx = re.compile(r"^=+\s*(.*?)\s*=+\s*$", re.MULTILINE)
    for part in dumps.plan_dump(str(path), lang):
        for rows in dumps.read_partition(part):
            for r in rows:
                if pagetext.is_article(r):
                    out[r["page_id"]] = {_norm(" ".join(wikitext.clean_wikitext(h)) or h)
                                         for h in rx.findall(r["wikitext"])}
    return out


def _norm(s: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", s.casefold()).split())


def _grams(s: str, lang: str) -> set:
    n = _norm(s)
    if lang in CHAR_GRAMS:
        n = n.replace(" ", "")
        return {n[i:i + 6] for i in range(max(1, len(n) - 5))}
    w = n.split()
    return {tuple(w[i:i + 3]) for i in range(max(1, len(w) - 2))}


def unmatched(a: list[str], b: list[str], lang: str) -> list[str]:
    """Sentences of ``a`` (20+ characters) with under 80 % of their n-grams in ``b``."""
    pool = set().union(*(_grams(s, lang) for s in b)) if b else set()
    out = []
    for s in a:
        if len(s) < 20:
            continue
        g = _grams(s, lang)
        if len(g & pool) < 0.8 * len(g):
            out.append(s)
    return out


def quality(lang: str, path: Path, mine: dict, theirs: dict, examples: int) -> dict:
    """The quality figures of one dump (pages both tools kept)."""
    pages = sorted(set(mine) & set(theirs))
    heads = headings(path, lang)
    q: Counter = Counter()
    other: list[str] = []
    for pid in pages:
        a, b = mine[pid], theirs[pid]
        q["pages"] += 1
        q["ours_sents"] += len(a)
        q["we_sents"] += len(b)
        q["ours_chars"] += sum(map(len, a))
        q["we_chars"] += sum(map(len, b))
        q["ours_markup"] += sum(bool(_MARKUP.search(s)) for s in a)
        q["we_markup"] += sum(bool(_MARKUP.search(s)) for s in b)
        q["we_long"] += sum(len(s) >= 20 for s in b)
        q["ours_long"] += sum(len(s) >= 20 for s in a)
        for s in unmatched(b, a, lang):
            if _norm(s.rstrip(".")) in heads.get(pid, set()):
                q["lost_heading"] += 1
            elif _MARKUP.search(s):
                q["lost_markup"] += 1
            else:
                q["lost_other"] += 1
                other.append(s)
        q["gained"] += len(unmatched(a, b, lang))
    q["examples"] = other[:: max(1, len(other) // examples)][:examples] if other else []
    return q


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2, help="alternated speed rounds (default 2)")
    ap.add_argument("--only", choices=("bundled", "shared"), default=None)
    ap.add_argument("--examples", type=int, default=4, help="lost sentences shown per dump")
    a = ap.parse_args()
    files = inputs(a.only)
    mb = sum(p.stat().st_size for _, _, p in files) / 1e6
    print(f"input: {len(files)} dumps, {mb:.1f} MB of XML; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores (shared with other engineers' jobs)")
    keep = OUT / "wikiextractor"
    subprocess.run(["rm", "-rf", str(keep)], check=True)
    speed = defaultdict(list)
    mine = None
    for i in range(a.rounds):  # alternated: ours, WikiExtractor, ours, ...
        c, got = run_ours(files)
        speed["ours"].append(c)
        mine = mine or got
        speed["we"].append(run_wikiextractor(files, keep if i == 0 else None))
        print(f"round {i + 1}: ours {mb / c:.2f} MB/core-s, WikiExtractor "
              f"{mb / speed['we'][-1]:.2f} MB/core-s, ratio {speed['we'][-1] / c:.2f}")
    ratios = [w / o for o, w in zip(speed["ours"], speed["we"])]
    print(f"speed, MB of XML per core-second: ours {mb / statistics.median(speed['ours']):.2f}, "
          f"WikiExtractor {mb / statistics.median(speed['we']):.2f}; ours / WikiExtractor "
          f"{statistics.median(ratios):.2f} (rounds {', '.join(f'{r:.2f}' for r in ratios)})")
    head = ("lang", "dump", "pages", "markup ours", "markup WE", "lost", "lost: heading",
            "lost: WE markup", "lost: other", "gained", "chars/page ours", "chars/page WE")
    print(" | ".join(head))
    tot: Counter = Counter()
    shown = []
    for lang, which, path in files:
        q = quality(lang, path, mine[(lang, which)], wikiextractor_text(keep / f"{lang}-{which}", lang),
                    a.examples)
        shown += [(lang, which, s) for s in q.pop("examples")]
        tot.update(q)
        print(_row(lang, which, q))
    print(_row("all", "", tot))
    print("lost, other (to judge):")
    for lang, which, s in shown:
        print(f"  {lang} {which}: {s[:220]!r}")


def _row(lang: str, which: str, q: Counter) -> str:
    lost = q["lost_heading"] + q["lost_markup"] + q["lost_other"]
    pct = lambda n, d: f"{100 * n / d:.2f} %" if d else "-"  # noqa: E731
    return " | ".join([lang, which, str(q["pages"]), pct(q["ours_markup"], q["ours_sents"]),
                       pct(q["we_markup"], q["we_sents"]), pct(lost, q["we_long"]),
                       pct(q["lost_heading"], q["we_long"]), pct(q["lost_markup"], q["we_long"]),
                       pct(q["lost_other"], q["we_long"]), pct(q["gained"], q["ours_long"]),
                       f"{q['ours_chars'] / max(1, q['pages']):.0f}",
                       f"{q['we_chars'] / max(1, q['pages']):.0f}"])


if __name__ == "__main__":
    main()
