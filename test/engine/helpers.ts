/** Shared by the engine tests: where fixtures live and a scratch directory on tmpfs. */
import { fileURLToPath } from "node:url";
import { ensureOracleFixtures } from "../../examples/fixtures/build-fixtures.js";
import { scratchDir as tmpScratchDir } from "../helpers/tmp.js";

/** The repository's fixture cache (<root>/.cache/fixtures), shared by all test files. */
export const FIXTURE_DIR = fileURLToPath(new URL("../../.cache/fixtures", import.meta.url));

export function oracleFixtures(): ReturnType<typeof ensureOracleFixtures> {
  return ensureOracleFixtures(FIXTURE_DIR);
}

/** A fresh scratch directory, on /dev/shm when it is there (tmpfs), else the OS temp dir. */
export function scratchDir(prefix: string): { dir: string; cleanup: () => void } {
  return tmpScratchDir(`secneuron-${prefix}-`);
}
