/**
 * Parent side of the IPC protocol with a forked worker, shared by EngineProcess, ProfileProcess
 * and LossProcess. llama.cpp may abort its whole process, so it only runs in such a child: each
 * request carries an id and gets one response, a request past its timeout kills the child, and
 * any exit of the child fails what is pending with an EngineError carrying the exit code or
 * signal and the tail of the child's output.
 */
import { fork, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { EngineError, type ErrorDetails } from "../errors.js";

const OUTPUT_TAIL_BYTES = 16 * 1024;

/**
 * Path of the compiled worker `file` beside the module at moduleUrl (a module of
 * plugin/edges/<dir>/). From dist/ it is the sibling file; from the .ts source (vitest)
 * `<root>/plugin/edges/<dir>/x.ts` maps to `<root>/dist/plugin/edges/<dir>/<file>`: the child
 * always runs compiled JavaScript (run `npm run build` first).
 */
export function resolveCompiledWorker(moduleUrl: string, file: string): string {
  const here = fileURLToPath(moduleUrl);
  const dir = dirname(here);
  if (here.endsWith(".ts")) {
    const root = resolve(dir, "..", "..", "..");
    return join(root, "dist", relative(root, dir), file);
  }
  return join(dir, file);
}

/** How the child ended. */
export interface ChildExit {
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** Wording of a child's errors: each class keeps the wording its callers have always seen. */
export interface ChildRpcText {
  readonly startTimeout: (ms: number) => string;
  readonly spawnFailed: (why: string) => string;
  readonly startCrashed: (how: string, output: string) => string;
  readonly crashed: (how: string, op: string, modelPath: string | undefined) => string;
  readonly failed: (op: string, why: string) => string;
  readonly timedOut: (op: string, ms: number) => string;
  readonly ipcFailed: (why: string) => string;
  readonly dead: (how: string) => string;
}

/** The usual wording: `child` names the process ("llama.cpp child"), `op` prefixes a request ("llama.cpp"). */
export function childRpcText(child: string, op: string): ChildRpcText {
  return {
    startTimeout: (ms) => `${child} did not start within ${ms} ms`,
    spawnFailed: (why) => `cannot start the ${child}: ${why}`,
    startCrashed: (how) => `${child} ended during start-up (${how})`,
    crashed: (how, name, modelPath) => `${op} child ended (${how}) during ${name}${modelPath ? ` of ${modelPath}` : ""}`,
    failed: (name, why) => `${op} ${name} failed: ${why}`,
    timedOut: (name, ms) => `${op} ${name} did not finish within ${ms} ms; child killed`,
    ipcFailed: (why) => `cannot reach the ${child}: ${why}`,
    dead: (how) => `${child} has already ended (${how})`,
  };
}

export interface ChildRpcOptions {
  readonly workerPath: string;
  /** Names the script when it is missing ("engine worker"). */
  readonly worker: string;
  readonly serialization: "json" | "advanced";
  readonly env: NodeJS.ProcessEnv;
  /** Milliseconds to wait for the worker's ready message. */
  readonly startTimeoutMs: number;
  /** Copy the child's stderr to ours as it comes (it is kept for error reports either way). */
  readonly forwardStderr?: boolean;
  readonly text: ChildRpcText;
  /** Error details hold only the output tail (LossProcess's errors never carried more). */
  readonly tailOnlyDetails?: boolean;
}

/** What a worker sends: `ready` once, one `response` per request, other types are events of a request (progress). */
interface WorkerMessage {
  readonly type: string;
  readonly id: number;
  readonly ok?: boolean;
  readonly result?: unknown;
  readonly error?: { readonly message: string };
}

interface Pending {
  readonly op: string;
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
  readonly onEvent: ((m: unknown) => void) | undefined;
}

function describeExit({ exitCode, signal }: ChildExit): string {
  return signal ? `signal ${signal}` : `exit code ${exitCode}`;
}

/** One worker child; Req is the request without its id (the id is added here). */
export class ChildRpc<Req extends { readonly op: string }> {
  /** The model the child works on, named in errors; the owner keeps it current. */
  modelPath: string | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private tail = "";
  private exitInfo: ChildExit | undefined;
  private readonly exitWaiters: Array<() => void> = [];

  private constructor(
    private readonly child: ChildProcess,
    private readonly opts: ChildRpcOptions,
  ) {}

  /** Fork the worker and wait for its ready message. */
  static async start<Req extends { readonly op: string }>(opts: ChildRpcOptions): Promise<ChildRpc<Req>> {
    if (!existsSync(opts.workerPath)) {
      throw new EngineError("ENGINE_WORKER_MISSING", `${opts.worker} ${opts.workerPath} does not exist: run \`npm run build\` first`, { workerPath: opts.workerPath });
    }
    const child = fork(opts.workerPath, [], {
      execArgv: [],
      stdio: ["ignore", "pipe", "pipe", "ipc"],
      serialization: opts.serialization,
      env: opts.env,
    });
    const rpc = new ChildRpc<Req>(child, opts);
    await rpc.waitReady();
    return rpc;
  }

  private details(d: ErrorDetails): ErrorDetails {
    return this.opts.tailOnlyDetails ? { stderr: this.tail } : { ...d, stderr: this.tail };
  }

  private waitReady(): Promise<void> {
    const { child, opts } = this;
    const text = opts.text;
    const keep = (c: Buffer): void => {
      this.tail = (this.tail + c.toString("utf8")).slice(-OUTPUT_TAIL_BYTES);
    };
    child.stderr!.on("data", (c: Buffer) => {
      keep(c);
      if (opts.forwardStderr) process.stderr.write(c);
    });
    child.stdout!.on("data", keep);
    return new Promise<void>((resolveReady, rejectReady) => {
      let ready = false;
      const timer = setTimeout(() => {
        if (ready) return;
        child.kill("SIGKILL");
        rejectReady(new EngineError("ENGINE_START_TIMEOUT", text.startTimeout(opts.startTimeoutMs), { stderr: this.tail }));
      }, opts.startTimeoutMs);
      child.on("message", (raw: unknown) => {
        const m = raw as WorkerMessage;
        if (m.type === "ready") {
          ready = true;
          clearTimeout(timer);
          resolveReady();
          return;
        }
        const p = this.pending.get(m.id);
        if (!p) return;
        if (m.type !== "response") {
          p.onEvent?.(m);
          return;
        }
        this.pending.delete(m.id);
        clearTimeout(p.timer);
        if (m.ok) p.resolve(m.result);
        else {
          const details = this.details({ op: p.op, modelPath: this.modelPath, childError: m.error });
          p.reject(new EngineError("ENGINE_REQUEST_FAILED", text.failed(p.op, `${m.error?.message}`), details));
        }
      });
      child.on("error", (e) => {
        // Spawn failure or IPC failure; the exit handler (if any) reports the rest.
        if (!ready) {
          clearTimeout(timer);
          rejectReady(new EngineError("ENGINE_SPAWN_FAILED", text.spawnFailed(e.message)));
        }
      });
      child.on("exit", (code, signal) => {
        this.exitInfo = { exitCode: code, signal };
        clearTimeout(timer);
        const how = describeExit(this.exitInfo);
        const details = { exitCode: code, signal, modelPath: this.modelPath };
        if (!ready) rejectReady(new EngineError("ENGINE_CRASHED", text.startCrashed(how, this.tail), this.details(details)));
        for (const [id, p] of this.pending) {
          this.pending.delete(id);
          clearTimeout(p.timer);
          p.reject(new EngineError("ENGINE_CRASHED", text.crashed(how, p.op, this.modelPath), this.details({ ...details, op: p.op })));
        }
        for (const w of this.exitWaiters.splice(0)) w();
      });
    });
  }

  /** Whether the child is still running. */
  get alive(): boolean {
    return this.exitInfo === undefined;
  }

  /** How the child ended, once it has. */
  get exit(): ChildExit | undefined {
    return this.exitInfo;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** The last bytes the child wrote to stderr/stdout. */
  get output(): string {
    return this.tail;
  }

  /** Send a request; onEvent gets the request's non-response messages (progress). */
  request<T>(req: Req, timeoutMs: number, onEvent?: (m: unknown) => void): Promise<T> {
    const text = this.opts.text;
    if (this.exitInfo) {
      const { exitCode, signal } = this.exitInfo;
      return Promise.reject(new EngineError("ENGINE_DEAD", text.dead(describeExit(this.exitInfo)), this.opts.tailOnlyDetails ? {} : { exitCode, signal }));
    }
    const id = this.nextId++;
    return new Promise<T>((res, rej) => {
      const timer = setTimeout(() => {
        if (!this.pending.has(id)) return;
        this.pending.delete(id);
        this.child.kill("SIGKILL");
        rej(new EngineError("ENGINE_TIMEOUT", text.timedOut(req.op, timeoutMs), this.details({ op: req.op, modelPath: this.modelPath })));
      }, timeoutMs);
      this.pending.set(id, { op: req.op, resolve: res as (v: unknown) => void, reject: rej, timer, onEvent });
      try {
        this.child.send({ ...req, id });
      } catch (e) {
        this.pending.delete(id);
        clearTimeout(timer);
        rej(new EngineError("ENGINE_IPC_FAILED", text.ipcFailed((e as Error).message)));
      }
    });
  }

  /** Kill the child with a signal. Pending requests fail with ENGINE_CRASHED. */
  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    if (this.alive) this.child.kill(signal);
  }

  /** Wait until the child has exited. */
  waitForExit(): Promise<ChildExit> {
    if (this.exitInfo) return Promise.resolve(this.exitInfo);
    return new Promise((res) => this.exitWaiters.push(() => res(this.exitInfo!)));
  }

  /** Ask the child to exit; kill it if it does not within graceMs. Never throws. */
  async dispose(graceMs: number): Promise<void> {
    if (!this.alive) return;
    const exited = this.waitForExit();
    this.request({ op: "exit" } as Req, graceMs).catch(() => {});
    const timer = setTimeout(() => this.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  }
}
