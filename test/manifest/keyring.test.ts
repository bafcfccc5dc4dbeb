/** Keyring: token lookup, validity window per request, cached unwrap, duplicates, authority. */
import { mkdtempSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canonicalFileText } from "../../plugin/core/manifest/canonical.js";
import { openManifestAsync, signManifest, type KeyManifest } from "../../plugin/core/manifest/manifest.js";
import { Keyring, UserKeyCache, verifyManifestFile, type KeyringOptions, type ManifestOpener } from "../../plugin/edges/manifests/keyring.js";
import { fingerprintHex } from "../../plugin/core/abe/fame.js";
import { DAY, NOW, expectCode, expectCodeAsync, issueTest, newAuthority, testAuthority, type TestAuthority } from "./helpers.js";

function optsFor(a: TestAuthority): KeyringOptions {
  return { authority: { issuerKey: a.issuerKey, fingerprint: fingerprintHex(a.publicParams) }, allowWeakKdf: true };
}

/** A counting opener: every call is one KDF run. */
function countingCache(): { cache: UserKeyCache; calls: () => number } {
  let n = 0;
  const open: ManifestOpener = (m, o) => {
    n++;
    return openManifestAsync(m, o);
  };
  return { cache: new UserKeyCache({ open }), calls: () => n };
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "secneuron-keyring-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("Keyring", () => {
  const a = testAuthority();
  const opts = optsFor(a);

  it("authenticates a token: manifest, file and the unwrapped user key", async () => {
    const issued = issueTest({ attributes: ["task:math"] });
    const k = new Keyring([{ file: "alice.manifest.json", manifest: issued.manifest }], opts);
    const r = await k.authenticate(issued.token, NOW);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.file).toBe("alice.manifest.json");
    expect(r.manifest.id).toBe(issued.manifest.id);
    expect(r.userKey.attributes).toEqual(["task:math"]);
  });

  it("denies unknown and malformed tokens without running the KDF", async () => {
    const issued = issueTest();
    const other = issueTest();
    const { cache, calls } = countingCache();
    const k = new Keyring([{ file: "a.manifest.json", manifest: issued.manifest }], opts, cache);
    const unknown = await k.authenticate(other.token, NOW);
    expect(unknown).toMatchObject({ ok: false, reason: "unknown_token" });
    for (const bad of ["", "sn_short", issued.token + "x", issued.token.toUpperCase(), 42 as unknown as string]) {
      expect(await k.authenticate(bad, NOW)).toMatchObject({ ok: false, reason: "malformed_token" });
    }
    expect(k.lookup(other.token)).toBeUndefined();
    expect(k.lookup(issued.token)?.manifest.id).toBe(issued.manifest.id);
    expect(calls()).toBe(0);
  });

  it("unwraps the user key once: later and concurrent requests reuse it", async () => {
    const issued = issueTest();
    const { cache, calls } = countingCache();
    const k = new Keyring([{ file: "a.manifest.json", manifest: issued.manifest }], opts, cache);
    // Concurrent first requests share one KDF run.
    const first = await Promise.all([k.authenticate(issued.token, NOW), k.authenticate(issued.token, NOW), k.authenticate(issued.token, NOW)]);
    expect(first.every((r) => r.ok)).toBe(true);
    expect(calls()).toBe(1);
    for (let i = 0; i < 20; i++) expect((await k.authenticate(issued.token, NOW + i * 1000)).ok).toBe(true);
    expect(calls()).toBe(1);
    expect(cache.stats()).toMatchObject({ size: 1, unwraps: 1, hits: 22 });
    // The same key object is served.
    const [r1, r2] = [await k.authenticate(issued.token, NOW), await k.authenticate(issued.token, NOW)];
    expect(r1.ok && r2.ok && r1.userKey === r2.userKey).toBe(true);
    // A later snapshot sharing the cache does not redo the KDF either.
    const k2 = new Keyring([{ file: "renamed.manifest.json", manifest: issued.manifest }], opts, cache);
    expect((await k2.authenticate(issued.token, NOW)).ok).toBe(true);
    expect(calls()).toBe(1);
  });

  it("checks the validity window at every request, cached or not", async () => {
    const issued = issueTest({ notBefore: NOW - DAY, expires: NOW + DAY });
    const { cache, calls } = countingCache();
    const k = new Keyring([{ file: "a.manifest.json", manifest: issued.manifest }], opts, cache);
    expect((await k.authenticate(issued.token, NOW)).ok).toBe(true);
    expect(cache.stats().size).toBe(1);
    expect(await k.authenticate(issued.token, NOW + DAY)).toMatchObject({ ok: false, reason: "expired", code: "MANIFEST_EXPIRED", id: issued.manifest.id });
    expect(await k.authenticate(issued.token, new Date(NOW + 2 * DAY))).toMatchObject({ ok: false, reason: "expired" });
    expect(await k.authenticate(issued.token, NOW - 2 * DAY)).toMatchObject({ ok: false, reason: "not_yet_valid", code: "MANIFEST_NOT_YET_VALID" });
    expect((await k.authenticate(issued.token, NOW + DAY - 1)).ok).toBe(true);
    expect(calls()).toBe(1);
  });

  it("denies (never throws) when the user key cannot be unwrapped, and does not cache the failure", async () => {
    // Re-signed by the real issuer with another id: the wrap is bound to the old id, so AEAD fails.
    const issued = issueTest();
    const forged = signManifest({ ...issued.manifest, id: "f".repeat(32) }, a.issuerSecretKey);
    const { cache, calls } = countingCache();
    const k = new Keyring([{ file: "f.manifest.json", manifest: forged }], opts, cache);
    const r = await k.authenticate(issued.token, NOW);
    expect(r).toMatchObject({ ok: false, reason: "unwrap_failed", code: "MANIFEST_UNWRAP_FAILED", file: "f.manifest.json" });
    expect(cache.stats().size).toBe(0);
    await k.authenticate(issued.token, NOW);
    expect(calls()).toBe(2);
  });

  it("rejects duplicates (same id, same token hash) naming both files", () => {
    const issued = issueTest();
    const e1 = expectCode(
      () =>
        new Keyring(
          [
            { file: "one.manifest.json", manifest: issued.manifest },
            { file: "two.manifest.json", manifest: issued.manifest },
          ],
          opts,
        ),
      "MANIFEST_DUPLICATE",
    );
    expect(e1.message).toContain("one.manifest.json");
    expect(e1.message).toContain("two.manifest.json");
    expect(e1.details).toMatchObject({ field: "id", file: "two.manifest.json", other: "one.manifest.json" });
    const sameHash = signManifest({ ...issued.manifest, id: "e".repeat(32) }, a.issuerSecretKey);
    const e2 = expectCode(
      () =>
        new Keyring(
          [
            { file: "one.manifest.json", manifest: issued.manifest },
            { file: "three.manifest.json", manifest: sameHash },
          ],
          opts,
        ),
      "MANIFEST_DUPLICATE",
    );
    expect(e2.details).toMatchObject({ field: "tokenSha256", file: "three.manifest.json", other: "one.manifest.json" });
    expect(e2.message).toContain("one.manifest.json");
  });

  it("is immutable: entries and manifests are frozen copies", () => {
    const issued = issueTest();
    const mine = structuredClone(issued.manifest);
    const k = new Keyring([{ file: "a.manifest.json", manifest: mine }], opts);
    mine.attributes.push("task:admin");
    const e = k.entries()[0]!;
    expect(e.manifest.attributes).toEqual(issued.manifest.attributes);
    expect(Object.isFrozen(k.entries())).toBe(true);
    expect(Object.isFrozen(e.manifest.attributes)).toBe(true);
    expect(() => (e.manifest.attributes as string[]).push("x")).toThrow();
  });

  it("checks its options and the authority of every entry", () => {
    expectCode(() => new Keyring([], {} as KeyringOptions), "MANIFEST_INVALID_INPUT");
    expectCode(() => new Keyring([], { authority: { issuerKey: "AB", fingerprint: opts.authority.fingerprint } }), "MANIFEST_INVALID_INPUT");
    const foreign = issueTest({}, newAuthority());
    const e = expectCode(() => new Keyring([{ file: "x.manifest.json", manifest: foreign.manifest }], opts), "MANIFEST_WRONG_AUTHORITY");
    expect(e.message).toContain("x.manifest.json");
  });
});

