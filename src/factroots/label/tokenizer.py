"""The probed model's tokenizer for the token-overlap rule, loaded with `tokenizers` only.

The label stage must not import transformers, so it reads ``tokenizer.json`` (any fast
tokenizer) or, for WordPiece models saved without one (e.g. mBERT), ``vocab.txt``. When no
tokenizer can be found the rule is skipped and the reason recorded: never silently.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Tokens that are only a word-boundary marker carry no entity information: XLM-R's lone "▁"
# would otherwise make almost every subject/object pair "share a token".
_MARKERS = ("▁", "##", "Ġ", "Ċ")


@dataclass(frozen=True)
class TokenSets:
    """A function from text to the set of its token ids, and where it came from."""

    encode: Callable[[str], frozenset[int]] | None
    source: str
    note: str = ""


def _hub_snapshot(model: str) -> Path | None:
    """The local HF-cache snapshot of a hub id, if one exists (never downloads)."""
    home = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get(
        "HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub")
    snaps = sorted((home / f"models--{model.replace('/', '--')}" / "snapshots").glob("*"))
    return snaps[-1] if snaps else None


def _load(path: Path):  # type: ignore[no-untyped-def]
    """A `tokenizers.Tokenizer` from a tokenizer.json or a folder holding one or a vocab.txt."""
    from tokenizers import Tokenizer
    from tokenizers.implementations import BertWordPieceTokenizer

    if path.is_file():
        return Tokenizer.from_file(str(path))
    if (path / "tokenizer.json").is_file():
        return Tokenizer.from_file(str(path / "tokenizer.json"))
    if (path / "vocab.txt").is_file():
        conf = path / "tokenizer_config.json"
        lower = json.loads(conf.read_text()).get("do_lower_case", False) if conf.is_file() else False
        return BertWordPieceTokenizer(str(path / "vocab.txt"), lowercase=lower)
    raise FileNotFoundError(f"no tokenizer.json or vocab.txt in {path}")


def load_token_sets(candidates: list[str]) -> TokenSets:
    """The first loadable tokenizer among ``candidates`` (paths or hub ids in the local cache)."""
    tried = []
    for cand in candidates:
        if not cand or cand == "lab":
            continue
        path = Path(cand).expanduser()
        if not path.exists():
            path = _hub_snapshot(cand) or path
        try:
            tok = _load(path)
        except ImportError as exc:
            return TokenSets(None, "", f"the `tokenizers` package is missing ({exc})")
        except Exception as exc:  # noqa: BLE001 - any unreadable tokenizer is a recorded skip
            tried.append(f"{cand}: {type(exc).__name__}: {exc}".splitlines()[0])
            continue
        vocab = {i: t for t, i in tok.get_vocab().items()}

        def encode(text: str, _tok=tok, _vocab=vocab) -> frozenset[int]:
            ids = _tok.encode(text, add_special_tokens=False).ids
            return frozenset(i for i in ids if _strip(_vocab.get(i, "")))

        return TokenSets(encode, str(path))
    why = "; ".join(tried) if tried else "no tokenizer path configured or recorded"
    return TokenSets(None, "", f"token-overlap rule skipped: {why}")


def _strip(token: str) -> str:
    for m in _MARKERS:
        token = token.replace(m, "")
    return token.strip()
