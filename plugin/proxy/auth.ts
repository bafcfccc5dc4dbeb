/**
 * Authentication, pure parts: credential parsing, constant-time token-hash comparison, and
 * verification of Ollama's `OLLAMA_AUTH` request signatures.
 *
 * Credentials (pass `req.headersDistinct`: Node's `req.headers` silently DROPS a second
 * `Authorization` header and joins a second `X-Api-Key` with ", "):
 *   - `Authorization: Bearer <token>` or `X-Api-Key: <token>`; both present: they must be equal.
 *     Tokens are RFC 6750 b64token (`[A-Za-z0-9._~+/-]+=*`), at most 4096 bytes.
 *   - `Authorization: <base64 pubkey>:<base64 signature>`: what the ollama CLI/library sends with
 *     OLLAMA_AUTH=1 (ollama api/client.go + auth/auth.go): the public key is the base64 of the
 *     SSH wire encoding (`string "ssh-ed25519" || string key32`, the second field of
 *     `~/.ollama/id_ed25519.pub`); a raw 32-byte key is accepted too. The signature is the raw
 *     64-byte ed25519 signature over `"<METHOD>,<path>?ts=<unix seconds>"`; the client also
 *     puts `ts=<unix seconds>` in the query string.
 *   - a header given twice, a signature together with X-Api-Key, or Bearer and X-Api-Key that
 *     differ: 400 AUTH_CONFLICT. Anything unparseable: 401 AUTH_MALFORMED.
 * Signatures are verified strictly (RFC 8032, not ZIP-215), `ts` must be within the freshness
 * window, and a SignatureReplayCache refuses a signature seen before inside the window.
 */

import { createHash, timingSafeEqual } from "node:crypto";
import { ed25519 } from "@noble/curves/ed25519.js";
import type { ApiFlavor } from "./api-error.js";
import { ProxyError } from "./errors.js";
import type { Denial, HeaderBag } from "./routes.js";

export { apiError, apiErrorFrom, flavorForPath, type ApiFlavor, type ApiErrorResponse } from "./api-error.js";

export const MAX_TOKEN_BYTES = 4096;
const TOKEN_RE = /^[A-Za-z0-9._~+/-]+=*$/;
const B64_RE = /^[A-Za-z0-9+/]+={0,2}$/;
const SSH_ED25519 = "ssh-ed25519";

export type Credentials =
  | { readonly kind: "none" }
  | { readonly kind: "token"; readonly token: string; readonly source: "bearer" | "x-api-key" }
  | {
      readonly kind: "ollama-signature";
      /** Raw 32-byte ed25519 public key. */
      readonly publicKey: Uint8Array;
      /** The public key in Ollama's text form (base64 SSH wire format), for manifest lookup. */
      readonly publicKeyText: string;
      readonly signature: Uint8Array;
    };

function values(headers: HeaderBag, name: string): readonly string[] {
  const v = headers[name];
  if (v === undefined) return [];
  return typeof v === "string" ? [v] : v;
}

function fail(code: "AUTH_MALFORMED" | "AUTH_CONFLICT", message: string): never {
  throw new ProxyError(code, message, {}, code === "AUTH_MALFORMED" ? { "www-authenticate": "Bearer" } : {});
}

function parseToken(t: string, where: string): string {
  if (t.length === 0 || t.length > MAX_TOKEN_BYTES || !TOKEN_RE.test(t)) fail("AUTH_MALFORMED", `${where}: malformed token`);
  return t;
}

function decodeB64(s: string): Uint8Array | undefined {
  if (!B64_RE.test(s) || s.length % 4 !== 0) return undefined;
  const b = Buffer.from(s, "base64");
  return b.toString("base64") === s ? new Uint8Array(b) : undefined;
}

