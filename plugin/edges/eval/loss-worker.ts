/**
 * Child process that computes per-example answer losses in llama.cpp (node-llama-cpp): for each
 * {prompt, answer}, the probability of every answer token given the prompt and the answer tokens
 * before it (teacher forcing, one evaluation from an empty context, BOS as the model asks).
 * Started by loss-process.ts over IPC; llama.cpp may abort on a bad model, which the parent reports.
 */
import { getLlama, LlamaLogLevel, type Llama, type LlamaContext, type LlamaContextSequence, type LlamaModel, type Token } from "node-llama-cpp";
import { serveRequests } from "../child-rpc-worker.js";

interface LoadReq { op: "load"; id: number; modelPath: string; contextSize: number; threads: number }
interface LossReq { op: "loss"; id: number; items: Array<{ prompt: string; answer: string }> }
interface ExitReq { op: "exit"; id: number }
type Req = LoadReq | LossReq | ExitReq;

const send = serveRequests<Req, { type: "ready" }>("loss worker", handle);

let llama: Llama | undefined;
let loaded: { model: LlamaModel; context: LlamaContext; sequence: LlamaContextSequence } | undefined;

async function unload(): Promise<void> {
  const l = loaded;
  loaded = undefined;
  if (!l) return;
  await l.context.dispose();
  await l.model.dispose();
}

function split(model: LlamaModel, prompt: string, answer: string): { prompt: Token[]; answer: Token[] } {
  const p = model.tokenize(prompt, false);
  const all = model.tokenize(prompt + answer, false);
  const samePrefix = p.every((t, i) => all[i] === t);
  const a = samePrefix ? all.slice(p.length) : model.tokenize(answer, false);
  const bos = model.tokens.bos;
  return { prompt: model.tokens.shouldPrependBosToken && bos !== null ? [bos, ...p] : p, answer: a };
}

async function handle(req: Req): Promise<unknown> {
  switch (req.op) {
    case "load": {
      await unload();
      const model = await llama!.loadModel({ modelPath: req.modelPath, gpuLayers: 0 });
      const contextSize = Math.min(req.contextSize, model.trainContextSize);
      const context = await model.createContext({ contextSize, threads: req.threads, batchSize: Math.min(contextSize, 512) });
      loaded = { model, context, sequence: context.getSequence() };
      return null;
    }
    case "loss": {
      if (!loaded) throw new Error("no model is loaded");
      const out: Array<{ probabilities: number[] }> = [];
      for (const item of req.items) {
        await loaded.sequence.clearHistory();
        const { prompt, answer } = split(loaded.model, item.prompt, item.answer);
        if (answer.length === 0 || prompt.length === 0) {
          out.push({ probabilities: [] });
          continue;
        }
        // Ask for the next-token distribution after the last prompt token and every answer token but the last.
        const input = [...prompt, ...answer.slice(0, -1)];
        const first = prompt.length - 1;
        const items = input.map((t, i) => (i >= first ? ([t, { generateNext: { probabilities: true } }] as [Token, { generateNext: { probabilities: true } }]) : t));
        const res = await loaded.sequence.controlledEvaluate(items);
        const probabilities = answer.map((t, j) => res[first + j]?.next.probabilities?.get(t) ?? 0);
        out.push({ probabilities });
      }
      return out;
    }
    case "exit":
      await unload();
      await llama?.dispose();
      setImmediate(() => process.exit(0));
      return null;
  }
}

llama = await getLlama({ gpu: false, build: "never", skipDownload: true, progressLogs: false, logLevel: LlamaLogLevel.warn, logger: (level, message) => process.stderr.write(`[llama.cpp ${level}] ${message}\n`) });
send({ type: "ready" });
