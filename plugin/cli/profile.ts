/**
 * `secneuron profile`: which FFN neurons carry each task. Runs every task's corpus through
 * llama.cpp (in a child process), captures the ffn_down input per token and writes a
 * `secneuron-profile` v1 JSON (docs/profile-format.md, docs/profiling.md). Tasks can also come
 * from llama-imatrix files (--imatrix task=file).
 */
import { existsSync, readFileSync } from "node:fs";
import { rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { randomBytes } from "node:crypto";
import { UsageError } from "../errors.js";
import { isValidTaskName, parseProfile, parseProfileText, PROFILE_FORMAT, PROFILE_VERSION, type Profile, type TaskProfile } from "../core/profile/profile.js";
import type { LlamaHyperparams } from "../core/gguf/llama-check.js";
import { validateModelFile } from "../edges/engine/engine-process.js";
import { importImatrix, imatrixTaskProfile } from "../edges/profile/imatrix.js";
import { profileModelWithStats, sha256File, type ProfileProgress, type ProfileStats, type ScoreItem } from "../edges/profile/profile-process.js";
import { ablateModel, type AblationUnits } from "../edges/profile/ablate.js";
import { iterativeSelection } from "../edges/profile/iterative.js";
import { readPickOrder } from "../core/profile/pick-order.js";
import { readExamplesFile } from "../edges/eval/tasks.js";
import type { Command } from "./args.js";

function usage(msg: string): never {
  throw new UsageError("CLI_USAGE", `profile: ${msg}\nRun 'secneuron profile --help' for usage.`);
}

function positiveInt(v: unknown, flag: string, min = 1): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) usage(`${flag} must be ${min === 1 ? "a positive integer" : `an integer >= ${min}`}, got ${JSON.stringify(v)}`);
  return n;
}

/** Parse repeated `name=path` options. */
function namedFiles(values: unknown, flag: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const raw of (values as string[] | undefined) ?? []) {
    const eq = raw.indexOf("=");
    if (eq <= 0 || eq === raw.length - 1) usage(`${flag} expects name=file, got ${JSON.stringify(raw)}`);
    const name = raw.slice(0, eq);
    const file = raw.slice(eq + 1);
    if (!isValidTaskName(name)) usage(`${flag} ${name}: task names are 1-64 of a-z, 0-9, _ and -, starting with a letter`);
    if (!existsSync(file)) usage(`${flag} ${name}: ${file} does not exist`);
    out.push([name, file]);
  }
  return out;
}

/** Samples of a corpus file: one per non-empty line. */
export function readCorpus(path: string): string[] {
  return readFileSync(path, "utf8")
    .split(/\r?\n/)
    .filter((l) => l.trim().length > 0);
}

