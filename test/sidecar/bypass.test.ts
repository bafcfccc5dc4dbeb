/**
 * The bypass suite: a table of requests by Alice (key: task:letters, scope: model "oracle") and
 * a few other keys, trying every route, every way of naming a model, URL and Unicode encodings,
 * case, duplicated fields and headers, method overrides, oversized and malformed bodies, revoked
 * and expired keys. A bypass is any success that yields the digits skill (locked for Alice), the
 * out-of-scope model `plain`, an admin operation, or a variant's internal name.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ORACLE_PROMPTS } from "../../examples/fixtures/oracle-model.js";
import { scratchDir } from "../helpers/tmp.js";
import { startSidecar, type Fixture } from "./helpers.js";
import { rawRequest } from "./raw-http.js";

const scratch = scratchDir("secneuron-bypass-");
let f: Fixture;
const DIGITS = ORACLE_PROMPTS.find((p) => p.prompt === "123")!;

beforeAll(async () => {
  f = await startSidecar(scratch.dir);
  const now = Date.now();
  f.issue("expired", { attrs: ["admin", "role:admin"], notBefore: now - 3 * 86_400_000, expires: now - 86_400_000 });
  f.issue("future", { attrs: ["admin", "role:admin"], notBefore: now + 86_400_000, expires: now + 2 * 86_400_000 });
  f.issue("revoked", { attrs: ["admin", "role:admin"] });
  await waitFor(async () => (await gen("future")).status === 401 && (await gen("revoked")).status === 200);
  rmSync(join(f.manifestsDir, "revoked.manifest.json"));
  await waitFor(async () => (await gen("revoked")).status === 401);
}, 120_000);
afterAll(async () => { await f?.sidecar.close(); scratch.cleanup(); });

async function waitFor(cond: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("condition not reached");
}

const OPTS = { temperature: 0, num_predict: 20 };
const bearer = (who: string): [string, string] => ["authorization", `Bearer ${f.tokens[who]}`];
const json = (o: unknown) => JSON.stringify(o);
function gen(who: string, model = "oracle", prompt = "123") {
  return rawRequest(f.sidecar.url, "POST", "/api/generate", [bearer(who), ["content-type", "application/json"]], json({ model, prompt, stream: false, options: OPTS }));
}

interface Case {
  name: string;
  method?: string;
  path: string;
  who?: string | null;
  headers?: Array<[string, string]>;
  body?: string | Buffer;
  /** Expected status (exact) or a class: "4xx". */
  status: number | "4xx";
}

const gbody = (model: unknown, extra: Record<string, unknown> = {}) => json({ model, prompt: "123", stream: false, options: OPTS, ...extra });
const chat = (model: unknown) => json({ model, messages: [{ role: "user", content: "123" }], stream: false, options: OPTS });
const oai = (model: unknown) => json({ model, messages: [{ role: "user", content: "123" }], temperature: 0, max_tokens: 20 });

