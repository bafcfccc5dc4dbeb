/**
 * Ablation profiling in llama.cpp itself: how much each FFN neuron and each attention head group
 * matters to each task, measured by zeroing it.
 *
 * The model is copied to a scratch file (tmpfs by default; the user's file is never written) and
 * loaded by the profiler child with the weights read straight from the memory-mapped file (no
 * repacked copies). For each unit, its sealable rows (the rows `seal` would encrypt: gate and up
 * rows of an FFN neuron; the q, k and v rows of a head group, see core/seal/plan.ts) are
 * overwritten with zero bytes in the file, every task's calibration answers are re-scored in the
 * child (mean negative log-likelihood per answer token, EOS included), and the bytes are put
 * back. A zero row reads as 0 in every ggml type, so this is exactly the model a key without the
 * unit gets (the detector zeroes undecrypted rows). No reload is needed between units: the child
 * maps the same pages.
 *
 * importance_t(unit) = max(0, loss_t(unit zeroed) - loss_t(plain)): the profile format keeps
 * importances >= 0, and a unit whose removal helps a task does not matter to it. Selection
 * (core/profile/select.ts) then scores specificity on these numbers as on activation statistics.
 */
import { closeSync, copyFileSync, existsSync, openSync, readSync, rmSync, writeSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { EngineError } from "../../errors.js";
import type { LlamaHyperparams } from "../../core/gguf/llama-check.js";
import { PROFILE_FORMAT, PROFILE_VERSION, isValidTaskName, ProfileError, type LayerStats, type Profile } from "../../core/profile/profile.js";
import { nodeRows, type SealedRow } from "../../core/seal/plan.js";
import { readGgufHeader } from "../gguf-file.js";
import { makeScratchDir } from "../scratch-dir.js";
import { validateModelFile } from "../engine/engine-process.js";
import { ProfileProcess, round7, sha256File, type ScoreItem } from "./profile-process.js";

export type AblationUnits = "ffn" | "heads" | "all";

export interface AblateOptions {
  readonly modelPath: string;
  /** Task -> calibration examples (prompt, answer); a corpus line is { prompt: "", answer: line }. */
  readonly tasks: Readonly<Record<string, readonly ScoreItem[]>>;
  /** Which units to ablate (default "all": FFN neurons and head groups). */
  readonly units?: AblationUnits;
  /** Only these layers (default: every layer). */
  readonly layers?: readonly number[];
  /** llama.cpp threads (default 1). */
  readonly threads?: number;
  /** Context size (default 512; longer examples are skipped). */
  readonly contextSize?: number;
  /**
   * Units kept zeroed for the whole run (a selection already made): importances are then
   * conditional on their removal, which exposes backups of redundant units (iterative selection).
   */
  readonly zeroed?: ReadonlyArray<{ readonly kind: "ffn" | "head"; readonly layer: number; readonly index: number }>;
  /** Only ablate these units (default: every unit of `units` and `layers`); others get 0. */
  readonly candidates?: ReadonlyArray<{ readonly kind: "ffn" | "head"; readonly layer: number; readonly index: number }>;
  /** Also score the end-of-sequence token after each answer (default true: it decides where greedy output stops). */
  readonly scoreEos?: boolean;
  /** Where the scratch copy goes (default /dev/shm when present, else the OS temp dir). */
  readonly scratchDir?: string;
  readonly hashModel?: boolean;
  readonly source?: Readonly<Record<string, string>>;
  readonly workerPath?: string;
  readonly onProgress?: (p: { done: number; total: number; unit: string }) => void;
  /** Stop between units (ABLATE_ABORTED); the scratch copy is removed as on any failure. */
  readonly signal?: AbortSignal;
}

export interface AblationStats {
  readonly units: number;
  /** Mean NLL per scored token of the plain model, per task. */
  readonly baseLoss: Record<string, number>;
  readonly scoredTokens: Record<string, number>;
  readonly examples: Record<string, number>;
  readonly seconds: number;
}

interface Unit {
  readonly kind: "ffn" | "head";
  readonly layer: number;
  readonly index: number;
  readonly rows: readonly SealedRow[];
}

function unitsOf(header: ReturnType<typeof readGgufHeader>, hp: LlamaHyperparams, which: AblationUnits, layers: readonly number[]): Unit[] {
  const out: Unit[] = [];
  const none = new Map<number, number[]>();
  for (const layer of layers) {
    if (which !== "heads") {
      for (let i = 0; i < hp.feedForwardLength; i++) {
        out.push({ kind: "ffn", layer, index: i, rows: nodeRows(header, hp, { id: `ffn.${layer}.${i}`, neurons: new Map([[layer, [i]]]), heads: none }) });
      }
    }
    if (which !== "ffn") {
      for (let g = 0; g < hp.headCountKv; g++) {
        out.push({ kind: "head", layer, index: g, rows: nodeRows(header, hp, { id: `head.${layer}.${g}`, neurons: none, heads: new Map([[layer, [g]]]) }) });
      }
    }
  }
  return out;
}

/** Zero a unit's rows in the file; returns the bytes to put back. */
/** Zero `rows` of an open model file in place; returns their previous bytes (for restoreRows). */
export function zeroRows(fd: number, rows: readonly SealedRow[]): Buffer[] {
  const saved: Buffer[] = [];
  for (const r of rows) {
    const b = Buffer.allocUnsafe(r.length);
    if (readSync(fd, b, 0, r.length, r.offset) !== r.length) throw new EngineError("ABLATE_IO", `short read at byte ${r.offset} of the scratch copy`);
    saved.push(b);
  }
  const zeros = Buffer.alloc(Math.max(0, ...rows.map((r) => r.length)));
  for (const r of rows) writeSync(fd, zeros, 0, r.length, r.offset);
  return saved;
}

function restoreRows(fd: number, rows: readonly SealedRow[], saved: readonly Buffer[]): void {
  rows.forEach((r, k) => writeSync(fd, saved[k]!, 0, r.length, r.offset));
}

/** Ablation profile of a model on calibration tasks (see the module comment). */
export async function ablateModel(opts: AblateOptions): Promise<{ profile: Profile; stats: AblationStats }> {
  const names = Object.keys(opts.tasks);
  if (names.length === 0) throw new ProfileError("PROFILE_NO_TASKS", "no tasks to ablate on");
  for (const n of names) {
    if (!isValidTaskName(n)) throw new ProfileError("PROFILE_BAD_TASK", `task name '${n}' must be 1-64 of a-z, 0-9, _ and -, starting with a letter`, { task: n });
    if (opts.tasks[n]!.length === 0) throw new ProfileError("PROFILE_EMPTY_TASK", `task '${n}' has no calibration examples`, { task: n });
  }
  const t0 = performance.now();
  const abs = resolve(opts.modelPath);
  const hp = validateModelFile(abs);
  const header = readGgufHeader(abs);
  const layers = opts.layers ?? Array.from({ length: hp.blockCount }, (_, l) => l);
  for (const l of layers) if (!Number.isInteger(l) || l < 0 || l >= hp.blockCount) throw new ProfileError("PROFILE_BAD_LAYER", `layer ${l} is not in 0..${hp.blockCount - 1}`);
  const which = opts.units ?? "all";
  if (which !== "ffn" && (hp.headCountKv <= 0 || hp.headCount % hp.headCountKv !== 0)) {
    throw new ProfileError("PROFILE_BAD_HEADS", `n_head ${hp.headCount} is not a multiple of n_head_kv ${hp.headCountKv}: head groups cannot be ablated`);
  }
  const key = (u: { kind: string; layer: number; index: number }) => `${u.kind}.${u.layer}.${u.index}`;
  const all = unitsOf(header, hp, which, layers);
  const byKey = new Map(all.map((u) => [key(u), u]));
  for (const u of [...(opts.zeroed ?? []), ...(opts.candidates ?? [])]) {
    if (!byKey.has(key(u))) throw new ProfileError("PROFILE_BAD_UNIT", `unit ${key(u)} is not among the ${which} units of layers ${layers.join(", ")}`);
  }
  const zeroedKeys = new Set((opts.zeroed ?? []).map(key));
  const wanted = opts.candidates ? new Set(opts.candidates.map(key)) : undefined;
  const units = all.filter((u) => !zeroedKeys.has(key(u)) && (!wanted || wanted.has(key(u))));
  const fixedRows = all.filter((u) => zeroedKeys.has(key(u))).flatMap((u) => u.rows);
  const hashing = opts.hashModel === false ? undefined : sha256File(abs);
  hashing?.catch(() => {});

  const base = opts.scratchDir ?? (existsSync("/dev/shm") ? "/dev/shm" : tmpdir());
  const dir = makeScratchDir(base, "secneuron-ablate-");
  const copy = join(dir, "model.gguf");
  let fd: number | undefined;
  let proc: ProfileProcess | undefined;
  try {
    copyFileSync(abs, copy);
    chmodSync(copy, 0o600);
    fd = openSync(copy, "r+");
    proc = await ProfileProcess.start({ workerPath: opts.workerPath });
    await proc.loadModel(copy, { unsafeSkipValidation: false, mapped: true });
    // The fixed selection stays zeroed in the scratch copy (which is deleted at the end).
    if (fixedRows.length) zeroRows(fd, fixedRows);
    const prep = await proc.prepareScoring(opts.tasks, { threads: opts.threads ?? 1, contextSize: opts.contextSize ?? 512, scoreEos: opts.scoreEos ?? true });
    prep.items.forEach((n, t) => {
      if (n === 0) throw new ProfileError("PROFILE_EMPTY_TASK", `task '${names[t]}': no example fits the context and has answer tokens`, { task: names[t] });
    });
    const plain = await proc.score();

    // The child must read the very pages we write: zero every FFN neuron of every layer at once
    // and expect the losses to move (a model read into private memory would not notice).
    const everyLayer = Array.from({ length: hp.blockCount }, (_, l) => l);
    const fixedAt = new Set(fixedRows.map((r) => r.offset));
    const allRows = unitsOf(header, hp, "ffn", everyLayer).flatMap((u) => u.rows).filter((r) => !fixedAt.has(r.offset));
    const savedAll = zeroRows(fd, allRows);
    let moved: number[];
    try {
      moved = await proc.score();
    } finally {
      restoreRows(fd, allRows, savedAll);
    }
    if (moved.every((x, t) => Math.abs(x - plain[t]!) < 1e-6)) {
      throw new EngineError("ABLATE_NOT_MAPPED", "zeroing every unit did not change llama.cpp's losses: the weights are not read from the mapped file");
    }
    const again = await proc.score();
    if (again.some((x, t) => Math.abs(x - plain[t]!) > 1e-6 * Math.max(1, Math.abs(plain[t]!)))) {
      throw new EngineError("ABLATE_NOT_RESTORED", "losses differ after restoring the weights");
    }

    const ffn = names.map(() => layers.map(() => new Array<number>(hp.feedForwardLength).fill(0)));
    const heads = names.map(() => layers.map(() => new Array<number>(hp.headCountKv).fill(0)));
    for (let u = 0; u < units.length; u++) {
      if (opts.signal?.aborted) throw new EngineError("ABLATE_ABORTED", `ablation stopped after ${u} of ${units.length} units`);
      const unit = units[u]!;
      const saved = zeroRows(fd, unit.rows);
      let loss: number[];
      try {
        loss = await proc.score();
      } finally {
        restoreRows(fd, unit.rows, saved);
      }
      const li = layers.indexOf(unit.layer);
      names.forEach((_, t) => {
        const d = loss[t]! - plain[t]!;
        const v = Number.isFinite(d) && d > 0 ? round7(d) : 0;
        (unit.kind === "ffn" ? ffn : heads)[t]![li]![unit.index] = v;
      });
      opts.onProgress?.({ done: u + 1, total: units.length, unit: `${unit.kind} ${unit.layer}.${unit.index}` });
    }

    const withHeads = which !== "ffn";
    const tasks: Profile["tasks"] = Object.fromEntries(
      names.map((n, t) => [
        n,
        {
          tokens: prep.tokens[t]!,
          layers: layers.map((layer, li): LayerStats => ({ layer, importance: ffn[t]![li]!, ...(withHeads ? { heads: heads[t]![li]! } : {}) })),
        },
      ]),
    );
    const sha256 = hashing ? await hashing : undefined;
    const profile: Profile = {
      format: PROFILE_FORMAT,
      version: PROFILE_VERSION,
      model: { ...(sha256 ? { sha256 } : {}), architecture: hp.architecture, blockCount: hp.blockCount, feedForwardLength: hp.feedForwardLength, ...(withHeads ? { headGroups: hp.headCountKv } : {}) },
      source: {
        tool: "secneuron profile --ablate (llama.cpp, sealable rows zeroed in the memory-mapped model)",
        statistic: "ablation: increase of mean answer NLL per token when the unit is zeroed",
        units: which,
        ...opts.source,
      },
      tasks,
    };
    const per = (xs: number[]) => Object.fromEntries(names.map((n, t) => [n, xs[t]!]));
    return {
      profile,
      stats: { units: units.length, baseLoss: per(plain), scoredTokens: per(prep.tokens), examples: per(prep.items), seconds: (performance.now() - t0) / 1000 },
    };
  } finally {
    if (fd !== undefined) closeSync(fd);
    await proc?.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}
