"""The detector check: write facts into chosen FFN units of the trained lab model.

From the full lab model and the world's detector facts (``detector_shared``,
``detector_independent``: in the dumps, never in the training stream) this builds an edited
model folder in which each detector fact is carried by a few FFN units of the last layer that
we chose, so the truth about *which units* carry it is known, without any training:

- **units**: new FFN units appended to every layer (zero, hence silent, except the written
  ones of the last layer), so no trained unit is overwritten and every other answer, signature
  and overlap stays as it was (only the width grows: the report's chance level k/width follows);
  a ``detector_shared`` fact gets one set of units for all languages, a
  ``detector_independent`` fact a disjoint set per language, each split over its mask positions;
- **gate** (input weights and bias): a unit fires at one mask position of the fact's prompt —
  in every language of its set — and at no other mask state of any lab prompt: a linear
  separator (logistic loss on standardised states) whose threshold lies half-way between the
  targets and the closest other state, scaled so that the pre-activation is +``gain`` at the
  targets and at most −``gain`` elsewhere (GELU(−gain) ≈ 0); the log keeps each margin;
- **output weights**: the object's output embedding (the tied word embedding of the gold piece
  at that mask), then a few Adam steps on those columns only, until the edited model answers
  the fact (multi-piece objects need the pieces in order, which the embedding alone may miss).

Every trained weight is kept, and a gated unit is silent at the masks of the other prompts, so
the rest of the model's answers, signatures and interventions do not move (``job`` counts the
answers that do). A gate may open at a non-mask token of the last layer, whose output no stage
reads (the probe, the signatures and the interventions read the masks). The result (``detector.json``) maps
each (uuid, lang) to its neuron ids in the signatures' numbering (layer × width + unit).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from factroots.lab import train as lt

GAIN = 8.0  # pre-activation at the targets (+) and at most at every other state (−)


@dataclass(frozen=True)
class Target:
    """One detector fact in one language: the probe's prompt (with [Y]) and the gold object."""

    uuid: str
    lang: str
    prompt: str
    gold: str


@dataclass(frozen=True)
class Spec:
    """What to write: the targets, which facts share units across languages, units per fact."""

    targets: tuple[Target, ...]
    shared: frozenset[str]  # uuids whose units are the same in every language
    units_per_fact: int = 4  # per fact and language (split over its mask positions)
    steps: int = 100  # Adam steps on the output columns (stops once every target is answered)
    seed: int = 0


def _encode(tok, prompt: str, gold: str) -> tuple[list[int], list[int]]:  # type: ignore[no-untyped-def]
    g = tok.encode(gold, add_special_tokens=False).ids
    return tok.encode(prompt.replace("[Y]", " ".join(["[MASK]"] * len(g)))).ids, g


def _pad(encs: list[list[int]]) -> torch.Tensor:
    n = max(len(e) for e in encs)
    return torch.tensor([e + [lt.PAD] * (n - len(e)) for e in encs])


@torch.no_grad()
def _states(model, layer: int, ids: torch.Tensor, batch: int = 256
            ) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """The FFN input states of ``layer`` at every mask position, in row order."""
    ffn = model.bert.encoder.layer[layer].intermediate
    got: dict[str, torch.Tensor] = {}

    def hook(_m, inputs, _output) -> None:  # type: ignore[no-untyped-def]
        got["h"] = inputs[0]

    hs = []
    handle = ffn.register_forward_hook(hook)
    try:
        for i in range(0, len(ids), batch):
            x = ids[i: i + batch]
            model(input_ids=x, attention_mask=(x != lt.PAD).long())
            sel = x == lt.MASK
            hs.append(got["h"][sel].float())
    finally:
        handle.remove()
    return torch.cat(hs)


