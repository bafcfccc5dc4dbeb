/**
 * The "llama-server" host: one llama.cpp `llama-server` process per registered model name.
 *
 *   proxy --HTTP (Bearer <per-process key>)--> llama-server #1 (127.0.0.1:<random port>, -m variant-1.gguf)
 *                                          --> llama-server #2 (127.0.0.1:<random port>, -m variant-2.gguf)
 *
 * Each process listens on loopback only, on a free port picked at spawn, and requires its own
 * random API key. The key reaches the process through the environment (`LLAMA_API_KEY`), never
 * argv, so `ps` does not show it; the proxy gets it back in HostTarget.headers. The child's
 * environment is built from a short allow-list: inherited `LLAMA_ARG_*` / `AIP_*` variables could
 * otherwise rebind it to 0.0.0.0, change its port or load other files.
 *
 * llama-server speaks OpenAI routes (`/v1/chat/completions`, `/v1/completions`, `/v1/models`,
 * `/v1/embeddings`) and its own (`/completion`, `/tokenize`, ...), not the Ollama API: the sidecar
 * forwards only OpenAI routes to this host (Ollama routes get 501 there).
 *
 * Every file is validated (validateModelFile) before llama-server sees it. The model is
 * memory-mapped (llama-server's default). A process that died is started again by the next
 * ensureModel for its name (with a new port and key).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { accessSync, constants as fsConstants, existsSync, readFileSync, statSync } from "node:fs";
import { request } from "node:http";
import { createRequire } from "node:module";
import { createServer, type AddressInfo } from "node:net";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { EngineError, SecNeuronError } from "../../errors.js";
import { GgufValueType } from "../../core/gguf/constants.js";
import { readGgufHeader } from "../../edges/gguf-file.js";
import { validateModelFile } from "../../edges/engine/engine-process.js";
import type { HostAdapter, HostTarget } from "../host-adapter.js";

const STDERR_TAIL_BYTES = 16 * 1024;

/** What to run when a GGUF has no chat template: message contents joined with "\n", no roles. */
export const RAW_CHAT_TEMPLATE =
  "{% for message in messages %}{% if not loop.first %}{{ '\\n' }}{% endif %}{{ message['content'] }}{% endfor %}";

/** The request routes llama-server answers (for the sidecar's route mapping). */
export const LLAMA_SERVER_OPENAI_ROUTES: readonly string[] = [
  "POST /v1/chat/completions",
  "POST /v1/completions",
  "POST /v1/embeddings",
  "GET /v1/models",
];

export const BUILD_HINT = "run `npm run build:llama-server` (or pass --llama-server <path>)";

export interface LlamaServerHostOptions {
  /** The llama-server binary (the sidecar's `--llama-server <path>`). Default: $SECNEURON_LLAMA_SERVER, else the build cache path. */
  readonly binary?: string;
  /** Threads per process, for generation and batches (default 1). */
  readonly threads?: number;
  /** Context size in tokens per process (default 2048, capped at the model's training context). */
  readonly contextSize?: number;
  /**
   * Chat prompt format. "auto" (default): the model's chat template when the GGUF has one, else
   * RAW_CHAT_TEMPLATE. "raw": always RAW_CHAT_TEMPLATE. "model": always llama-server's own choice
   * (the GGUF's template, or its built-in default).
   */
  readonly chatTemplate?: "auto" | "raw" | "model";
  /**
   * Reuse the KV cache of a previous request's common prompt prefix (llama-server's default:
   * true). Set false when model files are rewritten in place (seal/unseal rows of a mapped file):
   * a cached prefix was computed with the old weights. A request's own `cache_prompt` field
   * still overrides this; the proxy can strip it.
   */
  readonly cachePrompt?: boolean;
  /** Milliseconds to wait for /health to answer 200 after a spawn (default 60 000). */
  readonly startTimeoutMs?: number;
  /** Extra llama-server arguments, appended last (must not carry secrets: argv is public). */
  readonly extraArgs?: readonly string[];
  /** Extra environment for the processes (added to the allow-listed one). */
  readonly env?: NodeJS.ProcessEnv;
}

