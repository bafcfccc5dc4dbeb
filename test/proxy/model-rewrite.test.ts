import { describe, expect, it } from "vitest";
import fc from "fast-check";
import type { Transform } from "node:stream";
import {
  createModelRenamer,
  createResponseRewriter,
  filterListing,
  responseKindFor,
  type ResponseKind,
} from "../../plugin/proxy/model-rewrite.js";
import { ROUTES } from "../../plugin/proxy/routes.js";

const VARIANT = "secneuron-7f3a9c:latest";
const renamer = createModelRenamer([
  [VARIANT, "llama3"],
  ["secneuron-7f3a9cff:latest", "qwen:7b"],
  ["nomic-embed:latest", "nomic-embed:latest"], // served as is (identity)
]);

async function run(t: Transform, chunks: Buffer[]): Promise<string> {
  const out: Buffer[] = [];
  t.on("data", (c: Buffer) => out.push(Buffer.from(c)));
  const done = new Promise<void>((resolve, reject) => {
    t.on("end", resolve);
    t.on("error", reject);
  });
  for (const c of chunks) t.write(c);
  t.end();
  await done;
  return Buffer.concat(out).toString("utf8");
}

const oneShot = (kind: ResponseKind, text: string) => run(createResponseRewriter(kind, renamer), [Buffer.from(text)]);

function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    parts.push(buf.subarray(prev, p));
    prev = p;
  }
  parts.push(buf.subarray(prev));
  return parts;
}

const NDJSON = [
  `{"model":"${VARIANT}","created_at":"2024-01-01T00:00:00Z","response":"héllo 👋","done":false}`,
  `{"model":"secneuron-7f3a9c","response":" wörld","done":false}`,
  `{"model":"secneuron-7f3a9cff:latest","response":"x","done":false}`,
  "",
  `{"error":"model \\"${VARIANT}\\" not found, try pulling it first"}`,
  `not json mentioning ${VARIANT}`,
  `not json but harmless`,
  `{"model":"nomic-embed","done":true,"total_duration":123}`,
].join("\r\n") + "\n";

const SSE = [
  `: keep-alive comment`,
  ``,
  `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","model":"${VARIANT}","choices":[{"delta":{"content":"hi ✓"}}]}`,
  ``,
  `event: response.created`,
  `data: {"type":"response.created","response":{"id":"r1","model":"${VARIANT}"}}`,
  ``,
  `event: message_start`,
  `data: {"type":"message_start",`,
  `data: "message":{"model":"${VARIANT}","role":"assistant"}}`,
  ``,
  `: comment leaking ${VARIANT}`,
  `data: {"choices":[]}`,
  ``,
  `data: raw text naming ${VARIANT}`,
  ``,
  `data: [DONE]`,
  ``,
  ``,
].join("\n");

describe("NDJSON rewriter", () => {
  it("renames every line and drops unparseable lines naming a variant", async () => {
    const out = await oneShot("ndjson", NDJSON);
    expect(out).not.toMatch(/secneuron/);
    const lines = out.split("\r\n");
    expect(JSON.parse(lines[0]!)).toMatchObject({ model: "llama3", response: "héllo 👋" });
    expect(JSON.parse(lines[1]!)).toMatchObject({ model: "llama3" });
    expect(JSON.parse(lines[2]!)).toMatchObject({ model: "qwen:7b" });
    expect(lines[3]).toBe("");
    expect(JSON.parse(lines[4]!)).toEqual({ error: 'model "llama3" not found, try pulling it first' });
    expect(lines[5]).toBe("not json but harmless");
    expect(lines[6]).toBe('{"model":"nomic-embed","done":true,"total_duration":123}\n');
  });
  it("gives the same bytes however the stream is split (property)", async () => {
    const expected = await oneShot("ndjson", NDJSON);
    const buf = Buffer.from(NDJSON);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat(), { maxLength: 40 }), async (cuts) => {
        expect(await run(createResponseRewriter("ndjson", renamer), splitAt(buf, cuts))).toBe(expected);
      }),
      { numRuns: 300 },
    );
  });
  it("splits byte by byte too", async () => {
    const buf = Buffer.from(NDJSON);
    const bytes = [...buf].map((b) => Buffer.from([b]));
    expect(await run(createResponseRewriter("ndjson", renamer), bytes)).toBe(await oneShot("ndjson", NDJSON));
  });
  it("fails the stream when a line exceeds the limit", async () => {
    const t = createResponseRewriter("ndjson", renamer, { maxLineBytes: 100 });
    await expect(run(t, [Buffer.from("x".repeat(200))])).rejects.toThrow(/longer than 100/);
  });
  it("passes through untouched with no variants in scope", async () => {
    const t = createResponseRewriter("ndjson", createModelRenamer([["a", "a"]]));
    expect(await run(t, [Buffer.from(NDJSON)])).toBe(NDJSON);
  });
});

