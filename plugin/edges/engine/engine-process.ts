/**
 * llama.cpp (through node-llama-cpp) in a child process. llama.cpp aborts its whole process on
 * some malformed models (GGML_ASSERT), so it never runs inside a process we care about: the
 * parent talks to a forked worker over IPC, and any exit of the worker (abort, kill, crash) turns
 * into an EngineError carrying the exit code or signal and the tail of the child's stderr.
 *
 * Every model path is validated here (readGgufHeader + validateLlamaModel) before the child sees
 * it; only the fuzzer, which hunts llama.cpp crashes on purpose, passes unsafeSkipValidation.
 *
 * Decoding is greedy (temperature 0, no repeat penalty), each prompt from an empty context, with
 * an explicit thread count (default 1): the output is deterministic.
 */
import { resolve } from "node:path";
import { EngineError, SecNeuronError } from "../../errors.js";
import { validateLlamaModel, type LlamaHyperparams } from "../../core/gguf/llama-check.js";
import { ChildRpc, childRpcText, resolveCompiledWorker } from "../child-rpc.js";
import { readGgufHeader } from "../gguf-file.js";
import type { EngineRequest, LoadedModelInfo } from "./protocol.js";

export type { LoadedModelInfo } from "./protocol.js";

/**
 * Path of the compiled worker script. From dist/ it is the sibling worker.js; from the .ts
 * source (vitest) `<root>/plugin/edges/engine/x.ts` maps to `<root>/dist/plugin/edges/engine/worker.js`
 * (the child always runs compiled JavaScript: run `npm run build` first).
 */
export function resolveWorkerPath(moduleUrl: string = import.meta.url): string {
  return resolveCompiledWorker(moduleUrl, "worker.js");
}

export interface EngineStartOptions {
  /** Default threads for models loaded in this child (default 1). */
  readonly threads?: number;
  /** Milliseconds to wait for the child to load llama.cpp (default 60 000). */
  readonly startTimeoutMs?: number;
  /** Default per-request timeout in milliseconds (default 60 000). On timeout the child is killed. */
  readonly timeoutMs?: number;
  /** Override the worker script (tests). */
  readonly workerPath?: string;
  /** Extra environment for the child. */
  readonly env?: NodeJS.ProcessEnv;
  /** Copy the child's stderr to ours as it comes (default: only kept for error reports). */
  readonly forwardStderr?: boolean;
}

export interface LoadModelOptions {
  /** Context size in tokens (default 256, capped at the model's training context). */
  readonly contextSize?: number;
  /** Threads for this model (default: the engine's). */
  readonly threads?: number;
  /**
   * Memory-map the file (default true, as llama.cpp does). A CPU model then computes straight
   * from the mapping: rewriting rows of the file in place changes its output without a reload.
   */
  readonly useMmap?: boolean;
  readonly timeoutMs?: number;
  /**
   * Hand the file to llama.cpp without validating it. Only for crash-hunting (the fuzzer):
   * llama.cpp may abort the child, which then reports an EngineError.
   */
  readonly unsafeSkipValidation?: boolean;
}

export interface CompleteOptions {
  /** Tokens to generate per prompt. */
  readonly maxTokens: number;
  readonly timeoutMs?: number;
}

/** How the child ended. */
export interface EngineExit {
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A request as the caller builds it; request() adds the id. */
type RequestBody = EngineRequest extends infer R ? (R extends EngineRequest ? Omit<R, "id"> : never) : never;

/**
 * Validate a model file for llama.cpp: a GGUF that parses and a llama model llama.cpp can load.
 * Throws GgufFormatError (bad file) or EngineError (cannot read it).
 */
export function validateModelFile(modelPath: string): LlamaHyperparams {
  return validateLlamaModel(readGgufHeader(modelPath));
}

/** One llama.cpp child process: load models one after another, complete prompts, dispose. */
export class EngineProcess {
  private readonly threads: number;
  private readonly timeoutMs: number;

  private constructor(
    private readonly rpc: ChildRpc<RequestBody>,
    opts: EngineStartOptions,
  ) {
    this.threads = opts.threads ?? 1;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
  }

  /** Fork the worker and wait until llama.cpp is loaded in it. */
  static async start(opts: EngineStartOptions = {}): Promise<EngineProcess> {
    const threads = opts.threads ?? 1;
    if (!Number.isInteger(threads) || threads < 1) throw new EngineError("ENGINE_BAD_OPTION", `threads must be a positive integer, got ${threads}`);
    const rpc = await ChildRpc.start<RequestBody>({
      workerPath: opts.workerPath ?? resolveWorkerPath(),
      worker: "engine worker",
      serialization: "json",
      env: { ...process.env, NODE_LLAMA_CPP_SKIP_DOWNLOAD: "true", ...opts.env },
      startTimeoutMs: opts.startTimeoutMs ?? 60_000,
      forwardStderr: opts.forwardStderr ?? false,
      text: childRpcText("llama.cpp child", "llama.cpp"),
    });
    return new EngineProcess(rpc, opts);
  }

