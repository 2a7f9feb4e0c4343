"""Pure co-occurrence logic for one page: which facts' subject and object meet in which window.

Input: the page's mentions ``(sentence_id, chunk, uri, role, start, end)`` and, for the page's
language, ``facts_by_sub``: subject uri -> [(uuid, object uri)]. A subject mention and an
object mention co-occur in a window (sentence, chunk, document) when both lie in it and their
spans are disjoint (different sentences, or no overlap within one sentence). At most ``cap``
mentions per sentence take part (the first by position), so a list of 500 countries cannot
blow up the pairs. Output: ``(uuid, window, ev)`` once per co-occurrence window, where ``ev``
is the window's first sentence that mentions the subject or the object.
"""

from __future__ import annotations

from collections.abc import Iterable

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
    shared = {m[0] for m in s_list} & {m[0] for m in o_list}
    pair_sents = {sid for sid in shared
                  if any(_disjoint(a, b) for a in s_list if a[0] == sid
                         for b in o_list if b[0] == sid)}
    out = [(uuid, "sentence", sid) for sid in sorted(pair_sents)]
    for window, unit in (("chunk", lambda m: m[1]), ("document", lambda m: 0)):
        s_units: dict = {}
        o_units: dict = {}
        for m in s_list:
            s_units.setdefault(unit(m), set()).add(m[0])
        for m in o_list:
            o_units.setdefault(unit(m), set()).add(m[0])
        for u in sorted(set(s_units) & set(o_units)):
            ss, os_ = s_units[u], o_units[u]
            # one single shared sentence: they meet only through a disjoint pair there
            if len(ss) == 1 and ss == os_ and next(iter(ss)) not in pair_sents:
                continue
            out.append((uuid, window, min(min(ss), min(os_))))
    return out
