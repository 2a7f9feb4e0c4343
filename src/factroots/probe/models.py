"""Load any Hugging Face masked LM and describe it through a per-family adapter.

``load_model(name_or_path, device, dtype)`` returns a ``LoadedModel``: the
``AutoModelForMaskedLM`` in eval mode on its device, its ``AutoTokenizer``, and a
``FamilyAdapter`` that names the model's parts as module paths (style.md item 8):

* ``ffn_site(l)``    -> ``bert.encoder.layer.{l}.intermediate`` (FFN activation after GELU,
  width ``ffn_width``); ``roberta.encoder.layer.{l}.intermediate`` for XLM-R;
* ``hidden_site(l)`` -> ``bert.encoder.layer.{l}.output`` (the layer's output hidden state,
  width ``hidden_size``);
* ``base_attr`` / ``head_attr``: the encoder and the MLM head (``bert``/``cls``,
  ``roberta``/``lm_head``), so the probe can run the head on the mask positions only;
* ``mask_token`` / ``mask_id`` and ``space_id``: the id of the lone SentencePiece "▁" token
  that the paper's ``strip_space`` deletes (id 6 in xlm-roberta; ``None`` for WordPiece).

Families: BERT (``bert``) and XLM-R (``xlm-roberta``, ``roberta``, ``camembert``). Any other
masked LM whose encoder follows the BERT layout (``<prefix>.encoder.layer.N.intermediate``)
gets a generic adapter; one without it can still be probed (full logits), but has no sites.
Remote code is off unless asked for. A missing model or one without MLM head is a ModelError.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from factroots.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

SPACE_PIECE = "\u2581"  # "▁", SentencePiece's word-boundary marker
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# model_type -> (family, encoder attribute, MLM head attribute)
FAMILIES = {
    "bert": ("bert", "bert", "cls"),
    "xlm-roberta": ("xlmr", "roberta", "lm_head"),
    "roberta": ("xlmr", "roberta", "lm_head"),
    "camembert": ("xlmr", "roberta", "lm_head"),
}


@dataclass(frozen=True)
class FamilyAdapter:
    """Names of a model family's parts: encoder, MLM head, FFN and layer-output sites."""

    family: str  # "bert", "xlmr" or "generic"
    base_attr: str | None  # the encoder module (None: unknown layout)
    head_attr: str | None  # the MLM head module (None: use the full model's logits)
    num_layers: int
    hidden_size: int
    ffn_width: int
    mask_token: str
    mask_id: int
    space_id: int | None
    vocab_size: int

    def ffn_site(self, layer: int) -> str:
        """Module path of layer ``layer``'s FFN activation (output of ``intermediate``)."""
        return f"{self._layer(layer)}.intermediate"

    def hidden_site(self, layer: int) -> str:
        """Module path of layer ``layer``'s output hidden state (FFN block's ``output``)."""
        return f"{self._layer(layer)}.output"

    def sites(self, kind: str = "ffn", layers: list[int] | None = None) -> list[str]:
        """Sites of ``kind`` ("ffn" or "hidden") for ``layers`` (all when empty or None)."""
        if kind not in ("ffn", "hidden"):
            raise ConfigError(f"unknown site kind {kind!r}", "use ffn or hidden")
        chosen = list(layers) if layers else list(range(self.num_layers))
        fn = self.ffn_site if kind == "ffn" else self.hidden_site
        return [fn(layer) for layer in chosen]

    def site_width(self, kind: str = "ffn") -> int:
        """Units per layer at a site of ``kind``."""
        return self.ffn_width if kind == "ffn" else self.hidden_size

    def _layer(self, layer: int) -> str:
        if self.base_attr is None:
            raise ModelError(f"no known layer layout for family {self.family!r}",
                             "use a BERT- or XLM-R-family model for neuron capture")
        if not 0 <= layer < self.num_layers:
            raise ConfigError(f"layer {layer} out of range 0..{self.num_layers - 1}",
                              "fix neurons.layers")
        return f"{self.base_attr}.encoder.layer.{layer}"


