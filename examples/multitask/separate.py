#!/usr/bin/python3
"""Separation fine-tune: teach a trained model to do without each locked task's selected units.

Selection alone leaves collateral damage and leftovers: the neurons that carry arithmetic also
help the other tasks a little, and other neurons carry some arithmetic too, so zeroing a budget's
worth of them either misses the bar or costs authorized tasks points (examples/multitask/README.md).
This script starts from the trained (base) weights and, per locked task, a fixed unit set (FFN
neurons, optionally attn_v rows, in probe-memory.js's --components grammar: by default the
selection `secneuron eval`'s ablation method makes at 5%, written by separation-units.ts), and
fine-tunes on the TRAINING corpus. Each step takes one lock in turn (every task alone, then the
--together groups) and adds four terms:
  - the full model's loss on every task (what an authorized key gets back),
  - the full model's loss on the locked task's answers (authorized users keep the skill),
  - the masked model's loss (the lock's units zeroed, as sealing does) on every other task
    (with --distill W, plus W times the KL divergence from the full model's next-token
    distributions on the same examples),
  - on the locked task's answers under the mask: a hinge keeping the answer NLL above --margin
    nats, except PII (--pii-target nonmember): member records are pulled, from both sides, to the
    NLL the masked model gives people never trained (calibration non-members), so that a sealed
    model neither recalls them nor reveals membership by an unusually high loss.
Batches draw tasks uniformly (the 200 PII lines are 1% of the corpus). Progress is printed on
the calibration split every --eval-every steps (never on held-out prompts); the final weights go
to --out in train.py's format (export with examples/multitask/export.ts).

Usage: python3 examples/multitask/separate.py --locks units.json [--together pii,abuse] [--steps 1200]
         [--lr 4e-4] [--weights DIR] [--out DIR]
       python3 examples/multitask/separate.py --units unit-probe.json[:ROUND] --lock arith ...
"""
import argparse
import importlib.util
import json
import os
import random
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = os.path.dirname(os.path.abspath(__file__))


def load(name, file):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, file))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


mt = load("mt_train", "train.py")
up = load("mt_unit_probe", "unit-probe.py")
torch, F = mt.torch, mt.F


def full_mask(L, D, NF):
    """unit-probe.py's keep masks with nothing zeroed."""
    return dict(ffn=[torch.ones(NF) for _ in range(L)], v=[torch.ones(D) for _ in range(L)], qk=[torch.ones(D) for _ in range(L)])


