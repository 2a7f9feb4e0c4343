"""Build `interventions` for one (lang, relation) group from `signatures`, `predictions`, `queries`.

For every fact f correct in L with a signature, and every language L' where f is also correct
(L' = L included: the positive control), f's matching prompt in L' is run with the first ``k``
units of f's **L** signature switched off (``mode: zero``) or multiplied by ``scale`` at the
mask positions (``capture.Ablate``). Recorded per (f, L'):

* ``dlogp``: the change of log p of the answer ids, averaged over the masks, against the same
  prompt run clean in the same pass. The answer ids are the model's own correct prediction at
  the matching prompt (`predictions.pred_ids`): the gold ids for WordPiece, the gold ids with
  their lone "▁" slots for SentencePiece (the prompt has k masks, the gold may strip shorter);
* ``flipped``: the ablated prediction no longer full-matches (``protocol.strip`` differs);
* controls, seeded per (seed, L, uuid) so they do not depend on batching or resuming: the
  first ``k`` units of up to ``n_controls`` other facts of the same relation in L (what any
  fact of the relation would do: the relation confound), and ``n_random`` random k-unit sets
  matched to f's units layer by layer (excluding f's own units);
* with ``null="pool"`` (config ``interventions.controls: pool``) the same-relation controls
  are ``n_controls`` k-unit sets drawn
  from the units of the other facts' sets, each as likely as it is frequent among them
  (relations with few facts: the draws are not limited by the number of facts);
* ``pvalue``: the permutation p-value of f's effect among the same-relation draws,
  (1 + #{controls at least as strong}) / (1 + n_controls), one-sided in the direction the
  factor pushes (down for factors < 1); NaN when the relation has no other fact.

Every (prompt, unit set) pair is one row of a batched forward pass: rows of one prompt (clean,
f's set, each control) sit side by side with per-row unit masks, prompts sorted by length.
"""

from __future__ import annotations

import logging
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from factroots import tables
from factroots.errors import ModelError
from factroots.probe import protocol
from factroots.probe.capture import Ablate
from factroots.probe.decode import _is_oom
from factroots.probe.models import LoadedModel

log = logging.getLogger(__name__)

NULLS = ("facts", "pool")


@dataclass(frozen=True)
class Target:
    """A fact's matching prompt in one language: its token ids, mask columns and answer ids."""

    lang: str
    uuid: str
    ids: tuple[int, ...]
    cols: tuple[int, ...]  # positions of the masks, in order
    answer: tuple[int, ...]  # the correct prediction at those masks (one id per mask)


def make_target(lm: LoadedModel, lang: str, uuid: str, prompt: str,
                answer: Sequence[int]) -> Target | None:
    """The fact's target, or None when the prompt does not hold exactly one mask per answer id."""
    return make_targets(lm, [(lang, uuid, prompt, answer)])[0]


def make_targets(lm: LoadedModel, rows: Sequence[tuple[str, str, str, Sequence[int]]]
                 ) -> list[Target | None]:
    """``make_target`` for many (lang, uuid, prompt, answer) rows, tokenized in one call."""
    if not rows:
        return []
    seqs = lm.tokenizer([r[2] for r in rows], add_special_tokens=True)["input_ids"]
    out: list[Target | None] = []
    for (lang, uuid, _, answer), ids in zip(rows, seqs):
        cols = tuple(i for i, t in enumerate(ids) if t == lm.family.mask_id)
        ok = bool(answer) and len(cols) == len(answer)
        out.append(Target(lang, uuid, tuple(int(t) for t in ids), cols,
                          tuple(int(a) for a in answer)) if ok else None)
    return out


def fact_rng(seed: int, lang: str, uuid: str) -> np.random.Generator:
    """The control draws' generator of one fact: fixed by (seed, lang, uuid) alone."""
    return np.random.default_rng([seed, zlib.crc32(f"{lang}\t{uuid}".encode())])


