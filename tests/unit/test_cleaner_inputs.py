"""The cleaner on the markup of issue #14: file links in every spelling MediaWiki accepts
(localised names, aliases, underscores, any case), captions holding brackets or external
links, text-carrying templates, no stray quotes or separators, deep nesting under mwparser."""

from __future__ import annotations

import bz2
import re

import pytest

from factroots.text import dumps, wikitext
from factroots.text.samples import sample_dump, sample_langs

MLAMA = ("af ar az be bg bn ca ceb cs cy da de el en es et eu fa fi fr ga gl he hi hr hu hy id "
         "it ja ka ko la lt lv ms nl pl pt ro ru sk sl sq sr sv ta th tr uk ur vi zh").split()


def clean(text: str, lang: str | None = None, **kw) -> str:
    return "\n".join(wikitext.clean_wikitext(text, lang=lang, **kw))


def leaked(names: set[str], text: str) -> list[str]:
    """Leftovers of a dropped link: a namespace prefix (as a word) with link options after it
    (``[[:File:x|File:x]]``, a visible link, leaves only its label)."""
    alts = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    rx = re.compile(rf"(?<![^\W\d_])(?:{alts}):[^\n]{{0,200}}?\|")
    return [m.group() for m in rx.finditer(text.replace("_", " "))]


def test_namespace_data_covers_every_mlama_language() -> None:
    data = wikitext.namespace_data()
    assert sorted(data["langs"]) == sorted(MLAMA)
    assert "MediaWiki" in data["source"]
    for lang, ns in data["langs"].items():
        assert all(ns[k] for k in ("-2", "6", "14")), lang


@pytest.mark.parametrize("lang,link", [
    ("vi", "[[Hình:Bản đồ.png|nhỏ|phải|70x70px|thế=Bản đồ|Chú thích ảnh]]"),
    ("vi", "[[Tập_tin:Bản đồ.png|nhỏ|Chú thích ảnh]]"),
    ("vi", "[[tập tin:Bản đồ.png|nhỏ|Chú thích ảnh]]"),
    ("ja", "[[画像:地図.png|thumb|Chú thích ảnh]]"),
    ("el", "[[Εικόνα:Χάρτης.png|μικρογραφία|Chú thích ảnh]]"),
    ("uk", "[[Зображення:Мапа.png|мініатюра|Chú thích ảnh]]"),
    ("en", "[[Image:Map.png|thumb|Chú thích ảnh]]"),
    ("en", "[[ file : Map.png|thumb|Chú thích ảnh]]"),
])
def test_file_links_in_other_spellings_are_dropped(lang: str, link: str) -> None:
    text = clean(f"Paris is a city.{link} Lyon is too.", lang)  # no siteinfo: shipped names
    assert text == "Paris is a city. Lyon is too."


def test_siteinfo_names_are_used_with_underscores() -> None:
    ns = {6: "Tập tin", 14: "Thể loại"}
    assert clean("A.[[Tập_tin:x.png|nhỏ|cap]] B.[[Thể_loại:Y]]", namespaces=ns) == "A. B."


def test_caption_with_brackets_or_external_link_does_not_leak() -> None:
    for cap in ("Map [http://example.org of Paris] in 1900", "Map [1] of [[Paris]]",
                "Map of [[Paris|the city]] ([[France]])"):
        text = clean(f"Paris is a city.\n[[File:x.jpg|thumb|upright=1.2|{cap}]]\nLyon is too.")
        assert "thumb" not in text and "Map" not in text and "x.jpg" not in text, text
        assert "Paris is a city." in text and "Lyon is too." in text


def test_an_unclosed_file_link_stays_in_its_paragraph() -> None:
    text = clean("[[File:x.jpg|thumb|Caption [[Paris]]\n\nLyon is a city.\n\nNice is too.")
    assert text == "Lyon is a city.\nNice is too."


def test_visible_colon_link_keeps_its_text() -> None:
    assert clean("See [[:File:x.jpg|the map]].") == "See the map."


