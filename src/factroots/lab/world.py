"""The lab's fictional world: generated names, paraphrase templates and the planted facts.

Every lab fact is fictional, so no real fact can interfere, and the way its names are written
is a controlled factor (``name_form``):

- ``identical``: one Latin-script string in every language;
- ``transliterated``: the same syllables written with each language's own letters; the
  languages' letter sets are disjoint (en Latin, uk and bg two disjoint Cyrillic subsets), so
  two languages' forms share no character and hence no subword piece, by construction;
- ``unrelated``: an independent name per language (own letters, so also no shared piece).

Names come in two disjoint letter classes: persons and regions use class ``A``, cities and
companies class ``B``. Every fact links an ``A`` name to a ``B`` name, so subject and object
never share a piece either (no fact is "easy" by the shared-token rule).

Groups of test facts (person -> city, relations P19/P20; the cities of `transfer` and
`control` are unique within a relation, so no sibling can answer them; `shared` and
`independent_*` facts come in same-object pairs, for the label stage's same-object null):

- ``transfer``: the test fact in one source language only; the subject has a bridge fact
  (P108, person -> company) and the city an anchor fact (P131, city -> region), both in every
  language with parallel pairs, so knowledge can cross without identical strings;
- ``control``: the same bridges and anchors, the test fact nowhere;
- ``shared``: every language, identical names, parallel pairs;
- ``independent_same_obj``: every language, language-specific (unrelated) subject names, no
  bridge or parallel pair, one object string for all languages;
- ``independent_diff_obj``: the same with a language-specific object.

Detector facts (the detector check, ``lab.detector``): ``detector_shared`` and
``detector_independent``, person -> city facts of P937 (work location) with identical names in
every language (the subjects are the ``shared`` group's persons), stated in the dumps (so the trace finds them present) but **not in the training
stream**: the model knows them only because ``lab.detector`` writes them into chosen FFN units
afterwards (the same units in every language for ``detector_shared``, disjoint units per
language for ``detector_independent``). The two groups share their objects (each object has
facts of both), so they differ in the units only.

For the counterfactual model, each ``transfer`` fact has a filler fact (fresh names, the same
relation and source language) that takes its sentences' place, so the training stream keeps its
counts; fillers are never probed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from factroots.errors import ConfigError

IDENTICAL, TRANSLITERATED, UNRELATED = "identical", "transliterated", "unrelated"
FORMS = (IDENTICAL, TRANSLITERATED, UNRELATED)
TRANSFER, CONTROL, SHARED = "transfer", "control", "shared"
INDEP_SAME, INDEP_DIFF = "independent_same_obj", "independent_diff_obj"
TEST_GROUPS = (TRANSFER, CONTROL, SHARED, INDEP_SAME, INDEP_DIFF)
DETECTOR_SHARED, DETECTOR_INDEP = "detector_shared", "detector_independent"
DETECTOR_GROUPS = (DETECTOR_SHARED, DETECTOR_INDEP)
DETECTOR_RELATION = "P937"  # person -> work location: no other lab fact uses it
DETECTOR_FACTS_PER_OBJECT = 2  # per group: each object has two facts of each detector group
BRIDGE, ANCHOR, BACKGROUND = "bridge", "anchor", "background"
TEST_RELATIONS = ("P19", "P20")  # person -> city
BRIDGE_RELATION, ANCHOR_RELATION = "P108", "P131"  # person -> company, city -> region
REGIONS_PER_FORM = 12  # anchor objects: a small pool (anchors are not test facts)

# Per language and letter class: (consonants, vowels). Disjoint across every (lang, class).
ALPHABETS: dict[str, dict[str, tuple[str, str]]] = {
    "en": {"A": ("bdgkl", "ao"), "B": ("mnprs", "ei")},
    "uk": {"A": ("бвгдз", "ао"), "B": ("клмнп", "уі")},
    "bg": {"A": ("рстфх", "еъ"), "B": ("жцчшщ", "ия")},
}
LATIN = "en"  # the alphabet of `identical` names

# 3-4 templates per relation and language: the mLAMA probe template is added as the first.
PARAPHRASES: dict[str, dict[str, list[str]]] = {
    "P19": {"en": ["[X] is a native of [Y].", "The birthplace of [X] is [Y].",
                   "[X] came into the world in [Y]."],
            "uk": ["Місце народження [X] — [Y].", "[X] родом з [Y].",
                   "[X] з'явився на світ у [Y]."],
            "bg": ["Родното място на [X] е [Y].", "[X] е родом от [Y].",
                   "[X] се е родил в [Y]."]},
    "P20": {"en": ["[X] passed away in [Y].", "The place of death of [X] is [Y].",
                   "[X] spent his last days in [Y]."],
            "uk": ["Місце смерті [X] — [Y].", "[X] пішов з життя в [Y].",
                   "[X] провів останні дні в [Y]."],
            "bg": ["Мястото на смъртта на [X] е [Y].", "[X] е починал в [Y].",
                   "[X] прекарва последните си дни в [Y]."]},
    "P108": {"en": ["[X] is employed by [Y].", "The employer of [X] is [Y].",
                    "[X] has a job at [Y]."],
             "uk": ["Роботодавець [X] — [Y].", "[X] працевлаштований у [Y].",
                    "[X] служить у компанії [Y]."],
             "bg": ["Работодателят на [X] е [Y].", "[X] е нает от [Y].",
                    "[X] служи в компанията [Y]."]},
    "P131": {"en": ["[X] lies in [Y].", "[X] is a town in [Y].", "[X] can be found in [Y]."],
             "uk": ["[X] лежить у [Y].", "[X] — місто в [Y].", "[X] розташований у [Y]."],
             "bg": ["[X] лежи в [Y].", "[X] е град в [Y].", "[X] е разположен в [Y]."]},
}
RELATIONS = (*TEST_RELATIONS, BRIDGE_RELATION, ANCHOR_RELATION, DETECTOR_RELATION)


@dataclass(frozen=True)
class Sizes:
    """How many test facts each group gets (transfer: spread over the source languages)."""

    transfer: int = 90
    control: int = 45
    shared: int = 45
    independent: int = 45  # each of the two independent groups
    detector: int = 0  # each of the two detector groups (facts written into units, not trained)
    # the name forms that transfer and control facts cycle through (a form listed twice gets
    # twice the facts); balanced by default: weighting `identical` (the only form that crossed
    # in the pilots) did not raise the transfer count reliably (docs/lab.md)
    transfer_forms: tuple[str, ...] = (IDENTICAL, TRANSLITERATED, UNRELATED)


@dataclass
class Fact:
    """One fictional fact: its names per language and where it is planted."""

    uuid: str
    relation: str
    group: str
    name_form: str
    sub: dict[str, str]
    obj: dict[str, str]
    sub_uri: str
    obj_uri: str
    planted_in: tuple[str, ...]
    source_lang: str = ""
    parallel: bool = False
    trained: bool = True  # in the training stream (detector facts: in the dumps only)
    filler: Fact | None = field(default=None, repr=False)  # the cf model's stand-in


@dataclass
class World:
    """Every fictional fact of the lab, test facts first, in a fixed order."""

    langs: list[str]
    facts: list[Fact]

    def by_group(self, group: str) -> list[Fact]:
        """The facts of one group."""
        return [f for f in self.facts if f.group == group]


def check_forms(forms: tuple[str, ...]) -> None:
    """Raise ConfigError unless every name form is known and the list is not empty."""
    bad = [f for f in forms if f not in FORMS]
    if bad or not forms:
        raise ConfigError(f"lab.transfer_forms: {bad or 'empty'} is not a list of name forms",
                          f"use a non-empty list of {list(FORMS)}")


def check_langs(langs: Iterable[str]) -> None:
    """Raise ConfigError unless every language has an alphabet and paraphrase templates."""
    bad = [lg for lg in langs if lg not in ALPHABETS]
    if bad:
        raise ConfigError(f"lab.langs: {bad} have no lab alphabet and templates",
                          f"use languages among {sorted(ALPHABETS)} (lab/world.py)")


class Names:
    """Seeded generator of unique fictional names (abstract syllables, rendered per language)."""

    def __init__(self, rng: np.random.Generator, avoid: set[str]) -> None:
        self.rng, self.avoid = rng, avoid
        self.used: set[tuple] = set()

    def _abstract(self, cls: str, langs: Iterable[str]) -> tuple:
        for _ in range(10_000):
            n = int(self.rng.integers(2, 4))
            syl = tuple((int(self.rng.integers(5)), int(self.rng.integers(2))) for _ in range(n))
            end = int(self.rng.integers(-1, 5))
            a = (cls, syl, end)
            if a not in self.used and not any(render(a, lg).lower() in self.avoid
                                              for lg in (*langs, LATIN)):
                self.used.add(a)
                return a
        raise RuntimeError("lab: the name space is exhausted; lower the lab's group sizes")

    def entity(self, cls: str, form: str, langs: list[str]) -> dict[str, str]:
        """One entity's name per language, in the given form."""
        if form == IDENTICAL:
            a = self._abstract(cls, langs)
            return {lg: render(a, LATIN) for lg in langs}
        if form == TRANSLITERATED:
            a = self._abstract(cls, langs)
            return {lg: render(a, lg) for lg in langs}
        return {lg: render(self._abstract(cls, langs), lg) for lg in langs}


