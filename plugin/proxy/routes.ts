/**
 * The route table: DEFAULT-DENY. Every route the proxy forwards is listed here with who may call
 * it, where it names a model, and what its response looks like. Anything else is refused.
 *
 * Matching rule (docs/proxy-routes.md, "Matching"): the raw request path must be EXACTLY a
 * canonical route path. Nothing is normalised: percent-encoding in a fixed segment
 * (`/api/%67enerate`), `//`, `.`/`..` segments, a trailing `/`, other letter case (`/API/chat`),
 * a fragment or an absolute-form target never match, they are denied (404/400). Only path
 * PARAMETERS (`:model`, `:digest`) are percent-decoded, once, and then validated strictly.
 * The proxy forwards `upstreamPath` (built from the table, no query string), so the upstream
 * always sees the route that was decided on.
 *
 * Method overrides (`X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override`, `_method=`)
 * are refused with 400 whatever their value. HEAD matches only routes registered for HEAD
 * (as Ollama's router does); a known path with another method is 405 with `Allow`.
 * Query strings are never forwarded; a query key naming a model (`model`, `name`, `source`,
 * `destination`, `from`, `models`, any case) is refused with 400 (the LiteLLM `?model=` bypass).
 */

import { flavorForPath, type ApiFlavor } from "./api-error.js";
import { ProxyError } from "./errors.js";
import { assertModelName } from "./model-name.js";

export type HttpMethod = "GET" | "HEAD" | "POST" | "DELETE";
export type RouteAccess = "public" | "user" | "admin";
/** Body fields that can name a model. */
export type ModelField = "model" | "name" | "source" | "destination" | "from";
export type ListingKind = "ollama-tags" | "ollama-ps" | "openai-models";
export type HeaderBag = Readonly<Record<string, string | readonly string[] | undefined>>;

export interface RouteSpec {
  /** Stable id, e.g. `ollama.generate`, used in audit logs and metrics. */
  readonly id: string;
  readonly method: HttpMethod;
  /** Canonical path; `:model` / `:digest` are parameters (one segment). */
  readonly path: string;
  readonly access: RouteAccess;
  /** Error shape and streaming conventions. */
  readonly flavor: ApiFlavor;
  /** `json`: a JSON object body; `none`: no body allowed; `binary`: forwarded as is (blobs). */
  readonly body: "json" | "none" | "binary";
  /** Body fields naming THE model of the request; when several are present they must agree. */
  readonly modelFields: readonly ModelField[];
  /** Body fields naming a second, distinct model (copy `destination`, create `from`). */
  readonly otherModelFields: readonly ModelField[];
  /** Path parameter naming the model (`/v1/models/:model`). */
  readonly modelParam: "model" | null;
  /** Whether the request must name a model (400 MODEL_MISSING otherwise). */
  readonly modelRequired: boolean;
  /** Streaming format and the default of the body's `stream` field; null: never streams. */
  readonly stream: { readonly format: "ndjson" | "sse"; readonly defaultOn: boolean } | null;
  /** The response is a model listing to filter and rename. */
  readonly listing: ListingKind | null;
  /** Answered by the proxy itself, never forwarded (health). */
  readonly local: boolean;
}

type Partial1 = Pick<RouteSpec, "id" | "method" | "path" | "access"> & Partial<RouteSpec>;

function route(r: Partial1): RouteSpec {
  return Object.freeze({
    flavor: flavorForPath(r.path),
    body: r.method === "POST" || r.method === "DELETE" ? "json" : "none",
    modelFields: [],
    otherModelFields: [],
    modelParam: null,
    modelRequired: false,
    stream: null,
    listing: null,
    local: false,
    ...r,
  } satisfies RouteSpec);
}

const NDJSON_ON = { format: "ndjson", defaultOn: true } as const;
const SSE_OFF = { format: "sse", defaultOn: false } as const;
const M: readonly ModelField[] = ["model"];
const MN: readonly ModelField[] = ["model", "name"];

