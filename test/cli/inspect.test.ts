import { execFileSync, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GgmlType } from "../../plugin/core/gguf/constants.js";
import { main } from "../../plugin/cli/main.js";
import type { CliIo } from "../../plugin/cli/args.js";
import { writeRandomLlamaModel } from "../../examples/random-model/random-model.js";
import { scratchDir } from "../helpers/tmp.js";

const scratch = scratchDir();
const model = join(scratch.dir, "m.gguf");
const BIN = new URL("../../bin/secneuron.js", import.meta.url).pathname;

function capture(): CliIo & { stdout: string; stderr: string } {
  const io = { stdout: "", stderr: "", isTTY: false, out(t: string) { io.stdout += `${t}\n`; }, err(t: string) { io.stderr += `${t}\n`; } };
  return io;
}

beforeAll(async () => {
  await writeRandomLlamaModel(model, { type: GgmlType.Q4_0, dims: { nEmbd: 64, nFf: 160, nHead: 4, nHeadKv: 4, nLayer: 3, contextLength: 128 } });
});
afterAll(() => scratch.cleanup());

describe("secneuron inspect", () => {
  it("prints JSON with hyperparameters, FFN neurons per layer and the tensor table", async () => {
    const io = capture();
    expect(await main(["inspect", model, "--json", "--digest"], io)).toBe(0);
    const j = JSON.parse(io.stdout);
    expect(j.architecture).toBe("llama");
    expect(j.hyperparams).toMatchObject({ embeddingLength: 64, feedForwardLength: 160, blockCount: 3 });
    expect(j.ffnNeuronsPerLayer).toEqual([160, 160, 160]);
    expect(j.tensorCount).toBe(3 * 9 + 3);
    expect(j.tensors[0]).toMatchObject({ name: "token_embd.weight", type: "Q4_0", shape: [64, 260] });
    expect(j.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(j.llamaCheck).toBeNull();
  });

  it("prints a readable summary", async () => {
    const io = capture();
    expect(await main(["inspect", model], io)).toBe(0);
    expect(io.stdout).toMatch(/llama\.cpp\s+loadable/);
    expect(io.stdout).toMatch(/ffn neurons\s+480 total/);
  });

  it("gives typed errors and exit codes for bad input", async () => {
    const bad = join(scratch.dir, "bad.gguf");
    writeFileSync(bad, "GGUF\x03\x00\x00\x00");
    let io = capture();
    expect(await main(["inspect", bad, "--json"], io)).toBe(1);
    expect(JSON.parse(io.stdout).error.code).toBe("GGUF_TRUNCATED");
    io = capture();
    expect(await main(["inspect", join(scratch.dir, "missing.gguf")], io)).toBe(1);
    expect(io.stderr).toMatch(/cannot open/);
    io = capture();
    expect(await main(["inspect"], io)).toBe(2);
    io = capture();
    expect(await main(["inspect", model, "--bogus"], io)).toBe(2);
    expect(io.stderr).toMatch(/Unknown option '--bogus'/);
    io = capture();
    expect(await main(["frobnicate"], io)).toBe(2);
    io = capture();
    expect(await main(["inspect", "--help"], io)).toBe(0);
    expect(io.stdout).toMatch(/Usage: secneuron inspect/);
  });

  it("runs as the installed binary", () => {
    const out = execFileSync(process.execPath, [BIN, "inspect", model, "--json"], { encoding: "utf8" });
    expect(JSON.parse(out).hyperparams.headCount).toBe(4);
    const r = spawnSync(process.execPath, [BIN, "inspect", "/nonexistent.gguf"], { encoding: "utf8" });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/GGUF_OPEN_FAILED/);
  });
});
