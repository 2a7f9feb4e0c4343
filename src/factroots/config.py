"""Run configuration: frozen dataclasses loaded from YAML presets in ``conf/``.

Every field has a help string (``factroots <verb> --dry-run`` prints the resolved config).
Loading validates everything: an unknown key, a wrong type or a bad value is a one-line
``ConfigError`` naming the key and the file. The resolved config is written beside every output.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from factroots.errors import ConfigError


def opt(default: Any, help: str, choices: tuple | None = None) -> Any:  # noqa: A002
    """A config field with a help string (and optionally the allowed values)."""
    meta = {"help": help, "choices": choices}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


LAB_MODEL = "lab"  # the placeholder of probe.model: the plan resolves it to the built lab model


@dataclass(frozen=True)
class FactsConfig:
    """Where the facts come from."""

    mlama_dir: str | None = opt(None, "an mLAMA-format directory (<lang>/<relation>.jsonl, "
                                      "<lang>/templates.jsonl) instead of the shipped mLAMA 1.1")
    candidates_dir: str | None = opt(None, "a candidates directory (TREx_multilingual_objects/, "
                                           "GoogleRE_objects/) for mlama_dir; default: those "
                                           "folders inside mlama_dir, else the distinct objects "
                                           "of each relation's facts")
    exclude_relations: list = opt(["date_of_birth"], "relations left out (the paper drops "
                                                     "date_of_birth: it has no triples)")


# Templates whose visible text the cleaner keeps: ``name:param`` where param
# is a positional number (-1 = the last one) or a named parameter, alternatives comma-separated
# (the first present wins); ``name-*`` matches every name with that prefix (docs/trace.md)
TEXT_TEMPLATES = ("lang:2", "langx:2", "lang-*:1", "nowrap:1", "nobr:1", "nobreak:1",
                  "ill:lt,1", "interlanguage link:lt,1", "illm:lt,1", "transl:-1",
                  "transliteration:-1", "small:1", "smaller:1", "big:1", "sic:1",
                  "not a typo:1", "proper name:1", "abbr:1", "native name:2", "script:2",
                  "rtl-lang:2", "unicode:1", "nihongo:1", "korean:hangul,1", "zh:t,s,1",
                  "linktext:1", "lit:1", "noitalic:1", "lang-rtl:2", "quote:text,quote,1",
                  "blockquote:text,quote,1", "quotation:1", "цитата:текст,1")


@dataclass(frozen=True)
class TraceConfig:
    """Wikipedia dumps to co-occurrence (Spark)."""

    dumps: dict = opt({}, "lang -> list of dump paths or URIs (.xml, .xml.bz2, multistream "
                          ".xml.bz2 with its -index.txt.bz2 beside it); relative to the config file")
    dump_dir: str | None = opt(None, "a folder searched for <lang>wiki-*.xml* for languages "
                                     "not listed in `dumps`")
    aliases: str | None = opt(None, "an optional alias file (Parquet, CSV or TSV with columns "
                                    "lang, uri, alias), e.g. Wikidata aliases")
    parser: str = opt("fast", "wikitext cleaner: the fast regex path, or mwparserfromhell for "
                              "every page", ("fast", "mwparser"))
    allow_lang_mismatch: bool = opt(False, "read a dump whose siteinfo (dbname, base URL) names "
                                           "another language than the one it is listed under")
    text_templates: list = opt(list(TEXT_TEMPLATES), "templates expanded to their visible text "
                                                     "(name:param; docs/trace.md); all others "
                                                     "are removed")
    max_page_bytes: int = opt(2_000_000, "pages with more wikitext bytes are counted and skipped")
    page_timeout_s: float = opt(10.0, "time limit for cleaning one page; slower pages are "
                                      "counted and skipped")
    window: str = opt("chunk", "the window in which subject and object must co-occur for the fact "
                               "to be present", ("sentence", "chunk", "document"))
    min_count: int = opt(1, "a fact is present when it co-occurs at least this often")
    chunk_tokenizer: str | None = opt(None, "tokenizer (hub id or path) that cuts documents into "
                                            "chunks; None = the probed model's tokenizer")
    chunk_size: int = opt(512, "subwords per chunk (the paper's unit: 512 mBERT wordpieces)")
    min_name_len: int = opt(2, "names shorter than this (in characters) are skipped and counted")
    min_substring_len: int = opt(2, "the same minimum for substring languages (zh, ja, th), "
                                    "where a short name matches inside words")
    substring_langs: list = opt(["zh", "ja", "th"], "languages matched as substrings (no spaces "
                                                    "between words)")
    left_boundary_langs: list = opt(["ko", "tr", "fi", "hu", "et", "az", "eu", "ka", "ta"],
                                    "agglutinative languages matched with a left word boundary "
                                    "only")
    evidence_k: int = opt(5, "how many evidence sentence_ids to keep per (fact, language)")
    max_mentions_per_sentence: int = opt(64, "mentions kept per sentence for pairing")
    write_mentions: bool = opt(False, "also write the `mentions` table (one row per name found, "
                                      "from the same pass); off: only its counts, in the "
                                      "cooccurrence stats")
    partitions_per_file: int = opt(0, "split each indexed dump into this many byte ranges "
                                      "(0 = about one per 32 MB compressed, at least 2 for "
                                      "files of 8 MB or more)")
    spark_master: str = opt("local[2]", "Spark master for `factroots trace` (spark-submit "
                                        "sets its own)")
    spark_conf: dict = opt({}, "extra Spark settings (key -> value)")
    local_jit: str = opt("quick", "local mode only: how the JVM compiles Spark's code. quick = "
                                  "C1 only (-XX:TieredStopAtLevel=1): 40 % less JVM CPU on the "
                                  "demo's trace, about 1 core-s less per query (BENCHMARKS.md); "
                                  "full = the JVM's default C1 + C2, for local runs of many "
                                  "hours where C2's faster code pays", ("quick", "full"))


@dataclass(frozen=True)
class ProbeConfig:
    """Masked-LM probing on mLAMA."""

    model: str = opt("lab", "hub id or local path of a masked LM; 'lab' = the embedded lab "
                            "model built by `factroots lab build`")
    device: str = opt("auto", "where to run", ("auto", "cpu", "cuda", "mps"))
    dtype: str = opt("float32", "weights' precision on GPU", ("float32", "bfloat16", "float16"))
    batch_size: int = opt(128, "prompts per forward pass (halved on GPU out-of-memory)")
    protocols: list = opt(["full"], "probing protocols: full (the paper's full-match over "
                                    "k = 1..maxlen) and typed (mLAMA's typed querying)")
    all_k: bool = opt(False, "run every k = 1..maxlen as the paper does, instead of the fast "
                             "path that gives identical answers")
    partial: bool = opt(True, "compute correct_partial (partial-match); it needs every k from "
                              "the gold's distinct-id count to maxlen for each fact that does not "
                              "match early; off: full and exact only (about one prompt per fact "
                              "for WordPiece models), correct_partial left null")
    trust_remote_code: bool = opt(False, "allow model code from the hub (off: safer)")
    max_facts_per_lang: int = opt(0, "probe at most this many facts per language (0 = all)")
    shard: str = opt("0/1", "i/n: probe the i-th of n shards of the languages")


@dataclass(frozen=True)
class NeuronsConfig:
    """Neuron signatures (PROBELESS) and the overlap table."""

    site: str = opt("ffn", "what to capture: FFN activations after the activation function, or "
                           "the layer outputs", ("ffn", "hidden"))
    layers: list = opt([], "layers to capture (empty = all)")
    top_k: int = opt(100, "neurons kept per fact in `signatures`")
    overlap_k: int = opt(50, "top-k sets compared by Jaccard in `overlap` and `fact_labels`")
    min_group: int = opt(3, "a (lang, relation) group with fewer correct facts is flagged, "
                            "not ranked")
    batch_size: int = opt(0, "prompts per forward pass when capturing (0 = probe.batch_size; "
                             "halved on GPU out-of-memory)")


@dataclass(frozen=True)
class InterventionsConfig:
    """The causal test of shared neurons: switch off a fact's top-k units found in L, measure
    the fact at its prompt in L' (and in L, the positive control)."""

    enabled: bool = opt(True, "run the interventions stage in `factroots run`")
    k: int = opt(50, "units of the fact's L signature switched off (its first k neuron ids; "
                     "capped at neurons.top_k)")
    mode: str = opt("zero", "what to do to the units at the mask positions: set them to zero, "
                            "or multiply them by `scale`", ("zero", "scale"))
    scale: float = opt(0.0, "the factor for mode scale (e.g. 2.0 amplifies, 0.5 halves)")
    n_controls: int = opt(40, "same-relation control draws per fact: the top-k sets of other "
                              "facts of the same relation in L (all of them when the relation "
                              "has fewer); the permutation p-value is against these, so its "
                              "floor is 1 / (n_controls + 1) and Holm over m partners needs "
                              "n_controls >= m / alpha - 1 (39 for the lab's 2 partners)")
    controls: str = opt("facts", "same-relation controls: `facts` = the top-k sets of other "
                                 "facts of the relation themselves (at most one draw per "
                                 "fact); `pool` = n_controls k-unit sets drawn from those "
                                 "sets' units, each as likely as it is frequent among them "
                                 "(not limited by the number of facts: for small relations "
                                 "such as the lab's)", ("facts", "pool"))
    n_random: int = opt(10, "layer-matched random k-unit sets per fact (their mean effect is "
                            "reported beside the same-relation controls)")
    seed: int = opt(0, "seed of the control draws (per fact, independent of batching)")
    batch_size: int = opt(256, "ablated prompts per forward pass (halved on GPU out-of-memory)")


