/**
 * Activation profiling in a child process. llama.cpp aborts its whole process on some malformed
 * models, so it runs in a forked worker (profile-worker.ts, compiled JavaScript) that binds
 * libllama through koffi; any exit of the child (abort, kill, crash) becomes an EngineError with
 * the exit code or signal and the tail of its stderr. Every model is validated
 * (validateModelFile) before the child sees it.
 *
 * profileModel() turns per-task corpora into a `secneuron-profile` v1 document: for each task,
 * layer and FFN neuron, importance = mean |a| and meanSquare = mean a^2 over the task's tokens,
 * where a = silu(gate·x) * (up·x) is the input of ffn_down (docs/profiling.md).
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { resolve } from "node:path";
import { EngineError, SecNeuronError } from "../../errors.js";
import type { LlamaHyperparams } from "../../core/gguf/llama-check.js";
import { PROFILE_FORMAT, PROFILE_VERSION, isValidTaskName, ProfileError, type LayerStats, type Profile, type TaskProfile } from "../../core/profile/profile.js";
import { ChildRpc, childRpcText, resolveCompiledWorker, type ChildRpcText } from "../child-rpc.js";
import { validateModelFile } from "../engine/engine-process.js";
import type {
  ProfileLoadResult,
  ProfileProgressMessage,
  ProfileRequest,
  ProfileRunRequest,
  ProfileRunResult,
  ProfileScorePrepareRequest,
  ProfileScorePrepareResult,
  ScoreItem,
  TaskActivationSums,
} from "./protocol.js";

export type { ProfileLoadResult, ProfileRunResult, ProfileScorePrepareResult, ScoreItem, TaskActivationSums } from "./protocol.js";

const LLAMA_TAG = "v0.4.0";

/**
 * Path of the compiled profiler worker. From dist/ it is the sibling profile-worker.js; from the
 * .ts source (vitest) `<root>/plugin/edges/profile/x.ts` maps to
 * `<root>/dist/plugin/edges/profile/profile-worker.js` (run `npm run build` first).
 */
export function resolveProfileWorkerPath(moduleUrl: string = import.meta.url): string {
  return resolveCompiledWorker(moduleUrl, "profile-worker.js");
}

export interface ProfileProgress {
  readonly task: string;
  /** Tokens evaluated so far (all tasks). */
  readonly done: number;
  /** Tokens to evaluate (all tasks, after maxTokens). */
  readonly total: number;
}

export interface ProfileProcessOptions {
  /** Milliseconds to wait for the child to bind libllama (default 60 000). */
  readonly startTimeoutMs?: number;
  readonly workerPath?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Copy the child's stderr (llama.cpp warnings) to ours as it comes. */
  readonly forwardStderr?: boolean;
}

export interface RunOptions {
  /** Per-task cap on profiled tokens (default: every token of the corpus). */
  readonly maxTokens?: number;
  /** llama.cpp threads (default 1). */
  readonly threads?: number;
  /** Context window per sample; longer samples are cut into windows (default 512). */
  readonly contextSize?: number;
  /** Tokens per llama_decode call, also the ubatch size (default min(512, contextSize)). */
  readonly batchSize?: number;
  /** Count the BOS token of each sample (default false: it is evaluated, not counted). */
  readonly includeBos?: boolean;
  /** Let the tokenizer add BOS/EOS as the model asks (default true). */
  readonly addSpecial?: boolean;
  /** Capture activations (default true); false runs the same decodes without the callback. */
  readonly collect?: boolean;
  /** "all" (default, needed to profile the last layer) or "last" output per batch (plain prompt evaluation). */
  readonly outputs?: "all" | "last";
  /** KV cache type (default "f16", llama.cpp's default: activations as deployed; "f32" is exact). */
  readonly kvType?: "f32" | "f16";
  readonly timeoutMs?: number;
  readonly onProgress?: (p: ProfileProgress) => void;
}

type RequestBody = ProfileRequest extends infer R ? (R extends ProfileRequest ? Omit<R, "id"> : never) : never;

const PROFILE_TEXT: ChildRpcText = {
  ...childRpcText("profile child", "llama.cpp profile"),
  startCrashed: (how, output) => `profile child ended during start-up (${how}): ${lastLine(output)}`,
};

