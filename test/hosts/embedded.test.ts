/**
 * The embedded host end to end: a real llama.cpp child serving the oracle fixtures, driven by
 * the real `ollama` and `openai` client libraries. Greedy decoding (temperature 0) with 20
 * tokens gives the oracle's exact continuations. Needs the compiled worker (`npm run build`).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Ollama } from "ollama";
import OpenAI from "openai";
import { ORACLE_MAX_TOKENS, ORACLE_PROMPTS, encodeOracle } from "../../examples/fixtures/build-fixtures.js";
import { kv } from "../../plugin/core/gguf/types.js";
import { writeGgufFile } from "../../plugin/edges/gguf-file.js";
import { EngineError, GgufFormatError, SecNeuronError } from "../../plugin/errors.js";
import { EmbeddedHost, humanParameterCount } from "../../plugin/hosts/embedded/index.js";
import type { HostTarget } from "../../plugin/hosts/host-adapter.js";
import { oracleFixtures, scratchDir } from "../engine/helpers.js";
import { rejection } from "../helpers/rejection.js";

const scratch = scratchDir("embedded-host");
const host = new EmbeddedHost({ threads: 1, contextSize: 256 });
const Q8 = "oracle-q8";
const F16 = "oracle-f16:latest";
const GREEDY = { temperature: 0, num_predict: ORACLE_MAX_TOKENS };
let files: Awaited<ReturnType<typeof oracleFixtures>>;
let target: HostTarget;
let ollama: Ollama;
let openai: OpenAI;

const oracle = (prompt: string): string => ORACLE_PROMPTS.find((p) => p.prompt === prompt)!.completion;

beforeAll(async () => {
  files = await oracleFixtures();
  await host.start();
  target = await host.ensureModel(Q8, files.q8_0);
  await host.ensureModel(F16, files.f16);
  ollama = new Ollama({ host: target.baseUrl, headers: { ...target.headers } });
  // The OpenAI client sends `Authorization: Bearer <apiKey>`: the host key is that bearer token.
  openai = new OpenAI({ baseURL: `${target.baseUrl}/v1`, apiKey: hostKey(target), maxRetries: 0 });
});

afterAll(async () => {
  await host.stop();
  scratch.cleanup();
});


async function post(path: string, body: unknown): Promise<{ status: number; type: string; text: string }> {
  const r = await fetch(`${target.baseUrl}${path}`, { method: "POST", headers: { "content-type": "application/json", ...target.headers }, body: JSON.stringify(body) });
  return { status: r.status, type: r.headers.get("content-type") ?? "", text: await r.text() };
}

describe("registration", () => {
  it("returns a stable loopback target and is cheap when already registered", async () => {
    expect(target.baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(target.modelName).toBe(Q8);
    const t0 = performance.now();
    const again = await host.ensureModel(Q8, files.q8_0);
    expect(performance.now() - t0).toBeLessThan(50);
    expect(again).toEqual(target);
    expect(await host.healthy()).toBe(true);
  });

  it("validates files and names before the child sees them", async () => {
    const bad = join(scratch.dir, "garbage.gguf");
    writeFileSync(bad, Buffer.from("not a gguf file at all, just bytes"));
    const e = await rejection(host.ensureModel("garbage", bad));
    expect(e).toBeInstanceOf(SecNeuronError);
    expect(e).toBeInstanceOf(GgufFormatError);
    const missing = await rejection(host.ensureModel("missing", join(scratch.dir, "nope.gguf")));
    expect(missing).toBeInstanceOf(SecNeuronError);
    const name = await rejection(host.ensureModel("has space", files.q8_0));
    expect(name).toBeInstanceOf(EngineError);
    expect((name as EngineError).code).toBe("HOST_BAD_MODEL_NAME");
    expect(host.registered()).toEqual([Q8, F16]);
  });

  it("formats parameter counts like Ollama", () => {
    expect(humanParameterCount(8_030_261_248)).toBe("8.0B");
    expect(humanParameterCount(494_032_768)).toBe("494.03M");
    expect(humanParameterCount(591_488)).toBe("591.49K");
  });
});

describe("Ollama API through the ollama library", () => {
  it("generate, not streaming: exact oracle answers on q8_0 and f16, with counts", async () => {
    for (const model of [Q8, F16]) {
      for (const prompt of ["abc", "123"]) {
        const r = await ollama.generate({ model, prompt, stream: false, options: GREEDY });
        expect(r.model).toBe(model);
        expect(r.response).toBe(oracle(prompt));
        expect(r.done).toBe(true);
        expect(r.done_reason).toBe("length");
        expect(r.eval_count).toBe(ORACLE_MAX_TOKENS);
        expect(r.prompt_eval_count).toBe(4); // BOS + 3 byte tokens
        expect(r.context.length).toBe(4 + ORACLE_MAX_TOKENS);
        expect(r.total_duration).toBeGreaterThan(0);
      }
    }
  });

  it("generate, streaming: NDJSON chunks add up, last line done with counts", async () => {
    const parts: string[] = [];
    let last: Awaited<ReturnType<typeof ollama.generate>> | undefined;
    for await (const chunk of await ollama.generate({ model: Q8, prompt: "xyz", stream: true, options: GREEDY })) {
      expect(chunk.model).toBe(Q8);
      parts.push(chunk.response ?? "");
      last = chunk;
    }
    expect(parts.join("")).toBe(oracle("xyz"));
    expect(parts.length).toBeGreaterThan(2);
    expect(last?.done).toBe(true);
    expect(last?.eval_count).toBe(ORACLE_MAX_TOKENS);
    const raw = await post("/api/generate", { model: Q8, prompt: "abc", options: { temperature: 0, num_predict: 2 } });
    expect(raw.type).toBe("application/x-ndjson");
    expect(raw.text.trimEnd().split("\n").map((l) => JSON.parse(l).done)).toEqual([false, false, true]);
  });

  it("chat (raw wrapper: contents joined plainly), streaming and not", async () => {
    const r = await ollama.chat({ model: F16, messages: [{ role: "user", content: "abc" }], stream: false, options: GREEDY });
    expect(r.model).toBe(F16);
    expect(r.message).toEqual({ role: "assistant", content: oracle("abc") });
    expect(r.done_reason).toBe("length");
    expect(r.eval_count).toBe(ORACLE_MAX_TOKENS);
    let text = "";
    let done = false;
    for await (const c of await ollama.chat({ model: Q8, messages: [{ role: "user", content: "789" }], stream: true, options: GREEDY })) {
      expect(c.model).toBe(Q8);
      expect(c.message.role).toBe("assistant");
      text += c.message.content;
      done = c.done;
    }
    expect(text).toBe(oracle("789"));
    expect(done).toBe(true);
  });

  it("honours stop sequences, num_predict and seeded sampling", async () => {
    const s = await ollama.generate({ model: Q8, prompt: "abc", stream: false, options: { ...GREEDY, stop: ["mno"] } });
    expect(s.response).toBe("defghijkl");
    expect(s.done_reason).toBe("stop");
    const n = await ollama.generate({ model: Q8, prompt: "abc", stream: false, options: { temperature: 0, num_predict: 3 } });
    expect(n.response).toBe("def");
    const seeded = { temperature: 0.8, seed: 42, num_predict: 8 };
    const a = await ollama.generate({ model: Q8, prompt: "123", stream: false, options: seeded });
    const b = await ollama.generate({ model: Q8, prompt: "123", stream: false, options: seeded });
    expect(a.response).toBe(b.response);
    expect(a.eval_count).toBe(8);
  });

  it("empty prompt loads the model (done_reason load)", async () => {
    const r = await ollama.generate({ model: F16, prompt: "", stream: false });
    expect(r.done).toBe(true);
    expect(r.done_reason).toBe("load");
  });

  it("a model with a chat template is chatted with through that template", async () => {
    const { metadata, tensors } = encodeOracle("q8_0");
    const template =
      "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
      "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    metadata.set("tokenizer.chat_template", kv.str(template));
    const path = join(scratch.dir, "oracle-chatml.gguf");
    await writeGgufFile(path, metadata, tensors);
    await host.ensureModel("oracle-chatml", path);
    try {
      const r = await ollama.chat({ model: "oracle-chatml", messages: [{ role: "user", content: "abc" }], stream: false, options: GREEDY });
      expect(r.done).toBe(true);
      // The prompt is the rendered template, not "abc": the answer differs from the raw one.
      expect(r.prompt_eval_count).toBeGreaterThan(4);
      const again = await ollama.chat({ model: "oracle-chatml", messages: [{ role: "user", content: "abc" }], stream: false, options: GREEDY });
      expect(again.message.content).toBe(r.message.content);
      expect((await ollama.show({ model: "oracle-chatml" })).template).toBe(template);
    } finally {
      await host.removeModel("oracle-chatml");
    }
  });

  it("list, show, ps, version", async () => {
    const tags = await ollama.list();
    expect(tags.models.map((m) => m.name)).toEqual([Q8, F16]);
    const q8 = tags.models[0]!;
    expect(q8.model).toBe(Q8);
    expect(q8.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(q8.size).toBeGreaterThan(0);
    expect(q8.details).toMatchObject({ format: "gguf", family: "llama", quantization_level: "Q8_0" });
    expect(tags.models[1]!.details.quantization_level).toBe("F16");

    const show = await ollama.show({ model: Q8 });
    expect(show.details.family).toBe("llama");
    expect(show.model_info).toMatchObject({ "general.architecture": "llama", "llama.context_length": 256, "llama.embedding_length": 128 });
    expect(show.capabilities).toContain("completion");
    expect(JSON.stringify(show)).not.toContain(files.q8_0); // the tmpfs path never leaks

    const ps = await ollama.ps();
    expect(ps.models.map((m) => m.name).sort()).toEqual([F16, Q8].sort());
    expect(ps.models[0]!.size_vram).toBe(0);

    const v = await ollama.version();
    expect(v.version).toMatch(/^\d+\.\d+\.\d+/);
    const root = await fetch(`${target.baseUrl}/`, { headers: { ...target.headers } });
    expect(await root.text()).toBe("Ollama is running");
  });

  it("embed and legacy embeddings", async () => {
    const e = await ollama.embed({ model: Q8, input: ["abc", "123"] });
    expect(e.model).toBe(Q8);
    expect(e.embeddings.length).toBe(2);
    expect(e.embeddings[0]!.length).toBe(128);
    const norm = Math.hypot(...e.embeddings[0]!);
    expect(norm).toBeCloseTo(1, 5);
    expect(e.embeddings[0]).not.toEqual(e.embeddings[1]);
    const legacy = await ollama.embeddings({ model: Q8, prompt: "abc" });
    expect(legacy.embedding.length).toBe(128);
  });

  it("unknown model: 404 {error}", async () => {
    const e = await rejection(ollama.generate({ model: "nope", prompt: "abc", stream: false }));
    expect((e as unknown as { status_code: number }).status_code).toBe(404);
    expect(e.message).toContain("not found");
    const raw = await post("/api/chat", { model: "nope", messages: [{ role: "user", content: "abc" }] });
    expect(raw.status).toBe(404);
    expect(JSON.parse(raw.text)).toEqual({ error: 'model "nope" not found, try pulling it first' });
    const bad = await post("/api/generate", { prompt: "abc" });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.text)).toEqual({ error: "model is required" });
  });
});

describe("OpenAI-compatible API through the openai library", () => {
  it("chat.completions, not streaming", async () => {
    const r = await openai.chat.completions.create({ model: Q8, messages: [{ role: "user", content: "abc" }], temperature: 0, max_tokens: ORACLE_MAX_TOKENS });
    expect(r.model).toBe(Q8);
    expect(r.object).toBe("chat.completion");
    expect(r.choices[0]!.message.content).toBe(oracle("abc"));
    expect(r.choices[0]!.finish_reason).toBe("length");
    expect(r.usage).toEqual({ prompt_tokens: 4, completion_tokens: ORACLE_MAX_TOKENS, total_tokens: 4 + ORACLE_MAX_TOKENS });
  });

  it("chat.completions, streaming (SSE ending [DONE]) with usage", async () => {
    const stream = await openai.chat.completions.create({
      model: F16,
      messages: [{ role: "user", content: "123" }],
      temperature: 0,
      max_tokens: ORACLE_MAX_TOKENS,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let finish: string | null = null;
    let usage: unknown;
    for await (const c of stream) {
      expect(c.model).toBe(F16);
      expect(c.object).toBe("chat.completion.chunk");
      if (c.choices[0]) {
        text += c.choices[0].delta.content ?? "";
        finish = c.choices[0].finish_reason ?? finish;
      }
      if (c.usage) usage = c.usage;
    }
    expect(text).toBe(oracle("123"));
    expect(finish).toBe("length");
    expect(usage).toMatchObject({ completion_tokens: ORACLE_MAX_TOKENS });
    const raw = await post("/v1/chat/completions", { model: Q8, messages: [{ role: "user", content: "abc" }], temperature: 0, max_tokens: 1, stream: true });
    expect(raw.type).toBe("text/event-stream");
    expect(raw.text.endsWith("data: [DONE]\n\n")).toBe(true);
  });

  it("completions, streaming and not", async () => {
    const r = await openai.completions.create({ model: Q8, prompt: "789", temperature: 0, max_tokens: ORACLE_MAX_TOKENS });
    expect(r.model).toBe(Q8);
    expect(r.object).toBe("text_completion");
    expect(r.choices[0]!.text).toBe(oracle("789"));
    let text = "";
    for await (const c of await openai.completions.create({ model: F16, prompt: "xyz", temperature: 0, max_tokens: ORACLE_MAX_TOKENS, stream: true })) {
      expect(c.model).toBe(F16);
      text += c.choices[0]?.text ?? "";
    }
    expect(text).toBe(oracle("xyz"));
  });

  it("models.list and models.retrieve", async () => {
    const list = await openai.models.list();
    expect(list.data.map((m) => m.id)).toEqual([Q8, F16]);
    expect(list.data[0]).toMatchObject({ object: "model", owned_by: "library" });
    const one = await openai.models.retrieve(F16);
    expect(one.id).toBe(F16);
    const e = await rejection(openai.models.retrieve("nope"));
    expect(e).toBeInstanceOf(OpenAI.NotFoundError);
  });

  it("unknown model: 404 {error: {message, type}}", async () => {
    const e = await rejection(openai.chat.completions.create({ model: "nope", messages: [{ role: "user", content: "abc" }] }));
    expect(e).toBeInstanceOf(OpenAI.NotFoundError);
    expect((e as InstanceType<typeof OpenAI.APIError>).status).toBe(404);
    const raw = await post("/v1/completions", { model: "nope", prompt: "abc" });
    expect(raw.status).toBe(404);
    expect(JSON.parse(raw.text)).toEqual({ error: { message: 'model "nope" not found, try pulling it first', type: "not_found_error", param: null, code: null } });
  });

  it("embeddings", async () => {
    const r = await openai.embeddings.create({ model: Q8, input: "abc", encoding_format: "float" });
    expect(r.model).toBe(Q8);
    expect(r.data[0]!.embedding.length).toBe(128);
  });
});

describe("concurrency and supervision", () => {
  it("8 concurrent requests on two models all succeed with exact answers", async () => {
    const jobs = Array.from({ length: 8 }, (_, i) => {
      const model = i % 2 === 0 ? Q8 : F16;
      const prompt = ORACLE_PROMPTS[i % ORACLE_PROMPTS.length]!.prompt;
      if (i % 4 === 3) {
        return openai.completions
          .create({ model, prompt, temperature: 0, max_tokens: ORACLE_MAX_TOKENS })
          .then((r) => [r.choices[0]!.text, prompt] as const);
      }
      return ollama.generate({ model, prompt, stream: i % 4 === 1, options: GREEDY } as never).then(async (r: unknown) => {
        if (Symbol.asyncIterator in (r as object)) {
          let t = "";
          for await (const c of r as AsyncIterable<{ response: string }>) t += c.response;
          return [t, prompt] as const;
        }
        return [(r as { response: string }).response, prompt] as const;
      });
    });
    for (const [text, prompt] of await Promise.all(jobs)) expect(text).toBe(oracle(prompt));
  });

  it("a client that goes away mid-stream frees the model for the next request", async () => {
    const ac = new AbortController();
    const r = await fetch(`${target.baseUrl}/api/generate`, { method: "POST", headers: { ...target.headers }, body: JSON.stringify({ model: Q8, prompt: "abc", options: { temperature: 0 } }), signal: ac.signal });
    const reader = r.body!.getReader();
    await reader.read();
    ac.abort();
    await reader.read().catch(() => undefined);
    const next = await ollama.generate({ model: Q8, prompt: "123", stream: false, options: GREEDY });
    expect(next.response).toBe(oracle("123"));
    expect(await host.healthy()).toBe(true);
  });

  it("a killed child fails its in-flight requests with 502 in each API's shape, then restarts with the same models", async () => {
    const pid = host.childPid!;
    expect(pid).toBeGreaterThan(0);
    // Freeze the child so the requests are surely in flight, then kill it.
    process.kill(pid, "SIGSTOP");
    const inflightOllama = post("/api/generate", { model: Q8, prompt: "abc", stream: false, options: GREEDY });
    const inflightOpenai = post("/v1/chat/completions", { model: Q8, messages: [{ role: "user", content: "abc" }], temperature: 0 });
    await new Promise((r) => setTimeout(r, 200));
    process.kill(pid, "SIGKILL");
    const [o, a] = await Promise.all([inflightOllama, inflightOpenai]);
    expect(o.status).toBe(502);
    expect(typeof JSON.parse(o.text).error).toBe("string");
    expect(a.status).toBe(502);
    expect(JSON.parse(a.text).error).toMatchObject({ type: "api_error" });
    expect(JSON.parse(a.text).error.message).toContain("llama.cpp");

    // Restarted at once (not waiting for a request).
    await vi.waitFor(() => expect(host.childPid ?? pid).not.toBe(pid), { timeout: 30_000, interval: 50 });
    expect(host.restarts).toBeGreaterThanOrEqual(1);
    const r = await ollama.generate({ model: F16, prompt: "abc", stream: false, options: GREEDY });
    expect(r.response).toBe(oracle("abc"));
    expect(await host.healthy()).toBe(true);
  });

  it("a child dying mid-stream ends the NDJSON stream with an error line", async () => {
    const pid = host.childPid!;
    // No num_predict: the oracle never emits an end token, so this runs until the context is full.
    const stream = await ollama.generate({ model: Q8, prompt: "abc", stream: true, options: { temperature: 0 } });
    let text = "";
    const e = await rejection(
      (async () => {
        for await (const c of stream) {
          if (text === "") {
            process.kill(pid, "SIGSTOP");
            process.kill(pid, "SIGKILL");
          }
          text += c.response ?? "";
        }
      })(),
    );
    expect(text.startsWith("d")).toBe(true);
    expect(e.message).toContain("llama.cpp");
    await vi.waitFor(() => expect(host.childPid ?? pid).not.toBe(pid), { timeout: 30_000, interval: 50 });
  });

  it("removeModel makes the name 404 and drops it from listings", async () => {
    await host.removeModel(F16);
    const e = await rejection(ollama.generate({ model: F16, prompt: "abc", stream: false, options: GREEDY }));
    expect((e as unknown as { status_code: number }).status_code).toBe(404);
    const oe = await rejection(openai.chat.completions.create({ model: F16, messages: [{ role: "user", content: "abc" }] }));
    expect(oe).toBeInstanceOf(OpenAI.NotFoundError);
    expect((await ollama.list()).models.map((m) => m.name)).toEqual([Q8]);
    expect((await ollama.ps()).models.map((m) => m.name)).not.toContain(F16);
    // The other model is untouched.
    expect((await ollama.generate({ model: Q8, prompt: "123", stream: false, options: GREEDY })).response).toBe(oracle("123"));
  });

  it("without automatic restarts the next request restarts the child; stop() ends it", async () => {
    const h = new EmbeddedHost({ threads: 1, contextSize: 256, maxRestartsPerMinute: 0 });
    await h.start();
    const t = await h.ensureModel(Q8, files.q4_0);
    const c = new Ollama({ host: t.baseUrl, headers: { ...t.headers } });
    expect((await c.generate({ model: Q8, prompt: "abc", stream: false, options: GREEDY })).response).toBe(oracle("abc"));
    const dead = h.childPid!;
    process.kill(dead, "SIGKILL");
    await vi.waitFor(() => expect(h.childPid).toBeUndefined(), { timeout: 10_000, interval: 20 });
    expect(await h.healthy()).toBe(false);
    // Same URL, same registration, a fresh child.
    const r = await new OpenAI({ baseURL: `${t.baseUrl}/v1`, apiKey: hostKey(t), maxRetries: 0 }).completions.create({ model: Q8, prompt: "123", temperature: 0, max_tokens: ORACLE_MAX_TOKENS });
    expect(r.choices[0]!.text).toBe(oracle("123"));
    const pid = h.childPid!;
    expect(pid).not.toBe(dead);
    await h.stop();
    expect(await h.healthy()).toBe(false);
    expect(() => process.kill(pid, 0)).toThrow();
  });
});

function hostKey(t: HostTarget): string {
  return String(t.headers?.authorization ?? "").replace(/^Bearer /, "");
}

describe("the host's loopback ports take only requests with its key", () => {
  it("front server and child refuse requests without the key", async () => {
    const r = await fetch(`${target.baseUrl}/api/tags`);
    expect(r.status).toBe(401);
    const wrong = await fetch(`${target.baseUrl}/api/tags`, { headers: { authorization: "Bearer nope" } });
    expect(wrong.status).toBe(401);
    const child = (host as unknown as { child?: { port: number } }).child;
    expect(child?.port).toBeGreaterThan(0);
    const direct = await fetch(`http://127.0.0.1:${child!.port}/api/tags`);
    expect(direct.status).toBe(401);
    const ok = await fetch(`${target.baseUrl}/api/tags`, { headers: { ...target.headers } });
    expect(ok.status).toBe(200);
  });
});
