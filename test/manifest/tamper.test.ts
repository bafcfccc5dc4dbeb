import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { fingerprintHex } from "../../plugin/core/abe/fame.js";
import { openManifest } from "../../plugin/core/manifest/manifest.js";
import { SecNeuronError } from "../../plugin/errors.js";
import { NOW, issueTest, testAuthority } from "./helpers.js";

const REJECT_CODES = new Set(["MANIFEST_PARSE", "MANIFEST_SCHEMA", "MANIFEST_NOT_CANONICAL", "MANIFEST_BAD_SIGNATURE", "MANIFEST_UNSUPPORTED_VERSION"]);

const { text } = issueTest();
const auth = testAuthority();
const bytes = Buffer.from(text, "utf8");
const opts = { now: NOW, allowWeakKdf: true, expectedIssuer: auth.issuerKey, expectedFingerprint: fingerprintHex(auth.publicParams) };

/** The code a tampered copy is rejected with, or "ACCEPTED". */
function verdict(b: Uint8Array): string {
  try {
    openManifest(b, opts);
    return "ACCEPTED";
  } catch (e) {
    return e instanceof SecNeuronError ? e.code : `UNTYPED: ${(e as Error).message}`;
  }
}

describe("tampering with the manifest file", () => {
  it("the untouched file is accepted (the oracle can say yes)", () => {
    expect(verdict(bytes)).toBe("ACCEPTED");
  });

  it("every single-byte change at every position is rejected (xor 0x01, 0x20, 0x80)", () => {
    const counts: Record<string, number> = {};
    for (const mask of [0x01, 0x20, 0x80]) {
      for (let i = 0; i < bytes.length; i++) {
        const b = Uint8Array.from(bytes);
        b[i]! ^= mask;
        const v = verdict(b);
        counts[v] = (counts[v] ?? 0) + 1;
        if (!REJECT_CODES.has(v)) throw new Error(`byte ${i} ^ 0x${mask.toString(16)}: ${v}`);
      }
    }
    console.log(`tamper: ${bytes.length} bytes x 3 masks:`, counts);
    expect(counts.MANIFEST_BAD_SIGNATURE).toBeGreaterThan(100);
  });

  it("random single-byte replacements are rejected (fast-check; seed printed on failure)", () => {
    fc.assert(
      fc.property(fc.nat({ max: bytes.length - 1 }), fc.integer({ min: 0, max: 255 }), (i, value) => {
        fc.pre(bytes[i] !== value);
        const b = Uint8Array.from(bytes);
        b[i] = value;
        expect(REJECT_CODES.has(verdict(b))).toBe(true);
      }),
      { numRuns: 1500 },
    );
  });
});