/** The llama.cpp tag node-llama-cpp bundles (llama/llama.cpp.info.json), e.g. "v0.4.0". */
export function bundledLlamaCppTag(): string {
  const require = createRequire(import.meta.url);
  let dir = dirname(require.resolve("node-llama-cpp"));
  while (dir !== dirname(dir)) {
    const info = join(dir, "llama", "llama.cpp.info.json");
    if (existsSync(info)) {
      const tag = String((JSON.parse(readFileSync(info, "utf8")) as { tag?: unknown }).tag ?? "");
      if (!tag) break;
      return tag.replace(/[^A-Za-z0-9._-]/g, "_");
    }
    dir = dirname(dir);
  }
  throw new EngineError("LLAMA_SERVER_NO_SOURCE", "cannot find node-llama-cpp's llama/llama.cpp.info.json (is node-llama-cpp installed?)");
}

/** Where `npm run build:llama-server` puts the binary: ${SECNEURON_CACHE:-~/.cache/secneuron}/llama-server-<tag>/llama-server. */
export function defaultLlamaServerPath(env: NodeJS.ProcessEnv = process.env): string {
  const root = env.SECNEURON_CACHE || join(homedir(), ".cache", "secneuron");
  return join(root, `llama-server-${bundledLlamaCppTag()}`, process.platform === "win32" ? "llama-server.exe" : "llama-server");
}

function checkName(name: string): void {
  // eslint-disable-next-line no-control-regex
  if (typeof name !== "string" || name.length === 0 || name.length > 256 || /[\s,\u0000-\u001f\u007f]/.test(name)) {
    throw new EngineError("HOST_BAD_MODEL_NAME", `model name ${JSON.stringify(name)} must be 1..256 characters without spaces, commas or control characters`);
  }
}

/** A free TCP port on 127.0.0.1 (bound and released: the spawn retries if someone takes it first). */
function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => res(port));
    });
  });
}

/** GET a path on 127.0.0.1:port; resolves the status code, or 0 when nothing answers. */
function getStatus(port: number, path: string, timeoutMs: number, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((res) => {
    const r = request({ host: "127.0.0.1", port, path, method: "GET", agent: false, timeout: timeoutMs, headers }, (m) => {
      m.resume();
      res(m.statusCode ?? 0);
    });
    r.on("timeout", () => r.destroy());
    r.on("error", () => res(0));
    r.end();
  });
}

/** The environment a llama-server child gets: an allow-list, plus the key. */
const ENV_ALLOW = ["PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "GGML_CUDA_ENABLE_UNIFIED_MEMORY"];

/** Every live child, killed when this Node process exits (a SIGKILLed parent still leaves orphans). */
const LIVE = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(proc: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on("exit", () => {
      for (const p of LIVE) p.kill("SIGKILL");
    });
  }
  LIVE.add(proc);
  proc.on("exit", () => LIVE.delete(proc));
}

/** One running (or starting) llama-server. */
class ServerProcess {
  exited = false;
  ready = false;
  stderrTail = "";
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;
  readonly exitPromise: Promise<void>;
  private markExited!: () => void;

  constructor(
    readonly name: string,
    readonly path: string,
    readonly port: number,
    readonly apiKey: string,
    readonly proc: ChildProcess,
  ) {
    this.exitPromise = new Promise((r) => (this.markExited = r));
    if (proc.pid !== undefined) track(proc);
    const keep = (c: Buffer): void => {
      this.stderrTail = (this.stderrTail + c.toString("utf8")).slice(-STDERR_TAIL_BYTES);
    };
    proc.stdout?.on("data", keep);
    proc.stderr?.on("data", keep);
    proc.on("exit", (code, signal) => {
      this.exited = true;
      this.exitCode = code;
      this.exitSignal = signal;
      this.markExited();
    });
    proc.on("error", (e) => {
      keep(Buffer.from(`\nspawn error: ${e.message}\n`));
      if (proc.exitCode === null && proc.pid === undefined) {
        this.exited = true;
        this.markExited();
      }
    });
  }

