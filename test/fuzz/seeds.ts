/** Seed files for the fuzzer: the five oracle fixtures and small random llama models. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { GgmlType } from "../../plugin/core/gguf/constants.js";
import { writeRandomLlamaModel } from "../../examples/random-model/random-model.js";
import { ensureOracleFixtures } from "../../examples/fixtures/build-fixtures.js";
import { makeSeed, type Seed } from "./mutator.js";

export async function buildSeeds(dir: string): Promise<Seed[]> {
  const seeds: Seed[] = [];
  const oracle = await ensureOracleFixtures(join(dir, "oracle"));
  for (const [label, path] of Object.entries(oracle)) seeds.push(makeSeed(`oracle-${label}`, readFileSync(path)));
  const dims = { nEmbd: 64, nFf: 128, nHead: 4, nHeadKv: 2, nLayer: 2, contextLength: 128 };
  for (const [name, type] of [["f16", GgmlType.F16], ["q8_0", GgmlType.Q8_0], ["q4_0", GgmlType.Q4_0]] as const) {
    const path = join(dir, `seed-${name}.gguf`);
    await writeRandomLlamaModel(path, { type, dims, seed: 7 });
    seeds.push(makeSeed(`random-${name}`, readFileSync(path)));
  }
  return seeds;
}
