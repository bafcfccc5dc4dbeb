/**
 * The child's HTTP API (runs in worker.ts only): the Ollama routes and the OpenAI-compatible
 * routes Ollama serves, over the ModelRegistry. Response shapes follow Ollama's (NDJSON
 * streaming, `{"error": "..."}`) and OpenAI's (SSE `data:` frames ending `data: [DONE]`,
 * `{"error": {"message", "type", "param", "code"}}`). See docs/hosts-embedded.md.
 */
import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import {
  ApiError,
  type ChatMessage,
  type GenerationInput,
  type GenerationResult,
  type ModelEntry,
  type ModelRegistry,
  type SamplingParams,
} from "./models.js";
import type { WorkerConfig } from "./protocol.js";

const MAX_BODY_BYTES = 32 * 1024 * 1024;
/** Ollama's sampling defaults (temperature, top_k, top_p). */
const OLLAMA_DEFAULTS = { temperature: 0.8, topK: 40, topP: 0.9 } as const;
/** Ollama's defaults on its OpenAI-compatible routes. */
const OPENAI_DEFAULTS = { temperature: 1, topP: 1 } as const;
/** keep_alive is not honoured (models stay loaded until removed): ps reports this expiry. */
const FOREVER = "2318-08-14T12:00:00Z";

type Json = Record<string, unknown>;
type Flavour = "ollama" | "openai";

export interface ApiContext {
  readonly registry: ModelRegistry;
  readonly config: WorkerConfig;
}

// ---------------------------------------------------------------------------------------------
// Plumbing

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  const data = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", "Content-Length": Buffer.byteLength(data) });
  res.end(data);
}

function errorStatusType(status: number): string {
  if (status === 400) return "invalid_request_error";
  if (status === 404) return "not_found_error";
  return "api_error";
}

/** The error body of a flavour: Ollama `{error}`, OpenAI `{error: {message, type, param, code}}`. */
export function errorBody(flavour: Flavour, status: number, message: string): Json {
  if (flavour === "ollama") return { error: message };
  return { error: { message, type: errorStatusType(status), param: null, code: null } };
}