@pytest.mark.parametrize("markup,shown", [
    ("{{lang|fr|Île-de-France}}", "Île-de-France"),
    ("{{Lang|fr|Île-de-France|italic=no}}", "Île-de-France"),
    ("{{lang-fr|Île-de-France}}", "Île-de-France"),
    ("{{langx|fr|Île-de-France}}", "Île-de-France"),
    ("{{nowrap|Île-de-France}}", "Île-de-France"),
    ("{{ill|Île-de-France|fr|Île-de-France (région)}}", "Île-de-France"),
    ("{{ill|Île-de-France (region)|fr|lt=Île-de-France}}", "Île-de-France"),
    ("{{transl|ar|ALA|Īl dū Frans}}", "Īl dū Frans"),
    ("{{nowrap|{{lang|fr|Île-de-France}}}}", "Île-de-France"),
    ("{{nowrap|[[Île-de-France|Île de France]]}}", "Île de France"),
])
def test_text_templates_keep_their_names(markup: str, shown: str) -> None:
    assert clean(f"The region {markup} is large.") == f"The region {shown} is large."


def test_other_templates_are_still_removed_and_the_list_is_configurable() -> None:
    assert clean("A {{convert|5|km}} road.") == "A road."
    assert clean("The {{nowrap|Paris}} city.", templates=()) == "The city."
    assert clean("The {{foo|x|Paris}} city.", templates=("foo:2",)) == "The Paris city."
    with pytest.raises(ValueError, match="name:param"):
        wikitext.template_rules(("nowrap",))


def test_no_stray_quotes_or_separators_after_a_removal() -> None:
    assert clean("'''{{IPA|x}}''' is a word.") == "is a word."
    assert clean("'''''{{IPA|x}}''''' is a word.") == "is a word."
    assert clean("Born in 1900{{efn|x}}, {{circa}}. Next one.") == "Born in 1900. Next one."
    assert clean("Asphalt ({{IPAc-en|x}}, {{respell|y}}, occasionally) is black.") \
        == "Asphalt (occasionally) is black."
    assert clean("Paris, Lyon,... and more.") == "Paris, Lyon,... and more."  # an ellipsis stays
    assert clean("Jack''''s book.") == "Jack's book."  # four quotes: an apostrophe before bold


def test_mwparser_leaves_no_braces_on_deep_nesting() -> None:
    deep = "{{a|" * 60 + "inner" + "}}" * 60
    table = "{|\n|" + "{{b|" * 45 + "y" + "}}" * 45 + "\n|}"
    page = f"Paris is a city.\n\n{deep} Lyon is a city.\n\n{table}\n\nMarseille {{{{nowrap|Nice}}}}."
    paras = wikitext.clean_wikitext(page, parser="mwparser")
    assert paras == ["Paris is a city.", "Lyon is a city.", "Marseille Nice."]


UNCLOSED = "{{Infobox city\n| name = Lyon\n| capital = {{flag|France}}\n| population = 500000"


@pytest.mark.parametrize("parser", ["mwparser", "fast"])
def test_a_template_that_never_closes_leaves_no_parameters(parser: str) -> None:
    """mwparserfromhell keeps an unclosed template as text: its parameters are residue, cut
    to the end of their paragraph and counted, the text around kept."""
    page = f"Paris is a city.\n\n{UNCLOSED}\n\nLyon is a city.\n\nNice {{{{b|x=1|y=2 is."
    paras, residue = wikitext.clean_text(page, parser=parser)
    assert paras == ["Paris is a city.", "Lyon is a city.", "Nice"]
    assert residue >= len("Infobox city | name = Lyon | capital = | population = 500000")
    assert wikitext.clean_text("Paris is a city.", parser=parser) == (["Paris is a city."], 0)


