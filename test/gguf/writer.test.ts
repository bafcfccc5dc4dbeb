import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { GgmlType, GgufValueType } from "../../plugin/core/gguf/constants.js";
import { bufferSource } from "../../plugin/core/gguf/byte-source.js";
import { parseGgufHeader } from "../../plugin/core/gguf/reader.js";
import { rowBytes, rowRange } from "../../plugin/core/gguf/rows.js";
import { layoutGguf } from "../../plugin/core/gguf/writer.js";
import { kv, type GgufMetadata } from "../../plugin/core/gguf/types.js";
import { readGgufHeader, rewriteGguf, writeGgufFile } from "../../plugin/edges/gguf-file.js";
import { GgufFormatError } from "../../plugin/errors.js";
import { hfDisagreements } from "../helpers/hf-crosscheck.js";
import { scratchDir } from "../helpers/tmp.js";

const scratch = scratchDir();
afterAll(() => scratch.cleanup());

function everyValueType(): GgufMetadata {
  return new Map([
    ["t.u8", kv.u8(200)], ["t.i8", kv.i8(-100)], ["t.u16", kv.u16(60000)], ["t.i16", kv.i16(-30000)],
    ["t.u32", kv.u32(4_000_000_000)], ["t.i32", kv.i32(-2_000_000_000)], ["t.f32", kv.f32(1.5)],
    ["t.f64", kv.f64(Math.PI)], ["t.u64", kv.u64(18446744073709551615n)], ["t.i64", kv.i64(-9223372036854775808n)],
    ["t.bool", kv.bool(true)], ["t.str", kv.str("héllo ▁ wörld")], ["t.strs", kv.strs(["a", "", "ü"])],
    ["t.i32s", kv.i32s([1, -2, 3])], ["t.f32s", kv.f32s([0.5, -0.25])],
    ["t.u64s", { type: GgufValueType.ARRAY, itemType: GgufValueType.UINT64, value: [1n, 2n] }],
    ["t.bools", { type: GgufValueType.ARRAY, itemType: GgufValueType.BOOL, value: [true, false] }],
    ["general.alignment", kv.u32(64)],
  ]);
}

const TYPES = [GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_K, GgmlType.Q6_K, GgmlType.IQ4_XS, GgmlType.MXFP4];