/** Every route the proxy knows. Order does not matter; (method, path) pairs are unique. */
export const ROUTES: readonly RouteSpec[] = Object.freeze([
  // public
  route({ id: "ollama.root", method: "GET", path: "/", access: "public" }),
  route({ id: "ollama.root", method: "HEAD", path: "/", access: "public" }),
  route({ id: "ollama.version", method: "GET", path: "/api/version", access: "public" }),
  route({ id: "ollama.version", method: "HEAD", path: "/api/version", access: "public" }),
  route({ id: "proxy.health", method: "GET", path: "/health", access: "public", local: true }),
  route({ id: "proxy.health", method: "GET", path: "/v1/health", access: "public", local: true }),
  // user: Ollama native
  route({ id: "ollama.generate", method: "POST", path: "/api/generate", access: "user", modelFields: M, modelRequired: true, stream: NDJSON_ON }),
  route({ id: "ollama.chat", method: "POST", path: "/api/chat", access: "user", modelFields: M, modelRequired: true, stream: NDJSON_ON }),
  route({ id: "ollama.embed", method: "POST", path: "/api/embed", access: "user", modelFields: M, modelRequired: true }),
  route({ id: "ollama.embeddings", method: "POST", path: "/api/embeddings", access: "user", modelFields: M, modelRequired: true }),
  route({ id: "ollama.show", method: "POST", path: "/api/show", access: "user", modelFields: MN, modelRequired: true }),
  route({ id: "ollama.tags", method: "GET", path: "/api/tags", access: "user", listing: "ollama-tags" }),
  route({ id: "ollama.tags", method: "HEAD", path: "/api/tags", access: "user" }),
  route({ id: "ollama.ps", method: "GET", path: "/api/ps", access: "user", listing: "ollama-ps" }),
  // user: OpenAI-compatible
  route({ id: "openai.chat", method: "POST", path: "/v1/chat/completions", access: "user", modelFields: M, modelRequired: true, stream: SSE_OFF }),
  route({ id: "openai.completions", method: "POST", path: "/v1/completions", access: "user", modelFields: M, modelRequired: true, stream: SSE_OFF }),
  route({ id: "openai.embeddings", method: "POST", path: "/v1/embeddings", access: "user", modelFields: M, modelRequired: true }),
  route({ id: "openai.responses", method: "POST", path: "/v1/responses", access: "user", modelFields: M, modelRequired: true, stream: SSE_OFF }),
  route({ id: "openai.models", method: "GET", path: "/v1/models", access: "user", listing: "openai-models" }),
  route({ id: "openai.model", method: "GET", path: "/v1/models/:model", access: "user", modelParam: "model", modelRequired: true }),
  // user: Anthropic-compatible
  route({ id: "anthropic.messages", method: "POST", path: "/v1/messages", access: "user", modelFields: M, modelRequired: true, stream: SSE_OFF }),
  // admin: these can replace, export or delete weights
  route({ id: "ollama.pull", method: "POST", path: "/api/pull", access: "admin", modelFields: MN, modelRequired: true, stream: NDJSON_ON }),
  route({ id: "ollama.push", method: "POST", path: "/api/push", access: "admin", modelFields: MN, modelRequired: true, stream: NDJSON_ON }),
  route({ id: "ollama.create", method: "POST", path: "/api/create", access: "admin", modelFields: MN, otherModelFields: ["from"], modelRequired: true, stream: NDJSON_ON }),
  route({ id: "ollama.delete", method: "DELETE", path: "/api/delete", access: "admin", modelFields: MN, modelRequired: true }),
  route({ id: "ollama.copy", method: "POST", path: "/api/copy", access: "admin", modelFields: ["source"], otherModelFields: ["destination"], modelRequired: true }),
  route({ id: "ollama.blob-head", method: "HEAD", path: "/api/blobs/:digest", access: "admin", body: "none" }),
  route({ id: "ollama.blob-upload", method: "POST", path: "/api/blobs/:digest", access: "admin", body: "binary" }),
]);

export interface RouteMatch {
  readonly kind: "route";
  readonly route: RouteSpec;
  readonly flavor: ApiFlavor;
  /** The raw path (equal to the canonical path with the raw parameter text). */
  readonly path: string;
  /** Decoded, validated path parameters. */
  readonly params: Readonly<{ model?: string; digest?: string }>;
  /** The parsed query (never forwarded). */
  readonly query: URLSearchParams;
  /** Path to forward (table path with the decoded parameters), no query string. */
  readonly upstreamPath: string;
}

export interface Denial {
  readonly kind: "deny";
  readonly error: ProxyError;
  /** Error shape to answer with (apiErrorFrom(denial, denial.error)). */
  readonly flavor: ApiFlavor;
}

export function isDenial(x: { kind: string }): x is Denial {
  return x.kind === "deny";
}

const OVERRIDE_HEADERS = ["x-http-method-override", "x-http-method", "x-method-override"];
const MODEL_QUERY_KEYS = new Set(["model", "name", "source", "destination", "from", "models", "model_name"]);
const DIGEST_RE = /^sha256[:-][0-9a-f]{64}$/;

function header(headers: HeaderBag, name: string): readonly string[] {
  const v = headers[name];
  if (v === undefined) return [];
  return typeof v === "string" ? [v] : v;
}

function splitTemplate(path: string): string[] {
  return path.split("/");
}

/** Match `segments` against a template; returns raw params or null. */
function matchTemplate(template: string[], segments: string[]): Record<string, string> | null {
  if (template.length !== segments.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < template.length; i++) {
    const t = template[i]!;
    const s = segments[i]!;
    if (t.startsWith(":")) {
      if (s === "") return null;
      params[t.slice(1)] = s;
    } else if (t !== s) {
      return null;
    }
  }
  return params;
}

const TEMPLATES = ROUTES.map((r) => ({ r, t: splitTemplate(r.path) }));

