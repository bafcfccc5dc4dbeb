import { afterAll, describe, expect, it } from "vitest";
import { scratchDir } from "../helpers/tmp.js";
import { loadAcceptedInLlama } from "./load-accepted.js";
import { classify, Mutator, runFuzz } from "./mutator.js";
import { buildSeeds } from "./seeds.js";

const scratch = scratchDir();
afterAll(() => scratch.cleanup());

describe("GGUF mutation fuzzer (bounded run)", () => {
  it("2,000 mutants: no crash, every rejection typed, accepted ones load in llama.cpp", async () => {
    const seeds = await buildSeeds(scratch.dir);
    // The unmutated seeds must be accepted, else every case would be a trivial rejection.
    for (const s of seeds) expect(classify({ seed: s, head: s.bytes, tailFrom: s.bytes.length, size: s.bytes.length, ops: [] }).kind).toBe("accepted");
    const rngSeed = Number(process.env.FUZZ_SEED ?? 20261126);
    const stats = runFuzz(seeds, 2000, rngSeed);
    console.log(`fuzz seed ${rngSeed}: ${stats.accepted} accepted, ${stats.rejected} rejected, classes ${JSON.stringify(stats.rejectionClasses)}`);
    expect(stats.crashSamples).toEqual([]);
    expect(stats.crashes).toBe(0);
    expect(stats.cases).toBe(2000);
    expect(stats.rejected).toBeGreaterThan(500);
    expect(stats.accepted).toBeGreaterThan(20);
    expect(Object.keys(stats.rejectionClasses).length).toBeGreaterThanOrEqual(10);
    expect(stats.slowestCaseMs).toBeLessThan(1000);
    const report = await loadAcceptedInLlama(stats.uniqueAccepted.values(), scratch.dir, 20);
    expect(report.failures).toEqual([]);
    expect(report.loaded).toBe(Math.min(20, stats.uniqueAccepted.size));
  }, 180_000);

  it("is reproducible from its seed", async () => {
    const seeds = await buildSeeds(scratch.dir);
    const a = new Mutator(5).mutate(seeds[0]!);
    const b = new Mutator(5).mutate(seeds[0]!);
    expect(a.ops).toEqual(b.ops);
    expect(Buffer.compare(Buffer.from(a.head), Buffer.from(b.head))).toBe(0);
  });
});
