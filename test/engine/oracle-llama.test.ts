/**
 * The oracle fixtures in real llama.cpp (node-llama-cpp in a child process, one child per type,
 * threads 1): exact greedy completions in every type, and zeroing one skill's gate/up rows
 * breaks exactly that skill while the other stays exact.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { ORACLE_MAX_TOKENS, ORACLE_PROMPTS, ORACLE_SKILLS, ORACLE_TYPES, type OracleTypeLabel } from "../../examples/fixtures/build-fixtures.js";
import { writeWithNeuronsZeroed } from "../../examples/fixtures/zero-neurons.js";
import { EngineProcess } from "../../plugin/edges/engine/index.js";
import { oracleFixtures, scratchDir } from "./helpers.js";

const prompts = ORACLE_PROMPTS.map((p) => p.prompt);
const scratch = scratchDir("engine-oracle");
let files: Record<OracleTypeLabel, string>;

beforeAll(async () => {
  files = await oracleFixtures();
});
afterAll(() => scratch.cleanup());

describe.each(ORACLE_TYPES.map((t) => t.label))("oracle-%s.gguf in llama.cpp", (label) => {
  let engine: EngineProcess;
  beforeAll(async () => {
    engine = await EngineProcess.start({ threads: 1 });
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  it("completes every prompt exactly (greedy, deterministic)", async () => {
    const info = await engine.loadModel(files[label]);
    expect(info.vocabularyType).toBe("spm");
    expect(await engine.tokenize("abc")).toEqual([100, 101, 102]);
    const out = await engine.complete(prompts, { maxTokens: ORACLE_MAX_TOKENS });
    expect(out).toEqual(ORACLE_PROMPTS.map((p) => p.completion));
    // Same answers again, in reverse order: no state leaks between prompts.
    const again = await engine.complete([...prompts].reverse(), { maxTokens: ORACLE_MAX_TOKENS });
    expect(again).toEqual(ORACLE_PROMPTS.map((p) => p.completion).reverse());
  });

  it.each(["letters", "digits"] as const)("zeroing the %s neurons breaks only that skill", async (skill) => {
    const variant = join(scratch.dir, `oracle-${label}-no-${skill}.gguf`);
    await writeWithNeuronsZeroed(files[label], variant, [ORACLE_SKILLS[skill]]);
    await engine.loadModel(variant);
    const out = await engine.complete(prompts, { maxTokens: ORACLE_MAX_TOKENS });
    ORACLE_PROMPTS.forEach((p, i) => {
      if (p.skill === skill) {
        expect(out[i]).not.toBe(p.completion);
        expect(out[i]).toBe(p.brokenCompletion);
      } else {
        expect(out[i]).toBe(p.completion);
      }
    });
  });
});