  /** Whether the child is still running. */
  get alive(): boolean {
    return this.rpc.alive;
  }

  /** How the child ended, once it has. */
  get exit(): EngineExit | undefined {
    return this.rpc.exit;
  }

  get pid(): number | undefined {
    return this.rpc.pid;
  }

  /** The last bytes the child wrote to stderr/stdout (llama.cpp's log). */
  get stderr(): string {
    return this.rpc.output;
  }

  /** The model currently loaded (or being loaded). */
  get loadedModel(): string | undefined {
    return this.rpc.modelPath;
  }

  private request<T>(req: RequestBody, timeoutMs: number): Promise<T> {
    return this.rpc.request<T>(req, timeoutMs);
  }

  /**
   * Load a model (replacing the current one). The file is validated first unless
   * unsafeSkipValidation; a file that fails validation never reaches llama.cpp.
   */
  async loadModel(modelPath: string, opts: LoadModelOptions = {}): Promise<LoadedModelInfo> {
    const abs = resolve(modelPath);
    if (!opts.unsafeSkipValidation) validateModelFileOrThrow(abs);
    const threads = opts.threads ?? this.threads;
    if (!Number.isInteger(threads) || threads < 1) throw new EngineError("ENGINE_BAD_OPTION", `threads must be a positive integer, got ${threads}`);
    this.rpc.modelPath = abs;
    return this.request<LoadedModelInfo>(
      { op: "load", modelPath: abs, contextSize: opts.contextSize ?? 256, threads, useMmap: opts.useMmap ?? true },
      opts.timeoutMs ?? this.timeoutMs,
    );
  }

  /** Greedy completions of each prompt, each from an empty context. */
  complete(prompts: readonly string[], opts: CompleteOptions): Promise<string[]> {
    if (!Number.isInteger(opts.maxTokens) || opts.maxTokens < 1) {
      return Promise.reject(new EngineError("ENGINE_BAD_OPTION", `maxTokens must be a positive integer, got ${opts.maxTokens}`));
    }
    return this.request<string[]>({ op: "complete", prompts: [...prompts], maxTokens: opts.maxTokens }, opts.timeoutMs ?? this.timeoutMs);
  }

  /** Token ids of a text under the loaded model's tokenizer (no BOS). */
  tokenize(text: string, timeoutMs?: number): Promise<number[]> {
    return this.request<number[]>({ op: "tokenize", text }, timeoutMs ?? this.timeoutMs);
  }

  async unloadModel(timeoutMs?: number): Promise<void> {
    await this.request({ op: "unload" }, timeoutMs ?? this.timeoutMs);
    this.rpc.modelPath = undefined;
  }

  /** Kill the child with a signal (tests; a stuck child). Pending requests fail with ENGINE_CRASHED. */
  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    this.rpc.kill(signal);
  }

  /** Wait until the child has exited. */
  waitForExit(): Promise<EngineExit> {
    return this.rpc.waitForExit();
  }

  /** Ask the child to exit; kill it if it does not within graceMs. Never throws. */
  dispose(graceMs = 5_000): Promise<void> {
    return this.rpc.dispose(graceMs);
  }
}

export interface CompleteInChildOptions extends LoadModelOptions {
  readonly modelPath: string;
  readonly prompts: readonly string[];
  readonly maxTokens: number;
  /** Overall time limit for start-up, load and all prompts (default 60 000 ms). */
  readonly timeoutMs?: number;
  readonly workerPath?: string;
}

/** One child: load the model once, answer every prompt greedily, exit. */
export async function completeInChild(opts: CompleteInChildOptions): Promise<string[]> {
  const abs = resolve(opts.modelPath);
  // Validate before spending a process on it.
  if (!opts.unsafeSkipValidation) validateModelFileOrThrow(abs);
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  const left = (): number => Math.max(1, deadline - Date.now());
  const engine = await EngineProcess.start({ threads: opts.threads, startTimeoutMs: left(), workerPath: opts.workerPath });
  try {
    await engine.loadModel(abs, { ...opts, timeoutMs: left(), unsafeSkipValidation: true });
    return await engine.complete(opts.prompts, { maxTokens: opts.maxTokens, timeoutMs: left() });
  } finally {
    await engine.dispose();
  }
}

function validateModelFileOrThrow(abs: string): void {
  try {
    validateModelFile(abs);
  } catch (e) {
    if (e instanceof SecNeuronError) throw e;
    throw new EngineError("ENGINE_MODEL_UNREADABLE", `cannot read model ${abs}: ${(e as Error).message}`, { modelPath: abs });
  }
}
