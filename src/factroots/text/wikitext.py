"""Wikitext to plain paragraphs: a fast regex cleaner, mwparserfromhell where it earns its cost.

What is removed: comments; templates and parser functions (``{{…}}``, never expanded, so text
that only an infobox or a template produces is absent); tables (``{|…|}``); references and other
non-prose tags (``<ref>``, ``<math>``, ``<gallery>``, …); every other HTML tag (its text kept);
bold/italic quotes; headings; file, image, media and category links and interlanguage links, in
every language (names from the dump's ``<siteinfo>`` namespaces plus the canonical English
names); external-link URLs. Links become their text. The fast path handles balanced markup in
one pass of a few regexes; a page whose templates or tables do not balance goes to
mwparserfromhell (size-capped), which is also the whole parser when ``parser="mwparser"``.
``clean_page`` adds the guards: a size cap and a time limit, each a counted reject reason.
"""

from __future__ import annotations

import functools
import html
import json
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from importlib import resources

from factroots.config import TEXT_TEMPLATES

MW_MAX_CHARS = 300_000  # mwparserfromhell's memory blows up on some large pages (#286)
DROP_TAGS = ("ref", "references", "math", "gallery", "timeline", "score", "syntaxhighlight",
             "source", "pre", "imagemap", "graph", "mapframe", "maplink", "chem", "ce", "hiero",
             "templatedata", "templatestyles", "inputbox", "categorytree", "noinclude", "poem_ignore")
# read through importlib.resources: on a cluster's executors the package is a zip
NAMESPACES_JSON = resources.files("factroots") / "data" / "namespaces" / "namespaces.json"
DROP_KEYS = ("-2", "6", "14")  # Media, File, Category: their links are dropped

_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_DROP_ALT = "|".join(DROP_TAGS)
_DROP_TAG = re.compile(rf"<({_DROP_ALT})\b[^>]*?(?:/>|>.*?</\1\s*>)", re.DOTALL | re.IGNORECASE)
_SELF_DROP = re.compile(rf"<(?:{_DROP_ALT})\b[^>]*/?>", re.IGNORECASE)
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]*\b[^<>]*>")
_INNER_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
# parser functions that show their argument: {{formatnum:78866}}, {{ucfirst:paris}}
_SHOW_ARG = re.compile(r"\{\{[ \t]*(?:formatnum|lc|uc|lcfirst|ucfirst)[ \t]*:[ \t]*([^{}|]*?)[ \t]*"
                       r"(?:\|[^{}]*)?\}\}", re.IGNORECASE)