def _gate(targets: torch.Tensor, others: torch.Tensor, steps: int = 400
          ) -> tuple[torch.Tensor, float, float]:
    """(input weight, bias, margin) of a unit firing at ``targets`` and not at ``others``.

    A linear separator on standardised states, fitted by a logistic loss in which the hardest
    other states count most (a soft maximum over them: the few states of other detector facts
    lie closest); the margin is min over targets − max over others of the projection (> 0: the
    gate is selective on every prompt the lab asks).
    """
    mu, sd = others.mean(0), others.std(0).clamp(min=1e-6)
    zt, zo = (targets - mu) / sd, (others - mu) / sd
    w = (zt.mean(0) - zo.mean(0)).clone().requires_grad_(True)
    b = torch.zeros((), requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=0.05)
    sp = torch.nn.functional.softplus
    for _ in range(steps):
        st, so = zt @ w + b, zo @ w + b
        hard = torch.logsumexp(4 * so, 0) / 4  # a soft max over the other states
        loss = sp(1 - st).mean() + sp(1 + so).mean() + sp(1 + hard) + 1e-3 * (w * w).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        w_raw = w / sd  # back to the unstandardised states
        pt, po = targets @ w_raw, others @ w_raw
        lo, hi = float(pt.min()), float(po.max())
        t = (lo + hi) / 2
        s = GAIN / max(lo - t, 1e-3)
        return s * w_raw, -s * t, lo - hi


def _widen(model, extra: int):  # type: ignore[no-untyped-def]
    """A copy of ``model`` with ``extra`` new FFN units per layer, all zero (silent: GELU(0) = 0)."""
    from transformers import BertForMaskedLM

    conf = model.config.to_dict()
    width = conf["intermediate_size"]
    conf["intermediate_size"] = width + extra
    wide = BertForMaskedLM(type(model.config).from_dict(conf)).eval()
    state = model.state_dict()
    new = wide.state_dict()
    for name, v in state.items():
        w = new[name]
        if w.shape == v.shape:
            w.copy_(v)
        elif name.endswith("intermediate.dense.weight") or name.endswith("intermediate.dense.bias"):
            w.zero_()
            w[:width] = v
        else:  # output.dense.weight: [hidden, width]
            w.zero_()
            w[:, :width] = v
    wide.load_state_dict(new)
    wide.tie_weights()
    return wide


def write_facts(model_dir: Path, dest: Path, spec: Spec, reference: list[tuple[str, str]]
                ) -> dict:
    """Write the detector facts into new units of ``model_dir``'s last FFN layer; save in ``dest``.

    ``reference``: (prompt, gold) of every other lab prompt (the states the gates must avoid).
    Returns the log also written to ``dest/detector.json`` (units per fact and language as
    neuron ids, each gate's margin, the edited model's answers on the targets).
    """
    from tokenizers import Tokenizer
    from transformers import AutoModelForMaskedLM

    torch.manual_seed(spec.seed)
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    model = AutoModelForMaskedLM.from_pretrained(str(model_dir)).eval()
    layer = model.config.num_hidden_layers - 1
    width = model.config.intermediate_size
    enc = [_encode(tok, t.prompt, t.gold) for t in spec.targets]
    ref = [_encode(tok, p, g) for p, g in reference]
    t_ids, r_ids = _pad([e for e, _ in enc]), _pad([e for e, _ in ref])
    th = _states(model, layer, t_ids)
    rh = _states(model, layer, r_ids)
    pos = [(i, j) for i, (_, g) in enumerate(enc) for j in range(len(g))]  # target mask states
    groups = _groups(spec, pos)
    m = {key: max(1, math.ceil(spec.units_per_fact / len(enc[pos[rows[0]][0]][1])))
         for key, rows in groups.items()}
    model = _widen(model, sum(m.values()))
    inter = model.bert.encoder.layer[layer].intermediate.dense
    out = model.bert.encoder.layer[layer].output.dense
    emb = model.get_output_embeddings().weight.detach()
    assigned: dict[tuple, list[int]] = {}
    margins: dict[tuple, float] = {}
    nxt = width
    for key, rows in groups.items():
        us, nxt = list(range(nxt, nxt + m[key])), nxt + m[key]
        mine = torch.zeros(len(pos), dtype=torch.bool)
        mine[rows] = True
        w, b, margins[key] = _gate(th[mine], torch.cat([rh, th[~mine]]))
        i, j = pos[rows[0]]
        with torch.no_grad():
            for u in us:
                inter.weight[u], inter.bias[u] = w, b
                out.weight[:, u] = emb[enc[i][1][j]] / len(us)
        assigned[key] = us
    cols = sorted(u for us in assigned.values() for u in us)
    ok = _fit_outputs(model, out, cols, t_ids, [g for _, g in enc], spec.steps)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(dest))
    lt.save_tokenizer(tok, dest)
    log = _log(spec, enc, groups, assigned, margins, ok, layer, width + len(cols))
    (dest / "detector.json").write_text(json.dumps(log, indent=1), encoding="utf-8")
    return log


