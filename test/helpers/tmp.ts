/** Per-test scratch directories on tmpfs (/dev/shm when present), removed afterwards. */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export function tmpfsRoot(): string {
  return existsSync("/dev/shm") ? "/dev/shm" : tmpdir();
}

export function scratchDir(prefix = "secneuron-test-"): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpfsRoot(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
