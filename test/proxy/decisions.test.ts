// Table-driven: tricky requests -> the decision (route id + models) or the exact rejection.
import { describe, expect, it } from "vitest";
import { matchRoute, type HeaderBag } from "../../plugin/proxy/routes.js";
import { extractModels } from "../../plugin/proxy/request-model.js";
import { apiErrorFrom } from "../../plugin/proxy/api-error.js";

type Outcome =
  | { route: string; access?: string; models?: string[]; stream?: boolean; upstream?: string }
  | { deny: string; status: number };

interface Case {
  name: string;
  method: string;
  url: string;
  body?: string | Uint8Array;
  headers?: HeaderBag;
  want: Outcome;
}

function decide(c: Case): Outcome {
  const m = matchRoute(c.method, c.url, c.headers ?? {});
  if (m.kind === "deny") return { deny: m.error.code, status: m.error.status };
  const bytes = c.body === undefined ? undefined : typeof c.body === "string" ? Buffer.from(c.body, "utf8") : c.body;
  const x = extractModels(m, bytes, { maxBodyBytes: 4096 });
  if (x.kind === "deny") return { deny: x.error.code, status: x.error.status };
  const out: Outcome = { route: m.route.id, access: m.route.access, models: x.refs.map((r) => `${r.where}=${r.name}`), upstream: m.upstreamPath };
  if (x.stream !== undefined) out.stream = x.stream;
  return out;
}

const g = (model: string, extra = "") => `{"model":${JSON.stringify(model)},"prompt":"hi"${extra}}`;
const deny = (code: string, status: number): Outcome => ({ deny: code, status });

