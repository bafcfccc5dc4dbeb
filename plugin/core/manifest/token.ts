/**
 * API tokens and the byte encodings manifests use. A token is `sn_` + base64url (no padding) of
 * 32 random bytes: 46 ASCII characters, 256 bits of entropy. Manifests hold only its SHA-256.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import type { RandomBytes } from "../abe/fame.js";

export const TOKEN_PREFIX = "sn_";
export const TOKEN_BYTES = 32;
export const TOKEN_PATTERN = /^sn_[A-Za-z0-9_-]{43}$/;

const enc = new TextEncoder();

export function bytesToHex(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

/** Strict lowercase hex; returns undefined on anything else (odd length, other characters). */
export function hexToBytes(s: string): Uint8Array | undefined {
  if (s.length % 2 !== 0 || !/^[0-9a-f]*$/.test(s)) return undefined;
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function base64UrlEncode(b: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < b.length; i += 0x8000) bin += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Strict base64url without padding: undefined unless `s` is the canonical encoding of its bytes. */
export function base64UrlDecode(s: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) return undefined;
  let bin: string;
  try {
    bin = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
  } catch {
    return undefined;
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return base64UrlEncode(out) === s ? out : undefined;
}

/** A fresh random API token. */
export function generateToken(randomBytes: RandomBytes): string {
  const raw = randomBytes(TOKEN_BYTES);
  if (raw.length !== TOKEN_BYTES) throw new Error(`randomBytes returned ${raw.length} bytes, expected ${TOKEN_BYTES}`);
  const token = TOKEN_PREFIX + base64UrlEncode(raw);
  raw.fill(0);
  return token;
}

/** True if `token` has the shape of a secneuron API token. */
export function isTokenShaped(token: string): boolean {
  return typeof token === "string" && TOKEN_PATTERN.test(token);
}

/** Hex SHA-256 of the token's UTF-8 bytes: the manifest's `tokenSha256` and the lookup key. */
export function tokenSha256Hex(token: string): string {
  return bytesToHex(sha256(enc.encode(token)));
}

/** Constant-time equality of two byte strings (length is not secret). */
export function equalBytesCt(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

/** Constant-time equality of two hex strings of the same length. */
export function equalHexCt(a: string, b: string): boolean {
  const x = hexToBytes(a);
  const y = hexToBytes(b);
  return x !== undefined && y !== undefined && equalBytesCt(x, y);
}