def render(abstract: tuple, lang: str) -> str:
    """An abstract name written with ``lang``'s letters of its class, capitalised."""
    cls, syl, end = abstract
    cons, vows = ALPHABETS[lang][cls]
    s = "".join(cons[c] + vows[v] for c, v in syl) + (cons[end] if end >= 0 else "")
    return s[:1].upper() + s[1:]


def templates(relation: str, lang: str, probe_template: str) -> list[str]:
    """The corpus templates of a relation in a language: the probe template, then paraphrases."""
    return [probe_template, *PARAPHRASES.get(relation, {}).get(lang, [])]


def build_world(langs: list[str], sizes: Sizes, seed: int, avoid: set[str]) -> World:
    """The fictional world: test facts by group, their bridges and anchors, and fillers."""
    check_langs(langs)
    forms = tuple(sizes.transfer_forms)
    check_forms(forms)
    rng = np.random.default_rng(seed)
    names = Names(rng, {w.lower() for w in avoid})
    counter = iter(range(1, 1_000_000))
    facts: list[Fact] = []
    regions = {form: [names.entity("A", form, langs) for _ in range(REGIONS_PER_FORM)]
               for form in FORMS}
    region_uri = {(form, i): f"lab:R{form[0]}{i}" for form in FORMS for i in range(REGIONS_PER_FORM)}
    every = tuple(langs)

    def uri() -> str:
        return f"lab:E{next(counter)}"

    def add(rel: str, group: str, form: str, sub: dict, obj: dict, planted: tuple,
            s_uri: str, o_uri: str, **kw) -> Fact:  # type: ignore[no-untyped-def]
        f = Fact(f"lab{len(facts):05d}", rel, group, form, sub, obj, s_uri, o_uri, planted, **kw)
        facts.append(f)
        return f

    links: list[tuple[Fact, str, dict, str, dict]] = []  # (test fact, person, uri, city, uri)
    for group, n in ((TRANSFER, sizes.transfer), (CONTROL, sizes.control)):
        for i in range(n):
            # source language, name form and relation vary independently (a full crossing)
            k = len(langs) if group == TRANSFER else 1
            form = forms[(i // k) % len(forms)]
            rel = TEST_RELATIONS[(i // (k * len(forms))) % 2]
            person, city = names.entity("A", form, langs), names.entity("B", form, langs)
            src = langs[i % k] if group == TRANSFER else ""
            t = add(rel, group, form, person, city, (src,) if src else (), uri(), uri(),
                    source_lang=src)
            links.append((t, t.sub_uri, person, t.obj_uri, city))
    # shared and independent facts come in pairs with one object (facts i and i + 2: the same
    # relation; with an odd count per relation the last one is alone): the label stage's same-object null needs such pairs, or it labels nothing
    # `shared` (every test object unique gave 0 of 90 in the pilot)
    objs: dict[tuple, tuple[dict, str]] = {}

    def paired(group: str, i: int, form: str) -> tuple[dict, str]:
        key = (group, i // 4, i % 2)
        if key not in objs:
            objs[key] = (names.entity("B", form, langs), uri())
        return objs[key]

    for i in range(sizes.shared):
        city, c_uri = paired(SHARED, i, IDENTICAL)
        add(TEST_RELATIONS[i % 2], SHARED, IDENTICAL, names.entity("A", IDENTICAL, langs),
            city, every, uri(), c_uri, parallel=True)
    for group, oform in ((INDEP_SAME, IDENTICAL), (INDEP_DIFF, UNRELATED)):
        for i in range(sizes.independent):
            city, c_uri = paired(group, i, oform)
            add(TEST_RELATIONS[i % 2], group, UNRELATED, names.entity("A", UNRELATED, langs),
                city, every, uri(), c_uri)
    for t, p_uri, person, c_uri, city in links:  # bridges and anchors, after the test facts
        add(BRIDGE_RELATION, BRIDGE, t.name_form, person, names.entity("B", t.name_form, langs),
            every, p_uri, uri(), parallel=True)
        r = int(rng.integers(REGIONS_PER_FORM))
        add(ANCHOR_RELATION, ANCHOR, t.name_form, city, regions[t.name_form][r], every, c_uri,
            region_uri[(t.name_form, r)], parallel=True)
    for t in (f for f in facts if f.group == TRANSFER):
        s = t.source_lang
        t.filler = Fact(f"{t.uuid}f", t.relation, "filler", UNRELATED,
                        names.entity("A", UNRELATED, [s]), names.entity("B", UNRELATED, [s]),
                        "", "", (s,))
    # last, so that the rest of the world does not depend on the detector's size
    n_obj = -(-sizes.detector // DETECTOR_FACTS_PER_OBJECT)
    cities = [(names.entity("B", IDENTICAL, langs), uri()) for _ in range(n_obj)]
    # subjects: the `shared` group's persons, whom the model knows in every language (its states
    # for an unseen name barely differ between names, so no gate could single one out)
    known = [(f.sub, f.sub_uri) for f in facts if f.group == SHARED]
    for g, group in enumerate(DETECTOR_GROUPS):
        for i in range(sizes.detector):
            city, c_uri = cities[i // DETECTOR_FACTS_PER_OBJECT]
            k = g * sizes.detector + i
            sub, s_uri = known[k] if k < len(known) else (names.entity("A", IDENTICAL, langs), uri())
            add(DETECTOR_RELATION, group, IDENTICAL, sub, city, every, s_uri, c_uri,
                trained=False)
    return World(list(langs), facts)