const CASES: Case[] = [
  // ---- public
  { name: "GET /", method: "GET", url: "/", want: { route: "ollama.root", access: "public", models: [], upstream: "/" } },
  { name: "HEAD /", method: "HEAD", url: "/", want: { route: "ollama.root", access: "public", models: [], upstream: "/" } },
  { name: "GET /api/version", method: "GET", url: "/api/version", want: { route: "ollama.version", access: "public", models: [], upstream: "/api/version" } },
  { name: "HEAD /api/version", method: "HEAD", url: "/api/version", want: { route: "ollama.version", access: "public", models: [], upstream: "/api/version" } },
  { name: "GET /health", method: "GET", url: "/health", want: { route: "proxy.health", access: "public", models: [], upstream: "/health" } },
  { name: "POST / is 405", method: "POST", url: "/", body: "{}", want: deny("METHOD_NOT_ALLOWED", 405) },
  // ---- every user route, model in body
  { name: "generate", method: "POST", url: "/api/generate", body: g("llama3"), want: { route: "ollama.generate", access: "user", models: ["body.model=llama3"], stream: true, upstream: "/api/generate" } },
  { name: "generate stream:false", method: "POST", url: "/api/generate", body: g("llama3", ',"stream":false'), want: { route: "ollama.generate", access: "user", models: ["body.model=llama3"], stream: false, upstream: "/api/generate" } },
  { name: "chat", method: "POST", url: "/api/chat", body: '{"model":"llama3:8b","messages":[]}', want: { route: "ollama.chat", access: "user", models: ["body.model=llama3:8b"], stream: true, upstream: "/api/chat" } },
  { name: "embed", method: "POST", url: "/api/embed", body: '{"model":"nomic","input":"x"}', want: { route: "ollama.embed", access: "user", models: ["body.model=nomic"], upstream: "/api/embed" } },
  { name: "embeddings", method: "POST", url: "/api/embeddings", body: '{"model":"nomic","prompt":"x"}', want: { route: "ollama.embeddings", access: "user", models: ["body.model=nomic"], upstream: "/api/embeddings" } },
  { name: "show by model", method: "POST", url: "/api/show", body: '{"model":"llama3"}', want: { route: "ollama.show", access: "user", models: ["body.model=llama3"], upstream: "/api/show" } },
  { name: "show by legacy name", method: "POST", url: "/api/show", body: '{"name":"llama3"}', want: { route: "ollama.show", access: "user", models: ["body.name=llama3"], upstream: "/api/show" } },
  { name: "show model+name agree (latest)", method: "POST", url: "/api/show", body: '{"model":"llama3","name":"llama3:latest"}', want: { route: "ollama.show", access: "user", models: ["body.model=llama3", "body.name=llama3:latest"], upstream: "/api/show" } },
  { name: "show model null, name set", method: "POST", url: "/api/show", body: '{"model":null,"name":"secret"}', want: { route: "ollama.show", access: "user", models: ["body.name=secret"], upstream: "/api/show" } },
  { name: "tags", method: "GET", url: "/api/tags", want: { route: "ollama.tags", access: "user", models: [], upstream: "/api/tags" } },
  { name: "HEAD tags", method: "HEAD", url: "/api/tags", want: { route: "ollama.tags", access: "user", models: [], upstream: "/api/tags" } },
  { name: "ps", method: "GET", url: "/api/ps", want: { route: "ollama.ps", access: "user", models: [], upstream: "/api/ps" } },
  { name: "openai chat", method: "POST", url: "/v1/chat/completions", body: '{"model":"llama3","messages":[]}', want: { route: "openai.chat", access: "user", models: ["body.model=llama3"], stream: false, upstream: "/v1/chat/completions" } },
  { name: "openai chat stream", method: "POST", url: "/v1/chat/completions", body: '{"model":"llama3","stream":true}', want: { route: "openai.chat", access: "user", models: ["body.model=llama3"], stream: true, upstream: "/v1/chat/completions" } },
  { name: "openai completions", method: "POST", url: "/v1/completions", body: '{"model":"llama3","prompt":"x"}', want: { route: "openai.completions", access: "user", models: ["body.model=llama3"], stream: false, upstream: "/v1/completions" } },
  { name: "openai embeddings", method: "POST", url: "/v1/embeddings", body: '{"model":"nomic","input":"x"}', want: { route: "openai.embeddings", access: "user", models: ["body.model=nomic"], upstream: "/v1/embeddings" } },
  { name: "openai responses", method: "POST", url: "/v1/responses", body: '{"model":"llama3","input":"x"}', want: { route: "openai.responses", access: "user", models: ["body.model=llama3"], stream: false, upstream: "/v1/responses" } },
  { name: "anthropic messages", method: "POST", url: "/v1/messages", body: '{"model":"llama3","max_tokens":5,"messages":[]}', want: { route: "anthropic.messages", access: "user", models: ["body.model=llama3"], stream: false, upstream: "/v1/messages" } },
  { name: "v1 models", method: "GET", url: "/v1/models", want: { route: "openai.models", access: "user", models: [], upstream: "/v1/models" } },
  // ---- model in the path
  { name: "v1 model path", method: "GET", url: "/v1/models/llama3", want: { route: "openai.model", access: "user", models: ["path.model=llama3"], upstream: "/v1/models/llama3" } },
  { name: "v1 model path %3A", method: "GET", url: "/v1/models/llama3%3Alatest", want: { route: "openai.model", access: "user", models: ["path.model=llama3:latest"], upstream: "/v1/models/llama3:latest" } },
  { name: "v1 model path double-encoded", method: "GET", url: "/v1/models/llama3%253Alatest", want: deny("MODEL_INVALID", 400) },
  { name: "v1 model path %2F", method: "GET", url: "/v1/models/a%2Fb", want: deny("BAD_REQUEST_TARGET", 400) },
  { name: "v1 model path slash", method: "GET", url: "/v1/models/hf.co/x/y", want: deny("ROUTE_NOT_FOUND", 404) },
  { name: "v1 model path dot segment", method: "GET", url: "/v1/models/..", want: deny("MODEL_INVALID", 400) },
  { name: "v1 model path bad escape", method: "GET", url: "/v1/models/%E0%A4%A", want: deny("BAD_REQUEST_TARGET", 400) },
  { name: "v1 model path zero-width", method: "GET", url: "/v1/models/llama3%E2%80%8B", want: deny("MODEL_INVALID", 400) },
  { name: "v1 model trailing slash", method: "GET", url: "/v1/models/llama3/", want: deny("ROUTE_NOT_FOUND", 404) },
  { name: "v1 model with body", method: "GET", url: "/v1/models/llama3", body: '{"model":"secret"}', want: deny("BODY_UNEXPECTED", 400) },
  // ---- admin routes
  { name: "pull", method: "POST", url: "/api/pull", body: '{"model":"llama3"}', want: { route: "ollama.pull", access: "admin", models: ["body.model=llama3"], stream: true, upstream: "/api/pull" } },
  { name: "push", method: "POST", url: "/api/push", body: '{"name":"me/llama3"}', want: { route: "ollama.push", access: "admin", models: ["body.name=me/llama3"], stream: true, upstream: "/api/push" } },
  { name: "create from", method: "POST", url: "/api/create", body: '{"model":"mine","from":"llama3"}', want: { route: "ollama.create", access: "admin", models: ["body.model=mine", "body.from=llama3"], stream: true, upstream: "/api/create" } },
  { name: "delete", method: "DELETE", url: "/api/delete", body: '{"model":"llama3"}', want: { route: "ollama.delete", access: "admin", models: ["body.model=llama3"], upstream: "/api/delete" } },
  { name: "copy", method: "POST", url: "/api/copy", body: '{"source":"llama3","destination":"copy"}', want: { route: "ollama.copy", access: "admin", models: ["body.source=llama3", "body.destination=copy"], upstream: "/api/copy" } },
  { name: "blob head", method: "HEAD", url: `/api/blobs/sha256:${"a".repeat(64)}`, want: { route: "ollama.blob-head", access: "admin", models: [], upstream: `/api/blobs/sha256:${"a".repeat(64)}` } },
  { name: "blob post %3A", method: "POST", url: `/api/blobs/sha256%3A${"b".repeat(64)}`, body: new Uint8Array([1, 2, 3]), want: { route: "ollama.blob-upload", access: "admin", models: [], upstream: `/api/blobs/sha256:${"b".repeat(64)}` } },
  { name: "blob bad digest", method: "HEAD", url: "/api/blobs/sha256:xyz", want: deny("BAD_REQUEST_TARGET", 400) },
  { name: "blob GET", method: "GET", url: `/api/blobs/sha256:${"a".repeat(64)}`, want: deny("METHOD_NOT_ALLOWED", 405) },
  // ---- unknown routes: default deny
  { name: "unknown /api/me", method: "POST", url: "/api/me", body: "{}", want: deny("ROUTE_NOT_FOUND", 404) },
  { name: "unknown experimental", method: "POST", url: "/api/experimental/aggregate", want: deny("ROUTE_NOT_FOUND", 404) },
  { name: "llama-server /completion", method: "POST", url: "/completion", want: deny("ROUTE_NOT_FOUND", 404) },
  { name: "/v1/models/x/y", method: "GET", url: "/v1/models/a/b", want: deny("ROUTE_NOT_FOUND", 404) },
  { name: "/metrics", method: "GET", url: "/metrics", want: deny("ROUTE_NOT_FOUND", 404) },
  // ---- path tricks
  { name: "percent-encoded letter", method: "POST", url: "/api/%67enerate", body: g("llama3"), want: deny("ROUTE_NOT_FOUND", 404) },
  { name: "percent-encoded slash", method: "POST", url: "/api%2Fgenerate", body: g("llama3"), want: deny("ROUTE_NOT_FOUND", 404) },
  { name: "double slash", method: "POST", url: "//api/generate", body: g("llama3"), want: deny("ROUTE_NOT_FOUND", 404) },
  { name: "inner double slash", method: "POST", url: "/api//generate", body: g("llama3"), want: deny("ROUTE_NOT_FOUND", 404) },
  { name: "dot segment", method: "POST", url: "/api/./generate", body: g("llama3"), want: deny("ROUTE_NOT_FOUND", 404) },
  { name: "dot-dot segment", method: "POST", url: "/api/x/../generate", body: g("llama3"), want: deny("ROUTE_NOT_FOUND", 404) },
  { name: "dot-dot into admin", method: "POST", url: "/api/chat/../pull", body: g("llama3"), want: deny("ROUTE_NOT_FOUND", 404) },
  { name: "encoded dot-dot", method: "POST", url: "/api/x/%2e%2e/generate", body: g("llama3"), want: deny("ROUTE_NOT_FOUND", 404) },
  { name: "trailing slash", method: "POST", url: "/api/generate/", body: g("llama3"), want: deny("ROUTE_NOT_FOUND", 404) },
  { name: "upper case path", method: "POST", url: "/API/generate", body: g("llama3"), want: deny("ROUTE_NOT_FOUND", 404) },
  { name: "mixed case path", method: "POST", url: "/api/Generate", body: g("llama3"), want: deny("ROUTE_NOT_FOUND", 404) },
  { name: "backslash", method: "POST", url: "/api\\generate", body: g("llama3"), want: deny("ROUTE_NOT_FOUND", 404) },
  { name: "semicolon param", method: "POST", url: "/api/generate;x=1", body: g("llama3"), want: deny("ROUTE_NOT_FOUND", 404) },
  { name: "absolute-form target", method: "POST", url: "http://127.0.0.1/api/generate", body: g("llama3"), want: deny("BAD_REQUEST_TARGET", 400) },
  { name: "fragment", method: "POST", url: "/api/generate#x", body: g("llama3"), want: deny("BAD_REQUEST_TARGET", 400) },
  { name: "asterisk target", method: "OPTIONS", url: "*", want: deny("BAD_REQUEST_TARGET", 400) },
  // ---- methods
  { name: "GET generate", method: "GET", url: "/api/generate", want: deny("METHOD_NOT_ALLOWED", 405) },
  { name: "HEAD ps (GET-only)", method: "HEAD", url: "/api/ps", want: deny("METHOD_NOT_ALLOWED", 405) },
  { name: "OPTIONS chat", method: "OPTIONS", url: "/api/chat", want: deny("METHOD_NOT_ALLOWED", 405) },
  { name: "lowercase method", method: "post", url: "/api/chat", body: g("llama3"), want: deny("METHOD_NOT_ALLOWED", 405) },
  { name: "POST delete (DELETE route)", method: "POST", url: "/api/delete", body: '{"model":"x"}', want: deny("METHOD_NOT_ALLOWED", 405) },
  { name: "override header", method: "GET", url: "/api/tags", headers: { "x-http-method-override": "DELETE" }, want: deny("METHOD_OVERRIDE", 400) },
  { name: "override header x-http-method", method: "POST", url: "/api/chat", body: g("llama3"), headers: { "x-http-method": "GET" }, want: deny("METHOD_OVERRIDE", 400) },
  { name: "override _method query", method: "POST", url: "/api/generate?_method=DELETE", body: g("llama3"), want: deny("METHOD_OVERRIDE", 400) },
  { name: "override _METHOD encoded", method: "POST", url: "/api/generate?%5FMETHOD=DELETE", body: g("llama3"), want: deny("METHOD_OVERRIDE", 400) },
  // ---- query strings
  { name: "query ignored", method: "GET", url: "/api/tags?foo=bar", want: { route: "ollama.tags", access: "user", models: [], upstream: "/api/tags" } },
  { name: "ollama ts query", method: "POST", url: "/api/chat?ts=1700000000", body: g("llama3"), want: { route: "ollama.chat", access: "user", models: ["body.model=llama3"], stream: true, upstream: "/api/chat" } },
  { name: "?model= bypass", method: "POST", url: "/v1/chat/completions?model=secret", body: g("llama3"), want: deny("MODEL_IN_QUERY", 400) },
  { name: "?Model= bypass", method: "POST", url: "/api/generate?Model=secret", body: g("llama3"), want: deny("MODEL_IN_QUERY", 400) },
  { name: "?%6Dodel= bypass", method: "POST", url: "/api/generate?%6Dodel=secret", body: g("llama3"), want: deny("MODEL_IN_QUERY", 400) },
  { name: "?name= bypass", method: "POST", url: "/api/show?name=secret", body: '{"model":"llama3"}', want: deny("MODEL_IN_QUERY", 400) },
  { name: "?model= on listing", method: "GET", url: "/v1/models?model=secret", want: deny("MODEL_IN_QUERY", 400) },
  // ---- model naming conflicts and types
  { name: "show model vs name differ", method: "POST", url: "/api/show", body: '{"model":"llama3","name":"secret"}', want: deny("MODEL_CONFLICT", 400) },
  { name: "delete model vs name differ", method: "DELETE", url: "/api/delete", body: '{"model":"a","name":"b"}', want: deny("MODEL_CONFLICT", 400) },
  { name: "duplicate model key", method: "POST", url: "/api/generate", body: '{"model":"llama3","model":"secret"}', want: deny("BODY_DUPLICATE_KEY", 400) },
  { name: "case-variant duplicate key", method: "POST", url: "/api/generate", body: '{"model":"llama3","MODEL":"secret"}', want: deny("BODY_DUPLICATE_KEY", 400) },
  { name: "escaped duplicate key", method: "POST", url: "/api/generate", body: '{"model":"llama3","\\u006dodel":"secret"}', want: deny("BODY_DUPLICATE_KEY", 400) },
  { name: "nested duplicate key", method: "POST", url: "/api/generate", body: '{"model":"llama3","options":{"use_mmap":true,"use_mmap":false}}', want: deny("BODY_DUPLICATE_KEY", 400) },
  { name: "Kelvin-sign duplicate", method: "POST", url: "/api/generate", body: '{"model":"llama3","keep_alive":1,"\u212Aeep_alive":-1}', want: deny("BODY_DUPLICATE_KEY", 400) },
  { name: "key only in other case", method: "POST", url: "/api/generate", body: '{"Model":"secret"}', want: deny("BODY_FIELD_CASE", 400) },
  { name: "long-s spelled key", method: "POST", url: "/api/chat", body: '{"model":"llama3","\u017Ftream":true}', want: deny("BODY_FIELD_CASE", 400) },
  { name: "options key case", method: "POST", url: "/api/generate", body: '{"model":"llama3","options":{"USE_MMAP":false}}', want: deny("BODY_FIELD_CASE", 400) },
  { name: "model not a string", method: "POST", url: "/api/generate", body: '{"model":["llama3"]}', want: deny("MODEL_NOT_STRING", 400) },
  { name: "model a number", method: "POST", url: "/api/generate", body: '{"model":3}', want: deny("MODEL_NOT_STRING", 400) },
  { name: "model an object", method: "POST", url: "/v1/chat/completions", body: '{"model":{"name":"x"}}', want: deny("MODEL_NOT_STRING", 400) },
  { name: "model missing", method: "POST", url: "/api/generate", body: '{"prompt":"hi"}', want: deny("MODEL_MISSING", 400) },
  { name: "model empty", method: "POST", url: "/api/chat", body: '{"model":""}', want: deny("MODEL_MISSING", 400) },
  { name: "copy without source", method: "POST", url: "/api/copy", body: '{"destination":"x"}', want: deny("MODEL_MISSING", 400) },
  { name: "stream not boolean", method: "POST", url: "/api/generate", body: g("llama3", ',"stream":"false"'), want: deny("BODY_FIELD_TYPE", 400) },
  // ---- unicode and name tricks
  { name: "fullwidth model", method: "POST", url: "/api/generate", body: g("ｌｌａｍａ3"), want: deny("MODEL_INVALID", 400) },
  { name: "zero-width model", method: "POST", url: "/api/generate", body: g("llama\u200b3"), want: deny("MODEL_INVALID", 400) },
  { name: "escaped zero-width model", method: "POST", url: "/api/generate", body: '{"model":"llama\\u200b3"}', want: deny("MODEL_INVALID", 400) },
  { name: "NFKC ligature", method: "POST", url: "/api/generate", body: g("\ufb01ne"), want: deny("MODEL_INVALID", 400) },
  { name: "trailing space", method: "POST", url: "/api/generate", body: g("llama3 "), want: deny("MODEL_INVALID", 400) },
  { name: "percent in model", method: "POST", url: "/api/generate", body: g("llama%33"), want: deny("MODEL_INVALID", 400) },
  { name: "digest form", method: "POST", url: "/api/generate", body: g("llama3@sha256:abcd"), want: deny("MODEL_INVALID", 400) },
  { name: "dot-dot model", method: "POST", url: "/api/generate", body: g("../llama3"), want: deny("MODEL_INVALID", 400) },
  { name: "case variant model accepted as a distinct name", method: "POST", url: "/api/generate", body: g("LLAMA3"), want: { route: "ollama.generate", access: "user", models: ["body.model=LLAMA3"], stream: true, upstream: "/api/generate" } },
  { name: "namespaced model", method: "POST", url: "/api/generate", body: g("registry.ollama.ai/library/llama3:8b"), want: { route: "ollama.generate", access: "user", models: ["body.model=registry.ollama.ai/library/llama3:8b"], stream: true, upstream: "/api/generate" } },
  { name: "host with port", method: "POST", url: "/api/generate", body: g("localhost:5000/me/m:q4"), want: { route: "ollama.generate", access: "user", models: ["body.model=localhost:5000/me/m:q4"], stream: true, upstream: "/api/generate" } },
  // ---- malformed and oversized bodies
  { name: "body too large", method: "POST", url: "/api/generate", body: `{"model":"llama3","prompt":"${"x".repeat(5000)}"}`, want: deny("BODY_TOO_LARGE", 413) },
  { name: "invalid utf-8", method: "POST", url: "/api/generate", body: new Uint8Array([0x7b, 0x22, 0x6d, 0xff, 0x22, 0x3a, 0x31, 0x7d]), want: deny("BODY_NOT_UTF8", 400) },
  { name: "overlong utf-8", method: "POST", url: "/api/generate", body: new Uint8Array([...Buffer.from('{"model":"a'), 0xc0, 0xaf, ...Buffer.from('"}')]), want: deny("BODY_NOT_UTF8", 400) },
  { name: "BOM", method: "POST", url: "/api/generate", body: new Uint8Array([0xef, 0xbb, 0xbf, ...Buffer.from(g("llama3"))]), want: deny("BODY_NOT_UTF8", 400) },
  { name: "not json", method: "POST", url: "/api/generate", body: "model=llama3", want: deny("BODY_NOT_JSON", 400) },
  { name: "truncated json", method: "POST", url: "/api/generate", body: '{"model":"llama3"', want: deny("BODY_NOT_JSON", 400) },
  { name: "trailing garbage", method: "POST", url: "/api/generate", body: '{"model":"llama3"}{"model":"x"}', want: deny("BODY_NOT_JSON", 400) },
  { name: "empty body", method: "POST", url: "/api/generate", body: "", want: deny("BODY_NOT_JSON", 400) },
  { name: "no body", method: "POST", url: "/api/chat", want: deny("BODY_NOT_JSON", 400) },
  { name: "array body", method: "POST", url: "/api/generate", body: '[{"model":"llama3"}]', want: deny("BODY_NOT_OBJECT", 400) },
  { name: "null body", method: "POST", url: "/api/generate", body: "null", want: deny("BODY_NOT_OBJECT", 400) },
  { name: "string body", method: "POST", url: "/api/generate", body: '"llama3"', want: deny("BODY_NOT_OBJECT", 400) },
  { name: "too deep", method: "POST", url: "/api/generate", body: `{"model":"llama3","x":${"[".repeat(600)}${"]".repeat(600)}}`, want: deny("BODY_NOT_JSON", 400) },
  { name: "options not object", method: "POST", url: "/api/generate", body: '{"model":"llama3","options":[1]}', want: deny("BODY_FIELD_TYPE", 400) },
  { name: "gzip body", method: "POST", url: "/api/generate", body: g("llama3"), headers: { "content-encoding": "gzip" }, want: deny("UNSUPPORTED_ENCODING", 415) },
  { name: "identity encoding ok", method: "POST", url: "/api/generate", body: g("llama3"), headers: { "content-encoding": "identity" }, want: { route: "ollama.generate", access: "user", models: ["body.model=llama3"], stream: true, upstream: "/api/generate" } },
];