_BR = re.compile(r"<br[ \t]*/?[ \t]*>", re.IGNORECASE)  # a line break: a space, not nothing
# table lines, with the newline before them (a literal first character is searched fast)
_TABLE = re.compile(r"(\n[ \t:]*\{\||\n[ \t]*\|\})")
# a link, innermost first; its label may hold single brackets ("[[Close front vowel|[i]]]");
# never across a paragraph break (a "[[" left unclosed would take pages of text with it)
_LINK = re.compile(r"\[\[((?:[^\[\]\n]|\n(?!\n)|\[[^\[\]\n]*\])*)\]\]")
_PLAIN_LINK = re.compile(r"\[\[([^\[\]|:]*)\]\]")  # no namespace, no label: its target
_LABEL_LINK = re.compile(r"\[\[[^\[\]|:]*\|([^\[\]|]*)\]\]")  # no namespace: its label
_EXT_LINK = re.compile(r"\[(?:https?:|ftp:|//|mailto:)[^\s\]]*(?:\s+([^\]]*))?\]")
# a bare URL ends before a closing bracket it did not open and before final punctuation
# (as MediaWiki links it): "(https://x.org/a)" keeps its ")", "x.org/a_(b)" its own
_BARE_URL = re.compile(r"https?://(?:[^\s<>\[\]\"()]|\([^\s()]*\))+(?<![,;.:!?])")
_LONG_QUOTES = re.compile(r"'{6,}")  # bold + italic around removed text: nothing left to format
# the start of a link with a namespace-like prefix (not [[:File:…]], a visible link)
_PREFIXED_LINK = re.compile(r"\[\[[ \t]*([^\[\]|:\n]{1,60}):")
_BRACKETS = re.compile(r"\[\[|\]\]")
_BRACES = re.compile(r"\{\{|\}\}")
_PARAM_TOKENS = re.compile(r"\[\[|\]\]|\{\{|\}\}|\|")
# a comma or semicolon left before other punctuation by a removal ("in 1900, ." -> "in 1900.")
_STRAY_SEP = re.compile(r"[,;、，][ \t]*(?=[,;!?。、，]|\.(?!\.))")
_LEADING_SEP = re.compile(r"([(（])[ \t]*[,;、，][ \t]*")  # "(, occasionally)" -> "(occasionally)"
# headings and list markers at line starts, matched with the newline before them: a literal
# first character lets the regex engine skip ahead (a ^ in MULTILINE mode is tried everywhere)
_HEADING = re.compile(r"\n=+[^\n]*?=+[ \t]*(?=\n|\Z)")
_LIST = re.compile(r"\n[*#:;]+[ \t]*")
_MAGIC = re.compile(r"__[A-Z]+__")
_EMPTY_PARENS = re.compile(r"\([ \t]*[,;:]?[ \t]*\)")
_EMPTY_PARENS_CJK = re.compile(r"（[ \t]*[,;:、，]?[ \t]*）")
_DANGLING_SEP = re.compile(r"[,;、，][ \t]*([)）])")
# no space before , . ; : ) ） (removed by split + join: sub's template costs per match), nor
# after ( （
_SPACE_BEFORE = re.compile(r" ([,.;:)）])")
_SPACE_AFTER = (("( ", "("), ("（ ", "（"))
_PARA_SPLIT = re.compile(r"\n[ \t]*\n+")
_PARA_MARK = "\x00"  # cannot occur in XML text (lxml refuses it)
_INTERWIKI = re.compile(r"^[a-z]{2,3}(?:-[a-z]+)*$")
# a paragraph that is markup left over, not prose: wiki tokens, or template parameters
# ("| name = x | capital = y")
_RESIDUE = re.compile(r"\{\{|\}\}|\{\||\|\}|\[\[|\]\]|(?:\|[ \t]*[^\W\d_][^|=\n]{0,39}=[^|\n]*){2}")
_LETTER = re.compile(r"[^\W\d_]")


def ns_key(name: str) -> str:
    """A namespace name as MediaWiki compares prefixes: ``_`` is a space, runs of spaces are
    one, case is ignored."""
    return " ".join(name.replace("_", " ").split()).casefold()


@functools.lru_cache(maxsize=1)
def namespace_data() -> dict:
    """The shipped Media/File/Category names and aliases per language (data/namespaces)."""
    return json.loads(NAMESPACES_JSON.read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=512)
def _drop_prefixes(names: tuple[str, ...], lang: str | None) -> frozenset[str]:
    data = namespace_data()
    shipped = data["langs"].get(lang or "", {})
    extra = [n for k in DROP_KEYS for n in data["canonical"][k] + shipped.get(k, [])]
    return frozenset(ns_key(n) for n in (*names, *extra) if n)


def drop_namespaces(namespaces: Mapping | None, lang: str | None = None) -> frozenset[str]:
    """Link prefixes (``ns_key``) whose links are dropped: file (6), media (-2) and category
    (14), by the dump's siteinfo names, the shipped names and aliases of ``lang`` and the
    canonical English ones."""
    ns = {int(k): v for k, v in (namespaces or {}).items()}
    return _drop_prefixes(tuple(ns.get(k, "") for k in (6, -2, 14)), lang)


def _cut_balanced(parts: list[str], is_open: Callable[[str], bool], mark: str = ""
                  ) -> tuple[str, int, bool]:
    """Cut every outermost balanced span from ``parts`` (text, token, text, …, text, as
    ``re.split`` with one group gives), putting ``mark`` in its place; return (kept text,
    depth left open at the end, no stray closing token)."""
    out, depth, ok = [parts[0]], 0, True
    for i in range(1, len(parts), 2):
        tok = parts[i]
        if is_open(tok):
            if not depth:
                out.append(mark)
            depth += 1
            continue
        if depth:
            depth -= 1
            if depth:
                continue
        else:
            ok = False
            out.append(tok)  # a stray closing token stays in the text
        out.append(parts[i + 1])
    return "".join(out), depth, ok


