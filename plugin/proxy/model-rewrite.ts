/**
 * Responses: rename variant models back to the caller's names, without buffering streams,
 * and filter model listings to the caller's scope.
 *
 * What is rewritten: every JSON string value (at any depth, and object keys) is checked:
 *   - a value that IS a variant name (after `:latest` normalisation) becomes the caller's name:
 *     this covers `model` (Ollama lines, OpenAI chunks, embeddings), `response.model`
 *     (/v1/responses events), `message.model` (Anthropic message_start), `id` (/v1/models/:model),
 *     `name`/`model` in /api/tags and /api/ps entries;
 *   - a value that CONTAINS a variant name has each occurrence replaced (error messages such as
 *     `model "sn-x" not found`, the `modelfile` text of /api/show).
 * Text the proxy cannot parse as JSON (an NDJSON line, an SSE data payload, an SSE field or
 * comment line, a whole JSON body) is passed through unchanged when it does not mention a variant
 * name (raw or `\uXXXX`-escaped), and DROPPED when it does (a whole JSON body is replaced with
 * `{"error":"upstream response withheld by the proxy"}`). Variant names therefore never reach a
 * caller. Variant names should be distinctive (e.g. `secneuron-<hex>`): a caller's own text
 * that happens to contain one is renamed too.
 *
 * Streams are processed line by line (NDJSON) or event by event (SSE): memory is bounded by the
 * longest line/event (`maxLineBytes`), not by the stream. Whole JSON bodies and listings are
 * buffered up to `maxBodyBytes`. Output bytes differ from the input: drop Content-Length.
 */

import { StringDecoder } from "node:string_decoder";
import { PassThrough, Transform, type TransformCallback } from "node:stream";
import { ProxyError } from "./errors.js";
import { normalizeModelName } from "./model-name.js";
import type { ListingKind, RouteSpec } from "./routes.js";

export interface ModelRenamer {
  /** Caller's name for an upstream model in scope (identity entries included), else undefined. */
  lookup(upstream: string): string | undefined;
  /** Whether any variant (non-identity) entry exists: if not, responses need no rewriting. */
  readonly hasVariants: boolean;
  /** `s` with every variant name occurrence replaced by the caller's name. */
  replaceIn(s: string): string;
  /** Whether `s` mentions a variant name, raw or `\uXXXX`-escaped. */
  mentions(s: string): boolean;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}

/**
 * Build the renamer from `[upstreamName, callerName]` pairs. Pairs where both names are equal
 * (after normalisation) are identity entries: in scope for listings, never rewritten.
 */
export function createModelRenamer(entries: Iterable<readonly [upstream: string, caller: string]>): ModelRenamer {
  const map = new Map<string, string>();
  const variants = new Map<string, string>(); // substring -> caller name
  for (const [up, caller] of entries) {
    const key = normalizeModelName(up);
    if (!map.has(key)) map.set(key, caller);
    if (key !== normalizeModelName(caller)) {
      variants.set(key, caller);
      if (key.endsWith(":latest") && !up.includes(":")) variants.set(up, caller);
      else if (key.endsWith(":latest")) variants.set(key.slice(0, -7), caller);
    }
  }
  const keys = [...variants.keys()].sort((a, b) => b.length - a.length);
  const re = keys.length ? new RegExp(keys.map(escapeRe).join("|"), "g") : null;
  const test = keys.length ? new RegExp(keys.map(escapeRe).join("|")) : null;
  return {
    hasVariants: re !== null,
    lookup: (upstream) => map.get(normalizeModelName(upstream)),
    replaceIn: (s) => (re ? s.replace(re, (m) => variants.get(m)!) : s),
    mentions: (s) => {
      if (!test) return false;
      if (test.test(s)) return true;
      if (!s.includes("\\")) return false;
      const unescaped = s
        .replace(/\\u([0-9a-fA-F]{4})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)))
        .replace(/\\\//g, "/");
      return test.test(unescaped);
    },
  };
}

