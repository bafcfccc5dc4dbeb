import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { GgmlType } from "../../plugin/core/gguf/constants.js";
import { readGgufHeader } from "../../plugin/edges/gguf-file.js";
import { ensureOracleFixtures } from "../../examples/fixtures/build-fixtures.js";
import { writeWithNeuronsZeroed } from "../../examples/fixtures/zero-neurons.js";
import { ORACLE_SKILLS } from "../../examples/fixtures/oracle-model.js";
import { writeRandomLlamaModel } from "../../examples/random-model/random-model.js";
import { hfDisagreements } from "../helpers/hf-crosscheck.js";
import { scratchDir } from "../helpers/tmp.js";

const scratch = scratchDir();
afterAll(() => scratch.cleanup());

describe("@huggingface/gguf agrees with our reader on every file we write", () => {
  it("oracle fixtures (all five types) and a rewritten one", async () => {
    const files = await ensureOracleFixtures(join(scratch.dir, "oracle"));
    expect(Object.keys(files).sort()).toEqual(["bf16", "f16", "f32", "q4_0", "q8_0"]);
    for (const path of Object.values(files)) expect(await hfDisagreements(path, readGgufHeader(path)), path).toEqual([]);
    const zeroed = join(scratch.dir, "zeroed.gguf");
    await writeWithNeuronsZeroed(files.q4_0, zeroed, [ORACLE_SKILLS.letters]);
    expect(await hfDisagreements(zeroed, readGgufHeader(zeroed))).toEqual([]);
  });

  it("random models in F16, Q8_0 and Q4_0", async () => {
    for (const type of [GgmlType.F16, GgmlType.Q8_0, GgmlType.Q4_0]) {
      const path = join(scratch.dir, `r${type}.gguf`);
      await writeRandomLlamaModel(path, { type, dims: { nEmbd: 128, nFf: 256, nHead: 4, nHeadKv: 4, nLayer: 2, contextLength: 64 } });
      expect(await hfDisagreements(path, readGgufHeader(path))).toEqual([]);
    }
  });
});