@dataclass
class LoadedModel:
    """A masked LM ready to probe: model (eval), tokenizer, family adapter, device, dtype."""

    model: Any  # transformers.PreTrainedModel with an MLM head
    tokenizer: Any  # transformers tokenizer
    family: FamilyAdapter
    device: torch.device
    dtype: torch.dtype
    name: str

    def module(self, site: str) -> torch.nn.Module:
        """The submodule at a site path (ModelError when absent)."""
        try:
            return self.model.get_submodule(site)
        except AttributeError:
            raise ModelError(f"{self.name} has no module {site!r}",
                             "check the family adapter in probe/models.py") from None


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> cuda, else mps, else cpu; an unavailable accelerator is a ConfigError."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available",
                          "use --device auto or cpu, or install a CUDA build of torch")
    if device == "mps" and not has_mps:
        raise ConfigError("device 'mps' requested but MPS is not available", "use --device cpu")
    if device not in ("cpu", "mps") and not device.startswith("cuda"):
        raise ConfigError(f"unknown device {device!r}", "use auto, cpu, cuda or mps")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """The torch dtype for a config name; float16 needs a GPU."""
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}", f"use one of {sorted(DTYPES)}")
    if dtype == "float16" and device.type == "cpu":
        raise ConfigError("dtype float16 is not supported on CPU", "use float32 or bfloat16")
    return DTYPES[dtype]


def _looks_local(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).expanduser().exists() or "\\" in name


def _load_parts(name: str, trust_remote_code: bool, local: bool) -> tuple[Any, Any, dict]:
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    if local and not Path(name).is_dir():
        raise ModelError(f"model folder {name} does not exist", "pass an existing model folder "
                         "or a hub id (`factroots lab build` makes the default one)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
        model, info = AutoModelForMaskedLM.from_pretrained(
            name, trust_remote_code=trust_remote_code, output_loading_info=True)
    except ValueError as exc:  # e.g. "Unrecognized configuration class ... for AutoModelForMaskedLM"
        raise ModelError(f"{name} is not a masked LM: {str(exc).splitlines()[0]}",
                         "use a model with an MLM head (AutoModelForMaskedLM)") from exc
    except OSError as exc:
        raise ModelError(f"cannot load model {name!r}: {str(exc).splitlines()[0]}",
                         "check the hub id or path; offline, download it first or pass a "
                         "local folder") from exc
    return model, tokenizer, info


def _check_head(name: str, model: Any, info: dict, head_attr: str | None) -> None:
    missing = sorted(info.get("missing_keys", ()))
    prefixes = (f"{head_attr}.",) if head_attr else ("cls.", "lm_head.", "vocab_", "pred")
    head_missing = [k for k in missing if k.startswith(prefixes)]
    if head_missing:
        raise ModelError(f"{name} has no trained MLM head (missing {head_missing[0]} and "
                         f"{len(head_missing) - 1} more)", "use a checkpoint saved with its "
                         "masked-LM head, e.g. *ForMaskedLM")


def build_adapter(model: Any, tokenizer: Any) -> FamilyAdapter:
    """The family adapter of a loaded model and tokenizer."""
    cfg = model.config
    family, base, head = FAMILIES.get(cfg.model_type, ("generic", None, None))
    if base is None:
        prefix = getattr(model, "base_model_prefix", "")
        try:
            model.get_submodule(f"{prefix}.encoder.layer.0.intermediate")
            base = prefix
        except AttributeError:
            base = None
    if tokenizer.mask_token is None or tokenizer.mask_token_id is None:
        raise ModelError(f"the tokenizer of {getattr(cfg, 'name_or_path', '?')} has no mask token",
                         "use a masked-LM tokenizer")
    space = tokenizer.convert_tokens_to_ids(SPACE_PIECE)
    space_id = None if space is None or space == tokenizer.unk_token_id else int(space)
    return FamilyAdapter(
        family=family, base_attr=base, head_attr=head,
        num_layers=int(getattr(cfg, "num_hidden_layers", 0)),
        hidden_size=int(getattr(cfg, "hidden_size", 0)),
        ffn_width=int(getattr(cfg, "intermediate_size", 0)),
        mask_token=str(tokenizer.mask_token), mask_id=int(tokenizer.mask_token_id),
        space_id=space_id, vocab_size=int(model.get_output_embeddings().weight.shape[0]
                                          if model.get_output_embeddings() is not None
                                          else cfg.vocab_size))


def load_model(name_or_path: str, device: str = "auto", dtype: str = "float32",
               trust_remote_code: bool = False) -> LoadedModel:
    """Load a masked LM and its tokenizer by hub id or local path, in eval mode on ``device``."""
    dev = resolve_device(device)
    tdtype = resolve_dtype(dtype, dev)
    local = _looks_local(name_or_path)
    name = str(Path(name_or_path).expanduser()) if local else name_or_path
    model, tokenizer, info = _load_parts(name, trust_remote_code, local)
    adapter = build_adapter(model, tokenizer)
    _check_head(name, model, info, adapter.head_attr)
    model = model.to(device=dev, dtype=tdtype).eval()
    log.info("loaded %s (%s, %d layers) on %s in %s", name, adapter.family, adapter.num_layers,
             dev, dtype)
    return LoadedModel(model=model, tokenizer=tokenizer, family=adapter, device=dev,
                       dtype=tdtype, name=name)