def _brace_parts(text: str) -> list[str]:
    r"""``text`` cut at every ``{{`` and ``}}`` (kept as tokens), left to right, by plain
    string search: the same pieces as ``re.split(r"(\{\{|\}\})")``, several times faster."""
    parts: list[str] = []
    for j, piece in enumerate(text.split("{{")):
        if j:
            parts.append("{{")
        segs = piece.split("}}")
        parts.append(segs[0])
        for seg in segs[1:]:
            parts += ("}}", seg)
    return parts


def _remove_nested(text: str) -> tuple[str, bool]:
    """Remove balanced ``{{…}}``; return (text, balanced)."""
    if "{{" not in text:
        return text.replace("}}", ""), "}}" not in text
    kept, depth, ok = _cut_balanced(_brace_parts(text), "{{".__eq__)
    if depth:
        return _cut_unclosed(text), False
    return kept, ok


def _cut_unclosed(text: str) -> str:
    """Templates that do not balance: the balanced ones removed innermost first, then each
    ``{{`` that never closes cut to the end of its paragraph (MediaWiki shows it as literal
    text: a template's name and parameters, never prose), stray ``}}`` dropped."""
    prev = None
    while prev != text:
        prev, text = text, _INNER_TEMPLATE.sub("", text)
    out, pos = [], 0
    while (i := text.find("{{", pos)) >= 0:
        out.append(text[pos:i])
        m = _PARA_SPLIT.search(text, i)
        pos = m.start() if m else len(text)
    out.append(text[pos:])
    return "".join(out).replace("}}", "")


def _span_end(text: str, start: int, tokens: re.Pattern, opener: str, end: int | None = None
              ) -> int:
    """The index after the token that closes the span opened at ``start`` (-1: not before
    ``end``)."""
    depth = 0
    for m in tokens.finditer(text, start, len(text) if end is None else end):
        depth += 1 if m.group() == opener else -1
        if depth == 0:
            return m.end()
    return -1


@functools.lru_cache(maxsize=64)
def template_rules(templates: tuple[str, ...]) -> tuple[dict, tuple, re.Pattern | None]:
    """(exact name -> param keys, ((prefix, keys), …), a regex finding their starts) of a
    ``trace.text_templates`` list (``name:param[,param…]``; ``name-*`` = a name prefix)."""
    exact: dict[str, tuple] = {}
    prefixes: list[tuple[str, tuple]] = []
    alts = []
    for rule in templates:
        name, sep, spec = rule.rpartition(":")
        if not sep or not name.strip():
            raise ValueError(f"trace.text_templates: {rule!r} is not name:param")
        keys = tuple(int(k) if k.strip().lstrip("-").isdigit() else k.strip()
                     for k in spec.split(",") if k.strip())
        key = ns_key(name)
        if key.endswith("*"):
            prefixes.append((key[:-1], keys))
            alts.append(re.escape(key[:-1]).replace("\\ ", "[ _]+") + r"[^{}|\n]*?")
        else:
            exact[key] = keys
            alts.append(re.escape(key).replace("\\ ", "[ _]+"))
    if not alts:
        return exact, tuple(prefixes), None
    pat = re.compile(r"\{\{[ \t]*(" + "|".join(sorted(alts, key=len, reverse=True))
                     + r")[ \t]*\|", re.IGNORECASE)
    return exact, tuple(prefixes), pat


def _split_params(inner: str) -> list[str]:
    """A template's parameters: ``inner`` cut at the ``|`` outside nested links and templates."""
    parts, depth, last = [], 0, 0
    for m in _PARAM_TOKENS.finditer(inner):
        tok = m.group()
        if tok in ("[[", "{{"):
            depth += 1
        elif tok in ("]]", "}}"):
            depth = max(0, depth - 1)
        elif not depth:
            parts.append(inner[last:m.start()])
            last = m.end()
    parts.append(inner[last:])
    return parts


def _pick(params: list[str], keys: tuple) -> str:
    """The first of ``keys`` present: a positional number (1 = first, -1 = last) or a name."""
    positional, named = [], {}
    for p in params:
        eq = p.find("=")
        if eq > 0 and not any(t in p[:eq] for t in ("[[", "{{")):
            named[p[:eq].strip()] = p[eq + 1:]
        else:
            positional.append(p)
    for k in keys:
        v = None
        if isinstance(k, int):
            v = named.get(str(k)) if k > 0 else None  # "1=text" is the first positional
            if v is None and k and -len(positional) <= k <= len(positional):
                v = positional[k - 1 if k > 0 else k]
        else:
            v = named.get(k)
        if v is not None and v.strip():
            return v.strip()
    return ""


