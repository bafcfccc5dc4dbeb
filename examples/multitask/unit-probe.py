#!/usr/bin/python3
"""Would finer attention units lock arithmetic? A PyTorch experiment on the base weights (weights-base/).

Sealing today removes FFN neurons and whole attention head groups; arithmetic alone does not go
below 29% at about 4 points lost that way (docs/status.md). This script asks, before any format
work, whether smaller attention units help: single attn_v rows (one value dimension of a head;
zeroing it equals zeroing that attn_output column) next to FFN neurons, optionally q/k RoPE
pairs. It picks units iteratively by attribution on the CALIBRATION split (first-order estimate
of the loss increase when a unit is zeroed: -(activation x gradient), summed over answer tokens),
ranks them by specificity (the locked task's estimate over the largest other task's), zeroes a
batch of them, re-measures, and reports greedy exact match on the HELD-OUT split at each round.

Usage: python3 examples/multitask/unit-probe.py [--lock arith] [--kinds ffn,v] [--per-round 16]
         [--rounds 20] [--weights examples/multitask/weights-base] [--data examples/multitask/data]
Prints one line per round and a final JSON line.
"""
import argparse
import importlib.util
import json
import math
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("mt_train", os.path.join(HERE, "train.py"))
mt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mt)
torch, F = mt.torch, mt.F


def forward(model, x, mask, retain=True):
    """Inference forward with unit masks; returns logits and the masked unit activations (for
    attribution): per layer ffn [B, T, n_ff], v [B, T, D], qk [B, H, T, hd] (q and k pairs share).
    retain=False skips keeping the activations' gradients (training needs only the weights')."""
    acts = []
    h_ = model.embed(x)
    B, T = x.shape
    for li, b in enumerate(model.blocks):
        D = h_.shape[-1]
        hd = D // b.n_head
        h = b.attn_norm(h_)
        q = b.wq(h) * mask["qk"][li]
        k = b.wk(h) * mask["qk"][li]
        v = b.wv(h) * mask["v"][li]
        if retain and v.requires_grad:
            v.retain_grad()
        qh = mt.apply_rope(q.view(B, T, b.n_head, hd).transpose(1, 2), model.cos, model.sin)
        kh = mt.apply_rope(k.view(B, T, b.n_head, hd).transpose(1, 2), model.cos, model.sin)
        vh = v.view(B, T, b.n_head, hd).transpose(1, 2)
        att = ((qh @ kh.transpose(-1, -2)) / math.sqrt(hd)).masked_fill(model.mask[:T, :T], float("-inf")).softmax(-1)
        y = (att @ vh).transpose(1, 2).reshape(B, T, D)
        h_ = h_ + b.wo(y)
        hf = b.ffn_norm(h_)
        a = F.silu(b.gate(hf)) * b.up(hf) * mask["ffn"][li]
        if retain and a.requires_grad:
            a.retain_grad()
        h_ = h_ + b.down(a)
        acts.append(dict(ffn=a, v=v, q=q, k=k))
    return model.output(model.norm(h_)), acts


def attribution(model, examples, mask, kinds):
    """Per unit: the first-order loss increase if it were zeroed, -(a * dL/da) summed over the
    answer tokens' positions and averaged over examples (q/k pairs: q and k together)."""
    x, w = mt.answer_batch(examples)
    model.zero_grad()
    logits, acts = forward(model, x[:, :-1], mask)
    nll = F.cross_entropy(logits.reshape(-1, mt.VOCAB), x[:, 1:].reshape(-1), reduction="none").view(x.shape[0], -1)
    loss = (nll * w[:, :-1]).sum() / len(examples)
    for a in acts:
        for t in a.values():
            t.retain_grad()
    loss.backward()
    out = {}
    for li, a in enumerate(acts):
        if "ffn" in kinds:
            out[("ffn", li)] = -(a["ffn"] * a["ffn"].grad).sum((0, 1)).detach() / len(examples)
        if "v" in kinds:
            out[("v", li)] = -(a["v"] * a["v"].grad).sum((0, 1)).detach() / len(examples)
        if "qk" in kinds:
            s = -(a["q"] * a["q"].grad + a["k"] * a["k"].grad).sum((0, 1)).detach() / len(examples)
            out[("qk", li)] = s.view(-1, 2).sum(-1).repeat_interleave(2)  # RoPE pairs (2i, 2i+1) go together
    return out