@dataclass(frozen=True)
class LabelConfig:
    """Labels per (fact, language)."""

    protocol: str = opt("full", "probing protocol whose answers count as correct",
                        ("full", "typed"))
    match: str = opt("full", "which correct flag of `predictions` counts: full-match (the "
                             "paper's), partial-match or exact-match", ("full", "partial", "exact"))
    naming_relations: list = opt(["P17", "P27", "P1412", "P140", "P103"],
                                 "relations whose object is cued by the subject's name")
    token_overlap: bool = opt(True, "easy-fact rule 2: subject and object share a token of the "
                                    "probed model's tokenizer")
    tokenizer: str | None = opt(None, "tokenizer.json (or a model folder) for the token-overlap "
                                      "rule; None = the probed model's (probe.model, or the "
                                      "model recorded in the predictions' manifest)")
    null_percentile: float = opt(95.0, "threshold percentile of the null Jaccard distribution "
                                       "(random different facts of the same relation)")
    null_samples: int = opt(200, "null pairs sampled per language pair (all pairs when fewer "
                                 "exist)")
    min_null: int = opt(10, "a null stratum with fewer values gives no threshold: the fact's "
                            "same-object stratum falls back to the relation's same-object pairs, "
                            "a different-object (or pooled) null that small leaves the partner "
                            "untested (reason no_null); independent needs this many values")
    use_small_groups: bool = opt(False, "use signatures flagged small_group (fewer facts than "
                                        "neurons.min_group in their relation: arbitrary ranking)")
    seed: int = opt(0, "seed for the null sampling")
    correction: str = opt("holm", "multiple-testing correction of a fact's per-partner "
                                  "p-values (overlap and causal verdicts alike): holm "
                                  "(family-wise), bh (false discovery rate) or none",
                          ("holm", "bh", "none"))
    alpha: float = opt(0.05, "level at which a corrected per-partner p-value counts")
    null_rule: str = opt("stratified", "the null a fact's Jaccard is tested against: "
                                       "stratified = the fact's own L signature against the L' "
                                       "signatures of other facts of its relation, split into a "
                                       "same-object and a different-object stratum (shared must "
                                       "beat both); pooled = the language pair's null mixing "
                                       "every relation and object (the old rule, for comparison)",
                         ("stratified", "pooled"))
    independent_quantile: float = opt(50.0, "independent needs J at or below this percentile "
                                            "of the different-object stratum (pooled rule: of "
                                            "the pair's null) for every tested partner; above it "
                                            "and not shared is inconclusive")
    max_prior: float = opt(0.2, "an absent fact whose answer is given to more than this share "
                                "of L's other prompts of the relation is prior_explained, not "
                                "transferred")
    identical_spellings: str = opt("record", "partners where subject and object are spelled "
                                             "the same in both languages (the prompts share "
                                             "their entity tokens): record them "
                                             "(partner_identical) or exclude them from the "
                                             "tests (neither shared nor independent)",
                                   ("record", "exclude"))
    transfer_evidence: str = opt("none", "the neuron evidence transferred needs that the "
                                         "fact is shared with at least one source language: "
                                         "none (a source that passes the cue, sibling and "
                                         "prior controls suffices; the lab's counterfactual "
                                         "truth backs it, docs/lab.md), overlap (its L "
                                         "signature shared under the shared rule, corrected), "
                                         "causal (the interventions' verdict: its L units "
                                         "carry it in a source) or either of the two",
                                 ("overlap", "causal", "either", "none"))


