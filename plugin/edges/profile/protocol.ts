/**
 * Messages between the profiler parent (profile-process.ts) and its llama.cpp child
 * (profile-worker.ts), over Node's IPC channel with "advanced" serialization (structured clone:
 * Float64Arrays travel as such). Every request carries an id and gets exactly one response.
 */

export interface ProfileLoadRequest {
  readonly op: "load";
  readonly id: number;
  readonly modelPath: string;
  /**
   * Read weights straight from the memory-mapped file, never from a copy (no repacked CPU
   * buffers): writes to the file then reach the model at once (ablation).
   */
  readonly mapped?: boolean;
}

export interface ProfileRunTask {
  readonly name: string;
  /** One sample per entry: each is tokenized and evaluated from an empty context. */
  readonly lines: readonly string[];
}

export interface ProfileRunRequest {
  readonly op: "run";
  readonly id: number;
  readonly tasks: readonly ProfileRunTask[];
  /** Stop a task after this many profiled tokens (0 = no limit). */
  readonly maxTokens: number;
  readonly threads: number;
  readonly contextSize: number;
  readonly batchSize: number;
  /** Count the BOS token llama.cpp adds at the start of each sample (default false). */
  readonly includeBos: boolean;
  /** Let the tokenizer add BOS/EOS as the model asks (default true). */
  readonly addSpecial: boolean;
  /** Capture ffn_down inputs (false: plain evaluation, for throughput baselines). */
  readonly collect: boolean;
  /** Which tokens are outputs: every token (needed to profile the last layer) or the last of each batch. */
  readonly outputs: "all" | "last";
  /** KV cache type: "f16" (llama.cpp's default) or "f32" (exact, for reference checks). */
  readonly kvType: "f32" | "f16";
}

/** One scored example: the answer's tokens (and EOS) are scored given the prompt. */
export interface ScoreItem {
  readonly prompt: string;
  readonly answer: string;
}

/** Tokenize scoring sets once and keep a context for repeated `score` calls. */
export interface ProfileScorePrepareRequest {
  readonly op: "score-prepare";
  readonly id: number;
  readonly tasks: ReadonlyArray<{ readonly name: string; readonly items: readonly ScoreItem[] }>;
  readonly threads: number;
  readonly contextSize: number;
  /** Score the end-of-sequence token after each answer too (it decides where greedy output stops). */
  readonly scoreEos: boolean;
}

export interface ProfileScorePrepareResult {
  /** Scored tokens per task. */
  readonly tokens: number[];
  /** Examples per task (after dropping empty or over-long ones). */
  readonly items: number[];
}

/** Mean negative log-likelihood per scored token, per prepared task, on the weights as they are now. */
export interface ProfileScoreRequest {
  readonly op: "score";
  readonly id: number;
}

export interface ProfileExitRequest {
  readonly op: "exit";
  readonly id: number;
}

export type ProfileRequest = ProfileLoadRequest | ProfileRunRequest | ProfileScorePrepareRequest | ProfileScoreRequest | ProfileExitRequest;

export interface ProfileLoadResult {
  readonly loadMs: number;
  readonly nLayer: number;
  readonly nEmbd: number;
  readonly nVocab: number;
  readonly trainContextSize: number;
}

export interface TaskActivationSums {
  readonly name: string;
  /** Tokens whose activations were accumulated. */
  readonly tokens: number;
  /** Tokens evaluated (including BOS tokens not counted in `tokens`). */
  readonly evaluated: number;
  readonly samples: number;
  /** Per layer: sum over tokens of |a| and of a^2 for each FFN neuron (empty when collect=false). */
  readonly sumAbs: Float64Array[];
  readonly sumSq: Float64Array[];
  /** Per layer: sum over tokens of |a| for each attention output feature (input of attn_output). */
  readonly attnSumAbs: Float64Array[];
}

export interface ProfileRunResult {
  readonly tasks: TaskActivationSums[];
  /** FFN width seen in the graph (0 when collect=false). */
  readonly nFf: number;
  /** Attention output width seen in the graph, n_head * head_dim (0 when collect=false). */
  readonly nAttn: number;
  /** Milliseconds spent inside llama_decode (callbacks included). */
  readonly decodeMs: number;
  /** Milliseconds spent in the eval callback's data phase (reading activations). */
  readonly callbackMs: number;
  readonly decodeCalls: number;
  readonly tokensEvaluated: number;
  readonly contextSize: number;
  readonly batchSize: number;
}

export interface ProfileResponseOk {
  readonly type: "response";
  readonly id: number;
  readonly ok: true;
  readonly result: unknown;
}

export interface ProfileResponseError {
  readonly type: "response";
  readonly id: number;
  readonly ok: false;
  readonly error: { readonly name: string; readonly message: string; readonly code?: string };
}

export interface ProfileProgressMessage {
  readonly type: "progress";
  readonly id: number;
  readonly task: string;
  /** Tokens evaluated so far in this run (all tasks). */
  readonly done: number;
  /** Tokens this run will evaluate (all tasks, after maxTokens). */
  readonly total: number;
}

export interface ProfileReady {
  readonly type: "ready";
  readonly startMs: number;
}

export type ProfileMessage = ProfileResponseOk | ProfileResponseError | ProfileProgressMessage | ProfileReady;
