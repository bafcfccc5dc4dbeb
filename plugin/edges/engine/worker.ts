/**
 * The llama.cpp child process. Started by engine-process.ts with an IPC channel; it loads
 * node-llama-cpp (CPU only, prebuilt binaries, never builds), then serves requests one at a time:
 * load a model, greedy completions, tokenize, unload, exit. llama.cpp may abort this process on
 * a malformed model: that is the point of running it here, the parent reports the exit.
 *
 * It never validates paths itself: the parent validates every file before sending it.
 */
import {
  getLlama,
  LlamaCompletion,
  LlamaLogLevel,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaModel,
} from "node-llama-cpp";
import { serveRequests } from "../child-rpc-worker.js";
import type { EngineMessage, EngineRequest, LoadedModelInfo } from "./protocol.js";

const send = serveRequests<EngineRequest, EngineMessage>("engine worker", handle);

interface Loaded {
  readonly model: LlamaModel;
  readonly context: LlamaContext;
  readonly sequence: LlamaContextSequence;
  readonly completion: LlamaCompletion;
}

let llama: Llama | undefined;
let loaded: Loaded | undefined;

async function unload(): Promise<void> {
  const l = loaded;
  loaded = undefined;
  if (!l) return;
  l.completion.dispose();
  await l.context.dispose();
  await l.model.dispose();
}

async function handle(req: EngineRequest): Promise<unknown> {
  switch (req.op) {
    case "load": {
      await unload();
      const t0 = performance.now();
      const model = await llama!.loadModel({ modelPath: req.modelPath, useMmap: req.useMmap, gpuLayers: 0 });
      try {
        const context = await model.createContext({
          contextSize: Math.min(req.contextSize, model.trainContextSize),
          threads: req.threads,
          batchSize: Math.min(req.contextSize, model.trainContextSize, 512),
        });
        const sequence = context.getSequence();
        const completion = new LlamaCompletion({ contextSequence: sequence });
        loaded = { model, context, sequence, completion };
        const info: LoadedModelInfo = {
          loadMs: performance.now() - t0,
          trainContextSize: model.trainContextSize,
          contextSize: context.contextSize,
          vocabularyType: String(model.vocabularyType),
          size: model.size,
        };
        return info;
      } catch (e) {
        await model.dispose();
        throw e;
      }
    }
    case "complete": {
      if (!loaded) throw new Error("no model is loaded");
      const out: string[] = [];
      for (const prompt of req.prompts) {
        // Each prompt starts from an empty context: results never depend on earlier prompts.
        await loaded.sequence.clearHistory();
        out.push(
          await loaded.completion.generateCompletion(prompt, {
            maxTokens: req.maxTokens,
            temperature: 0,
            repeatPenalty: false,
          }),
        );
      }
      return out;
    }
    case "tokenize": {
      if (!loaded) throw new Error("no model is loaded");
      return Array.from(loaded.model.tokenize(req.text, false), Number);
    }
    case "unload":
      await unload();
      return null;
    case "exit":
      await unload();
      await llama?.dispose();
      setImmediate(() => process.exit(0));
      return null;
  }
}

const t0 = performance.now();
llama = await getLlama({
  gpu: false,
  build: "never",
  skipDownload: true,
  progressLogs: false,
  logLevel: LlamaLogLevel.warn,
  logger: (level, message) => process.stderr.write(`[llama.cpp ${level}] ${message}\n`),
});
send({ type: "ready", startMs: performance.now() - t0 });
