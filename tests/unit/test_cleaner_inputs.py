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
