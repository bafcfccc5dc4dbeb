/**
 * Wrapping the CP-ABE user key under the API token.
 *
 *   kek = scrypt(password = UTF-8(token), salt = 16 random bytes, N = 2^logN, r = 8, p = 1, 32 bytes)
 *   aad = UTF-8(JSON.stringify([WRAP_AAD_DOMAIN, id, subject, tokenSha256]))
 *   ciphertext || tag = AES-256-GCM(kek, nonce = 12 random bytes, aad).encrypt(encodeUserKey(uk))
 *
 * The key-encryption key is unique per (token, salt), so a random 96-bit nonce is never reused
 * under one key. The AAD binds the wrapped key to its manifest: moving it into a manifest with
 * another id, subject or token hash fails authentication. Pure: salt and nonce come from the
 * `randomBytes` argument.
 */
import { gcm } from "@noble/ciphers/aes.js";
import { scrypt, scryptAsync } from "@noble/hashes/scrypt.js";
import { ManifestError } from "../../errors.js";
import type { RandomBytes } from "../abe/fame.js";
import { base64UrlDecode, base64UrlEncode, bytesToHex, hexToBytes } from "./token.js";

export const WRAP_AAD_DOMAIN = "secneuron-key-manifest-v1/user-key";
export const KDF_R = 8;
export const KDF_P = 1;
export const KDF_SALT_BYTES = 16;
export const AEAD_NONCE_BYTES = 12;
/** Production default: scrypt N = 2^15, r = 8, p = 1 (32 MiB, ~0.3 s in JS on one core). */
export const DEFAULT_KDF_LOG_N = 15;

export interface WrappedUserKey {
  kdf: { name: "scrypt"; logN: number; r: number; p: number; salt: string };
  aead: { name: "aes-256-gcm"; nonce: string };
  /** base64url, no padding: GCM ciphertext followed by the 16-byte tag. */
  ciphertext: string;
}

/** The manifest fields the wrap is bound to. */
export interface WrapBinding {
  id: string;
  subject: string;
  tokenSha256: string;
}

const enc = new TextEncoder();

export function wrapAad(b: WrapBinding): Uint8Array {
  return enc.encode(JSON.stringify([WRAP_AAD_DOMAIN, b.id, b.subject, b.tokenSha256]));
}

function kdfOpts(logN: number) {
  return { N: 2 ** logN, r: KDF_R, p: KDF_P, dkLen: 32, maxmem: 2 ** 30 + 2 ** 20 };
}

/** Encrypts `userKeyBytes` under a key derived from `token`. The input bytes are not modified. */
export function wrapUserKey(
  userKeyBytes: Uint8Array,
  token: string,
  binding: WrapBinding,
  opts: { logN: number; randomBytes: RandomBytes },
): WrappedUserKey {
  const salt = opts.randomBytes(KDF_SALT_BYTES);
  const nonce = opts.randomBytes(AEAD_NONCE_BYTES);
  const kek = scrypt(enc.encode(token), salt, kdfOpts(opts.logN));
  try {
    const ct = gcm(kek, nonce, wrapAad(binding)).encrypt(userKeyBytes);
    return {
      kdf: { name: "scrypt", logN: opts.logN, r: KDF_R, p: KDF_P, salt: bytesToHex(salt) },
      aead: { name: "aes-256-gcm", nonce: bytesToHex(nonce) },
      ciphertext: base64UrlEncode(ct),
    };
  } finally {
    kek.fill(0);
  }
}

function unwrapFailed(reason: string, extra: Record<string, unknown> = {}): ManifestError {
  return new ManifestError("MANIFEST_UNWRAP_FAILED", `$.userKey: cannot unwrap the user key: ${reason}`, { path: "$.userKey", ...extra });
}

function decodeParts(w: WrappedUserKey) {
  const salt = hexToBytes(w.kdf.salt);
  const nonce = hexToBytes(w.aead.nonce);
  const ct = base64UrlDecode(w.ciphertext);
  if (!salt || salt.length !== KDF_SALT_BYTES) throw unwrapFailed("bad salt");
  if (!nonce || nonce.length !== AEAD_NONCE_BYTES) throw unwrapFailed("bad nonce");
  if (!ct || ct.length < 17) throw unwrapFailed("ciphertext is not canonical base64url or too short");
  if (w.kdf.name !== "scrypt" || w.kdf.r !== KDF_R || w.kdf.p !== KDF_P || w.aead.name !== "aes-256-gcm") {
    throw unwrapFailed("unsupported KDF or AEAD parameters");
  }
  return { salt, nonce, ct };
}

function decryptWith(kek: Uint8Array, nonce: Uint8Array, ct: Uint8Array, binding: WrapBinding): Uint8Array {
  try {
    return gcm(kek, nonce, wrapAad(binding)).decrypt(ct);
  } catch {
    throw unwrapFailed("authentication failed (wrong token, or the wrapped key was moved or altered)");
  } finally {
    kek.fill(0);
  }
}

/** Decrypts the encoded user key; MANIFEST_UNWRAP_FAILED on any failure. Blocks for the KDF. */
export function unwrapUserKey(w: WrappedUserKey, token: string, binding: WrapBinding): Uint8Array {
  const { salt, nonce, ct } = decodeParts(w);
  return decryptWith(scrypt(enc.encode(token), salt, kdfOpts(w.kdf.logN)), nonce, ct, binding);
}

/** As {@link unwrapUserKey}, yielding to the event loop during the KDF. */
export async function unwrapUserKeyAsync(w: WrappedUserKey, token: string, binding: WrapBinding): Promise<Uint8Array> {
  const { salt, nonce, ct } = decodeParts(w);
  const kek = await scryptAsync(enc.encode(token), salt, { ...kdfOpts(w.kdf.logN), asyncTick: 10 });
  return decryptWith(kek, nonce, ct, binding);
}
