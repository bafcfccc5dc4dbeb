import { openSync, writeSync, closeSync } from "node:fs";
import { randomFillSync } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GgmlType, ggmlTypeName } from "../../plugin/core/gguf/constants.js";
import { rowRange } from "../../plugin/core/gguf/rows.js";
import { readGgufHeader } from "../../plugin/edges/gguf-file.js";
import { isFfnNeuronTensor, scanGguf } from "../../plugin/edges/scan.js";
import { scanCommand } from "../../plugin/cli/scan.js";
import type { CliIo } from "../../plugin/cli/args.js";
import { writeRandomLlamaModel } from "../../examples/random-model/random-model.js";
import { ensureOracleFixtures } from "../../examples/fixtures/build-fixtures.js";
import { scratchDir } from "../helpers/tmp.js";

const scratch = scratchDir("secneuron-detect-");
// n_embd 1024: Q8_0/Q4_0 rows of 32 blocks, past the short-row quantizer-invariant tier (the
// generator writes uniformly random quants, which no real quantizer produces).
const DIMS = { nEmbd: 1024, nFf: 1024, nHead: 8, nHeadKv: 8, nLayer: 2, contextLength: 128 };
const TYPES = [GgmlType.F16, GgmlType.Q8_0, GgmlType.Q4_0] as const;
const models: Record<string, string> = {};

beforeAll(async () => {
  for (const type of TYPES) {
    const p = join(scratch.dir, `${ggmlTypeName(type)}.gguf`);
    await writeRandomLlamaModel(p, { type, dims: DIMS, seed: 11 + type });
    models[type] = p;
  }
});
afterAll(() => scratch.cleanup());

function capture(): CliIo & { stdout: string } {
  const io = { stdout: "", isTTY: false, out(t: string) { io.stdout += `${t}\n`; }, err() {} };
  return io;
}

describe("scanGguf", () => {
  it("finds no encrypted row in any FFN row of the five oracle fixtures", async () => {
    const paths = await ensureOracleFixtures();
    for (const [label, path] of Object.entries(paths)) {
      const r = await scanGguf(path);
      expect(r.rowsScanned, label).toBe(2 * 2 * 512);
      expect(r.encrypted, label).toEqual([]);
      const all = await scanGguf(path, { allTensors: true });
      expect(all.encrypted, `${label} all tensors`).toEqual([]);
    }
  });

  it("finds no encrypted row in generated random-weight models (F16, Q8_0, Q4_0), all 2-D tensors", async () => {
    for (const type of TYPES) {
      const r = await scanGguf(models[type]!, { allTensors: true });
      expect(r.rowsScanned).toBeGreaterThan(4000);
      expect(r.encrypted, ggmlTypeName(type)).toEqual([]);
      expect(r.zeroed).toBe(0);
    }
  });

  it("finds exactly the rows overwritten with random bytes, and counts zeroed rows", async () => {
    for (const type of TYPES) {
      const src = models[type]!;
      const path = join(scratch.dir, `tampered-${ggmlTypeName(type)}.gguf`);
      const { copyFileSync } = await import("node:fs");
      copyFileSync(src, path);
      const h = readGgufHeader(path);
      const ffn = h.tensors.filter(isFfnNeuronTensor);
      const want: Array<{ tensor: string; row: number }> = [];
      const fd = openSync(path, "r+");
      try {
        for (const t of ffn) {
          for (const row of [0, 7, 100, 1023]) {
            if (t.name.includes("blk.1.ffn_up") && row === 7) continue;
            const { offset, length } = rowRange(h, t, row);
            writeSync(fd, randomFillSync(new Uint8Array(length)), 0, length, offset);
            want.push({ tensor: t.name, row });
          }
          const z = rowRange(h, t, 50);
          writeSync(fd, new Uint8Array(z.length), 0, z.length, z.offset);
        }
      } finally {
        closeSync(fd);
      }
      let progress = 0;
      const r = await scanGguf(path, { chunkBytes: 100_000, onProgress: (d) => { progress = d; } });
      const key = (e: { tensor: string; row: number }): string => `${e.tensor}#${e.row}`;
      expect(r.encrypted.map(key).sort()).toEqual(want.map(key).sort());
      expect(r.zeroed).toBe(ffn.length);
      expect(r.rowsScanned).toBe(ffn.length * 1024);
      expect(progress).toBe(r.bytesScanned);
    }
  });

  it("secneuron scan prints per-tensor counts and row ids (text and JSON)", async () => {
    const path = join(scratch.dir, "tampered-Q8_0.gguf");
    const io = capture();
    expect(await scanCommand.run({ json: true }, [path], io)).toBe(0);
    const j = JSON.parse(io.stdout);
    expect(j.encryptedRows).toBe(15);
    expect(j.zeroedRows).toBe(4);
    expect(j.tensors.find((t: { tensor: string }) => t.tensor === "blk.0.ffn_gate.weight").firstEncryptedRows).toEqual([0, 7, 100, 1023]);
    const io2 = capture();
    expect(await scanCommand.run({ "all-tensors": true, rows: "2" }, [path], io2)).toBe(0);
    expect(io2.stdout).toMatch(/15 rows look like ciphertext/);
    expect(io2.stdout).toMatch(/blk\.0\.ffn_gate\.weight .* rows 0, 7, …/);
    await expect(scanCommand.run({}, [], capture())).rejects.toThrow(/exactly one file/);
  });
});

describe("generated random models look like real quantized weights", () => {
  it("short Q8_0 and Q4_0 rows keep the reference quantizers' invariants", async () => {
    const { classifyRow } = await import("../../plugin/core/detect/classify.js");
    const { fillRandomRows, Xoshiro128 } = await import("../../examples/random-model/random-model.js");
    const { GgmlType } = await import("../../plugin/core/gguf/constants.js");
    const rng = new Xoshiro128(11);
    for (const [type, bytesPerBlock] of [[GgmlType.Q8_0, 34], [GgmlType.Q4_0, 18]] as const) {
      for (const blocks of [1, 2, 4, 8]) {
        for (let k = 0; k < 200; k++) {
          const row = new Uint8Array(blocks * bytesPerBlock);
          fillRandomRows(type, row, rng);
          expect(classifyRow(type, row).encrypted, `type ${type}, ${blocks} blocks`).toBe(false);
        }
      }
    }
  });
});
