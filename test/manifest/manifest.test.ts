import { describe, expect, it } from "vitest";
import { decrypt, encodeUserKey, encrypt, fingerprintHex, keygen } from "../../plugin/core/abe/fame.js";
import { canonicalFileText } from "../../plugin/core/manifest/canonical.js";
import {
  issueManifest,
  openManifest,
  openManifestAsync,
  parseManifest,
  signManifest,
  verifyManifestSignature,
  type KeyManifest,
} from "../../plugin/core/manifest/manifest.js";
import { base64UrlDecode, base64UrlEncode, generateToken, isTokenShaped, tokenSha256Hex } from "../../plugin/core/manifest/token.js";
import { unwrapUserKey, wrapUserKey } from "../../plugin/core/manifest/user-key-wrap.js";
import { DAY, NOW, TEST_LOG_N, expectCode, expectCodeAsync, issueTest, newAuthority, testAuthority } from "./helpers.js";

const issued = issueTest();
const { manifest, text, token } = issued;
const auth = testAuthority();
const opts = { now: NOW, allowWeakKdf: true, expectedIssuer: auth.issuerKey, expectedFingerprint: fingerprintHex(auth.publicParams) };

/** Re-signs an altered copy (as a forger holding the issuer key could). */
function resign(m: KeyManifest, sk = auth.issuerSecretKey): string {
  return canonicalFileText(signManifest(m, sk));
}

