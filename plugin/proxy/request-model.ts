/**
 * Request bodies: parse strictly, find EVERY model reference, apply the loading-field policy,
 * rewrite the model to the variant the proxy decided on.
 *
 * Parsing (each failure is a typed 4xx, docs/proxy-routes.md "Request bodies"):
 *   - size over the limit: 413 BODY_TOO_LARGE (checked before decoding)
 *   - invalid UTF-8 or a byte-order mark: 400 BODY_NOT_UTF8
 *   - not JSON / empty: 400 BODY_NOT_JSON; not a JSON object: 400 BODY_NOT_OBJECT
 *   - two keys of one object equal under Go's case folding (`{"model":"a","model":"b"}`,
 *     `{"model":"a","MODEL":"b"}`), anywhere in the body: 400 BODY_DUPLICATE_KEY
 *   - a policy-relevant key spelled in another case (`Model`, `Keep_Alive`, `options.USE_MMAP`):
 *     400 BODY_FIELD_CASE (Go would bind it to the real field; JSON.parse would not)
 *   - a model field that is neither a string nor null: 400 MODEL_NOT_STRING; an invalid name:
 *     400 MODEL_INVALID; two fields naming different models: 400 MODEL_CONFLICT.
 *   `null` and `""` count as absent (that is what Ollama does with them).
 */

import { ProxyError } from "./errors.js";
import { findDuplicateKey, goFoldKey } from "./json-scan.js";
import { assertModelName, normalizeModelName, sameModel } from "./model-name.js";
import type { Denial, ModelField, RouteMatch, RouteSpec } from "./routes.js";

export const DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024;

export interface ModelRef {
  /** Where the name was found: `body.model`, `body.name`, `body.source`, `path.model`, ... */
  readonly where: string;
  /** The name exactly as the caller wrote it. */
  readonly name: string;
  /** `name` with `:latest` normalisation (the comparison form). */
  readonly normalized: string;
  /** `target`: the model the request runs on; `other`: a second model (copy destination). */
  readonly role: "target" | "other";
}

export interface ExtractedRequest {
  readonly kind: "request";
  readonly match: RouteMatch;
  /** The parsed JSON body (routes with a JSON body), else undefined. */
  readonly body: Readonly<Record<string, unknown>> | undefined;
  /** Every model reference in the request. */
  readonly refs: readonly ModelRef[];
  /** The target model as the caller first wrote it; undefined when the route names none. */
  readonly model: string | undefined;
  /** Effective `stream` flag (body value or the route's default); undefined: never streams. */
  readonly stream: boolean | undefined;
}

