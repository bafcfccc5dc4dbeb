/**
 * Per-example answer losses in a llama.cpp child (loss-worker.ts, compiled JavaScript: run
 * `npm run build` first). Each model is validated before the child sees it; any exit of the child
 * becomes an EngineError with the tail of its stderr.
 */
import { resolve } from "node:path";
import { meanNll, type EvalExample } from "../../core/eval/metrics.js";
import { ChildRpc, childRpcText, resolveCompiledWorker, type ChildRpcText } from "../child-rpc.js";
import { validateModelFile } from "../engine/engine-process.js";

export function resolveLossWorkerPath(moduleUrl: string = import.meta.url): string {
  return resolveCompiledWorker(moduleUrl, "loss-worker.js");
}

type Req = Record<string, unknown> & { readonly op: string };

// The loss child's errors have always been terser than the engine's.
const LOSS_TEXT: ChildRpcText = {
  ...childRpcText("loss child", "llama.cpp loss"),
  startTimeout: () => "loss child did not start in time",
  crashed: (how, op) => `loss child ended (${how}) during ${op}`,
  timedOut: (op, ms) => `loss ${op} did not finish within ${ms} ms; child killed`,
  dead: () => "loss child has ended",
};

export class LossProcess {
  private constructor(private readonly rpc: ChildRpc<Req>) {}

  static async start(opts: { workerPath?: string; startTimeoutMs?: number } = {}): Promise<LossProcess> {
    const rpc = await ChildRpc.start<Req>({
      workerPath: opts.workerPath ?? resolveLossWorkerPath(),
      worker: "loss worker",
      serialization: "json",
      env: { ...process.env, NODE_LLAMA_CPP_SKIP_DOWNLOAD: "true" },
      startTimeoutMs: opts.startTimeoutMs ?? 60_000,
      text: LOSS_TEXT,
      tailOnlyDetails: true,
    });
    return new LossProcess(rpc);
  }

  async loadModel(modelPath: string, opts: { contextSize?: number; threads?: number; timeoutMs?: number } = {}): Promise<void> {
    const abs = resolve(modelPath);
    validateModelFile(abs);
    await this.rpc.request({ op: "load", modelPath: abs, contextSize: opts.contextSize ?? 256, threads: opts.threads ?? 1 }, opts.timeoutMs ?? 120_000);
  }

  /** Mean negative log-likelihood per answer token, per example (NaN for an empty answer). */
  async losses(items: readonly EvalExample[], timeoutMs = 30 * 60_000): Promise<number[]> {
    const res = await this.rpc.request<Array<{ probabilities: number[] }>>({ op: "loss", items: items.map((x) => ({ prompt: x.prompt, answer: x.answer })) }, timeoutMs);
    return res.map((r) => meanNll(r.probabilities));
  }

  dispose(graceMs = 5_000): Promise<void> {
    return this.rpc.dispose(graceMs);
  }
}