def expand_templates(text: str, templates: Iterable[str] = TEXT_TEMPLATES) -> str:
    """Text-carrying templates (``{{lang|fr|Paris}}`` -> ``Paris``) replaced by their visible
    text, innermost first; every other template is left for removal."""
    if "{{" not in text:
        return text
    if ":" in text:
        text = _SHOW_ARG.sub(r"\1", text)
    exact, prefixes, pat = template_rules(tuple(templates))
    if pat is None:
        return text
    starts = [(m.start(), m.end(), ns_key(m.group(1))) for m in pat.finditer(text)]
    for start, body, name in reversed(starts):  # a later start is an inner one: it goes first
        end = _span_end(text, start, _BRACES, "{{")
        if end < 0:
            continue
        keys = exact.get(name) or next((k for p, k in prefixes if name.startswith(p)), ())
        text = text[:start] + _pick(_split_params(text[body:end - 2]), keys) + text[end:]
    return text


def _remove_tables(text: str) -> tuple[str, bool]:
    if "{|" not in text:
        return text, True
    # a table's first line keeps the newline before it, so the text around stays apart
    kept, depth, _ = _cut_balanced(_TABLE.split("\n" + text), lambda t: t.endswith("{|"), "\n")
    return (text, False) if depth else (kept[1:], True)


def _link_text(inner: str, drop: frozenset[str]) -> str:
    target, _, label = inner.partition("|")
    t = target.strip()
    visible = t.startswith(":")
    if ":" in t and not visible:
        prefix = t.split(":", 1)[0].strip()
        if ns_key(prefix) in drop or _INTERWIKI.match(prefix):
            return ""
    if label:
        if "|" in label:  # e.g. [[:File:x|thumb|caption]] seen as a link: keep the caption
            label = label.rsplit("|", 1)[1]
        return label
    t = t.lstrip(":")
    prefix, colon, rest = t.partition(":")
    if colon and _INTERWIKI.match(prefix.strip()):  # [[:fr:Paris]] shows "fr:Paris": the name
        t = rest.strip()
    return t.split("#", 1)[0] if not t.startswith("#") else t[1:]


def _remove_dropped_links(text: str, drop: frozenset[str]) -> str:
    """Remove whole file/category/interlanguage links, captions included (a caption may hold
    links, brackets or external links that the link regexes do not pass)."""
    out, pos = [], 0
    for m in _PREFIXED_LINK.finditer(text):
        if m.start() < pos:
            continue
        prefix = m.group(1).strip()
        if ns_key(prefix) not in drop and not _INTERWIKI.match(prefix):
            continue
        para = text.find("\n\n", m.start())  # a link does not run past its paragraph
        end = _span_end(text, m.start(), _BRACKETS, "[[", None if para < 0 else para)
        if end < 0:  # never closed: to the end of its line
            nl = text.find("\n", m.start())
            end = len(text) if nl < 0 else nl
        out.append(text[pos:m.start()])
        pos = end
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


def _replace_links(text: str, drop: frozenset[str]) -> str:
    if "[[" in text and ":" in text:
        text = _remove_dropped_links(text, drop)
    # most links, without a callback: split() keeps the captured text between the pieces, and
    # joining them is sub(r"\1") at C speed (sub expands the template in Python per match)
    text = "".join(_LABEL_LINK.split("".join(_PLAIN_LINK.split(text))))
    repl = functools.partial(_link_sub, drop=drop)
    for _ in range(4):  # innermost first: captions of file links hold links
        if "[[" not in text:
            break
        new = _LINK.sub(repl, text)
        if new == text:
            break
        text = new
    return text.replace("[[", "").replace("]]", "")


def _link_sub(m: re.Match, drop: frozenset[str]) -> str:
    return _link_text(m.group(1), drop)


def _to_paragraphs(text: str) -> list[str]:
    text = _HEADING.sub("\n\n", "\n" + text)
    text = _LIST.sub("\n\n\n", text)
    if "&" in text:
        text = html.unescape(text)
    text = _EMPTY_PARENS.sub("", "".join(_DANGLING_SEP.split(text)))
    text = _STRAY_SEP.sub("", text)
    text = _LEADING_SEP.sub(r"\1", text)
    if "（" in text:
        text = _EMPTY_PARENS_CJK.sub("", text)
    # One pass over the page, not one per paragraph: paragraph breaks become a marker word,
    # every other run of whitespace one space.
    flat = " ".join(_PARA_SPLIT.sub(f" {_PARA_MARK} ", text).split())
    flat = "".join(_SPACE_BEFORE.split(flat))
    for a, b in _SPACE_AFTER:
        if a in flat:
            flat = flat.replace(a, b)
    # a paragraph that starts with a separator lost what stood before it
    return [p for p in (b.strip().lstrip(",;、， ") for b in flat.split(_PARA_MARK))
            if p and _LETTER.search(p)]