@dataclass(frozen=True)
class ReportConfig:
    """The report."""

    formats: list = opt(["md", "html"], "report formats to write")
    dir: str = opt("report", "report folder, relative to `out` (or absolute)")
    top_langs: int = opt(30, "languages in the overlap heatmap (by P@1)")
    min_facts: int = opt(30, "numbers over fewer facts than this are flagged as small")


@dataclass(frozen=True)
class LabConfig:
    """The controlled experiment and embedded default model."""

    langs: list = opt(["en", "uk", "bg"], "languages of the lab (each needs a bundled dump "
                                          "sample and a lab alphabet: en, uk, bg)")
    seed: int = opt(0, "seed for the world, corpus and training (the probed model's seed)")
    replicate_seeds: list = opt([], "more seeds of the full model: a fact counts as transferred "
                                    "only when correct under every seed (each costs a training)")
    counterfactual: bool = opt(True, "train the counterfactual model (transfer facts removed from "
                                     "their source language) that the transfer truth needs")
    transfer_facts: int = opt(180, "test facts of the transfer group (spread over the source "
                                  "languages and name forms)")
    transfer_forms: list = opt(["identical", "transliterated", "unrelated"],
                               "name forms the transfer and control facts cycle through, in "
                               "blocks of one fact per source language (a form listed twice "
                               "gets twice the facts; docs/lab.md)")
    facts_per_group: int = opt(30, "test facts of each other group (control, shared, "
                                    "independent_same_obj, independent_diff_obj)")
    background_facts: int = opt(150, "real mLAMA facts (of every lab language) probed beside the "
                                     "fictional ones, as a background")
    detector_facts: int = opt(8, "facts of each detector group (detector_shared, "
                                  "detector_independent): written into chosen FFN units of the "
                                  "trained model, never trained (0: no detector check)")
    detector_units: int = opt(4, "new FFN units per detector fact and language (last layer)")
    repeats: int = opt(8, "sentences per planted (fact, language), cycling through the templates")
    hidden_size: int = opt(128, "hidden size of the lab MLM")
    layers: int = opt(2, "encoder layers of the lab MLM")
    ffn_width: int = opt(0, "FFN units per layer of the lab MLM (0: 4 x hidden_size)")
    ffn_act: str = opt("gelu", "FFN activation of the lab MLM (docs/lab.md: which localises "
                               "facts in units)", choices=("gelu", "relu"))
    vocab_size: int = opt(8000, "vocabulary size of the lab tokenizer (about)")
    seq_len: int = opt(32, "tokens per training sequence (longer real sentences are cut)")
    batch_size: int = opt(64, "sequences per training step")
    lr: float = opt(3e-3, "peak learning rate (5e-3 diverged in the pilot)")
    mix: list = opt([0.75, 0.1, 0.15], "share of planted, real and parallel sequences per batch")
    train_minutes: float = opt(20.0, "CPU budget per model in core-minutes (each model trains on "
                                     "one thread): a safety cap that stops training early, with "
                                     "a warning (the model then depends on the machine's speed)")
    max_steps: int = opt(5000, "training steps (fixed: the same seed gives the same model)")


