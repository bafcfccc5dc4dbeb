/**
 * The committed multi-task model: the corpus regenerates from its seed, and the F16, Q8_0 and
 * K-quant GGUFs score >= 90% exact match on a sample of every task's held-out prompts in real
 * llama.cpp (the full held-out figures are in examples/multitask/README.md).
 */
import { describe, expect, it } from "vitest";
import { buildCorpus, TASKS } from "../examples/multitask/corpus.js";
import { scoreTask } from "../examples/multitask/eval-plain.js";
import { readGgufHeader } from "../plugin/edges/gguf-file.js";
import { validateLlamaModel } from "../plugin/core/gguf/llama-check.js";

const MODELS = ["f16", "q8_0", "q4_k_m"].map((t) => new URL(`../examples/multitask/models/multitask-${t}.gguf`, import.meta.url).pathname);

describe("the multi-task model", () => {
  const corpus = buildCorpus(1);

  it("the corpus is deterministic and its held-out prompts never appear in training", () => {
    const again = buildCorpus(1);
    expect(JSON.stringify(again.heldout)).toBe(JSON.stringify(corpus.heldout));
    for (const t of TASKS) {
      if (t === "pii") continue; // PII recall is asked on the memorised records themselves
      const train = new Set(corpus.train[t].map((x) => x.prompt));
      expect(corpus.heldout[t].filter((x) => train.has(x.prompt))).toEqual([]);
    }
  });

  for (const path of MODELS) {
    it(`${path.split("/").pop()} passes validation and scores >= 90% on every task (25 held-out each)`, async () => {
      expect(validateLlamaModel(readGgufHeader(path)).feedForwardLength).toBe(768);
      for (const task of TASKS) {
        const { score } = await scoreTask(path, corpus.heldout[task].slice(0, 25));
        expect(score.accuracy, `${task}`).toBeGreaterThanOrEqual(0.9);
      }
    }, 120_000);
  }
});