/** The 32-byte key from Ollama's public-key text (SSH wire format, or raw). */
export function decodeOllamaPublicKey(text: string): Uint8Array | undefined {
  const b = decodeB64(text);
  if (!b) return undefined;
  if (b.length === 32) return b;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.length !== 4 + SSH_ED25519.length + 4 + 32) return undefined;
  if (dv.getUint32(0) !== SSH_ED25519.length) return undefined;
  if (Buffer.from(b.subarray(4, 4 + SSH_ED25519.length)).toString("latin1") !== SSH_ED25519) return undefined;
  if (dv.getUint32(4 + SSH_ED25519.length) !== 32) return undefined;
  return b.slice(4 + SSH_ED25519.length + 4);
}

/** Ollama's text form of a public key: base64 of the SSH wire encoding. */
export function ollamaPublicKeyText(publicKey: Uint8Array): string {
  if (publicKey.length !== 32) throw new RangeError("ed25519 public key must be 32 bytes");
  const out = Buffer.alloc(4 + SSH_ED25519.length + 4 + 32);
  out.writeUInt32BE(SSH_ED25519.length, 0);
  out.write(SSH_ED25519, 4, "latin1");
  out.writeUInt32BE(32, 4 + SSH_ED25519.length);
  out.set(publicKey, 8 + SSH_ED25519.length);
  return out.toString("base64");
}

function parseOrThrow(headers: HeaderBag): Credentials {
  const auth = values(headers, "authorization");
  const apiKey = values(headers, "x-api-key");
  if (auth.length > 1) fail("AUTH_CONFLICT", "Authorization header given more than once");
  if (apiKey.length > 1) fail("AUTH_CONFLICT", "X-Api-Key header given more than once");
  const key = apiKey.length === 1 ? parseToken(apiKey[0]!.trim(), "X-Api-Key") : undefined;
  if (auth.length === 0) return key === undefined ? { kind: "none" } : { kind: "token", token: key, source: "x-api-key" };

  const a = auth[0]!.trim();
  const bearer = /^bearer +(.*)$/i.exec(a);
  if (bearer) {
    const token = parseToken(bearer[1]!, "Authorization");
    if (key !== undefined && key !== token) fail("AUTH_CONFLICT", "Authorization and X-Api-Key carry different tokens");
    return { kind: "token", token, source: "bearer" };
  }
  const colon = a.indexOf(":");
  if (colon > 0 && !a.includes(" ")) {
    if (key !== undefined) fail("AUTH_CONFLICT", "an Ollama signature and X-Api-Key were both given");
    const publicKeyText = a.slice(0, colon);
    const publicKey = decodeOllamaPublicKey(publicKeyText);
    const signature = decodeB64(a.slice(colon + 1));
    if (!publicKey) fail("AUTH_MALFORMED", "Authorization: malformed Ollama public key (expected base64 ssh-ed25519 key)");
    if (!signature || signature.length !== 64) fail("AUTH_MALFORMED", "Authorization: malformed Ollama signature (expected base64 of 64 bytes)");
    return { kind: "ollama-signature", publicKey, publicKeyText: ollamaPublicKeyText(publicKey), signature };
  }
  fail("AUTH_MALFORMED", "Authorization: expected 'Bearer <token>' or an Ollama '<key>:<signature>'");
}

/** Parse the request's credentials; a Denial (in `flavor`'s shape) when they are malformed. */
export function parseCredentials(headers: HeaderBag, flavor: ApiFlavor = "ollama"): Credentials | Denial {
  try {
    return parseOrThrow(headers);
  } catch (err) {
    const e = err instanceof ProxyError ? err : new ProxyError("INTERNAL", "credential parsing failed");
    return { kind: "deny", error: e, flavor };
  }
}

/** SHA-256 of a token (what manifests store). */
export function hashToken(token: string): Uint8Array {
  return new Uint8Array(createHash("sha256").update(token, "utf8").digest());
}

/** Constant-time equality of two token hashes (false on any length other than 32). */
export function tokenHashEquals(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== 32 || b.length !== 32) return false;
  return timingSafeEqual(a, b);
}

