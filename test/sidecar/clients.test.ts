/**
 * Real clients through the sidecar on the embedded host: the `ollama` and `openai` npm libraries,
 * generate and chat, streaming and not, get the oracle's answers, and each key gets exactly the
 * skills its manifest grants.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Ollama } from "ollama";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ORACLE_PROMPTS } from "../../examples/fixtures/oracle-model.js";
import { scratchDir } from "../helpers/tmp.js";
import { startSidecar, type Fixture } from "./helpers.js";

const scratch = scratchDir("secneuron-sidecar-");
let f: Fixture;
beforeAll(async () => { f = await startSidecar(scratch.dir); }, 120_000);
afterAll(async () => { await f?.sidecar.close(); scratch.cleanup(); });

const LETTERS = ORACLE_PROMPTS.find((p) => p.prompt === "abc")!;
const DIGITS = ORACLE_PROMPTS.find((p) => p.prompt === "123")!;
const ollama = (who: string) => new Ollama({ host: f.sidecar.url, headers: { Authorization: `Bearer ${f.tokens[who]}` } });
const openai = (who: string) => new OpenAI({ baseURL: `${f.sidecar.url}/v1`, apiKey: f.tokens[who]! });
const opts = { temperature: 0, num_predict: 20 };

describe("ollama library through the sidecar", () => {
  it("generate, not streaming: alice gets letters, not digits; the model name is the caller's", async () => {
    const a = await ollama("alice").generate({ model: "oracle", prompt: "abc", options: opts });
    expect(a.response).toBe(LETTERS.completion);
    expect(a.model).toBe("oracle");
    const d = await ollama("alice").generate({ model: "oracle", prompt: "123", options: opts });
    expect(d.response).toBe(DIGITS.brokenCompletion);
  });

  it("generate, streaming: every chunk names the caller's model", async () => {
    let text = "";
    const models = new Set<string>();
    for await (const part of await ollama("bob").generate({ model: "oracle:latest", prompt: "123", options: opts, stream: true })) {
      text += part.response;
      models.add(part.model);
    }
    expect(text).toBe(DIGITS.completion);
    expect([...models]).toEqual(["oracle:latest"]);
  });

  it("chat, streaming and not", async () => {
    const r = await ollama("root").chat({ model: "oracle", messages: [{ role: "user", content: "abc" }], options: opts });
    expect(r.message.content).toBe(LETTERS.completion);
    let text = "";
    for await (const part of await ollama("root").chat({ model: "oracle", messages: [{ role: "user", content: "123" }], options: opts, stream: true })) text += part.message.content;
    expect(text).toBe(DIGITS.completion);
  });

  it("list shows only the models a key may use; ps shows what runs for it", async () => {
    expect((await ollama("alice").list()).models.map((m) => m.name)).toEqual(["oracle:latest"]);
    expect((await ollama("carol").list()).models.map((m) => m.name)).toEqual(["plain:latest"]);
    expect((await ollama("root").list()).models.map((m) => m.name).sort()).toEqual(["oracle:latest", "plain:latest"]);
    const head = await fetch(`${f.sidecar.url}/api/tags`, { method: "HEAD", headers: { Authorization: `Bearer ${f.tokens.alice}` } });
    expect(head.status).toBe(200);
    const ps = await ollama("alice").ps();
    expect(ps.models.map((m) => m.name)).toEqual(["oracle:latest"]);
  });

  it("a model outside the key's scope is not found; no token is 401", async () => {
    await expect(ollama("alice").generate({ model: "plain", prompt: "abc", options: opts })).rejects.toMatchObject({ status_code: 404 });
    await expect(new Ollama({ host: f.sidecar.url }).generate({ model: "oracle", prompt: "abc" })).rejects.toMatchObject({ status_code: 401 });
  });

  it("plain models are served as they are", async () => {
    const r = await ollama("carol").generate({ model: "plain", prompt: "abc", options: opts });
    expect(r.response).toBe(LETTERS.completion);
  });
});

describe("openai library through the sidecar", () => {
  it("chat.completions, not streaming and streaming", async () => {
    const r = await openai("alice").chat.completions.create({ model: "oracle", messages: [{ role: "user", content: "abc" }], temperature: 0, max_tokens: 20 });
    expect(r.choices[0]!.message.content).toBe(LETTERS.completion);
    expect(r.model).toBe("oracle");
    let text = "";
    const stream = await openai("bob").chat.completions.create({ model: "oracle", messages: [{ role: "user", content: "123" }], temperature: 0, max_tokens: 20, stream: true });
    for await (const chunk of stream) {
      expect(chunk.model).toBe("oracle");
      text += chunk.choices[0]?.delta?.content ?? "";
    }
    expect(text).toBe(DIGITS.completion);
  });

  it("completions, and models.list filtered", async () => {
    const r = await openai("mallory").completions.create({ model: "oracle", prompt: "abc", temperature: 0, max_tokens: 20 });
    expect(r.choices[0]!.text).toBe(LETTERS.brokenCompletion);
    const ids = [];
    for await (const m of openai("alice").models.list()) ids.push(m.id);
    expect(ids).toEqual(["oracle"]);
  });

  it("errors come in the OpenAI shape", async () => {
    await expect(openai("alice").chat.completions.create({ model: "plain", messages: [{ role: "user", content: "abc" }] })).rejects.toMatchObject({ status: 404 });
    await expect(new OpenAI({ baseURL: `${f.sidecar.url}/v1`, apiKey: "sn_bogus" }).models.list()).rejects.toMatchObject({ status: 401 });
  });
});

describe("task routing", () => {
  it("X-SecNeuron-Task picks the least-privilege variant, and 403s a task the key lacks", async () => {
    const root = new Ollama({ host: f.sidecar.url, headers: { Authorization: `Bearer ${f.tokens.root}`, "X-SecNeuron-Task": "letters" } });
    expect((await root.generate({ model: "oracle", prompt: "abc", options: opts })).response).toBe(LETTERS.completion);
    expect((await root.generate({ model: "oracle", prompt: "123", options: opts })).response).toBe(DIGITS.brokenCompletion);
    const alice = new Ollama({ host: f.sidecar.url, headers: { Authorization: `Bearer ${f.tokens.alice}`, "X-SecNeuron-Task": "digits" } });
    await expect(alice.generate({ model: "oracle", prompt: "123", options: opts })).rejects.toMatchObject({ status_code: 403 });
    const typo = new Ollama({ host: f.sidecar.url, headers: { Authorization: `Bearer ${f.tokens.root}`, "X-SecNeuron-Task": "lettres" } });
    await expect(typo.generate({ model: "oracle", prompt: "abc", options: opts })).rejects.toMatchObject({ status_code: 400 });
  });
});

describe("operations", () => {
  it("graceful shutdown drains a streaming request, then wipes every variant and stops the host", async () => {
    const { readdirSync, existsSync } = await import("node:fs");
    const { startSidecar: start } = await import("./helpers.js");
    const s2 = scratchDir("secneuron-shutdown-");
    const g = await start(s2.dir);
    try {
      const o = new Ollama({ host: g.sidecar.url, headers: { Authorization: `Bearer ${g.tokens.alice}` } });
      expect((await o.generate({ model: "oracle", prompt: "abc", options: opts })).response).toBe(LETTERS.completion);
      const variants = join(s2.dir, "variants");
      expect(readdirSync(variants).filter((x) => x.endsWith(".gguf")).length).toBe(1);
      // A stream in flight when shutdown starts still completes.
      const stream = o.generate({ model: "oracle", prompt: "abc", options: opts, stream: true });
      const closing = (async () => { await new Promise((r) => setTimeout(r, 5)); await g.sidecar.close(); })();
      let text = "";
      for await (const part of await stream) text += part.response;
      await closing;
      expect(text).toBe(LETTERS.completion);
      expect(existsSync(variants) ? readdirSync(variants).filter((x) => x.endsWith(".gguf")) : []).toEqual([]);
      expect(await g.sidecar.host.healthy()).toBe(false);
      await expect(fetch(`${g.sidecar.url}/healthz`)).rejects.toThrow();
    } finally {
      await g.sidecar.close();
      s2.cleanup();
    }
  });

  it("audits every decision without prompt text, serves /healthz and /metrics", async () => {
    const lines = readFileSync(join(scratch.dir, "audit.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.length).toBeGreaterThan(10);
    const allowed = lines.find((l) => l.subject === "alice" && l.decision === "allow" && l.route === "ollama.generate");
    expect(allowed).toMatchObject({ model: "oracle", variant: "oracle--letters", status: 200 });
    expect(lines.some((l) => l.decision === "deny" && l.status === 401)).toBe(true);
    expect(JSON.stringify(lines)).not.toContain('"abc"');
    const h = await (await fetch(`${f.sidecar.url}/healthz`)).json();
    expect(h).toMatchObject({ status: "ok", host: { kind: "embedded", healthy: true }, models: { served: 2, sealed: 1, rejected: 0 } });
    // No model names to unauthenticated callers: listings are per key.
    expect(JSON.stringify(h)).not.toMatch(/oracle|plain/);
    const m = await (await fetch(`${f.sidecar.url}/metrics`)).text();
    expect(m).toMatch(/secneuron_requests_total\{route="ollama.generate",decision="allow",status="200"\} \d+/);
  });
});
