import { describe, expect, it } from "vitest";
import { GgufFormatError } from "../../plugin/errors.js";
import { bufferSource } from "../../plugin/core/gguf/byte-source.js";
import { parseGgufHeader } from "../../plugin/core/gguf/reader.js";
import { badGgufCases, goodRaw } from "../fixtures/bad-gguf.js";
import { buildRawGguf } from "../fixtures/raw-gguf.js";

describe("GGUF reader", () => {
  it("parses the baseline that every bad case is derived from", () => {
    const h = parseGgufHeader(bufferSource(buildRawGguf(goodRaw())));
    expect(h.tensors.map((t) => t.name)).toEqual(["a.weight", "b.weight"]);
    expect(h.tensors[1]!.byteLength).toBe(68);
    expect(h.metadata.get("test.names")?.value).toEqual(["a", "b"]);
    expect(h.dataOffset % 32).toBe(0);
  });

  for (const c of badGgufCases()) {
    it(`rejects ${c.name} with ${c.code}`, () => {
      let err: unknown;
      try {
        parseGgufHeader(bufferSource(c.bytes));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(GgufFormatError);
      const g = err as GgufFormatError;
      expect(g.code).toBe(c.code);
      expect(g.field.length).toBeGreaterThan(0);
      expect(g.message).toContain(g.field);
    });
  }

  it("names the byte offset of the failing field", () => {
    const g = goodRaw();
    g.tensors[1]!.offset = 520;
    const bytes = buildRawGguf(g);
    try {
      parseGgufHeader(bufferSource(bytes));
      expect.unreachable();
    } catch (e) {
      const err = e as GgufFormatError;
      expect(err.offset).toBeGreaterThan(24);
      // the u64 at that offset is the bad value
      expect(new DataView(bytes.buffer).getBigUint64(err.offset!, true)).toBe(520n);
    }
  });
});