@dataclass(frozen=True)
class RunConfig:
    """One whole run: where outputs go, which facts, and each stage's settings."""

    out: str = opt("out", "output root; every table goes to <out>/<table>/lang=<xx>/")
    langs: list = opt([], "languages to run (empty = every language of the facts)")
    relations: list = opt([], "relations to run (empty = all)")
    facts: FactsConfig = field(default_factory=FactsConfig, metadata={"help": "facts stage"})
    trace: TraceConfig = field(default_factory=TraceConfig, metadata={"help": "trace stage"})
    probe: ProbeConfig = field(default_factory=ProbeConfig, metadata={"help": "probe stage"})
    neurons: NeuronsConfig = field(default_factory=NeuronsConfig, metadata={"help": "neurons"})
    interventions: InterventionsConfig = field(default_factory=InterventionsConfig,
                                               metadata={"help": "interventions stage"})
    label: LabelConfig = field(default_factory=LabelConfig, metadata={"help": "label stage"})
    report: ReportConfig = field(default_factory=ReportConfig, metadata={"help": "report"})
    lab: LabConfig = field(default_factory=LabConfig, metadata={"help": "the lab"})
    base_dir: str = opt(".", "folder that relative paths are resolved against (the config "
                             "file's folder when loaded from a file)")

    def path(self, p: str) -> Path:
        """Resolve a config path against ``base_dir`` (URIs with a scheme are left alone)."""
        if "://" in p:
            return Path(p)
        q = Path(p).expanduser()
        return q if q.is_absolute() else Path(self.base_dir) / q


