import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { canonicalFileText } from "../../plugin/core/manifest/canonical.js";
import { openManifest, parseManifest } from "../../plugin/core/manifest/manifest.js";
import { MANIFEST_SCHEMA, manifestSchemaViolations, pointerToPath } from "../../plugin/core/manifest/schema.js";
import { isWatchedManifestName } from "../../plugin/edges/manifests/manifest-file.js";
import { NOW, expectCode, issueTest } from "./helpers.js";

const ROOT = new URL("../../", import.meta.url).pathname;
const SCHEMA_FILE = join(ROOT, "manifests/manifest.schema.json");
const EXAMPLE_FILE = join(ROOT, "manifests/example.manifest.json");
/** The example's token, published in manifests/README.md (its authority's secrets were discarded). */
const EXAMPLE_TOKEN = `sn_ExAmPlE${"0".repeat(36)}`;

const { manifest } = issueTest();
type Mut = (m: Record<string, any>) => void;

/** One bad manifest per rule: mutation, expected code, expected JSON path. */
const CASES: [string, Mut, string, string][] = [
  ["missing subject", (m) => delete m.subject, "MANIFEST_SCHEMA", "$.subject"],
  ["unknown top-level field", (m) => (m.admin = true), "MANIFEST_SCHEMA", "$.admin"],
  ["unknown nested field", (m) => (m.authority.extra = "x"), "MANIFEST_SCHEMA", "$.authority.extra"],
  ["unknown kdf field", (m) => (m.userKey.kdf.dkLen = 32), "MANIFEST_SCHEMA", "$.userKey.kdf.dkLen"],
  ["id not hex", (m) => (m.id = "Z".repeat(32)), "MANIFEST_SCHEMA", "$.id"],
  ["subject with a space", (m) => (m.subject = "a b"), "MANIFEST_SCHEMA", "$.subject"],
  ["attributes empty", (m) => (m.attributes = []), "MANIFEST_SCHEMA", "$.attributes"],
  ["attribute bad charset", (m) => (m.attributes[1] = "task code"), "MANIFEST_SCHEMA", "$.attributes[1]"],
  ["attribute keyword", (m) => (m.attributes = ["and", "task:code"]), "MANIFEST_SCHEMA", "$.attributes[0]"],
  ["attribute all digits", (m) => (m.attributes = ["123", "task:code"]), "MANIFEST_SCHEMA", "$.attributes[0]"],
  ["attributes unsorted", (m) => (m.attributes = ["task:math", "task:code"]), "MANIFEST_SCHEMA", "$.attributes[1]"],
  ["attributes duplicate", (m) => (m.attributes = ["task:code", "task:code"]), "MANIFEST_SCHEMA", "$.attributes"],
  ["attribute not a string", (m) => (m.attributes[0] = 7), "MANIFEST_SCHEMA", "$.attributes[0]"],
  ["models empty", (m) => (m.models = []), "MANIFEST_SCHEMA", "$.models"],
  ["model short digest", (m) => (m.models[1] = "sha256:abcd"), "MANIFEST_SCHEMA", "$.models[1]"],
  ["model uppercase digest", (m) => (m.models[1] = `sha256:${"AB".repeat(32)}`), "MANIFEST_SCHEMA", "$.models[1]"],
  ["notBefore not UTC", (m) => (m.notBefore = "2025-05-31T14:00:00+02:00"), "MANIFEST_SCHEMA", "$.notBefore"],
  ["notBefore with millis", (m) => (m.notBefore = "2025-05-31T12:00:00.000Z"), "MANIFEST_SCHEMA", "$.notBefore"],
  ["expires impossible date", (m) => (m.expires = "2025-02-30T00:00:00Z"), "MANIFEST_SCHEMA", "$.expires"],
  ["expires before notBefore", (m) => (m.expires = "2025-05-01T00:00:00Z"), "MANIFEST_SCHEMA", "$.expires"],
  ["issuedAt missing", (m) => delete m.issuedAt, "MANIFEST_SCHEMA", "$.issuedAt"],
  ["fingerprint short", (m) => (m.authority.fingerprint = "ab"), "MANIFEST_SCHEMA", "$.authority.fingerprint"],
  ["issuerKey missing", (m) => delete m.authority.issuerKey, "MANIFEST_SCHEMA", "$.authority.issuerKey"],
  ["authority not an object", (m) => (m.authority = "x"), "MANIFEST_SCHEMA", "$.authority"],
  ["tokenSha256 uppercase", (m) => (m.tokenSha256 = m.tokenSha256.toUpperCase()), "MANIFEST_SCHEMA", "$.tokenSha256"],
  ["kdf name", (m) => (m.userKey.kdf.name = "pbkdf2"), "MANIFEST_SCHEMA", "$.userKey.kdf.name"],
  ["kdf logN too low for any use", (m) => (m.userKey.kdf.logN = 4), "MANIFEST_SCHEMA", "$.userKey.kdf.logN"],
  ["kdf logN too high", (m) => (m.userKey.kdf.logN = 30), "MANIFEST_SCHEMA", "$.userKey.kdf.logN"],
  ["kdf logN not integer", (m) => (m.userKey.kdf.logN = "15"), "MANIFEST_SCHEMA", "$.userKey.kdf.logN"],
  ["kdf r", (m) => (m.userKey.kdf.r = 16), "MANIFEST_SCHEMA", "$.userKey.kdf.r"],
  ["salt short", (m) => (m.userKey.kdf.salt = "00"), "MANIFEST_SCHEMA", "$.userKey.kdf.salt"],
  ["aead name", (m) => (m.userKey.aead.name = "aes-128-gcm"), "MANIFEST_SCHEMA", "$.userKey.aead.name"],
  ["nonce missing", (m) => delete m.userKey.aead.nonce, "MANIFEST_SCHEMA", "$.userKey.aead.nonce"],
  ["ciphertext not base64url", (m) => (m.userKey.ciphertext = `${m.userKey.ciphertext}+`), "MANIFEST_SCHEMA", "$.userKey.ciphertext"],
  ["signature missing", (m) => delete m.signature, "MANIFEST_SCHEMA", "$.signature"],
  ["not an object", (m) => Object.setPrototypeOf(m, Array.prototype), "MANIFEST_SCHEMA", "$"],
  ["format", (m) => (m.format = "something-else"), "MANIFEST_UNSUPPORTED_VERSION", "$.format"],
  ["future version", (m) => (m.version = 2), "MANIFEST_UNSUPPORTED_VERSION", "$.version"],
];

