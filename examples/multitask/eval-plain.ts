/**
 * Exact-match accuracy per task of the multi-task model in real llama.cpp (greedy, one thread,
 * each prompt from an empty context; generation stops at EOS, which the model emits right after
 * the answer). Prints one line per model and task, then one JSON line with everything.
 *
 * CLI: node dist/examples/multitask/eval-plain.js [--data dir] [--split heldout|calib]
 *        [--models examples/multitask/models/multitask-f16.gguf,examples/multitask/models/multitask-q8_0.gguf]
 *        [--limit N]
 */
import { existsSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { completeInChild } from "../../plugin/edges/engine/engine-process.js";
import { intFlag, strictArgs, usageError } from "./cli-args.js";
import { TASKS, type Example, type TaskName } from "./corpus.js";

export function readExamples(dir: string, split: string, task: TaskName, limit?: number): Example[] {
  const xs = readFileSync(join(dir, `${split}-${task}.jsonl`), "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Example);
  return limit ? xs.slice(0, limit) : xs;
}

export interface TaskScore {
  readonly correct: number;
  readonly total: number;
  readonly accuracy: number;
}

/** Greedy exact match of every example's answer (llama.cpp output compared byte for byte). */
export async function scoreTask(modelPath: string, xs: readonly Example[], threads = 1): Promise<{ score: TaskScore; outputs: string[] }> {
  const maxTokens = Math.max(...xs.map((x) => Buffer.byteLength(x.answer))) + 2;
  const outputs = await completeInChild({ modelPath, prompts: xs.map((x) => x.prompt), maxTokens, threads, timeoutMs: 900_000 });
  const correct = outputs.filter((o, i) => o === xs[i]!.answer).length;
  return { score: { correct, total: xs.length, accuracy: correct / xs.length }, outputs };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = strictArgs(
    {
      data: { type: "string", default: "examples/multitask/data" },
      split: { type: "string", default: "heldout" },
      models: { type: "string", default: "examples/multitask/models/multitask-f16.gguf,examples/multitask/models/multitask-q8_0.gguf" },
      limit: { type: "string" },
    },
    "Usage: node dist/examples/multitask/eval-plain.js [--data dir] [--split heldout|calib] [--models a.gguf,b.gguf] [--limit N]",
  );
  const dir = String(args.data);
  const split = String(args.split);
  if (split !== "heldout" && split !== "calib") usageError(`--split: expected heldout or calib, found ${JSON.stringify(split)}`);
  const limit = intFlag(args, "limit", 1);
  const models = String(args.models).split(",");
  const result: Record<string, Record<string, TaskScore>> = {};
  let allPass = true;
  for (const m of models) {
    if (!existsSync(m)) throw new Error(`no model ${m}: run npm run multitask:export`);
    result[basename(m)] = {};
    for (const task of TASKS) {
      const xs = readExamples(dir, split, task, limit);
      const t0 = Date.now();
      const { score, outputs } = await scoreTask(m, xs);
      result[basename(m)]![task] = score;
      if (score.accuracy < 0.9) allPass = false;
      const miss = xs.findIndex((x, i) => outputs[i] !== x.answer);
      const example = miss >= 0 ? `  e.g. ${JSON.stringify(xs[miss]!.prompt)} -> ${JSON.stringify(outputs[miss])} (want ${JSON.stringify(xs[miss]!.answer)})` : "";
      console.log(`${basename(m)} ${task.padEnd(6)} ${(score.accuracy * 100).toFixed(1).padStart(5)}% (${score.correct}/${score.total}) ${Date.now() - t0} ms${example}`);
    }
  }
  console.log(JSON.stringify({ split, data: dir, target: 0.9, allPass, result }));
}
