/**
 * The port between the proxy and whatever runs the model: an embedded llama.cpp child, an Ollama
 * server, or llama-server processes. The proxy decides which variant (a model file on tmpfs) a
 * request may use; the host adapter makes that file servable under a name and says where to send
 * the request.
 */

export type HostKind = "embedded" | "ollama" | "llama-server";

/** Where to proxy a request for one model. */
export interface HostTarget {
  /** Base URL of the server that serves the model, e.g. http://127.0.0.1:40123 (no trailing slash). */
  readonly baseUrl: string;
  /** The model name to put in the request body for this server. */
  readonly modelName: string;
  /** Extra headers the proxy adds (e.g. the host's own API key). */
  readonly headers?: Readonly<Record<string, string>>;
}

export interface HostAdapter {
  readonly kind: HostKind;
  /** Start the host (spawn processes, check the upstream). Idempotent. */
  start(): Promise<void>;
  /**
   * Make the GGUF at `path` servable as `name` (a variant name, unique per file) and return where
   * requests for it go. Called for every request: must be cheap when already registered.
   */
  ensureModel(name: string, path: string): Promise<HostTarget>;
  /** Forget `name` (its file is about to be deleted). */
  removeModel(name: string): Promise<void>;
  /** True when the host answers. */
  healthy(): Promise<boolean>;
  /**
   * Routes ("METHOD /path", the route table's canonical path) this host can answer, when it speaks
   * only part of the API (llama-server: the OpenAI routes); absent = every user route.
   */
  readonly forwardedRoutes?: readonly string[];
  /** Where admin-only routes go, for hosts with a model store of their own (Ollama); else absent. */
  adminTarget?(): HostTarget | undefined;
  /** Stop processes and release everything. */
  stop(): Promise<void>;
}
