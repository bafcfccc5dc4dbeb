/**
 * Messages between the engine parent (engine-process.ts) and the llama.cpp child (worker.ts),
 * sent over Node's IPC channel as JSON. Every request carries an id; the child answers each
 * request exactly once, in order.
 */

export interface LoadRequest {
  readonly op: "load";
  readonly id: number;
  readonly modelPath: string;
  readonly contextSize: number;
  readonly threads: number;
  readonly useMmap: boolean;
}

export interface CompleteRequest {
  readonly op: "complete";
  readonly id: number;
  readonly prompts: readonly string[];
  readonly maxTokens: number;
}

export interface TokenizeRequest {
  readonly op: "tokenize";
  readonly id: number;
  readonly text: string;
}

export interface UnloadRequest {
  readonly op: "unload";
  readonly id: number;
}

export interface ExitRequest {
  readonly op: "exit";
  readonly id: number;
}

export type EngineRequest = LoadRequest | CompleteRequest | TokenizeRequest | UnloadRequest | ExitRequest;

export interface LoadedModelInfo {
  /** Milliseconds llama.cpp took to load the model and create the context. */
  readonly loadMs: number;
  readonly trainContextSize: number;
  readonly contextSize: number;
  readonly vocabularyType: string;
  /** Model size in bytes as llama.cpp reports it. */
  readonly size: number;
}

export interface EngineResponseOk {
  readonly type: "response";
  readonly id: number;
  readonly ok: true;
  readonly result: unknown;
}

export interface EngineResponseError {
  readonly type: "response";
  readonly id: number;
  readonly ok: false;
  readonly error: { readonly name: string; readonly message: string };
}

export interface EngineReady {
  readonly type: "ready";
  readonly startMs: number;
}

export type EngineMessage = EngineResponseOk | EngineResponseError | EngineReady;
