/**
 * Per-example answer losses in a llama.cpp child (loss-worker.ts, compiled JavaScript: run
 * `npm run build` first). Each model is validated before the child sees it; any exit of the child
 * becomes an EngineError with the tail of its stderr.
 */
import { fork, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { EngineError } from "../../errors.js";
import { meanNll, type EvalExample } from "../../core/eval/metrics.js";
import { validateModelFile } from "../engine/engine-process.js";

export function resolveLossWorkerPath(moduleUrl: string = import.meta.url): string {
  const here = fileURLToPath(moduleUrl);
  const dir = dirname(here);
  if (here.endsWith(".ts")) {
    const root = resolve(dir, "..", "..", "..");
    return join(root, "dist", relative(root, dir), "loss-worker.js");
  }
  return join(dir, "loss-worker.js");
}

interface Pending { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout; op: string }

export class LossProcess {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private tail = "";
  private exited = false;

  private constructor(private readonly child: ChildProcess) {}

  static async start(opts: { workerPath?: string; startTimeoutMs?: number } = {}): Promise<LossProcess> {
    const workerPath = opts.workerPath ?? resolveLossWorkerPath();
    if (!existsSync(workerPath)) throw new EngineError("ENGINE_WORKER_MISSING", `loss worker ${workerPath} does not exist: run \`npm run build\` first`, { workerPath });
    const child = fork(workerPath, [], { execArgv: [], stdio: ["ignore", "pipe", "pipe", "ipc"], serialization: "json", env: { ...process.env, NODE_LLAMA_CPP_SKIP_DOWNLOAD: "true" } });
    const p = new LossProcess(child);
    const keep = (c: Buffer): void => {
      p.tail = (p.tail + c.toString("utf8")).slice(-16_384);
    };
    child.stderr!.on("data", keep);
    child.stdout!.on("data", keep);
    await new Promise<void>((res, rej) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        rej(new EngineError("ENGINE_START_TIMEOUT", "loss child did not start in time", { stderr: p.tail }));
      }, opts.startTimeoutMs ?? 60_000);
      child.on("message", (raw: unknown) => {
        const m = raw as { type: string; id: number; ok?: boolean; result?: unknown; error?: { message: string } };
        if (m.type === "ready") {
          clearTimeout(timer);
          res();
          return;
        }
        const q = p.pending.get(m.id);
        if (!q) return;
        p.pending.delete(m.id);
        clearTimeout(q.timer);
        if (m.ok) q.resolve(m.result);
        else q.reject(new EngineError("ENGINE_REQUEST_FAILED", `llama.cpp loss ${q.op} failed: ${m.error?.message}`, { stderr: p.tail }));
      });
      child.on("exit", (code, signal) => {
        p.exited = true;
        clearTimeout(timer);
        const how = signal ? `signal ${signal}` : `exit code ${code}`;
        rej(new EngineError("ENGINE_CRASHED", `loss child ended during start-up (${how})`, { stderr: p.tail }));
        for (const [id, q] of p.pending) {
          p.pending.delete(id);
          clearTimeout(q.timer);
          q.reject(new EngineError("ENGINE_CRASHED", `loss child ended (${how}) during ${q.op}`, { stderr: p.tail }));
        }
      });
    });
    return p;
  }

  private request<T>(req: Record<string, unknown> & { op: string }, timeoutMs: number): Promise<T> {
    if (this.exited) return Promise.reject(new EngineError("ENGINE_DEAD", "loss child has ended"));
    const id = this.nextId++;
    return new Promise<T>((res, rej) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.child.kill("SIGKILL");
        rej(new EngineError("ENGINE_TIMEOUT", `loss ${req.op} did not finish within ${timeoutMs} ms; child killed`, { stderr: this.tail }));
      }, timeoutMs);
      this.pending.set(id, { resolve: res as (v: unknown) => void, reject: rej, timer, op: req.op });
      this.child.send({ ...req, id });
    });
  }

  async loadModel(modelPath: string, opts: { contextSize?: number; threads?: number; timeoutMs?: number } = {}): Promise<void> {
    const abs = resolve(modelPath);
    validateModelFile(abs);
    await this.request({ op: "load", modelPath: abs, contextSize: opts.contextSize ?? 256, threads: opts.threads ?? 1 }, opts.timeoutMs ?? 120_000);
  }

  /** Mean negative log-likelihood per answer token, per example (NaN for an empty answer). */
  async losses(items: readonly EvalExample[], timeoutMs = 30 * 60_000): Promise<number[]> {
    const res = await this.request<Array<{ probabilities: number[] }>>({ op: "loss", items: items.map((x) => ({ prompt: x.prompt, answer: x.answer })) }, timeoutMs);
    return res.map((r) => meanNll(r.probabilities));
  }

  async dispose(graceMs = 5_000): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((r) => this.child.once("exit", () => r()));
    this.request({ op: "exit" }, graceMs).catch(() => {});
    const t = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    await done;
    clearTimeout(t);
  }
}