/** Rename variant names anywhere in a parsed JSON value; `changed` tells whether anything moved. */
export function rewriteJsonValue(value: unknown, r: ModelRenamer): { value: unknown; changed: boolean } {
  let changed = false;
  const walk = (v: unknown): unknown => {
    if (typeof v === "string") {
      const exact = r.lookup(v);
      if (exact !== undefined && normalizeModelName(exact) !== normalizeModelName(v)) {
        changed = true;
        return exact;
      }
      const s = r.replaceIn(v);
      if (s !== v) changed = true;
      return s;
    }
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === "object") {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) {
        const nk = r.replaceIn(k);
        if (nk !== k) changed = true;
        out[nk] = walk(x);
      }
      return out;
    }
    return v;
  };
  if (!r.hasVariants) return { value, changed: false };
  const out = walk(value);
  return { value: out, changed };
}

/** Rewrite one JSON text; null when it is not JSON and mentions a variant (drop it). */
function rewriteJsonText(text: string, r: ModelRenamer): string | null {
  // Fast path (every streamed token line): text that mentions no variant name, raw or escaped,
  // cannot hold one once parsed, so it passes unchanged without a parse and a re-serialisation.
  if (!r.mentions(text)) return text;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return r.mentions(text) ? null : text;
  }
  const { value, changed } = rewriteJsonValue(parsed, r);
  return changed ? JSON.stringify(value) : text;
}

export interface RewriterOptions {
  /** Longest NDJSON line / SSE event kept in memory (default 16 MiB): longer fails the stream. */
  maxLineBytes?: number;
  /** Largest whole JSON body or listing buffered (default 64 MiB). */
  maxBodyBytes?: number;
}

/** Splits text into lines, keeping each line's terminator (`\n`, `\r\n`, `\r` or "" at the end). */
class LineSplitter {
  private pending = "";
  private readonly decoder = new StringDecoder("utf8");
  constructor(
    private readonly crIsEol: boolean,
    private readonly maxLine: number,
  ) {}

  push(chunk: Buffer, onLine: (line: string, eol: string) => void): void {
    const from = Math.max(0, this.pending.length - 1); // pending holds no terminator but a last \r
    this.scan(this.pending + this.decoder.write(chunk), from, false, onLine);
  }

  end(onLine: (line: string, eol: string) => void): void {
    const from = Math.max(0, this.pending.length - 1);
    this.scan(this.pending + this.decoder.end(), from, true, onLine);
  }

  private scan(text: string, from: number, final: boolean, onLine: (line: string, eol: string) => void): void {
    let start = 0;
    const n = text.length;
    for (let i = from; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x0a) {
        const cr = i > start && text.charCodeAt(i - 1) === 0x0d;
        onLine(text.slice(start, cr ? i - 1 : i), cr ? "\r\n" : "\n");
        start = i + 1;
      } else if (c === 0x0d && this.crIsEol) {
        if (i + 1 < n) {
          if (text.charCodeAt(i + 1) === 0x0a) continue; // handled at the \n
          onLine(text.slice(start, i), "\r");
          start = i + 1;
        } else if (final) {
          onLine(text.slice(start, i), "\r");
          start = i + 1;
        }
        // else: a trailing \r may be the first half of \r\n: wait for more
      }
    }
    this.pending = text.slice(start);
    if (final && this.pending.length > 0) {
      onLine(this.pending, "");
      this.pending = "";
    }
    if (this.pending.length > this.maxLine) {
      throw new ProxyError("UPSTREAM_TOO_LARGE", `upstream line longer than ${this.maxLine} bytes`);
    }
  }
}

/** NDJSON (and plain text): each line rewritten on its own. */
class NdjsonRewriter extends Transform {
  private readonly lines: LineSplitter;
  constructor(
    private readonly r: ModelRenamer,
    opts: RewriterOptions,
  ) {
    super();
    this.lines = new LineSplitter(false, opts.maxLineBytes ?? 16 * 1024 * 1024);
  }

  private onLine = (line: string, eol: string): void => {
    const cr = line.endsWith("\r");
    const body = cr ? line.slice(0, -1) : line;
    if (body.trim() === "") {
      this.out += line + eol;
      return;
    }
    const out = rewriteJsonText(body, this.r);
    if (out !== null) this.out += out + (cr ? "\r" : "") + eol;
  };
  /** Lines of the current chunk, pushed once per chunk (one write instead of one per line). */
  private out = "";
  private flushOut(): void {
    if (this.out) this.push(this.out);
    this.out = "";
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.lines.push(chunk, this.onLine);
      this.flushOut();
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.lines.end(this.onLine);
      this.flushOut();
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }
}