function sendError(res: ServerResponse, flavour: Flavour, err: unknown): void {
  const status = err instanceof ApiError ? err.status : 500;
  const message = err instanceof Error ? err.message : String(err);
  sendJson(res, status, errorBody(flavour, status, message));
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolveBody, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    req.on("data", (c: Buffer) => {
      n += c.length;
      if (n > MAX_BODY_BYTES) {
        reject(new ApiError(413, "request body too large"));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolveBody(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

async function readJson(req: IncomingMessage): Promise<Json> {
  const raw = await readBody(req);
  if (raw.length === 0) throw new ApiError(400, "missing request body");
  let v: unknown;
  try {
    v = JSON.parse(raw.toString("utf8"));
  } catch (e) {
    throw new ApiError(400, `invalid JSON body: ${(e as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new ApiError(400, "request body must be a JSON object");
  return v as Json;
}

/** A streamed response: NDJSON (Ollama) or SSE (OpenAI). Headers go out with the first line. */
class Stream {
  private started = false;
  constructor(
    private readonly res: ServerResponse,
    private readonly flavour: Flavour,
  ) {}

  private start(): void {
    if (this.started) return;
    this.started = true;
    this.res.writeHead(200, {
      "Content-Type": this.flavour === "ollama" ? "application/x-ndjson" : "text/event-stream",
      "Cache-Control": "no-cache",
      Connection: "keep-alive",
    });
  }

  write(obj: unknown): void {
    if (this.res.destroyed || this.res.writableEnded) return;
    this.start();
    this.res.write(this.flavour === "ollama" ? `${JSON.stringify(obj)}\n` : `data: ${JSON.stringify(obj)}\n\n`);
  }

  /** Fail: an error status before anything was sent, else an error line/frame in the stream. */
  fail(err: unknown): void {
    if (this.res.destroyed || this.res.writableEnded) return;
    if (!this.started) {
      sendError(this.res, this.flavour, err);
      return;
    }
    const status = err instanceof ApiError ? err.status : 500;
    this.write(errorBody(this.flavour, status, err instanceof Error ? err.message : String(err)));
    this.res.end();
  }

  end(): void {
    if (this.res.destroyed || this.res.writableEnded) return;
    this.start();
    if (this.flavour === "openai") this.res.write("data: [DONE]\n\n");
    this.res.end();
  }
}

/** Aborted when the client goes away before the response is complete. */
function clientSignal(req: IncomingMessage, res: ServerResponse): AbortSignal {
  const ac = new AbortController();
  res.on("close", () => {
    if (!res.writableFinished) ac.abort(new ApiError(499, "client closed the request"));
  });
  req.on("aborted", () => ac.abort(new ApiError(499, "client closed the request")));
  return ac.signal;
}

// ---------------------------------------------------------------------------------------------
// Field parsing

function str(body: Json, key: string): string | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw new ApiError(400, `${key} must be a string`);
  return v;
}

function num(body: Json, key: string, where = ""): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v)) throw new ApiError(400, `${where}${key} must be a number`);
  return v;
}

function int(body: Json, key: string, where = ""): number | undefined {
  const v = num(body, key, where);
  if (v !== undefined && !Number.isInteger(v)) throw new ApiError(400, `${where}${key} must be an integer`);
  return v;
}

function bool(body: Json, key: string, dflt: boolean): boolean {
  const v = body[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "boolean") throw new ApiError(400, `${key} must be a boolean`);
  return v;
}

function stops(v: unknown, where: string): string[] {
  if (v === undefined || v === null) return [];
  if (typeof v === "string") return [v];
  if (Array.isArray(v) && v.every((s) => typeof s === "string")) return v as string[];
  throw new ApiError(400, `${where} must be a string or an array of strings`);
}

function modelName(body: Json, legacy = false): string {
  const m = str(body, "model") ?? (legacy ? str(body, "name") : undefined);
  if (!m) throw new ApiError(400, "model is required");
  return m;
}

/** keep_alive 0 ("0", "0s", 0): unload after the request. Any other value keeps it loaded. */
function keepAliveZero(body: Json): boolean {
  const v = body.keep_alive;
  return v === 0 || v === "0" || v === "0s" || v === "0m";
}

function rejectUnsupported(body: Json, name: string): void {
  const format = body.format;
  if (format !== undefined && format !== null && format !== "") throw new ApiError(400, `format is not supported by the embedded host (model "${name}")`);
  const images = body.images;
  if (Array.isArray(images) && images.length > 0) throw new ApiError(400, `"${name}" does not support images`);
  const tools = body.tools;
  if (Array.isArray(tools) && tools.length > 0) throw new ApiError(400, `registry.ollama.ai/library/${name} does not support tools`);
  if (body.think === true || typeof body.think === "string") throw new ApiError(400, `"${name}" does not support thinking`);
}

function ollamaSampling(body: Json): SamplingParams {
  const o = body.options;
  if (o !== undefined && o !== null && (typeof o !== "object" || Array.isArray(o))) throw new ApiError(400, "options must be an object");
  const opts = (o ?? {}) as Json;
  const w = "options.";
  const numPredict = int(opts, "num_predict", w);
  return {
    maxTokens: numPredict === undefined || numPredict < 0 ? undefined : numPredict,
    temperature: num(opts, "temperature", w) ?? OLLAMA_DEFAULTS.temperature,
    topK: int(opts, "top_k", w) ?? OLLAMA_DEFAULTS.topK,
    topP: num(opts, "top_p", w) ?? OLLAMA_DEFAULTS.topP,
    minP: num(opts, "min_p", w),
    seed: int(opts, "seed", w),
    stop: stops(opts.stop, "options.stop"),
    repeatPenalty: num(opts, "repeat_penalty", w),
    repeatLastN: int(opts, "repeat_last_n", w),
    frequencyPenalty: num(opts, "frequency_penalty", w),
    presencePenalty: num(opts, "presence_penalty", w),
  };
}

function openaiSampling(body: Json): SamplingParams {
  const maxTokens = int(body, "max_completion_tokens") ?? int(body, "max_tokens");
  if (maxTokens !== undefined && maxTokens < 0) throw new ApiError(400, "max_tokens must be at least 0");
  return {
    maxTokens,
    temperature: num(body, "temperature") ?? OPENAI_DEFAULTS.temperature,
    topP: num(body, "top_p") ?? OPENAI_DEFAULTS.topP,
    seed: int(body, "seed"),
    stop: stops(body.stop, "stop"),
    frequencyPenalty: num(body, "frequency_penalty"),
    presencePenalty: num(body, "presence_penalty"),
  };
}

const ROLES = new Set(["system", "user", "assistant", "tool", "developer"]);

/** Messages of /api/chat (content a string) or /v1/chat/completions (a string or text parts). */
function messages(body: Json): ChatMessage[] {
  const v = body.messages;
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new ApiError(400, "messages must be an array");
  return v.map((m: unknown, i) => {
    if (typeof m !== "object" || m === null) throw new ApiError(400, `messages[${i}] must be an object`);
    const { role, content, images } = m as Json;
    if (typeof role !== "string" || !ROLES.has(role)) throw new ApiError(400, `messages[${i}]: invalid role ${JSON.stringify(role)}`);
    if (Array.isArray(images) && images.length > 0) throw new ApiError(400, "this model does not support images");
    let text: string;
    if (content === undefined || content === null) text = "";
    else if (typeof content === "string") text = content;
    else if (Array.isArray(content)) {
      text = content
        .map((p: unknown) => {
          const part = p as Json;
          if (part?.type !== "text" || typeof part.text !== "string") throw new ApiError(400, `messages[${i}]: only text content parts are supported`);
          return part.text;
        })
        .join("");
    } else throw new ApiError(400, `messages[${i}].content must be a string`);
    return { role: (role === "developer" ? "system" : role) as ChatMessage["role"], content: text };
  });
}

// ---------------------------------------------------------------------------------------------
// Shapes

function details(e: ModelEntry): Json {
  return {
    parent_model: "",
    format: "gguf",
    family: e.info.family,
    families: [e.info.family],
    parameter_size: e.info.parameterSize,
    quantization_level: e.info.quantizationLevel,
  };
}

function ollamaTimings(r: GenerationResult, context?: boolean): Json {
  return {
    done_reason: r.doneReason,
    ...(context ? { context: r.tokens } : {}),
    total_duration: r.totalNs,
    load_duration: r.loadNs,
    prompt_eval_count: r.promptTokens,
    prompt_eval_duration: r.promptNs,
    eval_count: r.evalTokens,
    eval_duration: r.evalNs,
  };
}

const now = (): string => new Date().toISOString();
const unix = (): number => Math.floor(Date.now() / 1000);
const newId = (prefix: string): string => `${prefix}-${randomBytes(12).toString("hex")}`;

function openaiModel(e: ModelEntry): Json {
  return { id: e.name, object: "model", created: Math.floor(Date.parse(e.info.modifiedAt) / 1000), owned_by: "library" };
}

function usage(r: GenerationResult): Json {
  return { prompt_tokens: r.promptTokens, completion_tokens: r.evalTokens, total_tokens: r.promptTokens + r.evalTokens };
}

// ---------------------------------------------------------------------------------------------
// Routes

async function ollamaGenerate(ctx: ApiContext, req: IncomingMessage, res: ServerResponse, chat: boolean): Promise<void> {
  const body = await readJson(req);
  const name = modelName(body);
  const entry = ctx.registry.get(name);
  rejectUnsupported(body, name);
  const streaming = bool(body, "stream", true);
  const params = ollamaSampling(body);
  const unloadAfter = keepAliveZero(body);
  const model = name;
  let input: GenerationInput | undefined;
  if (chat) {
    const msgs = messages(body);
    if (msgs.length > 0) input = { kind: "chat", messages: msgs };
  } else {
    const prompt = str(body, "prompt") ?? "";
    const system = str(body, "system");
    if (str(body, "suffix")) throw new ApiError(400, `registry.ollama.ai/library/${name} does not support insert`);
    if (prompt !== "") {
      input = bool(body, "raw", false)
        ? { kind: "raw", text: prompt }
        : { kind: "chat", messages: [...(system ? [{ role: "system" as const, content: system }] : []), { role: "user" as const, content: prompt }] };
    }
  }
  const message = (content: string): Json => (chat ? { message: { role: "assistant", content } } : { response: content });

  // No prompt / no messages: load (or, with keep_alive 0, unload) the model, as Ollama does.
  if (!input) {
    let reason = "load";
    if (unloadAfter) {
      await ctx.registry.unload(entry);
      reason = "unload";
    } else await ctx.registry.preload(entry);
    const line = { model, created_at: now(), ...message(""), done_reason: reason, done: true };
    if (streaming) {
      const s = new Stream(res, "ollama");
      s.write(line);
      s.end();
    } else sendJson(res, 200, line);
    return;
  }

  const signal = clientSignal(req, res);
  const stream = streaming ? new Stream(res, "ollama") : undefined;
  try {
    const r = await ctx.registry.generate(entry, input, params, (chunk) => stream?.write({ model, created_at: now(), ...message(chunk), done: false }), signal);
    const last = { model, created_at: now(), ...message(stream ? "" : r.text), done: true, ...ollamaTimings(r, !chat) };
    if (stream) {
      stream.write(last);
      stream.end();
    } else sendJson(res, 200, last);
  } catch (e) {
    if (stream) stream.fail(e);
    else throw e;
  } finally {
    if (unloadAfter) ctx.registry.unload(entry).catch(() => {});
  }
}

async function openaiGenerate(ctx: ApiContext, req: IncomingMessage, res: ServerResponse, chat: boolean): Promise<void> {
  const body = await readJson(req);
  const name = modelName(body);
  const entry = ctx.registry.get(name);
  rejectUnsupported({ ...body, format: undefined }, name);
  const rf = body.response_format as Json | undefined;
  if (rf && rf.type !== "text") throw new ApiError(400, `response_format ${JSON.stringify(rf.type)} is not supported by the embedded host`);
  const streaming = bool(body, "stream", false);
  const so = body.stream_options as Json | undefined;
  const includeUsage = so?.include_usage === true;
  const params = openaiSampling(body);
  let input: GenerationInput;
  if (chat) {
    const msgs = messages(body);
    if (msgs.length === 0) throw new ApiError(400, "[] is too short - 'messages'");
    input = { kind: "chat", messages: msgs };
  } else {
    const p = body.prompt;
    let prompt: string;
    if (typeof p === "string") prompt = p;
    else if (Array.isArray(p) && p.length === 1 && typeof p[0] === "string") prompt = p[0];
    else throw new ApiError(400, "prompt must be a string (or an array of one string)");
    if (str(body, "suffix")) throw new ApiError(400, `registry.ollama.ai/library/${name} does not support insert`);
    input = { kind: "raw", text: prompt };
  }
  const id = newId(chat ? "chatcmpl" : "cmpl");
  const created = unix();
  const object = chat ? "chat.completion" : "text_completion";
  const head = { id, object: streaming && chat ? "chat.completion.chunk" : object, created, model: name, system_fingerprint: "fp_ollama" };
  const signal = clientSignal(req, res);
  const stream = streaming ? new Stream(res, "openai") : undefined;
  const chunk = (text: string, finish: string | null): Json =>
    chat
      ? { ...head, choices: [{ index: 0, delta: { role: "assistant", content: text }, finish_reason: finish }] }
      : { ...head, choices: [{ text, index: 0, finish_reason: finish, logprobs: null }] };
  try {
    const r = await ctx.registry.generate(entry, input, params, (t) => stream?.write(chunk(t, null)), signal);
    if (stream) {
      stream.write(chunk("", r.doneReason));
      if (includeUsage) stream.write({ ...head, choices: [], usage: usage(r) });
      stream.end();
      return;
    }
    const choice = chat
      ? { index: 0, message: { role: "assistant", content: r.text }, finish_reason: r.doneReason }
      : { text: r.text, index: 0, finish_reason: r.doneReason, logprobs: null };
    sendJson(res, 200, { ...head, choices: [choice], usage: usage(r) });
  } catch (e) {
    if (stream) stream.fail(e);
    else throw e;
  }
}

function embedInputs(v: unknown, key: string): string[] {
  if (typeof v === "string") return [v];
  if (Array.isArray(v) && v.every((s) => typeof s === "string")) return v as string[];
  throw new ApiError(400, `${key} must be a string or an array of strings`);
}

function l2normalize(v: number[]): number[] {
  const n = Math.sqrt(v.reduce((a, x) => a + x * x, 0));
  return n > 0 ? v.map((x) => x / n) : v;
}

async function route(ctx: ApiContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? "/", "http://localhost");
  const path = url.pathname.replace(/\/+$/, "") || "/";
  const method = req.method ?? "GET";
  const reg = ctx.registry;
  const get = method === "GET" || method === "HEAD";

  if (path === "/" && get) {
    res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" });
    res.end(method === "HEAD" ? undefined : "Ollama is running");
    return;
  }
  if (path === "/api/version" && get) return sendJson(res, 200, { version: ctx.config.version });
  if (path === "/api/tags" && get) {
    return sendJson(res, 200, {
      models: reg.list().map((e) => ({ name: e.name, model: e.name, modified_at: e.info.modifiedAt, size: e.info.size, digest: e.info.digest, details: details(e) })),
    });
  }
  if (path === "/api/ps" && get) {
    const models: Json[] = [];
    for (const e of reg.list()) {
      const l = await reg.loadedInfo(e);
      if (!l) continue;
      models.push({ name: e.name, model: e.name, size: e.info.size, digest: e.info.digest, details: details(e), expires_at: FOREVER, size_vram: 0, context_length: l.contextLength });
    }
    return sendJson(res, 200, { models });
  }
  if (path === "/api/show" && method === "POST") {
    const body = await readJson(req);
    const e = reg.get(modelName(body, true));
    const a = e.info.family;
    return sendJson(res, 200, {
      license: "",
      modelfile: `# Modelfile served by the secneuron embedded host\nFROM ${e.name}\n`,
      parameters: "",
      template: e.info.chatTemplate ?? "{{ .Prompt }}",
      details: details(e),
      model_info: {
        "general.architecture": a,
        "general.parameter_count": e.info.parameterCount,
        [`${a}.context_length`]: e.info.contextLength,
        [`${a}.embedding_length`]: e.info.embeddingLength,
        [`${a}.block_count`]: e.info.blockCount,
        [`${a}.attention.head_count`]: e.info.headCount,
        [`${a}.attention.head_count_kv`]: e.info.headCountKv,
        [`${a}.feed_forward_length`]: e.info.feedForwardLength,
        [`${a}.vocab_size`]: e.info.vocabSize,
      },
      capabilities: ["completion"],
      modified_at: e.info.modifiedAt,
    });
  }
  if (path === "/api/generate" && method === "POST") return ollamaGenerate(ctx, req, res, false);
  if (path === "/api/chat" && method === "POST") return ollamaGenerate(ctx, req, res, true);
  if (path === "/api/embed" && method === "POST") {
    const body = await readJson(req);
    const name = modelName(body);
    const e = reg.get(name);
    const inputs = body.input === undefined ? [] : embedInputs(body.input, "input");
    const r = await reg.embed(e, inputs, clientSignal(req, res));
    return sendJson(res, 200, { model: name, embeddings: r.vectors.map(l2normalize), total_duration: r.totalNs, load_duration: r.loadNs, prompt_eval_count: r.promptTokens });
  }
  if (path === "/api/embeddings" && method === "POST") {
    const body = await readJson(req);
    const e = reg.get(modelName(body));
    const prompt = str(body, "prompt") ?? "";
    const r = await reg.embed(e, prompt === "" ? [] : [prompt], clientSignal(req, res));
    return sendJson(res, 200, { embedding: r.vectors[0] ?? [] });
  }
  if (path === "/v1/chat/completions" && method === "POST") return openaiGenerate(ctx, req, res, true);
  if (path === "/v1/completions" && method === "POST") return openaiGenerate(ctx, req, res, false);
  if (path === "/v1/embeddings" && method === "POST") {
    const body = await readJson(req);
    const name = modelName(body);
    const e = reg.get(name);
    const inputs = embedInputs(body.input, "input");
    if (inputs.length === 0) throw new ApiError(400, "invalid input");
    const r = await reg.embed(e, inputs, clientSignal(req, res));
    return sendJson(res, 200, {
      object: "list",
      data: r.vectors.map((v, index) => ({ object: "embedding", embedding: l2normalize(v), index })),
      model: name,
      usage: { prompt_tokens: r.promptTokens, total_tokens: r.promptTokens },
    });
  }
  if (path === "/v1/models" && get) return sendJson(res, 200, { object: "list", data: reg.list().map(openaiModel) });
  if (path.startsWith("/v1/models/") && get) {
    const name = decodeURIComponent(path.slice("/v1/models/".length));
    const e = reg.find(name);
    if (!e) throw new ApiError(404, `model "${name}" not found`);
    return sendJson(res, 200, openaiModel(e));
  }
  res.writeHead(404, { "Content-Type": "text/plain; charset=utf-8" });
  res.end("404 page not found");
}

/** The request handler of the child's HTTP server. Never throws. */
export function handleRequest(ctx: ApiContext, req: IncomingMessage, res: ServerResponse): void {
  const flavour: Flavour = (req.url ?? "").startsWith("/v1/") ? "openai" : "ollama";
  route(ctx, req, res).catch((err: unknown) => {
    if (err instanceof ApiError && err.status === 499) {
      res.destroy();
      return;
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendError(res, flavour, err);
  });
}