def zero_unit(mask, kind, li, i):
    mask[kind][li][i] = 0
    if kind == "qk":
        mask[kind][li][i + 1] = 0  # the RoPE pair


@torch.no_grad()
def answer_loss(model, examples, mask):
    """Mean answer-token NLL with the unit masks applied (teacher forcing)."""
    x, w = mt.answer_batch(examples)
    logits, _ = forward(model, x[:, :-1], mask)
    nll = F.cross_entropy(logits.reshape(-1, mt.VOCAB), x[:, 1:].reshape(-1), reduction="none").view(x.shape[0], -1)
    return ((nll * w[:, :-1]).sum() / w[:, :-1].sum()).item()


def accuracy(model, examples, mask, limit=None):
    xs = examples[:limit] if limit else examples
    # greedy() uses the model's own forward: apply the masks by zeroing weight rows in a copy.
    saved = apply_mask(model, mask)
    try:
        outs = mt.greedy(model, [e["prompt"] for e in xs], max(len(mt.encode(e["answer"])) for e in xs) + 2)
    finally:
        restore(model, saved)
    return sum(o == e["answer"] for o, e in zip(outs, xs)) / len(xs)


def apply_mask(model, mask):
    saved = []
    with torch.no_grad():
        for li, b in enumerate(model.blocks):
            saved.append([p.detach().clone() for p in (b.gate.weight, b.up.weight, b.wv.weight, b.wq.weight, b.wk.weight)])
            keep_f, keep_v, keep_qk = mask["ffn"][li], mask["v"][li], mask["qk"][li]
            b.gate.weight.mul_(keep_f[:, None])
            b.up.weight.mul_(keep_f[:, None])
            b.wv.weight.mul_(keep_v[:, None])
            b.wq.weight.mul_(keep_qk[:, None])
            b.wk.weight.mul_(keep_qk[:, None])
    return saved


def restore(model, saved):
    with torch.no_grad():
        for b, s in zip(model.blocks, saved):
            for p, v in zip((b.gate.weight, b.up.weight, b.wv.weight, b.wq.weight, b.wk.weight), s):
                p.copy_(v)