/** SSE: events (lines up to a blank line) are rewritten whole; data lines joined per the spec. */
class SseRewriter extends Transform {
  private readonly lines: LineSplitter;
  private event: { line: string; eol: string }[] = [];
  private eventBytes = 0;
  private readonly maxEvent: number;
  constructor(
    private readonly r: ModelRenamer,
    opts: RewriterOptions,
  ) {
    super();
    this.maxEvent = opts.maxLineBytes ?? 16 * 1024 * 1024;
    this.lines = new LineSplitter(true, this.maxEvent);
  }

  private onLine = (line: string, eol: string): void => {
    if (line === "") {
      this.flushEvent(eol);
      return;
    }
    this.event.push({ line, eol });
    this.eventBytes += line.length;
    if (this.eventBytes > this.maxEvent) {
      throw new ProxyError("UPSTREAM_TOO_LARGE", `upstream SSE event longer than ${this.maxEvent} bytes`);
    }
  };

  /** Emit the buffered event; `blankEol` is the terminator of the blank line (null at EOF). */
  private flushEvent(blankEol: string | null): void {
    const lines = this.event;
    this.event = [];
    this.eventBytes = 0;
    const dataIdx: number[] = [];
    const values: string[] = [];
    lines.forEach(({ line }, i) => {
      if (line === "data" || line.startsWith("data:")) {
        dataIdx.push(i);
        const v = line.slice(5);
        values.push(v.startsWith(" ") ? v.slice(1) : v);
      }
    });
    let out = "";
    if (dataIdx.length > 0) {
      const joined = values.join("\n");
      const rewritten = rewriteJsonText(joined, this.r);
      if (rewritten === null) return; // unparseable and mentions a variant: drop the event
      if (rewritten !== joined) {
        const first = dataIdx[0]!;
        const drop = new Set(dataIdx.slice(1));
        lines[first] = { line: `data: ${rewritten}`, eol: lines[first]!.eol };
        for (let i = 0; i < lines.length; i++) {
          if (drop.has(i)) continue;
          out += this.fieldLine(lines[i]!, i === first);
        }
      } else {
        for (let i = 0; i < lines.length; i++) out += this.fieldLine(lines[i]!, dataIdx.includes(i));
      }
    } else {
      for (const l of lines) out += this.fieldLine(l, false);
    }
    if (blankEol !== null) out += blankEol;
    if (out.length > 0) this.push(out);
  }

  /** A non-data line that mentions a variant is dropped. */
  private fieldLine(l: { line: string; eol: string }, isData: boolean): string {
    if (!isData && this.r.mentions(l.line)) return "";
    return l.line + l.eol;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.lines.push(chunk, this.onLine);
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.lines.end(this.onLine);
      if (this.event.length > 0) this.flushEvent(null);
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }
}

const WITHHELD = '{"error":"upstream response withheld by the proxy"}';

/** Buffers a whole JSON body (bounded), then rewrites it (or filters a listing). */
class WholeJsonRewriter extends Transform {
  private chunks: Buffer[] = [];
  private size = 0;
  private readonly max: number;
  constructor(
    private readonly r: ModelRenamer,
    private readonly listing: ListingKind | null,
    opts: RewriterOptions,
  ) {
    super();
    this.max = opts.maxBodyBytes ?? 64 * 1024 * 1024;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.size += chunk.length;
    if (this.size > this.max) {
      cb(new ProxyError("UPSTREAM_TOO_LARGE", `upstream body larger than ${this.max} bytes`));
      return;
    }
    this.chunks.push(chunk);
    cb();
  }

  override _flush(cb: TransformCallback): void {
    const raw = Buffer.concat(this.chunks);
    this.chunks = [];
    const text = raw.toString("utf8");
    let parsed: unknown;
    let ok = true;
    try {
      parsed = JSON.parse(text);
    } catch {
      ok = false;
    }
    if (this.listing) {
      const value = ok ? filterListing(this.listing, parsed, this.r) : emptyListing(this.listing);
      cb(null, JSON.stringify(value));
      return;
    }
    if (!ok) {
      cb(null, this.r.mentions(text) ? WITHHELD : raw);
      return;
    }
    const { value, changed } = rewriteJsonValue(parsed, this.r);
    cb(null, changed ? JSON.stringify(value) : raw);
  }
}