def test_mwparser_drops_paragraphs_that_are_still_markup() -> None:
    paras, residue = wikitext.clean_text("Paris is a city.\n\n| name = Lyon | capital = x\n\n"
                                         "Lyon |x| = 3 and |y| = 4.", parser="mwparser")
    assert paras == ["Paris is a city.", "Lyon |x| = 3 and |y| = 4."]  # prose with pipes stays
    assert residue == len("| name = Lyon | capital = x")


def test_a_page_of_mostly_unparsed_markup_is_a_counted_reject() -> None:
    page = "Paris is a city.\n\n" + "".join(f"{{{{Infobox|a={i}|b=2|" + "x " * 2500 + "\n\n"
                                              for i in range(200))
    assert wikitext.clean_page(page, len(page), parser="mwparser") == ([], "unparsed")
    prose = "Paris is a city on the Seine. Lyon is a city too, on the Rhône, and a big one."
    small = f"{prose}\n\n{UNCLOSED}"  # less residue than text: removed, the page kept
    assert wikitext.clean_page(small, len(small), parser="mwparser") == ([prose], None)


@pytest.mark.parametrize("lang", sample_langs())
def test_bundled_samples_have_no_file_link_leftovers(lang: str) -> None:
    path = str(sample_dump(lang))
    ns = dumps.dump_info(path)["siteinfo"]["namespaces"]
    data = wikitext.namespace_data()["langs"][lang]
    names = [n for k in ("6", "14") for n in data[k]] + [ns[6], ns[14], "File", "Image"]
    for p in dumps.plan_dump(path, lang):
        for rows in dumps.read_partition(p):
            for r in rows:
                if r["reject"] or r["namespace"] or r["is_redirect"]:
                    continue
                text = clean(r["wikitext"], lang, namespaces=ns)
                assert not leaked(set(names), text), r["title"]
                for marker in ("{{", "}}", "[[", "]]", "''"):
                    assert marker not in text, (r["title"], marker)


def test_viwiki_sample_caption_leak_is_gone() -> None:
    xml = bz2.decompress(sample_dump("vi").read_bytes()).decode()
    assert "Tập tin:Berkeley glade afternoon.jpg" in xml  # the real markup is there
    path = str(sample_dump("vi"))
    ns = dumps.dump_info(path)["siteinfo"]["namespaces"]
    texts = [clean(r["wikitext"], "vi", namespaces=ns) for p in dumps.plan_dump(path, "vi")
             for rows in dumps.read_partition(p) for r in rows if r["wikitext"]]
    assert not any("Berkeley glade" in t for t in texts)
    assert not any("|nhỏ|" in t or "nhỏ|" in t for t in texts)


@pytest.mark.shared
@pytest.mark.parametrize("lang", ["bn", "el", "hy", "ja", "uk", "vi"])
def test_real_dumps_have_no_file_prefixes_left(shared_data, lang: str) -> None:
    path = str(shared_data / "wikipedia" / f"{lang}wiki-truncated-100k.xml.xz")
    ns = dumps.dump_info(path)["siteinfo"]["namespaces"]
    data = wikitext.namespace_data()["langs"][lang]
    names = {n for k in ("6",) for n in data[k]} | {ns[6]}
    leaks = 0
    for p in dumps.plan_dump(path, lang):
        for rows in dumps.read_partition(p):
            for r in rows:
                if r["wikitext"] and not r["namespace"] and not r["is_redirect"]:
                    text = clean(r["wikitext"], lang, namespaces=ns)
                    leaks += len(leaked(names, text))
    assert leaks == 0


SHARED_DUMPS = {"en": "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
                "bg": "bgwiki-latest-pages-articles-shortened.xml.bz2",
                **{lg: f"{lg}wiki-truncated-100k.xml.xz" for lg in ("bn", "el", "hy", "ja", "uk", "vi")}}


