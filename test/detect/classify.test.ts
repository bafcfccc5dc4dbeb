import { describe, expect, it } from "vitest";
import { GgmlType } from "../../plugin/core/gguf/constants.js";
import { classifyRow, chiSquareBytes } from "../../plugin/core/detect/index.js";
import { encodedRealisticRows, forEachRandomRow, randomCells } from "./corpus.js";
import { decidable } from "./helpers.js";

describe("classifyRow", () => {
  it("has no false positive on synthetic realistic rows (F32/F16/BF16/Q8_0/Q4_0, 6 sizes)", () => {
    const fp: string[] = [];
    let n = 0;
    for (const r of encodedRealisticRows()) {
      n++;
      const v = classifyRow(r.type, r.bytes);
      if (v.encrypted) fp.push(`${r.label}: ${v.reason}`);
    }
    expect(n).toBeGreaterThan(3000);
    expect(fp).toEqual([]);
  });

  it("has no false negative on 100,000 random rows over every decidable (type, row size) cell", () => {
    const cells = randomCells().filter(decidable);
    const per = Math.ceil(100_000 / cells.length);
    const misses: string[] = [];
    let total = 0;
    for (const c of cells) {
      let m = 0;
      forEachRandomRow(c.rowBytes, per, (row) => { total++; if (!classifyRow(c.type, row).encrypted) m++; });
      if (m) misses.push(`${c.label}: ${m}/${per}`);
    }
    expect(total).toBeGreaterThanOrEqual(100_000);
    expect(misses).toEqual([]);
  });

  it("flags most random rows even where evidence is thin (1-16 blocks)", () => {
    for (const c of randomCells().filter((x) => !decidable(x))) {
      let hit = 0;
      forEachRandomRow(c.rowBytes, 400, (row) => { if (classifyRow(c.type, row).encrypted) hit++; });
      expect(hit, c.label).toBeGreaterThan(0);
    }
  });

  it("reports all-zero rows as zeroed, not encrypted", () => {
    for (const [type, len] of [[GgmlType.F16, 256], [GgmlType.F32, 512], [GgmlType.Q8_0, 136], [GgmlType.Q4_K, 144], [GgmlType.I8, 64]] as const) {
      const v = classifyRow(type, new Uint8Array(len));
      expect(v.state).toBe("zeroed");
      expect(v.encrypted).toBe(false);
    }
  });

  it("catches NaN/huge floats and negative Q8_0 scales; accepts unaligned views", () => {
    const f16 = new Uint16Array(4096).fill(0x2000); // 2^-7
    for (let i = 0; i < 1100; i++) f16[i] = 0x7c00; // Inf
    expect(classifyRow(GgmlType.F16, new Uint8Array(f16.buffer)).encrypted).toBe(true);
    const q8 = new Uint8Array(34 * 64);
    for (let b = 0; b < 64; b++) { q8[b * 34] = 0x00; q8[b * 34 + 1] = 0x90; q8[b * 34 + 2] = 0x7f; } // d = -2^-11
    expect(classifyRow(GgmlType.Q8_0, q8).encrypted).toBe(true);
    const buf = new Uint8Array(8193);
    buf.set(new Uint8Array(new Uint16Array(4096).fill(0x2000).buffer), 1);
    expect(classifyRow(GgmlType.F16, buf.subarray(1)).encrypted).toBe(false);
  });

  it("byte chi-square backstop: random ~255, structured far above", () => {
    let sum = 0;
    forEachRandomRow(4096, 50, (row) => { sum += chiSquareBytes(row); });
    expect(sum / 50).toBeGreaterThan(200);
    expect(sum / 50).toBeLessThan(310);
    expect(classifyRow(GgmlType.I8, new Uint8Array(4096).map((_, i) => (i % 7) - 3)).encrypted).toBe(false);
    let flagged = 0;
    forEachRandomRow(4096, 50, (row) => { if (classifyRow(GgmlType.I32, row).encrypted) flagged++; });
    expect(flagged).toBe(50);
  });
});