export interface ExtractOptions {
  maxBodyBytes?: number;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Top-level keys whose spelling matters to the proxy. */
const TOP_KEYS = ["model", "name", "source", "destination", "from", "stream", "keep_alive", "options", "template", "system", "raw"];
const TOP_FOLD = new Map(TOP_KEYS.map((k) => [goFoldKey(k), k]));

function assertCanonicalKeys(obj: Record<string, unknown>, canon: Map<string, string>, where: string): void {
  for (const key of Object.keys(obj)) {
    const want = canon.get(goFoldKey(key));
    if (want !== undefined && want !== key) {
      throw new ProxyError("BODY_FIELD_CASE", `${where}${key}: field must be spelled ${JSON.stringify(want)}`, { field: key });
    }
  }
}

/** Parse a JSON object body strictly (see module doc). */
export function parseJsonObjectBody(bytes: Uint8Array, maxBodyBytes = DEFAULT_MAX_BODY_BYTES): Record<string, unknown> {
  if (bytes.length > maxBodyBytes) {
    throw new ProxyError("BODY_TOO_LARGE", `request body is ${bytes.length} bytes; the limit is ${maxBodyBytes}`, { limit: maxBodyBytes });
  }
  if (bytes.length === 0) throw new ProxyError("BODY_NOT_JSON", "missing request body: expected a JSON object");
  if (bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
    throw new ProxyError("BODY_NOT_UTF8", "request body starts with a byte-order mark");
  }
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    throw new ProxyError("BODY_NOT_UTF8", "request body is not valid UTF-8");
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ProxyError("BODY_NOT_JSON", `request body is not valid JSON: ${(err as Error).message.slice(0, 120)}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProxyError("BODY_NOT_OBJECT", `request body must be a JSON object, found ${value === null ? "null" : Array.isArray(value) ? "an array" : typeof value}`);
  }
  let dup;
  try {
    dup = findDuplicateKey(text);
  } catch (err) {
    throw new ProxyError("BODY_NOT_JSON", `request body: ${(err as Error).message}`);
  }
  if (dup) {
    throw new ProxyError(
      "BODY_DUPLICATE_KEY",
      `${dup.path}: duplicate key ${JSON.stringify(dup.second)} (collides with ${JSON.stringify(dup.first)})`,
      { path: dup.path, key: dup.second },
    );
  }
  return value as Record<string, unknown>;
}

function readModelField(body: Record<string, unknown>, field: ModelField): string | undefined {
  if (!Object.hasOwn(body, field)) return undefined;
  const v = body[field];
  if (v === null || v === "") return undefined;
  if (typeof v !== "string") {
    throw new ProxyError("MODEL_NOT_STRING", `body.${field}: expected a string model name, found ${Array.isArray(v) ? "an array" : typeof v}`, { field });
  }
  assertModelName(v, `body.${field}`);
  return v;
}

function extractOrThrow(match: RouteMatch, bodyBytes: Uint8Array | undefined, opts: ExtractOptions): ExtractedRequest {
  const route = match.route;
  const refs: ModelRef[] = [];
  let body: Record<string, unknown> | undefined;

  if (route.body === "json") {
    body = parseJsonObjectBody(bodyBytes ?? new Uint8Array(0), opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES);
    assertCanonicalKeys(body, TOP_FOLD, "body.");
    const opt = body["options"];
    if (opt !== undefined && opt !== null) {
      if (typeof opt !== "object" || Array.isArray(opt)) {
        throw new ProxyError("BODY_FIELD_TYPE", "body.options: expected an object");
      }
      assertCanonicalKeys(opt as Record<string, unknown>, OPTION_FOLD, "body.options.");
    }
    for (const f of route.modelFields) {
      const v = readModelField(body, f);
      if (v !== undefined) refs.push({ where: `body.${f}`, name: v, normalized: normalizeModelName(v), role: "target" });
    }
    for (const f of route.otherModelFields) {
      const v = readModelField(body, f);
      if (v !== undefined) refs.push({ where: `body.${f}`, name: v, normalized: normalizeModelName(v), role: "other" });
    }
  } else if (route.body === "none" && bodyBytes !== undefined && bodyBytes.length > 0) {
    throw new ProxyError("BODY_UNEXPECTED", `${route.method} ${route.path} takes no request body`);
  }

  if (route.modelParam && match.params.model !== undefined) {
    const v = match.params.model;
    refs.push({ where: "path.model", name: v, normalized: normalizeModelName(v), role: "target" });
  }

  const targets = refs.filter((r) => r.role === "target");
  for (const r of targets.slice(1)) {
    if (!sameModel(r.name, targets[0]!.name)) {
      throw new ProxyError(
        "MODEL_CONFLICT",
        `${targets[0]!.where} names ${JSON.stringify(targets[0]!.name)} but ${r.where} names ${JSON.stringify(r.name)}`,
        { fields: [targets[0]!.where, r.where] },
      );
    }
  }
  if (route.modelRequired && targets.length === 0) {
    const where = route.modelParam ? "path.model" : route.modelFields.map((f) => `body.${f}`).join(" or ");
    throw new ProxyError("MODEL_MISSING", `${where}: a model name is required`);
  }

  let stream: boolean | undefined;
  if (route.stream) {
    const s = body?.["stream"];
    if (s !== undefined && s !== null && typeof s !== "boolean") {
      throw new ProxyError("BODY_FIELD_TYPE", "body.stream: expected true or false");
    }
    stream = typeof s === "boolean" ? s : route.stream.defaultOn;
  }

  return { kind: "request", match, body, refs, model: targets[0]?.name, stream };
}

/**
 * Parse the body of a matched request and extract every model reference (body fields and the
 * path parameter; the query was already checked by matchRoute). `bodyBytes` is the raw body
 * (undefined or empty for none). Returns the extraction or a Denial in the route's API shape.
 */
export function extractModels(match: RouteMatch, bodyBytes: Uint8Array | undefined, opts: ExtractOptions = {}): ExtractedRequest | Denial {
  try {
    return extractOrThrow(match, bodyBytes, opts);
  } catch (err) {
    const e = err instanceof ProxyError ? err : new ProxyError("INTERNAL", "request inspection failed");
    return { kind: "deny", error: e, flavor: match.flavor };
  }
}

// ---------------------------------------------------------------------------------------------
// Loading-field policy

export type LoadingAction = "allow" | "allow-capped" | "strip" | "deny-false";

/**
 * What happens to fields that load or alter a model, for NON-ADMIN callers (admins: allow all).
 *   allow         forwarded unchanged
 *   allow-capped  forwarded, clamped to the configured cap (keep_alive, num_ctx)
 *   strip         removed; the server's default applies (GPU placement, threads, mlock...)
 *   deny-false    `false` is refused (403 LOADING_FIELD_DENIED); `true`/absent forwarded
 * `use_mmap: false` copies the weights into RAM so an in-place revoke of the memory-mapped
 * variant no longer takes effect: refused. `num_gpu`/`main_gpu` decide how many layers are copied
 * into VRAM (same concern) and are stripped so the operator's server default applies.
 */
export const LOADING_FIELD_POLICY: Readonly<Record<string, LoadingAction>> = Object.freeze({
  keep_alive: "allow-capped",
  template: "allow",
  system: "allow",
  raw: "allow",
  "options.num_ctx": "allow-capped",
  "options.use_mmap": "deny-false",
  "options.use_mlock": "strip",
  "options.num_gpu": "strip",
  "options.main_gpu": "strip",
  "options.low_vram": "strip",
  "options.numa": "strip",
  "options.num_thread": "strip",
  "options.vocab_only": "strip",
  "options.f16_kv": "strip",
});

const OPTION_KEYS = Object.keys(LOADING_FIELD_POLICY).filter((k) => k.startsWith("options.")).map((k) => k.slice(8));
const OPTION_FOLD = new Map(OPTION_KEYS.map((k) => [goFoldKey(k), k]));

export interface LoadingPolicyOptions {
  admin: boolean;
  /** Cap for keep_alive in seconds (default 1800). Negative (forever) is clamped to it. */
  maxKeepAliveSeconds?: number;
  /** Cap for options.num_ctx (default 32768). */
  maxNumCtx?: number;
}

export interface LoadingChange {
  field: string;
  action: "strip" | "clamp";
  from: unknown;
  to?: unknown;
}

const DURATION_UNITS: Record<string, number> = { ns: 1e-9, us: 1e-6, "µs": 1e-6, "μs": 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };

/** Go time.ParseDuration (as Ollama's keep_alive uses it), in seconds; undefined if invalid. */
export function parseGoDuration(s: string): number | undefined {
  if (s === "0" || s === "+0" || s === "-0") return 0;
  const m = /^([+-]?)((?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)$/.exec(s);
  if (!m) return undefined;
  let total = 0;
  for (const part of m[2]!.matchAll(/(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)) {
    total += Number(part[1]) * DURATION_UNITS[part[2]!]!;
  }
  return m[1] === "-" ? -total : total;
}

/**
 * Apply LOADING_FIELD_POLICY to a parsed body. Returns the (possibly new) body and the list of
 * changes for the audit log; throws nothing: a Denial is returned for refused values.
 */
export function applyLoadingPolicy(
  req: ExtractedRequest,
  opts: LoadingPolicyOptions,
): { kind: "request"; body: Record<string, unknown> | undefined; changes: LoadingChange[] } | Denial {
  try {
    return { kind: "request", ...applyLoadingPolicyOrThrow(req.body, opts) };
  } catch (err) {
    const e = err instanceof ProxyError ? err : new ProxyError("INTERNAL", "loading policy failed");
    return { kind: "deny", error: e, flavor: req.match.flavor };
  }
}

function applyLoadingPolicyOrThrow(
  input: Readonly<Record<string, unknown>> | undefined,
  opts: LoadingPolicyOptions,
): { body: Record<string, unknown> | undefined; changes: LoadingChange[] } {
  if (input === undefined) return { body: undefined, changes: [] };
  const body: Record<string, unknown> = { ...input };
  const changes: LoadingChange[] = [];

  // keep_alive: number (seconds, negative = forever) or Go duration string; null = default.
  const ka = body["keep_alive"];
  if (ka !== undefined && ka !== null) {
    let seconds: number | undefined;
    if (typeof ka === "number" && Number.isFinite(ka)) seconds = ka < 0 ? Infinity : ka;
    else if (typeof ka === "string") {
      // Go durations ("5m", "-1h"), and bare integer seconds ("-1", "3600") as OLLAMA_KEEP_ALIVE takes them
      const d = /^[+-]?[0-9]{1,12}$/.test(ka) ? Number(ka) : parseGoDuration(ka);
      seconds = d === undefined ? undefined : d < 0 ? Infinity : d;
    }
    if (seconds === undefined) {
      throw new ProxyError("BODY_FIELD_TYPE", `body.keep_alive: expected seconds or a duration like "5m", found ${JSON.stringify(ka).slice(0, 40)}`);
    }
    const cap = opts.maxKeepAliveSeconds ?? 1800;
    if (!opts.admin && seconds > cap) {
      body["keep_alive"] = cap;
      changes.push({ field: "keep_alive", action: "clamp", from: ka, to: cap });
    }
  }

  const rawOpts = body["options"];
  if (rawOpts !== undefined && rawOpts !== null) {
    if (typeof rawOpts !== "object" || Array.isArray(rawOpts)) {
      throw new ProxyError("BODY_FIELD_TYPE", "body.options: expected an object");
    }
    const o: Record<string, unknown> = { ...(rawOpts as Record<string, unknown>) };
    const nc = o["num_ctx"];
    if (nc !== undefined && nc !== null) {
      if (typeof nc !== "number" || !Number.isFinite(nc)) {
        throw new ProxyError("BODY_FIELD_TYPE", "body.options.num_ctx: expected a number");
      }
      const cap = opts.maxNumCtx ?? 32768;
      if (!opts.admin && nc > cap) {
        o["num_ctx"] = cap;
        changes.push({ field: "options.num_ctx", action: "clamp", from: nc, to: cap });
      }
    }
    if (!opts.admin) {
      for (const key of Object.keys(o)) {
        const action = LOADING_FIELD_POLICY[`options.${key}`];
        if (action === "strip") {
          changes.push({ field: `options.${key}`, action: "strip", from: o[key] });
          delete o[key];
        } else if (action === "deny-false" && o[key] === false) {
          throw new ProxyError("LOADING_FIELD_DENIED", `body.options.${key}: false is not allowed (it would defeat live revocation)`, { field: `options.${key}` });
        }
      }
    }
    body["options"] = o;
  }
  return { body, changes };
}

// ---------------------------------------------------------------------------------------------
// Rewriting

const ALL_MODEL_FIELDS: readonly ModelField[] = ["model", "name", "source", "destination", "from"];

/**
 * Rewrite every model field of `body` naming `fromName` (after `:latest` normalisation) to
 * `toName`, and return the bytes to forward. Fields naming another model (copy destination)
 * are left alone. `fields` defaults to every model field.
 */
export function rewriteRequestModel(
  body: Readonly<Record<string, unknown>>,
  fromName: string,
  toName: string,
  fields: readonly ModelField[] = ALL_MODEL_FIELDS,
): Buffer {
  assertModelName(toName, "rewrite target");
  const out: Record<string, unknown> = { ...body };
  for (const f of fields) {
    const v = out[f];
    if (typeof v === "string" && v !== "" && sameModel(v, fromName)) out[f] = toName;
  }
  return Buffer.from(JSON.stringify(out), "utf8");
}

/** rewriteRequestModel for an extraction: the target fields only; checks none is left over. */
export function rewriteExtracted(req: ExtractedRequest, body: Readonly<Record<string, unknown>>, toName: string): Buffer {
  const route: RouteSpec = req.match.route;
  if (req.model === undefined) return Buffer.from(JSON.stringify(body), "utf8");
  const bytes = rewriteRequestModel(body, req.model, toName, route.modelFields);
  const check = JSON.parse(bytes.toString("utf8")) as Record<string, unknown>;
  for (const f of route.modelFields) {
    const v = check[f];
    if (typeof v === "string" && v !== "" && v !== toName) {
      throw new ProxyError("INTERNAL", `rewrite left body.${f} naming another model`);
    }
  }
  return bytes;
}
