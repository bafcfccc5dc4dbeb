/** Shared by the engine tests: where fixtures live and a scratch directory on tmpfs. */
import { mkdtempSync, rmSync, statfsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureOracleFixtures } from "../../examples/fixtures/build-fixtures.js";

/** The repository's fixture cache (<root>/.cache/fixtures), shared by all test files. */
export const FIXTURE_DIR = fileURLToPath(new URL("../../.cache/fixtures", import.meta.url));

export function oracleFixtures(): ReturnType<typeof ensureOracleFixtures> {
  return ensureOracleFixtures(FIXTURE_DIR);
}

/** A fresh scratch directory, on /dev/shm when it is there (tmpfs), else the OS temp dir. */
export function scratchDir(prefix: string): { dir: string; cleanup: () => void } {
  let base = tmpdir();
  try {
    statfsSync("/dev/shm");
    base = "/dev/shm";
  } catch {
    // no /dev/shm: use the temp dir
  }
  const dir = mkdtempSync(join(base, `secneuron-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
