import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { canonicalFileText, canonicalJson, SIGNING_DOMAIN, signingBytes } from "../../plugin/core/manifest/canonical.js";
import { ManifestError } from "../../plugin/errors.js";

describe("canonical JSON", () => {
  it("sorts keys at every depth, no whitespace, drops undefined", () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: "x" }, u: undefined })).toBe('{"a":{"c":"x","d":[3,{"y":2,"z":1}]},"b":1}');
    expect(canonicalFileText({ b: 1, a: 2 })).toBe('{\n  "a": 2,\n  "b": 1\n}\n');
  });

  it("sorts by UTF-16 code unit like RFC 8785", () => {
    expect(canonicalJson({ b: 0, B: 0, _: 0, "1": 0, a: 0 })).toBe('{"1":0,"B":0,"_":0,"a":0,"b":0}');
  });

  it("keeps a __proto__ key as a key", () => {
    expect(canonicalJson(JSON.parse('{"b":1,"__proto__":{"x":1}}'))).toBe('{"__proto__":{"x":1},"b":1}');
  });

  it("refuses values without one canonical form", () => {
    for (const bad of [{ x: 1.5 }, { x: Number.NaN }, { x: 2 ** 60 }, { x: new Date(0) }, { x: () => 1 }, { x: 1n }]) {
      expect(() => canonicalJson(bad)).toThrow(ManifestError);
    }
  });

  it("signs the manifest minus its signature, with a domain prefix", () => {
    const s = new TextDecoder().decode(signingBytes({ signature: "ff", id: "1", a: [1] }));
    expect(s).toBe(`${SIGNING_DOMAIN}{"a":[1],"id":"1"}`);
  });

  it("property: independent of key order, stable under parse, both forms agree", () => {
    const json = fc.letrec((tie) => ({
      value: fc.oneof({ depthSize: "small" }, fc.string(), fc.integer(), fc.boolean(), fc.constant(null), fc.array(tie("value"), { maxLength: 4 }), fc.dictionary(fc.string(), tie("value"), { maxKeys: 5 })),
    })).value;
    fc.assert(
      fc.property(json, (v) => {
        const c = canonicalJson(v);
        expect(canonicalJson(JSON.parse(c))).toBe(c);
        expect(canonicalJson(JSON.parse(canonicalFileText(v)))).toBe(c);
        if (v && typeof v === "object" && !Array.isArray(v)) {
          const reversed = Object.fromEntries(Object.entries(v as object).reverse());
          expect(canonicalJson(reversed)).toBe(c);
        }
      }),
      { numRuns: 300 },
    );
  });
});
