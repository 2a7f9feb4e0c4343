"""Pure co-occurrence logic for one page: which facts' subject and object meet in which window.

Input: the page's mentions ``(sentence_id, chunk, uri, role, start, end)`` and, for the page's
language, ``facts_by_sub``: subject uri -> [(uuid, object uri)]. A subject mention and an
object mention co-occur in a window (sentence, chunk, document) when both lie in it and their
spans are disjoint (different sentences, or no overlap within one sentence). At most ``cap``
mentions per sentence take part (the first by position), so a list of 500 countries cannot
blow up the pairs. Output: ``(uuid, window, ev)`` once per co-occurrence window, where ``ev``
is the window's first sentence that mentions the subject or the object.

``PartitionTracer`` applies the same rules to a partition's sentences as they are made, without
a mentions table: it finds the names (``factroots.text.match``), pairs them page by page and
keeps per-fact partial counts, merged over partitions by one small aggregation.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from factroots.text.chunking import sentence_chunks
from factroots.text.match import Matcher, best_mentions
from factroots.text.normalize import source_spans

WINDOWS = ("sentence", "chunk", "document")
Mention = tuple  # (sentence_id, chunk, uri, role, start, end)


def cap_mentions(mentions: Iterable[Mention], cap: int) -> list[Mention]:
    """Keep the first ``cap`` mentions of each sentence (by start, longest first)."""
    out, count = [], {}  # type: ignore[var-annotated]
    for m in sorted(mentions, key=lambda m: (m[0], m[4], -m[5], m[2], m[3])):
        n = count.get(m[0], 0)
        if n < cap:
            out.append(m)
        count[m[0]] = n + 1
    return out


def _disjoint(a: Mention, b: Mention) -> bool:
    return a[5] <= b[4] or b[5] <= a[4]


def page_hits(mentions: list[Mention], facts_by_sub: dict, cap: int) -> list[tuple[str, str, int]]:
    """(uuid, window, ev) for every window of this page where a fact co-occurs."""
    mentions = cap_mentions(mentions, cap)
    objs: dict[str, list[Mention]] = {}
    subs: dict[str, list[Mention]] = {}
    for m in mentions:
        (objs if m[3] == "object" else subs).setdefault(m[2], []).append(m)
    out: list[tuple[str, str, int]] = []
    for sub_uri, s_list in subs.items():
        for uuid, obj_uri in facts_by_sub.get(sub_uri, ()):
            o_list = objs.get(obj_uri)
            if o_list:
                out += _fact_hits(uuid, s_list, o_list)
    return out


def _fact_hits(uuid: str, s_list: list[Mention], o_list: list[Mention]) -> list[tuple[str, str, int]]:
    s_by: dict[int, list[Mention]] = {}
    o_by: dict[int, list[Mention]] = {}
    for m in s_list:
        s_by.setdefault(m[0], []).append(m)
    for m in o_list:
        o_by.setdefault(m[0], []).append(m)
    pair_sents = {sid for sid in s_by.keys() & o_by.keys()
                  if any(_disjoint(a, b) for a in s_by[sid] for b in o_by[sid])}
    out = [(uuid, "sentence", sid) for sid in sorted(pair_sents)]
    s_units: dict = {}
    o_units: dict = {}
    for m in s_list:
        s_units.setdefault(m[1], set()).add(m[0])
    for m in o_list:
        o_units.setdefault(m[1], set()).add(m[0])
    for window, su, ou in (("chunk", s_units, o_units), ("document", {0: s_by.keys()},
                                                          {0: o_by.keys()})):
        for u in sorted(su.keys() & ou.keys()):
            ss, os_ = su[u], ou[u]
            # one single shared sentence: they meet only through a disjoint pair there
            if len(ss) == 1 and len(os_) == 1 and set(ss) == set(os_) \
                    and next(iter(ss)) not in pair_sents:
                continue
            out.append((uuid, window, min(min(ss), min(os_))))
    return out


@dataclass
class LanguageNames:
    """What a tracer needs of one language: its matcher (None: no names), the (uri, role)s of
    each name, and its facts ``(uuid, sub_uri, obj_uri)``."""

    matcher: Matcher | None
    targets: list
    facts: list
    by_sub: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.by_sub:
            for uuid, s, o in self.facts:
                self.by_sub.setdefault(s, []).append((uuid, o))


class PartitionTracer:
    """Mentions and co-occurrence of one partition's pages, fed sentence batches in page order
    (a page whole within one batch), kept as per-fact partial counts (``partials``).

    The same rules as ``page_hits`` over the ``mentions`` table: mentions deduplicated per
    (sentence, uri, role, start), at most ``cap`` per sentence paired, and a page is cut into
    chunks (``chunking.sentence_chunks``, up to its last needed sentence) only when some fact
    has a subject and an object mention on it: chunk co-occurrence implies document
    co-occurrence, so every other page has no window to count.
    """

    def __init__(self, names: LanguageNames, *, cap: int, window: str, k: int,
                 chunk_size: int, tokenizer: Any = None) -> None:
        self.names, self.cap, self.window, self.k = names, cap, window, k
        self.chunk_size, self.tokenizer = chunk_size, tokenizer
        self.mention_counts: dict[tuple[str, str], int] = {}  # (uri, role) -> mentions
        self.cooc: dict[str, list[int]] = {}  # uuid -> [sentence, chunk, document]
        self.evidence: dict[str, list[int]] = {}  # uuid -> ev of ``window`` (k smallest kept)
        self.counts: dict[str, int] = {"mentions": 0, "mentions_over_cap": 0,
                                       "pages_with_pairs": 0, "sentences_chunked": 0}
        self.cpu = {"match": 0.0, "pair": 0.0}  # CPU seconds: finding names, pairing them

    def add(self, page_ids: list[int], sentence_ids: list[int], texts: list[str],
            keep_mentions: bool = False) -> dict[str, list] | None:
        """Trace one batch of sentences; with ``keep_mentions``, its mention rows
        (sentence_id, page_id, uri, role, start, end, strictness: sorted by sentence_id, uri,
        role, start)."""
        matcher = self.names.matcher
        if matcher is None or not texts:
            return None
        t_start = time.process_time()
        if keep_mentions:  # the stored mentions: offsets into the original sentences
            hits, self._shifted = matcher.find(texts), None
        else:  # only pairs need original offsets (for their chunk): mapped there
            hits, self._shifted = matcher.find_mixed(texts)
        best = best_mentions(hits, self.names.targets)
        keys = sorted(best)
        t_found = time.process_time()
        self.cpu["match"] += t_found - t_start
        first: dict[int, int] = {}
        for t, p in enumerate(page_ids):
            first.setdefault(p, t)
        i, n = 0, len(keys)
        while i < n:
            page = page_ids[keys[i][0]]
            j = i
            while j < n and page_ids[keys[j][0]] == page:
                j += 1
            self._page(keys[i:j], best, sentence_ids, texts, first[page], page)
            i = j
        self.cpu["pair"] += time.process_time() - t_found
        if not keep_mentions:
            return None
        return {"sentence_id": [sentence_ids[k[0]] for k in keys],
                "page_id": [page_ids[k[0]] for k in keys], "uri": [k[1] for k in keys],
                "role": [k[2] for k in keys], "start": [k[3] for k in keys],
                "end": [best[k][0] for k in keys], "strictness": [best[k][1] for k in keys]}

    def _page(self, keys: list, best: dict, sids: list[int], texts: list[str], t0: int,
              page: int) -> None:
        mc, counts = self.mention_counts, self.counts
        ms = []  # (sentence_id, chunk, uri, role, start, end, text_idx): Mention + its text
        per_sent: dict[int, int] = {}
        strictness: dict[str, int] = {}
        for k in keys:
            t, uri, role, start = k
            end, strict = best[k]
            ms.append((sids[t], 0, uri, role, start, end, t))
            mc[(uri, role)] = mc.get((uri, role), 0) + 1
            strictness[strict] = strictness.get(strict, 0) + 1
            per_sent[t] = per_sent.get(t, 0) + 1
        for strict, n in strictness.items():
            counts[f"mentions_{strict}"] = counts.get(f"mentions_{strict}", 0) + n
        counts["mentions"] += len(ms)
        over = sum(c - self.cap for c in per_sent.values() if c > self.cap)
        if over:
            counts["mentions_over_cap"] += over
            ms = cap_mentions(ms, self.cap)
        subs, objs, pairs = self._candidates(ms)
        if not pairs:
            return
        counts["pages_with_pairs"] += 1
        # each mention list placed in its chunks once, however many facts it takes part in
        need_s = {s for _, s, _ in pairs}
        need_o = {o for _, _, o in pairs}
        lists = [subs[u] for u in need_s] + [objs[u] for u in need_o]
        chunk_of = self._chunker(texts, t0, max(m[6] for ml in lists for m in ml), page)
        placed_s = {u: [(m[0], chunk_of(m), *m[2:]) for m in subs[u]] for u in need_s}
        placed_o = {u: [(m[0], chunk_of(m), *m[2:]) for m in objs[u]] for u in need_o}
        for uuid, s_uri, o_uri in pairs:
            for _, window, ev in _fact_hits(uuid, placed_s[s_uri], placed_o[o_uri]):
                self._count(uuid, window, ev)

    def _candidates(self, ms: list) -> tuple[dict, dict, list[tuple[str, str, str]]]:
        """The page's subject and object mentions by uri, and (uuid, subject uri, object uri)
        of the facts with both on the page."""
        objs: dict[str, list] = {}
        subs: dict[str, list] = {}
        for m in ms:
            (objs if m[3] == "object" else subs).setdefault(m[2], []).append(m)
        out = []
        by_sub = self.names.by_sub
        for sub_uri in subs:
            for uuid, obj_uri in by_sub.get(sub_uri, ()):
                if obj_uri in objs:
                    out.append((uuid, sub_uri, obj_uri))
        return subs, objs, out

    def _chunker(self, texts: list[str], t0: int, t_last: int, page: int):  # type: ignore[no-untyped-def]
        """chunk(mention) for mentions in the page's sentences ``t0..t_last`` (tokenised
        once). Only where a cut falls inside the sentence does the mention's offset matter:
        there a normalised one (``find_mixed``) is mapped to the original."""
        sents = texts[t0:t_last + 1]
        self.counts["sentences_chunked"] += len(sents)
        rows = list(sentence_chunks([page] * len(sents), sents, self.tokenizer, self.chunk_size))
        shifted, lang = self._shifted, self.names.matcher.lang  # type: ignore[union-attr]

        def chunk_of(m: tuple) -> int:
            chunk0, cuts, _ = rows[m[6] - t0]
            if not cuts:
                return chunk0
            start = m[4]
            if shifted is not None and shifted[m[6]]:
                start = source_spans(texts[m[6]], lang, [(m[4], m[5])])[0][0]
            return chunk0 + bisect.bisect_right(cuts, start)
        return chunk_of

    def _count(self, uuid: str, window: str, ev: int) -> None:
        c = self.cooc.get(uuid)
        if c is None:
            c = self.cooc[uuid] = [0, 0, 0]
        c[WINDOWS.index(window)] += 1
        if window == self.window:
            evs = self.evidence.setdefault(uuid, [])
            evs.append(ev)
            if len(evs) > 4 * self.k + 16:  # bounded: only the k smallest can be kept
                evs.sort()
                del evs[self.k:]

    def partials(self) -> dict[str, list]:
        """Per fact with a mention or a co-occurrence here: its partial counts and its first
        ``k`` evidence ids (columns uuid, sub_mentions, obj_mentions, cooc_sentence,
        cooc_chunk, cooc_document, evidence)."""
        cols: dict[str, list] = {c: [] for c in PARTIAL_COLUMNS}
        mc = self.mention_counts
        for uuid, s, o in self.names.facts:
            sub, obj, c = mc.get((s, "subject"), 0), mc.get((o, "object"), 0), self.cooc.get(uuid)
            if not (sub or obj or c):
                continue
            c = c or (0, 0, 0)
            for name, v in zip(PARTIAL_COLUMNS, (uuid, sub, obj, *c)):
                cols[name].append(v)
            cols["evidence"].append(sorted(self.evidence.get(uuid, ()))[: self.k])
        return cols


PARTIAL_COLUMNS = ("uuid", "sub_mentions", "obj_mentions", "cooc_sentence", "cooc_chunk",
                   "cooc_document", "evidence")