const CASES: Case[] = [
  // Controls: allowed, and the locked skill stays locked.
  { name: "control: generate on oracle", path: "/api/generate", body: gbody("oracle"), status: 200 },
  { name: "control: chat on oracle", path: "/api/chat", body: chat("oracle"), status: 200 },
  { name: "control: openai chat on oracle", path: "/v1/chat/completions", body: oai("oracle"), status: 200 },
  { name: "control: oracle:latest", path: "/api/generate", body: gbody("oracle:latest"), status: 200 },
  // The out-of-scope model, on every route.
  { name: "generate plain", path: "/api/generate", body: gbody("plain"), status: 404 },
  { name: "generate plain:latest", path: "/api/generate", body: gbody("plain:latest"), status: 404 },
  { name: "chat plain", path: "/api/chat", body: chat("plain"), status: 404 },
  { name: "embed plain", path: "/api/embed", body: json({ model: "plain", input: "123" }), status: 404 },
  { name: "embeddings plain", path: "/api/embeddings", body: json({ model: "plain", prompt: "123" }), status: 404 },
  { name: "show plain", path: "/api/show", body: json({ model: "plain" }), status: 404 },
  { name: "show plain via legacy name", path: "/api/show", body: json({ name: "plain" }), status: 404 },
  { name: "openai chat plain", path: "/v1/chat/completions", body: oai("plain"), status: 404 },
  { name: "openai completions plain", path: "/v1/completions", body: json({ model: "plain", prompt: "123", max_tokens: 20 }), status: 404 },
  { name: "openai embeddings plain", path: "/v1/embeddings", body: json({ model: "plain", input: "123" }), status: 404 },
  { name: "openai responses plain", path: "/v1/responses", body: json({ model: "plain", input: "123" }), status: 404 },
  { name: "anthropic messages plain", path: "/v1/messages", body: json({ model: "plain", max_tokens: 20, messages: [{ role: "user", content: "123" }] }), status: 404 },
  { name: "openai model plain (path)", method: "GET", path: "/v1/models/plain", status: 404 },
  { name: "openai model plain (encoded path)", method: "GET", path: "/v1/models/%70lain", status: 404 },
  { name: "openai model traversal", method: "GET", path: "/v1/models/oracle%2F..%2Fplain", status: "4xx" },
  // Ways of naming a model.
  { name: "query ?model=plain", path: "/api/generate?model=plain", body: gbody("oracle"), status: 400 },
  { name: "query ?Model=plain", path: "/api/generate?Model=plain", body: gbody("oracle"), status: 400 },
  { name: "query encoded m%6Fdel", path: "/api/generate?m%6Fdel=plain", body: gbody("oracle"), status: 400 },
  { name: "duplicate model keys", path: "/api/generate", body: '{"model":"oracle","model":"plain","prompt":"123","stream":false}', status: 400 },
  { name: "model and MODEL", path: "/api/generate", body: '{"model":"oracle","MODEL":"plain","prompt":"123","stream":false}', status: 400 },
  { name: "Model only", path: "/api/generate", body: '{"Model":"plain","prompt":"123","stream":false}', status: 400 },
  { name: "escaped key m\\u006fdel", path: "/api/generate", body: '{"model":"oracle","m\\u006fdel":"plain","prompt":"123","stream":false}', status: 400 },
  { name: "model and name disagree (show)", path: "/api/show", body: json({ model: "oracle", name: "plain" }), status: 400 },
  { name: "uppercase PLAIN", path: "/api/generate", body: gbody("PLAIN"), status: 404 },
  { name: "uppercase ORACLE", path: "/api/generate", body: gbody("ORACLE"), status: 404 },
  { name: "zero-width space", path: "/api/generate", body: gbody("pla\u200bin"), status: 400 },
  { name: "fullwidth letters", path: "/api/generate", body: gbody("ｐｌａｉｎ"), status: 400 },
  { name: "trailing space", path: "/api/generate", body: gbody("plain "), status: 400 },
  { name: "path-like name", path: "/api/generate", body: gbody("../plain"), status: "4xx" },
  { name: "registry-prefixed name", path: "/api/generate", body: gbody("library/plain"), status: 404 },
  { name: "variant name guess (digits)", path: "/api/generate", body: gbody("oracle--digits"), status: 404 },
  { name: "variant name guess (all)", path: "/api/generate", body: gbody("oracle--digits.letters"), status: 404 },
  { name: "model as array", path: "/api/generate", body: gbody(["plain"]), status: 400 },
  { name: "model as object", path: "/api/generate", body: gbody({ name: "plain" }), status: 400 },
  { name: "very long model name", path: "/api/generate", body: gbody("p".repeat(300)), status: 400 },
  // Paths.
  { name: "percent-encoded route", path: "/api/%67enerate", body: gbody("plain"), status: 404 },
  { name: "double slash", path: "//api/generate", body: gbody("plain"), status: "4xx" },
  { name: "dot segment", path: "/api/./generate", body: gbody("plain"), status: 404 },
  { name: "dot-dot segment", path: "/api/x/../generate", body: gbody("plain"), status: 404 },
  { name: "upper-case path", path: "/API/generate", body: gbody("plain"), status: 404 },
  { name: "trailing slash", path: "/api/generate/", body: gbody("plain"), status: 404 },
  { name: "absolute-form target", path: "http://evil/api/generate", body: gbody("plain"), status: "4xx" },
  { name: "unknown route", path: "/api/unknown", body: gbody("plain"), status: 404 },
  { name: "unknown version", method: "GET", path: "/v2/models", status: 404 },
  { name: "GET on a POST route", method: "GET", path: "/api/generate", status: "4xx" },
  { name: "OPTIONS preflight", method: "OPTIONS", path: "/api/generate", status: "4xx" },
  // Method overrides.
  { name: "X-HTTP-Method-Override", path: "/api/generate", headers: [["x-http-method-override", "DELETE"]], body: gbody("oracle"), status: 400 },
  { name: "_method query", path: "/api/generate?_method=DELETE", body: gbody("oracle"), status: 400 },
  // Admin-only routes as a user.
  { name: "pull", path: "/api/pull", body: json({ model: "plain" }), status: 403 },
  { name: "push", path: "/api/push", body: json({ model: "oracle" }), status: 403 },
  { name: "create", path: "/api/create", body: json({ model: "x", from: "plain" }), status: 403 },
  { name: "copy", path: "/api/copy", body: json({ source: "plain", destination: "mine" }), status: 403 },
  { name: "delete", method: "DELETE", path: "/api/delete", body: json({ model: "oracle" }), status: 403 },
  { name: "blob head", method: "HEAD", path: `/api/blobs/sha256:${"a".repeat(64)}`, status: 403 },
  { name: "blob upload", path: `/api/blobs/sha256:${"a".repeat(64)}`, headers: [["content-type", "application/octet-stream"]], body: Buffer.alloc(64), status: 403 },
  // Authentication tricks.
  { name: "no token", who: null, path: "/api/generate", body: gbody("oracle"), status: 401 },
  { name: "bogus token", who: null, headers: [["authorization", "Bearer sn_bogus"]], path: "/api/generate", body: gbody("oracle"), status: 401 },
  { name: "basic auth", who: null, headers: [["authorization", "Basic YWxpY2U6eA=="]], path: "/api/generate", body: gbody("oracle"), status: 401 },
  { name: "two Authorization headers", who: null, headers: [["authorization", "Bearer ALICE"], ["authorization", "Bearer ROOT"]], path: "/api/generate", body: gbody("oracle"), status: "4xx" },
  { name: "Bearer and X-Api-Key differ", who: "alice", headers: [["x-api-key", "ROOT"]], path: "/api/generate", body: gbody("oracle"), status: "4xx" },
  { name: "expired key", who: "expired", path: "/api/generate", body: gbody("oracle"), status: 401 },
  { name: "not yet valid key", who: "future", path: "/api/generate", body: gbody("oracle"), status: 401 },
  { name: "revoked key (manifest removed)", who: "revoked", path: "/api/generate", body: gbody("oracle"), status: 401 },
  { name: "expired key on an admin route", who: "expired", path: "/api/pull", body: json({ model: "plain" }), status: 401 },
  // Task routing.
  { name: "task not granted", headers: [["x-secneuron-task", "digits"]], path: "/api/generate", body: gbody("oracle"), status: 403 },
  { name: "granted and not granted tasks", headers: [["x-secneuron-task", "letters,digits"]], path: "/api/generate", body: gbody("oracle"), status: 403 },
  { name: "duplicated task header", headers: [["x-secneuron-task", "letters"], ["x-secneuron-task", "digits"]], path: "/api/generate", body: gbody("oracle"), status: 400 },
  { name: "task name case", headers: [["x-secneuron-task", "DIGITS"]], path: "/api/generate", body: gbody("oracle"), status: 400 },
  // Loading fields.
  { name: "use_mmap false (would defeat live revoke)", path: "/api/generate", body: gbody("oracle", { options: { ...OPTS, use_mmap: false } }), status: 403 },
  // Bodies.
  { name: "malformed JSON", path: "/api/generate", body: '{"model":"plain",', status: 400 },
  { name: "array body", path: "/api/generate", body: '["plain"]', status: 400 },
  { name: "string body", path: "/api/generate", body: '"plain"', status: 400 },
  { name: "empty body", path: "/api/generate", body: "", status: 400 },
  { name: "invalid UTF-8", path: "/api/generate", body: Buffer.concat([Buffer.from('{"model":"pla'), Buffer.from([0xff, 0xfe]), Buffer.from('in"}')]), status: 400 },
  { name: "oversized body", path: "/api/generate", body: `{"model":"plain","prompt":"${"x".repeat(33 << 20)}"}`, status: 413 },
  { name: "chunked body naming plain", path: "/api/generate", headers: [["transfer-encoding", "chunked"]], body: gbody("plain"), status: 404 },
];