function decodeParam(raw: string, name: string): string {
  let v: string;
  try {
    v = decodeURIComponent(raw);
  } catch {
    throw new ProxyError("BAD_REQUEST_TARGET", `path parameter ${name}: malformed percent-encoding`);
  }
  if (name === "model") {
    if (v.includes("/")) {
      throw new ProxyError("BAD_REQUEST_TARGET", "path parameter model must not contain '/' (the upstream routes on the decoded path)");
    }
    assertModelName(v, "path.model");
  } else if (name === "digest") {
    if (!DIGEST_RE.test(v)) {
      throw new ProxyError("BAD_REQUEST_TARGET", `path parameter digest: expected sha256:<64 lowercase hex>`);
    }
  }
  return v;
}

function matchOrThrow(method: string, rawUrl: string, headers: HeaderBag): RouteMatch {
  if (!rawUrl.startsWith("/")) {
    throw new ProxyError("BAD_REQUEST_TARGET", "request target must be an origin-form path starting with '/'");
  }
  if (rawUrl.includes("#")) {
    throw new ProxyError("BAD_REQUEST_TARGET", "request target must not contain a fragment");
  }
  const q = rawUrl.indexOf("?");
  const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
  const query = new URLSearchParams(q < 0 ? "" : rawUrl.slice(q + 1));

  for (const h of OVERRIDE_HEADERS) {
    if (header(headers, h).length > 0) {
      throw new ProxyError("METHOD_OVERRIDE", `method override header ${h} is not accepted`);
    }
  }
  for (const key of query.keys()) {
    const k = key.trim().toLowerCase();
    if (k === "_method") throw new ProxyError("METHOD_OVERRIDE", "method override query parameter _method is not accepted");
    if (MODEL_QUERY_KEYS.has(k)) {
      throw new ProxyError("MODEL_IN_QUERY", `query parameter ${JSON.stringify(key)}: models are named in the request body or path, never in the query string`);
    }
  }

  const segments = path.split("/");
  const allowed: string[] = [];
  for (const { r, t } of TEMPLATES) {
    const raw = matchTemplate(t, segments);
    if (raw === null) continue;
    if (r.method !== method) {
      if (!allowed.includes(r.method)) allowed.push(r.method);
      continue;
    }
    const params: { model?: string; digest?: string } = {};
    for (const [name, value] of Object.entries(raw)) {
      const v = decodeParam(value, name);
      if (name === "model") params.model = v;
      else if (name === "digest") params.digest = v;
    }
    if (r.body !== "none") {
      for (const enc of header(headers, "content-encoding")) {
        if (enc.trim().toLowerCase() !== "identity") {
          throw new ProxyError("UNSUPPORTED_ENCODING", `content-encoding ${JSON.stringify(enc)} is not accepted; send an uncompressed body`);
        }
      }
    }
    return {
      kind: "route",
      route: r,
      flavor: r.flavor,
      path,
      params,
      query,
      upstreamPath: upstreamPathFor(r, params),
    };
  }
  if (allowed.length > 0) {
    throw new ProxyError("METHOD_NOT_ALLOWED", `method ${method} is not allowed on ${path}`, { allowed }, { allow: allowed.join(", ") });
  }
  throw new ProxyError("ROUTE_NOT_FOUND", `no such route: ${method} ${path.slice(0, 200)}`);
}

/**
 * Classify a request. `rawUrl` is the request target exactly as received (Node's `req.url`,
 * NOT express's rewritten `req.path`); `headers` may be `req.headers` or `req.headersDistinct`.
 * Returns the match, or a Denial carrying the typed error and the error shape to answer with.
 */
export function matchRoute(method: string, rawUrl: string, headers: HeaderBag = {}): RouteMatch | Denial {
  try {
    return matchOrThrow(method, rawUrl, headers);
  } catch (err) {
    const q = rawUrl.indexOf("?");
    const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
    if (err instanceof ProxyError) return { kind: "deny", error: err, flavor: flavorForPath(path) };
    return { kind: "deny", error: new ProxyError("INTERNAL", "route matching failed"), flavor: flavorForPath(path) };
  }
}

/** The path to forward: the table path with parameters filled in (a new model name if given). */
export function upstreamPathFor(route: RouteSpec, params: { model?: string; digest?: string }): string {
  return route.path
    .split("/")
    .map((seg) => {
      if (seg === ":model") return encodeURIComponent(params.model ?? "").replace(/%3A/g, ":");
      if (seg === ":digest") return encodeURIComponent(params.digest ?? "").replace(/%3A/g, ":");
      return seg;
    })
    .join("/");
}

/** Whether an identity with `role` may call `route`; a Denial (401/403) when not. */
export function checkRouteAccess(match: RouteMatch, role: "anonymous" | "user" | "admin"): Denial | null {
  const need = match.route.access;
  if (need === "public" || role === "admin") return null;
  if (role === "anonymous") {
    return { kind: "deny", flavor: match.flavor, error: new ProxyError("AUTH_MISSING", "authentication required", {}, { "www-authenticate": "Bearer" }) };
  }
  if (need === "admin") {
    return { kind: "deny", flavor: match.flavor, error: new ProxyError("ROUTE_FORBIDDEN", `${match.route.method} ${match.route.path} is reserved to administrators`) };
  }
  return null;
}