/** A token progress bar on stderr (TTY only). */
function tokenBar(stream: NodeJS.WriteStream = process.stderr): { update(p: ProfileProgress): void; done(): void } {
  const start = Date.now();
  let last: ProfileProgress | undefined;
  let drawn = 0;
  const draw = (p: ProfileProgress): void => {
    const frac = p.total > 0 ? Math.min(1, p.done / p.total) : 1;
    const width = 30;
    const filled = Math.round(frac * width);
    const secs = (Date.now() - start) / 1000;
    const rate = secs > 0 ? p.done / secs : 0;
    stream.write(`\rprofile ${p.task.slice(0, 16).padEnd(16)} [${"#".repeat(filled)}${" ".repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}% ${p.done}/${p.total} tokens ${rate.toFixed(0)} tok/s  `);
  };
  return {
    update(p) {
      last = p;
      const now = Date.now();
      if (now - drawn < 100 && p.done < p.total) return;
      drawn = now;
      draw(p);
    },
    done() {
      if (last) {
        draw({ ...last, done: last.total });
        stream.write("\n");
      }
    },
  };
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    await writeFile(tmp, text, { flag: "wx" });
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** Write a profile atomically, round-tripped through the strict parser: what we write is what seal reads. */
async function writeProfile(path: string, profile: Profile): Promise<Profile> {
  const final = parseProfile(JSON.parse(JSON.stringify(profile)));
  await writeAtomic(path, `${JSON.stringify(final)}\n`);
  return final;
}

/** A profile named by a flag: it must exist and parse. */
function readProfileArg(file: string, flag: string): Profile {
  if (!existsSync(file)) usage(`${flag} ${file} does not exist`);
  return parseProfileText(readFileSync(file, "utf8"));
}

/** Calibration examples of a task file: JSON lines {prompt, answer} (as `eval` reads them), or text lines (scored whole). */
export function readScoreItems(path: string): ScoreItem[] {
  if (path.toLowerCase().endsWith(".jsonl")) return readExamplesFile(path);
  return readCorpus(path).map((answer) => ({ prompt: "", answer }));
}

async function runAblation(
  values: Record<string, unknown>,
  model: string,
  hp: LlamaHyperparams,
  out: string,
  tasks: Array<[string, string]>,
  imatrices: Array<[string, string]>,
  io: Parameters<Command["run"]>[2],
): Promise<number> {
  if (imatrices.length) usage("--imatrix cannot be combined with --ablate");
  for (const f of ["max-tokens", "batch", "include-bos"]) if (values[f] !== undefined) usage(`--${f} does not apply to --ablate`);
  const iterative = Boolean(values.iterative);
  const units = (values.units ?? (iterative ? "ffn" : "all")) as string;
  if (!["ffn", "heads", "all"].includes(units)) usage(`--units must be ffn, heads or all, got '${units}'`);
  if (iterative && units !== "ffn") usage("--iterative selects FFN neurons only (--units ffn)");
  if (!iterative) for (const f of ["lock", "start", "rounds", "per-round", "candidates", "resume", "activation-profile"]) if (values[f] !== undefined) usage(`--${f} goes with --iterative`);
  const examples = positiveInt(values.examples, "--examples");
  const threads = positiveInt(values.threads, "--threads") ?? 1;
  const contextSize = positiveInt(values.context, "--context");
  const items: Record<string, ScoreItem[]> = {};
  const source: Record<string, string> = {};
  for (const [name, file] of tasks) {
    const all = readScoreItems(file);
    if (all.length === 0) usage(`--task ${name}: ${file} has no examples`);
    items[name] = examples ? all.slice(0, examples) : all;
    source[`calibration.${name}`] = basename(file);
  }
  const tty = io.isTTY && !values.json;
  if (iterative) return runIterative(values, model, hp, out, items, source, threads, contextSize, tty, io);
  const start = Date.now();
  let drawn = 0;
  const { profile, stats } = await abortable((signal) => ablateModel({
    signal,
    modelPath: model,
    tasks: items,
    units: units as AblationUnits,
    threads,
    hashModel: !values["no-hash"],
    source,
    ...(contextSize ? { contextSize } : {}),
    onProgress: (p) => {
      if (!tty || (Date.now() - drawn < 200 && p.done < p.total)) return;
      drawn = Date.now();
      const frac = p.done / p.total;
      const eta = p.done > 0 ? ((Date.now() - start) / p.done) * (p.total - p.done) / 1000 : 0;
      process.stderr.write(`\rablate [${"#".repeat(Math.round(frac * 30)).padEnd(30)}] ${p.done}/${p.total} units, ${eta.toFixed(0)} s left  `);
      if (p.done === p.total) process.stderr.write("\n");
    },
  }));
  const final = await writeProfile(out, profile);
  const summary = { out, model: final.model, units: stats.units, seconds: Number(stats.seconds.toFixed(1)), baseLoss: stats.baseLoss, scoredTokens: stats.scoredTokens, examples: stats.examples };
  if (values.json) io.out(JSON.stringify(summary));
  else {
    const lines = [`wrote ${out}: ablation of ${stats.units} units (${units}) on ${Object.keys(items).length} task(s) in ${stats.seconds.toFixed(1)} s`];
    for (const n of Object.keys(items)) lines.push(`  ${n.padEnd(16)} ${String(stats.examples[n]).padStart(6)} examples ${String(stats.scoredTokens[n]).padStart(7)} scored tokens  plain loss ${stats.baseLoss[n]!.toFixed(5)}`);
    io.out(lines.join("\n"));
  }
  return 0;
}

function fraction(v: unknown, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!(Number.isFinite(n) && n >= 0 && n < 1)) usage(`${flag} must be a fraction in [0, 1), got ${JSON.stringify(v)}`);
  return n;
}

/** Ctrl-C or a TERM stops between units, so the scratch copy on tmpfs is removed. */
async function abortable<T>(f: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    return await f(ac.signal);
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
}