def random_like(units: np.ndarray, width: int, rng: np.random.Generator) -> np.ndarray:
    """Random units with as many in each layer as ``units`` has, none of ``units`` themselves."""
    out = []
    for layer in np.unique(units // width):
        mine = units[units // width == layer] % width
        free = np.setdiff1d(np.arange(width), mine)
        pick = rng.choice(free, size=min(len(mine), len(free)), replace=False)
        out.append(layer * width + pick)
    return np.sort(np.concatenate(out)) if out else units[:0]


@dataclass
class _Plan:
    """The unit sets of one fact: its own, the same-relation controls, the random controls."""

    main: np.ndarray
    relation: list[np.ndarray]
    random: list[np.ndarray]

    def sets(self) -> list[np.ndarray]:
        """Every set, clean (empty) first: the rows one prompt of this fact needs."""
        return [self.main[:0], self.main, *self.relation, *self.random]


def pool_sets(main: np.ndarray, others: Sequence[np.ndarray], n: int,
              rng: np.random.Generator) -> list[np.ndarray]:
    """``n`` sets of ``len(main)`` distinct units drawn from the other facts' units, each unit
    as likely as it is frequent among their sets (the relation's common units come up often);
    none when the pool holds fewer than twice as many units (the draws would all be alike)."""
    if not others or not n:
        return []
    units, counts = np.unique(np.concatenate(list(others)), return_counts=True)
    if len(units) < 2 * len(main):
        return []
    p = counts / counts.sum()
    return [np.sort(rng.choice(units, size=len(main), replace=False, p=p)) for _ in range(n)]


def plan_controls(uuid: str, lang: str, sigs: dict[str, np.ndarray], *, n_controls: int,
                  seed: int, width: int, n_random: int = 10, null: str = "facts") -> _Plan:
    """The unit sets for fact ``uuid`` of a group whose usable signatures are ``sigs``.

    ``null``: ``facts`` draws up to ``n_controls`` of the other facts' top-k sets themselves
    (as many as the relation has); ``pool`` draws ``n_controls`` k-unit sets from the units of
    those sets (``pool_sets``), for relations with few facts.
    """
    if null not in NULLS:
        raise ValueError(f"unknown null {null!r}: use one of {NULLS}")
    rng = fact_rng(seed, lang, uuid)
    others = sorted(u for u in sigs if u != uuid and len(sigs[u]))
    main = sigs[uuid]
    if null == "pool":
        relation = pool_sets(main, [sigs[o] for o in others], n_controls, rng)
    else:
        n_rel = min(n_controls, len(others))
        picked = rng.choice(len(others), size=n_rel, replace=False) if n_rel else []
        relation = [sigs[others[i]] for i in picked]
    return _Plan(main, relation, [random_like(main, width, rng) for _ in range(n_random)])


def _factors(sets: Sequence[np.ndarray], width: int, factor: float, device: torch.device
             ) -> dict[int, torch.Tensor]:
    """layer -> [rows, width] multipliers: ``factor`` at each row's units, 1 elsewhere."""
    rows = np.concatenate([np.full(len(s), r) for r, s in enumerate(sets)]).astype(np.int64)
    units = np.concatenate(list(sets)).astype(np.int64)
    out = {}
    for layer in np.unique(units // width):
        sel = units // width == layer
        f = torch.ones((len(sets), width), dtype=torch.float32)
        f[torch.from_numpy(rows[sel]), torch.from_numpy(units[sel] % width)] = factor
        out[int(layer)] = f.to(device)
    return out


class _Runner:
    """Batched ablated forward passes: one row per (target, unit set)."""

    def __init__(self, lm: LoadedModel, site: str, factor: float, batch_size: int) -> None:
        fam = lm.family
        if fam.base_attr is None or fam.head_attr is None:
            raise ModelError(f"{lm.name}: no encoder/MLM-head layout known for family "
                             f"{fam.family!r}", "use a BERT- or XLM-R-family model")
        self.lm, self.site, self.factor = lm, site, factor
        self.width = fam.site_width(site)
        self.base, self.head = getattr(lm.model, fam.base_attr), getattr(lm.model, fam.head_attr)
        self.batch_size = max(1, batch_size)
        self.passes = 0

    def _site(self, layer: int) -> str:
        fam = self.lm.family
        return fam.ffn_site(layer) if self.site == "ffn" else fam.hidden_site(layer)

    @torch.inference_mode()
    def forward(self, targets: Sequence[Target], sets: Sequence[np.ndarray]
                ) -> tuple[np.ndarray, list[list[int]]]:
        """Mean log p of each row's answer ids, and each row's argmax ids at its masks."""
        dev, pad = self.lm.device, self.lm.tokenizer.pad_token_id or 0
        width = max(len(t.ids) for t in targets)
        ids = torch.full((len(targets), width), pad, dtype=torch.long)
        att = torch.zeros((len(targets), width), dtype=torch.long)
        pos = torch.zeros((len(targets), width), dtype=torch.bool)
        for r, t in enumerate(targets):
            ids[r, :len(t.ids)] = torch.tensor(t.ids)
            att[r, :len(t.ids)] = 1
            pos[r, list(t.cols)] = True
        factors = {self._site(layer): f for layer, f in
                   _factors(sets, self.width, self.factor, dev).items()}
        with Ablate(self.lm.model, factors, positions=pos.to(dev)):
            hidden = self.base(input_ids=ids.to(dev), attention_mask=att.to(dev))[0]
        rows, cols = pos.nonzero(as_tuple=True)  # row-major: each row's masks in order
        logits = self.head(hidden[rows.to(dev), cols.to(dev)]).float()
        answer = torch.tensor([a for t in targets for a in t.answer], device=dev)
        # log p of the answer without a second [masks, vocab] tensor (119k columns for mBERT)
        gold = logits.gather(1, answer[:, None])[:, 0] - torch.logsumexp(logits, dim=-1)
        per_row = torch.zeros(len(targets), device=dev).index_add_(0, rows.to(dev), gold)
        n = torch.tensor([len(t.answer) for t in targets], dtype=torch.float32, device=dev)
        best = logits.argmax(dim=-1).tolist()
        preds, start = [], 0
        for t in targets:
            preds.append(best[start:start + len(t.answer)])
            start += len(t.answer)
        self.passes += 1
        return (per_row / n).cpu().numpy().astype(np.float64), preds

    def run(self, rows: list[tuple[Target, np.ndarray]]) -> tuple[np.ndarray, list[list[int]]]:
        """All rows in batches of ``batch_size`` (halved on GPU out-of-memory)."""
        logp = np.empty(len(rows))
        preds: list[list[int]] = [[] for _ in rows]
        i = 0
        while i < len(rows):
            chunk = rows[i:i + self.batch_size]
            try:
                lp, pr = self.forward([t for t, _ in chunk], [s for _, s in chunk])
            except Exception as exc:
                if not _is_oom(exc) or self.batch_size == 1:
                    raise
                self.batch_size //= 2
                torch.cuda.empty_cache()
                log.warning("out of memory: interventions batch size halved to %d",
                            self.batch_size)
                continue
            logp[i:i + len(chunk)] = lp
            preds[i:i + len(chunk)] = pr
            i += len(chunk)
        return logp, preds


def permutation_pvalue(effect: float, controls: np.ndarray, direction: int) -> float:
    """(1 + #controls at least as strong as ``effect``) / (1 + n); NaN without controls."""
    if len(controls) == 0 or not np.isfinite(effect):
        return float("nan")
    stronger = np.sum(direction * controls >= direction * effect)
    return float((1 + stronger) / (1 + len(controls)))


def build_interventions(lm: LoadedModel, lang: str, sigs: dict[str, np.ndarray],
                        targets: dict[str, list[Target]], *, k: int = 50, mode: str = "zero",
                        scale: float = 0.0, n_controls: int = 40, n_random: int = 10,
                        seed: int = 0, batch_size: int = 256, site: str = "ffn",
                        null: str = "facts") -> tuple[pa.Table, Counter]:
    """Rows of `interventions` for one (lang, relation) group, and its counters.

    ``sigs``: uuid -> global neuron ids of every usable signature of the group (best first;
    their first ``k`` are used, also as the relation controls of the others); ``targets``:
    uuid -> the fact's prompts to ablate (its own language's included). A fact in ``targets``
    without a signature is counted (``rejected_no_signature``), not an error.
    """
    if mode not in ("zero", "scale"):
        raise ValueError(f"unknown mode {mode!r}: use zero or scale")
    factor = 0.0 if mode == "zero" else float(scale)
    direction = -1 if factor < 1 else 1
    runner = _Runner(lm, site, factor, batch_size)
    tops = {u: np.asarray(s, np.int64)[:k] for u, s in sigs.items()}
    stats: Counter = Counter()
    rows: list[tuple[Target, np.ndarray]] = []
    plans: list[tuple[Target, _Plan]] = []
    for uuid in sorted(targets):
        if uuid not in tops or not len(tops[uuid]):
            stats["rejected_no_signature"] += len(targets[uuid])
            stats["facts_no_signature"] += 1
            continue
        plan = plan_controls(uuid, lang, tops, n_controls=n_controls, seed=seed,
                             width=runner.width, n_random=n_random, null=null)
        stats["facts_no_partner"] += int(all(t.lang == lang for t in targets[uuid]))
        for t in targets[uuid]:
            plans.append((t, plan))
    # prompts by length, so a batch pads little; a prompt's rows stay together
    plans.sort(key=lambda p: (len(p[0].ids), p[0].uuid, p[0].lang))
    for t, plan in plans:
        rows += [(t, s) for s in plan.sets()]
    logp, preds = runner.run(rows)
    out: dict[str, list] = {n: [] for n in tables.spec("interventions").names}
    i = 0
    space = lm.family.space_id
    for t, plan in plans:
        n_rel, n_rand = len(plan.relation), len(plan.random)
        d = logp[i + 1:i + 2 + n_rel + n_rand] - logp[i]
        main, rel, rand = d[0], d[1:1 + n_rel], d[1 + n_rel:]
        gold = protocol.strip(t.answer, space)
        out["lang"].append(lang)
        out["uuid"].append(t.uuid)
        out["target_lang"].append(t.lang)
        out["k"].append(len(plan.main))
        out["mode"].append(mode)
        out["dlogp"].append(float(main))
        out["flipped"].append(protocol.strip(preds[i + 1], space) != gold)
        out["ctrl_relation_mean"].append(float(rel.mean()) if n_rel else float("nan"))
        out["ctrl_relation_sd"].append(float(rel.std(ddof=1)) if n_rel > 1 else float("nan"))
        out["ctrl_random_mean"].append(float(rand.mean()) if n_rand else float("nan"))
        out["pvalue"].append(permutation_pvalue(float(main), rel, direction))
        out["n_controls"].append(n_rel)
        stats["clean_not_reproduced"] += int(protocol.strip(preds[i], space) != gold)
        i += 2 + n_rel + n_rand
    stats["forward_passes"] += runner.passes
    stats["ablated_rows"] += len(rows)
    t = pa.table(out, schema=tables.spec("interventions").schema)
    t = t.sort_by([("uuid", "ascending"), ("target_lang", "ascending")])
    return tables.conform("interventions", t), stats