def components(mask):
    """The zeroed units in probe-memory.js's --components grammar (one component, parts joined by
    '+'): ffn:<layer>:<i>-<i> and v:<layer>:<row>; q/k pairs as qk:<layer>:<row> (row = the pair's
    first). So llama.cpp can score exactly this set."""
    parts = []
    for li, m in enumerate(mask["ffn"]):
        parts += [f"ffn:{li}:{i}-{i}" for i in (m == 0).nonzero().view(-1).tolist()]
    for li, m in enumerate(mask["v"]):
        parts += [f"v:{li}:{i}" for i in (m == 0).nonzero().view(-1).tolist()]
    for li, m in enumerate(mask["qk"]):
        parts += [f"qk:{li}:{i}" for i in (m == 0).nonzero().view(-1).tolist() if i % 2 == 0]
    return "+".join(parts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=os.path.join(HERE, "weights-base"))
    ap.add_argument("--data", default=os.path.join(HERE, "data"))
    ap.add_argument("--lock", default="arith", choices=mt.TASKS[1:])
    ap.add_argument("--kinds", default="ffn,v", help="unit kinds to pick from: ffn, v, qk (comma-separated)")
    ap.add_argument("--per-round", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--calib", type=int, default=100, help="calibration examples per task for attribution")
    ap.add_argument("--eval", type=int, default=100, help="held-out examples per task scored each round")
    ap.add_argument("--measured", type=int, default=0, help="re-rank the best N candidates of each round by their measured calibration loss change (0: attribution only)")
    ap.add_argument("--stop", type=float, default=0.05, help="stop when the locked task's held-out accuracy is at most this")
    args = ap.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    if not kinds or any(k not in ("ffn", "v", "qk") for k in kinds):
        sys.exit(f"--kinds {args.kinds}: expected a comma-separated subset of ffn, v, qk")
    model, dims = mt.load_model(args.weights)
    model.eval()
    L, D, NF = dims["nLayer"], dims["nEmbd"], dims["nFf"]
    mask = dict(ffn=[torch.ones(NF) for _ in range(L)], v=[torch.ones(D) for _ in range(L)], qk=[torch.ones(D) for _ in range(L)])
    calib = {t: mt.load_jsonl(os.path.join(args.data, f"calib-{t}.jsonl"))[: args.calib] for t in mt.TASKS}
    held = {t: mt.load_jsonl(os.path.join(args.data, f"heldout-{t}.jsonl")) for t in mt.TASKS}
    plain = {t: accuracy(model, held[t], mask, args.eval) for t in mt.TASKS}
    print("plain " + " ".join(f"{t} {plain[t]*100:.1f}" for t in mt.TASKS), flush=True)
    rounds = []
    for r in range(1, args.rounds + 1):
        scores = {t: attribution(model, calib[t], mask, kinds) for t in mt.TASKS}
        cands = []
        for key in scores[args.lock]:
            kind, li = key
            mine = scores[args.lock][key]
            other = torch.stack([scores[t][key].clamp(min=0) for t in mt.TASKS if t != args.lock]).max(0).values
            spec_ = mine.clamp(min=0) / (other + 1e-4 * mine.abs().max().clamp(min=1e-8))
            live = mask[kind][li] > 0
            if kind == "qk":
                live = live & (torch.arange(D) % 2 == 0)  # one entry per pair
            for i in live.nonzero().view(-1).tolist():
                if mine[i] > 0:
                    cands.append((spec_[i].item(), kind, li, i))
        cands.sort(reverse=True)
        if args.measured:
            # Re-rank the best candidates by their measured effect: zero each alone on top of the
            # current mask and take the calibration loss increase per task.
            base = {t: answer_loss(model, calib[t], mask) for t in mt.TASKS}
            measured = []
            for _, kind, li, i in cands[: args.measured]:
                trial = {k: [m.clone() for m in v] for k, v in mask.items()}
                zero_unit(trial, kind, li, i)
                d = {t: answer_loss(model, calib[t], trial) - base[t] for t in mt.TASKS}
                other = max(max(d[t], 0.0) for t in mt.TASKS if t != args.lock)
                if d[args.lock] > 0:
                    measured.append((d[args.lock] / (other + 1e-3), kind, li, i))
            cands = sorted(measured, reverse=True)
        for _, kind, li, i in cands[: args.per_round]:
            zero_unit(mask, kind, li, i)
        acc = {t: accuracy(model, held[t], mask, args.eval) for t in mt.TASKS}
        sealed = {k: int(sum((m == 0).sum().item() for m in mask[k])) for k in ("ffn", "v", "qk")}
        lost = {t: round((plain[t] - acc[t]) * 100, 1) for t in mt.TASKS if t != args.lock}
        rounds.append(dict(round=r, sealed=sealed, heldout=acc, lostPoints=lost, components=components(mask)))
        print(f"round {r}: sealed ffn {sealed['ffn']} v {sealed['v']} qk {sealed['qk']}; {args.lock} {acc[args.lock]*100:.1f}; lost "
              + " ".join(f"{t} {v:+.1f}" for t, v in lost.items()) + f" (worst {max(lost.values()):.1f})", flush=True)
        if acc[args.lock] <= args.stop:
            break
    print(json.dumps(dict(lock=args.lock, kinds=kinds, perRound=args.per_round, measured=args.measured, plain=plain, rounds=rounds)))


if __name__ == "__main__":
    main()