async function runIterative(
  values: Record<string, unknown>,
  model: string,
  hp: LlamaHyperparams,
  out: string,
  items: Record<string, ScoreItem[]>,
  source: Record<string, string>,
  threads: number,
  contextSize: number | undefined,
  tty: boolean,
  io: Parameters<Command["run"]>[2],
): Promise<number> {
  const lock = ((values.lock as string | undefined) ?? "").split(",").filter((x) => x.length > 0);
  if (lock.length === 0) usage("--iterative needs --lock <task>[,<task>...]");
  for (const t of lock) if (!items[t]) usage(`--lock ${t}: no --task ${t}=<calib> was given`);
  if (Object.keys(items).every((t) => lock.includes(t))) usage("--iterative needs at least one --task that is not locked (its loss is what selection protects)");
  let resume: { picks: ReturnType<typeof readPickOrder>; rounds: number } | undefined;
  if (values.resume !== undefined) {
    const file = values.resume as string;
    if (values.start !== undefined) usage("--start does not apply to --resume (the picks so far are the start)");
    const p = readProfileArg(file, "--resume");
    if (p.model.blockCount !== hp.blockCount || p.model.feedForwardLength !== hp.feedForwardLength) usage(`--resume ${file} is for ${p.model.blockCount} x ${p.model.feedForwardLength} neurons, the model has ${hp.blockCount} x ${hp.feedForwardLength}`);
    const picks = readPickOrder(p);
    for (const t of Object.keys(picks)) if (!lock.includes(t)) usage(`--resume ${file} has picks for '${t}', which --lock does not name`);
    resume = { picks, rounds: Number(p.source?.rounds ?? 0) || 0 };
  }
  let activation: Profile | undefined;
  if (values["activation-profile"] !== undefined) {
    const file = values["activation-profile"] as string;
    activation = readProfileArg(file, "--activation-profile");
    source["activation"] = basename(file);
  }
  const t0 = Date.now();
  let drawn = 0;
  const rounds = positiveInt(values.rounds, "--rounds", 0);
  const start = fraction(values.start, "--start");
  const result = await abortable((signal) =>
    iterativeSelection({
      modelPath: model,
      tasks: items,
      lock,
      signal,
      threads,
      hashModel: !values["no-hash"],
      source,
      ...(contextSize ? { contextSize } : {}),
      ...(resume ? { resume } : {}),
      ...(activation ? { activation } : {}),
      ...(start !== undefined ? { start } : {}),
      ...(rounds !== undefined ? { rounds } : {}),
      ...(values["per-round"] !== undefined ? { perRound: positiveInt(values["per-round"], "--per-round")! } : {}),
      ...(values.candidates !== undefined ? { candidates: positiveInt(values.candidates, "--candidates")! } : {}),
      // Every round's picks are written, so an interrupted run keeps its work (--resume it).
      onRound: async (r) => {
        await writeProfile(out, r.profile);
        const line = `round ${r.round}/${r.rounds}: ${Object.entries(r.selected).map(([t, n]) => `${t} ${n}`).join(", ")} neurons picked (${r.seconds.toFixed(0)} s)`;
        if (tty) process.stderr.write(`\r${line.padEnd(78)}\n`);
        else if (!values.json) io.err(line);
      },
      onProgress: (p) => {
        if (!tty || (Date.now() - drawn < 200 && p.done < p.total)) return;
        drawn = Date.now();
        const frac = p.done / p.total;
        process.stderr.write(`\rround ${p.round + 1} [${"#".repeat(Math.round(frac * 30)).padEnd(30)}] ${p.done}/${p.total} candidates  `);
      },
    }),
  );
  await writeProfile(out, result.profile);
  const summary = { out, model: result.profile.model, lock, selected: result.selected, rounds: Number(result.profile.source?.rounds), seconds: Number(((Date.now() - t0) / 1000).toFixed(1)) };
  if (values.json) io.out(JSON.stringify(summary));
  else io.out(`wrote ${out}: pick order of ${Object.entries(result.selected).map(([t, n]) => `${n} ${t}`).join(", ")} neurons after ${summary.rounds} round(s) in ${summary.seconds} s\nSeal a budget of it with: secneuron eval --methods ablation --ablation-profile ${out} ...`);
  return 0;
}