def _check_type(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return None
        inner = [a for a in typing.get_args(tp) if a is not type(None)][0]
        return _check_type(value, inner, where)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    expected = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict}
    py = expected.get(getattr(tp, "__name__", str(tp)), tp)
    if not isinstance(value, py) or (py is int and isinstance(value, bool)):
        article = "an" if py.__name__[0] in "aeiou" else "a"
        raise ConfigError(f"{where}: expected {py.__name__}, got {value!r}",
                          f"set {where} to {article} {py.__name__}")
    return value


# keys of earlier releases: the error says what replaced them
RENAMED = {"label.transfer_requires_overlap": "label.transfer_evidence (true: overlap, "
                                              "false: none)"}


def _unknown_fix(key: str, fields: list[str]) -> str:
    """The fix for an unknown key: its new name, a close spelling, or the keys there are."""
    if key in RENAMED:
        return f"renamed: use {RENAMED[key]}"
    where, _, name = key.rpartition(".")
    close = difflib.get_close_matches(name, fields, n=1)
    if close:
        return f"did you mean {where + '.' if where else ''}{close[0]}? (keys: {fields})"
    return f"use one of {fields}"


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}", "fix the YAML")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigError(f"unknown config key {key}", _unknown_fix(key, sorted(fields)))
    kwargs = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value or {}, key)
            continue
        value = _check_type(value, tp, key)
        choices = fields[name].metadata.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {list(choices)}",
                              f"set {key} to one of {list(choices)}")
        kwargs[name] = value
    return cls(**kwargs)


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for i, p in enumerate(parents):
        if data.get(p) is None:  # an empty YAML section (`probe:`) loads as None
            data[p] = {}
        if not isinstance(data[p], dict):
            where = ".".join(parents[:i + 1])
            raise ConfigError(f"cannot set {dotted}: {where} is {data[p]!r}, not a section",
                              f"fix {where} in the YAML")
        data = data[p]
    data[last] = value