def clean_fast(text: str, namespaces: Mapping | None = None, *, lang: str | None = None,
               templates: Iterable[str] = TEXT_TEMPLATES) -> tuple[list[str], bool]:
    """The regex cleaner: (paragraphs, whether the markup balanced)."""
    if "<!--" in text:
        text = _COMMENT.sub("", text)
    if "<" in text:
        text = _SELF_DROP.sub("", _DROP_TAG.sub("", _BR.sub("\n", text)))
    if "{{" in text:
        text = expand_templates(text, templates)
    text, ok1 = _remove_nested(text)
    text, ok2 = _remove_tables(text)
    if "<" in text:
        text = _TAG.sub("", text)
    text = _replace_links(text, drop_namespaces(namespaces, lang))
    text = _EXT_LINK.sub(lambda m: m.group(1) or "", text)
    text = _BARE_URL.sub("", text)
    if "''" in text:
        text = _strip_quotes(text)
    if "__" in text:
        text = _MAGIC.sub("", text)
    return _to_paragraphs(text), ok1 and ok2


def _strip_quotes(text: str) -> str:
    """Bold/italic quotes removed; four quotes are an apostrophe before bold (MediaWiki)."""
    if "''''''" in text:
        text = _LONG_QUOTES.sub("", text)
    return text.replace("'''''", "").replace("'''", "").replace("''", "")


def clean_mwparser(text: str, namespaces: Mapping | None = None, *, lang: str | None = None,
                   templates: Iterable[str] = TEXT_TEMPLATES) -> list[str]:
    """The mwparserfromhell cleaner: same removals, by the parse tree; what it leaves unparsed
    (templates and tables nested deeper than it parses, templates that never close) is removed
    by the fast path's rules, and a paragraph still holding markup is dropped."""
    return _clean_mw(text, namespaces, lang=lang, templates=templates)[0]


def _clean_mw(text: str, namespaces: Mapping | None = None, *, lang: str | None = None,
              templates: Iterable[str] = TEXT_TEMPLATES) -> tuple[list[str], int]:
    """``clean_mwparser``'s (paragraphs, characters of unparsed residue removed)."""
    import mwparserfromhell

    drop = drop_namespaces(namespaces, lang)
    text = expand_templates(_BR.sub("\n", _COMMENT.sub("", text)), templates)
    code = mwparserfromhell.parse(text, skip_style_tags=True)
    for node in list(code.ifilter(recursive=False)):
        _mw_remove(code, node, drop)
    _mw_remove_nested_links(code, drop)
    body = code.strip_code(normalize=True, collapse=False, keep_template_params=False)
    body = _DROP_TAG.sub("", body)
    # mwparserfromhell gives up on deep nesting and on templates that never close, and keeps
    # them as text: remove them as the fast path does (balanced spans, else innermost first
    # and each unclosed one to its paragraph's end); what goes is counted as residue
    before = len(body)
    body, _ = _remove_nested(body)
    body, balanced = _remove_tables(body)
    if not balanced:  # a table that never closes: its lines go
        body = "\n".join(ln for ln in body.split("\n")
                         if not ln.lstrip().startswith(("{|", "|", "!")))
    residue = before - len(body)
    body = _TAG.sub("", body)
    if "[[" in body:
        body = _replace_links(body, drop)
    body = _strip_quotes(body)
    body = _MAGIC.sub("", body)
    paras = _to_paragraphs(body)
    kept = [p for p in paras if not _RESIDUE.search(p)]
    if len(kept) < len(paras):
        residue += sum(map(len, paras)) - sum(map(len, kept))
    return kept, residue


