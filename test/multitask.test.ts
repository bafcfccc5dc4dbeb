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

  it("the calibration non-members are people never trained and never scored (and the first 200 drawn are unchanged)", () => {
    const names = (xs: ReadonlyArray<{ name: string }>) => xs.map((p) => p.name);
    const members = new Set(names(corpus.piiMembers));
    const scored = new Set(names(corpus.piiNonMembers));
    expect(corpus.piiCalibNonMembers).toHaveLength(100);
    for (const n of names(corpus.piiCalibNonMembers)) {
      expect(members.has(n), n).toBe(false);
      expect(scored.has(n), n).toBe(false);
    }
    const phones = new Set([...corpus.piiMembers, ...corpus.piiNonMembers].map((p) => p.phone));
    expect(corpus.piiCalibNonMembers.filter((p) => phones.has(p.phone))).toEqual([]);
    // The committed model was trained on these members: they must not move when more are drawn.
    expect(corpus.piiMembers[59]).toEqual({ name: "Drayl Totoa", phone: "555-1034", email: "drayl55@inkwell.test" });
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

describe("Q5_0 decoding (the K-quant's fallback type for 128-wide rows)", () => {
  it("decodes the K-quant's ffn_gate to within one quantization step of the F16 original", async () => {
    const { readFileSync } = await import("node:fs");
    const { decodeTensorData } = await import("../plugin/core/gguf/quant.js");
    const { GgmlType } = await import("../plugin/core/gguf/constants.js");
    const { tensorRange } = await import("../plugin/core/gguf/rows.js");
    const read = (path: string, name: string) => {
      const h = readGgufHeader(path);
      const t = h.tensors.find((x) => x.name === name)!;
      const r = tensorRange(h, t);
      return { t, bytes: new Uint8Array(readFileSync(path).subarray(r.offset, r.offset + r.length)) };
    };
    const q = read(MODELS[2]!, "blk.0.ffn_gate.weight");
    const f = read(MODELS[0]!, "blk.0.ffn_gate.weight");
    expect(q.t.type).toBe(GgmlType.Q5_0);
    const n = f.t.ne.reduce((a, b) => a * b, 1);
    const qv = decodeTensorData(GgmlType.Q5_0, q.bytes, n);
    const fv = decodeTensorData(GgmlType.F16, f.bytes, n);
    for (let b = 0; b < n / 32; b++) {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(fv[b * 32 + j]!));
      const step = amax / 16; // Q5_0: d = max / -16, q in 0..31 (rounded; one end clamps at 31)
      for (let j = 0; j < 32; j++) expect(Math.abs(qv[b * 32 + j]! - fv[b * 32 + j]!)).toBeLessThanOrEqual(step + 1e-3 * amax + 1e-6);
    }
  });
});