/** One profiler child: load a model, run task corpora through it, dispose. */
export class ProfileProcess {
  private hyper: LlamaHyperparams | undefined;

  private constructor(private readonly rpc: ChildRpc<RequestBody>) {}

  static async start(opts: ProfileProcessOptions = {}): Promise<ProfileProcess> {
    const rpc = await ChildRpc.start<RequestBody>({
      workerPath: opts.workerPath ?? resolveProfileWorkerPath(),
      worker: "profile worker",
      serialization: "advanced",
      env: { ...process.env, ...opts.env },
      startTimeoutMs: opts.startTimeoutMs ?? 60_000,
      forwardStderr: opts.forwardStderr ?? false,
      text: PROFILE_TEXT,
    });
    return new ProfileProcess(rpc);
  }

  get alive(): boolean {
    return this.rpc.alive;
  }

  get stderr(): string {
    return this.rpc.output;
  }

  /** Hyperparameters of the loaded model (validated file), if any. */
  get hyperparams(): LlamaHyperparams | undefined {
    return this.hyper;
  }

  private request<T>(req: RequestBody, timeoutMs: number, onProgress?: (p: ProfileProgress) => void): Promise<T> {
    const onEvent = onProgress && ((raw: unknown): void => {
      const m = raw as ProfileProgressMessage;
      onProgress({ task: m.task, done: m.done, total: m.total });
    });
    return this.rpc.request<T>(req, timeoutMs, onEvent);
  }

  /**
   * Load a model. The file is validated first (GgufFormatError when it would not load) unless
   * unsafeSkipValidation (crash tests only: llama.cpp may abort the child).
   */
  async loadModel(modelPath: string, opts: { timeoutMs?: number; unsafeSkipValidation?: boolean; mapped?: boolean } = {}): Promise<ProfileLoadResult> {
    const abs = resolve(modelPath);
    if (!opts.unsafeSkipValidation) this.hyper = validateOrThrow(abs);
    this.rpc.modelPath = abs;
    return this.request<ProfileLoadResult>({ op: "load", modelPath: abs, ...(opts.mapped ? { mapped: true } : {}) }, opts.timeoutMs ?? 120_000);
  }

  /** Tokenize scoring sets (per task: prompt -> answer examples) and keep a context for score(). */
  prepareScoring(
    tasks: Readonly<Record<string, readonly ScoreItem[]>>,
    opts: { threads?: number; contextSize?: number; scoreEos?: boolean; timeoutMs?: number } = {},
  ): Promise<ProfileScorePrepareResult> {
    const threads = opts.threads ?? 1;
    const contextSize = opts.contextSize ?? 512;
    for (const [k, v] of Object.entries({ threads, contextSize })) {
      if (!Number.isInteger(v) || v < 1) return Promise.reject(new EngineError("ENGINE_BAD_OPTION", `${k} must be a positive integer, got ${v}`));
    }
    const req: Omit<ProfileScorePrepareRequest, "id"> = {
      op: "score-prepare",
      tasks: Object.entries(tasks).map(([name, items]) => ({ name, items: items.map((x) => ({ prompt: x.prompt, answer: x.answer })) })),
      threads,
      contextSize,
      scoreEos: opts.scoreEos ?? true,
    };
    return this.request<ProfileScorePrepareResult>(req, opts.timeoutMs ?? 120_000);
  }

  /** Mean NLL per scored token for each prepared task (in prepareScoring's order), on the weights as they are now. */
  score(timeoutMs = 10 * 60_000): Promise<number[]> {
    return this.request<number[]>({ op: "score" }, timeoutMs);
  }

