/**
 * The oracle fixtures checked without llama.cpp: every file is a llama model our validator
 * accepts, and the JS reference forward pass gives the exact expected completions, with wide
 * logit margins, in every type, and the expected broken output with a skill's neurons zeroed.
 */
import { describe, expect, it } from "vitest";
import {
  ORACLE_PROMPTS,
  ORACLE_SKILLS,
  ORACLE_TYPES,
  oracleReferenceWeights,
  referenceCompletion,
} from "../../examples/fixtures/build-fixtures.js";
import { DIGIT_NEURON_BY_CHAR, LETTER_NEURON_BY_CHAR, ORACLE_DIMS, oracleContinuation } from "../../examples/fixtures/oracle-model.js";
import { validateModelFile } from "../../plugin/edges/engine/index.js";
import { readGgufHeader } from "../../plugin/edges/gguf-file.js";
import { GgmlType } from "../../plugin/core/gguf/constants.js";
import { oracleFixtures } from "./helpers.js";

describe("oracle fixture model", () => {
  it("has two disjoint skill neuron groups in layer 0", () => {
    const { letters, digits } = ORACLE_SKILLS;
    expect(letters.neurons).toHaveLength(26);
    expect(digits.neurons).toHaveLength(10);
    const all = new Set([...letters.neurons, ...digits.neurons]);
    expect(all.size).toBe(36);
    for (const n of all) expect(n >= 0 && n < ORACLE_DIMS.nFf).toBe(true);
    expect([...LETTER_NEURON_BY_CHAR].sort((a, b) => a - b)).toEqual(letters.neurons);
    expect([...DIGIT_NEURON_BY_CHAR].sort((a, b) => a - b)).toEqual(digits.neurons);
  });

  it("expected completions are the documented strings", () => {
    const byPrompt = Object.fromEntries(ORACLE_PROMPTS.map((p) => [p.prompt, p.completion]));
    expect(byPrompt).toEqual({
      abc: "defghijklmnopqrstuvw",
      xyz: "abcdefghijklmnopqrst",
      "123": "45678901234567890123",
      "789": "01234567890123456789",
    });
    expect(oracleContinuation("z", 3)).toBe("abc");
    expect(oracleContinuation("9", 3)).toBe("012");
  });

  it("writes fixtures that validate as llama models, norms F32, weights in the file's type", async () => {
    const files = await oracleFixtures();
    for (const { label, type } of ORACLE_TYPES) {
      const hp = validateModelFile(files[label]);
      expect(hp).toMatchObject({ embeddingLength: 128, feedForwardLength: 512, blockCount: 2, headCount: 4, vocabSize: 260 });
      const h = readGgufHeader(files[label]);
      for (const t of h.tensors) expect(t.type).toBe(t.ne.length === 1 ? GgmlType.F32 : type);
    }
  });

  describe.each(ORACLE_TYPES.map((t) => t.label))("reference forward pass, %s", (label) => {
    const w = oracleReferenceWeights(label);
    it("gives the exact completions with margins above 10", () => {
      for (const p of ORACLE_PROMPTS) {
        const r = referenceCompletion(w, p.prompt);
        expect(r.text).toBe(p.completion);
        expect(r.minMargin).toBeGreaterThan(10);
      }
    });
    it("breaks exactly the skill whose neurons are zeroed", () => {
      for (const skill of ["letters", "digits"] as const) {
        const tensors = new Map(w.tensors);
        for (const kind of ["ffn_gate", "ffn_up"]) {
          const name = `blk.0.${kind}.weight`;
          const m = tensors.get(name)!.slice();
          for (const n of ORACLE_SKILLS[skill].neurons) m.fill(0, n * ORACLE_DIMS.nEmbd, (n + 1) * ORACLE_DIMS.nEmbd);
          tensors.set(name, m);
        }
        const zeroed = { tensors, dims: w.dims };
        for (const p of ORACLE_PROMPTS) {
          const r = referenceCompletion(zeroed, p.prompt);
          expect(r.text).toBe(p.skill === skill ? p.brokenCompletion : p.completion);
          expect(r.minMargin).toBeGreaterThan(10);
        }
      }
    });
  });
});
