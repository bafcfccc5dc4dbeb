/**
 * Messages between the embedded host (embedded-host.ts, the parent) and its child
 * (worker.ts), sent over Node's IPC channel as JSON. Every request carries an id; the child
 * answers each request exactly once. The HTTP API itself never goes through IPC: the child
 * serves it on its own loopback port.
 */

/** What the parent learnt from the GGUF header; the child reports it in /api/tags, /api/show. */
export interface ModelFileInfo {
  /** Bytes on disk. */
  readonly size: number;
  /** File modification time (ISO 8601). */
  readonly modifiedAt: string;
  /** 64 hex digits identifying this registration (sha256 of name, path, size, mtime). */
  readonly digest: string;
  /** general.architecture, e.g. "llama". */
  readonly family: string;
  /** Human parameter count, e.g. "630.34K", "8.0B". */
  readonly parameterSize: string;
  /** Total number of weights. */
  readonly parameterCount: number;
  /** Dominant tensor type by bytes, e.g. "Q8_0", "F16". */
  readonly quantizationLevel: string;
  /** Training context length. */
  readonly contextLength: number;
  readonly embeddingLength: number;
  readonly blockCount: number;
  readonly headCount: number;
  readonly headCountKv: number;
  readonly feedForwardLength: number;
  readonly vocabSize: number;
  /** tokenizer.chat_template, when the file has one. */
  readonly chatTemplate?: string;
}

export interface WorkerConfig {
  /** llama.cpp threads for every context. */
  readonly threads: number;
  /** Context size in tokens (capped at each model's training context). */
  readonly contextSize: number;
  /** "auto": the model's template when it has one, else raw; "raw": always raw. */
  readonly chatWrapper: "auto" | "raw";
  /** Lines of llama.cpp log kept in the child's ring buffer. */
  readonly logLines: number;
  /** Reported by GET /api/version. */
  readonly version: string;
}

export interface RegisterRequest {
  readonly op: "register";
  readonly id: number;
  readonly name: string;
  readonly path: string;
  readonly info: ModelFileInfo;
}

export interface UnregisterRequest {
  readonly op: "unregister";
  readonly id: number;
  readonly name: string;
}

export interface PingRequest {
  readonly op: "ping";
  readonly id: number;
}

export interface LogsRequest {
  readonly op: "logs";
  readonly id: number;
}

export interface ExitRequest {
  readonly op: "exit";
  readonly id: number;
}

export type HostRequest = RegisterRequest | UnregisterRequest | PingRequest | LogsRequest | ExitRequest;

export interface PingResult {
  /** Names whose model is loaded. */
  readonly loaded: string[];
  readonly registered: string[];
}

export interface HostResponseOk {
  readonly type: "response";
  readonly id: number;
  readonly ok: true;
  readonly result: unknown;
}

export interface HostResponseError {
  readonly type: "response";
  readonly id: number;
  readonly ok: false;
  readonly error: { readonly name: string; readonly message: string };
}

export interface HostReady {
  readonly type: "ready";
  /** Loopback port of the child's HTTP server. */
  readonly port: number;
  readonly startMs: number;
}

export type HostMessage = HostResponseOk | HostResponseError | HostReady;
