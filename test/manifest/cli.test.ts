import { chmodSync, cpSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../plugin/cli/main.js";
import type { CliIo } from "../../plugin/cli/args.js";
import { AUTHORITY_FILES, loadAuthority, loadAuthorityPublic } from "../../plugin/edges/authority.js";
import { isTokenShaped } from "../../plugin/core/manifest/token.js";
import { SecNeuronError } from "../../plugin/errors.js";
import { scratchDir } from "../helpers/tmp.js";

const scratch = scratchDir("secneuron-manifest-cli-");
const dir = join(scratch.dir, "authority");
afterAll(() => scratch.cleanup());

function capture(): CliIo & { stdout: string; stderr: string } {
  const io = { stdout: "", stderr: "", isTTY: false, out(t: string) { io.stdout += `${t}\n`; }, err(t: string) { io.stderr += `${t}\n`; } };
  return io;
}

async function run(...argv: string[]) {
  const io = capture();
  const code = await main(argv, io);
  return { code, ...io, json: () => JSON.parse(io.stdout) };
}

/** Runs with --json, expects exit 1 and the error code; returns the error object. */
async function failsWith(code: string, ...argv: string[]) {
  const r = await run(...argv, "--json");
  expect(r.code, r.stdout + r.stderr).toBe(1);
  const e = r.json().error;
  expect(e.code, e.message).toBe(code);
  return e as { code: string; message: string; details: Record<string, unknown> };
}

const mode = (p: string) => statSync(p).mode & 0o777;
let fingerprint = "";
let issuerKey = "";

beforeAll(async () => {
  const r = await run("authority", "init", dir);
  expect(r.code, r.stderr).toBe(0);
  const m = /fingerprint\s+([0-9a-f]{64})/.exec(r.stdout);
  fingerprint = m![1]!;
  issuerKey = /issuer key\s+([0-9a-f]{64})/.exec(r.stdout)![1]!;
});

describe("secneuron authority", () => {
  it("init writes a 0700 directory of 0600 files, atomically, and prints the fingerprint", async () => {
    expect(mode(dir)).toBe(0o700);
    const files = readdirSync(dir).sort();
    expect(files).toEqual(Object.values(AUTHORITY_FILES).sort());
    for (const f of files) expect(mode(join(dir, f)), f).toBe(0o600);
    const a = loadAuthority(dir);
    expect(a.fingerprint).toBe(fingerprint);
    expect(a.issuerKey).toBe(issuerKey);
    expect(a.warnings).toEqual([]);
    const show = await run("authority", "show", dir, "--json");
    expect(show.code).toBe(0);
    expect(show.json()).toMatchObject({ fingerprint, issuerKey, shortFingerprint: `fame:${fingerprint.slice(0, 16)}` });
  });

  it("refuses to overwrite an authority unless --force", async () => {
    const copy = join(scratch.dir, "authority-copy");
    cpSync(dir, copy, { recursive: true });
    await failsWith("AUTHORITY_EXISTS", "authority", "init", copy);
    expect(loadAuthority(copy).fingerprint).toBe(fingerprint);
    const r = await run("authority", "init", copy, "--force", "--json");
    expect(r.code).toBe(0);
    expect(r.json().fingerprint).not.toBe(fingerprint);
    expect(readdirSync(copy).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  it("loadAuthority names the missing or corrupt file, and warns about permissions", () => {
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        return `${(e as SecNeuronError).code} ${(e as SecNeuronError).details.file ?? ""}`.trim();
      }
      return "OK";
    };
    expect(code(() => loadAuthority(join(scratch.dir, "nope")))).toBe("AUTHORITY_NOT_FOUND");
    const broken = join(scratch.dir, "broken");
    const fresh = () => {
      rmSync(broken, { recursive: true, force: true });
      cpSync(dir, broken, { recursive: true });
    };
    fresh();
    rmSync(join(broken, AUTHORITY_FILES.masterKey));
    expect(code(() => loadAuthority(broken))).toBe(`AUTHORITY_FILE_MISSING ${AUTHORITY_FILES.masterKey}`);
    expect(code(() => loadAuthorityPublic(broken))).toBe("OK"); // verification needs no secret
    fresh();
    const mk = readFileSync(join(broken, AUTHORITY_FILES.masterKey));
    mk[mk.length - 1]! ^= 1;
    writeFileSync(join(broken, AUTHORITY_FILES.masterKey), mk);
    expect(code(() => loadAuthority(broken))).toBe(`AUTHORITY_CORRUPT ${AUTHORITY_FILES.masterKey}`);
    fresh();
    writeFileSync(join(broken, AUTHORITY_FILES.issuerSecretKey), new Uint8Array(31));
    expect(code(() => loadAuthority(broken))).toBe(`AUTHORITY_CORRUPT ${AUTHORITY_FILES.issuerSecretKey}`);
    fresh();
    writeFileSync(join(broken, AUTHORITY_FILES.issuerSecretKey), new Uint8Array(32).fill(9));
    expect(code(() => loadAuthority(broken))).toBe(`AUTHORITY_CORRUPT ${AUTHORITY_FILES.issuerSecretKey}`);
    fresh();
    writeFileSync(join(broken, AUTHORITY_FILES.publicParams), "garbage");
    expect(code(() => loadAuthority(broken))).toBe(`AUTHORITY_CORRUPT ${AUTHORITY_FILES.publicParams}`);
    fresh();
    writeFileSync(join(broken, AUTHORITY_FILES.summary), "{");
    expect(code(() => loadAuthority(broken))).toBe(`AUTHORITY_CORRUPT ${AUTHORITY_FILES.summary}`);
    fresh();
    chmodSync(join(broken, AUTHORITY_FILES.masterKey), 0o644);
    expect(loadAuthority(broken).warnings.join("\n")).toMatch(/abe-master-key\.bin is accessible by group\/others \(mode 0644\)/);
  });
});

describe("secneuron issue + verify-manifest", () => {
  const file = join(scratch.dir, "alice.manifest.json");
  let token = "";

  it("issue prints the token once (stdout only) and writes a manifest without it", async () => {
    const r = await run("issue", "--authority", dir, "--subject", "alice", "--attrs", "task:math,task:code", "--attrs", "tier:pro", "--models", "llama3.2:1b", "--expires", "30d", "--out", file);
    expect(r.code, r.stderr).toBe(0);
    token = r.stdout.trim();
    expect(isTokenShaped(token)).toBe(true);
    expect(r.stdout).toBe(`${token}\n`);
    expect(r.stderr).not.toContain(token);
    expect(r.stderr).toMatch(/attributes\s+task:code, task:math, tier:pro/);
    const text = readFileSync(file, "utf8");
    expect(text).not.toContain(token);
    expect(text).not.toContain(token.slice(3));
    expect(mode(file)).toBe(0o600);
    const m = JSON.parse(text);
    expect(m).toMatchObject({ subject: "alice", attributes: ["task:code", "task:math", "tier:pro"], models: ["llama3.2:1b"], authority: { fingerprint, issuerKey } });
    expect(Date.parse(m.expires) - Date.parse(m.notBefore)).toBe(30 * 86_400_000);
  });

  it("verify-manifest accepts it with the token and the authority (text and JSON)", async () => {
    let r = await run("verify-manifest", file, "--authority", dir, "--token", token);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^OK/);
    expect(r.stdout).toMatch(/token\s+matches; user key unwrapped, attributes match/);
    expect(r.stderr).toBe("");
    const tokenFile = join(scratch.dir, "token.txt");
    writeFileSync(tokenFile, `${token}\n`);
    r = await run("verify-manifest", file, "--issuer-key", issuerKey, "--fingerprint", fingerprint, "--token-file", tokenFile, "--json");
    expect(r.code).toBe(0);
    expect(r.json()).toMatchObject({ valid: true, subject: "alice", authority: { checked: true }, token: { checked: true, userKeyUnwrapped: true }, warnings: [] });
    r = await run("verify-manifest", file);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/NOT CHECKED/);
    expect(r.stderr).toMatch(/warning: issuer not checked/);
  });

  it("issue --json prints one object with the token; --out may be a directory", async () => {
    const outDir = join(scratch.dir, "watched");
    mkdirSync(outDir);
    const r = await run("issue", "--authority", dir, "--subject", "svc-bot", "--attrs", "task:code", "--expires", "never", "--out", outDir, "--json");
    expect(r.code, r.stdout).toBe(0);
    const j = r.json();
    expect(Object.keys(j)).toEqual(expect.arrayContaining(["token", "manifest", "subject", "id"]));
    expect(j.manifest).toBe(join(outDir, `svc-bot.${j.id.slice(0, 8)}.manifest.json`));
    expect(j.expires).toBeNull();
    expect(r.stdout.split(j.token).length).toBe(2); // exactly once
    expect(readFileSync(j.manifest, "utf8")).not.toContain(j.token);
  });

  it("gives a distinct code for each failure", async () => {
    // Wrong token (another manifest's), malformed token.
    const other = (await run("issue", "--authority", dir, "--subject", "bob", "--attrs", "task:code", "--not-before", "2099-01-01", "--expires", "2099-02-01T00:00:00Z", "--out", join(scratch.dir, "bob.manifest.json"), "--json")).json();
    await failsWith("MANIFEST_WRONG_TOKEN", "verify-manifest", file, "--token", other.token);
    await failsWith("MANIFEST_WRONG_TOKEN", "verify-manifest", file, "--token", "sn_short");
    // Validity window.
    await failsWith("MANIFEST_EXPIRED", "verify-manifest", file, "--at", "2099-01-01T00:00:00Z");
    const nyv = await failsWith("MANIFEST_NOT_YET_VALID", "verify-manifest", other.manifest);
    expect(nyv.details.notBefore).toBe("2099-01-01T00:00:00Z");
    expect((await run("verify-manifest", other.manifest, "--at", "2099-01-15T00:00:00+01:00", "--token", other.token)).code).toBe(0);
    // Wrong authority.
    const wrong = await failsWith("MANIFEST_WRONG_AUTHORITY", "verify-manifest", file, "--issuer-key", "11".repeat(32));
    expect(wrong.details.path).toBe("$.authority.issuerKey");
    await failsWith("MANIFEST_WRONG_AUTHORITY", "verify-manifest", file, "--fingerprint", "22".repeat(32));
    const otherAuth = join(scratch.dir, "authority-copy"); // re-initialised with --force above
    await failsWith("MANIFEST_WRONG_AUTHORITY", "verify-manifest", file, "--authority", otherAuth);
    // Tampered, unparseable, schema, missing.
    const text = readFileSync(file, "utf8");
    const bad = join(scratch.dir, "bad.manifest.json");
    writeFileSync(bad, text.replace('"tier:pro"', '"tier:max"'));
    await failsWith("MANIFEST_BAD_SIGNATURE", "verify-manifest", bad);
    writeFileSync(bad, text.slice(0, 100));
    await failsWith("MANIFEST_PARSE", "verify-manifest", bad);
    writeFileSync(bad, text.replace(/"subject": "alice"/, '"subject": "alice bob"'));
    const schema = await failsWith("MANIFEST_SCHEMA", "verify-manifest", bad);
    expect(schema.details.path).toBe("$.subject");
    expect(schema.details.file).toBe(bad);
    writeFileSync(bad, text.replace(/\n/g, "\r\n"));
    await failsWith("MANIFEST_NOT_CANONICAL", "verify-manifest", bad);
    await failsWith("MANIFEST_READ_FAILED", "verify-manifest", join(scratch.dir, "missing.manifest.json"));
    // Text mode: the code is on stderr.
    const r = await run("verify-manifest", file, "--token", other.token);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\[MANIFEST_WRONG_TOKEN\]/);
  });

  it("refuses to overwrite --out unless --force; reports authority problems", async () => {
    await failsWith("MANIFEST_FILE_EXISTS", "issue", "--authority", dir, "--subject", "alice", "--attrs", "task:code", "--out", file);
    await failsWith("AUTHORITY_NOT_FOUND", "issue", "--authority", join(scratch.dir, "nope"), "--subject", "a", "--attrs", "task:code", "--out", join(scratch.dir, "x.manifest.json"));
  });

  it("usage errors exit 2", async () => {
    const base = ["--authority", dir, "--subject", "alice", "--out", join(scratch.dir, "u.manifest.json")];
    for (const argv of [
      ["issue", ...base],
      ["issue", ...base, "--attrs", "and"],
      ["issue", ...base, "--attrs", "task:code", "--models", "sha256:1234"],
      ["issue", ...base, "--attrs", "task:code", "--expires", "soon"],
      ["issue", ...base, "--attrs", "task:code", "--not-before", "2025-01-01T00:00:00"],
      ["issue", ...base, "--attrs", "task:code", "--not-before", "2030-01-01", "--expires", "2029-01-01"],
      ["issue", "--authority", dir, "--subject", "a b", "--attrs", "x", "--out", "y"],
      ["verify-manifest"],
      ["verify-manifest", file, "--authority", dir, "--issuer-key", issuerKey],
      ["verify-manifest", file, "--issuer-key", "xyz"],
      ["verify-manifest", file, "--token", "a", "--token-file", "b"],
      ["authority"],
      ["authority", "frob", dir],
    ]) {
      const r = await run(...argv);
      expect(r.code, argv.join(" ")).toBe(2);
    }
    expect((await run("issue", "--help")).stdout).toMatch(/Usage: secneuron issue/);
    expect((await run("verify-manifest", "--help")).stdout).toMatch(/MANIFEST_BAD_SIGNATURE/);
    expect((await run("--help")).stdout).toMatch(/verify-manifest/);
  });
});
