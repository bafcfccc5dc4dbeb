/**
 * The other half of the fuzzer's contract: every accepted mutant must load in real llama.cpp.
 * Loads each one in a child process (a crash there is a finding, not a crash of ours) and runs a
 * two-token completion.
 */
import { writeFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { EngineProcess } from "../../plugin/edges/engine/engine-process.js";
import { mutantBytes, type Mutant } from "./mutator.js";

export interface LoadReport {
  loaded: number;
  failures: Array<{ ops: string[]; seed: string; error: string; crashed: boolean }>;
}

export async function loadAcceptedInLlama(mutants: Iterable<Mutant>, dir: string, max: number, onProgress?: (done: number) => void): Promise<LoadReport> {
  const report: LoadReport = { loaded: 0, failures: [] };
  let engine = await EngineProcess.start({ threads: 1, timeoutMs: 30_000 });
  let done = 0;
  try {
    for (const m of mutants) {
      if (done >= max) break;
      const path = join(dir, `accepted-${done}.gguf`);
      writeFileSync(path, mutantBytes(m));
      try {
        await engine.loadModel(path, { contextSize: 64 });
        await engine.complete(["ab"], { maxTokens: 2 });
        await engine.unloadModel();
        report.loaded++;
      } catch (e) {
        const crashed = !engine.alive;
        report.failures.push({ ops: m.ops, seed: m.seed.name, error: (e as Error).message, crashed });
        if (crashed) engine = await EngineProcess.start({ threads: 1, timeoutMs: 30_000 });
        else await engine.unloadModel().catch(() => {});
      } finally {
        rmSync(path, { force: true });
      }
      done++;
      onProgress?.(done);
    }
  } finally {
    await engine.dispose();
  }
  return report;
}