function mutated(mut: Mut): unknown {
  const m = structuredClone(manifest) as Record<string, any>;
  mut(m);
  return Object.getPrototypeOf(m) === Array.prototype ? [] : m;
}

describe("schema violations", () => {
  it.each(CASES)("%s -> %s at %s", (_name, mut, code, path) => {
    const value = mutated(mut);
    const e = expectCode(() => parseManifest(value as object), code);
    expect(e.details.path).toBe(path);
    expect(e.message.startsWith(path)).toBe(true);
    // The same through text, as from a file.
    expect(expectCode(() => openManifest(JSON.stringify(value), { now: NOW, allowWeakKdf: true }), code).details.path).toBe(path);
  });

  it("unparseable input names where", () => {
    let e = expectCode(() => parseManifest('{"format": '), "MANIFEST_PARSE");
    expect(e.message).toMatch(/not valid JSON/);
    e = expectCode(() => parseManifest('{\n  "a": 1,\n  x\n}'), "MANIFEST_PARSE");
    expect(e.message).toMatch(/line 3/);
    expectCode(() => parseManifest(Uint8Array.of(0x7b, 0xff, 0x7d)), "MANIFEST_PARSE");
    expectCode(() => parseManifest(""), "MANIFEST_PARSE");
  });

  it("rejects non-canonical text even when the value is valid and signed", () => {
    const canonical = canonicalFileText(manifest);
    for (const variant of [JSON.stringify(manifest), canonical.trimEnd(), `${canonical}\n`, canonical.replace(/\n/g, "\r\n"), canonical.replace('"id"', '"\\u0069d"')]) {
      expectCode(() => parseManifest(variant), "MANIFEST_NOT_CANONICAL");
    }
    expect(parseManifest(canonical).id).toBe(manifest.id);
  });

  it("a __proto__ member is an unknown field, not a prototype", () => {
    const text = canonicalFileText(manifest).replace('{\n  "attributes"', '{\n  "__proto__": {},\n  "attributes"');
    expect(text).toContain('"__proto__"');
    const e = expectCode(() => parseManifest(text), "MANIFEST_SCHEMA");
    expect(e.details.path).toBe('$.__proto__');
  });

  it("pointerToPath", () => {
    expect(pointerToPath("")).toBe("$");
    expect(pointerToPath("/a/0/b~1c")).toBe('$.a[0]["b/c"]');
  });

  it("reports every violation, deepest first", () => {
    const v = manifestSchemaViolations({ ...manifest, id: 1, authority: { fingerprint: "x" } });
    expect(v.map((x) => x.path)).toEqual(expect.arrayContaining(["$.id", "$.authority.fingerprint", "$.authority.issuerKey"]));
  });
});