  /** Evaluate every task's samples; with collect (default) accumulate ffn_down inputs. */
  run(tasks: Readonly<Record<string, readonly string[]>>, opts: RunOptions = {}): Promise<ProfileRunResult> {
    const threads = opts.threads ?? 1;
    const contextSize = opts.contextSize ?? 512;
    const batchSize = opts.batchSize ?? Math.min(512, contextSize);
    const maxTokens = opts.maxTokens ?? 0;
    for (const [k, v] of Object.entries({ threads, contextSize, batchSize })) {
      if (!Number.isInteger(v) || v < 1) return Promise.reject(new EngineError("ENGINE_BAD_OPTION", `${k} must be a positive integer, got ${v}`));
    }
    if (!Number.isInteger(maxTokens) || maxTokens < 0) return Promise.reject(new EngineError("ENGINE_BAD_OPTION", `maxTokens must be a positive integer, got ${maxTokens}`));
    const req: Omit<ProfileRunRequest, "id"> = {
      op: "run",
      tasks: Object.entries(tasks).map(([name, lines]) => ({ name, lines: [...lines] })),
      maxTokens,
      threads,
      contextSize,
      batchSize,
      includeBos: opts.includeBos ?? false,
      addSpecial: opts.addSpecial ?? true,
      collect: opts.collect ?? true,
      outputs: opts.outputs ?? "all",
      kvType: opts.kvType ?? "f16",
    };
    return this.request<ProfileRunResult>(req, opts.timeoutMs ?? 30 * 60_000, opts.onProgress);
  }

  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    this.rpc.kill(signal);
  }

  async waitForExit(): Promise<void> {
    await this.rpc.waitForExit();
  }

  /** Ask the child to exit; kill it after graceMs. Never throws. */
  dispose(graceMs = 5_000): Promise<void> {
    return this.rpc.dispose(graceMs);
  }
}

function lastLine(s: string): string {
  const lines = s.trim().split("\n");
  return lines[lines.length - 1] ?? "";
}

function validateOrThrow(abs: string): LlamaHyperparams {
  try {
    return validateModelFile(abs);
  } catch (e) {
    if (e instanceof SecNeuronError) throw e;
    throw new EngineError("ENGINE_MODEL_UNREADABLE", `cannot read model ${abs}: ${(e as Error).message}`, { modelPath: abs });
  }
}

/** SHA-256 of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 4 << 20 })) h.update(chunk as Buffer);
  return h.digest("hex");
}

/** Round to float32-level precision (7 significant digits): activations are F32. */
/** Seven significant digits: what a profile keeps of a measured importance. */
export function round7(x: number): number {
  return x === 0 ? 0 : Number(x.toPrecision(7));
}

/**
 * Mean |a| and mean a^2 per layer from accumulated sums; with `headGroups` (n_head_kv) also the
 * per head group mean |a| of the attention output (over the group's features and the tokens).
 */
export function taskProfileFromSums(sums: TaskActivationSums, nLayer: number, nFf: number, headGroups?: number): TaskProfile {
  const layers: LayerStats[] = [];
  for (let l = 0; l < nLayer; l++) {
    const sa = sums.sumAbs[l];
    const sq = sums.sumSq[l];
    const importance = new Array<number>(nFf);
    const meanSquare = new Array<number>(nFf);
    for (let i = 0; i < nFf; i++) {
      importance[i] = sums.tokens > 0 && sa ? round7(sa[i]! / sums.tokens) : 0;
      meanSquare[i] = sums.tokens > 0 && sq ? round7(sq[i]! / sums.tokens) : 0;
    }
    const attn = headGroups ? sums.attnSumAbs?.[l] : undefined;
    if (attn && headGroups && attn.length > 0 && attn.length % headGroups === 0) {
      const per = attn.length / headGroups;
      const heads = new Array<number>(headGroups);
      for (let g = 0; g < headGroups; g++) {
        let s = 0;
        for (let i = g * per; i < (g + 1) * per; i++) s += attn[i]!;
        heads[g] = sums.tokens > 0 ? round7(s / (sums.tokens * per)) : 0;
      }
      layers.push({ layer: l, importance, meanSquare, heads });
    } else {
      layers.push({ layer: l, importance, meanSquare });
    }
  }
  return { tokens: sums.tokens, layers };
}

export interface ProfileModelOptions extends Omit<RunOptions, "collect" | "outputs"> {
  readonly modelPath: string;
  /** Task name -> samples (prompts, or lines of the task's corpus). */
  readonly tasks: Readonly<Record<string, readonly string[]>>;
  /** Record the model's SHA-256 in the profile (default true; reads the whole file). */
  readonly hashModel?: boolean;
  /** Extra provenance strings for the profile's `source`. */
  readonly source?: Readonly<Record<string, string>>;
  readonly workerPath?: string;
  readonly forwardStderr?: boolean;
  /** Skip validation (crash tests only). */
  readonly unsafeSkipValidation?: boolean;
}