describe("SSE rewriter", () => {
  it("renames data frames (multi-line too), keeps [DONE], drops leaking comments/text", async () => {
    const out = await oneShot("sse", SSE);
    expect(out).not.toMatch(/secneuron/);
    expect(out).toContain(": keep-alive comment\n\n");
    expect(out).toContain('"model":"llama3"');
    expect(out).toContain('event: response.created\ndata: {"type":"response.created","response":{"id":"r1","model":"llama3"}}\n\n');
    expect(out).toContain('event: message_start\ndata: {"type":"message_start","message":{"model":"llama3","role":"assistant"}}\n\n');
    expect(out).toContain('data: {"choices":[]}\n\n');
    expect(out).not.toContain("raw text");
    expect(out.endsWith("data: [DONE]\n\n")).toBe(true);
  });
  it("handles \\r\\n and \\r line ends", async () => {
    const crlf = SSE.replace(/\n/g, "\r\n");
    const out = await oneShot("sse", crlf);
    expect(out).not.toMatch(/secneuron/);
    expect(out).toContain('"model":"llama3"');
    expect(out.endsWith("data: [DONE]\r\n\r\n")).toBe(true);
    const cr = await oneShot("sse", SSE.replace(/\n/g, "\r"));
    expect(cr).not.toMatch(/secneuron/);
    expect(cr.endsWith("data: [DONE]\r\r")).toBe(true);
  });
  it("gives the same bytes however the stream is split (property, LF/CRLF/CR)", async () => {
    for (const text of [SSE, SSE.replace(/\n/g, "\r\n"), SSE.replace(/\n/g, "\r")]) {
      const expected = await oneShot("sse", text);
      const buf = Buffer.from(text);
      await fc.assert(
        fc.asyncProperty(fc.array(fc.nat(), { maxLength: 40 }), async (cuts) => {
          expect(await run(createResponseRewriter("sse", renamer), splitAt(buf, cuts))).toBe(expected);
        }),
        { numRuns: 150 },
      );
    }
  });
  it("random streams of frames: chunked == one-shot, and no variant survives (property)", async () => {
    const frame = fc.oneof(
      fc.record({ model: fc.constantFrom(VARIANT, "secneuron-7f3a9c", "other"), text: fc.string() }).map((r) => `data: ${JSON.stringify({ model: r.model, choices: [{ delta: { content: r.text } }] })}\n\n`),
      fc.constant("data: [DONE]\n\n"),
      fc.string().map((s) => `: ${s.replace(/[\r\n]/g, "")}\n\n`),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(frame, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 20 }), async (frames, cuts) => {
        const text = frames.join("");
        const expected = await oneShot("sse", text);
        expect(expected).not.toMatch(/secneuron-7f3a9c/);
        expect(await run(createResponseRewriter("sse", renamer), splitAt(Buffer.from(text), cuts))).toBe(expected);
      }),
      { numRuns: 200 },
    );
  });
});