describe("issue and open", () => {
  it("round-trips: the token unwraps a user key with the manifest's attributes that decrypts", () => {
    expect(isTokenShaped(token)).toBe(true);
    expect(manifest.attributes).toEqual(["task:code", "task:math"]);
    expect(manifest.models).toEqual(["llama3.2:1b", `sha256:${"ab".repeat(32)}`]);
    expect(manifest.notBefore).toBe("2025-05-31T12:00:00Z");
    expect(manifest.expires).toBe("2025-07-01T12:00:00Z");
    expect(manifest.issuedAt).toBe("2025-06-01T12:00:00Z");
    expect(manifest.tokenSha256).toBe(tokenSha256Hex(token));
    expect(manifest.userKey.kdf).toMatchObject({ name: "scrypt", logN: TEST_LOG_N, r: 8, p: 1 });
    expect(verifyManifestSignature(manifest)).toBe(true);

    const opened = openManifest(text, { ...opts, token });
    expect(opened.manifest).toEqual(manifest);
    expect(opened.authorityChecked).toBe(true);
    expect(opened.userKey!.attributes).toEqual(manifest.attributes);
    const enc = encrypt(auth.publicParams, "task:code and (task:math or admin)");
    expect(decrypt(opened.userKey!, enc.ciphertext)).toEqual(enc.key);
  });

  it("accepts bytes, text and objects; the async variant agrees", async () => {
    expect(openManifest(new TextEncoder().encode(text), opts).manifest.id).toBe(manifest.id);
    expect(openManifest(JSON.parse(text), opts).manifest.id).toBe(manifest.id);
    const a = await openManifestAsync(text, { ...opts, token });
    expect(a.userKey!.attributes).toEqual(["task:code", "task:math"]);
  });

  it("never stores the token: not the text, not its base64 body, not its bytes", () => {
    expect(text).not.toContain(token);
    expect(text).not.toContain(token.slice(3));
    const raw = base64UrlDecode(token.slice(3))!;
    expect(Buffer.from(text).includes(Buffer.from(raw))).toBe(false);
    expect(text).not.toContain(Buffer.from(raw).toString("hex"));
  });

  it("without the token, the manifest opens but yields no key, and its key bytes do not decode", () => {
    const opened = openManifest(text, opts);
    expect(opened.userKey).toBeUndefined();
    // The only key material in the file is AEAD ciphertext: it is not a user key encoding.
    const ct = base64UrlDecode(manifest.userKey.ciphertext)!;
    expect(ct.length).toBeGreaterThan(700);
    expect(Buffer.from(ct.subarray(0, 4)).toString("latin1")).not.toBe("SNAB");
    // A guessed token of the right shape fails on the hash; bypassing the hash, on the AEAD.
    const guess = generateToken((n) => new Uint8Array(n).fill(7));
    expectCode(() => openManifest(text, { ...opts, token: guess }), "MANIFEST_WRONG_TOKEN");
    expectCode(() => unwrapUserKey(manifest.userKey, guess, manifest), "MANIFEST_UNWRAP_FAILED");
  });

  it("rejects a wrong or malformed token", () => {
    const other = issueTest({ subject: "bob" });
    let e = expectCode(() => openManifest(text, { ...opts, token: other.token }), "MANIFEST_WRONG_TOKEN");
    expect(e.details.path).toBe("$.tokenSha256");
    e = expectCode(() => openManifest(text, { ...opts, token: "hunter2" }), "MANIFEST_WRONG_TOKEN");
    expect(e.message).toMatch(/not a secneuron API token/);
    expectCode(() => openManifest(text, { ...opts, token: token.slice(0, -1) + (token.endsWith("A") ? "B" : "A") }), "MANIFEST_WRONG_TOKEN");
  });

  it("checks the validity window at the injected now (notBefore inclusive, expires exclusive)", () => {
    const nb = Date.parse(manifest.notBefore);
    const ex = Date.parse(manifest.expires!);
    expect(openManifest(text, { ...opts, now: nb }).manifest.id).toBe(manifest.id);
    let e = expectCode(() => openManifest(text, { ...opts, now: nb - 1 }), "MANIFEST_NOT_YET_VALID");
    expect(e.details.path).toBe("$.notBefore");
    expect(openManifest(text, { ...opts, now: ex - 1 }).manifest.id).toBe(manifest.id);
    e = expectCode(() => openManifest(text, { ...opts, now: ex }), "MANIFEST_EXPIRED");
    expect(e.details.path).toBe("$.expires");
    expectCode(() => openManifest(text, { ...opts, now: new Date(ex + 365 * DAY), token }), "MANIFEST_EXPIRED");
    // No expires: valid forever after notBefore.
    const forever = issueTest({ expires: undefined });
    expect(forever.manifest.expires).toBeUndefined();
    expect(openManifest(forever.text, { ...opts, now: NOW + 1e5 * DAY }).manifest.id).toBe(forever.manifest.id);
  });

  it("rejects a manifest from another authority, even when it is validly self-signed", () => {
    const other = newAuthority();
    const foreign = issueTest({}, other);
    expect(openManifest(foreign.text, { now: NOW, allowWeakKdf: true }).authorityChecked).toBe(false);
    let e = expectCode(() => openManifest(foreign.text, opts), "MANIFEST_WRONG_AUTHORITY");
    expect(e.details).toMatchObject({ path: "$.authority.issuerKey", expected: auth.issuerKey, found: other.issuerKey });
    e = expectCode(() => openManifest(foreign.text, { now: NOW, allowWeakKdf: true, expectedFingerprint: opts.expectedFingerprint }), "MANIFEST_WRONG_AUTHORITY");
    expect(e.details.path).toBe("$.authority.fingerprint");
    // Same issuer key, but the manifest claims another CP-ABE authority.
    const claimed = resign({ ...manifest, authority: { ...manifest.authority, fingerprint: fingerprintHex(other.publicParams) } });
    e = expectCode(() => openManifest(claimed, opts), "MANIFEST_WRONG_AUTHORITY");
    expect(e.details.path).toBe("$.authority.fingerprint");
    expect(openManifest(foreign.text, { now: NOW, allowWeakKdf: true, expectedIssuer: Uint8Array.from(Buffer.from(other.issuerKey, "hex")) }).authorityChecked).toBe(true);
  });

  it("rejects a bad signature and a signature by another key", () => {
    const flipped = { ...manifest, signature: (manifest.signature[0] === "0" ? "1" : "0") + manifest.signature.slice(1) };
    let e = expectCode(() => openManifest(canonicalFileText(flipped), opts), "MANIFEST_BAD_SIGNATURE");
    expect(e.details.path).toBe("$.signature");
    const byOther = resign(manifest, newAuthority().issuerSecretKey);
    expectCode(() => openManifest(byOther, opts), "MANIFEST_BAD_SIGNATURE");
    // Widening the attributes without re-signing.
    const widened = canonicalFileText({ ...manifest, attributes: ["admin", "task:code", "task:math"] });
    e = expectCode(() => openManifest(widened, opts), "MANIFEST_BAD_SIGNATURE");
  });

  it("binds the wrapped key to id, subject and token hash (AAD), and checks the unwrapped key", () => {
    // A forger with the issuer key moves the wrapped key into a manifest with another id.
    const moved = resign({ ...manifest, id: "0".repeat(32) });
    expectCode(() => openManifest(moved, { ...opts, token }), "MANIFEST_UNWRAP_FAILED");
    const renamed = resign({ ...manifest, subject: "mallory" });
    expectCode(() => openManifest(renamed, { ...opts, token }), "MANIFEST_UNWRAP_FAILED");
    // Claimed attributes differ from the key's.
    const claims = resign({ ...manifest, attributes: ["admin", "task:code", "task:math"] });
    const e = expectCode(() => openManifest(claims, { ...opts, token }), "MANIFEST_KEY_MISMATCH");
    expect(e.details.path).toBe("$.attributes");
    // A wrapped blob that is not a user key.
    const junk = wrapUserKey(new Uint8Array(100).fill(1), token, manifest, { logN: TEST_LOG_N, randomBytes: (n) => new Uint8Array(n).fill(3) });
    expectCode(() => openManifest(resign({ ...manifest, userKey: junk }), { ...opts, token }), "MANIFEST_UNWRAP_FAILED");
    // A valid key of another authority under the right token.
    const other = newAuthority();
    const otherKey = wrapUserKey(encodeUserKey(keygen(other.publicParams, other.masterKey, manifest.attributes)), token, manifest, {
      logN: TEST_LOG_N,
      randomBytes: (n) => new Uint8Array(n).fill(5),
    });
    expectCode(() => openManifest(resign({ ...manifest, userKey: otherKey }), { ...opts, token }), "MANIFEST_KEY_MISMATCH");
  });

  it("enforces the KDF floor unless the test-only option is given", () => {
    const e = expectCode(() => openManifest(text, { now: NOW }), "MANIFEST_WEAK_KDF");
    expect(e.details).toMatchObject({ path: "$.userKey.kdf.logN", found: TEST_LOG_N, min: 15 });
    expectCode(() => issueTest({ allowWeakKdf: false }), "MANIFEST_WEAK_KDF");
    expectCode(() => issueTest({ kdfLogN: 9 }), "MANIFEST_WEAK_KDF");
    expectCode(() => issueTest({ kdfLogN: 19 }), "MANIFEST_WEAK_KDF");
  });

  it("uses the slow production KDF by default (N = 2^15)", () => {
    const a = testAuthority();
    const t0 = performance.now();
    const prod = issueManifest(
      { publicParams: a.publicParams, masterKey: a.masterKey, issuerSecretKey: a.issuerSecretKey, subject: "svc", attributes: ["task:code"] },
      { now: NOW },
    );
    expect(prod.manifest.userKey.kdf.logN).toBe(15);
    expect(prod.manifest.models).toBeUndefined();
    expect(prod.manifest.expires).toBeUndefined();
    expect(openManifest(prod.text, { now: NOW, token: prod.token, expectedIssuer: a.issuerKey }).userKey!.attributes).toEqual(["task:code"]);
    expect(performance.now() - t0).toBeGreaterThan(50);
  });

  it("rejects bad issue input before any key is made", () => {
    expectCode(() => issueTest({ subject: "has space" }), "MANIFEST_SCHEMA");
    expectCode(() => issueTest({ attributes: [] }), "MANIFEST_SCHEMA");
    expectCode(() => issueTest({ attributes: ["and"] }), "MANIFEST_SCHEMA");
    expectCode(() => issueTest({ models: ["sha256:abc"] }), "MANIFEST_SCHEMA");
    expectCode(() => issueTest({ expires: NOW - 2 * DAY }), "MANIFEST_SCHEMA");
  });

  it("parseManifest checks form but not the signature", () => {
    expect(parseManifest(text).id).toBe(manifest.id);
    const unsigned = canonicalFileText({ ...manifest, subject: "eve" });
    expect(parseManifest(unsigned).subject).toBe("eve");
  });

  it("base64url helpers are strict", () => {
    for (const n of [0, 1, 2, 3, 31, 32, 33]) {
      const b = Uint8Array.from({ length: n }, (_, i) => (i * 37 + 11) & 255);
      expect(base64UrlDecode(base64UrlEncode(b))).toEqual(b);
    }
    expect(base64UrlDecode("AB")).toBeUndefined(); // non-canonical trailing bits
    expect(base64UrlDecode("AA==")).toBeUndefined();
    expect(base64UrlDecode("A")).toBeUndefined();
  });
});