  get target(): HostTarget {
    return { baseUrl: `http://127.0.0.1:${this.port}`, modelName: this.name, headers: { authorization: `Bearer ${this.apiKey}` } };
  }

  /** SIGTERM, then SIGKILL after graceMs; resolves when it is gone. */
  async kill(graceMs = 5_000): Promise<void> {
    if (this.exited) return;
    this.proc.kill("SIGTERM");
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), graceMs);
    await this.exitPromise;
    clearTimeout(timer);
  }
}

interface Entry {
  readonly path: string;
  /** The running process, once healthy. */
  server?: ServerProcess;
  /** The spawn in progress. */
  starting?: Promise<ServerProcess>;
}

export class LlamaServerHost implements HostAdapter {
  readonly kind = "llama-server" as const;
  readonly forwardedRoutes = LLAMA_SERVER_OPENAI_ROUTES;
  readonly binary: string;
  private readonly opts: Required<Omit<LlamaServerHostOptions, "binary" | "env">> & Pick<LlamaServerHostOptions, "env">;
  private readonly entries = new Map<string, Entry>();
  private started: Promise<void> | undefined;
  private stopped = false;
  private version = "";
  /** Processes started again after they died. */
  restarts = 0;

  constructor(options: LlamaServerHostOptions = {}) {
    const threads = options.threads ?? 1;
    if (!Number.isInteger(threads) || threads < 1) throw new EngineError("ENGINE_BAD_OPTION", `threads must be a positive integer, got ${threads}`);
    const contextSize = options.contextSize ?? 2048;
    if (!Number.isInteger(contextSize) || contextSize < 8) throw new EngineError("ENGINE_BAD_OPTION", `contextSize must be an integer >= 8, got ${contextSize}`);
    const startTimeoutMs = options.startTimeoutMs ?? 60_000;
    if (!(startTimeoutMs > 0)) throw new EngineError("ENGINE_BAD_OPTION", `startTimeoutMs must be positive, got ${startTimeoutMs}`);
    this.opts = {
      threads,
      contextSize,
      chatTemplate: options.chatTemplate ?? "auto",
      cachePrompt: options.cachePrompt ?? true,
      startTimeoutMs,
      extraArgs: options.extraArgs ?? [],
      env: options.env,
    };
    const env = options.env ?? process.env;
    let binary = options.binary ?? env.SECNEURON_LLAMA_SERVER;
    if (!binary) {
      try {
        binary = defaultLlamaServerPath(env);
      } catch {
        binary = "";
      }
    }
    this.binary = binary ? resolve(binary) : "";
  }

  /** `llama-server --version` of the binary (after start). */
  get serverVersion(): string {
    return this.version;
  }

  /** Checks the binary exists and runs. Idempotent. */
  start(): Promise<void> {
    this.stopped = false;
    if (!this.started) {
      this.started = this.checkBinary().catch((e: unknown) => {
        this.started = undefined;
        throw e;
      });
    }
    return this.started;
  }

  async ensureModel(name: string, path: string): Promise<HostTarget> {
    checkName(name);
    const abs = resolve(path);
    const known = this.entries.get(name);
    if (known && known.path === abs) {
      if (known.server && !known.server.exited) return known.server.target;
      if (known.starting) return (await known.starting).target;
    }
    if (this.stopped) throw new EngineError("HOST_STOPPED", "llama-server host is stopped");
    await this.start();
    if (!known || known.path !== abs) {
      describeForServer(abs); // validate before llama-server sees the file
      if (known) await this.removeModel(name);
      this.entries.set(name, { path: abs });
    }
    const entry = this.entries.get(name)!;
    if (entry.server && !entry.server.exited) return entry.server.target;
    if (!entry.starting) {
      const restart = entry.server !== undefined;
      entry.server = undefined;
      entry.starting = this.spawnServer(name, abs).then(
        (s) => {
          if (restart) this.restarts++;
          if (this.entries.get(name) !== entry || this.stopped) {
            // removed or stopped while starting
            void s.kill();
            throw new EngineError("HOST_STOPPED", `model ${name} was removed while its llama-server was starting`);
          }
          entry.server = s;
          entry.starting = undefined;
          return s;
        },
        (e: unknown) => {
          entry.starting = undefined;
          throw e;
        },
      );
    }
    return (await entry.starting).target;
  }