@pytest.mark.shared
@pytest.mark.parametrize("lang", sorted(SHARED_DUMPS))
def test_shipped_namespace_names_hold_the_real_dumps_siteinfo(shared_data, lang: str) -> None:
    """The Media/File/Category names of each real dump's <siteinfo> are in the shipped data
    (so the shipped names of these 8 languages are verified against a dump)."""
    path = shared_data / "wikipedia" / SHARED_DUMPS[lang]
    if not path.is_file():
        pytest.skip(f"{path.name} is not in ../shared")
    site = dumps.dump_info(str(path))["siteinfo"]
    assert dumps.site_language(site) == lang
    ns = {int(k): v for k, v in site["namespaces"].items()}
    shipped = wikitext.namespace_data()["langs"][lang]
    for key in wikitext.DROP_KEYS:
        assert ns.get(int(key)), (lang, key)  # the dump names it
        names = {wikitext.ns_key(n) for n in shipped[key]}
        assert wikitext.ns_key(ns[int(key)]) in names, (lang, key, ns[int(key)], shipped[key])
    assert lang in wikitext.namespace_data()["dump_verified"]


def test_a_bare_url_keeps_the_bracket_and_punctuation_after_it() -> None:
    """Found beside WikiExtractor on bnwiki: "(https://…)" lost its ")" with the URL."""
    assert clean("Main article: Radio (https://en.wikipedia.org/wiki/Radio_broadcasting).") \
        == "Main article: Radio."
    assert clean("See https://en.wikipedia.org/wiki/Foo_(bar) now.") == "See now."
    assert clean("Go to http://x.org/a.html. Then stop.") == "Go to. Then stop."


# Found reading the sentences WikiExtractor has and ours had not (BENCHMARKS.md, #14).
@pytest.mark.parametrize("parser", ["fast", "mwparser"])
@pytest.mark.parametrize("markup,shown", [
    # ukwiki: a link label holding brackets leaked its target and a pipe
    ("звука [[Неогублений голосний переднього ряду|[і]]] в", "звука [і] в"),
    ("{{formatnum:78866}}&nbsp;км²", "78866 км²"),  # ukwiki: a parser function that shows its argument
    ("{{ucfirst:paris}} {{formatnum:1234|R}}", "paris 1234"),
    ("'''Теперішній час'''<br/>[[Парадигма (мовознавство)|Парадигма]]",  # no space was left
     "Теперішній час Парадигма"),
    ("[[:en:Red Herring]], [[:Category:X]]", "Red Herring, Category:X"),  # hywiki: visible links
    ("{{Цитата|1=Метр є одиницею довжини}}", "Метр є одиницею довжини"),  # a quote template
    ("{{quote|text=Paris is [[France]]'s capital.|author=X}}", "Paris is France's capital."),
])
def test_visible_text_found_beside_wikiextractor(parser: str, markup: str, shown: str) -> None:
    assert clean(f"A {markup} B.", parser=parser) == f"A {shown} B."


def test_an_unclosed_link_does_not_take_the_next_paragraphs() -> None:
    """elwiki "Αυστρία": "[[Οίκος…|δυναστείας…)" never closes; a link label may hold single
    brackets, but the link stops at its paragraph, so 95,000 characters are not one label."""
    text = clean("Lyon [[Foo|bar) is big [1].\n\nParis [2] is in France|Francia]] today.")
    assert "Paris [2] is in" in text, text


def test_mwparser_drops_file_links_inside_tags_and_tables() -> None:
    """ukwiki under trace.parser: mwparser: file links inside a <div> or a table cell kept
    their size options ("межа|170px") as text."""
    page = ("Paris is a city.\n\n<div>[[Файл:Мапа.png|межа|170px]] [[зображення:x.png|міні|Cap]]</div>"
            "\n\n{|\n|[[File:y.jpg|140px]] Lyon\n|}\n\nNice is a city.")
    paras = wikitext.clean_wikitext(page, parser="mwparser", lang="uk",
                                    namespaces={6: "Файл", 14: "Категорія"})
    assert paras == ["Paris is a city.", "Nice is a city."], paras
