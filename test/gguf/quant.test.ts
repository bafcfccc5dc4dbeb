import { describe, expect, it } from "vitest";
import { GgmlType } from "../../plugin/core/gguf/constants.js";
import { bf16BitsToF32, decodeTensorData, encodeTensorData, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from "../../plugin/core/gguf/quant.js";

describe("half and bfloat16 conversion", () => {
  it("matches IEEE binary16 on known values", () => {
    const cases: Array<[number, number]> = [
      [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65520, 0x7c00], [Infinity, 0x7c00],
      [2 ** -14, 0x0400], [2 ** -24, 0x0001], [2 ** -25, 0x0000], [1.5 * 2 ** -25, 0x0001], [0.1, 0x2e66], [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02],
    ];
    for (const [f, h] of cases) expect(f32ToF16Bits(f), `f16(${f})`).toBe(h);
    expect(f32ToF16Bits(NaN) & 0x7c00).toBe(0x7c00);
    for (let h = 0; h < 0x7c00; h += 97) expect(f32ToF16Bits(f16BitsToF32(h))).toBe(h);
  });
  it("rounds bfloat16 to nearest even and keeps NaN a NaN", () => {
    expect(f32ToBf16Bits(1)).toBe(0x3f80);
    expect(f32ToBf16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie, even
    expect(f32ToBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie, round up to even
    expect(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(NaN)))).toBe(true);
    for (let b = 0; b < 0x7f80; b += 101) expect(f32ToBf16Bits(bf16BitsToF32(b))).toBe(b);
  });
});

describe("block quantizers", () => {
  const values = Float32Array.from({ length: 256 }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 7)));
  const maxAbs = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

  it("Q8_0 follows ggml's reference: scale amax/127, round half away from zero", () => {
    const block = Float32Array.from({ length: 32 }, (_, i) => (i - 16) * 0.5);
    const q = encodeTensorData(GgmlType.Q8_0, block, 32);
    expect(q.length).toBe(34);
    const d = f16BitsToF32(q[0]! | (q[1]! << 8));
    expect(d).toBeCloseTo(8 / 127, 4);
    const codes = Array.from(new Int8Array(q.buffer, 2, 32));
    expect(codes[0]).toBe(-127);
    expect(codes[16]).toBe(0);
    expect(codes[17]).toBe(Math.round(0.5 * 127 / 8));
    expect(maxAbs(decodeTensorData(GgmlType.Q8_0, encodeTensorData(GgmlType.Q8_0, values, 256), 256), values)).toBeLessThan(7 / 127);
  });

  it("Q4_0 follows ggml's reference: scale max/-8, codes 0..15", () => {
    const block = Float32Array.from({ length: 32 }, (_, i) => i - 8);
    const q = encodeTensorData(GgmlType.Q4_0, block, 32);
    expect(q.length).toBe(18);
    const d = f16BitsToF32(q[0]! | (q[1]! << 8));
    expect(d).toBeCloseTo(23 / -8, 3);
    const dec = decodeTensorData(GgmlType.Q4_0, q, 32);
    expect(maxAbs(dec, block)).toBeLessThanOrEqual(Math.abs(d) / 2 + 1e-6);
  });

  it("F32, F16 and BF16 round-trip within their precision; zero stays zero everywhere", () => {
    for (const [t, tol] of [[GgmlType.F32, 0], [GgmlType.F16, 4e-3], [GgmlType.BF16, 3e-2], [GgmlType.Q8_0, 0.06], [GgmlType.Q4_0, 0.6]] as const) {
      const dec = decodeTensorData(t, encodeTensorData(t, values, 256), 256);
      expect(maxAbs(dec, values), `type ${t}`).toBeLessThanOrEqual(tol);
      const zeros = encodeTensorData(t, new Float32Array(64), 64);
      expect(decodeTensorData(t, zeros, 64).every((v) => v === 0)).toBe(true);
    }
  });

  it("rejects partial blocks and unsupported types", () => {
    expect(() => encodeTensorData(GgmlType.Q8_0, new Float32Array(48), 48)).toThrow(/whole blocks/);
    expect(() => encodeTensorData(GgmlType.Q4_K, new Float32Array(256), 256)).toThrow(/no encoder/);
  });
});