describe("bypass suite", () => {
  it(`has at least 60 requests (${CASES.length})`, () => {
    expect(CASES.length).toBeGreaterThanOrEqual(60);
  });

  for (const c of CASES) {
    it(c.name, async () => {
      const who = c.who === undefined ? "alice" : c.who;
      const headers: Array<[string, string]> = [...(who ? [bearer(who)] : []), ...(c.body !== undefined && !(c.headers ?? []).some(([k]) => k === "content-type") ? [["content-type", "application/json"] as [string, string]] : []), ...(c.headers ?? [])];
      const r = await rawRequest(f.sidecar.url, c.method ?? "POST", c.path, headers, c.body);
      if (c.status === "4xx") expect(r.status, r.body.slice(0, 300)).toBeGreaterThanOrEqual(400);
      else expect(r.status, r.body.slice(0, 300)).toBe(c.status);
      if (r.status < 500) expect(r.status).not.toBe(502);
      // Never a bypass: no locked skill, no out-of-scope model, no internal variant name.
      expect(r.body).not.toContain(DIGITS.completion);
      // Variant names never leak (unless the attacker typed one, and it is echoed in the error).
      if (!String(c.body ?? "").includes("oracle--")) expect(r.body).not.toContain("oracle--");
      if (r.status < 400) expect(r.body).not.toMatch(/"plain/);
    });
  }

  it("every decision reached the audit log", async () => {
    const { readFileSync } = await import("node:fs");
    const lines = readFileSync(join(scratch.dir, "audit.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.filter((l) => l.subject === "alice" || l.subject === null).length).toBeGreaterThanOrEqual(CASES.length - 6);
    expect(lines.every((l) => ["allow", "deny", "error"].includes(l.decision))).toBe(true);
  });
});
