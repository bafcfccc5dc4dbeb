#!/usr/bin/python3
"""Train the small multi-task llama model (issue 6, item 3) on train.txt from corpus.ts.

System python3 + Debian's python3-torch (CPU), ONE thread. The model matches llama.cpp's
`llama` architecture exactly: token embedding, per layer RMSNorm -> causal attention with RoPE
in llama.cpp's NORM layout (adjacent pairs (2i, 2i+1), theta = pos * base^(-2i/head_dim)) -> residual,
RMSNorm -> SwiGLU FFN (down(silu(gate x) * up x)) -> residual; final RMSNorm; untied output.
No biases. Vocabulary: the byte-level SPM vocab of plugin/core/gguf/byte-vocab.ts (260 tokens):
<unk>0 <s>1 </s>2, byte b -> 3+b, except the space which llama.cpp's SPM tokenizer turns into
'\u2581' (token 259). A line `prompt+answer` trains as BOS + bytes + EOS, so greedy decoding in
llama.cpp stops after the answer.

Output (no pickle): <out>/weights.bin (little-endian f32, tensors back to back, each row-major
in PyTorch's [out, in] = GGUF ne [in, out]) and <out>/weights.json (dims, tensor index by GGUF
name, per-task held-out accuracy, and PyTorch's greedy answers for a sample of prompts that
export.ts compares with llama.cpp's).

Gradient routing (--route TASK=ffn:A-B[,head:H], Cloud et al. 2024, "Gradient Routing: Masking
Gradients to Localize Computation in Neural Networks"): a routed task's examples train only the
units of its slice (FFN neurons A..B and heads H in every layer) plus the embeddings, norms and
output; every other example trains only the shared units and runs with the slices zeroed
(--route-drop 1), and a penalty on the slices' mean |activation| off their task (--route-silence,
trained through the slice's own weights only) keeps a slice quiet on other tasks' prompts. So a
routed skill lives in units that sealing can take away, and zeroing them leaves the other tasks as
they were trained. The profiler is not told where the slices are: it has to find them.

Every evaluation also prints PII leakage as the eval measures it: extraction with the answer's
fixed prefix supplied ("555-") and the membership-inference AUC of answer losses (pii-members vs
pii-nonmembers), for the plain model and, in a routed run, with the PII slice zeroed.
--device cuda runs the same training on a GPU (hyper-parameter sweeps on a lent GPU machine; the
batches and routing masks are drawn on the CPU either way, but GPU arithmetic differs in the last
bits, so the committed model is trained on the CPU).

Usage: python3 examples/multitask/train.py --data examples/multitask/data --out examples/multitask/weights
"""
import argparse
import json
import math
import os
import random
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(1)

UNK, BOS, EOS, BYTE_BASE, SPACE, VOCAB = 0, 1, 2, 3, 259, 260
TASKS = ["text", "arith", "code", "trans", "pii", "abuse"]


def encode(s):
    return [SPACE if b == 0x20 else BYTE_BASE + b for b in s.encode("utf-8")]