describe("whole JSON bodies", () => {
  it("rewrites nested echoes (embeddings, /api/show modelfile, /v1/models/:model)", async () => {
    const show = JSON.stringify({ modelfile: `# FROM ${VARIANT}\nFROM /blobs/sha256-x`, details: { parent_model: VARIANT }, template: "{{ .Prompt }}" });
    const out = JSON.parse(await oneShot("json", show));
    expect(out).toEqual({ modelfile: "# FROM llama3\nFROM /blobs/sha256-x", details: { parent_model: "llama3" }, template: "{{ .Prompt }}" });
    const one = JSON.parse(await oneShot("json", `{"id":"${VARIANT}","object":"model","created":1,"owned_by":"library"}`));
    expect(one.id).toBe("llama3");
  });
  it("keeps unchanged bodies byte for byte, withholds unparseable leaks", async () => {
    const body = '{"embeddings":[[0.1,0.2]], "model":"nomic-embed"}';
    expect(await oneShot("json", body)).toBe(body);
    expect(await oneShot("json", `oops ${VARIANT}`)).toBe('{"error":"upstream response withheld by the proxy"}');
    expect(await oneShot("json", "404 page not found")).toBe("404 page not found");
  });
  it("refuses bodies over the limit", async () => {
    const t = createResponseRewriter("json", renamer, { maxBodyBytes: 10 });
    await expect(run(t, [Buffer.from(`{"model":"${VARIANT}"}`)])).rejects.toThrow(/larger than 10/);
  });
});

describe("listings", () => {
  const tags = {
    models: [
      { name: VARIANT, model: VARIANT, digest: "d1", details: { parent_model: "" } },
      { name: "secret-model:latest", model: "secret-model:latest", digest: "d2" },
      { name: "nomic-embed:latest", model: "nomic-embed:latest", digest: "d3" },
      { name: "secneuron-7f3a9c", model: "secneuron-7f3a9c:latest", digest: "d1" }, // duplicate of the first
      { name: VARIANT, model: "secret-model:latest" }, // disagreeing entry: dropped
      "garbage",
    ],
  };
  it("filters and renames /api/tags and /api/ps", () => {
    for (const kind of ["ollama-tags", "ollama-ps"] as const) {
      expect(filterListing(kind, tags, renamer)).toEqual({
        models: [
          { name: "llama3:latest", model: "llama3:latest", digest: "d1", details: { parent_model: "" } },
          { name: "nomic-embed:latest", model: "nomic-embed:latest", digest: "d3" },
        ],
      });
    }
  });
  it("filters and renames /v1/models", () => {
    const body = {
      object: "list",
      data: [
        { id: VARIANT, object: "model", created: 1, owned_by: "library" },
        { id: "secneuron-7f3a9cff:latest", object: "model", created: 2, owned_by: "library" },
        { id: "access-group-admins", object: "model", created: 3, owned_by: "x" },
      ],
    };
    expect(filterListing("openai-models", body, renamer)).toEqual({
      object: "list",
      data: [
        { id: "llama3:latest", object: "model", created: 1, owned_by: "library" },
        { id: "qwen:7b", object: "model", created: 2, owned_by: "library" },
      ],
    });
  });
  it("fails closed on malformed listings, through the Transform too", async () => {
    expect(filterListing("ollama-tags", { models: "x" }, renamer)).toEqual({ models: [] });
    expect(filterListing("openai-models", [], renamer)).toEqual({ object: "list", data: [] });
    expect(JSON.parse(await oneShot("ollama-tags", "not json"))).toEqual({ models: [] });
    const out = JSON.parse(await oneShot("ollama-ps", JSON.stringify(tags)));
    expect(out.models.map((m: { name: string }) => m.name)).toEqual(["llama3:latest", "nomic-embed:latest"]);
  });
  it("an empty scope lists nothing", () => {
    expect(filterListing("ollama-tags", tags, createModelRenamer([]))).toEqual({ models: [] });
  });
});

describe("responseKindFor", () => {
  const byId = (id: string) => ROUTES.find((r) => r.id === id)!;
  it("picks listing, sse, json, ndjson", () => {
    expect(responseKindFor(byId("ollama.tags"), 200, "application/json; charset=utf-8")).toBe("ollama-tags");
    expect(responseKindFor(byId("ollama.tags"), 500, "application/json")).toBe("json");
    expect(responseKindFor(byId("openai.models"), 200, "application/json")).toBe("openai-models");
    expect(responseKindFor(byId("openai.chat"), 200, "text/event-stream")).toBe("sse");
    expect(responseKindFor(byId("ollama.chat"), 200, "application/x-ndjson")).toBe("ndjson");
    expect(responseKindFor(byId("ollama.chat"), 200, "application/json")).toBe("json");
    expect(responseKindFor(byId("ollama.chat"), 404, "text/plain")).toBe("ndjson");
  });
});