def _read_text(p: Path) -> str:
    """A preset's text: UTF-8, or a one-line error naming the byte."""
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"config file {p} cannot be read: {exc.strerror}",
                          "pass a readable YAML file") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{p}:{line}: not UTF-8 (byte {raw[exc.start:exc.start + 1]!r} at "
                          f"offset {exc.start})", "save the preset as UTF-8") from None


def parse_yaml(text: str, where: str) -> Any:
    """Safe-load YAML, refusing aliases (``*name``: a few hundred bytes of them expand to
    gigabytes); errors name ``where`` with the line and column."""
    try:
        for ev in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(ev, yaml.AliasEvent):
                m = ev.start_mark
                raise ConfigError(f"{where}:{m.line + 1}:{m.column + 1}: YAML alias *{ev.anchor} "
                                  "is not allowed", "write the value out in full")
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        m = exc.problem_mark or exc.context_mark
        at = f":{m.line + 1}:{m.column + 1}" if m else ""
        raise ConfigError(f"{where}{at}: not valid YAML: {exc.problem or exc.context}",
                          "fix the YAML there") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}".splitlines()[0], "fix the YAML") from None


def parse_set(item: str) -> tuple[str, Any]:
    """``KEY=VALUE`` of ``--set`` -> (key, YAML value), or a one-line error."""
    key, eq, raw = item.partition("=")
    key = key.strip()
    if not eq or not key:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE",
                          "write e.g. --set probe.batch_size=64")
    return key, parse_yaml(raw, f"--set {key}")


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
                sets: Mapping[str, Any] | None = None) -> RunConfig:
    """Load a YAML preset (or the defaults), apply dotted ``overrides`` (None: not given, as an
    unset command-line option) and then ``sets`` (``--set``: applied as given, so an empty
    value is YAML null and must suit the key's type), validate, return it."""
    data: dict = {}
    src = "defaults"
    if path is not None:
        p = Path(path)
        src = str(p)
        if not p.is_file():
            raise ConfigError(f"config file {p} not found", "pass an existing YAML file, "
                              "e.g. conf/default.yaml")
        data = parse_yaml(_read_text(p), str(p)) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: expected a mapping of config keys, got {type(data).__name__}",
                              "write the preset as `key: value` lines")
        data.setdefault("base_dir", str(p.resolve().parent.parent if p.resolve().parent.name == "conf"
                                        else p.resolve().parent))
    given = {k: v for k, v in (overrides or {}).items() if v is not None} | dict(sets or {})
    out_in_preset = "out" in data and given.get("out") is None
    merged = copy.deepcopy(data)
    try:
        for k, v in given.items():
            _set_dotted(merged, k, v)
    except ConfigError as exc:
        raise ConfigError(f"--set: {exc.message}", exc.fix) from None
    try:
        cfg = _checked(merged)
    except ConfigError as exc:
        # blame the preset only when it fails alike without the overrides
        origin = "--set" if given and not _fails_alike(data, exc) else src
        raise ConfigError(f"{origin}: {exc.message}", exc.fix) from None
    return _resolve_out(cfg, out_in_preset)


def _fails_alike(data: dict, exc: ConfigError) -> bool:
    """Whether ``data`` alone fails with the same error as ``exc``."""
    try:
        _checked(data)
    except ConfigError as alone:
        return alone.message == exc.message
    return False