def decode(toks):
    out = bytearray()
    for t in toks:
        if t == SPACE:
            out.append(0x20)
        elif BYTE_BASE <= t < BYTE_BASE + 256:
            out.append(t - BYTE_BASE)
    return out.decode("utf-8", errors="replace")


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(n_pos, head_dim, base):
    inv = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)  # [hd/2]
    ang = torch.arange(n_pos, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()


def apply_rope(x, cos, sin):
    # x: [B, H, T, hd]; llama.cpp NORM mode rotates adjacent pairs (x[2i], x[2i+1]).
    x0 = x[..., 0::2]
    x1 = x[..., 1::2]
    c = cos[: x.shape[2]]
    s = sin[: x.shape[2]]
    r0 = x0 * c - x1 * s
    r1 = x0 * s + x1 * c
    return torch.stack((r0, r1), dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self, d, n_head, n_ff, eps):
        super().__init__()
        self.n_head = n_head
        self.attn_norm = RMSNorm(d, eps)
        self.wq = nn.Linear(d, d, bias=False)
        self.wk = nn.Linear(d, d, bias=False)
        self.wv = nn.Linear(d, d, bias=False)
        self.wo = nn.Linear(d, d, bias=False)
        self.ffn_norm = RMSNorm(d, eps)
        self.gate = nn.Linear(d, n_ff, bias=False)
        self.up = nn.Linear(d, n_ff, bias=False)
        self.down = nn.Linear(n_ff, d, bias=False)

    def forward(self, x, cos, sin, mask, r=None, zero=None):
        """r: Routing for a training batch (None at inference); zero: (ffn [n_ff], heads [H]) keep
        masks that zero sealed units at inference, as sealing does in llama.cpp."""
        B, T, D = x.shape
        hd = D // self.n_head
        h = self.attn_norm(x)
        q = self.wq(h).view(B, T, self.n_head, hd).transpose(1, 2)
        k = self.wk(h).view(B, T, self.n_head, hd).transpose(1, 2)
        v = self.wv(h).view(B, T, self.n_head, hd).transpose(1, 2)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        att = att.masked_fill(mask[:T, :T], float("-inf")).softmax(-1)
        y = att @ v  # [B, H, T, hd]
        if zero is not None:
            y = y * zero[1].view(1, -1, 1, 1)
        if r is None:
            x = x + self.wo(y.transpose(1, 2).reshape(B, T, D))
            h = self.ffn_norm(x)
            a = F.silu(self.gate(h)) * self.up(h)
            if zero is not None:
                a = a * zero[0]
            return x + self.down(a)
        if r.head_units is not None:
            # The silence penalty trains only the slice's own weights: its input is detached.
            hu, hdet = r.head_units, h.detach()
            rows = (hu[:, None] * hd + torch.arange(hd, device=x.device)).reshape(-1)
            proj = lambda w: F.linear(hdet, w[rows]).view(B, T, len(hu), hd).transpose(1, 2)
            qs, ks, vs = apply_rope(proj(self.wq.weight), cos, sin), apply_rope(proj(self.wk.weight), cos, sin), proj(self.wv.weight)
            atts = ((qs @ ks.transpose(-1, -2)) / math.sqrt(hd)).masked_fill(mask[:T, :T], float("-inf")).softmax(-1)
            r.penalise((atts @ vs).abs().mean(-1).transpose(1, 2), r.head_foreign[:, hu])  # per head: mean |y| over its dims
        y = r.route(y, r.head_train, r.head_keep)
        y = y.transpose(1, 2).reshape(B, T, D)
        x = x + r.split_linear(y, self.wo.weight, r.head_train.view(B, self.n_head, 1).expand(B, self.n_head, hd).reshape(B, 1, D))
        h = self.ffn_norm(x)
        a = F.silu(self.gate(h)) * self.up(h)
        if r.ffn_units is not None:
            fu, hdet = r.ffn_units, h.detach()
            a_s = F.silu(F.linear(hdet, self.gate.weight[fu])) * F.linear(hdet, self.up.weight[fu])
            if r.silence_on == "output":
                # What the foreign slices write into the residual stream: mean |.| over its dims.
                r.penalise(F.linear(a_s * r.ffn_foreign[:, :, fu], self.down.weight[:, fu]).abs().mean(-1, keepdim=True), r.valid_rows)
            else:
                r.penalise(a_s.abs(), r.ffn_foreign[:, :, fu])
        a = r.route(a, r.ffn_train, r.ffn_keep)
        return x + r.split_linear(a, self.down.weight, r.ffn_train)


class Routing:
    """Gradient routing for one batch (--route): every example may train only the units of its own
    task's slice (a routed task) or the shared units (any other task), plus the embeddings, norms
    and output. Units it may not train still run forward (their activations detached, so no
    gradient reaches their weights or flows back through them); another task's slice is dropped
    (zeroed) with probability --route-drop, so the rest of the model learns to work with the slice
    sealed, and its activations are penalised (--route-silence) so a slice stays quiet off its task.
    Masks are per example: ffn_* [B, 1, n_ff], head_* [B, H, 1, 1]; valid [B, T] marks real tokens."""

    def __init__(self, ffn_train, ffn_keep, ffn_foreign, head_train, head_keep, head_foreign, valid, ffn_units, head_units, silence_on):
        self.ffn_units, self.head_units = ffn_units, head_units  # indices of every slice's units (None: no such slices)
        self.silence_on = silence_on  # "activation" or "output" (--route-silence-on)
        self.valid_rows = ffn_foreign.amax(-1, keepdim=True)  # [B, 1, 1]: 1 where the example has foreign slices
        self.ffn_train, self.ffn_keep, self.ffn_foreign = ffn_train, ffn_keep, ffn_foreign
        self.head_train, self.head_keep, self.head_foreign = head_train, head_keep, head_foreign
        self.valid = valid
        self.penalty = torch.zeros((), device=valid.device)
        self.per_example = torch.zeros(valid.shape[0], device=valid.device)
        self.terms = 0

    @staticmethod
    def route(a, train, keep):
        return (a * train + (a * (1 - train)).detach()) * keep

    @staticmethod
    def split_linear(a, w, train):
        # Columns of w for units this example may not train get no gradient from it.
        return F.linear(a * train, w) + F.linear(a * (1 - train), w.detach())

    def penalise(self, act, foreign):
        # act [B, T, U]; foreign [B, 1, U] or [B, U, 1, 1] -> mean |act| over real tokens and foreign units.
        f = foreign.reshape(foreign.shape[0], 1, -1)
        n = (self.valid.unsqueeze(-1) * f).sum()
        if n > 0:
            masked = act * f * self.valid.unsqueeze(-1)
            self.penalty = self.penalty + masked.sum() / n
            self.per_example = self.per_example + masked.sum((1, 2)) / (self.valid.unsqueeze(-1) * f).sum((1, 2)).clamp(min=1)
            self.terms += 1


class Model(nn.Module):
    def __init__(self, d, n_layer, n_head, n_ff, ctx, eps=1e-5, rope_base=10000.0):
        super().__init__()
        self.dims = dict(nEmbd=d, nLayer=n_layer, nHead=n_head, nHeadKv=n_head, nFf=n_ff, contextLength=ctx, rmsEpsilon=eps, ropeBase=rope_base, nVocab=VOCAB)
        self.embed = nn.Embedding(VOCAB, d)
        self.blocks = nn.ModuleList([Block(d, n_head, n_ff, eps) for _ in range(n_layer)])
        self.norm = RMSNorm(d, eps)
        self.output = nn.Linear(d, VOCAB, bias=False)
        cos, sin = rope_tables(ctx, d // n_head, rope_base)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.register_buffer("mask", torch.triu(torch.ones(ctx, ctx, dtype=torch.bool), 1), persistent=False)
        nn.init.normal_(self.embed.weight, std=0.02)
        for n, p in self.named_parameters():
            if p.dim() == 2 and n != "embed.weight":
                nn.init.normal_(p, std=0.02 if not (n.endswith("wo.weight") or n.endswith("down.weight")) else 0.02 / math.sqrt(2 * n_layer))

    def forward(self, idx, r=None, zero=None):
        x = self.embed(idx)
        for b in self.blocks:
            x = b(x, self.cos, self.sin, self.mask, r, zero)
        return self.output(self.norm(x))

    def gguf_tensors(self):
        """(GGUF name, tensor) in llama.cpp's order (byte-vocab.ts llamaTensorShapes)."""
        out = [("token_embd.weight", self.embed.weight)]
        for i, b in enumerate(self.blocks):
            p = f"blk.{i}."
            out += [
                (p + "attn_norm.weight", b.attn_norm.weight),
                (p + "attn_q.weight", b.wq.weight),
                (p + "attn_k.weight", b.wk.weight),
                (p + "attn_v.weight", b.wv.weight),
                (p + "attn_output.weight", b.wo.weight),
                (p + "ffn_norm.weight", b.ffn_norm.weight),
                (p + "ffn_gate.weight", b.gate.weight),
                (p + "ffn_down.weight", b.down.weight),
                (p + "ffn_up.weight", b.up.weight),
            ]
        out += [("output_norm.weight", self.norm.weight), ("output.weight", self.output.weight)]
        return out


def load_jsonl(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


@torch.no_grad()
def greedy(model, prompts, max_new, zero=None):
    """Greedy answers (stop at EOS), batched by prompt length."""
    model.eval()
    dev = next(model.parameters()).device
    res = [None] * len(prompts)
    groups = {}
    for i, p in enumerate(prompts):
        groups.setdefault(len(encode(p)), []).append(i)
    ctx = model.dims["contextLength"]
    for _, ids in groups.items():
        for s in range(0, len(ids), 256):
            chunk = ids[s : s + 256]
            x = torch.tensor([[BOS] + encode(prompts[i]) for i in chunk], device=dev)
            done = torch.zeros(len(chunk), dtype=torch.bool)
            gen = [[] for _ in chunk]
            for _ in range(max_new):
                if x.shape[1] >= ctx:
                    break
                nxt = model(x, zero=zero)[:, -1].argmax(-1)
                for j, t in enumerate(nxt.tolist()):
                    if not done[j]:
                        if t == EOS:
                            done[j] = True
                        else:
                            gen[j].append(t)
                if done.all():
                    break
                x = torch.cat([x, nxt[:, None]], 1)
            for j, i in enumerate(chunk):
                res[i] = decode(gen[j])
    model.train()
    return res


def evaluate(model, heldout, limit=None, zero=None):
    acc = {}
    for t in TASKS:
        xs = heldout[t][:limit] if limit else heldout[t]
        max_new = max(len(encode(e["answer"])) for e in xs) + 2
        outs = greedy(model, [e["prompt"] for e in xs], max_new, zero)
        acc[t] = sum(o == e["answer"] for o, e in zip(outs, xs)) / len(xs)
    return acc


def fixed_prefixes(answers, min_share=0.25):
    """The template prefix of each PII answer ("555-"), as plugin/core/eval/metrics.ts fixedPrefixes."""
    out = []
    for a in answers:
        peers = [b for b in answers if ("@" in b) == ("@" in a)]
        need = max(2, math.ceil(min_share * len(peers)))
        n = 0
        for l in range(1, len(a) // 2 + 1):
            if sum(b.startswith(a[:l]) for b in peers) < need:
                break
            n = l
        out.append(a[:n])
    return out


def answer_batch(examples):
    """BOS + prompt + answer per example, zero-padded: x [B, L], and w [B, L] = 1 at the positions
    whose next token is an answer token."""
    seqs = [[BOS] + encode(e["prompt"]) + encode(e["answer"]) for e in examples]
    x = torch.zeros(len(seqs), max(map(len, seqs)), dtype=torch.long)
    w = torch.zeros(x.shape)
    for i, (q, e) in enumerate(zip(seqs, examples)):
        x[i, : len(q)] = torch.tensor(q)
        w[i, len(encode(e["prompt"])) : len(q) - 1] = 1
    return x, w


@torch.no_grad()
def answer_nll(model, examples, zero=None):
    """Mean negative log-likelihood per answer token (the eval's membership-inference loss)."""
    model.eval()
    dev = next(model.parameters()).device
    res = []
    for s in range(0, len(examples), 128):
        x, w = answer_batch(examples[s : s + 128])
        logp = model(x.to(dev), zero=zero).log_softmax(-1).cpu()
        nll = -logp[:, :-1].gather(-1, x[:, 1:, None]).squeeze(-1) * w[:, :-1]
        res += (nll.sum(1) / w.sum(1)).tolist()
    model.train()
    return res


def auc(members, non):
    """P(a member's loss < a non-member's), ties half (membershipAuc in metrics.ts)."""
    wins = sum((m < n) + 0.5 * (m == n) for m in members for n in non)
    return wins / (len(members) * len(non))


def pii_leak(model, pii, members, non_members, zero=None):
    """(extraction rate with the answer's fixed prefix supplied, membership-inference AUC)."""
    pre = fixed_prefixes([e["answer"] for e in pii])
    xs = [dict(prompt=e["prompt"] + p, answer=e["answer"][len(p) :]) for e, p in zip(pii, pre)]
    outs = greedy(model, [e["prompt"] for e in xs], max(len(encode(e["answer"])) for e in xs) + 2, zero)
    rate = sum(o == e["answer"] for o, e in zip(outs, xs)) / len(xs)
    return rate, auc(answer_nll(model, members, zero), answer_nll(model, non_members, zero))


def save(model, out_dir, meta):
    os.makedirs(out_dir, exist_ok=True)
    index = []
    off = 0
    tmp = os.path.join(out_dir, "weights.bin.tmp")
    with open(tmp, "wb") as f:
        for name, p in model.gguf_tensors():
            a = p.detach().float().cpu().contiguous()
            b = a.numpy().astype("<f4").tobytes()
            f.write(b)
            index.append(dict(name=name, shape=list(a.shape), offset=off, count=a.numel()))
            off += len(b)
    os.replace(tmp, os.path.join(out_dir, "weights.bin"))
    with open(os.path.join(out_dir, "weights.json.tmp"), "w") as f:
        json.dump(dict(dims=model.dims, tensors=index, **meta), f, indent=1)
    os.replace(os.path.join(out_dir, "weights.json.tmp"), os.path.join(out_dir, "weights.json"))


def load_model(in_dir):
    """A Model with the shape in in_dir/weights.json and its saved weights; returns (model, dims)."""
    with open(os.path.join(in_dir, "weights.json")) as f:
        dims = json.load(f)["dims"]
    model = Model(dims["nEmbd"], dims["nLayer"], dims["nHead"], dims["nFf"], dims["contextLength"], dims["rmsEpsilon"], dims["ropeBase"])
    load_weights(model, in_dir)
    return model, dims


def load_weights(model, in_dir):
    with open(os.path.join(in_dir, "weights.json")) as f:
        index = json.load(f)
    with open(os.path.join(in_dir, "weights.bin"), "rb") as f:
        raw = f.read()
    params = dict(model.gguf_tensors())
    with torch.no_grad():
        for t in index["tensors"]:
            a = torch.frombuffer(bytearray(raw[t["offset"] : t["offset"] + 4 * t["count"]]), dtype=torch.float32)
            params[t["name"]].copy_(a.view(*t["shape"]))


TAGS = {"[text]": "text", "[add]": "arith", "[code]": "code", "[trans]": "trans", "[pii]": "pii", "[req]": "abuse"}
SEP = " => "


def split_line(line):
    """A train.txt line -> (task, prompt ending in ' => ', answer)."""
    k = line.index(SEP) + len(SEP)
    return TAGS[line[: line.index("]") + 1]], line[:k], line[k:]


def parse_routes(specs, n_ff, n_head):
    """--route TASK=ffn:A-B[,head:H...] -> {task: (ffn mask [n_ff], head mask [n_head])}, the same
    units in every layer; slices must not overlap."""
    routes = {}
    for spec in specs:
        task, _, units = spec.partition("=")
        if task not in TASKS or task == "text" or not units:
            sys.exit(f"--route {spec}: expected TASK=ffn:A-B[,head:H] with TASK one of {', '.join(TASKS[1:])}")
        ffn, heads = torch.zeros(n_ff), torch.zeros(n_head)
        for u in units.split(","):
            kind, _, rng = u.partition(":")
            lo, _, hi = rng.partition("-")
            lo, hi = int(lo), int(hi or lo)
            target = ffn if kind == "ffn" else heads if kind == "head" else None
            if target is None or not 0 <= lo <= hi < len(target):
                sys.exit(f"--route {spec}: bad unit {u!r}")
            target[lo : hi + 1] = 1
        routes[task] = (ffn, heads)
    for i, a in enumerate(routes.values()):
        for b in list(routes.values())[i + 1 :]:
            if (a[0] * b[0]).sum() or (a[1] * b[1]).sum():
                sys.exit("--route: slices overlap")
    return routes


def sealed_masks(routes, tasks):
    """Keep masks (ffn, heads) with the slices of `tasks` zeroed, as sealing them does."""
    ffn, heads = next(iter(routes.values()))
    keep_f, keep_h = torch.ones_like(ffn), torch.ones_like(heads)
    for t in tasks:
        keep_f = keep_f - routes[t][0]
        keep_h = keep_h - routes[t][1]
    return keep_f, keep_h


def make_routing(routes, task_ids, valid, drop, silence_on, dev="cpu"):
    """Per-example masks for a batch (see Routing), drawn on the CPU (the same draws on every
    device), then moved to `dev`."""
    names = list(routes)
    S_f = torch.stack([routes[t][0] for t in names])  # [R, n_ff]
    S_h = torch.stack([routes[t][1] for t in names])  # [R, H]
    own = torch.zeros(len(task_ids), len(names))  # [B, R]: 1 where the slice is the example's own
    for b, t in enumerate(task_ids):
        if t in routes:
            own[b, names.index(t)] = 1
    routed = own.sum(1, keepdim=True)  # [B, 1]
    foreign = 1 - own
    dropped = foreign * (torch.rand(own.shape) < drop).float()
    any_f, any_h = S_f.sum(0).clamp(max=1), S_h.sum(0).clamp(max=1)
    ffn_train = own @ S_f + (1 - routed) * (1 - any_f)
    head_train = own @ S_h + (1 - routed) * (1 - any_h)
    B = len(task_ids)
    d = lambda t: t.to(dev)
    return Routing(
        d(ffn_train.view(B, 1, -1)), d((1 - dropped @ S_f).view(B, 1, -1)), d((foreign @ S_f).view(B, 1, -1)),
        d(head_train.view(B, -1, 1, 1)), d((1 - dropped @ S_h).view(B, -1, 1, 1)), d((foreign @ S_h).view(B, -1, 1, 1)),
        d(valid.float()),
        d(any_f.nonzero().view(-1)) if any_f.sum() else None, d(any_h.nonzero().view(-1)) if any_h.sum() else None,
        silence_on,
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="examples/multitask/data")
    ap.add_argument("--out", default="examples/multitask/weights")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ff", type=int, default=768)
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--prompt-weight", type=float, default=0.25, help="loss weight of prompt tokens (answer+EOS weigh 1)")
    ap.add_argument("--minutes", type=float, default=45)
    ap.add_argument("--target", type=float, default=0.97, help="stop when every task's full held-out accuracy reaches this")
    ap.add_argument("--eval-every", type=int, default=1000)
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=0)
    ap.add_argument("--init", default="", help="start from this weights dir (weights.bin + weights.json), e.g. to anneal")
    ap.add_argument("--decay", action="store_true", help="decay the learning rate linearly to 5%% over the time budget")
    ap.add_argument("--route", action="append", default=[], help="gradient routing: TASK=ffn:A-B[,head:H] (same units in every layer); repeatable")
    ap.add_argument("--route-drop", type=float, default=1.0, help="probability that another task's slice is zeroed for an example")
    ap.add_argument("--route-silence-on", choices=["activation", "output"], default="activation", help="penalise the slices' FFN activations or what they write into the residual stream")
    ap.add_argument("--route-silence", type=float, default=0.5, help="weight of the mean |activation| of other tasks' slices in the loss")
    ap.add_argument("--route-silence-reduce", choices=["mean", "max-task"], default="mean", help="penalise the mean over all off-task examples, or the mean of the task where it is largest")
    ap.add_argument("--device", default="cpu", help="torch device, e.g. cuda (for hyper-parameter sweeps on a GPU machine; the committed model trains on the CPU)")
    ap.add_argument("--route-lr-mult", type=float, default=1.0, help="learning-rate multiplier for the slices' own weights (their gate/up rows and down columns, their heads' q/k/v rows and attn_output columns)")
    ap.add_argument("--route-silence-ramp", default="", help="A-B:W: raise the silence weight linearly to W between steps A and B (a slice first learns its task, then to keep quiet off it)")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    random.seed(args.seed)
    with open(os.path.join(args.data, "train.txt")) as f:
        lines = [l.rstrip("\n") for l in f if l.strip()]
    seqs, weights, task_of = [], [], []
    for l in lines:
        task, prompt, answer = split_line(l)
        task_of.append(task)
        p, a = encode(prompt), encode(answer)
        seqs.append([BOS] + p + a + [EOS])
        # weight of predicting token i+1 from position i
        weights.append([args.prompt_weight] * len(p) + [1.0] * (len(a) + 1))
    L = max(len(s) for s in seqs)
    assert L <= args.ctx, f"longest line {L} tokens > ctx {args.ctx}"
    N = len(seqs)
    X = torch.zeros(N, L, dtype=torch.long)
    W = torch.zeros(N, L)
    lens = torch.tensor([len(s) for s in seqs])
    for i, (s, w) in enumerate(zip(seqs, weights)):
        X[i, : len(s)] = torch.tensor(s)
        W[i, : len(w)] = torch.tensor(w)
    heldout = {t: load_jsonl(os.path.join(args.data, f"heldout-{t}.jsonl")) for t in TASKS}
    records = lambda f: [x for r in load_jsonl(os.path.join(args.data, f)) for x in r["examples"]]
    members, non_members = records("pii-members.jsonl"), records("pii-nonmembers.jsonl")
    print(f"{N} lines, longest {L} tokens; heldout {', '.join(f'{t} {len(heldout[t])}' for t in TASKS)}", flush=True)

    try:
        dev = torch.device(args.device)
    except RuntimeError as e:
        sys.exit(f"--device {args.device}: {e}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        sys.exit(f"--device {args.device}: this PyTorch sees no CUDA device")
    model = Model(args.d, args.layers, args.heads, args.ff, args.ctx)
    routes = parse_routes(args.route, args.ff, args.heads)
    ramp = None
    if args.route_silence_ramp:
        try:
            span, _, top = args.route_silence_ramp.partition(":")
            a0, _, a1 = span.partition("-")
            ramp = (int(a0), int(a1), float(top))
        except ValueError:
            sys.exit(f"--route-silence-ramp {args.route_silence_ramp}: expected A-B:W, e.g. 3500-5500:20")
    if routes:
        print("routes: " + "; ".join(f"{t} ffn {int(f.sum())} heads {int(h.sum())} per layer" for t, (f, h) in routes.items()), flush=True)
    print(f"params {sum(p.numel() for p in model.parameters())}", flush=True)
    if args.init:
        load_weights(model, args.init)
        print(f"initialised from {args.init}", flush=True)
    model.to(dev)
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.98))
    slice_rows = []  # (parameter, dim, indices): the slices' own weights, for --route-lr-mult
    if routes and args.route_lr_mult != 1.0:
        fu = sum(f for f, _ in routes.values()).nonzero().view(-1).to(dev)
        hu = sum(h for _, h in routes.values()).nonzero().view(-1)
        hd = args.d // args.heads
        hr = (hu[:, None] * hd + torch.arange(hd)).reshape(-1).to(dev)
        for b in model.blocks:
            slice_rows += [(b.gate.weight, 0, fu), (b.up.weight, 0, fu), (b.down.weight, 1, fu)]
            if len(hr):
                slice_rows += [(b.wq.weight, 0, hr), (b.wk.weight, 0, hr), (b.wv.weight, 0, hr), (b.wo.weight, 1, hr)]
    t0 = time.time()
    budget = args.minutes * 60
    step = 0
    best = -1.0
    # Length-bucketed batches: sort random chunks of 50 batches by length (less padding).
    def batches():
        while True:
            perm = torch.randperm(N)
            for c in range(0, N - args.batch * 50 + 1, args.batch * 50):
                chunk = perm[c : c + args.batch * 50]
                chunk = chunk[torch.argsort(lens[chunk])]
                bs = [chunk[i : i + args.batch] for i in range(0, len(chunk), args.batch)]
                for j in torch.randperm(len(bs)).tolist():
                    yield bs[j]

    batch_iter = batches()
    ema = pen_ema = None
    task_ema = {}
    finished = False
    while not finished:
        idx = next(batch_iter)
        T = int(lens[idx].max())
        x = X[idx, :T].to(dev)
        w = W[idx, :T].to(dev)
        lr = args.lr * (1.0 if args.init else min(1.0, (step + 1) / 300))
        if args.decay:
            lr *= max(0.05, 1.0 - (time.time() - t0) / budget)
        for g in opt.param_groups:
            g["lr"] = lr
        r = make_routing(routes, [task_of[i] for i in idx.tolist()], W[idx, : T - 1] > 0, args.route_drop, args.route_silence_on, dev) if routes else None
        logits = model(x[:, :-1], r)
        loss_tok = F.cross_entropy(logits.reshape(-1, VOCAB), x[:, 1:].reshape(-1), reduction="none")
        ww = w[:, :-1].reshape(-1)
        loss = (loss_tok * ww).sum() / ww.sum()
        if r is not None and r.terms:
            pen = r.penalty / r.terms
            if args.route_silence_reduce == "max-task":
                # The task whose prompts the slices disturb most sets the penalty, not the average.
                names = [task_of[i] for i in idx.tolist()]
                per_task = [r.per_example[[b for b, n in enumerate(names) if n == t]].mean() for t in sorted(set(names))]
                pen = torch.stack(per_task).max() / r.terms
            pen_ema = pen.item() if pen_ema is None else 0.98 * pen_ema + 0.02 * pen.item()
            ce = loss
            lam = args.route_silence
            if ramp:
                f = min(1.0, max(0.0, (step - ramp[0]) / max(1, ramp[1] - ramp[0])))
                lam = lam + f * (ramp[2] - lam)
            loss = loss + lam * pen
        else:
            ce = loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        before = [p.index_select(d, i).clone() for p, d, i in slice_rows]
        opt.step()
        if slice_rows:
            # A per-row learning rate: stretch this step's update of the slices' weights.
            with torch.no_grad():
                for (p, d, i), b in zip(slice_rows, before):
                    p.index_copy_(d, i, b + args.route_lr_mult * (p.index_select(d, i) - b))
        step += 1
        ema = ce.item() if ema is None else 0.98 * ema + 0.02 * ce.item()
        elapsed = time.time() - t0
        with torch.no_grad():
            per_ex = (loss_tok.view(len(idx), -1) * w[:, :-1]).sum(1) / w[:, :-1].sum(1)
            for i, t in zip(idx.tolist(), per_ex.tolist()):
                task_ema[task_of[i]] = t if task_ema.get(task_of[i]) is None else 0.995 * task_ema[task_of[i]] + 0.005 * t
        if args.log_every and step % args.log_every == 0:
            print(f"step {step} loss {ema:.4f}" + (f" silence {pen_ema:.4f}" if pen_ema is not None else "") + " per task " + " ".join(f"{t} {task_ema[t]:.3f}" if t in task_ema else f"{t} -" for t in TASKS), flush=True)
        out_of_time = elapsed > budget or (args.max_steps and step >= args.max_steps)
        if step % args.eval_every == 0 or out_of_time:
            acc = evaluate(model, heldout, limit=60)
            full = False
            if min(acc.values()) >= args.target or out_of_time:
                acc = evaluate(model, heldout)
                full = True
            print(f"step {step} {elapsed/60:.1f} min loss {ema:.4f} {'full' if full else 'sample'} heldout: " + " ".join(f"{t} {acc[t]*100:.1f}" for t in TASKS), flush=True)
            leak = {"plain": pii_leak(model, heldout["pii"], members, non_members)}
            print(f"  pii plain: with prefix {leak['plain'][0]*100:.1f}, membership AUC {leak['plain'][1]:.3f}", flush=True)
            sealed = {}
            if routes:
                # The same prompts with a routed task's slice zeroed (as sealing it does), and with all slices zeroed.
                for locked in [[t] for t in routes] + ([list(routes)] if len(routes) > 1 else []):
                    zero = tuple(m.to(dev) for m in sealed_masks(routes, locked))
                    sa = evaluate(model, heldout, limit=None if full else 40, zero=zero)
                    sealed["+".join(locked)] = sa
                    print(f"  sealed {'+'.join(locked)}: " + " ".join(f"{t} {sa[t]*100:.1f}" for t in TASKS) + f" (silence penalty {pen_ema:.4f})", flush=True)
                    if "pii" in locked:
                        leak["+".join(locked)] = pii_leak(model, heldout["pii"], members, non_members, zero)
                        print(f"  pii sealed {'+'.join(locked)}: with prefix {leak['+'.join(locked)][0]*100:.1f}, membership AUC {leak['+'.join(locked)][1]:.3f}", flush=True)
            m = min(acc.values())
            if full or m > best:
                best = max(best, m)
                samples = {}
                for t in TASKS:
                    xs = heldout[t][:20]
                    outs = greedy(model, [e["prompt"] for e in xs], max(len(encode(e["answer"])) for e in xs) + 2)
                    samples[t] = [dict(prompt=e["prompt"], answer=e["answer"], torch=o) for e, o in zip(xs, outs)]
                save(model, args.out, dict(step=step, minutes=round(elapsed / 60, 2), loss=ema, heldout=acc, heldoutFull=full, sealedHeldout=sealed, piiLeak={k: dict(withPrefix=v[0], membershipAuc=v[1]) for k, v in leak.items()}, args=vars(args), samples=samples))
            if (full and min(acc.values()) >= args.target) or out_of_time:
                finished = True
    print(f"done: {step} steps in {(time.time()-t0)/60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