  async removeModel(name: string): Promise<void> {
    const entry = this.entries.get(name);
    if (!entry) return;
    this.entries.delete(name);
    const s = entry.server ?? (await entry.starting?.catch(() => undefined));
    await s?.kill();
  }

  /** Registered names. */
  registered(): string[] {
    return [...this.entries.keys()];
  }

  /** Pid of the process serving `name`, if it runs. */
  pid(name: string): number | undefined {
    const s = this.entries.get(name)?.server;
    return s && !s.exited ? s.proc.pid : undefined;
  }

  /** Last output (llama.cpp log) of the process serving `name`. */
  logs(name: string): string {
    return this.entries.get(name)?.server?.stderrTail ?? "";
  }

  /** True when started and every running process answers /health with 200. */
  async healthy(): Promise<boolean> {
    if (this.stopped || !this.started) return false;
    try {
      await this.started;
    } catch {
      return false;
    }
    const live = [...this.entries.values()].map((e) => e.server).filter((s): s is ServerProcess => !!s && !s.exited);
    const codes = await Promise.all(live.map((s) => getStatus(s.port, "/health", 2_000)));
    return codes.every((c) => c === 200);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const names = [...this.entries.keys()];
    await Promise.all(names.map((n) => this.removeModel(n)));
  }

  // -------------------------------------------------------------------------------------------

  private async checkBinary(): Promise<void> {
    const bin = this.binary;
    if (!bin || !existsSync(bin)) {
      throw new EngineError("LLAMA_SERVER_MISSING", `llama-server binary not found${bin ? ` at ${bin}` : ""}: ${BUILD_HINT}`, { binary: bin });
    }
    try {
      if (!statSync(bin).isFile()) throw new Error("not a file");
      accessSync(bin, fsConstants.X_OK);
    } catch (e) {
      throw new EngineError("LLAMA_SERVER_MISSING", `llama-server binary ${bin} is not an executable file (${(e as Error).message}): ${BUILD_HINT}`, { binary: bin });
    }
    const out = await new Promise<{ code: number | null; text: string }>((res) => {
      const p = spawn(bin, ["--version"], { stdio: ["ignore", "pipe", "pipe"], env: this.childEnv("") });
      let text = "";
      p.stdout.on("data", (c: Buffer) => (text += c.toString()));
      p.stderr.on("data", (c: Buffer) => (text += c.toString()));
      const timer = setTimeout(() => p.kill("SIGKILL"), 30_000);
      p.on("error", (e) => {
        clearTimeout(timer);
        res({ code: -1, text: e.message });
      });
      p.on("close", (code) => {
        clearTimeout(timer);
        res({ code, text });
      });
    });
    if (out.code !== 0) {
      throw new EngineError("LLAMA_SERVER_BROKEN", `llama-server binary ${bin} does not run (--version: ${out.text.trim().slice(-500) || `exit ${out.code}`}): ${BUILD_HINT}`, { binary: bin });
    }
    this.version = out.text.split("\n").find((l) => l.startsWith("version")) ?? out.text.trim().split("\n")[0] ?? "";
  }