def _groups(spec: Spec, pos: list[tuple[int, int]]) -> dict[tuple, list[int]]:
    """Unit groups -> the target mask states they fire at: (uuid, lang or '*', position j)."""
    out: dict[tuple, list[int]] = {}
    for r, (i, j) in enumerate(pos):
        t = spec.targets[i]
        out.setdefault((t.uuid, "*" if t.uuid in spec.shared else t.lang, j), []).append(r)
    return out


def _fit_outputs(model, out, cols: list[int], ids: torch.Tensor, golds: list[list[int]],
                 steps: int) -> list[bool]:  # type: ignore[no-untyped-def]
    """Adam on the chosen output columns only, until every target is answered; the answers."""
    for p in model.parameters():
        p.requires_grad_(False)
    out.weight.requires_grad_(True)
    keep = torch.zeros_like(out.weight)
    keep[:, cols] = 1.0
    opt = torch.optim.Adam([out.weight], lr=0.05)
    sel = ids == lt.MASK
    gold = torch.tensor([g for gs in golds for g in gs])
    att = (ids != lt.PAD).long()
    ok = _answers(model, ids, golds)
    for _ in range(steps):
        if all(ok):
            break
        hidden = model.bert(input_ids=ids, attention_mask=att).last_hidden_state[sel]
        logits = model.cls(hidden)
        loss = torch.nn.functional.cross_entropy(logits, gold)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        out.weight.grad *= keep  # every other column stays as trained
        opt.step()
        ok = _answers(model, ids, golds)
    out.weight.requires_grad_(False)
    return ok


@torch.no_grad()
def _answers(model, ids: torch.Tensor, golds: list[list[int]]) -> list[bool]:  # type: ignore[no-untyped-def]
    pred = model(input_ids=ids, attention_mask=(ids != lt.PAD).long()).logits.argmax(-1)
    return [pred[r][ids[r] == lt.MASK].tolist() == g for r, g in enumerate(golds)]


def _log(spec: Spec, enc: list, groups: dict, assigned: dict, margins: dict,
         ok: list[bool], layer: int, width: int) -> dict:
    facts: dict[str, dict] = {}
    for i, t in enumerate(spec.targets):
        keys = [k for k in groups if k[0] == t.uuid and k[1] in ("*", t.lang)]
        facts.setdefault(t.uuid, {"shared": t.uuid in spec.shared, "langs": {}})
        facts[t.uuid]["langs"][t.lang] = {
            "neurons": sorted(layer * width + u for k in keys for u in assigned[k]),
            "min_margin": round(min(margins[k] for k in keys), 4), "answered": bool(ok[i]),
            "pieces": len(enc[i][1])}
    return {"layer": layer, "width": width, "gain": GAIN, "units_per_fact": spec.units_per_fact,
            "n_units": sum(len(v) for v in assigned.values()),
            "selective_gates": sum(v > 0 for v in margins.values()), "gates": len(margins),
            "answered": int(sum(ok)), "targets": len(ok), "facts": facts}


def units_of(log: dict) -> dict[tuple[str, str], list[int]]:
    """(lang, uuid) -> the neuron ids written for the fact in that language."""
    return {(lg, u): v["neurons"] for u, f in log.get("facts", {}).items()
            for lg, v in f["langs"].items()}
