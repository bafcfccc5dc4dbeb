/**
 * ManifestWatcher against a real folder (tmpfs when available) and real chokidar: add, change,
 * remove, corrupt, duplicates, expiry, cached unwrap, polling. Waits poll status(), never sleep.
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync, truncateSync, unlinkSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { fingerprintHex } from "../../plugin/core/abe/fame.js";
import { canonicalFileText } from "../../plugin/core/manifest/canonical.js";
import { openManifestAsync, signManifest, type KeyManifest } from "../../plugin/core/manifest/manifest.js";
import { writeFileAtomic } from "../../plugin/edges/manifests/atomic-write.js";
import { UserKeyCache, type ManifestOpener } from "../../plugin/edges/manifests/keyring.js";
import {
  ManifestWatcher,
  narrowingReason,
  type ManifestFileStatus,
  type ManifestLogRecord,
  type ManifestWatcherOptions,
  type RevokeInfo,
} from "../../plugin/edges/manifests/watcher.js";
import type { ManifestError } from "../../plugin/errors.js";
import { DAY, NOW, issueTest, newAuthority, testAuthority } from "./helpers.js";

const BASE = existsSync("/dev/shm") ? "/dev/shm" : tmpdir();
const authority = testAuthority();
const AUTH = { issuerKey: authority.issuerKey, fingerprint: fingerprintHex(authority.publicParams) };

interface Harness {
  dir: string;
  w: ManifestWatcher;
  logs: ManifestLogRecord[];
  revoked: Array<{ manifest: KeyManifest; info: RevokeInfo }>;
  errors: Array<{ error: ManifestError; file?: string; kept: string }>;
  changes: number;
  file(name: string): ManifestFileStatus | undefined;
  path(name: string): string;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

function harness(extra: Partial<ManifestWatcherOptions> = {}, dir = mkdtempSync(join(BASE, "secneuron-watch-"))): Harness {
  const logs: ManifestLogRecord[] = [];
  const w = new ManifestWatcher({
    dir,
    authority: AUTH,
    allowWeakKdf: true,
    debounceMs: 10,
    awaitWriteFinish: { stabilityThreshold: 40, pollInterval: 10 },
    logger: (r) => logs.push(r),
    clock: () => NOW,
    ...extra,
  });
  const h: Harness = {
    dir,
    w,
    logs,
    revoked: [],
    errors: [],
    changes: 0,
    file: (name) => w.status().files.find((f) => f.file === name),
    path: (name) => join(dir, name),
  };
  w.onRevoke((manifest, info) => h.revoked.push({ manifest, info }));
  w.onError((error, info) => h.errors.push({ error, file: info.file, kept: info.kept }));
  w.onChange(() => h.changes++);
  cleanups.push(async () => {
    await w.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return h;
}

/** Polls `cond` every 10 ms until truthy; fails with `what` and the last status after `ms`. */
async function waitFor<T>(what: string, w: ManifestWatcher, cond: () => T, ms = 5000): Promise<NonNullable<T>> {
  const end = Date.now() + ms;
  for (;;) {
    const v = cond();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; status: ${JSON.stringify(w.status(), null, 1)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const put = (h: Harness, name: string, text: string) => writeFileAtomic(h.path(name), text);

describe("ManifestWatcher", () => {
  it("initial scan: files present at start are in force after ready(); other names are never loaded", async () => {
    const dir = mkdtempSync(join(BASE, "secneuron-watch-"));
    const alice = issueTest({ subject: "alice" });
    writeFileSync(join(dir, "alice.manifest.json"), alice.text);
    for (const ignored of [".hidden.manifest.json", "example.manifest.json", "notes.txt", ".alice.manifest.json.0a1b2c.tmp", "manifest.schema.json"]) {
      writeFileSync(join(dir, ignored), "garbage");
    }
    const h = harness({}, dir);
    expect(h.w.status().state).toBe("not_ready");
    await h.w.ready();
    const st = h.w.status();
    expect(st.state).toBe("ok");
    expect(st.files.map((f) => f.file)).toEqual(["alice.manifest.json"]);
    expect(st.files[0]).toMatchObject({ state: "active", id: alice.manifest.id, subject: "alice", validity: "valid" });
    expect((await h.w.authenticate(alice.token, NOW)).ok).toBe(true);
    expect(h.logs.some((l) => l.event === "manifest.loaded" && l.file === "alice.manifest.json")).toBe(true);
    // Ignored names stay ignored after start, too.
    writeFileSync(h.path(".later.manifest.json"), "garbage");
    writeFileSync(h.path("example.other.manifest.json"), "garbage");
    const bob = issueTest({ subject: "bob" });
    put(h, "bob.manifest.json", bob.text);
    await waitFor("bob active", h.w, () => h.file("bob.manifest.json")?.state === "active");
    expect(h.w.status().files.map((f) => f.file)).toEqual(["alice.manifest.json", "bob.manifest.json"]);
    expect(h.errors).toEqual([]);
  });

  it("add -> authenticates; change (reissue) -> new attributes, old token denied, onRevoke; remove -> denied, onRevoke", async () => {
    const h = harness();
    await h.w.ready();
    expect(h.w.status()).toMatchObject({ state: "ok", keyringSize: 0, files: [] });
    const v1 = issueTest({ attributes: ["task:math", "task:code"] });
    put(h, "alice.manifest.json", v1.text);
    await waitFor("v1 active", h.w, () => h.file("alice.manifest.json")?.id === v1.manifest.id);
    const r1 = await h.w.authenticate(v1.token, NOW);
    expect(r1.ok && r1.userKey.attributes).toEqual(["task:code", "task:math"]);
    const kBefore = h.w.current();

    const v2 = issueTest({ attributes: ["task:math"] });
    put(h, "alice.manifest.json", v2.text);
    await waitFor("v2 active", h.w, () => h.file("alice.manifest.json")?.id === v2.manifest.id);
    expect(h.w.current()).not.toBe(kBefore);
    expect(await h.w.authenticate(v1.token, NOW)).toMatchObject({ ok: false, reason: "unknown_token" });
    const r2 = await h.w.authenticate(v2.token, NOW);
    expect(r2.ok && r2.userKey.attributes).toEqual(["task:math"]);
    expect(r2.ok && r2.manifest.attributes).toEqual(["task:math"]);
    expect(h.revoked).toHaveLength(1);
    expect(h.revoked[0]!.manifest.id).toBe(v1.manifest.id);
    expect(h.revoked[0]!.info).toMatchObject({ reason: "replaced", file: "alice.manifest.json" });
    expect(h.revoked[0]!.info.replacement?.manifest.id).toBe(v2.manifest.id);
    // The snapshot held by an in-flight request is untouched by the swap.
    expect((await kBefore.authenticate(v1.token, NOW)).ok).toBe(true);

    unlinkSync(h.path("alice.manifest.json"));
    await waitFor("alice removed", h.w, () => h.w.status().files.length === 0);
    expect(await h.w.authenticate(v2.token, NOW)).toMatchObject({ ok: false, reason: "unknown_token" });
    expect(h.revoked).toHaveLength(2);
    expect(h.revoked[1]!.manifest.id).toBe(v2.manifest.id);
    expect(h.revoked[1]!.info).toMatchObject({ reason: "removed", file: "alice.manifest.json" });
    expect(h.logs.filter((l) => l.event === "manifest.revoked").map((l) => l.id)).toEqual([v1.manifest.id, v2.manifest.id]);
    expect(h.w.status()).toMatchObject({ state: "ok", keyringSize: 0 });
    expect(h.errors).toEqual([]);
  });

  it("a corrupted good file (truncated, flipped byte, invalid JSON, wrong authority) is rejected; the last good version stays in force", async () => {
    const h = harness();
    await h.w.ready();
    const good = issueTest();
    const name = "alice.manifest.json";
    put(h, name, good.text);
    await waitFor("good active", h.w, () => h.file(name)?.state === "active");
    const flipped = Buffer.from(good.text);
    const sigAt = good.text.indexOf('"signature": "') + 20;
    flipped[sigAt] = flipped[sigAt] === 0x30 ? 0x31 : 0x30;
    const foreign = issueTest({}, newAuthority());
    const corruptions: Array<[string, () => void, string]> = [
      ["truncated in place", () => truncateSync(h.path(name), 100), "MANIFEST_PARSE"],
      ["emptied in place", () => writeFileSync(h.path(name), ""), "MANIFEST_PARSE"],
      ["flipped byte", () => writeFileSync(h.path(name), flipped), "MANIFEST_BAD_SIGNATURE"],
      ["invalid JSON", () => put(h, name, good.text.replace('"subject"', "subject")), "MANIFEST_PARSE"],
      ["wrong authority", () => put(h, name, foreign.text), "MANIFEST_WRONG_AUTHORITY"],
    ];
    for (const [what, corrupt, code] of corruptions) {
      const before = h.logs.length;
      corrupt();
      const st = await waitFor(`${what} -> stale`, h.w, () => {
        const f = h.file(name);
        return f?.state === "stale" && f.code === code ? f : undefined;
      });
      expect(st, what).toMatchObject({ id: good.manifest.id, state: "stale" });
      expect(st.error, what).toContain(name);
      expect(h.w.status().state).toBe("degraded");
      const line = h.logs.slice(before).find((l) => l.event === "manifest.rejected");
      expect(line, what).toMatchObject({ level: "error", file: name, code, kept: "last_good", id: good.manifest.id });
      expect(line!.message).toContain("stays in force");
      const r = await h.w.authenticate(good.token, NOW);
      expect(r.ok, what).toBe(true);
      // Restore, wait until active again.
      put(h, name, good.text);
      await waitFor(`${what} restored`, h.w, () => h.file(name)?.state === "active");
      expect(h.w.status().state).toBe("ok");
    }
    expect(h.revoked).toEqual([]);
    // Consecutive repeats collapse (an in-place write may be seen twice); order is as written.
    const codes = h.errors.map((e) => e.error.code).filter((c, i, a) => i === 0 || a[i - 1] !== c);
    expect(codes).toEqual(corruptions.map((c) => c[2]).filter((c, i, a) => i === 0 || a[i - 1] !== c));
    expect(h.errors.every((e) => e.kept === "last_good" && e.file === name)).toBe(true);
    // A foreign manifest never reached the keyring.
    expect(await h.w.authenticate(foreign.token, NOW)).toMatchObject({ ok: false, reason: "unknown_token" });
  });

  it("a new bad file is absent and reported; fixing it brings it in", async () => {
    const h = harness();
    await h.w.ready();
    const name = "bob.manifest.json";
    writeFileSync(h.path(name), "{ not json");
    const st = await waitFor("bob rejected", h.w, () => (h.file(name)?.state === "rejected" ? h.file(name) : undefined));
    expect(st).toMatchObject({ code: "MANIFEST_PARSE" });
    expect(st.id).toBeUndefined();
    expect(h.w.status()).toMatchObject({ state: "degraded", keyringSize: 0 });
    expect(h.logs.find((l) => l.event === "manifest.rejected")).toMatchObject({ file: name, code: "MANIFEST_PARSE", kept: "none" });
    expect(h.errors).toHaveLength(1);
    const bob = issueTest({ subject: "bob" });
    put(h, name, bob.text);
    await waitFor("bob active", h.w, () => h.file(name)?.state === "active");
    expect((await h.w.authenticate(bob.token, NOW)).ok).toBe(true);
    expect(h.w.status().state).toBe("ok");
  });

  it("duplicates are rejected naming both files; the incumbent stays; removing it lets the copy in without a revoke", async () => {
    const h = harness();
    await h.w.ready();
    const alice = issueTest();
    put(h, "alice.manifest.json", alice.text);
    await waitFor("alice active", h.w, () => h.file("alice.manifest.json")?.state === "active");
    // Same id (a copy), written under a name that sorts first: the incumbent still wins.
    copyFileSync(h.path("alice.manifest.json"), h.path("a-copy.manifest.json"));
    const dup = await waitFor("copy rejected", h.w, () => (h.file("a-copy.manifest.json")?.state === "rejected" ? h.file("a-copy.manifest.json") : undefined));
    expect(dup.code).toBe("MANIFEST_DUPLICATE");
    expect(dup.error).toContain("a-copy.manifest.json");
    expect(dup.error).toContain("alice.manifest.json");
    expect(h.file("alice.manifest.json")?.state).toBe("active");
    expect(h.logs.find((l) => l.event === "manifest.rejected" && l.file === "a-copy.manifest.json")).toMatchObject({ code: "MANIFEST_DUPLICATE", kept: "none" });
    // Same token hash under another id (re-signed by the real issuer).
    const sameHash = signManifest({ ...alice.manifest, id: "c".repeat(32) }, authority.issuerSecretKey);
    put(h, "carol.manifest.json", canonicalFileText(sameHash));
    const dup2 = await waitFor("same-hash rejected", h.w, () => (h.file("carol.manifest.json")?.state === "rejected" ? h.file("carol.manifest.json") : undefined));
    expect(dup2.code).toBe("MANIFEST_DUPLICATE");
    expect(dup2.error).toContain("token hash");
    const r = await h.w.authenticate(alice.token, NOW);
    expect(r.ok && r.file).toBe("alice.manifest.json");
    // Remove the second duplicate, then the incumbent: the copy takes over, same manifest, no revoke.
    unlinkSync(h.path("carol.manifest.json"));
    await waitFor("carol gone", h.w, () => !h.file("carol.manifest.json"));
    unlinkSync(h.path("alice.manifest.json"));
    await waitFor("copy active", h.w, () => h.file("a-copy.manifest.json")?.state === "active" && !h.file("alice.manifest.json"));
    const r2 = await h.w.authenticate(alice.token, NOW);
    expect(r2.ok && r2.file).toBe("a-copy.manifest.json");
    expect(h.revoked).toEqual([]);
    expect(h.w.status().state).toBe("ok");
  });

  it("a changed file that duplicates another keeps its own last good version (stale)", async () => {
    const h = harness();
    await h.w.ready();
    const alice = issueTest({ subject: "alice" });
    const bob = issueTest({ subject: "bob" });
    put(h, "alice.manifest.json", alice.text);
    put(h, "bob.manifest.json", bob.text);
    await waitFor("both active", h.w, () => h.w.status().files.filter((f) => f.state === "active").length === 2);
    put(h, "bob.manifest.json", alice.text);
    const st = await waitFor("bob stale", h.w, () => (h.file("bob.manifest.json")?.state === "stale" ? h.file("bob.manifest.json") : undefined));
    expect(st).toMatchObject({ code: "MANIFEST_DUPLICATE", id: bob.manifest.id });
    expect((await h.w.authenticate(bob.token, NOW)).ok).toBe(true);
    expect((await h.w.authenticate(alice.token, NOW)).ok).toBe(true);
    expect(h.revoked).toEqual([]);
  });

  it("caches the unwrapped key across requests and reloads; expiry is enforced while cached; revoked keys leave the cache", async () => {
    let kdfRuns = 0;
    const open: ManifestOpener = (m, o) => {
      kdfRuns++;
      return openManifestAsync(m, o);
    };
    const cache = new UserKeyCache({ open });
    const h = harness({ cache, clock: () => NOW + 2 * DAY });
    await h.w.ready();
    const alice = issueTest({ notBefore: NOW - DAY, expires: NOW + DAY });
    put(h, "alice.manifest.json", alice.text);
    await waitFor("alice active", h.w, () => h.file("alice.manifest.json")?.state === "active");
    expect(h.file("alice.manifest.json")?.validity).toBe("expired"); // status uses the clock option
    expect((await h.w.authenticate(alice.token, NOW)).ok).toBe(true);
    expect((await h.w.authenticate(alice.token, NOW + 1000)).ok).toBe(true);
    expect(kdfRuns).toBe(1);
    // An unrelated reload swaps the keyring; the cached key survives it.
    const bob = issueTest({ subject: "bob" });
    put(h, "bob.manifest.json", bob.text);
    await waitFor("bob active", h.w, () => h.file("bob.manifest.json")?.state === "active");
    expect((await h.w.authenticate(alice.token, NOW + 2000)).ok).toBe(true);
    expect(kdfRuns).toBe(1);
    // Expired while cached: denied, no KDF.
    expect(await h.w.authenticate(alice.token, NOW + DAY)).toMatchObject({ ok: false, reason: "expired" });
    expect(kdfRuns).toBe(1);
    expect(cache.stats().size).toBe(1);
    unlinkSync(h.path("alice.manifest.json"));
    await waitFor("alice gone", h.w, () => !h.file("alice.manifest.json"));
    expect(cache.stats().size).toBe(0);
  });

  it("denies a request whose manifest is removed while its key is being unwrapped", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const open: ManifestOpener = async (m, o) => {
      await gate;
      return openManifestAsync(m, o);
    };
    const h = harness({ cache: new UserKeyCache({ open }) });
    await h.w.ready();
    const alice = issueTest();
    put(h, "alice.manifest.json", alice.text);
    await waitFor("alice active", h.w, () => h.file("alice.manifest.json")?.state === "active");
    const pending = h.w.authenticate(alice.token, NOW);
    unlinkSync(h.path("alice.manifest.json"));
    await waitFor("alice gone", h.w, () => h.w.current().size === 0);
    release();
    expect(await pending).toMatchObject({ ok: false, reason: "revoked", id: alice.manifest.id });
  });

  it("revokes on narrowed attributes, models or a new token under the same id; not on widening", async () => {
    const base = issueTest({ attributes: ["task:math", "task:code"], models: ["m1", "m2"] }).manifest;
    const re = (over: Partial<KeyManifest>) => ({ ...base, ...over }) as KeyManifest;
    expect(narrowingReason(base, re({ attributes: ["task:math"] }))).toBe("attributes_narrowed");
    expect(narrowingReason(base, re({ models: ["m1"] }))).toBe("models_narrowed");
    expect(narrowingReason(re({ models: undefined }), base)).toBe("models_narrowed");
    expect(narrowingReason(base, re({ tokenSha256: "0".repeat(64) }))).toBe("token_changed");
    expect(narrowingReason(base, re({ attributes: ["task:code", "task:math", "tier:pro"] }))).toBeUndefined();
    expect(narrowingReason(base, re({ models: undefined }))).toBeUndefined();
    expect(narrowingReason(base, re({ expires: "2030-01-01T00:00:00Z" }))).toBeUndefined();

    // Through the watcher: same id re-signed with fewer attributes.
    const h = harness();
    await h.w.ready();
    put(h, "alice.manifest.json", canonicalFileText(base));
    await waitFor("alice active", h.w, () => h.file("alice.manifest.json")?.state === "active");
    const narrowed = signManifest({ ...base, attributes: ["task:math"] }, authority.issuerSecretKey);
    put(h, "alice.manifest.json", canonicalFileText(narrowed));
    await waitFor("revoke", h.w, () => h.revoked.length === 1);
    expect(h.revoked[0]!.info.reason).toBe("attributes_narrowed");
    expect(h.w.current().get(base.id)?.manifest.attributes).toEqual(["task:math"]);
    const widened = signManifest({ ...base, attributes: ["task:code", "task:math", "tier:pro"] }, authority.issuerSecretKey);
    put(h, "alice.manifest.json", canonicalFileText(widened));
    await waitFor("widened", h.w, () => h.w.current().get(base.id)?.manifest.attributes.length === 3);
    expect(h.revoked).toHaveLength(1);
  });

  it("polling mode (bind mounts): add, change in place, remove", async () => {
    const h = harness({ usePolling: true, pollIntervalMs: 30 });
    await h.w.ready();
    const v1 = issueTest();
    writeFileSync(h.path("alice.manifest.json"), v1.text);
    await waitFor("v1 active", h.w, () => h.file("alice.manifest.json")?.id === v1.manifest.id);
    expect((await h.w.authenticate(v1.token, NOW)).ok).toBe(true);
    const v2 = issueTest({ attributes: ["task:code"] });
    writeFileSync(h.path("alice.manifest.json"), v2.text);
    await waitFor("v2 active", h.w, () => h.file("alice.manifest.json")?.id === v2.manifest.id);
    expect(await h.w.authenticate(v1.token, NOW)).toMatchObject({ ok: false, reason: "unknown_token" });
    unlinkSync(h.path("alice.manifest.json"));
    await waitFor("removed", h.w, () => h.w.current().size === 0);
    expect(h.revoked.map((r) => r.info.reason)).toEqual(["replaced", "removed"]);
  });

  it("rescan() picks up the folder; ready() rejects for a missing folder; options are checked; close() stops", async () => {
    const missing = new ManifestWatcher({ dir: join(BASE, "secneuron-no-such-dir-" + process.pid), authority: AUTH, logger: () => {} });
    await expect(missing.ready()).rejects.toMatchObject({ code: "MANIFEST_WATCH_FAILED" });
    expect(missing.status().watchError).toContain("no such directory");
    await missing.close();
    expect(() => new ManifestWatcher({ dir: "x", authority: { issuerKey: "", fingerprint: "" } })).toThrow(/issuerKey/);
    expect(() => new ManifestWatcher({ dir: "x", authority: AUTH, debounceMs: -1 })).toThrow(/debounceMs/);

    const h = harness();
    await h.w.ready();
    const alice = issueTest();
    writeFileSync(h.path("alice.manifest.json"), alice.text);
    await h.w.rescan();
    expect(h.file("alice.manifest.json")?.state).toBe("active");
    await h.w.close();
    const k = h.w.current();
    const gen = h.w.status().generation;
    writeFileSync(h.path("bob.manifest.json"), issueTest({ subject: "bob" }).text);
    unlinkSync(h.path("alice.manifest.json"));
    await new Promise((r) => setTimeout(r, 150)); // nothing to wait for: the watcher is closed
    expect(h.w.current()).toBe(k);
    expect(h.w.status().generation).toBe(gen);
    expect(readFileSync(h.path("bob.manifest.json"), "utf8").length).toBeGreaterThan(0);
  });
});
