/**
 * The "embedded" host: llama.cpp (node-llama-cpp) in a supervised child process that serves the
 * Ollama API (and Ollama's OpenAI-compatible routes) on a loopback port.
 *
 *   proxy --HTTP--> front (this process, 127.0.0.1, stable port) --HTTP--> child (127.0.0.1:0)
 *                   parent --IPC: register/unregister/ping/logs/exit--> child
 *
 * The front is a plain byte pipe. It exists for supervision: when the child dies (llama.cpp
 * abort, kill, OOM) the front answers in-flight requests with 502 in the API's error shape (or
 * ends a started stream with an error line/frame), and the next request (or an immediate
 * restart) brings up a fresh child with the same registrations. The URL the proxy was given
 * stays valid across restarts.
 *
 * Every file is validated (validateModelFile) here before the child hears of it. The child loads
 * a model lazily on its first request and frees it on removeModel.
 */
import { fork, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { hasKey } from "./host-key.js";
import { existsSync, statSync } from "node:fs";
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { resolve } from "node:path";
import { EngineError, SecNeuronError } from "../../errors.js";
import { GgmlType, GgufValueType } from "../../core/gguf/constants.js";
import { readGgufHeader } from "../../edges/gguf-file.js";
import { keepAliveAgent, serverKeepAlive } from "../../edges/keep-alive.js";
import { resolveWorkerPath, validateModelFile } from "../../edges/engine/engine-process.js";
import type { HostAdapter, HostTarget } from "../host-adapter.js";
import type { HostMessage, HostRequest, ModelFileInfo, PingResult, WorkerConfig } from "./protocol.js";

const STDERR_TAIL_BYTES = 16 * 1024;
/** The Ollama API level the child emulates (GET /api/version). */
export const EMBEDDED_OLLAMA_VERSION = "0.12.0";

export interface EmbeddedHostOptions {
  /** llama.cpp threads per model (default 1). */
  readonly threads?: number;
  /** Context size in tokens per model (default 2048, capped at the model's training context). */
  readonly contextSize?: number;
  /**
   * How chat messages become a prompt. "auto" (default): the model's chat template when the
   * GGUF has one, else raw. "raw": message contents joined with "\n", no template.
   */
  readonly chatWrapper?: "auto" | "raw";
  /** Port of the front server on 127.0.0.1 (default 0: a random free port). */
  readonly port?: number;
  /** Milliseconds to wait for a child to come up (default 60 000). */
  readonly startTimeoutMs?: number;
  /** Milliseconds an IPC request may take (default 60 000). */
  readonly ipcTimeoutMs?: number;
  /** Lines of llama.cpp log the child keeps (default 1000). */
  readonly logLines?: number;
  /** Automatic restarts allowed per minute after crashes; beyond that, restart on demand (default 5). */
  readonly maxRestartsPerMinute?: number;
  /** Override the worker script (tests). */
  readonly workerPath?: string;
  /** Extra environment for the child. */
  readonly env?: NodeJS.ProcessEnv;
}

interface Registration {
  readonly path: string;
  readonly info: ModelFileInfo;
}

interface Pending {
  readonly op: string;
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** One running child. */
class Child {
  readonly pending = new Map<number, Pending>();
  nextId = 1;
  port = 0;
  exited = false;
  readonly exitPromise: Promise<void>;
  private markExited!: () => void;

  constructor(readonly proc: ChildProcess) {
    this.exitPromise = new Promise((r) => (this.markExited = r));
  }

  onExit(err: EngineError): void {
    this.exited = true;
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.markExited();
  }

  request<T>(body: Omit<HostRequest, "id"> & Record<string, unknown>, timeoutMs: number): Promise<T> {
    if (this.exited) return Promise.reject(new EngineError("HOST_CHILD_DEAD", "embedded host child has ended"));
    const id = this.nextId++;
    return new Promise<T>((res, rej) => {
      const timer = setTimeout(() => {
        if (!this.pending.delete(id)) return;
        rej(new EngineError("HOST_IPC_TIMEOUT", `embedded host child did not answer ${body.op} within ${timeoutMs} ms`, { op: body.op }));
      }, timeoutMs);
      this.pending.set(id, { op: String(body.op), resolve: res as (v: unknown) => void, reject: rej, timer });
      try {
        this.proc.send({ ...body, id } as HostRequest);
      } catch (e) {
        this.pending.delete(id);
        clearTimeout(timer);
        rej(new EngineError("HOST_IPC_FAILED", `cannot reach the embedded host child: ${(e as Error).message}`));
      }
    });
  }

  answer(m: HostMessage): void {
    if (m.type !== "response") return;
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    clearTimeout(p.timer);
    if (m.ok) p.resolve(m.result);
    else p.reject(new EngineError("HOST_REQUEST_FAILED", `embedded host ${p.op} failed: ${m.error.message}`, { op: p.op }));
  }
}

/** Human parameter count the way Ollama prints it: "8.0B", "494.03M", "630.34K". */
export function humanParameterCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(2)}K`;
  return String(n);
}

/** Validate a model file and describe it for /api/tags and /api/show. Throws typed errors. */
export function describeModelFile(name: string, path: string): ModelFileInfo {
  let hp: ReturnType<typeof validateModelFile>;
  let header: ReturnType<typeof readGgufHeader>;
  let st: ReturnType<typeof statSync>;
  try {
    hp = validateModelFile(path);
    header = readGgufHeader(path);
    st = statSync(path);
  } catch (e) {
    if (e instanceof SecNeuronError) throw e;
    throw new EngineError("ENGINE_MODEL_UNREADABLE", `cannot read model ${path}: ${(e as Error).message}`, { modelPath: path });
  }
  let parameterCount = 0;
  const bytesByType = new Map<number, number>();
  for (const t of header.tensors) {
    parameterCount += t.ne.reduce((a, b) => a * b, 1);
    bytesByType.set(t.type, (bytesByType.get(t.type) ?? 0) + t.byteLength);
  }
  let dominant = -1;
  let most = -1;
  for (const [type, bytes] of bytesByType) {
    if (bytes > most) {
      most = bytes;
      dominant = type;
    }
  }
  const tmpl = header.metadata.get("tokenizer.chat_template");
  const chatTemplate = tmpl?.type === GgufValueType.STRING ? tmpl.value : undefined;
  const digest = createHash("sha256").update(`${name}\0${path}\0${st.size}\0${st.mtimeMs}`).digest("hex");
  return {
    size: Number(st.size),
    modifiedAt: st.mtime.toISOString(),
    digest,
    family: hp.architecture,
    parameterSize: humanParameterCount(parameterCount),
    parameterCount,
    quantizationLevel: (GgmlType as unknown as Record<number, string>)[dominant] ?? `type${dominant}`,
    contextLength: hp.contextLength,
    embeddingLength: hp.embeddingLength,
    blockCount: hp.blockCount,
    headCount: hp.headCount,
    headCountKv: hp.headCountKv,
    feedForwardLength: hp.feedForwardLength,
    vocabSize: hp.vocabSize,
    ...(chatTemplate !== undefined ? { chatTemplate } : {}),
  };
}

function checkName(name: string): void {
  // eslint-disable-next-line no-control-regex
  if (typeof name !== "string" || name.length === 0 || name.length > 256 || /[\s\u0000-\u001f\u007f]/.test(name)) {
    throw new EngineError("HOST_BAD_MODEL_NAME", `model name ${JSON.stringify(name)} must be 1..256 characters without spaces or control characters`);
  }
}

/** The API's error body for a path: OpenAI's shape under /v1/, else Ollama's. */
function errorBodyFor(url: string | undefined, status: number, message: string): string {
  if ((url ?? "").startsWith("/v1/")) {
    return JSON.stringify({ error: { message, type: status === 400 ? "invalid_request_error" : "api_error", param: null, code: null } });
  }
  return JSON.stringify({ error: message });
}

export class EmbeddedHost implements HostAdapter {
  readonly kind = "embedded" as const;
  private readonly opts: Required<Omit<EmbeddedHostOptions, "workerPath" | "env" | "port">> & Pick<EmbeddedHostOptions, "env" | "port">;
  private readonly workerPath: string;
  private readonly models = new Map<string, Registration>();
  /**
   * Every request to the front server and to the child must carry this key: both listen on
   * loopback ports that any local user could reach, and they serve decrypted variants.
   */
  private readonly key = randomBytes(32).toString("base64url");
  private front: Server | undefined;
  private frontUrl: string | undefined;
  private frontStarting: Promise<void> | undefined;
  private child: Child | undefined;
  private childStarting: Promise<Child> | undefined;
  private stopping = false;
  private restartTimes: number[] = [];
  private stderrTail = "";
  private readonly agent = keepAliveAgent();
  /** Children started after a crash. */
  restarts = 0;

  constructor(options: EmbeddedHostOptions = {}) {
    const threads = options.threads ?? 1;
    if (!Number.isInteger(threads) || threads < 1) throw new EngineError("ENGINE_BAD_OPTION", `threads must be a positive integer, got ${threads}`);
    const contextSize = options.contextSize ?? 2048;
    if (!Number.isInteger(contextSize) || contextSize < 8) throw new EngineError("ENGINE_BAD_OPTION", `contextSize must be an integer >= 8, got ${contextSize}`);
    this.opts = {
      threads,
      contextSize,
      chatWrapper: options.chatWrapper ?? "auto",
      startTimeoutMs: options.startTimeoutMs ?? 60_000,
      ipcTimeoutMs: options.ipcTimeoutMs ?? 60_000,
      logLines: options.logLines ?? 1000,
      maxRestartsPerMinute: options.maxRestartsPerMinute ?? 5,
      env: options.env,
      port: options.port,
    };
    this.workerPath = options.workerPath ?? resolveWorkerPath(import.meta.url);
  }

  /** Base URL of the front server (after start). */
  get baseUrl(): string {
    if (!this.frontUrl) throw new EngineError("HOST_NOT_STARTED", "embedded host is not started");
    return this.frontUrl;
  }

  /** Pid of the current child, if one runs. */
  get childPid(): number | undefined {
    return this.child && !this.child.exited ? this.child.proc.pid : undefined;
  }

  /** Last bytes the children wrote to stdout/stderr (llama.cpp's own log is in logs()). */
  get stderr(): string {
    return this.stderrTail;
  }

  async start(): Promise<void> {
    this.stopping = false;
    await this.startFront();
    await this.ensureChild();
  }

  async ensureModel(name: string, path: string): Promise<HostTarget> {
    checkName(name);
    const abs = resolve(path);
    const known = this.models.get(name);
    if (known && known.path === abs) {
      await this.ensureChild();
      return { baseUrl: this.baseUrl, modelName: name, headers: { authorization: `Bearer ${this.key}` } };
    }
    const info = describeModelFile(name, abs);
    this.models.set(name, { path: abs, info });
    await this.startFront();
    const child = await this.ensureChild();
    await child.request({ op: "register", name, path: abs, info }, this.opts.ipcTimeoutMs);
    return { baseUrl: this.baseUrl, modelName: name, headers: { authorization: `Bearer ${this.key}` } };
  }

  async removeModel(name: string): Promise<void> {
    if (!this.models.delete(name)) return;
    const child = this.child;
    if (child && !child.exited) await child.request({ op: "unregister", name }, this.opts.ipcTimeoutMs).catch(() => {});
  }

  /** Registered names. */
  registered(): string[] {
    return [...this.models.keys()];
  }

  async healthy(): Promise<boolean> {
    const child = this.child;
    if (!child || child.exited || !this.front) return false;
    try {
      await child.request<PingResult>({ op: "ping" }, 2_000);
      return await new Promise<boolean>((res) => {
        const r = request({ host: "127.0.0.1", port: child.port, path: "/", method: "GET", agent: false, timeout: 2_000, headers: { authorization: `Bearer ${this.key}` } }, (m) => {
          m.resume();
          res(m.statusCode === 200);
        });
        r.on("timeout", () => r.destroy());
        r.on("error", () => res(false));
        r.end();
      });
    } catch {
      return false;
    }
  }

  /** llama.cpp's log lines kept by the current child (empty when none runs). */
  async logs(): Promise<string[]> {
    const child = this.child;
    if (!child || child.exited) return [];
    return child.request<string[]>({ op: "logs" }, this.opts.ipcTimeoutMs).catch(() => []);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const front = this.front;
    this.front = undefined;
    this.frontUrl = undefined;
    this.frontStarting = undefined;
    if (front) {
      front.closeAllConnections();
      await new Promise<void>((r) => front.close(() => r()));
    }
    await this.childStarting?.catch(() => {});
    const child = this.child;
    this.child = undefined;
    if (child && !child.exited) {
      child.request({ op: "exit" }, 5_000).catch(() => {});
      const timer = setTimeout(() => child.proc.kill("SIGKILL"), 5_000);
      await child.exitPromise;
      clearTimeout(timer);
    }
    this.agent.destroy();
  }

  // -------------------------------------------------------------------------------------------

  private startFront(): Promise<void> {
    if (this.front) return Promise.resolve();
    if (this.frontStarting) return this.frontStarting;
    this.frontStarting = new Promise<void>((res, rej) => {
      const server = createServer((req, resp) => this.forward(req, resp));
      serverKeepAlive(server);
      server.on("clientError", (_e, socket) => socket.destroy());
      server.once("error", (e) => {
        this.frontStarting = undefined;
        rej(new EngineError("HOST_LISTEN_FAILED", `embedded host cannot listen on 127.0.0.1:${this.opts.port ?? 0}: ${e.message}`));
      });
      server.listen(this.opts.port ?? 0, "127.0.0.1", () => {
        this.front = server;
        this.frontUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
        res();
      });
    });
    return this.frontStarting;
  }

  /** The running child, starting one (with every registration) when there is none. */
  private ensureChild(): Promise<Child> {
    if (this.child && !this.child.exited) return Promise.resolve(this.child);
    if (this.stopping) return Promise.reject(new EngineError("HOST_STOPPED", "embedded host is stopped"));
    if (!this.childStarting) {
      this.childStarting = this.spawnChild().finally(() => {
        this.childStarting = undefined;
      });
    }
    return this.childStarting;
  }

  private async spawnChild(): Promise<Child> {
    if (!existsSync(this.workerPath)) {
      throw new EngineError("ENGINE_WORKER_MISSING", `embedded host worker ${this.workerPath} does not exist: run \`npm run build\` first`, { workerPath: this.workerPath });
    }
    const config: WorkerConfig = {
      threads: this.opts.threads,
      contextSize: this.opts.contextSize,
      chatWrapper: this.opts.chatWrapper,
      logLines: this.opts.logLines,
      version: EMBEDDED_OLLAMA_VERSION,
    };
    const proc = fork(this.workerPath, [JSON.stringify(config)], {
      execArgv: [],
      stdio: ["ignore", "pipe", "pipe", "ipc"],
      serialization: "json",
      env: { ...process.env, NODE_LLAMA_CPP_SKIP_DOWNLOAD: "true", ...this.opts.env, SECNEURON_HOST_KEY: this.key },
    });
    const child = new Child(proc);
    const keepTail = (c: Buffer): void => {
      this.stderrTail = (this.stderrTail + c.toString("utf8")).slice(-STDERR_TAIL_BYTES);
    };
    proc.stdout!.on("data", keepTail);
    proc.stderr!.on("data", keepTail);
    await new Promise<void>((res, rej) => {
      let ready = false;
      const timer = setTimeout(() => {
        if (ready) return;
        proc.kill("SIGKILL");
        rej(new EngineError("ENGINE_START_TIMEOUT", `embedded host child did not start within ${this.opts.startTimeoutMs} ms`, { stderr: this.stderrTail }));
      }, this.opts.startTimeoutMs);
      proc.on("message", (raw: unknown) => {
        const m = raw as HostMessage;
        if (m.type === "ready") {
          ready = true;
          child.port = m.port;
          clearTimeout(timer);
          res();
        } else child.answer(m);
      });
      proc.on("error", (e) => {
        if (ready) return;
        clearTimeout(timer);
        rej(new EngineError("ENGINE_SPAWN_FAILED", `cannot start the embedded host child: ${e.message}`));
      });
      proc.on("exit", (code, signal) => {
        clearTimeout(timer);
        const how = signal ? `signal ${signal}` : `exit code ${code}`;
        const err = new EngineError("ENGINE_CRASHED", `embedded host child ended (${how})`, { exitCode: code, signal, stderr: this.stderrTail });
        child.onExit(err);
        if (!ready) rej(err);
        else this.childExited(child);
      });
    });
    // Same registrations as before the restart; models load lazily on their next request.
    for (const [name, r] of this.models) {
      await child.request({ op: "register", name, path: r.path, info: r.info }, this.opts.ipcTimeoutMs);
    }
    if (this.stopping) {
      proc.kill("SIGKILL");
      throw new EngineError("HOST_STOPPED", "embedded host is stopped");
    }
    this.child = child;
    return child;
  }

  private childExited(child: Child): void {
    if (this.child === child) this.child = undefined;
    if (this.stopping) return;
    // Restart at once unless it keeps crashing; otherwise the next request restarts it.
    const now = Date.now();
    this.restartTimes = this.restartTimes.filter((t) => now - t < 60_000);
    if (this.restartTimes.length >= this.opts.maxRestartsPerMinute) return;
    this.restartTimes.push(now);
    this.restarts++;
    this.ensureChild().catch(() => {});
  }

  /** Pipe one request to the child; a dead child becomes a 502 in the API's error shape. */
  private forward(req: IncomingMessage, res: ServerResponse): void {
    if (!hasKey(req, this.key)) {
      req.resume();
      res.writeHead(401, { "content-type": "application/json" }).end(errorBodyFor(req.url, 401, "embedded llama.cpp host: requests come through the secneuron sidecar"));
      return;
    }
    let finished = false;
    let streamType = "";
    const fail = (status: number, why: string): void => {
      if (finished) return;
      finished = true;
      if (res.destroyed || res.writableEnded) return;
      const message = `embedded llama.cpp host: ${why}`;
      if (!res.headersSent) {
        const body = errorBodyFor(req.url, status, message);
        res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", "Content-Length": Buffer.byteLength(body) });
        res.end(body);
        return;
      }
      // A stream already started: end it with an error line (NDJSON) or frame (SSE).
      const type = streamType;
      if (type.includes("ndjson")) res.write(`${errorBodyFor(req.url, status, message)}\n`);
      else if (type.includes("event-stream")) res.write(`data: ${errorBodyFor("/v1/", status, message)}\n\n`);
      res.end();
    };
    this.ensureChild().then(
      (child) => {
        if (res.destroyed) {
          req.resume();
          return;
        }
        const up = request({
          host: "127.0.0.1",
          port: child.port,
          method: req.method,
          path: req.url,
          headers: { ...withoutHopByHop(req.headers), host: `127.0.0.1:${child.port}` },
          agent: this.agent,
        });
        up.on("error", (e) => fail(502, `the llama.cpp child failed during the request (${e.message})`));
        up.on("response", (ur) => {
          streamType = String(ur.headers["content-type"] ?? "");
          res.writeHead(ur.statusCode ?? 502, withoutHopByHop(ur.headers));
          ur.on("data", (c: Buffer) => {
            if (!res.write(c)) {
              ur.pause();
              res.once("drain", () => ur.resume());
            }
          });
          ur.on("end", () => {
            finished = true;
            res.end();
          });
          ur.on("error", (e) => fail(502, `the llama.cpp child failed during the response (${e.message})`));
          ur.on("close", () => {
            if (!ur.complete) fail(502, "the llama.cpp child closed the connection before the response was complete");
          });
        });
        res.on("close", () => {
          if (!res.writableFinished) up.destroy();
        });
        req.pipe(up);
      },
      (e: unknown) => {
        req.resume();
        fail(this.stopping ? 503 : 502, `no llama.cpp child (${(e as Error).message})`);
      },
    );
  }
}

/**
 * Hop-by-hop headers belong to one connection and must not be forwarded: a client's
 * `Connection: close` passed on makes the child close a socket the keep-alive agent still pools,
 * and the next request on it fails with "socket hang up".
 */
function withoutHopByHop(headers: IncomingMessage["headers"]): IncomingMessage["headers"] {
  const out = { ...headers };
  const named = String(headers.connection ?? "").split(",").map((h) => h.trim().toLowerCase()).filter(Boolean);
  for (const h of ["connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", ...named]) delete out[h];
  return out;
}