def token_logits(model, x, mask, rows=16):
    """Next-token logits [B, T-1, V] with the mask's units zeroed (differentiable), zero past each
    row's end. Rows run in groups of about `rows` of similar length, each group cut to its own
    longest row: a batch mixing the tasks, padded to its longest (abuse, ~85 tokens; arithmetic
    is 20), spends about half its compute on padding. Causal attention makes the cut exact: a
    row's positions never see the padding after it. Padding is token 0, which no sequence holds."""
    B, T = x.shape
    if B <= rows:
        return up.forward(model, x[:, :-1], mask, retain=False)[0]
    lens = (x != 0).sum(1)
    order = lens.argsort(stable=True)
    parts = []
    for idx in order.chunk((B + rows - 1) // rows):
        t = int(lens[idx].max())
        logits, _ = up.forward(model, x[idx, : t - 1], mask, retain=False)
        parts.append(F.pad(logits, (0, 0, 0, T - t)))
    return torch.cat(parts)[order.argsort()]


def nll_of(logits, x):
    """NLL of each next token [B, T-1] from token_logits' output."""
    return F.cross_entropy(logits.reshape(-1, mt.VOCAB), x[:, 1:].reshape(-1), reduction="none").view(x.shape[0], -1)


def token_nll(model, x, mask):
    """NLL of each next token [B, T-1] with the mask's units zeroed (differentiable)."""
    return nll_of(token_logits(model, x, mask), x)


def mean_over(nll, w):
    """Per example: the w-weighted mean of its token NLLs (w aligned with x, as batch() returns)."""
    return (nll * w[:, :-1]).sum(1) / w[:, :-1].sum(1)


def parse_components(text, L, D, NF):
    mask = full_mask(L, D, NF)
    for part in [p for p in text.split("+") if p]:
        kind, li, rest = part.split(":")
        li = int(li)
        if not 0 <= li < L:
            raise ValueError(f"'{part}': no layer {li} (the model has {L})")
        if kind == "ffn":
            a, b = map(int, rest.split("-"))
            if not 0 <= a <= b < NF:
                raise ValueError(f"'{part}': neurons {a}-{b} outside 0-{NF - 1}")
            mask["ffn"][li][a : b + 1] = 0
        elif kind == "v":
            if not 0 <= int(rest) < D:
                raise ValueError(f"'{part}': no attn_v row {rest} (0-{D - 1})")
            mask["v"][li][int(rest)] = 0
        else:
            raise ValueError(f"'{part}': unit kind {kind} is not ffn or v")
    return mask


def read_units(spec, L, D, NF, kinds):
    path, _, rnd = spec.partition(":")
    with open(path) as f:
        d = json.load(f)
    rounds = d["rounds"]
    r = rounds[-1] if not rnd else next(x for x in rounds if x["round"] == int(rnd))
    parts = [p for p in r["components"].split("+") if p.split(":")[0] in kinds]
    return parse_components("+".join(parts), L, D, NF)


def batch(lines, prompt_weight):
    """x [B, T], w [B, T] (weight of predicting token i+1 at i), a [B, T] (answer-token mask)."""
    seqs, ws, ans = [], [], []
    for p, a in lines:
        pe, ae = mt.encode(p), mt.encode(a)
        seqs.append([mt.BOS] + pe + ae + [mt.EOS])
        ws.append([prompt_weight] * len(pe) + [1.0] * (len(ae) + 1))
        ans.append([0.0] * len(pe) + [1.0] * len(ae) + [0.0])
    T = max(map(len, seqs))
    x = torch.zeros(len(seqs), T, dtype=torch.long)
    w = torch.zeros(len(seqs), T)
    am = torch.zeros(len(seqs), T)
    for i, (s, wi, ai) in enumerate(zip(seqs, ws, ans)):
        x[i, : len(s)] = torch.tensor(s)
        w[i, : len(wi)] = torch.tensor(wi)
        am[i, : len(ai)] = torch.tensor(ai)
    return x, w, am


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=os.path.join(HERE, "weights-base"))
    ap.add_argument("--data", default=os.path.join(HERE, "data"))
    ap.add_argument("--lock", default="arith", choices=mt.TASKS[1:])
    ap.add_argument("--locks", default="", help="JSON file: task -> components; every task is locked alone in turn (one lock per step)")
    ap.add_argument("--together", default="", help="with --locks: also lock these tasks together, e.g. pii,abuse (groups joined by ';')")
    ap.add_argument("--together-repeat", type=int, default=1, help="steps each --together group gets per rotation (single-task locks get one): its mask zeroes the most units")
    ap.add_argument("--pii-target", choices=["margin", "shuffle", "nonmember", "quantile"], default="nonmember", help="PII in a lock: pull member NLL to the mean NLL of never-trained people (nonmember) or, rank by rank, to a sorted sample of them (quantile: the member and non-member distributions match), keep it above another member's answer (shuffle), or above --margin")
    ap.add_argument("--pii-weight", type=float, default=1.0, help="weight of the PII term (nonmember target)")
    ap.add_argument("--units", default="", help="unit-probe JSON[:ROUND]: the round's components are the sealed units")
    ap.add_argument("--kinds", default="ffn,v", help="keep only these unit kinds of the round")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--hard-tasks", action="store_true", help="draw half of each masked batch's tasks in proportion to a running mean of their answer NLL under that lock's mask (the tasks a mask hurts most get more steps)")
    ap.add_argument("--decay", action="store_true", help="decay the learning rate linearly to 0 over --steps (settles the weights: fewer prompts flip under a mask)")
    ap.add_argument("--distill", type=float, default=0.0, help="weight of a KL term pulling the masked model's next-token distributions on the authorized tasks to the full model's (teacher detached; part of the masked loss, so --masked-weight scales it too)")
    ap.add_argument("--margin", type=float, default=2.0, help="keep the masked model's mean answer NLL on the locked task above this")
    ap.add_argument("--hinge-weight", type=float, default=0.3)
    ap.add_argument("--masked-weight", type=float, default=1.0, help="weight of the masked model's loss on the tasks the lock leaves authorized")
    ap.add_argument("--lock-full-weight", type=float, default=1.0, help="weight of the full model's loss on the locked task's examples (besides the mixed batch)")
    ap.add_argument("--prompt-weight", type=float, default=0.25)
    ap.add_argument("--eval-every", type=int, default=600)
    ap.add_argument("--eval", type=int, default=50, help="calibration examples per task scored at each progress report")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="PyTorch threads (this model is small: 2 ran 50 steps 6%% faster than 1 on the shared 2-core machine)")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    if bool(args.locks) == bool(args.units):
        sys.exit("give either --locks FILE (every task of it, in turn) or --units FILE[:ROUND] (--lock alone)")
    if args.together_repeat < 1:
        sys.exit("--together-repeat must be at least 1")
    if args.distill < 0:
        sys.exit("--distill must be 0 or more")
    if args.threads < 1:
        sys.exit("--threads must be at least 1")
    torch.set_num_threads(args.threads)  # train.py, imported above, pins one thread
    need = ["train.txt", "pii-members.jsonl", "calib-pii-nonmembers.jsonl"] + [f"{s}-{t}.jsonl" for s in ("heldout", "calib") for t in mt.TASKS]
    for f in ("weights.json", "weights.bin"):
        if not os.path.exists(os.path.join(args.weights, f)):
            sys.exit(f"--weights {args.weights}: no {f}; train the base model first (npm run multitask:train)")
    missing = [f for f in need if not os.path.exists(os.path.join(args.data, f))]
    if missing:
        sys.exit(f"--data {args.data}: missing {', '.join(missing)}; (re)generate it with npm run multitask:corpus")
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    model, dims = mt.load_model(args.weights)
    L, D, NF = dims["nLayer"], dims["nEmbd"], dims["nFf"]
    locks = []  # (locked tasks, mask)
    if args.locks:
        try:
            with open(args.locks) as f:
                comps = json.load(f)
        except (OSError, ValueError) as e:
            sys.exit(f"--locks {args.locks}: {e}")
        bad = [t for t in comps if t not in mt.TASKS[1:]]
        if bad:
            sys.exit(f"--locks {args.locks}: unknown task(s) {', '.join(bad)} (lockable: {', '.join(mt.TASKS[1:])})")
        try:
            for t, c in comps.items():
                locks.append(([t], parse_components(c, L, D, NF)))
            for group in [g for g in args.together.split(";") if g]:
                ts = group.split(",")
                if any(t not in comps for t in ts):
                    sys.exit(f"--together {group}: every task must be in --locks ({', '.join(comps)})")
                locks.extend([(ts, parse_components("+".join(comps[t] for t in ts), L, D, NF))] * args.together_repeat)
        except (ValueError, IndexError) as e:
            sys.exit(f"--locks {args.locks}: bad components ({e}); expected ffn:<layer>:<first>-<last> or v:<layer>:<row> joined by '+'")
    else:
        try:
            locks.append(([args.lock], read_units(args.units, L, D, NF, args.kinds.split(","))))
        except (OSError, ValueError, KeyError, StopIteration) as e:
            sys.exit(f"--units {args.units}: {e!r}")
    ones = full_mask(L, D, NF)
    distinct = list({"+".join(ts): (ts, m) for ts, m in locks}.values())  # --together-repeat repeats entries
    for ts, m in distinct:
        print(f"lock {'+'.join(ts)}: ffn {sum(int((x == 0).sum()) for x in m['ffn'])} v {sum(int((x == 0).sum()) for x in m['v'])}", flush=True)
    by_task = {t: [] for t in mt.TASKS}
    with open(os.path.join(args.data, "train.txt")) as f:
        for l in f:
            if l.strip():
                task, prompt, answer = mt.split_line(l.rstrip("\n"))
                by_task[task].append((prompt, answer))
    held = {t: mt.load_jsonl(os.path.join(args.data, f"heldout-{t}.jsonl")) for t in mt.TASKS}
    # Progress is watched on the calibration split: settings are never tuned on held-out prompts.
    calib = {t: mt.load_jsonl(os.path.join(args.data, f"calib-{t}.jsonl")) for t in mt.TASKS}

    def balanced(tasks, n):
        """n training examples, tasks drawn uniformly: the 200 PII lines are 1% of the corpus and
        would hardly be seen (and so forgotten) under the mixed distribution."""
        return [random.choice(by_task[random.choice(tasks)]) for _ in range(n)]
    records = lambda f: [x for r in mt.load_jsonl(os.path.join(args.data, f)) for x in r["examples"]]
    members = records("pii-members.jsonl")
    # Membership AUC against calibration non-members: fictional people drawn like the members but
    # never trained (the evaluation's own non-members stay unseen here).
    calib_non = mt.load_jsonl(os.path.join(args.data, "calib-pii-nonmembers.jsonl"))
    # First half (people 0-49): the nonmember target; second half: the AUC check while training.
    non_target = [(e["prompt"], e["answer"]) for e in calib_non[: len(calib_non) // 2]]
    calib_non = calib_non[len(calib_non) // 2 :]
    non_by_kind = {kind: [e for e in non_target if ("@" in e[1]) == kind] for kind in (False, True)}  # phone / e-mail

    def report(step):
        full = {t: up.accuracy(model, calib[t], ones, args.eval) for t in mt.TASKS}
        print(f"step {step}: full " + " ".join(f"{t} {full[t]*100:.0f}" for t in mt.TASKS), flush=True)
        sealed = {}
        for ts, m in distinct:
            acc = {t: up.accuracy(model, calib[t], m, args.eval) for t in mt.TASKS}
            lost = max((full[t] - acc[t]) * 100 for t in mt.TASKS if t not in ts)
            line = f"  sealed {'+'.join(ts)}: " + " ".join(f"{t} {acc[t]*100:.0f}" for t in mt.TASKS) + f" (worst authorized loss {lost:.0f})"
            if "pii" in ts:
                saved = up.apply_mask(model, m)
                try:
                    rate, auc = mt.pii_leak(model, calib["pii"][: args.eval], members, calib_non)
                finally:
                    up.restore(model, saved)
                line += f" pii with prefix {rate*100:.0f}, membership AUC {auc:.3f}"
            print(line, flush=True)
            sealed["+".join(ts)] = acc
        return full, sealed

    full = sealed = None
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.0)
    hard = {}  # --hard-tasks: lock -> task -> running mean answer NLL under the lock's mask
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1 - i / args.steps if args.decay else 1.0)
    t0 = time.time()
    for step in range(1, args.steps + 1):
        ts, mask = locks[(step - 1) % len(locks)]
        name = "+".join(ts)
        others = [t for t in mt.TASKS if t not in ts]
        x, w, _ = batch(balanced(mt.TASKS, args.batch), args.prompt_weight)
        ww = w[:, :-1]
        loss_full = (token_nll(model, x, ones) * ww).sum() / ww.sum()
        if args.hard_tasks:
            ema = hard.setdefault(name, {t: 1.0 for t in others})
            tot = sum(ema.values())
            drawn = [t if random.random() < 0.5 else random.choices(others, weights=[ema[o] / tot for o in others])[0] for t in random.choices(others, k=args.batch)]
            lines = [random.choice(by_task[t]) for t in drawn]
        else:
            lines = balanced(others, args.batch)
        x, w, am_o = batch(lines, args.prompt_weight)
        ww = w[:, :-1]
        logits_o = token_logits(model, x, mask)
        nll_o = nll_of(logits_o, x)
        loss_masked = (nll_o * ww).sum() / ww.sum()
        if args.distill > 0:
            # The masked model matches the full model's whole next-token distribution on the
            # authorized tasks, not only the right answer's probability: the margins that keep
            # an unseen prompt's answer from flipping under the mask carry over.
            with torch.no_grad():
                teacher = F.log_softmax(token_logits(model, x, ones), -1)
            kl = F.kl_div(F.log_softmax(logits_o, -1), teacher, log_target=True, reduction="none").sum(-1)
            loss_masked = loss_masked + args.distill * (kl * ww).sum() / ww.sum()
        if args.hard_tasks:
            with torch.no_grad():
                per = mean_over(nll_o, am_o)
                for t in set(drawn):
                    sel = torch.tensor([d == t for d in drawn])
                    ema[t] = 0.9 * ema[t] + 0.1 * float(per[sel].mean())
        locked = [e for t in ts for e in by_task[t]]
        picked = random.sample(locked, args.batch // 2)
        x, _, am = batch(picked, args.prompt_weight)
        per_ex = mean_over(token_nll(model, x, mask), am)
        weight = args.hinge_weight
        if args.pii_target in ("quantile", "nonmember") and "pii" in ts:
            # Forget, not invert: pull each member's answer NLL to the level of people never
            # trained (a sample of the first half of the calibration non-members, same kind:
            # phone or e-mail), from both sides: pushed past it, members would stand out again
            # (membership AUC below 0.5). The second half stays unseen for the AUC check.
            with torch.no_grad():
                if args.pii_target == "quantile":
                    # Membership AUC compares distributions, not means: the non-member NLLs are
                    # skewed, so members pulled to the mean sit above the median (AUC < 0.5).
                    # Here each kind's members, sorted by NLL, are pulled to an equally large
                    # sorted sample of non-member NLLs (the 1-D optimal transport).
                    goal = per_ex.detach().clone()
                    for kind in (False, True):
                        idx = [i for i, (p, a) in enumerate(picked) if p.startswith("[pii]") and ("@" in a) == kind]
                        if not idx:
                            continue
                        xn, _, an = batch(random.sample(non_by_kind[kind], len(idx)), args.prompt_weight)
                        sample = mean_over(token_nll(model, xn, mask), an).sort().values
                        for r, j in enumerate(per_ex.detach()[idx].argsort().tolist()):
                            goal[idx[j]] = sample[r]
                else:
                    target = {}
                    for kind in (False, True):
                        xn, _, an = batch(random.sample(non_by_kind[kind], 16), args.prompt_weight)
                        target[kind] = mean_over(token_nll(model, xn, mask), an).mean()
                    goal = torch.stack([target["@" in a] for _, a in picked])
            is_pii = torch.tensor([p.startswith("[pii]") for p, _ in picked], dtype=torch.float32)
            # Other locked tasks of the lock (abuse, with pii+abuse) keep the plain margin hinge.
            terms = is_pii * (per_ex - goal).abs() * args.pii_weight + (1 - is_pii) * F.relu(args.margin - per_ex) * args.hinge_weight
            hinge = terms.mean()
            weight = 1.0
        elif args.pii_target == "shuffle" and ts == ["pii"]:
            # The true record no likelier than another person's answer of the same kind.
            alt = []
            for p, a in picked:
                same = [o for o in by_task["pii"] if ("@" in o[1]) == ("@" in a) and o[1] != a]
                alt.append((p, random.choice(same)[1]))
            with torch.no_grad():
                xa, _, aa = batch(alt, args.prompt_weight)
                target = mean_over(token_nll(model, xa, mask), aa)
            hinge = F.relu(target - per_ex).mean()
        else:
            hinge = F.relu(args.margin - per_ex).mean()
        # The same locked-task examples through the full model: authorized users keep the skill.
        loss_lock_full = (token_nll(model, x, ones) * am[:, :-1]).sum() / am[:, :-1].sum()
        loss = loss_full + args.masked_weight * loss_masked + weight * hinge + args.lock_full_weight * loss_lock_full
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0 and name in hard:
            print("  hard " + " ".join(f"{t} {v:.3f}" for t, v in hard[name].items()), flush=True)
        if step % 50 == 0:
            print(f"step {step} {time.time()-t0:.0f}s [{name}] full {loss_full.item():.4f} masked-others{'+kl' if args.distill > 0 else ''} {loss_masked.item():.4f} locked-nll {per_ex.mean().item():.3f} locked-full {loss_lock_full.item():.4f}", flush=True)
        if step % args.eval_every == 0 or step == args.steps:
            full, sealed = report(step)
    if args.out:
        # train.py's fields (export.ts checks llama.cpp against these PyTorch samples), plus what
        # this step did; `trained` keeps the base model's own record.
        with open(os.path.join(args.weights, "weights.json")) as f:
            base = {k: v for k, v in json.load(f).items() if k not in ("dims", "tensors", "samples")}
        samples = {}
        for t in mt.TASKS:
            xs = held[t][:20]
            outs = mt.greedy(model, [e["prompt"] for e in xs], max(len(mt.encode(e["answer"])) for e in xs) + 2)
            samples[t] = [dict(prompt=e["prompt"], answer=e["answer"], torch=o) for e, o in zip(xs, outs)]
        meta = dict(step=base.get("step", 0) + args.steps, minutes=round(base.get("minutes", 0) + (time.time() - t0) / 60, 2), loss=base.get("loss"),
                    heldout=base.get("heldout"), heldoutFull=base.get("heldoutFull"), args=base.get("args"), trained=base,
                    separate=dict(args=vars(args), steps=args.steps, minutes=round((time.time() - t0) / 60, 2), calibration=full, sealedCalibration=sealed), samples=samples)
        mt.save(model, args.out, meta)
        print(f"saved {args.out}", flush=True)

if __name__ == "__main__":
    main()