export interface ProfileStats {
  readonly tokens: Record<string, number>;
  readonly tokensEvaluated: number;
  readonly decodeMs: number;
  readonly callbackMs: number;
  readonly tokensPerSecond: number;
  readonly loadMs: number;
  readonly contextSize: number;
  readonly batchSize: number;
}

/** Profile a model on task corpora; the profile and throughput figures. */
export async function profileModelWithStats(opts: ProfileModelOptions): Promise<{ profile: Profile; stats: ProfileStats }> {
  const names = Object.keys(opts.tasks);
  if (names.length === 0) throw new ProfileError("PROFILE_NO_TASKS", "no tasks to profile");
  for (const n of names) {
    if (!isValidTaskName(n)) throw new ProfileError("PROFILE_BAD_TASK", `task name '${n}' must be 1-64 of a-z, 0-9, _ and -, starting with a letter`, { task: n });
  }
  const abs = resolve(opts.modelPath);
  const hyper = opts.unsafeSkipValidation ? undefined : validateOrThrow(abs);
  const hashing = opts.hashModel === false ? undefined : sha256File(abs);
  hashing?.catch(() => {});
  const proc = await ProfileProcess.start({ workerPath: opts.workerPath, forwardStderr: opts.forwardStderr });
  try {
    const info = await proc.loadModel(abs, { unsafeSkipValidation: true, ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}) });
    const res = await proc.run(opts.tasks, opts);
    const nLayer = hyper?.blockCount ?? info.nLayer;
    const nFf = hyper?.feedForwardLength ?? res.nFf;
    if (res.nFf !== 0 && res.nFf !== nFf) throw new EngineError("PROFILE_GRAPH", `llama.cpp's FFN has ${res.nFf} neurons, the file says ${nFf}`);
    if (info.nLayer !== nLayer) throw new EngineError("PROFILE_GRAPH", `llama.cpp reports ${info.nLayer} layers, the file says ${nLayer}`);
    const tasks: Record<string, TaskProfile> = {};
    // Head groups need the validated hyperparameters (n_head_kv, head dim) and a captured attention output.
    const headGroups = hyper && res.nAttn > 0 ? hyper.headCountKv : undefined;
    if (hyper && res.nAttn > 0 && res.nAttn !== hyper.headCount * hyper.headDim) {
      throw new EngineError("PROFILE_GRAPH", `llama.cpp's attention output has ${res.nAttn} features, the file says ${hyper.headCount} heads of ${hyper.headDim}`);
    }
    for (const t of res.tasks) tasks[t.name] = taskProfileFromSums(t, nLayer, nFf, headGroups);
    const sha256 = hashing ? await hashing : undefined;
    const profile: Profile = {
      format: PROFILE_FORMAT,
      version: PROFILE_VERSION,
      model: { ...(sha256 ? { sha256 } : {}), architecture: hyper?.architecture ?? "llama", blockCount: nLayer, feedForwardLength: nFf, ...(headGroups ? { headGroups } : {}) },
      source: {
        tool: `secneuron profile (llama.cpp ${LLAMA_TAG} cb_eval, ffn_down and attn_output inputs)`,
        contextSize: String(res.contextSize),
        includeBos: String(opts.includeBos ?? false),
        ...(opts.maxTokens ? { maxTokens: String(opts.maxTokens) } : {}),
        ...opts.source,
      },
      tasks,
    };
    const tokens: Record<string, number> = {};
    for (const t of res.tasks) tokens[t.name] = t.tokens;
    return {
      profile,
      stats: {
        tokens,
        tokensEvaluated: res.tokensEvaluated,
        decodeMs: res.decodeMs,
        callbackMs: res.callbackMs,
        tokensPerSecond: res.decodeMs > 0 ? (res.tokensEvaluated * 1000) / res.decodeMs : 0,
        loadMs: info.loadMs,
        contextSize: res.contextSize,
        batchSize: res.batchSize,
      },
    };
  } finally {
    await proc.dispose();
  }
}

/** Profile a model on task corpora (see profileModelWithStats). */
export async function profileModel(opts: ProfileModelOptions): Promise<Profile> {
  return (await profileModelWithStats(opts)).profile;
}
