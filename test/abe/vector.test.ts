import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { decodeCiphertext, decodeMasterKey, decodePublicParams, decodeUserKey, decrypt } from "../../plugin/core/abe/fame.js";
import { hex, unhex } from "./helpers.js";
import { buildVector } from "./vector-build.js";

const frozen = JSON.parse(
  readFileSync(new URL("../vectors/abe-fame-v1.json", import.meta.url), "utf8"),
) as ReturnType<typeof buildVector>;

describe("frozen vector abe-fame-v1", () => {
  it("fixed randomness reproduces the frozen encodings and key", () => {
    expect(buildVector()).toEqual(frozen);
  });

  it("the frozen user key opens the frozen ciphertext", () => {
    const pp = decodePublicParams(unhex(frozen.publicParams));
    expect(hex(pp.fingerprint)).toBe(frozen.fingerprint);
    expect(hex(decodeMasterKey(unhex(frozen.masterKey)).fingerprint)).toBe(frozen.fingerprint);
    const uk = decodeUserKey(unhex(frozen.userKey));
    const ct = decodeCiphertext(unhex(frozen.ciphertext));
    expect(ct.policy).toBe(frozen.canonicalPolicy);
    expect(hex(decrypt(uk, ct))).toBe(frozen.key);
  });
});