/**
 * The id whose stored hash matches `token`: hashes it once and compares against EVERY candidate
 * in constant time (no early exit), so timing does not reveal which or how many matched.
 */
export function findTokenHash<Id>(token: string, candidates: Iterable<readonly [Id, Uint8Array]>): Id | undefined {
  const h = hashToken(token);
  let found: Id | undefined;
  for (const [id, stored] of candidates) {
    const eq = tokenHashEquals(h, stored);
    if (eq && found === undefined) found = id;
  }
  return found;
}

export interface SignatureCheck {
  /** The request method and RAW path (RouteMatch.path), and its parsed query. */
  method: string;
  path: string;
  query: URLSearchParams;
  /** Current time, unix seconds. */
  nowSeconds: number;
  /** Accepted |now - ts| in seconds (default 120). */
  windowSeconds?: number;
  /** Optional replay protection. */
  replay?: SignatureReplayCache;
}

/** The string the ollama client signs. */
export function ollamaChallenge(method: string, path: string, ts: string): string {
  return `${method},${path}?ts=${ts}`;
}

function verifyOrThrow(creds: Extract<Credentials, { kind: "ollama-signature" }>, c: SignatureCheck): { ts: number } {
  const ts = c.query.getAll("ts");
  if (ts.length !== 1 || !/^[0-9]{1,12}$/.test(ts[0]!)) {
    throw new ProxyError("AUTH_MALFORMED", "signed request needs exactly one ts=<unix seconds> query parameter");
  }
  const t = Number(ts[0]);
  const window = c.windowSeconds ?? 120;
  if (Math.abs(c.nowSeconds - t) > window) {
    throw new ProxyError("AUTH_STALE", `signature timestamp is outside the ${window} s window`);
  }
  let ok = false;
  try {
    ok = ed25519.verify(creds.signature, new TextEncoder().encode(ollamaChallenge(c.method, c.path, ts[0]!)), creds.publicKey, { zip215: false });
  } catch {
    ok = false;
  }
  if (!ok) throw new ProxyError("AUTH_INVALID", "invalid request signature", {}, { "www-authenticate": "Bearer" });
  if (c.replay && !c.replay.remember(Buffer.from(creds.signature).toString("base64"), t, c.nowSeconds)) {
    throw new ProxyError("AUTH_REPLAY", "request signature was already used");
  }
  return { ts: t };
}

/** Verify an Ollama signature against the request; `{ok: true, ts}` or a Denial. */
export function verifyOllamaSignature(
  creds: Extract<Credentials, { kind: "ollama-signature" }>,
  check: SignatureCheck,
  flavor: ApiFlavor = "ollama",
): { kind: "ok"; ts: number } | Denial {
  try {
    return { kind: "ok", ...verifyOrThrow(creds, check) };
  } catch (err) {
    const e = err instanceof ProxyError ? err : new ProxyError("INTERNAL", "signature verification failed");
    return { kind: "deny", error: e, flavor };
  }
}

/**
 * Remembers signatures seen inside the freshness window. Bounded: when full of unexpired
 * entries it refuses new ones (fail closed) instead of forgetting.
 */
export class SignatureReplayCache {
  private readonly seen = new Map<string, number>();
  constructor(
    private readonly windowSeconds = 120,
    private readonly maxEntries = 100_000,
  ) {}

  /** True if `sig` is new (and now remembered); false if seen before or the cache is full. */
  remember(sig: string, ts: number, nowSeconds: number): boolean {
    for (const [k, t] of this.seen) {
      if (t >= nowSeconds - this.windowSeconds) break;
      this.seen.delete(k);
    }
    if (this.seen.has(sig)) return false;
    if (this.seen.size >= this.maxEntries) {
      for (const [k, t] of this.seen) if (t < nowSeconds - this.windowSeconds) this.seen.delete(k);
      if (this.seen.size >= this.maxEntries) return false;
    }
    this.seen.set(sig, Math.max(ts, nowSeconds));
    return true;
  }
}
