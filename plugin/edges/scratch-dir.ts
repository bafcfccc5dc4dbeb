/**
 * Scratch directories for model copies (ablation copies, sealed models and decrypted variants of
 * an evaluation). They hold plaintext weights, so one left behind by a killed process (SIGKILL,
 * OOM: no `finally` runs) is both wasted tmpfs memory and an unsealed copy lying around. Each
 * directory's name carries its owner's pid (`<prefix><pid>-XXXXXX`); making a new one first
 * removes those of the same prefix whose owner is gone.
 */
import { lstatSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";

const NAME = /^(\d+)-[A-Za-z0-9]{6}$/;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes `<base>/<prefix><pid>-XXXXXX` directories owned by this user whose process no longer
 * runs; returns their paths. Anything else under `base` is left alone.
 */
export function sweepStaleScratch(base: string, prefix: string): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(base);
  } catch {
    return removed;
  }
  const uid = process.getuid?.();
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = NAME.exec(name.slice(prefix.length));
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || alive(pid)) continue;
    const path = join(base, name);
    try {
      const st = lstatSync(path);
      if (!st.isDirectory() || (uid !== undefined && st.uid !== uid)) continue;
      rmSync(path, { recursive: true, force: true });
      removed.push(path);
    } catch {
      // Raced with another sweeper or not ours to remove: leave it.
    }
  }
  return removed;
}

/** A fresh scratch directory `<base>/<prefix><pid>-XXXXXX`, after sweeping dead owners' ones. */
export function makeScratchDir(base: string, prefix: string): string {
  sweepStaleScratch(base, prefix);
  return mkdtempSync(join(base, `${prefix}${process.pid}-`));
}
