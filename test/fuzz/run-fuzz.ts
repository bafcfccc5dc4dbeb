/**
 * `npm run fuzz [-- --cases 100000 --seed N --load 300 --json]`: the full GGUF mutation fuzz.
 * Every mutant is either rejected with a typed error or accepted; accepted ones (unique headers,
 * up to --load) are loaded in real llama.cpp. Exits non-zero on any crash or load failure.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { existsSync } from "node:fs";
import { loadAcceptedInLlama } from "./load-accepted.js";
import { runFuzz } from "./mutator.js";
import { buildSeeds } from "./seeds.js";

async function run(): Promise<number> {
  const { values } = parseArgs({ options: { cases: { type: "string", default: "100000" }, seed: { type: "string" }, load: { type: "string", default: "300" }, json: { type: "boolean" } } });
  const cases = Number(values.cases);
  const rngSeed = values.seed ? Number(values.seed) : Date.now() % 2 ** 31;
  const dir = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "secneuron-fuzz-"));
  try {
    const seeds = await buildSeeds(dir);
    const t0 = performance.now();
    const batch = 10_000;
    const total = { cases: 0, accepted: 0, rejected: 0, crashes: 0, slowestCaseMs: 0, rejectionClasses: {} as Record<string, number> };
    const accepted = new Map<string, ReturnType<typeof runFuzz>["uniqueAccepted"] extends Map<string, infer M> ? M : never>();
    const crashSamples: unknown[] = [];
    for (let done = 0, b = 0; done < cases; done += batch, b++) {
      const s = runFuzz(seeds, Math.min(batch, cases - done), rngSeed + b, 2000);
      total.cases += s.cases; total.accepted += s.accepted; total.rejected += s.rejected; total.crashes += s.crashes;
      total.slowestCaseMs = Math.max(total.slowestCaseMs, s.slowestCaseMs);
      for (const [k, v] of Object.entries(s.rejectionClasses)) total.rejectionClasses[k] = (total.rejectionClasses[k] ?? 0) + v;
      for (const [h, m] of s.uniqueAccepted) if (!accepted.has(h)) accepted.set(h, m);
      crashSamples.push(...s.crashSamples);
      if (!values.json) process.stderr.write(`\r${total.cases} cases, ${total.accepted} accepted, ${total.rejected} rejected, ${total.crashes} crashes`);
    }
    const fuzzSeconds = (performance.now() - t0) / 1000;
    if (!values.json) process.stderr.write(`\nloading up to ${values.load} of ${accepted.size} unique accepted mutants in llama.cpp…\n`);
    const load = await loadAcceptedInLlama(accepted.values(), dir, Number(values.load));
    const result = {
      seed: rngSeed, seeds: seeds.map((s) => s.name), ...total, fuzzSeconds: Number(fuzzSeconds.toFixed(1)),
      uniqueAccepted: accepted.size, loadedInLlama: load.loaded, loadFailures: load.failures.length,
      rejectionClasses: Object.fromEntries(Object.entries(total.rejectionClasses).sort((a, b) => b[1] - a[1])),
    };
    if (!values.json) {
      console.log(`\nrejection classes:`);
      for (const [k, v] of Object.entries(result.rejectionClasses)) console.log(`  ${k.padEnd(26)} ${v}`);
      for (const c of crashSamples) console.log("CRASH", JSON.stringify(c));
      for (const f of load.failures) console.log("LOAD FAILURE", JSON.stringify(f));
    }
    console.log(JSON.stringify(result));
    return total.crashes === 0 && load.failures.length === 0 ? 0 : 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

run().then((code) => { process.exitCode = code; }, (e: Error) => { console.error(e); process.exitCode = 1; });