def _mw_remove_nested_links(code, drop: frozenset[str]) -> None:  # type: ignore[no-untyped-def]
    """File, category and interlanguage links inside tags and tables go too: strip_code would
    keep their options and captions ("межа|170px")."""
    for link in list(code.ifilter_wikilinks(recursive=True)):
        title = str(link.title).strip()
        prefix = title.split(":", 1)[0].strip() if ":" in title and not title.startswith(":") else ""
        if prefix and (ns_key(prefix) in drop or _INTERWIKI.match(prefix)):
            try:
                code.remove(link)
            except ValueError:  # inside a link removed a moment ago
                pass


def _mw_remove(code, node, drop: frozenset[str]) -> None:  # type: ignore[no-untyped-def]
    from mwparserfromhell.nodes import Heading, Tag, Template, Wikilink

    if isinstance(node, (Template, Heading)) or isinstance(node, Tag) and (str(node.tag).lower() in DROP_TAGS or node.wiki_markup in ("{|",)):
        code.remove(node)
    elif isinstance(node, Wikilink):
        title = str(node.title).strip()
        prefix = title.split(":", 1)[0].strip() if ":" in title and not title.startswith(":") else ""
        if prefix and (ns_key(prefix) in drop or _INTERWIKI.match(prefix)):
            code.remove(node)
        elif title.startswith(":") and node.text is None:  # shown as its target: as the fast path
            code.replace(node, _link_text(title, drop))


def clean_wikitext(text: str, *, namespaces: Mapping | None = None, parser: str = "fast",
                   lang: str | None = None, templates: Iterable[str] = TEXT_TEMPLATES) -> list[str]:
    """Paragraphs of plain text from wikitext (links to text, text-carrying templates to their
    text, other templates and markup removed)."""
    return clean_text(text, namespaces=namespaces, parser=parser, lang=lang,
                      templates=templates)[0]


def clean_text(text: str, *, namespaces: Mapping | None = None, parser: str = "fast",
               lang: str | None = None, templates: Iterable[str] = TEXT_TEMPLATES
               ) -> tuple[list[str], int]:
    """``clean_wikitext``'s paragraphs and the characters of markup that mwparserfromhell left
    unparsed and the cleaner removed (0 where the fast path's markup balanced)."""
    if parser == "mwparser":
        return _clean_mw(text, namespaces, lang=lang, templates=templates)
    paras, balanced = clean_fast(text, namespaces, lang=lang, templates=templates)
    if balanced or len(text) > MW_MAX_CHARS:
        return paras, 0
    try:
        return _clean_mw(text, namespaces, lang=lang, templates=templates)
    except Exception:  # noqa: BLE001 - mwparserfromhell has known crashes: keep the fast result
        return paras, 0


class PageTimeout(Exception):
    """Cleaning one page took longer than its time limit."""


def _alarm(signum, frame):  # type: ignore[no-untyped-def]
    raise PageTimeout()


def clean_page(text: str | None, length: int, *, namespaces: Mapping | None = None,
               parser: str = "fast", max_bytes: int = 2_000_000, timeout_s: float = 10.0,
               lang: str | None = None, templates: Iterable[str] = TEXT_TEMPLATES
               ) -> tuple[list[str], str | None]:
    """Guarded ``clean_wikitext``: (paragraphs, None) or ([], reject reason).

    Reasons: ``oversized`` (over ``max_bytes``), ``timeout`` (slower than ``timeout_s``; where
    signals are available the work is also interrupted), ``clean_error`` (the cleaner raised),
    ``unparsed`` (more markup that mwparserfromhell could not parse was removed than text is
    left: the page is mostly unparsed markup; a smaller residue is removed and the page kept).
    """
    if text is None or length > max_bytes:
        return [], "oversized"
    use_alarm = timeout_s > 0 and threading.current_thread() is threading.main_thread() \
        and hasattr(signal, "setitimer")
    t0 = time.perf_counter()
    old = None
    try:
        if use_alarm:
            old = signal.signal(signal.SIGALRM, _alarm)
            signal.setitimer(signal.ITIMER_REAL, timeout_s)
        paras, residue = clean_text(text, namespaces=namespaces, parser=parser, lang=lang,
                                    templates=templates)
    except PageTimeout:
        return [], "timeout"
    except RecursionError:
        return [], "clean_error"
    except Exception:  # noqa: BLE001 - a page that breaks the cleaner is a counted reject
        return [], "clean_error"
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    if timeout_s > 0 and time.perf_counter() - t0 > timeout_s:
        return [], "timeout"
    if residue > sum(map(len, paras)):
        return [], "unparsed"
    return paras, None