describe("decision table", () => {
  it("has at least 60 tricky requests", () => {
    expect(CASES.length).toBeGreaterThanOrEqual(60);
  });
  for (const c of CASES) {
    it(`${c.method} ${c.url.slice(0, 60)}: ${c.name}`, () => {
      expect(decide(c)).toEqual(c.want);
    });
  }
});

describe("denials come back in the API's shape", () => {
  it("ollama shape for /api, openai for /v1, anthropic for /v1/messages", () => {
    const a = matchRoute("POST", "/api/%67enerate");
    const b = matchRoute("POST", "/v1/chat/completions?model=x");
    const c = matchRoute("GET", "/v1/messages");
    if (a.kind !== "deny" || b.kind !== "deny" || c.kind !== "deny") throw new Error("expected denials");
    expect(apiErrorFrom(a, a.error)).toMatchObject({ status: 404, body: { error: expect.stringContaining("no such route") } });
    expect(apiErrorFrom(b, b.error)).toMatchObject({
      status: 400,
      body: { error: { type: "invalid_request_error", code: "model_in_query", message: expect.any(String) } },
    });
    expect(apiErrorFrom(c, c.error)).toMatchObject({
      status: 405,
      headers: { allow: "POST" },
      body: { type: "error", error: { type: "invalid_request_error", message: expect.any(String) } },
    });
  });
  it("a non-ProxyError becomes a generic 500", () => {
    expect(apiErrorFrom("ollama", new Error("secret detail"))).toEqual({
      status: 500,
      headers: { "content-type": "application/json; charset=utf-8" },
      body: { error: "internal error" },
    });
  });
});

describe("checkRouteAccess", () => {
  it("public for all, user needs a key, admin routes need an admin", async () => {
    const { checkRouteAccess } = await import("../../plugin/proxy/routes.js");
    const get = (method: string, url: string) => {
      const m = matchRoute(method, url);
      if (m.kind !== "route") throw new Error("denied");
      return m;
    };
    expect(checkRouteAccess(get("GET", "/api/version"), "anonymous")).toBeNull();
    expect(checkRouteAccess(get("GET", "/api/tags"), "anonymous")?.error.code).toBe("AUTH_MISSING");
    expect(checkRouteAccess(get("GET", "/api/tags"), "user")).toBeNull();
    expect(checkRouteAccess(get("POST", "/api/pull"), "user")?.error.status).toBe(403);
    expect(checkRouteAccess(get("POST", "/api/pull"), "admin")).toBeNull();
  });
});
