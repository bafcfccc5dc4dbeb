import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeScratchDir, sweepStaleScratch } from "../plugin/edges/scratch-dir.js";

const PREFIX = "secneuron-test-";

describe("scratch directories", () => {
  let base: string;
  beforeEach(() => {
    base = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : "/tmp", "scratch-test-"));
  });
  afterEach(() => rmSync(base, { recursive: true, force: true }));

  it("removes a killed owner's directory (with its model copy) and keeps live owners' and foreign names", async () => {
    const dead = spawnSync("true").pid!; // exited: its pid names a dead owner
    const sleeper = spawn("sleep", ["30"]);
    try {
      const deadDir = join(base, `${PREFIX}${dead}-AbC123`);
      mkdirSync(deadDir);
      writeFileSync(join(deadDir, "model.gguf"), "plaintext weights");
      const liveOther = join(base, `${PREFIX}${sleeper.pid}-xyz789`);
      mkdirSync(liveOther);
      const mine = join(base, `${PREFIX}${process.pid}-qwerty`);
      mkdirSync(mine);
      const notOurs = [join(base, `${PREFIX}notes`), join(base, `other-${dead}-AbC123`), join(base, `${PREFIX}${dead}-toolongname`)];
      for (const d of notOurs) mkdirSync(d);
      const deadFile = join(base, `${PREFIX}${dead}-file00`);
      writeFileSync(deadFile, "a file, not a scratch directory");

      expect(sweepStaleScratch(base, PREFIX)).toEqual([deadDir]);
      expect(existsSync(deadDir)).toBe(false);
      for (const kept of [liveOther, mine, deadFile, ...notOurs]) expect(existsSync(kept)).toBe(true);
    } finally {
      sleeper.kill();
    }
  });

  it("makeScratchDir sweeps first, then names the new directory after this process", () => {
    const dead = spawnSync("true").pid!;
    mkdirSync(join(base, `${PREFIX}${dead}-AAAAAA`));
    const dir = makeScratchDir(base, PREFIX);
    expect(basename(dir)).toMatch(new RegExp(`^${PREFIX}${process.pid}-[A-Za-z0-9]{6}$`));
    expect(readdirSync(base)).toEqual([basename(dir)]);
    // A second directory of the same live process is not swept.
    const second = makeScratchDir(base, PREFIX);
    expect(readdirSync(base).sort()).toEqual([basename(dir), basename(second)].sort());
  });

  it("a missing base directory is not an error for the sweep", () => {
    expect(sweepStaleScratch(join(base, "missing"), PREFIX)).toEqual([]);
  });
});