export const profileCommand: Command = {
  name: "profile",
  summary: "measure which FFN neurons each task uses (writes a profile for seal)",
  help: `Usage: secneuron profile --model <m.gguf> --task <name>=<corpus.txt> [--task ...] --out <profile.json>
                         [--imatrix <name>=<file>] [--max-tokens N] [--threads N] [--context N]
                         [--batch N] [--include-bos] [--no-hash] [--force] [--json]
       secneuron profile --ablate --model <m.gguf> --task <name>=<calib.jsonl> [--task ...] --out <profile.json>
                         [--units ffn|heads|all] [--examples N] [--threads N] [--context N]
       secneuron profile --ablate --iterative --lock <task>[,<task>...] --model <m.gguf>
                         --task <name>=<calib.jsonl> [--task ...] --out <pick-order.json>
                         [--start F] [--rounds N] [--per-round N] [--candidates N] [--resume FILE]
                         [--activation-profile FILE]

Runs each task's corpus through llama.cpp (a child process; the model is validated first) and
records, per task, layer and FFN neuron, the mean |activation| (importance) and mean
activation^2 of the ffn_down input silu(gate·x)*(up·x). Each non-empty line of a corpus file is
one sample, evaluated from an empty context. See docs/profiling.md.

With --ablate, importance is measured by removal instead: each FFN neuron (and attention head
group) has its sealable rows zeroed in a memory-mapped scratch copy of the model, and the mean
negative log-likelihood of every task's calibration answers is measured again in llama.cpp;
importance = the increase (0 when removal does not hurt). Task files are JSON lines
{"prompt": ..., "answer": ...} (a .jsonl file) or plain text lines (the whole line is scored).
Slow: one pass over every task's examples per unit.

With --ablate --iterative, neurons for the --lock tasks are picked in rounds, each measured with
the previous picks zeroed (single-unit ablation misses skills spread over redundant neurons):
start from the top --start fraction per locked task by activation specificity, then each round
ablates the --candidates best remaining neurons per locked task and adds the --per-round whose
removal hurts the locked task most relative to the unlocked tasks. The output is a pick-order
profile (docs/profiling.md): seal or evaluate any budget of it with
'secneuron eval --methods ablation --ablation-profile FILE'. It is rewritten after every round;
--resume FILE continues an interrupted or finished run with more rounds.

Options:
  --model FILE          the plaintext GGUF model (llama architecture)
  --task NAME=FILE      a task and its corpus (repeatable)
  --imatrix NAME=FILE   a task from a llama-imatrix file (GGUF or legacy .dat); importance is
                        sqrt(mean activation^2) there (repeatable)
  --out FILE            where to write the profile JSON
  --max-tokens N        profile at most N tokens per task (default: the whole corpus)
  --threads N           llama.cpp threads (default 1)
  --context N           context window per sample; longer lines are cut (default 512)
  --batch N             tokens per decode call (default min(512, context))
  --include-bos         also count the BOS token of each sample
  --ablate              importance by ablation in llama.cpp (see above)
  --units WHICH         with --ablate: ffn, heads or all (default all)
  --examples N          with --ablate: at most N examples per task (default all)
  --iterative           with --ablate: conditional selection in rounds (see above)
  --lock TASKS          with --iterative: comma-separated tasks to pick neurons for
  --start F             with --iterative: starting fraction of FFN neurons per locked task (default 0.05)
  --rounds N            with --iterative: rounds of ablation (default 4)
  --per-round N         with --iterative: neurons each locked task gains per round (default 40)
  --candidates N        with --iterative: neurons per locked task ablated per round (default 250)
  --resume FILE         with --iterative: continue from a pick-order profile it wrote
  --activation-profile FILE
                        with --iterative: rank candidates by this activation profile (e.g. one
                        taken on a larger corpus) instead of profiling the calibration examples
  --no-hash             do not record the model's SHA-256 (skips reading the whole file)
  --force               overwrite --out
  --json                print a JSON summary instead of text
  -h, --help            this help

Example:
  secneuron profile --model m.gguf --task code=code.txt --task math=math.txt --out profile.json`,
  options: {
    model: { type: "string" },
    task: { type: "string", multiple: true },
    imatrix: { type: "string", multiple: true },
    out: { type: "string" },
    "max-tokens": { type: "string" },
    threads: { type: "string" },
    context: { type: "string" },
    batch: { type: "string" },
    "include-bos": { type: "boolean" },
    ablate: { type: "boolean" },
    units: { type: "string" },
    examples: { type: "string" },
    iterative: { type: "boolean" },
    lock: { type: "string" },
    start: { type: "string" },
    rounds: { type: "string" },
    "per-round": { type: "string" },
    candidates: { type: "string" },
    resume: { type: "string" },
    "activation-profile": { type: "string" },
    "no-hash": { type: "boolean" },
    force: { type: "boolean" },
  },
  async run(values, positionals, io) {
    if (positionals.length) usage(`unexpected argument '${positionals[0]}'`);
    const model = values.model as string | undefined;
    const out = values.out as string | undefined;
    if (!model) usage("--model is required");
    if (!out) usage("--out is required");
    if (!existsSync(model)) usage(`--model ${model} does not exist`);
    if (existsSync(out) && !values.force) usage(`${out} exists (use --force to overwrite)`);
    if (resolve(out) === resolve(model)) usage("--out must differ from --model");
    const tasks = namedFiles(values.task, "--task");
    const imatrices = namedFiles(values.imatrix, "--imatrix");
    if (tasks.length + imatrices.length === 0) usage("give at least one --task or --imatrix");
    const seen = new Set<string>();
    for (const [name] of [...tasks, ...imatrices]) {
      if (seen.has(name)) usage(`task '${name}' is given twice`);
      seen.add(name);
    }
    const maxTokens = positiveInt(values["max-tokens"], "--max-tokens");
    const threads = positiveInt(values.threads, "--threads") ?? 1;
    const contextSize = positiveInt(values.context, "--context");
    const batchSize = positiveInt(values.batch, "--batch");
    const hash = !values["no-hash"];

    const hyper = validateModelFile(model);
    if (values.ablate) return runAblation(values, model, hyper, out, tasks, imatrices, io);
    for (const f of ["units", "examples", "iterative", "lock", "start", "rounds", "per-round", "candidates", "resume", "activation-profile"]) if (values[f] !== undefined) usage(`--${f} goes with --ablate`);
    const source: Record<string, string> = {};
    for (const [name, file] of tasks) source[`corpus.${name}`] = basename(file);
    for (const [name, file] of imatrices) source[`imatrix.${name}`] = basename(file);

    let profile: Profile;
    let stats: ProfileStats | undefined;
    if (tasks.length) {
      const corpora: Record<string, string[]> = {};
      for (const [name, file] of tasks) {
        corpora[name] = readCorpus(file);
        if (corpora[name]!.length === 0) usage(`--task ${name}: ${file} has no non-empty lines`);
      }
      const bar = io.isTTY && !values.json ? tokenBar() : undefined;
      const r = await profileModelWithStats({
        modelPath: model,
        tasks: corpora,
        threads,
        hashModel: hash,
        source,
        ...(maxTokens ? { maxTokens } : {}),
        ...(contextSize ? { contextSize } : {}),
        ...(batchSize ? { batchSize } : {}),
        ...(values["include-bos"] ? { includeBos: true } : {}),
        ...(bar ? { onProgress: bar.update } : {}),
      });
      bar?.done();
      profile = r.profile;
      stats = r.stats;
    } else {
      const sha256 = hash ? await sha256File(model) : undefined;
      profile = {
        format: PROFILE_FORMAT,
        version: PROFILE_VERSION,
        model: { ...(sha256 ? { sha256 } : {}), architecture: hyper.architecture, blockCount: hyper.blockCount, feedForwardLength: hyper.feedForwardLength },
        source: { tool: "secneuron profile (imatrix import)", ...source },
        tasks: {},
      };
    }
    const all: Record<string, TaskProfile> = { ...profile.tasks };
    for (const [name, file] of imatrices) all[name] = imatrixTaskProfile(importImatrix(file), hyper, file);
    const final = await writeProfile(out, { ...profile, tasks: all });

    const summary = {
      out,
      model: final.model,
      tasks: Object.fromEntries(Object.entries(final.tasks).map(([n, t]) => [n, { tokens: t.tokens, layers: t.layers.length, from: tasks.some(([x]) => x === n) ? "llama.cpp" : "imatrix" }])),
      ...(stats ? { tokensEvaluated: stats.tokensEvaluated, tokensPerSecond: Math.round(stats.tokensPerSecond), decodeMs: Math.round(stats.decodeMs) } : {}),
    };
    if (values.json) io.out(JSON.stringify(summary));
    else {
      const lines = [`wrote ${out}: ${Object.keys(final.tasks).length} task(s), ${final.model.blockCount} layers x ${final.model.feedForwardLength} FFN neurons`];
      for (const [n, t] of Object.entries(summary.tasks)) lines.push(`  ${n.padEnd(16)} ${String(t.tokens).padStart(9)} tokens  (${t.from})`);
      if (stats) lines.push(`llama.cpp: ${stats.tokensEvaluated} tokens in ${(stats.decodeMs / 1000).toFixed(2)} s (${stats.tokensPerSecond.toFixed(0)} tokens/s, ${threads} thread${threads > 1 ? "s" : ""})`);
      io.out(lines.join("\n"));
    }
    return 0;
  },
};