describe("manifests/ folder", () => {
  it("manifest.schema.json is the schema in core (set SECNEURON_REGEN=1 to rewrite)", () => {
    const want = `${JSON.stringify(MANIFEST_SCHEMA, null, 2)}\n`;
    if (process.env.SECNEURON_REGEN === "1") writeFileSync(SCHEMA_FILE, want);
    expect(readFileSync(SCHEMA_FILE, "utf8")).toBe(want);
    const s = JSON.parse(want);
    expect(s.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
    // additionalProperties: false on every object schema.
    const walk = (n: any, at: string): void => {
      if (n && typeof n === "object") {
        if (n.type === "object") expect(n.additionalProperties, at).toBe(false);
        for (const [k, v] of Object.entries(n)) walk(v, `${at}/${k}`);
      }
    };
    walk(s, "#");
  });

  it("example.manifest.json uses every field, is valid, canonical, signed, and opens with its published token", () => {
    const text = readFileSync(EXAMPLE_FILE, "utf8");
    const value = JSON.parse(text);
    expect(manifestSchemaViolations(value)).toEqual([]);
    const everyField = Object.keys((MANIFEST_SCHEMA as any).properties).sort();
    expect(Object.keys(value).sort()).toEqual(everyField);
    const opened = openManifest(text, { now: Date.parse("2030-01-01T00:00:00Z"), token: EXAMPLE_TOKEN });
    expect(opened.userKey!.attributes).toEqual(value.attributes);
    expect(opened.manifest.userKey.kdf.logN).toBe(15);
    expectCode(() => openManifest(text, { now: Date.parse("2040-01-01T00:00:00Z") }), "MANIFEST_EXPIRED");
    // The helper fails on purpose on a corrupted copy.
    expectCode(() => openManifest(text.replace(value.subject, "mallory"), { now: Date.parse("2030-01-01T00:00:00Z") }), "MANIFEST_BAD_SIGNATURE");
  });

  it("a watcher would skip the example and the schema", () => {
    expect(isWatchedManifestName("example.manifest.json")).toBe(false);
    expect(isWatchedManifestName("manifest.schema.json")).toBe(false);
    expect(isWatchedManifestName("README.md")).toBe(false);
    expect(isWatchedManifestName(".alice.manifest.json.1a2b.tmp")).toBe(false);
    expect(isWatchedManifestName(".manifest.json")).toBe(false);
    expect(isWatchedManifestName("alice.manifest.json")).toBe(true);
    expect(isWatchedManifestName("/srv/manifests/team-a.1234abcd.manifest.json")).toBe(true);
    for (const f of readdirSync(join(ROOT, "manifests"))) expect(isWatchedManifestName(f), f).toBe(false);
  });
});

describe("core/manifest purity", () => {
  it("imports no I/O module and never reads the clock", () => {
    const dir = join(ROOT, "plugin/core/manifest");
    for (const f of readdirSync(dir)) {
      const src = readFileSync(join(dir, f), "utf8");
      expect(src, f).not.toMatch(/from "node:(fs|net|http|https|child_process)/);
      expect(src, f).not.toMatch(/Date\.now\(|new Date\(\)|process\.env/);
    }
  });
});