def _checked(data: dict) -> RunConfig:
    """Build and validate ``data``."""
    cfg = _build(RunConfig, data, "")
    validate(cfg)
    return cfg


def _resolve_out(cfg: RunConfig, in_preset: bool) -> RunConfig:
    """Make ``out`` absolute once, so every stage writes to the same place whatever the cwd:
    a preset's ``out`` is relative to its ``base_dir``, a command-line ``--out`` to the cwd."""
    out = Path(cfg.out).expanduser()
    if "://" in cfg.out or out.is_absolute():
        return cfg
    base = Path(cfg.base_dir) if in_preset else Path.cwd()
    return dataclasses.replace(cfg, out=str((base / out).resolve()))


def validate(cfg: RunConfig) -> None:
    """Check values that a type alone does not catch (the caller names where they came from)."""
    shard = cfg.probe.shard.split("/")
    if len(shard) != 2 or not all(s.isdigit() for s in shard) or int(shard[0]) >= int(shard[1]):
        raise ConfigError(f"probe.shard {cfg.probe.shard!r} is not i/n with i < n",
                          "use e.g. 0/4")
    for name, value in (("probe.batch_size", cfg.probe.batch_size),
                        ("neurons.top_k", cfg.neurons.top_k), ("trace.chunk_size", cfg.trace.chunk_size),
                        ("trace.min_count", cfg.trace.min_count)):
        if value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}", f"set {name} to 1 or more")
    if cfg.lab.ffn_width < 0:
        raise ConfigError(f"lab.ffn_width must be >= 0, got {cfg.lab.ffn_width}",
                          "set lab.ffn_width to 0 (4 x hidden_size) or a unit count")
    if cfg.neurons.overlap_k > cfg.neurons.top_k:
        raise ConfigError(f"neurons.overlap_k ({cfg.neurons.overlap_k}) exceeds "
                          f"neurons.top_k ({cfg.neurons.top_k})", "lower overlap_k")
    iv = cfg.interventions
    # a signature holds neurons.top_k units: a larger k uses all of them (job_interventions)
    if iv.k < 1:
        raise ConfigError(f"interventions.k ({iv.k}) must be at least 1",
                          "set interventions.k to a positive number")
    if iv.n_controls < 1 or iv.batch_size < 1 or iv.n_random < 0:
        raise ConfigError("interventions.n_controls and batch_size must be >= 1, "
                          "n_random >= 0", "set them to 1 or more (n_random: 0 or more)")
    if not 0 < cfg.label.null_percentile < 100:
        raise ConfigError("label.null_percentile must be in (0, 100)", "use e.g. 95")
    if not 0 < cfg.label.independent_quantile < 100:
        raise ConfigError("label.independent_quantile must be in (0, 100)", "use e.g. 50")
    if not 0 < cfg.label.alpha < 1 or not 0 <= cfg.label.max_prior <= 1:
        raise ConfigError("label.alpha must be in (0, 1) and label.max_prior in [0, 1]",
                          "use e.g. alpha 0.05, max_prior 0.2")
    if cfg.label.match == "partial" and not cfg.probe.partial:
        raise ConfigError("label.match is partial but probe.partial is off "
                          "(correct_partial would be null)", "set probe.partial: true")
    unknown = [p for p in cfg.probe.protocols if p not in ("full", "typed")]
    if unknown:
        raise ConfigError(f"unknown probe protocol {unknown[0]!r}", "use full and/or typed")


def to_dict(cfg: Any) -> dict:
    """The resolved config as plain data (for manifests and --dry-run)."""
    return dataclasses.asdict(cfg)


def describe(cls: type = RunConfig, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, default, help) for every field, for docs and --help."""
    rows = []
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        tp = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(tp):
            rows += describe(tp, key + ".")
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            rows.append((key, repr(default), f.metadata.get("help", "")))
    return rows