describe("GGUF writer", () => {
  it("round-trips every value type and tensor type through our reader and @huggingface/gguf", async () => {
    const md = everyValueType();
    const tensors = TYPES.map((type, i) => {
      const ne = [256, i + 1];
      const data = new Uint8Array(rowBytes(type, 256) * (i + 1));
      for (let j = 0; j < data.length; j++) data[j] = (j * 31 + i) & 0xff;
      return { name: `t${i}.weight`, ne, type, data };
    });
    const path = join(scratch.dir, "all.gguf");
    const written = await writeGgufFile(path, md, tensors);
    const read = readGgufHeader(path);
    expect(read.alignment).toBe(64);
    expect(read.dataOffset).toBe(written.dataOffset);
    expect([...read.metadata.keys()]).toEqual([...md.keys()]);
    for (const [k, v] of md) expect(read.metadata.get(k)).toEqual(v);
    expect(read.tensors.map((t) => [t.name, t.type, t.ne, t.offset])).toEqual(written.tensors.map((t) => [t.name, t.type, t.ne, t.offset]));
    // data lands exactly where row geometry says
    const file = readFileSync(path);
    tensors.forEach((t, i) => {
      const info = read.tensors[i]!;
      const r = rowRange(read, info, info.ne[1]! - 1);
      expect(Buffer.compare(file.subarray(r.offset, r.offset + r.length), Buffer.from(t.data.subarray(t.data.length - r.length)))).toBe(0);
    });
    expect(await hfDisagreements(path, read)).toEqual([]);
  });

  it("the cross-check catches a disagreement (it can fail)", async () => {
    const path = join(scratch.dir, "one.gguf");
    const h = await writeGgufFile(path, new Map([["a", kv.u32(1)]]), [{ name: "x", ne: [32], type: GgmlType.F32, data: new Uint8Array(128) }]);
    const lied = { ...h, metadata: new Map([["a", kv.u32(2)]]), tensors: [{ ...h.tensors[0]!, ne: [64] }] };
    const diffs = await hfDisagreements(path, lied);
    expect(diffs).toContain("a: value differs");
    expect(diffs.some((d) => d.includes("shape"))).toBe(true);
  });

  it("layout matches what the reader parses from the bytes", () => {
    const { headerBytes, header } = layoutGguf(everyValueType(), [{ name: "w", ne: [32, 3], type: GgmlType.Q8_0 }]);
    const file = new Uint8Array(headerBytes.length + 34 * 3 + 30);
    file.set(headerBytes);
    const parsed = parseGgufHeader(bufferSource(file));
    expect(parsed.dataOffset).toBe(header.dataOffset);
    expect(parsed.tensors[0]!.byteLength).toBe(102);
  });

  it("refuses what the reader would reject", () => {
    const bad = (f: () => unknown, code: string) => {
      try { f(); expect.unreachable(); } catch (e) { expect((e as GgufFormatError).code).toBe(code); }
    };
    bad(() => layoutGguf(new Map(), [{ name: "w", ne: [33], type: GgmlType.Q8_0 }]), "GGUF_PARTIAL_BLOCK");
    bad(() => layoutGguf(new Map(), [{ name: "w", ne: [32], type: 4 }]), "GGUF_UNKNOWN_TYPE");
    bad(() => layoutGguf(new Map(), [{ name: "w", ne: [32], type: 0 }, { name: "w", ne: [32], type: 0 }]), "GGUF_DUPLICATE_TENSOR");
    bad(() => layoutGguf(new Map(), [{ name: "x".repeat(64), ne: [32], type: 0 }]), "GGUF_TENSOR_NAME");
    bad(() => layoutGguf(new Map(), [{ name: "w", ne: [0], type: 0 }]), "GGUF_BAD_SHAPE");
    bad(() => layoutGguf(new Map([["a", kv.u8(300)]]), []), "GGUF_BAD_VALUE");
    bad(() => layoutGguf(new Map([["general.alignment", kv.u32(3)]]), []), "GGUF_BAD_ALIGNMENT");
  });

  it("writes atomically: a failed write leaves no file and no temporary", async () => {
    const { readdirSync } = await import("node:fs");
    const path = join(scratch.dir, "fail.gguf");
    await expect(writeGgufFile(path, new Map(), [{ name: "x", ne: [32], type: GgmlType.F32, data: new Uint8Array(100) }])).rejects.toMatchObject({ code: "GGUF_DATA_SIZE" });
    expect(readdirSync(scratch.dir).filter((f) => f.includes("fail"))).toEqual([]);
  });

  it("rewrites row by row with new metadata, leaving the input untouched", async () => {
    const src = join(scratch.dir, "src.gguf");
    const data = new Uint8Array(34 * 100).map((_, i) => i & 0xff);
    await writeGgufFile(src, new Map([["a", kv.u32(1)]]), [{ name: "w", ne: [32, 100], type: GgmlType.Q8_0, data }]);
    const before = readFileSync(src);
    const out = join(scratch.dir, "out.gguf");
    const seen: number[] = [];
    const h = await rewriteGguf(src, out, {
      metadata: new Map([["a", kv.u32(1)], ["secneuron.test", kv.str("x".repeat(100))]]),
      chunkBytes: 34 * 7,
      rowTransform: (_t, first, n, bytes) => {
        seen.push(n);
        for (let r = 0; r < n; r++) if ((first + r) % 2 === 0) bytes.fill(0, r * 34, (r + 1) * 34);
      },
    });
    expect(readFileSync(src).equals(before)).toBe(true);
    expect(Math.max(...seen)).toBe(7);
    expect(seen.reduce((a, b) => a + b, 0)).toBe(100);
    const file = readFileSync(out);
    for (const row of [0, 1, 98, 99]) {
      const r = rowRange(h, h.tensors[0]!, row);
      const got = file.subarray(r.offset, r.offset + r.length);
      if (row % 2 === 0) expect(got.every((b) => b === 0)).toBe(true);
      else expect(Buffer.compare(got, Buffer.from(data.subarray(row * 34, row * 34 + 34)))).toBe(0);
    }
    await expect(rewriteGguf(src, src)).rejects.toMatchObject({ code: "GGUF_SAME_FILE" });
    expect(await hfDisagreements(out, readGgufHeader(out))).toEqual([]);
  });
});