  private childEnv(apiKey: string): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {};
    for (const k of ENV_ALLOW) if (process.env[k] !== undefined) env[k] = process.env[k];
    Object.assign(env, this.opts.env);
    if (apiKey) env.LLAMA_API_KEY = apiKey;
    return env;
  }

  private async spawnServer(name: string, path: string): Promise<ServerProcess> {
    const info = describeForServer(path);
    const ctx = Math.min(this.opts.contextSize, info.contextLength > 0 ? info.contextLength : this.opts.contextSize);
    const template =
      this.opts.chatTemplate === "raw" || (this.opts.chatTemplate === "auto" && !info.hasChatTemplate) ? RAW_CHAT_TEMPLATE : undefined;
    let lastError: EngineError | undefined;
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort();
      const apiKey = randomBytes(32).toString("base64url");
      const t = String(this.opts.threads);
      const args = [
        "--model", path,
        "--host", "127.0.0.1",
        "--port", String(port),
        "--alias", name,
        "--parallel", "1", // one slot: slots share the context, concurrent requests overflow it otherwise
        "--threads", t,
        "--threads-batch", t,
        "--threads-http", "2",
        "--ctx-size", String(ctx),
        "--no-webui",
        "--no-slots", // GET /slots would show the last prompt of whoever used this variant
        "--offline", // never download anything
        ...(this.opts.cachePrompt ? [] : ["--no-cache-prompt"]),
        ...(template !== undefined ? ["--jinja", "--chat-template", template] : []),
        ...this.opts.extraArgs,
      ];
      const proc = spawn(this.binary, args, { stdio: ["ignore", "pipe", "pipe"], env: this.childEnv(apiKey), detached: false });
      const s = new ServerProcess(name, path, port, apiKey, proc);
      try {
        await this.waitHealthy(s);
        return s;
      } catch (e) {
        await s.kill(1_000);
        lastError = e as EngineError;
        // Someone took the port between freePort() and the bind: try another one.
        if (!/couldn't bind|address already in use/i.test(s.stderrTail)) throw e;
      }
    }
    throw lastError!;
  }

  /** Poll /health until 200 (503 while loading); reject when the process exits or on timeout. */
  private async waitHealthy(s: ServerProcess): Promise<void> {
    const deadline = Date.now() + this.opts.startTimeoutMs;
    let delay = 10;
    for (;;) {
      if (s.exited) {
        const how = s.exitSignal ? `signal ${s.exitSignal}` : `exit code ${s.exitCode}`;
        throw new EngineError("ENGINE_START_FAILED", `llama-server for ${s.name} ended while starting (${how}): ${lastLines(s.stderrTail)}`, {
          exitCode: s.exitCode,
          signal: s.exitSignal,
          stderr: s.stderrTail,
        });
      }
      if (this.stopped) throw new EngineError("HOST_STOPPED", "llama-server host is stopped");
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new EngineError("ENGINE_START_TIMEOUT", `llama-server for ${s.name} was not healthy within ${this.opts.startTimeoutMs} ms`, { stderr: s.stderrTail });
      }
      const code = await getStatus(s.port, "/health", Math.min(2_000, left));
      if (code === 200) {
        s.ready = true;
        return;
      }
      await Promise.race([new Promise((r) => setTimeout(r, delay)), s.exitPromise]);
      delay = Math.min(delay * 2, 200);
    }
  }
}

function lastLines(text: string, n = 5): string {
  return text.trim().split("\n").slice(-n).join(" | ") || "(no output)";
}

/** Validate a model file (typed errors) and read what the spawn needs. */
function describeForServer(path: string): { contextLength: number; hasChatTemplate: boolean } {
  try {
    const hp = validateModelFile(path);
    const tmpl = readGgufHeader(path).metadata.get("tokenizer.chat_template");
    return { contextLength: hp.contextLength, hasChatTemplate: tmpl?.type === GgufValueType.STRING && tmpl.value.length > 0 };
  } catch (e) {
    if (e instanceof SecNeuronError) throw e;
    throw new EngineError("ENGINE_MODEL_UNREADABLE", `cannot read model ${path}: ${(e as Error).message}`, { modelPath: path });
  }
}
