"""Capture activations at named module paths, averaged over the mask positions only.

A TraceDict-style context manager (baukit ``TraceDict``; style.md item 8): every site is a
module path such as ``bert.encoder.layer.3.intermediate`` (the FFN activation, after GELU) or
``roberta.encoder.layer.3.output`` (the layer's output hidden state), as named by the model
family's adapter in ``probe/models.py``. For each site the forward hook keeps only the rows at
``positions`` (the mask tokens), averages them per prompt and drops the rest, so a whole
sequence is never stored. Hooks are removed on exit, also on error. With ``stop=True`` the
forward pass is cut as soon as every site has fired (the MLM head, the costliest part for a
large vocabulary, never runs), and the ``StopForward`` that does it is swallowed on exit.

    with Capture(model, sites, positions=input_ids == mask_id, stop=True) as cap:
        model(input_ids=input_ids, attention_mask=attention_mask)
    acts = cap.stacked()  # [batch, len(sites) * width]; neuron n = site n // width, unit n % width
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import torch

from factroots.errors import ModelError


def site_module(model: torch.nn.Module, site: str) -> torch.nn.Module:
    """The submodule at a site path (ModelError when absent)."""
    try:
        return model.get_submodule(site)
    except AttributeError:
        raise ModelError(f"the model has no module {site!r}",
                         "check the model family's adapter in probe/models.py") from None


class StopForward(Exception):
    """Raised by a hook to end the forward pass once every site has been captured."""


class _Hooks:
    """Forward hooks on named modules of ``self.model``, all removed together (also when
    registering one of them fails)."""

    model: torch.nn.Module
    _handles: list[Any]

    def _register(self, hooks: dict[str, Any]) -> None:
        try:
            for site, hook in hooks.items():
                self._handles.append(site_module(self.model, site).register_forward_hook(hook))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Remove every hook (idempotent)."""
        for h in self._handles:
            h.remove()
        self._handles = []


class Capture(_Hooks):
    """Forward hooks on named modules that keep the mean over mask positions per prompt."""

    def __init__(self, model: torch.nn.Module, sites: Sequence[str], *,
                 positions: torch.Tensor | None = None, stop: bool = False) -> None:
        if not sites or len(set(sites)) != len(sites):
            raise ModelError(f"sites must be distinct and non-empty, got {list(sites)}",
                             "name each layer once")
        self.model = model
        self.sites = list(sites)
        self.positions = positions  # [batch, seq] bool
        self.stop = stop
        self.outputs: dict[str, torch.Tensor] = {}  # site -> [batch, width] float32
        self._handles: list[Any] = []

    def __enter__(self) -> Self:
        self.outputs = {}
        self._register({site: self._hook(site) for site in self.sites})
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        self.close()
        return exc_type is not None and issubclass(exc_type, StopForward)


    def _hook(self, site: str):
        def hook(_module: torch.nn.Module, _inputs: Any, output: Any) -> None:
            out = output[0] if isinstance(output, (tuple, list)) else output  # [batch, seq, width]
            self.outputs[site] = masked_mean(out, self._positions(out))
            if self.stop and len(self.outputs) == len(self.sites):
                raise StopForward
        return hook

    def _positions(self, out: torch.Tensor) -> torch.Tensor:
        if self.positions is None:
            raise ModelError("Capture needs the mask positions", "pass positions=input_ids == mask_id")
        if tuple(self.positions.shape) != tuple(out.shape[:2]):
            raise ModelError(f"positions {tuple(self.positions.shape)} do not fit activations "
                             f"{tuple(out.shape)}", "pass one bool per input token")
        return self.positions.to(out.device)

    def stacked(self) -> torch.Tensor:
        """The captured sites side by side, in ``sites`` order: ``[batch, n_sites * width]``."""
        missing = [s for s in self.sites if s not in self.outputs]
        if missing:
            raise ModelError(f"sites {missing} did not run in the forward pass",
                             "check the layer indices against the model's depth")
        return torch.cat([self.outputs[s] for s in self.sites], dim=1)


def masked_mean(out: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Per row, the float32 mean of ``out[b, s, :]`` over ``positions[b, s]`` (0 if none)."""
    rows, cols = positions.nonzero(as_tuple=True)
    picked = out[rows, cols].float()  # [n_masks_in_batch, width]: only the mask rows are copied
    acc = torch.zeros(out.shape[0], out.shape[2], dtype=torch.float32, device=out.device)
    acc.index_add_(0, rows, picked)
    counts = positions.sum(dim=1, dtype=torch.float32).clamp(min=1.0)
    return acc / counts[:, None]


@torch.no_grad()
def capture_batch(model: torch.nn.Module, sites: Sequence[str], input_ids: torch.Tensor,
                  attention_mask: torch.Tensor, mask_token_id: int, *,
                  stop: bool = True) -> torch.Tensor:
    """Run one padded batch and return ``[batch, n_sites * width]`` float32 on the CPU."""
    positions = input_ids == mask_token_id
    with Capture(model, sites, positions=positions, stop=stop) as cap:
        model(input_ids=input_ids, attention_mask=attention_mask)
    return cap.stacked().cpu()


class Ablate(_Hooks):
    """Forward hooks that scale chosen units at the mask positions, row by row of the batch.

    ``factors`` maps a site (module path) to a ``[batch, width]`` multiplier: 1 leaves a unit
    alone, 0 switches it off, any other value scales it; it is applied to the module's output
    at the rows' ``positions`` only (the masks), so every other token is untouched. Each row of
    the batch carries its own units, so many ablations share one forward pass. Hooks are
    removed on exit, also on error.

        with Ablate(model, {"bert.encoder.layer.1.intermediate": f}, positions=ids == mask_id):
            model(input_ids=ids, attention_mask=att)
    """

    def __init__(self, model: torch.nn.Module, factors: dict[str, torch.Tensor], *,
                 positions: torch.Tensor) -> None:
        self.model = model
        self.factors = factors
        self.positions = positions  # [batch, seq] bool
        self._handles: list[Any] = []

    def __enter__(self) -> Self:
        self._register({site: self._hook(f) for site, f in self.factors.items()})
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        self.close()
        return False


    def _hook(self, factor: torch.Tensor):
        def hook(_module: torch.nn.Module, _inputs: Any, output: Any) -> None:
            out = output[0] if isinstance(output, (tuple, list)) else output  # [batch, seq, width]
            if tuple(self.positions.shape) != tuple(out.shape[:2]):
                raise ModelError(f"positions {tuple(self.positions.shape)} do not fit "
                                 f"activations {tuple(out.shape)}", "pass one bool per token")
            if tuple(factor.shape) != (out.shape[0], out.shape[2]):
                raise ModelError(f"unit factors {tuple(factor.shape)} do not fit activations "
                                 f"{tuple(out.shape)}", "pass one factor per row and unit")
            rows, cols = self.positions.to(out.device).nonzero(as_tuple=True)
            # the module's output is a fresh tensor (GELU or LayerNorm result): edit in place
            out[rows, cols] = out[rows, cols] * factor.to(out.device, out.dtype)[rows]
        return hook