export type ResponseKind = "json" | "ndjson" | "sse" | ListingKind;

/**
 * A Transform that renames variant models to the caller's names in a response body of `kind`
 * (see responseKindFor). With no variant entries and no listing it is a PassThrough.
 */
export function createResponseRewriter(kind: ResponseKind, renamer: ModelRenamer, opts: RewriterOptions = {}): Transform {
  switch (kind) {
    case "ollama-tags":
    case "ollama-ps":
    case "openai-models":
      return new WholeJsonRewriter(renamer, kind, opts);
    case "json":
      return renamer.hasVariants ? new WholeJsonRewriter(renamer, null, opts) : new PassThrough();
    case "ndjson":
      return renamer.hasVariants ? new NdjsonRewriter(renamer, opts) : new PassThrough();
    case "sse":
      return renamer.hasVariants ? new SseRewriter(renamer, opts) : new PassThrough();
  }
}

/**
 * Which rewriter a response needs: a listing (2xx on a listing route), `sse` for
 * text/event-stream, `json` for application/json, and `ndjson` (line by line) for
 * application/x-ndjson and anything else (plain-text errors included).
 */
export function responseKindFor(route: RouteSpec, status: number, contentType: string | undefined): ResponseKind {
  const ct = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
  if (route.listing && status >= 200 && status < 300) return route.listing;
  if (ct === "text/event-stream") return "sse";
  if (ct === "application/json") return "json";
  return "ndjson";
}

// ---------------------------------------------------------------------------------------------
// Listings

function emptyListing(kind: ListingKind): unknown {
  return kind === "openai-models" ? { object: "list", data: [] } : { models: [] };
}

/** Ollama's owned_by for /v1/models: the namespace of the name, or "library". */
function ownedBy(name: string): string {
  const parts = name.split(":")[0]!.split("/");
  return parts.length >= 2 ? parts[parts.length - 2]! : "library";
}

/**
 * Filter a parsed listing to the models in scope (renamer.lookup), renamed to the caller's
 * names, first entry wins when two upstream models map to one caller name. Anything malformed
 * yields an empty listing (fail closed).
 */
export function filterListing(kind: ListingKind, body: unknown, r: ModelRenamer): unknown {
  if (body === null || typeof body !== "object" || Array.isArray(body)) return emptyListing(kind);
  const b = body as Record<string, unknown>;
  const arrayKey = kind === "openai-models" ? "data" : "models";
  const entries = b[arrayKey];
  if (!Array.isArray(entries)) return emptyListing(kind);
  const seen = new Set<string>();
  const kept: unknown[] = [];
  for (const e of entries) {
    if (e === null || typeof e !== "object" || Array.isArray(e)) continue;
    const entry = e as Record<string, unknown>;
    if (kind === "openai-models") {
      if (typeof entry["id"] !== "string") continue;
      const caller = r.lookup(entry["id"]);
      if (caller === undefined) continue;
      const canon = normalizeModelName(caller);
      if (seen.has(canon)) continue;
      seen.add(canon);
      const { value } = rewriteJsonValue({ ...entry, id: canon, owned_by: ownedBy(canon) }, r);
      kept.push(value);
    } else {
      const name = typeof entry["name"] === "string" ? entry["name"] : undefined;
      const model = typeof entry["model"] === "string" ? entry["model"] : undefined;
      const callerA = name === undefined ? undefined : r.lookup(name);
      const callerB = model === undefined ? undefined : r.lookup(model);
      // both fields (when present) must be in scope and agree
      if ((name === undefined && model === undefined) || (name !== undefined && callerA === undefined) || (model !== undefined && callerB === undefined)) continue;
      const caller = (callerA ?? callerB)!;
      if (callerA !== undefined && callerB !== undefined && normalizeModelName(callerA) !== normalizeModelName(callerB)) continue;
      const canon = normalizeModelName(caller);
      if (seen.has(canon)) continue;
      seen.add(canon);
      const renamed: Record<string, unknown> = { ...entry };
      if (name !== undefined) renamed["name"] = canon;
      if (model !== undefined) renamed["model"] = canon;
      kept.push(rewriteJsonValue(renamed, r).value);
    }
  }
  const rest = rewriteJsonValue({ ...b, [arrayKey]: [] }, r).value as Record<string, unknown>;
  return { ...rest, [arrayKey]: kept };
}