describe("verifyManifestFile / Keyring.fromFiles", () => {
  const a = testAuthority();
  const opts = optsFor(a);
  const write = (name: string, text: string | Uint8Array): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  it("loads good files and authenticates their tokens", async () => {
    const i1 = issueTest({ subject: "alice" });
    const i2 = issueTest({ subject: "bob", attributes: ["task:code"] });
    const k = await Keyring.fromFiles([write("alice.manifest.json", i1.text), write("bob.manifest.json", i2.text)], opts);
    expect(k.size).toBe(2);
    const r = await k.authenticate(i2.token, NOW);
    expect(r.ok && r.manifest.subject).toBe("bob");
  });

  it("keeps expired and not-yet-valid manifests loadable; they are denied per request", async () => {
    const expired = issueTest({ notBefore: NOW - 3 * DAY, expires: NOW - DAY });
    const future = issueTest({ notBefore: NOW + DAY, expires: NOW + 3 * DAY });
    const k = await Keyring.fromFiles([write("old.manifest.json", expired.text), write("future.manifest.json", future.text)], opts);
    expect(await k.authenticate(expired.token, NOW)).toMatchObject({ ok: false, reason: "expired" });
    expect(await k.authenticate(future.token, NOW)).toMatchObject({ ok: false, reason: "not_yet_valid" });
    expect((await k.authenticate(future.token, NOW + 2 * DAY)).ok).toBe(true);
  });

  it("rejects another authority's manifest at load", async () => {
    const foreign = issueTest({}, newAuthority());
    const e = await expectCodeAsync(verifyManifestFile(write("foreign.manifest.json", foreign.text), opts), "MANIFEST_WRONG_AUTHORITY");
    expect(e.message.startsWith("foreign.manifest.json: ")).toBe(true);
    expect(e.details.file).toBe("foreign.manifest.json");
    // Fingerprint only differs: a manifest signed by our issuer for another CP-ABE authority.
    const b = newAuthority();
    const mixed = issueTest({}, { ...b, issuerSecretKey: a.issuerSecretKey, issuerKey: a.issuerKey });
    await expectCodeAsync(verifyManifestFile(write("mixed.manifest.json", mixed.text), opts), "MANIFEST_WRONG_AUTHORITY");
  });

  it("rejects corrupt files with the file name and the precise code", async () => {
    const good = issueTest();
    const text = good.text;
    const flipped = Buffer.from(text);
    const at = text.indexOf('"subject": "') + 13; // alice -> amice
    flipped[at] = flipped[at]! ^ 0x01;
    const cases: Array<[string, string | Uint8Array, string]> = [
      ["empty", "", "MANIFEST_PARSE"],
      ["truncated", text.slice(0, text.length >> 1), "MANIFEST_PARSE"],
      ["not-json", "{ nope", "MANIFEST_PARSE"],
      ["reformatted", JSON.stringify(JSON.parse(text)), "MANIFEST_NOT_CANONICAL"],
      ["flipped", flipped, "MANIFEST_BAD_SIGNATURE"],
    ];
    for (const [name, body, code] of cases) {
      const e = await expectCodeAsync(verifyManifestFile(write(`${name}.manifest.json`, body), opts), code);
      expect(e.message).toContain(`${name}.manifest.json`);
    }
    const gone = await expectCodeAsync(verifyManifestFile(join(dir, "missing.manifest.json"), opts), "MANIFEST_READ_FAILED");
    expect(gone.details.errno).toBe("ENOENT");
  });

  it("rejects a weak KDF unless allowWeakKdf", async () => {
    const p = write("weak.manifest.json", issueTest().text);
    await expectCodeAsync(verifyManifestFile(p, { authority: opts.authority }), "MANIFEST_WEAK_KDF");
  });

  it("fromFiles throws MANIFEST_DUPLICATE naming both files", async () => {
    const i = issueTest();
    const p1 = write("dup1.manifest.json", i.text);
    const p2 = write("dup2.manifest.json", canonicalFileText(i.manifest as KeyManifest));
    const e = await expectCodeAsync(Keyring.fromFiles([p1, p2], opts), "MANIFEST_DUPLICATE");
    expect(e.message).toContain("dup1.manifest.json");
    expect(e.message).toContain("dup2.manifest.json");
  });
});
